/* OpenBLAS: which build and kernel labench runs, and the one threading policy it shares with
 * OpenMP.
 *
 * Threads. The ops run on OpenMP's threads, and so does BLAS: the Makefile links the OpenMP build
 * of OpenBLAS when it is installed (Debian: libopenblas-openmp-dev, which scripts/setup.sh
 * installs), so there is one pool of threads, never two spinning against each other. The rules:
 *   - a BLAS call from serial code gets every OpenMP thread when it is large (at least
 *     CPU_BLAS_THREADED_FLOPS), one thread when it is small (fork and join would cost more);
 *   - a BLAS call inside an OpenMP parallel region (the attention's tiles) runs on the thread
 *     that makes it: the region already has every thread busy;
 *   - the thread count is OpenMP's (OMP_NUM_THREADS, default one per CPU); OPENBLAS_NUM_THREADS
 *     is not read for it.
 * With the pthreads build (when no OpenMP build is installed) the same rules hold through
 * openblas_set_num_threads, but its threads wait by spinning and yielding beside OpenMP's:
 * labench says so in machine.blas.threading.
 *
 * Kernel. OpenBLAS picks its kernels for the CPU it finds ("core"); on a CPU model it does not
 * know it falls back to an older, slower one (e.g. Prescott, SSE3, on an AVX-512 virtual CPU).
 * cpu_blas_info says which core runs and whether it is such a fallback; labench then warns and
 * says what OPENBLAS_CORETYPE would select, but never sets it: some OpenBLAS builds compute wrong
 * results with a forced core on some processors. */
#ifndef LABENCH_OPENBLAS_H
#define LABENCH_OPENBLAS_H

#include "kernels/cpu/cpuinfo.h"

/* a product of at least this many FLOPs runs on every thread (measured: below it, two threads
 * were slower than one for the tiny model's products on the 2-core development VM) */
#define CPU_BLAS_THREADED_FLOPS 5e7

typedef struct {
    char library[32];        /* "OpenBLAS" */
    char version[32];        /* "0.3.21" */
    char config[256];        /* openblas_get_config() */
    char core[64];           /* openblas_get_corename(): the kernels in use */
    CpuIsa core_isa;         /* the vector extension those kernels use (ISA_UNKNOWN: not known) */
    char threading[16];      /* "openmp", "pthreads" or "sequential" */
    int threads;             /* the threads a large product runs on (OpenMP's count) */
    char coretype_env[64];   /* OPENBLAS_CORETYPE as set in the environment, "" when unset */
    int fallback;            /* 1: core_isa is narrower than the CPU's and the CPU has AVX2 or more */
    char suggested_coretype[16];   /* what OPENBLAS_CORETYPE would select instead ("" when none) */
    char warning[512];       /* one line saying so when fallback, else "" */
} CpuBlasInfo;

void cpu_blas_info(CpuBlasInfo *info);
/* Prints info.warning to stderr the first time it is called in a process with a fallback core. */
void cpu_blas_warn_once(void);

/* Threads for the BLAS calls that follow from serial code: all when flops >= CPU_BLAS_THREADED_FLOPS,
 * else one. Not to be called inside a parallel region. */
void cpu_blas_threads_for(double flops);
/* One BLAS thread for the calls made inside the parallel region that follows (from serial code). */
void cpu_blas_single(void);

#endif
