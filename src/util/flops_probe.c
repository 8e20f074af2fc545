/* Peak F32 FMA throughput probe (see flops_probe.h). */
#include "util/flops_probe.h"

#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "util/threadpool.h"

#define FLOPS_MAX_THREADS 1024

/* The scalar reference and fallback: plain C, so it also checks the vector kernels in tests. The
 * compiler may vectorize it; the flop count is the same either way. */
double ts_fma_chains_scalar(long n_iter, float start, float step, float mul, float add) {
    float acc[TS_FMA_CHAINS];
    for (int j = 0; j < TS_FMA_CHAINS; j++) acc[j] = start + (float)j * step;
    for (long i = 0; i < n_iter; i++)
        for (int j = 0; j < TS_FMA_CHAINS; j++) acc[j] = acc[j] * mul + add;
    double sum = 0;
    for (int j = 0; j < TS_FMA_CHAINS; j++) sum += acc[j];
    return sum;
}

enum ts_isa ts_fma_probe_isa(void) {
#if defined(TS_HAVE_AVX512_KERNELS) && defined(__x86_64__)
    /* AVX-512F alone is enough here (the quant kernels also need BW/VL/VNNI); ts_isa_supported
     * (AVX2) first makes sure of the OS-saved vector state and FMA. */
    __builtin_cpu_init();
    if (ts_isa_supported(TS_ISA_AVX2) && __builtin_cpu_supports("avx512f")) return TS_ISA_AVX512;
#endif
#if defined(TS_HAVE_AVX2_KERNELS)
    if (ts_isa_supported(TS_ISA_AVX2)) return TS_ISA_AVX2;
#endif
#if defined(TS_HAVE_NEON_KERNELS)
    if (ts_isa_supported(TS_ISA_NEON)) return TS_ISA_NEON;
#endif
    return TS_ISA_SCALAR;
}

const char *ts_fma_probe_isa_name(enum ts_isa isa) {
    switch (isa) {
    case TS_ISA_AVX512: return "avx512";
    case TS_ISA_AVX2: return "avx2";
    case TS_ISA_NEON: return "neon";
    default: return "scalar";
    }
}

int ts_fma_probe_lanes(enum ts_isa isa) {
    switch (isa) {
#if defined(TS_HAVE_AVX512_KERNELS)
    case TS_ISA_AVX512: return 16;
#endif
#if defined(TS_HAVE_AVX2_KERNELS)
    case TS_ISA_AVX2: return 8;
#endif
#if defined(TS_HAVE_NEON_KERNELS)
    case TS_ISA_NEON: return 4;
#endif
    default: return 1;
    }
}

double ts_fma_chains(enum ts_isa isa, long n_iter, float start, float step, float mul, float add) {
    switch (isa) {
#if defined(TS_HAVE_AVX512_KERNELS)
    case TS_ISA_AVX512: return ts_fma_chains_avx512(n_iter, start, step, mul, add);
#endif
#if defined(TS_HAVE_AVX2_KERNELS)
    case TS_ISA_AVX2: return ts_fma_chains_avx2(n_iter, start, step, mul, add);
#endif
#if defined(TS_HAVE_NEON_KERNELS)
    case TS_ISA_NEON: return ts_fma_chains_neon(n_iter, start, step, mul, add);
#endif
    default: return ts_fma_chains_scalar(n_iter, start, step, mul, add);
    }
}

typedef struct flops_task {
    enum ts_isa isa;
    long n_iter;
    /* Each thread's result, stored where the caller can see it, so no chain is dead code. */
    double sums[FLOPS_MAX_THREADS];
} flops_task;

static void flops_work(void *arg, int ith, int nth) {
    (void)nth;
    flops_task *t = arg;
    /* mul 0.5, add 1: the chains converge to 2 and stay there (no overflow, no denormals), and a
     * power-of-two multiplier makes fused and unfused results identical. */
    t->sums[ith] = ts_fma_chains(t->isa, t->n_iter, 1.0f + (float)ith, 0.25f, 0.5f, 1.0f);
}

static double flops_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double timed_pass(ts_threadpool *pool, flops_task *task) {
    const double t0 = flops_now();
    ts_threadpool_run(pool, flops_work, task);
    return flops_now() - t0;
}

enum ts_isa ts_fma_probe_isa_for(enum ts_isa isa) {
    const enum ts_isa best = ts_fma_probe_isa();
    if (isa == best || isa == TS_ISA_SCALAR) return isa;
    /* AVX-VNNI adds no float instructions: its FMA peak is AVX2's */
    if (isa == TS_ISA_AVXVNNI && ts_isa_supported(TS_ISA_AVX2)) isa = TS_ISA_AVX2;
    if (isa == best) return isa;
    if (best == TS_ISA_AVX512 && isa == TS_ISA_AVX2) return isa;
    return best;
}

int ts_flops_measure(int n_threads, double pass_seconds, int passes, ts_flops_result *out, ts_err *err) {
    return ts_flops_measure_isa(ts_fma_probe_isa(), n_threads, pass_seconds, passes, out, err);
}

int ts_flops_measure_isa(enum ts_isa isa, int n_threads, double pass_seconds, int passes, ts_flops_result *out,
                         ts_err *err) {
    if (n_threads < 1 || n_threads > FLOPS_MAX_THREADS)
        return ts_fail(err, "FMA peak probe: thread count %d out of range 1..%d", n_threads, FLOPS_MAX_THREADS);
    if (passes < 1) return ts_fail(err, "FMA peak probe: at least one pass is needed");
    if (!(pass_seconds > 0 && pass_seconds < 3600)) return ts_fail(err, "FMA peak probe: pass length out of range");
    flops_task *task = calloc(1, sizeof *task);
    if (!task) return ts_fail(err, "FMA peak probe: out of memory");
    ts_threadpool *pool = NULL;
    if (ts_threadpool_new(n_threads, &pool, err) != 0) {
        free(task);
        return -1;
    }
    task->isa = ts_fma_probe_isa_for(isa);
    /* Calibrate: double the steps until a pass takes a quarter of the target (this also warms the
     * threads and lets the clock ramp up), then scale to the target length. */
    task->n_iter = 1 << 12;
    const long max_iter = 1L << 30; /* fits a 32-bit long; ~1 s even at scalar speed */
    double s = timed_pass(pool, task);
    while (s < pass_seconds / 4 && task->n_iter < max_iter) {
        task->n_iter *= 2;
        s = timed_pass(pool, task);
    }
    if (s > 0) {
        const double scaled = (double)task->n_iter * pass_seconds / s;
        task->n_iter = scaled < 1 ? 1 : scaled > (double)max_iter ? max_iter : (long)scaled;
    }
    const double flops_per_pass =
        2.0 * (double)task->n_iter * TS_FMA_CHAINS * ts_fma_probe_lanes(task->isa) * (double)n_threads;
    double best = 0, sum = 0;
    for (int i = 0; i < passes; i++) {
        const double sec = timed_pass(pool, task);
        const double gflops = sec > 0 ? flops_per_pass / sec / 1e9 : 0;
        if (gflops > best) best = gflops;
        sum += gflops;
    }
    /* The chains converge to 2 on every lane: anything else means a kernel computed garbage. */
    bool sane = true;
    const double want = 2.0 * TS_FMA_CHAINS * ts_fma_probe_lanes(task->isa);
    for (int i = 0; i < n_threads; i++) sane &= task->sums[i] > 0.5 * want && task->sums[i] < 1.5 * want;
    *out = (ts_flops_result){.best_gflops = best, .mean_gflops = sum / passes, .passes = passes, .n_threads = n_threads,
                             .isa = task->isa, .iters = (uint64_t)task->n_iter};
    ts_threadpool_free(pool);
    free(task);
    if (!sane) return ts_fail(err, "FMA peak probe: kernel %s returned a wrong sum", ts_fma_probe_isa_name(out->isa));
    return 0;
}
