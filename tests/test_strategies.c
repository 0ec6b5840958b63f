/* Strategies and plan metrics: plan invariants for every strategy, the loss weights against
 * LongAlign Eq. 2, determinism, config checks, and metrics on a hand-computed plan. */
#include "tests/test_util.h"

#include "bench/input/hist.h"
#include "bench/analysis/plan_metrics.h"
#include "bench/input/sample.h"
#include "strategies/bit_tree.h"
#include "strategies/strategy.h"

#define SMALL_L 4096

/* Lengths over a wide range, a tenth of them longer than SMALL_L (truncated), some without
 * targets, some of a single token. */
static Sample *small_set(int64_t n, uint64_t seed)
{
    Sample *s = malloc((size_t)n * sizeof *s);
    assert_non_null(s);
    Rng r = rng_seed(seed, 77);
    for (int64_t i = 0; i < n; i++) {
        uint64_t kind = rng_below(&r, 10);
        int32_t len = kind < 6 ? 1 + (int32_t)rng_below(&r, 600)
                    : kind < 9 ? 600 + (int32_t)rng_below(&r, SMALL_L - 600 + 1)
                               : SMALL_L + 1 + (int32_t)rng_below(&r, 3000);
        int32_t target = len < 2 || rng_below(&r, 10) == 0 ? 0 : 1 + (int32_t)rng_below(&r, (uint64_t)len - 1);
        s[i].len = len;
        s[i].target = target;
    }
    return s;
}

static PlanConfig small_cfg(const Strategy *s, int W, int B, int A, SyncModel sync, int epochs, uint64_t seed)
{
    PlanConfig c = plan_config_default(s);
    c.world_size = W;
    if (B > 0) c.micro_batch = B;
    if (A > 0) c.grad_accum = A;
    c.max_tokens = SMALL_L;
    c.sync = sync;
    c.epochs = epochs;
    c.seed = seed;
    return c;
}

static void make(const Strategy *s, const PlanConfig *c, const Sample *x, int64_t n, Plan *p)
{
    char err[256] = "";
    int rc = plan_make(s, c, x, n, p, err, sizeof err);
    if (rc != 0) print_error("%s: %s\n", s->name, err);
    assert_int_equal(rc, 0);
}

static int per_sequence_weights(const Strategy *s)
{
    return strcmp(s->name, "packing-lw") == 0 || strcmp(s->name, "packing-bfd") == 0 ||
           strcmp(s->name, "packing-balanced") == 0 || strcmp(s->name, "packing-fair") == 0;
}

/* Every structural invariant of a plan: each sample once per epoch (truncated as documented),
 * rows within L and consistent, micro-batches covering every row once, empty slots only at the
 * end of an epoch's last step. */
static void check_plan(const Strategy *s, const Plan *p, const Sample *x, int64_t n)
{
    const PlanConfig *c = &p->cfg;
    const int32_t L = c->max_tokens;
    assert_int_equal(p->micro_steps, c->grad_accum);
    assert_int_equal(p->n_samples, n);
    assert_int_equal(p->n_segs, n * c->epochs);
    int64_t over = 0;
    for (int64_t i = 0; i < n; i++) over += x[i].len > L;
    assert_int_equal(p->n_truncated, over * c->epochs);

    char *row_seen = calloc((size_t)p->n_rows + 1, 1);
    char *used = calloc((size_t)n + 1, 1);
    assert_non_null(row_seen);
    assert_non_null(used);
    int64_t segs_walked = 0;
    int epoch_done = 0; /* an empty slot was met: the rest of this step must be empty too */
    for (int step = 0; step < p->n_steps; step++) {
        for (int mi = 0; mi < p->micro_steps; mi++)
            for (int r = 0; r < c->world_size; r++) {
                const MicroBatch *mb = plan_mb(p, step, mi, r);
                if (mb->n_rows == 0) {
                    epoch_done = 1;
                    continue;
                }
                assert_false(epoch_done);
                assert_true(mb->first_row >= 0 && mb->first_row + mb->n_rows <= p->n_rows);
                if (s->packs) assert_int_equal(mb->n_rows, 1);
                else assert_true(mb->n_rows <= c->micro_batch);
                int32_t longest = 0;
                for (int32_t i = mb->first_row; i < mb->first_row + mb->n_rows; i++) {
                    const Row *row = &p->rows[i];
                    assert_int_equal(row_seen[i], 0);
                    row_seen[i] = 1;
                    assert_true(row->n_segments >= 1);
                    int64_t tokens = 0;
                    for (int32_t k = row->first_segment; k < row->first_segment + row->n_segments; k++) {
                        const Segment *g = &p->segs[k];
                        assert_true(g->sample >= 0 && g->sample < n);
                        const Sample *o = &x[g->sample];
                        assert_int_equal(g->len, o->len > L ? L : o->len);
                        assert_int_equal(g->target, o->len > L && o->target > L - 1 ? L - 1 : o->target);
                        assert_int_equal(used[g->sample], 0);
                        used[g->sample] = 1;
                        tokens += g->len;
                        if (++segs_walked % n == 0) { /* an epoch is complete: each sample once */
                            for (int64_t q = 0; q < n; q++) assert_int_equal(used[q], 1);
                            memset(used, 0, (size_t)n);
                        }
                    }
                    assert_int_equal(row->tokens, tokens);
                    assert_true(row->tokens <= row->padded_len);
                    assert_true(row->padded_len <= L);
                    assert_true(row->tokens <= row->capacity && row->capacity <= L);
                    if (s->packs) {
                        assert_int_equal(row->capacity, L);
                        assert_int_equal(row->padded_len, row->tokens);
                    } else {
                        assert_int_equal(row->n_segments, 1);
                        assert_int_equal(row->capacity, row->padded_len);
                        if (row->tokens > longest) longest = row->tokens;
                    }
                }
                if (!s->packs) /* padded to the micro-batch's longest */
                    for (int32_t i = mb->first_row; i < mb->first_row + mb->n_rows; i++)
                        assert_int_equal(p->rows[i].padded_len, longest);
            }
        if (epoch_done) {
            assert_int_equal(segs_walked % n, 0); /* only an epoch's last step is partial */
            epoch_done = 0;
        }
    }
    assert_int_equal(segs_walked, n * c->epochs);
    for (int64_t i = 0; i < p->n_rows; i++) assert_int_equal(row_seen[i], 1);
    free(row_seen);
    free(used);
}

static int plans_equal(const Plan *a, const Plan *b)
{
    if (a->n_steps != b->n_steps || a->n_rows != b->n_rows || a->n_segs != b->n_segs) return 0;
    size_t n_mbs = (size_t)a->n_steps * a->micro_steps * a->cfg.world_size;
    return memcmp(a->mbs, b->mbs, n_mbs * sizeof *a->mbs) == 0 &&
           memcmp(a->rows, b->rows, (size_t)a->n_rows * sizeof *a->rows) == 0 &&
           memcmp(a->segs, b->segs, (size_t)a->n_segs * sizeof *a->segs) == 0;
}

static void test_registry(void **state)
{
    (void)state;
    const char *names[] = {"naive", "sorted", "packing", "packing-lw", "packing-bfd", "packing-balanced",
                           "packing-fair"};
    assert_int_equal(N_STRATEGIES, 7);
    for (int i = 0; i < 7; i++) {
        assert_string_equal(STRATEGIES[i]->name, names[i]);
        assert_ptr_equal(strategy_find(names[i]), STRATEGIES[i]);
        assert_int_equal(STRATEGIES[i]->packs, i >= 2);
    }
    assert_null(strategy_find("packing-xyz"));
    assert_null(strategy_find(""));
    assert_null(strategy_find(NULL));
}

static void test_config_defaults(void **state)
{
    (void)state;
    PlanConfig c = plan_config_default(strategy_find("naive"));
    assert_int_equal(c.world_size, 8);
    assert_int_equal(c.micro_batch, 1);
    assert_int_equal(c.grad_accum, 12);
    assert_int_equal(c.max_tokens, 65536);
    assert_int_equal(c.epochs, 1);
    assert_int_equal(c.sync, SYNC_MICRO);
    assert_int_equal(c.seed, 1);
    assert_close(c.cost.per_token, 1.0, 0, 0);
    assert_close(c.cost.per_token_sq, 1.0 / (4 * 4096 + 3 * 11008), 0, 1e-12);
    c = plan_config_default(strategy_find("packing-bfd"));
    assert_int_equal(c.grad_accum, 1);
    assert_int_equal(c.max_tokens, 65536);
    char err[256];
    for (int i = 0; i < N_STRATEGIES; i++) {
        c = plan_config_default(STRATEGIES[i]);
        assert_int_equal(plan_config_check(&c, err, sizeof err), 0);
    }
}

static void test_config_check(void **state)
{
    (void)state;
    const struct { size_t offset; const char *option; } fields[] = {
        {offsetof(PlanConfig, world_size), "--world-size"}, {offsetof(PlanConfig, micro_batch), "--micro-batch"},
        {offsetof(PlanConfig, grad_accum), "--grad-accum"}, {offsetof(PlanConfig, max_tokens), "--max-tokens"},
        {offsetof(PlanConfig, epochs), "--epochs"},
    };
    const int bad[] = {0, -1, -100000};
    char err[256], want[64];
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            PlanConfig c = plan_config_default(strategy_find("naive"));
            memcpy((char *)&c + fields[f].offset, &bad[b], sizeof(int));
            err[0] = 0;
            assert_int_equal(plan_config_check(&c, err, sizeof err), -1);
            snprintf(want, sizeof want, "%s must be >= 1 (got %d)", fields[f].option, bad[b]);
            assert_string_equal(err, want);
        }
    PlanConfig c = plan_config_default(NULL);
    c.max_tokens = (1 << 30) + 1;
    assert_int_equal(plan_config_check(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "--max-tokens"));
    c = plan_config_default(NULL);
    c.max_tokens = 1 << 30;
    assert_int_equal(plan_config_check(&c, err, sizeof err), 0);
    c.world_size = 65536;
    c.grad_accum = 65536; /* W*A = 2^32: overflows int32 */
    assert_int_equal(plan_config_check(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "--world-size"));
    c = plan_config_default(NULL);
    c.world_size = 1 << 20;
    c.grad_accum = 1 << 10;
    c.micro_batch = 4; /* W*A fits, W*A*B = 2^32 does not */
    assert_int_equal(plan_config_check(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "--micro-batch"));
    c = plan_config_default(NULL);
    c.cost.per_token_sq = -1;
    assert_int_equal(plan_config_check(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "per_token_sq"));

    /* plan_make applies the same check and never plans a bad config. */
    Sample x[2] = {{10, 3}, {20, 5}};
    Plan p;
    c = plan_config_default(NULL);
    c.grad_accum = 0;
    assert_int_equal(plan_make(STRATEGIES[0], &c, x, 2, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "--grad-accum"));
    assert_null(p.mbs);
}

static void test_bad_samples(void **state)
{
    (void)state;
    char err[256];
    Plan p;
    PlanConfig c = plan_config_default(NULL);
    Sample zero_len[3] = {{10, 3}, {0, 0}, {5, 1}};
    assert_int_equal(plan_make(STRATEGIES[0], &c, zero_len, 3, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "sample 1"));
    Sample all_target[2] = {{10, 3}, {7, 7}}; /* the first token is never a target */
    assert_int_equal(plan_make(STRATEGIES[2], &c, all_target, 2, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "sample 1"));
}

static void test_no_samples(void **state)
{
    (void)state;
    for (int i = 0; i < N_STRATEGIES; i++) {
        PlanConfig c = plan_config_default(STRATEGIES[i]);
        Plan p;
        make(STRATEGIES[i], &c, NULL, 0, &p);
        assert_int_equal(p.n_steps, 0);
        assert_int_equal(p.n_rows, 0);
        PlanMetrics m;
        plan_metrics_compute(&p, NULL, &m);
        assert_int_equal(m.micro_batches, 0);
        assert_close(m.predicted_bubble, 0, 0, 0);
        plan_free(&p);
    }
}

/* The documented policy: keep the last L tokens, so the target survives up to L-1 tokens. */
static void test_truncation(void **state)
{
    (void)state;
    Sample x[4] = {{SMALL_L + 100, 50}, {SMALL_L + 7, SMALL_L + 6}, {SMALL_L, SMALL_L - 1}, {3, 2}};
    for (int i = 0; i < N_STRATEGIES; i++) {
        PlanConfig c = small_cfg(STRATEGIES[i], 2, 0, 0, SYNC_MICRO, 3, 1);
        Plan p;
        make(STRATEGIES[i], &c, x, 4, &p);
        assert_int_equal(p.n_truncated, 2 * 3);
        for (int64_t k = 0; k < p.n_segs; k++) {
            const Segment *g = &p.segs[k];
            const int32_t want_len[4] = {SMALL_L, SMALL_L, SMALL_L, 3};
            const int32_t want_target[4] = {50, SMALL_L - 1, SMALL_L - 1, 2};
            assert_int_equal(g->len, want_len[g->sample]);
            assert_int_equal(g->target, want_target[g->sample]);
        }
        check_plan(STRATEGIES[i], &p, x, 4);
        PlanMetrics m;
        plan_metrics_compute(&p, x, &m);
        assert_int_equal(m.truncated, 6);
        plan_free(&p);
    }
}

/* Invariants of every strategy over several shapes: W, B, A, sync, 1 and 2 epochs. */
static void test_invariants(void **state)
{
    (void)state;
    const int64_t n = 700;
    Sample *x = small_set(n, 5);
    const struct { int W, B, A; SyncModel sync; int epochs; } shapes[] = {
        {4, 0, 0, SYNC_MICRO, 1}, {4, 0, 0, SYNC_MICRO, 2}, {3, 2, 2, SYNC_STEP, 2}, {1, 3, 5, SYNC_MICRO, 1},
        {8, 1, 3, SYNC_STEP, 1}, {1000, 1, 1, SYNC_MICRO, 1},
    };
    for (int i = 0; i < N_STRATEGIES; i++)
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            PlanConfig c = small_cfg(STRATEGIES[i], shapes[k].W, shapes[k].B, shapes[k].A, shapes[k].sync,
                                     shapes[k].epochs, 3);
            Plan p;
            make(STRATEGIES[i], &c, x, n, &p);
            check_plan(STRATEGIES[i], &p, x, n);
            plan_free(&p);
        }
    free(x);
}

/* Same inputs, same plan; another seed, another plan; another epoch, another order. */
static void test_determinism(void **state)
{
    (void)state;
    const int64_t n = 600;
    Sample *x = small_set(n, 9);
    for (int i = 0; i < N_STRATEGIES; i++) {
        PlanConfig c = small_cfg(STRATEGIES[i], 4, 0, 0, SYNC_MICRO, 2, 42);
        Plan a, b, d;
        make(STRATEGIES[i], &c, x, n, &a);
        make(STRATEGIES[i], &c, x, n, &b);
        assert_true(plans_equal(&a, &b));
        c.seed = 43;
        make(STRATEGIES[i], &c, x, n, &d);
        assert_false(plans_equal(&a, &d));
        int64_t differ = 0;
        for (int64_t k = 0; k < n && k < d.n_segs; k++) differ += a.segs[k].sample != d.segs[k].sample;
        assert_true(differ > n / 10);
        /* The second epoch is planned on a fresh order. */
        differ = 0;
        for (int64_t k = 0; k < n; k++) differ += a.segs[k].sample != a.segs[n + k].sample;
        assert_true(differ > n / 10);
        plan_free(&a);
        plan_free(&b);
        plan_free(&d);
    }
    free(x);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* sorted: each micro-step deals one group of W*B neighbours in length order. */
static void test_sorted_groups(void **state)
{
    (void)state;
    const int64_t n = 1001;
    Sample *x = small_set(n, 11);
    int32_t *all = malloc((size_t)n * sizeof *all);
    for (int64_t i = 0; i < n; i++) all[i] = x[i].len > SMALL_L ? SMALL_L : x[i].len;
    qsort(all, (size_t)n, sizeof *all, cmp_i32);
    const struct { int W, B, A; } shapes[] = {{4, 1, 12}, {3, 2, 2}, {8, 3, 1}};
    for (size_t k = 0; k < 3; k++) {
        PlanConfig c = small_cfg(strategy_find("sorted"), shapes[k].W, shapes[k].B, shapes[k].A, SYNC_MICRO, 2, 7);
        Plan p;
        make(strategy_find("sorted"), &c, x, n, &p);
        int64_t groups = 0, short_groups = 0;
        for (int step = 0; step < p.n_steps; step++)
            for (int mi = 0; mi < p.micro_steps; mi++) {
                int32_t prev = 0, lo = INT32_MAX, hi = 0, size = 0;
                int32_t inner[64];
                int n_inner = 0;
                for (int r = 0; r < c.world_size; r++) {
                    const MicroBatch *mb = plan_mb(&p, step, mi, r);
                    for (int32_t i = mb->first_row; i < mb->first_row + mb->n_rows; i++) {
                        int32_t len = p.segs[p.rows[i].first_segment].len;
                        assert_true(len >= prev); /* dealt in length order across the ranks */
                        prev = len;
                        if (len < lo) lo = len;
                        if (len > hi) hi = len;
                        inner[n_inner++] = len;
                        size++;
                    }
                }
                if (size == 0) continue;
                groups++;
                if (size != c.world_size * c.micro_batch) short_groups++;
                /* Contiguous: every sample of the epoch strictly between lo and hi is here. */
                int64_t between_all = 0, between_here = 0;
                for (int64_t i = 0; i < n; i++) between_all += all[i] > lo && all[i] < hi;
                for (int j = 0; j < n_inner; j++) between_here += inner[j] > lo && inner[j] < hi;
                assert_int_equal(between_all, between_here);
            }
        int64_t G = (int64_t)c.world_size * c.micro_batch;
        assert_int_equal(groups, 2 * ((n + G - 1) / G));
        assert_int_equal(short_groups, n % G ? 2 : 0);
        check_plan(strategy_find("sorted"), &p, x, n);
        plan_free(&p);
    }
    free(x);
    free(all);
}

/* sorted: the groups are shuffled, not left in length order. */
static void test_sorted_groups_shuffled(void **state)
{
    (void)state;
    const int64_t n = 2000;
    Sample *x = small_set(n, 29);
    PlanConfig c = small_cfg(strategy_find("sorted"), 4, 1, 1, SYNC_MICRO, 1, 2);
    Plan p;
    make(strategy_find("sorted"), &c, x, n, &p);
    int64_t descents = 0;
    for (int step = 1; step < p.n_steps; step++) {
        int32_t prev = p.segs[p.rows[plan_mb(&p, step - 1, 0, 0)->first_row].first_segment].len;
        int32_t cur = p.segs[p.rows[plan_mb(&p, step, 0, 0)->first_row].first_segment].len;
        descents += cur < prev;
    }
    /* Shuffled groups descend about half the time; groups in length order never do. */
    assert_true(descents > p.n_steps / 4);
    plan_free(&p);
    free(x);
}

/* packing-balanced's swap pass on a case worked by hand (L = 120, W = 2, cost = tokens +
 * 0.1 * sum len^2). BFD packs {60, 50} (cost 720) and {50, 40} (cost 500); swapping the 50 of
 * the first with the 40 of the second gives {60, 40} (620) and {50, 50} (600). */
static void test_balanced_swap(void **state)
{
    (void)state;
    Sample x[4] = {{50, 10}, {60, 10}, {40, 10}, {50, 10}};
    PlanConfig c = plan_config_default(strategy_find("packing-bfd"));
    c.world_size = 2;
    c.max_tokens = 120;
    c.cost = (CostModel){1.0, 0.1, 0.0, 0.0};
    Plan p;
    PlanMetrics m;
    make(strategy_find("packing-bfd"), &c, x, 4, &p);
    plan_metrics_compute(&p, x, &m);
    assert_close(m.predicted_bubble, (720.0 - 500) / (2 * 720), 1e-12, 0);
    plan_free(&p);

    make(strategy_find("packing-balanced"), &c, x, 4, &p);
    check_plan(strategy_find("packing-balanced"), &p, x, 4);
    plan_metrics_compute(&p, x, &m);
    assert_close(m.predicted_bubble, (620.0 - 600) / (2 * 620), 1e-12, 0);
    assert_close(m.predicted_wall, 620.0, 1e-9, 0);
    for (int r = 0; r < 2; r++) {
        const Row *row = &p.rows[plan_mb(&p, 0, 0, r)->first_row];
        int32_t a = p.segs[row->first_segment].len, b = p.segs[row->first_segment + 1].len;
        assert_int_equal(row->n_segments, 2);
        assert_true((a == 60 && b == 40) || (a == 40 && b == 60) || (a == 50 && b == 50));
    }
    plan_free(&p);
}

/* packing-balanced puts packs of equal cost in the same sync point: here two single 100-token
 * sequences and two packs of two 50s, so every seed gives a zero predicted bubble. */
static void test_balanced_groups(void **state)
{
    (void)state;
    Sample x[6] = {{50, 1}, {100, 1}, {50, 1}, {50, 1}, {100, 1}, {50, 1}};
    int bfd_bubbles = 0;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        PlanConfig c = plan_config_default(strategy_find("packing-balanced"));
        c.world_size = 2;
        c.max_tokens = 100;
        c.seed = seed;
        c.cost = (CostModel){1.0, 0.1, 0.0, 0.0};
        Plan p;
        PlanMetrics m;
        make(strategy_find("packing-balanced"), &c, x, 6, &p);
        plan_metrics_compute(&p, x, &m);
        assert_int_equal(m.optimizer_steps, 2);
        assert_close(m.predicted_bubble, 0, 1e-12, 0);
        plan_free(&p);
        make(strategy_find("packing-bfd"), &c, x, 6, &p);
        plan_metrics_compute(&p, x, &m);
        bfd_bubbles += m.predicted_bubble > 0.1;
        plan_free(&p);
    }
    assert_true(bfd_bubbles > 0); /* shuffled packs do pair unequal costs */

    /* Where cost order is not BFD's creation order (longest first): packs [70] (560),
     * [65, 35] (645), [64, 36] (639.2), [62] (446.4). Sorted by cost they pair 645 with 639.2 and
     * 560 with 446.4; no swap or move helps either pair (L = 100 leaves no room), so the bubble
     * is exactly that pairing's. */
    Sample y[6] = {{70, 1}, {35, 1}, {62, 1}, {65, 1}, {36, 1}, {64, 1}};
    PlanConfig c = plan_config_default(strategy_find("packing-balanced"));
    c.world_size = 2;
    c.max_tokens = 100;
    c.cost = (CostModel){1.0, 0.1, 0.0, 0.0};
    Plan p;
    PlanMetrics m;
    make(strategy_find("packing-balanced"), &c, y, 6, &p);
    plan_metrics_compute(&p, y, &m);
    double c0 = 70 + 0.1 * 70 * 70, c1 = 100 + 0.1 * (65 * 65 + 35 * 35);
    double c2 = 100 + 0.1 * (64 * 64 + 36 * 36), c3 = 62 + 0.1 * 62 * 62;
    assert_close(m.predicted_bubble, ((c1 - c2) + (c0 - c3)) / (2 * (c1 + c0)), 1e-12, 0);
    plan_free(&p);
}

/* naive / sorted / packing: each micro-batch's loss is its token mean, averaged over the K
 * micro-batches of the step. */
static void test_weights_per_micro_batch(void **state)
{
    (void)state;
    const int64_t n = 800;
    Sample *x = small_set(n, 13);
    const char *names[] = {"naive", "sorted", "packing"};
    for (int i = 0; i < 3; i++) {
        const Strategy *s = strategy_find(names[i]);
        PlanConfig c = small_cfg(s, 4, 2, 3, SYNC_MICRO, 1, 5);
        Plan p;
        make(s, &c, x, n, &p);
        assert_false(per_sequence_weights(s));
        for (int step = 0; step < p.n_steps; step++) {
            int64_t K = 0;
            for (int mi = 0; mi < p.micro_steps; mi++)
                for (int r = 0; r < c.world_size; r++) {
                    const MicroBatch *mb = plan_mb(&p, step, mi, r);
                    int64_t T = 0;
                    for (int32_t j = mb->first_row; j < mb->first_row + mb->n_rows; j++)
                        for (int32_t k = 0; k < p.rows[j].n_segments; k++) T += p.segs[p.rows[j].first_segment + k].target;
                    K += T > 0;
                }
            assert_true(K > 0);
            double sum = 0;
            for (int mi = 0; mi < p.micro_steps; mi++)
                for (int r = 0; r < c.world_size; r++) {
                    const MicroBatch *mb = plan_mb(&p, step, mi, r);
                    int64_t T = 0;
                    for (int32_t j = mb->first_row; j < mb->first_row + mb->n_rows; j++)
                        for (int32_t k = 0; k < p.rows[j].n_segments; k++) T += p.segs[p.rows[j].first_segment + k].target;
                    for (int32_t j = mb->first_row; j < mb->first_row + mb->n_rows; j++)
                        for (int32_t k = 0; k < p.rows[j].n_segments; k++) {
                            const Segment *g = &p.segs[p.rows[j].first_segment + k];
                            if (g->target == 0) {
                                assert_true(g->weight == 0.0f);
                                continue;
                            }
                            assert_close(g->weight, 1.0 / ((double)K * T), 0, 1e-6);
                            sum += (double)g->weight * g->target;
                        }
                }
            assert_close(sum, 1.0, 0, 1e-5);
        }
        plan_free(&p);
    }
    free(x);
}

/* For each step: the plan's weighted loss sum_tokens w * l against LongAlign Eq. 2,
 * (1/M) sum_i L_i / N_i, on random per-token losses. Returns the largest relative gap. */
static double eq2_gap(const Plan *p, uint64_t seed)
{
    Rng r = rng_seed(seed, 99);
    double worst = 0;
    for (int step = 0; step < p->n_steps; step++) {
        double weighted = 0, per_seq_mean = 0;
        int64_t M = 0;
        for (int mi = 0; mi < p->micro_steps; mi++)
            for (int rank = 0; rank < p->cfg.world_size; rank++) {
                const MicroBatch *mb = plan_mb(p, step, mi, rank);
                for (int32_t j = mb->first_row; j < mb->first_row + mb->n_rows; j++)
                    for (int32_t k = 0; k < p->rows[j].n_segments; k++) {
                        const Segment *g = &p->segs[p->rows[j].first_segment + k];
                        double L_i = 0, w_l = 0;
                        for (int32_t t = 0; t < g->target; t++) {
                            double loss = 0.1 + 5.0 * rng_uniform(&r);
                            L_i += loss;
                            w_l += (double)g->weight * loss;
                        }
                        weighted += w_l;
                        if (g->target > 0) {
                            per_seq_mean += L_i / g->target;
                            M++;
                        }
                    }
            }
        if (M == 0) continue;
        double eq2 = per_seq_mean / (double)M;
        double gap = fabs(weighted - eq2) / eq2;
        if (gap > worst) worst = gap;
    }
    return worst;
}

static void test_weights_eq2(void **state)
{
    (void)state;
    const int64_t n = 900;
    Sample *x = small_set(n, 17);
    for (int i = 0; i < N_STRATEGIES; i++) {
        const Strategy *s = STRATEGIES[i];
        /* B = 2: with one sequence per micro-batch the micro-batch mean would be Eq. 2 too. */
        PlanConfig c = small_cfg(s, 4, 2, s->packs ? 3 : 0, SYNC_MICRO, 2, 21);
        Plan p;
        make(s, &c, x, n, &p);
        double gap = eq2_gap(&p, 1);
        if (per_sequence_weights(s)) {
            assert_true(gap <= 1e-6);
            for (int64_t k = 0; k < p.n_segs; k++)
                if (p.segs[k].target == 0) assert_true(p.segs[k].weight == 0.0f);
        } else {
            assert_true(gap > 1e-3); /* the per-micro-batch mean is not Eq. 2: the check bites */
        }
        PlanMetrics m;
        plan_metrics_compute(&p, x, &m);
        if (per_sequence_weights(s)) {
            assert_close(m.weight_min, 1.0, 0, 1e-6);
            assert_close(m.weight_max, 1.0, 0, 1e-6);
            assert_close(m.weight_share_longest10, m.weight_share_longest10_ideal, 0, 1e-6);
        } else {
            assert_true(m.weight_max > 1.5);
        }
        plan_free(&p);
    }
    free(x);
}

/* packing-lw is packing with other weights: the very same packs and deal. */
static void test_packing_lw_same_packs(void **state)
{
    (void)state;
    const int64_t n = 500;
    Sample *x = small_set(n, 19);
    PlanConfig c = small_cfg(strategy_find("packing"), 3, 0, 2, SYNC_MICRO, 2, 8);
    Plan a, b;
    make(strategy_find("packing"), &c, x, n, &a);
    make(strategy_find("packing-lw"), &c, x, n, &b);
    assert_int_equal(a.n_steps, b.n_steps);
    assert_int_equal(a.n_rows, b.n_rows);
    assert_memory_equal(a.rows, b.rows, (size_t)a.n_rows * sizeof *a.rows);
    assert_memory_equal(a.mbs, b.mbs, (size_t)a.n_steps * a.micro_steps * c.world_size * sizeof *a.mbs);
    int64_t weights_differ = 0;
    for (int64_t k = 0; k < a.n_segs; k++) {
        assert_int_equal(a.segs[k].sample, b.segs[k].sample);
        weights_differ += a.segs[k].weight != b.segs[k].weight;
    }
    assert_true(weights_differ > 0);
    plan_free(&a);
    plan_free(&b);
    free(x);
}

/* L above 2^22 takes BFD's coarse buckets: still every sample once and no row over L. */
static void test_bfd_large_L(void **state)
{
    (void)state;
    const int64_t n = 3000;
    const int32_t L = (1 << 23) + 5;
    Sample *x = malloc((size_t)n * sizeof *x);
    Rng r = rng_seed(3, 3);
    for (int64_t i = 0; i < n; i++) {
        x[i].len = 1 + (int32_t)rng_below(&r, i % 4 ? 300000 : (uint64_t)L + 1000);
        x[i].target = x[i].len / 2;
    }
    const char *names[] = {"packing-bfd", "packing-balanced"};
    for (int i = 0; i < 2; i++) {
        PlanConfig c = plan_config_default(strategy_find(names[i]));
        c.max_tokens = L;
        c.world_size = 2;
        Plan p;
        make(strategy_find(names[i]), &c, x, n, &p);
        check_plan(strategy_find(names[i]), &p, x, n);
        PlanMetrics m;
        plan_metrics_compute(&p, x, &m);
        assert_true(m.packing_efficiency > 0.95);
        plan_free(&p);
    }
    free(x);
}

/* packing-fair's balance bound, per sync point (--sync micro): the evening pass stops only when no
 * move helps, so between the costliest pack h and the cheapest l, either h holds one sequence, or
 * none of h's sequences fits l's free room, or cost(h) - cost(l) is at most the cost of the
 * cheapest sequence of h that fits (moving it would lower the larger of the two otherwise). */
static void check_fair_groups(const Plan *p)
{
    const CostModel *c = &p->cfg.cost;
    for (int step = 0; step < p->n_steps; step++)
        for (int mi = 0; mi < p->micro_steps; mi++) {
            int h = -1, l = -1;
            double ch = 0, cl = 0;
            for (int r = 0; r < p->cfg.world_size; r++) {
                const MicroBatch *mb = plan_mb(p, step, mi, r);
                if (mb->n_rows == 0) continue;
                double t = plan_mb_cost(p, mb);
                if (h < 0 || t > ch) { h = r; ch = t; }
                if (l < 0 || t < cl) { l = r; cl = t; }
            }
            if (h < 0 || h == l) continue;
            const Row *rh = &p->rows[plan_mb(p, step, mi, h)->first_row];
            const Row *rl = &p->rows[plan_mb(p, step, mi, l)->first_row];
            if (rh->n_segments < 2) continue;
            double movable = INFINITY;
            for (int32_t k = rh->first_segment; k < rh->first_segment + rh->n_segments; k++)
                if (p->segs[k].len <= p->cfg.max_tokens - rl->tokens && seg_cost(c, p->segs[k].len) < movable)
                    movable = seg_cost(c, p->segs[k].len);
            if (!isfinite(movable)) continue;
            if (!(ch - cl <= movable * (1 + 1e-9))) {
                print_error("step %d micro %d: costliest %g, cheapest %g, a movable sequence costs %g\n", step, mi, ch,
                            cl, movable);
                fail();
            }
        }
}

/* Adversarial inputs for packing-fair: every sample once per epoch, no row over L, deterministic
 * per seed, the balance bound above, every pack holding a sequence. */
static void test_fair_adversarial(void **state)
{
    (void)state;
    const Strategy *fair = strategy_find("packing-fair");
    enum { N = 3000 };
    Sample *x = malloc(N * sizeof *x);
    const struct { const char *what; int n; } sets[] = {
        {"all equal", 1000}, {"one giant plus dust", 801}, {"bimodal", 2000}, {"a single sample", 1},
        {"fewer samples than ranks", 5}, {"uniform", N},
    };
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
        int n = sets[k].n;
        Rng r = rng_seed(k, 5);
        for (int i = 0; i < n; i++) {
            int32_t len;
            switch (k) {
            case 0: len = 700; break;
            case 1: len = i == 0 ? SMALL_L : 1 + (int32_t)rng_below(&r, 20); break;
            case 2: len = i % 2 ? 3000 + (int32_t)rng_below(&r, 1000) : 10 + (int32_t)rng_below(&r, 90); break;
            case 3: len = 2500; break;
            case 4: len = 200 * (i + 1); break;
            default: len = 1 + (int32_t)rng_below(&r, SMALL_L + 500); break;
            }
            x[i] = (Sample){len, len > 1 ? 1 + (int32_t)rng_below(&r, (uint64_t)len - 1) : 0};
        }
        const struct { int W, A; SyncModel sync; int epochs; } shapes[] = {
            {8, 1, SYNC_MICRO, 1}, {3, 2, SYNC_MICRO, 2}, {4, 3, SYNC_STEP, 1}, {1, 1, SYNC_MICRO, 1}, {16, 1, SYNC_MICRO, 1},
        };
        for (size_t q = 0; q < sizeof shapes / sizeof shapes[0]; q++) {
            PlanConfig c = small_cfg(fair, shapes[q].W, 0, shapes[q].A, shapes[q].sync, shapes[q].epochs, 7 + q);
            c.cost = (CostModel){1.0, 1.0 / 512, 0, 0};   /* attention matters at SMALL_L */
            Plan a, b;
            make(fair, &c, x, n, &a);
            check_plan(fair, &a, x, n);
            if (shapes[q].sync == SYNC_MICRO) check_fair_groups(&a);
            make(fair, &c, x, n, &b);
            assert_true(plans_equal(&a, &b));
            PlanMetrics m;
            plan_metrics_compute(&a, x, &m);
            assert_close(m.weight_min, 1.0, 0, 1e-6);
            assert_close(m.weight_max, 1.0, 0, 1e-6);
            print_message("%s, W=%d A=%d: %lld steps, eff %.3f, bubble %.4f, M %g-%g\n", sets[k].what, shapes[q].W,
                          shapes[q].A, (long long)m.optimizer_steps, m.packing_efficiency, m.predicted_bubble,
                          m.step_seqs_min, m.step_seqs_max);
            if (k == 0) { /* equal sequences: the full steps' M within one sequence per pack */
                int64_t *M = malloc((size_t)a.n_steps * sizeof *M), lo = INT64_MAX, hi = 0;
                plan_step_sequences(&a, M);
                for (int st = 0; st < a.n_steps; st++) {
                    int full = 1;
                    for (int mi = 0; mi < a.micro_steps; mi++)
                        for (int rr = 0; rr < c.world_size; rr++) full &= plan_mb(&a, st, mi, rr)->n_rows > 0;
                    if (!full) continue;
                    if (M[st] < lo) lo = M[st];
                    if (M[st] > hi) hi = M[st];
                }
                assert_true(hi == 0 || hi - lo <= (int64_t)shapes[q].W * shapes[q].A);
                free(M);
            }
            if (n <= shapes[q].W) assert_int_equal(a.n_rows, (int64_t)n * shapes[q].epochs); /* one pack each */
            plan_free(&a);
            plan_free(&b);
        }
    }
    free(x);
}

/* Without fillers (data/longalign-10k.hist: every sequence over L/8, LongAlign-10k alone),
 * packing-fair packs as tightly as packing-bfd: its spreading of the cores, which keeps room
 * for fillers, gives way to best fit where it had to open packs (3,251 packs against best fit's
 * 3,166 before). */
static void test_fair_no_fillers(void **state)
{
    (void)state;
    const char *path = "data/longalign-10k.hist";
    Hist h;
    char err[512];
    if (hist_load(path, &h, err, sizeof err) != 0) fail_msg("%s (run the tests from the repository root)", err);
    Sample *x = NULL;
    int64_t n = 0;
    if (sample_draw(&h, 0, 1.0, 1, &x, &n, err, sizeof err) != 0) fail_msg("%s", err);
    hist_free(&h);
    int64_t rows[2];
    const char *names[2] = {"packing-fair", "packing-bfd"};
    for (int i = 0; i < 2; i++) {
        PlanConfig c = plan_config_default(strategy_find(names[i]));
        Plan p;
        make(strategy_find(names[i]), &c, x, n, &p);
        check_plan(strategy_find(names[i]), &p, x, n);
        rows[i] = p.n_rows;
        plan_free(&p);
    }
    print_message("%s: packing-fair %lld packs, packing-bfd %lld\n", path, (long long)rows[0], (long long)rows[1]);
    assert_true(rows[0] <= rows[1]);
    free(x);
}

/* On a mix, packing-fair's steps hold the same M where packing-balanced's do not, for several
 * seeds, at A = 1 and A = 2. */
static void test_fair_seeds(void **state)
{
    (void)state;
    const int64_t n = 60000;
    Sample *x = malloc((size_t)n * sizeof *x);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        plan_synthetic_mix(x, n, seed);
        for (int A = 1; A <= 2; A++) {
            PlanMetrics m[2];
            const char *names[2] = {"packing-fair", "packing-balanced"};
            for (int i = 0; i < 2; i++) {
                PlanConfig c = plan_config_default(strategy_find(names[i]));
                c.seed = seed;
                c.grad_accum = A;
                Plan p;
                make(strategy_find(names[i]), &c, x, n, &p);
                plan_metrics_compute(&p, x, &m[i]);
                plan_free(&p);
            }
            print_message("seed %llu A=%d: fair bubble %.4f eff %.4f share %.4f cv %.3f | balanced share %.4f cv %.3f\n",
                          (unsigned long long)seed, A, m[0].predicted_bubble, m[0].packing_efficiency,
                          m[0].weight_share_longest10, m[0].step_seqs_cv, m[1].weight_share_longest10, m[1].step_seqs_cv);
            assert_true(plan_metrics_fair(&m[0]));
            assert_true(m[0].predicted_bubble <= 0.01);
            assert_true(m[0].packing_efficiency >= 0.995);
            assert_false(plan_metrics_fair(&m[1]));
        }
    }
    free(x);
}

/* Karmarkar-Karp into equal-size parts: a case worked by hand, and the largest-differencing bound
 * (final spread at most the largest item) on random costs. */
static void test_kk(void **state)
{
    (void)state;
    /* {8,7} {6,5} {4,3} {2,1} -> {8+5, 7+6} and {4+1, 3+2} -> {18, 18} */
    const double c[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int32_t part[32];
    assert_int_equal(kk_partition_equal(c, 8, 2, part), 0);
    double sum[2] = {0, 0};
    int count[2] = {0, 0};
    for (int i = 0; i < 8; i++) {
        assert_true(part[i] == 0 || part[i] == 1);
        sum[part[i]] += c[i];
        count[part[i]]++;
    }
    assert_close(sum[0], 18, 0, 0);
    assert_close(sum[1], 18, 0, 0);
    assert_int_equal(count[0], 4);
    assert_int_equal(count[1], 4);
    assert_int_equal(kk_partition_equal(c, 7, 2, part), -1); /* 7 items do not split in equal parts */

    Rng r = rng_seed(3, 3);
    for (int trial = 0; trial < 50; trial++) {
        double v[32], s8[8] = {0}, top = 0;
        int cnt[8] = {0};
        for (int i = 0; i < 32; i++) {
            v[i] = trial % 2 ? rng_uniform(&r) : exp(3 * rng_uniform(&r));
            if (v[i] > top) top = v[i];
        }
        assert_int_equal(kk_partition_equal(v, 32, 8, part), 0);
        for (int i = 0; i < 32; i++) {
            s8[part[i]] += v[i];
            cnt[part[i]]++;
        }
        double lo = INFINITY, hi = 0;
        for (int q = 0; q < 8; q++) {
            assert_int_equal(cnt[q], 4);
            if (s8[q] < lo) lo = s8[q];
            if (s8[q] > hi) hi = s8[q];
        }
        assert_true(hi - lo <= top + 1e-12);
    }
}

/* The bit tree's next/previous set bucket against a brute-force scan. */
static void test_bit_tree(void **state)
{
    (void)state;
    const int64_t sizes[] = {1, 63, 64, 65, 4096, 300000};
    Rng r = rng_seed(11, 1);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int64_t n = sizes[k];
        char *set = calloc((size_t)n, 1);
        BitTree t;
        assert_int_equal(bit_tree_init(&t, n), 0);
        for (int op = 0; op < 3000; op++) {
            int64_t i = (int64_t)rng_below(&r, (uint64_t)n);
            if (rng_below(&r, 3)) {
                set[i] = 1;
                bit_set(&t, i);
            } else {
                set[i] = 0;
                bit_clear(&t, i);
            }
            int64_t q = (int64_t)rng_below(&r, (uint64_t)n), nx = -1, pv = -1;
            for (int64_t j = q; j < n; j++)
                if (set[j]) { nx = j; break; }
            for (int64_t j = q; j >= 0; j--)
                if (set[j]) { pv = j; break; }
            assert_int_equal(bit_next(&t, q), nx);
            assert_int_equal(bit_prev(&t, q), pv);
        }
        int64_t last = -1;
        for (int64_t j = 0; j < n; j++)
            if (set[j]) last = j;
        assert_int_equal(bit_prev(&t, n - 1), last);
        assert_int_equal(bit_prev(&t, -1), -1);
        bit_tree_free(&t);
        free(set);
    }
}

/* The efficiency and balance claims on a LongAlign-like mix (W=8, L=65536), both sync models. */
static void check_mix(const Sample *x, int64_t n, const char *what)
{
    for (int sync = 0; sync < 2; sync++) {
        PlanMetrics m[N_STRATEGIES];
        for (int i = 2; i < N_STRATEGIES; i++) {
            PlanConfig c = plan_config_default(STRATEGIES[i]);
            c.sync = (SyncModel)sync;
            if (sync == SYNC_STEP) c.grad_accum = 2;
            Plan p;
            make(STRATEGIES[i], &c, x, n, &p);
            plan_metrics_compute(&p, x, &m[i]);
            if (i >= 4) check_plan(STRATEGIES[i], &p, x, n);
            if (i == 6) check_fair_groups(&p);
            plan_free(&p);
        }
        print_message("%s, sync %s: packing eff %.4f bubble %.4f | bfd eff %.5f bubble %.4f | "
                      "balanced eff %.5f bubble %.6f\n", what, sync ? "step" : "micro",
                      m[2].packing_efficiency, m[2].predicted_bubble, m[4].packing_efficiency,
                      m[4].predicted_bubble, m[5].packing_efficiency, m[5].predicted_bubble);
        assert_true(m[4].packing_efficiency >= m[2].packing_efficiency);
        assert_true(m[4].packing_efficiency >= 0.997);
        assert_true(m[5].packing_efficiency >= 0.997);
        assert_true(m[5].predicted_bubble <= m[2].predicted_bubble);
        assert_true(m[5].predicted_bubble <= m[4].predicted_bubble);
        /* packing-fair: issue 13's targets (bubble <= 1%, efficiency >= 99.5%, the longest 10% within
         * 1 point of their uniform share, M's CV <= 0.15), where packing-balanced misses the last two */
        const PlanMetrics *fair = &m[6];
        print_message("%s, sync %s: fair eff %.5f bubble %.5f share %.4f (uniform %.4f) M cv %.3f\n", what,
                      sync ? "step" : "micro", fair->packing_efficiency, fair->predicted_bubble,
                      fair->weight_share_longest10, fair->weight_share_longest10_uniform, fair->step_seqs_cv);
        assert_true(fair->predicted_bubble <= 0.01);
        assert_true(fair->packing_efficiency >= 0.995);
        assert_true(fabs(fair->weight_share_longest10 - fair->weight_share_longest10_uniform) <= 0.01);
        assert_true(fair->step_seqs_cv <= 0.15);
        assert_true(plan_metrics_fair(fair));
        assert_false(plan_metrics_fair(&m[5]));
        /* Unweighted packing over-weighs the long sequences; Eq. 2 weights do not. */
        assert_true(m[2].weight_share_longest10 > m[2].weight_share_longest10_ideal + 0.05);
        assert_close(m[3].weight_share_longest10, m[3].weight_share_longest10_ideal, 0, 1e-6);
    }
}

static void test_mix_synthetic(void **state)
{
    (void)state;
    const int64_t n = 90000;
    Sample *x = malloc((size_t)n * sizeof *x);
    plan_synthetic_mix(x, n, 1);
    int64_t long_ones = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(x[i].len >= 1 && x[i].target >= 1 && x[i].target < x[i].len);
        long_ones += x[i].len >= 8192;
    }
    assert_true(long_ones > 9000 && long_ones < 11000);
    check_mix(x, n, "synthetic mix");
    free(x);
}

static void test_mix_hist(void **state)
{
    (void)state;
    const char *path = "data/longalign-mix.hist";
    if (access(path, R_OK) != 0) {
        fail_msg("%s not readable: run the tests from the repository root", path);
    }
    Hist h;
    char err[512];
    if (hist_load(path, &h, err, sizeof err) != 0) fail_msg("%s", err);
    Sample *x = NULL;
    int64_t n = 0;
    if (sample_draw(&h, 0, 1.0, 1, &x, &n, err, sizeof err) != 0) fail_msg("%s", err);
    hist_free(&h);
    assert_true(n > 50000);
    check_mix(x, n, path);
    free(x);
}

/* Cost model: FLOP-derived ratio and the padded row counted as one padded sequence. */
static void test_cost_model(void **state)
{
    (void)state;
    CostModel c = cost_model_from_shape(4096, 11008);
    assert_close(c.per_token, 1.0, 0, 0);
    /* 2C per (q,k) pair over 2(4C^2 + 3CF) per token. */
    assert_close(c.per_token_sq, 2.0 * 4096 / (2.0 * (4.0 * 4096 * 4096 + 3.0 * 4096 * 11008)), 0, 1e-12);
    assert_close(c.per_row, 0, 0, 0);
    /* At 64k tokens a 7b layer spends more on attention than on matmuls, but the same order. */
    double attn = c.per_token_sq * 65536.0 * 65536.0;
    assert_true(attn > 65536.0 && attn < 2 * 65536.0);
}

/* Metrics on a hand-built plan: W=2, A=2, one step.
 *   micro 0: rank 0 row0 = [len 3 (2 targets), len 5 (4 targets)], cap 10
 *            rank 1 row1 = [len 4 (3 targets)] padded to 6, cap 6
 *   micro 1: rank 0 empty; rank 1 row2 = [len 6 (0 targets)], cap 10
 * cost = tokens + 0.1 * sum len^2 (pads extend their segment). */
static void hand_plan(Plan *p, MicroBatch *mbs, Row *rows, Segment *segs, SyncModel sync)
{
    memset(p, 0, sizeof *p);
    p->cfg = plan_config_default(NULL);
    p->cfg.world_size = 2;
    p->cfg.grad_accum = 2;
    p->cfg.sync = sync;
    p->cfg.cost = (CostModel){1.0, 0.1, 0.0, 0.0};
    p->n_steps = 1;
    p->micro_steps = 2;
    p->n_samples = 4;
    p->n_truncated = 1;
    mbs[0] = (MicroBatch){0, 1};
    mbs[1] = (MicroBatch){1, 1};
    mbs[2] = (MicroBatch){3, 0};
    mbs[3] = (MicroBatch){2, 1};
    rows[0] = (Row){0, 2, 8, 8, 10};
    rows[1] = (Row){2, 1, 4, 6, 6};
    rows[2] = (Row){3, 1, 6, 6, 10};
    /* Per-micro-batch weights: K = 2 (micro-batches with targets), T = 6 and 3. */
    segs[0] = (Segment){0, 3, 2, 1.0f / 12};
    segs[1] = (Segment){1, 5, 4, 1.0f / 12};
    segs[2] = (Segment){2, 4, 3, 1.0f / 6};
    segs[3] = (Segment){3, 6, 0, 0.0f};
    p->mbs = mbs;
    p->rows = rows;
    p->n_rows = 3;
    p->segs = segs;
    p->n_segs = 4;
}

static void test_metrics_hand(void **state)
{
    (void)state;
    MicroBatch mbs[4];
    Row rows[3];
    Segment segs[4];
    Plan p;
    PlanMetrics m;
    hand_plan(&p, mbs, rows, segs, SYNC_MICRO);
    assert_close(row_cost(&p.cfg.cost, &p, &rows[0]), 8 + 0.1 * (9 + 25), 1e-12, 0);
    assert_close(row_cost(&p.cfg.cost, &p, &rows[1]), 6 + 0.1 * 36, 1e-12, 0);
    assert_close(plan_mb_cost(&p, &mbs[2]), 0, 0, 0);

    plan_metrics_compute(&p, NULL, &m);
    assert_int_equal(m.optimizer_steps, 1);
    assert_int_equal(m.micro_batches, 3);
    assert_int_equal(m.rows, 3);
    assert_int_equal(m.sequences, 4);
    assert_int_equal(m.truncated, 1);
    assert_int_equal(m.real_tokens, 18);
    assert_int_equal(m.computed_tokens, 20);
    assert_int_equal(m.target_tokens, 9);
    assert_close(m.padding_ratio, 2.0 / 20, 1e-12, 0);
    assert_close(m.packing_efficiency, 18.0 / 26, 1e-12, 0);
    /* micro: sync points t = {11.4, 9.6} and {0, 9.6}; tokens {8, 6} and {0, 6}. */
    assert_close(m.predicted_wall, 11.4 + 9.6, 1e-9, 0);
    assert_close(m.predicted_bubble, (1.8 + 9.6) / (2 * 21.0), 1e-9, 0);
    assert_close(m.token_imbalance, ((8.0 / 7 - 1) + (6.0 / 3 - 1)) / 2, 1e-9, 0);
    /* Effective weight x M (M = 3): 2/12*3, 4/12*3, 3/6*3. */
    assert_close(m.weight_min, 0.5, 1e-6, 0);
    assert_close(m.weight_max, 1.5, 1e-6, 0);
    /* Longest 10% of 3 sequences with targets: the len-5 one, holding 1/3 of the weight. */
    assert_close(m.weight_share_longest10, 1.0 / 3, 1e-6, 0);
    assert_close(m.weight_share_longest10_ideal, 1.0 / 3, 1e-9, 0);

    /* One step: M = 3 everywhere, no spread; the epoch weight x mean M is the step's x M. */
    assert_close(m.weight_share_longest10_uniform, 1.0 / 3, 1e-12, 0);
    assert_close(m.step_seqs_min, 3, 0, 0);
    assert_close(m.step_seqs_max, 3, 0, 0);
    assert_close(m.step_seqs_mean, 3, 0, 0);
    assert_close(m.step_seqs_cv, 0, 1e-12, 0);
    assert_close(m.weight_epoch_p1, 0.5, 1e-6, 0);
    assert_close(m.weight_epoch_p99, 1.5, 1e-6, 0);
    assert_close(m.weight_epoch_spread, 3.0, 1e-5, 0);
    /* micro: busiest rank's computed tokens 8 and 6 at the two sync points, real 18, W = 2 */
    assert_close(m.rank_utilisation, 18.0 / (2 * (8 + 6)), 1e-12, 0);
    assert_false(plan_metrics_fair(&m)); /* the per-micro-batch weights are not all 1/M */
    assert_true(isnan(m.full_step_efficiency)); /* rank 0 idles at micro-step 1: no full step */

    /* Ranked by the samples' lengths before truncation, the len-4 sequence is the longest. */
    Sample orig[4] = {{3, 2}, {5, 4}, {50, 3}, {6, 0}};
    plan_metrics_compute(&p, orig, &m);
    assert_close(m.weight_share_longest10, 0.5, 1e-6, 0);

    /* step: one sync point, t = {11.4, 19.2}, tokens {8, 12}. */
    hand_plan(&p, mbs, rows, segs, SYNC_STEP);
    plan_metrics_compute(&p, NULL, &m);
    assert_close(m.predicted_wall, 19.2, 1e-9, 0);
    assert_close(m.predicted_bubble, (19.2 - 11.4) / (2 * 19.2), 1e-9, 0);
    assert_close(m.token_imbalance, 12.0 / 10 - 1, 1e-9, 0);
    assert_close(m.padding_ratio, 2.0 / 20, 1e-12, 0);
    assert_close(m.rank_utilisation, 18.0 / (2 * 12), 1e-12, 0);
}

/* Two steps that differ in M (W = 1, A = 1, Eq. 2 weights): step 0 holds one sequence (len 10,
 * 4 targets), step 1 three (len 2, 1 target each). Inside each step every sequence weighs 1/M,
 * so the per-step ideal is met, but over the epoch the lone long one counts three times as much
 * as each short one: M = {1, 3}, mean 2, CV 0.5; epoch weights x mean M = {2, 2/3, 2/3, 2/3}. */
static void test_metrics_steps_differ(void **state)
{
    (void)state;
    MicroBatch mbs[2] = {{0, 1}, {1, 1}};
    Row rows[2] = {{0, 1, 10, 10, 10}, {1, 3, 6, 6, 10}};
    Segment segs[4] = {{0, 10, 4, 0}, {1, 2, 1, 0}, {2, 2, 1, 0}, {3, 2, 1, 0}};
    Plan p;
    memset(&p, 0, sizeof p);
    p.cfg = plan_config_default(NULL);
    p.cfg.world_size = 1;
    p.cfg.grad_accum = 1;
    p.cfg.max_tokens = 10;
    p.n_steps = 2;
    p.micro_steps = 1;
    p.n_samples = 4;
    p.mbs = mbs;
    p.rows = rows;
    p.n_rows = 2;
    p.segs = segs;
    p.n_segs = 4;
    plan_set_weights(&p, 1);
    assert_close(segs[0].weight, 1.0 / 4, 0, 1e-7);
    assert_close(segs[1].weight, 1.0 / 3, 0, 1e-7);
    PlanMetrics m;
    plan_metrics_compute(&p, NULL, &m);
    assert_close(m.weight_min, 1.0, 0, 1e-6);
    assert_close(m.weight_max, 1.0, 0, 1e-6);
    /* longest 10% of 4 = the len-10 one: weight 1 of 2 in all, against a uniform 1 of 4 */
    assert_close(m.weight_share_longest10, 0.5, 0, 1e-6);
    assert_close(m.weight_share_longest10_ideal, 0.5, 0, 1e-9);
    assert_close(m.weight_share_longest10_uniform, 0.25, 0, 1e-12);
    assert_close(m.step_seqs_min, 1, 0, 0);
    assert_close(m.step_seqs_max, 3, 0, 0);
    assert_close(m.step_seqs_mean, 2, 0, 0);
    assert_close(m.step_seqs_cv, 0.5, 0, 1e-12);
    assert_close(m.weight_epoch_p1, 2.0 / 3, 0, 1e-6);
    assert_close(m.weight_epoch_p99, 2.0, 0, 1e-6);
    assert_close(m.weight_epoch_spread, 3.0, 0, 1e-5);
    assert_close(m.rank_utilisation, 16.0 / 16, 0, 1e-12);
    assert_false(plan_metrics_fair(&m));
    assert_close(m.full_step_efficiency, 16.0 / 20, 0, 1e-12);
    assert_close(m.full_step_utilisation, 1.0, 0, 1e-12);
    assert_close(m.full_step_bubble, 0.0, 0, 1e-12);

    /* The per-sequence samples of the weights: x M is 1 for all, x mean M is 2 and 2/3. */
    SeqWeight *w;
    int64_t M[2];
    plan_step_sequences(&p, M);
    int nw = plan_seq_weights(&p, M, 100, &w);
    assert_int_equal(nw, 4);
    assert_int_equal(w[0].len, 10);
    assert_close(w[0].step_rel, 1.0, 0, 1e-6);
    assert_close(w[0].epoch_rel, 2.0, 0, 1e-6);
    assert_close(w[1].epoch_rel, 2.0 / 3, 0, 1e-6);
    free(w);
    assert_int_equal(M[0], 1);
    assert_int_equal(M[1], 3);

    /* Equal M: move a short sequence into step 0 (two per step) and the bias is gone. */
    rows[0] = (Row){0, 2, 12, 12, 12};
    rows[1] = (Row){2, 2, 4, 4, 12};
    p.cfg.max_tokens = 12;
    plan_set_weights(&p, 1);
    plan_metrics_compute(&p, NULL, &m);
    assert_close(m.step_seqs_cv, 0, 0, 1e-12);
    assert_close(m.weight_share_longest10, 0.25, 0, 1e-6);
    assert_close(m.weight_epoch_spread, 1.0, 0, 1e-6);
    assert_true(plan_metrics_fair(&m));
}

/* Metrics of a real padded plan: naive pads, packs do not; sorted pads less than naive. */
static void test_metrics_padding(void **state)
{
    (void)state;
    const int64_t n = 2000;
    Sample *x = small_set(n, 23);
    PlanMetrics m[N_STRATEGIES];
    for (int i = 0; i < N_STRATEGIES; i++) {
        PlanConfig c = small_cfg(STRATEGIES[i], 4, 2, 0, SYNC_MICRO, 1, 1);
        Plan p;
        make(STRATEGIES[i], &c, x, n, &p);
        plan_metrics_compute(&p, x, &m[i]);
        assert_int_equal(m[i].sequences, n);
        plan_free(&p);
    }
    assert_true(m[0].padding_ratio > 0.2);
    assert_true(m[1].padding_ratio < m[0].padding_ratio / 4);
    assert_true(m[1].predicted_bubble < m[0].predicted_bubble);
    for (int i = 2; i < N_STRATEGIES; i++) assert_close(m[i].padding_ratio, 0, 0, 0);
    assert_int_equal(m[0].real_tokens, m[2].real_tokens);
    assert_true(m[4].packing_efficiency > m[2].packing_efficiency);
    assert_true(m[5].predicted_bubble <= m[2].predicted_bubble);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_bad_samples),
        cmocka_unit_test(test_no_samples),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_invariants),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_sorted_groups),
        cmocka_unit_test(test_sorted_groups_shuffled),
        cmocka_unit_test(test_balanced_swap),
        cmocka_unit_test(test_balanced_groups),
        cmocka_unit_test(test_weights_per_micro_batch),
        cmocka_unit_test(test_weights_eq2),
        cmocka_unit_test(test_packing_lw_same_packs),
        cmocka_unit_test(test_bfd_large_L),
        cmocka_unit_test(test_fair_adversarial),
        cmocka_unit_test(test_fair_seeds),
        cmocka_unit_test(test_kk),
        cmocka_unit_test(test_bit_tree),
        cmocka_unit_test(test_mix_synthetic),
        cmocka_unit_test(test_mix_hist),
        cmocka_unit_test(test_cost_model),
        cmocka_unit_test(test_metrics_hand),
        cmocka_unit_test(test_metrics_steps_differ),
        cmocka_unit_test(test_metrics_padding),
        cmocka_unit_test(test_fair_no_fillers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
