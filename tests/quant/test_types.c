/* Tests of the type table (quant/types.c): names and ids, row sizes, and that every supported
 * entry of every table is complete and consistent -- including an end-to-end check, per weight
 * type, that quantize -> activation conversion -> vec_dot agrees with the dot of the dequantized
 * rows, which catches a wrong vec_dot_type or a kernel wired to the wrong slot. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/blocks.h"
#include "quant/types.h"

typedef struct {
    int checks;
    int failures;
} test_ctx;

#define CHECK(ctx, cond, ...)                                                                      \
    do {                                                                                           \
        (ctx)->checks++;                                                                           \
        if (!(cond)) {                                                                             \
            (ctx)->failures++;                                                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static void test_names(test_ctx *ctx) {
    static const struct { const char *name; int id; } known[] = {
        {"f32", TS_TYPE_F32},   {"f16", TS_TYPE_F16},   {"F16", TS_TYPE_F16},   {"bf16", TS_TYPE_BF16},
        {"BF16", TS_TYPE_BF16}, {"q4_0", TS_TYPE_Q4_0}, {"Q4_0", TS_TYPE_Q4_0}, {"q4_1", TS_TYPE_Q4_1},
        {"q5_0", TS_TYPE_Q5_0}, {"q5_1", TS_TYPE_Q5_1}, {"q8_0", TS_TYPE_Q8_0}, {"q8_1", TS_TYPE_Q8_1},
        {"q2_K", TS_TYPE_Q2_K}, {"q3_k", TS_TYPE_Q3_K}, {"Q4_K", TS_TYPE_Q4_K}, {"q5_K", TS_TYPE_Q5_K},
        {"q6_K", TS_TYPE_Q6_K}, {"q8_K", TS_TYPE_Q8_K}, {"iq2_xxs", 16},        {"IQ2_XXS", 16},
        {"iq4_xs", 23},         {"tq2_0", 35},          {"mxfp4", 39},          {"i8", 24},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        CHECK(ctx, ts_type_from_name(known[i].name) == known[i].id, "ts_type_from_name(%s) = %d, want %d",
              known[i].name, ts_type_from_name(known[i].name), known[i].id);

    static const char *const unknown[] = {"", "q4", "q4_0x", "f1", "q4_2", "q4_2 (removed)", "nope", "q4_0 "};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        CHECK(ctx, ts_type_from_name(unknown[i]) == -1, "ts_type_from_name(\"%s\") = %d, want -1", unknown[i],
              ts_type_from_name(unknown[i]));
    CHECK(ctx, ts_type_from_name(NULL) == -1, "ts_type_from_name(NULL)");

    CHECK(ctx, ts_type_name(16) && strcmp(ts_type_name(16), "iq2_xxs") == 0, "name of 16");
    CHECK(ctx, ts_type_name(39) && strcmp(ts_type_name(39), "mxfp4") == 0, "name of 39");
    CHECK(ctx, ts_type_name(TS_TYPE_Q4_K) && strcmp(ts_type_name(TS_TYPE_Q4_K), "q4_K") == 0, "name of q4_K");
    CHECK(ctx, ts_type_name(-1) == NULL && ts_type_name(TS_TYPE_COUNT) == NULL && ts_type_name(1000) == NULL,
          "names out of range must be NULL");
    /* Every id below TS_TYPE_COUNT has been assigned by GGML, so every one has a name, and a
     * usable name maps back to its id. */
    for (int id = 0; id < TS_TYPE_COUNT; id++) {
        const char *name = ts_type_name(id);
        CHECK(ctx, name != NULL, "id %d has no name", id);
        if (name && !strchr(name, ' ')) CHECK(ctx, ts_type_from_name(name) == id, "name %s does not map back", name);
    }
    CHECK(ctx, strcmp(ts_isa_name(TS_ISA_SCALAR), "scalar") == 0 && strcmp(ts_isa_name(TS_ISA_AVX2), "avx2") == 0,
          "isa names");
    for (int isa = 0; isa < TS_ISA_COUNT; isa++)
        CHECK(ctx, ts_isa_from_name(ts_isa_name((enum ts_isa)isa)) == isa, "isa %d's name %s does not map back", isa,
              ts_isa_name((enum ts_isa)isa));
    CHECK(ctx, ts_isa_from_name("avxvnni") == TS_ISA_AVXVNNI && ts_isa_from_name("avx-vnni") < 0, "avxvnni name");
    /* AVX-VNNI only adds the repacked products: its type table is AVX2's; it is never picked over
     * AVX-512, and always over plain AVX2 where the CPU has it */
    if (ts_isa_supported(TS_ISA_AVXVNNI)) {
        CHECK(ctx, ts_isa_supported(TS_ISA_AVX2) && ts_type_table(TS_ISA_AVXVNNI) == ts_type_table(TS_ISA_AVX2),
              "avxvnni table");
        CHECK(ctx, ts_isa_best() == (ts_isa_supported(TS_ISA_AVX512) ? TS_ISA_AVX512 : TS_ISA_AVXVNNI), "best isa");
    } else {
        CHECK(ctx, ts_type_table(TS_ISA_AVXVNNI) == ts_type_table(TS_ISA_SCALAR), "avxvnni table without the CPU");
    }
}

static void test_row_size(test_ctx *ctx) {
    CHECK(ctx, ts_row_size(TS_TYPE_F32, 3) == 12, "f32 row");
    CHECK(ctx, ts_row_size(TS_TYPE_F16, 5) == 10, "f16 row");
    CHECK(ctx, ts_row_size(TS_TYPE_BF16, 4096) == 8192, "bf16 row");
    CHECK(ctx, ts_row_size(TS_TYPE_Q4_0, 64) == 36, "q4_0 row");
    CHECK(ctx, ts_row_size(TS_TYPE_Q4_1, 32) == 20, "q4_1 row");
    CHECK(ctx, ts_row_size(TS_TYPE_Q5_0, 32) == 22, "q5_0 row");
    CHECK(ctx, ts_row_size(TS_TYPE_Q5_1, 96) == 72, "q5_1 row");
    CHECK(ctx, ts_row_size(TS_TYPE_Q8_0, 7168) == 7168 / 32 * 34, "q8_0 row");
    CHECK(ctx, ts_row_size(TS_TYPE_Q8_1, 32) == 36, "q8_1 row");
    CHECK(ctx, ts_row_size(TS_TYPE_Q4_K, 256) == 144, "q4_K row");
    CHECK(ctx, ts_row_size(TS_TYPE_Q6_K, 512) == 420, "q6_K row");
    CHECK(ctx, ts_row_size(TS_TYPE_Q8_K, 256) == 292, "q8_K row");
    CHECK(ctx, ts_row_size(TS_TYPE_Q4_0, 0) == 0, "empty row");
    CHECK(ctx, ts_row_size(TS_TYPE_Q4_0, 33) == 0, "q4_0 partial block");
    CHECK(ctx, ts_row_size(TS_TYPE_Q4_K, 32) == 0, "q4_K partial block");
    CHECK(ctx, ts_row_size(TS_TYPE_F32, -32) == 0, "negative n");
    CHECK(ctx, ts_row_size(16, 256) == 0, "unsupported iq2_xxs has no size");
    CHECK(ctx, ts_row_size(4, 32) == 0, "removed q4_2 has no size");
    CHECK(ctx, ts_row_size(-1, 32) == 0 && ts_row_size(TS_TYPE_COUNT, 32) == 0, "ids out of range");
    /* A size read from a file must not wrap around size_t. */
    CHECK(ctx, ts_row_size(TS_TYPE_F32, INT64_MAX) == 0 || sizeof(size_t) > 8, "f32 row size overflow");
    CHECK(ctx, ts_row_size(TS_TYPE_F32, INT64_MAX / 4) == (size_t)(INT64_MAX / 4) * 4, "largest f32 row");
}

static void test_table(test_ctx *ctx, enum ts_isa isa) {
    const ts_type_traits *table = ts_type_table(isa);
    const char *isa_name = ts_isa_name(isa);
    CHECK(ctx, table != NULL, "no table for %s", isa_name);
    if (!table) return;
    int supported = 0;
    for (int id = 0; id < TS_TYPE_COUNT; id++) {
        const ts_type_traits *t = &table[id];
        if (!t->supported) {
            CHECK(ctx, !t->to_float && !t->vec_dot && !t->from_float && !t->quantize,
                  "%s: unsupported id %d has kernels", isa_name, id);
            continue;
        }
        supported++;
        CHECK(ctx, t->name && ts_type_name(id) && strcmp(t->name, ts_type_name(id)) == 0, "%s: id %d name %s",
              isa_name, id, t->name ? t->name : "(null)");
        CHECK(ctx, t->block_size > 0 && t->type_size > 0, "%s %s: no block geometry", isa_name, t->name);
        CHECK(ctx, t->to_float && t->from_float && t->quantize, "%s %s: missing conversion", isa_name, t->name);
        CHECK(ctx, t->is_quantized == (t->block_size > 1), "%s %s: is_quantized", isa_name, t->name);
        const bool activation_only = id == TS_TYPE_Q8_1 || id == TS_TYPE_Q8_K;
        CHECK(ctx, activation_only ? t->vec_dot == NULL : t->vec_dot != NULL, "%s %s: vec_dot presence", isa_name,
              t->name);
        const int vdt = t->vec_dot_type;
        CHECK(ctx, vdt >= 0 && vdt < TS_TYPE_COUNT && table[vdt].supported, "%s %s: vec_dot_type %d", isa_name, t->name,
              vdt);
        if (vdt >= 0 && vdt < TS_TYPE_COUNT) {
            /* Weight and activation rows are walked block by block together. */
            CHECK(ctx, table[vdt].block_size == t->block_size, "%s %s: block size %d vs activation %d", isa_name,
                  t->name, t->block_size, table[vdt].block_size);
            CHECK(ctx, table[vdt].from_float != NULL, "%s %s: activation type cannot be produced", isa_name, t->name);
        }
    }
    /* f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q8_1 q2_K..q6_K q8_K */
    CHECK(ctx, supported == 15, "%s: %d supported types, want 15", isa_name, supported);

    static const struct { int id, vdt; } expect[] = {
        {TS_TYPE_F32, TS_TYPE_F32},   {TS_TYPE_F16, TS_TYPE_F16},   {TS_TYPE_BF16, TS_TYPE_BF16},
        {TS_TYPE_Q4_0, TS_TYPE_Q8_0}, {TS_TYPE_Q4_1, TS_TYPE_Q8_1}, {TS_TYPE_Q5_0, TS_TYPE_Q8_0},
        {TS_TYPE_Q5_1, TS_TYPE_Q8_1}, {TS_TYPE_Q8_0, TS_TYPE_Q8_0}, {TS_TYPE_Q2_K, TS_TYPE_Q8_K},
        {TS_TYPE_Q3_K, TS_TYPE_Q8_K}, {TS_TYPE_Q4_K, TS_TYPE_Q8_K}, {TS_TYPE_Q5_K, TS_TYPE_Q8_K},
        {TS_TYPE_Q6_K, TS_TYPE_Q8_K},
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        CHECK(ctx, table[expect[i].id].vec_dot_type == expect[i].vdt, "%s %s: vec_dot_type %d, want %d", isa_name,
              table[expect[i].id].name, table[expect[i].id].vec_dot_type, expect[i].vdt);
    CHECK(ctx, table[TS_TYPE_Q4_0].type_size == sizeof(block_q4_0) && table[TS_TYPE_Q6_K].type_size == sizeof(block_q6_K),
          "%s: block sizes", isa_name);
}

/* quantize -> dequantize and activation conversion -> dot, through the table only: vec_dot(W, A)
 * must equal sum(dequant(W) * dequant(A)) up to float rounding, for every weight type. */
static void test_end_to_end(test_ctx *ctx, enum ts_isa isa) {
    enum { N = 256 * 8 };
    const ts_type_traits *table = ts_type_table(isa);
    float *w = malloc(N * sizeof(float)), *a = malloc(N * sizeof(float));
    float *wd = malloc(N * sizeof(float)), *ad = malloc(N * sizeof(float));
    uint8_t *wq = malloc(N * 4), *aq = malloc(N * 4 + 1024);
    if (!w || !a || !wd || !ad || !wq || !aq) abort();
    uint64_t state = 88172645463325252ULL;
    for (int i = 0; i < N; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        w[i] = (float)((int64_t)(state >> 11) % 2000001 - 1000000) * 1e-6f;
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        a[i] = (float)((int64_t)(state >> 11) % 2000001 - 1000000) * 3e-6f;
    }
    for (int id = 0; id < TS_TYPE_COUNT; id++) {
        const ts_type_traits *t = &table[id];
        if (!t->supported || !t->vec_dot) continue;
        const ts_type_traits *act = &table[t->vec_dot_type];
        t->quantize(w, wq, N);
        t->to_float(wq, wd, N);
        act->from_float(a, aq, N);
        act->to_float(aq, ad, N);
        double want = 0.0, abs_sum = 0.0;
        for (int i = 0; i < N; i++) {
            want += (double)wd[i] * ad[i];
            abs_sum += fabs((double)wd[i] * ad[i]);
        }
        float got = NAN;
        t->vec_dot(N, &got, wq, aq);
        /* Float rounding of the scales and sums only; K-quant dots also subtract a min term, so
         * allow 1e-4 of the magnitude, far below what a mis-wired kernel gives. */
        CHECK(ctx, fabs(got - want) <= 1e-4 * abs_sum + 1e-30, "%s %s: vec_dot %.8g vs dequantized dot %.8g",
              ts_isa_name(isa), t->name, got, want);
        /* And the quantization itself is faithful: dequant(W) close to W. */
        double err = 0.0, mag = 0.0;
        for (int i = 0; i < N; i++) err += fabs((double)wd[i] - w[i]), mag += fabs((double)w[i]);
        /* 2-bit q2_K errs by about a third of the mean magnitude on uniform data; the others less. */
        CHECK(ctx, err <= (id == TS_TYPE_Q2_K ? 0.35 : 0.2) * mag, "%s %s: quantization error %g of %g", ts_isa_name(isa), t->name, err, mag);
    }
    free(w), free(a), free(wd), free(ad), free(wq), free(aq);
}

int main(void) {
    test_ctx ctx = {0};
    test_names(&ctx);
    test_row_size(&ctx);
    test_table(&ctx, TS_ISA_SCALAR);
    test_end_to_end(&ctx, TS_ISA_SCALAR);
    const enum ts_isa best = ts_isa_best();
    if (best != TS_ISA_SCALAR) {
        /* Every SIMD table this CPU can run, not only the best: a machine with AVX-512 still runs
         * the AVX2 kernels wherever the AVX-512 table falls back to them. */
        for (int isa = TS_ISA_SCALAR + 1; isa < TS_ISA_COUNT; isa++) {
            if (!ts_isa_supported((enum ts_isa)isa)) continue;
            test_table(&ctx, (enum ts_isa)isa);
            test_end_to_end(&ctx, (enum ts_isa)isa);
        }
    } else {
        printf("test_types: no SIMD ISA on this CPU/build: only the scalar table tested\n");
    }
    /* Asking for an ISA the CPU lacks must give a usable (scalar) table, never NULL. */
    for (int isa = 0; isa < TS_ISA_COUNT; isa++) CHECK(&ctx, ts_type_table((enum ts_isa)isa) != NULL, "table %d", isa);
    if (!ts_isa_supported(TS_ISA_AVX2))
        CHECK(&ctx, ts_type_table(TS_ISA_AVX2) == ts_type_table(TS_ISA_SCALAR), "AVX2 table on a CPU without AVX2");
    printf("test_types: best ISA %s, %d checks, %d failures\n", ts_isa_name(best), ctx.checks, ctx.failures);
    return ctx.failures ? 1 : 0;
}
