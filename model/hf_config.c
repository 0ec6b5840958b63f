/* Hugging Face config.json -> ModelConfig (model/hf_config.h). */
#include "model/hf_config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/input_file.h"
#include "common/parse.h"

/* model_type / architectures of configs whose layers are Llama's (RMSNorm, RoPE, GQA, SwiGLU). */
static const char *const LLAMA_TYPES[] = {"llama", "mistral", "qwen2", NULL};
static const char *const LLAMA_ARCHS[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", NULL};

static int in_list(const char *s, const char *const *list)
{
    for (int i = 0; s && list[i]; i++)
        if (strcmp(s, list[i]) == 0) return 1;
    return 0;
}

/* A positive integer field; def < 0: required. 0, or -1 with err. */
static int int_field(const json_t *root, const char *path, const char *key, long long def, int *out, char *err,
                     size_t errlen)
{
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (def < 0) {
            snprintf(err, errlen, "%s: field \"%s\" is missing (a Llama-family config.json has it)", path, key);
            return -1;
        }
        *out = (int)def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > (1 << 30)) {
        snprintf(err, errlen, "%s: field \"%s\" must be a positive integer", path, key);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int real_field(const json_t *root, const char *path, const char *key, double def, float *out, char *err,
                      size_t errlen)
{
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = (float)def;
        return 0;
    }
    if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v))) {
        snprintf(err, errlen, "%s: field \"%s\" must be a positive number", path, key);
        return -1;
    }
    *out = (float)json_number_value(v);
    return 0;
}

static int parse(const json_t *root, const char *path, ModelConfig *c, char *err, size_t errlen)
{
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: not a config.json (the top level is not an object)", path);
        return -1;
    }
    const char *type = json_string_value(json_object_get(root, "model_type"));
    int llama = in_list(type, LLAMA_TYPES);
    const json_t *archs = json_object_get(root, "architectures");
    size_t i;
    const json_t *a;
    json_array_foreach(archs, i, a) llama |= in_list(json_string_value(a), LLAMA_ARCHS);
    if (!llama) {
        snprintf(err, errlen,
                 "%s: field \"model_type\" is '%s': not of the Llama family (llama, mistral, qwen2; or "
                 "\"architectures\" LlamaForCausalLM, ...); for another model give a preset or write its "
                 "shape as a Llama config.json",
                 path, type ? type : "(missing)");
        return -1;
    }
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "file");
    if (int_field(root, path, "hidden_size", -1, &c->hidden, err, errlen) ||
        int_field(root, path, "intermediate_size", -1, &c->intermediate, err, errlen) ||
        int_field(root, path, "num_hidden_layers", -1, &c->layers, err, errlen) ||
        int_field(root, path, "num_attention_heads", -1, &c->heads, err, errlen) ||
        int_field(root, path, "num_key_value_heads", c->heads, &c->kv_heads, err, errlen) ||
        int_field(root, path, "head_dim", c->hidden / c->heads, &c->head_dim, err, errlen) ||
        int_field(root, path, "vocab_size", -1, &c->vocab, err, errlen) ||
        real_field(root, path, "rms_norm_eps", 1e-5, &c->rms_eps, err, errlen) ||
        real_field(root, path, "rope_theta", 10000.0, &c->rope_theta, err, errlen))
        return -1;
    char why[256];
    if (model_config_check(c, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    return 0;
}

int hf_config_load(const char *path, ModelConfig *out, char *err, size_t errlen)
{
    json_t *root = read_json_file(path, 1 << 20, err, errlen);
    if (!root) return -1;
    ModelConfig c;
    int rc = parse(root, input_name(path), &c, err, errlen);
    json_decref(root);
    if (rc == 0) *out = c;
    return rc;
}

int model_resolve(const char *name_or_path, ModelConfig *out, char *err, size_t errlen)
{
    size_t n = strlen(name_or_path);
    int is_file = strchr(name_or_path, '/') || (n > 5 && strcmp(name_or_path + n - 5, ".json") == 0);
    if (is_file) return hf_config_load(name_or_path, out, err, errlen);
    if (model_preset(name_or_path, out) == 0) return 0;
    char valid[256] = "";
    for (int i = 0; MODEL_PRESETS[i]; i++)
        snprintf(valid + strlen(valid), sizeof valid - strlen(valid), "%s%s", i ? ", " : "", MODEL_PRESETS[i]);
    snprintf(err, errlen, "--model: unknown preset '%s'; valid: %s, or a Llama-family config.json path", name_or_path,
             valid);
    return -1;
}
