/* The one reader of the results schema (bench/results/results_read.c), used by report, compare and
 * predict: every integer is range-checked before it is converted, micro-batch rows are checked
 * against their strategy's plan config, the first error stops the reading and names the file
 * and the JSON path, and fields it does not know are ignored. Run from the repository root. */
#include "tests/test_util.h"

#include <fcntl.h>
#include <sys/wait.h>

#include <jansson.h>

#include "bench/cli/cli.h"
#include "bench/analysis/predict.h"
#include "bench/results/report.h"
#include "bench/results/results.h"
#include "bench/results/results_read.h"

#define BASE "tests/fixtures/results-base.json"

static json_t *load_base(void)
{
    json_error_t e;
    json_t *root = json_load_file(BASE, 0, &e);
    assert_non_null(root);
    return root;
}

static json_t *strategy(json_t *root, size_t i) { return json_array_get(json_object_get(root, "strategies"), i); }
static json_t *run_of(json_t *root, size_t i) { return json_object_get(strategy(root, i), "run"); }
static json_t *row(json_t *root, size_t i, size_t r)
{
    return json_array_get(json_object_get(run_of(root, i), "micro_batches_detail"), r);
}

/* Writes root to a fresh temporary file (path out) and takes the reference. */
static void write_temp(json_t *root, char *path, size_t n)
{
    snprintf(path, n, "/tmp/labench-results-read-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(0, json_dump_file(root, path, JSON_INDENT(1)));
    json_decref(root);
}

/* results_read of the edited file must fail naming the file and `needle`, and leave rf empty. */
static void expect_refused(json_t *root, const char *needle)
{
    char path[64], err[2048];
    write_temp(root, path, sizeof path);
    ResultsFile rf;
    int rc = results_read(path, &rf, err, sizeof err);
    if (rc != -1 || !strstr(err, path) || !strstr(err, needle)) {
        print_error("results_read: rc %d, err: %s\n  expected -1 and '%s'\n", rc, rc ? err : "(none)", needle);
        if (rc == 0) results_file_free(&rf);
        unlink(path);
        fail();
    }
    assert_null(rf.strategies);
    assert_null(rf.root);
    unlink(path);
}

static void test_reads_rows_in_plan_order(void **state)
{
    (void)state;
    ResultsFile rf;
    char err[1024];
    assert_int_equal(0, results_read(BASE, &rf, err, sizeof err));
    assert_int_equal(4, rf.n_strategies);
    for (int i = 0; i < rf.n_strategies; i++) {
        const RepStrategy *s = &rf.strategies[i];
        const int W = s->cfg.world_size, A = s->cfg.grad_accum;
        assert_int_equal(2, W);
        assert_int_equal((int64_t)s->run->steps * A * W, s->run->n_mbs);
        for (int64_t k = 0; k < s->run->n_mbs; k++) {
            const MbRow *m = &s->run->mbs[k];
            assert_int_equal(k, ((int64_t)m->step * A + m->micro) * W + m->rank);
        }
    }
    /* naive, step 0, micro 1, rank 1: 1 row, 2 sequences, 450 real of 500 computed, 0.25 s */
    const MbRow *m = &rf.strategies[0].run->mbs[(0 * 2 + 1) * 2 + 1];
    assert_int_equal(1, m->rows);
    assert_int_equal(2, m->segments);
    assert_int_equal(450, m->real_tokens);
    assert_int_equal(500, m->computed_tokens);
    assert_close(m->sum_seq_len_sq, 101250.0, 0, 0);
    assert_close(m->seconds, 0.25, 0, 0);
    assert_int_equal(MB_COL_ALL, rf.strategies[0].run->columns & MB_COL_ALL);
    assert_int_equal(16, rf.head_dim);
    assert_int_equal(256, rf.vocab);
    assert_int_equal(176, rf.intermediate);
    assert_int_equal(SYNC_MICRO, rf.strategies[0].cfg.sync);
    assert_int_equal(1024, rf.strategies[0].cfg.max_tokens);
    results_file_free(&rf);
}

/* Defects 1 and 2 of issue 16: numbers in micro-batch rows were cast without bounds (1e30 is
 * undefined behaviour, 1e300 was accepted) and never checked against the plan config. */
static void test_row_values_bounded_and_in_the_plan(void **state)
{
    (void)state;
    struct {
        size_t strategy, row, col;
        const char *value;       /* JSON text */
        const char *needle;
    } cases[] = {
        {0, 0, 0, "1e30", "strategies[0] (naive): run.micro_batches_detail[0][0] (step) = 1e+30"},
        {0, 3, 1, "1e300", "run.micro_batches_detail[3][1] (micro) = 1e+300"},
        {1, 2, 1, "2000000000", "run.micro_batches_detail[2][1] (micro) = 2000000000 is outside 0..1 (plan_config.grad_accum 2)"},
        {1, 2, 2, "2", "run.micro_batches_detail[2][2] (rank) = 2 is outside 0..1 (plan_config.world_size 2)"},
        {2, 1, 0, "2", "run.micro_batches_detail[1][0] (step) = 2 is outside 0..1 (run.steps 2)"},
        {2, 1, 0, "-1", "(step) = -1 is outside 0..1"},
        {0, 0, 3, "3e9", "run.micro_batches_detail[0][3] (rows) = 3000000000 is outside 0..2147483647"},
        {0, 0, 6, "-5", "(real_tokens) = -5"},
        {0, 0, 7, "2.5", "(computed_tokens) = 2.5"},
        {0, 0, 9, "-1.0", "(seconds) = -1 is not a non-negative number"},
        {0, 0, 8, "\"big\"", "(sum_seq_len_sq) = \"big\""},
        {0, 0, 1, "1", "run.micro_batches_detail[2]: step 0, micro 1, rank 0 appears twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *root = load_base();
        json_error_t e;
        json_t *v = json_loads(cases[i].value, JSON_DECODE_ANY, &e);
        assert_non_null(v);
        assert_int_equal(0, json_array_set_new(row(root, cases[i].strategy, cases[i].row), cases[i].col, v));
        expect_refused(root, cases[i].needle);
    }
    /* A missing row: the detail holds one row per (step, micro, rank) of the steps run. */
    json_t *root = load_base();
    json_array_remove(json_object_get(run_of(root, 1), "micro_batches_detail"), 7);
    expect_refused(root, "strategies[1] (sorted): run.micro_batches_detail has 7 rows; run.steps x "
                         "plan_config.grad_accum x plan_config.world_size = 2 x 2 x 2 = 8");
    /* A row of the wrong width. */
    root = load_base();
    json_array_remove(row(root, 0, 4), 10);
    expect_refused(root, "run.micro_batches_detail[4] should be an array of 11 values");
}

/* Defect 2: the plan config itself, and the counts that size what report draws. */
static void test_plan_config_and_counts_bounded(void **state)
{
    (void)state;
    json_t *root = load_base();
    json_object_set_new(json_object_get(strategy(root, 1), "plan_config"), "world_size", json_integer(2000000000));
    expect_refused(root, "strategies[1] (sorted): plan_config.world_size = 2000000000 is outside 1..1048576");

    root = load_base();
    json_object_set_new(json_object_get(strategy(root, 0), "plan_config"), "grad_accum", json_integer(0));
    expect_refused(root, "plan_config.grad_accum = 0 is outside 1..1048576");

    root = load_base();
    json_object_set_new(json_object_get(strategy(root, 0), "plan_config"), "epochs", json_real(1e300));
    expect_refused(root, "plan_config.epochs = 1e+300");

    root = load_base();
    json_object_set_new(run_of(root, 3), "steps", json_integer(3));
    expect_refused(root, "strategies[3] (packing-lw): run.steps = 3 is more than plan.optimizer_steps 2");

    root = load_base();
    json_object_set_new(run_of(root, 3), "steps", json_real(1e30));
    expect_refused(root, "strategies[3] (packing-lw): run.steps = 1e+30");

    root = load_base();
    json_array_append_new(json_object_get(run_of(root, 0), "step_wall_seconds"), json_real(1.0));
    expect_refused(root, "strategies[0] (naive): run.step_wall_seconds has 3 values; run.steps is 2");

    root = load_base();
    json_object_set_new(json_object_get(root, "config"), "steps", json_real(1e30));
    expect_refused(root, "config.steps = 1e+30");

    root = load_base();
    json_object_set_new(json_object_get(json_object_get(root, "config"), "model"), "num_hidden_layers",
                        json_real(3e9));
    expect_refused(root, "config.model.num_hidden_layers = 3000000000 is outside 1..1048576");

    root = load_base();
    json_object_set_new(json_object_get(root, "config"), "samples", json_real(1e300));
    expect_refused(root, "config.samples = 1e+300");

    root = load_base();
    json_object_set_new(json_object_get(root, "machine"), "cores", json_real(1e300));
    expect_refused(root, "machine.cores = 1e+300");

    root = load_base();
    json_object_set_new(json_object_get(strategy(root, 2), "plan"), "micro_batches", json_real(1e300));
    expect_refused(root, "strategies[2] (packing): plan.micro_batches = 1e+300");

    root = load_base();
    json_object_set_new(run_of(root, 1), "peak_memory_bytes", json_integer(-1));
    expect_refused(root, "run.peak_memory_bytes = -1");
}

/* The reader stops at the first error: the message is about the first one in the file. */
static void test_first_error_wins(void **state)
{
    (void)state;
    json_t *root = load_base();
    json_object_set_new(run_of(root, 0), "loss_curve", json_string("x"));
    json_array_set_new(row(root, 1, 0), 0, json_real(1e30));
    json_object_set_new(json_object_get(strategy(root, 2), "plan_config"), "world_size", json_integer(-7));
    expect_refused(root, "strategies[0] (naive): run.loss_curve should be an array");
}

/* Other engineers add fields: a reader that knows version 1 must read a file that has more. */
static void test_unknown_fields_ignored(void **state)
{
    (void)state;
    json_t *root = load_base();
    json_object_set_new(root, "dp", json_string("real"));
    json_object_set_new(json_object_get(root, "machine"), "blas", json_pack("{s:s, s:i}", "name", "openblas", "threads", 2));
    json_object_set_new(json_object_get(root, "config"), "future_option", json_pack("[i,s]", 1, "x"));
    json_object_set_new(json_object_get(strategy(root, 0), "plan"), "new_metric", json_real(0.5));
    json_object_set_new(json_object_get(strategy(root, 0), "plan_config"), "new_knob", json_true());
    for (size_t i = 0; i < 4; i++) {
        json_t *run = run_of(root, i);
        json_object_set_new(run, "per_rank", json_pack("[{s:i, s:f}]", "rank", 0, "wait_seconds", 0.1));
        json_array_append_new(json_object_get(run, "micro_batch_columns"), json_string("wait_seconds"));
        json_t *rows = json_object_get(run, "micro_batches_detail");
        for (size_t r = 0; r < json_array_size(rows); r++)
            json_array_append_new(json_array_get(rows, r), r % 2 ? json_string("n/a") : json_real(0.01));
    }
    char path[64], err[1024];
    write_temp(root, path, sizeof path);
    ResultsFile a, b;
    int rc = results_read(path, &a, err, sizeof err);
    if (rc != 0) print_error("%s\n", err);
    assert_int_equal(0, rc);
    assert_int_equal(0, results_read(BASE, &b, err, sizeof err));
    assert_int_equal(b.n_strategies, a.n_strategies);
    for (int i = 0; i < a.n_strategies; i++) {
        assert_close(a.strategies[i].run->effective_tps, b.strategies[i].run->effective_tps, 0, 0);
        assert_int_equal(b.strategies[i].run->n_mbs, a.strategies[i].run->n_mbs);
        for (int64_t k = 0; k < a.strategies[i].run->n_mbs; k++)
            assert_close(a.strategies[i].run->mbs[k].seconds, b.strategies[i].run->mbs[k].seconds, 0, 0);
    }
    results_file_free(&a);
    results_file_free(&b);
    unlink(path);
}

/* What the file says is quoted, but cut to a readable length. */
static void test_quotes_capped(void **state)
{
    (void)state;
    char longname[2001];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    json_t *root = load_base();
    json_object_set_new(strategy(root, 2), "name", json_string(longname));
    json_object_set_new(json_object_get(strategy(root, 2), "plan_config"), "sync", json_string(longname));
    char path[64], err[8192];
    write_temp(root, path, sizeof path);
    ResultsFile rf;
    assert_int_equal(-1, results_read(path, &rf, err, sizeof err));
    assert_non_null(strstr(err, "plan_config.sync is \"nnnn"));
    assert_true(strlen(err) < strlen(path) + 300);
    unlink(path);

    char digits[1001];
    memset(digits, '9', sizeof digits - 1);
    digits[sizeof digits - 1] = 0;
    char *text = malloc(2000);
    assert_non_null(text);
    snprintf(text, 2000, "{\"schema\": \"labench-results\", \"schema_version\": %s}", digits);
    test_write_file(path, sizeof path, text, strlen(text));
    free(text);
    assert_int_equal(-1, results_read(path, &rf, err, sizeof err));
    assert_non_null(strstr(err, path));
    assert_true(strlen(err) < strlen(path) + 300);
    unlink(path);
}

/* Runs cmd_predict in a child (it exits on bad input); stderr into msg. Returns the exit status. */
static int predict_in_child(char **argv, int argc, char *msg, size_t n)
{
    char errpath[] = "/tmp/labench-results-read-err-XXXXXX";
    int fd = mkstemp(errpath);
    assert_true(fd >= 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        dup2(nul, 1);
        _exit(cmd_predict(argc, argv, "labench predict"));
    }
    int st = 0;
    assert_int_equal(pid, waitpid(pid, &st, 0));
    ssize_t k = pread(fd, msg, n - 1, 0);
    msg[k > 0 ? k : 0] = 0;
    close(fd);
    unlink(errpath);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Defect 3: predict reads results through the same reader, so it refuses what report refuses,
 * with the same words (rows = 3e9 was undefined behaviour in its own reader). */
static void test_predict_shares_the_reader(void **state)
{
    (void)state;
    const char *values[] = {"3e9", "3000000000", "1e300"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        json_t *root = load_base();
        json_error_t e;
        json_array_set_new(row(root, 2, 1), 3, json_loads(values[i], JSON_DECODE_ANY, &e));
        char path[64], err[2048], msg[4096];
        write_temp(root, path, sizeof path);
        ResultsFile rf;
        assert_int_equal(-1, results_read(path, &rf, err, sizeof err));
        assert_non_null(strstr(err, "strategies[2] (packing): run.micro_batches_detail[1][3] (rows)"));
        char *argv[] = {"predict", "--from", path, "--out", "/tmp/labench-results-read-never.json", NULL};
        assert_int_equal(2, predict_in_child(argv, 5, msg, sizeof msg));
        if (!strstr(msg, err)) {
            print_error("predict said: %s\nreport's reader: %s\n", msg, err);
            fail();
        }
        assert_int_equal(-1, access("/tmp/labench-results-read-never.json", F_OK));
        unlink(path);
    }
}

/* report on a file whose row says micro = 2e9 hung in the timeline loop: now it is refused
 * before anything is drawn. */
static void test_report_refuses_huge_micro(void **state)
{
    (void)state;
    json_t *root = load_base();
    json_array_set_new(row(root, 0, 0), 1, json_integer(2000000000));
    char path[64], err[2048], out[96];
    write_temp(root, path, sizeof path);
    snprintf(out, sizeof out, "%s.md", path);
    ReportOptions opt = {.out_path = out, .no_plots = 1};
    const char *inputs[1] = {path};
    assert_int_equal(-1, report_generate(inputs, 1, &opt, err, sizeof err));
    assert_non_null(strstr(err, "(micro) = 2000000000 is outside 0..1"));
    assert_int_equal(-1, access(out, F_OK));
    unlink(path);
}

/* What results_write writes, results_read reads back: every row, even a diverged micro-batch's
 * (its NaN loss is written as null, and the row is kept). */
static void test_written_run_reads_back(void **state)
{
    (void)state;
    const int W = 2, A = 3, steps = 2;
    static ModelConfig m;
    assert_int_equal(0, model_preset("tiny", &m));
    StrategyResult sr = {0};
    sr.name = "sorted";
    sr.cfg = plan_config_default(strategy_find("sorted"));
    sr.cfg.world_size = W;
    sr.cfg.grad_accum = A;
    sr.plan.optimizer_steps = steps;
    RunResult r = {0};
    r.n_steps = r.metrics.steps = steps;
    r.n_recs = (int64_t)steps * A * W;
    r.recs = calloc((size_t)r.n_recs, sizeof *r.recs);
    r.loss_curve = calloc(steps, sizeof(double));
    r.step_wall_s = calloc(steps, sizeof(double));
    r.optimizer_s = calloc(steps, sizeof(double));
    r.grad_norm = calloc(steps, sizeof(double));
    assert_non_null(r.recs);
    for (int64_t k = 0; k < r.n_recs; k++) {
        MbRow *x = &r.recs[k];
        x->step = (int32_t)(k / (A * W));
        x->micro = (int32_t)(k / W % A);
        x->rank = (int32_t)(k % W);
        x->rows = 1;
        x->segments = x->sequences = 1;
        x->real_tokens = x->computed_tokens = 100 + k;
        x->sum_seq_len_sq = (double)x->real_tokens * x->real_tokens;
        x->seconds = 0.001 * (double)(k + 1);
        x->loss = k == 5 ? NAN : 1.0;
    }
    sr.run = &r;
    snprintf(r.timing_source, sizeof r.timing_source, "test");
    ResultsDoc doc = {.kind = "train", .command = "test", .len_dist = "x.hist", .samples = 10, .len_scale = 1,
                      .seed = 1, .backend = "cpu", .device = "test", .model = &m, .n_params = 1, .comm = "none",
                      .strategies = &sr, .n_strategies = 1};
    char path[] = "/tmp/labench-results-read-w-XXXXXX", err[1024];
    close(mkstemp(path));
    assert_int_equal(0, results_write(path, &doc, err, sizeof err));
    ResultsFile rf;
    int rc = results_read(path, &rf, err, sizeof err);
    if (rc != 0) print_error("%s\n", err);
    assert_int_equal(0, rc);
    const RepRun *back = rf.strategies[0].run;
    assert_int_equal(r.n_recs, back->n_mbs);
    for (int64_t k = 0; k < r.n_recs; k++) {
        assert_int_equal(r.recs[k].real_tokens, back->mbs[k].real_tokens);
        assert_close(back->mbs[k].seconds, r.recs[k].seconds, 0, 1e-9);
        assert_true(k == 5 ? isnan(back->mbs[k].loss) : back->mbs[k].loss == 1.0);
    }
    results_file_free(&rf);
    run_result_free(&r);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_rows_in_plan_order),
        cmocka_unit_test(test_row_values_bounded_and_in_the_plan),
        cmocka_unit_test(test_plan_config_and_counts_bounded),
        cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_quotes_capped),
        cmocka_unit_test(test_predict_shares_the_reader),
        cmocka_unit_test(test_report_refuses_huge_micro),
        cmocka_unit_test(test_written_run_reads_back),
    };
    return cmocka_run_group_tests_name("results_read", tests, NULL, NULL);
}
