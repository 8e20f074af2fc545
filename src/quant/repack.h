/* Repacked weight layouts (`--repack`): the rows of a matrix interleaved in groups of
 * TS_REPACK_ROWS, so that one SIMD register holds the same few columns of 16 rows.
 *
 * Why: in the file layout a one-token product (decode) works along one row at a time, and every
 * block's scales must be applied inside the row's dot product — the kernels spend more
 * instructions on unpacking and scaling than the memory bus needs time to deliver the bytes. With
 * 16 rows in the 16 int32 lanes of a vector, one VNNI instruction with a broadcast activation
 * does 4 multiply-adds for each of 16 rows, a sub-block's scale is applied once per 16 rows, and
 * a batch of tokens reuses every unpacked weight register (llama.cpp's CPU "repack" buffers do the
 * same for the same reason).
 *
 * A repacked matrix of n_out rows (n_out a multiple of TS_REPACK_ROWS) x n columns is n_out / 16
 * groups of (n / block_size) blocks of `block_bytes` each; the layouts of the blocks are in
 * repack_legacy.h and repack_kquants.h. Repacking is lossless (only byte positions change, plus
 * exact re-encodings such as unpacked 6-bit scales), and the kernels compute the same integer
 * sums as the file-layout kernels; only the order of the float accumulation differs.
 *
 * Every ISA's kernel of a type computes bit-identical results to the scalar reference kernel of
 * that type (the integer parts are exact, the float epilogue is the same sequence of IEEE
 * operations per (row, token)), and a result does not depend on n_cols or n_groups: batch prefill
 * and one-token decode give the same logits. */
#ifndef TS_QUANT_REPACK_H
#define TS_QUANT_REPACK_H

#include <stddef.h>
#include <stdint.h>

#include "quant/types.h"

#define TS_REPACK_ROWS 16

/* Repacks one group: rows 0..15 of n values in the file layout (src, rows src_row_bytes apart)
 * into dst (n / block_size blocks of block_bytes). */
typedef void (*ts_repack_fn)(int n, const void *restrict src, size_t src_row_bytes, void *restrict dst);

/* Products of n_groups repacked groups (x, consecutive groups) with n_cols activation rows (y, in
 * the type's vec_dot_type, y_stride bytes apart):
 *   s[c * s_stride + g * TS_REPACK_ROWS + r] = dot(row r of group g, y row c). */
typedef void (*ts_gemm_repacked_fn)(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                                    const void *restrict x, const void *restrict y, size_t y_stride);

/* The first lines of the two streams a one-token product reads (groups 0 and (n_groups + 1) / 2,
 * the starts of the pairs (g, g + half) its kernels walk), asked for before the product's set-up
 * work (the activation constants) so that their fills overlap it and the hardware prefetcher has
 * a running stream from the first block. A decode step starts hundreds of such products on small
 * matrices (V2-Lite's experts: 1.6 MB, a thread's share in a few pieces), each with two cold
 * streams. Builds alternating (`tiefsee bench -t 2 -p 0 -n 64 -r 1`, ten pairs per line, % of
 * the roofline on the means): V2-Lite q4_0 77.2 -> 83.3 (9 of 10 won) and 75.5 -> 79.7 (6 of
 * 10), with the AVX2 kernels 78.4 -> 85.9 (7 of 10); V2-Lite q4_K_M 58.6 -> 63.5 (6 of 10);
 * R1-Distill-Qwen-1.5B q4_K_M 60.8 -> 70.8 (8 of 10), q8_0 87.5 -> 86.6 (5 of 10): 41 of 60
 * pairs won (BENCHMARKS.md, "Stream starts"). */
#define TS_RP_STREAM_START_LINES 16
static inline void ts_rp_prefetch_stream_starts(const void *x, size_t group_bytes, int n_groups) {
    if (n_groups <= 0) return;
    const char *s0 = (const char *)x, *s1 = s0 + (size_t)((n_groups + 1) / 2) * group_bytes;
    const size_t lines = group_bytes / 64 < TS_RP_STREAM_START_LINES ? group_bytes / 64 : TS_RP_STREAM_START_LINES;
    for (size_t i = 0; i < lines; i++) {
        __builtin_prefetch(s0 + 64 * i, 0, 3);
        if (n_groups >= 2) __builtin_prefetch(s1 + 64 * i, 0, 3);
    }
}

/* Tokens of each kernel's widest tile (the kernel files check theirs against these). */
#define TS_RP_TILE_LEGACY_AVX2 4
#define TS_RP_TILE_Q4_K_AVX2 6
#define TS_RP_TILE_Q6_K_AVX2 8
#define TS_RP_TILE_AVX512 8
#define TS_RP_TILE_LEGACY_AVXVNNI 4
#define TS_RP_TILE_Q4_K_AVXVNNI 4
#define TS_RP_TILE_Q6_K_AVXVNNI 4

typedef struct ts_repack_traits {
    size_t block_bytes;       /* one block of TS_REPACK_ROWS interleaved rows */
    ts_repack_fn repack;      /* the same function in every ISA */
    ts_gemm_repacked_fn gemm; /* this ISA's kernel */
    int tile_tokens;          /* tokens of the kernel's widest tile: callers give it whole multiples */
} ts_repack_traits;

/* The repacked layout of `type` for `isa`, or NULL when that ISA has no kernel for it (the matrix
 * then stays in the file layout). TS_ISA_SCALAR has the reference kernels of every repackable type.
 * Its products walk a one-token product the way this CPU reads fastest (ts_repack_traits_walk
 * with TS_WALK_AUTO). */
const ts_repack_traits *ts_repack_traits_for(enum ts_isa isa, int type);

/* How a one-token product walks a thread's share of the groups: in pairs (g, g + half) from the
 * two halves of the share (two memory streams), or one group after the other (one stream). Only
 * the one-token products differ; the results are bit-identical, and so is the layout, so a
 * matrix can switch between them at any time between products (ts_model_set_walk). */
enum ts_walk { TS_WALK_AUTO = 0, TS_WALK_PAIRS = 1, TS_WALK_ONE_GROUP = 2 };
/* The traits of ts_repack_traits_for with the one-token walk `walk`; the auto walk where a
 * kernel set has only one walk for the type (the legacy types, the scalar and AVX-VNNI kernels). */
const ts_repack_traits *ts_repack_traits_walk(enum ts_isa isa, int type, enum ts_walk walk);
/* The walk ts_repack_traits_for gives `type` with `isa`'s kernels on this CPU: TS_WALK_ONE_GROUP
 * or TS_WALK_PAIRS (also for the kernels with one walk: their one-token products go in pairs,
 * except the scalar reference, which goes one group at a time). */
enum ts_walk ts_repack_auto_walk(enum ts_isa isa, int type);

/* Bytes of one repacked group of TS_REPACK_ROWS rows of n values; 0 if n is not a multiple of
 * the block size or type has no repacked layout. */
size_t ts_repack_group_bytes(int type, int64_t n);

/* Kernels (repack_legacy*.c, repack_kquants*.c). */
#define TS_DECL_REPACK(t)                                                                               \
    void ts_repack_##t(int n, const void *restrict src, size_t src_row_bytes, void *restrict dst);
#define TS_DECL_GEMM_RP(t, isa)                                                                         \
    void ts_gemm_rp_##t##_##isa(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,     \
                                const void *restrict x, const void *restrict y, size_t y_stride);
TS_DECL_REPACK(q4_0) TS_DECL_GEMM_RP(q4_0, ref) TS_DECL_GEMM_RP(q4_0, avx512) TS_DECL_GEMM_RP(q4_0, avx2)
    TS_DECL_GEMM_RP(q4_0, avxvnni)
TS_DECL_REPACK(q5_0) TS_DECL_GEMM_RP(q5_0, ref) TS_DECL_GEMM_RP(q5_0, avx512) TS_DECL_GEMM_RP(q5_0, avx2)
    TS_DECL_GEMM_RP(q5_0, avxvnni)
TS_DECL_REPACK(q8_0) TS_DECL_GEMM_RP(q8_0, ref) TS_DECL_GEMM_RP(q8_0, avx512) TS_DECL_GEMM_RP(q8_0, avx2)
    TS_DECL_GEMM_RP(q8_0, avxvnni)
TS_DECL_REPACK(q4_K) TS_DECL_GEMM_RP(q4_K, ref) TS_DECL_GEMM_RP(q4_K, avx512) TS_DECL_GEMM_RP(q4_K, avx2)
    TS_DECL_GEMM_RP(q4_K, avxvnni) TS_DECL_GEMM_RP(q4_K, avx512_seq) TS_DECL_GEMM_RP(q4_K, avx2_seq)
TS_DECL_REPACK(q6_K) TS_DECL_GEMM_RP(q6_K, ref) TS_DECL_GEMM_RP(q6_K, avx512) TS_DECL_GEMM_RP(q6_K, avx2)
    TS_DECL_GEMM_RP(q6_K, avxvnni) TS_DECL_GEMM_RP(q6_K, avx512_seq) TS_DECL_GEMM_RP(q6_K, avx2_seq)
/* (_seq: the same products with a one-token product walking a thread's share one group at a time,
 * in order, instead of in pairs from its two halves; ts_repack_traits_for says where each is used.) */

#endif
