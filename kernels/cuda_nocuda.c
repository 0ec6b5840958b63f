/* The CUDA backend's entry points in a labench built without nvcc: they say why there is no GPU
 * backend instead of failing to link. */
#include <stdio.h>

#include "kernels/backend.h"

Backend *backend_cuda_create(DType act_dtype, int device, char *err, size_t errlen)
{
    (void)act_dtype;
    (void)device;
    if (err && errlen)
        snprintf(err, errlen, "this labench was built without CUDA (nvcc not found at build time); "
                 "rebuild with CUDA_HOME set, or use --backend cpu");
    return NULL;
}

int backend_cuda_compiled(void) { return 0; }

/* see kernels/cuda/backend_cuda.cu; never reached, since no CUDA backend can exist here */
size_t backend_cuda_device_used_peak(Backend *be)
{
    (void)be;
    return 0;
}

/* see kernels/cuda/backend_cuda.cu; never reached either */
int backend_cuda_attention_wmma(Backend *be)
{
    (void)be;
    return 0;
}
