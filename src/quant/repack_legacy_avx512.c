/* AVX-512 VNNI kernels of the repacked Q4_0x16 / Q8_0x16 layouts (repack_legacy.h). Compiled with
 * -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma -mf16c and reached only through the
 * AVX512 repack table after a CPU check. Scalar reference: repack_legacy.c; results are
 * bit-identical to it.
 *
 * The 16 int32 lanes of a zmm are the 16 rows of a group. For each 4-value step of a block, one
 * vpdpbusd multiplies the unsigned stored weights (nibble, or q+128) of 16 rows by the token's 4
 * activation bytes broadcast to all lanes, accumulating exactly into int32 (GCC emits a separate
 * vpbroadcastd load rather than an embedded broadcast; forcing the latter with asm measured no
 * faster: with weights in cache the kernel runs at the vpdpbusd throughput).
 * The offset (8 or 128 times the activation block sum) is removed by starting the accumulator at
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
#include <string.h>

#include "quant/repack_legacy.h"
#include "quant/repack_legacy_act.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

#define MAX_TILE 8 /* tokens per unpacked weight block: 8 weight + 8 accumulator registers */
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
static ALWAYS_INLINE void tile(int is_q4, int C, int nbc, const void *restrict w, const block_q8_0 *const *a,
                               const act_const *k, float *restrict s, size_t s_stride, int first_pass) {
    __m512 acc[MAX_TILE];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) acc[c] = first_pass ? _mm512_setzero_ps() : _mm512_loadu_ps(s + (size_t)c * s_stride);
    for (int b = 0; b < nbc; b++) {
        __m512i wq[8];
        __m512 dw;
        if (C >= PREFETCH_MIN_TILE) {
            const size_t bb = is_q4 ? sizeof(block_q4_0x16) : sizeof(block_q8_0x16);
            const uintptr_t ahead = (uintptr_t)w + (size_t)b * bb + PREFETCH_BYTES;
            for (size_t off = 0; off < bb; off += 64) _mm_prefetch((const char *)(ahead + off), _MM_HINT_T0);
        }
        if (is_q4) {
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
                /* Register t holds values 4t..4t+3 of the block in both types (Q4_0: t < 4 the low
                 * nibbles, t >= 4 the high nibbles = values 16 + 4(t-4)), so its activation bytes
                 * start at 4t. */
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

/* One out-of-line function per (type, tile width): each gets its own fully unrolled code with the
 * accumulators in registers (a shared inlined body lets the compiler merge the cases into one loop
 * over a variable width). */
#define DEFINE_TILE(name, is_q4, C)                                                                      \
    static __attribute__((noinline)) void name(int nbc, const void *restrict w, const block_q8_0 *const *a, \
                                               const act_const *k, float *restrict s, size_t s_stride,  \
                                               int first_pass) {                                         \
        tile(is_q4, C, nbc, w, a, k, s, s_stride, first_pass);                                          \
    }
DEFINE_TILE(tile_q4_0_1, 1, 1)
DEFINE_TILE(tile_q4_0_2, 1, 2)
DEFINE_TILE(tile_q4_0_3, 1, 3)
DEFINE_TILE(tile_q4_0_4, 1, 4)
DEFINE_TILE(tile_q4_0_5, 1, 5)
DEFINE_TILE(tile_q4_0_6, 1, 6)
DEFINE_TILE(tile_q4_0_7, 1, 7)
DEFINE_TILE(tile_q4_0_8, 1, 8)
DEFINE_TILE(tile_q8_0_1, 0, 1)
DEFINE_TILE(tile_q8_0_2, 0, 2)
DEFINE_TILE(tile_q8_0_3, 0, 3)
DEFINE_TILE(tile_q8_0_4, 0, 4)
DEFINE_TILE(tile_q8_0_5, 0, 5)
DEFINE_TILE(tile_q8_0_6, 0, 6)
DEFINE_TILE(tile_q8_0_7, 0, 7)
DEFINE_TILE(tile_q8_0_8, 0, 8)

static const legacy_tile_fn tiles_q4[MAX_TILE] = {tile_q4_0_1, tile_q4_0_2, tile_q4_0_3, tile_q4_0_4,
                                                  tile_q4_0_5, tile_q4_0_6, tile_q4_0_7, tile_q4_0_8};
static const legacy_tile_fn tiles_q8[MAX_TILE] = {tile_q8_0_1, tile_q8_0_2, tile_q8_0_3, tile_q8_0_4,
                                                  tile_q8_0_5, tile_q8_0_6, tile_q8_0_7, tile_q8_0_8};
_Static_assert(MAX_TILE <= LEGACY_MAX_TILE, "tile wider than the shared driver's");

void ts_gemm_rp_q4_0_avx512(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                            const void *restrict x, const void *restrict y, size_t y_stride) {
    legacy_rp_gemm(1, tiles_q4, MAX_TILE, n, n_groups, n_cols, s, s_stride, x, y, y_stride);
}

void ts_gemm_rp_q8_0_avx512(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                            const void *restrict x, const void *restrict y, size_t y_stride) {
    legacy_rp_gemm(0, tiles_q8, MAX_TILE, n, n_groups, n_cols, s, s_stride, x, y, y_stride);
}

#endif
