#include "quant/types.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#if defined(TS_HAVE_AVX2_KERNELS) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
#endif

#include "quant/blocks.h"
#include "quant/kernels.h"

/* Names of every id GGML has assigned, so a file with a type we cannot compute is refused by name. */
static const char *const type_names[TS_TYPE_COUNT] = {
    [0] = "f32",      [1] = "f16",     [2] = "q4_0",    [3] = "q4_1",     [4] = "q4_2 (removed)",
    [5] = "q4_3 (removed)", [6] = "q5_0", [7] = "q5_1", [8] = "q8_0",    [9] = "q8_1",
    [10] = "q2_K",    [11] = "q3_K",   [12] = "q4_K",   [13] = "q5_K",    [14] = "q6_K",
    [15] = "q8_K",    [16] = "iq2_xxs", [17] = "iq2_xs", [18] = "iq3_xxs", [19] = "iq1_s",
    [20] = "iq4_nl",  [21] = "iq3_s",  [22] = "iq2_s",  [23] = "iq4_xs",  [24] = "i8",
    [25] = "i16",     [26] = "i32",    [27] = "i64",    [28] = "f64",     [29] = "iq1_m",
    [30] = "bf16",    [31] = "q4_0_4_4 (removed)", [32] = "q4_0_4_8 (removed)",
    [33] = "q4_0_8_8 (removed)", [34] = "tq1_0", [35] = "tq2_0", [36] = "iq4_nl_4_4 (removed)",
    [37] = "iq4_nl_4_8 (removed)", [38] = "iq4_nl_8_8 (removed)", [39] = "mxfp4",
};

#define ENTRY(id, nm, bs, ts, quantized, isa, vdt)                                                     \
    [id] = {.name = #nm, .block_size = bs, .type_size = ts, .supported = true, .is_quantized = quantized, \
            .to_float = ts_dequant_##nm##_##isa, .from_float = ts_quant_##nm##_ref,                      \
            .quantize = ts_quant_##nm##_ref, .vec_dot_type = vdt, .vec_dot = ts_dot_##nm##_##isa}

/* f16 and bf16 are also activation types (the vec_dot_type of themselves): from_float converts
 * activations and may use the ISA's converter, while quantize stays the scalar reference. */
#define FLOAT_ENTRY(id, nm, isa, act_isa)                                                              \
    [id] = {.name = #nm, .block_size = 1, .type_size = 2, .supported = true, .is_quantized = false,     \
            .to_float = ts_dequant_##nm##_##isa, .from_float = ts_quant_##nm##_##act_isa,                \
            .quantize = ts_quant_##nm##_ref, .vec_dot_type = id, .vec_dot = ts_dot_##nm##_##isa}

#define ACT_ENTRY(id, nm, bs, ts, isa)                                                                 \
    [id] = {.name = #nm, .block_size = bs, .type_size = ts, .supported = true, .is_quantized = true,     \
            .to_float = ts_dequant_##nm##_ref, .from_float = ts_quant_##nm##_##isa,                      \
            .quantize = ts_quant_##nm##_ref, .vec_dot_type = id, .vec_dot = NULL}

#define WEIGHT_TYPES(isa)                                                                         \
    ENTRY(TS_TYPE_F32, f32, 1, 4, false, isa, TS_TYPE_F32),                                        \
    ENTRY(TS_TYPE_Q4_0, q4_0, QK4_0, sizeof(block_q4_0), true, isa, TS_TYPE_Q8_0),                 \
    ENTRY(TS_TYPE_Q4_1, q4_1, QK4_1, sizeof(block_q4_1), true, isa, TS_TYPE_Q8_1),                 \
    ENTRY(TS_TYPE_Q5_0, q5_0, QK5_0, sizeof(block_q5_0), true, isa, TS_TYPE_Q8_0),                 \
    ENTRY(TS_TYPE_Q5_1, q5_1, QK5_1, sizeof(block_q5_1), true, isa, TS_TYPE_Q8_1),                 \
    ENTRY(TS_TYPE_Q2_K, q2_K, QK_K, sizeof(block_q2_K), true, isa, TS_TYPE_Q8_K),                  \
    ENTRY(TS_TYPE_Q3_K, q3_K, QK_K, sizeof(block_q3_K), true, isa, TS_TYPE_Q8_K),                  \
    ENTRY(TS_TYPE_Q4_K, q4_K, QK_K, sizeof(block_q4_K), true, isa, TS_TYPE_Q8_K),                  \
    ENTRY(TS_TYPE_Q5_K, q5_K, QK_K, sizeof(block_q5_K), true, isa, TS_TYPE_Q8_K),                  \
    ENTRY(TS_TYPE_Q6_K, q6_K, QK_K, sizeof(block_q6_K), true, isa, TS_TYPE_Q8_K)

static const ts_type_traits table_scalar[TS_TYPE_COUNT] = {
    WEIGHT_TYPES(ref),
    FLOAT_ENTRY(TS_TYPE_F16, f16, ref, ref),
    FLOAT_ENTRY(TS_TYPE_BF16, bf16, ref, ref),
    /* Q8_0 is both a weight type and the activation type of Q4_0/Q5_0/Q8_0. */
    ENTRY(TS_TYPE_Q8_0, q8_0, QK8_0, sizeof(block_q8_0), true, ref, TS_TYPE_Q8_0),
    ACT_ENTRY(TS_TYPE_Q8_1, q8_1, QK8_1, sizeof(block_q8_1), ref),
    ACT_ENTRY(TS_TYPE_Q8_K, q8_K, QK_K, sizeof(block_q8_K), ref),
};

#if defined(TS_HAVE_AVX2_KERNELS)
static const ts_type_traits table_avx2[TS_TYPE_COUNT] = {
    WEIGHT_TYPES(avx2),
    FLOAT_ENTRY(TS_TYPE_F16, f16, avx2, avx2),
    FLOAT_ENTRY(TS_TYPE_BF16, bf16, avx2, avx2),
    [TS_TYPE_Q8_0] = {.name = "q8_0", .block_size = QK8_0, .type_size = sizeof(block_q8_0), .supported = true,
                      .is_quantized = true, .to_float = ts_dequant_q8_0_avx2, .from_float = ts_quant_q8_0_avx2,
                      .quantize = ts_quant_q8_0_ref, .vec_dot_type = TS_TYPE_Q8_0, .vec_dot = ts_dot_q8_0_avx2},
    ACT_ENTRY(TS_TYPE_Q8_1, q8_1, QK8_1, sizeof(block_q8_1), avx2),
    ACT_ENTRY(TS_TYPE_Q8_K, q8_K, QK_K, sizeof(block_q8_K), avx2),
};
#endif

#if defined(TS_HAVE_NEON_KERNELS)
static const ts_type_traits table_neon[TS_TYPE_COUNT] = {
    WEIGHT_TYPES(neon),
    FLOAT_ENTRY(TS_TYPE_F16, f16, neon, neon),
    FLOAT_ENTRY(TS_TYPE_BF16, bf16, neon, neon),
    [TS_TYPE_Q8_0] = {.name = "q8_0", .block_size = QK8_0, .type_size = sizeof(block_q8_0), .supported = true,
                      .is_quantized = true, .to_float = ts_dequant_q8_0_neon, .from_float = ts_quant_q8_0_neon,
                      .quantize = ts_quant_q8_0_ref, .vec_dot_type = TS_TYPE_Q8_0, .vec_dot = ts_dot_q8_0_neon},
    ACT_ENTRY(TS_TYPE_Q8_1, q8_1, QK8_1, sizeof(block_q8_1), neon),
    ACT_ENTRY(TS_TYPE_Q8_K, q8_K, QK_K, sizeof(block_q8_K), neon),
};
#endif

const ts_type_traits *ts_type_table(enum ts_isa isa) {
#if defined(TS_HAVE_AVX2_KERNELS)
    /* Never hand out kernels the CPU would fault on, whatever the caller asked for. */
    if (isa == TS_ISA_AVX2 && ts_isa_best() == TS_ISA_AVX2) return table_avx2;
#endif
#if defined(TS_HAVE_NEON_KERNELS)
    if (isa == TS_ISA_NEON && ts_isa_best() == TS_ISA_NEON) return table_neon;
#endif
    (void)isa;
    return table_scalar;
}

enum ts_isa ts_isa_best(void) {
#if defined(TS_HAVE_AVX2_KERNELS) && (defined(__x86_64__) || defined(__i386__))
    /* The AVX2 kernels also use F16C, which __builtin_cpu_supports cannot name on every compiler
     * (clang 14), so that bit is read from CPUID leaf 1 directly. __builtin_cpu_supports("avx2")
     * already includes the OS check (XGETBV) that the YMM state is saved. */
    __builtin_cpu_init();
    unsigned eax, ebx, ecx, edx;
    const bool has_f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c) return TS_ISA_AVX2;
#endif
#if defined(TS_HAVE_NEON_KERNELS) && defined(__aarch64__)
    return TS_ISA_NEON; /* Advanced SIMD is mandatory on AArch64: no run-time check needed */
#endif
    return TS_ISA_SCALAR;
}

const char *ts_isa_name(enum ts_isa isa) {
    switch (isa) {
    case TS_ISA_AVX2: return "avx2";
    case TS_ISA_NEON: return "neon";
    default: return "scalar";
    }
}

const char *ts_type_name(int type) {
    if (type < 0 || type >= TS_TYPE_COUNT) return NULL;
    return type_names[type];
}

int ts_type_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < TS_TYPE_COUNT; i++) {
        const char *n = type_names[i];
        if (!n || strchr(n, ' ')) continue;
        size_t k = 0;
        while (n[k] && name[k] && tolower((unsigned char)n[k]) == tolower((unsigned char)name[k])) k++;
        if (!n[k] && !name[k]) return i;
    }
    return -1;
}

size_t ts_row_size(int type, int64_t n) {
    if (type < 0 || type >= TS_TYPE_COUNT || n < 0) return 0;
    const ts_type_traits *t = &table_scalar[type];
    if (!t->block_size || n % t->block_size) return 0;
    const uint64_t blocks = (uint64_t)(n / t->block_size);
    if (blocks > SIZE_MAX / t->type_size) return 0; /* a size from a file must not wrap around */
    return (size_t)blocks * t->type_size;
}
