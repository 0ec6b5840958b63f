#include "bench/analysis/run_metrics.h"

#include <stdlib.h>
#include <string.h>

#include "bench/analysis/sync_point.h"

const char *const MB_COLUMN_NAMES[MB_N_COLUMNS] = {
    "step", "micro", "rank", "rows", "sequences", "segments", "real_tokens", "computed_tokens", "sum_seq_len_sq",
    "seconds", "loss"};

/* Per-rank compute of every sync point: [sync point][rank]. A sync point is (step, micro) under
 * --sync micro and a step under --sync step (ranks then add up their micro-batches). */
typedef struct {
    double *t;
    int64_t n_sp;
    int spp;   /* sync points per step */
} SyncTimes;

static int sync_times(const MbRow *recs, int64_t n, int W, SyncModel sync, int micro_steps, int n_steps,
                      SyncTimes *st)
{
    st->spp = sync == SYNC_MICRO ? (micro_steps > 0 ? micro_steps : 1) : 1;
    st->n_sp = (int64_t)n_steps * st->spp;
    st->t = calloc((size_t)(st->n_sp > 0 ? st->n_sp : 1) * (size_t)W, sizeof *st->t);
    if (!st->t) return -1;
    for (int64_t i = 0; i < n; i++) {
        const MbRow *r = &recs[i];
        if (r->step < 0 || r->step >= n_steps || r->rank < 0 || r->rank >= W) continue;
        int64_t sp = (int64_t)r->step * st->spp + (sync == SYNC_MICRO ? r->micro : 0);
        st->t[sp * W + r->rank] += r->seconds;
    }
    return 0;
}

/* Micro-steps of each step in which some rank has work (an epoch's last step may stop early):
 * busy[step], n_steps entries. 0, or -1 when out of memory. */
static int busy_micro_steps(const MbRow *recs, int64_t n, int micro_steps, int n_steps, int *busy)
{
    const int A = micro_steps > 0 ? micro_steps : 1;
    unsigned char *seen = calloc((size_t)(n_steps > 0 ? n_steps : 1) * (size_t)A, 1);
    if (!seen) return -1;
    for (int s = 0; s < n_steps; s++) busy[s] = 0;
    for (int64_t i = 0; i < n; i++) {
        const MbRow *r = &recs[i];
        if (r->rows <= 0 || r->step < 0 || r->step >= n_steps || r->micro < 0 || r->micro >= A) continue;
        unsigned char *f = &seen[(size_t)r->step * A + r->micro];
        if (!*f) busy[r->step]++;
        *f = 1;
    }
    free(seen);
    return 0;
}

/* Communication of one step with `busy` micro-steps with work (docs/communication.md). */
static double step_comm(CommTimes comm, int busy) { return busy > 0 ? comm.micro_s * busy + comm.step_s : 0.0; }

void run_step_walls(const MbRow *recs, int64_t n, int W, SyncModel sync, int micro_steps,
                    const double *step_optimizer_s, int n_steps, CommTimes comm, double *out)
{
    SyncTimes st;
    int *busy = calloc((size_t)(n_steps > 0 ? n_steps : 1), sizeof *busy);
    if (!busy || busy_micro_steps(recs, n, micro_steps, n_steps, busy) != 0) {
        free(busy);
        return;
    }
    for (int s = 0; s < n_steps; s++)
        out[s] = dp_wall_seconds(0, step_comm(comm, busy[s]), step_optimizer_s ? step_optimizer_s[s] : 0,
                                 comm.optimizer_on_host);
    free(busy);
    if (sync_times(recs, n, W, sync, micro_steps, n_steps, &st) != 0) return;
    for (int64_t sp = 0; sp < st.n_sp; sp++) out[sp / st.spp] += sync_point_close(&st.t[sp * W], W, NULL);
    free(st.t);
}

void run_metrics_compute(const MbRow *recs, int64_t n, int W, SyncModel sync, int micro_steps,
                         const double *step_optimizer_s, int n_steps, CommTimes comm, double peak_flops,
                         RunMetrics *m)
{
    memset(m, 0, sizeof *m);
    m->steps = n_steps;
    for (int64_t i = 0; i < n; i++) {
        const MbRow *r = &recs[i];
        if (r->rows > 0) m->micro_batches++;
        m->sequences += r->sequences;
        m->real_tokens += r->real_tokens;
        m->computed_tokens += r->computed_tokens;
        m->target_tokens += r->target_tokens;
        m->compute_s += r->seconds;
        m->model_flops += r->flops;
    }
    for (int s = 0; s < n_steps && step_optimizer_s; s++) m->optimizer_s += step_optimizer_s[s];

    SyncTimes st;
    if (sync_times(recs, n, W, sync, micro_steps, n_steps, &st) != 0) return;
    double sum_max = 0;
    for (int64_t sp = 0; sp < st.n_sp; sp++) sum_max += sync_point_close(&st.t[sp * W], W, &m->bubble_s);
    free(st.t);
    m->sync_points = st.n_sp;
    int *busy = calloc((size_t)(n_steps > 0 ? n_steps : 1), sizeof *busy);
    if (!busy || busy_micro_steps(recs, n, micro_steps, n_steps, busy) != 0) {
        free(busy);
        return;
    }
    for (int s = 0; s < n_steps; s++) m->comm_s += step_comm(comm, busy[s]);
    free(busy);
    m->compute_wall_s = dp_wall_seconds(sum_max, 0, m->optimizer_s, 0);
    m->dp_wall_s = dp_wall_seconds(sum_max, m->comm_s, m->optimizer_s, comm.optimizer_on_host);
    m->dp_bubble_compute = dp_bubble_fraction(m->bubble_s, W, m->compute_wall_s);
    m->dp_bubble = dp_bubble_fraction(m->bubble_s, W, m->dp_wall_s);
    if (m->compute_wall_s > 0) m->effective_tps_compute = (double)m->real_tokens / m->compute_wall_s;
    if (m->dp_wall_s > 0) {
        m->effective_tps = (double)m->real_tokens / m->dp_wall_s;
        m->computed_tps = (double)m->computed_tokens / m->dp_wall_s;
        /* W simulated devices share the FLOPs: the cluster peak is W x the device peak. */
        if (peak_flops > 0) m->mfu = m->model_flops / (m->dp_wall_s * peak_flops * W);
    }
    if (m->computed_tokens > 0)
        m->padding_ratio = (double)(m->computed_tokens - m->real_tokens) / (double)m->computed_tokens;
}
