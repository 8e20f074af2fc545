/* Flash-decoding: the attention of a few units split over their cached positions across threads.
 *
 * A unit is one token's group of query heads against one cache (a GQA group of a dense model, or
 * all heads of MLA's latent cache). A prompt batch has far more units than threads and runs each
 * unit's chunks in order on one thread (ts_flash_attention). A decode step has few: one token of
 * a dense model has as many units as KV heads (2 for R1-Distill-Qwen-1.5B, so 14 of 16 cores would
 * idle through its attention at depth), MLA's token is one unit, and the tokens of a few sequences
 * decoding together are as many units as do not share out evenly (3 on 2 threads), or are of
 * different lengths. Then the (unit, chunk) pairs are dealt to the threads in contiguous runs of
 * about equal cached positions, each chunk's partial state kept, and the chunks of each unit
 * merged in order afterwards, the (unit, head) pairs of the merge split across the threads (heads
 * merge independently). The chunks and the merge order are those of ts_flash_attention, so both
 * paths give the same bits (attn_flash.h). */
#ifndef TS_OPS_ATTN_SPLIT_H
#define TS_OPS_ATTN_SPLIT_H

#include <stdbool.h>
#include <stddef.h>

#include "ops/attn_flash.h"
#include "util/error.h"
#include "util/threadpool.h"

typedef struct ts_flash_unit {
    ts_flash_args args; /* every unit of one run has the same n_head and v_width */
    int n_kv;           /* positions [0, n_kv) */
    float *out;         /* head h's result at out + h * out_stride */
    size_t out_stride;
} ts_flash_unit;

typedef struct ts_flash_split {
    int max_units;     /* 0: splitting disabled (one thread, or no memory for it) */
    int max_chunks;    /* chunks of the longest context */
    size_t partial;    /* floats of one chunk's partial state */
    ts_flash_unit *units; /* [max_units]: the caller fills units[0, n) before ts_flash_split_run */
    float *partials;   /* [max_units * max_chunks] partial states */
    int *first;        /* [max_units + 1]: each unit's first chunk */
    /* set by ts_flash_split_run for its tasks */
    int n_units;
    float *scratch;
    size_t scratch_len;
} ts_flash_split;

/* Room for up to 4 * n_threads units (none on one thread) of n_head heads of v_width values over
 * n_ctx positions, or fewer when that would exceed cap_bytes of partial states (fewer only cost
 * parallelism, never results; V3's 128 heads at long contexts need the cap). */
int ts_flash_split_init(ts_flash_split *s, int n_threads, int n_head, int v_width, int n_ctx, size_t cap_bytes,
                        ts_err *err);
void ts_flash_split_free(ts_flash_split *s);

/* Whether n_units units (of the shape given to init) fit, on nth threads: the caller then fills
 * units[0, n_units) and calls ts_flash_split_run, which decides. */
bool ts_flash_split_wanted(const ts_flash_split *s, int n_units, int nth);

/* Runs units[0, n_units) split as above, when ts_flash_split_wanted, some unit has more than one
 * chunk, and whole units would not share out evenly (fewer units than threads, a count that the
 * threads do not divide, or units of different lengths); returns false, having done nothing,
 * otherwise. Thread ith's work buffer is
 * scratch + ith * scratch_len (ts_flash_work_floats of the units' shape). */
bool ts_flash_split_run(ts_threadpool *pool, ts_flash_split *s, int n_units, float *scratch, size_t scratch_len);

#endif
