/* The --dp real part of the results (the rest of a real run's RunResult is written like any). */
#ifndef LABENCH_RESULTS_DP_H
#define LABENCH_RESULTS_DP_H

#include <stdio.h>

#include <jansson.h>

#include "bench/run/dp.h"

/* run.dp_real of the results JSON (README, "Results JSON"). New reference. */
json_t *dp_real_json(const DpReal *d);
/* The table beside the training table: per strategy, the simulation of this run's own compute
 * (modelled communication) against the measured run: bubble, communication, tokens/s. */
void dp_print_comparison(FILE *f, const char *const *names, const RunResult *const *runs, int n);

#endif
