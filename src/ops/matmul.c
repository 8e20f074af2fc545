#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/work_share.h"
#include "quant/repack.h"

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

/* Activation bytes a thread keeps hot while it streams its weight rows: a tile of tokens this big
 * stays in L2, so each weight row is read once per tile instead of once per token. */
#define TS_ACT_TILE_BYTES (256 * 1024)
/* Rows per unit of the thread split: a multiple of every tile kernel's row count (4) and of the
 * repacked group (16), so only the last unit of a file-layout matrix has a ragged tile and every
 * thread's share of a repacked matrix is whole groups. */
#define TS_ROW_UNIT 16
_Static_assert(TS_ROW_UNIT % TS_REPACK_ROWS == 0, "thread shares of a repacked matrix are whole groups");

/* Rows [row_begin, row_end) x tokens [tok_begin, tok_end) of one product, token tile by token
 * tile. Every (row, token) result is the kernel's result for that pair whatever the ranges, so
 * no split of the work changes a number. */
static void matmul_block(const ts_type_traits *tr, const ts_matrix *w, const ts_act *act, float *out, int out_stride,
                         long row_begin, long row_end, long tok_begin, long tok_end) {
    if (row_begin >= row_end || tok_begin >= tok_end) return;
    const int n = (int)w->n_in;
    /* By the rows' stride, not the bytes a row holds: the MoE scratch's stride is sized for the
     * widest input (V2-Lite's dense FFN), which gives its expert products tiles of ~22 tokens
     * whose activations stay in L1; sizing by the row bytes (~120 tokens) measured 8 % slower
     * on V2-Lite's prompts (BENCHMARKS.md, AVX2 third pass). */
    long tile = (long)(TS_ACT_TILE_BYTES / (act->row_bytes ? act->row_bytes : 1));
    if (tile < 1) tile = 1;
    /* A whole number of the repacked kernel's widest tiles (the nearest): otherwise every token
     * tile ends in a narrow kernel tile that unpacks the weights for few tokens (V2-Lite's
     * experts took 22-token tiles, 5 x 4 + 2 with the AVX2 Q4_0 kernel). */
    const long kt = w->repack && w->repack->tile_tokens > 1 ? w->repack->tile_tokens : 1;
    tile = (tile + kt / 2) / kt * kt;
    if (tile < kt) tile = kt;
    const size_t group_bytes = w->repack ? (size_t)(n / tr->block_size) * w->repack->block_bytes : 0;
    for (long t0 = tok_begin; t0 < tok_end; t0 += tile) {
        const long t1 = t0 + tile < tok_end ? t0 + tile : tok_end;
        float *dst = &out[(size_t)t0 * (size_t)out_stride + (size_t)row_begin];
        const char *a = (const char *)act->data + (size_t)t0 * act->row_bytes;
        if (w->repack)
            w->repack->gemm(n, (int)((row_end - row_begin) / TS_REPACK_ROWS), (int)(t1 - t0), dst, (size_t)out_stride,
                            (const char *)w->data + (size_t)(row_begin / TS_REPACK_ROWS) * group_bytes, a,
                            act->row_bytes);
        else
            tr->vec_dot_tile(n, (int)(row_end - row_begin), (int)(t1 - t0), dst, (size_t)out_stride,
                             (const char *)w->data + (size_t)row_begin * w->row_bytes, w->row_bytes, a, act->row_bytes);
    }
}

typedef struct matmul_job {
    const ts_type_traits *table;
    const ts_matmul_item *items;
    int n_items;
    long total_units, chunk;
    long shared_units;     /* units [0, shared_units) are cut into one contiguous share per thread */
    atomic_long next_unit; /* the next row unit (of all items laid end to end) to hand out */
    ts_share_range *shares; /* one per thread when the shared units go through them (work_share.h) */
} matmul_job;

static long row_units(const ts_matrix *w) { return (long)((w->n_out + TS_ROW_UNIT - 1) / TS_ROW_UNIT); }

/* Row units [ub, ue) of the items laid end to end, each with all its tokens. */
static void run_units(const matmul_job *j, long ub, long ue) {
    long first = 0;
    for (int i = 0; i < j->n_items && first < ue; i++) {
        const ts_matmul_item *it = &j->items[i];
        const long units = row_units(it->w), last = first + units;
        const long b = ub > first ? ub : first, e = ue < last ? ue : last;
        if (b < e) {
            const long n_rows = (long)it->w->n_out;
            const long r1 = (e - first) * TS_ROW_UNIT;
            matmul_block(&j->table[it->w->type], it->w, &it->act, it->out, it->out_stride, (b - first) * TS_ROW_UNIT,
                         r1 < n_rows ? r1 : n_rows, 0, it->act.n_rows);
        }
        first = last;
    }
}

static void matmul_task(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    if (j->n_items == 1) {
        const ts_matmul_item *it = &j->items[0];
        const long n_tokens = it->act.n_rows;
        /* A short matrix with many tokens (a small projection during prefill) splits the tokens,
         * so both cores stay busy. */
        if (!(j->total_units >= 4L * nth || n_tokens < nth)) {
            long tb, te;
            ts_split_range(n_tokens, ith, nth, &tb, &te);
            matmul_block(&j->table[it->w->type], it->w, &it->act, it->out, it->out_stride, 0, (long)it->w->n_out, tb, te);
            return;
        }
    }
    if (j->shared_units > 0 && j->shares) {
        long ub, ue;
        while (ts_share_take(&j->shares[ith], true, &ub, &ue)) run_units(j, ub, ue);
        for (int k = 1; k < nth; k++)
            while (ts_share_take(&j->shares[(ith + k) % nth], false, &ub, &ue)) run_units(j, ub, ue);
    } else if (j->shared_units > 0) {
        long ub, ue;
        ts_split_range(j->shared_units, ith, nth, &ub, &ue);
        run_units(j, ub, ue);
    }
    /* The rest (all of it with more than STREAM_MAX_TOKENS tokens) is handed out in chunks from a
     * shared counter rather than split in equal halves: a core slowed by something else (another
     * process, an interrupt) then takes fewer chunks instead of making the other wait at the
     * barrier. No result depends on who computes it. */
    for (;;) {
        const long b = atomic_fetch_add_explicit(&j->next_unit, j->chunk, memory_order_relaxed);
        if (b >= j->total_units) break;
        run_units(j, b, b + j->chunk < j->total_units ? b + j->chunk : j->total_units);
    }
}

static void run_job(ts_threadpool *pool, matmul_job *j) {
    const int nth = ts_threadpool_size(pool);
    /* Up to STREAM_MAX_TOKENS tokens (decoding one or a few sequences, bound by memory): each
     * thread streams one contiguous share of the rows. The weights then arrive as a few long reads
     * instead of 8 pieces per thread at scattered places, which the memory system serves faster:
     * R1-Distill-Qwen-1.5B q4_K_M tg128 +6 % (7 of 8 rounds won, AVX-512 kernels; 4 of 4 with the
     * AVX2 ones), V2-Lite unchanged; 2, 4 and 8 sequences decoding together +2-6 % (`-np 2`,
     * `-np 4`: 15 of 16 pairs won; 8 rather than 4 tokens: `-np 8` +3 %, 4 of 5; `--isa avx2
     * -np 6` +1 %, 3 of 4), V2-Lite `-np 2` unchanged (BENCHMARKS.md); 16 was not clearly better
     * than 8. With more tokens the products are bound by arithmetic, and chunks from the counter
     * balance the threads. */
    enum { STREAM_MAX_TOKENS = 8 };
    bool few_tokens = true;
    for (int i = 0; i < j->n_items; i++) few_tokens = few_tokens && j->items[i].act.n_rows <= STREAM_MAX_TOKENS;
    j->shared_units = few_tokens ? j->total_units : 0;
    /* About 8 chunks per thread: a small enough tail, few enough hand-outs. */
    j->chunk = (j->total_units + 8L * nth - 1) / (8L * nth);
    if (j->chunk < 1) j->chunk = 1;
    atomic_init(&j->next_unit, j->shared_units);
    /* ... and a thread done with its share helps with the others' (work_share.h): in fast-memory
     * minutes +1.6-2.2 % for R1-Distill-Qwen-1.5B q4_K_M tg128 (12 alternating pairs, 10 won),
     * V2-Lite q4_0 within the noise (+0.3 %), unchanged in slow minutes. Up to SHARE_THREADS
     * threads (on the stack); more split in fixed shares. */
    enum { SHARE_THREADS = 64 };
    ts_share_range shares[SHARE_THREADS];
    j->shares = NULL;
    if (j->shared_units > 0 && nth > 1 && nth <= SHARE_THREADS && j->shared_units <= TS_SHARE_MAX_UNITS) {
        for (int t = 0; t < nth; t++) {
            long b, e;
            ts_split_range(j->shared_units, t, nth, &b, &e);
            ts_share_init(&shares[t], b, e);
        }
        j->shares = shares;
    }
    ts_threadpool_run(pool, matmul_task, j);
}

void ts_matmul_serial(const ts_type_traits *table, const ts_matrix *w, const ts_act *act, float *out, int out_stride) {
    matmul_block(&table[w->type], w, act, out, out_stride, 0, (long)w->n_out, 0, act->n_rows);
}

void ts_matmul(ts_threadpool *pool, const ts_type_traits *table, const ts_matrix *w, const ts_act *act, float *out,
               int out_stride) {
    const ts_matmul_item item = {.w = w, .act = *act, .out = out, .out_stride = out_stride};
    matmul_job j = {.table = table, .items = &item, .n_items = 1, .total_units = row_units(w)};
    run_job(pool, &j);
}

void ts_matmul_many(ts_threadpool *pool, const ts_type_traits *table, const ts_matmul_item *items, int n_items) {
    if (n_items <= 0) return;
    if (n_items == 1) {
        ts_matmul(pool, table, items[0].w, &items[0].act, items[0].out, items[0].out_stride);
        return;
    }
    matmul_job j = {.table = table, .items = items, .n_items = n_items};
    for (int i = 0; i < n_items; i++) j.total_units += row_units(items[i].w);
    run_job(pool, &j);
}
