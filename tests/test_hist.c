/* Tests for the .hist parser, lengths lists, hist_write, `labench hist`, the sampler and the
 * shipped distributions. Run from the repository root (make test does). */
#include "tests/test_hist_util.h"

#include "bench/cli/cli.h"
#include "bench/input/hist.h"
#include "bench/input/sample.h"

#define ERRLEN 2048

/* Asserts err starts with "path:line: " (line > 0) or "path: " (line 0) and contains want. */
static void assert_err(const char *err, const char *path, int line, const char *want)
{
    char prefix[1200];
    if (line > 0) snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    else snprintf(prefix, sizeof prefix, "%s: ", path);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, want)) {
        print_error("error message \"%s\"\n  wanted prefix \"%s\" and \"%s\"\n", err, prefix, want);
        fail();
    }
}

/* Loads text (len bytes) as a .hist (lengths list if `lengths`) from a temporary file. */
static int load_text(const char *text, size_t len, int lengths, Hist *h, char *path, char *err)
{
    test_write_file(path, 256, text, len);
    int rc = lengths ? hist_load_lengths(path, h, err, ERRLEN) : hist_load(path, h, err, ERRLEN);
    unlink(path);
    return rc;
}

static void assert_bin(const HistBin *b, int64_t lo, int64_t hi, int64_t count, TargetKind kind,
                       double tlo, double thi, int line)
{
    assert_int_equal(b->lo, lo);
    assert_int_equal(b->hi, hi);
    assert_int_equal(b->count, count);
    assert_int_equal(b->target.kind, kind);
    if (kind != TGT_DEFAULT) {
        assert_close(b->target.lo, tlo, 0, 0);
        assert_close(b->target.hi, thi, 0, 0);
    }
    assert_int_equal(b->line, line);
}

/* ---- parser: good input -------------------------------------------------------------------- */

static void test_parse_lines_and_targets(void **state)
{
    (void)state;
    const char *text =
        "# a comment line\n"
        "\n"
        "100 5            # exact, default target\n"
        "200-300\t7 50\n"
        "@target 10%-20%  # default from here on\n"
        "400-500 3\n"
        "600 2 30-40\n"
        "   700 1 62.5%\n"
        "@target 25\r\n"
        "800 4\r\n"
        "900-900 6 100%";                        /* no final newline */
    char path[256], err[ERRLEN];
    Hist h;
    assert_int_equal(load_text(text, strlen(text), 0, &h, path, err), 0);
    assert_int_equal(h.n_bins, 7);
    assert_int_equal(h.total, 5 + 7 + 3 + 2 + 1 + 4 + 6);
    assert_string_equal(h.path, path);
    assert_bin(&h.bins[0], 100, 100, 5, TGT_DEFAULT, 0, 0, 3);
    assert_bin(&h.bins[1], 200, 300, 7, TGT_TOKENS, 50, 50, 4);
    assert_bin(&h.bins[2], 400, 500, 3, TGT_PERCENT, 10, 20, 6);
    assert_bin(&h.bins[3], 600, 600, 2, TGT_TOKENS, 30, 40, 7);
    assert_bin(&h.bins[4], 700, 700, 1, TGT_PERCENT, 62.5, 62.5, 8);
    assert_bin(&h.bins[5], 800, 800, 4, TGT_TOKENS, 25, 25, 10);
    assert_bin(&h.bins[6], 900, 900, 6, TGT_PERCENT, 100, 100, 11);
    hist_free(&h);
    assert_null(h.bins);
}

static void test_parse_limits_accepted(void **state)
{
    (void)state;
    /* The largest length and count, a target of exactly LO-1, a 1-token bin, a UTF-8 comment
     * and a byte order mark are all fine. */
    const char *text = "\xef\xbb\xbf# longueur \xc3\xa9\xe2\x82\xac\n"
                       "2147483647 999999999998\n"
                       "200-300 1 199\n"
                       "1 1\n";
    char path[256], err[ERRLEN];
    Hist h;
    assert_int_equal(load_text(text, strlen(text), 0, &h, path, err), 0);
    assert_int_equal(h.n_bins, 3);
    assert_int_equal(h.bins[0].lo, INT64_C(2147483647));
    assert_int_equal(h.bins[0].line, 2);
    assert_int_equal(h.total, INT64_C(1000000000000));   /* the total's limit, exactly */
    assert_bin(&h.bins[1], 200, 300, 1, TGT_TOKENS, 199, 199, 3);
    hist_free(&h);

    const char *one = "5 1000000000000\n";
    assert_int_equal(load_text(one, strlen(one), 0, &h, path, err), 0);
    assert_int_equal(h.bins[0].count, INT64_C(1000000000000));
    hist_free(&h);
}

/* The example in docs/hist-format.md must stay valid. */
static void test_docs_example_loads(void **state)
{
    (void)state;
    const char *text =
        "# chat-like: short samples, most of each is response\n"
        "@target 50%-75%\n"
        "16-127      3344\n"
        "128-1023    52000\n"
        "1024-8192   44656        # a long tail\n"
        "8192        20   4000    # 20 samples of exactly 8192 tokens, 4000 of them targets\n"
        "\n"
        "# document QA: long input, short answer\n"
        "@target 100-1000\n"
        "8192-65536  10000\n"
        "32768       5     90%    # a line's own TARGET beats @target\n";
    char path[256], err[ERRLEN];
    Hist h;
    assert_int_equal(load_text(text, strlen(text), 0, &h, path, err), 0);
    assert_int_equal(h.total, 110025);
    assert_bin(&h.bins[3], 8192, 8192, 20, TGT_TOKENS, 4000, 4000, 6);
    assert_bin(&h.bins[4], 8192, 65536, 10000, TGT_TOKENS, 100, 1000, 10);
    assert_bin(&h.bins[5], 32768, 32768, 5, TGT_PERCENT, 90, 90, 11);
    hist_free(&h);
}

/* ---- parser: bad input --------------------------------------------------------------------- */

typedef struct {
    const char *text;
    size_t len;          /* 0: strlen(text) */
    int line;            /* 0: a whole-file error, "FILE: ..." */
    const char *want;
} BadCase;

static const BadCase BAD_HIST[] = {
    { "", 0, 0, "empty file" },
    { "# only a comment\n\n   \n# another\n", 0, 0, "no data lines" },
    { "@target 50%\n", 0, 0, "no data lines" },
    { "100 5\n\n-5 3\n", 0, 3, "length must be 0 or more (got '-5')" },
    { "100 5\n-3-10 3\n", 0, 2, "length must be 0 or more (got '-3' in bin '-3-10')" },
    { "100 5\n100-0 3\n", 0, 2, "bin '100-0' has LO above HI (100 > 0)" },
    { "0 5\n# c\n0-0 3\n", 0, 0, "nothing left: all 8 samples have length 0 (2 lines from line 1)" },
    { "0 0\n", 0, 1, "count must be at least 1 (got '0')" },
    { "100 1\n0 5 abc\n", 0, 2, "bad target 'abc'" },
    { "0-100 5 10\n", 0, 1, "the shortest sample here has 1 tokens, so at most 0 can be targets" },
    { "abc 5\n", 0, 1, "bad length 'abc'" },
    { "1000000000000 1\n", 0, 1, "length '1000000000000' over the limit 2147483647" },
    { "2147483648 1\n", 0, 1, "over the limit 2147483647" },
    { "10-99999999999999999999999 1\n", 0, 1, "over the limit 2147483647" },
    { "# c\n100 0\n", 0, 2, "count must be at least 1 (got '0')" },
    { "100 -3\n", 0, 1, "count must be at least 1 (got '-3')" },
    { "100 1.5\n", 0, 1, "count must be a whole number (got '1.5')" },
    { "100 1e3\n", 0, 1, "count must be a whole number" },
    { "100 5x\n", 0, 1, "count must be a whole number (got '5x')" },
    { "100 100000000000000000000\n", 0, 1, "count '100000000000000000000' over the limit 10^12" },
    { "100 1000000000001\n", 0, 1, "over the limit 10^12" },
    { "1 600000000000\n2 300000000000\n3 100000000001\n", 0, 3, "total count over the limit 10^12" },
    { "100\n", 0, 1, "missing COUNT" },
    { "1 1\n500-100 2\n", 0, 2, "bin '500-100' has LO above HI (500 > 100)" },
    { "200-300 5 300\n", 0, 1, "target 300 tokens over the length" },
    { "200 5 200\n", 0, 1, "a 200-token sample has at most 199 targets" },
    { "200-201 5 200\n", 0, 1, "the shortest sample here has 200 tokens, so at most 199 can be targets" },
    { "1 5 1\n", 0, 1, "target 1 tokens over the length: a 1-token sample has at most 0 targets" },
    { "200-300 5 250-400\n", 0, 1, "target 250 tokens over the length" },
    { "@target 500\n\n100 1\n", 0, 3, "(target set by @target on line 1)" },
    { "100 5 abc\n", 0, 1, "bad target 'abc'" },
    { "100 5 120%\n", 0, 1, "bad target '120%'" },
    { "100 5 -5%\n", 0, 1, "bad target '-5%'" },
    { "100 5 50%-x%\n", 0, 1, "bad target '50%-x%'" },
    { "100 5 50-60%\n", 0, 1, "bad target '50-60%'" },
    { "100 5 60-50\n", 0, 1, "low end above high end" },
    { "100 5 70%-60%\n", 0, 1, "low end above high end" },
    { "100 5 0\n", 0, 1, "target tokens must be at least 1" },
    { "100 5 -3\n", 0, 1, "target tokens must be at least 1" },
    { "100 5 10 x\n", 0, 1, "unexpected 'x' at the end of the line" },
    { "10 1\n100 5 10 20 30\n", 0, 2, "unexpected '20'" },
    { "@target\n100 5\n", 0, 1, "@target wants exactly one target spec" },
    { "@target 5 6\n100 5\n", 0, 1, "@target wants exactly one target spec" },
    { "@target zz\n100 5\n", 0, 1, "bad target 'zz'" },
    { "@targt 5\n100 5\n", 0, 1, "unknown directive '@targt'" },
    { "100 5\r\n\r\n-1 1\r\n", 0, 3, "length must be 0 or more" },
    { "100 5\n\0\0\0\x01\x02", 11, 0, "not a text file (NUL byte 0x00 on line 2)" },
    { "\x7f" "ELF\x02\x01\x01\x03\x04\n", 0, 0, "not a text file" },
    { "100 5\n\xff\xfe\x80\x81 garbage\n", 0, 0, "not a text file (invalid UTF-8 0xff on line 2)" },
};

static void test_bad_hist_inputs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof BAD_HIST / sizeof BAD_HIST[0]; i++) {
        const BadCase *c = &BAD_HIST[i];
        char path[256], err[ERRLEN] = "";
        Hist h;
        size_t len = c->len ? c->len : strlen(c->text);
        int rc = load_text(c->text, len, 0, &h, path, err);
        if (rc != -1) {
            print_error("case %zu (\"%s\") was accepted\n", i, c->text);
            fail();
        }
        assert_null(h.bins);          /* nothing to free after a failure */
        assert_err(err, path, c->line, c->want);
    }
}

static void test_missing_and_directory(void **state)
{
    (void)state;
    char err[ERRLEN];
    Hist h;
    const char *missing = "/tmp/labench-test-no-such-file.hist";
    unlink(missing);
    assert_int_equal(hist_load(missing, &h, err, sizeof err), -1);
    assert_err(err, missing, 0, "cannot open");
    assert_int_equal(hist_load_lengths(missing, &h, err, sizeof err), -1);
    assert_err(err, missing, 0, "cannot open");

    char dir[] = "/tmp/labench-test-dir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(hist_load(dir, &h, err, sizeof err), -1);
    assert_err(err, dir, 0, "is a directory");
    rmdir(dir);

    /* A short error buffer truncates the message but never overflows. */
    char tiny[8];
    assert_int_equal(hist_load(missing, &h, tiny, sizeof tiny), -1);
    assert_int_equal(strlen(tiny), 7);
}

/* ---- lengths lists, hist_write, round trips ------------------------------------------------ */

/* Writes h to a temporary .hist and loads it back into back. */
static void write_and_reload(const Hist *h, const char *header, Hist *back)
{
    char path[256] = "/tmp/labench-test-XXXXXX", err[ERRLEN];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(hist_write(f, h, header), 0);
    fclose(f);
    int rc = hist_load(path, back, err, sizeof err);
    if (rc != 0) print_error("%s\n", err);
    unlink(path);
    assert_int_equal(rc, 0);
}

static void test_lengths_list_groups(void **state)
{
    (void)state;
    const char *text = "100\n100\n50 10\r\n100 99\n# a comment\n50 10   # same pair again\n"
                       "7 3\n\n100\n1\n50 20%\n";
    char path[256], err[ERRLEN];
    Hist h;
    assert_int_equal(load_text(text, strlen(text), 1, &h, path, err), 0);
    assert_int_equal(h.total, 9);
    assert_int_equal(h.n_bins, 6);
    /* Sorted by length, then target (default first); line = first occurrence. */
    assert_bin(&h.bins[0], 1, 1, 1, TGT_DEFAULT, 0, 0, 10);
    assert_bin(&h.bins[1], 7, 7, 1, TGT_TOKENS, 3, 3, 7);
    assert_bin(&h.bins[2], 50, 50, 2, TGT_TOKENS, 10, 10, 3);
    assert_bin(&h.bins[3], 50, 50, 1, TGT_PERCENT, 20, 20, 11);
    assert_bin(&h.bins[4], 100, 100, 3, TGT_DEFAULT, 0, 0, 1);
    assert_bin(&h.bins[5], 100, 100, 1, TGT_TOKENS, 99, 99, 4);

    Hist back;
    write_and_reload(&h, "round trip\nsecond header line", &back);
    assert_same_hist(&h, &back);
    hist_free(&back);
    hist_free(&h);
}

/* Real exports: numpy's first bin edge is 0, and empty records have length 0. A bin from 0
 * draws from 1; length-0 samples are dropped and counted, whatever their (valid) target. */
static void test_zero_lengths_accepted(void **state)
{
    (void)state;
    const char *text = "0-3237 10 50%\n"
                       "0 4\n"
                       "0-0 2 0\n"
                       "100 1\n";
    char path[256], err[ERRLEN];
    Hist h;
    assert_int_equal(load_text(text, strlen(text), 0, &h, path, err), 0);
    assert_int_equal(h.n_bins, 2);
    assert_int_equal(h.total, 11);
    assert_bin(&h.bins[0], 0, 3237, 10, TGT_PERCENT, 50, 50, 1);
    assert_bin(&h.bins[1], 100, 100, 1, TGT_DEFAULT, 0, 0, 4);
    assert_int_equal(h.zero_count, 6);
    assert_int_equal(h.zero_lines, 2);
    assert_int_equal(h.zero_first_line, 2);
    char note[ERRLEN];
    assert_int_equal(hist_zero_note(&h, note, sizeof note), 1);
    assert_err(note, path, 0, "dropped 6 samples of length 0 (2 lines from line 2); 11 left");

    /* Drawn lengths start at 1, never 0; the whole composition is the 11 kept. */
    Sample *s;
    int64_t n;
    assert_int_equal(sample_draw(&h, 0, 1.0, 7, &s, &n, err, sizeof err), 0);
    assert_int_equal(n, 11);
    int32_t shortest = INT32_MAX;
    for (int64_t i = 0; i < 10; i++) {
        assert_true(s[i].len >= 1 && s[i].len <= 3237);
        if (s[i].len < shortest) shortest = s[i].len;
    }
    free(s);
    assert_int_equal(sample_draw(&h, 5000, 1.0, 7, &s, &n, err, sizeof err), 0);
    for (int64_t i = 0; i < n; i++) assert_true(s[i].len >= 1);
    free(s);

    /* Written back as read: the 0 edge stays. */
    Hist back;
    write_and_reload(&h, "zero edge", &back);
    assert_same_hist(&h, &back);
    hist_free(&back);
    hist_free(&h);

    /* A file without any: no note. */
    const char *plain = "5 1\n";
    assert_int_equal(load_text(plain, strlen(plain), 0, &h, path, err), 0);
    assert_int_equal(hist_zero_note(&h, note, sizeof note), 0);
    hist_free(&h);

    /* Lengths lists: a `0` line (with or without a target) is an empty record. */
    const char *list = "0\n5 2\n0 0\n0 7\n5 2\n";
    assert_int_equal(load_text(list, strlen(list), 1, &h, path, err), 0);
    assert_int_equal(h.n_bins, 1);
    assert_bin(&h.bins[0], 5, 5, 2, TGT_TOKENS, 2, 2, 2);
    assert_int_equal(h.zero_count, 3);
    assert_int_equal(h.zero_first_line, 1);
    hist_free(&h);
}

static const BadCase BAD_LENGTHS[] = {
    { "", 0, 0, "empty file" },
    { "# nothing\n", 0, 0, "no data lines" },
    { "100\n100-200\n", 0, 2, "'100-200' is a range" },
    { "100\n100 100\n", 0, 2, "target 100 tokens over the length" },
    { "0\n0 0\n", 0, 0, "nothing left: all 2 samples have length 0" },
    { "5\n-1\n", 0, 2, "length must be 0 or more (got '-1')" },
    { "100 5 6\n", 0, 1, "unexpected '6'" },
    { "100 x\n", 0, 1, "bad target 'x'" },
    { "\0\n", 2, 0, "not a text file" },
};

static void test_bad_lengths_inputs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof BAD_LENGTHS / sizeof BAD_LENGTHS[0]; i++) {
        const BadCase *c = &BAD_LENGTHS[i];
        char path[256], err[ERRLEN] = "";
        Hist h;
        int rc = load_text(c->text, c->len ? c->len : strlen(c->text), 1, &h, path, err);
        if (rc != -1) {
            print_error("lengths case %zu (\"%s\") was accepted\n", i, c->text);
            fail();
        }
        assert_err(err, path, c->line, c->want);
    }
}

static void test_write_round_trips_every_target_form(void **state)
{
    (void)state;
    const char *text = "1 2\n5-9 3 4\n10-20 4 2-30\n30 5 62.35%\n40-50 6 0.1%-99.9%\n"
                       "60 7 33.333333333333336%\n";
    char path[256], err[ERRLEN];
    Hist h, back;
    assert_int_equal(load_text(text, strlen(text), 0, &h, path, err), 0);
    write_and_reload(&h, NULL, &back);
    assert_same_hist(&h, &back);
    hist_free(&back);

    /* The written text is readable: no 62.350000000000001. */
    char buf[1024] = "";
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    assert_int_equal(hist_write(f, &h, "hello"), 0);
    fclose(f);
    assert_string_equal(buf, "# hello\n1 2\n5-9 3 4\n10-20 4 2-30\n30 5 62.35%\n40-50 6 0.1%-99.9%\n"
                             "60 7 33.333333333333336%\n");
    hist_free(&h);
}

/* ---- labench hist -------------------------------------------------------------------------- */

static int run_cmd(const char *a0, const char *a1, const char *a2, const char *a3, const char *a4,
                   const char *a5)
{
    char *argv[] = { (char *)a0, (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5, NULL };
    int argc = 0;
    while (argv[argc]) argc++;
    return cmd_hist(argc, argv, "labench hist");
}

static void test_cmd_hist_lossless_and_binned(void **state)
{
    (void)state;
    const char *text = "10 5\n20 5\n150\n250 25\n260 60%\n10 5\n";
    char in[256], out[300], err[ERRLEN];
    test_write_file(in, sizeof in, text, strlen(text));
    snprintf(out, sizeof out, "%s.hist", in);

    assert_int_equal(run_cmd("hist", in, "-o", out, NULL, NULL), 0);
    Hist want, got;
    assert_int_equal(hist_load_lengths(in, &want, err, sizeof err), 0);
    assert_int_equal(hist_load(out, &got, err, sizeof err), 0);
    assert_same_hist(&want, &got);
    hist_free(&want);
    hist_free(&got);

    /* Bins [1,100], [101,200], [201,300]: targets 50%,50%,25% -> 41.67%; default stays
     * default; 10% and 60% -> 35%. */
    assert_int_equal(run_cmd("hist", "--bin-width", "100", in, "-o", out), 0);
    assert_int_equal(hist_load(out, &got, err, sizeof err), 0);
    assert_int_equal(got.n_bins, 3);
    assert_int_equal(got.total, 6);
    assert_bin(&got.bins[0], 1, 100, 3, TGT_PERCENT, 41.67, 41.67, got.bins[0].line);
    assert_bin(&got.bins[1], 101, 200, 1, TGT_DEFAULT, 0, 0, got.bins[1].line);
    assert_bin(&got.bins[2], 201, 300, 2, TGT_PERCENT, 35, 35, got.bins[2].line);
    hist_free(&got);
    unlink(out);

    /* Bad input and bad options: status 2, and no output file left behind. */
    const char *bad = "100\n-1\n";
    char badin[256];
    test_write_file(badin, sizeof badin, bad, strlen(bad));
    assert_int_equal(run_cmd("hist", badin, "-o", out, NULL, NULL), 2);
    assert_int_equal(access(out, F_OK), -1);
    assert_int_equal(run_cmd("hist", in, "--bin-width", "0", "-o", out), 2);
    assert_int_equal(run_cmd("hist", in, "--bogus", NULL, NULL, NULL), 2);
    assert_int_equal(run_cmd("hist", in, "-o", NULL, NULL, NULL), 2);
    assert_int_equal(run_cmd("hist", NULL, NULL, NULL, NULL, NULL), 2);
    assert_int_equal(run_cmd("hist", in, badin, NULL, NULL, NULL), 2);
    assert_int_equal(access(out, F_OK), -1);
    unlink(badin);
    unlink(in);
}

/* ---- sampler ------------------------------------------------------------------------------- */

static void load_data(const char *name, Hist *h)
{
    char path[256], err[ERRLEN];
    snprintf(path, sizeof path, "data/%s", name);
    int rc = hist_load(path, h, err, sizeof err);
    if (rc != 0) print_error("%s (tests run from the repository root)\n", err);
    assert_int_equal(rc, 0);
}

static void test_sampler_deterministic(void **state)
{
    (void)state;
    Hist h;
    load_data("longalign-mix.hist", &h);
    char err[ERRLEN];
    Sample *a, *b, *c;
    int64_t na, nb, nc;
    assert_int_equal(sample_draw(&h, 5000, 1.0, 42, &a, &na, err, sizeof err), 0);
    assert_int_equal(sample_draw(&h, 5000, 1.0, 42, &b, &nb, err, sizeof err), 0);
    assert_int_equal(sample_draw(&h, 5000, 1.0, 43, &c, &nc, err, sizeof err), 0);
    assert_int_equal(na, 5000);
    assert_int_equal(nb, 5000);
    assert_int_equal(nc, 5000);
    assert_memory_equal(a, b, (size_t)na * sizeof *a);
    int64_t differ = 0;
    for (int64_t i = 0; i < na; i++) differ += a[i].len != c[i].len;
    assert_true(differ > 4500);    /* lengths mostly come from wide bins: nearly all differ */
    /* Pinned: the same on every machine, and a change to the sampler's stream is noticed
     * (such a change alters every benchmark's samples, so it should be deliberate). */
    const Sample pinned[4] = { {176, 119}, {692, 354}, {788, 532}, {1370, 973} };   /* data/longalign-mix.hist */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(a[i].len, pinned[i].len);
        assert_int_equal(a[i].target, pinned[i].target);
    }
    free(a);
    free(b);
    free(c);
    hist_free(&h);
}

/* Disjoint bins, so each sample's bin can be told from its length. */
static const char *COMPOSITION =
    "1 3\n"
    "2-10 50\n"
    "11 7 5\n"
    "20-100 200 5-500\n"
    "200-300 100 40%-60%\n"
    "1000 20 25%\n";

static void test_sampler_exact_composition(void **state)
{
    (void)state;
    char path[256], err[ERRLEN];
    Hist h;
    assert_int_equal(load_text(COMPOSITION, strlen(COMPOSITION), 0, &h, path, err), 0);
    Sample *s;
    int64_t n;
    assert_int_equal(sample_draw(&h, 0, 1.0, 7, &s, &n, err, sizeof err), 0);
    assert_int_equal(n, h.total);
    int64_t seen[6] = {0};
    for (int64_t i = 0; i < n; i++) {
        int b = -1;
        for (int k = 0; k < h.n_bins; k++)
            if (s[i].len >= h.bins[k].lo && s[i].len <= h.bins[k].hi) b = k;
        assert_true(b >= 0);
        seen[b]++;
        int32_t len = s[i].len, t = s[i].target;
        if (len == 1) assert_int_equal(t, 0);
        else assert_true(t >= 1 && t <= len - 1);
        switch (b) {
        case 1: assert_int_equal(t, len - 1); break;                    /* default */
        case 2: assert_int_equal(t, 5); break;                          /* fixed */
        case 3: assert_true(t >= 5 && t <= (len - 1 < 500 ? len - 1 : 500)); break;
        case 4: assert_true(t >= llround(0.4 * len) && t <= llround(0.6 * len)); break;
        case 5: assert_int_equal(t, 250); break;                        /* 25% of 1000 */
        default: break;
        }
    }
    for (int k = 0; k < h.n_bins; k++) assert_int_equal(seen[k], h.bins[k].count);
    free(s);

    /* n > 0 from a 1:3:6 histogram: each bin's share within 1% of its probability. */
    const char *shares = "10 1000\n20 3000\n30 6000\n";
    Hist h2;
    assert_int_equal(load_text(shares, strlen(shares), 0, &h2, path, err), 0);
    assert_int_equal(sample_draw(&h2, 200000, 1.0, 9, &s, &n, err, sizeof err), 0);
    assert_int_equal(n, 200000);
    int64_t c10 = 0, c20 = 0, c30 = 0;
    for (int64_t i = 0; i < n; i++) {
        c10 += s[i].len == 10;
        c20 += s[i].len == 20;
        c30 += s[i].len == 30;
    }
    assert_int_equal(c10 + c20 + c30, n);
    assert_close((double)c10 / n, 0.1, 0.01, 0);
    assert_close((double)c20 / n, 0.3, 0.01, 0);
    assert_close((double)c30 / n, 0.6, 0.01, 0);
    free(s);
    hist_free(&h2);

    /* Tiny counts make every bin boundary of the cumulative search matter. */
    const char *small = "10 1\n20 1\n30 2\n";
    assert_int_equal(load_text(small, strlen(small), 0, &h2, path, err), 0);
    assert_int_equal(sample_draw(&h2, 40000, 1.0, 11, &s, &n, err, sizeof err), 0);
    int64_t by_len[4] = {0};
    for (int64_t i = 0; i < n; i++) by_len[s[i].len / 10]++;
    assert_close((double)by_len[1] / n, 0.25, 0.01, 0);
    assert_close((double)by_len[2] / n, 0.25, 0.01, 0);
    assert_close((double)by_len[3] / n, 0.5, 0.01, 0);
    free(s);
    hist_free(&h2);
    hist_free(&h);
}

static void test_sampler_len_scale(void **state)
{
    (void)state;
    Hist h;
    load_data("longalign-10k.hist", &h);
    char err[ERRLEN];
    Sample *a, *b;
    int64_t na, nb;
    assert_int_equal(sample_draw(&h, 0, 1.0, 5, &a, &na, err, sizeof err), 0);
    assert_int_equal(sample_draw(&h, 0, 1.0 / 16, 5, &b, &nb, err, sizeof err), 0);
    assert_int_equal(na, 9888);
    assert_int_equal(nb, 9888);
    SampleStats sa, sb;
    sample_stats(a, na, &sa);
    sample_stats(b, nb, &sb);
    assert_close(sb.mean_len, sa.mean_len / 16, 0, 0.001);
    /* Same seed, same draws: every sample is its unscaled twin, scaled and rounded; the
     * token target (100-1000) is scaled too. */
    for (int64_t i = 0; i < na; i++) {
        assert_int_equal(b[i].len, llround(a[i].len / 16.0));
        int64_t t = llround(a[i].target / 16.0);
        if (t < 1) t = 1;
        assert_int_equal(b[i].target, t);
    }
    free(a);
    free(b);

    /* Scaling can shrink a sample to 1 token (0 targets) but never below. */
    const char *tiny = "1-3 100 50%\n";
    char path[256];
    Hist ht;
    assert_int_equal(load_text(tiny, strlen(tiny), 0, &ht, path, err), 0);
    assert_int_equal(sample_draw(&ht, 0, 0.01, 1, &a, &na, err, sizeof err), 0);
    for (int64_t i = 0; i < na; i++) {
        assert_int_equal(a[i].len, 1);
        assert_int_equal(a[i].target, 0);
    }
    free(a);
    hist_free(&ht);
    hist_free(&h);
}

static void test_sampler_refuses(void **state)
{
    (void)state;
    char path[256], err[ERRLEN];
    Sample dummy;
    Sample *s = &dummy;           /* must be reset to NULL on failure */
    int64_t n = 5;
    const char *big = "100 2000000000\n";
    Hist h;
    assert_int_equal(load_text(big, strlen(big), 0, &h, path, err), 0);

    assert_int_equal(sample_draw(&h, 0, 1.0, 1, &s, &n, err, sizeof err), -1);
    assert_null(s);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err, "over the limit of 10^9"));
    assert_int_equal(sample_draw(&h, INT64_C(1000000001), 1.0, 1, &s, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "at most 10^9"));
    assert_int_equal(sample_draw(&h, 0, 0.0, 1, &s, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "length scale"));
    assert_int_equal(sample_draw(&h, 10, -1.0, 1, &s, &n, err, sizeof err), -1);
    assert_int_equal(sample_draw(&h, 10, NAN, 1, &s, &n, err, sizeof err), -1);
    assert_int_equal(sample_draw(&h, 10, 1.0, 1, &s, &n, err, sizeof err), 0);   /* n given: fine */
    assert_int_equal(n, 10);
    free(s);
    hist_free(&h);

    const char *huge = "# c\n2147483647 3\n";
    assert_int_equal(load_text(huge, strlen(huge), 0, &h, path, err), 0);
    assert_int_equal(sample_draw(&h, 0, 2.0, 1, &s, &n, err, sizeof err), -1);
    assert_err(err, path, 2, "over the limit 2147483647");
    assert_int_equal(sample_draw(&h, 0, 1.0, 1, &s, &n, err, sizeof err), 0);
    assert_int_equal(s[0].len, INT32_MAX);
    assert_int_equal(s[0].target, INT32_MAX - 1);
    free(s);
    hist_free(&h);
}

static void test_sample_stats(void **state)
{
    (void)state;
    Sample s[] = { {5, 4}, {1, 0}, {3, 1}, {2, 1}, {4, 2} };
    SampleStats st;
    sample_stats(s, 5, &st);
    assert_int_equal(st.count, 5);
    assert_int_equal(st.tokens, 15);
    assert_int_equal(st.targets, 8);
    assert_close(st.mean_len, 3.0, 0, 0);
    assert_int_equal(st.min_len, 1);
    assert_int_equal(st.median_len, 3);
    assert_int_equal(st.p90_len, 5);
    assert_int_equal(st.max_len, 5);
    sample_stats(s, 4, &st);            /* {5,1,3,2}: nearest-rank median 2, p90 5 */
    assert_int_equal(st.median_len, 2);
    assert_int_equal(st.p90_len, 5);
    sample_stats(s, 0, &st);
    assert_int_equal(st.count, 0);
    assert_int_equal(st.max_len, 0);
}

/* ---- shipped distributions ----------------------------------------------------------------- */

static double hist_mean(const Hist *h)
{
    double sum = 0;
    for (int i = 0; i < h->n_bins; i++)
        sum += (double)h->bins[i].count * (double)(h->bins[i].lo + h->bins[i].hi) / 2.0;
    return sum / (double)h->total;
}

/* data/longalign-10k.hist is longalign-10k-quantiles.hist's buckets in ChatGLM3 tokens
 * (scripts/make_longalign_hists.py): the same counts, edges x 63954/53176, from the paper's 8k. */
static void test_shipped_longalign_10k(void **state)
{
    (void)state;
    Hist h, q;
    load_data("longalign-10k.hist", &h);
    load_data("longalign-10k-quantiles.hist", &q);
    assert_int_equal(h.total, 9888);
    assert_int_equal(q.total, 9888);
    assert_int_equal(h.n_bins, q.n_bins);
    assert_int_equal(h.bins[0].lo, 8192);
    assert_int_equal(h.bins[h.n_bins - 1].hi, 63954);   /* row 0: 63,954 ChatGLM3 = 53,176 Qwen3 tokens */
    for (int i = 0; i < h.n_bins; i++) {
        const HistBin *b = &h.bins[i];
        if (i > 0) assert_int_equal(b->lo, h.bins[i - 1].hi + 1);   /* contiguous */
        assert_int_equal(b->count, q.bins[i].count);
        assert_int_equal(b->hi, llround((double)q.bins[i].hi * 63954.0 / 53176.0));
        assert_int_equal(b->target.kind, TGT_TOKENS);
        assert_close(b->target.lo, 100, 0, 0);
        assert_close(b->target.hi, 1000, 0, 0);
    }
    /* The measured shape: half the rows below the median (13.8k ChatGLM3 tokens), 10% above p90. */
    assert_int_equal(h.bins[0].count, 9888 / 2);
    assert_int_equal(h.bins[h.n_bins - 1].count, 989);
    assert_close(hist_mean(&h), 20452, 1, 0);
    hist_free(&q);
    hist_free(&h);
}

static void test_shipped_sharegpt(void **state)
{
    (void)state;
    Hist h;
    load_data("sharegpt.hist", &h);
    assert_int_equal(h.total, 100000);
    int64_t in_200_2k = 0;
    for (int i = 0; i < h.n_bins; i++) {
        const HistBin *b = &h.bins[i];
        assert_true(b->hi <= 8192);
        assert_int_equal(b->target.kind, TGT_PERCENT);
        assert_close(b->target.lo, 50, 0, 0);
        assert_close(b->target.hi, 75, 0, 0);
        if (b->lo >= 256 && b->hi <= 2047) in_200_2k += b->count;
    }
    assert_int_equal(h.bins[h.n_bins - 1].hi, 8192);
    assert_true(in_200_2k > 65000);       /* most samples are short chat (256-2047 tokens) */
    double m = hist_mean(&h);
    assert_true(m > 1000 && m < 1500);
    hist_free(&h);
}

/* data/longalign-mix.hist keeps Figure 3's counts bin by bin, split into a LongAlign-10k part
 * (100-1000 response tokens) and a ShareGPT part (50%-75%). */
static void test_shipped_mix(void **state)
{
    (void)state;
    Hist mix, fig3, lng;
    load_data("longalign-mix.hist", &mix);
    load_data("longalign-fig3-trainmix.hist", &fig3);
    load_data("longalign-10k.hist", &lng);
    assert_int_equal(mix.total, fig3.total);
    assert_int_equal(mix.total, 92950);
    int64_t long_count = 0;
    int j = 0;
    for (int i = 0; i < fig3.n_bins; i++) {
        const HistBin *f = &fig3.bins[i];
        int64_t sum = 0;
        for (; j < mix.n_bins && mix.bins[j].lo == f->lo && mix.bins[j].hi == f->hi; j++) {
            const HistBin *b = &mix.bins[j];
            sum += b->count;
            if (b->target.kind == TGT_TOKENS) {
                assert_close(b->target.lo, 100, 0, 0);
                assert_close(b->target.hi, 1000, 0, 0);
                assert_true(b->hi > 8192);   /* LongAlign-10k starts at 8k */
                long_count += b->count;
            } else {
                assert_int_equal(b->target.kind, TGT_PERCENT);
                assert_close(b->target.lo, 50, 0, 0);
                assert_close(b->target.hi, 75, 0, 0);
            }
        }
        assert_int_equal(sum, f->count);
    }
    assert_int_equal(j, mix.n_bins);
    assert_true(long_count > 9000 && long_count <= lng.total);
    double m = hist_mean(&mix);
    print_message("longalign-mix: %lld samples, %lld of them LongAlign-10k, mean length %.1f\n",
                  (long long)mix.total, (long long)long_count, m);
    assert_close(m, 5355, 1, 0);
    assert_int_equal(mix.bins[0].lo, 0);   /* as the figure: drawn from 1 */

    /* Drawing the whole mix reproduces that mean, and every sample fits its bin's rules. */
    char err[ERRLEN];
    Sample *s;
    int64_t n;
    assert_int_equal(sample_draw(&mix, 0, 1.0, 3, &s, &n, err, sizeof err), 0);
    SampleStats st;
    sample_stats(s, n, &st);
    assert_close(st.mean_len, m, 0, 0.01);
    assert_true(st.min_len >= 1 && st.max_len <= 61014);
    for (int64_t i = 0; i < n; i++) assert_true(s[i].target >= 1 || s[i].len == 1);
    free(s);
    hist_free(&lng);
    hist_free(&fig3);
    hist_free(&mix);
}

/* The two LongAlign files are what scripts/make_longalign_hists.py makes of their sources. */
static void test_longalign_files_current(void **state)
{
    (void)state;
    char out[4096];
    if (test_run_capture("python3 --version", out, sizeof out) != 0) {
        print_message("SKIP: no python3 to run scripts/make_longalign_hists.py --check\n");
        skip();
    }
    int rc = test_run_capture("python3 scripts/make_longalign_hists.py --check", out, sizeof out);
    if (rc != 0) print_error("%s\n", out);
    assert_int_equal(rc, 0);
}

/* The real and published files load, with the totals their headers state. */
static void test_shipped_sources(void **state)
{
    (void)state;
    const struct { const char *name; int64_t total; } files[] = {
        {"longalign-fig3-trainmix.hist", 92950}, {"longalign-10k-quantiles.hist", 9888},
        {"openchat_v1_multipack.hist", 6144}, {"azure-llm-conv-2023.hist", 19366},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        Hist h;
        load_data(files[i].name, &h);
        assert_int_equal(h.total, files[i].total);
        assert_int_equal(h.zero_count, 0);
        hist_free(&h);
    }
    /* The trace: every request's reply is its target, so the mean reply is 211 tokens. */
    Hist az;
    load_data("azure-llm-conv-2023.hist", &az);
    double replies = 0;
    for (int i = 0; i < az.n_bins; i++) {
        assert_int_equal(az.bins[i].target.kind, TGT_TOKENS);
        replies += az.bins[i].target.lo * (double)az.bins[i].count;
    }
    assert_close(replies / (double)az.total, 211.1, 0.05, 0);
    assert_close(hist_mean(&az), 1365.8, 0.05, 0);
    hist_free(&az);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_lines_and_targets),
        cmocka_unit_test(test_parse_limits_accepted),
        cmocka_unit_test(test_docs_example_loads),
        cmocka_unit_test(test_zero_lengths_accepted),
        cmocka_unit_test(test_bad_hist_inputs),
        cmocka_unit_test(test_missing_and_directory),
        cmocka_unit_test(test_lengths_list_groups),
        cmocka_unit_test(test_bad_lengths_inputs),
        cmocka_unit_test(test_write_round_trips_every_target_form),
        cmocka_unit_test(test_cmd_hist_lossless_and_binned),
        cmocka_unit_test(test_sampler_deterministic),
        cmocka_unit_test(test_sampler_exact_composition),
        cmocka_unit_test(test_sampler_len_scale),
        cmocka_unit_test(test_sampler_refuses),
        cmocka_unit_test(test_sample_stats),
        cmocka_unit_test(test_shipped_longalign_10k),
        cmocka_unit_test(test_shipped_sharegpt),
        cmocka_unit_test(test_shipped_mix),
        cmocka_unit_test(test_shipped_sources),
        cmocka_unit_test(test_longalign_files_current),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
