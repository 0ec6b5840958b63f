/* The memory estimate `labench plan` checks before drawing (bench/analysis/plan_budget.c): an upper bound
 * of every registered strategy's measured peak, and not a loose one; MemAvailable and its
 * override; and the refusal, with the --samples N that fits. */
#include "tests/test_util.h"

#include <sys/wait.h>

#include "bench/analysis/plan_budget.h"
#include "bench/analysis/plan_metrics.h"
#include "common/host.h"

/* Peak bytes of planning and scoring with s, measured in a fresh child (a clean heap, where
 * these large arrays are mapped and unmapped whole): VmHWM after, less VmRSS before. */
static int64_t measured_peak(const Strategy *s, const PlanConfig *cfg, const Sample *x, int64_t n)
{
    int fd[2];
    assert_int_equal(0, pipe(fd));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        int64_t delta = -1;
        FILE *clear = fopen("/proc/self/clear_refs", "w");
        if (clear && fputs("5", clear) >= 0 && fclose(clear) == 0) {   /* "5": reset VmHWM */
            int64_t before = proc_kb_field("/proc/self/status", "VmRSS");
            Plan p;
            char err[256];
            PlanMetrics m;
            if (plan_make(s, cfg, x, n, &p, err, sizeof err) == 0) {
                plan_metrics_compute(&p, x, &m);
                delta = proc_kb_field("/proc/self/status", "VmHWM") - before;
                plan_free(&p);
            }
        }
        ssize_t w = write(fd[1], &delta, sizeof delta);
        _exit(w == (ssize_t)sizeof delta ? 0 : 1);
    }
    close(fd[1]);
    int64_t delta = -1;
    assert_int_equal((ssize_t)sizeof delta, read(fd[0], &delta, sizeof delta));
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return delta;
}

static void test_estimate_bounds_measured_peak(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    skip();   /* ASan's shadow memory and quarantine are part of the resident set there */
#endif
    FILE *probe = fopen("/proc/self/clear_refs", "w");
    if (!probe) {
        print_message("SKIP: /proc/self/clear_refs not writable: cannot measure a peak\n");
        skip();
    }
    fclose(probe);
    const int64_t n = 1000000;
    Sample *x = malloc((size_t)n * sizeof *x);
    assert_non_null(x);
    plan_synthetic_mix(x, n, 1);
    double mean = 0;
    for (int64_t i = 0; i < n; i++) mean += x[i].len;
    mean /= (double)n;
    /* Two epochs too: the second holds the first's plan, and what the heap kept of its scratch. */
    for (int epochs = 1; epochs <= 2; epochs++)
        for (int i = 0; i < N_STRATEGIES; i++) {
            const Strategy *s = STRATEGIES[i];
            if (!plan_budget_knows(s)) fail_msg("bench/analysis/plan_budget.c has no scratch size for strategy '%s'", s->name);
            PlanConfig cfg = plan_config_default(s);
            cfg.epochs = epochs;
            int64_t est = plan_budget_one(s, &cfg, n, mean, NULL);
            int64_t got = measured_peak(s, &cfg, x, n);
            print_message("%-17s %d epoch(s): estimated %6.1f MB, measured %6.1f MB (%.0f%%)\n", s->name, epochs,
                          est / 1e6, got / 1e6, 100.0 * (double)got / (double)est);
            assert_true(got > 0);
            assert_true(got <= est);            /* an upper bound ... */
            assert_true(got >= est * 6 / 10);   /* ... and not a loose one */
        }
    free(x);
}

static void test_budget_grows_with_what_is_kept(void **state)
{
    (void)state;
    const Strategy *s[N_STRATEGIES];
    PlanConfig cfg[N_STRATEGIES];
    for (int i = 0; i < N_STRATEGIES; i++) {
        s[i] = STRATEGIES[i];
        cfg[i] = plan_config_default(s[i]);
    }
    const char *largest = NULL;
    int64_t one_at_a_time = plan_budget(s, cfg, N_STRATEGIES, 100000000, 1000, 0, &largest);
    int64_t kept = plan_budget(s, cfg, N_STRATEGIES, 100000000, 1000, 1, NULL);
    assert_string_equal(largest, "sorted");   /* its sort keys: 24 bytes a sample beside the plan */
    assert_true(kept > one_at_a_time);
    /* 10^8 samples: the samples (0.8 GB) plus sorted's peak (7.7 GB); `labench plan` measured
     * 8.4 GB of peak resident memory on such a histogram. */
    assert_true(one_at_a_time > INT64_C(8000000000) && one_at_a_time < INT64_C(9000000000));
    /* Linear in the samples, up to the fixed margin. */
    int64_t half = plan_budget(s, cfg, N_STRATEGIES, 50000000, 1000, 0, NULL);
    assert_close((double)(one_at_a_time - half), (double)(half - plan_budget(s, cfg, N_STRATEGIES, 0, 1000, 0, NULL)),
                 0, 0.01);
    /* More epochs, more plan; a second epoch does not double the scratch. */
    PlanConfig two = cfg[1];
    two.epochs = 2;
    int64_t e1 = plan_budget_one(s[1], &cfg[1], 1000000, 1000, NULL), e2 = plan_budget_one(s[1], &two, 1000000, 1000, NULL);
    assert_true(e2 > e1 && e2 < 2 * e1);
}

static void test_available_and_refusal(void **state)
{
    (void)state;
    char err[1024];
    const char *src = NULL;
    setenv("LABENCH_MEMAVAILABLE", "1.5G", 1);
    assert_int_equal(plan_budget_available(&src, err, sizeof err), INT64_C(1610612736));
    assert_string_equal(src, "LABENCH_MEMAVAILABLE");
    setenv("LABENCH_MEMAVAILABLE", "4096", 1);
    assert_int_equal(plan_budget_available(NULL, err, sizeof err), 4096);
    setenv("LABENCH_MEMAVAILABLE", "lots", 1);
    assert_int_equal(plan_budget_available(NULL, err, sizeof err), -2);
    assert_non_null(strstr(err, "LABENCH_MEMAVAILABLE='lots'"));
    unsetenv("LABENCH_MEMAVAILABLE");
    int64_t real = plan_budget_available(&src, err, sizeof err);
    if (real != -1) {   /* Linux: /proc/meminfo */
        assert_true(real > 0);
        assert_string_equal(src, "MemAvailable in /proc/meminfo");
    }

    const Strategy *s[1] = {strategy_find("sorted")};
    PlanConfig cfg = plan_config_default(s[0]);
    setenv("LABENCH_MEMAVAILABLE", "1G", 1);
    assert_int_equal(plan_budget_check(s, &cfg, 1, 1000000, 2000, 0, err, sizeof err), 0);
    assert_int_equal(plan_budget_check(s, &cfg, 1, 100000000, 2000, 0, err, sizeof err), -1);
    print_message("%s\n", err);
    assert_non_null(strstr(err, "100000000 samples need about"));
    assert_non_null(strstr(err, "sorted"));
    /* The N it suggests fits, with room to spare. */
    const char *at = strstr(err, "--samples ");
    assert_non_null(at);
    at = strstr(at + 10, "--samples ");
    assert_non_null(at);
    long long fit = atoll(at + 10);
    assert_true(fit >= 1000000);
    assert_true(plan_budget(s, &cfg, 1, fit, 2000, 0, NULL) <= (INT64_C(1) << 30));
    assert_true(plan_budget(s, &cfg, 1, 2 * fit, 2000, 0, NULL) > (INT64_C(1) << 30) * 8 / 10);
    unsetenv("LABENCH_MEMAVAILABLE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_estimate_bounds_measured_peak),
        cmocka_unit_test(test_budget_grows_with_what_is_kept),
        cmocka_unit_test(test_available_and_refusal),
    };
    return cmocka_run_group_tests_name("budget", tests, NULL, NULL);
}
