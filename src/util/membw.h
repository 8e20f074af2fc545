/* Memory read-bandwidth probe: the denominator of the decode roofline in `tiefsee bench`.
 *
 * Token generation streams every active weight once per token, so its ceiling is
 * read bandwidth / active bytes per token. The probe measures that bandwidth the way the engine
 * reads weights: n_threads threads each stream a contiguous share of a buffer much larger than the
 * last-level cache (default 1 GiB), summing 64-bit words so the loads cannot be elided, with
 * 32-byte loads where the CPU has AVX2; the passes alternate between taking each share as two
 * interleaved streams (its halves, line by line in turn, as the decode kernels read two groups of
 * their share) and as one, and the best pass counts. The buffer is first written by the same
 * threads (pages land on their NUMA node, faults are not timed). */
#ifndef TS_UTIL_MEMBW_H
#define TS_UTIL_MEMBW_H

#include <stddef.h>

#include "util/error.h"

typedef struct ts_membw_result {
    double best_gbs;  /* highest of the timed passes, 1e9 bytes/s (least disturbed by other work) */
    double mean_gbs;  /* mean of the timed passes */
    int passes;       /* timed passes (one untimed warm-up pass precedes them) */
    size_t bytes;     /* buffer size actually read per pass */
    int n_threads;
} ts_membw_result;

/* Measures streaming read bandwidth with n_threads (>= 1) over a buffer of `bytes` (>= 1 MiB;
 * rounded down to an even count of 64-byte lines per thread), best of `passes` (>= 1). Returns 0, or -1 with
 * err (out of memory, thread creation). */
int ts_membw_measure(int n_threads, size_t bytes, int passes, ts_membw_result *out, ts_err *err);

/* The CPU's model name ("model name" in /proc/cpuinfo; on ARM the "Hardware" or implementer/part
 * line), or "unknown CPU". Always NUL-terminates buf (cap >= 1). */
void ts_cpu_model_name(char *buf, size_t cap);

#endif
