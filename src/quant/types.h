/* The one table of weight types (like ggml's type traits).
 *
 * Type ids are GGML's (they are what GGUF files store). For each ISA there is one const table
 * indexed by type id; the engine picks a table once at start-up (ts_isa_best) and keeps the
 * pointer — no global mutable state. The scalar table is the reference every SIMD kernel is tested
 * against.
 *
 * Dot products follow ggml's scheme: a weight row of type T is multiplied with an activation row
 * that was first converted to T's vec_dot_type (F32 for F32, F16 for F16, BF16 for BF16, Q8_0 for
 * Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants). Converting activations the same way
 * llama.cpp does keeps our numbers within rounding of llama.cpp's. */
#ifndef TS_QUANT_TYPES_H
#define TS_QUANT_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ts_type {
    TS_TYPE_F32 = 0,
    TS_TYPE_F16 = 1,
    TS_TYPE_Q4_0 = 2,
    TS_TYPE_Q4_1 = 3,
    TS_TYPE_Q5_0 = 6,
    TS_TYPE_Q5_1 = 7,
    TS_TYPE_Q8_0 = 8,
    TS_TYPE_Q8_1 = 9,
    TS_TYPE_Q2_K = 10,
    TS_TYPE_Q3_K = 11,
    TS_TYPE_Q4_K = 12,
    TS_TYPE_Q5_K = 13,
    TS_TYPE_Q6_K = 14,
    TS_TYPE_Q8_K = 15,
    TS_TYPE_BF16 = 30,
    TS_TYPE_COUNT = 40, /* one past the highest id GGML has assigned (MXFP4 = 39) */
};

/* AVX512 = AVX-512 F/BW/VL/VNNI (with AVX2/FMA/F16C): its table has VNNI kernels for the hottest
 * weight types and the AVX2 entries for the rest. AVXVNNI = AVX2 plus the VEX-encoded 256-bit
 * vpdpbusd (Intel Alder Lake and later client cores, which lack AVX-512): the AVX2 kernels except
 * the repacked matrix products, which have VNNI tiles of their own. */
enum ts_isa { TS_ISA_SCALAR = 0, TS_ISA_AVX2 = 1, TS_ISA_NEON = 2, TS_ISA_AVX512 = 3, TS_ISA_AVXVNNI = 4, TS_ISA_COUNT };

/* x: n values of this type (n a multiple of block_size); y: n floats. */
typedef void (*ts_to_float_fn)(const void *restrict x, float *restrict y, int64_t n);
/* x: n floats; y: n values of this type. */
typedef void (*ts_from_float_fn)(const float *restrict x, void *restrict y, int64_t n);
/* *s = dot(x, y) over n values; x has this type, y has this type's vec_dot_type. */
typedef void (*ts_vec_dot_fn)(int n, float *restrict s, const void *restrict x, const void *restrict y);
/* A tile of dot products: s[c * s_stride + r] = dot(x row r, y row c) for r < n_rows, c < n_cols,
 * x rows x_stride bytes apart, y rows y_stride bytes apart (y in vec_dot_type). Each result is
 * bit-identical to vec_dot of the same table on the same pair — batch prefill and one-token decode
 * must produce the same logits — but a tile kernel reuses each loaded weight block for several
 * tokens and each activation block for several rows. */
typedef void (*ts_vec_dot_tile_fn)(int n, int n_rows, int n_cols, float *restrict s, size_t s_stride,
                                   const void *restrict x, size_t x_stride, const void *restrict y, size_t y_stride);

typedef struct ts_type_traits {
    const char *name;        /* GGML's name ("q4_K"); set for every assigned id, also unsupported ones */
    int block_size;          /* values per block; 0 = id not assigned / unknown */
    size_t type_size;        /* bytes per block */
    bool supported;          /* the engine can compute with it (as weights, or as activations) */
    bool is_quantized;
    ts_to_float_fn to_float;     /* dequantize */
    ts_from_float_fn from_float; /* fast conversion, used on activations (for activation types) */
    ts_from_float_fn quantize;   /* reference quantizer for writing weights (synth); may be slow */
    int vec_dot_type;            /* enum ts_type of the activation row vec_dot expects */
    ts_vec_dot_fn vec_dot;
    ts_vec_dot_tile_fn vec_dot_tile; /* set wherever vec_dot is (a loop over vec_dot if nothing better) */
} ts_type_traits;

/* The table for an ISA: an array of TS_TYPE_COUNT entries. Entries an ISA has no kernel for fall
 * back to the scalar ones, so every table is complete. Returns the scalar table for an ISA that
 * this build or CPU lacks. */
const ts_type_traits *ts_type_table(enum ts_isa isa);

/* Best ISA this CPU supports (and this build has kernels for). */
enum ts_isa ts_isa_best(void);
/* Whether this build has kernels for `isa` and this CPU can run them (AVX2 also on an AVX-512 CPU). */
bool ts_isa_supported(enum ts_isa isa);
const char *ts_isa_name(enum ts_isa isa);
/* The CPU's family as AMD numbers it (CPUID leaf 1: base + extended family; 0x19 = Zen 3 and
 * Zen 4, 0x1A = Zen 5), or 0 on a CPU that is not AMD's or not x86. */
int ts_cpu_amd_family(void);
/* The ISA named "scalar", "avx2", "avx512" or "neon" (as ts_isa_name writes them); -1 if none. */
int ts_isa_from_name(const char *name);

/* Name of a type id, also for ids the engine does not support ("iq2_xxs"); NULL if unassigned. */
const char *ts_type_name(int type);
/* Type id from a name such as "q4_K", "Q4_K", "f16"; -1 if unknown. */
int ts_type_from_name(const char *name);

/* Bytes of a row of n values; 0 if n is not a multiple of the block size or the type is unknown. */
size_t ts_row_size(int type, int64_t n);

#endif
