/* ts_model_repack end to end: on tiny synthetic models of every architecture and each repackable
 * weight type, the repacked model gives the file layout's logits within float rounding, one-token
 * decoding stays bit-identical to batch prefill, and the repacking really happened (matrices
 * counted, a second call does nothing). Run with the best ISA's repacked kernels (when this CPU has
 * them) and with the scalar reference kernels (always). */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "arch/arch.h"
#include "check.h"
#include "load_isa.h"
#include "ops/ops.h"
#include "util/threadpool.h"
#include "model/model.h"
#include "quant/repack.h"
#include "ref_compare.h"
#include "tiefsee.h"

#define N_TOK 12

/* Every matrix of both models, in the arch's visiting order (the output matrix last). */
typedef struct matrix_list {
    ts_matrix *w[4096];
    int n_experts[4096];
    int n;
} matrix_list;

static void list_matrix(void *user, ts_matrix *w, int n_experts, size_t *expert_bytes) {
    (void)expert_bytes;
    matrix_list *l = user;
    if (l->n < 4096 && w->data) {
        l->n_experts[l->n] = n_experts;
        l->w[l->n++] = w;
    }
}

/* l = every matrix of m, the output matrix last. */
static void list_all(ts_model *m, matrix_list *l) {
    l->n = 0;
    m->arch->each_matrix(m, list_matrix, l);
    list_matrix(l, &m->output, 1, NULL);
}

/* Each matrix (each expert's) of the repacked model times random activations equals the file
 * layout's product within float rounding: pinpoints a wrong layout or kernel to one matrix. */
static void compare_matrices(ts_model *file_layout, ts_model *repacked, const char *label) {
    static matrix_list a, b;
    list_all(file_layout, &a);
    list_all(repacked, &b);
    CHECK(a.n == b.n, "%s: %d vs %d matrices", label, a.n, b.n);
    ts_threadpool *pool = NULL;
    ts_err err;
    if (ts_threadpool_new(2, &pool, &err) != 0) return;
    uint64_t seed = 1;
    enum { TOK = 3 };
    for (int i = 0; i < a.n && i < b.n; i++) {
        const ts_matrix *wa = a.w[i];
        const int vdt = file_layout->types[wa->type].vec_dot_type;
        if (vdt == TS_TYPE_F32 || !b.w[i]->repack) continue;
        const int n = (int)wa->n_in, rows = (int)wa->n_out;
        const size_t arb = ts_row_size(vdt, n);
        float *x = malloc((size_t)TOK * (size_t)n * sizeof *x);
        char *act = malloc((size_t)TOK * arb);
        float *ya = malloc((size_t)TOK * (size_t)rows * sizeof *ya), *yb = malloc((size_t)TOK * (size_t)rows * sizeof *yb);
        for (int k = 0; k < TOK * n; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            x[k] = (float)((int)(seed >> 40) % 2001 - 1000) / 1000.0f;
        }
        for (int t = 0; t < TOK; t++) file_layout->types[vdt].from_float(x + (size_t)t * n, act + (size_t)t * arb, n);
        const ts_act in = {.data = act, .type = vdt, .row_bytes = arb, .n_rows = TOK};
        for (int e = 0; e < a.n_experts[i]; e++) {
            ts_matrix ea = *a.w[i], eb = *b.w[i];
            ea.data = (const char *)ea.data + (size_t)e * ea.row_bytes * (size_t)rows;
            eb.data = (const char *)eb.data + (size_t)e * (size_t)(rows / TS_REPACK_ROWS) * ts_repack_group_bytes(eb.type, n);
            ts_matmul(pool, file_layout->types, &ea, &in, ya, rows);
            ts_matmul(pool, repacked->types, &eb, &in, yb, rows);
            double worst = 0, scale = 1e-30;
            for (int k = 0; k < TOK * rows; k++) {
                const double d = fabs((double)ya[k] - (double)yb[k]);
                if (!(d <= worst)) worst = d;
                if (fabs((double)ya[k]) > scale) scale = fabs((double)ya[k]);
            }
            CHECK(worst <= 2e-6 * scale, "%s: matrix %d (%s, %d x %d) expert %d differs by %.3g (largest %.3g)", label, i,
                  ts_type_name(wa->type), rows, n, e, worst, scale);
        }
        free(x);
        free(act);
        free(ya);
        free(yb);
    }
    ts_threadpool_free(pool);
}

/* The repacked matrices lie in one mapping, in order, without overlap: the first at a 2 MiB
 * boundary (where huge pages can start), each at a 4 KiB one; their sizes add up to the bytes
 * reported. */
typedef struct placed {
    uintptr_t at;
    uint64_t bytes;
} placed;
static int cmp_placed(const void *a, const void *b) {
    const uintptr_t x = ((const placed *)a)->at, y = ((const placed *)b)->at;
    return x < y ? -1 : x > y;
}
static void check_layout(ts_model *repacked, const ts_repack_stats *st, const char *label) {
    static matrix_list l;
    static placed p[4096];
    list_all(repacked, &l);
    int n = 0;
    for (int i = 0; i < l.n; i++) {
        const ts_matrix *w = l.w[i];
        if (!w->repack) continue;
        p[n++] = (placed){.at = (uintptr_t)w->data,
                          .bytes = (uint64_t)(w->n_out / TS_REPACK_ROWS) * ts_repack_group_bytes(w->type, (int)w->n_in) *
                                   (uint64_t)l.n_experts[i]};
    }
    qsort(p, (size_t)n, sizeof *p, cmp_placed);
    uint64_t sum = 0;
    uintptr_t end = 0;
    for (int i = 0; i < n; i++) {
        CHECK(p[i].at % (i == 0 ? (2u << 20) : 4096u) == 0, "%s: repacked matrix %d at %#lx is not aligned", label, i,
              (unsigned long)p[i].at);
        CHECK(p[i].at >= end, "%s: repacked matrices %d and %d overlap", label, i - 1, i);
        end = p[i].at + p[i].bytes;
        sum += p[i].bytes;
    }
    CHECK(n > 0 && sum == st->bytes, "%s: %d repacked matrices hold %llu bytes, %llu reported", label, n,
          (unsigned long long)sum, (unsigned long long)st->bytes);
}

/* Two independent loads of the tiny model dir/preset-type.gguf (written first when missing) with
 * isa's kernels, into *a and *b; false (both NULL) when that fails. */
static bool load_two(const char *dir, const char *preset, const char *type, enum ts_isa isa, ts_model **a, ts_model **b) {
    char path[512], err[TS_ERR_LEN];
    *a = *b = NULL;
    snprintf(path, sizeof path, "%s/%s-%s.gguf", dir, preset, type);
    if (access(path, R_OK) != 0) {
        ts_synth_params sp = {.preset = preset, .type = type, .seed = 3, .out_path = path, .overwrite = true, .n_threads = 2};
        if (ts_synth(&sp, err) != 0) {
            CHECK(false, "synth %s %s: %s", preset, type, err);
            return false;
        }
    }
    *a = load_isa(path, isa);
    *b = load_isa(path, isa);
    if (*a && *b) return true;
    ts_model_free(*a);
    ts_model_free(*b);
    *a = *b = NULL;
    return false;
}

static void test_model(const char *dir, const char *preset, const char *type, enum ts_isa isa) {
    char err[TS_ERR_LEN];
    ts_model *file_layout, *repacked;
    if (!load_two(dir, preset, type, isa, &file_layout, &repacked)) return;
    ts_model_info info;
    ts_model_get_info(file_layout, &info);
    const int V = info.n_vocab;
    ts_repack_stats st;
    const int rc = ts_model_repack(repacked, 2, &st, err);
    CHECK(rc == 0, "%s %s: repack: %s", preset, type, err);
    CHECK(st.matrices > 0 && st.bytes > 0, "%s %s %s: nothing was repacked (%d matrices)", preset, type,
          ts_isa_name(isa), st.matrices);
    ts_repack_stats again;
    CHECK(ts_model_repack(repacked, 2, &again, err) == 0 && again.matrices == 0 && again.bytes == 0,
          "%s %s: a second repack changed %d matrices", preset, type, again.matrices);

    char label[160];
    snprintf(label, sizeof label, "%s %s %s", preset, type, ts_isa_name(isa));
    compare_matrices(file_layout, repacked, label);
    check_layout(repacked, &st, label);

    ts_token toks[N_TOK];
    for (int i = 0; i < N_TOK; i++) toks[i] = (ts_token)((i * 37 + 5) % V);
    float *want = ref_engine_logits(file_layout, TS_CACHE_F32, false, toks, N_TOK, V, NULL);
    float *batch = ref_engine_logits(repacked, TS_CACHE_F32, false, toks, N_TOK, V, NULL);
    float *step = ref_engine_logits(repacked, TS_CACHE_F32, true, toks, N_TOK, V, NULL);
    CHECK(want && batch && step, "%s %s: decode failed", preset, type);
    if (want && batch && step) {
        /* Each product agrees to float rounding (compare_matrices), but the activations are
         * quantized to int8 before every product: a difference of one rounding can move a value
         * across a rounding boundary, and that step (1/127 of the block's scale) grows through the
         * layers of these random models — through MoE routing most of all, where it can change an
         * expert. The file layout's own ISAs differ from each other the same way. So the logits
         * are bounded loosely here; the tight checks are per matrix. */
        const bool moe = strncmp(preset, "tiny-deepseek", 13) == 0;
        const double d = ref_max_dlogp(batch, want, N_TOK, V), bound = moe ? 1.0 : 0.1;
        CHECK(d <= bound, "%s %s %s: repacked vs file layout max|dlogp| %.3g > %.2g", preset, type, ts_isa_name(isa), d,
              bound);
        CHECK(memcmp(batch, step, (size_t)N_TOK * (size_t)V * sizeof *batch) == 0,
              "%s %s %s: repacked one-token decode differs from the batch", preset, type, ts_isa_name(isa));
        printf("%-22s %-5s %-7s %3d matrices %8.1f KB  max|dlogp| %.2e\n", preset, type, ts_isa_name(isa), st.matrices,
               (double)st.bytes / 1e3, d);
    }
    free(want);
    free(batch);
    free(step);
    ts_model_free(file_layout);
    ts_model_free(repacked);
}

/* The repacked matrices of m not on the products of `walk` (0: every one is); *n_repacked counts them all. */
static int matrices_off_walk(ts_model *m, enum ts_walk walk, int *n_repacked) {
    static matrix_list l;
    list_all(m, &l);
    int off = 0;
    *n_repacked = 0;
    for (int i = 0; i < l.n; i++) {
        const ts_matrix *w = l.w[i];
        if (!w->repack) continue;
        ++*n_repacked;
        off += w->repack != ts_repack_traits_walk(m->isa, w->type, walk);
    }
    return off;
}

/* ts_model_set_walk: each walk puts every repacked matrix on that walk's products (the same
 * ones ts_repack_traits_walk names), before or after the repacking, and one-token decoding gives
 * the same bits with every walk (only the order in which the groups are read differs). An
 * unknown walk is refused, naming it, and changes nothing. */
static void test_walks(const char *dir, const char *preset, const char *type, enum ts_isa isa) {
    char err[TS_ERR_LEN] = "", label[160];
    snprintf(label, sizeof label, "%s %s %s walks", preset, type, ts_isa_name(isa));
    ts_model *m, *late;
    if (!load_two(dir, preset, type, isa, &m, &late)) return;
    const int t = ts_type_from_name(type);
    const bool two = ts_repack_traits_walk(isa, t, TS_WALK_PAIRS) != ts_repack_traits_walk(isa, t, TS_WALK_ONE_GROUP);
    CHECK(ts_model_repack(m, 2, NULL, err) == 0, "%s: repack: %s", label, err);
    int n = 0;
    CHECK(matrices_off_walk(m, TS_WALK_AUTO, &n) == 0 && n > 0, "%s: %d repacked matrices after the repack, not all on the auto walk", label, n);
    ts_model_info info;
    ts_model_get_info(m, &info);
    const int V = info.n_vocab;
    ts_token toks[N_TOK];
    for (int i = 0; i < N_TOK; i++) toks[i] = (ts_token)((i * 53 + 11) % V);
    static const char *const names[] = {"pairs", "one-group", "auto"};
    static const enum ts_walk walks[] = {TS_WALK_PAIRS, TS_WALK_ONE_GROUP, TS_WALK_AUTO};
    float *first = NULL;
    for (int k = 0; k < 3; k++) {
        CHECK(ts_model_set_walk(m, names[k], err) == 0, "%s: set %s: %s", label, names[k], err);
        const int off = matrices_off_walk(m, walks[k], &n);
        CHECK(off == 0, "%s: %d of %d matrices not on the %s walk", label, off, n, names[k]);
        float *got = ref_engine_logits(m, TS_CACHE_F32, true, toks, N_TOK, V, NULL);
        CHECK(got != NULL, "%s: decode with %s failed", label, names[k]);
        if (got && first)
            CHECK(memcmp(got, first, (size_t)N_TOK * (size_t)V * sizeof *got) == 0,
                  "%s: one-token decoding with the %s walk differs from the pairs", label, names[k]);
        if (!first)
            first = got;
        else
            free(got);
    }
    /* the walk in force stays when a name is refused */
    CHECK(ts_model_set_walk(m, "one-group", err) == 0, "%s: %s", label, err);
    CHECK(ts_model_set_walk(m, "zigzag", err) == -1 && strstr(err, "zigzag") != NULL, "%s: an unknown walk: '%s'", label, err);
    CHECK(ts_model_set_walk(m, NULL, err) == -1, "%s: a NULL walk accepted", label);
    CHECK(matrices_off_walk(m, TS_WALK_ONE_GROUP, &n) == 0, "%s: a refused walk changed the matrices", label);
    /* chosen before the repacking: the matrices repacked later take it */
    CHECK(ts_model_set_walk(late, two ? (ts_repack_auto_walk(isa, t) == TS_WALK_PAIRS ? "one-group" : "pairs") : "pairs", err) == 0,
          "%s: %s", label, err);
    CHECK(ts_model_repack(late, 2, NULL, err) == 0, "%s: repack: %s", label, err);
    const enum ts_walk want = two && ts_repack_auto_walk(isa, t) == TS_WALK_PAIRS ? TS_WALK_ONE_GROUP : TS_WALK_PAIRS;
    CHECK(matrices_off_walk(late, want, &n) == 0 && n > 0, "%s: a walk set before the repacking was not kept", label);
    if (two) CHECK(matrices_off_walk(late, TS_WALK_AUTO, &n) > 0, "%s: the walk set before the repacking is the auto one", label);
    free(first);
    ts_model_free(m);
    ts_model_free(late);
}

/* Out of address space for the repacked weights (RLIMIT_AS just above what the process maps): the
 * repacking fails with an error that says so, changes no matrix, and the model still decodes from
 * the file layout as before. Skipped under AddressSanitizer, whose shadow memory exceeds any such
 * limit. */
static void test_out_of_memory(const char *dir) {
#if defined(UNDER_ASAN)
    (void)dir;
#else
    char path[512], err[TS_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/tiny-qwen2-q4_K.gguf", dir);
    ts_model *file_layout, *m;
    if (!load_two(dir, "tiny-qwen2", "q4_K", ts_isa_best(), &file_layout, &m)) return;
    ts_model_info info;
    ts_model_get_info(m, &info);
    ts_token toks[N_TOK];
    for (int i = 0; i < N_TOK; i++) toks[i] = (ts_token)((i * 37 + 5) % info.n_vocab);
    float *want = ref_engine_logits(file_layout, TS_CACHE_F32, false, toks, N_TOK, info.n_vocab, NULL);

    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    const bool have_size = f && fscanf(f, "%ld", &pages) == 1;
    if (f) fclose(f);
    struct rlimit old;
    if (have_size && getrlimit(RLIMIT_AS, &old) == 0) {
        const size_t mapped = (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
        struct rlimit tight = old;
        tight.rlim_cur = mapped + ((size_t)1 << 20); /* a little heap, not the 2 MiB-aligned mapping */
        ts_repack_stats st;
        int rc = 0;
        if (setrlimit(RLIMIT_AS, &tight) == 0) {
            rc = ts_model_repack(m, 2, &st, err);
            setrlimit(RLIMIT_AS, &old);
            CHECK(rc != 0 && strstr(err, "out of memory") != NULL, "repack without address space: rc %d, error '%s'", rc, err);
            CHECK(st.matrices == 0 && st.bytes == 0, "a failed repack reports %d matrices", st.matrices);
            static matrix_list l;
            l.n = 0;
            m->arch->each_matrix(m, list_matrix, &l);
            int repacked = 0;
            for (int i = 0; i < l.n; i++) repacked += l.w[i]->repack != NULL;
            CHECK(repacked == 0, "a failed repack switched %d matrices", repacked);
            float *got = ref_engine_logits(m, TS_CACHE_F32, false, toks, N_TOK, info.n_vocab, NULL);
            CHECK(want && got && memcmp(want, got, (size_t)N_TOK * (size_t)info.n_vocab * sizeof *got) == 0,
                  "the model decodes differently after a failed repack");
            free(got);
            /* and with the memory back, the same model repacks */
            CHECK(ts_model_repack(m, 2, &st, err) == 0 && st.matrices > 0, "repack after the failure: %s", err);
        }
    }
    free(want);
    ts_model_free(file_layout);
    ts_model_free(m);
    remove(path);
#endif
}

int main(void) {
    char dir[] = "/tmp/ts_repack_XXXXXX";
    if (!mkdtemp(dir)) {
        printf("FAIL: mkdtemp\n");
        return 1;
    }
    const char *presets[] = {"tiny-qwen2", "tiny-qwen2-tied", "tiny-llama-gqa", "tiny-deepseek-moe",
                             "tiny-deepseek2-lite", "tiny-deepseek3"};
    const char *types[] = {"q4_0", "q5_0", "q8_0", "q4_K", "q6_K"};
    /* The scalar reference kernels always; every SIMD table this CPU runs that has repacked kernels. */
    const enum ts_isa candidates[] = {TS_ISA_SCALAR, TS_ISA_AVX2, TS_ISA_AVXVNNI, TS_ISA_AVX512, TS_ISA_NEON};
    for (size_t p = 0; p < sizeof presets / sizeof presets[0]; p++)
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
                if (ts_isa_supported(candidates[i]) && ts_repack_traits_for(candidates[i], ts_type_from_name(types[t]))) {
                    test_model(dir, presets[p], types[t], candidates[i]);
                    /* the walks: one dense and one MoE model, where a type has two walks, and one
                     * kernel set with one (the sanitizer build runs the scalar kernels slowly) */
                    const int ty = ts_type_from_name(types[t]);
                    const bool two = ts_repack_traits_walk(candidates[i], ty, TS_WALK_PAIRS) !=
                                     ts_repack_traits_walk(candidates[i], ty, TS_WALK_ONE_GROUP);
                    if ((strcmp(presets[p], "tiny-qwen2") == 0 || strcmp(presets[p], "tiny-deepseek2-lite") == 0) &&
                        (two || (candidates[i] == TS_ISA_SCALAR && ty == TS_TYPE_Q4_K)))
                        test_walks(dir, presets[p], types[t], candidates[i]);
                }
            char path[512];
            snprintf(path, sizeof path, "%s/%s-%s.gguf", dir, presets[p], types[t]);
            remove(path);
        }
    test_out_of_memory(dir);
    rmdir(dir);
    if (failures) printf("%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
