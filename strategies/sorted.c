/* sorted: LongAlign's sort_and_group. Sort by length, cut groups of W*B neighbours, shuffle the
 * groups; each micro-step deals one group across the ranks, so ranks that sync together hold
 * sequences of about the same length and pad little. */
#include "strategies/strategy.h"

#include <stdio.h>
#include <stdlib.h>

static int sorted_epoch(Plan *p, const Sample *samples, int64_t n, int e, int32_t *order,
                        uint64_t *keys, uint64_t *tmp, int32_t *out, char *err, size_t errlen)
{
    /* A random permutation as the low half of the key breaks length ties at random, so another
     * seed groups equal lengths differently. */
    Rng rng = plan_rng(p, PLAN_STREAM_ORDER, e);
    for (int64_t i = 0; i < n; i++) order[i] = (int32_t)i;
    rng_shuffle_i32(&rng, order, n);
    for (int64_t j = 0; j < n; j++) keys[j] = ((uint64_t)samples[order[j]].len << 32) | (uint64_t)j;
    plan_sort_u64(keys, tmp, n);

    /* Groups are cut from the longest end, so the one short group (n mod W*B sequences) holds
     * the shortest; it goes last, which keeps every step but the epoch's last one full. */
    int64_t G = (int64_t)p->cfg.world_size * p->cfg.micro_batch;
    int64_t partial = n % G, n_full = n / G;
    int32_t *group = malloc((n_full > 0 ? (size_t)n_full : 1) * sizeof *group);
    if (!group) {
        snprintf(err, errlen, "out of memory grouping %lld samples", (long long)n);
        return -1;
    }
    for (int64_t g = 0; g < n_full; g++) group[g] = (int32_t)g;
    Rng grng = plan_rng(p, PLAN_STREAM_GROUPS, e);
    rng_shuffle_i32(&grng, group, n_full);
    int64_t k = 0;
    for (int64_t g = 0; g < n_full; g++) {
        int64_t base = partial + (int64_t)group[g] * G;
        for (int64_t j = 0; j < G; j++) out[k++] = order[keys[base + j] & 0xffffffffu];
    }
    for (int64_t j = 0; j < partial; j++) out[k++] = order[keys[j] & 0xffffffffu];
    free(group);
    return plan_add_padded(p, samples, out, n, err, errlen);
}

static int plan_sorted(Plan *p, const Sample *samples, int64_t n, char *err, size_t errlen)
{
    size_t m = n > 0 ? (size_t)n : 1;
    int32_t *order = malloc(m * sizeof *order), *out = malloc(m * sizeof *out);
    uint64_t *keys = malloc(m * sizeof *keys), *tmp = malloc(m * sizeof *tmp);
    int rc = 0;
    if (!order || !out || !keys || !tmp) {
        snprintf(err, errlen, "out of memory sorting %lld samples", (long long)n);
        rc = -1;
    }
    for (int e = 0; rc == 0 && e < p->cfg.epochs; e++)
        rc = sorted_epoch(p, samples, n, e, order, keys, tmp, out, err, errlen);
    free(order);
    free(out);
    free(keys);
    free(tmp);
    if (rc != 0) return -1;
    plan_set_weights(p, 0);
    return 0;
}

const Strategy STRATEGY_SORTED = {
    "sorted", "LongAlign sort_and_group: length-sorted groups of W*B, groups shuffled", plan_sorted, 0,
};
