/* Length-distribution inputs as a user's files reach them (issue 16): what `labench hist` writes
 * reads back to the same distribution (a property over seeded random lengths lists), messages
 * quote a readable excerpt of what the file says, and a sampler that runs out of memory names
 * the file and the option to use. Run from the repository root. */
#include "tests/test_hist_util.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "bench/cli/cli.h"
#include "bench/input/hist.h"
#include "bench/input/sample.h"
#include "common/rng.h"

#define ERRLEN 2048

/* A percentage as a user's tool might print it: whole, a few decimals, many, or tiny. */
static void random_percent(Rng *r, char *buf, size_t n)
{
    switch (rng_below(r, 5)) {
    case 0: snprintf(buf, n, "%d", (int)rng_below(r, 101)); break;
    case 1: snprintf(buf, n, "%.2f", 100 * rng_uniform(r)); break;
    case 2: snprintf(buf, n, "%.*f", (int)rng_below(r, 18), 100 * rng_uniform(r)); break;
    case 3: snprintf(buf, n, "0.%0*d%d", (int)rng_below(r, 20), 0, 1 + (int)rng_below(r, 9)); break;   /* 0.00009 */
    default: snprintf(buf, n, "%.17g", 1e-4 * rng_uniform(r)); break;
    }
    if (strchr(buf, 'e')) snprintf(buf, n, "0.0001");   /* .hist percentages are plain decimals */
}

/* One line of a lengths list: LEN, LEN T, LEN T1-T2, LEN P% or LEN P1%-P2% (targets that fit). */
static void random_line(Rng *r, char *buf, size_t n, int64_t *len_out)
{
    int64_t len;
    switch (rng_below(r, 3)) {
    case 0: len = 1 + (int64_t)rng_below(r, 64); break;
    case 1: len = 1 + (int64_t)rng_below(r, 70000); break;
    default: len = 1 + (int64_t)rng_below(r, (uint64_t)HIST_MAX_LEN); break;
    }
    *len_out = len;
    char a[64], b[64];
    int form = (int)rng_below(r, 5);
    if (len < 2 && (form == 1 || form == 2)) form = 0;
    switch (form) {
    case 0: snprintf(buf, n, "%lld\n", (long long)len); break;
    case 1: snprintf(buf, n, "%lld %lld\n", (long long)len, 1 + (long long)rng_below(r, (uint64_t)(len - 1))); break;
    case 2: {
        long long lo = 1 + (long long)rng_below(r, (uint64_t)(len - 1));
        snprintf(buf, n, "%lld %lld-%lld\n", (long long)len, lo, lo + (long long)rng_below(r, 1000));
        break;
    }
    case 3:
        random_percent(r, a, sizeof a);
        snprintf(buf, n, "%lld %s%%\n", (long long)len, a);
        break;
    default: {
        random_percent(r, a, sizeof a);
        random_percent(r, b, sizeof b);
        if (strtod(a, NULL) > strtod(b, NULL)) {
            char t[64];
            memcpy(t, a, sizeof t);
            memcpy(a, b, sizeof a);
            memcpy(b, t, sizeof b);
        }
        snprintf(buf, n, "%lld %s%%-%s%%\n", (long long)len, a, b);
    }
    }
}

/* `labench hist IN -o OUT [--bin-width W]`, its "wrote ..." line silenced. */
static int run_hist(const char *in, const char *out, const char *width)
{
    char *argv[] = {"hist", (char *)in, "-o", (char *)out, width ? "--bin-width" : NULL, (char *)width, NULL};
    fflush(stderr);
    int saved = dup(2), nul = open("/dev/null", O_WRONLY);
    dup2(nul, 2);
    int rc = cmd_hist(width ? 6 : 4, argv, "labench hist");
    dup2(saved, 2);
    close(saved);
    close(nul);
    return rc;
}

/* Defect 4 of issue 16: `labench hist` wrote a target share below 1e-4 as "9e-05%", which
 * hist_load refused. Whatever it writes now loads back: lossless output is the very
 * distribution hist_load_lengths read, binned output keeps every sample in its bin. */
static void test_hist_output_reads_back(void **state)
{
    (void)state;
    Rng r = rng_seed(16, 1);
    char in[256], out[300], err[ERRLEN];
    for (int trial = 0; trial < 300; trial++) {
        int n = 1 + (int)rng_below(&r, 40);
        size_t cap = (size_t)n * 128 + 1, used = 0;
        char *text = malloc(cap);
        int64_t *lens = malloc((size_t)n * sizeof *lens);
        assert_non_null(text);
        assert_non_null(lens);
        text[0] = 0;
        for (int i = 0; i < n; i++) {
            random_line(&r, text + used, cap - used, &lens[i]);
            used += strlen(text + used);
        }
        test_write_file(in, sizeof in, text, used);
        snprintf(out, sizeof out, "%s.hist", in);

        Hist want, got;
        int rc = hist_load_lengths(in, &want, err, sizeof err);
        if (rc != 0) print_error("generated list refused: %s\n%s", err, text);
        assert_int_equal(0, rc);
        assert_int_equal(0, run_hist(in, out, NULL));
        rc = hist_load(out, &got, err, sizeof err);
        if (rc != 0) print_error("trial %d: labench hist wrote what hist_load refuses: %s\ninput:\n%s", trial, err, text);
        assert_int_equal(0, rc);
        assert_same_hist(&want, &got);
        hist_free(&got);

        char width[32];
        snprintf(width, sizeof width, "%llu", 1 + (unsigned long long)rng_below(&r, rng_below(&r, 2) ? 100 : 1u << 30));
        assert_int_equal(0, run_hist(in, out, width));
        rc = hist_load(out, &got, err, sizeof err);
        if (rc != 0) print_error("trial %d: binned output refused: %s\n", trial, err);
        assert_int_equal(0, rc);
        assert_int_equal(want.total, got.total);
        for (int b = 0; b < got.n_bins; b++) {
            int64_t inside = 0;
            for (int i = 0; i < n; i++) inside += lens[i] >= got.bins[b].lo && lens[i] <= got.bins[b].hi;
            assert_int_equal(inside, got.bins[b].count);
        }
        hist_free(&got);
        hist_free(&want);
        unlink(out);
        unlink(in);
        free(text);
        free(lens);
    }
}

/* hist_write of any distribution hist_load accepts reads back equal, tiny percentages too. */
static void test_write_tiny_percent(void **state)
{
    (void)state;
    const char *text = "100 3 0.00009%\n200 1 0.000000000000000000001%-0.5%\n300 2 99.99999999999999%\n";
    char path[256], err[ERRLEN];
    test_write_file(path, sizeof path, text, strlen(text));
    Hist h, back;
    assert_int_equal(0, hist_load(path, &h, err, sizeof err));
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(0, hist_write(f, &h, NULL));
    fclose(f);
    int rc = hist_load(path, &back, err, sizeof err);
    if (rc != 0) print_error("%s\n", err);
    assert_int_equal(0, rc);
    assert_same_hist(&h, &back);
    hist_free(&h);
    hist_free(&back);
    unlink(path);
}

/* Defect 8: an over-long number was quoted in full (~1000 digits). Messages keep file:line and
 * an excerpt. */
static void test_long_tokens_quoted_short(void **state)
{
    (void)state;
    char *text = malloc(4200);
    assert_non_null(text);
    char digits[1001];
    memset(digits, '7', sizeof digits - 1);
    digits[sizeof digits - 1] = 0;
    const char *forms[] = {"100 %s\n", "%s 5\n", "100 5 %s\n", "100 5 %s%%\n", "1-%s 5\n", "100 5x%s\n"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char path[256], err[ERRLEN], prefix[300];
        snprintf(text, 4200, "# a comment\n");
        snprintf(text + strlen(text), 4200 - strlen(text), forms[i], digits);
        test_write_file(path, sizeof path, text, strlen(text));
        Hist h;
        assert_int_equal(-1, hist_load(path, &h, err, sizeof err));
        snprintf(prefix, sizeof prefix, "%s:2: ", path);
        if (strncmp(err, prefix, strlen(prefix)) != 0 || strlen(err) > strlen(prefix) + 200 || !strstr(err, "...")) {
            print_error("form %zu: %s\n", i, err);
            fail();
        }
        unlink(path);
    }
    free(text);
}

/* Defect 8: a histogram of 10^9 samples that does not fit in memory names the file and
 * suggests --samples. The draw runs in a child under an address-space limit, so the
 * allocation fails on any machine (not under AddressSanitizer, which reserves terabytes). */
static void test_sampler_out_of_memory_names_file(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    skip();
#else
    const char *text = "1000 1000000000\n";
    char path[256], err[ERRLEN];
    test_write_file(path, sizeof path, text, strlen(text));
    Hist h;
    assert_int_equal(0, hist_load(path, &h, err, sizeof err));
    int fds[2];
    assert_int_equal(0, pipe(fds));
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {(rlim_t)1 << 30, (rlim_t)1 << 30};   /* 1 GiB: 10^9 samples need 8 GB */
        setrlimit(RLIMIT_AS, &rl);
        Sample *s;
        int64_t n;
        char e[ERRLEN] = "";
        int rc = sample_draw(&h, 0, 1.0, 1, &s, &n, e, sizeof e);
        ssize_t w = write(fds[1], e, strlen(e) + 1);
        (void)w;
        _exit(rc == -1 ? 0 : 1);
    }
    close(fds[1]);
    char msg[ERRLEN] = "";
    ssize_t k = read(fds[0], msg, sizeof msg - 1);
    msg[k > 0 ? k : 0] = 0;
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (!strstr(msg, path) || !strstr(msg, "--samples") || !strstr(msg, "1000000000")) {
        print_error("message: %s\n", msg);
        fail();
    }
    hist_free(&h);
    unlink(path);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_output_reads_back),
        cmocka_unit_test(test_write_tiny_percent),
        cmocka_unit_test(test_long_tokens_quoted_short),
        cmocka_unit_test(test_sampler_out_of_memory_names_file),
    };
    return cmocka_run_group_tests_name("hist_input", tests, NULL, NULL);
}
