/* labench plan --emit-batches and its reader python/labench_batches (tests/plan_export_check.py
 * does the Python side; python3 is always there, torch is not needed):
 *   - every index once per epoch, rows within max_tokens, truncation said, step weights summing
 *     to 1 and Eq. 2 per step (1e-12), the longest 10%'s share equal to the plan's own metric,
 *     for several strategies;
 *   - the reader reads plain and gzip alike, and resumes from a step;
 *   - bad input: the clear error, naming file, line and field; the CLI's refusals;
 *   - end to end: the collator's packed row of a micro-batch is the micro-batch labench's own
 *     step trains on (batch_build), token for token and weight for weight, and `labench grad`
 *     gives the same loss and gradients on both;
 *   - where torch and transformers import, a few training steps of a tiny LlamaForCausalLM
 *     through the sampler and collator against labench grad (skipped elsewhere). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "bench/input/grad_batch.h"
#include "bench/input/hist.h"
#include "bench/input/plan_export.h"
#include "bench/input/task.h"
#include "bench/run/batch.h"
#include "common/rng.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "tests/test_util.h"

#define W 3
#define A 2
#define L 512
#define N_RECORDS 301
#define ZERO_RECORD 17
#define DATA_SEED 7

static char DIR_[64], LENGTHS[128], LABENCH[1024];

static int setup(void **state)
{
    (void)state;
    snprintf(DIR_, sizeof DIR_, "/tmp/labench-export-XXXXXX");
    if (!mkdtemp(DIR_)) return -1;
    const char *l = getenv("LABENCH");
    snprintf(LABENCH, sizeof LABENCH, "%s", l ? l : "./labench");
    /* distinct lengths (so the longest 10% has no ties), a few over L, one empty record */
    snprintf(LENGTHS, sizeof LENGTHS, "%s/lengths.txt", DIR_);
    FILE *f = fopen(LENGTHS, "w");
    if (!f) return -1;
    fprintf(f, "# a test list: LEN TARGET\n\n");
    for (int i = 0; i < N_RECORDS; i++) {
        if (i == ZERO_RECORD) {
            fprintf(f, "0  # line %d: skipped, no response tokens\n", i + 3);
            continue;
        }
        int len = 2 + (i * 389) % 640;   /* 389 and 640 coprime: distinct for i < 640 */
        fprintf(f, "%d %d\n", len, 1 + (i * 7) % (len - 1));
    }
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", DIR_);
    return system(cmd);
}

static int run(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t n, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = test_run_capture(cmd, out, n);
    if (rc != 0) print_message("%s\n-> %d:\n%s\n", cmd, rc, out);
    return rc;
}

static void plan_to(const char *strategy, const char *file, const char *extra)
{
    char out[65536];
    assert_int_equal(0, run(out, sizeof out,
                            "%s plan --strategy %s --lengths %s --world-size %d --grad-accum %d --max-tokens %d "
                            "--emit-batches %s/%s --out %s/%s.json --no-progress %s",
                            LABENCH, strategy, LENGTHS, W, A, L, DIR_, file, DIR_, strategy, extra));
}

/* Invariants and the plan's own weight metrics, read back from the file, for each weighting. */
static void test_invariants_and_weights(void **state)
{
    (void)state;
    const char *strategies[] = {"naive", "sorted", "packing", "packing-lw", "packing-bfd", "packing-fair"};
    for (size_t i = 0; i < sizeof strategies / sizeof *strategies; i++) {
        char file[64], out[65536], want[128];
        snprintf(file, sizeof file, "%s.jsonl", strategies[i]);
        plan_to(strategies[i], file, "");
        assert_int_equal(0, run(out, sizeof out, "python3 tests/plan_export_check.py check %s/%s %s %s/%s.json", DIR_,
                                file, LENGTHS, DIR_, strategies[i]));
        snprintf(want, sizeof want, "ok %s: ", strategies[i]);
        assert_non_null(strstr(out, want));
        print_message("%s", out);
    }
}

/* Two epochs; the gzip file reads the same as the plain one, and a resumed read is its tail. */
static void test_epochs_and_gzip(void **state)
{
    (void)state;
    char out[65536];
    plan_to("packing-lw", "e2.jsonl", "--epochs 2");
    plan_to("packing-lw", "e2.jsonl.gz", "--epochs 2");
    assert_int_equal(0, run(out, sizeof out, "python3 tests/plan_export_check.py check %s/e2.jsonl %s %s/packing-lw.json",
                            DIR_, LENGTHS, DIR_));
    assert_non_null(strstr(out, "2 epoch(s)"));
    assert_int_equal(0, run(out, sizeof out, "python3 tests/plan_export_check.py same %s/e2.jsonl %s/e2.jsonl.gz %s",
                            DIR_, DIR_, LENGTHS));
    assert_non_null(strstr(out, "ok plain and gz read the same"));
    /* it is gzip: the magic bytes */
    char path[256];
    snprintf(path, sizeof path, "%s/e2.jsonl.gz", DIR_);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fgetc(f), 0x1f);
    assert_int_equal(fgetc(f), 0x8b);
    fclose(f);
}

/* Each bad input gets its error, naming the file, the line and the field. */
static void test_reader_refuses_bad_input(void **state)
{
    (void)state;
    char out[65536];
    plan_to("packing-fair", "bad.jsonl", "");
    assert_int_equal(0, run(out, sizeof out, "python3 tests/plan_export_check.py bad %s/bad.jsonl %s %s", DIR_,
                            LENGTHS, DIR_));
    print_message("%s", out);
    assert_non_null(strstr(out, "bad.jsonl:1: world_size: the plan has 3, the training job 4"));
    assert_non_null(strstr(out, "ok lengths checksum"));
    assert_non_null(strstr(out, "ok truncated file: "));
    assert_non_null(strstr(out, "ok truncated gz: "));
    assert_non_null(strstr(out, "ok corrupt line, streamed: "));
    assert_non_null(strstr(out, "ok lines out of order: "));
}

/* The CLI refuses what it cannot export, with exit 2 and no file. */
static void test_cli_refuses(void **state)
{
    (void)state;
    char out[65536], path[256];
    snprintf(path, sizeof path, "%s/never.jsonl", DIR_);
    int rc = run(out, sizeof out, "%s plan --strategy all --lengths %s --emit-batches %s", LABENCH, LENGTHS, path);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "--emit-batches writes the plan of one strategy"));
    rc = run(out, sizeof out, "%s plan --strategy packing --lengths %s --samples 10 --emit-batches %s", LABENCH,
             LENGTHS, path);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "drop --samples and --len-scale"));
    char ranged[256];
    snprintf(ranged, sizeof ranged, "%s/ranged.txt", DIR_);
    FILE *rf = fopen(ranged, "w");
    assert_non_null(rf);
    fputs("100 10\n200 5-9\n", rf);
    fclose(rf);
    rc = run(out, sizeof out, "%s plan --strategy packing --lengths %s --emit-batches %s", LABENCH, ranged, path);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "ranged.txt:2: a plan whose batches lead back"));
    assert_int_not_equal(0, access(path, F_OK));
    /* --len-dist: the index is the drawn sample's; the header says so */
    snprintf(path, sizeof path, "%s/dist.jsonl", DIR_);
    assert_int_equal(0, run(out, sizeof out, "%s plan --strategy packing --len-dist data/longalign-mix.hist --samples 50 "
                            "--emit-batches %s", LABENCH, path));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char head[8192];
    assert_non_null(fgets(head, sizeof head, f));
    fclose(f);
    assert_non_null(strstr(head, "\"kind\":\"len-dist\""));
    assert_non_null(strstr(head, "\"records\":50"));
}

/* ---- end to end: the collator's row against labench's own micro-batch ---- */

static void write_batch_json(const char *path, const Batch *b)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"tokens\": [");
    for (int t = 0; t < b->n_tokens; t++) fprintf(f, "%s%d", t ? "," : "", b->tokens[t]);
    fprintf(f, "], \"cu_seqlens\": [");
    for (int s = 0; s <= b->n_segs; s++) fprintf(f, "%s%d", s ? "," : "", b->cu_seqlens[s]);
    fprintf(f, "], \"weights\": [");
    for (int t = 0; t < b->n_tokens; t++) fprintf(f, "%s%.9g", t ? "," : "", (double)b->weights[t]);
    fprintf(f, "]}\n");
    fclose(f);
}

static void test_collator_row_is_labench_step(void **state)
{
    (void)state;
    char err[2048], out[65536], path[256], tokens[256], py[256], lab[256], ck[256];
    /* the plan, made and written here, so the C side holds the very plan the file has */
    Sample *samples;
    int64_t *record, n, n_records;
    assert_int_equal(0, hist_load_lengths_ordered(LENGTHS, &samples, &record, &n, &n_records, err, sizeof err));
    assert_int_equal(n_records, N_RECORDS);
    assert_int_equal(n, N_RECORDS - 1);
    assert_int_equal(record[ZERO_RECORD], ZERO_RECORD + 1);   /* the empty record keeps its index */
    const Strategy *s = strategy_find("packing-lw");
    PlanConfig cfg = plan_config_default(s);
    cfg.world_size = W;
    cfg.grad_accum = A;
    cfg.max_tokens = L;
    Plan plan;
    assert_int_equal(0, plan_make(s, &cfg, samples, n, &plan, err, sizeof err));
    snprintf(path, sizeof path, "%s/e2e.jsonl", DIR_);
    PlanExportSource src = {"lengths", LENGTHS, samples, record, n_records, "test", 0};
    assert_int_equal(0, plan_export_batches(path, &plan, &src, err, sizeof err));

    /* the dataset: record i's tokens are the markov task's stream for (i, len, target) */
    Task *task;
    ModelConfig mc;
    assert_int_equal(0, model_preset("tiny", &mc));
    assert_int_equal(0, task_create(&task, "markov", mc.vocab, 1, 3, err, sizeof err));
    snprintf(tokens, sizeof tokens, "%s/tokens.jsonl", DIR_);
    FILE *f = fopen(tokens, "w");
    assert_non_null(f);
    int32_t *ids = malloc(1024 * sizeof *ids);
    for (int64_t r = 0, i = 0; r < n_records; r++) {
        fputc('[', f);
        if (i < n && record[i] == r) {
            task_tokens(task, DATA_SEED, r, samples[i].len, samples[i].target, ids);
            for (int t = 0; t < samples[i].len; t++) fprintf(f, "%s%d", t ? "," : "", ids[t]);
            i++;
        }
        fputs("]\n", f);
    }
    fclose(f);
    free(ids);

    /* a micro-batch with several segments, none truncated (labench's task draws a truncated
     * sample's tokens at its kept length, not as the record's tail) */
    int step = -1, micro = 0, rank = 0;
    for (int st = plan.n_steps / 2; st < plan.n_steps && step < 0; st++)
        for (int m = 0; m < A && step < 0; m++)
            for (int r = 0; r < W && step < 0; r++) {
                const MicroBatch *mb = plan_mb(&plan, st, m, r);
                if (mb->n_rows != 1 || plan.rows[mb->first_row].n_segments < 3) continue;
                int ok = 1;
                const Row *row = &plan.rows[mb->first_row];
                for (int g = row->first_segment; g < row->first_segment + row->n_segments; g++)
                    ok &= samples[plan.segs[g].sample].len <= L;
                if (ok) step = st, micro = m, rank = r;
            }
    assert_true(step >= 0);
    snprintf(py, sizeof py, "%s/python-row.json", DIR_);
    assert_int_equal(0, run(out, sizeof out, "python3 tests/plan_export_check.py grad %s %s %s %d %d %d %s", path,
                            LENGTHS, tokens, step, micro, rank, py));
    print_message("%s", out);

    /* labench's own micro-batch, as its runner builds it */
    BatchBuf bb;
    assert_int_equal(0, batch_buf_init(&bb, plan_max_mb_tokens(&plan)));
    bb.sample_ids = record;
    batch_build(&bb, &plan, plan_mb(&plan, step, micro, rank), task, DATA_SEED);
    GradBatch gb;
    assert_int_equal(0, grad_batch_load(py, mc.vocab, &gb, err, sizeof err));
    const Batch *x = &bb.batch, *y = &gb.batch;
    assert_int_equal(x->n_tokens, y->n_tokens);
    assert_int_equal(x->n_segs, y->n_segs);
    assert_true(x->n_segs >= 3);
    for (int i = 0; i <= x->n_segs; i++) assert_int_equal(x->cu_seqlens[i], y->cu_seqlens[i]);
    double wsum = 0;
    for (int t = 0; t < x->n_tokens; t++) {
        assert_int_equal(x->tokens[t], y->tokens[t]);
        assert_int_equal(x->positions[t], y->positions[t]);
        assert_true(x->weights[t] == y->weights[t]);   /* the same double, rounded to float once */
        if (x->weights[t] > 0) assert_int_equal(x->targets[t], y->targets[t]);
        wsum += x->weights[t];
    }
    assert_true(wsum > 0);
    /* the collator's position_ids and labels: positions restarting per segment; a label where
     * labench predicts a target (position t predicts label t+1), -100 elsewhere */
    json_t *row = json_load_file(py, 0, NULL);
    assert_non_null(row);
    json_t *pos = json_object_get(row, "position_ids"), *lab_ = json_object_get(row, "labels");
    assert_int_equal(json_array_size(pos), x->n_tokens);
    assert_int_equal(json_array_size(lab_), x->n_tokens);
    for (int t = 0; t < x->n_tokens; t++) {
        assert_int_equal(json_integer_value(json_array_get(pos, t)), x->positions[t]);
        json_int_t next = t + 1 < x->n_tokens ? json_integer_value(json_array_get(lab_, t + 1)) : -100;
        if (x->weights[t] > 0) assert_int_equal(next, x->targets[t]);
        else if (t + 1 < x->n_tokens && x->positions[t + 1] != 0) assert_int_equal(next, -100);
    }
    json_decref(row);

    /* and `labench grad` on fixed weights: the same loss and gradients from both rows */
    float *params = malloc(model_param_count(&mc) * sizeof *params);
    Rng rng = rng_seed(5, 0);
    for (size_t i = 0; i < model_param_count(&mc); i++) params[i] = (float)(0.04 * (rng_uniform(&rng) - 0.5));
    snprintf(ck, sizeof ck, "%s/tiny.safetensors", DIR_);
    assert_int_equal(0, safetensors_save_model(ck, &mc, params, err, sizeof err));
    free(params);
    snprintf(lab, sizeof lab, "%s/labench-row.json", DIR_);
    write_batch_json(lab, x);
    char out2[65536];
    assert_int_equal(0, run(out, sizeof out, "%s grad --load-model %s --batch %s --out %s.grad", LABENCH, ck, py, py));
    assert_int_equal(0, run(out2, sizeof out2, "%s grad --load-model %s --batch %s --out %s.grad", LABENCH, ck, lab, lab));
    const char *l1 = strstr(out, "loss"), *l2 = strstr(out2, "loss");
    assert_non_null(l1);
    assert_non_null(l2);
    assert_memory_equal(l1, l2, strcspn(l1, "\n"));
    print_message("labench grad on the collator's row: %.*s\n", (int)strcspn(l1, "\n"), l1);
    assert_int_equal(0, run(out, sizeof out, "cmp %s.grad %s.grad", py, lab));

    grad_batch_free(&gb);
    batch_buf_free(&bb);
    task_free(task);
    plan_free(&plan);
    free(samples);
    free(record);
}

/* Where torch and transformers import: a tiny LlamaForCausalLM trained a few steps through the
 * sampler and collator, each step's loss and gradients equal to labench grad's
 * (tests/plan_export_torch.py). PYTHON_TORCH names the interpreter that has them. */
static void test_torch_training(void **state)
{
    (void)state;
    const char *py = getenv("PYTHON_TORCH") ? getenv("PYTHON_TORCH") : "python3";
    char out[65536], cmd[1024];
    snprintf(cmd, sizeof cmd, "%s -c 'import torch, transformers' 2>&1", py);
    if (test_run_capture(cmd, out, sizeof out) != 0) {
        print_message("SKIP: torch and transformers do not import in %s (PYTHON_TORCH=... names one that has them)\n",
                      py);
        skip();
    }
    assert_int_equal(0, run(out, sizeof out, "%s tests/plan_export_torch.py --labench %s", py, LABENCH));
    print_message("%s", out);
    assert_non_null(strstr(out, "ok: 3 steps of packing-lw"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invariants_and_weights),
        cmocka_unit_test(test_epochs_and_gzip),
        cmocka_unit_test(test_reader_refuses_bad_input),
        cmocka_unit_test(test_cli_refuses),
        cmocka_unit_test(test_collator_row_is_labench_step),
        cmocka_unit_test(test_torch_training),
    };
    return cmocka_run_group_tests_name("plan_export", tests, setup, teardown);
}
