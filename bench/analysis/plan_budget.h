/* Memory a plan will need, known before anything is drawn, and what the machine has.
 *
 * A histogram of 10^8 or 10^9 samples is a few lines long, but every sample becomes 8 bytes of
 * samples, then 36 or more bytes of plan, plus each planner's scratch. `labench plan` and
 * `train` compare this estimate with MemAvailable and stop at once, naming --samples N, when it
 * will not fit, instead of swapping for minutes first. The byte counts per sample follow the
 * allocations of strategies/ and bench/analysis/plan_metrics.c; tests/test_budget.c checks them against
 * the measured peak of every registered strategy. */
#ifndef LABENCH_PLAN_BUDGET_H
#define LABENCH_PLAN_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "bench/input/hist.h"
#include "strategies/strategy.h"

/* Peak bytes of planning n_samples (mean length mean_len tokens, after any scaling) with one
 * strategy at cfg, and scoring the plan: the plan, its scratch, plan_make's truncated copy of
 * the samples and the metrics' scratch, not the samples themselves. *kept (may be NULL) gets
 * the bytes of the finished plan alone. */
int64_t plan_budget_one(const Strategy *s, const PlanConfig *cfg, int64_t n_samples, double mean_len,
                        int64_t *kept);

/* Peak bytes the whole run adds to what the process holds before drawing: the samples (8 a
 * sample), then the strategies one after another; with keep_plans (training) every finished plan stays, and the training set's copy
 * of the samples is added. *largest (may be NULL) names the strategy whose planning peaks. */
int64_t plan_budget(const Strategy *const *s, const PlanConfig *cfg, int n, int64_t n_samples,
                    double mean_len, int keep_plans, const char **largest);

/* 1 if the planner's scratch is known here (every registered strategy must be: a test says so). */
int plan_budget_knows(const Strategy *s);

/* Mean sample length h's bins give (midpoints; a bin from 0 counts from 1) times len_scale. */
double plan_budget_mean_len(const Hist *h, double len_scale);

/* Bytes of memory available: LABENCH_MEMAVAILABLE (bytes, or with a K/M/G/T suffix, powers of
 * 1024) when set, for tests and for users who want a smaller limit; else MemAvailable from
 * /proc/meminfo; -1 if neither can be read (then nothing is checked). *source (may be NULL)
 * says which. Sets err and returns -2 when LABENCH_MEMAVAILABLE is not a size. */
int64_t plan_budget_available(const char **source, char *err, size_t errlen);

/* The check `plan` and `train` run before drawing: 0 if it fits (or nothing is known), else -1
 * with err saying how much is needed, how much there is, and the --samples N that fits. */
int plan_budget_check(const Strategy *const *s, const PlanConfig *cfg, int n, int64_t n_samples,
                      double mean_len, int keep_plans, char *err, size_t errlen);

#endif
