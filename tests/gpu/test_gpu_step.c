/* The whole training step on the GPU against the CPU reference: loss and every gradient, for the
 * tiny preset and a 2-layer slice of small, in f32 (tight) and bf16 (looser); packed == unpacked
 * on the GPU; one row with segments of 1, 63, 64, 65, 1000 and 8192 tokens. Runs only where a
 * GPU is; elsewhere prints "SKIP: <reason>" and exits 0.
 *
 * Each gradient is judged per element, |gpu - cpu| / (|cpu| + rms over the tensor's non-zero
 * elements), against STEP_GRAD_TOL_F32 / _BF16, and the loss relatively against
 * STEP_LOSS_TOL_F32 / _BF16 (tests/step_compare.h). tests/test_grad_bf16.c runs the same bf16
 * comparison on a CPU that rounds as this GPU step does, and shows correct code within half
 * the bound. The bf16 step of small runs once per attention: the default (auto), and
 * pinned to labench's WMMA kernels and to cuDNN's fused ones (LABENCH_ATTN; where cuDNN does not
 * load, one line says why and that case checks nothing). */
#include "tests/step_compare.h"

static char skip_reason[512];

static Backend *gpu(DType act)
{
    return backend_cuda_create(act, 0, skip_reason, sizeof skip_reason);
}

/* attn: LABENCH_ATTN for this backend (NULL: the default, auto) */
static void compare_step_attn(const char *preset, int layers, const int *lens, int n_segs, DType act, const char *attn)
{
    Backend *g = gpu(act);
    if (!g) {
        print_message("SKIP: %s\n", skip_reason);
        skip();
    }
    if (attn) {
        g->destroy(g);
        const char *was = getenv("LABENCH_ATTN");
        char saved[64], why[1024];
        snprintf(saved, sizeof saved, "%s", was ? was : "");
        setenv("LABENCH_ATTN", attn, 1);
        g = backend_cuda_create(act, 0, why, sizeof why);
        if (was) setenv("LABENCH_ATTN", saved, 1); else unsetenv("LABENCH_ATTN");
        if (!g) {
            printf("  attention %s: not checked: %s\n", attn, why);
            return;
        }
    }
    printf("  attention: %s\n", g->attention_desc);
    const int bf16 = act == DT_BF16;
    step_compare(g, 0, preset, layers, lens, n_segs, bf16 ? STEP_GRAD_TOL_BF16 : STEP_GRAD_TOL_F32,
                 bf16 ? STEP_LOSS_TOL_BF16 : STEP_LOSS_TOL_F32, NULL);
    g->destroy(g);
}

static void compare_step(const char *preset, int layers, const int *lens, int n_segs, DType act)
{
    compare_step_attn(preset, layers, lens, n_segs, act, NULL);
}

/* the rows tests/test_grad_bf16.c simulates too */
static const int SHORT[] = {37, 1, 90};
static const int SMALL2[] = {200, 64, 257};

static void test_tiny_f32(void **s) { (void)s; compare_step("tiny", 0, SHORT, 3, DT_F32); }
static void test_tiny_bf16(void **s) { (void)s; compare_step("tiny", 0, SHORT, 3, DT_BF16); }
static void test_small2_f32(void **s) { (void)s; compare_step("small", 2, SMALL2, 3, DT_F32); }
static void test_small2_bf16(void **s) { (void)s; compare_step("small", 2, SMALL2, 3, DT_BF16); }
static void test_small2_bf16_wmma(void **s) { (void)s; compare_step_attn("small", 2, SMALL2, 3, DT_BF16, "wmma"); }
static void test_small2_bf16_cudnn(void **s) { (void)s; compare_step_attn("small", 2, SMALL2, 3, DT_BF16, "cudnn"); }
/* the row of segment lengths around tile edges, and a long one */
static void test_edge_segments_f32(void **s)
{
    (void)s;
    const int lens[] = {1, 63, 64, 65, 1000, 8192};
    compare_step("tiny", 0, lens, 6, DT_F32);
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
    StepRow r = step_row_make(lens, 3, c.vocab, 9);
    assert_int_equal(0, model_create(&m, &c, g, r.n, 0, err, sizeof err));
    assert_int_equal(0, model_init_params(&m, 3, NULL, 0));
    float *per_packed = malloc((size_t)r.n * 4), *per = malloc((size_t)r.n * 4);
    float *g1 = malloc(m.n_params * 4), *g2 = malloc(m.n_params * 4);
    model_zero_grads(&m);
    Batch b = step_row_batch(&r);
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
    step_row_free(&r);
    model_free(&m);
    g->destroy(g);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);   /* a run killed by its time limit keeps its last lines */
    if (argc > 1) {
        fprintf(stderr, "usage: %s   (no options)\n", argv[0]);
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_f32),          cmocka_unit_test(test_tiny_bf16),
        cmocka_unit_test(test_small2_f32),        cmocka_unit_test(test_small2_bf16),
        cmocka_unit_test(test_edge_segments_f32), cmocka_unit_test(test_packed_equals_unpacked_gpu),
        cmocka_unit_test(test_small2_bf16_wmma),  cmocka_unit_test(test_small2_bf16_cudnn),
    };
    return cmocka_run_group_tests_name("gpu_step", tests, NULL, NULL);
}
