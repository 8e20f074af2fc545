#include <math.h>
#include <stdint.h>

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

void ts_swiglu(float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

typedef struct swiglu_job {
    float *gate;
    const float *up;
    long n;
} swiglu_job;

static void swiglu_task(void *arg, int ith, int nth) {
    const swiglu_job *j = arg;
    long begin, end;
    ts_split_range(j->n, ith, nth, &begin, &end);
    ts_swiglu(j->gate + begin, j->up + begin, (int)(end - begin));
}

void ts_swiglu_rows(ts_threadpool *pool, float *gate, const float *up, int n_rows, int n) {
    const long total = (long)n_rows * n;
    /* Below this a pass through the pool costs more than the exps it would share. */
    if (total < 8192 || total > INT32_MAX) {
        for (int i = 0; i < n_rows; i++) ts_swiglu(gate + (size_t)i * n, up + (size_t)i * n, n);
        return;
    }
    swiglu_job j = {.gate = gate, .up = up, .n = total};
    ts_threadpool_run(pool, swiglu_task, &j);
}

void ts_add(float *y, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += x[i];
}
