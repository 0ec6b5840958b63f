#include "bench/run/val_loss.h"


#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/run/batch.h"
#include "common/json_out.h"
#include "common/rng.h"

/* ---- buckets ------------------------------------------------------------------------------- */

void val_buckets_default(double len_scale, ValBuckets *b)
{
    static const int64_t unscaled[] = VAL_DEFAULT_EDGES;
    memset(b, 0, sizeof *b);
    b->n = 1;
    for (size_t i = 0; i < sizeof unscaled / sizeof unscaled[0]; i++) {
        long long e = llround((double)unscaled[i] * len_scale);
        if (e < 1) e = 1;
        if (b->n > 1 && e <= b->edges[b->n - 2]) continue;   /* collapsed onto the previous edge */
        b->edges[b->n - 1] = e;
        b->n++;
    }
    b->long_threshold = task_default_long_threshold(len_scale);
}

int val_bucket_of(const ValBuckets *b, int64_t len)
{
    int i = 0;
    while (i < b->n - 1 && len >= b->edges[i]) i++;
    return i;
}

int val_bucket_is_long(const ValBuckets *b, int i)
{
    int64_t lower = i == 0 ? 0 : b->edges[i - 1];
    return lower >= b->long_threshold;
}

static void format_len(int64_t v, char *buf, size_t n)
{
    if (v >= 1024 && v % 1024 == 0)
        snprintf(buf, n, "%lldk", (long long)(v / 1024));
    else
        snprintf(buf, n, "%lld", (long long)v);
}

void val_bucket_label(const ValBuckets *b, int i, char *buf, size_t n)
{
    char lo[32], hi[32];
    if (b->n == 1) {
        snprintf(buf, n, "all");
    } else if (i == 0) {
        format_len(b->edges[0], hi, sizeof hi);
        snprintf(buf, n, "<%s", hi);
    } else if (i == b->n - 1) {
        format_len(b->edges[i - 1], lo, sizeof lo);
        snprintf(buf, n, ">=%s", lo);
    } else {
        format_len(b->edges[i - 1], lo, sizeof lo);
        format_len(b->edges[i], hi, sizeof hi);
        snprintf(buf, n, "%s-%s", lo, hi);
    }
}

/* ---- the split ----------------------------------------------------------------------------- */

int64_t val_default_count(int64_t n_samples)
{
    int64_t n = n_samples / 50;
    if (n < 32) n = 32;
    if (n > 128) n = 128;
    if (n > n_samples / 4) n = n_samples / 4;
    return n;
}


/* Shares n_val among the buckets as evenly as their eligible counts allow: a bucket with fewer
 * samples than an even share gives all it has, and the rest is shared among the others. */
static void bucket_quotas(const int64_t *avail, int nb, int64_t n_val, int64_t *quota)
{
    int open[VAL_MAX_BUCKETS];
    int n_open = 0;
    for (int b = 0; b < nb; b++) {
        quota[b] = 0;
        open[b] = avail[b] > 0;
        n_open += open[b];
    }
    int64_t left = n_val;
    while (left > 0 && n_open > 0) {
        int64_t even = left / n_open, extra = left % n_open;
        int capped = 0;
        for (int b = 0; b < nb; b++)   /* buckets too small for an even share give all they have */
            if (open[b] && avail[b] - quota[b] <= even) {
                left -= avail[b] - quota[b];
                quota[b] = avail[b];
                open[b] = 0;
                n_open--;
                capped = 1;
            }
        if (capped) continue;
        for (int b = 0; b < nb; b++)
            if (open[b]) {
                int64_t take = even + (extra > 0);
                extra -= extra > 0;
                quota[b] += take;
                left -= take;
            }
    }
}

int val_split(const Sample *all, int64_t n_all, int64_t n_val, int max_tokens, const ValBuckets *buckets,
              uint64_t seed, ValSet *vs, TrainSet *train, char *err, size_t errlen)
{
    memset(vs, 0, sizeof *vs);
    memset(train, 0, sizeof *train);
    vs->buckets = *buckets;
    if (n_all > INT32_MAX) {
        snprintf(err, errlen, "%lld samples: at most %d can be split", (long long)n_all, INT32_MAX);
        return -1;
    }
    const int nb = buckets->n;
    int64_t avail[VAL_MAX_BUCKETS] = {0}, quota[VAL_MAX_BUCKETS], taken[VAL_MAX_BUCKETS] = {0}, eligible = 0;
    for (int64_t i = 0; i < n_all; i++) {
        Sample s = sample_truncate(all[i], max_tokens);
        if (s.target < 1) continue;   /* nothing to evaluate */
        avail[val_bucket_of(buckets, s.len)]++;
        eligible++;
    }
    if (n_val < 0 || n_val > eligible || n_val >= n_all) {
        snprintf(err, errlen,
                 "--val-samples %lld: need 0 <= N <= %lld (the samples with a target token) and fewer than "
                 "the %lld samples, so some are left to train on",
                 (long long)n_val, (long long)eligible, (long long)n_all);
        return -1;
    }
    for (int b = 0; b < nb; b++) vs->share[b] = eligible > 0 ? (double)avail[b] / (double)eligible : 0;
    bucket_quotas(avail, nb, n_val, quota);

    char *chosen = calloc(n_all > 0 ? (size_t)n_all : 1, 1);
    int32_t *order = malloc((n_all > 0 ? (size_t)n_all : 1) * sizeof *order);
    vs->samples = malloc((n_val > 0 ? (size_t)n_val : 1) * sizeof *vs->samples);
    vs->ids = malloc((n_val > 0 ? (size_t)n_val : 1) * sizeof *vs->ids);
    vs->bucket = malloc((n_val > 0 ? (size_t)n_val : 1) * sizeof *vs->bucket);
    train->samples = malloc((size_t)(n_all - n_val) * sizeof *train->samples);
    train->ids = malloc((size_t)(n_all - n_val) * sizeof *train->ids);
    if (!chosen || !order || !vs->samples || !vs->ids || !vs->bucket || !train->samples || !train->ids) {
        free(chosen);
        free(order);
        val_set_free(vs);
        train_set_free(train);
        snprintf(err, errlen, "out of memory splitting %lld samples for validation", (long long)n_all);
        return -1;
    }
    /* a seeded walk over the samples, taking each one its bucket still has room for */
    for (int64_t i = 0; i < n_all; i++) order[i] = (int32_t)i;
    Rng r = rng_seed(seed, VAL_RNG_STREAM);
    rng_shuffle_i32(&r, order, n_all);
    for (int64_t k = 0; k < n_all; k++) {
        Sample s = sample_truncate(all[order[k]], max_tokens);
        if (s.target < 1) continue;
        int b = val_bucket_of(buckets, s.len);
        if (taken[b] < quota[b]) {
            taken[b]++;
            chosen[order[k]] = 1;
        }
    }
    /* both parts in the sampled order: ids ascending */
    for (int64_t i = 0; i < n_all; i++) {
        if (chosen[i]) {
            Sample s = sample_truncate(all[i], max_tokens);
            int b = val_bucket_of(buckets, s.len);
            vs->samples[vs->n] = s;
            vs->ids[vs->n] = i;
            vs->bucket[vs->n] = b;
            vs->count[b]++;
            if (s.len > vs->max_len) vs->max_len = s.len;
            vs->n++;
        } else {
            train->samples[train->n] = all[i];
            train->ids[train->n] = i;
            train->n++;
        }
    }
    free(chosen);
    free(order);
    return 0;
}

void val_set_free(ValSet *vs)
{
    free(vs->samples);
    free(vs->ids);
    free(vs->bucket);
    memset(vs, 0, sizeof *vs);
}

void train_set_free(TrainSet *t)
{
    free(t->samples);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

static int is_val_id(const ValSet *vs, int64_t id)
{
    int64_t lo = 0, hi = vs->n;   /* vs->ids is ascending */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (vs->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < vs->n && vs->ids[lo] == id;
}

int val_check_disjoint(const ValSet *vs, const Plan *plan, const int64_t *sample_ids, char *err, size_t errlen)
{
    for (int64_t s = 0; s < plan->n_segs; s++) {
        int64_t id = sample_ids ? sample_ids[plan->segs[s].sample] : plan->segs[s].sample;
        if (is_val_id(vs, id)) {
            snprintf(err, errlen, "%s plan: segment %lld trains on sample %lld, a validation sample", plan->strategy,
                     (long long)s, (long long)id);
            return -1;
        }
    }
    return 0;
}

/* ---- evaluation ---------------------------------------------------------------------------- */

int val_eval(Model *m, const ValSet *vs, const Task *task, uint64_t seed, double *bucket_loss, int *bucket_count)
{
    const int nb = vs->buckets.n;
    double sum[VAL_MAX_BUCKETS] = {0};
    for (int b = 0; b < nb; b++) bucket_count[b] = 0;
    if (vs->max_len > m->max_tokens) return -1;

    int64_t total = 0;
    for (int64_t i = 0; i < vs->n; i++) total += vs->samples[i].len;
    const int cap = total < m->max_tokens ? (int)(total > 0 ? total : 1) : m->max_tokens;
    /* A one-row micro-batch of a plan made here: segment k is validation sequence first + k. */
    Segment *segs = malloc((vs->n > 0 ? (size_t)vs->n : 1) * sizeof *segs);
    float *per_pos = malloc((size_t)cap * sizeof *per_pos);
    BatchBuf bb;
    if (!segs || !per_pos || batch_buf_init(&bb, cap) != 0) {
        free(segs);
        free(per_pos);
        return -1;
    }
    bb.sample_ids = vs->ids;
    for (int64_t i = 0; i < vs->n; i++)
        segs[i] = (Segment){(int32_t)i, vs->samples[i].len, vs->samples[i].target, 1.0f};

    for (int64_t first = 0; first < vs->n;) {
        int64_t end = first, tokens = 0;
        while (end < vs->n && tokens + segs[end].len <= cap) tokens += segs[end++].len;
        Row row = {(int32_t)first, (int32_t)(end - first), (int32_t)tokens, (int32_t)tokens, (int32_t)tokens};
        MicroBatch mb = {0, 1};
        Plan p = {0};
        p.segs = segs;
        p.rows = &row;
        p.n_segs = vs->n;
        p.n_rows = 1;
        batch_build(&bb, &p, &mb, task, seed);
        model_forward(m, &bb.batch, per_pos);
        int off = 0;
        for (int64_t i = first; i < end; i++) {
            const int len = segs[i].len;
            if (segs[i].target > 0) {
                /* the positions that predict a target token are exactly those weighted 1 */
                double s = 0;
                for (int t = 0; t < len; t++)
                    if (bb.weights[off + t] > 0) s += per_pos[off + t];
                int b = vs->bucket[i];
                sum[b] += s / segs[i].target;
                bucket_count[b]++;
            }
            off += len;
        }
        first = end;
    }
    for (int b = 0; b < nb; b++) bucket_loss[b] = bucket_count[b] > 0 ? sum[b] / bucket_count[b] : NAN;
    batch_buf_free(&bb);
    free(segs);
    free(per_pos);
    return 0;
}

/* ---- equal training data across strategies ------------------------------------------------- */

static int64_t step_sequences(const Plan *p, int step)
{
    int64_t n = 0;
    for (int a = 0; a < p->micro_steps; a++)
        for (int w = 0; w < p->cfg.world_size; w++) {
            const MicroBatch *mb = plan_mb(p, step, a, w);
            for (int r = 0; r < mb->n_rows; r++) n += p->rows[mb->first_row + r].n_segments;
        }
    return n;
}

int64_t plan_sequences_in_steps(const Plan *p, int steps)
{
    if (steps > p->n_steps) steps = p->n_steps;
    int64_t n = 0;
    for (int s = 0; s < steps; s++) n += step_sequences(p, s);
    return n;
}

int steps_for_sequences(const Plan *p, int64_t n_seqs)
{
    int64_t seen = 0;
    int s = 0;
    while (s < p->n_steps && seen < n_seqs) seen += step_sequences(p, s++);
    return s;
}

/* ---- curves -------------------------------------------------------------------------------- */

int val_curves_init(ValCurves *c, const ValSet *vs)
{
    memset(c, 0, sizeof *c);
    c->buckets = vs->buckets;
    memcpy(c->count, vs->count, sizeof c->count);
    memcpy(c->share, vs->share, sizeof c->share);
    return 0;
}

int val_curves_add(ValCurves *c, int step, int64_t sequences_seen, const double *bucket_loss)
{
    if (c->n_points == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        int *st = realloc(c->step, (size_t)cap * sizeof *st);
        if (st) c->step = st;
        int64_t *sq = realloc(c->sequences, (size_t)cap * sizeof *sq);
        if (sq) c->sequences = sq;
        double *l = realloc(c->loss, (size_t)cap * VAL_MAX_BUCKETS * sizeof *l);
        if (l) c->loss = l;
        if (!st || !sq || !l) return -1;
        c->cap = cap;
    }
    int i = c->n_points++;
    c->step[i] = step;
    c->sequences[i] = sequences_seen;
    for (int b = 0; b < VAL_MAX_BUCKETS; b++)
        c->loss[(size_t)i * VAL_MAX_BUCKETS + b] = b < c->buckets.n ? bucket_loss[b] : NAN;
    return 0;
}

void val_curves_free(ValCurves *c)
{
    free(c->step);
    free(c->sequences);
    free(c->loss);
    memset(c, 0, sizeof *c);
}

/* Share-weighted mean of a point's bucket losses: over every bucket, or the long ones only. */
static double weighted(const ValCurves *c, int point, int long_only)
{
    if (point < 0) point = c->n_points - 1;
    if (point < 0 || point >= c->n_points) return NAN;
    double s = 0, w = 0;
    for (int b = 0; b < c->buckets.n; b++) {
        double l = c->loss[(size_t)point * VAL_MAX_BUCKETS + b];
        if (isnan(l) || (long_only && !val_bucket_is_long(&c->buckets, b))) continue;
        s += c->share[b] * l;
        w += c->share[b];
    }
    return w > 0 ? s / w : NAN;
}

double val_curves_overall(const ValCurves *c, int point) { return weighted(c, point, 0); }
double val_curves_long(const ValCurves *c, int point) { return weighted(c, point, 1); }


static json_t *point_json(const ValCurves *c, int i)
{
    json_t *loss = json_array();
    for (int b = 0; b < c->buckets.n; b++)
        json_array_append_new(loss, json_real_or_null(c->loss[(size_t)i * VAL_MAX_BUCKETS + b]));
    return json_pack("{s:i, s:I, s:o, s:o, s:o}", "step", c->step[i], "sequences_seen", (json_int_t)c->sequences[i],
                     "loss", loss, "overall", json_real_or_null(val_curves_overall(c, i)), "long",
                     json_real_or_null(val_curves_long(c, i)));
}

json_t *val_curves_json(const ValCurves *c)
{
    json_t *edges = json_array(), *buckets = json_array(), *points = json_array();
    int64_t n = 0;
    for (int b = 0; b < c->buckets.n; b++) {
        char label[64];
        val_bucket_label(&c->buckets, b, label, sizeof label);
        json_t *hi = b < c->buckets.n - 1 ? json_integer(c->buckets.edges[b]) : json_null();
        json_array_append_new(buckets, json_pack("{s:s, s:I, s:o, s:b, s:I, s:f}", "label", label, "min",
                                                 (json_int_t)(b ? c->buckets.edges[b - 1] : 0), "max", hi, "long",
                                                 val_bucket_is_long(&c->buckets, b), "sequences",
                                                 (json_int_t)c->count[b], "population_share", c->share[b]));
        if (b < c->buckets.n - 1) json_array_append_new(edges, json_integer(c->buckets.edges[b]));
        n += c->count[b];
    }
    for (int i = 0; i < c->n_points; i++) json_array_append_new(points, point_json(c, i));
    json_t *final = c->n_points > 0 ? point_json(c, c->n_points - 1) : json_null();
    json_t *o = json_pack("{s:I, s:o, s:I, s:o, s:o, s:o}", "sequences", (json_int_t)n, "bucket_edges", edges,
                          "long_threshold", (json_int_t)c->buckets.long_threshold, "buckets", buckets, "points",
                          points, "final", final);
    return o;
}

void val_print_table(FILE *f, const char *const *names, const ValCurves *const *curves, int n)
{
    if (n < 1) return;
    const ValBuckets *bk = &curves[0]->buckets;
    char label[64];
    fprintf(f, "\nvalidation loss (nats per target token, mean per sequence), at the end of each run\n");
    fprintf(f, "%-17s %9s", "strategy", "seqs seen");
    for (int b = 0; b < bk->n; b++) {
        val_bucket_label(bk, b, label, sizeof label);
        fprintf(f, " %9s%s", label, val_bucket_is_long(bk, b) ? "*" : " ");
    }
    fprintf(f, " %9s %9s\n", "overall", "long*");
    for (int i = 0; i < n; i++) {
        const ValCurves *c = curves[i];
        if (c->n_points == 0) {
            fprintf(f, "%-17s (not evaluated)\n", names[i]);
            continue;
        }
        const double *l = c->loss + (size_t)(c->n_points - 1) * VAL_MAX_BUCKETS;
        fprintf(f, "%-17s %9lld", names[i], (long long)c->sequences[c->n_points - 1]);
        for (int b = 0; b < bk->n; b++) fprintf(f, " %9.4f ", l[b]);
        fprintf(f, " %9.4f %9.4f\n", val_curves_overall(c, -1), val_curves_long(c, -1));
    }
    fprintf(f, "* long buckets (>= %lld tokens). overall / long: buckets weighted by their share of the sampled "
               "set.\n  sequences per bucket:",
            (long long)bk->long_threshold);
    for (int b = 0; b < bk->n; b++) fprintf(f, " %lld", (long long)curves[0]->count[b]);
    fputc('\n', f);

    const ValCurves *pk = NULL, *lw = NULL;
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], "packing") == 0) pk = curves[i];
        if (strcmp(names[i], "packing-lw") == 0) lw = curves[i];
    }
    if (!pk || !lw || !pk->n_points || !lw->n_points) return;
    const double *pk_loss = pk->loss + (size_t)(pk->n_points - 1) * VAL_MAX_BUCKETS;
    const double *lw_loss = lw->loss + (size_t)(lw->n_points - 1) * VAL_MAX_BUCKETS;
    fprintf(f, "packing - packing-lw, long buckets:");
    for (int b = 0; b < bk->n; b++)
        if (val_bucket_is_long(bk, b)) {
            val_bucket_label(bk, b, label, sizeof label);
            fprintf(f, "  %s %+.4f", label, pk_loss[b] - lw_loss[b]);
        }
    double d = val_curves_long(pk, -1) - val_curves_long(lw, -1);
    fprintf(f, "  long %+.4f nats (%s)\n", d,
            d > 0 ? "packing-lw lower" : d < 0 ? "packing lower" : "equal");
}
