/* Chunked ("flash") attention of several query heads that share one K/V cache (a GQA group, or
 * every head of MLA's latent cache): each cache row is read once for all heads of the group, and
 * the positions are cut into fixed chunks of TS_FLASH_CHUNK whose partial softmax states (max,
 * sum, weighted value sum per head) merge in chunk order.
 *
 * Why fixed chunks: the chunk boundaries and the merge order depend only on the positions, never
 * on the thread count or on what else is in the batch. A decode step can therefore compute its
 * chunks on different threads (flash-decoding, so one long sequence uses every core) and merge
 * them afterwards, while a prompt batch runs each token's chunks one after another on one thread:
 * both do the same arithmetic in the same order and agree bit for bit. */
#ifndef TS_OPS_ATTN_FLASH_H
#define TS_OPS_ATTN_FLASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quant/types.h"

#define TS_FLASH_CHUNK 256

/* One group of query heads against one cache. Rows t of K start at k + t * k_row_bytes and hold
 * k_width values of kv_type (F32, F16, BF16 or Q8_0); V rows likewise (v may equal k: MLA's value
 * is the first v_width values of the key row). Query head h is q + h * q_stride (k_width floats).
 * score = scale * q·k. simd: ts_flash_simd_level of the ISA whose CPU check passed (the model's). */
typedef struct ts_flash_args {
    const ts_type_traits *table;
    int kv_type;
    int n_head;
    const float *q;
    size_t q_stride;
    const char *k;
    size_t k_row_bytes;
    int k_width;
    const char *v;
    size_t v_row_bytes;
    int v_width;
    float scale;
    int simd;
    /* 0, or the head count of one token's group when n_head holds the heads of several tokens
     * (ts_flash_attention_tokens): the kernels are chosen (position-major or head-major, padded or
     * not) as for that group, so that every head gets the bits its own group would. */
    int kernel_heads;
} ts_flash_args;

/* Floats of one partial state: per head max, sum and v_width weighted values. */
static inline size_t ts_flash_partial_floats(int n_head, int v_width) {
    return (size_t)n_head * ((size_t)v_width + 2);
}
/* Floats of the work buffer ts_flash_chunk needs: a multiple of 16, so that per-thread buffers cut
 * from one 64-byte aligned block stay aligned (the kernels do not require it, but the AVX-512 ones
 * run measurably slower on rows that straddle cache lines). */
size_t ts_flash_work_floats(int n_head, int k_width, int v_width);
/* n rounded up to a multiple of 16 floats (64 bytes). */
static inline size_t ts_flash_round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Which kernels F32/F16 caches use on a CPU that passed isa's check: 0 scalar, 1 AVX2, 2 AVX-512.
 * Decided from the ISA the model was loaded with, not per call: the CPU check behind ts_isa_best()
 * runs CPUID, which costs microseconds under a hypervisor. */
int ts_flash_simd_level(enum ts_isa isa);

/* Partial state of rows [t0, t1) (t1 - t0 <= TS_FLASH_CHUNK) into `partial`. */
void ts_flash_chunk(const ts_flash_args *a, int t0, int t1, float *partial, float *work);
/* The same bits, for a partial in memory that is not in the cache (a decode split's array of
 * partials): on x86-64 the values go there with non-temporal stores, and the caller issues a store
 * fence (_mm_sfence) before another thread reads them. */
void ts_flash_chunk_cold(const ts_flash_args *a, int t0, int t1, float *partial, float *work);
/* run = merge(run, part): the running state absorbs the next chunk's. */
void ts_flash_merge(int n_head, int v_width, float *run, const float *part);
/* out + h * out_stride (v_width floats) = the normalized result of head h. */
void ts_flash_finish(int n_head, int v_width, const float *run, float *out, size_t out_stride);
/* The same for heads [h0, h1) only: heads are independent, so threads can share a merge. */
void ts_flash_merge_heads(int n_head, int v_width, int h0, int h1, float *run, const float *part);
void ts_flash_finish_heads(int n_head, int v_width, int h0, int h1, const float *run, float *out, size_t out_stride);

/* The whole attention over rows [0, n_kv) on this thread: chunks in order, merged as they come.
 * run and part: ts_flash_partial_floats each; work: ts_flash_work_floats. */
void ts_flash_attention(const ts_flash_args *a, int n_kv, float *run, float *part, float *work, float *out,
                        size_t out_stride);

/* Prompt tokens attend to the same cached rows: n_tok tokens of one sequence at consecutive
 * positions, token t attending to rows [0, first_n_kv + t), tok[t] being token t's own group (the
 * same n_head for all). tile is all their heads as one group: n_head = n_tok * tok[0].n_head, head
 * t * tok[0].n_head + h being token t's head h, kernel_heads = tok[0].n_head. The chunks all tokens
 * read in full are computed once for the whole tile (each row is read, converted and, for a
 * position-major group, padded once instead of once per token); the rest per token. Token t's
 * result (out[t] + h * out_stride) is ts_flash_attention's for tok[t], bit for bit: per head, the
 * same chunks merged in the same order by the same kernels.
 * run_tile, part_tile: ts_flash_partial_floats(tile n_head) each; run, part: of one token's group;
 * work: ts_flash_work_floats(tile n_head, ...). */
void ts_flash_attention_tokens(const ts_flash_args *tile, const ts_flash_args *tok, int n_tok, int first_n_kv,
                               float *run_tile, float *part_tile, float *run, float *part, float *work,
                               float *const *out, size_t out_stride);

/* Prefetches rows [first, first + n) of a cache (the `used` bytes of each) into L1, for the SIMD
 * kernels: a decode step's cache rows are short streams (one head group's few hundred bytes per
 * position, a few hundred positions) that the hardware prefetcher barely ramps up on. Rows past
 * the cache's end are harmless hints: the addresses are computed as integers. */
static inline void ts_flash_prefetch_rows(const char *base, size_t row_bytes, int first, int n, size_t used) {
    for (int r = 0; r < n; r++) {
        const uintptr_t row = (uintptr_t)base + (size_t)(first + r) * row_bytes;
        for (size_t off = 0; off < used; off += 64) __builtin_prefetch((const void *)(row + off), 0, 3);
    }
}

static inline int ts_flash_n_chunks(int n_kv) { return (n_kv + TS_FLASH_CHUNK - 1) / TS_FLASH_CHUNK; }

/* exp(x) for the softmax numerators (x <= 88.7): Cephes' expf polynomial, every step an fmaf in a
 * fixed order, scaled by 2^n with ldexpf; 0 below -87.34 (where expf is subnormal). Within 2 ulp of
 * expf. The SIMD versions compute the same operations lane by lane, bit for bit, so every ISA
 * gets the same numerators; and they take 16 or 8 exps per instruction sequence instead of one
 * libm call each — at depth 8192 a V2-Lite token needs 3.5 million of them. */
#define TS_FLASH_EXP_MIN (-87.336544f) /* below: 0 */
#define TS_FLASH_EXP_MAX 88.722839f
#define TS_FLASH_LOG2E 1.44269504088896341f
#define TS_FLASH_LN2_HI 0.693359375f
#define TS_FLASH_LN2_LO (-2.12194440e-4f)
#define TS_FLASH_EXP_P0 1.9875691500e-4f
#define TS_FLASH_EXP_P1 1.3981999507e-3f
#define TS_FLASH_EXP_P2 8.3334519073e-3f
#define TS_FLASH_EXP_P3 4.1665795894e-2f
#define TS_FLASH_EXP_P4 1.6666665459e-1f
#define TS_FLASH_EXP_P5 5.0000001201e-1f
float ts_flash_exp(float x);
/* s[t] = ts_flash_exp(s[t] - mx) for t < n; returns the sum of the new s[t] in double (the order
 * of that sum is the ISA's own). */
double ts_flash_exp_row_scalar(float *s, int n, float mx);

/* The kernels behind ts_flash_chunk for F32/F16 rows, exposed for the tests: scores of rows
 * [t0, t1) for every head (scores[h * TS_FLASH_CHUNK + t - t0], scaled), and the weighted value sums
 * out[h * v_width ..] = Σ_t p[h * TS_FLASH_CHUNK + t - t0] v_t. rows: 4 * max(k_width, v_width) floats. */
void ts_flash_scores_scalar(const ts_flash_args *a, int t0, int t1, float *scores, float *rows);
void ts_flash_values_scalar(const ts_flash_args *a, int t0, int t1, const float *p, float *out, float *rows);
#if defined(TS_HAVE_AVX2_KERNELS)
void ts_flash_scores_avx2(const ts_flash_args *a, int t0, int t1, float *scores, float *rows);
void ts_flash_values_avx2(const ts_flash_args *a, int t0, int t1, const float *p, float *out, float *rows);
double ts_flash_exp_row_avx2(float *s, int n, float mx);
/* Position-major kernels as the AVX-512 ones below, on 8 lanes: n_head a multiple of 4, k_width of
 * 8, v_width of 16 (ts_flash_chunk's choice on AVX2 CPUs). Bit-identical to the head-major AVX2
 * kernels in the same sense. */
void ts_flash_scores_pm_avx2(const ts_flash_args *a, int t0, int t1, float *scores);
void ts_flash_softmax_pm_avx2(float *s, int n, int n_head, float *m, float *sum);
void ts_flash_values_pm_avx2(const ts_flash_args *a, int t0, int t1, const float *p, float *out);
#endif
#if defined(TS_HAVE_AVX512_KERNELS)
void ts_flash_scores_avx512(const ts_flash_args *a, int t0, int t1, float *scores, float *rows);
void ts_flash_values_avx512(const ts_flash_args *a, int t0, int t1, const float *p, float *out, float *rows);
double ts_flash_exp_row_avx512(float *s, int n, float mx);
/* Position-major kernels for F32/F16 caches when n_head is a multiple of 8, k_width of 16 and
 * v_width of 32 (ts_flash_chunk's choice for MLA's head counts): scores[(t - t0) * n_head + h];
 * softmax numerators of such scores in place, with each head's max m[h] and sum sum[h]; and
 * out[h * v_width ..] = Σ_t p[(t - t0) * n_head + h] v_t (written, not added). Scores, numerators and
 * value sums equal the head-major kernels' bit for bit; the sums of the numerators equal theirs to
 * double rounding. */
void ts_flash_scores_pm_avx512(const ts_flash_args *a, int t0, int t1, float *scores);
void ts_flash_softmax_pm_avx512(float *s, int n, int n_head, float *m, float *sum);
void ts_flash_values_pm_avx512(const ts_flash_args *a, int t0, int t1, const float *p, float *out);
#endif

#endif
