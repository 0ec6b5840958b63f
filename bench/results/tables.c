/* The console tables of `labench plan` and `labench train`: what a strategy's plan costs, and
 * what its run measured, one row per strategy. */
#include "bench/results/tables.h"

#include <stdio.h>
#include <string.h>

#include "bench/analysis/predict.h"

void print_plan_table(const StrategyResult *r, int n)
{
    printf("\n%-17s %6s %8s %7s %8s %7s %9s %7s %7s %7s %6s %6s %6s %8s %7s %8s\n", "strategy", "steps", "micro-b",
           "pad %", "pack %", "util %", "pred.bub%", "long10%", "unif%", "step%", "M min", "M max", "M cv",
           "w99/w1", "Eq.2", "plan ms");
    for (int i = 0; i < n; i++) {
        const PlanMetrics *m = &r[i].plan;
        printf("%-17s %6lld %8lld %7.2f %8.2f %7.2f %9.2f %7.2f %7.2f %7.2f %6.0f %6.0f %6.3f %8.2f %7s %8.1f\n",
               r[i].name, (long long)m->optimizer_steps, (long long)m->micro_batches, 100 * m->padding_ratio,
               100 * m->packing_efficiency, 100 * m->rank_utilisation, 100 * m->predicted_bubble,
               100 * m->weight_share_longest10, 100 * m->weight_share_longest10_uniform,
               100 * m->weight_share_longest10_ideal, m->step_seqs_min, m->step_seqs_max, m->step_seqs_cv,
               m->weight_epoch_spread, plan_metrics_fair(m) ? "yes" : "no", 1e3 * m->plan_seconds);
    }
    printf("\npad %%: pad tokens / computed tokens.  pack %%: real tokens / row slots (L per pack).  util %%: real\n"
           "tokens / (W x sum over sync points of the busiest rank's tokens).  pred.bub%%: DP bubble predicted by\n"
           "the cost model (tokens + attention's len^2).  long10%%: loss-weight share of the longest 10%% of\n"
           "sequences over the epoch; unif%%: that share when every sequence counts the same (Eq. 2's goal);\n"
           "step%%: the per-step ideal, that share if every sequence weighed 1/M of its own step (it hides\n"
           "how M varies).  M min/max/cv: sequences per optimizer step.  w99/w1: the 99th over the 1st\n"
           "percentile of a sequence's weight x mean M.  Eq.2: yes when every sequence weighs 1/M of its step,\n"
           "long10%% is within 1 point of unif%% and M cv <= 0.15: the plan trains the model LongAlign's Eq. 2\n"
           "describes over the epoch (docs/strategies.md, \"Plan metrics\").\n");
}

void print_train_table(const StrategyResult *r, int n, int with_comm)
{
    double base = 0, base_c = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(r[i].name, "naive") == 0 && r[i].run) {
            base = r[i].run->metrics.effective_tps;
            base_c = r[i].run->metrics.effective_tps_compute;
        }
    printf("\n%-17s %11s %8s %9s %7s %7s %10s %7s %10s", "strategy", "eff tok/s", "vs naive", "DP bub %", "pad %",
           "pack %", "peak MiB", "MFU %", "final loss");
    if (with_comm) printf(" %12s %13s", "compute-only", "vs naive c.o.");
    printf("\n");
    for (int i = 0; i < n; i++) {
        const RunResult *x = r[i].run;
        const RunMetrics *m = &x->metrics;
        char sp[16] = "-", spc[16] = "-";
        if (base > 0) snprintf(sp, sizeof sp, "%.2fx", m->effective_tps / base);
        if (base_c > 0) snprintf(spc, sizeof spc, "%.2fx", m->effective_tps_compute / base_c);
        printf("%-17s %11.0f %8s %9.2f %7.2f %7.2f %10.1f %7.3f %10.4f", r[i].name, m->effective_tps, sp,
               100 * m->dp_bubble, 100 * m->padding_ratio, 100 * r[i].plan.packing_efficiency,
               (double)x->peak_bytes / (1 << 20), 100 * m->mfu, x->loss_curve[x->n_steps - 1]);
        if (with_comm) printf(" %12.0f %13s", m->effective_tps_compute, spc);
        printf("\n");
    }
    printf("\nLongAlign (8xA800, ZeRO-3 + offload), speed-up over naive in training hours:\n  packing / sorted:");
    for (int i = 0; i < N_LONGALIGN_FIG5; i++) {
        const LongAlignHours *h = &LONGALIGN_FIG5[i];
        printf("%s %s %.2fx / %.2fx", i ? "," : "", h->model, h->naive_h / h->packing_h, h->naive_h / h->sorted_h);
    }
    printf("\n");
}

void print_device_table(const StrategyResult *r, const DmPlanPrediction *p, int n, const DeviceModel *d,
                               const ModelConfig *m, const CommConfig *c)
{
    double base = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(r[i].name, "naive") == 0) base = p[i].wall_seconds;
    printf("\nPredicted on %dx%s (device model, not measured; docs/device-model.md): model %s (%zu parameters),\n"
           "--comm %s, activation checkpointing %s, packs compute %s\n",
           r[0].cfg.world_size, d->device, m->name, model_param_count(m), comm_kind_name(c->kind),
           d->recompute ? "on" : "off", d->pack_compute == DM_PACK_FULL ? "their whole buffer" : "their tokens");
    printf("%-17s %10s %9s %12s %7s %9s %8s %9s %9s\n", "strategy", "wall h", "vs naive", "eff tok/s", "MFU %",
           "DP bub %", "comm %", "frame. %", "compute h");
    for (int i = 0; i < n; i++) {
        const DmPlanPrediction *x = &p[i];
        char sp[16] = "-";
        if (base > 0 && x->wall_seconds > 0) snprintf(sp, sizeof sp, "%.2fx", base / x->wall_seconds);
        printf("%-17s %10.2f %9s %12.0f %7.2f %9.2f %8.2f %9.2f %9.2f\n", r[i].name, x->wall_seconds / 3600, sp,
               x->tokens_per_s, 100 * x->mfu, 100 * x->bubble_fraction, 100 * x->comm_share,
               x->wall_seconds > 0 ? 100 * x->framework_seconds / x->wall_seconds : 0, x->compute_seconds / 3600);
    }
    printf("\nwall h: the whole plan (every epoch).  vs naive: naive's wall / this wall.  comm %%: the\n"
           "communication model's share of the wall; frame. %%: the framework overhead per micro-step.\n");
}
