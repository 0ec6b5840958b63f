/* Interval arithmetic on GPU kernel records: busy time as the union of kernel intervals, GPU
 * idle split the way Holistic Trace Analysis does it, and the kernels that take the most time.
 * Pure C, no CUDA: the CUPTI collector fills KernelRecords, the tests make them up.
 * The rules are written out in docs/profiling.md. */
#ifndef LABENCH_PROFILE_INTERVALS_H
#define LABENCH_PROFILE_INTERVALS_H

#include <stdint.h>

/* One kernel execution. Times are ns on one clock (CUPTI's on CUDA); intervals are [start, end). */
typedef struct {
    int64_t start_ns, end_ns;
    int64_t launch_ns;          /* when the host API call that launched it began; -1 if unknown */
    int32_t rank, micro_batch;  /* simulated DP rank and micro-batch it ran for; -1 if unknown */
    int32_t name_id;            /* index into the collector's kernel name table */
} KernelRecord;

/* Default longest gap between two already-queued kernels that still counts as launch overhead. */
#define KERNEL_GAP_THRESHOLD_NS 2000

/* Time covered by at least one kernel inside [lo, hi): overlapping and nested kernels count
 * once, parts outside the window not at all. 0 for an empty window; -1 if out of memory. */
int64_t intervals_union_ns(const KernelRecord *k, int n, int64_t lo, int64_t hi);

/* A window [lo, hi) (one micro-batch's span) split into GPU busy time and three kinds of idle.
 * Always busy + host_wait + kernel_gap + other == window and idle == window - busy. */
typedef struct {
    int64_t window_ns;
    int64_t busy_ns;        /* union of kernels in the window */
    int64_t idle_ns;        /* window - busy */
    int64_t host_wait_ns;   /* the next kernel was launched only after the GPU ran dry */
    int64_t kernel_gap_ns;  /* next kernel already queued, gap <= threshold: launch overhead */
    int64_t other_ns;       /* the rest: syncs, copies, long stalls, unknown launch times */
} IdleBreakdown;

/* Fills *out for the window [lo, hi). Returns 0, or -1 if out of memory (then *out is zeroed
 * except window_ns). k may be in any order and may hold kernels outside the window. */
int idle_breakdown(const KernelRecord *k, int n, int64_t lo, int64_t hi,
                   int64_t kernel_gap_threshold_ns, IdleBreakdown *out);

/* Total time of every kernel with one name (kernels overlapping each other both count). */
typedef struct {
    int32_t name_id;
    int32_t count;
    int64_t total_ns;
} KernelTotal;

/* Writes the top max_out names by total time (ties: lower name_id first) to out and returns
 * how many it wrote; -1 if out of memory. */
int kernels_top(const KernelRecord *k, int n, KernelTotal *out, int max_out);

/* ---- helpers for the CUPTI collector, pure so that tests reach them --------------------- */

/* A prof_cupti_set_context call: launches from t_ns on belong to (rank, micro_batch). */
typedef struct {
    int64_t t_ns;
    int32_t rank, micro_batch;
} ContextMark;

/* Sets each kernel's rank and micro_batch from the last mark at or before its launch (its
 * start when the launch is unknown), -1 when no mark precedes it. marks must be sorted by
 * t_ns; of marks with equal times the later one in the array wins. */
void kernels_attribute(KernelRecord *k, int n, const ContextMark *marks, int nmarks);

/* A device memory allocation or free, as CUPTI reports them. */
typedef struct {
    int64_t t_ns;
    uint64_t addr;
    int64_t bytes;
    int is_alloc;
} MemEvent;

/* Replays allocations and frees in time order (ev is sorted in place; at equal times frees go
 * first). A free counts only against an allocation in ev, so blocks allocated before
 * collection began never make the total negative. Returns 0, -1 if out of memory. */
int mem_replay(MemEvent *ev, int n, int64_t *live_bytes, int64_t *high_water_bytes);

#endif
