/* The device model (bench/analysis/device_model.h; formulas and sources: docs/device-model.md). */
#include "bench/analysis/device_model.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "bench/analysis/sync_point.h"
#include "common/error.h"
#include "common/parse.h"

const char *const DM_DEVICES[] = {"a100", "a800", "h100", "h200", NULL};

const char *const DM_PARAM_OPTIONS[] = {"peak-tflops", "hbm-gbps", "dev-nvlink-gbps", "dev-pcie-gbps",
                                        "matmul-eff", "attn-eff", "attn-half-len", "mem-eff",
                                        "launch-us", "kernels-per-layer", "gather-latency-ms",
                                        "framework-ms", NULL};
/* Option unit -> SI: TFLOP/s, GB/s, GB/s, GB/s, -, -, tokens, -, us, count, ms, ms. */
static const double OPTION_SCALE[DM_N_PARAMS] = {1e12, 1e9, 1e9, 1e9, 1, 1, 1, 1, 1e-6, 1, 1e-3, 1e-3};
static const char *const UNIT[DM_N_PARAMS] = {"FLOP/s", "B/s", "B/s", "B/s", "share of peak", "share of peak",
                                              "tokens", "share of HBM", "s", "kernels", "s", "s"};

const char DM_USAGE[] =
    "Device model (predicted, not measured: docs/device-model.md):\n"
    "  --device D          a100 | a800 | h100 | h200: predict each plan's wall time, tokens/s, MFU,\n"
    "                      DP bubble and communication on W such GPUs, from the model's shape\n"
    "  --model P           tiny | small | 1b | 7b | 13b | chatglm3-6b, or a Llama-family config.json\n"
    "                      (default 7b); --comm (default zero3-offload) and the bandwidths below and\n"
    "                      --system (default: the device's) pick the communication\n"
    "  --pack-compute M    real (default): a pack computes its tokens; full: its whole --max-tokens\n"
    "                      buffer, the unused tail as one more segment (LongAlign's packing)\n"
    "  --no-recompute      no activation checkpointing (default: on, as LongAlign trained)\n"
    "  Every parameter can be overridden (zero or negative values are refused):\n"
    "  --peak-tflops F     dense bf16 peak (a100/a800 312, h100/h200 989)\n"
    "  --hbm-gbps F        HBM bandwidth (a100/a800 2039, h100 3350, h200 4800)\n"
    "  --matmul-eff F      share of peak the GEMMs reach (a100/a800 0.70, h100/h200 0.60; assumed)\n"
    "  --attn-eff F        flash attention's share of peak at long segments (0.65 A100, 0.50 H100)\n"
    "  --attn-half-len N   segment length where attention reaches half that (600 A100, 1000 H100)\n"
    "  --mem-eff F         share of HBM the memory-bound kernels reach (0.7, assumed)\n"
    "  --launch-us F       per kernel launch (5), --kernels-per-layer N per forward (30)\n"
    "  --gather-latency-ms F  ZeRO-3 fixed cost per per-layer gather or scatter (1.0, assumed)\n"
    "  --framework-ms F    framework overhead per micro-step (1000, assumed: see the doc)\n"
    "  --dev-nvlink-gbps F, --dev-pcie-gbps F   the data sheet's links, shown beside the prediction\n"
    "                      (the communication uses --nvlink-gbps / --pcie-gbps)\n";

static void set(DeviceModel *d, DmParamId id, double v, const char *src)
{
    d->p[id].value = v;
    snprintf(d->p[id].source, sizeof d->p[id].source, "%s", src);
}

int dm_device_defaults(const char *device, DeviceModel *d)
{
    if (!device) return -1;
    int ampere = strcmp(device, "a100") == 0 || strcmp(device, "a800") == 0;
    int hopper = strcmp(device, "h100") == 0 || strcmp(device, "h200") == 0;
    if (!ampere && !hopper) return -1;
    memset(d, 0, sizeof *d);
    snprintf(d->device, sizeof d->device, "%s", device);
    d->recompute = 1;
    if (ampere) {
        set(d, DM_PEAK, 312e12, "NVIDIA A100/A800 80GB SXM data sheets: BF16 tensor core 312 TFLOPS dense");
        set(d, DM_HBM, 2039e9, "NVIDIA A100/A800 80GB SXM data sheets: HBM2e 2,039 GB/s");
        set(d, DM_PCIE, 32e9, "data sheet: PCIe Gen4 64 GB/s (both directions)");
        if (strcmp(device, "a100") == 0)
            set(d, DM_NVLINK, 300e9, "A100 SXM data sheet: NVLink 600 GB/s (both directions)");
        else
            set(d, DM_NVLINK, 200e9, "A800 SXM data sheet: NVLink 400 GB/s (both directions)");
        set(d, DM_MATMUL_EFF, 0.70,
            "assumed: cuBLAS bf16 GEMMs of 4096-13824 wide layers over >= 1k tokens reach 70-80% of "
            "A100 peak; 0.70 for the whole step's mix of shapes (Megatron-LM, Narayanan et al. 2021, "
            "reports 52% end to end including everything else)");
        set(d, DM_ATTN_EFF, 0.65,
            "FlashAttention-2 paper (Dao 2023, arXiv 2307.08691) Fig. 5, A100 80GB, causal, head dim 128, "
            "forward+backward: about 190-200 TFLOP/s at 8k-16k tokens (read from the figure, +-10%)");
        set(d, DM_ATTN_HALF, 600,
            "the same figure: about 110 TFLOP/s at 512 tokens and 160 at 2k; s/(s+600) fits it within "
            "+-10% (our fit)");
    } else {
        set(d, DM_PEAK, 989e12, "NVIDIA H100/H200 SXM data sheets: BF16 tensor core 1,979 TFLOPS with sparsity, "
                                "989 dense");
        if (strcmp(device, "h100") == 0)
            set(d, DM_HBM, 3350e9, "H100 SXM data sheet: HBM3 3.35 TB/s");
        else
            set(d, DM_HBM, 4800e9, "H200 SXM data sheet: HBM3e 4.8 TB/s");
        set(d, DM_NVLINK, 450e9, "H100/H200 SXM data sheets: NVLink 900 GB/s (both directions)");
        set(d, DM_PCIE, 64e9, "data sheet: PCIe Gen5 128 GB/s (both directions)");
        set(d, DM_MATMUL_EFF, 0.60,
            "assumed: H100 bf16 GEMMs at these shapes reach 600-700 TFLOP/s of 989; 0.60 for the "
            "step's mix");
        set(d, DM_ATTN_EFF, 0.50,
            "FlashAttention-3 paper (Shah et al. 2024, arXiv 2407.08608) Figs. 5-6, H100 SXM, BF16, causal, "
            "head dim 128: forward 600-640 TFLOP/s, backward 450-500 at 8k-16k (read from the figures); "
            "forward+backward about 0.5 of peak");
        set(d, DM_ATTN_HALF, 1000,
            "the same figures: about half the long-sequence rate at 1k tokens (our fit of s/(s+1000))");
    }
    set(d, DM_MEM_EFF, 0.70,
        "assumed: PyTorch's elementwise kernels reach about 70% of HBM bandwidth (STREAM-like copies "
        "reach 80-90%)");
    set(d, DM_LAUNCH, 5e-6, "assumed: a CUDA kernel launch from PyTorch eager costs about 5 us of host time");
    set(d, DM_KERNELS, 30,
        "assumed: an unfused Hugging Face Llama layer in PyTorch eager runs about 30 kernels per forward "
        "(norms, projections, RoPE, attention, SwiGLU, residuals)");
    set(d, DM_GATHER_LAT, 1e-3,
        "assumed: DeepSpeed ZeRO-3 fetches and releases each layer's parameters through Python hooks "
        "and a NCCL call, about 1 ms per layer and pass besides the bytes");
    set(d, DM_FRAMEWORK, 1.0,
        "assumed: issue #22 reads LongAlign's naive/sorted ratio as a fixed cost per micro-step of about "
        "half a sorted micro-step's compute (about 2 s for a 7B model on an A800 at the mix's mean "
        "length); one value for every model and device, set from the paper's table, so the check of "
        "that ratio is not independent of it");
    return 0;
}

const char *dm_comm_system(const char *device)
{
    return strcmp(device, "h200") == 0 ? "h100" : device;
}

int dm_set_option(DeviceModel *d, const char *option, const char *value, char *err, size_t errlen)
{
    for (int i = 0; DM_PARAM_OPTIONS[i]; i++) {
        if (strcmp(option, DM_PARAM_OPTIONS[i]) != 0) continue;
        double x;
        int share = i == DM_MATMUL_EFF || i == DM_ATTN_EFF || i == DM_MEM_EFF;
        if (parse_f64(value, 0, share ? 1 : 1e12, &x) != 0 || !(x > 0)) {
            snprintf(err, errlen, "--%s must be a number %s (got '%s')", option,
                     share ? "in (0, 1]" : "above 0", QUOTE(value));
            return -1;
        }
        d->p[i].value = x * OPTION_SCALE[i];
        snprintf(d->p[i].source, sizeof d->p[i].source, "option --%s %s", option, value);
        return 1;
    }
    return 0;
}

/* ---- counts ---- */

double dm_matmul_flops_per_token(const ModelConfig *m)
{
    const double C = m->hidden, F = m->intermediate, D = m->head_dim, H = m->heads, K = m->kv_heads;
    double layer = C * (H + 2 * K) * D + H * D * C + 3 * C * F;   /* qkv, o, gate+up+down */
    return 2 * (m->layers * layer + m->vocab * C);                /* + the head; embedding is a lookup */
}

double dm_attn_fwd_flops(const ModelConfig *m, double s)
{
    return m->layers * 4.0 * (s * s / 2) * m->heads * m->head_dim;
}

double dm_mem_bytes_per_token(const ModelConfig *m)
{
    const double C = m->hidden, F = m->intermediate, D = m->head_dim, H = m->heads, K = m->kv_heads;
    /* bf16, each op reading its inputs and writing its output once: 2 RMSNorms (2C each, x2
     * bytes), RoPE on q and k (2 (H+K) D, x2), SwiGLU (reads gate and up, writes one: 3F, x2),
     * two residual adds (3C each, x2). */
    double layer = 2 * (2 * 2 * C) + 2 * 2 * (H + K) * D + 2 * 3 * F + 2 * 2 * 3 * C;
    /* final norm; cross-entropy upcasts the logits to fp32, writes and reads them (8V). */
    return m->layers * layer + 4 * C + 8.0 * m->vocab;
}

double dm_attn_eff(const DeviceModel *d, const ModelConfig *m, double s)
{
    /* Head dim below 128 runs slower (FA2 Fig. 5: about 0.88x at 64); above, as 128. */
    double hd = m->head_dim >= 128 ? 1.0 : 0.76 + 0.24 * (m->head_dim / 128.0);
    return d->p[DM_ATTN_EFF].value * hd * s / (s + d->p[DM_ATTN_HALF].value);
}

/* forward + backward (2x forward for GEMMs, 2.5x for flash attention) + the recomputed forward */
static double passes(const DeviceModel *d, double bwd) { return 1 + bwd + (d->recompute ? 1 : 0); }

static double attn_seconds(const DeviceModel *d, const ModelConfig *m, double s)
{
    if (s <= 0) return 0;
    return passes(d, 2.5) * dm_attn_fwd_flops(m, s) / (d->p[DM_PEAK].value * dm_attn_eff(d, m, s));
}

void dm_micro_batch(const DeviceModel *d, const ModelConfig *m, const Plan *p, const MicroBatch *mb, DmMbTime *out)
{
    memset(out, 0, sizeof *out);
    if (mb->n_rows == 0) return;
    double tokens = 0;
    for (int32_t r = 0; r < mb->n_rows; r++) {
        const Row *row = &p->rows[mb->first_row + r];
        double computed = row->padded_len > row->tokens ? row->padded_len : row->tokens;
        for (int32_t k = 0; k < row->n_segments; k++) {
            double s = p->segs[row->first_segment + k].len;
            if (k == row->n_segments - 1) s += computed - row->tokens;   /* pads extend the last sequence */
            out->attn_s += attn_seconds(d, m, s);
        }
        if (d->pack_compute == DM_PACK_FULL && row->capacity > computed) {
            out->attn_s += attn_seconds(d, m, row->capacity - computed);   /* the tail: a segment of its own */
            computed = row->capacity;
        }
        tokens += computed;
    }
    const double peak = d->p[DM_PEAK].value;
    out->computed_tokens = tokens;
    out->matmul_s = tokens * passes(d, 2) * dm_matmul_flops_per_token(m) / (peak * d->p[DM_MATMUL_EFF].value);
    out->mem_s = tokens * passes(d, 2) * dm_mem_bytes_per_token(m) / (d->p[DM_HBM].value * d->p[DM_MEM_EFF].value);
    out->launch_s = (passes(d, 2) * m->layers * d->p[DM_KERNELS].value + 20) * d->p[DM_LAUNCH].value;
    out->total_s = out->matmul_s + out->attn_s + out->mem_s + out->launch_s;
}

double dm_shape_seconds(const DeviceModel *d, const ModelConfig *m, double computed_tokens, double sum_seq_len_sq)
{
    if (computed_tokens <= 0) return 0;
    const double peak = d->p[DM_PEAK].value, s_mean = sum_seq_len_sq / computed_tokens;
    double matmul = computed_tokens * passes(d, 2) * dm_matmul_flops_per_token(m) / (peak * d->p[DM_MATMUL_EFF].value);
    double attn = s_mean > 0 ? passes(d, 2.5) * dm_attn_fwd_flops(m, 1) * sum_seq_len_sq / (peak * dm_attn_eff(d, m, s_mean))
                             : 0;
    double mem = computed_tokens * passes(d, 2) * dm_mem_bytes_per_token(m) / (d->p[DM_HBM].value * d->p[DM_MEM_EFF].value);
    return matmul + attn + mem + (passes(d, 2) * m->layers * d->p[DM_KERNELS].value + 20) * d->p[DM_LAUNCH].value;
}

/* ---- a whole plan ---- */

void dm_predict_plan(const DeviceModel *d, const ModelConfig *m, const CommConfig *c, const Plan *p,
                     DmPlanPrediction *out)
{
    memset(out, 0, sizeof *out);
    const int W = p->cfg.world_size;
    comm_cost(c, m, W, &out->comm);
    /* What the comm model leaves out (docs/device-model.md): under ZeRO-3 with activation
     * checkpointing the recomputed forward gathers the parameters once more (and, offloaded,
     * uploads the shard once more); and each gather or scatter is per layer, with a fixed cost. */
    double extra_micro = 0;
    const int zero3 = c->kind == COMM_ZERO3 || c->kind == COMM_ZERO3_OFFLOAD;
    if (zero3) {
        double S = (double)c->elem_bytes * (double)model_param_count(m);
        if (d->recompute) {
            extra_micro += (W - 1.0) / W * S / out->comm.bus_Bps + (W - 1) * c->latency_s;
            if (c->kind == COMM_ZERO3_OFFLOAD) extra_micro += S / W / c->pcie_h2d_Bps;
        }
        extra_micro += (d->recompute ? 4 : 3) * (m->layers + 2) * d->p[DM_GATHER_LAT].value;
    }
    /* GPU AdamW per step over the rank's share of the parameters (30 bytes each, as CPU Adam's
     * count in the comm model); none when it runs on the host. */
    double opt = 0;
    if (!out->comm.optimizer_on_host)
        opt = 30.0 * (double)model_param_count(m) / (zero3 ? W : 1) / (d->p[DM_HBM].value * d->p[DM_MEM_EFF].value);

    const double flops_tok = dm_matmul_flops_per_token(m);
    double model_flops = 0;
    const int A = p->micro_steps;
    /* Each rank's time at a sync point: t per micro-step, acc summed over the step (--sync step). */
    double *t = calloc((size_t)W, sizeof *t);
    double *acc = p->cfg.sync == SYNC_STEP ? calloc((size_t)W, sizeof *acc) : NULL;
    if (!t || (p->cfg.sync == SYNC_STEP && !acc)) {   /* out of memory: a zeroed prediction */
        free(t);
        free(acc);
        return;
    }
    for (int s = 0; s < p->n_steps; s++) {
        int step_work = 0;
        if (acc) memset(acc, 0, (size_t)W * sizeof *acc);
        for (int u = 0; u < A; u++) {
            int work = 0;
            memset(t, 0, (size_t)W * sizeof *t);
            for (int r = 0; r < W; r++) {
                const MicroBatch *mb = plan_mb(p, s, u, r);
                if (mb->n_rows == 0) continue;
                work = 1;
                DmMbTime mt;
                dm_micro_batch(d, m, p, mb, &mt);
                out->matmul_s += mt.matmul_s;
                out->attn_s += mt.attn_s;
                out->mem_s += mt.mem_s;
                out->launch_s += mt.launch_s;
                out->computed_tokens += mt.computed_tokens;
                for (int32_t k = 0; k < mb->n_rows; k++) {
                    const Row *row = &p->rows[mb->first_row + k];
                    out->real_tokens += row->tokens;
                    model_flops += 3 * flops_tok * row->tokens;
                    for (int32_t g = 0; g < row->n_segments; g++)
                        model_flops += 3.5 * dm_attn_fwd_flops(m, p->segs[row->first_segment + g].len);
                }
                t[r] = mt.total_s;
                if (acc) acc[r] += mt.total_s;
            }
            if (!work) continue;
            step_work = 1;
            out->micro_steps_with_work++;
            if (!acc) {   /* a sync point per micro-step; the bubble as the mean rank's idle time */
                double idle = 0;
                out->compute_seconds += sync_point_close(t, W, &idle);
                out->bubble_seconds += idle / W;
            }
        }
        if (acc && step_work) {
            double idle = 0;
            out->compute_seconds += sync_point_close(acc, W, &idle);
            out->bubble_seconds += idle / W;
        }
        if (step_work) out->steps_with_work++;
    }
    const double nm = (double)out->micro_steps_with_work, ns = (double)out->steps_with_work;
    out->comm_seconds = nm * (out->comm.per_micro_step_s + extra_micro) + ns * out->comm.per_step_s;
    out->framework_seconds = nm * d->p[DM_FRAMEWORK].value;
    out->optimizer_seconds = ns * opt;
    free(t);
    free(acc);
    out->wall_seconds = out->compute_seconds + out->comm_seconds + out->framework_seconds + out->optimizer_seconds;
    if (out->wall_seconds > 0) {
        out->bubble_fraction = out->bubble_seconds / out->wall_seconds;
        out->comm_share = out->comm_seconds / out->wall_seconds;
        out->tokens_per_s = out->real_tokens / out->wall_seconds;
        out->mfu = model_flops / (W * d->p[DM_PEAK].value * out->wall_seconds);
    }
}

json_t *dm_prediction_to_json(const DeviceModel *d, const ModelConfig *m, const CommConfig *c,
                              const DmPlanPrediction *r)
{
    json_t *params = json_object();
    for (int i = 0; i < DM_N_PARAMS; i++)
        json_object_set_new(params, DM_PARAM_OPTIONS[i],
                            json_pack("{s:f, s:s, s:s}", "value", d->p[i].value, "unit", UNIT[i], "source",
                                      d->p[i].source));
    json_t *o = json_pack("{s:s, s:s, s:I, s:b, s:s}", "device", d->device, "model", m->name,
                          "params", (json_int_t)model_param_count(m), "recompute", d->recompute, "pack_compute",
                          d->pack_compute == DM_PACK_FULL ? "full" : "real");
    json_object_set_new(o, "wall_seconds", json_real(r->wall_seconds));
    json_object_set_new(o, "wall_hours", json_real(r->wall_seconds / 3600));
    json_object_set_new(o, "tokens_per_s", json_real(r->tokens_per_s));
    json_object_set_new(o, "mfu", json_real(r->mfu));
    json_object_set_new(o, "bubble_fraction", json_real(r->bubble_fraction));
    json_object_set_new(o, "comm_seconds", json_real(r->comm_seconds));
    json_object_set_new(o, "comm_share", json_real(r->comm_share));
    json_object_set_new(o, "compute_seconds", json_real(r->compute_seconds));
    json_object_set_new(o, "bubble_seconds", json_real(r->bubble_seconds));
    json_object_set_new(o, "framework_seconds", json_real(r->framework_seconds));
    json_object_set_new(o, "optimizer_seconds", json_real(r->optimizer_seconds));
    json_object_set_new(o, "real_tokens", json_real(r->real_tokens));
    json_object_set_new(o, "computed_tokens", json_real(r->computed_tokens));
    json_object_set_new(o, "micro_steps_with_work", json_integer(r->micro_steps_with_work));
    json_object_set_new(o, "steps_with_work", json_integer(r->steps_with_work));
    json_object_set_new(o, "gpu_seconds",
                        json_pack("{s:f, s:f, s:f, s:f}", "matmul", r->matmul_s, "attention", r->attn_s,
                                  "memory_bound", r->mem_s, "launch", r->launch_s));
    json_object_set_new(o, "parameters", params);
    json_object_set_new(o, "communication", comm_to_json(c, &r->comm));
    return o;
}
