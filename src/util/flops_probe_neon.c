/* NEON kernel of the peak-FMA probe (flops_probe.h): TS_FMA_CHAINS 4-lane chains. */
#include <arm_neon.h>

#include "util/flops_probe.h"

_Static_assert(TS_FMA_CHAINS == 12, "the chains below are written out one by one");

double ts_fma_chains_neon(long n_iter, float start, float step, float mul, float add) {
    const float32x4_t vmul = vdupq_n_f32(mul), vadd = vdupq_n_f32(add);
    /* Twelve named accumulators, not an array: compilers keep an indexed array in memory, and the
     * store-to-load round trip would then limit the rate instead of the FMA units. */
    float32x4_t a0 = vdupq_n_f32(start + 0.0f * step);
    float32x4_t a1 = vdupq_n_f32(start + 1.0f * step);
    float32x4_t a2 = vdupq_n_f32(start + 2.0f * step);
    float32x4_t a3 = vdupq_n_f32(start + 3.0f * step);
    float32x4_t a4 = vdupq_n_f32(start + 4.0f * step);
    float32x4_t a5 = vdupq_n_f32(start + 5.0f * step);
    float32x4_t a6 = vdupq_n_f32(start + 6.0f * step);
    float32x4_t a7 = vdupq_n_f32(start + 7.0f * step);
    float32x4_t a8 = vdupq_n_f32(start + 8.0f * step);
    float32x4_t a9 = vdupq_n_f32(start + 9.0f * step);
    float32x4_t a10 = vdupq_n_f32(start + 10.0f * step);
    float32x4_t a11 = vdupq_n_f32(start + 11.0f * step);
    for (long i = 0; i < n_iter; i++) {
        /* vfmaq_f32(a, b, c) = a + b * c, fused */
        a0 = vfmaq_f32(vadd, a0, vmul);
        a1 = vfmaq_f32(vadd, a1, vmul);
        a2 = vfmaq_f32(vadd, a2, vmul);
        a3 = vfmaq_f32(vadd, a3, vmul);
        a4 = vfmaq_f32(vadd, a4, vmul);
        a5 = vfmaq_f32(vadd, a5, vmul);
        a6 = vfmaq_f32(vadd, a6, vmul);
        a7 = vfmaq_f32(vadd, a7, vmul);
        a8 = vfmaq_f32(vadd, a8, vmul);
        a9 = vfmaq_f32(vadd, a9, vmul);
        a10 = vfmaq_f32(vadd, a10, vmul);
        a11 = vfmaq_f32(vadd, a11, vmul);
    }
    const float32x4_t acc[TS_FMA_CHAINS] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11};
    double sum = 0;
    for (int j = 0; j < TS_FMA_CHAINS; j++) {
        float lanes[4];
        vst1q_f32(lanes, acc[j]);
        for (int k = 0; k < 4; k++) sum += lanes[k];
    }
    return sum;
}
