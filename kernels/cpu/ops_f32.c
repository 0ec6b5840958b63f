/* The CPU ops in single precision: the reference backend for runs. */
#define real float
#define ireal int32_t       /* the signed integer as wide as real (vector lane masks) */
#define REAL_SFX f32
#define REAL_POLY_EXP 1     /* attention's exp: the vectorized polynomial (see ops_impl.h) */
#define cblas_gemm cblas_sgemm
#include "kernels/cpu/ops_impl.h"
