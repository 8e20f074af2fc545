/* Shares of a decode product (one to a few tokens) that finished threads can take from.
 *
 * Decoding streams each thread's contiguous share of a matrix's rows, which the memory system
 * serves best as one long read. With fixed shares the threads of a V2-Lite or R1-Distill-Qwen-1.5B
 * decode product finished 11-17 µs apart on average (of ~100 µs per product, two threads), one
 * core idle meanwhile. Here a thread takes its own share from the front in shrinking pieces (three
 * quarters of what is left, so a share is still a few long reads), and once it is empty takes half
 * of what is left at the back of another thread's share. Front and back live in one word, so the
 * owner and a taker never both get a unit. Who computes a unit never changes its result. */
#ifndef TS_OPS_WORK_SHARE_H
#define TS_OPS_WORK_SHARE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Units [front, back) of one share not yet taken; front in the low half. On a cache line of its
 * own: its owner updates it as it goes. */
typedef struct ts_share_range {
    _Alignas(64) _Atomic uint64_t front_back;
} ts_share_range;

/* Shares count units in 32 bits. */
#define TS_SHARE_MAX_UNITS ((long)UINT32_MAX)

static inline uint64_t ts_share_pack(long front, long back) { return (uint64_t)front | (uint64_t)back << 32; }

/* 0 <= begin <= end <= TS_SHARE_MAX_UNITS. */
static inline void ts_share_init(ts_share_range *r, long begin, long end) {
    atomic_init(&r->front_back, ts_share_pack(begin, end));
}

/* Takes units [*begin, *end) from the front of r (owner) or from its back (another thread);
 * false when r is empty. */
static inline bool ts_share_take(ts_share_range *r, bool owner, long *begin, long *end) {
    uint64_t v = atomic_load_explicit(&r->front_back, memory_order_relaxed);
    for (;;) {
        const long front = (long)(uint32_t)v, back = (long)(v >> 32), left = back - front;
        if (left <= 0) return false;
        long n = owner ? left - left / 4 : left / 2;
        if (n < 1) n = 1;
        const uint64_t next = owner ? ts_share_pack(front + n, back) : ts_share_pack(front, back - n);
        /* Relaxed: the word only splits the units; the results are published by the pool's barrier. */
        if (atomic_compare_exchange_weak_explicit(&r->front_back, &v, next, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *begin = owner ? front : back - n;
            *end = owner ? front + n : back;
            return true;
        }
    }
}

#endif
