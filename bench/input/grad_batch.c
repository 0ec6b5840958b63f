/* Reading and checking `labench grad`'s batch file (see grad_batch.h). */
#include "bench/input/grad_batch.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/input_file.h"

void grad_batch_free(GradBatch *b)
{
    free(b->tokens);
    free(b->targets);
    free(b->positions);
    free(b->cu_seqlens);
    free(b->weights);
    memset(b, 0, sizeof *b);
}

static int fill(const char *path, const json_t *root, int vocab, GradBatch *b, char *err, size_t errlen)
{
    if (!json_is_object(root)) return path_error(err, errlen, path, "not a JSON object");
    const char *keys[3] = {"tokens", "cu_seqlens", "weights"};
    const json_t *a[3];
    for (int k = 0; k < 3; k++) {
        a[k] = json_object_get(root, keys[k]);
        if (!json_is_array(a[k])) return path_error(err, errlen, path, "\"%s\" is missing or not an array", keys[k]);
    }
    const json_t *jt = a[0], *jc = a[1], *jw = a[2];
    size_t N = json_array_size(jt), S1 = json_array_size(jc);
    if (N < 1 || N > GRAD_BATCH_MAX_TOKENS)
        return path_error(err, errlen, path, "\"tokens\" must hold 1 to 2^30 ids (has %zu)", N);
    if (json_array_size(jw) != N)
        return path_error(err, errlen, path, "\"weights\" has %zu values, \"tokens\" %zu: one weight per position",
                          json_array_size(jw), N);
    if (S1 < 2) return path_error(err, errlen, path, "\"cu_seqlens\" needs at least [0, len(tokens)]");
    if (S1 > N + 1)
        return path_error(err, errlen, path, "\"cu_seqlens\" has %zu entries: more segments than tokens", S1);

    b->tokens = malloc(N * 4);
    b->targets = malloc(N * 4);
    b->positions = malloc(N * 4);
    b->cu_seqlens = malloc(S1 * 4);
    b->weights = malloc(N * 4);
    if (!b->tokens || !b->targets || !b->positions || !b->cu_seqlens || !b->weights)
        return path_error(err, errlen, path, "out of memory for %zu tokens", N);
    for (size_t t = 0; t < N; t++) {
        const json_t *x = json_array_get(jt, t);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= vocab)
            return path_error(err, errlen, path, "tokens[%zu] is not a token id in [0, %d) (the model's vocab_size)", t,
                              vocab);
        b->tokens[t] = (int32_t)json_integer_value(x);
        /* Checked as a float, the type the step computes with: 1e39 is finite as a double only. */
        const json_t *y = json_array_get(jw, t);
        double w = json_is_number(y) ? json_number_value(y) : NAN;
        if (!(fabs(w) <= FLT_MAX))
            return path_error(err, errlen, path, "weights[%zu] is not a finite number that fits a float (|w| <= %g)", t,
                              (double)FLT_MAX);
        b->weights[t] = (float)w;
    }
    int max_seqlen = 0;
    for (size_t s = 0; s < S1; s++) {
        const json_t *x = json_array_get(jc, s);
        if (!json_is_integer(x)) return path_error(err, errlen, path, "cu_seqlens[%zu] is not an integer", s);
        long long v = json_integer_value(x);
        if (s == 0 && v != 0) return path_error(err, errlen, path, "cu_seqlens must start at 0 (starts at %lld)", v);
        if (s > 0 && v <= b->cu_seqlens[s - 1])
            return path_error(err, errlen, path, "cu_seqlens is not increasing at index %zu (%d then %lld)", s,
                              b->cu_seqlens[s - 1], v);
        if (v > (long long)N)
            return path_error(err, errlen, path, "cu_seqlens[%zu] = %lld is past len(tokens) = %zu", s, v, N);
        b->cu_seqlens[s] = (int32_t)v;
        if (s > 0 && b->cu_seqlens[s] - b->cu_seqlens[s - 1] > max_seqlen)
            max_seqlen = b->cu_seqlens[s] - b->cu_seqlens[s - 1];
    }
    if ((size_t)b->cu_seqlens[S1 - 1] != N)
        return path_error(err, errlen, path, "cu_seqlens must end at len(tokens) = %zu (ends at %d)", N,
                          b->cu_seqlens[S1 - 1]);
    for (size_t s = 0; s + 1 < S1; s++) {
        for (int t = b->cu_seqlens[s]; t < b->cu_seqlens[s + 1]; t++) {
            int last = t == b->cu_seqlens[s + 1] - 1;
            b->positions[t] = t - b->cu_seqlens[s];
            b->targets[t] = last ? 0 : b->tokens[t + 1];
            if (last && b->weights[t] != 0.0f)
                return path_error(err, errlen, path,
                                  "weights[%d] = %g is the last position of segment %zu, which predicts nothing: "
                                  "it must be 0", t, b->weights[t], s);
        }
    }
    b->batch = (Batch){(int)N, b->tokens, b->targets, b->weights, b->positions, b->cu_seqlens, (int)(S1 - 1),
                       max_seqlen};
    return 0;
}

int grad_batch_load(const char *path, int vocab, GradBatch *b, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    const char *name = input_name(path);
    json_t *root = read_json_file(path, GRAD_BATCH_MAX_BYTES, err, errlen);
    if (!root) return -1;
    int rc = fill(name, root, vocab, b, err, errlen);
    json_decref(root);
    if (rc != 0) grad_batch_free(b);
    return rc;
}
