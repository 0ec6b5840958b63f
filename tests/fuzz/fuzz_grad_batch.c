/* libFuzzer harness: `labench grad`'s batch file (grad_batch_load). On failure: nothing
 * returned, a message naming the file (and, for invalid JSON, a line inside it). On success: a
 * batch the training step can take (ids in the vocabulary, float weights, segments that start at
 * 0, increase and end at the length, positions restarting in each, last positions weighing 0). */
#include "tests/fuzz/fuzz_common.h"

#include <math.h>

#include "bench/input/grad_batch.h"

#define VOCAB 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FuzzFile in;
    fuzz_file_put(&in, data, size);
    GradBatch g;
    char err[2048] = "";
    if (grad_batch_load(in.path, VOCAB, &g, err, sizeof err) != 0) {
        CONTRACT(!g.tokens && !g.weights && !g.cu_seqlens && !g.batch.n_tokens, "a refused file returned a batch");
        fuzz_check_message(err, in.path, data, size);
        return 0;
    }
    const Batch *b = &g.batch;
    CONTRACT(b->n_tokens >= 1 && b->n_segs >= 1 && b->n_segs <= b->n_tokens, "%d tokens, %d segments", b->n_tokens,
             b->n_segs);
    CONTRACT(b->cu_seqlens[0] == 0 && b->cu_seqlens[b->n_segs] == b->n_tokens, "segments do not span the row");
    int longest = 0;
    for (int s = 0; s < b->n_segs; s++) {
        int lo = b->cu_seqlens[s], hi = b->cu_seqlens[s + 1];
        CONTRACT(lo < hi, "segment %d is empty", s);
        if (hi - lo > longest) longest = hi - lo;
        for (int t = lo; t < hi; t++) {
            CONTRACT(b->positions[t] == t - lo, "position %d", t);
            CONTRACT(b->tokens[t] >= 0 && b->tokens[t] < VOCAB, "token %d", t);
            CONTRACT(isfinite(b->weights[t]), "weight %d", t);
            CONTRACT(t < hi - 1 ? b->targets[t] == b->tokens[t + 1] : b->weights[t] == 0.0f, "target %d", t);
        }
    }
    CONTRACT(b->max_seqlen == longest, "max_seqlen %d, longest %d", b->max_seqlen, longest);
    grad_batch_free(&g);
    return 0;
}
