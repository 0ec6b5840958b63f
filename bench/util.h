/* Small shared helpers for the CLI side: error reporting and all-or-nothing file output. */
#ifndef LABENCH_UTIL_H
#define LABENCH_UTIL_H

#include <stdio.h>
#include <stddef.h>

/* Exit status for unusable input (bad file, bad option, no GPU, out of memory). */
#define EXIT_BAD_INPUT 2

/* Prints "labench: <message>" to stderr and exits with EXIT_BAD_INPUT. */
void die_input(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Under --dp real (bench/dp.c) every rank must hear of one rank's fatal error: the hook gets the
 * message instead of stderr and must not return. NULL: print and exit as usual. */
void die_set_hook(void (*hook)(const char *msg));

/* Output written to PATH.tmp.<pid> and renamed over PATH only on success, so a failed run never
 * leaves a half-written file. atomic_open creates missing parent folders. */
typedef struct {
    FILE *f;
    char path[4096];
    char tmp[4200];
} AtomicFile;
int atomic_open(AtomicFile *af, const char *path, char *err, size_t errlen);
int atomic_commit(AtomicFile *af, char *err, size_t errlen);   /* fclose + rename */
void atomic_abort(AtomicFile *af);                              /* fclose + unlink */

/* mkdir -p; 0 on success. */
int make_dirs(const char *path);

/* Monotonic wall clock in seconds. */
double wall_seconds(void);

/* One convention for every subcommand's options: an option with a value takes it as
 * `--name VALUE` or `--name=VALUE`. If argv[*i] is option `name` in either form, returns its
 * value (advancing *i past a separate VALUE); else NULL. A missing VALUE exits 2. */
const char *cli_opt_value(int argc, char **argv, int *i, const char *name);

/* Strict number parsing for options and files: the whole string must be the number.
 * Return 0 on success, -1 on junk, overflow or out-of-range. */
int parse_i64(const char *s, long long min, long long max, long long *out);
int parse_f64(const char *s, double min, double max, double *out);

#endif
