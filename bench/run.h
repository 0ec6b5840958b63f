/* The runner: executes a plan on one backend's training step, timing every simulated rank's
 * micro-batch, and turns the records into metrics. It never re-plans. */
#ifndef LABENCH_RUN_H
#define LABENCH_RUN_H

#include "bench/data.h"
#include "bench/metrics.h"
#include "kernels/backend.h"
#include "model/model.h"
#include "strategies/strategy.h"

typedef struct {
    int steps;               /* optimizer steps to run; <= 0: the whole plan */
    ModelConfig model;
    AdamWConfig opt;
    float max_grad_norm;
    uint64_t seed;           /* model init and data: the same for every strategy */
    int recompute;
    int progress;            /* 1: a live progress line on stderr */
    double comm_per_sync_s;  /* modelled communication per sync point */
    const float *init_params;/* optional: start from these weights instead of a seeded init */
} RunConfig;

typedef struct {
    RunMetrics metrics;
    MbRecord *recs;          /* steps * micro_steps * W records, plan order */
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
    char timing_source[96];
} RunResult;

/* Runs rc->steps steps of the plan; the trained weights are left in *model_out when non-NULL
 * (the caller then owns it and calls model_free). 0, or -1 with err (e.g. out of memory). */
int run_plan(Backend *be, const Plan *plan, const RunConfig *rc, const MarkovChain *mc, RunResult *out,
             Model *model_out, char *err, size_t errlen);
void run_result_free(RunResult *r);

#endif
