#include "bench/input/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/progress.h"
#include "common/rng.h"

/* Report the share drawn every 2^20 samples. */
#define PROGRESS_EVERY ((INT64_C(1) << 20) - 1)

/* Uniform integer in [lo, hi]. */
static int64_t draw_between(Rng *r, int64_t lo, int64_t hi)
{
    return lo == hi ? lo : lo + (int64_t)rng_below(r, (uint64_t)(hi - lo) + 1);
}

/* One sample from bin b (a bin from 0 draws from 1: length-0 samples are never kept). Returns
 * -1 if scaling pushes the length past int32. */
static int draw_one(Rng *r, const HistBin *b, double scale, Sample *out)
{
    int64_t len = draw_between(r, b->lo > 1 ? b->lo : 1, b->hi);
    if (scale != 1.0) {
        double scaled = (double)len * scale;
        if (!(scaled < (double)HIST_MAX_LEN + 0.5)) return -1;
        len = llround(scaled);
        if (len < 1) len = 1;
    }

    int64_t tgt;
    const TargetSpec *t = &b->target;
    switch (t->kind) {
    case TGT_TOKENS: {
        int64_t tok = draw_between(r, (int64_t)t->lo, (int64_t)t->hi);
        /* Scaled like the length, so a "300-token answer" stays the same share of the sample. */
        tgt = scale != 1.0 ? llround((double)tok * scale) : tok;
        break;
    }
    case TGT_PERCENT: {
        double pct = t->lo == t->hi ? t->lo : t->lo + (t->hi - t->lo) * rng_uniform(r);
        tgt = llround(pct / 100.0 * (double)len);
        break;
    }
    default:
        tgt = len - 1;
    }
    out->len = (int32_t)len;
    out->target = sample_target_clamp(len, tgt);
    return 0;
}

/* First bin whose cumulative count exceeds u (u in [0, total)). */
static int find_bin(const int64_t *cum, int n_bins, int64_t u)
{
    int lo = 0, hi = n_bins - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cum[mid] > u) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

int sample_draw(const Hist *h, int64_t n, double len_scale, uint64_t seed,
                Sample **out, int64_t *n_out, char *err, size_t errlen)
{
    *out = NULL;
    *n_out = 0;
    if (!h || h->n_bins <= 0 || h->total <= 0) {
        snprintf(err, errlen, "%s: the length distribution is empty", h ? h->path : "(null)");
        return -1;
    }
    if (!(len_scale > 0.0) || !isfinite(len_scale)) {
        snprintf(err, errlen, "length scale %g: must be a positive number", len_scale);
        return -1;
    }
    if (n > SAMPLE_MAX_COUNT) {
        snprintf(err, errlen, "%lld samples asked for: at most 10^9 can be drawn", (long long)n);
        return -1;
    }
    int64_t count = n > 0 ? n : h->total;
    if (count > SAMPLE_MAX_COUNT) {
        snprintf(err, errlen, "%s holds %lld samples, over the limit of 10^9 for one draw; "
                 "ask for fewer samples", h->path, (long long)count);
        return -1;
    }

    Sample *s = malloc((size_t)count * sizeof *s);
    int64_t *cum = n > 0 ? malloc((size_t)h->n_bins * sizeof *cum) : NULL;
    if (!s || (n > 0 && !cum)) {
        snprintf(err, errlen, "%s: out of memory for %lld samples (%.3g GB); draw fewer with --samples N",
                 h->path, (long long)count, (double)count * sizeof *s / 1e9);
        free(s);
        free(cum);
        return -1;
    }

    Rng r = rng_seed(seed, SAMPLE_RNG_STREAM);
    int64_t k = 0;
    int bad_bin = -1;
    if (n <= 0) {
        /* The histogram's own composition: exact counts, bin by bin. */
        for (int b = 0; b < h->n_bins && bad_bin < 0; b++)
            for (int64_t c = 0; c < h->bins[b].count; c++) {
                if (draw_one(&r, &h->bins[b], len_scale, &s[k++]) != 0) { bad_bin = b; break; }
                if ((k & PROGRESS_EVERY) == 0) progress_update(k, count);
            }
    } else {
        int64_t acc = 0;
        for (int b = 0; b < h->n_bins; b++) cum[b] = (acc += h->bins[b].count);
        for (; k < count; k++) {
            int b = find_bin(cum, h->n_bins, (int64_t)rng_below(&r, (uint64_t)acc));
            if (draw_one(&r, &h->bins[b], len_scale, &s[k]) != 0) { bad_bin = b; break; }
            if ((k & PROGRESS_EVERY) == 0) progress_update(k, count);
        }
    }
    free(cum);
    if (bad_bin >= 0) {
        const HistBin *b = &h->bins[bad_bin];
        snprintf(err, errlen, "%s:%d: length scale %g makes samples of up to %.0f tokens, over the limit %lld",
                 h->path, b->line, len_scale, (double)b->hi * len_scale, (long long)HIST_MAX_LEN);
        free(s);
        return -1;
    }
    *out = s;
    *n_out = count;
    return 0;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Lengths up to this are counted per length for the percentiles (a count per length: 32 MiB at
 * most, and O(n) where sorting 10^8 lengths takes seconds); longer ones are sorted. */
#define STATS_COUNT_MAX_LEN (1 << 22)

/* The k-th smallest length (k from 1), from counts per length. */
static int64_t kth_from_counts(const int64_t *per_len, int64_t max_len, int64_t k)
{
    int64_t seen = 0;
    for (int64_t len = 0; len <= max_len; len++)
        if ((seen += per_len[len]) >= k) return len;
    return max_len;
}

void sample_stats(const Sample *s, int64_t n, SampleStats *st)
{
    memset(st, 0, sizeof *st);
    if (n <= 0) return;
    st->count = n;
    st->min_len = s[0].len;
    for (int64_t i = 0; i < n; i++) {
        st->tokens += s[i].len;
        st->targets += s[i].target;
        if (s[i].len < st->min_len) st->min_len = s[i].len;
        if (s[i].len > st->max_len) st->max_len = s[i].len;
    }
    st->mean_len = (double)st->tokens / (double)n;

    /* Nearest rank: the ceil(q*n)-th smallest; integer arithmetic avoids float rounding. */
    const int64_t k50 = (n + 1) / 2, k90 = (9 * n + 9) / 10;
    if (st->max_len <= STATS_COUNT_MAX_LEN) {
        int64_t *per_len = calloc((size_t)st->max_len + 1, sizeof *per_len);
        if (per_len) {
            for (int64_t i = 0; i < n; i++) per_len[s[i].len > 0 ? s[i].len : 0]++;
            st->median_len = kth_from_counts(per_len, st->max_len, k50);
            st->p90_len = kth_from_counts(per_len, st->max_len, k90);
            free(per_len);
            return;
        }
    }
    int32_t *lens = malloc((size_t)n * sizeof *lens);
    if (!lens) {
        st->median_len = st->p90_len = -1;
        return;
    }
    for (int64_t i = 0; i < n; i++) lens[i] = s[i].len;
    qsort(lens, (size_t)n, sizeof *lens, cmp_i32);
    st->median_len = lens[k50 - 1];
    st->p90_len = lens[k90 - 1];
    free(lens);
}
