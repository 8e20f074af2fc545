/* K-quant kernels (Q2_K..Q6_K weights, Q8_K activations): scalar reference vs AVX2, known
 * answers, quantization quality and Q8_K invariants.
 *
 *   test_quant_k            run the tests (exit status 0 = all passed)
 *   test_quant_k --bench    also print kernel throughput (dot GB/s of weight bytes, quantizer MB/s)
 *
 * Tolerance for dot products: the reference and the AVX2 kernel compute the same integer sums per
 * block (checked indirectly: both agree with a float64 dot of the dequantized rows); they differ
 * only in float summation order (8 lanes + FMA vs ggml's generic lane order). Each of the at most
 * ~log2(8) + nblocks/8 + 3 roundings on the way is bounded by 2^-24 times the running sum of
 * magnitudes, so |avx2 - ref| <= ~(nblocks + 16) * 6e-8 * M, where M = sum_i |w_i| |a_i| over the
 * scale and min parts separately (cancellation between them must not shrink the bound). With up
 * to 64 blocks that is < 5e-6 M; we allow 1e-5 M. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant/blocks.h"
#include "quant/kernels.h"
#include "quant/types.h"
#include "test_rng.h"

typedef struct {
    int checks;
    int failures;
} test_stats;

static void expect(test_stats *st, int ok, const char *what, const char *type, int detail) {
    st->checks++;
    if (!ok) {
        st->failures++;
        if (st->failures <= 40) fprintf(stderr, "FAIL: %s [%s] (%d)\n", what, type, detail);
    }
}


/* ------------------------------------------------------------------------------------------ */
/* per-type descriptions                                                                        */

typedef struct {
    const char *name;
    int type;
    size_t block_bytes;
    size_t d_offset;    /* offset of the f16 super-block scale d */
    long dmin_offset;   /* offset of the f16 dmin, -1 if the type has none */
    ts_to_float_fn deq_ref;
    ts_from_float_fn quant_ref;
    ts_vec_dot_fn dot_ref;
#if defined(TS_HAVE_AVX2_KERNELS)
    ts_to_float_fn deq_avx2;
    ts_vec_dot_fn dot_avx2;
#endif
    double rmse_bound; /* relative RMSE bound on N(0,1) data */
} ktype;

#if defined(TS_HAVE_AVX2_KERNELS)
#define AVX2_FNS(t) , ts_dequant_##t##_avx2, ts_dot_##t##_avx2
#else
#define AVX2_FNS(t)
#endif

#define KTYPE(t, id, blk, dmin_off, bound)                                                             \
    {#t, id, sizeof(blk), offsetof(blk, d), dmin_off, ts_dequant_##t##_ref, ts_quant_##t##_ref, ts_dot_##t##_ref \
     AVX2_FNS(t), bound}

/* Bounds are ~10% above what the reference quantizers reach on this (seeded) data: 0.300 / 0.150 /
 * 0.072 / 0.036 / 0.0177. ggml's quantize_row_*_K_ref reach the same on gaussian data. */
static const ktype ktypes[] = {
    KTYPE(q2_K, TS_TYPE_Q2_K, block_q2_K, (long)offsetof(block_q2_K, dmin), 0.33),
    KTYPE(q3_K, TS_TYPE_Q3_K, block_q3_K, -1, 0.165),
    KTYPE(q4_K, TS_TYPE_Q4_K, block_q4_K, (long)offsetof(block_q4_K, dmin), 0.080),
    KTYPE(q5_K, TS_TYPE_Q5_K, block_q5_K, (long)offsetof(block_q5_K, dmin), 0.040),
    KTYPE(q6_K, TS_TYPE_Q6_K, block_q6_K, -1, 0.0195),
};
#define NKTYPES ((int)(sizeof(ktypes) / sizeof(ktypes[0])))

static void put_f16(uint8_t *block, size_t off, ts_f16 v) { memcpy(block + off, &v, sizeof(v)); }

/* f16 super-block scale patterns: normal, tiny subnormal, largest subnormal, zero, large, negative */
static ts_f16 pick_f16(rng *r, int mode) {
    switch (mode) {
    case 0: return ts_f32_to_f16(0.001f + 0.1f * rng_unit(r));
    case 1: return (ts_f16)(1 + rng_next(r) % 0x3FF); /* subnormal */
    case 2: return (ts_f16)0x03FF;
    case 3: return (ts_f16)0;
    case 4: return ts_f32_to_f16(1000.f + 1000.f * rng_unit(r));
    case 5: return (ts_f16)0x7BFF; /* 65504, the largest finite half */
    default: return ts_f32_to_f16(-0.05f * rng_unit(r));
    }
}

/* random block bytes with chosen d/dmin; fill: 0 random, 1 all 0x00, 2 all 0xFF */
static void make_weight_block(const ktype *kt, uint8_t *b, rng *r, int fill, int dmode, int mmode) {
    for (size_t k = 0; k < kt->block_bytes; k++) b[k] = fill == 0 ? (uint8_t)rng_next(r) : fill == 1 ? 0x00 : 0xFF;
    put_f16(b, kt->d_offset, pick_f16(r, dmode));
    if (kt->dmin_offset >= 0) put_f16(b, (size_t)kt->dmin_offset, pick_f16(r, mmode));
}

/* activation block: quantized from random floats, or special patterns */
static void make_act_block(block_q8_K *a, rng *r, int mode) {
    float x[QK_K];
    for (int k = 0; k < QK_K; k++) {
        switch (mode) {
        case 0: x[k] = rng_gauss(r); break;
        case 1: x[k] = 1.f; break;                         /* all +127 */
        case 2: x[k] = (k & 1) ? 1.f : -1.f; break;        /* alternating extremes */
        case 3: x[k] = -1.f; break;                        /* all -127 */
        case 4: x[k] = 0.f; break;                         /* zero block */
        default: x[k] = 1e-30f * rng_gauss(r); break;     /* tiny scale */
        }
    }
    ts_quant_q8_K_ref(x, a, QK_K);
}

/* M = sum_i (|scale part_i| + |min part_i|) * |a_i|, with the parts taken from the dequantization
 * of the block with dmin resp. d zeroed */
static double dot_magnitude(const ktype *kt, const uint8_t *w, const block_q8_K *a, int nb) {
    double m = 0;
    uint8_t tmp[256];
    float part_scale[QK_K], part_min[QK_K], act[QK_K];
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = w + (size_t)b * kt->block_bytes;
        ts_dequant_q8_K_ref(&a[b], act, QK_K);
        memcpy(tmp, blk, kt->block_bytes);
        if (kt->dmin_offset >= 0) put_f16(tmp, (size_t)kt->dmin_offset, 0);
        kt->deq_ref(tmp, part_scale, QK_K);
        memset(part_min, 0, sizeof(part_min));
        if (kt->dmin_offset >= 0) {
            memcpy(tmp, blk, kt->block_bytes);
            put_f16(tmp, kt->d_offset, 0);
            kt->deq_ref(tmp, part_min, QK_K);
        }
        for (int k = 0; k < QK_K; k++) m += (fabs((double)part_scale[k]) + fabs((double)part_min[k])) * fabs((double)act[k]);
    }
    return m;
}

static double dot_f64(const float *w, const float *a, int n) {
    double s = 0;
    for (int k = 0; k < n; k++) s += (double)w[k] * (double)a[k];
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* 1. reference dot == float64 dot of the dequantized rows; AVX2 == reference                 */

static void test_kernels(test_stats *st, int have_avx2) {
    enum { MAXB = 64 };
    static const int block_counts[] = {1, 2, 3, 8, 17, 64};
    rng r = {0x9E3779B97F4A7C15ULL};
    uint8_t *w = malloc(MAXB * 256);
    block_q8_K *a = malloc(MAXB * sizeof(block_q8_K));
    float *fw = malloc(MAXB * QK_K * sizeof(float)), *fw2 = malloc(MAXB * QK_K * sizeof(float));
    float *fa = malloc(MAXB * QK_K * sizeof(float));
    if (!w || !a || !fw || !fw2 || !fa) abort();
    for (int t = 0; t < NKTYPES; t++) {
        const ktype *kt = &ktypes[t];
        double worst_ref = 0, worst_avx = 0;
        for (int trial = 0; trial < 60; trial++) {
            const int nb = block_counts[trial % 6];
            for (int b = 0; b < nb; b++) {
                /* mostly random, with every special pattern appearing regularly */
                const int fill = (trial + b) % 9 == 1 ? 1 : (trial + b) % 9 == 2 ? 2 : 0;
                const int dmode = (int)((trial * 7 + b) % 7), mmode = (int)((trial * 3 + b * 5) % 7);
                make_weight_block(kt, w + (size_t)b * kt->block_bytes, &r, fill, trial < 6 ? 0 : dmode, trial < 6 ? 0 : mmode);
                make_act_block(&a[b], &r, trial < 6 ? 0 : (int)((trial + 3 * b) % 6));
            }
            const int n = nb * QK_K;
            kt->deq_ref(w, fw, n);
            ts_dequant_q8_K_ref(a, fa, n);
            float ref = 0;
            kt->dot_ref(n, &ref, w, a);
            const double mag = dot_magnitude(kt, w, a, nb);
            const double exact = dot_f64(fw, fa, n);
            const double err_ref = fabs((double)ref - exact);
            if (mag > 0 && err_ref / mag > worst_ref) worst_ref = err_ref / mag;
            expect(st, err_ref <= 1e-5 * mag + 1e-35, "ref dot vs float64 dot of dequantized rows", kt->name, trial);
#if defined(TS_HAVE_AVX2_KERNELS)
            if (have_avx2) {
                memset(fw2, 0xA5, (size_t)n * sizeof(float));
                kt->deq_avx2(w, fw2, n);
                expect(st, memcmp(fw, fw2, (size_t)n * sizeof(float)) == 0, "avx2 dequant bit-identical", kt->name, trial);
                float got = 0;
                kt->dot_avx2(n, &got, w, a);
                const double err = fabs((double)got - (double)ref);
                if (mag > 0 && err / mag > worst_avx) worst_avx = err / mag;
                expect(st, err <= 1e-5 * mag + 1e-35, "avx2 dot vs ref dot", kt->name, trial);
            }
#endif
        }
        printf("  %s: dot error / magnitude: ref vs f64 %.2e, avx2 vs ref %.2e\n", kt->name, worst_ref, worst_avx);
    }
    (void)have_avx2;
    free(w);
    free(a);
    free(fw);
    free(fw2);
    free(fa);
}

/* ------------------------------------------------------------------------------------------ */
/* 2. known answers: hand-built blocks, values worked out by hand from the layout               */

static void test_known_answers(test_stats *st) {
    float y[QK_K];
    /* Q2_K: d = 0.5, dmin = 0.25; scales byte j = (min j) << 4 | scale j */
    {
        block_q2_K b;
        memset(&b, 0, sizeof(b));
        b.d = ts_f32_to_f16(0.5f);
        b.dmin = ts_f32_to_f16(0.25f);
        b.scales[0] = 0x23;  /* values 0..15: scale 3, min 2 */
        b.scales[1] = 0xF1;  /* values 16..31: scale 1, min 15 */
        b.scales[6] = 0x0F;  /* values 96..111: scale 15, min 0 */
        b.scales[15] = 0x77; /* values 240..255: scale 7, min 7 */
        b.qs[0] = 0xC6;      /* value 0: bits 0-1 = 2; value 96: bits 6-7 = 3; value 32: 1; 64: 0 */
        b.qs[16] = 0x03;     /* value 16: 3 */
        b.qs[63] = 0x80;     /* value 128+96+31 = 255: bits 6-7 = 2 */
        ts_dequant_q2_K_ref(&b, y, QK_K);
        expect(st, y[0] == 0.5f * 3 * 2 - 0.25f * 2, "KAT value 0", "q2_K", 0);
        expect(st, y[16] == 0.5f * 1 * 3 - 0.25f * 15, "KAT value 16", "q2_K", 16);
        expect(st, y[32] == 0.f, "KAT value 32 (scale 0, min 0)", "q2_K", 32);
        expect(st, y[96] == 0.5f * 15 * 3, "KAT value 96", "q2_K", 96);
        expect(st, y[255] == 0.5f * 7 * 2 - 0.25f * 7, "KAT value 255", "q2_K", 255);
        expect(st, y[241] == -0.25f * 7, "KAT value 241", "q2_K", 241);
    }
    /* Q3_K: d = 0.25. Scale j (6 bits, stored +32): low nibble in byte j (j<8) or high nibble of
     * byte j-8, top 2 bits in byte 8 + j%4 at bit 2*(j/4). Quant = 2 low bits + 4*hmask bit - 4. */
    {
        block_q3_K b;
        memset(&b, 0, sizeof(b));
        b.d = ts_f32_to_f16(0.25f);
        /* scale 0 = 63 - 32 = 31: low nibble 0xF in byte 0, top bits 3 in byte 8 bits 0-1 */
        b.scales[0] = 0x0F;
        b.scales[8] = 0x03;
        /* scale 13 = 0 - 32 = -32: all stored bits 0 (already). scale 9 = 40 - 32 = 8: 40 = 0b10'1000:
         * low nibble 8 -> high nibble of byte 1, top bits 2 -> byte 8 + 1 at bit 2*(9/4)=4 */
        b.scales[1] = 0x80;
        b.scales[9] = 0x20;
        /* value 0: low bits 3, hmask bit set -> 3; value 1: low bits 0, hmask clear -> -4 */
        b.qs[0] = 0x03;
        b.hmask[0] = 0x01;
        /* value 144 = 128 + 16: scale index 9, qs[32 + 16] bits 0-1, hmask[16] bit 4 */
        b.qs[48] = 0x02;
        b.hmask[16] = 0x10;
        /* value 208 = 128 + 64 + 16: scale 13 = -32, qs[48] bits 4-5 = 1, hmask[16] bit 6 clear */
        b.qs[48] |= 0x10;
        ts_dequant_q3_K_ref(&b, y, QK_K);
        expect(st, y[0] == 0.25f * 31 * 3, "KAT value 0", "q3_K", 0);
        expect(st, y[1] == 0.25f * 31 * -4, "KAT value 1", "q3_K", 1);
        expect(st, y[144] == 0.25f * 8 * 2, "KAT value 144", "q3_K", 144);
        expect(st, y[208] == 0.25f * -32 * (1 - 4), "KAT value 208", "q3_K", 208);
        expect(st, y[16] == 0.25f * -32 * -4, "KAT value 16 (scale 1 stored 0)", "q3_K", 16);
    }
    /* Q4_K/Q5_K scales: sub-block 5 has scale 37 (0b10'0101) and min 58 (0b11'1010):
     * byte 9 = 0xA5, byte 1 |= 2 << 6, byte 5 |= 3 << 6. Sub-block 0: scale 1, min 2. */
    {
        block_q4_K b;
        memset(&b, 0, sizeof(b));
        b.d = ts_f32_to_f16(2.f);
        b.dmin = ts_f32_to_f16(0.5f);
        b.scales[0] = 1;
        b.scales[4] = 2;
        b.scales[9] = 0xA5;
        b.scales[1] |= 2 << 6;
        b.scales[5] |= 3 << 6;
        b.qs[0] = 0x0F;      /* value 0 = 15 (sub-block 0); value 32 = 0 (sub-block 1) */
        b.qs[64 + 3] = 0x70; /* chunk 2 (values 128..191): value 128+32+3 = 163 (sub-block 5) = 7 */
        ts_dequant_q4_K_ref(&b, y, QK_K);
        expect(st, y[0] == 2.f * 1 * 15 - 0.5f * 2, "KAT value 0", "q4_K", 0);
        expect(st, y[163] == 2.f * 37 * 7 - 0.5f * 58, "KAT value 163", "q4_K", 163);
        expect(st, y[160] == -0.5f * 58, "KAT value 160", "q4_K", 160);
        expect(st, y[32] == 0.f, "KAT value 32", "q4_K", 32);
    }
    {
        block_q5_K b;
        memset(&b, 0, sizeof(b));
        b.d = ts_f32_to_f16(2.f);
        b.dmin = ts_f32_to_f16(0.5f);
        b.scales[0] = 1;
        b.scales[4] = 2;
        b.scales[9] = 0xA5;
        b.scales[1] |= 2 << 6;
        b.scales[5] |= 3 << 6;
        b.qs[0] = 0x0F;      /* value 0 low bits 15 */
        b.qh[0] = 0x01;      /* value 0 fifth bit (chunk 0, low half -> bit 0) => 31 */
        b.qs[64 + 3] = 0x70; /* value 163 low bits 7 */
        b.qh[3] = 0x20;      /* chunk 2, high half -> bit 5 => 23 */
        ts_dequant_q5_K_ref(&b, y, QK_K);
        expect(st, y[0] == 2.f * 1 * 31 - 0.5f * 2, "KAT value 0", "q5_K", 0);
        expect(st, y[163] == 2.f * 37 * 23 - 0.5f * 58, "KAT value 163", "q5_K", 163);
        expect(st, y[160] == -0.5f * 58, "KAT value 160", "q5_K", 160);
    }
    /* Q6_K: 6-bit quants minus 32, int8 scale per 16 values. Value 128 + 64 + 17 = 209: high
     * nibble of ql[64 + 17], bits 4-5 of qh[32 + 17], scale index 8 + 4 + 1 = 13. */
    {
        block_q6_K b;
        memset(&b, 0, sizeof(b));
        b.d = ts_f32_to_f16(0.125f);
        b.scales[0] = -128;
        b.scales[13] = 100;
        b.ql[0] = 0x0A;                   /* value 0 low 4 bits 10, high 2 bits 0 -> 10 - 32 */
        b.ql[64 + 17] = 0xF0;             /* value 209 low bits 15 */
        b.qh[32 + 17] = 0x30;             /* value 209 high bits 3 -> 63 - 32 = 31 */
        ts_dequant_q6_K_ref(&b, y, QK_K);
        expect(st, y[0] == 0.125f * -128 * (10 - 32), "KAT value 0", "q6_K", 0);
        expect(st, y[209] == 0.125f * 100 * 31, "KAT value 209", "q6_K", 209);
        expect(st, y[1] == 0.125f * -128 * -32, "KAT value 1", "q6_K", 1);
    }
    /* Q8_K: max |x| maps to -127 with its sign folded into d */
    {
        float x[QK_K] = {0};
        x[3] = -2.f;
        x[7] = 1.f;
        x[20] = 2.f; /* same magnitude as x[3], later: x[3] wins */
        block_q8_K q;
        ts_quant_q8_K_ref(x, &q, QK_K);
        expect(st, q.d == 1 / (-127.f / -2.f) && q.qs[3] == -127 && q.qs[20] == 127 && q.qs[7] == 64,
               "KAT q8_K values", "q8_K", 0);
        expect(st, q.bsums[0] == -127 + 64 && q.bsums[1] == 127 && q.bsums[2] == 0, "KAT q8_K bsums", "q8_K", 0);
    }
    /* dot known answer: Q4_K block from above with activations q8 = 1 everywhere, d = 1 */
    {
        block_q4_K b;
        memset(&b, 0, sizeof(b));
        b.d = ts_f32_to_f16(1.f);
        b.dmin = ts_f32_to_f16(1.f);
        b.scales[0] = 3; /* sub-block 0 scale 3, min 1 */
        b.scales[4] = 1;
        for (int k = 0; k < 32; k++) b.qs[k] = 0x02; /* values 0..31 = 2, 32..63 = 0 */
        block_q8_K a;
        memset(&a, 0, sizeof(a));
        a.d = 1.f;
        for (int k = 0; k < QK_K; k++) a.qs[k] = 1;
        for (int k = 0; k < 16; k++) a.bsums[k] = 16;
        float s = 0;
        ts_dot_q4_K_ref(QK_K, &s, &b, &a);
        expect(st, s == 32 * (3 * 2 - 1), "KAT q4_K dot", "q4_K", 0);
#if defined(TS_HAVE_AVX2_KERNELS)
        if (ts_isa_supported(TS_ISA_AVX2)) {
            ts_dot_q4_K_avx2(QK_K, &s, &b, &a);
            expect(st, s == 32 * (3 * 2 - 1), "KAT q4_K dot avx2", "q4_K", 0);
        }
#endif
    }
}

/* ------------------------------------------------------------------------------------------ */
/* 3. quantization quality and robustness of the reference weight quantizers                    */

static void test_quantizers(test_stats *st) {
    enum { NB = 64, N = NB * QK_K };
    rng r = {12345};
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    uint8_t *q = malloc((size_t)NB * 256);
    if (!x || !y || !q) abort();
    for (int k = 0; k < N; k++) x[k] = rng_gauss(&r);
    double prev = 1e9;
    for (int t = 0; t < NKTYPES; t++) {
        const ktype *kt = &ktypes[t];
        kt->quant_ref(x, q, N);
        kt->deq_ref(q, y, N);
        double se = 0, sx = 0;
        for (int k = 0; k < N; k++) {
            se += (double)(y[k] - x[k]) * (y[k] - x[k]);
            sx += (double)x[k] * x[k];
        }
        const double rel = sqrt(se / sx);
        printf("  %s: relative RMSE on N(0,1) = %.4f (bound %.4f)\n", kt->name, rel, kt->rmse_bound);
        expect(st, rel < kt->rmse_bound, "relative RMSE below bound", kt->name, (int)(rel * 1e4));
        expect(st, rel < prev, "error decreases q2_K > q3_K > ... > q6_K", kt->name, t);
        prev = rel;
    }
    /* edge inputs: zeros -> exact zeros; constant; one huge outlier; tiny values; scaled copies */
    for (int t = 0; t < NKTYPES; t++) {
        const ktype *kt = &ktypes[t];
        for (int mode = 0; mode < 5; mode++) {
            for (int k = 0; k < QK_K; k++) {
                switch (mode) {
                case 0: x[k] = 0.f; break;
                case 1: x[k] = 0.75f; break;
                case 2: x[k] = k == 77 ? 1e4f : 0.01f * rng_gauss(&r); break;
                case 3: x[k] = 1e-6f * rng_gauss(&r); break;
                default: x[k] = -3.f - rng_unit(&r); break; /* all negative */
                }
            }
            kt->quant_ref(x, q, QK_K);
            kt->deq_ref(q, y, QK_K);
            double se = 0, sx = 0;
            int finite = 1;
            for (int k = 0; k < QK_K; k++) {
                if (!isfinite(y[k])) finite = 0;
                se += (double)(y[k] - x[k]) * (y[k] - x[k]);
                sx += (double)x[k] * x[k];
            }
            expect(st, finite, "quantize edge input gives finite values", kt->name, mode);
            if (mode == 0) expect(st, se == 0, "zero block stays zero", kt->name, mode);
            /* constant / all-negative blocks: every type represents them to within a few % */
            if (mode == 1 || mode == 4) expect(st, sqrt(se / sx) < 0.08, "constant-like block error", kt->name, mode);
            if (mode == 2) expect(st, fabsf(y[77] - 1e4f) < 1e4f * 0.1f, "outlier preserved", kt->name, mode);
        }
    }
    free(x);
    free(y);
    free(q);
}

/* ------------------------------------------------------------------------------------------ */
/* 4. Q8_K: bsums consistent, error within half a step, AVX2 bit-identical                     */

static void test_q8_K(test_stats *st, int have_avx2) {
    enum { NB = 16, N = NB * QK_K };
    rng r = {777};
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    block_q8_K *a = malloc(NB * sizeof(block_q8_K)), *b = malloc(NB * sizeof(block_q8_K));
    if (!x || !y || !a || !b) abort();
    for (int trial = 0; trial < 12; trial++) {
        for (int k = 0; k < N; k++) {
            const int blk = k / QK_K;
            switch ((blk + trial) % 6) {
            case 0: x[k] = rng_gauss(&r); break;
            case 1: x[k] = 0.f; break;
            case 2: /* max 127 -> iscale = -1, so the half-integers hit exact .5 ties (to even) */
                x[k] = k % QK_K == 5 ? 127.f : (float)((int)(rng_next(&r) % 255) - 127) / 2.f;
                break;
            case 3: x[k] = 1e-38f * rng_gauss(&r); break;                        /* subnormal range */
            case 4: x[k] = (k % QK_K == 200) ? -5.f : (k % QK_K == 250 ? 5.f : rng_gauss(&r)); break;
            default: x[k] = 1e30f * rng_gauss(&r); break;
            }
        }
        ts_quant_q8_K_ref(x, a, N);
        ts_dequant_q8_K_ref(a, y, N);
        if (trial == 0) { /* block 2 is the tie block: each half-integer must go to its even neighbour */
            int ties_ok = 1;
            for (int k = 2 * QK_K; k < 3 * QK_K; k++) {
                const float v = -x[k];
                const float lower = floorf(v);
                const int expect_q = (v - lower == 0.5f) ? (((int)lower % 2 == 0) ? (int)lower : (int)lower + 1) : (int)lrintf(v);
                if (a[2].qs[k - 2 * QK_K] != expect_q) ties_ok = 0;
            }
            expect(st, a[2].d == -1.f && ties_ok, "q8_K rounds half to even", "q8_K", 0);
        }
        for (int blk = 0; blk < NB; blk++) {
            int sums_ok = 1, range_ok = 1, err_ok = 1;
            for (int g = 0; g < 16; g++) {
                int s = 0;
                for (int l = 0; l < 16; l++) s += a[blk].qs[16 * g + l];
                if (s != a[blk].bsums[g]) sums_ok = 0;
            }
            const float step = fabsf(a[blk].d);
            for (int k = 0; k < QK_K; k++) {
                if (a[blk].qs[k] == -128) range_ok = 0;
                const float e = fabsf(y[blk * QK_K + k] - x[blk * QK_K + k]);
                /* blocks with max |x| < 4e-37 are documented to be stored as zero */
                if (e > 0.5001f * step + 1e-45f && !(step == 0 && fabsf(x[blk * QK_K + k]) < 4e-37f)) err_ok = 0;
            }
            expect(st, sums_ok, "q8_K bsums = sums of 16 quants", "q8_K", trial);
            expect(st, range_ok, "q8_K quants in [-127, 127]", "q8_K", trial);
            expect(st, err_ok, "q8_K error <= half a step", "q8_K", trial);
        }
#if defined(TS_HAVE_AVX2_KERNELS)
        if (have_avx2) {
            memset(b, 0x5A, NB * sizeof(block_q8_K));
            ts_quant_q8_K_avx2(x, b, N);
            expect(st, memcmp(a, b, NB * sizeof(block_q8_K)) == 0, "avx2 q8_K bit-identical to ref", "q8_K", trial);
        }
#endif
    }
    (void)have_avx2;
    free(x);
    free(y);
    free(a);
    free(b);
}

/* the type table hands out these kernels */
static void test_table(test_stats *st, int have_avx2) {
    const ts_type_traits *ts = ts_type_table(TS_ISA_SCALAR);
    expect(st, ts[TS_TYPE_Q4_K].vec_dot == ts_dot_q4_K_ref && ts[TS_TYPE_Q4_K].vec_dot_type == TS_TYPE_Q8_K,
           "scalar table q4_K", "table", 0);
    expect(st, ts[TS_TYPE_Q8_K].from_float == ts_quant_q8_K_ref, "scalar table q8_K", "table", 0);
#if defined(TS_HAVE_AVX2_KERNELS)
    if (have_avx2) {
        const ts_type_traits *tv = ts_type_table(TS_ISA_AVX2);
        expect(st, tv[TS_TYPE_Q6_K].vec_dot == ts_dot_q6_K_avx2 && tv[TS_TYPE_Q2_K].to_float == ts_dequant_q2_K_avx2,
               "avx2 table K types", "table", 0);
        expect(st, tv[TS_TYPE_Q8_K].from_float == ts_quant_q8_K_avx2, "avx2 table q8_K", "table", 0);
    }
#endif
    (void)have_avx2;
}

/* ------------------------------------------------------------------------------------------ */
/* throughput (only with --bench)                                                               */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static volatile float bench_sink;

static void bench(int have_avx2) {
    enum { NB = 4096, N = NB * QK_K }; /* 1M values: weights stay in L2/L3-ish sizes */
    rng r = {4242};
    float *x = malloc((size_t)N * sizeof(float));
    uint8_t *w = malloc((size_t)NB * 256);
    block_q8_K *a = malloc(NB * sizeof(block_q8_K));
    if (!x || !w || !a) abort();
    for (int k = 0; k < N; k++) x[k] = rng_gauss(&r);
    ts_quant_q8_K_ref(x, a, N);
    for (int t = 0; t < NKTYPES; t++) {
        const ktype *kt = &ktypes[t];
        double t0 = now_s();
        kt->quant_ref(x, w, N);
        const double tq = now_s() - t0;
        const double wbytes = (double)NB * (double)kt->block_bytes;
        int reps = 20;
        float s = 0;
        t0 = now_s();
        for (int k = 0; k < reps; k++) kt->dot_ref(N, &s, w, a);
        const double tr = (now_s() - t0) / reps;
        bench_sink = s;
        double tv = 0;
#if defined(TS_HAVE_AVX2_KERNELS)
        if (have_avx2) {
            reps = 200;
            t0 = now_s();
            for (int k = 0; k < reps; k++) kt->dot_avx2(N, &s, w, a);
            tv = (now_s() - t0) / reps;
            bench_sink = s;
        }
#endif
        printf("  bench %s: quantize %.1f MB/s of f32 input (%.2f Mvalues/s); dot GB/s of weights: scalar %.2f",
               kt->name, (double)N * 4 / tq / 1e6, (double)N / tq / 1e6, wbytes / tr / 1e9);
        if (tv > 0) printf(", avx2 %.2f", wbytes / tv / 1e9);
        printf("\n");
    }
    double t0 = now_s();
    for (int k = 0; k < 10; k++) ts_quant_q8_K_ref(x, a, N);
    const double tr = (now_s() - t0) / 10;
    printf("  bench q8_K activation quantize: scalar %.2f GB/s of f32", (double)N * 4 / tr / 1e9);
#if defined(TS_HAVE_AVX2_KERNELS)
    if (have_avx2) {
        t0 = now_s();
        for (int k = 0; k < 50; k++) ts_quant_q8_K_avx2(x, a, N);
        printf(", avx2 %.2f", (double)N * 4 / ((now_s() - t0) / 50) / 1e9);
    }
#endif
    printf("\n");
    (void)have_avx2;
    free(x);
    free(w);
    free(a);
}

int main(int argc, char **argv) {
    test_stats st = {0, 0};
    const int have_avx2 = ts_isa_supported(TS_ISA_AVX2);
    if (!have_avx2) printf("test_quant_k: no AVX2 kernels on this build/CPU: skipping AVX2-vs-scalar comparisons\n");
    test_table(&st, have_avx2);
    test_known_answers(&st);
    test_kernels(&st, have_avx2);
    test_quantizers(&st);
    test_q8_K(&st, have_avx2);
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) bench(have_avx2);
    printf("test_quant_k: %d checks, %d failures (isa %s)\n", st.checks, st.failures, ts_isa_name(ts_isa_best()));
    return st.failures ? 1 : 0;
}
