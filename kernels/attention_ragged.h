/* The host-side arithmetic of cuDNN's fused attention over labench's packed rows, in plain C so
 * that it is tested on a CPU (tests/test_attention_ragged.c) and used as is by
 * kernels/cuda/attention_cudnn.cu (the functions marked ATTN_HD run on the GPU too).
 *
 * A micro-batch of labench is N tokens laid end to end, cut into n_segs segments by cu_seqlens;
 * attention is causal inside each segment. cuDNN sees it as a ragged ("THD") batch: B sequences
 * of lengths seq_len[b] (B >= n_segs; the extra ones are empty), each starting at a ragged offset
 * (in elements) into its tensor, with the strides of labench's buffers inside a sequence:
 *   Q, K, V   qkv[N, (H + 2 Hkv) D]: token stride (H + 2 Hkv) D, head stride D; K and V are the
 *             same buffer from H D and (H + Hkv) D on, so Q, K, V (and dQ, dK, dV) share one offset
 *   O, dO     out[N, H D]: token stride H D
 *   Stats     cuDNN's softmax statistics (log-sum-exp of the scaled scores, natural log), token
 *             major [N, H]: token stride H, head stride 1.
 * labench's contract (kernels/backend.h) keeps lse head major, [H, N]: the forward writes cuDNN's
 * statistics into lse through attn_lse_index, and the backward reads them back the same way.
 *
 * A cuDNN graph is built for a shape and reused: the shape is bucketed (powers of two) so that
 * micro-batches of similar size share one graph; AttnGraphKey is what the cache compares.
 */
#ifndef LABENCH_ATTENTION_RAGGED_H
#define LABENCH_ATTENTION_RAGGED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define ATTN_HD __host__ __device__
#else
#define ATTN_HD
#endif

typedef struct {
    int64_t b, s, t;      /* bucketed: sequences (>= n_segs), longest (>= max_seqlen), tokens (>= N) */
    int h, hkv, d;
    int backward;         /* forward and backward graphs are different graphs */
} AttnGraphKey;

/* The graph for a micro-batch: 0, or -1 with the reason in err when cuDNN's path cannot take it
 * (ragged offsets past int32, a head dim other than 64 or 128, H not a multiple of Hkv). */
int attn_key_make(AttnGraphKey *key, int n_segs, int max_seqlen, int N, int H, int Hkv, int D, int backward,
                  char *err, size_t errlen);
int attn_key_equal(const AttnGraphKey *a, const AttnGraphKey *b);
/* the next power of two >= n, and at least lo */
int64_t attn_bucket(int64_t n, int64_t lo);

/* Entry i (0..B) of the ragged tensors of a graph for B sequences: seq_len[i] (i < B) and the
 * offsets of sequence i (i = B: the end of the last) into qkv, out and the statistics. Sequences
 * past n_segs are empty and start at the end of the row. cu has n_segs + 1 entries. */
ATTN_HD static inline void attn_ragged_entry(const int32_t *cu, int n_segs, int64_t B, int64_t i, int H, int Hkv,
                                             int D, int32_t *seq_len, int32_t *off_qkv, int32_t *off_o,
                                             int32_t *off_stats)
{
    const int64_t j = i < n_segs ? i : n_segs;
    const int64_t start = cu[j];
    if (i < B) seq_len[i] = i < n_segs ? cu[i + 1] - cu[i] : 0;
    off_qkv[i] = (int32_t)(start * (H + 2 * Hkv) * D);
    off_o[i] = (int32_t)(start * H * D);
    off_stats[i] = (int32_t)(start * H);
}

/* where token t, head h sits in cuDNN's statistics [N, H], and in labench's lse [H, N] */
ATTN_HD static inline int64_t attn_stats_index(int64_t t, int h, int H) { return t * H + h; }
ATTN_HD static inline int64_t attn_lse_index(int64_t t, int h, int64_t N) { return (int64_t)h * N + t; }

#endif
