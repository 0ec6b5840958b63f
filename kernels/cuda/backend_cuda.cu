/* The CUDA backend: device selection and peak FLOP/s, the memory arena, transfers, timing with
 * events, and the Backend table over the ops of ops.cu, matmul.cu and attention.cu.
 *
 * Everything runs on one stream, in order; the host waits only where it must (downloads,
 * uploads, sum_squares, synchronize, seconds_between).
 */
#include <string.h>

#include "kernels/cuda/common.cuh"

/* ------------------------------------------------------------------------------------------ */
/* memory: one arena per backend.
 *
 * Blocks are carved from large cudaMalloc'd chunks (at least ARENA_CHUNK bytes each) with a bump
 * pointer; a freed block goes on a free list and is handed to a later alloc that needs no more
 * than it holds and at least half of it (blocks are never split or merged). The model
 * allocates everything once per run, so the list stays short and reuse is mostly the attention
 * backward's per-call scratch. bytes_in_use counts blocks (sizes rounded up to ARENA_ALIGN)
 * that are live. A chunk whose blocks are all free goes back to the driver at once (with them):
 * when one strategy's model is freed, the next one's, sized for other batches, starts from the
 * device's free memory instead of a list of blocks it cannot reuse (naive, packing and
 * sorted models of `7b --layers 2` held side by side would not fit an H100). Frees happen when
 * a model or a grown scratch is let go, never inside a step, so this costs no step time. */

#define ARENA_ALIGN ((size_t)256)
#define ARENA_CHUNK ((size_t)256 << 20)

static void arena_note_device_used(CudaImpl *im)
{
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
        if (total_b - free_b > im->device_used_at_peak) im->device_used_at_peak = total_b - free_b;
    } else {
        (void)cudaGetLastError();
    }
}

static int arena_add_block(CudaImpl *im, char *ptr, size_t bytes)
{
    if (im->n_blocks == im->cap_blocks) {
        int cap = im->cap_blocks ? 2 * im->cap_blocks : 256;
        ArenaBlock *b = (ArenaBlock *)realloc(im->blocks, (size_t)cap * sizeof *b);
        if (!b) return -1;
        im->blocks = b;
        im->cap_blocks = cap;
    }
    ArenaBlock b = {ptr, bytes, 1};
    im->blocks[im->n_blocks++] = b;
    return 0;
}

/* bytes from some chunk's unused tail, or from a new chunk; NULL when the device is full */
static char *arena_carve(CudaImpl *im, size_t need)
{
    for (int c = 0; c < im->n_chunks; c++) {
        ArenaChunk *ch = &im->chunks[c];
        if (ch->size - ch->used >= need) {
            char *p = ch->base + ch->used;
            ch->used += need;
            return p;
        }
    }
    if (im->n_chunks == im->cap_chunks) {
        int cap = im->cap_chunks ? 2 * im->cap_chunks : 16;
        ArenaChunk *ch = (ArenaChunk *)realloc(im->chunks, (size_t)cap * sizeof *ch);
        if (!ch) return NULL;
        im->chunks = ch;
        im->cap_chunks = cap;
    }
    size_t size = need > ARENA_CHUNK ? need : ARENA_CHUNK;
    void *base = NULL;
    if (cudaMalloc(&base, size) != cudaSuccess) {
        (void)cudaGetLastError();   /* an allocation failure must not surface at the next launch */
        if (size == need) return NULL;
        size = need;   /* near the limit: a chunk of exactly what is asked may still fit */
        if (cudaMalloc(&base, size) != cudaSuccess) {
            (void)cudaGetLastError();
            return NULL;
        }
    }
    ArenaChunk ch = {(char *)base, size, need};
    im->chunks[im->n_chunks++] = ch;
    arena_note_device_used(im);
    return (char *)base;
}

static void *cuda_alloc(Backend *be, size_t bytes)
{
    CudaImpl *im = cuda_impl(be);
    const size_t need = ((bytes ? bytes : 1) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    int best = -1;
    for (int i = 0; i < im->n_blocks; i++) {
        const ArenaBlock *b = &im->blocks[i];
        if (!b->live && b->bytes >= need && b->bytes / 2 <= need && (best < 0 || b->bytes < im->blocks[best].bytes))
            best = i;
    }
    char *p;
    size_t got;
    if (best >= 0) {
        im->blocks[best].live = 1;
        p = im->blocks[best].ptr;
        got = im->blocks[best].bytes;
    } else {
        p = arena_carve(im, need);
        if (!p) return NULL;
        if (arena_add_block(im, p, need) != 0) return NULL;   /* the carved bytes stay unused */
        got = need;
    }
    im->in_use += got;
    if (im->in_use > im->peak) im->peak = im->in_use;
    CUDA_CHECK(cudaMemsetAsync(p, 0, got, im->stream));
    return p;
}

/* the chunk holding p back to the driver, with its blocks, when none of them is live */
static void arena_release_if_free(CudaImpl *im, const char *p)
{
    int c = 0;
    while (c < im->n_chunks && !(p >= im->chunks[c].base && p < im->chunks[c].base + im->chunks[c].size)) c++;
    if (c == im->n_chunks) return;
    const char *lo = im->chunks[c].base, *hi = lo + im->chunks[c].size;
    for (int i = 0; i < im->n_blocks; i++)
        if (im->blocks[i].live && im->blocks[i].ptr >= lo && im->blocks[i].ptr < hi) return;
    int k = 0;
    for (int i = 0; i < im->n_blocks; i++)
        if (!(im->blocks[i].ptr >= lo && im->blocks[i].ptr < hi)) im->blocks[k++] = im->blocks[i];
    im->n_blocks = k;
    CUDA_CHECK(cudaStreamSynchronize(im->stream));   /* work still queued may read the chunk */
    CUDA_CHECK(cudaFree(im->chunks[c].base));
    im->chunks[c] = im->chunks[--im->n_chunks];
}

static void cuda_free(Backend *be, void *p)
{
    if (!p) return;
    CudaImpl *im = cuda_impl(be);
    for (int i = 0; i < im->n_blocks; i++) {
        ArenaBlock *b = &im->blocks[i];
        if (b->ptr == (char *)p && b->live) {
            b->live = 0;
            im->in_use -= b->bytes;
            arena_release_if_free(im, (const char *)p);
            return;
        }
    }
    fprintf(stderr, "labench: internal error: CUDA backend free of a pointer it did not allocate (or freed twice)\n");
    abort();
}

void *cuda_scratch(Backend *be, size_t bytes)
{
    CudaImpl *im = cuda_impl(be);
    if (bytes <= im->scratch_bytes) return im->scratch;
    if (im->scratch) cuda_free(be, im->scratch);
    im->scratch = cuda_alloc(be, bytes);
    im->scratch_bytes = im->scratch ? bytes : 0;
    return im->scratch;
}

static size_t cuda_bytes_in_use(Backend *be) { return cuda_impl(be)->in_use; }
static size_t cuda_peak_bytes(Backend *be) { return cuda_impl(be)->peak; }

static void cuda_reset_peak(Backend *be)
{
    CudaImpl *im = cuda_impl(be);
    im->peak = im->in_use;
    im->device_used_at_peak = 0;
    arena_note_device_used(im);
}

/* Device memory in use (cudaMemGetInfo: every process and context on the GPU, this one's arena
 * chunks, cuBLAS workspaces, CUDA's own context) at its highest sample: samples are taken when
 * the arena grows and at reset_peak. Not in backend.h; declare it where it is needed. */
extern "C" size_t backend_cuda_device_used_peak(Backend *be)
{
    CudaImpl *im = cuda_impl(be);
    arena_note_device_used(im);
    return im->device_used_at_peak;
}

/* 1 when bf16 attention with D = 64 or 128 runs on the tensor cores (attention_wmma.cuh); for
 * tests that must know which kernels they check. Not in backend.h; declare it where needed. */
extern "C" int backend_cuda_attention_wmma(Backend *be) { return cuda_impl(be)->attn_wmma; }

/* ------------------------------------------------------------------------------------------ */
/* transfers. Host buffers are the caller's ordinary (pageable) memory; uploads wait until the
 * copy is done so that the caller may reuse its buffer at once. */

static void cuda_upload(Backend *be, void *dst, const void *src, size_t bytes)
{
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_stream(be)));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream(be)));
}

static void cuda_download(Backend *be, void *dst, const void *src, size_t bytes)
{
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_stream(be)));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream(be)));
}

/* memmove semantics, as the CPU backend's copy: cudaMemcpy's result is undefined on overlapping
 * ranges, so those go through a temporary buffer (stream-ordered, freed once the copy is done) */
static void cuda_copy(Backend *be, void *dst, const void *src, size_t bytes)
{
    if (!bytes || dst == src) return;
    const char *d = (const char *)dst, *s = (const char *)src;
    if (d < s + bytes && s < d + bytes) {
        void *tmp = NULL;
        CUDA_CHECK(cudaMallocAsync(&tmp, bytes, cuda_stream(be)));
        CUDA_CHECK(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream(be)));
        CUDA_CHECK(cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDeviceToDevice, cuda_stream(be)));
        CUDA_CHECK(cudaFreeAsync(tmp, cuda_stream(be)));
        return;
    }
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream(be)));
}

static void cuda_zero(Backend *be, void *dst, size_t bytes)
{
    if (!bytes) return;
    CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, cuda_stream(be)));
}

static void cuda_synchronize(Backend *be) { CUDA_CHECK(cudaStreamSynchronize(cuda_stream(be))); }

/* bf16 is the top half of an f32: round to nearest even on the dropped half */
static uint16_t host_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float host_bf16_to_f32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void *host_stage(size_t bytes)
{
    void *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "labench: out of host memory staging a %zu-byte transfer\n", bytes);
        exit(2);
    }
    return p;
}

/* conversions happen on the host, so the device never holds a second copy */
static void cuda_upload_f32(Backend *be, void *dst, DType dst_type, const float *src, size_t n)
{
    if (!n) return;
    if (dst_type == DT_F32) { cuda_upload(be, dst, src, n * sizeof(float)); return; }
    void *tmp = host_stage(n * dtype_size(dst_type));
    if (dst_type == DT_BF16)
        for (size_t i = 0; i < n; i++) ((uint16_t *)tmp)[i] = host_f32_to_bf16(src[i]);
    else
        for (size_t i = 0; i < n; i++) ((double *)tmp)[i] = src[i];
    cuda_upload(be, dst, tmp, n * dtype_size(dst_type));
    free(tmp);
}

static void cuda_download_f32(Backend *be, float *dst, const void *src, DType src_type, size_t n)
{
    if (!n) return;
    if (src_type == DT_F32) { cuda_download(be, dst, src, n * sizeof(float)); return; }
    void *tmp = host_stage(n * dtype_size(src_type));
    cuda_download(be, tmp, src, n * dtype_size(src_type));
    if (src_type == DT_BF16)
        for (size_t i = 0; i < n; i++) dst[i] = host_bf16_to_f32(((const uint16_t *)tmp)[i]);
    else
        for (size_t i = 0; i < n; i++) dst[i] = (float)((const double *)tmp)[i];
    free(tmp);
}

/* ------------------------------------------------------------------------------------------ */
/* timing: one event per slot, recorded on the stream */

static void cuda_mark(Backend *be, int slot)
{
    if (slot < 0 || slot >= BACKEND_MARKS) {
        fprintf(stderr, "labench: internal error: timing mark slot %d (0..%d)\n", slot, BACKEND_MARKS - 1);
        abort();
    }
    CUDA_CHECK(cudaEventRecord(cuda_impl(be)->marks[slot], cuda_stream(be)));
}

static double cuda_seconds_between(Backend *be, int a, int b)
{
    if (a < 0 || a >= BACKEND_MARKS || b < 0 || b >= BACKEND_MARKS) {
        fprintf(stderr, "labench: internal error: timing mark slots %d, %d (0..%d)\n", a, b, BACKEND_MARKS - 1);
        abort();
    }
    CudaImpl *im = cuda_impl(be);
    CUDA_CHECK(cudaEventSynchronize(im->marks[b]));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, im->marks[a], im->marks[b]));
    return ms / 1000.0;
}

/* ------------------------------------------------------------------------------------------ */
/* peak FLOP/s: dense BF16 tensor-core peak from the datasheets, by name; else an estimate */

typedef struct {
    const char *match, *also;   /* both must occur in the device name (also may be NULL) */
    double flops;
    const char *label;
} PeakEntry;

/* first match wins: the more specific names come first */
static const PeakEntry PEAKS[] = {
    {"H200", "NVL", 835e12, "H200 NVL"},
    {"H200", NULL, 989e12, "H200 (SXM) / GH200"},
    {"H100", "PCIe", 756e12, "H100 PCIe"},
    {"H100", "NVL", 835e12, "H100 NVL"},
    {"H100", NULL, 989e12, "H100 SXM"},
    {"H800", "PCIe", 756e12, "H800 PCIe"},
    {"H800", NULL, 989e12, "H800 SXM"},
    {"A100", NULL, 312e12, "A100"},
    {"A800", NULL, 312e12, "A800"},
    {"L40S", NULL, 362e12, "L40S"},
};

static void set_peak_flops(Backend *be, CudaImpl *im, const cudaDeviceProp *prop)
{
    for (size_t i = 0; i < sizeof PEAKS / sizeof PEAKS[0]; i++) {
        const PeakEntry *e = &PEAKS[i];
        if (strstr(prop->name, e->match) && (!e->also || strstr(prop->name, e->also))) {
            be->peak_flops = e->flops;
            snprintf(im->peak_src, sizeof im->peak_src,
                     "datasheet dense BF16 tensor-core peak of the %s (%.0f TFLOP/s), matched from the device name",
                     e->label, e->flops / 1e12);
            be->peak_flops_source = im->peak_src;
            return;
        }
    }
    /* dense BF16 FLOP per SM per clock: A100-class 2048, H100-class 4096, B200-class 8192;
     * other sm_8x parts (A10, L4, L40, RTX) 1024, and GeForce cards half that */
    int clock_khz = 0;
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, im->device) != cudaSuccess) {
        (void)cudaGetLastError();
        clock_khz = 0;
    }
    const int cc = prop->major * 10 + prop->minor;
    const double per_clock = cc == 80 ? 2048 : cc == 90 ? 4096 : (cc == 100 || cc == 103) ? 8192 : 1024;
    be->peak_flops = (double)prop->multiProcessorCount * clock_khz * 1e3 * per_clock;
    snprintf(im->peak_src, sizeof im->peak_src,
             "estimate (no datasheet entry for this GPU): %d SMs x %.2f GHz x %.0f dense BF16 FLOP per SM per clock "
             "for compute capability %d.%d",
             prop->multiProcessorCount, clock_khz / 1e6, per_clock, prop->major, prop->minor);
    be->peak_flops_source = im->peak_src;
}

/* ------------------------------------------------------------------------------------------ */
/* create / destroy */

static void release(Backend *be)
{
    if (!be) return;
    CudaImpl *im = cuda_impl(be);
    if (im) {
        if (im->stream) (void)cudaStreamSynchronize(im->stream);
        for (int i = 0; i < BACKEND_MARKS; i++)
            if (im->marks[i]) (void)cudaEventDestroy(im->marks[i]);
        cuda_cudnn_attention_free(be);
        if (im->cublas) (void)cublasDestroy(im->cublas);
        if (im->stream) (void)cudaStreamDestroy(im->stream);
        for (int c = 0; c < im->n_chunks; c++) (void)cudaFree(im->chunks[c].base);
        if (im->ss_partial) (void)cudaFree(im->ss_partial);
        free(im->ss_host);
        free(im->chunks);
        free(im->blocks);
        free(im);
    }
    (void)cudaGetLastError();
    free(be);
}

static void cuda_destroy(Backend *be) { release(be); }

/* ------------------------------------------------------------------------------------------ */
/* which attention runs: --attention auto | cudnn | wmma, or LABENCH_ATTN at creation */

static const char *own_kernels(Backend *be)
{
    return be->act_dtype != DT_BF16 ? "labench's FMA kernels (f32; cuDNN's path is bf16 only)"
           : cuda_impl(be)->attn_wmma ? "labench's WMMA tensor-core kernels (D 64, 128; FMA kernels otherwise)"
                                      : "labench's FMA kernels (the WMMA ones are off: LABENCH_ATTN=scalar, or too "
                                        "little shared memory)";
}

static int cuda_set_attention(Backend *be, const char *mode, char *err, size_t errlen)
{
    CudaImpl *im = cuda_impl(be);
    char why[1200] = "";
    if (strcmp(mode, "wmma") == 0) {
        im->attn_mode = ATTN_MODE_WMMA;
        snprintf(im->attn_base, sizeof im->attn_base, "wmma: %s, as asked", own_kernels(be));
    } else if (strcmp(mode, "cudnn") == 0 || strcmp(mode, "auto") == 0) {
        const int want = strcmp(mode, "cudnn") == 0;
        if (be->act_dtype != DT_BF16) {
            if (want) {
                snprintf(err, errlen, "cuDNN attention is for bf16 (--dtype bf16); fp32 keeps labench's kernels");
                return -1;
            }
            im->attn_mode = ATTN_MODE_AUTO;
            snprintf(im->attn_base, sizeof im->attn_base, "auto: %s", own_kernels(be));
        } else if (cuda_cudnn_attention_load(be, why, sizeof why) != 0) {
            if (want) {
                snprintf(err, errlen, "cuDNN attention cannot run here: %s", why);
                return -1;
            }
            im->attn_mode = ATTN_MODE_AUTO;
            snprintf(im->attn_base, sizeof im->attn_base, "wmma (auto): %s; cuDNN: %.240s", own_kernels(be), why);
        } else {
            im->attn_mode = want ? ATTN_MODE_CUDNN : ATTN_MODE_AUTO;
            snprintf(im->attn_base, sizeof im->attn_base, "cudnn (%s): %.300s", want ? "as asked" : "auto", why);
        }
    } else {
        snprintf(err, errlen, "attention '%s': auto, cudnn or wmma", mode);
        return -1;
    }
    im->attn_declined = 0;
    snprintf(be->attention_desc, sizeof be->attention_desc, "%s", im->attn_base);
    return 0;
}

static void cuda_attention_prepare(Backend *be, int n_segs, int max_seqlen, int N, int H, int Hkv, int D)
{
    const CudaImpl *im = cuda_impl(be);
    char why[512];
    if (im->cudnn && be->act_dtype == DT_BF16 && im->attn_mode != ATTN_MODE_WMMA && n_segs > 0)
        (void)cuda_cudnn_attention_prepare(be, n_segs, max_seqlen, N, H, Hkv, D, why, sizeof why);
}

/* one-line reason for a failed CUDA call during creation */
static Backend *fail(Backend *be, char *err, size_t errlen, const char *what, cudaError_t e)
{
    snprintf(err, errlen, "%s: %s", what, cudaGetErrorString(e));
    (void)cudaGetLastError();
    release(be);
    return NULL;
}

extern "C" Backend *backend_cuda_create(DType act_dtype, int device, char *err, size_t errlen)
{
    char scratch[8];
    if (!err || !errlen) { err = scratch; errlen = sizeof scratch; }
    err[0] = '\0';
    if (act_dtype != DT_BF16 && act_dtype != DT_F32) {
        snprintf(err, errlen, "the CUDA backend computes in bf16 or f32, not %s", dtype_name(act_dtype));
        return NULL;
    }
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        snprintf(err, errlen, "no usable CUDA GPU: cudaGetDeviceCount failed: %s%s", cudaGetErrorString(e),
                 e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice
                     ? " (no NVIDIA driver, or one too old for this CUDA runtime, on this machine)" : "");
        (void)cudaGetLastError();
        return NULL;
    }
    if (count == 0) {
        snprintf(err, errlen, "no CUDA GPU found (cudaGetDeviceCount returned 0)");
        return NULL;
    }
    if (device < 0 || device >= count) {
        snprintf(err, errlen, "GPU %d asked for, but %d CUDA GPU%s present (0..%d)", device, count,
                 count == 1 ? " is" : "s are", count - 1);
        return NULL;
    }
    if ((e = cudaSetDevice(device)) != cudaSuccess) return fail(NULL, err, errlen, "cudaSetDevice failed", e);
    cudaDeviceProp prop;
    if ((e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess)
        return fail(NULL, err, errlen, "cudaGetDeviceProperties failed", e);
    if ((e = cuda_ops_probe()) != cudaSuccess) {
        char what[256];
        snprintf(what, sizeof what, "this labench holds GPU code for sm_80 and sm_90 only, and %.128s is sm_%d%d",
                 prop.name, prop.major, prop.minor);
        return fail(NULL, err, errlen, what, e);
    }
    int attn_wmma = 0;
    if (cuda_attention_setup(device, &attn_wmma, err, errlen) != 0) {
        (void)cudaGetLastError();
        return NULL;
    }

    Backend *be = (Backend *)calloc(1, sizeof *be);
    CudaImpl *im = (CudaImpl *)calloc(1, sizeof *im);
    if (!be || !im) {
        free(be);
        free(im);
        snprintf(err, errlen, "out of host memory");
        return NULL;
    }
    be->impl = im;
    im->device = device;
    im->num_sms = prop.multiProcessorCount;
    im->attn_wmma = attn_wmma;
    if ((e = cudaStreamCreate(&im->stream)) != cudaSuccess) return fail(be, err, errlen, "cudaStreamCreate failed", e);
    for (int i = 0; i < BACKEND_MARKS; i++)
        if ((e = cudaEventCreate(&im->marks[i])) != cudaSuccess) return fail(be, err, errlen, "cudaEventCreate failed", e);
    if (cublasCreate(&im->cublas) != CUBLAS_STATUS_SUCCESS) {
        im->cublas = NULL;
        snprintf(err, errlen, "cublasCreate failed (cuBLAS could not initialise on %s)", prop.name);
        release(be);
        return NULL;
    }
    /* default math: no TF32 for f32 GEMMs (the f32 mode must match the CPU reference) */
    if (cublasSetStream(im->cublas, im->stream) != CUBLAS_STATUS_SUCCESS ||
        cublasSetMathMode(im->cublas, CUBLAS_DEFAULT_MATH) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errlen, "cuBLAS setup failed");
        release(be);
        return NULL;
    }
    if ((e = cudaMalloc((void **)&im->ss_partial, SS_MAX_BLOCKS * sizeof(double))) != cudaSuccess)
        return fail(be, err, errlen, "cudaMalloc of 8 KiB failed", e);
    im->ss_host = (double *)malloc(SS_MAX_BLOCKS * sizeof(double));
    if (!im->ss_host) {
        snprintf(err, errlen, "out of host memory");
        release(be);
        return NULL;
    }
    arena_note_device_used(im);

    be->kind = BACKEND_CUDA;
    be->name = "cuda";
    be->param_dtype = DT_F32;
    be->act_dtype = act_dtype;
    snprintf(be->device_name, sizeof be->device_name, "%.127s", prop.name);
    set_peak_flops(be, im, &prop);

    be->alloc = cuda_alloc;
    be->free = cuda_free;
    be->bytes_in_use = cuda_bytes_in_use;
    be->peak_bytes = cuda_peak_bytes;
    be->reset_peak = cuda_reset_peak;
    be->destroy = cuda_destroy;
    be->upload = cuda_upload;
    be->download = cuda_download;
    be->copy = cuda_copy;
    be->zero = cuda_zero;
    be->upload_f32 = cuda_upload_f32;
    be->download_f32 = cuda_download_f32;
    be->cast = cuda_cast;
    be->synchronize = cuda_synchronize;

    be->embedding_forward = cuda_embedding_forward;
    be->embedding_backward = cuda_embedding_backward;
    be->rmsnorm_forward = cuda_rmsnorm_forward;
    be->rmsnorm_backward = cuda_rmsnorm_backward;
    be->matmul_forward = cuda_matmul_forward;
    be->matmul_backward = cuda_matmul_backward;
    be->rope_forward = cuda_rope_forward;
    be->rope_backward = cuda_rope_backward;
    be->attention_forward = cuda_attention_forward;
    be->attention_backward = cuda_attention_backward;
    be->swiglu_forward = cuda_swiglu_forward;
    be->swiglu_backward = cuda_swiglu_backward;
    be->add = cuda_add;
    be->crossentropy_forward = cuda_crossentropy_forward;
    be->crossentropy_backward = cuda_crossentropy_backward;
    be->sum_squares = cuda_sum_squares;
    be->adamw = cuda_adamw;

    be->mark = cuda_mark;
    be->seconds_between = cuda_seconds_between;

    /* attention: LABENCH_ATTN (auto, cudnn, wmma; scalar: see attention.cu) until --attention says */
    be->set_attention = cuda_set_attention;
    be->attention_prepare = cuda_attention_prepare;
    const char *mode = getenv("LABENCH_ATTN");
    if (!mode || !*mode || strcmp(mode, "scalar") == 0) mode = mode && *mode ? "wmma" : "auto";
    if (cuda_set_attention(be, mode, err, errlen) != 0) {
        char why[600];
        snprintf(why, sizeof why, "LABENCH_ATTN=%s: %s", getenv("LABENCH_ATTN"), err);
        snprintf(err, errlen, "%s", why);
        release(be);
        return NULL;
    }
    return be;
}

extern "C" int backend_cuda_compiled(void) { return 1; }
