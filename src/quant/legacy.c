/* Scalar reference kernels of the "legacy" block types q4_0, q4_1, q5_0, q5_1, q8_0 and q8_1.
 *
 * Block semantics are ggml's (ggml-quants.c): in a 32-value block, elements j and j+16 share byte
 * j of qs (j in the low nibble); the 5-bit types keep bit 4 of element j in bit j of qh (little
 * endian); values are q4_0: (nibble-8)*d, q4_1: nibble*d+m, q5_0: (q5-16)*d, q5_1: q5*d+m,
 * q8_x: q*d. The quantizers reproduce ggml's reference quantizers bit for bit on finite input, so
 * the files synth writes equal what llama-quantize writes from the same floats.
 *
 * The dots follow ggml's generic CPU path (ggml-cpu/quants.c): an exact integer sum per block,
 * scaled in float and accumulated in one float, in ggml's operand order.
 *
 * Activation conversion: ts_quant_q8_0_ref / ts_quant_q8_1_ref are also the scalar activation
 * converters. They mirror ggml's scalar quantize_row_q8_0/q8_1 (which is what llama.cpp runs on a CPU
 * without AVX): inverse scale 1/d and roundf (ties away from zero). llama.cpp's AVX2 path, mirrored by
 * our *_avx2 converters, uses the inverse scale 127/amax and round-to-nearest-even instead, so the two
 * may differ by one in a quant where x*id lands on (or one ulp around) a .5 tie. The scale d is the
 * same in both. */
#include <math.h>
#include <string.h>

#include "quant/blocks.h"
#include "quant/kernels.h"

/* Converts a non-negative quantization index (already offset into [0, hi]) to an integer.
 * Truncation like ggml's (int8_t)/(uint8_t) casts, but defined for any input: NaN and negatives
 * give 0 and too-large values give hi, where ggml's cast would be undefined behaviour. */
static inline int trunc_index(float t, int hi) {
    if (!(t >= 0.0f)) return 0;
    if (t >= (float)hi) return hi;
    return (int)t;
}

static inline uint32_t load_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static inline void store_qh(uint8_t qh[4], uint32_t bits) {
    for (int i = 0; i < 4; i++) qh[i] = (uint8_t)(bits >> (8 * i));
}

/* ---------------------------------------------------------------- dequantize */

void ts_dequant_q4_0_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float d = ts_f16_to_f32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[i * QK4_0 + j] = (float)((x[i].qs[j] & 0x0F) - 8) * d;
            y[i * QK4_0 + j + QK4_0 / 2] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void ts_dequant_q4_1_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const float d = ts_f16_to_f32(x[i].d);
        const float m = ts_f16_to_f32(x[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            y[i * QK4_1 + j] = (float)(x[i].qs[j] & 0x0F) * d + m;
            y[i * QK4_1 + j + QK4_1 / 2] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

void ts_dequant_q5_0_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_0 *x = vx;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const float d = ts_f16_to_f32(x[i].d);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int hi0 = (int)((qh >> j) & 1u) << 4;
            const int hi1 = (int)((qh >> (j + QK5_0 / 2)) & 1u) << 4;
            y[i * QK5_0 + j] = (float)(((x[i].qs[j] & 0x0F) | hi0) - 16) * d;
            y[i * QK5_0 + j + QK5_0 / 2] = (float)(((x[i].qs[j] >> 4) | hi1) - 16) * d;
        }
    }
}

void ts_dequant_q5_1_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_1 *x = vx;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const float d = ts_f16_to_f32(x[i].d);
        const float m = ts_f16_to_f32(x[i].m);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int hi0 = (int)((qh >> j) & 1u) << 4;
            const int hi1 = (int)((qh >> (j + QK5_1 / 2)) & 1u) << 4;
            y[i * QK5_1 + j] = (float)((x[i].qs[j] & 0x0F) | hi0) * d + m;
            y[i * QK5_1 + j + QK5_1 / 2] = (float)((x[i].qs[j] >> 4) | hi1) * d + m;
        }
    }
}

void ts_dequant_q8_0_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float d = ts_f16_to_f32(x[i].d);
        for (int j = 0; j < QK8_0; j++) y[i * QK8_0 + j] = (float)x[i].qs[j] * d;
    }
}

void ts_dequant_q8_1_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q8_1 *x = vx;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const float d = ts_f16_to_f32(x[i].d);
        for (int j = 0; j < QK8_1; j++) y[i * QK8_1 + j] = (float)x[i].qs[j] * d;
    }
}

/* ---------------------------------------------------------------- quantize */

/* The value of largest magnitude in a block (the first one on ties), as ggml's symmetric
 * quantizers pick it: its sign decides the sign of d, so it lands exactly on the -8 / -16 end. */
static float signed_absmax(const float *x, int count) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < count; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int count, float *min_out, float *max_out) {
    float min = INFINITY, max = -INFINITY;
    for (int j = 0; j < count; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    *min_out = min;
    *max_out = max;
}

void ts_quant_q4_0_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q4_0 *y = vy;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float *xb = x + i * QK4_0;
        const float d = signed_absmax(xb, QK4_0) / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = ts_f32_to_f16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int lo = trunc_index(xb[j] * id + 8.5f, 15);
            const int hi = trunc_index(xb[j + QK4_0 / 2] * id + 8.5f, 15);
            y[i].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

void ts_quant_q4_1_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q4_1 *y = vy;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const float *xb = x + i * QK4_1;
        float min, max;
        min_max(xb, QK4_1, &min, &max);
        const float d = (max - min) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = ts_f32_to_f16(d);
        y[i].m = ts_f32_to_f16(min);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const int lo = trunc_index((xb[j] - min) * id + 0.5f, 15);
            const int hi = trunc_index((xb[j + QK4_1 / 2] - min) * id + 0.5f, 15);
            y[i].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

void ts_quant_q5_0_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q5_0 *y = vy;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const float *xb = x + i * QK5_0;
        const float d = signed_absmax(xb, QK5_0) / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = ts_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int lo = trunc_index(xb[j] * id + 16.5f, 31);
            const int hi = trunc_index(xb[j + QK5_0 / 2] * id + 16.5f, 31);
            y[i].qs[j] = (uint8_t)((lo & 0x0F) | (hi & 0x0F) << 4);
            qh |= (uint32_t)(lo >> 4) << j;
            qh |= (uint32_t)(hi >> 4) << (j + QK5_0 / 2);
        }
        store_qh(y[i].qh, qh);
    }
}

void ts_quant_q5_1_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q5_1 *y = vy;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const float *xb = x + i * QK5_1;
        float min, max;
        min_max(xb, QK5_1, &min, &max);
        const float d = (max - min) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = ts_f32_to_f16(d);
        y[i].m = ts_f32_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            /* ggml has no clamp here; (max-min)*id cannot reach 31.5, so clamping to 31 changes
             * nothing for finite input and keeps a NaN from being undefined behaviour. */
            const int lo = trunc_index((xb[j] - min) * id + 0.5f, 31);
            const int hi = trunc_index((xb[j + QK5_1 / 2] - min) * id + 0.5f, 31);
            y[i].qs[j] = (uint8_t)((lo & 0x0F) | (hi & 0x0F) << 4);
            qh |= (uint32_t)(lo >> 4) << j;
            qh |= (uint32_t)(hi >> 4) << (j + QK5_1 / 2);
        }
        store_qh(y[i].qh, qh);
    }
}

static float absmax(const float *x, int count) {
    float amax = 0.0f;
    for (int j = 0; j < count; j++) amax = fmaxf(amax, fabsf(x[j]));
    return amax;
}

/* roundf of a value that should lie in [-127, 127], saturated so that a NaN or an out-of-range
 * input (only possible with inf/NaN in the row) stays defined. */
static inline int8_t round_q8(float v) {
    const float r = roundf(v);
    if (!(r >= -127.0f)) return r < 0.0f ? -127 : 0;
    if (r > 127.0f) return 127;
    return (int8_t)r;
}

void ts_quant_q8_0_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float *xb = x + i * QK8_0;
        const float d = absmax(xb, QK8_0) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = ts_f32_to_f16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = round_q8(xb[j] * id);
    }
}

void ts_quant_q8_1_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const float *xb = x + i * QK8_1;
        const float d = absmax(xb, QK8_1) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = ts_f32_to_f16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            y[i].qs[j] = round_q8(xb[j] * id);
            sum += y[i].qs[j];
        }
        /* s uses the unrounded float d, as ggml does: it is the sum of the block's values. */
        y[i].s = ts_f32_to_f16((float)sum * d);
    }
}

/* ---------------------------------------------------------------- dot products */

void ts_dot_q4_0_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    float sumf = 0.0f;
    for (int i = 0; i < n / QK4_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            sumi += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
        }
        sumf += (float)sumi * ts_f16_to_f32(x[i].d) * ts_f16_to_f32(y[i].d);
    }
    *s = sumf;
}

void ts_dot_q4_1_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_1 *x = vx;
    const block_q8_1 *y = vy;
    float sumf = 0.0f;
    for (int i = 0; i < n / QK4_1; i++) {
        int sumi = 0;
        for (int j = 0; j < QK4_1 / 2; j++) {
            sumi += (x[i].qs[j] & 0x0F) * y[i].qs[j];
            sumi += (x[i].qs[j] >> 4) * y[i].qs[j + QK4_1 / 2];
        }
        /* sum((q*dx + m) * qy*dy) = dx*dy*sum(q*qy) + m*(dy*sum(qy)) and y.s holds dy*sum(qy). */
        sumf += (ts_f16_to_f32(x[i].d) * ts_f16_to_f32(y[i].d)) * (float)sumi +
                ts_f16_to_f32(x[i].m) * ts_f16_to_f32(y[i].s);
    }
    *s = sumf;
}

void ts_dot_q5_0_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    float sumf = 0.0f;
    for (int i = 0; i < n / QK5_0; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int sumi = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int hi0 = (int)((qh >> j) & 1u) << 4;
            const int hi1 = (int)((qh >> (j + QK5_0 / 2)) & 1u) << 4;
            sumi += (((x[i].qs[j] & 0x0F) | hi0) - 16) * y[i].qs[j];
            sumi += (((x[i].qs[j] >> 4) | hi1) - 16) * y[i].qs[j + QK5_0 / 2];
        }
        sumf += (ts_f16_to_f32(x[i].d) * ts_f16_to_f32(y[i].d)) * (float)sumi;
    }
    *s = sumf;
}

void ts_dot_q5_1_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_1 *x = vx;
    const block_q8_1 *y = vy;
    float sumf = 0.0f;
    for (int i = 0; i < n / QK5_1; i++) {
        const uint32_t qh = load_qh(x[i].qh);
        int sumi = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int hi0 = (int)((qh >> j) & 1u) << 4;
            const int hi1 = (int)((qh >> (j + QK5_1 / 2)) & 1u) << 4;
            sumi += ((x[i].qs[j] & 0x0F) | hi0) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) | hi1) * y[i].qs[j + QK5_1 / 2];
        }
        sumf += (ts_f16_to_f32(x[i].d) * ts_f16_to_f32(y[i].d)) * (float)sumi +
                ts_f16_to_f32(x[i].m) * ts_f16_to_f32(y[i].s);
    }
    *s = sumf;
}

void ts_dot_q8_0_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q8_0 *x = vx;
    const block_q8_0 *y = vy;
    float sumf = 0.0f;
    for (int i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++) sumi += x[i].qs[j] * y[i].qs[j];
        sumf += (float)sumi * (ts_f16_to_f32(x[i].d) * ts_f16_to_f32(y[i].d));
    }
    *s = sumf;
}
