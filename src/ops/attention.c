#include "ops/ops.h"

/* Which of llama.cpp's attention paths we follow: its CPU flash attention computes a prompt batch
 * of >= 64 queries (head dims a multiple of the SIMD width) exactly — q in f32, each cached K/V row
 * widened to f32, f32 softmax and value sums — but a single query (decoding) with q rounded to f16
 * and the value sum kept in f16. Its numbers thus depend on the batch size; ours must not (batch and
 * token-by-token decoding agree exactly), so we take the exact path everywhere. On the conformance
 * prompts (64 positions) this matches llama.cpp to ~3e-4 in log-probabilities; emulating the f16
 * path instead would put us ~7e-3 away there. */
void ts_attention_head(const ts_type_traits *table, float *out, const float *q, const void *k_cache,
                       const void *v_cache, int kv_type, size_t stride, size_t offset, int n_kv, int head_dim,
                       float scale, float *scratch) {
    const ts_type_traits *f32 = &table[TS_TYPE_F32];
    const ts_type_traits *kv = &table[kv_type];
    const bool widen = kv_type != TS_TYPE_F32;
    const size_t elem = widen ? 2 : sizeof(float);
    const char *kbase = (const char *)k_cache + offset * elem;
    const char *vbase = (const char *)v_cache + offset * elem;
    const size_t row_bytes = stride * elem;
    float *scores = scratch;       /* n_kv */
    float *row = scratch + n_kv;   /* head_dim: a K or V row widened to f32 */

    for (int t = 0; t < n_kv; t++) {
        const void *k = kbase + (size_t)t * row_bytes;
        if (widen) {
            kv->to_float(k, row, head_dim);
            k = row;
        }
        f32->vec_dot(head_dim, &scores[t], k, q);
    }

    ts_softmax(scores, n_kv, scale);

    for (int i = 0; i < head_dim; i++) out[i] = 0.0f;
    for (int t = 0; t < n_kv; t++) {
        const float *v = (const float *)(vbase + (size_t)t * row_bytes);
        if (widen) {
            kv->to_float(v, row, head_dim);
            v = row;
        }
        const float p = scores[t];
        for (int i = 0; i < head_dim; i++) out[i] += p * v[i];
    }
}
