/* The host arithmetic of cuDNN's attention over packed rows (kernels/attention_ragged.h): the
 * ragged offsets and sequence lengths built from cu_seqlens, where the statistics go, and the
 * graph cache's keys. These are what the GPU reads; a wrong offset there reads another segment's
 * keys without any error, so they are checked element by element here. */
#include "tests/test_util.h"

#include <string.h>

#include "kernels/attention_ragged.h"

#define MAXB 16

typedef struct {
    int32_t seq_len[MAXB], off_qkv[MAXB + 1], off_o[MAXB + 1], off_stats[MAXB + 1];
} Ragged;

static void build(Ragged *r, const int32_t *cu, int n_segs, int64_t B, int H, int Hkv, int D)
{
    memset(r, 0x7f, sizeof *r);   /* a stale value would show */
    for (int64_t i = 0; i <= B; i++)
        attn_ragged_entry(cu, n_segs, B, i, H, Hkv, D, r->seq_len, r->off_qkv, r->off_o, r->off_stats);
}

/* segments of 1, 5 and 10 tokens, GQA (4 query heads on 2 kv heads), D = 64, padded to B = 4 */
static void test_offsets_of_a_packed_row(void **state)
{
    (void)state;
    const int32_t cu[] = {0, 1, 6, 16};
    const int H = 4, Hkv = 2, D = 64, stride = (H + 2 * Hkv) * D;
    Ragged r;
    build(&r, cu, 3, 4, H, Hkv, D);
    const int32_t len[] = {1, 5, 10, 0};
    for (int i = 0; i < 4; i++) assert_int_equal(r.seq_len[i], len[i]);
    const int32_t start[] = {0, 1, 6, 16, 16};   /* the empty 4th sequence starts at the row's end */
    for (int i = 0; i <= 4; i++) {
        assert_int_equal(r.off_qkv[i], start[i] * stride);
        assert_int_equal(r.off_o[i], start[i] * H * D);
        assert_int_equal(r.off_stats[i], start[i] * H);
    }
    /* the sequences tile the row: each ends where the next starts, the last at N */
    for (int i = 0; i < 4; i++) assert_int_equal(r.off_o[i] + r.seq_len[i] * H * D, r.off_o[i + 1]);
}

/* one segment (an unpacked row), and B = n_segs exactly */
static void test_one_segment(void **state)
{
    (void)state;
    const int32_t cu[] = {0, 65536};
    Ragged r;
    build(&r, cu, 1, 1, 32, 32, 128);
    assert_int_equal(r.seq_len[0], 65536);
    assert_int_equal(r.off_qkv[0], 0);
    assert_int_equal(r.off_qkv[1], 65536 * 96 * 128);
    assert_int_equal(r.off_stats[1], 65536 * 32);
}

/* The statistics: cuDNN's element (sequence b, head h, position s) is at off_stats[b] + s H + h
 * (token stride H, head stride 1); that must be attn_stats_index of token cu[b] + s, and the
 * translation to labench's lse [H, N] must be a bijection over all N H elements. */
static void test_statistics_layout(void **state)
{
    (void)state;
    const int32_t cu[] = {0, 3, 4, 11};
    const int H = 3, N = 11, n_segs = 3;
    Ragged r;
    build(&r, cu, n_segs, 4, H, H, 64);
    int seen_stats[11 * 3] = {0}, seen_lse[11 * 3] = {0};
    for (int b = 0; b < n_segs; b++)
        for (int s = 0; s < r.seq_len[b]; s++)
            for (int h = 0; h < H; h++) {
                const int64_t t = cu[b] + s, k = attn_stats_index(t, h, H), l = attn_lse_index(t, h, N);
                assert_int_equal(k, r.off_stats[b] + (int64_t)s * H + h);
                assert_true(k >= 0 && k < N * H && l >= 0 && l < N * H);
                seen_stats[k]++;
                seen_lse[l]++;
                assert_int_equal(l, (int64_t)h * N + t);
            }
    for (int i = 0; i < N * H; i++) {
        assert_int_equal(seen_stats[i], 1);
        assert_int_equal(seen_lse[i], 1);
    }
    /* a round trip lse -> stats -> lse gives back every value */
    float lse[33], stats[33], back[33];
    for (int i = 0; i < N * H; i++) lse[i] = (float)i + 0.5f;
    for (int t = 0; t < N; t++)
        for (int h = 0; h < H; h++) stats[attn_stats_index(t, h, H)] = lse[attn_lse_index(t, h, N)];
    for (int t = 0; t < N; t++)
        for (int h = 0; h < H; h++) back[attn_lse_index(t, h, N)] = stats[attn_stats_index(t, h, H)];
    assert_memory_equal(lse, back, sizeof(float) * N * H);
    assert_true(stats[attn_stats_index(1, 0, H)] == lse[1]);   /* token 1, head 0: lse[0 * N + 1] */
}

static void test_graph_keys(void **state)
{
    (void)state;
    char err[256];
    AttnGraphKey a, b;
    /* micro-batches of similar size share one graph */
    assert_int_equal(0, attn_key_make(&a, 5, 3000, 60000, 12, 12, 64, 0, err, sizeof err));
    assert_int_equal(0, attn_key_make(&b, 8, 4096, 65536, 12, 12, 64, 0, err, sizeof err));
    assert_true(attn_key_equal(&a, &b));
    assert_int_equal(a.b, 8);
    assert_int_equal(a.s, 4096);
    assert_int_equal(a.t, 65536);
    /* one more segment, a longer one, or more tokens than the bucket: another graph */
    assert_int_equal(0, attn_key_make(&b, 9, 3000, 60000, 12, 12, 64, 0, err, sizeof err));
    assert_false(attn_key_equal(&a, &b));
    assert_int_equal(0, attn_key_make(&b, 5, 4097, 60000, 12, 12, 64, 0, err, sizeof err));
    assert_false(attn_key_equal(&a, &b));
    assert_int_equal(0, attn_key_make(&b, 5, 3000, 65537, 12, 12, 64, 0, err, sizeof err));
    assert_false(attn_key_equal(&a, &b));
    /* the backward, the heads, the head dim */
    assert_int_equal(0, attn_key_make(&b, 5, 3000, 60000, 12, 12, 64, 1, err, sizeof err));
    assert_false(attn_key_equal(&a, &b));
    assert_int_equal(0, attn_key_make(&b, 5, 3000, 60000, 12, 4, 64, 0, err, sizeof err));
    assert_false(attn_key_equal(&a, &b));
    assert_int_equal(0, attn_key_make(&b, 5, 3000, 60000, 6, 6, 128, 0, err, sizeof err));
    assert_false(attn_key_equal(&a, &b));
    /* short ones round up to 64 tokens */
    assert_int_equal(0, attn_key_make(&b, 1, 1, 1, 2, 1, 64, 0, err, sizeof err));
    assert_int_equal(b.s, 64);
    assert_int_equal(b.t, 64);
    assert_int_equal(b.b, 1);
}

static void test_what_cudnn_does_not_take(void **state)
{
    (void)state;
    char err[256];
    AttnGraphKey k;
    assert_int_equal(-1, attn_key_make(&k, 1, 10, 10, 4, 4, 16, 0, err, sizeof err));
    assert_non_null(strstr(err, "head dim 16"));
    assert_int_equal(-1, attn_key_make(&k, 1, 10, 10, 6, 4, 64, 0, err, sizeof err));
    assert_non_null(strstr(err, "6 query heads on 4"));
    /* 7b's qkv has 96 x 128 values a token: 128k tokens fit int32 offsets (1.6e9), 256k do not,
     * nor do 150k, whose bucket is 256k */
    assert_int_equal(0, attn_key_make(&k, 1, 131072, 131072, 32, 32, 128, 0, err, sizeof err));
    assert_int_equal(-1, attn_key_make(&k, 1, 150000, 150000, 32, 32, 128, 0, err, sizeof err));
    assert_non_null(strstr(err, "int32"));
    assert_int_equal(-1, attn_key_make(&k, 0, 1, 1, 4, 4, 64, 0, err, sizeof err));
}

static void test_bucket(void **state)
{
    (void)state;
    assert_int_equal(attn_bucket(1, 1), 1);
    assert_int_equal(attn_bucket(3, 1), 4);
    assert_int_equal(attn_bucket(64, 1), 64);
    assert_int_equal(attn_bucket(65, 64), 128);
    assert_int_equal(attn_bucket(5, 64), 64);
    assert_int_equal(attn_bucket(65536, 64), 65536);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offsets_of_a_packed_row),
        cmocka_unit_test(test_one_segment),
        cmocka_unit_test(test_statistics_layout),
        cmocka_unit_test(test_graph_keys),
        cmocka_unit_test(test_what_cudnn_does_not_take),
        cmocka_unit_test(test_bucket),
    };
    return cmocka_run_group_tests_name("attention_ragged", tests, NULL, NULL);
}
