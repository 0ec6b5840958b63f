/* `labench predict`: per-micro-batch time fitted to the batch's shape, replayed on plans for other
 * cluster sizes and length distributions, with and without the communication model.
 * Method and output: docs/communication.md, "labench predict". */
#include "bench/analysis/predict.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/input/hist.h"
#include "bench/results/results.h"
#include "bench/results/results_read.h"
#include "bench/input/sample.h"
#include "common/util.h"

const LongAlignHours LONGALIGN_FIG5[] = {
    {"ChatGLM3-6B", 45.4, 20.5, 19.1},
    {"Llama-2-7B", 67.2, 23.4, 23.3},
    {"Llama-2-13B", 117.2, 41.2, 44.5},
};
const int N_LONGALIGN_FIG5 = (int)(sizeof LONGALIGN_FIG5 / sizeof LONGALIGN_FIG5[0]);

/* ======================================================================================
 * The fit
 * ====================================================================================== */

/* Terms of the time model, in the order of TimeFit's dropped bits. The intercept comes before
 * the per-segment term so that, when the two cannot be told apart (one sequence per micro-batch:
 * segments is always 1), the fixed cost is reported as the intercept. */
enum { T_TOKEN, T_SQ, T_ICPT, T_SEG, N_TERMS };
static const char *const TERM_NAMES[N_TERMS] = {"per_computed_token", "per_seq_len_sq", "intercept",
                                                "per_segment"};

static void terms_of(const MbShape *s, double x[N_TERMS])
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

double time_fit_eval(const TimeFit *f, const MbShape *s)
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
static double fit_sse(const MbShape *x, const double *y, int64_t n, int holdout_every, const double c[N_TERMS])
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

int time_fit(const MbShape *x, const double *y, int64_t n, int holdout_every, TimeFit *f, char *err,
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

void predict_mb_shape(const Plan *p, const MicroBatch *mb, MbShape *out)
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

void predict_dp(const MbShape *shapes, const double *t, int n_steps, int A, int W, SyncModel sync,
                double optimizer_per_step_s, const CommCost *comm, DpPrediction *out)
{
    memset(out, 0, sizeof *out);
    for (int s = 0; s < n_steps; s++) {
        int step_busy = 0;
        double step_sum = 0, step_max = 0;
        /* Under --sync step a rank's time is its micro-batches added up: accumulate per rank. */
        for (int r = 0; r < W && sync == SYNC_STEP; r++) {
            double tr = 0;
            for (int m = 0; m < A; m++) tr += t[((size_t)s * A + m) * W + r];
            step_sum += tr;
            if (tr > step_max) step_max = tr;
        }
        for (int m = 0; m < A; m++) {
            int busy = 0;
            double mx = 0, sum = 0;
            for (int r = 0; r < W; r++) {
                size_t i = ((size_t)s * A + m) * W + r;
                const MbShape *x = &shapes[i];
                if (x->rows > 0) {
                    busy = 1;
                    out->micro_batches++;
                    out->real_tokens += x->real_tokens;
                    out->computed_tokens += x->computed_tokens;
                    if (x->computed_tokens > out->max_mb_tokens) out->max_mb_tokens = x->computed_tokens;
                    if (x->sum_seq_len_sq > out->max_mb_sum_sq) out->max_mb_sum_sq = x->sum_seq_len_sq;
                }
                sum += t[i];
                if (t[i] > mx) mx = t[i];
            }
            if (!busy) continue;
            step_busy = 1;
            out->micro_steps++;
            if (sync == SYNC_MICRO) {
                out->sync_points++;
                out->max_sum_s += mx;
                out->bubble_s += W * mx - sum;
            }
        }
        if (!step_busy) continue;
        out->steps++;
        if (sync == SYNC_STEP) {
            out->sync_points++;
            out->max_sum_s += step_max;
            out->bubble_s += W * step_max - step_sum;
        }
    }
    out->optimizer_s = optimizer_per_step_s * (double)out->steps;
    out->compute_wall_s = out->max_sum_s + out->optimizer_s;
    out->comm_wall_s = out->max_sum_s;
    if (comm) {
        out->comm_s = comm->per_micro_step_s * (double)out->micro_steps + comm->per_step_s * (double)out->steps;
        out->comm_wall_s += out->comm_s;
    }
    if (!comm || !comm->optimizer_on_host) out->comm_wall_s += out->optimizer_s;
    if (out->compute_wall_s > 0) {
        out->bubble = out->bubble_s / (W * out->compute_wall_s);
        out->eff_tps = (double)out->real_tokens / out->compute_wall_s;
    }
    if (out->comm_wall_s > 0) {
        out->bubble_comm = out->bubble_s / (W * out->comm_wall_s);
        out->eff_tps_comm = (double)out->real_tokens / out->comm_wall_s;
    }
}

int predict_plan(const Plan *p, const TimeFit *f, double optimizer_per_step_s, const CommCost *comm,
                 DpPrediction *out)
{
    const int W = p->cfg.world_size, A = p->micro_steps;
    size_t n = (size_t)p->n_steps * (size_t)A * (size_t)W;
    MbShape *shapes = calloc(n ? n : 1, sizeof *shapes);
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
 * Reading the results file
 * ====================================================================================== */

typedef struct {
    char name[32];
    const Strategy *strategy;
    PlanConfig cfg;
    int n_steps;                 /* steps recorded */
    MbShape *shapes;             /* n_steps * A * W, plan order */
    double *secs;
    double optimizer_s;          /* median measured optimizer step */
    TimeFit fit;
    int fitted;
    double replay_measured_s, replay_predicted_s;   /* sum over sync points of max_r t_r */
} SrcStrategy;

typedef struct {
    const char *path;
    ModelConfig model;
    double n_params;
    char len_dist[1024];
    int64_t samples;
    double len_scale;
    uint64_t seed;
    char device[256], commit[64];
    SrcStrategy *strats;
    int n;
} Source;

/* The measured runs, through the one results reader (bench/results/results_read.c): every number there
 * is checked and bounded by the plan config, and the rows are in plan order already. */
static void load_source(const char *path, Source *src)
{
    memset(src, 0, sizeof *src);
    src->path = path;
    char err[2048];
    ResultsFile rf;
    if (results_read(path, &rf, err, sizeof err) != 0) die_input("%s", err);
    if (strcmp(rf.kind, "train") != 0)
        die_input("%s: a \"%s\" results file has no measured run; `labench predict` needs the output of "
                  "`labench train`", rf.path, rf.kind);
    ModelConfig *c = &src->model;
    snprintf(c->name, sizeof c->name, "%s", rf.model_preset[0] ? rf.model_preset : "file");
    c->vocab = rf.vocab;
    c->hidden = rf.hidden;
    c->intermediate = rf.intermediate;
    c->layers = rf.layers;
    c->heads = rf.heads;
    c->kv_heads = rf.kv_heads;
    c->head_dim = rf.head_dim;
    src->n_params = rf.params > 0 ? (double)rf.params : (double)model_param_count(c);
    snprintf(src->len_dist, sizeof src->len_dist, "%s", rf.len_dist);
    src->samples = rf.samples;
    src->len_scale = rf.len_scale;
    src->seed = (uint64_t)rf.seed;
    snprintf(src->device, sizeof src->device, "%s", rf.device ? rf.device : "unknown device");
    snprintf(src->commit, sizeof src->commit, "%s", rf.commit);

    src->strats = calloc((size_t)rf.n_strategies, sizeof *src->strats);
    if (!src->strats) die_input("out of memory reading %s", rf.path);
    /* The columns the fit needs, beyond step, micro, rank and seconds. */
    static const struct { unsigned bit; const char *name; } need[] = {
        {MB_COL_ROWS, "rows"}, {MB_COL_SEGMENTS, "segments"}, {MB_COL_REAL_TOKENS, "real_tokens"},
        {MB_COL_COMPUTED_TOKENS, "computed_tokens"}, {MB_COL_SUM_SEQ_LEN_SQ, "sum_seq_len_sq"}};
    for (int i = 0; i < rf.n_strategies; i++) {
        const RepStrategy *rs = &rf.strategies[i];
        const RepRun *run = rs->run;
        char ex[EXCERPT_SIZE];
        if (!run) continue;   /* planned, not run */
        SrcStrategy *s = &src->strats[src->n];
        s->strategy = strategy_find(rs->name);
        if (!s->strategy)
            die_input("%s: strategies[%d]: unknown strategy \"%s\"", rf.path, i, excerpt(rs->name, ex));
        snprintf(s->name, sizeof s->name, "%s", rs->name);
        s->cfg = rs->cfg;
        for (size_t k = 0; k < sizeof need / sizeof need[0]; k++)
            if (!(run->columns & need[k].bit))
                die_input("%s: strategies[%d] (%s): run.micro_batch_columns has no \"%s\" column (the fit needs it)",
                          rf.path, i, s->name, need[k].name);
        if (run->n_mbs == 0)
            die_input("%s: strategies[%d] (%s): run.micro_batches_detail is empty: no measured micro-batch", rf.path, i,
                      s->name);
        s->n_steps = run->steps;
        size_t n = (size_t)run->n_mbs;
        s->shapes = calloc(n, sizeof *s->shapes);
        s->secs = calloc(n, sizeof *s->secs);
        if (!s->shapes || !s->secs) die_input("out of memory reading %s", rf.path);
        for (size_t k = 0; k < n; k++) {
            const RepMicroBatch *m = &run->mbs[k];
            MbShape *x = &s->shapes[k];
            x->rows = m->rows;
            x->segments = m->segments;
            x->real_tokens = m->real_tokens;
            x->computed_tokens = m->computed_tokens;
            x->sum_seq_len_sq = m->sum_seq_len_sq;
            if (m->rows > 0 && !isfinite(m->seconds))
                die_input("%s: strategies[%d] (%s): run.micro_batches_detail: step %d, micro %d, rank %d did work "
                          "but has no time (seconds is null)", rf.path, i, s->name, m->step, m->micro, m->rank);
            s->secs[k] = m->rows > 0 ? m->seconds : 0.0;
        }
        /* The optimizer step, once per step: the median resists the first step's warm-up. */
        s->optimizer_s = median(run->optimizer_step_s, (size_t)run->n_steps);
        if (isnan(s->optimizer_s)) s->optimizer_s = 0;
        src->n++;
    }
    if (src->n == 0) die_input("%s: no strategy has a \"run\": nothing measured to fit", rf.path);
    results_file_free(&rf);
}

static void source_free(Source *src)
{
    for (int i = 0; i < src->n; i++) {
        free(src->strats[i].shapes);
        free(src->strats[i].secs);
    }
    free(src->strats);
}

/* ======================================================================================
 * The command
 * ====================================================================================== */

#define MAX_WORLD_SIZES 16

typedef struct {
    const char *from, *len_dist, *lengths, *out;
    long long samples, max_tokens, seed;
    double len_scale;
    int world_sizes[MAX_WORLD_SIZES], n_world;
    int holdout, pooled;
    CommOptions comm;
} PredictOptions;

static void usage(FILE *f)
{
    fputs("usage: labench predict RESULTS.json [options]   (or --from RESULTS.json)\n"
          "\n"
          "Fits each strategy's measured time per micro-batch to the batch's shape,\n"
          "  t = a x computed tokens + b x sum of segment len^2 + c x segments + d   (a..d >= 0),\n"
          "holding back every K-th micro-batch to report the fit's error, then plans other cluster\n"
          "sizes and length distributions with the same strategies and configs, times every\n"
          "micro-batch with the fit, and prints the DP wall, bubble, effective tokens/s and\n"
          "speed-up over naive: compute only and with the communication model, side by side.\n"
          "\n"
          "  labench predict results/latest.json\n"
          "  labench predict gpu.json --world-size 8,64,512 --comm zero3-offload --system a800\n"
          "\n"
          "  RESULTS.json, --from FILE   results JSON of `labench train` (required)\n"
          "  --len-dist FILE     predict another .hist distribution (default: the run's)\n"
          "  --lengths FILE      or a plain lengths list\n"
          "  --samples N         samples to draw (default: the run's count)\n"
          "  --len-scale F       length scale (default: the run's); L scales along unless --max-tokens\n"
          "  --max-tokens L      pack length and truncation for every strategy\n"
          "  --seed S            sampler and planner seed (default: the run's)\n"
          "  --world-size LIST   comma-separated data-parallel sizes (default 8,64,512)\n"
          "  --holdout K         hold back every K-th micro-batch for the error (default 5; 0: none)\n"
          "  --fit per-strategy|pooled   one fit per strategy (default) or one over all of them\n"
          "  --out FILE          predictions JSON (default results/predict.json)\n"
          "  --device D          a100 | a800 | h100 | h200: the device model instead, with or without a\n"
          "                      run (labench predict --device a800 --help; docs/device-model.md)\n"
          "\n",
          f);
    fputs(COMM_USAGE, f);
    fputs("  (predict's default: --comm zero3-offload --system " COMM_DEFAULT_SYSTEM
          ", LongAlign's setup)\n"
          "Every option with a value takes it as `--opt VALUE` or `--opt=VALUE`.\n",
          f);
}

static void parse_world_sizes(const char *v, PredictOptions *o)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    o->n_world = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long long w;
        if (parse_i64(tok, 1, 1 << 20, &w) != 0)
            die_input("--world-size: '%s' is not an integer from 1 to %d", tok, 1 << 20);
        if (o->n_world == MAX_WORLD_SIZES) die_input("--world-size: at most %d sizes", MAX_WORLD_SIZES);
        o->world_sizes[o->n_world++] = (int)w;
    }
    if (o->n_world == 0) die_input("--world-size: empty list");
}

static double real_arg(const char *name, const char *v, double min, double max)
{
    double x, num, den;
    const char *slash = strchr(v, '/');
    if (slash) {   /* fractions such as 1/16 */
        char a[64];
        snprintf(a, sizeof a, "%.*s", (int)(slash - v), v);
        if (parse_f64(a, -1e300, 1e300, &num) == 0 && parse_f64(slash + 1, -1e300, 1e300, &den) == 0 && den != 0 &&
            num / den >= min && num / den <= max)
            return num / den;
    } else if (parse_f64(v, min, max, &x) == 0) {
        return x;
    }
    die_input("--%s must be a number from %g to %g (got '%s')", name, min, max, v);
}

static long long int_arg(const char *name, const char *v, long long min, long long max)
{
    long long x;
    if (parse_i64(v, min, max, &x) != 0) die_input("--%s must be an integer from %lld to %lld (got '%s')", name, min, max, v);
    return x;
}

enum { P_FROM = 256, P_LEN_DIST, P_LENGTHS, P_SAMPLES, P_LEN_SCALE, P_MAXTOK, P_SEED, P_WORLD, P_HOLDOUT, P_FIT,
       P_OUT, P_HELP, P_COMM_FIRST };

static void parse_options(int argc, char **argv, PredictOptions *o)
{
    memset(o, 0, sizeof *o);
    o->samples = -1;
    o->max_tokens = -1;
    o->seed = -1;
    o->len_scale = -1;
    o->holdout = 5;
    const int default_sizes[] = {8, 64, 512};
    for (int i = 0; i < 3; i++) o->world_sizes[i] = default_sizes[i];
    o->n_world = 3;
    comm_options_init(&o->comm);
    o->comm.comm = "zero3-offload";

    struct option longopts[32] = {
        {"from", required_argument, 0, P_FROM}, {"len-dist", required_argument, 0, P_LEN_DIST},
        {"lengths", required_argument, 0, P_LENGTHS}, {"samples", required_argument, 0, P_SAMPLES},
        {"len-scale", required_argument, 0, P_LEN_SCALE}, {"max-tokens", required_argument, 0, P_MAXTOK},
        {"seed", required_argument, 0, P_SEED}, {"world-size", required_argument, 0, P_WORLD},
        {"holdout", required_argument, 0, P_HOLDOUT}, {"fit", required_argument, 0, P_FIT},
        {"out", required_argument, 0, P_OUT}, {"help", no_argument, 0, P_HELP}};
    int n_opts = 12, n_comm = 0;
    for (; COMM_OPTION_NAMES[n_comm]; n_comm++)
        longopts[n_opts++] = (struct option){COMM_OPTION_NAMES[n_comm], required_argument, 0, P_COMM_FIRST + n_comm};
    longopts[n_opts] = (struct option){0, 0, 0, 0};

    opterr = 0;
    optind = 1;
    int c;
    char err[256];
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case P_FROM: o->from = optarg; break;
        case P_LEN_DIST: o->len_dist = optarg; break;
        case P_LENGTHS: o->lengths = optarg; break;
        case P_SAMPLES: o->samples = int_arg("samples", optarg, 1, SAMPLE_MAX_COUNT); break;
        case P_LEN_SCALE: o->len_scale = real_arg("len-scale", optarg, 1e-6, 1e6); break;
        case P_MAXTOK: o->max_tokens = int_arg("max-tokens", optarg, 1, 1 << 30); break;
        case P_SEED: o->seed = int_arg("seed", optarg, 0, INT64_MAX); break;
        case P_WORLD: parse_world_sizes(optarg, o); break;
        case P_HOLDOUT:
            o->holdout = (int)int_arg("holdout", optarg, 0, 1000000);
            if (o->holdout == 1) die_input("--holdout 1 would hold back every micro-batch: give 0 or K >= 2");
            break;
        case P_FIT:
            if (strcmp(optarg, "per-strategy") == 0)
                o->pooled = 0;
            else if (strcmp(optarg, "pooled") == 0)
                o->pooled = 1;
            else
                die_input("--fit must be per-strategy or pooled (got '%s')", optarg);
            break;
        case P_OUT: o->out = optarg; break;
        case 'h':
        case P_HELP: usage(stdout); exit(0);
        default:
            if (c >= P_COMM_FIRST && c < P_COMM_FIRST + n_comm) {
                if (comm_option(&o->comm, COMM_OPTION_NAMES[c - P_COMM_FIRST], optarg, err, sizeof err) < 0)
                    die_input("%s", err);
                break;
            }
            /* getopt_long sets optopt to the option's code when its value is missing, 0 when
             * the option is unknown. */
            if (optopt != 0) die_input("%s needs a value (see labench predict --help)", argv[optind - 1]);
            die_input("unknown option '%s' (see labench predict --help)", argv[optind - 1]);
        }
    }
    /* The results file as an argument, like report and compare take theirs; --from still works. */
    if (optind < argc) {
        if (o->from)
            die_input("predict: give the results file once, as an argument or with --from (got '%s' and '%s')",
                      o->from, argv[optind]);
        o->from = argv[optind++];
    }
    if (optind < argc) die_input("unexpected argument '%s' (see labench predict --help)", argv[optind]);
    if (!o->from) die_input("predict needs a results file: labench predict RESULTS.json (or --from RESULTS.json), the output "
                          "of `labench train`");
    if (o->len_dist && o->lengths) die_input("give --len-dist or --lengths, not both");
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* One prediction: a strategy at a world size. */
typedef struct {
    const SrcStrategy *src;
    PlanConfig cfg;
    DpPrediction dp;
    int extrapolated;
} Prediction;

static const Prediction *find_pred(const Prediction *p, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(p[i].src->name, name) == 0) return &p[i];
    return NULL;
}


static void print_fits(const Source *src, const PredictOptions *o)
{
    printf("\nFit of each micro-batch's measured time (%s; every %d-th micro-batch held back):\n",
           o->pooled ? "one fit over every strategy" : "one fit per strategy", o->holdout);
    printf("%-17s %11s %11s %11s %11s %6s %5s %8s %8s %9s %9s\n", "strategy", "a s/token", "b s/len^2", "c s/seg",
           "d s/mb", "fit", "held", "R^2 fit", "R^2 held", "MAPE held", "WAPE held");
    for (int i = 0; i < src->n; i++) {
        const SrcStrategy *s = &src->strats[i];
        if (o->pooled && i > 0) break;   /* one fit shared by every strategy */
        if (!s->fitted) {
            printf("%-17s  (not fitted: too few micro-batches)\n", s->name);
            continue;
        }
        const TimeFit *f = &s->fit;
        char r2h[16] = "-", mape[16] = "-", wape[16] = "-";
        if (isfinite(f->holdout_r2)) snprintf(r2h, sizeof r2h, "%.4f", f->holdout_r2);
        if (isfinite(f->holdout_mape)) snprintf(mape, sizeof mape, "%.2f%%", 100 * f->holdout_mape);
        if (isfinite(f->holdout_wape)) snprintf(wape, sizeof wape, "%.2f%%", 100 * f->holdout_wape);
        printf("%-17s %11.4g %11.4g %11.4g %11.4g %6lld %5lld %8.4f %8s %9s %9s\n",
               o->pooled ? "(all, pooled)" : s->name, f->per_token,
               f->per_token_sq, f->per_segment, f->intercept, (long long)f->n_fit, (long long)f->n_holdout,
               f->fit_r2, r2h, mape, wape);
    }
    printf("Replay check (the fit on the run's own micro-batches; sum over sync points of the slowest rank):\n");
    for (int i = 0; i < src->n; i++) {
        const SrcStrategy *s = &src->strats[i];
        if (!s->fitted || s->replay_measured_s <= 0) continue;
        printf("  %-17s measured %.4g s, fitted %.4g s (%+.1f%%)\n", s->name, s->replay_measured_s,
               s->replay_predicted_s, 100 * (s->replay_predicted_s / s->replay_measured_s - 1));
    }
}

static void print_world(int W, const CommCost *cc, const CommConfig *comm, const Prediction *p, int n)
{
    printf("\nW = %d ranks", W);
    if (comm->kind != COMM_NONE)
        printf("  (%s: %.4g s per micro-step, %.4g s per optimizer step)", comm_kind_name(comm->kind),
               cc->per_micro_step_s, cc->per_step_s);
    printf("\n%-33s | %-37s | %s\n", "", "------------ compute only -----------",
           "---------------- with communication ----------------");
    printf("%-18s %6s %7s | %10s %6s %11s %7s | %10s %10s %6s %11s %7s\n", "strategy", "steps", "syncs", "wall s",
           "bub %", "eff tok/s", "x naive", "comm s", "wall s", "bub %", "eff tok/s", "x naive");
    const Prediction *naive = find_pred(p, n, "naive");
    for (int i = 0; i < n; i++) {
        const DpPrediction *d = &p[i].dp;
        char s1[16] = "-", s2[16] = "-";
        if (naive && naive->dp.eff_tps > 0) snprintf(s1, sizeof s1, "%.2fx", d->eff_tps / naive->dp.eff_tps);
        if (naive && naive->dp.eff_tps_comm > 0)
            snprintf(s2, sizeof s2, "%.2fx", d->eff_tps_comm / naive->dp.eff_tps_comm);
        printf("%-17s%s %6lld %7lld | %10.4g %6.2f %11.4g %7s | %10.4g %10.4g %6.2f %11.4g %7s\n", p[i].src->name,
               p[i].extrapolated ? "*" : " ", (long long)d->steps, (long long)d->sync_points, d->compute_wall_s,
               100 * d->bubble, d->eff_tps, s1, d->comm_s, d->comm_wall_s, 100 * d->bubble_comm, d->eff_tps_comm, s2);
    }
}

static double speedup(const Prediction *p, int n, const char *name, int with_comm)
{
    const Prediction *naive = find_pred(p, n, "naive"), *x = find_pred(p, n, name);
    if (!naive || !x) return NAN;
    double a = with_comm ? x->dp.eff_tps_comm : x->dp.eff_tps, b = with_comm ? naive->dp.eff_tps_comm : naive->dp.eff_tps;
    return b > 0 ? a / b : NAN;
}

/* Predicted speed-ups over naive beside LongAlign's: [0] compute only, [1] with communication. */
typedef struct {
    int world_size;
    double packing[2], sorted[2];
} Fig5Prediction;

static void print_fig5(const Fig5Prediction *f)
{
    printf("\nLongAlign Figure 5 (8x A800, DeepSpeed ZeRO-3 + CPU offload; training hours, speed-up over naive):\n");
    printf("  %-26s %8s %8s %8s %10s %10s\n", "", "naive h", "pack h", "sorted h", "packing x", "sorted x");
    for (int i = 0; i < N_LONGALIGN_FIG5; i++) {
        const LongAlignHours *h = &LONGALIGN_FIG5[i];
        printf("  %-26s %8.1f %8.1f %8.1f %9.2fx %9.2fx\n", h->model, h->naive_h, h->packing_h, h->sorted_h,
               h->naive_h / h->packing_h, h->naive_h / h->sorted_h);
    }
    for (int with_comm = 0; with_comm <= 1; with_comm++) {
        char label[64];
        snprintf(label, sizeof label, "predicted W=%d, %s", f->world_size, with_comm ? "with comm" : "compute only");
        printf("  %-26s %8s %8s %8s %9.2fx %9.2fx\n", label, "", "", "", f->packing[with_comm],
               f->sorted[with_comm]);
    }
}

static json_t *pred_json(const Prediction *p, const Prediction *all, int n)
{
    const DpPrediction *d = &p->dp;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(p->src->name));
    json_object_set_new(o, "max_tokens", json_integer(p->cfg.max_tokens));
    json_object_set_new(o, "steps", json_integer(d->steps));
    json_object_set_new(o, "micro_steps", json_integer(d->micro_steps));
    json_object_set_new(o, "sync_points", json_integer(d->sync_points));
    json_object_set_new(o, "micro_batches", json_integer(d->micro_batches));
    json_object_set_new(o, "real_tokens", json_integer(d->real_tokens));
    json_object_set_new(o, "computed_tokens", json_integer(d->computed_tokens));
    json_object_set_new(o, "max_micro_batch_tokens", json_integer(d->max_mb_tokens));
    json_object_set_new(o, "extrapolated", json_boolean(p->extrapolated));
    json_object_set_new(o, "sync_max_seconds", results_real(d->max_sum_s));
    json_object_set_new(o, "bubble_seconds", results_real(d->bubble_s));
    json_object_set_new(o, "optimizer_seconds", results_real(d->optimizer_s));
    json_t *c = json_object();
    json_object_set_new(c, "dp_wall_seconds", results_real(d->compute_wall_s));
    json_object_set_new(c, "dp_bubble_fraction", results_real(d->bubble));
    json_object_set_new(c, "effective_tokens_per_s", results_real(d->eff_tps));
    json_object_set_new(c, "speedup_vs_naive", results_real(speedup(all, n, p->src->name, 0)));
    json_object_set_new(o, "compute_only", c);
    json_t *w = json_object();
    json_object_set_new(w, "comm_seconds", results_real(d->comm_s));
    json_object_set_new(w, "dp_wall_seconds", results_real(d->comm_wall_s));
    json_object_set_new(w, "dp_bubble_fraction", results_real(d->bubble_comm));
    json_object_set_new(w, "effective_tokens_per_s", results_real(d->eff_tps_comm));
    json_object_set_new(w, "speedup_vs_naive", results_real(speedup(all, n, p->src->name, 1)));
    json_object_set_new(o, "with_comm", w);
    return o;
}

static json_t *fit_json(const SrcStrategy *s, int pooled)
{
    const TimeFit *f = &s->fit;
    json_t *o = json_object();
    json_object_set_new(o, "strategy", json_string(s->name));
    json_object_set_new(o, "pooled", json_boolean(pooled));
    json_object_set_new(o, "per_computed_token_seconds", results_real(f->per_token));
    json_object_set_new(o, "per_seq_len_sq_seconds", results_real(f->per_token_sq));
    json_object_set_new(o, "per_segment_seconds", results_real(f->per_segment));
    json_object_set_new(o, "intercept_seconds", results_real(f->intercept));
    json_t *dropped = json_array();
    for (int j = 0; j < N_TERMS; j++)
        if (f->dropped >> j & 1) json_array_append_new(dropped, json_string(TERM_NAMES[j]));
    json_object_set_new(o, "terms_at_zero", dropped);
    json_object_set_new(o, "n_fit", json_integer(f->n_fit));
    json_object_set_new(o, "n_holdout", json_integer(f->n_holdout));
    json_object_set_new(o, "fit_r2", results_real(f->fit_r2));
    json_object_set_new(o, "holdout_r2", results_real(f->holdout_r2));
    json_object_set_new(o, "holdout_mape", results_real(f->holdout_mape));
    json_object_set_new(o, "holdout_wape", results_real(f->holdout_wape));
    json_object_set_new(o, "optimizer_step_seconds_median", results_real(s->optimizer_s));
    json_object_set_new(o, "replay_measured_sync_max_seconds", results_real(s->replay_measured_s));
    json_object_set_new(o, "replay_fitted_sync_max_seconds", results_real(s->replay_predicted_s));
    return o;
}

/* Fits every strategy (or one pooled fit shared by all) and replays the run's own micro-batches. */
static void fit_all(Source *src, const PredictOptions *o)
{
    char err[256];
    if (o->pooled) {
        int64_t total = 0;
        for (int i = 0; i < src->n; i++)
            total += (int64_t)src->strats[i].n_steps * src->strats[i].cfg.grad_accum * src->strats[i].cfg.world_size;
        MbShape *x = malloc(sizeof *x * (size_t)(total > 0 ? total : 1));
        double *y = malloc(sizeof *y * (size_t)(total > 0 ? total : 1));
        if (!x || !y) die_input("out of memory");
        int64_t k = 0;
        for (int i = 0; i < src->n; i++) {
            const SrcStrategy *s = &src->strats[i];
            int64_t n = (int64_t)s->n_steps * s->cfg.grad_accum * s->cfg.world_size;
            memcpy(x + k, s->shapes, sizeof *x * (size_t)n);
            memcpy(y + k, s->secs, sizeof *y * (size_t)n);
            k += n;
        }
        TimeFit f;
        if (time_fit(x, y, k, o->holdout, &f, err, sizeof err) != 0) die_input("%s: pooled fit: %s", src->path, err);
        for (int i = 0; i < src->n; i++) {
            src->strats[i].fit = f;
            src->strats[i].fitted = 1;
        }
        free(x);
        free(y);
    } else {
        int any = 0;
        for (int i = 0; i < src->n; i++) {
            SrcStrategy *s = &src->strats[i];
            int64_t n = (int64_t)s->n_steps * s->cfg.grad_accum * s->cfg.world_size;
            if (time_fit(s->shapes, s->secs, n, o->holdout, &s->fit, err, sizeof err) != 0) {
                fprintf(stderr, "labench: %s: %s: not fitted: %s\n", src->path, s->name, err);
                continue;
            }
            s->fitted = 1;
            any = 1;
        }
        if (!any)
            die_input("%s: no strategy has enough measured micro-batches to fit (run more --steps or --samples, or "
                      "try --fit pooled)", src->path);
    }
    for (int i = 0; i < src->n; i++) {
        SrcStrategy *s = &src->strats[i];
        if (!s->fitted) continue;
        size_t n = (size_t)s->n_steps * s->cfg.grad_accum * s->cfg.world_size;
        double *t = malloc(sizeof *t * (n ? n : 1));
        if (!t) die_input("out of memory");
        for (size_t j = 0; j < n; j++) t[j] = time_fit_eval(&s->fit, &s->shapes[j]);
        DpPrediction meas, fitd;
        predict_dp(s->shapes, s->secs, s->n_steps, s->cfg.grad_accum, s->cfg.world_size, s->cfg.sync, 0, NULL, &meas);
        predict_dp(s->shapes, t, s->n_steps, s->cfg.grad_accum, s->cfg.world_size, s->cfg.sync, 0, NULL, &fitd);
        s->replay_measured_s = meas.max_sum_s;
        s->replay_predicted_s = fitd.max_sum_s;
        free(t);
    }
}

/* Notes on what limits the fit, printed after the tables. */
static void print_fit_notes(const Source *src, const PredictOptions *o)
{
    for (int i = 0; i < src->n && !o->pooled; i++) {
        const SrcStrategy *s = &src->strats[i];
        if (!s->fitted) continue;
        int64_t lo = INT64_MAX, hi = 0;
        size_t n = (size_t)s->n_steps * s->cfg.grad_accum * s->cfg.world_size;
        for (size_t j = 0; j < n; j++) {
            if (s->shapes[j].rows <= 0) continue;
            if (s->shapes[j].computed_tokens < lo) lo = s->shapes[j].computed_tokens;
            if (s->shapes[j].computed_tokens > hi) hi = s->shapes[j].computed_tokens;
        }
        if (hi > 0 && (double)(hi - lo) < 0.05 * (double)hi)
            printf("note: %s: every measured micro-batch computes about %lld tokens, so its per-token cost cannot be\n"
                   "      told from its fixed cost; predictions for other lengths extrapolate (try --fit pooled)\n",
                   s->name, (long long)hi);
    }
}

int cmd_predict(int argc, char **argv)
{
    PredictOptions o;
    parse_options(argc, argv, &o);
    char err[1024];
    CommConfig comm;
    if (comm_config_resolve(&o.comm, &comm, err, sizeof err) != 0) die_input("%s", err);

    Source src;
    load_source(o.from, &src);
    fit_all(&src, &o);

    /* The distribution to predict: the run's unless told otherwise. */
    const char *dist = o.lengths ? o.lengths : o.len_dist ? o.len_dist : src.len_dist;
    int as_lengths = o.lengths != NULL || (!o.len_dist && dist[0] && !ends_with(dist, ".hist"));
    if (!dist[0]) die_input("%s: config.len_dist is empty: give --len-dist", o.from);
    double len_scale = o.len_scale > 0 ? o.len_scale : src.len_scale;
    int64_t n_samples = o.samples > 0 ? o.samples : src.samples;
    uint64_t seed = o.seed >= 0 ? (uint64_t)o.seed : src.seed;
    Hist h;
    int rc = as_lengths ? hist_load_lengths(dist, &h, err, sizeof err) : hist_load(dist, &h, err, sizeof err);
    if (rc != 0) {
        if (!o.len_dist && !o.lengths) die_input("%s (the run's distribution; give --len-dist)", err);
        die_input("%s", err);
    }
    Sample *samples;
    int64_t n_drawn;
    if (sample_draw(&h, n_samples, len_scale, seed, &samples, &n_drawn, err, sizeof err) != 0) {
        hist_free(&h);
        die_input("%s", err);
    }
    hist_free(&h);

    printf("labench predict: fit on %s (%s, model %s, %d layers, %.4g parameters)\n", o.from, src.device,
           src.model.name, src.model.layers, src.n_params);
    printf("predicting %lld samples of %s (x%.4g), seed %llu\n", (long long)n_drawn, dist, len_scale,
           (unsigned long long)seed);
    char desc[1024];
    printf("communication: %s\n", comm_describe(&comm, desc, sizeof desc));
    print_fits(&src, &o);

    json_t *preds_json = json_array();
    Prediction *preds = calloc((size_t)src.n, sizeof *preds);
    if (!preds) die_input("out of memory");
    Fig5Prediction fig5_pred = {0, {NAN, NAN}, {NAN, NAN}};
    int few_steps = 0;
    for (int wi = 0; wi < o.n_world; wi++) {
        const int W = o.world_sizes[wi];
        CommCost cc;
        comm_cost_params(&comm, src.n_params, W, &cc);
        int n = 0;
        for (int i = 0; i < src.n; i++) {
            const SrcStrategy *s = &src.strats[i];
            if (!s->fitted) continue;
            Prediction *p = &preds[n];
            memset(p, 0, sizeof *p);
            p->src = s;
            p->cfg = s->cfg;
            p->cfg.world_size = W;
            p->cfg.seed = seed;
            if (o.max_tokens > 0)
                p->cfg.max_tokens = (int)o.max_tokens;
            else if (len_scale != src.len_scale)
                p->cfg.max_tokens = (int)fmax(1.0, fmin((double)(1 << 30), llround(s->cfg.max_tokens * len_scale / src.len_scale)));
            if (plan_config_check(&p->cfg, err, sizeof err) != 0) die_input("%s at --world-size %d: %s", s->name, W, err);
            Plan plan;
            if (plan_make(s->strategy, &p->cfg, samples, n_drawn, &plan, err, sizeof err) != 0)
                die_input("%s at W=%d: %s", s->name, W, err);
            if (predict_plan(&plan, &s->fit, s->optimizer_s, &cc, &p->dp) != 0) die_input("out of memory");
            plan_free(&plan);
            p->extrapolated = (double)p->dp.max_mb_tokens > 1.5 * (double)s->fit.max_tokens ||
                              p->dp.max_mb_sum_sq > 1.5 * s->fit.max_sum_sq;
            if (p->dp.steps < 3) few_steps = 1;
            n++;
        }
        print_world(W, &cc, &comm, preds, n);
        json_t *wj = json_object();
        json_object_set_new(wj, "world_size", json_integer(W));
        json_object_set_new(wj, "comm", comm_to_json(&comm, &cc));
        json_t *arr = json_array();
        for (int i = 0; i < n; i++) json_array_append_new(arr, pred_json(&preds[i], preds, n));
        json_object_set_new(wj, "strategies", arr);
        json_array_append_new(preds_json, wj);
        /* Beside LongAlign's 8 GPUs: the W = 8 prediction, else the first size given. */
        if (wi == 0 || W == 8) {
            fig5_pred.world_size = W;
            for (int c = 0; c <= 1; c++) {
                fig5_pred.packing[c] = speedup(preds, n, "packing", c);
                fig5_pred.sorted[c] = speedup(preds, n, "sorted", c);
            }
        }
    }
    printf("\nwall s: predicted DP wall time (sum over sync points of the slowest rank, plus the measured median\n"
           "optimizer step per step); bub %%: ranks' idle share; eff tok/s: real tokens / wall; x naive: effective\n"
           "tokens/s over naive's. with comm: plus the modelled communication (under zero3-offload the optimizer\n"
           "runs on the CPU: CPU Adam replaces the GPU optimizer step). *: beyond 1.5x the largest measured\n"
           "micro-batch (extrapolated).\n");
    print_fig5(&fig5_pred);
    print_fit_notes(&src, &o);
    if (few_steps)
        printf("note: some predictions have fewer than 3 optimizer steps: raise --samples for a steadier estimate\n");

    /* The JSON. */
    const char *out = o.out ? o.out : "results/predict.json";
    char now[64], commit[160], cmdline[4096] = "labench";
    utc_now_iso(now, sizeof now);
    source_commit(commit, sizeof commit);
    for (int i = 0; i < argc; i++) {
        strncat(cmdline, " ", sizeof cmdline - strlen(cmdline) - 1);
        strncat(cmdline, argv[i], sizeof cmdline - strlen(cmdline) - 1);
    }
    json_t *root = json_object();
    json_object_set_new(root, "schema", json_string("labench-predict"));
    json_object_set_new(root, "schema_version", json_integer(1));
    json_object_set_new(root, "created", json_string(now));
    json_object_set_new(root, "commit", json_string(commit));
    json_object_set_new(root, "command", json_string(cmdline));
    json_object_set_new(root, "from",
                        json_pack("{s:s, s:s, s:s, s:s, s:i, s:f}", "path", o.from, "commit", src.commit, "device",
                                  src.device, "model", src.model.name, "layers", src.model.layers, "params",
                                  src.n_params));
    json_object_set_new(root, "distribution",
                        json_pack("{s:s, s:I, s:f, s:I}", "len_dist", dist, "samples", (json_int_t)n_drawn,
                                  "len_scale", len_scale, "seed", (json_int_t)seed));
    json_object_set_new(root, "fit_model",
                        json_pack("{s:s, s:s, s:i}", "formula",
                                  "seconds = per_computed_token * computed_tokens + per_seq_len_sq * sum_seq_len_sq"
                                  " + per_segment * segments + intercept, coefficients >= 0",
                                  "mode", o.pooled ? "pooled" : "per-strategy", "holdout_every", o.holdout));
    json_t *fits = json_array();
    for (int i = 0; i < src.n; i++)
        if (src.strats[i].fitted) json_array_append_new(fits, fit_json(&src.strats[i], o.pooled));
    json_object_set_new(root, "fits", fits);
    json_object_set_new(root, "communication", comm_to_json(&comm, NULL));
    json_object_set_new(root, "predictions", preds_json);
    json_t *fig5 = json_array();
    for (int i = 0; i < N_LONGALIGN_FIG5; i++) {
        const LongAlignHours *x = &LONGALIGN_FIG5[i];
        json_array_append_new(fig5, json_pack("{s:s, s:f, s:f, s:f, s:f, s:f}", "model", x->model, "naive_hours",
                                              x->naive_h, "packing_hours", x->packing_h, "sorted_hours", x->sorted_h,
                                              "packing_speedup", x->naive_h / x->packing_h, "sorted_speedup",
                                              x->naive_h / x->sorted_h));
    }
    json_object_set_new(root, "longalign_figure5", fig5);
    json_object_set_new(root, "figure5_predicted",
                        json_pack("{s:i, s:o, s:o, s:o, s:o}", "world_size", fig5_pred.world_size,
                                  "packing_speedup_compute_only", results_real(fig5_pred.packing[0]),
                                  "sorted_speedup_compute_only", results_real(fig5_pred.sorted[0]),
                                  "packing_speedup_with_comm", results_real(fig5_pred.packing[1]),
                                  "sorted_speedup_with_comm", results_real(fig5_pred.sorted[1])));

    AtomicFile af;
    int status = 0;
    if (atomic_open(&af, out, err, sizeof err) != 0) {
        fprintf(stderr, "labench: %s\n", err);
        status = EXIT_BAD_INPUT;
    } else if (json_dumpf(root, af.f, JSON_INDENT(1) | JSON_REAL_PRECISION(10)) != 0) {
        atomic_abort(&af);
        fprintf(stderr, "labench: %s: could not write the predictions\n", out);
        status = EXIT_BAD_INPUT;
    } else {
        fputc('\n', af.f);
        if (atomic_commit(&af, err, sizeof err) != 0) {
            fprintf(stderr, "labench: %s\n", err);
            status = EXIT_BAD_INPUT;
        } else {
            printf("\npredictions: %s\n", out);
        }
    }
    json_decref(root);
    free(preds);
    free(samples);
    source_free(&src);
    return status;
}

void predict_cost_from_results(const char *path, CostModel *cost, TimeFit *fit, ModelConfig *model)
{
    Source src;
    load_source(path, &src);
    PredictOptions o;
    memset(&o, 0, sizeof o);
    o.holdout = 5;
    o.pooled = 1;
    fit_all(&src, &o);
    const TimeFit *f = &src.strats[0].fit;
    *cost = (CostModel){f->per_token, f->per_token_sq, f->intercept, f->per_segment};
    if (fit) *fit = *f;
    if (model) *model = src.model;
    source_free(&src);
}
