/* Measured metrics of a run, computed from the per-micro-batch records alone (DESIGN.md,
 * "Measurements — definitions"): the runner measures, this file only does arithmetic. */
#ifndef LABENCH_METRICS_H
#define LABENCH_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "strategies/strategy.h"

/* One micro-batch of one rank, the one row every stage shares: the runner records it, the
 * results file holds it (run.micro_batches_detail), the fit and the prediction read its shape, the
 * report redraws the timeline from it. An idle rank has rows = 0 and seconds = 0. */
typedef struct {
    int32_t step, micro, rank;
    int32_t rows, sequences, segments;
    int64_t real_tokens, computed_tokens, target_tokens;
    double sum_seq_len_sq;   /* sum over attention segments of len^2 (pads extend the last) */
    double seconds;          /* this rank's measured compute for the micro-batch */
    double loss;             /* its weighted loss contribution */
    double flops;            /* model FLOPs for its real tokens */
} MbRow;

/* The columns of run.micro_batches_detail, in the order labench writes them (the names in
 * run.micro_batch_columns; a reader finds each by its name). */
enum {
    MB_STEP, MB_MICRO, MB_RANK, MB_ROWS, MB_SEQUENCES, MB_SEGMENTS, MB_REAL_TOKENS, MB_COMPUTED_TOKENS,
    MB_SUM_SEQ_LEN_SQ, MB_SECONDS, MB_LOSS, MB_N_COLUMNS
};
extern const char *const MB_COLUMN_NAMES[MB_N_COLUMNS];

typedef struct {
    int steps;
    int64_t sync_points, micro_batches, sequences;
    int64_t real_tokens, computed_tokens, target_tokens;
    double compute_s;        /* sum over ranks of their compute */
    double optimizer_s;      /* optimizer steps, run by every rank at once */
    double comm_s;           /* modelled communication (0 when --comm none): docs/communication.md */
    double dp_wall_s;        /* sum over sync points of max_r t_r + comm_s
                                + optimizer (unless comm.optimizer_on_host) */
    double compute_wall_s;   /* sum over sync points of max_r t_r + optimizer: no communication */
    double bubble_s;         /* sum over sync points of sum_r (max - t_r) */
    double dp_bubble;        /* bubble_s / (W * dp_wall_s) */
    double dp_bubble_compute;/* bubble_s / (W * compute_wall_s) */
    double effective_tps, computed_tps;
    double effective_tps_compute;   /* real tokens / compute_wall_s */
    double padding_ratio;
    double mfu;              /* model FLOPs / (dp_wall_s * W * device peak) */
    double model_flops;
} RunMetrics;

/* Communication added to the measured compute (bench/comm/comm_model.c models it; from a CommCost:
 * {per_micro_step_s, per_step_s, optimizer_on_host}): micro_s for every micro-step in which some
 * rank has work (ZeRO-3 gathers and reduce-scatter; under --sync step a step's sync point pays
 * it once per such micro-step), step_s once per optimizer step with work (DDP's all-reduce,
 * CPU Adam under offload). optimizer_on_host (zero3-offload): the measured GPU optimizer step
 * is not part of dp_wall_s (it stays in compute_wall_s and optimizer_s). */
typedef struct {
    double micro_s;
    double step_s;
    int optimizer_on_host;
} CommTimes;

/* recs: n records of a plan run, any order; micro_steps per step. step_optimizer_s: per step
 * (n_steps), may be NULL. */
void run_metrics_compute(const MbRow *recs, int64_t n, int world_size, SyncModel sync, int micro_steps,
                         const double *step_optimizer_s, int n_steps, CommTimes comm, double peak_flops,
                         RunMetrics *out);

/* DP wall time of each optimizer step (n_steps values into out), same rules. */
void run_step_walls(const MbRow *recs, int64_t n, int world_size, SyncModel sync, int micro_steps,
                    const double *step_optimizer_s, int n_steps, CommTimes comm, double *out);

#endif
