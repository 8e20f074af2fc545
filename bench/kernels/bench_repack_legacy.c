/* Single-thread speed of the repacked Q4_0 / Q8_0 kernels against the file-layout tile kernels of
 * the same ISA (AVX-512 VNNI, and AVX2; the AVX-VNNI repacked kernels too where the CPU has them),
 * on the model shapes (DeepSeek-V2-Lite: expert 2048x1408 / 1408x2048, attention 2048x2048;
 * Qwen-1.5B: 1536x8960 / 8960x1536), for N = 1 and N = 8 tokens. Not a ctest.
 *
 * Build (after building the library in build-rplegacy):
 *   gcc -std=c17 -O2 -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma -mf16c -Isrc -Iinclude \
 *       bench/kernels/bench_repack_legacy.c build-rplegacy/libtiefsee.a $(pkg-config --libs jansson libpcre2-8 \
 *       libutf8proc) -lm -lpthread -o /tmp/bench_rpl
 *
 * Each measurement sweeps several copies of the matrix (~160 MB of weights in all, more than the
 * L3) so the weights really come from memory; GB/s = weight bytes streamed / time; the best of
 * several sweeps is reported (the machine is shared and noisy). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant/repack.h"
#include "quant/types.h"
#include "util/fp16.h"
#include "util/clock.h"

#define TOTAL_BYTES (160u << 20)

static double now_s(void) { return ts_monotonic_seconds(); }

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Random weight rows: random quant bytes with a valid small scale in every block. */
static void fill_rows(int type, uint8_t *w, size_t bytes, uint64_t *seed) {
    for (size_t i = 0; i < bytes; i += 8) {
        const uint64_t v = rng_next(seed);
        memcpy(w + i, &v, bytes - i < 8 ? bytes - i : 8);
    }
    const size_t block = ts_row_size(type, 32);
    for (size_t i = 0; i + block <= bytes; i += block) {
        const ts_f16 d = ts_f32_to_f16(0.001f + 0.001f * (float)(rng_next(seed) % 16));
        memcpy(w + i, &d, sizeof d);
    }
}

static void bench_shape(int type, int n, int rows) {
    const ts_type_traits *tt = ts_type_table(TS_ISA_AVX512);
    const ts_repack_traits *rt = ts_repack_traits_for(TS_ISA_AVX512, type);
    const size_t row_bytes = ts_row_size(type, n), mat_bytes = row_bytes * rows;
    const int copies = (int)(TOTAL_BYTES / mat_bytes) + 1, groups = rows / TS_REPACK_ROWS;
    const size_t act_bytes = ts_row_size(TS_TYPE_Q8_0, n);
    uint8_t *file = aligned_alloc(64, mat_bytes * copies), *packed = aligned_alloc(64, mat_bytes * copies);
    uint8_t *act = malloc(act_bytes * 8);
    float *s = malloc(sizeof(float) * rows * 8);
    float *xf = malloc(sizeof(float) * n);
    uint64_t seed = 0x12345678ull + (uint64_t)n;
    fill_rows(type, file, mat_bytes * copies, &seed);
    for (int m = 0; m < copies; m++)
        for (int g = 0; g < groups; g++)
            rt->repack(n, file + m * mat_bytes + g * TS_REPACK_ROWS * row_bytes, row_bytes,
                       packed + m * mat_bytes + g * ts_repack_group_bytes(type, n));
    for (int c = 0; c < 8; c++) {
        for (int i = 0; i < n; i++) xf[i] = (float)((int)(rng_next(&seed) % 2001) - 1000) * 0.001f;
        tt[TS_TYPE_Q8_0].from_float(xf, act + c * act_bytes, n);
    }
    const ts_type_traits *tt2 = ts_type_table(TS_ISA_AVX2);
    const ts_gemm_repacked_fn rp2 = type == TS_TYPE_Q4_0 ? ts_gemm_rp_q4_0_avx2 : ts_gemm_rp_q8_0_avx2;
    const ts_repack_traits *rtv = ts_repack_traits_for(TS_ISA_AVXVNNI, type); /* NULL without AVX-VNNI */
    const int token_counts[2] = {1, 8};
    for (int k = 0; k < 2; k++) {
        const int nt = token_counts[k];
        /* best time per matrix of: AVX-512 file layout, AVX-512 repacked, AVX2 file, AVX2 repacked,
         * AVX-VNNI repacked */
        double best[5] = {1e30, 1e30, 1e30, 1e30, 1e30};
        for (int rep = 0; rep < 5; rep++)
            for (int v = 0; v < (rtv ? 5 : 4); v++) {
                const double t0 = now_s();
                for (int m = 0; m < copies; m++) {
                    if (v == 0) tt[type].vec_dot_tile(n, rows, nt, s, rows, file + m * mat_bytes, row_bytes, act, act_bytes);
                    if (v == 1) rt->gemm(n, groups, nt, s, rows, packed + m * mat_bytes, act, act_bytes);
                    if (v == 2) tt2[type].vec_dot_tile(n, rows, nt, s, rows, file + m * mat_bytes, row_bytes, act, act_bytes);
                    if (v == 3) rp2(n, groups, nt, s, rows, packed + m * mat_bytes, act, act_bytes);
                    if (v == 4) rtv->gemm(n, groups, nt, s, rows, packed + m * mat_bytes, act, act_bytes);
                }
                const double t = (now_s() - t0) / copies;
                if (t < best[v]) best[v] = t;
            }
        printf("%-5s n=%5d rows=%5d N=%d  avx512: file %5.1f repacked %5.1f GB/s (%.2fx, %4.0f us)"
               "  avx2: file %5.1f repacked %5.1f GB/s (%.2fx)  avxvnni: repacked %5.1f GB/s\n",
               ts_type_name(type), n, rows, nt, mat_bytes / best[0] / 1e9, mat_bytes / best[1] / 1e9, best[0] / best[1],
               best[1] * 1e6, mat_bytes / best[2] / 1e9, mat_bytes / best[3] / 1e9, best[2] / best[3],
               rtv ? mat_bytes / best[4] / 1e9 : 0.0);
    }
    free(file), free(packed), free(act), free(s), free(xf);
}

int main(int argc, char **argv) {
    if (!ts_isa_supported(TS_ISA_AVX512) || !ts_repack_traits_for(TS_ISA_AVX512, TS_TYPE_Q4_0)) {
        fprintf(stderr, "needs AVX-512 VNNI\n");
        return 1;
    }
    const int only = argc > 1 ? ts_type_from_name(argv[1]) : -1;
    static const struct { int type, n, rows; } shapes[] = {
        {TS_TYPE_Q4_0, 2048, 1408}, {TS_TYPE_Q4_0, 1408, 2048}, {TS_TYPE_Q4_0, 2048, 2048},
        {TS_TYPE_Q8_0, 2048, 1408}, {TS_TYPE_Q8_0, 1408, 2048}, {TS_TYPE_Q8_0, 1536, 8960},
        {TS_TYPE_Q8_0, 8960, 1536},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (only < 0 || shapes[i].type == only) bench_shape(shapes[i].type, shapes[i].n, shapes[i].rows);
    return 0;
}
