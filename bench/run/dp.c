/* Real data parallelism: the runner of one rank, and what rank 0 makes of every rank's records.
 *
 * Every process builds the same plan (plans are deterministic; a hash checks it) and runs only
 * its own rank's micro-batches. The collectives follow --comm:
 *   ddp            one all-reduce (sum) of the gradients per optimizer step; every rank then runs
 *                  the same AdamW step on the same reduced gradients (--sync micro adds an arrival
 *                  barrier at each micro-step, which is all DDP's no_sync leaves of a sync point);
 *   zero3          each rank owns 1/W of every unit's parameters (bench/model.h's units: embedding,
 *                  each layer, final norm + head) and its AdamW state; every micro-step gathers
 *                  each unit before its forward and again before its backward, and reduce-scatters
 *                  its gradient once complete; the step's AdamW updates the shard only;
 *   zero3-offload  as zero3; on the CUDA backend the shards and AdamW live on the host, so every
 *                  gather uploads the shard first and every reduce-scatter downloads its result.
 * Under ZeRO-3 the reduce-scatter sends the rank's gradients accumulated since the step began
 * (the full buffer is kept): the same bytes as DeepSpeed's per-micro-step scatter, and the last
 * one leaves each shard with the step's whole gradient, so no separate accumulation is needed.
 *
 * Before every collective, dp_sync: the time spent there is the rank's wait (its share of the DP
 * bubble), the time after it the collective's own. Compute is the micro-batch's time with the
 * collectives inside it (ZeRO-3) taken out. */
#include "bench/run/dp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/analysis/sync_point.h"
#include "bench/run/batch.h"
#include "common/host.h"
#include "common/progress.h"
#include "common/json_out.h"
#include "common/parse.h"
#include "bench/comm/nccl.h"
#include "profile/nvtx.h"

/* ---- the launch ---- */

int dp_pick_gpu(const DpWorld *w, int share, int *device, char *err, size_t errlen)
{
    char e[512];
    int n = gpu_count(e, sizeof e);
    if (n < 0) {
        snprintf(err, errlen, "%s", e);
        return -1;
    }
    if (n == 0) {
        snprintf(err, errlen, "no GPU visible on host %s", w->host);
        return -1;
    }
    if (n >= w->local_size) {
        *device = w->local_rank;
    } else if (n == 1 || share) {
        /* one GPU per rank through the launcher (CUDA_VISIBLE_DEVICES), or shared on purpose;
         * dp_ranks_check finds ranks that land on the same GPU */
        *device = w->local_rank % n;
    } else {
        snprintf(err, errlen,
                 "%d ranks on host %s but only %d GPUs: start at most %d ranks per host (mpirun -np, "
                 "--map-by ppr:%d:node), run them on the CPU (--backend cpu), or give --dp-share-gpus",
                 w->local_size, w->host, n, n, n);
        return -1;
    }
    return 0;
}

typedef struct {
    char host[64];
    char backend[16];
    char device[128];
    char bus[40];
} RankFacts;

void dp_ranks_check(const DpWorld *w, const Backend *be, int device, int share, DpRanks *out)
{
    const size_t nr = w->size > 0 ? (size_t)w->size : 1;
    RankFacts me, *all = calloc(nr, sizeof *all);
    if (!all) dp_fail("out of host memory for the rank table");
    memset(&me, 0, sizeof me);
    snprintf(me.host, sizeof me.host, "%s", w->host);
    snprintf(me.backend, sizeof me.backend, "%s", be->name);
    snprintf(me.device, sizeof me.device, "%s", be->device_name);
    if (device >= 0) gpu_bus_id(device, me.bus, sizeof me.bus);
    dp_allgather_bytes(&me, sizeof me, all);
    char msg[768];
    for (int r = 1; r < w->size; r++)
        if (strcmp(all[r].backend, all[0].backend) != 0) {
            snprintf(msg, sizeof msg,
                     "rank %d (host %s) opened the %s backend, rank 0 (host %s) the %s one: give --backend cpu or "
                     "--backend cuda so that every rank runs the same",
                     r, all[r].host, all[r].backend, all[0].host, all[0].backend);
            dp_fail(msg);
        }
    for (int r = 0; r < w->size && device >= 0 && !share; r++)
        for (int q = r + 1; q < w->size; q++)
            if (strcmp(all[r].host, all[q].host) == 0 && strcmp(all[r].bus, all[q].bus) == 0) {
                snprintf(msg, sizeof msg,
                         "ranks %d and %d on host %s both use GPU %s: more ranks than GPUs on that host; start one "
                         "rank per GPU, run on the CPU (--backend cpu), or give --dp-share-gpus",
                         r, q, all[r].host, all[r].bus);
                dp_fail(msg);
            }
    out->size = w->size;
    out->host = calloc(nr, sizeof *out->host);
    out->device = calloc(nr, sizeof *out->device);
    if (!out->host || !out->device) dp_fail("out of host memory for the rank table");
    for (int r = 0; r < w->size; r++) {
        snprintf(out->host[r], sizeof out->host[r], "%s", all[r].host);
        if (all[r].bus[0])
            snprintf(out->device[r], sizeof out->device[r], "%.80s (%s)", all[r].device, all[r].bus);
        else
            snprintf(out->device[r], sizeof out->device[r], "%s", all[r].device);
    }
    free(all);
}

void dp_ranks_free(DpRanks *r)
{
    free(r->host);
    free(r->device);
    memset(r, 0, sizeof *r);
}

static void ranks_copy(DpRanks *dst, const DpRanks *src)
{
    dst->size = src->size;
    dst->host = calloc((size_t)src->size, sizeof *dst->host);
    dst->device = calloc((size_t)src->size, sizeof *dst->device);
    if (!dst->host || !dst->device) dp_fail("out of host memory for the rank table");
    memcpy(dst->host, src->host, (size_t)src->size * sizeof *dst->host);
    memcpy(dst->device, src->device, (size_t)src->size * sizeof *dst->device);
}

/* ---- one rank ---- */

typedef struct {
    Backend *be;
    const DpRunConfig *dc;
    Model *m;
    int W, me;
    DType pdt;
    size_t ps;
    /* ZeRO-3 */
    int zero3, host_shards;       /* host_shards: zero3-offload on a GPU */
    int n_units;
    size_t *lo, *cnt, *shard, *off;
    size_t shard_total;
    void *stage;                  /* on be: W x the largest shard */
    Backend *opt_be;              /* holds the shards and runs their AdamW: be, or the host */
    void *sp, *sg, *sm, *sv;      /* shard parameters, gradients, AdamW moments */
    void *dshard;                 /* host_shards: one unit's shard on the device */
    /* what is being measured */
    DpSpan *span;
    DpSpan scratch;               /* collectives outside every measured span (checks, validation) */
    int step, micro, recording;
    int computing;                /* inside a micro-batch: time between collectives is compute */
    double cursor;                /* end of the last event */
    DpEvent *ev;
    int64_t n_ev, cap_ev;
    double t0;
} Rank;

static void ev_add(Rank *R, int kind, double a, double b)
{
    if (!R->recording || !(b > a)) return;
    if (R->n_ev == R->cap_ev) {
        int64_t cap = R->cap_ev ? 2 * R->cap_ev : 1024;
        DpEvent *e = realloc(R->ev, (size_t)cap * sizeof *e);
        if (!e) dp_fail("out of host memory for the trace events");
        R->ev = e;
        R->cap_ev = cap;
    }
    R->ev[R->n_ev++] = (DpEvent){a - R->t0, b - R->t0, R->me, kind, R->step, R->micro};
}

/* The wait before a collective; returns when the collective may start. */
static double sync_here(Rank *R, const char *what)
{
    R->be->synchronize(R->be);   /* this rank's compute is done: from here it waits */
    double a = wall_seconds();
    if (R->computing) ev_add(R, DP_EV_COMPUTE, R->cursor, a);
    char label[160];
    if (R->micro >= 0)
        snprintf(label, sizeof label, "step %d, micro-step %d: %s", R->step, R->micro, what);
    else
        snprintf(label, sizeof label, "step %d: %s", R->step, what);
    dp_sync(label);
    double b = wall_seconds();
    R->span->wait_s += b - a;
    ev_add(R, DP_EV_WAIT, a, b);
    R->cursor = b;
    return b;
}

static void comm_done(Rank *R, double start, double bytes)
{
    R->be->synchronize(R->be);
    double c = wall_seconds();
    R->span->comm_s += c - start;
    R->span->bytes += bytes;
    R->span->collectives++;
    ev_add(R, DP_EV_COMM, start, c);
    R->cursor = c;
}

/* ---- the data plane: NCCL on GPU memory, MPI on host memory ----
 * NCCL runs on its own stream: the copies queued on the backend's stream before it (staging)
 * must be done first. */

static void tr_all_reduce(Rank *R, void *buf, size_t n)
{
    char e[512];
    if (R->dc->nccl) R->be->synchronize(R->be);
    if (!R->dc->nccl)
        dp_host_all_reduce_sum(buf, n, R->pdt);
    else if (nccl_all_reduce_sum(R->dc->nccl, buf, n, R->pdt, e, sizeof e) != 0)
        dp_fail(e);
}

static void tr_all_gather(Rank *R, const void *send, void *recv, size_t n)
{
    char e[512];
    if (R->dc->nccl) R->be->synchronize(R->be);
    if (!R->dc->nccl)
        dp_host_all_gather(send, recv, n, R->pdt);
    else if (nccl_all_gather(R->dc->nccl, send, recv, n, R->pdt, e, sizeof e) != 0)
        dp_fail(e);
}

static void tr_reduce_scatter(Rank *R, const void *send, void *recv, size_t n)
{
    char e[512];
    if (R->dc->nccl) R->be->synchronize(R->be);
    if (!R->dc->nccl)
        dp_host_reduce_scatter_sum(send, recv, n, R->pdt);
    else if (nccl_reduce_scatter_sum(R->dc->nccl, send, recv, n, R->pdt, e, sizeof e) != 0)
        dp_fail(e);
}

static void *at(void *base, size_t elems, size_t es) { return (char *)base + elems * es; }

/* ---- ZeRO-3 ---- */

static void unit_name(const Rank *R, int u, char *buf, size_t n)
{
    if (u == 0)
        snprintf(buf, n, "embedding");
    else if (u <= R->m->cfg.layers)
        snprintf(buf, n, "layer %d", u - 1);
    else
        snprintf(buf, n, "final norm + head");
}

static void *shard_alloc(Rank *R, size_t elems)
{
    void *p = R->opt_be->alloc(R->opt_be, elems * R->ps);
    if (!p) {
        char msg[256];
        snprintf(msg, sizeof msg, "out of memory on %s for the ZeRO-3 shards (%zu elements)", R->opt_be->device_name,
                 elems);
        dp_fail(msg);
    }
    return p;
}

static void zero3_setup(Rank *R)
{
    Model *m = R->m;
    const int W = R->W;
    R->n_units = model_n_units(&m->cfg);
    size_t nu = (size_t)R->n_units;
    R->lo = calloc(nu, sizeof *R->lo);
    R->cnt = calloc(nu, sizeof *R->cnt);
    R->shard = calloc(nu, sizeof *R->shard);
    R->off = calloc(nu, sizeof *R->off);
    if (!R->lo || !R->cnt || !R->shard || !R->off) dp_fail("out of host memory for the ZeRO-3 units");
    size_t max_shard = 0;
    for (int u = 0; u < R->n_units; u++) {
        model_unit_range(m, u, &R->lo[u], &R->cnt[u]);
        R->shard[u] = (R->cnt[u] + (size_t)W - 1) / (size_t)W;
        R->off[u] = R->shard_total;
        R->shard_total += R->shard[u];
        if (R->shard[u] > max_shard) max_shard = R->shard[u];
    }
    R->stage = R->be->alloc(R->be, max_shard * (size_t)W * R->ps);
    if (R->host_shards) {
        char e[256];
        R->opt_be = backend_cpu_create(R->pdt, e, sizeof e);
        if (!R->opt_be) dp_fail(e);
        R->dshard = R->be->alloc(R->be, max_shard * R->ps);
    } else {
        R->opt_be = R->be;
    }
    if (!R->stage || (R->host_shards && !R->dshard)) dp_fail("out of memory for the ZeRO-3 staging buffers");
    R->sp = shard_alloc(R, R->shard_total);
    R->sg = shard_alloc(R, R->shard_total);
    R->sm = shard_alloc(R, R->shard_total);
    R->sv = shard_alloc(R, R->shard_total);
    /* each rank keeps its slice of the (identical) initial weights; the padding stays zero */
    for (int u = 0; u < R->n_units; u++) {
        size_t first = (size_t)R->me * R->shard[u];
        if (first >= R->cnt[u]) continue;
        size_t len = R->cnt[u] - first < R->shard[u] ? R->cnt[u] - first : R->shard[u];
        void *src = at(m->params, R->lo[u] + first, R->ps), *dst = at(R->sp, R->off[u], R->ps);
        if (R->host_shards)
            R->be->download(R->be, dst, src, len * R->ps);
        else
            R->be->copy(R->be, dst, src, len * R->ps);
    }
}

static void zero3_free(Rank *R)
{
    if (!R->zero3) return;
    void *sh[] = {R->sp, R->sg, R->sm, R->sv};
    for (int i = 0; i < 4; i++)
        if (sh[i]) R->opt_be->free(R->opt_be, sh[i]);
    if (R->stage) R->be->free(R->be, R->stage);
    if (R->dshard) R->be->free(R->be, R->dshard);
    if (R->opt_be && R->opt_be != R->be) R->opt_be->destroy(R->opt_be);
    free(R->lo);
    free(R->cnt);
    free(R->shard);
    free(R->off);
}

/* Unit u's full parameters from every rank's shard, into the model (and its compute copy). */
static void zero3_gather(Rank *R, int u, const char *why)
{
    Model *m = R->m;
    Backend *be = R->be;
    char what[96], name[32];
    unit_name(R, u, name, sizeof name);
    snprintf(what, sizeof what, "ZeRO-3 gather of the %s (%s)", name, why);
    double t = sync_here(R, what);
    void *src = at(R->sp, R->off[u], R->ps);
    double pcie = 0;
    if (R->host_shards) {
        be->upload(be, R->dshard, src, R->shard[u] * R->ps);
        src = R->dshard;
        pcie = (double)(R->shard[u] * R->ps);
    }
    tr_all_gather(R, src, R->stage, R->shard[u]);
    be->copy(be, at(m->params, R->lo[u], R->ps), R->stage, R->cnt[u] * R->ps);
    if (m->wact != m->params)
        be->cast(be, at(m->wact, R->lo[u], dtype_size(be->act_dtype)), be->act_dtype,
                 at(m->params, R->lo[u], R->ps), be->param_dtype, R->cnt[u]);
    comm_done(R, t, (double)(R->W - 1) * (double)(R->shard[u] * R->ps) + pcie);
}

/* Unit u's gradients accumulated so far on every rank, summed into their owners' shards. */
static void zero3_scatter(Rank *R, int u)
{
    Model *m = R->m;
    Backend *be = R->be;
    char what[96], name[32];
    unit_name(R, u, name, sizeof name);
    snprintf(what, sizeof what, "ZeRO-3 reduce-scatter of the %s", name);
    double t = sync_here(R, what);
    size_t padded = R->shard[u] * (size_t)R->W;
    be->copy(be, R->stage, at(m->grads, R->lo[u], R->ps), R->cnt[u] * R->ps);
    if (padded > R->cnt[u]) be->zero(be, at(R->stage, R->cnt[u], R->ps), (padded - R->cnt[u]) * R->ps);
    void *dst = R->host_shards ? R->dshard : at(R->sg, R->off[u], R->ps);
    tr_reduce_scatter(R, R->stage, dst, R->shard[u]);
    double pcie = 0;
    if (R->host_shards) {
        be->download(be, at(R->sg, R->off[u], R->ps), R->dshard, R->shard[u] * R->ps);
        pcie = (double)(R->shard[u] * R->ps);
    }
    comm_done(R, t, (double)(R->W - 1) * (double)(R->shard[u] * R->ps) + pcie);
}

static void zero3_hook(void *ctx, int unit, UnitEvent ev)
{
    Rank *R = ctx;
    if (ev == UNIT_GRAD_DONE)
        zero3_scatter(R, unit);
    else
        zero3_gather(R, unit, ev == UNIT_BEFORE_FORWARD ? "forward" : "backward");
}

/* Every unit gathered, outside the measured spans: for validation, checks, and the end. */
static void zero3_materialize(Rank *R)
{
    DpSpan *keep = R->span;
    int rec = R->recording;
    R->span = &R->scratch;
    R->recording = 0;
    for (int u = 0; u < R->n_units; u++) zero3_gather(R, u, "parameters for a check or validation");
    R->span = keep;
    R->recording = rec;
}

/* The step's update on this rank's shards: the global gradient norm from every shard, AdamW. */
static double zero3_step(Rank *R, const RunConfig *rc, double *opt_s)
{
    Model *m = R->m;
    double t = sync_here(R, "gradient norm (ZeRO-3)");
    double ss = R->opt_be->sum_squares(R->opt_be, R->sg, R->shard_total);
    dp_allreduce_f64(&ss, 1);
    comm_done(R, t, 8.0 * (R->W - 1));
    double norm = sqrt(ss);
    double a = wall_seconds();
    m->adam_t++;
    R->opt_be->adamw(R->opt_be, R->sp, R->sg, R->sm, R->sv, R->shard_total, &rc->opt,
                     model_clip_scale(norm, rc->max_grad_norm), m->adam_t);
    R->opt_be->zero(R->opt_be, R->sg, R->shard_total * R->ps);
    model_zero_grads(m);
    R->opt_be->synchronize(R->opt_be);
    R->be->synchronize(R->be);
    double b = wall_seconds();
    ev_add(R, DP_EV_OPTIMIZER, a, b);
    R->cursor = b;
    *opt_s = b - a;
    return norm;
}

static double ddp_step(Rank *R, const RunConfig *rc, double *opt_s)
{
    Model *m = R->m;
    double t = sync_here(R, "gradient all-reduce (DDP)");
    tr_all_reduce(R, m->grads, m->n_params);
    comm_done(R, t, 2.0 * (R->W - 1) / R->W * (double)(m->n_params * R->ps));
    double a = wall_seconds();
    double norm = model_optimizer_step(m, &rc->opt, rc->max_grad_norm);
    R->be->synchronize(R->be);
    double b = wall_seconds();
    ev_add(R, DP_EV_OPTIMIZER, a, b);
    R->cursor = b;
    *opt_s = b - a;
    return norm;
}

/* ---- checks ---- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 0x100000001b3ull;
    return h;
}
#define FNV_SEED 0xcbf29ce484222325ull

static uint64_t plan_hash(const Plan *p, int n_steps)
{
    uint64_t h = FNV_SEED;
    int32_t shape[3] = {n_steps, p->micro_steps, p->cfg.world_size};
    h = fnv1a(h, shape, sizeof shape);
    h = fnv1a(h, p->mbs, (size_t)p->n_steps * p->micro_steps * p->cfg.world_size * sizeof *p->mbs);
    h = fnv1a(h, p->rows, (size_t)p->n_rows * sizeof *p->rows);
    return fnv1a(h, p->segs, (size_t)p->n_segs * sizeof *p->segs);
}

/* Bits of this rank's full parameters (param dtype, as held). */
static uint64_t params_checksum(Rank *R, void *host)
{
    R->be->download(R->be, host, R->m->params, R->m->n_params * R->ps);
    return fnv1a(FNV_SEED, host, R->m->n_params * R->ps);
}

/* Every rank's checksum into all (size entries); 1 when they agree. */
static int compare_checksums(Rank *R, void *host, uint64_t *all, int step)
{
    if (R->zero3) zero3_materialize(R);
    uint64_t mine = params_checksum(R, host);
    dp_allgather_bytes(&mine, sizeof mine, all);
    for (int r = 1; r < R->W; r++)
        if (all[r] != all[0]) {
            if (step < 0) return 0;
            char msg[256];
            snprintf(msg, sizeof msg,
                     "--dp-check: after step %d the parameters of rank %d (checksum %016llx) differ from rank 0's "
                     "(%016llx)",
                     step, r, (unsigned long long)all[r], (unsigned long long)all[0]);
            dp_fail(msg);
        }
    return 1;
}

/* LABENCH_DP_INJECT="RANK:STEP:fail|hang" makes one rank fail (as out of memory would) or stop
 * at the start of a step: the fault tests (tests/test_dp.c) use it. */
static void inject_fault(const Rank *R, int step)
{
    const char *s = getenv("LABENCH_DP_INJECT");
    int rank, at_step;
    char kind[8] = "";
    if (!s || sscanf(s, "%d:%d:%7s", &rank, &at_step, kind) != 3 || rank != R->me || at_step != step) return;
    if (strcmp(kind, "hang") == 0)
        for (;;) {
            struct timespec ts = {3600, 0};
            nanosleep(&ts, NULL);
        }
    char msg[128];
    snprintf(msg, sizeof msg, "fault injected at step %d (LABENCH_DP_INJECT=%s)", step, s);
    dp_fail(msg);
}

/* ---- what one rank sends to rank 0 ---- */

typedef struct {
    int32_t n_steps, micro_steps;
    int64_t n_events, sequences_seen;
    double peak_bytes;
    uint64_t final_checksum;
} PackHeader;

typedef struct {
    PackHeader h;
    MbRow *recs;          /* [step][micro] */
    DpSpan *micro, *step;
    double *opt_s, *wall_s;
    uint64_t *checks;
    DpEvent *events;
} Pack;

static size_t pack_size(int n_steps, int A, int64_t n_events)
{
    size_t ns = (size_t)n_steps, nm = ns * (size_t)A;
    return sizeof(PackHeader) + nm * (sizeof(MbRow) + sizeof(DpSpan)) + ns * (sizeof(DpSpan) + 2 * sizeof(double) +
           sizeof(uint64_t)) + (size_t)n_events * sizeof(DpEvent);
}

/* Points p's arrays into buf (laid out as pack_size counts). */
static void pack_view(Pack *p, char *buf)
{
    memcpy(&p->h, buf, sizeof p->h);
    size_t ns = (size_t)p->h.n_steps, nm = ns * (size_t)p->h.micro_steps;
    char *c = buf + sizeof(PackHeader);
    p->recs = (MbRow *)c, c += nm * sizeof(MbRow);
    p->micro = (DpSpan *)c, c += nm * sizeof(DpSpan);
    p->step = (DpSpan *)c, c += ns * sizeof(DpSpan);
    p->opt_s = (double *)c, c += ns * sizeof(double);
    p->wall_s = (double *)c, c += ns * sizeof(double);
    p->checks = (uint64_t *)c, c += ns * sizeof(uint64_t);
    p->events = (DpEvent *)c;
}

/* ---- rank 0: every rank's records into one RunResult ---- */

static void assemble(RunResult *out, const Plan *plan, const RunConfig *rc, const DpRunConfig *dc, Backend *be,
                     char *all, const size_t *lens)
{
    const int check = dc->check;
    const int W = plan->cfg.world_size, A = plan->micro_steps, n_steps = out->n_steps;
    Pack *pk = calloc((size_t)W, sizeof *pk);
    DpReal *d = calloc(1, sizeof *d);
    if (!pk || !d) dp_fail("out of host memory gathering the ranks' records");
    size_t off = 0;
    int64_t n_events = 0;
    for (int r = 0; r < W; r++) {
        pack_view(&pk[r], all + off);
        off += lens[r];
        n_events += pk[r].h.n_events;
    }
    d->world_size = W;
    d->micro_steps = A;
    d->n_steps = n_steps;
    d->pattern = dc->pattern;
    snprintf(d->transport, sizeof d->transport, "%s", dc->transport);
    d->timeout_s = dc->timeout_s;
    d->elem_bytes = (int)dtype_size(be->param_dtype);
    ranks_copy(&d->ranks, dc->ranks);
    size_t nm = (size_t)n_steps * A * W, ns = (size_t)n_steps * W;
    d->micro = calloc(nm, sizeof *d->micro);
    d->step = calloc(ns, sizeof *d->step);
    d->optimizer_s = calloc(ns, sizeof *d->optimizer_s);
    d->step_wall_s = calloc(ns, sizeof *d->step_wall_s);
    d->events = calloc((size_t)(n_events > 0 ? n_events : 1), sizeof *d->events);
    if (check) d->step_checksums = calloc(ns, sizeof *d->step_checksums);
    MbRow *recs = calloc(nm, sizeof *recs);
    if (!d->micro || !d->step || !d->optimizer_s || !d->step_wall_s || !d->events || !recs ||
        (check && !d->step_checksums))
        dp_fail("out of host memory gathering the ranks' records");
    /* plan order, as the simulation writes them: step, micro-step, rank */
    for (int s = 0; s < n_steps; s++) {
        double loss = 0;
        out->optimizer_s[s] = out->step_wall_s[s] = 0;
        for (int a = 0; a < A; a++)
            for (int r = 0; r < W; r++) {
                size_t i = ((size_t)s * A + a) * W + r, j = (size_t)s * A + a;
                recs[i] = pk[r].recs[j];
                d->micro[i] = pk[r].micro[j];
                loss += recs[i].loss;
            }
        for (int r = 0; r < W; r++) {
            size_t i = (size_t)s * W + r;
            d->step[i] = pk[r].step[s];
            d->optimizer_s[i] = pk[r].opt_s[s];
            d->step_wall_s[i] = pk[r].wall_s[s];
            if (check) d->step_checksums[i] = pk[r].checks[s];
            if (pk[r].opt_s[s] > out->optimizer_s[s]) out->optimizer_s[s] = pk[r].opt_s[s];
            if (pk[r].wall_s[s] > out->step_wall_s[s]) out->step_wall_s[s] = pk[r].wall_s[s];
        }
        out->loss_curve[s] = loss;
    }
    out->sequences_seen = 0;
    double peak = 0;
    for (int r = 0; r < W; r++) {
        memcpy(d->events + d->n_events, pk[r].events, (size_t)pk[r].h.n_events * sizeof *d->events);
        d->n_events += pk[r].h.n_events;
        out->sequences_seen += pk[r].h.sequences_seen;
        if (pk[r].h.peak_bytes > peak) peak = pk[r].h.peak_bytes;
    }
    d->final_checksum = pk[0].h.final_checksum;
    d->identical = 1;
    for (int r = 1; r < W; r++) d->identical &= pk[r].h.final_checksum == d->final_checksum;
    free(out->recs);
    out->recs = recs;
    out->n_recs = (int64_t)nm;
    out->peak_bytes = (size_t)peak;

    /* the simulation's arithmetic on this run's own compute, with the modelled communication of
     * the bytes these collectives moved */
    d->modelled_cfg = dc->comm;
    d->modelled_cfg.kind = dc->pattern;
    d->modelled_cfg.elem_bytes = d->elem_bytes;
    comm_cost(&d->modelled_cfg, &rc->model, W, &d->modelled_cost);
    d->modelled = (CommTimes){d->modelled_cost.per_micro_step_s, d->modelled_cost.per_step_s,
                              d->modelled_cost.optimizer_on_host};
    run_metrics_compute(out->recs, out->n_recs, W, plan->cfg.sync, A, out->optimizer_s, n_steps, d->modelled,
                        be->peak_flops, &d->simulated);
    RunMetrics *m = &d->measured;
    *m = d->simulated;
    double wall = 0, wait = 0, comm = 0, bytes = 0, colls = 0;
    for (int s = 0; s < n_steps; s++) wall += out->step_wall_s[s];
    for (size_t i = 0; i < nm; i++) {
        wait += d->micro[i].wait_s;
        comm += d->micro[i].comm_s;
        bytes += d->micro[i].bytes;
        colls += d->micro[i].collectives;
    }
    for (size_t i = 0; i < ns; i++) {
        wait += d->step[i].wait_s;
        comm += d->step[i].comm_s;
        bytes += d->step[i].bytes;
        colls += d->step[i].collectives;
    }
    m->dp_wall_s = wall;
    m->bubble_s = wait;
    m->comm_s = comm / W;
    d->comm_bytes_per_rank = bytes / W;
    d->collectives_per_rank = colls / W;
    m->dp_bubble = dp_bubble_fraction(wait, W, wall);
    m->effective_tps = wall > 0 ? (double)m->real_tokens / wall : 0;
    m->computed_tps = wall > 0 ? (double)m->computed_tokens / wall : 0;
    m->mfu = wall > 0 && be->peak_flops > 0 ? m->model_flops / (wall * be->peak_flops * W) : 0;
    out->metrics = *m;
    out->dp = d;
    out->dp_free = dp_real_free;
    free(pk);
}

/* ---- the run ---- */

void dp_run_plan(Backend *be, const Plan *plan, const RunConfig *rc, const DpRunConfig *dc, const Task *task,
                 RunResult *out, Model *model_out)
{
    char err[1024];
    const int W = plan->cfg.world_size, A = plan->micro_steps, me = dc->world->rank;
    if (W != dc->world->size) dp_fail("internal error: the plan's world size is not the number of ranks");
    Model m;
    BatchBuf bb;
    if (run_setup(be, plan, rc, A, out, &m, &bb, err, sizeof err) != 0) dp_fail(err);
    const int n_steps = out->n_steps;

    /* every rank planned the same: the first sync point of the run */
    uint64_t h = plan_hash(plan, n_steps), *hs = calloc((size_t)W, sizeof *hs);
    if (!hs) dp_fail("out of host memory");
    dp_allgather_bytes(&h, sizeof h, hs);
    for (int r = 1; r < W; r++)
        if (hs[r] != hs[0]) {
            snprintf(err, sizeof err,
                     "%s: rank %d planned other batches than rank 0: every process needs the same options and "
                     "input files (the plans are deterministic)",
                     plan->strategy, r);
            dp_fail(err);
        }
    free(hs);

    Rank R = {0};
    R.be = be;
    R.dc = dc;
    R.m = &m;
    R.W = W;
    R.me = me;
    R.pdt = be->param_dtype;
    R.ps = dtype_size(be->param_dtype);
    R.zero3 = dc->pattern == COMM_ZERO3 || dc->pattern == COMM_ZERO3_OFFLOAD;
    R.host_shards = dc->pattern == COMM_ZERO3_OFFLOAD && be->kind != BACKEND_CPU;
    R.span = &R.scratch;
    R.step = R.micro = -1;
    if (R.zero3) zero3_setup(&R);
    DpSpan *micro_spans = calloc((size_t)n_steps * A, sizeof *micro_spans);
    DpSpan *step_spans = calloc((size_t)n_steps, sizeof *step_spans);
    double *opt_s = calloc((size_t)n_steps, sizeof *opt_s), *wall_s = calloc((size_t)n_steps, sizeof *wall_s);
    uint64_t *checks = calloc((size_t)n_steps, sizeof *checks), *all_sums = calloc((size_t)W, sizeof *all_sums);
    void *host = malloc(m.n_params * R.ps);
    if (!micro_spans || !step_spans || !opt_s || !wall_s || !checks || !all_sums || !host)
        dp_fail("out of host memory for the rank's records");

    double mm0 = 0, at0 = 0;
    if (be->op_seconds) be->op_seconds(be, &mm0, &at0);
    snprintf(out->timing_source, sizeof out->timing_source, "%s",
             be->kind == BACKEND_CPU
                 ? "wall clock per micro-batch on each real rank (CPU backend); waits and collectives on the host"
                 : "CUDA events per micro-batch on each real rank; waits and collectives on the host");

    /* all ranks leave this sync point together: the common zero of their clocks */
    if (rc->val && rc->val_every > 0 && run_evaluate(&m, rc, task, 0, 0, out, err, sizeof err) != 0) dp_fail(err);
    R.step = 0;
    dp_sync("start of the timed run");
    R.t0 = R.cursor = wall_seconds();
    R.recording = 1;
    prof_range_push(plan->strategy);
    char name[64];
    progress_begin(rc->progress && me == 0, "training %s (%d real ranks)", plan->strategy, W);
    for (int step = 0; step < n_steps; step++) {
        inject_fault(&R, step);
        prof_range_push("optimizer step");
        R.step = step;
        R.micro = -1;
        double ts = wall_seconds();
        int last_busy = -1;
        for (int a = 0; a < A; a++)
            for (int r = 0; r < W; r++)
                if (plan_mb(plan, step, a, r)->n_rows > 0) last_busy = a;
        for (int a = 0; a < A; a++) {
            const MicroBatch *mb = plan_mb(plan, step, a, me);
            MbRow *rec = &out->recs[(size_t)step * A + a];
            rec->step = step;
            rec->micro = a;
            rec->rank = me;
            rec->rows = mb->n_rows;
            int busy = 0;
            for (int r = 0; r < W; r++) busy |= plan_mb(plan, step, a, r)->n_rows > 0;
            if (!busy) continue;   /* no rank has work: no sync point, as in the simulation */
            R.micro = a;
            R.span = &micro_spans[(size_t)step * A + a];
            if (R.zero3) {
                m.unit_hook = zero3_hook;
                m.unit_ctx = &R;
            }
            if (mb->n_rows > 0) {
                batch_build(&bb, plan, mb, task, rc->seed);
                snprintf(name, sizeof name, "rank %d micro %d", me, a);
                prof_range_push(name);
                R.computing = 1;
                R.cursor = wall_seconds();
                be->mark(be, 0);
                double loss = model_forward_backward(&m, &bb.batch, NULL);
                be->mark(be, 1);
                be->synchronize(be);   /* the compute slice ends when the device is done */
                double t = be->seconds_between(be, 0, 1) - R.span->wait_s - R.span->comm_s;
                ev_add(&R, DP_EV_COMPUTE, R.cursor, wall_seconds());
                R.computing = 0;
                prof_range_pop();
                rec->seconds = R.span->compute_s = t > 0 ? t : 0;
                rec->loss = loss;
                run_record_shape(rec, rc, plan, mb, &bb);
                out->sequences_seen += bb.sequences;
            } else if (R.zero3) {
                model_unit_hooks_only(&m);   /* idle here, but the collectives need every rank */
            }
            m.unit_hook = NULL;
            if (!R.zero3 && plan->cfg.sync == SYNC_MICRO && a < last_busy) sync_here(&R, "end of the micro-step");
        }
        R.micro = -1;
        R.span = &step_spans[step];
        out->grad_norm[step] = R.zero3 ? zero3_step(&R, rc, &opt_s[step]) : ddp_step(&R, rc, &opt_s[step]);
        wall_s[step] = wall_seconds() - ts;
        out->optimizer_s[step] = opt_s[step];
        out->step_wall_s[step] = wall_s[step];
        prof_range_pop();
        R.span = &R.scratch;
        progress_update(step + 1, n_steps);
        progress_detail("step %d/%d", step + 1, n_steps);
        if (dc->check) {
            compare_checksums(&R, host, all_sums, step);
            checks[step] = all_sums[me];
        }
        if (rc->val && ((rc->val_every > 0 && (step + 1) % rc->val_every == 0) || step + 1 == n_steps)) {
            if (R.zero3) zero3_materialize(&R);
            if (run_evaluate(&m, rc, task, step + 1, out->sequences_seen, out, err, sizeof err) != 0) dp_fail(err);
            dp_sync("after validation");   /* so that no rank's evaluation counts as another's wait */
        }
    }
    prof_range_pop();
    progress_end();
    out->elapsed_s = wall_seconds() - R.t0;
    R.recording = 0;
    /* the end: every rank holds the whole model, and the same one */
    int identical = compare_checksums(&R, host, all_sums, -1);
    if (!identical && me == 0)
        fprintf(stderr, "labench: %s: the ranks ended with different parameters (checksums differ)\n", plan->strategy);
    out->peak_bytes = be->peak_bytes(be);
    if (be->op_seconds) {
        double mm1, at1, total = 0;
        be->op_seconds(be, &mm1, &at1);
        for (int s = 0; s < n_steps; s++) total += opt_s[s];
        for (int a = 0; a < n_steps * A; a++) total += out->recs[a].seconds;
        if (total > 0) {
            out->matmul_share = (mm1 - mm0 - out->val_op_s[0]) / total;
            out->attention_share = (at1 - at0 - out->val_op_s[1]) / total;
        }
    }

    /* every rank's records to rank 0 */
    size_t bytes = pack_size(n_steps, A, R.n_ev);
    char *buf = calloc(1, bytes);
    if (!buf) dp_fail("out of host memory packing the records");
    Pack p;
    PackHeader hd = {n_steps, A, R.n_ev, out->sequences_seen, (double)out->peak_bytes, all_sums[me]};
    memcpy(buf, &hd, sizeof hd);
    pack_view(&p, buf);
    memcpy(p.recs, out->recs, (size_t)n_steps * A * sizeof *p.recs);
    memcpy(p.micro, micro_spans, (size_t)n_steps * A * sizeof *p.micro);
    memcpy(p.step, step_spans, (size_t)n_steps * sizeof *p.step);
    memcpy(p.opt_s, opt_s, (size_t)n_steps * sizeof *p.opt_s);
    memcpy(p.wall_s, wall_s, (size_t)n_steps * sizeof *p.wall_s);
    memcpy(p.checks, checks, (size_t)n_steps * sizeof *p.checks);
    if (R.n_ev) memcpy(p.events, R.ev, (size_t)R.n_ev * sizeof *p.events);
    size_t *lens = calloc((size_t)W, sizeof *lens);
    if (!lens) dp_fail("out of host memory");
    char *all = dp_gather_bytes(buf, bytes, lens);
    if (me == 0) {
        assemble(out, plan, rc, dc, be, all, lens);
        if (rc->trace) {
            run_trace(rc->trace, plan->strategy, out, W, plan->cfg.sync, A, out->dp->modelled, 0);
            dp_trace(rc->trace, plan->strategy, out);
        }
    }
    free(all);
    free(lens);
    free(buf);
    free(R.ev);
    free(micro_spans);
    free(step_spans);
    free(opt_s);
    free(wall_s);
    free(checks);
    free(all_sums);
    free(host);
    zero3_free(&R);
    batch_buf_free(&bb);
    if (model_out)
        *model_out = m;
    else
        model_free(&m);
}

/* ---- results ---- */

void dp_real_free(DpReal *d)
{
    if (!d) return;
    dp_ranks_free(&d->ranks);
    free(d->micro);
    free(d->step);
    free(d->optimizer_s);
    free(d->step_wall_s);
    free(d->events);
    free(d->step_checksums);
    free(d);
}


void dp_trace(Trace *t, const char *strategy, const RunResult *res)
{
    const DpReal *d = res->dp;
    if (!d) return;
    char proc[128], thread[160], label[64];
    snprintf(proc, sizeof proc, "%s: DP timeline (real ranks, measured)", strategy);
    int *track = calloc((size_t)d->world_size, sizeof *track);
    if (!track) return;
    for (int r = 0; r < d->world_size; r++) {
        snprintf(thread, sizeof thread, "real rank %d (%s)", r, d->ranks.host[r]);
        track[r] = trace_track(t, proc, thread, r);
    }
    static const char *const cat[] = {"compute", "wait", "comm", "optimizer"};
    for (int64_t i = 0; i < d->n_events; i++) {
        const DpEvent *e = &d->events[i];
        if (e->rank < 0 || e->rank >= d->world_size || e->kind < 0 || e->kind > DP_EV_OPTIMIZER) continue;
        if (e->kind == DP_EV_COMPUTE)
            snprintf(label, sizeof label, "step %d micro %d", e->step, e->micro);
        else if (e->kind == DP_EV_WAIT)
            snprintf(label, sizeof label, "wait: for the other ranks");
        else if (e->kind == DP_EV_COMM)
            snprintf(label, sizeof label, "collective (%s)", comm_kind_name(d->pattern));
        else
            snprintf(label, sizeof label, "optimizer step %d", e->step);
        trace_slice(t, track[e->rank], label, cat[e->kind], 1e6 * e->t0, 1e6 * (e->t1 - e->t0), NULL);
    }
    free(track);
}
