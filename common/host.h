/* Facts of the host and the moment: clock, memory, hostname, source commit, time of day. */
#ifndef LABENCH_HOST_H
#define LABENCH_HOST_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic wall clock in seconds. */
double wall_seconds(void);

/* A "Key:   N kB" line of a /proc file (/proc/meminfo, /proc/self/status): N in bytes, or -1
 * when the file or the key is not there. */
int64_t proc_kb_field(const char *path, const char *key);

void host_name(char *buf, size_t n);
void source_commit(char *buf, size_t n);   /* git commit of the working directory, or "unknown" */
void utc_now_iso(char *buf, size_t n);

/* The command line as typed (argv joined by spaces, cut to n - 1 bytes), for results files. */
void command_line_join(int argc, char **argv, char *buf, size_t n);

#endif
