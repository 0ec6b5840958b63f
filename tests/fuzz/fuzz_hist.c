/* libFuzzer harness: the .hist parser (hist_load). On failure: nothing returned, the message
 * names the file and a line inside it. On success: sane bins, and what hist_write writes reads
 * back as the same distribution. */
#include "tests/fuzz/fuzz_common.h"

#include "bench/input/hist.h"

static void check_bins(const Hist *h)
{
    int64_t total = 0;
    CONTRACT(h->n_bins > 0 && h->bins, "no bins");
    for (int i = 0; i < h->n_bins; i++) {
        const HistBin *b = &h->bins[i];
        /* a bin may start at 0 (numpy's first edge); length-0 bins are dropped at load */
        CONTRACT(b->lo >= 0 && b->hi >= 1 && b->lo <= b->hi && b->hi <= HIST_MAX_LEN, "bin %d: %lld-%lld", i, (long long)b->lo,
                 (long long)b->hi);
        CONTRACT(b->count >= 1, "bin %d: count %lld", i, (long long)b->count);
        CONTRACT(b->target.lo <= b->target.hi, "bin %d: target %g-%g", i, b->target.lo, b->target.hi);
        total += b->count;
    }
    CONTRACT(total == h->total && total <= HIST_MAX_COUNT, "total %lld vs %lld", (long long)total, (long long)h->total);
}

static void check_same(const Hist *a, const Hist *b)
{
    CONTRACT(a->n_bins == b->n_bins && a->total == b->total, "%d bins / %lld read back as %d / %lld", a->n_bins,
             (long long)a->total, b->n_bins, (long long)b->total);
    for (int i = 0; i < a->n_bins; i++) {
        const HistBin *x = &a->bins[i], *y = &b->bins[i];
        CONTRACT(x->lo == y->lo && x->hi == y->hi && x->count == y->count && x->target.kind == y->target.kind &&
                     (x->target.kind == TGT_DEFAULT || (x->target.lo == y->target.lo && x->target.hi == y->target.hi)),
                 "bin %d differs after a round trip", i);
    }
}

/* Writes h and loads it back (shared with fuzz_lengths.c through this file's inclusion). */
static void round_trip(const Hist *h)
{
    static FuzzFile out;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CONTRACT(f && hist_write(f, h, "round trip\nof a fuzzed input") == 0, "hist_write failed");
    fclose(f);
    fuzz_file_put(&out, (const uint8_t *)text, len);
    free(text);
    Hist back;
    char err[2048];
    int rc = hist_load(out.path, &back, err, sizeof err);
    CONTRACT(rc == 0, "hist_write wrote what hist_load refuses: %s", err);
    check_same(h, &back);
    hist_free(&back);
}

#ifndef FUZZ_LENGTHS
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FuzzFile in;
    fuzz_file_put(&in, data, size);
    Hist h;
    char err[2048] = "";
    if (hist_load(in.path, &h, err, sizeof err) != 0) {
        CONTRACT(h.bins == NULL && h.n_bins == 0, "a refused file returned bins");
        fuzz_check_message(err, in.path, data, size);
        return 0;
    }
    check_bins(&h);
    round_trip(&h);
    hist_free(&h);
    return 0;
}
#endif
