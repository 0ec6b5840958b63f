/* labench: benchmark batching strategies for long-context LLM fine-tuning. One table of commands:
 * main dispatches through it and prints the usage from it. */
#include <stdio.h>
#include <string.h>

#include "bench/cli/cli.h"
#include "common/host.h"

typedef struct {
    const char *name;
    const char *args;      /* shown after the name in the usage */
    const char *summary;   /* what it does; a "\n" continues on the next line of the usage */
    CommandFn run;
} Command;

/* In the order `labench help` lists them. The first is the default command. */
static const Command COMMANDS[] = {
    {"train", "(default)", "train every strategy's plan, measure tokens/s, bubbles, memory", cmd_train},
    {"plan", "", "plan only (no model): padding, packing, predicted bubble, weights", cmd_plan},
    {"report", "R.json...", "REPORT.md (tables, LongAlign's ratios, gnuplot plots) from results", cmd_report},
    {"compare", "B.json C.json", "deltas per strategy; exit 1 on a regression (nightly CI gate)", cmd_compare},
    {"predict", "R.json",
     "fit per-micro-batch time from a run; predict other cluster\n"
     "sizes and length distributions, with and without communication",
     cmd_predict},
    {"hist", "FILE", "turn a plain list of lengths into a .hist distribution", cmd_hist},
    {"dp-check", "", "check the collectives of --dp real (NCCL on GPUs, MPI on CPUs) on known data", cmd_dp_check},
    {"grad", "", "one forward/backward on given weights and batch: check against PyTorch", cmd_grad},
    {"bench-plan", "", "time the planners on 1,000,000 samples (--samples N for more)", cmd_bench_plan},
};
#define N_COMMANDS ((int)(sizeof COMMANDS / sizeof COMMANDS[0]))

/* "  NAME ARGS" padded to 20 columns (3 spaces after a longer one), then the summary. */
static void usage_line(FILE *f, const char *head, const char *summary)
{
    int n = fprintf(f, "  %s", head);
    fprintf(f, "%*s", n < 20 ? 20 - n : 3, "");
    for (const char *s = summary; *s; s++) {
        fputc(*s, f);
        if (*s == '\n') fprintf(f, "%20s", "");
    }
    fputc('\n', f);
}

static void usage(FILE *f)
{
    fputs("usage: labench [COMMAND] [options]        (labench COMMAND --help for each)\n"
          "\n"
          "Measures what each batching strategy for long-context fine-tuning (LongAlign:\n"
          "naive, sorted, packing, packing with loss weighting; and ours) costs and buys on a\n"
          "real transformer training step, on your length distribution and your GPU.\n"
          "\n"
          "Commands:\n",
          f);
    for (int i = 0; i < N_COMMANDS; i++) {
        char head[64];
        snprintf(head, sizeof head, "%s%s%s", COMMANDS[i].name, COMMANDS[i].args[0] ? " " : "", COMMANDS[i].args);
        usage_line(f, head, COMMANDS[i].summary);
    }
    usage_line(f, "help", "this text");
    fputs("\n"
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

int main(int argc, char **argv)
{
    static char command_line[8192];
    command_line_join(argc, argv, command_line, sizeof command_line);
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(cmd, COMMANDS[i].name) == 0) return COMMANDS[i].run(argc - 1, argv + 1, command_line);
    if (cmd[0] && cmd[0] != '-') {
        fprintf(stderr, "labench: unknown command '%s' (see labench help)\n", cmd);
        return EXIT_BAD_INPUT;
    }
    /* No command: the default, with every argument its option (argv[0] stands for its name). */
    return COMMANDS[0].run(argc, argv, command_line);
}
