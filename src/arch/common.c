/* Shared pieces of the architecture files (see common.h). */
#include "arch/common.h"

#include "arch/arch.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops/attn_flash.h"
#include "ops/moe.h"
#include "ops/ops.h"
#include "util/alloc.h"

/* ---- Loading --------------------------------------------------------------------------------- */

int ts_arch_load_base_hparams(ts_model *m, ts_err *err) {
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
    return 0;
}

int ts_arch_load_embeddings(ts_model *m, ts_err *err) {
    ts_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    const gguf_tensor *te = gguf_find_tensor(m->file, "token_embd.weight");
    if (!te) return ts_fail(err, "%s: tensor 'token_embd.weight' is missing", m->path);
    if (te->ne[1] < 1 || te->ne[1] > INT32_MAX)
        return ts_fail(err, "%s: tensor 'token_embd.weight' has %lld rows", m->path, (long long)te->ne[1]);
    hp->n_vocab = (int)te->ne[1];
    int vocab_key = hp->n_vocab;
    if (ts_model_opt_u32(m, "vocab_size", &vocab_key, err)) return -1;
    if (vocab_key != hp->n_vocab)
        return ts_fail(err, "%s: %s.vocab_size is %d but token_embd.weight has %d rows", m->path, m->arch->name, vocab_key,
                       hp->n_vocab);
    if (ts_model_matrix(m, "token_embd.weight", E, hp->n_vocab, false, &m->tok_embd, err)) return -1;
    if (!m->types[m->tok_embd.type].to_float)
        return ts_fail(err, "%s: token_embd.weight type cannot be dequantized", m->path);
    if (ts_model_vector(m, "output_norm.weight", E, false, &m->output_norm, err)) return -1;
    const int rc = ts_model_matrix(m, "output.weight", E, hp->n_vocab, true, &m->output, err);
    if (rc < 0) return -1;
    m->output_tied = rc == 1;
    if (m->output_tied) m->output = m->tok_embd;
    return 0;
}

void ts_arch_dense_kv_widths(const ts_model *m, int layer, int *k_width, int *v_width) {
    (void)layer;
    *k_width = m->hp.n_head_kv * m->hp.head_dim;
    *v_width = m->hp.n_head_kv * m->hp.head_dim_v;
}

/* ---- Activation buffer ------------------------------------------------------------------------- */

size_t ts_arch_widest_act(const ts_model *m, const ts_matrix *const *w, size_t n, size_t row) {
    for (size_t i = 0; i < n; i++) {
        if (!w[i]->data) continue;
        const size_t r = ts_act_row_bytes(m->types, w[i]);
        if (r > row) row = r;
    }
    return row;
}

void ts_arch_project(ts_context *c, ts_arch_act *a, const ts_matrix *w, const float *src, int n_rows, float *out) {
    const ts_type_traits *types = c->model->types;
    const int vdt = types[w->type].vec_dot_type;
    const int n = (int)w->n_in;
    if (!a->reuse || vdt == TS_TYPE_F32) {
        ts_project_rows(c->pool, types, w, src, n, n_rows, a->buf, a->row_bytes, out, (int)w->n_out);
        return;
    }
    if (a->src != src || a->type != vdt || a->rows != n_rows) {
        ts_convert_rows(c->pool, types, vdt, src, n, n, n_rows, a->buf, a->row_bytes);
        a->src = src;
        a->type = vdt;
        a->rows = n_rows;
    }
    const ts_act act = {.data = a->buf, .type = vdt, .row_bytes = a->row_bytes, .n_rows = n_rows};
    ts_matmul(c->pool, types, w, &act, out, (int)w->n_out);
}

void ts_arch_project_many(ts_context *c, ts_arch_act *a, const ts_matrix *const *w, float *const *out, int k,
                          const float *src, int n_rows) {
    const ts_type_traits *types = c->model->types;
    enum { MAX_MANY = 8 };
    const int vdt = k > 0 ? types[w[0]->type].vec_dot_type : TS_TYPE_F32;
    bool together = vdt != TS_TYPE_F32 && k <= MAX_MANY;
    for (int i = 1; together && i < k; i++)
        together = types[w[i]->type].vec_dot_type == vdt && w[i]->n_in == w[0]->n_in;
    if (!together) {
        for (int i = 0; i < k; i++) ts_arch_project(c, a, w[i], src, n_rows, out[i]);
        return;
    }
    const int n = (int)w[0]->n_in;
    if (!a->reuse || a->src != src || a->type != vdt || a->rows != n_rows) {
        ts_convert_rows(c->pool, types, vdt, src, n, n, n_rows, a->buf, a->row_bytes);
        /* Remembered only where the caller lets the buffer be reused across calls. */
        a->src = a->reuse ? src : NULL;
        a->type = vdt;
        a->rows = n_rows;
    }
    const ts_act act = {.data = a->buf, .type = vdt, .row_bytes = a->row_bytes, .n_rows = n_rows};
    ts_matmul_item items[MAX_MANY];
    for (int i = 0; i < k; i++) items[i] = (ts_matmul_item){.w = w[i], .act = act, .out = out[i], .out_stride = (int)w[i]->n_out};
    ts_matmul_many(c->pool, types, items, k);
}

/* ---- Row helpers ------------------------------------------------------------------------------- */

void ts_arch_add_bias(float *rows, const float *bias, int n_rows, int n) {
    if (!bias) return;
    for (int i = 0; i < n_rows; i++) ts_add(rows + (size_t)i * n, bias, n);
}

void ts_arch_rmsnorm_rows(float *out, const float *in, const float *w, int n_rows, int n, float eps) {
    for (int i = 0; i < n_rows; i++) ts_rmsnorm(out + (size_t)i * n, in + (size_t)i * n, w, n, eps);
}

void ts_arch_add_rows(float *y, const float *x, int n_rows, int n) {
    for (int i = 0; i < n_rows; i++) ts_add(y + (size_t)i * n, x + (size_t)i * n, n);
}

void ts_arch_embed(const ts_model *m, const ts_batch *b, float *x) {
    const ts_type_traits *et = &m->types[m->tok_embd.type];
    const int E = m->hp.n_embd;
    for (int i = 0; i < b->n_tokens; i++)
        et->to_float((const char *)m->tok_embd.data + (size_t)b->tokens[i] * m->tok_embd.row_bytes, x + (size_t)i * E, E);
}

void ts_arch_rope_cache(const ts_model *m, const ts_batch *b, float *rope_cs, const float *freq_factors) {
    const ts_hparams *hp = &m->hp;
    for (int i = 0; i < b->n_tokens; i++)
        ts_rope_cache(rope_cs + (size_t)i * hp->n_rot, b->pos[i], hp->n_rot, hp->rope_freq_base, hp->rope_freq_scale,
                      freq_factors);
}

/* ---- llama-style block ----------------------------------------------------------------------- */

void ts_dense_state_free(ts_dense_state *s) {
    free(s->x); free(s->xn); free(s->q); free(s->k); free(s->v); free(s->attn);
    free(s->gate); free(s->up); free(s->tmp); free(s->rope_cs); free(s->act.buf);
    free(s->scratch);
    free(s->tile_first);
    ts_flash_split_free(&s->split);
    memset(s, 0, sizeof *s);
}


/* One thread's attention scratch: the flash work buffer (first: the decode split uses it alone),
 * the running and next-chunk states of a query tile and of one token's group, and the tile's
 * gathered queries; each part on a cache line. Returns the floats in all (base NULL: only that). */
typedef struct dense_scratch {
    float *work, *run_tile, *part_tile, *run, *part, *q;
} dense_scratch;

static size_t dense_scratch_parts(int group, int d, float *base, dense_scratch *p) {
    const int tile = TS_DENSE_QTILE * group;
    const size_t sizes[] = {ts_flash_round16(ts_flash_work_floats(tile, d, d)),
                            ts_flash_round16(ts_flash_partial_floats(tile, d)),
                            ts_flash_round16(ts_flash_partial_floats(tile, d)),
                            ts_flash_round16(ts_flash_partial_floats(group, d)),
                            ts_flash_round16(ts_flash_partial_floats(group, d)),
                            ts_flash_round16((size_t)tile * (size_t)d)};
    float **const parts[] = {p ? &p->work : NULL, p ? &p->run_tile : NULL, p ? &p->part_tile : NULL,
                             p ? &p->run : NULL, p ? &p->part : NULL, p ? &p->q : NULL};
    size_t at = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (base) *parts[i] = base + at;
        at += sizes[i];
    }
    return at;
}

int ts_dense_state_init(ts_context *c, ts_dense_state *s, size_t act_row_bytes, bool reuse, ts_err *err) {
    const ts_hparams *hp = &c->model->hp;
    const size_t B = (size_t)c->params.n_batch, E = (size_t)hp->n_embd, F = (size_t)hp->n_ff;
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim, kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    s->n_batch = (int)B;
    s->act = (ts_arch_act){.row_bytes = act_row_bytes, .reuse = reuse};
    s->x = ts_alloc_floats(B, E);
    s->xn = ts_alloc_floats(B, E);
    s->q = ts_alloc_floats(B, q_dim);
    s->k = ts_alloc_floats(B, kv_dim);
    s->v = ts_alloc_floats(B, kv_dim);
    s->attn = ts_alloc_floats(B, q_dim);
    s->gate = ts_alloc_floats(B, F);
    s->up = ts_alloc_floats(B, F);
    s->tmp = ts_alloc_floats(B, E);
    s->rope_cs = ts_alloc_floats(B, (size_t)hp->n_rot);
    s->act.buf = malloc(B * act_row_bytes);
    const int group = hp->n_head / hp->n_head_kv;
    s->scratch_len = dense_scratch_parts(group, hp->head_dim, NULL, NULL); /* each thread's part aligned */
    s->scratch = ts_alloc_floats((size_t)c->params.n_threads, s->scratch_len);
    s->tile_first = malloc((B + 1) * sizeof *s->tile_first);
    s->flash_simd = ts_flash_simd_level(c->model->isa);
    if (!s->x || !s->xn || !s->q || !s->k || !s->v || !s->attn || !s->gate || !s->up || !s->tmp || !s->rope_cs ||
        !s->act.buf || !s->scratch || !s->tile_first) {
        ts_dense_state_free(s);
        return ts_fail(err, "out of memory allocating the forward-pass buffers for a batch of %zu", B);
    }
    if (ts_flash_split_init(&s->split, c->params.n_threads, group, hp->head_dim, c->n_ctx, (size_t)256 << 20, err)) {
        ts_dense_state_free(s);
        return -1;
    }
    return 0;
}

/* The dense models' cache is head-major within a sequence: rows [seq][KV head][position] of
 * head_dim values (ts_kv_layer's k_width = n_head_kv * head_dim sizes the whole block), so that a
 * KV head's keys and values are each one contiguous stream. Position-major rows of all KV heads
 * made each head's attention read every other 256 bytes of the cache, which the memory system
 * served at a third of its speed once two threads read the two halves (BENCHMARKS.md). */
static char *dense_kv_head(const ts_context *c, void *base, int head_dim, int seq, int kv_head) {
    const size_t first_row = ((size_t)seq * (size_t)c->model->hp.n_head_kv + (size_t)kv_head) * (size_t)c->n_ctx;
    return (char *)base + first_row * ts_row_size(c->kv_type, head_dim);
}

typedef struct attention_job {
    ts_context *c;
    ts_dense_state *s;
    const ts_batch *b;
    int layer;
} attention_job;

/* The attention unit of token i's KV head g: the query heads of that KV head's group attend
 * together, so each cached K/V row is read once per group (ts_flash_attention). */
static ts_flash_unit dense_unit(const attention_job *j, int i, int g) {
    const ts_context *c = j->c;
    const ts_hparams *hp = &c->model->hp;
    const ts_kv_layer *kv = &c->kv[j->layer];
    const int H = hp->n_head, Hkv = hp->n_head_kv, d = hp->head_dim, group = H / Hkv;
    const int seq = j->b->seq[i];
    const size_t first = (size_t)i * H * d + (size_t)g * group * d, head_bytes = ts_row_size(c->kv_type, d);
    const ts_flash_args a = {.table = c->model->types, .kv_type = c->kv_type, .n_head = group, .q = j->s->q + first,
                             .q_stride = (size_t)d,
                             .k = dense_kv_head(c, kv->k, d, seq, g), .k_row_bytes = head_bytes, .k_width = d,
                             .v = dense_kv_head(c, kv->v, d, seq, g), .v_row_bytes = head_bytes, .v_width = d,
                             .scale = 1.0f / sqrtf((float)d), .simd = j->s->flash_simd};
    return (ts_flash_unit){.args = a, .n_kv = j->b->pos[i] + 1, .out = j->s->attn + first, .out_stride = (size_t)d};
}

/* One (query tile, KV head) pair per work item: the tile's tokens (consecutive positions of one
 * sequence, s->tile_first) attend together, each cached row read once for all their heads
 * (ts_flash_attention_tokens), which also lets a 6- or 7-head group run in position-major groups of
 * 48 or 56 heads instead of padded to 8. Items are dealt out round-robin because later tokens of a
 * prompt attend to more positions. */
static void attention_task(void *arg, int ith, int nth) {
    const attention_job *j = arg;
    ts_dense_state *s = j->s;
    const ts_hparams *hp = &j->c->model->hp;
    const int H = hp->n_head, Hkv = hp->n_head_kv, d = hp->head_dim, group = H / Hkv;
    dense_scratch p;
    dense_scratch_parts(group, d, s->scratch + (size_t)ith * s->scratch_len, &p);
    for (long item = ith; item < (long)s->n_tiles * Hkv; item += nth) {
        const int tile = (int)(item / Hkv), g = (int)(item % Hkv);
        const int i0 = s->tile_first[tile], nt = s->tile_first[tile + 1] - i0;
        ts_flash_args tok[TS_DENSE_QTILE];
        float *out[TS_DENSE_QTILE];
        for (int t = 0; t < nt; t++) {
            const ts_flash_unit u = dense_unit(j, i0 + t, g);
            tok[t] = u.args;
            out[t] = u.out;
            memcpy(p.q + (size_t)t * group * d, u.args.q, (size_t)group * d * sizeof(float)); /* the group's heads */
        }
        ts_flash_args all = tok[0];
        all.n_head = nt * group;
        all.q = p.q;
        all.kernel_heads = group;
        ts_flash_attention_tokens(&all, tok, nt, j->b->pos[i0] + 1, p.run_tile, p.part_tile, p.run, p.part, p.work, out,
                                  (size_t)d);
    }
}

/* Query tiles of a batch: runs of up to TS_DENSE_QTILE tokens of one sequence at consecutive
 * positions, in batch order (tokens of interleaved sequences make tiles of one). */
static int query_tiles(const ts_batch *b, int *first) {
    int n = 0;
    for (int i = 0; i < b->n_tokens; i++)
        if (i == 0 || i - first[n - 1] == TS_DENSE_QTILE || b->seq[i] != b->seq[i - 1] || b->pos[i] != b->pos[i - 1] + 1)
            first[n++] = i;
    first[n] = b->n_tokens;
    return n;
}

void ts_dense_attention(ts_context *c, ts_dense_state *s, const ts_batch *b, int l, const ts_attn_weights *w) {
    const ts_hparams *hp = &c->model->hp;
    const ts_kv_layer *kv = &c->kv[l];
    const int n = b->n_tokens, E = hp->n_embd;
    const int H = hp->n_head, Hkv = hp->n_head_kv, d = hp->head_dim;
    const int q_dim = H * d, kv_dim = Hkv * d;

    double t0 = ts_prof_begin(c);
    ts_arch_rmsnorm_rows(s->xn, s->x, w->attn_norm, n, E, hp->norm_eps);
    ts_prof_end(c, TS_STEP_NORM, t0, 0);

    t0 = ts_prof_begin(c);
    ts_arch_act_reset(&s->act);
    const ts_matrix *qkv[] = {w->wq, w->wk, w->wv};
    float *const qkv_out[] = {s->q, s->k, s->v};
    ts_arch_project_many(c, &s->act, qkv, qkv_out, 3, s->xn, n);
    ts_arch_add_bias(s->q, w->bq, n, q_dim);
    ts_arch_add_bias(s->k, w->bk, n, kv_dim);
    ts_arch_add_bias(s->v, w->bv, n, kv_dim);
    for (int i = 0; i < n; i++) {
        const float *cs = s->rope_cs + (size_t)i * hp->n_rot;
        ts_rope_apply(s->q + (size_t)i * q_dim, H, d, hp->n_rot, cs, hp->rope_mode);
        ts_rope_apply(s->k + (size_t)i * kv_dim, Hkv, d, hp->n_rot, cs, hp->rope_mode);
        /* The whole batch goes into the cache first; causality comes from each token attending
         * only to positions <= its own. */
        const size_t at = (size_t)b->pos[i] * ts_row_size(c->kv_type, d);
        for (int g = 0; g < Hkv; g++) {
            ts_kv_store_row(c, dense_kv_head(c, kv->k, d, b->seq[i], g) + at, s->k + (size_t)i * kv_dim + (size_t)g * d, d);
            ts_kv_store_row(c, dense_kv_head(c, kv->v, d, b->seq[i], g) + at, s->v + (size_t)i * kv_dim + (size_t)g * d, d);
        }
    }
    ts_prof_end(c, TS_STEP_ATTN_IN, t0,
                ts_prof_matrix_bytes(w->wq) + ts_prof_matrix_bytes(w->wk) + ts_prof_matrix_bytes(w->wv));

    t0 = ts_prof_begin(c);
    attention_job job = {.c = c, .s = s, .b = b, .layer = l};
    /* A decode step of one sequence has only Hkv units (2 for R1-Distill-Qwen-1.5B): with more
     * threads than that, its chunks are split across all of them (flash-decoding). */
    bool done = false;
    if (ts_flash_split_wanted(&s->split, n * Hkv, ts_threadpool_size(c->pool))) {
        for (int u = 0; u < n * Hkv; u++) s->split.units[u] = dense_unit(&job, u / Hkv, u % Hkv);
        done = ts_flash_split_run(c->pool, &s->split, n * Hkv, s->scratch, s->scratch_len);
    }
    if (!done) {
        s->n_tiles = query_tiles(b, s->tile_first);
        ts_threadpool_run(c->pool, attention_task, &job);
    }
    ts_prof_end(c, TS_STEP_ATTENTION, t0, 0);

    t0 = ts_prof_begin(c);
    ts_arch_project(c, &s->act, w->wo, s->attn, n, s->tmp);
    ts_arch_add_bias(s->tmp, w->bo, n, E);
    ts_prof_end(c, TS_STEP_ATTN_OUT, t0, ts_prof_matrix_bytes(w->wo));

    t0 = ts_prof_begin(c);
    ts_arch_add_rows(s->x, s->tmp, n, E);
    ts_prof_end(c, TS_STEP_NORM, t0, 0);
}

void ts_arch_swiglu(ts_context *c, ts_arch_act *a, const ts_matrix *w_gate, const ts_matrix *w_up,
                    const ts_matrix *w_down, const float *xn, float *gate, float *up, int n, float *out) {
    const int F = (int)w_gate->n_out;
    double t0 = ts_prof_begin(c);
    ts_arch_act_reset(a);
    const ts_matrix *gate_up[] = {w_gate, w_up};
    float *const gate_up_out[] = {gate, up};
    ts_arch_project_many(c, a, gate_up, gate_up_out, 2, xn, n);
    ts_prof_end(c, TS_STEP_FFN_IN, t0, ts_prof_matrix_bytes(w_gate) + ts_prof_matrix_bytes(w_up));
    t0 = ts_prof_begin(c);
    ts_swiglu_rows(c->pool, c->model->isa, gate, up, n, F);
    ts_prof_end(c, TS_STEP_FFN_ACT, t0, 0);
    t0 = ts_prof_begin(c);
    ts_arch_project(c, a, w_down, gate, n, out);
    ts_prof_end(c, TS_STEP_FFN_OUT, t0, ts_prof_matrix_bytes(w_down));
}

void ts_arch_output(ts_context *c, ts_arch_act *a, const float *x, float *xn, const bool *want, int n, float *logits) {
    const ts_model *m = c->model;
    const int E = m->hp.n_embd;
    const double t0 = ts_prof_begin(c);
    int n_out = 0;
    for (int i = 0; i < n; i++)
        if (want[i]) ts_rmsnorm(xn + (size_t)(n_out++) * E, x + (size_t)i * E, m->output_norm, E, m->hp.norm_eps);
    ts_arch_act_reset(a);
    if (n_out > 0) ts_arch_project(c, a, &m->output, xn, n_out, logits);
    ts_arch_act_reset(a);
    ts_prof_end(c, TS_STEP_OUTPUT, t0, n_out > 0 ? ts_prof_matrix_bytes(&m->output) : 0);
}
