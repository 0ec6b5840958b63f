/* Every op of the CUDA backend against the CPU backend (the f32 reference), through the Backend
 * table, on random inputs. Runs only where a GPU is: elsewhere it prints one "SKIP: <reason>"
 * line and exits 0 (see tests/gpu/README.md).
 *
 * Each op runs twice, once per CUDA mode:
 *   f32   activations in f32, GEMMs without TF32: max error <= 1e-4
 *   bf16  activations and weight copies in bf16, f32 accumulation: max error <= 2e-2
 * and the shorter attention cases a third time, in bf16 with LABENCH_ATTN=scalar, so that both
 * attention implementations are checked (bf16 with D = 64 or 128 takes the tensor-core one; the
 * bf16 mode pins it with LABENCH_ATTN=wmma). The D = 64 and 128 attention cases run a fourth time
 * on cuDNN's fused kernels (LABENCH_ATTN=cudnn), where cuDNN loads: else one line says
 * why they were not checked. A 64k-token segment is checked there against the WMMA kernels (the
 * CPU reference would take minutes).
 * where "error" is |gpu - cpu| / (|cpu| + rms(cpu)) per element: relative for ordinary values,
 * measured against the tensor's typical size for values near zero. In bf16 mode the inputs are
 * rounded to bf16 on the host first, so both backends see the same numbers and the difference
 * is only the GPU's own roundings.
 */
#include "tests/test_util.h"

#include "kernels/backend.h"

typedef struct {
    const char *name;
    DType act;
    double tol;
    Backend *be;
} Mode;

static Mode MODE_F32 = {"f32", DT_F32, 1e-4, NULL};
static Mode MODE_BF16 = {"bf16", DT_BF16, 2e-2, NULL};
/* bf16 with LABENCH_ATTN=scalar: the FMA attention kernels instead of the tensor-core ones */
static Mode MODE_BF16_SCALAR = {"bf16 scalar-attn", DT_BF16, 2e-2, NULL};
/* bf16 with LABENCH_ATTN=cudnn: cuDNN's fused flash attention (NULL be: cuDNN not loaded, why) */
static Mode MODE_BF16_CUDNN = {"bf16 cudnn-attn", DT_BF16, 2e-2, NULL};
static char cudnn_why[1024];

/* cuDNN's cases run only where it loaded; else the one line of why, and nothing checked */
static int cudnn_missing(const Mode *m)
{
    if (m == &MODE_BF16_CUDNN && !m->be) {
        printf("  [%s] not checked: %s\n", m->name, cudnn_why);
        return 1;
    }
    return 0;
}
static Backend *CPU;

/* ------------------------------------------------------------------------------------------ */
/* host helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float urand(void)   /* uniform in [-1, 1), xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 0x2545f4914f6cdd1dull;
    return (float)((r >> 40) * (1.0 / (1 << 23))) - 1.0f;
}

static float *hrand(size_t n, float scale)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = urand() * scale;
    return x;
}

static float bf16_round(float f)   /* to the nearest bf16 value, ties to even */
{
    test_bf16_round(&f, 1);
    return f;
}

static void quantize(const Mode *m, float *x, size_t n)
{
    if (m->act == DT_BF16)
        for (size_t i = 0; i < n; i++) x[i] = bf16_round(x[i]);
}

/* max over elements of |got - ref| / (|ref| + rms(ref)); fails the test above tol */
static void expect_close(const char *what, const Mode *m, const float *got, const float *ref, size_t n, double tol)
{
    double rms = 0.0;
    for (size_t i = 0; i < n; i++) rms += (double)ref[i] * ref[i];
    rms = sqrt(rms / (double)(n ? n : 1));
    double worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]) / (fabs(ref[i]) + rms + 1e-30);
        if (!(e <= worst)) { worst = e; at = i; }   /* NaN counts as the worst */
    }
    printf("  [%s] %-28s max err %.2e (tol %.0e)%s\n", m->name, what, worst, tol, worst <= tol ? "" : "  <-- FAIL");
    if (!(worst <= tol)) {
        print_error("%s (%s): element %zu: gpu %.8g, cpu %.8g, rms %.4g\n", what, m->name, at, got[at], ref[at], rms);
        fail();
    }
}

/* ------------------------------------------------------------------------------------------ */
/* a tensor held by both backends: c on the CPU (f32), g on the GPU (act dtype or f32) */

typedef struct {
    void *c, *g;
    size_t n;
    DType gt;
} Pair;

enum { PARAM = 0, ACT = 1 };

/* uploads host values to both backends; activations are rounded to bf16 first in bf16 mode */
static Pair pair_from(const Mode *m, const float *h, size_t n, int kind)
{
    Backend *g = m->be;
    Pair p = {NULL, NULL, n, kind == ACT ? g->act_dtype : g->param_dtype};
    float *q = malloc((n ? n : 1) * sizeof *q);
    assert_non_null(q);
    memcpy(q, h, n * sizeof *q);
    if (kind == ACT) quantize(m, q, n);
    p.c = CPU->alloc(CPU, n * sizeof(float));
    p.g = g->alloc(g, n * dtype_size(p.gt));
    assert_non_null(p.c);
    assert_non_null(p.g);
    CPU->upload_f32(CPU, p.c, DT_F32, q, n);
    g->upload_f32(g, p.g, p.gt, q, n);
    free(q);
    return p;
}

static Pair pair_rand(const Mode *m, size_t n, float scale, int kind)
{
    float *h = hrand(n, scale);
    Pair p = pair_from(m, h, n, kind);
    free(h);
    return p;
}

static void pair_check(const Mode *m, const char *what, Pair p, double tol)
{
    float *a = malloc((p.n ? p.n : 1) * sizeof *a), *b = malloc((p.n ? p.n : 1) * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    m->be->download_f32(m->be, a, p.g, p.gt, p.n);
    CPU->download_f32(CPU, b, p.c, DT_F32, p.n);
    expect_close(what, m, a, b, p.n, tol);
    free(a);
    free(b);
}

static void pair_free(const Mode *m, Pair p)
{
    CPU->free(CPU, p.c);
    m->be->free(m->be, p.g);
}

/* int32 index buffers, the same bytes on both backends */
typedef struct {
    int32_t *c, *g;
} IPair;

static IPair ipair(const Mode *m, const int32_t *h, size_t n)
{
    IPair p = {CPU->alloc(CPU, n * 4), m->be->alloc(m->be, n * 4)};
    assert_non_null(p.c);
    assert_non_null(p.g);
    CPU->upload(CPU, p.c, h, n * 4);
    m->be->upload(m->be, p.g, h, n * 4);
    return p;
}

static void ipair_free(const Mode *m, IPair p)
{
    CPU->free(CPU, p.c);
    m->be->free(m->be, p.g);
}

static float *download(Backend *be, const void *d, size_t n, DType t)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    assert_non_null(h);
    be->download_f32(be, h, d, t, n);
    return h;
}

/* ------------------------------------------------------------------------------------------ */
/* memory, transfers, timing */

static void test_memory(void **state)
{
    Mode *m = *state;
    Backend *g = m->be;
    size_t before = g->bytes_in_use(g);
    void *a = g->alloc(g, 1000);
    assert_non_null(a);
    assert_true(g->bytes_in_use(g) >= before + 1000);
    assert_true(g->peak_bytes(g) >= g->bytes_in_use(g));
    unsigned char host[1000];
    memset(host, 0xab, sizeof host);
    g->download(g, host, a, sizeof host);
    for (size_t i = 0; i < sizeof host; i++) assert_int_equal(host[i], 0);   /* alloc zeroes */

    /* a freed block is reused, and comes back zeroed */
    g->upload(g, a, (unsigned char[4]){1, 2, 3, 4}, 4);
    size_t with_a = g->bytes_in_use(g);
    g->free(g, a);
    assert_int_equal(g->bytes_in_use(g), before);
    void *b = g->alloc(g, 1000);
    assert_non_null(b);
    assert_int_equal(g->bytes_in_use(g), with_a);
    g->download(g, host, b, 4);
    assert_int_equal(host[0] | host[1] | host[2] | host[3], 0);
    g->reset_peak(g);
    assert_int_equal(g->peak_bytes(g), g->bytes_in_use(g));

    /* an impossible request fails cleanly, and the backend still works afterwards */
    assert_null(g->alloc(g, (size_t)1 << 50));
    float x[3] = {1.5f, -2.0f, 3.25f}, y[3] = {0};
    g->upload_f32(g, b, DT_F32, x, 3);
    g->copy(g, (char *)b + 256, b, 12);
    g->download_f32(g, y, (char *)b + 256, DT_F32, 3);
    assert_memory_equal(x, y, sizeof x);
    g->zero(g, b, 12);
    g->download_f32(g, y, b, DT_F32, 3);
    assert_true(y[0] == 0.0f && y[1] == 0.0f && y[2] == 0.0f);

    /* copy of overlapping ranges, both directions: what memmove gives (the CPU backend's copy) */
    float h[200], want[200], got[200];
    for (int i = 0; i < 200; i++) h[i] = (float)i;
    for (int dir = 0; dir < 2; dir++) {
        const int from = dir ? 37 : 0, to = dir ? 0 : 37;
        g->upload_f32(g, b, DT_F32, h, 200);
        g->copy(g, (float *)b + to, (float *)b + from, 150 * sizeof(float));
        memcpy(want, h, sizeof want);
        memmove(want + to, want + from, 150 * sizeof(float));
        g->download_f32(g, got, b, DT_F32, 200);
        assert_memory_equal(got, want, sizeof want);
    }
    g->free(g, b);
}

static void test_cast_and_transfers(void **state)
{
    Mode *m = *state;
    Backend *g = m->be;
    const size_t n = 100001;
    float *h = hrand(n, 3.0f), *r = malloc(n * sizeof *r);
    assert_non_null(r);
    void *f = g->alloc(g, n * 4), *b = g->alloc(g, n * 2), *f2 = g->alloc(g, n * 4);
    assert_non_null(f);
    assert_non_null(b);
    assert_non_null(f2);
    g->upload_f32(g, f, DT_F32, h, n);
    g->cast(g, b, DT_BF16, f, DT_F32, n);   /* device rounding == host rounding */
    g->download_f32(g, r, b, DT_BF16, n);
    for (size_t i = 0; i < n; i++) assert_true(r[i] == bf16_round(h[i]));
    g->cast(g, f2, DT_F32, b, DT_BF16, n);   /* bf16 -> f32 is exact */
    g->download_f32(g, r, f2, DT_F32, n);
    for (size_t i = 0; i < n; i++) assert_true(r[i] == bf16_round(h[i]));
    g->upload_f32(g, b, DT_BF16, h, n);     /* host-side conversion on upload */
    g->download_f32(g, r, b, DT_BF16, n);
    for (size_t i = 0; i < n; i++) assert_true(r[i] == bf16_round(h[i]));
    g->cast(g, f2, DT_F32, f, DT_F32, n);   /* same type: a copy */
    g->download_f32(g, r, f2, DT_F32, n);
    assert_memory_equal(r, h, n * sizeof *r);
    g->free(g, f);
    g->free(g, b);
    g->free(g, f2);
    free(h);
    free(r);
}

static void test_timing(void **state)
{
    Mode *m = *state;
    Backend *g = m->be;
    const size_t n = (size_t)1 << 24;
    void *a = g->alloc(g, n * dtype_size(g->act_dtype));
    assert_non_null(a);
    g->mark(g, 0);
    for (int i = 0; i < 10; i++) g->add(g, a, a, a, n);
    g->mark(g, 1);
    double s = g->seconds_between(g, 0, 1);
    printf("  [%s] 10 adds of 16M elements: %.3f ms\n", m->name, s * 1e3);
    assert_true(s > 0.0 && s < 10.0);
    g->free(g, a);
}

/* ------------------------------------------------------------------------------------------ */
/* ops */

static void test_embedding(void **state)
{
    Mode *m = *state;
    const int N = 515, C = 320, V = 97;
    int32_t *tok = malloc(N * sizeof *tok);
    assert_non_null(tok);
    for (int n = 0; n < N; n++) tok[n] = (int32_t)((urand() + 1.0f) * 0.5f * V) % V;   /* repeats */
    IPair t = ipair(m, tok, N);
    Pair wte = pair_rand(m, (size_t)V * C, 1.0f, ACT), out = pair_rand(m, (size_t)N * C, 1.0f, ACT);
    Pair dout = pair_rand(m, (size_t)N * C, 1.0f, ACT), dwte = pair_rand(m, (size_t)V * C, 1.0f, PARAM);
    CPU->embedding_forward(CPU, out.c, t.c, wte.c, N, C);
    m->be->embedding_forward(m->be, out.g, t.g, wte.g, N, C);
    pair_check(m, "embedding out", out, m->tol);
    CPU->embedding_backward(CPU, dwte.c, dout.c, t.c, N, C);
    m->be->embedding_backward(m->be, dwte.g, dout.g, t.g, N, C);
    pair_check(m, "embedding dwte (+=)", dwte, m->tol);
    pair_free(m, wte); pair_free(m, out); pair_free(m, dout); pair_free(m, dwte);
    ipair_free(m, t);
    free(tok);
}

static void test_rmsnorm(void **state)
{
    Mode *m = *state;
    Backend *g = m->be;
    const int N = 333, C = 768;
    Pair x = pair_rand(m, (size_t)N * C, 2.0f, ACT), w = pair_rand(m, C, 1.0f, ACT);
    Pair out = pair_rand(m, (size_t)N * C, 1.0f, ACT), rstd = pair_rand(m, N, 1.0f, PARAM);
    Pair dout = pair_rand(m, (size_t)N * C, 1.0f, ACT), dinp = pair_rand(m, (size_t)N * C, 1.0f, ACT);
    Pair dw = pair_rand(m, C, 1.0f, PARAM);
    CPU->rmsnorm_forward(CPU, out.c, rstd.c, x.c, w.c, N, C, 1e-5f);
    g->rmsnorm_forward(g, out.g, rstd.g, x.g, w.g, N, C, 1e-5f);
    pair_check(m, "rmsnorm out", out, m->tol);
    pair_check(m, "rmsnorm rstd", rstd, m->tol);
    /* the backward reads rstd: give the GPU the CPU's values, so only the backward is compared */
    float *r = download(CPU, rstd.c, N, DT_F32);
    g->upload_f32(g, rstd.g, DT_F32, r, N);
    free(r);
    CPU->rmsnorm_backward(CPU, dinp.c, dw.c, dout.c, x.c, w.c, rstd.c, N, C);
    g->rmsnorm_backward(g, dinp.g, dw.g, dout.g, x.g, w.g, rstd.g, N, C);
    pair_check(m, "rmsnorm dinp (+=)", dinp, m->tol);
    pair_check(m, "rmsnorm dw (+=)", dw, m->tol);
    pair_free(m, x); pair_free(m, w); pair_free(m, out); pair_free(m, rstd);
    pair_free(m, dout); pair_free(m, dinp); pair_free(m, dw);
}

static void matmul_case(const Mode *m, int N, int I, int O)
{
    Backend *g = m->be;
    char what[96];
    Pair inp = pair_rand(m, (size_t)N * I, 1.0f, ACT), w = pair_rand(m, (size_t)O * I, 0.05f, ACT);
    Pair out = pair_rand(m, (size_t)N * O, 1.0f, ACT), dout = pair_rand(m, (size_t)N * O, 1.0f, ACT);
    Pair dinp = pair_rand(m, (size_t)N * I, 1.0f, ACT), dw = pair_rand(m, (size_t)O * I, 1.0f, PARAM);
    CPU->matmul_forward(CPU, out.c, inp.c, w.c, N, I, O);
    g->matmul_forward(g, out.g, inp.g, w.g, N, I, O);
    snprintf(what, sizeof what, "matmul %dx%dx%d out", N, I, O);
    pair_check(m, what, out, m->tol);
    CPU->matmul_backward(CPU, dinp.c, dw.c, dout.c, inp.c, w.c, N, I, O, 0);
    g->matmul_backward(g, dinp.g, dw.g, dout.g, inp.g, w.g, N, I, O, 0);
    snprintf(what, sizeof what, "matmul %dx%dx%d dinp", N, I, O);
    pair_check(m, what, dinp, m->tol);
    snprintf(what, sizeof what, "matmul %dx%dx%d dw (+=)", N, I, O);
    pair_check(m, what, dw, m->tol);
    /* accumulate_dinp, and dw accumulating a second time */
    CPU->matmul_backward(CPU, dinp.c, dw.c, dout.c, inp.c, w.c, N, I, O, 1);
    g->matmul_backward(g, dinp.g, dw.g, dout.g, inp.g, w.g, N, I, O, 1);
    snprintf(what, sizeof what, "matmul %dx%dx%d dinp (+=)", N, I, O);
    pair_check(m, what, dinp, m->tol);
    snprintf(what, sizeof what, "matmul %dx%dx%d dw (+= x2)", N, I, O);
    pair_check(m, what, dw, m->tol);
    pair_free(m, inp); pair_free(m, w); pair_free(m, out); pair_free(m, dout); pair_free(m, dinp); pair_free(m, dw);
}

static void test_matmul(void **state)
{
    Mode *m = *state;
    matmul_case(m, 257, 768, 2304);   /* odd row count */
    matmul_case(m, 64, 176, 64);      /* the tiny model's MLP shape */
    matmul_case(m, 1000, 33, 7);      /* sizes that are no multiple of anything */
}

static void test_rope(void **state)
{
    Mode *m = *state;
    Backend *g = m->be;
    const int N = 700, H = 8, Hkv = 2;
    const int Ds[2] = {64, 128};
    int32_t *pos = malloc(N * sizeof *pos);
    assert_non_null(pos);
    for (int n = 0; n < N; n++) pos[n] = n < 300 ? n : (int32_t)((urand() + 1.0f) * 0.5f * 65535.0f);   /* up to 64k */
    IPair p = ipair(m, pos, N);
    for (int k = 0; k < 2; k++) {
        const int D = Ds[k];
        const size_t n = (size_t)N * (H + 2 * Hkv) * D;
        Pair qkv = pair_rand(m, n, 1.0f, ACT);
        CPU->rope_forward(CPU, qkv.c, p.c, N, H, Hkv, D, 10000.0f);
        g->rope_forward(g, qkv.g, p.g, N, H, Hkv, D, 10000.0f);
        pair_check(m, D == 64 ? "rope forward D=64" : "rope forward D=128", qkv, m->tol);
        Pair dqkv = pair_rand(m, n, 1.0f, ACT);
        CPU->rope_backward(CPU, dqkv.c, p.c, N, H, Hkv, D, 500000.0f);
        g->rope_backward(g, dqkv.g, p.g, N, H, Hkv, D, 500000.0f);
        pair_check(m, D == 64 ? "rope backward D=64" : "rope backward D=128", dqkv, m->tol);
        pair_free(m, qkv);
        pair_free(m, dqkv);
    }
    ipair_free(m, p);
    free(pos);
}

static void test_swiglu_add(void **state)
{
    Mode *m = *state;
    Backend *g = m->be;
    const int N = 300, F = 1000;
    Pair gu = pair_rand(m, (size_t)N * 2 * F, 4.0f, ACT), out = pair_rand(m, (size_t)N * F, 1.0f, ACT);
    Pair dout = pair_rand(m, (size_t)N * F, 1.0f, ACT), dgu = pair_rand(m, (size_t)N * 2 * F, 1.0f, ACT);
    CPU->swiglu_forward(CPU, out.c, gu.c, N, F);
    g->swiglu_forward(g, out.g, gu.g, N, F);
    pair_check(m, "swiglu out", out, m->tol);
    CPU->swiglu_backward(CPU, dgu.c, dout.c, gu.c, N, F);
    g->swiglu_backward(g, dgu.g, dout.g, gu.g, N, F);
    pair_check(m, "swiglu dgate_up", dgu, m->tol);
    /* add, in place on its first operand as the model uses it */
    const size_t n = (size_t)N * F;
    CPU->add(CPU, out.c, out.c, dout.c, n);
    g->add(g, out.g, out.g, dout.g, n);
    pair_check(m, "add (out == a)", out, m->tol);
    pair_free(m, gu); pair_free(m, out); pair_free(m, dout); pair_free(m, dgu);
}

static void test_crossentropy(void **state)
{
    Mode *m = *state;
    Backend *g = m->be;
    const int N = 70, V = 32000;
    int32_t *tgt = malloc(N * sizeof *tgt);
    float *wts = malloc(N * sizeof *wts);
    assert_non_null(tgt);
    assert_non_null(wts);
    for (int n = 0; n < N; n++) {
        tgt[n] = n == 5 ? -1 : (int32_t)((urand() + 1.0f) * 0.5f * V) % V;   /* one ignored position */
        wts[n] = n % 7 == 3 ? 0.0f : 1.0f / (float)(n + 3);                  /* some zero weights */
    }
    IPair t = ipair(m, tgt, N);
    float *wc = CPU->alloc(CPU, N * 4), *wg = g->alloc(g, N * 4);
    assert_non_null(wc);
    assert_non_null(wg);
    CPU->upload(CPU, wc, wts, N * 4);
    g->upload(g, wg, wts, N * 4);
    Pair logits = pair_rand(m, (size_t)N * V, 8.0f, ACT), losses = pair_rand(m, N, 1.0f, PARAM);
    CPU->crossentropy_forward(CPU, losses.c, logits.c, t.c, N, V);
    g->crossentropy_forward(g, losses.g, logits.g, t.g, N, V);
    pair_check(m, "crossentropy losses", losses, m->tol);
    /* in place, dlogits == logits, as the model calls it */
    CPU->crossentropy_backward(CPU, logits.c, logits.c, t.c, wc, N, V);
    g->crossentropy_backward(g, logits.g, logits.g, t.g, wg, N, V);
    pair_check(m, "crossentropy dlogits (aliased)", logits, m->tol);
    pair_free(m, logits);
    pair_free(m, losses);
    ipair_free(m, t);
    CPU->free(CPU, wc);
    g->free(g, wg);
    free(tgt);
    free(wts);
}

static void test_optimizer(void **state)
{
    Mode *m = *state;
    Backend *g = m->be;
    const size_t n = 3000017;
    Pair x = pair_rand(m, n, 1.0f, PARAM);
    double sc = CPU->sum_squares(CPU, x.c, n), sg = g->sum_squares(g, x.g, n);
    printf("  [%s] sum_squares gpu %.12g cpu %.12g\n", m->name, sg, sc);
    assert_close(sg, sc, 0.0, 1e-9);
    Pair p = pair_rand(m, n, 1.0f, PARAM), mm = pair_rand(m, n, 0.1f, PARAM);
    float *v = hrand(n, 0.01f);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
    Pair vv = pair_from(m, v, n, PARAM);
    free(v);
    AdamWConfig cfg = {3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f};
    for (int t = 1; t <= 3; t++) {
        CPU->adamw(CPU, p.c, x.c, mm.c, vv.c, n, &cfg, 0.7f, t);
        g->adamw(g, p.g, x.g, mm.g, vv.g, n, &cfg, 0.7f, t);
    }
    pair_check(m, "adamw params", p, 1e-5);
    pair_check(m, "adamw m", mm, 1e-5);
    pair_check(m, "adamw v", vv, 1e-5);
    pair_free(m, x); pair_free(m, p); pair_free(m, mm); pair_free(m, vv);
}

/* ------------------------------------------------------------------------------------------ */
/* attention */

typedef struct {
    int H, Hkv, D, n_segs;
    int segs[8];
    /* host, filled once and shared by both modes: inputs that are exact in bf16, and the CPU's
     * forward on them */
    int N, max_seqlen;
    int32_t cu[9];
    float *qkv, *dout, *out, *lse;
} AttnCase;

static AttnCase LONG64 = {2, 1, 64, 6, {1, 63, 64, 65, 1000, 8192}, 0, 0, {0}, NULL, NULL, NULL, NULL};
static AttnCase LONG128 = {2, 1, 128, 6, {1, 63, 64, 65, 1000, 8192}, 0, 0, {0}, NULL, NULL, NULL, NULL};
static AttnCase GQA4 = {8, 2, 64, 5, {1, 63, 64, 65, 200}, 0, 0, {0}, NULL, NULL, NULL, NULL};
static AttnCase TINY = {4, 2, 16, 5, {1, 63, 64, 65, 300}, 0, 0, {0}, NULL, NULL, NULL, NULL};
/* small segments around the tile edges, for compute-sanitizer (--sanitize) */
static AttnCase SMALL64 = {2, 1, 64, 5, {1, 17, 64, 65, 130}, 0, 0, {0}, NULL, NULL, NULL, NULL};
static AttnCase SMALL128 = {2, 1, 128, 5, {1, 17, 64, 65, 130}, 0, 0, {0}, NULL, NULL, NULL, NULL};

static size_t qkv_elems(const AttnCase *a) { return (size_t)a->N * (a->H + 2 * a->Hkv) * a->D; }
static size_t out_elems(const AttnCase *a) { return (size_t)a->N * a->H * a->D; }

static void attn_prepare(AttnCase *a)
{
    if (a->qkv) return;
    a->cu[0] = 0;
    a->max_seqlen = 0;
    for (int s = 0; s < a->n_segs; s++) {
        a->cu[s + 1] = a->cu[s] + a->segs[s];
        if (a->segs[s] > a->max_seqlen) a->max_seqlen = a->segs[s];
    }
    a->N = a->cu[a->n_segs];
    a->qkv = hrand(qkv_elems(a), 2.0f);   /* scores of a few units: a peaked but not one-hot softmax */
    a->dout = hrand(out_elems(a), 1.0f);
    for (size_t i = 0; i < qkv_elems(a); i++) a->qkv[i] = bf16_round(a->qkv[i]);
    for (size_t i = 0; i < out_elems(a); i++) a->dout[i] = bf16_round(a->dout[i]);
    a->out = malloc(out_elems(a) * sizeof(float));
    a->lse = malloc((size_t)a->N * a->H * sizeof(float));
    assert_non_null(a->out);
    assert_non_null(a->lse);
    Backend *c = CPU;
    void *qkv = c->alloc(c, qkv_elems(a) * 4), *out = c->alloc(c, out_elems(a) * 4);
    void *lse = c->alloc(c, (size_t)a->N * a->H * 4), *cu = c->alloc(c, sizeof a->cu);
    c->upload(c, qkv, a->qkv, qkv_elems(a) * 4);
    c->upload(c, cu, a->cu, sizeof a->cu);
    c->attention_forward(c, out, lse, qkv, cu, a->n_segs, a->max_seqlen, a->N, a->H, a->Hkv, a->D);
    c->download(c, a->out, out, out_elems(a) * 4);
    c->download(c, a->lse, lse, (size_t)a->N * a->H * 4);
    c->free(c, qkv); c->free(c, out); c->free(c, lse); c->free(c, cu);
}

/* compares dq, dk, dv separately (they have different scales) */
static void check_dqkv(const Mode *m, const AttnCase *a, const float *got, const float *ref, const char *tag, double tol)
{
    const int H = a->H, Hkv = a->Hkv, D = a->D, row = (H + 2 * Hkv) * D;
    const char *names[3] = {"dq", "dk", "dv"};
    for (int part = 0; part < 3; part++) {
        const int off = part == 0 ? 0 : part == 1 ? H * D : (H + Hkv) * D, w = part == 0 ? H * D : Hkv * D;
        float *x = malloc((size_t)a->N * w * sizeof *x), *y = malloc((size_t)a->N * w * sizeof *y);
        assert_non_null(x);
        assert_non_null(y);
        for (int n = 0; n < a->N; n++) {
            memcpy(x + (size_t)n * w, got + (size_t)n * row + off, (size_t)w * sizeof *x);
            memcpy(y + (size_t)n * w, ref + (size_t)n * row + off, (size_t)w * sizeof *y);
        }
        char what[160];
        snprintf(what, sizeof what, "%s %s", tag, names[part]);
        expect_close(what, m, x, y, (size_t)a->N * w, tol);
        free(x);
        free(y);
    }
}

/* GPU forward against the CPU's; GPU backward (fed the GPU's own out and lse, as in training)
 * against the CPU backward fed the same out and lse, so that rounding of out in bf16 mode does
 * not show up as a backward error */
static void attn_case(const Mode *m, AttnCase *a)
{
    if (cudnn_missing(m)) return;
    attn_prepare(a);
    Backend *g = m->be, *c = CPU;
    const size_t nq = qkv_elems(a), no = out_elems(a), nl = (size_t)a->N * a->H;
    char tag[96];
    snprintf(tag, sizeof tag, "attn D=%d H=%d/%d N=%d", a->D, a->H, a->Hkv, a->N);

    void *qkv = g->alloc(g, nq * dtype_size(g->act_dtype)), *out = g->alloc(g, no * dtype_size(g->act_dtype));
    void *dout = g->alloc(g, no * dtype_size(g->act_dtype)), *dqkv = g->alloc(g, nq * dtype_size(g->act_dtype));
    void *lse = g->alloc(g, nl * 4), *cu = g->alloc(g, sizeof a->cu);
    assert_true(qkv && out && dout && dqkv && lse && cu);
    g->upload_f32(g, qkv, g->act_dtype, a->qkv, nq);
    g->upload_f32(g, dout, g->act_dtype, a->dout, no);
    g->upload(g, cu, a->cu, sizeof a->cu);
    g->attention_forward(g, out, lse, qkv, cu, a->n_segs, a->max_seqlen, a->N, a->H, a->Hkv, a->D);
    float *out_g = download(g, out, no, g->act_dtype), *lse_g = download(g, lse, nl, DT_F32);
    char what[160];
    snprintf(what, sizeof what, "%s out", tag);
    expect_close(what, m, out_g, a->out, no, m->tol);
    snprintf(what, sizeof what, "%s lse", tag);
    expect_close(what, m, lse_g, a->lse, nl, m->tol);

    g->attention_backward(g, dqkv, dout, qkv, out, lse, cu, a->n_segs, a->max_seqlen, a->N, a->H, a->Hkv, a->D);
    float *dqkv_g = download(g, dqkv, nq, g->act_dtype);

    void *cq = c->alloc(c, nq * 4), *co = c->alloc(c, no * 4), *cd = c->alloc(c, no * 4);
    void *cdq = c->alloc(c, nq * 4), *cl = c->alloc(c, nl * 4), *ccu = c->alloc(c, sizeof a->cu);
    c->upload(c, cq, a->qkv, nq * 4);
    c->upload(c, co, out_g, no * 4);
    c->upload(c, cd, a->dout, no * 4);
    c->upload(c, cl, lse_g, nl * 4);
    c->upload(c, ccu, a->cu, sizeof a->cu);
    c->attention_backward(c, cdq, cd, cq, co, cl, ccu, a->n_segs, a->max_seqlen, a->N, a->H, a->Hkv, a->D);
    float *dqkv_c = download(c, cdq, nq, DT_F32);
    check_dqkv(m, a, dqkv_g, dqkv_c, tag, m->tol);

    free(out_g); free(lse_g); free(dqkv_g); free(dqkv_c);
    void *gp[] = {qkv, out, dout, dqkv, lse, cu}, *cp[] = {cq, co, cd, cdq, cl, ccu};
    for (int i = 0; i < 6; i++) { g->free(g, gp[i]); c->free(c, cp[i]); }
}

static void test_attention_long_d64(void **state) { attn_case(*state, &LONG64); }
static void test_attention_long_d128(void **state) { attn_case(*state, &LONG128); }
static void test_attention_gqa4(void **state) { attn_case(*state, &GQA4); }
static void test_attention_tiny_d16(void **state) { attn_case(*state, &TINY); }
static void test_attention_small_d64(void **state) { attn_case(*state, &SMALL64); }
static void test_attention_small_d128(void **state) { attn_case(*state, &SMALL128); }

/* segments of 1, 4096 and 65536 tokens, D = 128, GQA: cuDNN against the WMMA kernels (both
 * checked against the CPU up to 8192 tokens above); same inputs, both in bf16 */
static void test_attention_64k_cudnn_vs_wmma(void **state)
{
    Mode *m = *state;
    if (cudnn_missing(m)) return;
    Backend *a = m->be, *b = MODE_BF16.be;
    const int H = 2, Hkv = 1, D = 128, n_segs = 3, row = (H + 2 * Hkv) * D;
    const int32_t cu[4] = {0, 1, 4097, 4097 + 65536};
    const int N = cu[3];
    float *qkv = hrand((size_t)N * row, 2.0f), *dout = hrand((size_t)N * H * D, 1.0f);
    float *res[2][3];
    Backend *bes[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        Backend *g = bes[k];
        void *q = g->alloc(g, (size_t)N * row * 2), *o = g->alloc(g, (size_t)N * H * D * 2);
        void *d = g->alloc(g, (size_t)N * H * D * 2), *dq = g->alloc(g, (size_t)N * row * 2);
        void *l = g->alloc(g, (size_t)N * H * 4), *c = g->alloc(g, sizeof cu);
        assert_true(q && o && d && dq && l && c);
        g->upload_f32(g, q, DT_BF16, qkv, (size_t)N * row);
        g->upload_f32(g, d, DT_BF16, dout, (size_t)N * H * D);
        g->upload(g, c, cu, sizeof cu);
        g->attention_forward(g, o, l, q, c, n_segs, 65536, N, H, Hkv, D);
        g->attention_backward(g, dq, d, q, o, l, c, n_segs, 65536, N, H, Hkv, D);
        res[k][0] = download(g, o, (size_t)N * H * D, DT_BF16);
        res[k][1] = download(g, l, (size_t)N * H, DT_F32);
        res[k][2] = download(g, dq, (size_t)N * row, DT_BF16);
        void *ptrs[] = {q, o, d, dq, l, c};
        for (int i = 0; i < 6; i++) g->free(g, ptrs[i]);
    }
    expect_close("64k cudnn==wmma out", m, res[0][0], res[1][0], (size_t)N * H * D, m->tol);
    expect_close("64k cudnn==wmma lse", m, res[0][1], res[1][1], (size_t)N * H, m->tol);
    AttnCase view = {H, Hkv, D, n_segs, {0}, N, 65536, {0}, NULL, NULL, NULL, NULL};
    check_dqkv(m, &view, res[0][2], res[1][2], "64k cudnn==wmma", m->tol);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 3; i++) free(res[k][i]);
    free(qkv);
    free(dout);
}

/* one row of three segments on the GPU == each segment run alone on the GPU */
static void test_attention_packed_equals_unpacked(void **state)
{
    Mode *m = *state;
    if (cudnn_missing(m)) return;
    Backend *g = m->be;
    const int H = 4, Hkv = 2, D = 64, segs[3] = {100, 257, 64};
    const int row = (H + 2 * Hkv) * D, N = 421;
    const int32_t cu[4] = {0, 100, 357, 421};
    float *qkv = hrand((size_t)N * row, 2.0f), *dout = hrand((size_t)N * H * D, 1.0f);
    const DType t = g->act_dtype;
    const size_t es = dtype_size(t);

    /* packed */
    void *q = g->alloc(g, (size_t)N * row * es), *o = g->alloc(g, (size_t)N * H * D * es);
    void *d = g->alloc(g, (size_t)N * H * D * es), *dq = g->alloc(g, (size_t)N * row * es);
    void *l = g->alloc(g, (size_t)N * H * 4), *c = g->alloc(g, sizeof cu);
    assert_true(q && o && d && dq && l && c);
    g->upload_f32(g, q, t, qkv, (size_t)N * row);
    g->upload_f32(g, d, t, dout, (size_t)N * H * D);
    g->upload(g, c, cu, sizeof cu);
    g->attention_forward(g, o, l, q, c, 3, 257, N, H, Hkv, D);
    g->attention_backward(g, dq, d, q, o, l, c, 3, 257, N, H, Hkv, D);
    float *po = download(g, o, (size_t)N * H * D, t), *pl = download(g, l, (size_t)N * H, DT_F32);
    float *pdq = download(g, dq, (size_t)N * row, t);

    /* each segment alone, with its own buffers (N = its length, lse laid out [H, len]) */
    float *uo = malloc((size_t)N * H * D * 4), *ul = malloc((size_t)N * H * 4), *udq = malloc((size_t)N * row * 4);
    assert_true(uo && ul && udq);
    for (int s = 0; s < 3; s++) {
        const int n0 = cu[s], len = segs[s];
        const int32_t cu1[2] = {0, len};
        g->upload_f32(g, q, t, qkv + (size_t)n0 * row, (size_t)len * row);
        g->upload_f32(g, d, t, dout + (size_t)n0 * H * D, (size_t)len * H * D);
        g->upload(g, c, cu1, sizeof cu1);
        g->attention_forward(g, o, l, q, c, 1, len, len, H, Hkv, D);
        g->attention_backward(g, dq, d, q, o, l, c, 1, len, len, H, Hkv, D);
        g->download_f32(g, uo + (size_t)n0 * H * D, o, t, (size_t)len * H * D);
        g->download_f32(g, udq + (size_t)n0 * row, dq, t, (size_t)len * row);
        float *sl = download(g, l, (size_t)len * H, DT_F32);
        for (int h = 0; h < H; h++) memcpy(ul + (size_t)h * N + n0, sl + (size_t)h * len, (size_t)len * 4);
        free(sl);
    }
    /* the forward does the same arithmetic either way; dQ sums atomically in a varying order.
     * cuDNN may pick another kernel for another shape (its graphs are per size bucket): bf16's. */
    const double ftol = m == &MODE_BF16_CUDNN ? m->tol : 1e-6;
    expect_close("packed==unpacked out", m, po, uo, (size_t)N * H * D, ftol);
    expect_close("packed==unpacked lse", m, pl, ul, (size_t)N * H, ftol);
    expect_close("packed==unpacked dqkv", m, pdq, udq, (size_t)N * row,
                 m == &MODE_BF16_CUDNN ? m->tol : m->act == DT_BF16 ? 1e-2 : 1e-5);

    void *ptrs[] = {q, o, d, dq, l, c};
    for (int i = 0; i < 6; i++) g->free(g, ptrs[i]);
    free(qkv); free(dout); free(po); free(pl); free(pdq); free(uo); free(ul); free(udq);
}

/* ------------------------------------------------------------------------------------------ */

static char skip_reason[512];

static void test_skip(void **state)
{
    (void)state;
    skip();
}

/* each test once per mode, named "test (f32)" and "test (bf16)" */
#define BOTH(fn) {#fn " (f32)", fn, NULL, NULL, &MODE_F32}, {#fn " (bf16)", fn, NULL, NULL, &MODE_BF16}
#define THREE(fn) BOTH(fn), {#fn " (bf16, scalar attention)", fn, NULL, NULL, &MODE_BF16_SCALAR}
#define CUDNN(fn) {#fn " (bf16, cuDNN attention)", fn, NULL, NULL, &MODE_BF16_CUDNN}

/* a CUDA backend created with LABENCH_ATTN=attn (the variable is put back afterwards) */
static Backend *create_with(DType act, const char *attn, char *why, size_t whylen)
{
    const char *was = getenv("LABENCH_ATTN");
    char saved[64];
    snprintf(saved, sizeof saved, "%s", was ? was : "");
    setenv("LABENCH_ATTN", attn, 1);
    Backend *be = backend_cuda_create(act, 0, why, whylen);
    if (was) setenv("LABENCH_ATTN", saved, 1); else unsetenv("LABENCH_ATTN");
    return be;
}

/* backend_cuda.cu: 1 when bf16 attention with D = 64 or 128 runs on the tensor cores */
int backend_cuda_attention_wmma(Backend *be);

/* `test_gpu_ops --sanitize`: only the bf16 tensor-core attention on small segments (D = 64 and
 * 128, and packed == unpacked), short enough for compute-sanitizer's racecheck and synccheck */
static void test_wmma_in_use(void **state)
{
    Mode *m = *state;
    if (!backend_cuda_attention_wmma(m->be)) {
        print_error("the tensor-core attention is not in use on %s (LABENCH_ATTN=scalar, or too little shared "
                    "memory): --sanitize would check the FMA kernels instead\n", m->be->device_name);
        fail();
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* a run killed by its time limit keeps its last lines */
    const int sanitize = argc > 1 && strcmp(argv[1], "--sanitize") == 0;
    if (argc > 1 && !sanitize) {
        fprintf(stderr, "usage: %s [--sanitize]\n", argv[0]);
        return 2;
    }
    MODE_F32.be = backend_cuda_create(DT_F32, 0, skip_reason, sizeof skip_reason);
    if (MODE_F32.be) MODE_BF16.be = create_with(DT_BF16, "wmma", skip_reason, sizeof skip_reason);
    if (MODE_BF16.be) MODE_BF16_SCALAR.be = create_with(DT_BF16, "scalar", skip_reason, sizeof skip_reason);
    if (MODE_BF16_SCALAR.be) {   /* without cuDNN the GPU tests still run: its cases say why not */
        MODE_BF16_CUDNN.be = create_with(DT_BF16, "cudnn", cudnn_why, sizeof cudnn_why);
        printf("cuDNN attention: %s\n", MODE_BF16_CUDNN.be ? MODE_BF16_CUDNN.be->attention_desc : cudnn_why);
    }
    if (!MODE_F32.be || !MODE_BF16.be || !MODE_BF16_SCALAR.be) {
        printf("SKIP: %s\n", skip_reason);
        if (MODE_F32.be) MODE_F32.be->destroy(MODE_F32.be);
        if (MODE_BF16.be) MODE_BF16.be->destroy(MODE_BF16.be);
        const struct CMUnitTest skipped[] = {cmocka_unit_test(test_skip)};
        cmocka_run_group_tests_name("gpu_ops (no GPU)", skipped, NULL, NULL);
        return 0;
    }
    char err[256];
    CPU = backend_cpu_create(DT_F32, err, sizeof err);
    if (!CPU) {
        fprintf(stderr, "cannot create the CPU reference backend: %s\n", err);
        return 1;
    }
    printf("GPU: %s; peak %.0f TFLOP/s (%s)\n", MODE_F32.be->device_name, MODE_F32.be->peak_flops / 1e12,
           MODE_F32.be->peak_flops_source);

    const struct CMUnitTest tests[] = {
        BOTH(test_memory),
        BOTH(test_cast_and_transfers),
        BOTH(test_timing),
        BOTH(test_embedding),
        BOTH(test_rmsnorm),
        BOTH(test_matmul),
        BOTH(test_rope),
        BOTH(test_swiglu_add),
        BOTH(test_crossentropy),
        BOTH(test_optimizer),
        THREE(test_attention_tiny_d16),
        THREE(test_attention_gqa4),
        THREE(test_attention_packed_equals_unpacked),
        BOTH(test_attention_small_d64),
        BOTH(test_attention_small_d128),
        BOTH(test_attention_long_d64),
        BOTH(test_attention_long_d128),
        CUDNN(test_attention_gqa4),
        CUDNN(test_attention_packed_equals_unpacked),
        CUDNN(test_attention_small_d64),
        CUDNN(test_attention_small_d128),
        CUDNN(test_attention_long_d64),
        CUDNN(test_attention_long_d128),
        CUDNN(test_attention_64k_cudnn_vs_wmma),
    };
    const struct CMUnitTest sanitized[] = {
        {"test_wmma_in_use (bf16)", test_wmma_in_use, NULL, NULL, &MODE_BF16},
        {"test_attention_small_d64 (bf16)", test_attention_small_d64, NULL, NULL, &MODE_BF16},
        {"test_attention_small_d128 (bf16)", test_attention_small_d128, NULL, NULL, &MODE_BF16},
        {"test_attention_packed_equals_unpacked (bf16)", test_attention_packed_equals_unpacked, NULL, NULL, &MODE_BF16},
    };
    int failed = sanitize ? cmocka_run_group_tests_name("gpu_ops --sanitize", sanitized, NULL, NULL)
                          : cmocka_run_group_tests_name("gpu_ops", tests, NULL, NULL);

    MODE_F32.be->destroy(MODE_F32.be);
    MODE_BF16.be->destroy(MODE_BF16.be);
    MODE_BF16_SCALAR.be->destroy(MODE_BF16_SCALAR.be);
    if (MODE_BF16_CUDNN.be) MODE_BF16_CUDNN.be->destroy(MODE_BF16_CUDNN.be);
    CPU->destroy(CPU);
    AttnCase *cases[] = {&LONG64, &LONG128, &GQA4, &TINY, &SMALL64, &SMALL128};
    for (int i = 0; i < 6; i++) {
        free(cases[i]->qkv); free(cases[i]->dout); free(cases[i]->out); free(cases[i]->lse);
    }
    return failed ? 1 : 0;
}
