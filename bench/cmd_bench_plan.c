/* `labench bench-plan`: how long each strategy takes to plan, on one core. A benchmark, not a
 * test: it prints timings and asserts nothing. */
#include "bench/hist.h"
#include "bench/plan_metrics.h"
#include "bench/sample.h"
#include "bench/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("usage: labench bench-plan [--samples N] [--len-dist FILE.hist] [--seed S]\n"
          "  Times plan_make for every strategy at its default config (W=8, L=65536).\n"
          "  --samples N        samples to plan (default 1000000)\n"
          "  --len-dist F       draw them from a .hist (default: the built-in synthetic mix)\n"
          "  --seed S           sampler and planner seed (default 1)\n",
          f);
}

int cmd_bench_plan(int argc, char **argv)
{
    long long n = 1000000, seed = 1;
    const char *dist = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) die_input("bench-plan: %s needs a value (see --help)", a);
        const char *v = argv[++i];
        if (strcmp(a, "--samples") == 0) {
            if (parse_i64(v, 1, INT32_MAX, &n) != 0)
                die_input("--samples must be an integer from 1 to %d (got '%s')", INT32_MAX, QUOTE(v));
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_i64(v, 0, INT64_MAX, &seed) != 0)
                die_input("--seed must be a non-negative integer (got '%s')", QUOTE(v));
        } else if (strcmp(a, "--len-dist") == 0) {
            dist = v;
        } else {
            die_input("bench-plan: unknown option '%s' (see --help)", a);
        }
    }

    char err[1024];
    Sample *samples = NULL;
    int64_t n_samples = 0;
    if (dist) {
        Hist h;
        if (hist_load(dist, &h, err, sizeof err) != 0) die_input("%s", err);
        int rc = sample_draw(&h, n, 1.0, (uint64_t)seed, &samples, &n_samples, err, sizeof err);
        hist_free(&h);
        if (rc != 0) die_input("%s", err);
    } else {
        samples = malloc((size_t)n * sizeof *samples);
        if (!samples) die_input("out of memory for %lld samples", n);
        plan_synthetic_mix(samples, n, (uint64_t)seed);
        n_samples = n;
    }

    printf("planning %lld samples from %s, one core\n\n", (long long)n_samples, dist ? dist : "the synthetic mix");
    printf("%-17s %10s %8s %9s %8s %9s\n", "strategy", "plan ms", "steps", "rows", "pack %", "pred.bub%");
    for (int i = 0; i < N_STRATEGIES; i++) {
        const Strategy *s = STRATEGIES[i];
        PlanConfig cfg = plan_config_default(s);
        cfg.seed = (uint64_t)seed;
        Plan plan;
        double t0 = wall_seconds();
        if (plan_make(s, &cfg, samples, n_samples, &plan, err, sizeof err) != 0) {
            free(samples);
            die_input("%s: %s", s->name, err);
        }
        double dt = wall_seconds() - t0;
        PlanMetrics m;
        plan_metrics_compute(&plan, samples, &m);
        printf("%-17s %10.1f %8lld %9lld %8.3f %9.3f\n", s->name, 1e3 * dt, (long long)m.optimizer_steps,
               (long long)m.rows, 100 * m.packing_efficiency, 100 * m.predicted_bubble);
        plan_free(&plan);
    }
    free(samples);
    return 0;
}
