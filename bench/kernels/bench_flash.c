/* Decode attention over a long latent cache, as DeepSeek-V2-Lite's MLA computes it at a given depth:
 * 16 query heads against 27 layers x DEPTH cached rows of 576 f16 values (the value is each row's
 * first 512), the chunks of each layer split across THREADS threads (flash-decoding) as deepseek2.c
 * does. Compares, in one run and alternating, the head-major AVX-512 kernels (widen four rows,
 * four heads x four rows, value sums read-modify-written in memory) with ts_flash_chunk, which
 * picks the position-major kernels for this head count. Reports ms per token (all 27 layers) and
 * GFLOP/s; the cache (255 MB at depth 8192) comes from memory, not from the caches.
 *
 * Not a test: build by hand against a release build of the library, e.g.
 *   gcc -std=c17 -O2 -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c -Isrc -Iinclude \
 *       bench/kernels/bench_flash.c build/libtiefsee.a -lm -lpthread \
 *       $(pkg-config --libs jansson libpcre2-8 libutf8proc) -o /tmp/bench_flash
 *   /tmp/bench_flash [depth, default 8192] [rounds, default 6] [score scale, default 0.0625] [avx512|avx2]
 * The last argument picks the kernels of an ISA (both variants): AVX-512 (default; needs such a CPU)
 * or AVX2, as ts_flash_chunk runs on a CPU without AVX-512. */
#define _DEFAULT_SOURCE
#define TS_HAVE_AVX512_KERNELS 1 /* the library is built with them on x86-64: declare them */
#define TS_HAVE_AVX2_KERNELS 1
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "ops/attn_flash.h"
#include "quant/types.h"
#include "util/alloc.h"
#include "util/fp16.h"
#include "util/clock.h"

enum { HEADS = 16, K_WIDTH = 576, V_WIDTH = 512, LAYERS = 27, THREADS = 2 };

typedef struct bench {
    int depth, variant; /* 0: head-major kernels, 1: ts_flash_chunk */
    int level;          /* ts_flash_simd_level: 2 AVX-512, 1 AVX2 */
    float scale;
    ts_f16 *cache[LAYERS];
    float *q, *partials;
    const ts_type_traits *table;
    pthread_barrier_t start, done;
    int stop;
} bench;

static double now_s(void) { return ts_monotonic_seconds(); }

/* The chunk as ts_flash_chunk computed it before the position-major kernels. */
static void chunk_head_major(const ts_flash_args *a, int t0, int t1, float *partial, float *work) {
    const int n = t1 - t0;
    const bool avx2 = a->simd == 1;
    float *scores = work, *rows = work + ts_flash_round16((size_t)HEADS * TS_FLASH_CHUNK);
    (avx2 ? ts_flash_scores_avx2 : ts_flash_scores_avx512)(a, t0, t1, scores, rows);
    for (int h = 0; h < HEADS; h++) {
        float *s = scores + (size_t)h * TS_FLASH_CHUNK, mx = -INFINITY;
        for (int t = 0; t < n; t++) mx = s[t] > mx ? s[t] : mx;
        partial[h] = mx;
        partial[HEADS + h] = (float)(avx2 ? ts_flash_exp_row_avx2 : ts_flash_exp_row_avx512)(s, n, mx);
    }
    memset(partial + 2 * HEADS, 0, (size_t)HEADS * V_WIDTH * sizeof(float));
    (avx2 ? ts_flash_values_avx2 : ts_flash_values_avx512)(a, t0, t1, scores, partial + 2 * HEADS, rows);
}

static void *worker(void *arg) {
    bench *b = arg;
    static int next_id;
    const int ith = __atomic_fetch_add(&next_id, 1, __ATOMIC_SEQ_CST);
    float *work = ts_alloc_floats(1, ts_flash_work_floats(HEADS, K_WIDTH, V_WIDTH));
    const int n_chunks = ts_flash_n_chunks(b->depth);
    const size_t partial = ts_flash_partial_floats(HEADS, V_WIDTH);
    for (;;) {
        pthread_barrier_wait(&b->start);
        if (b->stop) break;
        for (int l = 0; l < LAYERS; l++) {
            const ts_flash_args a = {.table = b->table, .kv_type = TS_TYPE_F16, .n_head = HEADS, .q = b->q,
                                     .q_stride = K_WIDTH, .k = (const char *)b->cache[l], .k_row_bytes = 2 * K_WIDTH,
                                     .k_width = K_WIDTH, .v = (const char *)b->cache[l], .v_row_bytes = 2 * K_WIDTH,
                                     .v_width = V_WIDTH, .scale = b->scale, .simd = b->level};
            for (int c = ith * n_chunks / THREADS; c < (ith + 1) * n_chunks / THREADS; c++) {
                const int t0 = c * TS_FLASH_CHUNK, t1 = t0 + TS_FLASH_CHUNK < b->depth ? t0 + TS_FLASH_CHUNK : b->depth;
                float *p = b->partials + (size_t)c * partial;
                if (b->variant == 0)
                    chunk_head_major(&a, t0, t1, p, work);
                else
                    ts_flash_chunk(&a, t0, t1, p, work);
            }
        }
        pthread_barrier_wait(&b->done);
    }
    free(work);
    return NULL;
}

int main(int argc, char **argv) {
    bench b = {.depth = argc > 1 ? atoi(argv[1]) : 8192};
    const int rounds = argc > 2 ? atoi(argv[2]) : 6;
    b.scale = argc > 3 ? (float)atof(argv[3]) : 0.0625f;
    b.level = argc > 4 && strcmp(argv[4], "avx2") == 0 ? 1 : 2;
    if (b.depth < 1 || b.depth > 1 << 20 || rounds < 1) {
        fprintf(stderr, "usage: bench_flash [depth 1..1048576] [rounds >= 1]\n");
        return 2;
    }
    const enum ts_isa isa = b.level == 2 ? TS_ISA_AVX512 : TS_ISA_AVX2;
    if (!ts_isa_supported(isa)) {
        fprintf(stderr, "bench_flash: this CPU has no %s\n", ts_isa_name(isa));
        return 1;
    }
    b.table = ts_type_table(isa);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int l = 0; l < LAYERS; l++) {
        b.cache[l] = (ts_f16 *)(void *)ts_alloc_floats((size_t)b.depth, K_WIDTH / 2);
        if (!b.cache[l]) return 1;
        /* huge pages where the kernel allows, as the engine's KV cache (context.c) */
        const uintptr_t first = (uintptr_t)b.cache[l] & ~(uintptr_t)4095; /* madvise wants a page boundary */
        (void)madvise((void *)first, (uintptr_t)b.cache[l] + (size_t)b.depth * K_WIDTH * 2 - first, MADV_HUGEPAGE);
        for (size_t i = 0; i < (size_t)b.depth * K_WIDTH; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            b.cache[l][i] = ts_f32_to_f16((float)((int)(seed >> 40) % 2001 - 1000) * 0.001f);
        }
    }
    b.q = ts_alloc_floats(HEADS, K_WIDTH);
    for (int i = 0; i < HEADS * K_WIDTH; i++) b.q[i] = (float)((i * 7919) % 2001 - 1000) * 0.001f;
    b.partials = ts_alloc_floats((size_t)ts_flash_n_chunks(b.depth), ts_flash_partial_floats(HEADS, V_WIDTH));
    pthread_barrier_init(&b.start, NULL, THREADS + 1);
    pthread_barrier_init(&b.done, NULL, THREADS + 1);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, worker, &b);
    const double flop = 2.0 * HEADS * (double)b.depth * (K_WIDTH + V_WIDTH) * LAYERS;
    double best[2] = {1e30, 1e30};
    printf("%s kernels, depth %d, %d heads, %d layers, %d threads: ms per token (GFLOP/s)\n", ts_isa_name(isa), b.depth,
           HEADS, LAYERS, THREADS);
    for (int r = 0; r < rounds; r++) {
        for (int v = 0; v < 2; v++) {
            b.variant = v;
            const double t0 = now_s();
            pthread_barrier_wait(&b.start);
            pthread_barrier_wait(&b.done);
            const double dt = now_s() - t0;
            if (dt < best[v]) best[v] = dt;
            printf("%s%s %.2f (%.1f)", v ? "  " : "", v ? "position-major" : "head-major", 1e3 * dt, flop / dt / 1e9);
        }
        printf("\n");
    }
    printf("best: head-major %.2f ms, position-major %.2f ms: %.2fx\n", 1e3 * best[0], 1e3 * best[1], best[0] / best[1]);
    b.stop = 1;
    pthread_barrier_wait(&b.start);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    return 0;
}
