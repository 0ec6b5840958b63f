/* The CPU ops in double precision: gradient checks against finite differences. */
#define real double
#define REAL_SFX f64
#define cblas_gemm cblas_dgemm
#include "kernels/cpu/ops_impl.h"
