/* `labench report` and `labench compare`: read results JSON (bench/results.c writes it), render
 * REPORT.md or CSV with gnuplot plots, and gate regressions against a committed baseline. */
#ifndef LABENCH_REPORT_H
#define LABENCH_REPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "bench/plan_metrics.h"

/* ---- reading a results file (bench/report.c) ---- */

/* One row of run.micro_batches_detail: the columns the timeline needs. */
typedef struct {
    int step, micro, rank, rows;
    long long real_tokens, computed_tokens;
    double seconds;
} RepMicroBatch;

/* Measured numbers of one strategy's run. A number written as JSON null reads as NAN ("n/a"). */
typedef struct {
    int steps;
    double effective_tps, dp_bubble, padding, mfu, dp_wall_s, final_loss;
    double peak_mib;             /* peak_memory_bytes / 2^20 */
    double gpu_idle;             /* run.gpu_idle_fraction; NAN when the file has none */
    double *loss_curve, *step_wall_s, *optimizer_step_s;   /* n_steps each (optimizer: zeros if absent) */
    int n_loss, n_steps;
    RepMicroBatch *mbs;
    int n_mbs;
} RepRun;

typedef struct {
    const char *name;
    const json_t *plan_config;   /* as written (compare checks it field by field) */
    int world_size;
    const char *sync;            /* "micro" or "step" */
    PlanMetrics plan;
    const json_t *weights;       /* plan.weights: [[length, weight x M], ...], or NULL */
    const json_t *weights_epoch; /* plan.weights_epoch: [[length, weight x mean M], ...], or NULL */
    const json_t *step_seqs;     /* plan.step_sequences: M of every stride-th step, or NULL */
    int step_seqs_stride;
    RepRun *run;                 /* NULL: plan only */
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
    /* config */
    const char *len_dist;
    long long samples, seed;
    double len_scale;
    int has_model;               /* train files: the fields below are set */
    const char *model_preset, *dtype, *comm;
    int layers, hidden, heads, kv_heads, steps, recompute;
    long long params;
    double comm_per_sync_s;
    RepStrategy *strategies;
    int n_strategies;
} ResultsFile;

/* Reads and validates one results file. 0, or -1 with err naming the file and the field that is
 * missing or wrong (e.g. "r.json: strategies[1] (sorted): run.final_loss is missing"). */
int results_read(const char *path, ResultsFile *rf, char *err, size_t errlen);
void results_file_free(ResultsFile *rf);

/* 1 when the numbers come from the CPU reference backend (never to be read as GPU numbers). */
int results_is_cpu(const ResultsFile *rf);
/* Lower-case file-name form of a device name: "NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3". */
void device_slug(const char *device, char *out, size_t n);
/* The strategy called name, or NULL. */
const RepStrategy *results_find(const ResultsFile *rf, const char *name);

/* ---- the DP timeline of one optimizer step (bench/report.c) ---- */

typedef enum { TL_COMPUTE = 0, TL_WAIT = 1, TL_COMM = 2, TL_OPTIMIZER = 3 } TimelineKind;
typedef struct {
    int rank;
    TimelineKind kind;
    double start, end;           /* seconds from the start of the step */
} TimelineBox;

/* The step a timeline shows: the one with the median DP wall time (the lower median; the
 * earlier step on ties), or -1 when the run has no steps. */
int timeline_pick_step(const RepRun *run);
/* Boxes of optimizer step `step` for every rank, from the micro-batch rows: under sync "micro"
 * each micro-step's sync point starts when the slowest rank of the previous one finished; under
 * "step" a rank runs its micro-batches back to back and waits once. comm_s is added after each
 * sync point, the step's optimizer time at the end, so the last box ends at the step's DP wall
 * time. *boxes is malloc'ed (the caller frees). 0, or -1 out of memory. */
int timeline_build(const RepStrategy *s, int step, double comm_s, TimelineBox **boxes, int *n_boxes);

/* ---- labench report (bench/cmd_report.c) ---- */

typedef enum { REPORT_MD = 0, REPORT_CSV = 1 } ReportFormat;

typedef struct {
    const char *out_path;        /* REPORT.md (or .csv) */
    const char *plots_dir;       /* NULL: "<folder of out_path>/plots" */
    const char *scripts_dir;     /* the gnuplot scripts (plots/NAME.gp); NULL: ./plots, else ../plots from the binary */
    ReportFormat format;
    int no_plots;                /* 1: render without plots, and say so */
} ReportOptions;

/* Writes the report of n results files. 0, or EXIT_BAD_INPUT (2) with err (unreadable or invalid
 * results, unwritable output). A missing gnuplot is not an error: the report says why it has no
 * images. */
int report_generate(const char *const *inputs, int n_inputs, const ReportOptions *opt, char *err, size_t errlen);

/* `labench report RESULTS.json... -o REPORT.md [--plots-dir DIR] [--format md|csv]`; argv[0] is
 * "report". Returns the exit status. */
int cmd_report(int argc, char **argv);

/* ---- labench compare (bench/compare.c) ---- */

#define COMPARE_DEFAULT_TOLERANCE 0.05

/* "5%" or "0.05" -> 0.05. 0, or -1 when it is neither a percentage nor a fraction below 1. */
int parse_tolerance(const char *s, double *out);

/* Prints a table of per-strategy deltas to out (may be NULL) and returns 0 (no regression),
 * 1 (a strategy's effective tokens/s fell, or its peak memory grew, by more than tolerance), or
 * 2 with err when either file is unusable or the two ran different configs or devices (err
 * names the differing fields). */
int compare_files(const char *baseline, const char *current, double tolerance, FILE *out, char *err,
                  size_t errlen);

/* `labench compare BASELINE.json CURRENT.json [--tolerance 5%]`; argv[0] is "compare". */
int cmd_compare(int argc, char **argv);

#endif
