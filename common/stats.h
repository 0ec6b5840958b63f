/* Small statistics over measured series. */
#ifndef LABENCH_STATS_H
#define LABENCH_STATS_H

#include <stddef.h>

/* Median of the values that are not NaN (the mean of the middle two for an even count); NAN
 * when there are none. O(n log n): results files hold up to a million steps. */
double median(const double *x, size_t n);

#endif
