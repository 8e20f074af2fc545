/* ts_flash_exp (attn_flash.h) on 8 AVX2 lanes, for the kernels that need many exps (softmax
 * numerators, SiLU). Include only from files compiled for AVX2/FMA (*_avx2.c, *_avx512.c). */
#ifndef TS_OPS_VEXP_AVX2_H
#define TS_OPS_VEXP_AVX2_H

#include <immintrin.h>
#include <math.h>
#include <stddef.h>

#include "ops/attn_flash.h"

/* ts_flash_exp on 8 lanes, the same operations: round to nearest (= nearbyintf), and 2^n built in
 * the exponent field — n is in [-126, 128] here, and y * 2^n rounds like ldexpf (a multiplication
 * by a power of two is exact unless the result is subnormal, and then correctly rounded both
 * ways). n = 128 only for x at the clamp, where 2^128 is built as 2^127 * 2. */
static inline __m256 ts_exp8_avx2(__m256 x) {
    const __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(TS_FLASH_EXP_MIN), _CMP_GE_OQ);
    x = _mm256_min_ps(x, _mm256_set1_ps(TS_FLASH_EXP_MAX));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(TS_FLASH_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-TS_FLASH_LN2_HI), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-TS_FLASH_LN2_LO), r);
    __m256 p = _mm256_set1_ps(TS_FLASH_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TS_FLASH_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TS_FLASH_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TS_FLASH_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TS_FLASH_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TS_FLASH_EXP_P5));
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    /* 2^n as 2^(n - h) * 2^h with h = n / 2 rounded down: both factors stay normal for n in
     * [-126, 128], and the first multiplication is exact. */
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i h = _mm256_srai_epi32(ni, 1);
    const __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), _mm256_set1_epi32(127)), 23));
    const __m256 f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, _mm256_set1_epi32(127)), 23));
    return _mm256_and_ps(live, _mm256_mul_ps(_mm256_mul_ps(y, f1), f2));
}

/* Softmax numerators of heads h0 .. h0 + 7 of a chunk's position-major scores (n positions, rows
 * n_head floats apart), in place, with each head's max m[h] and the double-precision sum of its
 * numerators sum[h] (in position order). Plain 8-lane loads and stores: masked wider ones that
 * overlap the next position's heads make every load wait for the store before it. Used by the
 * AVX2 kernels for every group of 8 and by the AVX-512 ones for a last group of 8 (ts_exp8_avx2
 * computes the lanes of ts_exp16_avx512 bit for bit). */
static inline void ts_flash_softmax_pm8_avx2(float *s, int n, int n_head, int h0, float *m, float *sum) {
    __m256 mx = _mm256_set1_ps(-INFINITY);
    for (int t = 0; t < n; t++) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + (size_t)t * n_head + h0));
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd(); /* heads h0..h0+3, h0+4..h0+7 */
    for (int t = 0; t < n; t++) {
        float *p = s + (size_t)t * n_head + h0;
        const __m256 e = ts_exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(p), mx));
        _mm256_storeu_ps(p, e);
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    _mm256_storeu_ps(m + h0, mx);
    _mm256_storeu_ps(sum + h0, _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)), _mm256_cvtpd_ps(hi), 1));
}

#endif
