/* Kernels of the CUDA backend's pointwise and row-wise ops: embedding, rmsnorm, RoPE, SwiGLU,
 * add, cross-entropy, sum of squares, AdamW and dtype casts, as paired forward / backward
 * kernels. Templates over T (float or __nv_bfloat16) only for the activation type; all math is
 * f32 (double where noted). The launchers are in ops.cu.
 */
#ifndef LABENCH_CUDA_OPS_KERNELS_CUH
#define LABENCH_CUDA_OPS_KERNELS_CUH

#include "kernels/cuda/device.cuh"

/* ------------------------------------------------------------------------------------------ */
/* embedding: out[n, :] = wte[tokens[n], :] */

template <typename T>
__global__ void embedding_forward_kernel(T *out, const int32_t *tokens, const T *wte, int N, int C)
{
    const size_t total = (size_t)N * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t n = i / C, c = i % C;
        out[i] = wte[(size_t)tokens[n] * C + c];
    }
}

/* dwte[tokens[n], :] += dout[n, :]. A token can repeat within the batch, so rows collide: f32
 * atomics (the order of the sums, and so the last bits, vary from run to run). */
template <typename T>
__global__ void embedding_backward_kernel(float *dwte, const T *dout, const int32_t *tokens, int N, int C)
{
    const size_t total = (size_t)N * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t n = i / C, c = i % C;
        atomicAdd(dwte + (size_t)tokens[n] * C + c, ld(dout + i));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* rmsnorm: out = inp * rstd * w, rstd = 1 / sqrt(mean(inp^2) + eps); one block per row */

#define NORM_THREADS 256

template <typename T>
__global__ void rmsnorm_forward_kernel(T *out, float *rstd, const T *inp, const T *w, int C, float eps)
{
    const size_t row = (size_t)blockIdx.x * C;
    const T *x = inp + row;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const float v = ld(x + c);
        ss += v * v;
    }
    ss = block_sum(ss);
    const float r = 1.0f / sqrtf(ss / (float)C + eps);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
    for (int c = threadIdx.x; c < C; c += blockDim.x) st(out + row + c, ld(x + c) * r * ld(w + c));
}

/* dinp += r * w * dy - r^3 / C * x * sum(w * dy * x): the second term is the path through rstd.
 * Each thread reads dy and x at index c before writing dinp at c, so dinp may even alias dout. */
template <typename T>
__global__ void rmsnorm_backward_dinp_kernel(T *dinp, const T *dout, const T *inp, const T *w, const float *rstd, int C)
{
    const size_t row = (size_t)blockIdx.x * C;
    const T *x = inp + row, *dy = dout + row;
    const float r = rstd[blockIdx.x];
    float gx = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) gx += ld(w + c) * ld(dy + c) * ld(x + c);
    gx = block_sum(gx);
    const float k = gx * r * r * r / (float)C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const float d = r * ld(w + c) * ld(dy + c) - k * ld(x + c);
        st(dinp + row + c, ld(dinp + row + c) + d);
    }
}

/* dw[c] += sum_n dy[n,c] * x[n,c] * rstd[n]. A column-per-thread sum over a strip of rows, then
 * one atomic per (strip, column): coalesced reads, and N / NORM_DW_ROWS atomics per column
 * instead of N. */
#define NORM_DW_ROWS 256

template <typename T>
__global__ void rmsnorm_backward_dw_kernel(float *dw, const T *dout, const T *inp, const float *rstd, int N, int C)
{
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const int n0 = blockIdx.y * NORM_DW_ROWS, n1 = min(n0 + NORM_DW_ROWS, N);
    float acc = 0.0f;
    for (int n = n0; n < n1; n++) {
        const size_t i = (size_t)n * C + c;
        acc += ld(dout + i) * ld(inp + i) * rstd[n];
    }
    atomicAdd(dw + c, acc);
}

/* ------------------------------------------------------------------------------------------ */
/* RoPE, Hugging Face rotate_half: the pair (x[i], x[i + D/2]) of every query and key head turns
 * by pos * theta^(-2i/D). One thread per (token, i) computes the angle once, in double (at 64k
 * positions an f32 angle is off by ~4e-3 rad), and rotates that pair in every q and k head.
 * The backward is the rotation by the opposite angle: sign = -1. */

template <typename T>
__global__ void rope_kernel(T *qkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta, double sign)
{
    const int half = D / 2;
    const size_t total = (size_t)N * half;
    const size_t row = (size_t)(H + 2 * Hkv) * D;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        const size_t n = t / half;
        const int i = (int)(t % half);
        const double angle = sign * (double)pos[n] * pow((double)theta, -2.0 * i / D);
        double s, c;
        sincos(angle, &s, &c);
        const float cs = (float)c, sn = (float)s;
        T *x = qkv + n * row + i;
        for (int h = 0; h < H + Hkv; h++) {   /* the query heads, then the key heads */
            T *a = x + (size_t)h * D, *b = a + half;
            const float x1 = ld(a), x2 = ld(b);
            st(a, x1 * cs - x2 * sn);
            st(b, x2 * cs + x1 * sn);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* SwiGLU: out = silu(gate) * up, gate_up = [gate | up] per row */

template <typename T>
__global__ void swiglu_forward_kernel(T *out, const T *gate_up, int N, int F)
{
    const size_t total = (size_t)N * F;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t n = i / F, f = i % F;
        const T *gate = gate_up + n * 2 * F;
        const float g = ld(gate + f), u = ld(gate + F + f);
        st(out + i, g / (1.0f + expf(-g)) * u);
    }
}

/* d gate = dy * up * silu'(gate), silu'(g) = sig(g) * (1 + g * (1 - sig(g))); d up = dy * silu(gate) */
template <typename T>
__global__ void swiglu_backward_kernel(T *dgate_up, const T *dout, const T *gate_up, int N, int F)
{
    const size_t total = (size_t)N * F;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const size_t n = i / F, f = i % F;
        const size_t gi = n * 2 * F + f;
        const float g = ld(gate_up + gi), u = ld(gate_up + gi + F), dy = ld(dout + i);
        const float sig = 1.0f / (1.0f + expf(-g));
        st(dgate_up + gi, dy * u * sig * (1.0f + g * (1.0f - sig)));
        st(dgate_up + gi + F, dy * g * sig);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* add: out = a + b (out may be a or b: each element is read before it is written) */

template <typename T>
__global__ void add_kernel(T *out, const T *a, const T *b, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        st(out + i, ld(a + i) + ld(b + i));
}

/* ------------------------------------------------------------------------------------------ */
/* cross-entropy, one block per row of V logits. The log of the softmax denominator comes from
 * one pass with an online max: each thread keeps (max m, sum s of exp(x - m)) over its strided
 * elements, and pairs merge as s = s1 e^(m1 - M) + s2 e^(m2 - M). The backward recomputes it
 * (the forward's value is not kept) rather than storing [N] more floats between the two.
 * A target outside [0, V) is ignored: loss 0, gradient 0 (as in the CPU backend). */

#define CE_THREADS 512

__device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2)
{
    const float M = fmaxf(m, m2);
    if (M == -INFINITY) return;   /* both empty: keep (-inf, 0) */
    s = s * expf(m - M) + s2 * expf(m2 - M);
    m = M;
}

/* log sum_v exp(x[v]) over the row, returned to every thread of the block */
template <typename T>
__device__ float row_logsumexp(const T *x, int V)
{
    __shared__ float sm[32], ss[32];
    float m = -INFINITY, s = 0.0f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        const float xv = ld(x + v);
        if (xv > m) { s = s * expf(m - xv) + 1.0f; m = xv; }
        else s += expf(xv - m);
    }
    for (int off = 16; off > 0; off >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, off), s2 = __shfl_xor_sync(0xffffffffu, s, off);
        lse_merge(m, s, m2, s2);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    if (lane == 0) { sm[warp] = m; ss[warp] = s; }
    __syncthreads();
    m = -INFINITY; s = 0.0f;
    if (lane < n_warps) { m = sm[lane]; s = ss[lane]; }
    for (int off = 16; off > 0; off >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, off), s2 = __shfl_xor_sync(0xffffffffu, s, off);
        lse_merge(m, s, m2, s2);
    }
    return m + logf(s);
}

template <typename T>
__global__ void crossentropy_forward_kernel(float *losses, const T *logits, const int32_t *targets, int V)
{
    const int n = blockIdx.x, t = targets[n];
    if (t < 0 || t >= V) {   /* uniform over the block: no thread reaches a barrier */
        if (threadIdx.x == 0) losses[n] = 0.0f;
        return;
    }
    const T *x = logits + (size_t)n * V;
    const float lse = row_logsumexp(x, V);
    if (threadIdx.x == 0) losses[n] = lse - ld(x + t);
}

/* dlogits = w * (softmax - onehot). dlogits may be logits: the reduction has read the whole row
 * (and passed a barrier) before any thread writes, and each thread then reads x[v] before it
 * writes d[v]. */
template <typename T>
__global__ void crossentropy_backward_kernel(T *dlogits, const T *logits, const int32_t *targets, const float *weights, int V)
{
    const int n = blockIdx.x, t = targets[n];
    const float w = weights[n];
    const T *x = logits + (size_t)n * V;
    T *d = dlogits + (size_t)n * V;
    if (t < 0 || t >= V || w == 0.0f) {   /* uniform over the block */
        for (int v = threadIdx.x; v < V; v += blockDim.x) st(d + v, 0.0f);
        return;
    }
    const float lse = row_logsumexp(x, V);
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        const float p = expf(ld(x + v) - lse);
        st(d + v, w * (p - (v == t ? 1.0f : 0.0f)));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* sum of squares of f32 values, in double: one partial per block, summed on the host in block
 * order, so the result is the same from run to run */

__global__ void sum_squares_kernel(double *partial, const float *x, size_t n)
{
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const double v = x[i];
        acc += v * v;
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

/* ------------------------------------------------------------------------------------------ */
/* AdamW on f32 master weights; bias corrections bc1 = 1 - beta1^t, bc2 = 1 - beta2^t from the
 * host. Decoupled weight decay: p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p). */

__global__ void adamw_kernel(float *p, const float *grads, float *m, float *v, size_t n, float lr, float b1, float b2,
                             float eps, float wd, float grad_scale, float bc1, float bc2)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float g = grads[i] * grad_scale;
        const float mi = b1 * m[i] + (1.0f - b1) * g;
        const float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const float mhat = mi / bc1, vhat = vi / bc2;
        p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* casts between f32 and bf16 (round to nearest even); same type is a copy */

template <typename TO, typename TI>
__global__ void cast_kernel(TO *dst, const TI *src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        st(dst + i, ld(src + i));
}

#endif
