/* The Q4_K and Q6_K tiles of the 256-bit x86 kernel sets (repack_kquants_avx2.c,
 * repack_kquants_avxvnni.c), written once: the walk over blocks, row halves, sub-blocks and
 * tokens, the prefetches, Q4_K's min term, Q6_K's -32 offset and the float epilogue are the same in
 * both; what differs is how 4-byte weight groups meet broadcast activations (vpmaddubsw into int16
 * sums widened by vpmaddwd with the scales, or vpdpbusd into int32 multiplied by the scales), and
 * each file supplies that as five functions defined before it includes this one:
 *
 *   __m256i q4_K_acc(__m256i sum, __m256i w, __m256i a): sum plus the products of the nibbles w
 *                  (4 per row lane) with the broadcast activation group a, in the file's
 *                  accumulator form (int16 pair sums or int32);
 *   __m256i q4_K_scales(const uint8_t *p): the 8 scale bytes at p (rows 8h..8h+7) in the form
 *                  q4_K_scaled takes;
 *   __m256i q4_K_scaled(__m256i sum, __m256i sc): a sub-block's 8-step sum times the rows' scales,
 *                  as int32 lanes;
 *   __m256i q6_K_scales(const int8_t *p): the same for Q6_K's 8 signed scale bytes;
 *   __m256i q6_K_products(const __m256i v[4], const __m256i a[4], __m256i sc): per row lane,
 *                  scale * sum over the sub-block's 16 products of the unsigned 6-bit quants v
 *                  (q6_K_unpack) with the broadcast activation groups a.
 *
 * Each file's top comment gives its bounds; the results are the scalar reference's bits. A 16-row
 * group is two halves of 8 rows: wide tiles take the halves in two passes per block (so that the
 * second pass finds the block in L1), one-token tiles (decoding) both per step, so that each
 * activation broadcast feeds both and the weights stream through once. Accumulators start at 0
 * (first) or from s_out and are stored back after the pass over the chunk (exact). Code for files
 * compiled with at least -mavx2 -mfma -mf16c, after repack_kquants_x86.h. */
#ifndef TS_QUANT_REPACK_KQUANTS_X86_TILES_H
#define TS_QUANT_REPACK_KQUANTS_X86_TILES_H

#include "quant/repack_kquants_x86.h"

/* An empty asm that "changes" x: the compiler cannot regroup additions around it (integer
 * addition being associative, GCC otherwise turns a run of "sum += product" into a tree that keeps
 * every product live and spills: Q4_K AVX2, 4 tokens, in-cache on one core, 103 GMAC/s as a tree
 * with the step loop unrolled twice, 120 chained and unrolled eight times), or keep a loaded weight
 * step out of a register (one load per step: +0.9 % on qwen7b pp512 with the AVX2 tiles). */
#define KQ_KEEP(x) __asm__("" : "+x"(x))

/* The 16 float accumulators of a group (two 8-row halves) for each of NT tokens: 0 on a chunk's
 * first pass, else what s_out holds; stored back after the pass (exact). */
static KQ_INLINE void kq_acc_load(const int NT, float *const *s_out, int first, __m256 acc[][KQ_MAX_TILE]) {
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) acc[h][c] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(s_out[c] + 8 * h);
}
static KQ_INLINE void kq_acc_store(const int NT, float *const *s_out, __m256 acc[][KQ_MAX_TILE]) {
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) _mm256_storeu_ps(s_out[c] + 8 * h, acc[h][c]);
}

/* Q4_K, rows 8h..8h+7 x NT tokens: adds scale_j * S_j of sub-blocks j = 2 pair (low nibbles) and
 * 2 pair + 1 (high) to isum[c]; the 8 steps' sums chained through KQ_KEEP. */
static KQ_INLINE void q4_K_pair(const int NT, const block_q4_Kx16 *xb, const block_q8_K *const *ys, int b, int pair, int h,
                                __m256i *isum) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256i lo[KQ_MAX_TILE], hi[KQ_MAX_TILE];
#pragma GCC unroll 8
    for (int c = 0; c < NT; c++) lo[c] = hi[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) {
        const uint8_t *q4 = xb->qs + (pair * 8 + t) * 64;
        if (h == 0) _mm_prefetch((const char *)q4 + RP_AVX2_PREFETCH_BYTES, _MM_HINT_T0);
        __m256i w = _mm256_loadu_si256((const __m256i *)(q4 + 32 * h));
        KQ_KEEP(w);
        const __m256i wl = _mm256_and_si256(w, low4);
        const __m256i wh = _mm256_and_si256(_mm256_srli_epi16(w, 4), low4);
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) {
            const int8_t *a = ys[c][b].qs + 64 * pair + 4 * t;
            lo[c] = q4_K_acc(lo[c], wl, bcast4(a));
            hi[c] = q4_K_acc(hi[c], wh, bcast4(a + 32));
            KQ_KEEP(lo[c]);
            KQ_KEEP(hi[c]);
        }
    }
    const __m256i sc_lo = q4_K_scales(xb->scales + (2 * pair) * 16 + 8 * h);
    const __m256i sc_hi = q4_K_scales(xb->scales + (2 * pair + 1) * 16 + 8 * h);
#pragma GCC unroll 8
    for (int c = 0; c < NT; c++) isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(q4_K_scaled(lo[c], sc_lo), q4_K_scaled(hi[c], sc_hi)));
}

/* Q4_K, all 16 rows x one token (decoding): per step the two 8-row halves' nibbles and one
 * activation broadcast per nibble half feeding both row halves (four independent chains), where
 * the wide tiles take the halves in two passes with a broadcast each. AVX2, against the two-pass
 * tile at one token: in-cache on one core 86-90 -> 91-97 GMAC/s; two threads streaming 512 MB of
 * 2048 x 1408 matrices 52-56 -> 65-70 GB/s, the speed of a plain read of the same bytes. */
static KQ_INLINE void q4_K_pair16(const block_q4_Kx16 *xb, const block_q8_K *yb, int pair, __m256i isum[2]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256i lo[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()}, hi[2] = {lo[0], lo[0]};
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) {
        const uint8_t *q4 = xb->qs + (pair * 8 + t) * 64;
        const int8_t *a = yb->qs + 64 * pair + 4 * t;
        const __m256i a_lo = bcast4(a), a_hi = bcast4(a + 32);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(q4 + 32 * h));
            lo[h] = q4_K_acc(lo[h], _mm256_and_si256(v, low4), a_lo);
            hi[h] = q4_K_acc(hi[h], _mm256_and_si256(_mm256_srli_epi16(v, 4), low4), a_hi);
            KQ_KEEP(lo[h]);
            KQ_KEEP(hi[h]);
        }
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const uint8_t *sc = xb->scales + (2 * pair) * 16 + 8 * h;
        isum[h] = _mm256_add_epi32(isum[h], _mm256_add_epi32(q4_K_scaled(lo[h], q4_K_scales(sc)), q4_K_scaled(hi[h], q4_K_scales(sc + 16))));
    }
}

/* (asum_2i, asum_2i+1) int16 pairs, i = 0..3, of one token's block: hadd of the 16 bsums. */
static KQ_INLINE void q4_K_asum_pairs(const block_q8_K *yb, int32_t out[4]) {
    _mm_storeu_si128((__m128i *)out, _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)yb->bsums),
                                                    _mm_loadu_si128((const __m128i *)(yb->bsums + 8))));
}

/* Q4_K's min terms of half h for NT tokens: msum[c] = sum_j min_j asum_j, one vpmaddwd per pair of
 * sub-blocks with the layout's (min 2i, min 2i+1) int16 pairs. */
static KQ_INLINE void q4_K_min_terms(const int NT, const block_q4_Kx16 *xb, int h, const int32_t (*asum_pairs)[4], __m256i *msum) {
#pragma GCC unroll 8
    for (int c = 0; c < NT; c++) msum[c] = _mm256_setzero_si256();
    for (int pair = 0; pair < 4; pair++) {
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(xb->mins + pair * 32 + 16 * h)));
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) msum[c] = _mm256_add_epi32(msum[c], _mm256_madd_epi16(mins, _mm256_set1_epi32(asum_pairs[c][pair])));
    }
}

/* The reference's float epilogue of one block, half and token. */
static KQ_INLINE __m256 q4_K_epilogue(const block_q4_Kx16 *xb, int h, float da_scalar, __m256i isum, __m256i msum, __m256 acc) {
    const __m256 da = _mm256_set1_ps(da_scalar);
    acc = _mm256_fmadd_ps(_mm256_mul_ps(load_f16x8(xb->d + 8 * h), da), _mm256_cvtepi32_ps(isum), acc);
    return _mm256_fnmadd_ps(_mm256_mul_ps(load_f16x8(xb->dmin + 8 * h), da), _mm256_cvtepi32_ps(msum), acc);
}

/* One Q4_K group x NT tokens over nbc blocks. */
static KQ_INLINE void q4_K_tile(const int NT, int nbc, const block_q4_Kx16 *restrict x, const block_q8_K *const *ys,
                                float *const *s_out, int first) {
    __m256 acc[2][KQ_MAX_TILE];
    kq_acc_load(NT, s_out, first, acc);
    for (int b = 0; b < nbc; b++) {
        const block_q4_Kx16 *xb = &x[b];
        int32_t asum_pairs[KQ_MAX_TILE][4];
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) q4_K_asum_pairs(&ys[c][b], asum_pairs[c]);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i isum[KQ_MAX_TILE];
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) isum[c] = _mm256_setzero_si256();
            for (int pair = 0; pair < 4; pair++) q4_K_pair(NT, xb, ys, b, pair, h, isum);
            /* after the products, so that msum does not hold registers during them */
            __m256i msum[KQ_MAX_TILE];
            q4_K_min_terms(NT, xb, h, (const int32_t(*)[4])asum_pairs, msum);
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) acc[h][c] = q4_K_epilogue(xb, h, ys[c][b].d, isum[c], msum[c], acc[h][c]);
        }
    }
    kq_acc_store(NT, s_out, acc);
}

/* All 16 rows of one Q4_K block x one token (decoding), into acc[h][0]. */
static KQ_INLINE void q4_K_block16_one(const block_q4_Kx16 *xb, const block_q8_K *yb, __m256 acc[][KQ_MAX_TILE]) {
    __m256i isum[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    for (int pair = 0; pair < 4; pair++) q4_K_pair16(xb, yb, pair, isum);
    int32_t asum_pairs[1][4];
    q4_K_asum_pairs(yb, asum_pairs[0]);
    for (int h = 0; h < 2; h++) {
        __m256i msum;
        q4_K_min_terms(1, xb, h, (const int32_t(*)[4])asum_pairs, &msum);
        acc[h][0] = q4_K_epilogue(xb, h, yb->d, isum[h], msum, acc[h][0]);
    }
}

/* Q6_K's -32 offset of half h for one token: 32 * sum_j scale_j bsum_j (vpmaddwd of scale pairs). */
static KQ_INLINE __m256i q6_K_offset(const block_q6_Kx16 *xb, int h, const block_q8_K *yb) {
    __m256i offset = _mm256_setzero_si256();
    for (int i = 0; i < 8; i++)
        offset = _mm256_add_epi32(offset, _mm256_madd_epi16(q6_K_scale_pairs(xb, i, h), bcast4(yb->bsums + 2 * i)));
    return _mm256_slli_epi32(offset, 5);
}

static KQ_INLINE void q6_K_bcast4x4(const int8_t *a, __m256i out[4]) {
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) out[i] = bcast4(a + 4 * i);
}

/* One Q6_K group x NT tokens over nbc blocks. */
static KQ_INLINE void q6_K_tile(const int NT, int nbc, const block_q6_Kx16 *restrict x, const block_q8_K *const *ys,
                                float *const *s_out, int first) {
    const __m256i m0f = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[2][KQ_MAX_TILE];
    kq_acc_load(NT, s_out, first, acc);
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
                const __m256i sc = q6_K_scales(xb->scales + j * 16 + 8 * h);
#pragma GCC unroll 8
                for (int c = 0; c < NT; c++) {
                    __m256i a[4];
                    q6_K_bcast4x4(ys[c][b].qs + 16 * j, a);
                    isum[c] = _mm256_add_epi32(isum[c], q6_K_products(v, a, sc));
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
    kq_acc_store(NT, s_out, acc);
}

/* All 16 rows of N_X (1 or 2) Q6_K blocks x one token (decoding), block g into acc[g][h][0]: each
 * sub-block's four activation broadcasts feed both halves of every block, and the blocks go step by
 * step, so the core has their independent products at once. */
static KQ_INLINE void q6_K_blocks16_one(const int N_X, const block_q6_Kx16 *const *xs, const block_q8_K *yb,
                                        __m256 acc[][2][KQ_MAX_TILE]) {
    const __m256i m0f = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256i isum[2][2];
    for (int g = 0; g < N_X; g++) isum[g][0] = isum[g][1] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int j = 0; j < 16; j++) {
        __m256i a[4];
        q6_K_bcast4x4(yb->qs + 16 * j, a);
#pragma GCC unroll 2
        for (int g = 0; g < N_X; g++) {
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m256i v[4];
                q6_K_unpack(xs[g]->qs + j * 192, h, m0f, m30, v);
                isum[g][h] = _mm256_add_epi32(isum[g][h], q6_K_products(v, a, q6_K_scales(xs[g]->scales + j * 16 + 8 * h)));
            }
        }
    }
    const __m256 da = _mm256_set1_ps(yb->d);
    for (int g = 0; g < N_X; g++)
        for (int h = 0; h < 2; h++) {
            const __m256i total = _mm256_sub_epi32(isum[g][h], q6_K_offset(xs[g], h, yb));
            acc[g][h][0] = _mm256_fmadd_ps(_mm256_mul_ps(load_f16x8(xs[g]->d + 8 * h), da), _mm256_cvtepi32_ps(total), acc[g][h][0]);
        }
}

/* Q4_K's blocks in turn (stepping them together measured no faster there). */
static KQ_INLINE void q4_K_blocks16_one(const int N_X, const block_q4_Kx16 *const *xs, const block_q8_K *yb,
                                        __m256 acc[][2][KQ_MAX_TILE]) {
    for (int g = 0; g < N_X; g++) q4_K_block16_one(xs[g], yb, acc[g]);
}

/* One token against N_X (1 or 2) groups x[g] over nbc blocks, the groups' blocks in turn: with two,
 * the groups come from the two halves of a thread's share (kq_gemm), so that the thread streams two
 * places at once, which one core reads faster than one sequential stream (BENCHMARKS.md, "Two
 * streams per thread"). */
#define KQ_DEFINE_ONE_TOKEN(t)                                                                                  \
    static KQ_INLINE void t##_tile_rows16_one(const int N_X, int nbc, const block_##t##x16 *const *x,            \
                                              const block_q8_K *restrict y, float *const *s_out, int first) {   \
        __m256 acc[2][2][KQ_MAX_TILE];                                                                          \
        for (int g = 0; g < N_X; g++) kq_acc_load(1, &s_out[g], first, acc[g]);                                 \
        for (int b = 0; b < nbc; b++) {                                                                         \
            act_prefetch(y, nbc, b);                                                                            \
            const block_##t##x16 *xb[2] = {&x[0][b], N_X > 1 ? &x[1][b] : NULL};                               \
            t##_blocks16_one(N_X, xb, &y[b], acc);                                                              \
        }                                                                                                       \
        for (int g = 0; g < N_X; g++) kq_acc_store(1, &s_out[g], acc[g]);                                        \
    }
KQ_DEFINE_ONE_TOKEN(q4_K)
KQ_DEFINE_ONE_TOKEN(q6_K)

/* One out-of-line function per (type, tile width), each unrolled with its own registers:
 * t_tile_NT for NT >= 2 tokens, t_tile_1 (one token, decoding) on the 16-row tiles. */
#define KQ_DEFINE_TILE(t, NT)                                                                                  \
    static __attribute__((noinline)) void t##_tile_##NT(int nbc, const void *restrict x, const block_q8_K *const *ys, \
                                                        float *const *s_out, int first) {                      \
        t##_tile(NT, nbc, (const block_##t##x16 *)x, ys, s_out, first);                                        \
    }
#define KQ_DEFINE_TILE_ONE(t)                                                                                  \
    static __attribute__((noinline)) void t##_tile_1(int nbc, const void *restrict x, const block_q8_K *const *ys, \
                                                     float *const *s_out, int first) {                         \
        const block_##t##x16 *xs[1] = {(const block_##t##x16 *)x};                                            \
        t##_tile_rows16_one(1, nbc, xs, ys[0], s_out, first);                                                  \
    }                                                                                                          \
    static __attribute__((noinline)) void t##_tile_1_dual(int nbc, const void *xa, const void *xb,             \
                                                          const block_q8_K *y, float *const *s_out, int first) { \
        const block_##t##x16 *xs[2] = {(const block_##t##x16 *)xa, (const block_##t##x16 *)xb};               \
        t##_tile_rows16_one(2, nbc, xs, y, s_out, first);                                                      \
    }

#endif
