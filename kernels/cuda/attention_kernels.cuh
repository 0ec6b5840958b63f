/* Varlen causal attention, forward and backward, in the FlashAttention-2 manner, with f32 FMA:
 * the reference GPU implementation, used for f32 activations, for head dims other than 64 and
 * 128, and whenever LABENCH_ATTN=scalar. (attention_wmma.cuh is the tensor-core version for
 * bf16; the launchers in attention.cu choose.)
 *
 * Layout (kernels/backend.h): qkv[N, (H + 2 Hkv) D] holds per token [H*D q | Hkv*D k | Hkv*D v];
 * out[N, H D]; lse[h * N + n] = log sum_j exp(s_nj) over the scaled scores s = q.k / sqrt(D).
 * Segments [cu_seqlens[s], cu_seqlens[s+1]) attend causally inside themselves only; query head h
 * reads kv head h / (H / Hkv). Positions inside a segment count from its start, so a segment
 * gives the same result wherever it sits in the batch (packed == unpacked).
 *
 * cu_seqlens lives on the device, so the host cannot build a tile table. Instead the grid is
 * (tiles of max_seqlen, heads, segments): each block reads its segment's bounds and returns at
 * once if its tile starts past the segment's end. Segments beyond the grid's z limit are covered
 * by further launches (seg_base).
 *
 * Threads: 128 per block, viewed as 16 (tx) x 8 (ty). A tile of R rows x K columns is spread so
 * that thread (tx, ty) owns rows ty + 8a and columns tx + 16b: the 16 threads sharing a row sit
 * in one half-warp, so row reductions are 4 xor-shuffles. Shared arrays of head-dim rows are
 * padded to DMAX + 1 floats (odd stride) so that 16 threads reading 16 different rows at the
 * same d hit 16 different banks.
 *
 * Head dims: kernels are instantiated for DMAX = 32, 64, 128; a runtime D <= DMAX is zero-padded
 * in shared memory (zeros add nothing to the dot products, and columns >= D are never stored),
 * so D = 16 (the tiny model) runs on the DMAX = 32 kernels.
 *
 * Forward: block = (query tile of FWD_BQ rows, head h, segment). It walks key tiles from the
 * segment start up to its last query with an online softmax (running max m, running sum l,
 * rescaled accumulator), and writes out = acc / l and lse = m + log l.
 *
 * Backward: P = exp(S - lse), dP = dO V^T, Di = rowsum(dO * O), dS = P * (dP - Di),
 *   dV = P^T dO, dK = scale * dS^T Q, dQ = scale * dS K.
 * One block per (key tile of BWD_BK keys, kv head g, segment) owns dK and dV of those keys in
 * registers, over every query head of g's group and every query tile at or after the key tile.
 * dQ gets contributions from many key tiles: they are atomically added into an f32 scratch
 * [N, H D], converted to the act dtype at the end.
 */
#ifndef LABENCH_CUDA_ATTENTION_KERNELS_CUH
#define LABENCH_CUDA_ATTENTION_KERNELS_CUH

#include "kernels/cuda/device.cuh"

#define ATT_THREADS 128
#define FWD_BQ 64
#define BWD_BQ 32

/* key tile of the forward and of the backward: 32 for the widest head dim, to keep shared
 * memory near 73 KiB (fits the 99 KiB opt-in limit of sm_86/sm_89 as well as A100 and H100) */
template <int DMAX> struct AttnTiles {
    static constexpr int FWD_BK = DMAX > 64 ? 32 : 64;
    static constexpr int BWD_BK = DMAX > 64 ? 32 : 64;
};

template <int DMAX>
static constexpr size_t fwd_smem_floats()
{
    return (size_t)FWD_BQ * (DMAX + 1)                      /* Qs */
         + (size_t)AttnTiles<DMAX>::FWD_BK * (DMAX + 1)     /* Ks */
         + (size_t)AttnTiles<DMAX>::FWD_BK * DMAX           /* Vs */
         + (size_t)FWD_BQ * (AttnTiles<DMAX>::FWD_BK + 1);  /* Ps */
}

template <int DMAX>
static constexpr size_t bwd_smem_floats()
{
    return 2 * (size_t)AttnTiles<DMAX>::BWD_BK * (DMAX + 1)     /* Ks, Vs */
         + 2 * (size_t)BWD_BQ * (DMAX + 1)                      /* Qs, dOs */
         + 2 * (size_t)BWD_BQ * (AttnTiles<DMAX>::BWD_BK + 1)   /* Ps, dSs */
         + 2 * (size_t)BWD_BQ;                                  /* lse, Di of the query tile */
}

/* sum over the 16 threads of a half-warp (the threads that share a row) */
__device__ __forceinline__ float row_sum16(float v)
{
    for (int off = 8; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}
__device__ __forceinline__ float row_max16(float v)
{
    for (int off = 8; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

/* dst[r * pitch + d] = src row r (of rows [0, n) with row stride `stride`), times mul; zero for
 * rows >= n or d >= D, so padded rows and columns contribute nothing */
template <typename T, int ROWS, int DMAX>
__device__ __forceinline__ void load_tile(float *dst, int pitch, const T *src, size_t stride, int n, int D, float mul)
{
    for (int e = threadIdx.x; e < ROWS * DMAX; e += ATT_THREADS) {
        const int r = e / DMAX, d = e % DMAX;
        dst[r * pitch + d] = (r < n && d < D) ? ld(src + (size_t)r * stride + d) * mul : 0.0f;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* forward */

template <typename T, int DMAX>
__global__ void __launch_bounds__(ATT_THREADS)
attention_forward_kernel(T *out, float *lse, const T *qkv, const int32_t *cu_seqlens, int seg_base,
                         int N, int H, int Hkv, int D, float scale)
{
    constexpr int BQ = FWD_BQ, BK = AttnTiles<DMAX>::FWD_BK;
    constexpr int RA = BQ / 8;      /* query rows per thread: ty + 8a */
    constexpr int KB = BK / 16;     /* keys per thread in the score tile: tx + 16b */
    constexpr int CB = DMAX / 16;   /* output columns per thread: tx + 16c */
    constexpr int LDQ = DMAX + 1, LDK = DMAX + 1, LDV = DMAX, LDP = BK + 1;
    extern __shared__ float smem[];
    float *Qs = smem, *Ks = Qs + BQ * LDQ, *Vs = Ks + BK * LDK, *Ps = Vs + BK * LDV;

    const int seg = seg_base + blockIdx.z;
    const int start = cu_seqlens[seg], len = cu_seqlens[seg + 1] - start;
    /* the last query tiles see the most keys: give them the lowest block ids so they start first */
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BQ;
    if (q0 >= len) return;
    const int h = blockIdx.y, g = h / (H / Hkv);
    const size_t stride = (size_t)(H + 2 * Hkv) * D;
    const int nq = min(BQ, len - q0);
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;

    /* Q pre-scaled, so the scores below are already s = q.k / sqrt(D) */
    load_tile<T, BQ, DMAX>(Qs, LDQ, qkv + (size_t)(start + q0) * stride + (size_t)h * D, stride, nq, D, scale);

    float m[RA], l[RA], acc[RA][CB];
#pragma unroll
    for (int a = 0; a < RA; a++) {
        m[a] = -INFINITY;
        l[a] = 0.0f;   /* this thread's share of the row sum; the 16 shares add up at the end */
#pragma unroll
        for (int c = 0; c < CB; c++) acc[a][c] = 0.0f;
    }

    const int kend = q0 + nq;   /* causal: the tile's queries see keys [0, kend) of the segment */
    for (int k0 = 0; k0 < kend; k0 += BK) {
        const int nk = min(BK, kend - k0);
        __syncthreads();   /* the previous tile's Ks, Vs, Ps are no longer read */
        const T *krow = qkv + (size_t)(start + k0) * stride;
        load_tile<T, BK, DMAX>(Ks, LDK, krow + (size_t)(H + g) * D, stride, nk, D, 1.0f);
        load_tile<T, BK, DMAX>(Vs, LDV, krow + (size_t)(H + Hkv + g) * D, stride, nk, D, 1.0f);
        __syncthreads();

        /* S = Q K^T for this thread's RA x KB scores */
        float s[RA][KB];
#pragma unroll
        for (int a = 0; a < RA; a++)
#pragma unroll
            for (int b = 0; b < KB; b++) s[a][b] = 0.0f;
#pragma unroll 4
        for (int d = 0; d < DMAX; d++) {
            float q[RA], k[KB];
#pragma unroll
            for (int a = 0; a < RA; a++) q[a] = Qs[(ty + 8 * a) * LDQ + d];
#pragma unroll
            for (int b = 0; b < KB; b++) k[b] = Ks[(tx + 16 * b) * LDK + d];
#pragma unroll
            for (int a = 0; a < RA; a++)
#pragma unroll
                for (int b = 0; b < KB; b++) s[a][b] = fmaf(q[a], k[b], s[a][b]);
        }

        /* online softmax: mask, new running max, rescale what was summed under the old one */
#pragma unroll
        for (int a = 0; a < RA; a++) {
            const int i = ty + 8 * a, qi = q0 + i;
            float mx = -INFINITY;
#pragma unroll
            for (int b = 0; b < KB; b++) {
                const int j = tx + 16 * b;
                if (!(i < nq && j < nk && k0 + j <= qi)) s[a][b] = -INFINITY;
                mx = fmaxf(mx, s[a][b]);
            }
            const float m_new = fmaxf(m[a], row_max16(mx));
            /* a row with nothing unmasked yet (only padding rows) keeps m = -inf: subtract 0
             * instead, so that exp(-inf - -inf) never makes a NaN */
            const float m_ref = m_new == -INFINITY ? 0.0f : m_new;
            const float corr = expf(m[a] - m_ref);
            l[a] *= corr;
#pragma unroll
            for (int c = 0; c < CB; c++) acc[a][c] *= corr;
#pragma unroll
            for (int b = 0; b < KB; b++) {
                const float p = expf(s[a][b] - m_ref);
                l[a] += p;
                Ps[i * LDP + tx + 16 * b] = p;
            }
            m[a] = m_new;
        }
        __syncthreads();

        /* acc += P V over the nk keys of the tile (masked P and padded V are zero) */
        for (int j = 0; j < nk; j++) {
            float p[RA], v[CB];
#pragma unroll
            for (int a = 0; a < RA; a++) p[a] = Ps[(ty + 8 * a) * LDP + j];
#pragma unroll
            for (int c = 0; c < CB; c++) v[c] = Vs[j * LDV + tx + 16 * c];
#pragma unroll
            for (int a = 0; a < RA; a++)
#pragma unroll
                for (int c = 0; c < CB; c++) acc[a][c] = fmaf(p[a], v[c], acc[a][c]);
        }
    }

#pragma unroll
    for (int a = 0; a < RA; a++) {
        const int i = ty + 8 * a;
        const float lsum = row_sum16(l[a]);   /* every thread of the warp takes part */
        if (i < nq) {
            const size_t n = (size_t)start + q0 + i;
            const float inv = 1.0f / lsum;   /* lsum >= 1: key 0 of the segment is never masked */
            T *o = out + n * H * D + (size_t)h * D;
#pragma unroll
            for (int c = 0; c < CB; c++) {
                const int col = tx + 16 * c;
                if (col < D) st(o + col, acc[a][c] * inv);
            }
            if (tx == 0) lse[(size_t)h * N + n] = m[a] + logf(lsum);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* backward */

/* Di[h * N + n] = sum_d dO[n, h, d] * O[n, h, d]: one warp per (token, head) */
template <typename T>
__global__ void attention_di_kernel(float *Di, const T *dout, const T *out, int N, int H, int D)
{
    const size_t w = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (w >= (size_t)N * H) return;   /* whole warps leave together */
    const size_t n = w / H;
    const int h = (int)(w % H);
    const T *o = out + n * H * D + (size_t)h * D, *dy = dout + n * H * D + (size_t)h * D;
    float acc = 0.0f;
    for (int d = lane; d < D; d += 32) acc += ld(o + d) * ld(dy + d);
    acc = warp_sum(acc);
    if (lane == 0) Di[(size_t)h * N + n] = acc;
}

template <typename T, int DMAX>
__global__ void __launch_bounds__(ATT_THREADS)
attention_backward_kernel(T *dqkv, float *dq_acc, const T *dout, const T *qkv, const float *lse, const float *Di,
                          const int32_t *cu_seqlens, int seg_base, int N, int H, int Hkv, int D, float scale)
{
    constexpr int BK = AttnTiles<DMAX>::BWD_BK, BQ = BWD_BQ;
    constexpr int QA = BQ / 8;      /* score tile: query rows ty + 8a */
    constexpr int KB = BK / 16;     /* score tile: keys tx + 16b */
    constexpr int KA = BK / 8;      /* dK, dV accumulators: keys ty + 8a */
    constexpr int CB = DMAX / 16;   /* columns tx + 16c (dK, dV, dQ) */
    constexpr int LD = DMAX + 1, LDP = BK + 1;
    extern __shared__ float smem[];
    float *Ks = smem, *Vs = Ks + BK * LD, *Qs = Vs + BK * LD, *dOs = Qs + BQ * LD;
    float *Ps = dOs + BQ * LD, *dSs = Ps + BQ * LDP, *lse_s = dSs + BQ * LDP, *Di_s = lse_s + BQ;

    const int seg = seg_base + blockIdx.z;
    const int start = cu_seqlens[seg], len = cu_seqlens[seg + 1] - start;
    const int k0 = blockIdx.x * BK;   /* the first key tiles have the most queries: they start first */
    if (k0 >= len) return;
    const int g = blockIdx.y, group = H / Hkv;
    const size_t stride = (size_t)(H + 2 * Hkv) * D, ostride = (size_t)H * D;
    const int nk = min(BK, len - k0);
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;

    const T *krow = qkv + (size_t)(start + k0) * stride;
    load_tile<T, BK, DMAX>(Ks, LD, krow + (size_t)(H + g) * D, stride, nk, D, 1.0f);
    load_tile<T, BK, DMAX>(Vs, LD, krow + (size_t)(H + Hkv + g) * D, stride, nk, D, 1.0f);

    float dK[KA][CB], dV[KA][CB];
#pragma unroll
    for (int a = 0; a < KA; a++)
#pragma unroll
        for (int c = 0; c < CB; c++) { dK[a][c] = 0.0f; dV[a][c] = 0.0f; }

    for (int h = g * group; h < (g + 1) * group; h++) {
        /* causal: only queries at or after the tile's first key see it */
        for (int q0 = k0; q0 < len; q0 += BQ) {
            const int nq = min(BQ, len - q0);
            __syncthreads();   /* the previous query tile is no longer read (and Ks, Vs are written) */
            const size_t n0 = (size_t)start + q0;
            load_tile<T, BQ, DMAX>(Qs, LD, qkv + n0 * stride + (size_t)h * D, stride, nq, D, 1.0f);
            load_tile<T, BQ, DMAX>(dOs, LD, dout + n0 * ostride + (size_t)h * D, ostride, nq, D, 1.0f);
            if (tid < BQ) {
                lse_s[tid] = tid < nq ? lse[(size_t)h * N + n0 + tid] : 0.0f;
                Di_s[tid] = tid < nq ? Di[(size_t)h * N + n0 + tid] : 0.0f;
            }
            __syncthreads();

            /* S = Q K^T and dP = dO V^T for this thread's QA x KB entries */
            float s[QA][KB], dp[QA][KB];
#pragma unroll
            for (int a = 0; a < QA; a++)
#pragma unroll
                for (int b = 0; b < KB; b++) { s[a][b] = 0.0f; dp[a][b] = 0.0f; }
#pragma unroll 4
            for (int d = 0; d < DMAX; d++) {
                float q[QA], o[QA], k[KB], v[KB];
#pragma unroll
                for (int a = 0; a < QA; a++) { q[a] = Qs[(ty + 8 * a) * LD + d]; o[a] = dOs[(ty + 8 * a) * LD + d]; }
#pragma unroll
                for (int b = 0; b < KB; b++) { k[b] = Ks[(tx + 16 * b) * LD + d]; v[b] = Vs[(tx + 16 * b) * LD + d]; }
#pragma unroll
                for (int a = 0; a < QA; a++)
#pragma unroll
                    for (int b = 0; b < KB; b++) {
                        s[a][b] = fmaf(q[a], k[b], s[a][b]);
                        dp[a][b] = fmaf(o[a], v[b], dp[a][b]);
                    }
            }
            /* P = exp(scale * S - lse) and dS = P (dP - Di), zero where masked */
#pragma unroll
            for (int a = 0; a < QA; a++) {
                const int i = ty + 8 * a;
#pragma unroll
                for (int b = 0; b < KB; b++) {
                    const int j = tx + 16 * b;
                    const bool valid = i < nq && j < nk && k0 + j <= q0 + i;
                    const float p = valid ? expf(s[a][b] * scale - lse_s[i]) : 0.0f;
                    Ps[i * LDP + j] = p;
                    dSs[i * LDP + j] = valid ? p * (dp[a][b] - Di_s[i]) : 0.0f;
                }
            }
            __syncthreads();

            /* dV += P^T dO and dK += dS^T Q (scale applied when storing) */
            for (int i = 0; i < nq; i++) {
                float p[KA], ds[KA], o[CB], q[CB];
#pragma unroll
                for (int a = 0; a < KA; a++) { p[a] = Ps[i * LDP + ty + 8 * a]; ds[a] = dSs[i * LDP + ty + 8 * a]; }
#pragma unroll
                for (int c = 0; c < CB; c++) { o[c] = dOs[i * LD + tx + 16 * c]; q[c] = Qs[i * LD + tx + 16 * c]; }
#pragma unroll
                for (int a = 0; a < KA; a++)
#pragma unroll
                    for (int c = 0; c < CB; c++) {
                        dV[a][c] = fmaf(p[a], o[c], dV[a][c]);
                        dK[a][c] = fmaf(ds[a], q[c], dK[a][c]);
                    }
            }

            /* dQ += scale * dS K, one query row at a time, added into the f32 scratch */
#pragma unroll
            for (int a = 0; a < QA; a++) {
                const int i = ty + 8 * a;
                float t[CB];
#pragma unroll
                for (int c = 0; c < CB; c++) t[c] = 0.0f;
                for (int j = 0; j < nk; j++) {
                    const float ds = dSs[i * LDP + j];
#pragma unroll
                    for (int c = 0; c < CB; c++) t[c] = fmaf(ds, Ks[j * LD + tx + 16 * c], t[c]);
                }
                if (i < nq) {
                    float *dq = dq_acc + (n0 + i) * ostride + (size_t)h * D;
#pragma unroll
                    for (int c = 0; c < CB; c++) {
                        const int col = tx + 16 * c;
                        if (col < D) atomicAdd(dq + col, t[c] * scale);
                    }
                }
            }
        }
    }

    /* this block is the only writer of dK, dV for its keys of kv head g */
#pragma unroll
    for (int a = 0; a < KA; a++) {
        const int j = ty + 8 * a;
        if (j >= nk) continue;
        T *row = dqkv + (size_t)(start + k0 + j) * stride;
#pragma unroll
        for (int c = 0; c < CB; c++) {
            const int col = tx + 16 * c;
            if (col < D) {
                st(row + (size_t)(H + g) * D + col, dK[a][c] * scale);
                st(row + (size_t)(H + Hkv + g) * D + col, dV[a][c]);
            }
        }
    }
}

/* dqkv's query part from the f32 dQ scratch */
template <typename T>
__global__ void attention_dq_store_kernel(T *dqkv, const float *dq_acc, int N, int H, int Hkv, int D)
{
    const size_t HD = (size_t)H * D, total = (size_t)N * HD, stride = (size_t)(H + 2 * Hkv) * D;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        st(dqkv + (i / HD) * stride + i % HD, dq_acc[i]);
}

#endif
