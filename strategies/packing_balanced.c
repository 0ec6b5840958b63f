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

/* Balances the w packs rows[0..w) and appends them to the plan, one per rank. */
static void emit_group(Plan *p, const Sample *s, const Packs *packs, const int32_t *rows, int w, BalanceWork *wk)
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
    balance_emit(p, s, w, g, w < 16 ? 4 * w : 64, wk);
}

static int balanced_epoch(Plan *p, const Sample *s, int64_t n, int e, BalanceWork *wk, char *err, size_t errlen)
{
    Packs packs;
    if (packs_bfd(p, s, n, e, &packs) != 0) {
        snprintf(err, errlen, "out of memory packing %lld samples", (long long)n);
        return -1;
    }
    const int W = p->cfg.world_size;
    int32_t nr = packs.n_rows;
    int64_t n_full = nr / W, partial = nr % W;
    Keyed *rc = malloc(((size_t)nr + 1) * sizeof *rc);
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
        rc[r].index = r;
        rc[r].key = p->cfg.cost.per_row;
        for (int32_t i = packs.start[r]; i < packs.start[r + 1]; i++)
            rc[r].key += seg_cost(&p->cfg.cost, s[packs.items[i]].len);
    }
    qsort(rc, (size_t)nr, sizeof *rc, keyed_desc);
    for (int32_t r = 0; r < nr; r++) sorted_rows[r] = rc[r].index;
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
    BalanceWork wk;
    if (balance_work_init(&wk, n, p->cfg.world_size) != 0) {
        snprintf(err, errlen, "out of memory balancing %lld samples", (long long)n);
        return -1;
    }
    int rc = 0;
    for (int e = 0; rc == 0 && e < p->cfg.epochs; e++) rc = balanced_epoch(p, samples, n, e, &wk, err, errlen);
    balance_work_free(&wk);
    if (rc != 0) return -1;
    plan_set_weights(p, 1);
    return 0;
}

const Strategy STRATEGY_PACKING_BALANCED = {
    "packing-balanced", "BFD packs grouped and evened by estimated cost per sync point; Eq. 2 weights",
    plan_balanced, 1,
};
