/* `labench compare BASELINE.json CURRENT.json [--tolerance 5%]`: the nightly regression gate over
 * bench/results/compare.c's deltas. */
#include <stdio.h>
#include <string.h>

#include "bench/cli/cli.h"
#include "bench/results/report.h"

static void usage(FILE *f)
{
    fputs("usage: labench compare BASELINE.json CURRENT.json [--tolerance 5%]\n"
          "\n"
          "Prints the change of every strategy's effective tokens/s, DP bubble, padding, peak memory,\n"
          "MFU and final loss between two train results files of the same workload on the same\n"
          "device (config, model, dtype, steps, each strategy's plan config, machine.device).\n"
          "\n"
          "  --tolerance T   how much worse counts as noise: \"5%\" or \"0.05\" (default 5%)\n"
          "\n"
          "Exit status: 0 no regression; 1 a strategy's effective tokens/s fell, or its peak memory\n"
          "grew, by more than the tolerance; 2 unusable input (unreadable, another schema, or\n"
          "results that are not comparable: the differing fields are named). A strategy in one file\n"
          "only is listed, not a regression.\n",
          f);
}

int cmd_compare(int argc, char **argv, const char *command_line)
{
    const char *files[2];
    int n = 0;
    double tol = COMPARE_DEFAULT_TOLERANCE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--tolerance") == 0 && i + 1 >= argc) die_input("compare: --tolerance needs a value, e.g. 5%%");
        if ((v = cli_opt_value(argc, argv, &i, "--tolerance"))) {
            if (parse_tolerance(v, &tol) != 0)
                die_input("compare: --tolerance %s: give a percentage (5%%) or a fraction below 1 (0.05)", v);
        } else if (a[0] == '-' && a[1]) {
            die_input("compare: unknown option %s (see labench compare --help)", a);
        } else if (n < 2) {
            files[n++] = a;
        } else {
            die_input("compare: give exactly two results files: BASELINE.json CURRENT.json");
        }
    }
    if (n != 2) die_input("compare: give exactly two results files: BASELINE.json CURRENT.json");
    char err[4096];
    int status = compare_files(files[0], files[1], tol, stdout, err, sizeof err);
    if (status == COMPARE_UNUSABLE) fprintf(stderr, "labench: %s\n", err);
    return status;
}
