/* `labench plan`: sample a length distribution and plan it with each strategy, without a model:
 * padding, packing, the predicted bubble and the loss-weight bias, as a table and results JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli/cli.h"
#include "bench/cli/plan_train.h"
#include "bench/input/hist.h"
#include "common/host.h"
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
    PlanExtras x;
    memset(&x, 0, sizeof x);
    if (o.device) {
        x.device = 1;
        if (!o.comm.system) o.comm.system = dm_comm_system(o.device);
        if (!o.comm.comm) o.comm.comm = "zero3-offload";
        dm_device_defaults(o.device, &x.dm);
        x.dm.recompute = !o.no_recompute;
        x.dm.pack_compute = o.pack_full ? DM_PACK_FULL : DM_PACK_REAL;
        for (int k = 0; k < DM_N_PARAMS; k++)
            if (o.dm_value[k] && dm_set_option(&x.dm, DM_PARAM_OPTIONS[k], o.dm_value[k], err, sizeof err) < 0)
                die_input("%s", err);
        if (model_resolve(o.model ? o.model : "7b", &x.model, err, sizeof err) != 0) die_input("%s", err);
    }
    if (comm_config_resolve(&o.comm, &comm, err, sizeof err) != 0) die_input("%s", err);
    CostModel plan_cost = planners_cost_model(&o, NULL);
    PlanConfig *cfgs = strategy_configs(&o, chosen, n_strat, &plan_cost);

    /* --emit-batches (bench/input/plan_export.h): one plan; a lengths list is planned line by line
     * in file order, so that each segment's index leads back to its line. */
    Sample *samples;
    int64_t n_samples, *emit_record = NULL, emit_records = 0;
    if (o.emit_batches && n_strat != 1) die_input("--emit-batches writes the plan of one strategy: `labench plan --strategy NAME --emit-batches OUT`");
    if (o.emit_batches && o.lengths && (o.samples || o.len_scale_set))
        die_input("--emit-batches with --lengths plans every line as it is: drop --samples and --len-scale");
    if (o.emit_batches && o.lengths) {
        if (hist_load_lengths_ordered(o.lengths, &samples, &emit_record, &n_samples, &emit_records, err, sizeof err))
            die_input("%s", err);
        if (n_samples * cfgs[0].epochs > INT32_MAX)
            die_input("%s: %lld lines x %d epochs: at most %d sequence uses fit in a plan", o.lengths,
                      (long long)n_samples, cfgs[0].epochs, INT32_MAX);
        if (emit_records > n_samples)
            fprintf(stderr, "labench: %s: %lld of %lld records have length 0: they keep their index, no segment\n",
                    o.lengths, (long long)(emit_records - n_samples), (long long)emit_records);
        print_samples(&o, samples, n_samples);
    } else {
        draw_samples(&o, chosen, cfgs, n_strat, &samples, &n_samples);
    }
    StrategyResult *results = calloc((size_t)n_strat, sizeof *results);
    if (!results) die_input("out of memory");
    if (o.device) {
        x.comm = &comm;
        x.pred = calloc((size_t)n_strat, sizeof *x.pred);
        if (!x.pred) die_input("out of memory");
    }
    char commit[160];
    if (o.emit_batches) {
        source_commit(commit, sizeof commit);
        x.emit_path = o.emit_batches;
        x.emit = (PlanExportSource){o.lengths ? "lengths" : "len-dist", o.lengths ? o.lengths : o.len_dist, samples,
                                    emit_record, emit_record ? emit_records : n_samples, commit, o.progress};
    }
    plan_strategies(&o, chosen, cfgs, n_strat, samples, n_samples, NULL, NULL, NULL, results, &x);
    print_plan_table(results, n_strat);
    if (o.device) print_device_table(results, x.pred, n_strat, &x.dm, &x.model, &comm);
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
    if (o.device) free(x.pred);
    free(samples);
    free(emit_record);
    return status;
}
