/* The launch and the control plane of --dp real over MPI, and the CPU backend's MPI collectives.
 *
 * The arrival barrier (dp_sync) is a gather to rank 0 and an answer back, as point-to-point
 * messages polled with a deadline: rank 0 learns who has arrived, who failed (and why), and who
 * is late, and tells every rank "go", "rank k failed: ..." or "rank k is late" in one answer. A
 * plain MPI_Barrier could do neither: it cannot time out, and it cannot say which rank is missing.
 * Every collective is preceded by one, so no collective ever starts while a rank is gone. */
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/comm/world.h"
#include "common/host.h"
#include "common/progress.h"

#define TAG_UP 7101     /* rank -> rank 0: arrived (or failed) at a sync point */
#define TAG_DOWN 7102   /* rank 0 -> rank: the verdict */
#define MSG_TEXT 1536

enum { MSG_GO = 0, MSG_FAILED = 1, MSG_LATE = 2 };

typedef struct {
    int32_t seq, kind, rank, pad;
    char text[MSG_TEXT];
} Msg;

static struct {
    int active, finalized, exiting;
    int rank, size;
    double timeout_s;
    int64_t seq;          /* sync points so far: the same count on every rank */
    int synced;           /* a dp_sync since the last collective */
    MPI_Comm comm;
    Msg *in;              /* rank 0: one per rank */
    MPI_Request *req;
    int *idx, *done;
    char *arrived;
} g;

int dp_mpi_compiled(void) { return 1; }
static int dp_world_active(void) { return g.active && !g.finalized; }

static size_t msg_len(const Msg *m) { return offsetof(Msg, text) + strlen(m->text) + 1; }

static void msg_set(Msg *m, int64_t seq, int kind, int rank, const char *text)
{
    memset(m, 0, offsetof(Msg, text));
    m->seq = (int32_t)seq;
    m->kind = kind;
    m->rank = rank;
    snprintf(m->text, sizeof m->text, "%s", text ? text : "");
}

/* Between two polls of a wait that started at t0: yield at first (the answer is usually
 * microseconds away), then sleep 50 us at a time, so that a rank that waits long does not take a
 * core from one that still computes (ranks may share cores). Adds at most ~50 us to a long wait. */
static void pause_poll(double t0)
{
    if (wall_seconds() - t0 < 2e-3) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, 50 * 1000};
    nanosleep(&ts, NULL);
}

/* Polls until *req completes (1) or the deadline passes (0). */
static int poll_until(MPI_Request *req, double deadline)
{
    double t0 = wall_seconds();
    for (;;) {
        int done = 0;
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done) return 1;
        if (wall_seconds() > deadline) return 0;
        pause_poll(t0);
    }
}

/* The job ends here with status 2: cleanly (every rank heard the verdict and finalizes) or, when a
 * rank is missing, by MPI_Abort, which ends the ranks that no longer answer. */
static void end_job(int clean) __attribute__((noreturn));
static void end_job(int clean)
{
    fflush(stdout);
    fflush(stderr);
    if (!clean) {
        struct timespec ts = {0, 300 * 1000 * 1000};   /* let the others print theirs */
        nanosleep(&ts, NULL);
        MPI_Abort(MPI_COMM_WORLD, DP_EXIT_STATUS);
        abort();   /* MPI_Abort does not return */
    }
    g.finalized = 1;
    MPI_Finalize();
    if (g.exiting) _exit(DP_EXIT_STATUS);   /* inside an exit handler: exit() again is undefined */
    exit(DP_EXIT_STATUS);
}

static void obey(const Msg *v) __attribute__((noreturn));
static void obey(const Msg *v)
{
    if (v->kind == MSG_FAILED) {
        if (v->rank != g.rank) fprintf(stderr, "labench: rank %d failed: %s\n", v->rank, v->text);
        end_job(1);
    }
    fprintf(stderr, "labench: rank %d: %s\n", g.rank, v->text);
    end_job(0);
}

static void root_sync(const char *what, const char *failed)
{
    const int W = g.size;
    int pending = 0;
    for (int r = 1; r < W; r++) {
        g.arrived[r] = 0;
        if (failed) continue;   /* rank 0 itself cannot go on: no need to hear the others */
        MPI_Irecv(&g.in[r], sizeof(Msg), MPI_BYTE, r, TAG_UP, g.comm, &g.req[pending]);
        g.idx[pending++] = r;
    }
    double t0 = wall_seconds(), deadline = t0 + g.timeout_s;
    int left = pending;
    while (left > 0 && wall_seconds() <= deadline) {
        int n = 0;
        MPI_Testsome(pending, g.req, &n, g.done, MPI_STATUSES_IGNORE);
        for (int i = 0; i < n && n != MPI_UNDEFINED; i++) {
            g.arrived[g.idx[g.done[i]]] = 1;
            left--;
        }
        if (left > 0) pause_poll(t0);
    }
    Msg v;
    int first_failed = -1;
    for (int r = 1; r < W && first_failed < 0; r++)
        if (g.arrived[r] && g.in[r].kind == MSG_FAILED) first_failed = r;
    if (failed) {
        msg_set(&v, g.seq, MSG_FAILED, 0, failed);
    } else if (left > 0) {
        char late[512] = "", one[16];
        int n = 0;
        for (int r = 1; r < W; r++)
            if (!g.arrived[r] && n++ < 32) {
                snprintf(one, sizeof one, "%s%d", late[0] ? ", " : "", r);
                strncat(late, one, sizeof late - strlen(late) - 1);
            }
        char text[MSG_TEXT];
        snprintf(text, sizeof text,
                 "sync point %lld (%.200s): rank%s %s did not arrive within %g s (--dp-timeout)%s%s%.600s",
                 (long long)g.seq, what, left > 1 ? "s" : "", late, g.timeout_s,
                 first_failed >= 0 ? "; and rank " : "", first_failed >= 0 ? "failed: " : "",
                 first_failed >= 0 ? g.in[first_failed].text : "");
        msg_set(&v, g.seq, MSG_LATE, 0, text);
    } else if (first_failed >= 0) {
        msg_set(&v, g.seq, MSG_FAILED, first_failed, g.in[first_failed].text);
    } else {
        msg_set(&v, g.seq, MSG_GO, 0, "");
    }
    for (int r = 1; r < W; r++)
        if (g.arrived[r] || v.kind != MSG_GO) MPI_Send(&v, (int)msg_len(&v), MPI_BYTE, r, TAG_DOWN, g.comm);
    if (v.kind != MSG_GO) {
        if (v.kind == MSG_LATE) fprintf(stderr, "labench: rank 0: %s\n", v.text);
        else if (v.rank != 0) fprintf(stderr, "labench: rank %d failed: %s\n", v.rank, v.text);
        fflush(stderr);
        end_job(v.kind == MSG_FAILED);
    }
}

static void rank_sync(const char *what, const char *failed)
{
    Msg m, v;
    msg_set(&m, g.seq, failed ? MSG_FAILED : MSG_GO, g.rank, failed);
    MPI_Request rq;
    MPI_Irecv(&v, sizeof v, MPI_BYTE, 0, TAG_DOWN, g.comm, &rq);
    MPI_Send(&m, (int)msg_len(&m), MPI_BYTE, 0, TAG_UP, g.comm);
    /* rank 0's own clock starts when it arrives: give it the timeout, and as long again */
    if (!poll_until(&rq, wall_seconds() + 2 * g.timeout_s + 5)) {
        fprintf(stderr,
                "labench: rank %d: no word from rank 0 at sync point %lld (%s) within %g s: rank 0, or a rank it "
                "waits for, is stuck (--dp-timeout %g)\n",
                g.rank, (long long)g.seq, what, 2 * g.timeout_s + 5, g.timeout_s);
        end_job(0);
    }
    if (v.seq != (int32_t)g.seq && v.kind == MSG_GO) {
        fprintf(stderr, "labench: rank %d: internal error: sync point %lld answered as %d\n", g.rank,
                (long long)g.seq, v.seq);
        end_job(0);
    }
    if (v.kind != MSG_GO) obey(&v);
}

static void sync_or_fail(const char *what, const char *failed)
{
    g.seq++;
    if (g.rank == 0)
        root_sync(what, failed);
    else
        rank_sync(what, failed);
    g.synced = 1;
}

void dp_sync(const char *what) { sync_or_fail(what, NULL); }

void dp_fail(const char *msg)
{
    progress_abort();   /* a progress line in the making ends before the message */
    fprintf(stderr, "labench: rank %d: %s\n", g.rank, msg);
    fflush(stderr);
    if (!dp_world_active()) exit(DP_EXIT_STATUS);
    sync_or_fail("after an error", msg);
    /* rank 0 ends the job inside root_sync; another rank returns only if rank 0 said "go"
     * to a sync point that crossed this one, which cannot happen: end it anyway */
    end_job(0);
}

/* Any other exit with an error status (an internal error, CUDA_CHECK) still tells every rank. */
static void on_exit_handler(int status, void *arg)
{
    (void)arg;
    if (!dp_world_active()) return;
    g.exiting = 1;
    if (status == 0) {
        dp_world_finalize();
        return;
    }
    char msg[128];
    snprintf(msg, sizeof msg, "exited with status %d (its message, if any, is above)", status);
    dp_fail(msg);
}

static void check_synced(const char *what)
{
    if (g.synced) {
        g.synced = 0;
        return;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "internal error: collective %s without a sync point before it", what);
    dp_fail(msg);
}

int dp_world_init(DpWorld *w, double timeout_s, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        snprintf(err, errlen, "MPI_Init failed");
        return -1;
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &g.comm);
    MPI_Comm_rank(g.comm, &g.rank);
    MPI_Comm_size(g.comm, &g.size);
    MPI_Comm local;
    MPI_Comm_split_type(g.comm, MPI_COMM_TYPE_SHARED, g.rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &w->local_rank);
    MPI_Comm_size(local, &w->local_size);
    MPI_Comm_free(&local);
    w->rank = g.rank;
    w->size = g.size;
    host_name(w->host, sizeof w->host);
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    lib[strcspn(lib, ",\n")] = 0;   /* "Open MPI v4.1.4, package: ..." -> its first part */
    snprintf(w->library, sizeof w->library, "%.150s", lib);
    g.timeout_s = timeout_s;
    g.in = calloc((size_t)g.size, sizeof *g.in);
    g.req = calloc((size_t)g.size, sizeof *g.req);
    g.idx = calloc((size_t)g.size, sizeof *g.idx);
    g.done = calloc((size_t)g.size, sizeof *g.done);
    g.arrived = calloc((size_t)g.size, 1);
    if (!g.in || !g.req || !g.idx || !g.done || !g.arrived) {
        snprintf(err, errlen, "out of host memory for %d ranks", g.size);
        MPI_Abort(MPI_COMM_WORLD, DP_EXIT_STATUS);
    }
    g.active = 1;
    on_exit(on_exit_handler, NULL);
    return 0;
}

void dp_world_finalize(void)
{
    if (!dp_world_active()) return;
    dp_sync("end of the run");
    g.finalized = 1;
    MPI_Comm_free(&g.comm);
    MPI_Finalize();
    free(g.in);
    free(g.req);
    free(g.idx);
    free(g.done);
    free(g.arrived);
}

/* ---- control-plane collectives ---- */

static int as_int(size_t n, const char *what)
{
    if (n > (size_t)0x7fffffff) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s of %zu elements: MPI counts stop at 2^31 - 1", what, n);
        dp_fail(msg);
    }
    return (int)n;
}

void dp_allgather_bytes(const void *send, size_t bytes, void *recv)
{
    dp_sync("all-gather (control)");
    check_synced("all-gather (control)");
    int n = as_int(bytes, "all-gather (control)");
    MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, g.comm);
}

void dp_allreduce_f64(double *x, int n)
{
    check_synced("all-reduce (control)");
    MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, g.comm);
}

void *dp_gather_bytes(const void *send, size_t bytes, size_t *lens)
{
    dp_sync("gather to rank 0");
    check_synced("gather to rank 0");
    int n = as_int(bytes, "gather to rank 0");
    int *counts = NULL, *displs = NULL;
    char *all = NULL;
    if (g.rank == 0) {
        counts = calloc((size_t)g.size, sizeof *counts);
        displs = calloc((size_t)g.size, sizeof *displs);
    }
    MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, g.comm);
    if (g.rank == 0) {
        size_t total = 0;
        for (int r = 0; r < g.size; r++) {
            displs[r] = (int)total;
            total += (size_t)counts[r];
            lens[r] = (size_t)counts[r];
        }
        all = malloc(total ? total : 1);
        if (!all || total > 0x7fffffffu) MPI_Abort(MPI_COMM_WORLD, DP_EXIT_STATUS);
    }
    MPI_Gatherv(send, n, MPI_BYTE, all, counts, displs, MPI_BYTE, 0, g.comm);
    free(counts);
    free(displs);
    return all;
}

/* ---- the CPU backend's data plane ---- */

static MPI_Datatype mpi_type(DType dt)
{
    if (dt == DT_F64) return MPI_DOUBLE;
    if (dt == DT_F32) return MPI_FLOAT;
    dp_fail("internal error: MPI collectives on bf16 (the CPU backend is f32 or f64)");
}

void dp_host_all_reduce_sum(void *buf, size_t n, DType dt)
{
    check_synced("all-reduce");
    MPI_Allreduce(MPI_IN_PLACE, buf, as_int(n, "all-reduce"), mpi_type(dt), MPI_SUM, g.comm);
}

void dp_host_all_gather(const void *send, void *recv, size_t n_per_rank, DType dt)
{
    check_synced("all-gather");
    int n = as_int(n_per_rank * (size_t)g.size, "all-gather") / g.size;
    MPI_Allgather(send, n, mpi_type(dt), recv, n, mpi_type(dt), g.comm);
}

void dp_host_reduce_scatter_sum(const void *send, void *recv, size_t n_per_rank, DType dt)
{
    check_synced("reduce-scatter");
    int n = as_int(n_per_rank * (size_t)g.size, "reduce-scatter") / g.size;
    MPI_Reduce_scatter_block(send, recv, n, mpi_type(dt), MPI_SUM, g.comm);
}
