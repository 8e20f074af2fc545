/* Decoding's MoE weight reads without the rest of the engine: DeepSeek-V2-Lite's Q4_0 expert
 * shapes (26 layers x 64 experts of gate/up 2048 -> 1408 and down 1408 -> 2048, plus the two
 * shared experts, repacked for this CPU's kernels, 8.3 GB on huge pages), and per token, per layer,
 * six random experts' gate and up products with the shared ones in one ts_matmul_many, then their
 * down products in a second, as the model calls them (ops/moe.c). Prints the GB/s of weights
 * streamed per pass of 20 tokens. Not a ctest; for BENCHMARKS.md, "The first run after the probe".
 *
 *   bench_moe_stream [THREADS [PASSES [FORK_BEFORE_PASS...]]]
 *
 * FORK_BEFORE_PASS: fork a child that exits at once before that pass (1-based), as the bench's
 * bandwidth probe once did; on a PVM guest the pass after the first fork ran at a third of the
 * speed. The weights are random bytes (every scale a finite half): only the speed is of interest.
 *
 * Built with the project (x86-64) as build/bench/bench_moe_stream; by hand:
 *   gcc -std=c17 -O2 -Isrc -Iinclude bench/kernels/bench_moe_stream.c build/libtiefsee.a \
 *       $(pkg-config --libs jansson libpcre2-8 libutf8proc) -lm -lpthread -o /tmp/bench_moe_stream */
#define _DEFAULT_SOURCE /* MADV_HUGEPAGE */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ops/ops.h"
#include "quant/repack.h"
#include "quant/types.h"
#include "util/error.h"
#include "util/threadpool.h"

#include "bench_util.h"

enum { LAYERS = 26, EXPERTS = 64, USED = 6, EMBD = 2048, FF = 1408, FF_SHARED = 2816, TOKENS = 20 };

/* Product m of a ts_matmul_many call: W (n_out x n_in, rows row_bytes long) times act. */
static void set_item(ts_matrix *mats, ts_matmul_item *items, float *out, const ts_repack_traits *rt, int m,
                     const char *w, int n_in, int n_out, size_t row_bytes, ts_act act) {
    mats[m] = (ts_matrix){.data = w, .type = TS_TYPE_Q4_0, .n_in = n_in, .n_out = n_out, .row_bytes = row_bytes, .repack = rt};
    items[m] = (ts_matmul_item){.w = &mats[m], .act = act, .out = out + (size_t)m * 4096, .out_stride = n_out};
}

int main(int argc, char **argv) {
    const int n_threads = argc > 1 ? atoi(argv[1]) : 2, passes = argc > 2 ? atoi(argv[2]) : 8;
    const int type = TS_TYPE_Q4_0;
    const enum ts_isa isa = ts_isa_best();
    const ts_type_traits *table = ts_type_table(isa);
    const ts_repack_traits *rt = ts_repack_traits_for(isa, type);
    ts_err err;
    ts_threadpool *pool;
    if (!rt || n_threads < 1 || passes < 1 || ts_threadpool_new(n_threads, &pool, &err) != 0) {
        fprintf(stderr, "usage: bench_moe_stream [THREADS [PASSES [FORK_BEFORE_PASS...]]] (needs repacked Q4_0 kernels)\n");
        return 2;
    }
    const size_t up_row = ts_row_size(type, EMBD), down_row = ts_row_size(type, FF), sdown_row = ts_row_size(type, FF_SHARED);
    const size_t up_bytes = up_row * FF, down_bytes = down_row * EMBD, sup_bytes = up_row * FF_SHARED,
                 sdown_bytes = sdown_row * EMBD;
    uint64_t seed = 88172645463325252ull;
    char *gate[LAYERS], *up[LAYERS], *down[LAYERS], *sgate[LAYERS], *sup[LAYERS], *sdown[LAYERS];
    for (int l = 0; l < LAYERS; l++) {
        gate[l] = bench_random_weights(up_bytes * EXPERTS, &seed);
        up[l] = bench_random_weights(up_bytes * EXPERTS, &seed);
        down[l] = bench_random_weights(down_bytes * EXPERTS, &seed);
        sgate[l] = bench_random_weights(sup_bytes, &seed);
        sup[l] = bench_random_weights(sup_bytes, &seed);
        sdown[l] = bench_random_weights(sdown_bytes, &seed);
    }
    char *x = bench_random_weights(ts_row_size(TS_TYPE_Q8_0, EMBD), &seed), *h = bench_random_weights(ts_row_size(TS_TYPE_Q8_0, FF_SHARED), &seed);
    float *out = calloc(32 * 4096, sizeof(float));
    const ts_act in = {.data = x, .type = TS_TYPE_Q8_0, .row_bytes = ts_row_size(TS_TYPE_Q8_0, EMBD), .n_rows = 1};
    const ts_act hid = {.data = h, .type = TS_TYPE_Q8_0, .row_bytes = ts_row_size(TS_TYPE_Q8_0, FF), .n_rows = 1};
    const ts_act shid = {.data = h, .type = TS_TYPE_Q8_0, .row_bytes = ts_row_size(TS_TYPE_Q8_0, FF_SHARED), .n_rows = 1};
    ts_matrix mats[16];
    ts_matmul_item items[16];
    const size_t bytes_per_token = (size_t)LAYERS * (USED * (2 * up_bytes + down_bytes) + 2 * sup_bytes + sdown_bytes);
    for (int pass = 1; pass <= passes; pass++) {
        int forked = 0;
        for (int a = 3; a < argc; a++) forked |= atoi(argv[a]) == pass;
        if (forked) {
            const pid_t pid = fork();
            if (pid == 0) _exit(0);
            if (pid > 0) waitpid(pid, NULL, 0);
        }
        const double t0 = bench_now_s();
        for (int t = 0; t < TOKENS; t++) {
            for (int l = 0; l < LAYERS; l++) {
                int chosen[USED], n = 0;
                while (n < USED) { /* distinct, ascending as the router hands them over */
                    const int e = (int)(bench_next_random(&seed) % EXPERTS);
                    int k = n;
                    for (int i = 0; i < n; i++) k = chosen[i] == e ? -1 : k;
                    if (k < 0) continue;
                    while (k > 0 && chosen[k - 1] > e) {
                        chosen[k] = chosen[k - 1];
                        k--;
                    }
                    chosen[k] = e;
                    n++;
                }
                int m = 0;
                for (int i = 0; i < USED; i++, m += 2) {
                    set_item(mats, items, out, rt, m, gate[l] + (size_t)chosen[i] * up_bytes, EMBD, FF, up_row, in);
                    set_item(mats, items, out, rt, m + 1, up[l] + (size_t)chosen[i] * up_bytes, EMBD, FF, up_row, in);
                }
                set_item(mats, items, out, rt, m, sgate[l], EMBD, FF_SHARED, up_row, in);
                set_item(mats, items, out, rt, m + 1, sup[l], EMBD, FF_SHARED, up_row, in);
                ts_matmul_many(pool, table, items, m + 2);
                for (m = 0; m < USED; m++) set_item(mats, items, out, rt, m, down[l] + (size_t)chosen[m] * down_bytes, FF, EMBD, down_row, hid);
                set_item(mats, items, out, rt, m, sdown[l], FF_SHARED, EMBD, sdown_row, shid);
                ts_matmul_many(pool, table, items, m + 1);
            }
        }
        const double s = bench_now_s() - t0;
        printf("pass %d%s: %.2f GB/s\n", pass, forked ? " (after a fork)" : "", (double)bytes_per_token * TOKENS / s / 1e9);
        fflush(stdout);
    }
    ts_threadpool_free(pool);
    return 0;
}
