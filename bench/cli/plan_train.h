/* What `labench plan` and `labench train` share: their options, drawing the samples, the
 * planners' cost model, planning every chosen strategy and the results document. The commands
 * themselves are bench/cli/cmd_plan.c and bench/cli/cmd_train.c. */
#ifndef LABENCH_PLAN_TRAIN_H
#define LABENCH_PLAN_TRAIN_H

#include <stdint.h>
#include <stdio.h>

#include "bench/analysis/device_model.h"
#include "bench/comm/comm_model.h"
#include "bench/input/plan_export.h"
#include "bench/results/results.h"
#include "bench/run/dp.h"
#include "bench/run/val_loss.h"
#include "model/config.h"
#include "profile/cupti.h"
#include "strategies/strategy.h"

#define DEFAULT_LEN_DIST "data/longalign-mix.hist"
/* 1/8: 64k-token packs become 8192 tokens, the longest that runs every strategy in about the
 * 2.5 minutes the old 1/16 default took on two cores (README, "The CPU default, honestly"). */
#define CPU_DEFAULT_LEN_SCALE (1.0 / 8.0)
#define CPU_DEFAULT_STEPS 8
#define GPU_DEFAULT_STEPS 10

typedef struct {
    int train;                    /* 0: plan only */
    const char *strategy;
    const char *len_dist, *lengths;
    long long samples;
    double len_scale;
    int len_scale_set;
    long long world_size, micro_batch, grad_accum, max_tokens, epochs, seed;
    int sync;                     /* -1 unset */
    const char *out;
    long long steps, layers;
    const char *backend, *model, *dtype, *save_model, *load_model;
    int recompute, progress;
    double lr, weight_decay, clip;
    const char *trace;            /* Chrome trace path, NULL: none */
    ProfLevel profile;
    CommOptions comm;             /* --comm, --system, bandwidths (bench/comm/comm_model.h) */
    int measure_pcie;             /* --measure-pcie: replace the PCIe default by a measurement */
    const char *task;             /* --task (default TASK_DEFAULT) */
    long long val_samples;        /* --val-samples, -1: val_default_count */
    long long val_every;          /* --val-every, 0: after the last step only */
    long long sequences;          /* --sequences, 0: --steps decides */
    DpMode dp;                    /* --dp simulated (default) | real */
    double dp_timeout;            /* --dp-timeout seconds */
    int dp_check, dp_share_gpus;  /* --dp-check, --dp-share-gpus */
    const char *cost_from;        /* --cost-from: the planners' cost model fitted to a measured run */
    /* the device model (`plan --device`; bench/analysis/device_model.h) */
    const char *device, *dm_value[DM_N_PARAMS];
    int pack_full, no_recompute, device_opts;
    const char *emit_batches;     /* --emit-batches OUT.jsonl[.gz] (plan): the plan for a training job */
    const char *attention;        /* --attention auto | cudnn | wmma (train); NULL: the backend's default */
} Options;

/* The usage of plan (train 0) or train. */
void options_usage(FILE *f, int train);

/* Defaults, then argv (argv[0]: the command's name); exits 2 on a bad option, 0 after --help. */
void options_parse(int argc, char **argv, Options *o, int train);

/* The planners' cost model: fitted to a measured run (--cost-from), else the trained model's
 * layer shape (trained), else (plan: trained NULL) the 7b layer's. Says which on stdout. */
CostModel planners_cost_model(const Options *o, const ModelConfig *trained);

/* Every chosen strategy's plan config (malloc'ed, n entries), each checked before anything is
 * read, runs or is written. */
PlanConfig *strategy_configs(const Options *o, const Strategy *const *chosen, int n, const CostModel *cost);

/* Loads the distribution and draws the samples (exit 2 with file:line on bad input), after
 * checking that planning them with every chosen strategy fits in memory; prints their summary. */
void draw_samples(const Options *o, const Strategy *const *chosen, const PlanConfig *cfgs, int n_strat,
                  Sample **samples, int64_t *n);
/* The one-line summary of the samples ("labench: N samples from FILE ..."). */
void print_samples(const Options *o, const Sample *samples, int64_t n);

/* What `plan` does with each plan beyond scoring it, while the plan is alive. */
typedef struct {
    /* --device: the device model, the model and the communication it predicts with */
    int device;
    DeviceModel dm;
    ModelConfig model;
    const CommConfig *comm;
    DmPlanPrediction *pred;       /* one per strategy, filled by plan_strategies */
    /* --emit-batches: the plan written for a training job (bench/input/plan_export.h) */
    const char *emit_path;
    PlanExportSource emit;
} PlanExtras;

/* Plans every strategy and scores its plan into results[i] (name, config, metrics, weights,
 * M per step, and with x the device model's prediction and the exported batches). plans: keep each plan there (train),
 * or NULL to free each at once (plan). val and ids (train): the held-out set, checked disjoint
 * from every plan. */
void plan_strategies(const Options *o, const Strategy *const *chosen, const PlanConfig *cfgs, int n_strat,
                     const Sample *samples, int64_t n_samples, const ValSet *val, const int64_t *ids, Plan *plans,
                     StrategyResult *results, const PlanExtras *x);
void strategy_results_free(StrategyResult *results, int n);

/* The fields plan and train both fill. */
void results_doc_init(ResultsDoc *doc, const Options *o, const char *command_line, int64_t n_samples,
                      StrategyResult *results, int n);
/* Writes doc to out; 0, or EXIT_BAD_INPUT after saying why. */
int results_doc_write(const char *out, const ResultsDoc *doc);

#endif
