/* Strict number parsing for options and files: the whole string must be the number. */
#ifndef LABENCH_PARSE_H
#define LABENCH_PARSE_H

/* 0 on success, -1 on junk, overflow or out-of-range. */
int parse_i64(const char *s, long long min, long long max, long long *out);
int parse_f64(const char *s, double min, double max, double *out);

#endif
