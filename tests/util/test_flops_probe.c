/* The peak-FMA probe: every vector kernel compiled in and supported here against the scalar
 * reference (bit-exact: with a power-of-two multiplier fused and unfused steps round the same, and
 * the chosen starts keep every value exactly representable), the flop accounting, and a short
 * real measurement that must report a positive, finite rate on the kernel the CPU supports. */
#include <math.h>
#include <stdio.h>

#include "util/flops_probe.h"

static int failures;

static void check_kernel(enum ts_isa isa) {
    const int lanes = ts_fma_probe_lanes(isa);
    /* Steps 0, 1, 3 and 17: start values only, then partial convergence (distinct per chain, so a
     * kernel that mixed up chains or dropped one would differ). */
    const long steps[] = {0, 1, 3, 17};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        const double want = ts_fma_chains_scalar(steps[i], 3.0f, 0.75f, 0.5f, 1.0f) * lanes;
        const double got = ts_fma_chains(isa, steps[i], 3.0f, 0.75f, 0.5f, 1.0f);
        if (got != want) {
            fprintf(stderr, "FAIL %s, %ld steps: sum %.9g, scalar reference x %d lanes %.9g\n",
                    ts_fma_probe_isa_name(isa), steps[i], got, lanes, want);
            failures++;
        }
    }
    /* The reference itself, by hand: 0 steps = sum of the starts; 1 step halves each and adds 1. */
    double starts = 0, one = 0;
    for (int j = 0; j < TS_FMA_CHAINS; j++) {
        starts += 3.0 + 0.75 * j;
        one += (3.0 + 0.75 * j) * 0.5 + 1.0;
    }
    if (ts_fma_chains_scalar(0, 3.0f, 0.75f, 0.5f, 1.0f) != starts || ts_fma_chains_scalar(1, 3.0f, 0.75f, 0.5f, 1.0f) != one) {
        fprintf(stderr, "FAIL scalar reference differs from the hand count\n");
        failures++;
    }
    printf("ok kernel %s (%d lanes)\n", ts_fma_probe_isa_name(isa), lanes);
}

int main(void) {
    const enum ts_isa isas[] = {TS_ISA_SCALAR, TS_ISA_AVX2, TS_ISA_AVX512, TS_ISA_NEON};
    int tested = 0;
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        const enum ts_isa isa = isas[i];
        if (isa != TS_ISA_SCALAR && (ts_fma_probe_lanes(isa) == 1 || !ts_isa_supported(isa))) continue;
        /* AVX-512 is chosen on AVX-512F alone; only test it where the probe would pick it. */
        if (isa == TS_ISA_AVX512 && ts_fma_probe_isa() != TS_ISA_AVX512) continue;
        check_kernel(isa);
        tested++;
    }
    const enum ts_isa best = ts_fma_probe_isa();
    if (best != TS_ISA_SCALAR && ts_fma_probe_lanes(best) == 1) {
        fprintf(stderr, "FAIL probe picks %s but it has no kernel\n", ts_fma_probe_isa_name(best));
        failures++;
    }

    ts_flops_result r;
    ts_err err = {""};
    if (ts_flops_measure(2, 0.02, 2, &r, &err) != 0) {
        fprintf(stderr, "FAIL measure: %s\n", err.msg);
        failures++;
    } else if (!(r.best_gflops > 0 && isfinite(r.best_gflops) && r.mean_gflops <= r.best_gflops * (1 + 1e-12) &&
                 r.isa == best && r.n_threads == 2 && r.passes == 2 && r.iters > 0)) {
        fprintf(stderr, "FAIL measure: best %g mean %g GFLOP/s, isa %s, %d threads\n", r.best_gflops, r.mean_gflops,
                ts_fma_probe_isa_name(r.isa), r.n_threads);
        failures++;
    } else {
        printf("ok measure: %.2f GFLOP/s peak with 2 threads (%s)\n", r.best_gflops, ts_fma_probe_isa_name(r.isa));
    }
    if (ts_flops_measure(0, 0.02, 2, &r, &err) == 0 || ts_flops_measure(1, 0.02, 0, &r, &err) == 0 ||
        ts_flops_measure(1, 0, 1, &r, &err) == 0) {
        fprintf(stderr, "FAIL measure accepted bad arguments\n");
        failures++;
    }
    if (failures) return 1;
    printf("flops_probe: %d kernels match the scalar reference\n", tested);
    return 0;
}
