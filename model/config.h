/* Model shape, presets, and the layout of the one parameter buffer. */
#ifndef LABENCH_MODEL_CONFIG_H
#define LABENCH_MODEL_CONFIG_H

#include <stddef.h>

typedef struct {
    char name[16];      /* preset it came from ("tiny", "small", "1b", "7b", or "file") */
    int vocab;          /* V */
    int hidden;         /* C */
    int intermediate;   /* F (SwiGLU width) */
    int layers;
    int heads;          /* H */
    int kv_heads;       /* Hkv (grouped-query attention when < H) */
    int head_dim;       /* D = C / H */
    float rms_eps;
    float rope_theta;
} ModelConfig;

/* Fills c from a preset name; -1 if unknown. */
int model_preset(const char *name, ModelConfig *c);
/* Valid preset names, for --help and errors. */
extern const char *const MODEL_PRESETS[];
/* 0 if the shape is usable, else -1 with the reason in err. */
int model_config_check(const ModelConfig *c, char *err, size_t errlen);

/* One tensor inside the parameter buffer. The fused tensors (qkv, gate_up) are stored as the
 * rows of their Hugging Face parts stacked in order ([q; k; v], [gate; up]); `parts` says how
 * they split for checkpoints. */
typedef struct {
    char name[96];      /* for fused tensors, a printf pattern is not used: see part_names */
    size_t offset;      /* elements from the start of the buffer */
    int rows, cols;     /* [out, in] for matrices; rows = 1 for vectors */
    int n_parts;        /* 1, or 3 (qkv), or 2 (gate_up) */
    char part_names[3][96];
    int part_rows[3];
} ParamTensor;

enum { P_LN1, P_QKV, P_O, P_LN2, P_GATE_UP, P_DOWN, P_PER_LAYER };

typedef struct {
    ParamTensor *tensors;  /* embed, then P_PER_LAYER per layer, then final norm, lm_head */
    int n_tensors;
    size_t n_params;
} ParamLayout;

int param_layout_make(const ModelConfig *c, ParamLayout *l);   /* 0, or -1 on allocation failure */
void param_layout_free(ParamLayout *l);
/* Index of the embedding, a layer tensor, the final norm, the head. */
static inline int param_embed(void) { return 0; }
static inline int param_layer(int layer, int which) { return 1 + layer * P_PER_LAYER + which; }
static inline int param_final_norm(const ModelConfig *c) { return 1 + c->layers * P_PER_LAYER; }
static inline int param_lm_head(const ModelConfig *c) { return 2 + c->layers * P_PER_LAYER; }

size_t model_param_count(const ModelConfig *c);

#endif
