/* Repacked Q4_0 / Q5_0 / Q8_0 kernels (repack_legacy*.c):
 *   1. repacking is lossless: unpacking the 16-row blocks (an independent decoder written here from
 *      the layout comment) gives exactly the file's dequantized values, and the reference gemm on
 *      one-hot activations returns every single weight;
 *   2. the reference gemm agrees with the file-layout scalar dot (vec_dot) within float rounding:
 *      |got - dot| <= 1e-5 * sum |w_i a_i| (the integer sums are equal, only the float order differs);
 *   3. results do not depend on n_cols / n_groups: a batch equals one call per (group, token) bit for
 *      bit, and the kernel writes only its own slots (gaps of s_stride keep a sentinel);
 *   4. the AVX-512 and AVX2 kernels (when the CPU has them) are bit-identical to the reference in
 *      every shape, and have properties 1 and 3 themselves.
 * Shapes: one block, odd block counts, the model widths (1408, 1536, 2048, 8960, 10944) and one
 * wider than the kernels' block chunk; 1 and several groups; n_cols 1..8 and 17 (every tile width, ragged passes).
 * Data: random weights through the scalar quantizer plus extreme codes (Q4_0 nibbles 0/15, Q5_0
 * values 0/31 and alternating high bits, Q8_0
 * -128/127), zero and huge scales, activations with -128/127 quants, zero and large scales. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "quant/repack.h"
#include "quant/repack_legacy.h"
#include "quant/types.h"
#include "util/fp16.h"
#include "test_rng.h"



/* Overwrites some quantized weight blocks with extreme codes and scales the quantizer would not
 * produce from these floats but a file may hold. */
static void add_extreme_weights(rng *r, int type, uint8_t *row, int nb) {
    for (int b = 0; b < nb; b++) {
        const uint64_t k = rng_next(r) % 16;
        if (type == TS_TYPE_Q4_0) {
            block_q4_0 *blk = (block_q4_0 *)row + b;
            if (k == 0) memset(blk->qs, 0x00, sizeof blk->qs);       /* all values -8 */
            else if (k == 1) memset(blk->qs, 0xFF, sizeof blk->qs);  /* all values 7 */
            else if (k == 2) blk->d = 0;                             /* scale 0 */
            else if (k == 3) blk->d = ts_f32_to_f16(-60000.0f);      /* huge scale */
        } else if (type == TS_TYPE_Q5_0) {
            block_q5_0 *blk = (block_q5_0 *)row + b;
            if (k == 0) memset(blk->qs, 0x00, sizeof blk->qs), memset(blk->qh, 0x00, sizeof blk->qh); /* all -16 */
            else if (k == 1) memset(blk->qs, 0xFF, sizeof blk->qs), memset(blk->qh, 0xFF, sizeof blk->qh); /* all 15 */
            else if (k == 2) blk->d = 0;
            else if (k == 3) blk->d = ts_f32_to_f16(-60000.0f);
            else if (k == 4) memset(blk->qh, 0xA5, sizeof blk->qh); /* high bits in a pattern */
        } else {
            block_q8_0 *blk = (block_q8_0 *)row + b;
            if (k == 0) memset(blk->qs, 0x80, sizeof blk->qs);       /* all -128 */
            else if (k == 1) memset(blk->qs, 0x7F, sizeof blk->qs);  /* all 127 */
            else if (k == 2) blk->d = 0;
            else if (k == 3) blk->d = ts_f32_to_f16(-60000.0f);
        }
    }
}

static void add_extreme_acts(rng *r, uint8_t *row, int nb) {
    for (int b = 0; b < nb; b++) {
        block_q8_0 *blk = (block_q8_0 *)row + b;
        const uint64_t k = rng_next(r) % 16;
        if (k == 0) memset(blk->qs, 0x80, sizeof blk->qs); /* -128: outside from_float's range, legal in the type */
        else if (k == 1) memset(blk->qs, 0x7F, sizeof blk->qs);
        else if (k == 2) blk->d = 0;
        else if (k == 3) blk->d = ts_f32_to_f16(30000.0f);
    }
}

/* Independent decoder of the repacked layouts (from the layout comment in repack_legacy.h). */
static float unpack_value(int type, const void *group, int r, int i) {
    const int b = i / 32, j = i % 32;
    if (type == TS_TYPE_Q4_0) {
        const block_q4_0x16 *blk = (const block_q4_0x16 *)group + b;
        const int byte = blk->qs[((j % 16) / 4) * 64 + r * 4 + j % 4];
        const int nib = j < 16 ? (byte & 0x0F) : (byte >> 4);
        return (float)(nib - 8) * ts_f16_to_f32(blk->d[r]);
    }
    if (type == TS_TYPE_Q5_0) {
        const block_q5_0x16 *blk = (const block_q5_0x16 *)group + b;
        const int byte = blk->qs[((j % 16) / 4) * 64 + r * 4 + j % 4];
        const int nib = j < 16 ? (byte & 0x0F) : (byte >> 4);
        const int high = (blk->qh[r * 4 + j % 4] >> (j / 4)) & 1; /* plane j / 4 holds bit 4 of value j */
        return (float)((nib | high << 4) - 16) * ts_f16_to_f32(blk->d[r]);
    }
    const block_q8_0x16 *blk = (const block_q8_0x16 *)group + b;
    return (float)(blk->qs[(j / 4) * 64 + r * 4 + j % 4] - 128) * ts_f16_to_f32(blk->d[r]);
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

typedef struct {
    int type, n, n_groups, n_cols;
    size_t row_bytes, act_bytes, group_bytes;
    uint8_t *w;      /* n_groups * 16 rows in the file layout */
    uint8_t *packed; /* the same repacked */
    uint8_t *act;    /* n_cols activation rows (Q8_0) */
    float *wf, *af;  /* dequantized weights and activations */
} problem;

static void make_problem(problem *p, rng *r, int type, int n, int n_groups, int n_cols, int extremes) {
    const ts_type_traits *tt = ts_type_table(TS_ISA_SCALAR);
    const int rows = n_groups * TS_REPACK_ROWS, nb = n / 32;
    p->type = type, p->n = n, p->n_groups = n_groups, p->n_cols = n_cols;
    p->row_bytes = ts_row_size(type, n);
    p->act_bytes = ts_row_size(TS_TYPE_Q8_0, n);
    p->group_bytes = ts_repack_group_bytes(type, n);
    p->w = malloc(p->row_bytes * rows);
    p->packed = malloc(p->group_bytes * n_groups);
    p->act = malloc(p->act_bytes * n_cols);
    p->wf = malloc(sizeof(float) * n * rows);
    p->af = malloc(sizeof(float) * n * n_cols);
    float *tmp = malloc(sizeof(float) * n);
    for (int i = 0; i < rows; i++) {
        fill_values(r, tmp, n, 0.05f * (float)(1 + i % 5));
        tt[type].quantize(tmp, p->w + p->row_bytes * i, n);
        if (extremes) add_extreme_weights(r, type, p->w + p->row_bytes * i, nb);
        tt[type].to_float(p->w + p->row_bytes * i, p->wf + (size_t)n * i, n);
    }
    for (int c = 0; c < n_cols; c++) {
        fill_values(r, tmp, n, 1.0f + (float)c);
        tt[TS_TYPE_Q8_0].from_float(tmp, p->act + p->act_bytes * c, n);
        if (extremes) add_extreme_acts(r, p->act + p->act_bytes * c, nb);
        tt[TS_TYPE_Q8_0].to_float(p->act + p->act_bytes * c, p->af + (size_t)n * c, n);
    }
    const ts_repack_traits *rt = ts_repack_traits_for(TS_ISA_SCALAR, type);
    for (int g = 0; g < n_groups; g++)
        rt->repack(n, p->w + p->row_bytes * TS_REPACK_ROWS * g, p->row_bytes, p->packed + p->group_bytes * g);
    free(tmp);
}

static void free_problem(problem *p) {
    free(p->w), free(p->packed), free(p->act), free(p->wf), free(p->af);
}

#define SENTINEL 12345.678f

/* Runs gemm on the whole problem with s rows of s_stride = n_groups*16 + 3 (3 gap slots). */
static float *run_gemm(const problem *p, ts_gemm_repacked_fn gemm) {
    const size_t s_stride = (size_t)p->n_groups * TS_REPACK_ROWS + 3;
    float *s = malloc(sizeof(float) * s_stride * p->n_cols);
    for (size_t i = 0; i < s_stride * p->n_cols; i++) s[i] = SENTINEL;
    gemm(p->n, p->n_groups, p->n_cols, s, s_stride, p->packed, p->act, p->act_bytes);
    return s;
}

static void check_kernel(const problem *p, const char *isa, ts_gemm_repacked_fn gemm, const float *ref) {
    const char *tn = ts_type_name(p->type);
    const size_t s_stride = (size_t)p->n_groups * TS_REPACK_ROWS + 3;
    float *s = run_gemm(p, gemm);
    int bad_gap = 0, bad_ref = 0, bad_step = 0;
    for (int c = 0; c < p->n_cols; c++) {
        for (int k = 0; k < 3; k++) bad_gap += !same_bits(s[c * s_stride + p->n_groups * TS_REPACK_ROWS + k], SENTINEL);
        if (ref)
            for (int i = 0; i < p->n_groups * TS_REPACK_ROWS; i++) bad_ref += !same_bits(s[c * s_stride + i], ref[c * s_stride + i]);
    }
    /* Step: one group and one token per call must give the batch's bits. */
    for (int g = 0; g < p->n_groups; g++)
        for (int c = 0; c < p->n_cols; c++) {
            float one[TS_REPACK_ROWS];
            gemm(p->n, 1, 1, one, TS_REPACK_ROWS, p->packed + p->group_bytes * g, p->act + p->act_bytes * c, p->act_bytes);
            for (int r = 0; r < TS_REPACK_ROWS; r++) bad_step += !same_bits(one[r], s[c * s_stride + g * TS_REPACK_ROWS + r]);
        }
    CHECK(bad_gap == 0, "%s %s n=%d g=%d c=%d: %d gap slots written", isa, tn, p->n, p->n_groups, p->n_cols, bad_gap);
    CHECK(bad_ref == 0, "%s %s n=%d g=%d c=%d: %d results differ from the reference bits", isa, tn, p->n,
          p->n_groups, p->n_cols, bad_ref);
    CHECK(bad_step == 0, "%s %s n=%d g=%d c=%d: %d batch results differ from step results", isa, tn, p->n,
          p->n_groups, p->n_cols, bad_step);
    free(s);
}

/* The AVX2 kernels by name: the lead's repack table may not list them yet. NULL where this build
 * has none or the CPU lacks AVX2. */
static ts_gemm_repacked_fn avx2_kernel(int type) {
#if defined(TS_HAVE_AVX2_KERNELS)
    if (ts_isa_supported(TS_ISA_AVX2))
        return type == TS_TYPE_Q4_0 ? ts_gemm_rp_q4_0_avx2 : type == TS_TYPE_Q5_0 ? ts_gemm_rp_q5_0_avx2 : ts_gemm_rp_q8_0_avx2;
#endif
    (void)type;
    return NULL;
}

/* The AVX-VNNI kernels: NULL where this build has none or the CPU lacks AVX-VNNI. */
static ts_gemm_repacked_fn avxvnni_kernel(int type) {
    const ts_repack_traits *t = ts_repack_traits_for(TS_ISA_AVXVNNI, type);
    return t ? t->gemm : NULL;
}

/* Reference vs the file-layout scalar dot, and the SIMD kernels present vs the reference. */
static void check_problem(const problem *p, int have_avx512) {
    const char *tn = ts_type_name(p->type);
    const ts_type_traits *tt = ts_type_table(TS_ISA_SCALAR);
    const size_t s_stride = (size_t)p->n_groups * TS_REPACK_ROWS + 3;
    float *ref = run_gemm(p, ts_repack_traits_for(TS_ISA_SCALAR, p->type)->gemm);
    int bad_dot = 0;
    for (int c = 0; c < p->n_cols; c++)
        for (int i = 0; i < p->n_groups * TS_REPACK_ROWS; i++) {
            float dot;
            tt[p->type].vec_dot(p->n, &dot, p->w + p->row_bytes * i, p->act + p->act_bytes * c);
            double mag = 0.0;
            for (int j = 0; j < p->n; j++) mag += fabs((double)p->wf[(size_t)i * p->n + j] * p->af[(size_t)c * p->n + j]);
            const float got = ref[c * s_stride + i];
            if (!(fabs((double)got - dot) <= 1e-5 * mag + 1e-30)) {
                if (bad_dot < 3) printf("  %s n=%d row %d col %d: repacked %.9g file dot %.9g (mag %g)\n", tn, p->n, i, c, got, dot, mag);
                bad_dot++;
            }
        }
    CHECK(bad_dot == 0, "ref %s n=%d g=%d c=%d: %d results not within rounding of vec_dot", tn, p->n, p->n_groups,
          p->n_cols, bad_dot);
    check_kernel(p, "ref", ts_repack_traits_for(TS_ISA_SCALAR, p->type)->gemm, NULL);
    if (have_avx512) check_kernel(p, "avx512", ts_repack_traits_for(TS_ISA_AVX512, p->type)->gemm, ref);
    if (avx2_kernel(p->type)) check_kernel(p, "avx2", avx2_kernel(p->type), ref);
    if (avxvnni_kernel(p->type)) check_kernel(p, "avxvnni", avxvnni_kernel(p->type), ref);
    free(ref);
}

/* Lossless repack: decoded repacked values == file dequantization, and the gemm on one-hot
 * activations (quant 1, scale 1) returns each weight exactly (d_w * 1 * (q - offset) is exact). */
static void check_lossless(rng *r, int type, int n, int have_avx512) {
    problem p;
    make_problem(&p, r, type, n, 2, 1, 1);
    int bad_unpack = 0;
    for (int g = 0; g < 2; g++)
        for (int row = 0; row < TS_REPACK_ROWS; row++)
            for (int i = 0; i < n; i++)
                bad_unpack += !same_bits(unpack_value(type, p.packed + p.group_bytes * g, row, i),
                                         p.wf[(size_t)(g * TS_REPACK_ROWS + row) * n + i]);
    CHECK(bad_unpack == 0, "%s n=%d: %d repacked values differ from the file's", ts_type_name(type), n, bad_unpack);

    block_q8_0 *onehot = calloc((size_t)n / 32, sizeof(block_q8_0));
    for (int b = 0; b < n / 32; b++) onehot[b].d = ts_f32_to_f16(1.0f);
    int bad_onehot = 0;
    for (int i = 0; i < n; i++) {
        onehot[i / 32].qs[i % 32] = 1;
        const ts_gemm_repacked_fn kernels[4] = {ts_repack_traits_for(TS_ISA_SCALAR, type)->gemm,
                                                have_avx512 ? ts_repack_traits_for(TS_ISA_AVX512, type)->gemm : NULL,
                                                avx2_kernel(type), avxvnni_kernel(type)};
        for (int k = 0; k < 4; k++) {
            if (!kernels[k]) continue;
            float s[2 * TS_REPACK_ROWS];
            kernels[k](n, 2, 1, s, 2 * TS_REPACK_ROWS, p.packed, onehot, 0);
            for (int row = 0; row < 2 * TS_REPACK_ROWS; row++) {
                const float want = p.wf[(size_t)row * n + i];
                /* -0.0 * scale 0 products are +0.0 in the sum; compare values, not zero signs */
                bad_onehot += !(s[row] == want);
            }
        }
        onehot[i / 32].qs[i % 32] = 0;
    }
    CHECK(bad_onehot == 0, "%s n=%d: %d one-hot products differ from the weights", ts_type_name(type), n, bad_onehot);
    free(onehot);
    free_problem(&p);
}

int main(void) {
    const int have_avx512 = ts_isa_supported(TS_ISA_AVX512) && ts_repack_traits_for(TS_ISA_AVX512, TS_TYPE_Q4_0) &&
                            ts_repack_traits_for(TS_ISA_AVX512, TS_TYPE_Q5_0) && ts_repack_traits_for(TS_ISA_AVX512, TS_TYPE_Q8_0);
    if (!have_avx512) printf("no AVX-512 VNNI: its kernels are not checked\n");
    if (!avx2_kernel(TS_TYPE_Q4_0)) printf("no AVX2: its kernels are not checked\n");
    if (!avxvnni_kernel(TS_TYPE_Q4_0)) printf("no AVX-VNNI: its kernels are not checked\n");
    const int types[] = {TS_TYPE_Q4_0, TS_TYPE_Q5_0, TS_TYPE_Q8_0};
    const int widths[] = {32, 96, 1408, 1536, 2048, 8960, 10944};
    const int cols[] = {1, 2, 3, 4, 5, 6, 7, 8, 17};
    rng r = {0x9E3779B97F4A7C15ull};
    for (int t = 0; t < 3; t++) {
        /* Empty rows (n = 0): every kernel writes 0 to its slots, like the reference. */
        const ts_gemm_repacked_fn kernels[4] = {ts_repack_traits_for(TS_ISA_SCALAR, types[t])->gemm,
                                                have_avx512 ? ts_repack_traits_for(TS_ISA_AVX512, types[t])->gemm : NULL,
                                                avx2_kernel(types[t]), avxvnni_kernel(types[t])};
        for (int k = 0; k < 4; k++) {
            if (!kernels[k]) continue;
            float s[2 * 2 * TS_REPACK_ROWS];
            for (int i = 0; i < 2 * 2 * TS_REPACK_ROWS; i++) s[i] = SENTINEL;
            const block_q8_0 none = {0};
            kernels[k](0, 2, 2, s, 2 * TS_REPACK_ROWS, &none, &none, 0);
            int nonzero = 0;
            for (int i = 0; i < 2 * 2 * TS_REPACK_ROWS; i++) nonzero += s[i] != 0.0f;
            CHECK(nonzero == 0, "%s kernel %d: n=0 left %d slots nonzero", ts_type_name(types[t]), k, nonzero);
        }
        CHECK(ts_repack_group_bytes(types[t], 64) == 2 * 16 * ts_row_size(types[t], 32), "group bytes");
        CHECK(ts_repack_group_bytes(types[t], 48) == 0, "group bytes of a ragged width");
        check_lossless(&r, types[t], 96, have_avx512);
        for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++)
            for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
                const int n = widths[w];
                const int groups = n <= 2048 ? 3 : 1;
                problem p;
                make_problem(&p, &r, types[t], n, groups, cols[c], (int)(c % 2));
                check_problem(&p, have_avx512);
                free_problem(&p);
            }
        /* One token (the 16-row decoding tiles) on extreme values, two widths. */
        for (int n = 1408; n <= 2048; n += 640) {
            problem p1;
            make_problem(&p1, &r, types[t], n, 2, 1, 1);
            check_problem(&p1, have_avx512);
            free_problem(&p1);
        }
        /* One token over 5, 8, 9 and 11 groups (pairs of streams and an odd one: legacy_one_token;
         * the shapes a set of four streams would leave 1, 0, 1 and 3 groups over in), extreme values. */
        const int one_token_groups[] = {5, 8, 9, 11};
        for (size_t i = 0; i < sizeof one_token_groups / sizeof one_token_groups[0]; i++) {
            problem pg;
            make_problem(&pg, &r, types[t], 1536, one_token_groups[i], 1, 1);
            check_problem(&pg, have_avx512);
            free_problem(&pg);
        }
        /* Wider than the SIMD kernels' block chunk (they carry the float accumulators through s),
         * with 3 tokens and with one (the one-token path falls back to the general loop). */
        for (int c = 1; c <= 3; c += 2) {
            problem p;
            make_problem(&p, &r, types[t], 32 * 4200, 2, c, 1);
            check_problem(&p, have_avx512);
            free_problem(&p);
        }
    }
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
