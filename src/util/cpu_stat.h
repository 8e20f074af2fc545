/* The CPU time the hypervisor took from this machine's vCPUs ("steal" in /proc/stat), for
 * `tiefsee bench`: on a shared VM other guests can take a quarter of the vCPUs' time for minutes
 * (BENCHMARKS.md, 2026-12-03), which halves every figure without showing in the load average. A
 * benchmark that reports it lets its reader tell a slow engine from a contended host. */
#ifndef TS_UTIL_CPU_STAT_H
#define TS_UTIL_CPU_STAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* The aggregate "cpu" line's counters, in clock ticks. */
typedef struct ts_cpu_times {
    uint64_t total; /* user + nice + system + idle + iowait + irq + softirq + steal */
    uint64_t steal;
} ts_cpu_times;

/* Parses the aggregate line at the start of /proc/stat text (len bytes, NUL not needed): "cpu"
 * and at least eight decimal counters (older kernels' lines without steal are refused: there is
 * nothing to report). Returns 0, or -1 with err naming what is wrong (no "cpu" line, a missing or
 * non-numeric field, a counter or the sum out of range). */
int ts_cpu_times_parse(const char *text, size_t len, ts_cpu_times *out, ts_err *err);

/* Reads /proc/stat now. Returns false where it cannot (not Linux, unreadable, unexpected form). */
bool ts_cpu_times_now(ts_cpu_times *out);

/* The share of the CPU time between two readings that was stolen, in [0, 1], or -1 if it cannot
 * be told (no time passed, or a counter went back). */
double ts_cpu_steal_fraction(const ts_cpu_times *before, const ts_cpu_times *after);

#endif
