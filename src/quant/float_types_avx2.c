/* AVX2/FMA/F16C kernels of the float weight types f32, f16 and bf16 (compiled with -mavx2 -mfma
 * -mf16c; only reached through the AVX2 table after a CPU check).
 *
 * The dots reproduce ggml's AVX2 ggml_vec_dot_f32/f16/bf16 operation for operation (four 8-lane
 * accumulators over steps of 32, the same reduction tree, the same tail), so a row dot here
 * rounds exactly as llama.cpp's AVX2 build does. Conversions are bit-identical to the scalar
 * reference except for NaN payloads in f32 -> f16 (F16C keeps the top payload bits; the scalar
 * path returns the canonical quiet NaN), which only matters for NaN activations. */
#include <immintrin.h>
#include <string.h>

#include "quant/kernels.h"
#include "util/fp16.h"

/* ggml's GGML_F32x8_REDUCE for four accumulators: pairwise adds, then two horizontal adds. */
static inline float reduce4(__m256 s0, __m256 s1, __m256 s2, __m256 s3) {
    s0 = _mm256_add_ps(s0, s2);
    s1 = _mm256_add_ps(s1, s3);
    s0 = _mm256_add_ps(s0, s1);
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

/* ---------------------------------------------------------------- f32 */

void ts_dequant_f32_avx2(const void *restrict x, float *restrict y, int64_t n) {
    if (n > 0) memcpy(y, x, (size_t)n * sizeof(float));
}

void ts_dot_f32_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const float *x = vx, *y = vy;
    const int np = n & ~31;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    for (int i = 0; i < np; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
    }
    float sum = reduce4(s0, s1, s2, s3);
    for (int i = np; i < n; i++) sum += x[i] * y[i];
    *s = sum;
}

/* ---------------------------------------------------------------- f16 */

void ts_dequant_f16_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const ts_f16 *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) y[i] = _cvtsh_ss(x[i]);
}

void ts_quant_f16_avx2(const float *restrict x, void *restrict vy, int64_t n) {
    ts_f16 *y = vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

static inline __m256 load_f16x8(const ts_f16 *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

void ts_dot_f16_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const ts_f16 *x = vx, *y = vy;
    const int np = n & ~31;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    for (int i = 0; i < np; i += 32) {
        s0 = _mm256_fmadd_ps(load_f16x8(x + i), load_f16x8(y + i), s0);
        s1 = _mm256_fmadd_ps(load_f16x8(x + i + 8), load_f16x8(y + i + 8), s1);
        s2 = _mm256_fmadd_ps(load_f16x8(x + i + 16), load_f16x8(y + i + 16), s2);
        s3 = _mm256_fmadd_ps(load_f16x8(x + i + 24), load_f16x8(y + i + 24), s3);
    }
    /* ggml keeps the f16 dot's running sum in double (ggml_float) for the tail. */
    double sum = reduce4(s0, s1, s2, s3);
    for (int i = np; i < n; i++) sum += (double)(_cvtsh_ss(x[i]) * _cvtsh_ss(y[i]));
    *s = (float)sum;
}

/* ---------------------------------------------------------------- bf16 */

static inline __m256 load_bf16x8(const ts_bf16 *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

void ts_dequant_bf16_avx2(const void *restrict vx, float *restrict y, int64_t n) {
    const ts_bf16 *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_bf16x8(x + i));
    for (; i < n; i++) y[i] = ts_bf16_to_f32(x[i]);
}

/* ts_f32_to_bf16 on 8 lanes: round to nearest even on the bit pattern, NaN forced quiet. The
 * results fit in 16 bits, returned in the low half of each 32-bit lane. */
static inline __m256i f32_to_bf16_lanes(__m256 v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i magnitude = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    const __m256i is_nan = _mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x7f800000));
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb);
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
    const __m256i quiet_nan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
    return _mm256_blendv_epi8(rounded, quiet_nan, is_nan);
}

void ts_quant_bf16_avx2(const float *restrict x, void *restrict vy, int64_t n) {
    ts_bf16 *y = vy;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i lo = f32_to_bf16_lanes(_mm256_loadu_ps(x + i));
        const __m256i hi = f32_to_bf16_lanes(_mm256_loadu_ps(x + i + 8));
        /* packus works within 128-bit halves: lo0-3 hi0-3 lo4-7 hi4-7; the permute restores order. */
        const __m256i packed = _mm256_packus_epi32(lo, hi);
        _mm256_storeu_si256((__m256i *)(y + i), _mm256_permute4x64_epi64(packed, _MM_SHUFFLE(3, 1, 2, 0)));
    }
    for (; i < n; i++) y[i] = ts_f32_to_bf16(x[i]);
}

void ts_dot_bf16_avx2(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const ts_bf16 *x = vx, *y = vy;
    int i = 0;
    /* ggml's AVX2 bf16 dot multiplies and adds separately (no FMA); bf16 products are exact in
     * float anyway, so only the additions round. */
    __m256 c1 = _mm256_setzero_ps(), c2 = _mm256_setzero_ps();
    __m256 c3 = _mm256_setzero_ps(), c4 = _mm256_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        c1 = _mm256_add_ps(_mm256_mul_ps(load_bf16x8(x + i), load_bf16x8(y + i)), c1);
        c2 = _mm256_add_ps(_mm256_mul_ps(load_bf16x8(x + i + 8), load_bf16x8(y + i + 8)), c2);
        c3 = _mm256_add_ps(_mm256_mul_ps(load_bf16x8(x + i + 16), load_bf16x8(y + i + 16)), c3);
        c4 = _mm256_add_ps(_mm256_mul_ps(load_bf16x8(x + i + 24), load_bf16x8(y + i + 24)), c4);
    }
    c1 = _mm256_add_ps(_mm256_add_ps(c1, c3), _mm256_add_ps(c2, c4));
    __m128 g = _mm_add_ps(_mm256_extractf128_ps(c1, 1), _mm256_castps256_ps128(c1));
    g = _mm_add_ps(g, _mm_movehl_ps(g, g));
    g = _mm_add_ss(g, _mm_movehdup_ps(g));
    double sum = _mm_cvtss_f32(g);
    for (; i < n; i++) sum += (double)(ts_bf16_to_f32(x[i]) * ts_bf16_to_f32(y[i]));
    *s = (float)sum;
}
