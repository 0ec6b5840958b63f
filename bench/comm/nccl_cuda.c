/* NCCL through dlopen (bench/comm/nccl.h), in plain C over the CUDA runtime API; compiled only when
 * nvcc is found. nccl.h supplies the types when the build found it; otherwise the few used here
 * are declared below (NCCL 2.x's ABI: these values have not changed since 2.0). */
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <glob.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/host.h"
#include "bench/comm/nccl.h"

#if LABENCH_HAVE_NCCL_H
#include <nccl.h>
#else
typedef struct ncclComm *ncclComm_t;
typedef struct { char internal[NCCL_ID_BYTES]; } ncclUniqueId;
typedef enum { ncclSuccess = 0 } ncclResult_t;
typedef enum { ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9 } ncclDataType_t;
typedef enum { ncclSum = 0 } ncclRedOp_t;
#endif

#ifndef LABENCH_CUDA_HOME
#define LABENCH_CUDA_HOME "/usr/local/cuda"
#endif

_Static_assert(sizeof(ncclUniqueId) == NCCL_ID_BYTES, "NCCL unique id size");

static struct {
    int tried, ok;
    char desc[600], err[3000];
    ncclResult_t (*get_version)(int *);
    ncclResult_t (*get_unique_id)(ncclUniqueId *);
    ncclResult_t (*comm_init_rank)(ncclComm_t *, int, ncclUniqueId, int);
    ncclResult_t (*comm_init_all)(ncclComm_t *, int, const int *);
    ncclResult_t (*comm_destroy)(ncclComm_t);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*all_gather)(const void *, void *, size_t, ncclDataType_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*reduce_scatter)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t,
                                   cudaStream_t);
    ncclResult_t (*group_start)(void);
    ncclResult_t (*group_end)(void);
    const char *(*error_string)(ncclResult_t);
} N;

struct NcclComm {
    ncclComm_t comm;
    cudaStream_t stream;
    int device;
};

static void add_tried(char *tried, size_t n, const char *what, const char *why)
{
    size_t k = strlen(tried);
    snprintf(tried + k, n - k, "%s%s (%s)", k ? "; " : "", what, why);
}

/* dlopen one candidate and take every symbol; 0 when all were found. */
static int try_open(const char *path, char *tried, size_t n)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        add_tried(tried, n, path, e && strstr(e, "No such file") ? "not there" : e ? e : "dlopen failed");
        return -1;
    }
    struct { void **slot; const char *name; } syms[] = {
        {(void **)&N.get_version, "ncclGetVersion"},       {(void **)&N.get_unique_id, "ncclGetUniqueId"},
        {(void **)&N.comm_init_rank, "ncclCommInitRank"},  {(void **)&N.comm_init_all, "ncclCommInitAll"},
        {(void **)&N.comm_destroy, "ncclCommDestroy"},     {(void **)&N.all_reduce, "ncclAllReduce"},
        {(void **)&N.all_gather, "ncclAllGather"},         {(void **)&N.reduce_scatter, "ncclReduceScatter"},
        {(void **)&N.group_start, "ncclGroupStart"},       {(void **)&N.group_end, "ncclGroupEnd"},
        {(void **)&N.error_string, "ncclGetErrorString"},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        *syms[i].slot = dlsym(h, syms[i].name);
        if (!*syms[i].slot) {
            char why[160];
            snprintf(why, sizeof why, "no symbol %s", syms[i].name);
            add_tried(tried, n, path, why);
            dlclose(h);
            return -1;
        }
    }
    int v = 0;
    N.get_version(&v);
    /* 2.9 and later: major*10000 + minor*100 + patch; before: major*1000 + minor*100 + patch */
    int major = v >= 10000 ? v / 10000 : v / 1000, minor = v >= 10000 ? v / 100 % 100 : v / 100 % 10;
    Dl_info info;
    const char *where = dladdr((void *)N.get_version, &info) && info.dli_fname ? info.dli_fname : path;
    snprintf(N.desc, sizeof N.desc, "NCCL %d.%d.%d (%s)", major, minor, v % 100, where);
    return 0;
}

int nccl_load(char *desc, size_t descn, char *err, size_t errlen)
{
    if (!N.tried) {
        N.tried = 1;
        char tried[2600] = "";
        const char *env = getenv("LABENCH_NCCL");
        const char *cuda = getenv("CUDA_HOME");
        char path[1024];
        int ok = env && *env && try_open(env, tried, sizeof tried) == 0;
        if (!ok) ok = try_open("libnccl.so.2", tried, sizeof tried) == 0;
        const char *dirs[] = {cuda, LABENCH_CUDA_HOME, "/usr/local/cuda"};
        for (size_t i = 0; !ok && i < sizeof dirs / sizeof dirs[0]; i++) {
            if (!dirs[i] || !*dirs[i] || (i > 0 && dirs[i - 1] && strcmp(dirs[i], dirs[i - 1]) == 0)) continue;
            snprintf(path, sizeof path, "%s/lib64/libnccl.so.2", dirs[i]);
            ok = try_open(path, tried, sizeof tried) == 0;
        }
        /* pip install nvidia-nccl-cu12 / -cu13: site-packages/nvidia/nccl/lib */
        const char *venv = getenv("VIRTUAL_ENV"), *conda = getenv("CONDA_PREFIX"), *home = getenv("HOME");
        const char *roots[] = {venv, conda, "/usr/local", "/usr", home ? home : NULL};
        for (size_t i = 0; !ok && i < sizeof roots / sizeof roots[0]; i++) {
            if (!roots[i]) continue;
            snprintf(path, sizeof path, "%s%s/lib/python3*/*-packages/nvidia/nccl/lib/libnccl.so.2", roots[i],
                     roots[i] == home ? "/.local" : "");
            glob_t gl;
            if (glob(path, 0, NULL, &gl) == 0) {
                for (size_t k = 0; !ok && k < gl.gl_pathc; k++) ok = try_open(gl.gl_pathv[k], tried, sizeof tried) == 0;
                globfree(&gl);
            } else {
                add_tried(tried, sizeof tried, path, "no match");
            }
        }
        N.ok = ok;
        if (!ok)
            snprintf(N.err, sizeof N.err,
                     "NCCL not found: tried %s. Install NCCL (it ships with the CUDA toolkit, or `pip install "
                     "nvidia-nccl-cu13`), or point LABENCH_NCCL at libnccl.so.2",
                     tried);
    }
    if (!N.ok) {
        snprintf(err, errlen, "%s", N.err);
        return -1;
    }
    if (desc) snprintf(desc, descn, "%s", N.desc);
    return 0;
}

static int nccl_check(ncclResult_t r, const char *what, char *err, size_t errlen)
{
    if (r == ncclSuccess) return 0;
    snprintf(err, errlen, "%s: NCCL error %d (%s)", what, (int)r, N.error_string ? N.error_string(r) : "?");
    return -1;
}

static int cuda_check(cudaError_t e, const char *what, char *err, size_t errlen)
{
    if (e == cudaSuccess) return 0;
    snprintf(err, errlen, "%s: %s", what, cudaGetErrorString(e));
    return -1;
}

static ncclDataType_t nccl_type(DType dt) { return dt == DT_F64 ? ncclFloat64 : dt == DT_BF16 ? ncclBfloat16 : ncclFloat32; }

int nccl_unique_id(unsigned char id[NCCL_ID_BYTES], char *err, size_t errlen)
{
    if (nccl_load(NULL, 0, err, errlen) != 0) return -1;
    ncclUniqueId u;
    if (nccl_check(N.get_unique_id(&u), "ncclGetUniqueId", err, errlen) != 0) return -1;
    memcpy(id, u.internal, NCCL_ID_BYTES);
    return 0;
}

NcclComm *nccl_comm_init_rank(const unsigned char id[NCCL_ID_BYTES], int nranks, int rank, int device, char *err,
                              size_t errlen)
{
    if (nccl_load(NULL, 0, err, errlen) != 0) return NULL;
    NcclComm *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of host memory");
        return NULL;
    }
    c->device = device;
    ncclUniqueId u;
    memcpy(u.internal, id, NCCL_ID_BYTES);
    if (cuda_check(cudaSetDevice(device), "cudaSetDevice", err, errlen) ||
        cuda_check(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "cudaStreamCreate", err, errlen) ||
        nccl_check(N.comm_init_rank(&c->comm, nranks, u, rank), "ncclCommInitRank", err, errlen)) {
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c);
        return NULL;
    }
    return c;
}

void nccl_comm_destroy(NcclComm *c)
{
    if (!c) return;
    if (c->comm) N.comm_destroy(c->comm);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

static int finish(NcclComm *c, ncclResult_t r, const char *what, char *err, size_t errlen)
{
    if (nccl_check(r, what, err, errlen) != 0) return -1;
    return cuda_check(cudaStreamSynchronize(c->stream), what, err, errlen);
}

int nccl_all_reduce_sum(NcclComm *c, void *buf, size_t n, DType dt, char *err, size_t errlen)
{
    return finish(c, N.all_reduce(buf, buf, n, nccl_type(dt), ncclSum, c->comm, c->stream), "ncclAllReduce", err, errlen);
}

int nccl_all_gather(NcclComm *c, const void *send, void *recv, size_t n_per_rank, DType dt, char *err,
                    size_t errlen)
{
    return finish(c, N.all_gather(send, recv, n_per_rank, nccl_type(dt), c->comm, c->stream), "ncclAllGather", err, errlen);
}

int nccl_reduce_scatter_sum(NcclComm *c, const void *send, void *recv, size_t n_per_rank, DType dt, char *err,
                            size_t errlen)
{
    return finish(c, N.reduce_scatter(send, recv, n_per_rank, nccl_type(dt), ncclSum, c->comm, c->stream), "ncclReduceScatter",
                  err, errlen);
}

int gpu_count(char *err, size_t errlen)
{
    int n = 0;
    if (cuda_check(cudaGetDeviceCount(&n), "cudaGetDeviceCount", err, errlen) != 0) return -1;
    return n;
}

int gpu_bus_id(int device, char *buf, size_t n)
{
    if (cudaDeviceGetPCIBusId(buf, (int)n, device) != cudaSuccess) {
        snprintf(buf, n, "device %d", device);
        return -1;
    }
    return 0;
}

/* ---- one process, several GPUs: the self-check and the bandwidth ---- */

typedef struct {
    int n;
    int dev[64];
    ncclComm_t comm[64];
    cudaStream_t stream[64];
    float *a[64], *b[64];   /* send and receive buffers, elems_a / elems_b floats each */
} Local;

static void local_free(Local *l)
{
    for (int i = 0; i < l->n; i++) {
        cudaSetDevice(l->dev[i]);
        if (l->a[i]) cudaFree(l->a[i]);
        if (l->b[i]) cudaFree(l->b[i]);
        if (l->stream[i]) cudaStreamDestroy(l->stream[i]);
        if (l->comm[i]) N.comm_destroy(l->comm[i]);
    }
    memset(l, 0, sizeof *l);
}

/* Buffers of `elems` floats each, times the number of GPUs when per_gpu_scaled. */
static int local_init(Local *l, int n_gpus, size_t elems, int per_gpu_scaled, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    if (nccl_load(NULL, 0, err, errlen) != 0) return -1;
    int have = gpu_count(err, errlen);
    if (have < 0) return -1;
    if (have == 0) {
        snprintf(err, errlen, "no GPU visible (cudaGetDeviceCount = 0)");
        return -1;
    }
    if (n_gpus <= 0 || n_gpus > have) n_gpus = have;
    if (n_gpus > 64) n_gpus = 64;
    l->n = n_gpus;
    if (per_gpu_scaled) elems *= (size_t)n_gpus;
    for (int i = 0; i < n_gpus; i++) l->dev[i] = i;
    if (nccl_check(N.comm_init_all(l->comm, n_gpus, l->dev), "ncclCommInitAll", err, errlen) != 0) {
        memset(l->comm, 0, sizeof l->comm);
        local_free(l);
        return -1;
    }
    for (int i = 0; i < n_gpus; i++) {
        if (cuda_check(cudaSetDevice(l->dev[i]), "cudaSetDevice", err, errlen) ||
            cuda_check(cudaStreamCreateWithFlags(&l->stream[i], cudaStreamNonBlocking), "cudaStreamCreate", err,
                       errlen) ||
            cuda_check(cudaMalloc((void **)&l->a[i], elems * sizeof(float)), "cudaMalloc", err, errlen) ||
            cuda_check(cudaMalloc((void **)&l->b[i], elems * sizeof(float)), "cudaMalloc", err, errlen)) {
            local_free(l);
            return -1;
        }
    }
    return 0;
}

static int local_sync(Local *l, char *err, size_t errlen)
{
    for (int i = 0; i < l->n; i++) {
        cudaSetDevice(l->dev[i]);
        if (cuda_check(cudaStreamSynchronize(l->stream[i]), "cudaStreamSynchronize", err, errlen)) return -1;
    }
    return 0;
}

enum { OP_ALL_REDUCE, OP_ALL_GATHER, OP_REDUCE_SCATTER };

/* One collective over every local GPU: count is the all-reduce length, or the per-rank part. */
static int local_op(Local *l, int op, size_t count, char *err, size_t errlen)
{
    if (nccl_check(N.group_start(), "ncclGroupStart", err, errlen)) return -1;
    for (int i = 0; i < l->n; i++) {
        ncclResult_t r = op == OP_ALL_REDUCE ? N.all_reduce(l->a[i], l->b[i], count, ncclFloat32, ncclSum, l->comm[i],
                                                            l->stream[i])
                         : op == OP_ALL_GATHER
                             ? N.all_gather(l->a[i], l->b[i], count, ncclFloat32, l->comm[i], l->stream[i])
                             : N.reduce_scatter(l->a[i], l->b[i], count, ncclFloat32, ncclSum, l->comm[i], l->stream[i]);
        if (nccl_check(r, "collective", err, errlen)) {
            N.group_end();
            return -1;
        }
    }
    if (nccl_check(N.group_end(), "ncclGroupEnd", err, errlen)) return -1;
    return local_sync(l, err, errlen);
}

/* GPU i's value at element j: small integers, so every sum is exact in f32. */
static float known(int i, size_t j) { return (float)(i + 1) + (float)(j % 7); }

static int fill(Local *l, size_t elems, float *host, char *err, size_t errlen)
{
    for (int i = 0; i < l->n; i++) {
        for (size_t j = 0; j < elems; j++) host[j] = known(i, j);
        cudaSetDevice(l->dev[i]);
        if (cuda_check(cudaMemcpy(l->a[i], host, elems * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy", err,
                       errlen))
            return -1;
    }
    return 0;
}

/* Checks every GPU's result: expect(i, j) for element j of GPU i. */
static int verify(Local *l, size_t elems, float *host, int op, size_t part, const char *name, char *err,
                  size_t errlen)
{
    const int n = l->n;
    for (int i = 0; i < n; i++) {
        cudaSetDevice(l->dev[i]);
        if (cuda_check(cudaMemcpy(host, l->b[i], elems * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy", err,
                       errlen))
            return -1;
        for (size_t j = 0; j < elems; j++) {
            double want;
            if (op == OP_ALL_GATHER) {
                want = known((int)(j / part), j % part);
            } else {
                size_t at = op == OP_REDUCE_SCATTER ? (size_t)i * part + j : j;
                want = 0;
                for (int q = 0; q < n; q++) want += known(q, at);
            }
            if ((double)host[j] != want) {
                snprintf(err, errlen, "%s over %d GPU(s): GPU %d element %zu is %g, expected %g", name, n, i, j,
                         (double)host[j], want);
                return -1;
            }
        }
    }
    return 0;
}

int nccl_self_check(int n_gpus, size_t bytes, FILE *out, char *err, size_t errlen)
{
    char desc[600];
    if (nccl_load(desc, sizeof desc, err, errlen) != 0) return -1;
    fprintf(out, "dp-check: %s loaded\n", desc);
    const size_t part = 1000003;   /* odd: no chunk size lines up by chance */
    Local l;
    if (local_init(&l, n_gpus, part, 1, err, errlen) != 0) return -1;
    const int n = l.n;
    const size_t total = part * (size_t)n;
    float *host = malloc(total * sizeof *host);
    int rc = host ? 0 : -1;
    if (!host) snprintf(err, errlen, "out of host memory");
    struct { int op; size_t count, in, outn; const char *name; } ops[] = {
        {OP_ALL_REDUCE, part, part, part, "all-reduce (sum)"},
        {OP_ALL_GATHER, part, part, total, "all-gather"},
        {OP_REDUCE_SCATTER, part, total, part, "reduce-scatter (sum)"},
    };
    for (size_t k = 0; k < 3 && rc == 0; k++) {
        rc = fill(&l, ops[k].in, host, err, errlen) || local_op(&l, ops[k].op, ops[k].count, err, errlen) ||
                     verify(&l, ops[k].outn, host, ops[k].op, part, ops[k].name, err, errlen)
                 ? -1
                 : 0;
        if (rc == 0) fprintf(out, "dp-check: NCCL %s of %zu f32 per GPU over %d GPU(s): exact\n", ops[k].name,
                             ops[k].count, n);
    }
    free(host);
    local_free(&l);
    if (rc != 0) return -1;
    double ar = 0, ag = 0;
    if (nccl_measure_bus(n_gpus, bytes, &ar, &ag, err, errlen) != 0) return -1;
    if (n > 1)
        fprintf(out, "dp-check: NCCL bus bandwidth, %zu MiB: all-reduce %.1f GB/s, all-gather %.1f GB/s\n",
                bytes >> 20, ar / 1e9, ag / 1e9);
    else
        fprintf(out, "dp-check: one GPU: no bus bandwidth to measure (a collective over one rank moves nothing)\n");
    return 0;
}

int nccl_measure_bus(int n_gpus, size_t bytes, double *allreduce_Bps, double *allgather_Bps, char *err,
                     size_t errlen)
{
    *allreduce_Bps = *allgather_Bps = 0;
    size_t elems = bytes / sizeof(float);
    Local l;
    if (elems < 1024) elems = 1024;
    if (local_init(&l, n_gpus, elems, 0, err, errlen) != 0) return -1;
    const int n = l.n, reps = 5;
    size_t per_rank = elems / (size_t)n;
    for (int op = OP_ALL_REDUCE; op <= OP_ALL_GATHER; op++) {
        size_t count = op == OP_ALL_REDUCE ? elems : per_rank;
        if (local_op(&l, op, count, err, errlen) != 0) {   /* warm-up */
            local_free(&l);
            return -1;
        }
        double t = wall_seconds();
        for (int r = 0; r < reps; r++)
            if (local_op(&l, op, count, err, errlen) != 0) {
                local_free(&l);
                return -1;
            }
        t = (wall_seconds() - t) / reps;
        double moved = (double)(op == OP_ALL_REDUCE ? elems : per_rank * (size_t)n) * sizeof(float);
        double factor = op == OP_ALL_REDUCE ? 2.0 * (n - 1) / n : (double)(n - 1) / n;
        if (op == OP_ALL_REDUCE)
            *allreduce_Bps = t > 0 ? moved / t * factor : 0;
        else
            *allgather_Bps = t > 0 ? moved / t * factor : 0;
    }
    local_free(&l);
    return 0;
}
