/* What the AVX2 and AVX-VNNI kernels of the repacked Q4_K / Q6_K layouts (repack_kquants_avx2.c,
 * repack_kquants_avxvnni.c) share: loads and unpacking of the layout in 256-bit halves of 8 rows,
 * and the driver that walks block chunks, groups and token tiles. AVX2 code: included only by files
 * compiled with at least -mavx2 -mfma -mf16c. */
#ifndef TS_QUANT_REPACK_KQUANTS_X86_H
#define TS_QUANT_REPACK_KQUANTS_X86_H

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant/repack_kquants.h"

#define KQ_INLINE inline __attribute__((always_inline))
/* The widest token tile of any of these kernel sets. */
#define KQ_MAX_TILE 8
/* Blocks per pass over a group: its weights (at most 64 * 3360 bytes) stay in L2 while the tiles of
 * a batch go over them. */
#define KQ_BLOCK_CHUNK 64
/* Software prefetch distance (bytes ahead in the group's weights), issued once per 64-byte line by
 * the tiles of two or more tokens. The one-token tiles of decoding issue none: each thread streams
 * its contiguous share of a matrix in order, which the hardware prefetcher follows, and these
 * prefetches took fill buffers from it — R1-Distill-Qwen-1.5B q4_K_M decoding with these kernels,
 * two threads: 43.5-45.2 against 45.7-48.1 t/s in the host's fast-memory minutes (4 of 4 pairs),
 * the same in the slow ones (32.0-34.9 against 32.4-33.5); one thread streaming 1536 x 8960 Q4_K
 * from memory 22.9-23.5 -> 27.9-28.9 GB/s. */
#ifndef RP_AVX2_PREFETCH_BYTES
#define RP_AVX2_PREFETCH_BYTES 2048
#endif

/* Broadcast of a 4-byte activation group (a vpbroadcastd from memory). */
static KQ_INLINE __m256i bcast4(const void *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

/* 8 unsigned / signed scale bytes (rows 8h..8h+7) as 8 int32 lanes holding the scale in both int16
 * slots, so that one vpmaddwd multiplies both pair sums of a lane by it and adds them. */
static KQ_INLINE __m256i scale_pairs_u8(const uint8_t *p) {
    const __m128i s = _mm_loadl_epi64((const __m128i *)p);
    return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(s, s));
}
static KQ_INLINE __m256i scale_pairs_i8(const int8_t *p) {
    const __m128i s = _mm_loadl_epi64((const __m128i *)p);
    return _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(s, s));
}

/* The next block's activations (after a group's last block, the first: the next group starts
 * over), for the one-token kernels: a group of a long row streams more weights than L1 holds
 * between two uses of a block's activations (see repack_kquants_avx512.c). One thread streaming
 * 8960 x 1536 from memory: Q4_K 18.1-19.0 -> 20.2-20.4 GB/s, Q6_K 19.9-20.3 -> 20.4-20.6. */
static KQ_INLINE void act_prefetch(const block_q8_K *y, int nbc, int b) {
    const char *p = (const char *)&y[b + 1 < nbc ? b + 1 : 0];
    for (size_t off = 0; off < sizeof(block_q8_K); off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
    _mm_prefetch(p + sizeof(block_q8_K) - 1, _MM_HINT_T0);
}

static KQ_INLINE __m256 load_f16x8(const ts_f16 *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }


/* The 6-bit quants of sub-block j's half h (8 rows x 16 values): v[i] holds values 4i..4i+3 of
 * each row, quant = nibble | (bits 2i..2i+1 of qh) << 4. The 16-bit shifts move bits across bytes,
 * but only bits that the masks then drop. */
static KQ_INLINE void q6_K_unpack(const uint8_t *q6, int h, __m256i m0f, __m256i m30, __m256i v[4]) {
    const __m256i ql_a = _mm256_loadu_si256((const __m256i *)(q6 + 32 * h));
    const __m256i ql_b = _mm256_loadu_si256((const __m256i *)(q6 + 64 + 32 * h));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(q6 + 128 + 32 * h));
    v[0] = _mm256_or_si256(_mm256_and_si256(ql_a, m0f), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
    v[1] = _mm256_or_si256(_mm256_and_si256(ql_b, m0f), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
    v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql_a, 4), m0f), _mm256_and_si256(qh, m30));
    v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql_b, 4), m0f), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
}

/* For the -32 offset (sum_j scale_j bsum_j, one vpmaddwd per pair of sub-blocks): the scales of
 * sub-blocks 2i and 2i+1 of half h as (scale_2i, scale_2i+1) int16 pairs, one per row. */
static KQ_INLINE __m256i q6_K_scale_pairs(const block_q6_Kx16 *xb, int i, int h) {
    const __m128i s0 = _mm_loadl_epi64((const __m128i *)(xb->scales + (2 * i) * 16 + 8 * h));
    const __m128i s1 = _mm_loadl_epi64((const __m128i *)(xb->scales + (2 * i + 1) * 16 + 8 * h));
    return _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(s0, s1));
}


/* One group x nt tokens over nbc blocks of a chunk: s_out[c][0..15] = the accumulated products,
 * starting from 0 (first) or from what s_out holds. */
typedef void (*kq_tile_fn)(int nbc, const void *restrict x, const block_q8_K *const *ys, float *const *s_out, int first);

/* One token against two groups xa and xb (s_out[0], s_out[1]), their blocks in turn. */
typedef void (*kq_dual_fn)(int nbc, const void *xa, const void *xb, const block_q8_K *y, float *const *s_out, int first);

/* The whole product of ts_gemm_repacked_fn with an ISA's tiles: tiles[nt - 1] takes nt tokens,
 * nt <= max_tile <= KQ_MAX_TILE; one token (decode) with `pairs` goes through dual, the groups of
 * the call (a thread's share) in pairs (g, g + half) and an odd one alone, so that the thread
 * streams two places of its share at once; without, one group after the other (repack.c says
 * which CPUs take which). */
static inline void kq_gemm(const kq_tile_fn *tiles, kq_dual_fn dual, bool pairs, int max_tile, size_t block_bytes, int n, int n_groups,
                           int n_cols, float *restrict s, size_t s_stride, const void *restrict x, const void *restrict y,
                           size_t y_stride) {
    const int nb = n / QK_K;
    if (nb <= 0) { /* empty dot products are 0, as in the reference */
        for (int c = 0; c < n_cols; c++)
            for (int i = 0; i < n_groups * TS_REPACK_ROWS; i++) s[(size_t)c * s_stride + (size_t)i] = 0.0f;
        return;
    }
    if (n_cols == 1) ts_rp_prefetch_stream_starts(x, (size_t)nb * block_bytes, pairs ? n_groups : 1);
    for (int b0 = 0; b0 < nb; b0 += KQ_BLOCK_CHUNK) {
        const int nbc = nb - b0 < KQ_BLOCK_CHUNK ? nb - b0 : KQ_BLOCK_CHUNK;
        int g_begin = 0;
        if (n_cols == 1 && pairs && n_groups >= 2) {
            const int half = n_groups / 2, odd = n_groups & 1;
            for (int g = 0; g < half; g++) {
                const int g2 = g + half + odd;
                float *so[2] = {s + (size_t)g * TS_REPACK_ROWS, s + (size_t)g2 * TS_REPACK_ROWS};
                dual(nbc, (const uint8_t *)x + ((size_t)g * (size_t)nb + (size_t)b0) * block_bytes,
                     (const uint8_t *)x + ((size_t)g2 * (size_t)nb + (size_t)b0) * block_bytes,
                     (const block_q8_K *)y + b0, so, b0 == 0);
            }
            if (!odd) continue;
            g_begin = half; /* the odd group, alone */
        }
        for (int g = g_begin; g < (g_begin ? g_begin + 1 : n_groups); g++) {
            const uint8_t *xg = (const uint8_t *)x + ((size_t)g * (size_t)nb + (size_t)b0) * block_bytes;
            for (int c0 = 0; c0 < n_cols; c0 += max_tile) {
                const int nt = n_cols - c0 < max_tile ? n_cols - c0 : max_tile;
                const block_q8_K *ys[KQ_MAX_TILE];
                float *so[KQ_MAX_TILE];
                for (int c = 0; c < nt; c++) {
                    ys[c] = (const block_q8_K *)((const char *)y + (size_t)(c0 + c) * y_stride) + b0;
                    so[c] = s + (size_t)(c0 + c) * s_stride + (size_t)g * TS_REPACK_ROWS;
                }
                tiles[nt - 1](nbc, xg, ys, so, b0 == 0);
            }
        }
    }
}

#endif
