/* A measured run read for fitting: `labench predict`'s source and the planners' --cost-from. */
#ifndef LABENCH_MEASURED_H
#define LABENCH_MEASURED_H

#include <stddef.h>

#include "bench/analysis/predict.h"
#include "model/config.h"
#include "strategies/strategy.h"

/* The measured runs of a `labench train` results file, through the one results reader: every
 * number there is checked and bounded by the plan config, and the rows are in plan order. 0, or
 * -1 with err naming the file and what it lacks (a plan-only file, a missing column, a busy
 * micro-batch without a time, no run at all). */
int measured_load(const char *path, Measured *m, char *err, size_t errlen);

/* The measured cost model of a `labench train` results file, for the planners (`labench plan
 * --cost-from`, `labench train --cost-from`): the fit, pooled over the file's strategies (every
 * 5th micro-batch held back), as per_token = a, per_token_sq = b, per_segment = c and per_row = d
 * (one row per micro-batch in packs), in seconds. *fit and *model (may be NULL) get the fit and
 * the file's model. 0, or -1 with err naming the file. */
int measured_cost_model(const char *path, CostModel *cost, TimeFit *fit, ModelConfig *model, char *err,
                        size_t errlen);

#endif
