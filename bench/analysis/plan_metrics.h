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
    double rank_utilisation;     /* real tokens / (W x sum over sync points of max_r computed tokens_r):
                                    multipack's "utilization" */
    double weight_min, weight_max;     /* min/max over sequences of (effective weight * M), ideal 1 */
    /* Over the epoch. Under AdamW a sequence moves the model by about 1/M of its step whatever the
     * normalisation, so every sequence counts the same only if every step has the same M. */
    double weight_share_longest10;     /* share of all weight held by the longest 10% of sequences */
    double weight_share_longest10_uniform; /* that share if every sequence weighed the same over the
                                              epoch: ceil(n/10)/n, i.e. 10% up to rounding */
    double weight_share_longest10_ideal; /* per-step ideal: the share if every sequence weighed 1/M of
                                            its step (Eq. 2 in each step); hides M's spread */
    double step_seqs_min, step_seqs_max, step_seqs_mean, step_seqs_cv; /* M over optimizer steps that
                                            have a target (CV: population std / mean) */
    double weight_epoch_p1, weight_epoch_p99; /* percentiles over sequences of effective weight x mean M
                                                 (1 for every sequence when all count the same) */
    double weight_epoch_spread;  /* weight_epoch_p99 / weight_epoch_p1 */
    /* Over the full steps only (every micro-step of every rank busy; NAN when none is), as the
     * multipack sampler reports its figures: it drops an epoch's partial last step. */
    double full_step_efficiency, full_step_utilisation, full_step_bubble;
    double plan_seconds;         /* filled by the caller that timed plan_make */
} PlanMetrics;

/* The Eq. 2 verdict on a plan over the epoch (docs/strategies.md "Plan metrics"): 1 when every
 * sequence weighs 1/M of its step (weight_min and weight_max within 1% of 1), the longest 10% of
 * sequences hold their uniform share within +-1 point, and M varies by at most 15% (CV) across
 * steps. */
int plan_metrics_fair(const PlanMetrics *m);
/* Which of the three fails, as bits (0: fair): the weights inside a step, the longest 10%'s
 * share, M's CV. */
enum { PLAN_UNFAIR_WEIGHTS = 1, PLAN_UNFAIR_SHARE = 2, PLAN_UNFAIR_STEP_M = 4 };
int plan_metrics_unfair(const PlanMetrics *m);
#define PLAN_FAIR_SHARE_TOLERANCE 0.01
#define PLAN_FAIR_STEP_SEQS_CV 0.15

/* Fills m from the plan (plan_seconds left 0). samples: the array the plan was made from, used
 * to rank sequences by their length before truncation; NULL ranks by the planned length. */
void plan_metrics_compute(const Plan *p, const Sample *samples, PlanMetrics *m);

/* M of every optimizer step: sequences with a target (out has room for p->n_steps). */
void plan_step_sequences(const Plan *p, int64_t *out);

/* One sequence's loss weight: its planned length, its effective weight (sum of its tokens'
 * weights) x M of its step (1 under Eq. 2), and x the plan's mean M (1 when every sequence
 * counts the same over the epoch). */
typedef struct {
    int32_t len;
    double step_rel, epoch_rel;
} SeqWeight;
/* Up to max sequences with a target, spread evenly over the plan; step_m[s] is step s's M
 * (plan_step_sequences). *out is malloc'ed. Returns the count (0 with *out NULL when out of memory
 * or none). */
int plan_seq_weights(const Plan *p, const int64_t *step_m, int max, SeqWeight **out);

/* A synthetic stand-in for LongAlign's mix, for benches and tests that need no file: one sample
 * in 9 is a long document uniform in 8k-64k tokens with a 100-1000 token response, the rest
 * log-normal chat under 8k (median ~900) with about a third of their tokens as response.
 * Seeded; out has room for n. */
void plan_synthetic_mix(Sample *out, int64_t n, uint64_t seed);


#endif
