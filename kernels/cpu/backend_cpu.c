/* The CPU backend: host memory, wall-clock timing, and the ops of cpu_ops.h behind the Backend
 * table. param_dtype = act_dtype = the dtype given at creation (f32 for runs, f64 for gradient
 * checks); every op dispatches on it to the _f32 or _f64 version. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* sched_getaffinity */
#endif
#include <omp.h>
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/cpuinfo.h"
#include "kernels/cpu/openblas.h"

/* Every allocation carries this header, which records its size and links it into a list so
 * that destroy can free whatever is still live. 32 bytes keep calloc's 16-byte alignment. */
typedef struct AllocHeader {
    struct AllocHeader *prev, *next;
    size_t bytes;
    size_t magic;
} AllocHeader;

#define ALLOC_MAGIC ((size_t)0x6c616265u)   /* catches a free of a foreign pointer */

typedef struct {
    AllocHeader *live;                    /* doubly linked list of live allocations */
    size_t in_use, peak;
    struct timespec marks[BACKEND_MARKS];
    double matmul_s, attention_s;         /* time inside each op class, for the results */
    char flops_source[640];
} CpuImpl;

static CpuImpl *impl_of(Backend *be) { return (CpuImpl *)be->impl; }
#define F64(be) ((be)->param_dtype == DT_F64)

/* ------------------------------------------------------------------------------------------ */
/* memory */

static void *cpu_alloc(Backend *be, size_t bytes)
{
    CpuImpl *im = impl_of(be);
    if (be->memory_limit && bytes > be->memory_limit - im->in_use) return NULL;   /* in_use <= limit */
    if (bytes > SIZE_MAX - sizeof(AllocHeader)) return NULL;
    AllocHeader *h = calloc(1, sizeof(AllocHeader) + bytes);
    if (!h) return NULL;
    h->bytes = bytes;
    h->magic = ALLOC_MAGIC;
    h->next = im->live;
    if (im->live) im->live->prev = h;
    im->live = h;
    im->in_use += bytes;
    if (im->in_use > im->peak) im->peak = im->in_use;
    return h + 1;
}

static void cpu_free(Backend *be, void *p)
{
    if (!p) return;
    CpuImpl *im = impl_of(be);
    AllocHeader *h = (AllocHeader *)p - 1;
    if (h->magic != ALLOC_MAGIC) {
        fprintf(stderr, "backend_cpu: free of a pointer this backend did not allocate\n");
        abort();
    }
    h->magic = 0;
    if (h->prev) h->prev->next = h->next; else im->live = h->next;
    if (h->next) h->next->prev = h->prev;
    im->in_use -= h->bytes;
    free(h);
}

static size_t cpu_bytes_in_use(Backend *be) { return impl_of(be)->in_use; }
static size_t cpu_peak_bytes(Backend *be) { return impl_of(be)->peak; }
static void cpu_reset_peak(Backend *be) { impl_of(be)->peak = impl_of(be)->in_use; }

static void cpu_destroy(Backend *be)
{
    if (!be) return;
    CpuImpl *im = impl_of(be);
    for (AllocHeader *h = im->live; h;) {
        AllocHeader *next = h->next;
        free(h);
        h = next;
    }
    free(im);
    free(be);
}

/* ------------------------------------------------------------------------------------------ */
/* transfers and conversions: host and backend memory are the same, so these are memcpy or an
 * element-wise conversion */

static void cpu_upload(Backend *be, void *dst, const void *src, size_t bytes) { (void)be; memcpy(dst, src, bytes); }
static void cpu_download(Backend *be, void *dst, const void *src, size_t bytes) { (void)be; memcpy(dst, src, bytes); }
static void cpu_copy(Backend *be, void *dst, const void *src, size_t bytes) { (void)be; memmove(dst, src, bytes); }
static void cpu_zero(Backend *be, void *dst, size_t bytes) { (void)be; memset(dst, 0, bytes); }
static void cpu_synchronize(Backend *be) { (void)be; }   /* every op has returned by then */

/* bf16 is the top half of an f32; round to nearest even on the dropped half */
static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float bf16_to_f32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static double load_elem(const void *p, DType t, size_t i)
{
    switch (t) {
    case DT_F64: return ((const double *)p)[i];
    case DT_BF16: return bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

/* f64 -> bf16 goes through f32: one extra rounding, harmless for values that came from f32 */
static void store_elem(void *p, DType t, size_t i, double x)
{
    switch (t) {
    case DT_F64: ((double *)p)[i] = x; break;
    case DT_BF16: ((uint16_t *)p)[i] = f32_to_bf16((float)x); break;
    default: ((float *)p)[i] = (float)x; break;
    }
}

static void convert(void *dst, DType dst_type, const void *src, DType src_type, size_t n)
{
    if (dst_type == src_type) { memmove(dst, src, n * dtype_size(dst_type)); return; }
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) store_elem(dst, dst_type, i, load_elem(src, src_type, i));
}

static void cpu_upload_f32(Backend *be, void *dst, DType dst_type, const float *src, size_t n)
{
    (void)be;
    convert(dst, dst_type, src, DT_F32, n);
}

static void cpu_download_f32(Backend *be, float *dst, const void *src, DType src_type, size_t n)
{
    (void)be;
    convert(dst, DT_F32, src, src_type, n);
}

static void cpu_cast(Backend *be, void *dst, DType dst_type, const void *src, DType src_type, size_t n)
{
    (void)be;
    convert(dst, dst_type, src, src_type, n);
}

/* ------------------------------------------------------------------------------------------ */
/* ops: void * in the table, float * or double * below */

#define DISPATCH(be, fn, ...) do { \
    if (F64(be)) fn##_f64(__VA_ARGS__); else fn##_f32(__VA_ARGS__); } while (0)

static void be_embedding_forward(Backend *be, void *out, const int32_t *tokens, const void *wte, int N, int C)
{
    DISPATCH(be, cpu_embedding_forward, out, tokens, wte, N, C);
}

static void be_embedding_backward(Backend *be, void *dwte, const void *dout, const int32_t *tokens, int N, int C)
{
    DISPATCH(be, cpu_embedding_backward, dwte, dout, tokens, N, C);
}

static void be_rmsnorm_forward(Backend *be, void *out, void *rstd, const void *inp, const void *w,
                               int N, int C, float eps)
{
    DISPATCH(be, cpu_rmsnorm_forward, out, rstd, inp, w, N, C, eps);
}

static void be_rmsnorm_backward(Backend *be, void *dinp, void *dw, const void *dout, const void *inp,
                                const void *w, const void *rstd, int N, int C)
{
    DISPATCH(be, cpu_rmsnorm_backward, dinp, dw, dout, inp, w, rstd, N, C);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void be_matmul_forward(Backend *be, void *out, const void *inp, const void *w, int N, int In, int Out)
{
    cpu_blas_threads_for(2.0 * N * In * Out);
    double t = now_s();
    DISPATCH(be, cpu_matmul_forward, out, inp, w, N, In, Out);
    impl_of(be)->matmul_s += now_s() - t;
}

static void be_matmul_backward(Backend *be, void *dinp, void *dw, const void *dout, const void *inp,
                               const void *w, int N, int In, int Out, int accumulate_dinp)
{
    cpu_blas_threads_for(2.0 * N * In * Out);
    double t = now_s();
    DISPATCH(be, cpu_matmul_backward, dinp, dw, dout, inp, w, N, In, Out, accumulate_dinp);
    impl_of(be)->matmul_s += now_s() - t;
}

static void be_rope_forward(Backend *be, void *qkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta)
{
    DISPATCH(be, cpu_rope_forward, qkv, pos, N, H, Hkv, D, theta);
}

static void be_rope_backward(Backend *be, void *dqkv, const int32_t *pos, int N, int H, int Hkv, int D, float theta)
{
    DISPATCH(be, cpu_rope_backward, dqkv, pos, N, H, Hkv, D, theta);
}

/* max_seqlen sizes the GPU launch; the CPU walks the segments themselves */
static void be_attention_forward(Backend *be, void *out, void *lse, const void *qkv, const int32_t *cu_seqlens,
                                 int n_segs, int max_seqlen, int N, int H, int Hkv, int D)
{
    (void)max_seqlen;
    double t = now_s();
    DISPATCH(be, cpu_attention_forward, out, lse, qkv, cu_seqlens, n_segs, N, H, Hkv, D);
    impl_of(be)->attention_s += now_s() - t;
}

static void be_attention_backward(Backend *be, void *dqkv, const void *dout, const void *qkv, const void *out,
                                  const void *lse, const int32_t *cu_seqlens, int n_segs, int max_seqlen,
                                  int N, int H, int Hkv, int D)
{
    (void)max_seqlen;
    double t = now_s();
    DISPATCH(be, cpu_attention_backward, dqkv, dout, qkv, out, lse, cu_seqlens, n_segs, N, H, Hkv, D);
    impl_of(be)->attention_s += now_s() - t;
}

static void cpu_op_seconds(Backend *be, double *matmul_s, double *attention_s)
{
    *matmul_s = impl_of(be)->matmul_s;
    *attention_s = impl_of(be)->attention_s;
}

static void be_swiglu_forward(Backend *be, void *out, const void *gate_up, int N, int F)
{
    DISPATCH(be, cpu_swiglu_forward, out, gate_up, N, F);
}

static void be_swiglu_backward(Backend *be, void *dgate_up, const void *dout, const void *gate_up, int N, int F)
{
    DISPATCH(be, cpu_swiglu_backward, dgate_up, dout, gate_up, N, F);
}

static void be_add(Backend *be, void *out, const void *a, const void *b, size_t n)
{
    DISPATCH(be, cpu_add, out, a, b, n);
}

static void be_crossentropy_forward(Backend *be, void *losses, const void *logits, const int32_t *targets,
                                    int N, int V)
{
    DISPATCH(be, cpu_crossentropy_forward, losses, logits, targets, N, V);
}

static void be_crossentropy_backward(Backend *be, void *dlogits, const void *logits, const int32_t *targets,
                                     const float *weights, int N, int V)
{
    DISPATCH(be, cpu_crossentropy_backward, dlogits, logits, targets, weights, N, V);
}

static void be_crossentropy_fused(Backend *be, void *losses, void *dlogits, const void *logits,
                                  const int32_t *targets, const float *weights, int N, int V)
{
    DISPATCH(be, cpu_crossentropy_fused, losses, dlogits, logits, targets, weights, N, V);
}

static double be_sum_squares(Backend *be, const void *x, size_t n)
{
    return F64(be) ? cpu_sum_squares_f64(x, n) : cpu_sum_squares_f32(x, n);
}

static void be_adamw(Backend *be, void *params, const void *grads, void *m, void *v, size_t n,
                     const AdamWConfig *cfg, float grad_scale, int t)
{
    DISPATCH(be, cpu_adamw, params, grads, m, v, n, cfg, grad_scale, t);
}

/* ------------------------------------------------------------------------------------------ */
/* timing: wall clock */

static void cpu_mark(Backend *be, int slot)
{
    if (slot >= 0 && slot < BACKEND_MARKS) clock_gettime(CLOCK_MONOTONIC, &impl_of(be)->marks[slot]);
}

static double cpu_seconds_between(Backend *be, int a, int b)
{
    if (a < 0 || a >= BACKEND_MARKS || b < 0 || b >= BACKEND_MARKS) return 0.0;
    const struct timespec *ta = &impl_of(be)->marks[a], *tb = &impl_of(be)->marks[b];
    return (double)(tb->tv_sec - ta->tv_sec) + 1e-9 * (double)(tb->tv_nsec - ta->tv_nsec);
}

/* ------------------------------------------------------------------------------------------ */
/* device name and peak FLOP/s, from /proc/cpuinfo */

static void describe_cpu(Backend *be, CpuImpl *im)
{
    CpuInfo ci;
    cpu_read_info(&ci);
    CpuBlasInfo blas;
    cpu_blas_info(&blas);
    /* cores we run on: OpenMP threads (bounded by the affinity mask) over hyperthreads per core */
    cpu_set_t set;
    int allowed = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : omp_get_num_procs();
    int threads = omp_get_max_threads() < allowed ? omp_get_max_threads() : allowed;
    int per_core = ci.siblings > 0 && ci.cores > 0 && ci.siblings >= ci.cores ? ci.siblings / ci.cores : 1;
    int cores = threads / per_core > 0 ? threads / per_core : 1;
    int lanes_div = F64(be) ? 2 : 1;   /* a vector holds half as many doubles */
    /* The matmuls run OpenBLAS's kernels: when those use a narrower extension than the CPU has
     * (a fallback core), the peak is that extension's, so that MFU is not claimed against
     * vector units the step never uses. */
    CpuIsa isa = ci.isa;
    char capped[160] = "";
    if (blas.core_isa != ISA_UNKNOWN && blas.core_isa < isa) {
        isa = blas.core_isa;
        snprintf(capped, sizeof capped, "; counted at %s because OpenBLAS runs its %s kernels (%s), not %s ones",
                 cpu_isa_name(isa), blas.core, cpu_isa_name(blas.core_isa), cpu_isa_name(ci.isa));
    }
    int flops_per_cycle = cpu_isa_flops_per_cycle(isa) / lanes_div;

    snprintf(be->device_name, sizeof be->device_name, "%.96s (%d core%s)", ci.model, cores, cores == 1 ? "" : "s");
    be->peak_flops = cores * ci.mhz * 1e6 * flops_per_cycle;
    snprintf(im->flops_source, sizeof im->flops_source,
             "nominal: %d cores (%d OpenMP threads / %d threads per core) x %.0f MHz (highest \"cpu MHz\" "
             "in /proc/cpuinfo, the clock when read, not a measured all-core clock) x %d %s FLOP/cycle "
             "(%s in the cpuinfo flags: 2 FMA units x vector lanes x 2%s)",
             cores, threads, per_core, ci.mhz, flops_per_cycle, dtype_name(be->param_dtype), cpu_isa_name(ci.isa), capped);
    be->peak_flops_source = im->flops_source;
}

/* ------------------------------------------------------------------------------------------ */

/* LABENCH_ARENA_LIMIT: bytes, or with a K, M or G suffix (powers of 1024). Unset or empty: no
 * limit. 0, or -1 with err for anything else. */
static int arena_limit_from_env(size_t *limit, char *err, size_t errlen)
{
    *limit = 0;
    const char *s = getenv("LABENCH_ARENA_LIMIT");
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
    if (shift) end++;
    if (errno || end == s || *end || s[0] == '-' || v == 0 || v > (SIZE_MAX >> shift)) {
        if (err) snprintf(err, errlen, "LABENCH_ARENA_LIMIT=%.40s: want a number of bytes, e.g. 1048576 or 64M", s);
        return -1;
    }
    *limit = (size_t)v << shift;
    return 0;
}

Backend *backend_cpu_create(DType dtype, char *err, size_t errlen)
{
    if (dtype != DT_F32 && dtype != DT_F64) {
        if (err) snprintf(err, errlen, "the CPU backend computes in f32 or f64, not %s", dtype_name(dtype));
        return NULL;
    }
    Backend *be = calloc(1, sizeof *be);
    CpuImpl *im = calloc(1, sizeof *im);
    if (!be || !im) {
        free(be);
        free(im);
        if (err) snprintf(err, errlen, "out of host memory");
        return NULL;
    }
    be->kind = BACKEND_CPU;
    be->name = "cpu";
    be->param_dtype = be->act_dtype = dtype;
    be->impl = im;
    if (arena_limit_from_env(&be->memory_limit, err, errlen) != 0) {
        free(be);
        free(im);
        return NULL;
    }
    describe_cpu(be, im);
    cpu_blas_warn_once();

    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->bytes_in_use = cpu_bytes_in_use;
    be->peak_bytes = cpu_peak_bytes;
    be->reset_peak = cpu_reset_peak;
    be->destroy = cpu_destroy;

    be->upload = cpu_upload;
    be->download = cpu_download;
    be->copy = cpu_copy;
    be->zero = cpu_zero;
    be->upload_f32 = cpu_upload_f32;
    be->download_f32 = cpu_download_f32;
    be->cast = cpu_cast;
    be->synchronize = cpu_synchronize;

    be->embedding_forward = be_embedding_forward;
    be->embedding_backward = be_embedding_backward;
    be->rmsnorm_forward = be_rmsnorm_forward;
    be->rmsnorm_backward = be_rmsnorm_backward;
    be->matmul_forward = be_matmul_forward;
    be->matmul_backward = be_matmul_backward;
    be->rope_forward = be_rope_forward;
    be->rope_backward = be_rope_backward;
    be->attention_forward = be_attention_forward;
    be->attention_backward = be_attention_backward;
    be->swiglu_forward = be_swiglu_forward;
    be->swiglu_backward = be_swiglu_backward;
    be->add = be_add;
    be->crossentropy_forward = be_crossentropy_forward;
    be->crossentropy_backward = be_crossentropy_backward;
    be->crossentropy_fused = be_crossentropy_fused;
    be->sum_squares = be_sum_squares;
    be->adamw = be_adamw;

    be->mark = cpu_mark;
    be->seconds_between = cpu_seconds_between;
    be->op_seconds = cpu_op_seconds;
    return be;
}
