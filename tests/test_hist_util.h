/* Shared by the .hist tests: two distributions are the same, bin by bin, targets to the bit. */
#ifndef LABENCH_TEST_HIST_UTIL_H
#define LABENCH_TEST_HIST_UTIL_H

#include "tests/test_util.h"

#include "bench/input/hist.h"

static inline void assert_same_hist(const Hist *a, const Hist *b)
{
    assert_int_equal(a->n_bins, b->n_bins);
    assert_int_equal(a->total, b->total);
    for (int i = 0; i < a->n_bins; i++) {
        const HistBin *x = &a->bins[i], *y = &b->bins[i];
        assert_int_equal(x->lo, y->lo);
        assert_int_equal(x->hi, y->hi);
        assert_int_equal(x->count, y->count);
        assert_int_equal(x->target.kind, y->target.kind);
        if (x->target.kind != TGT_DEFAULT && !(x->target.lo == y->target.lo && x->target.hi == y->target.hi)) {
            print_error("bin %d: target %.17g-%.17g read back as %.17g-%.17g\n", i, x->target.lo, x->target.hi,
                        y->target.lo, y->target.hi);
            fail();
        }
    }
}

#endif
