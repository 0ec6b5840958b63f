/* safetensors writer and the model checkpoint loader (see safetensors.h for the format). */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L   /* fileno, fseeko, fstat */
#endif

#include "model/safetensors.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/input_file.h"
#include "common/parse.h"

/* Tensor data is written and read as the host's floats. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define MAX_DIMS 8

/* ---------------------------------------------------------------- writing */

/* The integer config keys, in the order they are written, with their field and the largest value
 * a file may give (bounds that keep the layout's int and size_t arithmetic far from overflow,
 * and its tensor list small). */
static const struct {
    const char *key;
    size_t offset;
    int max;
} CONFIG_INTS[] = {
    {"vocab_size", offsetof(ModelConfig, vocab), 1 << 24},
    {"hidden_size", offsetof(ModelConfig, hidden), 1 << 20},
    {"intermediate_size", offsetof(ModelConfig, intermediate), 1 << 22},
    {"num_hidden_layers", offsetof(ModelConfig, layers), 1 << 12},
    {"num_attention_heads", offsetof(ModelConfig, heads), 1 << 16},
    {"num_key_value_heads", offsetof(ModelConfig, kv_heads), 1 << 16},
};
enum { N_CONFIG_INTS = (int)(sizeof CONFIG_INTS / sizeof CONFIG_INTS[0]) };

static int *config_int(ModelConfig *c, int i) { return (int *)((char *)c + CONFIG_INTS[i].offset); }
static const int *config_int_const(const ModelConfig *c, int i)
{
    return (const int *)((const char *)c + CONFIG_INTS[i].offset);
}

/* The shortest decimal that reads back (through strtod, as the loader does) as exactly v;
 * whole numbers without an exponent ("10000", not "1e+04"). */
static void format_float(char *buf, size_t len, float v)
{
    if (v > -1e15f && v < 1e15f && v == (float)(long long)v) {
        snprintf(buf, len, "%lld", (long long)v);
        return;
    }
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, len, "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v) return;
    }
}

static int write_all(FILE *f, const void *p, size_t size, size_t count)
{
    return count == 0 || fwrite(p, size, count, f) == count ? 0 : -1;
}

int safetensors_write(const char *path, const StTensor *tensors, int n, const char *const *meta_kv,
                      char *err, size_t errlen)
{
    if (n < 0 || (n > 0 && !tensors)) return path_error(err, errlen, path, "no tensors given");

    json_t *header = json_object();
    if (!header) return path_error(err, errlen, path, "out of memory");
    int rc = -1;

    if (meta_kv && meta_kv[0]) {
        json_t *meta = json_object();
        json_object_set_new(header, "__metadata__", meta);
        for (int i = 0; meta_kv[i]; i += 2) {
            if (!meta_kv[i + 1]) {
                path_error(err, errlen, path, "metadata key '%s' has no value", meta_kv[i]);
                goto done;
            }
            if (json_object_set_new(meta, meta_kv[i], json_string(meta_kv[i + 1])) != 0) {
                path_error(err, errlen, path, "metadata key '%s' or its value is not UTF-8 text", meta_kv[i]);
                goto done;
            }
        }
    }

    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const StTensor *t = &tensors[i];
        if (!t->name || !t->name[0] || strcmp(t->name, "__metadata__") == 0) {
            path_error(err, errlen, path, "tensor %d has no usable name", i);
            goto done;
        }
        if (json_object_get(header, t->name)) {
            path_error(err, errlen, path, "tensor '%s' appears twice", t->name);
            goto done;
        }
        if (t->ndim < 1 || t->ndim > 2) {
            path_error(err, errlen, path, "tensor '%s': ndim %d (only 1 or 2 are written)", t->name, t->ndim);
            goto done;
        }
        uint64_t count = 1;
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) {
            /* At most 2^58 elements in all, so byte offsets fit in a json_int_t. */
            if (t->shape[d] < 0 || (t->shape[d] > 0 && count > ((uint64_t)1 << 58) / (uint64_t)t->shape[d])) {
                json_decref(shape);
                path_error(err, errlen, path, "tensor '%s': bad or too large dimension %" PRId64, t->name, t->shape[d]);
                goto done;
            }
            json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
            count *= (uint64_t)t->shape[d];
        }
        if (count > 0 && !t->data) {
            json_decref(shape);
            path_error(err, errlen, path, "tensor '%s' has no data", t->name);
            goto done;
        }
        json_t *entry = json_object();
        json_object_set_new(entry, "dtype", json_string("F32"));
        json_object_set_new(entry, "shape", shape);
        json_t *offsets = json_array();
        json_array_append_new(offsets, json_integer((json_int_t)offset));
        offset += count * sizeof(float);
        json_array_append_new(offsets, json_integer((json_int_t)offset));
        json_object_set_new(entry, "data_offsets", offsets);
        if (json_object_set_new(header, t->name, entry) != 0) {
            path_error(err, errlen, path, "tensor name '%s' is not UTF-8 text", t->name);
            goto done;
        }
    }

    char *text = json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) {
        path_error(err, errlen, path, "cannot format the header (out of memory?)");
        goto done;
    }
    size_t text_len = strlen(text);
    size_t header_len = (text_len + 7) / 8 * 8;   /* padded with spaces to a multiple of 8 */
    unsigned char len_bytes[8];
    for (int b = 0; b < 8; b++) len_bytes[b] = (unsigned char)((uint64_t)header_len >> (8 * b));

    AtomicFile af;
    if (atomic_open(&af, path, err, errlen) != 0) {
        free(text);
        goto done;
    }
    int bad = write_all(af.f, len_bytes, 1, 8) || write_all(af.f, text, 1, text_len);
    for (size_t k = text_len; k < header_len && !bad; k++) bad = fputc(' ', af.f) == EOF;
    for (int i = 0; i < n && !bad; i++) {
        const StTensor *t = &tensors[i];
        size_t count = (size_t)t->shape[0] * (t->ndim == 2 ? (size_t)t->shape[1] : 1);
        bad = write_all(af.f, t->data, sizeof(float), count);
    }
    free(text);
    if (bad) {
        path_error(err, errlen, path, "write failed: %s", strerror(errno));
        atomic_abort(&af);
        goto done;
    }
    rc = atomic_commit(&af, err, errlen);
done:
    json_decref(header);
    return rc;
}

/* The norms are the 1-D tensors of the layout; everything else is a matrix [out, in]. */
static int is_vector_tensor(const ModelConfig *c, int index)
{
    if (index == param_final_norm(c)) return 1;
    if (index < param_layer(0, 0) || index >= param_final_norm(c)) return 0;
    int which = (index - param_layer(0, 0)) % P_PER_LAYER;
    return which == P_LN1 || which == P_LN2;
}

int safetensors_save_model(const char *path, const ModelConfig *c, const float *params, char *err,
                           size_t errlen)
{
    char why[256];
    if (model_config_check(c, why, sizeof why) != 0) return path_error(err, errlen, path, "%s", why);
    for (int i = 0; i < N_CONFIG_INTS; i++)
        if (*config_int_const(c, i) > CONFIG_INTS[i].max)
            return path_error(err, errlen, path, "%s %d is more than a checkpoint may hold (%d)", CONFIG_INTS[i].key,
                              *config_int_const(c, i), CONFIG_INTS[i].max);
    ParamLayout l;
    if (param_layout_make(c, &l) != 0) return path_error(err, errlen, path, "out of memory");

    int n_parts = 0;
    for (int i = 0; i < l.n_tensors; i++) n_parts += l.tensors[i].n_parts;
    StTensor *list = calloc((size_t)n_parts, sizeof *list);
    if (!list) {
        param_layout_free(&l);
        return path_error(err, errlen, path, "out of memory");
    }
    int k = 0;
    for (int i = 0; i < l.n_tensors; i++) {
        const ParamTensor *t = &l.tensors[i];
        size_t row = 0;
        for (int p = 0; p < t->n_parts; p++, k++) {
            list[k].name = t->part_names[p];
            list[k].data = params + t->offset + row * (size_t)t->cols;
            if (is_vector_tensor(c, i)) {
                list[k].ndim = 1;
                list[k].shape[0] = t->cols;
            } else {
                list[k].ndim = 2;
                list[k].shape[0] = t->part_rows[p];
                list[k].shape[1] = t->cols;
            }
            row += (size_t)t->part_rows[p];
        }
    }

    char values[N_CONFIG_INTS + 2][32];
    const char *meta[2 * (N_CONFIG_INTS + 3) + 1];
    int m = 0;
    for (int i = 0; i < N_CONFIG_INTS; i++) {
        snprintf(values[i], sizeof values[i], "%d", *config_int_const(c, i));
        meta[m++] = CONFIG_INTS[i].key;
        meta[m++] = values[i];
    }
    format_float(values[N_CONFIG_INTS], sizeof values[0], c->rms_eps);
    meta[m++] = "rms_norm_eps";
    meta[m++] = values[N_CONFIG_INTS];
    format_float(values[N_CONFIG_INTS + 1], sizeof values[0], c->rope_theta);
    meta[m++] = "rope_theta";
    meta[m++] = values[N_CONFIG_INTS + 1];
    meta[m++] = "format";
    meta[m++] = "pt";
    meta[m] = NULL;

    int rc = safetensors_write(path, list, n_parts, meta, err, errlen);
    free(list);
    param_layout_free(&l);
    return rc;
}

/* ---------------------------------------------------------------- reading */

/* One header entry, checked against the file but not yet against the config. */
typedef struct {
    const char *name;      /* borrowed from the header */
    int ndim;
    int64_t shape[MAX_DIMS];
    uint64_t begin, end;   /* relative to the start of the data */
    int used;              /* matched by a tensor of the config */
} Entry;

static void format_shape(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && used < len; d++)
        used += (size_t)snprintf(buf + used, len - used, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

/* A JSON integer >= 0, or -1. */
static int64_t json_nonneg(const json_t *v)
{
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    return x < 0 ? -1 : (int64_t)x;
}

static int check_entry(const char *path, const char *name, const json_t *entry, uint64_t data_size,
                       Entry *info, char *err, size_t errlen)
{
    name = QUOTE(name);   /* only messages use it here: a readable excerpt of any key */
    if (!json_is_object(entry)) return path_error(err, errlen, path, "tensor '%s': entry is not an object", name);
    const json_t *dtype = json_object_get(entry, "dtype");
    const json_t *shape = json_object_get(entry, "shape");
    const json_t *offsets = json_object_get(entry, "data_offsets");
    if (!dtype) return path_error(err, errlen, path, "tensor '%s': entry has no dtype", name);
    if (!shape) return path_error(err, errlen, path, "tensor '%s': entry has no shape", name);
    if (!offsets) return path_error(err, errlen, path, "tensor '%s': entry has no data_offsets", name);

    if (!json_is_string(dtype)) return path_error(err, errlen, path, "tensor '%s': dtype is not a string", name);
    if (strcmp(json_string_value(dtype), "F32") != 0)
        return path_error(err, errlen, path, "tensor '%s': dtype %.32s: only F32 checkpoints are supported", name,
                          json_string_value(dtype));

    if (!json_is_array(shape) || json_array_size(shape) > MAX_DIMS)
        return path_error(err, errlen, path, "tensor '%s': shape is not a list of at most %d sizes", name, MAX_DIMS);
    info->ndim = (int)json_array_size(shape);
    uint64_t count = 1;
    int overflow = 0;
    for (int d = 0; d < info->ndim; d++) {
        int64_t s = json_nonneg(json_array_get(shape, (size_t)d));
        if (s < 0)
            return path_error(err, errlen, path, "tensor '%s': shape holds a non-integer or negative size", name);
        info->shape[d] = s;
        if (s != 0 && count > UINT64_MAX / 4 / (uint64_t)s) overflow = 1;
        else count *= (uint64_t)s;
    }

    if (!json_is_array(offsets) || json_array_size(offsets) != 2)
        return path_error(err, errlen, path, "tensor '%s': data_offsets is not a pair [begin, end]", name);
    int64_t begin = json_nonneg(json_array_get(offsets, 0));
    int64_t end = json_nonneg(json_array_get(offsets, 1));
    if (begin < 0 || end < 0)
        return path_error(err, errlen, path, "tensor '%s': data_offsets holds a non-integer or negative offset", name);
    if (end < begin || (uint64_t)end > data_size)
        return path_error(err, errlen, path,
                          "tensor '%s': data_offsets [%" PRId64 ", %" PRId64 "] lie outside the data (%" PRIu64
                          " bytes)",
                          name, begin, end, data_size);
    if (overflow || (uint64_t)(end - begin) != count * 4) {
        char s[128];
        format_shape(s, sizeof s, info->ndim, info->shape);
        return path_error(err, errlen, path,
                          "tensor '%s': data_offsets [%" PRId64 ", %" PRId64 "] span %" PRId64
                          " bytes, but shape %s of F32 needs %s",
                          name, begin, end, end - begin, s, overflow ? "more than fits in a file" : "4 x its size");
    }
    info->begin = (uint64_t)begin;
    info->end = (uint64_t)end;
    return 0;
}

static const char *metadata_string(const char *path, const json_t *meta, const char *key, char *err,
                                   size_t errlen)
{
    const json_t *v = json_object_get(meta, key);
    if (!v) {
        path_error(err, errlen, path, "__metadata__ lacks config key '%s'", key);
        return NULL;
    }
    if (!json_is_string(v)) {
        path_error(err, errlen, path, "__metadata__ key '%s' is not a string", key);
        return NULL;
    }
    return json_string_value(v);
}

static int config_from_metadata(const char *path, const json_t *header, ModelConfig *c, char *err,
                                size_t errlen)
{
    const json_t *meta = json_object_get(header, "__metadata__");
    if (!meta) return path_error(err, errlen, path, "no __metadata__ (the model config) in the header");
    if (!json_is_object(meta)) return path_error(err, errlen, path, "__metadata__ is not an object");

    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "file");
    for (int i = 0; i < N_CONFIG_INTS; i++) {
        const char *key = CONFIG_INTS[i].key;
        const char *s = metadata_string(path, meta, key, err, errlen);
        if (!s) return -1;
        long long v;
        if (parse_i64(s, 1, CONFIG_INTS[i].max, &v) != 0)
            return path_error(err, errlen, path, "__metadata__ key '%s' = \"%.40s\" is not an integer in 1..%d", key, s,
                              CONFIG_INTS[i].max);
        *config_int(c, i) = (int)v;
    }
    const char *float_keys[] = {"rms_norm_eps", "rope_theta"};
    float *float_fields[] = {&c->rms_eps, &c->rope_theta};
    for (int i = 0; i < 2; i++) {
        const char *s = metadata_string(path, meta, float_keys[i], err, errlen);
        if (!s) return -1;
        double v;
        if (parse_f64(s, 0.0, FLT_MAX, &v) != 0 || (float)v <= 0.0f)
            return path_error(err, errlen, path, "__metadata__ key '%s' = \"%.40s\" is not a positive number",
                              float_keys[i], s);
        *float_fields[i] = (float)v;
    }
    c->head_dim = c->hidden / c->heads;

    char why[256];
    if (model_config_check(c, why, sizeof why) != 0) return path_error(err, errlen, path, "bad config: %s", why);
    /* Parameters at most 2^50: the layout's sizes then stay far from overflowing. */
    const double C = c->hidden, F = c->intermediate, HD = (double)c->heads * c->head_dim;
    const double kv = (double)c->kv_heads * c->head_dim;
    double total = 2.0 * c->vocab * C + C + c->layers * (2 * C + (HD + 2 * kv) * C + C * HD + 3 * F * C);
    if (total > 1125899906842624.0) return path_error(err, errlen, path, "bad config: %.3g parameters", total);
    return 0;
}

/* Reads the 8-byte length and the JSON header; *data_start = where tensor data begins. */
static int read_header(const char *path, FILE *f, uint64_t file_size, json_t **header, uint64_t *data_start,
                       char *err, size_t errlen)
{
    if (file_size < 8)
        return path_error(err, errlen, path, "file is %" PRIu64 " bytes, shorter than 8 bytes (not safetensors)",
                          file_size);
    unsigned char len_bytes[8];
    if (fread(len_bytes, 1, 8, f) != 8) return path_error(err, errlen, path, "cannot read: %s", strerror(errno));
    uint64_t n = 0;
    for (int b = 7; b >= 0; b--) n = (n << 8) | len_bytes[b];
    if (n > SAFETENSORS_MAX_HEADER)
        return path_error(err, errlen, path, "header length %" PRIu64 " is absurd (over 100 MB; not safetensors?)", n);
    if (n > file_size - 8)
        return path_error(err, errlen, path,
                          "header length %" PRIu64 " runs past the end of the file (%" PRIu64 " bytes)",
                          n, file_size);

    char *text = malloc(n ? n : 1);
    if (!text) return path_error(err, errlen, path, "out of memory for a %" PRIu64 "-byte header", n);
    if (fread(text, 1, n, f) != n) {
        free(text);
        return path_error(err, errlen, path, "cannot read the header: %s", strerror(errno));
    }
    json_error_t jerr;
    *header = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!*header)
        return path_error(err, errlen, path, "header is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                          jerr.column);
    if (!json_is_object(*header)) {
        json_decref(*header);
        *header = NULL;
        return path_error(err, errlen, path, "header is not a JSON object");
    }
    *data_start = 8 + n;
    return 0;
}

static int cmp_entry_range(const void *pa, const void *pb)
{
    const Entry *a = *(const Entry *const *)pa, *b = *(const Entry *const *)pb;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    return (a->end > b->end) - (a->end < b->end);
}

/* The format's rule: the tensors' byte ranges do not overlap and cover the data exactly, without
 * holes (so no byte is read twice and a small file cannot declare a large model). */
static int check_coverage(const char *path, Entry *entries, size_t n, uint64_t data_size, char *err, size_t errlen)
{
    const Entry **by = malloc((n ? n : 1) * sizeof *by);
    if (!by) return path_error(err, errlen, path, "out of memory");
    for (size_t i = 0; i < n; i++) by[i] = &entries[i];
    qsort(by, n, sizeof *by, cmp_entry_range);
    uint64_t at = 0;
    const Entry *prev = NULL;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const Entry *e = by[i];
        if (e->begin < at)
            rc = path_error(err, errlen, path,
                            "tensors '%s' [%" PRIu64 ", %" PRIu64 "] and '%s' [%" PRIu64 ", %" PRIu64
                            "] overlap: each byte of the data belongs to one tensor",
                            QUOTE(prev->name), prev->begin, prev->end, QUOTE(e->name), e->begin, e->end);
        else if (e->begin > at)
            rc = path_error(err, errlen, path,
                            "bytes [%" PRIu64 ", %" PRIu64 ") of the data belong to no tensor (before '%s')",
                            at, e->begin, QUOTE(e->name));
        at = e->end;
        prev = e;
    }
    if (rc == 0 && at != data_size)
        rc = path_error(err, errlen, path,
                        "bytes [%" PRIu64 ", %" PRIu64 ") at the end of the data belong to no tensor", at,
                        data_size);
    free(by);
    return rc;
}

/* Checks every entry and the tensor names against the config; on success *params holds the
 * data in ParamLayout order. */
static int load_tensors(const char *path, FILE *f, json_t *header, uint64_t data_start, uint64_t data_size,
                        const ModelConfig *c, float **params, char *err, size_t errlen)
{
    ParamLayout l;
    if (param_layout_make(c, &l) != 0) return path_error(err, errlen, path, "out of memory");
    int rc = -1;
    float *out = NULL;
    json_t *index = json_object();   /* tensor name -> position in entries */
    Entry *entries = calloc(json_object_size(header) + 1, sizeof *entries);
    if (!index || !entries) {
        path_error(err, errlen, path, "out of memory");
        goto done;
    }

    /* Each entry well formed and inside the data. */
    size_t n_entries = 0;
    const char *name;
    json_t *value;
    json_object_foreach(header, name, value) {
        if (strcmp(name, "__metadata__") == 0) continue;
        Entry *e = &entries[n_entries];
        if (check_entry(path, name, value, data_size, e, err, errlen) != 0) goto done;
        e->name = name;
        json_object_set_new(index, name, json_integer((json_int_t)n_entries));
        n_entries++;
    }

    /* Every tensor of the config present, with its exact shape. */
    for (int i = 0; i < l.n_tensors; i++) {
        const ParamTensor *t = &l.tensors[i];
        for (int p = 0; p < t->n_parts; p++) {
            const char *part = t->part_names[p];
            const json_t *k = json_object_get(index, part);
            if (!k) {
                path_error(err, errlen, path, "missing tensor '%s'", part);
                goto done;
            }
            Entry *e = &entries[json_integer_value(k)];
            int64_t want[2] = {t->part_rows[p], t->cols};
            int want_ndim = 2;
            if (is_vector_tensor(c, i)) {
                want[0] = t->cols;
                want_ndim = 1;
            }
            if (e->ndim != want_ndim || e->shape[0] != want[0] || (want_ndim == 2 && e->shape[1] != want[1])) {
                char found_s[128], want_s[64];
                format_shape(found_s, sizeof found_s, e->ndim, e->shape);
                format_shape(want_s, sizeof want_s, want_ndim, want);
                path_error(err, errlen, path, "tensor '%s' has shape %s, expected %s for this config", part, found_s,
                           want_s);
                goto done;
            }
            e->used = 1;
        }
    }
    /* Nothing the config does not have: a different architecture must not half-load. */
    for (size_t k = 0; k < n_entries; k++) {
        if (!entries[k].used) {
            path_error(err, errlen, path, "unknown tensor '%s' (not part of a Llama model with this config)",
                       QUOTE(entries[k].name));
            goto done;
        }
    }

    if (check_coverage(path, entries, n_entries, data_size, err, errlen) != 0) goto done;

    /* The config's tensors are the file's only tensors and the data holds each once, so the
     * config declares exactly the data's size (the coverage implies it; this guards the
     * allocation below against any path that would not). */
    if ((uint64_t)l.n_params * sizeof(float) != data_size) {
        path_error(err, errlen, path,
                   "the config declares %zu parameters (%" PRIu64 " bytes of F32) but the file holds %" PRIu64
                   " bytes of tensor data",
                   l.n_params, (uint64_t)l.n_params * sizeof(float), data_size);
        goto done;
    }

    out = malloc(l.n_params * sizeof *out);
    if (!out) {
        path_error(err, errlen, path, "out of memory for %zu parameters", l.n_params);
        goto done;
    }
    for (int i = 0; i < l.n_tensors; i++) {
        const ParamTensor *t = &l.tensors[i];
        float *dst = out + t->offset;
        for (int p = 0; p < t->n_parts; p++) {
            const Entry *e = &entries[json_integer_value(json_object_get(index, t->part_names[p]))];
            size_t count = (size_t)t->part_rows[p] * (size_t)t->cols;
            if (fseeko(f, (off_t)(data_start + e->begin), SEEK_SET) != 0 || fread(dst, sizeof *dst, count, f) != count) {
                path_error(err, errlen, path, "cannot read tensor '%s': %s", e->name,
                           ferror(f) ? strerror(errno) : "the file ended early");
                goto done;
            }
            dst += count;
        }
    }
    *params = out;
    out = NULL;
    rc = 0;
done:
    free(out);
    free(entries);
    json_decref(index);
    param_layout_free(&l);
    return rc;
}

int safetensors_load_model(const char *path, ModelConfig *c, float **params, char *err, size_t errlen)
{
    *params = NULL;
    /* A checkpoint is read with seeks: a regular file only, and a FIFO is refused without
     * blocking in open(2). */
    struct stat st;
    int fd = open_regular_file(path, &st, err, errlen);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return path_error(err, errlen, path, "cannot open: %s", strerror(errno));
    }
    uint64_t file_size = (uint64_t)st.st_size;

    json_t *header = NULL;
    uint64_t data_start = 0;
    ModelConfig loaded;
    int rc = read_header(path, f, file_size, &header, &data_start, err, errlen);
    if (rc == 0) rc = config_from_metadata(path, header, &loaded, err, errlen);
    if (rc == 0) rc = load_tensors(path, f, header, data_start, file_size - data_start, &loaded, params, err, errlen);
    if (rc == 0) *c = loaded;
    json_decref(header);
    fclose(f);
    return rc;
}
