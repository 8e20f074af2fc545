/* Per-run state: thread pool, per-sequence KV caches, arch scratch. Internal to the engine; the
 * public API is in tiefsee.h. */
#ifndef TS_ENGINE_CONTEXT_H
#define TS_ENGINE_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "model/model.h"
#include "util/threadpool.h"

/* The KV cache of one layer: for each sequence s, n_ctx rows of k_width (v_width) elements of the
 * cache type, row p holding position p. Sequence s starts at row s * n_ctx. */
typedef struct ts_kv_layer {
    void *k, *v;
    int k_width, v_width;
} ts_kv_layer;

struct ts_context {
    ts_model *model;
    ts_context_params params; /* as resolved (n_ctx, n_threads filled in) */
    int n_ctx;
    ts_threadpool *pool;

    int kv_type; /* TS_TYPE_F16 or TS_TYPE_F32 */
    size_t kv_elem_size;
    ts_kv_layer *kv; /* n_layer entries */
    int *seq_len;    /* n_seq_max entries: positions cached per sequence */
    int *seq_next;   /* scratch for batch validation */
    bool *want_last; /* scratch: want_logits when the batch gives none */

    void *arch_state; /* owned by model->arch (context_init / context_free) */
};

/* Address of row `pos` of sequence `seq` in a cache array of `width` elements per row. */
static inline void *ts_kv_row(const ts_context *c, void *base, int width, int seq, int pos) {
    return (char *)base + ((size_t)seq * (size_t)c->n_ctx + (size_t)pos) * (size_t)width * c->kv_elem_size;
}

/* How n_ctx = 0 is resolved (see context.c); exposed for the CLI's log and the tests. */
int ts_context_auto_n_ctx(const ts_model *m, int n_seq_max, enum ts_cache_type cache_type);

#endif
