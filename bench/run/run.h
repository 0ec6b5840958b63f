/* The runner: executes a plan on one backend's training step, timing every simulated rank's
 * micro-batch, and turns the records into metrics. It never re-plans. */
#ifndef LABENCH_RUN_H
#define LABENCH_RUN_H

#include "bench/run/batch.h"
#include "bench/input/task.h"
#include "bench/run/val_loss.h"
#include "bench/analysis/run_metrics.h"
#include "kernels/backend.h"
#include "model/model.h"
#include "profile/cupti.h"
#include "profile/trace.h"
#include "strategies/strategy.h"

typedef struct {
    int steps;               /* optimizer steps to run; <= 0: the whole plan */
    ModelConfig model;
    AdamWConfig opt;
    float max_grad_norm;
    uint64_t seed;           /* model init and data: the same for every strategy */
    int recompute;
    int progress;            /* 1: a live progress line on stderr */
    CommTimes comm;          /* modelled communication (bench/comm/comm_model.c) */
    const float *init_params;/* optional: start from these weights instead of a seeded init */
    int cupti;               /* 1: CUPTI is collecting (prof_cupti_start succeeded) */
    Trace *trace;            /* optional: Chrome trace to add this strategy's tracks to */
    int trace_kernel_limit;  /* most GPU kernel slices one strategy adds to the trace */
    int64_t sequences;       /* > 0: instead of `steps`, the fewest steps that train on this many
                                sequences (steps_for_sequences): the same data for every strategy */
    const int64_t *sample_ids;  /* identity of each plan sample (TrainSet.ids), NULL: its index */
    const ValSet *val;       /* optional held-out set, evaluated after the last step, and with
                                val_every > 0 also before the first and every val_every steps */
    int val_every;
} RunConfig;

#define RUN_MAX_STEPS 1000000    /* the most optimizer steps --steps asks for (and a results file holds) */

#define RUN_TOP_KERNELS 10

/* Where the GPU's time went inside the ranks' micro-batches (CUPTI; zero elsewhere). */
typedef struct {
    int available;
    double window_s;         /* sum of micro-batch windows: first kernel start to last kernel end */
    double busy_s;           /* union of kernel intervals */
    double host_wait_s, kernel_gap_s, other_s;
    int n_top;
    char top_name[RUN_TOP_KERNELS][96];
    double top_s[RUN_TOP_KERNELS];
    int64_t top_count[RUN_TOP_KERNELS];
    ProfStats stats;
} GpuIdle;

typedef struct {
    RunMetrics metrics;
    MbRow *recs;          /* steps * micro_steps * W records, plan order */
    int64_t n_recs;
    int n_steps;
    double *loss_curve;      /* global loss of each optimizer step */
    double *step_wall_s;     /* DP wall time of each step */
    double *optimizer_s;     /* optimizer time of each step */
    double *grad_norm;       /* gradient norm of each step, before clipping */
    size_t peak_bytes;       /* backend allocator high-water mark during the run */
    size_t act_bytes;        /* activations and scratch */
    int max_mb_tokens;       /* activation capacity the model was sized for */
    double elapsed_s;        /* real time the whole run took (DP simulated serially) */
    double matmul_share;     /* share of compute time in matrix products, -1 unknown */
    double attention_share;  /* share of compute time in attention, -1 unknown */
    double val_op_s[2];      /* matmul and attention seconds spent in validation (excluded above) */
    char timing_source[96];
    GpuIdle gpu;
    int64_t sequences_seen;  /* training sequences of the steps run */
    ValCurves val;           /* validation losses (n_points 0 without rc->val) */
    double val_s;            /* wall time spent evaluating (in elapsed_s, not in any metric) */
    struct DpReal *dp;       /* --dp real (bench/run/dp.h): per-rank measurements; NULL when simulated */
    void (*dp_free)(struct DpReal *);   /* set with dp by dp_run_plan: run_result_free frees dp with it */
} RunResult;

/* Runs rc->steps steps of the plan; the trained weights are left in *model_out when non-NULL
 * (the caller then owns it and calls model_free). 0, or -1 with err (e.g. out of memory). */
int run_plan(Backend *be, const Plan *plan, const RunConfig *rc, const Task *task, RunResult *out,
             Model *model_out, char *err, size_t errlen);
void run_result_free(RunResult *r);

/* ---- the parts run_plan and the real data-parallel runner (bench/run/dp.c) share ---- */

/* Sizes and creates the model (seeded or rc->init_params) and the batch buffer, and allocates
 * out's per-step arrays and n_recs_per_step records per step. 0, or -1 with err (nothing left
 * allocated). */
int run_setup(Backend *be, const Plan *plan, const RunConfig *rc, int n_recs_per_step, RunResult *out, Model *m,
              BatchBuf *bb, char *err, size_t errlen);
/* A record's shape from the micro-batch just built (tokens, segments, FLOPs). */
void run_record_shape(MbRow *rec, const RunConfig *rc, const Plan *plan, const MicroBatch *mb,
                      const BatchBuf *bb);
/* One validation point into out->val (outside every timed span). 0, or -1 with err. */
int run_evaluate(Model *m, const RunConfig *rc, const Task *task, int step, int64_t seen, RunResult *out, char *err,
                 size_t errlen);

/* Seconds the backend takes for the first k non-empty micro-batches of the plan's first step
 * (forward and backward, no update): used to measure the profiler's own overhead. */
double run_calibrate(Backend *be, const Plan *plan, const RunConfig *rc, const Task *task, int k);

/* Adds one strategy's tracks to a Chrome trace: a track per simulated rank on the DP timeline
 * (compute slices, and the waits as "bubble" slices), a communication track, and the measured
 * serial timeline of the device ("device: measured"). t0_us offsets this strategy in time. */
void run_trace(Trace *t, const char *strategy, const RunResult *r, int world_size, SyncModel sync,
               int micro_steps, CommTimes comm, double t0_us);

#endif
