/* The labench command line: bad input gets a clear message and exit status 2, and no output
 * file is left half-written; a CPU run's Chrome trace adds up to its reported bubble. */
#include "tests/test_util.h"

#include <jansson.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "bench/comm/comm_model.h"
#include "bench/results/results_read.h"
#include "bench/run/run.h"
#include "common/host.h"
#include "common/input_file.h"
#include "kernels/cpu/cpuinfo.h"
#include "model/safetensors.h"
#include "common/rng.h"
#include "strategies/strategy.h"

static const char *labench(void)
{
    const char *p = getenv("LABENCH");
    return p ? p : "./labench";
}

/* Runs `labench ARGS`, capturing stderr+stdout into out; returns the exit status. */
static int run_cli(const char *args, char *out, size_t n)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s", labench(), args);
    return test_run_capture(cmd, out, n);
}

static void expect_bad(const char *args, const char *needle)
{
    char out[16384];
    int rc = run_cli(args, out, sizeof out);
    if (rc != 2 || !strstr(out, needle)) {
        print_error("labench %s\n  exit %d, output:\n%s\n  expected exit 2 and '%s'\n", args, rc, out, needle);
        fail();
    }
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_bad_options(void **state)
{
    (void)state;
    expect_bad("plan --strategy nope", "unknown strategy 'nope'; valid: naive, sorted, packing");
    expect_bad("plan --world-size 0", "--world-size");
    expect_bad("plan --micro-batch -3", "--micro-batch");
    expect_bad("plan --grad-accum 0", "--grad-accum");
    expect_bad("plan --max-tokens 0", "--max-tokens");
    expect_bad("plan --sync sometimes", "--sync must be micro or step");
    expect_bad("plan --samples 10x", "--samples");
    expect_bad("plan --len-scale 0", "--len-scale");
    expect_bad("plan --steps 3", "training option");
    expect_bad("plan --len-dist /nonexistent/x.hist", "/nonexistent/x.hist");
    expect_bad("plan --len-dist /tmp", "/tmp");
    expect_bad("plan --cost-from /nonexistent/r.json", "/nonexistent/r.json");
    expect_bad("plan --cost-from data/longalign-mix.hist", "data/longalign-mix.hist");
    expect_bad("train --model huge", "unknown preset 'huge'");
    expect_bad("train --frobnicate", "unknown option '--frobnicate'");
    expect_bad("nosuchcommand", "unknown command");
}

static void test_bad_histogram(void **state)
{
    (void)state;
    char path[64], args[256];
    const char text[] = "# header\n100 5\n200-100 3\n";
    test_write_file(path, sizeof path, text, sizeof text - 1);
    snprintf(args, sizeof args, "plan --len-dist %s", path);
    char needle[128];
    snprintf(needle, sizeof needle, "%s:3:", path);
    expect_bad(args, needle);
    unlink(path);
}

/* Real length files: numpy's bins from 0 and `0 COUNT` lines plan; the length-0 samples are
 * dropped with one line that says how many; a file of nothing but those is still refused. */
static void test_zero_lengths_plan(void **state)
{
    (void)state;
    char path[64], args[256], out[16384];
    const char text[] = "# numpy.histogram edges\n0-3237 400\n3238-6444 100\n0 7\n";
    test_write_file(path, sizeof path, text, sizeof text - 1);
    snprintf(args, sizeof args, "plan --strategy all --len-dist %s", path);
    assert_int_equal(0, run_cli(args, out, sizeof out));
    assert_non_null(strstr(out, "dropped 7 samples of length 0 (1 line from line 4); 500 left"));
    assert_non_null(strstr(out, "500 samples from"));
    unlink(path);

    const char zeros[] = "0 7\n0-0 3\n";
    test_write_file(path, sizeof path, zeros, sizeof zeros - 1);
    snprintf(args, sizeof args, "plan --len-dist %s", path);
    char needle[128];
    snprintf(needle, sizeof needle, "%s: nothing left: all 10 samples have length 0", path);
    expect_bad(args, needle);
    unlink(path);
}

/* Every distribution shipped in data/ plans with every strategy. */
static void test_shipped_files_plan(void **state)
{
    (void)state;
    FILE *ls = popen("ls data/*.hist", "r");
    assert_non_null(ls);
    char name[256], args[512], out[16384];
    int n = 0;
    while (fgets(name, sizeof name, ls)) {
        name[strcspn(name, "\n")] = 0;
        snprintf(args, sizeof args, "plan --strategy all --len-dist %s", name);
        int rc = run_cli(args, out, sizeof out);
        if (rc != 0 || !strstr(out, "packing-balanced")) {
            print_error("labench %s: exit %d\n%s\n", args, rc, out);
            fail();
        }
        n++;
    }
    pclose(ls);
    assert_true(n >= 6);
}

/* A histogram of 10^8 samples is a one-line file. Where its plan will not fit in memory, labench
 * says so before drawing anything and names --samples N; with --samples it plans, showing the
 * progress of every phase (LABENCH_PROGRESS_AFTER=0 makes every phase show at once, so the test
 * does not wait; LABENCH_MEMAVAILABLE pins what "available" is, so the outcome is the same on
 * every machine). */
static void test_huge_histogram(void **state)
{
    (void)state;
    char path[64], args[512], out[16384];
    const char text[] = "1-2000 100000000\n";
    test_write_file(path, sizeof path, text, sizeof text - 1);

    snprintf(args, sizeof args, "plan --len-dist %s", path);
    setenv("LABENCH_MEMAVAILABLE", "1G", 1);
    double t0 = wall_seconds();
    int rc = run_cli(args, out, sizeof out);
    double dt = wall_seconds() - t0;
    print_message("refused in %.3f s: %s", dt, out);
    assert_int_equal(2, rc);
    assert_non_null(strstr(out, "100000000 samples need about"));
    assert_non_null(strstr(out, "1.0 GiB is available (LABENCH_MEMAVAILABLE)"));
    assert_non_null(strstr(out, "--samples N (--samples "));
    assert_null(strstr(out, "samples from"));   /* nothing was drawn */

    /* The remedy it names works, and every phase reports. */
    setenv("LABENCH_PROGRESS_AFTER", "0", 1);
    snprintf(args, sizeof args, "plan --len-dist %s --samples 200000 --progress", path);
    rc = run_cli(args, out, sizeof out);
    if (rc != 0) print_error("%s\n", out);
    assert_int_equal(0, rc);
    assert_non_null(strstr(out, "drawing 200000 samples from"));
    for (int i = 0; i < N_STRATEGIES; i++) {
        char want[96];
        snprintf(want, sizeof want, "planning %s: done in", STRATEGIES[i]->name);
        assert_non_null(strstr(out, want));
        snprintf(want, sizeof want, "scoring %s's plan: done in", STRATEGIES[i]->name);
        assert_non_null(strstr(out, want));
    }
    /* Without --progress (stderr is a pipe here) nothing of it shows. */
    snprintf(args, sizeof args, "plan --len-dist %s --samples 2000", path);
    assert_int_equal(0, run_cli(args, out, sizeof out));
    assert_null(strstr(out, "done in"));
    unsetenv("LABENCH_PROGRESS_AFTER");
    unsetenv("LABENCH_MEMAVAILABLE");
    unlink(path);
}

/* One convention for values: `--opt VALUE` and `--opt=VALUE` everywhere; --trace's value is
 * optional, so `--trace FILE` takes FILE only when it is not an option. */
static void test_option_forms(void **state)
{
    (void)state;
    char dir[] = "/tmp/labench-opts-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char args[1024], out[16384], trace[300], results[300];
    snprintf(trace, sizeof trace, "%s/space.json", dir);
    snprintf(results, sizeof results, "%s/r.json", dir);
    const char *tiny = "train --backend cpu --strategy naive --samples 32 --steps 1 --world-size 2 --val-samples 0";
    snprintf(args, sizeof args, "%s --trace %s --out %s", tiny, trace, results);
    assert_int_equal(0, run_cli(args, out, sizeof out));
    assert_true(file_exists(trace));
    json_error_t e;
    json_t *root = json_load_file(trace, 0, &e);
    assert_non_null(root);
    json_decref(root);
    snprintf(trace, sizeof trace, "%s/equals.json", dir);
    snprintf(args, sizeof args, "%s --trace=%s --out=%s", tiny, trace, results);
    assert_int_equal(0, run_cli(args, out, sizeof out));
    assert_true(file_exists(trace));
    /* A word after --trace that could be a file but starts a new option stays an option. */
    expect_bad("train --trace --frobnicate", "unknown option '--frobnicate'");
    /* The other subcommands take both forms. */
    char list[64], hist[300];
    const char text[] = "10\n20 5\n";
    test_write_file(list, sizeof list, text, sizeof text - 1);
    snprintf(hist, sizeof hist, "%s/l.hist", dir);
    snprintf(args, sizeof args, "hist %s --out=%s --bin-width=16", list, hist);
    assert_int_equal(0, run_cli(args, out, sizeof out));
    assert_true(file_exists(hist));
    snprintf(args, sizeof args, "bench-plan --samples=2000 --strategy packing --len-dist=%s", hist);
    assert_int_equal(0, run_cli(args, out, sizeof out));
    assert_non_null(strstr(out, "planning 2000 samples"));
    expect_bad("bench-plan --samples", "--samples needs a value");
    expect_bad("bench-plan --samples=0", "--samples must be an integer");
    expect_bad("hist --bin-width", "needs a value");
    unlink(list);
    unlink(hist);
    unlink(trace);
    snprintf(trace, sizeof trace, "%s/space.json", dir);
    unlink(trace);
    unlink(results);
    rmdir(dir);
}

/* A failing run writes no results: the output path stays absent, no temporary is left. */
static void test_no_half_written_output(void **state)
{
    (void)state;
    char dir[] = "/tmp/labench-out-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char args[512], out_path[256];
    snprintf(out_path, sizeof out_path, "%s/results.json", dir);
    snprintf(args, sizeof args, "plan --world-size 0 --out %s", out_path);
    expect_bad(args, "--world-size");
    assert_false(file_exists(out_path));
    /* and a good plan run writes it whole: valid JSON with every strategy */
    snprintf(args, sizeof args, "plan --samples 3000 --out %s", out_path);
    char out[16384];
    assert_int_equal(0, run_cli(args, out, sizeof out));
    json_error_t e;
    json_t *root = json_load_file(out_path, 0, &e);
    assert_non_null(root);
    assert_string_equal("labench-results", json_string_value(json_object_get(root, "schema")));
    assert_int_equal(N_STRATEGIES, (int)json_array_size(json_object_get(root, "strategies")));
    /* machine.blas names the library and the kernels it runs */
    json_t *blas = json_object_get(json_object_get(root, "machine"), "blas");
    assert_true(json_is_object(blas));
    assert_string_equal("OpenBLAS", json_string_value(json_object_get(blas, "library")));
    assert_true(strlen(json_string_value(json_object_get(blas, "core"))) > 0);
    assert_true(json_integer_value(json_object_get(blas, "threads")) >= 1);
    assert_true(json_is_boolean(json_object_get(blas, "fallback")));
    json_decref(root);
    unlink(out_path);
    rmdir(dir);
}

/* Writes an all-zero tiny checkpoint to a fresh temporary path (model, at least 32 bytes). */
static void zero_tiny_checkpoint(char *model, ModelConfig *c)
{
    assert_int_equal(0, model_preset("tiny", c));
    ParamLayout l;
    assert_int_equal(0, param_layout_make(c, &l));
    float *p = calloc(l.n_params, sizeof *p);
    assert_non_null(p);
    strcpy(model, "/tmp/labench-grad-XXXXXX");
    int fd = mkstemp(model);
    close(fd);
    char err[512];
    assert_int_equal(0, safetensors_save_model(model, c, p, err, sizeof err));
    free(p);
    param_layout_free(&l);
}

/* labench grad: every malformed batch gets exit 2 and says what is wrong. */
static void test_grad_bad_batches(void **state)
{
    (void)state;
    ModelConfig c;
    char model[32];
    zero_tiny_checkpoint(model, &c);
    struct { const char *json, *needle; } cases[] = {
        {"{\"tokens\":[1,2,3],\"cu_seqlens\":[0,2,2,3],\"weights\":[0,0,0]}", "not increasing"},
        {"{\"tokens\":[1,2,3],\"cu_seqlens\":[0,2],\"weights\":[0,0,0]}", "must end at len(tokens)"},
        {"{\"tokens\":[1,2,3],\"cu_seqlens\":[0,3],\"weights\":[0,0,1]}", "must be 0"},
        {"{\"tokens\":[1,999,3],\"cu_seqlens\":[0,3],\"weights\":[0,0,0]}", "tokens[1]"},
        {"{\"tokens\":[1,2,3],\"cu_seqlens\":[1,3],\"weights\":[0,0,0]}", "must start at 0"},
        {"{\"tokens\":[1,2,3],\"cu_seqlens\":[0,3],\"weights\":[0,0]}", "one weight per position"},
        {"{\"tokens\":[1,2,3],\"weights\":[0,0,0]}", "cu_seqlens"},
        {"[1,2", "grad-batch"},
        /* Issue 16, defect 7: checked as a double, 1e39 became inf as a float */
        {"{\"tokens\":[1,2,3],\"cu_seqlens\":[0,3],\"weights\":[1e39,0,0]}", "weights[0] is not a finite number that fits a float"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char batch[64], args[512], outp[128];
        test_write_file(batch, sizeof batch, cases[i].json, strlen(cases[i].json));
        char renamed[96];
        snprintf(renamed, sizeof renamed, "%s-grad-batch.json", batch);
        assert_int_equal(0, rename(batch, renamed));
        snprintf(outp, sizeof outp, "%s.out.safetensors", renamed);
        snprintf(args, sizeof args, "grad --load-model %s --batch %s --out %s", model, renamed, outp);
        expect_bad(args, cases[i].needle);
        assert_false(file_exists(outp));
        unlink(renamed);
    }
    /* Issue 16, defect 8: a missing batch named the file with line -1; a folder gave a JSON error. */
    char args[512], out[16384];
    snprintf(args, sizeof args, "grad --load-model %s --batch /tmp/labench-no-such-batch.json --out /tmp/x.st", model);
    expect_bad(args, "/tmp/labench-no-such-batch.json: cannot open: No such file");
    assert_int_equal(2, run_cli(args, out, sizeof out));
    assert_null(strstr(out, ":-1:"));
    snprintf(args, sizeof args, "grad --load-model %s --batch /tmp --out /tmp/x.st", model);
    expect_bad(args, "/tmp: is a directory");
    /* a truncated checkpoint */
    assert_int_equal(0, truncate(model, 100));
    snprintf(args, sizeof args, "grad --load-model %s --batch /dev/null --out /tmp/x.safetensors", model);
    expect_bad(args, model);
    unlink(model);
}

/* A good grad call: the loss printed equals the weighted CE of an all-zero model, ln(V) per
 * weighted position (zero weights give uniform logits); --repeat 3 prints one step_seconds line
 * with three times. A forced generic OpenBLAS core (Prescott) on a CPU with AVX2 or AVX-512 gets
 * one warning line naming what OPENBLAS_CORETYPE would select instead. */
static void test_grad_uniform_loss(void **state)
{
    (void)state;
    ModelConfig c;
    char model[32], batch[64], args[512], out[8192];
    zero_tiny_checkpoint(model, &c);
    const char *json = "{\"tokens\":[5,6,7,8,9],\"cu_seqlens\":[0,2,5],\"weights\":[0.5,0,0.25,0.25,0]}";
    test_write_file(batch, sizeof batch, json, strlen(json));
    char outp[128];
    snprintf(outp, sizeof outp, "%s.safetensors", batch);
    snprintf(args, sizeof args, "grad --load-model %s --batch %s --out %s --repeat 3", model, batch, outp);
    assert_int_equal(0, run_cli(args, out, sizeof out));
    double loss = 0, t[3];
    char extra;
    assert_int_equal(1, sscanf(strstr(out, "loss "), "loss %lf", &loss));
    assert_close(loss, 1.0 * log((double)c.vocab), 1e-5, 1e-6);
    const char *line = strstr(out, "step_seconds ");
    assert_non_null(line);
    assert_int_equal(3, sscanf(line, "step_seconds %lf %lf %lf%c", &t[0], &t[1], &t[2], &extra) - 1);
    assert_true(extra == '\n');
    for (int i = 0; i < 3; i++) assert_true(t[i] > 0 && t[i] < 60);
    expect_bad("grad --load-model x --batch y --out z --repeat 0", "--repeat");

    CpuInfo ci;
    cpu_read_info(&ci);
    if (ci.isa == ISA_AVX2_FMA || ci.isa == ISA_AVX512) {
        setenv("OPENBLAS_CORETYPE", "Prescott", 1);
        int rc = run_cli(args, out, sizeof out);
        unsetenv("OPENBLAS_CORETYPE");
        assert_int_equal(0, rc);
        const char *w = strstr(out, "runs its generic Prescott kernels");
        assert_non_null(w);
        assert_non_null(strstr(w, ci.avx512_skylakex ? "OPENBLAS_CORETYPE=SKYLAKEX would select"
                                                     : "OPENBLAS_CORETYPE=HASWELL would select"));
        assert_null(strstr(w + 1, "runs its generic"));   /* one line, not one per backend */
    }
    assert_true(file_exists(outp));
    unlink(outp);
    unlink(batch);
    unlink(model);
}

/* Issue 16, defect 7: a loss or gradient that is not finite is an error (exit 2, nothing written),
 * not an answer: here parameters of 1e30 overflow the fp32 forward pass. */
static void test_grad_non_finite(void **state)
{
    (void)state;
    ModelConfig c;
    assert_int_equal(0, model_preset("tiny", &c));
    ParamLayout l;
    assert_int_equal(0, param_layout_make(&c, &l));
    float *p = malloc(l.n_params * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < l.n_params; i++) p[i] = 1e30f;
    char model[] = "/tmp/labench-grad-big-XXXXXX", err[512];
    close(mkstemp(model));
    assert_int_equal(0, safetensors_save_model(model, &c, p, err, sizeof err));
    free(p);
    param_layout_free(&l);
    const char *json = "{\"tokens\":[5,6,7,8,9],\"cu_seqlens\":[0,5],\"weights\":[1,1,1,1,0]}";
    char batch[64], args[512], outp[128];
    test_write_file(batch, sizeof batch, json, strlen(json));
    snprintf(outp, sizeof outp, "%s.safetensors", batch);
    snprintf(args, sizeof args, "grad --load-model %s --batch %s --out %s", model, batch, outp);
    expect_bad(args, "no gradients written");
    assert_false(file_exists(outp));
    unlink(batch);
    unlink(model);
}

/* A tiny-model CPU run's pieces: backend, the markov task and a RunConfig of `steps` steps. */
static void tiny_cpu_run(Backend **be, Task **task, RunConfig *rc, int steps)
{
    char err[512];
    *be = backend_cpu_create(DT_F32, err, sizeof err);
    assert_non_null(*be);
    assert_int_equal(0, task_create(task, "markov", 256, 1, 1, err, sizeof err));
    memset(rc, 0, sizeof *rc);
    rc->steps = steps;
    assert_int_equal(0, model_preset("tiny", &rc->model));
    rc->opt = (AdamWConfig){1e-3f, 0.9f, 0.95f, 1e-8f, 0.0f};
    rc->seed = 1;
}

/* The trace of a CPU run: valid JSON, a track per simulated rank, bubble slices summing to the
 * bubble the metrics report. */
static void test_trace_matches_bubble(void **state)
{
    (void)state;
    Sample s[64];
    Rng r = rng_seed(3, 3);
    for (int i = 0; i < 64; i++) {
        s[i].len = 8 + (int32_t)rng_below(&r, 120);
        s[i].target = s[i].len / 2;
    }
    const Strategy *st = strategy_find("naive");
    PlanConfig pc = plan_config_default(st);
    pc.world_size = 4;
    pc.grad_accum = 2;
    pc.max_tokens = 256;
    Plan plan;
    char err[512];
    assert_int_equal(0, plan_make(st, &pc, s, 64, &plan, err, sizeof err));
    Backend *be;
    Task *task;
    RunConfig rc;
    tiny_cpu_run(&be, &task, &rc, 3);
    rc.trace = trace_new();
    RunResult res;
    assert_int_equal(0, run_plan(be, &plan, &rc, task, &res, NULL, err, sizeof err));
    char path[] = "/tmp/labench-trace-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    assert_int_equal(0, trace_write(rc.trace, path, err, sizeof err));
    json_error_t e;
    json_t *root = json_load_file(path, 0, &e);
    assert_non_null(root);
    json_t *ev = json_object_get(root, "traceEvents");
    assert_true(json_is_array(ev));
    int ranks_named = 0;
    double bubble_us = 0;
    size_t i;
    json_t *x;
    json_array_foreach(ev, i, x) {
        const char *ph = json_string_value(json_object_get(x, "ph"));
        const char *name = json_string_value(json_object_get(x, "name"));
        if (ph && !strcmp(ph, "M") && name && !strcmp(name, "thread_name")) {
            const char *tn = json_string_value(json_object_get(json_object_get(x, "args"), "name"));
            if (tn && !strncmp(tn, "rank ", 5)) ranks_named++;
        }
        const char *cat = json_string_value(json_object_get(x, "cat"));
        if (ph && !strcmp(ph, "X") && cat && !strcmp(cat, "bubble"))
            bubble_us += json_number_value(json_object_get(x, "dur"));
    }
    assert_int_equal(4, ranks_named);
    assert_true(res.metrics.bubble_s > 0);
    assert_close(bubble_us * 1e-6, res.metrics.bubble_s, 1e-9, 1e-6);
    json_decref(root);
    unlink(path);
    trace_free(rc.trace);
    run_result_free(&res);
    task_free(task);
    plan_free(&plan);
    be->destroy(be);
}

/* A CPU run with --comm zero3: every micro-step pays the modelled gathers and reduce-scatter,
 * so the time per micro-step grows and sorted batching's speed-up over naive moves towards the
 * ratio of the tokens run (both have the same number of micro-steps; the fixed cost weighs more on
 * the faster one). The runs are measured once; the two communication settings are applied to the
 * same records, so the test compares arithmetic, not two noisy timings. */
static void test_comm_zero3_shrinks_sorted_speedup(void **state)
{
    (void)state;
    Sample s[256];
    Rng r = rng_seed(8, 8);
    for (int i = 0; i < 256; i++) {
        /* a long tail, so naive's ranks wait for the longest and sorted is clearly faster */
        s[i].len = 8 + (int32_t)(rng_below(&r, 10) == 0 ? 300 + rng_below(&r, 400) : rng_below(&r, 60));
        s[i].target = s[i].len / 2;
    }
    char err[512];
    Backend *be;
    Task *task;
    RunConfig rc;
    tiny_cpu_run(&be, &task, &rc, 2);
    /* ZeRO-3 over slow links, sized for the tiny model actually run */
    CommConfig cc;
    assert_int_equal(0, comm_system_defaults("a800", &cc));
    cc.kind = COMM_ZERO3;
    cc.link_Bps = 2e7;
    CommCost cost;
    comm_cost(&cc, &rc.model, 4, &cost);
    assert_true(cost.per_micro_step_s > 0);
    const char *names[2] = {"naive", "sorted"};
    double tps_none[2], tps_comm[2], per_micro_none[2], per_micro_comm[2], tokens[2];
    for (int k = 0; k < 2; k++) {
        const Strategy *st = strategy_find(names[k]);
        PlanConfig pc = plan_config_default(st);
        pc.world_size = 4;
        pc.grad_accum = 4;
        pc.max_tokens = 1024;
        Plan plan;
        assert_int_equal(0, plan_make(st, &pc, s, 256, &plan, err, sizeof err));
        RunResult res;
        assert_int_equal(0, run_plan(be, &plan, &rc, task, &res, NULL, err, sizeof err));
        RunMetrics none, zero3;
        CommTimes ct = {cost.per_micro_step_s, cost.per_step_s, cost.optimizer_on_host};
        run_metrics_compute(res.recs, res.n_recs, 4, pc.sync, plan.micro_steps, res.optimizer_s, res.n_steps,
                            (CommTimes){0, 0, 0}, 0, &none);
        run_metrics_compute(res.recs, res.n_recs, 4, pc.sync, plan.micro_steps, res.optimizer_s, res.n_steps, ct,
                            0, &zero3);
        tps_none[k] = none.effective_tps;
        tokens[k] = (double)none.real_tokens;
        assert_int_equal(none.sync_points, zero3.sync_points);
        tps_comm[k] = zero3.effective_tps;
        per_micro_none[k] = none.dp_wall_s / (double)none.sync_points;
        per_micro_comm[k] = zero3.dp_wall_s / (double)zero3.sync_points;
        assert_true(zero3.comm_s > 0);
        assert_close(zero3.compute_wall_s, none.dp_wall_s, 1e-12, 1e-12);
        run_result_free(&res);
        plan_free(&plan);
    }
    for (int k = 0; k < 2; k++) assert_true(per_micro_comm[k] > per_micro_none[k]);
    double speedup_none = tps_none[1] / tps_none[0], speedup_comm = tps_comm[1] / tps_comm[0];
    print_message("sorted over naive: %.2fx without communication, %.2fx with zero3\n", speedup_none, speedup_comm);
    /* Which strategy ran faster is a timing, never asserted. The arithmetic is: both ran the same
     * number of sync points (2 steps each, not the same samples), each now paying the same fixed
     * cost, so the speed-up moves from the compute-only ratio towards the ratio of the tokens the
     * two ran (where an infinite cost per micro-step would put it), strictly, without passing it. */
    const double tok_ratio = tokens[1] / tokens[0];
    assert_true(fabs(speedup_comm - tok_ratio) < fabs(speedup_none - tok_ratio) || speedup_none == tok_ratio);
    assert_true((speedup_comm - tok_ratio) * (speedup_none - tok_ratio) >= 0);
    task_free(task);
    be->destroy(be);
}

/* `labench plan --device` (the device model, bench/analysis/device_model.c) */
static void test_device_bad_input(void **state)
{
    (void)state;
    expect_bad("plan --device v100", "--device must be a100, a800, h100 or h200 (got 'v100')");
    expect_bad("plan --device a800 --peak-tflops 0", "--peak-tflops must be a number above 0");
    expect_bad("plan --device a800 --mem-eff -0.5", "--mem-eff");
    expect_bad("plan --device a800 --pack-compute some", "--pack-compute must be real or full");
    expect_bad("plan --model 7b", "need --device");
    expect_bad("train --device a800", "labench plan --device");
    expect_bad("plan --device a800 --model huge", "unknown preset 'huge'");
    expect_bad("predict --device v100", "--device must be a100, a800, h100 or h200 (got 'v100')");
    expect_bad("predict --device a800 --hbm-gbps 0", "--hbm-gbps must be a number above 0");
    expect_bad("predict --device a800 --model 7b /nonexistent/run.json", "/nonexistent/run.json");
    char path[64], args[256];
    const char *glm = "{\"model_type\": \"chatglm\", \"hidden_size\": 4096}";
    test_write_file(path, sizeof path, glm, strlen(glm));
    snprintf(args, sizeof args, "plan --device a800 --model %s", path);
    expect_bad(args, "\"model_type\" is 'chatglm'");
    unlink(path);
    test_write_file(path, sizeof path, "{oops", 5);
    snprintf(args, sizeof args, "plan --device a800 --samples 100 --out /tmp/dm-never.json --model %s", path);
    expect_bad(args, path);
    unlink(path);
    assert_int_equal(-1, access("/tmp/dm-never.json", F_OK));
}

static void test_device_results(void **state)
{
    (void)state;
    char out[32768], path[] = "/tmp/labench-dm-XXXXXX.json";
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    close(fd);
    char args[512];
    snprintf(args, sizeof args,
             "plan --device h100 --model 7b --comm zero3-offload --strategy naive,packing --samples 400 "
             "--seed 3 --framework-ms 200 --out %s",
             path);
    int rc = run_cli(args, out, sizeof out);
    if (rc != 0) print_error("%s\n", out);
    assert_int_equal(0, rc);
    assert_non_null(strstr(out, "Predicted on 8xh100"));
    ResultsFile rf;
    char err[1024];
    assert_int_equal(0, results_read(path, &rf, err, sizeof err));
    assert_int_equal(2, rf.n_strategies);
    for (int i = 0; i < 2; i++) {
        const RepStrategy *s = &rf.strategies[i];
        assert_string_equal("h100", s->dev.device);
        assert_true(s->dev.wall_seconds > 0);
        assert_true(s->dev.mfu > 0 && s->dev.mfu < 1);
        assert_true(s->dev.comm_seconds > 0);
        assert_true(s->dev.bubble_fraction >= 0 && s->dev.bubble_fraction < 1);
        assert_close(s->dev.tokens_per_s * s->dev.wall_seconds, s->plan.real_tokens, 0, 1e-9);
    }
    /* the parameters travel with their sources */
    json_t *dp = json_object_get(json_object_get(json_array_get(json_object_get(rf.root, "strategies"), 0), "plan"),
                                 "device_prediction");
    json_t *fw = json_object_get(json_object_get(dp, "parameters"), "framework-ms");
    assert_close(json_number_value(json_object_get(fw, "value")), 0.2, 0, 1e-12);
    assert_non_null(strstr(json_string_value(json_object_get(fw, "source")), "--framework-ms 200"));
    results_file_free(&rf);
    /* REPORT.md gets the section (no LongAlign column: h100 is not the paper's setup) */
    snprintf(args, sizeof args, "report %s --out /tmp/labench-dm-report/REPORT.md", path);
    assert_int_equal(0, run_cli(args, out, sizeof out));
    FILE *f = fopen("/tmp/labench-dm-report/REPORT.md", "r");
    assert_non_null(f);
    size_t got = fread(out, 1, sizeof out - 1, f);
    out[got] = 0;
    fclose(f);
    assert_non_null(strstr(out, "### Predicted on 8xh100"));
    assert_non_null(strstr(out, "| packing | "));
    assert_null(strstr(out, "LongAlign h"));
    /* predict --device: other world sizes without a run; the JSON holds a prediction per W */
    snprintf(args, sizeof args, "predict --device a800 --model 1b --samples 300 --world-size 8,16 --out %s", path);
    rc = run_cli(args, out, sizeof out);
    if (rc != 0) print_error("%s\n", out);
    assert_int_equal(0, rc);
    assert_non_null(strstr(out, "W = 16"));
    char jerr[256];
    json_t *pj = read_json_file(path, 1 << 24, jerr, sizeof jerr);
    assert_non_null(pj);
    assert_int_equal(2, json_array_size(json_object_get(pj, "predictions")));
    json_t *w16 = json_array_get(json_object_get(pj, "predictions"), 1);
    assert_int_equal(16, json_integer_value(json_object_get(w16, "world_size")));
    assert_true(json_number_value(json_object_get(json_array_get(json_object_get(w16, "strategies"), 0),
                                                  "wall_seconds")) > 0);
    json_decref(pj);
    /* with a measured run: the device model beside its micro-batches (the fixture's naive ran 8
     * busy micro-batches of 4 s in all) and the fit's wall beside the device model's */
    snprintf(args, sizeof args, "predict --device a800 tests/fixtures/results-base.json --world-size 8 --out %s", path);
    rc = run_cli(args, out, sizeof out);
    if (rc != 0) print_error("%s\n", out);
    assert_int_equal(0, rc);
    assert_non_null(strstr(out, "fit/dev"));
    pj = read_json_file(path, 1 << 24, jerr, sizeof jerr);
    assert_non_null(pj);
    json_t *vs = json_array_get(json_object_get(pj, "measured_vs_device"), 0);
    assert_string_equal("naive", json_string_value(json_object_get(vs, "strategy")));
    assert_int_equal(8, json_integer_value(json_object_get(vs, "busy_micro_batches")));
    assert_close(json_number_value(json_object_get(vs, "measured_seconds")), 4.0, 0, 1e-9);
    assert_true(json_number_value(json_object_get(vs, "device_model_seconds")) > 0);
    json_decref(pj);
    /* a plan without --device reads as before, the field absent */
    snprintf(args, sizeof args, "plan --strategy sorted --samples 200 --out %s", path);
    assert_int_equal(0, run_cli(args, out, sizeof out));
    assert_int_equal(0, results_read(path, &rf, err, sizeof err));
    assert_null(rf.strategies[0].dev.device);
    results_file_free(&rf);
    unlink(path);
}

/* --attention: a bad value, a planning run, cuDNN without CUDA; each one line, exit 2 */
static void test_attention_option(void **state)
{
    (void)state;
    expect_bad("train --attention flash", "--attention must be auto, cudnn or wmma (got 'flash')");
    expect_bad("plan --attention wmma", "--attention is a training option");
    expect_bad("train --backend cpu --attention cudnn --steps 1 --samples 40 --len-scale 1/64 "
               "--len-dist data/longalign-mix.hist --no-progress --out /dev/null",
               "--attention cudnn needs the CUDA backend");
    /* no usable GPU here (CI): the backend's reason, on one line */
    char err[512], out[16384];
    Backend *gpu = backend_cuda_create(DT_BF16, 0, err, sizeof err);
    if (gpu) {
        gpu->destroy(gpu);
        print_message("a GPU is usable here: `--backend cuda --attention cudnn` runs, its refusal is not checked\n");
        return;
    }
    int rc = run_cli("train --backend cuda --attention cudnn --steps 1 --len-dist data/longalign-mix.hist", out,
                     sizeof out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "labench: --backend cuda: "));
    assert_non_null(strstr(out, err));
    assert_non_null(strchr(out, '\n'));
    assert_null(strchr(strchr(out, '\n') + 1, '\n'));   /* one line */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_bad_histogram),
        cmocka_unit_test(test_zero_lengths_plan),
        cmocka_unit_test(test_shipped_files_plan),
        cmocka_unit_test(test_huge_histogram),
        cmocka_unit_test(test_option_forms),
        cmocka_unit_test(test_no_half_written_output),
        cmocka_unit_test(test_grad_bad_batches),
        cmocka_unit_test(test_grad_uniform_loss),
        cmocka_unit_test(test_grad_non_finite),
        cmocka_unit_test(test_trace_matches_bubble),
        cmocka_unit_test(test_comm_zero3_shrinks_sorted_speedup),
        cmocka_unit_test(test_device_bad_input),
        cmocka_unit_test(test_device_results),
        cmocka_unit_test(test_attention_option),
    };
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
