/* `labench dp-check`: the collectives of --dp real on data with known sums, checked exactly.
 *   --backend cuda  NCCL in one process over the visible GPUs (ncclCommInitAll; one GPU is
 *                   enough, and no MPI is needed), then its bus bandwidth
 *   --backend cpu   MPI over the ranks this process was started with (a singleton: one rank) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/run/dp.h"
#include "bench/cli/cli.h"
#include "common/parse.h"
#include "bench/comm/nccl.h"

static void usage(FILE *f)
{
    fputs("usage: labench dp-check [--backend cuda|cpu] [--gpus N] [--mib M]\n"
          "\n"
          "Checks the collectives that --dp real runs, on data whose sums are known exactly:\n"
          "an all-reduce, an all-gather and a reduce-scatter.\n"
          "  --backend cuda   NCCL (loaded at run time) in one process over N GPUs (default: every\n"
          "                   visible one; one GPU is enough), then the bus bandwidth of M MiB (default 64)\n"
          "  --backend cpu    MPI on host memory, over the ranks of `mpirun -np W labench dp-check\n"
          "                   --backend cpu` (without mpirun: one rank)\n"
          "Exit status: 0 every check passed; 1 a result was wrong; 2 the check could not run (no GPU,\n"
          "no NCCL, built without MPI), with the reason.\n",
          f);
}

/* MPI over the job's ranks: rank r contributes (r + 1) + (i mod 7) at element i. */
static int mpi_check(double timeout_s)
{
    DpWorld w;
    char err[1024];
    if (dp_world_init(&w, timeout_s, err, sizeof err) != 0) die_input("dp-check --backend cpu: %s", err);
    const int W = w.size;
    const size_t part = 100003;
    float *a = malloc(part * (size_t)W * sizeof *a), *b = malloc(part * (size_t)W * sizeof *b);
    if (!a || !b) dp_fail("out of host memory");
    int bad = 0;
    const char *name[3] = {"all-reduce (sum)", "all-gather", "reduce-scatter (sum)"};
    for (int op = 0; op < 3; op++) {
        size_t in = op == 2 ? part * (size_t)W : part;
        for (size_t i = 0; i < in; i++) a[i] = (float)(w.rank + 1) + (float)(i % 7);
        dp_sync(name[op]);
        if (op == 0) {
            memcpy(b, a, part * sizeof *a);
            dp_host_all_reduce_sum(b, part, DT_F32);
        } else if (op == 1) {
            dp_host_all_gather(a, b, part, DT_F32);
        } else {
            dp_host_reduce_scatter_sum(a, b, part, DT_F32);
        }
        size_t out = op == 1 ? part * (size_t)W : part;
        int ok = 1;
        for (size_t i = 0; i < out && ok; i++) {
            double want = 0;
            if (op == 1) {
                want = (double)(i / part + 1) + (double)(i % part % 7);
            } else {
                size_t at = op == 2 ? (size_t)w.rank * part + i : i;
                for (int q = 0; q < W; q++) want += (double)(q + 1) + (double)(at % 7);
            }
            if ((double)b[i] != want) {
                fprintf(stderr, "dp-check: rank %d: MPI %s element %zu is %g, expected %g\n", w.rank, name[op], i,
                        (double)b[i], want);
                ok = 0;
            }
        }
        double fails = ok ? 0 : 1;
        dp_sync("the verdict");
        dp_allreduce_f64(&fails, 1);
        if (w.rank == 0)
            printf("dp-check: MPI %s of %zu f32 per rank over %d rank(s) (%s): %s\n", name[op], part, W, w.library,
                   fails == 0 ? "exact" : "WRONG");
        bad |= fails != 0;
    }
    free(a);
    free(b);
    dp_world_finalize();
    return bad ? 1 : 0;
}

int cmd_dp_check(int argc, char **argv, const char *command_line)
{
    const char *backend = "cuda";
    long long gpus = 0, mib = 64;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--backend") && v) {
            if (strcmp(v, "cuda") && strcmp(v, "cpu")) die_input("dp-check: --backend must be cuda or cpu (got '%s')", v);
            backend = v;
            i++;
        } else if (!strcmp(argv[i], "--gpus") && v) {
            if (parse_i64(v, 0, 64, &gpus) != 0) die_input("dp-check: --gpus must be an integer from 0 to 64 (got '%s')", v);
            i++;
        } else if (!strcmp(argv[i], "--mib") && v) {
            if (parse_i64(v, 1, 1 << 16, &mib) != 0) die_input("dp-check: --mib must be an integer from 1 to 65536 (got '%s')", v);
            i++;
        } else {
            die_input("dp-check: unknown or incomplete option '%s' (see labench dp-check --help)", argv[i]);
        }
    }
    if (!strcmp(backend, "cpu")) return mpi_check(DP_DEFAULT_TIMEOUT_S);
    char err[4096];
    if (nccl_self_check((int)gpus, (size_t)mib << 20, stdout, err, sizeof err) != 0) {
        /* a wrong result is a failure (1); anything that kept the check from running is 2 */
        int wrong = strstr(err, "expected") != NULL;
        fprintf(stderr, "labench: dp-check --backend cuda: %s\n", err);
        return wrong ? 1 : EXIT_BAD_INPUT;
    }
    printf("dp-check: NCCL collectives correct\n");
    return 0;
}
