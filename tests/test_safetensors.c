/* safetensors checkpoints: round trip, the Hugging Face layout of the file, every kind of
 * malformed file the loader must refuse (with the path and what is wrong), and atomic writes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tests/test_util.h"

#include <dirent.h>
#include <float.h>
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>

#include "model/config.h"
#include "model/safetensors.h"

typedef struct {
    char dir[64];            /* a fresh folder under /tmp, removed at the end */
    char good[128];          /* a valid tiny checkpoint */
    ModelConfig cfg;
    float *params;
    size_t n_params;
    unsigned char *file;     /* the bytes of `good` */
    size_t file_len;
    size_t data_start;       /* 8 + header length */
} Fixture;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(0, fseek(f, 0, SEEK_END));
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal((size_t)n, fread(buf, 1, (size_t)n, f));
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(len, fwrite(data, 1, len, f));
    assert_int_equal(0, fclose(f));
}

static uint64_t read_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int b = 7; b >= 0; b--) v = (v << 8) | p[b];
    return v;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int b = 0; b < 8; b++) p[b] = (unsigned char)(v >> (8 * b));
}

static void case_path(const Fixture *fx, char *path, size_t len, const char *name)
{
    snprintf(path, len, "%s/%s", fx->dir, name);
}

/* The good file's header, as a fresh JSON object to change. */
static json_t *good_header(const Fixture *fx)
{
    json_error_t jerr;
    json_t *h = json_loadb((const char *)fx->file + 8, fx->data_start - 8, 0, &jerr);
    assert_non_null(h);
    return h;
}

/* Writes header `h` (consumed) followed by the good file's tensor data to dir/name. */
static void write_with_header(const Fixture *fx, const char *name, json_t *h, char *path, size_t pathlen)
{
    char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(text);
    json_decref(h);
    size_t text_len = strlen(text), header_len = (text_len + 7) / 8 * 8;
    size_t data_len = fx->file_len - fx->data_start;
    unsigned char *buf = malloc(8 + header_len + data_len);
    assert_non_null(buf);
    put_le64(buf, header_len);
    memcpy(buf + 8, text, text_len);
    memset(buf + 8 + text_len, ' ', header_len - text_len);
    memcpy(buf + 8 + header_len, fx->file + fx->data_start, data_len);
    case_path(fx, path, pathlen, name);
    write_bytes(path, buf, 8 + header_len + data_len);
    free(buf);
    free(text);
}

/* Asserts that loading `path` fails, and that the message names the path and holds each of the
 * NULL-terminated words. */
static void expect_load_error(const char *path, ...)
{
    ModelConfig c;
    memset(&c, 0x5a, sizeof c);
    ModelConfig before = c;
    float *params = (float *)&c;   /* must come back NULL */
    char err[512] = "";
    int rc = safetensors_load_model(path, &c, &params, err, sizeof err);
    if (rc != -1) print_error("%s loaded, but should not have\n", path);
    assert_int_equal(-1, rc);
    assert_null(params);
    assert_memory_equal(&before, &c, sizeof c);   /* *c untouched on failure */
    if (!strstr(err, path)) {
        print_error("message lacks the path: %s\n", err);
        fail();
    }
    va_list ap;
    va_start(ap, path);
    for (const char *w = va_arg(ap, const char *); w; w = va_arg(ap, const char *)) {
        if (!strstr(err, w)) {
            print_error("message lacks '%s': %s\n", w, err);
            va_end(ap);
            fail();
        }
    }
    va_end(ap);
}

static int setup(void **state)
{
    Fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/labench-st-XXXXXX");
    if (!mkdtemp(fx->dir)) return -1;
    snprintf(fx->good, sizeof fx->good, "%s/good.safetensors", fx->dir);
    if (model_preset("tiny", &fx->cfg) != 0) return -1;
    fx->n_params = model_param_count(&fx->cfg);
    fx->params = malloc(fx->n_params * sizeof *fx->params);
    if (!fx->params) return -1;
    uint64_t seed = 12345;
    for (size_t i = 0; i < fx->n_params; i++)
        fx->params[i] = (float)((double)(splitmix64(&seed) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    /* Values whose bits a careless round trip would change. */
    fx->params[0] = -0.0f;
    fx->params[1] = FLT_MIN / 4;   /* subnormal */
    fx->params[2] = FLT_MAX;
    fx->params[fx->n_params - 1] = -FLT_MAX;
    char err[512];
    if (safetensors_save_model(fx->good, &fx->cfg, fx->params, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    FILE *f = fopen(fx->good, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    fx->file_len = (size_t)ftell(f);
    rewind(f);
    fx->file = malloc(fx->file_len);
    if (!fx->file || fread(fx->file, 1, fx->file_len, f) != fx->file_len) return -1;
    fclose(f);
    fx->data_start = 8 + (size_t)read_le64(fx->file);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    Fixture *fx = *state;
    DIR *d = opendir(fx->dir);
    if (d) {
        struct dirent *e;
        char path[512];
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            snprintf(path, sizeof path, "%s/%s", fx->dir, e->d_name);
            if (remove(path) != 0) rmdir(path);
        }
        closedir(d);
    }
    rmdir(fx->dir);
    free(fx->params);
    free(fx->file);
    free(fx);
    return 0;
}

/* Number of entries in dir whose name contains `part`. */
static int count_files(const char *dir, const char *part)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, part)) n++;
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------- the good file */

static void test_round_trip(void **state)
{
    Fixture *fx = *state;
    ModelConfig c;
    float *params = NULL;
    char err[512] = "";
    int rc = safetensors_load_model(fx->good, &c, &params, err, sizeof err);
    if (rc != 0) print_error("%s\n", err);
    assert_int_equal(0, rc);
    assert_string_equal("file", c.name);
    assert_int_equal(fx->cfg.vocab, c.vocab);
    assert_int_equal(fx->cfg.hidden, c.hidden);
    assert_int_equal(fx->cfg.intermediate, c.intermediate);
    assert_int_equal(fx->cfg.layers, c.layers);
    assert_int_equal(fx->cfg.heads, c.heads);
    assert_int_equal(fx->cfg.kv_heads, c.kv_heads);
    assert_int_equal(fx->cfg.head_dim, c.head_dim);
    assert_memory_equal(&fx->cfg.rms_eps, &c.rms_eps, sizeof(float));
    assert_memory_equal(&fx->cfg.rope_theta, &c.rope_theta, sizeof(float));
    assert_non_null(params);
    assert_memory_equal(fx->params, params, fx->n_params * sizeof *params);
    free(params);
    assert_int_equal(0, count_files(fx->dir, ".tmp."));   /* the temporary was renamed */
}

static void test_round_trip_other_shape(void **state)
{
    Fixture *fx = *state;
    /* Odd eps and theta, a wider GQA ratio, three layers. */
    ModelConfig c = {"custom", 50, 48, 40, 3, 6, 2, 8, 1.234567e-6f, 500000.0f};
    size_t n = model_param_count(&c);
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = (float)i * 0.25f - 3.0f;
    char path[256], err[512] = "";
    case_path(fx, path, sizeof path, "nested/folder/custom.safetensors");   /* folders are created */
    assert_int_equal(0, safetensors_save_model(path, &c, p, err, sizeof err));
    ModelConfig back;
    float *q = NULL;
    int rc = safetensors_load_model(path, &back, &q, err, sizeof err);
    if (rc != 0) print_error("%s\n", err);
    assert_int_equal(0, rc);
    assert_int_equal(c.heads, back.heads);
    assert_int_equal(c.kv_heads, back.kv_heads);
    assert_int_equal(c.layers, back.layers);
    assert_true(c.rms_eps == back.rms_eps);
    assert_true(c.rope_theta == back.rope_theta);
    assert_memory_equal(p, q, n * sizeof *p);
    free(p);
    free(q);
    remove(path);
    case_path(fx, path, sizeof path, "nested/folder");
    rmdir(path);
    case_path(fx, path, sizeof path, "nested");
    rmdir(path);
}

static void assert_shape(const json_t *h, const char *name, int ndim, int64_t rows, int64_t cols)
{
    const json_t *e = json_object_get(h, name);
    if (!e) print_error("no tensor %s in the header\n", name);
    assert_non_null(e);
    assert_string_equal("F32", json_string_value(json_object_get(e, "dtype")));
    const json_t *shape = json_object_get(e, "shape");
    assert_int_equal(ndim, json_array_size(shape));
    assert_int_equal(rows, json_integer_value(json_array_get(shape, 0)));
    if (ndim == 2) assert_int_equal(cols, json_integer_value(json_array_get(shape, 1)));
}

static void test_header_layout(void **state)
{
    Fixture *fx = *state;
    const ModelConfig *c = &fx->cfg;
    assert_int_equal(0, (fx->data_start - 8) % 8);   /* padded to a multiple of 8 */
    json_t *h = good_header(fx);
    assert_true(json_is_object(h));

    /* The config, as strings under the LlamaConfig names. */
    const json_t *meta = json_object_get(h, "__metadata__");
    assert_non_null(meta);
    assert_string_equal("pt", json_string_value(json_object_get(meta, "format")));
    assert_string_equal("64", json_string_value(json_object_get(meta, "hidden_size")));
    assert_string_equal("176", json_string_value(json_object_get(meta, "intermediate_size")));
    assert_string_equal("2", json_string_value(json_object_get(meta, "num_hidden_layers")));
    assert_string_equal("4", json_string_value(json_object_get(meta, "num_attention_heads")));
    assert_string_equal("2", json_string_value(json_object_get(meta, "num_key_value_heads")));
    assert_string_equal("256", json_string_value(json_object_get(meta, "vocab_size")));
    assert_string_equal("1e-05", json_string_value(json_object_get(meta, "rms_norm_eps")));
    assert_string_equal("10000", json_string_value(json_object_get(meta, "rope_theta")));

    /* Hugging Face names, matrices [out, in], norms [C]. */
    const int C = c->hidden, F = c->intermediate, D = c->head_dim;
    assert_shape(h, "model.embed_tokens.weight", 2, c->vocab, C);
    assert_shape(h, "lm_head.weight", 2, c->vocab, C);
    assert_shape(h, "model.norm.weight", 1, C, 0);
    char name[128];
    for (int i = 0; i < c->layers; i++) {
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_proj.weight", i);
        assert_shape(h, name, 2, c->heads * D, C);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.k_proj.weight", i);
        assert_shape(h, name, 2, c->kv_heads * D, C);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.v_proj.weight", i);
        assert_shape(h, name, 2, c->kv_heads * D, C);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.o_proj.weight", i);
        assert_shape(h, name, 2, C, c->heads * D);
        snprintf(name, sizeof name, "model.layers.%d.mlp.gate_proj.weight", i);
        assert_shape(h, name, 2, F, C);
        snprintf(name, sizeof name, "model.layers.%d.mlp.up_proj.weight", i);
        assert_shape(h, name, 2, F, C);
        snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", i);
        assert_shape(h, name, 2, C, F);
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", i);
        assert_shape(h, name, 1, C, 0);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", i);
        assert_shape(h, name, 1, C, 0);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.qkv_proj.weight", i);
        assert_null(json_object_get(h, name));   /* fused tensors are written as their parts */
        snprintf(name, sizeof name, "model.layers.%d.mlp.gate_up_proj.weight", i);
        assert_null(json_object_get(h, name));
    }
    assert_int_equal(1 + 3 + 9 * c->layers, json_object_size(h));   /* metadata + tensors */

    /* Offsets tile the data exactly, and the bytes are the right rows of the buffer. */
    uint64_t total = 0;
    const char *key;
    json_t *e;
    json_object_foreach(h, key, e) {
        if (strcmp(key, "__metadata__") == 0) continue;
        const json_t *off = json_object_get(e, "data_offsets");
        total += (uint64_t)(json_integer_value(json_array_get(off, 1)) - json_integer_value(json_array_get(off, 0)));
    }
    assert_int_equal(fx->file_len - fx->data_start, total);
    assert_int_equal(fx->n_params * sizeof(float), total);

    ParamLayout l;
    assert_int_equal(0, param_layout_make(c, &l));
    const ParamTensor *qkv = &l.tensors[param_layer(1, P_QKV)];
    const ParamTensor *gu = &l.tensors[param_layer(1, P_GATE_UP)];
    const float *k_rows = fx->params + qkv->offset + (size_t)qkv->part_rows[0] * (size_t)qkv->cols;
    const float *up_rows = fx->params + gu->offset + (size_t)gu->part_rows[0] * (size_t)gu->cols;
    const json_t *k_off = json_object_get(json_object_get(h, "model.layers.1.self_attn.k_proj.weight"), "data_offsets");
    const json_t *up_off = json_object_get(json_object_get(h, "model.layers.1.mlp.up_proj.weight"), "data_offsets");
    assert_memory_equal(fx->file + fx->data_start + json_integer_value(json_array_get(k_off, 0)), k_rows,
                        (size_t)c->kv_heads * D * C * sizeof(float));
    assert_memory_equal(fx->file + fx->data_start + json_integer_value(json_array_get(up_off, 0)), up_rows,
                        (size_t)F * C * sizeof(float));
    param_layout_free(&l);
    json_decref(h);
}

static void test_any_order(void **state)
{
    Fixture *fx = *state;
    /* The same entries (same offsets) listed in reverse order. */
    json_t *h = good_header(fx), *rev = json_object();
    size_t n = json_object_size(h);
    const char **keys = calloc(n, sizeof *keys);
    size_t k = 0;
    const char *key;
    json_t *v;
    json_object_foreach(h, key, v) keys[k++] = key;
    while (k > 0) {
        k--;
        json_object_set(rev, keys[k], json_object_get(h, keys[k]));
    }
    free(keys);
    json_decref(h);
    char path[256], err[512] = "";
    write_with_header(fx, "reversed.safetensors", rev, path, sizeof path);
    ModelConfig c;
    float *params = NULL;
    int rc = safetensors_load_model(path, &c, &params, err, sizeof err);
    if (rc != 0) print_error("%s\n", err);
    assert_int_equal(0, rc);
    assert_memory_equal(fx->params, params, fx->n_params * sizeof *params);
    free(params);
}

/* ---------------------------------------------------------------- bad files */

static void test_missing_file(void **state)
{
    Fixture *fx = *state;
    char path[256];
    case_path(fx, path, sizeof path, "no-such.safetensors");
    expect_load_error(path, "cannot open", "No such file", NULL);
    expect_load_error(fx->dir, "is a directory", NULL);   /* a folder */
}

static void test_too_short(void **state)
{
    Fixture *fx = *state;
    char path[256];
    case_path(fx, path, sizeof path, "short.safetensors");
    write_bytes(path, fx->file, 5);
    expect_load_error(path, "shorter than 8 bytes", NULL);
    write_bytes(path, "", 0);
    expect_load_error(path, "shorter than 8 bytes", NULL);
}

static void test_header_length_past_end(void **state)
{
    Fixture *fx = *state;
    char path[256];
    case_path(fx, path, sizeof path, "past-end.safetensors");
    unsigned char buf[24];
    memset(buf, ' ', sizeof buf);
    put_le64(buf, 1000);
    buf[8] = '{';
    buf[9] = '}';
    write_bytes(path, buf, sizeof buf);
    expect_load_error(path, "header length 1000", "past the end", NULL);
    /* The good header, but the file cut inside it. */
    write_bytes(path, fx->file, fx->data_start - 1);
    expect_load_error(path, "past the end", NULL);
    put_le64(buf, (uint64_t)1 << 40);
    write_bytes(path, buf, sizeof buf);
    expect_load_error(path, "absurd", "100 MB", NULL);
    put_le64(buf, UINT64_MAX);
    write_bytes(path, buf, sizeof buf);
    expect_load_error(path, "absurd", NULL);
}

static void test_bad_json(void **state)
{
    Fixture *fx = *state;
    char path[256];
    case_path(fx, path, sizeof path, "bad-json.safetensors");
    const char *texts[] = {"{\"a\": [1, 2}   ", "not json", "{}junk  ", "        "};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        unsigned char buf[64];
        size_t n = strlen(texts[i]);
        put_le64(buf, n);
        memcpy(buf + 8, texts[i], n);
        write_bytes(path, buf, 8 + n);
        expect_load_error(path, "header is not valid JSON", NULL);
    }
    unsigned char buf[16];
    put_le64(buf, 8);
    memcpy(buf + 8, "[1, 2]  ", 8);
    write_bytes(path, buf, sizeof buf);
    expect_load_error(path, "not a JSON object", NULL);
}

static void test_entry_missing_field(void **state)
{
    Fixture *fx = *state;
    const char *fields[] = {"dtype", "shape", "data_offsets"};
    char path[256], word[64];
    for (int i = 0; i < 3; i++) {
        json_t *h = good_header(fx);
        json_object_del(json_object_get(h, "model.layers.0.mlp.down_proj.weight"), fields[i]);
        write_with_header(fx, "no-field.safetensors", h, path, sizeof path);
        snprintf(word, sizeof word, "no %s", fields[i]);
        expect_load_error(path, "model.layers.0.mlp.down_proj.weight", word, NULL);
    }
    json_t *h = good_header(fx);
    json_object_set_new(h, "model.norm.weight", json_string("F32"));
    write_with_header(fx, "not-object.safetensors", h, path, sizeof path);
    expect_load_error(path, "model.norm.weight", "not an object", NULL);
}

static void test_dtype_not_f32(void **state)
{
    Fixture *fx = *state;
    json_t *h = good_header(fx);
    json_object_set_new(json_object_get(h, "model.layers.1.self_attn.v_proj.weight"), "dtype", json_string("BF16"));
    char path[256];
    write_with_header(fx, "bf16.safetensors", h, path, sizeof path);
    expect_load_error(path, "model.layers.1.self_attn.v_proj.weight", "BF16: only F32 checkpoints are supported",
                      NULL);
}

static void test_bad_offsets(void **state)
{
    Fixture *fx = *state;
    char path[256];
    /* The data cut in half: the later tensors point past its end. */
    case_path(fx, path, sizeof path, "cut.safetensors");
    write_bytes(path, fx->file, fx->data_start + (fx->file_len - fx->data_start) / 2);
    expect_load_error(path, "data_offsets", "outside the data", NULL);

    /* One byte short of shape x 4. */
    json_t *h = good_header(fx);
    json_t *off = json_object_get(json_object_get(h, "model.layers.0.self_attn.o_proj.weight"), "data_offsets");
    json_array_set_new(off, 1, json_integer(json_integer_value(json_array_get(off, 1)) - 1));
    write_with_header(fx, "short-span.safetensors", h, path, sizeof path);
    expect_load_error(path, "model.layers.0.self_attn.o_proj.weight", "data_offsets", "4 x its size", NULL);

    /* end before begin, negative, and not a pair. */
    json_t *bad[] = {json_pack("[i, i]", 100, 50), json_pack("[i, i]", -4, 0), json_pack("[i]", 0),
                     json_pack("[s, i]", "0", 4)};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h = good_header(fx);
        json_object_set_new(json_object_get(h, "model.norm.weight"), "data_offsets", bad[i]);
        write_with_header(fx, "bad-offsets.safetensors", h, path, sizeof path);
        expect_load_error(path, "model.norm.weight", "data_offsets", NULL);
    }
}

static void test_wrong_shape(void **state)
{
    Fixture *fx = *state;
    char path[256];
    /* Same element count, so the offsets still match: only the shape is wrong. */
    json_t *h = good_header(fx);
    json_object_set_new(json_object_get(h, "model.layers.0.self_attn.k_proj.weight"), "shape",
                        json_pack("[i, i]", 64, 32));
    write_with_header(fx, "transposed.safetensors", h, path, sizeof path);
    expect_load_error(path, "model.layers.0.self_attn.k_proj.weight", "shape [64, 32]", "expected [32, 64]", NULL);

    h = good_header(fx);
    json_object_set_new(json_object_get(h, "model.layers.1.input_layernorm.weight"), "shape",
                        json_pack("[i, i]", 1, 64));
    write_with_header(fx, "norm-2d.safetensors", h, path, sizeof path);
    expect_load_error(path, "model.layers.1.input_layernorm.weight", "shape [1, 64]", "expected [64]", NULL);

    /* A shape that is not a list of sizes. */
    h = good_header(fx);
    json_object_set_new(json_object_get(h, "model.norm.weight"), "shape", json_pack("[s]", "64"));
    write_with_header(fx, "shape-string.safetensors", h, path, sizeof path);
    expect_load_error(path, "model.norm.weight", "shape", NULL);

    /* The whole file written for a wider model than its metadata says. */
    h = good_header(fx);
    json_object_set_new(json_object_get(h, "__metadata__"), "intermediate_size", json_string("88"));
    write_with_header(fx, "narrow-meta.safetensors", h, path, sizeof path);
    expect_load_error(path, "gate_proj.weight", "[176, 64]", "expected [88, 64]", NULL);
}

static void test_missing_tensor(void **state)
{
    Fixture *fx = *state;
    json_t *h = good_header(fx);
    assert_int_equal(0, json_object_del(h, "model.layers.1.mlp.up_proj.weight"));
    char path[256];
    write_with_header(fx, "missing.safetensors", h, path, sizeof path);
    expect_load_error(path, "missing tensor", "model.layers.1.mlp.up_proj.weight", NULL);

    /* Two layers in the file, three in the metadata. */
    h = good_header(fx);
    json_object_set_new(json_object_get(h, "__metadata__"), "num_hidden_layers", json_string("3"));
    write_with_header(fx, "few-layers.safetensors", h, path, sizeof path);
    expect_load_error(path, "missing tensor", "model.layers.2.", NULL);
}

static void test_unknown_tensor(void **state)
{
    Fixture *fx = *state;
    char path[256];
    json_t *h = good_header(fx);
    json_object_set_new(h, "model.layers.0.self_attn.q_proj.bias",
                        json_pack("{s:s, s:[i], s:[i, i]}", "dtype", "F32", "shape", 64, "data_offsets", 0, 256));
    write_with_header(fx, "extra.safetensors", h, path, sizeof path);
    expect_load_error(path, "unknown tensor", "model.layers.0.self_attn.q_proj.bias", NULL);

    /* Three layers in the file, two in the metadata: layer 2 must not be dropped silently. */
    h = good_header(fx);
    json_object_set(h, "model.layers.2.mlp.down_proj.weight",
                    json_object_get(h, "model.layers.1.mlp.down_proj.weight"));
    write_with_header(fx, "more-layers.safetensors", h, path, sizeof path);
    expect_load_error(path, "unknown tensor", "model.layers.2.mlp.down_proj.weight", NULL);
}

static void test_bad_metadata(void **state)
{
    Fixture *fx = *state;
    char path[256];
    json_t *h = good_header(fx);
    json_object_del(h, "__metadata__");
    write_with_header(fx, "no-meta.safetensors", h, path, sizeof path);
    expect_load_error(path, "__metadata__", NULL);

    h = good_header(fx);
    json_object_set_new(h, "__metadata__", json_string("hidden_size=64"));
    write_with_header(fx, "meta-string.safetensors", h, path, sizeof path);
    expect_load_error(path, "__metadata__ is not an object", NULL);

    const char *keys[] = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                          "num_key_value_heads", "vocab_size", "rms_norm_eps", "rope_theta"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        h = good_header(fx);
        json_object_del(json_object_get(h, "__metadata__"), keys[i]);
        write_with_header(fx, "meta-missing.safetensors", h, path, sizeof path);
        expect_load_error(path, keys[i], "lacks", NULL);

        const char *bad_values[] = {"abc", "", "64x", "-1", "0", "1e999", "nan"};
        for (size_t j = 0; j < sizeof bad_values / sizeof bad_values[0]; j++) {
            h = good_header(fx);
            json_object_set_new(json_object_get(h, "__metadata__"), keys[i], json_string(bad_values[j]));
            write_with_header(fx, "meta-bad.safetensors", h, path, sizeof path);
            expect_load_error(path, keys[i], NULL);
        }
        h = good_header(fx);
        json_object_set_new(json_object_get(h, "__metadata__"), keys[i], json_integer(64));
        write_with_header(fx, "meta-int.safetensors", h, path, sizeof path);
        expect_load_error(path, keys[i], "not a string", NULL);
    }
    h = good_header(fx);
    json_object_set_new(json_object_get(h, "__metadata__"), "num_hidden_layers", json_string("100000000"));
    write_with_header(fx, "meta-huge.safetensors", h, path, sizeof path);
    expect_load_error(path, "num_hidden_layers", NULL);
}

static void test_config_check_fails(void **state)
{
    Fixture *fx = *state;
    char path[256];
    json_t *h = good_header(fx);
    json_object_set_new(json_object_get(h, "__metadata__"), "num_key_value_heads", json_string("3"));
    write_with_header(fx, "gqa-bad.safetensors", h, path, sizeof path);
    expect_load_error(path, "bad config", "num_key_value_heads", NULL);

    h = good_header(fx);
    json_object_set_new(json_object_get(h, "__metadata__"), "num_attention_heads", json_string("6"));
    write_with_header(fx, "heads-bad.safetensors", h, path, sizeof path);
    expect_load_error(path, "bad config", "hidden_size", NULL);
}

/* Every prefix of the file and random damage to the header: refused or loaded, never a crash or
 * an out-of-bounds read (run under ASan by `make check-asan`). */
static void test_damage_never_crashes(void **state)
{
    Fixture *fx = *state;
    char path[256], err[512];
    case_path(fx, path, sizeof path, "damaged.safetensors");
    for (size_t len = 0; len < fx->file_len; len += (len < fx->data_start + 64 ? 1 : 4093)) {
        write_bytes(path, fx->file, len);
        expect_load_error(path, NULL);
    }
    unsigned char *copy = malloc(fx->file_len);
    assert_non_null(copy);
    uint64_t seed = 99;
    const char junk[] = "{}[]\",:0123456789-eE. \\aFB";
    for (int round = 0; round < 300; round++) {
        memcpy(copy, fx->file, fx->file_len);
        int hits = 1 + (int)(splitmix64(&seed) % 4);
        for (int k = 0; k < hits; k++) {
            size_t pos = 8 + splitmix64(&seed) % (fx->data_start - 8);
            copy[pos] = (unsigned char)junk[splitmix64(&seed) % (sizeof junk - 1)];
        }
        write_bytes(path, copy, fx->file_len);
        ModelConfig c;
        float *params = NULL;
        if (safetensors_load_model(path, &c, &params, err, sizeof err) == 0) {
            assert_non_null(params);
            free(params);
        } else {
            assert_null(params);
            assert_non_null(strstr(err, path));
        }
    }
    free(copy);
}

/* ---------------------------------------------------------------- writing */

static void test_atomic_failure_leaves_nothing(void **state)
{
    Fixture *fx = *state;
    char err[512] = "";
    const char *bad = "/proc/labench/x.safetensors";
    assert_int_equal(-1, safetensors_save_model(bad, &fx->cfg, fx->params, err, sizeof err));
    assert_non_null(strstr(err, "/proc/labench"));
    assert_int_equal(-1, access(bad, F_OK));
    assert_int_equal(-1, access("/proc/labench", F_OK));

    /* The target is a folder: everything is written, the rename fails, the temporary goes. */
    char path[256];
    case_path(fx, path, sizeof path, "a-folder.safetensors");
    assert_int_equal(0, mkdir(path, 0777));
    err[0] = 0;
    assert_int_equal(-1, safetensors_save_model(path, &fx->cfg, fx->params, err, sizeof err));
    assert_non_null(strstr(err, path));
    assert_int_equal(0, count_files(fx->dir, ".tmp."));
    struct stat st;
    assert_int_equal(0, stat(path, &st));
    assert_true(S_ISDIR(st.st_mode));
    rmdir(path);

    /* A config that cannot be saved writes nothing. */
    ModelConfig c = fx->cfg;
    c.kv_heads = 3;
    case_path(fx, path, sizeof path, "bad-config.safetensors");
    assert_int_equal(-1, safetensors_save_model(path, &c, fx->params, err, sizeof err));
    assert_int_equal(-1, access(path, F_OK));
    assert_int_equal(0, count_files(fx->dir, ".tmp."));
}

static void test_generic_write(void **state)
{
    Fixture *fx = *state;
    const float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {-1.5f, 0.25f, 1e-30f};
    StTensor t[2] = {{"grad.a", 2, {2, 3}, a}, {"grad.b", 1, {3, 0}, b}};
    const char *meta[] = {"step", "7", "loss", "2.5", NULL};
    char path[256], err[512] = "";
    case_path(fx, path, sizeof path, "grads.safetensors");
    assert_int_equal(0, safetensors_write(path, t, 2, meta, err, sizeof err));

    size_t len;
    unsigned char *buf = read_all(path, &len);
    uint64_t n = read_le64(buf);
    assert_int_equal(0, n % 8);
    assert_int_equal(8 + n + sizeof a + sizeof b, len);
    json_error_t jerr;
    json_t *h = json_loadb((const char *)buf + 8, n, 0, &jerr);
    assert_non_null(h);
    assert_string_equal("7", json_string_value(json_object_get(json_object_get(h, "__metadata__"), "step")));
    assert_shape(h, "grad.a", 2, 2, 3);
    assert_shape(h, "grad.b", 1, 3, 0);
    const json_t *off = json_object_get(json_object_get(h, "grad.b"), "data_offsets");
    assert_int_equal(sizeof a, json_integer_value(json_array_get(off, 0)));
    assert_int_equal(sizeof a + sizeof b, json_integer_value(json_array_get(off, 1)));
    assert_memory_equal(buf + 8 + n, a, sizeof a);
    assert_memory_equal(buf + 8 + n + sizeof a, b, sizeof b);
    json_decref(h);
    free(buf);
    remove(path);

    /* Without metadata there is no __metadata__ entry. */
    assert_int_equal(0, safetensors_write(path, t, 1, NULL, err, sizeof err));
    buf = read_all(path, &len);
    h = json_loadb((const char *)buf + 8, read_le64(buf), 0, &jerr);
    assert_non_null(h);
    assert_null(json_object_get(h, "__metadata__"));
    assert_int_equal(1, json_object_size(h));
    json_decref(h);
    free(buf);
    remove(path);

    /* Refused, and nothing written: a repeated name, a bad ndim, a key without a value. */
    StTensor dup[2] = {t[0], t[0]};
    assert_int_equal(-1, safetensors_write(path, dup, 2, NULL, err, sizeof err));
    assert_non_null(strstr(err, "twice"));
    StTensor three = {"x", 3, {1, 1}, a};
    assert_int_equal(-1, safetensors_write(path, &three, 1, NULL, err, sizeof err));
    assert_non_null(strstr(err, "ndim"));
    StTensor not_utf8 = {"grad.\xff", 1, {3, 0}, b};
    assert_int_equal(-1, safetensors_write(path, &not_utf8, 1, NULL, err, sizeof err));
    assert_non_null(strstr(err, "UTF-8"));
    StTensor huge = {"huge", 2, {(int64_t)1 << 40, (int64_t)1 << 40}, b};
    assert_int_equal(-1, safetensors_write(path, &huge, 1, NULL, err, sizeof err));
    assert_non_null(strstr(err, "too large"));
    const char *odd[] = {"step", NULL};
    assert_int_equal(-1, safetensors_write(path, t, 2, odd, err, sizeof err));
    assert_non_null(strstr(err, "step"));
    assert_int_equal(-1, access(path, F_OK));
    assert_int_equal(0, count_files(fx->dir, ".tmp."));
}

/* Issue 16, defect 5: tensors whose byte ranges overlap passed the checks, so a small file could
 * declare a large model (and the loader allocate for it). The ranges must cover the data exactly,
 * once, as the format specifies. */
static void test_ranges_cover_the_data_once(void **state)
{
    Fixture *fx = *state;
    char path[256];
    const char *a = "model.layers.0.input_layernorm.weight", *b = "model.layers.0.post_attention_layernorm.weight";
    /* b reads a's bytes; its own are left to no tensor. */
    json_t *h = good_header(fx);
    json_object_set(json_object_get(h, b), "data_offsets", json_object_get(json_object_get(h, a), "data_offsets"));
    write_with_header(fx, "overlap.safetensors", h, path, sizeof path);
    expect_load_error(path, "overlap", a, b, NULL);

    /* Every tensor of a shape on the bytes of the first of that shape, the data cut after the
     * largest: a file much smaller than the parameters it declares. */
    h = good_header(fx);
    const char *key;
    json_t *v;
    json_t *first = json_object();
    uint64_t end = 0;
    json_object_foreach(h, key, v) {
        if (strcmp(key, "__metadata__") == 0) continue;
        char *shape = json_dumps(json_object_get(v, "shape"), JSON_COMPACT);
        json_t *seen = json_object_get(first, shape);
        if (seen)
            json_object_set(v, "data_offsets", seen);
        else
            json_object_set(first, shape, json_object_get(v, "data_offsets"));
        uint64_t e = (uint64_t)json_integer_value(json_array_get(json_object_get(v, "data_offsets"), 1));
        if (e > end) end = e;
        free(shape);
    }
    json_decref(first);
    write_with_header(fx, "shared.safetensors", h, path, sizeof path);
    size_t len;
    unsigned char *bytes = read_all(path, &len);
    size_t data_start = 8 + (size_t)read_le64(bytes);
    write_bytes(path, bytes, data_start + end);
    free(bytes);
    expect_load_error(path, "overlap", NULL);

    /* Bytes after the last tensor. */
    bytes = malloc(fx->file_len + 8);
    assert_non_null(bytes);
    memcpy(bytes, fx->file, fx->file_len);
    memset(bytes + fx->file_len, 0, 8);
    case_path(fx, path, sizeof path, "trailing.safetensors");
    write_bytes(path, bytes, fx->file_len + 8);
    free(bytes);
    expect_load_error(path, "at the end of the data belong to no tensor", NULL);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test_fifo_refused: safetensors_load_model blocked on a FIFO\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(3);
}

/* Issue 16, defect 6: --load-model on a FIFO with no writer hung in open(2). A checkpoint is
 * read with seeks, so a FIFO is refused at once. */
static void test_fifo_refused(void **state)
{
    Fixture *fx = *state;
    char path[256];
    case_path(fx, path, sizeof path, "fifo.safetensors");
    assert_int_equal(0, mkfifo(path, 0600));
    signal(SIGALRM, on_alarm);
    alarm(10);
    expect_load_error(path, "pipe or FIFO", "regular file", NULL);
    alarm(0);
    expect_load_error("/dev/zero", "character device", NULL);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_other_shape),
        cmocka_unit_test(test_header_layout),
        cmocka_unit_test(test_any_order),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_too_short),
        cmocka_unit_test(test_header_length_past_end),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_entry_missing_field),
        cmocka_unit_test(test_dtype_not_f32),
        cmocka_unit_test(test_bad_offsets),
        cmocka_unit_test(test_wrong_shape),
        cmocka_unit_test(test_missing_tensor),
        cmocka_unit_test(test_unknown_tensor),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_config_check_fails),
        cmocka_unit_test(test_damage_never_crashes),
        cmocka_unit_test(test_atomic_failure_leaves_nothing),
        cmocka_unit_test(test_generic_write),
        cmocka_unit_test(test_ranges_cover_the_data_once),
        cmocka_unit_test(test_fifo_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
