/* How close to the bandwidth probe the one-token (decode) kernels themselves stream, without the
 * rest of the engine: the ceiling of `tiefsee bench`'s "% roofline" on this machine.
 *
 * For each weight type, THREADS threads run one-token products through the engine's own path
 * (ts_matmul_many on a thread pool: the repacked layout, the split into contiguous shares, the
 * work sharing) over 1 GiB of that type's repacked weights on huge pages (about one V2-Lite
 * token's weights), and right after, the engine's own bandwidth probe (ts_membw_measure, best of
 * 3 passes, as `tiefsee bench` takes it) measures the memory in the same minute. Each round sweeps
 * the buffer as one matrix and, with -k, again as matrices of ROWS rows called one after another
 * (PER_CALL matrices a call, as the MoE layer hands a token's experts over together), so the two
 * read the same bytes in the same minute and their ratio is what the calls cost. Prints each
 * round, then the mean fractions of the probe and, once, how fast the kernel runs on weights that
 * stay in the core's L2 (one thread), which tells whether its arithmetic could be the limit.
 *
 *   bench_decode_ceiling [-t THREADS] [-r ROUNDS] [-k ROWS] [-m PER_CALL] [-s] [--isa avx512|avxvnni|avx2] [TYPE...]
 *
 * TYPE: q4_0 q5_0 q8_0 q4_K q6_K (default: all five); -k 1408 -m 1 calls V2-Lite's expert
 * matrices one at a time, -m 14 as many as a decode step's gate and up products; -s calls them
 * in a random order (a token's experts lie at scattered places) instead of as they lie in memory. The speed counts
 * the file layout's bytes, as `tiefsee bench` counts a token (the repacked Q4_K holds 148 bytes
 * per 144). The weights are random bytes (every f16 scale a finite, normal number): only the
 * speed is of interest. Not a ctest; BENCHMARKS.md, "What the decode kernels stream on their own".
 *
 * Built with the project (x86-64) as build/bench/bench_decode_ceiling; by hand:
 *   gcc -std=c17 -O2 -Isrc -Iinclude bench/kernels/bench_decode_ceiling.c build/libtiefsee.a \
 *       $(pkg-config --libs jansson libpcre2-8 libutf8proc) -lm -lpthread -o /tmp/bench_decode_ceiling */
#define _DEFAULT_SOURCE /* MADV_HUGEPAGE */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ops/ops.h"
#include "quant/repack.h"
#include "quant/types.h"
#include "util/error.h"
#include "util/membw.h"
#include "util/threadpool.h"

#include "bench_util.h"

enum { N_IN = 2048 }; /* V2-Lite's width; a multiple of every block size (256) */
#define SWEEP_BYTES ((size_t)1 << 30)
#define CACHE_BYTES ((size_t)384 << 10) /* fits a 1 MiB L2 with the activations */

/* The types with repacked one-token kernels; -1 for any other name. */
static int type_by_name(const char *name) {
    static const int repacked[] = {TS_TYPE_Q4_0, TS_TYPE_Q5_0, TS_TYPE_Q8_0, TS_TYPE_Q4_K, TS_TYPE_Q6_K};
    const int t = ts_type_from_name(name);
    for (size_t i = 0; i < sizeof repacked / sizeof *repacked; i++)
        if (repacked[i] == t) return t;
    return -1;
}

/* One one-token product per matrix over mats[0..n_mats), `per_call` matrices per ts_matmul_many call
 * (as the MoE layer hands a token's experts over together); returns GB/s of weights streamed. */
static double sweep(ts_threadpool *pool, const ts_type_traits *table, const ts_matrix *mats, int n_mats, int per_call,
                    const ts_act *in, float *out) {
    enum { MAX_PER_CALL = 64 };
    ts_matmul_item items[MAX_PER_CALL];
    size_t bytes = 0;
    const double t0 = bench_now_s();
    for (int i = 0; i < n_mats; i += per_call) {
        const int n = n_mats - i < per_call ? n_mats - i : per_call;
        for (int k = 0; k < n; k++) {
            items[k] = (ts_matmul_item){.w = &mats[i + k], .act = *in, .out = out + (size_t)k * (size_t)mats[i + k].n_out,
                                        .out_stride = (int)mats[i + k].n_out};
            bytes += mats[i + k].row_bytes * (size_t)mats[i + k].n_out;
        }
        ts_matmul_many(pool, table, items, n);
    }
    return (double)bytes / (bench_now_s() - t0) / 1e9;
}

static int run_type(int type, enum ts_isa isa, int n_threads, int rounds, long rows_per_matrix, int per_call, bool shuffle) {
    const ts_type_traits *table = ts_type_table(isa);
    const ts_repack_traits *rt = ts_repack_traits_for(isa, type);
    if (!rt) {
        printf("%s: no repacked kernel for %s\n", ts_type_name(type), ts_isa_name(isa));
        return 0;
    }
    const int act_type = table[type].vec_dot_type;
    const size_t row_bytes = ts_row_size(type, N_IN), act_bytes = ts_row_size(act_type, N_IN);
    /* The repacked layout may take more bytes than the file's (Q4_K keeps its scales unpacked):
     * size the buffer by it, count the speed in the file's bytes, as the bench counts a token. */
    const size_t group_bytes = (size_t)(N_IN / table[type].block_size) * rt->block_bytes;
    const long total_rows = (long)(SWEEP_BYTES / row_bytes) / TS_REPACK_ROWS * TS_REPACK_ROWS;
    long rows = rows_per_matrix > 0 ? rows_per_matrix / TS_REPACK_ROWS * TS_REPACK_ROWS : total_rows;
    if (rows < TS_REPACK_ROWS) rows = TS_REPACK_ROWS;
    const int n_mats = (int)(total_rows / rows);
    uint64_t seed = 88172645463325252ull;
    const size_t mat_bytes = group_bytes * (size_t)(rows / TS_REPACK_ROWS);
    char *w = bench_random_weights(mat_bytes * (size_t)n_mats, &seed);
    char *x = bench_random_weights(act_bytes, &seed);
    float *out = calloc((size_t)rows * (size_t)(n_mats > per_call ? n_mats : per_call), sizeof *out);
    ts_matrix *mats = calloc((size_t)n_mats, sizeof *mats);
    ts_threadpool *pool = NULL, *one = NULL;
    ts_err err;
    if (!out || !mats || ts_threadpool_new(n_threads, &pool, &err) || ts_threadpool_new(1, &one, &err)) {
        fprintf(stderr, "out of memory or threads\n");
        return 1;
    }
    for (int i = 0; i < n_mats; i++)
        mats[i] = (ts_matrix){.data = w + (size_t)i * mat_bytes, .type = type, .n_in = N_IN,
                              .n_out = rows, .row_bytes = row_bytes, .repack = rt};
    if (shuffle) /* the matrices called in a random order, as a token's experts lie in memory */
        for (int i = n_mats - 1; i > 0; i--) {
            const int j = (int)(bench_next_random(&seed) % (uint64_t)(i + 1));
            const ts_matrix t = mats[i];
            mats[i] = mats[j];
            mats[j] = t;
        }
    const ts_act in = {.data = x, .type = act_type, .row_bytes = act_bytes, .n_rows = 1};

    /* In the L2: one small matrix again and again on one thread, best of many calls. */
    ts_matrix small = mats[0];
    small.n_out = (long)(CACHE_BYTES / row_bytes) / TS_REPACK_ROWS * TS_REPACK_ROWS;
    if (small.n_out > rows) small.n_out = rows;
    double in_cache = 0;
    for (int i = 0; i < 4000; i++) {
        const double g = sweep(one, table, &small, 1, 1, &in, out);
        if (g > in_cache) in_cache = g;
    }

    /* Each round: the whole buffer as one matrix, then as the -k matrices (when asked), then the
     * probe; the two sweeps read the same bytes in the same minute, so their ratio is what the
     * calls cost, free of the memory's drift. */
    const ts_matrix whole = {.data = w, .type = type, .n_in = N_IN, .n_out = rows * n_mats, .row_bytes = row_bytes, .repack = rt};
    const bool split = n_mats > 1;
    double sum_whole = 0, sum_split = 0, sum_probe = 0;
    (void)sweep(pool, table, &whole, 1, 1, &in, out); /* warm-up: first touch of the page tables */
    for (int r = 0; r < rounds; r++) {
        const double k_whole = sweep(pool, table, &whole, 1, 1, &in, out);
        const double k_split = split ? sweep(pool, table, mats, n_mats, per_call, &in, out) : 0;
        ts_membw_result bw;
        if (ts_membw_measure(n_threads, SWEEP_BYTES, 3, &bw, &err)) {
            fprintf(stderr, "probe: %s\n", err.msg);
            return 1;
        }
        sum_whole += k_whole / bw.best_gbs;
        sum_split += k_split / bw.best_gbs;
        sum_probe += bw.best_gbs;
        printf("%s round %d: probe %.1f GB/s; one matrix %.1f GB/s (%.0f %%)", ts_type_name(type), r + 1, bw.best_gbs,
               k_whole, 100 * k_whole / bw.best_gbs);
        if (split) printf("; %ld-row matrices %.1f GB/s (%.0f %%)", rows, k_split, 100 * k_split / bw.best_gbs);
        printf("\n");
        fflush(stdout);
    }
    printf("%s (%s, %d threads, probe %.1f GB/s): one matrix %.0f %% of the probe", ts_type_name(type), ts_isa_name(isa),
           n_threads, sum_probe / rounds, 100 * sum_whole / rounds);
    if (split)
        printf(", %d matrices of %ld rows (%d a call%s) %.0f %%", n_mats, rows, per_call, shuffle ? ", shuffled" : "",
               100 * sum_split / rounds);
    printf("; in L2, one thread: %.1f GB/s\n", in_cache);
    ts_threadpool_free(pool);
    ts_threadpool_free(one);
    munmap(w, mat_bytes * (size_t)n_mats);
    munmap(x, act_bytes);
    free(out);
    free(mats);
    return 0;
}

int main(int argc, char **argv) {
    int n_threads = 2, rounds = 5, n_types = 0, types[8], per_call = 1;
    bool shuffle = false;
    long rows = 0;
    enum ts_isa isa = ts_isa_best();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            n_threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc) {
            rows = atol(argv[++i]);
        } else if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
            per_call = atoi(argv[++i]);
        } else if (strcmp(argv[i], "-s") == 0) {
            shuffle = true;
        } else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            const int v = ts_isa_from_name(argv[++i]);
            if (v < 0 || !ts_isa_supported((enum ts_isa)v)) {
                fprintf(stderr, "unknown or unsupported ISA %s\n", argv[i]);
                return 2;
            }
            isa = (enum ts_isa)v;
        } else if (type_by_name(argv[i]) >= 0 && n_types < 8) {
            types[n_types++] = type_by_name(argv[i]);
        } else {
            fprintf(stderr, "usage: bench_decode_ceiling [-t THREADS] [-r ROUNDS] [-k ROWS] [-m PER_CALL] [-s] [--isa avx512|avxvnni|avx2] "
                            "[q4_0 q5_0 q8_0 q4_K q6_K]\n");
            return 2;
        }
    }
    if (n_threads < 1 || rounds < 1 || per_call < 1 || per_call > 64) return 2;
    if (n_types == 0) {
        const char *all[] = {"q4_0", "q5_0", "q8_0", "q4_K", "q6_K"};
        for (int i = 0; i < 5; i++) types[n_types++] = type_by_name(all[i]);
    }
    for (int i = 0; i < n_types; i++)
        if (run_type(types[i], isa, n_threads, rounds, rows, per_call, shuffle)) return 1;
    return 0;
}
