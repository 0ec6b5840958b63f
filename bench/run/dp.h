/* Real data parallelism (`mpirun -np W labench --dp real ...`): W processes, one per device, each
 * running only its own rank's micro-batches of the same plan, with real collectives at the sync
 * points in the pattern --comm names, and the waiting and the collectives measured apart. The
 * default, `--dp simulated`, stays what bench/run/run.c does: one device plays every rank in turn.
 *
 *   bench/run/dp.c          the runner of one rank, its records, the real metrics beside the simulated
 *                       ones from the same compute, the results JSON and the Chrome trace
 *   bench/comm/world_mpi.c      the launch and control plane over MPI (ranks, an arrival barrier with a
 *                       timeout, one rank's error told to every rank, gathers to rank 0), and the
 *                       MPI collectives on host memory that the CPU backend uses
 *   bench/comm/world_nompi.c    the same entry points in a labench built without MPI: they say how to get it
 *   bench/comm/nccl_cuda.c NCCL collectives on GPU memory (libnccl.so.2, loaded at run time)
 *
 * Every collective, of the control plane or of the data, is preceded by dp_sync: all ranks have
 * arrived, none has failed. So a rank that fails or stops makes every rank exit 2 with its message
 * within a sync point or the timeout, never a hang. docs/communication.md, "Real data parallelism". */
#ifndef LABENCH_DP_H
#define LABENCH_DP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/comm/comm_model.h"
#include "bench/comm/world.h"
#include "bench/analysis/run_metrics.h"
#include "bench/run/run.h"
#include "kernels/backend.h"
#include "profile/trace.h"

typedef enum { DP_SIMULATED = 0, DP_REAL = 1 } DpMode;

#define DP_DEFAULT_TIMEOUT_S 600.0

/* ---- the launch, checked (bench/run/dp.c) ---- */

/* The GPU of this rank: its local rank when the host shows at least local_size GPUs; GPU 0 when
 * each rank sees exactly one (a launcher that binds one GPU per task); with share, local rank mod
 * the GPUs. 0, or -1 with err: more ranks than GPUs on the host without share. */
int dp_pick_gpu(const DpWorld *w, int share, int *device, char *err, size_t errlen);

/* Every rank's host, backend and device (the GPU index, -1 on the CPU backend), gathered to all
 * (a sync point). Fails the job (exit 2 on every rank) when the ranks opened different backends,
 * or two ranks on one host use the same GPU without share. */
typedef struct {
    int size;
    char (*host)[64];
    char (*device)[128];
} DpRanks;
void dp_ranks_check(const DpWorld *w, const Backend *be, int device, int share, DpRanks *out);
void dp_ranks_free(DpRanks *r);

/* ---- one rank's run (bench/run/dp.c) ---- */

typedef struct {
    const DpWorld *world;
    const DpRanks *ranks;
    double timeout_s;
    int check;               /* --dp-check: parameter checksums compared across ranks after every step */
    CommKind pattern;        /* COMM_DDP, COMM_ZERO3 or COMM_ZERO3_OFFLOAD */
    CommConfig comm;         /* the model of the simulated figures beside the measured ones */
    struct NcclComm *nccl;   /* CUDA backend: collectives on GPU memory; NULL: MPI on host memory */
    char transport[640];     /* what moves the data, for the results */
} DpRunConfig;

/* Per rank and micro-step (step level: micro = -1), measured on the host. */
typedef struct {
    double compute_s;        /* forward + backward, the collectives inside it taken out */
    double wait_s;           /* at the arrival barriers: waiting for the other ranks */
    double comm_s;           /* in the collectives (and their staging copies, host transfers) */
    double bytes;            /* per rank: ring traffic (W-1)/W of each buffer, and PCIe bytes */
    int32_t collectives;
} DpSpan;

enum { DP_EV_COMPUTE, DP_EV_WAIT, DP_EV_COMM, DP_EV_OPTIMIZER };
typedef struct {
    double t0, t1;           /* seconds from the run's first sync point (all ranks released at once) */
    int32_t rank, kind, step, micro;
} DpEvent;

/* What a real run adds to its RunResult (rank 0 holds it for all ranks). */
typedef struct DpReal {
    int world_size, micro_steps, n_steps;
    CommKind pattern;
    char transport[640];
    double timeout_s;
    int elem_bytes;          /* bytes per parameter / gradient element the collectives moved */
    DpRanks ranks;
    DpSpan *micro;           /* [step][micro][rank] */
    DpSpan *step;            /* [step][rank]: the step's own collectives (DDP all-reduce, ZeRO-3 norm) */
    double *optimizer_s;     /* [step][rank] */
    double *step_wall_s;     /* [step][rank] */
    DpEvent *events;
    int64_t n_events;
    RunMetrics simulated;    /* DESIGN.md's arithmetic on this run's per-rank compute, modelled comm */
    CommTimes modelled;      /* the modelled comm it charged */
    CommCost modelled_cost;
    CommConfig modelled_cfg;
    RunMetrics measured;     /* the same fields, measured (also RunResult.metrics) */
    double comm_bytes_per_rank, collectives_per_rank;
    uint64_t final_checksum;
    int identical;           /* 1: every rank ended with bit-identical parameters */
    uint64_t *step_checksums;/* [step][rank] with --dp-check, else NULL */
} DpReal;

/* Runs this rank's part of rc->steps steps of the plan, like run_plan; rank 0's *out then holds
 * every rank's records, the measured metrics (out->metrics) and out->dp. Any error, on any rank,
 * ends the job with status 2 (dp_fail). model_out as for run_plan (every rank's weights). */
void dp_run_plan(Backend *be, const Plan *plan, const RunConfig *rc, const DpRunConfig *dc, const Task *task,
                 RunResult *out, Model *model_out);

void dp_real_free(DpReal *d);
/* One track per real rank with compute, wait and communication slices as measured. */
void dp_trace(Trace *t, const char *strategy, const RunResult *r);


#endif
