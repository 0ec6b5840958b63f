/* Built without nvcc: no GPU, so no NCCL; each entry point says why. */
#include <stdio.h>

#include "bench/comm/nccl.h"

static const char WHY[] = "this labench was built without CUDA (nvcc not found at build time): no GPUs, no NCCL";

int nccl_load(char *desc, size_t descn, char *err, size_t errlen)
{
    if (desc && descn) desc[0] = 0;
    snprintf(err, errlen, "%s", WHY);
    return -1;
}

int nccl_unique_id(unsigned char id[NCCL_ID_BYTES], char *err, size_t errlen)
{
    (void)id;
    snprintf(err, errlen, "%s", WHY);
    return -1;
}

NcclComm *nccl_comm_init_rank(const unsigned char id[NCCL_ID_BYTES], int nranks, int rank, int device, char *err,
                              size_t errlen)
{
    (void)id, (void)nranks, (void)rank, (void)device;
    snprintf(err, errlen, "%s", WHY);
    return NULL;
}

void nccl_comm_destroy(NcclComm *c) { (void)c; }

int nccl_all_reduce_sum(NcclComm *c, void *buf, size_t n, DType dt, char *err, size_t errlen)
{
    (void)c, (void)buf, (void)n, (void)dt;
    snprintf(err, errlen, "%s", WHY);
    return -1;
}

int nccl_all_gather(NcclComm *c, const void *send, void *recv, size_t n_per_rank, DType dt, char *err,
                    size_t errlen)
{
    (void)c, (void)send, (void)recv, (void)n_per_rank, (void)dt;
    snprintf(err, errlen, "%s", WHY);
    return -1;
}

int nccl_reduce_scatter_sum(NcclComm *c, const void *send, void *recv, size_t n_per_rank, DType dt, char *err,
                            size_t errlen)
{
    (void)c, (void)send, (void)recv, (void)n_per_rank, (void)dt;
    snprintf(err, errlen, "%s", WHY);
    return -1;
}

int gpu_count(char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", WHY);
    return -1;
}

int gpu_bus_id(int device, char *buf, size_t n)
{
    snprintf(buf, n, "device %d", device);
    return -1;
}

int nccl_self_check(int n_gpus, size_t bytes, FILE *out, char *err, size_t errlen)
{
    (void)n_gpus, (void)bytes, (void)out;
    snprintf(err, errlen, "%s", WHY);
    return -1;
}

int nccl_measure_bus(int n_gpus, size_t bytes, double *allreduce_Bps, double *allgather_Bps, char *err,
                     size_t errlen)
{
    (void)n_gpus, (void)bytes;
    *allreduce_Bps = *allgather_Bps = 0;
    snprintf(err, errlen, "%s", WHY);
    return -1;
}
