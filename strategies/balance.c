/* Evening out the estimated cost of packs that wait for each other (shared by packing-balanced
 * and packing-fair): local moves and swaps between the costliest and the cheapest pack, and
 * Karmarkar-Karp's largest differencing method for a k-way partition into equal-size parts. */
#include "strategies/strategy.h"

#include <stdlib.h>
#include <string.h>

double seg_cost(const CostModel *c, int64_t len)
{
    return c->per_token * (double)len + c->per_token_sq * (double)len * (double)len + c->per_segment;
}

int balance_work_init(BalanceWork *wk, int64_t max_items, int max_slots)
{
    size_t m = max_items > 0 ? (size_t)max_items : 1, w = max_slots > 0 ? (size_t)max_slots : 1;
    memset(wk, 0, sizeof *wk);
    wk->item = malloc(m * sizeof *wk->item);
    wk->label = malloc(m * sizeof *wk->label);
    wk->sorted = malloc(m * sizeof *wk->sorted);
    wk->hk = malloc(m * sizeof *wk->hk);
    wk->lk = malloc(m * sizeof *wk->lk);
    wk->tmp = malloc(m * sizeof *wk->tmp);
    wk->cost = malloc(w * sizeof *wk->cost);
    wk->tokens = malloc(w * sizeof *wk->tokens);
    wk->count = malloc((w + 1) * sizeof *wk->count);
    if (!wk->item || !wk->label || !wk->sorted || !wk->hk || !wk->lk || !wk->tmp || !wk->cost || !wk->tokens ||
        !wk->count) {
        balance_work_free(wk);
        return -1;
    }
    return 0;
}

void balance_work_free(BalanceWork *wk)
{
    free(wk->item);
    free(wk->label);
    free(wk->sorted);
    free(wk->hk);
    free(wk->lk);
    free(wk->tmp);
    free(wk->cost);
    free(wk->tokens);
    free(wk->count);
    memset(wk, 0, sizeof *wk);
}

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

/* One round: the best move or swap between the costliest and the cheapest slot. 1 if it lowered
 * the larger of the two, 0 when no move or swap does (or the slots are even). */
static int balance_round(const Sample *s, const CostModel *c, int64_t L, int w, int32_t g, BalanceWork *wk)
{
    int hi = 0, lo = 0;
    for (int r = 1; r < w; r++) {
        if (wk->cost[r] > wk->cost[hi]) hi = r;
        if (wk->cost[r] < wk->cost[lo]) lo = r;
    }
    double top = wk->cost[hi], gap = top - wk->cost[lo];
    if (gap <= 1e-12 * top) return 0;
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
        /* Swap with a shorter b that keeps lo within L: la - free_lo <= lb < la. The best b is the
         * one nearest the ideal cost inside that window: check both neighbours of the ideal and
         * the window's ends. */
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
    if (best_a < 0) return 0;
    int64_t la = s[wk->item[best_a]].len, lb = best_b >= 0 ? s[wk->item[best_b]].len : 0;
    double d = seg_cost(c, la) - (best_b >= 0 ? seg_cost(c, lb) : 0.0);
    wk->label[best_a] = lo;
    if (best_b >= 0) wk->label[best_b] = hi;
    wk->tokens[hi] += lb - la;
    wk->tokens[lo] += la - lb;
    wk->cost[hi] -= d;
    wk->cost[lo] += d;
    return 1;
}

int balance_slots(const Sample *s, const CostModel *c, int64_t L, int w, int32_t g, int max_rounds, BalanceWork *wk)
{
    int rounds = 0;
    while (rounds < max_rounds && balance_round(s, c, L, w, g, wk)) rounds++;
    return rounds;
}

void balance_emit(Plan *p, const Sample *s, int w, int32_t g, int max_rounds, BalanceWork *wk)
{
    balance_slots(s, &p->cfg.cost, p->cfg.max_tokens, w, g, max_rounds, wk);
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

/* ---- Karmarkar-Karp, equal-size parts ------------------------------------------------------- */

/* A partial solution: k subsets, each a linked list of items with its sum, kept sorted by sum
 * (largest first). Its key is the spread, largest sum minus smallest. */
typedef struct {
    double *sum;       /* k */
    int32_t *head;     /* k: first item of each subset */
    int32_t *tail;     /* k */
} KkState;

static double kk_spread(const KkState *st, int k) { return st->sum[0] - st->sum[k - 1]; }

/* Sorts the k subsets of a state by sum, largest first (insertion sort: k is small). */
static void kk_sort(KkState *st, int k)
{
    for (int i = 1; i < k; i++) {
        double s = st->sum[i];
        int32_t h = st->head[i], t = st->tail[i];
        int j = i;
        for (; j > 0 && st->sum[j - 1] < s; j--) {
            st->sum[j] = st->sum[j - 1];
            st->head[j] = st->head[j - 1];
            st->tail[j] = st->tail[j - 1];
        }
        st->sum[j] = s;
        st->head[j] = h;
        st->tail[j] = t;
    }
}

/* Max-heap of state indices by spread; ties by index, so the result is deterministic. */
static int kk_before(const KkState *st, int k, int32_t a, int32_t b)
{
    double x = kk_spread(&st[a], k), y = kk_spread(&st[b], k);
    return x != y ? x > y : a < b;
}

static void kk_sift_down(int32_t *heap, int32_t n, int32_t i, const KkState *st, int k)
{
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && kk_before(st, k, heap[l], heap[m])) m = l;
        if (r < n && kk_before(st, k, heap[r], heap[m])) m = r;
        if (m == i) return;
        int32_t t = heap[i]; heap[i] = heap[m]; heap[m] = t;
        i = m;
    }
}

int kk_partition_equal(const double *cost, int32_t n, int k, int32_t *part_of)
{
    if (n <= 0) return 0;
    if (k <= 1 || n % k != 0) return -1;
    const int32_t m = n / k; /* states, and items per part */
    int32_t *idx = malloc((size_t)n * sizeof *idx), *next = malloc((size_t)n * sizeof *next);
    int32_t *heap = malloc((size_t)m * sizeof *heap), *heads = malloc((size_t)m * k * 2 * sizeof *heads);
    double *sums = malloc((size_t)m * k * sizeof *sums);
    KkState *st = malloc((size_t)m * sizeof *st);
    int rc = -1;
    if (!idx || !next || !heap || !heads || !sums || !st) goto done;
    /* Items by cost, largest first (ties by index); state j holds the j-th run of k of them. */
    for (int32_t i = 0; i < n; i++) idx[i] = i;
    for (int32_t i = 1; i < n; i++) { /* insertion sort: n is a step's packs */
        int32_t v = idx[i], j = i;
        for (; j > 0 && (cost[idx[j - 1]] < cost[v] || (cost[idx[j - 1]] == cost[v] && idx[j - 1] > v)); j--)
            idx[j] = idx[j - 1];
        idx[j] = v;
    }
    for (int32_t j = 0; j < m; j++) {
        st[j].sum = &sums[(size_t)j * k];
        st[j].head = &heads[(size_t)j * k * 2];
        st[j].tail = st[j].head + k;
        for (int q = 0; q < k; q++) {
            int32_t it = idx[(size_t)j * k + q];
            st[j].sum[q] = cost[it];
            st[j].head[q] = st[j].tail[q] = it;
            next[it] = -1;
        }
        heap[j] = j;
    }
    int32_t n_heap = m;
    for (int32_t i = n_heap / 2 - 1; i >= 0; i--) kk_sift_down(heap, n_heap, i, st, k);
    /* Merge the two states of largest spread: the largest subset of one with the smallest of the
     * other, and so on, which cancels their spreads as far as possible. */
    while (n_heap > 1) {
        int32_t a = heap[0];
        heap[0] = heap[--n_heap];
        kk_sift_down(heap, n_heap, 0, st, k);
        int32_t b = heap[0];
        KkState *x = &st[a], *y = &st[b];
        for (int q = 0; q < k; q++) {
            int o = k - 1 - q;
            x->sum[q] += y->sum[o];
            next[x->tail[q]] = y->head[o];
            x->tail[q] = y->tail[o];
        }
        kk_sort(x, k);
        heap[0] = a; /* b's place: the merged state goes down from the top */
        kk_sift_down(heap, n_heap, 0, st, k);
    }
    const KkState *fin = &st[heap[0]];
    for (int q = 0; q < k; q++)
        for (int32_t it = fin->head[q]; it >= 0; it = next[it]) part_of[it] = q;
    rc = 0;
done:
    free(idx);
    free(next);
    free(heap);
    free(heads);
    free(sums);
    free(st);
    return rc;
}
