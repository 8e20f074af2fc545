/* NEON kernels of the legacy block types q4_0, q4_1, q5_0, q5_1, q8_0 and the q8_0/q8_1
 * activation converters (compiled only on AArch64, where Advanced SIMD is mandatory, so no run-time
 * check is needed). Scalar references: legacy.c.
 *
 * Only baseline ARMv8.0 NEON is required. The int8 dot of 16 quants uses vdotq_s32 when the
 * compiler targets the dotprod extension (__ARM_FEATURE_DOTPROD) and otherwise vmull_s8 + vpadalq
 * (what ggml's ggml_vdotq_s32 fallback does): |q| <= 128 so each int16 product fits, and both give
 * the exact integer sum of a block.
 *
 * Dequantization performs the scalar reference's float operations (int->float, *d, then +m as a
 * separate add, never fused), so its output is bit-identical to legacy.c.
 *
 * The dots follow ggml's ARM ggml_vec_dot_<type>_q8_<0|1> (ggml-cpu/arch/arm/quants.c): an exact
 * integer sum per block, converted to float and accumulated into 4 float lanes with d_x*d_y, one
 * horizontal add at the end. They differ from the scalar reference only in float summation order.
 *
 * Activation conversion is ggml's ARM quantize_row_q8_0/q8_1: inverse scale 1/d as in the scalar
 * reference, but round-to-nearest-even (vcvtnq_s32_f32) where the reference uses roundf (ties
 * away from zero); a quant can differ by one only where x*id is exactly a .5 tie. */
#include <arm_neon.h>
#include <string.h>

#include "quant/blocks.h"
#include "quant/kernels.h"

static inline float f16_to_f32(ts_f16 h) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

static inline ts_f16 f32_to_f16(float f) {
    return vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(f))), 0);
}

/* Exact sum of a[i]*b[i] over 16 signed bytes, added to acc (the lane split is unspecified). */
static inline int32x4_t dot_i8x16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
#endif
}

/* 16 bytes of packed nibbles: low nibbles are elements 0..15, high nibbles elements 16..31. */
static inline void nibbles_to_bytes(const uint8_t *qs, uint8x16_t *lo, uint8x16_t *hi) {
    const uint8x16_t packed = vld1q_u8(qs);
    *lo = vandq_u8(packed, vdupq_n_u8(0x0F));
    *hi = vshrq_n_u8(packed, 4);
}

/* Bit 4 of each of 32 elements from the 32-bit little-endian qh: 0x10 where the bit is set. */
static inline void high_bits_to_bytes(const uint8_t qh[4], uint8x16_t *lo, uint8x16_t *hi) {
    static const uint8_t bit_of_lane[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t bits = vld1q_u8(bit_of_lane);
    const uint8x16_t b01 = vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1]));
    const uint8x16_t b23 = vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3]));
    *lo = vandq_u8(vtstq_u8(b01, bits), vdupq_n_u8(0x10));
    *hi = vandq_u8(vtstq_u8(b23, bits), vdupq_n_u8(0x10));
}

/* Stores 16 int8 values as float: q*d, plus m as a separate (unfused) add when add_m. */
static inline void store_scaled16(int8x16_t q, float d, float m, int add_m, float *y) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
    const int32x4_t parts[4] = {vmovl_s16(vget_low_s16(lo)), vmovl_high_s16(lo), vmovl_s16(vget_low_s16(hi)),
                                vmovl_high_s16(hi)};
    const float32x4_t vm = vdupq_n_f32(m);
    for (int k = 0; k < 4; k++) {
        float32x4_t v = vmulq_n_f32(vcvtq_f32_s32(parts[k]), d);
        if (add_m) v = vaddq_f32(v, vm);
        vst1q_f32(y + 4 * k, v);
    }
}

/* ---------------------------------------------------------------- dequantize */

void ts_dequant_q4_0_neon(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        uint8x16_t lo, hi;
        nibbles_to_bytes(x[i].qs, &lo, &hi);
        const float d = f16_to_f32(x[i].d);
        const int8x16_t eight = vdupq_n_s8(8);
        store_scaled16(vsubq_s8(vreinterpretq_s8_u8(lo), eight), d, 0.0f, 0, y + i * QK4_0);
        store_scaled16(vsubq_s8(vreinterpretq_s8_u8(hi), eight), d, 0.0f, 0, y + i * QK4_0 + 16);
    }
}

void ts_dequant_q4_1_neon(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        uint8x16_t lo, hi;
        nibbles_to_bytes(x[i].qs, &lo, &hi);
        const float d = f16_to_f32(x[i].d), m = f16_to_f32(x[i].m);
        store_scaled16(vreinterpretq_s8_u8(lo), d, m, 1, y + i * QK4_1);
        store_scaled16(vreinterpretq_s8_u8(hi), d, m, 1, y + i * QK4_1 + 16);
    }
}

/* q5_0 quants as signed bytes (q5 - 16), elements 0..15 and 16..31. */
static inline void q5_0_bytes(const block_q5_0 *b, int8x16_t *lo, int8x16_t *hi) {
    uint8x16_t nl, nh, bl, bh;
    nibbles_to_bytes(b->qs, &nl, &nh);
    high_bits_to_bytes(b->qh, &bl, &bh);
    const int8x16_t sixteen = vdupq_n_s8(16);
    *lo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(nl, bl)), sixteen);
    *hi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(nh, bh)), sixteen);
}

/* q5_1 quants (0..31) as bytes. */
static inline void q5_1_bytes(const block_q5_1 *b, int8x16_t *lo, int8x16_t *hi) {
    uint8x16_t nl, nh, bl, bh;
    nibbles_to_bytes(b->qs, &nl, &nh);
    high_bits_to_bytes(b->qh, &bl, &bh);
    *lo = vreinterpretq_s8_u8(vorrq_u8(nl, bl));
    *hi = vreinterpretq_s8_u8(vorrq_u8(nh, bh));
}

void ts_dequant_q5_0_neon(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_0 *x = vx;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        int8x16_t lo, hi;
        q5_0_bytes(&x[i], &lo, &hi);
        const float d = f16_to_f32(x[i].d);
        store_scaled16(lo, d, 0.0f, 0, y + i * QK5_0);
        store_scaled16(hi, d, 0.0f, 0, y + i * QK5_0 + 16);
    }
}

void ts_dequant_q5_1_neon(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_1 *x = vx;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        int8x16_t lo, hi;
        q5_1_bytes(&x[i], &lo, &hi);
        const float d = f16_to_f32(x[i].d), m = f16_to_f32(x[i].m);
        store_scaled16(lo, d, m, 1, y + i * QK5_1);
        store_scaled16(hi, d, m, 1, y + i * QK5_1 + 16);
    }
}

void ts_dequant_q8_0_neon(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float d = f16_to_f32(x[i].d);
        store_scaled16(vld1q_s8(x[i].qs), d, 0.0f, 0, y + i * QK8_0);
        store_scaled16(vld1q_s8(x[i].qs + 16), d, 0.0f, 0, y + i * QK8_0 + 16);
    }
}

/* ---------------------------------------------------------------- activation conversion */

/* One block of 32 floats -> 32 int8 quants (RNE of x/d) and d = amax/127; returns the quant sum
 * (of the stored quants, as the reference's s).
 * vmaxq_f32 propagates NaN like ggml's; the saturating narrowing keeps any inf/NaN input defined
 * (vcvtnq_s32_f32 maps NaN to 0 and saturates). */
static inline int quantize_block_q8(const float *x, float *d_out, int8_t *qs) {
    float32x4_t v[8];
    for (int j = 0; j < 8; j++) v[j] = vld1q_f32(x + 4 * j);
    float32x4_t amax = vabsq_f32(v[0]);
    for (int j = 1; j < 8; j++) amax = vmaxq_f32(amax, vabsq_f32(v[j]));
    const float max_abs = vmaxvq_f32(amax);
    const float d = max_abs / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    *d_out = d;
    int16x8_t halves[4];
    for (int j = 0; j < 4; j++) {
        const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(v[2 * j], id));
        const int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(v[2 * j + 1], id));
        halves[j] = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
    }
    /* -inf * id saturates to -128; the reference (and the dots' int16 bound) want [-127, 127]. */
    const int8x16_t lowest = vdupq_n_s8(-127);
    const int8x16_t lo = vmaxq_s8(vcombine_s8(vqmovn_s16(halves[0]), vqmovn_s16(halves[1])), lowest);
    const int8x16_t hi = vmaxq_s8(vcombine_s8(vqmovn_s16(halves[2]), vqmovn_s16(halves[3])), lowest);
    vst1q_s8(qs, lo);
    vst1q_s8(qs + 16, hi);
    return vaddlvq_s8(lo) + vaddlvq_s8(hi); /* int16 sums of 16 quants: |sum| <= 2032 */
}

void ts_quant_q8_0_neon(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        float d;
        (void)quantize_block_q8(x + i * QK8_0, &d, y[i].qs);
        y[i].d = f32_to_f16(d);
    }
}

void ts_quant_q8_1_neon(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        float d;
        const int sum = quantize_block_q8(x + i * QK8_1, &d, y[i].qs);
        y[i].d = f32_to_f16(d);
        /* ggml: s = fp16(d * sum) with the unrounded float d = amax/127. */
        y[i].s = f32_to_f16(d * (float)sum);
    }
}

/* ---------------------------------------------------------------- dot products */

/* Exact integer dot of one 32-element block given as two 16-byte halves, as 4 lanes. */
static inline int32x4_t block_dot(int8x16_t x_lo, int8x16_t x_hi, const int8_t *qy) {
    return dot_i8x16(dot_i8x16(vdupq_n_s32(0), x_lo, vld1q_s8(qy)), x_hi, vld1q_s8(qy + 16));
}

void ts_dot_q4_0_neon(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    float32x4_t acc = vdupq_n_f32(0.0f);
    const int8x16_t eight = vdupq_n_s8(8);
    for (int i = 0; i < n / QK4_0; i++) {
        uint8x16_t lo, hi;
        nibbles_to_bytes(x[i].qs, &lo, &hi);
        const int32x4_t p = block_dot(vsubq_s8(vreinterpretq_s8_u8(lo), eight),
                                      vsubq_s8(vreinterpretq_s8_u8(hi), eight), y[i].qs);
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), f16_to_f32(x[i].d) * f16_to_f32(y[i].d));
    }
    *s = vaddvq_f32(acc);
}

void ts_dot_q4_1_neon(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_1 *x = vx;
    const block_q8_1 *y = vy;
    float32x4_t acc = vdupq_n_f32(0.0f);
    float sum_min = 0.0f;
    for (int i = 0; i < n / QK4_1; i++) {
        sum_min += f16_to_f32(x[i].m) * f16_to_f32(y[i].s);
        uint8x16_t lo, hi;
        nibbles_to_bytes(x[i].qs, &lo, &hi);
        const int32x4_t p = block_dot(vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi), y[i].qs);
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), f16_to_f32(x[i].d) * f16_to_f32(y[i].d));
    }
    *s = vaddvq_f32(acc) + sum_min;
}

void ts_dot_q5_0_neon(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int i = 0; i < n / QK5_0; i++) {
        int8x16_t lo, hi;
        q5_0_bytes(&x[i], &lo, &hi);
        const int32x4_t p = block_dot(lo, hi, y[i].qs);
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), f16_to_f32(x[i].d) * f16_to_f32(y[i].d));
    }
    *s = vaddvq_f32(acc);
}

void ts_dot_q5_1_neon(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_1 *x = vx;
    const block_q8_1 *y = vy;
    float32x4_t acc = vdupq_n_f32(0.0f);
    float sum_min = 0.0f;
    for (int i = 0; i < n / QK5_1; i++) {
        sum_min += f16_to_f32(x[i].m) * f16_to_f32(y[i].s);
        int8x16_t lo, hi;
        q5_1_bytes(&x[i], &lo, &hi);
        const int32x4_t p = block_dot(lo, hi, y[i].qs);
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), f16_to_f32(x[i].d) * f16_to_f32(y[i].d));
    }
    *s = vaddvq_f32(acc) + sum_min;
}

void ts_dot_q8_0_neon(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q8_0 *x = vx;
    const block_q8_0 *y = vy;
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int i = 0; i < n / QK8_0; i++) {
        const int32x4_t p = block_dot(vld1q_s8(x[i].qs), vld1q_s8(x[i].qs + 16), y[i].qs);
        acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), f16_to_f32(x[i].d) * f16_to_f32(y[i].d));
    }
    *s = vaddvq_f32(acc);
}
