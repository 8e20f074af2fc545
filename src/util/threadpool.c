#include "util/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sched.h>
#include <stdlib.h>

/* A waiter first spins briefly (the next step of a forward pass usually follows within
 * microseconds: 256 pauses are ~6 us on Zen 4), then yields the CPU (so an oversubscribed or shared
 * machine runs the thread being waited for) for up to ~250 us (512 sched_yield calls of ~0.5 us),
 * then blocks. The yield phase was 64 calls: a V2-Lite token then slept and was woken (futex) ~150
 * times, a few us each and more in a VM, where now it is ~1 time (perf stat, tg128 x 3: 42.5-43.3 k
 * futex calls -> 337-370); generation in fast-memory minutes 33.1-35.8 -> 35.8-37.3 t/s, the same
 * in slow ones. Spinning 8192 pauses instead gave the same speed but holds the core while waiting. */
#define TS_POOL_SPIN 256
#define TS_POOL_YIELD 512

typedef struct worker {
    ts_threadpool *pool;
    int index;
    pthread_t thread;
} worker;

struct ts_threadpool {
    int n_threads;
    worker *workers; /* n_threads - 1 entries */
    pthread_mutex_t mutex;
    pthread_cond_t wake; /* generation changed or stop */
    pthread_cond_t done; /* pending reached zero */
    atomic_uint generation;
    atomic_int pending;
    atomic_bool stop;
    ts_task_fn fn;
    void *arg;
};

static inline void cpu_relax(int iteration) {
    if (iteration >= TS_POOL_SPIN) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *p) {
    worker *w = p;
    ts_threadpool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop) && spins < TS_POOL_SPIN + TS_POOL_YIELD) {
            cpu_relax(spins);
            spins++;
        }
        if (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop)) {
            pthread_mutex_lock(&pool->mutex);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) break;
        seen = atomic_load(&pool->generation);
        pool->fn(pool->arg, w->index, pool->n_threads);
        if (atomic_fetch_sub(&pool->pending, 1) == 1) {
            pthread_mutex_lock(&pool->mutex);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mutex);
        }
    }
    return NULL;
}

int ts_threadpool_new(int n_threads, ts_threadpool **out, ts_err *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024) return ts_fail(err, "thread count %d out of range 1..1024", n_threads);
    ts_threadpool *p = calloc(1, sizeof *p);
    if (!p) return ts_fail(err, "out of memory creating the thread pool");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mutex, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, false);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            ts_threadpool_free(p);
            return ts_fail(err, "out of memory creating the thread pool");
        }
        for (int i = 1; i < n_threads; i++) {
            worker *w = &p->workers[i - 1];
            w->pool = p;
            w->index = i;
            if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
                p->n_threads = i; /* join only those started */
                ts_threadpool_free(p);
                return ts_fail(err, "cannot start worker thread %d", i);
            }
        }
    }
    *out = p;
    return 0;
}

void ts_threadpool_free(ts_threadpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mutex);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mutex);
    for (int i = 1; i < p->n_threads && p->workers; i++) pthread_join(p->workers[i - 1].thread, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mutex);
    free(p->workers);
    free(p);
}

int ts_threadpool_size(const ts_threadpool *p) { return p->n_threads; }

void ts_threadpool_run(ts_threadpool *p, ts_task_fn fn, void *arg) {
    if (p->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->n_threads - 1);
    /* Incrementing under the mutex pairs with the workers' check-then-wait, so no wake-up is lost. */
    pthread_mutex_lock(&p->mutex);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mutex);

    fn(arg, 0, p->n_threads);

    int spins = 0;
    while (atomic_load(&p->pending) > 0 && spins < TS_POOL_SPIN + TS_POOL_YIELD) {
        cpu_relax(spins);
        spins++;
    }
    if (atomic_load(&p->pending) > 0) {
        pthread_mutex_lock(&p->mutex);
        while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mutex);
        pthread_mutex_unlock(&p->mutex);
    }
}
