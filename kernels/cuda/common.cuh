/* Host-side pieces shared by the CUDA backend's files: error checks, the backend's private
 * state, launch helpers, and the launchers that backend_cuda.cu wires into the Backend table.
 * Device helpers are in device.cuh; kernels in ops_kernels.cuh and attention_kernels.cuh.
 *
 * Element types: activations are `T` = float or __nv_bfloat16 (the backend's act_dtype, chosen
 * at creation); parameters, their gradients, Adam moments and per-row statistics are float.
 * Every kernel computes in f32 and rounds only when it stores a T.
 */
#ifndef LABENCH_CUDA_COMMON_CUH
#define LABENCH_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "kernels/backend.h"
}
#include "kernels/cuda/device.cuh"

/* ---- errors: an op has no way to report failure, so a CUDA error inside one ends the run ---- */

static inline void cuda_check_(cudaError_t e, const char *what, const char *file, int line)
{
    if (e != cudaSuccess) {
        fprintf(stderr, "labench: CUDA error at %s:%d (%s): %s\n", file, line, what, cudaGetErrorString(e));
        exit(1);
    }
}
#define CUDA_CHECK(call) cuda_check_((call), #call, __FILE__, __LINE__)
/* after every launch: catches bad launch configurations right away */
#define CUDA_LAUNCH_CHECK() cuda_check_(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

static inline void cublas_check_(cublasStatus_t s, const char *what, const char *file, int line)
{
    if (s != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "labench: cuBLAS error at %s:%d (%s): status %d\n", file, line, what, (int)s);
        exit(1);
    }
}
#define CUBLAS_CHECK(call) cublas_check_((call), #call, __FILE__, __LINE__)

/* ---- the backend's private state ---- */

typedef struct {
    char *base;
    size_t size, used;          /* bump pointer: blocks are carved from [base, base + used) */
} ArenaChunk;

typedef struct {
    char *ptr;
    size_t bytes;               /* rounded size, what bytes_in_use counts */
    int live;                   /* 0: on the free list, reusable by a later alloc of <= bytes */
} ArenaBlock;

typedef struct {
    int device;
    int num_sms;
    cudaStream_t stream;        /* every op, copy and memset runs on this one stream */
    cublasHandle_t cublas;
    cudaEvent_t marks[BACKEND_MARKS];

    ArenaChunk *chunks;
    int n_chunks, cap_chunks;
    ArenaBlock *blocks;
    int n_blocks, cap_blocks;
    size_t in_use, peak;
    size_t device_used_at_peak; /* cudaMemGetInfo's used bytes, sampled when the arena grows */

    int attn_wmma;              /* 1: bf16 attention with D = 64 or 128 runs on the tensor cores */
    /* cuDNN attention (attention_cudnn.cu): the mode asked for, cuDNN's state (NULL: not
     * loaded), what runs as a sentence (be->attention_desc is it, plus the calls cuDNN declined) */
    int attn_mode;              /* ATTN_MODE_* */
    void *cudnn;
    char attn_base[400];
    long attn_declined;
    void *scratch;              /* the attention backward's scratch, from the arena; grows only */
    size_t scratch_bytes;
    double *ss_partial;         /* [SS_MAX_BLOCKS] per-block partial sums of sum_squares */
    double *ss_host;
    char peak_src[256];
} CudaImpl;

static inline CudaImpl *cuda_impl(Backend *be) { return (CudaImpl *)be->impl; }
static inline cudaStream_t cuda_stream(Backend *be) { return cuda_impl(be)->stream; }

#define SS_MAX_BLOCKS 1024

static inline unsigned ceil_div(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

/* Grid for a grid-stride elementwise kernel over n items: enough blocks to fill the GPU a few
 * times over, never more than needed. */
static inline unsigned grid_for(Backend *be, size_t n, int threads)
{
    size_t need = (n + (size_t)threads - 1) / (size_t)threads;
    size_t cap = (size_t)cuda_impl(be)->num_sms * 32;
    if (need > cap) need = cap;
    return need ? (unsigned)need : 1u;
}

/* Calls launch<float>(...) or launch<__nv_bfloat16>(...) by the backend's activation type. */
#define DISPATCH_ACT(be, launch, ...) do { \
    if ((be)->act_dtype == DT_BF16) launch<__nv_bfloat16>(__VA_ARGS__); \
    else launch<float>(__VA_ARGS__); \
} while (0)

/* backend_cuda.cu: a scratch buffer of at least `bytes` from the arena, kept between calls and
 * grown (never shrunk) as needed, so that micro-batches of varying size do not leave a trail of
 * differently sized free blocks; its bytes count in bytes_in_use. Contents are undefined. NULL
 * when the device is out of memory. */
void *cuda_scratch(Backend *be, size_t bytes);

/* ---- launchers (one file each: ops.cu, matmul.cu, attention.cu) ---- */

/* ops.cu */
void cuda_embedding_forward(Backend *be, void *out, const int32_t *tokens, const void *wte, int N, int C);
void cuda_embedding_backward(Backend *be, void *dwte, const void *dout, const int32_t *tokens, int N, int C);
void cuda_rmsnorm_forward(Backend *be, void *out, void *rstd, const void *inp, const void *w, int N, int C, float eps);
void cuda_rmsnorm_backward(Backend *be, void *dinp, void *dw, const void *dout, const void *inp, const void *w,
                           const void *rstd, int N, int C);
void cuda_rope_forward(Backend *be, void *qkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta);
void cuda_rope_backward(Backend *be, void *dqkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta);
void cuda_swiglu_forward(Backend *be, void *out, const void *gate_up, int N, int F);
void cuda_swiglu_backward(Backend *be, void *dgate_up, const void *dout, const void *gate_up, int N, int F);
void cuda_add(Backend *be, void *out, const void *a, const void *b, size_t n);
void cuda_crossentropy_forward(Backend *be, void *losses, const void *logits, const int32_t *targets, int N, int V);
void cuda_crossentropy_backward(Backend *be, void *dlogits, const void *logits, const int32_t *targets,
                                const float *weights, int N, int V);
double cuda_sum_squares(Backend *be, const void *x, size_t n);
void cuda_adamw(Backend *be, void *params, const void *grads, void *m, void *v, size_t n,
                const AdamWConfig *cfg, float grad_scale, int t);
void cuda_cast(Backend *be, void *dst, DType dst_type, const void *src, DType src_type, size_t n);
/* cudaSuccess when this binary holds code the current device can run */
cudaError_t cuda_ops_probe(void);

/* matmul.cu */
void cuda_matmul_forward(Backend *be, void *out, const void *inp, const void *w, int N, int I, int O);
void cuda_matmul_backward(Backend *be, void *dinp, void *dw, const void *dout, const void *inp, const void *w,
                          int N, int I, int O, int accumulate_dinp);

/* attention_cudnn.cu: cuDNN's fused attention. load: dlopen libcudnn, a handle on the backend's
 * stream; 0 with what was loaded in why, or -1 with why not. forward / backward: 1 when cuDNN ran
 * the op, 0 when it does not take this shape (why says so; nothing was launched). prepare builds
 * (and caches) both graphs of a shape ahead of a timed region: 1, or 0 with why. */
enum { ATTN_MODE_AUTO = 0, ATTN_MODE_CUDNN = 1, ATTN_MODE_WMMA = 2 };
extern "C" int cuda_cudnn_attention_load(Backend *be, char *why, size_t whylen);
extern "C" void cuda_cudnn_attention_free(Backend *be);
extern "C" int cuda_cudnn_attention_prepare(Backend *be, int n_segs, int max_seqlen, int N, int H, int Hkv, int D,
                                            char *why, size_t whylen);
extern "C" int cuda_cudnn_attention_forward(Backend *be, void *out, void *lse, const void *qkv, const int32_t *cu,
                                            int n_segs, int max_seqlen, int N, int H, int Hkv, int D, char *why,
                                            size_t whylen);
extern "C" int cuda_cudnn_attention_backward(Backend *be, void *dqkv, const void *dout, const void *qkv,
                                             const void *out, const void *lse, const int32_t *cu, int n_segs,
                                             int max_seqlen, int N, int H, int Hkv, int D, char *why, size_t whylen);
/* attention.cu: a shape cuDNN declined in auto mode is counted and named in attention_desc; in
 * cudnn mode it ends the run (exit 2) with why */
void cuda_attention_cudnn_declined(Backend *be, const char *why);

/* attention.cu */
/* Opts the attention kernels into the dynamic shared memory they need; -1 with err if the
 * device cannot give it to the scalar kernels. *wmma is set to 1 when the tensor-core kernels
 * can run too (enough shared memory) and LABENCH_ATTN is not "scalar". */
int cuda_attention_setup(int device, int *wmma, char *err, size_t errlen);
void cuda_attention_forward(Backend *be, void *out, void *lse, const void *qkv, const int32_t *cu_seqlens,
                            int n_segs, int max_seqlen, int N, int H, int Hkv, int D);
void cuda_attention_backward(Backend *be, void *dqkv, const void *dout, const void *qkv, const void *out,
                             const void *lse, const int32_t *cu_seqlens, int n_segs, int max_seqlen,
                             int N, int H, int Hkv, int D);

#endif
