/* Results JSON: what a run measured, in a schema other tools (report, compare, predict, and
 * anything a user writes) can read. Schema documented in README.md ("Results JSON"). */
#ifndef LABENCH_RESULTS_H
#define LABENCH_RESULTS_H

#include <jansson.h>

#include "bench/analysis/plan_metrics.h"
#include "bench/run/run.h"
#include "model/config.h"
#include "strategies/strategy.h"

#define RESULTS_SCHEMA "labench-results"
#define RESULTS_SCHEMA_VERSION 1

typedef struct {
    const char *name;
    PlanConfig cfg;
    PlanMetrics plan;
    const RunResult *run;        /* NULL for a plan-only comparison */
    SeqWeight *weights;          /* per sequence (a sample of them): length, weight x M, weight x mean M */
    int n_weights;
    int64_t *step_seqs;          /* M of each optimizer step (every stride-th step, stride below) */
    int n_step_seqs, step_seqs_stride;
    json_t *device_prediction;   /* plan.device_prediction (`plan --device`), or NULL; borrowed */
} StrategyResult;

typedef struct {
    const char *kind;            /* "plan" or "train" */
    const char *command;         /* the command line, as typed */
    /* input */
    const char *len_dist;        /* path of the .hist or lengths list */
    int64_t samples;
    double len_scale;
    const char *task;            /* training data task (bench/input/task.h), NULL for a plan */
    int64_t val_samples;         /* held-out validation sequences (0: none) */
    uint64_t seed;
    /* training (kind == "train") */
    const char *backend;         /* "cpu" / "cuda" */
    const char *device;
    double peak_flops;
    const char *peak_flops_source;
    const char *attention;       /* which attention kernels ran and why; NULL: no choice */
    const char *dtype;
    const ModelConfig *model;
    size_t n_params;
    int steps;
    int recompute;
    const char *comm;            /* communication model name */
    CommTimes comm_times;
    const char *comm_source;     /* what the communication figures are: modelled from what, or measured */
    json_t *comm_detail;         /* bandwidths and their sources (comm_to_json), or NULL */
    const char *profile;         /* off | basic | full */
    const char *cupti_status;    /* "collecting", or why not */
    double cupti_overhead;       /* tokens/s lost to CUPTI: t_on / t_off - 1 */
    int cupti_overhead_set;
    const char *trace_path;
    const char *dp;              /* "simulated" or "real" (--dp); NULL: simulated */
    int dp_ranks;                /* real: the processes that ran */
    StrategyResult *strategies;
    int n_strategies;
} ResultsDoc;

json_t *results_to_json(const ResultsDoc *doc);
/* Writes atomically (temp name, then rename). 0, or -1 with err. */
int results_write(const char *path, const ResultsDoc *doc, char *err, size_t errlen);
/* The CPU's model name, for the "machine" object and for REPORT.md headers. */
void machine_cpu_name(char *buf, size_t n);

#endif
