/* `labench grad`: one forward and backward of one packed row on given weights, so anyone can
 * check labench's loss and gradients against another implementation (e.g. PyTorch). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli/cli.h"
#include "bench/input/grad_batch.h"
#include "common/error.h"
#include "common/parse.h"
#include "common/stats.h"
#include "kernels/backend.h"
#include "kernels/cpu/openblas.h"
#include "model/model.h"
#include "model/safetensors.h"

static void usage(FILE *f)
{
    fputs("usage: labench grad --load-model M.safetensors --batch B.json --out G.safetensors\n"
          "                    [--backend cpu|cuda] [--dtype fp32|bf16] [--repeat N]\n"
          "\n"
          "One forward and backward of one packed row. B.json holds:\n"
          "  tokens      token ids (ints)\n"
          "  cu_seqlens  segment starts: first 0, last len(tokens), increasing\n"
          "  weights     one float per position: the weight of predicting token t+1 at position t\n"
          "              inside its segment (a segment's last position must weigh 0)\n"
          "Prints the loss, sum over t of weights[t] * CE(logits[t], tokens[t+1]), and writes every\n"
          "parameter's gradient under its Hugging Face name (q/k/v and gate/up split) to --out.\n"
          "Positions restart at 0 in each segment; attention never crosses segments.\n"
          "--repeat N (1..1000) times N more forward+backward passes of the same row after the\n"
          "first (whose gradients are written), with the backend's timer (CUDA events on cuda, the\n"
          "wall clock on cpu). It prints \"step_seconds T1 ... TN\" (each pass: the step alone,\n"
          "without start-up, loading and writing), \"step_seconds_median\" with tokens/s, and on\n"
          "cpu a line \"blas ...\" naming the BLAS library and the kernels (core) it runs; the median\n"
          "also goes into --out's metadata. scripts/peer_cpu_step.py and tests/gpu/peer_torch.py\n"
          "read them.\n",
          f);
}

int cmd_grad(int argc, char **argv, const char *command_line)
{
    const char *model_path = NULL, *batch_path = NULL, *out_path = NULL, *backend = "cpu", *dtype = "fp32";
    int repeat = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        const char *v;
        if (a[0] == '-' && !strchr(a, '=') && i + 1 >= argc)
            die_input("grad: %s needs a value (see labench grad --help)", a);
        if ((v = cli_opt_value(argc, argv, &i, "--load-model"))) model_path = v;
        else if ((v = cli_opt_value(argc, argv, &i, "--batch"))) batch_path = v;
        else if ((v = cli_opt_value(argc, argv, &i, "--out"))) out_path = v;
        else if ((v = cli_opt_value(argc, argv, &i, "--backend"))) backend = v;
        else if ((v = cli_opt_value(argc, argv, &i, "--dtype"))) dtype = v;
        else if ((v = cli_opt_value(argc, argv, &i, "--repeat"))) {
            long long r;
            if (parse_i64(v, 1, 1000, &r) != 0) die_input("grad: --repeat must be an integer in [1, 1000], not '%s'", QUOTE(v));
            repeat = (int)r;
        }
        else die_input("grad: unknown option '%s' (see labench grad --help)", a);
    }
    if (!model_path || !batch_path || !out_path)
        die_input("grad needs --load-model, --batch and --out (see labench grad --help)");
    if (strcmp(backend, "cpu") && strcmp(backend, "cuda")) die_input("grad: --backend must be cpu or cuda");
    if (strcmp(dtype, "fp32") && strcmp(dtype, "bf16")) die_input("grad: --dtype must be fp32 or bf16");

    char err[1024];
    ModelConfig cfg;
    float *params = NULL;
    if (safetensors_load_model(model_path, &cfg, &params, err, sizeof err) != 0) die_input("%s", err);

    GradBatch gb;
    if (grad_batch_load(batch_path, cfg.vocab, &gb, err, sizeof err) != 0) die_input("%s", err);
    const int N = gb.batch.n_tokens;

    Backend *be = strcmp(backend, "cuda") == 0
                      ? backend_cuda_create(strcmp(dtype, "bf16") == 0 ? DT_BF16 : DT_F32, 0, err, sizeof err)
                      : backend_cpu_create(DT_F32, err, sizeof err);
    if (!be) die_input("--backend %s: %s", backend, err);
    Model m;
    if (model_create(&m, &cfg, be, N, 0, err, sizeof err) != 0) die_input("%s", err);
    model_set_params(&m, params);
    model_zero_grads(&m);
    const double loss = model_forward_backward(&m, &gb.batch, NULL);

    float *g = malloc(m.n_params * sizeof *g);
    StTensor *ts = calloc((size_t)m.layout.n_tensors * 3, sizeof *ts);
    if (!g || !ts) die_input("out of host memory");
    model_get_grads(&m, g);
    /* A loss or gradient that overflowed is no answer to check against: say so, write nothing. */
    if (!isfinite(loss))
        die_input("grad: the loss is %g: the weights of %s or the parameters of %s are too large for %s; "
                  "no gradients written", loss, batch_path, model_path, dtype);
    for (size_t i = 0; i < m.n_params; i++)
        if (!isfinite(g[i])) {
            const char *name = "?";
            for (int k = 0; k < m.layout.n_tensors; k++)
                if (i >= m.layout.tensors[k].offset) name = m.layout.tensors[k].name;
            die_input("grad: the gradient of %s is %g (parameter %zu): the weights of %s or the parameters of %s "
                      "are too large for %s; no gradients written", name, g[i], i, batch_path, model_path, dtype);
        }
    int nt = 0;
    for (int i = 0; i < m.layout.n_tensors; i++) {
        const ParamTensor *t = &m.layout.tensors[i];
        size_t row0 = 0;
        for (int p = 0; p < t->n_parts; p++) {
            StTensor *x = &ts[nt++];
            x->name = t->part_names[p];
            x->ndim = t->rows == 1 ? 1 : 2;
            x->shape[0] = t->rows == 1 ? t->cols : t->part_rows[p];
            x->shape[1] = t->cols;
            x->data = g + t->offset + row0 * (size_t)t->cols;
            row0 += (size_t)t->part_rows[p];
        }
    }
    /* timed passes after the first: gradients zeroed before each, the written ones kept above */
    double *step_t = repeat > 0 ? malloc((size_t)repeat * sizeof *step_t) : NULL, step_med = 0;
    double step_min = INFINITY, step_max = 0;
    if (repeat > 0 && !step_t) die_input("out of host memory");
    for (int r = 0; r < repeat; r++) {
        model_zero_grads(&m);
        be->mark(be, 0);
        model_forward_backward(&m, &gb.batch, NULL);
        be->mark(be, 1);
        step_t[r] = be->seconds_between(be, 0, 1);
        step_min = fmin(step_min, step_t[r]);
        step_max = fmax(step_max, step_t[r]);
    }
    if (repeat > 0) step_med = median(step_t, (size_t)repeat);
    char loss_s[64], step_str[64];
    snprintf(loss_s, sizeof loss_s, "%.9g", loss);
    snprintf(step_str, sizeof step_str, "%.6g", step_med);
    /* which attention ran (LABENCH_ATTN picks it for grad) */
    const char *attn = be->attention_desc[0] ? be->attention_desc : "the backend's own";
    const char *meta[] = {"loss", loss_s, "format", "pt", "attention", attn, repeat > 0 ? "step_seconds" : NULL,
                          step_str, NULL};
    int status = 0;
    if (safetensors_write(out_path, ts, nt, meta, err, sizeof err) != 0) {
        fprintf(stderr, "labench: %s\n", err);
        status = 2;
    } else {
        printf("loss %.9g\n", loss);
        printf("attention %s\n", attn);
        printf("gradients of %zu parameters (%d tensors) written to %s\n", m.n_params, nt, out_path);
        if (!strcmp(backend, "cpu")) {
            CpuBlasInfo bi;
            cpu_blas_info(&bi);
            printf("blas %s %s core %s (%s kernels), %s, %d threads\n", bi.library, bi.version, bi.core,
                   cpu_isa_name(bi.core_isa), bi.threading, bi.threads);
        }
        if (repeat > 0) {
            printf("step_seconds");
            for (int r = 0; r < repeat; r++) printf(" %.6f", step_t[r]);
            printf("\n");
            printf("step_seconds_median %.6g (of %d forward+backward passes after the first, min %.6g, max %.6g; "
                   "%.0f tokens/s)\n", step_med, repeat, step_min, step_max, (double)N / step_med);
        }
    }
    free(step_t);
    free(g);
    free(ts);
    model_free(&m);
    be->destroy(be);
    free(params);
    grad_batch_free(&gb);
    return status;
}
