/* Dense decoder forward pass for `llama` (DeepSeek-LLM, DeepSeek-Coder, R1-Distill-Llama) and
 * `qwen2` (R1-Distill-Qwen): qwen2 is llama plus q/k/v biases, NEOX RoPE and an optional untied
 * output. See shared/spec/dense.md. The forward pass below reads top to bottom: embed, then per
 * layer attention and SwiGLU FFN with pre-RMSNorm residuals, then the output head. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "arch/common.h"
#include "engine/context.h"
#include "model/model.h"
#include "ops/moe.h"
#include "ops/ops.h"
#include "util/fp16.h"

/* ---- Loading --------------------------------------------------------------------------------- */

static int load_hparams(ts_model *m, bool is_qwen2, ts_err *err) {
    ts_hparams *hp = &m->hp;
    if (ts_arch_load_base_hparams(m, err)) return -1;

    hp->n_head_kv = hp->n_head;
    if (ts_model_opt_u32(m, "attention.head_count_kv", &hp->n_head_kv, err)) return -1;
    if (hp->n_head_kv < 1 || hp->n_head % hp->n_head_kv != 0)
        return ts_fail(err, "%s: head_count_kv %d does not divide head_count %d", m->path, hp->n_head_kv, hp->n_head);

    hp->head_dim = 0;
    if (ts_model_opt_u32(m, "attention.key_length", &hp->head_dim, err)) return -1;
    if (hp->head_dim == 0) {
        if (hp->n_embd % hp->n_head != 0)
            return ts_fail(err, "%s: embedding_length %d is not a multiple of head_count %d", m->path, hp->n_embd,
                           hp->n_head);
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    hp->head_dim_v = hp->head_dim;
    if (ts_model_opt_u32(m, "attention.value_length", &hp->head_dim_v, err)) return -1;
    if (hp->head_dim < 2 || hp->head_dim > 1024 || hp->head_dim % 2)
        return ts_fail(err, "%s: head dimension %d out of range", m->path, hp->head_dim);
    if (hp->head_dim_v != hp->head_dim)
        return ts_fail(err, "%s: value_length %d differs from key_length %d (not supported for %s)", m->path,
                       hp->head_dim_v, hp->head_dim, m->arch->name);
    hp->n_rot = hp->head_dim;
    if (ts_model_opt_u32(m, "rope.dimension_count", &hp->n_rot, err)) return -1;
    if (hp->n_rot != hp->head_dim)
        return ts_fail(err, "%s: rope.dimension_count %d must equal the head dimension %d", m->path, hp->n_rot, hp->head_dim);

    hp->rope_freq_base = 10000.0f;
    if (ts_model_opt_f32(m, "rope.freq_base", &hp->rope_freq_base, err)) return -1;
    if (!(hp->rope_freq_base > 0.0f)) return ts_fail(err, "%s: rope.freq_base %g out of range", m->path, (double)hp->rope_freq_base);

    /* llama.cpp: an absent scaling type means "linear"; the factor comes from rope.scaling.factor or
     * the legacy rope.scale_linear; type "none" never scales. */
    char stype[32] = "linear";
    if (ts_model_opt_str(m, "rope.scaling.type", stype, sizeof stype, err) < 0) return -1;
    float factor = 0.0f;
    if (ts_model_opt_f32(m, "rope.scaling.factor", &factor, err)) return -1;
    if (factor == 0.0f && ts_model_opt_f32(m, "rope.scale_linear", &factor, err)) return -1;
    if (strcmp(stype, "none") == 0) {
        hp->rope_freq_scale = 1.0f;
        snprintf(hp->rope_scaling, sizeof hp->rope_scaling, "none");
    } else if (strcmp(stype, "linear") == 0) {
        if (!(factor >= 0.0f) || (factor > 0.0f && factor < 1e-6f))
            return ts_fail(err, "%s: rope scaling factor %g out of range", m->path, (double)factor);
        hp->rope_freq_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
        snprintf(hp->rope_scaling, sizeof hp->rope_scaling, "%s", factor == 0.0f ? "none" : "linear");
    } else {
        return ts_fail(err, "%s: rope scaling type '%s' is not supported for %s (supported: none, linear)", m->path,
                       stype, m->arch->name);
    }
    hp->rope_mode = is_qwen2 ? TS_ROPE_NEOX : TS_ROPE_NORM;
    return 0;
}

static int load_tensors(ts_model *m, bool is_qwen2, ts_err *err) {
    ts_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, F = hp->n_ff;
    const int64_t q_dim = (int64_t)hp->n_head * hp->head_dim, kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;

    if (ts_arch_load_embeddings(m, err)) return -1;
    const int rc = ts_model_vector(m, "rope_freqs.weight", hp->n_rot / 2, true, &m->rope_freqs, err);
    if (rc < 0) return -1;
    if (rc == 0) snprintf(hp->rope_scaling, sizeof hp->rope_scaling, "llama3");

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return ts_fail(err, "out of memory");
    for (int l = 0; l < hp->n_layer; l++) {
        ts_dense_layer *L = &m->layers[l];
        char name[128];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, l), name)
        if (ts_model_vector(m, NAME("attn_norm.weight"), E, false, &L->attn_norm, err) ||
            ts_model_matrix(m, NAME("attn_q.weight"), E, q_dim, false, &L->wq, err) ||
            ts_model_matrix(m, NAME("attn_k.weight"), E, kv_dim, false, &L->wk, err) ||
            ts_model_matrix(m, NAME("attn_v.weight"), E, kv_dim, false, &L->wv, err) ||
            ts_model_matrix(m, NAME("attn_output.weight"), q_dim, E, false, &L->wo, err) ||
            ts_model_vector(m, NAME("ffn_norm.weight"), E, false, &L->ffn_norm, err) ||
            ts_model_matrix(m, NAME("ffn_gate.weight"), E, F, false, &L->w_gate, err) ||
            ts_model_matrix(m, NAME("ffn_up.weight"), E, F, false, &L->w_up, err) ||
            ts_model_matrix(m, NAME("ffn_down.weight"), F, E, false, &L->w_down, err))
            return -1;
        if (is_qwen2 && (ts_model_vector(m, NAME("attn_q.bias"), q_dim, false, &L->bq, err) ||
                         ts_model_vector(m, NAME("attn_k.bias"), kv_dim, false, &L->bk, err) ||
                         ts_model_vector(m, NAME("attn_v.bias"), kv_dim, false, &L->bv, err)))
            return -1;
#undef NAME
    }
    return 0;
}

static int load_llama(ts_model *m, ts_err *err) {
    if (load_hparams(m, false, err)) return -1;
    return load_tensors(m, false, err);
}

static int load_qwen2(ts_model *m, ts_err *err) {
    if (load_hparams(m, true, err)) return -1;
    return load_tensors(m, true, err);
}

/* ---- Per-context scratch ----------------------------------------------------------------------- */

static void dense_context_free(ts_context *c) {
    ts_dense_state *s = c->arch_state;
    if (!s) return;
    ts_dense_state_free(s);
    free(s);
    c->arch_state = NULL;
}

static int dense_context_init(ts_context *c, ts_err *err) {
    const ts_model *m = c->model;
    ts_dense_state *s = calloc(1, sizeof *s);
    if (!s) return ts_fail(err, "out of memory");
    size_t row = ts_act_row_bytes(m->types, &m->output);
    for (int l = 0; l < m->hp.n_layer; l++) {
        const ts_dense_layer *L = &m->layers[l];
        const ts_matrix *all[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        row = ts_arch_widest_act(m, all, sizeof all / sizeof all[0], row);
    }
    /* reuse: q, k, v share one conversion of their input, as do gate and up. */
    if (ts_dense_state_init(c, s, row, true, err)) {
        free(s);
        return -1;
    }
    c->arch_state = s;
    return 0;
}

/* ---- Forward pass ------------------------------------------------------------------------------- */

static int dense_forward(ts_context *c, const ts_batch *b, const bool *want, float *logits, ts_err *err) {
    const ts_model *m = c->model;
    const ts_hparams *hp = &m->hp;
    ts_dense_state *s = c->arch_state;
    const int n = b->n_tokens, E = hp->n_embd;
    if (n > s->n_batch) return ts_fail(err, "batch of %d tokens exceeds n_batch %d", n, s->n_batch);

    /* Token embeddings (dequantized rows of token_embd) and each token's RoPE angles. */
    double t0 = ts_prof_begin(c);
    ts_arch_embed(m, b, s->x);
    ts_arch_rope_cache(m, b, s->rope_cs, m->rope_freqs);
    ts_prof_end(c, TS_STEP_EMBED, t0, 0);

    for (int l = 0; l < hp->n_layer; l++) {
        const ts_dense_layer *L = &m->layers[l];

        /* Attention: x += Wo · attention(RoPE(Wq xn), RoPE(Wk xn), Wv xn) with xn = RMSNorm(x). */
        const ts_attn_weights aw = {.attn_norm = L->attn_norm, .wq = &L->wq, .wk = &L->wk, .wv = &L->wv, .wo = &L->wo,
                                    .bq = L->bq, .bk = L->bk, .bv = L->bv, .bo = NULL};
        ts_dense_attention(c, s, b, l, &aw);

        /* Feed-forward: x += W_down · (silu(W_gate xn) * (W_up xn)) with xn = RMSNorm(x). */
        t0 = ts_prof_begin(c);
        ts_arch_rmsnorm_rows(s->xn, s->x, L->ffn_norm, n, E, hp->norm_eps);
        ts_prof_end(c, TS_STEP_NORM, t0, 0);
        ts_arch_swiglu(c, &s->act, &L->w_gate, &L->w_up, &L->w_down, s->xn, s->gate, s->up, n, s->tmp);
        t0 = ts_prof_begin(c);
        ts_arch_add_rows(s->x, s->tmp, n, E);
        ts_prof_end(c, TS_STEP_NORM, t0, 0);
    }

    /* Output head, only for the rows that want logits (packed in batch order). */
    ts_arch_output(c, &s->act, s->x, s->xn, want, n, logits);
    return 0;
}

static void dense_each_matrix(ts_model *m, ts_matrix_visit_fn fn, void *user) {
    for (int l = 0; l < m->hp.n_layer; l++) {
        ts_dense_layer *L = &m->layers[l];
        ts_matrix *all[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) fn(user, all[i], 1, NULL);
    }
}

const ts_arch ts_arch_llama = {
    .name = "llama",
    .load = load_llama,
    .free = NULL,
    .kv_widths = ts_arch_dense_kv_widths,
    .context_init = dense_context_init,
    .context_free = dense_context_free,
    .forward = dense_forward,
    .each_matrix = dense_each_matrix,
};

const ts_arch ts_arch_qwen2 = {
    .name = "qwen2",
    .load = load_qwen2,
    .free = NULL,
    .kv_widths = ts_arch_dense_kv_widths,
    .context_init = dense_context_init,
    .context_free = dense_context_free,
    .forward = dense_forward,
    .each_matrix = dense_each_matrix,
};
