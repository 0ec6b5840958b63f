/* Checkpoints in the safetensors format, with Hugging Face Llama tensor names.
 *
 * File layout: an 8-byte little-endian header length N, N bytes of JSON header (padded with
 * spaces to a multiple of 8), then the raw little-endian tensor data. The header maps each
 * tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
 * start of the data) and may hold "__metadata__", a string -> string object.
 *
 * A model checkpoint is fp32 and names its tensors the way transformers' LlamaForCausalLM
 * does (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ..., lm_head.weight),
 * matrices as [out, in], norms as [C]. The fused qkv and gate_up tensors of ParamLayout are
 * written as their parts (q, k, v and gate, up). The config travels in __metadata__ under the
 * LlamaConfig key names (hidden_size, intermediate_size, num_hidden_layers,
 * num_attention_heads, num_key_value_heads, vocab_size, rms_norm_eps, rope_theta), plus
 * "format": "pt" so that transformers accepts the file. */
#ifndef LABENCH_MODEL_SAFETENSORS_H
#define LABENCH_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "model/config.h"

/* Writes params (n = layout.n_params floats) as safetensors, atomically. 0 or -1 with err. */
int safetensors_save_model(const char *path, const ModelConfig *c, const float *params, char *err,
                           size_t errlen);

/* Reads a checkpoint: fills *c from __metadata__ (name "file"), allocates *params (malloc) in
 * ParamLayout order. 0, or -1 with "<path>: what is wrong" in err; on failure *c is left
 * untouched and *params is NULL. Every tensor of the config must be present with its exact
 * shape; a tensor the config does not have is an error too. */
int safetensors_load_model(const char *path, ModelConfig *c, float **params, char *err, size_t errlen);

/* Generic: write any list of named f32 tensors (used for gradients by `labench grad`).
 * ndim is 1 or 2 (shape[0] only, or [rows, cols]); names must be unique and non-empty.
 * meta_kv is NULL or "key", "value", ..., NULL and becomes __metadata__. Atomic like above. */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[2];
    const float *data;
} StTensor;
int safetensors_write(const char *path, const StTensor *tensors, int n,
                      const char *const *meta_kv /* key,value,...,NULL */, char *err, size_t errlen);

/* Largest header a reader accepts (the same bound as the reference implementation). */
#define SAFETENSORS_MAX_HEADER (100u * 1000u * 1000u)

#endif
