/* Plan lifecycle (defaults, validation, make/free) and the toolkit the strategy files share:
 * seeded orders, radix sort, row/micro-batch building and the loss weights. */
#include "strategies/strategy.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/progress.h"

PlanConfig plan_config_default(const Strategy *s)
{
    PlanConfig c;
    memset(&c, 0, sizeof c);
    c.world_size = 8;
    c.micro_batch = 1;
    /* LongAlign: 8 GPUs x 12 accumulation steps for padded batches, one 64k pack per GPU. */
    c.grad_accum = (s && s->packs) ? 1 : 12;
    c.max_tokens = 65536;
    c.epochs = 1;
    c.sync = SYNC_MICRO;
    c.seed = 1;
    c.cost = cost_model_from_shape(4096, 11008); /* Llama-2-7B layer */
    return c;
}

int plan_config_check(const PlanConfig *cfg, char *err, size_t errlen)
{
    const struct { int value; const char *option; } at_least_one[] = {
        {cfg->world_size, "--world-size"}, {cfg->micro_batch, "--micro-batch"},
        {cfg->grad_accum, "--grad-accum"}, {cfg->max_tokens, "--max-tokens"},
        {cfg->epochs, "--epochs"},
    };
    for (size_t i = 0; i < sizeof at_least_one / sizeof at_least_one[0]; i++) {
        if (at_least_one[i].value < 1) {
            snprintf(err, errlen, "%s must be >= 1 (got %d)", at_least_one[i].option,
                     at_least_one[i].value);
            return -1;
        }
    }
    if (cfg->max_tokens > PLAN_MAX_TOKENS) {
        snprintf(err, errlen, "--max-tokens must be <= %d (got %d)", PLAN_MAX_TOKENS, cfg->max_tokens);
        return -1;
    }
    /* Each factor is < 2^31, so the first product fits in int64 and is checked before the second. */
    int64_t wa = (int64_t)cfg->world_size * cfg->grad_accum;
    if (wa > INT32_MAX || wa * cfg->micro_batch > INT32_MAX) {
        snprintf(err, errlen, "--world-size x --grad-accum x --micro-batch (%d x %d x %d) must be <= %d",
                 cfg->world_size, cfg->grad_accum, cfg->micro_batch, INT32_MAX);
        return -1;
    }
    if (cfg->sync != SYNC_MICRO && cfg->sync != SYNC_STEP) {
        snprintf(err, errlen, "--sync must be micro or step (got %d)", (int)cfg->sync);
        return -1;
    }
    const struct { double value; const char *name; } costs[] = {
        {cfg->cost.per_token, "per_token"}, {cfg->cost.per_token_sq, "per_token_sq"},
        {cfg->cost.per_row, "per_row"}, {cfg->cost.per_segment, "per_segment"},
    };
    for (size_t i = 0; i < sizeof costs / sizeof costs[0]; i++) {
        if (!isfinite(costs[i].value) || costs[i].value < 0) {
            snprintf(err, errlen, "cost model %s must be finite and >= 0 (got %g)", costs[i].name,
                     costs[i].value);
            return -1;
        }
    }
    return 0;
}

void plan_free(Plan *plan)
{
    free(plan->mbs);
    free(plan->rows);
    free(plan->segs);
    memset(plan, 0, sizeof *plan);
}

int plan_make(const Strategy *s, const PlanConfig *cfg, const Sample *samples, int64_t n_samples,
              Plan *plan, char *err, size_t errlen)
{
    memset(plan, 0, sizeof *plan);
    if (!s) {
        snprintf(err, errlen, "no strategy given");
        return -1;
    }
    if (plan_config_check(cfg, err, errlen) != 0) return -1;
    /* Segment and row indices are int32 in the plan. */
    if (n_samples < 0 || n_samples * cfg->epochs > INT32_MAX) {
        snprintf(err, errlen, "%lld samples x %d epochs: at most %d sequence uses fit in a plan",
                 (long long)n_samples, cfg->epochs, INT32_MAX);
        return -1;
    }
    size_t n_alloc = n_samples > 0 ? (size_t)n_samples : 1;
    Sample *cut = malloc(n_alloc * sizeof *cut);
    if (!cut) {
        snprintf(err, errlen, "out of memory for %lld samples", (long long)n_samples);
        return -1;
    }
    /* Truncation policy (docs/strategies.md): keep the LAST L tokens, so the response survives
     * and the start of the prompt/document is dropped. Counted, never silent. */
    const int32_t L = cfg->max_tokens;
    int64_t truncated = 0;
    for (int64_t i = 0; i < n_samples; i++) {
        Sample x = samples[i];
        if (x.len < 1 || x.target < 0 || x.target > x.len - 1) {
            snprintf(err, errlen, "sample %lld: len %d, target %d: need len >= 1 and 0 <= target <= len - 1",
                     (long long)i, x.len, x.target);
            free(cut);
            return -1;
        }
        if (x.len > L) truncated++;
        cut[i] = sample_truncate(x, L);
    }

    snprintf(plan->strategy, sizeof plan->strategy, "%s", s->name);
    plan->cfg = *cfg;
    plan->micro_steps = cfg->grad_accum;
    plan->n_samples = n_samples;
    plan->n_truncated = truncated * cfg->epochs;
    size_t uses = n_alloc * (size_t)cfg->epochs;
    plan->segs = malloc(uses * sizeof *plan->segs);
    plan->rows = malloc(uses * sizeof *plan->rows);
    int rc = -1;
    if (!plan->segs || !plan->rows)
        snprintf(err, errlen, "out of memory for a plan of %zu sequences", uses);
    else
        rc = s->plan(plan, cut, n_samples, err, errlen);
    free(cut);
    if (rc != 0) {
        plan_free(plan);
        return -1;
    }
    /* Rows were sized for the worst case (one sequence each); give back the rest. */
    if (plan->n_rows > 0) {
        Row *shrunk = realloc(plan->rows, (size_t)plan->n_rows * sizeof *plan->rows);
        if (shrunk) plan->rows = shrunk;
    }
    return 0;
}

/* ---- toolkit ------------------------------------------------------------------------------- */

Rng plan_rng(const Plan *p, int stream, int epoch)
{
    return rng_seed(p->cfg.seed, ((uint64_t)(uint32_t)stream << 32) | (uint32_t)epoch);
}

int32_t *plan_epoch_order(const Plan *p, int64_t n, int epoch)
{
    int32_t *order = malloc((n > 0 ? (size_t)n : 1) * sizeof *order);
    if (!order) return NULL;
    for (int64_t i = 0; i < n; i++) order[i] = (int32_t)i;
    Rng r = plan_rng(p, PLAN_STREAM_ORDER, epoch);
    rng_shuffle_i32(&r, order, n);
    return order;
}

int keyed_desc(const void *a, const void *b)
{
    const Keyed *x = a, *y = b;
    if (x->key != y->key) return x->key > y->key ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

void plan_sort_u64(uint64_t *a, uint64_t *tmp, int64_t n)
{
    if (n < 64) { /* radix passes cost more than they save on a handful of keys */
        for (int64_t i = 1; i < n; i++) {
            uint64_t k = a[i];
            int64_t j = i;
            for (; j > 0 && a[j - 1] > k; j--) a[j] = a[j - 1];
            a[j] = k;
        }
        return;
    }
    int64_t count[8][256];
    memset(count, 0, sizeof count);
    for (int64_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++) count[b][(a[i] >> (8 * b)) & 255]++;
    uint64_t *src = a, *dst = tmp;
    for (int b = 0; b < 8; b++) {
        /* A byte that every key shares does not reorder anything: skip its pass. */
        if (count[b][(src[0] >> (8 * b)) & 255] == n) continue;
        int64_t pos[256], sum = 0;
        for (int d = 0; d < 256; d++) {
            pos[d] = sum;
            sum += count[b][d];
        }
        for (int64_t i = 0; i < n; i++) dst[pos[(src[i] >> (8 * b)) & 255]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, (size_t)n * sizeof *a);
}

void plan_add_row(Plan *p, const Sample *samples, const int32_t *idx, int32_t k,
                  int32_t padded_len, int32_t capacity)
{
    Row *r = &p->rows[p->n_rows++];
    r->first_segment = (int32_t)p->n_segs;
    r->n_segments = k;
    int32_t tokens = 0;
    for (int32_t j = 0; j < k; j++) {
        Segment *g = &p->segs[p->n_segs++];
        const Sample *x = &samples[idx[j]];
        g->sample = idx[j];
        g->len = x->len;
        g->target = x->target;
        g->weight = 0.0f;
        tokens += x->len;
    }
    r->tokens = tokens;
    r->padded_len = padded_len > 0 ? padded_len : tokens;
    r->capacity = capacity > 0 ? capacity : p->cfg.max_tokens;
    /* The sequences placed so far, every 2^16, for the progress line (two atomic stores). */
    if (p->n_segs >> 16 != (p->n_segs - k) >> 16) progress_update(p->n_segs, p->n_samples * p->cfg.epochs);
}

int plan_deal(Plan *p, int64_t first_row, int rows_per_mb, char *err, size_t errlen)
{
    int64_t n_rows = p->n_rows - first_row;
    if (n_rows <= 0) return 0;
    int64_t per_step = (int64_t)p->cfg.world_size * p->micro_steps;
    int64_t n_mb = (n_rows + rows_per_mb - 1) / rows_per_mb;
    int64_t new_steps = (n_mb + per_step - 1) / per_step;
    if (p->n_steps + new_steps > INT_MAX) {
        snprintf(err, errlen, "plan would have more than %d optimizer steps", INT_MAX);
        return -1;
    }
    size_t old = (size_t)p->n_steps * (size_t)per_step;
    size_t total = old + (size_t)new_steps * (size_t)per_step;
    MicroBatch *mbs = realloc(p->mbs, total * sizeof *mbs);
    if (!mbs) {
        snprintf(err, errlen, "out of memory for %zu micro-batches", total);
        return -1;
    }
    p->mbs = mbs;
    /* Micro-batch slots are laid out step-major, then micro-step, then rank, so the j-th
     * micro-batch of this deal is simply slot old + j. */
    for (size_t j = 0; j < total - old; j++) {
        MicroBatch *mb = &mbs[old + j];
        int64_t first = first_row + (int64_t)j * rows_per_mb;
        if (first < p->n_rows) {
            mb->first_row = (int32_t)first;
            mb->n_rows = (int32_t)(p->n_rows - first < rows_per_mb ? p->n_rows - first : rows_per_mb);
        } else {
            mb->first_row = (int32_t)p->n_rows;
            mb->n_rows = 0;
        }
    }
    p->n_steps += (int)new_steps;
    return 0;
}

int plan_add_padded(Plan *p, const Sample *samples, const int32_t *order, int64_t n,
                    char *err, size_t errlen)
{
    int64_t first_row = p->n_rows;
    int B = p->cfg.micro_batch;
    for (int64_t i = 0; i < n; i += B) {
        int64_t k = n - i < B ? n - i : B;
        int32_t longest = 0;
        for (int64_t j = 0; j < k; j++)
            if (samples[order[i + j]].len > longest) longest = samples[order[i + j]].len;
        for (int64_t j = 0; j < k; j++) plan_add_row(p, samples, &order[i + j], 1, longest, longest);
    }
    return plan_deal(p, first_row, B, err, errlen);
}

int64_t plan_mb_targets(const Plan *p, const MicroBatch *mb)
{
    int64_t t = 0;
    for (int32_t r = mb->first_row; r < mb->first_row + mb->n_rows; r++) {
        const Row *row = &p->rows[r];
        for (int32_t s = row->first_segment; s < row->first_segment + row->n_segments; s++)
            t += p->segs[s].target;
    }
    return t;
}

void plan_step_weight_counts(const Plan *p, int step, int64_t *M, int64_t *K)
{
    size_t per_step = (size_t)p->cfg.world_size * (size_t)p->micro_steps;
    const MicroBatch *mbs = &p->mbs[(size_t)step * per_step];
    /* M: sequences with a target; K: micro-batches with a target. Those without one add
     * nothing to the loss, so counting them would only shrink everyone else's weight. */
    *M = *K = 0;
    for (size_t j = 0; j < per_step; j++) {
        if (plan_mb_targets(p, &mbs[j]) > 0) (*K)++;
        for (int32_t r = mbs[j].first_row; r < mbs[j].first_row + mbs[j].n_rows; r++) {
            const Row *row = &p->rows[r];
            for (int32_t s = row->first_segment; s < row->first_segment + row->n_segments; s++)
                *M += p->segs[s].target > 0;
        }
    }
}

double plan_weight(int per_sequence, int64_t M, int64_t K, int64_t T_mb, int32_t target)
{
    if (target == 0) return 0;
    return per_sequence ? 1.0 / ((double)M * target) : 1.0 / ((double)K * T_mb);
}

void plan_set_weights(Plan *p, int per_sequence)
{
    size_t per_step = (size_t)p->cfg.world_size * (size_t)p->micro_steps;
    p->weights_per_sequence = per_sequence;
    for (int step = 0; step < p->n_steps; step++) {
        MicroBatch *mbs = &p->mbs[(size_t)step * per_step];
        int64_t M, K;
        plan_step_weight_counts(p, step, &M, &K);
        for (size_t j = 0; j < per_step; j++) {
            int64_t T = plan_mb_targets(p, &mbs[j]);
            for (int32_t r = mbs[j].first_row; r < mbs[j].first_row + mbs[j].n_rows; r++) {
                const Row *row = &p->rows[r];
                for (int32_t s = row->first_segment; s < row->first_segment + row->n_segments; s++)
                    p->segs[s].weight = (float)plan_weight(per_sequence, M, K, T, p->segs[s].target);
            }
        }
    }
}
