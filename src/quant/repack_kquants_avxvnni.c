/* AVX-VNNI kernels of the repacked Q4_K / Q6_K layouts (repack_kquants.h), for CPUs with the
 * VEX-encoded 256-bit vpdpbusd but no AVX-512. Compiled with -mavx2 -mfma -mf16c -mavxvnni.
 * Results are bit-identical to the scalar references in repack_kquants.c (and to the AVX2 and
 * AVX-512 kernels), for any n_cols and n_groups.
 *
 * The structure is the AVX2 kernels' (repack_kquants_avx2.c: a ymm holds 4 bytes of 8 rows, a
 * 16-row group is two halves, wide tiles take the halves in two passes per block and one-token
 * tiles both per step), with each vpmaddubsw + int16 addition replaced by one vpdpbusd, which adds
 * the four unsigned-weight x signed-activation products of a row straight into an int32 lane:
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

/* 8 scale bytes (rows 8h..8h+7) as int32 lanes. */
static ALWAYS_INLINE __m256i scales_u8_i32(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
static ALWAYS_INLINE __m256i scales_i8_i32(const int8_t *p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)); }

/* ---------------------------------------------------------------------------------------------- */
/* Q4_K                                                                                              */

/* Q4_K's min term of one half for one token: sum_j min_j asum_j by vpmaddwd of (min 2i, min 2i+1)
 * pairs with the broadcast (asum_2i, asum_2i+1). */
static ALWAYS_INLINE __m256i q4_K_msum(const block_q4_Kx16 *xb, int h, const int32_t asum_pairs[4]) {
    __m256i msum = _mm256_setzero_si256();
    for (int pair = 0; pair < 4; pair++) {
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(xb->mins + pair * 32 + 16 * h)));
        msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mins, _mm256_set1_epi32(asum_pairs[pair])));
    }
    return msum;
}

static ALWAYS_INLINE void q4_K_asum_pairs(const block_q8_K *yb, int32_t out[4]) {
    _mm_storeu_si128((__m128i *)out, _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)yb->bsums),
                                                    _mm_loadu_si128((const __m128i *)(yb->bsums + 8))));
}

static ALWAYS_INLINE void q4_K_tile(const int NT, int nbc, const block_q4_Kx16 *restrict x, const block_q8_K *const *ys,
                                    float *const *s_out, int first) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256 acc[2][KQ_MAX_TILE];
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) acc[h][c] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(s_out[c] + 8 * h);
    for (int b = 0; b < nbc; b++) {
        const block_q4_Kx16 *xb = &x[b];
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i isum[KQ_MAX_TILE];
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) isum[c] = _mm256_setzero_si256();
            for (int pair = 0; pair < 4; pair++) {
                /* int32 sums of sub-blocks 2*pair (low nibbles) and 2*pair+1 (high nibbles) */
                __m256i lo[KQ_MAX_TILE], hi[KQ_MAX_TILE];
#pragma GCC unroll 8
                for (int c = 0; c < NT; c++) lo[c] = hi[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
                for (int t = 0; t < 8; t++) {
                    const uint8_t *q4 = xb->qs + (pair * 8 + t) * 64;
                    if (h == 0) _mm_prefetch((const char *)q4 + RP_AVX2_PREFETCH_BYTES, _MM_HINT_T0);
                    const __m256i w = _mm256_loadu_si256((const __m256i *)(q4 + 32 * h));
                    const __m256i wl = _mm256_and_si256(w, low4);
                    const __m256i wh = _mm256_and_si256(_mm256_srli_epi16(w, 4), low4);
#pragma GCC unroll 8
                    for (int c = 0; c < NT; c++) {
                        const int8_t *a = ys[c][b].qs + 64 * pair + 4 * t;
                        lo[c] = dp(lo[c], wl, bcast4(a));
                        hi[c] = dp(hi[c], wh, bcast4(a + 32));
                    }
                }
                const __m256i sc_lo = scales_u8_i32(xb->scales + (2 * pair) * 16 + 8 * h);
                const __m256i sc_hi = scales_u8_i32(xb->scales + (2 * pair + 1) * 16 + 8 * h);
#pragma GCC unroll 8
                for (int c = 0; c < NT; c++)
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(_mm256_mullo_epi32(lo[c], sc_lo),
                                                                         _mm256_mullo_epi32(hi[c], sc_hi)));
            }
            const __m256 d = load_f16x8(xb->d + 8 * h), dmin = load_f16x8(xb->dmin + 8 * h);
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) {
                int32_t asum_pairs[4];
                q4_K_asum_pairs(&ys[c][b], asum_pairs);
                const __m256i msum = q4_K_msum(xb, h, asum_pairs);
                const __m256 da = _mm256_set1_ps(ys[c][b].d);
                acc[h][c] = _mm256_fmadd_ps(_mm256_mul_ps(d, da), _mm256_cvtepi32_ps(isum[c]), acc[h][c]);
                acc[h][c] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, da), _mm256_cvtepi32_ps(msum), acc[h][c]);
            }
        }
    }
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) _mm256_storeu_ps(s_out[c] + 8 * h, acc[h][c]);
}

/* All 16 rows of one group x one token (decoding): per step both halves' nibbles, one activation
 * broadcast per nibble half feeding both row halves; four independent int32 chains. */
static ALWAYS_INLINE void q4_K_tile_rows16_one(int nbc, const block_q4_Kx16 *restrict x, const block_q8_K *restrict y,
                                               float *restrict s_out, int first) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256 acc[2];
    for (int h = 0; h < 2; h++) acc[h] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(s_out + 8 * h);
    for (int b = 0; b < nbc; b++) {
        const block_q4_Kx16 *xb = &x[b];
        const block_q8_K *yb = &y[b];
        act_prefetch(y, nbc, b);
        __m256i isum[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int pair = 0; pair < 4; pair++) {
            __m256i lo[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()}, hi[2] = {lo[0], lo[0]};
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++) {
                const uint8_t *q4 = xb->qs + (pair * 8 + t) * 64;
                const int8_t *a = yb->qs + 64 * pair + 4 * t;
                const __m256i a_lo = bcast4(a), a_hi = bcast4(a + 32);
                for (int h = 0; h < 2; h++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(q4 + 32 * h));
                    lo[h] = dp(lo[h], _mm256_and_si256(v, low4), a_lo);
                    hi[h] = dp(hi[h], _mm256_and_si256(_mm256_srli_epi16(v, 4), low4), a_hi);
                }
            }
            for (int h = 0; h < 2; h++) {
                const uint8_t *sc = xb->scales + (2 * pair) * 16 + 8 * h;
                isum[h] = _mm256_add_epi32(isum[h], _mm256_add_epi32(_mm256_mullo_epi32(lo[h], scales_u8_i32(sc)),
                                                                     _mm256_mullo_epi32(hi[h], scales_u8_i32(sc + 16))));
            }
        }
        int32_t asum_pairs[4];
        q4_K_asum_pairs(yb, asum_pairs);
        const __m256 da = _mm256_set1_ps(yb->d);
        for (int h = 0; h < 2; h++) {
            const __m256i msum = q4_K_msum(xb, h, asum_pairs);
            acc[h] = _mm256_fmadd_ps(_mm256_mul_ps(load_f16x8(xb->d + 8 * h), da), _mm256_cvtepi32_ps(isum[h]), acc[h]);
            acc[h] = _mm256_fnmadd_ps(_mm256_mul_ps(load_f16x8(xb->dmin + 8 * h), da), _mm256_cvtepi32_ps(msum), acc[h]);
        }
    }
    for (int h = 0; h < 2; h++) _mm256_storeu_ps(s_out + 8 * h, acc[h]);
}

/* ---------------------------------------------------------------------------------------------- */
/* Q6_K                                                                                              */

/* The -32 offset of one half for one token: 32 * sum_j scale_j bsum_j. */
static ALWAYS_INLINE __m256i q6_K_offset(const block_q6_Kx16 *xb, int h, const block_q8_K *yb) {
    __m256i offset = _mm256_setzero_si256();
    for (int i = 0; i < 8; i++)
        offset = _mm256_add_epi32(offset, _mm256_madd_epi16(q6_K_scale_pairs(xb, i, h), bcast4(yb->bsums + 2 * i)));
    return _mm256_slli_epi32(offset, 5);
}

static ALWAYS_INLINE void q6_K_tile(const int NT, int nbc, const block_q6_Kx16 *restrict x, const block_q8_K *const *ys,
                                    float *const *s_out, int first) {
    const __m256i m0f = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[2][KQ_MAX_TILE];
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) acc[h][c] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(s_out[c] + 8 * h);
    for (int b = 0; b < nbc; b++) {
        const block_q6_Kx16 *xb = &x[b];
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i isum[KQ_MAX_TILE];
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) isum[c] = _mm256_setzero_si256();
#pragma GCC unroll 2
            for (int j = 0; j < 16; j++) {
                const uint8_t *q6 = xb->qs + j * 192;
                if (h == 0) {
                    _mm_prefetch((const char *)q6 + RP_AVX2_PREFETCH_BYTES, _MM_HINT_T0);
                    _mm_prefetch((const char *)q6 + RP_AVX2_PREFETCH_BYTES + 64, _MM_HINT_T0);
                    _mm_prefetch((const char *)q6 + RP_AVX2_PREFETCH_BYTES + 128, _MM_HINT_T0);
                }
                __m256i v[4];
                q6_K_unpack(q6, h, m0f, m30, v);
                const __m256i sc = scales_i8_i32(xb->scales + j * 16 + 8 * h);
#pragma GCC unroll 8
                for (int c = 0; c < NT; c++) {
                    const int8_t *a = ys[c][b].qs + 16 * j;
                    __m256i p = dp(_mm256_setzero_si256(), v[0], bcast4(a));
                    p = dp(p, v[1], bcast4(a + 4));
                    p = dp(p, v[2], bcast4(a + 8));
                    p = dp(p, v[3], bcast4(a + 12));
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_mullo_epi32(p, sc));
                }
            }
            const __m256 d = load_f16x8(xb->d + 8 * h);
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) {
                const __m256i total = _mm256_sub_epi32(isum[c], q6_K_offset(xb, h, &ys[c][b]));
                acc[h][c] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(ys[c][b].d)), _mm256_cvtepi32_ps(total), acc[h][c]);
            }
        }
    }
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) _mm256_storeu_ps(s_out[c] + 8 * h, acc[h][c]);
}

/* All 16 rows of one group x one token (decoding): each sub-block's four activation broadcasts
 * feed both halves. */
static ALWAYS_INLINE void q6_K_tile_rows16_one(int nbc, const block_q6_Kx16 *restrict x, const block_q8_K *restrict y,
                                               float *restrict s_out, int first) {
    const __m256i m0f = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[2];
    for (int h = 0; h < 2; h++) acc[h] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(s_out + 8 * h);
    for (int b = 0; b < nbc; b++) {
        const block_q6_Kx16 *xb = &x[b];
        const block_q8_K *yb = &y[b];
        act_prefetch(y, nbc, b);
        __m256i isum[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
#pragma GCC unroll 2
        for (int j = 0; j < 16; j++) {
            const uint8_t *q6 = xb->qs + j * 192;
            const int8_t *a = yb->qs + 16 * j;
            const __m256i a0 = bcast4(a), a1 = bcast4(a + 4), a2 = bcast4(a + 8), a3 = bcast4(a + 12);
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m256i v[4];
                q6_K_unpack(q6, h, m0f, m30, v);
                /* two chains of two: the four products of a half need not wait on each other */
                const __m256i p01 = dp(dp(_mm256_setzero_si256(), v[0], a0), v[1], a1);
                const __m256i p23 = dp(dp(_mm256_setzero_si256(), v[2], a2), v[3], a3);
                isum[h] = _mm256_add_epi32(isum[h], _mm256_mullo_epi32(_mm256_add_epi32(p01, p23),
                                                                       scales_i8_i32(xb->scales + j * 16 + 8 * h)));
            }
        }
        const __m256 da = _mm256_set1_ps(yb->d);
        for (int h = 0; h < 2; h++) {
            const __m256i total = _mm256_sub_epi32(isum[h], q6_K_offset(xb, h, yb));
            acc[h] = _mm256_fmadd_ps(_mm256_mul_ps(load_f16x8(xb->d + 8 * h), da), _mm256_cvtepi32_ps(total), acc[h]);
        }
    }
    for (int h = 0; h < 2; h++) _mm256_storeu_ps(s_out + 8 * h, acc[h]);
}

/* ---------------------------------------------------------------------------------------------- */
/* Drivers: one out-of-line function per (type, tile width), each unrolled with its own registers. */

#define DEFINE_TILE(t, NT)                                                                                     \
    static __attribute__((noinline)) void t##_tile_##NT(int nbc, const void *restrict x, const block_q8_K *const *ys, \
                                                        float *const *s_out, int first) {                      \
        t##_tile(NT, nbc, (const block_##t##x16 *)x, ys, s_out, first);                                        \
    }
#define DEFINE_TILE_ONE(t)                                                                                     \
    static __attribute__((noinline)) void t##_tile_1(int nbc, const void *restrict x, const block_q8_K *const *ys, \
                                                     float *const *s_out, int first) {                         \
        t##_tile_rows16_one(nbc, (const block_##t##x16 *)x, ys[0], s_out[0], first);                           \
    }
DEFINE_TILE_ONE(q4_K)
DEFINE_TILE(q4_K, 2)
DEFINE_TILE(q4_K, 3)
DEFINE_TILE(q4_K, 4)
DEFINE_TILE_ONE(q6_K)
DEFINE_TILE(q6_K, 2)
DEFINE_TILE(q6_K, 3)
DEFINE_TILE(q6_K, 4)

void ts_gemm_rp_q4_K_avxvnni(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                             const void *restrict x, const void *restrict y, size_t y_stride) {
    static const kq_tile_fn tiles[4] = {q4_K_tile_1, q4_K_tile_2, q4_K_tile_3, q4_K_tile_4};
    kq_gemm(tiles, Q4_K_TILE, sizeof(block_q4_Kx16), n, n_groups, n_cols, s, s_stride, x, y, y_stride);
}

void ts_gemm_rp_q6_K_avxvnni(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                             const void *restrict x, const void *restrict y, size_t y_stride) {
    static const kq_tile_fn tiles[4] = {q6_K_tile_1, q6_K_tile_2, q6_K_tile_3, q6_K_tile_4};
    kq_gemm(tiles, Q6_K_TILE, sizeof(block_q6_Kx16), n, n_groups, n_cols, s, s_stride, x, y, y_stride);
}

#else
/* Built without AVX-VNNI (non-x86, or a compiler without -mavxvnni): ISO C forbids an empty
 * translation unit. */
typedef int ts_repack_kquants_avxvnni_unused;
#endif
