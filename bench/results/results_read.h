/* Reading results JSON back: the one reader of the schema bench/results/results.c writes (schema
 * "labench-results", version 1; README "Results JSON"), used by `labench report`, `compare`
 * and `predict`.
 *
 * The reader validates as it goes and stops at the first problem, with a message naming the file
 * and the JSON path ("r.json: strategies[1] (sorted): run.micro_batches_detail[3][1] (micro) =
 * 12 is outside 0..11 (plan_config.grad_accum 12)"). Every integer is range-checked before it is
 * converted; a strategy's plan config is checked as the planner checks it; its micro-batch rows
 * must be exactly one per (step, micro-step, rank) of the steps it ran, so what report draws
 * and predict fits is bounded by the file. Fields it does not know are ignored: writers add
 * fields, never rename or remove one. */
#ifndef LABENCH_RESULTS_READ_H
#define LABENCH_RESULTS_READ_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/analysis/plan_metrics.h"
#include "bench/analysis/run_metrics.h"
#include "strategies/strategy.h"

/* The most a results file may hold (it is read whole). */
#define RESULTS_MAX_BYTES ((size_t)1 << 30)

/* Columns of run.micro_batch_columns the reader knows; step, micro, rank and seconds are
 * required, the others optional (RepRun.columns says which a file has). */
enum {
    MB_COL_ROWS = 1 << 0,
    MB_COL_SEQUENCES = 1 << 1,
    MB_COL_SEGMENTS = 1 << 2,
    MB_COL_REAL_TOKENS = 1 << 3,
    MB_COL_COMPUTED_TOKENS = 1 << 4,
    MB_COL_SUM_SEQ_LEN_SQ = 1 << 5,
    MB_COL_LOSS = 1 << 6,
    MB_COL_ALL = (1 << 7) - 1,
};

/* run.micro_batches_detail reads into MbRow (bench/analysis/run_metrics.h). A column the file
 * lacks reads as 0 (rows as 1), a null seconds or loss as NAN. */

/* run.dp_real of a --dp real run, as the report shows it (absent figures read as NAN, absent
 * strings as NULL). The three figures, simulated against measured: */
enum { DPR_BUBBLE, DPR_COMM, DPR_TOKENS_PER_S, DPR_N };   /* dp_bubble_fraction, comm_seconds, effective_tokens_per_s */
typedef struct {
    long long ranks;
    const char *pattern, *transport;
    int weights_identical;
    double simulated[DPR_N], measured[DPR_N], difference_percent[DPR_N];
} RepDpReal;

/* machine.blas (absent strings read as NULL). */
typedef struct {
    const char *library, *version, *core, *core_isa, *threading, *coretype_env, *suggested_coretype;
    long long threads;           /* -1 when absent */
    int fallback;
} RepBlas;

/* Measured numbers of one strategy's run. A number written as JSON null reads as NAN ("n/a"). */
typedef struct {
    int steps;
    double effective_tps, dp_bubble, padding, mfu, dp_wall_s, final_loss;
    double peak_mib;             /* peak_memory_bytes / 2^20 */
    double gpu_idle;             /* run.gpu_idle_fraction; NAN when the file has none */
    double *loss_curve, *step_wall_s, *optimizer_step_s;   /* n_loss, n_steps, n_steps (optimizer: zeros if absent) */
    int n_loss, n_steps;
    MbRow *mbs;          /* steps x grad_accum x world_size, in plan order:
                                    mbs[(step * A + micro) * W + rank] */
    int64_t n_mbs;
    unsigned columns;            /* MB_COL_* present in the file */
    RepDpReal *dp_real;          /* run.dp_real; NULL for a simulated run */
} RepRun;

typedef struct {
    const char *name;
    const json_t *plan_config;   /* as written (compare checks it field by field) */
    PlanConfig cfg;              /* as read, checked by plan_config_check */
    int world_size;              /* cfg.world_size */
    const char *sync;            /* "micro" or "step" */
    PlanMetrics plan;
    const json_t *weights;       /* plan.weights: [[length, weight x M], ...], or NULL */
    const json_t *weights_epoch; /* plan.weights_epoch: [[length, weight x mean M], ...], or NULL */
    const json_t *step_seqs;     /* plan.step_sequences: M of every stride-th step, or NULL */
    int step_seqs_stride;
    RepRun *run;                 /* NULL: plan only */
    /* plan.device_prediction (`labench plan --device`); device NULL when absent */
    struct {
        const char *device, *model;
        double wall_seconds, tokens_per_s, mfu, bubble_fraction, comm_seconds;
    } dev;
} RepStrategy;

typedef struct {
    char path[4096];
    json_t *root;                /* every string below points into it */
    const char *kind;            /* "plan" or "train" */
    const char *created, *commit, *command;
    /* machine */
    const char *hostname, *cpu, *backend, *device, *gpu, *peak_flops_source;
    long long cores;
    double peak_flops;
    int has_blas;                /* machine.blas is there (older files lack it) */
    RepBlas blas;
    int dp_real;                 /* config.dp is "real" */
    /* config */
    const char *len_dist;
    long long samples, seed;
    double len_scale;
    int has_model;               /* train files: the fields below are set */
    const char *model_preset, *dtype, *comm;
    int vocab, hidden, intermediate, layers, heads, kv_heads, head_dim, steps, recompute;
    long long params;            /* config.model.params (0 when the file has none) */
    double comm_per_sync_s;
    RepStrategy *strategies;
    int n_strategies;
} ResultsFile;

/* Reads and validates one results file ("-" is stdin). 0, or -1 with err naming the file and
 * the field that is missing or wrong; on failure *rf is left empty. */
int results_read(const char *path, ResultsFile *rf, char *err, size_t errlen);
void results_file_free(ResultsFile *rf);

/* 1 when the numbers come from the CPU reference backend (never to be read as GPU numbers). */
int results_is_cpu(const ResultsFile *rf);
/* Lower-case file-name form of a device name: "NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3". */
void device_slug(const char *device, char *out, size_t n);
/* The strategy called name, or NULL. */
const RepStrategy *results_find(const ResultsFile *rf, const char *name);

#endif
