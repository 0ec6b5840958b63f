/* scripts/lengths.py: from a JSONL chat dataset to a lengths list that `labench hist` reads.
 * The dataset is made here; the tokenizer is the tokenizer.json that the anthropic 0.34.2 wheel
 * ships, read by the tokenizers library, both installed into .venv/ by scripts/setup.sh. Where
 * they are not importable (no network when setup ran) the tests skip and say why. Run from the
 * repository root (make test does). */
#include "tests/test_util.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include "bench/input/hist.h"

static char PYTHON[256], TOKENIZER[1024];

/* The interpreter (LABENCH_PYTHON, else .venv's, else python3) and the packaged tokenizer.json;
 * 0 when both are there, else the reason in why. */
static int find_tools(char *why, size_t n)
{
    const char *env = getenv("LABENCH_PYTHON");
    struct stat st;
    snprintf(PYTHON, sizeof PYTHON, "%s", env ? env : stat(".venv/bin/python3", &st) == 0 ? ".venv/bin/python3" : "python3");
    char cmd[1024], out[2048];
    snprintf(cmd, sizeof cmd,
             "%s -c 'import os, tokenizers, importlib.util as u; "
             "print(os.path.join(u.find_spec(\"anthropic\").submodule_search_locations[0], \"tokenizer.json\"))'",
             PYTHON);
    if (test_run_capture(cmd, out, sizeof out) != 0) {
        snprintf(why, n, "%s cannot import tokenizers or find the anthropic package (scripts/setup.sh installs "
                 "tokenizers==0.22.2 and anthropic==0.34.2 into .venv)", PYTHON);
        return -1;
    }
    size_t len = strcspn(out, "\n");
    if (len >= sizeof TOKENIZER) {
        snprintf(why, n, "the anthropic package's path is too long");
        return -1;
    }
    memcpy(TOKENIZER, out, len);
    TOKENIZER[len] = 0;
    if (stat(TOKENIZER, &st) != 0) {
        snprintf(why, n, "%s: no tokenizer.json in the anthropic package", TOKENIZER);
        return -1;
    }
    return 0;
}

static int setup(void **state)
{
    (void)state;
    char why[4096];
    if (find_tools(why, sizeof why) != 0) {
        printf("SKIP: scripts/lengths.py: %s\n", why);
        PYTHON[0] = 0;
    }
    return 0;
}

#define NEED_TOOLS() do { if (!PYTHON[0]) skip(); } while (0)

/* Token counts of texts, each on its own, by the same tokenizer (no special tokens). */
static void token_counts(const char *const *texts, int n, int *counts)
{
    char script[] = "/tmp/labench-count-XXXXXX";
    int fd = mkstemp(script);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "import json, sys\nfrom tokenizers import Tokenizer\nt = Tokenizer.from_file(sys.argv[1])\n"
               "for s in json.load(open(sys.argv[2])):\n    print(len(t.encode(s, add_special_tokens=False).ids))\n");
    fclose(f);
    char list[] = "/tmp/labench-texts-XXXXXX";
    fd = mkstemp(list);
    f = fdopen(fd, "w");
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        fputc('"', f);
        for (const char *c = texts[i]; *c; c++) {
            if (*c == '\n') fputs("\\n", f);
            else fputc(*c, f);
        }
        fprintf(f, "\"%s", i + 1 < n ? "," : "");
    }
    fputc(']', f);
    fclose(f);
    char cmd[4096], out[4096];
    snprintf(cmd, sizeof cmd, "%s %s %s %s", PYTHON, script, TOKENIZER, list);
    assert_int_equal(0, test_run_capture(cmd, out, sizeof out));
    char *p = out;
    for (int i = 0; i < n; i++) counts[i] = (int)strtol(p, &p, 10);
    unlink(script);
    unlink(list);
}

static const char JSONL[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"You are helpful.\"}, "
    "{\"role\": \"user\", \"content\": \"Summarize the report below.\"}, "
    "{\"role\": \"assistant\", \"content\": \"It says revenue grew by a third.\"}, "
    "{\"role\": \"user\", \"content\": \"And costs?\"}, "
    "{\"role\": \"assistant\", \"content\": [{\"type\": \"text\", \"text\": \"Costs fell.\"}]}]}\n"
    "{\"prompt\": \"Translate: bonjour\", \"response\": \"hello\"}\n"
    "\n"
    "{\"instruction\": \"Summarize the report below.\", \"input\": \"Revenue grew.\", \"output\": \"Growth.\"}\n"
    "{\"conversations\": [{\"from\": \"human\", \"value\": \"And costs?\"}, {\"from\": \"gpt\", \"value\": \"\"}]}\n";

enum { T_SYS, T_ASK, T_ANS1, T_COSTS, T_ANS2, T_TRANS, T_HELLO, T_ALPACA, T_GROWTH, N_TEXTS };
static const char *const TEXTS[N_TEXTS] = {
    "You are helpful.", "Summarize the report below.", "It says revenue grew by a third.", "And costs?",
    "Costs fell.", "Translate: bonjour", "hello", "Summarize the report below.\nRevenue grew.", "Growth.",
};

static void write_jsonl(char *path, size_t n)
{
    test_write_file(path, n, JSONL, sizeof JSONL - 1);
}

/* Every layout: the lengths are the sums of its texts' tokens, the targets the responses'. */
static void test_layouts_and_counts(void **state)
{
    (void)state;
    NEED_TOOLS();
    int c[N_TEXTS];
    token_counts(TEXTS, N_TEXTS, c);
    for (int i = 0; i < N_TEXTS; i++) assert_true(c[i] >= 1);
    char in[64], cmd[4096], out[8192];
    write_jsonl(in, sizeof in);

    snprintf(cmd, sizeof cmd, "%s scripts/lengths.py %s --tokenizer %s", PYTHON, in, TOKENIZER);
    assert_int_equal(0, test_run_capture(cmd, out, sizeof out));
    long got[8][2];
    int n = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
        if (line[0] >= '0' && line[0] <= '9' && n < 8) got[n][1] = -1, sscanf(line, "%ld %ld", &got[n][0], &got[n][1]), n++;
    /* one data line per record: the conversation with an empty reply is skipped as a length-0 line,
     * so every record keeps its index */
    assert_int_equal(n, 4);
    assert_int_equal(got[3][0], 0);
    assert_int_equal(got[3][1], -1);
    /* messages: every assistant turn is response, the list-of-parts content included */
    assert_int_equal(got[0][0], c[T_SYS] + c[T_ASK] + c[T_ANS1] + c[T_COSTS] + c[T_ANS2]);
    assert_int_equal(got[0][1], c[T_ANS1] + c[T_ANS2]);
    assert_int_equal(got[1][0], c[T_TRANS] + c[T_HELLO]);   /* prompt/response */
    assert_int_equal(got[1][1], c[T_HELLO]);
    assert_int_equal(got[2][0], c[T_ALPACA] + c[T_GROWTH]);   /* instruction + "\n" + input, output */
    assert_int_equal(got[2][1], c[T_GROWTH]);
    unlink(in);
}

/* Template allowances, the last turn alone, and the round trip through `labench hist`. */
static void test_options_and_labench_hist(void **state)
{
    (void)state;
    NEED_TOOLS();
    int c[N_TEXTS];
    token_counts(TEXTS, N_TEXTS, c);
    char in[64], list[128], hist[128], cmd[4096], out[8192];
    write_jsonl(in, sizeof in);
    snprintf(list, sizeof list, "%s.lengths", in);
    snprintf(hist, sizeof hist, "%s.hist", in);
    snprintf(cmd, sizeof cmd, "%s scripts/lengths.py %s --tokenizer %s --per-message 3 --per-sample 1 --last-turn-only -o %s",
             PYTHON, in, TOKENIZER, list);
    assert_int_equal(0, test_run_capture(cmd, out, sizeof out));
    assert_non_null(strstr(out, "lengths.py: 3 samples; skipped 1 with no response tokens (line 5; written as length 0)"));

    const char *labench = getenv("LABENCH") ? getenv("LABENCH") : "./labench";
    snprintf(cmd, sizeof cmd, "%s hist %s -o %s", labench, list, hist);
    assert_int_equal(0, test_run_capture(cmd, out, sizeof out));
    Hist h;
    char err[2048];
    assert_int_equal(0, hist_load(hist, &h, err, sizeof err));
    assert_int_equal(h.total, 3);
    /* sorted by length; find the chat: 5 messages x 3 + 1, its last answer only */
    int64_t chat = c[T_SYS] + c[T_ASK] + c[T_ANS1] + c[T_COSTS] + c[T_ANS2] + 5 * 3 + 1;
    int found = 0;
    for (int i = 0; i < h.n_bins; i++)
        if (h.bins[i].lo == chat) {
            assert_int_equal(h.bins[i].target.kind, TGT_TOKENS);
            assert_int_equal((int64_t)h.bins[i].target.lo, c[T_ANS2]);
            found = 1;
        }
    assert_true(found);
    hist_free(&h);
    unlink(list);
    unlink(hist);
    unlink(in);
}

/* Bad input: exit 2, FILE:LINE and what to do; -o never leaves a file behind. */
static void test_bad_input(void **state)
{
    (void)state;
    NEED_TOOLS();
    char in[64], cmd[4096], out[8192], want[256], dest[128];
    const char *bad = "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\", oops}\n";
    test_write_file(in, sizeof in, bad, strlen(bad));
    snprintf(dest, sizeof dest, "%s.out", in);
    snprintf(cmd, sizeof cmd, "%s scripts/lengths.py %s --tokenizer %s -o %s", PYTHON, in, TOKENIZER, dest);
    assert_int_equal(2, test_run_capture(cmd, out, sizeof out));
    snprintf(want, sizeof want, "%s:2: not JSON", in);
    assert_non_null(strstr(out, want));
    assert_int_equal(-1, access(dest, F_OK));
    unlink(in);

    const char *odd = "{\"text\": \"no layout\", \"id\": 3}\n";
    test_write_file(in, sizeof in, odd, strlen(odd));
    snprintf(cmd, sizeof cmd, "%s scripts/lengths.py %s --tokenizer %s -o %s", PYTHON, in, TOKENIZER, dest);
    assert_int_equal(2, test_run_capture(cmd, out, sizeof out));
    snprintf(want, sizeof want, "%s:1: no known layout (fields: id, text)", in);
    assert_non_null(strstr(out, want));
    assert_int_equal(-1, access(dest, F_OK));

    snprintf(cmd, sizeof cmd, "%s scripts/lengths.py %s --tokenizer /nonexistent/tokenizer.json", PYTHON, in);
    assert_int_equal(2, test_run_capture(cmd, out, sizeof out));
    assert_non_null(strstr(out, "/nonexistent/tokenizer.json: no such tokenizer file or folder"));
    unlink(in);

    const char *empty_replies = "{\"prompt\": \"a\", \"response\": \"\"}\n";
    test_write_file(in, sizeof in, empty_replies, strlen(empty_replies));
    snprintf(cmd, sizeof cmd, "%s scripts/lengths.py %s --tokenizer %s", PYTHON, in, TOKENIZER);
    assert_int_equal(2, test_run_capture(cmd, out, sizeof out));
    assert_non_null(strstr(out, "no sample has a response"));
    unlink(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layouts_and_counts),
        cmocka_unit_test(test_options_and_labench_hist),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests_name("lengths", tests, setup, NULL);
}
