/* A model's shape from a Hugging Face config.json of the Llama family, so `--model` takes a
 * user's own model as well as a preset name. */
#ifndef LABENCH_MODEL_HF_CONFIG_H
#define LABENCH_MODEL_HF_CONFIG_H

#include <stddef.h>

#include "model/config.h"

/* Reads path (a config.json): hidden_size, intermediate_size, num_hidden_layers,
 * num_attention_heads, num_key_value_heads (default: num_attention_heads), head_dim (default
 * hidden_size / num_attention_heads), vocab_size, rms_norm_eps, rope_theta (defaults 1e-5,
 * 10000). The file must say it is of the Llama family: model_type, or an architectures entry,
 * among llama, mistral, qwen2 (the same layer). 0, or -1 with "PATH: field: why" in err. */
int hf_config_load(const char *path, ModelConfig *out, char *err, size_t errlen);

/* A preset name, else a config.json path (anything ending in .json or holding a '/'). 0, or -1
 * with err naming the preset list or the file and field. */
int model_resolve(const char *name_or_path, ModelConfig *out, char *err, size_t errlen);

#endif
