/* The world of real data parallelism (`mpirun -np W labench --dp real ...`): ranks, the control
 * plane over MPI (an arrival barrier with a timeout, one rank's error told to every rank, gathers
 * to rank 0), and the MPI collectives on host memory that the CPU backend uses.
 *   bench/comm/world_mpi.c     over MPI
 *   bench/comm/world_nompi.c   the same entry points in a labench built without MPI: they say how
 *                              to get it
 * Every collective is preceded by dp_sync: all ranks have arrived, none has failed. So a rank that
 * fails or stops makes every rank exit 2 with its message within a sync point or the timeout,
 * never a hang: this is the one documented fatal path below the CLI. */
#ifndef LABENCH_WORLD_H
#define LABENCH_WORLD_H

#include <stddef.h>

#include "kernels/backend.h"

/* The exit status of that fatal path: the CLI's EXIT_BAD_INPUT. */
#define DP_EXIT_STATUS 2

/* ---- the launch and the control plane  ---- */

typedef struct {
    int rank, size;              /* in the job */
    int local_rank, local_size;  /* among the ranks on this host */
    char host[64];
    char library[160];           /* the MPI library, e.g. "Open MPI v4.1.4" */
} DpWorld;

/* 1 when this labench was built with MPI. */
int dp_mpi_compiled(void);

/* Ranks of the job the launcher's environment describes (mpirun, srun, Hydra/PMI, MVAPICH), with
 * its name in launcher; 0 when this process was not started as part of one. No MPI needed. */
int dp_launcher_size(char *launcher, size_t n);

/* Initializes MPI (a singleton of one rank without a launcher) and the control plane: from now on
 * any exit with an error status reaches every rank (dp_fail; the CLI points die_input at it).
 * timeout_s bounds every wait at a sync point. 0, or -1 with err (built without MPI: how to get it). */
int dp_world_init(DpWorld *w, double timeout_s, char *err, size_t errlen);
/* A last sync point, then MPI_Finalize. */
void dp_world_finalize(void);

/* The arrival barrier before a collective (its caller times the wait: dp.c's sync_here). When a rank failed, every rank prints its message and exits 2; when a rank has not arrived
 * within the timeout, every rank that can prints which one and where, and the job ends with
 * status 2. `what` names the sync point in those messages. Never returns in either case. */
void dp_sync(const char *what);
/* This rank cannot go on: prints msg, tells every rank (at their next sync point), exits 2. */
void dp_fail(const char *msg) __attribute__((noreturn));

/* Control-plane collectives on host memory. Each runs its own dp_sync first (not timed). */
void dp_allgather_bytes(const void *send, size_t bytes, void *recv);   /* recv: size x bytes */
void dp_allreduce_f64(double *x, int n);                                /* in place, sum */
/* Rank 0 gets every rank's bytes end to end (malloc'ed, lens[r] each); NULL on the others. */
void *dp_gather_bytes(const void *send, size_t bytes, size_t *lens);

/* The data plane of the CPU backend: MPI collectives on host memory, in place where it says so.
 * The caller runs dp_sync first (to time the wait apart). dt: DT_F32 or DT_F64. */
void dp_host_all_reduce_sum(void *buf, size_t n, DType dt);
void dp_host_all_gather(const void *send, void *recv, size_t n_per_rank, DType dt);
void dp_host_reduce_scatter_sum(const void *send, void *recv, size_t n_per_rank, DType dt);

#endif
