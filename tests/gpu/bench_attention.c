/* The attention kernels' speed on the GPU (measure.sh): labench's WMMA kernels and
 * cuDNN's fused flash kernels, forward and backward, bf16, on one packed row of 65536 tokens cut
 * into causal segments of 1k, 4k, 16k or 64k tokens, head dim 64 and 128 (H D = 2048: 32 or 16
 * heads, no GQA: the shapes FlashAttention's benchmarks use). tests/gpu/sdpa_torch.py times
 * PyTorch's scaled_dot_product_attention on the same shapes and merges both into one table.
 *
 *   usage: bench_attention [--out FILE.json] [--repeat N]
 *
 * Each (kernel, D, segment) runs once untimed (cuDNN builds its graphs there), then N times
 * (default 5) timed with CUDA events around the forward and around the backward; the median is
 * reported, with TFLOP/s by FlashAttention's count: forward 4 L^2 D H / 2 per causal segment of
 * L tokens, backward 2.5 times that. Nothing is asserted: a benchmark, not a test. Exit 0; 2 on a
 * bad option or no GPU (one line). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"

#define TOKENS 65536
#define WIDTH 2048   /* H D */

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the runs so far, written whole (temporary name, then rename) after each, so that a run cut off
 * by its time limit keeps what it measured */
static void save(const char *path, json_t *doc)
{
    if (!path) return;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (json_dump_file(doc, tmp, JSON_INDENT(1)) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "bench_attention: cannot write %s\n", path);
        exit(2);
    }
}

static Backend *create_with(const char *attn, char *why, size_t whylen)
{
    setenv("LABENCH_ATTN", attn, 1);
    Backend *be = backend_cuda_create(DT_BF16, 0, why, whylen);
    unsetenv("LABENCH_ATTN");
    return be;
}

/* median forward and backward seconds of `repeat` timed passes */
static void time_one(Backend *g, int D, int L, int repeat, double *fwd, double *bwd)
{
    const int H = WIDTH / D, N = TOKENS, n_segs = N / L, row = 3 * H * D;
    int32_t *cu = malloc((size_t)(n_segs + 1) * sizeof *cu);
    float *x = malloc((size_t)N * row * sizeof *x);
    if (!cu || !x) {
        fprintf(stderr, "bench_attention: out of host memory\n");
        exit(2);
    }
    for (int s = 0; s <= n_segs; s++) cu[s] = s * L;
    uint64_t st = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < (size_t)N * row; i++) {   /* uniform in [-2, 2), xorshift64* */
        st ^= st >> 12, st ^= st << 25, st ^= st >> 27;
        x[i] = (float)(((st * 0x2545f4914f6cdd1dull) >> 40) * (4.0 / (1 << 24))) - 2.0f;
    }
    void *qkv = g->alloc(g, (size_t)N * row * 2), *out = g->alloc(g, (size_t)N * H * D * 2);
    void *dout = g->alloc(g, (size_t)N * H * D * 2), *dqkv = g->alloc(g, (size_t)N * row * 2);
    void *lse = g->alloc(g, (size_t)N * H * 4), *dcu = g->alloc(g, (size_t)(n_segs + 1) * 4);
    if (!qkv || !out || !dout || !dqkv || !lse || !dcu) {
        fprintf(stderr, "bench_attention: out of GPU memory\n");
        exit(2);
    }
    g->upload_f32(g, qkv, DT_BF16, x, (size_t)N * row);
    g->upload_f32(g, dout, DT_BF16, x, (size_t)N * H * D);
    g->upload(g, dcu, cu, (size_t)(n_segs + 1) * 4);
    double *tf = malloc((size_t)repeat * sizeof *tf), *tb = malloc((size_t)repeat * sizeof *tb);
    if (!tf || !tb) exit(2);
    for (int r = -1; r < repeat; r++) {   /* r = -1: untimed (graphs, caches) */
        g->mark(g, 0);
        g->attention_forward(g, out, lse, qkv, dcu, n_segs, L, N, H, H, D);
        g->mark(g, 1);
        g->attention_backward(g, dqkv, dout, qkv, out, lse, dcu, n_segs, L, N, H, H, D);
        g->mark(g, 2);
        if (r < 0) {
            g->synchronize(g);
            continue;
        }
        tf[r] = g->seconds_between(g, 0, 1);
        tb[r] = g->seconds_between(g, 1, 2);
    }
    qsort(tf, (size_t)repeat, sizeof *tf, cmp_double);
    qsort(tb, (size_t)repeat, sizeof *tb, cmp_double);
    *fwd = tf[repeat / 2];
    *bwd = tb[repeat / 2];
    void *p[] = {qkv, out, dout, dqkv, lse, dcu};
    for (int i = 0; i < 6; i++) g->free(g, p[i]);
    free(tf);
    free(tb);
    free(cu);
    free(x);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *out_path = NULL;
    int repeat = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out_path = argv[++i];
        } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0) {
            repeat = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--out FILE.json] [--repeat N]   (N > 0; bad: '%s')\n", argv[0], argv[i]);
            return 2;
        }
    }
    const char *impls[] = {"cudnn", "wmma"};
    const int Ds[] = {64, 128}, Ls[] = {1024, 4096, 16384, 65536};
    json_t *doc = json_pack("{s:s, s:i, s:i, s:i, s:[]}", "schema", "labench-attention-speed", "tokens", TOKENS,
                            "width", WIDTH, "repeat", repeat, "runs");
    json_t *runs = json_object_get(doc, "runs");
    int any = 0;
    for (int k = 0; k < 2; k++) {
        char why[1024];
        Backend *g = create_with(impls[k], why, sizeof why);
        if (!g) {
            printf("%-6s not run: %s\n", impls[k], why);
            json_array_append_new(runs, json_pack("{s:s, s:s}", "impl", impls[k], "unavailable", why));
            save(out_path, doc);
            continue;
        }
        any = 1;
        printf("%-6s %s on %s\n", impls[k], g->attention_desc, g->device_name);
        for (int di = 0; di < 2; di++)
            for (int li = 0; li < 4; li++) {
                const int D = Ds[di], L = Ls[li], H = WIDTH / D;
                double fs = 0, bs = 0;
                time_one(g, D, L, repeat, &fs, &bs);
                const double flops = 4.0 * L * (double)L * D * H / 2.0 * (TOKENS / L);
                printf("%-6s D=%-3d H=%-2d segments of %5d: fwd %8.3f ms %6.1f TFLOP/s   bwd %8.3f ms %6.1f TFLOP/s\n",
                       impls[k], D, H, L, fs * 1e3, flops / fs / 1e12, bs * 1e3, 2.5 * flops / bs / 1e12);
                json_array_append_new(runs, json_pack("{s:s, s:s, s:i, s:i, s:i, s:f, s:f, s:f, s:f}", "impl",
                                                      impls[k], "attention", g->attention_desc, "D", D, "H", H,
                                                      "segment", L, "fwd_s", fs, "bwd_s", bs, "fwd_tflops",
                                                      flops / fs / 1e12, "bwd_tflops", 2.5 * flops / bs / 1e12));
                save(out_path, doc);
            }
        g->destroy(g);
    }
    json_decref(doc);
    if (!any) {
        printf("SKIP: no CUDA backend could be created\n");
        return 2;
    }
    return 0;
}
