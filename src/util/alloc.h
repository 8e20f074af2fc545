/* Cache-line aligned float buffers for the kernels' scratch and activations. */
#ifndef TS_UTIL_ALLOC_H
#define TS_UTIL_ALLOC_H

#include <stdint.h>
#include <stdlib.h>

/* rows x cols floats starting on a 64-byte boundary (free with free()); NULL when out of memory or
 * when the size overflows. Rows that straddle cache lines cost the AVX-512 kernels ~10 %, and
 * malloc only promises 16-byte alignment. */
static inline float *ts_alloc_floats(size_t rows, size_t cols) {
    if (cols != 0 && rows > SIZE_MAX / sizeof(float) / cols) return NULL;
    size_t bytes = rows * cols * sizeof(float);
    if (bytes > SIZE_MAX - 63) return NULL;
    bytes = (bytes + 63) & ~(size_t)63; /* aligned_alloc wants a multiple of the alignment */
    return aligned_alloc(64, bytes ? bytes : 64);
}

#endif
