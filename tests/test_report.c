/* labench report / compare, from the hand-made results in tests/fixtures/ (run from the repository
 * root, as `make test` does).
 *
 * The fixtures: W = 2 ranks, 2 optimizer steps, 0.125 s of optimizer per step, 3000 real tokens
 * per strategy. DP wall = sum over sync points of the slowest rank + optimizer:
 *   naive      (2 micro-steps)  step 1: 1.0 + 1.0 + 0.125, step 2: 0.5 + 0.25 + 0.125 -> 3.0 s
 *   sorted     (2 micro-steps)  0.35 + 0.25 + 0.2 + 0.15 + 0.25                          -> 1.2 s
 *   packing    (1 micro-step)   0.4 + 0.35 + 0.25                                        -> 1.0 s
 *   packing-lw (1 micro-step)   0.45 + 0.35 + 0.25                                       -> 1.05 s
 * so effective tokens/s 1000, 2500, 3000, 2857.1 and speed-ups 1.00x, 2.50x, 3.00x, 2.86x.
 * results-slower.json: sorted's micro-batches take 1.25x as long (3000 / 1.4375 s = 2087, -16.5%).
 * results-faster.json: every micro-batch 1/1.1 of the time, packing's peak memory +3%.
 * results-other-config.json: another device (cuda, H100), samples, dtype, packing max_tokens. */
#include <ftw.h>
#include <sys/stat.h>

#include "tests/test_util.h"

#include <jansson.h>

#include "bench/cli/cli.h"
#include "bench/results/report.h"

#define BASE "tests/fixtures/results-base.json"
#define FASTER "tests/fixtures/results-faster.json"
#define SLOWER "tests/fixtures/results-slower.json"
#define OTHER "tests/fixtures/results-other-config.json"

/* ---- helpers ---- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal((size_t)n, fread(s, 1, (size_t)n, f));
    s[n] = 0;
    fclose(f);
    return s;
}

#define assert_contains(hay, needle) do { \
    if (!strstr((hay), (needle))) { print_error("expected to find: %s\n", (needle)); fail(); } } while (0)
#define assert_not_contains(hay, needle) do { \
    if (strstr((hay), (needle))) { print_error("did not expect: %s\n", (needle)); fail(); } } while (0)

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void make_tmpdir(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/labench-report-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void remove_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int gnuplot_on_path(void)
{
    const char *path = getenv("PATH");
    char p[4096];
    while (path && *path) {
        size_t len = strcspn(path, ":");
        snprintf(p, sizeof p, "%.*s/gnuplot", (int)len, path);
        if (len && access(p, X_OK) == 0) return 1;
        path += len + (path[len] == ':');
    }
    return 0;
}

/* Writes base with edit() applied to a temporary file (path out). */
static void edited_fixture(char *out, size_t n, const char *dir, const char *name, void (*edit)(json_t *))
{
    json_error_t e;
    json_t *root = json_load_file(BASE, 0, &e);
    assert_non_null(root);
    edit(root);
    snprintf(out, n, "%s/%s", dir, name);
    assert_int_equal(0, json_dump_file(root, out, JSON_INDENT(1)));
    json_decref(root);
}

static json_t *strategy(json_t *root, size_t i) { return json_array_get(json_object_get(root, "strategies"), i); }

/* Runs the report of one file into dir/REPORT.md (or .csv); returns the status and the text. */
static int report_one(const char *input, const char *dir, ReportFormat fmt, int no_plots, char **text, char *err,
                      size_t errlen)
{
    char out[600];
    snprintf(out, sizeof out, "%s/%s", dir, fmt == REPORT_CSV ? "report.csv" : "REPORT.md");
    ReportOptions opt = {.out_path = out, .format = fmt, .no_plots = no_plots, .scripts_dir = "plots"};
    const char *inputs[1] = {input};
    int rc = report_generate(inputs, 1, &opt, err, errlen);
    *text = rc == 0 ? read_text(out) : NULL;
    return rc;
}

/* ---- report: the numbers ---- */

static void test_report_tables(void **state)
{
    (void)state;
    char dir[64], err[1024], *md;
    make_tmpdir(dir, sizeof dir);
    assert_int_equal(0, report_one(BASE, dir, REPORT_MD, 1, &md, err, sizeof err));
    assert_non_null(md);
    /* strategy | tokens/s | speed-up | DP bubble | GPU idle | padding | packing eff. | peak memory. naive's bubble:
     * (0.5 + 0.75 + 0.25 + 0) / (2 x 3.0) = 25%; its padding 600 / 3600 = 16.7%. */
    assert_contains(md, "| naive | 1,000 | 1.00x | 25.0% | n/a | 16.7% | 100.0% | 100.0 MiB |");
    assert_contains(md, "| sorted | 2,500 | 2.50x |");
    assert_contains(md, "| packing | 3,000 | 3.00x |");
    assert_contains(md, "| packing-lw | 2,857 | 2.86x |");
    /* packing's loss-weight bias and the measured final loss; a file written before the epoch metrics
     * has no uniform share and no M per step */
    assert_contains(md, "| 0.21 / 3.90 | 34.0% (n/a; 10.0%) | n/a | 5.5200 |");
    assert_not_contains(md, "Eq. 2?");
    /* LongAlign's hours as speed-ups: 45.4/20.5, 45.4/19.1, 67.2/23.4, 67.2/23.3, 117.2/41.2, 117.2/44.5 */
    assert_contains(md, "| 45.4 | 20.5 | 19.1 | 2.21x | 2.38x |");
    assert_contains(md, "| 67.2 | 23.4 | 23.3 | 2.87x | 2.88x |");
    assert_contains(md, "| 117.2 | 41.2 | 44.5 | 2.84x | 2.63x |");
    assert_contains(md, "| **3.00x** | **2.50x** |");
    assert_contains(md, "8xA800 with DeepSpeed ZeRO-3 + CPU offload");
    /* provenance and the CPU warning */
    assert_contains(md, "`labench --backend auto --samples 24 --steps 2 --world-size 2`");
    assert_contains(md, "`0123456789ab`");
    assert_contains(md, "2026-11-20T03:00:00Z");
    assert_contains(md, "CPU backend: these are not GPU numbers");
    assert_contains(md, "W = 2 simulated ranks, sync micro");
    assert_contains(md, "lengths x0.0625");
    assert_contains(md, "No plots in this report: plots were turned off");
    free(md);
    remove_tree(dir);
}

static void test_report_gpu_results(void **state)
{
    (void)state;
    char dir[64], err[1024], *md;
    make_tmpdir(dir, sizeof dir);
    assert_int_equal(0, report_one(OTHER, dir, REPORT_MD, 1, &md, err, sizeof err));
    /* GPU idle from run.gpu_idle_fraction (0.031) */
    assert_contains(md, "| naive | 1,000 | 1.00x | 25.0% | 3.1% | 16.7% |");
    assert_contains(md, "trained on NVIDIA H100 80GB HBM3, cuda backend");
    assert_not_contains(md, "not GPU numbers");
    free(md);
    remove_tree(dir);
}

static void drop_runs(json_t *root)
{
    json_object_set_new(root, "kind", json_string("plan"));
    for (size_t i = 0; i < json_array_size(json_object_get(root, "strategies")); i++)
        json_object_set_new(strategy(root, i), "run", json_null());
    json_t *m = json_object_get(root, "machine");
    json_object_set_new(m, "backend", json_null());
    json_object_set_new(m, "device", json_null());
}

static void test_report_plan_results(void **state)
{
    (void)state;
    char dir[64], path[600], err[1024], *md;
    make_tmpdir(dir, sizeof dir);
    edited_fixture(path, sizeof path, dir, "plan.json", drop_runs);
    assert_int_equal(0, report_one(path, dir, REPORT_MD, 1, &md, err, sizeof err));
    assert_contains(md, "### Plan metrics");
    /* steps | micro-batches | padding | packing eff. | token imbalance | predicted bubble | weights | share | time */
    assert_contains(md, "| naive | 2 | 8 | 16.7% | 100.0% | 35.0% | 31.0% | 0.62 / 1.45 | 11.0% (n/a; 10.0%) | n/a | 0.025 ms |");
    assert_contains(md, "| packing | 2 | 4 | 0.0% | 73.2% | 12.0% | 12.0% | 0.21 / 3.90 |");
    assert_not_contains(md, "LongAlign's published");
    free(md);
    remove_tree(dir);
}

/* The epoch view of the weights, as `labench plan` and `train` write it since issue 13: packing
 * with per-pack means and steps of 2 and 6 sequences, packing-lw with Eq. 2 weights and steps of
 * 4 and 4. */
static void add_epoch_metrics(json_t *root)
{
    const struct { size_t i; double uniform, m_min, m_max, cv, spread; } e[] = {
        {2, 0.10, 2, 6, 0.5, 3.0}, {3, 0.10, 4, 4, 0.0, 1.0}};
    for (size_t k = 0; k < 2; k++) {
        json_t *plan = json_object_get(strategy(root, e[k].i), "plan");
        json_object_set_new(plan, "weight_share_longest10_uniform", json_real(e[k].uniform));
        json_object_set_new(plan, "step_sequences_min", json_real(e[k].m_min));
        json_object_set_new(plan, "step_sequences_max", json_real(e[k].m_max));
        json_object_set_new(plan, "step_sequences_mean", json_real((e[k].m_min + e[k].m_max) / 2));
        json_object_set_new(plan, "step_sequences_cv", json_real(e[k].cv));
        json_object_set_new(plan, "weight_epoch_spread", json_real(e[k].spread));
        json_object_set_new(plan, "step_sequences", json_pack("[f,f]", e[k].m_min, e[k].m_max));
        json_object_set_new(plan, "step_sequences_stride", json_integer(1));
    }
    /* packing-lw: Eq. 2 inside each step, share at its uniform value */
    json_t *lw = json_object_get(strategy(root, 3), "plan");
    json_object_set_new(lw, "weight_min", json_real(1.0));
    json_object_set_new(lw, "weight_max", json_real(1.0));
    json_object_set_new(lw, "weight_share_longest10", json_real(0.105));
}

static void test_report_eq2_verdict(void **state)
{
    (void)state;
    char dir[64], path[600], err[1024], *md;
    make_tmpdir(dir, sizeof dir);
    edited_fixture(path, sizeof path, dir, "epoch.json", add_epoch_metrics);
    assert_int_equal(0, report_one(path, dir, REPORT_MD, 1, &md, err, sizeof err));
    assert_contains(md, "### Does each strategy train the model of LongAlign's Eq. 2?");
    assert_contains(md, "| 0.21 / 3.90 | 34.0% (10.0%; 10.0%) | 2-6 (0.50) | 5.5200 |");
    assert_contains(md, "- **packing**: no (weights inside a step range 0.21-3.90 x 1/M, not Eq. 2's 1/M; the longest "
                        "10% over-weighted; M varies from step to step). The longest 10% carry 34.0% of the weight "
                        "(uniform: 10.0%, +24.0 points); M per step 2-6 (CV 0.50); the 99th-percentile sequence "
                        "weighs 3.00x the 1st.");
    assert_contains(md, "- **packing-lw**: yes. The longest 10% carry 10.5% of the weight (uniform: 10.0%, +0.5 points)");
    assert_contains(md, "- **naive**: n/a (no epoch metrics in this file)");
    free(md);
    assert_int_equal(0, report_one(path, dir, REPORT_CSV, 1, &md, err, sizeof err));
    assert_contains(md, ",10,2,6,0.5,3,,no\n");
    assert_contains(md, ",10,4,4,0,1,,yes\n");
    free(md);
    if (gnuplot_on_path()) {
        assert_int_equal(0, report_one(path, dir, REPORT_MD, 0, &md, err, sizeof err));
        assert_contains(md, "](plots/epoch-step_sequences.png)");
        char dat[700];
        snprintf(dat, sizeof dat, "%s/plots/epoch-step_sequences.dat", dir);
        char *text = read_text(dat);
        assert_non_null(text);
        assert_contains(text, "\"packing\"\n1 2\n2 6\n");
        free(text);
        free(md);
    }
    remove_tree(dir);
}

/* ---- report: plots ---- */

static void assert_png(const char *dir, const char *name)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) {
        print_error("missing image %s\n", p);
        fail();
    }
    unsigned char magic[8] = {0};
    size_t got = fread(magic, 1, 8, f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    assert_int_equal(8, got);
    assert_memory_equal(png, magic, 8);
    assert_true(size > 2000);
}

static void assert_svg(const char *dir, const char *name)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *s = read_text(p);
    assert_non_null(s);
    assert_contains(s, "<svg");
    free(s);
}

static void test_report_plots(void **state)
{
    (void)state;
    if (!gnuplot_on_path()) {
        printf("skip: gnuplot is not on PATH; the plots cannot be checked here\n");
        skip();
    }
    char dir[64], err[1024], *md;
    make_tmpdir(dir, sizeof dir);
    assert_int_equal(0, report_one(BASE, dir, REPORT_MD, 0, &md, err, sizeof err));
    char plots[128];
    snprintf(plots, sizeof plots, "%s/plots", dir);
    const char *ids[] = {"throughput", "bubble_padding", "memory", "step_times", "timeline", "loss", "weights"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char name[128], link[256];
        snprintf(name, sizeof name, "results-base-%s.png", ids[i]);
        assert_png(plots, name);
        snprintf(name, sizeof name, "results-base-%s.svg", ids[i]);
        assert_svg(plots, name);
        snprintf(link, sizeof link, "](plots/results-base-%s.png)", ids[i]);
        assert_contains(md, link);
    }
    assert_not_contains(md, "not drawn");
    assert_not_contains(md, "No plots");
    /* the timeline's data: step 2 of naive (the lower-median step), rank 1 waits 0.25 s at micro-step 1 */
    snprintf(plots, sizeof plots, "%s/plots/results-base-timeline.dat", dir);
    char *dat = read_text(plots);
    assert_non_null(dat);
    assert_contains(dat, "# naive, optimizer step 2 of 2 (sync micro)\n0 0 0.5 0\n1 0 0.25 0\n1 0.25 0.5 1\n");
    free(dat);
    free(md);
    remove_tree(dir);
}

static void test_report_plots_dir_elsewhere(void **state)
{
    (void)state;
    if (!gnuplot_on_path()) {
        printf("skip: gnuplot is not on PATH\n");
        skip();
    }
    char dir[64], out[256], plots[256], err[1024];
    make_tmpdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/docs/REPORT.md", dir);
    snprintf(plots, sizeof plots, "%s/img", dir);
    ReportOptions opt = {.out_path = out, .plots_dir = plots, .scripts_dir = "plots"};
    const char *inputs[2] = {BASE, OTHER};
    assert_int_equal(0, report_generate(inputs, 2, &opt, err, sizeof err));
    char *md = read_text(out);
    assert_contains(md, "](../img/results-base-throughput.png)");
    assert_contains(md, "](../img/results-other-config-timeline.png)");
    assert_contains(md, "## 1. results-base.json");
    assert_contains(md, "## 2. results-other-config.json");
    assert_png(plots, "results-other-config-throughput.png");
    free(md);
    remove_tree(dir);
}

/* A script that fails costs its plot only, and the report says which and why. */
static void test_report_gnuplot_error(void **state)
{
    (void)state;
    if (!gnuplot_on_path()) {
        printf("skip: gnuplot is not on PATH\n");
        skip();
    }
    char dir[64], scripts[128], path[256], out[256], err[1024];
    make_tmpdir(dir, sizeof dir);
    snprintf(scripts, sizeof scripts, "%s/gp", dir);
    assert_int_equal(0, mkdir(scripts, 0777));
    const char *ids[] = {"throughput", "bubble_padding", "memory", "step_times", "timeline", "loss", "weights"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        snprintf(path, sizeof path, "plots/%s.gp", ids[i]);
        char *text = read_text(path);
        assert_non_null(text);
        snprintf(path, sizeof path, "%s/%s.gp", scripts, ids[i]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(strcmp(ids[i], "loss") == 0 ? "set output out\nplot no_such_function(x)\n" : text, f);
        fclose(f);
        free(text);
    }
    snprintf(out, sizeof out, "%s/REPORT.md", dir);
    ReportOptions opt = {.out_path = out, .scripts_dir = scripts};
    const char *inputs[1] = {BASE};
    assert_int_equal(0, report_generate(inputs, 1, &opt, err, sizeof err));
    char *md = read_text(out);
    assert_contains(md, "- Training loss by strategy: not drawn: gnuplot failed on loss.gp: ");
    assert_contains(md, "![Effective tokens/s by strategy](plots/results-base-throughput.png)");
    snprintf(path, sizeof path, "%s/plots/results-base-loss.png", dir);
    assert_int_equal(-1, access(path, F_OK));
    free(md);
    remove_tree(dir);
}

static void test_report_without_gnuplot(void **state)
{
    (void)state;
    char dir[64], err[1024], *md;
    make_tmpdir(dir, sizeof dir);
    char *saved = strdup(getenv("PATH") ? getenv("PATH") : "");
    setenv("PATH", "/nonexistent", 1);
    int rc = report_one(BASE, dir, REPORT_MD, 0, &md, err, sizeof err);
    setenv("PATH", saved, 1);
    free(saved);
    assert_int_equal(0, rc);
    assert_contains(md, "gnuplot was not found on PATH");
    assert_contains(md, "| sorted | 2,500 | 2.50x |");
    assert_not_contains(md, "![");
    char plots[128];
    snprintf(plots, sizeof plots, "%s/plots", dir);
    assert_int_equal(-1, access(plots, F_OK));   /* no half-made plots either */
    free(md);
    remove_tree(dir);
}

/* ---- report: CSV ---- */

static void test_report_csv(void **state)
{
    (void)state;
    char dir[64], err[1024], *csv;
    make_tmpdir(dir, sizeof dir);
    assert_int_equal(0, report_one(BASE, dir, REPORT_CSV, 1, &csv, err, sizeof err));
    const char *header = "file,kind,backend,device,model,strategy,effective_tokens_per_s,speedup_vs_naive,"
                         "dp_bubble_pct,gpu_idle_pct,padding_pct,packing_efficiency_pct,peak_memory_mib,mfu_pct,"
                         "weight_min,weight_max,weight_share_longest10_pct,weight_share_longest10_ideal_pct,final_loss,"
                         "optimizer_steps,micro_batches,token_imbalance_pct,predicted_bubble_pct,plan_ms,"
                         "weight_share_longest10_uniform_pct,step_sequences_min,step_sequences_max,step_sequences_cv,"
                         "weight_epoch_spread,rank_utilisation_pct,eq2_over_epoch\n";
    assert_true(strncmp(csv, header, strlen(header)) == 0);
    int lines = 0;
    for (const char *c = csv; *c; c++) lines += *c == '\n';
    assert_int_equal(1 + 4, lines);
    assert_contains(csv, "\n" BASE ",train,cpu,Test CPU (2 cores),tiny,naive,1000,1,25,,");
    assert_contains(csv, "\n" BASE ",train,cpu,Test CPU (2 cores),tiny,sorted,2500,2.5,6.25,,");
    assert_contains(csv, ",packing,3000,3,7.5,,0,73.24,120,");
    free(csv);
    remove_tree(dir);
}

/* ---- report: unusable input ---- */

static void bump_version(json_t *root) { json_object_set_new(root, "schema_version", json_integer(2)); }
static void other_schema(json_t *root) { json_object_set_new(root, "schema", json_string("something-else")); }
static void drop_tps(json_t *root) { json_object_del(json_object_get(strategy(root, 1), "run"), "effective_tokens_per_s"); }
static void drop_device(json_t *root) { json_object_del(json_object_get(root, "machine"), "device"); }
static void bad_sync(json_t *root) { json_object_set_new(json_object_get(strategy(root, 2), "plan_config"), "sync", json_string("often")); }

static void expect_bad(const char *dir, const char *name, void (*edit)(json_t *), const char *message)
{
    char path[600], err[1024], out[600], *md = NULL;
    edited_fixture(path, sizeof path, dir, name, edit);
    assert_int_equal(-1, report_one(path, dir, REPORT_MD, 1, &md, err, sizeof err));
    assert_null(md);
    assert_contains(err, path);
    assert_contains(err, message);
    snprintf(out, sizeof out, "%s/REPORT.md", dir);
    assert_int_equal(-1, access(out, F_OK));
}

static void test_report_bad_input(void **state)
{
    (void)state;
    char dir[64], err[1024], *md = NULL, path[600];
    make_tmpdir(dir, sizeof dir);
    expect_bad(dir, "v2.json", bump_version, "schema_version is 2; this labench reads version 1");
    expect_bad(dir, "schema.json", other_schema, "schema is \"something-else\"");
    expect_bad(dir, "tps.json", drop_tps, "strategies[1] (sorted): run.effective_tokens_per_s is missing");
    expect_bad(dir, "device.json", drop_device, "machine.device is missing");
    expect_bad(dir, "sync.json", bad_sync, "strategies[2] (packing): plan_config.sync is \"often\"");

    assert_int_equal(-1, report_one("tests/fixtures/no-such-file.json", dir, REPORT_MD, 1, &md, err, sizeof err));
    assert_contains(err, "tests/fixtures/no-such-file.json");

    snprintf(path, sizeof path, "%s/broken.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"schema\": \"labench-results\",\n \"schema_version\": 1,,\n}\n", f);
    fclose(f);
    assert_int_equal(-1, report_one(path, dir, REPORT_MD, 1, &md, err, sizeof err));
    assert_contains(err, "broken.json:2: not valid JSON");
    remove_tree(dir);
}

/* ---- compare ---- */

static int compare_capture(const char *a, const char *b, double tol, char **text, char *err, size_t errlen)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    int rc = compare_files(a, b, tol, f, err, errlen);
    long n = ftell(f);
    rewind(f);
    *text = calloc((size_t)n + 1, 1);
    assert_int_equal((size_t)n, fread(*text, 1, (size_t)n, f));
    fclose(f);
    return rc;
}

static void test_compare_exit_codes(void **state)
{
    (void)state;
    char err[2048], *out;
    /* improved: every strategy faster; packing's memory +3% is within 5% */
    assert_int_equal(0, compare_capture(BASE, FASTER, 0.05, &out, err, sizeof err));
    assert_contains(out, "| naive | effective tokens/s | 1000 | 1091 | +9.1% |");
    assert_contains(out, "| packing | peak memory | 120.0 MiB | 123.6 MiB | +3.0% |");
    assert_contains(out, "no regression beyond 5%");
    free(out);
    /* ... but not within 2% */
    assert_int_equal(1, compare_capture(BASE, FASTER, 0.02, &out, err, sizeof err));
    assert_contains(out, "| packing | peak memory | 120.0 MiB | 123.6 MiB | +3.0% | REGRESSION: grew more than 2% |");
    free(out);
    /* regressed: sorted 2500 -> 2087 tokens/s */
    assert_int_equal(1, compare_capture(BASE, SLOWER, 0.05, &out, err, sizeof err));
    assert_contains(out, "| sorted | effective tokens/s | 2500 | 2087 | -16.5% | REGRESSION: fell more than 5% |");
    assert_contains(out, "1 regression beyond 5%");
    free(out);
    /* within a 20% tolerance */
    assert_int_equal(0, compare_capture(BASE, SLOWER, 0.20, &out, err, sizeof err));
    free(out);
    /* the same file: no change at all */
    assert_int_equal(0, compare_capture(BASE, BASE, 0.0, &out, err, sizeof err));
    free(out);
}

static void test_compare_incompatible(void **state)
{
    (void)state;
    char err[2048], *out;
    assert_int_equal(2, compare_capture(BASE, OTHER, 0.05, &out, err, sizeof err));
    assert_contains(err, "machine.device (\"Test CPU (2 cores)\" vs \"NVIDIA H100 80GB HBM3\")");
    assert_contains(err, "config.samples (24 vs 48)");
    assert_contains(err, "config.dtype");
    assert_contains(err, "strategies[packing].plan_config.max_tokens (1024 vs 2048)");
    assert_not_contains(err, "config.seed");
    free(out);
    assert_int_equal(2, compare_capture(BASE, "tests/fixtures/no-such-file.json", 0.05, &out, err, sizeof err));
    assert_contains(err, "no-such-file.json");
    free(out);
}

static void drop_packing_lw(json_t *root) { json_array_remove(json_object_get(root, "strategies"), 3); }
static void rename_naive(json_t *root) { json_object_set_new(strategy(root, 0), "name", json_string("naive-2")); }

static void test_compare_strategy_in_one_file(void **state)
{
    (void)state;
    char dir[64], cur[600], err[2048], *out;
    make_tmpdir(dir, sizeof dir);
    edited_fixture(cur, sizeof cur, dir, "cur.json", drop_packing_lw);
    assert_int_equal(0, compare_capture(BASE, cur, 0.05, &out, err, sizeof err));
    assert_contains(out, "| packing-lw | only in the baseline |");
    free(out);
    edited_fixture(cur, sizeof cur, dir, "cur2.json", rename_naive);
    assert_int_equal(0, compare_capture(BASE, cur, 0.05, &out, err, sizeof err));
    assert_contains(out, "| naive-2 | only in the current results |");
    free(out);
    remove_tree(dir);
}

static void test_parse_tolerance(void **state)
{
    (void)state;
    double t = -1;
    assert_int_equal(0, parse_tolerance("5%", &t));
    assert_close(t, 0.05, 1e-15, 0);
    assert_int_equal(0, parse_tolerance("0.05", &t));
    assert_close(t, 0.05, 1e-15, 0);
    assert_int_equal(0, parse_tolerance("12.5%", &t));
    assert_close(t, 0.125, 1e-15, 0);
    assert_int_equal(0, parse_tolerance("0", &t));
    assert_close(t, 0, 0, 0);
    assert_int_equal(-1, parse_tolerance("5", &t));     /* 5% or 500%? */
    assert_int_equal(-1, parse_tolerance("-1%", &t));
    assert_int_equal(-1, parse_tolerance("5 %", &t));
    assert_int_equal(-1, parse_tolerance("%", &t));
    assert_int_equal(-1, parse_tolerance("abc", &t));
    assert_int_equal(-1, parse_tolerance("", &t));
}

/* ---- pieces ---- */

static void test_device_slug(void **state)
{
    (void)state;
    char s[64];
    device_slug("NVIDIA H100 80GB HBM3", s, sizeof s);
    assert_string_equal("nvidia-h100-80gb-hbm3", s);
    device_slug("  AMD EPYC (2 cores) ", s, sizeof s);
    assert_string_equal("amd-epyc-2-cores", s);
    device_slug("", s, sizeof s);
    assert_string_equal("unknown-device", s);
    device_slug(NULL, s, sizeof s);
    assert_string_equal("unknown-device", s);
}

static double waited(const TimelineBox *b, int n, int rank)
{
    double w = 0;
    for (int i = 0; i < n; i++)
        if (b[i].rank == rank && b[i].kind == TL_WAIT) w += b[i].end - b[i].start;
    return w;
}

static double last_end(const TimelineBox *b, int n)
{
    double e = 0;
    for (int i = 0; i < n; i++) e = b[i].end > e ? b[i].end : e;
    return e;
}

static void test_timeline(void **state)
{
    (void)state;
    ResultsFile rf;
    char err[1024];
    assert_int_equal(0, results_read(BASE, &rf, err, sizeof err));
    RepStrategy *naive = &rf.strategies[0];
    assert_string_equal("naive", naive->name);
    /* step walls 2.125 and 0.875: the lower median is step 2 (index 1) */
    assert_int_equal(1, timeline_pick_step(naive->run));

    /* Step 1 under sync micro: micro 0 ranks take 0.5 / 1.0, micro 1 1.0 / 0.25; rank 0 waits 0.5 at the first
     * sync point, rank 1 0.75 at the second; the optimizer's 0.125 ends the step at its DP wall, 2.125 s. */
    TimelineBox *b;
    int n;
    assert_int_equal(0, timeline_build(naive, 0, 0.0, &b, &n));
    assert_close(waited(b, n, 0), 0.5, 1e-12, 0);
    assert_close(waited(b, n, 1), 0.75, 1e-12, 0);
    assert_close(last_end(b, n), naive->run->step_wall_s[0], 1e-9, 0);
    int second_compute = 0;
    for (int i = 0; i < n; i++)
        if (b[i].rank == 1 && b[i].kind == TL_COMPUTE && b[i].start > 0) {
            assert_close(b[i].start, 1.0, 1e-12, 0);   /* micro-step 1 starts when rank 1 of micro 0 ends */
            second_compute++;
        }
    assert_int_equal(1, second_compute);
    free(b);

    /* Communication after each of the 2 sync points */
    assert_int_equal(0, timeline_build(naive, 0, 0.1, &b, &n));
    assert_close(last_end(b, n), 2.125 + 2 * 0.1, 1e-12, 0);
    free(b);

    /* Under sync step the ranks run on: 1.5 s and 1.25 s, one wait of 0.25 s, then 0.125 s of optimizer. */
    naive->cfg.sync = SYNC_STEP;
    assert_int_equal(0, timeline_build(naive, 0, 0.0, &b, &n));
    assert_close(waited(b, n, 0), 0.0, 1e-12, 0);
    assert_close(waited(b, n, 1), 0.25, 1e-12, 0);
    assert_close(last_end(b, n), 1.625, 1e-12, 0);
    free(b);
    results_file_free(&rf);
}

static void test_cmd_report(void **state)
{
    (void)state;
    char dir[64], out[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/r.csv", dir);
    char *argv[] = {"report", BASE, "-o", out, "--format=csv", NULL};
    assert_int_equal(0, cmd_report(5, argv, "labench report"));
    assert_int_equal(0, access(out, R_OK));
    remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_tables),
        cmocka_unit_test(test_report_gpu_results),
        cmocka_unit_test(test_report_plan_results),
        cmocka_unit_test(test_report_eq2_verdict),
        cmocka_unit_test(test_report_plots),
        cmocka_unit_test(test_report_plots_dir_elsewhere),
        cmocka_unit_test(test_report_gnuplot_error),
        cmocka_unit_test(test_report_without_gnuplot),
        cmocka_unit_test(test_report_csv),
        cmocka_unit_test(test_report_bad_input),
        cmocka_unit_test(test_compare_exit_codes),
        cmocka_unit_test(test_compare_incompatible),
        cmocka_unit_test(test_compare_strategy_in_one_file),
        cmocka_unit_test(test_parse_tolerance),
        cmocka_unit_test(test_device_slug),
        cmocka_unit_test(test_timeline),
        cmocka_unit_test(test_cmd_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
