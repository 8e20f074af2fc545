#include <math.h>

#include "ops/ops.h"
#include "util/fp16.h"

/* F32 cache: q·k in f32, two-pass softmax in f32, values summed in f32. llama.cpp's flash
 * attention with an F32 cache computes the same quantities (its online softmax differs from the
 * two-pass one only in the last bits). */
static void attention_f32(const ts_type_traits *table, float *out, const float *q, const char *kbase,
                          const char *vbase, size_t row_bytes, int n_kv, int head_dim, float scale, float *scores) {
    const ts_type_traits *f32 = &table[TS_TYPE_F32];
    for (int t = 0; t < n_kv; t++) f32->vec_dot(head_dim, &scores[t], kbase + (size_t)t * row_bytes, q);
    ts_softmax(scores, n_kv, scale);
    for (int i = 0; i < head_dim; i++) out[i] = 0.0f;
    for (int t = 0; t < n_kv; t++) {
        const float *v = (const float *)(vbase + (size_t)t * row_bytes);
        const float p = scores[t];
        for (int i = 0; i < head_dim; i++) out[i] += p * v[i];
    }
}

/* F16 cache: llama.cpp's default CPU attention (flash attention, one query at a time): q is
 * rounded to f16 and q·k is the F16 vec_dot; an online softmax rescales a value accumulator kept
 * in f16, rounded after every position. We do the same in the same order so that our numbers track
 * llama.cpp's; the f16 accumulator is also what puts llama.cpp ~1e-3 (in log-probabilities) away
 * from an exact computation with the same f16 K/V. The order never depends on the batch, so batch
 * and token-by-token decoding agree exactly. */
static void attention_f16(const ts_type_traits *table, float *out, const float *q, const char *kbase,
                          const char *vbase, size_t row_bytes, int n_kv, int head_dim, float scale, float *scratch) {
    const ts_type_traits *f16 = &table[TS_TYPE_F16];
    ts_f16 *q16 = (ts_f16 *)scratch;     /* head_dim halves */
    ts_f16 *acc = q16 + head_dim;        /* head_dim halves */
    f16->from_float(q, q16, head_dim);
    for (int i = 0; i < head_dim; i++) acc[i] = 0;
    float max = -INFINITY, sum = 0.0f;
    for (int t = 0; t < n_kv; t++) {
        float s;
        f16->vec_dot(head_dim, &s, kbase + (size_t)t * row_bytes, q16);
        s *= scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > max) {
            const float old = max;
            max = s;
            ms = expf(old - max);
            for (int i = 0; i < head_dim; i++) acc[i] = ts_f32_to_f16(ts_f16_to_f32(acc[i]) * ms);
        } else {
            vs = expf(s - max);
        }
        const ts_f16 *v = (const ts_f16 *)(vbase + (size_t)t * row_bytes);
        for (int i = 0; i < head_dim; i++) acc[i] = ts_f32_to_f16(fmaf(ts_f16_to_f32(v[i]), vs, ts_f16_to_f32(acc[i])));
        sum = sum * ms + vs;
    }
    const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
    for (int i = 0; i < head_dim; i++) out[i] = ts_f16_to_f32(acc[i]) * inv;
}

void ts_attention_head(const ts_type_traits *table, float *out, const float *q, const void *k_cache,
                       const void *v_cache, int kv_type, size_t stride, size_t offset, int n_kv, int head_dim,
                       float scale, float *scratch) {
    const size_t elem = kv_type == TS_TYPE_F16 ? sizeof(ts_f16) : sizeof(float);
    const char *kbase = (const char *)k_cache + offset * elem;
    const char *vbase = (const char *)v_cache + offset * elem;
    if (kv_type == TS_TYPE_F16)
        attention_f16(table, out, q, kbase, vbase, stride * elem, n_kv, head_dim, scale, scratch);
    else
        attention_f32(table, out, q, kbase, vbase, stride * elem, n_kv, head_dim, scale, scratch);
}
