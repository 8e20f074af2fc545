/* AVX2 kernels of the repacked Q4_K / Q6_K layouts (repack_kquants.h), for CPUs without AVX-512
 * VNNI. Compiled with -mavx2 -mfma -mf16c only. Results are bit-identical to the scalar references
 * in repack_kquants.c (and so to the AVX-512 kernels), for any n_cols and n_groups.
 *
 * A ymm holds 4 bytes of each of 8 rows, so a 16-row group is two halves of 8 rows (h = 0, 1: the
 * low and high 32 bytes of every 64-byte step of the layout), done one after the other inside each
 * block so that the second half finds the block's lines in L1 — except in the one-token tiles of
 * decoding, which do both halves per step so that each activation broadcast feeds both and the
 * weights stream through once. Without VNNI the products go through
 * vpmaddubsw (unsigned weight byte x signed activation byte -> int16 sums of adjacent pairs,
 * SATURATING at +-32767/32768) and vpmaddwd (int16 x int16 -> int32 sums of pairs, exact).
 *
 * Why nothing saturates or overflows (|a| <= 128 covers every int8, so also the [-127, 127] that
 * the Q8_K quantizer produces):
 *   Q4_K: a weight is a nibble u <= 15; a vpmaddubsw pair sum is |u0 a0 + u1 a1| <= 2*15*128 = 3840.
 *         A sub-block (32 values) is 8 steps of 4 values per row, so each int16 slot of a row's lane
 *         adds 8 pair sums: <= 8 * 3840 = 30720 < 32767. One vpmaddwd with the row's scale in both
 *         int16 slots then gives scale * (sub-block sum) in int32: <= 63 * 61440 = 3.9e6.
 *   Q6_K: a weight is the unsigned 6-bit quant q <= 63 (the -32 offset is applied separately); a
 *         pair sum is <= 2*63*128 = 16128, two of them added in int16 <= 32256 < 32767 (four would
 *         not fit: the sub-block's 4 products per row are summed as two int16 pairs, each widened by
 *         a vpmaddwd with the row's signed scale, |scale| <= 128: <= 128 * 64512 = 8.3e6).
 *         The offset: sum_j scale_j sum_k (q_k - 32) a_k = sum_j scale_j S_j - 32 sum_j scale_j bsum_j,
 *         the second sum one vpmaddwd per pair of sub-blocks of (scale_j, scale_j+1) int16 pairs with
 *         the broadcast pair (bsum_j, bsum_j+1) (|bsum| <= 16 * 128 = 2048): |.| <= 16*128*2048 =
 *         4.2e6, times 32 = 1.3e8; |sum scale_j S_j| <= 16*128*16*63*128 = 2.6e8. All < 2^31.
 * So the int32 isum (and Q4_K's msum = sum_j min_j asum_j, one vpmaddwd per sub-block pair of the
 * layout's (min 2i, min 2i+1) pairs with the broadcast (asum_2i, asum_2i+1), |asum| <= 4096) are
 * the reference's integers exactly. The float epilogue is the reference's, lane by lane:
 *   dw = d * da (vmulps); acc = fma(dw, (float)isum, acc); Q4_K: dm = dmin * da,
 *   acc = fnma(dm, (float)msum, acc) = fmaf(-dm, msum, acc).
 * Accumulators start at 0 and survive across block chunks by a store to s and a reload (exact), so
 * the result does not depend on n_cols, n_groups or the chunking. */
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant/repack_kquants.h"
#include "quant/repack_kquants_x86.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* An empty asm that "changes" x: the compiler cannot regroup additions around it. Integer addition
 * being associative, GCC otherwise turns a run of "sum += maddubs" into a tree that keeps every
 * product live and spills (Q4_K, 4 tokens, in-cache on one core: 103 GMAC/s as a tree with the
 * step loop unrolled twice, 120 chained and unrolled eight times). */
#define KEEP(x) __asm__("" : "+x"(x))

/* Tokens per tile: each token needs two int16 accumulators and an int32 sum (Q4_K) or one int32
 * sum (Q6_K) in the inner loop, next to the unpacked weights. Q4_K takes 6 tokens: the 12 int16
 * sums and the weights fill the 16 ymm registers and the int32 sums, touched once per 8 steps, go
 * to the stack; 2-5 % faster in-cache than 4 tokens with everything in registers (the nibble
 * unpacking, 3 operations per step, is shared by more tokens), while 7 and 8 spill the int16 sums
 * and run slower. Q6_K at 8 rather than 4 tokens: 96 against 88 GMAC/s in-cache on one core (its
 * unpacking, 14 operations per 4 weight registers, is shared by twice the tokens). */
#define MAX_TILE 8
#define Q4_K_TILE TS_RP_TILE_Q4_K_AVX2
#define Q6_K_TILE TS_RP_TILE_Q6_K_AVX2
_Static_assert(Q4_K_TILE <= 6 && Q6_K_TILE <= MAX_TILE, "tile widths with a kernel");
/* ---------------------------------------------------------------------------------------------- */
/* The products (repack_kquants_x86_tiles.h has the tiles around them)                              */

/* Q4_K, rows 8h..8h+7 x NT tokens, sub-blocks 2 pair and 2 pair + 1: int16 sums of 8 steps (exact:
 * top comment), then one vpmaddwd each with the rows' scales. */
static ALWAYS_INLINE void q4_K_pair(const int NT, const block_q4_Kx16 *xb, const block_q8_K *const *ys, int b, int pair,
                                    int h, __m256i *isum) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256i lo[MAX_TILE], hi[MAX_TILE];
#pragma GCC unroll 8
    for (int c = 0; c < NT; c++) lo[c] = hi[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) {
        const uint8_t *q4 = xb->qs + (pair * 8 + t) * 64;
        if (h == 0) _mm_prefetch((const char *)q4 + RP_AVX2_PREFETCH_BYTES, _MM_HINT_T0);
        __m256i w = _mm256_loadu_si256((const __m256i *)(q4 + 32 * h));
        KEEP(w);
        const __m256i wl = _mm256_and_si256(w, low4);
        const __m256i wh = _mm256_and_si256(_mm256_srli_epi16(w, 4), low4);
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) {
            const int8_t *a = ys[c][b].qs + 64 * pair + 4 * t;
            lo[c] = _mm256_add_epi16(lo[c], _mm256_maddubs_epi16(wl, bcast4(a)));
            hi[c] = _mm256_add_epi16(hi[c], _mm256_maddubs_epi16(wh, bcast4(a + 32)));
            KEEP(lo[c]);
            KEEP(hi[c]);
        }
    }
    const __m256i sc_lo = scale_pairs_u8(xb->scales + (2 * pair) * 16 + 8 * h);
    const __m256i sc_hi = scale_pairs_u8(xb->scales + (2 * pair + 1) * 16 + 8 * h);
#pragma GCC unroll 8
    for (int c = 0; c < NT; c++)
        isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(_mm256_madd_epi16(lo[c], sc_lo), _mm256_madd_epi16(hi[c], sc_hi)));
}

/* Q4_K, all 16 rows x one token (decoding): per step the two 8-row halves' nibbles and one
 * activation broadcast per nibble half feeding both row halves, where the wide tiles take the
 * halves in two passes with a broadcast each. Against the two-pass tile at one token: in-cache on
 * one core 86-90 -> 91-97 GMAC/s; two threads streaming 512 MB of 2048 x 1408 matrices 52-56 ->
 * 65-70 GB/s, the speed of a plain read of the same bytes. */
static ALWAYS_INLINE void q4_K_pair16(const block_q4_Kx16 *xb, const block_q8_K *yb, int pair, __m256i isum[2]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256i lo0 = _mm256_setzero_si256(), lo1 = lo0, hi0 = lo0, hi1 = lo0;
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) {
        const uint8_t *q4 = xb->qs + (pair * 8 + t) * 64;
        const __m256i v0 = _mm256_loadu_si256((const __m256i *)q4);
        const __m256i v1 = _mm256_loadu_si256((const __m256i *)(q4 + 32));
        const int8_t *a = yb->qs + 64 * pair + 4 * t;
        const __m256i a_lo = bcast4(a), a_hi = bcast4(a + 32);
        lo0 = _mm256_add_epi16(lo0, _mm256_maddubs_epi16(_mm256_and_si256(v0, low4), a_lo));
        lo1 = _mm256_add_epi16(lo1, _mm256_maddubs_epi16(_mm256_and_si256(v1, low4), a_lo));
        hi0 = _mm256_add_epi16(hi0, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v0, 4), low4), a_hi));
        hi1 = _mm256_add_epi16(hi1, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v1, 4), low4), a_hi));
        KEEP(lo0);
        KEEP(lo1);
        KEEP(hi0);
        KEEP(hi1);
    }
    const uint8_t *sc = xb->scales + (2 * pair) * 16;
    isum[0] = _mm256_add_epi32(isum[0], _mm256_add_epi32(_mm256_madd_epi16(lo0, scale_pairs_u8(sc)),
                                                         _mm256_madd_epi16(hi0, scale_pairs_u8(sc + 16))));
    isum[1] = _mm256_add_epi32(isum[1], _mm256_add_epi32(_mm256_madd_epi16(lo1, scale_pairs_u8(sc + 8)),
                                                         _mm256_madd_epi16(hi1, scale_pairs_u8(sc + 24))));
}

/* Q6_K: the scales as (scale, scale) int16 pairs, so that one vpmaddwd multiplies both pair sums
 * of a lane by it and adds them. The one-token tile does both halves per sub-block: in-cache the
 * same 50 GMAC/s on one core as two passes; two threads streaming from memory 51-54 -> 54-58 GB/s. */
static ALWAYS_INLINE __m256i q6_K_scales(const int8_t *p) { return scale_pairs_i8(p); }

/* Two int16 sums of two pair sums each (<= 32256, exact), each widened by the scale. */
static ALWAYS_INLINE __m256i q6_K_products(const __m256i v[4], const __m256i a[4], __m256i sc) {
    const __m256i p01 = _mm256_add_epi16(_mm256_maddubs_epi16(v[0], a[0]), _mm256_maddubs_epi16(v[1], a[1]));
    const __m256i p23 = _mm256_add_epi16(_mm256_maddubs_epi16(v[2], a[2]), _mm256_maddubs_epi16(v[3], a[3]));
    return _mm256_add_epi32(_mm256_madd_epi16(p01, sc), _mm256_madd_epi16(p23, sc));
}

#include "quant/repack_kquants_x86_tiles.h"

/* ---------------------------------------------------------------------------------------------- */
/* Drivers */

KQ_DEFINE_TILE_ONE(q4_K)
KQ_DEFINE_TILE(q4_K, 2)
KQ_DEFINE_TILE(q4_K, 3)
KQ_DEFINE_TILE(q4_K, 4)
KQ_DEFINE_TILE(q4_K, 5)
KQ_DEFINE_TILE(q4_K, 6)
KQ_DEFINE_TILE_ONE(q6_K)
KQ_DEFINE_TILE(q6_K, 2)
KQ_DEFINE_TILE(q6_K, 3)
KQ_DEFINE_TILE(q6_K, 4)
KQ_DEFINE_TILE(q6_K, 5)
KQ_DEFINE_TILE(q6_K, 6)
KQ_DEFINE_TILE(q6_K, 7)
KQ_DEFINE_TILE(q6_K, 8)

void ts_gemm_rp_q4_K_avx2(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                          const void *restrict x, const void *restrict y, size_t y_stride) {
    static const kq_tile_fn tiles[MAX_TILE] = {q4_K_tile_1, q4_K_tile_2, q4_K_tile_3,
                                            q4_K_tile_4, q4_K_tile_5, q4_K_tile_6}; /* Q4_K_TILE <= 6 */
    kq_gemm(tiles, Q4_K_TILE, sizeof(block_q4_Kx16), n, n_groups, n_cols, s, s_stride, x, y, y_stride);
}

void ts_gemm_rp_q6_K_avx2(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                          const void *restrict x, const void *restrict y, size_t y_stride) {
    static const kq_tile_fn tiles[MAX_TILE] = {q6_K_tile_1, q6_K_tile_2, q6_K_tile_3, q6_K_tile_4,
                                            q6_K_tile_5, q6_K_tile_6, q6_K_tile_7, q6_K_tile_8};
    kq_gemm(tiles, Q6_K_TILE, sizeof(block_q6_Kx16), n, n_groups, n_cols, s, s_stride, x, y, y_stride);
}

#else
/* Built without AVX2 (non-x86): ISO C forbids an empty translation unit. */
typedef int ts_repack_kquants_avx2_unused;
#endif
