/* scripts/check_layers.py, the layer check: the real tree passes, and small planted trees with
 * one thing wrong each fail with exit status 1 and a FILE:LINE message naming it. Each bad tree
 * is a clean tree plus the files of its case, so the one problem is the only one. Run from the
 * repository root (make test does). */
#include "tests/test_util.h"

#include <ftw.h>
#include <sys/stat.h>

typedef struct {
    const char *path, *text;
} Planted;

/* The clean tiny tree: every layer used the right way, with the traps the check must not fall
 * into: an include relative to its own folder, exit( in a comment and a string, a commented-out
 * upward include, CUDA headers where they belong, exits in the CLI and on real DP's allowed fatal
 * path, and a test that includes anything. */
static const Planted CLEAN[] = {
    {"common/err.h", "int err_say(char *err, unsigned long n);\n"},
    {"common/err.c", "#include \"common/err.h\"\n"
                     "/* exit(1) in a comment is no call */\n"
                     "int err_say(char *err, unsigned long n)\n"
                     "{\n"
                     "    const char *s = \"then abort() and die_input(x)\";\n"
                     "    (void)s; (void)err; (void)n;\n"
                     "    return -1;\n"
                     "}\n"},
    {"kernels/backend.h", "#include \"common/err.h\"\n"},
    {"kernels/cpu/cpu_ops.h", "#include \"kernels/backend.h\"\n"},
    {"kernels/cpu/cpu.c", "#include \"kernels/backend.h\"\n#include \"cpu_ops.h\"\n"},
    {"kernels/cuda/cuda.cu", "#include <cuda_runtime.h>\n#include <cublas_v2.h>\n#include \"kernels/backend.h\"\n"},
    {"profile/nvtx.c", "#include <nvtx3/nvToolsExt.h>\n#include \"common/err.h\"\n"},
    {"bench/comm/world_mpi.c", "#include <stdlib.h>\n"
                               "static void end_job(int clean)\n"
                               "{\n"
                               "    if (!clean) abort();\n"
                               "    exit(2);\n"
                               "}\n"
                               "void dp_fail(const char *msg)\n"
                               "{\n"
                               "    (void)msg;\n"
                               "    exit(2);\n"
                               "}\n"},
    {"bench/input/in.h", "#include \"kernels/backend.h\"\n"},
    {"bench/input/in.c", "#include \"bench/input/in.h\"\n/* not any more:\n#include \"bench/cli/cli.h\"\n */\n"},
    {"bench/analysis/an.c", "#include \"bench/input/in.h\"\n#include \"common/err.h\"\n"},
    {"bench/cli/cli.h", "#include \"bench/analysis/an.h\"\n"},
    {"bench/analysis/an.h", "#include \"bench/input/in.h\"\n"},
    {"bench/cli/main.c", "#include <stdlib.h>\n#include \"bench/cli/cli.h\"\n"
                         "int main(void) { exit(2); }\n"},
    {"tests/test_x.c", "#include \"bench/cli/cli.h\"\n#include \"no/such.h\"\n#include <cuda.h>\n"},
};
#define N_CLEAN (sizeof CLEAN / sizeof CLEAN[0])
/* what the check counts in CLEAN: every .c/.h/.cu under the layer roots (not tests/), and their
 * #include lines (the commented-out one is none) */
#define CLEAN_SUMMARY "layers: 14 files, 19 includes, ok"

static void plant(const char *root, const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *s = strchr(path + strlen(root) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = 0;
        mkdir(path, 0755);   /* EEXIST is fine */
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(0, fclose(f));
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(p);
}

/* Plants CLEAN plus extra (which may replace a CLEAN file) in a fresh folder, runs the check on
 * it into out, removes the folder and returns the exit status. */
static int check_tree(const Planted *extra, int n_extra, char *out, size_t n)
{
    char dir[] = "/tmp/labench-layers-XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (size_t i = 0; i < N_CLEAN; i++) plant(dir, CLEAN[i].path, CLEAN[i].text);
    for (int i = 0; i < n_extra; i++) plant(dir, extra[i].path, extra[i].text);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "python3 scripts/check_layers.py %s", dir);
    int rc = test_run_capture(cmd, out, n);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}

/* The tree of extra fails with exit 1, n_problems problems, and a line for each needle. */
static void expect_problems(const Planted *extra, int n_extra, int n_problems, const char *const *needles, int n_needles)
{
    char buf[16384], count[64], *out = buf + 1;   /* buf starts with a newline: needles "\nFILE:" match line starts */
    buf[0] = '\n';
    int rc = check_tree(extra, n_extra, out, sizeof buf - 1);
    snprintf(count, sizeof count, "includes, %d problem%s\n", n_problems, n_problems == 1 ? "" : "s");
    int ok = rc == 1 && strstr(buf, count);
    for (int i = 0; i < n_needles; i++) ok = ok && strstr(buf, needles[i]);
    if (!ok) {
        print_error("exit %d, output:\n%s\nexpected exit 1, '%s' and:\n", rc, out, count);
        for (int i = 0; i < n_needles; i++) print_error("  %s\n", needles[i]);
        fail();
    }
}
#define EXPECT(extra, n_problems, ...) do { \
    const char *const needles_[] = {__VA_ARGS__}; \
    expect_problems(extra, (int)(sizeof extra / sizeof extra[0]), n_problems, needles_, \
                    (int)(sizeof needles_ / sizeof needles_[0])); } while (0)

/* The repository itself keeps its layers. */
static void test_real_tree_passes(void **state)
{
    (void)state;
    char out[65536];
    int rc = test_run_capture("python3 scripts/check_layers.py", out, sizeof out);
    if (rc != 0 || !strstr(out, " includes, ok\n")) {
        print_error("scripts/check_layers.py: exit %d:\n%s\n", rc, out);
        fail();
    }
    /* and it read the tree, not an empty folder: labench has over a hundred source files */
    int files = 0;
    assert_int_equal(1, sscanf(out, "layers: %d files", &files));
    assert_true(files >= 100);
}

static void test_clean_tree_passes(void **state)
{
    (void)state;
    char out[16384];
    int rc = check_tree(NULL, 0, out, sizeof out);
    if (rc != 0 || strcmp(out, CLEAN_SUMMARY "\n") != 0) {
        print_error("exit %d, output:\n%s\nexpected exit 0 and '%s'\n", rc, out, CLEAN_SUMMARY);
        fail();
    }
}

static void test_upward_include(void **state)
{
    (void)state;
    const Planted up[] = {{"bench/analysis/up.c", "/* reaches up */\n#include \"bench/cli/cli.h\"\n"}};
    EXPECT(up, 1, "\nbench/analysis/up.c:2: upward include: includes bench/cli/cli.h, a layer above bench/analysis/");
    /* the two backends are siblings: neither includes the other */
    const Planted side[] = {{"kernels/cuda/impl.h", "#include \"kernels/backend.h\"\n"},
                            {"kernels/cpu/peek.c", "#include \"kernels/cuda/impl.h\"\n"}};
    EXPECT(side, 1, "kernels/cpu/peek.c:1: upward include: includes kernels/cuda/impl.h, from kernels/cuda/, a sibling");
    /* the bottom layer reaches into the one above it */
    const Planted low[] = {{"common/err.h", "\n\n#include \"kernels/backend.h\"\n"}};
    EXPECT(low, 2, "common/err.h:3: upward include: includes kernels/backend.h, a layer above common/",
           "include cycle: common/err -> kernels/backend -> common/err");
}

static void test_same_folder_cycle(void **state)
{
    (void)state;
    const Planted cyc[] = {{"bench/run/run.h", "#include \"bench/input/in.h\"\n"},
                           {"bench/run/run.c", "#include \"bench/run/run.h\"\n#include \"bench/run/dp.h\"\n"},
                           {"bench/run/dp.h", "#include \"common/err.h\"\n#include \"bench/run/run.h\"\n"},
                           {"bench/run/dp.c", "#include \"bench/run/dp.h\"\n"}};
    EXPECT(cyc, 1, "\nbench/run/dp.h:2: include cycle: bench/run/dp -> bench/run/run -> bench/run/dp "
                   "(bench/run/dp.h:2 includes bench/run/run.h; bench/run/run.c:2 includes bench/run/dp.h)\n");
}

static void test_cross_folder_cycle(void **state)
{
    (void)state;
    const Planted cyc[] = {{"bench/results/results.h", "#include \"common/err.h\"\n"},
                           {"bench/results/results.c", "#include \"bench/results/results.h\"\n"
                                                      "#include \"bench/run/dp.h\"\n"},
                           {"bench/run/dp.h", "#include \"common/err.h\"\n"},
                           {"bench/run/dp.c", "#include \"bench/run/dp.h\"\n\n\n#include \"bench/results/results.h\"\n"}};
    EXPECT(cyc, 2, "\nbench/run/dp.c:4: upward include: includes bench/results/results.h, a layer above bench/run/",
           "\nbench/results/results.c:2: include cycle: bench/results/results -> bench/run/dp -> bench/results/results "
           "(bench/results/results.c:2 includes bench/run/dp.h; bench/run/dp.c:4 includes bench/results/results.h)\n");
}

static void test_missing_header(void **state)
{
    (void)state;
    const Planted miss[] = {{"model/loader.c", "#include \"common/err.h\"\n#include \"model/config.h\"\n"}};
    EXPECT(miss, 1, "\nmodel/loader.c:2: missing include: \"model/config.h\" is no file of the repository");
}

static void test_stray_file(void **state)
{
    (void)state;
    const Planted loose[] = {{"bench/loose.c", "#include \"common/err.h\"\n"}};
    EXPECT(loose, 1, "\nbench/loose.c:1: stray file: bench/ is not a layer folder");
    const Planted odd[] = {{"bench/misc/x.h", "int x;\n"}};
    EXPECT(odd, 1, "\nbench/misc/x.h:1: stray file: bench/misc/ is not a layer folder");
}

static void test_cuda_header_outside(void **state)
{
    (void)state;
    const Planted cu[] = {{"strategies/plan.c", "#include <stdio.h>\n#include <cublasLt.h>\n"},
                          {"model/loader.c", "#include \"nccl.h\"\n"}};
    EXPECT(cu, 2, "\nstrategies/plan.c:2: CUDA header: includes <cublasLt.h> outside kernels/cuda/, profile/, bench/comm/",
           "\nmodel/loader.c:1: CUDA header: includes \"nccl.h\" outside");
}

static void test_exit_below_cli(void **state)
{
    (void)state;
    const Planted ex[] = {{"bench/input/load.c", "#include \"bench/input/in.h\"\n"
                                                 "int load_thing(const char *path)\n"
                                                 "{\n"
                                                 "    if (!path) die_input(\"no path\");\n"
                                                 "    return 0;\n"
                                                 "}\n"}};
    EXPECT(ex, 1, "\nbench/input/load.c:4: exits below CLI: die_input() in load_thing;");
    /* the allow-list names a function: another exit in the same file is still caught */
    const Planted more[] = {{"bench/comm/world_mpi.c", "#include <stdlib.h>\n"
                                                      "static void end_job(int clean) { if (!clean) abort(); exit(2); }\n"
                                                      "void dp_fail(const char *msg) { (void)msg; exit(2); }\n"
                                                      "int dp_rank(void)\n"
                                                      "{\n"
                                                      "    exit(3);\n"
                                                      "}\n"}};
    EXPECT(more, 1, "\nbench/comm/world_mpi.c:6: exits below CLI: exit() in dp_rank;");
    /* an allowed exit that is gone leaves a stale entry to remove */
    const Planted gone[] = {{"bench/comm/world_mpi.c", "static void end_job(int clean) { (void)clean; }\n"
                                                      "void dp_fail(const char *msg) { (void)msg; exit(2); }\n"}};
    EXPECT(gone, 1, "stale allow-list entry: EXIT_ALLOWED's bench/comm/world_mpi.c in end_job()");
}

/* --list prints the stack top to bottom; a usage error is exit 2. */
static void test_list_and_usage(void **state)
{
    (void)state;
    char out[16384];
    assert_int_equal(0, test_run_capture("python3 scripts/check_layers.py --list", out, sizeof out));
    const char *order[] = {"bench/cli/", "bench/results/", "bench/run/", "bench/analysis/", "bench/input/",
                           "bench/comm/", "model/", "profile/", "strategies/", "kernels/cpu/", "kernels/cuda/",
                           "kernels/ ", "common/"};
    const char *at = out;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *p = strstr(at, order[i]);
        if (!p) {
            print_error("--list: '%s' missing or out of order in:\n%s\n", order[i], out);
            fail();
        }
        at = p;
    }
    assert_int_equal(2, test_run_capture("python3 scripts/check_layers.py /nonexistent/tree", out, sizeof out));
    assert_non_null(strstr(out, "/nonexistent/tree: no such folder"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_tree_passes),
        cmocka_unit_test(test_clean_tree_passes),
        cmocka_unit_test(test_upward_include),
        cmocka_unit_test(test_same_folder_cycle),
        cmocka_unit_test(test_cross_folder_cycle),
        cmocka_unit_test(test_missing_header),
        cmocka_unit_test(test_stray_file),
        cmocka_unit_test(test_cuda_header_outside),
        cmocka_unit_test(test_exit_below_cli),
        cmocka_unit_test(test_list_and_usage),
    };
    return cmocka_run_group_tests_name("layers", tests, NULL, NULL);
}
