/* `labench grad`: one forward and backward of one packed row on given weights, so anyone can
 * check labench's loss and gradients against another implementation (e.g. PyTorch). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cli.h"
#include "bench/util.h"
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

/* Reads an array of numbers from the batch JSON; exits 2 naming the file and key. */
static json_t *get_array(json_t *root, const char *path, const char *key)
{
    json_t *a = json_object_get(root, key);
    if (!a || !json_is_array(a)) die_input("%s: \"%s\" is missing or not an array", path, key);
    return a;
}

int cmd_grad(int argc, char **argv)
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
            char *end;
            long r = strtol(v, &end, 10);
            if (*end || r < 1 || r > 1000) die_input("grad: --repeat must be an integer in [1, 1000], not '%s'", v);
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

    json_error_t jerr;
    json_t *root = json_load_file(batch_path, 0, &jerr);
    if (!root) die_input("%s:%d: %s", batch_path, jerr.line, jerr.text);
    if (!json_is_object(root)) die_input("%s: not a JSON object", batch_path);
    json_t *jt = get_array(root, batch_path, "tokens"), *jc = get_array(root, batch_path, "cu_seqlens"),
           *jw = get_array(root, batch_path, "weights");
    size_t N = json_array_size(jt), S1 = json_array_size(jc);
    if (N < 1 || N > (1u << 30)) die_input("%s: \"tokens\" must hold 1 to 2^30 ids (has %zu)", batch_path, N);
    if (json_array_size(jw) != N)
        die_input("%s: \"weights\" has %zu values, \"tokens\" %zu: one weight per position", batch_path,
                  json_array_size(jw), N);
    if (S1 < 2) die_input("%s: \"cu_seqlens\" needs at least [0, len(tokens)]", batch_path);

    int32_t *tokens = malloc(N * 4), *targets = malloc(N * 4), *pos = malloc(N * 4), *cu = malloc(S1 * 4);
    float *w = malloc(N * 4);
    if (!tokens || !targets || !pos || !cu || !w) die_input("out of host memory");
    for (size_t t = 0; t < N; t++) {
        json_t *x = json_array_get(jt, t);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= cfg.vocab)
            die_input("%s: tokens[%zu] is not a token id in [0, %d) (the model's vocab_size)", batch_path, t,
                      cfg.vocab);
        tokens[t] = (int32_t)json_integer_value(x);
        json_t *y = json_array_get(jw, t);
        if (!json_is_number(y) || !isfinite(json_number_value(y)))
            die_input("%s: weights[%zu] is not a finite number", batch_path, t);
        w[t] = (float)json_number_value(y);
    }
    int max_seqlen = 0;
    for (size_t s = 0; s < S1; s++) {
        json_t *x = json_array_get(jc, s);
        if (!json_is_integer(x)) die_input("%s: cu_seqlens[%zu] is not an integer", batch_path, s);
        long long v = json_integer_value(x);
        if (s == 0 && v != 0) die_input("%s: cu_seqlens must start at 0 (starts at %lld)", batch_path, v);
        if (s > 0 && v <= cu[s - 1])
            die_input("%s: cu_seqlens is not increasing at index %zu (%d then %lld)", batch_path, s, cu[s - 1], v);
        if (v > (long long)N) die_input("%s: cu_seqlens[%zu] = %lld is past len(tokens) = %zu", batch_path, s, v, N);
        cu[s] = (int32_t)v;
        if (s > 0 && cu[s] - cu[s - 1] > max_seqlen) max_seqlen = cu[s] - cu[s - 1];
    }
    if ((size_t)cu[S1 - 1] != N)
        die_input("%s: cu_seqlens must end at len(tokens) = %zu (ends at %d)", batch_path, N, cu[S1 - 1]);
    for (size_t s = 0; s + 1 < S1; s++) {
        for (int t = cu[s]; t < cu[s + 1]; t++) {
            int last = t == cu[s + 1] - 1;
            pos[t] = t - cu[s];
            targets[t] = last ? 0 : tokens[t + 1];
            if (last && w[t] != 0.0f)
                die_input("%s: weights[%d] = %g is the last position of segment %zu, which predicts nothing: "
                          "it must be 0", batch_path, t, w[t], s);
        }
    }
    json_decref(root);

    Backend *be = strcmp(backend, "cuda") == 0
                      ? backend_cuda_create(strcmp(dtype, "bf16") == 0 ? DT_BF16 : DT_F32, 0, err, sizeof err)
                      : backend_cpu_create(DT_F32, err, sizeof err);
    if (!be) die_input("--backend %s: %s", backend, err);
    Model m;
    if (model_create(&m, &cfg, be, (int)N, 0, err, sizeof err) != 0) die_input("%s", err);
    model_set_params(&m, params);
    Batch b = {(int)N, tokens, targets, w, pos, cu, (int)(S1 - 1), max_seqlen};
    const double loss = model_forward_backward(&m, &b, NULL);

    float *g = malloc(m.n_params * sizeof *g);
    StTensor *ts = calloc((size_t)m.layout.n_tensors * 3, sizeof *ts);
    if (!g || !ts) die_input("out of host memory");
    model_get_grads(&m, g);
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
    double *step_t = repeat > 0 ? malloc(2 * (size_t)repeat * sizeof *step_t) : NULL, step_med = 0;
    if (repeat > 0 && !step_t) die_input("out of host memory");
    for (int r = 0; r < repeat; r++) {
        model_zero_grads(&m);
        be->mark(be, 0);
        model_forward_backward(&m, &b, NULL);
        be->mark(be, 1);
        step_t[r] = step_t[repeat + r] = be->seconds_between(be, 0, 1);
    }
    if (repeat > 0) {
        double *t = step_t + repeat;   /* a sorted copy for the median; step_t keeps pass order */
        for (int i = 1; i < repeat; i++)   /* insertion sort: a handful of values */
            for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
                double x = t[j];
                t[j] = t[j - 1];
                t[j - 1] = x;
            }
        step_med = repeat % 2 ? t[repeat / 2] : 0.5 * (t[repeat / 2 - 1] + t[repeat / 2]);
    }
    char loss_s[64], step_str[64];
    snprintf(loss_s, sizeof loss_s, "%.9g", loss);
    snprintf(step_str, sizeof step_str, "%.6g", step_med);
    const char *meta[] = {"loss", loss_s, "format", "pt", repeat > 0 ? "step_seconds" : NULL, step_str, NULL};
    int status = 0;
    if (safetensors_write(out_path, ts, nt, meta, err, sizeof err) != 0) {
        fprintf(stderr, "labench: %s\n", err);
        status = 2;
    } else {
        printf("loss %.9g\n", loss);
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
                   "%.0f tokens/s)\n", step_med, repeat, step_t[repeat], step_t[2 * repeat - 1], (double)N / step_med);
        }
    }
    free(step_t);
    free(g);
    free(ts);
    model_free(&m);
    be->destroy(be);
    free(params);
    free(tokens);
    free(targets);
    free(pos);
    free(cu);
    free(w);
    return status;
}
