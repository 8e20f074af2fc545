/* ts_model_active_bytes_per_token: the bytes of weights one token's forward pass reads, for the
 * decode roofline of `tiefsee bench` (generation is bound by streaming these bytes once per token).
 *
 * The count walks the GGUF tensor list by name rather than the arch's in-memory layer structs, so it
 * stays right for every arch (and for layouts the arch loaders are still changing) without knowing
 * their private types: ggml's names say what a tensor is ("*_exps" = routed experts with the
 * expert index as dimension 2, "blk.N." = block N, "token_embd" = the lookup table). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "arch/arch.h"
#include "model/model.h"

/* Block index of a "blk.N.*" tensor name; -1 for tensors outside the blocks (embedding, output,
 * norms); INT_MAX for an index too large to be a real block (so it is treated as past n_layer). */
static int block_index(const char *name) {
    if (strncmp(name, "blk.", 4) != 0) return -1;
    const char *p = name + 4;
    if (*p < '0' || *p > '9') return -1;
    long v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v > INT_MAX / 10) return INT_MAX;
    }
    return *p == '.' ? (int)v : -1;
}

/* n_expert_used from `<arch>.expert_used_count`; 0 when absent or unreadable (then routed-expert
 * tensors are counted in full, which overstates rather than hides traffic). */
static uint32_t experts_used(const ts_model *m) {
    char key[96];
    snprintf(key, sizeof key, "%s.expert_used_count", m->arch->name);
    uint32_t used = 0;
    ts_err err;
    if (gguf_get_u32(m->file, key, &used, &err) != 0) return 0;
    return used;
}

uint64_t ts_model_active_bytes_per_token(const ts_model *m) {
    const uint32_t n_used = experts_used(m);
    uint64_t total = 0;
    for (int64_t i = 0; i < gguf_n_tensors(m->file); i++) {
        const gguf_tensor *t = gguf_tensor_at(m->file, i);
        const int blk = block_index(t->name);
        if (blk >= m->hp.n_layer) continue; /* MTP / next-token-prediction blocks: not run per token */
        if (t->n_dims == 1) {
            /* norms, biases, rope factors: the engine reads its f32 copy, whatever the file type */
            total += (uint64_t)t->ne[0] * sizeof(float);
        } else if (strcmp(t->name, "token_embd.weight") == 0) {
            /* The lookup reads one row; a tied output projection then streams the whole matrix. */
            const uint64_t rows = t->ne[1] > 0 ? (uint64_t)t->ne[1] : 1;
            total += (uint64_t)t->nbytes / rows;
            if (m->output_tied) total += (uint64_t)t->nbytes;
        } else if (strstr(t->name, "_exps.") && t->n_dims >= 3 && t->ne[2] > 0 && n_used > 0 &&
                   (uint64_t)n_used < (uint64_t)t->ne[2]) {
            /* Each expert is a whole slice of dimension 2, so the division is exact. */
            total += (uint64_t)t->nbytes / (uint64_t)t->ne[2] * n_used;
        } else {
            total += (uint64_t)t->nbytes;
        }
    }
    return total;
}

/* Attention arithmetic of one generated token over `depth` cached positions (see tiefsee.h). The
 * count depends only on shapes, so it is exactly linear in depth: the bench multiplies the
 * one-position figure by a test's average depth. */
uint64_t ts_model_attention_flops_per_token(const ts_model *m, int depth) {
    if (depth <= 0) return 0;
    /* Scores are computed per query head whatever n_head_kv is: GQA shares cached rows, not math. */
    const uint64_t n_head = m->hp.n_head > 0 ? (uint64_t)m->hp.n_head : 0;
    const bool mla = strcmp(m->arch->name, "deepseek2") == 0;
    uint64_t total = 0;
    for (int l = 0; l < m->hp.n_layer; l++) {
        int k_width = 0, v_width = 0;
        m->arch->kv_widths(m, l, &k_width, &v_width);
        if (k_width <= 0 && v_width <= 0) continue; /* a layer decode does not run (deepseek2's MTP) */
        uint64_t per_score;
        if (mla) {
            /* Absorbed MLA decode attends in latent space: the score dots the absorbed query with the
             * cached row [c (kv_lora_rank) | k_pe (qk_rope_head_dim)], whose width is the layer's
             * cached K width; the weighted sum accumulates latent rows c only. The rope width is
             * n_rot (the loader sets it to qk_rope_head_dim), so kv_lora_rank = width - n_rot. */
            const uint64_t latent_rope = (uint64_t)k_width;
            const uint64_t latent = k_width > m->hp.n_rot ? (uint64_t)(k_width - m->hp.n_rot) : 0;
            per_score = 2 * latent_rope + 2 * latent + TS_ATTN_SOFTMAX_FLOPS;
        } else {
            per_score = 2 * (uint64_t)m->hp.head_dim + 2 * (uint64_t)m->hp.head_dim_v + TS_ATTN_SOFTMAX_FLOPS;
        }
        uint64_t layer;
        if (__builtin_mul_overflow(n_head, (uint64_t)depth, &layer) || __builtin_mul_overflow(layer, per_score, &layer) ||
            __builtin_add_overflow(total, layer, &total))
            return UINT64_MAX; /* beyond any real model; saturate rather than wrap */
    }
    return total;
}
