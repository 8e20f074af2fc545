/* What repack.c shares with repack_cache.c: the list of matrices that have a repacked layout on
 * the model's CPU, and repacking one of them into a buffer. */
#ifndef TS_MODEL_REPACK_INTERNAL_H
#define TS_MODEL_REPACK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "model/model.h"
#include "util/error.h"
#include "util/threadpool.h"

typedef struct repack_item {
    ts_matrix *w;
    int n_experts;
    size_t *expert_bytes; /* NULL for a plain matrix */
} repack_item;

typedef struct repack_list {
    const ts_model *m;
    repack_item *items;
    int n, cap;
    bool out_of_memory;
} repack_list;

/* ts_matrix_visit_fn adding each matrix with a repacked layout on m->isa to the repack_list `user`
 * (its m set). Visit the output matrix too: ts_repack_collect(&list, &m->output, 1, NULL). */
void ts_repack_collect(void *user, ts_matrix *w, int n_experts, size_t *expert_bytes);

/* The repacked item's shape: bytes per group of TS_REPACK_ROWS rows, groups in all (experts one
 * after another) and total bytes. Fails (naming the model) on sizes that overflow or an expert
 * stack whose experts are not contiguous in the file. */
int ts_repack_item_geometry(const ts_model *m, const repack_item *it, size_t *group_bytes, long *n_groups,
                            size_t *total, ts_err *err);

/* Writes the item's repacked bytes (ts_repack_item_geometry's total) to dst, reading the file
 * layout with pread where it can (no page faults), split across the pool. */
void ts_repack_item_fill(const ts_model *m, ts_threadpool *pool, const repack_item *it, void *dst);

/* Points the item's matrix at its repacked bytes in dst (which must outlive the model). */
void ts_repack_item_switch(ts_model *m, const repack_item *it, const void *dst);

#endif
