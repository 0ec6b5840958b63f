/* packing-bfd: best-fit decreasing. Sequences longest first, each into the open row whose free
 * space is the smallest that still holds it, else a new row of L. The long sequences claim rows
 * first and the many short ones fill the gaps, which is what lifts packing efficiency far above
 * next-fit. Rows are then shuffled and dealt W per sync point.
 *
 * Open rows sit in buckets by free space, one stack per bucket, and a 64-ary bit tree over the
 * buckets finds the smallest non-empty bucket that fits in a few word operations: O(n) after
 * the O(n) radix sort. A bucket is one token wide (exact best fit) up to L = 2^22; above that
 * buckets widen to keep the index at 2^22 entries (16 MiB), and a sequence only goes to a bucket
 * that surely holds it, i.e. best fit to within the bucket width. */
#include "strategies/bit_tree.h"
#include "strategies/strategy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


void packs_free(Packs *packs)
{
    free(packs->start);
    free(packs->items);
    memset(packs, 0, sizeof *packs);
}

int bins_best_fit(int32_t L, const int32_t *len, int64_t n, int32_t *free_tokens, int32_t *n_bins, int32_t *bin_of)
{
    const int shift = bucket_shift(L);
    const int64_t n_buckets = ((int64_t)L >> shift) + 1;
    size_t cap = (size_t)*n_bins + (size_t)(n > 0 ? n : 0) + 1;
    int32_t *next = malloc(cap * sizeof *next), *head = malloc((size_t)n_buckets * sizeof *head);
    BitTree bt;
    int ok = bit_tree_init(&bt, n_buckets) == 0 && next && head;
    if (ok) {
        for (int64_t b = 0; b < n_buckets; b++) head[b] = -1;
        /* Open bins sit in the bucket of their free space; bucket 0 can hold nothing (full). */
        for (int32_t r = 0; r < *n_bins; r++) {
            int64_t nb = free_tokens[r] >> shift;
            if (nb <= 0) continue;
            next[r] = head[nb];
            if (head[nb] < 0) bit_set(&bt, nb);
            head[nb] = r;
        }
        for (int64_t j = 0; j < n; j++) {
            int64_t want = ((int64_t)len[j] + (INT64_C(1) << shift) - 1) >> shift;
            int64_t b = bit_next(&bt, want);
            int32_t r;
            if (b < 0) {
                r = (*n_bins)++;
                free_tokens[r] = L;
            } else {
                r = head[b];
                head[b] = next[r];
                if (head[b] < 0) bit_clear(&bt, b);
            }
            free_tokens[r] -= len[j];
            int64_t nb = free_tokens[r] >> shift;
            if (nb > 0) {
                next[r] = head[nb];
                if (head[nb] < 0) bit_set(&bt, nb);
                head[nb] = r;
            }
            bin_of[j] = r;
        }
    }
    free(next);
    free(head);
    bit_tree_free(&bt);
    return ok ? 0 : -1;
}

int packs_bfd_items(const Plan *p, const Sample *samples, const int32_t *items, int64_t n, Packs *out)
{
    memset(out, 0, sizeof *out);
    size_t m = n > 0 ? (size_t)n : 1;
    uint64_t *keys = malloc(m * sizeof *keys), *tmp = malloc(m * sizeof *tmp);
    int32_t *len = malloc(m * sizeof *len), *bin_of = malloc(m * sizeof *bin_of);
    int32_t *free_tokens = malloc(m * sizeof *free_tokens);
    out->items = malloc(m * sizeof *out->items);
    int ok = keys && tmp && len && bin_of && free_tokens && out->items;
    if (ok) {
        /* Longest first; equal lengths in the items' order. */
        for (int64_t j = 0; j < n; j++)
            keys[j] = ((uint64_t)(uint32_t)(INT32_MAX - samples[items[j]].len) << 32) | (uint64_t)j;
        plan_sort_u64(keys, tmp, n);
        for (int64_t j = 0; j < n; j++) len[j] = INT32_MAX - (int32_t)(keys[j] >> 32); /* no random access */
        int32_t n_rows = 0;
        ok = bins_best_fit(p->cfg.max_tokens, len, n, free_tokens, &n_rows, bin_of) == 0;
        /* Rows as index lists (counting sort by row, keeping the longest-first order). */
        out->n_rows = n_rows;
        out->start = ok ? calloc((size_t)n_rows + 1, sizeof *out->start) : NULL;
        ok = out->start != NULL;
        if (ok) {
            for (int64_t j = 0; j < n; j++) out->start[bin_of[j] + 1]++;
            for (int32_t r = 0; r < n_rows; r++) out->start[r + 1] += out->start[r];
            int32_t *fill = free_tokens; /* packing is done: reuse its memory as cursors */
            memcpy(fill, out->start, (size_t)n_rows * sizeof *fill);
            for (int64_t j = 0; j < n; j++) out->items[fill[bin_of[j]]++] = items[keys[j] & 0xffffffffu];
        }
    }
    free(keys);
    free(tmp);
    free(len);
    free(bin_of);
    free(free_tokens);
    if (!ok) {
        packs_free(out);
        return -1;
    }
    return 0;
}

int packs_bfd(const Plan *p, const Sample *samples, int64_t n, int epoch, Packs *out)
{
    memset(out, 0, sizeof *out);
    int32_t *order = plan_epoch_order(p, n, epoch);
    if (!order) return -1;
    int rc = packs_bfd_items(p, samples, order, n, out);
    free(order);
    return rc;
}

static int plan_bfd(Plan *p, const Sample *samples, int64_t n, char *err, size_t errlen)
{
    for (int e = 0; e < p->cfg.epochs; e++) {
        Packs packs;
        if (packs_bfd(p, samples, n, e, &packs) != 0) {
            snprintf(err, errlen, "out of memory packing %lld samples", (long long)n);
            return -1;
        }
        int32_t *order = malloc(((size_t)packs.n_rows + 1) * sizeof *order);
        if (!order) {
            packs_free(&packs);
            snprintf(err, errlen, "out of memory shuffling %d rows", packs.n_rows);
            return -1;
        }
        /* BFD leaves the rows sorted by their longest sequence; shuffle so steps mix. */
        for (int32_t r = 0; r < packs.n_rows; r++) order[r] = r;
        Rng rng = plan_rng(p, PLAN_STREAM_ROWS, e);
        rng_shuffle_i32(&rng, order, packs.n_rows);
        int64_t first_row = p->n_rows;
        for (int32_t i = 0; i < packs.n_rows; i++) {
            int32_t r = order[i];
            plan_add_row(p, samples, &packs.items[packs.start[r]], packs.start[r + 1] - packs.start[r], 0, 0);
        }
        free(order);
        packs_free(&packs);
        if (plan_deal(p, first_row, 1, err, errlen) != 0) return -1;
    }
    plan_set_weights(p, 1);
    return 0;
}

const Strategy STRATEGY_PACKING_BFD = {
    "packing-bfd", "best-fit-decreasing packs of <= L tokens, shuffled; Eq. 2 loss weights", plan_bfd, 1,
};
