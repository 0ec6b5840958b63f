#include "kernels/cpu/openblas.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* openblas_get_parallel(): 0 sequential, 1 pthreads, 2 OpenMP */
#define OPENBLAS_OPENMP 2

static void set_blas_threads(int n)
{
    if (openblas_get_num_threads() == n) return;
    /* The OpenMP build's setter also sets OpenMP's thread count for the calling task: put ours
     * back, so that the ops' own parallel regions keep every thread. */
    const int omp = omp_get_max_threads();
    openblas_set_num_threads(n);
    if (openblas_get_parallel() == OPENBLAS_OPENMP && omp_get_max_threads() != omp) omp_set_num_threads(omp);
}

void cpu_blas_threads_for(double flops)
{
    set_blas_threads(flops >= CPU_BLAS_THREADED_FLOPS ? omp_get_max_threads() : 1);
}

void cpu_blas_single(void) { set_blas_threads(1); }

/* The vector extension of OpenBLAS's x86 cores, by the names openblas_get_corename() gives. */
static CpuIsa core_isa(const char *core)
{
    static const char *const avx512[] = { "SkylakeX", "Cooperlake", "SapphireRapids", NULL };
    static const char *const avx2[] = { "Haswell", "Zen", "Excavator", NULL };
    static const char *const avx[] = { "Sandybridge", "Bulldozer", "Piledriver", "Steamroller", NULL };
    static const char *const sse[] = { "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom",
                                       "Opteron", "Opteron_SSE3", "Barcelona", "Bobcat", "Nano", "Katmai",
                                       "Coppermine", "Northwood", "Banias", "Athlon", NULL };
    static const struct { const char *const *names; CpuIsa isa; } groups[] = {
        { avx512, ISA_AVX512 }, { avx2, ISA_AVX2_FMA }, { avx, ISA_AVX }, { sse, ISA_SSE2 } };
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
        for (const char *const *n = groups[g].names; *n; n++)
            if (strcasecmp(core, *n) == 0) return groups[g].isa;
    return ISA_UNKNOWN;
}

void cpu_blas_info(CpuBlasInfo *b)
{
    memset(b, 0, sizeof *b);
    snprintf(b->library, sizeof b->library, "OpenBLAS");
    const char *cfg = openblas_get_config();
    snprintf(b->config, sizeof b->config, "%s", cfg ? cfg : "");
    /* "OpenBLAS 0.3.21 DYNAMIC_ARCH ...": the version is the second word */
    if (sscanf(b->config, "OpenBLAS %31s", b->version) != 1) snprintf(b->version, sizeof b->version, "unknown");
    const char *core = openblas_get_corename();
    snprintf(b->core, sizeof b->core, "%s", core ? core : "unknown");
    b->core_isa = core_isa(b->core);
    const int par = openblas_get_parallel();
    snprintf(b->threading, sizeof b->threading, "%s", par == OPENBLAS_OPENMP ? "openmp" : par == 1 ? "pthreads" : "sequential");
    b->threads = par == 0 ? 1 : omp_get_max_threads();
    const char *env = getenv("OPENBLAS_CORETYPE");
    snprintf(b->coretype_env, sizeof b->coretype_env, "%s", env ? env : "");

    CpuInfo ci;
    cpu_read_info(&ci);
    /* what the CPU could run: SKYLAKEX needs the AVX-512 F, CD, BW, DQ and VL subsets */
    const CpuIsa want = ci.avx512_skylakex ? ISA_AVX512 : ci.isa >= ISA_AVX2_FMA ? ISA_AVX2_FMA : ISA_UNKNOWN;
    b->fallback = b->core_isa != ISA_UNKNOWN && want != ISA_UNKNOWN && b->core_isa < want;
    if (!b->fallback) return;
    snprintf(b->suggested_coretype, sizeof b->suggested_coretype, "%s", want == ISA_AVX512 ? "SKYLAKEX" : "HASWELL");
    snprintf(b->warning, sizeof b->warning,
             "labench: OpenBLAS %s runs its generic %s kernels (%s level) on this CPU, whose flags show %s%s; "
             "OPENBLAS_CORETYPE=%s would select its %s kernels. labench does not set it (some OpenBLAS builds "
             "compute wrong results with a forced core): set it yourself and check, e.g. scripts/check_grad_torch.py",
             b->version, b->core, cpu_isa_name(b->core_isa), cpu_isa_name(ci.isa),
             b->coretype_env[0] ? " (OPENBLAS_CORETYPE is set)" : "", b->suggested_coretype, cpu_isa_name(want));
}

void cpu_blas_warn_once(void)
{
    static int done;
    int first = 0;
    #pragma omp critical(labench_blas_warn)
    {
        first = !done;
        done = 1;
    }
    if (!first) return;
    CpuBlasInfo b;
    cpu_blas_info(&b);
    if (b.fallback) fprintf(stderr, "%s\n", b.warning);
}
