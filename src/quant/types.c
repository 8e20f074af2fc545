#include "quant/types.h"

#include <ctype.h>
#include <stdatomic.h>
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

/* The tile entry of a type without a tile kernel of its own: one vec_dot per pair, so it is
 * bit-identical to vec_dot by construction. Weight row outermost: it stays in L1 while the
 * activation rows (sized by the caller to stay in L2) stream past it. */
#define TILE_LOOP(nm, isa)                                                                               \
    static void tile_loop_##nm##_##isa(int n, int n_rows, int n_cols, float *restrict s, size_t s_stride, \
                                        const void *restrict x, size_t x_stride, const void *restrict y,   \
                                        size_t y_stride) {                                                 \
        for (int r = 0; r < n_rows; r++)                                                                   \
            for (int c = 0; c < n_cols; c++)                                                               \
                ts_dot_##nm##_##isa(n, &s[(size_t)c * s_stride + (size_t)r], (const char *)x + (size_t)r * x_stride, \
                                    (const char *)y + (size_t)c * y_stride);                               \
    }

#define TILE_LOOPS(isa)                                                                                   \
    TILE_LOOP(f32, isa) TILE_LOOP(f16, isa) TILE_LOOP(bf16, isa) TILE_LOOP(q4_0, isa) TILE_LOOP(q4_1, isa) \
    TILE_LOOP(q5_0, isa) TILE_LOOP(q5_1, isa) TILE_LOOP(q8_0, isa) TILE_LOOP(q2_K, isa) TILE_LOOP(q3_K, isa) \
    TILE_LOOP(q4_K, isa) TILE_LOOP(q5_K, isa) TILE_LOOP(q6_K, isa)

TILE_LOOPS(ref)
#if defined(TS_HAVE_AVX2_KERNELS)
TILE_LOOPS(avx2)
#endif
#if defined(TS_HAVE_NEON_KERNELS)
TILE_LOOPS(neon)
#endif

/* isa: the kernels' ISA; tile: how the tile entry is named (tile_loop_<nm>_<isa> or a real kernel). */
#define ENTRY_TILE(id, nm, bs, ts, quantized, isa, vdt, tile)                                            \
    [id] = {.name = #nm, .block_size = bs, .type_size = ts, .supported = true, .is_quantized = quantized, \
            .to_float = ts_dequant_##nm##_##isa, .from_float = ts_quant_##nm##_ref,                      \
            .quantize = ts_quant_##nm##_ref, .vec_dot_type = vdt, .vec_dot = ts_dot_##nm##_##isa,         \
            .vec_dot_tile = tile}
#define ENTRY(id, nm, bs, ts, quantized, isa, vdt) ENTRY_TILE(id, nm, bs, ts, quantized, isa, vdt, tile_loop_##nm##_##isa)

/* f16 and bf16 are also activation types (the vec_dot_type of themselves): from_float converts
 * activations and may use the ISA's converter, while quantize stays the scalar reference. */
#define FLOAT_ENTRY(id, nm, isa, act_isa)                                                              \
    [id] = {.name = #nm, .block_size = 1, .type_size = 2, .supported = true, .is_quantized = false,     \
            .to_float = ts_dequant_##nm##_##isa, .from_float = ts_quant_##nm##_##act_isa,                \
            .quantize = ts_quant_##nm##_ref, .vec_dot_type = id, .vec_dot = ts_dot_##nm##_##isa,          \
            .vec_dot_tile = tile_loop_##nm##_##isa}

#define ACT_ENTRY(id, nm, bs, ts, isa)                                                                 \
    [id] = {.name = #nm, .block_size = bs, .type_size = ts, .supported = true, .is_quantized = true,     \
            .to_float = ts_dequant_##nm##_ref, .from_float = ts_quant_##nm##_##isa,                      \
            .quantize = ts_quant_##nm##_ref, .vec_dot_type = id, .vec_dot = NULL, .vec_dot_tile = NULL}

/* Weight types whose kernels never change between tables of one ISA family. */
#define COMMON_WEIGHT_TYPES(isa)                                                                  \
    ENTRY(TS_TYPE_F32, f32, 1, 4, false, isa, TS_TYPE_F32),                                        \
    ENTRY(TS_TYPE_Q4_1, q4_1, QK4_1, sizeof(block_q4_1), true, isa, TS_TYPE_Q8_1),                 \
    ENTRY(TS_TYPE_Q5_0, q5_0, QK5_0, sizeof(block_q5_0), true, isa, TS_TYPE_Q8_0),                 \
    ENTRY(TS_TYPE_Q5_1, q5_1, QK5_1, sizeof(block_q5_1), true, isa, TS_TYPE_Q8_1),                 \
    ENTRY(TS_TYPE_Q2_K, q2_K, QK_K, sizeof(block_q2_K), true, isa, TS_TYPE_Q8_K),                  \
    ENTRY(TS_TYPE_Q3_K, q3_K, QK_K, sizeof(block_q3_K), true, isa, TS_TYPE_Q8_K),                  \
    ENTRY(TS_TYPE_Q5_K, q5_K, QK_K, sizeof(block_q5_K), true, isa, TS_TYPE_Q8_K)

#define WEIGHT_TYPES(isa)                                                                         \
    COMMON_WEIGHT_TYPES(isa),                                                                      \
    ENTRY(TS_TYPE_Q4_0, q4_0, QK4_0, sizeof(block_q4_0), true, isa, TS_TYPE_Q8_0),                 \
    ENTRY(TS_TYPE_Q4_K, q4_K, QK_K, sizeof(block_q4_K), true, isa, TS_TYPE_Q8_K),                  \
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
#define Q8_0_SIMD_ENTRY(dot_isa, tile)                                                                      \
    [TS_TYPE_Q8_0] = {.name = "q8_0", .block_size = QK8_0, .type_size = sizeof(block_q8_0), .supported = true, \
                      .is_quantized = true, .to_float = ts_dequant_q8_0_avx2, .from_float = ts_quant_q8_0_avx2,  \
                      .quantize = ts_quant_q8_0_ref, .vec_dot_type = TS_TYPE_Q8_0,                             \
                      .vec_dot = ts_dot_q8_0_##dot_isa, .vec_dot_tile = tile}

static const ts_type_traits table_avx2[TS_TYPE_COUNT] = {
    WEIGHT_TYPES(avx2),
    FLOAT_ENTRY(TS_TYPE_F16, f16, avx2, avx2),
    FLOAT_ENTRY(TS_TYPE_BF16, bf16, avx2, avx2),
    Q8_0_SIMD_ENTRY(avx2, tile_loop_q8_0_avx2),
    ACT_ENTRY(TS_TYPE_Q8_1, q8_1, QK8_1, sizeof(block_q8_1), avx2),
    ACT_ENTRY(TS_TYPE_Q8_K, q8_K, QK_K, sizeof(block_q8_K), avx2),
};
#endif

#if defined(TS_HAVE_AVX512_KERNELS)
/* The AVX-512 VNNI kernels (quants_avx512.c) replace the dots of the weight types that dominate
 * real files; everything else (dequantization, activation conversion, rarer types) is AVX2's.
 * A weight type's vec_dot and vec_dot_tile always come from the same ISA, so decode and prefill
 * agree bit for bit within a table. */
#define AVX512_ENTRY(id, nm, bs, ts, vdt)                                                                \
    [id] = {.name = #nm, .block_size = bs, .type_size = ts, .supported = true, .is_quantized = true,       \
            .to_float = ts_dequant_##nm##_avx2, .from_float = ts_quant_##nm##_ref,                        \
            .quantize = ts_quant_##nm##_ref, .vec_dot_type = vdt, .vec_dot = ts_dot_##nm##_avx512,         \
            .vec_dot_tile = ts_dot_tile_##nm##_avx512}

static const ts_type_traits table_avx512[TS_TYPE_COUNT] = {
    COMMON_WEIGHT_TYPES(avx2),
    AVX512_ENTRY(TS_TYPE_Q4_0, q4_0, QK4_0, sizeof(block_q4_0), TS_TYPE_Q8_0),
    AVX512_ENTRY(TS_TYPE_Q4_K, q4_K, QK_K, sizeof(block_q4_K), TS_TYPE_Q8_K),
    AVX512_ENTRY(TS_TYPE_Q6_K, q6_K, QK_K, sizeof(block_q6_K), TS_TYPE_Q8_K),
    FLOAT_ENTRY(TS_TYPE_F16, f16, avx2, avx2),
    FLOAT_ENTRY(TS_TYPE_BF16, bf16, avx2, avx2),
    Q8_0_SIMD_ENTRY(avx512, ts_dot_tile_q8_0_avx512),
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
                      .quantize = ts_quant_q8_0_ref, .vec_dot_type = TS_TYPE_Q8_0, .vec_dot = ts_dot_q8_0_neon,
                      .vec_dot_tile = tile_loop_q8_0_neon},
    ACT_ENTRY(TS_TYPE_Q8_1, q8_1, QK8_1, sizeof(block_q8_1), neon),
    ACT_ENTRY(TS_TYPE_Q8_K, q8_K, QK_K, sizeof(block_q8_K), neon),
};
#endif

const ts_type_traits *ts_type_table(enum ts_isa isa) {
    /* Never hand out kernels the CPU would fault on, whatever the caller asked for. */
    if (!ts_isa_supported(isa)) return table_scalar;
    switch (isa) {
#if defined(TS_HAVE_AVX2_KERNELS)
    case TS_ISA_AVX2:
    case TS_ISA_AVXVNNI: return table_avx2;
#endif
#if defined(TS_HAVE_AVX512_KERNELS)
    case TS_ISA_AVX512: return table_avx512;
#endif
#if defined(TS_HAVE_NEON_KERNELS)
    case TS_ISA_NEON: return table_neon;
#endif
    default: return table_scalar;
    }
}

#if defined(TS_HAVE_AVX2_KERNELS) && (defined(__x86_64__) || defined(__i386__))
static bool cpu_has_avx2(void) {
    /* The AVX2 kernels also use F16C, which __builtin_cpu_supports cannot name on every compiler
     * (clang 14), so that bit is read from CPUID leaf 1 directly. __builtin_cpu_supports("avx2")
     * already includes the OS check (XGETBV) that the YMM state is saved. */
    __builtin_cpu_init();
    unsigned eax, ebx, ecx, edx;
    const bool has_f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c;
}
#endif

#if defined(TS_HAVE_AVX512_KERNELS) && defined(__x86_64__)
static bool cpu_has_avx512_vnni(void) {
    if (!cpu_has_avx2()) return false;
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_OSXSAVE)) return false;
    /* The OS must save the opmask and all 512-bit registers (XCR0 bits 5..7) besides SSE/AVX
     * state (bits 1, 2); a CPU with AVX-512 under an OS that does not would fault. */
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    (void)xcr0_hi;
    if ((xcr0_lo & 0xE6u) != 0xE6u) return false;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    const bool f = ebx & (1u << 16), bw = ebx & (1u << 30), vl = ebx & (1u << 31), vnni = ecx & (1u << 11);
    return f && bw && vl && vnni;
}
#endif

#if defined(TS_HAVE_AVXVNNI_KERNELS) && defined(__x86_64__)
static bool cpu_has_avx_vnni(void) {
    unsigned eax, ebx, ecx, edx;
    /* CPUID leaf 7 sub-leaf 1, EAX bit 4: AVX-VNNI (its YMM state is AVX2's, checked there) */
    return cpu_has_avx2() && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 4));
}
#endif

static bool isa_check(enum ts_isa isa) {
    switch (isa) {
    case TS_ISA_SCALAR: return true;
#if defined(TS_HAVE_AVX2_KERNELS) && (defined(__x86_64__) || defined(__i386__))
    case TS_ISA_AVX2: return cpu_has_avx2();
#endif
#if defined(TS_HAVE_AVX512_KERNELS) && defined(__x86_64__)
    case TS_ISA_AVX512: return cpu_has_avx512_vnni();
#endif
#if defined(TS_HAVE_AVXVNNI_KERNELS) && defined(__x86_64__)
    case TS_ISA_AVXVNNI: return cpu_has_avx_vnni();
#endif
#if defined(TS_HAVE_NEON_KERNELS) && defined(__aarch64__)
    case TS_ISA_NEON: return true; /* Advanced SIMD is mandatory on AArch64: no run-time check needed */
#endif
    default: return false;
    }
}

/* CPUID traps to the hypervisor in a virtual machine (21 us a call on the development host, four
 * leaves per check) and the loader asks once per matrix (a cache file's check twice more): V2-Lite
 * spent ~30 ms of its 0.2 s load to first token here. The answer is a fact about the CPU, so each
 * ISA's is computed once; threads racing to fill an entry compute the same value. */
int ts_cpu_amd_family(void) {
#if defined(TS_HAVE_AVX2_KERNELS) && (defined(__x86_64__) || defined(__i386__))
    unsigned eax, ebx, ecx, edx;
    /* "AuthenticAMD" in EBX, EDX, ECX of leaf 0 */
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx) || ebx != 0x68747541u || edx != 0x69746e65u || ecx != 0x444d4163u)
        return 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    const int base = (int)((eax >> 8) & 0xF), ext = (int)((eax >> 20) & 0xFF);
    return base == 0xF ? base + ext : base;
#else
    return 0;
#endif
}

bool ts_isa_supported(enum ts_isa isa) {
    static _Atomic signed char known[TS_ISA_COUNT]; /* 0 not yet asked, 1 no, 2 yes */
    if ((unsigned)isa >= TS_ISA_COUNT) return false;
    signed char v = atomic_load_explicit(&known[isa], memory_order_relaxed);
    if (v == 0) {
        v = isa_check(isa) ? 2 : 1;
        atomic_store_explicit(&known[isa], v, memory_order_relaxed);
    }
    return v == 2;
}

enum ts_isa ts_isa_best(void) {
    if (ts_isa_supported(TS_ISA_AVX512)) return TS_ISA_AVX512;
    if (ts_isa_supported(TS_ISA_AVXVNNI)) return TS_ISA_AVXVNNI;
    if (ts_isa_supported(TS_ISA_AVX2)) return TS_ISA_AVX2;
    if (ts_isa_supported(TS_ISA_NEON)) return TS_ISA_NEON;
    return TS_ISA_SCALAR;
}

const char *ts_isa_name(enum ts_isa isa) {
    switch (isa) {
    case TS_ISA_AVX2: return "avx2";
    case TS_ISA_NEON: return "neon";
    case TS_ISA_AVX512: return "avx512";
    case TS_ISA_AVXVNNI: return "avxvnni";
    default: return "scalar";
    }
}

int ts_isa_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < TS_ISA_COUNT; i++)
        if (strcmp(name, ts_isa_name((enum ts_isa)i)) == 0) return i;
    return -1;
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
