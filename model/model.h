/* The training step, written once over the op table of kernels/backend.h.
 *
 * Llama-style decoder (DESIGN.md): embedding; per layer RMSNorm, fused QKV (GQA), RoPE with
 * per-segment positions, varlen causal attention, output projection, residual; RMSNorm, SwiGLU
 * MLP, residual; final RMSNorm; untied LM head; cross-entropy with one weight per position,
 * computed in chunks of rows so that [tokens x vocab] logits never exist at once.
 */
#ifndef LABENCH_MODEL_H
#define LABENCH_MODEL_H

#include <stdint.h>

#include "kernels/backend.h"
#include "model/config.h"

/* One micro-batch, on the host: every row of it laid end to end. */
typedef struct {
    int n_tokens;
    const int32_t *tokens;      /* [N] */
    const int32_t *targets;     /* [N] next token inside the segment; anything where weight = 0 */
    const float *weights;       /* [N] loss weight of predicting targets[t] at position t */
    const int32_t *positions;   /* [N] position inside the segment (restarts at 0) */
    const int32_t *cu_seqlens;  /* [n_segs + 1] attention segments: 0 ... N */
    int n_segs;
    int max_seqlen;
} Batch;

/* 0 when b is well formed: at least one segment, cu_seqlens starting at 0, strictly increasing
 * and ending at n_tokens, and max_seqlen >= the longest segment (the CUDA attention launches
 * ceil(max_seqlen / tile) blocks per segment, so a smaller max_seqlen silently drops the tiles
 * past it). Else -1 with what is wrong in err. Called where batches are built and by the step. */
int batch_check(const Batch *b, char *err, size_t errlen);

/* Activations of one layer, saved by the forward for the backward. */
typedef struct {
    void *ln1, *rstd1, *qkv, *att, *lse, *h, *ln2, *rstd2, *gate_up, *mlp;
} LayerActs;

/* Parameter units, in layout order: 0 the embedding, 1..layers the layers, layers + 1 the final
 * norm with the LM head. A runner that shards the parameters across data-parallel ranks (ZeRO-3,
 * bench/run/dp.c) gathers a unit before its forward and again before its backward, and scatters its
 * gradient once complete: model_forward_backward calls Model.unit_hook at those points when set. */
typedef enum { UNIT_BEFORE_FORWARD, UNIT_BEFORE_BACKWARD, UNIT_GRAD_DONE } UnitEvent;
typedef void (*UnitHook)(void *ctx, int unit, UnitEvent ev);

typedef struct {
    ModelConfig cfg;
    ParamLayout layout;
    Backend *be;
    size_t n_params;
    int max_tokens;          /* activation capacity (tokens per micro-batch) */
    int recompute;           /* 1: keep only layer inputs; recompute each layer in the backward */
    int adam_t;              /* optimizer steps taken */

    void *params, *grads, *adam_m, *adam_v;   /* param dtype */
    void *wact;              /* act-dtype compute copy of params (== params when dtypes match) */

    void *resid;             /* [layers+1][N,C] residual stream: input of each layer, then the final one */
    LayerActs *acts;         /* one per layer, or one shared when recomputing */
    void *lnf, *rstd_f;      /* final norm output and stats */
    void *logits;            /* [chunk, V] */
    int head_chunk;          /* rows per LM-head chunk */
    void *losses;            /* [N] per-position losses, param dtype */
    void *dres, *d_ln, *d_att, *d_qkv, *d_gate_up, *d_mlp;   /* backward scratch, act dtype */
    int32_t *d_tokens, *d_targets, *d_positions, *d_cu;      /* backend copies of the batch */
    float *d_weights;
    void *h_stage;           /* host staging (param dtype) */
    size_t act_bytes;        /* bytes of activations and scratch, for reporting */
    UnitHook unit_hook;      /* NULL: none (model_forward, evaluation, never calls it) */
    void *unit_ctx;
} Model;

/* Units of a model (layers + 2), and the elements [*first, *first + *count) of unit u in the
 * parameter (and gradient) buffer. */
int model_n_units(const ModelConfig *c);
void model_unit_range(const Model *m, int unit, size_t *first, size_t *count);
/* Calls unit_hook for every unit in the order model_forward_backward does, computing nothing: a
 * data-parallel rank with no micro-batch at a micro-step still takes part in its collectives. */
void model_unit_hooks_only(Model *m);

/* Allocates parameters, optimizer state and activations for micro-batches of up to max_tokens.
 * Returns 0, or -1 with err saying how much memory was needed and what to try. */
int model_create(Model *m, const ModelConfig *cfg, Backend *be, int max_tokens, int recompute,
                 char *err, size_t errlen);
void model_free(Model *m);

/* Bytes model_create would allocate, for messages and planning. */
size_t model_bytes_needed(const ModelConfig *cfg, DType param_dtype, DType act_dtype, int max_tokens, int recompute);

/* Seeded initialization: N(0, 0.02) matrices (output projections scaled by 1/sqrt(2*layers)),
 * ones for norms. The same on every backend: drawn on the host in f32, then uploaded. */
int model_init_params(Model *m, uint64_t seed, char *err, size_t errlen);   /* 0, or -1 with err */
void model_set_params(Model *m, const float *host);   /* n_params floats */
void model_get_params(const Model *m, float *host);
void model_get_grads(const Model *m, float *host);

void model_zero_grads(Model *m);
/* Forward and backward of one micro-batch; gradients accumulate. Returns the weighted loss
 * sum_t weights[t] * CE_t. per_position (optional, host [N]) receives the unweighted CE_t. */
double model_forward_backward(Model *m, const Batch *b, float *per_position);
/* Forward only (evaluation); same return value and per_position. */
double model_forward(Model *m, const Batch *b, float *per_position);
/* Global gradient norm, clipping to max_norm (<= 0: no clipping), AdamW update, refresh of the
 * compute copy of the weights. Returns the norm before clipping. */
double model_optimizer_step(Model *m, const AdamWConfig *opt, float max_norm);
/* The factor gradients are scaled by before AdamW: clipping to max_norm (<= 0: none). */
float model_clip_scale(double norm, float max_norm);

/* FLOPs of one forward+backward over a batch: 6 x matmul params touched per token plus the causal
 * attention of each segment (3x its forward: QK^T and PV, half the square). */
double model_flops(const ModelConfig *c, int64_t tokens, double sum_seg_len_sq);

#endif
