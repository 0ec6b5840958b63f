/* `labench report` and `labench compare`: render results JSON (read by bench/results/results_read.c) as
 * REPORT.md or CSV with gnuplot plots, and gate regressions against a committed baseline. */
#ifndef LABENCH_REPORT_H
#define LABENCH_REPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "bench/results/results_read.h"

/* ---- the DP timeline of one optimizer step (bench/results/timeline.c) ---- */

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

/* ---- --dp real results (bench/results/report_dp.c) ---- */

/* 1 when the file ran real ranks (config.dp == "real"). */
int results_dp_real(const ResultsFile *rf);
/* REPORT.md's "Real ranks against the simulation" section; nothing for simulated runs. */
void md_dp_real(FILE *f, const ResultsFile *rf);

/* ---- `plan --device` predictions (bench/results/report_device.c) ---- */

/* REPORT.md's "Predicted on WxDEVICE" section, with LongAlign's hours for its setup; nothing
 * for files without plan.device_prediction. */
void md_device_prediction(FILE *f, const ResultsFile *rf);

/* ---- labench report (bench/results/report.c) ---- */

typedef enum { REPORT_MD = 0, REPORT_CSV = 1 } ReportFormat;

typedef struct {
    const char *out_path;        /* REPORT.md (or .csv) */
    const char *plots_dir;       /* NULL: "<folder of out_path>/plots" */
    const char *scripts_dir;     /* the gnuplot scripts (plots/NAME.gp); NULL: ./plots, else ../plots from the binary */
    ReportFormat format;
    int no_plots;                /* 1: render without plots, and say so */
} ReportOptions;

/* Writes the report of n results files. 0, or -1 with err (unreadable or invalid
 * results, unwritable output). A missing gnuplot is not an error: the report says why it has no
 * images. */
int report_generate(const char *const *inputs, int n_inputs, const ReportOptions *opt, char *err, size_t errlen);


/* ---- labench compare (bench/results/compare.c) ---- */

#define COMPARE_DEFAULT_TOLERANCE 0.05
/* compare_files' status for unusable input (the CLI's exit status 2). */
#define COMPARE_UNUSABLE 2

/* "5%" or "0.05" -> 0.05. 0, or -1 when it is neither a percentage nor a fraction below 1. */
int parse_tolerance(const char *s, double *out);

/* Prints a table of per-strategy deltas to out (may be NULL) and returns 0 (no regression),
 * 1 (a strategy's effective tokens/s fell, or its peak memory grew, by more than tolerance), or
 * 2 with err when either file is unusable or the two ran different configs or devices (err
 * names the differing fields). */
int compare_files(const char *baseline, const char *current, double tolerance, FILE *out, char *err,
                  size_t errlen);


#endif
