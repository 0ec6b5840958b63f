/* `labench hist`: turns a plain lengths list (one sample per line) into a .hist. */
#include "bench/input/hist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli/cli.h"
#include "common/atomic_file.h"
#include "common/input_file.h"
#include "common/parse.h"

static void hist_help(FILE *f)
{
    fputs(
        "usage: labench hist FILE [-o OUT.hist] [--bin-width W]\n"
        "\n"
        "Turns a lengths list into a length distribution (.hist) for --len-dist.\n"
        "\n"
        "FILE holds one sample per line: `LEN` or `LEN TARGET`, where TARGET is the number of\n"
        "loss-target tokens (the response, the sample's last tokens; default LEN-1).\n"
        "'#' starts a comment.\n"
        "\n"
        "Without --bin-width the output is lossless: one line `LEN COUNT TARGET` per distinct\n"
        "(length, target) pair. With --bin-width W, lengths are grouped into bins\n"
        "[k*W+1, (k+1)*W] written as `LO-HI COUNT P%`, P the bins' mean target percentage.\n"
        "\n"
        "A .hist line is `LEN COUNT [TARGET]` or `LO-HI COUNT [TARGET]` (lengths uniform in\n"
        "[LO, HI]); TARGET is T, T1-T2 (tokens), P% or P1%-P2% (of the length); `@target SPEC`\n"
        "sets the default for the lines after it. See docs/hist-format.md.\n"
        "\n"
        "options:\n"
        "  -o, --out OUT.hist   write there (atomically) instead of to stdout\n"
        "  --bin-width W        bin lengths W tokens wide (lossy, smaller file)\n"
        "  -h, --help           this text\n"
        "Options with a value take it as `--opt VALUE` or `--opt=VALUE`.\n"
        "\n"
        "Lines of length 0 (empty records) are dropped, and stderr says how many.\n", f);
}

static int bad(const char *msg)
{
    fprintf(stderr, "labench: %s\n", msg);
    return EXIT_BAD_INPUT;
}

/* Mean target share of one exact bin's samples, in percent of the length. */
static double bin_target_pct(const HistBin *b)
{
    double len = (double)b->lo, t;
    switch (b->target.kind) {
    case TGT_TOKENS: t = fmin((b->target.lo + b->target.hi) / 2.0, len - 1.0); break;
    case TGT_PERCENT: return (b->target.lo + b->target.hi) / 2.0;
    default: t = len - 1.0;
    }
    return 100.0 * t / len;
}

/* Groups the (length-sorted) exact bins of `in` into bins [k*W+1, (k+1)*W]. A bin whose
 * samples all use the default target keeps it; otherwise its target is the mean percentage,
 * rounded to 0.01% so the file stays readable. */
static int bin_lengths(const Hist *in, int64_t w, Hist *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", in->path);
    out->bins = calloc((size_t)in->n_bins, sizeof *out->bins);   /* never more bins than in */
    if (!out->bins) return -1;
    for (int i = 0; i < in->n_bins;) {
        int64_t k = (in->bins[i].lo - 1) / w;
        HistBin *o = &out->bins[out->n_bins++];
        o->lo = k * w + 1;
        o->hi = (k + 1) * w < HIST_MAX_LEN ? (k + 1) * w : HIST_MAX_LEN;
        o->line = in->bins[i].line;
        double pct_sum = 0.0;
        int all_default = 1;
        for (; i < in->n_bins && in->bins[i].lo <= o->hi; i++) {
            const HistBin *b = &in->bins[i];
            o->count += b->count;
            pct_sum += (double)b->count * bin_target_pct(b);
            if (b->target.kind != TGT_DEFAULT) all_default = 0;
        }
        out->total += o->count;
        if (!all_default) {
            double pct = round(pct_sum / (double)o->count * 100.0) / 100.0;
            o->target = (TargetSpec){ TGT_PERCENT, pct, pct };
        }
    }
    return 0;
}

int cmd_hist(int argc, char **argv, const char *command_line)
{
    const char *in_path = NULL, *out_path = NULL;
    long long width = 0;
    char msg[2048];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            hist_help(stdout);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--out") || !strcmp(a, "--bin-width")) && i + 1 >= argc) {
            snprintf(msg, sizeof msg, "hist: %s needs a value", a);
            return bad(msg);
        } else if ((v = cli_opt_value(argc, argv, &i, "-o")) || (v = cli_opt_value(argc, argv, &i, "--out"))) {
            out_path = v;
        } else if ((v = cli_opt_value(argc, argv, &i, "--bin-width"))) {
            if (parse_i64(v, 1, HIST_MAX_LEN, &width) != 0) {
                snprintf(msg, sizeof msg, "hist: --bin-width '%s': want a whole number of tokens in [1, %lld]",
                         v, (long long)HIST_MAX_LEN);
                return bad(msg);
            }
        } else if (a[0] == '-' && a[1]) {
            snprintf(msg, sizeof msg, "hist: unknown option '%s' (see labench hist --help)", a);
            return bad(msg);
        } else if (in_path) {
            snprintf(msg, sizeof msg, "hist: one input file only (got '%s' and '%s')", in_path, a);
            return bad(msg);
        } else {
            in_path = a;
        }
    }
    if (!in_path) return bad("hist: no input file (usage: labench hist FILE [-o OUT.hist] [--bin-width W])");

    Hist exact, binned;
    if (hist_load_lengths(in_path, &exact, msg, sizeof msg) != 0) return bad(msg);
    if (hist_zero_note(&exact, msg, sizeof msg)) fprintf(stderr, "labench: %s\n", msg);
    const Hist *h = &exact;
    char header[2048];
    if (width > 0) {
        if (bin_lengths(&exact, width, &binned) != 0) {
            hist_free(&exact);
            return bad("hist: out of memory");
        }
        h = &binned;
        snprintf(header, sizeof header,
                 "made by `labench hist --bin-width %lld` from %s: %lld samples\n"
                 "lengths uniform within each bin; target = the bin's mean target percentage",
                 width, input_name(in_path), (long long)h->total);
    } else {
        snprintf(header, sizeof header,
                 "made by `labench hist` from %s: %lld samples, lossless\n"
                 "one line per distinct (length, target tokens) pair",
                 input_name(in_path), (long long)h->total);
    }
    if (exact.zero_count > 0) {
        size_t k = strlen(header);
        snprintf(header + k, sizeof header - k, "\n%lld samples of length 0 in the list were dropped",
                 (long long)exact.zero_count);
    }

    int rc = 0;
    if (out_path) {
        AtomicFile af;
        if (atomic_open(&af, out_path, msg, sizeof msg) != 0) {
            rc = bad(msg);
        } else if (hist_write(af.f, h, header) != 0) {
            atomic_abort(&af);
            snprintf(msg, sizeof msg, "%s: write failed", out_path);
            rc = bad(msg);
        } else if (atomic_commit(&af, msg, sizeof msg) != 0) {
            rc = bad(msg);
        } else {
            fprintf(stderr, "labench: wrote %s: %lld samples in %d lines\n", out_path,
                    (long long)h->total, h->n_bins);
        }
    } else if (hist_write(stdout, h, header) != 0 || fflush(stdout) != 0) {
        rc = bad("hist: writing to stdout failed");
    }
    if (width > 0) hist_free(&binned);
    hist_free(&exact);
    return rc;
}
