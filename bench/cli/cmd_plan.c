/* `labench plan`: sample a length distribution and plan it with each strategy, without a model:
 * padding, packing, the predicted bubble and the loss-weight bias, as a table and results JSON. */
#include <stdio.h>
#include <stdlib.h>

#include "bench/cli/cli.h"
#include "bench/cli/plan_train.h"
#include "model/hf_config.h"
#include "bench/results/tables.h"

int cmd_plan(int argc, char **argv, const char *command_line)
{
    Options o;
    options_parse(argc, argv, &o, 0);
    const Strategy **chosen = calloc((size_t)N_STRATEGIES, sizeof *chosen);
    if (!chosen) die_input("out of memory");
    int n_strat = select_strategies(o.strategy, chosen);

    /* The communication: a training option, and the device model's (--device: LongAlign's setup
     * and the device's links by default). */
    CommConfig comm;
    char err[1024];
    PlanDevice dev;
    if (o.device) {
        if (!o.comm.system) o.comm.system = dm_comm_system(o.device);
        if (!o.comm.comm) o.comm.comm = "zero3-offload";
        dm_device_defaults(o.device, &dev.dm);
        dev.dm.recompute = !o.no_recompute;
        dev.dm.pack_compute = o.pack_full ? DM_PACK_FULL : DM_PACK_REAL;
        for (int k = 0; k < DM_N_PARAMS; k++)
            if (o.dm_value[k] && dm_set_option(&dev.dm, DM_PARAM_OPTIONS[k], o.dm_value[k], err, sizeof err) < 0)
                die_input("%s", err);
        if (model_resolve(o.model ? o.model : "7b", &dev.model, err, sizeof err) != 0) die_input("%s", err);
    }
    if (comm_config_resolve(&o.comm, &comm, err, sizeof err) != 0) die_input("%s", err);
    CostModel plan_cost = planners_cost_model(&o, NULL);
    PlanConfig *cfgs = strategy_configs(&o, chosen, n_strat, &plan_cost);

    Sample *samples;
    int64_t n_samples;
    draw_samples(&o, chosen, cfgs, n_strat, &samples, &n_samples);
    StrategyResult *results = calloc((size_t)n_strat, sizeof *results);
    if (!results) die_input("out of memory");
    if (o.device) {
        dev.comm = &comm;
        dev.pred = calloc((size_t)n_strat, sizeof *dev.pred);
        if (!dev.pred) die_input("out of memory");
    }
    plan_strategies(&o, chosen, cfgs, n_strat, samples, n_samples, NULL, NULL, NULL, results, o.device ? &dev : NULL);
    print_plan_table(results, n_strat);
    if (o.device) print_device_table(results, dev.pred, n_strat, &dev.dm, &dev.model, &comm);
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
    if (o.device) free(dev.pred);
    free(samples);
    return status;
}
