/* Plan-level metrics: what a plan costs and buys before anything runs (no model, no clock).
 * Definitions in DESIGN.md "Measurements" and docs/strategies.md "Plan metrics". */
#ifndef LABENCH_PLAN_METRICS_H
#define LABENCH_PLAN_METRICS_H

#include <stdint.h>

#include "strategies/strategy.h"

typedef struct {
    int64_t optimizer_steps, micro_batches /*non-empty*/, rows, sequences, truncated;
    int64_t real_tokens, computed_tokens /*incl. pads*/, target_tokens;
    double padding_ratio;        /* pad tokens / computed tokens */
    double packing_efficiency;   /* real tokens / sum of row capacity */
    double token_imbalance;      /* mean over sync points of (max_r tokens_r / mean_r tokens_r - 1) */
    double predicted_bubble;     /* DESIGN.md DP bubble fraction with t_r = cost-model time of rank r */
    double predicted_wall;       /* sum over sync points of max_r t_r, in cost units */
    double weight_min, weight_max;     /* min/max over sequences of (effective weight * M), ideal 1 */
    double weight_share_longest10;     /* share of all weight held by the longest 10% of sequences */
    double weight_share_longest10_ideal; /* the same share if every sequence weighed 1/M of its step */
    double plan_seconds;         /* filled by the caller that timed plan_make */
} PlanMetrics;

/* Fills m from the plan (plan_seconds left 0). samples: the array the plan was made from, used
 * to rank sequences by their length before truncation; NULL ranks by the planned length. */
void plan_metrics_compute(const Plan *p, const Sample *samples, PlanMetrics *m);

/* A synthetic stand-in for LongAlign's mix, for benches and tests that need no file: one sample
 * in 9 is a long document uniform in 8k-64k tokens with a 100-1000 token response, the rest
 * log-normal chat under 8k (median ~900) with about a third of their tokens as response.
 * Seeded; out has room for n. */
void plan_synthetic_mix(Sample *out, int64_t n, uint64_t seed);

/* `labench bench-plan [--samples N] [--len-dist F] [--seed S]` (bench/cmd_bench_plan.c): times
 * plan_make for every strategy at its default config. argv[0] is the command name. Returns the
 * exit status (0, or 2 on bad input). */
int cmd_bench_plan(int argc, char **argv);

#endif
