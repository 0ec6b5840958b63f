/* CUPTI activity collection (CUDA 13 record layouts). CUPTI hands over filled buffers on its
 * own thread or inside cuptiActivityFlushAll; both paths take `S.lock`. Kernel records are
 * stored raw and joined lazily, on the first read after new records arrive:
 *   launch_ns   = start of the runtime/driver API call with the kernel's correlation id;
 *   rank, mb    = the prof_cupti_set_context in force at launch_ns (kernel start if unknown).
 * See docs/profiling.md for why attribution goes by time rather than by a callback.
 *
 * libcupti is loaded with dlopen at the first prof_cupti_start, not linked: where it lives
 * ($CUDA_HOME/lib64, $CUDA_HOME/extras/CUPTI/lib64, a Python wheel's nvidia/cu13/lib) differs
 * from machine to machine, and a labench that cannot find it must still run (timing then falls
 * back to CUDA events) and say where it looked. */
#include "profile/cupti.h"

#include <cuda.h>
#include <cupti_activity.h>
#include <cupti_result.h>
#include <cupti_version.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUFFER_BYTES ((size_t)8 << 20)
#define BUFFER_ALIGN 8               /* CUPTI requires 8-byte aligned activity buffers */

/* From libstdc++ (linked in CUDA builds); CUPTI reports C++ kernel names mangled. */
extern char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

typedef struct { int64_t start, end; uint32_t corr; int32_t name_id; } RawKernel;
typedef struct { uint32_t corr; int64_t start; } ApiCall;

/* A growable array of elem-sized items. */
typedef struct { void *p; size_t n, cap; } Vec;

static int vec_push(Vec *v, const void *item, size_t elem)
{
    if (v->n == v->cap) {
        size_t ncap = v->cap ? 2 * v->cap : 1024;
        void *q = realloc(v->p, ncap * elem);
        if (!q) return -1;
        v->p = q;
        v->cap = ncap;
    }
    memcpy((char *)v->p + v->n * elem, item, elem);
    v->n++;
    return 0;
}

/* qsort must not see a NULL base, even with no items. */
static void vec_sort(Vec *v, size_t elem, int (*cmp)(const void *, const void *))
{
    if (v->n > 1) qsort(v->p, v->n, elem, cmp);
}

static void vec_free(Vec *v)
{
    free(v->p);
    memset(v, 0, sizeof *v);
}

static struct {
    pthread_mutex_t lock;
    int running;
    CUpti_ActivityKind enabled[16];
    int nenabled;

    Vec kernels;        /* RawKernel */
    Vec api;            /* ApiCall */
    Vec marks;          /* ContextMark, in call order (and so in time order) */
    Vec mem;            /* MemEvent, device memory only */
    int32_t cur_rank, cur_mb;
    ProfStats st;       /* the counters; derived fields are filled by prof_cupti_stats */

    KernelRecord *out;  /* the joined kernels handed out by prof_cupti_kernels */
    size_t nout;
    int64_t unmatched;
    int dirty;          /* records arrived since out was built */

    /* Kernel names: raw[i] is what CUPTI reported (the hash key), shown[i] what we print. */
    char **raw, **shown;
    int nnames, capnames;
    int32_t *slots;     /* open addressing over name ids, -1 = empty */
    size_t nslots;
} S = { .lock = PTHREAD_MUTEX_INITIALIZER, .cur_rank = -1, .cur_mb = -1 };

/* ---- loading libcupti ------------------------------------------------------------------ */

/* Every CUPTI entry point this file uses, called through these pointers. */
#define CUPTI_FUNCS(X) \
    X(cuptiGetVersion, (uint32_t *)) \
    X(cuptiGetResultString, (CUptiResult, const char **)) \
    X(cuptiGetTimestamp, (uint64_t *)) \
    X(cuptiActivityRegisterCallbacks, (CUpti_BuffersCallbackRequestFunc, CUpti_BuffersCallbackCompleteFunc)) \
    X(cuptiActivityEnable, (CUpti_ActivityKind)) \
    X(cuptiActivityDisable, (CUpti_ActivityKind)) \
    X(cuptiActivityFlushAll, (uint32_t)) \
    X(cuptiActivityGetNextRecord, (uint8_t *, size_t, CUpti_Activity **)) \
    X(cuptiActivityGetNumDroppedRecords, (CUcontext, uint32_t, size_t *))

#define CUPTI_PTR(name, args) CUptiResult (*name) args;
static struct {
    CUPTI_FUNCS(CUPTI_PTR)
} C;
#undef CUPTI_PTR

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int loaded;                 /* 1 when every pointer of C is set */
static char load_path[1024];       /* the file loaded, for NVTX's injection variable */
static char load_why[1536];        /* why not, when loaded is 0 */

static void *try_open(const char *path, char *tried, size_t len)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h) {
        snprintf(load_path, sizeof load_path, "%s", path);
        return h;
    }
    size_t used = strlen(tried);
    snprintf(tried + used, len - used, "%s%s", used ? ", " : "", path);
    return NULL;
}

/* LABENCH_CUPTI (a file) first; then the soname, as the loader finds it (LD_LIBRARY_PATH,
 * RUNPATH, ld.so.cache); then the toolkit's lib64 and extras/CUPTI/lib64 under $CUDA_HOME,
 * $CUDA_PATH, the CUDA_HOME labench was built with, and /usr/local/cuda. */
static void load_cupti(void)
{
    char soname[32], tried[1024] = "";
    snprintf(soname, sizeof soname, "libcupti.so.%d", CUDA_VERSION / 1000);
    void *h = NULL;
    const char *env = getenv("LABENCH_CUPTI");
    if (env && env[0]) h = try_open(env, tried, sizeof tried);
    if (!h) h = try_open(soname, tried, sizeof tried);
#ifndef LABENCH_CUDA_HOME
#define LABENCH_CUDA_HOME "/usr/local/cuda"
#endif
    const char *homes[] = {getenv("CUDA_HOME"), getenv("CUDA_PATH"), LABENCH_CUDA_HOME, "/usr/local/cuda"};
    const char *subdirs[] = {"extras/CUPTI/lib64", "lib64", "lib"};
    for (size_t i = 0; !h && i < sizeof homes / sizeof homes[0]; i++) {
        if (!homes[i] || !homes[i][0]) continue;
        int seen = 0;   /* the same folder named twice is tried once */
        for (size_t j = 0; j < i; j++) seen |= homes[j] && strcmp(homes[j], homes[i]) == 0;
        for (size_t k = 0; !seen && !h && k < sizeof subdirs / sizeof subdirs[0]; k++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s/%s", homes[i], subdirs[k], soname);
            h = try_open(path, tried, sizeof tried);
        }
    }
    if (!h) {
        snprintf(load_why, sizeof load_why,
                 "CUPTI not found (tried %s): set LABENCH_CUPTI to the path of %s, or put its folder on "
                 "LD_LIBRARY_PATH", tried, soname);
        return;
    }
    void *sym;
#define CUPTI_SYM(name, args) \
    if (!(sym = dlsym(h, #name))) { \
        snprintf(load_why, sizeof load_why, "%s has no symbol %s", load_path, #name); \
        return; \
    } \
    memcpy(&C.name, &sym, sizeof sym);
    CUPTI_FUNCS(CUPTI_SYM)
#undef CUPTI_SYM
    loaded = 1;
}

/* 0 when libcupti is loaded; else -1 with the reason in why. */
static int cupti_load(char *why, size_t len)
{
    pthread_once(&load_once, load_cupti);
    if (!loaded && why && len) snprintf(why, len, "%s", load_why);
    return loaded ? 0 : -1;
}

/* ---- kernel names ---------------------------------------------------------------------- */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int rehash(size_t nslots)
{
    int32_t *slots = malloc(nslots * sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < nslots; i++) slots[i] = -1;
    for (int id = 0; id < S.nnames; id++) {
        size_t j = fnv1a(S.raw[id]) & (nslots - 1);
        while (slots[j] >= 0) j = (j + 1) & (nslots - 1);
        slots[j] = id;
    }
    free(S.slots);
    S.slots = slots;
    S.nslots = nslots;
    return 0;
}

/* The id of a kernel name, added on first sight; -1 if out of memory. Caller holds the lock. */
static int32_t intern_name(const char *name)
{
    if (!name) name = "?";
    size_t j = 0;
    if (S.nslots) {
        j = fnv1a(name) & (S.nslots - 1);
        for (; S.slots[j] >= 0; j = (j + 1) & (S.nslots - 1))
            if (strcmp(S.raw[S.slots[j]], name) == 0) return S.slots[j];
    }
    /* New name. Keep the table at most half full so probes stay short (and always end). */
    if ((size_t)(S.nnames + 1) * 2 > S.nslots) {
        if (rehash(S.nslots ? 2 * S.nslots : 1024) != 0) return -1;
        j = fnv1a(name) & (S.nslots - 1);
        while (S.slots[j] >= 0) j = (j + 1) & (S.nslots - 1);
    }
    if (S.nnames == S.capnames) {
        int ncap = S.capnames ? 2 * S.capnames : 256;
        char **r = realloc(S.raw, (size_t)ncap * sizeof *r);
        if (!r) return -1;
        S.raw = r;
        char **sh = realloc(S.shown, (size_t)ncap * sizeof *sh);
        if (!sh) return -1;
        S.shown = sh;
        S.capnames = ncap;
    }
    int status = -1;
    char *demangled = __cxa_demangle(name, NULL, NULL, &status);
    if (status != 0) {
        free(demangled);
        demangled = NULL;
    }
    char *raw = strdup(name);
    char *shown = demangled ? demangled : strdup(name);
    if (!raw || !shown) {
        free(raw);
        free(shown);
        return -1;
    }
    int32_t id = S.nnames++;
    S.raw[id] = raw;
    S.shown[id] = shown;
    S.slots[j] = id;
    return id;
}

static void free_names(void)
{
    for (int i = 0; i < S.nnames; i++) {
        free(S.raw[i]);
        free(S.shown[i]);
    }
    free(S.raw);
    free(S.shown);
    free(S.slots);
    S.raw = S.shown = NULL;
    S.slots = NULL;
    S.nnames = S.capnames = 0;
    S.nslots = 0;
}

/* ---- activity buffers ------------------------------------------------------------------ */

static void keep(Vec *v, const void *item, size_t elem)
{
    if (vec_push(v, item, elem) != 0) S.st.lost_records++;
}

/* Files one record. Caller holds the lock. */
static void take_record(const CUpti_Activity *r)
{
    switch (r->kind) {
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
        const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)r;
        /* Zero timestamps: CUPTI lacked device memory to time this kernel. */
        if (k->start == 0 || k->end == 0 || k->end < k->start) {
            S.st.incomplete_kernels++;
            break;
        }
        RawKernel rk = { (int64_t)k->start, (int64_t)k->end, k->correlationId, intern_name(k->name) };
        if (rk.name_id < 0) {
            S.st.lost_records++;
            break;
        }
        keep(&S.kernels, &rk, sizeof rk);
        S.dirty = 1;
        break;
    }
    case CUPTI_ACTIVITY_KIND_RUNTIME:
    case CUPTI_ACTIVITY_KIND_DRIVER:
    case CUPTI_ACTIVITY_KIND_INTERNAL_LAUNCH_API: {
        const CUpti_ActivityAPI *a = (const CUpti_ActivityAPI *)r;
        ApiCall c = { a->correlationId, (int64_t)a->start };
        S.st.api_records++;
        keep(&S.api, &c, sizeof c);
        S.dirty = 1;
        break;
    }
    case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const CUpti_ActivityMemcpy6 *m = (const CUpti_ActivityMemcpy6 *)r;
        S.st.memcpy_count++;
        S.st.memcpy_bytes += (int64_t)m->bytes;
        break;
    }
    case CUPTI_ACTIVITY_KIND_MEMSET: {
        const CUpti_ActivityMemset4 *m = (const CUpti_ActivityMemset4 *)r;
        S.st.memset_count++;
        S.st.memset_bytes += (int64_t)m->bytes;
        break;
    }
    case CUPTI_ACTIVITY_KIND_MEMORY2: {
        const CUpti_ActivityMemory4 *m = (const CUpti_ActivityMemory4 *)r;
        if (m->memoryKind != CUPTI_ACTIVITY_MEMORY_KIND_DEVICE) break;
        int alloc = m->memoryOperationType == CUPTI_ACTIVITY_MEMORY_OPERATION_TYPE_ALLOCATION;
        if (!alloc && m->memoryOperationType != CUPTI_ACTIVITY_MEMORY_OPERATION_TYPE_RELEASE) break;
        MemEvent e = { (int64_t)m->timestamp, m->address, (int64_t)m->bytes, alloc };
        if (alloc) S.st.alloc_count++;
        else S.st.free_count++;
        keep(&S.mem, &e, sizeof e);
        break;
    }
    case CUPTI_ACTIVITY_KIND_MARKER: {
        const CUpti_ActivityMarker2 *m = (const CUpti_ActivityMarker2 *)r;
        /* One per mark or range: range ends come as records of their own. */
        if (m->flags & (CUPTI_ACTIVITY_FLAG_MARKER_INSTANTANEOUS | CUPTI_ACTIVITY_FLAG_MARKER_START))
            S.st.markers++;
        break;
    }
    default:
        break;
    }
}

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records)
{
    /* NULL tells CUPTI we have no buffer; it then drops records and counts them. */
    *buffer = aligned_alloc(BUFFER_ALIGN, BUFFER_BYTES);
    *size = *buffer ? BUFFER_BYTES : 0;
    *max_records = 0;   /* fill the whole buffer */
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer,
                                      size_t size, size_t valid)
{
    (void)size;
    pthread_mutex_lock(&S.lock);
    if (S.running) {
        S.st.buffers++;
        CUpti_Activity *r = NULL;
        /* Stops at the end of the buffer (MAX_LIMIT_REACHED) or at a record it cannot read. */
        while (C.cuptiActivityGetNextRecord(buffer, valid, &r) == CUPTI_SUCCESS) take_record(r);
        size_t dropped = 0;
        if (C.cuptiActivityGetNumDroppedRecords(ctx, stream, &dropped) == CUPTI_SUCCESS)
            S.st.dropped_records += (int64_t)dropped;
    }
    pthread_mutex_unlock(&S.lock);
    free(buffer);
}

/* ---- joining kernels with launches and contexts ---------------------------------------- */

static int cmp_api(const void *pa, const void *pb)
{
    const ApiCall *a = pa, *b = pb;
    if (a->corr != b->corr) return a->corr < b->corr ? -1 : 1;
    return (a->start > b->start) - (a->start < b->start);
}

static int cmp_kernel(const void *pa, const void *pb)
{
    const KernelRecord *a = pa, *b = pb;
    if (a->start_ns != b->start_ns) return a->start_ns < b->start_ns ? -1 : 1;
    return (a->end_ns > b->end_ns) - (a->end_ns < b->end_ns);
}

/* Earliest API call start with this correlation id (a runtime call and the driver call inside
 * it may both carry it), or -1. api is sorted by (corr, start). */
static int64_t launch_time(const ApiCall *api, size_t n, uint32_t corr)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (api[mid].corr < corr) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && api[lo].corr == corr ? api[lo].start : -1;
}

/* Rebuilds S.out from the raw records. Caller holds the lock. */
static void build_kernels(void)
{
    if (!S.dirty) return;
    S.dirty = 0;
    S.nout = 0;
    S.unmatched = 0;
    if (S.kernels.n == 0) return;
    KernelRecord *out = realloc(S.out, S.kernels.n * sizeof *out);
    if (!out) {
        S.dirty = 1;   /* try again on the next read */
        return;
    }
    S.out = out;
    vec_sort(&S.api, sizeof(ApiCall), cmp_api);
    const ApiCall *api = S.api.p;
    const RawKernel *rk = S.kernels.p;
    for (size_t i = 0; i < S.kernels.n; i++) {
        KernelRecord *k = &out[i];
        k->start_ns = rk[i].start;
        k->end_ns = rk[i].end;
        k->launch_ns = launch_time(api, S.api.n, rk[i].corr);
        k->name_id = rk[i].name_id;
        if (k->launch_ns < 0) S.unmatched++;
    }
    /* The host sets the context before it launches, so the launch time decides; a kernel never
     * starts before its launch, so its start stands in when the launch is unknown. */
    kernels_attribute(out, (int)S.kernels.n, S.marks.p, (int)S.marks.n);
    qsort(out, S.kernels.n, sizeof *out, cmp_kernel);
    S.nout = S.kernels.n;
}

/* ---- the API --------------------------------------------------------------------------- */

static void say(char *why, size_t len, const char *fmt, ...)
{
    if (!why || len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

/* "call: CUPTI's message (what to do)". */
static void explain(char *why, size_t len, const char *call, CUptiResult rc)
{
    const char *msg = NULL;
    if (C.cuptiGetResultString(rc, &msg) != CUPTI_SUCCESS || !msg) msg = "unknown CUPTI error";
    const char *hint = "";
    if (rc == CUPTI_ERROR_INSUFFICIENT_PRIVILEGES || rc == CUPTI_ERROR_VIRTUALIZED_DEVICE_INSUFFICIENT_PRIVILEGES)
        hint = " (ERR_NVGPUCTRPERM: profiling is restricted to admin users; run as root or set the "
               "nvidia module option NVreg_RestrictProfilingToAdminUsers=0)";
    else if (rc == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED)
        hint = " (another profiler, e.g. Nsight Systems, already uses CUPTI)";
    else if (rc == CUPTI_ERROR_NOT_INITIALIZED || rc == CUPTI_ERROR_INVALID_DEVICE)
        hint = " (no usable CUDA device or driver)";
    say(why, len, "%s: %s%s", call, msg, hint);
}

static const char *kind_name(CUpti_ActivityKind k)
{
    switch (k) {
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: return "CONCURRENT_KERNEL";
    case CUPTI_ACTIVITY_KIND_RUNTIME: return "RUNTIME";
    case CUPTI_ACTIVITY_KIND_DRIVER: return "DRIVER";
    case CUPTI_ACTIVITY_KIND_INTERNAL_LAUNCH_API: return "INTERNAL_LAUNCH_API";
    case CUPTI_ACTIVITY_KIND_MEMCPY: return "MEMCPY";
    case CUPTI_ACTIVITY_KIND_MEMSET: return "MEMSET";
    case CUPTI_ACTIVITY_KIND_MEMORY2: return "MEMORY2";
    case CUPTI_ACTIVITY_KIND_MARKER: return "MARKER";
    default: return "?";
    }
}

/* CUPTI sees NVTX only when NVTX loads it as its tool, which NVTX decides on its first call.
 * Unless a tool was chosen already (Nsight Systems sets the variable), point NVTX at the
 * libcupti this process loaded. */
static void attach_nvtx(void)
{
    if (getenv("NVTX_INJECTION64_PATH")) return;
    Dl_info info;
    void *fn;
    memcpy(&fn, &C.cuptiGetVersion, sizeof fn);
    if (dladdr(fn, &info) && info.dli_fname && info.dli_fname[0])
        setenv("NVTX_INJECTION64_PATH", info.dli_fname, 0);
    else if (load_path[0])
        setenv("NVTX_INJECTION64_PATH", load_path, 0);
}

static void disable_all(void)
{
    for (int i = 0; i < S.nenabled; i++) C.cuptiActivityDisable(S.enabled[i]);
    S.nenabled = 0;
}

static void clear_records(void)
{
    vec_free(&S.kernels);
    vec_free(&S.api);
    vec_free(&S.marks);
    vec_free(&S.mem);
    free(S.out);
    S.out = NULL;
    S.nout = 0;
    S.unmatched = 0;
    S.dirty = 0;
    memset(&S.st, 0, sizeof S.st);
}

int prof_cupti_start(ProfLevel level, char *why, size_t whylen)
{
    say(why, whylen, "%s", "");
    if (level == PROF_OFF) {
        say(why, whylen, "CUPTI collection is off");
        return -1;
    }
    if (S.running) {
        say(why, whylen, "CUPTI collection is already running");
        return -1;
    }
    if (cupti_load(why, whylen) != 0) return -1;
    uint32_t version = 0;
    CUptiResult rc = C.cuptiGetVersion(&version);
    if (rc != CUPTI_SUCCESS) {
        explain(why, whylen, "cuptiGetVersion", rc);
        return -1;
    }
    /* Record layouts (CUpti_ActivityKernel10, ...) are fixed within one CUDA major version. */
    if (version / 10000 != CUPTI_API_VERSION / 10000) {
        say(why, whylen, "libcupti API version %u does not match the %u labench was built with",
            (unsigned)version, (unsigned)CUPTI_API_VERSION);
        return -1;
    }
    if (level == PROF_FULL) attach_nvtx();
    rc = C.cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
    if (rc != CUPTI_SUCCESS) {
        explain(why, whylen, "cuptiActivityRegisterCallbacks", rc);
        return -1;
    }

    /* Launch times need the API records, so BASIC takes them too: the idle split rests on them. */
    static const CUpti_ActivityKind basic[] = {
        CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_RUNTIME, CUPTI_ACTIVITY_KIND_DRIVER,
        CUPTI_ACTIVITY_KIND_INTERNAL_LAUNCH_API, CUPTI_ACTIVITY_KIND_MEMCPY, CUPTI_ACTIVITY_KIND_MEMSET,
    };
    static const CUpti_ActivityKind full[] = { CUPTI_ACTIVITY_KIND_MEMORY2, CUPTI_ACTIVITY_KIND_MARKER };
    CUpti_ActivityKind kinds[8];
    int nkinds = 0;
    for (size_t i = 0; i < sizeof basic / sizeof basic[0]; i++) kinds[nkinds++] = basic[i];
    if (level == PROF_FULL)
        for (size_t i = 0; i < sizeof full / sizeof full[0]; i++) kinds[nkinds++] = full[i];

    int64_t now = prof_cupti_now_ns();
    pthread_mutex_lock(&S.lock);
    clear_records();
    S.running = 1;
    if (S.cur_rank >= 0) {   /* a context set before start still holds */
        ContextMark m = { now, S.cur_rank, S.cur_mb };
        keep(&S.marks, &m, sizeof m);
    }
    pthread_mutex_unlock(&S.lock);

    char notes[512] = "";
    for (int i = 0; i < nkinds; i++) {
        rc = C.cuptiActivityEnable(kinds[i]);
        if (rc == CUPTI_SUCCESS) {
            S.enabled[S.nenabled++] = kinds[i];
            continue;
        }
        char what[64];
        snprintf(what, sizeof what, "cuptiActivityEnable(%s)", kind_name(kinds[i]));
        if (kinds[i] == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) {
            /* Without kernel records there is nothing to measure: give up. */
            explain(why, whylen, what, rc);
            disable_all();
            pthread_mutex_lock(&S.lock);
            S.running = 0;
            pthread_mutex_unlock(&S.lock);
            return -1;
        }
        char one[256];
        explain(one, sizeof one, what, rc);
        size_t used = strlen(notes);
        snprintf(notes + used, sizeof notes - used, "%s%s", used ? "; " : "", one);
    }
    say(why, whylen, "%s", notes);
    return 0;
}

void prof_cupti_set_context(int rank, int micro_batch)
{
    int64_t now = prof_cupti_now_ns();
    pthread_mutex_lock(&S.lock);
    S.cur_rank = rank;
    S.cur_mb = micro_batch;
    if (S.running) {
        ContextMark m = { now, rank, micro_batch };
        keep(&S.marks, &m, sizeof m);
        S.dirty = 1;
    }
    pthread_mutex_unlock(&S.lock);
}

int prof_cupti_flush(void)
{
    if (!S.running) return -1;
    /* Not forced: after the caller's sync every record is complete, and a forced flush would
     * also hand over records still missing their timestamps. */
    return C.cuptiActivityFlushAll(0) == CUPTI_SUCCESS ? 0 : -1;
}

const KernelRecord *prof_cupti_kernels(int *n)
{
    pthread_mutex_lock(&S.lock);
    build_kernels();
    const KernelRecord *k = S.nout ? S.out : NULL;
    *n = (int)S.nout;
    pthread_mutex_unlock(&S.lock);
    return k;
}

const char *prof_cupti_kernel_name(int name_id)
{
    pthread_mutex_lock(&S.lock);
    const char *s = name_id >= 0 && name_id < S.nnames ? S.shown[name_id] : "?";
    pthread_mutex_unlock(&S.lock);
    return s;
}

void prof_cupti_stats(ProfStats *out)
{
    pthread_mutex_lock(&S.lock);
    build_kernels();
    *out = S.st;
    out->kernels = (int64_t)S.nout;
    out->launches_unmatched = S.unmatched;
    if (mem_replay(S.mem.p, (int)S.mem.n, &out->mem_live_bytes, &out->mem_high_water_bytes) != 0)
        out->lost_records += (int64_t)S.mem.n;
    pthread_mutex_unlock(&S.lock);
}

void prof_cupti_reset(void)
{
    /* Deliver what is pending first, so it is dropped now rather than counted in the next run. */
    if (S.running) C.cuptiActivityFlushAll(0);
    int64_t now = prof_cupti_now_ns();
    pthread_mutex_lock(&S.lock);
    clear_records();
    if (S.running && S.cur_rank >= 0) {
        ContextMark m = { now, S.cur_rank, S.cur_mb };
        keep(&S.marks, &m, sizeof m);
    }
    pthread_mutex_unlock(&S.lock);
}

void prof_cupti_stop(void)
{
    if (!S.running) return;
    C.cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    disable_all();
    pthread_mutex_lock(&S.lock);
    S.running = 0;
    clear_records();
    free_names();
    S.cur_rank = S.cur_mb = -1;
    pthread_mutex_unlock(&S.lock);
}

int64_t prof_cupti_now_ns(void)
{
    uint64_t t;
    /* CUPTI's clock once it is loaded (the records' clock); before that no record exists */
    if (loaded && C.cuptiGetTimestamp(&t) == CUPTI_SUCCESS) return (int64_t)t;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
