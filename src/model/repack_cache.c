/* ts_model_repack_cached: the repacked weights in a file that later loads map instead of repacking.
 *
 * Why: repacking V2-Lite's 8.7 GB takes ~18 s per load here (most of it the first touch of fresh
 * anonymous memory), while mapping a page-cached file of the same bytes takes a fraction of a
 * second, and the pages are shared by every process that maps the model (a server and a CLI).
 * Why it is safe: a cache file is used only when its header matches the model file's identity and
 * this CPU's layouts, and a sample of it matches freshly repacked bytes (repack_cache.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "arch/arch.h"
#include "model/model.h"
#include "model/repack_cache.h"
#include "model/repack_internal.h"
#include "quant/repack.h"
#include "util/fileio.h"
#include "tiefsee.h"

/* ---- the header check (fuzzed: fuzz/fuzz_repack_cache.c) ---------------------------------------- */

static int why_fail(char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int why_fail(char *why, size_t why_len, const char *fmt, ...) {
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int ts_rpc_parse(const void *buf, size_t len, uint64_t file_size, ts_rpc_header *h, char *why, size_t why_len) {
    if (len < sizeof *h) return why_fail(why, why_len, "the file is shorter than its header");
    memcpy(h, buf, sizeof *h);
    if (memcmp(h->magic, TS_RPC_MAGIC, sizeof h->magic) != 0) return why_fail(why, why_len, "not a tiefsee cache file");
    if (h->byte_order != TS_RPC_BYTE_ORDER) return why_fail(why, why_len, "written on a machine of another byte order");
    if (h->version != TS_RPC_VERSION)
        return why_fail(why, why_len, "format version %u, not %u", h->version, TS_RPC_VERSION);
    if (!memchr(h->model_path, '\0', sizeof h->model_path)) return why_fail(why, why_len, "the model path is not terminated");
    if (h->file_size != file_size)
        return why_fail(why, why_len, "%llu bytes long, its header says %llu (cut short?)", (unsigned long long)file_size,
                        (unsigned long long)h->file_size);
    const uint64_t max_items = (file_size - sizeof *h) / sizeof(ts_rpc_item);
    if (h->n_items > max_items) return why_fail(why, why_len, "more item records than the file holds");
    if ((len - sizeof *h) / sizeof(ts_rpc_item) < h->n_items) return 0; /* items not given: header only */
    uint64_t prev_end = sizeof *h + (uint64_t)h->n_items * sizeof(ts_rpc_item);
    for (uint32_t i = 0; i < h->n_items; i++) {
        ts_rpc_item it;
        memcpy(&it, (const char *)buf + sizeof *h + (size_t)i * sizeof it, sizeof it);
        if (it.cache_offset % TS_RPC_ALIGN != 0 || it.cache_offset < prev_end || it.cache_offset > file_size ||
            it.bytes > file_size - it.cache_offset)
            return why_fail(why, why_len, "matrix %u lies outside the file or overlaps another", i);
        prev_end = it.cache_offset + it.bytes;
    }
    return 0;
}

int ts_rpc_check(const void *buf, size_t len, uint64_t file_size, const ts_rpc_header *want_header,
                 const ts_rpc_item *want, uint32_t n_want, char *why, size_t why_len) {
    ts_rpc_header h;
    if (ts_rpc_parse(buf, len, file_size, &h, why, why_len) != 0) return -1;
    if (h.isa != want_header->isa) return why_fail(why, why_len, "made for another kernel set");
    if (strcmp(h.model_path, want_header->model_path) != 0)
        return why_fail(why, why_len, "made for another model file"); /* (its path: any bytes, so not echoed) */
    if (h.model_dev != want_header->model_dev || h.model_ino != want_header->model_ino ||
        h.model_size != want_header->model_size || h.model_mtime_ns != want_header->model_mtime_ns)
        return why_fail(why, why_len, "the model file changed since the cache was written");
    if (h.n_items != n_want)
        return why_fail(why, why_len, "holds %u matrices, the model has %u to repack", h.n_items, n_want);
    if ((len - sizeof h) / sizeof(ts_rpc_item) < n_want) return why_fail(why, why_len, "the item records are cut short");
    for (uint32_t i = 0; i < n_want; i++) {
        ts_rpc_item it;
        memcpy(&it, (const char *)buf + sizeof h + (size_t)i * sizeof it, sizeof it);
        const ts_rpc_item *w = &want[i];
        if (it.type != w->type || it.n_in != w->n_in || it.n_out != w->n_out || it.n_experts != w->n_experts)
            return why_fail(why, why_len, "matrix %u has another shape or type", i);
        if (it.src_offset != w->src_offset || it.src_dev != w->src_dev || it.src_ino != w->src_ino ||
            it.src_size != w->src_size || it.src_mtime_ns != w->src_mtime_ns)
            return why_fail(why, why_len, "the model file changed since the cache was written (matrix %u)", i);
        if (it.bytes != w->bytes || it.reserved != 0)
            return why_fail(why, why_len, "matrix %u has another repacked size", i);
    }
    return 0;
}

/* ---- what the model expects ------------------------------------------------------------------- */

typedef struct cache_plan {
    repack_list list;
    ts_rpc_header header; /* the header a matching file has (version, isa, model path and identity) */
    ts_rpc_item *want;    /* list.n */
    uint64_t file_size, bytes;
    size_t max_item; /* the largest item's bytes: the write path's buffer */
} cache_plan;

static void plan_free(cache_plan *p) {
    free(p->list.items);
    free(p->want);
}

static int make_plan(ts_model *m, cache_plan *p, ts_err *err) {
    memset(p, 0, sizeof *p);
    p->list.m = m;
    if (m->arch->each_matrix) {
        m->arch->each_matrix(m, ts_repack_collect, &p->list);
        ts_repack_collect(&p->list, &m->output, 1, NULL);
    }
    if (p->list.out_of_memory) return ts_fail(err, "out of memory listing the weights to repack");
    if (p->list.n == 0) return 0;
    char real[PATH_MAX];
    struct stat ms;
    if (!realpath(m->path, real) || stat(real, &ms) != 0) return ts_fail(err, "%s: %s", m->path, strerror(errno));
    if (strlen(real) >= TS_RPC_PATH_MAX) return ts_fail(err, "%s: path too long for a cache file's header", real);
    memcpy(p->header.magic, TS_RPC_MAGIC, sizeof p->header.magic);
    p->header.version = TS_RPC_VERSION;
    p->header.byte_order = TS_RPC_BYTE_ORDER;
    p->header.isa = (uint32_t)m->isa;
    p->header.n_items = (uint32_t)p->list.n;
    memcpy(p->header.model_path, real, strlen(real) + 1);
    p->header.model_dev = (uint64_t)ms.st_dev;
    p->header.model_ino = (uint64_t)ms.st_ino;
    p->header.model_size = (uint64_t)ms.st_size;
    p->header.model_mtime_ns = (uint64_t)ms.st_mtim.tv_sec * 1000000000u + (uint64_t)ms.st_mtim.tv_nsec;
    p->want = calloc((size_t)p->list.n, sizeof *p->want);
    if (!p->want) return ts_fail(err, "out of memory listing the weights to repack");
    uint64_t off = sizeof(ts_rpc_header) + (uint64_t)p->list.n * sizeof(ts_rpc_item);
    for (int i = 0; i < p->list.n; i++) {
        const repack_item *it = &p->list.items[i];
        const ts_matrix *w = it->w;
        size_t group_bytes, total;
        long n_groups;
        if (ts_repack_item_geometry(m, it, &group_bytes, &n_groups, &total, err) != 0) return -1;
        const size_t src_total = w->row_bytes * (size_t)w->n_out * (size_t)it->n_experts;
        int fd = -1;
        uint64_t src_offset = 0;
        struct stat st;
        if (gguf_file_range(m->file, w->data, src_total, &fd, &src_offset) != 0)
            return ts_fail(err, "%s: the weights are not in a file that a cache could be checked against", m->path);
        const int rc = fstat(fd, &st);
        close(fd);
        if (rc != 0) return ts_fail(err, "%s: %s", m->path, strerror(errno));
        off = (off + TS_RPC_ALIGN - 1) / TS_RPC_ALIGN * TS_RPC_ALIGN;
        p->want[i] = (ts_rpc_item){
            .type = (uint64_t)w->type, .n_in = (uint64_t)w->n_in, .n_out = (uint64_t)w->n_out,
            .n_experts = (uint64_t)it->n_experts, .src_offset = src_offset, .src_dev = (uint64_t)st.st_dev,
            .src_ino = (uint64_t)st.st_ino, .src_size = (uint64_t)st.st_size,
            .src_mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec,
            .cache_offset = off, .bytes = total};
        off += total;
        p->bytes += total;
        if (total > p->max_item) p->max_item = total;
    }
    p->file_size = off;
    p->header.file_size = off;
    return 0;
}

/* `DIR/NAME.ISA.HASH.tsrp`: one file per model path and kernel set, so a changed model file
 * replaces its own cache instead of leaving old ones behind. HASH (FNV-1a of the real path) keeps
 * two models of the same name in different folders apart. */
static int cache_path(const ts_model *m, const char *real, const char *dir, char *out, size_t out_len, ts_err *err) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *c = real; *c; c++) h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
    const char *base = strrchr(real, '/');
    base = base ? base + 1 : real;
    const int n = snprintf(out, out_len, "%s/%s.%s.%016llx.tsrp", dir, base, ts_isa_name(m->isa), (unsigned long long)h);
    if (n < 0 || (size_t)n >= out_len) return ts_fail(err, "the cache file's path under %s is too long", dir);
    return 0;
}

/* mkdir -p, owner-only for the folders it creates. */
static int make_dirs(const char *dir, ts_err *err) {
    char buf[PATH_MAX];
    const int n = snprintf(buf, sizeof buf, "%s", dir);
    if (n <= 0 || (size_t)n >= sizeof buf) return ts_fail(err, "cache folder %s: path too long", dir);
    for (char *c = buf + 1;; c++) {
        const bool end = *c == '\0';
        if (*c == '/' || end) {
            *c = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) return ts_fail(err, "cache folder %s: %s", buf, strerror(errno));
            if (end) break;
            *c = '/';
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return ts_fail(err, "cache folder %s is not a folder", dir);
    return 0;
}

/* ---- mapping an existing cache file ----------------------------------------------------------- */

typedef enum { MAP_OK, MAP_ABSENT, MAP_STALE } map_result;

/* Repacks group g of item it afresh and compares it with the cached bytes. */
static bool group_matches(const ts_model *m, const repack_item *it, size_t group_bytes, long g, const char *cached,
                          char *scratch) {
    const ts_matrix *w = it->w;
    const size_t src_group = TS_REPACK_ROWS * w->row_bytes;
    ts_repack_traits_for(m->isa, w->type)->repack((int)w->n_in, (const char *)w->data + (size_t)g * src_group,
                                                 w->row_bytes, scratch);
    return memcmp(scratch, cached + (size_t)g * group_bytes, group_bytes) == 0;
}

static map_result map_cache(ts_model *m, const cache_plan *p, const char *path, void **base_out, char *why,
                            size_t why_len) {
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return MAP_ABSENT;
        why_fail(why, why_len, "cannot open it: %s", strerror(errno));
        return MAP_STALE;
    }
    struct stat st;
    const size_t head_len = sizeof(ts_rpc_header) + (size_t)p->list.n * sizeof(ts_rpc_item);
    char *head = malloc(head_len);
    map_result r = MAP_STALE;
    void *base = MAP_FAILED;
    if (!head || fstat(fd, &st) != 0) {
        why_fail(why, why_len, "cannot read it");
        goto done;
    }
    const ssize_t got = pread(fd, head, head_len, 0);
    if (got < 0) {
        why_fail(why, why_len, "cannot read it: %s", strerror(errno));
        goto done;
    }
    if (ts_rpc_check(head, (size_t)got, (uint64_t)st.st_size, &p->header, p->want, (uint32_t)p->list.n, why, why_len) != 0)
        goto done;
    if ((uint64_t)st.st_size > SIZE_MAX) goto done;
    base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        why_fail(why, why_len, "cannot map it: %s", strerror(errno));
        goto done;
    }
    /* Decoding streams these bytes for every token: with huge pages the page cache reads the
     * file in 2 MiB folios that the mapping maps whole (as fast as the anonymous huge pages of an
     * in-memory repacking; 4 KiB pages measured ~20 % slower). Then start reading the file into
     * the page cache in the background. Both only hints. */
    (void)madvise(base, (size_t)st.st_size, MADV_HUGEPAGE);
    (void)madvise(base, (size_t)st.st_size, MADV_WILLNEED);
    /* Spot check: a changed layout (another tiefsee) or other weights in an identical-looking file
     * change every group, so the first and last of each matrix find them. */
    size_t max_group = 0;
    for (int i = 0; i < p->list.n; i++) {
        const size_t gb = ts_repack_group_bytes(p->list.items[i].w->type, p->list.items[i].w->n_in);
        if (gb > max_group) max_group = gb;
    }
    char *scratch = malloc(max_group);
    bool same = scratch != NULL;
    for (int i = 0; same && i < p->list.n; i++) {
        const repack_item *it = &p->list.items[i];
        const size_t gb = ts_repack_group_bytes(it->w->type, it->w->n_in);
        const long n_groups = (long)(p->want[i].bytes / gb);
        const char *cached = (const char *)base + p->want[i].cache_offset;
        same = group_matches(m, it, gb, 0, cached, scratch) && group_matches(m, it, gb, n_groups - 1, cached, scratch);
        if (!same) why_fail(why, why_len, "its bytes differ from the model's (matrix %d): another tiefsee or other weights", i);
    }
    free(scratch);
    if (!same) {
        munmap(base, (size_t)st.st_size);
        base = MAP_FAILED;
        goto done;
    }
    r = MAP_OK;
    *base_out = base;
done:
    free(head);
    close(fd);
    return r;
}

/* ---- writing a new cache file ----------------------------------------------------------------- */

uint64_t ts_rpc_keep_free(uint64_t total_bytes) {
    const uint64_t low = 1ull << 30, high = 4ull << 30;
    const uint64_t keep = total_bytes / 20;
    return keep < low ? low : keep > high ? high : keep;
}

int ts_rpc_room_ok(uint64_t need, uint64_t avail, uint64_t total_bytes) {
    return avail >= need && avail - need >= ts_rpc_keep_free(total_bytes);
}

/* A cache never fills the user's disk: it leaves ts_rpc_keep_free of its file system free. */
static int check_room(const char *dir, uint64_t need, ts_err *err) {
    struct statvfs fs;
    if (statvfs(dir, &fs) != 0) return ts_fail(err, "cache folder %s: %s", dir, strerror(errno));
    const uint64_t avail = (uint64_t)fs.f_bavail * fs.f_frsize, total = (uint64_t)fs.f_blocks * fs.f_frsize;
    if (!ts_rpc_room_ok(need, avail, total))
        return ts_fail(err, "not enough room in %s for the repacked weights' cache: %.2f GB needed, %.2f GB free "
                            "(keeping %.2f GB free)", dir, (double)need / 1e9, (double)avail / 1e9,
                       (double)ts_rpc_keep_free(total) / 1e9);
    return 0;
}

/* Removes PATH.tmp.PID.* files whose writer is gone (killed while writing a cache): each holds up to
 * a model's size of disk that nothing would ever reclaim. A live writer's file is left alone. */
static void remove_orphans(const char *dir, const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char prefix[PATH_MAX];
    const int n = snprintf(prefix, sizeof prefix, "%s.tmp.", base);
    if (n <= 0 || (size_t)n >= sizeof prefix) return;
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, (size_t)n) != 0) continue;
        char *end = NULL;
        errno = 0;
        const long pid = strtol(e->d_name + n, &end, 10);
        if (errno != 0 || !end || *end != '.' || pid <= 0 || pid > INT_MAX) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        char victim[PATH_MAX + 300];
        if (snprintf(victim, sizeof victim, "%s/%s", dir, e->d_name) < (int)sizeof victim) (void)unlink(victim);
    }
    closedir(d);
}

static int write_cache(ts_model *m, const cache_plan *p, int n_threads, const char *dir, const char *path,
                       ts_err *err) {
    remove_orphans(dir, path);
    if (check_room(dir, p->file_size, err) != 0) return -1;
    /* PATH.tmp.PID.XXXXXX: unique even for two writers in one process; the PID tells
     * remove_orphans whose it is. */
    char tmp[PATH_MAX + 40];
    const int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld.XXXXXX", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) return ts_fail(err, "the cache file's path is too long");
    const int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) return ts_fail(err, "cannot create %s: %s", tmp, strerror(errno));
    ts_threadpool *pool = NULL;
    void *buf = MAP_FAILED;
    int rc = ts_threadpool_new(n_threads, &pool, err);
    if (rc == 0) {
        buf = mmap(NULL, p->max_item, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (buf == MAP_FAILED) rc = ts_fail(err, "out of memory repacking the weights");
    }
    const size_t head_len = sizeof(ts_rpc_header) + (size_t)p->list.n * sizeof(ts_rpc_item);
    char *head = rc == 0 ? calloc(1, head_len) : NULL;
    if (rc == 0 && !head) rc = ts_fail(err, "out of memory writing the cache's header");
    if (rc == 0) {
        memcpy(head, &p->header, sizeof p->header);
        memcpy(head + sizeof p->header, p->want, (size_t)p->list.n * sizeof(ts_rpc_item));
    }
    /* The items first and the header last: a file cut short by a crash before the rename is a
     * temporary one anyway, and one cut short after it fails the size check. */
    for (int i = 0; rc == 0 && i < p->list.n; i++) {
        ts_repack_item_fill(m, pool, &p->list.items[i], buf);
        if (!ts_pwrite_full(fd, buf, p->want[i].bytes, p->want[i].cache_offset))
            rc = ts_fail(err, "writing %s: %s", tmp, errno ? strerror(errno) : "short write");
    }
    if (rc == 0 && !ts_pwrite_full(fd, head, head_len, 0))
        rc = ts_fail(err, "writing %s: %s", tmp, errno ? strerror(errno) : "short write");
    if (rc == 0 && ftruncate(fd, (off_t)p->file_size) != 0) rc = ts_fail(err, "writing %s: %s", tmp, strerror(errno));
    if (rc == 0 && fdatasync(fd) != 0) rc = ts_fail(err, "writing %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0) rc = ts_fail(err, "writing %s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0) rc = ts_fail(err, "renaming %s: %s", tmp, strerror(errno));
    if (rc != 0) unlink(tmp);
    free(head);
    if (buf != MAP_FAILED) munmap(buf, p->max_item);
    ts_threadpool_free(pool);
    return rc;
}

/* ---- the entry point -------------------------------------------------------------------------- */

static void switch_to(ts_model *m, const cache_plan *p, void *base) {
    for (int i = 0; i < p->list.n; i++) {
        const repack_item *it = &p->list.items[i];
        const ts_matrix *w = it->w;
        /* The file's copy is no longer read (the spot check touched a page or two of it). */
        gguf_release_range(m->file, w->data, w->row_bytes * (size_t)w->n_out * (size_t)it->n_experts);
        ts_repack_item_switch(m, it, (const char *)base + p->want[i].cache_offset);
    }
}

int ts_model_repack_cached(ts_model *m, int n_threads, const char *cache_dir, bool write, ts_repack_stats *stats,
                           char err_out[TS_ERR_LEN]) {
    ts_err err = {{0}};
    ts_repack_stats st = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (n_threads <= 0) {
        const long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cores > 0 && cores <= 1024 ? (int)cores : 1;
    }
    cache_plan p;
    int rc = make_plan(m, &p, &err);
    if (rc == 0 && p.list.n > 0) {
        rc = m->n_repacked + 1 <= m->cap_repacked ? 0 : -1;
        if (rc != 0) {
            const int cap = m->cap_repacked ? m->cap_repacked * 2 : 16;
            ts_owned_map *grown = realloc(m->repacked, (size_t)cap * sizeof *grown);
            if (grown) {
                m->repacked = grown;
                m->cap_repacked = cap;
                rc = 0;
            } else {
                ts_fail(&err, "out of memory");
            }
        }
        if (rc == 0 && write) rc = make_dirs(cache_dir, &err);
        if (rc == 0) rc = cache_path(m, p.header.model_path, cache_dir, st.cache_path, sizeof st.cache_path, &err);
        void *base = NULL;
        map_result r = MAP_ABSENT;
        if (rc == 0) r = map_cache(m, &p, st.cache_path, &base, st.cache_note, sizeof st.cache_note);
        if (rc == 0 && r != MAP_OK && !write) {
            rc = r == MAP_ABSENT ? ts_fail(&err, "no cache file %s", st.cache_path)
                                 : ts_fail(&err, "stale cache file %s: %s", st.cache_path, st.cache_note);
        } else if (rc == 0 && r != MAP_OK) {
            rc = write_cache(m, &p, n_threads, cache_dir, st.cache_path, &err);
            char why[sizeof st.cache_note];
            if (rc == 0 && map_cache(m, &p, st.cache_path, &base, why, sizeof why) != MAP_OK)
                rc = ts_fail(&err, "%s: the cache just written does not check: %s", st.cache_path, why);
            st.cache = TS_REPACK_CACHE_WRITTEN;
        } else if (rc == 0) {
            st.cache = TS_REPACK_CACHE_MAPPED;
        }
        if (rc == 0) {
            m->repacked[m->n_repacked++] = (ts_owned_map){.base = base, .size = (size_t)p.file_size};
            switch_to(m, &p, base);
            st.matrices = p.list.n;
            st.bytes = p.bytes;
        } else {
            st.cache = TS_REPACK_CACHE_NONE;
        }
    }
    plan_free(&p);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    st.seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (stats) *stats = st;
    if (rc != 0) {
        if (err_out) snprintf(err_out, TS_ERR_LEN, "%s", err.msg);
        return 1;
    }
    return 0;
}
