#include "ops/moe.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "arch/arch.h"
#include "model/model.h"

/* Index of the largest value among v[0..n) not yet taken (taken[i] != 0); ties go to the lower
 * index, as a stable descending sort would order them. -1 if every entry is taken or -inf. */
static int best_untaken(const float *v, const unsigned char *taken, int n) {
    int best = -1;
    for (int i = 0; i < n; i++)
        if (!taken[i] && v[i] != -INFINITY && (best < 0 || v[i] > v[best])) best = i;
    return best;
}

void ts_moe_route(const ts_moe_router *r, const float *logits, const float *bias, int *idx, float *weights,
                  float *scratch) {
    const int X = r->n_expert;
    float *probs = scratch;      /* the gate's scores: the weights come from these */
    float *select = scratch + X; /* what experts compete on: scores + bias, groups masked out */
    memcpy(probs, logits, (size_t)X * sizeof *probs);
    if (r->gating == TS_MOE_SIGMOID) {
        for (int i = 0; i < X; i++) probs[i] = 1.0f / (1.0f + expf(-probs[i]));
    } else {
        ts_softmax(probs, X, 1.0f);
    }
    for (int i = 0; i < X; i++) select[i] = bias ? probs[i] + bias[i] : probs[i];

    /* n_expert is bounded at load (<= TS_MOE_MAX_EXPERTS), so fixed stack arrays suffice. */
    unsigned char taken[TS_MOE_MAX_EXPERTS];

    if (r->n_group > 1 && r->n_group_used < r->n_group) {
        const int G = r->n_group, per = X / G;
        float group_score[TS_MOE_MAX_EXPERTS];
        for (int g = 0; g < G; g++) {
            const float *v = select + g * per;
            float best = -INFINITY, second = -INFINITY;
            for (int i = 0; i < per; i++) {
                if (v[i] > best) {
                    second = best;
                    best = v[i];
                } else if (v[i] > second) {
                    second = v[i];
                }
            }
            group_score[g] = r->group_score == TS_MOE_GROUP_TOP2_SUM && per > 1 ? best + second : best;
        }
        unsigned char keep[TS_MOE_MAX_EXPERTS];
        memset(taken, 0, (size_t)G);
        memset(keep, 0, (size_t)G);
        for (int k = 0; k < r->n_group_used; k++) {
            const int g = best_untaken(group_score, taken, G);
            if (g < 0) break;
            taken[g] = keep[g] = 1;
        }
        for (int i = 0; i < X; i++)
            if (!keep[i / per]) select[i] = -INFINITY;
    }

    memset(taken, 0, (size_t)X);
    double sum = 0.0;
    for (int k = 0; k < r->n_used; k++) {
        int e = best_untaken(select, taken, X);
        /* Only reachable with NaN scores (a broken model): take the lowest free id rather than
         * index out of bounds. */
        for (int i = 0; e < 0 && i < X; i++)
            if (!taken[i]) e = i;
        taken[e] = 1;
        idx[k] = e;
        weights[k] = probs[e];
        sum += probs[e];
    }
    if (r->normalize) {
        const float denom = (float)(sum + 1e-20);
        for (int k = 0; k < r->n_used; k++) weights[k] /= denom;
    }
    if (r->scale != 1.0f)
        for (int k = 0; k < r->n_used; k++) weights[k] *= r->scale;
}

size_t ts_act_row_bytes(const ts_type_traits *table, const ts_matrix *w) {
    const int vdt = table[w->type].vec_dot_type;
    return vdt == TS_TYPE_F32 ? (size_t)w->n_in * sizeof(float) : ts_row_size(vdt, w->n_in);
}

void ts_project_rows(ts_threadpool *pool, const ts_type_traits *table, const ts_matrix *w, const float *src,
                     int src_stride, int n_rows, void *act, size_t act_row_bytes, float *out, int out_stride) {
    const int vdt = table[w->type].vec_dot_type;
    ts_act a;
    if (vdt == TS_TYPE_F32) {
        a = (ts_act){.data = src, .type = TS_TYPE_F32, .row_bytes = (size_t)src_stride * sizeof(float), .n_rows = n_rows};
    } else {
        ts_convert_rows(pool, table, vdt, src, src_stride, (int)w->n_in, n_rows, act, act_row_bytes);
        a = (ts_act){.data = act, .type = vdt, .row_bytes = act_row_bytes, .n_rows = n_rows};
    }
    ts_matmul(pool, table, w, &a, out, out_stride);
}

int ts_moe_scratch_init(ts_moe_scratch *s, enum ts_isa isa, int n_batch, int n_embd, int n_ff_exp, int n_ff_shexp,
                        int n_expert, int n_used, size_t act_row_bytes, ts_err *err) {
    memset(s, 0, sizeof *s);
    s->isa = isa;
    if (n_expert < 1 || n_expert > TS_MOE_MAX_EXPERTS || n_used < 1 || n_used > n_expert)
        return ts_fail(err, "MoE with %d of %d experts is not supported", n_used, n_expert);
    s->n_batch = n_batch, s->n_embd = n_embd, s->n_ff_exp = n_ff_exp, s->n_ff_shexp = n_ff_shexp;
    s->n_expert = n_expert, s->n_used = n_used, s->act_row_bytes = act_row_bytes;
    const size_t B = (size_t)n_batch, K = (size_t)n_used, E = (size_t)n_embd;
    const size_t F = (size_t)(n_ff_exp > n_ff_shexp ? n_ff_exp : n_ff_shexp);
    s->logits = malloc(B * (size_t)n_expert * sizeof(float));
    s->route_tmp = malloc(2 * (size_t)n_expert * sizeof(float));
    s->idx = malloc(B * K * sizeof(int));
    s->weights = malloc(B * K * sizeof(float));
    s->count = malloc((size_t)n_expert * sizeof(int));
    s->slot_of = malloc(B * K * sizeof(int));
    s->rows = malloc(B * E * sizeof(float));
    s->gate_out = malloc(B * F * sizeof(float));
    s->up_out = malloc(B * F * sizeof(float));
    s->down_out = malloc(B * E * sizeof(float));
    s->act = malloc(B * act_row_bytes);
    s->xact = malloc(B * act_row_bytes);
    const size_t R = (B < TS_MOE_FUSED_TOKENS ? B : TS_MOE_FUSED_TOKENS) * K;
    s->fused_rows = (int)R;
    s->fused_in = malloc(R * act_row_bytes);
    s->fused_hidden = malloc(R * act_row_bytes);
    s->fused_gate = malloc(R * (size_t)n_ff_exp * sizeof(float));
    s->fused_up = malloc(R * (size_t)n_ff_exp * sizeof(float));
    s->fused_down = malloc(R * E * sizeof(float));
    s->fused_mats = malloc(3 * R * sizeof *s->fused_mats);
    s->fused_items = malloc((2 * R + 2) * sizeof *s->fused_items); /* + the shared experts' gate and up */
    if (!s->xact || !s->logits || !s->route_tmp || !s->idx || !s->weights || !s->count || !s->slot_of || !s->rows ||
        !s->gate_out || !s->up_out || !s->down_out || !s->act || !s->fused_in || !s->fused_hidden || !s->fused_gate ||
        !s->fused_up || !s->fused_down || !s->fused_mats || !s->fused_items) {
        ts_moe_scratch_free(s);
        return ts_fail(err, "out of memory allocating MoE buffers for a batch of %d", n_batch);
    }
    return 0;
}

void ts_moe_scratch_free(ts_moe_scratch *s) {
    free(s->logits); free(s->route_tmp); free(s->idx); free(s->weights); free(s->count); free(s->slot_of);
    free(s->rows); free(s->gate_out); free(s->up_out); free(s->down_out); free(s->act); free(s->xact);
    free(s->fused_in); free(s->fused_hidden); free(s->fused_gate); free(s->fused_up); free(s->fused_down);
    free(s->fused_mats); free(s->fused_items);
    memset(s, 0, sizeof *s);
}

/* down_out[n][E] = W_down · (silu(W_gate·x) * (W_up·x)) for n contiguous rows x. */
static void swiglu_ffn(ts_threadpool *pool, const ts_type_traits *table, ts_moe_scratch *s, const ts_matrix *gate,
                       const ts_matrix *up, const ts_matrix *down, const float *x, int n) {
    const int E = s->n_embd, F = (int)gate->n_out;
    ts_project_rows(pool, table, gate, x, E, n, s->act, s->act_row_bytes, s->gate_out, F);
    ts_project_rows(pool, table, up, x, E, n, s->act, s->act_row_bytes, s->up_out, F);
    ts_swiglu_rows(pool, s->isa, s->gate_out, s->up_out, n, F);
    ts_project_rows(pool, table, down, s->gate_out, F, n, s->act, s->act_row_bytes, s->down_out, E);
}

/* Whether w's products can take the inputs already converted to `vdt` (rows act_row_bytes apart). */
static bool takes_converted(const ts_type_traits *table, const ts_matrix *w, int vdt) {
    return w->data && vdt != TS_TYPE_F32 && table[w->type].vec_dot_type == vdt;
}

/* out = W · the converted rows act (n rows act_row_bytes apart). */
static void matmul_converted(ts_threadpool *pool, const ts_type_traits *table, const ts_moe_scratch *s,
                             const ts_matrix *w, const void *act, int vdt, int n, float *out) {
    const ts_act a = {.data = act, .type = vdt, .row_bytes = s->act_row_bytes, .n_rows = n};
    ts_matmul(pool, table, w, &a, out, (int)w->n_out);
}

/* The experts of a small batch (n <= TS_MOE_FUSED_TOKENS, inputs converted once into s->xact):
 * every chosen expert's gate and up products (and the shared experts', with_shared) in one
 * ts_matmul_many, SwiGLU, every down product in a second one, then each token's weighted sum in
 * ascending expert order and the shared experts' output. Each product row is the same kernel
 * result as in the expert-by-expert path, and the sums run in the same order, so both paths give
 * identical numbers. */
static void experts_fused(ts_threadpool *pool, const ts_type_traits *table, const ts_moe_weights *w, ts_moe_scratch *s,
                          int n, int vdt, bool with_shared, float *out) {
    const int K = s->n_used, E = s->n_embd, X = s->n_expert, F = (int)w->gate.first.n_out;
    const size_t arb = s->act_row_bytes;
    const int rows = n * K;
    for (int j = 0; j < rows; j++)
        memcpy((char *)s->fused_in + (size_t)j * arb, (const char *)s->xact + (size_t)(s->slot_of[j] / K) * arb, arb);
    int n_items = 0, n_mats = 0, begin = 0;
    for (int e = 0; e < X; e++) {
        const int end = s->count[e];
        if (end == begin) continue;
        const ts_act in = {.data = (const char *)s->fused_in + (size_t)begin * arb, .type = vdt, .row_bytes = arb,
                           .n_rows = end - begin};
        s->fused_mats[n_mats] = ts_expert_matrix(&w->gate, e);
        s->fused_items[n_items++] = (ts_matmul_item){.w = &s->fused_mats[n_mats++], .act = in,
                                                     .out = s->fused_gate + (size_t)begin * F, .out_stride = F};
        s->fused_mats[n_mats] = ts_expert_matrix(&w->up, e);
        s->fused_items[n_items++] = (ts_matmul_item){.w = &s->fused_mats[n_mats++], .act = in,
                                                     .out = s->fused_up + (size_t)begin * F, .out_stride = F};
        begin = end;
    }
    const int Fs = with_shared ? (int)w->gate_shexp.n_out : 0;
    if (with_shared) {
        const ts_act in = {.data = s->xact, .type = vdt, .row_bytes = arb, .n_rows = n};
        s->fused_items[n_items++] = (ts_matmul_item){.w = &w->gate_shexp, .act = in, .out = s->gate_out, .out_stride = Fs};
        s->fused_items[n_items++] = (ts_matmul_item){.w = &w->up_shexp, .act = in, .out = s->up_out, .out_stride = Fs};
    }
    ts_matmul_many(pool, table, s->fused_items, n_items);
    ts_swiglu_rows(pool, s->isa, s->fused_gate, s->fused_up, rows, F);
    if (with_shared) ts_swiglu_rows(pool, s->isa, s->gate_out, s->up_out, n, Fs);

    const int dvdt = table[w->down.first.type].vec_dot_type;
    if (dvdt != TS_TYPE_F32) ts_convert_rows(pool, table, dvdt, s->fused_gate, F, F, rows, s->fused_hidden, arb);
    n_items = 0;
    begin = 0;
    for (int e = 0; e < X; e++) {
        const int end = s->count[e];
        if (end == begin) continue;
        const ts_act hidden =
            dvdt == TS_TYPE_F32
                ? (ts_act){.data = s->fused_gate + (size_t)begin * F, .type = TS_TYPE_F32,
                           .row_bytes = (size_t)F * sizeof(float), .n_rows = end - begin}
                : (ts_act){.data = (const char *)s->fused_hidden + (size_t)begin * arb, .type = dvdt, .row_bytes = arb,
                           .n_rows = end - begin};
        s->fused_mats[n_mats] = ts_expert_matrix(&w->down, e);
        s->fused_items[n_items++] = (ts_matmul_item){.w = &s->fused_mats[n_mats++], .act = hidden,
                                                     .out = s->fused_down + (size_t)begin * E, .out_stride = E};
        begin = end;
    }
    if (with_shared) {
        const int sdvdt = table[w->down_shexp.type].vec_dot_type;
        ts_act hidden = {.data = s->gate_out, .type = TS_TYPE_F32, .row_bytes = (size_t)Fs * sizeof(float), .n_rows = n};
        if (sdvdt != TS_TYPE_F32) {
            ts_convert_rows(pool, table, sdvdt, s->gate_out, Fs, Fs, n, s->act, arb);
            hidden = (ts_act){.data = s->act, .type = sdvdt, .row_bytes = arb, .n_rows = n};
        }
        s->fused_items[n_items++] = (ts_matmul_item){.w = &w->down_shexp, .act = hidden, .out = s->down_out, .out_stride = E};
    }
    ts_matmul_many(pool, table, s->fused_items, n_items);
    for (int j = 0; j < rows; j++) {
        const int pair = s->slot_of[j];
        const float wk = s->weights[pair];
        float *y = out + (size_t)(pair / K) * E;
        const float *v = s->fused_down + (size_t)j * E;
        for (int t = 0; t < E; t++) y[t] += wk * v[t];
    }
    if (with_shared)
        for (int i = 0; i < n; i++) ts_add(out + (size_t)i * E, s->down_out + (size_t)i * E, E);
}

void ts_moe_forward(ts_threadpool *pool, const ts_type_traits *table, const ts_moe_router *r, const ts_moe_weights *w,
                    ts_moe_scratch *s, const float *xn, int n, float *out) {
    const int E = s->n_embd, X = s->n_expert, K = s->n_used;
    /* The router, every expert's gate and up and the shared experts multiply the same input rows:
     * convert them once (the conversion of a row is the same function wherever it runs, so this
     * changes no number), instead of once per product — in a decode step that was 2·n_used + 3
     * conversions, each a pass through the thread pool. */
    const int vdt = table[w->gate.first.type].vec_dot_type;
    const bool convert_once = takes_converted(table, &w->gate.first, vdt) && takes_converted(table, &w->up.first, vdt);
    if (convert_once) ts_convert_rows(pool, table, vdt, xn, E, E, n, s->xact, s->act_row_bytes);

    /* Route every token. */
    if (convert_once && takes_converted(table, &w->gate_inp, vdt))
        matmul_converted(pool, table, s, &w->gate_inp, s->xact, vdt, n, s->logits);
    else
        ts_project_rows(pool, table, &w->gate_inp, xn, E, n, s->act, s->act_row_bytes, s->logits, X);
    for (int i = 0; i < n; i++)
        ts_moe_route(r, s->logits + (size_t)i * X, w->probs_bias, s->idx + (size_t)i * K, s->weights + (size_t)i * K,
                     s->route_tmp);

    /* Group (token, slot) pairs by expert (counting sort), so each expert runs once on its rows.
     * Within an expert the pairs keep token order. Each token accumulates its experts in ascending
     * expert id whatever else is in the batch, so batch and one-token decoding agree exactly. */
    memset(s->count, 0, (size_t)X * sizeof *s->count);
    for (int j = 0; j < n * K; j++) s->count[s->idx[j]]++;
    int start = 0;
    for (int e = 0; e < X; e++) {
        const int c = s->count[e];
        s->count[e] = start;
        start += c;
    }
    for (int j = 0; j < n * K; j++) s->slot_of[s->count[s->idx[j]]++] = j;
    /* count[e] is now the end of expert e's range; its start is the previous expert's end. */
    memset(out, 0, (size_t)n * (size_t)E * sizeof *out);
    int begin = 0;
    const bool shared_converted =
        w->gate_shexp.data && takes_converted(table, &w->gate_shexp, vdt) && takes_converted(table, &w->up_shexp, vdt);
    const bool fused = convert_once && n * K <= s->fused_rows;
    if (fused) {
        experts_fused(pool, table, w, s, n, vdt, shared_converted, out);
        begin = s->count[X - 1]; /* every expert done: skip the loop below */
    }
    for (int e = 0; e < X && begin < n * K; e++) {
        const int end = s->count[e];
        if (end == begin) continue;
        const ts_matrix g = ts_expert_matrix(&w->gate, e), u = ts_expert_matrix(&w->up, e),
                        d = ts_expert_matrix(&w->down, e);
        const int rows = end - begin;
        if (convert_once) {
            /* The expert's input rows, already converted: the token's own row when there is one
             * token (decoding), gathered otherwise. */
            const char *act = (const char *)s->xact + (size_t)(s->slot_of[begin] / K) * s->act_row_bytes;
            if (rows > 1 || n > 1) {
                for (int j = begin; j < end; j++)
                    memcpy((char *)s->act + (size_t)(j - begin) * s->act_row_bytes,
                           (const char *)s->xact + (size_t)(s->slot_of[j] / K) * s->act_row_bytes, s->act_row_bytes);
                act = s->act;
            }
            const int F = (int)g.n_out;
            matmul_converted(pool, table, s, &g, act, vdt, rows, s->gate_out);
            matmul_converted(pool, table, s, &u, act, vdt, rows, s->up_out);
            ts_swiglu_rows(pool, s->isa, s->gate_out, s->up_out, rows, F);
            ts_project_rows(pool, table, &d, s->gate_out, F, rows, s->act, s->act_row_bytes, s->down_out, E);
        } else {
            for (int j = begin; j < end; j++)
                memcpy(s->rows + (size_t)(j - begin) * E, xn + (size_t)(s->slot_of[j] / K) * E, (size_t)E * sizeof(float));
            swiglu_ffn(pool, table, s, &g, &u, &d, s->rows, rows);
        }
        for (int j = begin; j < end; j++) {
            const int pair = s->slot_of[j];
            const float wk = s->weights[pair];
            float *y = out + (size_t)(pair / K) * E;
            const float *v = s->down_out + (size_t)(j - begin) * E;
            for (int t = 0; t < E; t++) y[t] += wk * v[t];
        }
        begin = end;
    }

    /* Then the shared experts, unweighted (done above in the fused passes when they could be). */
    if (w->gate_shexp.data && !(fused && shared_converted)) {
        if (convert_once && shared_converted) {
            const int F = (int)w->gate_shexp.n_out;
            matmul_converted(pool, table, s, &w->gate_shexp, s->xact, vdt, n, s->gate_out);
            matmul_converted(pool, table, s, &w->up_shexp, s->xact, vdt, n, s->up_out);
            ts_swiglu_rows(pool, s->isa, s->gate_out, s->up_out, n, F);
            ts_project_rows(pool, table, &w->down_shexp, s->gate_out, F, n, s->act, s->act_row_bytes, s->down_out, E);
        } else {
            swiglu_ffn(pool, table, s, &w->gate_shexp, &w->up_shexp, &w->down_shexp, xn, n);
        }
        for (int i = 0; i < n; i++) ts_add(out + (size_t)i * E, s->down_out + (size_t)i * E, E);
    }
}

/* ---- Loading ------------------------------------------------------------------------------------ */

int ts_moe_load_hparams(ts_model *m, bool raw_softmax_weights, ts_moe_hparams *hp, ts_err *err) {
    memset(hp, 0, sizeof *hp);
    ts_moe_router *r = &hp->router;
    int gating = TS_MOE_SOFTMAX;
    if (ts_model_req_u32(m, "expert_count", &r->n_expert, err) || ts_model_req_u32(m, "expert_used_count", &r->n_used, err) ||
        ts_model_req_u32(m, "expert_feed_forward_length", &hp->n_ff_exp, err) ||
        ts_model_opt_u32(m, "expert_shared_count", &hp->n_shared, err) ||
        ts_model_opt_u32(m, "leading_dense_block_count", &hp->n_leading_dense, err) ||
        ts_model_opt_u32(m, "expert_gating_func", &gating, err) ||
        ts_model_opt_u32(m, "expert_group_count", &r->n_group, err) ||
        ts_model_opt_u32(m, "expert_group_used_count", &r->n_group_used, err))
        return -1;
    if (r->n_expert < 1 || r->n_expert > TS_MOE_MAX_EXPERTS || r->n_used < 1 || r->n_used > r->n_expert)
        return ts_fail(err, "%s: %d of %d experts used is out of range (at most %d experts)", m->path, r->n_used,
                       r->n_expert, TS_MOE_MAX_EXPERTS);
    if (hp->n_ff_exp < 1 || hp->n_ff_exp > (1 << 20) || hp->n_shared < 0 || hp->n_shared > 64)
        return ts_fail(err, "%s: expert width %d / shared experts %d out of range", m->path, hp->n_ff_exp, hp->n_shared);
    if (hp->n_leading_dense < 0 || hp->n_leading_dense > m->hp.n_layer)
        return ts_fail(err, "%s: leading_dense_block_count %d out of range", m->path, hp->n_leading_dense);
    if (gating != TS_MOE_SOFTMAX && gating != TS_MOE_SIGMOID)
        return ts_fail(err, "%s: expert_gating_func %d is not supported (1 softmax, 2 sigmoid)", m->path, gating);
    r->gating = (enum ts_moe_gating)gating;
    if (r->n_group > 1) {
        if (r->n_expert % r->n_group != 0 || r->n_group_used < 1 || r->n_group_used > r->n_group)
            return ts_fail(err, "%s: %d expert groups (%d used) do not fit %d experts", m->path, r->n_group,
                           r->n_group_used, r->n_expert);
        /* Enough experts must survive the group mask. */
        if ((int64_t)r->n_group_used * (r->n_expert / r->n_group) < r->n_used)
            return ts_fail(err, "%s: %d expert groups of %d leave fewer than %d experts", m->path, r->n_group_used,
                           r->n_expert / r->n_group, r->n_used);
    }
    r->group_score = TS_MOE_GROUP_MAX;
    r->scale = 1.0f;
    r->normalize = false;
    if (!raw_softmax_weights) {
        if (ts_model_opt_f32(m, "expert_weights_scale", &r->scale, err)) return -1;
        if (!(r->scale > 0.0f && r->scale < 1e6f))
            return ts_fail(err, "%s: expert_weights_scale %g out of range", m->path, (double)r->scale);
        char key[160];
        snprintf(key, sizeof key, "%s.expert_weights_norm", m->arch->name);
        const gguf_kv *kv = gguf_find_kv(m->file, key);
        if (kv) {
            if (kv->type != GGUF_BOOL) return ts_fail(err, "%s: key '%s' is not a bool", m->path, key);
            r->normalize = *(const unsigned char *)kv->data != 0;
        }
    }
    return 0;
}

int ts_moe_load_layer(ts_model *m, int l, ts_moe_hparams *hp, ts_moe_weights *w, ts_err *err) {
    memset(w, 0, sizeof *w);
    const int64_t E = m->hp.n_embd, F = hp->n_ff_exp, X = hp->router.n_expert, Fs = (int64_t)hp->n_ff_exp * hp->n_shared;
    char name[128];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, l), name)
    if (ts_model_matrix(m, NAME("ffn_gate_inp.weight"), E, X, false, &w->gate_inp, err) < 0) return -1;
    if (ts_model_vector(m, NAME("exp_probs_b.bias"), X, true, &w->probs_bias, err) < 0) return -1;
    if (w->probs_bias) hp->router.group_score = TS_MOE_GROUP_TOP2_SUM;
    struct {
        const char *suffix;
        int64_t n_in, n_out;
        ts_expert_stack *out;
    } stacks[] = {{"ffn_gate_exps.weight", E, F, &w->gate}, {"ffn_up_exps.weight", E, F, &w->up},
                  {"ffn_down_exps.weight", F, E, &w->down}};
    for (size_t i = 0; i < sizeof stacks / sizeof stacks[0]; i++) {
        snprintf(name, sizeof name, "blk.%d.%s", l, stacks[i].suffix);
        const int64_t ne[3] = {stacks[i].n_in, stacks[i].n_out, X};
        const gguf_tensor *t;
        if (ts_model_tensor(m, name, 3, ne, false, &t, err)) return -1;
        const ts_type_traits *tr = &m->types[t->type];
        const int vdt = tr->vec_dot_type;
        if (!tr->vec_dot || vdt < 0 || vdt >= TS_TYPE_COUNT || (vdt != TS_TYPE_F32 && !m->types[vdt].from_float))
            return ts_fail(err, "%s: tensor '%s' has type %s, which is not supported for weight matrices", m->path, name,
                           tr->name);
        ts_matrix *mat = &stacks[i].out->first;
        mat->data = t->data;
        mat->type = t->type;
        mat->n_in = stacks[i].n_in;
        mat->n_out = stacks[i].n_out;
        mat->row_bytes = ts_row_size(t->type, stacks[i].n_in);
        stacks[i].out->expert_bytes = mat->row_bytes * (size_t)stacks[i].n_out;
    }
    if (Fs > 0 && (ts_model_matrix(m, NAME("ffn_gate_shexp.weight"), E, Fs, false, &w->gate_shexp, err) ||
                   ts_model_matrix(m, NAME("ffn_up_shexp.weight"), E, Fs, false, &w->up_shexp, err) ||
                   ts_model_matrix(m, NAME("ffn_down_shexp.weight"), Fs, E, false, &w->down_shexp, err)))
        return -1;
#undef NAME
    return 0;
}

static uint64_t matrix_bytes(const ts_matrix *w) { return w->data ? (uint64_t)w->row_bytes * (uint64_t)w->n_out : 0; }

uint64_t ts_moe_weight_bytes(const ts_moe_weights *w, const ts_moe_scratch *s, int n) {
    uint64_t bytes = matrix_bytes(&w->gate_inp) + matrix_bytes(&w->gate_shexp) + matrix_bytes(&w->up_shexp) +
                     matrix_bytes(&w->down_shexp);
    const uint64_t per_expert = matrix_bytes(&w->gate.first) + matrix_bytes(&w->up.first) + matrix_bytes(&w->down.first);
    bool seen[TS_MOE_MAX_EXPERTS] = {false};
    for (int j = 0; j < n * s->n_used; j++) {
        const int e = s->idx[j];
        if (e < 0 || e >= TS_MOE_MAX_EXPERTS || seen[e]) continue;
        seen[e] = true;
        bytes += per_expert;
    }
    return bytes;
}
