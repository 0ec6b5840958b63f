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
/* embedding */

void OP(cpu_embedding_forward)(real *out, const int32_t *tokens, const real *wte, int N, int C)
{
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, (size_t)C * sizeof(real));
}

void OP(cpu_embedding_backward)(real *dwte, const real *dout, const int32_t *tokens, int N, int C)
{
    /* A token may repeat, so rows of dwte collide; threads split the columns instead, and every
     * thread walks all positions in order (deterministic, no atomics). Narrow blocks keep a
     * 64-wide model on several threads. */
    int n_blocks = (C + COL_BLOCK - 1) / COL_BLOCK;
    #pragma omp parallel for schedule(static)
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
    #pragma omp parallel for schedule(static)
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
     * through rstd. */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        real *dx = dinp + (size_t)n * C;
        real r = rstd[n];
        double gx = 0.0;
        for (int c = 0; c < C; c++) gx += (double)w[c] * dy[c] * x[c];
        real k = (real)(gx * r * r * r / C);
        for (int c = 0; c < C; c++) dx[c] += r * w[c] * dy[c] - k * x[c];
    }
    /* dw sums over all rows: partial sums per fixed chunk of rows, then the chunks in order, so
     * the result does not depend on the thread count */
    const int n_chunks = (N + ROW_CHUNK - 1) / ROW_CHUNK;
    double *partial = calloc((size_t)n_chunks * C + 1, sizeof(double));
    if (!partial) abort();
    #pragma omp parallel for schedule(static)
    for (int k = 0; k < n_chunks; k++) {
        double *acc = partial + (size_t)k * C;
        for (int n = k * ROW_CHUNK; n < imin(N, (k + 1) * ROW_CHUNK); n++) {
            const real *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            const real r = rstd[n];
            for (int c = 0; c < C; c++) acc[c] += (double)(dy[c] * x[c] * r);
        }
    }
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double sum = 0.0;
        for (int k = 0; k < n_chunks; k++) sum += partial[(size_t)k * C + c];
        dw[c] += (real)sum;
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
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        real *x = qkv + (size_t)n * row;
        for (int i = 0; i < half; i++) {
            double angle = sign * pos[n] * pow((double)theta, -2.0 * i / D);
            real c = (real)cos(angle), s = (real)sin(angle);
            for (int h = 0; h < heads; h++) {
                real *a = x + (size_t)h * D + i, *b = a + half;
                real x1 = *a, x2 = *b;
                *a = x1 * c - x2 * s;
                *b = x2 * c + x1 * s;
            }
        }
    }
}

void OP(cpu_rope_forward)(real *qkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta)
{
    rope_rotate(qkv, pos, N, H, Hkv, D, theta, 1.0);
}

void OP(cpu_rope_backward)(real *dqkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta)
{
    rope_rotate(dqkv, pos, N, H, Hkv, D, theta, -1.0);
}

/* ------------------------------------------------------------------------------------------ */
/* Varlen causal attention, FlashAttention-2 style.
 *
 * Each segment is cut into tiles of TILE rows counted from the segment's start, so query tile i
 * and key tile i of a segment cover the same tokens. Forward: one task per (query tile, head)
 * walks the key tiles up to the diagonal with an online softmax (running max m and sum l), so at
 * most one tile of the segment's score matrix exists at a time per thread; it stores
 * lse = m + log(l). Backward recomputes P = exp(S - lse) and, with Di = dO_i . O_i,
 * dS = P * (dP - Di); Di is computed once per (head, token) up front, in lse's layout. The
 * backward runs as two passes so that every output row has one owner:
 *   pass 1, one task per (key tile, kv head): dK, dV of those rows, summed over the query
 *           heads of the group and over every query row at or below the tile;
 *   pass 2, one task per (query tile, head): dQ of those rows.
 * That recomputes S and dP once more than a fused backward, and buys parallelism over key tiles
 * even for a single 64k-token segment with few kv heads.
 *
 * Key tiles are copied transposed (kT[d][j]) so that the score loop runs over keys: a strip of
 * keys accumulates in vector registers across d, with no dot product to reassociate. */

typedef struct {
    int start, end;       /* the tile's tokens [start, end) */
    int seg_start, seg_end;
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
            tiles[t++] = (AttnTile){ a, imin(a + TILE, cu_seqlens[s + 1]), cu_seqlens[s], cu_seqlens[s + 1] };
    *n_tiles = count;
    return tiles;
}

/* Zeroes the rows of x[N, row] outside [cu_seqlens[0], cu_seqlens[n_segs]): a well-formed batch
 * has none, and the segments themselves are contiguous and fully written by the passes. */
static void zero_outside_segments(real *x, size_t row, const int32_t *cu_seqlens, int n_segs, int N)
{
    const size_t first = (size_t)cu_seqlens[0], last = (size_t)cu_seqlens[n_segs];
    memset(x, 0, first * row * sizeof(real));
    if (last < (size_t)N) memset(x + last * row, 0, ((size_t)N - last) * row * sizeof(real));
}

static void *attn_scratch(size_t count)
{
    real *p = malloc(count * sizeof(real));
    if (!p) abort();
    return p;
}

/* Score columns are computed in strips of this many keys, held in registers across the D loop. */
#define STRIP 16
_Static_assert(TILE % STRIP == 0, "a tile must hold whole strips");

/* xT[d * TILE + j] = x[(k0 + j) * row + d] for the jn rows of one head's keys or values; the
 * columns up to the next STRIP boundary are zeroed so tile_dots may run whole strips. */
static void tile_transpose(real *xT, const real *x, size_t row, int k0, int jn, int D)
{
    for (int j = 0; j < jn; j++) {
        const real *src = x + (size_t)(k0 + j) * row;
        for (int d = 0; d < D; d++) xT[d * TILE + j] = src[d];
    }
    const int jpad = imin((jn + STRIP - 1) / STRIP * STRIP, TILE);
    for (int d = 0; d < D; d++)
        for (int j = jn; j < jpad; j++) xT[d * TILE + j] = 0;
}

/* s[j] = scale * (a . xT[:, j]) for j < jn */
static void tile_dots(real *s, const real *a, const real *xT, int jn, int D, real scale)
{
    for (int j0 = 0; j0 < jn; j0 += STRIP) {
        real acc[STRIP] = { 0 };
        for (int d = 0; d < D; d++) {
            const real ad = a[d], *col = xT + d * TILE + j0;
            /* fully unrolled, acc lives in registers (3x faster than through memory at -O2) */
            #pragma GCC unroll 16
            for (int j = 0; j < STRIP; j++) acc[j] += ad * col[j];
        }
        const int n = imin(STRIP, jn - j0);
        for (int j = 0; j < n; j++) s[j0 + j] = acc[j] * scale;
    }
}

static real dot(const real *a, const real *b, int D)
{
    real acc = 0;
    for (int d = 0; d < D; d++) acc += a[d] * b[d];
    return acc;
}

void OP(cpu_attention_forward)(real *out, real *lse, const real *qkv, const int32_t *cu_seqlens,
                               int n_segs, int N, int H, int Hkv, int D)
{
    const size_t row = (size_t)(H + 2 * Hkv) * D, orow = (size_t)H * D;
    const int group = H / Hkv;
    const real scale = (real)(1.0 / sqrt((double)D));
    int n_tiles;
    AttnTile *tiles = attn_tiles(cu_seqlens, n_segs, &n_tiles);
    zero_outside_segments(out, orow, cu_seqlens, n_segs, N);
    for (int h = 0; h < H; h++) zero_outside_segments(lse + (size_t)h * N, 1, cu_seqlens, n_segs, N);

    #pragma omp parallel
    {
        real *kT = attn_scratch((size_t)D * TILE), *acc = attn_scratch((size_t)TILE * D);
        real s[TILE], m[TILE], l[TILE];
        #pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < n_tiles * H; task++) {
            const AttnTile t = tiles[task / H];
            const int h = task % H, g = h / group;
            const real *q = qkv + (size_t)h * D;
            const real *k = qkv + (size_t)(H + g) * D, *v = qkv + (size_t)(H + Hkv + g) * D;
            for (int i = 0; i < t.end - t.start; i++) { m[i] = -INFINITY; l[i] = 0; }
            memset(acc, 0, (size_t)TILE * D * sizeof(real));

            for (int k0 = t.seg_start; k0 < t.end; k0 += TILE) {
                const int k1 = imin(k0 + TILE, t.end);   /* keys past the last query are masked */
                tile_transpose(kT, k, row, k0, k1 - k0, D);
                for (int i = t.start; i < t.end; i++) {
                    const int ii = i - t.start, jn = imin(k1, i + 1) - k0;   /* causal: j <= i */
                    real *o = acc + (size_t)ii * D;
                    tile_dots(s, q + (size_t)i * row, kT, jn, D, scale);
                    real mx = m[ii];
                    for (int j = 0; j < jn; j++) mx = s[j] > mx ? s[j] : mx;
                    /* rescale what was summed under the old max */
                    const real alpha = exp(m[ii] - mx);
                    real sum = 0;
                    #pragma omp simd
                    for (int d = 0; d < D; d++) o[d] *= alpha;
                    for (int j = 0; j < jn; j++) {
                        const real p = exp(s[j] - mx);
                        const real *vj = v + (size_t)(k0 + j) * row;
                        sum += p;
                        #pragma omp simd
                        for (int d = 0; d < D; d++) o[d] += p * vj[d];
                    }
                    l[ii] = l[ii] * alpha + sum;
                    m[ii] = mx;
                }
            }
            for (int i = t.start; i < t.end; i++) {
                const int ii = i - t.start;
                const real inv = 1 / l[ii];
                real *dst = out + (size_t)i * orow + (size_t)h * D;
                for (int d = 0; d < D; d++) dst[d] = acc[(size_t)ii * D + d] * inv;
                lse[(size_t)h * N + i] = m[ii] + log(l[ii]);
            }
        }
        free(kT);
        free(acc);
    }
    free(tiles);
}

void OP(cpu_attention_backward)(real *dqkv, const real *dout, const real *qkv, const real *out,
                                const real *lse, const int32_t *cu_seqlens, int n_segs,
                                int N, int H, int Hkv, int D)
{
    const size_t row = (size_t)(H + 2 * Hkv) * D, orow = (size_t)H * D;
    const int group = H / Hkv;
    const real scale = (real)(1.0 / sqrt((double)D));
    int n_tiles;
    AttnTile *tiles = attn_tiles(cu_seqlens, n_segs, &n_tiles);
    zero_outside_segments(dqkv, row, cu_seqlens, n_segs, N);

    /* Di = dO_i . O_i per (head, token), read by both passes */
    real *delta = attn_scratch((size_t)N * H);
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++)
            delta[(size_t)h * N + n] = dot(dout + (size_t)n * orow + (size_t)h * D,
                                           out + (size_t)n * orow + (size_t)h * D, D);

    /* pass 1: dK, dV per (key tile, kv head) */
    #pragma omp parallel
    {
        real *kT = attn_scratch((size_t)D * TILE), *vT = attn_scratch((size_t)D * TILE);
        real *dk = attn_scratch((size_t)TILE * D), *dv = attn_scratch((size_t)TILE * D);
        real s[TILE], dp[TILE];
        #pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < n_tiles * Hkv; task++) {
            const AttnTile t = tiles[task / Hkv];
            const int g = task % Hkv, jn_tile = t.end - t.start;
            const real *k = qkv + (size_t)(H + g) * D, *v = qkv + (size_t)(H + Hkv + g) * D;
            tile_transpose(kT, k, row, t.start, jn_tile, D);
            tile_transpose(vT, v, row, t.start, jn_tile, D);
            memset(dk, 0, (size_t)TILE * D * sizeof(real));
            memset(dv, 0, (size_t)TILE * D * sizeof(real));

            for (int h = g * group; h < (g + 1) * group; h++) {
                const real *q = qkv + (size_t)h * D;
                /* every query at or after the tile's first key, to the end of the segment */
                for (int i = t.start; i < t.seg_end; i++) {
                    const int jn = imin(t.end, i + 1) - t.start;
                    const real *qi = q + (size_t)i * row;
                    const real *doi = dout + (size_t)i * orow + (size_t)h * D;
                    const real di = delta[(size_t)h * N + i], lse_i = lse[(size_t)h * N + i];
                    tile_dots(s, qi, kT, jn, D, scale);
                    tile_dots(dp, doi, vT, jn, D, 1);
                    for (int j = 0; j < jn; j++) {
                        const real p = exp(s[j] - lse_i);
                        const real ds = p * (dp[j] - di) * scale;
                        real *dkj = dk + (size_t)j * D, *dvj = dv + (size_t)j * D;
                        #pragma omp simd
                        for (int d = 0; d < D; d++) {
                            dvj[d] += p * doi[d];
                            dkj[d] += ds * qi[d];
                        }
                    }
                }
            }
            for (int j = 0; j < jn_tile; j++) {
                real *dst = dqkv + (size_t)(t.start + j) * row;
                memcpy(dst + (size_t)(H + g) * D, dk + (size_t)j * D, (size_t)D * sizeof(real));
                memcpy(dst + (size_t)(H + Hkv + g) * D, dv + (size_t)j * D, (size_t)D * sizeof(real));
            }
        }
        free(kT); free(vT); free(dk); free(dv);
    }

    /* pass 2: dQ per (query tile, head) */
    #pragma omp parallel
    {
        real *kT = attn_scratch((size_t)D * TILE), *vT = attn_scratch((size_t)D * TILE);
        real *dq = attn_scratch((size_t)TILE * D);
        real s[TILE], dp[TILE];
        #pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < n_tiles * H; task++) {
            const AttnTile t = tiles[task / H];
            const int h = task % H, g = h / group;
            const real *q = qkv + (size_t)h * D;
            const real *k = qkv + (size_t)(H + g) * D, *v = qkv + (size_t)(H + Hkv + g) * D;
            memset(dq, 0, (size_t)TILE * D * sizeof(real));

            for (int k0 = t.seg_start; k0 < t.end; k0 += TILE) {
                const int k1 = imin(k0 + TILE, t.end);
                tile_transpose(kT, k, row, k0, k1 - k0, D);
                tile_transpose(vT, v, row, k0, k1 - k0, D);
                for (int i = t.start; i < t.end; i++) {
                    const int ii = i - t.start, jn = imin(k1, i + 1) - k0;
                    const real *doi = dout + (size_t)i * orow + (size_t)h * D;
                    const real di = delta[(size_t)h * N + i], lse_i = lse[(size_t)h * N + i];
                    real *dqi = dq + (size_t)ii * D;
                    tile_dots(s, q + (size_t)i * row, kT, jn, D, scale);
                    tile_dots(dp, doi, vT, jn, D, 1);
                    for (int j = 0; j < jn; j++) {
                        const real ds = exp(s[j] - lse_i) * (dp[j] - di) * scale;
                        const real *kj = k + (size_t)(k0 + j) * row;
                        #pragma omp simd
                        for (int d = 0; d < D; d++) dqi[d] += ds * kj[d];
                    }
                }
            }
            for (int i = t.start; i < t.end; i++)
                memcpy(dqkv + (size_t)i * row + (size_t)h * D, dq + (size_t)(i - t.start) * D,
                       (size_t)D * sizeof(real));
        }
        free(kT); free(vT); free(dq);
    }
    free(delta);
    free(tiles);
}

/* ------------------------------------------------------------------------------------------ */
/* SwiGLU: out = silu(gate) * up, gate_up = [gate | up] per row */

void OP(cpu_swiglu_forward)(real *out, const real *gate_up, int N, int F)
{
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const real *gate = gate_up + (size_t)n * 2 * F, *up = gate + F;
        real *o = out + (size_t)n * F;
        for (int f = 0; f < F; f++) o[f] = gate[f] / (1 + exp(-gate[f])) * up[f];
    }
}

void OP(cpu_swiglu_backward)(real *dgate_up, const real *dout, const real *gate_up, int N, int F)
{
    /* silu'(g) = sig(g) * (1 + g * (1 - sig(g))) */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const real *gate = gate_up + (size_t)n * 2 * F, *up = gate + F;
        const real *dy = dout + (size_t)n * F;
        real *dgate = dgate_up + (size_t)n * 2 * F, *dup = dgate + F;
        for (int f = 0; f < F; f++) {
            const real g = gate[f], sig = 1 / (1 + exp(-g));
            dgate[f] = dy[f] * up[f] * sig * (1 + g * (1 - sig));
            dup[f] = dy[f] * g * sig;
        }
    }
}

void OP(cpu_add)(real *out, const real *a, const real *b, size_t n)
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* ------------------------------------------------------------------------------------------ */
/* cross-entropy over V classes per row; a target outside [0, V) is ignored (loss 0, grad 0) */

static real row_max(const real *x, int V)
{
    real mx = x[0];
    for (int v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx;
    return mx;
}

void OP(cpu_crossentropy_forward)(real *losses, const real *logits, const int32_t *targets, int N, int V)
{
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const real *x = logits + (size_t)n * V;
        const int t = targets[n];
        if (t < 0 || t >= V) { losses[n] = 0; continue; }
        const real mx = row_max(x, V);   /* shift by the max so exp never overflows */
        double sum = 0.0;
        for (int v = 0; v < V; v++) sum += exp(x[v] - mx);
        losses[n] = (real)(log(sum) - (double)(x[t] - mx));
    }
}

void OP(cpu_crossentropy_backward)(real *dlogits, const real *logits, const int32_t *targets,
                                   const float *weights, int N, int V)
{
    /* dlogits may be logits: each pass reads x[v] before it writes d[v] at the same index, and
     * the max is taken before anything is written. */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const real *x = logits + (size_t)n * V;
        real *d = dlogits + (size_t)n * V;
        const int t = targets[n];
        if (t < 0 || t >= V) { memset(d, 0, (size_t)V * sizeof(real)); continue; }
        const real mx = row_max(x, V);
        double sum = 0.0;
        for (int v = 0; v < V; v++) { d[v] = exp(x[v] - mx); sum += d[v]; }
        const real scale = (real)(weights[n] / sum);
        for (int v = 0; v < V; v++) d[v] *= scale;
        d[t] -= (real)weights[n];
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
    #pragma omp parallel for schedule(static)
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
    #pragma omp parallel for schedule(static)
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
#undef STRIP
