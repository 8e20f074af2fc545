/* Numeric building blocks of the forward passes, each computed the way ggml's CPU backend computes
 * it (same formulas, same precision of accumulators) so our logits stay within rounding of
 * llama.cpp's. All activations are f32 rows. */
#ifndef TS_OPS_OPS_H
#define TS_OPS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "quant/types.h"
#include "util/threadpool.h"

/* ---- Elementwise / row ops (ops/norm.c, ops/activation.c) ---------------------------------- */

/* y = x / sqrt(mean(x^2) + eps) * w   (w may be NULL: no weight). Sum of squares in double, as ggml. */
void ts_rmsnorm(float *y, const float *x, const float *w, int n, float eps);
/* In place: x = softmax(x * scale) over n values. Max-subtracted, sum in double, as ggml. */
void ts_softmax(float *x, int n, float scale);
/* gate = silu(gate) * up, silu(z) = z / (1 + exp(-z)), exp by ts_flash_exp (ops/attn_flash.h). */
void ts_swiglu(float *gate, const float *up, int n);
/* ts_swiglu by the widest kernel `isa` allows; bit-identical to ts_swiglu on every ISA. */
void ts_swiglu_isa(enum ts_isa isa, float *gate, const float *up, int n);
#if defined(TS_HAVE_AVX2_KERNELS)
void ts_swiglu_avx2(float *gate, const float *up, int n);
#endif
#if defined(TS_HAVE_AVX512_KERNELS)
void ts_swiglu_avx512(float *gate, const float *up, int n);
#endif
/* ts_swiglu_isa over n_rows contiguous rows of n (gate and up rows n apart), split across the pool
 * when there is enough of it; every element is computed the same way either way. */
void ts_swiglu_rows(ts_threadpool *pool, enum ts_isa isa, float *gate, const float *up, int n_rows, int n);
void ts_add(float *y, const float *x, int n); /* y += x */

/* ---- RoPE (ops/rope.c) ------------------------------------------------------------------------ */

enum ts_rope_mode { TS_ROPE_NORM = 0, TS_ROPE_NEOX = 2 }; /* ggml's mode ids */

/* cos/sin for one position: cs[2i] = cos θ_i, cs[2i+1] = sin θ_i, i < n_rot/2, with
 * θ_i = pos * base^(-2i/n_rot) / ff_i * freq_scale, the base power built by repeated multiplication
 * in float exactly like ggml's rope cache. freq_factors (n_rot/2 values) may be NULL. */
void ts_rope_cache(float *cs, int pos, int n_rot, float base, float freq_scale, const float *freq_factors);
/* Rotates the first n_rot dims of each of n_heads heads (head_dim apart) of x. NORM rotates adjacent
 * pairs (2i, 2i+1), NEOX the halves (i, i + n_rot/2). */
void ts_rope_apply(float *x, int n_heads, int head_dim, int n_rot, const float *cs, enum ts_rope_mode mode);

/* ---- Matrix product (ops/matmul.c) ------------------------------------------------------------- */

/* A weight matrix: n_out rows of n_in values of `type`. In the file (GGUF) layout rows are
 * row_bytes apart. When `repack` is set the data is in that repacked layout instead (quant/repack.h:
 * groups of TS_REPACK_ROWS interleaved rows, made by ts_model_repack) and row_bytes still gives the
 * size of one row in the file layout. */
struct ts_repack_traits;
typedef struct ts_matrix {
    const void *data;
    int type;
    int64_t n_in, n_out;
    size_t row_bytes;
    const struct ts_repack_traits *repack; /* NULL = file layout */
} ts_matrix;

/* Activation rows converted to a matrix's vec_dot_type, as ggml converts src1 once per product. */
typedef struct ts_act {
    const void *data;
    int type;          /* the vec_dot_type the rows are in */
    size_t row_bytes;  /* distance between rows */
    int n_rows;
} ts_act;

/* Converts n_rows f32 rows of n values (x_stride floats apart) to `type` into dst (row_bytes apart,
 * row_bytes >= ts_row_size(type, n)). Rows are split across the pool. */
void ts_convert_rows(ts_threadpool *pool, const ts_type_traits *table, int type, const float *x, int x_stride,
                     int n, int n_rows, void *dst, size_t row_bytes);
/* out[t*out_stride + r] = dot(W row r, act row t) for every row r of W and token t. The threads
 * take chunks of 16-row units from a shared counter (or, for a matrix with few rows and many
 * tokens, split the tokens) and run a cache-sized tile of tokens through the type's vec_dot_tile
 * kernel (or, for a repacked W, its repacked kernel), so the weights are read once per tile of
 * tokens, not once per token. Every result is the same whatever the batch size and the thread
 * count (file layout: bit-identical to the table's vec_dot on that pair). act->type must be W's
 * vec_dot_type and its rows n_in long. */
void ts_matmul(ts_threadpool *pool, const ts_type_traits *table, const ts_matrix *w, const ts_act *act, float *out,
               int out_stride);

/* The same product on the calling thread only (no hand-off to the pool): for work that is already
 * split across the threads some other way, such as the per-head products of a thread's own share of
 * MLA's heads in a decode step. Same results as ts_matmul. */
void ts_matmul_serial(const ts_type_traits *table, const ts_matrix *w, const ts_act *act, float *out, int out_stride);

/* One product of ts_matmul_many: out[t*out_stride + r] = dot(w row r, act row t). */
typedef struct ts_matmul_item {
    const ts_matrix *w;
    ts_act act;
    float *out;
    int out_stride;
} ts_matmul_item;
/* Several products in one pass through the thread pool (one hand-off and one barrier instead of
 * one per product), the threads splitting all their rows between them: for the many small products
 * of a decode step (q/k/v, gate/up, the experts of a MoE layer). Each result is what ts_matmul
 * gives for it. The products' outputs must not overlap each other or their inputs. */
void ts_matmul_many(ts_threadpool *pool, const ts_type_traits *table, const ts_matmul_item *items, int n_items);

/* ---- Attention (ops/attention.c) ----------------------------------------------------------------- */

/* Scores of one query against n_kv cache rows of kv_type, row_bytes apart from `keys`: scores[t] =
 * q·k_t over width values. F32 rows are dotted directly and F16 rows widened to f32 first (exact
 * q·k, llama.cpp's prompt-batch path); BF16 and Q8_0 rows are dotted in their own format with the type
 * table's kernel against q converted once to the vec_dot_type (bf16 / q8_0), as ggml multiplies a
 * BF16 or Q8_0 K cache. row: scratch of width floats. */
void ts_kv_scores(const ts_type_traits *table, float *scores, const float *q, const void *keys, int kv_type,
                  size_t row_bytes, int n_kv, int width, float *row);
/* out (width floats) = Σ_t p[t] v_t over n_kv cache rows of kv_type, row_bytes apart from `values`,
 * each widened to f32 (into `row`, width floats) and summed in f32. */
void ts_kv_weighted_sum(const ts_type_traits *table, float *out, const float *p, const void *values, int kv_type,
                        size_t row_bytes, int n_kv, int width, float *row);

/* One query head against one KV head's cache: positions 0..n_kv-1 of rows `stride` elements apart,
 * the head's values starting at element `offset` of each row. kv_type is TS_TYPE_F32, TS_TYPE_F16,
 * TS_TYPE_BF16 or TS_TYPE_Q8_0 (then stride, offset and head_dim are multiples of 32); scores as
 * ts_kv_scores, scaled by `scale`, softmax in f32 (sum in double), value rows summed in f32:
 * llama.cpp's flash attention on a prompt batch (see attention.c for why not its single-query f16
 * path). scratch: n_kv + head_dim floats. out: head_dim floats. */
void ts_attention_head(const ts_type_traits *table, float *out, const float *q, const void *k_cache,
                       const void *v_cache, int kv_type, size_t stride, size_t offset, int n_kv, int head_dim,
                       float scale, float *scratch);

#endif
