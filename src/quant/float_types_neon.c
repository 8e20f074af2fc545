/* NEON kernels of the float weight types f32, f16 and bf16 (compiled only on AArch64, where
 * Advanced SIMD and the half <-> single conversions FCVTL/FCVTN are mandatory).
 *
 * Conversions: f16 -> f32 (FCVTL) is exact, so dequant is bit-identical to the scalar reference;
 * f32 -> f16 (FCVTN, round-to-nearest-even under the default FPCR that Linux sets up) is too, except
 * for NaN payloads (the hardware keeps the top payload bits; the scalar path returns the canonical
 * quiet NaN), which only matters for NaN activations. bf16 conversions are integer bit operations,
 * identical to the reference including NaN.
 *
 * Dots follow ggml's ARM ggml_vec_dot_f32 layout: four 4-lane accumulators over steps of 16, fused
 * multiply-add, one reduction tree, scalar tail. ggml's f16 dot uses f16 vector arithmetic where
 * the CPU has it (ARMv8.2 FP16); we keep to baseline ARMv8.0 and accumulate f16 products in f32
 * lanes, which is more accurate than ggml's f16 accumulation. The results differ from the
 * reference's double accumulation by float summation rounding only. */
#include <arm_neon.h>
#include <string.h>

#include "quant/kernels.h"
#include "util/fp16.h"

/* (s0 + s2) + (s1 + s3), then the horizontal add: ggml's GGML_F32x4_REDUCE for four accumulators. */
static inline float reduce4(float32x4_t s0, float32x4_t s1, float32x4_t s2, float32x4_t s3) {
    s0 = vaddq_f32(s0, s2);
    s1 = vaddq_f32(s1, s3);
    return vaddvq_f32(vaddq_f32(s0, s1));
}

/* ---------------------------------------------------------------- f32 */

void ts_dequant_f32_neon(const void *restrict x, float *restrict y, int64_t n) {
    if (n > 0) memcpy(y, x, (size_t)n * sizeof(float));
}

void ts_dot_f32_neon(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const float *x = vx, *y = vy;
    const int np = n & ~15;
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f), s2 = vdupq_n_f32(0.0f), s3 = vdupq_n_f32(0.0f);
    for (int i = 0; i < np; i += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(x + i), vld1q_f32(y + i));
        s1 = vfmaq_f32(s1, vld1q_f32(x + i + 4), vld1q_f32(y + i + 4));
        s2 = vfmaq_f32(s2, vld1q_f32(x + i + 8), vld1q_f32(y + i + 8));
        s3 = vfmaq_f32(s3, vld1q_f32(x + i + 12), vld1q_f32(y + i + 12));
    }
    float sum = reduce4(s0, s1, s2, s3);
    for (int i = np; i < n; i++) sum += x[i] * y[i];
    *s = sum;
}

/* ---------------------------------------------------------------- f16 */

static inline float32x4_t load_f16x4(const ts_f16 *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

static inline float f16_to_f32(ts_f16 h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

void ts_dequant_f16_neon(const void *restrict vx, float *restrict y, int64_t n) {
    const ts_f16 *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(x + i));
        vst1q_f32(y + i, vcvt_f32_f16(vget_low_f16(h)));
        vst1q_f32(y + i + 4, vcvt_high_f32_f16(h));
    }
    for (; i < n; i++) y[i] = f16_to_f32(x[i]);
}

void ts_quant_f16_neon(const float *restrict x, void *restrict vy, int64_t n) {
    ts_f16 *y = vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(x + i)), vld1q_f32(x + i + 4));
        vst1q_u16(y + i, vreinterpretq_u16_f16(h));
    }
    for (; i < n; i++) y[i] = vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(x[i]))), 0);
}

void ts_dot_f16_neon(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const ts_f16 *x = vx, *y = vy;
    const int np = n & ~15;
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f), s2 = vdupq_n_f32(0.0f), s3 = vdupq_n_f32(0.0f);
    for (int i = 0; i < np; i += 16) {
        s0 = vfmaq_f32(s0, load_f16x4(x + i), load_f16x4(y + i));
        s1 = vfmaq_f32(s1, load_f16x4(x + i + 4), load_f16x4(y + i + 4));
        s2 = vfmaq_f32(s2, load_f16x4(x + i + 8), load_f16x4(y + i + 8));
        s3 = vfmaq_f32(s3, load_f16x4(x + i + 12), load_f16x4(y + i + 12));
    }
    /* ggml keeps the f16 dot's running sum in double (ggml_float) for the tail. */
    double sum = reduce4(s0, s1, s2, s3);
    for (int i = np; i < n; i++) sum += (double)(f16_to_f32(x[i]) * f16_to_f32(y[i]));
    *s = (float)sum;
}

/* ---------------------------------------------------------------- bf16 */

static inline float32x4_t load_bf16x4(const ts_bf16 *p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
}

void ts_dequant_bf16_neon(const void *restrict vx, float *restrict y, int64_t n) {
    const ts_bf16 *x = vx;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, load_bf16x4(x + i));
    for (; i < n; i++) y[i] = ts_bf16_to_f32(x[i]);
}

/* ts_f32_to_bf16 on 4 lanes: round to nearest even on the bit pattern, NaN forced quiet. */
static inline uint16x4_t f32_to_bf16x4(float32x4_t v) {
    const uint32x4_t u = vreinterpretq_u32_f32(v);
    const uint32x4_t is_nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffffu)), vdupq_n_u32(0x7f800000u));
    const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7fffu), lsb)), 16);
    const uint32x4_t quiet_nan = vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(64));
    return vmovn_u32(vbslq_u32(is_nan, quiet_nan, rounded));
}

void ts_quant_bf16_neon(const float *restrict x, void *restrict vy, int64_t n) {
    ts_bf16 *y = vy;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(y + i, f32_to_bf16x4(vld1q_f32(x + i)));
    for (; i < n; i++) y[i] = ts_f32_to_bf16(x[i]);
}

void ts_dot_bf16_neon(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const ts_bf16 *x = vx, *y = vy;
    const int np = n & ~15;
    /* bf16 products are exact in float (8-bit mantissas), so the FMA rounds only the additions. */
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f), s2 = vdupq_n_f32(0.0f), s3 = vdupq_n_f32(0.0f);
    for (int i = 0; i < np; i += 16) {
        s0 = vfmaq_f32(s0, load_bf16x4(x + i), load_bf16x4(y + i));
        s1 = vfmaq_f32(s1, load_bf16x4(x + i + 4), load_bf16x4(y + i + 4));
        s2 = vfmaq_f32(s2, load_bf16x4(x + i + 8), load_bf16x4(y + i + 8));
        s3 = vfmaq_f32(s3, load_bf16x4(x + i + 12), load_bf16x4(y + i + 12));
    }
    double sum = reduce4(s0, s1, s2, s3);
    for (int i = np; i < n; i++) sum += (double)(ts_bf16_to_f32(x[i]) * ts_bf16_to_f32(y[i]));
    *s = (float)sum;
}
