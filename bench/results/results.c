#include "bench/results/results.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/results/results_dp.h"
#include "common/host.h"
#include "common/json_out.h"
#include "kernels/cpu/cpuinfo.h"
#include "kernels/cpu/openblas.h"

/* machine.blas: the BLAS labench links and the kernels it runs (kernels/cpu/openblas.h) */
static json_t *blas_json(void)
{
    CpuBlasInfo b;
    cpu_blas_info(&b);
    json_t *o = json_object();
    json_object_set_new(o, "library", json_string(b.library));
    json_object_set_new(o, "version", json_string(b.version));
    json_object_set_new(o, "config", json_string(b.config));
    json_object_set_new(o, "core", json_string(b.core));
    json_object_set_new(o, "core_isa", json_string(cpu_isa_name(b.core_isa)));
    json_object_set_new(o, "threading", json_string(b.threading));
    json_object_set_new(o, "threads", json_integer(b.threads));
    json_object_set_new(o, "coretype_env", b.coretype_env[0] ? json_string(b.coretype_env) : json_null());
    json_object_set_new(o, "fallback", json_boolean(b.fallback));
    json_object_set_new(o, "suggested_coretype", b.suggested_coretype[0] ? json_string(b.suggested_coretype) : json_null());
    return o;
}

/* machine.openmp: how OpenMP's threads wait between parallel regions (the environment read by
 * libgomp at start-up; null when unset, i.e. libgomp's default) */
static json_t *openmp_json(void)
{
    const char *policy = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    return json_pack("{s:i, s:o, s:o}", "threads", omp_get_max_threads(), "wait_policy",
                     policy ? json_string(policy) : json_null(), "gomp_spincount", spin ? json_string(spin) : json_null());
}


void machine_cpu_name(char *buf, size_t n)
{
    CpuInfo ci;
    cpu_read_info(&ci);   /* "unknown CPU" when /proc/cpuinfo names none */
    snprintf(buf, n, "%s", ci.model);
}

static json_t *plan_config_json(const PlanConfig *c)
{
    json_t *o = json_pack("{s:i, s:i, s:i, s:i, s:i, s:s, s:I, s:{s:f, s:f, s:f}}", "world_size", c->world_size,
                          "micro_batch", c->micro_batch, "grad_accum", c->grad_accum, "max_tokens", c->max_tokens,
                          "epochs", c->epochs, "sync", c->sync == SYNC_MICRO ? "micro" : "step", "seed",
                          (json_int_t)c->seed, "cost_model", "per_token", c->cost.per_token, "per_token_sq",
                          c->cost.per_token_sq, "per_row", c->cost.per_row);
    /* Only fitted models (--cost-from) have a per-segment term: files of shape-derived models stay
     * as they were, so `compare` still matches them. */
    if (c->cost.per_segment != 0)
        json_object_set_new(json_object_get(o, "cost_model"), "per_segment", json_real(c->cost.per_segment));
    return o;
}

static json_t *plan_metrics_json(const PlanMetrics *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "optimizer_steps", json_integer(m->optimizer_steps));
    json_object_set_new(o, "micro_batches", json_integer(m->micro_batches));
    json_object_set_new(o, "rows", json_integer(m->rows));
    json_object_set_new(o, "sequences", json_integer(m->sequences));
    json_object_set_new(o, "truncated", json_integer(m->truncated));
    json_object_set_new(o, "real_tokens", json_integer(m->real_tokens));
    json_object_set_new(o, "computed_tokens", json_integer(m->computed_tokens));
    json_object_set_new(o, "target_tokens", json_integer(m->target_tokens));
    json_object_set_new(o, "padding_ratio", json_real_or_null(m->padding_ratio));
    json_object_set_new(o, "packing_efficiency", json_real_or_null(m->packing_efficiency));
    json_object_set_new(o, "token_imbalance", json_real_or_null(m->token_imbalance));
    json_object_set_new(o, "predicted_bubble", json_real_or_null(m->predicted_bubble));
    json_object_set_new(o, "predicted_wall_cost", json_real_or_null(m->predicted_wall));
    json_object_set_new(o, "weight_min", json_real_or_null(m->weight_min));
    json_object_set_new(o, "weight_max", json_real_or_null(m->weight_max));
    json_object_set_new(o, "weight_share_longest10", json_real_or_null(m->weight_share_longest10));
    json_object_set_new(o, "weight_share_longest10_ideal", json_real_or_null(m->weight_share_longest10_ideal));
    json_object_set_new(o, "weight_share_longest10_per_step_ideal", json_real_or_null(m->weight_share_longest10_ideal));
    json_object_set_new(o, "weight_share_longest10_uniform", json_real_or_null(m->weight_share_longest10_uniform));
    json_object_set_new(o, "step_sequences_min", json_real_or_null(m->step_seqs_min));
    json_object_set_new(o, "step_sequences_max", json_real_or_null(m->step_seqs_max));
    json_object_set_new(o, "step_sequences_mean", json_real_or_null(m->step_seqs_mean));
    json_object_set_new(o, "step_sequences_cv", json_real_or_null(m->step_seqs_cv));
    json_object_set_new(o, "weight_epoch_p1", json_real_or_null(m->weight_epoch_p1));
    json_object_set_new(o, "weight_epoch_p99", json_real_or_null(m->weight_epoch_p99));
    json_object_set_new(o, "weight_epoch_spread", json_real_or_null(m->weight_epoch_spread));
    json_object_set_new(o, "rank_utilisation", json_real_or_null(m->rank_utilisation));
    json_object_set_new(o, "eq2_over_epoch", json_boolean(plan_metrics_fair(m)));
    json_object_set_new(o, "full_step_packing_efficiency", json_real_or_null(m->full_step_efficiency));
    json_object_set_new(o, "full_step_rank_utilisation", json_real_or_null(m->full_step_utilisation));
    json_object_set_new(o, "full_step_predicted_bubble", json_real_or_null(m->full_step_bubble));
    json_object_set_new(o, "plan_seconds", json_real_or_null(m->plan_seconds));
    return o;
}

/* [sequence length, effective loss weight x M] pairs (epoch = 0: the weight-against-length plot),
 * or [length, weight x mean M] (epoch = 1: against the epoch-uniform weight). */
static json_t *weights_json(const StrategyResult *s, int epoch)
{
    json_t *a = json_array();
    for (int i = 0; i < s->n_weights; i++)
        json_array_append_new(a, json_pack("[i,o]", (int)s->weights[i].len,
                                           json_real_or_null(epoch ? s->weights[i].epoch_rel : s->weights[i].step_rel)));
    return a;
}

static json_t *doubles_json(const double *x, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real_or_null(x[i]));
    return a;
}

static json_t *run_json(const RunResult *r)
{
    const RunMetrics *m = &r->metrics;
    json_t *o = json_object();
    json_object_set_new(o, "steps", json_integer(m->steps));
    json_object_set_new(o, "sync_points", json_integer(m->sync_points));
    json_object_set_new(o, "micro_batches", json_integer(m->micro_batches));
    json_object_set_new(o, "sequences", json_integer(m->sequences));
    json_object_set_new(o, "real_tokens", json_integer(m->real_tokens));
    json_object_set_new(o, "computed_tokens", json_integer(m->computed_tokens));
    json_object_set_new(o, "target_tokens", json_integer(m->target_tokens));
    json_object_set_new(o, "compute_seconds", json_real_or_null(m->compute_s));
    json_object_set_new(o, "optimizer_seconds", json_real_or_null(m->optimizer_s));
    json_object_set_new(o, "validation_seconds", json_real_or_null(r->val_s));
    json_object_set_new(o, "comm_seconds", json_real_or_null(m->comm_s));
    json_object_set_new(o, "dp_wall_seconds", json_real_or_null(m->dp_wall_s));
    json_object_set_new(o, "bubble_seconds", json_real_or_null(m->bubble_s));
    json_object_set_new(o, "dp_bubble_fraction", json_real_or_null(m->dp_bubble));
    json_object_set_new(o, "effective_tokens_per_s", json_real_or_null(m->effective_tps));
    json_object_set_new(o, "computed_tokens_per_s", json_real_or_null(m->computed_tps));
    json_object_set_new(o, "padding_ratio", json_real_or_null(m->padding_ratio));
    json_object_set_new(o, "model_flops", json_real_or_null(m->model_flops));
    json_object_set_new(o, "mfu", json_real_or_null(m->mfu));
    json_object_set_new(o, "peak_memory_bytes", json_integer((json_int_t)r->peak_bytes));
    json_object_set_new(o, "activation_bytes", json_integer((json_int_t)r->act_bytes));
    json_object_set_new(o, "max_micro_batch_tokens", json_integer(r->max_mb_tokens));
    json_object_set_new(o, "elapsed_seconds", json_real_or_null(r->elapsed_s));
    json_object_set_new(o, "timing_source", json_string(r->timing_source));
    json_object_set_new(o, "compute_wall_seconds", json_real_or_null(m->compute_wall_s));
    json_object_set_new(o, "dp_bubble_fraction_compute_only", json_real_or_null(m->dp_bubble_compute));
    json_object_set_new(o, "effective_tokens_per_s_compute_only", json_real_or_null(m->effective_tps_compute));
    json_object_set_new(o, "matmul_share", r->matmul_share >= 0 ? json_real_or_null(r->matmul_share) : json_null());
    json_object_set_new(o, "attention_share", r->attention_share >= 0 ? json_real_or_null(r->attention_share) : json_null());
    const GpuIdle *g = &r->gpu;
    if (g->available && g->window_s > 0) {
        json_object_set_new(o, "gpu_idle_fraction", json_real_or_null(1.0 - g->busy_s / g->window_s));
        json_t *gi = json_object();
        json_object_set_new(gi, "window_seconds", json_real_or_null(g->window_s));
        json_object_set_new(gi, "busy_seconds", json_real_or_null(g->busy_s));
        json_object_set_new(gi, "host_wait_seconds", json_real_or_null(g->host_wait_s));
        json_object_set_new(gi, "kernel_gap_seconds", json_real_or_null(g->kernel_gap_s));
        json_object_set_new(gi, "other_seconds", json_real_or_null(g->other_s));
        json_t *top = json_array();
        for (int i = 0; i < g->n_top; i++)
            json_array_append_new(top, json_pack("{s:s, s:o, s:I}", "name", g->top_name[i], "seconds",
                                                 json_real_or_null(g->top_s[i]), "count", (json_int_t)g->top_count[i]));
        json_object_set_new(gi, "top_kernels", top);
        const ProfStats *ps = &g->stats;
        json_object_set_new(gi, "cupti", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "kernels",
                                                   (json_int_t)ps->kernels, "dropped_records",
                                                   (json_int_t)ps->dropped_records, "lost_records",
                                                   (json_int_t)ps->lost_records, "memcpy_count",
                                                   (json_int_t)ps->memcpy_count, "memcpy_bytes",
                                                   (json_int_t)ps->memcpy_bytes, "memset_count",
                                                   (json_int_t)ps->memset_count, "markers",
                                                   (json_int_t)ps->markers, "mem_high_water_bytes",
                                                   (json_int_t)ps->mem_high_water_bytes));
        json_object_set_new(o, "gpu_idle", gi);
    } else {
        json_object_set_new(o, "gpu_idle_fraction", json_null());
    }
    json_object_set_new(o, "final_loss", json_real_or_null(r->n_steps > 0 ? r->loss_curve[r->n_steps - 1] : 0.0));
    json_object_set_new(o, "loss_curve", doubles_json(r->loss_curve, r->n_steps));
    json_object_set_new(o, "step_wall_seconds", doubles_json(r->step_wall_s, r->n_steps));
    json_object_set_new(o, "optimizer_step_seconds", doubles_json(r->optimizer_s, r->n_steps));
    json_object_set_new(o, "grad_norm", doubles_json(r->grad_norm, r->n_steps));
    /* One array per micro-batch, column names in micro_batch_columns: compact, and enough to
     * redraw the DP timeline or fit a cost model (labench predict). */
    json_t *cols = json_array();
    for (int c = 0; c < MB_N_COLUMNS; c++) json_array_append_new(cols, json_string(MB_COLUMN_NAMES[c]));
    json_object_set_new(o, "micro_batch_columns", cols);
    json_t *mbs = json_array();
    for (int64_t i = 0; i < r->n_recs; i++) {
        const MbRow *x = &r->recs[i];
        /* jreal: a diverged micro-batch's NaN loss is null; json_pack's "f" would drop the row. */
        json_array_append_new(mbs, json_pack("[i,i,i,i,i,i,I,I,o,o,o]", x->step, x->micro, x->rank, x->rows,
                                             x->sequences, x->segments, (json_int_t)x->real_tokens,
                                             (json_int_t)x->computed_tokens, json_real_or_null(x->sum_seq_len_sq),
                                             json_real_or_null(x->seconds), json_real_or_null(x->loss)));
    }
    json_object_set_new(o, "micro_batches_detail", mbs);
    if (r->dp) json_object_set_new(o, "dp_real", dp_real_json(r->dp));
    return o;
}

json_t *results_to_json(const ResultsDoc *d)
{
    char cpu[256], host[256], commit[160], now[64];
    machine_cpu_name(cpu, sizeof cpu);
    host_name(host, sizeof host);
    source_commit(commit, sizeof commit);
    utc_now_iso(now, sizeof now);

    json_t *root = json_object();
    json_object_set_new(root, "schema", json_string(RESULTS_SCHEMA));
    json_object_set_new(root, "schema_version", json_integer(RESULTS_SCHEMA_VERSION));
    json_object_set_new(root, "kind", json_string(d->kind));
    json_object_set_new(root, "created", json_string(now));
    json_object_set_new(root, "commit", json_string(commit));
    json_object_set_new(root, "command", json_string(d->command ? d->command : ""));

    json_t *machine = json_object();
    json_object_set_new(machine, "hostname", json_string(host));
    json_object_set_new(machine, "cpu", json_string(cpu));
    json_object_set_new(machine, "cores", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_set_new(machine, "backend", d->backend ? json_string(d->backend) : json_null());
    json_object_set_new(machine, "device", d->device ? json_string(d->device) : json_null());
    json_object_set_new(machine, "gpu", d->backend && strcmp(d->backend, "cuda") == 0 ? json_string(d->device)
                                                                                      : json_null());
    json_object_set_new(machine, "peak_flops", json_real_or_null(d->peak_flops));
    json_object_set_new(machine, "peak_flops_source",
                        d->peak_flops_source ? json_string(d->peak_flops_source) : json_null());
    json_object_set_new(machine, "blas", blas_json());
    json_object_set_new(machine, "openmp", openmp_json());
    json_object_set_new(root, "machine", machine);

    json_t *cfg = json_object();
    json_object_set_new(cfg, "len_dist", json_string(d->len_dist ? d->len_dist : ""));
    json_object_set_new(cfg, "samples", json_integer(d->samples));
    json_object_set_new(cfg, "len_scale", json_real_or_null(d->len_scale));
    json_object_set_new(cfg, "seed", json_integer((json_int_t)d->seed));
    if (d->task) {
        json_object_set_new(cfg, "task", json_string(d->task));
        json_object_set_new(cfg, "val_samples", json_integer(d->val_samples));
    }
    if (d->model) {
        const ModelConfig *c = d->model;
        json_object_set_new(cfg, "model",
                            json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I}", "preset", c->name, "vocab_size",
                                      c->vocab, "hidden_size", c->hidden, "intermediate_size", c->intermediate,
                                      "num_hidden_layers", c->layers, "num_attention_heads", c->heads,
                                      "num_key_value_heads", c->kv_heads, "head_dim", c->head_dim, "params",
                                      (json_int_t)d->n_params));
        json_object_set_new(cfg, "dtype", json_string(d->dtype ? d->dtype : "f32"));
        if (d->attention) json_object_set_new(cfg, "attention", json_string(d->attention));
        json_object_set_new(cfg, "steps", json_integer(d->steps));
        json_object_set_new(cfg, "recompute", json_boolean(d->recompute));
        json_object_set_new(cfg, "comm", json_string(d->comm ? d->comm : "none"));
        json_object_set_new(cfg, "comm_per_micro_step_seconds", json_real_or_null(d->comm_times.micro_s));
        json_object_set_new(cfg, "comm_per_step_seconds", json_real_or_null(d->comm_times.step_s));
        json_object_set_new(cfg, "comm_source", json_string(d->comm_source ? d->comm_source : "none"));
        if (d->comm_detail) json_object_set(cfg, "comm_model", d->comm_detail);
        json_object_set_new(cfg, "profile", json_string(d->profile ? d->profile : "off"));
        json_object_set_new(cfg, "dp", json_string(d->dp ? d->dp : "simulated"));
        if (d->dp && strcmp(d->dp, "real") == 0) json_object_set_new(cfg, "dp_ranks", json_integer(d->dp_ranks));
    }
    if (d->kind && strcmp(d->kind, "train") == 0) {
        json_t *prof = json_object();
        json_object_set_new(prof, "level", json_string(d->profile ? d->profile : "off"));
        json_object_set_new(prof, "cupti", json_string(d->cupti_status ? d->cupti_status : "not used"));
        json_object_set_new(prof, "cupti_overhead",
                            d->cupti_overhead_set ? json_real_or_null(d->cupti_overhead) : json_null());
        json_object_set_new(prof, "trace", d->trace_path ? json_string(d->trace_path) : json_null());
        json_object_set_new(root, "profile", prof);
    }
    json_object_set_new(root, "config", cfg);

    json_t *arr = json_array();
    for (int i = 0; i < d->n_strategies; i++) {
        const StrategyResult *s = &d->strategies[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(s->name));
        json_object_set_new(o, "plan_config", plan_config_json(&s->cfg));
        json_t *pm = plan_metrics_json(&s->plan);
        if (s->n_weights > 0) {
            json_object_set_new(pm, "weights", weights_json(s, 0));
            json_object_set_new(pm, "weights_epoch", weights_json(s, 1));
        }
        if (s->n_step_seqs > 0) {
            json_t *a = json_array();
            for (int k = 0; k < s->n_step_seqs; k++) json_array_append_new(a, json_integer(s->step_seqs[k]));
            json_object_set_new(pm, "step_sequences", a);
            json_object_set_new(pm, "step_sequences_stride", json_integer(s->step_seqs_stride));
        }
        /* the device model's prediction of this plan (`labench plan --device`) */
        if (s->device_prediction) json_object_set(pm, "device_prediction", s->device_prediction);
        json_object_set_new(o, "plan", pm);
        json_object_set_new(o, "run", s->run ? run_json(s->run) : json_null());
        if (s->run && s->run->val.n_points > 0)
            json_object_set_new(o, "validation", val_curves_json(&s->run->val));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "strategies", arr);
    return root;
}

int results_write(const char *path, const ResultsDoc *doc, char *err, size_t errlen)
{
    json_t *root = results_to_json(doc);
    int rc = json_write_atomic(path, root, "results", err, errlen);
    json_decref(root);
    return rc;
}
