/* libFuzzer harness: the one reader of results JSON (results_read: report, compare, predict).
 * On failure: nothing returned, a message naming the file (and, for invalid JSON, a line inside
 * it). On success: every strategy's rows are one per (step, micro-step, rank) in plan order
 * within its checked plan config, and what report and compare do with the file (tables, CSV,
 * the DP timeline of every step, comparing the file with itself) runs in bounded time. */
#include "tests/fuzz/fuzz_common.h"

#include <math.h>

#include "bench/results/report.h"

static void check_read(const ResultsFile *rf)
{
    CONTRACT(rf->root && rf->n_strategies >= 1, "no strategies");
    for (int i = 0; i < rf->n_strategies; i++) {
        const RepStrategy *s = &rf->strategies[i];
        char why[256];
        CONTRACT(plan_config_check(&s->cfg, why, sizeof why) == 0, "strategies[%d]: %s", i, why);
        CONTRACT(s->world_size == s->cfg.world_size, "strategies[%d]: world_size", i);
        const RepRun *r = s->run;
        if (!r) continue;
        const int W = s->cfg.world_size, A = s->cfg.grad_accum;
        CONTRACT(r->n_steps == r->steps && r->steps <= s->plan.optimizer_steps, "strategies[%d]: steps", i);
        CONTRACT(r->n_mbs == (int64_t)r->steps * A * W, "strategies[%d]: %lld rows", i, (long long)r->n_mbs);
        for (int64_t k = 0; k < r->n_mbs; k++) {
            const MbRow *m = &r->mbs[k];
            CONTRACT(((int64_t)m->step * A + m->micro) * W + m->rank == k, "strategies[%d]: row %lld out of place", i,
                     (long long)k);
            CONTRACT(m->rows >= 0 && m->real_tokens >= 0 && m->computed_tokens >= 0 && !(m->seconds < 0),
                     "strategies[%d]: row %lld", i, (long long)k);
        }
    }
}

/* What report and compare do with a file they accept. */
static void use(const char *path, ResultsFile *rf)
{
    static char out[64];
    if (!out[0]) snprintf(out, sizeof out, "/tmp/labench-fuzz-report-%ld", (long)getpid());
    for (int i = 0; i < rf->n_strategies; i++) {
        const RepStrategy *s = &rf->strategies[i];
        if (!s->run) continue;
        for (int step = 0; step < s->run->n_steps; step++) {
            TimelineBox *b;
            int n;
            if (timeline_build(s, step, rf->comm_per_sync_s, &b, &n) != 0) continue;
            for (int k = 0; k < n; k++)
                CONTRACT(b[k].rank >= 0 && b[k].rank < s->world_size && !(b[k].end < b[k].start), "timeline box");
            free(b);
        }
        int pick = timeline_pick_step(s->run);
        CONTRACT(pick >= -1 && pick < s->run->n_steps, "picked step %d", pick);
    }
    char err[4096];
    const char *inputs[1] = {path};
    for (int fmt = 0; fmt < 2; fmt++) {
        ReportOptions opt = {.out_path = out, .no_plots = 1, .format = fmt ? REPORT_CSV : REPORT_MD};
        CONTRACT(report_generate(inputs, 1, &opt, err, sizeof err) == 0, "report of an accepted file: %s", err);
    }
    unlink(out);
    int rc = compare_files(path, path, 0.05, NULL, err, sizeof err);
    CONTRACT(rc == 0 || (rc == 2 && strcmp(rf->kind, "plan") == 0), "compare of a file with itself: %d %s", rc, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FuzzFile in;
    fuzz_file_put(&in, data, size);
    ResultsFile rf;
    char err[4096] = "";
    if (results_read(in.path, &rf, err, sizeof err) != 0) {
        CONTRACT(!rf.root && !rf.strategies && !rf.n_strategies, "a refused file returned results");
        fuzz_check_message(err, in.path, data, size);
        return 0;
    }
    check_read(&rf);
    use(in.path, &rf);
    results_file_free(&rf);
    return 0;
}
