/* `deepseek`: DeepSeekMoE-16B (shared/spec/dense.md §4). Attention is llama's (MHA/GQA, NORM RoPE
 * on pre-permuted q/k, scale 1/sqrt(d), optional q/k/v/o biases); the FFN is dense in the leading
 * layers and a softmax MoE with raw top-k probabilities plus always-on shared experts after them. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
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
    memset(hp, 0, sizeof *hp);
    if (ts_model_req_u32(m, "block_count", &hp->n_layer, err) || ts_model_req_u32(m, "context_length", &hp->n_ctx_train, err) ||
        ts_model_req_u32(m, "embedding_length", &hp->n_embd, err) || ts_model_req_u32(m, "feed_forward_length", &hp->n_ff, err) ||
        ts_model_req_u32(m, "attention.head_count", &hp->n_head, err) ||
        ts_model_req_f32(m, "attention.layer_norm_rms_epsilon", &hp->norm_eps, err))
        return -1;
    if (hp->n_layer < 1 || hp->n_layer > 4096) return ts_fail(err, "%s: block_count %d out of range", m->path, hp->n_layer);
    if (hp->n_embd < 1 || hp->n_embd > (1 << 20)) return ts_fail(err, "%s: embedding_length %d out of range", m->path, hp->n_embd);
    if (hp->n_ff < 1 || hp->n_ff > (1 << 22)) return ts_fail(err, "%s: feed_forward_length %d out of range", m->path, hp->n_ff);
    if (hp->n_head < 1 || hp->n_head > 4096) return ts_fail(err, "%s: head_count %d out of range", m->path, hp->n_head);
    if (hp->n_ctx_train < 1) return ts_fail(err, "%s: context_length %d out of range", m->path, hp->n_ctx_train);
    if (!(hp->norm_eps >= 0.0f && hp->norm_eps < 1.0f)) return ts_fail(err, "%s: rms epsilon %g out of range", m->path, (double)hp->norm_eps);
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
    const gguf_tensor *te = gguf_find_tensor(m->file, "token_embd.weight");
    if (!te) return ts_fail(err, "%s: tensor 'token_embd.weight' is missing", m->path);
    if (te->ne[1] < 1 || te->ne[1] > INT32_MAX)
        return ts_fail(err, "%s: tensor 'token_embd.weight' has %lld rows", m->path, (long long)te->ne[1]);
    hp->n_vocab = (int)te->ne[1];
    int vocab_key = hp->n_vocab;
    if (ts_model_opt_u32(m, "vocab_size", &vocab_key, err)) return -1;
    if (vocab_key != hp->n_vocab)
        return ts_fail(err, "%s: deepseek.vocab_size is %d but token_embd.weight has %d rows", m->path, vocab_key, hp->n_vocab);
    if (ts_model_matrix(m, "token_embd.weight", E, hp->n_vocab, false, &m->tok_embd, err)) return -1;
    if (!m->types[m->tok_embd.type].to_float) return ts_fail(err, "%s: token_embd.weight type cannot be dequantized", m->path);
    if (ts_model_vector(m, "output_norm.weight", E, false, &m->output_norm, err)) return -1;
    const int rc = ts_model_matrix(m, "output.weight", E, hp->n_vocab, true, &m->output, err);
    if (rc < 0) return -1;
    m->output_tied = rc == 1;
    if (m->output_tied) m->output = m->tok_embd;

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

static void dsm_kv_widths(const ts_model *m, int layer, int *k_width, int *v_width) {
    (void)layer;
    *k_width = m->hp.n_head_kv * m->hp.head_dim;
    *v_width = m->hp.n_head_kv * m->hp.head_dim_v;
}

/* ---- Per-context scratch ----------------------------------------------------------------------- */

typedef struct dsm_state {
    int n_batch;
    float *x, *xn, *q, *k, *v, *attn, *gate, *up, *tmp, *rope_cs;
    void *act;
    size_t act_row_bytes;
    float *scratch;
    size_t scratch_len; /* n_ctx + head_dim per thread */
    ts_moe_scratch moe;
} dsm_state;

static void dsm_context_free(ts_context *c) {
    dsm_state *s = c->arch_state;
    if (!s) return;
    free(s->x); free(s->xn); free(s->q); free(s->k); free(s->v); free(s->attn); free(s->gate); free(s->up);
    free(s->tmp); free(s->rope_cs); free(s->act); free(s->scratch);
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
    const size_t B = (size_t)c->params.n_batch, E = (size_t)hp->n_embd, F = (size_t)hp->n_ff;
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim, kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    s->n_batch = (int)B;
    size_t row = ts_act_row_bytes(m->types, &m->output);
    for (int l = 0; l < hp->n_layer; l++) {
        const dsm_layer *L = &d->layers[l];
        const ts_matrix *all[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down, &L->moe.gate_inp,
                                  &L->moe.gate.first, &L->moe.up.first, &L->moe.down.first, &L->moe.gate_shexp,
                                  &L->moe.up_shexp, &L->moe.down_shexp};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
            if (!all[i]->data) continue;
            const size_t r = ts_act_row_bytes(m->types, all[i]);
            if (r > row) row = r;
        }
    }
    s->act_row_bytes = row;
    s->x = malloc(B * E * sizeof(float));
    s->xn = malloc(B * E * sizeof(float));
    s->q = malloc(B * q_dim * sizeof(float));
    s->k = malloc(B * kv_dim * sizeof(float));
    s->v = malloc(B * kv_dim * sizeof(float));
    s->attn = malloc(B * q_dim * sizeof(float));
    s->gate = malloc(B * F * sizeof(float));
    s->up = malloc(B * F * sizeof(float));
    s->tmp = malloc(B * E * sizeof(float));
    s->rope_cs = malloc(B * (size_t)hp->n_rot * sizeof(float));
    s->act = malloc(B * row);
    s->scratch_len = (size_t)c->n_ctx + (size_t)hp->head_dim;
    s->scratch = malloc((size_t)c->params.n_threads * s->scratch_len * sizeof(float));
    if (!s->x || !s->xn || !s->q || !s->k || !s->v || !s->attn || !s->gate || !s->up || !s->tmp || !s->rope_cs ||
        !s->act || !s->scratch) {
        dsm_context_free(c);
        return ts_fail(err, "out of memory allocating the forward-pass buffers for a batch of %zu", B);
    }
    if (ts_moe_scratch_init(&s->moe, (int)B, hp->n_embd, d->moe.n_ff_exp, d->moe.n_ff_exp * d->moe.n_shared,
                            d->moe.router.n_expert, d->moe.router.n_used, row, err)) {
        dsm_context_free(c);
        return -1;
    }
    return 0;
}

/* ---- Forward pass ------------------------------------------------------------------------------- */

static void project(ts_context *c, dsm_state *s, const ts_matrix *w, const float *src, int n, float *out) {
    ts_project_rows(c->pool, c->model->types, w, src, (int)w->n_in, n, s->act, s->act_row_bytes, out, (int)w->n_out);
}

static void add_bias(float *rows, const float *bias, int n_rows, int n) {
    if (!bias) return;
    for (int i = 0; i < n_rows; i++) ts_add(rows + (size_t)i * n, bias, n);
}

typedef struct attention_job {
    ts_context *c;
    dsm_state *s;
    const ts_batch *b;
    int layer;
} attention_job;

static void attention_task(void *arg, int ith, int nth) {
    const attention_job *j = arg;
    ts_context *c = j->c;
    dsm_state *s = j->s;
    const ts_hparams *hp = &c->model->hp;
    const ts_kv_layer *kv = &c->kv[j->layer];
    const int H = hp->n_head, d = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    const float scale = 1.0f / sqrtf((float)d);
    float *scratch = s->scratch + (size_t)ith * s->scratch_len;
    long begin, end;
    ts_split_range((long)j->b->n_tokens * H, ith, nth, &begin, &end);
    for (long item = begin; item < end; item++) {
        const int i = (int)(item / H), h = (int)(item % H);
        const int seq = j->b->seq[i], pos = j->b->pos[i];
        ts_attention_head(c->model->types, s->attn + (size_t)i * H * d + (size_t)h * d, s->q + (size_t)i * H * d + (size_t)h * d,
                          ts_kv_row(c, kv->k, kv->k_width, seq, 0), ts_kv_row(c, kv->v, kv->v_width, seq, 0), c->kv_type,
                          (size_t)kv->k_width, (size_t)(h / group) * d, pos + 1, d, scale, scratch);
    }
}

static int dsm_forward(ts_context *c, const ts_batch *b, const bool *want, float *logits, ts_err *err) {
    const ts_model *m = c->model;
    const ts_hparams *hp = &m->hp;
    const dsm_model *d = m->arch_data;
    dsm_state *s = c->arch_state;
    const int n = b->n_tokens, E = hp->n_embd, F = hp->n_ff;
    const int H = hp->n_head, Hkv = hp->n_head_kv, hd = hp->head_dim;
    const int q_dim = H * hd, kv_dim = Hkv * hd;
    if (n > s->n_batch) return ts_fail(err, "batch of %d tokens exceeds n_batch %d", n, s->n_batch);

    const ts_type_traits *et = &m->types[m->tok_embd.type];
    for (int i = 0; i < n; i++) {
        et->to_float((const char *)m->tok_embd.data + (size_t)b->tokens[i] * m->tok_embd.row_bytes, s->x + (size_t)i * E, E);
        ts_rope_cache(s->rope_cs + (size_t)i * hp->n_rot, b->pos[i], hp->n_rot, hp->rope_freq_base, hp->rope_freq_scale, NULL);
    }
    for (int l = 0; l < hp->n_layer; l++) {
        const dsm_layer *L = &d->layers[l];
        const ts_kv_layer *kv = &c->kv[l];
        for (int i = 0; i < n; i++) ts_rmsnorm(s->xn + (size_t)i * E, s->x + (size_t)i * E, L->attn_norm, E, hp->norm_eps);
        project(c, s, &L->wq, s->xn, n, s->q);
        project(c, s, &L->wk, s->xn, n, s->k);
        project(c, s, &L->wv, s->xn, n, s->v);
        add_bias(s->q, L->bq, n, q_dim);
        add_bias(s->k, L->bk, n, kv_dim);
        add_bias(s->v, L->bv, n, kv_dim);
        for (int i = 0; i < n; i++) {
            const float *cs = s->rope_cs + (size_t)i * hp->n_rot;
            ts_rope_apply(s->q + (size_t)i * q_dim, H, hd, hp->n_rot, cs, TS_ROPE_NORM);
            ts_rope_apply(s->k + (size_t)i * kv_dim, Hkv, hd, hp->n_rot, cs, TS_ROPE_NORM);
            ts_kv_store_row(c, ts_kv_row(c, kv->k, kv->k_width, b->seq[i], b->pos[i]), s->k + (size_t)i * kv_dim, kv_dim);
            ts_kv_store_row(c, ts_kv_row(c, kv->v, kv->v_width, b->seq[i], b->pos[i]), s->v + (size_t)i * kv_dim, kv_dim);
        }
        attention_job job = {.c = c, .s = s, .b = b, .layer = l};
        ts_threadpool_run(c->pool, attention_task, &job);
        project(c, s, &L->wo, s->attn, n, s->tmp);
        add_bias(s->tmp, L->bo, n, E);
        for (int i = 0; i < n; i++) ts_add(s->x + (size_t)i * E, s->tmp + (size_t)i * E, E);

        for (int i = 0; i < n; i++) ts_rmsnorm(s->xn + (size_t)i * E, s->x + (size_t)i * E, L->ffn_norm, E, hp->norm_eps);
        if (L->is_moe) {
            ts_moe_forward(c->pool, m->types, &d->moe.router, &L->moe, &s->moe, s->xn, n, s->tmp);
        } else {
            project(c, s, &L->w_gate, s->xn, n, s->gate);
            project(c, s, &L->w_up, s->xn, n, s->up);
            for (int i = 0; i < n; i++) ts_swiglu(s->gate + (size_t)i * F, s->up + (size_t)i * F, F);
            project(c, s, &L->w_down, s->gate, n, s->tmp);
        }
        for (int i = 0; i < n; i++) ts_add(s->x + (size_t)i * E, s->tmp + (size_t)i * E, E);
    }
    int n_out = 0;
    for (int i = 0; i < n; i++)
        if (want[i]) ts_rmsnorm(s->xn + (size_t)(n_out++) * E, s->x + (size_t)i * E, m->output_norm, E, hp->norm_eps);
    if (n_out > 0) project(c, s, &m->output, s->xn, n_out, logits);
    return 0;
}

const ts_arch ts_arch_deepseek = {
    .name = "deepseek",
    .load = dsm_load,
    .free = dsm_free,
    .kv_widths = dsm_kv_widths,
    .context_init = dsm_context_init,
    .context_free = dsm_context_free,
    .forward = dsm_forward,
};
