/* The CPU backend's ops on plain host arrays, in f32 and f64.
 *
 * Each op is written once in kernels/cpu/ops_impl.h over a `real` type and compiled twice
 * (ops_f32.c, ops_f64.c), giving cpu_<op>_f32 and cpu_<op>_f64. backend_cpu.c wraps them in
 * the Backend table; tests call the f64 versions directly to check gradients against finite
 * differences. Shapes, layouts and the "+=" conventions are those of kernels/backend.h.
 *
 * Extras over backend.h: matmul_backward skips dinp or dw when it is NULL, and cross-entropy
 * treats a target outside [0, V) as ignored (loss 0, gradient 0).
 */
#ifndef LABENCH_CPU_OPS_H
#define LABENCH_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/backend.h"

/* Attention works on CPU_ATTN_TILE x CPU_ATTN_TILE blocks of a segment's score matrix; the
 * tests use segments longer than two tiles to exercise the multi-tile paths. */
#define CPU_ATTN_TILE 64

/* Declares every op for one element type; expanded below for float/f32 and double/f64. */
#define CPU_OPS_DECLARE(real, sfx) \
    void cpu_embedding_forward_##sfx(real *out, const int32_t *tokens, const real *wte, int N, int C); \
    void cpu_embedding_backward_##sfx(real *dwte, const real *dout, const int32_t *tokens, int N, int C); \
    void cpu_rmsnorm_forward_##sfx(real *out, real *rstd, const real *inp, const real *w, \
                                   int N, int C, float eps); \
    void cpu_rmsnorm_backward_##sfx(real *dinp, real *dw, const real *dout, const real *inp, \
                                    const real *w, const real *rstd, int N, int C); \
    void cpu_matmul_forward_##sfx(real *out, const real *inp, const real *w, int N, int I, int O); \
    void cpu_matmul_backward_##sfx(real *dinp, real *dw, const real *dout, const real *inp, \
                                   const real *w, int N, int I, int O, int accumulate_dinp); \
    void cpu_rope_forward_##sfx(real *qkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta); \
    void cpu_rope_backward_##sfx(real *dqkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta); \
    void cpu_attention_forward_##sfx(real *out, real *lse, const real *qkv, const int32_t *cu_seqlens, \
                                     int n_segs, int N, int H, int Hkv, int D); \
    void cpu_attention_backward_##sfx(real *dqkv, const real *dout, const real *qkv, const real *out, \
                                      const real *lse, const int32_t *cu_seqlens, int n_segs, \
                                      int N, int H, int Hkv, int D); \
    void cpu_swiglu_forward_##sfx(real *out, const real *gate_up, int N, int F); \
    void cpu_swiglu_backward_##sfx(real *dgate_up, const real *dout, const real *gate_up, int N, int F); \
    void cpu_add_##sfx(real *out, const real *a, const real *b, size_t n); \
    void cpu_crossentropy_forward_##sfx(real *losses, const real *logits, const int32_t *targets, \
                                        int N, int V); \
    void cpu_crossentropy_backward_##sfx(real *dlogits, const real *logits, const int32_t *targets, \
                                         const float *weights, int N, int V); \
    void cpu_crossentropy_fused_##sfx(real *losses, real *dlogits, const real *logits, \
                                      const int32_t *targets, const float *weights, int N, int V); \
    double cpu_sum_squares_##sfx(const real *x, size_t n); \
    void cpu_adamw_##sfx(real *params, const real *grads, real *m, real *v, size_t n, \
                         const AdamWConfig *cfg, float grad_scale, int t);

CPU_OPS_DECLARE(float, f32)
CPU_OPS_DECLARE(double, f64)

#endif
