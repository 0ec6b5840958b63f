#include "common/stats.h"

#include <math.h>
#include <stdlib.h>

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

double median(const double *x, size_t n)
{
    double *c = malloc((n ? n : 1) * sizeof *c);
    if (!c) return NAN;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i])) c[k++] = x[i];
    qsort(c, k, sizeof *c, cmp_double);
    double m = k == 0 ? NAN : k % 2 ? c[k / 2] : 0.5 * (c[k / 2 - 1] + c[k / 2]);
    free(c);
    return m;
}
