/* AVX-VNNI kernels of the repacked Q4_0x16 / Q5_0x16 / Q8_0x16 layouts (repack_legacy.h), for CPUs
 * with the VEX-encoded 256-bit vpdpbusd but no AVX-512 (Intel Alder Lake and later client cores,
 * Sierra Forest). Compiled with -mavx2 -mfma -mf16c -mavxvnni and reached only through the AVXVNNI
 * repack table after a CPU check. Scalar reference: repack_legacy.c; results are bit-identical to
 * it (and to the AVX2 and AVX-512 kernels).
 *
 * Why a kernel set of its own: without VNNI (repack_legacy_avx2.c) a Q8_0 step of 4 values x 8 rows
 * costs two vpmaddubsw (the stored u = q + 128 is split into nibbles so that the int16 pair sums do
 * not saturate) plus the int16 additions and a vpmaddwd per block to widen them; vpdpbusd adds the
 * four u8 x s8 products of each row straight into int32, exactly, so a step is one instruction and
 * no bound limits how long a sum runs.
 *
 * A ymm holds 4 bytes of each of 8 rows, so a 16-row group is two halves. Every tile does both
 * halves per step: one activation broadcast per token feeds both, and the two halves' int32 sums
 * are two independent dependency chains per token (one-token tiles split each half's steps over
 * two more chains, even and odd, so that decoding is not bound by the vpdpbusd latency). The
 * accumulator of a block starts at the offset correction -offset * sum(a) (8, 16 or 128), so it ends
 * as the reference's isum; then, lane by lane, the reference's float epilogue:
 *   acc = fma(d_w * d_a, (float)isum, acc)
 * Accumulators start at 0 and survive across block passes by a store to s and a reload (exact). */
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && defined(__AVXVNNI__)

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant/repack_legacy.h"
#include "quant/repack_legacy_act.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define MAX_TILE TS_RP_TILE_LEGACY_AVXVNNI

static ALWAYS_INLINE __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

/* Block b's stored weights of value group t (values 4t..4t+3, t = 0..7) for rows 0-7 (w[0]) and
 * 8-15 (w[1]), as unsigned bytes: the nibble (Q4_0), the 5-bit value (Q5_0) or q + 128 (Q8_0). */
static ALWAYS_INLINE void weights(enum legacy_kind kind, const void *restrict w, int b, int t, __m256i out[2]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
    if (kind == LEGACY_Q8_0) {
        const block_q8_0x16 *blk = (const block_q8_0x16 *)w + b;
        for (int h = 0; h < 2; h++) out[h] = _mm256_loadu_si256((const __m256i *)(blk->qs + 64 * t + 32 * h));
        return;
    }
    /* Q4_0/Q5_0: step t % 4 holds values 4t'..4t'+3 in its low nibbles and 16+4t'.. in its high */
    const int s = t & 3, high = t >= 4;
    const uint8_t *qs = kind == LEGACY_Q4_0 ? ((const block_q4_0x16 *)w + b)->qs : ((const block_q5_0x16 *)w + b)->qs;
    for (int h = 0; h < 2; h++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 64 * s + 32 * h));
        __m256i q = _mm256_and_si256(high ? _mm256_srli_epi16(v, 4) : v, low4);
        if (kind == LEGACY_Q5_0) { /* bit 4 of values 4s+k is bit s of qh, of values 16+4s+k bit s+4 */
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(((const block_q5_0x16 *)w + b)->qh + 32 * h));
            const __m256i plane = high ? _mm256_srli_epi16(qh, s) : _mm256_slli_epi16(qh, 4 - s);
            q = _mm256_or_si256(q, _mm256_and_si256(plane, bit4));
        }
        out[h] = q;
    }
}

static ALWAYS_INLINE const ts_f16 *block_scales(enum legacy_kind kind, const void *restrict w, int b) {
    return kind == LEGACY_Q4_0 ? ((const block_q4_0x16 *)w + b)->d
           : kind == LEGACY_Q5_0 ? ((const block_q5_0x16 *)w + b)->d
                                 : ((const block_q8_0x16 *)w + b)->d;
}

/* One group x C tokens over blocks [0, nbc) of this pass (w: the group's first block of the pass;
 * a[c]: token c's first block of the pass; k: the table row of token 0, rows nbc apart). With one
 * token each half's steps alternate between two chains. */
static ALWAYS_INLINE void tile(enum legacy_kind kind, int C, int nbc, const void *restrict w, const block_q8_0 *const *a,
                               const act_const *k, float *restrict s, size_t s_stride, int first_pass) {
    const int chains = C == 1 ? 2 : 1;
    __m256 acc[MAX_TILE][2];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        for (int h = 0; h < 2; h++) acc[c][h] = first_pass ? _mm256_setzero_ps() : _mm256_loadu_ps(s + (size_t)c * s_stride + 8 * h);
    for (int b = 0; b < nbc; b++) {
        __m256i isum[MAX_TILE][2][2];
#pragma GCC unroll 8
        for (int c = 0; c < C; c++)
            for (int h = 0; h < 2; h++) {
                isum[c][h][0] = _mm256_set1_epi32(k[c * nbc + b].corr);
                isum[c][h][1] = _mm256_setzero_si256();
            }
        /* Q4_0/Q5_0 take the value groups in the order 0, 4, 1, 5, ...: the low and high nibbles of
         * one load, next to each other */
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            const int t = kind == LEGACY_Q8_0 ? i : (i >> 1) + 4 * (i & 1);
            __m256i wq[2];
            weights(kind, w, b, t, wq);
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                const __m256i act = bcast4(a[c][b].qs + 4 * t);
                const int ch = chains == 2 ? (i & 1) : 0;
                for (int h = 0; h < 2; h++) isum[c][h][ch] = _mm256_dpbusd_avx_epi32(isum[c][h][ch], wq[h], act);
            }
        }
        const ts_f16 *dw16 = block_scales(kind, w, b);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(dw16 + 8 * h)));
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                const __m256i total = chains == 2 ? _mm256_add_epi32(isum[c][h][0], isum[c][h][1]) : isum[c][h][0];
                acc[c][h] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(k[c * nbc + b].d)), _mm256_cvtepi32_ps(total), acc[c][h]);
            }
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        for (int h = 0; h < 2; h++) _mm256_storeu_ps(s + (size_t)c * s_stride + 8 * h, acc[c][h]);
}

/* Rows 0-15 of block b of one group x one token (q: the token's quants of that block), added to
 * acc[0] (rows 0-7) and acc[1] (rows 8-15): the one-token case of tile(), each half's steps on
 * two chains, even and odd. */
static ALWAYS_INLINE void block1(enum legacy_kind kind, const void *restrict w, int b, const int8_t *q, act_const kc,
                                 __m256 acc[2]) {
    __m256i isum[2][2];
    for (int h = 0; h < 2; h++) {
        isum[h][0] = _mm256_set1_epi32(kc.corr);
        isum[h][1] = _mm256_setzero_si256();
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) { /* value groups in tile()'s order */
        const int t = kind == LEGACY_Q8_0 ? i : (i >> 1) + 4 * (i & 1);
        __m256i wq[2];
        weights(kind, w, b, t, wq);
        const __m256i act = bcast4(q + 4 * t);
        for (int h = 0; h < 2; h++) isum[h][i & 1] = _mm256_dpbusd_avx_epi32(isum[h][i & 1], wq[h], act);
    }
    const ts_f16 *dw16 = block_scales(kind, w, b);
    const __m256 da = _mm256_set1_ps(kc.d);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(dw16 + 8 * h)));
        acc[h] = _mm256_fmadd_ps(_mm256_mul_ps(dw, da), _mm256_cvtepi32_ps(_mm256_add_epi32(isum[h][0], isum[h][1])), acc[h]);
    }
}

DEFINE_LEGACY_TILE1

/* One out-of-line function per (type, tile width), each fully unrolled with its own registers. */
#define DEFINE_TILE(name, kind, C)                                                                       \
    static __attribute__((noinline)) void name(int nbc, const void *restrict w, const block_q8_0 *const *a, \
                                               const act_const *k, float *restrict s, size_t s_stride,  \
                                               int first_pass) {                                         \
        tile(kind, C, nbc, w, a, k, s, s_stride, first_pass);                                           \
    }
#define DEFINE_TILES(t, kind)                                                                            \
    DEFINE_TILE(tile_##t##_1, kind, 1) DEFINE_TILE(tile_##t##_2, kind, 2) DEFINE_TILE(tile_##t##_3, kind, 3) \
    DEFINE_TILE(tile_##t##_4, kind, 4) DEFINE_LEGACY_ONE_TOKEN(t, kind)                                   \
    static const legacy_tile_fn tiles_##t[4] = {tile_##t##_1, tile_##t##_2, tile_##t##_3, tile_##t##_4};  \
    void ts_gemm_rp_##t##_avxvnni(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,     \
                                  const void *restrict x, const void *restrict y, size_t y_stride) {       \
        if (n_cols == 1 && legacy_one_token(kind, one_##t##_1, one_##t##_2, n, n_groups, s, x, y)) return; \
        legacy_rp_gemm(kind, tiles_##t, MAX_TILE, n, n_groups, n_cols, s, s_stride, x, y, y_stride);       \
    }
_Static_assert(MAX_TILE <= 4 && MAX_TILE <= LEGACY_MAX_TILE, "DEFINE_TILES lists 4 widths");
DEFINE_TILES(q4_0, LEGACY_Q4_0)
DEFINE_TILES(q5_0, LEGACY_Q5_0)
DEFINE_TILES(q8_0, LEGACY_Q8_0)

#else
/* Built without AVX-VNNI (non-x86, or a compiler without -mavxvnni): ISO C forbids an empty
 * translation unit. */
typedef int ts_repack_legacy_avxvnni_unused;
#endif
