/* AVX2/FMA/F16C kernels of the legacy block types (compiled with -mavx2 -mfma -mf16c; only reached
 * through the AVX2 table after a CPU check). Scalar references: legacy.c.
 *
 * Dequantization performs the scalar reference's float operations (int->float, *d, then +m as a
 * separate add, never fused), so its output is bit-identical to legacy.c.
 *
 * The dots reproduce ggml's AVX2 ggml_vec_dot_<type>_q8_<0|1> (ggml-cpu/arch/x86/quants.c): 32
 * quants are widened to bytes, multiplied with the q8 activations by maddubs (unsigned x signed
 * bytes -> pairwise int16 sums; a signed weight is made unsigned by moving its sign onto the
 * activation with sign_epi8), summed to 8 int32 lanes by madd with ones, converted to float and
 * accumulated with one FMA per block against d_x*d_y. The int16 pair sums cannot saturate for
 * activations in [-127, 127] (what every q8 quantizer produces): |pair| <= 2*128*127 < 32768.
 * Keeping ggml's exact operation order makes our dots round exactly like llama.cpp's AVX2 build.
 *
 * Activation conversion (q8_0, q8_1) is ggml's AVX2 quantize_row_q8_0/q8_1: inverse scale
 * 127/amax and round-to-nearest-even (_mm256_round_ps); see legacy.c for how the scalar
 * reference differs. */
#include <immintrin.h>
#include <string.h>

#include "quant/blocks.h"
#include "quant/kernels.h"

static inline float f16_to_f32(ts_f16 h) { return _cvtsh_ss(h); }

/* 16 bytes of packed nibbles -> 32 bytes in element order: byte j's low nibble is element j, its
 * high nibble element j+16. */
static inline __m256i nibbles_to_bytes(const uint8_t *qs) {
    const __m128i packed = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

/* 32 bits (little endian) -> 32 bytes, 0xFF where the bit is set and 0x00 where not. */
static inline __m256i bits_to_bytes(const uint8_t *qh) {
    uint32_t bits;
    memcpy(&bits, qh, sizeof bits);
    /* Byte k of the result gets byte k/8 of the word; then each byte tests its own bit by OR-ing
     * every other bit to one and comparing with all ones. */
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits),
                                               _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                                 0x0101010101010101, 0x0000000000000000));
    const __m256i others_set = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(others_set, _mm256_set1_epi64x(-1));
}

static inline __m256i q5_0_bytes(const block_q5_0 *b) {
    /* Bit 4 clear means value - 16 < 0: setting the top nibble to 0xF gives nibble - 16 as int8. */
    const __m256i hi = _mm256_andnot_si256(bits_to_bytes(b->qh), _mm256_set1_epi8((char)0xF0));
    return _mm256_or_si256(nibbles_to_bytes(b->qs), hi);
}

static inline __m256i q5_1_bytes(const block_q5_1 *b) {
    const __m256i hi = _mm256_and_si256(bits_to_bytes(b->qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(nibbles_to_bytes(b->qs), hi);
}

/* Unsigned bytes a times signed bytes b, summed over each group of four into 8 int32 lanes, as float. */
static inline __m256 dot_u8_i8_lanes(__m256i a, __m256i b) {
    const __m256i pairs = _mm256_maddubs_epi16(a, b);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), pairs));
}

static inline __m256 dot_i8_i8_lanes(__m256i a, __m256i b) {
    return dot_u8_i8_lanes(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

/* ggml's hsum_float_8. */
static inline float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline int hsum_i32x8(__m256i v) {
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(r);
}

/* ---------------------------------------------------------------- dequantize */

/* Stores 32 int8 values as float, each times d (and plus m when add_m). */
static inline void store_scaled(__m256i q, float d, float m, int add_m, float *y) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    const __m256 vd = _mm256_set1_ps(d), vm = _mm256_set1_ps(m);
    for (int k = 0; k < 4; k++) {
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[k])), vd);
        if (add_m) v = _mm256_add_ps(v, vm);
        _mm256_storeu_ps(y + 8 * k, v);
    }
}

void ts_dequant_q4_0_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const __m256i q = _mm256_sub_epi8(nibbles_to_bytes(x[i].qs), _mm256_set1_epi8(8));
        store_scaled(q, f16_to_f32(x[i].d), 0.0f, 0, y + i * QK4_0);
    }
}

void ts_dequant_q4_1_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / QK4_1; i++)
        store_scaled(nibbles_to_bytes(x[i].qs), f16_to_f32(x[i].d), f16_to_f32(x[i].m), 1, y + i * QK4_1);
}

void ts_dequant_q5_0_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_0 *x = vx;
    for (int64_t i = 0; i < n / QK5_0; i++) store_scaled(q5_0_bytes(&x[i]), f16_to_f32(x[i].d), 0.0f, 0, y + i * QK5_0);
}

void ts_dequant_q5_1_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_1 *x = vx;
    for (int64_t i = 0; i < n / QK5_1; i++)
        store_scaled(q5_1_bytes(&x[i]), f16_to_f32(x[i].d), f16_to_f32(x[i].m), 1, y + i * QK5_1);
}

void ts_dequant_q8_0_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)x[i].qs);
        store_scaled(q, f16_to_f32(x[i].d), 0.0f, 0, y + i * QK8_0);
    }
}

/* ---------------------------------------------------------------- activation conversion */

/* One block of 32 floats -> 32 int8 quants (RNE of x*127/amax) and the float scale d = amax/127;
 * returns the sum of the quants (for q8_1's s). */
static inline int quantize_block_q8(const float *x, float *d_out, int8_t *qs) {
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    __m256 amax = _mm256_andnot_ps(sign_bit, v0);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_bit, v1));
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_bit, v2));
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_bit, v3));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(amax, 1), _mm256_castps256_ps128(amax));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float max_scalar = _mm_cvtss_f32(m4);

    const float d = max_scalar / 127.0f;
    *d_out = d;
    const __m256 mul = _mm256_set1_ps(max_scalar != 0.0f ? 127.0f / max_scalar : 0.0f);
#define RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
    __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), RNE));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), RNE));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), RNE));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), RNE));
#undef RNE
    const int sum = hsum_i32x8(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
    /* The packs work per 128-bit half, leaving 4-value groups in order 0 2 4 6 1 3 5 7 (by group);
     * the dword permute puts them back. */
    i0 = _mm256_packs_epi32(i0, i1);
    i2 = _mm256_packs_epi32(i2, i3);
    i0 = _mm256_packs_epi16(i0, i2);
    i0 = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)qs, i0);
    return sum;
}

void ts_quant_q8_0_avx2(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        float d;
        (void)quantize_block_q8(x + i * QK8_0, &d, y[i].qs);
        y[i].d = (ts_f16)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    }
}

void ts_quant_q8_1_avx2(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        float d;
        const int sum = quantize_block_q8(x + i * QK8_1, &d, y[i].qs);
        y[i].d = (ts_f16)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        /* ggml: s = fp16(d * sum) with the unrounded float d = amax/127. */
        y[i].s = (ts_f16)_cvtss_sh(d * (float)sum, _MM_FROUND_TO_NEAREST_INT);
    }
}

/* ---------------------------------------------------------------- dot products */

void ts_dot_q4_0_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK4_0; i++) {
        const __m256 d = _mm256_set1_ps(f16_to_f32(x[i].d) * f16_to_f32(y[i].d));
        const __m256i qx = _mm256_sub_epi8(nibbles_to_bytes(x[i].qs), _mm256_set1_epi8(8));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, dot_i8_i8_lanes(qx, qy), acc);
    }
    *s = hsum8(acc);
}

void ts_dot_q4_1_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_1 *x = vx;
    const block_q8_1 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    float sum_min = 0.0f;
    for (int i = 0; i < n / QK4_1; i++) {
        sum_min += f16_to_f32(x[i].m) * f16_to_f32(y[i].s);
        const __m256 d = _mm256_mul_ps(_mm256_set1_ps(f16_to_f32(x[i].d)), _mm256_set1_ps(f16_to_f32(y[i].d)));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, dot_u8_i8_lanes(nibbles_to_bytes(x[i].qs), qy), acc);
    }
    *s = hsum8(acc) + sum_min;
}

void ts_dot_q5_0_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK5_0; i++) {
        const __m256 d = _mm256_set1_ps(f16_to_f32(x[i].d) * f16_to_f32(y[i].d));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, dot_i8_i8_lanes(q5_0_bytes(&x[i]), qy), acc);
    }
    *s = hsum8(acc);
}

void ts_dot_q5_1_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_1 *x = vx;
    const block_q8_1 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    float sum_min = 0.0f;
    for (int i = 0; i < n / QK5_1; i++) {
        sum_min += f16_to_f32(x[i].m) * f16_to_f32(y[i].s);
        const __m256 d = _mm256_mul_ps(_mm256_set1_ps(f16_to_f32(x[i].d)), _mm256_set1_ps(f16_to_f32(y[i].d)));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(dot_u8_i8_lanes(q5_1_bytes(&x[i]), qy), d, acc);
    }
    *s = hsum8(acc) + sum_min;
}

void ts_dot_q8_0_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q8_0 *x = vx;
    const block_q8_0 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n / QK8_0; i++) {
        const __m256 d = _mm256_set1_ps(f16_to_f32(x[i].d) * f16_to_f32(y[i].d));
        const __m256i qx = _mm256_loadu_si256((const __m256i *)x[i].qs);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        acc = _mm256_fmadd_ps(d, dot_i8_i8_lanes(qx, qy), acc);
    }
    *s = hsum8(acc);
}
