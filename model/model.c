#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

/* Named range around a phase of the step, for profilers (no-op when the runner set none). */
#define RANGE_PUSH(be, name) do { if ((be)->range_push) (be)->range_push(name); } while (0)
#define RANGE_POP(be) do { if ((be)->range_pop) (be)->range_pop(); } while (0)

/* LM-head chunk: rows x vocab elements of logits held at once (8M elements: 32 MB in f32). */
#define HEAD_CHUNK_ELEMS (8u << 20)

static int qkv_width(const ModelConfig *c) { return (c->heads + 2 * c->kv_heads) * c->head_dim; }
static int att_width(const ModelConfig *c) { return c->heads * c->head_dim; }

static int head_chunk_rows(const ModelConfig *c, int max_tokens)
{
    int rows = (int)(HEAD_CHUNK_ELEMS / (unsigned)c->vocab);
    if (rows < 1) rows = 1;
    return rows < max_tokens ? rows : max_tokens;
}

/* Element counts of everything model_create allocates, in one place so that model_bytes_needed
 * and model_create cannot disagree. */
typedef struct {
    size_t params;           /* x4: params, grads, m, v (param dtype) */
    size_t wact;             /* compute copy (act dtype), 0 when it aliases params */
    size_t act_elems;        /* act dtype */
    size_t stat_elems;       /* param dtype */
    size_t idx_bytes;        /* int32 / float batch buffers */
} Footprint;

static size_t layer_act_elems(const ModelConfig *c, size_t N)
{
    const size_t C = (size_t)c->hidden, F = (size_t)c->intermediate;
    /* ln1, qkv, att, h, ln2, gate_up, mlp */
    return N * (C + (size_t)qkv_width(c) + (size_t)att_width(c) + C + C + 2 * F + F);
}
static size_t layer_stat_elems(const ModelConfig *c, size_t N) { return N * (2 + (size_t)c->heads); }

static Footprint footprint(const ModelConfig *c, DType pdt, DType adt, int max_tokens, int recompute)
{
    Footprint f = {0};
    const size_t N = (size_t)max_tokens, C = (size_t)c->hidden, F = (size_t)c->intermediate;
    const size_t L = (size_t)c->layers;
    f.params = model_param_count(c);
    f.wact = pdt == adt ? 0 : f.params;
    size_t n_act_sets = recompute ? 1 : L;
    f.act_elems = (L + 1) * N * C                      /* residual stream */
                  + n_act_sets * layer_act_elems(c, N)
                  + N * C                              /* final norm */
                  + (size_t)head_chunk_rows(c, max_tokens) * (size_t)c->vocab
                  + N * (C + C + (size_t)att_width(c) + (size_t)qkv_width(c) + 2 * F + F);  /* backward scratch */
    f.stat_elems = n_act_sets * layer_stat_elems(c, N) + N /* rstd_f */ + N /* losses */;
    f.idx_bytes = N * 4 * 4 + (N + 2) * 4;
    return f;
}

size_t model_bytes_needed(const ModelConfig *cfg, DType pdt, DType adt, int max_tokens, int recompute)
{
    Footprint f = footprint(cfg, pdt, adt, max_tokens, recompute);
    return 4 * f.params * dtype_size(pdt) + f.wact * dtype_size(adt) + f.act_elems * dtype_size(adt) +
           f.stat_elems * dtype_size(pdt) + f.idx_bytes;
}

/* Allocation that remembers failure, so model_create can report the total need once. */
typedef struct { Backend *be; int failed; size_t asked; } Allocator;
static void *take(Allocator *a, size_t bytes)
{
    a->asked += bytes;
    if (a->failed) return NULL;
    void *p = a->be->alloc(a->be, bytes ? bytes : 1);
    if (!p) a->failed = 1;
    return p;
}

static void alloc_layer(Allocator *a, const ModelConfig *c, LayerActs *x, size_t N, size_t as, size_t ps)
{
    const size_t C = (size_t)c->hidden, F = (size_t)c->intermediate;
    x->ln1 = take(a, N * C * as);
    x->rstd1 = take(a, N * ps);
    x->qkv = take(a, N * (size_t)qkv_width(c) * as);
    x->att = take(a, N * (size_t)att_width(c) * as);
    x->lse = take(a, N * (size_t)c->heads * ps);
    x->h = take(a, N * C * as);
    x->ln2 = take(a, N * C * as);
    x->rstd2 = take(a, N * ps);
    x->gate_up = take(a, N * 2 * F * as);
    x->mlp = take(a, N * F * as);
}

int model_create(Model *m, const ModelConfig *cfg, Backend *be, int max_tokens, int recompute,
                 char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (model_config_check(cfg, err, errlen) != 0) return -1;
    if (max_tokens < 1) {
        snprintf(err, errlen, "micro-batch of %d tokens", max_tokens);
        return -1;
    }
    m->cfg = *cfg;
    m->be = be;
    m->max_tokens = max_tokens;
    m->recompute = recompute;
    if (param_layout_make(cfg, &m->layout) != 0) {
        snprintf(err, errlen, "out of host memory for the parameter layout");
        return -1;
    }
    m->n_params = m->layout.n_params;
    const size_t ps = dtype_size(be->param_dtype), as = dtype_size(be->act_dtype);
    const size_t N = (size_t)max_tokens, C = (size_t)cfg->hidden, F = (size_t)cfg->intermediate;
    const size_t L = (size_t)cfg->layers, V = (size_t)cfg->vocab;
    size_t before = be->bytes_in_use(be);

    Allocator a = {be, 0, 0};
    m->params = take(&a, m->n_params * ps);
    m->grads = take(&a, m->n_params * ps);
    m->adam_m = take(&a, m->n_params * ps);
    m->adam_v = take(&a, m->n_params * ps);
    m->wact = be->param_dtype == be->act_dtype ? m->params : take(&a, m->n_params * as);
    m->resid = take(&a, (L + 1) * N * C * as);
    size_t n_sets = recompute ? 1 : L;
    m->acts = calloc(n_sets, sizeof *m->acts);
    if (!m->acts) a.failed = 1;
    for (size_t i = 0; i < n_sets && m->acts; i++) alloc_layer(&a, cfg, &m->acts[i], N, as, ps);
    m->lnf = take(&a, N * C * as);
    m->rstd_f = take(&a, N * ps);
    m->head_chunk = head_chunk_rows(cfg, max_tokens);
    m->logits = take(&a, (size_t)m->head_chunk * V * as);
    m->losses = take(&a, N * ps);
    m->dres = take(&a, N * C * as);
    m->d_ln = take(&a, N * C * as);
    m->d_att = take(&a, N * (size_t)att_width(cfg) * as);
    m->d_qkv = take(&a, N * (size_t)qkv_width(cfg) * as);
    m->d_gate_up = take(&a, N * 2 * F * as);
    m->d_mlp = take(&a, N * F * as);
    m->d_tokens = take(&a, N * 4);
    m->d_targets = take(&a, N * 4);
    m->d_positions = take(&a, N * 4);
    m->d_weights = take(&a, N * 4);
    m->d_cu = take(&a, (N + 2) * 4);
    m->h_stage = malloc(N * ps);
    if (a.failed || !m->h_stage) {
        size_t need = model_bytes_needed(cfg, be->param_dtype, be->act_dtype, max_tokens, recompute);
        char limit[160] = "";
        if (be->memory_limit)
            snprintf(limit, sizeof limit, " (the %s backend's memory is limited to %zu bytes)", be->name,
                     be->memory_limit);
        snprintf(err, errlen,
                 "out of memory on %s%s: the %s model (%zu params) with micro-batches of %d tokens needs "
                 "about %zu bytes (%.2f GiB)%s; try %s--max-tokens %d, or a smaller --model / --layers",
                 be->device_name, limit, cfg->name, m->n_params, max_tokens, need, (double)need / (1u << 30),
                 recompute ? " with --recompute" : "", recompute ? "" : "--recompute, ",
                 max_tokens / 2 > 0 ? max_tokens / 2 : 1);
        model_free(m);
        return -1;
    }
    m->act_bytes = be->bytes_in_use(be) - before - 4 * m->n_params * ps;
    return 0;
}

void model_free(Model *m)
{
    Backend *be = m->be;
    if (!be) return;
    /* Every pointer came from be->alloc; free them in any order. */
    void *ptrs[] = {m->params, m->grads, m->adam_m, m->adam_v, m->resid, m->lnf, m->rstd_f, m->logits,
                    m->losses, m->dres, m->d_ln, m->d_att, m->d_qkv, m->d_gate_up, m->d_mlp,
                    m->d_tokens, m->d_targets, m->d_positions, m->d_weights, m->d_cu};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        if (ptrs[i]) be->free(be, ptrs[i]);
    if (m->wact && m->wact != m->params) be->free(be, m->wact);
    if (m->acts) {
        int n_sets = m->recompute ? 1 : m->cfg.layers;
        for (int i = 0; i < n_sets; i++) {
            LayerActs *x = &m->acts[i];
            void *lp[] = {x->ln1, x->rstd1, x->qkv, x->att, x->lse, x->h, x->ln2, x->rstd2, x->gate_up, x->mlp};
            for (size_t j = 0; j < sizeof lp / sizeof lp[0]; j++)
                if (lp[j]) be->free(be, lp[j]);
        }
        free(m->acts);
    }
    free(m->h_stage);
    param_layout_free(&m->layout);
    memset(m, 0, sizeof *m);
}

/* ---- parameters ---- */

static double gaussian(Rng *r)
{
    /* Box-Muller; u1 in (0, 1] so log() is finite. */
    double u1 = 1.0 - rng_uniform(r), u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void refresh_compute_weights(Model *m)
{
    Backend *be = m->be;
    if (m->wact != m->params) be->cast(be, m->wact, be->act_dtype, m->params, be->param_dtype, m->n_params);
}

void model_set_params(Model *m, const float *host)
{
    m->be->upload_f32(m->be, m->params, m->be->param_dtype, host, m->n_params);
    refresh_compute_weights(m);
}

void model_get_params(const Model *m, float *host)
{
    m->be->download_f32(m->be, host, m->params, m->be->param_dtype, m->n_params);
}

void model_get_grads(const Model *m, float *host)
{
    m->be->download_f32(m->be, host, m->grads, m->be->param_dtype, m->n_params);
}

int model_init_params(Model *m, uint64_t seed, char *err, size_t errlen)
{
    float *p = malloc(m->n_params * sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of host memory initializing %zu parameters", m->n_params);
        return -1;
    }
    Rng r = rng_seed(seed, 0x1417);
    const double std = 0.02, out_std = 0.02 / sqrt(2.0 * m->cfg.layers);
    for (int i = 0; i < m->layout.n_tensors; i++) {
        const ParamTensor *t = &m->layout.tensors[i];
        size_t n = (size_t)t->rows * (size_t)t->cols;
        float *x = p + t->offset;
        int is_norm = t->rows == 1;
        int is_out = strstr(t->name, "o_proj") || strstr(t->name, "down_proj");
        for (size_t j = 0; j < n; j++) x[j] = is_norm ? 1.0f : (float)(gaussian(&r) * (is_out ? out_std : std));
    }
    model_set_params(m, p);
    free(p);
    m->adam_t = 0;
    m->be->zero(m->be, m->adam_m, m->n_params * dtype_size(m->be->param_dtype));
    m->be->zero(m->be, m->adam_v, m->n_params * dtype_size(m->be->param_dtype));
    model_zero_grads(m);
    return 0;
}

void model_zero_grads(Model *m)
{
    m->be->zero(m->be, m->grads, m->n_params * dtype_size(m->be->param_dtype));
}

/* Pointer to tensor i inside a param-layout buffer of element size es. */
static void *tensor_at(const Model *m, void *base, int i, size_t es)
{
    return (char *)base + m->layout.tensors[i].offset * es;
}
#define W(i) tensor_at(m, m->wact, (i), as)
#define G(i) tensor_at(m, m->grads, (i), ps)

static void *resid_at(const Model *m, int layer, size_t as)
{
    return (char *)m->resid + (size_t)layer * (size_t)m->max_tokens * (size_t)m->cfg.hidden * as;
}

static void upload_batch(Model *m, const Batch *b)
{
    Backend *be = m->be;
    size_t N = (size_t)b->n_tokens;
    be->upload(be, m->d_tokens, b->tokens, N * 4);
    be->upload(be, m->d_targets, b->targets, N * 4);
    be->upload(be, m->d_positions, b->positions, N * 4);
    be->upload(be, m->d_weights, b->weights, N * 4);
    be->upload(be, m->d_cu, b->cu_seqlens, (size_t)(b->n_segs + 1) * 4);
}

/* Forward of layer l: from resid[l] into resid[l+1], saving what the backward needs into x. */
static void layer_forward(Model *m, const Batch *b, int l, LayerActs *x)
{
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const size_t as = dtype_size(be->act_dtype);
    const int N = b->n_tokens, C = c->hidden, F = c->intermediate;
    void *in = resid_at(m, l, as), *out = resid_at(m, l + 1, as);

    be->rmsnorm_forward(be, x->ln1, x->rstd1, in, W(param_layer(l, P_LN1)), N, C, c->rms_eps);
    be->matmul_forward(be, x->qkv, x->ln1, W(param_layer(l, P_QKV)), N, C, qkv_width(c));
    be->rope_forward(be, x->qkv, m->d_positions, N, c->heads, c->kv_heads, c->head_dim, c->rope_theta);
    be->attention_forward(be, x->att, x->lse, x->qkv, m->d_cu, b->n_segs, b->max_seqlen, N, c->heads,
                          c->kv_heads, c->head_dim);
    /* h = in + att @ Wo^T: the projection lands in h, then the residual is added in place. */
    be->matmul_forward(be, x->h, x->att, W(param_layer(l, P_O)), N, att_width(c), C);
    be->add(be, x->h, x->h, in, (size_t)N * C);
    be->rmsnorm_forward(be, x->ln2, x->rstd2, x->h, W(param_layer(l, P_LN2)), N, C, c->rms_eps);
    be->matmul_forward(be, x->gate_up, x->ln2, W(param_layer(l, P_GATE_UP)), N, C, 2 * F);
    be->swiglu_forward(be, x->mlp, x->gate_up, N, F);
    be->matmul_forward(be, out, x->mlp, W(param_layer(l, P_DOWN)), N, F, C);
    be->add(be, out, out, x->h, (size_t)N * C);
}

/* Backward of layer l: m->dres holds d resid[l+1] on entry and d resid[l] on exit. */
static void layer_backward(Model *m, const Batch *b, int l, LayerActs *x)
{
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const size_t as = dtype_size(be->act_dtype), ps = dtype_size(be->param_dtype);
    const int N = b->n_tokens, C = c->hidden, F = c->intermediate;
    void *in = resid_at(m, l, as);

    /* out = h + down(mlp): d h starts as dres; the MLP branch adds to it through ln2. */
    be->matmul_backward(be, m->d_mlp, G(param_layer(l, P_DOWN)), m->dres, x->mlp, W(param_layer(l, P_DOWN)),
                        N, F, C, 0);
    be->swiglu_backward(be, m->d_gate_up, m->d_mlp, x->gate_up, N, F);
    be->matmul_backward(be, m->d_ln, G(param_layer(l, P_GATE_UP)), m->d_gate_up, x->ln2,
                        W(param_layer(l, P_GATE_UP)), N, C, 2 * F, 0);
    be->rmsnorm_backward(be, m->dres, G(param_layer(l, P_LN2)), m->d_ln, x->h, W(param_layer(l, P_LN2)),
                         x->rstd2, N, C);
    /* h = in + o(att): d in starts as d h; the attention branch adds to it through ln1. */
    be->matmul_backward(be, m->d_att, G(param_layer(l, P_O)), m->dres, x->att, W(param_layer(l, P_O)),
                        N, att_width(c), C, 0);
    be->attention_backward(be, m->d_qkv, m->d_att, x->qkv, x->att, x->lse, m->d_cu, b->n_segs, b->max_seqlen,
                           N, c->heads, c->kv_heads, c->head_dim);
    be->rope_backward(be, m->d_qkv, m->d_positions, N, c->heads, c->kv_heads, c->head_dim, c->rope_theta);
    be->matmul_backward(be, m->d_ln, G(param_layer(l, P_QKV)), m->d_qkv, x->ln1, W(param_layer(l, P_QKV)),
                        N, C, qkv_width(c), 0);
    be->rmsnorm_backward(be, m->dres, G(param_layer(l, P_LN1)), m->d_ln, in, W(param_layer(l, P_LN1)),
                         x->rstd1, N, C);
}

static LayerActs *acts_for(Model *m, int l) { return &m->acts[m->recompute ? 0 : l]; }

/* ---- parameter units (ZeRO-3 sharding hooks, model.h) ---- */

int model_n_units(const ModelConfig *c) { return c->layers + 2; }

static int unit_embed(void) { return 0; }
static int unit_layer(int l) { return 1 + l; }
static int unit_head(const ModelConfig *c) { return c->layers + 1; }

void model_unit_range(const Model *m, int unit, size_t *first, size_t *count)
{
    const ModelConfig *c = &m->cfg;
    /* the layout is contiguous: embed, each layer's P_PER_LAYER tensors, final norm, lm_head */
    int t0 = unit == 0 ? param_embed() : unit <= c->layers ? param_layer(unit - 1, 0) : param_final_norm(c);
    int t1 = unit == 0 ? param_layer(0, 0) : unit < c->layers ? param_layer(unit, 0) : unit == c->layers ? param_final_norm(c) : -1;
    *first = m->layout.tensors[t0].offset;
    *count = (t1 < 0 ? m->n_params : m->layout.tensors[t1].offset) - *first;
}

static void unit_event(Model *m, int unit, UnitEvent ev)
{
    if (m->unit_hook) m->unit_hook(m->unit_ctx, unit, ev);
}

/* Embedding and every layer's forward; leaves the final norm's output in m->lnf. */
static void forward_trunk(Model *m, const Batch *b)
{
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const size_t as = dtype_size(be->act_dtype);
    unit_event(m, unit_embed(), UNIT_BEFORE_FORWARD);
    be->embedding_forward(be, resid_at(m, 0, as), m->d_tokens, W(param_embed()), b->n_tokens, c->hidden);
    for (int l = 0; l < c->layers; l++) {
        RANGE_PUSH(be, "layer");
        unit_event(m, unit_layer(l), UNIT_BEFORE_FORWARD);
        layer_forward(m, b, l, acts_for(m, l));
        RANGE_POP(be);
    }
    unit_event(m, unit_head(c), UNIT_BEFORE_FORWARD);
    be->rmsnorm_forward(be, m->lnf, m->rstd_f, resid_at(m, c->layers, as), W(param_final_norm(c)), b->n_tokens,
                        c->hidden, c->rms_eps);
}

/* LM head and loss over chunks of rows. With backward, each chunk's logits are turned into
 * d logits in place and pushed back at once: d lnf (rows of the chunk) and d W_head. */
static double head_and_loss(Model *m, const Batch *b, int backward, float *per_position)
{
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const size_t as = dtype_size(be->act_dtype), ps = dtype_size(be->param_dtype);
    const int N = b->n_tokens, C = c->hidden, V = c->vocab;
    for (int r0 = 0; r0 < N; r0 += m->head_chunk) {
        int R = N - r0 < m->head_chunk ? N - r0 : m->head_chunk;
        const void *x = (char *)m->lnf + (size_t)r0 * C * as;
        be->matmul_forward(be, m->logits, x, W(param_lm_head(c)), R, C, V);
        void *losses = (char *)m->losses + (size_t)r0 * ps;
        const int32_t *tg = m->d_targets + r0;
        const float *wt = m->d_weights + r0;
        if (!backward) {
            be->crossentropy_forward(be, losses, m->logits, tg, R, V);
        } else {
            /* one pass over the chunk where the backend has it, else the two ops */
            if (be->crossentropy_fused) {
                be->crossentropy_fused(be, losses, m->logits, m->logits, tg, wt, R, V);
            } else {
                be->crossentropy_forward(be, losses, m->logits, tg, R, V);
                be->crossentropy_backward(be, m->logits, m->logits, tg, wt, R, V);
            }
            be->matmul_backward(be, (char *)m->d_ln + (size_t)r0 * C * as, G(param_lm_head(c)), m->logits, x,
                                W(param_lm_head(c)), R, C, V, 0);
        }
    }
    /* Read the losses at their own precision: f64 backends are there for gradient checks, and
     * finite differences need the loss to more digits than f32 holds. */
    be->download(be, m->h_stage, m->losses, (size_t)N * ps);
    double loss = 0;
    for (int t = 0; t < N; t++) {
        double l = be->param_dtype == DT_F64 ? ((const double *)m->h_stage)[t] : ((const float *)m->h_stage)[t];
        loss += (double)b->weights[t] * l;
        if (per_position) per_position[t] = (float)l;
    }
    return loss;
}

int batch_check(const Batch *b, char *err, size_t errlen)
{
    if (b->n_tokens < 1 || b->n_segs < 1 || !b->cu_seqlens) {
        snprintf(err, errlen, "batch of %d tokens in %d segments", b->n_tokens, b->n_segs);
        return -1;
    }
    if (b->cu_seqlens[0] != 0 || b->cu_seqlens[b->n_segs] != b->n_tokens) {
        snprintf(err, errlen, "cu_seqlens runs from %d to %d, not from 0 to the batch's %d tokens", b->cu_seqlens[0],
                 b->cu_seqlens[b->n_segs], b->n_tokens);
        return -1;
    }
    int longest = 0;
    for (int s = 0; s < b->n_segs; s++) {
        const int len = b->cu_seqlens[s + 1] - b->cu_seqlens[s];
        if (len < 1) {
            snprintf(err, errlen, "segment %d of the batch is empty (cu_seqlens %d, %d)", s, b->cu_seqlens[s],
                     b->cu_seqlens[s + 1]);
            return -1;
        }
        if (len > longest) longest = len;
    }
    if (b->max_seqlen < longest) {
        snprintf(err, errlen, "max_seqlen %d is shorter than the batch's longest segment (%d tokens): the GPU "
                 "attention would skip the tiles past it", b->max_seqlen, longest);
        return -1;
    }
    return 0;
}

static int batch_fits(const Model *m, const Batch *b)
{
    if (b->n_tokens < 1 || b->n_tokens > m->max_tokens) {
        fprintf(stderr, "labench: internal error: micro-batch of %d tokens, model sized for %d\n", b->n_tokens,
                m->max_tokens);
        abort();
    }
    char err[256];
    if (batch_check(b, err, sizeof err) != 0) {
        fprintf(stderr, "labench: internal error: malformed micro-batch: %s\n", err);
        abort();
    }
    return 1;
}

double model_forward(Model *m, const Batch *b, float *per_position)
{
    batch_fits(m, b);
    UnitHook hook = m->unit_hook;   /* evaluation is no training step: no collectives */
    m->unit_hook = NULL;
    RANGE_PUSH(m->be, "forward");
    upload_batch(m, b);
    forward_trunk(m, b);
    double loss = head_and_loss(m, b, 0, per_position);
    RANGE_POP(m->be);
    m->unit_hook = hook;
    return loss;
}

void model_unit_hooks_only(Model *m)
{
    const ModelConfig *c = &m->cfg;
    if (!m->unit_hook) return;
    /* the order of model_forward_backward, below */
    unit_event(m, unit_embed(), UNIT_BEFORE_FORWARD);
    for (int l = 0; l < c->layers; l++) unit_event(m, unit_layer(l), UNIT_BEFORE_FORWARD);
    unit_event(m, unit_head(c), UNIT_BEFORE_FORWARD);
    unit_event(m, unit_head(c), UNIT_BEFORE_BACKWARD);
    unit_event(m, unit_head(c), UNIT_GRAD_DONE);
    for (int l = c->layers - 1; l >= 0; l--) {
        unit_event(m, unit_layer(l), UNIT_BEFORE_BACKWARD);
        unit_event(m, unit_layer(l), UNIT_GRAD_DONE);
    }
    unit_event(m, unit_embed(), UNIT_BEFORE_BACKWARD);
    unit_event(m, unit_embed(), UNIT_GRAD_DONE);
}

double model_forward_backward(Model *m, const Batch *b, float *per_position)
{
    Backend *be = m->be;
    const ModelConfig *c = &m->cfg;
    const size_t as = dtype_size(be->act_dtype), ps = dtype_size(be->param_dtype);
    const int N = b->n_tokens, C = c->hidden;
    batch_fits(m, b);
    RANGE_PUSH(be, "forward");
    upload_batch(m, b);
    forward_trunk(m, b);
    RANGE_POP(be);
    /* the LM head and loss run forward and backward chunk by chunk */
    RANGE_PUSH(be, "head+loss");
    unit_event(m, unit_head(c), UNIT_BEFORE_BACKWARD);   /* the head's backward runs chunk by chunk in here */
    double loss = head_and_loss(m, b, 1, per_position);
    RANGE_POP(be);

    RANGE_PUSH(be, "backward");
    be->zero(be, m->dres, (size_t)N * C * as);
    be->rmsnorm_backward(be, m->dres, G(param_final_norm(c)), m->d_ln, resid_at(m, c->layers, as),
                         W(param_final_norm(c)), m->rstd_f, N, C);
    unit_event(m, unit_head(c), UNIT_GRAD_DONE);
    for (int l = c->layers - 1; l >= 0; l--) {
        /* With --recompute only the layer inputs were kept: redo this layer's forward first. */
        RANGE_PUSH(be, "layer");
        unit_event(m, unit_layer(l), UNIT_BEFORE_BACKWARD);
        if (m->recompute) layer_forward(m, b, l, acts_for(m, l));
        layer_backward(m, b, l, acts_for(m, l));
        unit_event(m, unit_layer(l), UNIT_GRAD_DONE);
        RANGE_POP(be);
    }
    unit_event(m, unit_embed(), UNIT_BEFORE_BACKWARD);
    be->embedding_backward(be, G(param_embed()), m->dres, m->d_tokens, N, C);
    unit_event(m, unit_embed(), UNIT_GRAD_DONE);
    RANGE_POP(be);
    return loss;
}

float model_clip_scale(double norm, float max_norm)
{
    return max_norm > 0 && norm > max_norm ? (float)(max_norm / (norm + 1e-6)) : 1.0f;
}

double model_optimizer_step(Model *m, const AdamWConfig *opt, float max_norm)
{
    Backend *be = m->be;
    RANGE_PUSH(be, "optimizer");
    double norm = sqrt(be->sum_squares(be, m->grads, m->n_params));
    float scale = model_clip_scale(norm, max_norm);
    m->adam_t++;
    be->adamw(be, m->params, m->grads, m->adam_m, m->adam_v, m->n_params, opt, scale, m->adam_t);
    refresh_compute_weights(m);
    model_zero_grads(m);
    RANGE_POP(be);
    return norm;
}

double model_flops(const ModelConfig *c, int64_t tokens, double sum_seg_len_sq)
{
    const double C = c->hidden, F = c->intermediate, D = c->head_dim;
    double matmul_params = c->layers * (C * (c->heads + 2.0 * c->kv_heads) * D + C * c->heads * D + 3.0 * C * F) +
                           (double)c->vocab * C;
    /* causal attention forward: QK^T and PV over half the square, 2 FLOPs per multiply-add */
    double att_fwd = 2.0 * 2.0 * 0.5 * sum_seg_len_sq * c->heads * D * c->layers;
    return 6.0 * matmul_params * (double)tokens + 3.0 * att_fwd;
}
