#include <string.h>

#include "ops/ops.h"

typedef struct convert_job {
    const ts_type_traits *traits;
    const float *x;
    int x_stride, n, n_rows;
    char *dst;
    size_t row_bytes;
} convert_job;

static void convert_task(void *arg, int ith, int nth) {
    const convert_job *j = arg;
    long begin, end;
    ts_split_range(j->n_rows, ith, nth, &begin, &end);
    for (long r = begin; r < end; r++) {
        const float *src = j->x + (size_t)r * j->x_stride;
        void *dst = j->dst + (size_t)r * j->row_bytes;
        if (j->traits == NULL)
            memcpy(dst, src, (size_t)j->n * sizeof(float)); /* F32: vec_dot_type is f32 itself */
        else
            j->traits->from_float(src, dst, j->n);
    }
}

void ts_convert_rows(ts_threadpool *pool, const ts_type_traits *table, int type, const float *x, int x_stride,
                     int n, int n_rows, void *dst, size_t row_bytes) {
    convert_job j = {.traits = type == TS_TYPE_F32 ? NULL : &table[type],
                     .x = x, .x_stride = x_stride, .n = n, .n_rows = n_rows, .dst = dst, .row_bytes = row_bytes};
    /* Small batches: converting a handful of rows is cheaper than waking the pool. */
    if (n_rows * (long)n < 65536) convert_task(&j, 0, 1);
    else ts_threadpool_run(pool, convert_task, &j);
}

typedef struct matmul_job {
    const ts_type_traits *traits;
    const ts_matrix *w;
    const ts_act *act;
    float *out;
    int out_stride;
} matmul_job;

/* Activation bytes a thread keeps hot while it streams its weight rows: a tile of tokens this big
 * stays in L2, so each weight row is read once per tile instead of once per token. */
#define TS_ACT_TILE_BYTES (256 * 1024)

static void matmul_task(void *arg, int ith, int nth) {
    const matmul_job *j = arg;
    const ts_matrix *w = j->w;
    const ts_act *act = j->act;
    long begin, end;
    ts_split_range((long)w->n_out, ith, nth, &begin, &end);
    const int n = (int)w->n_in;
    int tile = (int)(TS_ACT_TILE_BYTES / (act->row_bytes ? act->row_bytes : 1));
    if (tile < 1) tile = 1;
    for (int t0 = 0; t0 < act->n_rows; t0 += tile) {
        const int t1 = t0 + tile < act->n_rows ? t0 + tile : act->n_rows;
        for (long r = begin; r < end; r++) {
            const void *row = (const char *)w->data + (size_t)r * w->row_bytes;
            for (int t = t0; t < t1; t++) {
                const void *a = (const char *)act->data + (size_t)t * act->row_bytes;
                j->traits->vec_dot(n, &j->out[(size_t)t * j->out_stride + r], row, a);
            }
        }
    }
}

void ts_matmul(ts_threadpool *pool, const ts_type_traits *table, const ts_matrix *w, const ts_act *act, float *out,
               int out_stride) {
    matmul_job j = {.traits = &table[w->type], .w = w, .act = act, .out = out, .out_stride = out_stride};
    ts_threadpool_run(pool, matmul_task, &j);
}
