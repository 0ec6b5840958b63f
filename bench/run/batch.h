/* Turns one micro-batch of a plan into the tokens, targets, weights, positions and attention
 * segments the training step consumes. */
#ifndef LABENCH_BATCH_H
#define LABENCH_BATCH_H

#include "bench/input/markov.h"
#include "bench/input/task.h"
#include "model/model.h"
#include "strategies/strategy.h"

typedef struct {
    int capacity;            /* tokens the arrays hold */
    int32_t *tokens, *targets, *positions, *cu_seqlens;
    float *weights;
    int32_t *seg_of_pos;     /* plan segment index of each position, -1 for pads */
    Batch batch;
    /* shape of the micro-batch, for metrics and the cost fit */
    int64_t real_tokens, computed_tokens, target_tokens;
    double sum_seq_len_sq;   /* sum over attention segments of len^2 */
    int rows, sequences;
    /* Optional identity of each plan sample, indexed by Segment.sample: set it to the training
     * part's ids (bench/run/val_loss.h, TrainSet.ids) when the plan was made on a split, so every
     * sample keeps the tokens of its place in the full sampled set and no training sample ever
     * gets a validation sample's tokens. NULL: the plan index is the identity. */
    const int64_t *sample_ids;
} BatchBuf;

int batch_buf_init(BatchBuf *b, int capacity);
void batch_buf_free(BatchBuf *b);

/* Largest computed micro-batch (tokens) of a plan: sizes the model's activations. */
int plan_max_mb_tokens(const Plan *p);

/* Fills b from micro-batch mb. Packed rows: one attention segment per sequence, positions
 * restarting at 0. Padded rows: the row's last sequence and its pads form one causal segment
 * (pads come last, so real tokens never see them); pads are token 0 with weight 0. A position t predicts
 * token t+1 of its sequence; it carries the segment's weight when t+1 is a target token.
 *
 * Tokens: task_tokens(task, data_seed, id, len, target) for each segment, where id is the
 * sample's identity: b->sample_ids[seg->sample] when b->sample_ids is set, else seg->sample. */
void batch_build(BatchBuf *b, const Plan *p, const MicroBatch *mb, const Task *task, uint64_t data_seed);

#endif
