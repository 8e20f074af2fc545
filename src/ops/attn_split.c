/* Flash-decoding split of a few attention units across threads (attn_split.h). */
#include "ops/attn_split.h"

#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "util/alloc.h"

int ts_flash_split_init(ts_flash_split *s, int n_threads, int n_head, int v_width, int n_ctx, size_t cap_bytes,
                        ts_err *err) {
    memset(s, 0, sizeof *s);
    s->max_chunks = ts_flash_n_chunks(n_ctx > 0 ? n_ctx : 1);
    s->partial = ts_flash_partial_floats(n_head, v_width);
    const size_t per_unit = (size_t)s->max_chunks * s->partial * sizeof(float);
    int units = n_threads > 1 ? 4 * n_threads : 0;
    while (units > 0 && per_unit * (size_t)units > cap_bytes) units--;
    if (units == 0) return 0;
    s->units = calloc((size_t)units, sizeof *s->units);
    s->partials = ts_alloc_floats((size_t)units, per_unit / sizeof(float));
    s->first = malloc(((size_t)units + 1) * sizeof *s->first);
    if (!s->units || !s->partials || !s->first) {
        ts_flash_split_free(s);
        return ts_fail(err, "out of memory allocating the attention split buffers (%d units)", units);
    }
    s->max_units = units;
    return 0;
}

void ts_flash_split_free(ts_flash_split *s) {
    free(s->units);
    free(s->partials);
    free(s->first);
    memset(s, 0, sizeof *s);
}

bool ts_flash_split_wanted(const ts_flash_split *s, int n_units, int nth) {
    return n_units > 0 && nth > 1 && n_units <= s->max_units;
}

/* The first (unit, chunk) pair whose middle row (cached position, counting every earlier unit's)
 * lies at or past total_rows * share / nth: threads get contiguous runs of pairs with about equal
 * rows, not equal pair counts. A unit's last chunk is short (a decode step at depth 8200 has 32
 * full chunks and one of 8 rows), and dealing pairs by count gave one thread 17 full chunks and
 * the other 15 and the short one. */
static long first_pair_at(const ts_flash_split *s, long total_rows, int share, int nth) {
    long item = 0, base = 0;
    for (int u = 0; u < s->n_units; u++) {
        const int n_kv = s->units[u].n_kv, chunks = ts_flash_n_chunks(n_kv);
        /* middle = start + rows / 2 >= total_rows * share / nth, in integers */
        for (int c = 0; c < chunks; c++, item++) {
            const long start = base + (long)c * TS_FLASH_CHUNK;
            const long rows = c + 1 < chunks ? TS_FLASH_CHUNK : n_kv - (long)c * TS_FLASH_CHUNK;
            if ((2 * start + rows) * nth >= 2 * total_rows * share) return item;
        }
        base += n_kv;
    }
    return item;
}

/* The (unit, chunk) pairs, a contiguous share of about equal rows per thread. */
static void split_chunks_task(void *arg, int ith, int nth) {
    const ts_flash_split *s = arg;
    float *work = s->scratch + (size_t)ith * s->scratch_len;
    long total_rows = 0;
    for (int u = 0; u < s->n_units; u++) total_rows += s->units[u].n_kv;
    const long begin = first_pair_at(s, total_rows, ith, nth), end = first_pair_at(s, total_rows, ith + 1, nth);
    int u = 0;
    for (long item = begin; item < end; item++) {
        while (item >= s->first[u + 1]) u++;
        const int chunk = (int)(item - s->first[u]), n_kv = s->units[u].n_kv;
        const int t0 = chunk * TS_FLASH_CHUNK, t1 = t0 + TS_FLASH_CHUNK < n_kv ? t0 + TS_FLASH_CHUNK : n_kv;
        ts_flash_chunk_cold(&s->units[u].args, t0, t1, s->partials + (size_t)item * s->partial, work);
    }
#if defined(__x86_64__)
    _mm_sfence(); /* the partials' non-temporal stores reach memory before the merge reads them */
#endif
}

/* Each unit's chunks merged in order, as ts_flash_attention merges them; the (unit, head) pairs
 * split across the threads. On one thread the merge of a V2-Lite token at depth 8192 (31 merges of
 * 16 x 512 values a layer) left the other core idle for a few percent of the step. */
static void split_merge_task(void *arg, int ith, int nth) {
    const ts_flash_split *s = arg;
    const int H = s->units[0].args.n_head, V = s->units[0].args.v_width;
    long begin, end;
    ts_split_range((long)s->n_units * H, ith, nth, &begin, &end);
    for (long item = begin; item < end;) {
        const int u = (int)(item / H), h0 = (int)(item % H);
        const int h1 = end - (item - h0) < H ? (int)(end - (item - h0)) : H; /* this unit's heads in range */
        float *run = s->partials + (size_t)s->first[u] * s->partial;
        for (int c = s->first[u] + 1; c < s->first[u + 1]; c++)
            ts_flash_merge_heads(H, V, h0, h1, run, s->partials + (size_t)c * s->partial);
        ts_flash_finish_heads(H, V, h0, h1, run, s->units[u].out, s->units[u].out_stride);
        item += h1 - h0;
    }
}

bool ts_flash_split_run(ts_threadpool *pool, ts_flash_split *s, int n_units, float *scratch, size_t scratch_len) {
    if (!ts_flash_split_wanted(s, n_units, ts_threadpool_size(pool))) return false;
    if (ts_flash_partial_floats(s->units[0].args.n_head, s->units[0].args.v_width) != s->partial) return false;
    s->first[0] = 0;
    const int chunks0 = ts_flash_n_chunks(s->units[0].n_kv);
    bool equal = true; /* every unit as long as the first */
    for (int u = 0; u < n_units; u++) {
        const int chunks = ts_flash_n_chunks(s->units[u].n_kv);
        if (chunks > s->max_chunks) return false; /* past the context init was sized for */
        equal = equal && chunks == chunks0;
        s->first[u + 1] = s->first[u] + chunks;
    }
    if (s->first[n_units] <= n_units) return false; /* one chunk each: nothing to split */
    /* Whole units already share out evenly: the split would only add the merge pass. */
    if (equal && n_units % ts_threadpool_size(pool) == 0) return false;
    s->n_units = n_units;
    s->scratch = scratch;
    s->scratch_len = scratch_len;
    ts_threadpool_run(pool, split_chunks_task, s);
    ts_threadpool_run(pool, split_merge_task, s);
    return true;
}
