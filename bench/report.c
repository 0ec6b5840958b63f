/* Reading results JSON back for `labench report` and `labench compare`, and the DP timeline of
 * one optimizer step. The schema is the one bench/results.c writes (schema_version 1). */
#include "bench/report.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bench/results.h"

/* Field access that records the first problem and keeps going with a harmless value, so the
 * validation below reads as a list of fields instead of a ladder of ifs. */
typedef struct {
    const char *file;
    char ctx[192];               /* "strategies[1] (sorted): " or "" */
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

/* obj's value at a dotted path ("config.model.preset"); NULL (and a failure) when absent. */
static const json_t *rd_get(Reader *rd, const json_t *obj, const char *path)
{
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

/* A measured number; JSON null (how a non-finite value should be written) reads as NAN. */
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

static long long rd_int(Reader *rd, const json_t *obj, const char *path)
{
    const json_t *v = rd_get(rd, obj, path);
    if (!v) return 0;
    if (!json_is_integer(v)) {
        rd_fail(rd, "%s should be an integer, not %s", path, type_name(v));
        return 0;
    }
    return json_integer_value(v);
}

static double opt_num(const json_t *obj, const char *key, double dflt)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* A JSON array of numbers (null entries read as NAN) into a malloc'ed array. */
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
            x[i] = NAN;
        }
    }
    *n = (int)len;
    return x;
}

static int column_index(const json_t *cols, const char *name)
{
    for (size_t i = 0; i < json_array_size(cols); i++)
        if (json_is_string(json_array_get(cols, i)) && strcmp(json_string_value(json_array_get(cols, i)), name) == 0)
            return (int)i;
    return -1;
}

static void read_micro_batches(Reader *rd, const json_t *run, RepRun *r)
{
    const json_t *cols = rd_get(rd, run, "micro_batch_columns");
    const json_t *rows = rd_get(rd, run, "micro_batches_detail");
    if (!cols || !rows) return;
    if (!json_is_array(cols) || !json_is_array(rows)) {
        rd_fail(rd, "micro_batch_columns and micro_batches_detail should be arrays");
        return;
    }
    const char *needed[] = {"step", "micro", "rank", "seconds"};
    int idx[4];
    for (int k = 0; k < 4; k++) {
        idx[k] = column_index(cols, needed[k]);
        if (idx[k] < 0) {
            rd_fail(rd, "micro_batch_columns has no \"%s\" column", needed[k]);
            return;
        }
    }
    int i_rows = column_index(cols, "rows"), i_real = column_index(cols, "real_tokens"),
        i_comp = column_index(cols, "computed_tokens");
    size_t n = json_array_size(rows), ncol = json_array_size(cols);
    r->mbs = calloc(n ? n : 1, sizeof *r->mbs);
    if (!r->mbs) {
        rd_fail(rd, "out of memory reading micro_batches_detail");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *row = json_array_get(rows, i);
        if (!json_is_array(row) || json_array_size(row) < ncol) {
            rd_fail(rd, "micro_batches_detail[%zu] should be an array of %zu values", i, ncol);
            return;
        }
        for (size_t c = 0; c < ncol; c++)
            if (!json_is_number(json_array_get(row, c)) && !json_is_null(json_array_get(row, c))) {
                rd_fail(rd, "micro_batches_detail[%zu][%zu] should be a number", i, c);
                return;
            }
#define COL(k) json_number_value(json_array_get(row, (size_t)(k)))
        RepMicroBatch *m = &r->mbs[i];
        m->step = (int)COL(idx[0]);
        m->micro = (int)COL(idx[1]);
        m->rank = (int)COL(idx[2]);
        m->seconds = COL(idx[3]);
        m->rows = i_rows >= 0 ? (int)COL(i_rows) : 1;
        m->real_tokens = i_real >= 0 ? (long long)COL(i_real) : 0;
        m->computed_tokens = i_comp >= 0 ? (long long)COL(i_comp) : 0;
#undef COL
    }
    r->n_mbs = (int)n;
}

static void read_plan(Reader *rd, const json_t *plan, PlanMetrics *m)
{
    m->optimizer_steps = rd_int(rd, plan, "optimizer_steps");
    m->micro_batches = rd_int(rd, plan, "micro_batches");
    m->rows = rd_int(rd, plan, "rows");
    m->sequences = rd_int(rd, plan, "sequences");
    m->truncated = rd_int(rd, plan, "truncated");
    m->real_tokens = rd_int(rd, plan, "real_tokens");
    m->computed_tokens = rd_int(rd, plan, "computed_tokens");
    m->target_tokens = rd_int(rd, plan, "target_tokens");
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

static RepRun *read_run(Reader *rd, const json_t *run)
{
    RepRun *r = calloc(1, sizeof *r);
    if (!r) {
        rd_fail(rd, "out of memory");
        return NULL;
    }
    r->steps = (int)rd_int(rd, run, "steps");
    r->effective_tps = rd_num(rd, run, "effective_tokens_per_s");
    r->dp_bubble = rd_num(rd, run, "dp_bubble_fraction");
    r->padding = rd_num(rd, run, "padding_ratio");
    r->mfu = rd_num(rd, run, "mfu");
    r->dp_wall_s = rd_num(rd, run, "dp_wall_seconds");
    r->final_loss = rd_num(rd, run, "final_loss");
    r->peak_mib = (double)rd_int(rd, run, "peak_memory_bytes") / (1024.0 * 1024.0);
    r->gpu_idle = opt_num(run, "gpu_idle_fraction", NAN);
    r->loss_curve = rd_nums(rd, run, "loss_curve", &r->n_loss);
    r->step_wall_s = rd_nums(rd, run, "step_wall_seconds", &r->n_steps);
    if (json_object_get(run, "optimizer_step_seconds")) {
        int n_opt;
        r->optimizer_step_s = rd_nums(rd, run, "optimizer_step_seconds", &n_opt);
        if (!rd->failed && n_opt != r->n_steps)
            rd_fail(rd, "optimizer_step_seconds has %d values, step_wall_seconds %d", n_opt, r->n_steps);
    } else {
        r->optimizer_step_s = calloc(r->n_steps > 0 ? (size_t)r->n_steps : 1, sizeof *r->optimizer_step_s);
    }
    read_micro_batches(rd, run, r);
    return r;
}

static void run_free(RepRun *r)
{
    if (!r) return;
    free(r->loss_curve);
    free(r->step_wall_s);
    free(r->optimizer_step_s);
    free(r->mbs);
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
            return;
        }
        s->name = rd_str(rd, o, "name", 0);
        /* Field names in messages read as paths: "strategies[1] (sorted): run.final_loss". */
        char base[160];
        snprintf(base, sizeof base, "strategies[%zu] (%.100s): ", i, s->name);
        snprintf(rd->ctx, sizeof rd->ctx, "%s", base);
        s->plan_config = rd_obj(rd, o, "plan_config");
        if (s->plan_config) {
            snprintf(rd->ctx, sizeof rd->ctx, "%splan_config.", base);
            s->world_size = (int)rd_int(rd, s->plan_config, "world_size");
            s->sync = rd_str(rd, s->plan_config, "sync", 0);
            if (!rd->failed && s->world_size < 1) rd_fail(rd, "world_size %d is not positive", s->world_size);
            if (!rd->failed && strcmp(s->sync, "micro") != 0 && strcmp(s->sync, "step") != 0)
                rd_fail(rd, "sync is \"%s\", not \"micro\" or \"step\"", s->sync);
            snprintf(rd->ctx, sizeof rd->ctx, "%s", base);
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
            snprintf(rd->ctx, sizeof rd->ctx, "%s", base);
        }
        const json_t *run = rd_get(rd, o, "run");
        if (run && json_is_object(run)) {
            snprintf(rd->ctx, sizeof rd->ctx, "%srun.", base);
            s->run = read_run(rd, run);
        } else if (run && !json_is_null(run)) {
            rd_fail(rd, "run should be an object or null, not %s", type_name(run));
        } else if (run && train) {
            rd_fail(rd, "run is null in a train results file");
        }
    }
    rd->ctx[0] = 0;
}

int results_read(const char *path, ResultsFile *rf, char *err, size_t errlen)
{
    memset(rf, 0, sizeof *rf);
    snprintf(rf->path, sizeof rf->path, "%s", path);
    json_error_t jerr;
    rf->root = json_load_file(path, 0, &jerr);
    if (!rf->root) {
        if (jerr.line > 0)
            snprintf(err, errlen, "%s:%d: not valid JSON: %s", path, jerr.line, jerr.text);
        else
            snprintf(err, errlen, "%s: %s", path, jerr.text);
        return -1;
    }
    Reader rd = {.file = path, .err = err, .errlen = errlen};
    const json_t *root = rf->root;
    if (!json_is_object(root)) {
        rd_fail(&rd, "not a labench results file (the top level is %s, not an object)", type_name(root));
        goto fail;
    }
    const char *schema = rd_str(&rd, root, "schema", 0);
    if (rd.failed) goto fail;
    if (strcmp(schema, RESULTS_SCHEMA) != 0) {
        rd_fail(&rd, "schema is \"%s\", not \"%s\": not a labench results file", schema, RESULTS_SCHEMA);
        goto fail;
    }
    long long version = rd_int(&rd, root, "schema_version");
    if (!rd.failed && version != RESULTS_SCHEMA_VERSION)
        rd_fail(&rd, "schema_version is %lld; this labench reads version %d", version, RESULTS_SCHEMA_VERSION);
    rf->kind = rd_str(&rd, root, "kind", 0);
    if (!rd.failed && strcmp(rf->kind, "plan") != 0 && strcmp(rf->kind, "train") != 0)
        rd_fail(&rd, "kind is \"%s\", not \"plan\" or \"train\"", rf->kind);
    rf->created = rd_str(&rd, root, "created", 0);
    rf->commit = rd_str(&rd, root, "commit", 0);
    rf->command = rd_str(&rd, root, "command", 0);
    if (rd.failed) goto fail;
    int train = strcmp(rf->kind, "train") == 0;

    const json_t *m = rd_obj(&rd, root, "machine");
    if (m) {
        rf->hostname = rd_str(&rd, root, "machine.hostname", 1);
        rf->cpu = rd_str(&rd, root, "machine.cpu", 1);
        rf->cores = json_is_integer(json_object_get(m, "cores")) ? json_integer_value(json_object_get(m, "cores")) : 0;
        rf->backend = rd_str(&rd, root, "machine.backend", !train);
        rf->device = rd_str(&rd, root, "machine.device", !train);
        rf->gpu = json_is_string(json_object_get(m, "gpu")) ? json_string_value(json_object_get(m, "gpu")) : NULL;
        rf->peak_flops = opt_num(m, "peak_flops", NAN);
        const json_t *src = json_object_get(m, "peak_flops_source");
        rf->peak_flops_source = json_is_string(src) ? json_string_value(src) : NULL;
    }
    const json_t *c = rd_obj(&rd, root, "config");
    if (c) {
        rf->len_dist = rd_str(&rd, root, "config.len_dist", 0);
        rf->samples = rd_int(&rd, root, "config.samples");
        rf->len_scale = rd_num(&rd, root, "config.len_scale");
        rf->seed = rd_int(&rd, root, "config.seed");
        if (train) {
            rf->has_model = 1;
            rf->model_preset = rd_str(&rd, root, "config.model.preset", 0);
            rf->layers = (int)rd_int(&rd, root, "config.model.num_hidden_layers");
            rf->hidden = (int)rd_int(&rd, root, "config.model.hidden_size");
            rf->heads = (int)rd_int(&rd, root, "config.model.num_attention_heads");
            rf->kv_heads = (int)rd_int(&rd, root, "config.model.num_key_value_heads");
            rf->params = rd_int(&rd, root, "config.model.params");
            rf->dtype = rd_str(&rd, root, "config.dtype", 0);
            rf->steps = (int)rd_int(&rd, root, "config.steps");
            const json_t *rc = json_object_get(c, "recompute");
            rf->recompute = json_is_true(rc);
            const json_t *comm = json_object_get(c, "comm");
            rf->comm = json_is_string(comm) ? json_string_value(comm) : "none";
            /* the timeline draws communication at each micro-step's sync point */
            rf->comm_per_sync_s = opt_num(c, "comm_per_micro_step_seconds", opt_num(c, "comm_per_sync_seconds", 0.0));
            if (!(rf->comm_per_sync_s >= 0)) rf->comm_per_sync_s = 0;
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

int timeline_pick_step(const RepRun *run)
{
    if (!run || run->n_steps <= 0) return -1;
    /* The lower median: count the steps strictly faster (or equal and earlier). */
    int want = (run->n_steps - 1) / 2;
    for (int s = 0; s < run->n_steps; s++) {
        int below = 0;
        for (int t = 0; t < run->n_steps; t++)
            if (run->step_wall_s[t] < run->step_wall_s[s] || (run->step_wall_s[t] == run->step_wall_s[s] && t < s))
                below++;
        if (below == want) return s;
    }
    return 0;   /* NaN walls: any step will do */
}

typedef struct {
    TimelineBox *b;
    int n, cap;
} BoxList;

static int box_add(BoxList *l, int rank, TimelineKind kind, double start, double end)
{
    if (!(end > start)) return 0;   /* nothing to draw */
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        TimelineBox *b = realloc(l->b, (size_t)cap * sizeof *b);
        if (!b) return -1;
        l->b = b;
        l->cap = cap;
    }
    l->b[l->n++] = (TimelineBox){rank, kind, start, end};
    return 0;
}

/* Closes a sync point: every rank waits until the slowest (end[r] -> max), then communication.
 * Returns the time the next sync point starts. */
static double sync_point(BoxList *l, double *end, int W, double comm_s, int *oom)
{
    double mx = 0;
    for (int r = 0; r < W; r++)
        if (end[r] > mx) mx = end[r];
    for (int r = 0; r < W; r++) {
        if (box_add(l, r, TL_WAIT, end[r], mx) != 0) *oom = 1;
        if (box_add(l, r, TL_COMM, mx, mx + comm_s) != 0) *oom = 1;
    }
    return mx + comm_s;
}

int timeline_build(const RepStrategy *s, int step, double comm_s, TimelineBox **boxes, int *n_boxes)
{
    *boxes = NULL;
    *n_boxes = 0;
    const RepRun *run = s->run;
    if (!run || step < 0) return 0;
    int W = s->world_size, micro_steps = 0;
    for (int i = 0; i < run->n_mbs; i++)
        if (run->mbs[i].step == step && run->mbs[i].micro + 1 > micro_steps) micro_steps = run->mbs[i].micro + 1;
    double *end = calloc((size_t)W, sizeof *end);
    if (!end) return -1;
    BoxList l = {0};
    int oom = 0, per_micro = strcmp(s->sync, "micro") == 0;
    double t0 = 0;
    for (int m = 0; m < micro_steps; m++) {
        if (per_micro || m == 0)
            for (int r = 0; r < W; r++) end[r] = t0;
        for (int i = 0; i < run->n_mbs; i++) {
            const RepMicroBatch *x = &run->mbs[i];
            if (x->step != step || x->micro != m || x->rank < 0 || x->rank >= W) continue;
            if (box_add(&l, x->rank, TL_COMPUTE, end[x->rank], end[x->rank] + x->seconds) != 0) oom = 1;
            if (x->seconds > 0) end[x->rank] += x->seconds;
        }
        if (per_micro || m == micro_steps - 1) t0 = sync_point(&l, end, W, comm_s, &oom);
    }
    double opt = step < run->n_steps && run->optimizer_step_s ? run->optimizer_step_s[step] : 0;
    for (int r = 0; r < W && opt > 0; r++)
        if (box_add(&l, r, TL_OPTIMIZER, t0, t0 + opt) != 0) oom = 1;
    free(end);
    if (oom) {
        free(l.b);
        return -1;
    }
    *boxes = l.b;
    *n_boxes = l.n;
    return 0;
}
