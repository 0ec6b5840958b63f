/* Estimated compute of rows and micro-batches (derivation in docs/strategies.md). */
#include "strategies/strategy.h"

CostModel cost_model_from_shape(int hidden, int intermediate)
{
    CostModel c = {1.0, 0.0, 0.0, 0.0};
    if (hidden <= 0 || intermediate < 0) return c;
    double C = hidden, F = intermediate;
    /* Forward FLOPs of one Llama layer: matmuls 2*(4C^2 + 3CF) per token (q, k, v, o with full
     * heads; gate, up, down); causal attention 2C per (query, key) pair, i.e. 2*C*n^2 for a
     * sequence of n (QK^T and PV are 2*n^2*C each in full, half of that when causal).
     * Backward scales both alike, so only their ratio matters: per_token is normalised to 1. */
    double matmul_per_token = 2.0 * (4.0 * C * C + 3.0 * C * F);
    c.per_token_sq = 2.0 * C / matmul_per_token;
    return c;
}

double row_cost(const CostModel *c, const Plan *p, const Row *r)
{
    double sq = 0.0;
    int32_t last = 0;
    for (int32_t s = r->first_segment; s < r->first_segment + r->n_segments; s++) {
        last = p->segs[s].len;
        sq += (double)last * last;
    }
    /* Pads are computed as a continuation of the last sequence (a padded batch with a causal
     * mask still multiplies the whole padded square), so a padded row of one sequence costs
     * as a sequence of padded_len. */
    int32_t pad = r->padded_len - r->tokens;
    if (pad > 0 && r->n_segments > 0) {
        double ext = (double)last + pad;
        sq += ext * ext - (double)last * last;
    }
    return c->per_token * r->padded_len + c->per_token_sq * sq + c->per_row + c->per_segment * r->n_segments;
}

double plan_mb_cost(const Plan *p, const MicroBatch *mb)
{
    double t = 0.0;
    for (int32_t r = mb->first_row; r < mb->first_row + mb->n_rows; r++)
        t += row_cost(&p->cfg.cost, p, &p->rows[r]);
    return t;
}
