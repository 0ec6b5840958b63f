/* The sampler: draws training samples {len, target} from a length distribution, seeded, so
 * every machine draws the same samples for the same (histogram, n, scale, seed). */
#ifndef LABENCH_SAMPLE_H
#define LABENCH_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "bench/input/hist.h"
#include "strategies/strategy.h"

/* Most samples one draw may produce (each is 8 bytes; 10^9 is already 8 GB). */
#define SAMPLE_MAX_COUNT INT64_C(1000000000)

/* Stream constant for rng_seed: keeps the sampler's draws independent of the planners' for the
 * same user seed. */
#define SAMPLE_RNG_STREAM UINT64_C(0x73616d706c657273)   /* "samplers" */

/* Draws samples from h into a fresh array *out (caller frees) of *n_out samples.
 *  n <= 0: the histogram's own composition: every bin gives exactly `count` samples.
 *  n > 0:  n samples, each from a bin picked with probability count / total.
 * Lengths are uniform within the bin (a bin from 0: from 1), then scaled: len = max(1, llround(len * len_scale)); a
 * token target is scaled the same way, a percentage applies to the scaled length, and the
 * target is clamped to [min(1, len-1), len-1]. Samples come out in the order drawn.
 * Returns 0, or -1 with err set (bad scale, more than SAMPLE_MAX_COUNT samples, a scaled
 * length over 2^31-1, out of memory). */
int sample_draw(const Hist *h, int64_t n, double len_scale, uint64_t seed,
                Sample **out, int64_t *n_out, char *err, size_t errlen);

/* Summary of a sample set, for the CLI to print. Lengths use the nearest-rank percentile
 * (median = p50: the smallest length with at least half the samples at or below it). */
typedef struct {
    int64_t count;
    int64_t tokens;     /* sum of lengths */
    int64_t targets;    /* sum of target tokens */
    double mean_len;
    int64_t min_len, median_len, p90_len, max_len;
} SampleStats;

/* Fills st (all zero for n <= 0). Percentiles come from a count per length (a sorted copy when
 * a length is over 2^22); if that allocation fails they are set to -1 and the rest is still
 * filled. */
void sample_stats(const Sample *s, int64_t n, SampleStats *st);

#endif
