/* packing-fair: full packs, ranks that wait for each other holding the same estimated compute,
 * and every optimizer step holding the same number of sequences M, so that LongAlign's Eq. 2
 * (every sequence counts the same) holds over the epoch, not only inside each step.
 *
 * Why both at once is hard: with full packs a pack's cost is set by the Σ len² of its long
 * documents, so packs of equal cost hold documents of about equal length. packing-balanced groups
 * them by cost, and its steps then range from a handful of long documents to hundreds of chats;
 * under Eq. 2 each sequence weighs 1/M of its step, so the long ones dominate the epoch.
 * packing-fair keeps the cost grouping but chooses the short sequences (the fillers) of each
 * sync point so that every one reaches the same M: the packs of the longest documents get many
 * short chats, the packs of medium documents fewer, longer ones.
 *
 * 1. Split the epoch (its seeded order) at tau = L/8 tokens: longer sequences are cores, the rest
 *    fillers.
 * 2. P packs: enough for every token at (1 - FAIR_SLACK) fill, at least W (an epoch that fits in
 *    fewer packs than ranks is spread over the ranks), at most one per sample. The cores
 *    go longest first to the pack with the most room (LPT on tokens), which spreads them so that
 *    every pack keeps what room it can for fillers; a core that fits nowhere opens a pack. Where
 *    that opened packs, the cores go by best fit decreasing instead if it needs fewer (few or no
 *    fillers: nothing to keep room for).
 * 3. Sort the packs by their cores' Σ len² and cut groups of W neighbours: a group is one sync
 *    point (micro-step), its packs of about equal cost once full. With A = 1 a group is a step;
 *    the groups are shuffled, the short one last. With A > 1 each step takes one group from each
 *    of A cost strata (random within a stratum), so a step samples the whole range of lengths and
 *    only its micro-steps are cost-homogeneous.
 * 4. Each group should hold n x (its packs / P) sequences: its cores plus fillers, the fillers
 *    shared among its packs by free room. Fillers, longest first, go to the pack that still wants
 *    fillers whose need (room per filler wanted) is the smallest at or above the filler's length,
 *    else to the neediest; every filler still to come is shorter, so a pack gets fillers about its
 *    need and the short ones are left for the packs with little room and many to go.
 * 5. A filler no wanting pack holds goes by best fit to any pack with room; one that fits no room
 *    goes to the steps furthest below their M, or is swapped into a pack for a shorter sequence
 *    from the roomiest pack (moving scattered room to where it fits), else into a new pack at the
 *    end of the epoch. Every pack ends with at least one sequence.
 * 6. Inside each group the moves and swaps of packing-balanced even out the cost (balance.c);
 *    they keep the group's M. Under --sync step with A > 1 a rank's whole step is what waits: its
 *    A packs are then chosen by Karmarkar-Karp over the step's packs when that lowers the step's
 *    slowest rank below one pack of each cost-homogeneous group.
 *
 * Where it cannot: a document within a few hundred tokens of L leaves no room for fillers, so at
 * A = 1 its step holds W such documents and little else (docs/strategies.md, the frontier).
 */
#include "strategies/bit_tree.h"
#include "strategies/strategy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIR_SLACK 0.001 /* share of the packs' room kept free, so the fillers find places */
#define FAIR_ROUNDS_PER_SLOT 4

typedef struct {
    int32_t L;
    int32_t P;           /* packs, spill packs included */
    int32_t cap;         /* room in the per-pack arrays */
    int32_t *room;       /* per pack: free tokens */
    int32_t *count;      /* per pack: sequences */
    double *sq;          /* per pack: Σ len² of its cores */
    double *want;        /* per pack: fillers it should still get */
    int32_t *pack_of;    /* per position in the epoch order */
    int32_t *heap;       /* packs by room, for the cores */
} Fair;

/* Max-heap of packs by free room (ties: lower index), for spreading the cores. */
static int roomier(const Fair *f, int32_t a, int32_t b)
{
    return f->room[a] != f->room[b] ? f->room[a] > f->room[b] : a < b;
}

static void heap_down(Fair *f, int32_t n, int32_t i)
{
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && roomier(f, f->heap[l], f->heap[m])) m = l;
        if (r < n && roomier(f, f->heap[r], f->heap[m])) m = r;
        if (m == i) return;
        int32_t t = f->heap[i]; f->heap[i] = f->heap[m]; f->heap[m] = t;
        i = m;
    }
}

static void heap_up(Fair *f, int32_t i)
{
    while (i > 0) {
        int32_t parent = (i - 1) / 2;
        if (!roomier(f, f->heap[i], f->heap[parent])) return;
        int32_t t = f->heap[i]; f->heap[i] = f->heap[parent]; f->heap[parent] = t;
        i = parent;
    }
}

/* Pack k empty, with all of L free. */
static void pack_open(Fair *f, int32_t k)
{
    f->room[k] = f->L;
    f->count[k] = 0;
    f->sq[k] = 0;
    f->want[k] = 0;
}

/* The core at position at (l tokens) into pack k. */
static void pack_add_core(Fair *f, int32_t k, int32_t at, int32_t l)
{
    f->pack_of[at] = k;
    f->room[k] -= l;
    f->count[k]++;
    f->sq[k] += (double)l * l;
}

/* A pack's need: the filler length that would spread its room evenly over the fillers it still
 * wants (its whole room once it wants one or none). */
static double need(const Fair *f, int32_t k)
{
    double w = f->want[k] > 1.0 ? f->want[k] : 1.0;
    return (double)f->room[k] / w;
}

/* Packs in buckets by a key in [0, L] (a doubly-linked list per bucket, a bit tree over the
 * buckets): the packs that still want fillers by need, the others with room by room. */
typedef struct {
    BitTree bt;
    int shift;
    int64_t n_buckets;
    int32_t *head, *next, *prev, *bucket;
} PackIndex;

static int index_init(PackIndex *x, int32_t L, int32_t n_packs)
{
    x->shift = bucket_shift(L);
    x->n_buckets = ((int64_t)L >> x->shift) + 1;
    x->head = malloc((size_t)x->n_buckets * sizeof *x->head);
    x->next = malloc(((size_t)n_packs + 1) * sizeof *x->next);
    x->prev = malloc(((size_t)n_packs + 1) * sizeof *x->prev);
    x->bucket = malloc(((size_t)n_packs + 1) * sizeof *x->bucket);
    int ok = bit_tree_init(&x->bt, x->n_buckets) == 0 && x->head && x->next && x->prev && x->bucket;
    if (ok)
        for (int64_t b = 0; b < x->n_buckets; b++) x->head[b] = -1;
    return ok ? 0 : -1;
}

static void index_free(PackIndex *x)
{
    free(x->head);
    free(x->next);
    free(x->prev);
    free(x->bucket);
    bit_tree_free(&x->bt);
}

static void index_insert(PackIndex *x, int32_t k, double key)
{
    int64_t b = (int64_t)key >> x->shift;
    if (b >= x->n_buckets) b = x->n_buckets - 1;
    x->bucket[k] = (int32_t)b;
    x->prev[k] = -1;
    x->next[k] = x->head[b];
    if (x->head[b] >= 0) x->prev[x->head[b]] = k; else bit_set(&x->bt, b);
    x->head[b] = k;
}

static void index_remove(PackIndex *x, int32_t k)
{
    int64_t b = x->bucket[k];
    if (x->prev[k] >= 0) x->next[x->prev[k]] = x->next[k]; else x->head[b] = x->next[k];
    if (x->next[k] >= 0) x->prev[x->next[k]] = x->prev[k];
    if (x->head[b] < 0) bit_clear(&x->bt, b);
}

/* A pack with a key at or above len (the smallest such bucket), or -1. */
static int32_t index_at_least(const PackIndex *x, int64_t len)
{
    int64_t b = bit_next(&x->bt, (len + (INT64_C(1) << x->shift) - 1) >> x->shift);
    return b >= 0 ? x->head[b] : -1;
}

/* Water-filling of the fillers (positions fill[0..nf) of the order, longest first) into the
 * packs. A filler goes to the pack, among those that still want fillers, whose need is the
 * smallest at or above its length: the one it suits best, since every filler still to come is no
 * longer. A filler longer than every need goes to the neediest pack; one that pack cannot hold
 * goes by best fit to any pack with room (wanting or not). What finds no pack at all is left in
 * *left. 0, or -1 when out of memory. */
static int water_fill(Fair *f, const int32_t *fill, const int32_t *fill_len, int64_t nf, int32_t *left,
                      int64_t *n_left)
{
    PackIndex want, room;
    int ok = index_init(&want, f->L, f->P) == 0;
    ok = index_init(&room, f->L, f->P) == 0 && ok;
    *n_left = 0;
    if (ok) {
        for (int32_t k = f->P - 1; k >= 0; k--) {
            if (f->room[k] <= 0) continue;
            index_insert(&room, k, f->room[k]);
            if (f->want[k] > 0.5) index_insert(&want, k, need(f, k));
        }
        for (int64_t j = 0; j < nf; j++) {
            int32_t len = fill_len[j];
            int32_t k = index_at_least(&want, len);
            if (k < 0) {
                int64_t b = bit_prev(&want.bt, want.n_buckets - 1);
                k = b >= 0 ? want.head[b] : -1;
                if (k >= 0 && f->room[k] < len) k = -1; /* the neediest pack has no room for it */
            }
            if (k < 0) k = index_at_least(&room, len); /* best fit, wanted or not */
            if (k < 0) {
                left[(*n_left)++] = fill[j];
                continue;
            }
            int wanting = f->want[k] > 0.5;
            if (wanting) index_remove(&want, k);
            index_remove(&room, k);
            f->pack_of[fill[j]] = k;
            f->room[k] -= len;
            f->count[k]++;
            f->want[k] -= 1.0;
            if (f->room[k] <= 0) continue;
            index_insert(&room, k, f->room[k]);
            if (f->want[k] > 0.5) index_insert(&want, k, need(f, k));
        }
    }
    index_free(&want);
    index_free(&room);
    return ok ? 0 : -1;
}

/* Max-heap of ids by key[id], ties to the lower id. */
static int key_before(const double *key, int32_t a, int32_t b)
{
    return key[a] != key[b] ? key[a] > key[b] : a < b;
}

static void key_heap_down(int32_t *h, int32_t n, int32_t i, const double *key)
{
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && key_before(key, h[l], h[m])) m = l;
        if (r < n && key_before(key, h[r], h[m])) m = r;
        if (m == i) return;
        int32_t t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
}

static void key_heap_up(int32_t *h, int32_t i, const double *key)
{
    while (i > 0) {
        int32_t parent = (i - 1) / 2;
        if (!key_before(key, h[i], h[parent])) return;
        int32_t t = h[i]; h[i] = h[parent]; h[parent] = t;
        i = parent;
    }
}

/* Fillers the water-filling left (positions left[0..*n_left), longest first), each to the step
 * furthest below its M target that has room for it, into its tightest pack that holds it; a step
 * is A consecutive groups. Those no step takes stay in left[]. 0, or -1 when out of memory. */
static int top_up_steps(Fair *f, const int32_t *plen, const int32_t *sorted,
                        const int32_t *group_first, int32_t G, int A, int64_t n,
                        int32_t *left, int64_t *n_left)
{
    int32_t S = (G - 1) / A + 1;
    int32_t *first = malloc(((size_t)S + 1) * sizeof *first), *heap = malloc((size_t)S * sizeof *heap);
    int32_t *stash = malloc((size_t)S * sizeof *stash);
    double *deficit = malloc((size_t)S * sizeof *deficit);
    int ok = first && heap && stash && deficit;
    if (ok) {
        for (int32_t t = 0; t < S; t++) first[t] = group_first[(int64_t)t * A];
        first[S] = group_first[G];
        for (int32_t t = 0; t < S; t++) {
            int64_t c = 0;
            for (int32_t i = first[t]; i < first[t + 1]; i++) c += f->count[sorted[i]];
            deficit[t] = (double)n * (double)(first[t + 1] - first[t]) / (double)f->P - (double)c;
            heap[t] = t;
        }
        int32_t n_heap = S;
        for (int32_t i = n_heap / 2 - 1; i >= 0; i--) key_heap_down(heap, n_heap, i, deficit);
        int64_t kept = 0;
        for (int64_t j = 0; j < *n_left; j++) {
            int32_t len = plen[left[j]], n_stash = 0, placed = 0;
            while (n_heap > 0 && n_stash < 64 && !placed) {
                int32_t t = heap[0], best = -1;
                for (int32_t i = first[t]; i < first[t + 1]; i++) {
                    int32_t k = sorted[i];
                    if (f->room[k] >= len && (best < 0 || f->room[k] < f->room[best])) best = k;
                }
                heap[0] = heap[--n_heap];
                key_heap_down(heap, n_heap, 0, deficit);
                stash[n_stash++] = t;
                if (best < 0) continue;
                f->pack_of[left[j]] = best;
                f->room[best] -= len;
                f->count[best]++;
                deficit[t] -= 1.0;
                placed = 1;
            }
            for (int32_t q = 0; q < n_stash; q++) { /* back into the heap */
                heap[n_heap] = stash[q];
                key_heap_up(heap, n_heap++, deficit);
            }
            if (!placed) left[kept++] = left[j];
        }
        *n_left = kept;
    }
    free(first);
    free(heap);
    free(stash);
    free(deficit);
    return ok ? 0 : -1;
}

/* Placed sequences by pack (a list per pack), for the leftover pass. */
typedef struct {
    int32_t *head, *next;   /* per pack / per position */
} Placed;

static void placed_add(Placed *pl, const Fair *f, int32_t x)
{
    int32_t k = f->pack_of[x];
    pl->next[x] = pl->head[k];
    pl->head[k] = x;
}

static void placed_unlink(Placed *pl, int32_t k, int32_t x)
{
    int32_t *at = &pl->head[k];
    while (*at != x) at = &pl->next[*at];
    *at = pl->next[x];
}

static void set_room(Fair *f, PackIndex *room, int32_t k, int32_t value)
{
    if (f->room[k] > 0) index_remove(room, k);
    f->room[k] = value;
    if (value > 0) index_insert(room, k, value);
}

/* The placed fillers by length, each length's a max-heap on the room of the filler's pack (ties:
 * the earlier position), so that a swap finds in O(1) whether some pack with room >= d holds a
 * filler of length l. A filler's length never changes, only its pack and that pack's room. */
typedef struct {
    int64_t *first;   /* per length 0..max_len + 1: where its heap starts in item[] */
    int32_t *size;    /* per length */
    int32_t *item;    /* positions */
    int32_t *at;      /* per position: its index in item[] */
    int32_t max_len;
} FillHeap;

static int fh_above(const Fair *f, int32_t x, int32_t y)
{
    int32_t rx = f->room[f->pack_of[x]], ry = f->room[f->pack_of[y]];
    return rx != ry ? rx > ry : x < y;
}

static void fh_swap(FillHeap *h, int64_t i, int64_t j)
{
    int32_t t = h->item[i];
    h->item[i] = h->item[j];
    h->item[j] = t;
    h->at[h->item[i]] = (int32_t)i;
    h->at[h->item[j]] = (int32_t)j;
}

/* Restores the heap order around x after its key changed. */
static void fh_fix(FillHeap *h, const Fair *f, const int32_t *plen, int32_t x)
{
    const int64_t base = h->first[plen[x]], n = h->size[plen[x]];
    int64_t i = h->at[x] - base;
    while (i > 0 && fh_above(f, h->item[base + i], h->item[base + (i - 1) / 2])) {
        fh_swap(h, base + i, base + (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && fh_above(f, h->item[base + l], h->item[base + m])) m = l;
        if (r < n && fh_above(f, h->item[base + r], h->item[base + m])) m = r;
        if (m == i) return;
        fh_swap(h, base + i, base + m);
        i = m;
    }
}

static void fh_push(FillHeap *h, const Fair *f, const int32_t *plen, int32_t x)
{
    int64_t i = h->first[plen[x]] + h->size[plen[x]]++;
    h->item[i] = x;
    h->at[x] = (int32_t)i;
    fh_fix(h, f, plen, x);
}

/* A filler of length l in a pack other than A with room >= d, or -1: the heap's nodes with room
 * >= d, depth first; only A's own fillers (a pack's dozen or so) are stepped over. */
static int32_t fh_find(const FillHeap *h, const Fair *f, int32_t l, int32_t d, int32_t A)
{
    const int64_t base = h->first[l], n = h->size[l];
    int64_t stack[64];
    int top = 0;
    if (n > 0) stack[top++] = 0;
    while (top > 0) {
        int64_t i = stack[--top];
        int32_t x = h->item[base + i], k = f->pack_of[x];
        if (f->room[k] < d) continue;
        if (k != A) return x;
        for (int64_t c = 2 * i + 1; c <= 2 * i + 2 && c < n && top < 64; c++) stack[top++] = c;
    }
    return -1;
}

static void fh_remove(FillHeap *h, const Fair *f, const int32_t *plen, int32_t x)
{
    const int64_t i = h->at[x], last = h->first[plen[x]] + --h->size[plen[x]];
    if (i == last) return;
    fh_swap(h, i, last);
    fh_fix(h, f, plen, h->item[i]);
}

/* A pack's fillers out of their heaps, before its room or members change, and back in after:
 * every heap operation then meets one element out of order, which it can restore. */
static void fh_pack_out(FillHeap *h, const Fair *f, const Placed *pl, const int32_t *plen, int32_t k)
{
    for (int32_t x = pl->head[k]; x >= 0; x = pl->next[x])
        if (plen[x] <= h->max_len) fh_remove(h, f, plen, x);
}

static void fh_pack_in(FillHeap *h, const Fair *f, const Placed *pl, const int32_t *plen, int32_t k)
{
    for (int32_t x = pl->head[k]; x >= 0; x = pl->next[x])
        if (plen[x] <= h->max_len) fh_push(h, f, plen, x);
}

/* The best swap for the roomiest pack A, which lacks need tokens of room: a in A and a filler b
 * in another pack B, d = len(a) - len(b) in [1, room(B)] (B gives at most its room, and no B has
 * more room than A), the largest d for each a in turn, until d reaches need. Returns d (0: none)
 * and sets *a_out, *b_out. */
static int32_t best_swap(const Fair *f, const FillHeap *h, const Placed *pl, const int32_t *plen, int32_t A,
                         int32_t need, int32_t *a_out, int32_t *b_out)
{
    int32_t best = 0;
    for (int32_t a = pl->head[A]; a >= 0 && best < need; a = pl->next[a]) {
        int32_t d = f->room[A] < plen[a] - 1 ? f->room[A] : plen[a] - 1;
        for (; d > best && plen[a] - d <= h->max_len; d--) {
            int32_t b = fh_find(h, f, plen[a] - d, d, A);
            if (b >= 0) {
                best = d;
                *a_out = a;
                *b_out = b;
                break;
            }
        }
    }
    return best;
}

/* Leftovers (positions left[0..*n_left), longest first) that fit no pack's room: the room they
 * need is there, only scattered. For a leftover x, the roomiest pack A (room r < len(x)) swaps one
 * of its sequences a for a shorter filler b from a pack B with room for the difference: room
 * moves from B to A, every M stays; after at most 8 such rounds A takes x if it can. Those it
 * cannot place stay in left[]. 0, or -1 when out of memory. */
static int place_leftovers(Fair *f, const int32_t *plen, int64_t n, int32_t max_len, int32_t *left, int64_t *n_left)
{
    PackIndex room;
    Placed pl = {malloc(((size_t)f->P + 1) * sizeof(int32_t)), malloc((size_t)n * sizeof(int32_t))};
    FillHeap h = {calloc((size_t)max_len + 2, sizeof(int64_t)), calloc((size_t)max_len + 1, sizeof(int32_t)),
                  malloc((size_t)n * sizeof(int32_t)), malloc((size_t)n * sizeof(int32_t)), max_len};
    int ok = index_init(&room, f->L, f->P) == 0;
    ok = ok && pl.head && pl.next && h.first && h.size && h.item && h.at;
    if (ok) {
        for (int32_t k = 0; k < f->P; k++) pl.head[k] = -1;
        for (int64_t j = n - 1; j >= 0; j--)
            if (f->pack_of[j] >= 0) placed_add(&pl, f, (int32_t)j);
        for (int32_t k = f->P - 1; k >= 0; k--)
            if (f->room[k] > 0) index_insert(&room, k, f->room[k]);
        /* room in item[] for every filler, placed now or later */
        for (int64_t j = 0; j < n; j++)
            if (plen[j] <= max_len) h.first[plen[j] + 1]++;
        for (int32_t l = 0; l <= max_len; l++) h.first[l + 1] += h.first[l];
        for (int64_t j = 0; j < n; j++)
            if (plen[j] <= max_len && f->pack_of[j] >= 0) fh_push(&h, f, plen, (int32_t)j);
        int64_t kept = 0;
        for (int64_t i = 0; i < *n_left; i++) {
            int32_t x = left[i], lx = plen[x], k = index_at_least(&room, lx);
            for (int round = 0; k < 0 && round < 8; round++) {
                int64_t bt = bit_prev(&room.bt, room.n_buckets - 1);
                int32_t A = bt >= 0 ? room.head[bt] : -1, a = -1, b = -1;
                if (A < 0) break;
                int32_t d = best_swap(f, &h, &pl, plen, A, lx - f->room[A], &a, &b);
                if (d <= 0) break;
                int32_t B = f->pack_of[b];
                fh_pack_out(&h, f, &pl, plen, A);
                fh_pack_out(&h, f, &pl, plen, B);
                placed_unlink(&pl, A, a);
                placed_unlink(&pl, B, b);
                f->pack_of[a] = B;
                f->pack_of[b] = A;
                placed_add(&pl, f, a);
                placed_add(&pl, f, b);
                set_room(f, &room, B, f->room[B] - d);
                set_room(f, &room, A, f->room[A] + d);
                fh_pack_in(&h, f, &pl, plen, A);
                fh_pack_in(&h, f, &pl, plen, B);
                k = index_at_least(&room, lx);
            }
            if (k < 0) {
                left[kept++] = x;
                continue;
            }
            fh_pack_out(&h, f, &pl, plen, k);
            f->pack_of[x] = k;
            f->count[k]++;
            set_room(f, &room, k, f->room[k] - lx);
            placed_add(&pl, f, x);
            fh_pack_in(&h, f, &pl, plen, k);
        }
        *n_left = kept;
    }
    index_free(&room);
    free(pl.head);
    free(pl.next);
    free(h.first);
    free(h.size);
    free(h.item);
    free(h.at);
    return ok ? 0 : -1;
}

/* Groups (sync points) of W packs in emit order: group_first[g] .. group_first[g + 1] of
 * sorted[]; group g is in step g / A. Returns the number of groups. */
static int32_t make_groups(const Plan *p, Fair *f, int e, Keyed *key, int32_t *sorted, int32_t *group_first,
                           int32_t *perm)
{
    const int W = p->cfg.world_size, A = p->micro_steps;
    for (int32_t k = 0; k < f->P; k++) key[k] = (Keyed){f->sq[k], k};
    qsort(key, (size_t)f->P, sizeof *key, keyed_desc);
    int32_t G = (f->P + W - 1) / W, full = f->P / W;
    /* Full groups by cost, heaviest first; then the order they run in. */
    Rng rng = plan_rng(p, PLAN_STREAM_GROUPS, e);
    int32_t steps_full = full / A;
    int32_t n_strat = steps_full * A;
    for (int32_t g = 0; g < G; g++) perm[g] = g;
    if (A == 1) {
        rng_shuffle_i32(&rng, perm, full);
    } else {
        /* Step t takes stratum a's group at a seeded position; the groups left over (fewer than
         * A, the cheapest) and the short group form the last step. */
        int32_t *tmp = group_first; /* scratch until the layout below */
        for (int a = 0; a < A; a++) {
            for (int32_t t = 0; t < steps_full; t++) tmp[t] = a * steps_full + t;
            rng_shuffle_i32(&rng, tmp, steps_full);
            for (int32_t t = 0; t < steps_full; t++) perm[t * A + a] = tmp[t];
        }
        for (int32_t g = n_strat; g < G; g++) perm[g] = g;
    }
    int32_t at = 0;
    for (int32_t g = 0; g < G; g++) {
        int32_t src = perm[g], lo = src * W, hi = lo + W < f->P ? lo + W : f->P;
        group_first[g] = at;
        for (int32_t i = lo; i < hi; i++) sorted[at++] = key[i].index;
    }
    group_first[G] = at;
    return G;
}

/* Fillers each pack should get: its group's share of the sequences (n x its packs / P) minus the
 * group's cores, shared among the group's packs by free room. Every group (micro-step) aiming at
 * the same M makes every step do so, whatever strata it mixes; the packs of a group hold cores
 * of about one size, so room is what tells them apart. */
static void set_wants(Fair *f, const int32_t *sorted, const int32_t *group_first, int32_t G, int64_t n)
{
    for (int32_t g = 0; g < G; g++) {
        int64_t packs = group_first[g + 1] - group_first[g], cores = 0, room = 0;
        for (int32_t i = group_first[g]; i < group_first[g + 1]; i++) {
            cores += f->count[sorted[i]];
            room += f->room[sorted[i]];
        }
        double target = (double)n * (double)packs / (double)f->P - (double)cores;
        if (target < 0) target = 0;
        for (int32_t i = group_first[g]; i < group_first[g + 1]; i++)
            f->want[sorted[i]] = room > 0 ? target * (double)f->room[sorted[i]] / (double)room : 0.0;
    }
}

/* Balances one group of w packs (their items gathered from the epoch) and appends its rows. */
static void emit_group(Plan *p, const Sample *s, const int32_t *packs, int w, const int32_t *first,
                       const int32_t *members, const int32_t *member_len, BalanceWork *wk)
{
    const CostModel *c = &p->cfg.cost;
    int32_t g = 0;
    for (int r = 0; r < w; r++) {
        wk->cost[r] = c->per_row;
        wk->tokens[r] = 0;
        for (int32_t i = first[packs[r]]; i < first[packs[r] + 1]; i++) {
            int32_t len = member_len[i];
            wk->item[g] = members[i];
            wk->label[g++] = r;
            wk->tokens[r] += len;
            wk->cost[r] += seg_cost(c, len);
        }
    }
    balance_emit(p, s, w, g, FAIR_ROUNDS_PER_SLOT * w, wk);
}

/* --sync step, A > 1: every rank's A packs of one full step, chosen by Karmarkar-Karp over the
 * step's W x A packs when that lowers the step's slowest rank. Rows rows[first .. first + W*A)
 * are in deal order (micro-step major); they are permuted in place. */
static int kk_step(Plan *p, int64_t first, double *cost, int32_t *part, double *rank_sum, int32_t *slot, Row *tmp)
{
    const int W = p->cfg.world_size, A = p->micro_steps;
    const int32_t n = W * A;
    double dealt_max = 0, kk_max = 0;
    for (int32_t i = 0; i < n; i++) cost[i] = row_cost(&p->cfg.cost, p, &p->rows[first + i]);
    for (int r = 0; r < W; r++) {
        double t = 0;
        for (int a = 0; a < A; a++) t += cost[a * W + r];
        if (t > dealt_max) dealt_max = t;
    }
    if (kk_partition_equal(cost, n, W, part) != 0) return -1;
    for (int r = 0; r < W; r++) rank_sum[r] = 0;
    for (int32_t i = 0; i < n; i++) rank_sum[part[i]] += cost[i];
    for (int r = 0; r < W; r++)
        if (rank_sum[r] > kk_max) kk_max = rank_sum[r];
    if (kk_max >= dealt_max) return 0;
    /* Rank r's packs fill its micro-steps 0, 1, ... in the order they come. */
    for (int r = 0; r < W; r++) slot[r] = 0;
    for (int32_t i = 0; i < n; i++) {
        int r = part[i];
        tmp[(int64_t)slot[r]++ * W + r] = p->rows[first + i];
    }
    memcpy(&p->rows[first], tmp, (size_t)n * sizeof *tmp);
    return 0;
}

static int fair_epoch(Plan *p, const Sample *s, int64_t n, int e, Fair *f, BalanceWork *wk, char *err,
                      size_t errlen)
{
    if (n == 0) return 0;
    const int32_t L = p->cfg.max_tokens, tau = L / 8 > 0 ? L / 8 : 1;
    const int W = p->cfg.world_size, A = p->micro_steps;
    int32_t *order = plan_epoch_order(p, n, e);
    size_t m = (size_t)n;
    /* positions longest first: the cores at the front, the fillers after them */
    int32_t *items = malloc(m * sizeof *items), *plen_sorted = malloc(m * sizeof *plen_sorted);
    int32_t *left = malloc((2 * m + 1) * sizeof *left), *bin_of = malloc(m * sizeof *bin_of);
    int32_t *plen = malloc(m * sizeof *plen);
    uint64_t *keys = malloc(m * sizeof *keys), *tmp = malloc(m * sizeof *tmp);
    int32_t *first = NULL, *members = NULL, *sorted = NULL, *group_first = NULL;
    int32_t *perm = NULL;
    Keyed *pk = NULL;
    int rc = -1;
    if (!order || !items || !plen_sorted || !left || !bin_of || !keys || !tmp || !plen) goto oom;

    /* 1. Cores and fillers, each longest first (ties in the epoch's order). */
    int64_t n_core = 0, nf = 0;
    double tokens = 0;
    for (int64_t j = 0; j < n; j++) {
        f->pack_of[j] = -1;
        plen[j] = s[order[j]].len;
        tokens += plen[j];
        keys[j] = ((uint64_t)(uint32_t)(INT32_MAX - plen[j]) << 32) | (uint64_t)j;
    }
    plan_sort_u64(keys, tmp, n);
    /* lengths come from the keys: no random access */
    for (int64_t j = 0; j < n; j++) {
        items[j] = (int32_t)(keys[j] & 0xffffffffu);
        plen_sorted[j] = INT32_MAX - (int32_t)(keys[j] >> 32);
        n_core += plen_sorted[j] > tau;
    }
    nf = n - n_core;
    const int32_t *core_items = items, *core_len = plen_sorted;
    const int32_t *fill = items + n_core, *fill_len = plen_sorted + n_core;

    /* 2. P packs, enough for every token at (1 - FAIR_SLACK) fill, at least W, at most one per
     *    sample. The cores go longest first to the pack with the most room (LPT on tokens), which spreads
     *    them so that every pack keeps what room it can for fillers; a core that fits nowhere
     *    opens a pack. */
    int64_t P = (int64_t)ceil(tokens / ((double)L * (1.0 - FAIR_SLACK)));
    /* Fewer packs than ranks would leave ranks idle in the epoch's only step: spread it instead. */
    if (P < W) P = W;
    if (P > n) P = n;
    if (P < 1) P = 1;
    f->P = (int32_t)P;
    f->L = L;
    const int32_t P0 = f->P;
    for (int32_t k = 0; k < f->P; k++) {
        pack_open(f, k);
        f->heap[k] = k;
    }
    int32_t n_heap = f->P;
    for (int64_t j = 0; j < n_core; j++) {
        int32_t at = core_items[j], l = core_len[j], k;
        if (n_heap > 0 && f->room[f->heap[0]] >= l) {
            k = f->heap[0];
        } else {
            k = f->P++;
            pack_open(f, k);
            f->heap[n_heap] = k;
            heap_up(f, n_heap++);   /* empty and roomiest: it is the top now */
        }
        pack_add_core(f, k, at, l);
        heap_down(f, n_heap, 0);
    }
    /* LPT spreads the room but fits less tightly than best fit. Where it had to open packs (cores
     * that tile badly and too few fillers to fill what they leave, e.g. LongAlign-10k alone), the
     * cores go by best fit decreasing instead when that needs fewer packs. */
    if (f->P > P0 && n_core > 0) {
        int32_t n_bins = 0, *bfd_room = left; /* left[] is free until the fillers */
        if (bins_best_fit(L, core_len, n_core, bfd_room, &n_bins, bin_of) != 0) goto oom;
        if (n_bins < f->P) {
            f->P = n_bins > P0 ? n_bins : P0;
            for (int32_t k = 0; k < f->P; k++) pack_open(f, k);
            for (int64_t j = 0; j < n_core; j++) pack_add_core(f, bin_of[j], core_items[j], core_len[j]);
        }
    }

    /* 3. Groups and steps (the cost order uses the cores' Σ len²: every pack ends about full). */
    size_t cap = (size_t)f->cap + 1;
    sorted = malloc(cap * sizeof *sorted);
    group_first = malloc((cap + 1) * sizeof *group_first);
    perm = malloc(cap * sizeof *perm);
    pk = malloc(cap * sizeof *pk);
    if (!sorted || !group_first || !perm || !pk) goto oom;
    int32_t G = make_groups(p, f, e, pk, sorted, group_first, perm);

    /* 4. Water-filling of the fillers toward each step's M. */
    set_wants(f, sorted, group_first, G, n);
    int64_t n_left = 0;
    if (water_fill(f, fill, fill_len, nf, left, &n_left) != 0) goto oom;

    /* 5. What found no pack: to the steps furthest below their M, then by best fit into any room,
     *    else into new packs (a last group of their own). */
    if (n_left > 0 && top_up_steps(f, plen, sorted, group_first, G, A, n, left, &n_left) != 0) goto oom;
    if (n_left > 0 && place_leftovers(f, plen, n, tau < (1 << 20) ? tau : (1 << 20), left, &n_left) != 0) goto oom;
    if (n_left > 0) {
        int32_t *len = plen_sorted; /* scratch now */
        for (int64_t j = 0; j < n_left; j++) len[j] = plen[left[j]];
        int32_t n_bins = f->P;
        if (bins_best_fit(L, len, n_left, f->room, &n_bins, bin_of) != 0) goto oom;
        for (int64_t j = 0; j < n_left; j++) {
            f->pack_of[left[j]] = bin_of[j];
            if (bin_of[j] >= f->P) f->count[bin_of[j]] = 0;
        }
        for (int64_t j = 0; j < n_left; j++) f->count[bin_of[j]]++;
        if (n_bins > f->P) {
            /* Spill packs join the epoch's last groups: re-cut the tail so only the last is short. */
            int32_t tail_g = group_first[G] - group_first[G - 1] == W ? G : G - 1;
            int32_t at = group_first[G];
            for (int32_t k = f->P; k < n_bins; k++) sorted[at++] = k;
            f->P = n_bins;
            for (G = tail_g; group_first[G] < at; G++) group_first[G + 1] = group_first[G] + W < at ? group_first[G] + W : at;
        }
    }

    /* Every pack holds a sequence: an empty one takes the shortest of the fullest pack of its
     * group, else of the epoch (P <= n, so one with two exists). Rare: tiny epochs. */
    for (int32_t g = 0; g < G; g++)
        for (int32_t i = group_first[g]; i < group_first[g + 1]; i++) {
            int32_t k = sorted[i], d = -1;
            if (f->count[k] > 0) continue;
            for (int32_t q = group_first[g]; q < group_first[g + 1]; q++)
                if (f->count[sorted[q]] >= 2 && (d < 0 || f->count[sorted[q]] > f->count[d])) d = sorted[q];
            for (int32_t q = 0; d < 0 && q < f->P; q++)
                if (f->count[q] >= 2) d = q;
            int64_t pick = -1;
            for (int64_t j = 0; d >= 0 && j < n; j++)
                if (f->pack_of[j] == d && (pick < 0 || plen[j] < plen[pick])) pick = j;
            if (pick < 0) continue;
            f->pack_of[pick] = k;
            f->count[d]--;
            f->count[k]++;
            f->room[d] += plen[pick];
            f->room[k] -= plen[pick];
        }

    /* 6. Rows, group by group, evened inside each group. */
    first = calloc((size_t)f->P + 1, sizeof *first);
    members = malloc(m * sizeof *members);
    if (!first || !members) goto oom;
    for (int64_t j = 0; j < n; j++) first[f->pack_of[j] + 1]++;
    for (int32_t k = 0; k < f->P; k++) first[k + 1] += first[k];
    for (int32_t k = 0; k < f->P; k++) left[k] = first[k]; /* cursors */
    int32_t *member_len = plen_sorted; /* the fillers' lengths are done with */
    for (int64_t j = 0; j < n; j++) {
        int32_t at = left[f->pack_of[j]]++;
        members[at] = order[j];
        member_len[at] = plen[j];
    }
    int64_t first_row = p->n_rows;
    for (int32_t g = 0; g < G; g++)
        emit_group(p, s, &sorted[group_first[g]], group_first[g + 1] - group_first[g], first, members, member_len, wk);
    if (p->cfg.sync == SYNC_STEP && A > 1 && W > 1) {
        const int64_t per_step = (int64_t)W * A;
        double *cost = malloc((size_t)per_step * sizeof *cost), *rank_sum = malloc((size_t)W * sizeof *rank_sum);
        int32_t *part = malloc((size_t)per_step * sizeof *part), *slot = malloc((size_t)W * sizeof *slot);
        Row *rows = malloc((size_t)per_step * sizeof *rows);
        int ok = cost && rank_sum && part && slot && rows;
        for (int64_t at = first_row; ok && at + per_step <= p->n_rows; at += per_step)
            ok = kk_step(p, at, cost, part, rank_sum, slot, rows) == 0;
        free(cost);
        free(rank_sum);
        free(part);
        free(slot);
        free(rows);
        if (!ok) goto oom;
    }
    rc = plan_deal(p, first_row, 1, err, errlen);
    goto done;
oom:
    snprintf(err, errlen, "out of memory planning %lld samples", (long long)n);
done:
    free(order);
    free(items);
    free(plen_sorted);
    free(left);
    free(plen);
    free(bin_of);
    free(keys);
    free(tmp);
    free(first);
    free(members);
    free(sorted);
    free(group_first);
    free(perm);
    free(pk);
    return rc;
}

static int plan_fair(Plan *p, const Sample *samples, int64_t n, char *err, size_t errlen)
{
    Fair f;
    memset(&f, 0, sizeof f);
    size_t m = n > 0 ? (size_t)n : 1;
    /* Packs: at most the samples, plus as many spill packs as leftover fillers. */
    f.cap = (int32_t)(2 * m);
    f.room = malloc((2 * m + 1) * sizeof *f.room);
    f.count = malloc((2 * m + 1) * sizeof *f.count);
    f.sq = malloc((2 * m + 1) * sizeof *f.sq);
    f.want = malloc((2 * m + 1) * sizeof *f.want);
    f.pack_of = malloc(m * sizeof *f.pack_of);
    f.heap = malloc((2 * m + 1) * sizeof *f.heap);
    BalanceWork wk;
    int rc = balance_work_init(&wk, n, p->cfg.world_size);
    if (rc != 0 || !f.room || !f.count || !f.sq || !f.want || !f.pack_of || !f.heap) {
        snprintf(err, errlen, "out of memory planning %lld samples", (long long)n);
        rc = -1;
    }
    for (int e = 0; rc == 0 && e < p->cfg.epochs; e++) rc = fair_epoch(p, samples, n, e, &f, &wk, err, errlen);
    balance_work_free(&wk);
    free(f.room);
    free(f.count);
    free(f.sq);
    free(f.want);
    free(f.pack_of);
    free(f.heap);
    if (rc != 0) return -1;
    plan_set_weights(p, 1);
    return 0;
}

const Strategy STRATEGY_PACKING_FAIR = {
    "packing-fair",
    "full packs, even cost per sync point, the same sequences per step: Eq. 2 holds over the epoch",
    plan_fair, 1,
};
