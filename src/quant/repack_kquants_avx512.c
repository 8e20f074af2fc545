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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant/repack_kquants.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Tokens per tile, tokens per chunk (one or two tiles), and the activation buffer's size in
 * (token, block) records (ACT_SLOTS * 384 bytes = 120 KiB of stack): a chunk of nt tokens takes
 * ACT_SLOTS / nt blocks, so that up to 8 tokens cover n = 10240 in one pass over the weights
 * (a pass per block chunk reads every group in pieces, which the memory system streams worse). */
#define TILE TS_RP_TILE_AVX512
#define TOKEN_CHUNK 16
#define ACT_SLOTS 320

/* One token's activations of one block, copied from its Q8_K row so that a tile reaches every
 * token from a single base pointer with constant offsets (eight row pointers would not fit the
 * general registers next to everything else): the quants, the per-block integer constants
 * (Q4_K: the four int16 pairs of sub-block sums; Q6_K: -32 * bsums) and the scale. The records
 * of a block's tokens are consecutive (act[b * nt + c]). */
typedef struct {
    int8_t qs[QK_K];
    int32_t pre[16];
    float d;
    int32_t pad[15]; /* 384 bytes: every record starts a cache line */
} act_block;

/* Broadcast of a 4-byte activation group (the compiler folds it into an embedded broadcast). */
static ALWAYS_INLINE __m512i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

static ALWAYS_INLINE __m512 load_f16x16(const ts_f16 *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* Block chunk bc of n_bchunks: blocks [nb * bc / n_bchunks, nb * (bc + 1) / n_bchunks) (even sizes). */
static int chunk_start(int nb, int n_bchunks, int bc) { return (int)((int64_t)nb * bc / n_bchunks); }

/* ---------------------------------------------------------------------------------------------- */
/* Q4_K                                                                                              */

static void q4_K_fill_acts(const block_q8_K *y, int nbc, int c, int nt, act_block *act) {
    for (int b = 0; b < nbc; b++) {
        const int16_t *bs = y[b].bsums;
        act_block *ab = &act[b * nt + c];
        memcpy(ab->qs, y[b].qs, QK_K);
        ab->d = y[b].d;
        for (int i = 0; i < 4; i++) {
            /* the int16 pair (asum_{2i}, asum_{2i+1}), asum_j = bsums[2j] + bsums[2j+1];
             * |asum| <= 32 * 128 = 4096 fits int16 */
            const int32_t lo = bs[4 * i] + bs[4 * i + 1], hi = bs[4 * i + 2] + bs[4 * i + 3];
            ab->pre[i] = (int32_t)(((uint32_t)(uint16_t)lo) | ((uint32_t)(uint16_t)hi << 16));
        }
    }
}

/* Prefetch of the block processed next (pf), one 64-byte line per 64-byte step of this one plus the
 * 320-byte header in the first steps: the hardware prefetcher alone left the wider tiles well below
 * memory speed, and a fixed distance in bytes would run into the wrong rows at chunk ends.
 * Tiles of one or two tokens (decode) prefetch nothing: each thread's share of a matrix is one
 * sequential stream that the hardware prefetcher follows, and the software prefetches only took
 * fill buffers from it: R1-Distill-Qwen-1.5B q4_K_M decode 31-32 -> 33-34 t/s in slow-memory
 * minutes, 41-45 -> 46-49 in fast ones (two threads, alternating builds). Three or more tokens
 * still gain from them (single thread, from memory: 15-21 against 12-17 GB/s without). The same
 * rule as the legacy kernels' PREFETCH_MIN_TILE (repack_legacy_avx512.c). Tried again on a Zen 4
 * host for the one-token pairs (every line of the block 1, 2 or 4 blocks ahead of both streams):
 * two threads streamed Q4_K at 10-22 GB/s against 16-35 without (BENCHMARKS.md, "Zen 4 again"). */
#define PREFETCH_MIN_TILE 3

static ALWAYS_INLINE void tile_prefetch(const int NT, const char *p) {
    if (NT >= PREFETCH_MIN_TILE) _mm_prefetch(p, _MM_HINT_T0);
}
/* The activation records of block b (the next one; after a group's last block, the first, as the
 * next group starts over), for tiles of one or two tokens, which prefetch no weights. A group of a
 * long row streams more weight bytes than L1 holds between two uses of a block's records (Q6_K,
 * n = 8960: 118 KB against 13 KB of records), so without this every record comes back from L2
 * on the products' critical path: one thread streaming 8960 x 1536 from memory, Q4_K 22.3-22.8 ->
 * 25.9-26.0 GB/s and Q6_K 21.8-21.9 -> 25.0-25.8 (bench/kernels/bench_repack_kquants.c); R1-Distill-
 * Qwen-7B q4_K_M (ffn_down n = 18944) tg64 10.9-11.1 -> 11.6-11.8 t/s in fast-memory minutes. */
static ALWAYS_INLINE void act_prefetch(const int NT, const act_block *act, int act_stride, int b) {
    if (NT >= PREFETCH_MIN_TILE) return;
    for (int c = 0; c < NT; c++) {
        const char *p = (const char *)&act[(size_t)b * act_stride + c];
        for (size_t off = 0; off < sizeof(act_block); off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
    }
}
#define Q4_HEADER_BYTES 320
/* Q4_K goes through a block faster than Q6_K: one block ahead was too close at one token (5 %
 * below the old kernel), two blocks ahead (the one after the next) restored it. */
#define Q4_PF_EXTRA sizeof(block_q4_Kx16)

/* NT tokens (records act[b * act_stride + c], c < NT) times nbl blocks of one group: the results at
 * s + c * s_stride (16 floats each) get the blocks' terms added (or start from 0 when first). */
static ALWAYS_INLINE void q4_K_tile(const int NT, int nbl, const block_q4_Kx16 *restrict x, const act_block *act, int act_stride,
                                    float *s, size_t s_stride, int first, const void *pf_tail) {
    const __m512i low_nibbles = _mm512_set1_epi8(0x0F);
    for (int b = 0; b < nbl; b++) {
        const block_q4_Kx16 *xb = &x[b];
        const act_block *ab = &act[(size_t)b * act_stride];
        const char *pf = b + 1 < nbl ? (const char *)&x[b + 1] : (const char *)pf_tail;
        pf += Q4_PF_EXTRA;
        act_prefetch(NT, act, act_stride, b + 1 < nbl ? b + 1 : 0);
        __m512i isum[TILE];
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) isum[c] = _mm512_setzero_si512();
        if (NT <= 4) {
            /* Few tokens: both sub-blocks of a 64-byte step at once (two accumulator chains per
             * token keep the VNNI units busy). */
            for (int pair = 0; pair < 4; pair++) {
                __m512i lo[TILE], hi[TILE];
#pragma GCC unroll 8
                for (int c = 0; c < NT; c++) lo[c] = hi[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
                for (int t = 0; t < 8; t++) {
                    const int step = pair * 8 + t;
                    tile_prefetch(NT, pf + Q4_HEADER_BYTES + step * 64);
                    if (step < 5) tile_prefetch(NT, pf + step * 64);
                    const __m512i w = _mm512_loadu_si512(xb->qs + step * 64);
                    const __m512i wl = _mm512_and_si512(w, low_nibbles);
                    const __m512i wh = _mm512_and_si512(_mm512_srli_epi16(w, 4), low_nibbles);
#pragma GCC unroll 8
                    for (int c = 0; c < NT; c++) {
                        const int8_t *a = ab[c].qs + 64 * pair + 4 * t;
                        lo[c] = _mm512_dpbusd_epi32(lo[c], wl, bcast4(a));
                        hi[c] = _mm512_dpbusd_epi32(hi[c], wh, bcast4(a + 32));
                    }
                }
                const __m512i sc_lo = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(xb->scales + (2 * pair) * 16)));
                const __m512i sc_hi = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(xb->scales + (2 * pair + 1) * 16)));
#pragma GCC unroll 8
                for (int c = 0; c < NT; c++)
                    isum[c] = _mm512_add_epi32(isum[c], _mm512_add_epi32(_mm512_mullo_epi32(lo[c], sc_lo),
                                                                         _mm512_mullo_epi32(hi[c], sc_hi)));
            }
        } else {
            /* Many tokens: one sub-block at a time (each 64-byte step is loaded twice, from L1),
             * so that 8 tokens need 8 accumulators per sub-block, not 16: with the 8 isum that
             * leaves room in the 32 vector registers. */
            for (int j = 0; j < 8; j++) {
                __m512i sub[TILE];
#pragma GCC unroll 8
                for (int c = 0; c < NT; c++) sub[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
                for (int t = 0; t < 8; t++) {
                    const int step = (j / 2) * 8 + t;
                    if (j % 2 == 0) tile_prefetch(NT, pf + Q4_HEADER_BYTES + step * 64);
                    if (j == 0 && t < 5) tile_prefetch(NT, pf + t * 64);
                    const __m512i w = _mm512_loadu_si512(xb->qs + step * 64);
                    const __m512i wq = _mm512_and_si512(j % 2 ? _mm512_srli_epi16(w, 4) : w, low_nibbles);
#pragma GCC unroll 8
                    for (int c = 0; c < NT; c++)
                        sub[c] = _mm512_dpbusd_epi32(sub[c], wq, bcast4(ab[c].qs + 32 * j + 4 * t));
                }
                const __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(xb->scales + j * 16)));
#pragma GCC unroll 8
                for (int c = 0; c < NT; c++) isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(sub[c], sc));
            }
        }
        /* min term: msum = sum_j min_j * asum_j, one vpdpwssd per pair of sub-blocks */
        __m512i msum[TILE];
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) msum[c] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int pair = 0; pair < 4; pair++) {
            const __m512i mins = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(xb->mins + pair * 32)));
#pragma GCC unroll 8
            for (int c = 0; c < NT; c++) msum[c] = _mm512_dpwssd_epi32(msum[c], mins, _mm512_set1_epi32(ab[c].pre[pair]));
        }
        const __m512 d = load_f16x16(xb->d), dmin = load_f16x16(xb->dmin);
        const int first_block = first && b == 0;
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) {
            float *so = s + (size_t)c * s_stride;
            const __m512 da = _mm512_set1_ps(ab[c].d);
            __m512 acc = first_block ? _mm512_setzero_ps() : _mm512_loadu_ps(so);
            acc = _mm512_fmadd_ps(_mm512_mul_ps(d, da), _mm512_cvtepi32_ps(isum[c]), acc);
            acc = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, da), _mm512_cvtepi32_ps(msum[c]), acc);
            _mm512_storeu_ps(so, acc);
        }
    }
}

/* One token (decode) with 256-bit vectors: rows 0-7 and 8-15 of the group as two halves, the same
 * integer and float operations per row as q4_K_tile. Zen 4 runs a 512-bit operation as two 256-bit
 * halves, so this costs no more arithmetic, but it reads the weights with 32-byte loads, which this
 * host's memory streams faster than 64-byte ones (two threads, plain reads: 69-71 against 62-65
 * GB/s). Two threads streaming one-token products from memory in fast-memory minutes, alternating
 * with the 512-bit tile: Q4_K 18944 x 3584 56-57 -> 59-63 GB/s (+4-12 %), 8960 x 1536 57-61 ->
 * 61-65 (+2-8 %); unchanged in slow minutes. R1-Distill-Qwen-7B q4_K_M tg64 in fast minutes 76 ->
 * 87 % of the roofline. */
static inline __m256i bcast4_256(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}
/* NB (1 or 2) blocks of different groups against the same token block, step by step in turn: the
 * two blocks' sums are independent chains of vpdpbusd, which the core overlaps, and they share the
 * activation broadcasts. The high nibbles are multiplied in place (w & 0xF0 = 16 * q) and the sums
 * shifted back once per sub-block pair: exact (every term is a multiple of 16, |sum| < 2^20), one
 * shift fewer per 32 weights. In the L2 on a Zen 4 core, one token: 20.9 -> 22.6 multiply-adds per
 * cycle (bench_tile_cycles, eight alternating pairs, seven won); generation from memory unchanged
 * there (BENCHMARKS.md, "Zen 4 again"). */
static ALWAYS_INLINE void q4_K_blocks(const int NB, const block_q4_Kx16 *const *xs, const act_block *ab, float *const *ss,
                                      int first_block) {
    const __m256i m = _mm256_set1_epi8(0x0F), mh = _mm256_set1_epi8((char)0xF0);
    __m256i is[2][2];
#pragma GCC unroll 2
    for (int k = 0; k < NB; k++) is[k][0] = is[k][1] = _mm256_setzero_si256();
    for (int pair = 0; pair < 4; pair++) {
        __m256i lo[2][2], hi[2][2];
#pragma GCC unroll 2
        for (int k = 0; k < NB; k++) lo[k][0] = lo[k][1] = hi[k][0] = hi[k][1] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++) {
            const int step = pair * 8 + t;
            const int8_t *a = ab->qs + 64 * pair + 4 * t;
            const __m256i al = bcast4_256(a), ah = bcast4_256(a + 32);
#pragma GCC unroll 2
            for (int k = 0; k < NB; k++) {
                const __m256i w0 = _mm256_loadu_si256((const __m256i *)(xs[k]->qs + step * 64));
                const __m256i w1 = _mm256_loadu_si256((const __m256i *)(xs[k]->qs + step * 64 + 32));
                lo[k][0] = _mm256_dpbusd_epi32(lo[k][0], _mm256_and_si256(w0, m), al);
                lo[k][1] = _mm256_dpbusd_epi32(lo[k][1], _mm256_and_si256(w1, m), al);
                hi[k][0] = _mm256_dpbusd_epi32(hi[k][0], _mm256_and_si256(w0, mh), ah);
                hi[k][1] = _mm256_dpbusd_epi32(hi[k][1], _mm256_and_si256(w1, mh), ah);
            }
        }
#pragma GCC unroll 2
        for (int k = 0; k < NB; k++) {
            const uint8_t *sl = xs[k]->scales + (2 * pair) * 16, *sh = xs[k]->scales + (2 * pair + 1) * 16;
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const __m256i lo_s = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sl + 8 * h)));
                const __m256i hi_s = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sh + 8 * h)));
                is[k][h] = _mm256_add_epi32(is[k][h], _mm256_add_epi32(_mm256_mullo_epi32(lo[k][h], lo_s),
                                                                       _mm256_mullo_epi32(_mm256_srai_epi32(hi[k][h], 4), hi_s)));
            }
        }
    }
    const __m256 da = _mm256_set1_ps(ab->d);
#pragma GCC unroll 2
    for (int k = 0; k < NB; k++) {
        const block_q4_Kx16 *xb = xs[k];
        __m256i ms0 = _mm256_setzero_si256(), ms1 = ms0;
        for (int pair = 0; pair < 4; pair++) {
            const __m256i pre = _mm256_set1_epi32(ab->pre[pair]);
            ms0 = _mm256_dpwssd_epi32(ms0, _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(xb->mins + pair * 32))), pre);
            ms1 = _mm256_dpwssd_epi32(ms1, _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(xb->mins + pair * 32 + 16))), pre);
        }
        float *s = ss[k];
        for (int h = 0; h < 2; h++) {
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(xb->d + 8 * h)));
            const __m256 dmin = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(xb->dmin + 8 * h)));
            __m256 acc = first_block ? _mm256_setzero_ps() : _mm256_loadu_ps(s + 8 * h);
            acc = _mm256_fmadd_ps(_mm256_mul_ps(d, da), _mm256_cvtepi32_ps(is[k][h]), acc);
            acc = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, da), _mm256_cvtepi32_ps(h ? ms1 : ms0), acc);
            _mm256_storeu_ps(s + 8 * h, acc);
        }
    }
}

/* q4_K_tile with a run-time token count 1..TILE, each a specialised copy. */
static void q4_K_tile_n(int nt, int nbl, const block_q4_Kx16 *restrict x, const act_block *act, int act_stride, float *s,
                        size_t s_stride, int first, const void *pf_tail) {
    switch (nt) {
    case 1: q4_K_tile(1, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    case 2: q4_K_tile(2, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    case 3: q4_K_tile(3, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    case 4: q4_K_tile(4, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    case 5: q4_K_tile(5, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    case 6: q4_K_tile(6, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    case 7: q4_K_tile(7, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    default: q4_K_tile(8, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Q6_K                                                                                              */

static void q6_K_fill_acts(const block_q8_K *y, int nbc, int c, int nt, act_block *act) {
    for (int b = 0; b < nbc; b++) {
        act_block *ab = &act[b * nt + c];
        memcpy(ab->qs, y[b].qs, QK_K);
        ab->d = y[b].d;
        for (int j = 0; j < 16; j++) ab->pre[j] = -32 * (int32_t)y[b].bsums[j]; /* sub-block j's start */
    }
}

#define Q6_HEADER_BYTES 288

static ALWAYS_INLINE void q6_K_tile(const int NT, int nbl, const block_q6_Kx16 *restrict x, const act_block *act, int act_stride,
                                    float *s, size_t s_stride, int first, const void *pf_tail) {
    const __m512i m0f = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    for (int b = 0; b < nbl; b++) {
        const block_q6_Kx16 *xb = &x[b];
        const act_block *ab = &act[(size_t)b * act_stride];
        const char *pf = b + 1 < nbl ? (const char *)&x[b + 1] : (const char *)pf_tail;
        act_prefetch(NT, act, act_stride, b + 1 < nbl ? b + 1 : 0);
        __m512i isum[TILE];
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) isum[c] = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int j = 0; j < 16; j++) {
            /* the next block's step j (3 lines) and, in the first steps, its header */
            tile_prefetch(NT, pf + Q6_HEADER_BYTES + j * 192);
            tile_prefetch(NT, pf + Q6_HEADER_BYTES + j * 192 + 64);
            tile_prefetch(NT, pf + Q6_HEADER_BYTES + j * 192 + 128);
            if (j < 5) tile_prefetch(NT, pf + j * 64);
            const uint8_t *q6 = xb->qs + j * 192;
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
                const int8_t *a = ab[c].qs + 16 * j;
                __m512i sub = _mm512_set1_epi32(ab[c].pre[j]);
                if (NT > 4) {
                    /* Half of the four broadcasts from one 16-byte load and in-register shuffles:
                     * with 8 tokens the broadcast loads, not the arithmetic, were the limit. */
                    const __m512i a16 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)a));
                    sub = _mm512_dpbusd_epi32(sub, v0, bcast4(a));
                    sub = _mm512_dpbusd_epi32(sub, v1, _mm512_shuffle_epi32(a16, _MM_PERM_BBBB));
                    sub = _mm512_dpbusd_epi32(sub, v2, bcast4(a + 8));
                    sub = _mm512_dpbusd_epi32(sub, v3, _mm512_shuffle_epi32(a16, _MM_PERM_DDDD));
                } else {
                    sub = _mm512_dpbusd_epi32(sub, v0, bcast4(a));
                    sub = _mm512_dpbusd_epi32(sub, v1, bcast4(a + 4));
                    sub = _mm512_dpbusd_epi32(sub, v2, bcast4(a + 8));
                    sub = _mm512_dpbusd_epi32(sub, v3, bcast4(a + 12));
                }
                isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(sub, sc));
            }
        }
        const __m512 d = load_f16x16(xb->d);
        const int first_block = first && b == 0;
#pragma GCC unroll 8
        for (int c = 0; c < NT; c++) {
            float *so = s + (size_t)c * s_stride;
            const __m512 acc = first_block ? _mm512_setzero_ps() : _mm512_loadu_ps(so);
            const __m512 dw = _mm512_mul_ps(d, _mm512_set1_ps(ab[c].d));
            _mm512_storeu_ps(so, _mm512_fmadd_ps(dw, _mm512_cvtepi32_ps(isum[c]), acc));
        }
    }
}

/* One token with 256-bit vectors, as q4_K_tile1_ymm (which says why). Two threads, one-token
 * products from memory in fast-memory minutes, alternating with the 512-bit tile: Q6_K 8960 x 1536
 * and 3584 x 18944 +2.5 % on the mean of 16 alternations (-2.5 ... +7 %).
 *
 * NB blocks (1, or the two of a q6_K_dual pair) step by step, as q4_K_blocks, and each sub-block's
 * four vpdpbusd as two chains of two, so the core has more independent work per step. Before, one
 * chain of four per half and one block after the other: on Zen 4 the weights in the L2 went through
 * at 13.9 multiply-adds per cycle (Q4_K: 24), now 15.4; from memory, two threads, 50-67 % of the
 * read probe before and 64-84 % after; R1-Distill-Qwen-1.5B Q4_K_M decodes 5 % faster, its Q6_K
 * output head streaming at 30 GB/s instead of 26 (BENCHMARKS.md, "Where a token's time goes").
 * Integer sums in another order: the same bits. */
static ALWAYS_INLINE void q6_K_blocks(const int NB, const block_q6_Kx16 *const *xs, const act_block *ab, float *const *ss,
                                      int first_block) {
    const __m256i m0f = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30), zero = _mm256_setzero_si256();
    __m256i isum[2][2];
#pragma GCC unroll 2
    for (int k = 0; k < NB; k++) isum[k][0] = isum[k][1] = zero;
#pragma GCC unroll 2
    for (int j = 0; j < 16; j++) {
        const int8_t *a = ab->qs + 16 * j;
        const __m256i a0 = bcast4_256(a), a1 = bcast4_256(a + 4), a2 = bcast4_256(a + 8), a3 = bcast4_256(a + 12);
        const __m256i pre = _mm256_set1_epi32(ab->pre[j]);
#pragma GCC unroll 2
        for (int k = 0; k < NB; k++) {
            const uint8_t *q6 = xs[k]->qs + j * 192;
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const __m256i ql_a = _mm256_loadu_si256((const __m256i *)(q6 + 32 * h));
                const __m256i ql_b = _mm256_loadu_si256((const __m256i *)(q6 + 64 + 32 * h));
                const __m256i qh = _mm256_loadu_si256((const __m256i *)(q6 + 128 + 32 * h));
                const __m256i v0 = _mm256_ternarylogic_epi32(_mm256_and_si256(_mm256_slli_epi16(qh, 4), m30), ql_a, m0f, 0xD8);
                const __m256i v1 = _mm256_ternarylogic_epi32(_mm256_and_si256(_mm256_slli_epi16(qh, 2), m30), ql_b, m0f, 0xD8);
                const __m256i v2 = _mm256_ternarylogic_epi32(_mm256_and_si256(qh, m30), _mm256_srli_epi16(ql_a, 4), m0f, 0xD8);
                const __m256i v3 =
                    _mm256_ternarylogic_epi32(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m30), _mm256_srli_epi16(ql_b, 4), m0f, 0xD8);
                const __m256i s02 = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(pre, v0, a0), v2, a2);
                const __m256i s13 = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(zero, v1, a1), v3, a3);
                const __m256i sc = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(xs[k]->scales + j * 16 + 8 * h)));
                isum[k][h] = _mm256_add_epi32(isum[k][h], _mm256_mullo_epi32(_mm256_add_epi32(s02, s13), sc));
            }
        }
    }
    const __m256 da = _mm256_set1_ps(ab->d);
#pragma GCC unroll 2
    for (int k = 0; k < NB; k++) {
        float *s = ss[k];
        for (int h = 0; h < 2; h++) {
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(xs[k]->d + 8 * h)));
            const __m256 acc = first_block ? _mm256_setzero_ps() : _mm256_loadu_ps(s + 8 * h);
            _mm256_storeu_ps(s + 8 * h, _mm256_fmadd_ps(_mm256_mul_ps(d, da), _mm256_cvtepi32_ps(isum[k][h]), acc));
        }
    }
}

/* The one-token tiles of each type around its t_blocks function: one group (t_tile1_ymm), or two
 * groups xa and xb from the two halves of a thread's share, their blocks step by step (t_dual): two
 * streams keep more of a core's line fills in flight than one (BENCHMARKS.md, "Two streams per
 * thread"; gemm_rp has the numbers). */
#define DEFINE_ONE_TOKEN_TILES(t)                                                                               \
    static void t##_tile1_ymm(int nbl, const block_##t##x16 *restrict x, const act_block *act, int act_stride,   \
                              float *s, int first) {                                                           \
        for (int b = 0; b < nbl; b++) {                                                                        \
            act_prefetch(1, act, act_stride, b + 1 < nbl ? b + 1 : 0);                                         \
            const block_##t##x16 *xs[1] = {&x[b]};                                                             \
            float *ss[1] = {s};                                                                                \
            t##_blocks(1, xs, &act[(size_t)b * act_stride], ss, first && b == 0);                              \
        }                                                                                                      \
    }                                                                                                          \
    static void t##_dual(int nbl, const void *xa_bytes, const void *xb_bytes, const act_block *act, float *sa,  \
                         float *sb, int first) {                                                               \
        const block_##t##x16 *xa = xa_bytes, *xb = xb_bytes;                                                   \
        float *ss[2] = {sa, sb};                                                                               \
        for (int b = 0; b < nbl; b++) {                                                                        \
            act_prefetch(1, act, 1, b + 1 < nbl ? b + 1 : 0);                                                  \
            const block_##t##x16 *xs[2] = {&xa[b], &xb[b]};                                                   \
            t##_blocks(2, xs, &act[b], ss, first && b == 0);                                                   \
        }                                                                                                      \
    }
DEFINE_ONE_TOKEN_TILES(q4_K)
DEFINE_ONE_TOKEN_TILES(q6_K)

static void q6_K_tile_n(int nt, int nbl, const block_q6_Kx16 *restrict x, const act_block *act, int act_stride, float *s,
                        size_t s_stride, int first, const void *pf_tail) {
    switch (nt) {
    case 1: q6_K_tile(1, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    case 2: q6_K_tile(2, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    case 3: q6_K_tile(3, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    case 4: q6_K_tile(4, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    case 5: q6_K_tile(5, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    case 6: q6_K_tile(6, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    case 7: q6_K_tile(7, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    default: q6_K_tile(8, nbl, x, act, act_stride, s, s_stride, first, pf_tail); break;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* The loop over token chunks, block chunks and groups, shared by both types (the tile functions
 * take the group's blocks as bytes). Up to TILE tokens: one tile goes over the group's blocks of
 * the chunk. More: every block is used by both tiles before the next one, so the weights still
 * stream from memory once, at an even pace the prefetch keeps up with (two passes over a group
 * left the memory bus idle during the second). */
typedef void (*fill_acts_fn)(const block_q8_K *y, int nbc, int c, int nt, act_block *act);
typedef void (*tile_fn)(int nt, int nbl, const void *x, const act_block *act, int act_stride, float *s, size_t s_stride,
                        int first, const void *pf_tail);
typedef void (*dual_fn)(int nbl, const void *xa, const void *xb, const act_block *act, float *sa, float *sb, int first);

static void q4_K_tile_any(int nt, int nbl, const void *x, const act_block *act, int act_stride, float *s, size_t s_stride,
                          int first, const void *pf_tail) {
    if (nt == 1) q4_K_tile1_ymm(nbl, x, act, act_stride, s, first);
    else q4_K_tile_n(nt, nbl, x, act, act_stride, s, s_stride, first, pf_tail);
}
static void q6_K_tile_any(int nt, int nbl, const void *x, const act_block *act, int act_stride, float *s, size_t s_stride,
                          int first, const void *pf_tail) {
    if (nt == 1) q6_K_tile1_ymm(nbl, x, act, act_stride, s, first);
    else q6_K_tile_n(nt, nbl, x, act, act_stride, s, s_stride, first, pf_tail);
}

static void gemm_rp(size_t block_bytes, fill_acts_fn fill, tile_fn tile, dual_fn dual, bool pairs, int n, int n_groups, int n_cols, float *restrict s,
                    size_t s_stride, const void *restrict x, const void *restrict y, size_t y_stride) {
    const int nb = n / QK_K;
    if (nb <= 0) return;
    _Alignas(64) act_block act[ACT_SLOTS];
    const size_t group_bytes = block_bytes * (size_t)nb;
    if (n_cols == 1) ts_rp_prefetch_stream_starts(x, group_bytes, pairs ? n_groups : 1);
    for (int c0 = 0; c0 < n_cols; c0 += TOKEN_CHUNK) {
        const int nt = n_cols - c0 < TOKEN_CHUNK ? n_cols - c0 : TOKEN_CHUNK;
        const int max_blocks = ACT_SLOTS / nt, n_bchunks = (nb + max_blocks - 1) / max_blocks;
        for (int bc = 0; bc < n_bchunks; bc++) {
            const int b0 = chunk_start(nb, n_bchunks, bc), nbc = chunk_start(nb, n_bchunks, bc + 1) - b0;
            for (int c = 0; c < nt; c++)
                fill((const block_q8_K *)((const char *)y + (size_t)(c0 + c) * y_stride) + b0, nbc, c, nt, act);
            /* One token (decode): the groups in pairs (g, g + half), each pair's blocks in turn
             * (q4_K_dual), so that the thread streams two places of its share at once; an
             * odd group alone after them. One thread streaming one-token products from memory,
             * alternating with one group at a time (bench/kernels/bench_repack_kquants.c, three
             * rounds): Q4_K 1536 x 8960 28.4-29.9 -> 33.1-36.0 GB/s, 8960 x 1536 27.7-28.9 ->
             * 32.3-34.4, 2048 x 10944 25.6-29.7 -> 31.1-34.0, Q6_K 8960 x 1536 26.0-28.0 ->
             * 31.8-33.5; a 1536 x 256 matrix (16 groups, in L2) 51.7-52.0 -> 49.4-50.7. */
            int g_begin = 0;
            if (nt == 1 && pairs && n_groups >= 2) {
                const int half = n_groups / 2, odd = n_groups & 1;
                for (int g = 0; g < half; g++) {
                    const int g2 = g + half + odd;
                    dual(nbc, (const char *)x + (size_t)g * group_bytes + (size_t)b0 * block_bytes,
                         (const char *)x + (size_t)g2 * group_bytes + (size_t)b0 * block_bytes, act,
                         s + (size_t)c0 * s_stride + (size_t)g * TS_REPACK_ROWS,
                         s + (size_t)c0 * s_stride + (size_t)g2 * TS_REPACK_ROWS, b0 == 0);
                }
                if (!odd) continue;
                g_begin = half;
            }
            for (int g = g_begin; g < (g_begin ? g_begin + 1 : n_groups); g++) {
                const char *xg = (const char *)x + (size_t)g * group_bytes + (size_t)b0 * block_bytes;
                /* prefetched after the chunk's last block: the next group's first, else this one's */
                const char *after = g + 1 < n_groups ? xg + group_bytes : xg;
                float *sg = s + (size_t)c0 * s_stride + (size_t)g * TS_REPACK_ROWS;
                if (nt <= TILE) {
                    tile(nt, nbc, xg, act, nt, sg, s_stride, b0 == 0, after);
                    continue;
                }
                for (int b = 0; b < nbc; b++) {
                    const char *xb = xg + (size_t)b * block_bytes;
                    const char *next = b + 1 < nbc ? xb + block_bytes : after;
                    const act_block *ab = act + (size_t)b * nt;
                    tile(TILE, 1, xb, ab, nt, sg, s_stride, b0 + b == 0, next);
                    tile(nt - TILE, 1, xb, ab + TILE, nt, sg + (size_t)TILE * s_stride, s_stride, b0 + b == 0, next);
                }
            }
        }
    }
}

/* The exported products: with the one-token pairs, and one group at a time (_seq; repack.c
 * chooses per CPU). */
#define DEFINE_GEMM(t, name, pairs)                                                                          \
    void name(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride, const void *restrict x,  \
              const void *restrict y, size_t y_stride) {                                                   \
        gemm_rp(sizeof(block_##t##x16), t##_fill_acts, t##_tile_any, t##_dual, pairs, n, n_groups, n_cols, s, \
                s_stride, x, y, y_stride);                                                                 \
    }
DEFINE_GEMM(q4_K, ts_gemm_rp_q4_K_avx512, true)
DEFINE_GEMM(q6_K, ts_gemm_rp_q6_K_avx512, true)
DEFINE_GEMM(q4_K, ts_gemm_rp_q4_K_avx512_seq, false)
DEFINE_GEMM(q6_K, ts_gemm_rp_q6_K_avx512_seq, false)

#endif
