/* `labench predict`'s output: the console tables and the predictions JSON (schema
 * "labench-predict", version 1; docs/communication.md, "labench predict"). */
#include "bench/results/predictions.h"

#include <math.h>
#include <string.h>

#include "common/host.h"
#include "common/json_out.h"

void predictions_print_fits(FILE *f, const Measured *src, int holdout_every, int pooled)
{
    fprintf(f, "\nFit of each micro-batch's measured time (%s; every %d-th micro-batch held back):\n",
           pooled ? "one fit over every strategy" : "one fit per strategy", holdout_every);
    fprintf(f, "%-17s %11s %11s %11s %11s %6s %5s %8s %8s %9s %9s\n", "strategy", "a s/token", "b s/len^2", "c s/seg",
           "d s/mb", "fit", "held", "R^2 fit", "R^2 held", "MAPE held", "WAPE held");
    for (int i = 0; i < src->n; i++) {
        const MeasuredStrategy *s = &src->strats[i];
        if (pooled && i > 0) break;   /* one fit shared by every strategy */
        if (!s->fitted) {
            fprintf(f, "%-17s  (not fitted: too few micro-batches)\n", s->name);
            continue;
        }
        const TimeFit *t = &s->fit;
        char r2h[16] = "-", mape[16] = "-", wape[16] = "-";
        if (isfinite(t->holdout_r2)) snprintf(r2h, sizeof r2h, "%.4f", t->holdout_r2);
        if (isfinite(t->holdout_mape)) snprintf(mape, sizeof mape, "%.2f%%", 100 * t->holdout_mape);
        if (isfinite(t->holdout_wape)) snprintf(wape, sizeof wape, "%.2f%%", 100 * t->holdout_wape);
        fprintf(f, "%-17s %11.4g %11.4g %11.4g %11.4g %6lld %5lld %8.4f %8s %9s %9s\n",
               pooled ? "(all, pooled)" : s->name, t->per_token,
               t->per_token_sq, t->per_segment, t->intercept, (long long)t->n_fit, (long long)t->n_holdout,
               t->fit_r2, r2h, mape, wape);
    }
    fprintf(f, "Replay check (the fit on the run's own micro-batches; sum over sync points of the slowest rank):\n");
    for (int i = 0; i < src->n; i++) {
        const MeasuredStrategy *s = &src->strats[i];
        if (!s->fitted || s->replay_measured_s <= 0) continue;
        fprintf(f, "  %-17s measured %.4g s, fitted %.4g s (%+.1f%%)\n", s->name, s->replay_measured_s,
               s->replay_predicted_s, 100 * (s->replay_predicted_s / s->replay_measured_s - 1));
    }
}

void predictions_print_world(FILE *f, int W, const CommCost *cc, const CommConfig *comm, const Prediction *p, int n)
{
    fprintf(f, "\nW = %d ranks", W);
    if (comm->kind != COMM_NONE)
        fprintf(f, "  (%s: %.4g s per micro-step, %.4g s per optimizer step)", comm_kind_name(comm->kind),
               cc->per_micro_step_s, cc->per_step_s);
    fprintf(f, "\n%-33s | %-37s | %s\n", "", "------------ compute only -----------",
           "---------------- with communication ----------------");
    fprintf(f, "%-18s %6s %7s | %10s %6s %11s %7s | %10s %10s %6s %11s %7s\n", "strategy", "steps", "syncs", "wall s",
           "bub %", "eff tok/s", "x naive", "comm s", "wall s", "bub %", "eff tok/s", "x naive");
    const Prediction *naive = NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(p[i].src->name, "naive") == 0) naive = &p[i];
    for (int i = 0; i < n; i++) {
        const DpPrediction *d = &p[i].dp;
        char s1[16] = "-", s2[16] = "-";
        if (naive && naive->dp.eff_tps > 0) snprintf(s1, sizeof s1, "%.2fx", d->eff_tps / naive->dp.eff_tps);
        if (naive && naive->dp.eff_tps_comm > 0)
            snprintf(s2, sizeof s2, "%.2fx", d->eff_tps_comm / naive->dp.eff_tps_comm);
        fprintf(f, "%-17s%s %6lld %7lld | %10.4g %6.2f %11.4g %7s | %10.4g %10.4g %6.2f %11.4g %7s\n", p[i].src->name,
               p[i].extrapolated ? "*" : " ", (long long)d->steps, (long long)d->sync_points, d->compute_wall_s,
               100 * d->bubble, d->eff_tps, s1, d->comm_s, d->comm_wall_s, 100 * d->bubble_comm, d->eff_tps_comm, s2);
    }
}

void predictions_print_fig5(FILE *out, const Fig5Prediction *f)
{
    fprintf(out, "\nLongAlign Figure 5 (8x A800, DeepSpeed ZeRO-3 + CPU offload; training hours, speed-up over naive):\n");
    fprintf(out, "  %-26s %8s %8s %8s %10s %10s\n", "", "naive h", "pack h", "sorted h", "packing x", "sorted x");
    for (int i = 0; i < N_LONGALIGN_FIG5; i++) {
        const LongAlignHours *h = &LONGALIGN_FIG5[i];
        fprintf(out, "  %-26s %8.1f %8.1f %8.1f %9.2fx %9.2fx\n", h->model, h->naive_h, h->packing_h, h->sorted_h,
               h->naive_h / h->packing_h, h->naive_h / h->sorted_h);
    }
    for (int with_comm = 0; with_comm <= 1; with_comm++) {
        char label[64];
        snprintf(label, sizeof label, "predicted W=%d, %s", f->world_size, with_comm ? "with comm" : "compute only");
        fprintf(out, "  %-26s %8s %8s %8s %9.2fx %9.2fx\n", label, "", "", "", f->packing[with_comm],
               f->sorted[with_comm]);
    }
}

static json_t *pred_json(const Prediction *p, const Prediction *all, int n)
{
    const DpPrediction *d = &p->dp;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(p->src->name));
    json_object_set_new(o, "max_tokens", json_integer(p->cfg.max_tokens));
    json_object_set_new(o, "steps", json_integer(d->steps));
    json_object_set_new(o, "micro_steps", json_integer(d->micro_steps));
    json_object_set_new(o, "sync_points", json_integer(d->sync_points));
    json_object_set_new(o, "micro_batches", json_integer(d->micro_batches));
    json_object_set_new(o, "real_tokens", json_integer(d->real_tokens));
    json_object_set_new(o, "computed_tokens", json_integer(d->computed_tokens));
    json_object_set_new(o, "max_micro_batch_tokens", json_integer(d->max_mb_tokens));
    json_object_set_new(o, "extrapolated", json_boolean(p->extrapolated));
    json_object_set_new(o, "sync_max_seconds", json_real_or_null(d->max_sum_s));
    json_object_set_new(o, "bubble_seconds", json_real_or_null(d->bubble_s));
    json_object_set_new(o, "optimizer_seconds", json_real_or_null(d->optimizer_s));
    json_t *c = json_object();
    json_object_set_new(c, "dp_wall_seconds", json_real_or_null(d->compute_wall_s));
    json_object_set_new(c, "dp_bubble_fraction", json_real_or_null(d->bubble));
    json_object_set_new(c, "effective_tokens_per_s", json_real_or_null(d->eff_tps));
    json_object_set_new(c, "speedup_vs_naive", json_real_or_null(prediction_speedup(all, n, p->src->name, 0)));
    json_object_set_new(o, "compute_only", c);
    json_t *w = json_object();
    json_object_set_new(w, "comm_seconds", json_real_or_null(d->comm_s));
    json_object_set_new(w, "dp_wall_seconds", json_real_or_null(d->comm_wall_s));
    json_object_set_new(w, "dp_bubble_fraction", json_real_or_null(d->bubble_comm));
    json_object_set_new(w, "effective_tokens_per_s", json_real_or_null(d->eff_tps_comm));
    json_object_set_new(w, "speedup_vs_naive", json_real_or_null(prediction_speedup(all, n, p->src->name, 1)));
    json_object_set_new(o, "with_comm", w);
    return o;
}

static json_t *fit_json(const MeasuredStrategy *s, int pooled)
{
    const TimeFit *f = &s->fit;
    json_t *o = json_object();
    json_object_set_new(o, "strategy", json_string(s->name));
    json_object_set_new(o, "pooled", json_boolean(pooled));
    json_object_set_new(o, "per_computed_token_seconds", json_real_or_null(f->per_token));
    json_object_set_new(o, "per_seq_len_sq_seconds", json_real_or_null(f->per_token_sq));
    json_object_set_new(o, "per_segment_seconds", json_real_or_null(f->per_segment));
    json_object_set_new(o, "intercept_seconds", json_real_or_null(f->intercept));
    json_t *dropped = json_array();
    for (int j = 0; j < TIME_FIT_TERMS; j++)
        if (f->dropped >> j & 1) json_array_append_new(dropped, json_string(time_fit_term_name(j)));
    json_object_set_new(o, "terms_at_zero", dropped);
    json_object_set_new(o, "n_fit", json_integer(f->n_fit));
    json_object_set_new(o, "n_holdout", json_integer(f->n_holdout));
    json_object_set_new(o, "fit_r2", json_real_or_null(f->fit_r2));
    json_object_set_new(o, "holdout_r2", json_real_or_null(f->holdout_r2));
    json_object_set_new(o, "holdout_mape", json_real_or_null(f->holdout_mape));
    json_object_set_new(o, "holdout_wape", json_real_or_null(f->holdout_wape));
    json_object_set_new(o, "optimizer_step_seconds_median", json_real_or_null(s->optimizer_s));
    json_object_set_new(o, "replay_measured_sync_max_seconds", json_real_or_null(s->replay_measured_s));
    json_object_set_new(o, "replay_fitted_sync_max_seconds", json_real_or_null(s->replay_predicted_s));
    return o;
}

json_t *predictions_world_json(int W, const CommConfig *comm, const CommCost *cc, const Prediction *p, int n)
{
    json_t *wj = json_object();
    json_object_set_new(wj, "world_size", json_integer(W));
    json_object_set_new(wj, "comm", comm_to_json(comm, cc));
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(arr, pred_json(&p[i], p, n));
    json_object_set_new(wj, "strategies", arr);
    return wj;
}

int predictions_write(const char *path, const PredictionsDoc *d, char *err, size_t errlen)
{
    char now[64], commit[160];
    utc_now_iso(now, sizeof now);
    source_commit(commit, sizeof commit);
    json_t *root = json_object();
    json_object_set_new(root, "schema", json_string("labench-predict"));
    json_object_set_new(root, "schema_version", json_integer(1));
    json_object_set_new(root, "created", json_string(now));
    json_object_set_new(root, "commit", json_string(commit));
    json_object_set_new(root, "command", json_string(d->command));
    json_object_set_new(root, "from",
                        json_pack("{s:s, s:s, s:s, s:s, s:i, s:f}", "path", d->from, "commit", d->src->commit, "device",
                                  d->src->device, "model", d->src->model.name, "layers", d->src->model.layers, "params",
                                  d->src->n_params));
    json_object_set_new(root, "distribution",
                        json_pack("{s:s, s:I, s:f, s:I}", "len_dist", d->len_dist, "samples", (json_int_t)d->samples,
                                  "len_scale", d->len_scale, "seed", (json_int_t)d->seed));
    json_object_set_new(root, "fit_model",
                        json_pack("{s:s, s:s, s:i}", "formula",
                                  "seconds = per_computed_token * computed_tokens + per_seq_len_sq * sum_seq_len_sq"
                                  " + per_segment * segments + intercept, coefficients >= 0",
                                  "mode", d->pooled ? "pooled" : "per-strategy", "holdout_every", d->holdout_every));
    json_t *fits = json_array();
    for (int i = 0; i < d->src->n; i++)
        if (d->src->strats[i].fitted) json_array_append_new(fits, fit_json(&d->src->strats[i], d->pooled));
    json_object_set_new(root, "fits", fits);
    json_object_set_new(root, "communication", comm_to_json(d->comm, NULL));
    json_object_set_new(root, "predictions", json_incref(d->predictions));
    json_t *fig5 = json_array();
    for (int i = 0; i < N_LONGALIGN_FIG5; i++) {
        const LongAlignHours *x = &LONGALIGN_FIG5[i];
        json_array_append_new(fig5, json_pack("{s:s, s:f, s:f, s:f, s:f, s:f}", "model", x->model, "naive_hours",
                                              x->naive_h, "packing_hours", x->packing_h, "sorted_hours", x->sorted_h,
                                              "packing_speedup", x->naive_h / x->packing_h, "sorted_speedup",
                                              x->naive_h / x->sorted_h));
    }
    json_object_set_new(root, "longalign_figure5", fig5);
    json_object_set_new(root, "figure5_predicted",
                        json_pack("{s:i, s:o, s:o, s:o, s:o}", "world_size", d->fig5->world_size,
                                  "packing_speedup_compute_only", json_real_or_null(d->fig5->packing[0]),
                                  "sorted_speedup_compute_only", json_real_or_null(d->fig5->sorted[0]),
                                  "packing_speedup_with_comm", json_real_or_null(d->fig5->packing[1]),
                                  "sorted_speedup_with_comm", json_real_or_null(d->fig5->sorted[1])));

    int rc = json_write_atomic(path, root, "the predictions", err, errlen);
    json_decref(root);
    return rc;
}
