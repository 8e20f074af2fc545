/* `deepseek2`: DeepSeek-V2, V2-Lite, V3, R1 — Multi-head Latent Attention plus a DeepSeekMoE FFN
 * (shared/spec/deepseek2.md). Attention always runs in the absorbed form (§3.3): the cache holds per
 * token only the normalized latent c (kv_lora_rank) and the roped shared key k_pe (qk_rope_head_dim),
 * queries are projected into the latent space with W_UK, attention outputs leave it with W_UV. A batch
 * and token-by-token decoding therefore do the same arithmetic per token and agree exactly.
 * Both GGUF dialects load: mainline's 3-D attn_k_b/attn_v_b and ik's / legacy attn_kv_b (from which
 * W_UK and W_UV are dequantized into owned f32 copies at load; see load_kv_b for why). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "arch/common.h"
#include "engine/context.h"
#include "model/model.h"
#include "ops/attn_flash.h"
#include "ops/attn_split.h"
#include "util/alloc.h"
#include "ops/mla.h"
#include "ops/moe.h"
#include "ops/ops.h"
#include "util/fp16.h"

typedef struct ds2_layer {
    const float *attn_norm, *ffn_norm, *q_a_norm, *kv_a_norm;
    ts_matrix wq, wq_a, wq_b, wkv_a, wo;
    ts_matrix wk_b;        /* head h: Dn -> C (W_UKᵀ), at wk_b.data + h * wk_b_head_bytes */
    size_t wk_b_head_bytes;
    ts_matrix wv_b;        /* head h: C -> Dv (W_UV), at wv_b.data + h * wv_b_head_bytes */
    size_t wv_b_head_bytes;
    float *wk_b_owned;     /* transposed W_UK when the file only has attn_kv_b */
    float *wv_b_owned;     /* W_UV as f32 when the file only has attn_kv_b */
    int latent_round_type; /* legacy layout: the activation type c is rounded through; F32 = none */
    bool is_moe;
    ts_matrix w_gate, w_up, w_down; /* dense FFN layers */
    ts_moe_weights moe;
} ds2_layer;

typedef struct ds2_model {
    int q_lora, C, Dn, Dr, Dv;
    int n_layer_run; /* block_count minus the MTP (nextn) layers, which the forward pass skips */
    ts_yarn yarn;
    float kq_scale;
    ts_moe_hparams moe;
    ds2_layer *layers;
} ds2_model;

/* ---- Loading --------------------------------------------------------------------------------- */

static void ds2_free(ts_model *m) {
    ds2_model *d = m->arch_data;
    if (!d) return;
    if (d->layers)
        for (int l = 0; l < m->hp.n_layer; l++) {
            free(d->layers[l].wk_b_owned);
            free(d->layers[l].wv_b_owned);
        }
    free(d->layers);
    free(d);
    m->arch_data = NULL;
}

static int load_hparams(ts_model *m, ds2_model *d, ts_err *err) {
    ts_hparams *hp = &m->hp;
    memset(hp, 0, sizeof *hp);
    if (ts_model_req_u32(m, "block_count", &hp->n_layer, err) || ts_model_req_u32(m, "context_length", &hp->n_ctx_train, err) ||
        ts_model_req_u32(m, "embedding_length", &hp->n_embd, err) || ts_model_req_u32(m, "feed_forward_length", &hp->n_ff, err) ||
        ts_model_req_u32(m, "attention.head_count", &hp->n_head, err) ||
        ts_model_req_f32(m, "attention.layer_norm_rms_epsilon", &hp->norm_eps, err) ||
        ts_model_req_u32(m, "attention.kv_lora_rank", &d->C, err) || ts_model_req_u32(m, "rope.dimension_count", &d->Dr, err))
        return -1;
    if (hp->n_layer < 1 || hp->n_layer > 4096) return ts_fail(err, "%s: block_count %d out of range", m->path, hp->n_layer);
    if (hp->n_embd < 1 || hp->n_embd > (1 << 20)) return ts_fail(err, "%s: embedding_length %d out of range", m->path, hp->n_embd);
    if (hp->n_ff < 1 || hp->n_ff > (1 << 22)) return ts_fail(err, "%s: feed_forward_length %d out of range", m->path, hp->n_ff);
    if (hp->n_head < 1 || hp->n_head > 4096) return ts_fail(err, "%s: head_count %d out of range", m->path, hp->n_head);
    if (hp->n_ctx_train < 1) return ts_fail(err, "%s: context_length %d out of range", m->path, hp->n_ctx_train);
    if (!(hp->norm_eps >= 0.0f && hp->norm_eps < 1.0f)) return ts_fail(err, "%s: rms epsilon %g out of range", m->path, (double)hp->norm_eps);
    if (d->C < 1 || d->C > 65536) return ts_fail(err, "%s: kv_lora_rank %d out of range", m->path, d->C);
    if (d->Dr < 2 || d->Dr > 1024 || d->Dr % 2) return ts_fail(err, "%s: rope.dimension_count %d out of range", m->path, d->Dr);

    /* Per-head q/k and v widths: mainline writes them as *_mla (its key_length is the latent 576),
     * ik as plain key_length / value_length (deepseek2.md §8.1). */
    int Dqk = 0, Dv = 0;
    if (ts_model_opt_u32(m, "attention.key_length_mla", &Dqk, err) || ts_model_opt_u32(m, "attention.value_length_mla", &Dv, err))
        return -1;
    if (Dqk == 0 && ts_model_req_u32(m, "attention.key_length", &Dqk, err)) return -1;
    if (Dv == 0 && ts_model_req_u32(m, "attention.value_length", &Dv, err)) return -1;
    if (Dqk <= d->Dr || Dqk > 4096 || Dv < 1 || Dv > 4096)
        return ts_fail(err, "%s: head widths q/k %d, v %d do not fit rope width %d", m->path, Dqk, Dv, d->Dr);
    d->Dn = Dqk - d->Dr;
    d->Dv = Dv;
    hp->head_dim = Dqk;
    hp->head_dim_v = Dv;
    hp->n_rot = d->Dr;
    hp->n_head_kv = hp->n_head;
    if (ts_model_opt_u32(m, "attention.head_count_kv", &hp->n_head_kv, err)) return -1;

    /* q LoRA: decided by the tensor, as the q_lora_rank key is absent or unreliable in Lite files. */
    d->q_lora = 0;
    if (gguf_find_tensor(m->file, "blk.0.attn_q_a.weight")) {
        if (ts_model_req_u32(m, "attention.q_lora_rank", &d->q_lora, err)) return -1;
        if (d->q_lora < 1 || d->q_lora > 65536) return ts_fail(err, "%s: q_lora_rank %d out of range", m->path, d->q_lora);
    }

    int nextn = 0;
    if (ts_model_opt_u32(m, "nextn_predict_layers", &nextn, err)) return -1;
    if (nextn < 0 || nextn >= hp->n_layer)
        return ts_fail(err, "%s: nextn_predict_layers %d leaves no main layers of %d", m->path, nextn, hp->n_layer);
    d->n_layer_run = hp->n_layer - nextn;

    /* RoPE: none, linear or YaRN on the rope dims only; YaRN's magnitude goes into the softmax
     * scale as m² with m = 1 + yarn_log_multiplier·ln(factor) (deepseek2.md §3.4, §4). */
    hp->rope_freq_base = 10000.0f;
    if (ts_model_opt_f32(m, "rope.freq_base", &hp->rope_freq_base, err)) return -1;
    if (!(hp->rope_freq_base > 1.0f)) return ts_fail(err, "%s: rope.freq_base %g out of range", m->path, (double)hp->rope_freq_base);
    char stype[32] = "none";
    float factor = 0.0f, log_mul = 0.0f, beta_fast = 32.0f, beta_slow = 1.0f;
    int orig_ctx = hp->n_ctx_train;
    if (ts_model_opt_str(m, "rope.scaling.type", stype, sizeof stype, err) < 0 ||
        ts_model_opt_f32(m, "rope.scaling.factor", &factor, err) ||
        ts_model_opt_f32(m, "rope.scaling.yarn_log_multiplier", &log_mul, err) ||
        ts_model_opt_f32(m, "rope.scaling.yarn_beta_fast", &beta_fast, err) ||
        ts_model_opt_f32(m, "rope.scaling.yarn_beta_slow", &beta_slow, err) ||
        ts_model_opt_u32(m, "rope.scaling.original_context_length", &orig_ctx, err))
        return -1;
    if (factor == 0.0f) factor = 1.0f;
    if (!(factor >= 1e-6f && factor <= 1e6f) || !(log_mul >= 0.0f && log_mul < 100.0f) || orig_ctx < 1)
        return ts_fail(err, "%s: rope scaling parameters out of range", m->path);
    float m_scale = 1.0f;
    d->yarn = (ts_yarn){.freq_scale = 1.0f, .ext_factor = 0.0f, .corr_low = 0.0f, .corr_high = 0.0f};
    if (strcmp(stype, "yarn") == 0 && factor > 1.0f) {
        d->yarn.freq_scale = 1.0f / factor;
        d->yarn.ext_factor = 1.0f;
        ts_yarn_corr_dims(d->Dr, orig_ctx, hp->rope_freq_base, beta_fast, beta_slow, &d->yarn.corr_low, &d->yarn.corr_high);
        m_scale = 1.0f + log_mul * logf(factor);
    } else if (strcmp(stype, "linear") == 0) {
        d->yarn.freq_scale = 1.0f / factor;
    } else if (strcmp(stype, "none") != 0 && strcmp(stype, "yarn") != 0) {
        return ts_fail(err, "%s: rope scaling type '%s' is not supported for deepseek2 (none, linear, yarn)", m->path, stype);
    }
    hp->rope_freq_scale = d->yarn.freq_scale;
    snprintf(hp->rope_scaling, sizeof hp->rope_scaling, "%s", d->yarn.ext_factor > 0.0f ? "yarn" : factor != 1.0f ? "linear" : "none");
    hp->rope_mode = TS_ROPE_NORM;
    d->kq_scale = m_scale * m_scale / sqrtf((float)Dqk);
    return ts_moe_load_hparams(m, false, &d->moe, err);
}

/* A weight stored 3-D [n_in, rows, heads] (mainline) or 2-D [n_in, rows·heads] (ik) as one matrix
 * of rows·heads rows; the caller slices it per head. */
static int per_head_matrix(ts_model *m, const char *name, int64_t n_in, int64_t rows, int64_t heads, ts_matrix *out,
                           ts_err *err) {
    const gguf_tensor *t = gguf_find_tensor(m->file, name);
    if (!t) return ts_fail(err, "%s: tensor '%s' is missing", m->path, name);
    if (t->n_dims == 3) {
        const int64_t ne[3] = {n_in, rows, heads};
        if (ts_model_tensor(m, name, 3, ne, false, &t, err)) return -1;
        const ts_type_traits *tr = &m->types[t->type];
        const int vdt = tr->vec_dot_type;
        if (!tr->vec_dot || vdt < 0 || vdt >= TS_TYPE_COUNT || (vdt != TS_TYPE_F32 && !m->types[vdt].from_float))
            return ts_fail(err, "%s: tensor '%s' has type %s, which is not supported for weight matrices", m->path, name,
                           tr->name);
        *out = (ts_matrix){.data = t->data, .type = t->type, .n_in = n_in, .n_out = rows * heads,
                           .row_bytes = ts_row_size(t->type, n_in)};
        return 0;
    }
    return ts_model_matrix(m, name, n_in, rows * heads, false, out, err);
}

/* W_UK and W_UV of layer l from whichever layout the file has (deepseek2.md §3.5).
 * The legacy combined attn_kv_b is what llama.cpp runs as decompressed MHA: k_nope = W_UK·c and
 * v = W_UV·c, each a quantized product, i.e. with c rounded to attn_kv_b's activation type (Q8_0,
 * Q8_K, F16, BF16) and the weights exact. The absorbed form computes the same numbers when c is
 * rounded that way before it is cached (q_abs·c̃ = q_nope·(W_UK c̃), and Σ p·(W_UV c̃) = W_UV Σ p·c̃)
 * and both W_UK and W_UV are applied to f32 activations. Rounding anywhere else (q_nope against a
 * quantized W_UK, the attention output o_lat against a quantized W_UV) is a different, equally
 * accurate rounding that routing near-ties turn into mean KL ~1e-2 against llama.cpp on quantized
 * files (docs/deepseek2.md). The price is f32 copies of W_UK and W_UV: 4·H·C·(Dn+Dv) bytes a layer. */
static int load_kv_b(ts_model *m, ds2_model *d, int l, ds2_layer *L, ts_err *err) {
    const int64_t H = m->hp.n_head, C = d->C, Dn = d->Dn, Dv = d->Dv;
    char name[128];
    snprintf(name, sizeof name, "blk.%d.attn_k_b.weight", l);
    if (gguf_find_tensor(m->file, name)) {
        /* attn_k_b [Dn, C, H]: row (h, c) holds W_UK[h][·][c]; attn_v_b [C, Dv, H]: row (h, j) = W_UV[h][j]. */
        if (per_head_matrix(m, name, Dn, C, H, &L->wk_b, err)) return -1;
        snprintf(name, sizeof name, "blk.%d.attn_v_b.weight", l);
        if (per_head_matrix(m, name, C, Dv, H, &L->wv_b, err)) return -1;
        L->wk_b_head_bytes = L->wk_b.row_bytes * (size_t)C;
        L->wv_b_head_bytes = L->wv_b.row_bytes * (size_t)Dv;
        L->wk_b.n_out = C;
        L->wv_b.n_out = Dv;
        L->latent_round_type = TS_TYPE_F32; /* llama.cpp runs this layout absorbed too: no rounding of c */
        return 0;
    }
    snprintf(name, sizeof name, "blk.%d.attn_kv_b.weight", l);
    ts_matrix kvb;
    if (ts_model_matrix(m, name, C, H * (Dn + Dv), false, &kvb, err)) return -1;
    const ts_type_traits *tr = &m->types[kvb.type];
    if (!tr->to_float) return ts_fail(err, "%s: tensor '%s' type cannot be dequantized", m->path, name);
    /* W_UKᵀ per head as f32 rows: row (h, c) = W_kvb[h·(Dn+Dv) + d][c] over d. */
    L->wk_b_owned = malloc((size_t)(H * C * Dn) * sizeof(float));
    float *row = malloc((size_t)C * sizeof(float));
    if (!L->wk_b_owned || !row) {
        free(row);
        return ts_fail(err, "out of memory");
    }
    for (int64_t h = 0; h < H; h++)
        for (int64_t dd = 0; dd < Dn; dd++) {
            tr->to_float((const char *)kvb.data + (size_t)(h * (Dn + Dv) + dd) * kvb.row_bytes, row, (int)C);
            for (int64_t c = 0; c < C; c++) L->wk_b_owned[(h * C + c) * Dn + dd] = row[c];
        }
    free(row);
    L->wk_b = (ts_matrix){.data = L->wk_b_owned, .type = TS_TYPE_F32, .n_in = Dn, .n_out = C,
                          .row_bytes = (size_t)Dn * sizeof(float)};
    L->wk_b_head_bytes = (size_t)(C * Dn) * sizeof(float);
    /* W_UV[h] = rows h·(Dn+Dv) + Dn .. + Dv of kv_b, row j over c. */
    L->wv_b_owned = malloc((size_t)(H * Dv * C) * sizeof(float));
    if (!L->wv_b_owned) return ts_fail(err, "out of memory");
    for (int64_t h = 0; h < H; h++)
        for (int64_t j = 0; j < Dv; j++)
            tr->to_float((const char *)kvb.data + (size_t)(h * (Dn + Dv) + Dn + j) * kvb.row_bytes,
                         L->wv_b_owned + (size_t)(h * Dv + j) * (size_t)C, (int)C);
    L->wv_b = (ts_matrix){.data = L->wv_b_owned, .type = TS_TYPE_F32, .n_in = C, .n_out = Dv,
                          .row_bytes = (size_t)C * sizeof(float)};
    L->wv_b_head_bytes = (size_t)(Dv * C) * sizeof(float);
    const int vdt = tr->vec_dot_type;
    if (vdt < 0 || vdt >= TS_TYPE_COUNT)
        return ts_fail(err, "%s: tensor '%s' has no activation type", m->path, name);
    if (vdt != TS_TYPE_F32 && (!m->types[vdt].from_float || !m->types[vdt].to_float || ts_row_size(vdt, C) == 0))
        return ts_fail(err, "%s: tensor '%s' type %s: its activation type cannot round a latent of %lld", m->path, name,
                       tr->name, (long long)C);
    L->latent_round_type = vdt;
    return 0;
}

static int load_layer(ts_model *m, ds2_model *d, int l, ds2_layer *L, ts_err *err) {
    const ts_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, F = hp->n_ff, H = hp->n_head;
    const int64_t Dqk = d->Dn + d->Dr;
    char name[128];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, l), name)
    if (ts_model_vector(m, NAME("attn_norm.weight"), E, false, &L->attn_norm, err) ||
        ts_model_vector(m, NAME("ffn_norm.weight"), E, false, &L->ffn_norm, err))
        return -1;
    if (d->q_lora > 0) {
        if (ts_model_matrix(m, NAME("attn_q_a.weight"), E, d->q_lora, false, &L->wq_a, err) ||
            ts_model_vector(m, NAME("attn_q_a_norm.weight"), d->q_lora, false, &L->q_a_norm, err) ||
            ts_model_matrix(m, NAME("attn_q_b.weight"), d->q_lora, H * Dqk, false, &L->wq_b, err))
            return -1;
    } else if (ts_model_matrix(m, NAME("attn_q.weight"), E, H * Dqk, false, &L->wq, err)) {
        return -1;
    }
    if (ts_model_matrix(m, NAME("attn_kv_a_mqa.weight"), E, d->C + d->Dr, false, &L->wkv_a, err) ||
        ts_model_vector(m, NAME("attn_kv_a_norm.weight"), d->C, false, &L->kv_a_norm, err) ||
        load_kv_b(m, d, l, L, err) ||
        ts_model_matrix(m, NAME("attn_output.weight"), H * d->Dv, E, false, &L->wo, err))
        return -1;
    L->is_moe = l >= d->moe.n_leading_dense;
    if (L->is_moe) {
        if (gguf_find_tensor(m->file, NAME("ffn_gate_up_exps.weight")))
            return ts_fail(err, "%s: fused tensor '%s' is not supported", m->path, name);
        if (ts_moe_load_layer(m, l, &d->moe, &L->moe, err)) return -1;
    } else if (ts_model_matrix(m, NAME("ffn_gate.weight"), E, F, false, &L->w_gate, err) ||
               ts_model_matrix(m, NAME("ffn_up.weight"), E, F, false, &L->w_up, err) ||
               ts_model_matrix(m, NAME("ffn_down.weight"), F, E, false, &L->w_down, err)) {
        return -1;
    }
    if (l >= d->n_layer_run) {
        /* An MTP (nextn) block: its decoder weights are loaded above; these are its extra inputs.
         * It is validated but not run (deepseek2.md §6). */
        const gguf_tensor *t;
        const int64_t eh[2] = {2 * E, E};
        const float *v;
        if (ts_model_tensor(m, NAME("nextn.eh_proj.weight"), 2, eh, false, &t, err) ||
            ts_model_vector(m, NAME("nextn.enorm.weight"), E, false, &v, err) ||
            ts_model_vector(m, NAME("nextn.hnorm.weight"), E, false, &v, err) ||
            ts_model_vector(m, NAME("nextn.shared_head_norm.weight"), E, true, &v, err) < 0)
            return -1;
    }
#undef NAME
    return 0;
}

static int ds2_load(ts_model *m, ts_err *err) {
    ds2_model *d = calloc(1, sizeof *d);
    if (!d) return ts_fail(err, "out of memory");
    m->arch_data = d;
    if (load_hparams(m, d, err) || ts_arch_load_embeddings(m, err)) return -1;
    d->layers = calloc((size_t)m->hp.n_layer, sizeof *d->layers);
    if (!d->layers) return ts_fail(err, "out of memory");
    for (int l = 0; l < m->hp.n_layer; l++)
        if (load_layer(m, d, l, &d->layers[l], err)) return -1;
    return 0;
}

/* The latent cache: per token [c (C) | k_pe (Dr)] in K, nothing in V (c doubles as the value). */
static void ds2_kv_widths(const ts_model *m, int layer, int *k_width, int *v_width) {
    const ds2_model *d = m->arch_data;
    *k_width = layer < d->n_layer_run ? d->C + d->Dr : 0;
    *v_width = 0;
}

/* ---- Per-context scratch ----------------------------------------------------------------------- */

typedef struct ds2_state {
    int n_batch;
    float *x, *xn, *qa, *q, *kva, *qabs, *olat, *attn, *tmp, *gate, *up, *rope_cs;
    ts_arch_act act;
    float *scratch;
    size_t scratch_len; /* per thread: flash work buffer + running and next chunk partial states */
    int flash_simd;
    /* Decode with fewer tokens than threads splits each token's chunks across the threads
     * (flash-decoding; a token's heads are one unit). */
    ts_flash_split split;
    /* The absorbed per-head products (mla_head_products): inputs of head_slice tokens x H heads
     * converted at once (head_act, head_row bytes a row), one matrix view and item per head. */
    int head_slice;
    size_t head_row;
    void *head_act;
    ts_matrix *head_mats;
    ts_matmul_item *head_items;
    ts_moe_scratch moe;
} ds2_state;

static void ds2_context_free(ts_context *c) {
    ds2_state *s = c->arch_state;
    if (!s) return;
    free(s->x); free(s->xn); free(s->qa); free(s->q); free(s->kva); free(s->qabs); free(s->olat); free(s->attn);
    free(s->tmp); free(s->gate); free(s->up); free(s->rope_cs); free(s->act.buf); free(s->scratch);
    ts_flash_split_free(&s->split);
    free(s->head_act); free(s->head_mats); free(s->head_items);
    ts_moe_scratch_free(&s->moe);
    free(s);
    c->arch_state = NULL;
}

static int ds2_context_init(ts_context *c, ts_err *err) {
    const ts_model *m = c->model;
    const ts_hparams *hp = &m->hp;
    const ds2_model *d = m->arch_data;
    /* Attention reads the latent c as the first C values of each cache row: for a block cache type
     * (Q8_0) c must end on a block boundary (context creation checked the whole row). */
    if (ts_row_size(c->kv_type, d->C) == 0)
        return ts_fail(err, "a %s KV cache needs kv_lora_rank %d to be a multiple of %d", ts_type_name(c->kv_type), d->C,
                       m->types[c->kv_type].block_size);
    ds2_state *s = calloc(1, sizeof *s);
    if (!s) return ts_fail(err, "out of memory");
    c->arch_state = s;
    const size_t B = (size_t)c->params.n_batch, E = (size_t)hp->n_embd, H = (size_t)hp->n_head;
    const size_t Dqk = (size_t)(d->Dn + d->Dr), K = (size_t)(d->C + d->Dr);
    s->n_batch = (int)B;
    size_t row = ts_act_row_bytes(m->types, &m->output);
    for (int l = 0; l < d->n_layer_run; l++) {
        const ds2_layer *L = &d->layers[l];
        const ts_matrix *all[] = {&L->wq, &L->wq_a, &L->wq_b, &L->wkv_a, &L->wk_b, &L->wv_b, &L->wo, &L->w_gate, &L->w_up,
                                  &L->w_down, &L->moe.gate_inp, &L->moe.gate.first, &L->moe.up.first, &L->moe.down.first,
                                  &L->moe.gate_shexp, &L->moe.up_shexp, &L->moe.down_shexp};
        row = ts_arch_widest_act(m, all, sizeof all / sizeof all[0], row);
    }
    s->act = (ts_arch_act){.row_bytes = row, .reuse = false};
    s->head_row = 1;
    for (int l = 0; l < d->n_layer_run; l++) {
        const ts_matrix *heads[] = {&d->layers[l].wk_b, &d->layers[l].wv_b};
        s->head_row = ts_arch_widest_act(m, heads, 2, s->head_row);
    }
    /* about 4096 converted head rows at a time (a decode step's tokens all fit) */
    s->head_slice = (int)(4096 / H) > 0 ? (int)(4096 / H) : 1;
    if (s->head_slice > (int)B) s->head_slice = (int)B;
    s->head_act = malloc((size_t)s->head_slice * H * s->head_row);
    s->head_mats = malloc(H * sizeof *s->head_mats);
    s->head_items = malloc(H * sizeof *s->head_items);
    s->x = ts_alloc_floats(B, E);
    s->xn = ts_alloc_floats(B, E);
    s->qa = ts_alloc_floats(B, (size_t)(d->q_lora > 0 ? d->q_lora : 1));
    s->q = ts_alloc_floats(B, H * Dqk);
    s->kva = ts_alloc_floats(B, K);
    s->qabs = ts_alloc_floats(B, H * K); /* the attention's queries: rows on cache lines */
    s->olat = ts_alloc_floats(B, H * (size_t)d->C);
    s->attn = ts_alloc_floats(B, H * (size_t)d->Dv);
    s->tmp = ts_alloc_floats(B, E);
    s->gate = ts_alloc_floats(B, (size_t)hp->n_ff);
    s->up = ts_alloc_floats(B, (size_t)hp->n_ff);
    s->rope_cs = ts_alloc_floats(B, (size_t)d->Dr);
    s->act.buf = malloc(B * row);
    const size_t partial = ts_flash_partial_floats((int)H, d->C);
    s->scratch_len = ts_flash_round16(ts_flash_work_floats((int)H, (int)K, d->C) + 2 * partial); /* each thread's part aligned */
    s->scratch = ts_alloc_floats((size_t)c->params.n_threads, s->scratch_len);
    s->flash_simd = ts_flash_simd_level(m->isa);
    /* Flash-decoding buffers, capped at 256 MiB (V3's 128 heads at long contexts). */
    if (ts_flash_split_init(&s->split, c->params.n_threads, (int)H, d->C, c->n_ctx, (size_t)256 << 20, err)) {
        ds2_context_free(c);
        return -1;
    }
    if (!s->x || !s->xn || !s->qa || !s->q || !s->kva || !s->qabs || !s->olat || !s->attn || !s->tmp || !s->gate ||
        !s->up || !s->rope_cs || !s->act.buf || !s->scratch || !s->head_act || !s->head_mats || !s->head_items) {
        ds2_context_free(c);
        return ts_fail(err, "out of memory allocating the forward-pass buffers for a batch of %zu", B);
    }
    if (ts_moe_scratch_init(&s->moe, m->isa, (int)B, hp->n_embd, d->moe.n_ff_exp, d->moe.n_ff_exp * d->moe.n_shared,
                            d->moe.router.n_expert, d->moe.router.n_used, row, err)) {
        ds2_context_free(c);
        return -1;
    }
    return 0;
}

/* ---- Forward pass ------------------------------------------------------------------------------- */

typedef struct mla_job {
    ts_context *c;
    ds2_state *s;
    const ts_batch *b;
    int layer;
} mla_job;

static ts_flash_args mla_flash_args(const mla_job *j, int i) {
    const ts_context *c = j->c;
    const ds2_model *d = c->model->arch_data;
    const ts_kv_layer *kv = &c->kv[j->layer];
    const int H = c->model->hp.n_head, K = d->C + d->Dr;
    const char *rows = ts_kv_row(c, kv->k, kv->k_width, j->b->seq[i], 0);
    const size_t row_bytes = ts_row_size(c->kv_type, kv->k_width);
    /* Every head attends to the same latent rows: key = [c | k_pe] (K values), value = c. */
    return (ts_flash_args){.table = c->model->types, .kv_type = c->kv_type, .n_head = H,
                           .q = j->s->qabs + (size_t)i * H * K, .q_stride = (size_t)K, .k = rows, .k_row_bytes = row_bytes,
                           .k_width = K, .v = rows, .v_row_bytes = row_bytes, .v_width = d->C, .scale = d->kq_scale,
                           .simd = j->s->flash_simd};
}

/* One token (all heads) per work item, its chunks in order: prompt batches. Items are dealt out
 * round-robin because later tokens of a prompt attend to more positions. */
static void mla_attention_task(void *arg, int ith, int nth) {
    const mla_job *j = arg;
    ds2_state *s = j->s;
    const ds2_model *d = j->c->model->arch_data;
    const int H = j->c->model->hp.n_head;
    float *work = s->scratch + (size_t)ith * s->scratch_len;
    const size_t partial = ts_flash_partial_floats(H, d->C);
    float *run = work + s->scratch_len - 2 * partial, *part = run + partial;
    for (int i = ith; i < j->b->n_tokens; i += nth) {
        const ts_flash_args a = mla_flash_args(j, i);
        ts_flash_attention(&a, j->b->pos[i] + 1, run, part, work, s->olat + (size_t)i * H * d->C, (size_t)d->C);
    }
}

static void mla_attention(ts_context *c, ds2_state *s, const ts_batch *b, int l) {
    mla_job job = {.c = c, .s = s, .b = b, .layer = l};
    const int n = b->n_tokens, H = c->model->hp.n_head;
    const ds2_model *d = c->model->arch_data;
    if (ts_flash_split_wanted(&s->split, n, ts_threadpool_size(c->pool))) {
        for (int i = 0; i < n; i++)
            s->split.units[i] = (ts_flash_unit){.args = mla_flash_args(&job, i), .n_kv = b->pos[i] + 1,
                                                .out = s->olat + (size_t)i * H * d->C, .out_stride = (size_t)d->C};
        if (ts_flash_split_run(c->pool, &s->split, n, s->scratch, s->scratch_len)) return;
    }
    ts_threadpool_run(c->pool, mla_attention_task, &job);
}

/* out[(i*H + h) * out_head + r] = (head h of w) row r · input (i, h), for n tokens, where input
 * (i, h) is the n_in floats at src + (i*H + h) * src_head and head h of w is the matrix at
 * w->data + h * head_bytes. All heads of a slice of tokens go through the pool as one set of
 * products (ts_matmul_many) after one conversion of all their inputs: one product per head was two
 * hand-offs to the pool per head — 64 of a layer's ~70 for V2-Lite's 16 heads in a decode step.
 * Each result is the same as that head's own ts_project_rows. */
static void mla_head_products(ts_context *c, ds2_state *s, const ts_matrix *w, size_t head_bytes, const float *src,
                              int src_head, int n, float *out, int out_head) {
    const ts_type_traits *types = c->model->types;
    const int H = c->model->hp.n_head, vdt = types[w->type].vec_dot_type;
    const size_t rb = vdt == TS_TYPE_F32 ? 0 : ts_row_size(vdt, (int)w->n_in);
    for (int i0 = 0; i0 < n; i0 += s->head_slice) {
        const int nt = n - i0 < s->head_slice ? n - i0 : s->head_slice;
        const float *x = src + (size_t)i0 * H * src_head;
        if (vdt != TS_TYPE_F32) ts_convert_rows(c->pool, types, vdt, x, src_head, (int)w->n_in, nt * H, s->head_act, rb);
        for (int h = 0; h < H; h++) {
            s->head_mats[h] = *w;
            s->head_mats[h].data = (const char *)w->data + (size_t)h * head_bytes;
            const ts_act act =
                vdt == TS_TYPE_F32
                    ? (ts_act){.data = x + (size_t)h * src_head, .type = TS_TYPE_F32,
                               .row_bytes = (size_t)H * src_head * sizeof(float), .n_rows = nt}
                    : (ts_act){.data = (const char *)s->head_act + (size_t)h * rb, .type = vdt, .row_bytes = (size_t)H * rb,
                               .n_rows = nt};
            s->head_items[h] = (ts_matmul_item){.w = &s->head_mats[h], .act = act,
                                                .out = out + ((size_t)i0 * H + h) * out_head, .out_stride = H * out_head};
        }
        ts_matmul_many(c->pool, types, s->head_items, H);
    }
}

/* A decode step at a small depth takes each token's heads in blocks of MLA_FUSE_HEADS through W_UK,
 * the attention and W_UV on one thread (mla_heads_task): one hand-off to the pool where the path
 * below takes three (the W_UK products, the attention, which with fewer tokens than threads and
 * one chunk runs on one thread while the others wait, and the W_UV products). A block is a
 * multiple of the position-major attention kernels' head group (8 on AVX-512, 4 on AVX2), and its
 * kernels are chosen for the token's whole group (kernel_heads), so every head gets the bits the
 * whole group gets (tests/arch/test_long_prompt.c compares one thread, which never fuses, with
 * two). Each thread reads the token's cache rows for its blocks, so the cache is read once per
 * block instead of once: MLA_FUSE_MAX_KV positions (576 KiB of an F16 V2-Lite layer) stay within
 * the L2/L3 this costs nothing measurable against; deeper, the split below reads it once. */
#define MLA_FUSE_HEADS 8
#define MLA_FUSE_MAX_TOKENS 8
#define MLA_FUSE_MAX_KV 512

static bool mla_fuse_wanted(const ts_context *c, const ds2_state *s, const ts_batch *b) {
    const int H = c->model->hp.n_head, nth = ts_threadpool_size(c->pool), n = b->n_tokens;
    if (nth < 2 || H % MLA_FUSE_HEADS != 0 || n > MLA_FUSE_MAX_TOKENS || n > s->head_slice) return false;
    if ((long)n * (H / MLA_FUSE_HEADS) < nth) return false; /* a thread would idle through the layer's heads */
    for (int i = 0; i < n; i++)
        if (b->pos[i] >= MLA_FUSE_MAX_KV) return false;
    return true;
}

/* out = head h of w (heads head_bytes apart) times the w->n_in floats at src, on this thread; the
 * input converted to w's vec_dot_type in slot first (as ts_convert_rows would). */
static void mla_head_product(const ts_type_traits *types, const ts_matrix *w, size_t head_bytes, int h, const float *src,
                             void *slot, float *out) {
    const int vdt = types[w->type].vec_dot_type, n_in = (int)w->n_in;
    ts_matrix head = *w;
    head.data = (const char *)w->data + (size_t)h * head_bytes;
    ts_act act = {.data = src, .type = TS_TYPE_F32, .row_bytes = (size_t)n_in * sizeof(float), .n_rows = 1};
    if (vdt != TS_TYPE_F32) {
        types[vdt].from_float(src, slot, n_in);
        act = (ts_act){.data = slot, .type = vdt, .row_bytes = ts_row_size(vdt, n_in), .n_rows = 1};
    }
    ts_matmul_serial(types, &head, &act, out, (int)w->n_out);
}

/* Thread ith's contiguous share of the (token, head block) units: q_abs = W_UKᵀ q_nope, the
 * attention of the block's heads, o = W_UV o_lat, head by head as mla_head_products and
 * mla_attention compute them. */
static void mla_heads_task(void *arg, int ith, int nth) {
    const mla_job *j = arg;
    ds2_state *s = j->s;
    const ts_model *m = j->c->model;
    const ds2_model *d = m->arch_data;
    const ds2_layer *L = &d->layers[j->layer];
    const int H = m->hp.n_head, C = d->C, K = d->C + d->Dr, Dqk = d->Dn + d->Dr, Dv = d->Dv;
    const int blocks = H / MLA_FUSE_HEADS;
    float *work = s->scratch + (size_t)ith * s->scratch_len;
    const size_t partial = ts_flash_partial_floats(H, C);
    float *run = work + s->scratch_len - 2 * partial, *part = run + partial;
    long ub, ue;
    ts_split_range((long)j->b->n_tokens * blocks, ith, nth, &ub, &ue);
    for (long u = ub; u < ue; u++) {
        const int i = (int)(u / blocks), h0 = (int)(u % blocks) * MLA_FUSE_HEADS;
        for (int h = h0; h < h0 + MLA_FUSE_HEADS; h++) {
            const size_t ih = (size_t)i * H + (size_t)h;
            mla_head_product(m->types, &L->wk_b, L->wk_b_head_bytes, h, s->q + ih * Dqk,
                             (char *)s->head_act + ih * s->head_row, s->qabs + ih * K);
        }
        ts_flash_args a = mla_flash_args(j, i);
        a.q += (size_t)h0 * K;
        a.n_head = MLA_FUSE_HEADS;
        a.kernel_heads = H;
        ts_flash_attention(&a, j->b->pos[i] + 1, run, part, work, s->olat + ((size_t)i * H + h0) * C, (size_t)C);
        for (int h = h0; h < h0 + MLA_FUSE_HEADS; h++) {
            const size_t ih = (size_t)i * H + (size_t)h;
            mla_head_product(m->types, &L->wv_b, L->wv_b_head_bytes, h, s->olat + ih * C,
                             (char *)s->head_act + ih * s->head_row, s->attn + ih * Dv);
        }
    }
}

static void mla_block(ts_context *c, ds2_state *s, const ts_batch *b, int l) {
    const ts_model *m = c->model;
    const ts_hparams *hp = &m->hp;
    const ds2_model *d = m->arch_data;
    const ds2_layer *L = &d->layers[l];
    const ts_kv_layer *kv = &c->kv[l];
    const int n = b->n_tokens, H = hp->n_head, C = d->C, Dr = d->Dr, Dn = d->Dn, Dv = d->Dv;
    const int Dqk = Dn + Dr, K = C + Dr;

    /* The query's first product and the latent KV product read the same rows: one pass. */
    double t0 = ts_prof_begin(c);
    const ts_matrix *from_x[] = {d->q_lora > 0 ? &L->wq_a : &L->wq, &L->wkv_a};
    float *const from_x_out[] = {d->q_lora > 0 ? s->qa : s->q, s->kva};
    ts_arch_project_many(c, &s->act, from_x, from_x_out, 2, s->xn, n);
    if (d->q_lora > 0) {
        for (int i = 0; i < n; i++) {
            float *r = s->qa + (size_t)i * d->q_lora;
            ts_rmsnorm(r, r, L->q_a_norm, d->q_lora, hp->norm_eps);
        }
        ts_arch_project(c, &s->act, &L->wq_b, s->qa, n, s->q);
    }
    for (int i = 0; i < n; i++) {
        const float *cs = s->rope_cs + (size_t)i * Dr;
        float *kva = s->kva + (size_t)i * K;
        ts_rmsnorm(kva, kva, L->kv_a_norm, C, hp->norm_eps);
        if (L->latent_round_type != TS_TYPE_F32) {
            /* Legacy layout: round c as llama.cpp's decompression does (load_kv_b). s->act holds a
             * row of C floats (W_UV is an f32 matrix of C columns), so a rounded row fits. */
            m->types[L->latent_round_type].from_float(kva, s->act.buf, C);
            m->types[L->latent_round_type].to_float(s->act.buf, kva, C);
        }
        ts_rope_apply(kva + C, 1, Dr, Dr, cs, TS_ROPE_NORM);
        ts_kv_store_row(c, ts_kv_row(c, kv->k, kv->k_width, b->seq[i], b->pos[i]), kva, K);
        float *q = s->q + (size_t)i * H * Dqk;
        ts_rope_apply(q + Dn, H, Dqk, Dr, cs, TS_ROPE_NORM);
        for (int h = 0; h < H; h++)
            memcpy(s->qabs + ((size_t)i * H + h) * K + C, q + (size_t)h * Dqk + Dn, (size_t)Dr * sizeof(float));
    }
    ts_prof_end(c, TS_STEP_ATTN_IN, t0,
                ts_prof_matrix_bytes(from_x[0]) + ts_prof_matrix_bytes(&L->wkv_a) +
                    (d->q_lora > 0 ? ts_prof_matrix_bytes(&L->wq_b) : 0));

    t0 = ts_prof_begin(c);
    if (mla_fuse_wanted(c, s, b)) {
        mla_job job = {.c = c, .s = s, .b = b, .layer = l};
        ts_threadpool_run(c->pool, mla_heads_task, &job);
    } else {
        /* q_abs[h] = W_UK[h]ᵀ q_nope[h] for every token (q_nope: the first Dn of each head's Dqk). */
        mla_head_products(c, s, &L->wk_b, L->wk_b_head_bytes, s->q, Dqk, n, s->qabs, K);
        mla_attention(c, s, b, l);
        /* o[h] = W_UV[h] o_lat[h], heads concatenated. */
        mla_head_products(c, s, &L->wv_b, L->wv_b_head_bytes, s->olat, C, n, s->attn, Dv);
    }
    ts_prof_end(c, TS_STEP_ATTENTION, t0, (uint64_t)(L->wk_b_head_bytes + L->wv_b_head_bytes) * (uint64_t)H);

    /* then W_o */
    t0 = ts_prof_begin(c);
    ts_arch_project(c, &s->act, &L->wo, s->attn, n, s->tmp);
    ts_prof_end(c, TS_STEP_ATTN_OUT, t0, ts_prof_matrix_bytes(&L->wo));
}

static int ds2_forward(ts_context *c, const ts_batch *b, const bool *want, float *logits, ts_err *err) {
    const ts_model *m = c->model;
    const ts_hparams *hp = &m->hp;
    const ds2_model *d = m->arch_data;
    ds2_state *s = c->arch_state;
    const int n = b->n_tokens, E = hp->n_embd;
    if (n > s->n_batch) return ts_fail(err, "batch of %d tokens exceeds n_batch %d", n, s->n_batch);

    double t0 = ts_prof_begin(c);
    ts_arch_embed(m, b, s->x);
    for (int i = 0; i < n; i++) ts_rope_cache_yarn(s->rope_cs + (size_t)i * d->Dr, b->pos[i], d->Dr, hp->rope_freq_base, &d->yarn);
    ts_prof_end(c, TS_STEP_EMBED, t0, 0);
    for (int l = 0; l < d->n_layer_run; l++) {
        const ds2_layer *L = &d->layers[l];
        /* Attention: x += W_o · MLA(xn) with xn = RMSNorm(x). */
        t0 = ts_prof_begin(c);
        ts_arch_rmsnorm_rows(s->xn, s->x, L->attn_norm, n, E, hp->norm_eps);
        ts_prof_end(c, TS_STEP_NORM, t0, 0);
        mla_block(c, s, b, l);
        t0 = ts_prof_begin(c);
        ts_arch_add_rows(s->x, s->tmp, n, E);
        ts_prof_end(c, TS_STEP_NORM, t0, 0);

        /* FFN: the routed + shared experts in MoE layers, SwiGLU in the leading dense ones. */
        t0 = ts_prof_begin(c);
        ts_arch_rmsnorm_rows(s->xn, s->x, L->ffn_norm, n, E, hp->norm_eps);
        ts_prof_end(c, TS_STEP_NORM, t0, 0);
        if (L->is_moe) {
            t0 = ts_prof_begin(c);
            ts_moe_forward(c->pool, m->types, &d->moe.router, &L->moe, &s->moe, s->xn, n, s->tmp);
            ts_prof_end(c, TS_STEP_MOE, t0, c->prof ? ts_moe_weight_bytes(&L->moe, &s->moe, n) : 0);
        } else {
            ts_arch_swiglu(c, &s->act, &L->w_gate, &L->w_up, &L->w_down, s->xn, s->gate, s->up, n, s->tmp);
        }
        t0 = ts_prof_begin(c);
        ts_arch_add_rows(s->x, s->tmp, n, E);
        ts_prof_end(c, TS_STEP_NORM, t0, 0);
    }
    ts_arch_output(c, &s->act, s->x, s->xn, want, n, logits);
    return 0;
}

static void ds2_each_matrix(ts_model *m, ts_matrix_visit_fn fn, void *user) {
    ds2_model *d = m->arch_data;
    const int n_expert = d->moe.router.n_expert;
    for (int l = 0; l < d->n_layer_run; l++) {
        ds2_layer *L = &d->layers[l];
        ts_matrix *dense[] = {&L->wq, &L->wq_a, &L->wq_b, &L->wkv_a, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof dense / sizeof dense[0]; i++) fn(user, dense[i], 1, NULL);
        /* W_UK / W_UV (3-D files: one matrix per head, heads back to back) are used per head
         * through views head_bytes apart: a stack of n_head matrices, whose head_bytes the
         * repacking updates. The f32 copies made from a legacy attn_kv_b have no repacked layout. */
        if (L->wk_b_head_bytes) fn(user, &L->wk_b, m->hp.n_head, &L->wk_b_head_bytes);
        if (L->wv_b_head_bytes) fn(user, &L->wv_b, m->hp.n_head, &L->wv_b_head_bytes);
        if (!L->is_moe) continue;
        ts_moe_each_matrix(&L->moe, n_expert, fn, user);
    }
}

const ts_arch ts_arch_deepseek2 = {
    .name = "deepseek2",
    .load = ds2_load,
    .free = ds2_free,
    .kv_widths = ds2_kv_widths,
    .context_init = ds2_context_init,
    .context_free = ds2_context_free,
    .forward = ds2_forward,
    .each_matrix = ds2_each_matrix,
};
