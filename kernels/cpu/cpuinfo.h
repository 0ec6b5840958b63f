/* What /proc/cpuinfo says about the CPU: its model, its widest vector extension and the f32 FLOP
 * per cycle per core that extension allows. Read by the CPU backend (device name, peak FLOP/s)
 * and by kernels/cpu/openblas.c (does OpenBLAS's kernel match the CPU?). */
#ifndef LABENCH_CPUINFO_H
#define LABENCH_CPUINFO_H

typedef enum {
    ISA_UNKNOWN = 0, ISA_SCALAR, ISA_SSE2, ISA_AVX, ISA_ASIMD, ISA_AVX2_FMA, ISA_AVX512
} CpuIsa;

typedef struct {
    char model[96];
    CpuIsa isa;            /* the widest FMA/vector extension found in the flags */
    int avx512_skylakex;   /* avx512f, cd, bw, dq and vl: what OpenBLAS's SKYLAKEX kernels need */
    double mhz;            /* highest "cpu MHz" listed */
    int siblings, cores;   /* logical and physical CPUs per package, 0 when absent */
} CpuInfo;

/* Reads /proc/cpuinfo once per process (later calls copy the first answer). */
void cpu_read_info(CpuInfo *ci);
/* f32 FLOP per cycle per core of an extension: 2 FMA units x vector lanes x 2 (AVX without FMA:
 * one add and one mul unit); 2 for scalar, 0 for unknown. */
int cpu_isa_flops_per_cycle(CpuIsa isa);
const char *cpu_isa_name(CpuIsa isa);

#endif
