/* REPORT.md's section for --dp real results: the real ranks against the simulation of their own
 * compute. Reads run.dp_real straight from the results JSON (rf->root); files without it (every
 * simulated run) get no section. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/results/report.h"

static const json_t *dp_real_of(const json_t *strategy)
{
    const json_t *run = json_object_get(strategy, "run");
    const json_t *d = json_is_object(run) ? json_object_get(run, "dp_real") : NULL;
    return json_is_object(d) ? d : NULL;
}

static double num(const json_t *obj, const char *a, const char *b)
{
    const json_t *x = json_object_get(json_object_get(obj, a), b);
    return json_is_number(x) ? json_number_value(x) : NAN;
}

int results_dp_real(const ResultsFile *rf)
{
    const json_t *c = json_object_get(rf->root, "config");
    const json_t *dp = json_object_get(c, "dp");
    return json_is_string(dp) && strcmp(json_string_value(dp), "real") == 0;
}

/* "sim / real | diff | " cells of one figure, n/a where the file has none. */
static void trio(FILE *f, const json_t *d, const char *key, const char *fmt, double scale)
{
    double s = num(d, "simulated", key), r = num(d, "measured", key), diff = num(d, "difference_percent", key);
    char a[32] = "n/a", b[32] = "n/a", c[32] = "n/a";
    if (isfinite(s)) snprintf(a, sizeof a, fmt, s * scale);
    if (isfinite(r)) snprintf(b, sizeof b, fmt, r * scale);
    if (isfinite(diff)) snprintf(c, sizeof c, "%+.0f%%", diff);
    fprintf(f, "%s / %s | %s | ", a, b, c);
}

void md_dp_real(FILE *f, const ResultsFile *rf)
{
    const json_t *arr = json_object_get(rf->root, "strategies");
    size_t i;
    const json_t *s, *d0 = NULL;   /* the first strategy that ran on real ranks */
    json_array_foreach(arr, i, s) if (!d0) d0 = dp_real_of(s);
    if (!d0) return;
    fputs("### Real ranks against the simulation\n\n"
          "Each strategy ran on real ranks (`--dp real`). *Simulated* applies DESIGN.md's arithmetic to the "
          "compute each rank measured in this run, with the modelled communication of the bytes its "
          "collectives moved; *real* is what the ranks measured: their waits at the arrival barrier before "
          "every collective (the bubble), the collectives themselves, the wall time. Difference: "
          "(simulated - real) / real.\n\n"
          "| strategy | ranks | collectives | DP bubble sim / real | diff | comm sim / real (s) | diff | "
          "tokens/s sim / real | diff | same weights on every rank |\n"
          "|---|---:|---|---:|---:|---:|---:|---:|---:|---|\n",
          f);
    json_array_foreach(arr, i, s) {
        const json_t *d = dp_real_of(s);
        if (!d) continue;
        const json_t *name = json_object_get(s, "name"), *pat = json_object_get(d, "pattern");
        fprintf(f, "| %s | %lld | %s | ", json_is_string(name) ? json_string_value(name) : "?",
                (long long)json_integer_value(json_object_get(d, "ranks")),
                json_is_string(pat) ? json_string_value(pat) : "?");
        trio(f, d, "dp_bubble_fraction", "%.1f%%", 100);
        trio(f, d, "comm_seconds", "%.3g", 1);
        trio(f, d, "effective_tokens_per_s", "%.0f", 1);
        fprintf(f, "%s |\n", json_is_true(json_object_get(d, "weights_identical")) ? "yes" : "**no**");
    }
    const json_t *tr = json_object_get(d0, "transport");
    fprintf(f, "\nCollectives: %s. On a CPU the modelled communication uses the `--system` link figures of "
               "GPUs, so its difference says how far those are from this machine, not how good the formulas "
               "are (docs/communication.md, \"Real data parallelism\").\n\n",
            json_is_string(tr) ? json_string_value(tr) : "unknown");
}
