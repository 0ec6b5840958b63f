#include "bench/results/measured.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/results/results_read.h"
#include "common/error.h"
#include "common/stats.h"

static int copy_model(const ResultsFile *rf, Measured *m)
{
    ModelConfig *c = &m->model;
    snprintf(c->name, sizeof c->name, "%s", rf->model_preset[0] ? rf->model_preset : "file");
    c->vocab = rf->vocab;
    c->hidden = rf->hidden;
    c->intermediate = rf->intermediate;
    c->layers = rf->layers;
    c->heads = rf->heads;
    c->kv_heads = rf->kv_heads;
    c->head_dim = rf->head_dim;
    m->n_params = rf->params > 0 ? (double)rf->params : (double)model_param_count(c);
    snprintf(m->len_dist, sizeof m->len_dist, "%s", rf->len_dist);
    m->samples = rf->samples;
    m->len_scale = rf->len_scale;
    m->seed = (uint64_t)rf->seed;
    snprintf(m->device, sizeof m->device, "%s", rf->device ? rf->device : "unknown device");
    snprintf(m->commit, sizeof m->commit, "%s", rf->commit);
    return 0;
}

/* Strategy i of rf into s: -1 with err when its rows cannot be fitted. */
static int load_strategy(const ResultsFile *rf, int i, MeasuredStrategy *s, char *err, size_t errlen)
{
    const RepStrategy *rs = &rf->strategies[i];
    const RepRun *run = rs->run;
    /* The columns the fit needs, beyond step, micro, rank and seconds. */
    static const struct { unsigned bit; int column; } need[] = {
        {MB_COL_ROWS, MB_ROWS}, {MB_COL_SEGMENTS, MB_SEGMENTS}, {MB_COL_REAL_TOKENS, MB_REAL_TOKENS},
        {MB_COL_COMPUTED_TOKENS, MB_COMPUTED_TOKENS}, {MB_COL_SUM_SEQ_LEN_SQ, MB_SUM_SEQ_LEN_SQ}};
    s->strategy = strategy_find(rs->name);
    if (!s->strategy)
        return path_error(err, errlen, rf->path, "strategies[%d]: unknown strategy \"%s\"", i, QUOTE(rs->name));
    snprintf(s->name, sizeof s->name, "%s", rs->name);
    s->cfg = rs->cfg;
    for (size_t k = 0; k < sizeof need / sizeof need[0]; k++)
        if (!(run->columns & need[k].bit))
            return path_error(err, errlen, rf->path,
                              "strategies[%d] (%s): run.micro_batch_columns has no \"%s\" column (the fit needs it)", i,
                              s->name, MB_COLUMN_NAMES[need[k].column]);
    if (run->n_mbs == 0)
        return path_error(err, errlen, rf->path,
                          "strategies[%d] (%s): run.micro_batches_detail is empty: no measured micro-batch", i, s->name);
    s->n_steps = run->steps;
    size_t n = (size_t)run->n_mbs;
    s->shapes = calloc(n, sizeof *s->shapes);
    s->secs = calloc(n, sizeof *s->secs);
    if (!s->shapes || !s->secs) return path_error(err, errlen, rf->path, "out of memory reading it");
    for (size_t k = 0; k < n; k++) {
        const MbRow *mb = &run->mbs[k];
        s->shapes[k] = *mb;
        if (mb->rows > 0 && !isfinite(mb->seconds))
            return path_error(err, errlen, rf->path,
                              "strategies[%d] (%s): run.micro_batches_detail: step %d, micro %d, rank %d did work "
                              "but has no time (seconds is null)", i, s->name, mb->step, mb->micro, mb->rank);
        s->secs[k] = mb->rows > 0 ? mb->seconds : 0.0;
    }
    /* The optimizer step, once per step: the median resists the first step's warm-up. */
    s->optimizer_s = median(run->optimizer_step_s, (size_t)run->n_steps);
    if (isnan(s->optimizer_s)) s->optimizer_s = 0;
    return 0;
}

int measured_load(const char *path, Measured *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->path = path;
    ResultsFile rf;
    if (results_read(path, &rf, err, errlen) != 0) return -1;
    int rc = -1;
    if (strcmp(rf.kind, "train") != 0) {
        path_error(err, errlen, rf.path,
                   "a \"%s\" results file has no measured run; `labench predict` needs the output of `labench train`",
                   rf.kind);
        goto done;
    }
    copy_model(&rf, m);
    m->strats = calloc((size_t)(rf.n_strategies > 0 ? rf.n_strategies : 1), sizeof *m->strats);
    if (!m->strats) {
        path_error(err, errlen, rf.path, "out of memory reading it");
        goto done;
    }
    for (int i = 0; i < rf.n_strategies; i++) {
        if (!rf.strategies[i].run) continue;   /* planned, not run */
        m->n++;
        if (load_strategy(&rf, i, &m->strats[m->n - 1], err, errlen) != 0) goto done;
    }
    if (m->n == 0) {
        path_error(err, errlen, rf.path, "no strategy has a \"run\": nothing measured to fit");
        goto done;
    }
    rc = 0;
done:
    results_file_free(&rf);
    if (rc != 0) measured_free(m);
    return rc;
}

int measured_cost_model(const char *path, CostModel *cost, TimeFit *fit, ModelConfig *model, char *err,
                        size_t errlen)
{
    Measured m;
    if (measured_load(path, &m, err, errlen) != 0) return -1;
    if (measured_fit(&m, 5, 1, err, errlen) != 0) {
        measured_free(&m);
        return -1;
    }
    const TimeFit *f = &m.strats[0].fit;
    *cost = (CostModel){f->per_token, f->per_token_sq, f->intercept, f->per_segment};
    if (fit) *fit = *f;
    if (model) *model = m.model;
    measured_free(&m);
    return 0;
}
