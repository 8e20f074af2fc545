/* Named synthetic-model presets. Full-size shapes follow /work/shared/spec/dense.md §2.3/§3/§4 and
 * deepseek2.md §1; tiny ones keep every matrix row a multiple of 256 (QK_K) wherever the real model
 * has one, so K-quants apply without fallback, and mirror the real model's quirks (GQA, biases,
 * rope scaling, tied head, MoE/MLA layout) so each code path of a loader is exercised. */
#include <stdint.h>
#include <string.h>

#include "synth/synth_model.h"

typedef struct synth_preset {
    const char *name;
    const char *desc;
    synth_model model;
} synth_preset;

/* Shared pieces, so every tiny preset differs from the default in the fields that matter. */
/* (Designated initialisers may not repeat a field under -Wextra, hence the arguments.) */
#define TINY(layers, heads_kv, ctx, theta, eps)                                                          \
    .n_layer = layers, .n_embd = 256, .n_head = 4, .n_head_kv = heads_kv, .head_dim = 64, .n_ff = 512,     \
    .n_vocab = 1024, .n_ctx_train = ctx, .rope_theta = theta, .norm_eps = eps

#define YARN_V2 .rope_scaling = SYNTH_ROPE_YARN, .rope_factor = 40.0f, .rope_orig_ctx = 4096, .yarn_mscale_all_dim = 0.707f

static const synth_preset presets[] = {
    {"tiny-llama", "llama, DeepSeek-LLM style: MHA, no rope scaling (2 layers, 256 wide, vocab 1024)",
     {.name = "tiny-llama", .arch = SYNTH_ARCH_LLAMA, .vocab = SYNTH_VOCAB_DEEPSEEK_LLM, TINY(2, 4, 4096, 10000.0f, 1e-6f)}},
    {"tiny-llama-gqa", "llama with grouped-query attention: 4 heads, 2 KV heads (3 layers)",
     {.name = "tiny-llama-gqa", .arch = SYNTH_ARCH_LLAMA, .vocab = SYNTH_VOCAB_DEEPSEEK_LLM,
      TINY(3, 2, 4096, 10000.0f, 1e-6f)}},
    {"tiny-coder", "llama, DeepSeek-Coder style: linear rope scaling x4, freq_base 100000",
     {.name = "tiny-coder", .arch = SYNTH_ARCH_LLAMA, .vocab = SYNTH_VOCAB_DEEPSEEK_CODER,
      TINY(2, 4, 16384, 100000.0f, 1e-6f), .rope_scaling = SYNTH_ROPE_LINEAR, .rope_factor = 4.0f}},
    {"tiny-llama3", "llama, R1-Distill-Llama style: llama3 rope_freqs.weight, freq_base 500000, GQA",
     {.name = "tiny-llama3", .arch = SYNTH_ARCH_LLAMA, .vocab = SYNTH_VOCAB_LLAMA3, TINY(2, 2, 131072, 500000.0f, 1e-5f),
      .rope_scaling = SYNTH_ROPE_LLAMA3, .rope_factor = 8.0f, .llama3_low_freq = 1.0f, .llama3_high_freq = 4.0f,
      .rope_orig_ctx = 8192}},
    {"tiny-qwen2", "qwen2, R1-Distill-Qwen style: q/k/v biases, GQA, untied output.weight",
     {.name = "tiny-qwen2", .arch = SYNTH_ARCH_QWEN2, .vocab = SYNTH_VOCAB_QWEN2, TINY(2, 2, 131072, 10000.0f, 1e-6f),
      .qkv_bias = true}},
    {"tiny-qwen2-g6", "qwen2 with R1-Distill-Qwen-1.5B's 6-head GQA groups: 12 heads, 2 KV heads (padded position-major attention kernels)",
     {.name = "tiny-qwen2-g6", .arch = SYNTH_ARCH_QWEN2, .vocab = SYNTH_VOCAB_QWEN2, .n_layer = 2, .n_embd = 768,
      .n_head = 12, .n_head_kv = 2, .head_dim = 64, .n_ff = 512, .n_vocab = 1024, .n_ctx_train = 131072,
      .rope_theta = 10000.0f, .norm_eps = 1e-6f, .qkv_bias = true}},
    {"tiny-qwen2-tied", "qwen2 with tied embeddings (no output.weight)",
     {.name = "tiny-qwen2-tied", .arch = SYNTH_ARCH_QWEN2, .vocab = SYNTH_VOCAB_QWEN2,
      TINY(2, 2, 131072, 10000.0f, 1e-6f), .qkv_bias = true, .tied_embeddings = true}},
    {"tiny-deepseek-moe", "deepseek (DeepSeekMoE style): 1 dense layer, then 8 experts (2 used) + 2 shared",
     {.name = "tiny-deepseek-moe", .arch = SYNTH_ARCH_DEEPSEEK, .vocab = SYNTH_VOCAB_DEEPSEEK_LLM,
      TINY(3, 4, 4096, 10000.0f, 1e-6f), .n_expert = 8, .n_expert_used = 2, .n_expert_shared = 2, .n_ff_exp = 256,
      .n_leading_dense = 1, .expert_weights_scale = 1.0f, .expert_gating_func = 1}},
    {"tiny-deepseek2-lite", "deepseek2, V2-Lite style: MLA without q LoRA, yarn, softmax MoE (8 experts, 2 used)",
     {.name = "tiny-deepseek2-lite", .arch = SYNTH_ARCH_DEEPSEEK2, .vocab = SYNTH_VOCAB_DEEPSEEK_LLM,
      TINY(3, 4, 163840, 10000.0f, 1e-6f), YARN_V2, .n_expert = 8, .n_expert_used = 2, .n_expert_shared = 2,
      .n_ff_exp = 256, .n_leading_dense = 1, .expert_weights_scale = 1.0f, .expert_gating_func = 1,
      .n_expert_groups = 1, .n_expert_groups_used = 1, .q_lora_rank = 0, .kv_lora_rank = 256, .qk_nope_dim = 64,
      .qk_rope_dim = 32, .v_head_dim = 64}},
    {"tiny-deepseek2", "deepseek2, V2 style: MLA with q LoRA, group-limited softmax MoE (16 experts, 4 groups)",
     {.name = "tiny-deepseek2", .arch = SYNTH_ARCH_DEEPSEEK2, .vocab = SYNTH_VOCAB_DEEPSEEK_LLM,
      TINY(3, 4, 163840, 10000.0f, 1e-6f), YARN_V2, .n_expert = 16, .n_expert_used = 4, .n_expert_shared = 2,
      .n_ff_exp = 256, .n_leading_dense = 1, .expert_weights_scale = 16.0f, .expert_gating_func = 1,
      .n_expert_groups = 4, .n_expert_groups_used = 2, .q_lora_rank = 256, .kv_lora_rank = 256, .qk_nope_dim = 64,
      .qk_rope_dim = 32, .v_head_dim = 64}},
    {"tiny-deepseek2-lite-16h", "tiny-deepseek2-lite with V2-Lite's 16 heads (the position-major attention kernels)",
     {.name = "tiny-deepseek2-lite-16h", .arch = SYNTH_ARCH_DEEPSEEK2, .vocab = SYNTH_VOCAB_DEEPSEEK_LLM, .n_layer = 3,
      .n_embd = 256, .n_head = 16, .n_head_kv = 16, .head_dim = 64, .n_ff = 512, .n_vocab = 1024, .n_ctx_train = 163840,
      .rope_theta = 10000.0f, .norm_eps = 1e-6f, YARN_V2, .n_expert = 8, .n_expert_used = 2, .n_expert_shared = 2,
      .n_ff_exp = 256, .n_leading_dense = 1, .expert_weights_scale = 1.0f, .expert_gating_func = 1,
      .n_expert_groups = 1, .n_expert_groups_used = 1, .q_lora_rank = 0, .kv_lora_rank = 256, .qk_nope_dim = 64,
      .qk_rope_dim = 32, .v_head_dim = 64}},
    {"tiny-deepseek3", "deepseek2, V3/R1 style: MLA, sigmoid routing with exp_probs_b, normalized top-k",
     {.name = "tiny-deepseek3", .arch = SYNTH_ARCH_DEEPSEEK2, .vocab = SYNTH_VOCAB_DEEPSEEK_V3,
      TINY(3, 4, 163840, 10000.0f, 1e-6f), .rope_scaling = SYNTH_ROPE_YARN, .rope_factor = 40.0f,
      .rope_orig_ctx = 4096, .yarn_mscale_all_dim = 1.0f, .n_expert = 16, .n_expert_used = 4, .n_expert_shared = 1,
      .n_ff_exp = 256, .n_leading_dense = 1, .expert_weights_scale = 2.5f, .expert_weights_norm = true,
      .expert_gating_func = 2, .n_expert_groups = 4, .n_expert_groups_used = 2, .expert_probs_bias = true,
      .q_lora_rank = 256, .kv_lora_rank = 256, .qk_nope_dim = 64, .qk_rope_dim = 32, .v_head_dim = 64}},
    /* The same three shapes in the legacy combined attn_kv_b layout (kv_b_combined). */
    {"tiny-deepseek2-lite-kvb", "tiny-deepseek2-lite with the legacy combined attn_kv_b layout",
     {.name = "tiny-deepseek2-lite-kvb", .arch = SYNTH_ARCH_DEEPSEEK2, .vocab = SYNTH_VOCAB_DEEPSEEK_LLM,
      TINY(3, 4, 163840, 10000.0f, 1e-6f), YARN_V2, .n_expert = 8, .n_expert_used = 2, .n_expert_shared = 2,
      .n_ff_exp = 256, .n_leading_dense = 1, .expert_weights_scale = 1.0f, .expert_gating_func = 1,
      .n_expert_groups = 1, .n_expert_groups_used = 1, .q_lora_rank = 0, .kv_lora_rank = 256, .qk_nope_dim = 64,
      .qk_rope_dim = 32, .v_head_dim = 64, .kv_b_combined = true}},
    {"tiny-deepseek2-kvb", "tiny-deepseek2 with the legacy combined attn_kv_b layout",
     {.name = "tiny-deepseek2-kvb", .arch = SYNTH_ARCH_DEEPSEEK2, .vocab = SYNTH_VOCAB_DEEPSEEK_LLM,
      TINY(3, 4, 163840, 10000.0f, 1e-6f), YARN_V2, .n_expert = 16, .n_expert_used = 4, .n_expert_shared = 2,
      .n_ff_exp = 256, .n_leading_dense = 1, .expert_weights_scale = 16.0f, .expert_gating_func = 1,
      .n_expert_groups = 4, .n_expert_groups_used = 2, .q_lora_rank = 256, .kv_lora_rank = 256, .qk_nope_dim = 64,
      .qk_rope_dim = 32, .v_head_dim = 64, .kv_b_combined = true}},
    {"tiny-deepseek3-kvb", "tiny-deepseek3 with the legacy combined attn_kv_b layout",
     {.name = "tiny-deepseek3-kvb", .arch = SYNTH_ARCH_DEEPSEEK2, .vocab = SYNTH_VOCAB_DEEPSEEK_V3,
      TINY(3, 4, 163840, 10000.0f, 1e-6f), .rope_scaling = SYNTH_ROPE_YARN, .rope_factor = 40.0f,
      .rope_orig_ctx = 4096, .yarn_mscale_all_dim = 1.0f, .n_expert = 16, .n_expert_used = 4, .n_expert_shared = 1,
      .n_ff_exp = 256, .n_leading_dense = 1, .expert_weights_scale = 2.5f, .expert_weights_norm = true,
      .expert_gating_func = 2, .n_expert_groups = 4, .n_expert_groups_used = 2, .expert_probs_bias = true,
      .q_lora_rank = 256, .kv_lora_rank = 256, .qk_nope_dim = 64, .qk_rope_dim = 32, .v_head_dim = 64,
      .kv_b_combined = true}},
    {"demo", "small llama model (~24 MB at q8_0, ~46 MB at f16) for trying the CLI without a download",
     {.name = "tiefsee-demo", .arch = SYNTH_ARCH_LLAMA, .vocab = SYNTH_VOCAB_DEEPSEEK_LLM, .n_layer = 6,
      .n_embd = 512, .n_head = 8, .n_head_kv = 4, .head_dim = 64, .n_ff = 1536, .n_vocab = 4096, .n_ctx_train = 4096,
      .rope_theta = 10000.0f, .norm_eps = 1e-6f}},
    {"r1-distill-qwen-1.5b", "DeepSeek-R1-Distill-Qwen-1.5B shape (qwen2, 28 layers, 1536 wide)",
     {.name = "DeepSeek-R1-Distill-Qwen-1.5B (synthetic)", .arch = SYNTH_ARCH_QWEN2, .vocab = SYNTH_VOCAB_QWEN2,
      .n_layer = 28, .n_embd = 1536, .n_head = 12, .n_head_kv = 2, .head_dim = 128, .n_ff = 8960, .n_vocab = 151936,
      .n_ctx_train = 131072, .rope_theta = 10000.0f, .norm_eps = 1e-6f, .qkv_bias = true}},
    {"r1-distill-qwen-7b", "DeepSeek-R1-Distill-Qwen-7B shape (qwen2, 28 layers, 3584 wide)",
     {.name = "DeepSeek-R1-Distill-Qwen-7B (synthetic)", .arch = SYNTH_ARCH_QWEN2, .vocab = SYNTH_VOCAB_QWEN2,
      .n_layer = 28, .n_embd = 3584, .n_head = 28, .n_head_kv = 4, .head_dim = 128, .n_ff = 18944, .n_vocab = 152064,
      .n_ctx_train = 131072, .rope_theta = 10000.0f, .norm_eps = 1e-6f, .qkv_bias = true}},
    {"r1-distill-llama-8b", "DeepSeek-R1-Distill-Llama-8B shape (llama, llama3 rope scaling, 32 layers)",
     {.name = "DeepSeek-R1-Distill-Llama-8B (synthetic)", .arch = SYNTH_ARCH_LLAMA, .vocab = SYNTH_VOCAB_LLAMA3,
      .n_layer = 32, .n_embd = 4096, .n_head = 32, .n_head_kv = 8, .head_dim = 128, .n_ff = 14336, .n_vocab = 128256,
      .n_ctx_train = 131072, .rope_theta = 500000.0f, .norm_eps = 1e-5f, .rope_scaling = SYNTH_ROPE_LLAMA3,
      .rope_factor = 8.0f, .llama3_low_freq = 1.0f, .llama3_high_freq = 4.0f, .rope_orig_ctx = 8192}},
    {"deepseek-llm-7b", "DeepSeek-LLM-7B shape (llama, MHA, 30 layers)",
     {.name = "DeepSeek-LLM-7B (synthetic)", .arch = SYNTH_ARCH_LLAMA, .vocab = SYNTH_VOCAB_DEEPSEEK_LLM,
      .n_layer = 30, .n_embd = 4096, .n_head = 32, .n_head_kv = 32, .head_dim = 128, .n_ff = 11008, .n_vocab = 102400,
      .n_ctx_train = 4096, .rope_theta = 10000.0f, .norm_eps = 1e-6f}},
    {"deepseek-coder-1.3b", "DeepSeek-Coder-1.3B shape (llama, linear rope x4, 24 layers)",
     {.name = "DeepSeek-Coder-1.3B (synthetic)", .arch = SYNTH_ARCH_LLAMA, .vocab = SYNTH_VOCAB_DEEPSEEK_CODER,
      .n_layer = 24, .n_embd = 2048, .n_head = 16, .n_head_kv = 16, .head_dim = 128, .n_ff = 5504, .n_vocab = 32256,
      .n_ctx_train = 16384, .rope_theta = 100000.0f, .norm_eps = 1e-6f, .rope_scaling = SYNTH_ROPE_LINEAR,
      .rope_factor = 4.0f}},
    {"deepseek-moe-16b", "DeepSeekMoE-16B shape (deepseek, 64 experts, 6 used, 2 shared)",
     {.name = "DeepSeekMoE-16B (synthetic)", .arch = SYNTH_ARCH_DEEPSEEK, .vocab = SYNTH_VOCAB_DEEPSEEK_LLM,
      .n_layer = 28, .n_embd = 2048, .n_head = 16, .n_head_kv = 16, .head_dim = 128, .n_ff = 10944, .n_vocab = 102400,
      .n_ctx_train = 4096, .rope_theta = 10000.0f, .norm_eps = 1e-6f, .n_expert = 64, .n_expert_used = 6,
      .n_expert_shared = 2, .n_ff_exp = 1408, .n_leading_dense = 1, .expert_weights_scale = 1.0f,
      .expert_gating_func = 1}},
    {"deepseek-v2-lite", "DeepSeek-V2-Lite shape (deepseek2, 15.7B, MLA, 64 experts, 6 used)",
     {.name = "DeepSeek-V2-Lite (synthetic)", .arch = SYNTH_ARCH_DEEPSEEK2, .vocab = SYNTH_VOCAB_DEEPSEEK_LLM,
      .n_layer = 27, .n_embd = 2048, .n_head = 16, .n_head_kv = 16, .head_dim = 128, .n_ff = 10944, .n_vocab = 102400,
      .n_ctx_train = 163840, .rope_theta = 10000.0f, .norm_eps = 1e-6f, YARN_V2, .n_expert = 64, .n_expert_used = 6,
      .n_expert_shared = 2, .n_ff_exp = 1408, .n_leading_dense = 1, .expert_weights_scale = 1.0f,
      .expert_gating_func = 1, .n_expert_groups = 1, .n_expert_groups_used = 1, .q_lora_rank = 0,
      .kv_lora_rank = 512, .qk_nope_dim = 128, .qk_rope_dim = 64, .v_head_dim = 128}},
};

#define N_PRESETS (sizeof presets / sizeof presets[0])

static const char *const preset_names[] = {
    "tiny-llama", "tiny-llama-gqa", "tiny-coder", "tiny-llama3", "tiny-qwen2", "tiny-qwen2-g6", "tiny-qwen2-tied",
    "tiny-deepseek-moe", "tiny-deepseek2-lite", "tiny-deepseek2", "tiny-deepseek2-lite-16h", "tiny-deepseek3",
    "tiny-deepseek2-lite-kvb",
    "tiny-deepseek2-kvb", "tiny-deepseek3-kvb", "demo",
    "r1-distill-qwen-1.5b", "r1-distill-qwen-7b", "r1-distill-llama-8b", "deepseek-llm-7b", "deepseek-coder-1.3b",
    "deepseek-moe-16b", "deepseek-v2-lite", NULL,
};

/* The name list above must mirror the table (its length checked here, at compile time — a fixed
 * size would pad a forgotten name with NULL, ending the list early; the names by the test);
 * keeping it a constant array lets callers hold the pointer without any initialisation step. */
_Static_assert(sizeof preset_names / sizeof preset_names[0] == N_PRESETS + 1, "preset name list out of sync");

static const synth_preset *find_preset(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < N_PRESETS; i++)
        if (strcmp(presets[i].name, name) == 0) return &presets[i];
    return NULL;
}

const char *const *synth_preset_names(void) { return preset_names; }

const char *synth_preset_description(const char *name) {
    const synth_preset *p = find_preset(name);
    return p ? p->desc : NULL;
}

int synth_preset_model(const char *name, synth_model *m, ts_err *err) {
    const synth_preset *p = find_preset(name);
    if (!p) return ts_fail(err, "unknown synth preset '%s' (see `tiefsee synth --list`)", name ? name : "(null)");
    *m = p->model;
    return 0;
}
