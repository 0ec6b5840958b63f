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
    double comm_s;           /* modelled communication, all sync points (0 when --comm none) */
    double dp_wall_s;        /* sum over sync points of (max_r t_r + comm) + optimizer */
    double compute_wall_s;   /* the same without communication */
    double bubble_s;         /* sum over sync points of sum_r (max - t_r) */
    double dp_bubble;        /* bubble_s / (W * dp_wall_s) */
    double effective_tps, computed_tps;
    double padding_ratio;
    double mfu;              /* model FLOPs / (dp_wall_s * W * device peak) */
    double model_flops;
} RunMetrics;

/* Communication added to the measured compute (bench/comm.c models it): comm_micro_s for every
 * micro-step (ZeRO-3 gathers and reduce-scatter; under --sync step a step's sync point pays it
 * once per micro-step), comm_step_s once per optimizer step (DDP's all-reduce). */
typedef struct {
    double micro_s;
    double step_s;
} CommTimes;

/* recs: n records of a plan run, any order; micro_steps per step. step_optimizer_s: per step
 * (n_steps), may be NULL. */
void run_metrics_compute(const MbRecord *recs, int64_t n, int world_size, SyncModel sync, int micro_steps,
                         const double *step_optimizer_s, int n_steps, CommTimes comm, double peak_flops,
                         RunMetrics *out);

/* DP wall time of each optimizer step (n_steps values into out), same rules. */
void run_step_walls(const MbRecord *recs, int64_t n, int world_size, SyncModel sync, int micro_steps,
                    const double *step_optimizer_s, int n_steps, CommTimes comm, double *out);

#endif
