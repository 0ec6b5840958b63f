/* CUPTI without CUDA: collection cannot start, so the caller falls back to wall clock. */
#include "profile/cupti.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int prof_cupti_start(ProfLevel level, char *why, size_t whylen)
{
    (void)level;
    if (why && whylen) snprintf(why, whylen, "CUPTI unavailable: labench was built without CUDA (nvcc not found)");
    return -1;
}

void prof_cupti_set_context(int rank, int micro_batch) { (void)rank; (void)micro_batch; }
int prof_cupti_flush(void) { return -1; }

const KernelRecord *prof_cupti_kernels(int *n)
{
    *n = 0;
    return NULL;
}

const char *prof_cupti_kernel_name(int name_id)
{
    (void)name_id;
    return "?";
}

void prof_cupti_stats(ProfStats *out) { memset(out, 0, sizeof *out); }
void prof_cupti_reset(void) {}
void prof_cupti_stop(void) {}

int64_t prof_cupti_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
