/* --dp real in a labench built without MPI (NOMPI=1, or no MPI found at build time): the entry
 * points of bench/comm/world_mpi.c say how to get it; nothing else of labench needs MPI. */
#include <stdio.h>
#include <stdlib.h>

#include "bench/comm/world.h"

int dp_mpi_compiled(void) { return 0; }

int dp_world_init(DpWorld *w, double timeout_s, char *err, size_t errlen)
{
    (void)w;
    (void)timeout_s;
    snprintf(err, errlen,
             "this labench was built without MPI (NOMPI=1, or no mpicc / pkg-config ompi at build time). Install "
             "Open MPI (scripts/setup.sh installs openmpi-bin and libopenmpi-dev), rebuild with `make`, and start "
             "it with `mpirun -np W labench --dp real ...`; or leave out --dp real for the simulation");
    return -1;
}

void dp_world_finalize(void) {}

/* Never reached: without dp_world_init there is no real run. */
static void unreachable(void)
{
    fprintf(stderr, "labench: internal error: --dp real machinery called in a labench built without MPI\n");
    abort();
}

void dp_sync(const char *what)
{
    (void)what;
    unreachable();
}

void dp_fail(const char *msg)
{
    fprintf(stderr, "labench: %s\n", msg);
    exit(DP_EXIT_STATUS);
}

void dp_allgather_bytes(const void *send, size_t bytes, void *recv)
{
    (void)send, (void)bytes, (void)recv;
    unreachable();
}

void dp_allreduce_f64(double *x, int n)
{
    (void)x, (void)n;
    unreachable();
}

void *dp_gather_bytes(const void *send, size_t bytes, size_t *lens)
{
    (void)send, (void)bytes, (void)lens;
    unreachable();
    return NULL;
}

void dp_host_all_reduce_sum(void *buf, size_t n, DType dt)
{
    (void)buf, (void)n, (void)dt;
    unreachable();
}

void dp_host_all_gather(const void *send, void *recv, size_t n_per_rank, DType dt)
{
    (void)send, (void)recv, (void)n_per_rank, (void)dt;
    unreachable();
}

void dp_host_reduce_scatter_sum(const void *send, void *recv, size_t n_per_rank, DType dt)
{
    (void)send, (void)recv, (void)n_per_rank, (void)dt;
    unreachable();
}
