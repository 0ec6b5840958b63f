/* The one reader of results JSON (see results_read.h): validation field by field, in file order,
 * stopping at the first problem. */
#include "bench/results/results_read.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bench/results/results.h"
#include "bench/run/run.h"
#include "bench/input/sample.h"
#include "common/error.h"
#include "common/input_file.h"

/* Field access that records the first problem; once failed, every call returns a harmless value
 * at once and nothing more is read, converted or allocated. */
typedef struct {
    const char *file;
    char ctx[160];               /* "strategies[1] (sorted): " or "" */
    char *err;
    size_t errlen;
    int failed;
} Reader;

static void rd_fail(Reader *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rd_fail(Reader *rd, const char *fmt, ...)
{
    if (rd->failed) return;
    rd->failed = 1;
    int k = snprintf(rd->err, rd->errlen, "%s: %s", rd->file, rd->ctx);
    if (k < 0 || (size_t)k >= rd->errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rd->err + k, rd->errlen - (size_t)k, fmt, ap);
    va_end(ap);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* A value as a message quotes it: numbers as numbers, strings quoted and cut short. */
static const char *value_text(const json_t *v, char *buf, size_t n)
{
    char ex[EXCERPT_SIZE];
    if (json_is_integer(v))
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, n, "%.15g", json_real_value(v));
    else if (json_is_string(v))
        snprintf(buf, n, "\"%s\"", excerpt(json_string_value(v), ex));
    else
        snprintf(buf, n, "%s", type_name(v));
    return buf;
}

/* A whole number in [lo, hi]: a JSON integer, or a number with an integral value (another
 * writer's 3.0). Checked before any conversion. 0, or -1 (why: "not a whole number", ...). */
static int int_value(const json_t *v, int64_t lo, int64_t hi, int64_t *out, const char **why)
{
    int64_t x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        /* +-9.2e18 is inside int64 (2^63 = 9.22e18), so the conversion below is defined. */
        if (!(d >= -9.2e18 && d <= 9.2e18)) {
            *why = "out of range";
            return -1;
        }
        if (d != floor(d)) {
            *why = "not a whole number";
            return -1;
        }
        x = (int64_t)d;
    } else {
        *why = "not a number";
        return -1;
    }
    if (x < lo || x > hi) {
        *why = "out of range";
        return -1;
    }
    *out = x;
    return 0;
}

/* "PATH = VALUE is outside LO..HI (REASON)" and its siblings. */
static void fail_int(Reader *rd, const char *path, const json_t *v, int64_t lo, int64_t hi, const char *why,
                     const char *reason)
{
    char val[96];
    value_text(v, val, sizeof val);
    if (strcmp(why, "out of range") == 0)
        rd_fail(rd, "%s = %s is outside %lld..%lld%s%s%s", path, val, (long long)lo, (long long)hi,
                reason ? " (" : "", reason ? reason : "", reason ? ")" : "");
    else
        rd_fail(rd, "%s = %s is %s", path, val, why);
}

/* obj's value at a dotted path ("config.model.preset"); NULL (and a failure) when absent. */
static const json_t *rd_get(Reader *rd, const json_t *obj, const char *path)
{
    if (rd->failed) return NULL;
    const json_t *v = obj;
    const char *p = path;
    while (v) {
        const char *dot = strchr(p, '.');
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(dot ? dot - p : (long)strlen(p)), p);
        v = json_is_object(v) ? json_object_get(v, key) : NULL;
        if (!dot) break;
        p = dot + 1;
    }
    if (!v) rd_fail(rd, "%s is missing", path);
    return v;
}

static const json_t *rd_obj(Reader *rd, const json_t *obj, const char *path)
{
    const json_t *v = rd_get(rd, obj, path);
    if (v && !json_is_object(v)) {
        rd_fail(rd, "%s should be an object, not %s", path, type_name(v));
        return NULL;
    }
    return v;
}

static const char *rd_str(Reader *rd, const json_t *obj, const char *path, int nullable)
{
    const json_t *v = rd_get(rd, obj, path);
    if (!v) return "";
    if (json_is_string(v)) return json_string_value(v);
    if (nullable && json_is_null(v)) return NULL;
    rd_fail(rd, "%s should be a string, not %s", path, type_name(v));
    return "";
}

/* A measured number; JSON null (how a non-finite value is written) reads as NAN. */
static double rd_num(Reader *rd, const json_t *obj, const char *path)
{
    const json_t *v = rd_get(rd, obj, path);
    if (!v || json_is_null(v)) return NAN;
    if (!json_is_number(v)) {
        rd_fail(rd, "%s should be a number, not %s", path, type_name(v));
        return NAN;
    }
    return json_number_value(v);
}

static int64_t rd_int(Reader *rd, const json_t *obj, const char *path, int64_t lo, int64_t hi)
{
    const json_t *v = rd_get(rd, obj, path);
    if (!v) return lo;
    int64_t x;
    const char *why;
    if (int_value(v, lo, hi, &x, &why) != 0) {
        fail_int(rd, path, v, lo, hi, why, NULL);
        return lo;
    }
    return x;
}

/* An optional integer: dflt when absent or null, else checked like rd_int. */
static int64_t rd_opt_int(Reader *rd, const json_t *obj, const char *path, int64_t lo, int64_t hi, int64_t dflt)
{
    if (rd->failed) return dflt;
    const char *dot = strrchr(path, '.');
    const json_t *parent = obj;
    if (dot) {
        char head[128];
        snprintf(head, sizeof head, "%.*s", (int)(dot - path), path);
        parent = rd_get(rd, obj, head);
    }
    const json_t *v = json_object_get(parent, dot ? dot + 1 : path);
    if (!v || json_is_null(v)) return dflt;
    return rd_int(rd, obj, path, lo, hi);
}

static double opt_num(const json_t *obj, const char *key, double dflt)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* A JSON array of numbers (null entries read as NAN) into a malloc'ed array of *n. */
static double *rd_nums(Reader *rd, const json_t *obj, const char *path, int *n)
{
    *n = 0;
    const json_t *a = rd_get(rd, obj, path);
    if (!a) return NULL;
    if (!json_is_array(a)) {
        rd_fail(rd, "%s should be an array, not %s", path, type_name(a));
        return NULL;
    }
    size_t len = json_array_size(a);
    if (len > RUN_MAX_STEPS) {
        rd_fail(rd, "%s has %zu values, more than the %d steps a run may have", path, len, RUN_MAX_STEPS);
        return NULL;
    }
    double *x = calloc(len ? len : 1, sizeof *x);
    if (!x) {
        rd_fail(rd, "out of memory reading %s", path);
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        const json_t *v = json_array_get(a, i);
        if (json_is_null(v)) {
            x[i] = NAN;
        } else if (json_is_number(v)) {
            x[i] = json_number_value(v);
        } else {
            rd_fail(rd, "%s[%zu] should be a number, not %s", path, i, type_name(v));
            free(x);
            return NULL;
        }
    }
    *n = (int)len;
    return x;
}

/* ---- micro-batch rows ---- */

/* Which MB_COL_* bit each column sets; 0: the column is required. */
static const unsigned COL_BIT[MB_N_COLUMNS] = {
    [MB_ROWS] = MB_COL_ROWS, [MB_SEQUENCES] = MB_COL_SEQUENCES, [MB_SEGMENTS] = MB_COL_SEGMENTS,
    [MB_REAL_TOKENS] = MB_COL_REAL_TOKENS, [MB_COMPUTED_TOKENS] = MB_COL_COMPUTED_TOKENS,
    [MB_SUM_SEQ_LEN_SQ] = MB_COL_SUM_SEQ_LEN_SQ, [MB_LOSS] = MB_COL_LOSS};

/* One integer cell of row i, in [0, hi]. */
static int64_t cell_int(Reader *rd, const json_t *row, size_t i, const int *at, int c, int64_t hi, const char *reason)
{
    const json_t *v = json_array_get(row, (size_t)at[c]);
    int64_t x;
    const char *why;
    if (int_value(v, 0, hi, &x, &why) != 0) {
        char path[96];
        snprintf(path, sizeof path, "micro_batches_detail[%zu][%d] (%s)", i, at[c], MB_COLUMN_NAMES[c]);
        fail_int(rd, path, v, 0, hi, why, reason);
        return 0;
    }
    return x;
}

/* A real cell: a finite number >= 0 (nullable: or null, read as NAN). */
static double cell_real(Reader *rd, const json_t *row, size_t i, const int *at, int c, int nonneg, int nullable)
{
    const json_t *v = json_array_get(row, (size_t)at[c]);
    if (nullable && json_is_null(v)) return NAN;
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    if (!isfinite(x) || (nonneg && x < 0)) {
        char val[96];
        rd_fail(rd, "micro_batches_detail[%zu][%d] (%s) = %s is not a %snumber", i, at[c], MB_COLUMN_NAMES[c],
                value_text(v, val, sizeof val), nonneg ? "non-negative " : "");
        return NAN;
    }
    return x;
}

static void read_micro_batches(Reader *rd, const json_t *run, const PlanConfig *cfg, RepRun *r)
{
    const json_t *cols = rd_get(rd, run, "micro_batch_columns");
    const json_t *rows = rd_get(rd, run, "micro_batches_detail");
    if (rd->failed) return;
    if (!json_is_array(cols) || !json_is_array(rows)) {
        rd_fail(rd, "micro_batch_columns and micro_batches_detail should be arrays");
        return;
    }
    int at[MB_N_COLUMNS];
    for (int c = 0; c < MB_N_COLUMNS; c++) {
        at[c] = -1;
        for (size_t i = 0; i < json_array_size(cols) && at[c] < 0; i++) {
            const char *name = json_string_value(json_array_get(cols, i));
            if (name && strcmp(name, MB_COLUMN_NAMES[c]) == 0) at[c] = (int)i;
        }
        if (at[c] < 0 && COL_BIT[c] == 0) {
            rd_fail(rd, "micro_batch_columns has no \"%s\" column", MB_COLUMN_NAMES[c]);
            return;
        }
        if (at[c] >= 0) r->columns |= COL_BIT[c];
    }
    /* One row per (step, micro-step, rank) of the steps run: W x A <= INT32_MAX (the planner's
     * check) and steps <= RUN_MAX_STEPS, so the product fits int64. */
    const int W = cfg->world_size, A = cfg->grad_accum;
    const int64_t want = (int64_t)r->steps * A * W;
    const size_t n = json_array_size(rows), ncol = json_array_size(cols);
    if ((int64_t)n != want) {
        rd_fail(rd,
                "micro_batches_detail has %zu rows; run.steps x plan_config.grad_accum x plan_config.world_size = "
                "%d x %d x %d = %lld (one row per step, micro-step and rank)",
                n, r->steps, A, W, (long long)want);
        return;
    }
    r->mbs = calloc(n ? n : 1, sizeof *r->mbs);
    unsigned char *seen = calloc(n ? n : 1, 1);
    if (!r->mbs || !seen) {
        free(seen);
        rd_fail(rd, "out of memory reading micro_batches_detail (%zu rows)", n);
        return;
    }
    char why_step[64], why_micro[64], why_rank[64];
    snprintf(why_step, sizeof why_step, "run.steps %d", r->steps);
    snprintf(why_micro, sizeof why_micro, "plan_config.grad_accum %d", A);
    snprintf(why_rank, sizeof why_rank, "plan_config.world_size %d", W);
    for (size_t i = 0; i < n && !rd->failed; i++) {
        const json_t *row = json_array_get(rows, i);
        if (!json_is_array(row) || json_array_size(row) != ncol) {
            rd_fail(rd, "micro_batches_detail[%zu] should be an array of %zu values (one per column)", i, ncol);
            break;
        }
        int64_t step = cell_int(rd, row, i, at, MB_STEP, r->steps - 1, why_step);
        int64_t micro = cell_int(rd, row, i, at, MB_MICRO, A - 1, why_micro);
        int64_t rank = cell_int(rd, row, i, at, MB_RANK, W - 1, why_rank);
        if (rd->failed) break;
        size_t k = (size_t)((step * A + micro) * W + rank);
        if (seen[k]) {
            rd_fail(rd, "micro_batches_detail[%zu]: step %lld, micro %lld, rank %lld appears twice", i,
                    (long long)step, (long long)micro, (long long)rank);
            break;
        }
        seen[k] = 1;
        MbRow *m = &r->mbs[k];
        m->step = (int)step;
        m->micro = (int)micro;
        m->rank = (int)rank;
        m->seconds = cell_real(rd, row, i, at, MB_SECONDS, 1, 1);
        m->rows = at[MB_ROWS] >= 0 ? (int)cell_int(rd, row, i, at, MB_ROWS, INT32_MAX, NULL) : 1;
        if (at[MB_SEQUENCES] >= 0) m->sequences = (int)cell_int(rd, row, i, at, MB_SEQUENCES, INT32_MAX, NULL);
        if (at[MB_SEGMENTS] >= 0) m->segments = (int)cell_int(rd, row, i, at, MB_SEGMENTS, INT32_MAX, NULL);
        if (at[MB_REAL_TOKENS] >= 0) m->real_tokens = cell_int(rd, row, i, at, MB_REAL_TOKENS, INT32_MAX, NULL);
        if (at[MB_COMPUTED_TOKENS] >= 0) m->computed_tokens = cell_int(rd, row, i, at, MB_COMPUTED_TOKENS, INT32_MAX, NULL);
        if (at[MB_SUM_SEQ_LEN_SQ] >= 0) m->sum_seq_len_sq = cell_real(rd, row, i, at, MB_SUM_SEQ_LEN_SQ, 1, 0);
        m->loss = at[MB_LOSS] >= 0 ? cell_real(rd, row, i, at, MB_LOSS, 0, 1) : NAN;
    }
    free(seen);
    if (!rd->failed) r->n_mbs = (int64_t)n;
}

/* ---- one strategy ---- */

/* The fields; the caller checks them together as the planner does (plan_config_check). */
static void read_plan_config(Reader *rd, const json_t *pc, PlanConfig *c)
{
    memset(c, 0, sizeof *c);
    c->world_size = (int)rd_int(rd, pc, "world_size", 1, PLAN_MAX_WORLD_SIZE);
    c->micro_batch = (int)rd_int(rd, pc, "micro_batch", 1, PLAN_MAX_MICRO_BATCH);
    c->grad_accum = (int)rd_int(rd, pc, "grad_accum", 1, PLAN_MAX_GRAD_ACCUM);
    c->max_tokens = (int)rd_int(rd, pc, "max_tokens", 1, PLAN_MAX_TOKENS);
    c->epochs = (int)rd_int(rd, pc, "epochs", 1, PLAN_MAX_EPOCHS);
    /* Seeds are uint64; the writer stores them as JSON's int64 (seeds >= 2^63 read negative). */
    c->seed = (uint64_t)rd_int(rd, pc, "seed", INT64_MIN, INT64_MAX);
    char ex[EXCERPT_SIZE];
    const char *sync = rd_str(rd, pc, "sync", 0);
    if (!rd->failed && strcmp(sync, "micro") != 0 && strcmp(sync, "step") != 0)
        rd_fail(rd, "sync is \"%s\", not \"micro\" or \"step\"", excerpt(sync, ex));
    c->sync = strcmp(sync, "step") == 0 ? SYNC_STEP : SYNC_MICRO;
    /* The cost model is optional (older files): LongAlign's default of per-token cost alone. */
    c->cost = (CostModel){1.0, 0.0, 0.0, 0.0};
    const json_t *cm = json_object_get(pc, "cost_model");
    if (cm && !rd->failed) {
        c->cost.per_token = rd_num(rd, pc, "cost_model.per_token");
        c->cost.per_token_sq = rd_num(rd, pc, "cost_model.per_token_sq");
        c->cost.per_row = rd_num(rd, pc, "cost_model.per_row");
        const json_t *seg = json_object_get(cm, "per_segment");   /* written for fitted models only */
        if (seg) c->cost.per_segment = rd_num(rd, pc, "cost_model.per_segment");
    }
}

static void read_plan(Reader *rd, const json_t *plan, PlanMetrics *m)
{
    m->optimizer_steps = rd_int(rd, plan, "optimizer_steps", 0, INT64_MAX);
    m->micro_batches = rd_int(rd, plan, "micro_batches", 0, INT64_MAX);
    m->rows = rd_int(rd, plan, "rows", 0, INT64_MAX);
    m->sequences = rd_int(rd, plan, "sequences", 0, INT64_MAX);
    m->truncated = rd_int(rd, plan, "truncated", 0, INT64_MAX);
    m->real_tokens = rd_int(rd, plan, "real_tokens", 0, INT64_MAX);
    m->computed_tokens = rd_int(rd, plan, "computed_tokens", 0, INT64_MAX);
    m->target_tokens = rd_int(rd, plan, "target_tokens", 0, INT64_MAX);
    m->padding_ratio = rd_num(rd, plan, "padding_ratio");
    m->packing_efficiency = rd_num(rd, plan, "packing_efficiency");
    m->token_imbalance = rd_num(rd, plan, "token_imbalance");
    m->predicted_bubble = rd_num(rd, plan, "predicted_bubble");
    m->predicted_wall = rd_num(rd, plan, "predicted_wall_cost");
    m->weight_min = rd_num(rd, plan, "weight_min");
    m->weight_max = rd_num(rd, plan, "weight_max");
    m->weight_share_longest10 = rd_num(rd, plan, "weight_share_longest10");
    m->weight_share_longest10_ideal = rd_num(rd, plan, "weight_share_longest10_ideal");
    m->plan_seconds = rd_num(rd, plan, "plan_seconds");
    /* Newer fields (the epoch view of the weights): NAN in files written before them. */
    m->weight_share_longest10_uniform = opt_num(plan, "weight_share_longest10_uniform", NAN);
    m->step_seqs_min = opt_num(plan, "step_sequences_min", NAN);
    m->step_seqs_max = opt_num(plan, "step_sequences_max", NAN);
    m->step_seqs_mean = opt_num(plan, "step_sequences_mean", NAN);
    m->step_seqs_cv = opt_num(plan, "step_sequences_cv", NAN);
    m->weight_epoch_p1 = opt_num(plan, "weight_epoch_p1", NAN);
    m->weight_epoch_p99 = opt_num(plan, "weight_epoch_p99", NAN);
    m->weight_epoch_spread = opt_num(plan, "weight_epoch_spread", NAN);
    m->rank_utilisation = opt_num(plan, "rank_utilisation", NAN);
}

static const char *opt_str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* run.dp_real, read leniently: the report shows "n/a" for what it lacks. NULL when absent. */
static RepDpReal *read_dp_real(Reader *rd, const json_t *run)
{
    const json_t *d = json_object_get(run, "dp_real");
    if (!json_is_object(d)) return NULL;
    RepDpReal *x = calloc(1, sizeof *x);
    if (!x) {
        rd_fail(rd, "out of memory");
        return NULL;
    }
    static const char *const key[DPR_N] = {"dp_bubble_fraction", "comm_seconds", "effective_tokens_per_s"};
    x->ranks = json_integer_value(json_object_get(d, "ranks"));
    x->pattern = opt_str(d, "pattern");
    x->transport = opt_str(d, "transport");
    x->weights_identical = json_is_true(json_object_get(d, "weights_identical"));
    for (int k = 0; k < DPR_N; k++) {
        x->simulated[k] = opt_num(json_object_get(d, "simulated"), key[k], NAN);
        x->measured[k] = opt_num(json_object_get(d, "measured"), key[k], NAN);
        x->difference_percent[k] = opt_num(json_object_get(d, "difference_percent"), key[k], NAN);
    }
    return x;
}

static void read_blas(const json_t *b, RepBlas *x)
{
    x->library = opt_str(b, "library");
    x->version = opt_str(b, "version");
    x->core = opt_str(b, "core");
    x->core_isa = opt_str(b, "core_isa");
    x->threading = opt_str(b, "threading");
    x->coretype_env = opt_str(b, "coretype_env");
    x->suggested_coretype = opt_str(b, "suggested_coretype");
    const json_t *n = json_object_get(b, "threads");
    x->threads = json_is_integer(n) ? (long long)json_integer_value(n) : -1;
    x->fallback = json_is_true(json_object_get(b, "fallback"));
}

static RepRun *read_run(Reader *rd, const json_t *run, const RepStrategy *s)
{
    RepRun *r = calloc(1, sizeof *r);
    if (!r) {
        rd_fail(rd, "out of memory");
        return NULL;
    }
    r->steps = (int)rd_int(rd, run, "steps", 0, RUN_MAX_STEPS);
    if (!rd->failed && r->steps > s->plan.optimizer_steps)
        rd_fail(rd, "steps = %d is more than plan.optimizer_steps %lld", r->steps, (long long)s->plan.optimizer_steps);
    r->effective_tps = rd_num(rd, run, "effective_tokens_per_s");
    r->dp_bubble = rd_num(rd, run, "dp_bubble_fraction");
    r->padding = rd_num(rd, run, "padding_ratio");
    r->mfu = rd_num(rd, run, "mfu");
    r->dp_wall_s = rd_num(rd, run, "dp_wall_seconds");
    r->final_loss = rd_num(rd, run, "final_loss");
    r->peak_mib = (double)rd_int(rd, run, "peak_memory_bytes", 0, INT64_MAX) / (1024.0 * 1024.0);
    r->gpu_idle = opt_num(run, "gpu_idle_fraction", NAN);
    r->loss_curve = rd_nums(rd, run, "loss_curve", &r->n_loss);
    r->step_wall_s = rd_nums(rd, run, "step_wall_seconds", &r->n_steps);
    if (!rd->failed && r->n_steps != r->steps)
        rd_fail(rd, "step_wall_seconds has %d values; run.steps is %d", r->n_steps, r->steps);
    if (json_object_get(run, "optimizer_step_seconds")) {
        int n_opt;
        r->optimizer_step_s = rd_nums(rd, run, "optimizer_step_seconds", &n_opt);
        if (!rd->failed && n_opt != r->n_steps)
            rd_fail(rd, "optimizer_step_seconds has %d values, step_wall_seconds %d", n_opt, r->n_steps);
    } else if (!rd->failed) {
        r->optimizer_step_s = calloc(r->n_steps > 0 ? (size_t)r->n_steps : 1, sizeof *r->optimizer_step_s);
        if (!r->optimizer_step_s) rd_fail(rd, "out of memory");
    }
    read_micro_batches(rd, run, &s->cfg, r);
    if (!rd->failed) r->dp_real = read_dp_real(rd, run);
    return r;
}

static void run_free(RepRun *r)
{
    if (!r) return;
    free(r->loss_curve);
    free(r->step_wall_s);
    free(r->optimizer_step_s);
    free(r->mbs);
    free(r->dp_real);
    free(r);
}

void results_file_free(ResultsFile *rf)
{
    for (int i = 0; i < rf->n_strategies; i++) run_free(rf->strategies[i].run);
    free(rf->strategies);
    if (rf->root) json_decref(rf->root);
    memset(rf, 0, sizeof *rf);
}

static void read_strategies(Reader *rd, const json_t *arr, ResultsFile *rf)
{
    int train = strcmp(rf->kind, "train") == 0;
    size_t n = json_array_size(arr);
    if (n == 0) {
        rd_fail(rd, "strategies is empty");
        return;
    }
    if (n > 1000) {
        rd_fail(rd, "strategies has %zu entries; a results file holds at most 1000", n);
        return;
    }
    rf->strategies = calloc(n, sizeof *rf->strategies);
    if (!rf->strategies) {
        rd_fail(rd, "out of memory");
        return;
    }
    for (size_t i = 0; i < n && !rd->failed; i++) {
        const json_t *o = json_array_get(arr, i);
        RepStrategy *s = &rf->strategies[i];
        rf->n_strategies = (int)i + 1;   /* so that results_file_free sees what was allocated */
        snprintf(rd->ctx, sizeof rd->ctx, "strategies[%zu]: ", i);
        if (!json_is_object(o)) {
            rd_fail(rd, "should be an object, not %s", type_name(o));
            break;
        }
        s->name = rd_str(rd, o, "name", 0);
        /* Field names in messages read as paths: "strategies[1] (sorted): run.final_loss". */
        char base[128], ex[EXCERPT_SIZE];
        snprintf(base, sizeof base, "strategies[%zu] (%s): ", i, excerpt(s->name, ex));
        snprintf(rd->ctx, sizeof rd->ctx, "%s", base);
        s->plan_config = rd_obj(rd, o, "plan_config");
        if (s->plan_config) {
            snprintf(rd->ctx, sizeof rd->ctx, "%splan_config.", base);
            read_plan_config(rd, s->plan_config, &s->cfg);
            s->world_size = s->cfg.world_size;
            s->sync = s->cfg.sync == SYNC_STEP ? "step" : "micro";
            snprintf(rd->ctx, sizeof rd->ctx, "%s", base);
            char why[256];
            if (!rd->failed && plan_config_check(&s->cfg, why, sizeof why) != 0) rd_fail(rd, "plan_config: %s", why);
        }
        const json_t *plan = rd_obj(rd, o, "plan");
        if (plan) {
            snprintf(rd->ctx, sizeof rd->ctx, "%splan.", base);
            read_plan(rd, plan, &s->plan);
            s->weights = json_object_get(plan, "weights");
            if (s->weights && !json_is_array(s->weights)) rd_fail(rd, "weights should be an array");
            s->weights_epoch = json_object_get(plan, "weights_epoch");
            if (s->weights_epoch && !json_is_array(s->weights_epoch)) rd_fail(rd, "weights_epoch should be an array");
            s->step_seqs = json_object_get(plan, "step_sequences");
            if (s->step_seqs && !json_is_array(s->step_seqs)) rd_fail(rd, "step_sequences should be an array");
            double stride = opt_num(plan, "step_sequences_stride", 1);
            s->step_seqs_stride = stride >= 1 && stride <= 1e9 ? (int)stride : 1;
            /* the device model's prediction, in files of `plan --device` only */
            const json_t *dev = json_object_get(plan, "device_prediction");
            if (dev) {
                snprintf(rd->ctx, sizeof rd->ctx, "%splan.device_prediction.", base);
                s->dev.device = rd_str(rd, dev, "device", 0);
                s->dev.model = rd_str(rd, dev, "model", 0);
                s->dev.wall_seconds = rd_num(rd, dev, "wall_seconds");
                s->dev.tokens_per_s = rd_num(rd, dev, "tokens_per_s");
                s->dev.mfu = rd_num(rd, dev, "mfu");
                s->dev.bubble_fraction = rd_num(rd, dev, "bubble_fraction");
                s->dev.comm_seconds = rd_num(rd, dev, "comm_seconds");
            }
            snprintf(rd->ctx, sizeof rd->ctx, "%s", base);
        }
        const json_t *run = rd_get(rd, o, "run");
        if (rd->failed) break;
        if (json_is_object(run)) {
            snprintf(rd->ctx, sizeof rd->ctx, "%srun.", base);
            s->run = read_run(rd, run, s);
            snprintf(rd->ctx, sizeof rd->ctx, "%s", base);
        } else if (!json_is_null(run)) {
            rd_fail(rd, "run should be an object or null, not %s", type_name(run));
        } else if (train) {
            rd_fail(rd, "run is null in a train results file");
        }
    }
    rd->ctx[0] = 0;
}

/* config.model of a train file: the shape, checked as a model config is. */
static void read_model(Reader *rd, const json_t *root, ResultsFile *rf)
{
    rf->has_model = 1;
    rf->model_preset = rd_str(rd, root, "config.model.preset", 0);
    rf->vocab = (int)rd_int(rd, root, "config.model.vocab_size", 1, 1 << 30);
    rf->hidden = (int)rd_int(rd, root, "config.model.hidden_size", 1, 1 << 30);
    rf->intermediate = (int)rd_int(rd, root, "config.model.intermediate_size", 1, 1 << 30);
    rf->layers = (int)rd_int(rd, root, "config.model.num_hidden_layers", 1, 1 << 20);
    rf->heads = (int)rd_int(rd, root, "config.model.num_attention_heads", 1, 1 << 20);
    rf->kv_heads = (int)rd_int(rd, root, "config.model.num_key_value_heads", 1, 1 << 20);
    rf->head_dim = (int)rd_int(rd, root, "config.model.head_dim", 1, 1 << 20);
    rf->params = rd_opt_int(rd, root, "config.model.params", 0, INT64_MAX, 0);
    if (rd->failed) return;
    ModelConfig c = {.vocab = rf->vocab, .hidden = rf->hidden, .intermediate = rf->intermediate,
                     .layers = rf->layers, .heads = rf->heads, .kv_heads = rf->kv_heads, .head_dim = rf->head_dim};
    char why[256];
    if (model_config_check(&c, why, sizeof why) != 0) rd_fail(rd, "config.model: %s", why);
}

int results_read(const char *path, ResultsFile *rf, char *err, size_t errlen)
{
    memset(rf, 0, sizeof *rf);
    const char *name = input_name(path);
    snprintf(rf->path, sizeof rf->path, "%s", name);
    rf->root = read_json_file(path, RESULTS_MAX_BYTES, err, errlen);
    if (!rf->root) return -1;
    Reader rd = {.file = name, .err = err, .errlen = errlen};
    const json_t *root = rf->root;
    char ex[EXCERPT_SIZE];
    if (!json_is_object(root)) {
        rd_fail(&rd, "not a labench results file (the top level is %s, not an object)", type_name(root));
        goto fail;
    }
    const char *schema = rd_str(&rd, root, "schema", 0);
    if (!rd.failed && strcmp(schema, RESULTS_SCHEMA) != 0)
        rd_fail(&rd, "schema is \"%s\", not \"%s\": not a labench results file", excerpt(schema, ex), RESULTS_SCHEMA);
    int64_t version = rd_int(&rd, root, "schema_version", INT64_MIN, INT64_MAX);
    if (!rd.failed && version != RESULTS_SCHEMA_VERSION)
        rd_fail(&rd, "schema_version is %lld; this labench reads version %d", (long long)version,
                RESULTS_SCHEMA_VERSION);
    rf->kind = rd_str(&rd, root, "kind", 0);
    if (!rd.failed && strcmp(rf->kind, "plan") != 0 && strcmp(rf->kind, "train") != 0)
        rd_fail(&rd, "kind is \"%s\", not \"plan\" or \"train\"", excerpt(rf->kind, ex));
    rf->created = rd_str(&rd, root, "created", 0);
    rf->commit = rd_str(&rd, root, "commit", 0);
    rf->command = rd_str(&rd, root, "command", 0);
    if (rd.failed) goto fail;
    int train = strcmp(rf->kind, "train") == 0;

    const json_t *m = rd_obj(&rd, root, "machine");
    if (m) {
        rf->hostname = rd_str(&rd, root, "machine.hostname", 1);
        rf->cpu = rd_str(&rd, root, "machine.cpu", 1);
        rf->cores = rd_opt_int(&rd, root, "machine.cores", 0, INT32_MAX, 0);
        rf->backend = rd_str(&rd, root, "machine.backend", !train);
        rf->device = rd_str(&rd, root, "machine.device", !train);
        rf->gpu = json_is_string(json_object_get(m, "gpu")) ? json_string_value(json_object_get(m, "gpu")) : NULL;
        rf->peak_flops = opt_num(m, "peak_flops", NAN);
        const json_t *src = json_object_get(m, "peak_flops_source");
        rf->peak_flops_source = json_is_string(src) ? json_string_value(src) : NULL;
        const json_t *blas = json_object_get(m, "blas");
        if (json_is_object(blas)) {
            read_blas(blas, &rf->blas);
            rf->has_blas = 1;
        }
    }
    const json_t *c = rd_obj(&rd, root, "config");
    if (c) {
        const json_t *dp = json_object_get(c, "dp");
        rf->dp_real = json_is_string(dp) && strcmp(json_string_value(dp), "real") == 0;
        rf->len_dist = rd_str(&rd, root, "config.len_dist", 0);
        rf->samples = rd_int(&rd, root, "config.samples", 0, SAMPLE_MAX_COUNT);
        rf->len_scale = rd_num(&rd, root, "config.len_scale");
        if (!rd.failed && !(rf->len_scale > 0 && isfinite(rf->len_scale)))
            rd_fail(&rd, "config.len_scale should be a positive number");
        rf->seed = rd_int(&rd, root, "config.seed", INT64_MIN, INT64_MAX);
        if (train) {
            read_model(&rd, root, rf);
            rf->dtype = rd_str(&rd, root, "config.dtype", 0);
            rf->steps = (int)rd_int(&rd, root, "config.steps", 0, RUN_MAX_STEPS);
            rf->recompute = json_is_true(json_object_get(c, "recompute"));
            const json_t *comm = json_object_get(c, "comm");
            rf->comm = json_is_string(comm) ? json_string_value(comm) : "none";
            /* the timeline draws communication at each micro-step's sync point */
            rf->comm_per_sync_s = opt_num(c, "comm_per_micro_step_seconds", opt_num(c, "comm_per_sync_seconds", 0.0));
            if (!(rf->comm_per_sync_s >= 0) || !isfinite(rf->comm_per_sync_s)) rf->comm_per_sync_s = 0;
        }
    }
    const json_t *arr = rd_get(&rd, root, "strategies");
    if (arr && !json_is_array(arr)) rd_fail(&rd, "strategies should be an array, not %s", type_name(arr));
    if (rd.failed) goto fail;
    read_strategies(&rd, arr, rf);
    if (rd.failed) goto fail;
    return 0;
fail:
    results_file_free(rf);
    return -1;
}

int results_is_cpu(const ResultsFile *rf) { return rf->backend && strcmp(rf->backend, "cpu") == 0; }

const RepStrategy *results_find(const ResultsFile *rf, const char *name)
{
    for (int i = 0; i < rf->n_strategies; i++)
        if (strcmp(rf->strategies[i].name, name) == 0) return &rf->strategies[i];
    return NULL;
}

void device_slug(const char *device, char *out, size_t n)
{
    size_t k = 0;
    int dash = 0;
    for (const char *p = device ? device : ""; *p && k + 1 < n; p++) {
        unsigned char ch = (unsigned char)*p;
        if (isalnum(ch)) {
            if (dash && k > 0 && k + 2 < n) out[k++] = '-';
            out[k++] = (char)tolower(ch);
            dash = 0;
        } else {
            dash = 1;
        }
    }
    out[k] = 0;
    if (k == 0) snprintf(out, n, "unknown-device");
}
