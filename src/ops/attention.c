#include "ops/ops.h"

/* Which of llama.cpp's attention paths we follow: its CPU flash attention computes a prompt batch
 * of >= 64 queries (head dims a multiple of the SIMD width) exactly — q in f32, each cached K/V row
 * widened to f32, f32 softmax and value sums — but a single query (decoding) with q rounded to f16
 * and the value sum kept in f16. Its numbers thus depend on the batch size; ours must not (batch and
 * token-by-token decoding agree exactly), so we take the exact path everywhere. On the conformance
 * prompts (64 positions) this matches llama.cpp to ~3e-4 in log-probabilities; emulating the f16
 * path instead would put us ~7e-3 away there. */
void ts_kv_scores(const ts_type_traits *table, float *scores, const float *q, const void *keys, int kv_type,
                  size_t row_bytes, int n_kv, int width, float *row) {
    const ts_type_traits *kv = &table[kv_type];
    const char *base = keys;
    if (kv_type == TS_TYPE_F32 || kv_type == TS_TYPE_F16) {
        const ts_type_traits *f32 = &table[TS_TYPE_F32];
        for (int t = 0; t < n_kv; t++) {
            const void *k = base + (size_t)t * row_bytes;
            if (kv_type == TS_TYPE_F16) {
                kv->to_float(k, row, width);
                k = row;
            }
            f32->vec_dot(width, &scores[t], k, q);
        }
        return;
    }
    /* q in the vec_dot_type fits in `row`: bf16 takes 2 bytes a value, q8_0 34/32. */
    table[kv->vec_dot_type].from_float(q, row, width);
    for (int t = 0; t < n_kv; t++) kv->vec_dot(width, &scores[t], base + (size_t)t * row_bytes, row);
}

void ts_kv_weighted_sum(const ts_type_traits *table, float *out, const float *p, const void *values, int kv_type,
                        size_t row_bytes, int n_kv, int width, float *row) {
    const ts_type_traits *kv = &table[kv_type];
    const char *base = values;
    for (int i = 0; i < width; i++) out[i] = 0.0f;
    for (int t = 0; t < n_kv; t++) {
        const float *v = (const float *)(const void *)(base + (size_t)t * row_bytes);
        if (kv_type != TS_TYPE_F32) {
            kv->to_float(v, row, width);
            v = row;
        }
        const float w = p[t];
        for (int i = 0; i < width; i++) out[i] += w * v[i];
    }
}

void ts_attention_head(const ts_type_traits *table, float *out, const float *q, const void *k_cache,
                       const void *v_cache, int kv_type, size_t stride, size_t offset, int n_kv, int head_dim,
                       float scale, float *scratch) {
    const size_t row_bytes = ts_row_size(kv_type, (int64_t)stride);
    const size_t head_bytes = ts_row_size(kv_type, (int64_t)offset);
    float *scores = scratch;     /* n_kv */
    float *row = scratch + n_kv; /* head_dim: a K or V row widened to f32, or q converted for the K type */
    ts_kv_scores(table, scores, q, (const char *)k_cache + head_bytes, kv_type, row_bytes, n_kv, head_dim, row);
    ts_softmax(scores, n_kv, scale);
    ts_kv_weighted_sum(table, out, scores, (const char *)v_cache + head_bytes, kv_type, row_bytes, n_kv, head_dim, row);
}
