/* matmul through cuBLAS: out[N,O] = inp[N,I] @ w[O,I]^T, and its backward.
 *
 * cuBLAS is column-major; our tensors are row-major. A row-major [r, c] buffer read as
 * column-major is its transpose [c, r] with leading dimension c. So every product is computed
 * transposed, in column-major terms (X' = the column-major view of row-major buffer X):
 *
 *   forward   out' [O,N] = w [O,I] @ inp' [I,N]       w' is [I,O]: op T;   inp' op N
 *             gemm(T, N, m=O, n=N, k=I, A=w lda=I, B=inp ldb=I, C=out ldc=O)
 *   dinp      dinp'[I,N] = w' [I,O] @ dout'[O,N]      both op N
 *             gemm(N, N, m=I, n=N, k=O, A=w lda=I, B=dout ldb=O, C=dinp ldc=I)
 *   dw        dw'  [I,O] = inp'[I,N] @ dout'^T [N,O]   inp' op N; dout' op T
 *             gemm(N, T, m=I, n=O, k=N, A=inp lda=I, B=dout ldb=O, C=dw ldc=I), beta = 1
 *
 * Types: in bf16 mode A and B are bf16 with f32 accumulation (CUBLAS_COMPUTE_32F runs them on
 * the tensor cores); dw is f32 with beta = 1, so gradients accumulate across micro-batches in
 * f32. In f32 mode everything is f32 and CUBLAS_COMPUTE_32F (not _FAST_TF32) keeps cuBLAS off
 * TF32, so results match the CPU reference to f32 rounding.
 */
#include "kernels/cuda/common.cuh"

static cudaDataType_t act_type(Backend *be) { return be->act_dtype == DT_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

static void gemm(Backend *be, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                 const void *A, cudaDataType_t at, int lda, const void *B, cudaDataType_t bt, int ldb,
                 float beta, void *C, cudaDataType_t ct, int ldc)
{
    const float alpha = 1.0f;
    CUBLAS_CHECK(cublasGemmEx(cuda_impl(be)->cublas, ta, tb, m, n, k, &alpha, A, at, lda, B, bt, ldb, &beta,
                              C, ct, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void cuda_matmul_forward(Backend *be, void *out, const void *inp, const void *w, int N, int I, int O)
{
    if (N <= 0 || I <= 0 || O <= 0) return;
    const cudaDataType_t t = act_type(be);
    gemm(be, CUBLAS_OP_T, CUBLAS_OP_N, O, N, I, w, t, I, inp, t, I, 0.0f, out, t, O);
}

/* dinp (act dtype) is skipped when NULL, and so is dw (f32): the CPU backend does the same */
void cuda_matmul_backward(Backend *be, void *dinp, void *dw, const void *dout, const void *inp, const void *w,
                          int N, int I, int O, int accumulate_dinp)
{
    if (N <= 0 || I <= 0 || O <= 0) return;
    const cudaDataType_t t = act_type(be);
    if (dinp) gemm(be, CUBLAS_OP_N, CUBLAS_OP_N, I, N, O, w, t, I, dout, t, O, accumulate_dinp ? 1.0f : 0.0f, dinp, t, I);
    if (dw) gemm(be, CUBLAS_OP_N, CUBLAS_OP_T, I, O, N, inp, t, I, dout, t, O, 1.0f, dw, CUDA_R_32F, I);
}
