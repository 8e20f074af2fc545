/* Streaming read-bandwidth probe (see membw.h). */
#include "util/membw.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "util/threadpool.h"

/* 16-byte vectors through the compiler's generic vector extension: SSE2 on x86-64, NEON on
 * aarch64, so one portable loop issues full-width loads without per-ISA code. */
typedef uint64_t membw_u64x2 __attribute__((vector_size(16)));

#define MEMBW_LINE 64
#define MEMBW_HUGE_PAGE ((size_t)2 << 20)
#define MEMBW_MAX_THREADS 1024

typedef struct membw_task {
    unsigned char *buf;
    size_t bytes; /* multiple of MEMBW_LINE * 2 * nth */
    bool fill;    /* write the share (first touch) instead of reading it */
    bool two;     /* read each thread's share as two interleaved streams (its halves) */
    bool wide;    /* 32-byte loads (the CPU has AVX2) */
    /* Each thread's checksum: stored to memory the caller owns, through a task run via a function
     * pointer, so the compiler cannot prove the loads dead and drop them. */
    uint64_t sums[MEMBW_MAX_THREADS];
} membw_task;

/* A reader: sums n_lines lines from p and, when q is not NULL, the same count from q, a line of
 * each in turn, in vectors of vec_t (one accumulator per vector of a line, so that the adds never
 * limit the load rate). */
#define MEMBW_DEFINE_READ(name, vec_t, attrs)                                                             \
    attrs static uint64_t name(const unsigned char *p, const unsigned char *q, size_t n_lines) {          \
        enum { PER_LINE = MEMBW_LINE / sizeof(vec_t) };                                                   \
        vec_t acc[2][PER_LINE];                                                                           \
        _Pragma("GCC unroll 8") for (int k = 0; k < PER_LINE; k++) acc[0][k] = acc[1][k] = (vec_t){0};   \
        for (size_t i = 0; i < n_lines; i++) {                                                            \
            const vec_t *v = (const vec_t *)(const void *)(p + i * MEMBW_LINE);                           \
            _Pragma("GCC unroll 8") for (int k = 0; k < PER_LINE; k++) acc[0][k] += v[k];                 \
            if (q) {                                                                                      \
                const vec_t *u = (const vec_t *)(const void *)(q + i * MEMBW_LINE);                       \
                _Pragma("GCC unroll 8") for (int k = 0; k < PER_LINE; k++) acc[1][k] += u[k];             \
            }                                                                                             \
        }                                                                                                 \
        vec_t sum = (vec_t){0};                                                                           \
        _Pragma("GCC unroll 8") for (int k = 0; k < PER_LINE; k++) sum += acc[0][k] + acc[1][k];          \
        uint64_t total = 0;                                                                               \
        for (size_t j = 0; j < sizeof(vec_t) / sizeof(uint64_t); j++) total += sum[j];                   \
        return total;                                                                                     \
    }

MEMBW_DEFINE_READ(membw_read16, membw_u64x2, )

#if defined(__x86_64__) && defined(__GNUC__)
#define MEMBW_HAVE_WIDE 1
/* 32-byte loads, as the AVX2 and AVX-512 decode kernels read the weights. */
typedef uint64_t membw_u64x4 __attribute__((vector_size(32)));
MEMBW_DEFINE_READ(membw_read32, membw_u64x4, __attribute__((target("avx2"))))
#else
#define MEMBW_HAVE_WIDE 0
#endif

static void membw_work(void *arg, int ith, int nth) {
    membw_task *t = arg;
    long begin, end;
    ts_split_range((long)(t->bytes / MEMBW_LINE), ith, nth, &begin, &end);
    unsigned char *p = t->buf + (size_t)begin * MEMBW_LINE;
    size_t n_lines = (size_t)(end - begin);
    if (t->fill) {
        /* Nonzero data: untouched anonymous pages all map the shared zero page, which reads from
         * cache and would report a fantasy bandwidth. */
        memset(p, 0x5a + ith, n_lines * MEMBW_LINE);
        return;
    }
    const unsigned char *q = NULL;
    if (t->two) {
        n_lines /= 2; /* even: bytes is a multiple of 2 lines per thread */
        q = p + n_lines * MEMBW_LINE;
    }
#if MEMBW_HAVE_WIDE
    if (t->wide) {
        t->sums[ith] = membw_read32(p, q, n_lines);
        return;
    }
#endif
    t->sums[ith] = membw_read16(p, q, n_lines);
}

static double membw_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int ts_membw_measure(int n_threads, size_t bytes, int passes, ts_membw_result *out, ts_err *err) {
    if (n_threads < 1 || n_threads > MEMBW_MAX_THREADS)
        return ts_fail(err, "bandwidth probe: thread count %d out of range 1..%d", n_threads, MEMBW_MAX_THREADS);
    if (passes < 1) return ts_fail(err, "bandwidth probe: at least one pass is needed");
    const size_t granule = (size_t)MEMBW_LINE * 2 * (size_t)n_threads;
    bytes -= bytes % granule;
    if (bytes < ((size_t)1 << 20)) return ts_fail(err, "bandwidth probe: buffer of %zu bytes is too small", bytes);

    if (bytes > SIZE_MAX - MEMBW_HUGE_PAGE) return ts_fail(err, "bandwidth probe: buffer of %zu bytes is too large", bytes);
    membw_task *task = calloc(1, sizeof *task);
    /* On huge pages where the system has them, as the repacked weights are (model/repack.c): with
     * 4 KiB pages the probe read this host's memory up to 15 % slower than the weights stream, and
     * the roofline fractions came out that much too high. */
    const size_t mapped = bytes + MEMBW_HUGE_PAGE;
    void *map = task ? mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : MAP_FAILED;
    ts_threadpool *pool = NULL;
    if (!task || map == MAP_FAILED) {
        free(task);
        return ts_fail(err, "bandwidth probe: out of memory allocating %zu bytes", bytes);
    }
    unsigned char *buf = (unsigned char *)(((uintptr_t)map + MEMBW_HUGE_PAGE - 1) & ~(uintptr_t)(MEMBW_HUGE_PAGE - 1));
#if defined(MADV_HUGEPAGE)
    (void)madvise(buf, bytes, MADV_HUGEPAGE); /* only a hint */
#endif
    if (ts_threadpool_new(n_threads, &pool, err) != 0) {
        munmap(map, mapped);
        free(task);
        return -1;
    }
    task->buf = buf;
    task->bytes = bytes;
    task->fill = true;
#if MEMBW_HAVE_WIDE
    task->wide = __builtin_cpu_supports("avx2");
#endif
    ts_threadpool_run(pool, membw_work, task);
    task->fill = false;
    ts_threadpool_run(pool, membw_work, task); /* warm-up: TLB, frequency ramp */

    double best = 0, sum = 0;
    for (int i = 0; i < passes; i++) {
        /* Two streams per thread on even passes, one on odd ones: the decode kernels read two
         * places of a thread's share at once, which on a Zen 5 host read 5-15 % faster than one
         * stream with two threads (BENCHMARKS.md, "The bandwidth probe"); where one stream is
         * faster, its passes give the best. */
        task->two = i % 2 == 0;
        const double t0 = membw_now();
        ts_threadpool_run(pool, membw_work, task);
        const double s = membw_now() - t0;
        const double gbs = s > 0 ? (double)bytes / s / 1e9 : 0;
        if (gbs > best) best = gbs;
        sum += gbs;
    }
    ts_threadpool_free(pool);
    munmap(map, mapped);
    free(task);
    *out = (ts_membw_result){.best_gbs = best, .mean_gbs = sum / passes, .passes = passes, .bytes = bytes,
                             .n_threads = n_threads};
    return 0;
}

/* Copies the value after ':' of a /proc/cpuinfo line, trimmed. */
static void cpuinfo_value(const char *line, char *buf, size_t cap) {
    const char *v = strchr(line, ':');
    v = v ? v + 1 : line;
    while (*v == ' ' || *v == '\t') v++;
    size_t n = strcspn(v, "\r\n");
    if (n >= cap) n = cap - 1;
    memcpy(buf, v, n);
    buf[n] = '\0';
}

void ts_cpu_model_name(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512], implementer[64] = "", part[64] = "";
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0 || strncmp(line, "Hardware", 8) == 0) {
            cpuinfo_value(line, buf, cap);
            found = true;
        } else if (strncmp(line, "CPU implementer", 15) == 0 && !implementer[0]) {
            cpuinfo_value(line, implementer, sizeof implementer);
        } else if (strncmp(line, "CPU part", 8) == 0 && !part[0]) {
            cpuinfo_value(line, part, sizeof part);
        }
    }
    fclose(f);
    if (!found && implementer[0]) snprintf(buf, cap, "ARM implementer %s part %s", implementer, part);
}
