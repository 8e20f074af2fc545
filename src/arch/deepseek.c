/* `deepseek`: DeepSeekMoE-16B (shared/spec/dense.md §4). Attention is llama's (MHA/GQA, NORM RoPE
 * on pre-permuted q/k, scale 1/sqrt(d), optional q/k/v/o biases); the FFN is dense in the leading
 * layers and a softmax MoE with raw top-k probabilities plus always-on shared experts after them. */
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

typedef struct dsm_layer {
    const float *attn_norm, *ffn_norm, *bq, *bk, *bv, *bo;
    ts_matrix wq, wk, wv, wo;
    bool is_moe;
    ts_matrix w_gate, w_up, w_down;
    ts_moe_weights moe;
} dsm_layer;

typedef struct dsm_model {
    ts_moe_hparams moe;
    dsm_layer *layers;
} dsm_model;

/* ---- Loading --------------------------------------------------------------------------------- */

static void dsm_free(ts_model *m) {
    dsm_model *d = m->arch_data;
    if (!d) return;
    free(d->layers);
    free(d);
    m->arch_data = NULL;
}

static int load_hparams(ts_model *m, ts_err *err) {
    ts_hparams *hp = &m->hp;
    if (ts_arch_load_base_hparams(m, err)) return -1;
    hp->n_head_kv = hp->n_head;
    if (ts_model_opt_u32(m, "attention.head_count_kv", &hp->n_head_kv, err)) return -1;
    if (hp->n_head_kv < 1 || hp->n_head % hp->n_head_kv != 0)
        return ts_fail(err, "%s: head_count_kv %d does not divide head_count %d", m->path, hp->n_head_kv, hp->n_head);
    if (hp->n_embd % hp->n_head != 0)
        return ts_fail(err, "%s: embedding_length %d is not a multiple of head_count %d", m->path, hp->n_embd, hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (ts_model_opt_u32(m, "attention.key_length", &hp->head_dim, err)) return -1;
    hp->head_dim_v = hp->head_dim;
    if (ts_model_opt_u32(m, "attention.value_length", &hp->head_dim_v, err)) return -1;
    if (hp->head_dim < 2 || hp->head_dim > 1024 || hp->head_dim % 2 || hp->head_dim_v != hp->head_dim)
        return ts_fail(err, "%s: head widths %d/%d not supported", m->path, hp->head_dim, hp->head_dim_v);
    hp->n_rot = hp->head_dim;
    if (ts_model_opt_u32(m, "rope.dimension_count", &hp->n_rot, err)) return -1;
    if (hp->n_rot != hp->head_dim)
        return ts_fail(err, "%s: rope.dimension_count %d must equal the head dimension %d", m->path, hp->n_rot, hp->head_dim);
    hp->rope_freq_base = 10000.0f;
    if (ts_model_opt_f32(m, "rope.freq_base", &hp->rope_freq_base, err)) return -1;
    if (!(hp->rope_freq_base > 0.0f)) return ts_fail(err, "%s: rope.freq_base %g out of range", m->path, (double)hp->rope_freq_base);
    char stype[32] = "none";
    float factor = 0.0f;
    if (ts_model_opt_str(m, "rope.scaling.type", stype, sizeof stype, err) < 0 ||
        ts_model_opt_f32(m, "rope.scaling.factor", &factor, err))
        return -1;
    hp->rope_freq_scale = 1.0f;
    snprintf(hp->rope_scaling, sizeof hp->rope_scaling, "none");
    if (strcmp(stype, "linear") == 0 && factor != 0.0f) {
        if (!(factor >= 1e-6f && factor <= 1e6f)) return ts_fail(err, "%s: rope scaling factor %g out of range", m->path, (double)factor);
        hp->rope_freq_scale = 1.0f / factor;
        snprintf(hp->rope_scaling, sizeof hp->rope_scaling, "linear");
    } else if (strcmp(stype, "none") != 0 && strcmp(stype, "linear") != 0) {
        return ts_fail(err, "%s: rope scaling type '%s' is not supported for deepseek (none, linear)", m->path, stype);
    }
    hp->rope_mode = TS_ROPE_NORM;
    return 0;
}

static int load_tensors(ts_model *m, dsm_model *d, ts_err *err) {
    ts_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, F = hp->n_ff;
    const int64_t q_dim = (int64_t)hp->n_head * hp->head_dim, kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    if (ts_arch_load_embeddings(m, err)) return -1;

    d->layers = calloc((size_t)hp->n_layer, sizeof *d->layers);
    if (!d->layers) return ts_fail(err, "out of memory");
    for (int l = 0; l < hp->n_layer; l++) {
        dsm_layer *L = &d->layers[l];
        char name[128];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, l), name)
        if (ts_model_vector(m, NAME("attn_norm.weight"), E, false, &L->attn_norm, err) ||
            ts_model_matrix(m, NAME("attn_q.weight"), E, q_dim, false, &L->wq, err) ||
            ts_model_matrix(m, NAME("attn_k.weight"), E, kv_dim, false, &L->wk, err) ||
            ts_model_matrix(m, NAME("attn_v.weight"), E, kv_dim, false, &L->wv, err) ||
            ts_model_matrix(m, NAME("attn_output.weight"), q_dim, E, false, &L->wo, err) ||
            ts_model_vector(m, NAME("ffn_norm.weight"), E, false, &L->ffn_norm, err))
            return -1;
        if (ts_model_vector(m, NAME("attn_q.bias"), q_dim, true, &L->bq, err) < 0 ||
            ts_model_vector(m, NAME("attn_k.bias"), kv_dim, true, &L->bk, err) < 0 ||
            ts_model_vector(m, NAME("attn_v.bias"), kv_dim, true, &L->bv, err) < 0 ||
            ts_model_vector(m, NAME("attn_output.bias"), E, true, &L->bo, err) < 0)
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
#undef NAME
    }
    return 0;
}

static int dsm_load(ts_model *m, ts_err *err) {
    dsm_model *d = calloc(1, sizeof *d);
    if (!d) return ts_fail(err, "out of memory");
    m->arch_data = d;
    if (load_hparams(m, err) || ts_moe_load_hparams(m, true, &d->moe, err)) return -1;
    return load_tensors(m, d, err);
}

/* ---- Per-context scratch ----------------------------------------------------------------------- */

typedef struct dsm_state {
    ts_dense_state dense; /* llama's buffers: the attention and the dense FFN layers */
    ts_moe_scratch moe;
} dsm_state;

static void dsm_context_free(ts_context *c) {
    dsm_state *s = c->arch_state;
    if (!s) return;
    ts_dense_state_free(&s->dense);
    ts_moe_scratch_free(&s->moe);
    free(s);
    c->arch_state = NULL;
}

static int dsm_context_init(ts_context *c, ts_err *err) {
    const ts_model *m = c->model;
    const ts_hparams *hp = &m->hp;
    const dsm_model *d = m->arch_data;
    dsm_state *s = calloc(1, sizeof *s);
    if (!s) return ts_fail(err, "out of memory");
    c->arch_state = s;
    size_t row = ts_act_row_bytes(m->types, &m->output);
    for (int l = 0; l < hp->n_layer; l++) {
        const dsm_layer *L = &d->layers[l];
        const ts_matrix *all[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down, &L->moe.gate_inp,
                                  &L->moe.gate.first, &L->moe.up.first, &L->moe.down.first, &L->moe.gate_shexp,
                                  &L->moe.up_shexp, &L->moe.down_shexp};
        row = ts_arch_widest_act(m, all, sizeof all / sizeof all[0], row);
    }
    if (ts_dense_state_init(c, &s->dense, row, false, err) ||
        ts_moe_scratch_init(&s->moe, m->isa, c->params.n_batch, hp->n_embd, d->moe.n_ff_exp, d->moe.n_ff_exp * d->moe.n_shared,
                            d->moe.router.n_expert, d->moe.router.n_used, row, err)) {
        dsm_context_free(c);
        return -1;
    }
    return 0;
}

/* ---- Forward pass ------------------------------------------------------------------------------- */

static int dsm_forward(ts_context *c, const ts_batch *b, const bool *want, float *logits, ts_err *err) {
    const ts_model *m = c->model;
    const ts_hparams *hp = &m->hp;
    const dsm_model *d = m->arch_data;
    dsm_state *st = c->arch_state;
    ts_dense_state *s = &st->dense;
    const int n = b->n_tokens, E = hp->n_embd;
    if (n > s->n_batch) return ts_fail(err, "batch of %d tokens exceeds n_batch %d", n, s->n_batch);

    double t0 = ts_prof_begin(c);
    ts_arch_embed(m, b, s->x);
    ts_arch_rope_cache(m, b, s->rope_cs, NULL);
    ts_prof_end(c, TS_STEP_EMBED, t0, 0);
    for (int l = 0; l < hp->n_layer; l++) {
        const dsm_layer *L = &d->layers[l];
        /* llama's attention block, with the optional output bias. */
        const ts_attn_weights aw = {.attn_norm = L->attn_norm, .wq = &L->wq, .wk = &L->wk, .wv = &L->wv, .wo = &L->wo,
                                    .bq = L->bq, .bk = L->bk, .bv = L->bv, .bo = L->bo};
        ts_dense_attention(c, s, b, l, &aw);

        /* FFN: the routed + shared experts in MoE layers, SwiGLU in the leading dense ones. */
        t0 = ts_prof_begin(c);
        ts_arch_rmsnorm_rows(s->xn, s->x, L->ffn_norm, n, E, hp->norm_eps);
        ts_prof_end(c, TS_STEP_NORM, t0, 0);
        if (L->is_moe) {
            t0 = ts_prof_begin(c);
            ts_moe_forward(c->pool, m->types, &d->moe.router, &L->moe, &st->moe, s->xn, n, s->tmp);
            ts_prof_end(c, TS_STEP_MOE, t0, c->prof ? ts_moe_weight_bytes(&L->moe, &st->moe, n) : 0);
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

static void dsm_each_matrix(ts_model *m, ts_matrix_visit_fn fn, void *user) {
    dsm_model *d = m->arch_data;
    const int n_expert = d->moe.router.n_expert;
    for (int l = 0; l < m->hp.n_layer; l++) {
        dsm_layer *L = &d->layers[l];
        ts_matrix *dense[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof dense / sizeof dense[0]; i++) fn(user, dense[i], 1, NULL);
        if (!L->is_moe) continue;
        ts_moe_each_matrix(&L->moe, n_expert, fn, user);
    }
}

const ts_arch ts_arch_deepseek = {
    .name = "deepseek",
    .load = dsm_load,
    .free = dsm_free,
    .kv_widths = ts_arch_dense_kv_widths,
    .context_init = dsm_context_init,
    .context_free = dsm_context_free,
    .forward = dsm_forward,
    .each_matrix = dsm_each_matrix,
};
