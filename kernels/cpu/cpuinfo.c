#include "kernels/cpu/cpuinfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_flag(const char *flags, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = flags; (p = strstr(p, name)) != NULL; p += len)
        if ((p == flags || p[-1] == ' ' || p[-1] == '\t') && (p[len] == ' ' || p[len] == '\n' || p[len] == '\0'))
            return 1;
    return 0;
}

/* The value after "key<spaces>: " on a cpuinfo line, or NULL when the line is another key. */
static const char *cpuinfo_value(const char *line, const char *key)
{
    size_t len = strlen(key);
    if (strncmp(line, key, len) != 0 || (line[len] != ' ' && line[len] != '\t' && line[len] != ':')) return NULL;
    const char *colon = strchr(line + len, ':');
    if (!colon) return NULL;
    colon++;
    while (*colon == ' ') colon++;
    return colon;
}

int cpu_isa_flops_per_cycle(CpuIsa isa)
{
    switch (isa) {
    case ISA_AVX512: return 64;
    case ISA_AVX2_FMA: return 32;
    case ISA_AVX: case ISA_ASIMD: return 16;
    case ISA_SSE2: return 8;
    case ISA_SCALAR: return 2;
    default: return 0;
    }
}

const char *cpu_isa_name(CpuIsa isa)
{
    switch (isa) {
    case ISA_AVX512: return "avx512f";
    case ISA_AVX2_FMA: return "avx2+fma";
    case ISA_AVX: return "avx";
    case ISA_ASIMD: return "asimd";
    case ISA_SSE2: return "sse2";
    case ISA_SCALAR: return "scalar";
    default: return "unknown";
    }
}

static void read_once(CpuInfo *ci)
{
    memset(ci, 0, sizeof *ci);
    snprintf(ci->model, sizeof ci->model, "unknown CPU");
    ci->isa = ISA_SCALAR;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[8192];
        int have_flags = 0;
        while (fgets(line, sizeof line, f)) {
            const char *v;
            if ((v = cpuinfo_value(line, "model name")) && strcmp(ci->model, "unknown CPU") == 0) {
                snprintf(ci->model, sizeof ci->model, "%s", v);
                ci->model[strcspn(ci->model, "\n")] = '\0';
            } else if ((v = cpuinfo_value(line, "cpu MHz"))) {
                double mhz = atof(v);
                if (mhz > ci->mhz) ci->mhz = mhz;
            } else if ((v = cpuinfo_value(line, "siblings")) && !ci->siblings) {
                ci->siblings = atoi(v);
            } else if ((v = cpuinfo_value(line, "cpu cores")) && !ci->cores) {
                ci->cores = atoi(v);
            } else if (!have_flags && ((v = cpuinfo_value(line, "flags")) || (v = cpuinfo_value(line, "Features")))) {
                have_flags = 1;
                if (has_flag(v, "avx512f")) ci->isa = ISA_AVX512;
                else if (has_flag(v, "avx2") && has_flag(v, "fma")) ci->isa = ISA_AVX2_FMA;
                else if (has_flag(v, "avx")) ci->isa = ISA_AVX;
                else if (has_flag(v, "asimd")) ci->isa = ISA_ASIMD;
                else if (has_flag(v, "sse2")) ci->isa = ISA_SSE2;
                ci->avx512_skylakex = has_flag(v, "avx512f") && has_flag(v, "avx512cd") && has_flag(v, "avx512bw") &&
                                      has_flag(v, "avx512dq") && has_flag(v, "avx512vl");
            }
        }
        fclose(f);
    }
    if (ci->mhz <= 0) {
        /* some kernels (arm64) list no "cpu MHz": fall back on the nominal maximum */
        FILE *g = fopen("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "r");
        long khz = 0;
        if (g) { if (fscanf(g, "%ld", &khz) != 1) khz = 0; fclose(g); }
        ci->mhz = khz / 1000.0;
    }
}

void cpu_read_info(CpuInfo *ci)
{
    static CpuInfo cached;
    static int have;
    #pragma omp critical(labench_cpuinfo)
    {
        if (!have) { read_once(&cached); have = 1; }
    }
    *ci = cached;
}
