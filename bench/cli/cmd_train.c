/* `labench [train]` and `labench plan`: sample a length distribution, plan it with each
 * strategy, and (train) execute every plan on a backend's real training step. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/cli/cli.h"
#include "bench/comm/comm_model.h"
#include "bench/run/dp.h"
#include "bench/input/task.h"
#include "bench/run/val_loss.h"
#include "bench/input/hist.h"
#include "bench/analysis/plan_budget.h"
#include "bench/analysis/plan_metrics.h"
#include "common/progress.h"
#include "bench/analysis/predict.h"
#include "bench/results/results.h"
#include "bench/run/run.h"
#include "bench/input/sample.h"
#include "common/util.h"
#include "kernels/backend.h"
#include "model/config.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "profile/cupti.h"
#include "bench/comm/nccl.h"
#include "profile/nvtx.h"
#include "profile/trace.h"

#define DEFAULT_LEN_DIST "data/longalign-mix.hist"
/* 1/8: 64k-token packs become 8192 tokens, the longest that runs every strategy in about the
 * 2.5 minutes the old 1/16 default took on two cores (README, "The CPU default, honestly"). */
#define CPU_DEFAULT_LEN_SCALE (1.0 / 8.0)
#define CPU_DEFAULT_STEPS 8
#define GPU_DEFAULT_STEPS 10

typedef struct {
    int train;                    /* 0: plan only */
    const char *strategy;
    const char *len_dist, *lengths;
    long long samples;
    double len_scale;
    int len_scale_set;
    long long world_size, micro_batch, grad_accum, max_tokens, epochs, seed;
    int sync;                     /* -1 unset */
    const char *out;
    long long steps, layers;
    const char *backend, *model, *dtype, *save_model, *load_model;
    int recompute, progress;
    double lr, weight_decay, clip;
    const char *trace;            /* Chrome trace path, NULL: none */
    ProfLevel profile;
    CommOptions comm;             /* --comm, --system, bandwidths (bench/comm/comm_model.h) */
    int measure_pcie;             /* --measure-pcie: replace the PCIe default by a measurement */
    const char *task;             /* --task (default TASK_DEFAULT) */
    long long val_samples;        /* --val-samples, -1: val_default_count */
    long long val_every;          /* --val-every, 0: after the last step only */
    long long sequences;          /* --sequences, 0: --steps decides */
    DpMode dp;                    /* --dp simulated (default) | real */
    double dp_timeout;            /* --dp-timeout seconds */
    int dp_check, dp_share_gpus;  /* --dp-check, --dp-share-gpus */
    const char *cost_from;        /* --cost-from: the planners' cost model fitted to a measured run */
    const char *attention;        /* --attention auto | cudnn | wmma (issue 21); NULL: the backend's default */
} Options;

static void usage_common(FILE *f)
{
    fputs("Input (a length distribution; see docs/hist-format.md):\n"
          "  --len-dist FILE     .hist length distribution (default " DEFAULT_LEN_DIST ")\n"
          "  --lengths FILE      a plain list instead: `LEN` or `LEN TARGET` per line\n"
          "  --samples N         draw N samples (seeded); default: the histogram's own count\n"
          "  --len-scale F       multiply every length by F (e.g. 1/16 to study 64k data on a CPU)\n"
          "  --seed S            seed of the sampler, the planners, the model and the data (default 1)\n"
          "  --progress / --no-progress   progress on stderr of drawing, planning, training (default:\n"
          "                      when a terminal; shown for phases over 2 s)\n"
          "\n"
          "Strategies (LongAlign, arXiv 2401.18058, and three of ours):\n"
          "  --strategy S        naive | sorted | packing | packing-lw | packing-bfd |\n"
          "                      packing-balanced | packing-fair | all (default), or a comma-separated list\n"
          "  --world-size W      simulated data-parallel ranks (default 8)\n"
          "  --micro-batch B     sequences per rank per micro-step, naive/sorted (default 1)\n"
          "  --grad-accum A      micro-steps per optimizer step (default 12 naive/sorted, 1 packing)\n"
          "  --max-tokens L      tokens per pack and truncation length (default 65536 x len-scale)\n"
          "  --sync micro|step   sync every micro-step (ZeRO-3, default) or every step (DDP)\n"
          "  --epochs E          passes over the samples (default 1)\n"
          "  --cost-from FILE    plan with the cost model fitted to a measured run (a `labench train`\n"
          "                      results file; `labench predict`'s fit, pooled); default: tokens +\n"
          "                      attention's len^2 from the layer shape (the trained model's; 7b for plan)\n"
          "  --out FILE          results JSON (schema in README.md)\n",
          f);
}

static void usage(FILE *f, int train)
{
    if (train) {
        fputs("usage: labench [train] [options]\n"
              "\n"
              "Trains a real Llama-style transformer on each strategy's batches and measures what\n"
              "each costs: effective tokens/s (real tokens / simulated data-parallel wall time),\n"
              "the DP bubble (ranks waiting for the slowest at each sync point), padding, memory,\n"
              "MFU, and the loss. One device plays all W ranks in turn; each rank's compute is\n"
              "measured, the waiting is derived (DESIGN.md, \"Measurements\").\n"
              "\n"
              "  labench --strategy all --len-dist data/longalign-mix.hist\n"
              "  labench --strategy sorted --len-dist my.hist --backend cuda --model 7b --layers 2\n"
              "\n",
              f);
    } else {
        fputs("usage: labench plan [options]\n"
              "\n"
              "Plans each strategy's batches without a model and prints what they would cost:\n"
              "steps, micro-batches, padding, packing efficiency, token imbalance across ranks,\n"
              "the cost model's predicted DP bubble, and the loss-weight bias per sequence.\n"
              "\n"
              "  labench plan --strategy all --len-dist data/longalign-mix.hist\n"
              "\n",
              f);
    }
    usage_common(f);
    if (!train) return;
    fputs("\n"
          "Training:\n"
          "  --backend B         cpu | cuda | auto (default auto: CUDA when a GPU is usable)\n"
          "  --model P           tiny | small | 1b | 7b (default tiny on CPU, small on GPU)\n"
          "  --layers N          run N layers of the preset (per-layer cost is what strategies change)\n"
          "  --dtype D           bf16 | fp32 on CUDA (default bf16); the CPU backend is fp32, or fp64\n"
          "                      (--dtype fp64: the CPU backend in double, for equivalence checks)\n"
          "  --attention A       auto | cudnn | wmma: CUDA bf16 attention on cuDNN's fused flash kernels, or\n"
          "                      labench's own WMMA ones (default auto: cuDNN where it loads and takes the\n"
          "                      shape, else WMMA; the results' \"attention\" says which ran and why)\n"
          "  --recompute         recompute each layer's forward in the backward (less memory)\n"
          "  --steps N           optimizer steps per strategy (default 8 on CPU, 10 on GPU; 0: all)\n"
          "  --lr F              AdamW learning rate (default 1e-3), --weight-decay F (0.01),\n"
          "  --clip F            gradient clipping by global norm (default 1.0; 0: none)\n"
          "  --load-model FILE   start from a safetensors checkpoint (Hugging Face Llama names)\n"
          "  --save-model FILE   save the trained weights (needs a single --strategy)\n"
          "\n"
          "What the model learns (docs/validation.md):\n"
          "  --task T            two-source (default): targets of samples >= 8192 x len-scale tokens\n"
          "                      follow one Markov chain, of shorter ones another; markov: one chain\n"
          "  --val-samples N     held-out sequences, never trained on, evaluated per length bucket\n"
          "                      (default 2% of the samples, 32 to 256; 0: no validation)\n"
          "  --val-every K       evaluate before the first step, every K steps and after the last\n"
          "                      (default 0: after the last step only)\n"
          "  --sequences S       instead of --steps, train each strategy on the first S sequences of\n"
          "                      its plan (to the step boundary at or after S); --steps 0 trains\n"
          "                      every strategy on exactly the same samples (whole epochs)\n"
          "\n"
          "Profiling (docs/profiling.md):\n"
          "  --trace[=FILE]      Chrome trace (Perfetto, chrome://tracing): a track per simulated\n"
          "                      rank with compute and bubble slices, the measured device\n"
          "                      timeline, GPU kernels (default FILE: traces/trace-<time>.json).\n"
          "                      `--trace FILE` works too: the next argument is the file unless\n"
          "                      it starts with '-' (then `--trace` alone takes the default)\n"
          "  --profile L         off | basic (default: CUPTI kernels, memcpy, memset, API) |\n"
          "                      full (+ device allocations, NVTX markers); CUDA backend only\n"
          "\n",
          f);
    fputs("Data parallelism (docs/communication.md, \"Real data parallelism\"):\n"
          "  --dp simulated|real simulated (default): one device plays the W ranks in turn, waits derived,\n"
          "                      communication modelled. real: under `mpirun -np W` (or srun), each process\n"
          "                      runs its own rank on its own device (CPU: MPI collectives; CUDA: NCCL,\n"
          "                      local rank -> GPU), waits and collectives measured; --comm ddp | zero3 |\n"
          "                      zero3-offload picks the collectives (default zero3 with --sync micro,\n"
          "                      ddp with --sync step); --world-size defaults to the processes started\n"
          "  --dp-timeout S      under --dp real: a rank more than S seconds late at a sync point ends the\n"
          "                      run, naming it (default 600)\n"
          "  --dp-check          under --dp real: compare every rank's parameters (a checksum) after every step\n"
          "  --dp-share-gpus     under --dp real: allow more ranks than GPUs on a host (rank -> local rank mod GPUs)\n"
          "\n",
          f);
    fputs(COMM_USAGE, f);
    fputs("  --measure-pcie      measure host<->device bandwidth on the GPU and use it (CUDA backend)\n\n", f);
    fputs("On a CPU the defaults (tiny model, lengths x 1/8, 8 steps) finish the comparison of\n"
          "every strategy in about two and a half minutes on two cores: the ranking, not the speed,\n"
          "is what carries over. Other commands: labench help.\n",
          f);
}

enum {
    O_STRATEGY = 256, O_LEN_DIST, O_LENGTHS, O_SAMPLES, O_LEN_SCALE, O_SEED, O_WORLD, O_MICRO, O_ACCUM,
    O_MAXTOK, O_SYNC, O_EPOCHS, O_OUT, O_STEPS, O_BACKEND, O_MODEL, O_LAYERS, O_DTYPE, O_RECOMPUTE, O_LR, O_WD,
    O_CLIP, O_SAVE, O_LOAD, O_PROGRESS, O_NO_PROGRESS, O_HELP, O_TRACE, O_PROFILE, O_COMM, O_MEASURE_PCIE,
    O_TASK, O_VAL_SAMPLES, O_VAL_EVERY, O_SEQUENCES, O_DP, O_DP_TIMEOUT, O_DP_CHECK, O_DP_SHARE, O_COST_FROM,
    O_ATTENTION   /* issue 21 */
};

static long long int_opt(const char *name, const char *v, long long min, long long max)
{
    long long x;
    if (parse_i64(v, min, max, &x) != 0)
        die_input("--%s must be an integer from %lld to %lld (got '%s')", name, min, max, QUOTE(v));
    return x;
}

static double real_opt(const char *name, const char *v, double min, double max)
{
    double x, num, den;
    char *slash = strchr(v, '/');
    if (slash) {   /* fractions such as 1/16 */
        char a[64];
        snprintf(a, sizeof a, "%.*s", (int)(slash - v), v);
        if (parse_f64(a, -1e300, 1e300, &num) == 0 && parse_f64(slash + 1, -1e300, 1e300, &den) == 0 && den != 0) {
            x = num / den;
            if (x >= min && x <= max) return x;
        }
    } else if (parse_f64(v, min, max, &x) == 0) {
        return x;
    }
    die_input("--%s must be a number from %g to %g (got '%s')", name, min, max, QUOTE(v));
}

static void parse_options(int argc, char **argv, Options *o)
{
    static const struct option longopts[] = {
        {"strategy", required_argument, 0, O_STRATEGY}, {"len-dist", required_argument, 0, O_LEN_DIST},
        {"lengths", required_argument, 0, O_LENGTHS}, {"samples", required_argument, 0, O_SAMPLES},
        {"len-scale", required_argument, 0, O_LEN_SCALE}, {"seed", required_argument, 0, O_SEED},
        {"world-size", required_argument, 0, O_WORLD}, {"micro-batch", required_argument, 0, O_MICRO},
        {"grad-accum", required_argument, 0, O_ACCUM}, {"max-tokens", required_argument, 0, O_MAXTOK},
        {"sync", required_argument, 0, O_SYNC}, {"epochs", required_argument, 0, O_EPOCHS},
        {"out", required_argument, 0, O_OUT}, {"steps", required_argument, 0, O_STEPS},
        {"backend", required_argument, 0, O_BACKEND}, {"model", required_argument, 0, O_MODEL},
        {"layers", required_argument, 0, O_LAYERS}, {"dtype", required_argument, 0, O_DTYPE},
        {"recompute", no_argument, 0, O_RECOMPUTE}, {"lr", required_argument, 0, O_LR},
        {"weight-decay", required_argument, 0, O_WD}, {"clip", required_argument, 0, O_CLIP},
        {"save-model", required_argument, 0, O_SAVE}, {"load-model", required_argument, 0, O_LOAD},
        {"progress", no_argument, 0, O_PROGRESS}, {"no-progress", no_argument, 0, O_NO_PROGRESS},
        {"trace", optional_argument, 0, O_TRACE}, {"profile", required_argument, 0, O_PROFILE},
        /* communication: every name in COMM_OPTION_NAMES, all handled by comm_option */
        {"comm", required_argument, 0, O_COMM}, {"system", required_argument, 0, O_COMM},
        {"nvlink-gbps", required_argument, 0, O_COMM}, {"net-gbps", required_argument, 0, O_COMM},
        {"gpus-per-node", required_argument, 0, O_COMM}, {"pcie-gbps", required_argument, 0, O_COMM},
        {"comm-latency-us", required_argument, 0, O_COMM}, {"comm-efficiency", required_argument, 0, O_COMM},
        {"host-mem-gbps", required_argument, 0, O_COMM}, {"measure-pcie", no_argument, 0, O_MEASURE_PCIE},
        {"task", required_argument, 0, O_TASK}, {"val-samples", required_argument, 0, O_VAL_SAMPLES},
        {"val-every", required_argument, 0, O_VAL_EVERY}, {"sequences", required_argument, 0, O_SEQUENCES},
        {"dp", required_argument, 0, O_DP}, {"dp-timeout", required_argument, 0, O_DP_TIMEOUT},
        {"dp-check", no_argument, 0, O_DP_CHECK}, {"dp-share-gpus", no_argument, 0, O_DP_SHARE},
        {"cost-from", required_argument, 0, O_COST_FROM}, {"attention", required_argument, 0, O_ATTENTION},
        {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    const int train_only[] = {O_STEPS, O_BACKEND, O_MODEL, O_LAYERS, O_DTYPE, O_RECOMPUTE, O_LR, O_WD,
                              O_CLIP, O_SAVE, O_LOAD, O_TRACE, O_PROFILE,
                              O_COMM, O_MEASURE_PCIE, O_TASK, O_VAL_SAMPLES, O_VAL_EVERY, O_SEQUENCES,
                              O_DP, O_DP_TIMEOUT, O_DP_CHECK, O_DP_SHARE, O_ATTENTION};
    opterr = 0;
    optind = 1;
    int c, li = -1;
    while ((c = getopt_long(argc, argv, "h", longopts, &li)) != -1) {
        if (!o->train)
            for (size_t i = 0; i < sizeof train_only / sizeof train_only[0]; i++)
                if (c == train_only[i])
                    die_input("--%s is a training option; `labench plan` does not train (use `labench train`)",
                              longopts[li].name);
        switch (c) {
        case O_STRATEGY: o->strategy = optarg; break;
        case O_LEN_DIST: o->len_dist = optarg; break;
        case O_LENGTHS: o->lengths = optarg; break;
        case O_SAMPLES: o->samples = int_opt("samples", optarg, 1, 1000000000LL); break;
        case O_LEN_SCALE:
            o->len_scale = real_opt("len-scale", optarg, 1e-6, 1e6);
            o->len_scale_set = 1;
            break;
        case O_SEED: o->seed = int_opt("seed", optarg, 0, INT64_MAX); break;
        case O_WORLD: o->world_size = int_opt("world-size", optarg, 1, PLAN_MAX_WORLD_SIZE); break;
        case O_MICRO: o->micro_batch = int_opt("micro-batch", optarg, 1, PLAN_MAX_MICRO_BATCH); break;
        case O_ACCUM: o->grad_accum = int_opt("grad-accum", optarg, 1, PLAN_MAX_GRAD_ACCUM); break;
        case O_MAXTOK: o->max_tokens = int_opt("max-tokens", optarg, 1, PLAN_MAX_TOKENS); break;
        case O_EPOCHS: o->epochs = int_opt("epochs", optarg, 1, PLAN_MAX_EPOCHS); break;
        case O_SYNC:
            if (strcmp(optarg, "micro") == 0)
                o->sync = SYNC_MICRO;
            else if (strcmp(optarg, "step") == 0)
                o->sync = SYNC_STEP;
            else
                die_input("--sync must be micro or step (got '%s')", QUOTE(optarg));
            break;
        case O_OUT: o->out = optarg; break;
        case O_STEPS: o->steps = int_opt("steps", optarg, 0, RUN_MAX_STEPS); break;
        case O_BACKEND:
            if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda") && strcmp(optarg, "auto"))
                die_input("--backend must be cpu, cuda or auto (got '%s')", QUOTE(optarg));
            o->backend = optarg;
            break;
        case O_MODEL: o->model = optarg; break;
        case O_LAYERS: o->layers = int_opt("layers", optarg, 1, 1000); break;
        case O_DTYPE:
            if (strcmp(optarg, "bf16") && strcmp(optarg, "fp32") && strcmp(optarg, "fp64"))
                die_input("--dtype must be bf16, fp32 or fp64 (got '%s')", QUOTE(optarg));
            o->dtype = optarg;
            break;
        case O_RECOMPUTE: o->recompute = 1; break;
        case O_LR: o->lr = real_opt("lr", optarg, 0, 10); break;
        case O_WD: o->weight_decay = real_opt("weight-decay", optarg, 0, 10); break;
        case O_CLIP: o->clip = real_opt("clip", optarg, 0, 1e9); break;
        case O_SAVE: o->save_model = optarg; break;
        case O_LOAD: o->load_model = optarg; break;
        case O_PROGRESS: o->progress = 1; break;
        case O_NO_PROGRESS: o->progress = 0; break;
        case O_TASK: o->task = optarg; break;
        case O_VAL_SAMPLES: o->val_samples = int_opt("val-samples", optarg, 0, 1000000000LL); break;
        case O_VAL_EVERY: o->val_every = int_opt("val-every", optarg, 0, 1000000); break;
        case O_SEQUENCES: o->sequences = int_opt("sequences", optarg, 1, INT64_MAX); break;
        case O_DP:
            if (strcmp(optarg, "simulated") == 0)
                o->dp = DP_SIMULATED;
            else if (strcmp(optarg, "real") == 0)
                o->dp = DP_REAL;
            else
                die_input("--dp must be simulated or real (got '%s')", optarg);
            break;
        case O_DP_TIMEOUT: o->dp_timeout = real_opt("dp-timeout", optarg, 0.1, 1e7); break;
        case O_DP_CHECK: o->dp_check = 1; break;
        case O_DP_SHARE: o->dp_share_gpus = 1; break;
        case O_COST_FROM: o->cost_from = optarg; break;
        case O_ATTENTION:   /* issue 21 */
            if (strcmp(optarg, "auto") && strcmp(optarg, "cudnn") && strcmp(optarg, "wmma"))
                die_input("--attention must be auto, cudnn or wmma (got '%s')", QUOTE(optarg));
            o->attention = optarg;
            break;
        case O_TRACE: {
            static char def[128];
            /* `--trace FILE` as well as `--trace=FILE`: train takes no positional argument, so a
             * next word that is not an option can only be the file. */
            if (!optarg && optind < argc && argv[optind][0] != '-') optarg = argv[optind++];
            if (optarg) {
                o->trace = optarg;
            } else {
                char now[64];
                utc_now_iso(now, sizeof now);
                snprintf(def, sizeof def, "traces/trace-%s.json", now);
                o->trace = def;
            }
            break;
        }
        case O_PROFILE:
            if (strcmp(optarg, "off") == 0)
                o->profile = PROF_OFF;
            else if (strcmp(optarg, "basic") == 0)
                o->profile = PROF_BASIC;
            else if (strcmp(optarg, "full") == 0)
                o->profile = PROF_FULL;
            else
                die_input("--profile must be off, basic or full (got '%s')", QUOTE(optarg));
            break;
        case O_COMM: {
            char e[256];
            if (comm_option(&o->comm, longopts[li].name, optarg, e, sizeof e) < 0) die_input("%s", e);
            break;
        }
        case O_MEASURE_PCIE: o->measure_pcie = 1; break;
        case 'h':
        case O_HELP: usage(stdout, o->train); exit(0);
        case ':': die_input("%s needs a value (see --help)", argv[optind - 1]);
        default: die_input("unknown option '%s' (see labench %s--help)", argv[optind - 1], o->train ? "" : "plan ");
        }
    }
    if (optind < argc) die_input("unexpected argument '%s' (see --help)", argv[optind]);
    if (o->len_dist && o->lengths) die_input("give --len-dist or --lengths, not both");
}

int select_strategies(const char *spec, const Strategy **out)
{
    if (!spec || strcmp(spec, "all") == 0) {
        for (int i = 0; i < N_STRATEGIES; i++) out[i] = STRATEGIES[i];
        return N_STRATEGIES;
    }
    int n = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const Strategy *s = strategy_find(tok);
        if (!s) {
            char valid[256] = "";
            for (int i = 0; i < N_STRATEGIES; i++) {
                strncat(valid, STRATEGIES[i]->name, sizeof valid - strlen(valid) - 1);
                strncat(valid, ", ", sizeof valid - strlen(valid) - 1);
            }
            die_input("--strategy: unknown strategy '%s'; valid: %sall", tok, valid);
        }
        if (n >= N_STRATEGIES) die_input("--strategy: too many strategies in '%s'", spec);
        out[n++] = s;
    }
    if (n == 0) die_input("--strategy: empty list");
    return n;
}

static PlanConfig strategy_config(const Strategy *s, const Options *o, const CostModel *cost)
{
    PlanConfig c = plan_config_default(s);
    if (cost) c.cost = *cost;
    if (o->world_size) c.world_size = (int)o->world_size;
    if (o->micro_batch) c.micro_batch = (int)o->micro_batch;
    if (o->grad_accum) c.grad_accum = (int)o->grad_accum;
    if (o->epochs) c.epochs = (int)o->epochs;
    if (o->sync >= 0) c.sync = (SyncModel)o->sync;
    c.seed = (uint64_t)o->seed;
    c.max_tokens = o->max_tokens ? (int)o->max_tokens : (int)fmax(1.0, llround(c.max_tokens * o->len_scale));
    return c;
}

static void print_plan_table(const StrategyResult *r, int n)
{
    printf("\n%-17s %6s %8s %7s %8s %7s %9s %7s %7s %7s %6s %6s %6s %8s %7s %8s\n", "strategy", "steps", "micro-b",
           "pad %", "pack %", "util %", "pred.bub%", "long10%", "unif%", "step%", "M min", "M max", "M cv",
           "w99/w1", "Eq.2", "plan ms");
    for (int i = 0; i < n; i++) {
        const PlanMetrics *m = &r[i].plan;
        printf("%-17s %6lld %8lld %7.2f %8.2f %7.2f %9.2f %7.2f %7.2f %7.2f %6.0f %6.0f %6.3f %8.2f %7s %8.1f\n",
               r[i].name, (long long)m->optimizer_steps, (long long)m->micro_batches, 100 * m->padding_ratio,
               100 * m->packing_efficiency, 100 * m->rank_utilisation, 100 * m->predicted_bubble,
               100 * m->weight_share_longest10, 100 * m->weight_share_longest10_uniform,
               100 * m->weight_share_longest10_ideal, m->step_seqs_min, m->step_seqs_max, m->step_seqs_cv,
               m->weight_epoch_spread, plan_metrics_fair(m) ? "yes" : "no", 1e3 * m->plan_seconds);
    }
    printf("\npad %%: pad tokens / computed tokens.  pack %%: real tokens / row slots (L per pack).  util %%: real\n"
           "tokens / (W x sum over sync points of the busiest rank's tokens).  pred.bub%%: DP bubble predicted by\n"
           "the cost model (tokens + attention's len^2).  long10%%: loss-weight share of the longest 10%% of\n"
           "sequences over the epoch; unif%%: that share when every sequence counts the same (Eq. 2's goal);\n"
           "step%%: the per-step ideal, that share if every sequence weighed 1/M of its own step (it hides\n"
           "how M varies).  M min/max/cv: sequences per optimizer step.  w99/w1: the 99th over the 1st\n"
           "percentile of a sequence's weight x mean M.  Eq.2: yes when every sequence weighs 1/M of its step,\n"
           "long10%% is within 1 point of unif%% and M cv <= 0.15: the plan trains the model LongAlign's Eq. 2\n"
           "describes over the epoch (docs/strategies.md, \"Plan metrics\").\n");
}

static void print_train_table(const StrategyResult *r, int n, int with_comm)
{
    double base = 0, base_c = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(r[i].name, "naive") == 0 && r[i].run) {
            base = r[i].run->metrics.effective_tps;
            base_c = r[i].run->metrics.effective_tps_compute;
        }
    printf("\n%-17s %11s %8s %9s %7s %7s %10s %7s %10s", "strategy", "eff tok/s", "vs naive", "DP bub %", "pad %",
           "pack %", "peak MiB", "MFU %", "final loss");
    if (with_comm) printf(" %12s %13s", "compute-only", "vs naive c.o.");
    printf("\n");
    for (int i = 0; i < n; i++) {
        const RunResult *x = r[i].run;
        const RunMetrics *m = &x->metrics;
        char sp[16] = "-", spc[16] = "-";
        if (base > 0) snprintf(sp, sizeof sp, "%.2fx", m->effective_tps / base);
        if (base_c > 0) snprintf(spc, sizeof spc, "%.2fx", m->effective_tps_compute / base_c);
        printf("%-17s %11.0f %8s %9.2f %7.2f %7.2f %10.1f %7.3f %10.4f", r[i].name, m->effective_tps, sp,
               100 * m->dp_bubble, 100 * m->padding_ratio, 100 * r[i].plan.packing_efficiency,
               (double)x->peak_bytes / (1 << 20), 100 * m->mfu, x->loss_curve[x->n_steps - 1]);
        if (with_comm) printf(" %12.0f %13s", m->effective_tps_compute, spc);
        printf("\n");
    }
    printf("\nLongAlign (8xA800, ZeRO-3 + offload), speed-up over naive in training hours:\n"
           "  packing / sorted: ChatGLM3-6B 2.21x / 2.38x, Llama-2-7B 2.87x / 2.88x, Llama-2-13B 2.84x / 2.63x\n");
}

/* Loads the distribution and draws the samples, exiting 2 with file:line on bad input. Before
 * drawing, it checks that planning them with every chosen strategy fits in memory, so a
 * histogram of 10^9 samples is refused at once with the --samples N that fits. */
static void load_samples(const Options *o, const Strategy *const *chosen, const PlanConfig *cfgs, int n_strat,
                         Sample **samples, int64_t *n)
{
    Hist h;
    char err[2048];
    const char *path = o->lengths ? o->lengths : o->len_dist;
    int rc = o->lengths ? hist_load_lengths(path, &h, err, sizeof err) : hist_load(path, &h, err, sizeof err);
    if (rc != 0) die_input("%s", err);
    if (hist_zero_note(&h, err, sizeof err)) fprintf(stderr, "labench: %s\n", err);
    int64_t count = o->samples > 0 ? o->samples : h.total;
    if (count <= SAMPLE_MAX_COUNT) {   /* above, sample_draw says why */
        for (int i = 0; i < n_strat; i++)
            if (count * cfgs[i].epochs > INT32_MAX)
                die_input("%s: %lld samples x %d epochs: at most %d sequence uses fit in a plan; "
                          "plan a sample of it with --samples N", path, (long long)count, cfgs[i].epochs, INT32_MAX);
        if (plan_budget_check(chosen, cfgs, n_strat, count, plan_budget_mean_len(&h, o->len_scale), o->train, err,
                              sizeof err) != 0) {
            hist_free(&h);
            die_input("%s: %s", path, err);
        }
    }
    progress_begin(o->progress, "drawing %lld samples from %s", (long long)count, path);
    rc = sample_draw(&h, o->samples, o->len_scale, (uint64_t)o->seed, samples, n, err, sizeof err);
    progress_end();
    hist_free(&h);
    if (rc != 0) die_input("%s", err);
}

/* gpu: the GPU to open (real data parallelism: this rank's); *used: the GPU opened, -1 on the CPU. */
static Backend *open_backend(const Options *o, int gpu, int *used)
{
    char err[512];
    Backend *be = NULL;
    DType act = o->dtype && strcmp(o->dtype, "fp32") == 0 ? DT_F32 : DT_BF16;
    int fp64 = o->dtype && strcmp(o->dtype, "fp64") == 0;
    if (fp64 && strcmp(o->backend, "cuda") == 0) die_input("--dtype fp64 is for the CPU backend; CUDA runs bf16 or fp32");
    *used = -1;
    if (strcmp(o->backend, "cpu") != 0 && !fp64) {
        be = backend_cuda_create(act, gpu, err, sizeof err);
        if (be) *used = gpu;
        if (!be && strcmp(o->backend, "cuda") == 0)
            die_input("--backend cuda: %s", err);
        if (!be) fprintf(stderr, "labench: no usable GPU (%s); running on the CPU backend\n", err);
    }
    if (!be) {
        if (o->dtype && strcmp(o->dtype, "bf16") == 0)
            die_input("--dtype bf16 needs the CUDA backend; the CPU backend computes in fp32");
        be = backend_cpu_create(fp64 ? DT_F64 : DT_F32, err, sizeof err);
        if (!be) die_input("CPU backend: %s", err);
    }
    /* --attention (issue 21): a backend without the choice has one attention; cudnn needs CUDA */
    if (o->attention && be->set_attention && be->set_attention(be, o->attention, err, sizeof err) != 0)
        die_input("--attention %s: %s", o->attention, err);
    if (o->attention && !be->set_attention && strcmp(o->attention, "cudnn") == 0)
        die_input("--attention cudnn needs the CUDA backend (--backend cuda, bf16); the %s backend has its own attention",
                  be->name);
    return be;
}

/* M of every stride-th optimizer step, at most `max` of them, for the M-per-step plot: all[] (the
 * M of each of n_steps steps) thinned in place and handed to *out. */
static int plan_step_series(int64_t *all, int n_steps, int max, int64_t **out, int *stride)
{
    *out = NULL;
    *stride = n_steps > max ? (n_steps + max - 1) / max : 1;
    if (!all) return 0;
    int n = 0;
    for (int s = 0; s < n_steps; s += *stride) all[n++] = all[s];
    *out = all;
    return n;
}

/* --dp real, before the backend: MPI up, --world-size checked against the processes started,
 * every rank but 0 quiet on stdout. Under a launcher without --dp real: an error. */
static void dp_start(Options *o, DpWorld *world)
{
    char launcher[128], err[1024];
    int launched = dp_launcher_size(launcher, sizeof launcher);
    if (o->dp != DP_REAL) {
        if (launched > 1)
            die_input("started by %s as one of %d processes, but without --dp real: give --dp real to run each "
                      "process as one real data-parallel rank, or start a single process for the simulation",
                      launcher, launched);
        if (o->dp_check || o->dp_timeout > 0 || o->dp_share_gpus)
            die_input("--dp-check, --dp-timeout and --dp-share-gpus are for --dp real");
        return;
    }
    if (dp_world_init(world, o->dp_timeout > 0 ? o->dp_timeout : DP_DEFAULT_TIMEOUT_S, err, sizeof err) != 0)
        die_input("--dp real: %s", err);
    if (o->world_size && o->world_size != world->size)
        die_input("--world-size %lld does not match the %d process%s started%s%s: under --dp real every process is "
                  "one rank; leave --world-size out, or start %lld (mpirun -np %lld)",
                  o->world_size, world->size, world->size == 1 ? "" : "es", launched ? " by " : "",
                  launched ? launcher : "", o->world_size, o->world_size);
    o->world_size = world->size;
    if (world->rank != 0) {
        o->progress = 0;
        if (!freopen("/dev/null", "w", stdout)) die_input("cannot silence rank %d's stdout", world->rank);
    }
}

/* --dp real after the backend: the collectives' pattern from --comm, the ranks checked, NCCL up
 * on GPUs. Fills dc (and owns *ranks, *nccl). */
static void dp_prepare(const Options *o, const DpWorld *world, Backend *be, int gpu, CommConfig *comm,
                       const PlanConfig *cfgs, int n_strat, DpRanks *ranks, DpRunConfig *dc)
{
    char err[1024], desc[640];
    if (!o->comm.comm) comm->kind = cfgs[0].sync == SYNC_STEP ? COMM_DDP : COMM_ZERO3;
    if (comm->kind == COMM_NONE)
        die_input("--dp real exchanges real gradients: --comm none is for the simulation; give --comm ddp, zero3 "
                  "or zero3-offload");
    for (int i = 0; i < n_strat; i++)
        if (comm->kind != COMM_DDP && cfgs[i].sync == SYNC_STEP)
            die_input("--comm %s gathers and scatters every micro-step: it needs --sync micro (or use --comm ddp)",
                      comm_kind_name(comm->kind));
    dp_ranks_check(world, be, gpu, o->dp_share_gpus, ranks);
    memset(dc, 0, sizeof *dc);
    dc->world = world;
    dc->ranks = ranks;
    dc->timeout_s = o->dp_timeout > 0 ? o->dp_timeout : DP_DEFAULT_TIMEOUT_S;
    dc->check = o->dp_check;
    dc->pattern = comm->kind;
    dc->comm = *comm;
    if (gpu < 0) {
        snprintf(dc->transport, sizeof dc->transport, "MPI collectives on host memory (%s)", world->library);
    } else {
        unsigned char id[NCCL_ID_BYTES], *ids = malloc((size_t)world->size * NCCL_ID_BYTES);
        if (!ids) die_input("out of host memory");
        memset(id, 0, sizeof id);
        if (nccl_load(desc, sizeof desc, err, sizeof err) != 0 ||
            (world->rank == 0 && nccl_unique_id(id, err, sizeof err) != 0))
            die_input("--dp real on CUDA: %s", err);
        dp_allgather_bytes(id, NCCL_ID_BYTES, ids);   /* rank 0's id to every rank */
        dc->nccl = nccl_comm_init_rank(ids, world->size, world->rank, gpu, err, sizeof err);
        free(ids);
        if (!dc->nccl) die_input("--dp real on CUDA: %s", err);
        snprintf(dc->transport, sizeof dc->transport, "%.400s on GPU memory; control: %.120s", desc, world->library);
    }
    printf("labench: --dp real: %d rank%s (%s), %s collectives; %s\n", world->size, world->size == 1 ? "" : "s",
           world->library, comm_kind_name(comm->kind), dc->transport);
}

static int run_command(int argc, char **argv, const char *command_line, int train)
{
    Options o = {0};
    o.train = train;
    o.sync = -1;
    o.seed = 1;
    o.len_scale = 1.0;
    o.steps = -1;
    o.backend = "auto";
    o.progress = isatty(2);
    o.lr = 1e-3;
    o.weight_decay = 0.01;
    o.clip = 1.0;
    o.profile = PROF_BASIC;
    o.val_samples = -1;
    comm_options_init(&o.comm);
    parse_options(argc, argv, &o);
    if (!o.len_dist && !o.lengths) o.len_dist = DEFAULT_LEN_DIST;

    const Strategy *chosen[16];
    int n_strat = select_strategies(o.strategy, chosen);
    if (o.save_model && n_strat != 1)
        die_input("--save-model saves one strategy's weights: give a single --strategy");

    DpWorld world = {0};
    const int real = train && o.dp == DP_REAL;
    if (train) dp_start(&o, &world);
    int gpu = 0, gpu_used = -1;
    if (real && strcmp(o.backend, "cpu") != 0 && !(o.dtype && strcmp(o.dtype, "fp64") == 0)) {
        char why[512];
        if (dp_pick_gpu(&world, o.dp_share_gpus, &gpu, why, sizeof why) != 0) {
            if (strcmp(o.backend, "cuda") == 0) die_input("--dp real --backend cuda: %s", why);
            fprintf(stderr, "labench: rank %d: no GPU for this rank (%s); running on the CPU backend\n", world.rank,
                    why);
            o.backend = "cpu";
        }
    }

    Backend *be = NULL;
    ModelConfig mc_cfg;
    float *init = NULL;
    char err[1024];
    if (train) {
        be = open_backend(&o, gpu, &gpu_used);
        int on_cpu = strcmp(be->name, "cpu") == 0;
        if (!o.len_scale_set && on_cpu) o.len_scale = CPU_DEFAULT_LEN_SCALE;
        if (o.steps < 0) o.steps = on_cpu ? CPU_DEFAULT_STEPS : GPU_DEFAULT_STEPS;
        if (o.load_model) {
            if (o.model) die_input("give --model or --load-model, not both (the checkpoint has its shape)");
            if (safetensors_load_model(o.load_model, &mc_cfg, &init, err, sizeof err) != 0) die_input("%s", err);
            if (o.layers && o.layers != mc_cfg.layers)
                die_input("--layers %lld does not match the checkpoint's %d layers", o.layers, mc_cfg.layers);
        } else {
            const char *preset = o.model ? o.model : on_cpu ? "tiny" : "small";
            if (model_preset(preset, &mc_cfg) != 0) die_input("--model: unknown preset '%s'; valid: tiny, small, 1b, 7b", preset);
            if (o.layers) mc_cfg.layers = (int)o.layers;
        }
        printf("labench: %s backend on %s; model %s (%d layers, %zu parameters), %s\n", be->name, be->device_name,
               mc_cfg.name, mc_cfg.layers, model_param_count(&mc_cfg), dtype_name(be->act_dtype));
        if (be->attention_desc[0]) printf("labench: attention: %s\n", be->attention_desc);   /* issue 21 */
    }
    /* Communication: modelled from the system's figures and the options, PCIe measured on request. */
    CommConfig comm;
    char comm_desc[1024];
    if (comm_config_resolve(&o.comm, &comm, err, sizeof err) != 0) die_input("%s", err);
    if (train && o.measure_pcie) {
        double up, down;
        char why[256] = "the CPU backend has no device";
        if (strcmp(be->name, "cuda") == 0 && comm_measure_pcie(&up, &down, why, sizeof why) == 0)
            comm_set_measured_pcie(&comm, up, down);
        else
            fprintf(stderr, "labench: --measure-pcie: %s; PCIe stays modelled\n", why);
    }
    if (train && !real) printf("labench: communication: %s\n", comm_describe(&comm, comm_desc, sizeof comm_desc));

    /* The planners' cost model: fitted to a measured run, else the trained model's layer shape,
     * else (plan) the 7b layer's. */
    CostModel plan_cost = plan_config_default(NULL).cost;
    if (o.cost_from) {
        TimeFit fit;
        ModelConfig fm;
        predict_cost_from_results(o.cost_from, &plan_cost, &fit, &fm);
        double alpha_shape = cost_model_from_shape(fm.hidden, fm.intermediate).per_token_sq;
        printf("labench: cost model fitted to %s (model %s, %d layers; %lld micro-batches, R^2 %.3f): %.4g s per token,\n"
               "         %.4g s per len^2, %.4g s per segment, %.4g s per micro-batch; per len^2 / per token = %.4g\n"
               "         (the layer shape gives 1/(4C+3F) = %.4g)\n",
               o.cost_from, fm.name, fm.layers, (long long)fit.n_fit, fit.fit_r2, plan_cost.per_token,
               plan_cost.per_token_sq, plan_cost.per_segment, plan_cost.per_row,
               plan_cost.per_token > 0 ? plan_cost.per_token_sq / plan_cost.per_token : NAN, alpha_shape);
    } else if (train) {
        plan_cost = cost_model_from_shape(mc_cfg.hidden, mc_cfg.intermediate);
    }
    if (!o.cost_from)
        printf("labench: cost model: tokens + attention's len^2 x %.4g (from the %s layer shape, 1/(4C+3F))\n",
               plan_cost.per_token_sq, train ? mc_cfg.name : "7b");

    /* Every config is checked before anything is read, runs or is written. */
    PlanConfig cfgs[16];
    for (int i = 0; i < n_strat; i++) {
        cfgs[i] = strategy_config(chosen[i], &o, &plan_cost);
        if (plan_config_check(&cfgs[i], err, sizeof err) != 0) die_input("%s", err);
    }
    DpRanks ranks = {0};
    DpRunConfig dc = {0};
    if (real) {
        dp_prepare(&o, &world, be, gpu_used, &comm, cfgs, n_strat, &ranks, &dc);
        printf("labench: communication: %s (modelled beside the measured)\n",
               comm_describe(&comm, comm_desc, sizeof comm_desc));
    }

    Sample *samples;
    int64_t n_samples;
    load_samples(&o, chosen, cfgs, n_strat, &samples, &n_samples);
    SampleStats st;
    sample_stats(samples, n_samples, &st);
    printf("labench: %lld samples from %s (x%.4g): mean %.0f tokens, median %lld, p90 %lld, max %lld\n",
           (long long)st.count, o.lengths ? o.lengths : o.len_dist, o.len_scale, st.mean_len,
           (long long)st.median_len, (long long)st.p90_len, (long long)st.max_len);
    fflush(stdout);

    /* Training data: the task's tokens; the planners see the training part of the samples only. */
    Task *task = NULL;
    ValSet val = {0};
    TrainSet part = {0};
    const Sample *plan_samples = samples;
    int64_t n_plan = n_samples;
    if (train) {
        const int64_t long_threshold = task_default_long_threshold(o.len_scale);
        if (task_create(&task, o.task ? o.task : TASK_DEFAULT, mc_cfg.vocab, long_threshold, (uint64_t)o.seed, err,
                        sizeof err) != 0)
            die_input("%s", err);
        ValBuckets buckets;
        val_buckets_default(o.len_scale, &buckets);
        int64_t n_val = o.val_samples >= 0 ? o.val_samples : val_default_count(n_samples);
        /* every strategy truncates at the same L (--max-tokens, or 65536 x len-scale) */
        if (val_split(samples, n_samples, n_val, cfgs[0].max_tokens, &buckets, (uint64_t)o.seed, &val, &part, err,
                      sizeof err) != 0)
            die_input("%s", err);
        plan_samples = part.samples;
        n_plan = part.n;
        task_describe(task, err, sizeof err);
        printf("labench: task %s\n", err);
        if (val.n > 0) {
            printf("labench: validation: %lld held-out sequences, per bucket", (long long)val.n);
            for (int b = 0; b < buckets.n; b++) {
                char label[32];
                val_bucket_label(&buckets, b, label, sizeof label);
                printf(" %s: %lld", label, (long long)val.count[b]);
            }
            printf("; %lld samples left to train on\n", (long long)part.n);
        }
    }

    /* Profiling: CUPTI on CUDA (before the first NVTX range, so it sees the markers), a trace. */
    int cupti = 0, overhead_set = 0;
    double overhead = 0;
    char cupti_status[512] = "not used (CPU backend: wall-clock timing)";
    Trace *trace = NULL;
    if (train && o.trace && world.rank == 0 && !(trace = trace_new())) die_input("out of memory for the trace");
    if (real)
        snprintf(cupti_status, sizeof cupti_status,
                 "not used under --dp real: %s time the ranks, the host clock the waits and collectives",
                 strcmp(be->name, "cuda") == 0 ? "CUDA events" : "the wall clock");
    else if (train && strcmp(be->name, "cuda") == 0) {
        if (o.profile == PROF_OFF) {
            snprintf(cupti_status, sizeof cupti_status, "off (--profile off): CUDA events time the micro-batches");
        } else {
            char why[400] = "";
            /* CUPTI's own cost: the first plan's first micro-batches timed without, then with it */
            Plan cal;
            RunConfig rc0 = {0};
            rc0.model = mc_cfg;
            rc0.seed = (uint64_t)o.seed;
            rc0.recompute = o.recompute;
            int have_cal = plan_make(chosen[0], &cfgs[0], plan_samples, n_plan, &cal, err, sizeof err) == 0;
            double t_off = have_cal ? run_calibrate(be, &cal, &rc0, task, 8) : -1;
            if (prof_cupti_start(o.profile, why, sizeof why) == 0) {
                cupti = 1;
                snprintf(cupti_status, sizeof cupti_status, "collecting (%s)%s%s",
                         o.profile == PROF_FULL ? "full" : "basic", why[0] ? "; " : "", why);
                double t_on = have_cal ? run_calibrate(be, &cal, &rc0, task, 8) : -1;
                if (t_off > 0 && t_on > 0) {
                    overhead = t_on / t_off - 1;
                    overhead_set = 1;
                }
            } else {
                snprintf(cupti_status, sizeof cupti_status, "unavailable (%s): CUDA events time the micro-batches",
                         why);
                fprintf(stderr, "labench: CUPTI %s\n", cupti_status);
            }
            if (have_cal) plan_free(&cal);
        }
    }
    if (train) {
        be->range_push = prof_range_push;
        be->range_pop = prof_range_pop;
        prof_range_push("labench run");
    }

    CommTimes doc_comm = {0, 0, 0};   /* for the results' config (the first strategy's world size) */
    StrategyResult results[16];
    RunResult runs[16];
    memset(results, 0, sizeof results);
    memset(runs, 0, sizeof runs);
    int status = 0;
    Plan plans[16];
    for (int i = 0; i < n_strat; i++) {
        progress_begin(o.progress, "planning %s", chosen[i]->name);
        double t0 = wall_seconds();
        if (plan_make(chosen[i], &cfgs[i], plan_samples, n_plan, &plans[i], err, sizeof err) != 0)
            die_input("%s", err);
        double plan_s = wall_seconds() - t0;
        progress_begin(o.progress, "scoring %s's plan", chosen[i]->name);
        results[i].name = chosen[i]->name;
        results[i].cfg = cfgs[i];
        plan_metrics_compute(&plans[i], plan_samples, &results[i].plan);
        results[i].plan.plan_seconds = plan_s;
        int64_t *step_m = malloc((plans[i].n_steps > 0 ? (size_t)plans[i].n_steps : 1) * sizeof *step_m);
        if (step_m) {
            plan_step_sequences(&plans[i], step_m);
            results[i].n_weights = plan_seq_weights(&plans[i], step_m, 2000, &results[i].weights);
        }
        results[i].n_step_seqs =
            plan_step_series(step_m, plans[i].n_steps, 2000, &results[i].step_seqs, &results[i].step_seqs_stride);
        if (val.n > 0 && val_check_disjoint(&val, &plans[i], part.ids, err, sizeof err) != 0)
            die_input("internal error: %s", err);
        progress_end();
        /* Only training needs the plans again: planning alone holds one at a time. */
        if (!train) plan_free(&plans[i]);
    }
    if (train && o.sequences > 0)
        printf("labench: every strategy trains on the first %lld sequences of its plan (to a step boundary)\n",
               o.sequences);
    for (int i = 0; i < n_strat; i++) {
        const Plan *plan = &plans[i];
        if (train) {
            RunConfig rc = {0};
            rc.steps = (int)o.steps;
            rc.model = mc_cfg;
            rc.opt = (AdamWConfig){(float)o.lr, 0.9f, 0.95f, 1e-8f, (float)o.weight_decay};
            rc.max_grad_norm = (float)o.clip;
            rc.seed = (uint64_t)o.seed;
            rc.recompute = o.recompute;
            rc.progress = o.progress;
            rc.init_params = init;
            rc.cupti = cupti;
            rc.trace = trace;
            rc.trace_kernel_limit = 200000;
            rc.sequences = o.sequences;
            rc.sample_ids = part.ids;
            rc.val = val.n > 0 ? &val : NULL;
            rc.val_every = (int)o.val_every;
            CommCost cost;
            comm_cost(&comm, &mc_cfg, cfgs[i].world_size, &cost);
            rc.comm = (CommTimes){cost.per_micro_step_s, cost.per_step_s, cost.optimizer_on_host};
            if (i == 0) doc_comm = rc.comm;
            Model trained;
            if (real) {
                rc.cupti = 0;
                dp_run_plan(be, plan, &rc, &dc, task, &runs[i], o.save_model ? &trained : NULL);
            } else if (run_plan(be, plan, &rc, task, &runs[i], o.save_model ? &trained : NULL, err, sizeof err) != 0) {
                fprintf(stderr, "labench: %s: %s\n", chosen[i]->name, err);
                status = EXIT_BAD_INPUT;
                break;
            }
            results[i].run = &runs[i];
            if (o.save_model && world.rank != 0) {
                model_free(&trained);
            } else if (o.save_model) {
                float *p = malloc(trained.n_params * sizeof *p);
                if (!p) die_input("out of host memory saving the model");
                model_get_params(&trained, p);
                if (safetensors_save_model(o.save_model, &mc_cfg, p, err, sizeof err) != 0) {
                    fprintf(stderr, "labench: %s\n", err);
                    status = EXIT_BAD_INPUT;
                }
                free(p);
                model_free(&trained);
            }
        }
    }
    for (int i = 0; i < n_strat; i++) plan_free(&plans[i]);
    if (status == 0 && world.rank == 0) {
        if (train) {
            print_train_table(results, n_strat, comm.kind != COMM_NONE);
            if (real) {
                const RunResult *rr[16];
                const char *names[16];
                for (int i = 0; i < n_strat; i++) rr[i] = &runs[i], names[i] = results[i].name;
                dp_print_comparison(stdout, names, rr, n_strat);
            }
            if (val.n > 0) {
                const char *names[16];
                const ValCurves *curves[16];
                for (int i = 0; i < n_strat; i++) {
                    names[i] = results[i].name;
                    curves[i] = &runs[i].val;
                }
                val_print_table(stdout, names, curves, n_strat);
            }
        } else
            print_plan_table(results, n_strat);
        const char *out = o.out ? o.out : train ? "results/latest.json" : NULL;
        if (out) {
            ResultsDoc doc = {0};
            doc.kind = train ? "train" : "plan";
            doc.command = command_line;
            doc.len_dist = o.lengths ? o.lengths : o.len_dist;
            doc.samples = n_samples;
            doc.task = task ? task_name(task) : NULL;
            doc.val_samples = val.n;
            doc.len_scale = o.len_scale;
            doc.seed = (uint64_t)o.seed;
            if (train) {
                doc.backend = be->name;
                doc.device = be->device_name;
                doc.peak_flops = be->peak_flops;
                doc.peak_flops_source = be->peak_flops_source;
                doc.attention = be->attention_desc[0] ? be->attention_desc : NULL;   /* issue 21 */
                doc.dtype = dtype_name(be->act_dtype);
                doc.model = &mc_cfg;
                doc.n_params = model_param_count(&mc_cfg);
                doc.steps = (int)o.steps;
                doc.recompute = o.recompute;
                doc.comm = comm_kind_name(comm.kind);
                doc.comm_times = doc_comm;
                doc.comm_source = comm_desc;
                doc.profile = o.profile == PROF_OFF ? "off" : o.profile == PROF_FULL ? "full" : "basic";
                doc.cupti_status = cupti_status;
                doc.cupti_overhead = overhead;
                doc.cupti_overhead_set = overhead_set;
                doc.trace_path = o.trace;
                doc.dp = real ? "real" : "simulated";
                doc.dp_ranks = real ? world.size : 0;
            }
            doc.strategies = results;
            doc.n_strategies = n_strat;
            json_t *comm_json = NULL;
            if (train) doc.comm_detail = comm_json = comm_to_json(&comm, NULL);
            int wrote = results_write(out, &doc, err, sizeof err);
            json_decref(comm_json);
            if (wrote != 0) {
                fprintf(stderr, "labench: %s\n", err);
                status = EXIT_BAD_INPUT;
            } else {
                printf("\nresults: %s\n", out);
            }
        }
    }
    if (train) prof_range_pop();
    if (trace && status == 0) {
        if (trace_write(trace, o.trace, err, sizeof err) != 0) {
            fprintf(stderr, "labench: %s\n", err);
            status = EXIT_BAD_INPUT;
        } else {
            printf("trace: %s (open in https://ui.perfetto.dev or chrome://tracing)\n", o.trace);
        }
    }
    if (trace) trace_free(trace);
    if (cupti) prof_cupti_stop();
    for (int i = 0; i < n_strat; i++) {
        run_result_free(&runs[i]);
        free(results[i].weights);
        free(results[i].step_seqs);
    }
    if (train) {
        task_free(task);
        val_set_free(&val);
        train_set_free(&part);
        be->destroy(be);
    }
    free(init);
    free(samples);
    if (real) {
        if (status != 0) dp_fail("could not write the results (see rank 0's message above)");
        nccl_comm_destroy(dc.nccl);
        dp_ranks_free(&ranks);
        dp_world_finalize();
    }
    return status;
}

int cmd_train(int argc, char **argv, const char *command_line) { return run_command(argc, argv, command_line, 1); }
int cmd_plan(int argc, char **argv, const char *command_line) { return run_command(argc, argv, command_line, 0); }
