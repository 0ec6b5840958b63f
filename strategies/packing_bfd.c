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
#include "strategies/strategy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BFD_MAX_BUCKETS (1 << 22)

/* Level 0 has one bit per bucket, level k+1 one bit per non-zero word of level k; the top level
 * is a single word. */
typedef struct {
    int levels;
    uint64_t *bits[8];
    int64_t words[8];
} BitTree;

static int bit_tree_init(BitTree *t, int64_t n)
{
    memset(t, 0, sizeof *t);
    do {
        n = (n + 63) / 64;
        t->words[t->levels] = n;
        t->bits[t->levels] = calloc((size_t)n, sizeof(uint64_t));
        if (!t->bits[t->levels++]) return -1;
    } while (n > 1);
    return 0;
}

static void bit_tree_free(BitTree *t)
{
    for (int k = 0; k < t->levels; k++) free(t->bits[k]);
}

static void bit_set(BitTree *t, int64_t i)
{
    for (int k = 0; k < t->levels; k++, i >>= 6) {
        uint64_t *w = &t->bits[k][i >> 6];
        int had_any = *w != 0;
        *w |= UINT64_C(1) << (i & 63);
        if (had_any) return; /* the levels above already know this word is non-empty */
    }
}

static void bit_clear(BitTree *t, int64_t i)
{
    for (int k = 0; k < t->levels; k++, i >>= 6) {
        uint64_t *w = &t->bits[k][i >> 6];
        *w &= ~(UINT64_C(1) << (i & 63));
        if (*w) return;
    }
}

/* Smallest set index >= i, or -1. Climb until a word has a set bit at or after the position,
 * then descend along lowest set bits. */
static int64_t bit_next(const BitTree *t, int64_t i)
{
    int k = 0;
    for (;;) {
        if (k == t->levels) return -1;
        int64_t w = i >> 6;
        if (w < t->words[k]) {
            uint64_t m = t->bits[k][w] & (~UINT64_C(0) << (i & 63));
            if (m) {
                i = (w << 6) | __builtin_ctzll(m);
                break;
            }
        }
        i = w + 1;
        k++;
    }
    while (k-- > 0) i = (i << 6) | __builtin_ctzll(t->bits[k][i]);
    return i;
}

void packs_free(Packs *packs)
{
    free(packs->start);
    free(packs->items);
    memset(packs, 0, sizeof *packs);
}

int packs_bfd(const Plan *p, const Sample *samples, int64_t n, int epoch, Packs *out)
{
    memset(out, 0, sizeof *out);
    const int32_t L = p->cfg.max_tokens;
    int shift = 0;
    while ((L >> shift) >= BFD_MAX_BUCKETS) shift++;
    const int64_t n_buckets = ((int64_t)L >> shift) + 1;
    size_t m = n > 0 ? (size_t)n : 1;
    int32_t *order = plan_epoch_order(p, n, epoch);
    uint64_t *keys = malloc(m * sizeof *keys), *tmp = malloc(m * sizeof *tmp);
    int32_t *row_of = malloc(m * sizeof *row_of), *free_tokens = malloc(m * sizeof *free_tokens);
    int32_t *next = malloc(m * sizeof *next), *head = malloc((size_t)n_buckets * sizeof *head);
    BitTree bt;
    int ok = bit_tree_init(&bt, n_buckets) == 0;
    out->items = malloc(m * sizeof *out->items);
    ok = ok && order && keys && tmp && row_of && free_tokens && next && head && out->items;
    if (ok) {
        /* Longest first; equal lengths in the epoch's random order, so each epoch (and seed)
         * puts different samples together. */
        for (int64_t j = 0; j < n; j++)
            keys[j] = ((uint64_t)(uint32_t)(INT32_MAX - samples[order[j]].len) << 32) | (uint64_t)j;
        plan_sort_u64(keys, tmp, n);
        for (int64_t b = 0; b < n_buckets; b++) head[b] = -1;
        int32_t n_rows = 0;
        for (int64_t j = 0; j < n; j++) {
            int32_t len = INT32_MAX - (int32_t)(keys[j] >> 32); /* from the key: no random access */
            int64_t want = ((int64_t)len + (INT64_C(1) << shift) - 1) >> shift;
            int64_t b = bit_next(&bt, want);
            int32_t r;
            if (b < 0) {
                r = n_rows++;
                free_tokens[r] = L;
            } else {
                r = head[b];
                head[b] = next[r];
                if (head[b] < 0) bit_clear(&bt, b);
            }
            free_tokens[r] -= len;
            int64_t nb = free_tokens[r] >> shift; /* bucket 0 can hold nothing: the row is full */
            if (nb > 0) {
                next[r] = head[nb];
                if (head[nb] < 0) bit_set(&bt, nb);
                head[nb] = r;
            }
            row_of[j] = r;
        }
        /* Rows as index lists (counting sort by row, keeping the longest-first order). */
        out->n_rows = n_rows;
        out->start = calloc((size_t)n_rows + 1, sizeof *out->start);
        ok = out->start != NULL;
        if (ok) {
            for (int64_t j = 0; j < n; j++) out->start[row_of[j] + 1]++;
            for (int32_t r = 0; r < n_rows; r++) out->start[r + 1] += out->start[r];
            int32_t *fill = next; /* packing is done: reuse its memory as cursors */
            memcpy(fill, out->start, (size_t)n_rows * sizeof *fill);
            for (int64_t j = 0; j < n; j++) out->items[fill[row_of[j]]++] = order[keys[j] & 0xffffffffu];
        }
    }
    free(order);
    free(keys);
    free(tmp);
    free(row_of);
    free(free_tokens);
    free(next);
    free(head);
    bit_tree_free(&bt);
    if (!ok) {
        packs_free(out);
        return -1;
    }
    return 0;
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
