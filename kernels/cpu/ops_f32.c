/* The CPU ops in single precision: the reference backend for runs. */
#define real float
#define REAL_SFX f32
#define cblas_gemm cblas_sgemm
#include "kernels/cpu/ops_impl.h"
