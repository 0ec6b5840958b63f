/* Measured metrics of a run, computed from the per-micro-batch records alone (DESIGN.md,
 * "Measurements — definitions"): the runner measures, this file only does arithmetic. */
#ifndef LABENCH_METRICS_H
#define LABENCH_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "strategies/strategy.h"

/* One executed micro-batch (or an idle rank: rows = 0, seconds = 0). */
typedef struct {
    int32_t step, micro, rank;
    int32_t rows, sequences, segments;
    int64_t real_tokens, computed_tokens, target_tokens;
    double sum_seq_len_sq;   /* sum over attention segments of len^2 */
    double seconds;          /* this rank's measured compute for the micro-batch */
    double loss;             /* its weighted loss contribution */
    double flops;            /* model FLOPs for its real tokens */
} MbRecord;

typedef struct {
    int steps;
    int64_t sync_points, micro_batches, sequences;
    int64_t real_tokens, computed_tokens, target_tokens;
    double compute_s;        /* sum over ranks of their compute */
    double optimizer_s;      /* optimizer steps, run by every rank at once */
    double comm_s;           /* modelled communication (0 when --comm none) */
    double dp_wall_s;        /* sum over sync points of (max_r t_r + comm) + optimizer */
    double bubble_s;         /* sum over sync points of sum_r (max - t_r) */
    double dp_bubble;        /* bubble_s / (W * dp_wall_s) */
    double effective_tps, computed_tps;
    double padding_ratio;
    double mfu;              /* model FLOPs / (dp_wall_s * W * device peak) */
    double model_flops;
} RunMetrics;

/* recs: n records of a plan run, any order. step_optimizer_s: per step (n_steps), may be NULL.
 * comm_per_sync_s: communication time added at each sync point. */
void run_metrics_compute(const MbRecord *recs, int64_t n, int world_size, SyncModel sync,
                         const double *step_optimizer_s, int n_steps, double comm_per_sync_s,
                         double peak_flops, RunMetrics *out);

/* DP wall time of each optimizer step (n_steps values into out), same rules. */
void run_step_walls(const MbRecord *recs, int64_t n, int world_size, SyncModel sync,
                    const double *step_optimizer_s, int n_steps, double comm_per_sync_s, double *out);

#endif
