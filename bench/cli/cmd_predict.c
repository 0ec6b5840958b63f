/* `labench predict RESULTS.json`: fit a measured run, then predict other world sizes and length
 * distributions (bench/analysis/predict.c), printing and writing bench/results/predictions.c's
 * tables and JSON. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli/cli.h"
#include "bench/input/hist.h"
#include "bench/input/sample.h"
#include "bench/results/measured.h"
#include "bench/results/predictions.h"
#include "common/error.h"


typedef struct {
    const char *from, *len_dist, *lengths, *out;
    long long samples, max_tokens, seed;
    double len_scale;
    int world_sizes[CLI_MAX_WORLD_SIZES], n_world;
    int holdout, pooled;
    CommOptions comm;
} PredictOptions;

static void usage(FILE *f)
{
    fputs("usage: labench predict RESULTS.json [options]   (or --from RESULTS.json)\n"
          "\n"
          "Fits each strategy's measured time per micro-batch to the batch's shape,\n"
          "  t = a x computed tokens + b x sum of segment len^2 + c x segments + d   (a..d >= 0),\n"
          "holding back every K-th micro-batch to report the fit's error, then plans other cluster\n"
          "sizes and length distributions with the same strategies and configs, times every\n"
          "micro-batch with the fit, and prints the DP wall, bubble, effective tokens/s and\n"
          "speed-up over naive: compute only and with the communication model, side by side.\n"
          "\n"
          "  labench predict results/latest.json\n"
          "  labench predict gpu.json --world-size 8,64,512 --comm zero3-offload --system a800\n"
          "\n"
          "  RESULTS.json, --from FILE   results JSON of `labench train` (required)\n"
          "  --len-dist FILE     predict another .hist distribution (default: the run's)\n"
          "  --lengths FILE      or a plain lengths list\n"
          "  --samples N         samples to draw (default: the run's count)\n"
          "  --len-scale F       length scale (default: the run's); L scales along unless --max-tokens\n"
          "  --max-tokens L      pack length and truncation for every strategy\n"
          "  --seed S            sampler and planner seed (default: the run's)\n"
          "  --world-size LIST   comma-separated data-parallel sizes (default 8,64,512)\n"
          "  --holdout K         hold back every K-th micro-batch for the error (default 5; 0: none)\n"
          "  --fit per-strategy|pooled   one fit per strategy (default) or one over all of them\n"
          "  --out FILE          predictions JSON (default results/predict.json)\n"
          "  --device D          a100 | a800 | h100 | h200: the device model instead, with or without a\n"
          "                      run (labench predict --device a800 --help; docs/device-model.md)\n"
          "\n",
          f);
    fputs(COMM_USAGE, f);
    fputs("  (predict's default: --comm zero3-offload --system " COMM_DEFAULT_SYSTEM
          ", LongAlign's setup)\n"
          "Every option with a value takes it as `--opt VALUE` or `--opt=VALUE`.\n",
          f);
}

enum { P_FROM = 256, P_LEN_DIST, P_LENGTHS, P_SAMPLES, P_LEN_SCALE, P_MAXTOK, P_SEED, P_WORLD, P_HOLDOUT, P_FIT,
       P_OUT, P_HELP, P_COMM_FIRST };

static void parse_options(int argc, char **argv, PredictOptions *o)
{
    memset(o, 0, sizeof *o);
    o->samples = -1;
    o->max_tokens = -1;
    o->seed = -1;
    o->len_scale = -1;
    o->holdout = 5;
    const int default_sizes[] = {8, 64, 512};
    for (int i = 0; i < 3; i++) o->world_sizes[i] = default_sizes[i];
    o->n_world = 3;
    comm_options_init(&o->comm);
    o->comm.comm = "zero3-offload";

    struct option longopts[32] = {
        {"from", required_argument, 0, P_FROM}, {"len-dist", required_argument, 0, P_LEN_DIST},
        {"lengths", required_argument, 0, P_LENGTHS}, {"samples", required_argument, 0, P_SAMPLES},
        {"len-scale", required_argument, 0, P_LEN_SCALE}, {"max-tokens", required_argument, 0, P_MAXTOK},
        {"seed", required_argument, 0, P_SEED}, {"world-size", required_argument, 0, P_WORLD},
        {"holdout", required_argument, 0, P_HOLDOUT}, {"fit", required_argument, 0, P_FIT},
        {"out", required_argument, 0, P_OUT}, {"help", no_argument, 0, P_HELP}};
    int n_opts = 12, n_comm = 0;
    for (; COMM_OPTION_NAMES[n_comm]; n_comm++)
        longopts[n_opts++] = (struct option){COMM_OPTION_NAMES[n_comm], required_argument, 0, P_COMM_FIRST + n_comm};
    longopts[n_opts] = (struct option){0, 0, 0, 0};

    opterr = 0;
    optind = 1;
    int c;
    char err[256];
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case P_FROM: o->from = optarg; break;
        case P_LEN_DIST: o->len_dist = optarg; break;
        case P_LENGTHS: o->lengths = optarg; break;
        case P_SAMPLES: o->samples = cli_int("samples", optarg, 1, SAMPLE_MAX_COUNT); break;
        case P_LEN_SCALE: o->len_scale = cli_real("len-scale", optarg, 1e-6, 1e6); break;
        case P_MAXTOK: o->max_tokens = cli_int("max-tokens", optarg, 1, 1 << 30); break;
        case P_SEED: o->seed = cli_int("seed", optarg, 0, INT64_MAX); break;
        case P_WORLD: o->n_world = cli_world_sizes(optarg, 1 << 20, o->world_sizes); break;
        case P_HOLDOUT:
            o->holdout = (int)cli_int("holdout", optarg, 0, 1000000);
            if (o->holdout == 1) die_input("--holdout 1 would hold back every micro-batch: give 0 or K >= 2");
            break;
        case P_FIT:
            if (strcmp(optarg, "per-strategy") == 0)
                o->pooled = 0;
            else if (strcmp(optarg, "pooled") == 0)
                o->pooled = 1;
            else
                die_input("--fit must be per-strategy or pooled (got '%s')", QUOTE(optarg));
            break;
        case P_OUT: o->out = optarg; break;
        case 'h':
        case P_HELP: usage(stdout); exit(0);
        default:
            if (c >= P_COMM_FIRST && c < P_COMM_FIRST + n_comm) {
                if (comm_option(&o->comm, COMM_OPTION_NAMES[c - P_COMM_FIRST], optarg, err, sizeof err) < 0)
                    die_input("%s", err);
                break;
            }
            /* getopt_long sets optopt to the option's code when its value is missing, 0 when
             * the option is unknown. */
            if (optopt != 0) die_input("%s needs a value (see labench predict --help)", argv[optind - 1]);
            die_input("unknown option '%s' (see labench predict --help)", argv[optind - 1]);
        }
    }
    /* The results file as an argument, like report and compare take theirs; --from still works. */
    if (optind < argc) {
        if (o->from)
            die_input("predict: give the results file once, as an argument or with --from (got '%s' and '%s')",
                      o->from, argv[optind]);
        o->from = argv[optind++];
    }
    if (optind < argc) die_input("unexpected argument '%s' (see labench predict --help)", argv[optind]);
    if (!o->from) die_input("predict needs a results file: labench predict RESULTS.json (or --from RESULTS.json), the output "
                          "of `labench train`");
    if (o->len_dist && o->lengths) die_input("give --len-dist or --lengths, not both");
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Notes on what limits the fit, printed after the tables. */
static void print_fit_notes(const Measured *src, int pooled)
{
    for (int i = 0; i < src->n && !pooled; i++) {
        const MeasuredStrategy *s = &src->strats[i];
        if (!s->fitted) continue;
        int64_t lo = INT64_MAX, hi = 0;
        size_t n = (size_t)s->n_steps * s->cfg.grad_accum * s->cfg.world_size;
        for (size_t j = 0; j < n; j++) {
            if (s->shapes[j].rows <= 0) continue;
            if (s->shapes[j].computed_tokens < lo) lo = s->shapes[j].computed_tokens;
            if (s->shapes[j].computed_tokens > hi) hi = s->shapes[j].computed_tokens;
        }
        if (hi > 0 && (double)(hi - lo) < 0.05 * (double)hi)
            printf("note: %s: every measured micro-batch computes about %lld tokens, so its per-token cost cannot be\n"
                   "      told from its fixed cost; predictions for other lengths extrapolate (try --fit pooled)\n",
                   s->name, (long long)hi);
    }
}

int cmd_predict(int argc, char **argv, const char *command_line)
{
    if (predict_wants_device(argc, argv)) return cmd_predict_device(argc, argv, command_line);
    PredictOptions o;
    parse_options(argc, argv, &o);
    char err[1024];
    CommConfig comm;
    if (comm_config_resolve(&o.comm, &comm, err, sizeof err) != 0) die_input("%s", err);

    Measured src;
    if (measured_load(o.from, &src, err, sizeof err) != 0) die_input("%s", err);
    if (measured_fit(&src, o.holdout, o.pooled, err, sizeof err) != 0) die_input("%s", err);
    for (int i = 0; i < src.n; i++)
        if (!src.strats[i].fitted)
            fprintf(stderr, "labench: %s: %s: not fitted: %s\n", src.path, src.strats[i].name, src.strats[i].not_fitted);

    /* The distribution to predict: the run's unless told otherwise. */
    const char *dist = o.lengths ? o.lengths : o.len_dist ? o.len_dist : src.len_dist;
    int as_lengths = o.lengths != NULL || (!o.len_dist && dist[0] && !ends_with(dist, ".hist"));
    if (!dist[0]) die_input("%s: config.len_dist is empty: give --len-dist", o.from);
    double len_scale = o.len_scale > 0 ? o.len_scale : src.len_scale;
    int64_t n_samples = o.samples > 0 ? o.samples : src.samples;
    uint64_t seed = o.seed >= 0 ? (uint64_t)o.seed : src.seed;
    Hist h;
    int rc = as_lengths ? hist_load_lengths(dist, &h, err, sizeof err) : hist_load(dist, &h, err, sizeof err);
    if (rc != 0) {
        if (!o.len_dist && !o.lengths) die_input("%s (the run's distribution; give --len-dist)", err);
        die_input("%s", err);
    }
    Sample *samples;
    int64_t n_drawn;
    if (sample_draw(&h, n_samples, len_scale, seed, &samples, &n_drawn, err, sizeof err) != 0) {
        hist_free(&h);
        die_input("%s", err);
    }
    hist_free(&h);

    printf("labench predict: fit on %s (%s, model %s, %d layers, %.4g parameters)\n", o.from, src.device,
           src.model.name, src.model.layers, src.n_params);
    printf("predicting %lld samples of %s (x%.4g), seed %llu\n", (long long)n_drawn, dist, len_scale,
           (unsigned long long)seed);
    char desc[1024];
    printf("communication: %s\n", comm_describe(&comm, desc, sizeof desc));
    predictions_print_fits(stdout, &src, o.holdout, o.pooled);

    json_t *preds_json = json_array();
    Prediction *preds = calloc((size_t)src.n, sizeof *preds);
    if (!preds) die_input("out of memory");
    Fig5Prediction fig5_pred = {0, {NAN, NAN}, {NAN, NAN}};
    int few_steps = 0;
    for (int wi = 0; wi < o.n_world; wi++) {
        const int W = o.world_sizes[wi];
        CommCost cc;
        comm_cost_params(&comm, src.n_params, W, &cc);
        int n = 0;
        for (int i = 0; i < src.n; i++) {
            const MeasuredStrategy *s = &src.strats[i];
            if (!s->fitted) continue;
            Prediction *p = &preds[n];
            memset(p, 0, sizeof *p);
            p->src = s;
            p->cfg = s->cfg;
            p->cfg.world_size = W;
            p->cfg.seed = seed;
            if (o.max_tokens > 0)
                p->cfg.max_tokens = (int)o.max_tokens;
            else if (len_scale != src.len_scale)
                p->cfg.max_tokens = (int)fmax(1.0, fmin((double)(1 << 30), llround(s->cfg.max_tokens * len_scale / src.len_scale)));
            if (plan_config_check(&p->cfg, err, sizeof err) != 0) die_input("%s at --world-size %d: %s", s->name, W, err);
            Plan plan;
            if (plan_make(s->strategy, &p->cfg, samples, n_drawn, &plan, err, sizeof err) != 0)
                die_input("%s at W=%d: %s", s->name, W, err);
            if (predict_plan(&plan, &s->fit, s->optimizer_s, &cc, &p->dp) != 0) die_input("out of memory");
            plan_free(&plan);
            p->extrapolated = (double)p->dp.max_mb_tokens > 1.5 * (double)s->fit.max_tokens ||
                              p->dp.max_mb_sum_sq > 1.5 * s->fit.max_sum_sq;
            if (p->dp.steps < 3) few_steps = 1;
            n++;
        }
        predictions_print_world(stdout, W, &cc, &comm, preds, n);
        json_array_append_new(preds_json, predictions_world_json(W, &comm, &cc, preds, n));
        /* Beside LongAlign's 8 GPUs: the W = 8 prediction, else the first size given. */
        if (wi == 0 || W == 8) {
            fig5_pred.world_size = W;
            for (int c = 0; c <= 1; c++) {
                fig5_pred.packing[c] = prediction_speedup(preds, n, "packing", c);
                fig5_pred.sorted[c] = prediction_speedup(preds, n, "sorted", c);
            }
        }
    }
    printf("\nwall s: predicted DP wall time (sum over sync points of the slowest rank, plus the measured median\n"
           "optimizer step per step); bub %%: ranks' idle share; eff tok/s: real tokens / wall; x naive: effective\n"
           "tokens/s over naive's. with comm: plus the modelled communication (under zero3-offload the optimizer\n"
           "runs on the CPU: CPU Adam replaces the GPU optimizer step). *: beyond 1.5x the largest measured\n"
           "micro-batch (extrapolated).\n");
    predictions_print_fig5(stdout, &fig5_pred);
    print_fit_notes(&src, o.pooled);
    if (few_steps)
        printf("note: some predictions have fewer than 3 optimizer steps: raise --samples for a steadier estimate\n");

    /* The JSON. */
    const char *out = o.out ? o.out : "results/predict.json";
    PredictionsDoc doc = {command_line, o.from, &src, dist, n_drawn, len_scale, seed, o.pooled, o.holdout, &comm,
                          preds_json, &fig5_pred};
    int status = 0;
    if (predictions_write(out, &doc, err, sizeof err) != 0) {
        fprintf(stderr, "labench: %s\n", err);
        status = EXIT_BAD_INPUT;
    } else {
        printf("\npredictions: %s\n", out);
    }
    json_decref(preds_json);
    free(preds);
    free(samples);
    measured_free(&src);
    return status;
}
