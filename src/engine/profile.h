/* The step timers behind ts_context_profile (tiefsee.h): an arch's forward pass brackets each step
 * with ts_prof_begin / ts_prof_end. With profiling off (c->prof NULL) both are a pointer test. */
#ifndef TS_ENGINE_PROFILE_H
#define TS_ENGINE_PROFILE_H

#include <stdint.h>

#include "engine/context.h"
#include "ops/ops.h"
#include "util/clock.h"

static inline double ts_prof_now(void) { return ts_monotonic_seconds(); }

static inline double ts_prof_begin(const ts_context *c) { return c->prof ? ts_prof_now() : 0.0; }

/* Adds the time since t0 (from ts_prof_begin) and weight_bytes to step s. */
static inline void ts_prof_end(ts_context *c, enum ts_step s, double t0, uint64_t weight_bytes) {
    if (!c->prof) return;
    ts_step_stats *st = &c->prof->step[s];
    st->calls++;
    st->seconds += ts_prof_now() - t0;
    st->weight_bytes += weight_bytes;
}

/* Bytes of a matrix in the file layout (0 for an absent one): what the roofline counts for it. */
static inline uint64_t ts_prof_matrix_bytes(const ts_matrix *w) {
    return w && w->data ? (uint64_t)w->row_bytes * (uint64_t)w->n_out : 0;
}

#endif
