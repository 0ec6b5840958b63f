/* Launchers of the varlen causal attention kernels: grids, shared memory opt-in, the dQ
 * scratch, and the choice of kernel.
 *
 * Two implementations of the same contract:
 *   attention_wmma.cuh     tensor cores (WMMA, bf16 in, f32 accumulate), for bf16 activations
 *                          with D = 64 or 128, on devices with the shared memory for it
 *                          (A100, H100, H200: yes; sm_86 / sm_89 parts: no);
 *   attention_kernels.cuh  f32 FMA, for everything else (f32 mode, other head dims), and for
 *                          everything when the environment has LABENCH_ATTN=scalar (read when
 *                          the backend is created: a way to rule the tensor-core path out).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/attention_kernels.cuh"
#include "kernels/cuda/attention_wmma.cuh"

#define MAX_GRID_Z 65535

/* ------------------------------------------------------------------------------------------ */
/* launchers */

static int dmax_for(int D)
{
    if (D <= 32) return 32;
    if (D <= 64) return 64;
    if (D <= 128) return 128;
    fprintf(stderr, "labench: the CUDA attention supports head dims up to 128 (asked %d)\n", D);
    exit(2);
}

template <typename T, int DMAX>
static void forward_launch(Backend *be, T *out, float *lse, const T *qkv, const int32_t *cu_seqlens, int n_segs,
                           int max_seqlen, int N, int H, int Hkv, int D)
{
    const size_t smem = fwd_smem_floats<DMAX>() * sizeof(float);
    const float scale = (float)(1.0 / sqrt((double)D));
    for (int s0 = 0; s0 < n_segs; s0 += MAX_GRID_Z) {
        dim3 grid(ceil_div((size_t)max_seqlen, FWD_BQ), H, min(n_segs - s0, MAX_GRID_Z));
        attention_forward_kernel<T, DMAX><<<grid, ATT_THREADS, smem, cuda_stream(be)>>>(out, lse, qkv, cu_seqlens, s0, N,
                                                                                       H, Hkv, D, scale);
        CUDA_LAUNCH_CHECK();
    }
}

template <typename T, int DMAX>
static void backward_launch(Backend *be, T *dqkv, float *dq_acc, const T *dout, const T *qkv, const float *lse,
                            const float *Di, const int32_t *cu_seqlens, int n_segs, int max_seqlen, int N, int H, int Hkv,
                            int D)
{
    const size_t smem = bwd_smem_floats<DMAX>() * sizeof(float);
    const float scale = (float)(1.0 / sqrt((double)D));
    for (int s0 = 0; s0 < n_segs; s0 += MAX_GRID_Z) {
        dim3 grid(ceil_div((size_t)max_seqlen, AttnTiles<DMAX>::BWD_BK), Hkv, min(n_segs - s0, MAX_GRID_Z));
        attention_backward_kernel<T, DMAX><<<grid, ATT_THREADS, smem, cuda_stream(be)>>>(
            dqkv, dq_acc, dout, qkv, lse, Di, cu_seqlens, s0, N, H, Hkv, D, scale);
        CUDA_LAUNCH_CHECK();
    }
}

/* the tensor-core path: bf16, D of 64 or 128, and 16-byte aligned inputs (their rows are read
 * 16 bytes at a time; buffers from the arena always are) */
static int wmma_path(Backend *be, int D, const void *a, const void *b)
{
    const uintptr_t mis = ((uintptr_t)a | (uintptr_t)b) & 15u;
    return cuda_impl(be)->attn_wmma && be->act_dtype == DT_BF16 && (D == 64 || D == 128) && mis == 0;
}

/* cuDNN's path: bf16, cuDNN loaded, and not ruled out by --attention wmma */
static int cudnn_path(Backend *be)
{
    const CudaImpl *im = cuda_impl(be);
    return im->cudnn && be->act_dtype == DT_BF16 && im->attn_mode != ATTN_MODE_WMMA;
}

void cuda_attention_cudnn_declined(Backend *be, const char *why)
{
    CudaImpl *im = cuda_impl(be);
    if (im->attn_mode == ATTN_MODE_CUDNN) {
        fprintf(stderr, "labench: --attention cudnn: cuDNN does not take this attention: %s (--attention auto runs "
                "labench's own kernels where it does not)\n", why);
        exit(2);
    }
    im->attn_declined++;
    snprintf(be->attention_desc, sizeof be->attention_desc, "%.280s; %ld calls on labench's kernels where cuDNN "
             "declined the shape (last: %.100s)", im->attn_base, im->attn_declined, why);
}

template <int D>
static void forward_launch_wmma(Backend *be, bf16 *out, float *lse, const bf16 *qkv, const int32_t *cu_seqlens,
                                int n_segs, int max_seqlen, int N, int H, int Hkv)
{
    const float scale = (float)(1.0 / sqrt((double)D));
    for (int s0 = 0; s0 < n_segs; s0 += MAX_GRID_Z) {
        dim3 grid(ceil_div((size_t)max_seqlen, WF_BQ), H, min(n_segs - s0, MAX_GRID_Z));
        attention_forward_wmma_kernel<D><<<grid, WMMA_THREADS, WmmaFwdSmem<D>::BYTES, cuda_stream(be)>>>(
            out, lse, qkv, cu_seqlens, s0, N, H, Hkv, scale);
        CUDA_LAUNCH_CHECK();
    }
}

template <int D>
static void backward_launch_wmma(Backend *be, bf16 *dqkv, float *dq_acc, const bf16 *dout, const bf16 *qkv,
                                 const float *lse, const float *Di, const int32_t *cu_seqlens, int n_segs, int max_seqlen,
                                 int N, int H, int Hkv)
{
    const float scale = (float)(1.0 / sqrt((double)D));
    for (int s0 = 0; s0 < n_segs; s0 += MAX_GRID_Z) {
        dim3 grid(ceil_div((size_t)max_seqlen, WB_BK), Hkv, min(n_segs - s0, MAX_GRID_Z));
        attention_backward_wmma_kernel<D><<<grid, WMMA_THREADS, WmmaBwdSmem<D>::BYTES, cuda_stream(be)>>>(
            dqkv, dq_acc, dout, qkv, lse, Di, cu_seqlens, s0, N, H, Hkv, scale);
        CUDA_LAUNCH_CHECK();
    }
}

template <typename T>
static void launch_attention_forward(Backend *be, void *out, void *lse, const void *qkv, const int32_t *cu_seqlens,
                                     int n_segs, int max_seqlen, int N, int H, int Hkv, int D)
{
    /* tokens outside every segment (none in a well-formed batch) get zeros, as on the CPU */
    CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)N * H * D * sizeof(T), cuda_stream(be)));
    CUDA_CHECK(cudaMemsetAsync(lse, 0, (size_t)N * H * sizeof(float), cuda_stream(be)));
    if (n_segs <= 0 || max_seqlen <= 0) return;
    if (cudnn_path(be)) {   /* cuDNN's fused kernels (attention_cudnn.cu) where they take the shape */
        char why[512];
        if (cuda_cudnn_attention_forward(be, out, lse, qkv, cu_seqlens, n_segs, max_seqlen, N, H, Hkv, D, why, sizeof why))
            return;
        cuda_attention_cudnn_declined(be, why);
    }
    if (wmma_path(be, D, qkv, qkv)) {
        if (D == 64) forward_launch_wmma<64>(be, (bf16 *)out, (float *)lse, (const bf16 *)qkv, cu_seqlens, n_segs, max_seqlen, N, H, Hkv);
        else forward_launch_wmma<128>(be, (bf16 *)out, (float *)lse, (const bf16 *)qkv, cu_seqlens, n_segs, max_seqlen, N, H, Hkv);
        return;
    }
    switch (dmax_for(D)) {
    case 32: forward_launch<T, 32>(be, (T *)out, (float *)lse, (const T *)qkv, cu_seqlens, n_segs, max_seqlen, N, H, Hkv, D); break;
    case 64: forward_launch<T, 64>(be, (T *)out, (float *)lse, (const T *)qkv, cu_seqlens, n_segs, max_seqlen, N, H, Hkv, D); break;
    default: forward_launch<T, 128>(be, (T *)out, (float *)lse, (const T *)qkv, cu_seqlens, n_segs, max_seqlen, N, H, Hkv, D); break;
    }
}

template <typename T>
static void launch_attention_backward(Backend *be, void *dqkv, const void *dout, const void *qkv, const void *out,
                                      const void *lse, const int32_t *cu_seqlens, int n_segs, int max_seqlen,
                                      int N, int H, int Hkv, int D)
{
    const size_t stride = (size_t)(H + 2 * Hkv) * D;
    /* rows outside every segment stay zero; inside, dK and dV are stored by their owner block
     * and dQ by the final conversion */
    CUDA_CHECK(cudaMemsetAsync(dqkv, 0, (size_t)N * stride * sizeof(T), cuda_stream(be)));
    if (n_segs <= 0 || max_seqlen <= 0) return;
    if (cudnn_path(be)) {
        char why[512];
        if (cuda_cudnn_attention_backward(be, dqkv, dout, qkv, out, lse, cu_seqlens, n_segs, max_seqlen, N, H, Hkv, D,
                                          why, sizeof why))
            return;
        cuda_attention_cudnn_declined(be, why);
    }
    /* scratch from the arena (so it shows in the peak): dQ accumulator [N, H D] f32, zeroed
     * here, and Di [H, N], fully written by the Di kernel */
    const size_t dq_bytes = (size_t)N * H * D * sizeof(float), di_bytes = (size_t)N * H * sizeof(float);
    float *dq_acc = (float *)cuda_scratch(be, dq_bytes + di_bytes);
    if (!dq_acc) {
        fprintf(stderr, "labench: out of GPU memory for the attention backward's scratch (%.2f GiB); "
                "try fewer --max-tokens or --recompute\n", (double)(dq_bytes + di_bytes) / (1u << 30));
        exit(2);
    }
    float *Di = dq_acc + (size_t)N * H * D;
    CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, dq_bytes, cuda_stream(be)));
    const size_t warps = (size_t)N * H;
    attention_di_kernel<T><<<ceil_div(warps * 32, 256), 256, 0, cuda_stream(be)>>>(Di, (const T *)dout, (const T *)out, N,
                                                                                   H, D);
    CUDA_LAUNCH_CHECK();
    if (wmma_path(be, D, qkv, dout)) {
        if (D == 64) backward_launch_wmma<64>(be, (bf16 *)dqkv, dq_acc, (const bf16 *)dout, (const bf16 *)qkv, (const float *)lse, Di, cu_seqlens, n_segs, max_seqlen, N, H, Hkv);
        else backward_launch_wmma<128>(be, (bf16 *)dqkv, dq_acc, (const bf16 *)dout, (const bf16 *)qkv, (const float *)lse, Di, cu_seqlens, n_segs, max_seqlen, N, H, Hkv);
    } else switch (dmax_for(D)) {
    case 32: backward_launch<T, 32>(be, (T *)dqkv, dq_acc, (const T *)dout, (const T *)qkv, (const float *)lse, Di, cu_seqlens, n_segs, max_seqlen, N, H, Hkv, D); break;
    case 64: backward_launch<T, 64>(be, (T *)dqkv, dq_acc, (const T *)dout, (const T *)qkv, (const float *)lse, Di, cu_seqlens, n_segs, max_seqlen, N, H, Hkv, D); break;
    default: backward_launch<T, 128>(be, (T *)dqkv, dq_acc, (const T *)dout, (const T *)qkv, (const float *)lse, Di, cu_seqlens, n_segs, max_seqlen, N, H, Hkv, D); break;
    }
    attention_dq_store_kernel<T><<<grid_for(be, (size_t)N * H * D, 256), 256, 0, cuda_stream(be)>>>((T *)dqkv, dq_acc, N,
                                                                                                  H, Hkv, D);
    CUDA_LAUNCH_CHECK();
}

void cuda_attention_forward(Backend *be, void *out, void *lse, const void *qkv, const int32_t *cu_seqlens,
                            int n_segs, int max_seqlen, int N, int H, int Hkv, int D)
{
    if (N <= 0) return;
    DISPATCH_ACT(be, launch_attention_forward, be, out, lse, qkv, cu_seqlens, n_segs, max_seqlen, N, H, Hkv, D);
}

void cuda_attention_backward(Backend *be, void *dqkv, const void *dout, const void *qkv, const void *out,
                             const void *lse, const int32_t *cu_seqlens, int n_segs, int max_seqlen,
                             int N, int H, int Hkv, int D)
{
    if (N <= 0) return;
    DISPATCH_ACT(be, launch_attention_backward, be, dqkv, dout, qkv, out, lse, cu_seqlens, n_segs, max_seqlen, N, H,
                 Hkv, D);
}

/* ------------------------------------------------------------------------------------------ */
/* setup: kernels over 48 KiB of dynamic shared memory must opt in, per kernel */

template <typename T, int DMAX>
static cudaError_t opt_in(size_t limit, size_t *need)
{
    const size_t f = fwd_smem_floats<DMAX>() * sizeof(float), b = bwd_smem_floats<DMAX>() * sizeof(float);
    if (f > *need) *need = f;
    if (b > *need) *need = b;
    if (f > limit || b > limit) return cudaErrorInvalidValue;
    cudaError_t e = cudaFuncSetAttribute(attention_forward_kernel<T, DMAX>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)f);
    if (e == cudaSuccess)
        e = cudaFuncSetAttribute(attention_backward_kernel<T, DMAX>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)b);
    return e;
}

template <int D>
static cudaError_t opt_in_wmma(size_t limit)
{
    const size_t f = WmmaFwdSmem<D>::BYTES, b = WmmaBwdSmem<D>::BYTES;
    if (f > limit || b > limit) return cudaErrorInvalidValue;
    cudaError_t e = cudaFuncSetAttribute(attention_forward_wmma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)f);
    if (e == cudaSuccess)
        e = cudaFuncSetAttribute(attention_backward_wmma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)b);
    return e;
}

int cuda_attention_setup(int device, int *wmma, char *err, size_t errlen)
{
    int limit = 0;
    cudaError_t e = cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    size_t need = 0;
    if (e == cudaSuccess) e = opt_in<float, 32>((size_t)limit, &need);
    if (e == cudaSuccess) e = opt_in<float, 64>((size_t)limit, &need);
    if (e == cudaSuccess) e = opt_in<float, 128>((size_t)limit, &need);
    if (e == cudaSuccess) e = opt_in<__nv_bfloat16, 32>((size_t)limit, &need);
    if (e == cudaSuccess) e = opt_in<__nv_bfloat16, 64>((size_t)limit, &need);
    if (e == cudaSuccess) e = opt_in<__nv_bfloat16, 128>((size_t)limit, &need);
    if (e != cudaSuccess) {
        snprintf(err, errlen, "the attention kernels need %zu bytes of shared memory per block, the device allows %d (%s)",
                 need, limit, cudaGetErrorString(e));
        return -1;
    }
    /* the tensor-core kernels are optional: without the shared memory for them, the scalar ones run */
    const char *env = getenv("LABENCH_ATTN");
    *wmma = 0;
    if (!(env && strcmp(env, "scalar") == 0)) {
        *wmma = opt_in_wmma<64>((size_t)limit) == cudaSuccess && opt_in_wmma<128>((size_t)limit) == cudaSuccess;
        (void)cudaGetLastError();
    }
    return 0;
}
