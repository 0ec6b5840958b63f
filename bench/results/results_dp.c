/* The --dp real part of the results: run.dp_real in the results JSON (README, "Results JSON") and
 * the console table of the real ranks against their simulation. */
#include "bench/results/results_dp.h"

#include <math.h>
#include <stdio.h>

#include "common/json_out.h"

/* (simulated - measured) / measured, in percent; NAN where either is missing. */
static double pct_diff(double simulated, double measured)
{
    return measured != 0 && isfinite(simulated) && isfinite(measured) ? 100.0 * (simulated - measured) / measured
                                                                       : NAN;
}

static json_t *metrics_json(const RunMetrics *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "dp_wall_seconds", json_real_or_null(m->dp_wall_s));
    json_object_set_new(o, "bubble_seconds", json_real_or_null(m->bubble_s));
    json_object_set_new(o, "dp_bubble_fraction", json_real_or_null(m->dp_bubble));
    json_object_set_new(o, "comm_seconds", json_real_or_null(m->comm_s));
    json_object_set_new(o, "optimizer_seconds", json_real_or_null(m->optimizer_s));
    json_object_set_new(o, "effective_tokens_per_s", json_real_or_null(m->effective_tps));
    json_object_set_new(o, "computed_tokens_per_s", json_real_or_null(m->computed_tps));
    json_object_set_new(o, "mfu", json_real_or_null(m->mfu));
    return o;
}

static json_t *hex64(uint64_t x)
{
    char b[24];
    snprintf(b, sizeof b, "%016llx", (unsigned long long)x);
    return json_string(b);
}

static json_t *per_rank_rows(const double *x, int n_steps, int W)
{
    json_t *a = json_array();
    for (int s = 0; s < n_steps; s++) {
        json_t *row = json_array();
        for (int r = 0; r < W; r++) json_array_append_new(row, json_real_or_null(x[(size_t)s * W + r]));
        json_array_append_new(a, row);
    }
    return a;
}

json_t *dp_real_json(const DpReal *d)
{
    const int W = d->world_size, A = d->micro_steps;
    json_t *o = json_object();
    json_object_set_new(o, "ranks", json_integer(W));
    json_object_set_new(o, "pattern", json_string(comm_kind_name(d->pattern)));
    json_object_set_new(o, "transport", json_string(d->transport));
    json_object_set_new(o, "timeout_seconds", json_real_or_null(d->timeout_s));
    json_object_set_new(o, "element_bytes", json_integer(d->elem_bytes));
    json_t *hosts = json_array(), *devs = json_array();
    for (int r = 0; r < d->ranks.size; r++) {
        json_array_append_new(hosts, json_string(d->ranks.host[r]));
        json_array_append_new(devs, json_string(d->ranks.device[r]));
    }
    json_object_set_new(o, "hosts", hosts);
    json_object_set_new(o, "devices", devs);
    json_object_set_new(o, "measured", metrics_json(&d->measured));
    json_t *sim = metrics_json(&d->simulated);
    json_object_set_new(sim, "comm_model", comm_to_json(&d->modelled_cfg, &d->modelled_cost));
    json_object_set_new(o, "simulated", sim);
    json_t *diff = json_object();
    json_object_set_new(diff, "dp_wall_seconds", json_real_or_null(pct_diff(d->simulated.dp_wall_s, d->measured.dp_wall_s)));
    json_object_set_new(diff, "dp_bubble_fraction",
                        json_real_or_null(pct_diff(d->simulated.dp_bubble, d->measured.dp_bubble)));
    json_object_set_new(diff, "comm_seconds", json_real_or_null(pct_diff(d->simulated.comm_s, d->measured.comm_s)));
    json_object_set_new(diff, "effective_tokens_per_s",
                        json_real_or_null(pct_diff(d->simulated.effective_tps, d->measured.effective_tps)));
    json_object_set_new(o, "difference_percent", diff);
    json_object_set_new(o, "comm_bytes_per_rank", json_real_or_null(d->comm_bytes_per_rank));
    json_object_set_new(o, "collectives_per_rank", json_real_or_null(d->collectives_per_rank));
    json_object_set_new(o, "weights_identical", json_boolean(d->identical));
    json_object_set_new(o, "final_param_checksum", hex64(d->final_checksum));
    if (d->step_checksums) {
        json_t *a = json_array();
        for (int s = 0; s < d->n_steps; s++) {
            json_t *row = json_array();
            for (int r = 0; r < W; r++) json_array_append_new(row, hex64(d->step_checksums[(size_t)s * W + r]));
            json_array_append_new(a, row);
        }
        json_object_set_new(o, "step_checksums", a);
    } else {
        json_object_set_new(o, "step_checksums", json_null());
    }
    json_object_set_new(o, "optimizer_seconds_per_rank", per_rank_rows(d->optimizer_s, d->n_steps, W));
    json_object_set_new(o, "step_wall_seconds_per_rank", per_rank_rows(d->step_wall_s, d->n_steps, W));
    json_object_set_new(o, "span_columns", json_pack("[s,s,s,s,s,s,s,s]", "step", "micro", "rank", "compute_seconds",
                                                     "wait_seconds", "comm_seconds", "comm_bytes", "collectives"));
    json_t *rows = json_array();
    for (int s = 0; s < d->n_steps; s++) {
        for (int a = -1; a < A; a++)
            for (int r = 0; r < W; r++) {
                const DpSpan *x = a < 0 ? &d->step[(size_t)s * W + r] : &d->micro[((size_t)s * A + a) * W + r];
                if (x->collectives == 0 && x->wait_s == 0 && x->compute_s == 0) continue;
                json_array_append_new(rows, json_pack("[i,i,i,f,f,f,f,i]", s, a, r, x->compute_s, x->wait_s,
                                                      x->comm_s, x->bytes, (int)x->collectives));
            }
    }
    json_object_set_new(o, "spans", rows);
    return o;
}

void dp_print_comparison(FILE *f, const char *const *names, const RunResult *const *runs, int n)
{
    fprintf(f, "\nReal ranks against the simulation of their own compute (sim = DESIGN.md's arithmetic on the "
               "measured\nper-rank compute, with the modelled communication of the bytes moved; diff = (sim - real) "
               "/ real):\n");
    fprintf(f, "%-17s %5s %9s %9s %7s %11s %11s %7s %11s %11s %7s\n", "strategy", "ranks", "bub% sim", "bub% real",
            "diff%", "comm s sim", "comm s real", "diff%", "tok/s sim", "tok/s real", "diff%");
    for (int i = 0; i < n; i++) {
        const DpReal *d = runs[i]->dp;
        if (!d) continue;
        const RunMetrics *s = &d->simulated, *m = &d->measured;
        fprintf(f, "%-17s %5d %9.2f %9.2f %7.1f %11.4g %11.4g %7.1f %11.0f %11.0f %7.1f%s\n", names[i], d->world_size,
                100 * s->dp_bubble, 100 * m->dp_bubble, pct_diff(s->dp_bubble, m->dp_bubble), s->comm_s, m->comm_s,
                pct_diff(s->comm_s, m->comm_s), s->effective_tps, m->effective_tps,
                pct_diff(s->effective_tps, m->effective_tps), d->identical ? "" : "  (ranks' weights differ!)");
    }
}

