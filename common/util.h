/* Small shared helpers for the CLI side: error reporting and all-or-nothing file output. */
#ifndef LABENCH_UTIL_H
#define LABENCH_UTIL_H

#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <jansson.h>

/* Exit status for unusable input (bad file, bad option, no GPU, out of memory). */
#define EXIT_BAD_INPUT 2

/* Prints "labench: <message>" to stderr and exits with EXIT_BAD_INPUT. */
void die_input(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Under --dp real (bench/run/dp.c) every rank must hear of one rank's fatal error: the hook gets the
 * message instead of stderr and must not return. NULL: print and exit as usual. */
void die_set_hook(void (*hook)(const char *msg));

/* "PATH: message" into err (NULL or errlen 0: nothing); returns -1, so a reader can
 * `return path_error(err, errlen, path, "...")`. */
int path_error(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

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

/* A "Key:   N kB" line of a /proc file (/proc/meminfo, /proc/self/status): N in bytes, or -1
 * when the file or the key is not there. */
int64_t proc_kb_field(const char *path, const char *key);

/* Median of the values that are not NaN (the mean of the middle two for an even count); NAN
 * when there are none. O(n log n): results files hold up to a million steps. */
double median(const double *x, size_t n);

/* What an input file says, quoted in a message: s cut to its first 80 characters ("..." marks
 * the cut), control characters shown as '?'. buf holds EXCERPT_SIZE bytes; returns buf. */
#define EXCERPT_SIZE 88
const char *excerpt(const char *s, char *buf);
/* excerpt() into a buffer of its own (a compound literal, alive to the end of the enclosing
 * block): die_input("... (got '%s')", QUOTE(value)). */
#define QUOTE(s) excerpt((s), (char[EXCERPT_SIZE]){0})

/* ---- reading input files: never a silent hang, never an unbounded read ----
 * A regular file's size is checked before anything is read. A pipe or FIFO ("-" for stdin,
 * <(...), mkfifo) is read to its end with the same bound; while nothing has been written to it,
 * labench says once on stderr what it is waiting for instead of hanging silently. Directories,
 * devices (/dev/zero, a terminal) and sockets are refused at once. */

/* "-" reads as stdin; messages call it "stdin". */
const char *input_name(const char *path);

/* Reads all of path into a NUL-terminated malloc'ed buffer (*data, *len bytes without the NUL).
 * 0, or -1 with "PATH: why" in err (cannot open, not a file, over max_bytes, read error). */
int read_input_file(const char *path, size_t max_bytes, char **data, size_t *len, char *err, size_t errlen);

/* read_input_file, then the text parsed as JSON: the root (the caller's to json_decref), or NULL
 * with the read error or "NAME:LINE: not valid JSON: why" in err (NAME: input_name(path)). */
json_t *read_json_file(const char *path, size_t max_bytes, char *err, size_t errlen);

/* Opens path for a reader that seeks: only a regular file will do (a FIFO is refused, not
 * waited on). Returns a blocking fd and fills *st, or -1 with err. */
int open_regular_file(const char *path, struct stat *st, char *err, size_t errlen);

#endif
