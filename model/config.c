#include "model/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const MODEL_PRESETS[] = {"tiny", "small", "1b", "7b", "13b", "chatglm3-6b", NULL};

int model_preset(const char *name, ModelConfig *c)
{
    memset(c, 0, sizeof *c);
    c->rms_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    if (strcmp(name, "tiny") == 0) {
        /* CPU tests and the CPU default: a few ms per 1k-token micro-batch on two cores. */
        *c = (ModelConfig){"tiny", 256, 64, 176, 2, 4, 2, 16, 1e-5f, 10000.0f};
    } else if (strcmp(name, "small") == 0) {
        /* GPT-2-small width, Llama layout. */
        *c = (ModelConfig){"small", 32000, 768, 2048, 12, 12, 12, 64, 1e-5f, 10000.0f};
    } else if (strcmp(name, "1b") == 0) {
        /* TinyLlama-1.1B shape (GQA 32/4). */
        *c = (ModelConfig){"1b", 32000, 2048, 5632, 22, 32, 4, 64, 1e-5f, 10000.0f};
    } else if (strcmp(name, "7b") == 0) {
        /* Llama-2-7B shape. */
        *c = (ModelConfig){"7b", 32000, 4096, 11008, 32, 32, 32, 128, 1e-5f, 10000.0f};
    } else if (strcmp(name, "13b") == 0) {
        /* Llama-2-13B shape (meta-llama/Llama-2-13b-hf config.json). */
        *c = (ModelConfig){"13b", 32000, 5120, 13824, 40, 40, 40, 128, 1e-5f, 10000.0f};
    } else if (strcmp(name, "chatglm3-6b") == 0) {
        /* ChatGLM3-6B's shape in Llama terms (THUDM/chatglm3-6b config.json: hidden 4096, 28 layers,
         * ffn 13696, 32 heads, multi-query with 2 groups, padded vocab 65024); its qkv bias and
         * 2D-half RoPE are left out: a few flops per token in billions. For the device model. */
        *c = (ModelConfig){"chatglm3-6b", 65024, 4096, 13696, 28, 32, 2, 128, 1e-5f, 10000.0f};
    } else {
        return -1;
    }
    return 0;
}

int model_config_check(const ModelConfig *c, char *err, size_t errlen)
{
    if (c->vocab < 2 || c->hidden < 2 || c->intermediate < 1 || c->layers < 1 || c->heads < 1 ||
        c->kv_heads < 1 || c->head_dim < 2) {
        snprintf(err, errlen, "model shape has a zero or negative dimension");
        return -1;
    }
    if (c->heads % c->kv_heads != 0) {
        snprintf(err, errlen, "num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)",
                 c->heads, c->kv_heads);
        return -1;
    }
    if (c->head_dim % 2 != 0 || c->head_dim * c->heads != c->hidden) {
        snprintf(err, errlen, "hidden_size (%d) must be num_attention_heads (%d) x an even head dim",
                 c->hidden, c->heads);
        return -1;
    }
    return 0;
}

static void add_tensor(ParamLayout *l, size_t *off, const char *name, int rows, int cols)
{
    ParamTensor *t = &l->tensors[l->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->offset = *off;
    t->rows = rows;
    t->cols = cols;
    t->n_parts = 1;
    snprintf(t->part_names[0], sizeof t->part_names[0], "%s", name);
    t->part_rows[0] = rows;
    *off += (size_t)rows * (size_t)cols;
}

int param_layout_make(const ModelConfig *c, ParamLayout *l)
{
    memset(l, 0, sizeof *l);
    l->tensors = calloc((size_t)(3 + c->layers * P_PER_LAYER), sizeof *l->tensors);
    if (!l->tensors) return -1;
    size_t off = 0;
    const int C = c->hidden, F = c->intermediate, D = c->head_dim;
    const int qkv_rows = (c->heads + 2 * c->kv_heads) * D;
    char name[96];
    add_tensor(l, &off, "model.embed_tokens.weight", c->vocab, C);
    for (int i = 0; i < c->layers; i++) {
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", i);
        add_tensor(l, &off, name, 1, C);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.qkv_proj.weight", i);
        add_tensor(l, &off, name, qkv_rows, C);
        ParamTensor *t = &l->tensors[l->n_tensors - 1];
        t->n_parts = 3;
        snprintf(t->part_names[0], sizeof t->part_names[0], "model.layers.%d.self_attn.q_proj.weight", i);
        snprintf(t->part_names[1], sizeof t->part_names[1], "model.layers.%d.self_attn.k_proj.weight", i);
        snprintf(t->part_names[2], sizeof t->part_names[2], "model.layers.%d.self_attn.v_proj.weight", i);
        t->part_rows[0] = c->heads * D;
        t->part_rows[1] = c->kv_heads * D;
        t->part_rows[2] = c->kv_heads * D;
        snprintf(name, sizeof name, "model.layers.%d.self_attn.o_proj.weight", i);
        add_tensor(l, &off, name, C, c->heads * D);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", i);
        add_tensor(l, &off, name, 1, C);
        snprintf(name, sizeof name, "model.layers.%d.mlp.gate_up_proj.weight", i);
        add_tensor(l, &off, name, 2 * F, C);
        t = &l->tensors[l->n_tensors - 1];
        t->n_parts = 2;
        snprintf(t->part_names[0], sizeof t->part_names[0], "model.layers.%d.mlp.gate_proj.weight", i);
        snprintf(t->part_names[1], sizeof t->part_names[1], "model.layers.%d.mlp.up_proj.weight", i);
        t->part_rows[0] = F;
        t->part_rows[1] = F;
        snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", i);
        add_tensor(l, &off, name, C, F);
    }
    add_tensor(l, &off, "model.norm.weight", 1, C);
    add_tensor(l, &off, "lm_head.weight", c->vocab, C);
    l->n_params = off;
    return 0;
}

void param_layout_free(ParamLayout *l)
{
    free(l->tensors);
    memset(l, 0, sizeof *l);
}

size_t model_param_count(const ModelConfig *c)
{
    const size_t C = (size_t)c->hidden, F = (size_t)c->intermediate, D = (size_t)c->head_dim;
    size_t per_layer = 2 * C + (size_t)(c->heads + 2 * c->kv_heads) * D * C + C * (size_t)c->heads * D + 3 * F * C;
    return 2 * (size_t)c->vocab * C + C + (size_t)c->layers * per_layer;
}
