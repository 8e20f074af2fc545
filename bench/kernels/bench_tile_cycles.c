/* Multiply-adds per core cycle of the repacked prefill tiles, with the weights in L2 (not memory):
 * what the arithmetic of a kernel costs, separated from the memory system. For each type (Q4_K,
 * Q6_K, Q8_0, Q4_0, Q5_0) it runs the ISA's repacked gemm on one 256 x 1536 matrix (221-417 KB: in L2) and a
 * batch of tokens, times it in the thread's CPU time (so that another process on the other core
 * does not count), and divides by the core clock, measured first with a chain of dependent integer
 * additions (one per cycle on every x86-64 core of the last decade). Not a ctest.
 *
 * Build by hand against a release build of the library, e.g.
 *   gcc -std=c17 -O2 -Isrc -Iinclude bench/kernels/bench_tile_cycles.c build/libtiefsee.a \
 *       $(pkg-config --libs jansson libpcre2-8 libutf8proc) -lm -lpthread -o /tmp/bench_tile_cycles
 *   /tmp/bench_tile_cycles [avx2|avxvnni|avx512] [tokens, default 16] [seconds per type, default 1]
 *
 * What to compare it with: an AVX2 vpmaddubsw does 32 multiply-adds, so a Q4_K tile, whose
 * products are one vpmaddubsw and one vpaddw per 32, has a bound of 64 per cycle from two multiply
 * ports, less the scales, the min term and the nibble unpacking (BENCHMARKS.md, "The AVX2 tiles
 * per cycle"). With AVX-VNNI one vpdpbusd does the 32 (BENCHMARKS.md, "AVX-VNNI tiles"). */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant/repack.h"
#include "quant/types.h"
#include "util/fp16.h"

#include "../../tests/quant/test_rng.h" /* the tests' xorshift64*, local state */

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Core clock in GHz: 8 dependent additions per loop iteration, the loop's own counter and branch
 * running beside them; best of three. */
static double core_ghz(void) {
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        const unsigned long n = 400000000UL;
        unsigned long x = 0;
        const double t0 = thread_cpu_s();
        for (unsigned long i = 0; i < n; i += 8)
#if defined(__x86_64__)
            __asm__ volatile("add $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\t"
                             "add $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0"
                             : "+r"(x));
#else
            __asm__ volatile("" : "+r"(x));
#endif
        const double ghz = (double)n / (thread_cpu_s() - t0) / 1e9;
        if (ghz > best) best = ghz;
    }
    return best;
}

/* Random file-layout rows made valid by quantizing random floats with the type's own quantizer. */
static void bench_type(enum ts_isa isa, int type, int n_tok, double seconds, double ghz) {
    rng r = {0x9E3779B97F4A7C15ULL};
    const int n = 1536, rows = 256, n_groups = rows / TS_REPACK_ROWS;
    const ts_repack_traits *rt = ts_repack_traits_for(isa, type);
    const ts_type_traits *tt = &ts_type_table(TS_ISA_SCALAR)[type];
    if (!rt || !tt->from_float) {
        printf("%-5s: no repacked %s kernel\n", ts_type_name(type), ts_isa_name(isa));
        return;
    }
    const size_t row_bytes = ts_row_size(type, n), group_bytes = ts_repack_group_bytes(type, n);
    uint8_t *file = malloc(row_bytes * rows), *packed = malloc(group_bytes * n_groups);
    float *f = malloc(sizeof(float) * n);
    for (int row = 0; row < rows; row++) {
        for (int i = 0; i < n; i++) f[i] = rng_signed(&r);
        tt->from_float(f, file + (size_t)row * row_bytes, n);
    }
    for (int g = 0; g < n_groups; g++)
        rt->repack(n, file + (size_t)g * TS_REPACK_ROWS * row_bytes, row_bytes, packed + (size_t)g * group_bytes);
    const int act_type = tt->vec_dot_type;
    const size_t act_stride = ts_row_size(act_type, n);
    uint8_t *acts = malloc(act_stride * (size_t)n_tok);
    for (int c = 0; c < n_tok; c++) {
        for (int i = 0; i < n; i++) f[i] = rng_signed(&r);
        ts_type_table(TS_ISA_SCALAR)[act_type].from_float(f, acts + (size_t)c * act_stride, n);
    }
    float *s = malloc(sizeof(float) * rows * (size_t)n_tok);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) { /* best of 3: the machine is shared */
        long calls = 0;
        const double t0 = thread_cpu_s();
        double t1 = t0;
        while (t1 - t0 < seconds / 3) {
            for (int k = 0; k < 16; k++) rt->gemm(n, n_groups, n_tok, s, rows, packed, acts, act_stride);
            calls += 16;
            t1 = thread_cpu_s();
        }
        const double gmacs = (double)n * rows * n_tok * (double)calls / (t1 - t0) / 1e9;
        if (gmacs > best) best = gmacs;
    }
    printf("%-5s %s, %d tokens, weights in L2: %6.1f GMAC/s = %5.1f multiply-adds per cycle\n", ts_type_name(type),
           ts_isa_name(isa), n_tok, best, best / ghz);
    free(file);
    free(packed);
    free(f);
    free(acts);
    free(s);
}

int main(int argc, char **argv) {
    const int named = argc > 1 ? ts_isa_from_name(argv[1]) : -1;
    const enum ts_isa isa = named > 0 ? (enum ts_isa)named : TS_ISA_AVX2;
    const int n_tok = argc > 2 ? atoi(argv[2]) : 16;
    const double seconds = argc > 3 ? atof(argv[3]) : 1.0;
    if (!ts_isa_supported(isa) || n_tok < 1) {
        printf("%s is not supported here (or bad token count)\n", ts_isa_name(isa));
        return 0;
    }
    const double ghz = core_ghz();
    printf("core clock (dependent additions): %.2f GHz\n", ghz);
    const int types[] = {TS_TYPE_Q4_K, TS_TYPE_Q6_K, TS_TYPE_Q8_0, TS_TYPE_Q4_0, TS_TYPE_Q5_0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) bench_type(isa, types[i], n_tok, seconds, ghz);
    return 0;
}
