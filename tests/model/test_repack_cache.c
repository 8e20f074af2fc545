/* ts_model_repack_cached: the first load writes a cache file whose bytes equal ts_model_repack's in
 * memory, later loads map it (same logits, bit for bit); a cache that no longer fits the model — a
 * changed model file, weights changed in place under the same size and time, a flipped byte in a
 * checked group, a file cut short, a foreign header — is replaced, never used; a cache folder that
 * cannot be made leaves the model untouched and says why; a dead writer's temporary file is removed. On tiny synthetic models of a dense and
 * an MLA+MoE architecture, with the best ISA's layouts and the scalar ones. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arch/arch.h"
#include "check.h"
#include "load_isa.h"
#include "model/model.h"
#include "model/repack_cache.h"
#include "model/repack_internal.h"
#include "quant/repack.h"
#include "ref_compare.h"
#include "tiefsee.h"

#define N_TOK 8

static float *logits_of(ts_model *m) {
    ts_model_info info;
    ts_model_get_info(m, &info);
    ts_token toks[N_TOK];
    for (int i = 0; i < N_TOK; i++) toks[i] = (ts_token)((i * 37 + 5) % info.n_vocab);
    return ref_engine_logits(m, TS_CACHE_F32, false, toks, N_TOK, info.n_vocab, NULL);
}

static size_t n_logits(ts_model *m) {
    ts_model_info info;
    ts_model_get_info(m, &info);
    return (size_t)N_TOK * (size_t)info.n_vocab;
}

/* The matrices with a repacked layout (in visiting order) and each one's repacked bytes; call
 * before repacking (afterwards nothing is left to collect). */
typedef struct listed {
    repack_list l;
    size_t total[512];
} listed;

static void list_of(ts_model *m, listed *out) {
    memset(out, 0, sizeof *out);
    out->l.m = m;
    m->arch->each_matrix(m, ts_repack_collect, &out->l);
    ts_repack_collect(&out->l, &m->output, 1, NULL);
    CHECK(out->l.n > 0 && out->l.n <= 512, "%d matrices to repack", out->l.n);
    for (int i = 0; i < out->l.n && i < 512; i++) {
        size_t gb;
        long ng;
        ts_err err;
        CHECK(ts_repack_item_geometry(m, &out->l.items[i], &gb, &ng, &out->total[i], &err) == 0, "geometry %d", i);
    }
}

static void unlist(listed *l) {
    free(l->l.items);
    memset(l, 0, sizeof *l);
}

/* Every matrix holds the same repacked bytes in both models. */
static bool same_repacked_bytes(const listed *a, const listed *b) {
    if (a->l.n != b->l.n) return false;
    for (int i = 0; i < a->l.n; i++) {
        const ts_matrix *wa = a->l.items[i].w, *wb = b->l.items[i].w;
        if (!wa->repack || !wb->repack || a->total[i] != b->total[i] || memcmp(wa->data, wb->data, a->total[i]) != 0)
            return false;
    }
    return true;
}

/* The cache file's item records. */
static bool read_items(const char *path, ts_rpc_item *items, int n) {
    const int fd = open(path, O_RDONLY);
    if (fd < 0) return false;
    const size_t len = (size_t)n * sizeof *items;
    const bool ok = pread(fd, items, len, (off_t)sizeof(ts_rpc_header)) == (ssize_t)len;
    close(fd);
    return ok;
}

static void flip_byte(const char *path, uint64_t offset) {
    const int fd = open(path, O_RDWR);
    unsigned char c = 0;
    if (fd < 0 || pread(fd, &c, 1, (off_t)offset) != 1) {
        CHECK(false, "open %s", path);
        if (fd >= 0) close(fd);
        return;
    }
    c ^= 0x5a;
    CHECK(pwrite(fd, &c, 1, (off_t)offset) == 1, "write %s", path);
    close(fd);
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* Loads the model again with the cache and expects it to replace a stale file, naming why, and to
 * give the logits `want`. */
static void expect_replaced(const char *model_path, enum ts_isa isa, const char *cache_dir, const char *why_part,
                            const float *want, const char *label) {
    char err[TS_ERR_LEN] = "";
    ts_model *m = load_isa(model_path, isa);
    if (!m) return;
    ts_repack_stats st;
    const int rc = ts_model_repack_cached(m, 2, cache_dir, true, &st, err);
    CHECK(rc == 0 && st.cache == TS_REPACK_CACHE_WRITTEN, "%s: stale cache not replaced (rc %d, state %d): %s", label,
          rc, st.cache, err);
    CHECK(strstr(st.cache_note, why_part) != NULL, "%s: note \"%s\" does not say \"%s\"", label, st.cache_note, why_part);
    float *got = logits_of(m);
    CHECK(got && want && memcmp(got, want, n_logits(m) * sizeof *got) == 0, "%s: logits differ", label);
    free(got);
    ts_model_free(m);
}

static void test_model(const char *dir, const char *preset, const char *type, enum ts_isa isa) {
    char path[512], cache_dir[512], err[TS_ERR_LEN] = "", label[160];
    snprintf(path, sizeof path, "%s/%s-%s.gguf", dir, preset, type);
    snprintf(cache_dir, sizeof cache_dir, "%s/cache-%s", dir, ts_isa_name(isa));
    snprintf(label, sizeof label, "%s %s %s", preset, type, ts_isa_name(isa));
    ts_synth_params sp = {.preset = preset, .type = type, .seed = 3, .out_path = path, .overwrite = true, .n_threads = 2};
    if (ts_synth(&sp, err) != 0) {
        CHECK(false, "synth %s: %s", label, err);
        return;
    }
    static listed in_memory, first, second;

    /* The in-memory repacking is the reference. */
    ts_model *mem = load_isa(path, isa), *plain = load_isa(path, isa);
    if (!mem || !plain) return;
    list_of(mem, &in_memory);
    CHECK(ts_model_repack(mem, 2, NULL, err) == 0, "%s: repack: %s", label, err);
    float *want = logits_of(mem), *want_plain = logits_of(plain);

    /* Map-only with no cache file: declines, writes and creates nothing, leaves the model alone. */
    ts_model *z = load_isa(path, isa);
    if (!z) return;
    ts_repack_stats zst;
    err[0] = '\0';
    CHECK(ts_model_repack_cached(z, 2, cache_dir, false, &zst, err) == 1 && zst.cache == TS_REPACK_CACHE_NONE &&
              strstr(err, "no cache file") && access(cache_dir, F_OK) != 0,
          "%s: map-only without a cache: \"%s\", state %d", label, err, zst.cache);
    ts_model_free(z);

    /* First load: writes the cache, same bytes and logits as in memory, no temporary file left. */
    ts_model *a = load_isa(path, isa);
    if (!a) return;
    list_of(a, &first);
    ts_repack_stats st;
    int rc = ts_model_repack_cached(a, 2, cache_dir, true, &st, err);
    CHECK(rc == 0 && st.cache == TS_REPACK_CACHE_WRITTEN && st.cache_note[0] == '\0',
          "%s: first load did not write the cache (rc %d, state %d): %s", label, rc, st.cache, err);
    CHECK(st.matrices == first.l.n, "%s: %d matrices in the cache, %d to repack", label, st.matrices, first.l.n);
    CHECK(same_repacked_bytes(&in_memory, &first), "%s: cached bytes differ from the in-memory repacking", label);
    CHECK(count_files(cache_dir) == 1, "%s: %d files in the cache folder, want 1", label, count_files(cache_dir));
    float *got = logits_of(a);
    CHECK(got && want && memcmp(got, want, n_logits(a) * sizeof *got) == 0, "%s: logits from the new cache differ",
          label);
    free(got);
    ts_repack_stats again;
    CHECK(ts_model_repack_cached(a, 2, cache_dir, true, &again, err) == 0 && again.matrices == 0,
          "%s: a second call changed %d matrices", label, again.matrices);
    char cache_path[1024];
    snprintf(cache_path, sizeof cache_path, "%s", st.cache_path);
    ts_model_free(a);

    /* Second load: maps it. */
    ts_model *b = load_isa(path, isa);
    if (!b) return;
    list_of(b, &second);
    rc = ts_model_repack_cached(b, 2, cache_dir, false, &st, err);
    CHECK(rc == 0 && st.cache == TS_REPACK_CACHE_MAPPED, "%s: second load did not map the cache (rc %d, state %d): %s",
          label, rc, st.cache, err);
    CHECK(same_repacked_bytes(&in_memory, &second), "%s: mapped bytes differ from the in-memory repacking", label);
    got = logits_of(b);
    CHECK(got && want && memcmp(got, want, n_logits(b) * sizeof *got) == 0, "%s: logits from the mapped cache differ",
          label);
    free(got);
    ts_model_free(b);

    /* A temporary file of a writer that died is removed by the next write; a live one's is kept. */
    char orphan[1100], live[1100];
    const pid_t child = fork();
    if (child == 0) _exit(0);
    CHECK(child > 0 && waitpid(child, NULL, 0) == child, "fork");
    snprintf(orphan, sizeof orphan, "%s.tmp.%ld.a1b2c3", cache_path, (long)child);
    snprintf(live, sizeof live, "%s.tmp.%ld.a1b2c3", cache_path, (long)getppid());
    FILE *f1 = fopen(orphan, "w"), *f2 = fopen(live, "w");
    CHECK(f1 && f2, "create fake temporary files");
    if (f1) fclose(f1);
    if (f2) fclose(f2);

    /* Stale or damaged caches are replaced, each for the reason it names. */
    const int n = in_memory.l.n;
    ts_rpc_item *items = calloc((size_t)n, sizeof *items);
    CHECK(items && read_items(cache_path, items, n), "%s: read the cache's items", label);
    if (items) {
        flip_byte(cache_path, items[0].cache_offset + 5);
        ts_model *y = load_isa(path, isa);
        if (y) {
            err[0] = '\0';
            CHECK(ts_model_repack_cached(y, 2, cache_dir, false, &st, err) == 1 && strstr(err, "stale cache file") &&
                      strstr(st.cache_note, "differ"),
                  "%s: map-only on a damaged cache: \"%s\"", label, err);
            ts_model_free(y);
        }
        expect_replaced(path, isa, cache_dir, "differ", want, label);
        flip_byte(cache_path, items[n - 1].cache_offset + items[n - 1].bytes - 3);
        expect_replaced(path, isa, cache_dir, "differ", want, label);
        struct stat cs;
        CHECK(stat(cache_path, &cs) == 0 && truncate(cache_path, cs.st_size - 4096) == 0, "%s: truncate", label);
        expect_replaced(path, isa, cache_dir, "header says", want, label);
        flip_byte(cache_path, 0);
        expect_replaced(path, isa, cache_dir, "not a tiefsee cache", want, label);

        /* The model file touched (same bytes, newer time). */
        struct stat ms;
        CHECK(stat(path, &ms) == 0, "stat %s", path);
        struct timespec later[2] = {ms.st_atim, ms.st_mtim};
        later[1].tv_sec += 10;
        CHECK(utimensat(AT_FDCWD, path, later, 0) == 0, "utimensat %s", path);
        expect_replaced(path, isa, cache_dir, "model file changed", want, label);

        /* The first matrix's weights changed in place, the file's size and time put back: only the
         * spot check can see it, and the new cache must hold the new weights. */
        CHECK(stat(path, &ms) == 0, "stat %s", path);
        flip_byte(path, items[0].src_offset + 3);
        struct timespec same[2] = {ms.st_atim, ms.st_mtim};
        CHECK(utimensat(AT_FDCWD, path, same, 0) == 0, "utimensat %s", path);
        ts_model *changed = load_isa(path, isa);
        if (changed) {
            CHECK(ts_model_repack(changed, 2, NULL, err) == 0, "%s: repack: %s", label, err);
            float *want_changed = logits_of(changed);
            expect_replaced(path, isa, cache_dir, "differ", want_changed, label);
            free(want_changed);
            ts_model_free(changed);
        }
    }
    free(items);
    CHECK(access(orphan, F_OK) != 0, "%s: a dead writer's temporary file was left behind", label);
    CHECK(access(live, F_OK) == 0, "%s: a live writer's temporary file was removed", label);
    unlink(live);
    CHECK(count_files(cache_dir) == 1, "%s: %d files in the cache folder after the replacements, want 1", label,
          count_files(cache_dir));

    /* A cache folder that cannot be made: an error naming it, and the model left in the file layout. */
    char bad_dir[600];
    snprintf(bad_dir, sizeof bad_dir, "%s/sub", path); /* under a regular file */
    ts_model *c = load_isa(path, isa);
    if (c) {
        listed before;
        list_of(c, &before);
        err[0] = '\0';
        rc = ts_model_repack_cached(c, 2, bad_dir, true, &st, err);
        CHECK(rc == 1 && st.cache == TS_REPACK_CACHE_NONE && strstr(err, "cache folder") != NULL,
              "%s: an unusable cache folder gave rc %d, state %d, \"%s\"", label, rc, st.cache, err);
        bool untouched = true;
        for (int i = 0; i < before.l.n; i++) untouched = untouched && before.l.items[i].w->repack == NULL;
        CHECK(untouched, "%s: a failed cache left matrices switched", label);
        unlist(&before);
        ts_model_free(c);
    }
    unlist(&in_memory);
    unlist(&first);
    unlist(&second);
    printf("%-22s %-5s %-7s %3d matrices: written, mapped, 6 stale caches replaced\n", preset, type, ts_isa_name(isa), n);
    free(want);
    free(want_plain);
    ts_model_free(mem);
    ts_model_free(plain);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", cache_dir, path);
    if (system(cmd) != 0) printf("note: could not remove %s\n", cache_dir);
}

/* The fuzzer's seed corpus (fuzz/make_repack_cache_corpus.py) is what it claims: the valid header
 * passes ts_rpc_check against the fuzz target's expectations, each near miss fails for its reason. */
static void test_seed_corpus(void) {
    static const ts_rpc_item want[2] = {
        {.type = 2, .n_in = 256, .n_out = 32, .n_experts = 1, .src_offset = 4096, .src_dev = 7, .src_ino = 11,
         .src_size = 65536, .src_mtime_ns = 1000000000, .cache_offset = 4096, .bytes = 4608},
        {.type = 12, .n_in = 256, .n_out = 16, .n_experts = 4, .src_offset = 16384, .src_dev = 7, .src_ino = 11,
         .src_size = 65536, .src_mtime_ns = 1000000000, .cache_offset = 12288, .bytes = 4096},
    };
    ts_rpc_header wh = {.isa = 1, .model_dev = 7, .model_ino = 11, .model_size = 65536, .model_mtime_ns = 1000000000};
    memcpy(wh.model_path, "/models/m.gguf", sizeof "/models/m.gguf");
    const struct { const char *name, *why; } seeds[] = {
        {"valid", NULL}, {"bad_magic", "not a tiefsee cache"}, {"wrong_size", "header says"},
        {"overlap", "overlaps"}, {"past_end", "outside the file"}, {"short", "shorter than its header"},
        {"other_model", "another model file"}, {"newline_in_path", "another model file"}, {"model_touched", "model file changed"},
        {"unterminated_path", "not terminated"}, {"too_many_items", "more item records"}};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[256], why[256] = "";
        unsigned char buf[4096];
        snprintf(path, sizeof path, "fuzz/corpus/repack_cache/%s", seeds[i].name);
        FILE *f = fopen(path, "rb");
        if (!f) {
            CHECK(false, "open %s", path);
            continue;
        }
        const size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        const int rc = ts_rpc_check(buf, len, 4 * TS_RPC_ALIGN, &wh, want, 2, why, sizeof why);
        if (!seeds[i].why)
            CHECK(rc == 0, "seed %s refused: %s", seeds[i].name, why);
        else
            CHECK(rc != 0 && strstr(why, seeds[i].why), "seed %s: rc %d, \"%s\", want \"%s\"", seeds[i].name, rc, why,
                  seeds[i].why);
    }
}

/* The room rule (the CI machine once had 13.4 GB free of 268 GB, and the old rule, 5 % of the disk
 * with no ceiling, refused even a few-kilobyte cache): 5 % of the disk, clamped to 1..4 GiB. */
static void test_room_rule(void) {
    const uint64_t GiB = 1ull << 30, GB = 1000000000ull;
    CHECK(ts_rpc_keep_free(0) == GiB, "empty disk keeps %llu", (unsigned long long)ts_rpc_keep_free(0));
    CHECK(ts_rpc_keep_free(8 * GB) == GiB, "8 GB disk keeps %llu", (unsigned long long)ts_rpc_keep_free(8 * GB));
    CHECK(ts_rpc_keep_free(40 * GiB) == 2 * GiB, "40 GiB disk keeps %llu", (unsigned long long)ts_rpc_keep_free(40 * GiB));
    CHECK(ts_rpc_keep_free(268 * GB) == 4 * GiB, "268 GB disk keeps %llu", (unsigned long long)ts_rpc_keep_free(268 * GB));
    CHECK(ts_rpc_keep_free(UINT64_MAX) == 4 * GiB, "huge disk");
    CHECK(ts_rpc_room_ok(4096, (uint64_t)(13.42 * GB), 268 * GB), "a small cache on the CI disk refused");
    CHECK(!ts_rpc_room_ok(10 * GB, (uint64_t)(13.42 * GB), 268 * GB), "a cache leaving 3.4 GB of 268 GB accepted");
    CHECK(ts_rpc_room_ok(9 * GB, (uint64_t)(13.42 * GB), 268 * GB), "a cache leaving 4.4 GB of 268 GB refused");
    CHECK(!ts_rpc_room_ok(100, 50, 268 * GB), "a cache larger than the free space accepted");
    CHECK(!ts_rpc_room_ok(UINT64_MAX, UINT64_MAX - 1, UINT64_MAX), "overflowing sizes accepted");
    CHECK(!ts_rpc_room_ok(GiB, 2 * GiB - 1, 8 * GiB), "a cache leaving under 1 GiB accepted");
}

int main(void) {
    test_room_rule();
    test_seed_corpus();
    char dir[] = "/tmp/ts_repack_cache_XXXXXX";
    if (!mkdtemp(dir)) {
        printf("FAIL: mkdtemp\n");
        return 1;
    }
    const struct { const char *preset, *type; } models[] = {
        {"tiny-qwen2", "q4_K"}, {"tiny-qwen2-tied", "q6_K"}, {"tiny-deepseek2-lite", "q4_0"}};
    const enum ts_isa candidates[] = {TS_ISA_SCALAR, TS_ISA_AVX2, TS_ISA_AVXVNNI, TS_ISA_AVX512, TS_ISA_NEON};
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++)
        for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
            if (ts_isa_supported(candidates[i]) && ts_repack_traits_for(candidates[i], ts_type_from_name(models[k].type)))
                test_model(dir, models[k].preset, models[k].type, candidates[i]);
    rmdir(dir);
    if (failures) printf("%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
