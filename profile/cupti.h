/* CUPTI activity collection: kernel intervals attributed to (rank, micro-batch), memcpy and
 * memset totals, device allocations, NVTX markers. Without CUDA (or when CUPTI refuses) start
 * fails with the reason and the caller falls back to CUDA events or wall clock.
 * Attribution and levels are described in docs/profiling.md.
 *
 * Use from one host thread:
 *   prof_cupti_start(PROF_BASIC, why, sizeof why)          before the CUDA work to measure
 *   per micro-batch: prof_cupti_set_context(r, mb); launch; synchronize; prof_cupti_flush()
 *   read: prof_cupti_kernels(), prof_cupti_stats(); then prof_cupti_reset() for the next run
 *   prof_cupti_stop() at the end (frees everything it collected). */
#ifndef LABENCH_PROFILE_CUPTI_H
#define LABENCH_PROFILE_CUPTI_H

#include <stddef.h>
#include <stdint.h>

#include "profile/intervals.h"

typedef enum {
    PROF_OFF,
    PROF_BASIC,   /* kernels (with launch times from API records), memcpy, memset */
    PROF_FULL     /* + device memory allocations and NVTX markers */
} ProfLevel;

typedef struct {
    int64_t kernels;              /* kernel records kept */
    int64_t incomplete_kernels;   /* kernel records without timestamps, skipped */
    int64_t launches_unmatched;   /* kernels with no API record for their launch (launch_ns -1) */
    int64_t api_records;          /* runtime/driver API records */
    int64_t memcpy_count, memcpy_bytes;
    int64_t memset_count, memset_bytes;
    int64_t alloc_count, free_count;          /* device memory, PROF_FULL */
    int64_t mem_live_bytes;                   /* allocated and not freed since start or reset */
    int64_t mem_high_water_bytes;             /* highest live_bytes, same span */
    int64_t markers;              /* NVTX marks and range starts seen by CUPTI, PROF_FULL */
    int64_t dropped_records;      /* cuptiActivityGetNumDroppedRecords, summed */
    int64_t lost_records;         /* records this collector could not store (out of memory) */
    int64_t buffers;              /* activity buffers received */
} ProfStats;

/* Starts collection. Returns 0; or -1 with the reason in why (CUPTI missing, no device,
 * insufficient privileges, wrong library version). On success why is empty, or notes an
 * optional record kind that could not be enabled. Starting twice is an error. */
int prof_cupti_start(ProfLevel level, char *why, size_t whylen);

/* Kernels launched from now on belong to this simulated rank and micro-batch. */
void prof_cupti_set_context(int rank, int micro_batch);

/* Delivers every completed activity record to the collector. Call after a device sync.
 * Returns 0, or -1 when CUPTI reports an error (or collection is not running). */
int prof_cupti_flush(void);

/* Kernels collected since start or the last reset, sorted by start time. The array belongs to
 * the collector: valid until the next flush, kernels, reset or stop call. NULL, *n = 0 if none. */
const KernelRecord *prof_cupti_kernels(int *n);

/* The demangled-as-reported name for a KernelRecord's name_id; "?" if unknown. Names survive
 * prof_cupti_reset (ids stay valid), not prof_cupti_stop. */
const char *prof_cupti_kernel_name(int name_id);

void prof_cupti_stats(ProfStats *out);

/* Forgets records, counters and memory tracking; names and the current context stay. */
void prof_cupti_reset(void);

/* Flushes, stops collection and frees everything collected. */
void prof_cupti_stop(void);

/* Now on the clock of the kernel records (CUPTI's), in ns, to place host marks among them.
 * Without CUPTI: CLOCK_MONOTONIC. */
int64_t prof_cupti_now_ns(void);

#endif
