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

/* Q4_K: int16 pair sums (8 steps of pairs <= 3840: exact, top comment), each widened by one
 * vpmaddwd with the rows' scale in both int16 slots. */
static ALWAYS_INLINE __m256i q4_K_acc(__m256i sum, __m256i w, __m256i a) { return _mm256_add_epi16(sum, _mm256_maddubs_epi16(w, a)); }
static ALWAYS_INLINE __m256i q4_K_scales(const uint8_t *p) { return scale_pairs_u8(p); }
static ALWAYS_INLINE __m256i q4_K_scaled(__m256i sum, __m256i sc) { return _mm256_madd_epi16(sum, sc); }

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

static const kq_tile_fn q4_K_tiles[MAX_TILE] = {q4_K_tile_1, q4_K_tile_2, q4_K_tile_3,
                                                q4_K_tile_4, q4_K_tile_5, q4_K_tile_6}; /* Q4_K_TILE <= 6 */
static const kq_tile_fn q6_K_tiles[MAX_TILE] = {q6_K_tile_1, q6_K_tile_2, q6_K_tile_3, q6_K_tile_4,
                                                q6_K_tile_5, q6_K_tile_6, q6_K_tile_7, q6_K_tile_8};

/* The exported products: with the one-token pairs, and one group at a time (_seq; repack.c
 * chooses per CPU). */
#define DEFINE_GEMM(t, name, pairs, tile)                                                                    \
    void name(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride, const void *restrict x,  \
              const void *restrict y, size_t y_stride) {                                                   \
        kq_gemm(t##_tiles, t##_tile_1_dual, pairs, tile, sizeof(block_##t##x16), n, n_groups, n_cols, s,       \
                s_stride, x, y, y_stride);                                                                 \
    }
DEFINE_GEMM(q4_K, ts_gemm_rp_q4_K_avx2, true, Q4_K_TILE)
DEFINE_GEMM(q6_K, ts_gemm_rp_q6_K_avx2, true, Q6_K_TILE)
DEFINE_GEMM(q4_K, ts_gemm_rp_q4_K_avx2_seq, false, Q4_K_TILE)
DEFINE_GEMM(q6_K, ts_gemm_rp_q6_K_avx2_seq, false, Q6_K_TILE)

#else
/* Built without AVX2 (non-x86): ISO C forbids an empty translation unit. */
typedef int ts_repack_kquants_avx2_unused;
#endif
