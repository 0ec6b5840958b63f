/* `labench [train]`: sample a length distribution, plan it with each strategy, and execute every
 * plan on a backend's real training step: tokens/s, bubbles, memory, loss (DESIGN.md). The options,
 * the samples and the planning are shared with `labench plan` (bench/cli/plan_train.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli/cli.h"
#include "bench/cli/plan_train.h"
#include "bench/results/results_dp.h"
#include "bench/results/tables.h"
#include "bench/comm/nccl.h"
#include "bench/input/task.h"
#include "bench/run/run.h"
#include "bench/run/val_loss.h"
#include "kernels/backend.h"
#include "model/hf_config.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "profile/cupti.h"
#include "profile/nvtx.h"
#include "profile/trace.h"

/* Everything one training command sets up, runs and reports. */
typedef struct {
    Options o;
    const Strategy **chosen;      /* room for N_STRATEGIES */
    int n_strat;
    DpWorld world;
    int real;                     /* --dp real */
    int gpu_used;                 /* the GPU opened, -1 on the CPU */
    Backend *be;
    ModelConfig mc;
    float *init;                  /* --load-model's weights */
    CommConfig comm;
    char comm_desc[1024];
    PlanConfig *cfgs;
    DpRanks ranks;
    DpRunConfig dc;
    Sample *samples;
    int64_t n_samples;
    Task *task;
    ValSet val;
    TrainSet part;                /* the samples the planners see: all but the held-out ones */
    int cupti, overhead_set;
    double overhead;              /* CUPTI's own cost, t_on / t_off - 1 */
    char cupti_status[512];
    Trace *trace;
    CommTimes doc_comm;           /* for the results' config (the first strategy's world size) */
    Plan *plans;
    StrategyResult *results;
    RunResult *runs;
} Train;

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
    /* --attention: a backend without the choice has one attention; cudnn needs CUDA */
    if (o->attention && be->set_attention && be->set_attention(be, o->attention, err, sizeof err) != 0)
        die_input("--attention %s: %s", o->attention, err);
    if (o->attention && !be->set_attention && strcmp(o->attention, "cudnn") == 0)
        die_input("--attention cudnn needs the CUDA backend (--backend cuda, bf16); the %s backend has its own attention",
                  be->name);
    return be;
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
    die_set_hook(dp_fail);   /* from now on a bad input on any rank ends every rank */
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

/* --dp real's rank and GPU, the backend, and the model: its shape (a preset or a checkpoint) and
 * the CPU defaults that follow from the backend. */
static void open_backend_and_model(Train *t)
{
    Options *o = &t->o;
    char err[1024];
    int gpu = 0;
    dp_start(o, &t->world);
    if (t->real && strcmp(o->backend, "cpu") != 0 && !(o->dtype && strcmp(o->dtype, "fp64") == 0)) {
        char why[512];
        if (dp_pick_gpu(&t->world, o->dp_share_gpus, &gpu, why, sizeof why) != 0) {
            if (strcmp(o->backend, "cuda") == 0) die_input("--dp real --backend cuda: %s", why);
            fprintf(stderr, "labench: rank %d: no GPU for this rank (%s); running on the CPU backend\n",
                    t->world.rank, why);
            o->backend = "cpu";
        }
    }
    t->be = open_backend(o, gpu, &t->gpu_used);
    const int on_cpu = t->be->kind == BACKEND_CPU;
    if (!o->len_scale_set && on_cpu) o->len_scale = CPU_DEFAULT_LEN_SCALE;
    if (o->steps < 0) o->steps = on_cpu ? CPU_DEFAULT_STEPS : GPU_DEFAULT_STEPS;
    if (o->load_model) {
        if (o->model) die_input("give --model or --load-model, not both (the checkpoint has its shape)");
        if (safetensors_load_model(o->load_model, &t->mc, &t->init, err, sizeof err) != 0) die_input("%s", err);
        if (o->layers && o->layers != t->mc.layers)
            die_input("--layers %lld does not match the checkpoint's %d layers", o->layers, t->mc.layers);
    } else {
        const char *preset = o->model ? o->model : on_cpu ? "tiny" : "small";
        if (model_resolve(preset, &t->mc, err, sizeof err) != 0) die_input("%s", err);
        if (o->layers) t->mc.layers = (int)o->layers;
    }
    printf("labench: %s backend on %s; model %s (%d layers, %zu parameters), %s\n", t->be->name,
           t->be->device_name, t->mc.name, t->mc.layers, model_param_count(&t->mc), dtype_name(t->be->act_dtype));
    if (t->be->attention_desc[0]) printf("labench: attention: %s\n", t->be->attention_desc);
}

/* Communication: modelled from the system's figures and the options, PCIe measured on request. */
static void resolve_comm(Train *t)
{
    char err[1024];
    if (comm_config_resolve(&t->o.comm, &t->comm, err, sizeof err) != 0) die_input("%s", err);
    if (t->o.measure_pcie) {
        double up, down;
        char why[256] = "the CPU backend has no device";
        if (t->be->kind == BACKEND_CUDA && comm_measure_pcie(&up, &down, why, sizeof why) == 0)
            comm_set_measured_pcie(&t->comm, up, down);
        else
            fprintf(stderr, "labench: --measure-pcie: %s; PCIe stays modelled\n", why);
    }
    if (!t->real) printf("labench: communication: %s\n", comm_describe(&t->comm, t->comm_desc, sizeof t->comm_desc));
}

/* Training data: the task's tokens, and the held-out validation set; the planners see the
 * training part of the samples only. */
static void make_data(Train *t)
{
    const Options *o = &t->o;
    char err[1024];
    const int64_t long_threshold = task_default_long_threshold(o->len_scale);
    if (task_create(&t->task, o->task ? o->task : TASK_DEFAULT, t->mc.vocab, long_threshold, (uint64_t)o->seed, err,
                    sizeof err) != 0)
        die_input("%s", err);
    ValBuckets buckets;
    val_buckets_default(o->len_scale, &buckets);
    int64_t n_val = o->val_samples >= 0 ? o->val_samples : val_default_count(t->n_samples);
    /* every strategy truncates at the same L (--max-tokens, or 65536 x len-scale) */
    if (val_split(t->samples, t->n_samples, n_val, t->cfgs[0].max_tokens, &buckets, (uint64_t)o->seed, &t->val,
                  &t->part, err, sizeof err) != 0)
        die_input("%s", err);
    task_describe(t->task, err, sizeof err);
    printf("labench: task %s\n", err);
    if (t->val.n > 0) {
        printf("labench: validation: %lld held-out sequences, per bucket", (long long)t->val.n);
        for (int b = 0; b < buckets.n; b++) {
            char label[32];
            val_bucket_label(&buckets, b, label, sizeof label);
            printf(" %s: %lld", label, (long long)t->val.count[b]);
        }
        printf("; %lld samples left to train on\n", (long long)t->part.n);
    }
}

/* Profiling: CUPTI on CUDA (before the first NVTX range, so it sees the markers), a trace. */
static void start_profiling(Train *t)
{
    const Options *o = &t->o;
    char err[1024];
    snprintf(t->cupti_status, sizeof t->cupti_status, "not used (CPU backend: wall-clock timing)");
    if (o->trace && t->world.rank == 0 && !(t->trace = trace_new())) die_input("out of memory for the trace");
    if (t->real)
        snprintf(t->cupti_status, sizeof t->cupti_status,
                 "not used under --dp real: %s time the ranks, the host clock the waits and collectives",
                 t->be->kind == BACKEND_CUDA ? "CUDA events" : "the wall clock");
    else if (t->be->kind == BACKEND_CUDA) {
        if (o->profile == PROF_OFF) {
            snprintf(t->cupti_status, sizeof t->cupti_status, "off (--profile off): CUDA events time the micro-batches");
        } else {
            char why[400] = "";
            /* CUPTI's own cost: the first plan's first micro-batches timed without, then with it */
            Plan cal;
            RunConfig rc0 = {0};
            rc0.model = t->mc;
            rc0.seed = (uint64_t)o->seed;
            rc0.recompute = o->recompute;
            int have_cal = plan_make(t->chosen[0], &t->cfgs[0], t->part.samples, t->part.n, &cal, err, sizeof err) == 0;
            double t_off = have_cal ? run_calibrate(t->be, &cal, &rc0, t->task, 8) : -1;
            if (prof_cupti_start(o->profile, why, sizeof why) == 0) {
                t->cupti = 1;
                snprintf(t->cupti_status, sizeof t->cupti_status, "collecting (%s)%s%s",
                         o->profile == PROF_FULL ? "full" : "basic", why[0] ? "; " : "", why);
                double t_on = have_cal ? run_calibrate(t->be, &cal, &rc0, t->task, 8) : -1;
                if (t_off > 0 && t_on > 0) {
                    t->overhead = t_on / t_off - 1;
                    t->overhead_set = 1;
                }
            } else {
                snprintf(t->cupti_status, sizeof t->cupti_status,
                         "unavailable (%s): CUDA events time the micro-batches", why);
                fprintf(stderr, "labench: CUPTI %s\n", t->cupti_status);
            }
            if (have_cal) plan_free(&cal);
        }
    }
    t->be->range_push = prof_range_push;
    t->be->range_pop = prof_range_pop;
    prof_range_push("labench run");
}

/* Runs strategy i's plan (real or simulated ranks) and saves its weights on request. 0, or
 * EXIT_BAD_INPUT after saying why. */
static int train_strategy(Train *t, int i)
{
    const Options *o = &t->o;
    char err[1024];
    RunConfig rc = {0};
    rc.steps = (int)o->steps;
    rc.model = t->mc;
    rc.opt = (AdamWConfig){(float)o->lr, 0.9f, 0.95f, 1e-8f, (float)o->weight_decay};
    rc.max_grad_norm = (float)o->clip;
    rc.seed = (uint64_t)o->seed;
    rc.recompute = o->recompute;
    rc.progress = o->progress;
    rc.init_params = t->init;
    rc.cupti = t->cupti;
    rc.trace = t->trace;
    rc.trace_kernel_limit = 200000;
    rc.sequences = o->sequences;
    rc.sample_ids = t->part.ids;
    rc.val = t->val.n > 0 ? &t->val : NULL;
    rc.val_every = (int)o->val_every;
    CommCost cost;
    comm_cost(&t->comm, &t->mc, t->cfgs[i].world_size, &cost);
    rc.comm = (CommTimes){cost.per_micro_step_s, cost.per_step_s, cost.optimizer_on_host};
    if (i == 0) t->doc_comm = rc.comm;
    Model trained;
    if (t->real) {
        rc.cupti = 0;
        dp_run_plan(t->be, &t->plans[i], &rc, &t->dc, t->task, &t->runs[i], o->save_model ? &trained : NULL);
    } else if (run_plan(t->be, &t->plans[i], &rc, t->task, &t->runs[i], o->save_model ? &trained : NULL, err,
                        sizeof err) != 0) {
        fprintf(stderr, "labench: %s: %s\n", t->chosen[i]->name, err);
        return EXIT_BAD_INPUT;
    }
    t->results[i].run = &t->runs[i];
    int status = 0;
    if (o->save_model && t->world.rank != 0) {
        model_free(&trained);
    } else if (o->save_model) {
        float *p = malloc(trained.n_params * sizeof *p);
        if (!p) die_input("out of host memory saving the model");
        model_get_params(&trained, p);
        if (safetensors_save_model(o->save_model, &t->mc, p, err, sizeof err) != 0) {
            fprintf(stderr, "labench: %s\n", err);
            status = EXIT_BAD_INPUT;
        }
        free(p);
        model_free(&trained);
    }
    return status;
}

/* The tables on stdout and the results JSON (rank 0). 0, or EXIT_BAD_INPUT. */
static int report(Train *t, const char *command_line)
{
    const Options *o = &t->o;
    const int n = t->n_strat;
    print_train_table(t->results, n, t->comm.kind != COMM_NONE);
    const size_t room = n > 0 ? (size_t)n : 1;
    const RunResult **rr = calloc(room, sizeof *rr);
    const char **names = calloc(room, sizeof *names);
    const ValCurves **curves = calloc(room, sizeof *curves);
    if (!rr || !names || !curves) die_input("out of memory");
    for (int i = 0; i < n; i++) {
        rr[i] = &t->runs[i];
        names[i] = t->results[i].name;
        curves[i] = &t->runs[i].val;
    }
    if (t->real) dp_print_comparison(stdout, names, rr, n);
    if (t->val.n > 0) val_print_table(stdout, names, curves, n);
    free(rr);
    free(names);
    free(curves);

    ResultsDoc doc;
    results_doc_init(&doc, o, command_line, t->n_samples, t->results, n);
    doc.task = task_name(t->task);
    doc.val_samples = t->val.n;
    doc.backend = t->be->name;
    doc.device = t->be->device_name;
    doc.peak_flops = t->be->peak_flops;
    doc.peak_flops_source = t->be->peak_flops_source;
    doc.attention = t->be->attention_desc[0] ? t->be->attention_desc : NULL;
    doc.dtype = dtype_name(t->be->act_dtype);
    doc.model = &t->mc;
    doc.n_params = model_param_count(&t->mc);
    doc.steps = (int)o->steps;
    doc.recompute = o->recompute;
    doc.comm = comm_kind_name(t->comm.kind);
    doc.comm_times = t->doc_comm;
    /* Under --dp real the communication was measured; the model only made the simulation beside it. */
    char real_source[2048];
    snprintf(real_source, sizeof real_source,
             "measured: %s collectives timed on every rank (run.comm_seconds, run.dp_real.measured); the simulated "
             "comparison (run.dp_real.simulated) used the model: %s",
             t->dc.transport, t->comm_desc);
    doc.comm_source = t->real ? real_source : t->comm_desc;
    doc.profile = o->profile == PROF_OFF ? "off" : o->profile == PROF_FULL ? "full" : "basic";
    doc.cupti_status = t->cupti_status;
    doc.cupti_overhead = t->overhead;
    doc.cupti_overhead_set = t->overhead_set;
    doc.trace_path = o->trace;
    doc.dp = t->real ? "real" : "simulated";
    doc.dp_ranks = t->real ? t->world.size : 0;
    json_t *comm_json = doc.comm_detail = comm_to_json(&t->comm, NULL);
    int status = results_doc_write(o->out ? o->out : "results/latest.json", &doc);
    json_decref(comm_json);
    return status;
}

int cmd_train(int argc, char **argv, const char *command_line)
{
    Train T;
    memset(&T, 0, sizeof T);
    Train *t = &T;
    Options *o = &t->o;
    char err[1024];
    options_parse(argc, argv, o, 1);
    t->chosen = calloc((size_t)N_STRATEGIES, sizeof *t->chosen);
    if (!t->chosen) die_input("out of memory");
    t->n_strat = select_strategies(o->strategy, t->chosen);
    if (o->save_model && t->n_strat != 1) die_input("--save-model saves one strategy's weights: give a single --strategy");
    t->real = o->dp == DP_REAL;

    open_backend_and_model(t);
    resolve_comm(t);
    CostModel plan_cost = planners_cost_model(o, &t->mc);
    t->cfgs = strategy_configs(o, t->chosen, t->n_strat, &plan_cost);
    if (t->real) {
        dp_prepare(o, &t->world, t->be, t->gpu_used, &t->comm, t->cfgs, t->n_strat, &t->ranks, &t->dc);
        printf("labench: communication: %s (modelled beside the measured)\n",
               comm_describe(&t->comm, t->comm_desc, sizeof t->comm_desc));
    }
    draw_samples(o, t->chosen, t->cfgs, t->n_strat, &t->samples, &t->n_samples);
    make_data(t);
    start_profiling(t);

    const size_t n = t->n_strat > 0 ? (size_t)t->n_strat : 1;
    t->plans = calloc(n, sizeof *t->plans);
    t->results = calloc(n, sizeof *t->results);
    t->runs = calloc(n, sizeof *t->runs);
    if (!t->plans || !t->results || !t->runs) die_input("out of memory");
    plan_strategies(o, t->chosen, t->cfgs, t->n_strat, t->part.samples, t->part.n, &t->val, t->part.ids, t->plans,
                    t->results, NULL);
    if (o->sequences > 0)
        printf("labench: every strategy trains on the first %lld sequences of its plan (to a step boundary)\n",
               o->sequences);
    int status = 0;
    for (int i = 0; i < t->n_strat && status == 0; i++) status = train_strategy(t, i);
    for (int i = 0; i < t->n_strat; i++) plan_free(&t->plans[i]);
    if (status == 0 && t->world.rank == 0) status = report(t, command_line);
    prof_range_pop();
    if (t->trace && status == 0) {
        if (trace_write(t->trace, o->trace, err, sizeof err) != 0) {
            fprintf(stderr, "labench: %s\n", err);
            status = EXIT_BAD_INPUT;
        } else {
            printf("trace: %s (open in https://ui.perfetto.dev or chrome://tracing)\n", o->trace);
        }
    }
    if (t->trace) trace_free(t->trace);
    if (t->cupti) prof_cupti_stop();
    for (int i = 0; i < t->n_strat; i++) run_result_free(&t->runs[i]);
    strategy_results_free(t->results, t->n_strat);
    task_free(t->task);
    val_set_free(&t->val);
    train_set_free(&t->part);
    t->be->destroy(t->be);
    free(t->chosen);
    free(t->plans);
    free(t->results);
    free(t->runs);
    free(t->cfgs);
    free(t->init);
    free(t->samples);
    if (t->real) {
        if (status != 0) dp_fail("could not write the results (see rank 0's message above)");
        nccl_comm_destroy(t->dc.nccl);
        dp_ranks_free(&t->ranks);
        dp_world_finalize();
    }
    return status;
}
