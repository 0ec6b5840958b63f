/* The communication model (formulas and sources of every default: docs/communication.md). */
#include "bench/comm/comm_model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/parse.h"

const char *const COMM_KINDS[] = {"none", "ddp", "zero3", "zero3-offload", NULL};
const char *const COMM_SYSTEMS[] = {"a100", "a800", "h100", NULL};

/* CPU Adam touches, per parameter: the fp32 master weight, first and second moments, each read
 * and written (3 x 4 x 2 = 24 bytes), the fp32 gradient read (4) and the bf16 weight written
 * for the next upload (2). */
#define ADAM_HOST_BYTES_PER_PARAM 30.0

#define GB 1e9

const char *comm_kind_name(CommKind k)
{
    return k >= COMM_NONE && k <= COMM_ZERO3_OFFLOAD ? COMM_KINDS[k] : "?";
}

int comm_parse(const char *name, CommKind *out)
{
    for (int i = 0; name && COMM_KINDS[i]; i++)
        if (strcmp(name, COMM_KINDS[i]) == 0) {
            *out = (CommKind)i;
            return 0;
        }
    return -1;
}

int comm_system_defaults(const char *system, CommConfig *c)
{
    /* Nominal link figures are per direction; PCIe and host memory figures are what a transfer
     * achieves. Sources in docs/communication.md, "Defaults". */
    double link, net, pcie, host_peak;
    if (!system) return -1;
    if (strcmp(system, "a100") == 0) {
        link = 300 * GB;             /* NVLink3: 600 GB/s total */
        net = 8 * 25 * GB;           /* 8 x HDR 200 Gb/s per node */
        pcie = 25 * GB;              /* Gen4 x16: 32 GB/s nominal */
        host_peak = 2 * 204.8 * GB;  /* 2 sockets x 8 channels DDR4-3200 */
    } else if (strcmp(system, "a800") == 0) {
        link = 200 * GB;             /* NVLink limited to 400 GB/s total */
        net = 8 * 25 * GB;           /* assumed as A100 */
        pcie = 25 * GB;
        host_peak = 2 * 204.8 * GB;
    } else if (strcmp(system, "h100") == 0) {
        link = 450 * GB;             /* NVLink4: 900 GB/s total */
        net = 8 * 50 * GB;           /* 8 x NDR 400 Gb/s per node */
        pcie = 50 * GB;              /* Gen5 x16: 64 GB/s nominal */
        host_peak = 2 * 307.2 * GB;  /* 2 sockets x 8 channels DDR5-4800 */
    } else {
        return -1;
    }
    memset(c, 0, sizeof *c);
    c->kind = COMM_NONE;
    snprintf(c->system, sizeof c->system, "%s", system);
    c->link_Bps = link;
    c->net_Bps = net;
    c->gpus_per_node = 8;
    c->efficiency = 0.8;
    c->pcie_h2d_Bps = c->pcie_d2h_Bps = pcie;
    c->host_Bps = 0.5 * host_peak;
    c->latency_s = 5e-6;
    c->elem_bytes = 2;
    c->src_link = c->src_net = c->src_efficiency = c->src_pcie = c->src_host = c->src_latency = COMM_SRC_SYSTEM;
    return 0;
}

/* ---- options ---- */

const char *const COMM_OPTION_NAMES[] = {"comm", "system", "nvlink-gbps", "net-gbps", "gpus-per-node",
                                         "pcie-gbps", "comm-latency-us", "comm-efficiency", "host-mem-gbps", NULL};

const char COMM_USAGE[] =
    "Communication (modelled, reported apart from the measured compute; docs/communication.md):\n"
    "  --comm M            none | ddp | zero3 | zero3-offload (LongAlign: DeepSpeed ZeRO-3 + CPU offload)\n"
    "  --system S          a100 | a800 | h100: default bandwidths (default " COMM_DEFAULT_SYSTEM ")\n"
    "  --nvlink-gbps F     NVLink GB/s per GPU per direction, nominal (a100 300, a800 200, h100 450)\n"
    "  --net-gbps F        inter-node GB/s per node per direction, all NICs (a100/a800 200, h100 400)\n"
    "  --gpus-per-node N   rings over more ranks cross the network (default 8)\n"
    "  --comm-efficiency F share of the nominal bandwidth a ring collective achieves (default 0.8)\n"
    "  --pcie-gbps F       host<->device GB/s per GPU per direction, achieved (a100/a800 25, h100 50)\n"
    "  --host-mem-gbps F   host memory GB/s per node for CPU Adam, achieved (0: leave CPU Adam out)\n"
    "  --comm-latency-us F latency per ring step of a collective (default 5)\n";

void comm_options_init(CommOptions *o)
{
    memset(o, 0, sizeof *o);
    o->nvlink_gbps = o->net_gbps = o->pcie_gbps = o->latency_us = o->efficiency = o->host_mem_gbps = -1;
    o->gpus_per_node = -1;
}

static int real_value(const char *name, const char *v, double min, double max, double *out, char *err,
                      size_t errlen)
{
    if (parse_f64(v, min, max, out) == 0) return 1;
    snprintf(err, errlen, "--%s must be a number from %g to %g (got '%s')", name, min, max, QUOTE(v));
    return -1;
}

int comm_option(CommOptions *o, const char *name, const char *v, char *err, size_t errlen)
{
    if (strcmp(name, "comm") == 0) {
        CommKind k;
        if (comm_parse(v, &k) != 0) {
            snprintf(err, errlen, "--comm must be none, ddp, zero3 or zero3-offload (got '%s')", QUOTE(v));
            return -1;
        }
        o->comm = v;
        return 1;
    }
    if (strcmp(name, "system") == 0) {
        CommConfig tmp;
        if (comm_system_defaults(v, &tmp) != 0) {
            snprintf(err, errlen, "--system must be a100, a800 or h100 (got '%s')", QUOTE(v));
            return -1;
        }
        o->system = v;
        return 1;
    }
    if (strcmp(name, "nvlink-gbps") == 0) return real_value(name, v, 1e-3, 1e6, &o->nvlink_gbps, err, errlen);
    if (strcmp(name, "net-gbps") == 0) return real_value(name, v, 1e-3, 1e6, &o->net_gbps, err, errlen);
    if (strcmp(name, "pcie-gbps") == 0) return real_value(name, v, 1e-3, 1e6, &o->pcie_gbps, err, errlen);
    if (strcmp(name, "host-mem-gbps") == 0) return real_value(name, v, 0, 1e6, &o->host_mem_gbps, err, errlen);
    if (strcmp(name, "comm-latency-us") == 0) return real_value(name, v, 0, 1e6, &o->latency_us, err, errlen);
    if (strcmp(name, "comm-efficiency") == 0) {
        if (parse_f64(v, 0, 1, &o->efficiency) == 0 && o->efficiency > 0) return 1;
        snprintf(err, errlen, "--comm-efficiency must be a number in (0, 1] (got '%s')", QUOTE(v));
        return -1;
    }
    if (strcmp(name, "gpus-per-node") == 0) {
        if (parse_i64(v, 1, 1 << 20, &o->gpus_per_node) == 0) return 1;
        snprintf(err, errlen, "--gpus-per-node must be an integer from 1 to %d (got '%s')", 1 << 20, QUOTE(v));
        return -1;
    }
    return 0;
}

int comm_config_resolve(const CommOptions *o, CommConfig *c, char *err, size_t errlen)
{
    const char *system = o->system ? o->system : COMM_DEFAULT_SYSTEM;
    if (comm_system_defaults(system, c) != 0) {
        snprintf(err, errlen, "--system must be a100, a800 or h100 (got '%s')", QUOTE(system));
        return -1;
    }
    const char *kind = o->comm ? o->comm : "none";
    if (comm_parse(kind, &c->kind) != 0) {
        snprintf(err, errlen, "--comm must be none, ddp, zero3 or zero3-offload (got '%s')", QUOTE(kind));
        return -1;
    }
    if (o->nvlink_gbps > 0) {
        c->link_Bps = o->nvlink_gbps * GB;
        c->src_link = COMM_SRC_OPTION;
    }
    if (o->net_gbps > 0) {
        c->net_Bps = o->net_gbps * GB;
        c->src_net = COMM_SRC_OPTION;
    }
    if (o->gpus_per_node > 0) {
        c->gpus_per_node = (int)o->gpus_per_node;
        c->src_net = COMM_SRC_OPTION;
    }
    if (o->pcie_gbps > 0) {
        c->pcie_h2d_Bps = c->pcie_d2h_Bps = o->pcie_gbps * GB;
        c->src_pcie = COMM_SRC_OPTION;
    }
    if (o->host_mem_gbps >= 0) {
        c->host_Bps = o->host_mem_gbps * GB;
        c->src_host = COMM_SRC_OPTION;
    }
    if (o->latency_us >= 0) {
        c->latency_s = o->latency_us * 1e-6;
        c->src_latency = COMM_SRC_OPTION;
    }
    if (o->efficiency > 0) {
        c->efficiency = o->efficiency;
        c->src_efficiency = COMM_SRC_OPTION;
    }
    return 0;
}

void comm_set_measured_pcie(CommConfig *c, double h2d_Bps, double d2h_Bps)
{
    c->pcie_h2d_Bps = h2d_Bps;
    c->pcie_d2h_Bps = d2h_Bps;
    c->src_pcie = COMM_SRC_MEASURED;
}

/* ---- the model ---- */

void comm_cost_params(const CommConfig *c, double n_params, int W, CommCost *out)
{
    memset(out, 0, sizeof *out);
    if (W < 1) W = 1;
    const double S = c->elem_bytes * n_params;          /* bf16 parameters, or bf16 gradients */
    const double ring = (double)(W - 1) / W;            /* share of S a ring moves per rank */
    const double steps = W - 1;                         /* ring steps of one gather / scatter */
    const double nominal = W <= c->gpus_per_node ? c->link_Bps : fmin(c->link_Bps, c->net_Bps);
    out->bus_Bps = c->efficiency * nominal;
    if (c->kind == COMM_NONE) return;

    if (c->kind == COMM_DDP) {
        /* One ring all-reduce of the gradients per optimizer step: a reduce-scatter and an
         * all-gather, each moving (W-1)/W x S per rank over W-1 ring steps. */
        if (W > 1) {
            out->link_bytes_per_step = 2 * ring * S;
            out->collective_step_s = out->link_bytes_per_step / out->bus_Bps + 2 * steps * c->latency_s;
        }
    } else {
        /* ZeRO-3, every micro-step: all-gather the parameters in forward, again in backward,
         * reduce-scatter the gradients. */
        if (W > 1) {
            out->link_bytes_per_micro_step = 3 * ring * S;
            out->collective_micro_s = out->link_bytes_per_micro_step / out->bus_Bps + 3 * steps * c->latency_s;
        }
        if (c->kind == COMM_ZERO3_OFFLOAD) {
            /* Each rank keeps its 1/W shard of parameters and optimizer state on the host: the
             * shard goes up before each gather (forward, backward) and its gradient shard comes
             * down after the reduce-scatter. CPU Adam then updates the node's shards once per
             * step, bound by host memory bandwidth; the node holds min(W, gpus_per_node) ranks. */
            const double shard = S / W;
            out->pcie_bytes_per_micro_step = 3 * shard;
            out->pcie_micro_s = 2 * shard / c->pcie_h2d_Bps + shard / c->pcie_d2h_Bps;
            const int ranks_on_node = W < c->gpus_per_node ? W : c->gpus_per_node;
            out->host_bytes_per_step = ADAM_HOST_BYTES_PER_PARAM * n_params * ranks_on_node / W;
            if (c->host_Bps > 0) out->host_step_s = out->host_bytes_per_step / c->host_Bps;
            out->optimizer_on_host = 1;
        }
    }
    out->per_micro_step_s = out->collective_micro_s + out->pcie_micro_s;
    out->per_step_s = out->collective_step_s + out->host_step_s;
    out->bytes_per_micro_step = out->link_bytes_per_micro_step + out->pcie_bytes_per_micro_step;
    out->bytes_per_step = out->link_bytes_per_step + out->host_bytes_per_step;
}

void comm_cost(const CommConfig *c, const ModelConfig *m, int world_size, CommCost *out)
{
    comm_cost_params(c, (double)model_param_count(m), world_size, out);
}

/* ---- describing it ---- */

static const char *src_name(const CommConfig *c, CommSource s, char *buf, size_t n)
{
    if (s == COMM_SRC_MEASURED) return "measured";
    if (s == COMM_SRC_OPTION) return "option";
    snprintf(buf, n, "%s default", c->system);
    return buf;
}

const char *comm_describe(const CommConfig *c, char *buf, size_t n)
{
    char s1[32], s2[32], s3[32], s4[32], s5[32];
    if (c->kind == COMM_NONE) {
        snprintf(buf, n, "none: compute only, no communication modelled");
        return buf;
    }
    const char *what = c->kind == COMM_DDP ? "ring all-reduce of bf16 gradients once per optimizer step"
                                           : "all-gather of bf16 parameters in forward and in backward and "
                                             "reduce-scatter of bf16 gradients every micro-step";
    int k = snprintf(buf, n,
                     "modelled %s on %s: %s; NVLink %.0f GB/s/direction (%s) within %d GPUs/node, network "
                     "%.0f GB/s/node/direction (%s) beyond, x %.2f efficiency (%s), %.1f us per ring step (%s)",
                     comm_kind_name(c->kind), c->system, what, c->link_Bps / GB,
                     src_name(c, c->src_link, s1, sizeof s1), c->gpus_per_node, c->net_Bps / GB,
                     src_name(c, c->src_net, s2, sizeof s2), c->efficiency,
                     src_name(c, c->src_efficiency, s3, sizeof s3), c->latency_s * 1e6,
                     src_name(c, c->src_latency, s4, sizeof s4));
    if (c->kind == COMM_ZERO3_OFFLOAD && k >= 0 && (size_t)k < n) {
        int k2 = snprintf(buf + k, n - (size_t)k,
                          "; PCIe %.1f GB/s up, %.1f GB/s down (%s) for the parameter shard (forward, backward) "
                          "and gradient shard each micro-step",
                          c->pcie_h2d_Bps / GB, c->pcie_d2h_Bps / GB, src_name(c, c->src_pcie, s1, sizeof s1));
        if (k2 > 0) k += k2;
        if ((size_t)k < n) {
            if (c->host_Bps > 0)
                k2 = snprintf(buf + k, n - (size_t)k, "; CPU Adam %.0f B/param at %.0f GB/s host memory (%s)",
                              ADAM_HOST_BYTES_PER_PARAM, c->host_Bps / GB, src_name(c, c->src_host, s5, sizeof s5));
            else
                k2 = snprintf(buf + k, n - (size_t)k, "; CPU Adam left out (--host-mem-gbps 0)");
            if (k2 > 0) k += k2;
        }
    }
    if (k >= 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, "; no overlap with compute");
    return buf;
}

json_t *comm_to_json(const CommConfig *c, const CommCost *cost)
{
    char d[1024], s[32];
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(comm_kind_name(c->kind)));
    json_object_set_new(o, "modelled", json_boolean(c->kind != COMM_NONE));
    json_object_set_new(o, "system", json_string(c->system));
    json_object_set_new(o, "description", json_string(comm_describe(c, d, sizeof d)));
    json_object_set_new(o, "bytes_per_element", json_integer(c->elem_bytes));
    json_object_set_new(o, "nvlink_GBps", json_real(c->link_Bps / GB));
    json_object_set_new(o, "nvlink_source", json_string(src_name(c, c->src_link, s, sizeof s)));
    json_object_set_new(o, "network_GBps_per_node", json_real(c->net_Bps / GB));
    json_object_set_new(o, "gpus_per_node", json_integer(c->gpus_per_node));
    json_object_set_new(o, "network_source", json_string(src_name(c, c->src_net, s, sizeof s)));
    json_object_set_new(o, "efficiency", json_real(c->efficiency));
    json_object_set_new(o, "efficiency_source", json_string(src_name(c, c->src_efficiency, s, sizeof s)));
    json_object_set_new(o, "pcie_h2d_GBps", json_real(c->pcie_h2d_Bps / GB));
    json_object_set_new(o, "pcie_d2h_GBps", json_real(c->pcie_d2h_Bps / GB));
    json_object_set_new(o, "pcie_source", json_string(src_name(c, c->src_pcie, s, sizeof s)));
    json_object_set_new(o, "host_memory_GBps", json_real(c->host_Bps / GB));
    json_object_set_new(o, "host_memory_source", json_string(src_name(c, c->src_host, s, sizeof s)));
    json_object_set_new(o, "latency_us", json_real(c->latency_s * 1e6));
    json_object_set_new(o, "latency_source", json_string(src_name(c, c->src_latency, s, sizeof s)));
    if (cost) {
        json_t *k = json_object();
        json_object_set_new(k, "per_micro_step_seconds", json_real(cost->per_micro_step_s));
        json_object_set_new(k, "per_step_seconds", json_real(cost->per_step_s));
        json_object_set_new(k, "collective_micro_step_seconds", json_real(cost->collective_micro_s));
        json_object_set_new(k, "pcie_micro_step_seconds", json_real(cost->pcie_micro_s));
        json_object_set_new(k, "collective_step_seconds", json_real(cost->collective_step_s));
        json_object_set_new(k, "host_optimizer_step_seconds", json_real(cost->host_step_s));
        json_object_set_new(k, "link_bytes_per_micro_step", json_real(cost->link_bytes_per_micro_step));
        json_object_set_new(k, "pcie_bytes_per_micro_step", json_real(cost->pcie_bytes_per_micro_step));
        json_object_set_new(k, "link_bytes_per_step", json_real(cost->link_bytes_per_step));
        json_object_set_new(k, "host_bytes_per_step", json_real(cost->host_bytes_per_step));
        json_object_set_new(k, "bus_GBps", json_real(cost->bus_Bps / GB));
        json_object_set_new(k, "optimizer_on_host", json_boolean(cost->optimizer_on_host));
        json_object_set_new(o, "cost", k);
    }
    return o;
}
