/* `labench bench-plan`: how long each strategy takes to plan and to score its plan, on one core,
 * and how much memory that takes. A benchmark, not a test: it prints timings and asserts nothing. */
#include "bench/cli/cli.h"
#include "bench/input/hist.h"
#include "bench/analysis/plan_budget.h"
#include "bench/analysis/plan_metrics.h"
#include "common/progress.h"
#include "bench/input/sample.h"
#include "common/error.h"
#include "common/host.h"
#include "common/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fputs("usage: labench bench-plan [--samples N] [--len-dist FILE.hist] [--strategy S] [--seed S]\n"
          "  Times plan_make and plan_metrics_compute for each strategy at its default config\n"
          "  (W=8, L=65536), and prints the memory estimate `labench plan` checks before drawing.\n"
          "  --samples N        samples to plan (default 1000000; up to 2147483647)\n"
          "  --len-dist F       draw them from a .hist (default: the built-in synthetic mix)\n"
          "  --strategy S       one strategy or a comma-separated list (default all)\n"
          "  --seed S           sampler and planner seed (default 1)\n"
          "  --progress / --no-progress   progress of phases over 2 s (default: when a terminal)\n"
          "Options with a value take it as `--opt VALUE` or `--opt=VALUE`.\n",
          f);
}

int cmd_bench_plan(int argc, char **argv, const char *command_line)
{
    long long n = 1000000, seed = 1;
    const char *dist = NULL, *spec = NULL;
    int progress = isatty(2);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--progress") == 0) {
            progress = 1;
        } else if (strcmp(a, "--no-progress") == 0) {
            progress = 0;
        } else if ((v = cli_opt_value(argc, argv, &i, "--samples"))) {
            if (parse_i64(v, 1, INT32_MAX, &n) != 0)
                die_input("--samples must be an integer from 1 to %d (got '%s')", INT32_MAX, QUOTE(v));
        } else if ((v = cli_opt_value(argc, argv, &i, "--seed"))) {
            if (parse_i64(v, 0, INT64_MAX, &seed) != 0)
                die_input("--seed must be a non-negative integer (got '%s')", QUOTE(v));
        } else if ((v = cli_opt_value(argc, argv, &i, "--len-dist"))) {
            dist = v;
        } else if ((v = cli_opt_value(argc, argv, &i, "--strategy"))) {
            spec = v;
        } else {
            die_input("bench-plan: unknown option '%s' (see --help)", a);
        }
    }
    const Strategy *chosen[32];
    int n_strat = select_strategies(spec, chosen);
    PlanConfig cfgs[32];
    for (int i = 0; i < n_strat; i++) {
        cfgs[i] = plan_config_default(chosen[i]);
        cfgs[i].seed = (uint64_t)seed;
    }

    char err[2048];
    Sample *samples = NULL;
    int64_t n_samples = 0;
    Hist h;
    double mean_len = 0;
    if (dist) {
        if (hist_load(dist, &h, err, sizeof err) != 0) die_input("%s", err);
        if (hist_zero_note(&h, err, sizeof err)) fprintf(stderr, "labench: %s\n", err);
        mean_len = plan_budget_mean_len(&h, 1.0);
    } else {
        mean_len = 65536;   /* not known before drawing: assume the longest, the largest estimate */
    }
    if (plan_budget_check(chosen, cfgs, n_strat, n, mean_len, 0, err, sizeof err) != 0) {
        if (dist) hist_free(&h);
        die_input("%s: %s", dist ? dist : "bench-plan", err);
    }
    progress_begin(progress, "drawing %lld samples", n);
    if (dist) {
        int rc = sample_draw(&h, n, 1.0, (uint64_t)seed, &samples, &n_samples, err, sizeof err);
        hist_free(&h);
        if (rc != 0) die_input("%s", err);
    } else {
        samples = malloc((size_t)n * sizeof *samples);
        if (!samples) die_input("out of memory for %lld samples", n);
        plan_synthetic_mix(samples, n, (uint64_t)seed);
        n_samples = n;
    }
    progress_end();

    int64_t budget = plan_budget(chosen, cfgs, n_strat, n_samples, mean_len, 0, NULL);
    printf("planning %lld samples from %s, one core; estimated peak %.2f GiB\n\n", (long long)n_samples,
           dist ? dist : "the synthetic mix", (double)budget / (double)(1 << 30));
    printf("%-17s %10s %10s %10s %8s %9s %8s %9s\n", "strategy", "plan ms", "score ms", "est. MiB", "steps", "rows",
           "pack %", "pred.bub%");
    for (int i = 0; i < n_strat; i++) {
        const Strategy *s = chosen[i];
        Plan plan;
        progress_begin(progress, "planning %s", s->name);
        double t0 = wall_seconds();
        if (plan_make(s, &cfgs[i], samples, n_samples, &plan, err, sizeof err) != 0) {
            free(samples);
            die_input("%s: %s", s->name, err);
        }
        double dt = wall_seconds() - t0;
        progress_begin(progress, "scoring %s's plan", s->name);
        PlanMetrics m;
        t0 = wall_seconds();
        plan_metrics_compute(&plan, samples, &m);
        double ds = wall_seconds() - t0;
        progress_end();
        int64_t one = plan_budget_one(s, &cfgs[i], n_samples, mean_len, NULL);
        printf("%-17s %10.1f %10.1f %10.0f %8lld %9lld %8.3f %9.3f\n", s->name, 1e3 * dt, 1e3 * ds,
               (double)one / (double)(1 << 20), (long long)m.optimizer_steps, (long long)m.rows,
               100 * m.packing_efficiency, 100 * m.predicted_bubble);
        fflush(stdout);
        plan_free(&plan);
    }
    free(samples);
    return 0;
}
