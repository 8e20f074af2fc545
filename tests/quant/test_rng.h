/* The random numbers the quant tests share: xorshift64* with local state (deterministic per test,
 * no global state), uniform and normal floats, and "structured" values with zeros and outliers
 * sprinkled in. Header-only; each test is its own executable. */
#ifndef TS_TESTS_QUANT_TEST_RNG_H
#define TS_TESTS_QUANT_TEST_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct { uint64_t s; } rng;

static inline uint64_t rng_next(rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

/* [0, 1) */
static inline float rng_unit(rng *r) { return (float)((rng_next(r) >> 40) * (1.0 / 16777216.0)); }
/* [-1, 1) */
static inline float rng_signed(rng *r) { return rng_unit(r) * 2.0f - 1.0f; }

/* Standard normal (Box-Muller). */
static inline float rng_gauss(rng *r) {
    float u1 = rng_unit(r), u2 = rng_unit(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.f * logf(u1)) * cosf(6.2831853f * u2);
}

/* n values of about `scale`: one in 64 is 0, one in 64 an outlier 40 times larger. */
static inline void fill_values(rng *r, float *x, int n, float scale) {
    for (int i = 0; i < n; i++) {
        const uint64_t k = rng_next(r) % 64;
        if (k == 0) x[i] = 0.0f;
        else if (k == 1) x[i] = 40.0f * scale * rng_signed(r);
        else x[i] = scale * rng_signed(r);
    }
}

#endif
