/* Pieces shared by the architecture files: the embedding/output loaders, the activation buffer
 * behind every weight product, the per-context scratch of a llama-style block, the standard
 * attention block over the KV cache, the SwiGLU FFN and the output head. Each arch file keeps its
 * own forward pass and only what is specific to it. */
#ifndef TS_ARCH_COMMON_H
#define TS_ARCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/context.h"
#include "engine/profile.h"
#include "model/model.h"
#include "ops/attn_split.h"

/* ---- Loading --------------------------------------------------------------------------------- */

/* block_count, context_length, embedding_length, feed_forward_length, attention.head_count and
 * the RMS epsilon (all required, range-checked); hp is cleared first. */
int ts_arch_load_base_hparams(ts_model *m, ts_err *err);
/* token_embd (sets n_vocab, checks <arch>.vocab_size), output_norm and output (tied when absent). */
int ts_arch_load_embeddings(ts_model *m, ts_err *err);
/* KV widths of the standard cache: n_head_kv * head_dim (K), n_head_kv * head_dim_v (V). */
void ts_arch_dense_kv_widths(const ts_model *m, int layer, int *k_width, int *v_width);

/* ---- Activation buffer ------------------------------------------------------------------------- */

/* Activation rows converted to a weight's vec_dot_type. With `reuse`, a conversion is kept and
 * reused by the next product with the same source rows (q, k, v share one, as do gate and up);
 * whoever rewrites those rows calls ts_arch_act_reset. */
typedef struct ts_arch_act {
    void *buf;
    size_t row_bytes;
    bool reuse;
    const float *src; /* what buf currently holds: source rows, type, row count */
    int type, rows;
} ts_arch_act;

static inline void ts_arch_act_reset(ts_arch_act *a) { a->src = NULL; }
/* `row` widened to the activation row of every present matrix in w[0..n). */
size_t ts_arch_widest_act(const ts_model *m, const ts_matrix *const *w, size_t n, size_t row);
/* out[n_rows][w->n_out] = src[n_rows][w->n_in] · W^T */
void ts_arch_project(ts_context *c, ts_arch_act *a, const ts_matrix *w, const float *src, int n_rows, float *out);
/* The same input rows through k matrices (k <= 8): converted once and multiplied in one pass
 * through the thread pool (ts_matmul_many) when they share a (quantized) vec_dot_type and width;
 * one ts_arch_project each otherwise. The results are the same either way. */
void ts_arch_project_many(ts_context *c, ts_arch_act *a, const ts_matrix *const *w, float *const *out, int k,
                          const float *src, int n_rows);

/* ---- Row helpers ------------------------------------------------------------------------------- */

void ts_arch_add_bias(float *rows, const float *bias, int n_rows, int n); /* no-op for NULL bias */
void ts_arch_rmsnorm_rows(float *out, const float *in, const float *w, int n_rows, int n, float eps);
void ts_arch_add_rows(float *y, const float *x, int n_rows, int n); /* y += x, row by row */
/* x[i] = dequantized token_embd row of token i. */
void ts_arch_embed(const ts_model *m, const ts_batch *b, float *x);
/* Each token's RoPE cos/sin (n_rot per token) from hp, with optional frequency divisors. */
void ts_arch_rope_cache(const ts_model *m, const ts_batch *b, float *rope_cs, const float *freq_factors);

/* ---- llama-style block ----------------------------------------------------------------------- */

/* Prompt tokens whose attention shares one pass over the cache (ts_flash_attention_tokens). */
#define TS_DENSE_QTILE 8

/* Per-context scratch of a llama-style block (MHA/GQA attention over the standard cache, SwiGLU). */
typedef struct ts_dense_state {
    int n_batch;
    float *x;         /* [n_batch][E] residual stream */
    float *xn;        /* [n_batch][E] normalised input of the current sub-block */
    float *q, *k, *v; /* [n_batch][q_dim], [n_batch][kv_dim] x2 */
    float *attn;      /* [n_batch][q_dim] attention output per head, concatenated */
    float *gate, *up; /* [n_batch][F] */
    float *tmp;       /* [n_batch][E] sub-block outputs before the residual add */
    float *rope_cs;   /* [n_batch][n_rot] cos/sin per token */
    ts_arch_act act;
    float *scratch;     /* [n_threads][scratch_len] attention scratch */
    size_t scratch_len; /* flash work buffer + two partial states */
    int flash_simd;       /* ts_flash_simd_level of the model's ISA */
    int *tile_first;      /* [n_batch + 1]: first token of each query tile of the batch in flight */
    int n_tiles;
    ts_flash_split split; /* decode steps with fewer (token, KV head) units than threads */
} ts_dense_state;

/* Allocates every buffer (act rows of act_row_bytes). On failure frees what it got and fails. */
int ts_dense_state_init(ts_context *c, ts_dense_state *s, size_t act_row_bytes, bool reuse, ts_err *err);
void ts_dense_state_free(ts_dense_state *s);

/* Attention weights of one llama-style block; the biases may be NULL. */
typedef struct ts_attn_weights {
    const float *attn_norm;
    const ts_matrix *wq, *wk, *wv, *wo;
    const float *bq, *bk, *bv, *bo;
} ts_attn_weights;

/* x += Wo · attention(RoPE(Wq xn), RoPE(Wk xn), Wv xn) (+ biases) with xn = RMSNorm(x); the batch's
 * k and v go into layer l's cache first, each token then attends to positions <= its own. */
void ts_dense_attention(ts_context *c, ts_dense_state *s, const ts_batch *b, int l, const ts_attn_weights *w);

/* out = W_down · (silu(W_gate xn) * (W_up xn)) for n rows; gate and up are scratch. */
void ts_arch_swiglu(ts_context *c, ts_arch_act *a, const ts_matrix *w_gate, const ts_matrix *w_up,
                    const ts_matrix *w_down, const float *xn, float *gate, float *up, int n, float *out);

/* Output head for the rows that want logits (packed in batch order): RMSNorm(x) into xn, then the
 * LM head into logits. */
void ts_arch_output(ts_context *c, ts_arch_act *a, const float *x, float *xn, const bool *want, int n, float *logits);

#endif
