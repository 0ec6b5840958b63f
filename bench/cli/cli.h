/* The labench command line: one table of commands (bench/cli/main.c, which also prints the usage
 * from it), one option layer (bench/cli/options.c), one cmd_<name>.c per command. This folder is
 * the top of the stack and the only place that turns an error into a message and exit status 2. */
#ifndef LABENCH_CLI_H
#define LABENCH_CLI_H

#include "strategies/strategy.h"

/* Exit status for unusable input (bad file, bad option, no GPU, out of memory). */
#define EXIT_BAD_INPUT 2

/* Prints "labench: <message>" to stderr and exits with EXIT_BAD_INPUT. */
void die_input(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Under --dp real every rank must hear of one rank's fatal error: the hook (dp_fail) gets the
 * message instead of stderr and does not return. NULL: print and exit as usual. */
void die_set_hook(void (*hook)(const char *msg));

/* One convention for every command's options: an option with a value takes it as
 * `--name VALUE` or `--name=VALUE`. If argv[*i] is option `name` in either form, returns its
 * value (advancing *i past a separate VALUE); else NULL. A missing VALUE exits 2. */
const char *cli_opt_value(int argc, char **argv, int *i, const char *name);

/* Option values, checked: the value of --name as an integer (a real) in [min, max], or exit 2
 * with "--name must be ... (got 'VALUE')". */
long long cli_int(const char *name, const char *v, long long min, long long max);
double cli_real(const char *name, const char *v, double min, double max);

/* --world-size LIST (predict): comma-separated sizes from 1 to max_w, at most CLI_MAX_WORLD_SIZES
 * of them, into out; returns the count, or exits 2 naming the bad size. */
#define CLI_MAX_WORLD_SIZES 16
int cli_world_sizes(const char *v, int max_w, int out[CLI_MAX_WORLD_SIZES]);

/* --strategy's value (NULL or "all": every registered strategy, in registry order; else a
 * comma-separated list) into out (room for N_STRATEGIES); exits 2 naming a bad name. Returns the
 * count. */
int select_strategies(const char *spec, const Strategy **out);

/* Every command: argv[0] is the command's name, command_line the whole line as typed (for the
 * results files). Returns the exit status (0 ok, 1 regression for compare, 2 unusable input). */
typedef int (*CommandFn)(int argc, char **argv, const char *command_line);

int cmd_train(int argc, char **argv, const char *command_line);        /* cmd_train.c */
int cmd_plan(int argc, char **argv, const char *command_line);         /* cmd_plan.c */
int cmd_report(int argc, char **argv, const char *command_line);       /* cmd_report.c */
int cmd_compare(int argc, char **argv, const char *command_line);      /* cmd_compare.c */
int cmd_predict(int argc, char **argv, const char *command_line);      /* cmd_predict.c */
/* `labench predict --device`: the device model (cmd_predict_device.c); cmd_predict hands over to it
 * when predict_wants_device says the arguments name a --device. */
int cmd_predict_device(int argc, char **argv, const char *command_line);
int predict_wants_device(int argc, char **argv);
int cmd_hist(int argc, char **argv, const char *command_line);         /* cmd_hist.c */
int cmd_dp_check(int argc, char **argv, const char *command_line);     /* cmd_dp_check.c */
int cmd_grad(int argc, char **argv, const char *command_line);         /* cmd_grad.c */
int cmd_bench_plan(int argc, char **argv, const char *command_line);   /* cmd_bench_plan.c */

#endif
