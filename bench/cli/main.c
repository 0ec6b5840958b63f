/* labench: benchmark batching strategies for long-context LLM fine-tuning. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli/cli.h"
#include "bench/run/dp.h"
#include "bench/input/hist.h"
#include "bench/analysis/plan_metrics.h"
#include "bench/analysis/predict.h"
#include "bench/results/report.h"

static void usage(FILE *f)
{
    fputs("usage: labench [COMMAND] [options]        (labench COMMAND --help for each)\n"
          "\n"
          "Measures what each batching strategy for long-context fine-tuning (LongAlign:\n"
          "naive, sorted, packing, packing with loss weighting; and ours) costs and buys on a\n"
          "real transformer training step, on your length distribution and your GPU.\n"
          "\n"
          "Commands:\n"
          "  train (default)   train every strategy's plan, measure tokens/s, bubbles, memory\n"
          "  plan              plan only (no model): padding, packing, predicted bubble, weights\n"
          "  report R.json...  REPORT.md (tables, LongAlign's ratios, gnuplot plots) from results\n"
          "  compare B.json C.json   deltas per strategy; exit 1 on a regression (nightly CI gate)\n"
          "  predict R.json    fit per-micro-batch time from a run; predict other cluster\n"
          "                    sizes and length distributions, with and without communication\n"
          "  hist FILE         turn a plain list of lengths into a .hist distribution\n"
          "  dp-check          check the collectives of --dp real (NCCL on GPUs, MPI on CPUs) on known data\n"
          "  grad              one forward/backward on given weights and batch: check against PyTorch\n"
          "  bench-plan        time the planners on 1,000,000 samples (--samples N for more)\n"
          "  help              this text\n"
          "\n"
          "Start here:\n"
          "  labench --strategy all --len-dist data/longalign-mix.hist\n"
          "  labench plan --strategy all --len-dist data/longalign-mix.hist\n"
          "\n"
          "Every option with a value takes it as `--opt VALUE` or `--opt=VALUE`; `--trace[=FILE]`\n"
          "takes the next argument as FILE unless it starts with '-'.\n"
          "\n"
          "Exit status: 0 ok; 1 a regression (compare); 2 unusable input (bad file, bad option, no GPU, out of memory).\n",
          f);
}

/* The command line as typed, for the results file. */
static void join_args(int argc, char **argv, char *buf, size_t n)
{
    buf[0] = 0;
    for (int i = 0; i < argc; i++) {
        if (i) strncat(buf, " ", n - strlen(buf) - 1);
        strncat(buf, argv[i], n - strlen(buf) - 1);
    }
}

int main(int argc, char **argv)
{
    static char command_line[8192];
    join_args(argc, argv, command_line, sizeof command_line);
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "plan") == 0) return cmd_plan(argc - 1, argv + 1, command_line);
    if (strcmp(cmd, "train") == 0) return cmd_train(argc - 1, argv + 1, command_line);
    if (strcmp(cmd, "hist") == 0) return cmd_hist(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0) return cmd_report(argc - 1, argv + 1);
    if (strcmp(cmd, "compare") == 0) return cmd_compare(argc - 1, argv + 1);
    if (strcmp(cmd, "grad") == 0) return cmd_grad(argc - 1, argv + 1);
    if (strcmp(cmd, "bench-plan") == 0) return cmd_bench_plan(argc - 1, argv + 1);
    if (strcmp(cmd, "predict") == 0)   /* --device: the device model (issue 22) */
        return predict_wants_device(argc - 1, argv + 1) ? cmd_predict_device(argc - 1, argv + 1)
                                                        : cmd_predict(argc - 1, argv + 1);
    if (strcmp(cmd, "dp-check") == 0) return cmd_dp_check(argc - 1, argv + 1);
    if (cmd[0] && cmd[0] != '-') {
        fprintf(stderr, "labench: unknown command '%s' (see labench help)\n", cmd);
        return 2;
    }
    return cmd_train(argc, argv, command_line);
}
