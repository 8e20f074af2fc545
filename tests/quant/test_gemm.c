/* Tile kernels (vec_dot_tile) of every type table this CPU can run:
 *   1. every tile result is bit-identical to the same table's vec_dot on that (row, token) pair —
 *      the property that makes batch prefill and one-token decode produce identical logits;
 *   2. the tile kernel writes exactly the n_rows x n_cols slots it owns (s_stride gaps untouched);
 *   3. each table's dot agrees with a float64 dot of the dequantized operands within a rounding
 *      bound (|got - exact| <= 1e-5 * sum |w_i a_i| + 1e-30, the bound test_quant_k.c derives).
 * Shapes are odd on purpose (rows and tokens not multiples of the 4 x 4 / 4 x 2 tiles, an odd
 * number of 32-blocks for the pairwise Q8_0/Q4_0 kernels), weights include the extreme codes
 * (Q8_0 byte -128, all-0 and all-15 nibbles) and activations include zeros and outliers. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/blocks.h"
#include "quant/types.h"
#include "test_rng.h"

typedef struct {
    int checks, failures;
} test_stats;

static void expect(test_stats *st, int ok, const char *what, const char *isa, const char *type, int a, int b) {
    st->checks++;
    if (!ok) {
        st->failures++;
        if (st->failures <= 30) fprintf(stderr, "FAIL: %s [%s %s] (%d, %d)\n", what, isa, type, a, b);
    }
}



/* Pushes some quants to their extreme codes after quantization (what a file may hold even if our
 * quantizer never writes it). */
static void poke_extremes(rng *r, int type, void *row, int n) {
    if (type == TS_TYPE_Q8_0) {
        block_q8_0 *b = row;
        for (int i = 0; i < n / QK8_0; i++)
            if (rng_next(r) % 3 == 0) b[i].qs[rng_next(r) % QK8_0] = -128;
    } else if (type == TS_TYPE_Q4_0) {
        block_q4_0 *b = row;
        for (int i = 0; i < n / QK4_0; i++) {
            const uint64_t k = rng_next(r) % 4;
            if (k == 0) memset(b[i].qs, 0x00, sizeof b[i].qs);
            if (k == 1) memset(b[i].qs, 0xFF, sizeof b[i].qs);
        }
    } else if (type == TS_TYPE_Q6_K) {
        block_q6_K *b = row;
        if (rng_next(r) % 2) { b[0].scales[0] = -128; b[0].scales[15] = 127; }
    }
}

static const int weight_types[] = {TS_TYPE_F32,  TS_TYPE_F16,  TS_TYPE_BF16, TS_TYPE_Q4_0, TS_TYPE_Q4_1,
                                   TS_TYPE_Q5_0, TS_TYPE_Q5_1, TS_TYPE_Q8_0, TS_TYPE_Q2_K, TS_TYPE_Q3_K,
                                   TS_TYPE_Q4_K, TS_TYPE_Q5_K, TS_TYPE_Q6_K};

static void test_type(test_stats *st, enum ts_isa isa, int type, int n, int n_rows, int n_cols, rng *r) {
    const ts_type_traits *table = ts_type_table(isa), *ref = ts_type_table(TS_ISA_SCALAR);
    const ts_type_traits *t = &table[type];
    const char *isa_name = ts_isa_name(isa);
    const int vdt = t->vec_dot_type;
    const size_t w_bytes = ts_row_size(type, n), a_bytes = ts_row_size(vdt, n);
    /* odd strides: rows are not packed back to back in real use either (KV cache, split weights) */
    const size_t w_stride = w_bytes + 2 * (size_t)t->type_size, a_stride = a_bytes + table[vdt].type_size;
    const size_t s_stride = (size_t)n_rows + 3;
    char *w = calloc((size_t)n_rows, w_stride), *a = calloc((size_t)n_cols, a_stride);
    float *vals = malloc((size_t)n * sizeof(float)), *s = malloc((size_t)n_cols * s_stride * sizeof(float));
    double *wf = malloc((size_t)n_rows * n * sizeof(double)), *af = malloc((size_t)n_cols * n * sizeof(double));
    float *tmp = malloc((size_t)n * sizeof(float));
    if (!w || !a || !vals || !s || !wf || !af || !tmp) {
        expect(st, 0, "allocation", isa_name, t->name, n, 0);
        goto done;
    }
    for (int i = 0; i < n_rows; i++) {
        fill_values(r, vals, n, i % 3 == 0 ? 0.02f : 1.0f);
        char *row = w + (size_t)i * w_stride;
        if (type == TS_TYPE_F32) memcpy(row, vals, (size_t)n * sizeof(float));
        else ref[type].quantize(vals, row, n);
        poke_extremes(r, type, row, n);
        if (type == TS_TYPE_F32) memcpy(tmp, row, (size_t)n * sizeof(float));
        else ref[type].to_float(row, tmp, n);
        for (int k = 0; k < n; k++) wf[(size_t)i * n + k] = tmp[k];
    }
    for (int c = 0; c < n_cols; c++) {
        fill_values(r, vals, n, c % 2 ? 3.0f : 0.5f);
        if (c == 1) memset(vals, 0, (size_t)n * sizeof(float)); /* an all-zero activation row */
        char *row = a + (size_t)c * a_stride;
        if (vdt == TS_TYPE_F32) memcpy(row, vals, (size_t)n * sizeof(float));
        else table[vdt].from_float(vals, row, n);
        if (vdt == TS_TYPE_F32) memcpy(tmp, row, (size_t)n * sizeof(float));
        else ref[vdt].to_float(row, tmp, n);
        for (int k = 0; k < n; k++) af[(size_t)c * n + k] = tmp[k];
    }
    const float sentinel = -12345.5f;
    for (size_t k = 0; k < (size_t)n_cols * s_stride; k++) s[k] = sentinel;
    t->vec_dot_tile(n, n_rows, n_cols, s, s_stride, w, w_stride, a, a_stride);
    for (int c = 0; c < n_cols; c++) {
        for (int i = 0; i < n_rows + 3; i++) {
            const float got = s[(size_t)c * s_stride + i];
            if (i >= n_rows) {
                expect(st, memcmp(&got, &sentinel, sizeof got) == 0, "tile wrote outside its slots", isa_name, t->name,
                       i, c);
                continue;
            }
            float single;
            t->vec_dot(n, &single, w + (size_t)i * w_stride, a + (size_t)c * a_stride);
            expect(st, memcmp(&got, &single, sizeof got) == 0, "tile result is not bit-identical to vec_dot", isa_name,
                   t->name, i, c);
            double exact = 0.0, mag = 0.0;
            for (int k = 0; k < n; k++) {
                const double p = wf[(size_t)i * n + k] * af[(size_t)c * n + k];
                exact += p;
                mag += fabs(p);
            }
            /* The K-quant min terms are computed separately from the scale terms; their magnitudes
             * can exceed |w a| of the dequantized values by the dmin part, so widen by 4x. */
            const double bound = 4e-5 * mag + 1e-30;
            /* Q8_1's s field is an fp16-rounded d*sum(q), not the sum of the dequantized values, so
             * the Q4_1/Q5_1 min terms carry that rounding: their accuracy is test_quant_legacy's. */
            if (vdt != TS_TYPE_Q8_1)
                expect(st, fabs((double)single - exact) <= bound, "dot differs from float64 beyond rounding", isa_name,
                       t->name, i, c);
        }
    }
done:
    free(w), free(a), free(vals), free(s), free(wf), free(af), free(tmp);
}

int main(void) {
    test_stats st = {0, 0};
    rng r = {0x9E3779B97F4A7C15ull};
    static const int shapes[][2] = {{1, 1}, {1, 5}, {3, 2}, {4, 4}, {5, 3}, {9, 7}, {8, 9}, {13, 1}};
    int isas_run = 0;
    for (int isa = 0; isa < TS_ISA_COUNT; isa++) {
        if (!ts_isa_supported((enum ts_isa)isa)) continue;
        isas_run++;
        for (size_t k = 0; k < sizeof weight_types / sizeof weight_types[0]; k++) {
            const int type = weight_types[k];
            const int bs = ts_type_table(TS_ISA_SCALAR)[type].block_size;
            const int sizes[3] = {bs == 1 ? 40 : 256, bs == 1 ? 96 : 768, bs == QK_K ? 1536 : 7 * 32};
            for (int z = 0; z < 3; z++)
                for (size_t h = 0; h < sizeof shapes / sizeof shapes[0]; h++)
                    test_type(&st, (enum ts_isa)isa, type, sizes[z], shapes[h][0], shapes[h][1], &r);
        }
    }
    expect(&st, ts_isa_supported(ts_isa_best()) && ts_isa_supported(TS_ISA_SCALAR), "ts_isa_best is supported",
           ts_isa_name(ts_isa_best()), "-", 0, 0);
    printf("test_gemm: %d checks, %d failures (%d ISAs, best %s)\n", st.checks, st.failures, isas_run,
           ts_isa_name(ts_isa_best()));
    return st.failures ? 1 : 0;
}
