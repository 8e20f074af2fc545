/* K-quants (Q2_K..Q6_K weights, Q8_K activations): scalar reference kernels.
 *
 * dequant: the same float expressions, in the same order, as ggml's dequantize_row_* (so results
 *          are bit-identical to ggml built without FMA contraction).
 * dot:     weight row . q8_K row with the integer sums and the float accumulation order of ggml's
 *          generic (scalar) vec_dot_*_q8_K, including the bsums trick for the mins: sum_i min*q8_i
 *          is min * sum(bsums) and needs no per-element work.
 * quant:   reference weight quantizers following ggml's *_ref search strategy (asymmetric
 *          scale+min search for Q2/Q4/Q5_K, iterative symmetric refinement for Q3_K, trial scales
 *          for Q6_K); not bit-identical to ggml, but of the same quality.
 * q8_K:    activation quantizer identical to ggml's quantize_row_q8_K_ref (which ggml's x86
 *          backend also uses), except that an all-zero block gets zero bsums (ggml leaves them
 *          unwritten) and a block with max |x| < ~4e-37 (where -127/max overflows) is stored as
 *          zero instead of ggml's garbage. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "quant/blocks.h"
#include "quant/kernels.h"

/* Round to nearest, ties to even, exactly like ggml's nearest_int (adding 1.5*2^23 makes the FPU
 * do the rounding). Valid for |v| < 2^22; q8_K only feeds it values in [-127, 127]. */
static inline int round_to_int(float v) {
    float shifted = v + 12582912.f;
    int32_t bits;
    memcpy(&bits, &shifted, sizeof(bits));
    return (bits & 0x007fffff) - 0x00400000;
}

/* round_to_int for the per-block requantization (x/d), where outliers, NaN or inf could leave
 * the trick's valid range: clamp first (callers clamp to a few bits anyway), NaN -> 0. The search
 * loops call round_to_int directly: their ratios are bounded by ~2*nmax for finite input, and
 * every result is clamped to the quant range, so even garbage input yields a valid block. */
static inline int round_clamped(float v) {
    if (!(v == v)) return 0;
    if (v > 4194303.f) v = 4194303.f;
    if (v < -4194303.f) v = -4194303.f;
    return round_to_int(v);
}

static inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The 12-byte scales of Q4_K/Q5_K hold eight 6-bit scales and eight 6-bit mins: entries 0..3
 * in the low 6 bits of bytes 0..3 (scales) and 4..7 (mins); entries 4..7 have their low nibbles
 * in bytes 8..11 and their top two bits in the top bits of bytes 0..3 / 4..7. */
static inline void k4_scale_min(int j, const uint8_t *q, uint8_t *scale, uint8_t *min) {
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *min = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void k4_pack_scale_min(uint8_t *q, const uint8_t scales[8], const uint8_t mins[8]) {
    memset(q, 0, K_SCALE_SIZE);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            q[j] = scales[j];
            q[j + 4] = mins[j];
        } else {
            q[j + 4] = (uint8_t)((scales[j] & 0xF) | ((mins[j] & 0xF) << 4));
            q[j - 4] |= (uint8_t)((scales[j] >> 4) << 6);
            q[j] |= (uint8_t)((mins[j] >> 4) << 6);
        }
    }
}

/* Q3_K's sixteen 6-bit scales (stored +32): low nibbles in bytes 0..7 (entries 0..7 low half,
 * 8..15 high half), the top two bits of entry j in byte 8 + j%4 at bit 2*(j/4). */
static void q3_unpack_scales(const uint8_t *q, int8_t out[16]) {
    for (int j = 0; j < 16; j++) {
        int low = j < 8 ? (q[j] & 0xF) : (q[j - 8] >> 4);
        int high = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = (int8_t)((low | (high << 4)) - 32);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Dequantization                                                                               */

void ts_dequant_q2_K_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q2_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = ts_f16_to_f32(x[i].d);
        const float dmin = ts_f16_to_f32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int half = 0; half < QK_K; half += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; part++) {
                    const uint8_t sc = x[i].scales[is++];
                    const float dl = d * (float)(sc & 0xF);
                    const float ml = dmin * (float)(sc >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[16 * part + l] >> shift) & 3) - ml;
                }
            }
            q += 32;
        }
    }
}

void ts_dequant_q3_K_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q3_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d_all = ts_f16_to_f32(x[i].d);
        int8_t scales[16];
        q3_unpack_scales(x[i].scales, scales);
        const uint8_t *q = x[i].qs;
        const uint8_t *hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int half = 0; half < QK_K; half += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; part++) {
                    const float dl = d_all * (float)scales[is++];
                    for (int l = 16 * part; l < 16 * part + 16; l++) {
                        const int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
                        *y++ = dl * (float)v;
                    }
                }
                m = (uint8_t)(m << 1);
            }
            q += 32;
        }
    }
}

void ts_dequant_q4_K_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q4_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = ts_f16_to_f32(x[i].d);
        const float dmin = ts_f16_to_f32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int is = 0; is < 8; is += 2) {
            uint8_t sc, mn;
            k4_scale_min(is, x[i].scales, &sc, &mn);
            const float d1 = d * (float)sc, m1 = dmin * (float)mn;
            k4_scale_min(is + 1, x[i].scales, &sc, &mn);
            const float d2 = d * (float)sc, m2 = dmin * (float)mn;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
            q += 32;
        }
    }
}

void ts_dequant_q5_K_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q5_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = ts_f16_to_f32(x[i].d);
        const float dmin = ts_f16_to_f32(x[i].dmin);
        const uint8_t *ql = x[i].qs;
        const uint8_t *qh = x[i].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int is = 0; is < 8; is += 2) {
            uint8_t sc, mn;
            k4_scale_min(is, x[i].scales, &sc, &mn);
            const float d1 = d * (float)sc, m1 = dmin * (float)mn;
            k4_scale_min(is + 1, x[i].scales, &sc, &mn);
            const float d2 = d * (float)sc, m2 = dmin * (float)mn;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
            ql += 32;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

void ts_dequant_q6_K_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q6_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = ts_f16_to_f32(x[i].d);
        const uint8_t *ql = x[i].ql;
        const uint8_t *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int half = 0; half < QK_K; half += 128) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                /* (d * scale) * q, left to right as in ggml */
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

void ts_dequant_q8_K_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const block_q8_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        for (int j = 0; j < QK_K; j++) *y++ = x[i].d * (float)x[i].qs[j];
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Q8_K activation quantizer                                                                    */

void ts_quant_q8_K_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q8_K *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++) {
        /* The value of largest magnitude, sign kept: it maps to exactly -127, so every other
         * value lands in [-127, 127] (-128 never occurs, which the AVX2 dots rely on). */
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        const float iscale = -127.f / max;
        /* amax below ~4e-37 makes iscale overflow to inf and ggml's output garbage; such a block
         * is zero for every practical purpose, so it is stored as zero (deliberate difference). */
        if (amax == 0 || isinf(iscale)) {
            memset(&y[i], 0, sizeof(y[i]));
            x += QK_K;
            continue;
        }
        for (int j = 0; j < QK_K; j++) {
            const int v = round_to_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
        x += QK_K;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Dot products with a q8_K row                                                                 */

/* The float tail shared by the Q3..Q6 dots: like ggml's generic code, the integer products of
 * a block are kept in 8 lanes (element index mod 8) and each lane is scaled and accumulated in
 * its own float, so the summation order is ggml's. */
typedef struct {
    float lane_sums[8];
} lane_acc;

static inline void lane_acc_add_block(lane_acc *acc, float d, const int32_t lanes[8]) {
    for (int l = 0; l < 8; l++) acc->lane_sums[l] += d * (float)lanes[l];
}

/* lanes[l] += sum over the 16 elements of a 16-value group at stride 8 of scale * q8 * q */
static inline void lanes_add_group16(int32_t lanes[8], int scale, const int8_t *q8, const int8_t *q) {
    for (int half = 0; half < 2; half++) {
        for (int l = 0; l < 8; l++) {
            const int16_t prod = (int16_t)(q8[8 * half + l] * q[8 * half + l]);
            lanes[l] += scale * prod;
        }
    }
}

void ts_dot_q2_K_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q2_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int i = 0; i < n / QK_K; i++) {
        const uint8_t *q2 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        const uint8_t *sc = x[i].scales;
        int min_sum = 0; /* sum_j min_j * sum(q8 in group j) via bsums */
        for (int j = 0; j < 16; j++) min_sum += y[i].bsums[j] * (sc[j] >> 4);
        const float dall = y[i].d * ts_f16_to_f32(x[i].d);
        const float dmin = y[i].d * ts_f16_to_f32(x[i].dmin);
        int isum = 0, is = 0;
        for (int half = 0; half < 2; half++) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; part++) {
                    const int scale = sc[is++] & 0xF;
                    int group = 0;
                    for (int l = 16 * part; l < 16 * part + 16; l++) group += q8[l] * ((q2[l] >> shift) & 3);
                    isum += scale * group;
                }
                q8 += 32;
            }
            q2 += 32;
        }
        sumf += dall * (float)isum - dmin * (float)min_sum;
    }
    *s = sumf;
}

void ts_dot_q3_K_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q3_K *x = vx;
    const block_q8_K *y = vy;
    lane_acc acc = {{0}};
    for (int i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        const uint8_t *q3 = x[i].qs;
        const uint8_t *hm = x[i].hmask;
        int8_t *a = q;
        uint8_t m = 1;
        for (int half = 0; half < 2; half++) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int l = 0; l < 32; l++) a[l] = (int8_t)(((q3[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                a += 32;
                m = (uint8_t)(m << 1);
            }
            q3 += 32;
        }
        int8_t scales[16];
        q3_unpack_scales(x[i].scales, scales);
        int32_t lanes[8] = {0};
        for (int j = 0; j < 16; j++) lanes_add_group16(lanes, scales[j], y[i].qs + 16 * j, q + 16 * j);
        lane_acc_add_block(&acc, ts_f16_to_f32(x[i].d) * y[i].d, lanes);
    }
    float sumf = 0;
    for (int l = 0; l < 8; l++) sumf += acc.lane_sums[l];
    *s = sumf;
}

/* Q4_K and Q5_K share everything but the unpacking of the quants. */
static void dot_k4_block_tail(const uint8_t *packed_scales, ts_f16 xd, ts_f16 xdmin, const block_q8_K *yb,
                              const int8_t q[QK_K], lane_acc *acc, float *sumf) {
    uint8_t scales[8], mins[8];
    for (int j = 0; j < 8; j++) k4_scale_min(j, packed_scales, &scales[j], &mins[j]);
    int min_sum = 0;
    for (int j = 0; j < QK_K / 16; j++) min_sum += yb->bsums[j] * mins[j / 2];
    int32_t lanes[8] = {0};
    for (int j = 0; j < QK_K / 16; j++) lanes_add_group16(lanes, scales[j / 2], yb->qs + 16 * j, q + 16 * j);
    lane_acc_add_block(acc, ts_f16_to_f32(xd) * yb->d, lanes);
    const float dmin = ts_f16_to_f32(xdmin) * yb->d;
    *sumf -= dmin * (float)min_sum;
}

void ts_dot_q4_K_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    lane_acc acc = {{0}};
    float sumf = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        const uint8_t *q4 = x[i].qs;
        for (int j = 0; j < 4; j++) {
            for (int l = 0; l < 32; l++) q[64 * j + l] = (int8_t)(q4[l] & 0xF);
            for (int l = 0; l < 32; l++) q[64 * j + 32 + l] = (int8_t)(q4[l] >> 4);
            q4 += 32;
        }
        dot_k4_block_tail(x[i].scales, x[i].d, x[i].dmin, &y[i], q, &acc, &sumf);
    }
    for (int l = 0; l < 8; l++) sumf += acc.lane_sums[l];
    *s = sumf;
}

void ts_dot_q5_K_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    lane_acc acc = {{0}};
    float sumf = 0;
    for (int i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        const uint8_t *q5 = x[i].qs;
        const uint8_t *hm = x[i].qh;
        uint8_t m = 1;
        for (int j = 0; j < 4; j++) {
            for (int l = 0; l < 32; l++) q[64 * j + l] = (int8_t)((q5[l] & 0xF) + ((hm[l] & m) ? 16 : 0));
            m = (uint8_t)(m << 1);
            for (int l = 0; l < 32; l++) q[64 * j + 32 + l] = (int8_t)((q5[l] >> 4) + ((hm[l] & m) ? 16 : 0));
            m = (uint8_t)(m << 1);
            q5 += 32;
        }
        dot_k4_block_tail(x[i].scales, x[i].d, x[i].dmin, &y[i], q, &acc, &sumf);
    }
    for (int l = 0; l < 8; l++) sumf += acc.lane_sums[l];
    *s = sumf;
}

void ts_dot_q6_K_ref(int n, float *restrict s, const void *restrict vx, const void *restrict vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    lane_acc acc = {{0}};
    for (int i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        const uint8_t *ql = x[i].ql;
        const uint8_t *qh = x[i].qh;
        for (int half = 0; half < 2; half++) {
            int8_t *a = q + 128 * half;
            for (int l = 0; l < 32; l++) {
                a[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                a[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                a[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                a[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
            ql += 64;
            qh += 32;
        }
        int32_t lanes[8] = {0};
        for (int j = 0; j < 16; j++) lanes_add_group16(lanes, x[i].scales[j], y[i].qs + 16 * j, q + 16 * j);
        lane_acc_add_block(&acc, ts_f16_to_f32(x[i].d) * y[i].d, lanes);
    }
    float sumf = 0;
    for (int l = 0; l < 8; l++) sumf += acc.lane_sums[l];
    *s = sumf;
}

/* ------------------------------------------------------------------------------------------ */
/* Reference weight quantizers                                                                  */

/* Asymmetric fit x ~ scale * L - min_out with L in [0, nmax], minimising the weighted error
 * (squared, or absolute with use_abs). Starts from the plain min/max grid, then tries nsteps+1
 * slightly different grid spacings and refits scale and offset by weighted least squares for
 * each resulting L (ggml's make_qkx2_quants strategy). Returns the scale; *min_out >= 0. */
static float fit_scale_min(int n, int nmax, const float *restrict x, const float *restrict w, uint8_t *restrict L,
                           float *restrict min_out, float rmin, float rdelta, int nsteps, bool use_abs) {
    float lo = x[0], hi = x[0], sum_w = 0, sum_x = 0;
    for (int i = 0; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0) lo = 0; /* the offset only ever moves values down: mins are stored unsigned */
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *min_out = -lo;
        return 0.f;
    }
    float iscale = (float)nmax / (hi - lo);
    float scale = 1 / iscale, best_min = lo, best_err = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clamp_int(round_to_int(iscale * (x[i] - lo)), 0, nmax);
        const float diff = scale * L[i] + lo - x[i];
        best_err += w[i] * (use_abs ? fabsf(diff) : diff * diff);
    }
    uint8_t trial[32];
    bool best_is_fit = false; /* best_err belongs to the least-squares fit of the current L */
    for (int step = 0; step <= nsteps; step++) {
        /* as in ggml, later trials lay their grid from the best offset found so far rather than
         * from lo (this measurably helps: it lets the grid follow the fitted offset) */
        iscale = (rmin + rdelta * (float)step + (float)nmax) / (hi - best_min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clamp_int(round_to_int(iscale * (x[i] - best_min)), 0, nmax);
            trial[i] = (uint8_t)l;
            const float wl = w[i] * (float)l;
            sum_l += wl;
            sum_l2 += wl * (float)l;
            sum_xl += wl * x[i];
        }
        /* neighbouring grids often give the same L again: its fit would reproduce best_err
         * exactly and cannot win (the comparison is strict), so skip the refit */
        if (best_is_fit && memcmp(trial, L, (size_t)n) == 0) continue;
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (this_min > 0) { /* offset must stay <= 0: refit the scale alone */
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            const float diff = this_scale * trial[i] + this_min - x[i];
            err += w[i] * (use_abs ? fabsf(diff) : diff * diff);
        }
        if (err < best_err) {
            memcpy(L, trial, (size_t)n);
            best_err = err;
            scale = this_scale;
            best_min = this_min;
            best_is_fit = true;
        }
    }
    *min_out = -best_min;
    return scale;
}

/* Symmetric fit x ~ scale * L, L in [-nmax, nmax-1], weights x^2, refined coordinate-wise: each
 * L[i] is moved to its best value given the others while that improves the weighted fit
 * (ggml's make_q3_quants strategy). Returns the (signed) scale; L is written with +nmax. */
static float fit_scale_sym_refine(int n, int nmax, const float *restrict x, int8_t *restrict L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -(float)nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clamp_int(round_clamped(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)(l * l);
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * (float)(L[i] * L[i]);
            const int nl = clamp_int(round_clamped(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == L[i]) continue;
            slx += w * x[i] * (float)nl;
            sl2 += w * (float)(nl * nl);
            /* accept if the fit quality sumlx^2/suml2 grows */
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0 ? sumlx / suml2 : 0.f;
}

/* Symmetric fit with weights x^2 over 19 trial grid spacings around nmax/max, keeping the best
 * least-squares scale (ggml's make_qx_quants with rmse_type 1). L is written with +nmax. */
static float fit_scale_sym_trials(int n, int nmax, const float *restrict x, int8_t *restrict L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float best_scale = 0, best = 0;
    bool have = false;
    for (int t = 0; t <= 19; t++) {
        /* t = 0 is the plain grid; t = 1..19 spacing nmax-0.9 .. nmax+0.9 (skipping +0) */
        const int offset = t == 0 ? 0 : (t <= 9 ? t - 10 : t - 9);
        const float iscale = -((float)nmax + 0.1f * (float)offset) / max;
        float sumlx = 0, suml2 = 0;
        int8_t trial[16];
        for (int i = 0; i < n; i++) {
            const int l = clamp_int(round_to_int(iscale * x[i]), -nmax, nmax - 1);
            trial[i] = (int8_t)l;
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)(l * l);
        }
        if (!(suml2 > 0)) continue;
        /* the least-squares error is sum w x^2 - sumlx^2/suml2: maximise sumlx^2/suml2 */
        if (!have || sumlx * sumlx > best * suml2) {
            have = true;
            best_scale = sumlx / suml2;
            best = best_scale * sumlx;
            for (int i = 0; i < n; i++) L[i] = (int8_t)(trial[i] + nmax);
        }
    }
    if (!have) memset(L, 0, (size_t)n);
    return best_scale;
}

/* Quantize positive sub-block scales/mins to `bits` bits against a per-block float step. */
static inline int quantize_unsigned(float v, float inv_step, int maxq) {
    return clamp_int(round_clamped(v * inv_step), 0, maxq);
}

void ts_quant_q2_K_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q2_K *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        uint8_t L[QK_K];
        float scales[16], mins[16], w[16];
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
            scales[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_scale = max_scale > 0 ? 15.f / max_scale : 0.f;
        const float inv_min = max_min > 0 ? 15.f / max_min : 0.f;
        for (int j = 0; j < 16; j++) {
            y[i].scales[j] = (uint8_t)(quantize_unsigned(scales[j], inv_scale, 15) |
                                       (quantize_unsigned(mins[j], inv_min, 15) << 4));
        }
        y[i].d = ts_f32_to_f16(max_scale / 15.f);
        y[i].dmin = ts_f32_to_f16(max_min / 15.f);
        /* requantize against the scales as they will be decoded */
        for (int j = 0; j < 16; j++) {
            const float d = ts_f16_to_f32(y[i].d) * (float)(y[i].scales[j] & 0xF);
            if (d == 0) continue;
            const float dm = ts_f16_to_f32(y[i].dmin) * (float)(y[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++) L[16 * j + l] = (uint8_t)clamp_int(round_clamped((x[16 * j + l] + dm) / d), 0, 3);
        }
        for (int j = 0; j < QK_K; j += 128) {
            for (int l = 0; l < 32; l++) {
                y[i].qs[j / 4 + l] =
                    (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
            }
        }
    }
}

void ts_quant_q3_K_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q3_K *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        int8_t L[QK_K];
        float scales[16];
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_scale_sym_refine(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, sizeof(y[i].scales));
        if (max_scale != 0) {
            /* signed 6-bit scales; the largest maps to -32 so its sign is folded into d */
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                const int l = clamp_int(round_clamped(iscale * scales[j]), -32, 31) + 32;
                if (j < 8) y[i].scales[j] = (uint8_t)(l & 0xF);
                else y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                y[i].scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = ts_f32_to_f16(1 / iscale);
        } else {
            y[i].d = ts_f32_to_f16(0.f);
        }
        int8_t dec_scales[16];
        q3_unpack_scales(y[i].scales, dec_scales);
        for (int j = 0; j < 16; j++) {
            const float d = ts_f16_to_f32(y[i].d) * (float)dec_scales[j];
            if (d == 0) continue;
            for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(clamp_int(round_clamped(x[16 * j + l] / d), -4, 3) + 4);
        }
        /* bit 2 of quant j goes to hmask[j % 32] bit j / 32 */
        memset(y[i].hmask, 0, sizeof(y[i].hmask));
        for (int j = 0; j < QK_K; j++) {
            if (L[j] > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1u << (j / 32));
                L[j] = (int8_t)(L[j] - 4);
            }
        }
        for (int j = 0; j < QK_K; j += 128) {
            for (int l = 0; l < 32; l++) {
                y[i].qs[j / 4 + l] =
                    (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
            }
        }
    }
}

/* Q4_K and Q5_K: eight 32-value sub-blocks, each with a 6-bit scale and min; returns quants. */
static void quant_k4_scales(const float *restrict x, int nmax, float rmin, int nsteps, uint8_t L[QK_K],
                            uint8_t packed[K_SCALE_SIZE], ts_f16 *d_out, ts_f16 *dmin_out) {
    float scales[8], mins[8], w[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        /* weight errors by magnitude, with a floor at the rms so small values still count */
        const float rms = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = rms + fabsf(xs[l]);
        scales[j] = fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], rmin, 0.1f, nsteps, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t qs[8], qm[8];
    for (int j = 0; j < 8; j++) {
        qs[j] = (uint8_t)quantize_unsigned(scales[j], inv_scale, 63);
        qm[j] = (uint8_t)quantize_unsigned(mins[j], inv_min, 63);
    }
    k4_pack_scale_min(packed, qs, qm);
    *d_out = ts_f32_to_f16(max_scale / 63.f);
    *dmin_out = ts_f32_to_f16(max_min / 63.f);
    const float d_all = ts_f16_to_f32(*d_out), dmin_all = ts_f16_to_f32(*dmin_out);
    for (int j = 0; j < 8; j++) {
        const float d = d_all * (float)qs[j];
        if (d == 0) continue;
        const float dm = dmin_all * (float)qm[j];
        for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)clamp_int(round_clamped((x[32 * j + l] + dm) / d), 0, nmax);
    }
}

void ts_quant_q4_K_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q4_K *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        uint8_t L[QK_K];
        quant_k4_scales(x, 15, -1.f, 20, L, y[i].scales, &y[i].d, &y[i].dmin);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64, q += 32) {
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        }
    }
}

void ts_quant_q5_K_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q5_K *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        uint8_t L[QK_K];
        quant_k4_scales(x, 31, -0.5f, 15, L, y[i].scales, &y[i].d, &y[i].dmin);
        uint8_t *ql = y[i].qs;
        memset(y[i].qh, 0, sizeof(y[i].qh));
        /* 64-value chunk c: low nibbles of values 0..31 and high nibbles of 32..63 share ql;
         * their fifth bits go to qh bits 2c and 2c+1 */
        for (int c = 0; c < 4; c++, ql += 32) {
            for (int l = 0; l < 32; l++) {
                const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                y[i].qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
                ql[l] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
            }
        }
    }
}

void ts_quant_q6_K_ref(const float *restrict x, void *restrict vy, int64_t n) {
    block_q6_K *y = vy;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        int8_t L[QK_K];
        float scales[16];
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_scale_sym_trials(16, 32, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        if (amax < 1e-15f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        /* int8 scales; the largest maps to -128 so its sign is folded into d */
        const float iscale = -128.f / max_scale;
        y[i].d = ts_f32_to_f16(1 / iscale);
        for (int j = 0; j < 16; j++) y[i].scales[j] = (int8_t)clamp_int(round_clamped(iscale * scales[j]), -128, 127);
        for (int j = 0; j < 16; j++) {
            const float d = ts_f16_to_f32(y[i].d) * (float)y[i].scales[j];
            if (d == 0) continue;
            for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(clamp_int(round_clamped(x[16 * j + l] / d), -32, 31) + 32);
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
                ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
                qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
    }
}
