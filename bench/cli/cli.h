/* Subcommands of the labench CLI, each in its own file; main.c dispatches. Each returns the
 * process exit status (0 ok, 1 regression for compare, 2 unusable input). */
#ifndef LABENCH_CLI_H
#define LABENCH_CLI_H

#include "strategies/strategy.h"

int cmd_train(int argc, char **argv, const char *command_line);   /* bench/cli/cmd_train.c */
int cmd_plan(int argc, char **argv, const char *command_line);    /* bench/cli/cmd_train.c */

int cmd_grad(int argc, char **argv);                               /* bench/cli/cmd_grad.c */

/* --strategy's value (NULL or "all": every registered strategy, in registry order; else a
 * comma-separated list) into out (room for N_STRATEGIES); exits 2 naming a bad name. Returns the
 * count. (bench/cli/cmd_train.c) */
int select_strategies(const char *spec, const Strategy **out);

#endif
