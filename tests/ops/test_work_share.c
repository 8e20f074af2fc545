/* The shares of one-token products (ops/work_share.h): an owner taking from the front and other
 * threads taking from the back split a range into pieces that cover every unit exactly once, also
 * when they race; and products of 1-10 tokens give the same bits on 1, 2, 3 and 5 threads. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/ops.h"
#include "ops/work_share.h"
#include "quant/types.h"
#include "util/threadpool.h"

#include "check.h"

static void test_sequential(void) {
    ts_share_range r;
    long b, e;
    ts_share_init(&r, 5, 5);
    CHECK(!ts_share_take(&r, true, &b, &e) && !ts_share_take(&r, false, &b, &e), "an empty share gave units");

    /* The owner alone: pieces in order, each three quarters (rounded up) of what is left. */
    ts_share_init(&r, 10, 110);
    long next = 10, pieces = 0;
    while (ts_share_take(&r, true, &b, &e)) {
        const long left = 110 - next, want = left - left / 4;
        CHECK(b == next && e - b == want, "owner piece [%ld, %ld) after %ld, want %ld units", b, e, next, want);
        next = e;
        pieces++;
    }
    CHECK(next == 110 && pieces < 10, "owner covered up to %ld in %ld pieces", next, pieces);

    /* Another thread alone: from the back, half of what is left each time. */
    ts_share_init(&r, 0, 100);
    long end = 100;
    while (ts_share_take(&r, false, &b, &e)) {
        const long want = end / 2 > 0 ? end / 2 : 1;
        CHECK(e == end && e - b == want, "taker piece [%ld, %ld) before %ld, want %ld units", b, e, end, want);
        end = b;
    }
    CHECK(end == 0, "taker covered down to %ld", end);

    /* Both, alternating: they meet without overlap. */
    ts_share_init(&r, 0, 1000);
    long lo = 0, hi = 1000;
    for (int i = 0;; i++) {
        if (!ts_share_take(&r, i % 2 == 0, &b, &e)) break;
        if (i % 2 == 0) {
            CHECK(b == lo && e <= hi, "owner [%ld, %ld) with [%ld, %ld) left", b, e, lo, hi);
            lo = e;
        } else {
            CHECK(e == hi && b >= lo, "taker [%ld, %ld) with [%ld, %ld) left", b, e, lo, hi);
            hi = b;
        }
    }
    CHECK(lo == hi, "alternating takes left [%ld, %ld)", lo, hi);

    /* The largest share the word holds. */
    ts_share_init(&r, TS_SHARE_MAX_UNITS - 3, TS_SHARE_MAX_UNITS);
    CHECK(ts_share_take(&r, false, &b, &e) && b == TS_SHARE_MAX_UNITS - 1 && e == TS_SHARE_MAX_UNITS,
          "top of the range: [%ld, %ld)", b, e);
}

/* N_THREADS threads race over N_UNITS units as matmul's one-token task does (own share, then the
 * others'). Thread 0 starts only once another thread has taken from its share, so taking from the
 * back is exercised on every run, not only when the scheduler happens to interleave. */
enum { N_THREADS = 4, N_UNITS = 200000 };
typedef struct race {
    ts_share_range shares[N_THREADS];
    atomic_int marks[N_UNITS];
    atomic_long taken_from_0; /* units taken from thread 0's share by others */
    atomic_int bad;
} race;
typedef struct race_arg {
    race *r;
    int ith;
} race_arg;

static void mark(race *r, long b, long e) {
    for (long u = b; u < e; u++)
        if (u < 0 || u >= N_UNITS || atomic_fetch_add(&r->marks[u], 1) != 0) atomic_store(&r->bad, 1);
}

static void *race_thread(void *p) {
    const race_arg *a = p;
    race *r = a->r;
    if (a->ith == 0) {
        const struct timespec pause = {0, 1000000};
        for (int i = 0; i < 10000 && atomic_load(&r->taken_from_0) == 0; i++) nanosleep(&pause, NULL);
    }
    long b, e;
    while (ts_share_take(&r->shares[a->ith], true, &b, &e)) mark(r, b, e);
    for (int k = 1; k < N_THREADS; k++) {
        const int victim = (a->ith + k) % N_THREADS;
        while (ts_share_take(&r->shares[victim], false, &b, &e)) {
            mark(r, b, e);
            if (victim == 0) atomic_fetch_add(&r->taken_from_0, e - b);
        }
    }
    return NULL;
}

static void test_race(void) {
    race *r = calloc(1, sizeof *r);
    for (int t = 0; t < N_THREADS; t++) {
        long b, e;
        ts_split_range(N_UNITS, t, N_THREADS, &b, &e);
        ts_share_init(&r->shares[t], b, e);
    }
    pthread_t th[N_THREADS];
    race_arg args[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        args[t] = (race_arg){r, t};
        CHECK(pthread_create(&th[t], NULL, race_thread, &args[t]) == 0, "pthread_create");
    }
    for (int t = 0; t < N_THREADS; t++) pthread_join(th[t], NULL);
    long missing = 0;
    for (long u = 0; u < N_UNITS; u++) missing += atomic_load(&r->marks[u]) != 1;
    CHECK(!atomic_load(&r->bad) && missing == 0, "racing takes: %ld units not taken exactly once", missing);
    CHECK(atomic_load(&r->taken_from_0) > 0, "no unit was taken from the back of a share");
    free(r);
}

/* Products of T tokens (decoding 1..8 sequences: contiguous shares taken from both ends) of several
 * matrices at once (a MoE step's shape): the same bits whatever the thread count, so whoever
 * computes a unit computes it the same way. */
/* Values in [-1, 1] from a test-local LCG. */
static float next_value(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1;
    return (float)((int)(*s >> 40) % 2001 - 1000) / 997.0f;
}

static void test_decode_bits(const int T) {
    const ts_type_traits *table = ts_type_table(ts_isa_best());
    enum { N_IN = 96, N_ITEMS = 5 };
    const int n_out[N_ITEMS] = {40, 333, 16, 1000, 77};
    float *w[N_ITEMS], *x = malloc(sizeof(float) * N_IN * T), *out[2][N_ITEMS];
    uint64_t s = 99;
    for (int i = 0; i < N_IN * T; i++) x[i] = next_value(&s);
    for (int k = 0; k < N_ITEMS; k++) {
        w[k] = malloc(sizeof(float) * N_IN * n_out[k]);
        for (int i = 0; i < N_IN * n_out[k]; i++) w[k][i] = next_value(&s);
        for (int v = 0; v < 2; v++) out[v][k] = malloc(sizeof(float) * n_out[k] * T);
    }
    ts_matrix m[N_ITEMS];
    ts_matmul_item items[N_ITEMS];
    const int threads[] = {1, 2, 3, 5};
    for (size_t ti = 0; ti < sizeof threads / sizeof threads[0]; ti++) {
        ts_threadpool *pool;
        ts_err err;
        if (ts_threadpool_new(threads[ti], &pool, &err)) {
            CHECK(0, "pool of %d threads: %s", threads[ti], err.msg);
            continue;
        }
        const int v = ti == 0 ? 0 : 1;
        for (int k = 0; k < N_ITEMS; k++) {
            m[k] = (ts_matrix){.data = w[k], .type = TS_TYPE_F32, .n_in = N_IN, .n_out = n_out[k],
                               .row_bytes = sizeof(float) * N_IN};
            const ts_act act = {.data = x, .type = TS_TYPE_F32, .row_bytes = sizeof(float) * N_IN, .n_rows = T};
            items[k] = (ts_matmul_item){.w = &m[k], .act = act, .out = out[v][k], .out_stride = n_out[k]};
            memset(out[v][k], 0xff, sizeof(float) * n_out[k] * T); /* NaN: a row nobody wrote shows */
        }
        for (int rep = 0; rep < 20; rep++) ts_matmul_many(pool, table, items, N_ITEMS);
        for (int k = 0; k < N_ITEMS && v == 1; k++)
            CHECK(memcmp(out[0][k], out[1][k], sizeof(float) * n_out[k] * T) == 0,
                  "%d tokens, %d threads: item %d differs from 1 thread", T, threads[ti], k);
        ts_threadpool_free(pool);
    }
    for (int k = 0; k < N_ITEMS; k++) free(w[k]), free(out[0][k]), free(out[1][k]);
    free(x);
}

int main(void) {
    test_sequential();
    test_race();
    for (int t = 1; t <= 10; t++) test_decode_bits(t); /* 9, 10: the counter's chunks */
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("all work share tests passed\n");
    return 0;
}
