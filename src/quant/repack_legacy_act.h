/* What the AVX2 and AVX-512 kernels of the repacked Q4_0/Q8_0 layouts (repack_legacy_avx2.c,
 * repack_legacy_avx512.c) both compute per (token, activation block) before the weights: the
 * offset correction -offset * sum(q) and the block's scale. AVX2 code: included only by files
 * compiled with at least -mavx2 -mf16c. */
#ifndef TS_QUANT_REPACK_LEGACY_ACT_H
#define TS_QUANT_REPACK_LEGACY_ACT_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "quant/repack_legacy.h"

typedef struct {
    int32_t corr; /* -offset * sum of the block's activation quants */
    float d;      /* the block's activation scale */
} act_const;

static inline int32_t block_sum(const block_q8_0 *a) {
    /* (q ^ 0x80) = q + 128 as unsigned; vpsadbw against 0 sums them in four 64-bit lanes. */
    const __m256i biased = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)a->qs), _mm256_set1_epi8((char)0x80));
    const __m256i sad = _mm256_sad_epu8(biased, _mm256_setzero_si256());
    const __m128i half = _mm_add_epi64(_mm256_castsi256_si128(sad), _mm256_extracti128_si256(sad, 1));
    const int64_t total = _mm_cvtsi128_si64(half) + _mm_extract_epi64(half, 1);
    return (int32_t)(total - 128 * QK8_0);
}

/* table[c * nbc + b] for tokens c < n_tok and blocks b0 .. b0 + nbc - 1. */
static inline void fill_act_table(act_const *table, int offset, int n_tok, int b0, int nbc, const uint8_t *y,
                                  size_t y_stride) {
    for (int c = 0; c < n_tok; c++) {
        const block_q8_0 *a = (const block_q8_0 *)(y + (size_t)c * y_stride) + b0;
        for (int b = 0; b < nbc; b++) {
            table[c * nbc + b].corr = -offset * block_sum(&a[b]);
            table[c * nbc + b].d = _cvtsh_ss(a[b].d);
        }
    }
}

#endif
