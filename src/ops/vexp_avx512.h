/* ts_flash_exp (attn_flash.h) on 16 AVX-512 lanes, for the kernels that need many exps (softmax
 * numerators, SiLU). Include only from files compiled for AVX-512 (*_avx512.c). */
#ifndef TS_OPS_VEXP_AVX512_H
#define TS_OPS_VEXP_AVX512_H

#include <immintrin.h>

#include "ops/attn_flash.h"

/* ts_flash_exp on 16 lanes: the same operations (roundscale to nearest = nearbyintf, scalef =
 * ldexpf for these exponents), so each lane equals the scalar result bit for bit. */
static inline __m512 ts_exp16_avx512(__m512 x) {
    const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(TS_FLASH_EXP_MIN), _CMP_GE_OQ);
    x = _mm512_min_ps(x, _mm512_set1_ps(TS_FLASH_EXP_MAX));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(TS_FLASH_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-TS_FLASH_LN2_HI), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-TS_FLASH_LN2_LO), r);
    __m512 p = _mm512_set1_ps(TS_FLASH_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TS_FLASH_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TS_FLASH_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TS_FLASH_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TS_FLASH_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TS_FLASH_EXP_P5));
    const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_maskz_mov_ps(live, _mm512_scalef_ps(y, n));
}

#endif
