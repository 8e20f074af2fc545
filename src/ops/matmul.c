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
/* Rows per unit of the thread split: a multiple of every tile kernel's row count (4), so only the
 * last unit of a matrix has a ragged tile. */
#define TS_ROW_UNIT 16

static void matmul_task(void *arg, int ith, int nth) {
    const matmul_job *j = arg;
    const ts_matrix *w = j->w;
    const ts_act *act = j->act;
    const int n = (int)w->n_in;
    const long n_rows = (long)w->n_out, n_tokens = act->n_rows;
    /* Split the rows (in units of TS_ROW_UNIT) when there are enough for every thread; a short
     * matrix with many tokens (a small projection during prefill) splits the tokens instead, so
     * both cores stay busy either way. The results do not depend on the split: every (row, token)
     * pair is one tile-kernel result, bit-identical to vec_dot. */
    long row_begin = 0, row_end = n_rows, tok_begin = 0, tok_end = n_tokens;
    const long row_units = (n_rows + TS_ROW_UNIT - 1) / TS_ROW_UNIT;
    if (row_units >= 4L * nth || n_tokens < nth) {
        long ub, ue;
        ts_split_range(row_units, ith, nth, &ub, &ue);
        row_begin = ub * TS_ROW_UNIT;
        row_end = ue * TS_ROW_UNIT < n_rows ? ue * TS_ROW_UNIT : n_rows;
    } else {
        ts_split_range(n_tokens, ith, nth, &tok_begin, &tok_end);
    }
    if (row_begin >= row_end || tok_begin >= tok_end) return;
    long tile = (long)(TS_ACT_TILE_BYTES / (act->row_bytes ? act->row_bytes : 1));
    if (tile < 1) tile = 1;
    for (long t0 = tok_begin; t0 < tok_end; t0 += tile) {
        const long t1 = t0 + tile < tok_end ? t0 + tile : tok_end;
        j->traits->vec_dot_tile(n, (int)(row_end - row_begin), (int)(t1 - t0),
                                &j->out[(size_t)t0 * (size_t)j->out_stride + (size_t)row_begin], (size_t)j->out_stride,
                                (const char *)w->data + (size_t)row_begin * w->row_bytes, w->row_bytes,
                                (const char *)act->data + (size_t)t0 * act->row_bytes, act->row_bytes);
    }
}

void ts_matmul(ts_threadpool *pool, const ts_type_traits *table, const ts_matrix *w, const ts_act *act, float *out,
               int out_stride) {
    matmul_job j = {.traits = &table[w->type], .w = w, .act = act, .out = out, .out_stride = out_stride};
    ts_threadpool_run(pool, matmul_task, &j);
}
