#include "common/parse.h"

#include <errno.h>
#include <stdlib.h>

int parse_i64(const char *s, long long min, long long max, long long *out)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end != 0 || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int parse_f64(const char *s, double min, double max, double *out)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno == ERANGE || *end != 0 || !(v >= min && v <= max)) return -1;
    *out = v;
    return 0;
}
