/* Built without CUDA: nothing to measure, so the communication figures stay modelled. */
#include <stdio.h>

#include "bench/comm/bandwidth.h"

int comm_measure_pcie(double *h2d_Bps, double *d2h_Bps, char *err, size_t errlen)
{
    *h2d_Bps = *d2h_Bps = 0;
    snprintf(err, errlen, "built without CUDA: PCIe bandwidth not measured");
    return -1;
}

int comm_measure_collectives(int n_gpus, size_t bytes, double *allreduce_bus_Bps, double *allgather_bus_Bps,
                             char *err, size_t errlen)
{
    (void)n_gpus;
    (void)bytes;
    *allreduce_bus_Bps = *allgather_bus_Bps = 0;
    snprintf(err, errlen, "built without CUDA: collectives not measured");
    return -1;
}
