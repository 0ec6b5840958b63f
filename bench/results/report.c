/* The report engine of `labench report`: REPORT.md (or a CSV) from one or more results files, with plots drawn by
 * the gnuplot scripts in plots/. Every number comes from the results files; nothing is re-run. */
#include "bench/results/report.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/analysis/predict.h"
#include "common/atomic_file.h"
#include "common/stats.h"

/* snprintf whose result is checked where it matters: -1 when the text did not fit. (Going through
 * vsnprintf also spares gcc's guesses about every buffer size.) */
static int spf(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int spf(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

/* ---------- formatting: every cell says "n/a" for what a file does not have ---------- */

typedef struct {
    char s[64];
} Str;

/* 12345.6 -> "12,346": throughputs are read by magnitude. */
static Str f_count(double v)
{
    Str o;
    if (!isfinite(v)) return (Str){"n/a"};
    if (fabs(v) < 10) {
        snprintf(o.s, sizeof o.s, "%.2f", v);
        return o;
    }
    char digits[48];
    snprintf(digits, sizeof digits, "%.0f", fabs(v));
    size_t n = strlen(digits), k = 0;
    if (v < 0) o.s[k++] = '-';
    for (size_t i = 0; i < n && k + 2 < sizeof o.s; i++) {
        if (i > 0 && (n - i) % 3 == 0) o.s[k++] = ',';
        o.s[k++] = digits[i];
    }
    o.s[k] = 0;
    return o;
}

/* A count: thousands separated, never decimals. */
static Str f_int(long long v)
{
    Str o;
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", v < 0 ? -v : v);
    size_t n = strlen(digits), k = 0;
    if (v < 0) o.s[k++] = '-';
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0) o.s[k++] = ',';
        o.s[k++] = digits[i];
    }
    o.s[k] = 0;
    return o;
}

static Str f_fix(double v, int decimals, const char *unit)
{
    Str o;
    if (!isfinite(v)) return (Str){"n/a"};
    snprintf(o.s, sizeof o.s, "%.*f%s", decimals, v, unit);
    return o;
}

/* A fraction as a percentage; small ones keep a significant digit (CPU MFU is ~0.06%). */
static Str f_pct(double frac, int decimals)
{
    double p = 100 * frac;
    if (isfinite(p) && p != 0 && fabs(p) < 0.1 && decimals < 3) decimals = 3;
    return f_fix(p, decimals, "%");
}

static Str f_speedup(double v) { return f_fix(v, 2, "x"); }

static double ratio(double a, double b) { return isfinite(a) && isfinite(b) && b > 0 ? a / b : NAN; }

/* Markdown table cells and inline text: '|' would end the cell. */
static void md_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
}

static void md_code(FILE *f, const char *s)
{
    fputc('`', f);
    for (; s && *s; s++) fputc(*s == '`' ? '\'' : *s == '\n' ? ' ' : *s, f);
    fputc('`', f);
}

static const char *or_unknown(const char *s) { return s && *s ? s : "unknown"; }

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* ---------- what every section says about its results file ---------- */

static double naive_tps(const ResultsFile *rf)
{
    const RepStrategy *n = results_find(rf, "naive");
    return n && n->run ? n->run->effective_tps : NAN;
}

static void model_words(const ResultsFile *rf, char *buf, size_t n)
{
    snprintf(buf, n, "%s (%d layers, hidden %d, %s parameters)", rf->model_preset, rf->layers, rf->hidden,
             f_int(rf->params).s);
}

/* One line under each plot's title: where the numbers come from, CPU said plainly. */
static void subtitle(const ResultsFile *rf, char *buf, size_t n)
{
    if (strcmp(rf->kind, "train") == 0)
        snprintf(buf, n, "%s%s, %s backend, model %s (%d layers), %s, lengths x%g",
                 results_is_cpu(rf) ? "CPU backend, not GPU numbers: " : "", or_unknown(rf->device),
                 or_unknown(rf->backend), rf->model_preset, rf->layers, rf->dtype, rf->len_scale);
    else
        snprintf(buf, n, "plan only (no model): %s, %lld samples, lengths x%g", rf->len_dist, rf->samples,
                 rf->len_scale);
}

/* ---------- plots ---------- */

typedef struct {
    int enabled;                 /* gnuplot and the scripts were found, the folder is writable */
    char why[600];               /* why there are no plots, when !enabled */
    char gnuplot[4096];
    char scripts[4096];
    char dir[4096];              /* where images and .dat files go */
    char rel[4096];              /* the same folder, relative to the report's folder */
} PlotEnv;

enum { P_THROUGHPUT, P_BUBBLE, P_MEMORY, P_STEPS, P_TIMELINE, P_LOSS, P_WEIGHTS, P_STEP_SEQS, N_PLOTS };

static const struct {
    const char *id, *caption;
} PLOTS[N_PLOTS] = {
    {"throughput", "Effective tokens/s by strategy"},
    {"bubble_padding", "DP bubble and padding by strategy"},
    {"memory", "Peak memory by strategy"},
    {"step_times", "DP wall time of each optimizer step"},
    {"timeline", "DP timeline of one optimizer step per strategy (ranks as rows; red: waiting at the sync point)"},
    {"loss", "Training loss by strategy"},
    {"weights", "Effective loss weight against sequence length"},
    {"step_sequences", "Sequences per optimizer step (M)"},
};

typedef struct {
    int wanted;                  /* the plot belongs in this file's section */
    int drawn;                   /* its .png and .svg exist */
    char note[600];              /* why it was not drawn */
} PlotOut;

static int find_on_path(const char *prog, char *out, size_t n)
{
    const char *path = getenv("PATH");
    if (!path) return -1;
    while (*path) {
        size_t len = strcspn(path, ":");
        snprintf(out, n, "%.*s/%s", (int)(len ? len : 1), len ? path : ".", prog);
        if (access(out, X_OK) == 0) return 0;
        path += len;
        if (*path == ':') path++;
    }
    return -1;
}

static int file_exists(const char *dir, const char *name)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, R_OK) == 0;
}

/* The plots/ folder with the .gp scripts: given, or ./plots, or next to the binary's folder
 * (build/labench -> plots/). */
static int find_scripts(const char *given, char *out, size_t n)
{
    if (given) {
        snprintf(out, n, "%s", given);
        return file_exists(out, "throughput.gp") ? 0 : -1;
    }
    snprintf(out, n, "plots");
    if (file_exists(out, "throughput.gp")) return 0;
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return -1;
    exe[len] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = 0;
    spf(out, n, "%s/../plots", exe);
    if (file_exists(out, "throughput.gp")) return 0;
    spf(out, n, "%s/plots", exe);
    return file_exists(out, "throughput.gp") ? 0 : -1;
}

/* Appends src to the string in out (n bytes), cutting it short when full. */
static void append(char *out, size_t n, const char *src)
{
    size_t k = strlen(out), len = strlen(src);
    if (k + 1 >= n) return;
    if (len > n - 1 - k) len = n - 1 - k;
    memcpy(out + k, src, len);
    out[k + len] = 0;
}

/* Path of `to` relative to the folder `from` (both absolute, canonical). */
static void relative_path(const char *from, const char *to, char *out, size_t n)
{
    size_t common = 0, i = 0;
    while (from[i] && from[i] == to[i]) {
        i++;
        if (from[i] == '/' || (from[i] == 0 && (to[i] == '/' || to[i] == 0))) common = i;
    }
    out[0] = 0;
    /* one ".." per folder of `from` below the common part ("/" has none) */
    if (strcmp(from, "/") != 0)
        for (const char *p = from + common; *p; p++)
            if (*p == '/') append(out, n, "../");
    const char *rest = to + common;
    if (*rest == '/') rest++;
    if (*rest)
        append(out, n, rest);
    else if (!out[0])
        snprintf(out, n, ".");
    size_t len = strlen(out);
    if (len > 1 && out[len - 1] == '/') out[len - 1] = 0;
}

static void plot_env_init(PlotEnv *env, const ReportOptions *opt, const char *report_dir, const char *plots_dir)
{
    memset(env, 0, sizeof *env);
    if (opt->no_plots) {
        snprintf(env->why, sizeof env->why, "plots were turned off (--no-plots)");
        return;
    }
    if (find_on_path("gnuplot", env->gnuplot, sizeof env->gnuplot) != 0) {
        snprintf(env->why, sizeof env->why,
                 "gnuplot was not found on PATH. Install it (the gnuplot-nox package; scripts/setup.sh does) "
                 "and run `labench report` again to get the images");
        return;
    }
    if (find_scripts(opt->scripts_dir, env->scripts, sizeof env->scripts) != 0) {
        snprintf(env->why, sizeof env->why,
                 "the gnuplot scripts (plots/throughput.gp and the others) were not found; run labench from "
                 "its source folder");
        return;
    }
    char abs_report[PATH_MAX], abs_plots[PATH_MAX];
    if (make_dirs(plots_dir) != 0 || !realpath(plots_dir, abs_plots) || !realpath(report_dir, abs_report)) {
        spf(env->why, sizeof env->why, "cannot create the plots folder %s: %s", plots_dir, strerror(errno));
        return;
    }
    snprintf(env->dir, sizeof env->dir, "%s", plots_dir);
    relative_path(abs_report, abs_plots, env->rel, sizeof env->rel);
    env->enabled = 1;
}

/* Appends s to a gnuplot single-quoted string ('' stands for a quote). */
static void gp_quoted(char *buf, size_t n, const char *s)
{
    size_t k = strlen(buf);
    if (k + 1 < n) buf[k++] = '\'';
    for (; *s && k + 3 < n; s++) {
        if (*s == '\'') buf[k++] = '\'';
        buf[k++] = *s == '\n' ? ' ' : *s;
    }
    if (k + 1 < n) buf[k++] = '\'';
    buf[k] = 0;
}

static void gp_var(char *buf, size_t n, const char *name, const char *value)
{
    size_t k = strlen(buf);
    snprintf(buf + k, n - k, "%s%s=", k ? "; " : "", name);
    gp_quoted(buf, n, value);
}

/* Runs plots/<script>.gp to draw one image at `image` (through a temporary name, so a failed
 * run leaves nothing). 0, or -1 with why (gnuplot's first line of complaint). */
static int run_gnuplot(const PlotEnv *env, const char *script, const char *vars, const char *image, const char *fmt,
                       char *why, size_t whylen)
{
    char tmp[4300], e[16384], gp[4200];
    if (spf(tmp, sizeof tmp, "%s.tmp.%ld", image, (long)getpid()) != 0) {
        spf(why, whylen, "path too long: %s", image);
        return -1;
    }
    snprintf(gp, sizeof gp, "%s/%s.gp", env->scripts, script);
    snprintf(e, sizeof e, "%s", vars);
    gp_var(e, sizeof e, "out", tmp);
    gp_var(e, sizeof e, "fmt", fmt);

    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        dup2(fds[1], 2);
        close(fds[0]);
        execl(env->gnuplot, "gnuplot", "-e", e, gp, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    /* Keep gnuplot's complaints (warnings on success are noise), reading to the end so it
     * never blocks on a full pipe. */
    char msg[2048] = "";
    size_t got = 0;
    for (;;) {
        char chunk[1024];
        ssize_t r = read(fds[0], chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        size_t take = (size_t)r < sizeof msg - 1 - got ? (size_t)r : sizeof msg - 1 - got;
        memcpy(msg + got, chunk, take);
        got += take;
    }
    msg[got] = 0;
    close(fds[0]);
    int status = 0;
    pid_t w;
    do
        w = waitpid(pid, &status, 0);
    while (w < 0 && errno == EINTR);
    struct stat st;
    int ok = w == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 && stat(tmp, &st) == 0 && st.st_size > 0;
    if (ok && rename(tmp, image) == 0) return 0;
    unlink(tmp);
    /* gnuplot's error is its last non-empty line ("file.gp" line N: ...). */
    char *last = NULL;
    for (char *line = strtok(msg, "\n"); line; line = strtok(NULL, "\n"))
        if (strspn(line, " ^") < strlen(line)) last = line;
    snprintf(why, whylen, "gnuplot failed on %s.gp%s%s", script, last ? ": " : "", last ? last : "");
    return -1;
}

typedef struct {
    const PlotEnv *env;
    const ResultsFile *rf;
    const char *stem;
    char sub[512];
} PlotJob;

static void dat_path(const PlotJob *j, int plot, const char *ext, char *out, size_t n)
{
    spf(out, n, "%s/%s-%s.%s", j->env->dir, j->stem, PLOTS[plot].id, ext);
}

static void dat_name(char *out, size_t n, const char *name)
{
    snprintf(out, n, "\"");
    size_t k = 1;
    for (; *name && k + 2 < n; name++) out[k++] = *name == '"' ? '\'' : *name;
    out[k++] = '"';
    out[k] = 0;
}

/* Writes the .dat (by fill), then the .png and .svg. */
static void draw(const PlotJob *j, int plot, void (*fill)(const PlotJob *, FILE *), const char *extra_vars,
                 PlotOut *po)
{
    char dat[4400], img[4400], err[1024];
    dat_path(j, plot, "dat", dat, sizeof dat);
    AtomicFile af;
    if (atomic_open(&af, dat, err, sizeof err) != 0) {
        spf(po->note, sizeof po->note, "%s", err);
        return;
    }
    fprintf(af.f, "# %s: data for plots/%s.gp, written by `labench report` from %s\n", PLOTS[plot].caption,
            PLOTS[plot].id, j->rf->path);
    fill(j, af.f);
    if (atomic_commit(&af, err, sizeof err) != 0) {
        spf(po->note, sizeof po->note, "%s", err);
        return;
    }
    char vars[8192] = "";
    gp_var(vars, sizeof vars, "data", dat);
    gp_var(vars, sizeof vars, "subtitle", j->sub);
    if (extra_vars) {
        size_t k = strlen(vars);
        snprintf(vars + k, sizeof vars - k, "; %s", extra_vars);
    }
    const char *fmts[2] = {"png", "svg"};
    for (int i = 0; i < 2; i++) {
        dat_path(j, plot, fmts[i], img, sizeof img);
        if (run_gnuplot(j->env, PLOTS[plot].id, vars, img, fmts[i], po->note, sizeof po->note) != 0) return;
    }
    po->drawn = 1;
}

static void fill_throughput(const PlotJob *j, FILE *f)
{
    fprintf(f, "# strategy, effective tokens/s, label\n");
    double base = naive_tps(j->rf);
    for (int i = 0; i < j->rf->n_strategies; i++) {
        const RepStrategy *s = &j->rf->strategies[i];
        if (!s->run) continue;
        char name[160], label[128];
        dat_name(name, sizeof name, s->name);
        double up = ratio(s->run->effective_tps, base);
        if (isfinite(up))
            spf(label, sizeof label, "\"%s (%s)\"", f_count(s->run->effective_tps).s, f_speedup(up).s);
        else
            snprintf(label, sizeof label, "\"%s\"", f_count(s->run->effective_tps).s);
        fprintf(f, "%s %.6g %s\n", name, s->run->effective_tps, label);
    }
}

static void fill_bubble(const PlotJob *j, FILE *f)
{
    int train = strcmp(j->rf->kind, "train") == 0;
    fprintf(f, "# strategy, bubble %%, padding %% (%s)\n", train ? "measured" : "the plan; bubble from the cost model");
    fprintf(f, "strategy \"%s\" \"padding (pad / computed tokens)\"\n",
            train ? "DP bubble (ranks waiting at sync points)" : "predicted DP bubble (cost model)");
    for (int i = 0; i < j->rf->n_strategies; i++) {
        const RepStrategy *s = &j->rf->strategies[i];
        if (train && !s->run) continue;
        char name[160];
        dat_name(name, sizeof name, s->name);
        double bubble = train ? s->run->dp_bubble : s->plan.predicted_bubble;
        double pad = train ? s->run->padding : s->plan.padding_ratio;
        fprintf(f, "%s %.6g %.6g\n", name, 100 * bubble, 100 * pad);
    }
}

static void fill_memory(const PlotJob *j, FILE *f)
{
    fprintf(f, "# strategy, peak memory MiB\n");
    for (int i = 0; i < j->rf->n_strategies; i++) {
        const RepStrategy *s = &j->rf->strategies[i];
        if (!s->run) continue;
        char name[160];
        dat_name(name, sizeof name, s->name);
        fprintf(f, "%s %.6g\n", name, s->run->peak_mib);
    }
}

static void fill_steps(const PlotJob *j, FILE *f)
{
    fprintf(f, "# block 0: x, strategy, DP wall seconds of one optimizer step, step (1-based)\n");
    int x = 0;
    for (int i = 0; i < j->rf->n_strategies; i++) {
        const RepStrategy *s = &j->rf->strategies[i];
        if (!s->run) continue;
        char name[160];
        dat_name(name, sizeof name, s->name);
        x++;
        for (int k = 0; k < s->run->n_steps; k++) fprintf(f, "%d %s %.6g %d\n", x, name, s->run->step_wall_s[k], k + 1);
    }
    fprintf(f, "\n\n# block 1: x, strategy, median DP wall seconds per step\n");
    x = 0;
    for (int i = 0; i < j->rf->n_strategies; i++) {
        const RepStrategy *s = &j->rf->strategies[i];
        if (!s->run) continue;
        char name[160];
        dat_name(name, sizeof name, s->name);
        fprintf(f, "%d %s %.6g\n", ++x, name, median(s->run->step_wall_s, (size_t)s->run->n_steps));
    }
}

static void fill_timeline(const PlotJob *j, FILE *f)
{
    fprintf(f, "# one block per strategy: rank, start s, end s, kind (0 compute, 1 waiting, 2 communication, "
               "3 optimizer)\n");
    int first = 1;
    for (int i = 0; i < j->rf->n_strategies; i++) {
        const RepStrategy *s = &j->rf->strategies[i];
        if (!s->run) continue;
        int step = timeline_pick_step(s->run);
        TimelineBox *b = NULL;
        int n = 0;
        if (timeline_build(s, step, j->rf->comm_per_sync_s, &b, &n) != 0) n = 0;   /* out of memory: an empty panel */
        fprintf(f, "%s# %s, optimizer step %d of %d (sync %s)\n", first ? "" : "\n\n", s->name, step + 1,
                s->run->n_steps, s->sync);
        first = 0;
        for (int k = 0; k < n; k++) fprintf(f, "%d %.6g %.6g %d\n", b[k].rank, b[k].start, b[k].end, (int)b[k].kind);
        if (n == 0) fprintf(f, "0 0 0 0\n");   /* keeps the blocks aligned with the names */
        free(b);
    }
}

static void fill_loss(const PlotJob *j, FILE *f)
{
    fprintf(f, "# one block per strategy: its name, then rows of optimizer step (1-based), loss\n");
    int first = 1;
    for (int i = 0; i < j->rf->n_strategies; i++) {
        const RepStrategy *s = &j->rf->strategies[i];
        if (!s->run) continue;
        char name[160];
        dat_name(name, sizeof name, s->name);
        fprintf(f, "%s%s\n", first ? "" : "\n\n", name);
        first = 0;
        for (int k = 0; k < s->run->n_loss; k++) fprintf(f, "%d %.8g\n", k + 1, s->run->loss_curve[k]);
    }
}

/* Each sequence's weight against the epoch-uniform share (weight x mean M) when the file has
 * it, else against its own step (weight x M, older files). */
static int epoch_weights(const ResultsFile *rf)
{
    for (int i = 0; i < rf->n_strategies; i++)
        if (rf->strategies[i].weights && !rf->strategies[i].weights_epoch) return 0;
    return 1;
}

static void fill_weights(const PlotJob *j, FILE *f)
{
    int epoch = epoch_weights(j->rf);
    fprintf(f, "# one block per strategy: its name, then rows of sequence length (tokens), %s\n",
            epoch ? "weight x mean M (1 = the epoch-uniform weight)" : "weight x M of its step");
    int first = 1;
    for (int i = 0; i < j->rf->n_strategies; i++) {
        const RepStrategy *s = &j->rf->strategies[i];
        const json_t *w = epoch ? s->weights_epoch : s->weights;
        if (!w) continue;
        char name[160];
        dat_name(name, sizeof name, s->name);
        fprintf(f, "%s%s\n", first ? "" : "\n\n", name);
        first = 0;
        for (size_t k = 0; k < json_array_size(w); k++) {
            const json_t *p = json_array_get(w, k);
            const json_t *len = json_array_get(p, 0), *v = json_array_get(p, 1);
            if (json_is_number(len) && json_is_number(v))
                fprintf(f, "%.8g %.8g\n", json_number_value(len), json_number_value(v));
        }
    }
}

static void fill_step_seqs(const PlotJob *j, FILE *f)
{
    fprintf(f, "# one block per strategy: its name, then rows of optimizer step (from 1), M (sequences in it)\n");
    int first = 1;
    for (int i = 0; i < j->rf->n_strategies; i++) {
        const RepStrategy *s = &j->rf->strategies[i];
        if (!s->step_seqs) continue;
        char name[160];
        dat_name(name, sizeof name, s->name);
        fprintf(f, "%s%s\n", first ? "" : "\n\n", name);
        first = 0;
        for (size_t k = 0; k < json_array_size(s->step_seqs); k++) {
            const json_t *v = json_array_get(s->step_seqs, k);
            if (json_is_number(v))
                fprintf(f, "%lld %.8g\n", (long long)k * s->step_seqs_stride + 1, json_number_value(v));
        }
    }
}

static void timeline_vars(const ResultsFile *rf, char *buf, size_t n)
{
    char names[2048] = "", steps[512] = "", nsteps[512] = "";
    int ranks = 1;
    for (int i = 0; i < rf->n_strategies; i++) {
        const RepStrategy *s = &rf->strategies[i];
        if (!s->run) continue;
        char num[32];
        size_t k = strlen(names);
        snprintf(names + k, sizeof names - k, "%s%s", k ? " " : "", s->name);
        snprintf(num, sizeof num, "%s%d", steps[0] ? " " : "", timeline_pick_step(s->run) + 1);
        append(steps, sizeof steps, num);
        snprintf(num, sizeof num, "%s%d", nsteps[0] ? " " : "", s->run->n_steps);
        append(nsteps, sizeof nsteps, num);
        if (s->world_size > ranks) ranks = s->world_size;
    }
    buf[0] = 0;
    gp_var(buf, n, "names", names);
    gp_var(buf, n, "steps", steps);
    gp_var(buf, n, "nsteps", nsteps);
    size_t k = strlen(buf);
    snprintf(buf + k, n - k, "; ranks=%d", ranks);
}

static void draw_all(const PlotEnv *env, const ResultsFile *rf, const char *stem, PlotOut *po)
{
    memset(po, 0, N_PLOTS * sizeof *po);
    int train = strcmp(rf->kind, "train") == 0;
    for (int p = 0; p < N_PLOTS; p++) po[p].wanted = train || p == P_BUBBLE || p == P_WEIGHTS;
    if (!env->enabled) return;
    PlotJob j = {.env = env, .rf = rf, .stem = stem};
    subtitle(rf, j.sub, sizeof j.sub);
    if (train) {
        char tv[4096];
        timeline_vars(rf, tv, sizeof tv);
        draw(&j, P_THROUGHPUT, fill_throughput, NULL, &po[P_THROUGHPUT]);
        draw(&j, P_MEMORY, fill_memory, NULL, &po[P_MEMORY]);
        draw(&j, P_STEPS, fill_steps, NULL, &po[P_STEPS]);
        draw(&j, P_TIMELINE, fill_timeline, tv, &po[P_TIMELINE]);
        draw(&j, P_LOSS, fill_loss, NULL, &po[P_LOSS]);
    }
    draw(&j, P_BUBBLE, fill_bubble, NULL, &po[P_BUBBLE]);
    int any_weights = 0, any_m = 0;
    for (int i = 0; i < rf->n_strategies; i++) {
        any_weights |= rf->strategies[i].weights != NULL;
        any_m |= rf->strategies[i].step_seqs != NULL;
    }
    char wvars[256] = "";
    gp_var(wvars, sizeof wvars, "ylabel",
           epoch_weights(rf) ? "weight x mean M (1 = epoch-uniform)" : "effective weight x M (1 = equal share)");
    if (any_weights)
        draw(&j, P_WEIGHTS, fill_weights, wvars, &po[P_WEIGHTS]);
    else
        snprintf(po[P_WEIGHTS].note, sizeof po[P_WEIGHTS].note,
                 "the results have no per-sequence weights (strategies[].plan.weights, pairs of [length, weight x M]); "
                 "the tables give each strategy's min, max and the longest 10%%'s share instead");
    po[P_STEP_SEQS].wanted = any_m; /* files written before the metric have none: no plot, no note */
    if (any_m) draw(&j, P_STEP_SEQS, fill_step_seqs, NULL, &po[P_STEP_SEQS]);
}

/* ---------- markdown ---------- */

/* "; BLAS: OpenBLAS 0.3.21, core Cooperlake (avx512f kernels), openmp, 2 threads", from
 * machine.blas when the file has it; a fallback core is said as such. */
static void md_blas(FILE *f, const RepBlas *b)
{
    fputs("; BLAS: ", f);
    md_text(f, b->library ? b->library : "unknown");
    if (b->version) { fputc(' ', f); md_text(f, b->version); }
    if (b->core) {
        fputs(", core ", f);
        md_text(f, b->core);
        if (b->core_isa) { fputs(" (", f); md_text(f, b->core_isa); fputs(" kernels)", f); }
    }
    if (b->coretype_env) { fputs(", chosen by OPENBLAS_CORETYPE=", f); md_text(f, b->coretype_env); }
    if (b->threading) { fputs(", ", f); md_text(f, b->threading); }
    if (b->threads >= 0) fprintf(f, ", %lld threads", b->threads);
    if (b->fallback) {
        fputs(" -- a generic fallback core, slower than the CPU allows", f);
        if (b->suggested_coretype) {
            fputs("; OPENBLAS_CORETYPE=", f);
            md_text(f, b->suggested_coretype);
            fputs(" would select the CPU's own", f);
        }
    }
}

static void md_machine(FILE *f, const ResultsFile *rf)
{
    int train = strcmp(rf->kind, "train") == 0;
    fputs("- **command:** ", f);
    md_code(f, rf->command);
    fputs("\n- **commit:** ", f);
    md_code(f, rf->commit);
    fprintf(f, "; **results written:** %s\n", rf->created);
    fputs("- **machine:** ", f);
    md_text(f, or_unknown(rf->hostname));
    fputs(", CPU ", f);
    md_text(f, or_unknown(rf->cpu));
    if (rf->cores > 0) fprintf(f, " (%lld cores)", rf->cores);
    fputs("\n", f);
    if (train) {
        fputs("- **device:** ", f);
        md_text(f, or_unknown(rf->device));
        fprintf(f, " (%s backend; GPU: ", or_unknown(rf->backend));
        md_text(f, rf->gpu ? rf->gpu : "none");
        fputs(")", f);
        if (isfinite(rf->peak_flops) && rf->peak_flops > 0) {
            fprintf(f, "; peak %.3g TFLOP/s", rf->peak_flops / 1e12);
            if (rf->peak_flops_source) {
                fputs(" (", f);
                md_text(f, rf->peak_flops_source);
                fputs(")", f);
            }
        }
        if (rf->has_blas) md_blas(f, &rf->blas);
        char model[160];
        model_words(rf, model, sizeof model);
        fprintf(f, "\n- **model:** %s, %d heads (%d KV), %s, recompute %s\n", model, rf->heads, rf->kv_heads, rf->dtype,
                rf->recompute ? "on" : "off");
    }
    fputs("- **data:** ", f);
    md_text(f, rf->len_dist);
    fprintf(f, ", %s samples, lengths x%g, seed %lld\n", f_int(rf->samples).s, rf->len_scale, rf->seed);

    /* W and sync are per strategy; say them once when they agree. */
    int same = 1;
    for (int i = 1; i < rf->n_strategies; i++)
        same &= rf->strategies[i].world_size == rf->strategies[0].world_size &&
                strcmp(rf->strategies[i].sync, rf->strategies[0].sync) == 0;
    fputs("- **data parallel:** ", f);
    const int real = results_dp_real(rf);
    if (same) {
        const RepStrategy *s = &rf->strategies[0];
        fprintf(f, "W = %d %s ranks, sync %s (%s)", s->world_size, real ? "real" : "simulated", s->sync,
                strcmp(s->sync, "micro") == 0 ? "every micro-step, as ZeRO-3" : "once per optimizer step, as DDP");
    } else {
        for (int i = 0; i < rf->n_strategies; i++)
            fprintf(f, "%s%s W = %d sync %s", i ? "; " : "", rf->strategies[i].name, rf->strategies[i].world_size,
                    rf->strategies[i].sync);
    }
    if (train && real) {
        fputs(", one process and device each (`--dp real`): waits and communication measured", f);
    } else if (train) {
        fputs(", played in turn by the one device; communication ", f);
        if (rf->comm_per_sync_s > 0)
            fprintf(f, "modelled (%s, %.3g s per micro-step)", rf->comm, rf->comm_per_sync_s);
        else
            fputs("not modelled", f);
    }
    if (train) {
        if (rf->steps > 0)
            fprintf(f, "\n- **steps:** %d optimizer steps per strategy (fewer where a plan has fewer)", rf->steps);
        else
            fputs("\n- **steps:** every step of each plan", f);
    }
    fputs("\n\n", f);
    if (results_is_cpu(rf))
        fprintf(f,
                "> **CPU backend: these are not GPU numbers.** They come from labench's CPU reference backend: "
                "the %s model (%s parameters, %s) on lengths scaled by x%g, each simulated rank timed by the "
                "wall clock. Read them for how the strategies rank against each other, not as GPU throughput, "
                "memory or MFU.\n\n",
                rf->model_preset, f_int(rf->params).s, rf->dtype, rf->len_scale);
}

/* "62.8% (10.0%; 62.8%)": the share over the epoch, against the epoch-uniform share and the
 * per-step ideal (older files have no uniform share: only the ideal, as they printed it). */
static Str f_share(const PlanMetrics *p)
{
    Str o;
    if (isfinite(p->weight_share_longest10_uniform))
        spf(o.s, sizeof o.s, "%s (%s; %s)", f_pct(p->weight_share_longest10, 1).s,
                 f_pct(p->weight_share_longest10_uniform, 1).s, f_pct(p->weight_share_longest10_ideal, 1).s);
    else
        spf(o.s, sizeof o.s, "%s (n/a; %s)", f_pct(p->weight_share_longest10, 1).s,
                 f_pct(p->weight_share_longest10_ideal, 1).s);
    return o;
}

/* "8-120 (0.09)": M's range over the steps and its coefficient of variation. */
static Str f_step_seqs(const PlanMetrics *p)
{
    Str o;
    if (!isfinite(p->step_seqs_cv)) return (Str){"n/a"};
    spf(o.s, sizeof o.s, "%s-%s (%.2f)", f_int((long long)p->step_seqs_min).s,
             f_int((long long)p->step_seqs_max).s, p->step_seqs_cv);
    return o;
}

#define SHARE_WORDS                                                                                              \
    "Longest 10%: the loss-weight share of the longest tenth of the sequences over the epoch; uniform: that share " \
    "if every sequence counted the same (LongAlign's Eq. 2 over the epoch); per-step ideal: if every sequence "   \
    "weighed 1/M of its own step, which hides how M varies between steps. M per step: sequences in an "           \
    "optimizer step, min-max (coefficient of variation)."

/* One line per strategy: does the plan train the model LongAlign's Eq. 2 describes over the
 * epoch (plan_metrics_fair), and how far off it is. */
static void md_eq2(FILE *f, const ResultsFile *rf)
{
    int any = 0;
    for (int i = 0; i < rf->n_strategies; i++) any |= isfinite(rf->strategies[i].plan.step_seqs_cv);
    if (!any) return;
    fputs("### Does each strategy train the model of LongAlign's Eq. 2?\n\n"
          "Eq. 2 asks that every sequence count the same. Over an epoch that needs Eq. 2's weights inside each step "
          "(every sequence 1/M of its step) and steps of about the same M: under AdamW a sequence moves the model "
          "by about 1/M of its step whatever the normalisation. Yes below means all three: Eq. 2's weights in every "
          "step, the longest 10% within 1 point of their uniform share, and M's coefficient of variation at most "
          "0.15.\n\n",
          f);
    for (int i = 0; i < rf->n_strategies; i++) {
        const RepStrategy *s = &rf->strategies[i];
        const PlanMetrics *p = &s->plan;
        fputs("- **", f);
        md_text(f, s->name);
        if (!isfinite(p->step_seqs_cv)) {
            fputs("**: n/a (no epoch metrics in this file)\n", f);
            continue;
        }
        const int unfair = plan_metrics_unfair(p);
        double off = p->weight_share_longest10 - p->weight_share_longest10_uniform;
        fprintf(f, "**: %s", unfair ? "no" : "yes");
        if (unfair) {
            const char *sep = " (";
            if (unfair & PLAN_UNFAIR_WEIGHTS) {
                fprintf(f, "%sweights inside a step range %s-%s x 1/M, not Eq. 2's 1/M", sep, f_fix(p->weight_min, 2, "").s,
                        f_fix(p->weight_max, 2, "").s);
                sep = "; ";
            }
            if (unfair & PLAN_UNFAIR_SHARE) {
                fprintf(f, "%sthe longest 10%% %s", sep, off > 0 ? "over-weighted" : "under-weighted");
                sep = "; ";
            }
            if (unfair & PLAN_UNFAIR_STEP_M) fprintf(f, "%sM varies from step to step", sep);
            fputs(")", f);
        }
        fprintf(f, ". The longest 10%% carry %s of the weight (uniform: %s, %+.1f points); M per step %s-%s (CV %.2f); "
                   "the 99th-percentile sequence weighs %sx the 1st.\n",
                f_pct(p->weight_share_longest10, 1).s, f_pct(p->weight_share_longest10_uniform, 1).s, 100 * off,
                f_int((long long)p->step_seqs_min).s, f_int((long long)p->step_seqs_max).s, p->step_seqs_cv,
                f_fix(p->weight_epoch_spread, 2, "").s);
    }
    fputs("\n", f);
}

static void md_train_table(FILE *f, const ResultsFile *rf)
{
    double base = naive_tps(rf);
    fputs("| strategy | effective tokens/s | speed-up vs naive | DP bubble | GPU idle | padding | packing efficiency "
          "| peak memory | MFU | loss weight min / max (x M) | longest 10%: weight share (uniform; per-step ideal) "
          "| M per step (CV) | final loss |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
          f);
    for (int i = 0; i < rf->n_strategies; i++) {
        const RepStrategy *s = &rf->strategies[i];
        const PlanMetrics *p = &s->plan;
        fputs("| ", f);
        md_text(f, s->name);
        if (!s->run) {
            fputs(" | not run | | | | | | | | | | | |\n", f);
            continue;
        }
        const RepRun *r = s->run;
        fprintf(f, " | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s |\n", f_count(r->effective_tps).s,
                f_speedup(ratio(r->effective_tps, base)).s, f_pct(r->dp_bubble, 1).s, f_pct(r->gpu_idle, 1).s,
                f_pct(r->padding, 1).s, f_pct(p->packing_efficiency, 1).s, f_fix(r->peak_mib, 1, " MiB").s,
                f_pct(r->mfu, 2).s, f_fix(p->weight_min, 2, "").s, f_fix(p->weight_max, 2, "").s, f_share(p).s,
                f_step_seqs(p).s, f_fix(r->final_loss, 4, "").s);
    }
    fputs("\n", f);
    if (!isfinite(base)) fputs("No naive run in this file, so no speed-ups (run `--strategy all`).\n\n", f);
    fputs(results_dp_real(rf) ? "Effective tokens/s: real (non-pad) tokens / measured DP wall time of the real ranks. DP "
                                "bubble: share of the W ranks' time measured waiting at the sync points."
                              : "Effective tokens/s: real (non-pad) tokens / simulated DP wall time. DP bubble: share of "
                                "the W ranks' time spent waiting for the slowest rank at sync points.",
          f);
    fputs(" GPU idle: gaps between kernels inside a rank "
          "(n/a where the results do not have it). Padding: pad / computed tokens of the steps run. Packing "
          "efficiency, loss weights: from the whole plan. Loss weight: each sequence's effective weight x M "
          "(sequences per optimizer step), 1 for all under LongAlign's Eq. 2. " SHARE_WORDS " Final loss: the last "
          "step's weighted loss, which differs by strategy also because the weighting differs.\n\n",
          f);
}

static void md_plan_table(FILE *f, const ResultsFile *rf)
{
    fputs("| strategy | optimizer steps | micro-batches | padding | packing efficiency | token imbalance | predicted "
          "DP bubble | loss weight min / max (x M) | longest 10%: weight share (uniform; per-step ideal) | M per step "
          "(CV) | planning time |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
          f);
    for (int i = 0; i < rf->n_strategies; i++) {
        const RepStrategy *s = &rf->strategies[i];
        const PlanMetrics *p = &s->plan;
        fputs("| ", f);
        md_text(f, s->name);
        fprintf(f, " | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s |\n", f_int(p->optimizer_steps).s,
                f_int(p->micro_batches).s, f_pct(p->padding_ratio, 1).s, f_pct(p->packing_efficiency, 1).s,
                f_pct(p->token_imbalance, 1).s, f_pct(p->predicted_bubble, 1).s, f_fix(p->weight_min, 2, "").s,
                f_fix(p->weight_max, 2, "").s, f_share(p).s, f_step_seqs(p).s,
                f_fix(1e3 * p->plan_seconds, 3, " ms").s);
    }
    fputs("\nToken imbalance: mean over sync points of the busiest rank's tokens over the mean rank's, minus 1. "
          "Predicted DP bubble: the cost model's (no run behind it). " SHARE_WORDS "\n\n",
          f);
}

static void md_longalign(FILE *f, const ResultsFile *rf)
{
    const RepStrategy *pk = results_find(rf, "packing"), *so = results_find(rf, "sorted");
    double base = naive_tps(rf);
    double up_pack = ratio(pk && pk->run ? pk->run->effective_tps : NAN, base);
    double up_sort = ratio(so && so->run ? so->run->effective_tps : NAN, base);
    fputs("### LongAlign's published speed-ups beside ours\n\n"
          "| | naive (h) | packing (h) | sorted (h) | packing speed-up | sorted speed-up |\n"
          "|---|---:|---:|---:|---:|---:|\n",
          f);
    for (int i = 0; i < N_LONGALIGN_FIG5; i++) {
        const LongAlignHours *h = &LONGALIGN_FIG5[i];
        fprintf(f, "| LongAlign, %s, 8xA800 | %.1f | %.1f | %.1f | %s | %s |\n", h->model, h->naive_h, h->packing_h,
                h->sorted_h, f_speedup(h->naive_h / h->packing_h).s, f_speedup(h->naive_h / h->sorted_h).s);
    }
    fputs("| **ours**, ", f);
    md_text(f, rf->model_preset);
    fputs(", ", f);
    md_text(f, or_unknown(rf->device));
    fprintf(f, " | | | | **%s** | **%s** |\n\n", f_speedup(up_pack).s, f_speedup(up_sort).s);
    char model[160];
    model_words(rf, model, sizeof model);
    fputs("Ours are measured on ", f);
    md_text(f, or_unknown(rf->device));
    fprintf(f,
            ", %s backend, with the %s model, %s, W = %d simulated data-parallel ranks played in turn on that "
            "one device, as effective tokens/s over naive's; theirs are the training hours of full runs on "
            "8xA800 with DeepSpeed ZeRO-3 + CPU offload, as naive's hours over the strategy's. ",
            or_unknown(rf->backend), model, rf->dtype, rf->strategies[0].world_size);
    if (results_is_cpu(rf))
        fprintf(f, "Ours here come from the CPU backend on a tiny model and lengths scaled by x%g: compare the "
                   "ranking, not the size of the speed-ups.",
                rf->len_scale);
    if (!isfinite(up_pack) || !isfinite(up_sort)) fputs(" (n/a: this file lacks naive, packing or sorted.)", f);
    fputs("\n\n", f);
}

static void md_link_path(FILE *f, const PlotEnv *env, const char *stem, int plot, const char *ext)
{
    /* Spaces and parentheses would end a markdown link target. */
    char p[4400];
    spf(p, sizeof p, "%s/%s-%s.%s", env->rel, stem, PLOTS[plot].id, ext);
    for (const char *c = p; *c; c++) {
        if (*c == ' ' || *c == '(' || *c == ')')
            fprintf(f, "%%%02X", (unsigned char)*c);
        else
            fputc(*c, f);
    }
}

static void md_plots(FILE *f, const PlotEnv *env, const char *stem, const PlotOut *po)
{
    fputs("### Plots\n\n", f);
    if (!env->enabled) {
        fprintf(f, "No plots in this report: %s. The tables above hold every number.\n\n", env->why);
        return;
    }
    for (int p = 0; p < N_PLOTS; p++) {
        if (!po[p].wanted) continue;
        if (!po[p].drawn) {
            fprintf(f, "- %s: not drawn: ", PLOTS[p].caption);
            md_text(f, po[p].note);
            fputs("\n\n", f);
            continue;
        }
        fprintf(f, "![%s](", PLOTS[p].caption);
        md_link_path(f, env, stem, p, "png");
        fputs(")\n\n", f);
        fprintf(f, "%s: [SVG](", PLOTS[p].caption);
        md_link_path(f, env, stem, p, "svg");
        fputs("), [data](", f);
        md_link_path(f, env, stem, p, "dat");
        fputs(")", f);
        if (p == P_TIMELINE)
            fputs(". Each panel shows the strategy's step with the median DP wall time; blue boxes are "
                  "micro-batches' compute, red the wait for the slowest rank, grey modelled communication, green "
                  "the optimizer",
                  f);
        fputs(".\n\n", f);
    }
}

/* ---------- CSV ---------- */

static void csv_field(FILE *f, const char *s, int last)
{
    if (strpbrk(s, ",\"\n")) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"') fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
    fputc(last ? '\n' : ',', f);
}

static void csv_num(FILE *f, double v, double scale)
{
    if (isfinite(v))
        fprintf(f, "%.10g,", v * scale);
    else
        fputc(',', f);
}

static void write_csv(FILE *f, ResultsFile *rfs, int n)
{
    fputs("file,kind,backend,device,model,strategy,effective_tokens_per_s,speedup_vs_naive,dp_bubble_pct,"
          "gpu_idle_pct,padding_pct,packing_efficiency_pct,peak_memory_mib,mfu_pct,weight_min,weight_max,"
          "weight_share_longest10_pct,weight_share_longest10_ideal_pct,final_loss,optimizer_steps,micro_batches,"
          "token_imbalance_pct,predicted_bubble_pct,plan_ms,weight_share_longest10_uniform_pct,step_sequences_min,"
          "step_sequences_max,step_sequences_cv,weight_epoch_spread,rank_utilisation_pct,eq2_over_epoch\n",
          f);
    for (int k = 0; k < n; k++) {
        const ResultsFile *rf = &rfs[k];
        double base = naive_tps(rf);
        for (int i = 0; i < rf->n_strategies; i++) {
            const RepStrategy *s = &rf->strategies[i];
            const RepRun *r = s->run;
            const PlanMetrics *p = &s->plan;
            csv_field(f, rf->path, 0);
            csv_field(f, rf->kind, 0);
            csv_field(f, rf->backend ? rf->backend : "", 0);
            csv_field(f, rf->device ? rf->device : "", 0);
            csv_field(f, rf->model_preset ? rf->model_preset : "", 0);
            csv_field(f, s->name, 0);
            csv_num(f, r ? r->effective_tps : NAN, 1);
            csv_num(f, r ? ratio(r->effective_tps, base) : NAN, 1);
            csv_num(f, r ? r->dp_bubble : NAN, 100);
            csv_num(f, r ? r->gpu_idle : NAN, 100);
            csv_num(f, r ? r->padding : p->padding_ratio, 100);
            csv_num(f, p->packing_efficiency, 100);
            csv_num(f, r ? r->peak_mib : NAN, 1);
            csv_num(f, r ? r->mfu : NAN, 100);
            csv_num(f, p->weight_min, 1);
            csv_num(f, p->weight_max, 1);
            csv_num(f, p->weight_share_longest10, 100);
            csv_num(f, p->weight_share_longest10_ideal, 100);
            csv_num(f, r ? r->final_loss : NAN, 1);
            csv_num(f, (double)p->optimizer_steps, 1);
            csv_num(f, (double)p->micro_batches, 1);
            csv_num(f, p->token_imbalance, 100);
            csv_num(f, p->predicted_bubble, 100);
            csv_num(f, p->plan_seconds, 1e3);
            csv_num(f, p->weight_share_longest10_uniform, 100);
            csv_num(f, p->step_seqs_min, 1);
            csv_num(f, p->step_seqs_max, 1);
            csv_num(f, p->step_seqs_cv, 1);
            csv_num(f, p->weight_epoch_spread, 1);
            csv_num(f, p->rank_utilisation, 100);
            fputs(isfinite(p->step_seqs_cv) ? (plan_metrics_fair(p) ? "yes\n" : "no\n") : "\n", f);
        }
    }
}

/* ---------- the report ---------- */

/* File-name stem of each input's plots: its base name without .json, made unique. */
static void make_stem(const ResultsFile *rfs, int k, char *out, size_t n)
{
    char base[256];
    snprintf(base, sizeof base, "%s", base_name(rfs[k].path));
    size_t len = strlen(base);
    if (len > 5 && strcmp(base + len - 5, ".json") == 0) base[len - 5] = 0;
    for (char *c = base; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.')) *c = '_';
    if (!base[0]) snprintf(base, sizeof base, "results");
    int dup = 0;
    for (int i = 0; i < k; i++) dup += strcmp(base_name(rfs[i].path), base_name(rfs[k].path)) == 0;
    if (dup)
        snprintf(out, n, "%s-%d", base, dup + 1);
    else
        snprintf(out, n, "%s", base);
}

int report_generate(const char *const *inputs, int n_inputs, const ReportOptions *opt, char *err, size_t errlen)
{
    if (n_inputs < 1 || !opt->out_path) {
        snprintf(err, errlen, "report: give at least one results file and -o REPORT.md");
        return -1;
    }
    ResultsFile *rfs = calloc((size_t)n_inputs, sizeof *rfs);
    if (!rfs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int status = 0, n_read = 0;
    for (; n_read < n_inputs; n_read++)
        if (results_read(inputs[n_read], &rfs[n_read], err, errlen) != 0) {
            status = -1;
            goto done;
        }

    AtomicFile af;
    if (opt->format == REPORT_CSV) {
        if (atomic_open(&af, opt->out_path, err, errlen) != 0) {
            status = -1;
            goto done;
        }
        write_csv(af.f, rfs, n_inputs);
        if (atomic_commit(&af, err, errlen) != 0) status = -1;
        goto done;
    }

    char report_dir[4096], plots_dir[4096];
    const char *slash = strrchr(opt->out_path, '/');
    if (slash)
        snprintf(report_dir, sizeof report_dir, "%.*s", (int)(slash - opt->out_path + (slash == opt->out_path)),
                 opt->out_path);
    else
        snprintf(report_dir, sizeof report_dir, ".");
    if (make_dirs(report_dir) != 0) {
        snprintf(err, errlen, "%s: cannot create folder %s: %s", opt->out_path, report_dir, strerror(errno));
        status = -1;
        goto done;
    }
    if (opt->plots_dir)
        snprintf(plots_dir, sizeof plots_dir, "%s", opt->plots_dir);
    else
        spf(plots_dir, sizeof plots_dir, "%s/plots", report_dir);
    PlotEnv env;
    plot_env_init(&env, opt, report_dir, plots_dir);

    if (atomic_open(&af, opt->out_path, err, errlen) != 0) {
        status = -1;
        goto done;
    }
    FILE *f = af.f;
    fputs("# labench report\n\n<!-- Written by `labench report` from the results files below; edit those, not "
          "this. -->\n\nResults: ",
          f);
    for (int k = 0; k < n_inputs; k++) {
        fputs(k ? ", " : "", f);
        md_code(f, rfs[k].path);
        fprintf(f, " (%s%s)", rfs[k].kind, results_is_cpu(&rfs[k]) ? ", CPU backend" : "");
    }
    fputs(". Definitions of every metric: DESIGN.md, \"Measurements\".\n\n", f);
    for (int k = 0; k < n_inputs; k++) {
        const ResultsFile *rf = &rfs[k];
        int train = strcmp(rf->kind, "train") == 0;
        char stem[300];
        make_stem(rfs, k, stem, sizeof stem);
        PlotOut po[N_PLOTS];
        draw_all(&env, rf, stem, po);

        fputs("## ", f);
        if (n_inputs > 1) fprintf(f, "%d. ", k + 1);
        md_text(f, base_name(rf->path));
        if (train) {
            fputs(": trained on ", f);
            md_text(f, or_unknown(rf->device));
            fprintf(f, ", %s backend\n\n", or_unknown(rf->backend));
        } else {
            fputs(": plan only (no model, no clock)\n\n", f);
        }
        md_machine(f, rf);
        fputs(train ? "### Strategies\n\n" : "### Plan metrics\n\n", f);
        if (train) {
            md_train_table(f, rf);
            md_dp_real(f, rf);
            md_eq2(f, rf);
            md_longalign(f, rf);
        } else {
            md_plan_table(f, rf);
            md_device_prediction(f, rf);
            md_eq2(f, rf);
        }
        md_plots(f, &env, stem, po);
    }
    if (atomic_commit(&af, err, errlen) != 0) status = -1;
done:
    for (int k = 0; k < n_read; k++) results_file_free(&rfs[k]);
    free(rfs);
    return status;
}
