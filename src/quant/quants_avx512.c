/* AVX-512 F/BW/VL/VNNI dot products and tile kernels of Q4_0, Q8_0 (against Q8_0 activations) and
 * Q4_K, Q6_K (against Q8_K). Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2
 * -mfma -mf16c and only reached through the AVX512 type table after a CPU (and XGETBV) check.
 * Scalar references: legacy.c, kquants.c.
 *
 * Each kernel computes an R x C tile of (weight row, token) dot products: the weight blocks of R
 * rows are unpacked once and used for C tokens, the activation blocks of C tokens are loaded once
 * and used for R rows. vec_dot is the same kernel on a 1 x 1 tile. Every pair runs exactly the
 * same sequence of operations whatever the tile shape (its own accumulators, the same order), so
 * a tile's results are bit-identical to vec_dot's — prefill and decode give the same logits.
 *
 * Integer parts are exact:
 *   Q8_0/Q4_0: vpdpbusd wants unsigned x signed bytes. The weight is made unsigned (q8 + 128 by
 *              flipping the sign bit; q4 as its raw nibble 0..15) and the offset is removed by
 *              starting the int32 accumulator at -offset * sum(activation), itself a vpdpbusd of
 *              the activation with the offset. No saturation: vpdpbusd sums four u8*s8 products
 *              into int32 without clamping.
 *   Q4_K/Q6_K: vpmaddubsw (unsigned quant <= 63 times q8 in [-127, 127], pair sums
 *              |.| <= 2*63*127 < 32767, no saturation), then vpdpwssd with the int16 sub-block
 *              scales into int32 (|sum| < 2^31 for a 256-block). Q6_K's -32 offset goes through
 *              the q8_K bsums (sum over 16 values) times -32*scale; Q4_K's mins the same way into
 *              a separate term scaled by dmin.
 * Float parts: Q8_0/Q4_0 convert each pair of 32-blocks (16 int32 lanes) to float and FMA it with
 * its lane's scale product, then sum the 16 lanes in a fixed tree; Q4_K/Q6_K reduce each 256-block
 * to one exact integer per pair and do the float work with rows in vector lanes (see the K-quant
 * epilogue). This order differs from the AVX2 kernels', so results differ from the AVX2 table's
 * in the last bits; both are within rounding of llama.cpp. */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__) && \
    defined(__FMA__) && defined(__F16C__)
/* (Built only with the AVX-512 flags; a build that compiles every file of src/quant, such as the AArch64
 * cross build, compiles this file to nothing.) */

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant/blocks.h"
#include "quant/kernels.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE float f16_to_f32(ts_f16 h) { return _cvtsh_ss(h); }

/* 16 floats from two fp16 scales: lanes 0..7 = lo, lanes 8..15 = hi (0 when hi is NULL). One
 * conversion and one permute instead of two scalar conversions and broadcasts. */
static ALWAYS_INLINE __m512 halves_f16(const ts_f16 *lo, const ts_f16 *hi) {
    const uint32_t packed = (uint32_t)*lo | (hi ? (uint32_t)*hi << 16 : 0u);
    const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)packed));
    return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), _mm512_castps128_ps512(f));
}

/* 64 bytes: bytes 0..31 from a, 32..63 from b. */
static ALWAYS_INLINE __m512i join256(const void *a, const void *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* The same horizontal sum for every pair: a fixed tree (the compiler may not reorder float adds). */
static ALWAYS_INLINE float hsum16(__m512 v) {
    const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* Runs KERNEL(n, R, C, ...) over the whole n_rows x n_cols tile: full RM x CM tiles, then the
 * leftover rows and tokens with one-row / one-token tiles. KERNEL is always_inline with constant R
 * and C, so each shape is its own specialised loop.
 * Fewer tokens than a tile (a decode step: one token per sequence) go one row at a time with all
 * their tokens: the weights are then read as one sequential stream, which the hardware prefetcher
 * follows at memory speed, where RM rows at once are RM short streams restarted every RM rows (one
 * core streamed a V2-Lite Q8_0 matrix at 10-17 GB/s in 4-row tiles, 19-24 GB/s row by row;
 * bench/kernels/bench_repack_legacy.c "file"). Results are unchanged: every (row, token) pair runs
 * the same operations whatever the tile shape. ONE_TOKEN_ROWS(n, n_rows, s, x, x_stride, y) may
 * take a one-token product whole (a type's own row loop; false: not taken). */
#define DEFINE_TILE_ENTRY_POINTS(name, KERNEL, RM, CM, ONE_TOKEN_ROWS)                                        \
    void ts_dot_tile_##name##_avx512(int n, int n_rows, int n_cols, float *restrict s, size_t s_stride,       \
                                     const void *restrict x, size_t x_stride, const void *restrict y,          \
                                     size_t y_stride) {                                                       \
        const char *xb = x, *yb = y;                                                                          \
        _Static_assert(CM == 4, "the few-token path below covers 1..3 tokens");                               \
        if (n_cols == 1 && ONE_TOKEN_ROWS(n, n_rows, s, xb, x_stride, yb)) return;                            \
        if (n_cols < CM) {                                                                                    \
            for (int r = 0; r < n_rows; r++) {                                                                \
                float *sr = s + (size_t)r;                                                                    \
                const char *xr = xb + (size_t)r * x_stride;                                                   \
                switch (n_cols) {                                                                             \
                case 1: KERNEL(n, 1, 1, sr, s_stride, xr, x_stride, yb, y_stride); break;                     \
                case 2: KERNEL(n, 1, 2, sr, s_stride, xr, x_stride, yb, y_stride); break;                     \
                case 3: KERNEL(n, 1, 3, sr, s_stride, xr, x_stride, yb, y_stride); break;                     \
                default: break;                                                                               \
                }                                                                                             \
            }                                                                                                 \
            return;                                                                                           \
        }                                                                                                     \
        int r = 0;                                                                                            \
        for (; r + RM <= n_rows; r += RM) {                                                                   \
            int c = 0;                                                                                        \
            for (; c + CM <= n_cols; c += CM)                                                                 \
                KERNEL(n, RM, CM, s + (size_t)c * s_stride + (size_t)r, s_stride, xb + (size_t)r * x_stride,  \
                       x_stride, yb + (size_t)c * y_stride, y_stride);                                        \
            for (; c < n_cols; c++)                                                                           \
                KERNEL(n, RM, 1, s + (size_t)c * s_stride + (size_t)r, s_stride, xb + (size_t)r * x_stride,   \
                       x_stride, yb + (size_t)c * y_stride, y_stride);                                        \
        }                                                                                                     \
        for (; r < n_rows; r++) {                                                                             \
            int c = 0;                                                                                        \
            for (; c + CM <= n_cols; c += CM)                                                                 \
                KERNEL(n, 1, CM, s + (size_t)c * s_stride + (size_t)r, s_stride, xb + (size_t)r * x_stride,   \
                       x_stride, yb + (size_t)c * y_stride, y_stride);                                        \
            for (; c < n_cols; c++)                                                                           \
                KERNEL(n, 1, 1, s + (size_t)c * s_stride + (size_t)r, s_stride, xb + (size_t)r * x_stride,    \
                       x_stride, yb + (size_t)c * y_stride, y_stride);                                        \
        }                                                                                                     \
    }                                                                                                         \
    void ts_dot_##name##_avx512(int n, float *restrict s, const void *restrict x, const void *restrict y) {   \
        KERNEL(n, 1, 1, s, 0, x, 0, y, 0);                                                                    \
    }

/* ONE_TOKEN_ROWS of the types without a separate one-token loop (Q8_0: bound by memory; the
 * K-quants: their tiles' activation side is one load per step). */
static ALWAYS_INLINE bool no_one_token_rows(int n, int n_rows, float *restrict s, const char *restrict x, size_t x_stride,
                                            const char *restrict y) {
    (void)n, (void)n_rows, (void)s, (void)x, (void)x_stride, (void)y;
    return false;
}

#define MAX_R 4
#define MAX_C 4
/* The loops over a tile's rows and tokens must be unrolled for the accumulators to live in
 * registers (GCC's -O2 keeps them as loops over arrays in memory otherwise). */
#define UNROLL _Pragma("GCC unroll 4")

/* Software prefetch for the file-layout tiles. A tile reads R rows at once, each only a few hundred
 * bytes to a few KB long, and then moves on to the next R rows: the hardware prefetchers lose
 * every stream at a row's end and a one-token product waits on memory (one core streamed 9-21
 * GB/s from memory against 35-65 GB/s from cache). So while block `offset` of this tile's rows is
 * worked on, the same `lines` cache lines of the rows `ahead` rows further on are requested:
 * rows of later tiles (the entry points walk the rows in order, and a matrix's rows are
 * consecutive), at least TS_FILE_PREFETCH_BYTES ahead of the reads, about what one core keeps
 * in flight over the memory latency. Prefetching past the matrix's end is harmless (a prefetch
 * never faults). */
#define TS_FILE_PREFETCH_BYTES 8192

/* Rows ahead to prefetch: whole tiles of R rows, at least TS_FILE_PREFETCH_BYTES of them. */
static ALWAYS_INLINE int prefetch_rows_ahead(size_t x_stride, int R) {
    const size_t tile_bytes = x_stride * (size_t)R;
    if (tile_bytes == 0) return R;
    return R * (int)((TS_FILE_PREFETCH_BYTES + tile_bytes - 1) / tile_bytes);
}

static ALWAYS_INLINE void prefetch_rows(const char *x, size_t x_stride, int R, int ahead, size_t offset, int lines) {
    /* One row at a time is one sequential stream: the hardware prefetcher alone keeps up with it
     * (V2-Lite Q8_0 decode 12.6-12.8 t/s without these prefetches, 12.3-12.8 with them). */
    if (R == 1) return;
    UNROLL
    for (int r = 0; r < R; r++) {
        /* integer arithmetic: the address may lie past the end of the matrix */
        const uintptr_t p = (uintptr_t)x + (uintptr_t)(ahead + r) * x_stride + offset;
        for (int l = 0; l < lines; l++) _mm_prefetch((const char *)(p + 64u * (uintptr_t)l), _MM_HINT_T0);
    }
}

/* ---------------------------------------------------------------- Q8_0 / Q4_0 x Q8_0 */

/* Weight bytes of two consecutive blocks as unsigned values (q + offset), 64 bytes in value order,
 * and their two scales. `pair` = 0 when only block i exists (the upper half is then zero, which
 * adds exactly 0 to every sum). */
static ALWAYS_INLINE __m512i q8_0_weights(const block_q8_0 *b, int pair) {
    const __m512i sign = _mm512_set1_epi8((char)0x80);
    if (pair) return _mm512_xor_si512(join256(b[0].qs, b[1].qs), sign);
    return _mm512_zextsi256_si512(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)b[0].qs),
                                                   _mm256_set1_epi8((char)0x80)));
}

static ALWAYS_INLINE __m512i q4_0_weights(const block_q4_0 *b, int pair) {
    /* 128-bit lanes [qs0, qs0, qs1, qs1]; the odd lanes shifted right by 4 give the high nibbles
     * (values 16..31 of a block), so after masking the bytes are the nibbles in value order. */
    const __m256i b0 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b[0].qs));
    const __m256i b1 = pair ? _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b[1].qs))
                            : _mm256_setzero_si256();
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(b0), b1, 1);
    const __m512i shifts = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
    return _mm512_and_si512(_mm512_srlv_epi64(both, shifts), _mm512_set1_epi8(0x0F));
}

static ALWAYS_INLINE __m512i q8_0_acts(const block_q8_0 *b, int pair) {
    if (pair) return join256(b[0].qs, b[1].qs);
    return _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)b[0].qs));
}

/* One kernel for both Q8_0 and Q4_0 weights: they differ in the unpacking and the offset. */
static ALWAYS_INLINE void tile_q8_0_like(int is_q4, int n, int R, int C, float *restrict s, size_t s_stride,
                                         const char *restrict x, size_t x_stride, const char *restrict y,
                                         size_t y_stride) {
    const int nb = n / QK8_0, ahead = prefetch_rows_ahead(x_stride, R);
    const size_t wblock = is_q4 ? sizeof(block_q4_0) : sizeof(block_q8_0);
    const __m512i offset = _mm512_set1_epi8(is_q4 ? 8 : (char)0x80); /* unsigned 8 or 128 */
    __m512 acc[MAX_R][MAX_C];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    for (int i = 0; i < nb; i += 2) {
        const int pair = i + 1 < nb;
        prefetch_rows(x, x_stride, R, ahead, (size_t)i * wblock, is_q4 ? 1 : 2);
        __m512i w[MAX_R];
        __m512 wd[MAX_R];
        UNROLL
        for (int r = 0; r < R; r++) {
            const char *row = x + (size_t)r * x_stride + (size_t)i * wblock;
            if (is_q4) {
                const block_q4_0 *b = (const block_q4_0 *)row;
                w[r] = q4_0_weights(b, pair);
                wd[r] = halves_f16(&b[0].d, pair ? &b[1].d : NULL);
            } else {
                const block_q8_0 *b = (const block_q8_0 *)row;
                w[r] = q8_0_weights(b, pair);
                wd[r] = halves_f16(&b[0].d, pair ? &b[1].d : NULL);
            }
        }
        UNROLL
        for (int c = 0; c < C; c++) {
            const block_q8_0 *a = (const block_q8_0 *)(y + (size_t)c * y_stride) + i;
            const __m512i act = q8_0_acts(a, pair);
            /* -offset * sum(act) per int32 lane: the start that turns the unsigned weight back */
            const __m512i start = _mm512_sub_epi32(_mm512_setzero_si512(),
                                                   _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, act));
            const __m512 ad = halves_f16(&a[0].d, pair ? &a[1].d : NULL);
            UNROLL
            for (int r = 0; r < R; r++) {
                const __m512i dot = _mm512_dpbusd_epi32(start, w[r], act);
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(wd[r], ad), acc[r][c]);
            }
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
        for (int c = 0; c < C; c++) s[(size_t)c * s_stride + (size_t)r] = hsum16(acc[r][c]);
}

/* One token against n_rows rows, row by row (decode; see DEFINE_TILE_ENTRY_POINTS): the same
 * operations per row as tile_q8_0_like with R = C = 1, but the activation's side of every pair
 * (its bytes, the offset start, its scales) is prepared once for all rows instead of once per
 * row, which was a third of a row's work: one core, from memory, Q4_0 13-14 -> 16-19 GB/s on
 * 1408- and 2048-wide rows (bench/kernels/bench_repack_legacy.c); V2-Lite Q4_0 --no-repack decode
 * 17.7-19.0 -> 19.2-20.7 t/s. Q4_0 only: Q8_0 rows are bound by memory, not by this work, and
 * two threads decoding V2-Lite Q8_0 this way ran 15.5 against 16.4-17.8 t/s (the extra loads of
 * the prepared pairs compete with the weights' stream).
 * The prepared pairs must stay in L1 next to the streaming weights: 8960-wide rows (27 KB of
 * them) ran at 12 GB/s against 21-24 without, so longer rows return false (nothing done) and the
 * caller runs the plain kernel. */
#define ROWS_MAX_PAIRS 64 /* 4096 values: 12 KiB */
typedef struct {
    __m512i act, start;
    __m512 ad;
} q8_0_pair_act;

static ALWAYS_INLINE bool rows_q8_0_like(int is_q4, int n, int n_rows, float *restrict s, const char *restrict x,
                                         size_t x_stride, const char *restrict y) {
    const int nb = n / QK8_0, n_pairs = (nb + 1) / 2;
    if (n_pairs > ROWS_MAX_PAIRS) return false;
    const size_t wblock = is_q4 ? sizeof(block_q4_0) : sizeof(block_q8_0);
    const __m512i offset = _mm512_set1_epi8(is_q4 ? 8 : (char)0x80);
    q8_0_pair_act pa[ROWS_MAX_PAIRS];
    for (int i = 0; i < nb; i += 2) {
        const int pair = i + 1 < nb;
        const block_q8_0 *a = (const block_q8_0 *)y + i;
        q8_0_pair_act *p = &pa[i / 2];
        p->act = q8_0_acts(a, pair);
        p->start = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, p->act));
        p->ad = halves_f16(&a[0].d, pair ? &a[1].d : NULL);
    }
    for (int r = 0; r < n_rows; r++) {
        const char *row = x + (size_t)r * x_stride;
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < nb; i += 2) {
            const int pair = i + 1 < nb;
            const q8_0_pair_act *p = &pa[i / 2];
            __m512i w;
            __m512 wd;
            if (is_q4) {
                const block_q4_0 *b = (const block_q4_0 *)(row + (size_t)i * wblock);
                w = q4_0_weights(b, pair);
                wd = halves_f16(&b[0].d, pair ? &b[1].d : NULL);
            } else {
                const block_q8_0 *b = (const block_q8_0 *)(row + (size_t)i * wblock);
                w = q8_0_weights(b, pair);
                wd = halves_f16(&b[0].d, pair ? &b[1].d : NULL);
            }
            const __m512i dot = _mm512_dpbusd_epi32(p->start, w, p->act);
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(wd, p->ad), acc);
        }
        s[r] = hsum16(acc);
    }
    return true;
}

static ALWAYS_INLINE void tile_q8_0(int n, int R, int C, float *restrict s, size_t s_stride, const void *restrict x,
                                    size_t x_stride, const void *restrict y, size_t y_stride) {
    tile_q8_0_like(0, n, R, C, s, s_stride, x, x_stride, y, y_stride);
}

static ALWAYS_INLINE void tile_q4_0(int n, int R, int C, float *restrict s, size_t s_stride, const void *restrict x,
                                    size_t x_stride, const void *restrict y, size_t y_stride) {
    tile_q8_0_like(1, n, R, C, s, s_stride, x, x_stride, y, y_stride);
}

static bool rows_q4_0(int n, int n_rows, float *restrict s, const char *restrict x, size_t x_stride, const char *restrict y) {
    return rows_q8_0_like(1, n, n_rows, s, x, x_stride, y);
}

DEFINE_TILE_ENTRY_POINTS(q8_0, tile_q8_0, 4, 4, no_one_token_rows)
DEFINE_TILE_ENTRY_POINTS(q4_0, tile_q4_0, 4, 4, rows_q4_0)

/* ---------------------------------------------------------------- K-quants: shared epilogue */

/* The K-quant kernels sum each 256-block of a pair exactly in int32, so the order of that sum
 * does not matter; it is reduced to one integer per pair and the float work is done with the R
 * rows of a tile in the lanes of one 4-lane vector per token: per block and pair one int->float
 * conversion and one FMA (two for Q4_K's mins), the same IEEE operations in every lane whatever
 * the tile shape. Rows a tile does not have are zero vectors. A one-row tile (decode, which goes
 * row by row) does the same IEEE operations on lane 0 alone: its integers are summed by a plain
 * horizontal add instead of the four-row transpose, and its row scales converted as scalars —
 * the 4-row epilogue cost a one-row tile as much as four rows' (R1-Distill-Qwen-1.5B q4_K_M
 * --no-repack decode 18.7-21.3 -> 29.0-29.6 t/s, alternating builds). */

/* Horizontal sums of four 8-lane int32 vectors: lane k = sum of v[k]. */
static ALWAYS_INLINE __m128i reduce4_epi32_256(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

/* The sum of the 8 int32 lanes (exact: the bounds above keep every partial sum in range). */
static ALWAYS_INLINE int32_t hsum_epi32_256(__m256i v) {
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(1, 0, 3, 2)));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(r);
}

static ALWAYS_INLINE __m256i fold512(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* The fp16 values *h[0..R-1] as 4 float lanes (lanes >= R are 0). */
static ALWAYS_INLINE __m128 row_scales(const ts_f16 *const h[MAX_R], int R) {
    float f[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    UNROLL
    for (int r = 0; r < R; r++) f[r] = f16_to_f32(*h[r]);
    return _mm_loadu_ps(f);
}

/* Stores the R row lanes of a tile column. */
static ALWAYS_INLINE void store_rows(float *restrict s, __m128 v, int R) {
    float f[4];
    _mm_storeu_ps(f, v);
    UNROLL
    for (int r = 0; r < R; r++) s[r] = f[r];
}

/* ---------------------------------------------------------------- Q4_K x Q8_K */

/* Q4_K packed 6-bit scales and mins -> 8 scales and 8 mins as bytes (see k4_scale_min in kquants.c). */
static ALWAYS_INLINE void k4_unpack(const uint8_t packed[K_SCALE_SIZE], uint64_t *scales, uint64_t *mins) {
    uint32_t raw[3], w[4];
    memcpy(raw, packed, sizeof(raw));
    const uint32_t low6 = 0x3f3f3f3fu, low4 = 0x0f0f0f0fu, low2 = 0x03030303u;
    w[0] = raw[0] & low6;
    w[1] = (raw[2] & low4) | (((raw[0] >> 6) & low2) << 4);
    w[2] = raw[1] & low6;
    w[3] = ((raw[2] >> 4) & low4) | (((raw[1] >> 6) & low2) << 4);
    *scales = (uint64_t)w[0] | (uint64_t)w[1] << 32;
    *mins = (uint64_t)w[2] | (uint64_t)w[3] << 32;
}

static ALWAYS_INLINE void tile_q4_K(int n, int R, int C, float *restrict s, size_t s_stride, const void *restrict vx,
                                    size_t x_stride, const void *restrict vy, size_t y_stride) {
    const char *x = vx, *y = vy;
    const int nb = n / QK_K, ahead = prefetch_rows_ahead(x_stride, R);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    /* 32-byte chunk j of qs broadcast to both halves; the upper half shifted by 4 gives the high
     * nibbles: bytes 0..31 = sub-block 2j, 32..63 = sub-block 2j+1, matching 64 contiguous q8. */
    const __m512i nibble_shift = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
    __m128 acc[MAX_C];
    UNROLL
    for (int c = 0; c < C; c++) acc[c] = _mm_setzero_ps();
    for (int i = 0; i < nb; i++) {
        prefetch_rows(x, x_stride, R, ahead, (size_t)i * sizeof(block_q4_K), 3);
        const block_q4_K *wb[MAX_R];
        const ts_f16 *wd_p[MAX_R], *wmin_p[MAX_R];
        __m512i sc8[MAX_R];    /* 8 scales as int16 in lanes 0..7 */
        __m256i mins16[MAX_R]; /* min of sub-block k/2 in int16 lane k (pairs with the 16 bsums) */
        UNROLL
        for (int r = 0; r < R; r++) {
            wb[r] = (const block_q4_K *)(x + (size_t)r * x_stride) + i;
            wd_p[r] = &wb[r]->d;
            wmin_p[r] = &wb[r]->dmin;
            uint64_t sc, mn;
            k4_unpack(wb[r]->scales, &sc, &mn);
            sc8[r] = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
            const __m128i m8 = _mm_cvtsi64_si128((long long)mn);
            mins16[r] = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
        }
        __m512i sumi[MAX_R][MAX_C];
        UNROLL
        for (int r = 0; r < R; r++)
            UNROLL
            for (int c = 0; c < C; c++) sumi[r][c] = _mm512_setzero_si512();
        UNROLL
        for (int j = 0; j < 4; j++) {
            /* int16 lanes 0..15 take scale 2j, lanes 16..31 scale 2j+1 */
            const __m512i idx = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * j)), _mm256_set1_epi16((short)(2 * j + 1)), 1);
            __m512i w[MAX_R], scv[MAX_R];
            UNROLL
            for (int r = 0; r < R; r++) {
                const __m512i bits = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(wb[r]->qs + 32 * j)));
                w[r] = _mm512_and_si512(_mm512_srlv_epi64(bits, nibble_shift), low4);
                scv[r] = _mm512_permutexvar_epi16(idx, sc8[r]);
            }
            UNROLL
            for (int c = 0; c < C; c++) {
                const block_q8_K *a = (const block_q8_K *)(y + (size_t)c * y_stride) + i;
                const __m512i act = _mm512_loadu_si512((const void *)(a->qs + 64 * j));
                UNROLL
                for (int r = 0; r < R; r++)
                    sumi[r][c] = _mm512_dpwssd_epi32(sumi[r][c], _mm512_maddubs_epi16(w[r], act), scv[r]);
            }
        }
        if (R == 1) {
            const __m128 wd1 = _mm_set_ss(f16_to_f32(*wd_p[0])), wmin1 = _mm_set_ss(f16_to_f32(*wmin_p[0]));
            UNROLL
            for (int c = 0; c < C; c++) {
                const block_q8_K *a = (const block_q8_K *)(y + (size_t)c * y_stride) + i;
                const __m256i bsums = _mm256_loadu_si256((const __m256i *)a->bsums);
                const int32_t sum_scaled = hsum_epi32_256(fold512(sumi[0][c]));
                const int32_t sum_mins = hsum_epi32_256(_mm256_madd_epi16(bsums, mins16[0]));
                const __m128 ad = _mm_set_ss(a->d);
                acc[c] = _mm_fmadd_ss(_mm_mul_ss(ad, wd1), _mm_cvtsi32_ss(_mm_setzero_ps(), sum_scaled), acc[c]);
                acc[c] = _mm_fnmadd_ss(_mm_mul_ss(ad, wmin1), _mm_cvtsi32_ss(_mm_setzero_ps(), sum_mins), acc[c]);
            }
            continue;
        }
        const __m128 wd = row_scales(wd_p, R), wmin = row_scales(wmin_p, R);
        UNROLL
        for (int c = 0; c < C; c++) {
            const block_q8_K *a = (const block_q8_K *)(y + (size_t)c * y_stride) + i;
            const __m256i bsums = _mm256_loadu_si256((const __m256i *)a->bsums);
            __m256i sv[4], mv[4];
            UNROLL
            for (int r = 0; r < 4; r++) {
                sv[r] = r < R ? fold512(sumi[r][c]) : _mm256_setzero_si256();
                mv[r] = r < R ? _mm256_madd_epi16(bsums, mins16[r]) : _mm256_setzero_si256();
            }
            const __m128i sum_scaled = reduce4_epi32_256(sv[0], sv[1], sv[2], sv[3]);
            const __m128i sum_mins = reduce4_epi32_256(mv[0], mv[1], mv[2], mv[3]);
            const __m128 ad = _mm_set1_ps(a->d);
            acc[c] = _mm_fmadd_ps(_mm_mul_ps(ad, wd), _mm_cvtepi32_ps(sum_scaled), acc[c]);
            acc[c] = _mm_fnmadd_ps(_mm_mul_ps(ad, wmin), _mm_cvtepi32_ps(sum_mins), acc[c]);
        }
    }
    UNROLL
    for (int c = 0; c < C; c++) store_rows(s + (size_t)c * s_stride, acc[c], R);
}

DEFINE_TILE_ENTRY_POINTS(q4_K, tile_q4_K, 4, 4, no_one_token_rows)

/* ---------------------------------------------------------------- Q6_K x Q8_K */

static ALWAYS_INLINE void tile_q6_K(int n, int R, int C, float *restrict s, size_t s_stride, const void *restrict vx,
                                    size_t x_stride, const void *restrict vy, size_t y_stride) {
    const char *x = vx, *y = vy;
    const int nb = n / QK_K, ahead = prefetch_rows_ahead(x_stride, R);
    const __m512i low4 = _mm512_set1_epi8(0x0F), low2 = _mm512_set1_epi8(0x03);
    /* qh byte l holds bits 4..5 of values l, l+32, l+64, l+96 (of a 128-value half) at bit
     * pairs 0, 2, 4, 6. Broadcast to both 256-bit halves and shifted per half: */
    const __m512i qh_shift_a = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0); /* values 0..31 | 32..63 */
    const __m512i qh_shift_b = _mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4); /* values 64..95 | 96..127 */
    /* int16 lane k of the maddubs result covers values 2k, 2k+1: sub-block k/8 of the 64 */
    const __m512i scale_index_a = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1,
                                                   1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i four = _mm512_set1_epi16(4), eight = _mm512_set1_epi16(8);
    __m128 acc[MAX_C];
    UNROLL
    for (int c = 0; c < C; c++) acc[c] = _mm_setzero_ps();
    for (int i = 0; i < nb; i++) {
        prefetch_rows(x, x_stride, R, ahead, (size_t)i * sizeof(block_q6_K), 4);
        const block_q6_K *wb[MAX_R];
        const ts_f16 *wd_p[MAX_R];
        __m512i sc16[MAX_R];     /* 16 scales as int16 in the lower 16 lanes */
        __m256i offset16[MAX_R]; /* -32 * scale, for the bsums */
        UNROLL
        for (int r = 0; r < R; r++) {
            wb[r] = (const block_q6_K *)(x + (size_t)r * x_stride) + i;
            wd_p[r] = &wb[r]->d;
            const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wb[r]->scales));
            sc16[r] = _mm512_castsi256_si512(sc);
            offset16[r] = _mm256_mullo_epi16(sc, _mm256_set1_epi16(-32));
        }
        __m512i sumi[MAX_R][MAX_C];
        UNROLL
        for (int r = 0; r < R; r++)
            UNROLL
            for (int c = 0; c < C; c++) sumi[r][c] = _mm512_setzero_si512();
        UNROLL
        for (int h = 0; h < 2; h++) {
            const __m512i idx_a = h ? _mm512_add_epi16(scale_index_a, eight) : scale_index_a;
            const __m512i idx_b = _mm512_add_epi16(idx_a, four);
            UNROLL
            for (int part = 0; part < 2; part++) {
                __m512i w[MAX_R], scv[MAX_R];
                UNROLL
                for (int r = 0; r < R; r++) {
                    const __m512i ql = _mm512_loadu_si512((const void *)(wb[r]->ql + 64 * h));
                    const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(wb[r]->qh + 32 * h)));
                    const __m512i lo = part ? _mm512_srli_epi16(ql, 4) : ql;
                    const __m512i hi = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(qh, part ? qh_shift_b : qh_shift_a), low2), 4);
                    w[r] = _mm512_or_si512(_mm512_and_si512(lo, low4), hi);
                    scv[r] = _mm512_permutexvar_epi16(part ? idx_b : idx_a, sc16[r]);
                }
                UNROLL
                for (int c = 0; c < C; c++) {
                    const block_q8_K *a = (const block_q8_K *)(y + (size_t)c * y_stride) + i;
                    const __m512i act = _mm512_loadu_si512((const void *)(a->qs + 128 * h + 64 * part));
                    UNROLL
                    for (int r = 0; r < R; r++)
                        sumi[r][c] = _mm512_dpwssd_epi32(sumi[r][c], _mm512_maddubs_epi16(w[r], act), scv[r]);
                }
            }
        }
        if (R == 1) {
            const __m128 wd1 = _mm_set_ss(f16_to_f32(*wd_p[0]));
            UNROLL
            for (int c = 0; c < C; c++) {
                const block_q8_K *a = (const block_q8_K *)(y + (size_t)c * y_stride) + i;
                const __m256i bsums = _mm256_loadu_si256((const __m256i *)a->bsums);
                const int32_t sum = hsum_epi32_256(_mm256_add_epi32(fold512(sumi[0][c]), _mm256_madd_epi16(bsums, offset16[0])));
                acc[c] = _mm_fmadd_ss(_mm_mul_ss(_mm_set_ss(a->d), wd1), _mm_cvtsi32_ss(_mm_setzero_ps(), sum), acc[c]);
            }
            continue;
        }
        const __m128 wd = row_scales(wd_p, R);
        UNROLL
        for (int c = 0; c < C; c++) {
            const block_q8_K *a = (const block_q8_K *)(y + (size_t)c * y_stride) + i;
            const __m256i bsums = _mm256_loadu_si256((const __m256i *)a->bsums);
            __m256i sv[4];
            UNROLL
            for (int r = 0; r < 4; r++)
                sv[r] = r < R ? _mm256_add_epi32(fold512(sumi[r][c]), _mm256_madd_epi16(bsums, offset16[r]))
                              : _mm256_setzero_si256();
            const __m128i sum = reduce4_epi32_256(sv[0], sv[1], sv[2], sv[3]);
            acc[c] = _mm_fmadd_ps(_mm_mul_ps(_mm_set1_ps(a->d), wd), _mm_cvtepi32_ps(sum), acc[c]);
        }
    }
    UNROLL
    for (int c = 0; c < C; c++) store_rows(s + (size_t)c * s_stride, acc[c], R);
}

DEFINE_TILE_ENTRY_POINTS(q6_K, tile_q6_K, 4, 4, no_one_token_rows)

#endif
