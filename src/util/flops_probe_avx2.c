/* AVX2+FMA kernel of the peak-FMA probe (flops_probe.h): TS_FMA_CHAINS 8-lane chains. */
#include <immintrin.h>

#include "util/flops_probe.h"

_Static_assert(TS_FMA_CHAINS == 12, "the chains below are written out one by one");

double ts_fma_chains_avx2(long n_iter, float start, float step, float mul, float add) {
    const __m256 vmul = _mm256_set1_ps(mul), vadd = _mm256_set1_ps(add);
    /* Twelve named accumulators, not an array: compilers keep an indexed array in memory, and the
     * store-to-load round trip would then limit the rate instead of the FMA units. */
    __m256 a0 = _mm256_set1_ps(start + 0.0f * step);
    __m256 a1 = _mm256_set1_ps(start + 1.0f * step);
    __m256 a2 = _mm256_set1_ps(start + 2.0f * step);
    __m256 a3 = _mm256_set1_ps(start + 3.0f * step);
    __m256 a4 = _mm256_set1_ps(start + 4.0f * step);
    __m256 a5 = _mm256_set1_ps(start + 5.0f * step);
    __m256 a6 = _mm256_set1_ps(start + 6.0f * step);
    __m256 a7 = _mm256_set1_ps(start + 7.0f * step);
    __m256 a8 = _mm256_set1_ps(start + 8.0f * step);
    __m256 a9 = _mm256_set1_ps(start + 9.0f * step);
    __m256 a10 = _mm256_set1_ps(start + 10.0f * step);
    __m256 a11 = _mm256_set1_ps(start + 11.0f * step);
    for (long i = 0; i < n_iter; i++) {
        a0 = _mm256_fmadd_ps(a0, vmul, vadd);
        a1 = _mm256_fmadd_ps(a1, vmul, vadd);
        a2 = _mm256_fmadd_ps(a2, vmul, vadd);
        a3 = _mm256_fmadd_ps(a3, vmul, vadd);
        a4 = _mm256_fmadd_ps(a4, vmul, vadd);
        a5 = _mm256_fmadd_ps(a5, vmul, vadd);
        a6 = _mm256_fmadd_ps(a6, vmul, vadd);
        a7 = _mm256_fmadd_ps(a7, vmul, vadd);
        a8 = _mm256_fmadd_ps(a8, vmul, vadd);
        a9 = _mm256_fmadd_ps(a9, vmul, vadd);
        a10 = _mm256_fmadd_ps(a10, vmul, vadd);
        a11 = _mm256_fmadd_ps(a11, vmul, vadd);
    }
    const __m256 acc[TS_FMA_CHAINS] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11};
    double sum = 0;
    for (int j = 0; j < TS_FMA_CHAINS; j++) {
        float lanes[8];
        _mm256_storeu_ps(lanes, acc[j]);
        for (int k = 0; k < 8; k++) sum += lanes[k];
    }
    return sum;
}
