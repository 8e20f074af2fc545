/* AVX-VNNI kernels of the repacked Q4_K / Q6_K layouts (repack_kquants.h), for CPUs with the
 * VEX-encoded 256-bit vpdpbusd but no AVX-512. Compiled with -mavx2 -mfma -mf16c -mavxvnni.
 * Results are bit-identical to the scalar references in repack_kquants.c (and to the AVX2 and
 * AVX-512 kernels), for any n_cols and n_groups.
 *
 * The tiles are the AVX2 kernels' (repack_kquants_x86_tiles.h: a ymm holds 4 bytes of 8 rows, a
 * 16-row group is two halves), with each vpmaddubsw + int16 addition replaced by one vpdpbusd,
 * which adds the four unsigned-weight x signed-activation products of a row straight into an
 * int32 lane; this file supplies those products:
 *   Q4_K: a sub-block's sum S_j (32 products, |S_j| <= 32 * 15 * 128 = 61440) no longer fits the
 *         int16 that vpmaddwd multiplies, so it is multiplied by the row's scale with vpmulld
 *         (zero-extended scale bytes): |scale_j S_j| <= 63 * 61440 = 3.9e6.
 *   Q6_K: a sub-block's 16 products of unsigned 6-bit quants, |S_j| <= 16 * 63 * 128 = 129024,
 *         times the signed scale (vpmulld, |scale| <= 128): 1.7e7; 16 of them 2.6e8 < 2^31. The -32
 *         offset is the AVX2 kernel's: 32 * sum_j scale_j bsum_j by vpmaddwd of scale pairs.
 * Q4_K's min term and the float epilogue are the AVX2 kernels' (and so the reference's):
 *   acc = fma(d * da, (float)isum, acc); acc = fnma(dmin * da, (float)msum, acc). */
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && defined(__AVXVNNI__)

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "quant/repack_kquants.h"
#include "quant/repack_kquants_x86.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define Q4_K_TILE TS_RP_TILE_Q4_K_AVXVNNI
#define Q6_K_TILE TS_RP_TILE_Q6_K_AVXVNNI
_Static_assert(Q4_K_TILE <= 4 && Q6_K_TILE <= 4, "tile widths with a kernel");

static ALWAYS_INLINE __m256i dp(__m256i acc, __m256i w, __m256i a) { return _mm256_dpbusd_avx_epi32(acc, w, a); }

/* Q4_K: int32 sums of 8 steps (|S_j| <= 61440), each multiplied by the rows' zero-extended scales.
 * (Tiles of 2, 3, 5 or 6 tokens, all 16 rows per step, or two chains per token were no faster on
 * Zen 5: BENCHMARKS.md, "AVX-VNNI kernels".) */
static ALWAYS_INLINE __m256i q4_K_acc(__m256i sum, __m256i w, __m256i a) { return dp(sum, w, a); }
static ALWAYS_INLINE __m256i q4_K_scales(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
static ALWAYS_INLINE __m256i q4_K_scaled(__m256i sum, __m256i sc) { return _mm256_mullo_epi32(sum, sc); }

/* Q6_K: the signed scales as int32 lanes. */
static ALWAYS_INLINE __m256i q6_K_scales(const int8_t *p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)); }

/* Two chains of two vpdpbusd (the four products of a sub-block need not wait on each other), then
 * the scale. */
static ALWAYS_INLINE __m256i q6_K_products(const __m256i v[4], const __m256i a[4], __m256i sc) {
    const __m256i p01 = dp(dp(_mm256_setzero_si256(), v[0], a[0]), v[1], a[1]);
    const __m256i p23 = dp(dp(_mm256_setzero_si256(), v[2], a[2]), v[3], a[3]);
    return _mm256_mullo_epi32(_mm256_add_epi32(p01, p23), sc);
}

#include "quant/repack_kquants_x86_tiles.h"

/* ---------------------------------------------------------------------------------------------- */
/* Drivers */

KQ_DEFINE_TILE_ONE(q4_K)
KQ_DEFINE_TILE(q4_K, 2)
KQ_DEFINE_TILE(q4_K, 3)
KQ_DEFINE_TILE(q4_K, 4)
KQ_DEFINE_TILE_ONE(q6_K)
KQ_DEFINE_TILE(q6_K, 2)
KQ_DEFINE_TILE(q6_K, 3)
KQ_DEFINE_TILE(q6_K, 4)

void ts_gemm_rp_q4_K_avxvnni(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                             const void *restrict x, const void *restrict y, size_t y_stride) {
    static const kq_tile_fn tiles[4] = {q4_K_tile_1, q4_K_tile_2, q4_K_tile_3, q4_K_tile_4};
    kq_gemm(tiles, q4_K_tile_1_dual, true, Q4_K_TILE, sizeof(block_q4_Kx16), n, n_groups, n_cols, s, s_stride, x, y, y_stride);
}

void ts_gemm_rp_q6_K_avxvnni(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                             const void *restrict x, const void *restrict y, size_t y_stride) {
    static const kq_tile_fn tiles[4] = {q6_K_tile_1, q6_K_tile_2, q6_K_tile_3, q6_K_tile_4};
    kq_gemm(tiles, q6_K_tile_1_dual, true, Q6_K_TILE, sizeof(block_q6_Kx16), n, n_groups, n_cols, s, s_stride, x, y, y_stride);
}

#else
/* Built without AVX-VNNI (non-x86, or a compiler without -mavxvnni): ISO C forbids an empty
 * translation unit. */
typedef int ts_repack_kquants_avxvnni_unused;
#endif
