/* Description of a synthetic model: the hyperparameters a GGUF needs, independent of where they came
 * from (a named preset or a Hugging Face config.json). The synth writer turns one of these into
 * metadata keys, a tensor list and random weights. */
#ifndef TS_SYNTH_SYNTH_MODEL_H
#define TS_SYNTH_SYNTH_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

enum synth_arch {
    SYNTH_ARCH_LLAMA,     /* DeepSeek-LLM, DeepSeek-Coder, R1-Distill-Llama */
    SYNTH_ARCH_QWEN2,     /* R1-Distill-Qwen */
    SYNTH_ARCH_DEEPSEEK,  /* DeepSeekMoE-16B */
    SYNTH_ARCH_DEEPSEEK2, /* V2, V2-Lite, V3, R1 (MLA) */
};

/* Which tokenizer family the generated vocabulary imitates (pre-tokenizer name, special tokens). */
enum synth_vocab_family {
    SYNTH_VOCAB_DEEPSEEK_LLM,
    SYNTH_VOCAB_DEEPSEEK_CODER,
    SYNTH_VOCAB_LLAMA3,
    SYNTH_VOCAB_QWEN2,
    SYNTH_VOCAB_DEEPSEEK_V3,
};

enum synth_rope_scaling { SYNTH_ROPE_NONE, SYNTH_ROPE_LINEAR, SYNTH_ROPE_LLAMA3, SYNTH_ROPE_YARN };

typedef struct synth_model {
    char name[96]; /* general.name */
    enum synth_arch arch;
    enum synth_vocab_family vocab;
    int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx_train;
    float rope_theta, norm_eps;

    enum synth_rope_scaling rope_scaling;
    float rope_factor;                          /* linear / llama3 / yarn factor */
    float llama3_low_freq, llama3_high_freq;    /* llama3 only */
    int rope_orig_ctx;                          /* llama3 and yarn: original context length */
    float yarn_mscale_all_dim;                  /* yarn: stored as yarn_log_multiplier = 0.1 * this */

    bool tied_embeddings; /* no output.weight: the LM head reuses token_embd */
    bool qkv_bias;        /* qwen2 */

    /* MoE (deepseek, deepseek2); n_expert == 0 means dense. */
    int n_expert, n_expert_used, n_expert_shared, n_ff_exp, n_leading_dense;
    float expert_weights_scale;
    bool expert_weights_norm;
    int expert_gating_func; /* 1 softmax, 2 sigmoid */
    int n_expert_groups, n_expert_groups_used;
    bool expert_probs_bias; /* V3: blk.N.exp_probs_b.bias */

    /* MLA (deepseek2). q_lora_rank 0 = a single attn_q (V2-Lite). */
    int q_lora_rank, kv_lora_rank, qk_nope_dim, qk_rope_dim, v_head_dim;
    /* Legacy MLA layout (deepseek2.md §3.5, §8.1): one combined attn_kv_b [C, H·(Dn+Dv)] and per-head
     * key_length/value_length, as older GGUFs have; llama.cpp runs those as decompressed MHA, so the
     * conformance test covers its second attention path too. false = mainline 3-D attn_k_b/attn_v_b. */
    bool kv_b_combined;
} synth_model;

/* Fills *m from a preset name. Returns 0, or -1 with err if the name is unknown. */
int synth_preset_model(const char *name, synth_model *m, ts_err *err);
/* NULL-terminated list of preset names and their descriptions (same order). */
const char *const *synth_preset_names(void);
const char *synth_preset_description(const char *name);

/* Fills *m from a Hugging Face config.json. Returns 0, or -1 with err naming the file and field. */
int synth_model_from_hf_config(const char *path, synth_model *m, ts_err *err);

/* Checks the shape is one the writer can produce (positive sizes, heads divide, limits that keep
 * every size computation inside int64). Returns 0 or -1 with err. */
int synth_model_validate(const synth_model *m, ts_err *err);

#endif
