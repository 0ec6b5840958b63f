/* `labench report RESULTS.json... -o REPORT.md`: the options of bench/results/report.c's engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli/cli.h"
#include "bench/results/report.h"

static void usage(FILE *f)
{
    fputs("usage: labench report RESULTS.json... -o REPORT.md [--plots-dir DIR] [--format md|csv]\n"
          "       labench report --device-slug RESULTS.json\n"
          "\n"
          "Writes a report of one or more results files (labench train/plan --out): where and how they\n"
          "were produced, a table per file (effective tokens/s and speed-up over naive, DP bubble, GPU\n"
          "idle, padding, packing efficiency, peak memory, MFU, loss-weight bias, final loss; plan\n"
          "metrics for plan-only files), LongAlign's published speed-ups beside ours, and plots drawn\n"
          "by gnuplot (plots/*.gp) as .png and .svg, with their data as .dat.\n"
          "\n"
          "  -o FILE            the report (required)\n"
          "  --plots-dir DIR    images and data (default: plots/ next to the report)\n"
          "  --format md|csv    markdown (default), or one CSV row per file and strategy\n"
          "  --no-plots         tables only\n"
          "  --device-slug F    print the file-name form of F's device (bench/baselines/<slug>.json)\n"
          "\n"
          "Without gnuplot on PATH the report has the tables and says why it has no images.\n"
          "Exit status: 0 ok; 2 unreadable or invalid results, or an unwritable output.\n",
          f);
}

int cmd_report(int argc, char **argv, const char *command_line)
{
    ReportOptions opt = {0};
    const char **inputs = calloc((size_t)(argc > 0 ? argc : 1), sizeof *inputs);
    if (!inputs) die_input("out of memory");
    int n = 0;
    char err[4096];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            free(inputs);
            return 0;
        } else if ((v = cli_opt_value(argc, argv, &i, "-o")) || (v = cli_opt_value(argc, argv, &i, "--out"))) {
            opt.out_path = v;
        } else if ((v = cli_opt_value(argc, argv, &i, "--plots-dir"))) {
            opt.plots_dir = v;
        } else if ((v = cli_opt_value(argc, argv, &i, "--format"))) {
            if (strcmp(v, "md") == 0)
                opt.format = REPORT_MD;
            else if (strcmp(v, "csv") == 0)
                opt.format = REPORT_CSV;
            else
                die_input("report: --format %s: give md or csv", v);
        } else if (strcmp(a, "--no-plots") == 0) {
            opt.no_plots = 1;
        } else if ((v = cli_opt_value(argc, argv, &i, "--device-slug"))) {
            ResultsFile rf;
            if (results_read(v, &rf, err, sizeof err) != 0) die_input("%s", err);
            char slug[256];
            device_slug(rf.device, slug, sizeof slug);
            printf("%s\n", slug);
            results_file_free(&rf);
            free(inputs);
            return 0;
        } else if (a[0] == '-' && a[1]) {
            die_input("report: unknown option %s (see labench report --help)", a);
        } else {
            inputs[n++] = a;
        }
    }
    if (n == 0) die_input("report: give one or more results files (see labench report --help)");
    if (!opt.out_path) die_input("report: give the output file: -o REPORT.md");
    int status = report_generate(inputs, n, &opt, err, sizeof err);
    if (status != 0) {
        fprintf(stderr, "labench: %s\n", err);
        status = EXIT_BAD_INPUT;
    } else {
        printf("report: %s\n", opt.out_path);
    }
    free(inputs);
    return status;
}
