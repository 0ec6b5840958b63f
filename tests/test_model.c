/* The training step as a whole, on the CPU backend: gradients against finite differences,
 * packed == unpacked, LongAlign Eq. 2 for packing-lw, training that learns. */
#include "tests/test_util.h"

#include "bench/run/batch.h"
#include "bench/input/markov.h"
#include "bench/input/task.h"
#include "kernels/backend.h"
#include "model/model.h"
#include "common/rng.h"
#include "strategies/strategy.h"

/* A model small enough for finite differences over every parameter tensor. */
static ModelConfig micro_config(void)
{
    ModelConfig c = {"micro", 11, 8, 12, 2, 2, 1, 4, 1e-5f, 10000.0f};
    return c;
}

/* A host-side batch: segments of the given lengths, random tokens, all targets weighted w. */
typedef struct {
    int32_t tokens[256], targets[256], pos[256], cu[16];
    float w[256];
    Batch b;
} HostBatch;

static void host_batch(HostBatch *hb, const int *lens, int n_segs, int vocab, uint64_t seed, float weight)
{
    Rng r = rng_seed(seed, 7);
    int n = 0, mx = 0;
    hb->cu[0] = 0;
    for (int s = 0; s < n_segs; s++) {
        for (int t = 0; t < lens[s]; t++) hb->tokens[n + t] = (int32_t)rng_below(&r, (uint64_t)vocab);
        for (int t = 0; t < lens[s]; t++) {
            int last = t == lens[s] - 1;
            hb->pos[n + t] = t;
            hb->targets[n + t] = last ? 0 : hb->tokens[n + t + 1];
            hb->w[n + t] = last ? 0.0f : weight;
        }
        n += lens[s];
        hb->cu[s + 1] = n;
        if (lens[s] > mx) mx = lens[s];
    }
    hb->b = (Batch){n, hb->tokens, hb->targets, hb->w, hb->pos, hb->cu, n_segs, mx};
}

static Backend *cpu(DType t)
{
    char err[256];
    Backend *be = backend_cpu_create(t, err, sizeof err);
    if (!be) fail_msg("backend_cpu_create: %s", err);
    return be;
}

/* Whole-model gradient against central differences, in double precision. */
static void test_model_gradient_fd(void **state)
{
    (void)state;
    Backend *be = cpu(DT_F64);
    ModelConfig c = micro_config();
    Model m;
    char err[512];
    assert_int_equal(0, model_create(&m, &c, be, 64, 0, err, sizeof err));
    assert_int_equal(0, model_init_params(&m, 3, NULL, 0));
    /* larger weights than the 0.02 init so every path carries signal */
    double *p = (double *)m.params;
    Rng r = rng_seed(5, 1);
    for (size_t i = 0; i < m.n_params; i++) p[i] += 0.3 * (rng_uniform(&r) - 0.5);
    HostBatch hb;
    const int lens[] = {5, 1, 7};
    host_batch(&hb, lens, 3, c.vocab, 9, 0.1f);
    model_zero_grads(&m);
    model_forward_backward(&m, &hb.b, NULL);
    const double *g = (const double *)m.grads;
    /* check a spread of parameters in every tensor */
    const double h = 1e-5;
    double worst = 0;
    for (int ti = 0; ti < m.layout.n_tensors; ti++) {
        const ParamTensor *t = &m.layout.tensors[ti];
        size_t n = (size_t)t->rows * t->cols;
        for (size_t k = 0; k < n; k += 1 + n / 7) {
            size_t i = t->offset + k;
            double keep = p[i];
            p[i] = keep + h;
            double lp = model_forward(&m, &hb.b, NULL);
            p[i] = keep - h;
            double lm = model_forward(&m, &hb.b, NULL);
            p[i] = keep;
            double fd = (lp - lm) / (2 * h);
            /* double precision: central differences are good to ~1e-9 here */
            if (fabs(g[i] - fd) > 1e-8 + 1e-5 * fabs(fd)) print_error("tensor %s element %zu\n", t->name, k);
            assert_close(g[i], fd, 1e-8, 1e-5);
            if (fabs(g[i] - fd) > worst) worst = fabs(g[i] - fd);
        }
    }
    /* --recompute redoes each layer's forward in the backward: the same gradients */
    Model mr;
    assert_int_equal(0, model_create(&mr, &c, be, 64, 1, err, sizeof err));
    memcpy(mr.params, m.params, m.n_params * sizeof(double));
    model_zero_grads(&mr);
    double loss_r = model_forward_backward(&mr, &hb.b, NULL);
    assert_close(loss_r, model_forward(&m, &hb.b, NULL), 1e-14, 1e-12);
    for (size_t i = 0; i < m.n_params; i++) assert_close(((double *)mr.grads)[i], g[i], 1e-14, 1e-10);
    model_free(&mr);
    model_free(&m);
    be->destroy(be);
}

/* One row of three segments == the three sequences run one by one (f32, tolerance 1e-5 rel). */
static void test_packed_equals_unpacked(void **state)
{
    (void)state;
    Backend *be = cpu(DT_F32);
    ModelConfig c;
    assert_int_equal(0, model_preset("tiny", &c));
    Model m;
    char err[512];
    assert_int_equal(0, model_create(&m, &c, be, 256, 0, err, sizeof err));
    assert_int_equal(0, model_init_params(&m, 11, NULL, 0));
    const int lens[] = {40, 1, 90};
    HostBatch packed;
    host_batch(&packed, lens, 3, c.vocab, 21, 0.01f);
    float per_packed[256];
    model_zero_grads(&m);
    double loss_packed = model_forward_backward(&m, &packed.b, per_packed);
    float *g_packed = malloc(m.n_params * sizeof(float)), *g_sep = malloc(m.n_params * sizeof(float));
    model_get_grads(&m, g_packed);

    model_zero_grads(&m);
    double loss_sep = 0;
    int off = 0;
    for (int s = 0; s < 3; s++) {
        Batch b = {lens[s], packed.tokens + off, packed.targets + off, packed.w + off, packed.pos + off,
                   (int32_t[]){0, lens[s]}, 1, lens[s]};
        float per[256];
        loss_sep += model_forward_backward(&m, &b, per);
        for (int t = 0; t < lens[s]; t++) assert_close(per[t], per_packed[off + t], 1e-5, 1e-5);
        off += lens[s];
    }
    model_get_grads(&m, g_sep);
    assert_close(loss_packed, loss_sep, 1e-6, 1e-5);
    double gmax = 0;
    for (size_t i = 0; i < m.n_params; i++) gmax = fmax(gmax, fabs(g_sep[i]));
    for (size_t i = 0; i < m.n_params; i++) assert_close(g_packed[i], g_sep[i], 1e-5 * gmax, 1e-4);
    free(g_packed);
    free(g_sep);
    model_free(&m);
    be->destroy(be);
}

/* The optional fused cross-entropy changes nothing: a backend without it (NULL, as the CUDA
 * backend) gets the model's composition of the two ops, with the same bits. */
static void test_optional_fused_crossentropy(void **state)
{
    (void)state;
    Backend *be = cpu(DT_F32);
    assert_non_null(be->crossentropy_fused);
    ModelConfig c;
    assert_int_equal(0, model_preset("tiny", &c));
    Model m;
    char err[512];
    assert_int_equal(0, model_create(&m, &c, be, 128, 0, err, sizeof err));
    assert_int_equal(0, model_init_params(&m, 5, NULL, 0));
    const int lens[] = {70, 3, 55};
    HostBatch hb;
    host_batch(&hb, lens, 3, c.vocab, 9, 0.02f);
    float per[2][128];
    float *g[2] = { malloc(m.n_params * sizeof(float)), malloc(m.n_params * sizeof(float)) };
    double loss[2];
    for (int k = 0; k < 2; k++) {
        if (k == 1) be->crossentropy_fused = NULL;
        model_zero_grads(&m);
        loss[k] = model_forward_backward(&m, &hb.b, per[k]);
        model_get_grads(&m, g[k]);
    }
    assert_true(loss[0] == loss[1]);
    assert_memory_equal(per[0], per[1], 128 * sizeof(float));
    assert_memory_equal(g[0], g[1], m.n_params * sizeof(float));
    free(g[0]);
    free(g[1]);
    model_free(&m);
    be->destroy(be);
}

/* packing-lw: the loss and gradient of a global batch equal LongAlign Eq. 2,
 * (1/M) sum_i L_i / N_i, computed sequence by sequence. */
static void test_packing_lw_equals_eq2(void **state)
{
    (void)state;
    const Strategy *s = strategy_find("packing-lw");
    assert_non_null(s);
    Sample samples[24];
    Rng r = rng_seed(4, 4);
    for (int i = 0; i < 24; i++) {
        samples[i].len = 10 + (int32_t)rng_below(&r, 150);
        samples[i].target = 1 + (int32_t)rng_below(&r, (uint64_t)samples[i].len - 1);
    }
    PlanConfig pc = plan_config_default(s);
    pc.world_size = 2;
    pc.grad_accum = 2;
    pc.max_tokens = 400;
    Plan plan;
    char err[512];
    assert_int_equal(0, plan_make(s, &pc, samples, 24, &plan, err, sizeof err));

    Backend *be = cpu(DT_F32);
    ModelConfig c;
    assert_int_equal(0, model_preset("tiny", &c));
    Task *task;
    assert_int_equal(0, task_create(&task, "markov", c.vocab, 1, 1, err, sizeof err));
    Model m;
    assert_int_equal(0, model_create(&m, &c, be, 400, 0, err, sizeof err));
    assert_int_equal(0, model_init_params(&m, 2, NULL, 0));
    BatchBuf bb;
    assert_int_equal(0, batch_buf_init(&bb, 400));

    /* the plan's step 0, every micro-batch of every rank */
    model_zero_grads(&m);
    double loss_plan = 0;
    int M = 0;
    for (int micro = 0; micro < plan.micro_steps; micro++)
        for (int rank = 0; rank < pc.world_size; rank++) {
            const MicroBatch *mb = plan_mb(&plan, 0, micro, rank);
            if (!mb->n_rows) continue;
            batch_build(&bb, &plan, mb, task, 1);
            loss_plan += model_forward_backward(&m, &bb.batch, NULL);
            M += bb.sequences;
        }
    float *g_plan = malloc(m.n_params * sizeof(float)), *g_eq2 = malloc(m.n_params * sizeof(float));
    model_get_grads(&m, g_plan);

    /* Eq. 2 sequence by sequence: each sequence alone, its targets weighted 1/(M N_i) */
    model_zero_grads(&m);
    double loss_eq2 = 0;
    int seen = 0;
    for (int micro = 0; micro < plan.micro_steps; micro++)
        for (int rank = 0; rank < pc.world_size; rank++) {
            const MicroBatch *mb = plan_mb(&plan, 0, micro, rank);
            for (int ri = 0; ri < mb->n_rows; ri++) {
                const Row *row = &plan.rows[mb->first_row + ri];
                for (int k = 0; k < row->n_segments; k++) {
                    Segment one = plan.segs[row->first_segment + k];
                    one.weight = 1.0f / ((float)M * (float)one.target);
                    Row r1 = {0, 1, one.len, one.len, one.len};
                    MicroBatch mb1 = {0, 1};
                    Plan p1 = plan;
                    p1.segs = &one;
                    p1.rows = &r1;
                    batch_build(&bb, &p1, &mb1, task, 1);
                    loss_eq2 += model_forward_backward(&m, &bb.batch, NULL);
                    seen++;
                }
            }
        }
    assert_int_equal(seen, M);
    model_get_grads(&m, g_eq2);
    assert_close(loss_plan, loss_eq2, 1e-6, 1e-5);
    double gmax = 0;
    for (size_t i = 0; i < m.n_params; i++) gmax = fmax(gmax, fabs(g_eq2[i]));
    for (size_t i = 0; i < m.n_params; i++) assert_close(g_plan[i], g_eq2[i], 1e-5 * gmax, 1e-4);
    free(g_plan);
    free(g_eq2);
    batch_buf_free(&bb);
    model_free(&m);
    task_free(task);
    plan_free(&plan);
    be->destroy(be);
}

/* Training learns the Markov chain: after 60 steps of 8 sequences x 128 tokens the loss is
 * below the midpoint between an untrained model (ln V) and the chain's entropy rate H. */
static void test_training_learns(void **state)
{
    (void)state;
    Backend *be = cpu(DT_F32);
    ModelConfig c;
    assert_int_equal(0, model_preset("tiny", &c));
    MarkovChain mc;
    assert_int_equal(0, markov_create(&mc, c.vocab, 4, 1));
    double H = markov_entropy_rate(&mc);
    assert_true(H > 0.1 && H < log(4.0) + 1e-9);
    Model m;
    char err[512];
    const int L = 128, B = 8;
    assert_int_equal(0, model_create(&m, &c, be, L * B, 0, err, sizeof err));
    assert_int_equal(0, model_init_params(&m, 1, NULL, 0));
    int32_t *tok = malloc(sizeof(int32_t) * L * B), *tgt = malloc(sizeof(int32_t) * L * B),
            *pos = malloc(sizeof(int32_t) * L * B), cu[B + 1];
    float *w = malloc(sizeof(float) * L * B);
    AdamWConfig opt = {3e-3f, 0.9f, 0.95f, 1e-8f, 0.0f};
    double first = 0, last = 0;
    const int steps = 60;
    for (int step = 0; step < steps; step++) {
        for (int s = 0; s < B; s++) {
            markov_tokens(&mc, 1, (int64_t)step * B + s, tok + s * L, L);
            for (int t = 0; t < L; t++) {
                pos[s * L + t] = t;
                tgt[s * L + t] = t == L - 1 ? 0 : tok[s * L + t + 1];
                w[s * L + t] = t == L - 1 ? 0.0f : 1.0f / (float)(B * (L - 1));
            }
            cu[s] = s * L;
        }
        cu[B] = B * L;
        Batch b = {L * B, tok, tgt, w, pos, cu, B, L};
        double loss = model_forward_backward(&m, &b, NULL);
        model_optimizer_step(&m, &opt, 1.0f);
        if (step == 0) first = loss;
        last = loss;
    }
    double bound = 0.5 * (log((double)c.vocab) + H);
    print_message("training: first loss %.3f, last %.3f, ln V %.3f, entropy rate %.3f, bound %.3f\n", first, last,
                  log((double)c.vocab), H, bound);
    assert_true(fabs(first - log((double)c.vocab)) < 0.3);
    assert_true(last < bound);
    free(tok);
    free(tgt);
    free(pos);
    free(w);
    model_free(&m);
    markov_free(&mc);
    be->destroy(be);
}

/* Out of memory is reported with the need and what to try, not a crash, and nothing leaks. */
static void test_model_too_big(void **state)
{
    (void)state;
    Backend *be = cpu(DT_F32);
    ModelConfig c;
    assert_int_equal(0, model_preset("tiny", &c));
    Model m;
    char err[512] = "";
    /* micro-batches of 2^30 tokens need terabytes of activations: refused with a message */
    size_t need = model_bytes_needed(&c, DT_F32, DT_F32, 1 << 30, 0);
    assert_true(need > ((size_t)1 << 40));
    assert_int_equal(-1, model_create(&m, &c, be, 1 << 30, 0, err, sizeof err));
    assert_non_null(strstr(err, "out of memory"));
    assert_non_null(strstr(err, "--recompute"));
    assert_int_equal(0, (int)be->bytes_in_use(be));
    be->destroy(be);
}

/* batch_check: what the CUDA attention needs of a batch. max_seqlen below the longest segment
 * is refused (the GPU would drop the tiles past it); batches from batch_build all pass. */
static void test_batch_check(void **state)
{
    (void)state;
    int32_t tok[10] = {0}, pos[10] = {0}, cu[4] = {0, 3, 9, 10};
    float w[10] = {0};
    char err[256];
    Batch b = {10, tok, tok, w, pos, cu, 3, 6};
    assert_int_equal(0, batch_check(&b, err, sizeof err));
    b.max_seqlen = 5;
    assert_int_equal(-1, batch_check(&b, err, sizeof err));
    assert_non_null(strstr(err, "max_seqlen 5"));
    b.max_seqlen = 6;
    cu[2] = 3;   /* an empty segment */
    assert_int_equal(-1, batch_check(&b, err, sizeof err));
    cu[2] = 9;
    cu[3] = 11;  /* past the tokens */
    assert_int_equal(-1, batch_check(&b, err, sizeof err));
    cu[3] = 10;

    /* every micro-batch of every strategy's plan over varied lengths, padded rows too */
    Sample samples[64];
    Rng r = rng_seed(9, 9);
    for (int i = 0; i < 64; i++) {
        samples[i].len = 1 + (int32_t)rng_below(&r, 300);
        samples[i].target = (int32_t)rng_below(&r, (uint64_t)samples[i].len);   /* 0 .. len - 1 */
    }
    Task *task;
    assert_int_equal(0, task_create(&task, "markov", 256, 1, 1, err, sizeof err));
    for (int si = 0; si < N_STRATEGIES; si++) {
        PlanConfig pc = plan_config_default(STRATEGIES[si]);
        pc.world_size = 2;
        pc.max_tokens = 256;
        Plan plan;
        if (plan_make(STRATEGIES[si], &pc, samples, 64, &plan, err, sizeof err) != 0) fail_msg("%s: %s", STRATEGIES[si]->name, err);
        BatchBuf bb;
        assert_int_equal(0, batch_buf_init(&bb, plan_max_mb_tokens(&plan)));
        size_t n = (size_t)plan.n_steps * plan.micro_steps * pc.world_size;
        for (size_t i = 0; i < n; i++) {
            if (!plan.mbs[i].n_rows) continue;
            batch_build(&bb, &plan, &plan.mbs[i], task, 1);
            assert_int_equal(0, batch_check(&bb.batch, err, sizeof err));
        }
        batch_buf_free(&bb);
        plan_free(&plan);
    }
    task_free(task);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_gradient_fd),
        cmocka_unit_test(test_packed_equals_unpacked),
        cmocka_unit_test(test_optional_fused_crossentropy),
        cmocka_unit_test(test_packing_lw_equals_eq2),
        cmocka_unit_test(test_training_learns),
        cmocka_unit_test(test_model_too_big),
        cmocka_unit_test(test_batch_check),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
