/* Interval arithmetic on kernel records; the rules are in docs/profiling.md. */
#include "profile/intervals.h"

#include <stdlib.h>
#include <string.h>

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Start time first. Among kernels that start together, one with a known launch time comes
 * first (it decides how the gap before them is classified), earliest launch first. */
static int cmp_start(const void *pa, const void *pb)
{
    const KernelRecord *a = pa, *b = pb;
    if (a->start_ns != b->start_ns) return a->start_ns < b->start_ns ? -1 : 1;
    int ua = a->launch_ns < 0, ub = b->launch_ns < 0;
    if (ua != ub) return ua - ub;
    if (a->launch_ns != b->launch_ns) return a->launch_ns < b->launch_ns ? -1 : 1;
    return 0;
}

/* The kernels that overlap [lo, hi), clipped to it and sorted; NULL with *m = 0 when none.
 * Returns -1 if out of memory. */
static int clip_sorted(const KernelRecord *k, int n, int64_t lo, int64_t hi,
                       KernelRecord **outk, int *m)
{
    *outk = NULL;
    *m = 0;
    if (n <= 0 || !k || hi <= lo) return 0;
    KernelRecord *c = malloc((size_t)n * sizeof *c);
    if (!c) return -1;
    int j = 0;
    for (int i = 0; i < n; i++) {
        if (k[i].end_ns <= k[i].start_ns || k[i].end_ns <= lo || k[i].start_ns >= hi) continue;
        c[j] = k[i];
        c[j].start_ns = max64(k[i].start_ns, lo);
        c[j].end_ns = min64(k[i].end_ns, hi);
        j++;
    }
    if (j == 0) {
        free(c);
        return 0;
    }
    qsort(c, (size_t)j, sizeof *c, cmp_start);
    *outk = c;
    *m = j;
    return 0;
}

/* Adds the idle gap [a, b) to its class; next is the first kernel after it, or NULL. */
static void classify_gap(IdleBreakdown *out, int64_t a, int64_t b, const KernelRecord *next,
                         int64_t threshold_ns)
{
    int64_t len = b - a;
    if (!next || next->launch_ns < 0)
        out->other_ns += len;
    else if (next->launch_ns >= a)      /* launched after the GPU ran dry: it waited for the host */
        out->host_wait_ns += len;
    else if (len <= threshold_ns)       /* already queued, short gap: launch overhead */
        out->kernel_gap_ns += len;
    else
        out->other_ns += len;
}

int idle_breakdown(const KernelRecord *k, int n, int64_t lo, int64_t hi,
                   int64_t kernel_gap_threshold_ns, IdleBreakdown *out)
{
    memset(out, 0, sizeof *out);
    if (hi <= lo) return 0;
    out->window_ns = hi - lo;

    KernelRecord *c;
    int m;
    if (clip_sorted(k, n, lo, hi, &c, &m) != 0) return -1;

    /* One sweep over kernels in start order; cur is where the busy time so far ends. The
     * window start counts as the end of the previous busy stretch for the first gap. */
    int64_t cur = lo;
    for (int i = 0; i < m; i++) {
        if (c[i].start_ns > cur) {
            classify_gap(out, cur, c[i].start_ns, &c[i], kernel_gap_threshold_ns);
            cur = c[i].start_ns;
        }
        if (c[i].end_ns > cur) {
            out->busy_ns += c[i].end_ns - cur;
            cur = c[i].end_ns;
        }
    }
    /* After the last kernel nothing in the window was launched: sync or host work, "other". */
    if (cur < hi) classify_gap(out, cur, hi, NULL, kernel_gap_threshold_ns);

    out->idle_ns = out->window_ns - out->busy_ns;
    free(c);
    return 0;
}

int64_t intervals_union_ns(const KernelRecord *k, int n, int64_t lo, int64_t hi)
{
    IdleBreakdown b;
    if (idle_breakdown(k, n, lo, hi, 0, &b) != 0) return -1;
    return b.busy_ns;
}

static int cmp_name(const void *pa, const void *pb)
{
    const KernelTotal *a = pa, *b = pb;
    return (a->name_id > b->name_id) - (a->name_id < b->name_id);
}

static int cmp_total_desc(const void *pa, const void *pb)
{
    const KernelTotal *a = pa, *b = pb;
    if (a->total_ns != b->total_ns) return a->total_ns > b->total_ns ? -1 : 1;
    return cmp_name(pa, pb);
}

int kernels_top(const KernelRecord *k, int n, KernelTotal *out, int max_out)
{
    if (n <= 0 || !k || max_out <= 0) return 0;
    KernelTotal *t = malloc((size_t)n * sizeof *t);
    if (!t) return -1;
    for (int i = 0; i < n; i++) {
        t[i].name_id = k[i].name_id;
        t[i].count = 1;
        t[i].total_ns = max64(0, k[i].end_ns - k[i].start_ns);
    }
    /* Sort by name, fold runs of one name into their first entry, then rank by total. */
    qsort(t, (size_t)n, sizeof *t, cmp_name);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m > 0 && t[m - 1].name_id == t[i].name_id) {
            t[m - 1].count++;
            t[m - 1].total_ns += t[i].total_ns;
        } else {
            t[m++] = t[i];
        }
    }
    qsort(t, (size_t)m, sizeof *t, cmp_total_desc);
    int w = m < max_out ? m : max_out;
    memcpy(out, t, (size_t)w * sizeof *t);
    free(t);
    return w;
}

void kernels_attribute(KernelRecord *k, int n, const ContextMark *marks, int nmarks)
{
    for (int i = 0; i < n; i++) {
        int64_t t = k[i].launch_ns >= 0 ? k[i].launch_ns : k[i].start_ns;
        int lo = 0, hi = nmarks;   /* find the first mark after t */
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (marks[mid].t_ns <= t) lo = mid + 1;
            else hi = mid;
        }
        k[i].rank = lo > 0 ? marks[lo - 1].rank : -1;
        k[i].micro_batch = lo > 0 ? marks[lo - 1].micro_batch : -1;
    }
}

static int cmp_mem(const void *pa, const void *pb)
{
    const MemEvent *a = pa, *b = pb;
    if (a->t_ns != b->t_ns) return a->t_ns < b->t_ns ? -1 : 1;
    if (a->is_alloc != b->is_alloc) return a->is_alloc ? 1 : -1;
    return (a->addr > b->addr) - (a->addr < b->addr);
}

int mem_replay(MemEvent *ev, int n, int64_t *live_bytes, int64_t *high_water_bytes)
{
    *live_bytes = *high_water_bytes = 0;
    if (n <= 0) return 0;
    qsort(ev, (size_t)n, sizeof *ev, cmp_mem);
    /* The blocks still allocated, as indexes into ev; a free searches from the newest. */
    int *live = malloc((size_t)n * sizeof *live);
    if (!live) return -1;
    int nlive = 0;
    int64_t total = 0, high = 0;
    for (int i = 0; i < n; i++) {
        if (ev[i].is_alloc) {
            live[nlive++] = i;
            total += ev[i].bytes;
            if (total > high) high = total;
            continue;
        }
        for (int j = nlive - 1; j >= 0; j--) {
            if (ev[live[j]].addr == ev[i].addr) {
                total -= ev[live[j]].bytes;
                live[j] = live[--nlive];
                break;
            }
        }
    }
    free(live);
    *live_bytes = total;
    *high_water_bytes = high;
    return 0;
}
