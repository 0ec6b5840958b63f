/* Device-side helpers shared by the kernel headers: f32 loads and stores of either activation
 * type, and warp / block reductions. Nothing here touches the host API, so the kernel headers
 * (ops_kernels.cuh, attention_kernels.cuh) depend on this file alone.
 */
#ifndef LABENCH_CUDA_DEVICE_CUH
#define LABENCH_CUDA_DEVICE_CUH

#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

/* ---- element access: f32 math on either activation type ---- */

__device__ __forceinline__ float ld(const float *p) { return *p; }
__device__ __forceinline__ float ld(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void st(float *p, float v) { *p = v; }
__device__ __forceinline__ void st(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

/* ---- reductions (blockDim.x a multiple of 32, at most 1024) ---- */

template <typename F>
__device__ __forceinline__ F warp_sum(F v)
{
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

/* Sum over the block, returned to every thread. Safe to call several times in a row: the leading
 * barrier keeps a fast warp from overwriting partials that a slow warp is still reading. */
template <typename F>
__device__ F block_sum(F v)
{
    __shared__ F partial[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < n_warps ? partial[lane] : (F)0;
    return warp_sum(v);
}

#endif
