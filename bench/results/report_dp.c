/* REPORT.md's section for --dp real results: the real ranks against the simulation of their own
 * compute, from run.dp_real as the one reader read it; files without it (every simulated run) get
 * no section. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/results/report.h"

int results_dp_real(const ResultsFile *rf) { return rf->dp_real; }

/* "sim / real | diff | " cells of one figure, n/a where the file has none. */
static void trio(FILE *f, const RepDpReal *d, int k, const char *fmt, double scale)
{
    double s = d->simulated[k], r = d->measured[k], diff = d->difference_percent[k];
    char a[32] = "n/a", b[32] = "n/a", c[32] = "n/a";
    if (isfinite(s)) snprintf(a, sizeof a, fmt, s * scale);
    if (isfinite(r)) snprintf(b, sizeof b, fmt, r * scale);
    if (isfinite(diff)) snprintf(c, sizeof c, "%+.0f%%", diff);
    fprintf(f, "%s / %s | %s | ", a, b, c);
}

static const RepDpReal *dp_real_of(const RepStrategy *s) { return s->run ? s->run->dp_real : NULL; }

void md_dp_real(FILE *f, const ResultsFile *rf)
{
    const RepDpReal *d0 = NULL;   /* the first strategy that ran on real ranks */
    for (int i = 0; i < rf->n_strategies && !d0; i++) d0 = dp_real_of(&rf->strategies[i]);
    if (!d0) return;
    fputs("### Real ranks against the simulation\n\n"
          "Each strategy ran on real ranks (`--dp real`). *Simulated* applies DESIGN.md's arithmetic to the "
          "compute each rank measured in this run, with the modelled communication of the bytes its "
          "collectives moved; *real* is what the ranks measured: their waits at the arrival barrier before "
          "every collective (the bubble), the collectives themselves, the wall time. Difference: "
          "(simulated - real) / real.\n\n"
          "| strategy | ranks | collectives | DP bubble sim / real | diff | comm sim / real (s) | diff | "
          "tokens/s sim / real | diff | same weights on every rank |\n"
          "|---|---:|---|---:|---:|---:|---:|---:|---:|---|\n",
          f);
    for (int i = 0; i < rf->n_strategies; i++) {
        const RepStrategy *s = &rf->strategies[i];
        const RepDpReal *d = dp_real_of(s);
        if (!d) continue;
        fprintf(f, "| %s | %lld | %s | ", s->name ? s->name : "?", d->ranks, d->pattern ? d->pattern : "?");
        trio(f, d, DPR_BUBBLE, "%.1f%%", 100);
        trio(f, d, DPR_COMM, "%.3g", 1);
        trio(f, d, DPR_TOKENS_PER_S, "%.0f", 1);
        fprintf(f, "%s |\n", d->weights_identical ? "yes" : "**no**");
    }
    fprintf(f, "\nCollectives: %s. On a CPU the modelled communication uses the `--system` link figures of "
               "GPUs, so its difference says how far those are from this machine, not how good the formulas "
               "are (docs/communication.md, \"Real data parallelism\").\n\n",
            d0->transport ? d0->transport : "unknown");
}
