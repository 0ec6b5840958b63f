/* `labench predict --device NAME [RESULTS.json]`: the device model's prediction of
 * other world sizes and distributions, without a measured run; with one (a `labench train`
 * results file), the device model beside the measured micro-batches, and the run's fitted
 * per-micro-batch time in place of the device model's compute. docs/device-model.md. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/analysis/device_model.h"
#include "bench/analysis/predict.h"
#include "bench/cli/cli.h"
#include "bench/input/hist.h"
#include "bench/input/sample.h"
#include "bench/results/measured.h"
#include "common/error.h"
#include "common/host.h"
#include "common/json_out.h"
#include "model/hf_config.h"

static void usage(FILE *f)
{
    fputs("usage: labench predict --device D [RESULTS.json] [options]\n"
          "\n"
          "Plans every strategy for each world size and predicts its run on D from the model's shape\n"
          "(the device model): wall time of the plan, effective tokens/s, MFU, DP bubble, communication.\n"
          "With a measured `labench train` results file, it first sets the device model beside the\n"
          "run's measured micro-batches (how far off it is), then predicts with the run's fitted time\n"
          "per micro-batch beside the device model's (the fit replaces the device model's compute).\n"
          "\n"
          "  labench predict --device h100 --model 7b --world-size 8,64,512\n"
          "  labench predict --device a800 results/gpu.json\n"
          "\n"
          "  --len-dist FILE | --lengths FILE   distribution (default data/longalign-mix.hist, or the run's)\n"
          "  --samples N, --len-scale F, --seed S, --max-tokens L, --epochs E (default 1)\n"
          "  --strategy LIST     strategies (default naive,sorted,packing)\n"
          "  --world-size LIST   comma-separated data-parallel sizes (default 8,64,512)\n"
          "  --out FILE          predictions JSON (default results/predict-device.json)\n"
          "\n",
          f);
    fputs(DM_USAGE, f);
    fputs("\n", f);
    fputs(COMM_USAGE, f);
    fputs("  (default --comm zero3-offload, the device's --system)\n", f);
}

/* 1 when the arguments ask for the device path (main.c dispatches on it). */
int predict_wants_device(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--device") == 0 || strncmp(argv[i], "--device=", 9) == 0) return 1;
    return 0;
}

typedef struct {
    const char *results, *device, *model, *len_dist, *lengths, *strategy, *out, *dm_value[DM_N_PARAMS];
    long long samples, seed, max_tokens, epochs;
    double len_scale;
    int world[CLI_MAX_WORLD_SIZES], n_world, pack_full, no_recompute, len_scale_set, seed_set;
    CommOptions comm;
} Opts;

enum { Q_DEVICE = 256, Q_MODEL, Q_LEN_DIST, Q_LENGTHS, Q_SAMPLES, Q_LEN_SCALE, Q_SEED, Q_MAXTOK, Q_EPOCHS,
       Q_STRATEGY, Q_WORLD, Q_OUT, Q_PACK, Q_NO_RECOMPUTE, Q_HELP, Q_DEVOPT, Q_COMM };

static void parse(int argc, char **argv, Opts *o)
{
    struct option lo[64] = {
        {"device", required_argument, 0, Q_DEVICE}, {"model", required_argument, 0, Q_MODEL},
        {"len-dist", required_argument, 0, Q_LEN_DIST}, {"lengths", required_argument, 0, Q_LENGTHS},
        {"samples", required_argument, 0, Q_SAMPLES}, {"len-scale", required_argument, 0, Q_LEN_SCALE},
        {"seed", required_argument, 0, Q_SEED}, {"max-tokens", required_argument, 0, Q_MAXTOK},
        {"epochs", required_argument, 0, Q_EPOCHS}, {"strategy", required_argument, 0, Q_STRATEGY},
        {"world-size", required_argument, 0, Q_WORLD}, {"out", required_argument, 0, Q_OUT},
        {"pack-compute", required_argument, 0, Q_PACK}, {"no-recompute", no_argument, 0, Q_NO_RECOMPUTE},
        {"help", no_argument, 0, Q_HELP}};
    int n = 15;
    for (int i = 0; DM_PARAM_OPTIONS[i]; i++) lo[n++] = (struct option){DM_PARAM_OPTIONS[i], required_argument, 0, Q_DEVOPT};
    for (int i = 0; COMM_OPTION_NAMES[i]; i++) lo[n++] = (struct option){COMM_OPTION_NAMES[i], required_argument, 0, Q_COMM};
    lo[n] = (struct option){0, 0, 0, 0};
    opterr = 0;
    optind = 1;
    int c, li = -1;
    char err[256];
    while ((c = getopt_long(argc, argv, "h", lo, &li)) != -1) {
        switch (c) {
        case Q_DEVICE: o->device = optarg; break;
        case Q_MODEL: o->model = optarg; break;
        case Q_LEN_DIST: o->len_dist = optarg; break;
        case Q_LENGTHS: o->lengths = optarg; break;
        case Q_SAMPLES: o->samples = cli_int("samples", optarg, 1, SAMPLE_MAX_COUNT); break;
        case Q_LEN_SCALE:
            o->len_scale = cli_real("len-scale", optarg, 1e-6, 1e6);
            o->len_scale_set = 1;
            break;
        case Q_SEED:
            o->seed = cli_int("seed", optarg, 0, INT64_MAX);
            o->seed_set = 1;
            break;
        case Q_MAXTOK: o->max_tokens = cli_int("max-tokens", optarg, 1, PLAN_MAX_TOKENS); break;
        case Q_EPOCHS: o->epochs = cli_int("epochs", optarg, 1, PLAN_MAX_EPOCHS); break;
        case Q_STRATEGY: o->strategy = optarg; break;
        case Q_WORLD: o->n_world = cli_world_sizes(optarg, PLAN_MAX_WORLD_SIZE, o->world); break;
        case Q_OUT: o->out = optarg; break;
        case Q_PACK:
            if (strcmp(optarg, "real") && strcmp(optarg, "full"))
                die_input("--pack-compute must be real or full (got '%s')", QUOTE(optarg));
            o->pack_full = strcmp(optarg, "full") == 0;
            break;
        case Q_NO_RECOMPUTE: o->no_recompute = 1; break;
        case Q_DEVOPT:
            for (int k = 0; k < DM_N_PARAMS; k++)
                if (strcmp(lo[li].name, DM_PARAM_OPTIONS[k]) == 0) o->dm_value[k] = optarg;
            break;
        case Q_COMM:
            if (comm_option(&o->comm, lo[li].name, optarg, err, sizeof err) < 0) die_input("%s", err);
            break;
        case 'h':
        case Q_HELP: usage(stdout); exit(0);
        default: die_input("unknown option or missing value '%s' (see labench predict --device a800 --help)",
                           argv[optind - 1]);
        }
    }
    if (optind < argc) o->results = argv[optind++];
    if (optind < argc) die_input("unexpected argument '%s' (see labench predict --device a800 --help)", argv[optind]);
    if (o->len_dist && o->lengths) die_input("give --len-dist or --lengths, not both");
}

/* The device model beside a measured run, per strategy: the sum over busy micro-batches. */
static json_t *measured_vs_device(const Measured *src, const DeviceModel *d, const ModelConfig *m)
{
    json_t *arr = json_array();
    printf("\nDevice model (%s) beside the measured micro-batches of %s (%s, model %s, %d layers):\n", d->device,
           src->path, src->device, m->name, m->layers);
    printf("%-17s %10s %13s %13s %14s\n", "strategy", "busy mbs", "measured s", "device s", "device/meas.");
    for (int i = 0; i < src->n; i++) {
        const MeasuredStrategy *s = &src->strats[i];
        const int64_t n = (int64_t)s->n_steps * s->cfg.grad_accum * s->cfg.world_size;
        double meas = 0, dev = 0;
        long long busy = 0;
        for (int64_t k = 0; k < n; k++) {
            const MbRow *b = &s->shapes[k];
            if (b->rows == 0) continue;   /* measured_load has refused a busy row without a time */
            busy++;
            meas += s->secs[k];
            dev += dm_shape_seconds(d, m, (double)b->computed_tokens, b->sum_seq_len_sq);
        }
        printf("%-17s %10lld %13.4g %13.4g %13.3fx\n", s->name, busy, meas, dev, meas > 0 ? dev / meas : NAN);
        json_array_append_new(arr, json_pack("{s:s, s:I, s:o, s:o, s:o}", "strategy", s->name, "busy_micro_batches",
                                             (json_int_t)busy, "measured_seconds", json_real_or_null(meas),
                                             "device_model_seconds", json_real_or_null(dev), "device_over_measured",
                                             json_real_or_null(meas > 0 ? dev / meas : NAN)));
    }
    printf("(device/measured < 1: the device model is faster than the run; a CPU run is no GPU: give the\n"
           " device model the CPU's figures, e.g. --peak-tflops and --hbm-gbps, to compare like with like)\n");
    return arr;
}

int cmd_predict_device(int argc, char **argv, const char *command_line)
{
    Opts o;
    memset(&o, 0, sizeof o);
    o.len_scale = 1;
    o.seed = 1;
    o.world[0] = 8, o.world[1] = 64, o.world[2] = 512, o.n_world = 3;
    comm_options_init(&o.comm);
    parse(argc, argv, &o);
    char err[1024];
    DeviceModel d;
    if (dm_device_defaults(o.device, &d) != 0)
        die_input("--device must be a100, a800, h100 or h200 (got '%s')", QUOTE(o.device));
    d.recompute = !o.no_recompute;
    d.pack_compute = o.pack_full ? DM_PACK_FULL : DM_PACK_REAL;
    for (int k = 0; k < DM_N_PARAMS; k++)
        if (o.dm_value[k] && dm_set_option(&d, DM_PARAM_OPTIONS[k], o.dm_value[k], err, sizeof err) < 0)
            die_input("%s", err);
    if (!o.comm.comm) o.comm.comm = "zero3-offload";
    if (!o.comm.system) o.comm.system = dm_comm_system(o.device);
    CommConfig comm;
    if (comm_config_resolve(&o.comm, &comm, err, sizeof err) != 0) die_input("%s", err);

    /* With a measured run: its model, its distribution by default, and its fit. */
    ModelConfig m;
    Measured src;   /* read once: its micro-batches beside the device model, and its pooled fit */
    memset(&src, 0, sizeof src);
    TimeFit fit;
    int have_run = 0;
    json_t *vs = NULL;
    if (o.results) {
        if (measured_load(o.results, &src, err, sizeof err) != 0) die_input("%s", err);
        /* the planners' --cost-from fit (measured_cost_model's): pooled, every 5th held back */
        if (measured_fit(&src, 5, 1, err, sizeof err) != 0) die_input("%s", err);
        fit = src.strats[0].fit;
        m = src.model;
        have_run = 1;
        if (o.model && model_resolve(o.model, &m, err, sizeof err) != 0) die_input("%s", err);
        vs = measured_vs_device(&src, &d, &m);
        /* the run's distribution, scale, count and seed unless told otherwise */
        if (!o.len_dist && !o.lengths) o.len_dist = src.len_dist;
        if (!o.len_scale_set) o.len_scale = src.len_scale;
        if (!o.samples) o.samples = src.samples;
        if (!o.seed_set) o.seed = (long long)src.seed;
    } else if (model_resolve(o.model ? o.model : "7b", &m, err, sizeof err) != 0) {
        die_input("%s", err);
    }

    const char *path = o.lengths ? o.lengths : o.len_dist ? o.len_dist : "data/longalign-mix.hist";
    Hist h;
    if ((o.lengths ? hist_load_lengths(path, &h, err, sizeof err) : hist_load(path, &h, err, sizeof err)) != 0)
        die_input("%s", err);
    Sample *samples;
    int64_t n_samples;
    int rc = sample_draw(&h, o.samples, o.len_scale, (uint64_t)o.seed, &samples, &n_samples, err, sizeof err);
    hist_free(&h);
    if (rc != 0) die_input("%s", err);

    const Strategy **chosen = calloc((size_t)N_STRATEGIES, sizeof *chosen);
    if (!chosen) die_input("out of memory");
    int n_strat = select_strategies(o.strategy ? o.strategy : "naive,sorted,packing", chosen);
    printf("\nlabench predict --device %s: model %s (%zu parameters), %lld samples of %s (x%.4g); predictions, not "
           "measurements\n",
           d.device, m.name, model_param_count(&m), (long long)n_samples, path, o.len_scale);
    json_t *preds = json_array();
    for (int wi = 0; wi < o.n_world; wi++) {
        const int W = o.world[wi];
        printf("\nW = %d  (%s)\n%-17s %10s %12s %7s %9s %8s", W, comm_kind_name(comm.kind), "strategy", "wall h",
               "eff tok/s", "MFU %", "DP bub %", "comm %");
        if (have_run) printf(" %12s %10s", "fit wall h", "fit/dev");
        printf("\n");
        json_t *arr = json_array();
        for (int i = 0; i < n_strat; i++) {
            PlanConfig cfg = plan_config_default(chosen[i]);
            cfg.world_size = W;
            cfg.seed = (uint64_t)o.seed;
            if (o.epochs) cfg.epochs = (int)o.epochs;
            cfg.max_tokens = o.max_tokens ? (int)o.max_tokens : (int)fmax(1.0, llround(cfg.max_tokens * o.len_scale));
            if (plan_config_check(&cfg, err, sizeof err) != 0) die_input("%s", err);
            Plan plan;
            if (plan_make(chosen[i], &cfg, samples, n_samples, &plan, err, sizeof err) != 0) die_input("%s", err);
            DmPlanPrediction pr;
            dm_predict_plan(&d, &m, &comm, &plan, &pr);
            json_t *pj = dm_prediction_to_json(&d, &m, &comm, &pr);
            printf("%-17s %10.2f %12.0f %7.2f %9.2f %8.2f", chosen[i]->name, pr.wall_seconds / 3600, pr.tokens_per_s,
                   100 * pr.mfu, 100 * pr.bubble_fraction, 100 * pr.comm_share);
            if (have_run) {
                DpPrediction dp;
                if (predict_plan(&plan, &fit, 0, &pr.comm, &dp) != 0) die_input("out of memory");
                printf(" %12.4g %9.3fx", dp.comm_wall_s / 3600, dp.comm_wall_s / pr.wall_seconds);
                json_object_set_new(pj, "fit_wall_seconds", json_real_or_null(dp.comm_wall_s));
            }
            printf("\n");
            plan_free(&plan);
            json_object_set_new(pj, "strategy", json_string(chosen[i]->name));
            json_array_append_new(arr, pj);
        }
        json_array_append_new(preds, json_pack("{s:i, s:o}", "world_size", W, "strategies", arr));
    }
    if (have_run)
        printf("\nfit wall h: the measured run's fitted time per micro-batch (pooled, labench predict) with the same\n"
               "communication, no optimizer time; fit/dev: that over the device model's wall.\n");
    free(samples);
    free(chosen);

    const char *out = o.out ? o.out : "results/predict-device.json";
    char now[64], commit[160];
    utc_now_iso(now, sizeof now);
    source_commit(commit, sizeof commit);
    json_t *root = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s}", "schema", "labench-predict-device",
                             "schema_version", 1, "created", now, "commit", commit, "command", command_line, "device",
                             d.device, "model", m.name, "len_dist", path);
    if (vs) json_object_set_new(root, "measured_vs_device", vs);
    if (o.results) json_object_set_new(root, "from", json_string(o.results));
    json_object_set_new(root, "predictions", preds);
    measured_free(&src);
    int status = 0;
    if (json_write_atomic(out, root, "the predictions", err, sizeof err) != 0) {
        fprintf(stderr, "labench: %s\n", err);
        status = EXIT_BAD_INPUT;
    } else {
        printf("\npredictions: %s\n", out);
    }
    json_decref(root);
    return status;
}
