/* Which launcher started this process, from its environment: no MPI needed, so a labench built
 * without MPI can still say that it was started as one of several ranks. */
#include <stdio.h>
#include <stdlib.h>

#include "bench/comm/world.h"
#include "common/parse.h"

int dp_launcher_size(char *launcher, size_t n)
{
    static const struct {
        const char *var, *name, *needs;
    } v[] = {
        {"OMPI_COMM_WORLD_SIZE", "Open MPI's mpirun", NULL},
        {"PMI_SIZE", "a PMI launcher (MPICH's mpiexec, Intel MPI, srun --mpi=pmi2)", NULL},
        {"MV2_COMM_WORLD_SIZE", "MVAPICH's mpirun", NULL},
        {"SLURM_STEP_NUM_TASKS", "Slurm's srun", "SLURM_PROCID"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        const char *s = getenv(v[i].var);
        long long k;
        if (!s || parse_i64(s, 1, 1 << 24, &k) != 0 || (v[i].needs && !getenv(v[i].needs))) continue;
        snprintf(launcher, n, "%s", v[i].name);
        return (int)k;
    }
    if (n) launcher[0] = 0;
    return 0;
}
