#include "ops/mla.h"

#include <math.h>

#include "ops/ops.h"

static float corr_dim(int n_rot, int n_ctx_orig, float n_rotations, float base) {
    return (float)n_rot * logf((float)n_ctx_orig / (n_rotations * 2.0f * 3.14159265358979323846f)) / (2.0f * logf(base));
}

void ts_yarn_corr_dims(int n_rot, int n_ctx_orig, float base, float beta_fast, float beta_slow, float *low, float *high) {
    const float start = floorf(corr_dim(n_rot, n_ctx_orig, beta_fast, base));
    const float end = ceilf(corr_dim(n_rot, n_ctx_orig, beta_slow, base));
    *low = start > 0.0f ? start : 0.0f;
    *high = end < (float)(n_rot - 1) ? end : (float)(n_rot - 1);
}

void ts_rope_cache_yarn(float *cs, int pos, int n_rot, float base, const ts_yarn *y) {
    /* Base powers by repeated float multiplication, as ggml's rope cache (see ts_rope_cache). */
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    const float span = y->corr_high - y->corr_low > 0.001f ? y->corr_high - y->corr_low : 0.001f;
    float theta_extrap = (float)pos;
    for (int i = 0; i < n_rot / 2; i++) {
        const float theta_interp = y->freq_scale * theta_extrap;
        float ramp = ((float)i - y->corr_low) / span; /* 0: keep the original frequency, 1: interpolate */
        ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
        const float mix = (1.0f - ramp) * y->ext_factor;
        const float angle = theta_interp * (1.0f - mix) + theta_extrap * mix;
        cs[2 * i] = cosf(angle);
        cs[2 * i + 1] = sinf(angle);
        theta_extrap *= theta_scale;
    }
}

void ts_mla_attention_head(const ts_type_traits *table, float *out, const float *q, const void *cache, int kv_type,
                           size_t stride, int n_kv, int k_width, int c_width, float scale, float *scratch) {
    const size_t row_bytes = ts_row_size(kv_type, (int64_t)stride);
    float *scores = scratch;     /* n_kv */
    float *row = scratch + n_kv; /* k_width: a cache row widened to f32, or q converted for the cache type */
    ts_kv_scores(table, scores, q, cache, kv_type, row_bytes, n_kv, k_width, row);
    ts_softmax(scores, n_kv, scale);
    /* The value is the latent c: the first c_width values of each row (c_width is a multiple of a
     * block type's block size, as the caller's rows are [c | k_pe] with both parts whole blocks). */
    ts_kv_weighted_sum(table, out, scores, cache, kv_type, row_bytes, n_kv, c_width, row);
}
