/* kernels/attention_ragged.h: the graph key of cuDNN's attention, and the checks behind it. */
#include <stdio.h>

#include "kernels/attention_ragged.h"

int64_t attn_bucket(int64_t n, int64_t lo)
{
    int64_t b = lo > 1 ? lo : 1;
    while (b < n) b *= 2;
    return b;
}

int attn_key_make(AttnGraphKey *key, int n_segs, int max_seqlen, int N, int H, int Hkv, int D, int backward,
                  char *err, size_t errlen)
{
    if (D != 64 && D != 128) {
        snprintf(err, errlen, "head dim %d (cuDNN's path takes 64 and 128)", D);
        return -1;
    }
    if (H <= 0 || Hkv <= 0 || H % Hkv != 0) {
        snprintf(err, errlen, "%d query heads on %d key/value heads", H, Hkv);
        return -1;
    }
    if (n_segs <= 0 || max_seqlen <= 0 || N <= 0 || max_seqlen > N) {
        snprintf(err, errlen, "an empty or inconsistent batch (%d segments, longest %d, %d tokens)", n_segs,
                 max_seqlen, N);
        return -1;
    }
    /* offsets are int32 elements: the largest is the end of qkv, N (H + 2 Hkv) D */
    const int64_t t = attn_bucket(N, 64);
    if (t * (H + 2 * Hkv) * D > INT32_MAX) {
        snprintf(err, errlen, "%d tokens x %d values per token pass cuDNN's int32 ragged offsets", N,
                 (H + 2 * Hkv) * D);
        return -1;
    }
    key->b = attn_bucket(n_segs, 1);
    key->s = attn_bucket(max_seqlen, 64);
    key->t = t;
    key->h = H;
    key->hkv = Hkv;
    key->d = D;
    key->backward = backward ? 1 : 0;
    return 0;
}

int attn_key_equal(const AttnGraphKey *a, const AttnGraphKey *b)
{
    return a->b == b->b && a->s == b->s && a->t == b->t && a->h == b->h && a->hkv == b->hkv && a->d == b->d &&
           a->backward == b->backward;
}
