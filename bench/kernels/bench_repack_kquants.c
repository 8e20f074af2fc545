/* Single-thread throughput of the repacked Q4_K / Q6_K kernels (repack_kquants*.c) against the
 * file-layout tile kernels of the same ISA (AVX-512 by default; `avx2` as the second argument
 * measures the AVX2 kernels, which is what an AVX2-only CPU of the same core would run), on the matrix shapes of Qwen2.5-1.5B and DeepSeek-V2-Lite
 * Q4_K_M, for 1, 4, 8 and 16 tokens (a server step's batch). Reports GB/s of weight bytes streamed per call (file-layout bytes
 * for both, so the numbers compare time directly) and the ratio.
 *
 * Not a test: build by hand against a release build of the library, e.g.
 *   gcc -std=c17 -O2 -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma -mf16c -Isrc -Iinclude \
 *       bench/kernels/bench_repack_kquants.c build-rpkquants/libtiefsee.a -lm -lpthread \
 *       $(pkg-config --libs jansson libpcre2-8 libutf8proc) -o /tmp/bench_repack_kquants
 *   /tmp/bench_repack_kquants [seconds per measurement, default 0.3] [avx512|avx2]
 * Each matrix is replicated until the copies exceed 256 MiB and calls rotate among them, so the
 * weights come from memory, not from the last-level cache. */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant/repack.h"
#include "quant/repack_kquants.h"
#include "quant/types.h"
#include "util/fp16.h"
#include "util/clock.h"

static double now_s(void) { return ts_monotonic_seconds(); }

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

/* Random file blocks (any bytes are valid quants/scales) with sane fp16 d/dmin. */
static void fill_weights(int type, uint8_t *w, size_t bytes) {
    const size_t bs = ts_type_table(TS_ISA_SCALAR)[type].type_size;
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        const uint64_t v = rng_next();
        memcpy(w + i, &v, 8);
    }
    for (size_t off = 0; off + bs <= bytes; off += bs) {
        const ts_f16 d = ts_f32_to_f16(0.001f), dmin = ts_f32_to_f16(0.0005f);
        if (type == TS_TYPE_Q4_K) {
            block_q4_K *b = (block_q4_K *)(w + off);
            b->d = d;
            b->dmin = dmin;
        } else {
            ((block_q6_K *)(w + off))->d = d;
        }
    }
}

typedef struct {
    const char *what;
    int type, n, rows;
} shape;

static void bench_shape(const shape *sh, double seconds, enum ts_isa isa) {
    const int n = sh->n, rows = sh->rows, n_groups = rows / TS_REPACK_ROWS;
    const size_t row_bytes = ts_row_size(sh->type, n);
    const size_t mat_bytes = row_bytes * (size_t)rows;
    const size_t group_bytes = ts_repack_group_bytes(sh->type, n);
    int copies = (int)((256u << 20) / mat_bytes) + 1;
    if (copies > 64) copies = 64;
    uint8_t *file = malloc(mat_bytes * (size_t)copies);
    uint8_t *packed = malloc(group_bytes * (size_t)n_groups * (size_t)copies);
    fill_weights(sh->type, file, mat_bytes * (size_t)copies);
    const ts_repack_traits *rt = ts_repack_traits_for(isa, sh->type);
    const ts_type_traits *tt = &ts_type_table(isa)[sh->type];
    for (int k = 0; k < copies; k++)
        for (int g = 0; g < n_groups; g++)
            rt->repack(n, file + (size_t)k * mat_bytes + (size_t)g * TS_REPACK_ROWS * row_bytes, row_bytes,
                       packed + ((size_t)k * n_groups + (size_t)g) * group_bytes);
    const int max_tokens = 16;
    const size_t act_stride = sizeof(block_q8_K) * (size_t)(n / QK_K);
    block_q8_K *acts = malloc(act_stride * max_tokens);
    float *f = malloc(sizeof(float) * (size_t)n);
    for (int c = 0; c < max_tokens; c++) {
        for (int i = 0; i < n; i++) f[i] = (float)((int64_t)(rng_next() % 2001) - 1000) * 1e-3f;
        ts_type_table(TS_ISA_SCALAR)[TS_TYPE_Q8_K].from_float(f, (char *)acts + (size_t)c * act_stride, n);
    }
    float *s = malloc(sizeof(float) * (size_t)rows * max_tokens);
    const int ntoks[4] = {1, 4, 8, 16};
    for (int ti = 0; ti < 4; ti++) {
        const int nt = ntoks[ti];
        double gbs[2];
        for (int kind = 0; kind < 2; kind++) {
            double best = 0;
            for (int rep = 0; rep < 3; rep++) { /* best of 3: the machine is shared and noisy */
                int calls = 0;
                const double t0 = now_s();
                double t1 = t0;
                while (t1 - t0 < seconds / 3) {
                    const int k = calls % copies;
                    if (kind == 0)
                        tt->vec_dot_tile(n, rows, nt, s, (size_t)rows, file + (size_t)k * mat_bytes, row_bytes, acts, act_stride);
                    else
                        rt->gemm(n, n_groups, nt, s, (size_t)rows, packed + (size_t)k * n_groups * group_bytes, acts, act_stride);
                    calls++;
                    t1 = now_s();
                }
                const double rate = (double)mat_bytes * calls / (t1 - t0) / 1e9;
                if (rate > best) best = rate;
            }
            gbs[kind] = best;
        }
        printf("%-5s %-28s n=%5d rows=%6d N=%2d: file-layout %6.2f GB/s  repacked %6.2f GB/s  x%.2f\n",
               ts_type_name(sh->type), sh->what, n, rows, nt, gbs[0], gbs[1], gbs[1] / gbs[0]);
        fflush(stdout);
    }
    free(file);
    free(packed);
    free(acts);
    free(f);
    free(s);
}

int main(int argc, char **argv) {
    const double seconds = argc > 1 ? atof(argv[1]) : 0.3;
    const enum ts_isa isa = argc > 2 && strcmp(argv[2], "avx2") == 0 ? TS_ISA_AVX2 : TS_ISA_AVX512;
    if (!ts_isa_supported(isa) || !ts_repack_traits_for(isa, TS_TYPE_Q4_K) || !ts_repack_traits_for(isa, TS_TYPE_Q6_K)) {
        printf("%s repacked K-quant kernels not available on this CPU/build\n", ts_isa_name(isa));
        return 0;
    }
    const shape shapes[] = {
        {"qwen1.5b attn/ffn_up 1536x8960", TS_TYPE_Q4_K, 1536, 8960},
        {"qwen1.5b ffn_down 8960x1536", TS_TYPE_Q4_K, 8960, 1536},
        {"qwen1.5b attn_q/o 1536x1536", TS_TYPE_Q4_K, 1536, 1536},
        {"qwen1.5b attn_k/v 1536x256", TS_TYPE_Q4_K, 1536, 256},
        {"v2-lite ffn 2048x10944", TS_TYPE_Q4_K, 2048, 10944},
        {"v2-lite expert 2048x1408", TS_TYPE_Q4_K, 2048, 1408},
        {"qwen1.5b output 1536x151936", TS_TYPE_Q6_K, 1536, 151936},
        {"qwen1.5b ffn_down 8960x1536", TS_TYPE_Q6_K, 8960, 1536},
        {"v2-lite ffn 2048x10944", TS_TYPE_Q6_K, 2048, 10944},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) bench_shape(&shapes[i], seconds, isa);
    return 0;
}
