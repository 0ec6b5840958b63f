/* The whole training step on the GPU against the CPU reference: loss and every gradient, for the
 * tiny preset and a 2-layer slice of small, in f32 (tight) and bf16 (looser); packed == unpacked
 * on the GPU; one row with segments of 1, 63, 64, 65, 1000 and 8192 tokens. Runs only where a
 * GPU is; elsewhere prints "SKIP: <reason>" and exits 0.
 *
 * Tolerances (per tensor, max |gpu - cpu| / (rms(cpu) + tiny)):
 *   f32  1e-3  (same math, different summation order and cuBLAS kernels)
 *   bf16 1e-1  (activations and weight copies rounded to 8 bits of mantissa)
 * and the loss to 1e-5 (f32) / 2e-2 (bf16) relative. */
#include "tests/test_util.h"

#include "kernels/backend.h"
#include "model/model.h"
#include "strategies/rng.h"

static char skip_reason[512];

static Backend *gpu(DType act)
{
    return backend_cuda_create(act, 0, skip_reason, sizeof skip_reason);
}

typedef struct {
    int n, n_segs, max_seqlen;
    int32_t *tokens, *targets, *pos, *cu;
    float *w;
} Row;

static Row make_row(const int *lens, int n_segs, int vocab, uint64_t seed)
{
    Row r = {0};
    for (int s = 0; s < n_segs; s++) r.n += lens[s];
    r.n_segs = n_segs;
    r.tokens = malloc((size_t)r.n * 4);
    r.targets = malloc((size_t)r.n * 4);
    r.pos = malloc((size_t)r.n * 4);
    r.cu = malloc((size_t)(n_segs + 1) * 4);
    r.w = malloc((size_t)r.n * 4);
    Rng g = rng_seed(seed, 11);
    int off = 0;
    r.cu[0] = 0;
    for (int s = 0; s < n_segs; s++) {
        for (int t = 0; t < lens[s]; t++) r.tokens[off + t] = (int32_t)rng_below(&g, (uint64_t)vocab);
        for (int t = 0; t < lens[s]; t++) {
            int last = t == lens[s] - 1;
            r.pos[off + t] = t;
            r.targets[off + t] = last ? 0 : r.tokens[off + t + 1];
            /* LongAlign-style per-sequence weights: 1/(M N_i) */
            r.w[off + t] = last ? 0.0f : 1.0f / ((float)n_segs * (float)(lens[s] > 1 ? lens[s] - 1 : 1));
        }
        off += lens[s];
        r.cu[s + 1] = off;
        if (lens[s] > r.max_seqlen) r.max_seqlen = lens[s];
    }
    return r;
}

static void free_row(Row *r)
{
    free(r->tokens);
    free(r->targets);
    free(r->pos);
    free(r->cu);
    free(r->w);
}

static Batch batch_of(const Row *r)
{
    return (Batch){r->n, r->tokens, r->targets, r->w, r->pos, r->cu, r->n_segs, r->max_seqlen};
}

/* loss and gradients of one row on a backend, from the given weights */
static double step_on(Backend *be, const ModelConfig *c, const float *params, const Row *r, float *grads)
{
    Model m;
    char err[512];
    if (model_create(&m, c, be, r->n, 0, err, sizeof err) != 0) fail_msg("model_create: %s", err);
    model_set_params(&m, params);
    model_zero_grads(&m);
    Batch b = batch_of(r);
    double loss = model_forward_backward(&m, &b, NULL);
    model_get_grads(&m, grads);
    model_free(&m);
    return loss;
}

static void compare_step(const char *preset, int layers, const int *lens, int n_segs, DType act, double gtol,
                         double ltol)
{
    Backend *g = gpu(act);
    if (!g) {
        print_message("SKIP: %s\n", skip_reason);
        skip();
    }
    char err[256];
    Backend *cpu = backend_cpu_create(DT_F32, err, sizeof err);
    assert_non_null(cpu);
    ModelConfig c;
    assert_int_equal(0, model_preset(preset, &c));
    if (layers) c.layers = layers;
    ParamLayout l;
    assert_int_equal(0, param_layout_make(&c, &l));
    float *p = malloc(l.n_params * sizeof *p), *gc = malloc(l.n_params * sizeof *gc),
          *gg = malloc(l.n_params * sizeof *gg);
    /* seeded init through a CPU model, so both sides start from identical weights */
    Model init;
    assert_int_equal(0, model_create(&init, &c, cpu, 1, 0, err, sizeof err));
    model_init_params(&init, 7);
    model_get_params(&init, p);
    model_free(&init);
    Row r = make_row(lens, n_segs, c.vocab, 5);
    double lc = step_on(cpu, &c, p, &r, gc);
    double lg = step_on(g, &c, p, &r, gg);
    print_message("%s/%d layers/%s: loss cpu %.6f gpu %.6f\n", preset, c.layers, dtype_name(act), lc, lg);
    assert_close(lg, lc, 0, ltol);
    for (int ti = 0; ti < l.n_tensors; ti++) {
        const ParamTensor *t = &l.tensors[ti];
        size_t n = (size_t)t->rows * t->cols;
        double rms = 0, worst = 0;
        for (size_t k = 0; k < n; k++) rms += (double)gc[t->offset + k] * gc[t->offset + k];
        rms = sqrt(rms / (double)n) + 1e-30;
        for (size_t k = 0; k < n; k++) {
            double e = fabs((double)gg[t->offset + k] - gc[t->offset + k]) / rms;
            if (!(e <= worst)) worst = e;
        }
        if (!(worst <= gtol)) {
            print_error("%s: gradient of %s off by %.3g (x rms %.3g), tolerance %.3g\n", dtype_name(act), t->name,
                        worst, rms, gtol);
            fail();
        }
    }
    free_row(&r);
    free(p);
    free(gc);
    free(gg);
    param_layout_free(&l);
    cpu->destroy(cpu);
    g->destroy(g);
}

static const int SHORT[] = {37, 1, 90};

static void test_tiny_f32(void **s) { (void)s; compare_step("tiny", 0, SHORT, 3, DT_F32, 1e-3, 1e-5); }
static void test_tiny_bf16(void **s) { (void)s; compare_step("tiny", 0, SHORT, 3, DT_BF16, 1e-1, 2e-2); }
static void test_small2_f32(void **s)
{
    (void)s;
    const int lens[] = {200, 64, 257};
    compare_step("small", 2, lens, 3, DT_F32, 1e-3, 1e-5);
}
static void test_small2_bf16(void **s)
{
    (void)s;
    const int lens[] = {200, 64, 257};
    compare_step("small", 2, lens, 3, DT_BF16, 1e-1, 2e-2);
}
/* the row of segment lengths around tile edges, and a long one */
static void test_edge_segments_f32(void **s)
{
    (void)s;
    const int lens[] = {1, 63, 64, 65, 1000, 8192};
    compare_step("tiny", 0, lens, 6, DT_F32, 1e-3, 1e-5);
}

/* packed == unpacked on the GPU: one row of three sequences against the three alone */
static void test_packed_equals_unpacked_gpu(void **state)
{
    (void)state;
    Backend *g = gpu(DT_F32);
    if (!g) {
        print_message("SKIP: %s\n", skip_reason);
        skip();
    }
    ModelConfig c;
    assert_int_equal(0, model_preset("tiny", &c));
    Model m;
    char err[512];
    const int lens[] = {100, 7, 300};
    Row r = make_row(lens, 3, c.vocab, 9);
    assert_int_equal(0, model_create(&m, &c, g, r.n, 0, err, sizeof err));
    model_init_params(&m, 3);
    float *per_packed = malloc((size_t)r.n * 4), *per = malloc((size_t)r.n * 4);
    float *g1 = malloc(m.n_params * 4), *g2 = malloc(m.n_params * 4);
    model_zero_grads(&m);
    Batch b = batch_of(&r);
    double lp = model_forward_backward(&m, &b, per_packed);
    model_get_grads(&m, g1);
    model_zero_grads(&m);
    double ls = 0;
    for (int s = 0; s < 3; s++) {
        int off = r.cu[s], n = lens[s];
        int32_t cu1[2] = {0, n};
        Batch one = {n, r.tokens + off, r.targets + off, r.w + off, r.pos + off, cu1, 1, n};
        ls += model_forward_backward(&m, &one, per);
        for (int t = 0; t < n; t++) assert_close(per[t], per_packed[off + t], 1e-5, 1e-4);
    }
    model_get_grads(&m, g2);
    assert_close(lp, ls, 1e-6, 1e-5);
    double gmax = 0;
    for (size_t i = 0; i < m.n_params; i++) gmax = fmax(gmax, fabs(g2[i]));
    for (size_t i = 0; i < m.n_params; i++) assert_close(g1[i], g2[i], 1e-4 * gmax, 1e-3);
    free(per_packed);
    free(per);
    free(g1);
    free(g2);
    free_row(&r);
    model_free(&m);
    g->destroy(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_f32),          cmocka_unit_test(test_tiny_bf16),
        cmocka_unit_test(test_small2_f32),        cmocka_unit_test(test_small2_bf16),
        cmocka_unit_test(test_edge_segments_f32), cmocka_unit_test(test_packed_equals_unpacked_gpu),
    };
    return cmocka_run_group_tests_name("gpu_step", tests, NULL, NULL);
}
