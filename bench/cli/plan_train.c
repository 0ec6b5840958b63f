#include "bench/cli/plan_train.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/analysis/plan_budget.h"
#include "bench/analysis/plan_metrics.h"
#include "bench/cli/cli.h"
#include "bench/input/hist.h"
#include "bench/input/sample.h"
#include "bench/results/measured.h"
#include "model/hf_config.h"
#include "common/error.h"
#include "common/host.h"
#include "common/progress.h"

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

void options_usage(FILE *f, int train)
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
              "  labench plan --strategy packing-fair --lengths lengths.txt --emit-batches plan.jsonl.gz\n"
              "\n"
              "  --emit-batches OUT  write the plan of one --strategy as JSON Lines (gzip when OUT ends in\n"
              "                      .gz) for a training job: python/labench_batches reads it (README,\n"
              "                      \"Train with a labench plan\"); with --lengths, segment indices are the\n"
              "                      file's data lines, planned in file order\n"
              "\n",
              f);
    }
    usage_common(f);
    if (!train) {   /* the device model */
        fputs("\n", f);
        fputs(DM_USAGE, f);
        fputs("\n", f);
        fputs(COMM_USAGE, f);
        fputs("\nWithout a GPU, predict LongAlign's 8xA800 run of Llama-2-7B:\n"
              "  labench plan --device a800 --model 7b --comm zero3-offload --epochs 2 --pack-compute full\n", f);
        return;
    }
    fputs("\n"
          "Training:\n"
          "  --backend B         cpu | cuda | auto (default auto: CUDA when a GPU is usable)\n"
          "  --model P           tiny | small | 1b | 7b | 13b | chatglm3-6b, or a Llama-family config.json\n"
          "                      (default tiny on CPU, small on GPU)\n"
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
    O_DEVICE, O_DEVOPT, O_PACK_COMPUTE, O_NO_RECOMPUTE, O_EMIT_BATCHES, O_ATTENTION
};

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
        {"cost-from", required_argument, 0, O_COST_FROM}, {"emit-batches", required_argument, 0, O_EMIT_BATCHES},
        {"attention", required_argument, 0, O_ATTENTION},
        /* the device model; its parameters by DM_PARAM_OPTIONS */
        {"device", required_argument, 0, O_DEVICE}, {"pack-compute", required_argument, 0, O_PACK_COMPUTE},
        {"no-recompute", no_argument, 0, O_NO_RECOMPUTE}, {"peak-tflops", required_argument, 0, O_DEVOPT},
        {"hbm-gbps", required_argument, 0, O_DEVOPT}, {"dev-nvlink-gbps", required_argument, 0, O_DEVOPT},
        {"dev-pcie-gbps", required_argument, 0, O_DEVOPT}, {"matmul-eff", required_argument, 0, O_DEVOPT},
        {"attn-eff", required_argument, 0, O_DEVOPT}, {"attn-half-len", required_argument, 0, O_DEVOPT},
        {"mem-eff", required_argument, 0, O_DEVOPT}, {"launch-us", required_argument, 0, O_DEVOPT},
        {"kernels-per-layer", required_argument, 0, O_DEVOPT}, {"gather-latency-ms", required_argument, 0, O_DEVOPT},
        {"framework-ms", required_argument, 0, O_DEVOPT},
        {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    /* --model and the communication options also serve `plan --device` (checked below) */
    const int train_only[] = {O_STEPS, O_BACKEND, O_LAYERS, O_DTYPE, O_RECOMPUTE, O_LR, O_WD,
                              O_CLIP, O_SAVE, O_LOAD, O_TRACE, O_PROFILE,
                              O_MEASURE_PCIE, O_TASK, O_VAL_SAMPLES, O_VAL_EVERY, O_SEQUENCES,
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
        case O_SAMPLES: o->samples = cli_int("samples", optarg, 1, 1000000000LL); break;
        case O_LEN_SCALE:
            o->len_scale = cli_real("len-scale", optarg, 1e-6, 1e6);
            o->len_scale_set = 1;
            break;
        case O_SEED: o->seed = cli_int("seed", optarg, 0, INT64_MAX); break;
        case O_WORLD: o->world_size = cli_int("world-size", optarg, 1, PLAN_MAX_WORLD_SIZE); break;
        case O_MICRO: o->micro_batch = cli_int("micro-batch", optarg, 1, PLAN_MAX_MICRO_BATCH); break;
        case O_ACCUM: o->grad_accum = cli_int("grad-accum", optarg, 1, PLAN_MAX_GRAD_ACCUM); break;
        case O_MAXTOK: o->max_tokens = cli_int("max-tokens", optarg, 1, PLAN_MAX_TOKENS); break;
        case O_EPOCHS: o->epochs = cli_int("epochs", optarg, 1, PLAN_MAX_EPOCHS); break;
        case O_SYNC:
            if (strcmp(optarg, "micro") == 0)
                o->sync = SYNC_MICRO;
            else if (strcmp(optarg, "step") == 0)
                o->sync = SYNC_STEP;
            else
                die_input("--sync must be micro or step (got '%s')", QUOTE(optarg));
            break;
        case O_OUT: o->out = optarg; break;
        case O_STEPS: o->steps = cli_int("steps", optarg, 0, RUN_MAX_STEPS); break;
        case O_BACKEND:
            if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda") && strcmp(optarg, "auto"))
                die_input("--backend must be cpu, cuda or auto (got '%s')", QUOTE(optarg));
            o->backend = optarg;
            break;
        case O_MODEL:
            o->model = optarg;
            if (!o->train) o->device_opts = 1;
            break;
        case O_LAYERS: o->layers = cli_int("layers", optarg, 1, 1000); break;
        case O_DTYPE:
            if (strcmp(optarg, "bf16") && strcmp(optarg, "fp32") && strcmp(optarg, "fp64"))
                die_input("--dtype must be bf16, fp32 or fp64 (got '%s')", QUOTE(optarg));
            o->dtype = optarg;
            break;
        case O_RECOMPUTE: o->recompute = 1; break;
        case O_LR: o->lr = cli_real("lr", optarg, 0, 10); break;
        case O_WD: o->weight_decay = cli_real("weight-decay", optarg, 0, 10); break;
        case O_CLIP: o->clip = cli_real("clip", optarg, 0, 1e9); break;
        case O_SAVE: o->save_model = optarg; break;
        case O_LOAD: o->load_model = optarg; break;
        case O_PROGRESS: o->progress = 1; break;
        case O_NO_PROGRESS: o->progress = 0; break;
        case O_TASK: o->task = optarg; break;
        case O_VAL_SAMPLES: o->val_samples = cli_int("val-samples", optarg, 0, 1000000000LL); break;
        case O_VAL_EVERY: o->val_every = cli_int("val-every", optarg, 0, 1000000); break;
        case O_SEQUENCES: o->sequences = cli_int("sequences", optarg, 1, INT64_MAX); break;
        case O_DP:
            if (strcmp(optarg, "simulated") == 0)
                o->dp = DP_SIMULATED;
            else if (strcmp(optarg, "real") == 0)
                o->dp = DP_REAL;
            else
                die_input("--dp must be simulated or real (got '%s')", optarg);
            break;
        case O_DP_TIMEOUT: o->dp_timeout = cli_real("dp-timeout", optarg, 0.1, 1e7); break;
        case O_DP_CHECK: o->dp_check = 1; break;
        case O_DP_SHARE: o->dp_share_gpus = 1; break;
        case O_COST_FROM: o->cost_from = optarg; break;
        case O_DEVICE: {
            DeviceModel tmp;
            if (dm_device_defaults(optarg, &tmp) != 0)
                die_input("--device must be a100, a800, h100 or h200 (got '%s')", QUOTE(optarg));
            o->device = optarg;
            break;
        }
        case O_DEVOPT:
            for (int k = 0; k < DM_N_PARAMS; k++)
                if (strcmp(longopts[li].name, DM_PARAM_OPTIONS[k]) == 0) o->dm_value[k] = optarg;
            o->device_opts = 1;
            break;
        case O_PACK_COMPUTE:
            if (strcmp(optarg, "real") && strcmp(optarg, "full"))
                die_input("--pack-compute must be real or full (got '%s')", QUOTE(optarg));
            o->pack_full = strcmp(optarg, "full") == 0;
            o->device_opts = 1;
            break;
        case O_NO_RECOMPUTE: o->no_recompute = o->device_opts = 1; break;
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
            if (!o->train) o->device_opts = 1;
            break;
        }
        case O_MEASURE_PCIE: o->measure_pcie = 1; break;
        case O_EMIT_BATCHES: o->emit_batches = optarg; break;
        case O_ATTENTION:
            if (strcmp(optarg, "auto") && strcmp(optarg, "cudnn") && strcmp(optarg, "wmma"))
                die_input("--attention must be auto, cudnn or wmma (got '%s')", QUOTE(optarg));
            o->attention = optarg;
            break;
        case 'h':
        case O_HELP: options_usage(stdout, o->train); exit(0);
        case ':': die_input("%s needs a value (see --help)", argv[optind - 1]);
        default: die_input("unknown option '%s' (see labench %s--help)", argv[optind - 1], o->train ? "" : "plan ");
        }
    }
    if (optind < argc) die_input("unexpected argument '%s' (see --help)", argv[optind]);
    if (o->len_dist && o->lengths) die_input("give --len-dist or --lengths, not both");
    if (o->train && o->emit_batches) die_input("--emit-batches writes the plan of one strategy: `labench plan --strategy NAME --emit-batches OUT`");
    if (o->train && (o->device || o->device_opts))
        die_input("--device and its options predict a plan on a GPU: use `labench plan --device ...`");
    if (!o->train && o->device_opts && !o->device)
        die_input("--model, --comm and the device-model options need --device (e.g. `labench plan --device a800`)");
}

void options_parse(int argc, char **argv, Options *o, int train)
{
    memset(o, 0, sizeof *o);
    o->train = train;
    o->sync = -1;
    o->seed = 1;
    o->len_scale = 1.0;
    o->steps = -1;
    o->backend = "auto";
    o->progress = isatty(2);
    o->lr = 1e-3;
    o->weight_decay = 0.01;
    o->clip = 1.0;
    o->profile = PROF_BASIC;
    o->val_samples = -1;
    comm_options_init(&o->comm);
    parse_options(argc, argv, o);
    if (!o->len_dist && !o->lengths) o->len_dist = DEFAULT_LEN_DIST;
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

PlanConfig *strategy_configs(const Options *o, const Strategy *const *chosen, int n, const CostModel *cost)
{
    PlanConfig *cfgs = calloc((size_t)n, sizeof *cfgs);
    if (!cfgs) die_input("out of memory");
    char err[1024];
    for (int i = 0; i < n; i++) {
        cfgs[i] = strategy_config(chosen[i], o, cost);
        if (plan_config_check(&cfgs[i], err, sizeof err) != 0) die_input("%s", err);
    }
    return cfgs;
}

CostModel planners_cost_model(const Options *o, const ModelConfig *trained)
{
    char err[1024];
    /* The planners' cost model: fitted to a measured run, else the trained model's layer shape,
     * else (plan) the 7b layer's. */
    CostModel plan_cost = plan_config_default(NULL).cost;
    if (o->cost_from) {
        TimeFit fit;
        ModelConfig fm;
        if (measured_cost_model(o->cost_from, &plan_cost, &fit, &fm, err, sizeof err) != 0) die_input("%s", err);
        double alpha_shape = cost_model_from_shape(fm.hidden, fm.intermediate).per_token_sq;
        printf("labench: cost model fitted to %s (model %s, %d layers; %lld micro-batches, R^2 %.3f): %.4g s per token,\n"
               "         %.4g s per len^2, %.4g s per segment, %.4g s per micro-batch; per len^2 / per token = %.4g\n"
               "         (the layer shape gives 1/(4C+3F) = %.4g)\n",
               o->cost_from, fm.name, fm.layers, (long long)fit.n_fit, fit.fit_r2, plan_cost.per_token,
               plan_cost.per_token_sq, plan_cost.per_segment, plan_cost.per_row,
               plan_cost.per_token > 0 ? plan_cost.per_token_sq / plan_cost.per_token : NAN, alpha_shape);
    } else if (trained) {
        plan_cost = cost_model_from_shape(trained->hidden, trained->intermediate);
    }
    if (!o->cost_from)
        printf("labench: cost model: tokens + attention's len^2 x %.4g (from the %s layer shape, 1/(4C+3F))\n",
               plan_cost.per_token_sq, trained ? trained->name : "7b");

    return plan_cost;
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

void draw_samples(const Options *o, const Strategy *const *chosen, const PlanConfig *cfgs, int n_strat,
                  Sample **samples, int64_t *n)
{
    load_samples(o, chosen, cfgs, n_strat, samples, n);
    print_samples(o, *samples, *n);
}

void print_samples(const Options *o, const Sample *samples, int64_t n)
{
    SampleStats st;
    sample_stats(samples, n, &st);
    printf("labench: %lld samples from %s (x%.4g): mean %.0f tokens, median %lld, p90 %lld, max %lld\n",
           (long long)st.count, o->lengths ? o->lengths : o->len_dist, o->len_scale, st.mean_len,
           (long long)st.median_len, (long long)st.p90_len, (long long)st.max_len);
    fflush(stdout);
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

void plan_strategies(const Options *o, const Strategy *const *chosen, const PlanConfig *cfgs, int n_strat,
                     const Sample *plan_samples, int64_t n_plan, const ValSet *val, const int64_t *ids, Plan *plans,
                     StrategyResult *results, const PlanExtras *x)
{
    char err[1024];
    for (int i = 0; i < n_strat; i++) {
        Plan plan;
        progress_begin(o->progress, "planning %s", chosen[i]->name);
        double t0 = wall_seconds();
        if (plan_make(chosen[i], &cfgs[i], plan_samples, n_plan, &plan, err, sizeof err) != 0)
            die_input("%s", err);
        double plan_s = wall_seconds() - t0;
        progress_begin(o->progress, "scoring %s's plan", chosen[i]->name);
        results[i].name = chosen[i]->name;
        results[i].cfg = cfgs[i];
        plan_metrics_compute(&plan, plan_samples, &results[i].plan);
        results[i].plan.plan_seconds = plan_s;
        int64_t *step_m = malloc((plan.n_steps > 0 ? (size_t)plan.n_steps : 1) * sizeof *step_m);
        if (step_m) {
            plan_step_sequences(&plan, step_m);
            results[i].n_weights = plan_seq_weights(&plan, step_m, 2000, &results[i].weights);
        }
        results[i].n_step_seqs =
            plan_step_series(step_m, plan.n_steps, 2000, &results[i].step_seqs, &results[i].step_seqs_stride);
        if (val && val->n > 0 && val_check_disjoint(val, &plan, ids, err, sizeof err) != 0)
            die_input("internal error: %s", err);
        if (x && x->device) {   /* the device model's prediction of this plan */
            dm_predict_plan(&x->dm, &x->model, x->comm, &plan, &x->pred[i]);
            results[i].device_prediction = dm_prediction_to_json(&x->dm, &x->model, x->comm, &x->pred[i]);
        }
        progress_end();
        if (x && x->emit_path) {   /* --emit-batches */
            if (plan_export_batches(x->emit_path, &plan, &x->emit, err, sizeof err) != 0) die_input("%s", err);
            printf("labench: wrote %s's %d steps to %s\n", chosen[i]->name, plan.n_steps, x->emit_path);
        }
        /* Only training needs the plans again: planning alone holds one at a time. */
        if (plans)
            plans[i] = plan;
        else
            plan_free(&plan);
    }
}

void strategy_results_free(StrategyResult *results, int n)
{
    for (int i = 0; i < n; i++) {
        free(results[i].weights);
        free(results[i].step_seqs);
        json_decref(results[i].device_prediction);
    }
}

void results_doc_init(ResultsDoc *doc, const Options *o, const char *command_line, int64_t n_samples,
                      StrategyResult *results, int n)
{
    memset(doc, 0, sizeof *doc);
    doc->kind = o->train ? "train" : "plan";
    doc->command = command_line;
    doc->len_dist = o->lengths ? o->lengths : o->len_dist;
    doc->samples = n_samples;
    doc->len_scale = o->len_scale;
    doc->seed = (uint64_t)o->seed;
    doc->strategies = results;
    doc->n_strategies = n;
}

int results_doc_write(const char *out, const ResultsDoc *doc)
{
    char err[1024];
    if (results_write(out, doc, err, sizeof err) != 0) {
        fprintf(stderr, "labench: %s\n", err);
        return EXIT_BAD_INPUT;
    }
    printf("\nresults: %s\n", out);
    return 0;
}
