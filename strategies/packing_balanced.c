/* packing-balanced: the packs of packing-bfd, arranged so that the W ranks of a sync point get
 * about the same estimated compute (attention is quadratic, so equal tokens are not equal time).
 *
 * 1. Best-fit-decreasing packs (same packs as packing-bfd).
 * 2. Sort the packs by cost (cfg.cost) and cut groups of W neighbours: each group is one sync
 *    point, so the ranks that wait for each other hold packs of similar cost. The groups are
 *    shuffled; the one short group (the cheapest packs) goes last.
 * 3. Inside each group, repeatedly take the costliest and the cheapest pack and move one
 *    sequence, or swap two, to bring their costs closest to the middle without going over L.
 *    Swapping only moves cost inside the group, so only the group's maximum, i.e. the wait, drops.
 */
#include "strategies/strategy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double cost;
    int32_t row;
} RowCost;

static int by_cost_desc(const void *a, const void *b)
{
    const RowCost *x = a, *y = b;
    if (x->cost != y->cost) return x->cost > y->cost ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

/* A segment's share of a row's cost: the row's per_row term does not move with it. */
static double seg_cost(const CostModel *c, int64_t len)
{
    return c->per_token * (double)len + c->per_token_sq * (double)len * (double)len;
}

/* Scratch shared by all groups of an epoch. */
typedef struct {
    int32_t *item, *label, *sorted;   /* the group's samples, their slot, slot-sorted copy */
    uint64_t *hk, *lk, *tmp;          /* (len << 32 | position) of the two rows being evened */
    double *cost;                     /* per slot */
    int64_t *tokens;                  /* per slot */
    int32_t *count;                   /* per slot + 1 */
} Work;

/* k[0..n) holds (len << 32 | position) sorted by len. First index with len >= want, and with
 * seg_cost(len) >= want: cost grows with length, so both are binary searches. */
static int64_t lower_len(const uint64_t *k, int64_t n, int64_t want)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if ((int64_t)(k[mid] >> 32) < want) lo = mid + 1; else hi = mid;
    }
    return lo;
}

static int64_t lower_cost(const CostModel *c, const uint64_t *k, int64_t n, double want)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (seg_cost(c, (int64_t)(k[mid] >> 32)) < want) lo = mid + 1; else hi = mid;
    }
    return lo;
}

static void balance_group(const Sample *s, const CostModel *c, int64_t L, int w, int32_t g, Work *wk)
{
    int max_iter = 4 * w < 64 ? 4 * w : 64;
    for (int it = 0; it < max_iter; it++) {
        int hi = 0, lo = 0;
        for (int r = 1; r < w; r++) {
            if (wk->cost[r] > wk->cost[hi]) hi = r;
            if (wk->cost[r] < wk->cost[lo]) lo = r;
        }
        double top = wk->cost[hi], gap = top - wk->cost[lo];
        if (gap <= 1e-12 * top) return;
        int64_t nh = 0, nl = 0;
        for (int32_t j = 0; j < g; j++) {
            uint64_t k = ((uint64_t)(uint32_t)s[wk->item[j]].len << 32) | (uint32_t)j;
            if (wk->label[j] == hi) wk->hk[nh++] = k;
            else if (wk->label[j] == lo) wk->lk[nl++] = k;
        }
        plan_sort_u64(wk->lk, wk->tmp, nl);
        int64_t free_lo = L - wk->tokens[lo];
        /* Moving cost d from hi to lo leaves max(top - d, cost_lo + d): best at d = gap / 2. */
        double best = top - 1e-12 * top;
        int64_t best_a = -1, best_b = -1;
        for (int64_t i = 0; i < nh; i++) {
            int64_t la = (int64_t)(wk->hk[i] >> 32);
            double fa = seg_cost(c, la);
            int64_t ja = (int64_t)(wk->hk[i] & 0xffffffffu);
            if (la <= free_lo && nh > 1) { /* move a alone, never emptying a pack */
                double m = top - fa > wk->cost[lo] + fa ? top - fa : wk->cost[lo] + fa;
                if (m < best) { best = m; best_a = ja; best_b = -1; }
            }
            /* Swap with a shorter b that keeps lo within L: la - free_lo <= lb < la. The best b
             * is the one nearest the ideal cost inside that window: check both neighbours of the
             * ideal and the window's ends. */
            int64_t lo_len = la - free_lo, hi_len = la - 1;
            if (hi_len < 1 || nl == 0) continue;
            int64_t p = lower_cost(c, wk->lk, nl, fa - gap / 2);
            int64_t cand[4] = {p - 1, p, lower_len(wk->lk, nl, lo_len), lower_len(wk->lk, nl, hi_len + 1) - 1};
            for (int q = 0; q < 4; q++) {
                if (cand[q] < 0 || cand[q] >= nl) continue;
                int64_t lb = (int64_t)(wk->lk[cand[q]] >> 32);
                if (lb < lo_len || lb > hi_len) continue;
                double d = fa - seg_cost(c, lb);
                double m = top - d > wk->cost[lo] + d ? top - d : wk->cost[lo] + d;
                if (m < best) { best = m; best_a = ja; best_b = (int64_t)(wk->lk[cand[q]] & 0xffffffffu); }
            }
        }
        if (best_a < 0) return;
        int64_t la = s[wk->item[best_a]].len, lb = best_b >= 0 ? s[wk->item[best_b]].len : 0;
        double d = seg_cost(c, la) - (best_b >= 0 ? seg_cost(c, lb) : 0.0);
        wk->label[best_a] = lo;
        if (best_b >= 0) wk->label[best_b] = hi;
        wk->tokens[hi] += lb - la;
        wk->tokens[lo] += la - lb;
        wk->cost[hi] -= d;
        wk->cost[lo] += d;
    }
}

/* Balances the w packs rows[0..w) and appends them to the plan, one per rank. */
static void emit_group(Plan *p, const Sample *s, const Packs *packs, const int32_t *rows, int w, Work *wk)
{
    const CostModel *c = &p->cfg.cost;
    int32_t g = 0;
    for (int r = 0; r < w; r++) {
        wk->cost[r] = c->per_row;
        wk->tokens[r] = 0;
        for (int32_t i = packs->start[rows[r]]; i < packs->start[rows[r] + 1]; i++) {
            int32_t len = s[packs->items[i]].len;
            wk->item[g] = packs->items[i];
            wk->label[g++] = r;
            wk->tokens[r] += len;
            wk->cost[r] += seg_cost(c, len);
        }
    }
    balance_group(s, c, p->cfg.max_tokens, w, g, wk);
    /* Counting sort by slot keeps each pack's sequences in their original order. */
    memset(wk->count, 0, ((size_t)w + 1) * sizeof *wk->count);
    for (int32_t j = 0; j < g; j++) wk->count[wk->label[j] + 1]++;
    for (int r = 0; r < w; r++) wk->count[r + 1] += wk->count[r];
    for (int32_t j = 0; j < g; j++) wk->sorted[wk->count[wk->label[j]]++] = wk->item[j];
    for (int r = 0, at = 0; r < w; r++) {
        plan_add_row(p, s, &wk->sorted[at], wk->count[r] - at, 0, 0);
        at = wk->count[r];
    }
}

static int balanced_epoch(Plan *p, const Sample *s, int64_t n, int e, Work *wk, char *err, size_t errlen)
{
    Packs packs;
    if (packs_bfd(p, s, n, e, &packs) != 0) {
        snprintf(err, errlen, "out of memory packing %lld samples", (long long)n);
        return -1;
    }
    const int W = p->cfg.world_size;
    int32_t nr = packs.n_rows;
    int64_t n_full = nr / W, partial = nr % W;
    RowCost *rc = malloc(((size_t)nr + 1) * sizeof *rc);
    int32_t *sorted_rows = malloc(((size_t)nr + 1) * sizeof *sorted_rows);
    int32_t *group = malloc(((size_t)n_full + 1) * sizeof *group);
    if (!rc || !sorted_rows || !group) {
        free(rc);
        free(sorted_rows);
        free(group);
        packs_free(&packs);
        snprintf(err, errlen, "out of memory ordering %d packs", nr);
        return -1;
    }
    for (int32_t r = 0; r < nr; r++) {
        rc[r].row = r;
        rc[r].cost = p->cfg.cost.per_row;
        for (int32_t i = packs.start[r]; i < packs.start[r + 1]; i++)
            rc[r].cost += seg_cost(&p->cfg.cost, s[packs.items[i]].len);
    }
    qsort(rc, (size_t)nr, sizeof *rc, by_cost_desc);
    for (int32_t r = 0; r < nr; r++) sorted_rows[r] = rc[r].row;
    for (int64_t g = 0; g < n_full; g++) group[g] = (int32_t)g;
    Rng rng = plan_rng(p, PLAN_STREAM_GROUPS, e);
    rng_shuffle_i32(&rng, group, n_full);

    int64_t first_row = p->n_rows;
    for (int64_t g = 0; g < n_full; g++) emit_group(p, s, &packs, &sorted_rows[(int64_t)group[g] * W], W, wk);
    if (partial > 0) emit_group(p, s, &packs, &sorted_rows[n_full * W], (int)partial, wk);
    free(rc);
    free(sorted_rows);
    free(group);
    packs_free(&packs);
    /* Every group emitted W non-empty packs (the short one last), so dealing one pack per rank
     * gives each group its own sync point. */
    return plan_deal(p, first_row, 1, err, errlen);
}

static int plan_balanced(Plan *p, const Sample *samples, int64_t n, char *err, size_t errlen)
{
    size_t m = n > 0 ? (size_t)n : 1, W = (size_t)p->cfg.world_size;
    Work wk = {malloc(m * sizeof(int32_t)), malloc(m * sizeof(int32_t)), malloc(m * sizeof(int32_t)),
               malloc(m * sizeof(uint64_t)), malloc(m * sizeof(uint64_t)), malloc(m * sizeof(uint64_t)),
               malloc(W * sizeof(double)), malloc(W * sizeof(int64_t)), malloc((W + 1) * sizeof(int32_t))};
    int rc = 0;
    if (!wk.item || !wk.label || !wk.sorted || !wk.hk || !wk.lk || !wk.tmp || !wk.cost || !wk.tokens || !wk.count) {
        snprintf(err, errlen, "out of memory balancing %lld samples", (long long)n);
        rc = -1;
    }
    for (int e = 0; rc == 0 && e < p->cfg.epochs; e++) rc = balanced_epoch(p, samples, n, e, &wk, err, errlen);
    free(wk.item);
    free(wk.label);
    free(wk.sorted);
    free(wk.hk);
    free(wk.lk);
    free(wk.tmp);
    free(wk.cost);
    free(wk.tokens);
    free(wk.count);
    if (rc != 0) return -1;
    plan_set_weights(p, 1);
    return 0;
}

const Strategy STRATEGY_PACKING_BALANCED = {
    "packing-balanced", "BFD packs grouped and evened by estimated cost per sync point; Eq. 2 weights",
    plan_balanced, 1,
};
