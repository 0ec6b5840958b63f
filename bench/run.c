#include "bench/run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/batch.h"
#include "bench/util.h"

static void progress_line(const char *name, int step, int n_steps, double loss, double elapsed)
{
    fprintf(stderr, "\r  %-18s step %d/%d  loss %.4f  %.1f s   ", name, step, n_steps, loss, elapsed);
    fflush(stderr);
}

int run_plan(Backend *be, const Plan *plan, const RunConfig *rc, const MarkovChain *mc, RunResult *out,
             Model *model_out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const int W = plan->cfg.world_size, A = plan->micro_steps;
    int n_steps = rc->steps > 0 && rc->steps < plan->n_steps ? rc->steps : plan->n_steps;
    if (n_steps < 1) {
        snprintf(err, errlen, "the plan has no optimizer step (too few samples for one step?)");
        return -1;
    }
    Plan view = *plan;
    view.n_steps = n_steps;   /* size activations for the steps that will run */
    int max_tokens = plan_max_mb_tokens(&view);

    Model m;
    be->reset_peak(be);
    if (model_create(&m, &rc->model, be, max_tokens, rc->recompute, err, errlen) != 0) return -1;
    if (rc->init_params)
        model_set_params(&m, rc->init_params);
    else
        model_init_params(&m, rc->seed);

    BatchBuf bb;
    out->n_steps = n_steps;
    out->n_recs = (int64_t)n_steps * A * W;
    out->recs = calloc((size_t)out->n_recs, sizeof *out->recs);
    out->loss_curve = calloc((size_t)n_steps, sizeof(double));
    out->step_wall_s = calloc((size_t)n_steps, sizeof(double));
    out->optimizer_s = calloc((size_t)n_steps, sizeof(double));
    out->grad_norm = calloc((size_t)n_steps, sizeof(double));
    if (!out->recs || !out->loss_curve || !out->step_wall_s || !out->optimizer_s || !out->grad_norm ||
        batch_buf_init(&bb, max_tokens) != 0) {
        snprintf(err, errlen, "out of host memory for the run records");
        model_free(&m);
        run_result_free(out);
        return -1;
    }
    out->max_mb_tokens = max_tokens;
    out->act_bytes = m.act_bytes;
    snprintf(out->timing_source, sizeof out->timing_source, "%s",
             strcmp(be->name, "cpu") == 0 ? "wall clock per micro-batch (CPU backend)"
                                           : "CUDA events around each micro-batch");

    double t0 = wall_seconds();
    int64_t ri = 0;
    for (int step = 0; step < n_steps; step++) {
        double step_loss = 0;
        for (int micro = 0; micro < A; micro++) {
            for (int rank = 0; rank < W; rank++) {
                const MicroBatch *mb = plan_mb(plan, step, micro, rank);
                MbRecord *rec = &out->recs[ri++];
                rec->step = step;
                rec->micro = micro;
                rec->rank = rank;
                rec->rows = mb->n_rows;
                if (mb->n_rows == 0) continue;   /* this rank idles at this micro-step */
                batch_build(&bb, plan, mb, mc, rc->seed);
                be->mark(be, 0);
                double loss = model_forward_backward(&m, &bb.batch, NULL);
                be->mark(be, 1);
                rec->seconds = be->seconds_between(be, 0, 1);
                rec->loss = loss;
                rec->sequences = bb.sequences;
                rec->segments = bb.batch.n_segs;
                rec->real_tokens = bb.real_tokens;
                rec->computed_tokens = bb.computed_tokens;
                rec->target_tokens = bb.target_tokens;
                rec->sum_seq_len_sq = bb.sum_seq_len_sq;
                /* MFU counts the real tokens only: the work of pads is waste, not model FLOPs */
                double real_sq = 0;
                for (int r = 0; r < mb->n_rows; r++) {
                    const Row *row = &plan->rows[mb->first_row + r];
                    for (int s = 0; s < row->n_segments; s++) {
                        double l = plan->segs[row->first_segment + s].len;
                        real_sq += l * l;
                    }
                }
                rec->flops = model_flops(&rc->model, bb.real_tokens, real_sq);
                step_loss += loss;
            }
        }
        be->mark(be, 2);
        out->grad_norm[step] = model_optimizer_step(&m, &rc->opt, rc->max_grad_norm);
        be->mark(be, 3);
        out->optimizer_s[step] = be->seconds_between(be, 2, 3);
        out->loss_curve[step] = step_loss;
        if (rc->progress) progress_line(plan->strategy, step + 1, n_steps, step_loss, wall_seconds() - t0);
    }
    if (rc->progress) fputc('\n', stderr);
    out->elapsed_s = wall_seconds() - t0;
    out->peak_bytes = be->peak_bytes(be);
    run_metrics_compute(out->recs, out->n_recs, W, plan->cfg.sync, out->optimizer_s, n_steps, rc->comm_per_sync_s,
                        be->peak_flops, &out->metrics);
    run_step_walls(out->recs, out->n_recs, W, plan->cfg.sync, out->optimizer_s, n_steps, rc->comm_per_sync_s,
                   out->step_wall_s);
    batch_buf_free(&bb);
    if (model_out)
        *model_out = m;
    else
        model_free(&m);
    return 0;
}

void run_result_free(RunResult *r)
{
    free(r->recs);
    free(r->loss_curve);
    free(r->step_wall_s);
    free(r->optimizer_s);
    free(r->grad_norm);
    memset(r, 0, sizeof *r);
}
