/* The memory estimate of planning (see plan_budget.h). Every constant below is an allocation of
 * strategies/ or bench/plan_metrics.c, per sample; tests/test_budget.c measures the real peak. */
#include "bench/plan_budget.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Memory is counted as Linux charges it: the bytes written. A planner allocates some arrays at
 * their worst case (a Row per sample use for packs that hold a dozen samples each) and writes
 * only a part; only that part takes memory. */

/* Bytes of one phase of a planner at its peak: so much per sample of one epoch (n), per sample
 * use over all epochs (u), per row of the plan (rows) and per micro-batch slot (slots). */
typedef struct { int n, u, rows, slots; } Phase;

/* Each planner's phases, from its allocations in strategies/ (plan_make's truncated copy of the
 * samples, 8 per sample, is part of every one). A Segment is 16 bytes per use, a Row 20, a
 * MicroBatch slot 8. */
static const struct { const char *name; Phase phase[2]; int bfd_index; } PLANNERS[] = {
    /* the epoch's order (int32), then segments, rows and slots */
    {"naive", {{8 + 4, 16, 20, 8}}, 0},
    /* order and out (int32), keys and the radix sort's buffer (uint64) */
    {"sorted", {{8 + 24, 16, 20, 8}}, 0},
    {"packing", {{8 + 4, 16, 20, 8}}, 0},
    {"packing-lw", {{8 + 4, 16, 20, 8}}, 0},
    /* packs_bfd: order, row_of, items (int32), keys and buffer (uint64), a free-space count, a
     * stack link and a start per row; then the packs' items and starts, a row order, and the plan */
    {"packing-bfd", {{8 + 28, 0, 12, 0}, {8 + 4, 16, 20 + 8, 8}}, 1},
    /* the same packs, then the packs' costs (16) and order (4) while the rows are built; the
     * balancer's own scratch is written only a group at a time */
    {"packing-balanced", {{8 + 28, 0, 12, 0}, {8 + 4, 16, 20 + 24, 8}}, 1},
};
#define N_PLANNERS ((int)(sizeof PLANNERS / sizeof PLANNERS[0]))

/* Scoring (bench/plan_metrics.c) beside the finished plan: a double per segment (1/M of its
 * step) and, for long10%, an int32 copy of the lengths that glibc's qsort (a merge sort) copies
 * once more. */
#define METRICS_PER_USE 16
#define SEGMENT_BYTES 16
#define ROW_BYTES 20
#define SLOT_BYTES 8
#define SAMPLE_BYTES 8
/* The training set: val_split's copy of the samples and their ids (8 + 8), and its scratch. */
#define TRAIN_SET_BYTES 21
/* Per plan: the small arrays (W and A sized), code and pages touched for the first time. */
#define PLAN_FIXED_BYTES (INT64_C(1) << 20)
/* The process itself (code, OpenBLAS and OpenMP buffers, the histogram): a margin. */
#define BASE_BYTES (INT64_C(64) << 20)

static int planner_of(const Strategy *s)
{
    for (int i = 0; i < N_PLANNERS; i++)
        if (s && strcmp(s->name, PLANNERS[i].name) == 0) return i;
    return -1;
}

int plan_budget_knows(const Strategy *s) { return planner_of(s) >= 0; }

/* packs_bfd's index over free space: a stack head (int32) per bucket and a bit tree, about an
 * eighth of a byte per bucket. */
static int64_t bfd_index_bytes(int32_t L)
{
    int shift = 0;
    while ((L >> shift) >= (1 << 22)) shift++;
    int64_t buckets = ((int64_t)L >> shift) + 1;
    return 4 * buckets + buckets / 8 + 64;
}

static int64_t phase_bytes(const Phase *ph, int64_t n, int64_t u, int64_t rows, int64_t slots)
{
    return ph->n * n + ph->u * u + ph->rows * rows + ph->slots * slots;
}

int64_t plan_budget_one(const Strategy *s, const PlanConfig *cfg, int64_t n_samples, double mean_len,
                        int64_t *kept)
{
    const int64_t N = n_samples > 0 ? n_samples : 0;
    const int64_t E = cfg->epochs > 0 ? cfg->epochs : 1, U = N * E;
    const int64_t per_step = (int64_t)cfg->world_size * cfg->grad_accum;
    const double L = cfg->max_tokens > 0 ? cfg->max_tokens : 1;
    int64_t rows, slots;
    if (s && s->packs) {
        /* Two consecutive packs never fit in one, so packs average more than L/2 tokens. */
        double len = mean_len < L ? mean_len : L;
        double bound = 2.0 * (double)U * len / L + (double)E;
        rows = bound < (double)U ? (int64_t)bound : U;
        slots = rows;
    } else {
        int64_t B = cfg->micro_batch > 0 ? cfg->micro_batch : 1;
        rows = U;
        slots = (N + B - 1) / B * E;
    }
    slots += per_step * E;   /* each epoch's last step is padded with empty slots */

    int64_t plan = SEGMENT_BYTES * U + ROW_BYTES * rows + SLOT_BYTES * slots + PLAN_FIXED_BYTES;
    int64_t peak = plan + METRICS_PER_USE * U;
    int k = planner_of(s);
    for (int i = 0; i < N_PLANNERS; i++) {
        if (k >= 0 && i != k) continue;   /* an unknown planner: the largest known one */
        int64_t fixed = PLAN_FIXED_BYTES + (PLANNERS[i].bfd_index ? bfd_index_bytes(cfg->max_tokens) : 0);
        for (int j = 0; j < 2; j++) {
            int64_t b = phase_bytes(&PLANNERS[i].phase[j], N, U, rows, slots) + fixed;
            if (b > peak) peak = b;
        }
    }
    if (kept) *kept = plan;
    return peak;
}

int64_t plan_budget(const Strategy *const *s, const PlanConfig *cfg, int n, int64_t n_samples,
                    double mean_len, int keep_plans, const char **largest)
{
    int64_t held = SAMPLE_BYTES * n_samples + BASE_BYTES, peak = held;
    if (keep_plans) held += TRAIN_SET_BYTES * n_samples;
    if (largest) *largest = n > 0 ? s[0]->name : "";
    int64_t top = -1;
    for (int i = 0; i < n; i++) {
        int64_t kept, one = plan_budget_one(s[i], &cfg[i], n_samples, mean_len, &kept);
        if (held + one > peak) peak = held + one;
        if (one > top) {
            top = one;
            if (largest) *largest = s[i]->name;
        }
        if (keep_plans) held += kept;
    }
    return peak;
}

double plan_budget_mean_len(const Hist *h, double len_scale)
{
    double sum = 0;
    for (int i = 0; i < h->n_bins; i++) {
        double lo = h->bins[i].lo > 1 ? (double)h->bins[i].lo : 1.0;
        sum += (double)h->bins[i].count * (lo + (double)h->bins[i].hi) / 2.0;
    }
    return h->total > 0 ? sum / (double)h->total * len_scale : 0;
}

/* "123", "64M", "1.5G": bytes; K/M/G/T are powers of 1024. -1 if it is not a size. */
static int64_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0)) return -1;
    const char *units = "KMGT";
    if (*end) {
        const char *u = strchr(units, toupper((unsigned char)*end));
        if (!u || !*u) return -1;
        v *= pow(1024.0, (double)(u - units + 1));
        end++;
        if (*end == 'i' || *end == 'I') end++;
        if (*end == 'B' || *end == 'b') end++;
        if (*end) return -1;
    }
    return v < 9e18 ? (int64_t)v : -1;
}

int64_t plan_budget_available(const char **source, char *err, size_t errlen)
{
    const char *env = getenv("LABENCH_MEMAVAILABLE");
    if (env && *env) {
        int64_t v = parse_size(env);
        if (v < 0) {
            snprintf(err, errlen, "LABENCH_MEMAVAILABLE='%s': want a size in bytes, e.g. 4000000000 or 4G", env);
            return -2;
        }
        if (source) *source = "LABENCH_MEMAVAILABLE";
        return v;
    }
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
    fclose(f);
    if (kb < 0) return -1;
    if (source) *source = "MemAvailable in /proc/meminfo";
    return (int64_t)kb * 1024;
}

static double gib(int64_t bytes) { return (double)bytes / (double)(INT64_C(1) << 30); }

int plan_budget_check(const Strategy *const *s, const PlanConfig *cfg, int n, int64_t n_samples,
                      double mean_len, int keep_plans, char *err, size_t errlen)
{
    const char *source = "", *largest = "";
    int64_t avail = plan_budget_available(&source, err, errlen);
    if (avail == -2) return -1;
    if (avail < 0) return 0;
    int64_t need = plan_budget(s, cfg, n, n_samples, mean_len, keep_plans, &largest);
    if (need <= avail) return 0;
    /* The largest sample that fits with a fifth to spare (the budget is monotone in N). */
    int64_t lo = 0, hi = n_samples;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (plan_budget(s, cfg, n, mid, mean_len, keep_plans, NULL) <= avail / 5 * 4) lo = mid;
        else hi = mid - 1;
    }
    if (lo >= 1000) {   /* two significant digits */
        int64_t p = 1;
        while (lo / p >= 100) p *= 10;
        lo = lo / p * p;
    }
    int64_t per = n_samples > 0 ? (need - BASE_BYTES) / n_samples : 0;
    char fix[160];
    if (lo >= 1) snprintf(fix, sizeof fix, "plan a sample of it with --samples N (--samples %lld fits)", (long long)lo);
    else snprintf(fix, sizeof fix, "free some memory (not even a small --samples N fits)");
    snprintf(err, errlen,
             "%lld samples need about %.1f GiB to plan (about %lld bytes a sample at the peak, %s's planner "
             "the largest) but %.1f GiB is available (%s): %s, or plan fewer strategies with --strategy",
             (long long)n_samples, gib(need), (long long)per, largest, gib(avail), source, fix);
    return -1;
}
