/* What the AVX2 and AVX-512 kernels of the repacked Q4_0/Q5_0/Q8_0 layouts (repack_legacy_avx2.c,
 * repack_legacy_avx512.c) share: the per-(token, activation block) constants computed before the
 * weights (the offset correction -offset * sum(q) and the block's scale), and the loop that walks
 * groups, block passes and token tiles and hands each tile to the ISA's kernel. AVX2 code:
 * included only by files compiled with at least -mavx2 -mf16c. */
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

/* Entries of the constants table: 4096 x 8 bytes = 32 KiB, on the stack of the kernel call. */
#define ACT_TABLE_ENTRIES 4096
/* The widest token tile any ISA's kernel takes. */
#define LEGACY_MAX_TILE 8

/* One group x C tokens over blocks [0, nbc) of a pass: w is the group's first block of the pass,
 * a[c] token c's first block of the pass, k the table row of token 0 (rows nbc apart). */
typedef void (*legacy_tile_fn)(int nbc, const void *restrict w, const block_q8_0 *const *a, const act_const *k,
                               float *restrict s, size_t s_stride, int first_pass);

/* The whole product of ts_gemm_repacked_fn for a legacy kind with an ISA's tile kernels:
 * tiles[C - 1] takes C tokens, C <= max_tile <= LEGACY_MAX_TILE. Blocks go in passes of at most
 * ACT_TABLE_ENTRIES / tokens so that the constants table fits; every (row, token) result is the
 * same whatever the tiling (the kernels' contract). */
static inline void legacy_rp_gemm(enum legacy_kind kind, const legacy_tile_fn *tiles, int max_tile, int n, int n_groups,
                                  int n_cols, float *restrict s, size_t s_stride, const void *restrict x,
                                  const void *restrict y, size_t y_stride) {
    const int nb = n / QK8_0;
    const size_t block_bytes = legacy_block_bytes(kind);
    const uint8_t *ybytes = y;
    act_const table[ACT_TABLE_ENTRIES];
    if (nb <= 0) { /* empty dot products are 0, as in the reference */
        for (int c = 0; c < n_cols; c++)
            for (int i = 0; i < n_groups * TS_REPACK_ROWS; i++) s[(size_t)c * s_stride + i] = 0.0f;
        return;
    }
    for (int b0 = 0; b0 < nb; b0 += ACT_TABLE_ENTRIES) {
        const int nbc = nb - b0 < ACT_TABLE_ENTRIES ? nb - b0 : ACT_TABLE_ENTRIES;
        const int tokens_per_pass = ACT_TABLE_ENTRIES / nbc;
        for (int c0 = 0; c0 < n_cols; c0 += tokens_per_pass) {
            const int n_tok = n_cols - c0 < tokens_per_pass ? n_cols - c0 : tokens_per_pass;
            fill_act_table(table, legacy_offset(kind), n_tok, b0, nbc, ybytes + (size_t)c0 * y_stride, y_stride);
            for (int g = 0; g < n_groups; g++) {
                const uint8_t *w = (const uint8_t *)x + ((size_t)g * nb + b0) * block_bytes;
                float *sg = s + (size_t)c0 * s_stride + (size_t)g * TS_REPACK_ROWS;
                for (int c = 0; c < n_tok; c += max_tile) {
                    const block_q8_0 *a[LEGACY_MAX_TILE];
                    const int C = n_tok - c < max_tile ? n_tok - c : max_tile;
                    for (int i = 0; i < C; i++) a[i] = (const block_q8_0 *)(ybytes + (size_t)(c0 + c + i) * y_stride) + b0;
                    tiles[C - 1](nbc, w, a, table + (size_t)c * nbc, sg + (size_t)c * s_stride, s_stride, b0 == 0);
                }
            }
        }
    }
}

#endif
