/* Communication measured on a real GPU, for the communication model of bench/comm/comm_model.h. CUDA code
 * lives in bench/comm/bandwidth_cuda.c (compiled with nvcc present); bench/comm/bandwidth_nocuda.c
 * says why nothing can be measured. */
#ifndef LABENCH_PROFILE_COMMBENCH_H
#define LABENCH_PROFILE_COMMBENCH_H

#include <stddef.h>

/* Host<->device bandwidth of the current CUDA device: pinned host memory, cudaMemcpyAsync of
 * 256 MiB each way, timed with CUDA events over several copies after a warm-up. 0, or -1 with
 * err (built without CUDA, no device, out of memory). */
int comm_measure_pcie(double *h2d_Bps, double *d2h_Bps, char *err, size_t errlen);

/* Bus bandwidth of an NCCL all-reduce and all-gather of `bytes` across n_gpus local GPUs (0: all),
 * in one process (nccl_measure_bus; NCCL loaded at run time). 0, or -1 with the reason in err
 * (built without CUDA, no GPU, NCCL not found). */
int comm_measure_collectives(int n_gpus, size_t bytes, double *allreduce_bus_Bps, double *allgather_bus_Bps,
                             char *err, size_t errlen);

#endif
