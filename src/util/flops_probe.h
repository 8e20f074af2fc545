/* CPU arithmetic peak probe: the denominator of `tiefsee bench`'s attention-vs-peak figure.
 *
 * Attention over a long cache is arithmetic, not weight streaming, so its ceiling is the CPU's
 * F32 multiply-add rate. The probe measures it the way a well-written kernel would reach it:
 * n_threads threads each run TS_FMA_CHAINS independent chains acc = acc * mul + add in registers
 * (enough chains to cover FMA latency × FMA ports on current cores), on the widest vectors the CPU
 * has (AVX-512F, AVX2+FMA or NEON, chosen at run time; plain scalar C otherwise). No memory is
 * touched in the timed loop. A multiply-add counts 2 flops. */
#ifndef TS_UTIL_FLOPS_PROBE_H
#define TS_UTIL_FLOPS_PROBE_H

#include <stdint.h>

#include "quant/types.h"
#include "util/error.h"

/* Independent accumulators per thread: with 4-cycle FMA latency and 2 FMA ports, 8 chains keep a
 * core busy; 12 leaves margin for 5-cycle latencies and still fits the 16 AVX2 registers with the
 * two constants. */
#define TS_FMA_CHAINS 12

typedef struct ts_flops_result {
    double best_gflops; /* highest of the timed passes, 1e9 flops/s, all threads together */
    double mean_gflops;
    int passes;
    int n_threads;
    enum ts_isa isa; /* which kernel ran */
    uint64_t iters;  /* chain steps per thread per pass (calibrated to the pass length) */
} ts_flops_result;

/* The ISA whose kernel the probe uses on this CPU. */
enum ts_isa ts_fma_probe_isa(void);
/* "avx512", "avx2", "neon" or "scalar". */
const char *ts_fma_probe_isa_name(enum ts_isa isa);
/* F32 lanes per vector of that kernel (1 for scalar). */
int ts_fma_probe_lanes(enum ts_isa isa);

/* Runs n_iter steps of TS_FMA_CHAINS chains, chain j starting at start + j * step on every lane,
 * each step acc = acc * mul + add; returns the sum over all chains and lanes (so the work cannot
 * be dropped, and so tests can check a kernel against the scalar one). isa must be supported
 * (ts_isa_supported) and compiled in; otherwise the scalar kernel runs. Flops done:
 * 2 * n_iter * TS_FMA_CHAINS * ts_fma_probe_lanes(isa). */
double ts_fma_chains(enum ts_isa isa, long n_iter, float start, float step, float mul, float add);

/* Measures peak F32 FMA throughput with n_threads (1..1024) threads: calibrates the step count so
 * one pass takes about pass_seconds (> 0), then reports the best of `passes` (>= 1). Returns 0, or
 * -1 with err (bad arguments, thread creation). */
int ts_flops_measure(int n_threads, double pass_seconds, int passes, ts_flops_result *out, ts_err *err);
/* The same with the kernel of `isa` (one ts_fma_chains runs: scalar where it has none), e.g. the
 * peak of the AVX2 kernels on an AVX-512 CPU, for a model loaded with them. */
int ts_flops_measure_isa(enum ts_isa isa, int n_threads, double pass_seconds, int passes, ts_flops_result *out,
                         ts_err *err);
/* The probe's kernel for a model whose kernels are `isa`: that ISA, capped at ts_fma_probe_isa(). */
enum ts_isa ts_fma_probe_isa_for(enum ts_isa isa);

/* Per-ISA kernels (flops_probe_<isa>.c), same contract as ts_fma_chains for their ISA. */
double ts_fma_chains_scalar(long n_iter, float start, float step, float mul, float add);
double ts_fma_chains_avx2(long n_iter, float start, float step, float mul, float add);
double ts_fma_chains_avx512(long n_iter, float start, float step, float mul, float add);
double ts_fma_chains_neon(long n_iter, float start, float step, float mul, float add);

#endif
