/* Measured communication figures on a real GPU (plain C over the CUDA runtime API; compiled
 * only when nvcc is found, see the Makefile). comm_set_measured_pcie puts the results into a
 * CommConfig, which then reports them as measured. */
#include <cuda_runtime.h>
#include <stdio.h>

#include "bench/comm/bandwidth.h"
#include "bench/comm/nccl.h"

#define PCIE_BYTES ((size_t)256 << 20)   /* large enough that launch latency is noise */
#define PCIE_REPS 8

static int check(cudaError_t e, const char *what, char *err, size_t errlen)
{
    if (e == cudaSuccess) return 0;
    snprintf(err, errlen, "%s: %s", what, cudaGetErrorString(e));
    return -1;
}

/* Seconds for PCIE_REPS copies in one direction, after one untimed warm-up copy. */
static int time_copies(void *dst, const void *src, enum cudaMemcpyKind kind, cudaStream_t s, cudaEvent_t e0,
                       cudaEvent_t e1, double *seconds, char *err, size_t errlen)
{
    float ms = 0;
    if (check(cudaMemcpyAsync(dst, src, PCIE_BYTES, kind, s), "cudaMemcpyAsync", err, errlen)) return -1;
    if (check(cudaEventRecord(e0, s), "cudaEventRecord", err, errlen)) return -1;
    for (int i = 0; i < PCIE_REPS; i++)
        if (check(cudaMemcpyAsync(dst, src, PCIE_BYTES, kind, s), "cudaMemcpyAsync", err, errlen)) return -1;
    if (check(cudaEventRecord(e1, s), "cudaEventRecord", err, errlen)) return -1;
    if (check(cudaEventSynchronize(e1), "cudaEventSynchronize", err, errlen)) return -1;
    if (check(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime", err, errlen)) return -1;
    if (ms <= 0) {
        snprintf(err, errlen, "copies timed at %g ms: no usable measurement", (double)ms);
        return -1;
    }
    *seconds = ms * 1e-3;
    return 0;
}

int comm_measure_pcie(double *h2d_Bps, double *d2h_Bps, char *err, size_t errlen)
{
    void *host = NULL, *dev = NULL;
    cudaStream_t s = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double t_up = 0, t_down = 0;
    int rc = -1;
    *h2d_Bps = *d2h_Bps = 0;
    if (check(cudaMallocHost(&host, PCIE_BYTES), "cudaMallocHost (pinned host buffer)", err, errlen)) goto out;
    if (check(cudaMalloc(&dev, PCIE_BYTES), "cudaMalloc", err, errlen)) goto out;
    if (check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate", err, errlen)) goto out;
    if (check(cudaEventCreate(&e0), "cudaEventCreate", err, errlen)) goto out;
    if (check(cudaEventCreate(&e1), "cudaEventCreate", err, errlen)) goto out;
    if (check(cudaMemsetAsync(dev, 0, PCIE_BYTES, s), "cudaMemsetAsync", err, errlen)) goto out;
    if (time_copies(dev, host, cudaMemcpyHostToDevice, s, e0, e1, &t_up, err, errlen)) goto out;
    if (time_copies(host, dev, cudaMemcpyDeviceToHost, s, e0, e1, &t_down, err, errlen)) goto out;
    *h2d_Bps = (double)PCIE_BYTES * PCIE_REPS / t_up;
    *d2h_Bps = (double)PCIE_BYTES * PCIE_REPS / t_down;
    rc = 0;
out:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (s) cudaStreamDestroy(s);
    if (dev) cudaFree(dev);
    if (host) cudaFreeHost(host);
    return rc;
}

int comm_measure_collectives(int n_gpus, size_t bytes, double *allreduce_bus_Bps, double *allgather_bus_Bps,
                             char *err, size_t errlen)
{
    /* NCCL is loaded at run time (bench/comm/nccl_cuda.c): one process over n_gpus local GPUs */
    return nccl_measure_bus(n_gpus, bytes, allreduce_bus_Bps, allgather_bus_Bps, err, errlen);
}
