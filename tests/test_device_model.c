/* The device model (bench/analysis/device_model.c): its FLOP and byte counts against values worked
 * out by hand for the tiny shape, a micro-batch's and a plan's time from them, monotonicity.
 * `labench plan --device` on the command line: tests/test_cli.c. */
#include "tests/test_util.h"

#include "bench/analysis/device_model.h"
#include "model/config.h"

static ModelConfig tiny(void)
{
    ModelConfig m;
    assert_int_equal(0, model_preset("tiny", &m));   /* V 256, C 64, F 176, L 2, H 4, Hkv 2, D 16 */
    return m;
}

static void test_counts_by_hand(void **state)
{
    (void)state;
    ModelConfig m = tiny();
    /* per layer: qkv 64 x (4+2+2) x 16 = 8192, o 4096, gate+up+down 3 x 64 x 176 = 33792 -> 46080;
     * 2 layers 92160, + head 256 x 64 = 16384 -> 108544 weights; x 2 FLOPs. */
    assert_close(dm_matmul_flops_per_token(&m), 217088, 0, 1e-12);
    /* 2 layers x 4 x 100^2/2 x 4 heads x 16 */
    assert_close(dm_attn_fwd_flops(&m, 100), 2560000, 0, 1e-12);
    /* per layer: norms 2 x 4C = 512, RoPE 4 (4+2) 16 = 384, SwiGLU 6F = 1056, residuals 12C = 768
     * -> 2720; x 2 layers + final norm 4C = 256 + cross-entropy 8V = 2048 -> 7744 bytes */
    assert_close(dm_mem_bytes_per_token(&m), 7744, 0, 1e-12);
    /* 7b: 2 x (32 x (3 x 4096^2 + 4096^2 + 3 x 4096 x 11008) + 32000 x 4096) */
    ModelConfig b;
    assert_int_equal(0, model_preset("7b", &b));
    assert_close(dm_matmul_flops_per_token(&b), 2.0 * (32.0 * (4 * 4096.0 * 4096 + 3 * 4096.0 * 11008) + 32000.0 * 4096),
                 0, 1e-12);
}

static void test_devices_and_options(void **state)
{
    (void)state;
    DeviceModel d;
    char err[256];
    assert_int_equal(0, dm_device_defaults("a800", &d));
    assert_close(d.p[DM_PEAK].value, 312e12, 0, 1e-12);
    assert_close(d.p[DM_HBM].value, 2039e9, 0, 1e-12);
    assert_close(d.p[DM_NVLINK].value, 200e9, 0, 1e-12);
    assert_int_equal(0, dm_device_defaults("h200", &d));
    assert_close(d.p[DM_PEAK].value, 989e12, 0, 1e-12);
    assert_close(d.p[DM_HBM].value, 4800e9, 0, 1e-12);
    assert_string_equal("h100", dm_comm_system("h200"));
    assert_int_equal(-1, dm_device_defaults("v100", &d));
    for (int i = 0; i < DM_N_PARAMS; i++) assert_true(strlen(d.p[i].source) > 10);   /* every one has a source */
    assert_int_equal(1, dm_set_option(&d, "peak-tflops", "100", err, sizeof err));
    assert_close(d.p[DM_PEAK].value, 100e12, 0, 1e-12);
    assert_non_null(strstr(d.p[DM_PEAK].source, "--peak-tflops"));
    assert_int_equal(1, dm_set_option(&d, "framework-ms", "250", err, sizeof err));
    assert_close(d.p[DM_FRAMEWORK].value, 0.25, 0, 1e-12);
    assert_int_equal(-1, dm_set_option(&d, "hbm-gbps", "0", err, sizeof err));
    assert_non_null(strstr(err, "--hbm-gbps"));
    assert_int_equal(-1, dm_set_option(&d, "matmul-eff", "1.5", err, sizeof err));
    assert_int_equal(-1, dm_set_option(&d, "launch-us", "-1", err, sizeof err));
    assert_int_equal(0, dm_set_option(&d, "comm", "ddp", err, sizeof err));
}

/* A plan of one step, one micro-step, W ranks, rank r holding the rows given. */
typedef struct {
    Plan p;
    MicroBatch mbs[4];
    Row rows[8];
    Segment segs[16];
} TinyPlan;

static void add_row(TinyPlan *t, int rank, const int *lens, int n, int padded, int capacity)
{
    Row *r = &t->rows[t->p.n_rows];
    MicroBatch *mb = &t->mbs[rank];
    if (mb->n_rows == 0) mb->first_row = (int32_t)t->p.n_rows;
    mb->n_rows++;
    r->first_segment = (int32_t)t->p.n_segs;
    r->n_segments = n;
    r->tokens = 0;
    for (int i = 0; i < n; i++) {
        t->segs[t->p.n_segs++] = (Segment){0, lens[i], lens[i] - 1, 1.0f};
        r->tokens += lens[i];
    }
    r->padded_len = padded ? padded : r->tokens;
    r->capacity = capacity ? capacity : r->padded_len;
    t->p.n_rows++;
}

static void plan_init(TinyPlan *t, int W)
{
    memset(t, 0, sizeof *t);
    t->p.cfg.world_size = W;
    t->p.cfg.sync = SYNC_MICRO;
    t->p.n_steps = 1;
    t->p.micro_steps = 1;
    t->p.mbs = t->mbs;
    t->p.rows = t->rows;
    t->p.segs = t->segs;
}

static void test_micro_batch_by_hand(void **state)
{
    (void)state;
    ModelConfig m = tiny();
    DeviceModel d;
    assert_int_equal(0, dm_device_defaults("a800", &d));
    TinyPlan t;
    plan_init(&t, 1);
    int lens[] = {100, 300};
    add_row(&t, 0, lens, 2, 0, 1000);
    DmMbTime x;
    dm_micro_batch(&d, &m, &t.p, &t.mbs[0], &x);
    /* recompute: GEMMs 1 + 2 + 1 passes, flash attention 1 + 2.5 + 1 */
    assert_close(x.computed_tokens, 400, 0, 1e-12);
    assert_close(x.matmul_s, 400 * 4 * 217088 / (312e12 * 0.70), 0, 1e-12);
    double e = 0.76 + 0.24 * 16 / 128.0;   /* head dim 16 */
    double att = 4.5 * 2560000 / (312e12 * 0.65 * e * 100 / 700) + 4.5 * 9 * 2560000 / (312e12 * 0.65 * e * 300 / 900);
    assert_close(x.attn_s, att, 0, 1e-12);
    assert_close(x.mem_s, 400 * 4 * 7744 / (2039e9 * 0.70), 0, 1e-12);
    assert_close(x.launch_s, (4 * 2 * 30 + 20) * 5e-6, 0, 1e-12);
    assert_close(x.total_s, x.matmul_s + x.attn_s + x.mem_s + x.launch_s, 0, 1e-12);
    /* the whole buffer: 1000 tokens, the 600-token tail one segment more */
    d.pack_compute = DM_PACK_FULL;
    DmMbTime f;
    dm_micro_batch(&d, &m, &t.p, &t.mbs[0], &f);
    assert_close(f.computed_tokens, 1000, 0, 1e-12);
    assert_close(f.matmul_s, 2.5 * x.matmul_s, 0, 1e-12);
    assert_close(f.attn_s, att + 4.5 * 36 * 2560000 / (312e12 * 0.65 * e * 600 / 1200), 0, 1e-12);
    /* no recompute: 3 passes, attention 3.5 */
    d.pack_compute = DM_PACK_REAL;
    d.recompute = 0;
    dm_micro_batch(&d, &m, &t.p, &t.mbs[0], &f);
    assert_close(f.matmul_s, 0.75 * x.matmul_s, 0, 1e-12);
    assert_close(f.attn_s, att * 3.5 / 4.5, 0, 1e-12);
    /* from a recorded shape: one segment of 300 tokens is exactly dm_micro_batch's time */
    d.recompute = 1;
    TinyPlan one;
    plan_init(&one, 1);
    add_row(&one, 0, &lens[1], 1, 0, 0);
    dm_micro_batch(&d, &m, &one.p, &one.mbs[0], &x);
    assert_close(dm_shape_seconds(&d, &m, 300, 300.0 * 300), x.total_s, 0, 1e-12);
    assert_close(dm_shape_seconds(&d, &m, 0, 0), 0, 0, 0);
}

static double one_segment(const DeviceModel *d, const ModelConfig *m, int s)
{
    TinyPlan t;
    plan_init(&t, 1);
    add_row(&t, 0, &s, 1, 0, 0);
    DmMbTime x;
    dm_micro_batch(d, m, &t.p, &t.mbs[0], &x);
    return x.total_s;
}

static void test_monotone(void **state)
{
    (void)state;
    const char *models[] = {"tiny", "7b", "chatglm3-6b"};
    for (int k = 0; k < 3; k++) {
        ModelConfig m;
        assert_int_equal(0, model_preset(models[k], &m));
        for (int dv = 0; DM_DEVICES[dv]; dv++) {
            DeviceModel d;
            assert_int_equal(0, dm_device_defaults(DM_DEVICES[dv], &d));
            double prev = 0, prev_eff = 0;
            for (int s = 1; s <= 131072; s = s < 64 ? s + 1 : s * 5 / 4) {
                double t = one_segment(&d, &m, s), e = dm_attn_eff(&d, &m, s);
                if (!(t > prev) || !(e >= prev_eff)) {
                    print_error("%s on %s: segment %d: %g s, efficiency %g (before %g, %g)\n", models[k],
                                DM_DEVICES[dv], s, t, e, prev, prev_eff);
                    fail();
                }
                prev = t;
                prev_eff = e;
                /* one segment of 2s tokens never costs less than two of s */
                TinyPlan two;
                plan_init(&two, 1);
                int lens[] = {s, s};
                add_row(&two, 0, lens, 2, 0, 0);
                DmMbTime x;
                dm_micro_batch(&d, &m, &two.p, &two.mbs[0], &x);
                assert_true(one_segment(&d, &m, 2 * s) >= x.total_s);
            }
        }
    }
}

static void test_plan_by_hand(void **state)
{
    (void)state;
    ModelConfig m = tiny();
    DeviceModel d;
    assert_int_equal(0, dm_device_defaults("a800", &d));
    CommConfig c;
    assert_int_equal(0, comm_system_defaults("a800", &c));   /* kind none: compute only */
    TinyPlan t;
    plan_init(&t, 2);
    int a = 100, b = 300;
    add_row(&t, 0, &a, 1, 0, 0);
    add_row(&t, 1, &b, 1, 0, 0);
    double ta = one_segment(&d, &m, a), tb = one_segment(&d, &m, b);
    DmPlanPrediction r;
    dm_predict_plan(&d, &m, &c, &t.p, &r);
    assert_close(r.compute_seconds, tb, 0, 1e-12);
    assert_close(r.bubble_seconds, (tb - ta) / 2, 0, 1e-12);
    assert_close(r.comm_seconds, 0, 0, 0);
    assert_close(r.framework_seconds, 1.0, 0, 1e-12);
    double opt = 30.0 * (double)model_param_count(&m) / (2039e9 * 0.7);
    assert_close(r.optimizer_seconds, opt, 0, 1e-12);
    assert_close(r.wall_seconds, tb + 1.0 + opt, 0, 1e-12);
    assert_close(r.tokens_per_s, 400 / r.wall_seconds, 0, 1e-12);
    double model_flops = 3 * 217088.0 * 400 + 3.5 * (2560000 + 9 * 2560000);
    assert_close(r.mfu, model_flops / (2 * 312e12 * r.wall_seconds), 0, 1e-12);
    assert_int_equal(1, r.micro_steps_with_work);
    /* ZeRO-3 + offload: the comm model's costs, one more gather for the recompute, and the
     * per-layer fixed cost 4 x (L + 2) times; the optimizer on the host */
    c.kind = COMM_ZERO3_OFFLOAD;
    dm_predict_plan(&d, &m, &c, &t.p, &r);
    double S = 2.0 * (double)model_param_count(&m);
    double extra = 0.5 * S / r.comm.bus_Bps + 1 * c.latency_s + S / 2 / c.pcie_h2d_Bps + 4 * 4 * 1e-3;
    assert_close(r.comm_seconds, r.comm.per_micro_step_s + r.comm.per_step_s + extra, 0, 1e-12);
    assert_close(r.optimizer_seconds, 0, 0, 0);
    assert_close(r.wall_seconds, tb + 1.0 + r.comm_seconds, 0, 1e-12);
    assert_close(r.comm_share, r.comm_seconds / r.wall_seconds, 0, 1e-12);
    /* --sync step: one sync point per step, the ranks' sums */
    t.p.cfg.sync = SYNC_STEP;
    DmPlanPrediction s;
    dm_predict_plan(&d, &m, &c, &t.p, &s);
    assert_close(s.wall_seconds, r.wall_seconds, 0, 1e-12);
    /* more tokens on the slow rank never predict less */
    t.segs[1].len = 400;
    t.rows[1].tokens = t.rows[1].padded_len = t.rows[1].capacity = 400;
    DmPlanPrediction more;
    dm_predict_plan(&d, &m, &c, &t.p, &more);
    assert_true(more.wall_seconds > s.wall_seconds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_by_hand),
        cmocka_unit_test(test_devices_and_options),
        cmocka_unit_test(test_micro_batch_by_hand),
        cmocka_unit_test(test_monotone),
        cmocka_unit_test(test_plan_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
