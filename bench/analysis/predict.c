/* The prediction behind `labench predict` and `--cost-from`: per-micro-batch time fitted to the
 * batch's shape, replayed on plans for other cluster sizes and length distributions, with and
 * without the communication model. Method: docs/communication.md, "labench predict". */
#include "bench/analysis/predict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/analysis/sync_point.h"

const LongAlignHours LONGALIGN_FIG5[] = {
    {"ChatGLM3-6B", "chatglm3-6b", 45.4, 20.5, 19.1},
    {"Llama-2-7B", "7b", 67.2, 23.4, 23.3},
    {"Llama-2-13B", "13b", 117.2, 41.2, 44.5},
};
const int N_LONGALIGN_FIG5 = (int)(sizeof LONGALIGN_FIG5 / sizeof LONGALIGN_FIG5[0]);

/* ======================================================================================
 * The fit
 * ====================================================================================== */

/* Terms of the time model, in the order of TimeFit's dropped bits. The intercept comes before
 * the per-segment term so that, when the two cannot be told apart (one sequence per micro-batch:
 * segments is always 1), the fixed cost is reported as the intercept. */
enum { T_TOKEN, T_SQ, T_ICPT, T_SEG, N_TERMS };
_Static_assert(N_TERMS == TIME_FIT_TERMS, "one term list");
static const char *const TERM_NAMES[N_TERMS] = {"per_computed_token", "per_seq_len_sq", "intercept",
                                                "per_segment"};

const char *time_fit_term_name(int term) { return term >= 0 && term < N_TERMS ? TERM_NAMES[term] : "?"; }

static void terms_of(const MbRow *s, double x[N_TERMS])
{
    x[T_TOKEN] = (double)s->computed_tokens;
    x[T_SQ] = s->sum_seq_len_sq;
    x[T_SEG] = s->segments;
    x[T_ICPT] = 1.0;
}

static void fit_coefs(const TimeFit *f, double c[N_TERMS])
{
    c[T_TOKEN] = f->per_token;
    c[T_SQ] = f->per_token_sq;
    c[T_SEG] = f->per_segment;
    c[T_ICPT] = f->intercept;
}

double time_fit_eval(const TimeFit *f, const MbRow *s)
{
    if (s->rows <= 0) return 0.0;
    double x[N_TERMS], c[N_TERMS], t = 0;
    terms_of(s, x);
    fit_coefs(f, c);
    for (int j = 0; j < N_TERMS; j++) t += c[j] * x[j];
    return t;
}

/* Solves the k x k system G a = h (row-major, stride N_TERMS) by Gaussian elimination with
 * partial pivoting. -1 when a pivot falls below tol: the chosen terms are not independent. */
static int solve_small(double G[N_TERMS][N_TERMS], double h[N_TERMS], int k, double tol, double a[N_TERMS])
{
    for (int col = 0; col < k; col++) {
        int piv = col;
        for (int r = col + 1; r < k; r++)
            if (fabs(G[r][col]) > fabs(G[piv][col])) piv = r;
        if (fabs(G[piv][col]) <= tol) return -1;
        if (piv != col) {
            for (int j = 0; j < k; j++) {
                double tmp = G[col][j];
                G[col][j] = G[piv][j];
                G[piv][j] = tmp;
            }
            double tmp = h[col];
            h[col] = h[piv];
            h[piv] = tmp;
        }
        for (int r = col + 1; r < k; r++) {
            double m = G[r][col] / G[col][col];
            for (int j = col; j < k; j++) G[r][j] -= m * G[col][j];
            h[r] -= m * h[col];
        }
    }
    for (int r = k - 1; r >= 0; r--) {
        double s = h[r];
        for (int j = r + 1; j < k; j++) s -= G[r][j] * a[j];
        a[r] = s / G[r][r];
    }
    return 0;
}

static int popcount4(int m) { return (m & 1) + (m >> 1 & 1) + (m >> 2 & 1) + (m >> 3 & 1); }

/* Which busy record goes where: the holdout_every-th, 2*holdout_every-th, ... are held back. */
static int is_held_back(int64_t busy_index, int holdout_every)
{
    return holdout_every > 0 && busy_index % holdout_every == holdout_every - 1;
}

/* Squared error of coefficients c over the fitted (busy, not held back) records. */
static double fit_sse(const MbRow *x, const double *y, int64_t n, int holdout_every, const double c[N_TERMS])
{
    double sse = 0;
    int64_t busy = 0;
    for (int64_t i = 0; i < n; i++) {
        if (x[i].rows <= 0 || is_held_back(busy++, holdout_every)) continue;
        double v[N_TERMS], e = -y[i];
        terms_of(&x[i], v);
        for (int j = 0; j < N_TERMS; j++) e += c[j] * v[j];
        sse += e * e;
    }
    return sse;
}

int time_fit(const MbRow *x, const double *y, int64_t n, int holdout_every, TimeFit *f, char *err,
             size_t errlen)
{
    memset(f, 0, sizeof *f);
    f->holdout_mape = f->holdout_wape = f->holdout_r2 = NAN;

    /* Column scales (largest |value| of each term over the fitted records) keep the normal
     * equations well conditioned: tokens are ~1e4 while len^2 sums are ~1e9. */
    double scale[N_TERMS] = {0, 0, 0, 0};
    int64_t busy = 0;
    for (int64_t i = 0; i < n; i++) {
        if (x[i].rows <= 0) continue;
        if (!is_held_back(busy++, holdout_every)) {
            double v[N_TERMS];
            terms_of(&x[i], v);
            for (int j = 0; j < N_TERMS; j++)
                if (fabs(v[j]) > scale[j]) scale[j] = fabs(v[j]);
            f->n_fit++;
            if (x[i].computed_tokens > f->max_tokens) f->max_tokens = x[i].computed_tokens;
            if (x[i].sum_seq_len_sq > f->max_sum_sq) f->max_sum_sq = x[i].sum_seq_len_sq;
        } else {
            f->n_holdout++;
        }
    }
    if (f->n_fit < N_TERMS + 1) {
        snprintf(err, errlen, "%lld busy micro-batches to fit (%lld held back): need at least %d",
                 (long long)f->n_fit, (long long)f->n_holdout, N_TERMS + 1);
        return -1;
    }

    /* Normal equations over the scaled terms. */
    double G[N_TERMS][N_TERMS] = {{0}}, h[N_TERMS] = {0}, ysum = 0, yy = 0;   /* y: seconds */
    busy = 0;
    for (int64_t i = 0; i < n; i++) {
        if (x[i].rows <= 0 || is_held_back(busy++, holdout_every)) continue;
        double v[N_TERMS];
        terms_of(&x[i], v);
        for (int j = 0; j < N_TERMS; j++) v[j] = scale[j] > 0 ? v[j] / scale[j] : 0.0;
        for (int j = 0; j < N_TERMS; j++) {
            h[j] += v[j] * y[i];
            for (int l = 0; l < N_TERMS; l++) G[j][l] += v[j] * v[l];
        }
        ysum += y[i];
        yy += y[i] * y[i];
    }
    double max_diag = 0;
    for (int j = 0; j < N_TERMS; j++)
        if (G[j][j] > max_diag) max_diag = G[j][j];

    /* Non-negative least squares by trying every subset of the four terms: the solution is the
     * subset whose unconstrained fit has no negative coefficient and the least squared error
     * (summed over the data, not from the normal equations, which lose digits to cancellation). */
    double best_sse = INFINITY, best[N_TERMS] = {0};
    int best_mask = 0;
    for (int size = 1; size <= N_TERMS; size++) {
        for (int mask = 1; mask < 1 << N_TERMS; mask++) {
            if (popcount4(mask) != size) continue;
            int idx[N_TERMS], k = 0;
            for (int j = 0; j < N_TERMS; j++)
                if (mask >> j & 1) idx[k++] = j;
            double Gs[N_TERMS][N_TERMS], hs[N_TERMS], a[N_TERMS];
            for (int r = 0; r < k; r++) {
                hs[r] = h[idx[r]];
                for (int c = 0; c < k; c++) Gs[r][c] = G[idx[r]][idx[c]];
            }
            if (solve_small(Gs, hs, k, 1e-10 * max_diag, a) != 0) continue;
            int feasible = 1;
            for (int r = 0; r < k; r++)
                if (a[r] < 0) feasible = 0;
            if (!feasible) continue;
            double coef[N_TERMS] = {0, 0, 0, 0};
            for (int r = 0; r < k; r++) coef[idx[r]] = a[r] / scale[idx[r]];
            double sse = fit_sse(x, y, n, holdout_every, coef);
            /* A strictly better error wins; on a tie the smaller subset found first stays. */
            if (sse < best_sse * (1 - 1e-12) || best_mask == 0) {
                best_sse = sse;
                best_mask = mask;
                memcpy(best, coef, sizeof best);
            }
        }
    }
    if (best_mask == 0) {
        snprintf(err, errlen, "no usable fit: every term is zero or dependent on the others");
        return -1;
    }
    f->per_token = best[T_TOKEN];
    f->per_token_sq = best[T_SQ];
    f->per_segment = best[T_SEG];
    f->intercept = best[T_ICPT];
    f->dropped = ~best_mask & ((1 << N_TERMS) - 1);

    /* R^2 on the fitted records, MAPE and R^2 on the held-back ones, from the data itself. */
    double sse_fit = 0, mean_fit = ysum / (double)f->n_fit;
    double sse_h = 0, ape = 0, abs_err = 0, hsum = 0, hsq = 0;
    int64_t n_ape = 0;
    busy = 0;
    for (int64_t i = 0; i < n; i++) {
        if (x[i].rows <= 0) continue;
        double e = time_fit_eval(f, &x[i]) - y[i];
        if (!is_held_back(busy++, holdout_every)) {
            sse_fit += e * e;
            continue;
        }
        sse_h += e * e;
        abs_err += fabs(e);
        hsum += y[i];
        hsq += y[i] * y[i];
        if (y[i] > 0) {
            ape += fabs(e) / y[i];
            n_ape++;
        }
    }
    double sst_fit = yy - (double)f->n_fit * mean_fit * mean_fit;
    f->fit_r2 = sst_fit > 0 ? 1 - sse_fit / sst_fit : NAN;
    if (n_ape > 0) f->holdout_mape = ape / (double)n_ape;
    if (hsum > 0) f->holdout_wape = abs_err / hsum;
    if (f->n_holdout > 1) {
        double sst_h = hsq - hsum * hsum / (double)f->n_holdout;
        if (sst_h > 0) f->holdout_r2 = 1 - sse_h / sst_h;
    }
    return 0;
}

/* ======================================================================================
 * Replaying plans
 * ====================================================================================== */

void predict_mb_shape(const Plan *p, const MicroBatch *mb, MbRow *out)
{
    memset(out, 0, sizeof *out);
    out->rows = mb->n_rows;
    for (int32_t r = mb->first_row; r < mb->first_row + mb->n_rows; r++) {
        const Row *row = &p->rows[r];
        double last = 0;
        for (int32_t s = row->first_segment; s < row->first_segment + row->n_segments; s++) {
            last = p->segs[s].len;
            out->sum_seq_len_sq += last * last;
        }
        /* Pads join the row's last sequence as one causal segment (bench/run/batch.c). */
        int32_t pad = row->padded_len - row->tokens;
        if (pad > 0 && row->n_segments > 0) out->sum_seq_len_sq += (last + pad) * (last + pad) - last * last;
        out->segments += row->n_segments;
        out->real_tokens += row->tokens;
        out->computed_tokens += row->padded_len > row->tokens ? row->padded_len : row->tokens;
    }
}

void predict_dp(const MbRow *shapes, const double *t, int n_steps, int A, int W, SyncModel sync,
                double optimizer_per_step_s, const CommCost *comm, DpPrediction *out)
{
    memset(out, 0, sizeof *out);
    /* Under --sync step a rank's time is its micro-batches added up: accumulated per rank here. */
    double *rank_t = sync == SYNC_STEP ? calloc((size_t)(W > 0 ? W : 1), sizeof *rank_t) : NULL;
    if (sync == SYNC_STEP && !rank_t) {
        out->max_sum_s = out->bubble_s = NAN;
        return;
    }
    for (int s = 0; s < n_steps; s++) {
        int step_busy = 0;
        for (int r = 0; r < W && rank_t; r++) {
            double tr = 0;
            for (int m = 0; m < A; m++) tr += t[((size_t)s * A + m) * W + r];
            rank_t[r] = tr;
        }
        for (int m = 0; m < A; m++) {
            int busy = 0;
            for (int r = 0; r < W; r++) {
                size_t i = ((size_t)s * A + m) * W + r;
                const MbRow *x = &shapes[i];
                if (x->rows > 0) {
                    busy = 1;
                    out->micro_batches++;
                    out->real_tokens += x->real_tokens;
                    out->computed_tokens += x->computed_tokens;
                    if (x->computed_tokens > out->max_mb_tokens) out->max_mb_tokens = x->computed_tokens;
                    if (x->sum_seq_len_sq > out->max_mb_sum_sq) out->max_mb_sum_sq = x->sum_seq_len_sq;
                }
            }
            if (!busy) continue;
            step_busy = 1;
            out->micro_steps++;
            if (sync == SYNC_MICRO) {
                out->sync_points++;
                out->max_sum_s += sync_point_close(&t[((size_t)s * A + m) * W], W, &out->bubble_s);
            }
        }
        if (!step_busy) continue;
        out->steps++;
        if (sync == SYNC_STEP) {
            out->sync_points++;
            out->max_sum_s += sync_point_close(rank_t, W, &out->bubble_s);
        }
    }
    free(rank_t);
    out->optimizer_s = optimizer_per_step_s * (double)out->steps;
    if (comm) out->comm_s = comm->per_micro_step_s * (double)out->micro_steps + comm->per_step_s * (double)out->steps;
    out->compute_wall_s = dp_wall_seconds(out->max_sum_s, 0, out->optimizer_s, 0);
    out->comm_wall_s = dp_wall_seconds(out->max_sum_s, out->comm_s, out->optimizer_s, comm && comm->optimizer_on_host);
    out->bubble = dp_bubble_fraction(out->bubble_s, W, out->compute_wall_s);
    out->bubble_comm = dp_bubble_fraction(out->bubble_s, W, out->comm_wall_s);
    if (out->compute_wall_s > 0) out->eff_tps = (double)out->real_tokens / out->compute_wall_s;
    if (out->comm_wall_s > 0) out->eff_tps_comm = (double)out->real_tokens / out->comm_wall_s;
}

int predict_plan(const Plan *p, const TimeFit *f, double optimizer_per_step_s, const CommCost *comm,
                 DpPrediction *out)
{
    const int W = p->cfg.world_size, A = p->micro_steps;
    size_t n = (size_t)p->n_steps * (size_t)A * (size_t)W;
    MbRow *shapes = calloc(n ? n : 1, sizeof *shapes);
    double *t = calloc(n ? n : 1, sizeof *t);
    if (!shapes || !t) {
        free(shapes);
        free(t);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        predict_mb_shape(p, &p->mbs[i], &shapes[i]);
        t[i] = time_fit_eval(f, &shapes[i]);
    }
    predict_dp(shapes, t, p->n_steps, A, W, p->cfg.sync, optimizer_per_step_s, comm, out);
    free(shapes);
    free(t);
    return 0;
}

/* ======================================================================================
 * Fitting a measured run
 * ====================================================================================== */

static int64_t strategy_records(const MeasuredStrategy *s)
{
    return (int64_t)s->n_steps * s->cfg.grad_accum * s->cfg.world_size;
}

int measured_fit(Measured *src, int holdout, int pooled, char *err, size_t errlen)
{
    char why[256];
    if (pooled) {
        int64_t total = 0;
        for (int i = 0; i < src->n; i++) total += strategy_records(&src->strats[i]);
        MbRow *x = malloc(sizeof *x * (size_t)(total > 0 ? total : 1));
        double *y = malloc(sizeof *y * (size_t)(total > 0 ? total : 1));
        if (!x || !y) {
            free(x);
            free(y);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        int64_t k = 0;
        for (int i = 0; i < src->n; i++) {
            const MeasuredStrategy *s = &src->strats[i];
            int64_t n = strategy_records(s);
            memcpy(x + k, s->shapes, sizeof *x * (size_t)n);
            memcpy(y + k, s->secs, sizeof *y * (size_t)n);
            k += n;
        }
        TimeFit f;
        int rc = time_fit(x, y, k, holdout, &f, why, sizeof why);
        free(x);
        free(y);
        if (rc != 0) {
            snprintf(err, errlen, "%s: pooled fit: %s", src->path, why);
            return -1;
        }
        for (int i = 0; i < src->n; i++) {
            src->strats[i].fit = f;
            src->strats[i].fitted = 1;
        }
    } else {
        int any = 0;
        for (int i = 0; i < src->n; i++) {
            MeasuredStrategy *s = &src->strats[i];
            if (time_fit(s->shapes, s->secs, strategy_records(s), holdout, &s->fit, why, sizeof why) != 0) {
                snprintf(s->not_fitted, sizeof s->not_fitted, "%s", why);
                continue;
            }
            s->fitted = 1;
            any = 1;
        }
        if (!any) {
            snprintf(err, errlen,
                     "%s: no strategy has enough measured micro-batches to fit (run more --steps or --samples, or "
                     "try --fit pooled)", src->path);
            return -1;
        }
    }
    /* The replay check: the fit on the run's own micro-batches against the measured times. */
    for (int i = 0; i < src->n; i++) {
        MeasuredStrategy *s = &src->strats[i];
        if (!s->fitted) continue;
        size_t n = (size_t)strategy_records(s);
        double *t = malloc(sizeof *t * (n ? n : 1));
        if (!t) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (size_t j = 0; j < n; j++) t[j] = time_fit_eval(&s->fit, &s->shapes[j]);
        DpPrediction meas, fitd;
        predict_dp(s->shapes, s->secs, s->n_steps, s->cfg.grad_accum, s->cfg.world_size, s->cfg.sync, 0, NULL, &meas);
        predict_dp(s->shapes, t, s->n_steps, s->cfg.grad_accum, s->cfg.world_size, s->cfg.sync, 0, NULL, &fitd);
        s->replay_measured_s = meas.max_sum_s;
        s->replay_predicted_s = fitd.max_sum_s;
        free(t);
    }
    return 0;
}

void measured_free(Measured *m)
{
    for (int i = 0; i < m->n; i++) {
        free(m->strats[i].shapes);
        free(m->strats[i].secs);
    }
    free(m->strats);
    memset(m, 0, sizeof *m);
}

double prediction_speedup(const Prediction *p, int n, const char *name, int with_comm)
{
    const Prediction *naive = NULL, *x = NULL;
    for (int i = 0; i < n; i++) {
        if (strcmp(p[i].src->name, "naive") == 0) naive = &p[i];
        if (strcmp(p[i].src->name, name) == 0) x = &p[i];
    }
    if (!naive || !x) return NAN;
    double a = with_comm ? x->dp.eff_tps_comm : x->dp.eff_tps, b = with_comm ? naive->dp.eff_tps_comm : naive->dp.eff_tps;
    return b > 0 ? a / b : NAN;
}
