/* The prediction of `labench predict` (and the planners' --cost-from): fit each strategy's
 * per-micro-batch time to the batch's shape from a measured run, then predict other cluster sizes
 * and length distributions without running them, compute only and with the communication model
 * side by side (docs/communication.md). Reading the run is bench/results/measured.c's; the
 * command is bench/cli/cmd_predict.c. */
#ifndef LABENCH_PREDICT_H
#define LABENCH_PREDICT_H

#include <stdint.h>

#include "bench/analysis/run_metrics.h"
#include "bench/comm/comm_model.h"
#include "model/config.h"
#include "strategies/strategy.h"


/* t = per_token * computed_tokens + per_token_sq * sum_seq_len_sq + per_segment * segments
 *     + intercept, in seconds, every coefficient >= 0. */
typedef struct {
    double per_token, per_token_sq, per_segment, intercept;
    int64_t n_fit, n_holdout;        /* busy micro-batches fitted / held back */
    double fit_r2;                   /* on the fitted ones */
    double holdout_mape;             /* mean |pred - t| / t on the held-back ones (NaN: none) */
    double holdout_wape;             /* sum |pred - t| / sum t on them: the error in total time */
    double holdout_r2;               /* 1 - SSE/SST on the held-back ones (NaN: none, or SST = 0) */
    int64_t max_tokens;              /* largest computed_tokens fitted */
    double max_sum_sq;               /* largest sum_seq_len_sq fitted */
    int dropped;                     /* bit mask of terms forced to 0 (1 token, 2 sq, 4 intercept,
                                        8 segment): the data left them unidentified or negative */
} TimeFit;

/* Least squares over the busy records (rows > 0) with non-negative coefficients, holding back
 * every holdout_every-th busy record (0: none) to measure the error. 0, or -1 with err (fewer
 * than 5 records to fit, or nothing solvable). */
int time_fit(const MbRow *x, const double *seconds, int64_t n, int holdout_every, TimeFit *f, char *err,
             size_t errlen);
double time_fit_eval(const TimeFit *f, const MbRow *s);   /* 0 for an idle rank */
/* The fit's terms in the order of TimeFit's dropped bits: "per_computed_token", ... */
#define TIME_FIT_TERMS 4
const char *time_fit_term_name(int term);

/* Shape of one planned micro-batch, computed the way bench/run/batch.c builds it. */
void predict_mb_shape(const Plan *p, const MicroBatch *mb, MbRow *out);

/* Data-parallel wall time of a run, compute only and with communication.
 * Sync points: (step, micro-step) under --sync micro, steps under --sync step; only those where
 * some rank has work count. Communication: comm->per_micro_step_s per micro-step with work plus
 * comm->per_step_s per step with work (the same total under either sync model).
 *   compute_wall = sum over sync points of max_r t_r + optimizer_per_step x steps
 *   comm_wall    = sum over sync points of max_r t_r + communication
 *                  + optimizer_per_step x steps, unless comm->optimizer_on_host
 *   bubble       = sum over sync points of sum_r (max - t_r) / (W x wall)  (for each wall) */
typedef struct {
    int64_t steps, micro_steps, sync_points;   /* with work */
    int64_t micro_batches, real_tokens, computed_tokens;
    int64_t max_mb_tokens;
    double max_mb_sum_sq;
    double max_sum_s;        /* sum over sync points of max_r t_r */
    double bubble_s;         /* sum over sync points of sum_r (max - t_r) */
    double optimizer_s;      /* GPU optimizer time in the compute-only wall */
    double comm_s;           /* communication total */
    double compute_wall_s, comm_wall_s;
    double bubble, bubble_comm;
    double eff_tps, eff_tps_comm;   /* real tokens / wall */
} DpPrediction;

/* shapes and t: n_steps * micro_steps * W entries in plan order ((step * A + micro) * W + rank).
 * comm may be NULL (no communication). */
void predict_dp(const MbRow *shapes, const double *t, int n_steps, int micro_steps, int W, SyncModel sync,
                double optimizer_per_step_s, const CommCost *comm, DpPrediction *out);

/* Times every micro-batch of the plan with the fit and fills out. 0, or -1 when out of memory. */
int predict_plan(const Plan *p, const TimeFit *f, double optimizer_per_step_s, const CommCost *comm,
                 DpPrediction *out);

/* LongAlign (arXiv 2401.18058) Figure 5: training hours on 8x A800 with DeepSpeed ZeRO-3 + CPU
 * offload, 2 epochs, for naive batching, packing (with loss weighting) and sorted batching. The one
 * copy of the paper's table: predict, the report and the training table all read it. */
typedef struct {
    const char *model;           /* as the paper names it */
    const char *preset;          /* labench's --model preset of that shape */
    double naive_h, packing_h, sorted_h;
} LongAlignHours;
extern const LongAlignHours LONGALIGN_FIG5[];
extern const int N_LONGALIGN_FIG5;

/* One strategy's measured run (from a results file: bench/results/measured.c). */
typedef struct {
    char name[32];
    const Strategy *strategy;
    PlanConfig cfg;
    int n_steps;                 /* steps recorded */
    MbRow *shapes;             /* n_steps * A * W, plan order */
    double *secs;
    double optimizer_s;          /* median measured optimizer step */
    TimeFit fit;
    int fitted;
    char not_fitted[256];        /* why not, when fitted is 0 */
    double replay_measured_s, replay_predicted_s;   /* sum over sync points of max_r t_r */
} MeasuredStrategy;

typedef struct {
    const char *path;
    ModelConfig model;
    double n_params;
    char len_dist[1024];
    int64_t samples;
    double len_scale;
    uint64_t seed;
    char device[256], commit[64];
    MeasuredStrategy *strats;
    int n;
} Measured;

/* Fits every strategy (pooled: one fit over all of them, shared), and replays each fitted
 * strategy's own micro-batches (replay_*). A strategy with too few micro-batches stays unfitted
 * with the reason in not_fitted. 0, or -1 with err: nothing could be fitted, or out of memory. */
int measured_fit(Measured *m, int holdout_every, int pooled, char *err, size_t errlen);
void measured_free(Measured *m);

/* One prediction: a strategy at a world size. */
typedef struct {
    const MeasuredStrategy *src;
    PlanConfig cfg;
    DpPrediction dp;
    int extrapolated;            /* beyond 1.5x the largest measured micro-batch */
} Prediction;

/* Effective tokens/s of strategy `name` over naive's among p[0..n) (with_comm: with the
 * communication model), NAN when either is missing. */
double prediction_speedup(const Prediction *p, int n, const char *name, int with_comm);

/* Predicted speed-ups over naive beside LongAlign's: [0] compute only, [1] with communication. */
typedef struct {
    int world_size;
    double packing[2], sorted[2];
} Fig5Prediction;

#endif
