/* NCCL collectives on GPU memory for real data parallelism (bench/run/dp.c), and the GPUs the ranks
 * use. bench/comm/nccl_cuda.c loads libnccl.so.2 with dlopen when first needed: labench never links
 * NCCL, so a GPU machine without it runs everything but the NCCL paths, which say what they
 * tried. bench/comm/nccl_nocuda.c (built without nvcc) says why there is no NCCL. */
#ifndef LABENCH_PROFILE_NCCL_H
#define LABENCH_PROFILE_NCCL_H

#include <stddef.h>
#include <stdio.h>

#include "kernels/backend.h"

#define NCCL_ID_BYTES 128

typedef struct NcclComm NcclComm;

/* Loads NCCL (once): $LABENCH_NCCL, then libnccl.so.2 through the loader's search path, then
 * the CUDA toolkit's lib64 and the nvidia-nccl Python wheels' folders. desc gets "NCCL 2.28.9
 * (path)". 0, or -1 with every place tried in err. */
int nccl_load(char *desc, size_t descn, char *err, size_t errlen);

/* Rank 0 makes the id; the caller hands it to every rank (MPI), which then joins. */
int nccl_unique_id(unsigned char id[NCCL_ID_BYTES], char *err, size_t errlen);
NcclComm *nccl_comm_init_rank(const unsigned char id[NCCL_ID_BYTES], int nranks, int rank, int device, char *err,
                              size_t errlen);
void nccl_comm_destroy(NcclComm *c);

/* Blocking collectives (they run on the communicator's own stream and wait for it): the caller
 * has synchronized the compute stream before. Sums; dt f32, f64 or bf16. 0, or -1 with err. */
int nccl_all_reduce_sum(NcclComm *c, void *buf, size_t n, DType dt, char *err, size_t errlen);
int nccl_all_gather(NcclComm *c, const void *send, void *recv, size_t n_per_rank, DType dt, char *err,
                    size_t errlen);
int nccl_reduce_scatter_sum(NcclComm *c, const void *send, void *recv, size_t n_per_rank, DType dt, char *err,
                            size_t errlen);

/* GPUs this process sees (cudaGetDeviceCount), or -1 with err. */
int gpu_count(char *err, size_t errlen);
/* PCI bus id of a GPU ("0000:17:00.0"): two ranks on one host with the same one share a GPU. */
int gpu_bus_id(int device, char *buf, size_t n);

/* One process, n_gpus GPUs (0: every visible one; 1 on a one-GPU machine), ncclCommInitAll: an
 * all-reduce, an all-gather and a reduce-scatter of f32 data with known sums, checked exactly,
 * then the bus bandwidth of an all-reduce and an all-gather of `bytes`, each line written to
 * out. 0 when every check passed, -1 with err. */
int nccl_self_check(int n_gpus, size_t bytes, FILE *out, char *err, size_t errlen);

/* Bus bandwidth (nccl-tests' definition: algorithm bandwidth x 2(n-1)/n for an all-reduce,
 * x (n-1)/n for an all-gather) over n_gpus local GPUs, for bench/comm/bandwidth.h. */
int nccl_measure_bus(int n_gpus, size_t bytes, double *allreduce_Bps, double *allgather_Bps, char *err,
                     size_t errlen);

#endif
