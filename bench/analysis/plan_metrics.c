/* Plan-level metrics (definitions in docs/strategies.md) and the synthetic mix. */
#include "bench/analysis/plan_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/analysis/sync_point.h"
#include "common/progress.h"

typedef struct {
    double idle, wall, imbalance, max_tokens;
    int64_t n_points;
} SyncTotals;

/* Closes one sync point: the group waits for its slowest rank. A point where no rank had work
 * never syncs and is not counted. */
static void close_sync_point(const double *t, const double *tok, int W, SyncTotals *s)
{
    double max_tok = 0, sum_tok = 0;
    for (int r = 0; r < W; r++) {
        if (tok[r] > max_tok) max_tok = tok[r];
        sum_tok += tok[r];
    }
    if (sum_tok == 0) return;
    s->wall += sync_point_close(t, W, &s->idle);
    s->max_tokens += max_tok;
    s->imbalance += max_tok * W / sum_tok - 1.0;
    s->n_points++;
}

static int cmp_i32_desc(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x < y) - (x > y);
}

/* Share of the effective weight held by the longest 10% (rounded up) of the sequences that have
 * targets, and the same share had every sequence weighed 1/M of its step. Ties at the cut go to
 * the earlier segments in plan order. */
static void longest10(const Plan *p, const Sample *samples, const double *inv_m, PlanMetrics *m)
{
    int64_t n = 0;
    for (int64_t s = 0; s < p->n_segs; s++) n += p->segs[s].target > 0;
    if (n == 0) return;
    int32_t *len = malloc((size_t)n * sizeof *len);
    if (!len) {
        m->weight_share_longest10 = m->weight_share_longest10_ideal = m->weight_share_longest10_uniform = NAN;
        return;
    }
    n = 0;
    for (int64_t s = 0; s < p->n_segs; s++)
        if (p->segs[s].target > 0) len[n++] = samples ? samples[p->segs[s].sample].len : p->segs[s].len;
    qsort(len, (size_t)n, sizeof *len, cmp_i32_desc);
    int64_t k = (n + 9) / 10;
    int32_t cut = len[k - 1];
    int64_t above = 0;
    while (above < n && len[above] > cut) above++;
    int64_t ties_left = k - above;
    free(len);

    double w_top = 0, w_all = 0, ideal_top = 0, ideal_all = 0;
    for (int64_t s = 0; s < p->n_segs; s++) {
        const Segment *g = &p->segs[s];
        if (g->target == 0) continue;
        int32_t l = samples ? samples[g->sample].len : g->len;
        double w = (double)g->target * g->weight;
        int top = l > cut || (l == cut && ties_left-- > 0);
        w_all += w;
        ideal_all += inv_m[s];
        if (top) {
            w_top += w;
            ideal_top += inv_m[s];
        }
    }
    m->weight_share_longest10 = w_all > 0 ? w_top / w_all : 0;
    m->weight_share_longest10_ideal = ideal_all > 0 ? ideal_top / ideal_all : 0;
    m->weight_share_longest10_uniform = (double)k / (double)n;
}

static int cmp_f64(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Spread of M (M[s]: step s's sequences, plan_step_sequences) over the steps that have a target,
 * and of each sequence's epoch weight: its effective weight times the mean M (1 for all when
 * every sequence counts the same). */
static void epoch_spread(const Plan *p, const int64_t *M, PlanMetrics *m)
{
    int64_t n = 0;
    for (int64_t s = 0; s < p->n_segs; s++) n += p->segs[s].target > 0;
    double *w = malloc((n > 0 ? (size_t)n : 1) * sizeof *w);
    if (!w) {
        m->step_seqs_min = m->step_seqs_max = m->step_seqs_mean = m->step_seqs_cv = NAN;
        m->weight_epoch_p1 = m->weight_epoch_p99 = m->weight_epoch_spread = NAN;
        return;
    }
    int64_t steps = 0, total = 0, lo = INT64_MAX, hi = 0;
    for (int s = 0; s < p->n_steps; s++) {
        if (M[s] == 0) continue;
        steps++;
        total += M[s];
        if (M[s] < lo) lo = M[s];
        if (M[s] > hi) hi = M[s];
    }
    if (steps > 0) {
        double mean = (double)total / (double)steps, var = 0;
        for (int s = 0; s < p->n_steps; s++)
            if (M[s] > 0) var += ((double)M[s] - mean) * ((double)M[s] - mean);
        m->step_seqs_min = (double)lo;
        m->step_seqs_max = (double)hi;
        m->step_seqs_mean = mean;
        m->step_seqs_cv = sqrt(var / (double)steps) / mean;
        int64_t k = 0;
        for (int64_t s = 0; s < p->n_segs; s++)
            if (p->segs[s].target > 0) w[k++] = (double)p->segs[s].target * p->segs[s].weight * mean;
        qsort(w, (size_t)n, sizeof *w, cmp_f64);
        /* nearest rank: the smallest value with at least p% of the sequences at or below it */
        int64_t i1 = (int64_t)ceil(0.01 * (double)n) - 1, i99 = (int64_t)ceil(0.99 * (double)n) - 1;
        m->weight_epoch_p1 = w[i1 < 0 ? 0 : i1];
        m->weight_epoch_p99 = w[i99 < 0 ? 0 : i99];
        m->weight_epoch_spread = m->weight_epoch_p1 > 0 ? m->weight_epoch_p99 / m->weight_epoch_p1 : INFINITY;
    }
    free(w);
}

int plan_metrics_unfair(const PlanMetrics *m)
{
    int bits = 0;
    if (!(fabs(m->weight_min - 1) <= 0.01 && fabs(m->weight_max - 1) <= 0.01)) bits |= PLAN_UNFAIR_WEIGHTS;
    if (!(fabs(m->weight_share_longest10 - m->weight_share_longest10_uniform) <= PLAN_FAIR_SHARE_TOLERANCE))
        bits |= PLAN_UNFAIR_SHARE;
    if (!(m->step_seqs_cv <= PLAN_FAIR_STEP_SEQS_CV)) bits |= PLAN_UNFAIR_STEP_M;
    return bits;
}

int plan_metrics_fair(const PlanMetrics *m) { return plan_metrics_unfair(m) == 0; }

void plan_step_sequences(const Plan *p, int64_t *out)
{
    const int W = p->cfg.world_size, A = p->micro_steps;
    for (int step = 0; step < p->n_steps; step++) {
        int64_t M = 0;
        for (int mi = 0; mi < A; mi++)
            for (int r = 0; r < W; r++) {
                const MicroBatch *mb = plan_mb(p, step, mi, r);
                for (int32_t i = mb->first_row; i < mb->first_row + mb->n_rows; i++)
                    for (int32_t s = p->rows[i].first_segment; s < p->rows[i].first_segment + p->rows[i].n_segments; s++)
                        M += p->segs[s].target > 0;
            }
        out[step] = M;
    }
}

int plan_seq_weights(const Plan *p, const int64_t *M, int max, SeqWeight **out)
{
    *out = NULL;
    if (max < 1) return 0;
    int64_t total = 0, steps = 0;
    for (int s = 0; s < p->n_steps; s++) {
        total += M[s];
        steps += M[s] > 0;
    }
    double mean = steps > 0 ? (double)total / (double)steps : 0;
    int64_t stride = total > max ? (total + max - 1) / max : 1, k = 0;
    SeqWeight *w = malloc((size_t)(total / stride + 1) * sizeof *w);
    int n = 0;
    const int W = p->cfg.world_size, A = p->micro_steps;
    for (int step = 0; w && step < p->n_steps; step++)
        for (int a = 0; a < A; a++)
            for (int r = 0; r < W; r++) {
                const MicroBatch *mb = plan_mb(p, step, a, r);
                for (int32_t i = mb->first_row; i < mb->first_row + mb->n_rows; i++)
                    for (int32_t s = p->rows[i].first_segment; s < p->rows[i].first_segment + p->rows[i].n_segments; s++) {
                        const Segment *g = &p->segs[s];
                        if (g->target == 0 || k++ % stride != 0) continue;
                        double eff = (double)g->weight * g->target;
                        w[n++] = (SeqWeight){g->len, eff * (double)M[step], eff * mean};
                    }
            }
    *out = w;
    return w ? n : 0;
}

void plan_metrics_compute(const Plan *p, const Sample *samples, PlanMetrics *m)
{
    memset(m, 0, sizeof *m);
    m->optimizer_steps = p->n_steps;
    m->rows = p->n_rows;
    m->sequences = p->n_segs;
    m->truncated = p->n_truncated;
    int64_t capacity = 0;
    for (int64_t r = 0; r < p->n_rows; r++) {
        m->real_tokens += p->rows[r].tokens;
        m->computed_tokens += p->rows[r].padded_len;
        capacity += p->rows[r].capacity;
    }
    for (int64_t s = 0; s < p->n_segs; s++) m->target_tokens += p->segs[s].target;
    if (m->computed_tokens > 0)
        m->padding_ratio = (double)(m->computed_tokens - m->real_tokens) / (double)m->computed_tokens;
    if (capacity > 0) m->packing_efficiency = (double)m->real_tokens / (double)capacity;

    const int W = p->cfg.world_size, A = p->micro_steps;
    double *t = calloc((size_t)W, sizeof *t), *tok = calloc((size_t)W, sizeof *tok);
    double *inv_m = calloc(p->n_segs > 0 ? (size_t)p->n_segs : 1, sizeof *inv_m);
    int64_t *step_m = malloc((p->n_steps > 0 ? (size_t)p->n_steps : 1) * sizeof *step_m);
    if (!t || !tok || !inv_m || !step_m) {
        free(t);
        free(tok);
        free(inv_m);
        free(step_m);
        m->predicted_bubble = m->predicted_wall = m->token_imbalance = m->rank_utilisation = NAN;
        return;
    }
    /* st over every sync point; full over the full steps only (every micro-step of every rank
     * busy), the way the multipack sampler reports: it drops an epoch's partial last step. */
    SyncTotals st = {0, 0, 0, 0, 0}, full = {0, 0, 0, 0, 0};
    double wmin = INFINITY, wmax = -INFINITY, full_real = 0, full_capacity = 0;
    plan_step_sequences(p, step_m);
    for (int step = 0; step < p->n_steps; step++) {
        if ((step & 1023) == 0) progress_update(step, p->n_steps);
        const int64_t M = step_m[step];
        int is_full = 1;
        for (int mi = 0; mi < A; mi++)
            for (int r = 0; r < W; r++) is_full &= plan_mb(p, step, mi, r)->n_rows > 0;
        for (int mi = 0; mi < A; mi++) {
            if (p->cfg.sync == SYNC_MICRO || mi == 0) {
                memset(t, 0, (size_t)W * sizeof *t);
                memset(tok, 0, (size_t)W * sizeof *tok);
            }
            for (int r = 0; r < W; r++) {
                const MicroBatch *mb = plan_mb(p, step, mi, r);
                m->micro_batches += mb->n_rows > 0;
                t[r] += plan_mb_cost(p, mb);
                for (int32_t i = mb->first_row; i < mb->first_row + mb->n_rows; i++) {
                    const Row *row = &p->rows[i];
                    tok[r] += row->padded_len;
                    if (is_full) {
                        full_real += row->tokens;
                        full_capacity += row->capacity;
                    }
                    for (int32_t s = row->first_segment; s < row->first_segment + row->n_segments; s++) {
                        const Segment *g = &p->segs[s];
                        if (g->target == 0) continue;
                        double eff = (double)g->target * g->weight * (double)M;
                        if (eff < wmin) wmin = eff;
                        if (eff > wmax) wmax = eff;
                        inv_m[s] = 1.0 / (double)M;
                    }
                }
            }
            if (p->cfg.sync == SYNC_MICRO || mi == A - 1) {
                close_sync_point(t, tok, W, &st);
                if (is_full) close_sync_point(t, tok, W, &full);
            }
        }
    }
    m->full_step_efficiency = m->full_step_utilisation = m->full_step_bubble = NAN;
    if (full_capacity > 0) {
        m->full_step_efficiency = full_real / full_capacity;
        m->full_step_utilisation = full_real / (W * full.max_tokens);
        m->full_step_bubble = dp_bubble_fraction(full.idle, W, full.wall);
    }
    m->predicted_wall = st.wall;
    m->predicted_bubble = dp_bubble_fraction(st.idle, W, st.wall);
    m->token_imbalance = st.n_points > 0 ? st.imbalance / (double)st.n_points : 0;
    m->rank_utilisation = st.max_tokens > 0 ? (double)m->real_tokens / (W * st.max_tokens) : 0;
    m->weight_min = wmin <= wmax ? wmin : 0;
    m->weight_max = wmin <= wmax ? wmax : 0;
    longest10(p, samples, inv_m, m);
    epoch_spread(p, step_m, m);
    free(t);
    free(tok);
    free(inv_m);
    free(step_m);
}

void plan_synthetic_mix(Sample *out, int64_t n, uint64_t seed)
{
    Rng r = rng_seed(seed, UINT64_C(0x6d6978)); /* "mix" */
    for (int64_t i = 0; i < n; i++) {
        int32_t len, target;
        if (rng_below(&r, 9) == 0) {
            len = 8192 + (int32_t)rng_below(&r, 65536 - 8192 + 1);
            target = 100 + (int32_t)rng_below(&r, 901);
        } else {
            /* Box-Muller normal -> log-normal, median 900, sigma 1. */
            double u1 = rng_uniform(&r), u2 = rng_uniform(&r);
            double z = sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
            double x = 900.0 * exp(z);
            len = x < 16 ? 16 : x > 8191 ? 8191 : (int32_t)llround(x);
            target = 1 + (int32_t)rng_below(&r, (uint64_t)(2 * len / 3));
        }
        out[i].len = len;
        out[i].target = target < len ? target : len - 1;
    }
}
