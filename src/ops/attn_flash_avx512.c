/* AVX-512 versions of attn_flash_avx2.c's kernels (widths multiples of 16): the same loops on
 * 16 lanes. Only called when the model's type table is the AVX-512 one (the CPU check passed).
 * The AVX2 header comment applies:
 * AVX2/FMA/F16C kernels of ts_flash_chunk for F32 and F16 caches (widths multiples of 8). Four
 * cache rows are widened at a time and every query head of the group is run against them while
 * they sit in L1, so the cache is read from memory once per chunk for all heads. Each (head, row)
 * dot product is one 8-lane FMA chain over the row followed by a fixed horizontal sum, and each
 * head's value sum adds the rows in position order: the grouping of rows changes no result. */
#include <immintrin.h>

#include "ops/attn_flash.h"
#include "ops/vexp_avx2.h"
#include "ops/vexp_avx512.h"

#include <math.h>
#include <stdint.h>

/* Rows t .. t+n-1 as f32: pointers into the cache (F32) or widened into `rows`. */
static void widen_rows(const ts_flash_args *a, const char *base, size_t row_bytes, int t, int n, int width, float *rows,
                       const float **out) {
    /* The rows two calls ahead (without this the widening waited on memory most of its time):
     * F32 rows are not copied, so all at once; F16 rows a line of the row eight positions ahead
     * every other 16-value step of the copy, not in a burst before it (see scores_pm below). */
    if (a->kv_type == TS_TYPE_F32) ts_flash_prefetch_rows(base, row_bytes, t + 8, 4, (size_t)width * 4);
    for (int r = 0; r < n; r++) {
        const char *src = base + (size_t)(t + r) * row_bytes;
        if (a->kv_type == TS_TYPE_F32) {
            out[r] = (const float *)(const void *)src;
            continue;
        }
        const char *pf = base + (size_t)(t + 8 + r) * row_bytes;
        float *dst = rows + (size_t)r * (size_t)width;
        for (int i = 0; i < width; i += 16) {
            if (i % 32 == 0) _mm_prefetch(pf + 2 * (size_t)i, _MM_HINT_T0);
            _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(src + 2 * (size_t)i))));
        }
        out[r] = dst;
    }
}

static inline float hsum16(__m512 v) {
    const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

void ts_flash_scores_avx512(const ts_flash_args *a, int t0, int t1, float *scores, float *rows) {
    const int H = a->n_head, W = a->k_width;
    const float *k[4];
    for (int t = t0; t < t1; t += 4) {
        const int n = t1 - t < 4 ? t1 - t : 4;
        widen_rows(a, a->k, a->k_row_bytes, t, n, W, rows, k);
        for (int r = n; r < 4; r++) k[r] = k[0]; /* padding rows: computed, never stored */
        int h = 0;
        const float *k0 = k[0], *k1 = k[1], *k2 = k[2], *k3 = k[3];
        /* Four heads against four rows: sixteen independent 16-lane FMA chains, eight loads per
         * sixteen FMAs (two heads at a time reloaded each row for each head: ten loads per eight
         * FMAs, and the loads were the limit). Each (head, row) is still one FMA chain over the
         * row and one horizontal sum, so the grouping of heads changes no result. */
        for (; h + 3 < H; h += 4) {
            const float *q0 = a->q + (size_t)h * a->q_stride, *q1 = q0 + a->q_stride, *q2 = q1 + a->q_stride,
                        *q3 = q2 + a->q_stride;
            __m512 acc[4][4];
            for (int x = 0; x < 4; x++)
                for (int r = 0; r < 4; r++) acc[x][r] = _mm512_setzero_ps();
            for (int i = 0; i < W; i += 16) {
                const __m512 v0 = _mm512_loadu_ps(k0 + i), v1 = _mm512_loadu_ps(k1 + i);
                const __m512 v2 = _mm512_loadu_ps(k2 + i), v3 = _mm512_loadu_ps(k3 + i);
                const __m512 qs[4] = {_mm512_loadu_ps(q0 + i), _mm512_loadu_ps(q1 + i), _mm512_loadu_ps(q2 + i),
                                      _mm512_loadu_ps(q3 + i)};
#pragma GCC unroll 4
                for (int x = 0; x < 4; x++) {
                    acc[x][0] = _mm512_fmadd_ps(qs[x], v0, acc[x][0]);
                    acc[x][1] = _mm512_fmadd_ps(qs[x], v1, acc[x][1]);
                    acc[x][2] = _mm512_fmadd_ps(qs[x], v2, acc[x][2]);
                    acc[x][3] = _mm512_fmadd_ps(qs[x], v3, acc[x][3]);
                }
            }
            for (int x = 0; x < 4; x++)
                for (int r = 0; r < n; r++)
                    scores[(size_t)(h + x) * TS_FLASH_CHUNK + (size_t)(t - t0 + r)] = a->scale * hsum16(acc[x][r]);
        }
        /* Two heads against four rows: eight independent 16-lane FMA chains, six loads per eight FMAs;
         * named registers rather than arrays so that nothing spills to the stack. */
        for (; h + 1 < H; h += 2) {
            const float *qa_row = a->q + (size_t)h * a->q_stride, *qb_row = qa_row + a->q_stride;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            for (int i = 0; i < W; i += 16) {
                const __m512 qa = _mm512_loadu_ps(qa_row + i), qb = _mm512_loadu_ps(qb_row + i);
                const __m512 v0 = _mm512_loadu_ps(k0 + i), v1 = _mm512_loadu_ps(k1 + i);
                const __m512 v2 = _mm512_loadu_ps(k2 + i), v3 = _mm512_loadu_ps(k3 + i);
                a0 = _mm512_fmadd_ps(qa, v0, a0);
                a1 = _mm512_fmadd_ps(qa, v1, a1);
                a2 = _mm512_fmadd_ps(qa, v2, a2);
                a3 = _mm512_fmadd_ps(qa, v3, a3);
                b0 = _mm512_fmadd_ps(qb, v0, b0);
                b1 = _mm512_fmadd_ps(qb, v1, b1);
                b2 = _mm512_fmadd_ps(qb, v2, b2);
                b3 = _mm512_fmadd_ps(qb, v3, b3);
            }
            const __m512 acc[2][4] = {{a0, a1, a2, a3}, {b0, b1, b2, b3}};
            for (int r = 0; r < n; r++) {
                scores[(size_t)h * TS_FLASH_CHUNK + (size_t)(t - t0 + r)] = a->scale * hsum16(acc[0][r]);
                scores[(size_t)(h + 1) * TS_FLASH_CHUNK + (size_t)(t - t0 + r)] = a->scale * hsum16(acc[1][r]);
            }
        }
        for (; h < H; h++) {
            const float *q0 = a->q + (size_t)h * a->q_stride;
            __m512 acc[4];
            for (int r = 0; r < 4; r++) acc[r] = _mm512_setzero_ps();
            for (int i = 0; i < W; i += 16) {
                const __m512 qa = _mm512_loadu_ps(q0 + i);
                for (int r = 0; r < 4; r++) acc[r] = _mm512_fmadd_ps(qa, _mm512_loadu_ps(k[r] + i), acc[r]);
            }
            for (int r = 0; r < n; r++) scores[(size_t)h * TS_FLASH_CHUNK + (size_t)(t - t0 + r)] = a->scale * hsum16(acc[r]);
        }
    }
}

void ts_flash_values_avx512(const ts_flash_args *a, int t0, int t1, const float *p, float *out, float *rows) {
    const int H = a->n_head, W = a->v_width;
    const float *v[4];
    for (int t = t0; t < t1; t += 4) {
        const int n = t1 - t < 4 ? t1 - t : 4;
        widen_rows(a, a->v, a->v_row_bytes, t, n, W, rows, v);
        int h = 0;
        if (n == 4) {
            const float *v0 = v[0], *v1 = v[1], *v2 = v[2], *v3 = v[3];
            /* Four heads per pass share the row loads: eight loads and four stores per sixteen
             * FMAs. Each head's sum still adds the rows in position order. */
            for (; h + 3 < H; h += 4) {
                __m512 pw[4][4];
                for (int x = 0; x < 4; x++) {
                    const float *px = p + (size_t)(h + x) * TS_FLASH_CHUNK + (size_t)(t - t0);
                    for (int r = 0; r < 4; r++) pw[x][r] = _mm512_set1_ps(px[r]);
                }
                float *o0 = out + (size_t)h * (size_t)W;
                for (int i = 0; i < W; i += 16) {
                    const __m512 x0 = _mm512_loadu_ps(v0 + i), x1 = _mm512_loadu_ps(v1 + i);
                    const __m512 x2 = _mm512_loadu_ps(v2 + i), x3 = _mm512_loadu_ps(v3 + i);
#pragma GCC unroll 4
                    for (int x = 0; x < 4; x++) {
                        float *o = o0 + (size_t)x * (size_t)W + i;
                        __m512 y = _mm512_loadu_ps(o);
                        y = _mm512_fmadd_ps(pw[x][0], x0, y);
                        y = _mm512_fmadd_ps(pw[x][1], x1, y);
                        y = _mm512_fmadd_ps(pw[x][2], x2, y);
                        y = _mm512_fmadd_ps(pw[x][3], x3, y);
                        _mm512_storeu_ps(o, y);
                    }
                }
            }
            /* Two heads per pass share the row loads: six loads and two stores per eight FMAs. */
            for (; h + 1 < H; h += 2) {
                const float *pa = p + (size_t)h * TS_FLASH_CHUNK + (size_t)(t - t0), *pb = pa + TS_FLASH_CHUNK;
                const __m512 pa0 = _mm512_set1_ps(pa[0]), pa1 = _mm512_set1_ps(pa[1]), pa2 = _mm512_set1_ps(pa[2]),
                             pa3 = _mm512_set1_ps(pa[3]);
                const __m512 pb0 = _mm512_set1_ps(pb[0]), pb1 = _mm512_set1_ps(pb[1]), pb2 = _mm512_set1_ps(pb[2]),
                             pb3 = _mm512_set1_ps(pb[3]);
                float *oa = out + (size_t)h * (size_t)W, *ob = oa + W;
                for (int i = 0; i < W; i += 16) {
                    const __m512 x0 = _mm512_loadu_ps(v0 + i), x1 = _mm512_loadu_ps(v1 + i);
                    const __m512 x2 = _mm512_loadu_ps(v2 + i), x3 = _mm512_loadu_ps(v3 + i);
                    __m512 ya = _mm512_loadu_ps(oa + i), yb = _mm512_loadu_ps(ob + i);
                    ya = _mm512_fmadd_ps(pa0, x0, ya);
                    yb = _mm512_fmadd_ps(pb0, x0, yb);
                    ya = _mm512_fmadd_ps(pa1, x1, ya);
                    yb = _mm512_fmadd_ps(pb1, x1, yb);
                    ya = _mm512_fmadd_ps(pa2, x2, ya);
                    yb = _mm512_fmadd_ps(pb2, x2, yb);
                    ya = _mm512_fmadd_ps(pa3, x3, ya);
                    yb = _mm512_fmadd_ps(pb3, x3, yb);
                    _mm512_storeu_ps(oa + i, ya);
                    _mm512_storeu_ps(ob + i, yb);
                }
            }
        }
        for (; h < H; h++) {
            const float *ph = p + (size_t)h * TS_FLASH_CHUNK + (size_t)(t - t0);
            float *o = out + (size_t)h * (size_t)W;
            if (n == 4) {
                const __m512 p0 = _mm512_set1_ps(ph[0]), p1 = _mm512_set1_ps(ph[1]), p2 = _mm512_set1_ps(ph[2]),
                             p3 = _mm512_set1_ps(ph[3]);
                for (int i = 0; i < W; i += 16) {
                    __m512 acc = _mm512_loadu_ps(o + i);
                    acc = _mm512_fmadd_ps(p0, _mm512_loadu_ps(v[0] + i), acc);
                    acc = _mm512_fmadd_ps(p1, _mm512_loadu_ps(v[1] + i), acc);
                    acc = _mm512_fmadd_ps(p2, _mm512_loadu_ps(v[2] + i), acc);
                    acc = _mm512_fmadd_ps(p3, _mm512_loadu_ps(v[3] + i), acc);
                    _mm512_storeu_ps(o + i, acc);
                }
            } else {
                for (int r = 0; r < n; r++) {
                    const __m512 pr = _mm512_set1_ps(ph[r]);
                    for (int i = 0; i < W; i += 16)
                        _mm512_storeu_ps(o + i, _mm512_fmadd_ps(pr, _mm512_loadu_ps(v[r] + i), _mm512_loadu_ps(o + i)));
                }
            }
        }
    }
}

double ts_flash_exp_row_avx512(float *s, int n, float mx) {
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    const __m512 m = _mm512_set1_ps(mx);
    int t = 0;
    for (; t + 16 <= n; t += 16) {
        const __m512 e = ts_exp16_avx512(_mm512_sub_ps(_mm512_loadu_ps(s + t), m));
        _mm512_storeu_ps(s + t, e);
        lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    double total = _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
    for (; t < n; t++) {
        s[t] = ts_flash_exp(s[t] - mx);
        total += s[t];
    }
    return total;
}

/* ---- Position-major kernels ----------------------------------------------------------------------
 * For groups of a multiple of 8 heads (MLA's 16 or 128 heads share one latent cache): the scores of
 * a chunk are kept position-major (scores[(t - t0) * H + h]) and the cache rows are converted from
 * f16 in registers, never stored. Tiles of 4 heads x 4 rows (scores) and 4 heads x 64 values (value
 * sums) keep 16 accumulators in registers for a whole row or 32 positions, which halves the loads
 * per FMA of the head-major kernels above and drops their widening pass and their output
 * read-modify-writes. Each (head, row) dot product is still one 16-lane FMA chain over the row with
 * hsum16's pairing of lanes (reduce16), and each head's value sum still adds the rows in position
 * order, so the scores and sums equal the head-major kernels' bit for bit. */

/* Sixteen accumulators in, one vector out whose lane j is hsum16(acc[j]), summed with exactly
 * hsum16's pairs (lanes i and i+8, then i and i+4, i and i+2, i and i+1): 30 shuffles and 15 adds
 * for sixteen sums instead of sixteen separate reductions. */
static inline __m512 reduce16(const __m512 *acc) {
    __m512 v1[8], v2[4], v3[2];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) /* lanes i + (i + 8): acc[2j] in the low 256 bits, acc[2j+1] in the high */
        v1[j] = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2 * j], acc[2 * j + 1], 0x44),
                              _mm512_shuffle_f32x4(acc[2 * j], acc[2 * j + 1], 0xEE));
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) /* + 4: one accumulator per 128-bit lane */
        v2[j] = _mm512_add_ps(_mm512_shuffle_f32x4(v1[2 * j], v1[2 * j + 1], 0x88),
                              _mm512_shuffle_f32x4(v1[2 * j], v1[2 * j + 1], 0xDD));
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++) /* + 2 */
        v3[j] = _mm512_add_ps(_mm512_shuffle_ps(v2[2 * j], v2[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_ps(v2[2 * j], v2[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* + 1: lane 4k + m now holds acc[4m + k] */
    const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(v3[0], v3[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_ps(v3[0], v3[1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), r);
}

/* 16 cache values at element i of a row, as f32 (f16 is converted in the register). */
static inline __attribute__((always_inline)) __m512 load_row16(const char *row, int i, bool f16) {
    if (f16) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(row + 2 * (size_t)i)));
    return _mm512_loadu_ps((const float *)(const void *)row + i);
}

static inline __attribute__((always_inline)) void scores_pm(const ts_flash_args *a, int t0, int t1, float *scores,
                                                            bool f16) {
    const int H = a->n_head, W = a->k_width;
    const size_t qs = a->q_stride, eb = f16 ? 2 : 4, row_lines = ((size_t)W * eb + 63) / 64;
    /* The four rows eight positions ahead are prefetched during the first head groups, each group
     * taking rpg of them (H is a multiple of 8, so 1 or 2) one line after the other, as fast as
     * the group's steps consume lines of their own rows: prefetched in a burst before the loop
     * (36 lines for two of MLA's 1152-byte rows), they filled the miss buffers and stalled the
     * core on the prefetch instructions for 15 % of this kernel's time at depth 8192. */
    const int rpg = H >= 16 ? 1 : 2;
    for (int t = t0; t < t1; t += 4) {
        const int nr = t1 - t < 4 ? t1 - t : 4; /* rows past t1 repeat the last one; dropped */
        const char *k[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) k[r] = a->k + (size_t)(t + (r < nr ? r : nr - 1)) * a->k_row_bytes;
        for (int h0 = 0; h0 < H; h0 += 4) {
            const int g = h0 / 4;
            const char *pfg = a->k + (size_t)(t + 8 + g * rpg) * a->k_row_bytes;
            const float *q = a->q + (size_t)h0 * qs;
            __m512 acc[16]; /* acc[r * 4 + h]: row t + r, head h0 + h */
            /* unrolled: as a loop GCC zeroes the array in memory (rep stos) and then reduces it
             * from there (12 % of an 8-head, 128-wide chunk's time) */
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++) acc[j] = _mm512_setzero_ps();
            for (int i = 0; i < W; i += 16) {
                for (size_t j = (size_t)i * rpg * eb / 64; g * rpg < 4 && j < (size_t)(i + 16) * rpg * eb / 64; j++)
                    _mm_prefetch(j < row_lines ? pfg + 64 * j : pfg + a->k_row_bytes + 64 * (j - row_lines), _MM_HINT_T0);
                __m512 x[4];
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) x[r] = load_row16(k[r], i, f16);
#pragma GCC unroll 4
                for (int h = 0; h < 4; h++) {
                    __m512 qv = _mm512_loadu_ps(q + (size_t)h * qs + i);
                    /* One load for the four rows: left to itself the compiler folds the load into
                     * each FMA, and the loads become the limit. */
                    __asm__("" : "+v"(qv));
#pragma GCC unroll 4
                    for (int r = 0; r < 4; r++) acc[r * 4 + h] = _mm512_fmadd_ps(qv, x[r], acc[r * 4 + h]);
                }
            }
            const __m512 sv = _mm512_mul_ps(_mm512_set1_ps(a->scale), reduce16(acc));
            float *row = scores + (size_t)(t - t0) * H + h0;
            _mm_storeu_ps(row, _mm512_castps512_ps128(sv));
            if (nr > 1) _mm_storeu_ps(row + H, _mm512_extractf32x4_ps(sv, 1));
            if (nr > 2) _mm_storeu_ps(row + 2 * (size_t)H, _mm512_extractf32x4_ps(sv, 2));
            if (nr > 3) _mm_storeu_ps(row + 3 * (size_t)H, _mm512_extractf32x4_ps(sv, 3));
        }
    }
}

void ts_flash_scores_pm_avx512(const ts_flash_args *a, int t0, int t1, float *scores) {
    if (a->kv_type == TS_TYPE_F16)
        scores_pm(a, t0, t1, scores, true);
    else
        scores_pm(a, t0, t1, scores, false);
}

void ts_flash_softmax_pm_avx512(float *s, int n, int n_head, float *m, float *sum) {
    int h0 = 0;
    for (; h0 + 16 <= n_head; h0 += 16) {
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int t = 0; t < n; t++) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + (size_t)t * n_head + h0));
        __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd(); /* heads h0..h0+7, h0+8..h0+15 */
        for (int t = 0; t < n; t++) {
            float *p = s + (size_t)t * n_head + h0;
            const __m512 e = ts_exp16_avx512(_mm512_sub_ps(_mm512_loadu_ps(p), mx));
            _mm512_storeu_ps(p, e);
            lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
            hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
        }
        _mm512_storeu_ps(m + h0, mx);
        const __m512 total = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo))),
                                                                 _mm256_castps_pd(_mm512_cvtpd_ps(hi)), 1));
        _mm512_storeu_ps(sum + h0, total);
    }
    /* a last group of 8 (n_head is a multiple of 8) on 8 lanes: masked 16-lane loads and stores
     * serialized this loop (24 % of a padded 8-head group's attention) */
    if (h0 < n_head) ts_flash_softmax_pm8_avx2(s, n, n_head, h0, m, sum);
}

/* The value sums of heads h0 .. h0+HB-1, columns c .. c+16*CV-1, over rows [tb, te): HB * CV = 16
 * accumulators, carried from the previous pass of rows through `out` (fresh at t0). */
static inline __attribute__((always_inline)) void values_block(const ts_flash_args *a, int t0, int tb, int te,
                                                               const float *p, float *out, int h0, int c, bool f16,
                                                               const int HB, const int CV) {
    const int H = a->n_head, W = a->v_width;
    float *o = out + (size_t)h0 * W + c;
    __m512 acc[16]; /* acc[h * CV + k]: head h0 + h, values c + 16k .. */
#pragma GCC unroll 16
    for (int j = 0; j < HB * CV; j++)
        acc[j] = tb == t0 ? _mm512_setzero_ps() : _mm512_loadu_ps(o + (size_t)(j / CV) * W + 16 * (j % CV));
    for (int t = tb; t < te; t++) {
        const char *row = a->v + (size_t)t * a->v_row_bytes;
        __m512 x[4];
#pragma GCC unroll 4
        for (int k = 0; k < CV; k++) x[k] = load_row16(row, c + 16 * k, f16);
        const float *pt = p + (size_t)(t - t0) * H + h0;
#pragma GCC unroll 8
        for (int h = 0; h < HB; h++) {
            const __m512 w = _mm512_set1_ps(pt[h]);
#pragma GCC unroll 4
            for (int k = 0; k < CV; k++) acc[h * CV + k] = _mm512_fmadd_ps(w, x[k], acc[h * CV + k]);
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < HB * CV; j++) _mm512_storeu_ps(o + (size_t)(j / CV) * W + 16 * (j % CV), acc[j]);
}

static inline __attribute__((always_inline)) void values_pm(const ts_flash_args *a, int t0, int t1, const float *p,
                                                            float *out, bool f16) {
    const int H = a->n_head, W = a->v_width;
    /* 32 positions per pass: their value rows stay in L1/L2 across the heads and columns. Blocks
     * of 4 heads x 64 columns (one broadcast of a weight per 4 FMAs, four row loads per 16) ran
     * 1.36x the 8 heads x 32 columns before them (75 -> 102 GFLOP/s on one core of a Zen 4, MLA's
     * 16 heads x 512 values from L2); a last 32 columns in blocks of 8 heads x 32. */
    enum { ROWS = 32 };
    const int W64 = W / 64 * 64;
    for (int tb = t0; tb < t1; tb += ROWS) {
        const int te = tb + ROWS < t1 ? tb + ROWS : t1;
        for (int h0 = 0; h0 < H; h0 += 4)
            for (int c = 0; c < W64; c += 64) values_block(a, t0, tb, te, p, out, h0, c, f16, 4, 4);
        if (W64 < W)
            for (int h0 = 0; h0 < H; h0 += 8) values_block(a, t0, tb, te, p, out, h0, W64, f16, 8, 2);
    }
}

void ts_flash_values_pm_avx512(const ts_flash_args *a, int t0, int t1, const float *p, float *out) {
    if (a->kv_type == TS_TYPE_F16)
        values_pm(a, t0, t1, p, out, true);
    else
        values_pm(a, t0, t1, p, out, false);
}
