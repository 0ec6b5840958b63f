/* NVTX ranges and marks in the "labench" domain, so Nsight Systems (and CUPTI at PROF_FULL)
 * show what the host was doing: micro-batch, forward, backward, optimizer.
 * Built without CUDA they do nothing. Names should be a small fixed set: each distinct name is
 * registered once with NVTX and kept for the life of the process. */
#ifndef LABENCH_PROFILE_NVTX_H
#define LABENCH_PROFILE_NVTX_H

void prof_range_push(const char *name);
void prof_range_pop(void);
void prof_mark(const char *name);

#endif
