/* packing and packing-lw: LongAlign's greedy packing. Walk a shuffled order and append each
 * sequence to the current row while it stays within L tokens, else open a new row (next-fit).
 * One row per rank per micro-step. The two differ only in the loss weights. */
#include "strategies/strategy.h"

#include <stdio.h>
#include <stdlib.h>

static int plan_next_fit(Plan *p, const Sample *samples, int64_t n, int per_sequence, char *err,
                         size_t errlen)
{
    const int64_t L = p->cfg.max_tokens;
    for (int e = 0; e < p->cfg.epochs; e++) {
        int32_t *order = plan_epoch_order(p, n, e);
        if (!order) {
            snprintf(err, errlen, "out of memory shuffling %lld samples", (long long)n);
            return -1;
        }
        int64_t first_row = p->n_rows, start = 0, tokens = 0;
        for (int64_t i = 0; i < n; i++) {
            int32_t len = samples[order[i]].len;
            if (tokens + len > L && i > start) {
                plan_add_row(p, samples, &order[start], (int32_t)(i - start), 0, 0);
                start = i;
                tokens = 0;
            }
            tokens += len;
        }
        if (n > start) plan_add_row(p, samples, &order[start], (int32_t)(n - start), 0, 0);
        free(order);
        if (plan_deal(p, first_row, 1, err, errlen) != 0) return -1;
    }
    plan_set_weights(p, per_sequence);
    return 0;
}

static int plan_packing(Plan *p, const Sample *samples, int64_t n, char *err, size_t errlen)
{
    return plan_next_fit(p, samples, n, 0, err, errlen);
}

static int plan_packing_lw(Plan *p, const Sample *samples, int64_t n, char *err, size_t errlen)
{
    return plan_next_fit(p, samples, n, 1, err, errlen);
}

const Strategy STRATEGY_PACKING = {
    "packing", "LongAlign greedy next-fit packs of <= L tokens; loss = mean per pack", plan_packing, 1,
};

const Strategy STRATEGY_PACKING_LW = {
    "packing-lw", "packing + LongAlign loss weighting: every sequence weighs 1/M (Eq. 2)",
    plan_packing_lw, 1,
};
