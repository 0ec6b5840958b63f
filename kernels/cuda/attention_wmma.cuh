/* Tensor-core versions of the attention kernels, for bf16 activations and head dims 64 and 128
 * (the layout, masking and math are those of attention_kernels.cuh; read that first).
 *
 * The matrix products (S = Q K^T, dP = dO V^T, P V, P^T dO, dS^T Q, dS K) run on the tensor
 * cores through WMMA, 16x16x16 bf16 tiles with f32 accumulation. Everything per row (masking,
 * the online softmax, P and dS) is done by ordinary threads on tiles staged in shared memory:
 * the kernels only load, multiply and store fragments and never index into one, so they do not
 * depend on how a fragment's elements are spread over the lanes of a warp.
 *
 * Synchronisation: a fragment stored by a warp is read by other lanes of that warp only after a
 * __syncwarp(), and by other warps only after a __syncthreads().
 *
 * WMMA wants fragment pointers 32-byte aligned and leading dimensions a multiple of 16 bytes:
 * every shared tile below has a pitch of (columns + 8) bf16 or (columns + 4) f32 (which also
 * staggers rows across banks), tiles are carved at multiples of 32 bytes, and fragments start
 * at multiples of 16 rows and 16 columns, so every fragment pointer is a multiple of 32 bytes
 * from the start of shared memory, which is 128-byte aligned.
 *
 * Global memory: rows of qkv (forward and backward) and of dout (backward) are read 16 bytes
 * (8 bf16) at a time by wmma_load_rows. Row strides ((H + 2 Hkv) D and H D elements) and head
 * offsets (h D) are multiples of 8 elements for D = 64 and 128, so those reads are aligned when
 * the qkv and dout pointers are 16-byte aligned, which is all the launcher checks
 * (wmma_path in attention.cu; buffers from the arena are 256-byte aligned). out, lse, dqkv and
 * the dQ scratch are written one element at a time and need only their type's alignment.
 */
#ifndef LABENCH_CUDA_ATTENTION_WMMA_CUH
#define LABENCH_CUDA_ATTENTION_WMMA_CUH

#include <mma.h>

#include "kernels/cuda/device.cuh"

#define WMMA_THREADS 128
#define WF_BQ 64    /* forward: query rows per block, 16 per warp */
#define WF_BK 64    /* forward: keys per tile */
#define WB_BK 64    /* backward: keys per block, 16 per warp */
#define WB_BQ 32    /* backward: query rows per tile */

typedef __nv_bfloat16 bf16;

/* shared memory layouts, in bytes; every piece is a multiple of 32 bytes */
template <int D> struct WmmaFwdSmem {
    static constexpr int LDH = D + 8;                      /* Q, K, V tiles (bf16) */
    static constexpr int LDS = (D > WF_BK ? D : WF_BK) + 4; /* S, then P V (f32) */
    static constexpr int LDP = WF_BK + 8;                  /* P = P_hi + P_lo (bf16 each) */
    static constexpr size_t Q = 0;
    static constexpr size_t K = Q + (size_t)WF_BQ * LDH * 2;
    static constexpr size_t V = K + (size_t)WF_BK * LDH * 2;
    static constexpr size_t S = V + (size_t)WF_BK * LDH * 2;
    static constexpr size_t P = S + (size_t)WF_BQ * LDS * 4;
    static constexpr size_t P2 = P + (size_t)WF_BQ * LDP * 2;
    static constexpr size_t BYTES = P2 + (size_t)WF_BQ * LDP * 2;
};

template <int D> struct WmmaBwdSmem {
    static constexpr int LDH = D + 8;        /* K, V, Q, dO tiles (bf16) */
    static constexpr int LDS = WB_BK + 4;    /* S, dP (f32) */
    static constexpr int LDP = WB_BK + 8;    /* P, dS (bf16) */
    static constexpr int LDO = D + 4;        /* dQ, dK, dV staging (f32) */
    static constexpr size_t K = 0;
    static constexpr size_t V = K + (size_t)WB_BK * LDH * 2;
    static constexpr size_t Q = V + (size_t)WB_BK * LDH * 2;   /* from here on: per query tile */
    static constexpr size_t dO = Q + (size_t)WB_BQ * LDH * 2;
    static constexpr size_t S = dO + (size_t)WB_BQ * LDH * 2;
    static constexpr size_t dP = S + (size_t)WB_BQ * LDS * 4;
    static constexpr size_t P = dP + (size_t)WB_BQ * LDS * 4;
    static constexpr size_t dS = P + (size_t)WB_BQ * LDP * 2;
    static constexpr size_t P2 = dS + (size_t)WB_BQ * LDP * 2;    /* low halves of P and dS */
    static constexpr size_t dS2 = P2 + (size_t)WB_BQ * LDP * 2;
    static constexpr size_t LSE = dS2 + (size_t)WB_BQ * LDP * 2;
    static constexpr size_t DI = LSE + (size_t)WB_BQ * 4;
    static constexpr size_t BYTES = DI + (size_t)WB_BQ * 4;
    /* dQ staging [WB_BQ][LDO] f32 reuses S and dP (read by then); the final dK / dV staging
     * [WB_BK][LDO] f32 reuses everything from Q on */
};

/* dst[r * pitch + d] = src row r (row stride `stride` elements), rows >= n zero; D / 8 chunks
 * of 16 bytes per row */
template <int ROWS, int D>
__device__ __forceinline__ void wmma_load_rows(bf16 *dst, int pitch, const bf16 *src, size_t stride, int n)
{
    constexpr int CH = D / 8;
    for (int e = threadIdx.x; e < ROWS * CH; e += WMMA_THREADS) {
        const int r = e / CH, c = (e % CH) * 8;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (r < n) v = *(const uint4 *)(src + (size_t)r * stride + c);
        *(uint4 *)(dst + r * pitch + c) = v;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* forward: block = (64 query rows, head, segment); warp w owns rows 16w .. 16w + 15. Lane l
 * works on row 16w + l / 2: it masks and exponentiates keys 32 (l % 2) .. + 31 of each tile and
 * keeps output columns (D / 2)(l % 2) .. + D / 2 - 1 of the row in registers. */

template <int D>
__global__ void __launch_bounds__(WMMA_THREADS)
attention_forward_wmma_kernel(bf16 *out, float *lse, const bf16 *qkv, const int32_t *cu_seqlens, int seg_base,
                              int N, int H, int Hkv, float scale)
{
    using namespace nvcuda;
    typedef WmmaFwdSmem<D> L;
    constexpr int BQ = WF_BQ, BK = WF_BK, OC = D / 2;
    extern __shared__ __align__(128) unsigned char wsmem[];
    bf16 *Qs = (bf16 *)(wsmem + L::Q), *Ks = (bf16 *)(wsmem + L::K), *Vs = (bf16 *)(wsmem + L::V);
    float *Ss = (float *)(wsmem + L::S);
    bf16 *Ps = (bf16 *)(wsmem + L::P), *Ps2 = (bf16 *)(wsmem + L::P2);

    const int seg = seg_base + blockIdx.z;
    const int start = cu_seqlens[seg], len = cu_seqlens[seg + 1] - start;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BQ;   /* heaviest tiles first */
    if (q0 >= len) return;
    const int h = blockIdx.y, g = h / (H / Hkv);
    const size_t stride = (size_t)(H + 2 * Hkv) * D;
    const int nq = min(BQ, len - q0);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int i = 16 * warp + lane / 2, half = lane & 1;   /* this lane's row in the tile, and half */

    wmma_load_rows<BQ, D>(Qs, L::LDH, qkv + (size_t)(start + q0) * stride + (size_t)h * D, stride, nq);

    float m = -INFINITY, l = 0.0f, o[OC];
#pragma unroll
    for (int c = 0; c < OC; c++) o[c] = 0.0f;

    const int kend = q0 + nq;
    for (int k0 = 0; k0 < kend; k0 += BK) {
        const int nk = min(BK, kend - k0);
        __syncthreads();   /* every warp is done with the previous K, V (and the Q load is complete) */
        const bf16 *krow = qkv + (size_t)(start + k0) * stride;
        wmma_load_rows<BK, D>(Ks, L::LDH, krow + (size_t)(H + g) * D, stride, nk);
        wmma_load_rows<BK, D>(Vs, L::LDH, krow + (size_t)(H + Hkv + g) * D, stride, nk);
        __syncthreads();

        /* S rows of this warp = Q_w K^T; K stored [key][d] is K^T in column-major */
        for (int j = 0; j < BK / 16; j++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int d = 0; d < D; d += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b;
                wmma::load_matrix_sync(a, Qs + 16 * warp * L::LDH + d, L::LDH);
                wmma::load_matrix_sync(b, Ks + 16 * j * L::LDH + d, L::LDH);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(Ss + 16 * warp * L::LDS + 16 * j, acc, L::LDS, wmma::mem_row_major);
        }
        __syncwarp();

        /* online softmax on this lane's 32 keys of row i */
        float *srow = Ss + i * L::LDS + 32 * half;
        float mx = -INFINITY;
        for (int jj = 0; jj < 32; jj++) {
            const int j = 32 * half + jj;
            const bool valid = i < nq && j < nk && k0 + j <= q0 + i;
            const float s = valid ? srow[jj] * scale : -INFINITY;
            srow[jj] = s;   /* only this lane reads it back */
            mx = fmaxf(mx, s);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));   /* the row's other half */
        const float m_new = fmaxf(m, mx);
        const float m_ref = m_new == -INFINITY ? 0.0f : m_new;   /* padding rows: no NaN */
        const float corr = expf(m - m_ref);
        float psum = 0.0f;
        bf16 *prow = Ps + i * L::LDP + 32 * half, *prow2 = Ps2 + i * L::LDP + 32 * half;
        for (int jj = 0; jj < 32; jj++) {
            const float p = expf(srow[jj] - m_ref);
            psum += p;
            const bf16 p_hi = __float2bfloat16_rn(p);   /* P = hi + lo: see the backward below */
            prow[jj] = p_hi;
            prow2[jj] = __float2bfloat16_rn(p - __bfloat162float(p_hi));
        }
        l = l * corr + psum;   /* this lane's half of the row sum */
        m = m_new;
#pragma unroll
        for (int c = 0; c < OC; c++) o[c] *= corr;
        __syncwarp();   /* P complete, and S no longer read, before P V overwrites the S tile */

        /* P_w V into the staging tile, then added to the registers */
        for (int c16 = 0; c16 < D / 16; c16++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int k = 0; k < BK; k += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
                wmma::load_matrix_sync(b, Vs + k * L::LDH + 16 * c16, L::LDH);
                wmma::load_matrix_sync(a, Ps + 16 * warp * L::LDP + k, L::LDP);
                wmma::mma_sync(acc, a, b, acc);
                wmma::load_matrix_sync(a, Ps2 + 16 * warp * L::LDP + k, L::LDP);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(Ss + 16 * warp * L::LDS + 16 * c16, acc, L::LDS, wmma::mem_row_major);
        }
        __syncwarp();
        const float *pv = Ss + i * L::LDS + OC * half;
#pragma unroll
        for (int c = 0; c < OC; c++) o[c] += pv[c];
        /* the next tile's first __syncthreads keeps S from being overwritten before this read */
    }

    const float lsum = l + __shfl_xor_sync(0xffffffffu, l, 1);
    if (i < nq) {
        const size_t n = (size_t)start + q0 + i;
        const float inv = 1.0f / lsum;   /* >= 1: key 0 is never masked */
        bf16 *dst = out + n * H * D + (size_t)h * D + OC * half;
#pragma unroll
        for (int c = 0; c < OC; c++) dst[c] = __float2bfloat16_rn(o[c] * inv);
        if (half == 0) lse[(size_t)h * N + n] = m + logf(lsum);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* backward: block = (64 keys, kv head g, segment); warp w owns keys 16w .. 16w + 15 and keeps
 * their dK, dV in accumulator fragments across every query tile of every head of the group.
 * Per query tile of 32 rows: S and dP (32 x 64) as eight 16x16 tiles, two per warp; P and dS
 * by all threads; then dV += P^T dO and dK += dS^T Q for the warp's keys, and dQ = dS K for
 * (16 rows, D/2 columns) per warp, added into the f32 dQ scratch.
 *
 * P and dS enter the products as two bf16 terms each, x = hi + lo with hi = bf16(x) and
 * lo = bf16(x - hi) (about 16 significant bits): dS sums to zero over a row, so dQ and dK are
 * differences of large terms, and with a single bf16 term their error grew with the segment
 * length (4.6e-2 of the tensor's rms at 700 tokens in emulation). The second term costs three
 * more 16x16 products per tile and none of the inputs' precision: Q, K, V, dO are bf16 already. */

template <int D>
__global__ void __launch_bounds__(WMMA_THREADS)
attention_backward_wmma_kernel(bf16 *dqkv, float *dq_acc, const bf16 *dout, const bf16 *qkv, const float *lse,
                               const float *Di, const int32_t *cu_seqlens, int seg_base, int N, int H, int Hkv,
                               float scale)
{
    using namespace nvcuda;
    typedef WmmaBwdSmem<D> L;
    constexpr int BK = WB_BK, BQ = WB_BQ, DC = D / 16;
    extern __shared__ __align__(128) unsigned char wsmem[];
    bf16 *Ks = (bf16 *)(wsmem + L::K), *Vs = (bf16 *)(wsmem + L::V);
    bf16 *Qs = (bf16 *)(wsmem + L::Q), *dOs = (bf16 *)(wsmem + L::dO);
    float *Ss = (float *)(wsmem + L::S), *dPs = (float *)(wsmem + L::dP);
    bf16 *Ps = (bf16 *)(wsmem + L::P), *dSs = (bf16 *)(wsmem + L::dS);
    bf16 *Ps2 = (bf16 *)(wsmem + L::P2), *dSs2 = (bf16 *)(wsmem + L::dS2);
    float *lse_s = (float *)(wsmem + L::LSE), *Di_s = (float *)(wsmem + L::DI);
    float *dQst = Ss;                        /* [BQ][LDO], over S and dP */
    float *dKVst = (float *)(wsmem + L::Q);  /* [BK][LDO], over the whole per-query-tile area */

    const int seg = seg_base + blockIdx.z;
    const int start = cu_seqlens[seg], len = cu_seqlens[seg + 1] - start;
    const int k0 = blockIdx.x * BK;
    if (k0 >= len) return;
    const int g = blockIdx.y, group = H / Hkv;
    const size_t stride = (size_t)(H + 2 * Hkv) * D, ostride = (size_t)H * D;
    const int nk = min(BK, len - k0);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;

    const bf16 *krow = qkv + (size_t)(start + k0) * stride;
    wmma_load_rows<BK, D>(Ks, L::LDH, krow + (size_t)(H + g) * D, stride, nk);
    wmma_load_rows<BK, D>(Vs, L::LDH, krow + (size_t)(H + Hkv + g) * D, stride, nk);

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> dK[DC], dV[DC];
#pragma unroll
    for (int c = 0; c < DC; c++) {
        wmma::fill_fragment(dK[c], 0.0f);
        wmma::fill_fragment(dV[c], 0.0f);
    }

    /* the S / dP tile (rows 16 sr, keys 16 sc .. 16 sc + 31) this warp computes */
    const int sr = warp >> 1, sc = 2 * (warp & 1);
    for (int h = g * group; h < (g + 1) * group; h++) {
        for (int q0 = k0; q0 < len; q0 += BQ) {
            const int nq = min(BQ, len - q0);
            const size_t n0 = (size_t)start + q0;
            __syncthreads();   /* the previous query tile is no longer read; K, V loaded */
            wmma_load_rows<BQ, D>(Qs, L::LDH, qkv + n0 * stride + (size_t)h * D, stride, nq);
            wmma_load_rows<BQ, D>(dOs, L::LDH, dout + n0 * ostride + (size_t)h * D, ostride, nq);
            if (tid < BQ) {
                lse_s[tid] = tid < nq ? lse[(size_t)h * N + n0 + tid] : 0.0f;
                Di_s[tid] = tid < nq ? Di[(size_t)h * N + n0 + tid] : 0.0f;
            }
            __syncthreads();

            /* S = Q K^T and dP = dO V^T */
#pragma unroll
            for (int t = 0; t < 2; t++) {
                wmma::fragment<wmma::accumulator, 16, 16, 16, float> s, dp;
                wmma::fill_fragment(s, 0.0f);
                wmma::fill_fragment(dp, 0.0f);
#pragma unroll
                for (int d = 0; d < D; d += 16) {
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b;
                    wmma::load_matrix_sync(a, Qs + 16 * sr * L::LDH + d, L::LDH);
                    wmma::load_matrix_sync(b, Ks + 16 * (sc + t) * L::LDH + d, L::LDH);
                    wmma::mma_sync(s, a, b, s);
                    wmma::load_matrix_sync(a, dOs + 16 * sr * L::LDH + d, L::LDH);
                    wmma::load_matrix_sync(b, Vs + 16 * (sc + t) * L::LDH + d, L::LDH);
                    wmma::mma_sync(dp, a, b, dp);
                }
                wmma::store_matrix_sync(Ss + 16 * sr * L::LDS + 16 * (sc + t), s, L::LDS, wmma::mem_row_major);
                wmma::store_matrix_sync(dPs + 16 * sr * L::LDS + 16 * (sc + t), dp, L::LDS, wmma::mem_row_major);
            }
            __syncthreads();

            /* P = exp(scale S - lse), dS = P (dP - Di); zero where masked. Thread: row tid / 4,
             * keys 16 (tid % 4) .. + 15 */
            {
                const int i = tid >> 2, j0 = 16 * (tid & 3);
                for (int jj = 0; jj < 16; jj++) {
                    const int j = j0 + jj;
                    const bool valid = i < nq && j < nk && k0 + j <= q0 + i;
                    const float p = valid ? expf(Ss[i * L::LDS + j] * scale - lse_s[i]) : 0.0f;
                    const float ds = valid ? p * (dPs[i * L::LDS + j] - Di_s[i]) : 0.0f;
                    const bf16 p_hi = __float2bfloat16_rn(p), ds_hi = __float2bfloat16_rn(ds);
                    Ps[i * L::LDP + j] = p_hi;
                    Ps2[i * L::LDP + j] = __float2bfloat16_rn(p - __bfloat162float(p_hi));
                    dSs[i * L::LDP + j] = ds_hi;
                    dSs2[i * L::LDP + j] = __float2bfloat16_rn(ds - __bfloat162float(ds_hi));
                }
            }
            __syncthreads();

            /* dV_w += P[:, keys_w]^T dO and dK_w += dS[:, keys_w]^T Q: P stored [query][key] is
             * P^T in column-major */
            /* (dV and dK in separate passes: fewer fragments live at once, for the registers) */
#pragma unroll
            for (int q = 0; q < BQ; q += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major> hi, lo;
                wmma::load_matrix_sync(hi, Ps + q * L::LDP + 16 * warp, L::LDP);
                wmma::load_matrix_sync(lo, Ps2 + q * L::LDP + 16 * warp, L::LDP);
#pragma unroll
                for (int c = 0; c < DC; c++) {
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
                    wmma::load_matrix_sync(b, dOs + q * L::LDH + 16 * c, L::LDH);
                    wmma::mma_sync(dV[c], hi, b, dV[c]);
                    wmma::mma_sync(dV[c], lo, b, dV[c]);
                }
            }
#pragma unroll
            for (int q = 0; q < BQ; q += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major> hi, lo;
                wmma::load_matrix_sync(hi, dSs + q * L::LDP + 16 * warp, L::LDP);
                wmma::load_matrix_sync(lo, dSs2 + q * L::LDP + 16 * warp, L::LDP);
#pragma unroll
                for (int c = 0; c < DC; c++) {
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
                    wmma::load_matrix_sync(b, Qs + q * L::LDH + 16 * c, L::LDH);
                    wmma::mma_sync(dK[c], hi, b, dK[c]);
                    wmma::mma_sync(dK[c], lo, b, dK[c]);
                }
            }

            /* dQ rows 16 sr .. + 15, columns (D/2)(warp & 1) .. = dS K, staged over S / dP (every
             * warp finished reading those before the last barrier) */
            {
                const int qr = sr, cbase = (D / 2) * (warp & 1);
#pragma unroll
                for (int c = 0; c < D / 32; c++) {
                    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
                    wmma::fill_fragment(acc, 0.0f);
#pragma unroll
                    for (int k = 0; k < BK; k += 16) {
                        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
                        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
                        wmma::load_matrix_sync(b, Ks + k * L::LDH + cbase + 16 * c, L::LDH);
                        wmma::load_matrix_sync(a, dSs + 16 * qr * L::LDP + k, L::LDP);
                        wmma::mma_sync(acc, a, b, acc);
                        wmma::load_matrix_sync(a, dSs2 + 16 * qr * L::LDP + k, L::LDP);
                        wmma::mma_sync(acc, a, b, acc);
                    }
                    wmma::store_matrix_sync(dQst + 16 * qr * L::LDO + cbase + 16 * c, acc, L::LDO, wmma::mem_row_major);
                }
                __syncwarp();
                /* this warp's 16 x D/2 block of dQ into the scratch: lane = column */
                for (int r = 0; r < 16; r++) {
                    const int i = 16 * qr + r;
                    if (i >= nq) break;
                    float *dst = dq_acc + (n0 + i) * ostride + (size_t)h * D + cbase;
                    for (int c = lane; c < D / 2; c += 32)
                        atomicAdd(dst + c, dQst[i * L::LDO + cbase + c] * scale);
                }
            }
        }
    }

    /* dK, dV of the warp's 16 keys: through shared memory to global */
    __syncthreads();   /* the per-query-tile area is free */
#pragma unroll
    for (int c = 0; c < DC; c++)
        wmma::store_matrix_sync(dKVst + 16 * warp * L::LDO + 16 * c, dK[c], L::LDO, wmma::mem_row_major);
    __syncwarp();
    for (int r = 0; r < 16; r++) {
        const int j = 16 * warp + r;
        if (j >= nk) break;
        bf16 *dst = dqkv + (size_t)(start + k0 + j) * stride + (size_t)(H + g) * D;
        for (int c = lane; c < D; c += 32) dst[c] = __float2bfloat16_rn(dKVst[j * L::LDO + c] * scale);
    }
    __syncwarp();   /* read before the dV fragments overwrite the staging rows */
#pragma unroll
    for (int c = 0; c < DC; c++)
        wmma::store_matrix_sync(dKVst + 16 * warp * L::LDO + 16 * c, dV[c], L::LDO, wmma::mem_row_major);
    __syncwarp();
    for (int r = 0; r < 16; r++) {
        const int j = 16 * warp + r;
        if (j >= nk) break;
        bf16 *dst = dqkv + (size_t)(start + k0 + j) * stride + (size_t)(H + Hkv + g) * D;
        for (int c = lane; c < D; c += 32) dst[c] = __float2bfloat16_rn(dKVst[j * L::LDO + c]);
    }
}

#endif
