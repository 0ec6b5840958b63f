#include "bench/run/run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/analysis/sync_point.h"
#include "bench/run/batch.h"
#include "common/host.h"
#include "common/progress.h"
#include "profile/intervals.h"
#include "profile/nvtx.h"

/* Model FLOPs of a micro-batch's real tokens: pads are waste, not model work. */
static double mb_real_flops(const ModelConfig *c, const Plan *p, const MicroBatch *mb, int64_t real_tokens)
{
    double real_sq = 0;
    for (int r = 0; r < mb->n_rows; r++) {
        const Row *row = &p->rows[mb->first_row + r];
        for (int s = 0; s < row->n_segments; s++) {
            double l = p->segs[row->first_segment + s].len;
            real_sq += l * l;
        }
    }
    return model_flops(c, real_tokens, real_sq);
}

/* On CUDA with CUPTI: each micro-batch's time becomes its GPU window (first kernel start to last
 * kernel end), and the gaps inside it are split into host wait / kernel gap / other. */
static void apply_cupti(RunResult *out, int64_t n_mbs)
{
    int nk = 0;
    const KernelRecord *k = prof_cupti_kernels(&nk);
    GpuIdle *g = &out->gpu;
    prof_cupti_stats(&g->stats);
    if (!k || nk == 0) return;
    /* kernels grouped by micro-batch: records carry the index given to prof_cupti_set_context */
    KernelRecord *sorted = malloc((size_t)nk * sizeof *sorted);
    int64_t *first = malloc((size_t)(n_mbs + 1) * sizeof *first);
    if (!sorted || !first) {
        free(sorted);
        free(first);
        return;
    }
    memset(first, 0, (size_t)(n_mbs + 1) * sizeof *first);
    for (int i = 0; i < nk; i++)
        if (k[i].micro_batch >= 0 && k[i].micro_batch < n_mbs) first[k[i].micro_batch + 1]++;
    for (int64_t i = 0; i < n_mbs; i++) first[i + 1] += first[i];
    int64_t *fill = calloc((size_t)n_mbs, sizeof *fill);
    for (int i = 0; i < nk && fill; i++) {
        int mb = k[i].micro_batch;
        if (mb >= 0 && mb < n_mbs) sorted[first[mb] + fill[mb]++] = k[i];
    }
    free(fill);
    g->available = 1;
    for (int64_t i = 0; i < n_mbs; i++) {
        const KernelRecord *kk = sorted + first[i];
        int n = (int)(first[i + 1] - first[i]);
        if (n == 0) continue;
        int64_t lo = kk[0].start_ns, hi = kk[0].end_ns;
        for (int j = 1; j < n; j++) {
            if (kk[j].start_ns < lo) lo = kk[j].start_ns;
            if (kk[j].end_ns > hi) hi = kk[j].end_ns;
        }
        IdleBreakdown b;
        if (idle_breakdown(kk, n, lo, hi, KERNEL_GAP_THRESHOLD_NS, &b) != 0) continue;
        out->recs[i].seconds = 1e-9 * (double)(hi - lo);
        g->window_s += 1e-9 * (double)b.window_ns;
        g->busy_s += 1e-9 * (double)b.busy_ns;
        g->host_wait_s += 1e-9 * (double)b.host_wait_ns;
        g->kernel_gap_s += 1e-9 * (double)b.kernel_gap_ns;
        g->other_s += 1e-9 * (double)b.other_ns;
    }
    KernelTotal top[RUN_TOP_KERNELS];
    int nt = kernels_top(k, nk, top, RUN_TOP_KERNELS);
    for (int i = 0; i < nt; i++) {
        const char *name = prof_cupti_kernel_name(top[i].name_id);
        snprintf(g->top_name[i], sizeof g->top_name[i], "%s", name ? name : "?");
        g->top_s[i] = 1e-9 * (double)top[i].total_ns;
        g->top_count[i] = top[i].count;
    }
    g->n_top = nt < 0 ? 0 : nt;
    free(sorted);
    free(first);
}

/* The GPU kernel track of the trace: kernels from CUPTI, times from the first one. */
static void trace_kernels(Trace *t, const char *strategy, int limit)
{
    int nk = 0;
    const KernelRecord *k = prof_cupti_kernels(&nk);
    if (!k || nk == 0) return;
    char proc[96];
    snprintf(proc, sizeof proc, "%s: device (measured, serial)", strategy);
    int track = trace_track(t, proc, "GPU kernels (CUPTI)", 1);
    int64_t base = k[0].start_ns;
    for (int i = 1; i < nk; i++)
        if (k[i].start_ns < base) base = k[i].start_ns;
    for (int i = 0; i < nk && (limit <= 0 || i < limit); i++) {
        const char *name = prof_cupti_kernel_name(k[i].name_id);
        trace_slice(t, track, name ? name : "kernel", "kernel", 1e-3 * (double)(k[i].start_ns - base),
                    1e-3 * (double)(k[i].end_ns - k[i].start_ns), NULL);
    }
}

/* One validation point: the held-out losses per bucket after `step` steps. Outside every timed
 * span (and CUPTI context), so no metric counts it. */
int run_evaluate(Model *m, const RunConfig *rc, const Task *task, int step, int64_t seen, RunResult *out,
                 char *err, size_t errlen)
{
    double loss[VAL_MAX_BUCKETS];
    int count[VAL_MAX_BUCKETS];
    double t = wall_seconds(), mm0 = 0, at0 = 0, mm1 = 0, at1 = 0;
    Backend *be = m->be;
    if (be->op_seconds) be->op_seconds(be, &mm0, &at0);
    prof_range_push("validation");
    int rc_eval = val_eval(m, rc->val, task, rc->seed, loss, count);
    prof_range_pop();
    /* keep evaluation out of the matmul / attention shares of the training compute */
    if (be->op_seconds) be->op_seconds(be, &mm1, &at1);
    out->val_op_s[0] += mm1 - mm0;
    out->val_op_s[1] += at1 - at0;
    if (rc_eval != 0 || val_curves_add(&out->val, step, seen, loss) != 0) {
        snprintf(err, errlen, "validation at step %d failed (out of memory)", step);
        return -1;
    }
    out->val_s += wall_seconds() - t;
    return 0;
}

/* Optimizer steps a run of this plan takes (rc->steps, rc->sequences, or the whole plan). */
static int run_n_steps(const Plan *plan, const RunConfig *rc)
{
    return rc->sequences > 0                            ? steps_for_sequences(plan, rc->sequences)
           : rc->steps > 0 && rc->steps < plan->n_steps ? rc->steps
                                                        : plan->n_steps;
}

int run_setup(Backend *be, const Plan *plan, const RunConfig *rc, int n_recs_per_step, RunResult *out, Model *m,
              BatchBuf *bb, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int n_steps = run_n_steps(plan, rc);
    if (n_steps < 1) {
        snprintf(err, errlen, "the plan has no optimizer step (too few samples for one step?)");
        return -1;
    }
    Plan view = *plan;
    view.n_steps = n_steps;   /* size activations for the steps that will run */
    int max_tokens = plan_max_mb_tokens(&view);
    /* ...and for the longest validation sequence (<= L, so packs are unaffected) */
    if (rc->val && rc->val->max_len > max_tokens) max_tokens = rc->val->max_len;

    be->reset_peak(be);
    if (model_create(m, &rc->model, be, max_tokens, rc->recompute, err, errlen) != 0) return -1;
    if (rc->init_params)
        model_set_params(m, rc->init_params);
    else if (model_init_params(m, rc->seed, err, errlen) != 0) {
        model_free(m);
        return -1;
    }

    out->n_steps = n_steps;
    out->n_recs = (int64_t)n_steps * n_recs_per_step;
    out->recs = calloc((size_t)out->n_recs, sizeof *out->recs);
    out->loss_curve = calloc((size_t)n_steps, sizeof(double));
    out->step_wall_s = calloc((size_t)n_steps, sizeof(double));
    out->optimizer_s = calloc((size_t)n_steps, sizeof(double));
    out->grad_norm = calloc((size_t)n_steps, sizeof(double));
    if (!out->recs || !out->loss_curve || !out->step_wall_s || !out->optimizer_s || !out->grad_norm ||
        batch_buf_init(bb, max_tokens) != 0 || (rc->val && val_curves_init(&out->val, rc->val) != 0)) {
        snprintf(err, errlen, "out of host memory for the run records");
        model_free(m);
        run_result_free(out);
        return -1;
    }
    bb->sample_ids = rc->sample_ids;
    out->max_mb_tokens = max_tokens;
    out->act_bytes = m->act_bytes;
    out->matmul_share = out->attention_share = -1;
    return 0;
}

void run_record_shape(MbRow *rec, const RunConfig *rc, const Plan *plan, const MicroBatch *mb,
                      const BatchBuf *bb)
{
    rec->sequences = bb->sequences;
    rec->segments = bb->batch.n_segs;
    rec->real_tokens = bb->real_tokens;
    rec->computed_tokens = bb->computed_tokens;
    rec->target_tokens = bb->target_tokens;
    rec->sum_seq_len_sq = bb->sum_seq_len_sq;
    rec->flops = mb_real_flops(&rc->model, plan, mb, bb->real_tokens);
}

/* cuDNN builds an attention graph per shape on the host: before the timed region */
static void prepare_attention(Backend *be, const RunConfig *rc, const BatchBuf *bb)
{
    if (be->attention_prepare)
        be->attention_prepare(be, bb->batch.n_segs, bb->batch.max_seqlen, bb->batch.n_tokens, rc->model.heads,
                              rc->model.kv_heads, rc->model.head_dim);
}

int run_plan(Backend *be, const Plan *plan, const RunConfig *rc, const Task *task, RunResult *out,
             Model *model_out, char *err, size_t errlen)
{
    const int W = plan->cfg.world_size, A = plan->micro_steps;
    Model m;
    BatchBuf bb;
    if (run_setup(be, plan, rc, A * W, out, &m, &bb, err, errlen) != 0) return -1;
    const int n_steps = out->n_steps;
    double mm0 = 0, at0 = 0;
    if (be->op_seconds) be->op_seconds(be, &mm0, &at0);
    const int on_cpu = be->kind == BACKEND_CPU;
    snprintf(out->timing_source, sizeof out->timing_source, "%s",
             on_cpu ? "wall clock per micro-batch (CPU backend)"
             : rc->cupti ? "CUPTI kernel intervals per micro-batch"
                         : "CUDA events around each micro-batch (CUPTI off or unavailable)");
    if (rc->cupti) prof_cupti_reset();

    prof_range_push(plan->strategy);
    double t0 = wall_seconds();
    progress_begin(rc->progress, "training %s", plan->strategy);
    int64_t ri = 0;
    int failed = rc->val && rc->val_every > 0 ? run_evaluate(&m, rc, task, 0, 0, out, err, errlen) : 0;
    char name[64];
    for (int step = 0; step < n_steps && !failed; step++) {
        prof_range_push("optimizer step");
        double step_loss = 0;
        for (int micro = 0; micro < A; micro++) {
            for (int rank = 0; rank < W; rank++) {
                const MicroBatch *mb = plan_mb(plan, step, micro, rank);
                MbRow *rec = &out->recs[ri];
                rec->step = step;
                rec->micro = micro;
                rec->rank = rank;
                rec->rows = mb->n_rows;
                if (mb->n_rows == 0) {   /* this rank idles at this micro-step */
                    ri++;
                    continue;
                }
                batch_build(&bb, plan, mb, task, rc->seed);
                prepare_attention(be, rc, &bb);
                snprintf(name, sizeof name, "rank %d micro %d", rank, micro);
                prof_range_push(name);
                if (rc->cupti) prof_cupti_set_context(rank, (int)ri);
                be->mark(be, 0);
                double loss = model_forward_backward(&m, &bb.batch, NULL);
                be->mark(be, 1);
                rec->seconds = be->seconds_between(be, 0, 1);
                prof_range_pop();
                rec->loss = loss;
                run_record_shape(rec, rc, plan, mb, &bb);
                out->sequences_seen += bb.sequences;
                step_loss += loss;
                ri++;
            }
            /* a sync point: drain the profiler's buffers while the ranks "wait" */
            if (rc->cupti && plan->cfg.sync == SYNC_MICRO) prof_cupti_flush();
        }
        if (rc->cupti) prof_cupti_set_context(-1, -1);
        be->mark(be, 2);
        out->grad_norm[step] = model_optimizer_step(&m, &rc->opt, rc->max_grad_norm);
        be->mark(be, 3);
        out->optimizer_s[step] = be->seconds_between(be, 2, 3);
        out->loss_curve[step] = step_loss;
        if (rc->cupti) prof_cupti_flush();
        prof_range_pop();
        progress_update(step + 1, n_steps);
        progress_detail("step %d/%d, loss %.4f", step + 1, n_steps, step_loss);
        if (rc->val && ((rc->val_every > 0 && (step + 1) % rc->val_every == 0) || step + 1 == n_steps))
            failed = run_evaluate(&m, rc, task, step + 1, out->sequences_seen, out, err, errlen);
    }
    if (failed) {
        progress_abort();
        prof_range_pop();
        batch_buf_free(&bb);
        model_free(&m);
        run_result_free(out);
        return -1;
    }
    prof_range_pop();
    progress_end();
    out->elapsed_s = wall_seconds() - t0;
    out->peak_bytes = be->peak_bytes(be);
    if (rc->cupti) apply_cupti(out, out->n_recs);
    run_metrics_compute(out->recs, out->n_recs, W, plan->cfg.sync, A, out->optimizer_s, n_steps, rc->comm,
                        be->peak_flops, &out->metrics);
    run_step_walls(out->recs, out->n_recs, W, plan->cfg.sync, A, out->optimizer_s, n_steps, rc->comm,
                   out->step_wall_s);
    if (be->op_seconds && out->metrics.compute_s > 0) {
        double mm1, at1;
        be->op_seconds(be, &mm1, &at1);
        double total = out->metrics.compute_s + out->metrics.optimizer_s;
        out->matmul_share = (mm1 - mm0 - out->val_op_s[0]) / total;
        out->attention_share = (at1 - at0 - out->val_op_s[1]) / total;
    }
    if (rc->trace) {
        run_trace(rc->trace, plan->strategy, out, W, plan->cfg.sync, A, rc->comm, 0);
        if (rc->cupti) trace_kernels(rc->trace, plan->strategy, rc->trace_kernel_limit);
    }
    batch_buf_free(&bb);
    if (model_out)
        *model_out = m;
    else
        model_free(&m);
    return 0;
}

double run_calibrate(Backend *be, const Plan *plan, const RunConfig *rc, const Task *task, int k)
{
    char err[512];
    Plan view = *plan;
    view.n_steps = 1;
    int max_tokens = plan_max_mb_tokens(&view);
    Model m;
    BatchBuf bb;
    if (model_create(&m, &rc->model, be, max_tokens, rc->recompute, err, sizeof err) != 0) return -1;
    if (batch_buf_init(&bb, max_tokens) != 0) {
        model_free(&m);
        return -1;
    }
    if (model_init_params(&m, rc->seed, err, sizeof err) != 0) {
        batch_buf_free(&bb);
        model_free(&m);
        return -1;
    }
    double total = 0;
    int done = 0;
    for (int micro = 0; micro < plan->micro_steps && done < k; micro++)
        for (int rank = 0; rank < plan->cfg.world_size && done < k; rank++) {
            const MicroBatch *mb = plan_mb(plan, 0, micro, rank);
            if (!mb->n_rows) continue;
            batch_build(&bb, plan, mb, task, rc->seed);
            prepare_attention(be, rc, &bb);
            be->mark(be, 4);
            model_forward_backward(&m, &bb.batch, NULL);
            be->mark(be, 5);
            total += be->seconds_between(be, 4, 5);
            done++;
        }
    batch_buf_free(&bb);
    model_free(&m);
    return total;
}

void run_trace(Trace *t, const char *strategy, const RunResult *r, int W, SyncModel sync, int A, CommTimes comm,
               double t0_us)
{
    char proc[96], thread[64];
    snprintf(proc, sizeof proc, "%s: DP timeline (simulated ranks)", strategy);
    int *rank_track = malloc((size_t)W * sizeof *rank_track);
    double *t_rank = malloc((size_t)W * sizeof *t_rank);
    if (!rank_track || !t_rank) {
        free(rank_track);
        free(t_rank);
        return;
    }
    for (int rk = 0; rk < W; rk++) {
        snprintf(thread, sizeof thread, "rank %d", rk);
        rank_track[rk] = trace_track(t, proc, thread, rk);
    }
    int comm_track = trace_track(t, proc, "communication (modelled)", W);
    int opt_track = trace_track(t, proc, "optimizer", W + 1);
    const int spp = sync == SYNC_MICRO ? A : 1;
    const double us = 1e6;
    double now = t0_us;
    int64_t i = 0;
    for (int step = 0; step < r->n_steps; step++) {
        int step_busy = 0;   /* only micro-steps and steps with work communicate */
        for (int sp = 0; sp < spp; sp++) {
            /* records of this sync point: one micro-step (sync micro) or the whole step */
            int64_t lo = i, hi = i + (int64_t)W * (A / spp);
            for (int rk = 0; rk < W; rk++) t_rank[rk] = 0;
            double mx = 0;
            int busy = 0, last_busy_micro = -1;
            for (int64_t j = lo; j < hi && j < r->n_recs; j++) {
                const MbRow *x = &r->recs[j];
                if (x->rows > 0 && x->micro != last_busy_micro) {   /* records come micro-step by micro-step */
                    busy++;
                    last_busy_micro = x->micro;
                }
                if (x->rows > 0) {
                    char label[64];
                    snprintf(label, sizeof label, "step %d micro %d: %lld tok", x->step, x->micro,
                             (long long)x->computed_tokens);
                    trace_slice(t, rank_track[x->rank], label, "compute", now + t_rank[x->rank] * us,
                                x->seconds * us, NULL);
                }
                t_rank[x->rank] += x->seconds;
            }
            mx = sync_point_close(t_rank, W, NULL);
            for (int rk = 0; rk < W; rk++)
                if (mx - t_rank[rk] > 0)
                    trace_slice(t, rank_track[rk], "bubble: waiting for the slowest rank", "bubble",
                                now + t_rank[rk] * us, (mx - t_rank[rk]) * us, NULL);
            now += mx * us;
            step_busy += busy;
            double c = comm.micro_s * busy + (sp == spp - 1 && step_busy > 0 ? comm.step_s : 0);
            if (c > 0) {
                trace_slice(t, comm_track, "communication", "comm", now, c * us, NULL);
                now += c * us;
            }
            i = hi;
        }
        trace_slice(t, opt_track, "optimizer step", "optimizer", now, r->optimizer_s[step] * us, NULL);
        now += r->optimizer_s[step] * us;
    }
    free(rank_track);
    free(t_rank);
    if (r->dp) return;   /* real ranks ran at once, each on its own device: dp_trace draws them */
    /* the device's measured serial timeline: ranks ran one after another on one device */
    snprintf(proc, sizeof proc, "%s: device (measured, serial)", strategy);
    int dev = trace_track(t, proc, "micro-batches", 0);
    double serial = t0_us;
    for (int64_t j = 0; j < r->n_recs; j++) {
        const MbRow *x = &r->recs[j];
        if (x->rows == 0) continue;
        char label[64];
        snprintf(label, sizeof label, "rank %d step %d micro %d", x->rank, x->step, x->micro);
        trace_slice(t, dev, label, "measured", serial, x->seconds * us, NULL);
        serial += x->seconds * us;
    }
}

void run_result_free(RunResult *r)
{
    if (r->dp && r->dp_free) r->dp_free(r->dp);
    free(r->recs);
    free(r->loss_curve);
    free(r->step_wall_s);
    free(r->optimizer_s);
    free(r->grad_norm);
    val_curves_free(&r->val);
    memset(r, 0, sizeof *r);
}
