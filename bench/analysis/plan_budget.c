/* The memory estimate of planning (see plan_budget.h). Every constant below is an allocation of
 * strategies/ or bench/analysis/plan_metrics.c, per sample; tests/test_budget.c measures the real peak. */
#include "bench/analysis/plan_budget.h"

#include "common/host.h"
#include "strategies/bit_tree.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Memory is counted as Linux charges it: the bytes written. A planner allocates some arrays at
 * their worst case (a Row per sample use for packs that hold a dozen samples each, packing-fair's
 * per-pack arrays at two per sample) and writes only a part; only that part takes memory. */

/* The plan (strategies/strategy.h): a Segment per sample use, a Row per row, a MicroBatch per
 * slot (W x A per optimizer step). */
#define SEGMENT_BYTES 16
#define ROW_BYTES 20
#define SLOT_BYTES 8
#define SAMPLE_BYTES 8

/* Bytes of one phase of a planner: scratch per sample of one epoch (plan_make's truncated copy
 * of the samples, 8 a sample, is part of every phase), scratch per row (pack) of one epoch, how
 * many bucket indexes over free space are live, whether the balancer's per-item scratch has been
 * written, and whether this epoch's plan is written yet (the earlier epochs' plan always is). */
typedef struct { int n, row, index, group, plan; } Phase;
#define MAX_PHASES 4

/* Each planner's phases, from its allocations. Phases that another one of the same planner
 * bounds are left out (said so in the comment). */
static const struct { const char *name; Phase phase[MAX_PHASES]; } PLANNERS[] = {
    /* the epoch's order (int32), live until the rows are dealt */
    {"naive", {{8 + 4, 0, 0, 0, 1}}},
    /* order and out (int32), keys and the radix sort's buffer (uint64), live while plan_add_padded
     * writes the rows (sorted.c's group array, 4 per W*B samples, is freed before) */
    {"sorted", {{8 + 24, 0, 0, 0, 1}}},
    {"packing", {{8 + 4, 0, 0, 0, 1}}},
    {"packing-lw", {{8 + 4, 0, 0, 0, 1}}},
    /* packs_bfd (packing_bfd.c): 1. bins_best_fit: order, len, bin_of (int32), keys and tmp
     * (uint64); free_tokens and next per bin, the bucket index. 2. its index freed, the packs'
     * items (int32) and start per row written. 3. plan_bfd: cut and items, start and the row order
     * per row, beside the rows being written. */
    {"packing-bfd", {{8 + 28, 8, 1, 0, 0}, {8 + 32, 8, 0, 0, 0}, {8 + 4, 8, 0, 0, 1}}},
    /* the same packs; then, in balanced_epoch, the packs' costs (Keyed, 16 a row) that glibc's
     * qsort (a merge sort) copies once more, beside start; then while the groups are emitted
     * start, costs, sorted_rows and group (at most 4 a row), and the balancer's scratch */
    {"packing-balanced",
     {{8 + 28, 8, 1, 0, 0}, {8 + 32, 8, 0, 0, 0}, {8 + 4, 4 + 32, 0, 0, 0}, {8 + 4, 28, 0, 1, 1}}},
    /* packing_fair.c, per sample: pack_of, order, items, plen_sorted, plen (int32), keys and tmp
     * (uint64), all live to the end of fair_epoch, and left (int32, at most a filler each); per
     * pack: room, count, heap (int32), sq, want (double), sorted (int32), its cost key (Keyed,
     * 16), and per group (at most one a pack) group_first, step_of_group, perm (int32).
     * 1. water_fill: two PackIndexes, each next, prev, bucket per pack (int32) and a bucket index.
     * 2. place_leftovers: one PackIndex, a list head per pack; a list link, and a heap slot and
     * its index (FillHeap), per sample.
     * 3. rows: first per pack, members per sample, the balancer's scratch, the rows written.
     * make_groups' sort (Keyed copied once more) and bins_best_fit on the leftovers (next per
     * pack, bin_of per sample) need less than 1 and 2. */
    {"packing-fair",
     {{8 + 40, 28 + 32 + 24, 2, 0, 0}, {8 + 52, 28 + 32 + 16, 1, 0, 0}, {8 + 44, 28 + 32 + 4, 0, 1, 1}}},
};
#define N_PLANNERS ((int)(sizeof PLANNERS / sizeof PLANNERS[0]))

/* Scoring (plan_metrics_compute) beside the finished plan, per segment: inv_m (a double, 1/M of
 * its step) and, in epoch_spread, each sequence's epoch weight (a double) that glibc's qsort (a
 * merge sort) copies once more; longest10's int32 lengths and their copy (8) are freed before.
 * Per step: step_m (an int64), which epoch_spread reads too. */
#define METRICS_PER_USE 24
#define METRICS_PER_STEP 8
/* Kept until the run ends, per strategy: the M of every step (plan_step_series in
 * bench/cli/cmd_train.c, an int64 a step). */
#define RESULT_PER_STEP 8
/* The balancer's scratch (BalanceWork, strategies/balance.c), allocated for every sample and
 * written up to the largest group: item, label, sorted (int32) per item of a group (W packs of
 * at most L tokens, so at most W x L items), and hk, lk, tmp (uint64) per item of one pack (the
 * costliest and the cheapest of a round: at most L items each). */
#define BALANCE_PER_ITEM 12
#define BALANCE_PER_PACK_ITEM 24
/* The training set: val_split's copy of the samples and their ids (8 + 8), and its scratch. */
#define TRAIN_SET_BYTES 21
/* Per plan: the small arrays (W and A sized), code and pages touched for the first time. */
#define PLAN_FIXED_BYTES (INT64_C(2) << 20)
/* From the second epoch on, a block the first epoch freed may stay resident: glibc keeps blocks
 * under its mmap threshold (which rises to 32 MiB as large blocks are freed) in the heap, and a
 * later block reuses them only where it fits. Allowed for: one block of up to 8 bytes a sample,
 * at most 32 MiB (seen: sorted's group array, 5 MB, at 10^7 samples x 2 epochs; packing-balanced's
 * pack costs, 2 MB, at 10^6 x 2). Blocks of 32 MiB and more are mapped and unmapped whole. */
#define HEAP_KEPT_PER_SAMPLE 8
#define HEAP_KEPT_MAX (INT64_C(32) << 20)
/* What the process allocates beside the samples and plans after the check (OpenBLAS and OpenMP
 * buffers, the histogram): a margin. What it holds at the check is not in the budget. */
#define BASE_BYTES (INT64_C(64) << 20)

static int planner_of(const Strategy *s)
{
    for (int i = 0; i < N_PLANNERS; i++)
        if (s && strcmp(s->name, PLANNERS[i].name) == 0) return i;
    return -1;
}

int plan_budget_knows(const Strategy *s) { return planner_of(s) >= 0; }

/* An index over free space (packing_bfd.c's bins_best_fit, packing_fair.c's PackIndex): a list
 * head (int32) per bucket and a 64-ary bit tree, about an eighth of a byte per bucket. */
static int64_t bucket_index_bytes(int32_t L)
{
    int64_t buckets = ((int64_t)L >> bucket_shift(L)) + 1;
    return 4 * buckets + buckets / 8 + 64;
}

/* The plan's shape: rows, micro-batch slots and optimizer steps, at most. */
typedef struct { int64_t rows, slots, steps; } Shape;

static Shape plan_shape(const Strategy *s, const PlanConfig *cfg, int64_t N, double mean_len)
{
    const int64_t E = cfg->epochs > 0 ? cfg->epochs : 1, U = N * E;
    const int64_t per_step = (int64_t)cfg->world_size * cfg->grad_accum;
    const double L = cfg->max_tokens > 0 ? cfg->max_tokens : 1;
    Shape sh;
    if (s && s->packs) {
        /* Two consecutive packs never fit in one, so packs average more than L/2 tokens
         * (packing-fair's are fuller: tokens / 0.999 L of them, and a few spilled by best fit);
         * packing-fair spreads an epoch of fewer packs over the W ranks. */
        double len = mean_len < L ? mean_len : L;
        double bound = 2.0 * (double)U * len / L + (double)E;
        if (bound < (double)(cfg->world_size * E)) bound = (double)(cfg->world_size * E);
        sh.rows = bound < (double)U ? (int64_t)bound : U;
        sh.slots = sh.rows;
    } else {
        int64_t B = cfg->micro_batch > 0 ? cfg->micro_batch : 1;
        sh.rows = U;
        sh.slots = (N + B - 1) / B * E;
    }
    sh.slots += per_step * E;   /* each epoch's last step is padded with empty slots */
    sh.steps = per_step > 0 ? sh.slots / per_step : sh.slots;
    return sh;
}

int64_t plan_budget_one(const Strategy *s, const PlanConfig *cfg, int64_t n_samples, double mean_len,
                        int64_t *kept)
{
    const int64_t N = n_samples > 0 ? n_samples : 0;
    const int64_t E = cfg->epochs > 0 ? cfg->epochs : 1, U = N * E;
    const Shape sh = plan_shape(s, cfg, N, mean_len);
    int64_t fixed = PLAN_FIXED_BYTES;
    if (E > 1) fixed += HEAP_KEPT_PER_SAMPLE * N < HEAP_KEPT_MAX ? HEAP_KEPT_PER_SAMPLE * N : HEAP_KEPT_MAX;
    const int64_t plan = SEGMENT_BYTES * U + ROW_BYTES * sh.rows + SLOT_BYTES * sh.slots + fixed;
    /* The earlier epochs' plan, beside a phase that comes before this epoch's rows. */
    const int64_t earlier = (plan - fixed) / E * (E - 1) + fixed;
    const int64_t L = cfg->max_tokens > 0 ? cfg->max_tokens : 1, WL = cfg->world_size * L;
    const int64_t group = BALANCE_PER_ITEM * (WL < N ? WL : N) + BALANCE_PER_PACK_ITEM * (L < N ? L : N);
    int64_t peak = plan + METRICS_PER_USE * U + METRICS_PER_STEP * sh.steps;
    int k = planner_of(s);
    for (int i = 0; i < N_PLANNERS; i++) {
        if (k >= 0 && i != k) continue;   /* an unknown planner: the largest known one */
        int grouped = 0;   /* from the second epoch on, every phase holds the first's scratch */
        for (int j = 0; j < MAX_PHASES; j++) grouped |= PLANNERS[i].phase[j].group;
        for (int j = 0; j < MAX_PHASES; j++) {
            const Phase *ph = &PLANNERS[i].phase[j];
            if (ph->n == 0) continue;
            int64_t b = ph->n * N + ph->row * (sh.rows / E) + ph->index * bucket_index_bytes(cfg->max_tokens) +
                        (ph->group || (grouped && E > 1) ? group : 0) + (ph->plan ? plan : earlier);
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
        held += RESULT_PER_STEP * plan_shape(s[i], &cfg[i], n_samples > 0 ? n_samples : 0, mean_len).steps;
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
    int64_t bytes = proc_kb_field("/proc/meminfo", "MemAvailable");
    if (bytes < 0) return -1;
    if (source) *source = "MemAvailable in /proc/meminfo";
    return bytes;
}

static double gib(int64_t bytes) { return (double)bytes / (double)(INT64_C(1) << 30); }

/* What the process holds already (VmRSS): code, and the CUDA and BLAS libraries it loaded, about
 * 0.2 GiB for a build with CUDA, which no per-sample count covers. 0 if it cannot be read. */
static int64_t resident_now(void)
{
    int64_t bytes = proc_kb_field("/proc/self/status", "VmRSS");
    return bytes > 0 ? bytes : 0;
}

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
    /* MemAvailable leaves out what the process holds, so only the growth is compared with it;
     * the peak it states is the whole process's, as `time -v` or top would show it. */
    snprintf(err, errlen,
             "%lld samples need about %.1f GiB to plan, a peak of %.1f GiB with what labench holds already "
             "(about %lld bytes a sample, %s's planner the largest), but %.1f GiB is available (%s): %s, or "
             "plan fewer strategies with --strategy",
             (long long)n_samples, gib(need), gib(need + resident_now()), (long long)per, largest, gib(avail),
             source, fix);
    return -1;
}
