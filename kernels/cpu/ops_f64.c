/* The CPU ops in double precision: gradient checks against finite differences. */
#define real double
#define ireal int64_t       /* the signed integer as wide as real (vector lane masks) */
#define REAL_SFX f64
#define REAL_POLY_EXP 0     /* attention's exp: libm, for results within 1e-13 of the naive ones */
#define cblas_gemm cblas_dgemm
#include "kernels/cpu/ops_impl.h"
