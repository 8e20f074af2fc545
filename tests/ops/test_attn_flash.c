/* Chunked (flash) attention against a double-precision reference, for F32, F16, BF16 and Q8_0
 * caches, MLA-like (value = first part of the key row) and GQA-like (separate K and V) shapes,
 * lengths around the chunk boundaries; the AVX2 kernels against the scalar ones; and the
 * flash-decoding order (chunks computed separately, merged afterwards) bit-identical to the
 * one-thread order (also under the AVX-512 kernels where the CPU has them), which is what keeps batch prefill and one-token decode identical. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/attn_flash.h"
#include "util/alloc.h"
#include "util/fp16.h"

#include "check.h"

static uint64_t rng = 777;
static float urand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * 0x1.0p-24) * 2.0f - 1.0f;
}

/* Reference over the cache rows as stored (dequantized with the scalar table), in double. */
static void reference(const ts_flash_args *a, int n_kv, double *out) {
    const ts_type_traits *scalar = ts_type_table(TS_ISA_SCALAR);
    const int H = a->n_head, Kw = a->k_width, Vw = a->v_width;
    float *row = malloc((size_t)(Kw > Vw ? Kw : Vw) * sizeof(float));
    double *s = malloc((size_t)n_kv * sizeof(double));
    for (int h = 0; h < H; h++) {
        const float *q = a->q + (size_t)h * a->q_stride;
        double mx = -INFINITY, total = 0.0;
        for (int t = 0; t < n_kv; t++) {
            scalar[a->kv_type].to_float(a->k + (size_t)t * a->k_row_bytes, row, Kw);
            double d = 0.0;
            for (int i = 0; i < Kw; i++) d += (double)q[i] * row[i];
            s[t] = d * a->scale;
            if (s[t] > mx) mx = s[t];
        }
        for (int t = 0; t < n_kv; t++) total += (s[t] = exp(s[t] - mx));
        for (int i = 0; i < Vw; i++) out[(size_t)h * Vw + i] = 0.0;
        for (int t = 0; t < n_kv; t++) {
            scalar[a->kv_type].to_float(a->v + (size_t)t * a->v_row_bytes, row, Vw);
            for (int i = 0; i < Vw; i++) out[(size_t)h * Vw + i] += s[t] / total * row[i];
        }
    }
    free(row);
    free(s);
}

static double max_err(const float *got, const double *want, size_t n) {
    double e = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs(got[i] - want[i]);
        if (!(d <= e)) e = d; /* NaN propagates as a failure */
    }
    return e;
}

/* The flash-decoding order: every chunk into its own buffer, then merged in order. Every other
 * chunk goes through ts_flash_chunk_cold (non-temporal stores, as attn_split.c writes its partials
 * on x86-64): the same bits either way. */
static void split_order(const ts_flash_args *a, int n_kv, float *work, float *out) {
    const int n_chunks = ts_flash_n_chunks(n_kv);
    const size_t P = ts_flash_partial_floats(a->n_head, a->v_width);
    float *parts = ts_alloc_floats((size_t)n_chunks, P);
    for (int c = n_chunks - 1; c >= 0; c--) { /* reverse: order of computation must not matter */
        const int t0 = c * TS_FLASH_CHUNK, t1 = t0 + TS_FLASH_CHUNK < n_kv ? t0 + TS_FLASH_CHUNK : n_kv;
        (c % 2 ? ts_flash_chunk_cold : ts_flash_chunk)(a, t0, t1, parts + (size_t)c * P, work);
    }
    for (int c = 1; c < n_chunks; c++) ts_flash_merge(a->n_head, a->v_width, parts, parts + (size_t)c * P);
    ts_flash_finish(a->n_head, a->v_width, parts, out, (size_t)a->v_width);
    free(parts);
}

static void store_row(int kv_type, const float *x, void *dst, int n) {
    if (kv_type == TS_TYPE_F32)
        memcpy(dst, x, (size_t)n * sizeof(float));
    else
        ts_type_table(TS_ISA_SCALAR)[kv_type].from_float(x, dst, n);
}

/* The ISA whose kernels ts_flash_simd_level picks `level` for (0 scalar, 1 AVX2, 2 AVX-512), or -1
 * if this build or CPU has none. */
static int isa_for_level(int level) {
    if (level == 0) return TS_ISA_SCALAR;
    if (level == 1 && ts_isa_supported(TS_ISA_AVX2) && ts_flash_simd_level(TS_ISA_AVX2) == 1) return TS_ISA_AVX2;
    if (level == 2 && ts_isa_supported(TS_ISA_AVX512) && ts_flash_simd_level(TS_ISA_AVX512) == 2) return TS_ISA_AVX512;
    return -1;
}

/* simd: the kernel level (isa_for_level); a level this CPU lacks is skipped. */
static void run_case(int kv_type, int n_head, int k_width, int v_width, bool shared_row, int n_kv, int simd) {
    if (isa_for_level(simd) < 0) return;
    const enum ts_isa isa = (enum ts_isa)isa_for_level(simd);
    const ts_type_traits *table = ts_type_table(isa);
    const size_t k_bytes = ts_row_size(kv_type, k_width), v_bytes = ts_row_size(kv_type, v_width);
    char *k = malloc((size_t)n_kv * k_bytes), *v = shared_row ? k : malloc((size_t)n_kv * v_bytes);
    float *row = malloc((size_t)(k_width > v_width ? k_width : v_width) * sizeof(float));
    for (int t = 0; t < n_kv; t++) {
        for (int i = 0; i < k_width; i++) row[i] = urand();
        store_row(kv_type, row, k + (size_t)t * k_bytes, k_width);
        if (!shared_row) {
            for (int i = 0; i < v_width; i++) row[i] = urand();
            store_row(kv_type, row, v + (size_t)t * v_bytes, v_width);
        }
    }
    float *q = malloc((size_t)n_head * k_width * sizeof(float));
    for (int i = 0; i < n_head * k_width; i++) q[i] = 2.0f * urand();
    const ts_flash_args a = {.table = table, .kv_type = kv_type, .n_head = n_head, .q = q, .q_stride = (size_t)k_width,
                             .k = k, .k_row_bytes = k_bytes, .k_width = k_width, .v = v,
                             .v_row_bytes = shared_row ? k_bytes : v_bytes, .v_width = v_width,
                             .scale = 1.0f / sqrtf((float)k_width), .simd = simd};
    const size_t P = ts_flash_partial_floats(n_head, v_width);
    float *work = malloc(ts_flash_work_floats(n_head, k_width, v_width) * sizeof(float));
    float *run = malloc(P * sizeof(float)), *part = malloc(P * sizeof(float));
    float *out = malloc((size_t)n_head * v_width * sizeof(float)), *out2 = malloc((size_t)n_head * v_width * sizeof(float));
    double *want = malloc((size_t)n_head * v_width * sizeof(double));
    ts_flash_attention(&a, n_kv, run, part, work, out, (size_t)v_width);
    reference(&a, n_kv, want);
    /* Q8_0 and BF16 round q for the dot product as ggml does: looser. */
    const double tol = kv_type == TS_TYPE_Q8_0 ? 2e-2 : kv_type == TS_TYPE_BF16 ? 1e-2 : 2e-5;
    const double e = max_err(out, want, (size_t)n_head * v_width);
    CHECK(e < tol, "type %s heads %d k %d v %d n_kv %d simd %d: max error %g", ts_type_name(kv_type), n_head, k_width,
          v_width, n_kv, simd, e);
    split_order(&a, n_kv, work, out2);
    CHECK(memcmp(out, out2, (size_t)n_head * v_width * sizeof(float)) == 0,
          "type %s n_kv %d simd %d: split order differs from the sequential order", ts_type_name(kv_type), n_kv, simd);
    free(k);
    if (!shared_row) free(v);
    free(row); free(q); free(work); free(run); free(part); free(out); free(out2); free(want);
}

/* The SIMD score and value kernels against the scalar ones on the same chunk. */
static void kernels_match(int kv_type, int n_head, int width, int n) {
#if defined(TS_HAVE_AVX2_KERNELS)
    const enum ts_isa isa = ts_isa_best();
    const ts_type_traits *table = ts_type_table(isa);
    if (ts_flash_simd_level(isa) == 0) return;
    const size_t bytes = ts_row_size(kv_type, width);
    char *rows = malloc((size_t)n * bytes);
    float *tmp = malloc((size_t)width * sizeof(float));
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < width; i++) tmp[i] = urand();
        store_row(kv_type, tmp, rows + (size_t)t * bytes, width);
    }
    float *q = malloc((size_t)n_head * width * sizeof(float));
    for (int i = 0; i < n_head * width; i++) q[i] = urand();
    const ts_flash_args a = {.table = table, .kv_type = kv_type, .n_head = n_head, .q = q, .q_stride = (size_t)width,
                             .k = rows, .k_row_bytes = bytes, .k_width = width, .v = rows, .v_row_bytes = bytes,
                             .v_width = width, .scale = 0.5f, .simd = ts_flash_simd_level(isa)};
    float *s1 = malloc((size_t)n_head * TS_FLASH_CHUNK * sizeof(float)), *s2 = malloc((size_t)n_head * TS_FLASH_CHUNK * sizeof(float));
    float *o1 = calloc((size_t)n_head * width, sizeof(float)), *o2 = calloc((size_t)n_head * width, sizeof(float));
    float *buf = malloc(4 * (size_t)width * sizeof(float));
    float *chunk_rows = malloc(4 * (size_t)width * sizeof(float)); /* the SIMD kernels' own rows */
    ts_flash_scores_scalar(&a, 0, n, s1, buf);
#if defined(TS_HAVE_AVX512_KERNELS)
    const bool wide = ts_flash_simd_level(isa) >= 2 && width % 16 == 0;
#else
    const bool wide = false;
#endif
    if (!wide) ts_flash_scores_avx2(&a, 0, n, s2, chunk_rows);
#if defined(TS_HAVE_AVX512_KERNELS)
    else ts_flash_scores_avx512(&a, 0, n, s2, chunk_rows);
#endif
    double e = 0.0;
    for (int h = 0; h < n_head; h++)
        for (int t = 0; t < n; t++) {
            const double d = fabs(s1[h * TS_FLASH_CHUNK + t] - s2[h * TS_FLASH_CHUNK + t]);
            if (!(d <= e)) e = d;
        }
    CHECK(e < 1e-4, "scores simd vs scalar (%s, %d heads, width %d, %d rows): %g", ts_type_name(kv_type), n_head, width, n, e);
    ts_flash_values_scalar(&a, 0, n, s1, o1, buf);
    if (!wide) ts_flash_values_avx2(&a, 0, n, s1, o2, chunk_rows);
#if defined(TS_HAVE_AVX512_KERNELS)
    else ts_flash_values_avx512(&a, 0, n, s1, o2, chunk_rows);
#endif
    e = 0.0;
    for (int i = 0; i < n_head * width; i++) {
        const double d = fabs(o1[i] - o2[i]);
        if (!(d <= e)) e = d;
    }
    CHECK(e < 1e-4, "values simd vs scalar (%s, %d heads, width %d, %d rows): %g", ts_type_name(kv_type), n_head, width, n, e);
    free(rows); free(tmp); free(q); free(s1); free(s2); free(o1); free(o2); free(buf); free(chunk_rows);
#else
    (void)kv_type, (void)n_head, (void)width, (void)n;
#endif
}

/* The position-major AVX-512 kernels (head groups of a multiple of 8) against the head-major ones
 * on the same chunk: scores, numerators and value sums bit for bit, each head's sum of numerators
 * to double rounding; and ts_flash_chunk, which picks them for such groups, against the scalar
 * chunk. v is the first v_width values of each K row, as MLA's latent cache. */
/* The position-major kernels of one level (1 AVX2, 2 AVX-512) against the head-major kernels of the
 * same level: scores, numerators, maxima and value sums bit for bit, numerator sums to double
 * rounding; and the whole chunk (as ts_flash_chunk picks it) against the scalar chunk. */
typedef struct pm_kernels {
    void (*scores)(const ts_flash_args *, int, int, float *, float *);
    void (*values)(const ts_flash_args *, int, int, const float *, float *, float *);
    double (*exp_row)(float *, int, float);
    void (*scores_pm)(const ts_flash_args *, int, int, float *);
    void (*softmax_pm)(float *, int, int, float *, float *);
    void (*values_pm)(const ts_flash_args *, int, int, const float *, float *);
} pm_kernels;

static void position_major_matches(int level, int kv_type, int n_head, int k_width, int v_width, int n) {
    pm_kernels K = {0};
#if defined(TS_HAVE_AVX2_KERNELS)
    if (level == 1)
        K = (pm_kernels){ts_flash_scores_avx2, ts_flash_values_avx2, ts_flash_exp_row_avx2,
                         ts_flash_scores_pm_avx2, ts_flash_softmax_pm_avx2, ts_flash_values_pm_avx2};
#endif
#if defined(TS_HAVE_AVX512_KERNELS)
    if (level == 2)
        K = (pm_kernels){ts_flash_scores_avx512, ts_flash_values_avx512, ts_flash_exp_row_avx512,
                         ts_flash_scores_pm_avx512, ts_flash_softmax_pm_avx512, ts_flash_values_pm_avx512};
#endif
    if (!K.scores || isa_for_level(level) < 0) return;
    const ts_type_traits *table = ts_type_table((enum ts_isa)isa_for_level(level));
    const size_t bytes = ts_row_size(kv_type, k_width);
    char *rows = malloc((size_t)n * bytes);
    float *tmp = malloc((size_t)k_width * sizeof(float));
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < k_width; i++) tmp[i] = 2.0f * urand();
        store_row(kv_type, tmp, rows + (size_t)t * bytes, k_width);
    }
    float *q = malloc((size_t)n_head * k_width * sizeof(float));
    for (int i = 0; i < n_head * k_width; i++) q[i] = 2.0f * urand();
    const ts_flash_args a = {.table = table, .kv_type = kv_type, .n_head = n_head, .q = q, .q_stride = (size_t)k_width,
                             .k = rows, .k_row_bytes = bytes, .k_width = k_width, .v = rows, .v_row_bytes = bytes,
                             .v_width = v_width, .scale = 0.125f, .simd = level};
    const size_t S = (size_t)n_head * TS_FLASH_CHUNK, O = (size_t)n_head * v_width;
    float *hm = malloc(S * sizeof(float)), *pm = malloc(S * sizeof(float)), *wrows = malloc(4 * (size_t)k_width * sizeof(float));
    float *o1 = calloc(O, sizeof(float)), *o2 = malloc(O * sizeof(float));
    float *m = malloc((size_t)n_head * sizeof(float)), *sum = malloc((size_t)n_head * sizeof(float));
    K.scores(&a, 0, n, hm, wrows);
    K.scores_pm(&a, 0, n, pm);
    int bad = 0;
    for (int h = 0; h < n_head; h++)
        for (int t = 0; t < n; t++) bad += memcmp(&hm[h * TS_FLASH_CHUNK + t], &pm[t * n_head + h], sizeof(float)) != 0;
    CHECK(bad == 0, "position-major scores (level %d, %s, %d heads, k %d, %d rows): %d differ", level, ts_type_name(kv_type),
          n_head, k_width, n, bad);
    K.softmax_pm(pm, n, n_head, m, sum);
    int bad_p = 0, bad_m = 0, bad_sum = 0;
    for (int h = 0; h < n_head; h++) {
        float *row = hm + (size_t)h * TS_FLASH_CHUNK, mx = -INFINITY;
        for (int t = 0; t < n; t++) mx = row[t] > mx ? row[t] : mx;
        const float total = (float)K.exp_row(row, n, mx);
        bad_m += m[h] != mx;
        bad_sum += fabsf(sum[h] - total) > 0x1p-23f * total;
        for (int t = 0; t < n; t++) bad_p += memcmp(&row[t], &pm[t * n_head + h], sizeof(float)) != 0;
    }
    CHECK(bad_p == 0 && bad_m == 0 && bad_sum == 0,
          "position-major softmax (level %d, %d heads, %d rows): %d numerators, %d maxima, %d sums differ", level, n_head, n,
          bad_p, bad_m, bad_sum);
    K.values(&a, 0, n, hm, o1, wrows);
    for (size_t i = 0; i < O; i++) o2[i] = NAN; /* written, not added to */
    K.values_pm(&a, 0, n, pm, o2);
    CHECK(memcmp(o1, o2, O * sizeof(float)) == 0, "position-major value sums (level %d, %s, %d heads, v %d, %d rows) differ",
          level, ts_type_name(kv_type), n_head, v_width, n);
    /* The whole chunk as ts_flash_chunk computes it, against the scalar chunk. */
    const size_t P = ts_flash_partial_floats(n_head, v_width);
    float *work = ts_alloc_floats(1, ts_flash_work_floats(n_head, k_width, v_width));
    float *part_simd = malloc(P * sizeof(float)), *part_scalar = malloc(P * sizeof(float));
    ts_flash_chunk(&a, 0, n, part_simd, work);
    ts_flash_args scalar = a;
    scalar.simd = 0;
    ts_flash_chunk(&scalar, 0, n, part_scalar, work);
    double e = 0.0;
    for (size_t i = 0; i < P; i++) {
        const double d = fabs(part_simd[i] - part_scalar[i]) / (1.0 + fabs(part_scalar[i]));
        if (!(d <= e)) e = d;
    }
    CHECK(e < 1e-4, "position-major chunk vs scalar (level %d, %s, %d heads, %d rows): %g", level, ts_type_name(kv_type),
          n_head, n, e);
    free(rows); free(tmp); free(q); free(hm); free(pm); free(wrows); free(o1); free(o2); free(m); free(sum);
    free(work); free(part_simd); free(part_scalar);
}

/* A SIMD exp row (mx = 0) over x[0..n) for n = n_max down to n_max - tails: every value the
 * scalar's e[] bit for bit (tails included), the sum equal to the scalar sum to double rounding. */
/* A GQA group whose head count the AVX-512 position-major kernels pad up to 8 (6 and 7: the
 * R1-Distill-Qwen models) computes, for its real heads, exactly what the same chunk with the zero
 * padding heads written out computes: the padding changes no number of the real heads. Separate
 * K and V rows, as the dense models' cache has them. */
static void padded_heads_match(int kv_type, int n_head, int width, int n) {
    if (isa_for_level(2) < 0) return; /* only the AVX-512 kernels pad */
    const ts_type_traits *table = ts_type_table(TS_ISA_AVX512);
    const int padded = (n_head + 7) / 8 * 8;
    const size_t bytes = ts_row_size(kv_type, width);
    char *k = malloc((size_t)n * bytes), *v = malloc((size_t)n * bytes);
    float *tmp = malloc((size_t)width * sizeof(float));
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < width; i++) tmp[i] = 2.0f * urand();
        store_row(kv_type, tmp, k + (size_t)t * bytes, width);
        for (int i = 0; i < width; i++) tmp[i] = urand();
        store_row(kv_type, tmp, v + (size_t)t * bytes, width);
    }
    float *q = calloc((size_t)padded * width, sizeof(float)); /* heads n_head.. stay zero */
    for (int i = 0; i < n_head * width; i++) q[i] = 2.0f * urand();
    ts_flash_args a = {.table = table, .kv_type = kv_type, .n_head = n_head, .q = q, .q_stride = (size_t)width,
                       .k = k, .k_row_bytes = bytes, .k_width = width, .v = v, .v_row_bytes = bytes,
                       .v_width = width, .scale = 1.0f / sqrtf((float)width), .simd = 2};
    const size_t P = ts_flash_partial_floats(n_head, width), PP = ts_flash_partial_floats(padded, width);
    float *work = ts_alloc_floats(1, ts_flash_work_floats(padded, width, width));
    float *part = malloc(P * sizeof(float)), *whole = malloc(PP * sizeof(float));
    ts_flash_chunk(&a, 0, n, part, work);
    a.n_head = padded;
    ts_flash_chunk(&a, 0, n, whole, work);
    /* part: max[n_head] sum[n_head] values[n_head][width]; whole: the same with `padded` heads */
    int bad = memcmp(part, whole, (size_t)n_head * sizeof(float)) != 0;
    bad += memcmp(part + n_head, whole + padded, (size_t)n_head * sizeof(float)) != 0;
    bad += memcmp(part + 2 * n_head, whole + 2 * padded, (size_t)n_head * width * sizeof(float)) != 0;
    CHECK(bad == 0, "%d heads padded to %d (%s, width %d, %d rows): the real heads' partial state differs",
          n_head, padded, ts_type_name(kv_type), width, n);
    free(k); free(v); free(tmp); free(q); free(work); free(part); free(whole);
}

static void exp_row_matches(double (*row)(float *, int, float), const char *isa, const float *x, const float *e,
                            int n_max, int tails) {
    float *v = malloc((size_t)n_max * sizeof *v);
    for (int n = n_max; n >= n_max - tails; n--) {
        memcpy(v, x, (size_t)n_max * sizeof *v);
        const double total = row(v, n, 0.0f);
        double ref = 0.0;
        for (int i = 0; i < n; i++) ref += e[i];
        CHECK(memcmp(v, e, (size_t)n * sizeof *v) == 0, "%s exp row (n=%d) differs from the scalar", isa, n);
        CHECK(fabs(total - ref) <= 1e-12 * ref, "%s exp row sum %.17g vs %.17g", isa, total, ref);
    }
    free(v);
}

/* ts_flash_exp: within 2 ulp of expf where that is normal, 0 below the cut, exact at 0; the SIMD
 * rows bit-identical to it lane by lane (also in the tails), their sums equal to the scalar one to
 * double rounding. */
static void exp_checks(void) {
    enum { N = 4099 };
    static float x[N], e[N], v[N];
    for (int i = 0; i < N; i++) x[i] = i < 64 ? -(float)i * 1.37f : (i < 128 ? -87.5f + (float)(i - 64) * 0.01f : -100.0f * (urand() * 0.5f + 0.5f));
    x[N - 1] = 0.0f;
    x[N - 2] = -INFINITY;
    x[N - 3] = TS_FLASH_EXP_MIN;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        e[i] = ts_flash_exp(x[i]);
        const float want = expf(x[i]);
        if (x[i] < TS_FLASH_EXP_MIN) {
            if (e[i] != 0.0f) bad++;
        } else if (want >= 0x1p-126f) {
            if (fabsf(e[i] - want) > 2.5e-7f * want) bad++;
        } else if (fabsf(e[i] - want) > 0x1p-148f) {
            bad++;
        }
    }
    CHECK(bad == 0, "ts_flash_exp: %d values off expf", bad);
    CHECK(ts_flash_exp(0.0f) == 1.0f, "exp(0) = %a", (double)ts_flash_exp(0.0f));
    const double want_total = ts_flash_exp_row_scalar(memcpy(v, x, sizeof x), N, 0.0f);
    CHECK(memcmp(v, e, sizeof e) == 0, "scalar row differs from ts_flash_exp");
    (void)want_total;
#if defined(TS_HAVE_AVX2_KERNELS)
    if (ts_isa_supported(TS_ISA_AVX2)) exp_row_matches(ts_flash_exp_row_avx2, "AVX2", x, e, N, 9);
#endif
#if defined(TS_HAVE_AVX512_KERNELS)
    if (ts_isa_supported(TS_ISA_AVX512)) exp_row_matches(ts_flash_exp_row_avx512, "AVX-512", x, e, N, 17);
#endif
    /* With a max subtracted: the row is exp(x - mx). */
    for (int i = 0; i < 40; i++) v[i] = x[i] + 3.25f;
    ts_flash_exp_row_scalar(v, 40, 3.25f);
    bool same = true;
    for (int i = 0; i < 40; i++) same &= v[i] == ts_flash_exp((x[i] + 3.25f) - 3.25f);
    CHECK(same, "exp row with a max");
}

int main(void) {
    const int types[] = {TS_TYPE_F32, TS_TYPE_F16, TS_TYPE_BF16, TS_TYPE_Q8_0};
    const int lengths[] = {1, 3, 255, 256, 257, 700};
    for (int simd = 0; simd <= 2; simd++) /* scalar, AVX2, AVX-512 where the CPU has them */
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
            for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
                run_case(types[ti], 5, 96, 64, true, lengths[li], simd);   /* MLA-like, odd head count */
                run_case(types[ti], 2, 64, 64, false, lengths[li], simd);  /* GQA group */
                run_case(types[ti], 16, 576, 512, true, lengths[li], simd); /* V2-Lite's MLA: position-major kernels */
                run_case(types[ti], 24, 96, 64, true, lengths[li], simd);   /* 8 heads past a multiple of 16 */
                run_case(types[ti], 8, 64, 64, false, lengths[li], simd);   /* a GQA group of 8 */
                run_case(types[ti], 12, 128, 128, false, lengths[li], simd); /* AVX2 position-major: 8 + 4 heads */
                run_case(types[ti], 4, 64, 96, false, lengths[li], simd);    /* a GQA group of 4, v of 3 x 32 */
                run_case(types[ti], 6, 128, 128, false, lengths[li], simd);  /* R1-Distill-Qwen-1.5B's group (padded on AVX-512) */
                run_case(types[ti], 7, 128, 128, false, lengths[li], simd);  /* R1-Distill-Qwen-7B's group */
            }
    for (int n = 1; n <= TS_FLASH_CHUNK; n += 85) /* 1, 86, 171, 256: odd and even row counts */
        for (int level = 1; level <= 2; level++) {
            position_major_matches(level, TS_TYPE_F16, 16, 576, 512, n);
            position_major_matches(level, TS_TYPE_F32, 8, 64, 64, n);
            position_major_matches(level, TS_TYPE_F16, 24, 96, 64, n);
            if (level == 1) { /* AVX2 takes groups of 4: a last group of 4 after the softmax's 8-head passes */
                position_major_matches(level, TS_TYPE_F16, 12, 128, 128, n);
                position_major_matches(level, TS_TYPE_F32, 4, 64, 48, n);
            }
            position_major_matches(level, TS_TYPE_F16, 8, 128, 128, n); /* AVX-512: the 8-lane softmax only */
        }
    for (int n = 1; n <= TS_FLASH_CHUNK; n += 85) {
        padded_heads_match(TS_TYPE_F16, 6, 128, n);
        padded_heads_match(TS_TYPE_F16, 7, 128, n);
        padded_heads_match(TS_TYPE_F32, 6, 64, n);
    }
    kernels_match(TS_TYPE_F16, 3, 96, 7);
    kernels_match(TS_TYPE_F32, 4, 64, 256);
    kernels_match(TS_TYPE_F16, 5, 576, 13); /* MLA row width, 16-lane multiple */
    kernels_match(TS_TYPE_F16, 16, 576, 256); /* V2-Lite's heads over a full chunk: head quads only */
    kernels_match(TS_TYPE_F16, 7, 128, 31);   /* a quad, a pair and a single head; a ragged row group */
    kernels_match(TS_TYPE_F32, 6, 128, 9);
    exp_checks();
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
