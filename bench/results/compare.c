/* `labench compare`: the regression gate. Deltas per strategy and metric between a baseline and
 * a current results file of the same workload on the same device; a fall in effective tokens/s
 * or a growth in peak memory beyond the tolerance is a regression (exit 1). */
#include "bench/results/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"

int parse_tolerance(const char *s, double *out)
{
    if (!s || !*s) return -1;
    size_t n = strlen(s);
    double v;
    if (s[n - 1] == '%') {
        char num[64];
        if (n - 1 >= sizeof num) return -1;
        snprintf(num, sizeof num, "%.*s", (int)(n - 1), s);
        if (parse_f64(num, 0, 100, &v) != 0) return -1;
        *out = v / 100;
        return 0;
    }
    /* A bare number must be a fraction: "5" could mean 5% or 500%. */
    if (parse_f64(s, 0, 1, &v) != 0 || v >= 1) return -1;
    *out = v;
    return 0;
}

/* ---- are the two files comparable? ---- */

typedef struct {
    char text[3072];
    int n;
} Diffs;

static void value_text(const json_t *v, char *buf, size_t n)
{
    if (!v) {
        snprintf(buf, n, "absent");
        return;
    }
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(10));
    snprintf(buf, n, "%s", s ? s : "?");
    if (strlen(buf) > 40) snprintf(buf + 37, n - 37, "...");
    free(s);
}

static void diff_add(Diffs *d, const char *path, const json_t *a, const json_t *b)
{
    char va[64], vb[64];
    value_text(a, va, sizeof va);
    value_text(b, vb, sizeof vb);
    size_t k = strlen(d->text);
    snprintf(d->text + k, sizeof d->text - k, "%s%s (%s vs %s)", d->n ? ", " : "", path, va, vb);
    d->n++;
}

/* Records every leaf that differs under path; numbers compare by value (1 == 1.0). */
static void diff_json(Diffs *d, const char *path, const json_t *a, const json_t *b)
{
    if (json_is_object(a) && json_is_object(b)) {
        const char *key;
        const json_t *v;
        char sub[512];
        json_object_foreach((json_t *)a, key, v) {
            snprintf(sub, sizeof sub, "%s.%s", path, key);
            diff_json(d, sub, v, json_object_get(b, key));
        }
        json_object_foreach((json_t *)b, key, v) {
            if (json_object_get(a, key)) continue;
            snprintf(sub, sizeof sub, "%s.%s", path, key);
            diff_add(d, sub, NULL, v);
        }
        return;
    }
    if (json_is_number(a) && json_is_number(b) && json_number_value(a) == json_number_value(b)) return;
    if (a && b && json_equal((json_t *)a, (json_t *)b)) return;
    if (!a && !b) return;
    diff_add(d, path, a, b);
}

static void check_compatible(const ResultsFile *a, const ResultsFile *b, Diffs *d)
{
    static const char *fields[] = {"len_dist", "samples", "len_scale", "seed", "model", "dtype",
                                   "steps", "recompute", "comm", "comm_per_micro_step_seconds",
                                   "comm_per_step_seconds"};
    diff_json(d, "kind", json_object_get(a->root, "kind"), json_object_get(b->root, "kind"));
    const json_t *ma = json_object_get(a->root, "machine"), *mb = json_object_get(b->root, "machine");
    diff_json(d, "machine.device", json_object_get(ma, "device"), json_object_get(mb, "device"));
    const json_t *ca = json_object_get(a->root, "config"), *cb = json_object_get(b->root, "config");
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "config.%s", fields[i]);
        diff_json(d, path, json_object_get(ca, fields[i]), json_object_get(cb, fields[i]));
    }
    for (int i = 0; i < a->n_strategies; i++) {
        const RepStrategy *sb = results_find(b, a->strategies[i].name);
        if (!sb) continue;
        char path[256];
        snprintf(path, sizeof path, "strategies[%s].plan_config", a->strategies[i].name);
        diff_json(d, path, a->strategies[i].plan_config, sb->plan_config);
    }
}

/* ---- the table ---- */

typedef enum { HIGHER_BETTER_GATED, LOWER_BETTER_GATED, POINTS, ABSOLUTE } DeltaKind;

typedef struct {
    const char *label;
    DeltaKind kind;
    double scale;                /* value shown = field x scale */
    const char *unit;
    int decimals;
} Metric;

static const Metric METRICS[] = {
    {"effective tokens/s", HIGHER_BETTER_GATED, 1, "", 0},
    {"DP bubble", POINTS, 100, "%", 2},
    {"padding", POINTS, 100, "%", 2},
    {"peak memory", LOWER_BETTER_GATED, 1, " MiB", 1},
    {"MFU", POINTS, 100, "%", 3},
    {"final loss", ABSOLUTE, 1, "", 4},
};
#define N_METRICS (int)(sizeof METRICS / sizeof METRICS[0])

static double metric_value(const RepRun *r, int m)
{
    switch (m) {
    case 0: return r->effective_tps;
    case 1: return r->dp_bubble;
    case 2: return r->padding;
    case 3: return r->peak_mib;
    case 4: return r->mfu;
    default: return r->final_loss;
    }
}

static void fmt_value(char *buf, size_t n, const Metric *m, double v)
{
    if (!isfinite(v))
        snprintf(buf, n, "n/a");
    else
        snprintf(buf, n, "%.*f%s", m->decimals, v * m->scale, m->unit);
}

/* One row; returns 1 when it is a regression beyond tol. */
static int compare_metric(FILE *out, const char *strategy, const Metric *m, double a, double b, double tol,
                          char *why, size_t whylen)
{
    char va[64], vb[64], change[64] = "n/a", verdict[128] = "";
    fmt_value(va, sizeof va, m, a);
    fmt_value(vb, sizeof vb, m, b);
    int regression = 0;
    if (isfinite(a) && isfinite(b)) {
        if (m->kind == POINTS)
            snprintf(change, sizeof change, "%+.*f pts", m->decimals, (b - a) * m->scale);
        else if (m->kind == ABSOLUTE || a == 0)
            snprintf(change, sizeof change, "%+.*f", m->decimals, (b - a) * m->scale);
        else
            snprintf(change, sizeof change, "%+.1f%%", 100 * (b - a) / a);
    }
    if (m->kind == HIGHER_BETTER_GATED && isfinite(a)) {
        regression = !isfinite(b) || b < a * (1 - tol);
        if (regression) snprintf(verdict, sizeof verdict, "REGRESSION: fell more than %g%%", 100 * tol);
    } else if (m->kind == LOWER_BETTER_GATED && isfinite(a)) {
        regression = !isfinite(b) || b > a * (1 + tol);
        if (regression) snprintf(verdict, sizeof verdict, "REGRESSION: grew more than %g%%", 100 * tol);
    }
    if (regression) snprintf(why, whylen, "%s %s %s -> %s (%s)", strategy, m->label, va, vb, change);
    if (out) fprintf(out, "| %s | %s | %s | %s | %s | %s |\n", strategy, m->label, va, vb, change, verdict);
    return regression;
}

int compare_files(const char *baseline, const char *current, double tolerance, FILE *out, char *err, size_t errlen)
{
    ResultsFile a, b;
    if (results_read(baseline, &a, err, errlen) != 0) return COMPARE_UNUSABLE;
    if (results_read(current, &b, err, errlen) != 0) {
        results_file_free(&a);
        return COMPARE_UNUSABLE;
    }
    int status = 0;
    Diffs d = {.n = 0};
    d.text[0] = 0;
    check_compatible(&a, &b, &d);
    if (d.n > 0) {
        snprintf(err, errlen,
                 "%s and %s are not comparable: %s differ%s. A comparison needs the same workload on the same "
                 "device; refresh the baseline if the change is intended",
                 baseline, current, d.text, d.n == 1 ? "s" : "");
        status = COMPARE_UNUSABLE;
        goto done;
    }
    if (strcmp(a.kind, "train") != 0) {
        snprintf(err, errlen, "%s and %s are plan-only results: compare gates measured runs (labench train --out)",
                 baseline, current);
        status = COMPARE_UNUSABLE;
        goto done;
    }
    if (out) {
        fprintf(out, "labench compare: baseline %s (commit %s, %s), current %s (commit %s, %s) on %s; tolerance %g%%\n\n",
                baseline, a.commit, a.created, current, b.commit, b.created, a.device ? a.device : "unknown",
                100 * tolerance);
        fputs("| strategy | metric | baseline | current | change | verdict |\n|---|---|---:|---:|---:|---|\n", out);
    }
    int regressions = 0, compared = 0;
    char first_why[512] = "", why[512];
    for (int i = 0; i < a.n_strategies; i++) {
        const RepStrategy *sa = &a.strategies[i], *sb = results_find(&b, sa->name);
        if (!sb) {
            if (out) fprintf(out, "| %s | only in the baseline | | | | not compared |\n", sa->name);
            continue;
        }
        compared++;
        for (int m = 0; m < N_METRICS; m++)
            if (compare_metric(out, sa->name, &METRICS[m], metric_value(sa->run, m), metric_value(sb->run, m),
                               tolerance, why, sizeof why)) {
                if (!regressions) snprintf(first_why, sizeof first_why, "%s", why);
                regressions++;
            }
    }
    for (int i = 0; i < b.n_strategies; i++)
        if (!results_find(&a, b.strategies[i].name) && out)
            fprintf(out, "| %s | only in the current results | | | | not compared |\n", b.strategies[i].name);
    if (out) {
        if (regressions)
            fprintf(out, "\n%d regression%s beyond %g%%, first: %s\n", regressions, regressions == 1 ? "" : "s",
                    100 * tolerance, first_why);
        else
            fprintf(out, "\nno regression beyond %g%% (%d strateg%s compared)\n", 100 * tolerance, compared,
                    compared == 1 ? "y" : "ies");
    }
    status = regressions ? 1 : 0;
done:
    results_file_free(&a);
    results_file_free(&b);
    return status;
}
