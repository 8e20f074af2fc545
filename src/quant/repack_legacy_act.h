/* What the AVX2 and AVX-512 kernels of the repacked Q4_0/Q5_0/Q8_0 layouts (repack_legacy_avx2.c,
 * repack_legacy_avx512.c) share: the per-(token, activation block) constants computed before the
 * weights (the offset correction -offset * sum(q) and the block's scale), and the loop that walks
 * groups, block passes and token tiles and hands each tile to the ISA's kernel. AVX2 code:
 * included only by files compiled with at least -mavx2 -mf16c. */
#ifndef TS_QUANT_REPACK_LEGACY_ACT_H
#define TS_QUANT_REPACK_LEGACY_ACT_H

#include <immintrin.h>
#include <stdbool.h>
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

/* The float accumulators of a one-token tile over n_w = 1 or 2 groups, rows 0-7 and 8-15 of each:
 * 0 on a pass's first chunk, else what s[g] holds; stored back after the pass (exact). */
static inline __attribute__((always_inline)) void legacy_acc1_load(int n_w, float *const *s, int first_pass,
                                                                   __m256 acc[2][2]) {
    for (int g = 0; g < n_w; g++)
        for (int h = 0; h < 2; h++) acc[g][h] = first_pass ? _mm256_setzero_ps() : _mm256_loadu_ps(s[g] + 8 * h);
}
static inline __attribute__((always_inline)) void legacy_acc1_store(int n_w, float *const *s, __m256 acc[2][2]) {
    for (int g = 0; g < n_w; g++)
        for (int h = 0; h < 2; h++) _mm256_storeu_ps(s[g] + 8 * h, acc[g][h]);
}

/* One token against n_w = 1 or 2 groups over all nb blocks of a row (first pass: the accumulators
 * start at 0): w[g] is group g's first block, s[g] its 16 results, k the token's table row. */
typedef void (*legacy_one_token_fn)(int nb, const void *const *w, const block_q8_0 *a, const act_const *k,
                                    float *const *s);

/* A whole one-token product (decode) with an ISA's one-group and two-group kernels: the groups in
 * pairs (g, g + half), each pair's blocks taken in turn, an odd group alone. A thread decoding
 * then streams two places of its share at once, which one core reads faster than one sequential
 * stream: one thread streaming one-token products from memory, pairs against one group at a time
 * (bench/kernels/bench_repack_legacy.c, three rounds, a Zen 5 host): AVX-512 Q4_0 2048 x 1408
 * 30.9-32.9 -> 31.6-35.9 GB/s, Q8_0 8960 x 1536 31.7-33.0 -> 36.9-38.9; AVX2 in BENCHMARKS.md,
 * "Two streams per thread". Every result is the one-group kernel's (the pairing only interleaves
 * the reads). false: the caller's general path (no room for the constants table). */
static inline bool legacy_one_token(enum legacy_kind kind, legacy_one_token_fn one, legacy_one_token_fn pair, int n,
                                    int n_groups, float *restrict s, const void *restrict x, const void *restrict y) {
    const int nb = n / QK8_0;
    if (nb <= 0 || nb > ACT_TABLE_ENTRIES) return false;
    const size_t group_bytes = (size_t)nb * legacy_block_bytes(kind);
    const int half = n_groups / 2, odd = n_groups & 1;
    ts_rp_prefetch_stream_starts(x, group_bytes, n_groups);
    act_const table[ACT_TABLE_ENTRIES];
    fill_act_table(table, legacy_offset(kind), 1, 0, nb, y, 0);
    for (int g = 0; g < half + odd; g++) {
        const int g2 = g + half + odd;
        const void *w[2] = {(const uint8_t *)x + (size_t)g * group_bytes, (const uint8_t *)x + (size_t)g2 * group_bytes};
        float *so[2] = {s + (size_t)g * TS_REPACK_ROWS, s + (size_t)g2 * TS_REPACK_ROWS};
        (g < half ? pair : one)(nb, w, (const block_q8_0 *)y, table, so);
    }
    return true;
}

/* The one-token tile of the including file: one token against n_w groups (1 or 2) over the
 * pass's nbc blocks, the groups' blocks taken in turn (two groups: legacy_one_token's pairs),
 * each through the file's block1(kind, w, b, q, kc, acc), which adds rows 0-7 and 8-15 of block
 * b of group w times the token's quants q of that block to acc[0] and acc[1]. */
#define DEFINE_LEGACY_TILE1                                                                              \
    static inline __attribute__((always_inline)) void tile1(enum legacy_kind kind, int n_w, int nbc,   \
                                                            const void *const *w, const block_q8_0 *a0, \
                                                            const act_const *k, float *const *s,        \
                                                            int first_pass) {                           \
        __m256 acc[2][2];                                                                                \
        legacy_acc1_load(n_w, s, first_pass, acc);                                                       \
        for (int b = 0; b < nbc; b++) {                                                                  \
            _Pragma("GCC unroll 2") for (int g = 0; g < n_w; g++) block1(kind, w[g], b, a0[b].qs, k[b], acc[g]); \
        }                                                                                                \
        legacy_acc1_store(n_w, s, acc);                                                                  \
    }

/* The one-group and two-group kernels of legacy_one_token for kind, named one_<t>_1 / one_<t>_2,
 * from the including file's tile1(kind, n_w, nbc, w, a0, k, s, first_pass). */
#define DEFINE_LEGACY_ONE_TOKEN(t, kind)                                                                 \
    static __attribute__((noinline)) void one_##t##_1(int nb, const void *const *w, const block_q8_0 *a,  \
                                                      const act_const *k, float *const *s) {             \
        tile1(kind, 1, nb, w, a, k, s, 1);                                                               \
    }                                                                                                    \
    static __attribute__((noinline)) void one_##t##_2(int nb, const void *const *w, const block_q8_0 *a,  \
                                                      const act_const *k, float *const *s) {             \
        tile1(kind, 2, nb, w, a, k, s, 1);                                                               \
    }

#endif
