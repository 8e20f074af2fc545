/* Kernel prototypes behind the type table (types.c). Naming: ts_<op>_<type>[_<vecdottype>]_<isa>.
 *   dequant: ts_to_float_fn        quant: ts_from_float_fn (ref = reference weight quantizer,
 *   for activation types Q8_0/Q8_1/Q8_K also the activation quantizer)        dot: ts_vec_dot_fn
 * Scalar kernels live in float_types.c, legacy.c, kquants.c; AVX2 ones in *_avx2.c (compiled with
 * -mavx2 -mfma -mf16c and only called after a CPU check); NEON in *_neon.c. */
#ifndef TS_QUANT_KERNELS_H
#define TS_QUANT_KERNELS_H

#include "quant/types.h"

#define TS_DECL_DEQ(t, isa) void ts_dequant_##t##_##isa(const void *restrict x, float *restrict y, int64_t n);
#define TS_DECL_QUANT(t, isa) void ts_quant_##t##_##isa(const float *restrict x, void *restrict y, int64_t n);
#define TS_DECL_DOT(t, isa) void ts_dot_##t##_##isa(int n, float *restrict s, const void *restrict x, const void *restrict y);

#define TS_DECL_TYPE(t, isa) TS_DECL_DEQ(t, isa) TS_DECL_QUANT(t, isa) TS_DECL_DOT(t, isa)

/* Scalar reference: every type. For q8_0/q8_1/q8_K the dot is not defined (activation-only types
 * have no dot of their own), except q8_0, which is also a weight type. */
TS_DECL_TYPE(f32, ref)
TS_DECL_TYPE(f16, ref)
TS_DECL_TYPE(bf16, ref)
TS_DECL_TYPE(q4_0, ref)
TS_DECL_TYPE(q4_1, ref)
TS_DECL_TYPE(q5_0, ref)
TS_DECL_TYPE(q5_1, ref)
TS_DECL_TYPE(q8_0, ref)
TS_DECL_DEQ(q8_1, ref)
TS_DECL_QUANT(q8_1, ref)
TS_DECL_TYPE(q2_K, ref)
TS_DECL_TYPE(q3_K, ref)
TS_DECL_TYPE(q4_K, ref)
TS_DECL_TYPE(q5_K, ref)
TS_DECL_TYPE(q6_K, ref)
TS_DECL_DEQ(q8_K, ref)
TS_DECL_QUANT(q8_K, ref)

/* AVX2/FMA/F16C: dequant, activation conversion and dot for every weight type. The reference
 * weight quantizers (quant) stay scalar. */
#define TS_DECL_SIMD(t, isa) TS_DECL_DEQ(t, isa) TS_DECL_DOT(t, isa)
TS_DECL_SIMD(f32, avx2)
TS_DECL_SIMD(f16, avx2)
TS_DECL_SIMD(bf16, avx2)
TS_DECL_SIMD(q4_0, avx2)
TS_DECL_SIMD(q4_1, avx2)
TS_DECL_SIMD(q5_0, avx2)
TS_DECL_SIMD(q5_1, avx2)
TS_DECL_SIMD(q8_0, avx2)
TS_DECL_SIMD(q2_K, avx2)
TS_DECL_SIMD(q3_K, avx2)
TS_DECL_SIMD(q4_K, avx2)
TS_DECL_SIMD(q5_K, avx2)
TS_DECL_SIMD(q6_K, avx2)
TS_DECL_QUANT(f16, avx2)  /* activation conversion f32 -> f16 */
TS_DECL_QUANT(bf16, avx2)
TS_DECL_QUANT(q8_0, avx2)
TS_DECL_QUANT(q8_1, avx2)
TS_DECL_QUANT(q8_K, avx2)

/* AVX-512 F/BW/VL/VNNI (quants_avx512.c, x86-64 builds with TS_HAVE_AVX512_KERNELS): dots and tile
 * kernels (ts_vec_dot_tile_fn) of the weight types that dominate real files, all against the
 * AVX2 activation conversions. vec_dot is the tile kernel on a 1x1 tile, so every pair rounds
 * the same way in both. */
#define TS_DECL_TILE(t, isa)                                                                              \
    void ts_dot_tile_##t##_##isa(int n, int n_rows, int n_cols, float *restrict s, size_t s_stride,      \
                                 const void *restrict x, size_t x_stride, const void *restrict y, size_t y_stride);
TS_DECL_DOT(q4_0, avx512) TS_DECL_TILE(q4_0, avx512)
TS_DECL_DOT(q8_0, avx512) TS_DECL_TILE(q8_0, avx512)
TS_DECL_DOT(q4_K, avx512) TS_DECL_TILE(q4_K, avx512)
TS_DECL_DOT(q6_K, avx512) TS_DECL_TILE(q6_K, avx512)

/* NEON (AArch64 baseline ARMv8.0): dequant, activation conversion and dot for every weight type,
 * compiled only on aarch64 builds (TS_HAVE_NEON_KERNELS). The reference weight quantizers stay
 * scalar. */
TS_DECL_SIMD(f32, neon)
TS_DECL_SIMD(f16, neon)
TS_DECL_SIMD(bf16, neon)
TS_DECL_SIMD(q4_0, neon)
TS_DECL_SIMD(q4_1, neon)
TS_DECL_SIMD(q5_0, neon)
TS_DECL_SIMD(q5_1, neon)
TS_DECL_SIMD(q8_0, neon)
TS_DECL_SIMD(q2_K, neon)
TS_DECL_SIMD(q3_K, neon)
TS_DECL_SIMD(q4_K, neon)
TS_DECL_SIMD(q5_K, neon)
TS_DECL_SIMD(q6_K, neon)
TS_DECL_QUANT(f16, neon)  /* activation conversion f32 -> f16 */
TS_DECL_QUANT(bf16, neon)
TS_DECL_QUANT(q8_0, neon)
TS_DECL_QUANT(q8_1, neon)
TS_DECL_QUANT(q8_K, neon)

#endif
