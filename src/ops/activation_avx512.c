/* SwiGLU on 16 lanes: the scalar ts_swiglu's operations lane by lane (its exp is ts_flash_exp, here
 * ts_exp16_avx512; the division and multiplication are IEEE-exact either way), so every element
 * is bit-identical to the scalar result. */
#include <immintrin.h>

#include "ops/ops.h"
#include "ops/vexp_avx512.h"

void ts_swiglu_avx512(float *gate, const float *up, int n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 g = _mm512_loadu_ps(gate + i);
        const __m512 e = ts_exp16_avx512(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(g), _mm512_set1_epi32(INT32_MIN))));
        _mm512_storeu_ps(gate + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
    }
    ts_swiglu(gate + i, up + i, n - i);
}
