/* Tests of the CPU ops (kernels/cpu/cpu_ops.h) and of the CPU Backend table.
 *
 * Gradients: every backward is checked against central finite differences of a scalar loss
 * L = sum(out * R), R a fixed random tensor, in double precision (the _f64 ops). With step
 * FD_H = 1e-5 the truncation error is ~h^2 |f'''| ~ 1e-10 and the rounding error
 * ~1e-16 |L| / h ~ 1e-10 (observed: at most ~3e-10), so FD_ATOL = 1e-7 and FD_RTOL = 1e-6 leave
 * over two orders of margin while a real mistake (a missing term, a wrong index) shows up at
 * 1e-3 or above.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* nanosleep, and mkstemp in test_util.h, under -std=c11 */
#endif
#include "tests/test_util.h"

#include "kernels/backend.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/cpuinfo.h"
#include "kernels/cpu/openblas.h"

#include <omp.h>
#include <time.h>

#define FD_H 1e-5
#define FD_ATOL 1e-7
#define FD_RTOL 1e-6

/* ------------------------------------------------------------------------------------------ */
/* helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double rnd(void)   /* uniform in [-1, 1), splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / (double)(1ull << 52) - 1.0;
}

static double *rand_array(size_t n, double scale)
{
    double *x = malloc(n * sizeof(double));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = scale * rnd();
    return x;
}

static double *copy_array(const double *x, size_t n)
{
    double *y = malloc(n * sizeof(double));
    assert_non_null(y);
    memcpy(y, x, n * sizeof(double));
    return y;
}

static double dot_array(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

typedef double (*LossFn)(void *ctx);

/* Compares grad[i] with the central difference of loss() in x[i], for every stride-th i. */
static void check_grad(const char *name, double *x, size_t n, const double *grad,
                       LossFn loss, void *ctx, size_t stride)
{
    for (size_t i = 0; i < n; i += stride) {
        const double keep = x[i];
        x[i] = keep + FD_H;
        const double lp = loss(ctx);
        x[i] = keep - FD_H;
        const double lm = loss(ctx);
        x[i] = keep;
        const double fd = (lp - lm) / (2 * FD_H);
        if (!(fabs(grad[i] - fd) <= FD_ATOL + FD_RTOL * fabs(fd))) {
            print_error("%s[%zu]: analytic %.12g, finite difference %.12g\n", name, i, grad[i], fd);
            fail();
        }
    }
}

/* grad = (after - before): the part an accumulating backward added */
static double *added(const double *after, const double *before, size_t n)
{
    double *d = malloc(n * sizeof(double));
    assert_non_null(d);
    for (size_t i = 0; i < n; i++) d[i] = after[i] - before[i];
    return d;
}

/* ------------------------------------------------------------------------------------------ */
/* embedding */

typedef struct { const int32_t *tokens; double *wte, *out; const double *R; int N, C; } EmbCtx;

static double emb_loss(void *p)
{
    EmbCtx *c = p;
    cpu_embedding_forward_f64(c->out, c->tokens, c->wte, c->N, c->C);
    return dot_array(c->out, c->R, (size_t)c->N * c->C);
}

static void test_embedding_grad(void **state)
{
    (void)state;
    enum { N = 7, C = 5, V = 4 };
    const int32_t tokens[N] = { 2, 0, 2, 3, 2, 0, 1 };   /* repeats: the scatter must add */
    double *wte = rand_array(V * C, 1.0), *R = rand_array(N * C, 1.0);
    double out[N * C];
    EmbCtx ctx = { tokens, wte, out, R, N, C };
    emb_loss(&ctx);
    assert_true(out[2 * C + 3] == wte[2 * C + 3]);   /* row 2 is wte[tokens[2]] */

    double *dwte0 = rand_array(V * C, 1.0), *dwte = copy_array(dwte0, V * C);
    cpu_embedding_backward_f64(dwte, R, tokens, N, C);
    double *grad = added(dwte, dwte0, V * C);
    check_grad("dwte", wte, V * C, grad, emb_loss, &ctx, 1);
    free(wte); free(R); free(dwte0); free(dwte); free(grad);
}

/* ------------------------------------------------------------------------------------------ */
/* rmsnorm */

typedef struct { double *inp, *w, *out, *rstd; const double *R; int N, C; float eps; } NormCtx;

static double norm_loss(void *p)
{
    NormCtx *c = p;
    cpu_rmsnorm_forward_f64(c->out, c->rstd, c->inp, c->w, c->N, c->C, c->eps);
    return dot_array(c->out, c->R, (size_t)c->N * c->C);
}

static void test_rmsnorm_grad(void **state)
{
    (void)state;
    enum { N = 3, C = 6 };
    double *inp = rand_array(N * C, 2.0), *w = rand_array(C, 1.0), *R = rand_array(N * C, 1.0);
    double out[N * C], rstd[N];
    NormCtx ctx = { inp, w, out, rstd, R, N, C, 1e-5f };
    norm_loss(&ctx);
    /* rstd against its definition */
    double ss = 0.0;
    for (int c = 0; c < C; c++) ss += inp[C + c] * inp[C + c];
    assert_close(rstd[1], 1.0 / sqrt(ss / C + (double)1e-5f), 1e-15, 1e-13);

    /* both gradients accumulate: start from random values and check what was added */
    double *dinp0 = rand_array(N * C, 1.0), *dw0 = rand_array(C, 1.0);
    double *dinp = copy_array(dinp0, N * C), *dw = copy_array(dw0, C);
    cpu_rmsnorm_backward_f64(dinp, dw, R, inp, w, rstd, N, C);
    double *ginp = added(dinp, dinp0, N * C), *gw = added(dw, dw0, C);
    check_grad("rmsnorm dinp", inp, N * C, ginp, norm_loss, &ctx, 1);
    check_grad("rmsnorm dw", w, C, gw, norm_loss, &ctx, 1);
    free(inp); free(w); free(R); free(dinp0); free(dw0); free(dinp); free(dw); free(ginp); free(gw);
}

/* The parameter-gradient sums over rows split work by row chunks (rmsnorm dw) and column
 * blocks (embedding): with 600 rows and 37 columns both span several, checked against a plain
 * loop (1e-12: only the summation order differs). */
static void test_row_reductions_many_rows(void **state)
{
    (void)state;
    enum { N = 600, C = 37, V = 11 };
    int32_t tokens[N];
    for (int n = 0; n < N; n++) tokens[n] = (n * 7) % V;
    double *inp = rand_array(N * C, 1.0), *w = rand_array(C, 1.0), *dout = rand_array(N * C, 1.0);
    double *out = malloc(N * C * sizeof(double)), *rstd = malloc(N * sizeof(double));
    double *dinp = calloc(N * C, sizeof(double)), *dw = calloc(C, sizeof(double));
    double *dwte = calloc(V * C, sizeof(double)), ref_dw[C] = { 0 }, ref_dwte[V * C];
    memset(ref_dwte, 0, sizeof ref_dwte);
    cpu_rmsnorm_forward_f64(out, rstd, inp, w, N, C, 1e-5f);
    cpu_rmsnorm_backward_f64(dinp, dw, dout, inp, w, rstd, N, C);
    cpu_embedding_backward_f64(dwte, dout, tokens, N, C);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            ref_dw[c] += dout[n * C + c] * inp[n * C + c] * rstd[n];
            ref_dwte[tokens[n] * C + c] += dout[n * C + c];
        }
    for (int c = 0; c < C; c++) assert_close(dw[c], ref_dw[c], 1e-12, 1e-12);
    for (int i = 0; i < V * C; i++) assert_close(dwte[i], ref_dwte[i], 1e-12, 1e-12);
    free(inp); free(w); free(dout); free(out); free(rstd); free(dinp); free(dw); free(dwte);
}

/* ------------------------------------------------------------------------------------------ */
/* matmul */

typedef struct { double *inp, *w, *out; const double *R; int N, I, O; } MatCtx;

static double mat_loss(void *p)
{
    MatCtx *c = p;
    cpu_matmul_forward_f64(c->out, c->inp, c->w, c->N, c->I, c->O);
    return dot_array(c->out, c->R, (size_t)c->N * c->O);
}

static void test_matmul_grad(void **state)
{
    (void)state;
    enum { N = 4, In = 5, Out = 3 };
    double *inp = rand_array(N * In, 1.0), *w = rand_array(Out * In, 1.0), *R = rand_array(N * Out, 1.0);
    double out[N * Out];
    MatCtx ctx = { inp, w, out, R, N, In, Out };
    mat_loss(&ctx);
    /* out[1][2] = inp[1] . w[2] */
    assert_close(out[1 * Out + 2], dot_array(inp + In, w + 2 * In, In), 1e-15, 1e-13);

    /* overwrite: dinp starts as garbage; dw accumulates */
    double *dinp = rand_array(N * In, 100.0), *dw0 = rand_array(Out * In, 1.0), *dw = copy_array(dw0, Out * In);
    cpu_matmul_backward_f64(dinp, dw, R, inp, w, N, In, Out, 0);
    double *gw = added(dw, dw0, Out * In);
    check_grad("matmul dinp", inp, N * In, dinp, mat_loss, &ctx, 1);
    check_grad("matmul dw", w, Out * In, gw, mat_loss, &ctx, 1);

    /* accumulate_dinp = 1 adds the same gradient on top of what was there */
    double *dinp0 = rand_array(N * In, 1.0), *dinp_acc = copy_array(dinp0, N * In);
    cpu_matmul_backward_f64(dinp_acc, NULL, R, inp, w, N, In, Out, 1);
    for (int i = 0; i < N * In; i++) assert_close(dinp_acc[i] - dinp0[i], dinp[i], 1e-14, 1e-12);
    free(inp); free(w); free(R); free(dinp); free(dw0); free(dw); free(gw); free(dinp0); free(dinp_acc);
}

/* ------------------------------------------------------------------------------------------ */
/* RoPE */

typedef struct { const double *x; double *y; const int32_t *pos; const double *R; int N, H, Hkv, D; float theta; } RopeCtx;

static double rope_loss(void *p)
{
    RopeCtx *c = p;
    size_t n = (size_t)c->N * (c->H + 2 * c->Hkv) * c->D;
    memcpy(c->y, c->x, n * sizeof(double));
    cpu_rope_forward_f64(c->y, c->pos, c->N, c->H, c->Hkv, c->D, c->theta);
    return dot_array(c->y, c->R, n);
}

static void test_rope_grad(void **state)
{
    (void)state;
    enum { N = 5, H = 2, Hkv = 1, D = 6, W = (H + 2 * Hkv) * D };
    const int32_t pos[N] = { 0, 3, 1, 7, 2 };
    double *x = rand_array(N * W, 1.0), *R = rand_array(N * W, 1.0);
    double y[N * W];
    /* a small theta turns every pair by a visible angle */
    RopeCtx ctx = { x, y, pos, R, N, H, Hkv, D, 100.0f };
    double *dx = copy_array(R, N * W);
    cpu_rope_backward_f64(dx, pos, N, H, Hkv, D, ctx.theta);
    check_grad("rope dqkv", x, N * W, dx, rope_loss, &ctx, 1);
    /* v is not rotated: its gradient passes through untouched */
    for (int n = 0; n < N; n++)
        for (int i = (H + Hkv) * D; i < W; i++) assert_true(dx[n * W + i] == R[n * W + i]);
    free(x); free(R); free(dx);
}

static void test_rope_position_zero_is_identity(void **state)
{
    (void)state;
    enum { N = 3, H = 4, Hkv = 2, D = 8, W = (H + 2 * Hkv) * D };
    const int32_t pos[N] = { 0, 0, 0 };
    double *x = rand_array(N * W, 1.0), *y = copy_array(x, N * W);
    cpu_rope_forward_f64(y, pos, N, H, Hkv, D, 10000.0f);
    assert_memory_equal(x, y, sizeof(double) * N * W);
    /* and a non-zero position does move q */
    const int32_t pos1[N] = { 1, 0, 0 };
    cpu_rope_forward_f64(y, pos1, N, H, Hkv, D, 10000.0f);
    assert_true(fabs(y[0] - x[0]) > 1e-3);
    free(x); free(y);
}

static void test_rope_hf_convention(void **state)
{
    (void)state;
    /* D = 4, theta = 100, position 2: pair (0, 2) turns by 2 * 100^0 = 2 rad, pair (1, 3) by
     * 2 * 100^(-2/4) = 0.2 rad; q and k rotate, v does not */
    enum { H = 1, Hkv = 1, D = 4 };
    double x[3 * D] = { 1, 2, 3, 4,  -1, 0.5, 2, 1,  7, 8, 9, 10 };
    const int32_t pos[1] = { 2 };
    cpu_rope_forward_f64(x, pos, 1, H, Hkv, D, 100.0f);
    const double c0 = cos(2.0), s0 = sin(2.0), c1 = cos(0.2), s1 = sin(0.2);
    const double want[3 * D] = {
        1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 3 * c0 + 1 * s0, 4 * c1 + 2 * s1,
        -1 * c0 - 2 * s0, 0.5 * c1 - 1 * s1, 2 * c0 - 1 * s0, 1 * c1 + 0.5 * s1,
        7, 8, 9, 10 };
    for (int i = 0; i < 3 * D; i++) assert_close(x[i], want[i], 1e-14, 0);
}

/* q of token 0 at position a, k of token 1 at position b: the score depends on a - b only */
static double rope_score(const double *q, const double *k, int a, int b, int D, float theta)
{
    enum { H = 1, Hkv = 1 };
    double row[2 * (H + 2 * Hkv) * 16];
    const int W = (H + 2 * Hkv) * D;
    memset(row, 0, sizeof row);
    memcpy(row, q, D * sizeof(double));               /* token 0: q */
    memcpy(row + W + D, k, D * sizeof(double));       /* token 1: k */
    const int32_t pos[2] = { a, b };
    cpu_rope_forward_f64(row, pos, 2, H, Hkv, D, theta);
    return dot_array(row, row + W + D, D);
}

static void test_rope_relative_position(void **state)
{
    (void)state;
    enum { D = 16 };
    double *q = rand_array(D, 1.0), *k = rand_array(D, 1.0);
    const float theta = 10000.0f;
    const double s0 = rope_score(q, k, 5, 2, D, theta);
    /* the same offset 3 anywhere gives the same score (1e-12: a few roundings of O(1) terms) */
    assert_close(rope_score(q, k, 3, 0, D, theta), s0, 1e-12, 0);
    assert_close(rope_score(q, k, 103, 100, D, theta), s0, 1e-12, 0);
    assert_close(rope_score(q, k, 4003, 4000, D, theta), s0, 1e-11, 0);
    /* a different offset gives a different score, so the check above can fail */
    assert_true(fabs(rope_score(q, k, 6, 2, D, theta) - s0) > 1e-3);
    free(q); free(k);
}

/* ------------------------------------------------------------------------------------------ */
/* attention */

/* Naive reference: the whole score matrix of each segment, causal mask, plain softmax. */
static void attention_naive(double *out, double *lse, const double *qkv, const int32_t *cu, int n_segs,
                            int N, int H, int Hkv, int D)
{
    const int W = (H + 2 * Hkv) * D;
    const double scale = 1.0 / sqrt((double)D);
    for (int s = 0; s < n_segs; s++) {
        const int a = cu[s], L = cu[s + 1] - cu[s];
        double *S = malloc((size_t)L * L * sizeof(double));
        assert_non_null(S);
        for (int h = 0; h < H; h++) {
            const int g = h / (H / Hkv);
            for (int i = 0; i < L; i++) {
                double mx = -INFINITY, sum = 0.0;
                for (int j = 0; j <= i; j++) {
                    S[i * L + j] = scale * dot_array(qkv + (size_t)(a + i) * W + h * D,
                                                     qkv + (size_t)(a + j) * W + (H + g) * D, D);
                    mx = fmax(mx, S[i * L + j]);
                }
                for (int j = 0; j <= i; j++) sum += exp(S[i * L + j] - mx);
                double *o = out + (size_t)(a + i) * H * D + h * D;
                for (int d = 0; d < D; d++) o[d] = 0.0;
                for (int j = 0; j <= i; j++) {
                    const double p = exp(S[i * L + j] - mx) / sum;
                    const double *v = qkv + (size_t)(a + j) * W + (H + Hkv + g) * D;
                    for (int d = 0; d < D; d++) o[d] += p * v[d];
                }
                lse[(size_t)h * N + a + i] = mx + log(sum);
            }
        }
        free(S);
    }
}

typedef struct {
    double *qkv, *out, *lse; const double *R; const int32_t *cu; int n_segs, N, H, Hkv, D;
} AttnCtx;

static double attn_loss(void *p)
{
    AttnCtx *c = p;
    cpu_attention_forward_f64(c->out, c->lse, c->qkv, c->cu, c->n_segs, c->N, c->H, c->Hkv, c->D);
    return dot_array(c->out, c->R, (size_t)c->N * c->H * c->D);
}

static void attention_grad_check(const int32_t *cu, int n_segs, int H, int Hkv, int D, size_t stride)
{
    const int N = cu[n_segs], W = (H + 2 * Hkv) * D;
    double *qkv = rand_array((size_t)N * W, 1.0), *R = rand_array((size_t)N * H * D, 1.0);
    double *out = malloc((size_t)N * H * D * sizeof(double)), *lse = malloc((size_t)N * H * sizeof(double));
    double *dqkv = rand_array((size_t)N * W, 100.0);   /* garbage: backward overwrites */
    assert_non_null(out); assert_non_null(lse);
    AttnCtx ctx = { qkv, out, lse, R, cu, n_segs, N, H, Hkv, D };
    attn_loss(&ctx);
    cpu_attention_backward_f64(dqkv, R, qkv, out, lse, cu, n_segs, N, H, Hkv, D);
    check_grad("attention dqkv", qkv, (size_t)N * W, dqkv, attn_loss, &ctx, stride);
    free(qkv); free(R); free(out); free(lse); free(dqkv);
}

static void test_attention_grad_short_segments(void **state)
{
    (void)state;
    const int32_t cu[] = { 0, 1, 6, 15 };   /* lengths 1, 5, 9; GQA 4 query heads over 2 kv heads */
    attention_grad_check(cu, 3, 4, 2, 8, 1);
}

static void test_attention_grad_multi_tile(void **state)
{
    (void)state;
    /* lengths 3 and 130: the long segment starts at token 3, so its tiles (64, 64, 2) are
     * counted from the segment and not from token 0; every 7th entry, 1216 of 8512 */
    const int32_t cu[] = { 0, 3, 133 };
    assert_true(130 > 2 * CPU_ATTN_TILE);
    attention_grad_check(cu, 2, 4, 2, 8, 7);
}

static void test_attention_forward_matches_naive(void **state)
{
    (void)state;
    enum { H = 4, Hkv = 2, D = 8, W = (H + 2 * Hkv) * D, NSEG = 5 };
    const int32_t cu[NSEG + 1] = { 0, 1, 6, 15, 145, 215 };   /* lengths 1, 5, 9, 130, 70 */
    const int N = cu[NSEG];
    /* inputs rounded to f32, so that f32 and f64 see the same numbers */
    double *qkv = rand_array((size_t)N * W, 1.5);
    float *qkv32 = malloc((size_t)N * W * sizeof(float));
    for (int i = 0; i < N * W; i++) { qkv32[i] = (float)qkv[i]; qkv[i] = qkv32[i]; }
    double *out = malloc((size_t)N * H * D * sizeof(double)), *ref = malloc((size_t)N * H * D * sizeof(double));
    double *lse = malloc((size_t)N * H * sizeof(double)), *lse_ref = malloc((size_t)N * H * sizeof(double));
    float *out32 = malloc((size_t)N * H * D * sizeof(float)), *lse32 = malloc((size_t)N * H * sizeof(float));
    attention_naive(ref, lse_ref, qkv, cu, NSEG, N, H, Hkv, D);
    cpu_attention_forward_f64(out, lse, qkv, cu, NSEG, N, H, Hkv, D);
    cpu_attention_forward_f32(out32, lse32, qkv32, cu, NSEG, N, H, Hkv, D);

    /* f64 tiled vs naive: only the summation order differs, so 1e-13 */
    for (int i = 0; i < N * H * D; i++) assert_close(out[i], ref[i], 1e-13, 1e-12);
    for (int i = 0; i < N * H; i++) assert_close(lse[i], lse_ref[i], 1e-13, 1e-12);
    /* f32 vs f64: unit roundoff 6e-8 over sums of up to 130 O(1) terms; observed < 6e-7 */
    for (int i = 0; i < N * H * D; i++) assert_close(out32[i], ref[i], 1e-5, 1e-5);
    for (int i = 0; i < N * H; i++) assert_close(lse32[i], lse_ref[i], 1e-5, 1e-5);

    /* the f32 backward agrees with the f64 one: dq, dk, dv sum up to 130 rows of products,
     * observed differences < 1e-6 of values up to 2 */
    double *R = rand_array((size_t)N * H * D, 1.0), *dqkv = malloc((size_t)N * W * sizeof(double));
    float *R32 = malloc((size_t)N * H * D * sizeof(float)), *dqkv32 = malloc((size_t)N * W * sizeof(float));
    for (int i = 0; i < N * H * D; i++) { R32[i] = (float)R[i]; R[i] = R32[i]; }
    cpu_attention_backward_f64(dqkv, R, qkv, out, lse, cu, NSEG, N, H, Hkv, D);
    cpu_attention_backward_f32(dqkv32, R32, qkv32, out32, lse32, cu, NSEG, N, H, Hkv, D);
    for (int i = 0; i < N * W; i++) assert_close(dqkv32[i], dqkv[i], 1e-5, 1e-5);

    free(qkv); free(qkv32); free(out); free(ref); free(lse); free(lse_ref); free(out32); free(lse32);
    free(R); free(dqkv); free(R32); free(dqkv32);
}

static void test_attention_segments_isolated(void **state)
{
    (void)state;
    /* f32, as the runs use it: segment 1 spans two tiles, segment 2 is changed, 3 must not move */
    enum { H = 4, Hkv = 2, D = 8, W = (H + 2 * Hkv) * D, NSEG = 3 };
    const int32_t cu[NSEG + 1] = { 0, 70, 79, 99 };
    const int N = cu[NSEG];
    float *qkv = malloc((size_t)N * W * sizeof(float)), *dout = malloc((size_t)N * H * D * sizeof(float));
    float *out[2], *lse[2], *dqkv[2];
    for (int i = 0; i < N * W; i++) qkv[i] = (float)rnd();
    for (int i = 0; i < N * H * D; i++) dout[i] = (float)rnd();
    for (int r = 0; r < 2; r++) {
        out[r] = malloc((size_t)N * H * D * sizeof(float));
        lse[r] = malloc((size_t)N * H * sizeof(float));
        dqkv[r] = malloc((size_t)N * W * sizeof(float));
        if (r == 1) {
            /* new tokens (q, k and v) and new upstream gradients in segment 2 */
            for (int i = cu[1] * W; i < cu[2] * W; i++) qkv[i] = (float)(3 * rnd());
            for (int i = cu[1] * H * D; i < cu[2] * H * D; i++) dout[i] = (float)rnd();
        }
        cpu_attention_forward_f32(out[r], lse[r], qkv, cu, NSEG, N, H, Hkv, D);
        cpu_attention_backward_f32(dqkv[r], dout, qkv, out[r], lse[r], cu, NSEG, N, H, Hkv, D);
    }
    for (int s = 0; s < NSEG; s += 2) {   /* segments 1 and 3: bit-identical */
        const size_t a = (size_t)cu[s], b = (size_t)cu[s + 1];
        assert_memory_equal(out[0] + a * H * D, out[1] + a * H * D, (b - a) * H * D * sizeof(float));
        assert_memory_equal(dqkv[0] + a * W, dqkv[1] + a * W, (b - a) * W * sizeof(float));
        for (int h = 0; h < H; h++)
            assert_memory_equal(lse[0] + h * N + a, lse[1] + h * N + a, (b - a) * sizeof(float));
    }
    /* segment 2 did change */
    assert_true(memcmp(out[0] + cu[1] * H * D, out[1] + cu[1] * H * D, 9 * H * D * sizeof(float)) != 0);
    free(qkv); free(dout);
    for (int r = 0; r < 2; r++) { free(out[r]); free(lse[r]); free(dqkv[r]); }
}

static void test_attention_long_segment(void **state)
{
    (void)state;
    /* a 600-token segment: several key blocks in the forward (online softmax across blocks) and
     * several query blocks per key tile in the backward; f64 against the naive softmax, and the
     * gradient against finite differences on every 211th entry */
    enum { H = 4, Hkv = 2, D = 8, W = (H + 2 * Hkv) * D, NSEG = 2 };
    const int32_t cu[NSEG + 1] = { 0, 3, 603 };
    const int N = cu[NSEG];
    double *qkv = rand_array((size_t)N * W, 1.5);
    double *out = malloc((size_t)N * H * D * sizeof(double)), *ref = malloc((size_t)N * H * D * sizeof(double));
    double *lse = malloc((size_t)N * H * sizeof(double)), *lse_ref = malloc((size_t)N * H * sizeof(double));
    assert_non_null(out); assert_non_null(ref); assert_non_null(lse); assert_non_null(lse_ref);
    attention_naive(ref, lse_ref, qkv, cu, NSEG, N, H, Hkv, D);
    cpu_attention_forward_f64(out, lse, qkv, cu, NSEG, N, H, Hkv, D);
    for (int i = 0; i < N * H * D; i++) assert_close(out[i], ref[i], 1e-13, 1e-12);
    for (int i = 0; i < N * H; i++) assert_close(lse[i], lse_ref[i], 1e-13, 1e-12);
    free(qkv); free(out); free(ref); free(lse); free(lse_ref);
    attention_grad_check(cu, NSEG, H, Hkv, D, 211);
}

/* The threading policy: giving BLAS one thread or all of them never changes OpenMP's own thread
 * count (the OpenMP build of OpenBLAS sets both with one call), and the BLAS description is
 * consistent: a fallback core is one narrower than the CPU's flags allow, with a suggestion. */
static void test_blas_threads_and_info(void **state)
{
    (void)state;
    const int saved = omp_get_max_threads();
    omp_set_num_threads(3);
    cpu_blas_threads_for(1.0);
    assert_int_equal(3, omp_get_max_threads());
    cpu_blas_threads_for(1e12);
    assert_int_equal(3, omp_get_max_threads());
    cpu_blas_single();
    assert_int_equal(3, omp_get_max_threads());
    /* a product after all that is still right */
    const double a[4] = { 1, 2, 3, 4 }, b[4] = { 5, 6, 7, 8 };
    double c[4];
    cpu_matmul_forward_f64(c, a, b, 2, 2, 2);   /* c = a @ b^T */
    assert_true(c[0] == 17 && c[1] == 23 && c[2] == 39 && c[3] == 53);
    omp_set_num_threads(saved);

    CpuBlasInfo bi;
    cpu_blas_info(&bi);
    assert_string_equal("OpenBLAS", bi.library);
    assert_true(strlen(bi.version) > 0 && strlen(bi.core) > 0);
    assert_true(bi.threads >= 1);
    CpuInfo ci;
    cpu_read_info(&ci);
    if (bi.fallback) {
        assert_true(bi.core_isa != ISA_UNKNOWN && bi.core_isa < ci.isa);
        assert_true(strcmp(bi.suggested_coretype, "SKYLAKEX") == 0 || strcmp(bi.suggested_coretype, "HASWELL") == 0);
        assert_non_null(strstr(bi.warning, bi.suggested_coretype));
    } else {
        assert_string_equal("", bi.suggested_coretype);
        assert_string_equal("", bi.warning);
    }
}

static void test_attention_same_bits_any_thread_count(void **state)
{
    (void)state;
    /* every output element has one owner and a fixed summation order: 1 thread and 3 threads
     * give the same bits (runs compare strategies, which must not differ by scheduling noise) */
    enum { H = 4, Hkv = 2, D = 8, W = (H + 2 * Hkv) * D, NSEG = 3 };
    /* a 1500-token segment: above the size under which attention runs on one thread, so the
     * parallel path is the one compared; plus a short and a tile-straddling one */
    const int32_t cu[NSEG + 1] = { 0, 1500, 1505, 1635 };
    const int N = cu[NSEG], saved = omp_get_max_threads();
    float *qkv = malloc((size_t)N * W * sizeof(float)), *dout = malloc((size_t)N * H * D * sizeof(float));
    for (int i = 0; i < N * W; i++) qkv[i] = (float)rnd();
    for (int i = 0; i < N * H * D; i++) dout[i] = (float)rnd();
    float *out[2], *lse[2], *dqkv[2];
    double ss[2];
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r ? 3 : 1);
        out[r] = malloc((size_t)N * H * D * sizeof(float));
        lse[r] = malloc((size_t)N * H * sizeof(float));
        dqkv[r] = malloc((size_t)N * W * sizeof(float));
        cpu_attention_forward_f32(out[r], lse[r], qkv, cu, NSEG, N, H, Hkv, D);
        cpu_attention_backward_f32(dqkv[r], dout, qkv, out[r], lse[r], cu, NSEG, N, H, Hkv, D);
        ss[r] = cpu_sum_squares_f32(dqkv[r], (size_t)N * W);
    }
    omp_set_num_threads(saved);
    assert_memory_equal(out[0], out[1], (size_t)N * H * D * sizeof(float));
    assert_memory_equal(lse[0], lse[1], (size_t)N * H * sizeof(float));
    assert_memory_equal(dqkv[0], dqkv[1], (size_t)N * W * sizeof(float));
    assert_true(ss[0] == ss[1]);
    free(qkv); free(dout);
    for (int r = 0; r < 2; r++) { free(out[r]); free(lse[r]); free(dqkv[r]); }
}

/* ------------------------------------------------------------------------------------------ */
/* SwiGLU */

typedef struct { double *gu, *out; const double *R; int N, F; } SwiCtx;

static double swiglu_loss(void *p)
{
    SwiCtx *c = p;
    cpu_swiglu_forward_f64(c->out, c->gu, c->N, c->F);
    return dot_array(c->out, c->R, (size_t)c->N * c->F);
}

static void test_swiglu_grad(void **state)
{
    (void)state;
    enum { N = 3, F = 4 };
    double *gu = rand_array(N * 2 * F, 3.0), *R = rand_array(N * F, 1.0);
    double out[N * F];
    SwiCtx ctx = { gu, out, R, N, F };
    swiglu_loss(&ctx);
    const double g = gu[2 * F + 1], u = gu[2 * F + F + 1];   /* row 1, column 1 */
    assert_close(out[F + 1], g / (1 + exp(-g)) * u, 1e-15, 1e-13);
    double *dgu = rand_array(N * 2 * F, 100.0);   /* garbage: backward overwrites */
    cpu_swiglu_backward_f64(dgu, R, gu, N, F);
    check_grad("swiglu dgate_up", gu, N * 2 * F, dgu, swiglu_loss, &ctx, 1);
    free(gu); free(R); free(dgu);
}

/* ------------------------------------------------------------------------------------------ */
/* cross-entropy */

typedef struct { double *logits, *losses; const int32_t *targets; const float *w; int N, V; } CeCtx;

/* L = sum_n w_n * loss_n, whose gradient is what crossentropy_backward writes */
static double ce_loss(void *p)
{
    CeCtx *c = p;
    cpu_crossentropy_forward_f64(c->losses, c->logits, c->targets, c->N, c->V);
    double L = 0.0;
    for (int n = 0; n < c->N; n++) L += c->w[n] * c->losses[n];
    return L;
}

static void test_crossentropy_grad(void **state)
{
    (void)state;
    enum { N = 5, V = 7 };
    const int32_t targets[N] = { 3, 0, 6, 2, -1 };             /* -1: ignored */
    const float w[N] = { 1.0f, 0.5f, 0.0f, 2.0f, 1.0f };
    double *logits = rand_array(N * V, 3.0);
    double losses[N];
    CeCtx ctx = { logits, losses, targets, w, N, V };
    ce_loss(&ctx);
    /* row 0 against the plain formula */
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += exp(logits[v]);
    assert_close(losses[0], log(sum) - logits[3], 1e-14, 1e-12);
    assert_true(losses[4] == 0.0);

    double *dlogits = rand_array(N * V, 100.0);
    cpu_crossentropy_backward_f64(dlogits, logits, targets, w, N, V);
    check_grad("crossentropy dlogits", logits, N * V, dlogits, ce_loss, &ctx, 1);
    for (int v = 0; v < V; v++) assert_true(dlogits[4 * V + v] == 0.0 && dlogits[2 * V + v] == 0.0);

    /* in place (dlogits == logits) gives exactly the same numbers */
    double *inplace = copy_array(logits, N * V);
    cpu_crossentropy_backward_f64(inplace, inplace, targets, w, N, V);
    assert_memory_equal(inplace, dlogits, sizeof(double) * N * V);
    free(logits); free(dlogits); free(inplace);
}

/* The fused op is the two ops in one pass: the same bits, in place as out of place, with an
 * ignored target and a vocabulary that is not a multiple of the chunk or the vector width. */
static void test_crossentropy_fused_equals_two_ops(void **state)
{
    (void)state;
    enum { N = 5, V = 301 };
    float x[N * V], d2[N * V], d1[N * V], l2[N], l1[N], inplace[N * V];
    const int32_t t[N] = { 3, -1, 300, 0, 17 };
    const float w[N] = { 0.5f, 1, 0.25f, 2, 0.125f };
    for (int i = 0; i < N * V; i++) x[i] = (float)(8 * rnd());
    cpu_crossentropy_forward_f32(l2, x, t, N, V);
    cpu_crossentropy_backward_f32(d2, x, t, w, N, V);
    cpu_crossentropy_fused_f32(l1, d1, x, t, w, N, V);
    assert_memory_equal(l1, l2, sizeof l1);
    assert_memory_equal(d1, d2, sizeof d1);
    memcpy(inplace, x, sizeof x);
    cpu_crossentropy_fused_f32(l1, inplace, inplace, t, w, N, V);
    assert_memory_equal(l1, l2, sizeof l1);
    assert_memory_equal(inplace, d2, sizeof d2);
    assert_true(l1[1] == 0 && l1[0] > 0);
}

static void test_crossentropy_large_logits(void **state)
{
    (void)state;
    /* logits of 1e4 overflow a naive exp; the shifted log-softmax does not (f32, as in runs) */
    const float logits[3] = { 10000.0f, 9999.0f, 9990.0f };
    const int32_t target = 1;
    float loss, d[3];
    const float w = 1.0f;
    cpu_crossentropy_forward_f32(&loss, logits, &target, 1, 3);
    const double expect = log(exp(1.0) + 1.0 + exp(-9.0));   /* lse - x[1], all shifted by -9999 */
    assert_close(loss, expect, 1e-5, 1e-5);
    cpu_crossentropy_backward_f32(d, logits, &target, &w, 1, 3);
    assert_close(d[0] + d[1] + d[2], 0.0, 1e-6, 0);   /* softmax sums to 1, onehot to 1 */
    assert_true(isfinite(d[0]) && d[1] < 0);
}

/* ------------------------------------------------------------------------------------------ */
/* sum of squares and AdamW */

static void test_sum_squares(void **state)
{
    (void)state;
    const size_t n = 100003;   /* several 32k chunks and a ragged end */
    double *x = rand_array(n, 1.0);
    float *x32 = malloc(n * sizeof(float));
    double ref = 0.0;
    for (size_t i = 0; i < n; i++) { x32[i] = (float)x[i]; x[i] = x32[i]; ref += x[i] * x[i]; }
    assert_close(cpu_sum_squares_f64(x, n), ref, 0, 1e-12);
    assert_close(cpu_sum_squares_f32(x32, n), ref, 0, 1e-12);   /* accumulates in double */
    assert_true(cpu_sum_squares_f64(x, 0) == 0.0);
    free(x); free(x32);
}

static void test_adamw_by_hand(void **state)
{
    (void)state;
    /* constants exact in float, so the f64 step is exact arithmetic up to rounding */
    const AdamWConfig cfg = { .lr = 0.125f, .beta1 = 0.75f, .beta2 = 0.9375f, .eps = 0.0625f, .weight_decay = 0.5f };
    double p[3] = { 1.0, -2.0, 0.5 };
    const double g[3] = { 0.4, -1.2, 0.0 };
    double m[3] = { 0.1, 0.2, -0.3 }, v[3] = { 0.01, 0.04, 0.09 };
    cpu_adamw_f64(p, g, m, v, 3, &cfg, 0.5f, 2);
    /* step t = 2, grad_scale 0.5: g' = (0.2, -0.6, 0)
     *   m = 0.75 m + 0.25 g'          = (0.125, 0, -0.225)
     *   v = 0.9375 v + 0.0625 g'^2    = (0.011875, 0.06, 0.084375)
     *   bias corrections 1 - 0.75^2 = 0.4375, 1 - 0.9375^2 = 0.12109375
     *   mhat = (0.285714285714, 0, -0.514285714286)
     *   vhat = (0.098064516129, 0.495483870968, 0.696774193548)
     *   p -= 0.125 * (mhat / (sqrt(vhat) + 0.0625) + 0.5 p)
     *   p0 = 1 - 0.125 * (0.285714285714 / 0.375652544504 + 0.5)     = 0.842427342469
     *   p1 = -2 - 0.125 * (0 - 1)                                     = -1.875
     *   p2 = 0.5 - 0.125 * (-0.514285714286 / 0.897230012368 + 0.25)  = 0.540399090422 */
    assert_close(m[0], 0.125, 1e-15, 0);
    assert_close(m[1], 0.0, 1e-15, 0);
    assert_close(m[2], -0.225, 1e-15, 0);
    assert_close(v[0], 0.011875, 1e-15, 0);
    assert_close(v[1], 0.06, 1e-15, 0);
    assert_close(v[2], 0.084375, 1e-15, 0);
    assert_close(p[0], 0.842427342469, 1e-11, 0);
    assert_close(p[1], -1.875, 1e-11, 0);
    assert_close(p[2], 0.540399090422, 1e-11, 0);

    /* the f32 version takes the same step to f32 precision */
    float p32[3] = { 1.0f, -2.0f, 0.5f }, g32[3] = { 0.4f, -1.2f, 0.0f };
    float m32[3] = { 0.1f, 0.2f, -0.3f }, v32[3] = { 0.01f, 0.04f, 0.09f };
    cpu_adamw_f32(p32, g32, m32, v32, 3, &cfg, 0.5f, 2);
    assert_close(p32[0], 0.842427342469, 1e-6, 0);
    assert_close(p32[1], -1.875, 1e-6, 0);
    assert_close(p32[2], 0.540399090422, 1e-6, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* the Backend table */

static void test_backend_memory(void **state)
{
    (void)state;
    char err[256] = "";
    Backend *be = backend_cpu_create(DT_F64, err, sizeof err);
    assert_non_null(be);
    assert_string_equal(be->name, "cpu");
    assert_int_equal(be->param_dtype, DT_F64);
    assert_int_equal(be->act_dtype, DT_F64);
    assert_int_equal(be->bytes_in_use(be), 0);

    unsigned char *a = be->alloc(be, 100), *b = be->alloc(be, 1000);
    assert_non_null(a); assert_non_null(b);
    for (int i = 0; i < 1000; i++) assert_int_equal(b[i], 0);   /* zeroed */
    assert_int_equal(be->bytes_in_use(be), 1100);
    assert_int_equal(be->peak_bytes(be), 1100);
    be->free(be, b);
    assert_int_equal(be->bytes_in_use(be), 100);
    assert_int_equal(be->peak_bytes(be), 1100);   /* the high-water mark stays */
    be->reset_peak(be);
    assert_int_equal(be->peak_bytes(be), 100);
    void *c = be->alloc(be, 50);
    assert_int_equal(be->peak_bytes(be), 150);
    be->free(be, NULL);
    assert_int_equal(be->bytes_in_use(be), 150);
    (void)c;
    be->destroy(be);   /* frees a and c too (ASan's leak check would say otherwise) */

    /* bf16 is not a CPU compute type */
    assert_null(backend_cpu_create(DT_BF16, err, sizeof err));
    assert_true(strstr(err, "bf16") != NULL);
}

static void test_backend_transfers(void **state)
{
    (void)state;
    char err[256];
    Backend *be = backend_cpu_create(DT_F64, err, sizeof err);
    assert_non_null(be);
    const float src[5] = { 1.0f, -2.5f, 3.14159274f, 1e-30f, 65504.0f };
    float back[5];
    double *d = be->alloc(be, 5 * sizeof(double));
    be->upload_f32(be, d, DT_F64, src, 5);
    for (int i = 0; i < 5; i++) assert_true(d[i] == (double)src[i]);
    be->download_f32(be, back, d, DT_F64, 5);
    assert_memory_equal(back, src, sizeof src);

    /* bf16 rounds to nearest even: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 (goes to 1),
     * 1 + 3 * 2^-8 a tie between 1 + 2^-7 and 1 + 2^-6 (goes to the even 1 + 2^-6) */
    const float ties[3] = { 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f };
    const float want[3] = { 1.0f, 1.0f + 0x1p-6f, 1.0f + 0x1p-7f };
    uint16_t *h = be->alloc(be, 3 * sizeof(uint16_t));
    be->upload_f32(be, h, DT_BF16, ties, 3);
    be->download_f32(be, back, h, DT_BF16, 3);
    for (int i = 0; i < 3; i++) assert_true(back[i] == want[i]);

    /* cast f64 -> f32 and the byte copies */
    float *f = be->alloc(be, 5 * sizeof(float));
    be->cast(be, f, DT_F32, d, DT_F64, 5);
    assert_memory_equal(f, src, sizeof src);
    double host[5];
    be->download(be, host, d, sizeof host);
    assert_memory_equal(host, d, sizeof host);
    be->zero(be, d, 5 * sizeof(double));
    assert_true(d[0] == 0.0 && d[4] == 0.0);
    be->destroy(be);
}

static void test_backend_dispatch_and_info(void **state)
{
    (void)state;
    char err[256];
    /* the table's matmul runs the op of the backend's dtype */
    for (int k = 0; k < 2; k++) {
        const DType t = k ? DT_F64 : DT_F32;
        Backend *be = backend_cpu_create(t, err, sizeof err);
        assert_non_null(be);
        enum { N = 3, In = 4, Out = 2 };
        const float inp[N * In] = { 1, 2, 3, 4, -1, 0, 1, 2, 0.5f, 0.25f, 0, -2 };
        const float w[Out * In] = { 1, 0, -1, 2, 0.5f, 0.5f, 0.5f, 0.5f };
        void *di = be->alloc(be, sizeof(inp) * dtype_size(t) / 4), *dw = be->alloc(be, sizeof(w) * dtype_size(t) / 4);
        void *dout = be->alloc(be, N * Out * dtype_size(t));
        be->upload_f32(be, di, t, inp, N * In);
        be->upload_f32(be, dw, t, w, Out * In);
        be->matmul_forward(be, dout, di, dw, N, In, Out);
        float out[N * Out];
        be->download_f32(be, out, dout, t, N * Out);
        /* row 0: (1 - 3 + 8, 5), row 1: (-1 - 1 + 4, 1), row 2: (0.5 - 4, -0.625) */
        const float want[N * Out] = { 6, 5, 2, 1, -3.5f, -0.625f };
        for (int i = 0; i < N * Out; i++) assert_true(out[i] == want[i]);
        assert_close(be->sum_squares(be, di, N * In), 1 + 4 + 9 + 16 + 1 + 0 + 1 + 4 + 0.25 + 0.0625 + 0 + 4, 0, 1e-12);

        assert_true(strlen(be->device_name) > 0);
        assert_non_null(be->peak_flops_source);
        assert_true(be->peak_flops >= 0);
        be->destroy(be);
    }

    /* timing: 20 ms of sleep between two marks */
    Backend *be = backend_cpu_create(DT_F32, err, sizeof err);
    be->mark(be, 0);
    nanosleep(&(struct timespec){ .tv_sec = 0, .tv_nsec = 20000000 }, NULL);
    be->mark(be, 1);
    const double s = be->seconds_between(be, 0, 1);
    assert_true(s >= 0.019 && s < 5.0);
    be->destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedding_grad),
        cmocka_unit_test(test_rmsnorm_grad),
        cmocka_unit_test(test_row_reductions_many_rows),
        cmocka_unit_test(test_matmul_grad),
        cmocka_unit_test(test_rope_grad),
        cmocka_unit_test(test_rope_position_zero_is_identity),
        cmocka_unit_test(test_rope_hf_convention),
        cmocka_unit_test(test_rope_relative_position),
        cmocka_unit_test(test_attention_grad_short_segments),
        cmocka_unit_test(test_attention_grad_multi_tile),
        cmocka_unit_test(test_attention_forward_matches_naive),
        cmocka_unit_test(test_attention_segments_isolated),
        cmocka_unit_test(test_attention_long_segment),
        cmocka_unit_test(test_attention_same_bits_any_thread_count),
        cmocka_unit_test(test_blas_threads_and_info),
        cmocka_unit_test(test_swiglu_grad),
        cmocka_unit_test(test_crossentropy_grad),
        cmocka_unit_test(test_crossentropy_fused_equals_two_ops),
        cmocka_unit_test(test_crossentropy_large_logits),
        cmocka_unit_test(test_sum_squares),
        cmocka_unit_test(test_adamw_by_hand),
        cmocka_unit_test(test_backend_memory),
        cmocka_unit_test(test_backend_transfers),
        cmocka_unit_test(test_backend_dispatch_and_info),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
