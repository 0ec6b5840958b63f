/* The batch file of `labench grad` (bench/cli/cmd_grad.c): one packed row as JSON,
 *   {"tokens": [ids], "cu_seqlens": [0, ..., len(tokens)], "weights": [one per position]},
 * read and checked into the arrays the training step takes. Fields it does not know are ignored. */
#ifndef LABENCH_GRAD_BATCH_H
#define LABENCH_GRAD_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

#define GRAD_BATCH_MAX_TOKENS (1 << 30)
#define GRAD_BATCH_MAX_BYTES ((size_t)1 << 30)

typedef struct {
    int32_t *tokens, *targets, *positions, *cu_seqlens;
    float *weights;
    Batch batch;                 /* points into the arrays above */
} GradBatch;

/* Reads path ("-": stdin) for a model of vocab tokens. 0, or -1 with "PATH: what is wrong" (or
 * "PATH:LINE: ..." for invalid JSON) in err, and nothing to free. */
int grad_batch_load(const char *path, int vocab, GradBatch *b, char *err, size_t errlen);
void grad_batch_free(GradBatch *b);

#endif
