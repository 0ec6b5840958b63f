/* naive: the Hugging Face Trainer default. Shuffled order, B consecutive sequences per
 * micro-batch, each padded to the micro-batch's longest; the loss is the mean per micro-batch. */
#include "strategies/strategy.h"

#include <stdio.h>
#include <stdlib.h>

static int plan_naive(Plan *p, const Sample *samples, int64_t n, char *err, size_t errlen)
{
    for (int e = 0; e < p->cfg.epochs; e++) {
        int32_t *order = plan_epoch_order(p, n, e);
        if (!order) {
            snprintf(err, errlen, "out of memory shuffling %lld samples", (long long)n);
            return -1;
        }
        int rc = plan_add_padded(p, samples, order, n, err, errlen);
        free(order);
        if (rc != 0) return -1;
    }
    plan_set_weights(p, 0);
    return 0;
}

const Strategy STRATEGY_NAIVE = {
    "naive", "shuffled order, B sequences per micro-batch padded to their longest", plan_naive, 0,
};
