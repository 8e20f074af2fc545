/* AVX-512 VNNI kernels of the repacked Q4_0x16 / Q5_0x16 / Q8_0x16 layouts (repack_legacy.h). Compiled with
 * -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma -mf16c and reached only through the
 * AVX512 repack table after a CPU check. Scalar reference: repack_legacy.c; results are
 * bit-identical to it.
 *
 * The 16 int32 lanes of a zmm are the 16 rows of a group. For each 4-value step of a block, one
 * vpdpbusd multiplies the unsigned stored weights (nibble, 5-bit value, or q+128) of 16 rows by the token's 4
 * activation bytes broadcast to all lanes, accumulating exactly into int32 (GCC emits a separate
 * vpbroadcastd load rather than an embedded broadcast; forcing the latter with asm measured no
 * faster: with weights in cache the kernel runs at the vpdpbusd throughput).
 * The offset (8, 16 or 128 times the activation block sum) is removed by starting the accumulator at
 * -offset * sum(a); those sums and the activation scales are computed once per call (per chunk of
 * tokens and blocks) into a small stack table, so a one-token product pays for them once, not
 * once per group. Each block's weights are unpacked once and used for a tile of up to 8 tokens.
 *
 * Float epilogue per (row, token, block), identical to the reference:
 *   acc = fma(d_w * d_a, (float)isum, acc)
 * (vmulps, vcvtdq2ps and vfmadd are the same IEEE operations as the C expression). Accumulators
 * start at 0; when n is wider than one block chunk they are stored to s and reloaded for the next
 * chunk, which is exact, so results never depend on the chunking, n_cols or n_groups. */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__) && \
    defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>

#include "quant/repack_legacy.h"
#include "quant/repack_legacy_act.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

#define MAX_TILE TS_RP_TILE_AVX512 /* tokens per unpacked weight block: 8 weight + 8 accumulator registers */
/* Software prefetch distance for tiles of at least PREFETCH_MIN_TILE tokens. A wide tile spends
 * long enough on each block that the hardware prefetcher falls behind (measured: N=8 went from
 * ~9 to ~15 GB/s); a one- or two-token product streams fast enough for the hardware alone. */
#define PREFETCH_BYTES 4096
#define PREFETCH_MIN_TILE 3

/* Four activation bytes as one int32 for a broadcast operand (unaligned: blocks are 34 bytes). */
static ALWAYS_INLINE __m512i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

/* One group x C tokens over blocks [0, nbc) of this pass. w: the group's first block of the pass;
 * a[c]: token c's first block of the pass; k: the table row of token 0 (rows nbc apart). */
static ALWAYS_INLINE void tile(enum legacy_kind kind, int C, int nbc, const void *restrict w, const block_q8_0 *const *a,
                               const act_const *k, float *restrict s, size_t s_stride, int first_pass) {
    __m512 acc[MAX_TILE];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) acc[c] = first_pass ? _mm512_setzero_ps() : _mm512_loadu_ps(s + (size_t)c * s_stride);
    for (int b = 0; b < nbc; b++) {
        __m512i wq[8];
        __m512 dw;
        if (C >= PREFETCH_MIN_TILE) {
            const size_t bb = legacy_block_bytes(kind);
            const uintptr_t ahead = (uintptr_t)w + (size_t)b * bb + PREFETCH_BYTES;
            for (size_t off = 0; off < bb; off += 64) _mm_prefetch((const char *)(ahead + off), _MM_HINT_T0);
        }
        if (kind == LEGACY_Q5_0) {
            /* the Q4_0 nibbles with bit 4 of each value from its bit plane (repack_legacy.h):
             * ternarylogic 0xD8 = bits 0-3 from the nibble source, the rest from the masked plane */
            const block_q5_0x16 *blk = (const block_q5_0x16 *)w + b;
            const __m512i low4 = _mm512_set1_epi8(0x0F), bit4 = _mm512_set1_epi8(0x10);
            const __m512i qh = _mm512_loadu_si512(blk->qh);
            dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk->d));
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                const __m512i v = _mm512_loadu_si512(blk->qs + 64 * t);
                const __m512i h_lo = _mm512_and_si512(_mm512_slli_epi16(qh, 4 - t), bit4); /* plane t */
                const __m512i h_hi = _mm512_and_si512(_mm512_srli_epi16(qh, t), bit4);     /* plane t + 4 */
                wq[t] = _mm512_ternarylogic_epi32(h_lo, v, low4, 0xD8);
                wq[4 + t] = _mm512_ternarylogic_epi32(h_hi, _mm512_srli_epi16(v, 4), low4, 0xD8);
            }
        } else if (kind == LEGACY_Q4_0) {
            const block_q4_0x16 *blk = (const block_q4_0x16 *)w + b;
            const __m512i low4 = _mm512_set1_epi8(0x0F);
            dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk->d));
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                const __m512i v = _mm512_loadu_si512(blk->qs + 64 * t);
                wq[t] = _mm512_and_si512(v, low4);                           /* values 4t..4t+3 */
                wq[4 + t] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4); /* values 16+4t..16+4t+3 */
            }
        } else {
            const block_q8_0x16 *blk = (const block_q8_0x16 *)w + b;
            dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk->d));
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++) wq[t] = _mm512_loadu_si512(blk->qs + 64 * t);
        }
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const int8_t *q = a[c][b].qs;
            const act_const kc = k[c * nbc + b];
            /* Two independent chains halve the vpdpbusd latency chain; int32 addition is exact. */
            __m512i even = _mm512_set1_epi32(kc.corr), odd = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int t = 0; t < 8; t += 2) {
                /* Register t holds values 4t..4t+3 of the block in every kind (Q4_0/Q5_0: t < 4 the
                 * low nibbles, t >= 4 the high nibbles = values 16 + 4(t-4)), so its activation
                 * bytes start at 4t. */
                even = _mm512_dpbusd_epi32(even, wq[t], bcast4(q + 4 * t));
                odd = _mm512_dpbusd_epi32(odd, wq[t + 1], bcast4(q + 4 * (t + 1)));
            }
            const __m512 isum = _mm512_cvtepi32_ps(_mm512_add_epi32(even, odd));
            acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(kc.d)), isum, acc[c]);
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) _mm512_storeu_ps(s + (size_t)c * s_stride, acc[c]);
}

/* One token (decode) with 256-bit vectors: rows 0-7 and 8-15 of the group as two halves, the same
 * operations per row as tile(). Zen 4 splits 512-bit operations into halves anyway; what changes
 * is that the weights are read with 32-byte loads, which this host's memory streams faster
 * (repack_kquants_avx512.c, q4_K_tile1_ymm, has the numbers). */
static ALWAYS_INLINE __m256i bcast4_256(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}
/* Rows 0-15 of one block of a group times one token's broadcast activation groups qa, added to
 * acc[0] (rows 0-7) and acc[1] (rows 8-15). */
static ALWAYS_INLINE void block1_ymm(enum legacy_kind kind, const void *restrict w, int b, const __m256i qa[8], act_const kc,
                                     __m256 dk, __m256 acc[2]) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m256i wq[8];
        __m256 dw;
        if (kind == LEGACY_Q5_0) {
            const block_q5_0x16 *blk = (const block_q5_0x16 *)w + b;
            const __m256i low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk->qh + 32 * h));
            dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk->d + 8 * h)));
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(blk->qs + 64 * t + 32 * h));
                const __m256i h_lo = _mm256_and_si256(_mm256_slli_epi16(qh, 4 - t), bit4);
                const __m256i h_hi = _mm256_and_si256(_mm256_srli_epi16(qh, t), bit4);
                wq[t] = _mm256_ternarylogic_epi32(h_lo, v, low4, 0xD8);
                wq[4 + t] = _mm256_ternarylogic_epi32(h_hi, _mm256_srli_epi16(v, 4), low4, 0xD8);
            }
        } else if (kind == LEGACY_Q4_0) {
            const block_q4_0x16 *blk = (const block_q4_0x16 *)w + b;
            const __m256i low4 = _mm256_set1_epi8(0x0F);
            dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk->d + 8 * h)));
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(blk->qs + 64 * t + 32 * h));
                wq[t] = _mm256_and_si256(v, low4);
                wq[4 + t] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
            }
        } else {
            const block_q8_0x16 *blk = (const block_q8_0x16 *)w + b;
            dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk->d + 8 * h)));
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++) wq[t] = _mm256_loadu_si256((const __m256i *)(blk->qs + 64 * t + 32 * h));
        }
        __m256i even = _mm256_set1_epi32(kc.corr), odd = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int t = 0; t < 8; t += 2) {
            even = _mm256_dpbusd_epi32(even, wq[t], qa[t]);
            odd = _mm256_dpbusd_epi32(odd, wq[t + 1], qa[t + 1]);
        }
        const __m256 isum = _mm256_cvtepi32_ps(_mm256_add_epi32(even, odd));
        acc[h] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dk), isum, acc[h]);
    }
}

/* One token against n_w groups (1 or 2) over the pass's nbc blocks, the groups' blocks taken in
 * turn: a thread decoding then streams two places of its share at once (w[0] from its first half,
 * w[1] from its second), which one core reads faster than one sequential stream (see
 * legacy_one_token below). */
static ALWAYS_INLINE void tile1_ymm(enum legacy_kind kind, int n_w, int nbc, const void *const *w, const block_q8_0 *a0,
                                    const act_const *k, float *const *s, int first_pass) {
    __m256 acc[2][2];
    for (int g = 0; g < n_w; g++)
        for (int h = 0; h < 2; h++) acc[g][h] = first_pass ? _mm256_setzero_ps() : _mm256_loadu_ps(s[g] + 8 * h);
    for (int b = 0; b < nbc; b++) {
        const int8_t *q = a0[b].qs;
        const act_const kc = k[b];
        __m256i qa[8];
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++) qa[t] = bcast4_256(q + 4 * t);
        const __m256 dk = _mm256_set1_ps(kc.d);
#pragma GCC unroll 2
        for (int g = 0; g < n_w; g++) block1_ymm(kind, w[g], b, qa, kc, dk, acc[g]);
    }
    for (int g = 0; g < n_w; g++)
        for (int h = 0; h < 2; h++) _mm256_storeu_ps(s[g] + 8 * h, acc[g][h]);
}

/* A whole one-token product (decode): the groups in pairs (g, g + half), each pair's blocks in
 * turn, and an odd group alone. One thread streaming one-token products from memory, alternating
 * with one group at a time (bench/kernels/bench_repack_legacy.c, three rounds): Q4_0 2048 x 1408
 * 30.9-32.9 -> 31.6-35.9 GB/s, Q8_0 8960 x 1536 31.7-33.0 -> 36.9-38.9, faster in 20 of
 * 21 pairs: two streams keep more of the core's line fills in flight (BENCHMARKS.md, "Two streams
 * per thread"). false: the caller's general path (no room for the constants table). */
static ALWAYS_INLINE bool legacy_one_token(enum legacy_kind kind, int n, int n_groups, float *restrict s,
                                           const void *restrict x, const void *restrict y) {
    const int nb = n / QK8_0;
    if (nb <= 0 || nb > ACT_TABLE_ENTRIES) return false;
    act_const table[ACT_TABLE_ENTRIES];
    fill_act_table(table, legacy_offset(kind), 1, 0, nb, y, 0);
    const size_t group_bytes = (size_t)nb * legacy_block_bytes(kind);
    const int half = n_groups / 2, odd = n_groups & 1;
    for (int g = 0; g < half + odd; g++) {
        const int g2 = g + half + odd, pair = g < half;
        const void *w[2] = {(const uint8_t *)x + (size_t)g * group_bytes, (const uint8_t *)x + (size_t)g2 * group_bytes};
        float *so[2] = {s + (size_t)g * TS_REPACK_ROWS, s + (size_t)g2 * TS_REPACK_ROWS};
        if (pair) tile1_ymm(kind, 2, nb, w, (const block_q8_0 *)y, table, so, 1);
        else tile1_ymm(kind, 1, nb, w, (const block_q8_0 *)y, table, so, 1);
    }
    return true;
}

/* One out-of-line function per (type, tile width): each gets its own fully unrolled code with the
 * accumulators in registers (a shared inlined body lets the compiler merge the cases into one loop
 * over a variable width). */
#define DEFINE_TILE(name, kind, C)                                                                       \
    static __attribute__((noinline)) void name(int nbc, const void *restrict w, const block_q8_0 *const *a, \
                                               const act_const *k, float *restrict s, size_t s_stride,  \
                                               int first_pass) {                                         \
        tile(kind, C, nbc, w, a, k, s, s_stride, first_pass);                                           \
    }
#define DEFINE_TILE1(name, kind)                                                                         \
    static __attribute__((noinline)) void name(int nbc, const void *restrict w, const block_q8_0 *const *a, \
                                               const act_const *k, float *restrict s, size_t s_stride,  \
                                               int first_pass) {                                         \
        (void)s_stride;                                                                                  \
        const void *wg[1] = {w};                                                                         \
        float *sg[1] = {s};                                                                              \
        tile1_ymm(kind, 1, nbc, wg, a[0], k, sg, first_pass);                                            \
    }
#define DEFINE_TILES(t, kind)                                                                            \
    DEFINE_TILE1(tile_##t##_1, kind) DEFINE_TILE(tile_##t##_2, kind, 2) DEFINE_TILE(tile_##t##_3, kind, 3) \
    DEFINE_TILE(tile_##t##_4, kind, 4) DEFINE_TILE(tile_##t##_5, kind, 5) DEFINE_TILE(tile_##t##_6, kind, 6) \
    DEFINE_TILE(tile_##t##_7, kind, 7) DEFINE_TILE(tile_##t##_8, kind, 8)                                  \
    static const legacy_tile_fn tiles_##t[MAX_TILE] = {tile_##t##_1, tile_##t##_2, tile_##t##_3, tile_##t##_4, \
                                                      tile_##t##_5, tile_##t##_6, tile_##t##_7, tile_##t##_8}; \
    void ts_gemm_rp_##t##_avx512(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,      \
                                 const void *restrict x, const void *restrict y, size_t y_stride) {        \
        if (n_cols == 1 && legacy_one_token(kind, n, n_groups, s, x, y)) return;                            \
        legacy_rp_gemm(kind, tiles_##t, MAX_TILE, n, n_groups, n_cols, s, s_stride, x, y, y_stride);       \
    }
_Static_assert(MAX_TILE == 8 && MAX_TILE <= LEGACY_MAX_TILE, "DEFINE_TILES lists 8 widths");
DEFINE_TILES(q4_0, LEGACY_Q4_0)
DEFINE_TILES(q5_0, LEGACY_Q5_0)
DEFINE_TILES(q8_0, LEGACY_Q8_0)

#endif
