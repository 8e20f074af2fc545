/* AVX2 kernels of the repacked Q4_0x16 / Q5_0x16 / Q8_0x16 layouts (repack_legacy.h), for CPUs without
 * AVX-512 VNNI. Compiled with -mavx2 -mfma -mf16c. Scalar reference: repack_legacy.c; results are
 * bit-identical to it (and to the AVX-512 kernels).
 *
 * A ymm holds 8 rows (4 bytes each), so a 16-row group is done as two halves of 8 rows. Without
 * VNNI the products go through vpmaddubsw (unsigned weight x signed activation -> int16 pair sums,
 * SATURATING) and vpmaddwd with ones (int16 pairs -> int32). Exactness:
 *   Q4_0: nibble <= 15, |a| <= 128: a pair sum is at most 2*15*128 = 3840, and the 8 pair sums of
 *         a block's 8 steps add up to at most 30720 < 32767, so they are accumulated in int16 and
 *         widened once per block.
 *   Q5_0: values <= 31: a pair sum is at most 2*31*128 = 7936, so the low-nibble steps (values
 *         0..15) and the high-nibble steps (16..31) go to separate int16 sums of 4 steps each
 *         (<= 31744).
 *   Q8_0: the stored u = q + 128 reaches 255 and 2*255*128 would saturate, so u is split into its
 *         nibbles, u = 16 h + l, and each nibble is treated like a Q4_0 value (same bounds):
 *         sum(u a) = 16 sum(h a) + sum(l a).
 * The offset (8, 16 or 128 times the activation block sum) and the float epilogue are the reference's:
 * isum = sum(u a) - offset sum(a), acc = fma(d_w * d_a, (float)isum, acc), accumulators starting at
 * 0 and carried through s (exactly) across passes when n is wider than one block chunk.
 *
 * Q4_0 is done for all 16 rows at once (two ymm per step, each activation broadcast feeding both
 * halves); Q5_0 and Q8_0, which need two int16 sums per row half, in two passes of 8 rows, except
 * at one token (decoding), where all three do the 16 rows per step and so stream each block once
 * (Q5_0, two threads streaming 512 MB of 2048 x 1408 matrices: 35-42 -> 44-50 GB/s).
 *
 * The int16 sums are chained through KEEP: integer addition being associative, GCC otherwise
 * regroups a block's eight "sum += maddubs" into a tree, keeps all eight products live and spills
 * them to the stack (Q4_0, 4 tokens, in-cache: 84 GMAC/s as a tree, 126 chained, one core). */
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant/repack_legacy.h"
#include "quant/repack_legacy_act.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* An empty asm that "changes" x: the compiler cannot regroup the additions around it. */
#define KEEP(x) __asm__("" : "+x"(x))

#define MAX_TILE TS_RP_TILE_LEGACY_AVX2 /* tokens per unpacked weight step (16 ymm registers) */
/* No software prefetch: a decode step's one-token tiles stream each thread's contiguous share of
 * a matrix once, in order, which the hardware prefetcher follows; prefetching each block's lines
 * 2048 bytes ahead took fill buffers from it. V2-Lite q4_0 decoding with these kernels, two
 * threads, with and without it alternating: 29.0-30.9 against 29.6-34.6 t/s (mostly 32.8-34.1)
 * in the host's fast-memory minutes, 21.6-23.0 against 22.1-24.0 in the slow ones (BENCHMARKS.md,
 * "AVX2 decode without software prefetches"). Wider tiles (prompts) never gained from it. */

static ALWAYS_INLINE __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

/* Half `half` (rows 8*half .. 8*half+7) of one group x C tokens over the pass's nbc blocks (Q5_0
 * and Q8_0 with 2-4 tokens; one token goes to the 16-row tiles below). */
static ALWAYS_INLINE void tile(enum legacy_kind kind, int C, int half, int nbc, const void *restrict w, const block_q8_0 *const *a,
                               const act_const *k, float *restrict s, size_t s_stride, int first_pass) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10), ones = _mm256_set1_epi16(1);
    const int is_q4 = kind == LEGACY_Q4_0, is_q5 = kind == LEGACY_Q5_0;
    __m256 acc[MAX_TILE];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) acc[c] = first_pass ? _mm256_setzero_ps() : _mm256_loadu_ps(s + (size_t)c * s_stride);
    for (int b = 0; b < nbc; b++) {
        const ts_f16 *dw16;
        const uint8_t *qs;
        __m256i qh = _mm256_setzero_si256();
        if (is_q5) {
            dw16 = ((const block_q5_0x16 *)w + b)->d;
            qs = ((const block_q5_0x16 *)w + b)->qs;
            qh = _mm256_loadu_si256((const __m256i *)(((const block_q5_0x16 *)w + b)->qh + 32 * half));
        } else if (is_q4) {
            dw16 = ((const block_q4_0x16 *)w + b)->d;
            qs = ((const block_q4_0x16 *)w + b)->qs;
        } else {
            dw16 = ((const block_q8_0x16 *)w + b)->d;
            qs = ((const block_q8_0x16 *)w + b)->qs;
        }
        __m256i lo_sum[MAX_TILE], hi_sum[MAX_TILE]; /* int16 pair sums, exact (see the top comment) */
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) lo_sum[c] = hi_sum[c] = _mm256_setzero_si256();
        const int steps = is_q4 || is_q5 ? QK4_0 / 8 : QK8_0 / 4; /* 4 bytes of each of the 8 rows per step */
#pragma GCC unroll 8
        for (int t = 0; t < steps; t++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 64 * t + 32 * half));
            __m256i lo = _mm256_and_si256(v, low4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
            if (is_q5) { /* bit 4 of values 4t+k (plane t) and 16+4t+k (plane t+4) */
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(qh, 4 - t), bit4));
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_srli_epi16(qh, t), bit4));
            }
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const int8_t *q = a[c][b].qs;
                if (is_q5) {
                    lo_sum[c] = _mm256_add_epi16(lo_sum[c], _mm256_maddubs_epi16(lo, bcast4(q + 4 * t)));
                    hi_sum[c] = _mm256_add_epi16(hi_sum[c], _mm256_maddubs_epi16(hi, bcast4(q + 16 + 4 * t)));
                    KEEP(lo_sum[c]);
                    KEEP(hi_sum[c]);
                } else if (is_q4) {
                    /* low nibbles: values 4t..4t+3; high nibbles: values 16+4t..16+4t+3 */
                    lo_sum[c] = _mm256_add_epi16(lo_sum[c], _mm256_maddubs_epi16(lo, bcast4(q + 4 * t)));
                    KEEP(lo_sum[c]);
                    lo_sum[c] = _mm256_add_epi16(lo_sum[c], _mm256_maddubs_epi16(hi, bcast4(q + 16 + 4 * t)));
                    KEEP(lo_sum[c]);
                } else {
                    const __m256i act = bcast4(q + 4 * t);
                    lo_sum[c] = _mm256_add_epi16(lo_sum[c], _mm256_maddubs_epi16(lo, act));
                    hi_sum[c] = _mm256_add_epi16(hi_sum[c], _mm256_maddubs_epi16(hi, act));
                    KEEP(lo_sum[c]);
                    KEEP(hi_sum[c]);
                }
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(dw16 + 8 * half)));
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const act_const kc = k[c * nbc + b];
            __m256i isum = _mm256_add_epi32(_mm256_set1_epi32(kc.corr), _mm256_madd_epi16(lo_sum[c], ones));
            if (is_q5) isum = _mm256_add_epi32(isum, _mm256_madd_epi16(hi_sum[c], ones));
            if (kind == LEGACY_Q8_0) isum = _mm256_add_epi32(isum, _mm256_slli_epi32(_mm256_madd_epi16(hi_sum[c], ones), 4));
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(kc.d)), _mm256_cvtepi32_ps(isum), acc[c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) _mm256_storeu_ps(s + (size_t)c * s_stride, acc[c]);
}

/* All 16 rows of one Q4_0 group x C tokens over the pass's nbc blocks: per step, the two 8-row
 * halves' nibbles and one activation broadcast per token feeding both. */
static ALWAYS_INLINE void tile_q4_0_rows16(int C, int nbc, const void *restrict w, const block_q8_0 *const *a,
                                           const act_const *k, float *restrict s, size_t s_stride, int first_pass) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    __m256 acc[MAX_TILE][2];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++)
        for (int h = 0; h < 2; h++)
            acc[c][h] = first_pass ? _mm256_setzero_ps() : _mm256_loadu_ps(s + (size_t)c * s_stride + 8 * h);
    for (int b = 0; b < nbc; b++) {
        const block_q4_0x16 *blk = (const block_q4_0x16 *)w + b;
        __m256i sum[MAX_TILE][2]; /* int16 pair sums, exact (see the top comment) */
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) sum[c][0] = sum[c][1] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int t = 0; t < QK4_0 / 8; t++) {
            const __m256i v0 = _mm256_loadu_si256((const __m256i *)(blk->qs + 64 * t));
            const __m256i v1 = _mm256_loadu_si256((const __m256i *)(blk->qs + 64 * t + 32));
            /* low nibbles: values 4t..4t+3 */
            const __m256i lo0 = _mm256_and_si256(v0, low4), lo1 = _mm256_and_si256(v1, low4);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const __m256i act = bcast4(a[c][b].qs + 4 * t);
                sum[c][0] = _mm256_add_epi16(sum[c][0], _mm256_maddubs_epi16(lo0, act));
                sum[c][1] = _mm256_add_epi16(sum[c][1], _mm256_maddubs_epi16(lo1, act));
                KEEP(sum[c][0]);
                KEEP(sum[c][1]);
            }
            /* high nibbles: values 16+4t..16+4t+3 */
            const __m256i hi0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), low4);
            const __m256i hi1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), low4);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const __m256i act = bcast4(a[c][b].qs + 16 + 4 * t);
                sum[c][0] = _mm256_add_epi16(sum[c][0], _mm256_maddubs_epi16(hi0, act));
                sum[c][1] = _mm256_add_epi16(sum[c][1], _mm256_maddubs_epi16(hi1, act));
                KEEP(sum[c][0]);
                KEEP(sum[c][1]);
            }
        }
        const __m256 dw0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk->d));
        const __m256 dw1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk->d + 8)));
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const act_const kc = k[c * nbc + b];
            const __m256i corr = _mm256_set1_epi32(kc.corr);
            const __m256 da = _mm256_set1_ps(kc.d);
            const __m256i isum0 = _mm256_add_epi32(corr, _mm256_madd_epi16(sum[c][0], ones));
            const __m256i isum1 = _mm256_add_epi32(corr, _mm256_madd_epi16(sum[c][1], ones));
            acc[c][0] = _mm256_fmadd_ps(_mm256_mul_ps(dw0, da), _mm256_cvtepi32_ps(isum0), acc[c][0]);
            acc[c][1] = _mm256_fmadd_ps(_mm256_mul_ps(dw1, da), _mm256_cvtepi32_ps(isum1), acc[c][1]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < C; c++)
        for (int h = 0; h < 2; h++) _mm256_storeu_ps(s + (size_t)c * s_stride + 8 * h, acc[c][h]);
}

/* The block epilogue of the 16-row tiles: isum = corr + part (exact int32), then
 * acc = fma(d_w * d_a, (float)isum, acc) for each 8-row half. */
static ALWAYS_INLINE void rows16_epilogue(const ts_f16 *dw16, act_const kc, __m256i part0, __m256i part1, __m256 *acc0,
                                          __m256 *acc1) {
    const __m256i corr = _mm256_set1_epi32(kc.corr);
    const __m256 da = _mm256_set1_ps(kc.d);
    const __m256 dw0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dw16));
    const __m256 dw1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(dw16 + 8)));
    *acc0 = _mm256_fmadd_ps(_mm256_mul_ps(dw0, da), _mm256_cvtepi32_ps(_mm256_add_epi32(corr, part0)), *acc0);
    *acc1 = _mm256_fmadd_ps(_mm256_mul_ps(dw1, da), _mm256_cvtepi32_ps(_mm256_add_epi32(corr, part1)), *acc1);
}

/* Rows 0-15 of block b of one group x one token (q: the token's quants of that block), added to
 * acc[0] (rows 0-7) and acc[1] (rows 8-15). Per step the two halves' weights and one activation
 * broadcast feeding both, so that decoding streams each block once (wider tiles keep the two
 * passes of 8 rows for Q5_0 and Q8_0, which need fewer registers; the two-pass tile streamed each
 * block twice). */
static ALWAYS_INLINE void block1(enum legacy_kind kind, const void *restrict w, int b, const int8_t *q, act_const kc,
                                 __m256 acc[2]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10), ones = _mm256_set1_epi16(1);
    if (kind == LEGACY_Q4_0) {
        const block_q4_0x16 *blk = (const block_q4_0x16 *)w + b;
        __m256i sum0 = _mm256_setzero_si256(), sum1 = sum0; /* int16 pair sums, exact (top comment) */
#pragma GCC unroll 4
        for (int t = 0; t < QK4_0 / 8; t++) {
            const __m256i v0 = _mm256_loadu_si256((const __m256i *)(blk->qs + 64 * t));
            const __m256i v1 = _mm256_loadu_si256((const __m256i *)(blk->qs + 64 * t + 32));
            const __m256i a_lo = bcast4(q + 4 * t), a_hi = bcast4(q + 16 + 4 * t);
            sum0 = _mm256_add_epi16(sum0, _mm256_maddubs_epi16(_mm256_and_si256(v0, low4), a_lo));
            sum1 = _mm256_add_epi16(sum1, _mm256_maddubs_epi16(_mm256_and_si256(v1, low4), a_lo));
            KEEP(sum0);
            KEEP(sum1);
            sum0 = _mm256_add_epi16(sum0, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v0, 4), low4), a_hi));
            sum1 = _mm256_add_epi16(sum1, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v1, 4), low4), a_hi));
            KEEP(sum0);
            KEEP(sum1);
        }
        rows16_epilogue(blk->d, kc, _mm256_madd_epi16(sum0, ones), _mm256_madd_epi16(sum1, ones), &acc[0], &acc[1]);
    } else if (kind == LEGACY_Q8_0) {
        const block_q8_0x16 *blk = (const block_q8_0x16 *)w + b;
        /* int16 sums of the low and high nibbles of u = q + 128, per half (exact: top comment) */
        __m256i lo0 = _mm256_setzero_si256(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
#pragma GCC unroll 8
        for (int t = 0; t < QK8_0 / 4; t++) {
            const __m256i v0 = _mm256_loadu_si256((const __m256i *)(blk->qs + 64 * t));
            const __m256i v1 = _mm256_loadu_si256((const __m256i *)(blk->qs + 64 * t + 32));
            const __m256i act = bcast4(q + 4 * t);
            lo0 = _mm256_add_epi16(lo0, _mm256_maddubs_epi16(_mm256_and_si256(v0, low4), act));
            hi0 = _mm256_add_epi16(hi0, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v0, 4), low4), act));
            lo1 = _mm256_add_epi16(lo1, _mm256_maddubs_epi16(_mm256_and_si256(v1, low4), act));
            hi1 = _mm256_add_epi16(hi1, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v1, 4), low4), act));
            KEEP(lo0);
            KEEP(hi0);
            KEEP(lo1);
            KEEP(hi1);
        }
        rows16_epilogue(blk->d, kc,
                        _mm256_add_epi32(_mm256_madd_epi16(lo0, ones), _mm256_slli_epi32(_mm256_madd_epi16(hi0, ones), 4)),
                        _mm256_add_epi32(_mm256_madd_epi16(lo1, ones), _mm256_slli_epi32(_mm256_madd_epi16(hi1, ones), 4)),
                        &acc[0], &acc[1]);
    } else {
        const block_q5_0x16 *blk = (const block_q5_0x16 *)w + b;
        const __m256i qh0 = _mm256_loadu_si256((const __m256i *)blk->qh);
        const __m256i qh1 = _mm256_loadu_si256((const __m256i *)(blk->qh + 32));
        /* int16 sums of values 0..15 (lo) and 16..31 (hi) per half, 4 steps each (exact: top comment) */
        __m256i lo0 = _mm256_setzero_si256(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
#pragma GCC unroll 4
        for (int t = 0; t < QK5_0 / 8; t++) {
            const __m256i v0 = _mm256_loadu_si256((const __m256i *)(blk->qs + 64 * t));
            const __m256i v1 = _mm256_loadu_si256((const __m256i *)(blk->qs + 64 * t + 32));
            const __m256i a_lo = bcast4(q + 4 * t), a_hi = bcast4(q + 16 + 4 * t);
            /* bit 4 of values 4t+k (plane t) and 16+4t+k (plane t+4) */
            const __m256i l0 = _mm256_or_si256(_mm256_and_si256(v0, low4), _mm256_and_si256(_mm256_slli_epi16(qh0, 4 - t), bit4));
            const __m256i l1 = _mm256_or_si256(_mm256_and_si256(v1, low4), _mm256_and_si256(_mm256_slli_epi16(qh1, 4 - t), bit4));
            lo0 = _mm256_add_epi16(lo0, _mm256_maddubs_epi16(l0, a_lo));
            lo1 = _mm256_add_epi16(lo1, _mm256_maddubs_epi16(l1, a_lo));
            const __m256i h0 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v0, 4), low4), _mm256_and_si256(_mm256_srli_epi16(qh0, t), bit4));
            const __m256i h1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v1, 4), low4), _mm256_and_si256(_mm256_srli_epi16(qh1, t), bit4));
            hi0 = _mm256_add_epi16(hi0, _mm256_maddubs_epi16(h0, a_hi));
            hi1 = _mm256_add_epi16(hi1, _mm256_maddubs_epi16(h1, a_hi));
            KEEP(lo0);
            KEEP(lo1);
            KEEP(hi0);
            KEEP(hi1);
        }
        rows16_epilogue(blk->d, kc, _mm256_add_epi32(_mm256_madd_epi16(lo0, ones), _mm256_madd_epi16(hi0, ones)),
                        _mm256_add_epi32(_mm256_madd_epi16(lo1, ones), _mm256_madd_epi16(hi1, ones)), &acc[0], &acc[1]);
    }
}

DEFINE_LEGACY_TILE1

/* One out-of-line function per (type, tile width), each fully unrolled with its own registers. */
#define DEFINE_TILE(name, kind, C)                                                                       \
    static __attribute__((noinline)) void name(int nbc, const void *restrict w, const block_q8_0 *const *a, \
                                               const act_const *k, float *restrict s, size_t s_stride,  \
                                               int first_pass) {                                         \
        if (C == 1) {                                                                                    \
            const void *wg[1] = {w};                                                                     \
            float *sg[1] = {s};                                                                          \
            tile1(kind, 1, nbc, wg, a[0], k, sg, first_pass);                                            \
        } else if (kind == LEGACY_Q4_0) {                                                                \
            tile_q4_0_rows16(C, nbc, w, a, k, s, s_stride, first_pass);                                 \
        } else {                                                                                         \
            tile(kind, C, 0, nbc, w, a, k, s, s_stride, first_pass);                                    \
            tile(kind, C, 1, nbc, w, a, k, s + 8, s_stride, first_pass);                                \
        }                                                                                                \
    }
#define DEFINE_TILES(t, kind)                                                                            \
    DEFINE_TILE(tile_##t##_1, kind, 1) DEFINE_TILE(tile_##t##_2, kind, 2) DEFINE_TILE(tile_##t##_3, kind, 3) \
    DEFINE_TILE(tile_##t##_4, kind, 4) DEFINE_LEGACY_ONE_TOKEN(t, kind)                                   \
    static const legacy_tile_fn tiles_##t[MAX_TILE] = {tile_##t##_1, tile_##t##_2, tile_##t##_3, tile_##t##_4}; \
    void ts_gemm_rp_##t##_avx2(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,        \
                               const void *restrict x, const void *restrict y, size_t y_stride) {          \
        if (n_cols == 1 && legacy_one_token(kind, one_##t##_1, one_##t##_2, n, n_groups, s, x, y)) return; \
        legacy_rp_gemm(kind, tiles_##t, MAX_TILE, n, n_groups, n_cols, s, s_stride, x, y, y_stride);       \
    }
_Static_assert(MAX_TILE == 4 && MAX_TILE <= LEGACY_MAX_TILE, "DEFINE_TILES lists 4 widths");
DEFINE_TILES(q4_0, LEGACY_Q4_0)
DEFINE_TILES(q5_0, LEGACY_Q5_0)
DEFINE_TILES(q8_0, LEGACY_Q8_0)

#endif
