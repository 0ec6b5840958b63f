/* Subcommands of the labench CLI, each in its own file; main.c dispatches. Each returns the
 * process exit status (0 ok, 1 regression for compare, 2 unusable input). */
#ifndef LABENCH_CLI_H
#define LABENCH_CLI_H

#include "strategies/strategy.h"

int cmd_train(int argc, char **argv, const char *command_line);   /* bench/cli/cmd_train.c */
int cmd_plan(int argc, char **argv, const char *command_line);    /* bench/cli/cmd_train.c */

int cmd_grad(int argc, char **argv);                               /* bench/cli/cmd_grad.c */

/* issue 22: `labench predict --device` (bench/cli/cmd_predict_device.c); main.c sends predict
 * there when predict_wants_device says the arguments name a --device. */
int predict_wants_device(int argc, char **argv);
int cmd_predict_device(int argc, char **argv);

/* --strategy's value (NULL or "all": every registered strategy, in registry order; else a
 * comma-separated list) into out (room for N_STRATEGIES); exits 2 naming a bad name. Returns the
 * count. (bench/cli/cmd_train.c) */
int select_strategies(const char *spec, const Strategy **out);

#endif
