#include "quant/repack.h"

#include <stdbool.h>

#include "quant/repack_kquants.h"
#include "quant/repack_legacy.h"

/* One table per ISA, indexed by type id; unlisted types have no repacked layout. */
#define RP(id, t, isa, tokens)                                                                               \
    [id] = {.block_bytes = sizeof(block_##t##x16), .repack = ts_repack_##t, .gemm = ts_gemm_rp_##t##_##isa,      \
            .tile_tokens = tokens}
/* The rows of the legacy types (Q4_0, Q5_0, Q8_0) and of the K-quants (Q4_K, Q6_K) for a kernel suffix. */
#define RP_LEGACY(isa, tokens)                                                                               \
    RP(TS_TYPE_Q4_0, q4_0, isa, tokens), RP(TS_TYPE_Q5_0, q5_0, isa, tokens), RP(TS_TYPE_Q8_0, q8_0, isa, tokens)
#define RP_KQUANTS(isa, q4_K_tokens, q6_K_tokens)                                                             \
    RP(TS_TYPE_Q4_K, q4_K, isa, q4_K_tokens), RP(TS_TYPE_Q6_K, q6_K, isa, q6_K_tokens)

static const ts_repack_traits repack_scalar[TS_TYPE_COUNT] = {
    RP_LEGACY(ref, 1),
    RP_KQUANTS(ref, 1, 1),
};

#if defined(TS_HAVE_AVX2_KERNELS)
/* AVX2 without VNNI (maddubs/madd): Q4_0, Q4_K and Q6_K are faster repacked at one token (about
 * 1.2-1.7x the file-layout kernels) and at eight (2-4x). Q8_0 is about as fast repacked at one
 * token (0.93-1.0x the file layout's dot, one core streaming from memory) and 2.3x faster on
 * prompts (R1-Distill-Qwen-1.5B Q8_0 pp512 36 -> 84 t/s, two threads). */
static const ts_repack_traits repack_avx2[TS_TYPE_COUNT] = {
    RP_LEGACY(avx2, TS_RP_TILE_LEGACY_AVX2),
    RP_KQUANTS(avx2, TS_RP_TILE_Q4_K_AVX2, TS_RP_TILE_Q6_K_AVX2),
};
#endif

#if defined(TS_HAVE_AVXVNNI_KERNELS)
/* AVX-VNNI: the AVX2 layouts' products with vpdpbusd (repack_*_avxvnni.c). */
static const ts_repack_traits repack_avxvnni[TS_TYPE_COUNT] = {
    RP_LEGACY(avxvnni, TS_RP_TILE_LEGACY_AVXVNNI),
    RP_KQUANTS(avxvnni, TS_RP_TILE_Q4_K_AVXVNNI, TS_RP_TILE_Q6_K_AVXVNNI),
};
#endif

#if defined(TS_HAVE_AVX512_KERNELS)
static const ts_repack_traits repack_avx512[TS_TYPE_COUNT] = {
    RP_LEGACY(avx512, TS_RP_TILE_AVX512),
    RP_KQUANTS(avx512, TS_RP_TILE_AVX512, TS_RP_TILE_AVX512),
};
#endif

/* The K-quant products whose one-token walk takes a thread's share one group after the other
 * rather than in pairs from its two halves (the _seq kernels), for the CPUs where that reads
 * faster. AMD family 19h (Zen 4; Zen 3 has the AVX2 kernels only): two streams against one,
 * alternated inside one process so that both see the same bytes and minutes (BENCHMARKS.md, "Zen 4
 * once more"), R1-Distill-Qwen-1.5B Q4_K_M decoding 28.18 -> 32.58 t/s with the AVX-512
 * kernels, 23.69 -> 29.30 with the AVX2 ones, R1-Distill-Qwen-7B 6.97 -> 7.45; the products
 * alone 0-13 % faster (AVX-512) and 9-37 % (AVX2), the legacy types' pairs 1-36 % faster than one
 * stream (kept). The pairs stay on other CPUs: on a Zen 5 host (family 1Ah), the same alternation
 * (`tiefsee bench --walk pairs,one-group`, BENCHMARKS.md "The walks on Zen 5") had the pairs ahead
 * on the dense models, R1-Distill-Qwen-7B Q4_K_M 14.16 against 13.01 t/s (AVX-512) and 12.26
 * against 11.75 (AVX2), 1.5B 3-4 % (8 or 9 rounds of 10), and V2-Lite Q4_K_M even. */
static bool kquants_walk_one_group(void) { return ts_cpu_amd_family() == 0x19; }

#if defined(TS_HAVE_AVX2_KERNELS)
static const ts_repack_traits repack_avx2_seq[TS_TYPE_COUNT] = {
    RP_KQUANTS(avx2_seq, TS_RP_TILE_Q4_K_AVX2, TS_RP_TILE_Q6_K_AVX2),
};
#endif
#if defined(TS_HAVE_AVX512_KERNELS)
static const ts_repack_traits repack_avx512_seq[TS_TYPE_COUNT] = {
    RP_KQUANTS(avx512_seq, TS_RP_TILE_AVX512, TS_RP_TILE_AVX512),
};
#endif

static bool has_two_walks(enum ts_isa isa, int type) {
    (void)isa; /* builds without the x86 kernels have no second walk */
    if (type != TS_TYPE_Q4_K && type != TS_TYPE_Q6_K) return false;
#if defined(TS_HAVE_AVX2_KERNELS)
    if (isa == TS_ISA_AVX2) return true;
#endif
#if defined(TS_HAVE_AVX512_KERNELS)
    if (isa == TS_ISA_AVX512) return true;
#endif
    return false;
}

enum ts_walk ts_repack_auto_walk(enum ts_isa isa, int type) {
    if (isa == TS_ISA_SCALAR) return TS_WALK_ONE_GROUP;
    return has_two_walks(isa, type) && kquants_walk_one_group() ? TS_WALK_ONE_GROUP : TS_WALK_PAIRS;
}

const ts_repack_traits *ts_repack_traits_walk(enum ts_isa isa, int type, enum ts_walk walk) {
    if (type < 0 || type >= TS_TYPE_COUNT || !ts_isa_supported(isa)) return NULL;
    if (walk != TS_WALK_PAIRS && walk != TS_WALK_ONE_GROUP) walk = ts_repack_auto_walk(isa, type);
    const bool seq = walk == TS_WALK_ONE_GROUP && has_two_walks(isa, type);
    (void)seq; /* no _seq kernels in builds without the x86 ones */
    const ts_repack_traits *table = NULL;
    switch (isa) {
    case TS_ISA_SCALAR: table = repack_scalar; break;
#if defined(TS_HAVE_AVX2_KERNELS)
    case TS_ISA_AVX2: table = seq ? repack_avx2_seq : repack_avx2; break;
#endif
#if defined(TS_HAVE_AVXVNNI_KERNELS)
    case TS_ISA_AVXVNNI: table = repack_avxvnni; break;
#endif
#if defined(TS_HAVE_AVX512_KERNELS)
    case TS_ISA_AVX512: table = seq ? repack_avx512_seq : repack_avx512; break;
#endif
    default: return NULL; /* no repacked kernels for this ISA: matrices stay in the file layout */
    }
    return table[type].gemm ? &table[type] : NULL;
}

const ts_repack_traits *ts_repack_traits_for(enum ts_isa isa, int type) {
    return ts_repack_traits_walk(isa, type, TS_WALK_AUTO);
}

size_t ts_repack_group_bytes(int type, int64_t n) {
    if (type < 0 || type >= TS_TYPE_COUNT || !repack_scalar[type].repack) return 0;
    const int block = ts_type_table(TS_ISA_SCALAR)[type].block_size;
    if (block <= 0 || n <= 0 || n % block != 0) return 0;
    return (size_t)(n / block) * repack_scalar[type].block_bytes;
}
