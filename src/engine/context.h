/* Per-run state: thread pool, per-sequence KV caches, arch scratch. Internal to the engine; the
 * public API is in tiefsee.h. */
#ifndef TS_ENGINE_CONTEXT_H
#define TS_ENGINE_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "model/model.h"
#include "quant/types.h"
#include "util/threadpool.h"

/* The KV cache of one layer: for each sequence s, n_ctx rows of k_width (v_width) elements of the
 * cache type. Sequence s starts at row s * n_ctx. A row's bytes are ts_row_size(kv_type, width)
 * (widths are multiples of the type's block size). Within a sequence's block the architecture
 * lays out its positions: MLA stores row p = position p (ts_kv_row); the dense models store each
 * KV head's positions contiguously (arch/common.c, dense_kv_head). */
typedef struct ts_kv_layer {
    void *k, *v;
    size_t k_bytes, v_bytes; /* as allocated (ts_kv_alloc) */
    int k_width, v_width;
} ts_kv_layer;

struct ts_context {
    ts_model *model;
    ts_context_params params; /* as resolved (n_ctx, n_threads filled in) */
    int n_ctx;
    ts_threadpool *pool;

    int kv_type; /* TS_TYPE_F16, TS_TYPE_F32, TS_TYPE_BF16 or TS_TYPE_Q8_0 */
    ts_kv_layer *kv; /* n_layer entries */
    int *seq_len;    /* n_seq_max entries: positions cached per sequence */
    int *seq_next;   /* scratch for batch validation */
    bool *want_last; /* scratch: want_logits when the batch gives none */

    void *arch_state; /* owned by model->arch (context_init / context_free) */
    ts_profile *prof; /* step timers while profiling is on (engine/profile.h), else NULL */
};

/* Address of row `pos` of sequence `seq` in a cache array of `width` elements per row. */
static inline void *ts_kv_row(const ts_context *c, void *base, int width, int seq, int pos) {
    return (char *)base + ((size_t)seq * (size_t)c->n_ctx + (size_t)pos) * ts_row_size(c->kv_type, width);
}

/* Writes n floats as one cache row (or a part of one starting at a block boundary) of c->kv_type. */
void ts_kv_store_row(const ts_context *c, void *dst, const float *src, int n);

/* The ts_type of the elements of a cache type, or -1 for a value outside the enum. */
int ts_cache_elem_type(enum ts_cache_type t);

/* How n_ctx = 0 is resolved (see context.c); exposed for the CLI's log and the tests. */
int ts_context_auto_n_ctx(const ts_model *m, int n_seq_max, enum ts_cache_type cache_type);

#endif
