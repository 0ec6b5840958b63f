/* libFuzzer harness: the lengths-list parser (hist_load_lengths), the input of `labench hist`
 * and --lengths. The contract is fuzz_hist.c's: on failure nothing returned and a message with the
 * file and a line inside it; on success exact bins sorted by length, and what hist_write writes
 * (`labench hist`'s lossless output) reads back as the same distribution. */
#define FUZZ_LENGTHS
#include "tests/fuzz/fuzz_hist.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FuzzFile in;
    fuzz_file_put(&in, data, size);
    Hist h;
    char err[2048] = "";
    if (hist_load_lengths(in.path, &h, err, sizeof err) != 0) {
        CONTRACT(h.bins == NULL && h.n_bins == 0, "a refused file returned bins");
        fuzz_check_message(err, in.path, data, size);
        return 0;
    }
    check_bins(&h);
    for (int i = 0; i < h.n_bins; i++) {
        CONTRACT(h.bins[i].lo == h.bins[i].hi, "bin %d is a range", i);
        CONTRACT(i == 0 || h.bins[i - 1].lo <= h.bins[i].lo, "bins not sorted at %d", i);
    }
    round_trip(&h);
    hist_free(&h);
    return 0;
}
