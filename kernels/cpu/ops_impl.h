/* The CPU ops, written once over an element type and included by ops_f32.c and ops_f64.c.
 *
 * The including file defines, before including this header:
 *   real        the element type (float or double)
 *   REAL_SFX    the name suffix (f32 or f64): OP(cpu_add) expands to cpu_add_f32
 *   cblas_gemm  cblas_sgemm or cblas_dgemm
 * Math calls go through <tgmath.h>, so exp() of a float is expf().
 *
 * Reductions inside a row (rmsnorm, cross-entropy, sum of squares) accumulate in double: this is
 * the reference backend, and a double accumulator costs nothing next to the scalar loop anyway.
 * Every op is deterministic: each output element is written by exactly one thread, in an order
 * that does not depend on the thread count.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>
/* OpenBLAS's cblas.h and <tgmath.h> pull in <complex.h>, whose macro I would eat the "int I"
 * parameters of backend.h and of the ops below. */
#undef I

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/openblas.h"

#define OP_CAT_(a, b) a##_##b
#define OP_CAT(a, b) OP_CAT_(a, b)
#define OP(name) OP_CAT(name, REAL_SFX)

#define TILE CPU_ATTN_TILE
/* embedding_backward splits columns into blocks this wide (one cache line of f32) */
#define COL_BLOCK 16
/* rmsnorm_backward sums dw over chunks of this many rows, then the chunks in order */
#define ROW_CHUNK 256

static inline int imin(int a, int b) { return a < b ? a : b; }

/* ------------------------------------------------------------------------------------------ */
/* Vectors: a vreal holds VW values, one 64-byte register of f32 with AVX-512 (GCC's vector
 * extension splits it for narrower machines). Lane-wise arithmetic is plain IEEE arithmetic, in
 * the order written: no reassociation, no contraction. */

#define VW ((int)(64 / sizeof(real)))
typedef real vreal __attribute__((vector_size(64)));
typedef ireal vmask __attribute__((vector_size(64)));   /* lane masks: 0 or -1 */

/* every lane x (x - +0 is x for every x, -0 included: a plain broadcast) */
static inline vreal vsplat(real x) { return x - (vreal){ 0 }; }
static inline vmask msplat(ireal x) { return x + (vmask){ 0 }; }

/* where mask is set, a; elsewhere b */
static inline vreal vselect(vmask mask, vreal a, vreal b)
{
    return (vreal)(((vmask)a & mask) | ((vmask)b & ~mask));
}

static inline vreal vmax(vreal a, vreal b) { return vselect(a > b, a, b); }

#if REAL_POLY_EXP
/* exp of each lane for f32, branch-free so that it vectorizes: x = n ln2 + r with |r| <= ln2/2
 * (Cody-Waite: ln2 in two parts, the first exact in few bits so that n * LN2_HI is exact),
 * exp(r) by its Taylor series to r^7/7! (truncation < 1e-8 relative, below 1/6 ulp), then times
 * 2^n as 2^(n/2) * 2^(n - n/2), two factors that stay normal from the subnormal results (n down
 * to -150) up to FLT_MAX (n = 128). Measured against double exp over every float in
 * [-104, 88.72]: within 1.3 ulp (mean 0.07 ulp); 0 below, +inf above, exp(-inf) = 0, NaN stays
 * NaN. Used for f32 only: f64 keeps libm's exp (its tests compare to 1e-13). */
static inline vreal vexp(vreal x)
{
    const vmask zero = x < vsplat(-103.98f);   /* exp(x) < 2^-150: rounds to 0 */
    const vmask inf = x > vsplat(88.72283f);   /* exp(x) > FLT_MAX */
    x = vselect(inf, vsplat(0), x);
    const vreal shifter = vsplat(12582912.0f);          /* 1.5 * 2^23: t's low bits hold n */
    const vreal t = x * vsplat(1.44269504088896341f) + shifter;
    const vreal n = t - shifter;
    const real LN2_HI = 0.693359375f, LN2_LO = -2.12194440054690583e-4f;
    const vreal r = (x - n * vsplat(LN2_HI)) - n * vsplat(LN2_LO);
    vreal p = vsplat((real)(1.0 / 5040));
    p = p * r + vsplat((real)(1.0 / 720));
    p = p * r + vsplat((real)(1.0 / 120));
    p = p * r + vsplat((real)(1.0 / 24));
    p = p * r + vsplat((real)(1.0 / 6));
    p = p * r + vsplat((real)0.5);
    p = p * r + vsplat((real)1);
    p = p * r + vsplat((real)1);
    /* u = n + 256 in [106, 384]; the exponent fields of 2^na and 2^nb, na = floor(n / 2) and
     * nb = n - na, are u/2 - 1 and u - u/2 - 1 (unsigned: no sign games, no overflow) */
    typedef uint32_t vbits __attribute__((vector_size(64)));
    const vbits u = (vbits)t - (vbits)shifter + 256, ua = u >> 1;
    const vreal y = p * (vreal)((ua - 1) << 23) * (vreal)((u - ua - 1) << 23);
    return vselect(inf, vsplat(INFINITY), (vreal)((vmask)y & ~zero));
}
#else
/* f64 (gradient checks): libm, lane by lane */
static inline vreal vexp(vreal x)
{
    for (int k = 0; k < VW; k++) x[k] = exp(x[k]);
    return x;
}
#endif

/* y[i] = exp(x[i]) for i < n, through vexp (y may be x) */
static void exp_array(real *y, const real *x, int n)
{
    int i = 0;
    for (; i + VW <= n; i += VW) {
        vreal v;
        memcpy(&v, x + i, sizeof v);
        v = vexp(v);
        memcpy(y + i, &v, sizeof v);
    }
    if (i < n) {
        vreal v = vsplat(0);
        memcpy(&v, x + i, (size_t)(n - i) * sizeof(real));
        v = vexp(v);
        memcpy(y + i, &v, (size_t)(n - i) * sizeof(real));
    }
}

/* Parallel regions: below these sizes an op runs on the calling thread (the if clauses; the
 * results are the same bits either way). A region costs a few microseconds when the other
 * threads are spinning, but on a busy machine -- the 2-core hosts the CPU comparison runs on,
 * shared with other work and with OpenBLAS's own threads -- waking the team and meeting at the
 * closing barrier waits for a descheduled thread: 0.5 to 5 ms per empty region measured there.
 * So only ops of a millisecond or more of work go parallel: at hidden 64, none of the row-wise
 * ops below 16k tokens, swiglu from 1.5k and cross-entropy (vocabulary 256) from 1k. Counts
 * are elements of ops of a few flops each, ... */
#define PAR_MIN_ELEMS (1 << 20)
/* ... and of ops that take an exp, a division or a sqrt per element */
#define PAR_MIN_EXPS (1 << 18)

/* ------------------------------------------------------------------------------------------ */
/* embedding */

void OP(cpu_embedding_forward)(real *out, const int32_t *tokens, const real *wte, int N, int C)
{
    #pragma omp parallel for schedule(static) if ((size_t)N * C >= 2 * PAR_MIN_ELEMS)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, (size_t)C * sizeof(real));
}

void OP(cpu_embedding_backward)(real *dwte, const real *dout, const int32_t *tokens, int N, int C)
{
    /* A token may repeat, so rows of dwte collide; threads split the columns instead, and every
     * thread walks all positions in order (deterministic, no atomics). Narrow blocks keep a
     * 64-wide model on several threads. */
    int n_blocks = (C + COL_BLOCK - 1) / COL_BLOCK;
    #pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN_ELEMS)
    for (int b = 0; b < n_blocks; b++) {
        int c0 = b * COL_BLOCK, c1 = imin(c0 + COL_BLOCK, C);
        for (int n = 0; n < N; n++) {
            real *dst = dwte + (size_t)tokens[n] * C;
            const real *src = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* rmsnorm: out = inp * rstd * w */

void OP(cpu_rmsnorm_forward)(real *out, real *rstd, const real *inp, const real *w,
                             int N, int C, float eps)
{
    #pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN_ELEMS)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C;
        real *y = out + (size_t)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        real r = (real)(1.0 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++) y[c] = x[c] * r * w[c];
        rstd[n] = r;
    }
}

void OP(cpu_rmsnorm_backward)(real *dinp, real *dw, const real *dout, const real *inp,
                              const real *w, const real *rstd, int N, int C)
{
    /* With g = w * dout, dinp = r * g - r^3 / C * x * (g . x); the second term is the path
     * through rstd. dw sums over all rows: partial sums per fixed chunk of rows, then the chunks
     * in order, so the result does not depend on the thread count. One parallel region. */
    const int n_chunks = (N + ROW_CHUNK - 1) / ROW_CHUNK;
    double *partial = calloc((size_t)n_chunks * C + 1, sizeof(double));
    if (!partial) abort();
    #pragma omp parallel if ((size_t)N * C >= PAR_MIN_ELEMS)
    {
        #pragma omp for schedule(static) nowait
        for (int n = 0; n < N; n++) {
            const real *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            real *dx = dinp + (size_t)n * C;
            real r = rstd[n];
            double gx = 0.0;
            for (int c = 0; c < C; c++) gx += (double)w[c] * dy[c] * x[c];
            real k = (real)(gx * r * r * r / C);
            for (int c = 0; c < C; c++) dx[c] += r * w[c] * dy[c] - k * x[c];
        }
        #pragma omp for schedule(static)
        for (int k = 0; k < n_chunks; k++) {
            double *acc = partial + (size_t)k * C;
            for (int n = k * ROW_CHUNK; n < imin(N, (k + 1) * ROW_CHUNK); n++) {
                const real *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
                const real r = rstd[n];
                for (int c = 0; c < C; c++) acc[c] += (double)(dy[c] * x[c] * r);
            }
        }
        #pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            double sum = 0.0;
            for (int k = 0; k < n_chunks; k++) sum += partial[(size_t)k * C + c];
            dw[c] += (real)sum;
        }
    }
    free(partial);
}

/* ------------------------------------------------------------------------------------------ */
/* matmul: out[N,O] = inp[N,I] @ w[O,I]^T, through BLAS */

void OP(cpu_matmul_forward)(real *out, const real *inp, const real *w, int N, int I, int O)
{
    cblas_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, I,
               (real)1, inp, I, w, I, (real)0, out, O);
}

void OP(cpu_matmul_backward)(real *dinp, real *dw, const real *dout, const real *inp,
                             const real *w, int N, int I, int O, int accumulate_dinp)
{
    /* dinp[N,I] = dout[N,O] @ w[O,I] */
    if (dinp)
        cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, I, O,
                   (real)1, dout, O, w, I, accumulate_dinp ? (real)1 : (real)0, dinp, I);
    /* dw[O,I] += dout^T[O,N] @ inp[N,I] */
    if (dw)
        cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, I, N,
                   (real)1, dout, O, inp, I, (real)1, dw, I);
}

/* ------------------------------------------------------------------------------------------ */
/* RoPE (rotate_half): the pair (x[i], x[i + D/2]) turns by pos * theta^(-2i/D). The backward of
 * a rotation is the rotation by the opposite angle, so both directions share one function. */

static void rope_rotate(real *qkv, const int32_t *pos, int N, int H, int Hkv, int D,
                        float theta, double sign)
{
    const size_t row = (size_t)(H + 2 * Hkv) * D;
    const int half = D / 2, heads = H + Hkv;   /* the query and key heads sit first in the row */
    /* theta^(-2i/D) does not depend on the position: once per call */
    double *freq = malloc((size_t)(half > 0 ? half : 1) * sizeof(double));
    if (!freq) abort();
    for (int i = 0; i < half; i++) freq[i] = pow((double)theta, -2.0 * i / D);
    /* a sin and a cos per (token, pair), then a rotation per head */
    #pragma omp parallel for schedule(static) if ((size_t)N * half * (heads + 8) >= PAR_MIN_ELEMS)
    for (int n = 0; n < N; n++) {
        real *x = qkv + (size_t)n * row;
        for (int i = 0; i < half; i++) {
            double angle = sign * pos[n] * freq[i];
            real c = (real)cos(angle), s = (real)sin(angle);
            for (int h = 0; h < heads; h++) {
                real *a = x + (size_t)h * D + i, *b = a + half;
                real x1 = *a, x2 = *b;
                *a = x1 * c - x2 * s;
                *b = x2 * c + x1 * s;
            }
        }
    }
    free(freq);
}

void OP(cpu_rope_forward)(real *qkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta)
{
    rope_rotate(qkv, pos, N, H, Hkv, D, theta, 1.0);
}

void OP(cpu_rope_backward)(real *dqkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta)
{
    rope_rotate(dqkv, pos, N, H, Hkv, D, theta, -1.0);
}

/* The largest of x[0..V) (V >= 1) */
static real row_max(const real *x, int V)
{
    /* lane-wise maxima, then across lanes: max is exact, so the grouping does not matter */
    if (V < VW) {
        real mx = x[0];
        for (int v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx;
        return mx;
    }
    vreal m;
    memcpy(&m, x, sizeof m);
    int v = VW;
    for (; v + VW <= V; v += VW) {
        vreal xv;
        memcpy(&xv, x + v, sizeof xv);
        m = vmax(m, xv);
    }
    real mx = m[0];
    for (int k = 1; k < VW; k++) mx = m[k] > mx ? m[k] : mx;
    for (; v < V; v++) mx = x[v] > mx ? x[v] : mx;
    return mx;
}

/* ------------------------------------------------------------------------------------------ */
/* Varlen causal attention, FlashAttention-2 style, with every inner product a BLAS GEMM.
 *
 * Forward: one task per (query tile of TILE rows counted from the segment's start, head). It
 * walks the keys up to the tile's last row, KB at a time: S = scale * Q K^T (one GEMM), then per
 * row the online softmax (running max m and sum l, the block's exp through vexp), then
 * O = alpha * O + P V (one GEMM). At most a TILE x KB block of scores exists at a time per
 * thread, and the only work above the diagonal is inside the tile's own TILE x TILE square. It
 * stores lse = m + log(l).
 *
 * Backward: one task per (segment, kv head), fused: for each query head of the group, each key
 * tile of TILE keys, and each block of QB query rows from the tile's first key down to the
 * segment's end, S and dP = dO V^T are recomputed (two GEMMs), P = exp(S - lse) and
 * dS = P * (dP - Di) * scale (Di = dO_i . O_i, once per (head, token) up front), then
 * dV += P^T dO, dK += dS^T Q and dQ += dS K (three GEMMs), accumulated in place in dqkv. A task
 * owns its kv head's dK, dV and its query heads' dQ rows in the segment, so nothing is shared and
 * nothing is reduced across threads. Parallelism is over segments x kv heads; tasks run longest
 * first (cost ~ segment length^2 x group size), so two threads finish together.
 *
 * BLAS runs on the calling thread inside these regions (kernels/cpu/openblas.h). Every sum runs
 * in an order fixed by the shapes alone: the same bits on any thread count. Calls with little
 * work run on one thread (ATTN_PAR_MIN_WORK). */

/* keys per block of scores in the forward */
#define KB 256
/* query rows per block in the backward */
#define QB 256

typedef struct {
    int start, end;       /* the tile's tokens [start, end) */
    int seg_start;        /* its segment's first token: causal keys run from there to end */
} AttnTile;

static AttnTile *attn_tiles(const int32_t *cu_seqlens, int n_segs, int *n_tiles)
{
    int count = 0;
    for (int s = 0; s < n_segs; s++)
        count += (cu_seqlens[s + 1] - cu_seqlens[s] + TILE - 1) / TILE;
    AttnTile *tiles = malloc((size_t)(count > 0 ? count : 1) * sizeof(AttnTile));
    if (!tiles) abort();
    int t = 0;
    for (int s = 0; s < n_segs; s++)
        for (int a = cu_seqlens[s]; a < cu_seqlens[s + 1]; a += TILE)
            tiles[t++] = (AttnTile){ a, imin(a + TILE, cu_seqlens[s + 1]), cu_seqlens[s] };
    *n_tiles = count;
    return tiles;
}

/* A task list, longest first: task ids with their cost (any unit, the same for all). */
typedef struct { double cost; int id; } AttnTask;

static int attn_task_cmp(const void *pa, const void *pb)
{
    const AttnTask *a = pa, *b = pb;
    if (a->cost != b->cost) return a->cost < b->cost ? 1 : -1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Below this many multiply-adds of scores (summed over tiles and heads: about a millisecond of
 * work) a call runs on one thread: see PAR_MIN_ELEMS. */
#define ATTN_PAR_MIN_WORK (1 << 23)

/* Zeroes the rows of x[N, row] outside [cu_seqlens[0], cu_seqlens[n_segs]): a well-formed batch
 * has none, and the segments themselves are contiguous and fully written by the passes. */
static void zero_outside_segments(real *x, size_t row, const int32_t *cu_seqlens, int n_segs, int N)
{
    const size_t first = (size_t)cu_seqlens[0], last = (size_t)cu_seqlens[n_segs];
    memset(x, 0, first * row * sizeof(real));
    if (last < (size_t)N) memset(x + last * row, 0, ((size_t)N - last) * row * sizeof(real));
}

static real *attn_scratch(size_t count)
{
    real *p = aligned_alloc(64, ((count > 0 ? count : 1) * sizeof(real) + 63) / 64 * 64);
    if (!p) abort();
    return p;
}

/* x[j] = exp(x[j] - shift) for j < n (n >= 1) through vexp; returns their sum: VW lane sums in
 * index order, then the lanes in order. */
static real exp_shifted_sum(real *x, int n, real shift)
{
    const vreal sh = vsplat(shift);
    vreal acc = vsplat(0);
    int j = 0;
    for (; j + VW <= n; j += VW) {
        vreal v;
        memcpy(&v, x + j, sizeof v);
        v = vexp(v - sh);
        memcpy(x + j, &v, sizeof v);
        acc += v;
    }
    if (j < n) {
        vreal v = vsplat(-INFINITY);   /* exp(-inf) = 0 in the unused lanes */
        memcpy(&v, x + j, (size_t)(n - j) * sizeof(real));
        v = vexp(v - sh);
        memcpy(x + j, &v, (size_t)(n - j) * sizeof(real));
        acc += v;
    }
    real sum = 0;
    for (int k = 0; k < VW; k++) sum += acc[k];
    return sum;
}

typedef struct {
    const real *qkv, *dout, *lse, *delta;
    real *out;            /* out (forward) or dqkv (backward) */
    size_t row, orow;     /* qkv's and out's row lengths */
    int N, H, Hkv, D, group;
    real scale;
} AttnArgs;

/* forward: out and lse of the rows of tile t, head h; work space S[TILE * KB], O[TILE * D],
 * m[TILE], l[TILE] */
static void attn_forward_task(const AttnArgs *a, real *lse, AttnTile t, int h, real *S, real *O,
                              real *m, real *l)
{
    const int D = a->D, g = h / a->group, nr = t.end - t.start;
    const size_t row = a->row;
    const real *q = a->qkv + (size_t)t.start * row + (size_t)h * D;
    const real *k = a->qkv + (size_t)(a->H + g) * D, *v = a->qkv + (size_t)(a->H + a->Hkv + g) * D;
    for (int r = 0; r < nr; r++) { m[r] = -INFINITY; l[r] = 0; }
    memset(O, 0, (size_t)nr * D * sizeof(real));
    for (int k0 = t.seg_start; k0 < t.end; k0 += KB) {
        const int nk = imin(KB, t.end - k0);   /* causal: no key after the tile's last row */
        cblas_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nk, D, a->scale, q, (int)row,
                   k + (size_t)k0 * row, (int)row, (real)0, S, KB);
        for (int r = 0; r < nr; r++) {
            real *s = S + (size_t)r * KB;
            const int valid = imin(nk, t.start + r - k0 + 1);   /* keys k0 .. row i */
            if (valid <= 0) {   /* a row before the block's first key: nothing to add */
                memset(s, 0, (size_t)nk * sizeof(real));
                continue;
            }
            real mx = row_max(s, valid);
            if (m[r] > mx) mx = m[r];
            /* rescale what was summed under the old max (exp(-inf) = 0 on the first block) */
            const real alpha = exp(m[r] - mx);
            const real sum = exp_shifted_sum(s, valid, mx);
            if (valid < nk) memset(s + valid, 0, (size_t)(nk - valid) * sizeof(real));
            l[r] = l[r] * alpha + sum;
            m[r] = mx;
            if (alpha != 1) {
                real *o = O + (size_t)r * D;
                for (int d = 0; d < D; d++) o[d] *= alpha;
            }
        }
        cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, D, nk, (real)1, S, KB,
                   v + (size_t)k0 * row, (int)row, (real)1, O, D);
    }
    for (int r = 0; r < nr; r++) {
        const real inv = 1 / l[r];
        real *dst = a->out + (size_t)(t.start + r) * a->orow + (size_t)h * D;
        const real *o = O + (size_t)r * D;
        for (int d = 0; d < D; d++) dst[d] = o[d] * inv;
        lse[(size_t)h * a->N + t.start + r] = m[r] + log(l[r]);
    }
}

void OP(cpu_attention_forward)(real *out, real *lse, const real *qkv, const int32_t *cu_seqlens,
                               int n_segs, int N, int H, int Hkv, int D)
{
    const AttnArgs a = { qkv, NULL, NULL, NULL, out, (size_t)(H + 2 * Hkv) * D, (size_t)H * D,
                         N, H, Hkv, D, H / Hkv, (real)(1.0 / sqrt((double)D)) };
    int n_tiles;
    AttnTile *tiles = attn_tiles(cu_seqlens, n_segs, &n_tiles);
    zero_outside_segments(out, a.orow, cu_seqlens, n_segs, N);
    for (int h = 0; h < H; h++) zero_outside_segments(lse + (size_t)h * N, 1, cu_seqlens, n_segs, N);

    /* task = tile * H + head, costed by its count of scores */
    const int n_tasks = n_tiles * H;
    AttnTask *tasks = malloc((size_t)(n_tasks > 0 ? n_tasks : 1) * sizeof(AttnTask));
    if (!tasks) abort();
    double work = 0;
    for (int task = 0; task < n_tasks; task++) {
        const AttnTile *t = &tiles[task / H];
        tasks[task] = (AttnTask){ (double)(t->end - t->start) * (t->end - t->seg_start), task };
        work += tasks[task].cost * D;
    }
    qsort(tasks, (size_t)n_tasks, sizeof *tasks, attn_task_cmp);

    cpu_blas_single();
    #pragma omp parallel if (n_tasks > 1 && work >= ATTN_PAR_MIN_WORK)
    {
        real *S = attn_scratch((size_t)TILE * KB), *O = attn_scratch((size_t)TILE * D);
        real *m = attn_scratch(TILE), *l = attn_scratch(TILE);
        #pragma omp for schedule(dynamic, 1)
        for (int k = 0; k < n_tasks; k++) {
            const int task = tasks[k].id;
            attn_forward_task(&a, lse, tiles[task / H], task % H, S, O, m, l);
        }
        free(S); free(O); free(m); free(l);
    }
    free(tasks);
    free(tiles);
}

/* backward of segment [s0, s1), kv head g and its group's query heads, accumulated into dqkv
 * (zero on entry); work space S, dP [QB * TILE] */
static void attn_backward_task(const AttnArgs *a, int s0, int s1, int g, real *S, real *dP)
{
    const int D = a->D;
    const size_t row = a->row, orow = a->orow;
    const real *k = a->qkv + (size_t)(a->H + g) * D, *v = a->qkv + (size_t)(a->H + a->Hkv + g) * D;
    real *dk = a->out + (size_t)(a->H + g) * D, *dv = a->out + (size_t)(a->H + a->Hkv + g) * D;
    for (int h = g * a->group; h < (g + 1) * a->group; h++) {
        const real *q = a->qkv + (size_t)h * D, *dout = a->dout + (size_t)h * D;
        const real *lse = a->lse + (size_t)h * a->N, *delta = a->delta + (size_t)h * a->N;
        real *dq = a->out + (size_t)h * D;
        for (int c0 = s0; c0 < s1; c0 += TILE) {
            const int nc = imin(TILE, s1 - c0);
            /* every query row at or after the tile's first key, to the end of the segment */
            for (int i0 = c0; i0 < s1; i0 += QB) {
                const int ni = imin(QB, s1 - i0);
                cblas_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, nc, D, a->scale, q + (size_t)i0 * row,
                           (int)row, k + (size_t)c0 * row, (int)row, (real)0, S, TILE);
                cblas_gemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, nc, D, (real)1, dout + (size_t)i0 * orow,
                           (int)orow, v + (size_t)c0 * row, (int)row, (real)0, dP, TILE);
                for (int r = 0; r < ni; r++) {
                    const int i = i0 + r, valid = imin(nc, i - c0 + 1);   /* causal: keys c0 .. i */
                    real *p = S + (size_t)r * TILE, *dp = dP + (size_t)r * TILE;
                    exp_shifted_sum(p, valid, lse[i]);
                    const real di = delta[i];
                    for (int j = 0; j < valid; j++) dp[j] = p[j] * (dp[j] - di) * a->scale;
                    for (int j = valid; j < nc; j++) p[j] = dp[j] = 0;
                }
                cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, nc, D, ni, (real)1, S, TILE,
                           dout + (size_t)i0 * orow, (int)orow, (real)1, dv + (size_t)c0 * row, (int)row);
                cblas_gemm(CblasRowMajor, CblasTrans, CblasNoTrans, nc, D, ni, (real)1, dP, TILE,
                           q + (size_t)i0 * row, (int)row, (real)1, dk + (size_t)c0 * row, (int)row);
                cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, D, nc, (real)1, dP, TILE,
                           k + (size_t)c0 * row, (int)row, (real)1, dq + (size_t)i0 * row, (int)row);
            }
        }
    }
}

void OP(cpu_attention_backward)(real *dqkv, const real *dout, const real *qkv, const real *out,
                                const real *lse, const int32_t *cu_seqlens, int n_segs,
                                int N, int H, int Hkv, int D)
{
    const size_t row = (size_t)(H + 2 * Hkv) * D, orow = (size_t)H * D;
    memset(dqkv, 0, (size_t)N * row * sizeof(real));
    real *delta = malloc((size_t)(N > 0 ? N : 1) * H * sizeof(real));
    if (!delta) abort();
    const AttnArgs a = { qkv, dout, lse, delta, dqkv, row, orow, N, H, Hkv, D, H / Hkv,
                         (real)(1.0 / sqrt((double)D)) };

    /* task id = segment * Hkv + kv head; cost: (query row, key) pairs x heads of the group */
    const int n_tasks = n_segs * Hkv;
    AttnTask *tasks = malloc((size_t)(n_tasks > 0 ? n_tasks : 1) * sizeof(AttnTask));
    if (!tasks) abort();
    double work = 0;
    for (int id = 0; id < n_tasks; id++) {
        const double len = cu_seqlens[id / Hkv + 1] - cu_seqlens[id / Hkv];
        tasks[id] = (AttnTask){ 0.5 * len * (len + TILE) * a.group, id };
        work += tasks[id].cost * D;
    }
    qsort(tasks, (size_t)n_tasks, sizeof *tasks, attn_task_cmp);

    cpu_blas_single();
    #pragma omp parallel if (n_tasks > 1 && work >= ATTN_PAR_MIN_WORK)
    {
        /* Di = dO_i . O_i per (head, token) */
        #pragma omp for schedule(static)
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++) {
                const real *x = dout + (size_t)n * orow + (size_t)h * D, *y = out + (size_t)n * orow + (size_t)h * D;
                real acc = 0;
                for (int d = 0; d < D; d++) acc += x[d] * y[d];
                delta[(size_t)h * N + n] = acc;
            }

        real *S = attn_scratch((size_t)QB * TILE), *dP = attn_scratch((size_t)QB * TILE);
        #pragma omp for schedule(dynamic, 1)
        for (int k = 0; k < n_tasks; k++) {
            const int id = tasks[k].id, s = id / Hkv;
            attn_backward_task(&a, cu_seqlens[s], cu_seqlens[s + 1], id % Hkv, S, dP);
        }
        free(S); free(dP);
    }
    free(tasks);
    free(delta);
}

/* ------------------------------------------------------------------------------------------ */
/* SwiGLU: out = silu(gate) * up, gate_up = [gate | up] per row. exp(-gate) is taken through
 * vexp, a row's columns at a time into a stack buffer of SW_CHUNK; the rest of each formula is a
 * plain loop that the compiler vectorizes. */
#define SW_CHUNK 256

void OP(cpu_swiglu_forward)(real *out, const real *gate_up, int N, int F)
{
    #pragma omp parallel for schedule(static) if ((size_t)N * F >= PAR_MIN_EXPS)
    for (int n = 0; n < N; n++) {
        const real *gate = gate_up + (size_t)n * 2 * F, *up = gate + F;
        real *o = out + (size_t)n * F;
        real e[SW_CHUNK];
        for (int f0 = 0; f0 < F; f0 += SW_CHUNK) {
            const int nf = imin(SW_CHUNK, F - f0);
            for (int f = 0; f < nf; f++) e[f] = -gate[f0 + f];
            exp_array(e, e, nf);
            for (int f = 0; f < nf; f++) o[f0 + f] = gate[f0 + f] / (1 + e[f]) * up[f0 + f];
        }
    }
}

void OP(cpu_swiglu_backward)(real *dgate_up, const real *dout, const real *gate_up, int N, int F)
{
    /* silu'(g) = sig(g) * (1 + g * (1 - sig(g))) */
    #pragma omp parallel for schedule(static) if ((size_t)N * F >= PAR_MIN_EXPS)
    for (int n = 0; n < N; n++) {
        const real *gate = gate_up + (size_t)n * 2 * F, *up = gate + F;
        const real *dy = dout + (size_t)n * F;
        real *dgate = dgate_up + (size_t)n * 2 * F, *dup = dgate + F;
        real e[SW_CHUNK];
        for (int f0 = 0; f0 < F; f0 += SW_CHUNK) {
            const int nf = imin(SW_CHUNK, F - f0);
            for (int f = 0; f < nf; f++) e[f] = -gate[f0 + f];
            exp_array(e, e, nf);
            for (int f = 0; f < nf; f++) {
                const real g = gate[f0 + f], sig = 1 / (1 + e[f]);
                dgate[f0 + f] = dy[f0 + f] * up[f0 + f] * sig * (1 + g * (1 - sig));
                dup[f0 + f] = dy[f0 + f] * g * sig;
            }
        }
    }
}

void OP(cpu_add)(real *out, const real *a, const real *b, size_t n)
{
    #pragma omp parallel for schedule(static) if (n >= 4 * PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* ------------------------------------------------------------------------------------------ */
/* cross-entropy over V classes per row; a target outside [0, V) is ignored (loss 0, grad 0).
 * exp(x - max) goes through vexp, CE_CHUNK classes at a time; the sum stays sequential in
 * double, in class order. */
#define CE_CHUNK 256

/* One row of logits x with target t in [0, V): returns the loss; with d (which may be x), writes
 * the gradient w * (softmax(x) - onehot(t)) there in the same pass over the row. */
static real ce_row(const real *x, real *d, int t, int V, float w)
{
    const real mx = row_max(x, V);   /* shift by the max so exp never overflows */
    const real xt = x[t];            /* read before d overwrites it */
    double sum = 0.0;
    real e[CE_CHUNK];
    for (int v0 = 0; v0 < V; v0 += CE_CHUNK) {
        const int nv = imin(CE_CHUNK, V - v0);
        real *dst = d ? d + v0 : e;
        for (int v = 0; v < nv; v++) e[v] = x[v0 + v] - mx;
        exp_array(dst, e, nv);
        for (int v = 0; v < nv; v++) sum += dst[v];
    }
    if (d) {
        const real scale = (real)(w / sum);
        for (int v = 0; v < V; v++) d[v] *= scale;
        d[t] -= (real)w;
    }
    return (real)(log(sum) - (double)(xt - mx));
}

void OP(cpu_crossentropy_forward)(real *losses, const real *logits, const int32_t *targets, int N, int V)
{
    #pragma omp parallel for schedule(static) if ((size_t)N * V >= PAR_MIN_EXPS)
    for (int n = 0; n < N; n++) {
        const int t = targets[n];
        losses[n] = t < 0 || t >= V ? 0 : ce_row(logits + (size_t)n * V, NULL, t, V, 0);
    }
}

/* dlogits may be logits: each pass reads x[v] before it writes d[v] at the same index, and the
 * max and x[t] are read before anything is written. */
void OP(cpu_crossentropy_backward)(real *dlogits, const real *logits, const int32_t *targets,
                                   const float *weights, int N, int V)
{
    OP(cpu_crossentropy_fused)(NULL, dlogits, logits, targets, weights, N, V);
}

/* Both in one pass over each row: the same losses and gradients, bit for bit, as the two ops
 * (one max and one exp per logit instead of two). losses may be NULL. */
void OP(cpu_crossentropy_fused)(real *losses, real *dlogits, const real *logits, const int32_t *targets,
                                const float *weights, int N, int V)
{
    #pragma omp parallel for schedule(static) if ((size_t)N * V >= PAR_MIN_EXPS)
    for (int n = 0; n < N; n++) {
        const int t = targets[n];
        real *d = dlogits + (size_t)n * V;
        if (t < 0 || t >= V) {
            memset(d, 0, (size_t)V * sizeof(real));
            if (losses) losses[n] = 0;
            continue;
        }
        const real loss = ce_row(logits + (size_t)n * V, d, t, V, weights[n]);
        if (losses) losses[n] = loss;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* optimizer */

double OP(cpu_sum_squares)(const real *x, size_t n)
{
    /* fixed chunks summed in order, so the result does not depend on the thread count */
    const size_t chunk = (size_t)1 << 15, n_chunks = (n + chunk - 1) / chunk;
    if (n_chunks == 0) return 0.0;
    double *partial = malloc(n_chunks * sizeof(double));
    if (!partial) abort();
    #pragma omp parallel for schedule(static) if (n_chunks * chunk >= PAR_MIN_ELEMS)
    for (size_t c = 0; c < n_chunks; c++) {
        const size_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        double acc = 0.0;
        for (size_t i = c * chunk; i < end; i++) acc += (double)x[i] * x[i];
        partial[c] = acc;
    }
    double total = 0.0;
    for (size_t c = 0; c < n_chunks; c++) total += partial[c];
    free(partial);
    return total;
}

void OP(cpu_adamw)(real *params, const real *grads, real *m, real *v, size_t n,
                   const AdamWConfig *cfg, float grad_scale, int t)
{
    const real b1 = cfg->beta1, b2 = cfg->beta2, lr = cfg->lr, eps = cfg->eps, wd = cfg->weight_decay;
    /* bias corrections: the moments start at zero, so early averages are scaled up */
    const real bc1 = (real)(1.0 - pow((double)cfg->beta1, t));
    const real bc2 = (real)(1.0 - pow((double)cfg->beta2, t));
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN_EXPS)
    for (size_t i = 0; i < n; i++) {
        const real g = grads[i] * (real)grad_scale;
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        const real mhat = m[i] / bc1, vhat = v[i] / bc2;
        /* decoupled weight decay: applied to the parameter, not folded into the gradient */
        params[i] -= lr * (mhat / (sqrt(vhat) + eps) + wd * params[i]);
    }
}

#undef OP
#undef OP_CAT
#undef OP_CAT_
#undef TILE
#undef COL_BLOCK
#undef ROW_CHUNK
#undef VW
#undef SW_CHUNK
#undef CE_CHUNK
#undef PAR_MIN_ELEMS
#undef PAR_MIN_EXPS
#undef KB
#undef QB
#undef ATTN_PAR_MIN_WORK
