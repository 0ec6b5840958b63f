/* The communication model: what data parallelism costs beyond the compute the runner measures.
 *
 * Kept apart from the measured compute on purpose (DESIGN.md, "Measurements"): a figure here is
 * modelled from byte counts and link bandwidths unless it says it was measured. Formulas,
 * defaults and their sources: docs/communication.md.
 *
 * Byte counts follow the model actually run: its parameter count P, at 2 bytes per element
 * (bf16, what a mixed-precision DeepSpeed run communicates: bf16 parameters and gradients), even
 * when the step itself ran in fp32 on the CPU backend. */
#ifndef LABENCH_COMM_H
#define LABENCH_COMM_H

#include <jansson.h>
#include <stddef.h>

#include "model/config.h"
#include "bench/comm/bandwidth.h"

typedef enum {
    COMM_NONE,          /* compute only */
    COMM_DDP,           /* one gradient all-reduce per optimizer step */
    COMM_ZERO3,         /* ZeRO-3: gathers in forward and backward, reduce-scatter, every micro-step */
    COMM_ZERO3_OFFLOAD  /* ZeRO-3 with parameters and optimizer on the CPU (LongAlign's setup) */
} CommKind;

/* Where a figure of a CommConfig came from; comm_describe and comm_to_json say it. */
typedef enum { COMM_SRC_SYSTEM, COMM_SRC_OPTION, COMM_SRC_MEASURED } CommSource;

/* Bandwidths are bytes per second (1 GB/s = 1e9 B/s). */
typedef struct {
    CommKind kind;
    char system[16];         /* "a100", "a800", "h100" */
    double link_Bps;         /* NVLink, per GPU and per direction, nominal */
    double net_Bps;          /* inter-node network, per node and per direction (all its NICs), nominal */
    int gpus_per_node;       /* rings of more ranks than this cross the network */
    double efficiency;       /* share of link_Bps / net_Bps a ring collective achieves */
    double pcie_h2d_Bps;     /* host->device, per GPU, achieved (not nominal) */
    double pcie_d2h_Bps;     /* device->host, per GPU, achieved */
    double host_Bps;         /* host memory bandwidth per node achieved by CPU Adam; 0: leave it out */
    double latency_s;        /* per ring step of a collective */
    int elem_bytes;          /* bytes per communicated parameter or gradient: 2 (bf16) */
    CommSource src_link, src_net, src_efficiency, src_pcie, src_host, src_latency;
} CommConfig;

/* What one rank pays, for a given model and world size. Every time is already divided by the
 * bandwidth it uses; the runner adds per_micro_step_s once per micro-step that has work and
 * per_step_s once per optimizer step (docs/communication.md, "Wall time"). */
typedef struct {
    double per_micro_step_s;       /* collective_micro_s + pcie_micro_s */
    double per_step_s;             /* collective_step_s + host_step_s */
    double collective_micro_s;     /* ZeRO-3 gathers and reduce-scatter (NVLink / network) */
    double pcie_micro_s;           /* offload: parameter uploads and gradient download */
    double collective_step_s;      /* DDP all-reduce */
    double host_step_s;            /* offload: CPU Adam, host memory bound */
    double link_bytes_per_micro_step, pcie_bytes_per_micro_step;   /* per rank */
    double link_bytes_per_step, host_bytes_per_step;               /* per rank; host: per node */
    double bytes_per_micro_step, bytes_per_step;                   /* sums of the above */
    double bus_Bps;                /* effective bandwidth of the collectives at this world size */
    int optimizer_on_host;         /* 1 (zero3-offload): the optimizer runs on the CPU, so the GPU
                                      optimizer time the runner measures is not part of the wall */
} CommCost;

/* Names, NULL-terminated, in enum order / in the order --help lists them. */
extern const char *const COMM_KINDS[];
extern const char *const COMM_SYSTEMS[];
#define COMM_DEFAULT_SYSTEM "a800"   /* LongAlign trained on 8x A800 80G */

const char *comm_kind_name(CommKind k);
/* "none" | "ddp" | "zero3" | "zero3-offload" -> *out. 0, or -1 when unknown. */
int comm_parse(const char *name, CommKind *out);
/* Fills every figure of c from a system's defaults, sources COMM_SRC_SYSTEM, kind COMM_NONE.
 * 0, or -1 when the system is unknown (c untouched). */
int comm_system_defaults(const char *system, CommConfig *c);

/* ---- Command-line options, shared by `labench train` and `labench predict` ---- */

/* Raw option values; unset ones stay negative (or NULL) until comm_config_resolve. */
typedef struct {
    const char *comm, *system;
    double nvlink_gbps, net_gbps, pcie_gbps, latency_us, efficiency, host_mem_gbps;
    long long gpus_per_node;
} CommOptions;

/* The long option names comm_option takes (without "--"), NULL-terminated; each needs a value. */
extern const char *const COMM_OPTION_NAMES[];
/* The --help lines for them. */
extern const char COMM_USAGE[];

void comm_options_init(CommOptions *o);
/* Takes one option by its long name (no "--"). 1: taken; 0: not a communication option;
 * -1: a bad value, with the message (naming the option) in err. */
int comm_option(CommOptions *o, const char *name, const char *value, char *err, size_t errlen);
/* Applies the system defaults, then the options given. 0, or -1 with err. */
int comm_config_resolve(const CommOptions *o, CommConfig *c, char *err, size_t errlen);

/* ---- The model ---- */

/* Costs for a model of n_params parameters on world_size ranks (>= 1). */
void comm_cost_params(const CommConfig *c, double n_params, int world_size, CommCost *out);
/* The same, for the model that ran (model_param_count). */
void comm_cost(const CommConfig *c, const ModelConfig *m, int world_size, CommCost *out);

/* One line saying what is modelled and what measured, e.g. "modelled: zero3-offload, a800
 * defaults: ...; PCIe measured ...". Returns buf. */
const char *comm_describe(const CommConfig *c, char *buf, size_t n);

/* {"model": kind, "system", "description", the figures with their sources, and (cost non-NULL)
 * the costs}: for the results JSON's config.comm and predict's output. New reference. */
json_t *comm_to_json(const CommConfig *c, const CommCost *cost);

/* Replaces the PCIe figures with measured ones (comm_measure_pcie) and marks them measured. */
void comm_set_measured_pcie(CommConfig *c, double h2d_Bps, double d2h_Bps);

/* Measurements on a real GPU (comm_measure_pcie, comm_measure_collectives): bench/comm/bandwidth.h. */

#endif
