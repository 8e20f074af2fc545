/* AVX2/FMA/F16C kernels of ts_flash_chunk for F32 and F16 caches (widths multiples of 8). Four
 * cache rows are widened at a time and every query head of the group is run against them while
 * they sit in L1, so the cache is read from memory once per chunk for all heads. Each (head, row)
 * dot product is one 8-lane FMA chain over the row followed by a fixed horizontal sum, and each
 * head's value sum adds the rows in position order: the grouping of rows changes no result. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "ops/attn_flash.h"
#include "ops/vexp_avx2.h"

/* Rows t .. t+n-1 as f32: pointers into the cache (F32) or widened into `rows`. */
static void widen_rows(const ts_flash_args *a, const char *base, size_t row_bytes, int t, int n, int width, float *rows,
                       const float **out) {
    /* The rows two calls ahead (without this the widening waited on memory most of its time),
     * spread over the copy as in attn_flash_avx512.c. */
    if (a->kv_type == TS_TYPE_F32) ts_flash_prefetch_rows(base, row_bytes, t + 8, 4, (size_t)width * 4);
    for (int r = 0; r < n; r++) {
        const char *src = base + (size_t)(t + r) * row_bytes;
        if (a->kv_type == TS_TYPE_F32) {
            out[r] = (const float *)(const void *)src;
            continue;
        }
        const char *pf = base + (size_t)(t + 8 + r) * row_bytes;
        float *dst = rows + (size_t)r * (size_t)width;
        for (int i = 0; i < width; i += 8) {
            if (i % 32 == 0) _mm_prefetch(pf + 2 * (size_t)i, _MM_HINT_T0);
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(src + 2 * (size_t)i))));
        }
        out[r] = dst;
    }
}

static inline float hsum8(__m256 v) {
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

void ts_flash_scores_avx2(const ts_flash_args *a, int t0, int t1, float *scores, float *rows) {
    const int H = a->n_head, W = a->k_width;
    const float *k[4];
    for (int t = t0; t < t1; t += 4) {
        const int n = t1 - t < 4 ? t1 - t : 4;
        widen_rows(a, a->k, a->k_row_bytes, t, n, W, rows, k);
        for (int r = n; r < 4; r++) k[r] = k[0]; /* padding rows: computed, never stored */
        int h = 0;
        /* Two heads against four rows: eight independent FMA chains, six loads per eight FMAs;
         * named registers rather than arrays so that nothing spills to the stack. */
        const float *k0 = k[0], *k1 = k[1], *k2 = k[2], *k3 = k[3];
        for (; h + 1 < H; h += 2) {
            const float *qa_row = a->q + (size_t)h * a->q_stride, *qb_row = qa_row + a->q_stride;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            for (int i = 0; i < W; i += 8) {
                const __m256 qa = _mm256_loadu_ps(qa_row + i), qb = _mm256_loadu_ps(qb_row + i);
                const __m256 v0 = _mm256_loadu_ps(k0 + i), v1 = _mm256_loadu_ps(k1 + i);
                const __m256 v2 = _mm256_loadu_ps(k2 + i), v3 = _mm256_loadu_ps(k3 + i);
                a0 = _mm256_fmadd_ps(qa, v0, a0);
                a1 = _mm256_fmadd_ps(qa, v1, a1);
                a2 = _mm256_fmadd_ps(qa, v2, a2);
                a3 = _mm256_fmadd_ps(qa, v3, a3);
                b0 = _mm256_fmadd_ps(qb, v0, b0);
                b1 = _mm256_fmadd_ps(qb, v1, b1);
                b2 = _mm256_fmadd_ps(qb, v2, b2);
                b3 = _mm256_fmadd_ps(qb, v3, b3);
            }
            const __m256 acc[2][4] = {{a0, a1, a2, a3}, {b0, b1, b2, b3}};
            for (int r = 0; r < n; r++) {
                scores[(size_t)h * TS_FLASH_CHUNK + (size_t)(t - t0 + r)] = a->scale * hsum8(acc[0][r]);
                scores[(size_t)(h + 1) * TS_FLASH_CHUNK + (size_t)(t - t0 + r)] = a->scale * hsum8(acc[1][r]);
            }
        }
        for (; h < H; h++) {
            const float *q0 = a->q + (size_t)h * a->q_stride;
            __m256 acc[4];
            for (int r = 0; r < 4; r++) acc[r] = _mm256_setzero_ps();
            for (int i = 0; i < W; i += 8) {
                const __m256 qa = _mm256_loadu_ps(q0 + i);
                for (int r = 0; r < 4; r++) acc[r] = _mm256_fmadd_ps(qa, _mm256_loadu_ps(k[r] + i), acc[r]);
            }
            for (int r = 0; r < n; r++) scores[(size_t)h * TS_FLASH_CHUNK + (size_t)(t - t0 + r)] = a->scale * hsum8(acc[r]);
        }
    }
}

void ts_flash_values_avx2(const ts_flash_args *a, int t0, int t1, const float *p, float *out, float *rows) {
    const int H = a->n_head, W = a->v_width;
    const float *v[4];
    for (int t = t0; t < t1; t += 4) {
        const int n = t1 - t < 4 ? t1 - t : 4;
        widen_rows(a, a->v, a->v_row_bytes, t, n, W, rows, v);
        int h = 0;
        if (n == 4) {
            /* Two heads per pass share the row loads: six loads and two stores per eight FMAs. */
            const float *v0 = v[0], *v1 = v[1], *v2 = v[2], *v3 = v[3];
            for (; h + 1 < H; h += 2) {
                const float *pa = p + (size_t)h * TS_FLASH_CHUNK + (size_t)(t - t0), *pb = pa + TS_FLASH_CHUNK;
                const __m256 pa0 = _mm256_set1_ps(pa[0]), pa1 = _mm256_set1_ps(pa[1]), pa2 = _mm256_set1_ps(pa[2]),
                             pa3 = _mm256_set1_ps(pa[3]);
                const __m256 pb0 = _mm256_set1_ps(pb[0]), pb1 = _mm256_set1_ps(pb[1]), pb2 = _mm256_set1_ps(pb[2]),
                             pb3 = _mm256_set1_ps(pb[3]);
                float *oa = out + (size_t)h * (size_t)W, *ob = oa + W;
                for (int i = 0; i < W; i += 8) {
                    const __m256 x0 = _mm256_loadu_ps(v0 + i), x1 = _mm256_loadu_ps(v1 + i);
                    const __m256 x2 = _mm256_loadu_ps(v2 + i), x3 = _mm256_loadu_ps(v3 + i);
                    __m256 ya = _mm256_loadu_ps(oa + i), yb = _mm256_loadu_ps(ob + i);
                    ya = _mm256_fmadd_ps(pa0, x0, ya);
                    yb = _mm256_fmadd_ps(pb0, x0, yb);
                    ya = _mm256_fmadd_ps(pa1, x1, ya);
                    yb = _mm256_fmadd_ps(pb1, x1, yb);
                    ya = _mm256_fmadd_ps(pa2, x2, ya);
                    yb = _mm256_fmadd_ps(pb2, x2, yb);
                    ya = _mm256_fmadd_ps(pa3, x3, ya);
                    yb = _mm256_fmadd_ps(pb3, x3, yb);
                    _mm256_storeu_ps(oa + i, ya);
                    _mm256_storeu_ps(ob + i, yb);
                }
            }
        }
        for (; h < H; h++) {
            const float *ph = p + (size_t)h * TS_FLASH_CHUNK + (size_t)(t - t0);
            float *o = out + (size_t)h * (size_t)W;
            if (n == 4) {
                const __m256 p0 = _mm256_set1_ps(ph[0]), p1 = _mm256_set1_ps(ph[1]), p2 = _mm256_set1_ps(ph[2]),
                             p3 = _mm256_set1_ps(ph[3]);
                for (int i = 0; i < W; i += 8) {
                    __m256 acc = _mm256_loadu_ps(o + i);
                    acc = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v[0] + i), acc);
                    acc = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v[1] + i), acc);
                    acc = _mm256_fmadd_ps(p2, _mm256_loadu_ps(v[2] + i), acc);
                    acc = _mm256_fmadd_ps(p3, _mm256_loadu_ps(v[3] + i), acc);
                    _mm256_storeu_ps(o + i, acc);
                }
            } else {
                for (int r = 0; r < n; r++) {
                    const __m256 pr = _mm256_set1_ps(ph[r]);
                    for (int i = 0; i < W; i += 8)
                        _mm256_storeu_ps(o + i, _mm256_fmadd_ps(pr, _mm256_loadu_ps(v[r] + i), _mm256_loadu_ps(o + i)));
                }
            }
        }
    }
}

double ts_flash_exp_row_avx2(float *s, int n, float mx) {
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    const __m256 m = _mm256_set1_ps(mx);
    int t = 0;
    for (; t + 8 <= n; t += 8) {
        const __m256 e = ts_exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + t), m));
        _mm256_storeu_ps(s + t, e);
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    const __m256d both = _mm256_add_pd(lo, hi);
    const __m128d two = _mm_add_pd(_mm256_castpd256_pd128(both), _mm256_extractf128_pd(both, 1));
    double total = _mm_cvtsd_f64(_mm_add_sd(two, _mm_unpackhi_pd(two, two)));
    for (; t < n; t++) {
        s[t] = ts_flash_exp(s[t] - mx);
        total += s[t];
    }
    return total;
}

/* ---- Position-major kernels ----------------------------------------------------------------------
 * The AVX2 counterparts of attn_flash_avx512.c's position-major kernels, for groups of a multiple of
 * 4 heads (MLA's 16 or 128 heads; GQA groups of 4 or 8): scores[(t - t0) * H + h], cache rows
 * converted from f16 in registers, never stored. With sixteen 8-lane registers the tiles are 4 heads
 * x 2 rows (scores: 8 accumulators, 2 rows, 1 query vector) and 4 heads x 16 values (value sums: 8
 * accumulators, 2 row vectors, the weights broadcast from memory): 6 loads per 8 FMAs and no
 * widening pass or read-modify-write of the value sums, where the head-major kernels above load as
 * much and also widen every row through memory and reread and rewrite every head's sums for every
 * four positions. Each (head, row) dot product is one 8-lane FMA chain over the row with hsum8's
 * pairing (reduce8), and each head's value sum adds the rows in position order: scores, numerators
 * and value sums equal the head-major kernels' bit for bit. */

/* Eight accumulators in, one vector out whose lane j is hsum8(acc[j]), with exactly hsum8's pairs
 * (lanes i and i+4, then i and i+2, then i and i+1). */
static inline __m256 reduce8(const __m256 *acc) {
    __m256 v1[4], v2[2];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) /* lanes i + (i + 4): acc[2j] in the low 128 bits, acc[2j+1] in the high */
        v1[j] = _mm256_add_ps(_mm256_permute2f128_ps(acc[2 * j], acc[2 * j + 1], 0x20),
                              _mm256_permute2f128_ps(acc[2 * j], acc[2 * j + 1], 0x31));
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++) /* + 2 */
        v2[j] = _mm256_add_ps(_mm256_shuffle_ps(v1[2 * j], v1[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm256_shuffle_ps(v1[2 * j], v1[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    /* + 1: lane 4k + m now holds acc[2m + k] */
    const __m256 r = _mm256_add_ps(_mm256_shuffle_ps(v2[0], v2[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm256_shuffle_ps(v2[0], v2[1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* 8 cache values at element i of a row, as f32 (f16 is converted in the register). */
static inline __attribute__((always_inline)) __m256 load_row8(const char *row, int i, bool f16) {
    if (f16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(row + 2 * (size_t)i)));
    return _mm256_loadu_ps((const float *)(const void *)row + i);
}

static inline __attribute__((always_inline)) void scores_pm(const ts_flash_args *a, int t0, int t1, float *scores,
                                                            bool f16) {
    const int H = a->n_head, W = a->k_width;
    const size_t qs = a->q_stride, eb = f16 ? 2 : 4, row_lines = ((size_t)W * eb + 63) / 64;
    for (int t = t0; t < t1; t += 2) {
        const bool pair = t + 1 < t1;
        const char *k0 = a->k + (size_t)t * a->k_row_bytes, *k1 = pair ? k0 + a->k_row_bytes : k0;
        const char *pf0 = a->k + (size_t)(t + 8) * a->k_row_bytes, *pf1 = pf0 + a->k_row_bytes; /* see attn_flash_avx512.c */
        for (int h0 = 0; h0 < H; h0 += 4) {
            const float *q = a->q + (size_t)h0 * qs;
            __m256 acc[8]; /* acc[r * 4 + h]: row t + r, head h0 + h */
            /* unrolled: as a loop GCC zeroes the array in memory (rep stos) and then reduces it
             * from there (see attn_flash_avx512.c) */
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_ps();
            for (int i = 0; i < W; i += 8) {
                for (size_t j = i * 2 * eb / 64; h0 == 0 && j < (i + 8) * 2 * eb / 64; j++)
                    _mm_prefetch(j < row_lines ? pf0 + 64 * j : pf1 + 64 * (j - row_lines), _MM_HINT_T0);
                const __m256 x0 = load_row8(k0, i, f16), x1 = load_row8(k1, i, f16);
#pragma GCC unroll 4
                for (int h = 0; h < 4; h++) {
                    __m256 qv = _mm256_loadu_ps(q + (size_t)h * qs + i);
                    __asm__("" : "+x"(qv)); /* one load for both rows (see attn_flash_avx512.c) */
                    acc[h] = _mm256_fmadd_ps(qv, x0, acc[h]);
                    acc[4 + h] = _mm256_fmadd_ps(qv, x1, acc[4 + h]);
                }
            }
            const __m256 s = _mm256_mul_ps(_mm256_set1_ps(a->scale), reduce8(acc));
            float *row = scores + (size_t)(t - t0) * H + h0;
            _mm_storeu_ps(row, _mm256_castps256_ps128(s));
            if (pair) _mm_storeu_ps(row + H, _mm256_extractf128_ps(s, 1));
        }
    }
}

void ts_flash_scores_pm_avx2(const ts_flash_args *a, int t0, int t1, float *scores) {
    if (a->kv_type == TS_TYPE_F16)
        scores_pm(a, t0, t1, scores, true);
    else
        scores_pm(a, t0, t1, scores, false);
}

void ts_flash_softmax_pm_avx2(float *s, int n, int n_head, float *m, float *sum) {
    int h0 = 0;
    for (; h0 + 8 <= n_head; h0 += 8) ts_flash_softmax_pm8_avx2(s, n, n_head, h0, m, sum);
    if (h0 < n_head) {
        /* A last group of 4 heads (n_head is a multiple of 4), with 4-lane loads and stores: masked
         * 8-lane ones overlap the next position's heads, and each load then waited for the store
         * before it. The upper lanes compute exp(0) and are dropped. */
        __m128 mx = _mm_set1_ps(-INFINITY);
        for (int t = 0; t < n; t++) mx = _mm_max_ps(mx, _mm_loadu_ps(s + (size_t)t * n_head + h0));
        __m256d lo = _mm256_setzero_pd();
        for (int t = 0; t < n; t++) {
            float *p = s + (size_t)t * n_head + h0;
            const __m128 e = _mm256_castps256_ps128(ts_exp8_avx2(_mm256_setr_m128(_mm_sub_ps(_mm_loadu_ps(p), mx), _mm_setzero_ps())));
            _mm_storeu_ps(p, e);
            lo = _mm256_add_pd(lo, _mm256_cvtps_pd(e));
        }
        _mm_storeu_ps(m + h0, mx);
        _mm_storeu_ps(sum + h0, _mm256_cvtpd_ps(lo));
    }
}

static inline __attribute__((always_inline)) void values_pm(const ts_flash_args *a, int t0, int t1, const float *p,
                                                            float *out, bool f16) {
    const int H = a->n_head, W = a->v_width;
    enum { ROWS = 16 }; /* positions per pass: their value rows stay in L1 across the heads and columns */
    for (int tb = t0; tb < t1; tb += ROWS) {
        const int te = tb + ROWS < t1 ? tb + ROWS : t1;
        for (int h0 = 0; h0 < H; h0 += 4)
            for (int c = 0; c < W; c += 16) {
                float *o = out + (size_t)h0 * W + c;
                __m256 acc[8]; /* acc[2h + x]: head h0 + h, values c + 8x .. */
#pragma GCC unroll 4
                for (int h = 0; h < 4; h++) {
                    acc[2 * h] = tb == t0 ? _mm256_setzero_ps() : _mm256_loadu_ps(o + (size_t)h * W);
                    acc[2 * h + 1] = tb == t0 ? _mm256_setzero_ps() : _mm256_loadu_ps(o + (size_t)h * W + 8);
                }
                for (int t = tb; t < te; t++) {
                    const char *row = a->v + (size_t)t * a->v_row_bytes;
                    const __m256 x0 = load_row8(row, c, f16), x1 = load_row8(row, c + 8, f16);
                    const float *pt = p + (size_t)(t - t0) * H + h0;
#pragma GCC unroll 4
                    for (int h = 0; h < 4; h++) {
                        const __m256 w = _mm256_broadcast_ss(pt + h);
                        acc[2 * h] = _mm256_fmadd_ps(w, x0, acc[2 * h]);
                        acc[2 * h + 1] = _mm256_fmadd_ps(w, x1, acc[2 * h + 1]);
                    }
                }
#pragma GCC unroll 4
                for (int h = 0; h < 4; h++) {
                    _mm256_storeu_ps(o + (size_t)h * W, acc[2 * h]);
                    _mm256_storeu_ps(o + (size_t)h * W + 8, acc[2 * h + 1]);
                }
            }
    }
}

void ts_flash_values_pm_avx2(const ts_flash_args *a, int t0, int t1, const float *p, float *out) {
    if (a->kv_type == TS_TYPE_F16)
        values_pm(a, t0, t1, p, out, true);
    else
        values_pm(a, t0, t1, p, out, false);
}
