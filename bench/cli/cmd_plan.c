/* `labench plan`: sample a length distribution and plan it with each strategy, without a model:
 * padding, packing, the predicted bubble and the loss-weight bias, as a table and results JSON. */
#include <stdio.h>
#include <stdlib.h>

#include "bench/cli/cli.h"
#include "bench/cli/plan_train.h"
#include "bench/results/tables.h"

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
