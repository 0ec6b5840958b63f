/* The bf16 bound of tests/gpu/test_gpu_step.c, checked on a CPU: a CPU backend that rounds what
 * the CUDA backend stores in bf16 (every activation and activation gradient an op writes, and
 * the compute copy of the weights) must pass the same comparison with the f32 CPU reference,
 * on the same rows. So a correct GPU step passes it, and the margin to the bound is known.
 * Kept in f32 exactly as on the GPU: master weights, their gradients (f32 accumulation of bf16
 * products), rstd, lse and the per-position losses. Not simulated: rounding inside one op
 * (cuBLAS's, the attention's P = hi + lo split), smaller than one rounding of its output. */
#include "tests/step_compare.h"

static Backend *INNER;   /* the CPU backend whose ops the simulation calls */

static void round_bf16(void *p, size_t n) { test_bf16_round(p, n); }

static void sim_embedding_forward(Backend *be, void *out, const int32_t *tokens, const void *wte, int N, int C)
{
    INNER->embedding_forward(be, out, tokens, wte, N, C);
    round_bf16(out, (size_t)N * C);
}

static void sim_rmsnorm_forward(Backend *be, void *out, void *rstd, const void *inp, const void *w, int N, int C,
                                float eps)
{
    INNER->rmsnorm_forward(be, out, rstd, inp, w, N, C, eps);
    round_bf16(out, (size_t)N * C);
}

static void sim_rmsnorm_backward(Backend *be, void *dinp, void *dw, const void *dout, const void *inp, const void *w,
                                 const void *rstd, int N, int C)
{
    INNER->rmsnorm_backward(be, dinp, dw, dout, inp, w, rstd, N, C);
    round_bf16(dinp, (size_t)N * C);
}

static void sim_matmul_forward(Backend *be, void *out, const void *inp, const void *w, int N, int I, int O)
{
    INNER->matmul_forward(be, out, inp, w, N, I, O);
    round_bf16(out, (size_t)N * O);
}

static void sim_matmul_backward(Backend *be, void *dinp, void *dw, const void *dout, const void *inp, const void *w,
                                int N, int I, int O, int accumulate_dinp)
{
    INNER->matmul_backward(be, dinp, dw, dout, inp, w, N, I, O, accumulate_dinp);
    if (dinp) round_bf16(dinp, (size_t)N * I);
}

static void sim_rope_forward(Backend *be, void *qkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta)
{
    INNER->rope_forward(be, qkv, pos, N, H, Hkv, D, theta);
    round_bf16(qkv, (size_t)N * (H + 2 * Hkv) * D);
}

static void sim_rope_backward(Backend *be, void *dqkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta)
{
    INNER->rope_backward(be, dqkv, pos, N, H, Hkv, D, theta);
    round_bf16(dqkv, (size_t)N * (H + 2 * Hkv) * D);
}

static void sim_attention_forward(Backend *be, void *out, void *lse, const void *qkv, const int32_t *cu, int n_segs,
                                  int max_seqlen, int N, int H, int Hkv, int D)
{
    INNER->attention_forward(be, out, lse, qkv, cu, n_segs, max_seqlen, N, H, Hkv, D);
    round_bf16(out, (size_t)N * H * D);
}

static void sim_attention_backward(Backend *be, void *dqkv, const void *dout, const void *qkv, const void *out,
                                   const void *lse, const int32_t *cu, int n_segs, int max_seqlen, int N, int H,
                                   int Hkv, int D)
{
    INNER->attention_backward(be, dqkv, dout, qkv, out, lse, cu, n_segs, max_seqlen, N, H, Hkv, D);
    round_bf16(dqkv, (size_t)N * (H + 2 * Hkv) * D);
}

static void sim_swiglu_forward(Backend *be, void *out, const void *gate_up, int N, int F)
{
    INNER->swiglu_forward(be, out, gate_up, N, F);
    round_bf16(out, (size_t)N * F);
}

static void sim_swiglu_backward(Backend *be, void *dgate_up, const void *dout, const void *gate_up, int N, int F)
{
    INNER->swiglu_backward(be, dgate_up, dout, gate_up, N, F);
    round_bf16(dgate_up, (size_t)N * 2 * F);
}

static void sim_add(Backend *be, void *out, const void *a, const void *b, size_t n)
{
    INNER->add(be, out, a, b, n);
    round_bf16(out, n);
}

static void sim_crossentropy_backward(Backend *be, void *dlogits, const void *logits, const int32_t *targets,
                                      const float *weights, int N, int V)
{
    INNER->crossentropy_backward(be, dlogits, logits, targets, weights, N, V);
    round_bf16(dlogits, (size_t)N * V);
}

static void sim_destroy(Backend *be)
{
    INNER->destroy(INNER);
    INNER = NULL;
    free(be);
}

/* A copy of the CPU backend's table (the same memory and state) with the ops above in place.
 * embedding_backward and crossentropy_forward write f32 (param dtype) on the GPU too. */
static Backend *sim_create(void)
{
    char err[256];
    INNER = backend_cpu_create(DT_F32, err, sizeof err);
    assert_non_null(INNER);
    Backend *be = malloc(sizeof *be);
    assert_non_null(be);
    *be = *INNER;
    be->name = "cpu simulating cuda bf16";
    be->destroy = sim_destroy;
    be->embedding_forward = sim_embedding_forward;
    be->rmsnorm_forward = sim_rmsnorm_forward;
    be->rmsnorm_backward = sim_rmsnorm_backward;
    be->matmul_forward = sim_matmul_forward;
    be->matmul_backward = sim_matmul_backward;
    be->rope_forward = sim_rope_forward;
    be->rope_backward = sim_rope_backward;
    be->attention_forward = sim_attention_forward;
    be->attention_backward = sim_attention_backward;
    be->swiglu_forward = sim_swiglu_forward;
    be->swiglu_backward = sim_swiglu_backward;
    be->add = sim_add;
    be->crossentropy_backward = sim_crossentropy_backward;
    be->crossentropy_fused = NULL; /* CUDA has no fused loss: its dlogits go through the bf16 backward */
    return be;
}

/* the rows of test_gpu_step.c's bf16 cases */
static const int SHORT[] = {37, 1, 90};
static const int SMALL2[] = {200, 64, 257};

/* A correct step must pass with room to spare: half the bound. */
static void simulated_case(const char *preset, int layers, const int *lens, int n_segs)
{
    Backend *sim = sim_create();
    double worst = step_compare(sim, 1, preset, layers, lens, n_segs, STEP_GRAD_TOL_BF16, STEP_LOSS_TOL_BF16, NULL);
    print_message("%s (%d layers; 0: all): worst simulated bf16 gradient error %.3e, bound %.2g\n", preset, layers,
                  worst, STEP_GRAD_TOL_BF16);
    assert_true(worst <= 0.5 * STEP_GRAD_TOL_BF16);
    assert_true(worst > 1e-4);   /* the roundings happened */
    sim->destroy(sim);
}

static void test_tiny_bf16_simulated(void **state) { (void)state; simulated_case("tiny", 0, SHORT, 3); }
static void test_small2_bf16_simulated(void **state) { (void)state; simulated_case("small", 2, SMALL2, 3); }

/* The measure can fail: the same simulation with one wrong op (RoPE's backward skipped, so the
 * q and k gradients miss their rotation back) must be caught. */
static void skip_rope_backward(Backend *be, void *dqkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta)
{
    (void)be, (void)dqkv, (void)pos, (void)N, (void)H, (void)Hkv, (void)D, (void)theta;
}

static void test_measure_catches_a_wrong_op(void **state)
{
    (void)state;
    Backend *sim = sim_create();
    sim->rope_backward = skip_rope_backward;
    int failed = 0;
    step_compare(sim, 1, "tiny", 0, SHORT, 3, STEP_GRAD_TOL_BF16, STEP_LOSS_TOL_BF16, &failed);
    assert_int_equal(1, failed);
    sim->destroy(sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_bf16_simulated),
        cmocka_unit_test(test_small2_bf16_simulated),
        cmocka_unit_test(test_measure_catches_a_wrong_op),
    };
    return cmocka_run_group_tests_name("grad_bf16", tests, NULL, NULL);
}
