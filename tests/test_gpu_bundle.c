/* The GPU bundle (make gpu-bundle, tests/gpu/bundle.sh) is self-contained: copied to another
 * folder, with no environment, every shared library its binaries need is in its lib/ or on a
 * short allow-list of what every GPU machine has; nothing needs MPI or NCCL; the binaries run;
 * run.sh and measure.sh stop at their preflight with one line and exit 2 where no GPU is.
 * `make test` builds the bundle and passes its path in LABENCH_BUNDLE; without it (check-asan)
 * every test skips. */
#include "tests/test_util.h"

#include <dirent.h>
#include <dlfcn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

/* snprintf into an array, failing the test rather than cutting a path or command short */
#define FMT(buf, ...) do { \
    if (snprintf((buf), sizeof(buf), __VA_ARGS__) >= (int)sizeof(buf)) fail_msg("%s: too long", #buf); \
} while (0)

static char BUNDLE[1024];   /* as built */
static char DIR_[1024];     /* the temporary folder */
static char COPY[1100];     /* DIR_/b, the copy under test */
static int CUDA_BUILT;      /* BUILD-INFO says "cuda: yes"; else run.sh stops at that first */

/* Runs a shell command; its stdout and stderr in out (truncated to len); returns its exit
 * status (-1 if it could not run). */
static int run(const char *cmd, char *out, size_t len)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = 0, got;
    char buf[4096];
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) {
        size_t k = n + got < len ? got : (len > n + 1 ? len - n - 1 : 0);
        memcpy(out + n, buf, k);
        n += k;
    }
    out[n < len ? n : len - 1] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state)
{
    (void)state;
    const char *b = getenv("LABENCH_BUNDLE");
    if (!b || !b[0]) return 0;
    snprintf(BUNDLE, sizeof BUNDLE, "%s", b);
    snprintf(DIR_, sizeof DIR_, "/tmp/labench-bundle-test-XXXXXX");
    if (!mkdtemp(DIR_)) return -1;
    snprintf(COPY, sizeof COPY, "%s/b", DIR_);
    char cmd[4096], out[4096];
    snprintf(cmd, sizeof cmd, "grep -c '^cuda: yes' '%s/BUILD-INFO'", BUNDLE);
    CUDA_BUILT = run(cmd, out, sizeof out) == 0;
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", BUNDLE, COPY);
    return run(cmd, out, sizeof out) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    if (DIR_[0] && strncmp(DIR_, "/tmp/labench-bundle-test-", 25) == 0) {
        char cmd[1200], out[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", DIR_);
        run(cmd, out, sizeof out);
    }
    return 0;
}

static void need_bundle(void)
{
    if (!BUNDLE[0]) {
        print_message("SKIP: LABENCH_BUNDLE is not set (make test builds the bundle and sets it)\n");
        skip();
    }
}

/* the allow-list of tests/gpu/bundle.sh: glibc's family, the C++ runtime, driver and CUDA */
static int allowed(const char *so)
{
    static const char *const ok[] = {"linux-vdso.so.", "ld-linux-x86-64.so.", "libc.so.", "libm.so.",
                                     "libpthread.so.", "libdl.so.", "librt.so.", "libutil.so.", "libresolv.so.",
                                     "libstdc++.so.", "libgcc_s.so.", "libcuda.so.", "libcublas.so.",
                                     "libcublasLt.so."};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strncmp(so, ok[i], strlen(ok[i])) == 0) return 1;
    return 0;
}

/* never needed: MPI and NCCL (loaded at run time), CUPTI and cuDNN (dlopen), a shared CUDA runtime */
static int forbidden(const char *so)
{
    static const char *const no[] = {"libmpi", "libopen-pal", "libopen-rte", "libpmix", "libnccl", "libcupti",
                                     "libcudnn", "libcudart.so"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strncmp(so, no[i], strlen(no[i])) == 0) return 1;
    return 0;
}

static int is_elf(const char *path)
{
    unsigned char m[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(m, 1, 4, f);
    fclose(f);
    return n == 4 && m[0] == 0x7f && m[1] == 'E' && m[2] == 'L' && m[3] == 'F';
}

typedef struct {
    char path[1300];
    int is_lib;
} Elf;

/* the bundle's ELF files: binaries at the top, libraries in lib/ */
static int list_elfs(Elf *e, int cap)
{
    int n = 0;
    const char *sub[2] = {"", "/lib"};
    for (int s = 0; s < 2; s++) {
        char dir[1200];
        FMT(dir, "%s%s", COPY, sub[s]);
        DIR *d = opendir(dir);
        assert_non_null(d);
        struct dirent *de;
        while ((de = readdir(d)) && n < cap) {
            FMT(e[n].path, "%s/%s", dir, de->d_name);
            struct stat st;
            if (stat(e[n].path, &st) != 0 || !S_ISREG(st.st_mode) || !is_elf(e[n].path)) continue;
            e[n].is_lib = s == 1;
            n++;
        }
        closedir(d);
    }
    return n;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ------------------------------------------------------------------------------------------ */

static void test_layout_and_size(void **state)
{
    (void)state;
    need_bundle();
    static const char *const files[] = {"labench", "test_gpu_ops", "test_gpu_step", "test_cpu_ops", "test_model",
                                        "bench_attention", "sdpa_torch.py",
                                        "run.sh", "measure.sh", "gpu_common.sh", "peer_torch.py",
                                        "scripts/check_grad_torch.py", "data/longalign-mix.hist", "README.md",
                                        "BUILD-INFO", "lib/libjansson.so.4", "lib/libgomp.so.1"};
    char p[1400];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        FMT(p, "%s/%s", BUNDLE, files[i]);
        if (!exists(p)) fail_msg("the bundle has no %s", files[i]);
    }
    /* BUILD-INFO names the oldest glibc the binaries run on, for the preflight */
    char cmd0[1200], out0[256];
    FMT(cmd0, "grep -c '^glibc: 2\\.[0-9]' '%s/BUILD-INFO'", BUNDLE);
    assert_int_equal(0, run(cmd0, out0, sizeof out0));
    /* the size its README states is the bundle's, as built (README.md itself left out) */
    char cmd[2400], out[4096];
    FMT(cmd, "du -sb --exclude=README.md '%s' | cut -f1; sed -n 's/^Size: .*(\\([0-9]*\\) bytes).*/\\1/p' '%s/README.md'",
             BUNDLE, BUNDLE);
    assert_int_equal(0, run(cmd, out, sizeof out));
    long long actual = 0, stated = 0;
    assert_int_equal(2, sscanf(out, "%lld %lld", &actual, &stated));
    print_message("bundle: %.1f MiB (README says %.1f MiB)\n", actual / 1048576.0, stated / 1048576.0);
    assert_true(llabs(actual - stated) < 4096);
    /* well under the 64 MiB that can be carried to a GPU machine, with the repository beside it */
    assert_true(actual < (40ll << 20));
}

/* No GPU (or nvidia-smi failing): one line "gpu-check: preflight: ...", exit 2, within 10 s. */
static void expect_preflight_stop(const char *script, const char *path_env, const char *why)
{
    char cmd[4096], out[16384];
    FMT(cmd, "env -i PATH=%s OUT='%s/out-%s' bash '%s/%s'", path_env, DIR_, script, COPY, script);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = run(cmd, out, sizeof out);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    print_message("%s (PATH=%s): exit %d after %.1f s:\n%s", script, path_env, rc, s, out);
    assert_int_equal(2, rc);
    assert_true(s <= 10.0);
    int lines = 0;
    for (const char *q = out; (q = strstr(q, "gpu-check: preflight: ")); q++) lines++;
    assert_int_equal(1, lines);
    const char *last = strstr(out, "gpu-check: preflight: "), *nl = strchr(last, '\n');
    if (!CUDA_BUILT) why = "this bundle was built without nvcc";   /* checked before the GPU */
    assert_non_null(strstr(last, why));
    assert_true(!nl || nl[1] == '\0');   /* it is the last line */
}

static void test_preflight_stops_without_gpu(void **state)
{
    (void)state;
    need_bundle();
    char out[512];
    if (run("env -i PATH=/usr/bin:/bin sh -c 'command -v nvidia-smi'", out, sizeof out) == 0)
        print_message("nvidia-smi is on PATH here: only the failing-nvidia-smi case runs\n");
    else {
        expect_preflight_stop("run.sh", "/usr/bin:/bin", "nvidia-smi not found");
        expect_preflight_stop("measure.sh", "/usr/bin:/bin", "nvidia-smi not found");
    }
    /* an nvidia-smi that cannot reach a driver */
    char fake[1200], cmd[2600], path[1300];
    FMT(fake, "%s/fakebin", DIR_);
    FMT(cmd, "mkdir -p '%s' && printf '#!/bin/sh\\necho \"NVIDIA-SMI has failed because it couldn'\\''t "
             "communicate with the NVIDIA driver\"\\nexit 9\\n' > '%s/nvidia-smi' && chmod +x '%s/nvidia-smi'",
             fake, fake, fake);
    assert_int_equal(0, run(cmd, out, sizeof out));
    FMT(path, "%s:/usr/bin:/bin", fake);
    expect_preflight_stop("run.sh", path, "nvidia-smi sees no usable GPU: NVIDIA-SMI has failed");
}

/* Every DT_NEEDED of every ELF is in lib/ or allowed; RUNPATH is $ORIGIN/lib (binaries) or
 * $ORIGIN (libraries). Run after the preflight, which unpacked the lib/ .xz files in the copy. */
static void test_needed_libraries(void **state)
{
    (void)state;
    need_bundle();
    char p[1400], out[32768], cmd[1500];
    FMT(p, "%s/lib/libopenblas.so.0", COPY);
    if (!exists(p)) {   /* the preflight test unpacks it; run the unpacking alone if it did not */
        FMT(cmd, "cd '%s/lib' && for z in *.xz; do [ -e \"$z\" ] && xz -dkf \"$z\"; done; true", COPY);
        run(cmd, out, sizeof out);
    }
    Elf elfs[64];
    int n = list_elfs(elfs, 64), libs = 0;
    assert_true(n >= 6);
    for (int i = 0; i < n; i++) {
        libs += elfs[i].is_lib;
        FMT(cmd, "readelf -d '%s'", elfs[i].path);
        assert_int_equal(0, run(cmd, out, sizeof out));
        const char *base = strrchr(elfs[i].path, '/') + 1;
        int runpath_ok = 0;
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
            char *lb = strchr(line, '['), *rb = lb ? strchr(lb, ']') : NULL;
            if (!lb || !rb) continue;
            *rb = '\0';
            const char *v = lb + 1;
            if (strstr(line, "(NEEDED)")) {
                if (forbidden(v)) fail_msg("%s needs %s: the bundle must never need MPI, NCCL, CUPTI, cuDNN or a shared CUDA runtime", base, v);
                FMT(p, "%s/lib/%s", COPY, v);
                if (!allowed(v) && !exists(p)) fail_msg("%s needs %s, which is neither in lib/ nor allowed", base, v);
            } else if (strstr(line, "(RUNPATH)") || strstr(line, "(RPATH)")) {
                runpath_ok = strstr(line, "(RUNPATH)") && strcmp(v, elfs[i].is_lib ? "$ORIGIN" : "$ORIGIN/lib") == 0;
                if (!runpath_ok) fail_msg("%s: %s is not %s", base, line, elfs[i].is_lib ? "$ORIGIN" : "$ORIGIN/lib");
            }
        }
        if (!runpath_ok) fail_msg("%s has no RUNPATH", base);
    }
    print_message("%d ELF files (%d in lib/): every DT_NEEDED in lib/ or allowed\n", n, libs);
}

/* With no environment, each library the loader finds for a bundled ELF outside the allow-list
 * comes from the copy's lib/ (not from this machine's), and nothing is missing except CUDA's. */
static void test_resolves_into_the_copy(void **state)
{
    (void)state;
    need_bundle();
    Elf elfs[64];
    int n = list_elfs(elfs, 64);
    char cmd[1500], out[32768], lib[1200];
    FMT(lib, "%s/lib/", COPY);
    for (int i = 0; i < n; i++) {
        FMT(cmd, "env -i PATH=/usr/bin:/bin ldd '%s'", elfs[i].path);
        assert_int_equal(0, run(cmd, out, sizeof out));
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
            char name[256] = "", arrow[8] = "", where[1024] = "";
            if (sscanf(line, " %255s %7s %1023s", name, arrow, where) < 3 || strcmp(arrow, "=>") != 0) continue;
            if (allowed(name)) continue;
            if (strncmp(where, lib, strlen(lib)) != 0)
                fail_msg("%s: %s resolves to %s, not into the copy's lib/", elfs[i].path, name, where);
        }
    }
}

/* Each versioned symbol a bundled ELF needs from a bundled library (GOMP_4.0 of libgomp,
 * GFORTRAN_8 of libgfortran, ...) is defined by the copy in lib/: the libgomp there is the one
 * labench's OpenMP was built against. */
static void test_symbol_versions(void **state)
{
    (void)state;
    need_bundle();
    Elf elfs[64];
    int n = list_elfs(elfs, 64), checked = 0;
    char cmd[1500], out[65536], defs[65536];
    for (int i = 0; i < n; i++) {
        FMT(cmd, "readelf -V -W '%s'", elfs[i].path);
        assert_int_equal(0, run(cmd, out, sizeof out));
        /* "Version needs section" lines: "  0x..: Version: 1  File: libgomp.so.1  Cnt: 2", then
         * "  0x..:   Name: GOMP_4.0  Flags: none  Version: 5" */
        char file[256] = "";
        /* run() below leaves strtok's state alone */
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
            const char *f = strstr(line, "File: "), *nm = strstr(line, "Name: ");
            if (f && strstr(line, "Cnt:")) {
                sscanf(f + 6, "%255s", file);
                continue;
            }
            if (!nm || !file[0] || allowed(file)) continue;
            char ver[128];
            if (sscanf(nm + 6, "%127s", ver) != 1) continue;
            char lp[1400];
            FMT(lp, "%s/lib/%s", COPY, file);
            FMT(cmd, "readelf -V -W '%s' | grep -A1000 'Version definition' | grep -c ' %s$'", lp, ver);
            if (run(cmd, defs, sizeof defs) != 0 || atoi(defs) < 1)
                fail_msg("%s needs %s from %s, which lib/%s does not define", elfs[i].path, ver, file, file);
            checked++;
        }
    }
    print_message("%d versioned needs on bundled libraries, all defined in lib/\n", checked);
    assert_true(checked > 0);
}

/* OpenBLAS is Debian's generic DYNAMIC_ARCH build, picking its kernels for the CPU at run time. */
static void test_openblas_dynamic_arch(void **state)
{
    (void)state;
    need_bundle();
    char p[1400], out[8192], cmd[1500];
    FMT(cmd, "grep 'lib/libopenblas.so.0 <-' '%s/BUILD-INFO'", COPY);
    assert_int_equal(0, run(cmd, out, sizeof out));
    print_message("%s", out);
    assert_non_null(strstr(out, "(Debian libopenblas0-"));   /* -pthread, -openmp or -serial */
    FMT(p, "%s/lib/libopenblas.so.0", COPY);
    void *h = dlopen(p, RTLD_NOW | RTLD_LOCAL);
    if (!h) fail_msg("dlopen %s: %s", p, dlerror());
    char *(*config)(void), *(*core)(void);
    void *s1 = dlsym(h, "openblas_get_config"), *s2 = dlsym(h, "openblas_get_corename");
    assert_non_null(s1);
    assert_non_null(s2);
    memcpy(&config, &s1, sizeof s1);
    memcpy(&core, &s2, sizeof s2);
    print_message("bundled OpenBLAS: %s; kernels for this CPU: %s\n", config(), core());
    assert_non_null(strstr(config(), "DYNAMIC_ARCH"));
    dlclose(h);
}

/* From the copy, with no environment: labench trains a step on the CPU (OpenBLAS, OpenMP,
 * jansson from lib/), and the test binaries start (cmocka from lib/) and refuse a bad option. */
static void test_binaries_run_from_the_copy(void **state)
{
    (void)state;
    need_bundle();
    char cmd[3000], out[16384];
    FMT(cmd,
             "env -i PATH=/usr/bin:/bin OMP_NUM_THREADS=2 '%s/labench' --backend cpu --model tiny --strategy packing "
             "--len-dist '%s/data/longalign-mix.hist' --samples 300 --len-scale 1/32 --steps 1 --val-samples 0 "
             "--no-progress --out '%s/r.json'", COPY, COPY, DIR_);
    int rc = run(cmd, out, sizeof out);
    if (rc != 0) fail_msg("labench from the copy: exit %d:\n%s", rc, out);
    char p[1200];
    FMT(p, "%s/r.json", DIR_);
    assert_true(exists(p));
    static const char *const tests[] = {"test_gpu_ops", "test_gpu_step", "bench_attention"};
    for (int i = 0; i < 3; i++) {
        FMT(cmd, "env -i PATH=/usr/bin:/bin '%s/%s' --no-such-option", COPY, tests[i]);
        rc = run(cmd, out, sizeof out);
        if (rc != 2 || !strstr(out, "usage:")) fail_msg("%s from the copy: exit %d:\n%s", tests[i], rc, out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_and_size),
        cmocka_unit_test(test_preflight_stops_without_gpu),
        cmocka_unit_test(test_needed_libraries),
        cmocka_unit_test(test_resolves_into_the_copy),
        cmocka_unit_test(test_symbol_versions),
        cmocka_unit_test(test_openblas_dynamic_arch),
        cmocka_unit_test(test_binaries_run_from_the_copy),
    };
    return cmocka_run_group_tests_name("gpu_bundle", tests, setup, teardown);
}
