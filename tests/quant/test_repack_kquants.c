/* Repacked Q4_K / Q6_K (repack_kquants.h): repacking is lossless, the scalar reference kernel
 * agrees with the file-layout reference dot within float rounding, batch results equal one-token
 * results bit for bit, and the AVX-512 kernel equals the reference bit for bit.
 *
 * Tolerance vs the file-layout dot: both compute the same exact integers per block and differ
 * only in float accumulation order (the file-layout dot sums in 8 lanes, we sum block by block).
 * Each of the ~nblocks + 16 roundings is bounded by 2^-24 times the running sum of magnitudes, so
 * |a - b| <= ~(nblocks + 16) * 6e-8 * M with M = sum_i |w_i| |a_i| (Q4_K: scale and min parts
 * counted separately). With at most 72 blocks that is < 6e-6 M; we allow 1e-5 M. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "quant/repack.h"
#include "quant/repack_kquants.h"
#include "quant/types.h"
#include "util/fp16.h"
#include "test_rng.h"


enum weight_kind { WEIGHTS_QUANTIZED, WEIGHTS_RANDOM_BYTES, WEIGHTS_EXTREME };
enum act_kind { ACT_QUANTIZED, ACT_EXTREME };

/* n_rows rows of file blocks. QUANTIZED: the reference quantizer on gaussian floats with row-varying
 * magnitudes; RANDOM_BYTES: every byte random (all 6-bit scales/mins, all quants, negative Q6_K
 * scales), sane fp16 d/dmin; EXTREME: maximal quants and scales (and a few zero scales). */
static void make_weights(int type, int n, int n_rows, enum weight_kind kind, rng *r, uint8_t *out) {
    const ts_type_traits *tt = &ts_type_table(TS_ISA_SCALAR)[type];
    const size_t row_bytes = ts_row_size(type, n);
    if (kind == WEIGHTS_QUANTIZED) {
        float *f = malloc(sizeof(float) * (size_t)n);
        for (int row = 0; row < n_rows; row++) {
            const float mag = 0.01f + 2.0f * rng_unit(r);
            for (int i = 0; i < n; i++) f[i] = mag * rng_gauss(r) + (row % 3 == 0 ? 0.3f * mag : 0.0f);
            tt->quantize(f, out + (size_t)row * row_bytes, n);
        }
        free(f);
        return;
    }
    for (size_t i = 0; i < row_bytes * (size_t)n_rows; i++)
        out[i] = kind == WEIGHTS_EXTREME ? 0xFF : (uint8_t)rng_next(r);
    const int nb = n / QK_K;
    for (int row = 0; row < n_rows; row++) {
        for (int b = 0; b < nb; b++) {
            uint8_t *blk = out + (size_t)row * row_bytes + (size_t)b * tt->type_size;
            const ts_f16 d = ts_f32_to_f16(kind == WEIGHTS_EXTREME ? 1.0f : 0.001f + 0.01f * rng_unit(r));
            const ts_f16 dmin = ts_f32_to_f16(kind == WEIGHTS_EXTREME ? 0.5f : 0.01f * rng_unit(r));
            if (type == TS_TYPE_Q4_K) {
                block_q4_K *x = (block_q4_K *)blk;
                x->d = d;
                x->dmin = dmin;
                if (kind == WEIGHTS_EXTREME && (row + b) % 4 == 1) memset(x->scales, 0, sizeof x->scales);
            } else {
                block_q6_K *x = (block_q6_K *)blk;
                x->d = d;
                if (kind == WEIGHTS_EXTREME) {
                    for (int j = 0; j < 16; j++) x->scales[j] = (int8_t)((row + j) % 3 == 0 ? -128 : (row + j) % 3 == 1 ? 127 : 0);
                    if ((row + b) % 2) memset(x->ql, 0, sizeof x->ql), memset(x->qh, 0, sizeof x->qh); /* all quants 0: value -32 */
                }
            }
        }
    }
}

/* n_cols rows of Q8_K activations. EXTREME: all quants -128 or 127 in long runs (bsums consistent). */
static void make_acts(int n, int n_cols, enum act_kind kind, rng *r, block_q8_K *out) {
    const ts_type_traits *q8 = &ts_type_table(TS_ISA_SCALAR)[TS_TYPE_Q8_K];
    const int nb = n / QK_K;
    float *f = malloc(sizeof(float) * (size_t)n);
    for (int c = 0; c < n_cols; c++) {
        for (int i = 0; i < n; i++) f[i] = rng_gauss(r) * (c % 2 ? 100.0f : 0.5f);
        q8->from_float(f, out + (size_t)c * nb, n);
        if (kind == ACT_EXTREME) {
            for (int b = 0; b < nb; b++) {
                block_q8_K *y = &out[(size_t)c * nb + b];
                for (int i = 0; i < QK_K; i++) y->qs[i] = (int8_t)(((i / 64 + c + b) % 2) ? -128 : 127);
                for (int j = 0; j < 16; j++) {
                    int sum = 0;
                    for (int i = 0; i < 16; i++) sum += y->qs[16 * j + i];
                    y->bsums[j] = (int16_t)sum;
                }
                y->d = 1e3f;
            }
        }
    }
    free(f);
}

/* Test-side decoding of one repacked row to floats, written independently of the kernels from the
 * layout comment in repack_kquants.h, with the same float operations as the file dequantizers, so
 * the result must equal to_float of the file row exactly. For Q4_K also |scale part| and |min
 * part| magnitudes (for the tolerance). */
static void unpack_row(int type, int n, const void *group, int r, float *w, float *mag) {
    const int nb = n / QK_K;
    for (int b = 0; b < nb; b++) {
        float *wb = w + b * QK_K, *mb = mag + b * QK_K;
        if (type == TS_TYPE_Q4_K) {
            const block_q4_Kx16 *x = (const block_q4_Kx16 *)group + b;
            const float d = ts_f16_to_f32(x->d[r]), dmin = ts_f16_to_f32(x->dmin[r]);
            for (int v = 0; v < QK_K; v++) {
                const int j = v / 32, chunk = v / 64, t = (v % 32) / 4, k = v % 4;
                const uint8_t byte = x->qs[(chunk * 8 + t) * 64 + r * 4 + k];
                const int q = (v % 64) >= 32 ? byte >> 4 : byte & 0xF;
                const float d1 = d * (float)x->scales[j * 16 + r];
                const float m1 = dmin * (float)x->mins[(j / 2) * 32 + r * 2 + j % 2];
                wb[v] = d1 * (float)q - m1;
                mb[v] = fabsf(d1 * (float)q) + fabsf(m1);
            }
        } else {
            const block_q6_Kx16 *x = (const block_q6_Kx16 *)group + b;
            const float d = ts_f16_to_f32(x->d[r]);
            for (int v = 0; v < QK_K; v++) {
                const int j = v / 16, i = (v % 16) / 4, k = v % 4;
                const uint8_t lo = x->qs[j * 192 + (i & 1) * 64 + r * 4 + k];
                const uint8_t hi = x->qs[j * 192 + 128 + r * 4 + k];
                const int q = ((i >= 2 ? lo >> 4 : lo & 0xF) | (((hi >> (2 * i)) & 3) << 4)) - 32;
                wb[v] = d * (float)x->scales[j * 16 + r] * (float)q;
                mb[v] = fabsf(wb[v]);
            }
        }
    }
}

typedef struct {
    int type;
    int n, n_groups, n_cols;
    uint8_t *file;      /* n_groups * 16 rows in the file layout */
    uint8_t *packed;    /* n_groups repacked groups */
    block_q8_K *acts;   /* n_cols rows */
    size_t row_bytes, group_bytes, act_stride;
} problem;

static void problem_init(problem *p, int type, int n, int n_groups, int n_cols, enum weight_kind wk, enum act_kind ak,
                         uint64_t seed) {
    rng r = {seed};
    p->type = type;
    p->n = n;
    p->n_groups = n_groups;
    p->n_cols = n_cols;
    p->row_bytes = ts_row_size(type, n);
    p->group_bytes = ts_repack_group_bytes(type, n);
    p->act_stride = sizeof(block_q8_K) * (size_t)(n / QK_K);
    p->file = malloc(p->row_bytes * TS_REPACK_ROWS * (size_t)n_groups);
    p->packed = malloc(p->group_bytes * (size_t)n_groups);
    p->acts = malloc(p->act_stride * (size_t)n_cols);
    make_weights(type, n, TS_REPACK_ROWS * n_groups, wk, &r, p->file);
    make_acts(n, n_cols, ak, &r, p->acts);
    const ts_repack_traits *rt = ts_repack_traits_for(TS_ISA_SCALAR, type);
    for (int g = 0; g < n_groups; g++)
        rt->repack(n, p->file + (size_t)g * TS_REPACK_ROWS * p->row_bytes, p->row_bytes, p->packed + (size_t)g * p->group_bytes);
}

static void problem_free(problem *p) {
    free(p->file);
    free(p->packed);
    free(p->acts);
}

static int bits_equal(const float *a, const float *b, size_t count) { return memcmp(a, b, sizeof(float) * count) == 0; }

/* Runs `gemm` over the whole problem at once (s: n_cols x (16 n_groups), stride s_stride). */
static void run_gemm(const problem *p, ts_gemm_repacked_fn gemm, float *s, size_t s_stride) {
    gemm(p->n, p->n_groups, p->n_cols, s, s_stride, p->packed, p->acts, p->act_stride);
}

static void check_problem(int type, int n, int n_groups, int n_cols, enum weight_kind wk, enum act_kind ak, uint64_t seed) {
    problem p;
    problem_init(&p, type, n, n_groups, n_cols, wk, ak, seed);
    const char *tn = ts_type_name(type);
    const int rows = TS_REPACK_ROWS * n_groups;
    const size_t s_stride = (size_t)rows + 3; /* padding: a kernel must honour s_stride */
    float *ref = malloc(sizeof(float) * s_stride * (size_t)n_cols);
    float *tmp = malloc(sizeof(float) * s_stride * (size_t)n_cols);
    run_gemm(&p, ts_repack_traits_for(TS_ISA_SCALAR, type)->gemm, ref, s_stride);

    /* 1. lossless repack: decoded repacked rows equal the file's dequantization bit for bit */
    const ts_type_traits *tt = &ts_type_table(TS_ISA_SCALAR)[type];
    float *w_file = malloc(sizeof(float) * (size_t)n), *w_rp = malloc(sizeof(float) * (size_t)n);
    float *mag = malloc(sizeof(float) * (size_t)n), *a = malloc(sizeof(float) * (size_t)n);
    int lossless_bad = 0, close_bad = 0;
    for (int row = 0; row < rows; row++) {
        const int g = row / TS_REPACK_ROWS, r = row % TS_REPACK_ROWS;
        tt->to_float(p.file + (size_t)row * p.row_bytes, w_file, n);
        unpack_row(type, n, p.packed + (size_t)g * p.group_bytes, r, w_rp, mag);
        if (!bits_equal(w_file, w_rp, (size_t)n)) lossless_bad++;
        /* 2. reference vs the file-layout dot */
        for (int c = 0; c < n_cols; c++) {
            const block_q8_K *yc = (const block_q8_K *)((const char *)p.acts + (size_t)c * p.act_stride);
            float file_dot;
            tt->vec_dot(n, &file_dot, p.file + (size_t)row * p.row_bytes, yc);
            double m = 0;
            for (int i = 0; i < n; i++) m += (double)mag[i] * fabs((double)yc[i / QK_K].d * yc[i / QK_K].qs[i % QK_K]);
            const float got = ref[(size_t)c * s_stride + (size_t)row];
            if (!(fabs((double)got - (double)file_dot) <= 1e-5 * m + 1e-30)) {
                if (close_bad < 3)
                    printf("  %s n=%d row=%d col=%d: ref %.9g file dot %.9g (M %.3g)\n", tn, n, row, c, got, file_dot, m);
                close_bad++;
            }
        }
    }
    (void)a;
    CHECK(lossless_bad == 0, "%s n=%d: %d repacked rows differ from the file dequantization", tn, n, lossless_bad);
    CHECK(close_bad == 0, "%s n=%d groups=%d cols=%d: %d results too far from the file-layout dot", tn, n, n_groups, n_cols, close_bad);

    /* 3. batch vs step: one column and one group at a time gives the same bits */
    int step_bad = 0;
    for (int c = 0; c < n_cols; c++) {
        for (int g = 0; g < n_groups; g++) {
            float one[TS_REPACK_ROWS];
            ts_repack_traits_for(TS_ISA_SCALAR, type)
                ->gemm(n, 1, 1, one, 0, p.packed + (size_t)g * p.group_bytes, (const char *)p.acts + (size_t)c * p.act_stride,
                       p.act_stride);
            if (!bits_equal(one, ref + (size_t)c * s_stride + (size_t)g * TS_REPACK_ROWS, TS_REPACK_ROWS)) step_bad++;
        }
    }
    CHECK(step_bad == 0, "%s n=%d: %d (group, column) pairs differ between batch and step (ref)", tn, n, step_bad);

    /* 4. AVX-512 kernels, both one-token walks (pairs of groups, and one group at a time: _seq,
     * which ts_repack_traits_for picks on some CPUs): bit-identical to the reference, batch and step */
#if defined(TS_HAVE_AVX512_KERNELS)
    const ts_gemm_repacked_fn simd_kernels[2] = {type == TS_TYPE_Q4_K ? ts_gemm_rp_q4_K_avx512 : ts_gemm_rp_q6_K_avx512,
                                                 type == TS_TYPE_Q4_K ? ts_gemm_rp_q4_K_avx512_seq : ts_gemm_rp_q6_K_avx512_seq};
#else
    const ts_gemm_repacked_fn simd_kernels[2] = {NULL, NULL};
#endif
    for (int k = 0; k < 2 && ts_repack_traits_for(TS_ISA_AVX512, type); k++) {
        const ts_repack_traits simd_traits = {.gemm = simd_kernels[k]}, *simd = &simd_traits;
        const char *walk = k ? "avx512_seq" : "avx512";
        for (size_t i = 0; i < s_stride * (size_t)n_cols; i++) tmp[i] = NAN;
        run_gemm(&p, simd->gemm, tmp, s_stride);
        int simd_bad = 0;
        for (int c = 0; c < n_cols; c++)
            if (!bits_equal(tmp + (size_t)c * s_stride, ref + (size_t)c * s_stride, (size_t)rows)) simd_bad++;
        CHECK(simd_bad == 0, "%s n=%d groups=%d cols=%d: %s differs from ref in %d columns", tn, n, n_groups, n_cols, walk,
              simd_bad);
        CHECK(isnan(tmp[rows]), "%s: %s wrote into the s_stride padding", tn, walk);
        int simd_step_bad = 0;
        for (int c = 0; c < n_cols; c++) {
            for (int g = 0; g < n_groups; g++) {
                float one[TS_REPACK_ROWS];
                simd->gemm(n, 1, 1, one, 0, p.packed + (size_t)g * p.group_bytes, (const char *)p.acts + (size_t)c * p.act_stride,
                           p.act_stride);
                if (!bits_equal(one, ref + (size_t)c * s_stride + (size_t)g * TS_REPACK_ROWS, TS_REPACK_ROWS)) simd_step_bad++;
            }
        }
        CHECK(simd_step_bad == 0, "%s n=%d: %d (group, column) pairs of %s step differ from ref", tn, n, simd_step_bad, walk);
    }
    free(w_file);
    free(w_rp);
    free(mag);
    free(a);
    free(ref);
    free(tmp);
    problem_free(&p);
}

/* The property checks must be able to fail: a corrupted repacked block must change the result. */
static void check_detects_corruption(int type) {
    problem p;
    problem_init(&p, type, 512, 1, 1, WEIGHTS_QUANTIZED, ACT_QUANTIZED, 99);
    float before[TS_REPACK_ROWS], after[TS_REPACK_ROWS];
    const ts_gemm_repacked_fn gemm = ts_repack_traits_for(TS_ISA_SCALAR, type)->gemm;
    run_gemm(&p, gemm, before, 0);
    p.packed[p.group_bytes - 1] ^= 0x11; /* a quant byte of row 15, last block */
    run_gemm(&p, gemm, after, 0);
    CHECK(before[15] != after[15] && bits_equal(before, after, 15), "%s: corrupting row 15's quants must change row 15 only",
          ts_type_name(type));
    problem_free(&p);
}

/* ---------------------------------------------------------------------------------------------- */
/* AVX2 kernels (repack_kquants_avx2.c), bit-identical to the reference. */

/* The AVX2 kernels by name (the repack table may not list them), with the one-token pairs or one
 * group at a time (seq): NULL where this build has none or the CPU lacks AVX2. */
static ts_gemm_repacked_fn avx2_kquant_walk(int type, bool seq) {
#if defined(TS_HAVE_AVX2_KERNELS)
    if (ts_isa_supported(TS_ISA_AVX2)) {
        if (type == TS_TYPE_Q4_K) return seq ? ts_gemm_rp_q4_K_avx2_seq : ts_gemm_rp_q4_K_avx2;
        return seq ? ts_gemm_rp_q6_K_avx2_seq : ts_gemm_rp_q6_K_avx2;
    }
#endif
    (void)type, (void)seq;
    return NULL;
}
static ts_gemm_repacked_fn avx2_kquant_kernel(int type) { return avx2_kquant_walk(type, false); }
static ts_gemm_repacked_fn avx2_seq_kquant_kernel(int type) { return avx2_kquant_walk(type, true); }

/* Which walk ts_repack_traits_for hands out: one group at a time on AMD family 19h (Zen 3/4), the
 * pairs elsewhere (repack.c); the legacy types always in pairs. */
static void check_walk_policy(void) {
    const bool seq = ts_cpu_amd_family() == 0x19;
    if (ts_isa_supported(TS_ISA_AVX2)) {
        CHECK(ts_repack_traits_for(TS_ISA_AVX2, TS_TYPE_Q4_K)->gemm == avx2_kquant_walk(TS_TYPE_Q4_K, seq), "avx2 q4_K walk");
        CHECK(ts_repack_traits_for(TS_ISA_AVX2, TS_TYPE_Q6_K)->gemm == avx2_kquant_walk(TS_TYPE_Q6_K, seq), "avx2 q6_K walk");
    }
#if defined(TS_HAVE_AVX512_KERNELS)
    if (ts_isa_supported(TS_ISA_AVX512)) {
        CHECK(ts_repack_traits_for(TS_ISA_AVX512, TS_TYPE_Q4_K)->gemm ==
                  (seq ? ts_gemm_rp_q4_K_avx512_seq : ts_gemm_rp_q4_K_avx512),
              "avx512 q4_K walk");
        CHECK(ts_repack_traits_for(TS_ISA_AVX512, TS_TYPE_Q6_K)->gemm ==
                  (seq ? ts_gemm_rp_q6_K_avx512_seq : ts_gemm_rp_q6_K_avx512),
              "avx512 q6_K walk");
    }
#endif
    /* Asked for by name: each walk's products on the ISAs with two, the one walk elsewhere. */
    const enum ts_isa isas[] = {TS_ISA_SCALAR, TS_ISA_AVX2, TS_ISA_AVXVNNI, TS_ISA_AVX512};
    const int types[] = {TS_TYPE_Q4_0, TS_TYPE_Q5_0, TS_TYPE_Q8_0, TS_TYPE_Q4_K, TS_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
            const enum ts_isa isa = isas[i];
            const int t = types[k];
            const ts_repack_traits *dflt = ts_repack_traits_for(isa, t);
            const ts_repack_traits *pairs = ts_repack_traits_walk(isa, t, TS_WALK_PAIRS);
            const ts_repack_traits *one = ts_repack_traits_walk(isa, t, TS_WALK_ONE_GROUP);
            const ts_repack_traits *aut = ts_repack_traits_walk(isa, t, TS_WALK_AUTO);
            CHECK(aut == dflt, "%s %s: the auto walk is not the default", ts_isa_name(isa), ts_type_name(t));
            if (!dflt) {
                CHECK(!pairs && !one, "%s %s: a walk without a kernel", ts_isa_name(isa), ts_type_name(t));
                continue;
            }
            const bool kquant = t == TS_TYPE_Q4_K || t == TS_TYPE_Q6_K;
            const bool two = kquant && (isa == TS_ISA_AVX2 || isa == TS_ISA_AVX512);
            CHECK(pairs && one && pairs->block_bytes == one->block_bytes && pairs->repack == one->repack,
                  "%s %s: the walks read different layouts", ts_isa_name(isa), ts_type_name(t));
            CHECK(two ? pairs != one : pairs == one, "%s %s: %s walks", ts_isa_name(isa), ts_type_name(t), two ? "not two" : "two");
            if (two && isa == TS_ISA_AVX2 && pairs && one)
                CHECK(pairs->gemm == avx2_kquant_walk(t, false) && one->gemm == avx2_kquant_walk(t, true),
                      "avx2 %s: the walks' kernels", ts_type_name(t));
            const enum ts_walk auto_walk = ts_repack_auto_walk(isa, t);
            CHECK(dflt == (auto_walk == TS_WALK_PAIRS ? pairs : one), "%s %s: ts_repack_auto_walk disagrees with the default",
                  ts_isa_name(isa), ts_type_name(t));
            CHECK(!two || auto_walk == (seq ? TS_WALK_ONE_GROUP : TS_WALK_PAIRS), "%s %s: auto walk on this CPU",
                  ts_isa_name(isa), ts_type_name(t));
        }
    }
    (void)seq;
}

/* The AVX-VNNI kernels (repack_kquants_avxvnni.c): NULL where this build or CPU has none. */
static ts_gemm_repacked_fn avxvnni_kquant_kernel(int type) {
    const ts_repack_traits *t = ts_repack_traits_for(TS_ISA_AVXVNNI, type);
    return t ? t->gemm : NULL;
}

/* The whole batch at once (the s_stride padding untouched) and each (group, column) alone give the
 * reference's bits. */
static void check_avx2_problem(const char *isa, ts_gemm_repacked_fn kernel, int type, int n, int n_groups, int n_cols, enum weight_kind wk, enum act_kind ak,
                               uint64_t seed) {
    problem p;
    problem_init(&p, type, n, n_groups, n_cols, wk, ak, seed);
    const char *tn = ts_type_name(type);
    const int rows = TS_REPACK_ROWS * n_groups;
    const size_t s_stride = (size_t)rows + 5;
    float *ref = malloc(sizeof(float) * s_stride * (size_t)n_cols);
    float *got = malloc(sizeof(float) * s_stride * (size_t)n_cols);
    for (size_t i = 0; i < s_stride * (size_t)n_cols; i++) ref[i] = got[i] = NAN;
    run_gemm(&p, ts_repack_traits_for(TS_ISA_SCALAR, type)->gemm, ref, s_stride);
    run_gemm(&p, kernel, got, s_stride);
    int bad = 0, pad_bad = 0;
    for (int c = 0; c < n_cols; c++) {
        const float *gc = got + (size_t)c * s_stride, *rc = ref + (size_t)c * s_stride;
        for (int i = 0; i < rows; i++) {
            if (memcmp(&gc[i], &rc[i], sizeof(float)) != 0) {
                if (bad < 3) printf("  %s %s n=%d col=%d row=%d: %.9g, ref %.9g\n", isa, tn, n, c, i, gc[i], rc[i]);
                bad++;
            }
        }
        for (size_t i = (size_t)rows; i < s_stride; i++) pad_bad += !isnan(gc[i]);
    }
    CHECK(bad == 0, "%s n=%d groups=%d cols=%d: %s differs from ref in %d results", tn, n, n_groups, n_cols, isa, bad);
    CHECK(pad_bad == 0, "%s n=%d: %s wrote %d floats into the s_stride padding", tn, n, isa, pad_bad);
    int step_bad = 0;
    for (int c = 0; c < n_cols; c++) {
        for (int g = 0; g < n_groups; g++) {
            float one[TS_REPACK_ROWS];
            kernel(n, 1, 1, one, 0, p.packed + (size_t)g * p.group_bytes, (const char *)p.acts + (size_t)c * p.act_stride,
                 p.act_stride);
            if (!bits_equal(one, ref + (size_t)c * s_stride + (size_t)g * TS_REPACK_ROWS, TS_REPACK_ROWS)) step_bad++;
        }
    }
    CHECK(step_bad == 0, "%s n=%d: %d (group, column) pairs of %s step differ from ref", tn, n, step_bad, isa);
    free(ref);
    free(got);
    problem_free(&p);
}

/* The AVX2-level kernels of `isa` (avx2 or avxvnni), get(type) giving each; skipped where this
 * build or CPU has none. */
static void check_avx2_kernels(const char *isa, ts_gemm_repacked_fn (*get)(int type)) {
    if (!get(TS_TYPE_Q4_K)) {
        printf("(%s not available: its kernels were not tested)\n", isa);
        return;
    }
    const int types[2] = {TS_TYPE_Q4_K, TS_TYPE_Q6_K};
    uint64_t seed = 1000;
    for (int ti = 0; ti < 2; ti++) {
        const int type = types[ti];
        /* every tile width (Q4_K 1-6 tokens, Q6_K 1-8) and remainders, one block up to past the
         * 64-block chunk */
        const int ns[] = {256, 512, 1536, 2048, 8960, 18432};
        const int cols[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17};
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            for (size_t ci = 0; ci < sizeof cols / sizeof cols[0]; ci++) {
                if (ns[ni] >= 8960 && cols[ci] != 1 && cols[ci] != 7) continue; /* keep the run short */
                check_avx2_problem(isa, get(type), type, ns[ni], (ci % 3) + 1, cols[ci], WEIGHTS_QUANTIZED, ACT_QUANTIZED, seed++);
            }
        }
        /* all 6-bit scales/mins, negative Q6_K scales, and saturating extremes (-128/127 activations
         * against maximal quants: the int16 bounds of the kernel's comment) */
        check_avx2_problem(isa, get(type), type, 1536, 2, 9, WEIGHTS_RANDOM_BYTES, ACT_QUANTIZED, seed++);
        check_avx2_problem(isa, get(type), type, 2048, 2, 5, WEIGHTS_RANDOM_BYTES, ACT_EXTREME, seed++);
        check_avx2_problem(isa, get(type), type, 1536, 2, 6, WEIGHTS_EXTREME, ACT_EXTREME, seed++);
        check_avx2_problem(isa, get(type), type, 256, 1, 3, WEIGHTS_EXTREME, ACT_QUANTIZED, seed++);
        check_avx2_problem(isa, get(type), type, 18432, 1, 4, WEIGHTS_EXTREME, ACT_EXTREME, seed++);
        /* the one-token tiles (both row halves per step) on the same extremes */
        check_avx2_problem(isa, get(type), type, 2048, 2, 1, WEIGHTS_EXTREME, ACT_EXTREME, seed++);
        check_avx2_problem(isa, get(type), type, 1536, 3, 1, WEIGHTS_RANDOM_BYTES, ACT_EXTREME, seed++);
        check_avx2_problem(isa, get(type), type, 18432, 1, 1, WEIGHTS_RANDOM_BYTES, ACT_QUANTIZED, seed++);
        /* one token over 8, 9 and 11 groups: four and five pairs of streams, an odd group between them
         * (and the shapes a wider set of streams would leave 0, 1 and 3 groups over in) */
        for (int groups = 8; groups <= 11; groups += groups == 9 ? 2 : 1)
            check_avx2_problem(isa, get(type), type, 1536, groups, 1, WEIGHTS_RANDOM_BYTES, ACT_EXTREME, seed++);
        /* n = 0: empty dot products are 0, as in the reference */
        float zero_ref[2 * TS_REPACK_ROWS], zero_got[2 * TS_REPACK_ROWS];
        for (int i = 0; i < 2 * TS_REPACK_ROWS; i++) zero_ref[i] = zero_got[i] = NAN;
        uint8_t dummy_x[1] = {0};
        block_q8_K dummy_y;
        memset(&dummy_y, 0, sizeof dummy_y);
        ts_repack_traits_for(TS_ISA_SCALAR, type)->gemm(0, 2, 1, zero_ref, 0, dummy_x, &dummy_y, 0);
        get(type)(0, 2, 1, zero_got, 0, dummy_x, &dummy_y, 0);
        CHECK(bits_equal(zero_ref, zero_got, 2 * TS_REPACK_ROWS) && zero_got[0] == 0.0f, "%s n=0: %s must write zeros",
              ts_type_name(type), isa);
    }
}

int main(void) {
    const int types[2] = {TS_TYPE_Q4_K, TS_TYPE_Q6_K};
    CHECK(sizeof(block_q4_Kx16) == ts_repack_group_bytes(TS_TYPE_Q4_K, QK_K), "q4_K group bytes");
    CHECK(sizeof(block_q6_Kx16) == ts_repack_group_bytes(TS_TYPE_Q6_K, QK_K), "q6_K group bytes");
    const int has_avx512 = ts_isa_supported(TS_ISA_AVX512);
    if (has_avx512) {
        CHECK(ts_repack_traits_for(TS_ISA_AVX512, TS_TYPE_Q4_K) != NULL, "avx512 q4_K traits");
        CHECK(ts_repack_traits_for(TS_ISA_AVX512, TS_TYPE_Q6_K) != NULL, "avx512 q6_K traits");
    }
    uint64_t seed = 1;
    for (int ti = 0; ti < 2; ti++) {
        const int type = types[ti];
        check_detects_corruption(type);
        /* sizes: one block, a few, the model widths (1536, 2048, 8960), and past the kernels'
         * 64-block chunk (18432 = 72 blocks) */
        const int ns[] = {256, 768, 1536, 2048, 8960, 18432};
        /* token counts: the AVX-512 kernel's tiles of 1..8 tokens (1 and 2 on 256-bit halves), two
         * tiles per block for 9..16 (10: 8 + 2), and more than one 16-token chunk (17, 33) */
        const int cols[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 16, 17, 33};
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            const int n = ns[ni];
            for (size_t ci = 0; ci < sizeof cols / sizeof cols[0]; ci++) {
                const int nc = cols[ci];
                if (n >= 8960 && nc != 1 && nc != 5 && nc != 9 && nc != 16 && nc != 17) continue; /* keep the run short */
                const int groups = (ci % 2) ? 3 : 1;
                check_problem(type, n, groups, nc, WEIGHTS_QUANTIZED, ACT_QUANTIZED, seed++);
            }
        }
        check_problem(type, 1536, 2, 9, WEIGHTS_RANDOM_BYTES, ACT_QUANTIZED, seed++);
        check_problem(type, 2048, 2, 4, WEIGHTS_RANDOM_BYTES, ACT_EXTREME, seed++);
        check_problem(type, 1536, 2, 5, WEIGHTS_EXTREME, ACT_EXTREME, seed++);
        check_problem(type, 256, 1, 3, WEIGHTS_EXTREME, ACT_QUANTIZED, seed++);
        check_problem(type, 1536, 2, 2, WEIGHTS_EXTREME, ACT_EXTREME, seed++);
        /* one token over 8, 9 and 11 groups: four and five pairs of streams, an odd group between them
         * (and the shapes a wider set of streams would leave 0, 1 and 3 groups over in) */
        for (int groups = 8; groups <= 11; groups += groups == 9 ? 2 : 1)
            check_problem(type, 1536, groups, 1, WEIGHTS_RANDOM_BYTES, ACT_EXTREME, seed++);
    }
    check_avx2_kernels("avx2", avx2_kquant_kernel);
    check_avx2_kernels("avx2_seq", avx2_seq_kquant_kernel);
    check_walk_policy();
    check_avx2_kernels("avxvnni", avxvnni_kquant_kernel);
    if (!has_avx512) printf("(AVX-512 not available: only the reference kernels were tested)\n");
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
