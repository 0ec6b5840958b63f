/* Attention on cuDNN's fused flash kernels (scaled-dot-product attention, forward and backward),
 * for bf16 activations with head dim 64 or 128, over labench's packed rows as a ragged ("THD")
 * batch: one sequence per segment, causal inside it, GQA. The layout arithmetic (ragged offsets,
 * sequence lengths, where the statistics go, the graph cache's key) is kernels/attention_ragged.h,
 * plain C tested on a CPU; this file builds the graphs and runs them.
 *
 * Built with NVIDIA's cudnn-frontend (header-only; scripts/setup.sh unpacks it into build-deps/)
 * in its dynamic-loading mode: libcudnn.so.9 is dlopened here at run time, so labench has no
 * DT_NEEDED on it and starts where cuDNN is missing (then the WMMA kernels run, and say why).
 * Where it looks: LABENCH_CUDNN (the GPU bundle's preflight sets it), the loader's own path,
 * $CUDA_HOME/lib64 and the toolkit labench was built with. Without the frontend's headers at
 * build time (LABENCH_CUDNN_FE unset) the file compiles to the stubs at the end.
 *
 * Graphs: one per AttnGraphKey (segments, longest segment and tokens, each rounded up to a power
 * of two; heads; head dim; forward or backward), built once and kept (CUDNN_CACHE of them, the
 * least recently used replaced); cuda_cudnn_attention_prepare builds them before a timed region.
 * The workspace, the statistics in cuDNN's layout and the ragged tensors come from the backend's
 * arena (cuda_scratch). cuDNN's statistics are token major [N, H]; labench's lse is [H, N]: the
 * forward transposes them into lse, the backward back.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"
extern "C" {
#include "kernels/attention_ragged.h"
}

#if LABENCH_CUDNN_FE

#define NV_CUDNN_FRONTEND_USE_DYNAMIC_LOADING 1
#include <cudnn_frontend.h>

#include <memory>
#include <string>
#include <unordered_map>

#ifndef LABENCH_CUDA_HOME
#define LABENCH_CUDA_HOME "/usr/local/cuda"
#endif

namespace cudnn_frontend {
void *cudnn_dlhandle = nullptr;   /* the frontend's dynamic loading reads every symbol through it */
}
namespace fe = cudnn_frontend;

#define CUDNN_CACHE 32

enum {   /* tensor uids of the graphs' variant packs */
    UID_Q = 1, UID_K, UID_V, UID_O, UID_STATS, UID_DO, UID_DQ, UID_DK, UID_DV,
    UID_SEQ_Q, UID_SEQ_KV, UID_OFF_Q, UID_OFF_K, UID_OFF_V, UID_OFF_O, UID_OFF_STATS,
    UID_OFF_DO, UID_OFF_DQ, UID_OFF_DK, UID_OFF_DV
};

typedef struct {
    AttnGraphKey key;
    std::shared_ptr<fe::graph::Graph> graph;   /* NULL: cuDNN does not take this key (why) */
    std::string why;
    int64_t workspace;
    unsigned long used;
} CachedGraph;

typedef struct {
    cudnnHandle_t handle;
    int sm;                     /* compute capability, major * 10 + minor */
    CachedGraph cache[CUDNN_CACHE];
    int n_cached;
    unsigned long clock;
} CudnnState;

static CudnnState *state(Backend *be) { return (CudnnState *)cuda_impl(be)->cudnn; }

/* ---- loading --------------------------------------------------------------------------- */

static void *open_cudnn(char *where, size_t wn, char *tried, size_t tn)
{
    const char *env = getenv("LABENCH_CUDNN"), *home = getenv("CUDA_HOME");
    char a[1024], b[1024], c[1024];
    snprintf(a, sizeof a, "%s/lib64/libcudnn.so.9", home ? home : "");
    snprintf(b, sizeof b, "%s/lib64/libcudnn.so.9", LABENCH_CUDA_HOME);
    snprintf(c, sizeof c, "/usr/local/cuda/lib64/libcudnn.so.9");
    const char *cand[] = {env && *env ? env : NULL, "libcudnn.so.9", home ? a : NULL, b, c};
    tried[0] = '\0';
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++) {
        if (!cand[i]) continue;
        void *h = dlopen(cand[i], RTLD_NOW | RTLD_GLOBAL);
        if (h) {
            Dl_info info;
            void *sym = dlsym(h, "cudnnGetVersion");
            snprintf(where, wn, "%s", sym && dladdr(sym, &info) && info.dli_fname ? info.dli_fname : cand[i]);
            if (sym) return h;
            dlclose(h);
        }
        size_t k = strlen(tried);
        const char *e = dlerror();
        snprintf(tried + k, tn - k, "%s%s (%s)", k ? "; " : "", cand[i], e ? e : "no cudnnGetVersion");
    }
    return NULL;
}

extern "C" int cuda_cudnn_attention_load(Backend *be, char *why, size_t whylen)
{
    CudaImpl *im = cuda_impl(be);
    if (im->cudnn) return 0;
    char where[1024], tried[3072];
    if (!fe::cudnn_dlhandle) {
        void *h = open_cudnn(where, sizeof where, tried, sizeof tried);
        if (!h) {
            snprintf(why, whylen, "cuDNN not found (tried %s; the preflight sets LABENCH_CUDNN)", tried);
            return -1;
        }
        fe::cudnn_dlhandle = h;
    } else {
        snprintf(where, sizeof where, "loaded earlier");
    }
    size_t version = 0;
    cudnnHandle_t handle = NULL;
    try {
        version = fe::detail::get_backend_version();
        if (version < 90600) {   /* ragged GQA needs 9.6 */
            snprintf(why, whylen, "cuDNN %zu at %s is older than 9.6, which ragged attention with GQA needs", version,
                     where);
            return -1;
        }
        cudnnStatus_t s = fe::detail::create_handle(&handle);
        if (s == CUDNN_STATUS_SUCCESS) s = fe::detail::set_stream(handle, im->stream);
        if (s != CUDNN_STATUS_SUCCESS) {
            snprintf(why, whylen, "cuDNN %zu (%s): cudnnCreate/cudnnSetStream failed: %s", version, where,
                     fe::detail::get_error_string(s));
            if (handle) fe::detail::destroy_handle(handle);
            return -1;
        }
    } catch (const std::exception &e) {
        snprintf(why, whylen, "cuDNN at %s: %s", where, e.what());
        return -1;
    }
    CudnnState *st = new CudnnState();
    st->handle = handle;
    int dev = im->device, major = 0, minor = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    st->sm = major * 10 + minor;
    im->cudnn = st;
    snprintf(why, whylen, "cuDNN %zu.%zu.%zu fused flash attention (%s)", version / 10000, version / 100 % 100,
             version % 100, where);
    return 0;
}

extern "C" void cuda_cudnn_attention_free(Backend *be)
{
    CudaImpl *im = cuda_impl(be);
    CudnnState *st = (CudnnState *)im->cudnn;
    if (!st) return;
    try {
        fe::detail::destroy_handle(st->handle);
    } catch (...) {
    }
    delete st;
    im->cudnn = NULL;
}

/* ---- graphs ---------------------------------------------------------------------------- */

typedef std::shared_ptr<fe::graph::Tensor_attributes> TensorP;

static TensorP int_tensor(fe::graph::Graph &g, const char *name, int64_t uid, int64_t n)
{
    return g.tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim({n, 1, 1, 1})
                        .set_stride({1, 1, 1, 1}).set_data_type(fe::DataType_t::INT32));
}

/* [b, heads, s, d] inside qkv (token stride (H + 2 Hkv) D) or out (H D), from a ragged offset */
static TensorP act_tensor(fe::graph::Graph &g, const AttnGraphKey *k, const char *name, int64_t uid, int heads,
                          int64_t token_stride, int64_t off_uid, const char *off_name)
{
    return g.tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid)
                        .set_dim({k->b, heads, k->s, k->d}).set_stride({k->s * token_stride, k->d, token_stride, 1})
                        .set_ragged_offset(int_tensor(g, off_name, off_uid, k->b + 1)));
}

static void set_act_output(fe::graph::Graph &g, const TensorP &t, const AttnGraphKey *k, int64_t uid, int heads,
                           int64_t token_stride, int64_t off_uid, const char *off_name)
{
    t->set_output(true).set_uid(uid).set_dim({k->b, heads, k->s, k->d})
        .set_stride({k->s * token_stride, k->d, token_stride, 1})
        .set_ragged_offset(int_tensor(g, off_name, off_uid, k->b + 1));
}

static bool ok(fe::error_t e, const char *what, std::string &why)
{
    if (e.is_good()) return true;
    why = std::string("cuDNN ") + what + ": " + e.get_message();
    return false;
}

static std::shared_ptr<fe::graph::Graph> build_graph(CudnnState *st, const AttnGraphKey *k, std::string &why,
                                                     int64_t *workspace)
{
    auto g = std::make_shared<fe::graph::Graph>();
    g->set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    g->set_sm_version(st->sm);
    const int64_t ts = (int64_t)(k->h + 2 * k->hkv) * k->d, os = (int64_t)k->h * k->d;
    const float scale = (float)(1.0 / sqrt((double)k->d));
    TensorP q = act_tensor(*g, k, "Q", UID_Q, k->h, ts, UID_OFF_Q, "off_q");
    TensorP kk = act_tensor(*g, k, "K", UID_K, k->hkv, ts, UID_OFF_K, "off_k");
    TensorP v = act_tensor(*g, k, "V", UID_V, k->hkv, ts, UID_OFF_V, "off_v");
    TensorP seq_q = int_tensor(*g, "seq_q", UID_SEQ_Q, k->b), seq_kv = int_tensor(*g, "seq_kv", UID_SEQ_KV, k->b);
    /* cuDNN's statistics, [N, H] token major, from the same ragged offsets scaled by H */
    auto stats_attr = [&](const TensorP &t) {
        t->set_uid(UID_STATS).set_data_type(fe::DataType_t::FLOAT).set_dim({k->b, k->h, k->s, 1})
            .set_stride({k->s * k->h, 1, k->h, 1})
            .set_ragged_offset(int_tensor(*g, "off_stats", UID_OFF_STATS, k->b + 1));
    };
    if (!k->backward) {
        auto opt = fe::graph::SDPA_attributes().set_name("sdpa_fwd").set_generate_stats(true).set_attn_scale(scale)
                       .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT).set_diagonal_band_right_bound(0)
                       .set_padding_mask(true).set_seq_len_q(seq_q).set_seq_len_kv(seq_kv);
        auto outs = g->sdpa(q, kk, v, opt);
        set_act_output(*g, outs[0], k, UID_O, k->h, os, UID_OFF_O, "off_o");
        outs[1]->set_output(true);
        stats_attr(outs[1]);
    } else {
        TensorP o = act_tensor(*g, k, "O", UID_O, k->h, os, UID_OFF_O, "off_o");
        TensorP dO = act_tensor(*g, k, "dO", UID_DO, k->h, os, UID_OFF_DO, "off_do");
        TensorP stats = g->tensor(fe::graph::Tensor_attributes().set_name("stats"));
        stats_attr(stats);
        auto opt = fe::graph::SDPA_backward_attributes().set_name("sdpa_bwd").set_attn_scale(scale)
                       .set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT).set_diagonal_band_right_bound(0)
                       .set_padding_mask(true).set_seq_len_q(seq_q).set_seq_len_kv(seq_kv)
                       .set_max_total_seq_len_q(k->t).set_max_total_seq_len_kv(k->t);
        auto grads = g->sdpa_backward(q, kk, v, o, dO, stats, opt);
        set_act_output(*g, grads[0], k, UID_DQ, k->h, ts, UID_OFF_DQ, "off_dq");
        set_act_output(*g, grads[1], k, UID_DK, k->hkv, ts, UID_OFF_DK, "off_dk");
        set_act_output(*g, grads[2], k, UID_DV, k->hkv, ts, UID_OFF_DV, "off_dv");
    }
    if (!ok(g->validate(), "validate", why) || !ok(g->build_operation_graph(st->handle), "build_operation_graph", why) ||
        !ok(g->create_execution_plans({fe::HeurMode_t::A}), "create_execution_plans", why) ||
        !ok(g->check_support(), "check_support", why) || !ok(g->build_plans(), "build_plans", why) ||
        !ok(g->get_workspace_size(*workspace), "get_workspace_size", why))
        return nullptr;
    return g;
}

/* the graph for key k: from the cache, else built (and cached, also when cuDNN refuses it) */
static CachedGraph *graph_for(CudnnState *st, const AttnGraphKey *k)
{
    st->clock++;
    for (int i = 0; i < st->n_cached; i++)
        if (attn_key_equal(&st->cache[i].key, k)) {
            st->cache[i].used = st->clock;
            return &st->cache[i];
        }
    int slot = st->n_cached < CUDNN_CACHE ? st->n_cached++ : 0;
    if (slot == 0 && st->n_cached == CUDNN_CACHE)
        for (int i = 1; i < CUDNN_CACHE; i++)
            if (st->cache[i].used < st->cache[slot].used) slot = i;
    CachedGraph *c = &st->cache[slot];
    c->key = *k;
    c->used = st->clock;
    c->workspace = 0;
    c->why.clear();
    try {
        c->graph = build_graph(st, k, c->why, &c->workspace);
    } catch (const std::exception &e) {
        c->graph = nullptr;
        c->why = std::string("cuDNN: ") + e.what();
    }
    return c;
}

/* ---- the ops --------------------------------------------------------------------------- */

__global__ void ragged_kernel(const int32_t *cu, int n_segs, int64_t B, int H, int Hkv, int D, int32_t *seq_len,
                              int32_t *off_qkv, int32_t *off_o, int32_t *off_stats)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= B) attn_ragged_entry(cu, n_segs, B, i, H, Hkv, D, seq_len, off_qkv, off_o, off_stats);
}

/* to_lse 1: lse[H, N] = stats[N, H]; 0: the reverse. Tokens past the last segment get lse 0. */
__global__ void stats_kernel(float *lse, float *stats, const int32_t *cu, int n_segs, int N, int H, int to_lse)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)N * H) return;
    const int64_t t = i / H;
    const int h = (int)(i % H);
    const int64_t s = attn_stats_index(t, h, H), l = attn_lse_index(t, h, N);
    if (to_lse) lse[l] = t < cu[n_segs] ? stats[s] : 0.0f;
    else stats[s] = lse[l];
}

/* Device memory of one call, carved from the arena's scratch: workspace | stats | ragged ints */
typedef struct {
    void *workspace;
    float *stats;
    int32_t *seq_len, *off_qkv, *off_o, *off_stats;
} CallMem;

static int call_mem(Backend *be, const CachedGraph *c, int N, int H, CallMem *m)
{
    const size_t B = (size_t)c->key.b;
    const size_t ws = ((size_t)c->workspace + 255) / 256 * 256, st = ((size_t)N * H * sizeof(float) + 255) / 256 * 256;
    const size_t ints = (B + 3 * (B + 1)) * sizeof(int32_t);
    char *p = (char *)cuda_scratch(be, ws + st + ints);
    if (!p) {
        fprintf(stderr, "labench: out of GPU memory for cuDNN attention's workspace (%.2f GiB); try fewer --max-tokens\n",
                (double)(ws + st + ints) / (1u << 30));
        exit(2);
    }
    m->workspace = ws ? p : NULL;
    m->stats = (float *)(p + ws);
    m->seq_len = (int32_t *)(p + ws + st);
    m->off_qkv = m->seq_len + B;
    m->off_o = m->off_qkv + B + 1;
    m->off_stats = m->off_o + B + 1;
    return 0;
}

static void fill_ragged(Backend *be, const CachedGraph *c, const int32_t *cu, int n_segs, const CallMem *m)
{
    const int64_t B = c->key.b;
    ragged_kernel<<<ceil_div((size_t)B + 1, 256), 256, 0, cuda_stream(be)>>>(cu, n_segs, B, c->key.h, c->key.hkv,
                                                                            c->key.d, m->seq_len, m->off_qkv, m->off_o,
                                                                            m->off_stats);
    CUDA_LAUNCH_CHECK();
}

static void run_graph(Backend *be, const CachedGraph *c, std::unordered_map<int64_t, void *> &pack, void *ws)
{
    try {
        fe::error_t e = c->graph->execute(state(be)->handle, pack, ws);
        if (e.is_bad()) {
            fprintf(stderr, "labench: cuDNN attention failed: %s\n", e.get_message().c_str());
            exit(1);
        }
    } catch (const std::exception &x) {
        fprintf(stderr, "labench: cuDNN attention failed: %s\n", x.what());
        exit(1);
    }
}

/* the graph for this shape; NULL when cuDNN does not take it (why says so) */
static const CachedGraph *usable(Backend *be, int n_segs, int max_seqlen, int N, int H, int Hkv, int D, int backward,
                                 char *why, size_t whylen)
{
    CudnnState *st = state(be);
    AttnGraphKey k;
    if (!st) {
        snprintf(why, whylen, "cuDNN is not loaded");
        return NULL;
    }
    if (be->act_dtype != DT_BF16) {
        snprintf(why, whylen, "cuDNN's path is for bf16 (this backend computes in %s)", dtype_name(be->act_dtype));
        return NULL;
    }
    if (attn_key_make(&k, n_segs, max_seqlen, N, H, Hkv, D, backward, why, whylen) != 0) return NULL;
    const CachedGraph *c = graph_for(st, &k);
    if (!c->graph) {
        snprintf(why, whylen, "%s", c->why.c_str());
        return NULL;
    }
    return c;
}

extern "C" int cuda_cudnn_attention_prepare(Backend *be, int n_segs, int max_seqlen, int N, int H, int Hkv, int D,
                                            char *why, size_t whylen)
{
    for (int backward = 0; backward < 2; backward++)
        if (!usable(be, n_segs, max_seqlen, N, H, Hkv, D, backward, why, whylen)) return 0;
    return 1;
}

extern "C" int cuda_cudnn_attention_forward(Backend *be, void *out, void *lse, const void *qkv, const int32_t *cu,
                                            int n_segs, int max_seqlen, int N, int H, int Hkv, int D, char *why,
                                            size_t whylen)
{
    const CachedGraph *c = usable(be, n_segs, max_seqlen, N, H, Hkv, D, 0, why, whylen);
    if (!c) return 0;
    CallMem m;
    call_mem(be, c, N, H, &m);
    fill_ragged(be, c, cu, n_segs, &m);
    const int Hq = H * D;
    __nv_bfloat16 *q = (__nv_bfloat16 *)qkv;
    std::unordered_map<int64_t, void *> pack = {
        {UID_Q, q}, {UID_K, q + Hq}, {UID_V, q + Hq + Hkv * D}, {UID_O, out}, {UID_STATS, m.stats},
        {UID_SEQ_Q, m.seq_len}, {UID_SEQ_KV, m.seq_len}, {UID_OFF_Q, m.off_qkv}, {UID_OFF_K, m.off_qkv},
        {UID_OFF_V, m.off_qkv}, {UID_OFF_O, m.off_o}, {UID_OFF_STATS, m.off_stats}};
    run_graph(be, c, pack, m.workspace);
    stats_kernel<<<ceil_div((size_t)N * H, 256), 256, 0, cuda_stream(be)>>>((float *)lse, m.stats, cu, n_segs, N, H, 1);
    CUDA_LAUNCH_CHECK();
    return 1;
}

extern "C" int cuda_cudnn_attention_backward(Backend *be, void *dqkv, const void *dout, const void *qkv,
                                             const void *out, const void *lse, const int32_t *cu, int n_segs,
                                             int max_seqlen, int N, int H, int Hkv, int D, char *why, size_t whylen)
{
    const CachedGraph *c = usable(be, n_segs, max_seqlen, N, H, Hkv, D, 1, why, whylen);
    if (!c) return 0;
    CallMem m;
    call_mem(be, c, N, H, &m);
    fill_ragged(be, c, cu, n_segs, &m);
    stats_kernel<<<ceil_div((size_t)N * H, 256), 256, 0, cuda_stream(be)>>>((float *)(uintptr_t)lse, m.stats, cu, n_segs,
                                                                            N, H, 0);
    CUDA_LAUNCH_CHECK();
    const int Hq = H * D;
    __nv_bfloat16 *q = (__nv_bfloat16 *)qkv, *dq = (__nv_bfloat16 *)dqkv;
    std::unordered_map<int64_t, void *> pack = {
        {UID_Q, q}, {UID_K, q + Hq}, {UID_V, q + Hq + Hkv * D}, {UID_O, (void *)out}, {UID_DO, (void *)dout},
        {UID_STATS, m.stats}, {UID_DQ, dq}, {UID_DK, dq + Hq}, {UID_DV, dq + Hq + Hkv * D},
        {UID_SEQ_Q, m.seq_len}, {UID_SEQ_KV, m.seq_len}, {UID_OFF_Q, m.off_qkv}, {UID_OFF_K, m.off_qkv},
        {UID_OFF_V, m.off_qkv}, {UID_OFF_O, m.off_o}, {UID_OFF_DO, m.off_o}, {UID_OFF_STATS, m.off_stats},
        {UID_OFF_DQ, m.off_qkv}, {UID_OFF_DK, m.off_qkv}, {UID_OFF_DV, m.off_qkv}};
    run_graph(be, c, pack, m.workspace);
    return 1;
}

#else /* !LABENCH_CUDNN_FE: built without cudnn-frontend's headers */

extern "C" int cuda_cudnn_attention_load(Backend *be, char *why, size_t whylen)
{
    (void)be;
    snprintf(why, whylen, "this labench was built without cuDNN attention (no cudnn-frontend headers at build "
             "time: scripts/setup.sh fetches them)");
    return -1;
}

extern "C" void cuda_cudnn_attention_free(Backend *be) { (void)be; }

extern "C" int cuda_cudnn_attention_prepare(Backend *be, int n_segs, int max_seqlen, int N, int H, int Hkv, int D,
                                            char *why, size_t whylen)
{
    snprintf(why, whylen, "built without cuDNN attention");
    return 0;
}

extern "C" int cuda_cudnn_attention_forward(Backend *be, void *out, void *lse, const void *qkv, const int32_t *cu,
                                            int n_segs, int max_seqlen, int N, int H, int Hkv, int D, char *why,
                                            size_t whylen)
{
    snprintf(why, whylen, "built without cuDNN attention");
    return 0;
}

extern "C" int cuda_cudnn_attention_backward(Backend *be, void *dqkv, const void *dout, const void *qkv,
                                             const void *out, const void *lse, const int32_t *cu, int n_segs,
                                             int max_seqlen, int N, int H, int Hkv, int D, char *why, size_t whylen)
{
    snprintf(why, whylen, "built without cuDNN attention");
    return 0;
}

#endif
