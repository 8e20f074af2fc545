/* Repacking of Q4_K / Q6_K into the 16-row layouts of repack_kquants.h, and the scalar reference
 * kernels every SIMD kernel of those layouts must match bit for bit.
 *
 * Per (row, token) and 256-block the reference computes exact integers, then a fixed float
 * epilogue:
 *   Q4_K: isum = sum_j scale_j * sum_{k in sub-block j} q_k * a_k      (q in 0..15, 8 sub-blocks)
 *         msum = sum_j min_j * (bsums[2j] + bsums[2j + 1])
 *         acc = fmaf(d * da, (float)isum, acc); acc = fmaf(-(dmin * da), (float)msum, acc)
 *   Q6_K: isum = sum_j scale_j * sum_{k in sub-block j} (q_k - 32) * a_k (q in 0..63, 16 sub-blocks)
 *         acc = fmaf(d * da, (float)isum, acc)
 * starting from acc = 0 and going through the blocks in order. Bounds (|a| <= 128):
 *   Q4_K: |sub-block sum| <= 32*15*128 = 61440, times scale <= 63: 3.9e6, 8 of them: 3.1e7;
 *         |msum| <= 8*63*4096 = 2.1e6.
 *   Q6_K: |sum (q-32) a| <= 16*32*128 = 65536, times |scale| <= 128: 8.4e6, 16 of them: 1.4e8.
 * All far below 2^31, so int32 arithmetic is exact in any order. The SIMD kernels compute the same
 * integers and the same float operations per lane (vmulps, vfmadd / vfnmadd), hence the same bits. */
#include <math.h>
#include <string.h>

#include "quant/repack_kquants.h"
#include "util/fp16.h"

/* The file's packing of Q4_K's eight 6-bit scales and mins in 12 bytes (see kquants.c). */
static void q4_K_unpack_scale_min(const uint8_t packed[K_SCALE_SIZE], uint8_t scales[8], uint8_t mins[8]) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            scales[j] = packed[j] & 63;
            mins[j] = packed[j + 4] & 63;
        } else {
            scales[j] = (uint8_t)((packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4));
            mins[j] = (uint8_t)((packed[j + 4] >> 4) | ((packed[j] >> 6) << 4));
        }
    }
}

void ts_repack_q4_K(int n, const void *restrict src, size_t src_row_bytes, void *restrict dst) {
    const int nb = n / QK_K;
    block_q4_Kx16 *out = dst;
    for (int b = 0; b < nb; b++) {
        block_q4_Kx16 *o = &out[b];
        for (int r = 0; r < TS_REPACK_ROWS; r++) {
            const block_q4_K *x = (const block_q4_K *)((const char *)src + (size_t)r * src_row_bytes) + b;
            uint8_t scales[8], mins[8];
            q4_K_unpack_scale_min(x->scales, scales, mins);
            o->d[r] = x->d;
            o->dmin[r] = x->dmin;
            for (int j = 0; j < 8; j++) {
                o->scales[j * 16 + r] = scales[j];
                o->mins[(j / 2) * 32 + r * 2 + (j % 2)] = mins[j];
            }
            for (int s = 0; s < 32; s++) memcpy(&o->qs[s * 64 + r * 4], &x->qs[4 * s], 4);
        }
    }
}

/* The 6-bit quants (0..63) of a file Q6_K block, in value order. Per 128-value half, ql byte l
 * holds values l (low nibble) and l + 64 (high nibble), ql byte l + 32 values l + 32 and l + 96,
 * and qh byte l the top two bits of values l, l + 32, l + 64, l + 96 (bit pairs 0, 2, 4, 6).
 * Written as straight loops over l (no per-value index arithmetic): the repacking of a large
 * model spends most of its time here. */
static void q6_K_file_quants(const block_q6_K *x, uint8_t q[QK_K]) {
    for (int half = 0; half < 2; half++) {
        const uint8_t *ql = x->ql + 64 * half, *qh = x->qh + 32 * half;
        uint8_t *o = q + 128 * half;
        for (int l = 0; l < 32; l++) {
            o[l] = (uint8_t)((ql[l] & 15) | (qh[l] & 3) << 4);
            o[l + 32] = (uint8_t)((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4);
            o[l + 64] = (uint8_t)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
            o[l + 96] = (uint8_t)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4);
        }
    }
}

void ts_repack_q6_K(int n, const void *restrict src, size_t src_row_bytes, void *restrict dst) {
    const int nb = n / QK_K;
    block_q6_Kx16 *out = dst;
    for (int b = 0; b < nb; b++) {
        block_q6_Kx16 *o = &out[b];
        for (int r = 0; r < TS_REPACK_ROWS; r++) {
            const block_q6_K *x = (const block_q6_K *)((const char *)src + (size_t)r * src_row_bytes) + b;
            uint8_t q[QK_K];
            q6_K_file_quants(x, q);
            o->d[r] = x->d;
            for (int j = 0; j < 16; j++) {
                o->scales[j * 16 + r] = x->scales[j];
                /* The four bytes k = 0..3 of each output at once, as 32-bit words: byte k of word
                 * w[i] is q[16j + 4i + k], and no operation carries across bytes. */
                uint32_t w[4];
                memcpy(w, q + 16 * j, sizeof w);
                const uint32_t low4 = 0x0F0F0F0Fu, low2 = 0x03030303u;
                const uint32_t lo = (w[0] & low4) | (w[2] & low4) << 4, mid = (w[1] & low4) | (w[3] & low4) << 4;
                const uint32_t high = (w[0] >> 4 & low2) | (w[1] >> 4 & low2) << 2 | (w[2] >> 4 & low2) << 4 |
                                      (w[3] >> 4 & low2) << 6;
                uint8_t *q6 = &o->qs[j * 192 + r * 4];
                memcpy(q6, &lo, 4);
                memcpy(q6 + 64, &mid, 4);
                memcpy(q6 + 128, &high, 4);
            }
        }
    }
}

void ts_gemm_rp_q4_K_ref(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                         const void *restrict x, const void *restrict y, size_t y_stride) {
    const int nb = n / QK_K;
    for (int g = 0; g < n_groups; g++) {
        const block_q4_Kx16 *xg = (const block_q4_Kx16 *)x + (size_t)g * nb;
        for (int c = 0; c < n_cols; c++) {
            const block_q8_K *yc = (const block_q8_K *)((const char *)y + (size_t)c * y_stride);
            for (int r = 0; r < TS_REPACK_ROWS; r++) {
                float acc = 0.0f;
                for (int b = 0; b < nb; b++) {
                    const block_q4_Kx16 *xb = &xg[b];
                    const block_q8_K *yb = &yc[b];
                    int32_t isum = 0, msum = 0;
                    for (int j = 0; j < 8; j++) {
                        /* sub-block j: values 32j..32j+31 = nibble (j % 2) of bytes 32(j/2)..+31 */
                        int32_t sub = 0;
                        for (int v = 0; v < 32; v++) {
                            const int step = (j / 2) * 8 + v / 4;
                            const uint8_t byte = xb->qs[step * 64 + r * 4 + v % 4];
                            const int q = j % 2 ? byte >> 4 : byte & 0xF;
                            sub += q * yb->qs[32 * j + v];
                        }
                        isum += (int32_t)xb->scales[j * 16 + r] * sub;
                        const int32_t asum = (int32_t)yb->bsums[2 * j] + yb->bsums[2 * j + 1];
                        msum += (int32_t)xb->mins[(j / 2) * 32 + r * 2 + j % 2] * asum;
                    }
                    const float da = yb->d;
                    const float dw = ts_f16_to_f32(xb->d[r]) * da;
                    const float dm = ts_f16_to_f32(xb->dmin[r]) * da;
                    acc = fmaf(dw, (float)isum, acc);
                    acc = fmaf(-dm, (float)msum, acc);
                }
                s[(size_t)c * s_stride + (size_t)g * TS_REPACK_ROWS + r] = acc;
            }
        }
    }
}

void ts_gemm_rp_q6_K_ref(int n, int n_groups, int n_cols, float *restrict s, size_t s_stride,
                         const void *restrict x, const void *restrict y, size_t y_stride) {
    const int nb = n / QK_K;
    for (int g = 0; g < n_groups; g++) {
        const block_q6_Kx16 *xg = (const block_q6_Kx16 *)x + (size_t)g * nb;
        for (int c = 0; c < n_cols; c++) {
            const block_q8_K *yc = (const block_q8_K *)((const char *)y + (size_t)c * y_stride);
            for (int r = 0; r < TS_REPACK_ROWS; r++) {
                float acc = 0.0f;
                for (int b = 0; b < nb; b++) {
                    const block_q6_Kx16 *xb = &xg[b];
                    const block_q8_K *yb = &yc[b];
                    int32_t isum = 0;
                    for (int j = 0; j < 16; j++) {
                        int32_t sub = 0;
                        for (int i = 0; i < 4; i++) {
                            const uint8_t *ql = &xb->qs[j * 192 + (i % 2) * 64 + r * 4];
                            const uint8_t *qh = &xb->qs[j * 192 + 128 + r * 4];
                            for (int k = 0; k < 4; k++) {
                                const int low4 = i < 2 ? ql[k] & 0xF : ql[k] >> 4;
                                const int q = low4 | ((qh[k] >> (2 * i)) & 3) << 4;
                                sub += (q - 32) * yb->qs[16 * j + 4 * i + k];
                            }
                        }
                        isum += (int32_t)xb->scales[j * 16 + r] * sub;
                    }
                    const float dw = ts_f16_to_f32(xb->d[r]) * yb->d;
                    acc = fmaf(dw, (float)isum, acc);
                }
                s[(size_t)c * s_stride + (size_t)g * TS_REPACK_ROWS + r] = acc;
            }
        }
    }
}
