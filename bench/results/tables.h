/* The console tables of `labench plan` and `labench train`. */
#ifndef LABENCH_TABLES_H
#define LABENCH_TABLES_H

#include "bench/analysis/device_model.h"
#include "bench/results/results.h"

/* Plan metrics per strategy, with a legend. */
void print_plan_table(const StrategyResult *r, int n);
/* Measured metrics per strategy, with the speed-up over naive and LongAlign's published ratios
 * (with_comm: also the compute-only figures). */
void print_train_table(const StrategyResult *r, int n, int with_comm);
/* `plan --device`: the device model's prediction per strategy (p[i] for r[i]). */
void print_device_table(const StrategyResult *r, const DmPlanPrediction *p, int n, const DeviceModel *d,
                        const ModelConfig *m, const CommConfig *c);

#endif
