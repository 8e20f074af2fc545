/* K-quants (Q2_K..Q6_K, Q8_K): AVX2/FMA/F16C kernels. Compiled with -mavx2 -mfma -mf16c and only
 * reached through the AVX2 type table after a CPU check.
 *
 * dequant: bit-identical to the scalar reference (kquants.c): quants are unpacked with byte
 *          shuffles/masks, then each value is computed with the reference's float expression
 *          (one multiply, one subtract; never an FMA, which would round differently).
 * dot:     the structure of ggml's x86 AVX2 vec_dot_*_q8_K: maddubs (unsigned 2..6-bit quant x
 *          signed q8) into int16 pairs, madd with the sub-block scales into int32, one FMA per
 *          block into 8 float lanes, mins (and Q6_K's -32 offset) through the q8_K bsums. The
 *          int16 stage cannot saturate: |quant| <= 63 and |q8| <= 127 (q8_K never produces -128;
 *          even -128 would stay within 2*63*128 < 32767). So the integer sums per block equal the
 *          scalar reference's exactly; only the float summation order differs.
 * q8_K:    bit-identical to ts_quant_q8_K_ref (ggml's x86 backend also just calls the reference).
 *          One deliberate difference from a naive vectorisation: NaN inputs are skipped by the max
 *          search like the scalar `ax > amax` does. */
#if defined(__AVX2__) && defined(__FMA__)

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "quant/blocks.h"
#include "quant/kernels.h"

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                    */

/* Horizontal sum in the same pairing order as ggml's hsum_float_8. */
static inline float hsum_f32x8(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline int hsum_i32x4(__m128i a) {
    a = _mm_add_epi32(a, _mm_unpackhi_epi64(a, a));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(a);
}

/* y[0..15] = dl * q[0..15] - ml (or dl * q when subtract_min is 0); q are 16 int8 values.
 * Mirrors the scalar expressions exactly: int -> float is exact, then mul, then sub. */
static inline void store16_scaled(float *y, __m128i q, float dl, float ml, int subtract_min) {
    const __m256 vd = _mm256_set1_ps(dl);
    const __m256 f0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
    const __m256 f1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)));
    __m256 r0 = _mm256_mul_ps(vd, f0), r1 = _mm256_mul_ps(vd, f1);
    if (subtract_min) {
        const __m256 vm = _mm256_set1_ps(ml);
        r0 = _mm256_sub_ps(r0, vm);
        r1 = _mm256_sub_ps(r1, vm);
    }
    _mm256_storeu_ps(y, r0);
    _mm256_storeu_ps(y + 8, r1);
}

/* Q4_K/Q5_K packed 6-bit scales -> uint32 words: words 0,1 = eight scales, words 2,3 = eight
 * mins (one byte each). See k4_scale_min in kquants.c for the layout. */
static inline void k4_unpack_words(const uint8_t packed[K_SCALE_SIZE], uint32_t w[4]) {
    uint32_t raw[3];
    memcpy(raw, packed, sizeof(raw));
    const uint32_t low6 = 0x3f3f3f3fu, low4 = 0x0f0f0f0fu, low2 = 0x03030303u;
    w[0] = raw[0] & low6;
    w[1] = (raw[2] & low4) | (((raw[0] >> 6) & low2) << 4);
    w[2] = raw[1] & low6;
    w[3] = ((raw[2] >> 4) & low4) | (((raw[1] >> 6) & low2) << 4);
}

/* Q3_K packed scales -> 16 signed scales (stored value - 32). */
static inline __m128i q3_unpack_scales_vec(const uint8_t packed[12]) {
    uint32_t raw[3];
    memcpy(raw, packed, sizeof(raw));
    const uint32_t low4 = 0x0f0f0f0fu, low2 = 0x03030303u;
    const __m128i s = _mm_set_epi32((int)(((raw[1] >> 4) & low4) | (((raw[2] >> 6) & low2) << 4)),
                                    (int)(((raw[0] >> 4) & low4) | (((raw[2] >> 4) & low2) << 4)),
                                    (int)((raw[1] & low4) | (((raw[2] >> 2) & low2) << 4)),
                                    (int)((raw[0] & low4) | (((raw[2] >> 0) & low2) << 4)));
    return _mm_sub_epi8(s, _mm_set1_epi8(32));
}

/* Byte-shuffle controls that broadcast int16 scales to the int16 pair-products of maddubs.
 * pair16[k]: low 128-bit lane gets int16 element 2k, high lane element 2k+1 (16-value
 * sub-blocks: one 32-byte vector spans two of them).
 * all16[k]: every lane gets int16 element k (32-value sub-blocks). */
#define PAIR16_ROW(k)                                                                                \
    {4 * (k), 4 * (k) + 1, 4 * (k), 4 * (k) + 1, 4 * (k), 4 * (k) + 1, 4 * (k), 4 * (k) + 1, 4 * (k), \
     4 * (k) + 1, 4 * (k), 4 * (k) + 1, 4 * (k), 4 * (k) + 1, 4 * (k), 4 * (k) + 1, 4 * (k) + 2,         \
     4 * (k) + 3, 4 * (k) + 2, 4 * (k) + 3, 4 * (k) + 2, 4 * (k) + 3, 4 * (k) + 2, 4 * (k) + 3,           \
     4 * (k) + 2, 4 * (k) + 3, 4 * (k) + 2, 4 * (k) + 3, 4 * (k) + 2, 4 * (k) + 3, 4 * (k) + 2, 4 * (k) + 3}
static const uint8_t shuffle_pair16[4][32] = {PAIR16_ROW(0), PAIR16_ROW(1), PAIR16_ROW(2), PAIR16_ROW(3)};

#define ALL16_ROW(k)                                                                                 \
    {2 * (k), 2 * (k) + 1, 2 * (k), 2 * (k) + 1, 2 * (k), 2 * (k) + 1, 2 * (k), 2 * (k) + 1, 2 * (k), \
     2 * (k) + 1, 2 * (k), 2 * (k) + 1, 2 * (k), 2 * (k) + 1, 2 * (k), 2 * (k) + 1, 2 * (k),             \
     2 * (k) + 1, 2 * (k), 2 * (k) + 1, 2 * (k), 2 * (k) + 1, 2 * (k), 2 * (k) + 1, 2 * (k),             \
     2 * (k) + 1, 2 * (k), 2 * (k) + 1, 2 * (k), 2 * (k) + 1, 2 * (k), 2 * (k) + 1}
static const uint8_t shuffle_all16[8][32] = {ALL16_ROW(0), ALL16_ROW(1), ALL16_ROW(2), ALL16_ROW(3),
                                             ALL16_ROW(4), ALL16_ROW(5), ALL16_ROW(6), ALL16_ROW(7)};

/* Q6_K: 16 int8 scales -> bytes: 8 copies of scale 2k then 8 of scale 2k+1. */
#define Q6_ROW(k)                                                                                    \
    {2 * (k), 2 * (k), 2 * (k), 2 * (k), 2 * (k), 2 * (k), 2 * (k), 2 * (k), 2 * (k) + 1, 2 * (k) + 1, \
     2 * (k) + 1, 2 * (k) + 1, 2 * (k) + 1, 2 * (k) + 1, 2 * (k) + 1, 2 * (k) + 1}
static const uint8_t shuffle_q6[8][16] = {Q6_ROW(0), Q6_ROW(1), Q6_ROW(2), Q6_ROW(3),
                                          Q6_ROW(4), Q6_ROW(5), Q6_ROW(6), Q6_ROW(7)};

static inline __m256i load_shuffle_pair16(int k) { return _mm256_loadu_si256((const __m256i *)shuffle_pair16[k]); }
static inline __m256i load_shuffle_all16(int k) { return _mm256_loadu_si256((const __m256i *)shuffle_all16[k]); }
static inline __m128i load_shuffle_q6(int k) { return _mm_loadu_si128((const __m128i *)shuffle_q6[k]); }

static inline __m256i broadcast_m128(__m128i v) { return _mm256_inserti128_si256(_mm256_castsi128_si256(v), v, 1); }

/* 0xFF in bytes of `bits` where (byte & mask) != 0 */
static inline __m256i bits_set(__m256i bits, __m256i mask) {
    return _mm256_cmpeq_epi8(_mm256_and_si256(bits, mask), mask);
}

/* ---------------------------------------------------------------------------------------- */
/* dequantization                                                                             */

void ts_dequant_q2_K_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q2_K *x = vx;
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = ts_f16_to_f32(x[i].d), dmin = ts_f16_to_f32(x[i].dmin);
        const uint8_t *sc = x[i].scales;
        for (int half = 0; half < 2; half++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * half));
            for (int k = 0; k < 4; k++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                const int is = 8 * half + 2 * k;
                store16_scaled(y, _mm256_castsi256_si128(q), d * (float)(sc[is] & 0xF), dmin * (float)(sc[is] >> 4), 1);
                store16_scaled(y + 16, _mm256_extracti128_si256(q, 1), d * (float)(sc[is + 1] & 0xF),
                               dmin * (float)(sc[is + 1] >> 4), 1);
                y += 32;
            }
        }
    }
}

void ts_dequant_q3_K_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q3_K *x = vx;
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = ts_f16_to_f32(x[i].d);
        int8_t scales[16];
        _mm_storeu_si128((__m128i *)scales, q3_unpack_scales_vec(x[i].scales));
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        for (int half = 0; half < 2; half++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * half));
            for (int k = 0; k < 4; k++) {
                const int bit = 4 * half + k;
                const __m256i low = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                /* quant = low - 4 where the hmask bit is clear */
                const __m256i hmask_bit = _mm256_set1_epi8((char)(1 << bit));
                const __m256i q = _mm256_sub_epi8(low, _mm256_andnot_si256(bits_set(hbits, hmask_bit), four));
                const int is = 8 * half + 2 * k;
                store16_scaled(y, _mm256_castsi256_si128(q), d * (float)scales[is], 0, 0);
                store16_scaled(y + 16, _mm256_extracti128_si256(q, 1), d * (float)scales[is + 1], 0, 0);
                y += 32;
            }
        }
    }
}

void ts_dequant_q4_K_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_K *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0xF);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = ts_f16_to_f32(x[i].d), dmin = ts_f16_to_f32(x[i].dmin);
        uint32_t w[4];
        k4_unpack_words(x[i].scales, w);
        uint8_t sm[16]; /* 8 scales then 8 mins */
        memcpy(sm, w, sizeof(sm));
        for (int j = 0; j < 4; j++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            const __m256i lo = _mm256_and_si256(bits, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            const float d1 = d * (float)sm[2 * j], m1 = dmin * (float)sm[8 + 2 * j];
            const float d2 = d * (float)sm[2 * j + 1], m2 = dmin * (float)sm[8 + 2 * j + 1];
            store16_scaled(y, _mm256_castsi256_si128(lo), d1, m1, 1);
            store16_scaled(y + 16, _mm256_extracti128_si256(lo, 1), d1, m1, 1);
            store16_scaled(y + 32, _mm256_castsi256_si128(hi), d2, m2, 1);
            store16_scaled(y + 48, _mm256_extracti128_si256(hi, 1), d2, m2, 1);
            y += 64;
        }
    }
}

void ts_dequant_q5_K_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_K *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0xF), sixteen = _mm256_set1_epi8(16);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = ts_f16_to_f32(x[i].d), dmin = ts_f16_to_f32(x[i].dmin);
        uint32_t w[4];
        k4_unpack_words(x[i].scales, w);
        uint8_t sm[16];
        memcpy(sm, w, sizeof(sm));
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[i].qh);
        for (int j = 0; j < 4; j++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            const __m256i h_lo = _mm256_and_si256(bits_set(hbits, _mm256_set1_epi8((char)(1 << (2 * j)))), sixteen);
            const __m256i h_hi = _mm256_and_si256(bits_set(hbits, _mm256_set1_epi8((char)(1 << (2 * j + 1)))), sixteen);
            const __m256i lo = _mm256_add_epi8(_mm256_and_si256(bits, m4), h_lo);
            const __m256i hi = _mm256_add_epi8(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), h_hi);
            const float d1 = d * (float)sm[2 * j], m1 = dmin * (float)sm[8 + 2 * j];
            const float d2 = d * (float)sm[2 * j + 1], m2 = dmin * (float)sm[8 + 2 * j + 1];
            store16_scaled(y, _mm256_castsi256_si128(lo), d1, m1, 1);
            store16_scaled(y + 16, _mm256_extracti128_si256(lo, 1), d1, m1, 1);
            store16_scaled(y + 32, _mm256_castsi256_si128(hi), d2, m2, 1);
            store16_scaled(y + 48, _mm256_extracti128_si256(hi, 1), d2, m2, 1);
            y += 64;
        }
    }
}

void ts_dequant_q6_K_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q6_K *x = vx;
    const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3), m32 = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = ts_f16_to_f32(x[i].d);
        const int8_t *sc = x[i].scales;
        for (int half = 0; half < 2; half++) {
            const __m256i a = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * half));
            const __m256i b = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * half + 32));
            const __m256i h = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * half));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(a, m4), _mm256_slli_epi16(_mm256_and_si256(h, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(b, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m3), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m3), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m3), 4));
            for (int k = 0; k < 4; k++) {
                const __m256i v = _mm256_sub_epi8(q[k], m32);
                /* (d * scale) * q, as the reference evaluates it */
                store16_scaled(y + 32 * k, _mm256_castsi256_si128(v), d * (float)sc[2 * k], 0, 0);
                store16_scaled(y + 32 * k + 16, _mm256_extracti128_si256(v, 1), d * (float)sc[2 * k + 1], 0, 0);
            }
            y += 128;
            sc += 8;
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* q8_K activation quantization                                                               */

void ts_quant_q8_K_avx2(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_K *y = vy;
    const __m256 sign_mask = _mm256_set1_ps(-0.0f);
    const __m256i lane_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        /* max |x|; max_ps(v, acc) returns acc when v is NaN, so NaNs are skipped as in the reference */
        __m256 vmax = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8) vmax = _mm256_max_ps(_mm256_andnot_ps(sign_mask, _mm256_loadu_ps(x + j)), vmax);
        __m128 m = _mm_max_ps(_mm256_extractf128_ps(vmax, 1), _mm256_castps256_ps128(vmax));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float amax = _mm_cvtss_f32(m);
        if (amax == 0) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        /* the reference keeps the sign of the FIRST value whose magnitude is amax */
        float max = amax;
        const __m256 vamax = _mm256_set1_ps(amax);
        for (int j = 0; j < QK_K; j += 8) {
            const __m256 v = _mm256_loadu_ps(x + j);
            const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign_mask, v), vamax, _CMP_EQ_OQ));
            if (hit) {
                max = x[j + __builtin_ctz((unsigned)hit)];
                break;
            }
        }
        const float iscale = -127.f / max;
        if (isinf(iscale)) { /* max |x| < ~4e-37: stored as zero, as in the reference */
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        const __m256 vscale = _mm256_set1_ps(iscale);
        const __m256i v127 = _mm256_set1_epi32(127);
        __m256i group_sums[16];
        for (int j = 0; j < QK_K; j += 32) {
            __m256i v[4];
            for (int k = 0; k < 4; k++) {
                const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), vscale);
                /* round to nearest even, as ggml's nearest_int does */
                v[k] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_round_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)), v127);
            }
            group_sums[j / 16] = _mm256_add_epi32(v[0], v[1]);
            group_sums[j / 16 + 1] = _mm256_add_epi32(v[2], v[3]);
            const __m256i packed16_ab = _mm256_packs_epi32(v[0], v[1]);
            const __m256i packed16_cd = _mm256_packs_epi32(v[2], v[3]);
            const __m256i packed8 = _mm256_packs_epi16(packed16_ab, packed16_cd);
            _mm256_storeu_si256((__m256i *)(y[i].qs + j), _mm256_permutevar8x32_epi32(packed8, lane_order));
        }
        /* bsums: reduce each group's 8 int32 partial sums; two hadd levels leave, per 128-bit
         * half, one partial per group, and adding the halves completes it. */
        for (int g = 0; g < 16; g += 4) {
            const __m256i h01 = _mm256_hadd_epi32(group_sums[g], group_sums[g + 1]);
            const __m256i h23 = _mm256_hadd_epi32(group_sums[g + 2], group_sums[g + 3]);
            const __m256i h = _mm256_hadd_epi32(h01, h23);
            const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            _mm_storel_epi64((__m128i *)(y[i].bsums + g), _mm_packs_epi32(s, s));
        }
        y[i].d = 1 / iscale;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* dot products with a q8_K row                                                               */

void ts_dot_q2_K_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q2_K *x = vx;
    const block_q8_K *y = vy;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0xF);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * ts_f16_to_f32(x[i].d);
        const float dmin = -y[i].d * ts_f16_to_f32(x[i].dmin);
        const __m128i packed = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m128i scales8 = _mm_and_si128(packed, m4);
        const __m128i mins8 = _mm_and_si128(_mm_srli_epi16(packed, 4), m4);
        /* mins: sum_j min_j * bsum_j, no per-element work */
        const __m256i min_prod = _mm256_madd_epi16(_mm256_cvtepi8_epi16(mins8), _mm256_loadu_si256((const __m256i *)y[i].bsums));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(min_prod), acc);
        const __m256i scales16 = _mm256_cvtepi8_epi16(scales8);
        const __m256i scale_halves[2] = {broadcast_m128(_mm256_castsi256_si128(scales16)),
                                         broadcast_m128(_mm256_extracti128_si256(scales16, 1))};
        const uint8_t *q2 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)q2);
            q2 += 32;
            for (int k = 0; k < 4; k++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)q8));
                q8 += 32;
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_shuffle_epi8(scale_halves[half], load_shuffle_pair16(k)), p));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_f32x8(acc);
}

void ts_dot_q3_K_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q3_K *x = vx;
    const block_q8_K *y = vy;
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * ts_f16_to_f32(x[i].d);
        const __m256i scales16 = _mm256_cvtepi8_epi16(q3_unpack_scales_vec(x[i].scales));
        const __m256i scale_halves[2] = {broadcast_m128(_mm256_castsi256_si128(scales16)),
                                         broadcast_m128(_mm256_extracti128_si256(scales16, 1))};
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        const uint8_t *q3 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)q3);
            q3 += 32;
            for (int k = 0; k < 4; k++) {
                const int bit = 4 * half + k;
                /* maddubs needs an unsigned operand: multiply the 2 low bits and the "-4 where the
                 * high bit is clear" part separately and subtract */
                const __m256i low = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                const __m256i minus4 = _mm256_andnot_si256(bits_set(hbits, _mm256_set1_epi8((char)(1 << bit))), four);
                const __m256i q8v = _mm256_loadu_si256((const __m256i *)q8);
                q8 += 32;
                const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(low, q8v), _mm256_maddubs_epi16(minus4, q8v));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_shuffle_epi8(scale_halves[half], load_shuffle_pair16(k)), p));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_f32x8(acc);
}

/* Q4_K/Q5_K: 8 scales (low 128 bits) and 8 mins (high 128 bits) widened to int16, and the
 * mins' contribution sum_j min_j * (bsum_2j + bsum_2j+1) as 4 int32 partial sums. */
static inline __m128i k4_min_products(const block_q8_K *yb, __m256i mins_and_scales) {
    const __m256i bsums = _mm256_loadu_si256((const __m256i *)yb->bsums);
    const __m128i pair_sums = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
    return _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), pair_sums);
}

void ts_dot_q4_K_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0xF);
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * ts_f16_to_f32(x[i].d);
        const float dmin = -y[i].d * ts_f16_to_f32(x[i].dmin);
        uint32_t w[4];
        k4_unpack_words(x[i].scales, w);
        const __m256i mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32((int)w[3], (int)w[2], (int)w[1], (int)w[0]));
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(k4_min_products(&y[i], mins_and_scales)), acc_m);
        const __m256i scales = broadcast_m128(_mm256_castsi256_si128(mins_and_scales));
        const uint8_t *q4 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)q4);
            q4 += 32;
            const __m256i lo = _mm256_and_si256(bits, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
            __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
            q8 += 64;
            p_lo = _mm256_madd_epi16(_mm256_shuffle_epi8(scales, load_shuffle_all16(2 * j)), p_lo);
            p_hi = _mm256_madd_epi16(_mm256_shuffle_epi8(scales, load_shuffle_all16(2 * j + 1)), p_hi);
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    *s = hsum_f32x8(acc) + _mm_cvtss_f32(acc_m);
}

void ts_dot_q5_K_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0xF), sixteen = _mm256_set1_epi8(16);
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.f;
    for (int i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * ts_f16_to_f32(x[i].d);
        const float dmin = -y[i].d * ts_f16_to_f32(x[i].dmin);
        uint32_t w[4];
        k4_unpack_words(x[i].scales, w);
        const __m256i mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32((int)w[3], (int)w[2], (int)w[1], (int)w[0]));
        /* ggml sums Q5_K's min term as one scalar per block (unlike Q4_K's 4-lane FMA); llama.cpp
         * is built as GNU C, where GCC contracts this multiply-add into an FMA, so fuse it too */
        summs = fmaf(dmin, (float)hsum_i32x4(k4_min_products(&y[i], mins_and_scales)), summs);
        const __m256i scales = broadcast_m128(_mm256_castsi256_si128(mins_and_scales));
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)x[i].qh);
        const uint8_t *q5 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)q5);
            q5 += 32;
            const __m256i h_lo = _mm256_and_si256(bits_set(hbits, _mm256_set1_epi8((char)(1 << (2 * j)))), sixteen);
            const __m256i h_hi = _mm256_and_si256(bits_set(hbits, _mm256_set1_epi8((char)(1 << (2 * j + 1)))), sixteen);
            const __m256i lo = _mm256_add_epi8(_mm256_and_si256(bits, m4), h_lo);
            const __m256i hi = _mm256_add_epi8(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), h_hi);
            __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q8));
            __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 32)));
            q8 += 64;
            p_lo = _mm256_madd_epi16(_mm256_shuffle_epi8(scales, load_shuffle_all16(2 * j)), p_lo);
            p_hi = _mm256_madd_epi16(_mm256_shuffle_epi8(scales, load_shuffle_all16(2 * j + 1)), p_hi);
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_f32x8(acc) + summs;
}

void ts_dot_q6_K_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK_K; i++) {
        const float d = y[i].d * ts_f16_to_f32(x[i].d);
        const __m128i scales = _mm_loadu_si128((const __m128i *)x[i].scales);
        /* quants are used unsigned (0..63); the -32 offset is 32 * sum_j scale_j * bsum_j */
        const __m256i offset = _mm256_slli_epi32(
            _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), _mm256_cvtepi8_epi16(scales)), 5);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *q8 = y[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            const __m256i a = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i b = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
            ql += 64;
            qh += 32;
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(a, m4), _mm256_slli_epi16(_mm256_and_si256(h, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(b, m4), _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(12)), 2));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4), _mm256_and_si256(h, _mm256_set1_epi8(48)));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), m4),
                                   _mm256_srli_epi16(_mm256_and_si256(h, _mm256_set1_epi8((char)0xC0)), 2));
            for (int k = 0; k < 4; k++) {
                const __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)q8));
                q8 += 32;
                const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, load_shuffle_q6(4 * half + k)));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc16, p));
            }
        }
        sumi = _mm256_sub_epi32(sumi, offset);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_f32x8(acc);
}

#else
/* Built without AVX2 (non-x86): the AVX2 table is not compiled either. ISO C forbids an empty
 * translation unit. */
typedef int ts_kquants_avx2_unused;
#endif
