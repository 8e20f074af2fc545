/* Scalar reference kernels of the float weight types f32, f16 and bf16.
 *
 * Conversions are the exact round-to-nearest-even ones of util/fp16.h (ggml's scalar
 * GGML_FP32_TO_FP16 / GGML_FP32_TO_BF16). The dots accumulate each float product in double, as
 * ggml's non-SIMD ggml_vec_dot_f32/f16/bf16 do; the SIMD versions accumulate in float lanes and
 * differ from these by summation rounding only. */
#include <string.h>

#include "quant/kernels.h"
#include "util/fp16.h"

void ts_dequant_f32_ref(const void *restrict x, float *restrict y, int64_t n) {
    if (n > 0) memcpy(y, x, (size_t)n * sizeof(float));
}

void ts_quant_f32_ref(const float *restrict x, void *restrict y, int64_t n) {
    if (n > 0) memcpy(y, x, (size_t)n * sizeof(float));
}

void ts_dot_f32_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const float *x = vx, *y = vy;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] * y[i]);
    *s = (float)sum;
}

void ts_dequant_f16_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const ts_f16 *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = ts_f16_to_f32(x[i]);
}

void ts_quant_f16_ref(const float *restrict x, void *restrict vy, int64_t n) {
    ts_f16 *y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = ts_f32_to_f16(x[i]);
}

void ts_dot_f16_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const ts_f16 *x = vx, *y = vy;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(ts_f16_to_f32(x[i]) * ts_f16_to_f32(y[i]));
    *s = (float)sum;
}

void ts_dequant_bf16_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const ts_bf16 *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = ts_bf16_to_f32(x[i]);
}

void ts_quant_bf16_ref(const float *restrict x, void *restrict vy, int64_t n) {
    ts_bf16 *y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = ts_f32_to_bf16(x[i]);
}

void ts_dot_bf16_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const ts_bf16 *x = vx, *y = vy;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(ts_bf16_to_f32(x[i]) * ts_bf16_to_f32(y[i]));
    *s = (float)sum;
}
