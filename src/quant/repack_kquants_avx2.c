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
/* Q4_K                                                                                              */

/* One group x NT tokens over nbc blocks: s_out[c][0..15] = acc over these blocks, starting from 0
 * (first) or from what s_out holds. */
static ALWAYS_INLINE void q4_K_tile(const int NT, int nbc, const block_q4_Kx16 *restrict x, const block_q8_K *const *ys,
                                    float *const *s_out, int first) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256 acc[2][MAX_TILE];
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) acc[h][c] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(s_out[c] + 8 * h);
    for (int b = 0; b < nbc; b++) {
        const block_q4_Kx16 *xb = &x[b];
        /* (asum_2i, asum_2i+1) int16 pairs, i = 0..3, per token: hadd of the 16 bsums */
        int32_t asum_pairs[MAX_TILE][4];
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) {
            const int16_t *bs = ys[c][b].bsums;
            _mm_storeu_si128((__m128i *)asum_pairs[c],
                             _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)bs), _mm_loadu_si128((const __m128i *)(bs + 8))));
        }
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i isum[MAX_TILE];
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) isum[c] = _mm256_setzero_si256();
            for (int pair = 0; pair < 4; pair++) {
                /* sub-blocks 2*pair (low nibbles) and 2*pair+1 (high nibbles), int16 pair sums */
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
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(_mm256_madd_epi16(lo[c], sc_lo),
                                                                         _mm256_madd_epi16(hi[c], sc_hi)));
            }
            /* after the products, so that msum does not hold registers during them */
            __m256i msum[MAX_TILE];
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) msum[c] = _mm256_setzero_si256();
            for (int pair = 0; pair < 4; pair++) {
                const __m256i mins = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(xb->mins + pair * 32 + 16 * h)));
#pragma GCC unroll 8
                for (int c = 0; c < NT; c++)
                    msum[c] = _mm256_add_epi32(msum[c], _mm256_madd_epi16(mins, _mm256_set1_epi32(asum_pairs[c][pair])));
            }
            const __m256 d = load_f16x8(xb->d + 8 * h), dmin = load_f16x8(xb->dmin + 8 * h);
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) {
                const __m256 da = _mm256_set1_ps(ys[c][b].d);
                acc[h][c] = _mm256_fmadd_ps(_mm256_mul_ps(d, da), _mm256_cvtepi32_ps(isum[c]), acc[h][c]);
                acc[h][c] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, da), _mm256_cvtepi32_ps(msum[c]), acc[h][c]);
            }
        }
    }
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) _mm256_storeu_ps(s_out[c] + 8 * h, acc[h][c]);
}

/* All 16 rows of one group x one token (decoding): per step the two 8-row halves' nibbles and
 * one activation broadcast per nibble half feeding both row halves, where the tile above takes
 * the halves in two passes with a broadcast each. Against q4_K_tile(1, …): in-cache on one core
 * 86-90 -> 91-97 GMAC/s; two threads streaming 512 MB of 2048 x 1408 matrices 52-56 -> 65-70
 * GB/s, the speed of a plain read of the same bytes. */
static ALWAYS_INLINE void q4_K_tile_rows16_one(int nbc, const block_q4_Kx16 *restrict x, const block_q8_K *restrict y,
                                               float *restrict s_out, int first) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256 acc0 = first ? _mm256_setzero_ps() : _mm256_loadu_ps(s_out);
    __m256 acc1 = first ? _mm256_setzero_ps() : _mm256_loadu_ps(s_out + 8);
    for (int b = 0; b < nbc; b++) {
        const block_q4_Kx16 *xb = &x[b];
        const block_q8_K *yb = &y[b];
        act_prefetch(y, nbc, b);
        __m256i isum0 = _mm256_setzero_si256(), isum1 = _mm256_setzero_si256();
        for (int pair = 0; pair < 4; pair++) {
            /* int16 sums of sub-blocks 2*pair (low nibbles) and 2*pair+1 (high), per row half */
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
            isum0 = _mm256_add_epi32(isum0, _mm256_add_epi32(_mm256_madd_epi16(lo0, scale_pairs_u8(sc)),
                                                             _mm256_madd_epi16(hi0, scale_pairs_u8(sc + 16))));
            isum1 = _mm256_add_epi32(isum1, _mm256_add_epi32(_mm256_madd_epi16(lo1, scale_pairs_u8(sc + 8)),
                                                             _mm256_madd_epi16(hi1, scale_pairs_u8(sc + 24))));
        }
        /* (asum_2i, asum_2i+1) int16 pairs: hadd of the 16 bsums */
        int32_t asum_pairs[4];
        _mm_storeu_si128((__m128i *)asum_pairs,
                         _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)yb->bsums), _mm_loadu_si128((const __m128i *)(yb->bsums + 8))));
        __m256i msum0 = _mm256_setzero_si256(), msum1 = msum0;
        for (int pair = 0; pair < 4; pair++) {
            const __m256i ap = _mm256_set1_epi32(asum_pairs[pair]);
            msum0 = _mm256_add_epi32(msum0, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(xb->mins + pair * 32))), ap));
            msum1 = _mm256_add_epi32(msum1, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(xb->mins + pair * 32 + 16))), ap));
        }
        const __m256 da = _mm256_set1_ps(yb->d);
        acc0 = _mm256_fmadd_ps(_mm256_mul_ps(load_f16x8(xb->d), da), _mm256_cvtepi32_ps(isum0), acc0);
        acc0 = _mm256_fnmadd_ps(_mm256_mul_ps(load_f16x8(xb->dmin), da), _mm256_cvtepi32_ps(msum0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_mul_ps(load_f16x8(xb->d + 8), da), _mm256_cvtepi32_ps(isum1), acc1);
        acc1 = _mm256_fnmadd_ps(_mm256_mul_ps(load_f16x8(xb->dmin + 8), da), _mm256_cvtepi32_ps(msum1), acc1);
    }
    _mm256_storeu_ps(s_out, acc0);
    _mm256_storeu_ps(s_out + 8, acc1);
}

/* ---------------------------------------------------------------------------------------------- */
/* Q6_K                                                                                              */

static ALWAYS_INLINE void q6_K_tile(const int NT, int nbc, const block_q6_Kx16 *restrict x, const block_q8_K *const *ys,
                                    float *const *s_out, int first) {
    const __m256i m0f = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[2][MAX_TILE];
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) acc[h][c] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(s_out[c] + 8 * h);
    for (int b = 0; b < nbc; b++) {
        const block_q6_Kx16 *xb = &x[b];
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i isum[MAX_TILE];
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
                const __m256i sc = scale_pairs_i8(xb->scales + j * 16 + 8 * h);
#pragma GCC unroll 8
                for (int c = 0; c < NT; c++) {
                    const int8_t *a = ys[c][b].qs + 16 * j;
                    const __m256i p01 = _mm256_add_epi16(_mm256_maddubs_epi16(v[0], bcast4(a)), _mm256_maddubs_epi16(v[1], bcast4(a + 4)));
                    const __m256i p23 = _mm256_add_epi16(_mm256_maddubs_epi16(v[2], bcast4(a + 8)), _mm256_maddubs_epi16(v[3], bcast4(a + 12)));
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(_mm256_madd_epi16(p01, sc), _mm256_madd_epi16(p23, sc)));
                }
            }
            /* the -32 offset: 32 * sum_j scale_j bsum_j */
            __m256i offset[MAX_TILE];
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) offset[c] = _mm256_setzero_si256();
            for (int i = 0; i < 8; i++) {
                const __m256i sc_pairs = q6_K_scale_pairs(xb, i, h);
#pragma GCC unroll 8
                for (int c = 0; c < NT; c++)
                    offset[c] = _mm256_add_epi32(offset[c], _mm256_madd_epi16(sc_pairs, bcast4(ys[c][b].bsums + 2 * i)));
            }
            const __m256 d = load_f16x8(xb->d + 8 * h);
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) {
                const __m256i total = _mm256_sub_epi32(isum[c], _mm256_slli_epi32(offset[c], 5));
                acc[h][c] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(ys[c][b].d)), _mm256_cvtepi32_ps(total), acc[h][c]);
            }
        }
    }
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) _mm256_storeu_ps(s_out[c] + 8 * h, acc[h][c]);
}

/* All 16 rows of one group x one token (decoding): each sub-block's four activation broadcasts
 * feed both 8-row halves, where the tile above takes the halves in two passes. Same speed
 * in-cache (50 GMAC/s on one core); two threads streaming from memory 51-54 -> 54-58 GB/s. */
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
                const __m256i sc = scale_pairs_i8(xb->scales + j * 16 + 8 * h);
                const __m256i p01 = _mm256_add_epi16(_mm256_maddubs_epi16(v[0], a0), _mm256_maddubs_epi16(v[1], a1));
                const __m256i p23 = _mm256_add_epi16(_mm256_maddubs_epi16(v[2], a2), _mm256_maddubs_epi16(v[3], a3));
                isum[h] = _mm256_add_epi32(isum[h], _mm256_add_epi32(_mm256_madd_epi16(p01, sc), _mm256_madd_epi16(p23, sc)));
            }
        }
        const __m256 da = _mm256_set1_ps(yb->d);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i offset = _mm256_setzero_si256(); /* the -32 offset: 32 * sum_j scale_j bsum_j */
            for (int i = 0; i < 8; i++)
                offset = _mm256_add_epi32(offset, _mm256_madd_epi16(q6_K_scale_pairs(xb, i, h), bcast4(yb->bsums + 2 * i)));
            const __m256i total = _mm256_sub_epi32(isum[h], _mm256_slli_epi32(offset, 5));
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
/* One token (decoding): all 16 rows per step (see the rows16 kernels). */
static __attribute__((noinline)) void q4_K_tile_1(int nbc, const void *restrict x, const block_q8_K *const *ys,
                                                  float *const *s_out, int first) {
    q4_K_tile_rows16_one(nbc, (const block_q4_Kx16 *)x, ys[0], s_out[0], first);
}
DEFINE_TILE(q4_K, 2)
DEFINE_TILE(q4_K, 3)
DEFINE_TILE(q4_K, 4)
DEFINE_TILE(q4_K, 5)
DEFINE_TILE(q4_K, 6)
static __attribute__((noinline)) void q6_K_tile_1(int nbc, const void *restrict x, const block_q8_K *const *ys,
                                                  float *const *s_out, int first) {
    q6_K_tile_rows16_one(nbc, (const block_q6_Kx16 *)x, ys[0], s_out[0], first);
}
DEFINE_TILE(q6_K, 2)
DEFINE_TILE(q6_K, 3)
DEFINE_TILE(q6_K, 4)
DEFINE_TILE(q6_K, 5)
DEFINE_TILE(q6_K, 6)
DEFINE_TILE(q6_K, 7)
DEFINE_TILE(q6_K, 8)


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
