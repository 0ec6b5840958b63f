/* Real data parallelism (--dp real) with `mpirun -np 2` on the CPU backend and the tiny model,
 * each rank single-threaded: the same loss curve and weights as the simulation, identical weights
 * on every rank, measured figures that add up, a failing or stuck rank ending every rank with
 * status 2 and its message, bad launches refused. Skipped, saying why, in a labench built
 * without MPI (NOMPI=1), where --dp real must say how to get it instead. */
#include "tests/test_util.h"

#include <jansson.h>
#include <time.h>

#include "bench/run/dp.h"
#include "bench/analysis/run_metrics.h"
#include "model/safetensors.h"

static const char *labench(void)
{
    const char *p = getenv("LABENCH");
    return p ? p : "./labench";
}

/* Every command of these tests starts with ENV: OpenMP single-threaded ranks, and under
 * `make check-asan` Open MPI's own leaks at MPI_Finalize suppressed (its plugins are unloaded by
 * then, so LeakSanitizer needs full stacks, fast_unwind_on_malloc=0, to see MPI_Init in them). */
static const char *ENV(void)
{
    static char env[512];
    if (!env[0]) {
        static const char supp[] = "leak:libmpi.so\nleak:libopen-pal.so\nleak:libopen-rte.so\nleak:libhwloc.so\n"
                                   "leak:libpmix.so\nleak:libevent\nleak:MPI_Init_thread\nleak:MPI_Finalize\n";
        char path[64];
        snprintf(path, sizeof path, "/tmp/labench-lsan-mpi-%d.supp", (int)getpid());
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(supp, f);
        fclose(f);
        snprintf(env, sizeof env,
                 "OMP_NUM_THREADS=1 LSAN_OPTIONS=suppressions=%s ASAN_OPTIONS=\"$ASAN_OPTIONS:fast_unwind_on_malloc=0\"",
                 path);
    }
    return env;
}

/* Shared-memory transport only (CI containers have no network), no CMA (containers may forbid
 * ptrace), root allowed, two ranks on whatever cores there are; a 120 s guard against hangs. */
#define MPIRUN                                                                                                    \
    "timeout 120 mpirun --allow-run-as-root --oversubscribe --mca btl self,vader "                                \
    "--mca btl_vader_single_copy_mechanism none"

/* The tiny CPU run every test uses: 2 layers, lengths x 1/16, a few steps. */
#define TINY "--backend cpu --samples 400 --val-samples 0 --no-progress"

/* Runs ENV CMD in the shell, stdout and stderr into out; returns its exit status (-1: killed). */
static int run_sh(const char *cmd, char *out, size_t n)
{
    char full[6144];
    snprintf(full, sizeof full, "%s %s", ENV(), cmd);
    return test_run_capture(full, out, n);
}

static int have_mpi(void)
{
    char out[256];
    return dp_mpi_compiled() && run_sh("command -v mpirun", out, sizeof out) == 0;
}

#define NEED_MPI()                                                                                                \
    do {                                                                                                          \
        if (!have_mpi()) {                                                                                        \
            printf("SKIP: %s\n", dp_mpi_compiled() ? "mpirun not found (scripts/setup.sh installs openmpi-bin)"   \
                                                   : "labench built without MPI (NOMPI=1)");                     \
            skip();                                                                                               \
        }                                                                                                         \
    } while (0)

/* `ENV mpirun -np 2 labench ARGS`; expects exit status want, returns the output (static buffer). */
static const char *mpi2env(const char *env, const char *args, int want)
{
    static char out[1 << 16];
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s " MPIRUN " -np 2 %s %s", env, labench(), args);
    int rc = run_sh(cmd, out, sizeof out);
    if (rc != want) {
        print_error("%s\n  exit %d (expected %d), output:\n%s\n", cmd, rc, want, out);
        fail();
    }
    return out;
}

static const char *mpi2(const char *args, int want) { return mpi2env("", args, want); }

static void expect_in(const char *out, const char *needle)
{
    if (!strstr(out, needle)) {
        print_error("expected '%s' in:\n%s\n", needle, out);
        fail();
    }
}

static json_t *run_of(const char *path)
{
    json_error_t e;
    json_t *root = json_load_file(path, 0, &e);
    if (!root) print_error("%s: %s\n", path, e.text);
    assert_non_null(root);
    return root;
}

static json_t *first_run(json_t *root) { return json_object_get(json_array_get(json_object_get(root, "strategies"), 0), "run"); }

static void tmp_path(char *buf, size_t n, const char *stem)
{
    static int k;
    snprintf(buf, n, "/tmp/labench-dp-%d-%d-%s", (int)getpid(), k++, stem);
}

/* The simulated and the real run of the same plan: loss curves, gradient norms, final weights. */
static void compare_modes(const char *dtype, const char *comm, double loss_rtol, double w_max, double w_rms)
{
    char sim_json[128], real_json[128], sim_w[128], real_w[128], args[2048], out[1 << 14];
    tmp_path(sim_json, sizeof sim_json, "sim.json");
    tmp_path(real_json, sizeof real_json, "real.json");
    tmp_path(sim_w, sizeof sim_w, "sim.safetensors");
    tmp_path(real_w, sizeof real_w, "real.safetensors");
    const char *common = TINY " --strategy sorted --steps 4";
    snprintf(args, sizeof args, "%s %s --dtype %s --world-size 2 --comm %s --out %s --save-model %s",
             labench(), common, dtype, comm, sim_json, sim_w);
    if (run_sh(args, out, sizeof out) != 0) {
        print_error("%s\n%s\n", args, out);
        fail();
    }
    snprintf(args, sizeof args, "%s --dtype %s --dp real --dp-check --comm %s --out %s --save-model %s", common, dtype,
             comm, real_json, real_w);
    mpi2(args, 0);

    json_t *a = run_of(sim_json), *b = run_of(real_json);
    json_t *ra = first_run(a), *rb = first_run(b);
    const char *curves[2] = {"loss_curve", "grad_norm"};
    for (int c = 0; c < 2; c++) {
        json_t *la = json_object_get(ra, curves[c]), *lb = json_object_get(rb, curves[c]);
        assert_int_equal(4, (int)json_array_size(la));
        assert_int_equal(json_array_size(la), json_array_size(lb));
        for (size_t i = 0; i < json_array_size(la); i++)
            assert_close(json_number_value(json_array_get(lb, i)), json_number_value(json_array_get(la, i)), 0,
                         loss_rtol);
    }
    /* every rank held the same parameters after every step, and at the end */
    json_t *d = json_object_get(rb, "dp_real");
    assert_true(json_is_true(json_object_get(d, "weights_identical")));
    json_t *sums = json_object_get(d, "step_checksums");
    assert_int_equal(4, (int)json_array_size(sums));
    size_t i;
    json_t *row;
    json_array_foreach(sums, i, row) {
        assert_int_equal(2, (int)json_array_size(row));
        assert_string_equal(json_string_value(json_array_get(row, 0)), json_string_value(json_array_get(row, 1)));
    }
    assert_string_equal("real", json_string_value(json_object_get(json_object_get(b, "config"), "dp")));
    /* final weights */
    ModelConfig ca, cb;
    float *wa, *wb;
    char err[512];
    assert_int_equal(0, safetensors_load_model(sim_w, &ca, &wa, err, sizeof err));
    assert_int_equal(0, safetensors_load_model(real_w, &cb, &wb, err, sizeof err));
    size_t n = model_param_count(&ca);
    assert_int_equal(n, model_param_count(&cb));
    double mx = 0, ss = 0;
    for (size_t k = 0; k < n; k++) {
        double e = fabs((double)wa[k] - (double)wb[k]);
        if (e > mx) mx = e;
        ss += e * e;
    }
    double rms = sqrt(ss / (double)n);
    print_message("%s %s: weights differ by at most %.3g, rms %.3g\n", dtype, comm, mx, rms);
    assert_true(mx <= w_max);
    assert_true(rms <= w_rms);
    free(wa);
    free(wb);
    json_decref(a);
    json_decref(b);
    unlink(sim_json), unlink(real_json), unlink(sim_w), unlink(real_w);
}

/* f32: the real run sums each rank's gradients, then the ranks; the simulation sums them in plan
 * order. The bound (docs/communication.md): losses to 1e-6 relative, weights to 1e-4 at most and
 * 1e-7 rms (lr 1e-3, 4 steps; measured about 2e-6 and 5e-9). */
static void test_dp_matches_simulated_f32(void **state)
{
    (void)state;
    NEED_MPI();
    compare_modes("fp32", "ddp", 1e-6, 1e-4, 1e-7);
    compare_modes("fp32", "zero3", 1e-6, 1e-4, 1e-7);
}

/* f64: the same to 1e-12 (weights saved as f32: equal to an f32 rounding, 1.2e-7 relative). */
static void test_dp_matches_simulated_f64(void **state)
{
    (void)state;
    NEED_MPI();
    compare_modes("fp64", "zero3", 1e-12, 1.2e-7, 1e-9);
}

/* The measured figures of a real run add up: bubble = sum of waits, comm = mean sum of collective
 * times, wall = sum of step walls; the simulated figures are run_metrics_compute on the records;
 * every (step, micro-step, rank) appears once; the trace's wait slices sum to the bubble. */
static void test_dp_figures_add_up(void **state)
{
    (void)state;
    NEED_MPI();
    char path[128], trace[128], args[1024];
    tmp_path(path, sizeof path, "fig.json");
    tmp_path(trace, sizeof trace, "trace.json");
    snprintf(args, sizeof args, TINY " --strategy naive --steps 3 --grad-accum 3 --dp real --comm ddp --out %s --trace=%s",
             path, trace);
    mpi2(args, 0);
    json_t *root = run_of(path), *run = first_run(root), *d = json_object_get(run, "dp_real");
    assert_int_equal(2, (int)json_integer_value(json_object_get(d, "ranks")));
    assert_int_equal(2, (int)json_integer_value(json_object_get(json_object_get(root, "config"), "dp_ranks")));
    /* the spans */
    double wait = 0, comm = 0;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(d, "spans"), i, s) {
        wait += json_number_value(json_array_get(s, 4));
        comm += json_number_value(json_array_get(s, 5));
    }
    assert_close(json_number_value(json_object_get(run, "bubble_seconds")), wait, 1e-9, 1e-9);
    assert_close(json_number_value(json_object_get(run, "comm_seconds")), comm / 2, 1e-9, 1e-9);
    double wall = 0;
    json_array_foreach(json_object_get(run, "step_wall_seconds"), i, s) wall += json_number_value(s);
    assert_close(json_number_value(json_object_get(run, "dp_wall_seconds")), wall, 1e-9, 1e-9);
    assert_true(comm > 0);
    /* one record per (step, micro-step, rank), in plan order; then the simulation from them */
    json_t *mbs = json_object_get(run, "micro_batches_detail");
    assert_int_equal(3 * 3 * 2, (int)json_array_size(mbs));
    MbRow recs[18];
    memset(recs, 0, sizeof recs);
    json_array_foreach(mbs, i, s) {
        MbRow *r = &recs[i];
        r->step = (int)json_integer_value(json_array_get(s, 0));
        r->micro = (int)json_integer_value(json_array_get(s, 1));
        r->rank = (int)json_integer_value(json_array_get(s, 2));
        r->rows = (int)json_integer_value(json_array_get(s, 3));
        r->real_tokens = json_integer_value(json_array_get(s, 6));
        r->computed_tokens = json_integer_value(json_array_get(s, 7));
        r->seconds = json_number_value(json_array_get(s, 9));
        assert_int_equal((int)i, (r->step * 3 + r->micro) * 2 + r->rank);
    }
    json_t *cost = json_object_get(json_object_get(json_object_get(d, "simulated"), "comm_model"), "cost");
    CommTimes ct = {json_number_value(json_object_get(cost, "per_micro_step_seconds")),
                    json_number_value(json_object_get(cost, "per_step_seconds")), 0};
    double opt[3];
    json_array_foreach(json_object_get(run, "optimizer_step_seconds"), i, s) opt[i] = json_number_value(s);
    RunMetrics m;
    run_metrics_compute(recs, 18, 2, SYNC_MICRO, 3, opt, 3, ct, 0, &m);
    json_t *sim = json_object_get(d, "simulated");
    assert_close(json_number_value(json_object_get(sim, "dp_bubble_fraction")), m.dp_bubble, 1e-9, 1e-6);
    assert_close(json_number_value(json_object_get(sim, "dp_wall_seconds")), m.dp_wall_s, 1e-9, 1e-6);
    assert_close(json_number_value(json_object_get(sim, "comm_seconds")), m.comm_s, 1e-12, 1e-6);
    /* the trace: a track per real rank, its wait slices adding up to the measured bubble */
    json_t *tr = run_of(trace);
    double wait_us = 0;
    int real_tracks = 0;
    json_array_foreach(json_object_get(tr, "traceEvents"), i, s) {
        const char *ph = json_string_value(json_object_get(s, "ph"));
        const char *cat = json_string_value(json_object_get(s, "cat"));
        const char *tn = json_string_value(json_object_get(json_object_get(s, "args"), "name"));
        if (ph && !strcmp(ph, "X") && cat && !strcmp(cat, "wait")) wait_us += json_number_value(json_object_get(s, "dur"));
        if (ph && !strcmp(ph, "M") && tn && !strncmp(tn, "real rank ", 10)) real_tracks++;
    }
    assert_int_equal(2, real_tracks);
    assert_close(wait_us * 1e-6, wait, 1e-6, 1e-6);
    json_decref(tr);
    /* and the report puts the two side by side */
    char cmd[1024], out[1 << 14], md[160];
    tmp_path(md, sizeof md, "REPORT.md");
    snprintf(cmd, sizeof cmd, "%s report %s -o %s --no-plots && cat %s", labench(), path, md, md);
    assert_int_equal(0, run_sh(cmd, out, sizeof out));
    expect_in(out, "### Real ranks against the simulation");
    expect_in(out, "W = 2 real ranks");
    unlink(md);
    json_decref(root);
    unlink(path), unlink(trace);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A rank that fails mid-run, and one that sees bad input alone: every rank exits 2 with its
 * message, in seconds (the 120 s guard would show as exit 124). */
static void test_dp_failing_rank(void **state)
{
    (void)state;
    NEED_MPI();
    double t = now_s();
    const char *out = mpi2env("LABENCH_DP_INJECT=1:1:fail", TINY " --strategy sorted --steps 3 --dp real --out /tmp/labench-dp-never.json", 2);
    expect_in(out, "rank 1 failed: fault injected at step 1");
    char cmd[2048], buf[1 << 14];
    snprintf(cmd, sizeof cmd,
             MPIRUN " -np 1 %s " TINY " --dp real --strategy sorted : -np 1 %s " TINY
                    " --dp real --strategy sorted --len-dist /nonexistent/one-rank.hist",
             labench(), labench());
    int rc = run_sh(cmd, buf, sizeof buf);
    if (rc != 2) print_error("%s\nexit %d\n%s\n", cmd, rc, buf);
    assert_int_equal(2, rc);
    expect_in(buf, "rank 1 failed: /nonexistent/one-rank.hist");
    print_message("both faults ended the job in %.1f s\n", now_s() - t);
    assert_true(access("/tmp/labench-dp-never.json", F_OK) != 0);
}

/* A rank that stops: --dp-timeout ends the run, naming it. */
static void test_dp_timeout_names_rank(void **state)
{
    (void)state;
    NEED_MPI();
    const char *out = mpi2env("LABENCH_DP_INJECT=1:1:hang", TINY " --strategy sorted --steps 3 --dp real --dp-timeout 2", 2);
    expect_in(out, "rank 1 did not arrive within 2 s (--dp-timeout)");
}

static void test_dp_bad_launch(void **state)
{
    (void)state;
    NEED_MPI();
    expect_in(mpi2(TINY " --strategy sorted --steps 1", 2), "without --dp real");
    expect_in(mpi2(TINY " --strategy sorted --steps 1 --dp real --world-size 3", 2),
              "--world-size 3 does not match the 2 processes");
    expect_in(mpi2(TINY " --strategy sorted --steps 1 --dp real --comm none", 2), "--comm none is for the simulation");
    expect_in(mpi2(TINY " --strategy sorted --steps 1 --dp real --comm zero3 --sync step", 2), "needs --sync micro");
    /* the same processes with different options plan differently */
    char cmd[2048], buf[1 << 14];
    snprintf(cmd, sizeof cmd, MPIRUN " -np 1 %s " TINY " --dp real --strategy sorted : -np 1 %s " TINY
                                     " --dp real --strategy sorted --seed 9",
             labench(), labench());
    assert_int_equal(2, run_sh(cmd, buf, sizeof buf));
    expect_in(buf, "rank 1 planned other batches than rank 0");
}

/* Without a launcher, --dp real is one rank (an MPI singleton): the W = 1 path a one-GPU
 * machine runs, here on the CPU; and the MPI collectives checked over two ranks. */
static void test_dp_singleton_and_check(void **state)
{
    (void)state;
    NEED_MPI();
    char cmd[1024], out[1 << 14];
    snprintf(cmd, sizeof cmd, "%s " TINY " --strategy packing --steps 2 --dp real --out /dev/null",
             labench());
    assert_int_equal(0, run_sh(cmd, out, sizeof out));
    expect_in(out, "--dp real: 1 rank");
    snprintf(cmd, sizeof cmd, MPIRUN " -np 2 %s dp-check --backend cpu", labench());
    assert_int_equal(0, run_sh(cmd, out, sizeof out));
    expect_in(out, "MPI reduce-scatter (sum) of 100003 f32 per rank over 2 rank(s)");
    assert_null(strstr(out, "WRONG"));
}

/* NCCL is loaded at run time, never linked; dp-check says what it found or why it cannot run. */
static void test_nccl_not_linked(void **state)
{
    (void)state;
    char cmd[1024], out[1 << 14];
    snprintf(cmd, sizeof cmd, "readelf -d %s", labench());
    if (run_sh(cmd, out, sizeof out) != 0) {
        printf("SKIP: readelf not available\n");
        skip();
    }
    expect_in(out, "NEEDED");
    assert_null(strstr(out, "libnccl"));
    snprintf(cmd, sizeof cmd, "%s dp-check --backend cuda", labench());
    int rc = run_sh(cmd, out, sizeof out);
    if (rc != 0) {
        assert_int_equal(2, rc);
        assert_true(strstr(out, "NCCL") || strstr(out, "GPU") || strstr(out, "CUDA"));
    }
}

/* Built without MPI: --dp real says how to get it. */
static void test_dp_without_mpi(void **state)
{
    (void)state;
    if (dp_mpi_compiled()) {
        printf("SKIP: this labench has MPI; the NOMPI=1 message is tested in that build\n");
        skip();
    }
    char cmd[512], out[4096];
    snprintf(cmd, sizeof cmd, "%s " TINY " --dp real --steps 1", labench());
    assert_int_equal(2, run_sh(cmd, out, sizeof out));
    expect_in(out, "built without MPI");
    expect_in(out, "mpirun -np W labench --dp real");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dp_matches_simulated_f32), cmocka_unit_test(test_dp_matches_simulated_f64),
        cmocka_unit_test(test_dp_figures_add_up),        cmocka_unit_test(test_dp_failing_rank),
        cmocka_unit_test(test_dp_timeout_names_rank),    cmocka_unit_test(test_dp_bad_launch),
        cmocka_unit_test(test_dp_singleton_and_check),   cmocka_unit_test(test_nccl_not_linked),
        cmocka_unit_test(test_dp_without_mpi),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char path[64];
    snprintf(path, sizeof path, "/tmp/labench-lsan-mpi-%d.supp", (int)getpid());
    unlink(path);
    return rc;
}
