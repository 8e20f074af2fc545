/* A persistent pool of worker threads for the forward pass.
 *
 * Threads are created once (per context) and reused for every parallel step: ts_threadpool_run()
 * hands one task to all n threads (the caller is thread 0) and returns when all have finished, so
 * every run is also a barrier. Nothing is allocated and no thread is created per token. Workers
 * spin briefly before sleeping on a condition variable, which keeps the hand-off cheap for the
 * back-to-back steps of one forward pass without burning a core when the engine is idle. */
#ifndef TS_UTIL_THREADPOOL_H
#define TS_UTIL_THREADPOOL_H

#include "util/error.h"

typedef struct ts_threadpool ts_threadpool;

/* ith in [0, nth): which share of the work this call does. */
typedef void (*ts_task_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 (1 = no workers; tasks run on the caller). */
int ts_threadpool_new(int n_threads, ts_threadpool **out, ts_err *err);
void ts_threadpool_free(ts_threadpool *p);
int ts_threadpool_size(const ts_threadpool *p);
/* Runs fn(arg, ith, nth) on every thread; returns after all calls have returned. Not reentrant. */
void ts_threadpool_run(ts_threadpool *p, ts_task_fn fn, void *arg);

/* The half-open range [*begin, *end) of n items that share ith of nth takes (contiguous, balanced). */
static inline void ts_split_range(long n, int ith, int nth, long *begin, long *end) {
    const long base = n / nth, extra = n % nth;
    *begin = ith * base + (ith < extra ? ith : extra);
    *end = *begin + base + (ith < extra ? 1 : 0);
}

#endif
