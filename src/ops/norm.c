#include <math.h>

#include "ops/ops.h"

void ts_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    /* ggml squares in float and accumulates in double, then takes the mean and scale in float. */
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    if (w) {
        /* Two roundings, as ggml's separate rms_norm and mul ops. */
        for (int i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
    } else {
        for (int i = 0; i < n; i++) y[i] = x[i] * scale;
    }
}
