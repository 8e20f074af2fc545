#include <math.h>
#include <stdint.h>

#include "ops/attn_flash.h"
#include "ops/ops.h"

void ts_softmax(float *x, int n, float scale) {
    float max = -INFINITY;
    for (int i = 0; i < n; i++) {
        x[i] *= scale;
        if (x[i] > max) max = x[i];
    }
    double sum = 0.0; /* ggml_float accumulator */
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += (double)x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

/* exp by ts_flash_exp (within 2 ulp of expf; 0 below -87.3, where silu(z) = z to float precision;
 * clamped at 88.7, where silu(z) is -0 within 1e-36), not libm's expf: the SIMD versions compute
 * the same function lane by lane, 8 or 16 at a time, and a decode step of a 1.5B model needs
 * 250 000 of them per token (8 % of a prompt's time with expf). */
void ts_swiglu(float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) {
        const float g = gate[i];
        gate[i] = g / (1.0f + ts_flash_exp(-g)) * up[i];
    }
}

void ts_swiglu_isa(enum ts_isa isa, float *gate, const float *up, int n) {
    switch (ts_flash_simd_level(isa)) {
#if defined(TS_HAVE_AVX512_KERNELS)
    case 2: ts_swiglu_avx512(gate, up, n); return;
#endif
#if defined(TS_HAVE_AVX2_KERNELS)
    case 1: ts_swiglu_avx2(gate, up, n); return;
#endif
    default: ts_swiglu(gate, up, n); return;
    }
}

typedef struct swiglu_job {
    enum ts_isa isa;
    float *gate;
    const float *up;
    long n;
} swiglu_job;

static void swiglu_task(void *arg, int ith, int nth) {
    const swiglu_job *j = arg;
    long begin, end;
    ts_split_range(j->n, ith, nth, &begin, &end);
    ts_swiglu_isa(j->isa, j->gate + begin, j->up + begin, (int)(end - begin));
}

void ts_swiglu_rows(ts_threadpool *pool, enum ts_isa isa, float *gate, const float *up, int n_rows, int n) {
    const long total = (long)n_rows * n;
    /* Below this a pass through the pool costs more than the exps it would share. */
    if (total < 16384 || total > INT32_MAX) {
        for (int i = 0; i < n_rows; i++) ts_swiglu_isa(isa, gate + (size_t)i * n, up + (size_t)i * n, n);
        return;
    }
    swiglu_job j = {.isa = isa, .gate = gate, .up = up, .n = total};
    ts_threadpool_run(pool, swiglu_task, &j);
}

void ts_add(float *y, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += x[i];
}
