#include "bench/run/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int batch_buf_init(BatchBuf *b, int capacity)
{
    memset(b, 0, sizeof *b);
    size_t n = (size_t)capacity;
    b->capacity = capacity;
    b->tokens = malloc(n * sizeof *b->tokens);
    b->targets = malloc(n * sizeof *b->targets);
    b->positions = malloc(n * sizeof *b->positions);
    b->weights = malloc(n * sizeof *b->weights);
    b->seg_of_pos = malloc(n * sizeof *b->seg_of_pos);
    b->cu_seqlens = malloc((n + 2) * sizeof *b->cu_seqlens);
    if (!b->tokens || !b->targets || !b->positions || !b->weights || !b->seg_of_pos || !b->cu_seqlens) {
        batch_buf_free(b);
        return -1;
    }
    return 0;
}

void batch_buf_free(BatchBuf *b)
{
    free(b->tokens);
    free(b->targets);
    free(b->positions);
    free(b->weights);
    free(b->seg_of_pos);
    free(b->cu_seqlens);
    memset(b, 0, sizeof *b);
}

static int64_t mb_computed_tokens(const Plan *p, const MicroBatch *mb)
{
    int64_t n = 0;
    for (int r = 0; r < mb->n_rows; r++) n += p->rows[mb->first_row + r].padded_len;
    return n;
}

int plan_max_mb_tokens(const Plan *p)
{
    int64_t best = 1;
    size_t n = (size_t)p->n_steps * p->micro_steps * p->cfg.world_size;
    for (size_t i = 0; i < n; i++) {
        int64_t t = mb_computed_tokens(p, &p->mbs[i]);
        if (t > best) best = t;
    }
    return (int)best;
}


void batch_build(BatchBuf *b, const Plan *p, const MicroBatch *mb, const Task *task, uint64_t data_seed)
{
    int n = 0, n_segs = 0, max_seqlen = 0;
    b->real_tokens = b->target_tokens = 0;
    b->sum_seq_len_sq = 0;
    b->rows = mb->n_rows;
    b->sequences = 0;
    b->cu_seqlens[0] = 0;
    for (int r = 0; r < mb->n_rows; r++) {
        const Row *row = &p->rows[mb->first_row + r];
        const int row_start = n;
        for (int s = 0; s < row->n_segments; s++) {
            const int32_t si = row->first_segment + s;
            const Segment *seg = &p->segs[si];
            const int start = n, len = seg->len;
            task_tokens(task, data_seed, b->sample_ids ? b->sample_ids[seg->sample] : seg->sample, seg->len,
                        seg->target, b->tokens + start);
            for (int t = 0; t < len; t++) {
                b->positions[start + t] = t;
                b->seg_of_pos[start + t] = si;
                int last = t == len - 1;
                b->targets[start + t] = last ? 0 : b->tokens[start + t + 1];
                /* position t predicts token t+1, a target when t+1 >= len - target */
                b->weights[start + t] = (!last && t + 1 >= len - seg->target) ? seg->weight : 0.0f;
            }
            n += len;
            b->real_tokens += len;
            b->target_tokens += seg->target;
            b->sequences++;
            b->cu_seqlens[++n_segs] = n;
            b->sum_seq_len_sq += (double)len * len;
            if (len > max_seqlen) max_seqlen = len;
        }
        int pads = row_start + row->padded_len - n;
        if (pads > 0) {
            /* The pads join the row's last sequence as one causal segment: they come last, so
             * the real tokens never see them, and they cost what padded attention costs. */
            int last_len = n - (n_segs > 0 ? b->cu_seqlens[n_segs - 1] : 0);
            for (int t = n; t < n + pads; t++) {
                b->tokens[t] = 0;
                b->targets[t] = 0;
                b->weights[t] = 0.0f;
                b->positions[t] = last_len + (t - n);
                b->seg_of_pos[t] = -1;
            }
            n += pads;
            b->cu_seqlens[n_segs] = n;
            b->sum_seq_len_sq += (double)(last_len + pads) * (last_len + pads) - (double)last_len * last_len;
            if (last_len + pads > max_seqlen) max_seqlen = last_len + pads;
        }
    }
    b->computed_tokens = n;
    b->batch = (Batch){n, b->tokens, b->targets, b->weights, b->positions, b->cu_seqlens, n_segs, max_seqlen};
    char err[256];
    if (batch_check(&b->batch, err, sizeof err) != 0) {
        fprintf(stderr, "labench: internal error: batch_build made a malformed micro-batch: %s\n", err);
        abort();
    }
}
