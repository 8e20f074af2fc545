/* Seconds on the monotonic clock (CLOCK_MONOTONIC: never steps back with wall-clock changes), as a
 * double: the one timer behind the engine's step profile, the server's rates, the CLI's and the
 * benchmarks' timings. */
#ifndef TS_UTIL_CLOCK_H
#define TS_UTIL_CLOCK_H

#include <time.h>

static inline double ts_monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
