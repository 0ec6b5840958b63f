/* Launchers of the pointwise and row-wise ops (kernels in ops_kernels.cuh): grid shapes, the
 * dispatch on the activation type, and the host side of sum_squares and AdamW. */
#include <math.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops_kernels.cuh"

template <typename T>
static void launch_embedding_forward(Backend *be, void *out, const int32_t *tokens, const void *wte, int N, int C)
{
    embedding_forward_kernel<T><<<grid_for(be, (size_t)N * C, 256), 256, 0, cuda_stream(be)>>>(
        (T *)out, tokens, (const T *)wte, N, C);
    CUDA_LAUNCH_CHECK();
}

template <typename T>
static void launch_embedding_backward(Backend *be, void *dwte, const void *dout, const int32_t *tokens, int N, int C)
{
    embedding_backward_kernel<T><<<grid_for(be, (size_t)N * C, 256), 256, 0, cuda_stream(be)>>>(
        (float *)dwte, (const T *)dout, tokens, N, C);
    CUDA_LAUNCH_CHECK();
}

void cuda_embedding_forward(Backend *be, void *out, const int32_t *tokens, const void *wte, int N, int C)
{
    if (N <= 0) return;
    DISPATCH_ACT(be, launch_embedding_forward, be, out, tokens, wte, N, C);
}

void cuda_embedding_backward(Backend *be, void *dwte, const void *dout, const int32_t *tokens, int N, int C)
{
    if (N <= 0) return;
    DISPATCH_ACT(be, launch_embedding_backward, be, dwte, dout, tokens, N, C);
}

template <typename T>
static void launch_rmsnorm_forward(Backend *be, void *out, void *rstd, const void *inp, const void *w, int N, int C, float eps)
{
    rmsnorm_forward_kernel<T><<<N, NORM_THREADS, 0, cuda_stream(be)>>>((T *)out, (float *)rstd, (const T *)inp,
                                                                       (const T *)w, C, eps);
    CUDA_LAUNCH_CHECK();
}

template <typename T>
static void launch_rmsnorm_backward(Backend *be, void *dinp, void *dw, const void *dout, const void *inp, const void *w,
                                    const void *rstd, int N, int C)
{
    /* dw first: should dinp alias dout, the dinp kernel would overwrite dout */
    if (dw) {
        dim3 grid(ceil_div((size_t)C, 256), ceil_div((size_t)N, NORM_DW_ROWS));
        rmsnorm_backward_dw_kernel<T><<<grid, 256, 0, cuda_stream(be)>>>((float *)dw, (const T *)dout, (const T *)inp,
                                                                         (const float *)rstd, N, C);
        CUDA_LAUNCH_CHECK();
    }
    if (dinp) {
        rmsnorm_backward_dinp_kernel<T><<<N, NORM_THREADS, 0, cuda_stream(be)>>>(
            (T *)dinp, (const T *)dout, (const T *)inp, (const T *)w, (const float *)rstd, C);
        CUDA_LAUNCH_CHECK();
    }
}

void cuda_rmsnorm_forward(Backend *be, void *out, void *rstd, const void *inp, const void *w, int N, int C, float eps)
{
    if (N <= 0) return;
    DISPATCH_ACT(be, launch_rmsnorm_forward, be, out, rstd, inp, w, N, C, eps);
}

void cuda_rmsnorm_backward(Backend *be, void *dinp, void *dw, const void *dout, const void *inp, const void *w,
                           const void *rstd, int N, int C)
{
    if (N <= 0) return;
    DISPATCH_ACT(be, launch_rmsnorm_backward, be, dinp, dw, dout, inp, w, rstd, N, C);
}

template <typename T>
static void launch_rope(Backend *be, void *qkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta, double sign)
{
    rope_kernel<T><<<grid_for(be, (size_t)N * (D / 2), 256), 256, 0, cuda_stream(be)>>>((T *)qkv, pos, N, H, Hkv, D,
                                                                                       theta, sign);
    CUDA_LAUNCH_CHECK();
}

void cuda_rope_forward(Backend *be, void *qkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta)
{
    if (N <= 0 || D < 2) return;
    DISPATCH_ACT(be, launch_rope, be, qkv, pos, N, H, Hkv, D, theta, 1.0);
}

void cuda_rope_backward(Backend *be, void *dqkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta)
{
    if (N <= 0 || D < 2) return;
    DISPATCH_ACT(be, launch_rope, be, dqkv, pos, N, H, Hkv, D, theta, -1.0);
}

template <typename T>
static void launch_swiglu_forward(Backend *be, void *out, const void *gate_up, int N, int F)
{
    swiglu_forward_kernel<T><<<grid_for(be, (size_t)N * F, 256), 256, 0, cuda_stream(be)>>>((T *)out, (const T *)gate_up,
                                                                                           N, F);
    CUDA_LAUNCH_CHECK();
}

template <typename T>
static void launch_swiglu_backward(Backend *be, void *dgate_up, const void *dout, const void *gate_up, int N, int F)
{
    swiglu_backward_kernel<T><<<grid_for(be, (size_t)N * F, 256), 256, 0, cuda_stream(be)>>>(
        (T *)dgate_up, (const T *)dout, (const T *)gate_up, N, F);
    CUDA_LAUNCH_CHECK();
}

void cuda_swiglu_forward(Backend *be, void *out, const void *gate_up, int N, int F)
{
    if (N <= 0) return;
    DISPATCH_ACT(be, launch_swiglu_forward, be, out, gate_up, N, F);
}

void cuda_swiglu_backward(Backend *be, void *dgate_up, const void *dout, const void *gate_up, int N, int F)
{
    if (N <= 0) return;
    DISPATCH_ACT(be, launch_swiglu_backward, be, dgate_up, dout, gate_up, N, F);
}

template <typename T>
static void launch_add(Backend *be, void *out, const void *a, const void *b, size_t n)
{
    add_kernel<T><<<grid_for(be, n, 256), 256, 0, cuda_stream(be)>>>((T *)out, (const T *)a, (const T *)b, n);
    CUDA_LAUNCH_CHECK();
}

void cuda_add(Backend *be, void *out, const void *a, const void *b, size_t n)
{
    if (n == 0) return;
    DISPATCH_ACT(be, launch_add, be, out, a, b, n);
}

template <typename T>
static void launch_crossentropy_forward(Backend *be, void *losses, const void *logits, const int32_t *targets, int N, int V)
{
    crossentropy_forward_kernel<T><<<N, CE_THREADS, 0, cuda_stream(be)>>>((float *)losses, (const T *)logits, targets, V);
    CUDA_LAUNCH_CHECK();
}

template <typename T>
static void launch_crossentropy_backward(Backend *be, void *dlogits, const void *logits, const int32_t *targets,
                                         const float *weights, int N, int V)
{
    crossentropy_backward_kernel<T><<<N, CE_THREADS, 0, cuda_stream(be)>>>((T *)dlogits, (const T *)logits, targets,
                                                                           weights, V);
    CUDA_LAUNCH_CHECK();
}

void cuda_crossentropy_forward(Backend *be, void *losses, const void *logits, const int32_t *targets, int N, int V)
{
    if (N <= 0) return;
    DISPATCH_ACT(be, launch_crossentropy_forward, be, losses, logits, targets, N, V);
}

void cuda_crossentropy_backward(Backend *be, void *dlogits, const void *logits, const int32_t *targets,
                                const float *weights, int N, int V)
{
    if (N <= 0) return;
    DISPATCH_ACT(be, launch_crossentropy_backward, be, dlogits, logits, targets, weights, N, V);
}

double cuda_sum_squares(Backend *be, const void *x, size_t n)
{
    if (n == 0) return 0.0;
    CudaImpl *im = cuda_impl(be);
    size_t blocks = (n + 256 * 8 - 1) / (256 * 8);   /* at least ~8 elements per thread */
    if (blocks > SS_MAX_BLOCKS) blocks = SS_MAX_BLOCKS;
    sum_squares_kernel<<<(unsigned)blocks, 256, 0, im->stream>>>(im->ss_partial, (const float *)x, n);
    CUDA_LAUNCH_CHECK();
    CUDA_CHECK(cudaMemcpyAsync(im->ss_host, im->ss_partial, blocks * sizeof(double), cudaMemcpyDeviceToHost, im->stream));
    CUDA_CHECK(cudaStreamSynchronize(im->stream));
    double total = 0.0;
    for (size_t b = 0; b < blocks; b++) total += im->ss_host[b];
    return total;
}

void cuda_adamw(Backend *be, void *params, const void *grads, void *m, void *v, size_t n, const AdamWConfig *cfg,
                float grad_scale, int t)
{
    if (n == 0) return;
    const float bc1 = (float)(1.0 - pow((double)cfg->beta1, t));
    const float bc2 = (float)(1.0 - pow((double)cfg->beta2, t));
    adamw_kernel<<<grid_for(be, n, 256), 256, 0, cuda_stream(be)>>>((float *)params, (const float *)grads, (float *)m,
                                                                     (float *)v, n, cfg->lr, cfg->beta1, cfg->beta2,
                                                                     cfg->eps, cfg->weight_decay, grad_scale, bc1, bc2);
    CUDA_LAUNCH_CHECK();
}

void cuda_cast(Backend *be, void *dst, DType dst_type, const void *src, DType src_type, size_t n)
{
    if (n == 0) return;
    if (dst_type == src_type) {
        CUDA_CHECK(cudaMemcpyAsync(dst, src, n * dtype_size(dst_type), cudaMemcpyDeviceToDevice, cuda_stream(be)));
        return;
    }
    const unsigned grid = grid_for(be, n, 256);
    if (dst_type == DT_BF16 && src_type == DT_F32)
        cast_kernel<<<grid, 256, 0, cuda_stream(be)>>>((__nv_bfloat16 *)dst, (const float *)src, n);
    else if (dst_type == DT_F32 && src_type == DT_BF16)
        cast_kernel<<<grid, 256, 0, cuda_stream(be)>>>((float *)dst, (const __nv_bfloat16 *)src, n);
    else {
        fprintf(stderr, "labench: internal error: the CUDA backend casts only between f32 and bf16 (asked %s -> %s)\n",
                dtype_name(src_type), dtype_name(dst_type));
        abort();
    }
    CUDA_LAUNCH_CHECK();
}

cudaError_t cuda_ops_probe(void)
{
    cudaFuncAttributes attr;
    return cudaFuncGetAttributes(&attr, add_kernel<float>);
}
