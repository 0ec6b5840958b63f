/* labench predict: the time fit recovers known coefficients, the DP arithmetic on hand-made
 * timings, shapes of planned micro-batches, the effect of a per-micro-step communication cost on
 * the strategies' ranking, and the command end to end on a results file written by
 * results_write (plus its refusals of unusable input). Run from the repository root. */
#include "tests/test_util.h"

#include <fcntl.h>
#include <sys/wait.h>

#include "bench/cli/cli.h"
#include "bench/results/measured.h"
#include "bench/comm/comm_model.h"
#include "bench/input/hist.h"
#include "bench/analysis/plan_metrics.h"
#include "bench/analysis/predict.h"
#include "bench/results/results.h"
#include "bench/input/sample.h"
#include "strategies/strategy.h"

/* The time model the synthetic timings come from (the numbers). */
#define A_TOK 2e-6
#define B_SQ 3e-10
#define C_SEG 1e-4
#define D_MB 5e-3

/* A micro-batch row with only the shape the fit reads. */
#define SHAPE(r, g, real, comp, sq) \
    {.rows = (r), .segments = (g), .real_tokens = (real), .computed_tokens = (comp), .sum_seq_len_sq = (sq)}

static double true_time(const MbRow *s)
{
    return A_TOK * (double)s->computed_tokens + B_SQ * s->sum_seq_len_sq + C_SEG * s->segments + D_MB;
}

/* Micro-batches of 1..30 segments, each 16..8192 tokens: shapes like packs and padded batches. */
static MbRow *random_shapes(int64_t n, uint64_t seed)
{
    MbRow *x = calloc((size_t)n, sizeof *x);
    assert_non_null(x);
    Rng r = rng_seed(seed, 5);
    for (int64_t i = 0; i < n; i++) {
        int segs = 1 + (int)rng_below(&r, 30);
        x[i].rows = 1;
        x[i].segments = segs;
        for (int s = 0; s < segs; s++) {
            double len = 16 + (double)rng_below(&r, 8192 - 16 + 1);
            x[i].computed_tokens += (int64_t)len;
            x[i].sum_seq_len_sq += len * len;
        }
        x[i].real_tokens = x[i].computed_tokens;
    }
    return x;
}

static void test_fit_recovers_coefficients(void **state)
{
    (void)state;
    const int64_t n = 3000;
    MbRow *x = random_shapes(n, 11);
    double *y = malloc(sizeof *y * (size_t)n);
    assert_non_null(y);
    Rng r = rng_seed(12, 6);
    for (int64_t i = 0; i < n; i++) {
        /* +-0.5% multiplicative noise, uniform. */
        double noise = 0.01 * (rng_uniform(&r) - 0.5);
        y[i] = true_time(&x[i]) * (1 + noise);
    }
    /* Every 5th busy record held back: 600 of 3000. An idle rank among them is ignored. */
    x[7].rows = 0;
    y[7] = 123.0;   /* would ruin the fit if it were used */
    TimeFit f;
    char err[256];
    assert_int_equal(0, time_fit(x, y, n, 5, &f, err, sizeof err));
    assert_int_equal(n - 1, f.n_fit + f.n_holdout);
    assert_int_equal((n - 1) / 5, f.n_holdout);
    assert_close(f.per_token, A_TOK, 0, 0.03);
    assert_close(f.per_token_sq, B_SQ, 0, 0.03);
    assert_close(f.per_segment, C_SEG, 0, 0.15);   /* the smallest term: 1e-4 beside ~0.1 s */
    assert_close(f.intercept, D_MB, 0, 0.15);
    assert_int_equal(0, f.dropped);
    assert_true(f.holdout_mape < 0.005);   /* the noise is at most 0.5% */
    assert_true(f.holdout_wape < 0.005);
    assert_true(f.holdout_r2 > 0.999);
    assert_true(f.fit_r2 > 0.999);
    assert_int_equal(f.max_tokens > 0, 1);
    /* time_fit_eval is the formula, and 0 for an idle rank. */
    assert_close(time_fit_eval(&f, &x[0]), true_time(&x[0]), 0, 0.01);
    assert_true(time_fit_eval(&f, &x[7]) == 0.0);

    /* Without noise the fit is exact, and the held-back error is zero to rounding. */
    for (int64_t i = 0; i < n; i++) y[i] = true_time(&x[i]);
    assert_int_equal(0, time_fit(x, y, n, 4, &f, err, sizeof err));
    assert_close(f.per_token, A_TOK, 0, 1e-6);
    assert_close(f.per_token_sq, B_SQ, 0, 1e-6);
    assert_close(f.per_segment, C_SEG, 0, 1e-6);
    assert_close(f.intercept, D_MB, 0, 1e-6);
    assert_true(f.holdout_mape < 1e-9);
    free(x);
    free(y);
}

static void test_fit_non_negative_and_degenerate(void **state)
{
    (void)state;
    const int64_t n = 500;
    MbRow *x = random_shapes(n, 21);
    double *y = malloc(sizeof *y * (size_t)n);
    assert_non_null(y);
    TimeFit f;
    char err[256];

    /* A negative fixed cost is impossible: the least squares optimum would have one; the
     * constrained fit puts it at zero and says so. */
    for (int64_t i = 0; i < n; i++) y[i] = A_TOK * (double)x[i].computed_tokens - 2e-3;
    assert_int_equal(0, time_fit(x, y, n, 5, &f, err, sizeof err));
    assert_true(f.intercept == 0.0);
    assert_true(f.per_token >= 0 && f.per_token_sq >= 0 && f.per_segment >= 0);
    assert_true(f.dropped & 4);   /* bit 4: the intercept */

    /* One sequence per micro-batch (naive, sorted): segments is always 1, so the per-segment cost
     * and the intercept cannot be told apart; the fixed cost is reported as the intercept. */
    for (int64_t i = 0; i < n; i++) {
        x[i].segments = 1;
        x[i].sum_seq_len_sq = (double)x[i].computed_tokens * (double)x[i].computed_tokens;
        y[i] = true_time(&x[i]);
    }
    assert_int_equal(0, time_fit(x, y, n, 5, &f, err, sizeof err));
    assert_close(f.intercept, C_SEG + D_MB, 0, 1e-6);
    assert_true(f.per_segment == 0.0);
    assert_true(f.dropped & 8);
    assert_close(f.per_token, A_TOK, 0, 1e-6);
    assert_true(f.holdout_mape < 1e-9);

    /* Too few busy micro-batches to fit four terms. */
    assert_int_equal(-1, time_fit(x, y, 5, 5, &f, err, sizeof err));
    assert_non_null(strstr(err, "need at least"));
    free(x);
    free(y);
}

/* Two ranks, two micro-steps, one step: t = [[1, 3], [4, 1]] (micro-step x rank).
 *   --sync micro: max 3 + max 4 = 7; bubble (3-1) + (4-1) = 5.
 *   --sync step:  rank 0: 1+4 = 5, rank 1: 3+1 = 4; max 5; bubble 1.
 * Communication 0.5 s per micro-step, 1 s per step: 2 x 0.5 + 1 = 2 s. Optimizer 0.25 s/step. */
static void test_dp_by_hand(void **state)
{
    (void)state;
    MbRow x[4] = {SHAPE(1, 1, 10, 10, 100), SHAPE(1, 1, 30, 30, 900), SHAPE(1, 1, 40, 40, 1600),
                  SHAPE(1, 1, 10, 10, 100)};
    double t[4] = {1, 3, 4, 1};
    CommCost c = {0};
    c.per_micro_step_s = 0.5;
    c.per_step_s = 1.0;
    DpPrediction d;
    predict_dp(x, t, 1, 2, 2, SYNC_MICRO, 0.25, &c, &d);
    assert_int_equal(1, d.steps);
    assert_int_equal(2, d.micro_steps);
    assert_int_equal(2, d.sync_points);
    assert_int_equal(4, d.micro_batches);
    assert_int_equal(90, d.real_tokens);
    assert_int_equal(40, d.max_mb_tokens);
    assert_close(d.max_sum_s, 7, 0, 1e-12);
    assert_close(d.bubble_s, 5, 0, 1e-12);
    assert_close(d.comm_s, 2, 0, 1e-12);
    assert_close(d.compute_wall_s, 7.25, 0, 1e-12);
    assert_close(d.comm_wall_s, 9.25, 0, 1e-12);
    assert_close(d.bubble, 5 / (2 * 7.25), 0, 1e-12);
    assert_close(d.bubble_comm, 5 / (2 * 9.25), 0, 1e-12);
    assert_close(d.eff_tps, 90 / 7.25, 0, 1e-12);
    assert_close(d.eff_tps_comm, 90 / 9.25, 0, 1e-12);

    predict_dp(x, t, 1, 2, 2, SYNC_STEP, 0.25, &c, &d);
    assert_int_equal(1, d.sync_points);
    assert_close(d.max_sum_s, 5, 0, 1e-12);
    assert_close(d.bubble_s, 1, 0, 1e-12);
    assert_close(d.comm_s, 2, 0, 1e-12);   /* the same communication under either sync model */

    /* Optimizer on the host (zero3-offload): its GPU time leaves the with-comm wall. */
    c.optimizer_on_host = 1;
    predict_dp(x, t, 1, 2, 2, SYNC_MICRO, 0.25, &c, &d);
    assert_close(d.comm_wall_s, 9.0, 0, 1e-12);
    assert_close(d.compute_wall_s, 7.25, 0, 1e-12);

    /* No communication: the two walls agree. */
    predict_dp(x, t, 1, 2, 2, SYNC_MICRO, 0.25, NULL, &d);
    assert_close(d.comm_wall_s, d.compute_wall_s, 0, 1e-12);

    /* A micro-step where every rank idles is no sync point and pays no communication. */
    MbRow y[4] = {SHAPE(1, 1, 10, 10, 100), SHAPE(0, 0, 0, 0, 0), SHAPE(0, 0, 0, 0, 0), SHAPE(0, 0, 0, 0, 0)};
    double u[4] = {2, 0, 0, 0};
    c.optimizer_on_host = 0;
    predict_dp(y, u, 1, 2, 2, SYNC_MICRO, 0, &c, &d);
    assert_int_equal(1, d.micro_steps);
    assert_close(d.comm_s, 1.5, 0, 1e-12);
    assert_close(d.bubble_s, 2, 0, 1e-12);
}

/* Samples of 3 and 5 tokens in one naive micro-batch of B = 2: two rows padded to 5.
 * Row of 3: the pads extend its segment to 5, so 25; row of 5: 25. Computed 10, real 8. */
static void test_shape_of_padded_batch(void **state)
{
    (void)state;
    Sample s[2] = {{3, 2}, {5, 2}};
    const Strategy *naive = strategy_find("naive");
    PlanConfig cfg = plan_config_default(naive);
    cfg.world_size = 1;
    cfg.micro_batch = 2;
    cfg.grad_accum = 1;
    cfg.max_tokens = 64;
    Plan p;
    char err[256];
    assert_int_equal(0, plan_make(naive, &cfg, s, 2, &p, err, sizeof err));
    MbRow x;
    predict_mb_shape(&p, plan_mb(&p, 0, 0, 0), &x);
    assert_int_equal(2, x.rows);
    assert_int_equal(2, x.segments);
    assert_int_equal(8, x.real_tokens);
    assert_int_equal(10, x.computed_tokens);
    assert_close(x.sum_seq_len_sq, 50, 0, 0);
    plan_free(&p);

    /* Packed: one row holding both, no pads: 3^2 + 5^2 = 34. */
    const Strategy *packing = strategy_find("packing");
    cfg = plan_config_default(packing);
    cfg.world_size = 1;
    cfg.max_tokens = 64;
    assert_int_equal(0, plan_make(packing, &cfg, s, 2, &p, err, sizeof err));
    predict_mb_shape(&p, plan_mb(&p, 0, 0, 0), &x);
    assert_int_equal(1, x.rows);
    assert_int_equal(2, x.segments);
    assert_int_equal(8, x.computed_tokens);
    assert_close(x.sum_seq_len_sq, 34, 0, 0);
    plan_free(&p);
}

/* DESIGN.md: with ZeRO-3 + offload every micro-step pays a fixed cost, which favours strategies
 * with fewer micro-steps. On LongAlign's defaults (W = 8; naive and sorted 1 sequence x 12
 * micro-steps, packing one 64k row x 1) over the synthetic LongAlign-like mix, time every
 * micro-batch with the cost function, then add the modelled zero3-offload cost of a
 * Llama-2-7B-shaped model on A800s. */
static void test_per_micro_step_cost_changes_the_ranking(void **state)
{
    (void)state;
    const int64_t n = 96 * 40;
    Sample *s = malloc(sizeof *s * (size_t)n);
    assert_non_null(s);
    plan_synthetic_mix(s, n, 3);
    TimeFit f = {0};
    f.per_token = A_TOK;
    f.per_token_sq = B_SQ;
    f.per_segment = C_SEG;
    f.intercept = D_MB;

    ModelConfig m;
    assert_int_equal(0, model_preset("7b", &m));
    CommConfig cc;
    assert_int_equal(0, comm_system_defaults("a800", &cc));
    cc.kind = COMM_ZERO3_OFFLOAD;
    CommCost cost;
    comm_cost(&cc, &m, 8, &cost);
    assert_true(cost.per_micro_step_s > 0.1);   /* a 7B model's shards: a few tenths of a second */

    const char *names[3] = {"naive", "sorted", "packing"};
    DpPrediction alone[3], with[3];
    for (int i = 0; i < 3; i++) {
        const Strategy *st = strategy_find(names[i]);
        PlanConfig cfg = plan_config_default(st);
        Plan p;
        char err[256];
        assert_int_equal(0, plan_make(st, &cfg, s, n, &p, err, sizeof err));
        /* Optimizer time 0: only the micro-step cost differs between the two runs. */
        assert_int_equal(0, predict_plan(&p, &f, 0.0, NULL, &alone[i]));
        assert_int_equal(0, predict_plan(&p, &f, 0.0, &cost, &with[i]));
        plan_free(&p);
        /* The communication is exactly per micro-step x micro-steps + per step x steps. */
        assert_close(with[i].comm_s,
                     cost.per_micro_step_s * (double)with[i].micro_steps + cost.per_step_s * (double)with[i].steps,
                     0, 1e-12);
        /* Every micro-step takes longer. */
        assert_true(with[i].comm_wall_s / (double)with[i].micro_steps >
                    alone[i].compute_wall_s / (double)alone[i].micro_steps);
        assert_close(with[i].max_sum_s, alone[i].max_sum_s, 0, 1e-12);
    }
    const int NAIVE = 0, SORTED = 1, PACKING = 2;
    /* Sorted has as many micro-steps as naive; packing about 12x fewer. */
    assert_int_equal(alone[NAIVE].micro_steps, alone[SORTED].micro_steps);
    assert_true(alone[SORTED].micro_steps >= 8 * alone[PACKING].micro_steps);
    assert_true(alone[SORTED].micro_steps <= 16 * alone[PACKING].micro_steps);

    /* Compute only, sorted is far ahead of naive... */
    double sorted_alone = alone[SORTED].eff_tps / alone[NAIVE].eff_tps;
    double sorted_with = with[SORTED].eff_tps_comm / with[NAIVE].eff_tps_comm;
    assert_true(sorted_alone > 1.5);
    /* ...and the fixed cost per micro-step, paid as often by both, shrinks its lead. */
    assert_true(sorted_with < sorted_alone);
    assert_true(sorted_with > 1.0);
    /* Packing pays it 12x less often, so it gains on sorted. */
    double pack_vs_sorted_alone = alone[PACKING].eff_tps / alone[SORTED].eff_tps;
    double pack_vs_sorted_with = with[PACKING].eff_tps_comm / with[SORTED].eff_tps_comm;
    assert_true(pack_vs_sorted_with > pack_vs_sorted_alone);
    print_message("sorted/naive %.3f -> %.3f; packing/sorted %.3f -> %.3f; micro-steps %lld/%lld/%lld\n",
                  sorted_alone, sorted_with, pack_vs_sorted_alone, pack_vs_sorted_with,
                  (long long)alone[NAIVE].micro_steps, (long long)alone[SORTED].micro_steps,
                  (long long)alone[PACKING].micro_steps);
    free(s);
}

/* ---- the command, end to end ---- */

#define SRC_SAMPLES 400
#define SRC_SCALE (1.0 / 16)
#define SRC_W 2

/* A results file as `labench train` writes it (results_write), with naive and packing timed
 * exactly by the cost function on the very plans train would run. Returns the measured
 * sum over sync points of the slowest rank of each ([0] naive, [1] packing). */
static void write_source(const char *path, const char *kind, int with_runs, double sync_max[2])
{
    Hist h;
    char err[512];
    assert_int_equal(0, hist_load("data/longalign-mix.hist", &h, err, sizeof err));
    Sample *s;
    int64_t n;
    assert_int_equal(0, sample_draw(&h, SRC_SAMPLES, SRC_SCALE, 1, &s, &n, err, sizeof err));
    hist_free(&h);

    static ModelConfig m;
    assert_int_equal(0, model_preset("tiny", &m));
    const char *names[2] = {"naive", "packing"};
    StrategyResult sr[2];
    RunResult rr[2];
    memset(sr, 0, sizeof sr);
    memset(rr, 0, sizeof rr);
    for (int i = 0; i < 2; i++) {
        const Strategy *st = strategy_find(names[i]);
        PlanConfig cfg = plan_config_default(st);
        cfg.world_size = SRC_W;
        cfg.max_tokens = 4096;
        Plan p;
        assert_int_equal(0, plan_make(st, &cfg, s, n, &p, err, sizeof err));
        sr[i].name = names[i];
        sr[i].cfg = cfg;
        plan_metrics_compute(&p, s, &sr[i].plan);
        RunResult *r = &rr[i];
        r->n_steps = r->metrics.steps = p.n_steps;
        r->n_recs = (int64_t)p.n_steps * p.micro_steps * SRC_W;
        r->recs = calloc((size_t)r->n_recs, sizeof *r->recs);
        r->loss_curve = calloc((size_t)p.n_steps, sizeof(double));
        r->step_wall_s = calloc((size_t)p.n_steps, sizeof(double));
        r->optimizer_s = calloc((size_t)p.n_steps, sizeof(double));
        r->grad_norm = calloc((size_t)p.n_steps, sizeof(double));
        assert_non_null(r->recs);
        MbRow *shapes = calloc((size_t)r->n_recs, sizeof *shapes);
        double *t = calloc((size_t)r->n_recs, sizeof *t);
        assert_non_null(shapes);
        assert_non_null(t);
        for (int64_t k = 0; k < r->n_recs; k++) {
            MbRow *x = &r->recs[k];
            x->step = (int32_t)(k / (p.micro_steps * SRC_W));
            x->micro = (int32_t)(k / SRC_W % p.micro_steps);
            x->rank = (int32_t)(k % SRC_W);
            predict_mb_shape(&p, &p.mbs[k], &shapes[k]);
            x->rows = shapes[k].rows;
            x->segments = x->sequences = shapes[k].segments;
            x->real_tokens = shapes[k].real_tokens;
            x->computed_tokens = shapes[k].computed_tokens;
            x->sum_seq_len_sq = shapes[k].sum_seq_len_sq;
            x->seconds = t[k] = x->rows > 0 ? true_time(&shapes[k]) : 0.0;
        }
        for (int k = 0; k < p.n_steps; k++) r->optimizer_s[k] = 0.01;
        DpPrediction d;
        predict_dp(shapes, t, p.n_steps, p.micro_steps, SRC_W, cfg.sync, 0, NULL, &d);
        if (sync_max) sync_max[i] = d.max_sum_s;
        snprintf(r->timing_source, sizeof r->timing_source, "synthetic");
        sr[i].run = with_runs ? r : NULL;
        free(shapes);
        free(t);
        plan_free(&p);
    }
    ResultsDoc doc = {0};
    doc.kind = kind;
    doc.command = "test_predict";
    doc.len_dist = "data/longalign-mix.hist";
    doc.samples = n;
    doc.len_scale = SRC_SCALE;
    doc.seed = 1;
    doc.backend = "cpu";
    doc.device = "test device";
    doc.model = &m;
    doc.n_params = model_param_count(&m);
    doc.steps = 0;
    doc.comm = "none";
    doc.strategies = sr;
    doc.n_strategies = 2;
    assert_int_equal(0, results_write(path, &doc, err, sizeof err));
    for (int i = 0; i < 2; i++) run_result_free(&rr[i]);
    free(s);
}

static void temp_path(char *buf, size_t n, const char *suffix)
{
    snprintf(buf, n, "/tmp/labench-test-predict-%ld-%s", (long)getpid(), suffix);
}

static json_t *find_named(json_t *arr, const char *key, const char *name)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        if (strcmp(json_string_value(json_object_get(o, key)), name) == 0) return o;
    }
    fail_msg("no %s \"%s\"", key, name);
    return NULL;
}

static double jget(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    if (b) v = json_object_get(v, b);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

/* Runs cmd_predict in a child (bad input exits the process), its stdout silenced and its stderr
 * kept in msg. Returns the exit status. */
static int predict_in_child(int argc, char **argv, char *msg, size_t n)
{
    char errpath[128];
    temp_path(errpath, sizeof errpath, "stderr");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int nul = open("/dev/null", O_WRONLY);
        if (fd < 0 || nul < 0) _exit(99);
        dup2(fd, 2);
        dup2(nul, 1);
        _exit(cmd_predict(argc, argv, "labench predict"));
    }
    int st = 0;
    assert_int_equal(pid, waitpid(pid, &st, 0));
    msg[0] = 0;
    FILE *f = fopen(errpath, "r");
    if (f) {
        size_t k = fread(msg, 1, n - 1, f);
        msg[k] = 0;
        fclose(f);
    }
    unlink(errpath);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_command_end_to_end(void **state)
{
    (void)state;
    char src[128], out[128];
    temp_path(src, sizeof src, "results.json");
    temp_path(out, sizeof out, "predict.json");
    double sync_max[2];
    write_source(src, "train", 1, sync_max);

    char *argv[] = {"predict", "--from", src, "--out", out, "--world-size", "2,16", "--comm", "zero3",
                    "--system", "h100", NULL};
    char msg[4096];
    assert_int_equal(0, predict_in_child(11, argv, msg, sizeof msg));
    json_error_t je;
    json_t *root = json_load_file(out, 0, &je);
    assert_non_null(root);
    assert_string_equal("labench-predict", json_string_value(json_object_get(root, "schema")));

    /* Packing's packs vary in segments and lengths: the exact timings give back the coefficients. */
    json_t *fits = json_object_get(root, "fits");
    assert_int_equal(2, json_array_size(fits));
    json_t *fp = find_named(fits, "strategy", "packing");
    assert_close(jget(fp, "per_computed_token_seconds", NULL), A_TOK, 0, 1e-5);
    assert_close(jget(fp, "per_seq_len_sq_seconds", NULL), B_SQ, 0, 1e-5);
    assert_close(jget(fp, "per_segment_seconds", NULL), C_SEG, 0, 1e-4);
    assert_close(jget(fp, "intercept_seconds", NULL), D_MB, 0, 1e-4);
    assert_true(jget(fp, "holdout_mape", NULL) < 1e-6);
    /* Naive runs one sequence per micro-batch: its fixed cost is c + d. */
    json_t *fn = find_named(fits, "strategy", "naive");
    assert_close(jget(fn, "intercept_seconds", NULL), C_SEG + D_MB, 0, 1e-6);
    assert_close(jget(fn, "optimizer_step_seconds_median", NULL), 0.01, 0, 1e-12);
    assert_close(jget(fn, "replay_fitted_sync_max_seconds", NULL), sync_max[0], 0, 1e-6);

    json_t *preds = json_object_get(root, "predictions");
    assert_int_equal(2, json_array_size(preds));
    json_t *w2 = json_array_get(preds, 0), *w16 = json_array_get(preds, 1);
    assert_int_equal(2, json_integer_value(json_object_get(w2, "world_size")));
    assert_int_equal(16, json_integer_value(json_object_get(w16, "world_size")));
    /* Same samples, seed and W as the source: the plans are the ones timed, so the prediction
     * of the slowest-rank sum is the measured one. */
    json_t *n2 = find_named(json_object_get(w2, "strategies"), "name", "naive");
    json_t *p2 = find_named(json_object_get(w2, "strategies"), "name", "packing");
    assert_close(jget(n2, "sync_max_seconds", NULL), sync_max[0], 0, 1e-6);
    assert_close(jget(p2, "sync_max_seconds", NULL), sync_max[1], 0, 1e-6);
    assert_close(jget(n2, "compute_only", "speedup_vs_naive"), 1.0, 0, 1e-12);
    /* Compute only: wall = sync max + 0.01 s per step. With zero3 on h100: + comm, optimizer kept. */
    double steps = jget(n2, "steps", NULL);
    assert_close(jget(n2, "compute_only", "dp_wall_seconds"), sync_max[0] + 0.01 * steps, 0, 1e-6);
    json_t *cost = json_object_get(json_object_get(w2, "comm"), "cost");
    double per_micro = jget(cost, "per_micro_step_seconds", NULL);
    assert_true(per_micro > 0);
    assert_close(jget(n2, "with_comm", "comm_seconds"), per_micro * jget(n2, "micro_steps", NULL), 0, 1e-9);
    assert_close(jget(n2, "with_comm", "dp_wall_seconds"),
                 jget(n2, "compute_only", "dp_wall_seconds") + jget(n2, "with_comm", "comm_seconds"), 0, 1e-9);
    /* More ranks, fewer steps for the same samples. */
    json_t *n16 = find_named(json_object_get(w16, "strategies"), "name", "naive");
    assert_true(jget(n16, "steps", NULL) < steps);
    /* LongAlign's Figure 5 travels with the predictions. */
    json_t *fig5 = json_object_get(root, "longalign_figure5");
    assert_int_equal(3, json_array_size(fig5));
    json_t *l7 = find_named(fig5, "model", "Llama-2-7B");
    assert_close(jget(l7, "packing_speedup", NULL), 67.2 / 23.4, 0, 1e-9);   /* 10 digits in the JSON */
    assert_close(jget(l7, "sorted_speedup", NULL), 67.2 / 23.3, 0, 1e-9);
    json_decref(root);
    unlink(out);

    /* Another distribution scale: L follows it (4096 x 2 = 8192), and the largest packs now go
     * beyond what was measured. (The results file as an argument this time, like report's.) */
    char *argv2[] = {"predict", src, "--out", out, "--world-size", "4", "--len-scale", "1/8", NULL};
    assert_int_equal(0, predict_in_child(8, argv2, msg, sizeof msg));
    root = json_load_file(out, 0, &je);
    assert_non_null(root);
    json_t *p4 = find_named(json_object_get(json_array_get(json_object_get(root, "predictions"), 0), "strategies"),
                            "name", "packing");
    assert_int_equal(8192, json_integer_value(json_object_get(p4, "max_tokens")));
    assert_true(json_is_true(json_object_get(p4, "extrapolated")));
    json_decref(root);
    unlink(out);
    unlink(src);
}

/* `--cost-from`: the pooled fit of a train results file as the planners' cost model. The timings
 * are exact, so it gives back the coefficients they come from, and packing-fair plans with it. */
static void test_cost_from_results(void **state)
{
    (void)state;
    char src[128];
    temp_path(src, sizeof src, "cost.json");
    write_source(src, "train", 1, NULL);
    CostModel c;
    TimeFit fit;
    ModelConfig m;
    char why[512];
    assert_int_equal(0, measured_cost_model(src, &c, &fit, &m, why, sizeof why));
    assert_close(c.per_token, A_TOK, 0, 1e-5);
    assert_close(c.per_token_sq, B_SQ, 0, 1e-5);
    assert_close(c.per_segment, C_SEG, 0, 1e-4);
    assert_close(c.per_row, D_MB, 0, 1e-4);
    assert_string_equal(m.name, "tiny");
    assert_true(fit.n_fit > 5);
    char err[256];
    PlanConfig cfg = plan_config_default(strategy_find("packing-fair"));
    cfg.cost = c;
    assert_int_equal(0, plan_config_check(&cfg, err, sizeof err));
    unlink(src);
}

static void test_command_refuses_bad_input(void **state)
{
    (void)state;
    char src[128], out[128], msg[4096];
    temp_path(src, sizeof src, "bad.json");
    temp_path(out, sizeof out, "bad-out.json");
    char *argv[] = {"predict", "--from", src, "--out", out, NULL};

    /* No such file. */
    unlink(src);
    assert_int_equal(2, predict_in_child(5, argv, msg, sizeof msg));
    assert_non_null(strstr(msg, src));

    /* Not JSON: file and line. */
    FILE *f = fopen(src, "w");
    assert_non_null(f);
    fputs("{\n  \"schema\": \"labench-results\",\n  oops\n}\n", f);
    fclose(f);
    assert_int_equal(2, predict_in_child(5, argv, msg, sizeof msg));
    assert_non_null(strstr(msg, ":3:"));

    /* A plan-only results file has nothing measured. */
    write_source(src, "plan", 0, NULL);
    assert_int_equal(2, predict_in_child(5, argv, msg, sizeof msg));
    assert_non_null(strstr(msg, "no measured run"));

    /* A train file whose strategies have no run. */
    write_source(src, "train", 0, NULL);
    assert_int_equal(2, predict_in_child(5, argv, msg, sizeof msg));
    assert_non_null(strstr(msg, "strategies[0] (naive): run is null in a train results file"));

    /* A run without its column names. */
    write_source(src, "train", 1, NULL);
    json_error_t je;
    json_t *root = json_load_file(src, 0, &je);
    assert_non_null(root);
    json_t *run = json_object_get(json_array_get(json_object_get(root, "strategies"), 1), "run");
    json_object_del(run, "micro_batch_columns");
    assert_int_equal(0, json_dump_file(root, src, 0));
    assert_int_equal(2, predict_in_child(5, argv, msg, sizeof msg));
    assert_non_null(strstr(msg, "strategies[1] (packing): run.micro_batch_columns is missing"));

    /* The model's shape is needed for the communication bytes. */
    json_object_set_new(run, "micro_batch_columns",
                        json_pack("[s,s,s,s,s,s,s,s,s,s,s]", "step", "micro", "rank", "rows", "sequences", "segments",
                                  "real_tokens", "computed_tokens", "sum_seq_len_sq", "seconds", "loss"));
    json_object_del(json_object_get(root, "config"), "model");
    assert_int_equal(0, json_dump_file(root, src, 0));
    assert_int_equal(2, predict_in_child(5, argv, msg, sizeof msg));
    assert_non_null(strstr(msg, "config.model.preset is missing"));
    json_decref(root);

    /* Options. */
    char *no_from[] = {"predict", "--out", out, NULL};
    assert_int_equal(2, predict_in_child(3, no_from, msg, sizeof msg));
    assert_non_null(strstr(msg, "--from"));
    char *bad_comm[] = {"predict", "--from", src, "--comm", "zero2", NULL};
    assert_int_equal(2, predict_in_child(5, bad_comm, msg, sizeof msg));
    assert_non_null(strstr(msg, "--comm"));
    char *bad_w[] = {"predict", "--from", src, "--world-size", "8,x", NULL};
    assert_int_equal(2, predict_in_child(5, bad_w, msg, sizeof msg));
    assert_non_null(strstr(msg, "--world-size"));
    char *no_value[] = {"predict", "--from", src, "--samples", NULL};
    assert_int_equal(2, predict_in_child(4, no_value, msg, sizeof msg));
    assert_non_null(strstr(msg, "needs a value"));
    char *unknown[] = {"predict", "--from", src, "--frobnicate", NULL};
    assert_int_equal(2, predict_in_child(4, unknown, msg, sizeof msg));
    assert_non_null(strstr(msg, "unknown option"));
    char *twice[] = {"predict", "--from", src, src, NULL};
    assert_int_equal(2, predict_in_child(4, twice, msg, sizeof msg));
    assert_non_null(strstr(msg, "give the results file once"));
    char *two_files[] = {"predict", src, src, NULL};
    assert_int_equal(2, predict_in_child(3, two_files, msg, sizeof msg));
    assert_non_null(strstr(msg, "unexpected argument"));

    /* Nothing was written by any refusal. */
    assert_int_equal(-1, access(out, F_OK));
    unlink(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_recovers_coefficients),
        cmocka_unit_test(test_fit_non_negative_and_degenerate),
        cmocka_unit_test(test_dp_by_hand),
        cmocka_unit_test(test_shape_of_padded_batch),
        cmocka_unit_test(test_per_micro_step_cost_changes_the_ranking),
        cmocka_unit_test(test_command_end_to_end),
        cmocka_unit_test(test_cost_from_results),
        cmocka_unit_test(test_command_refuses_bad_input),
    };
    return cmocka_run_group_tests_name("predict", tests, NULL, NULL);
}
