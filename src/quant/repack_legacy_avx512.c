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

/* block1_ymm with the token's activation groups broadcast from q (two groups of a pair broadcast
 * the same quants: the compiler keeps one set of broadcasts for both). */
static ALWAYS_INLINE void block1(enum legacy_kind kind, const void *restrict w, int b, const int8_t *q, act_const kc,
                                 __m256 acc[2]) {
    __m256i qa[8];
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) qa[t] = bcast4_256(q + 4 * t);
    block1_ymm(kind, w, b, qa, kc, _mm256_set1_ps(kc.d), acc);
}

DEFINE_LEGACY_TILE1

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
        tile1(kind, 1, nbc, wg, a[0], k, sg, first_pass);                                            \
    }
#define DEFINE_TILES(t, kind)                                                                            \
    DEFINE_TILE1(tile_##t##_1, kind) DEFINE_TILE(tile_##t##_2, kind, 2) DEFINE_TILE(tile_##t##_3, kind, 3) \
    DEFINE_TILE(tile_##t##_4, kind, 4) DEFINE_TILE(tile_##t##_5, kind, 5) DEFINE_TILE(tile_##t##_6, kind, 6) \
    DEFINE_TILE(tile_##t##_7, kind, 7) DEFINE_TILE(tile_##t##_8, kind, 8) DEFINE_LEGACY_ONE_TOKEN(t, kind)   \
    static const legacy_tile_fn tiles_##t[MAX_TILE] = {tile_##t##_1, tile_##t##_2, tile_##t##_3, tile_##t##_4, \
                                                      tile_##t##_5, tile_##t##_6, tile_##t##_7, tile_##t##_8}; \
    void ts_gemm_rp_##t##_avx512(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,      \
                                 const void *restrict x, const void *restrict y, size_t y_stride) {        \
        if (n_cols == 1 && legacy_one_token(kind, one_##t##_1, one_##t##_2, n, n_groups, s, x, y)) return;     \
        legacy_rp_gemm(kind, tiles_##t, MAX_TILE, n, n_groups, n_cols, s, s_stride, x, y, y_stride);       \
    }
_Static_assert(MAX_TILE == 8 && MAX_TILE <= LEGACY_MAX_TILE, "DEFINE_TILES lists 8 widths");
DEFINE_TILES(q4_0, LEGACY_Q4_0)
DEFINE_TILES(q5_0, LEGACY_Q5_0)
DEFINE_TILES(q8_0, LEGACY_Q8_0)

#endif
