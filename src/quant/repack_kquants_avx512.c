/* AVX-512 VNNI kernels of the repacked Q4_K / Q6_K layouts (repack_kquants.h), bit-identical to
 * the scalar references in repack_kquants.c.
 *
 * The 16 int32 lanes of a vector are the 16 rows of a group. One vpdpbusd of 4 unsigned quant
 * bytes per row (Q4_K: nibbles 0..15; Q6_K: 6-bit quants 0..63) with a broadcast 4-byte group of
 * signed activations adds 4 products into each row's lane, exactly (no saturation in vpdpbusd).
 * Each sub-block's int32 sum is multiplied by the row's scale (vpmulld with the zero/sign-extended
 * scale bytes) and summed into the block's int32; the bounds in repack_kquants.c keep all of it
 * exact, so the integers equal the reference's whatever the order. Then per block and token the
 * same float operations as the reference, lane by lane:
 *   dw = d * da (vmulps); acc = fma(dw, (float)isum, acc); Q4_K also dm = dmin * da,
 *   acc = fnma(dm, (float)msum, acc) (= fmaf(-dm, msum, acc)).
 * Q4_K's min term msum = sum_j min_j * asum_j is one vpdpwssd per pair of sub-blocks, with the
 * (min 2i, min 2i+1) int16 pairs of the layout against a broadcast pair of activation sums.
 * Q6_K's -32 offset: each sub-block's accumulator starts at -32 * bsum_j, so after the vpdpbusd
 * it holds sum (q - 32) * a exactly and one multiply by the scale finishes it.
 *
 * Activation-side per-block constants (Q4_K's pairs of sums, Q6_K's -32 * bsums) are computed
 * once per call for a chunk of tokens and blocks into a small stack buffer, not once per group.
 * Weights are unpacked once per step and used for every token of a tile; a float accumulator
 * survives across block chunks by a store to s and a reload (exact), so results do not depend on
 * n_cols, n_groups or chunking. */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__) && \
    defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant/repack_kquants.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Tokens per precomputed chunk, and blocks per chunk (so the stack buffer stays small: Q6_K
 * needs 16 int32 per block and token, 8 * 64 * 16 * 4 = 32 KiB). A group's chunk of weights
 * (at most 64 * 3360 bytes) stays in L2 while the tiles of a token chunk go over it. */
#define TOKEN_CHUNK 8
#define BLOCK_CHUNK 64

/* Broadcast of a 4-byte activation group (the compiler folds it into an embedded broadcast). */
static ALWAYS_INLINE __m512i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

static ALWAYS_INLINE __m512 load_f16x16(const ts_f16 *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* ---------------------------------------------------------------------------------------------- */
/* Q4_K                                                                                              */

/* aux[b * 4 + i] = the int16 pair (asum_{2i}, asum_{2i+1}) of block b, asum_j = bsums[2j] +
 * bsums[2j+1] (|asum| <= 32 * 128 = 4096 fits int16). */
static void q4_K_act_sums(const block_q8_K *y, int nbc, int32_t *aux) {
    for (int b = 0; b < nbc; b++) {
        const int16_t *bs = y[b].bsums;
        for (int i = 0; i < 4; i++) {
            const int32_t lo = bs[4 * i] + bs[4 * i + 1], hi = bs[4 * i + 2] + bs[4 * i + 3];
            aux[b * 4 + i] = (int32_t)(((uint32_t)(uint16_t)lo) | ((uint32_t)(uint16_t)hi << 16));
        }
    }
}

#ifndef Q4_PREFETCH_BYTES
#define Q4_PREFETCH_BYTES 3072
#endif

/* One group, NT tokens, nbc blocks: s_out[c] (16 floats) = acc over these blocks, starting from 0
 * (first) or from what s_out holds. */
static ALWAYS_INLINE void q4_K_tile(const int NT, int nbc, const block_q4_Kx16 *restrict x, const block_q8_K *const *ys,
                                    const int32_t *const *aux, float *const *s_out, int first) {
    const __m512i low_nibbles = _mm512_set1_epi8(0x0F);
    __m512 acc[TOKEN_CHUNK];
#pragma GCC unroll 8
    for (int c = 0; c < NT; c++) acc[c] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(s_out[c]);
    for (int b = 0; b < nbc; b++) {
        const block_q4_Kx16 *xb = &x[b];
        __m512i isum[TOKEN_CHUNK], msum[TOKEN_CHUNK];
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) isum[c] = msum[c] = _mm512_setzero_si512();
        for (int pair = 0; pair < 4; pair++) {
            /* sub-blocks 2*pair (low nibbles) and 2*pair+1 (high nibbles) */
            __m512i lo[TOKEN_CHUNK], hi[TOKEN_CHUNK];
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) lo[c] = hi[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++) {
                const uint8_t *q4 = xb->qs + (pair * 8 + t) * 64;
                _mm_prefetch((const char *)q4 + Q4_PREFETCH_BYTES, _MM_HINT_T0); /* as in Q6_K below */
                const __m512i w = _mm512_loadu_si512(q4);
                const __m512i wl = _mm512_and_si512(w, low_nibbles);
                const __m512i wh = _mm512_and_si512(_mm512_srli_epi16(w, 4), low_nibbles);
#pragma GCC unroll 8
                for (int c = 0; c < NT; c++) {
                    const int8_t *a = ys[c][b].qs + 64 * pair + 4 * t;
                    lo[c] = _mm512_dpbusd_epi32(lo[c], wl, bcast4(a));
                    hi[c] = _mm512_dpbusd_epi32(hi[c], wh, bcast4(a + 32));
                }
            }
            const __m512i sc_lo = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(xb->scales + (2 * pair) * 16)));
            const __m512i sc_hi = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(xb->scales + (2 * pair + 1) * 16)));
            const __m512i mins = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(xb->mins + pair * 32)));
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) {
                isum[c] = _mm512_add_epi32(isum[c], _mm512_add_epi32(_mm512_mullo_epi32(lo[c], sc_lo),
                                                                     _mm512_mullo_epi32(hi[c], sc_hi)));
                msum[c] = _mm512_dpwssd_epi32(msum[c], mins, _mm512_set1_epi32(aux[c][b * 4 + pair]));
            }
        }
        const __m512 d = load_f16x16(xb->d), dmin = load_f16x16(xb->dmin);
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) {
            const __m512 da = _mm512_set1_ps(ys[c][b].d);
            acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(d, da), _mm512_cvtepi32_ps(isum[c]), acc[c]);
            acc[c] = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, da), _mm512_cvtepi32_ps(msum[c]), acc[c]);
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < NT; c++) _mm512_storeu_ps(s_out[c], acc[c]);
}

void ts_gemm_rp_q4_K_avx512(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                            const void *restrict x, const void *restrict y, size_t y_stride) {
    const int nb = n / QK_K;
    int32_t aux[TOKEN_CHUNK][BLOCK_CHUNK * 4];
    for (int c0 = 0; c0 < n_cols; c0 += TOKEN_CHUNK) {
        const int nt = n_cols - c0 < TOKEN_CHUNK ? n_cols - c0 : TOKEN_CHUNK;
        for (int b0 = 0; b0 < nb; b0 += BLOCK_CHUNK) {
            const int nbc = nb - b0 < BLOCK_CHUNK ? nb - b0 : BLOCK_CHUNK;
            const block_q8_K *ys[TOKEN_CHUNK];
            const int32_t *auxp[TOKEN_CHUNK];
            for (int c = 0; c < nt; c++) {
                ys[c] = (const block_q8_K *)((const char *)y + (size_t)(c0 + c) * y_stride) + b0;
                q4_K_act_sums(ys[c], nbc, aux[c]);
                auxp[c] = aux[c];
            }
            for (int g = 0; g < n_groups; g++) {
                const block_q4_Kx16 *xg = (const block_q4_Kx16 *)x + (size_t)g * nb + b0;
                float *so[TOKEN_CHUNK];
                for (int c = 0; c < nt; c++) so[c] = s + (size_t)(c0 + c) * s_stride + (size_t)g * TS_REPACK_ROWS;
                int c = 0;
                for (; c + 4 <= nt; c += 4) q4_K_tile(4, nbc, xg, ys + c, auxp + c, so + c, b0 == 0);
                switch (nt - c) {
                case 3: q4_K_tile(3, nbc, xg, ys + c, auxp + c, so + c, b0 == 0); break;
                case 2: q4_K_tile(2, nbc, xg, ys + c, auxp + c, so + c, b0 == 0); break;
                case 1: q4_K_tile(1, nbc, xg, ys + c, auxp + c, so + c, b0 == 0); break;
                default: break;
                }
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Q6_K                                                                                              */

/* aux[b * 16 + j] = -32 * bsums[j] of block b: the start of sub-block j's accumulator. */
static void q6_K_act_offsets(const block_q8_K *y, int nbc, int32_t *aux) {
    for (int b = 0; b < nbc; b++)
        for (int j = 0; j < 16; j++) aux[b * 16 + j] = -32 * (int32_t)y[b].bsums[j];
}

#ifndef Q6_PREFETCH_BYTES
#define Q6_PREFETCH_BYTES 3072
#endif

static ALWAYS_INLINE void q6_K_tile(const int NT, int nbc, const block_q6_Kx16 *restrict x, const block_q8_K *const *ys,
                                    const int32_t *const *aux, float *const *s_out, int first) {
    const __m512i m0f = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    __m512 acc[TOKEN_CHUNK];
#pragma GCC unroll 8
    for (int c = 0; c < NT; c++) acc[c] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(s_out[c]);
    for (int b = 0; b < nbc; b++) {
        const block_q6_Kx16 *xb = &x[b];
        __m512i isum[TOKEN_CHUNK];
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) isum[c] = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int j = 0; j < 16; j++) {
            /* Software prefetch Q6_PREFETCH_BYTES ahead, one step (3 lines) per step: the hardware
             * prefetcher alone left this loop well below memory speed. */
            const uint8_t *q6 = xb->qs + j * 192;
            _mm_prefetch((const char *)q6 + Q6_PREFETCH_BYTES, _MM_HINT_T0);
            _mm_prefetch((const char *)q6 + Q6_PREFETCH_BYTES + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)q6 + Q6_PREFETCH_BYTES + 128, _MM_HINT_T0);
            const __m512i ql_a = _mm512_loadu_si512(q6);
            const __m512i ql_b = _mm512_loadu_si512(q6 + 64);
            const __m512i qh = _mm512_loadu_si512(q6 + 128);
            /* quant = (low nibble) | (its 2-bit field moved to bits 4-5): h* are masked to bits 4-5,
             * then ternarylogic 0xD8 = (C & B) | (~C & A) with A = h*, C = 0x0F takes bits 0-3 from
             * the nibble source B (its other bits are garbage and dropped) and the rest from h*. */
            const __m512i h0 = _mm512_and_si512(_mm512_slli_epi16(qh, 4), m30);
            const __m512i h1 = _mm512_and_si512(_mm512_slli_epi16(qh, 2), m30);
            const __m512i h2 = _mm512_and_si512(qh, m30);
            const __m512i h3 = _mm512_and_si512(_mm512_srli_epi16(qh, 2), m30);
            const __m512i v0 = _mm512_ternarylogic_epi32(h0, ql_a, m0f, 0xD8);
            const __m512i v1 = _mm512_ternarylogic_epi32(h1, ql_b, m0f, 0xD8);
            const __m512i v2 = _mm512_ternarylogic_epi32(h2, _mm512_srli_epi16(ql_a, 4), m0f, 0xD8);
            const __m512i v3 = _mm512_ternarylogic_epi32(h3, _mm512_srli_epi16(ql_b, 4), m0f, 0xD8);
            const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(xb->scales + j * 16)));
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) {
                const int8_t *a = ys[c][b].qs + 16 * j;
                __m512i sub = _mm512_set1_epi32(aux[c][b * 16 + j]);
                sub = _mm512_dpbusd_epi32(sub, v0, bcast4(a));
                sub = _mm512_dpbusd_epi32(sub, v1, bcast4(a + 4));
                sub = _mm512_dpbusd_epi32(sub, v2, bcast4(a + 8));
                sub = _mm512_dpbusd_epi32(sub, v3, bcast4(a + 12));
                isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(sub, sc));
            }
        }
        const __m512 d = load_f16x16(xb->d);
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) {
            const __m512 da = _mm512_set1_ps(ys[c][b].d);
            acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(d, da), _mm512_cvtepi32_ps(isum[c]), acc[c]);
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < NT; c++) _mm512_storeu_ps(s_out[c], acc[c]);
}

void ts_gemm_rp_q6_K_avx512(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                            const void *restrict x, const void *restrict y, size_t y_stride) {
    const int nb = n / QK_K;
    int32_t aux[TOKEN_CHUNK][BLOCK_CHUNK * 16];
    for (int c0 = 0; c0 < n_cols; c0 += TOKEN_CHUNK) {
        const int nt = n_cols - c0 < TOKEN_CHUNK ? n_cols - c0 : TOKEN_CHUNK;
        for (int b0 = 0; b0 < nb; b0 += BLOCK_CHUNK) {
            const int nbc = nb - b0 < BLOCK_CHUNK ? nb - b0 : BLOCK_CHUNK;
            const block_q8_K *ys[TOKEN_CHUNK];
            const int32_t *auxp[TOKEN_CHUNK];
            for (int c = 0; c < nt; c++) {
                ys[c] = (const block_q8_K *)((const char *)y + (size_t)(c0 + c) * y_stride) + b0;
                q6_K_act_offsets(ys[c], nbc, aux[c]);
                auxp[c] = aux[c];
            }
            for (int g = 0; g < n_groups; g++) {
                const block_q6_Kx16 *xg = (const block_q6_Kx16 *)x + (size_t)g * nb + b0;
                float *so[TOKEN_CHUNK];
                for (int c = 0; c < nt; c++) so[c] = s + (size_t)(c0 + c) * s_stride + (size_t)g * TS_REPACK_ROWS;
                int c = 0;
                for (; c + 4 <= nt; c += 4) q6_K_tile(4, nbc, xg, ys + c, auxp + c, so + c, b0 == 0);
                switch (nt - c) {
                case 3: q6_K_tile(3, nbc, xg, ys + c, auxp + c, so + c, b0 == 0); break;
                case 2: q6_K_tile(2, nbc, xg, ys + c, auxp + c, so + c, b0 == 0); break;
                case 1: q6_K_tile(1, nbc, xg, ys + c, auxp + c, so + c, b0 == 0); break;
                default: break;
                }
            }
        }
    }
}

#endif
