#include <math.h>

#include "ops/ops.h"

void ts_rope_cache(float *cs, int pos, int n_rot, float base, float freq_scale, const float *freq_factors) {
    /* ggml builds base^(-2i/n) by repeated multiplication in float; doing the same keeps the angles
     * bit-identical to llama.cpp's rather than merely close. */
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i = 0; i < n_rot / 2; i++) {
        const float ff = freq_factors ? freq_factors[i] : 1.0f;
        const float angle = freq_scale * (theta / ff);
        cs[2 * i] = cosf(angle);
        cs[2 * i + 1] = sinf(angle);
        theta *= theta_scale;
    }
}

void ts_rope_apply(float *x, int n_heads, int head_dim, int n_rot, const float *cs, enum ts_rope_mode mode) {
    const int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            const int a = mode == TS_ROPE_NEOX ? i : 2 * i;
            const int b = mode == TS_ROPE_NEOX ? i + half : 2 * i + 1;
            const float c = cs[2 * i], s = cs[2 * i + 1];
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}
