/* The communication model: every formula against numbers worked out by hand, the defaults of
 * each system, the options, and what the results say is modelled and what measured. */
#include "tests/test_util.h"

#include "bench/comm/comm_model.h"
#include "model/config.h"

static CommConfig system_cfg(const char *system, CommKind kind)
{
    CommConfig c;
    assert_int_equal(0, comm_system_defaults(system, &c));
    c.kind = kind;
    return c;
}

static void test_system_defaults(void **state)
{
    (void)state;
    CommConfig c;
    /* A100 SXM: NVLink3 600 GB/s total = 300 per direction; PCIe Gen4 x16 ~25 achieved. */
    assert_int_equal(0, comm_system_defaults("a100", &c));
    assert_close(c.link_Bps, 300e9, 0, 1e-12);
    assert_close(c.pcie_h2d_Bps, 25e9, 0, 1e-12);
    assert_close(c.pcie_d2h_Bps, 25e9, 0, 1e-12);
    assert_close(c.net_Bps, 200e9, 0, 1e-12);
    /* A800: NVLink cut to 400 GB/s total = 200 per direction, the rest as A100. */
    assert_int_equal(0, comm_system_defaults("a800", &c));
    assert_close(c.link_Bps, 200e9, 0, 1e-12);
    assert_close(c.pcie_h2d_Bps, 25e9, 0, 1e-12);
    /* 2 sockets x 204.8 GB/s DDR4-3200, half achieved by CPU Adam. */
    assert_close(c.host_Bps, 204.8e9, 0, 1e-12);
    /* H100 SXM: NVLink4 900 total = 450 per direction; PCIe Gen5 ~50 achieved; 8 x 400 Gb/s NICs. */
    assert_int_equal(0, comm_system_defaults("h100", &c));
    assert_close(c.link_Bps, 450e9, 0, 1e-12);
    assert_close(c.pcie_h2d_Bps, 50e9, 0, 1e-12);
    assert_close(c.net_Bps, 400e9, 0, 1e-12);
    assert_close(c.host_Bps, 307.2e9, 0, 1e-12);
    /* Shared by every system. */
    assert_close(c.efficiency, 0.8, 0, 1e-12);
    assert_close(c.latency_s, 5e-6, 0, 1e-12);
    assert_int_equal(2, c.elem_bytes);
    assert_int_equal(8, c.gpus_per_node);
    assert_int_equal(COMM_NONE, c.kind);
    assert_int_equal(COMM_SRC_SYSTEM, c.src_pcie);
    assert_string_equal("h100", c.system);

    assert_int_equal(-1, comm_system_defaults("v100", &c));
    assert_int_equal(-1, comm_system_defaults(NULL, &c));
}

static void test_parse(void **state)
{
    (void)state;
    CommKind k = COMM_NONE;
    assert_int_equal(0, comm_parse("ddp", &k));
    assert_int_equal(COMM_DDP, k);
    assert_int_equal(0, comm_parse("zero3-offload", &k));
    assert_int_equal(COMM_ZERO3_OFFLOAD, k);
    assert_int_equal(0, comm_parse("none", &k));
    assert_int_equal(COMM_NONE, k);
    assert_int_equal(-1, comm_parse("zero2", &k));
    assert_int_equal(-1, comm_parse("", &k));
    assert_string_equal("zero3", comm_kind_name(COMM_ZERO3));
}

/* P = 1e9 parameters on A800 defaults: S = 2 bytes x 1e9 = 2e9 bytes (bf16), bus bandwidth
 * = 0.8 x 200e9 = 160e9 B/s, latency 5e-6 s per ring step, W = 8 (one node). */
static void test_ddp_by_hand(void **state)
{
    (void)state;
    CommConfig c = system_cfg("a800", COMM_DDP);
    CommCost k;
    comm_cost_params(&c, 1e9, 8, &k);
    /* all-reduce: 2 x (7/8) x 2e9 = 3.5e9 bytes; 3.5e9 / 160e9 = 0.021875 s;
     * latency 2 x 7 x 5e-6 = 7e-5 s; total 0.021945 s, once per optimizer step. */
    assert_close(k.bus_Bps, 160e9, 0, 1e-12);
    assert_close(k.link_bytes_per_step, 3.5e9, 0, 1e-12);
    assert_close(k.per_step_s, 0.021945, 0, 1e-9);
    assert_close(k.collective_step_s, 0.021945, 0, 1e-9);
    /* Nothing per micro-step: DDP with accumulation syncs once per step. */
    assert_true(k.per_micro_step_s == 0.0);
    assert_true(k.bytes_per_micro_step == 0.0);
    assert_int_equal(0, k.optimizer_on_host);

    /* One rank: nothing to reduce. */
    comm_cost_params(&c, 1e9, 1, &k);
    assert_true(k.per_step_s == 0.0 && k.per_micro_step_s == 0.0);
}

static void test_zero3_by_hand(void **state)
{
    (void)state;
    CommConfig c = system_cfg("a800", COMM_ZERO3);
    CommCost k;
    comm_cost_params(&c, 1e9, 8, &k);
    /* Per micro-step: gather (fwd) + gather (bwd) + reduce-scatter = 3 x (7/8) x 2e9 = 5.25e9 bytes;
     * 5.25e9 / 160e9 = 0.0328125 s; latency 3 x 7 x 5e-6 = 1.05e-4 s; total 0.0329175 s. */
    assert_close(k.link_bytes_per_micro_step, 5.25e9, 0, 1e-12);
    assert_close(k.per_micro_step_s, 0.0329175, 0, 1e-9);
    assert_true(k.per_micro_step_s > 0);
    assert_true(k.per_step_s == 0.0);   /* the optimizer step runs on the GPU: measured, not modelled */
    assert_true(k.pcie_micro_s == 0.0);

    /* H100, W = 64: 8 nodes, so the ring crosses the network: min(450, 400) x 0.8 = 320e9 B/s.
     * 3 x (63/64) x 2e9 = 5.90625e9 bytes -> 0.0184570313 s; latency 3 x 63 x 5e-6 = 9.45e-4 s. */
    c = system_cfg("h100", COMM_ZERO3);
    comm_cost_params(&c, 1e9, 64, &k);
    assert_close(k.bus_Bps, 320e9, 0, 1e-12);
    assert_close(k.per_micro_step_s, 5.90625e9 / 320e9 + 9.45e-4, 0, 1e-12);
    assert_close(k.per_micro_step_s, 0.0194020313, 1e-10, 0);
    /* Within one H100 node the ring stays on NVLink: 0.8 x 450e9 = 360e9. */
    comm_cost_params(&c, 1e9, 8, &k);
    assert_close(k.bus_Bps, 360e9, 0, 1e-12);
}

static void test_zero3_offload_by_hand(void **state)
{
    (void)state;
    CommConfig c = system_cfg("a800", COMM_ZERO3_OFFLOAD);
    CommCost k;
    comm_cost_params(&c, 1e9, 8, &k);
    /* ZeRO-3 part as above: 0.0329175 s. PCIe: each rank's shard is 2e9 / 8 = 2.5e8 bytes, up
     * twice (forward, backward) and its gradient shard down once: 7.5e8 bytes / 25e9 = 0.03 s.
     * Per micro-step 0.0629175 s. */
    assert_close(k.collective_micro_s, 0.0329175, 0, 1e-9);
    assert_close(k.pcie_bytes_per_micro_step, 7.5e8, 0, 1e-12);
    assert_close(k.pcie_micro_s, 0.03, 0, 1e-12);
    assert_close(k.per_micro_step_s, 0.0629175, 0, 1e-9);
    assert_close(k.bytes_per_micro_step, 5.25e9 + 7.5e8, 0, 1e-12);
    /* Per step, CPU Adam: 30 bytes/param x 1e9 params x (8 ranks on the node / 8) = 3e10 bytes
     * at 204.8e9 B/s = 0.146484375 s. */
    assert_close(k.host_bytes_per_step, 3e10, 0, 1e-12);
    assert_close(k.per_step_s, 0.146484375, 0, 1e-12);
    assert_int_equal(1, k.optimizer_on_host);
    /* More than zero3 alone, every micro-step. */
    CommConfig z = system_cfg("a800", COMM_ZERO3);
    CommCost kz;
    comm_cost_params(&z, 1e9, 8, &kz);
    assert_true(k.per_micro_step_s > kz.per_micro_step_s);

    /* W = 64 on 8-GPU nodes: the shard shrinks to 2e9/64 = 3.125e7 bytes, so PCIe is
     * 3 x 3.125e7 / 25e9 = 3.75e-3 s; CPU Adam per node: 30 x 1e9 x 8/64 = 3.75e9 bytes
     * -> 0.018310546875 s. */
    comm_cost_params(&c, 1e9, 64, &k);
    assert_close(k.pcie_micro_s, 3.75e-3, 0, 1e-12);
    assert_close(k.per_step_s, 0.018310546875, 0, 1e-12);

    /* One rank: no collective, the whole model crosses PCIe: 3 x 2e9 / 25e9 = 0.24 s. */
    comm_cost_params(&c, 1e9, 1, &k);
    assert_true(k.collective_micro_s == 0.0);
    assert_close(k.per_micro_step_s, 0.24, 0, 1e-12);

    /* --host-mem-gbps 0 leaves CPU Adam out (the bytes are still reported). */
    c.host_Bps = 0;
    comm_cost_params(&c, 1e9, 8, &k);
    assert_true(k.per_step_s == 0.0);
    assert_close(k.host_bytes_per_step, 3e10, 0, 1e-12);
}

/* The byte counts follow the model that ran: Llama-2-7B's shape has 6,738,415,616 parameters
 * (embed 32000 x 4096 + 32 layers x (2 x 4096 norms + 4 x 4096^2 attention + 3 x 4096 x 11008
 * MLP) + 4096 final norm + 32000 x 4096 head). ZeRO-3, A800, W = 8: 3 x 7/8 x 2 x 6738415616
 * = 35376681984 bytes / 160e9 = 0.2211042624 s, + 1.05e-4 s latency. */
static void test_model_param_count_used(void **state)
{
    (void)state;
    ModelConfig m;
    assert_int_equal(0, model_preset("7b", &m));
    assert_int_equal(6738415616ULL, (unsigned long long)model_param_count(&m));
    CommConfig c = system_cfg("a800", COMM_ZERO3);
    CommCost k;
    comm_cost(&c, &m, 8, &k);
    assert_close(k.link_bytes_per_micro_step, 35376681984.0, 0, 1e-12);
    assert_close(k.per_micro_step_s, 0.2211042624 + 1.05e-4, 1e-9, 0);
    /* A 2-layer slice communicates its own, smaller parameter set. */
    m.layers = 2;
    CommCost k2;
    comm_cost(&c, &m, 8, &k2);
    assert_true(k2.per_micro_step_s < k.per_micro_step_s / 5);
}

static void test_none_is_free(void **state)
{
    (void)state;
    CommConfig c = system_cfg("h100", COMM_NONE);
    CommCost k;
    comm_cost_params(&c, 7e9, 512, &k);
    assert_true(k.per_micro_step_s == 0.0 && k.per_step_s == 0.0 && k.bytes_per_step == 0.0);
}

static void test_options(void **state)
{
    (void)state;
    CommOptions o;
    CommConfig c;
    char err[256];
    comm_options_init(&o);
    /* Order does not matter: a bandwidth given before --system still wins over its default. */
    assert_int_equal(1, comm_option(&o, "pcie-gbps", "40", err, sizeof err));
    assert_int_equal(1, comm_option(&o, "system", "h100", err, sizeof err));
    assert_int_equal(1, comm_option(&o, "comm", "zero3-offload", err, sizeof err));
    assert_int_equal(1, comm_option(&o, "comm-latency-us", "10", err, sizeof err));
    assert_int_equal(0, comm_option(&o, "strategy", "naive", err, sizeof err));   /* not ours */
    assert_int_equal(0, comm_config_resolve(&o, &c, err, sizeof err));
    assert_int_equal(COMM_ZERO3_OFFLOAD, c.kind);
    assert_string_equal("h100", c.system);
    assert_close(c.pcie_h2d_Bps, 40e9, 0, 1e-12);
    assert_close(c.pcie_d2h_Bps, 40e9, 0, 1e-12);
    assert_int_equal(COMM_SRC_OPTION, c.src_pcie);
    assert_close(c.latency_s, 10e-6, 0, 1e-12);
    assert_close(c.link_Bps, 450e9, 0, 1e-12);   /* untouched h100 default */
    assert_int_equal(COMM_SRC_SYSTEM, c.src_link);

    /* Defaults: no communication, the A800 system. */
    comm_options_init(&o);
    assert_int_equal(0, comm_config_resolve(&o, &c, err, sizeof err));
    assert_int_equal(COMM_NONE, c.kind);
    assert_string_equal(COMM_DEFAULT_SYSTEM, c.system);

    /* Bad values name the option. */
    assert_int_equal(-1, comm_option(&o, "comm", "zero2", err, sizeof err));
    assert_non_null(strstr(err, "--comm"));
    assert_int_equal(-1, comm_option(&o, "system", "tpu", err, sizeof err));
    assert_non_null(strstr(err, "--system"));
    assert_int_equal(-1, comm_option(&o, "nvlink-gbps", "-3", err, sizeof err));
    assert_non_null(strstr(err, "--nvlink-gbps"));
    assert_int_equal(-1, comm_option(&o, "comm-efficiency", "0", err, sizeof err));
    assert_int_equal(-1, comm_option(&o, "comm-efficiency", "1.5", err, sizeof err));
    assert_int_equal(-1, comm_option(&o, "gpus-per-node", "x", err, sizeof err));
    assert_int_equal(1, comm_option(&o, "host-mem-gbps", "0", err, sizeof err));   /* 0: leave CPU Adam out */

    /* Every name in COMM_OPTION_NAMES is taken by comm_option (with a valid value). */
    const char *good[] = {"zero3", "a100", "100", "100", "4", "20", "3", "0.7", "100"};
    comm_options_init(&o);
    int i = 0;
    for (; COMM_OPTION_NAMES[i]; i++) {
        assert_true(i < (int)(sizeof good / sizeof good[0]));
        assert_int_equal(1, comm_option(&o, COMM_OPTION_NAMES[i], good[i], err, sizeof err));
    }
    assert_int_equal((int)(sizeof good / sizeof good[0]), i);
    assert_non_null(strstr(COMM_USAGE, "--comm-latency-us"));
}

static void test_describe_says_modelled_or_measured(void **state)
{
    (void)state;
    char buf[1024];
    CommConfig c = system_cfg("a800", COMM_NONE);
    assert_non_null(strstr(comm_describe(&c, buf, sizeof buf), "none"));

    c = system_cfg("a800", COMM_ZERO3_OFFLOAD);
    comm_describe(&c, buf, sizeof buf);
    assert_non_null(strstr(buf, "modelled zero3-offload"));
    assert_non_null(strstr(buf, "a800 default"));
    assert_non_null(strstr(buf, "CPU Adam"));
    assert_null(strstr(buf, "measured"));

    comm_set_measured_pcie(&c, 24.5e9, 26e9);
    comm_describe(&c, buf, sizeof buf);
    assert_non_null(strstr(buf, "PCIe 24.5 GB/s up, 26.0 GB/s down (measured)"));

    /* A buffer too small is cut, never overrun. */
    char small[16];
    comm_describe(&c, small, sizeof small);
    assert_int_equal(15, (int)strlen(small));

    CommCost k;
    comm_cost_params(&c, 1e9, 8, &k);
    json_t *j = comm_to_json(&c, &k);
    assert_string_equal("zero3-offload", json_string_value(json_object_get(j, "model")));
    assert_string_equal("measured", json_string_value(json_object_get(j, "pcie_source")));
    assert_string_equal("a800 default", json_string_value(json_object_get(j, "nvlink_source")));
    json_t *cost = json_object_get(j, "cost");
    assert_close(json_real_value(json_object_get(cost, "per_step_seconds")), k.per_step_s, 0, 1e-12);
    assert_true(json_is_true(json_object_get(cost, "optimizer_on_host")));
    json_decref(j);
}

/* On a machine without a GPU (or a build without CUDA) the measurement says why; with one it
 * returns positive figures. No timing is asserted. */
static void test_measure_pcie_reports(void **state)
{
    (void)state;
    double up = -1, down = -1;
    char err[256] = "";
    int rc = comm_measure_pcie(&up, &down, err, sizeof err);
    if (rc == 0) {
        assert_true(up > 0 && down > 0);
    } else {
        assert_int_equal(-1, rc);
        assert_true(strlen(err) > 0);
        assert_true(up == 0 && down == 0);
    }
    double ar, ag;
    assert_int_equal(-1, comm_measure_collectives(2, 1 << 20, &ar, &ag, err, sizeof err));
    assert_true(strlen(err) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_system_defaults),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_ddp_by_hand),
        cmocka_unit_test(test_zero3_by_hand),
        cmocka_unit_test(test_zero3_offload_by_hand),
        cmocka_unit_test(test_model_param_count_used),
        cmocka_unit_test(test_none_is_free),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_describe_says_modelled_or_measured),
        cmocka_unit_test(test_measure_pcie_reports),
    };
    return cmocka_run_group_tests_name("comm", tests, NULL, NULL);
}
