/* SwiGLU on 8 lanes: the scalar ts_swiglu's operations lane by lane (its exp is ts_flash_exp, here
 * ts_exp8_avx2; the division and multiplication are IEEE-exact either way), so every element is
 * bit-identical to the scalar result. */
#include <immintrin.h>

#include "ops/ops.h"
#include "ops/vexp_avx2.h"

void ts_swiglu_avx2(float *gate, const float *up, int n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = ts_exp8_avx2(_mm256_xor_ps(g, sign));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
    ts_swiglu(gate + i, up + i, n - i);
}
