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
#include "engine/context.h"
#include "model/model.h"
#include "ops/ops.h"
#include "util/fp16.h"

/* ---- Loading --------------------------------------------------------------------------------- */

static int load_hparams(ts_model *m, bool is_qwen2, ts_err *err) {
    ts_hparams *hp = &m->hp;
    memset(hp, 0, sizeof *hp);
    if (ts_model_req_u32(m, "block_count", &hp->n_layer, err) || ts_model_req_u32(m, "context_length", &hp->n_ctx_train, err) ||
        ts_model_req_u32(m, "embedding_length", &hp->n_embd, err) || ts_model_req_u32(m, "feed_forward_length", &hp->n_ff, err) ||
        ts_model_req_u32(m, "attention.head_count", &hp->n_head, err) ||
        ts_model_req_f32(m, "attention.layer_norm_rms_epsilon", &hp->norm_eps, err))
        return -1;
    /* Bounds keep every later size computation far from overflow. */
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

    const gguf_tensor *te = gguf_find_tensor(m->file, "token_embd.weight");
    if (!te) return ts_fail(err, "%s: tensor 'token_embd.weight' is missing", m->path);
    if (te->ne[1] < 1 || te->ne[1] > INT32_MAX)
        return ts_fail(err, "%s: tensor 'token_embd.weight' has %lld rows", m->path, (long long)te->ne[1]);
    hp->n_vocab = (int)te->ne[1];
    int vocab_key = hp->n_vocab;
    if (ts_model_opt_u32(m, "vocab_size", &vocab_key, err)) return -1;
    if (vocab_key != hp->n_vocab)
        return ts_fail(err, "%s: %s.vocab_size is %d but token_embd.weight has %d rows", m->path, m->arch->name,
                       vocab_key, hp->n_vocab);
    if (ts_model_matrix(m, "token_embd.weight", E, hp->n_vocab, false, &m->tok_embd, err)) return -1;
    if (!m->types[m->tok_embd.type].to_float)
        return ts_fail(err, "%s: token_embd.weight type cannot be dequantized", m->path);
    if (ts_model_vector(m, "output_norm.weight", E, false, &m->output_norm, err)) return -1;
    int rc = ts_model_matrix(m, "output.weight", E, hp->n_vocab, true, &m->output, err);
    if (rc < 0) return -1;
    m->output_tied = rc == 1;
    if (m->output_tied) m->output = m->tok_embd;
    rc = ts_model_vector(m, "rope_freqs.weight", hp->n_rot / 2, true, &m->rope_freqs, err);
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

static void kv_widths(const ts_model *m, int layer, int *k_width, int *v_width) {
    (void)layer;
    *k_width = m->hp.n_head_kv * m->hp.head_dim;
    *v_width = m->hp.n_head_kv * m->hp.head_dim_v;
}

/* ---- Per-context scratch ----------------------------------------------------------------------- */

typedef struct dense_state {
    int n_batch;
    float *x;        /* [n_batch][E] residual stream */
    float *xn;       /* [n_batch][E] normalised input of the current sub-block */
    float *q, *k, *v;/* [n_batch][q_dim], [n_batch][kv_dim] x2 */
    float *attn;     /* [n_batch][q_dim] attention output per head, concatenated */
    float *gate, *up;/* [n_batch][F] */
    float *tmp;      /* [n_batch][E] sub-block outputs before the residual add */
    float *rope_cs;  /* [n_batch][n_rot] cos/sin per token */
    void *act;       /* converted activation rows (vec_dot_type of the current weight) */
    size_t act_row_bytes;
    const float *act_src; /* what `act` currently holds: source rows, type, row count */
    int act_type, act_rows;
    float *scratch;  /* [n_threads][scratch_len] attention scratch */
    size_t scratch_len; /* n_ctx + head_dim */
} dense_state;

static void dense_context_free(ts_context *c) {
    dense_state *s = c->arch_state;
    if (!s) return;
    free(s->x); free(s->xn); free(s->q); free(s->k); free(s->v); free(s->attn);
    free(s->gate); free(s->up); free(s->tmp); free(s->rope_cs); free(s->act);
    free(s->scratch);
    free(s);
    c->arch_state = NULL;
}

static size_t act_row_size(const ts_model *m, const ts_matrix *w) {
    const int vdt = m->types[w->type].vec_dot_type;
    return vdt == TS_TYPE_F32 ? (size_t)w->n_in * sizeof(float) : ts_row_size(vdt, w->n_in);
}

static void *alloc_floats(size_t rows, size_t cols) {
    return malloc(rows * cols * sizeof(float));
}

static int dense_context_init(ts_context *c, ts_err *err) {
    const ts_model *m = c->model;
    const ts_hparams *hp = &m->hp;
    dense_state *s = calloc(1, sizeof *s);
    if (!s) return ts_fail(err, "out of memory");
    c->arch_state = s;
    const size_t B = (size_t)c->params.n_batch, E = (size_t)hp->n_embd, F = (size_t)hp->n_ff;
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim, kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t T = (size_t)c->params.n_threads;
    s->n_batch = (int)B;

    size_t row = act_row_size(m, &m->output);
    for (int l = 0; l < hp->n_layer; l++) {
        const ts_dense_layer *L = &m->layers[l];
        const ts_matrix *all[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
            size_t r = act_row_size(m, all[i]);
            if (r > row) row = r;
        }
    }
    s->act_row_bytes = row;
    s->x = alloc_floats(B, E);
    s->xn = alloc_floats(B, E);
    s->q = alloc_floats(B, q_dim);
    s->k = alloc_floats(B, kv_dim);
    s->v = alloc_floats(B, kv_dim);
    s->attn = alloc_floats(B, q_dim);
    s->gate = alloc_floats(B, F);
    s->up = alloc_floats(B, F);
    s->tmp = alloc_floats(B, E);
    s->rope_cs = alloc_floats(B, (size_t)hp->n_rot);
    s->act = malloc(B * row);
    s->scratch_len = (size_t)c->n_ctx + (size_t)hp->head_dim;
    s->scratch = alloc_floats(T, s->scratch_len);
    if (!s->x || !s->xn || !s->q || !s->k || !s->v || !s->attn || !s->gate || !s->up || !s->tmp || !s->rope_cs ||
        !s->act || !s->scratch) {
        dense_context_free(c);
        return ts_fail(err, "out of memory allocating the forward-pass buffers for a batch of %zu", B);
    }
    return 0;
}

/* ---- Forward pass ------------------------------------------------------------------------------- */

/* Activation rows `src` (n_rows x n, contiguous) in w's vec_dot_type. Converted once and reused by
 * every product with the same input (q, k, v share one conversion, as do gate and up). */
static ts_act activation_for(ts_context *c, dense_state *s, const float *src, int n_rows, const ts_matrix *w) {
    const int vdt = c->model->types[w->type].vec_dot_type;
    const int n = (int)w->n_in;
    if (vdt == TS_TYPE_F32)
        return (ts_act){.data = src, .type = TS_TYPE_F32, .row_bytes = (size_t)n * sizeof(float), .n_rows = n_rows};
    if (s->act_src != src || s->act_type != vdt || s->act_rows != n_rows) {
        ts_convert_rows(c->pool, c->model->types, vdt, src, n, n, n_rows, s->act, s->act_row_bytes);
        s->act_src = src;
        s->act_type = vdt;
        s->act_rows = n_rows;
    }
    return (ts_act){.data = s->act, .type = vdt, .row_bytes = s->act_row_bytes, .n_rows = n_rows};
}

/* out[n_rows][w->n_out] = src[n_rows][w->n_in] · W^T */
static void project(ts_context *c, dense_state *s, const ts_matrix *w, const float *src, int n_rows, float *out) {
    ts_act a = activation_for(c, s, src, n_rows, w);
    ts_matmul(c->pool, c->model->types, w, &a, out, (int)w->n_out);
}

typedef struct attention_job {
    ts_context *c;
    dense_state *s;
    const ts_batch *b;
    int layer;
} attention_job;

/* One (token, query head) pair per work item: causal attention over the token's own sequence. */
static void attention_task(void *arg, int ith, int nth) {
    const attention_job *j = arg;
    ts_context *c = j->c;
    dense_state *s = j->s;
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
        const int kvh = h / group;
        ts_attention_head(c->model->types, s->attn + (size_t)i * H * d + (size_t)h * d, s->q + (size_t)i * H * d + (size_t)h * d,
                          ts_kv_row(c, kv->k, kv->k_width, seq, 0), ts_kv_row(c, kv->v, kv->v_width, seq, 0), c->kv_type,
                          (size_t)kv->k_width, (size_t)kvh * d, pos + 1, d, scale, scratch);
    }
}

static void add_bias(float *rows, const float *bias, int n_rows, int n) {
    if (!bias) return;
    for (int i = 0; i < n_rows; i++) ts_add(rows + (size_t)i * n, bias, n);
}

static int dense_forward(ts_context *c, const ts_batch *b, const bool *want, float *logits, ts_err *err) {
    const ts_model *m = c->model;
    const ts_hparams *hp = &m->hp;
    dense_state *s = c->arch_state;
    const int n = b->n_tokens, E = hp->n_embd, F = hp->n_ff;
    const int H = hp->n_head, Hkv = hp->n_head_kv, d = hp->head_dim;
    const int q_dim = H * d, kv_dim = Hkv * d;
    if (n > s->n_batch) return ts_fail(err, "batch of %d tokens exceeds n_batch %d", n, s->n_batch);
    (void)F;

    /* Token embeddings (dequantized rows of token_embd) and each token's RoPE angles. */
    const ts_type_traits *et = &m->types[m->tok_embd.type];
    for (int i = 0; i < n; i++) {
        const void *row = (const char *)m->tok_embd.data + (size_t)b->tokens[i] * m->tok_embd.row_bytes;
        et->to_float(row, s->x + (size_t)i * E, E);
        ts_rope_cache(s->rope_cs + (size_t)i * hp->n_rot, b->pos[i], hp->n_rot, hp->rope_freq_base, hp->rope_freq_scale,
                      m->rope_freqs);
    }

    for (int l = 0; l < hp->n_layer; l++) {
        const ts_dense_layer *L = &m->layers[l];
        const ts_kv_layer *kv = &c->kv[l];

        /* Attention: x += Wo · attention(RoPE(Wq xn), RoPE(Wk xn), Wv xn) with xn = RMSNorm(x). */
        for (int i = 0; i < n; i++) ts_rmsnorm(s->xn + (size_t)i * E, s->x + (size_t)i * E, L->attn_norm, E, hp->norm_eps);
        s->act_src = NULL;
        project(c, s, &L->wq, s->xn, n, s->q);
        project(c, s, &L->wk, s->xn, n, s->k);
        project(c, s, &L->wv, s->xn, n, s->v);
        add_bias(s->q, L->bq, n, q_dim);
        add_bias(s->k, L->bk, n, kv_dim);
        add_bias(s->v, L->bv, n, kv_dim);
        for (int i = 0; i < n; i++) {
            const float *cs = s->rope_cs + (size_t)i * hp->n_rot;
            ts_rope_apply(s->q + (size_t)i * q_dim, H, d, hp->n_rot, cs, hp->rope_mode);
            ts_rope_apply(s->k + (size_t)i * kv_dim, Hkv, d, hp->n_rot, cs, hp->rope_mode);
            /* The whole batch goes into the cache first; causality comes from each token attending
             * only to positions <= its own. */
            ts_kv_store_row(c, ts_kv_row(c, kv->k, kv->k_width, b->seq[i], b->pos[i]), s->k + (size_t)i * kv_dim, kv_dim);
            ts_kv_store_row(c, ts_kv_row(c, kv->v, kv->v_width, b->seq[i], b->pos[i]), s->v + (size_t)i * kv_dim, kv_dim);
        }
        attention_job job = {.c = c, .s = s, .b = b, .layer = l};
        ts_threadpool_run(c->pool, attention_task, &job);
        project(c, s, &L->wo, s->attn, n, s->tmp);
        for (int i = 0; i < n; i++) ts_add(s->x + (size_t)i * E, s->tmp + (size_t)i * E, E);

        /* Feed-forward: x += W_down · (silu(W_gate xn) * (W_up xn)) with xn = RMSNorm(x). */
        for (int i = 0; i < n; i++) ts_rmsnorm(s->xn + (size_t)i * E, s->x + (size_t)i * E, L->ffn_norm, E, hp->norm_eps);
        s->act_src = NULL;
        project(c, s, &L->w_gate, s->xn, n, s->gate);
        project(c, s, &L->w_up, s->xn, n, s->up);
        for (int i = 0; i < n; i++) ts_swiglu(s->gate + (size_t)i * F, s->up + (size_t)i * F, F);
        project(c, s, &L->w_down, s->gate, n, s->tmp);
        for (int i = 0; i < n; i++) ts_add(s->x + (size_t)i * E, s->tmp + (size_t)i * E, E);
    }

    /* Output head, only for the rows that want logits (packed in batch order). */
    int n_out = 0;
    for (int i = 0; i < n; i++)
        if (want[i]) ts_rmsnorm(s->xn + (size_t)(n_out++) * E, s->x + (size_t)i * E, m->output_norm, E, hp->norm_eps);
    if (n_out > 0) {
        s->act_src = NULL;
        project(c, s, &m->output, s->xn, n_out, logits);
    }
    s->act_src = NULL;
    return 0;
}

const ts_arch ts_arch_llama = {
    .name = "llama",
    .load = load_llama,
    .free = NULL,
    .kv_widths = kv_widths,
    .context_init = dense_context_init,
    .context_free = dense_context_free,
    .forward = dense_forward,
};

const ts_arch ts_arch_qwen2 = {
    .name = "qwen2",
    .load = load_qwen2,
    .free = NULL,
    .kv_widths = kv_widths,
    .context_init = dense_context_init,
    .context_free = dense_context_free,
    .forward = dense_forward,
};
