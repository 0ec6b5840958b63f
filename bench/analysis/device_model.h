/* The device model: the time of a micro-batch on a named GPU from the model's shape and the
 * micro-batch's rows and segments, and from it a whole plan's predicted wall time, without a
 * GPU. Every parameter carries its value and its source; docs/device-model.md has the formulas.
 *
 * No I/O here: the caller gives the config and the plan; the JSON is built, not written. */
#ifndef LABENCH_DEVICE_MODEL_H
#define LABENCH_DEVICE_MODEL_H

#include <jansson.h>
#include <stddef.h>

#include "bench/comm/comm_model.h"
#include "model/config.h"
#include "strategies/strategy.h"

/* The parameters, in the order --help and the JSON list them. */
typedef enum {
    DM_PEAK,          /* dense bf16 tensor-core peak, FLOP/s */
    DM_HBM,           /* HBM bandwidth, B/s */
    DM_NVLINK,        /* NVLink per GPU per direction, B/s (shown; the comm model uses its own) */
    DM_PCIE,          /* PCIe per direction, nominal, B/s (shown; likewise) */
    DM_MATMUL_EFF,    /* share of the peak the model's GEMMs reach */
    DM_ATTN_EFF,      /* share of the peak causal flash attention reaches at long segments, head dim 128 */
    DM_ATTN_HALF,     /* segment length at which attention reaches half of DM_ATTN_EFF */
    DM_MEM_EFF,       /* share of the HBM bandwidth the memory-bound kernels reach */
    DM_LAUNCH,        /* seconds per kernel launch */
    DM_KERNELS,       /* kernels per layer per forward pass */
    DM_GATHER_LAT,    /* ZeRO-3: seconds of fixed cost per per-layer gather (hooks, launch, sync) */
    DM_FRAMEWORK,     /* seconds of framework overhead per micro-step (data, hooks, Python) */
    DM_N_PARAMS
} DmParamId;

typedef struct {
    double value;
    char source[512];
} DmParam;

typedef enum { DM_PACK_REAL = 0, DM_PACK_FULL = 1 } DmPackCompute;

typedef struct {
    char device[16];          /* "a100", "a800", "h100", "h200", or "cpu" */
    DmParam p[DM_N_PARAMS];
    int recompute;            /* activation checkpointing: the forward runs twice */
    DmPackCompute pack_compute;   /* full: a pack computes its whole capacity (LongAlign) */
} DeviceModel;

extern const char *const DM_DEVICES[];        /* NULL-terminated */
extern const char *const DM_PARAM_OPTIONS[];  /* option name of each parameter (no "--"), by DmParamId */
extern const char DM_USAGE[];                 /* --help lines */

/* Fills d with a device's data-sheet figures and the shared assumptions. 0, or -1 (unknown). */
int dm_device_defaults(const char *device, DeviceModel *d);
/* The comm model's --system for a device (h200: h100's links, the same NVLink and PCIe). */
const char *dm_comm_system(const char *device);
/* Sets parameter `option` (a DM_PARAM_OPTIONS name) from its command-line text, in the option's
 * unit (TFLOP/s, GB/s, us, ...), marking it overridden. 1: taken; 0: not a device option; -1: a
 * bad value (zero, negative, not a number), named in err. */
int dm_set_option(DeviceModel *d, const char *option, const char *value, char *err, size_t errlen);

/* ---- counts (the tests check these by hand) ---- */

/* Matmul FLOPs per token of one forward pass: 2 x (layers' projection weights + the head). */
double dm_matmul_flops_per_token(const ModelConfig *m);
/* Causal attention FLOPs of one forward pass over a segment of s tokens, all layers:
 * 4 x s^2/2 x H x D per layer (flash-attn's own count). */
double dm_attn_fwd_flops(const ModelConfig *m, double s);
/* Bytes the memory-bound ops move per token in one forward pass (norms, RoPE, SwiGLU, residual
 * adds, all layers; cross-entropy on the logits). */
double dm_mem_bytes_per_token(const ModelConfig *m);
/* Attention efficiency at segment length s (share of peak). */
double dm_attn_eff(const DeviceModel *d, const ModelConfig *m, double s);

/* The model's time for one micro-batch (forward, backward, recompute) on one GPU. */
typedef struct {
    double matmul_s, attn_s, mem_s, launch_s, total_s;
    double computed_tokens;
} DmMbTime;
void dm_micro_batch(const DeviceModel *d, const ModelConfig *m, const Plan *p, const MicroBatch *mb, DmMbTime *out);

/* The same from a recorded micro-batch shape (a measured run's run.micro_batches_detail): the
 * segments' lengths are not recorded, so attention runs at the efficiency of the token-weighted
 * mean segment length, sum_sq / computed_tokens. 0 for an idle rank. */
double dm_shape_seconds(const DeviceModel *d, const ModelConfig *m, double computed_tokens, double sum_seq_len_sq);

/* A plan's predicted run on the device with the communication model. */
typedef struct {
    double wall_seconds;           /* all the plan's steps (all epochs) */
    double compute_seconds;        /* sum over sync points of the slowest rank's compute */
    double bubble_seconds;         /* sum over sync points and ranks of (slowest - own) / W */
    double comm_seconds;           /* comm model + ZeRO-3 recompute gathers + gather latencies */
    double framework_seconds;      /* framework overhead per micro-step with work */
    double optimizer_seconds;      /* GPU AdamW (0 when the optimizer is on the host) */
    double bubble_fraction;        /* bubble_seconds / wall */
    double comm_share;             /* comm_seconds / wall */
    double tokens_per_s;           /* real tokens (all ranks) / wall */
    double mfu;                    /* model FLOPs (6N + attention, no recompute) / (W x peak x wall) */
    double real_tokens, computed_tokens;
    double matmul_s, attn_s, mem_s, launch_s;   /* summed over every micro-batch of every rank */
    long long micro_steps_with_work, steps_with_work;
    CommCost comm;
} DmPlanPrediction;
void dm_predict_plan(const DeviceModel *d, const ModelConfig *m, const CommConfig *c, const Plan *p,
                     DmPlanPrediction *out);

/* {"device", "model", "recompute", "pack_compute", "wall_seconds", ..., "parameters": {name:
 * {"value", "unit", "source"}}}. New reference. */
json_t *dm_prediction_to_json(const DeviceModel *d, const ModelConfig *m, const CommConfig *c,
                              const DmPlanPrediction *r);

#endif
