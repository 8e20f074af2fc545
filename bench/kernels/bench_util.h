/* What the programs of bench/kernels share: a clock and random weights on huge pages. An including
 * file defines _DEFAULT_SOURCE before its first include (MADV_HUGEPAGE). */
#ifndef TS_BENCH_KERNELS_UTIL_H
#define TS_BENCH_KERNELS_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "util/clock.h"

static inline double bench_now_s(void) { return ts_monotonic_seconds(); }

/* xorshift64: enough randomness for weights whose values do not matter, only their speed. */
static inline uint64_t bench_next_random(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* `bytes` of random bytes on huge pages where the system gives them; every byte in 0x10-0x3f, so
 * any two of them read as an f16 scale make a finite, normal number. Exits on failure. */
static inline char *bench_random_weights(size_t bytes, uint64_t *seed) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    (void)madvise(p, bytes, MADV_HUGEPAGE);
    uint64_t *q = p;
    for (size_t i = 0; i < bytes / 8; i++) q[i] = (bench_next_random(seed) & 0x3f3f3f3f3f3f3f3full) | 0x1010101010101010ull;
    return p;
}

#endif
