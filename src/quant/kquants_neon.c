/* K-quants (Q2_K..Q6_K weights, Q8_K activations): NEON kernels, compiled only on AArch64 (where
 * Advanced SIMD is mandatory). Scalar references: kquants.c.
 *
 * dequant: bit-identical to the scalar reference: quants are unpacked with byte masks/shifts,
 *          then each value is computed with the reference's float expression (one multiply, one
 *          subtract as separate instructions; never an FMA, which would round differently).
 * dot:     the structure of ggml's ARM (non-SVE) vec_dot_*_q8_K: 16-byte int8 dots of the 2..6-bit
 *          quants with the q8_K activations, horizontally added per sub-block and multiplied by the
 *          sub-block scale in integers, mins through the q8_K bsums, one float multiply-add per
 *          block. Only baseline ARMv8.0 NEON is required (vdotq_s32 only under
 *          __ARM_FEATURE_DOTPROD; otherwise vmull_s8 + vpadalq, exact since |products| <= 128*128).
 *          The integer sum of every block equals the scalar reference's exactly; only the float
 *          summation order differs.
 * q8_K:    bit-identical to ts_quant_q8_K_ref (ggml's ARM backend also calls the reference):
 *          round to nearest even (vcvtnq_s32_f32 = ggml's nearest_int on this range), NaNs
 *          skipped by the max search (vmaxnmq) as the reference's `ax > amax` does. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "quant/blocks.h"
#include "quant/kernels.h"

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                    */

static inline float f16_to_f32(ts_f16 h) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

/* Exact sum of a[i]*b[i] over 16 signed bytes (any lane split). */
static inline int32_t dot16(int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vaddvq_s32(vdotq_s32(vdupq_n_s32(0), a, b));
#else
    int32x4_t acc = vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    acc = vpadalq_s16(acc, vmull_high_s8(a, b));
    return vaddvq_s32(acc);
#endif
}

/* Same as the reference's k4_scale_min: 6-bit scale and min j of Q4_K/Q5_K. */
static inline void k4_scale_min(int j, const uint8_t *q, uint8_t *scale, uint8_t *min) {
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *min = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q3_K's sixteen signed scales, as the reference's q3_unpack_scales. */
static inline void q3_unpack_scales(const uint8_t *q, int8_t out[16]) {
    for (int j = 0; j < 16; j++) {
        const int low = j < 8 ? (q[j] & 0xF) : (q[j - 8] >> 4);
        const int high = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (int8_t)((low | (high << 4)) - 32);
    }
}

/* 16 int8 quants -> 16 floats: (dl * q) - ml, the multiply and subtract rounded separately. */
static inline void store16(int8x16_t q, float dl, float ml, float *y) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
    const int32x4_t parts[4] = {vmovl_s16(vget_low_s16(lo)), vmovl_high_s16(lo), vmovl_s16(vget_low_s16(hi)),
                                vmovl_high_s16(hi)};
    const float32x4_t vm = vdupq_n_f32(ml);
    for (int k = 0; k < 4; k++) vst1q_f32(y + 4 * k, vsubq_f32(vmulq_n_f32(vcvtq_f32_s32(parts[k]), dl), vm));
}

/* The same without the subtraction (symmetric types): dl * q. */
static inline void store16_sym(int8x16_t q, float dl, float *y) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
    const int32x4_t parts[4] = {vmovl_s16(vget_low_s16(lo)), vmovl_high_s16(lo), vmovl_s16(vget_low_s16(hi)),
                                vmovl_high_s16(hi)};
    for (int k = 0; k < 4; k++) vst1q_f32(y + 4 * k, vmulq_n_f32(vcvtq_f32_s32(parts[k]), dl));
}

static inline int8x16_t s8(uint8x16_t v) { return vreinterpretq_s8_u8(v); }

/* Unpacking per format. Each fills q[0..255] (as int8 in element order) for one block. */

/* Q2_K: per 128-element half, four 2-bit planes of the same 32 bytes. */
static inline void unpack_q2_K(const block_q2_K *b, int8x16_t q[16]) {
    const uint8x16_t three = vdupq_n_u8(3);
    for (int half = 0; half < 2; half++) {
        const uint8x16_t b0 = vld1q_u8(b->qs + 32 * half), b1 = vld1q_u8(b->qs + 32 * half + 16);
        int8x16_t *o = q + 8 * half;
        o[0] = s8(vandq_u8(b0, three)), o[1] = s8(vandq_u8(b1, three));
        o[2] = s8(vandq_u8(vshrq_n_u8(b0, 2), three)), o[3] = s8(vandq_u8(vshrq_n_u8(b1, 2), three));
        o[4] = s8(vandq_u8(vshrq_n_u8(b0, 4), three)), o[5] = s8(vandq_u8(vshrq_n_u8(b1, 4), three));
        o[6] = s8(vshrq_n_u8(b0, 6)), o[7] = s8(vshrq_n_u8(b1, 6));
    }
}

/* Q3_K: 2 low bits as Q2_K, minus 4 where the hmask bit (bit 0..7 per 32-element plane) is clear. */
static inline void unpack_q3_K(const block_q3_K *b, int8x16_t q[16]) {
    const uint8x16_t three = vdupq_n_u8(3), four = vdupq_n_u8(4);
    const uint8x16_t hm0 = vld1q_u8(b->hmask), hm1 = vld1q_u8(b->hmask + 16);
    int plane = 0;
    for (int half = 0; half < 2; half++) {
        const uint8x16_t b0 = vld1q_u8(b->qs + 32 * half), b1 = vld1q_u8(b->qs + 32 * half + 16);
        for (int shift = 0; shift < 8; shift += 2, plane++) {
            const uint8x16_t bit = vdupq_n_u8((uint8_t)(1u << plane));
            const int8x16_t l0 = s8(vandq_u8(vshlq_u8(b0, vdupq_n_s8((int8_t)-shift)), three));
            const int8x16_t l1 = s8(vandq_u8(vshlq_u8(b1, vdupq_n_s8((int8_t)-shift)), three));
            /* vtst gives 0xFF where the bit is set: subtract 4 where it is not */
            const int8x16_t m0 = s8(vbicq_u8(four, vtstq_u8(hm0, bit)));
            const int8x16_t m1 = s8(vbicq_u8(four, vtstq_u8(hm1, bit)));
            q[2 * plane] = vsubq_s8(l0, m0);
            q[2 * plane + 1] = vsubq_s8(l1, m1);
        }
    }
}

/* Q4_K: per 64 elements, 32 bytes: low nibbles then high nibbles. */
static inline void unpack_q4_K(const block_q4_K *b, int8x16_t q[16]) {
    const uint8x16_t m4 = vdupq_n_u8(0xF);
    for (int j = 0; j < 4; j++) {
        const uint8x16_t b0 = vld1q_u8(b->qs + 32 * j), b1 = vld1q_u8(b->qs + 32 * j + 16);
        q[4 * j] = s8(vandq_u8(b0, m4)), q[4 * j + 1] = s8(vandq_u8(b1, m4));
        q[4 * j + 2] = s8(vshrq_n_u8(b0, 4)), q[4 * j + 3] = s8(vshrq_n_u8(b1, 4));
    }
}

/* Q5_K: Q4_K's nibbles plus 16 where bit 2j (low nibbles) / 2j+1 (high nibbles) of qh[l] is set. */
static inline void unpack_q5_K(const block_q5_K *b, int8x16_t q[16]) {
    const uint8x16_t m4 = vdupq_n_u8(0xF), sixteen = vdupq_n_u8(16);
    const uint8x16_t h0 = vld1q_u8(b->qh), h1 = vld1q_u8(b->qh + 16);
    for (int j = 0; j < 4; j++) {
        const uint8x16_t b0 = vld1q_u8(b->qs + 32 * j), b1 = vld1q_u8(b->qs + 32 * j + 16);
        const uint8x16_t bit_lo = vdupq_n_u8((uint8_t)(1u << (2 * j))), bit_hi = vdupq_n_u8((uint8_t)(2u << (2 * j)));
        q[4 * j] = s8(vorrq_u8(vandq_u8(b0, m4), vandq_u8(vtstq_u8(h0, bit_lo), sixteen)));
        q[4 * j + 1] = s8(vorrq_u8(vandq_u8(b1, m4), vandq_u8(vtstq_u8(h1, bit_lo), sixteen)));
        q[4 * j + 2] = s8(vorrq_u8(vshrq_n_u8(b0, 4), vandq_u8(vtstq_u8(h0, bit_hi), sixteen)));
        q[4 * j + 3] = s8(vorrq_u8(vshrq_n_u8(b1, 4), vandq_u8(vtstq_u8(h1, bit_hi), sixteen)));
    }
}

/* Q6_K as unsigned 0..63 (the -32 offset is applied by the caller: in float for dequant, through
 * the bsums for the dot). Per 128-element half: ql[0..63], qh[0..31]. */
static inline void unpack_q6_K_unsigned(const block_q6_K *b, int8x16_t q[16]) {
    const uint8x16_t m4 = vdupq_n_u8(0xF), m3 = vdupq_n_u8(3);
    for (int half = 0; half < 2; half++) {
        const uint8_t *ql = b->ql + 64 * half, *qh = b->qh + 32 * half;
        for (int k = 0; k < 2; k++) { /* 16-element columns l = 16k .. 16k+15 */
            const uint8x16_t lA = vld1q_u8(ql + 16 * k), lB = vld1q_u8(ql + 32 + 16 * k);
            const uint8x16_t h = vld1q_u8(qh + 16 * k);
            int8x16_t *o = q + 8 * half + k;
            o[0] = s8(vorrq_u8(vandq_u8(lA, m4), vshlq_n_u8(vandq_u8(h, m3), 4)));
            o[2] = s8(vorrq_u8(vandq_u8(lB, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 2), m3), 4)));
            o[4] = s8(vorrq_u8(vshrq_n_u8(lA, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 4), m3), 4)));
            o[6] = s8(vorrq_u8(vshrq_n_u8(lB, 4), vshlq_n_u8(vshrq_n_u8(h, 6), 4)));
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* dequantization                                                                             */

void ts_dequant_q2_K_neon(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q2_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        const float d = f16_to_f32(x[i].d), dmin = f16_to_f32(x[i].dmin);
        int8x16_t q[16];
        unpack_q2_K(&x[i], q);
        for (int g = 0; g < 16; g++) {
            const uint8_t sc = x[i].scales[g];
            store16(q[g], d * (float)(sc & 0xF), dmin * (float)(sc >> 4), y + 16 * g);
        }
    }
}

void ts_dequant_q3_K_neon(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q3_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        const float d_all = f16_to_f32(x[i].d);
        int8_t scales[16];
        q3_unpack_scales(x[i].scales, scales);
        int8x16_t q[16];
        unpack_q3_K(&x[i], q);
        for (int g = 0; g < 16; g++) store16_sym(q[g], d_all * (float)scales[g], y + 16 * g);
    }
}

void ts_dequant_q4_K_neon(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        const float d = f16_to_f32(x[i].d), dmin = f16_to_f32(x[i].dmin);
        int8x16_t q[16];
        unpack_q4_K(&x[i], q);
        for (int j = 0; j < 8; j++) { /* 32-element sub-blocks */
            uint8_t sc, mn;
            k4_scale_min(j, x[i].scales, &sc, &mn);
            const float dl = d * (float)sc, ml = dmin * (float)mn;
            store16(q[2 * j], dl, ml, y + 32 * j);
            store16(q[2 * j + 1], dl, ml, y + 32 * j + 16);
        }
    }
}

void ts_dequant_q5_K_neon(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        const float d = f16_to_f32(x[i].d), dmin = f16_to_f32(x[i].dmin);
        int8x16_t q[16];
        unpack_q5_K(&x[i], q);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, mn;
            k4_scale_min(j, x[i].scales, &sc, &mn);
            const float dl = d * (float)sc, ml = dmin * (float)mn;
            store16(q[2 * j], dl, ml, y + 32 * j);
            store16(q[2 * j + 1], dl, ml, y + 32 * j + 16);
        }
    }
}

void ts_dequant_q6_K_neon(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q6_K *x = vx;
    const int8x16_t offset = vdupq_n_s8(32);
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        const float d = f16_to_f32(x[i].d);
        int8x16_t q[16];
        unpack_q6_K_unsigned(&x[i], q);
        /* (d * scale) * q, left to right as in the reference */
        for (int g = 0; g < 16; g++) store16_sym(vsubq_s8(q[g], offset), d * (float)x[i].scales[g], y + 16 * g);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Q8_K activation quantizer                                                                  */

void ts_quant_q8_K_neon(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_K *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        /* vmaxnm returns the number when one operand is NaN: NaNs are skipped as in the reference */
        float32x4_t vmax = vdupq_n_f32(0.0f);
        for (int j = 0; j < QK_K; j += 4) vmax = vmaxnmq_f32(vmax, vabsq_f32(vld1q_f32(x + j)));
        const float amax = vmaxnmvq_f32(vmax);
        if (amax == 0) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        /* the reference keeps the sign of the FIRST value whose magnitude is amax */
        float max = amax;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(x[j]) == amax) {
                max = x[j];
                break;
            }
        }
        const float iscale = -127.f / max;
        if (isinf(iscale)) { /* max |x| < ~4e-37: stored as zero, as in the reference */
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        const int32x4_t v127 = vdupq_n_s32(127);
        for (int g = 0; g < QK_K / 16; g++) {
            int32x4_t v[4];
            for (int k = 0; k < 4; k++)
                v[k] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 16 * g + 4 * k), iscale)), v127);
            y[i].bsums[g] = (int16_t)vaddvq_s32(vaddq_s32(vaddq_s32(v[0], v[1]), vaddq_s32(v[2], v[3])));
            const int16x8_t lo = vcombine_s16(vqmovn_s32(v[0]), vqmovn_s32(v[1]));
            const int16x8_t hi = vcombine_s16(vqmovn_s32(v[2]), vqmovn_s32(v[3]));
            vst1q_s8(y[i].qs + 16 * g, vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi)));
        }
        y[i].d = 1 / iscale;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* dot products with a q8_K row                                                               */

/* sum over the 16 groups of 16 of scale[g] * dot(q[g], q8[g]) */
static inline int32_t scaled_groups16(const int8x16_t q[16], const int8_t *q8, const int scales[16]) {
    int32_t isum = 0;
    for (int g = 0; g < 16; g++) isum += scales[g] * dot16(q[g], vld1q_s8(q8 + 16 * g));
    return isum;
}

/* sum over the 16 bsums of bsums[g] * mult[g] (the min / offset correction) */
static inline int32_t bsums_dot(const int16_t *bsums, const int mult[16]) {
    int32_t sum = 0;
    for (int g = 0; g < 16; g++) sum += bsums[g] * mult[g];
    return sum;
}

void ts_dot_q2_K_neon(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q2_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int scales[16], mins[16];
        for (int g = 0; g < 16; g++) scales[g] = x[i].scales[g] & 0xF, mins[g] = x[i].scales[g] >> 4;
        const float dall = y[i].d * f16_to_f32(x[i].d);
        const float dmin = y[i].d * f16_to_f32(x[i].dmin);
        int8x16_t q[16];
        unpack_q2_K(&x[i], q);
        const int32_t isum = scaled_groups16(q, y[i].qs, scales);
        sumf += dall * (float)isum - dmin * (float)bsums_dot(y[i].bsums, mins);
    }
    *s = sumf;
}

void ts_dot_q3_K_neon(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q3_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int8_t sc8[16];
        q3_unpack_scales(x[i].scales, sc8);
        int scales[16];
        for (int g = 0; g < 16; g++) scales[g] = sc8[g];
        int8x16_t q[16];
        unpack_q3_K(&x[i], q);
        sumf += f16_to_f32(x[i].d) * y[i].d * (float)scaled_groups16(q, y[i].qs, scales);
    }
    *s = sumf;
}

void ts_dot_q4_K_neon(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int scales[16], mins[16];
        for (int j = 0; j < 8; j++) {
            uint8_t sc, mn;
            k4_scale_min(j, x[i].scales, &sc, &mn);
            scales[2 * j] = scales[2 * j + 1] = sc;
            mins[2 * j] = mins[2 * j + 1] = mn;
        }
        int8x16_t q[16];
        unpack_q4_K(&x[i], q);
        const float d = y[i].d * f16_to_f32(x[i].d), dmin = y[i].d * f16_to_f32(x[i].dmin);
        sumf -= dmin * (float)bsums_dot(y[i].bsums, mins);
        sumf += d * (float)scaled_groups16(q, y[i].qs, scales);
    }
    *s = sumf;
}

void ts_dot_q5_K_neon(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int scales[16], mins[16];
        for (int j = 0; j < 8; j++) {
            uint8_t sc, mn;
            k4_scale_min(j, x[i].scales, &sc, &mn);
            scales[2 * j] = scales[2 * j + 1] = sc;
            mins[2 * j] = mins[2 * j + 1] = mn;
        }
        int8x16_t q[16];
        unpack_q5_K(&x[i], q);
        const float d = y[i].d * f16_to_f32(x[i].d), dmin = y[i].d * f16_to_f32(x[i].dmin);
        sumf -= dmin * (float)bsums_dot(y[i].bsums, mins);
        sumf += d * (float)scaled_groups16(q, y[i].qs, scales);
    }
    *s = sumf;
}

void ts_dot_q6_K_neon(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int scales[16];
        for (int g = 0; g < 16; g++) scales[g] = x[i].scales[g];
        int8x16_t q[16];
        unpack_q6_K_unsigned(&x[i], q);
        /* sum scale*(q-32)*q8 = sum scale*q*q8 - 32 * sum scale*bsum, all exact in int32:
         * |sum| <= 256 * 128 * 63 * 127 < 2^31. */
        const int32_t isum = scaled_groups16(q, y[i].qs, scales) - 32 * bsums_dot(y[i].bsums, scales);
        sumf += f16_to_f32(x[i].d) * y[i].d * (float)isum;
    }
    *s = sumf;
}
