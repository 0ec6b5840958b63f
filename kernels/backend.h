/* labench backends: the op table the training step (model/) is written against, once.
 *
 * Every op comes as a *_forward / *_backward pair where it has a gradient. Pointers are the
 * backend's own memory (host for cpu, device for cuda), obtained from be->alloc. Two element
 * types are in play, both chosen by the backend:
 *   param_dtype  master weights, their gradients, AdamW moments, per-row statistics (rstd, lse),
 *                per-position losses: f32 (cpu, cuda) or f64 (cpu64, for gradient checks);
 *   act_dtype    activations, their gradients, and the compute copy of the weights that the
 *                matmuls read: bf16 or f32 (cuda), f32 (cpu), f64 (cpu64).
 * Index buffers (tokens, targets, positions, cu_seqlens) are int32; loss weights are f32.
 * Shapes: N tokens (all rows of a micro-batch laid end to end), C hidden, F MLP width,
 * H query heads, Hkv key/value heads, D head dim, V vocabulary. Row-major, token-major.
 *
 * Conventions that the model relies on (both backends must honour them):
 *   - "+=" ops accumulate into their output (parameter gradients, residual-stream gradients);
 *     everything else overwrites.
 *   - qkv per token is [H*D query | Hkv*D key | Hkv*D value].
 *   - attention is causal inside each segment [cu_seqlens[s], cu_seqlens[s+1]) and never crosses
 *     one; scale 1/sqrt(D); query head h reads key/value head h / (H / Hkv).
 *   - RoPE is Hugging Face's rotate_half: pairs (i, i + D/2), angle pos * theta^(-2i/D).
 */
#ifndef LABENCH_BACKEND_H
#define LABENCH_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef enum { DT_F32 = 0, DT_BF16 = 1, DT_F64 = 2 } DType;

static inline size_t dtype_size(DType t) { return t == DT_BF16 ? 2 : t == DT_F64 ? 8 : 4; }
static inline const char *dtype_name(DType t) { return t == DT_BF16 ? "bf16" : t == DT_F64 ? "f64" : "f32"; }

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} AdamWConfig;

/* Which backend this is: code branches on the kind, never on the name. */
typedef enum { BACKEND_CPU = 0, BACKEND_CUDA = 1 } BackendKind;

typedef struct Backend Backend;
struct Backend {
    BackendKind kind;
    const char *name;            /* "cpu", "cuda": for messages and results */
    DType param_dtype;
    DType act_dtype;
    char device_name[128];       /* CPU model or GPU name */
    double peak_flops;           /* peak FLOP/s for MFU (see the backend for how it is obtained) */
    const char *peak_flops_source;
    void *impl;                  /* backend-private state */

    /* ---- memory: one arena per backend, with a high-water mark ---- */
    size_t memory_limit;         /* most bytes the arena may hold, 0: what the device gives (the CPU
                                    backend takes LABENCH_ARENA_LIMIT, so tests reach out of memory) */
    void *(*alloc)(Backend *be, size_t bytes);             /* zeroed; NULL when out of memory */
    void (*free)(Backend *be, void *p);
    size_t (*bytes_in_use)(Backend *be);
    size_t (*peak_bytes)(Backend *be);
    void (*reset_peak)(Backend *be);
    void (*destroy)(Backend *be);                           /* frees everything, and be */

    /* ---- transfers and conversions (host <-> backend memory) ---- */
    void (*upload)(Backend *be, void *dst, const void *host_src, size_t bytes);
    void (*download)(Backend *be, void *host_dst, const void *src, size_t bytes);
    void (*copy)(Backend *be, void *dst, const void *src, size_t bytes);
    void (*zero)(Backend *be, void *dst, size_t bytes);
    void (*upload_f32)(Backend *be, void *dst, DType dst_type, const float *host_src, size_t n);
    void (*download_f32)(Backend *be, float *host_dst, const void *src, DType src_type, size_t n);
    /* dst[i] = (dst_type) src[i], on the backend (master weights -> compute copy). */
    void (*cast)(Backend *be, void *dst, DType dst_type, const void *src, DType src_type, size_t n);
    void (*synchronize)(Backend *be);

    /* ---- ops ---- */
    /* out[N,C] = wte[tokens[n]]              | dwte[V,C] += scatter(dout) */
    void (*embedding_forward)(Backend *be, void *out, const int32_t *tokens, const void *wte, int N, int C);
    void (*embedding_backward)(Backend *be, void *dwte, const void *dout, const int32_t *tokens, int N, int C);

    /* out = inp * rstd * w, rstd[n] = 1/sqrt(mean_c inp^2 + eps)  | dinp += ..., dw += ... */
    void (*rmsnorm_forward)(Backend *be, void *out, void *rstd, const void *inp, const void *w,
                            int N, int C, float eps);
    void (*rmsnorm_backward)(Backend *be, void *dinp, void *dw, const void *dout, const void *inp,
                             const void *w, const void *rstd, int N, int C);

    /* out[N,out_dim] = inp[N,in_dim] @ w[out_dim,in_dim]^T
     * dinp = dout @ w (+= when accumulate_dinp), dw += dout^T @ inp (param dtype) */
    void (*matmul_forward)(Backend *be, void *out, const void *inp, const void *w, int N, int in_dim, int out_dim);
    void (*matmul_backward)(Backend *be, void *dinp, void *dw, const void *dout, const void *inp,
                            const void *w, int N, int in_dim, int out_dim, int accumulate_dinp);

    /* in place on the q and k parts of qkv[N, (H+2*Hkv)*D]; backward rotates dq, dk back */
    void (*rope_forward)(Backend *be, void *qkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta);
    void (*rope_backward)(Backend *be, void *dqkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta);

    /* out[N,H*D], lse[H,N] (param dtype, natural log of the softmax denominator, scaled scores)
     * backward overwrites dqkv[N,(H+2*Hkv)*D] */
    void (*attention_forward)(Backend *be, void *out, void *lse, const void *qkv, const int32_t *cu_seqlens,
                              int n_segs, int max_seqlen, int N, int H, int Hkv, int D);
    void (*attention_backward)(Backend *be, void *dqkv, const void *dout, const void *qkv, const void *out,
                               const void *lse, const int32_t *cu_seqlens, int n_segs, int max_seqlen,
                               int N, int H, int Hkv, int D);

    /* gate_up[N,2F] = [gate | up]; out[N,F] = silu(gate) * up */
    void (*swiglu_forward)(Backend *be, void *out, const void *gate_up, int N, int F);
    void (*swiglu_backward)(Backend *be, void *dgate_up, const void *dout, const void *gate_up, int N, int F);

    /* out = a + b, n elements of act dtype (out may alias a or b) */
    void (*add)(Backend *be, void *out, const void *a, const void *b, size_t n);

    /* losses[n] = -log softmax(logits[n])[targets[n]]   (param dtype, unweighted)
     * dlogits[n] = weights[n] * (softmax(logits[n]) - onehot(targets[n])); may alias logits */
    void (*crossentropy_forward)(Backend *be, void *losses, const void *logits, const int32_t *targets, int N, int V);
    void (*crossentropy_backward)(Backend *be, void *dlogits, const void *logits, const int32_t *targets,
                                  const float *weights, int N, int V);
    /* Optional (NULL: the model calls crossentropy_forward, then crossentropy_backward): both in
     * one pass over the logits, the same losses and dlogits (dlogits may alias logits). */
    void (*crossentropy_fused)(Backend *be, void *losses, void *dlogits, const void *logits,
                               const int32_t *targets, const float *weights, int N, int V);

    /* sum of squares of n param-dtype values, returned to the host */
    double (*sum_squares)(Backend *be, const void *x, size_t n);
    /* AdamW step t (1-based) with bias correction; gradients are multiplied by grad_scale first
     * (clipping); decoupled weight decay on every parameter. */
    void (*adamw)(Backend *be, void *params, const void *grads, void *m, void *v, size_t n,
                  const AdamWConfig *cfg, float grad_scale, int t);

    /* ---- profiling hooks, set by the runner (NULL: none): named ranges around the step's
     * phases (forward, backward, each layer, optimizer), e.g. NVTX on CUDA ---- */
    void (*range_push)(const char *name);
    void (*range_pop)(void);

    /* ---- where the time goes, by op class, since creation (NULL when the backend cannot tell
     * cheaply; the CUDA backend's breakdown comes from CUPTI's kernel records instead) ---- */
    void (*op_seconds)(Backend *be, double *matmul_s, double *attention_s);

    /* ---- timing: seconds of backend work between two marks (events on cuda, wall on cpu) ---- */
    void (*mark)(Backend *be, int slot);                    /* slot < BACKEND_MARKS */
    double (*seconds_between)(Backend *be, int slot_a, int slot_b);

    /* ---- which attention runs ----
     * set_attention (NULL: the backend has one): "auto" (cuDNN's fused kernels where they load and
     * take the shape, else the backend's own), "cudnn" or "wmma"; -1 with why in err when the one
     * asked for cannot run here. attention_prepare (NULL: nothing to do) readies a micro-batch's
     * shape before a timed region (cuDNN builds its graphs). attention_desc: what runs and why
     * ("" where there is no choice), for the results. */
    int (*set_attention)(Backend *be, const char *mode, char *err, size_t errlen);
    void (*attention_prepare)(Backend *be, int n_segs, int max_seqlen, int N, int H, int Hkv, int D);
    char attention_desc[512];
};

#define BACKEND_MARKS 8

/* CPU backend: param_dtype = act_dtype = dtype (DT_F32, or DT_F64 for gradient checks). */
Backend *backend_cpu_create(DType dtype, char *err, size_t errlen);
/* CUDA backend: act_dtype DT_BF16 or DT_F32. NULL with a reason in err when no usable GPU, or
 * when labench was built without nvcc. */
Backend *backend_cuda_create(DType act_dtype, int device, char *err, size_t errlen);
/* 1 when this binary was built with the CUDA backend. */
int backend_cuda_compiled(void);

#endif
