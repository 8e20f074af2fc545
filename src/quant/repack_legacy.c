/* Repacking of Q4_0 / Q5_0 / Q8_0 matrices into 16-row interleaved blocks (layouts in repack_legacy.h)
 * and the scalar reference kernels of those layouts.
 *
 * The reference kernels define the numerics every SIMD kernel of these layouts must reproduce bit
 * for bit: an exact integer sum per (row, token, block), computed as sum(u * a) - offset * sum(a)
 * with the unsigned stored weight u (that is how vpdpbusd sees it; integer addition is exact, so the
 * grouping does not matter), then one fmaf per block into a float accumulator that starts at 0.
 * The float work is the same whatever n_cols or n_groups are, so batch and step give equal results. */
#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "quant/repack_legacy.h"
#include "util/fp16.h"

/* Row r's 16 nibble bytes of a 32-value block into the interleaved qs of Q4_0x16 / Q5_0x16:
 * byte 4t+k goes to step t, row r, position k. */
static void interleave_nibbles(uint8_t *restrict qs16, int r, const uint8_t *restrict qs) {
    for (int t = 0; t < QK4_0 / 8; t++)
        for (int k = 0; k < 4; k++) qs16[t * 64 + r * 4 + k] = qs[4 * t + k];
}

void ts_repack_q4_0(int n, const void *restrict src, size_t src_row_bytes, void *restrict dst) {
    const int nb = n / QK4_0;
    const uint8_t *rows = src;
    block_q4_0x16 *out = dst;
    for (int b = 0; b < nb; b++)
        for (int r = 0; r < TS_REPACK_ROWS; r++) {
            const block_q4_0 *in = (const block_q4_0 *)(rows + (size_t)r * src_row_bytes) + b;
            out[b].d[r] = in->d;
            interleave_nibbles(out[b].qs, r, in->qs);
        }
}

void ts_repack_q5_0(int n, const void *restrict src, size_t src_row_bytes, void *restrict dst) {
    const int nb = n / QK5_0;
    const uint8_t *rows = src;
    block_q5_0x16 *out = dst;
    for (int b = 0; b < nb; b++) {
        for (int r = 0; r < TS_REPACK_ROWS; r++) {
            const block_q5_0 *in = (const block_q5_0 *)(rows + (size_t)r * src_row_bytes) + b;
            const uint32_t qh = (uint32_t)in->qh[0] | (uint32_t)in->qh[1] << 8 | (uint32_t)in->qh[2] << 16 | (uint32_t)in->qh[3] << 24;
            out[b].d[r] = in->d;
            interleave_nibbles(out[b].qs, r, in->qs);
            for (int k = 0; k < 4; k++) {
                uint8_t planes = 0;
                for (int s = 0; s < 8; s++) planes |= (uint8_t)(((qh >> (4 * s + k)) & 1u) << s);
                out[b].qh[r * 4 + k] = planes;
            }
        }
    }
}

void ts_repack_q8_0(int n, const void *restrict src, size_t src_row_bytes, void *restrict dst) {
    const int nb = n / QK8_0;
    const uint8_t *rows = src;
    block_q8_0x16 *out = dst;
    for (int b = 0; b < nb; b++) {
        for (int r = 0; r < TS_REPACK_ROWS; r++) {
            const block_q8_0 *in = (const block_q8_0 *)(rows + (size_t)r * src_row_bytes) + b;
            out[b].d[r] = in->d;
            for (int t = 0; t < QK8_0 / 4; t++)
                for (int k = 0; k < 4; k++)
                    out[b].qs[t * 64 + r * 4 + k] = (uint8_t)(in->qs[4 * t + k] + 128); /* exact: -128..127 -> 0..255 */
        }
    }
}

/* Sum of the 32 activation quants of a block (the offset correction's factor). */
static int act_block_sum(const block_q8_0 *a) {
    int sum = 0;
    for (int j = 0; j < QK8_0; j++) sum += a->qs[j];
    return sum;
}

/* isum of row r of one repacked block against one activation block: sum(u * a) - offset * sum(a). */
typedef int (*block_isum_fn)(const void *block, int r, const block_q8_0 *a);

static int isum_q4_0(const void *block, int r, const block_q8_0 *a) {
    const block_q4_0x16 *w = block;
    int isum = -8 * act_block_sum(a);
    for (int t = 0; t < QK4_0 / 8; t++)
        for (int k = 0; k < 4; k++) {
            const int byte = w->qs[t * 64 + r * 4 + k];
            isum += (byte & 0x0F) * a->qs[4 * t + k];
            isum += (byte >> 4) * a->qs[16 + 4 * t + k];
        }
    return isum;
}

static int isum_q5_0(const void *block, int r, const block_q8_0 *a) {
    const block_q5_0x16 *w = block;
    int isum = -16 * act_block_sum(a);
    for (int t = 0; t < QK5_0 / 8; t++)
        for (int k = 0; k < 4; k++) {
            const int byte = w->qs[t * 64 + r * 4 + k], planes = w->qh[r * 4 + k];
            isum += ((byte & 0x0F) | ((planes >> t) & 1) << 4) * a->qs[4 * t + k];
            isum += ((byte >> 4) | ((planes >> (t + 4)) & 1) << 4) * a->qs[16 + 4 * t + k];
        }
    return isum;
}

static int isum_q8_0(const void *block, int r, const block_q8_0 *a) {
    const block_q8_0x16 *w = block;
    int isum = -128 * act_block_sum(a);
    for (int t = 0; t < QK8_0 / 4; t++)
        for (int k = 0; k < 4; k++) isum += w->qs[t * 64 + r * 4 + k] * a->qs[4 * t + k];
    return isum;
}

/* Every layout starts with the 16 rows' fp16 scales. */
static_assert(offsetof(block_q4_0x16, d) == 0 && offsetof(block_q5_0x16, d) == 0 && offsetof(block_q8_0x16, d) == 0,
              "scales first");

static void ref_gemm(size_t block_bytes, block_isum_fn isum, int n, int n_groups, int n_cols, float *restrict s,
                     size_t s_stride, const void *restrict x, const void *restrict y, size_t y_stride) {
    const int nb = n / QK8_0;
    for (int g = 0; g < n_groups; g++) {
        const uint8_t *group = (const uint8_t *)x + (size_t)g * nb * block_bytes;
        for (int c = 0; c < n_cols; c++) {
            const block_q8_0 *a = (const block_q8_0 *)((const uint8_t *)y + (size_t)c * y_stride);
            for (int r = 0; r < TS_REPACK_ROWS; r++) {
                float acc = 0.0f;
                for (int b = 0; b < nb; b++) {
                    const uint8_t *block = group + (size_t)b * block_bytes;
                    const ts_f16 *d = (const ts_f16 *)(const void *)block;
                    acc = fmaf(ts_f16_to_f32(d[r]) * ts_f16_to_f32(a[b].d), (float)isum(block, r, &a[b]), acc);
                }
                s[(size_t)c * s_stride + (size_t)g * TS_REPACK_ROWS + r] = acc;
            }
        }
    }
}

void ts_gemm_rp_q4_0_ref(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                         const void *restrict x, const void *restrict y, size_t y_stride) {
    ref_gemm(sizeof(block_q4_0x16), isum_q4_0, n, n_groups, n_cols, s, s_stride, x, y, y_stride);
}

void ts_gemm_rp_q5_0_ref(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                         const void *restrict x, const void *restrict y, size_t y_stride) {
    ref_gemm(sizeof(block_q5_0x16), isum_q5_0, n, n_groups, n_cols, s, s_stride, x, y, y_stride);
}

void ts_gemm_rp_q8_0_ref(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                         const void *restrict x, const void *restrict y, size_t y_stride) {
    ref_gemm(sizeof(block_q8_0x16), isum_q8_0, n, n_groups, n_cols, s, s_stride, x, y, y_stride);
}
