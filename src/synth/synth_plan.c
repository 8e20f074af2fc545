#include "synth/synth_plan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/types.h"

/* ---- Type requests --------------------------------------------------------------------------- */

typedef struct type_name_entry {
    const char *name;
    int type;
    enum synth_mix mix;
    uint32_t file_type; /* llama_ftype; pure K-quant files use the _S variant's id, the closest */
} type_name_entry;

static const type_name_entry type_names[] = {
    {"f32", TS_TYPE_F32, SYNTH_MIX_NONE, 0},      {"f16", TS_TYPE_F16, SYNTH_MIX_NONE, 1},
    {"bf16", TS_TYPE_BF16, SYNTH_MIX_NONE, 32},   {"q4_0", TS_TYPE_Q4_0, SYNTH_MIX_NONE, 2},
    {"q4_1", TS_TYPE_Q4_1, SYNTH_MIX_NONE, 3},    {"q5_0", TS_TYPE_Q5_0, SYNTH_MIX_NONE, 8},
    {"q5_1", TS_TYPE_Q5_1, SYNTH_MIX_NONE, 9},    {"q8_0", TS_TYPE_Q8_0, SYNTH_MIX_NONE, 7},
    {"q2_K", TS_TYPE_Q2_K, SYNTH_MIX_NONE, 10},   {"q3_K", TS_TYPE_Q3_K, SYNTH_MIX_NONE, 11},
    {"q4_K", TS_TYPE_Q4_K, SYNTH_MIX_NONE, 14},   {"q5_K", TS_TYPE_Q5_K, SYNTH_MIX_NONE, 16},
    {"q6_K", TS_TYPE_Q6_K, SYNTH_MIX_NONE, 18},   {"q4_K_M", TS_TYPE_Q4_K, SYNTH_MIX_Q4_K_M, 15},
    {"q4_K_S", TS_TYPE_Q4_K, SYNTH_MIX_Q4_K_S, 14}, {"q5_K_M", TS_TYPE_Q5_K, SYNTH_MIX_Q5_K_M, 17},
};

static bool name_eq_nocase(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char x = *a, y = *b;
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
        if (x != y) return false;
    }
    return !*a && !*b;
}

int synth_parse_type(const char *name, synth_type_request *out, ts_err *err) {
    if (!name) name = "f16";
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++) {
        if (name_eq_nocase(name, type_names[i].name)) {
            *out = (synth_type_request){type_names[i].type, type_names[i].mix, type_names[i].file_type};
            return 0;
        }
    }
    return ts_fail(err,
                   "unknown weight type '%s' (use f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, "
                   "q6_K, q4_K_M, q4_K_S or q5_K_M)",
                   name);
}

/* ---- Type choice (llama.cpp's llama-quant.cpp rules for the mixes we offer) ------------------ */

/* llama.cpp's use_more_bits: the first and last eighth of the layers, and every third in between. */
static bool use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

static int block_size(int type) { return ts_type_table(TS_ISA_SCALAR)[type].block_size; }

/* A row length that is not a multiple of the block size gets the next type with a smaller block,
 * as llama.cpp's tensor_type_fallback does: Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1,
 * Q6_K -> Q8_0, and F16 if even that does not fit (e.g. DeepSeek-Coder-1.3B's ffn_down, 5504 wide,
 * or V2-Lite's 1408-wide expert down projections). */
static int fallback_type(int type, int64_t ncols) {
    if (ncols % block_size(type) == 0) return type;
    int t;
    switch (type) {
    case TS_TYPE_Q2_K:
    case TS_TYPE_Q3_K: t = TS_TYPE_Q4_0; break;
    case TS_TYPE_Q4_K: t = TS_TYPE_Q5_0; break;
    case TS_TYPE_Q5_K: t = TS_TYPE_Q5_1; break;
    case TS_TYPE_Q6_K: t = TS_TYPE_Q8_0; break;
    default: t = type; break;
    }
    return ncols % block_size(t) == 0 ? t : TS_TYPE_F16;
}

typedef struct mix_state {
    int n_attention_wv, i_attention_wv;
} mix_state;

static bool contains(const char *s, const char *part) { return strstr(s, part) != NULL; }

static int layer_of(const char *name) {
    int l = -1;
    if (sscanf(name, "blk.%d.", &l) != 1) return -1;
    return l;
}

static int mix_type(const synth_model *m, const synth_type_request *req, mix_state *st, const synth_tensor *t) {
    int type = req->base_type;
    const char *name = t->name;
    const bool q4km = req->mix == SYNTH_MIX_Q4_K_M, q4ks = req->mix == SYNTH_MIX_Q4_K_S, q5km = req->mix == SYNTH_MIX_Q5_K_M;
    const bool is_output = strcmp(name, "output.weight") == 0;
    const bool is_embd = strcmp(name, "token_embd.weight") == 0;
    if (is_output || (m->tied_embeddings && is_embd)) {
        /* The LM head: Q6_K unless its rows do not fit 256-blocks (then Q8_0). */
        type = t->ne[0] % block_size(type) != 0 ? TS_TYPE_Q8_0 : TS_TYPE_Q6_K;
    } else if (is_embd) {
        /* untied token_embd keeps the base type */
    } else if (contains(name, "attn_qkv.weight") || contains(name, "attn_kv_b.weight") || contains(name, "attn_v.weight")) {
        if ((q4km || q5km) && use_more_bits(st->i_attention_wv, st->n_attention_wv)) type = TS_TYPE_Q6_K;
        else if (q4ks && st->i_attention_wv < 4) type = TS_TYPE_Q5_K;
        if (m->n_expert == 8) type = TS_TYPE_Q8_0; /* llama.cpp's rule for 8-expert models */
        st->i_attention_wv++;
    } else if (contains(name, "attn_k.weight")) {
        if (m->n_expert == 8) type = TS_TYPE_Q8_0;
    } else if (contains(name, "attn_output.weight")) {
        if (m->n_expert == 8 && (q4km || q4ks)) type = TS_TYPE_Q5_K;
    } else if (contains(name, "ffn_down")) {
        /* llama.cpp counts ffn_down tensors for dense models and parses the layer from the name
         * for MoE ones; with one ffn_down per dense layer both give the layer index. */
        int l = layer_of(name), n = m->n_layer;
        if ((q4km || q5km) && use_more_bits(l, n)) type = TS_TYPE_Q6_K;
        else if (q4ks && l < n / 8) type = TS_TYPE_Q5_K;
    }
    return type;
}

/* ---- Tensor list ----------------------------------------------------------------------------- */

typedef struct plan_builder {
    synth_tensor *t;
    int n, cap;
} plan_builder;

static int add(plan_builder *b, enum synth_init init, float scale, int n_dims, int64_t ne0, int64_t ne1, int64_t ne2,
               const char *fmt, ...) __attribute__((format(printf, 8, 9)));

static int add(plan_builder *b, enum synth_init init, float scale, int n_dims, int64_t ne0, int64_t ne1, int64_t ne2,
               const char *fmt, ...) {
    if (b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 64;
        synth_tensor *t = realloc(b->t, (size_t)cap * sizeof *t);
        if (!t) return -1;
        b->t = t;
        b->cap = cap;
    }
    synth_tensor *t = &b->t[b->n++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->init = init;
    t->scale = scale;
    return 0;
}

/* Scales: weight matrices N(0, 1/sqrt(fan_in)) keep the variance of a product equal to that of its
 * (RMS-normalised) input; norms 1 +- 0.1; biases 0.1. The untied embedding has unit rows so the
 * residual stream starts at RMS ~1 like the layer outputs added to it; a tied embedding also serves
 * as the LM head, where unit rows would give logits of RMS sqrt(n_embd), so it is 1/sqrt(n_embd). */
#define MAT(b, in, out, ...) add(b, SYNTH_INIT_GAUSS, 1.0f / sqrtf((float)(in)), 2, in, out, 1, __VA_ARGS__)
#define EXPS(b, in, out, ne, ...) add(b, SYNTH_INIT_GAUSS, 1.0f / sqrtf((float)(in)), 3, in, out, ne, __VA_ARGS__)
#define NORM(b, n, ...) add(b, SYNTH_INIT_NORM, 0.1f, 1, n, 1, 1, __VA_ARGS__)
#define VEC(b, n, scale, ...) add(b, SYNTH_INIT_GAUSS, scale, 1, n, 1, 1, __VA_ARGS__)

#define TRY(x)                                                                                          \
    do {                                                                                                \
        if ((x) < 0) goto oom;                                                                          \
    } while (0)

int synth_plan_tensors(const synth_model *m, const synth_type_request *req, synth_tensor **out, int *n_out, ts_err *err) {
    plan_builder b = {0};
    const int64_t E = m->n_embd, V = m->n_vocab, F = m->n_ff;
    const int64_t H = m->n_head, Hkv = m->n_head_kv, d = m->head_dim;

    TRY(add(&b, SYNTH_INIT_GAUSS, m->tied_embeddings ? 1.0f / sqrtf((float)E) : 1.0f, 2, E, V, 1, "token_embd.weight"));
    if (m->rope_scaling == SYNTH_ROPE_LLAMA3) TRY(add(&b, SYNTH_INIT_ROPE_FREQS, 0, 1, d / 2, 1, 1, "rope_freqs.weight"));
    TRY(NORM(&b, E, "output_norm.weight"));
    if (!m->tied_embeddings) TRY(MAT(&b, E, V, "output.weight"));

    for (int l = 0; l < m->n_layer; l++) {
        TRY(NORM(&b, E, "blk.%d.attn_norm.weight", l));
        if (m->arch == SYNTH_ARCH_DEEPSEEK2) {
            const int64_t Dqk = m->qk_nope_dim + m->qk_rope_dim, C = m->kv_lora_rank;
            if (m->q_lora_rank > 0) {
                TRY(MAT(&b, E, m->q_lora_rank, "blk.%d.attn_q_a.weight", l));
                TRY(NORM(&b, m->q_lora_rank, "blk.%d.attn_q_a_norm.weight", l));
                TRY(MAT(&b, m->q_lora_rank, H * Dqk, "blk.%d.attn_q_b.weight", l));
            } else {
                TRY(MAT(&b, E, H * Dqk, "blk.%d.attn_q.weight", l));
            }
            TRY(MAT(&b, E, C + m->qk_rope_dim, "blk.%d.attn_kv_a_mqa.weight", l));
            TRY(NORM(&b, C, "blk.%d.attn_kv_a_norm.weight", l));
            if (m->kv_b_combined) {
                /* legacy layout: per head h, rows h·(Dn+Dv) .. +Dn are W_UK, the next Dv rows W_UV. */
                TRY(MAT(&b, C, H * (m->qk_nope_dim + m->v_head_dim), "blk.%d.attn_kv_b.weight", l));
            } else {
                /* mainline llama.cpp's MLA layout (deepseek2.md §3.5): 3-D per-head k_b and v_b. */
                TRY(EXPS(&b, m->qk_nope_dim, C, H, "blk.%d.attn_k_b.weight", l));
                TRY(EXPS(&b, C, m->v_head_dim, H, "blk.%d.attn_v_b.weight", l));
            }
            TRY(MAT(&b, H * m->v_head_dim, E, "blk.%d.attn_output.weight", l));
        } else {
            TRY(MAT(&b, E, H * d, "blk.%d.attn_q.weight", l));
            TRY(MAT(&b, E, Hkv * d, "blk.%d.attn_k.weight", l));
            TRY(MAT(&b, E, Hkv * d, "blk.%d.attn_v.weight", l));
            if (m->qkv_bias) {
                TRY(VEC(&b, H * d, 0.1f, "blk.%d.attn_q.bias", l));
                TRY(VEC(&b, Hkv * d, 0.1f, "blk.%d.attn_k.bias", l));
                TRY(VEC(&b, Hkv * d, 0.1f, "blk.%d.attn_v.bias", l));
            }
            TRY(MAT(&b, H * d, E, "blk.%d.attn_output.weight", l));
        }
        TRY(NORM(&b, E, "blk.%d.ffn_norm.weight", l));
        if (m->n_expert == 0 || l < m->n_leading_dense) {
            TRY(MAT(&b, E, F, "blk.%d.ffn_gate.weight", l));
            TRY(MAT(&b, E, F, "blk.%d.ffn_up.weight", l));
            TRY(MAT(&b, F, E, "blk.%d.ffn_down.weight", l));
        } else {
            const int64_t Fe = m->n_ff_exp, Ne = m->n_expert, Fs = (int64_t)m->n_ff_exp * m->n_expert_shared;
            TRY(MAT(&b, E, Ne, "blk.%d.ffn_gate_inp.weight", l));
            if (m->expert_probs_bias) TRY(VEC(&b, Ne, 0.01f, "blk.%d.exp_probs_b.bias", l));
            TRY(EXPS(&b, E, Fe, Ne, "blk.%d.ffn_gate_exps.weight", l));
            TRY(EXPS(&b, E, Fe, Ne, "blk.%d.ffn_up_exps.weight", l));
            TRY(EXPS(&b, Fe, E, Ne, "blk.%d.ffn_down_exps.weight", l));
            if (Fs > 0) {
                TRY(MAT(&b, E, Fs, "blk.%d.ffn_gate_shexp.weight", l));
                TRY(MAT(&b, E, Fs, "blk.%d.ffn_up_shexp.weight", l));
                TRY(MAT(&b, Fs, E, "blk.%d.ffn_down_shexp.weight", l));
            }
        }
    }

    /* Types. 1-D tensors (norms, biases, rope_freqs) and the router (llama.cpp never quantizes
     * ffn_gate_inp) are F32. */
    mix_state st = {0};
    for (int i = 0; i < b.n; i++) {
        const char *nm = b.t[i].name;
        if (contains(nm, "attn_qkv.weight") || contains(nm, "attn_kv_b.weight") || contains(nm, "attn_v.weight"))
            st.n_attention_wv++;
    }
    for (int i = 0; i < b.n; i++) {
        synth_tensor *t = &b.t[i];
        if (t->n_dims == 1 || contains(t->name, "ffn_gate_inp.weight")) {
            t->type = TS_TYPE_F32;
            continue;
        }
        int type = req->mix == SYNTH_MIX_NONE ? req->base_type : mix_type(m, req, &st, t);
        t->type = fallback_type(type, t->ne[0]);
    }
    *out = b.t;
    *n_out = b.n;
    return 0;
oom:
    free(b.t);
    return ts_fail(err, "out of memory planning tensors");
}

float synth_llama3_rope_divisor(const synth_model *m, int i, int n_pairs) {
    /* dense.md §1.1. The converter computes the base frequencies in float32 (torch) and the rest in
     * Python floats (double); do the same so the stored divisors match a converted file. */
    const double two_pi = 6.283185307179586;
    const float exponent = (float)(2 * i) / (float)(2 * n_pairs);
    const double f = (double)(1.0f / powf(m->rope_theta, exponent));
    const double wl = two_pi / f;
    const double L = m->rope_orig_ctx > 0 ? m->rope_orig_ctx : 8192;
    const double lo = m->llama3_low_freq, hi = m->llama3_high_freq, factor = m->rope_factor;
    const double lo_wl = L / lo, hi_wl = L / hi;
    if (wl < hi_wl) return 1.0f;
    if (wl > lo_wl) return (float)factor;
    const double s = (L / wl - lo) / (hi - lo);
    return (float)(1.0 / ((1.0 - s) / factor + s));
}
