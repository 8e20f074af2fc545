/* Per-architecture entry points. The loader picks the entry whose name equals
 * general.architecture; context creation asks it for the KV cache shape and scratch; ts_decode
 * calls its forward pass. Adding an arch = one more file and one more line in ts_arch_find(). */
#ifndef TS_ARCH_ARCH_H
#define TS_ARCH_ARCH_H

#include <stddef.h>

#include "tiefsee.h"
#include "util/error.h"

struct ts_context;
struct ts_matrix;

/* Called once per weight matrix by each_matrix: a plain matrix has n_experts 1 and expert_bytes
 * NULL; an expert stack passes its first matrix, the count and the distance between experts (which
 * the visitor may change along with the matrix's layout). */
typedef void (*ts_matrix_visit_fn)(void *user, struct ts_matrix *w, int n_experts, size_t *expert_bytes);

typedef struct ts_arch {
    const char *name;
    /* Reads hyperparameters into m->hp and every tensor view into m (m->file, m->types are set).
     * Errors name the missing key or the offending tensor and the file. */
    int (*load)(ts_model *m, ts_err *err);
    void (*free)(ts_model *m); /* frees what load allocated (may be NULL) */
    /* Elements per cached position of one sequence in layer l: K row width and V row width. */
    void (*kv_widths)(const ts_model *m, int layer, int *k_width, int *v_width);
    /* Per-context scratch (buffers for n_batch tokens, per-thread attention scratch). */
    int (*context_init)(struct ts_context *c, ts_err *err);
    void (*context_free)(struct ts_context *c);
    /* Runs a validated batch; writes the logits of rows that want them (batch order) to `logits`. */
    int (*forward)(struct ts_context *c, const ts_batch *b, const bool *want_logits, float *logits, ts_err *err);
    /* Visits every matrix the forward pass multiplies with through ts_matmul (those whose layout
     * ts_model_repack may change): not the token embedding (rows are looked up), nor matrices
     * read any other way, nor layers the forward pass skips. The output matrix is visited by the
     * caller, not here. */
    void (*each_matrix)(ts_model *m, ts_matrix_visit_fn fn, void *user);
} ts_arch;

extern const ts_arch ts_arch_llama;
extern const ts_arch ts_arch_qwen2;
extern const ts_arch ts_arch_deepseek;
extern const ts_arch ts_arch_deepseek2;

/* The entry for an architecture name, or NULL. */
const ts_arch *ts_arch_find(const char *name);
/* "llama, qwen2, ..." — for the unsupported-architecture message. */
const char *ts_arch_supported_list(void);

#endif
