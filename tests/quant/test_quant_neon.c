/* NEON kernels (src/quant/ *_neon.c) against the scalar references, on AArch64 builds only; any other
 * build prints "skipped: not an ARM64 build" and passes. scripts/test-arm64.sh cross-builds this test
 * and runs it under qemu-aarch64 on x86 hosts.
 *
 * Checked, for every type that has a NEON kernel:
 *  - the NEON type table: complete, and pointing at the NEON kernels;
 *  - dequantization: bit-identical to the reference (memcmp) on random blocks with every quant bit
 *    pattern and edge scales (zero, subnormal, largest finite half, negative, large);
 *  - activation conversion: f16/bf16 bit-identical (NaN: both NaN for f16, identical for bf16);
 *    q8_K bit-identical; q8_0/q8_1 equal d, and quants equal except where x/d lies exactly on a .5 tie
 *    (NEON rounds to even like ggml's ARM path, the reference rounds away from zero: legacy.c);
 *  - dot products within a bound derived from the float summation order (below).
 *
 * Dot tolerance: the NEON and reference dots form the same exact integer sum per block (both are
 * integer arithmetic that cannot overflow) and differ only in how the per-block float terms are
 * rounded and summed: at most ~nblocks + 16 roundings, each at most 2^-24 of a partial sum whose
 * magnitude is at most M = sum_i (|x_i| + 2 |z_i|) |y_i|, where x is the dequantized weight, y the
 * dequantized activation and z the weight's value with all quant bits zero (its min / offset part:
 * the kernels sum the scale part and the min part separately, so cancellation between them must not
 * shrink the bound). Hence |neon - ref| <= (nblocks + 16) * 2^-23 * M covers both sides' errors.
 * For the float types (NEON: 4 lanes x 4 accumulators in float; reference: double) the count is
 * n/16 + 16 instead. A single wrong quant changes the dot by ~M/n, orders of magnitude above this. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/blocks.h"
#include "quant/kernels.h"
#include "quant/types.h"
#include "test_rng.h"

#if !(defined(__aarch64__) && defined(TS_HAVE_NEON_KERNELS))

int main(void) {
    printf("skipped: not an ARM64 build\n");
    return 0;
}

#else

typedef struct {
    int checks, failures;
} test_stats;

static void expect(test_stats *st, int ok, const char *what, const char *type, long detail) {
    st->checks++;
    if (!ok) {
        st->failures++;
        if (st->failures <= 40) fprintf(stderr, "FAIL: %s [%s] (%ld)\n", what, type, detail);
    }
}


/* ------------------------------------------------------------------------------------------ */
/* quantized weight types                                                                       */

typedef struct { size_t off, len; } byte_range;

typedef struct {
    const char *name;
    int type;
    int block_values;
    size_t block_bytes;
    size_t d_off;
    long m_off;              /* second f16 (m or dmin); -1 if none */
    byte_range quants[3];    /* the quant bytes (len 0 = unused) */
    ts_to_float_fn deq_ref, deq_neon;
    ts_vec_dot_fn dot_ref, dot_neon;
} qtype;

#define R(blk, f) {offsetof(blk, f), sizeof(((blk *)0)->f)}
#define QT(t, id, bv, blk, moff, q0, q1, q2)                                                             \
    {#t, id, bv, sizeof(blk), offsetof(blk, d), moff, {q0, q1, q2}, ts_dequant_##t##_ref, ts_dequant_##t##_neon, \
     ts_dot_##t##_ref, ts_dot_##t##_neon}
#define NONE {0, 0}

static const qtype qtypes[] = {
    QT(q4_0, TS_TYPE_Q4_0, QK4_0, block_q4_0, -1, R(block_q4_0, qs), NONE, NONE),
    QT(q4_1, TS_TYPE_Q4_1, QK4_1, block_q4_1, (long)offsetof(block_q4_1, m), R(block_q4_1, qs), NONE, NONE),
    QT(q5_0, TS_TYPE_Q5_0, QK5_0, block_q5_0, -1, R(block_q5_0, qs), R(block_q5_0, qh), NONE),
    QT(q5_1, TS_TYPE_Q5_1, QK5_1, block_q5_1, (long)offsetof(block_q5_1, m), R(block_q5_1, qs), R(block_q5_1, qh),
       NONE),
    QT(q8_0, TS_TYPE_Q8_0, QK8_0, block_q8_0, -1, R(block_q8_0, qs), NONE, NONE),
    QT(q2_K, TS_TYPE_Q2_K, QK_K, block_q2_K, (long)offsetof(block_q2_K, dmin), R(block_q2_K, qs), NONE, NONE),
    QT(q3_K, TS_TYPE_Q3_K, QK_K, block_q3_K, -1, R(block_q3_K, qs), R(block_q3_K, hmask), NONE),
    QT(q4_K, TS_TYPE_Q4_K, QK_K, block_q4_K, (long)offsetof(block_q4_K, dmin), R(block_q4_K, qs), NONE, NONE),
    QT(q5_K, TS_TYPE_Q5_K, QK_K, block_q5_K, (long)offsetof(block_q5_K, dmin), R(block_q5_K, qs), R(block_q5_K, qh),
       NONE),
    QT(q6_K, TS_TYPE_Q6_K, QK_K, block_q6_K, -1, R(block_q6_K, ql), R(block_q6_K, qh), NONE),
};
#define NQTYPES ((int)(sizeof(qtypes) / sizeof(qtypes[0])))

#define MAX_BLOCKS 16
#define MAX_VALUES (MAX_BLOCKS * QK_K)
#define MAX_BYTES (MAX_BLOCKS * 300)

static void put_f16(uint8_t *block, size_t off, ts_f16 v) { memcpy(block + off, &v, sizeof(v)); }

/* f16 scale patterns: normal, subnormal, largest subnormal, smallest subnormal, zero, large,
 * largest finite half (both signs), negative */
static ts_f16 pick_f16(rng *r, int mode) {
    switch (mode % 9) {
    case 0: return ts_f32_to_f16(0.001f + 0.1f * rng_unit(r));
    case 1: return (ts_f16)(1 + rng_next(r) % 0x3FF);
    case 2: return (ts_f16)0x03FF;
    case 3: return (ts_f16)0x0001;
    case 4: return (ts_f16)0;
    case 5: return ts_f32_to_f16(1000.f + 1000.f * rng_unit(r));
    case 6: return (ts_f16)0x7BFF;
    case 7: return (ts_f16)0xFBFF;
    default: return ts_f32_to_f16(-0.05f * rng_unit(r));
    }
}

/* fill: 0 random bytes, 1 all 0x00, 2 all 0xFF; then the f16 scales are set (never inf/NaN) */
static void make_weight_row(const qtype *qt, uint8_t *w, int nb, rng *r, int fill, int dmode, int mmode) {
    for (size_t k = 0; k < (size_t)nb * qt->block_bytes; k++)
        w[k] = fill == 0 ? (uint8_t)rng_next(r) : fill == 1 ? 0x00 : 0xFF;
    for (int b = 0; b < nb; b++) {
        uint8_t *blk = w + (size_t)b * qt->block_bytes;
        /* mode 9+ varies the scale pattern from block to block */
        put_f16(blk, qt->d_off, pick_f16(r, dmode >= 9 ? (int)(rng_next(r) % 9) : dmode));
        if (qt->m_off >= 0) put_f16(blk, (size_t)qt->m_off, pick_f16(r, mmode >= 9 ? (int)(rng_next(r) % 9) : mmode));
    }
}

/* The activation row for a weight type: floats of the given pattern, converted by the reference
 * converter of its vec_dot_type. */
static void make_act_row(int vec_dot_type, void *a, int n, rng *r, int mode) {
    static const float amplitude[] = {1.f, 1e-30f, 1e4f, 0.f};
    float *x = malloc((size_t)n * sizeof(float));
    if (!x) abort();
    for (int k = 0; k < n; k++) {
        if (mode == 4) x[k] = (k & 1) ? 1.f : -1.f; /* extremes: every quant is +-127 */
        else x[k] = amplitude[mode] * rng_gauss(r);
    }
    const ts_type_traits *ref = ts_type_table(TS_ISA_SCALAR);
    ref[vec_dot_type].quantize(x, a, n);
    free(x);
}

static double dot_magnitude(const qtype *qt, const uint8_t *w, const void *a, int vec_dot_type, int n) {
    float *x = malloc((size_t)n * sizeof(float) * 3);
    uint8_t *zeroed = malloc(MAX_BYTES);
    if (!x || !zeroed) abort();
    float *z = x + n, *y = x + 2 * n;
    const int nb = n / qt->block_values;
    memcpy(zeroed, w, (size_t)nb * qt->block_bytes);
    for (int b = 0; b < nb; b++)
        for (int k = 0; k < 3; k++)
            memset(zeroed + (size_t)b * qt->block_bytes + qt->quants[k].off, 0, qt->quants[k].len);
    qt->deq_ref(w, x, n);
    qt->deq_ref(zeroed, z, n);
    ts_type_table(TS_ISA_SCALAR)[vec_dot_type].to_float(a, y, n);
    double m = 0;
    for (int i = 0; i < n; i++) m += ((double)fabsf(x[i]) + 2.0 * fabsf(z[i])) * fabsf(y[i]);
    free(x);
    free(zeroed);
    return m;
}

static void test_quant_types(test_stats *st, rng *r) {
    const ts_type_traits *ref = ts_type_table(TS_ISA_SCALAR);
    uint8_t *w = malloc(MAX_BYTES), *a = malloc(MAX_BYTES);
    float *y_ref = malloc(MAX_VALUES * sizeof(float)), *y_neon = malloc(MAX_VALUES * sizeof(float));
    if (!w || !a || !y_ref || !y_neon) abort();
    for (int t = 0; t < NQTYPES; t++) {
        const qtype *qt = &qtypes[t];
        const int vdt = ref[qt->type].vec_dot_type;
        int trial = 0;
        double worst = 0; /* largest |neon - ref| / tol seen: shows how much room the bound leaves */
        for (int fill = 0; fill < 3; fill++) {
            for (int dmode = 0; dmode < 10; dmode++) {
                for (int rep = 0; rep < (fill == 0 ? 4 : 1); rep++, trial++) {
                    const int nb = 1 + (int)(rng_next(r) % (qt->block_values == QK_K ? 4 : MAX_BLOCKS));
                    const int n = nb * qt->block_values;
                    make_weight_row(qt, w, nb, r, fill, dmode, (dmode + rep + 3) % 10);
                    /* dequantization: bit-identical */
                    qt->deq_ref(w, y_ref, n);
                    qt->deq_neon(w, y_neon, n);
                    expect(st, memcmp(y_ref, y_neon, (size_t)n * sizeof(float)) == 0, "dequant bit-identical",
                           qt->name, trial);
                    /* dot, against every activation pattern */
                    for (int amode = 0; amode < 5; amode++) {
                        make_act_row(vdt, a, n, r, amode);
                        float s_ref = 0, s_neon = 0;
                        qt->dot_ref(n, &s_ref, w, a);
                        qt->dot_neon(n, &s_neon, w, a);
                        const double mag = dot_magnitude(qt, w, a, vdt, n);
                        const double tol = (nb + 16) * 0x1p-23 * mag;
                        const int ok = isfinite(s_ref) ? fabs((double)s_neon - (double)s_ref) <= tol
                                                       : (isinf(s_ref) ? s_neon == s_ref : isnan(s_neon));
                        if (isfinite(s_ref) && tol > 0 && fabs((double)s_neon - s_ref) / tol > worst)
                            worst = fabs((double)s_neon - s_ref) / tol;
                        if (!ok)
                            fprintf(stderr, "  %s n=%d fill=%d d=%d act=%d: ref %.9g neon %.9g tol %.3g\n", qt->name, n,
                                    fill, dmode, amode, s_ref, s_neon, tol);
                        expect(st, ok, "dot within tolerance", qt->name, trial);
                    }
                }
            }
        }
        printf("  %-5s dot: worst |neon-ref| = %.3f of the tolerance\n", qt->name, worst);
    }
    free(w);
    free(a);
    free(y_ref);
    free(y_neon);
}

/* ------------------------------------------------------------------------------------------ */
/* float types                                                                                  */

/* floats covering the conversion edge cases: normal, f16-subnormal range, f32 subnormals, values
 * that overflow f16, infinities, signed zeros, halfway cases between halves */
static float pick_float(rng *r) {
    switch (rng_next(r) % 10) {
    case 0: return rng_gauss(r) * 1e-6f;                                   /* f16 subnormal range */
    case 1: return rng_gauss(r) * 1e-40f;                                  /* f32 subnormal */
    case 2: return rng_gauss(r) * 70000.f;                                 /* around f16 overflow */
    case 3: return (rng_next(r) & 1) ? INFINITY : -INFINITY;
    case 4: return (rng_next(r) & 1) ? 0.f : -0.f;
    case 5: return 1.f + (float)(1 + 2 * (rng_next(r) % 512)) * 0x1p-11f; /* exact f16 ties */
    case 6: return 1.f + (float)(1 + 2 * (rng_next(r) % 64)) * 0x1p-8f;   /* exact bf16 ties */
    default: return rng_gauss(r);
    }
}

static void test_float_types(test_stats *st, rng *r) {
    enum { N = 1000 };
    float x[N], y[N], back_ref[N], back_neon[N];
    uint16_t h_ref[N], h_neon[N], hx[N], hy[N];
    /* conversions */
    for (unsigned trial = 0; trial < 20; trial++) {
        for (int i = 0; i < N; i++) x[i] = pick_float(r);
        if (trial == 1) x[7] = NAN, x[8] = -NAN;
        const unsigned n = N - trial; /* exercises the scalar tails (unsigned: sizes stay provably positive) */
        ts_quant_f16_ref(x, h_ref, n);
        ts_quant_f16_neon(x, h_neon, n);
        int same = 1;
        for (unsigned i = 0; i < n; i++) {
            const int nan_ref = (h_ref[i] & 0x7C00) == 0x7C00 && (h_ref[i] & 0x3FF);
            const int nan_neon = (h_neon[i] & 0x7C00) == 0x7C00 && (h_neon[i] & 0x3FF);
            if (nan_ref ? !nan_neon : h_ref[i] != h_neon[i]) same = 0;
        }
        expect(st, same, "f32->f16 bit-identical", "f16", (long)trial);
        for (unsigned i = 0; i < n; i++) h_ref[i] = (uint16_t)rng_next(r); /* every half bit pattern */
        ts_dequant_f16_ref(h_ref, back_ref, n);
        ts_dequant_f16_neon(h_ref, back_neon, n);
        expect(st, memcmp(back_ref, back_neon, (size_t)n * sizeof(float)) == 0, "f16->f32 bit-identical", "f16",
               (long)trial);

        ts_quant_bf16_ref(x, h_ref, n);
        ts_quant_bf16_neon(x, h_neon, n);
        expect(st, memcmp(h_ref, h_neon, (size_t)n * 2) == 0, "f32->bf16 bit-identical", "bf16", (long)trial);
        for (unsigned i = 0; i < n; i++) h_ref[i] = (uint16_t)rng_next(r);
        ts_dequant_bf16_ref(h_ref, back_ref, n);
        ts_dequant_bf16_neon(h_ref, back_neon, n);
        expect(st, memcmp(back_ref, back_neon, (size_t)n * sizeof(float)) == 0, "bf16->f32 bit-identical", "bf16",
               (long)trial);

        ts_dequant_f32_ref(x, back_ref, n);
        ts_dequant_f32_neon(x, back_neon, n);
        expect(st, memcmp(back_ref, back_neon, (size_t)n * sizeof(float)) == 0, "f32 copy", "f32", (long)trial);
    }
    /* dots on finite data of several scales */
    for (int trial = 0; trial < 60; trial++) {
        const int n = 1 + (int)(rng_next(r) % N);
        const float scale = trial % 3 == 0 ? 1e-3f : trial % 3 == 1 ? 1.f : 100.f;
        for (int i = 0; i < n; i++) x[i] = scale * rng_gauss(r), y[i] = rng_gauss(r);
        if (trial == 0) memset(x, 0, sizeof x);
        const double count = n / 16 + 16;
        double mag = 0;
        float s_ref, s_neon;

        for (int i = 0; i < n; i++) mag += fabs((double)x[i] * y[i]);
        ts_dot_f32_ref(n, &s_ref, x, y);
        ts_dot_f32_neon(n, &s_neon, x, y);
        expect(st, fabs((double)s_ref - s_neon) <= count * 0x1p-23 * mag, "dot within tolerance", "f32", n);

        ts_quant_f16_ref(x, hx, n);
        ts_quant_f16_ref(y, hy, n);
        mag = 0;
        for (int i = 0; i < n; i++) mag += fabs((double)ts_f16_to_f32(hx[i]) * ts_f16_to_f32(hy[i]));
        ts_dot_f16_ref(n, &s_ref, hx, hy);
        ts_dot_f16_neon(n, &s_neon, hx, hy);
        expect(st, fabs((double)s_ref - s_neon) <= count * 0x1p-23 * mag, "dot within tolerance", "f16", n);

        ts_quant_bf16_ref(x, hx, n);
        ts_quant_bf16_ref(y, hy, n);
        mag = 0;
        for (int i = 0; i < n; i++) mag += fabs((double)ts_bf16_to_f32(hx[i]) * ts_bf16_to_f32(hy[i]));
        ts_dot_bf16_ref(n, &s_ref, hx, hy);
        ts_dot_bf16_neon(n, &s_neon, hx, hy);
        expect(st, fabs((double)s_ref - s_neon) <= count * 0x1p-23 * mag, "dot within tolerance", "bf16", n);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* activation quantizers                                                                        */

static void fill_activation(float *x, int n, rng *r, int mode) {
    for (int i = 0; i < n; i++) {
        switch (mode) {
        case 0: x[i] = rng_gauss(r); break;
        case 1: x[i] = 0.f; break;
        case 2: x[i] = 1e-38f * rng_gauss(r); break;          /* subnormal / overflowing inverse scale */
        case 3: x[i] = 3e38f * (rng_unit(r) - 0.5f); break; /* extreme */
        case 4: x[i] = (float)((int)(rng_next(r) % 255) - 127) * 0.5f; break; /* many exact ties */
        default: x[i] = (i % 7 == 0) ? ((i & 8) ? 4.f : -4.f) : rng_gauss(r); break; /* +-amax repeated */
        }
    }
}

/* q8_0 / q8_1 block: same d; quants equal except on exact ties, where NEON holds the even one */
static int q8_block_matches(const float *x, const int8_t *q_ref, const int8_t *q_neon, ts_f16 d_ref, ts_f16 d_neon) {
    if (d_ref != d_neon) return 0;
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) {
        if (q_ref[j] == q_neon[j]) continue;
        const float v = x[j] * id;
        const int is_tie = v - floorf(v) == 0.5f;
        if (!is_tie || abs(q_ref[j] - q_neon[j]) != 1 || (q_neon[j] & 1)) return 0;
    }
    return 1;
}

/* q8_1's s from the block's floats and stored quants: fp16(amax/127 * sum(qs)) */
static ts_f16 expected_q8_1_s(const float *x, const int8_t *qs) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    int sum = 0;
    for (int j = 0; j < 32; j++) sum += qs[j];
    return ts_f32_to_f16(amax / 127.0f * (float)sum);
}

static void test_activation_quantizers(test_stats *st, rng *r) {
    enum { NB = 8, N = NB * QK_K };
    float x[N];
    block_q8_K k_ref[NB], k_neon[NB];
    block_q8_0 a_ref[N / 32], a_neon[N / 32];
    block_q8_1 b_ref[N / 32], b_neon[N / 32];
    for (int mode = 0; mode < 6; mode++) {
        for (int rep = 0; rep < 4; rep++) {
            fill_activation(x, N, r, mode);
            const int trial = mode * 10 + rep;
            memset(k_ref, 0xAB, sizeof k_ref);
            memset(k_neon, 0xCD, sizeof k_neon);
            ts_quant_q8_K_ref(x, k_ref, N);
            ts_quant_q8_K_neon(x, k_neon, N);
            expect(st, memcmp(k_ref, k_neon, sizeof k_ref) == 0, "q8_K bit-identical", "q8_K", trial);

            ts_quant_q8_0_ref(x, a_ref, N);
            ts_quant_q8_0_neon(x, a_neon, N);
            int ok = 1;
            for (int b = 0; b < N / 32; b++)
                ok &= q8_block_matches(x + 32 * b, a_ref[b].qs, a_neon[b].qs, a_ref[b].d, a_neon[b].d);
            expect(st, ok, "q8_0 equal up to ties", "q8_0", trial);

            ts_quant_q8_1_ref(x, b_ref, N);
            ts_quant_q8_1_neon(x, b_neon, N);
            ok = 1;
            for (int b = 0; b < N / 32; b++) {
                ok &= q8_block_matches(x + 32 * b, b_ref[b].qs, b_neon[b].qs, b_ref[b].d, b_neon[b].d);
                ok &= b_neon[b].s == expected_q8_1_s(x + 32 * b, b_neon[b].qs);
            }
            expect(st, ok, "q8_1 equal up to ties, s = d*sum", "q8_1", trial);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* the table                                                                                    */

static void test_table(test_stats *st) {
    expect(st, ts_isa_best() == TS_ISA_NEON, "ts_isa_best is NEON on aarch64", "table", 0);
    const ts_type_traits *neon = ts_type_table(TS_ISA_NEON), *ref = ts_type_table(TS_ISA_SCALAR);
    expect(st, neon != ref, "NEON table differs from scalar", "table", 0);
    for (int t = 0; t < TS_TYPE_COUNT; t++) {
        const int same_shape = neon[t].block_size == ref[t].block_size && neon[t].type_size == ref[t].type_size &&
                               neon[t].supported == ref[t].supported && neon[t].vec_dot_type == ref[t].vec_dot_type &&
                               neon[t].quantize == ref[t].quantize && !neon[t].to_float == !ref[t].to_float &&
                               !neon[t].vec_dot == !ref[t].vec_dot && !neon[t].from_float == !ref[t].from_float;
        expect(st, same_shape, "NEON entry complete and consistent with scalar", "table", t);
    }
    for (int t = 0; t < NQTYPES; t++) {
        expect(st, neon[qtypes[t].type].to_float == qtypes[t].deq_neon, "table uses NEON dequant", qtypes[t].name, 0);
        expect(st, neon[qtypes[t].type].vec_dot == qtypes[t].dot_neon, "table uses NEON dot", qtypes[t].name, 0);
    }
    expect(st, neon[TS_TYPE_F32].vec_dot == ts_dot_f32_neon, "table uses NEON dot", "f32", 0);
    expect(st, neon[TS_TYPE_F16].vec_dot == ts_dot_f16_neon && neon[TS_TYPE_F16].from_float == ts_quant_f16_neon,
           "table uses NEON kernels", "f16", 0);
    expect(st, neon[TS_TYPE_BF16].vec_dot == ts_dot_bf16_neon && neon[TS_TYPE_BF16].from_float == ts_quant_bf16_neon,
           "table uses NEON kernels", "bf16", 0);
    expect(st, neon[TS_TYPE_Q8_0].from_float == ts_quant_q8_0_neon, "table uses NEON converter", "q8_0", 0);
    expect(st, neon[TS_TYPE_Q8_1].from_float == ts_quant_q8_1_neon, "table uses NEON converter", "q8_1", 0);
    expect(st, neon[TS_TYPE_Q8_K].from_float == ts_quant_q8_K_neon, "table uses NEON converter", "q8_K", 0);
}

int main(void) {
    test_stats st = {0, 0};
    rng r = {0x9E3779B97F4A7C15ULL};
    test_table(&st);
    test_float_types(&st, &r);
    test_activation_quantizers(&st, &r);
    test_quant_types(&st, &r);
    printf("test_quant_neon: %d checks, %d failures\n", st.checks, st.failures);
    return st.failures ? 1 : 0;
}

#endif
