/* A 64-ary bit tree over n buckets: set, clear, and the next set bucket at or after i (or the
 * previous one at or before i) in a few word operations. Shared by the planners that keep open
 * packs in buckets (packing_bfd.c by free space, packing_fair.c by need). */
#ifndef LABENCH_BIT_TREE_H
#define LABENCH_BIT_TREE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Buckets over token counts 0..L: one per token up to 2^22 buckets, wider (2^shift tokens each)
 * beyond, so an index stays a few MiB whatever L is. */
#define BUCKETS_MAX (1 << 22)
static inline int bucket_shift(int64_t L)
{
    int shift = 0;
    while ((L >> shift) >= BUCKETS_MAX) shift++;
    return shift;
}

/* Level 0 has one bit per bucket, level k+1 one bit per non-zero word of level k; the top level
 * is a single word. */
typedef struct {
    int levels;
    uint64_t *bits[8];
    int64_t words[8];
} BitTree;

static inline int bit_tree_init(BitTree *t, int64_t n)
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

static inline void bit_tree_free(BitTree *t)
{
    for (int k = 0; k < t->levels; k++) free(t->bits[k]);
}

static inline void bit_set(BitTree *t, int64_t i)
{
    for (int k = 0; k < t->levels; k++, i >>= 6) {
        uint64_t *w = &t->bits[k][i >> 6];
        int had_any = *w != 0;
        *w |= UINT64_C(1) << (i & 63);
        if (had_any) return; /* the levels above already know this word is non-empty */
    }
}

static inline void bit_clear(BitTree *t, int64_t i)
{
    for (int k = 0; k < t->levels; k++, i >>= 6) {
        uint64_t *w = &t->bits[k][i >> 6];
        *w &= ~(UINT64_C(1) << (i & 63));
        if (*w) return;
    }
}

/* Smallest set index >= i, or -1. Climb until a word has a set bit at or after the position,
 * then descend along lowest set bits. */
static inline int64_t bit_next(const BitTree *t, int64_t i)
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

/* Largest set index <= i, or -1. */
static inline int64_t bit_prev(const BitTree *t, int64_t i)
{
    if (i < 0) return -1;
    int k = 0;
    for (;;) {
        if (k == t->levels) return -1;
        int64_t w = i >> 6;
        if (w >= t->words[k]) { /* past the end: start from the last bucket of this level */
            w = t->words[k] - 1;
            i = (w << 6) | 63;
        }
        uint64_t m = t->bits[k][w] & (~UINT64_C(0) >> (63 - (i & 63)));
        if (m) {
            i = (w << 6) | (63 - __builtin_clzll(m));
            break;
        }
        if (w == 0) return -1;
        i = w - 1;
        k++;
    }
    while (k-- > 0) i = (i << 6) | (63 - __builtin_clzll(t->bits[k][i]));
    return i;
}

#endif
