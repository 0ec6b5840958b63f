/* `labench plan`: sample a length distribution and plan it with each strategy, without a model:
 * padding, packing, the predicted bubble and the loss-weight bias, as a table and results JSON. */
#include <stdio.h>
#include <stdlib.h>

#include "bench/analysis/plan_metrics.h"
#include "bench/cli/cli.h"
#include "bench/cli/plan_train.h"

static void print_plan_table(const StrategyResult *r, int n)
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

int cmd_plan(int argc, char **argv, const char *command_line)
{
    Options o;
    options_parse(argc, argv, &o, 0);
    const Strategy **chosen = calloc((size_t)N_STRATEGIES, sizeof *chosen);
    if (!chosen) die_input("out of memory");
    int n_strat = select_strategies(o.strategy, chosen);

    /* The communication options are training options; their defaults must still resolve. */
    CommConfig comm;
    char err[1024];
    if (comm_config_resolve(&o.comm, &comm, err, sizeof err) != 0) die_input("%s", err);
    CostModel plan_cost = planners_cost_model(&o, NULL);
    PlanConfig *cfgs = strategy_configs(&o, chosen, n_strat, &plan_cost);

    Sample *samples;
    int64_t n_samples;
    draw_samples(&o, chosen, cfgs, n_strat, &samples, &n_samples);
    StrategyResult *results = calloc((size_t)n_strat, sizeof *results);
    if (!results) die_input("out of memory");
    plan_strategies(&o, chosen, cfgs, n_strat, samples, n_samples, NULL, NULL, NULL, results);
    print_plan_table(results, n_strat);
    int status = 0;
    if (o.out) {
        ResultsDoc doc;
        results_doc_init(&doc, &o, command_line, n_samples, results, n_strat);
        status = results_doc_write(o.out, &doc);
    }
    strategy_results_free(results, n_strat);
    free(results);
    free(cfgs);
    free(chosen);
    free(samples);
    return status;
}
