/* ts_model_repack: moves the weight matrices that have a repacked layout on this CPU into it
 * (quant/repack.h says why and what the layouts are). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "arch/arch.h"
#include "model/model.h"
#include "model/repack_internal.h"
#include "quant/repack.h"
#include "util/fileio.h"
#include "util/threadpool.h"

static const ts_repack_traits *repackable(const ts_model *m, const ts_matrix *w) {
    if (!w->data || w->repack || w->n_out % TS_REPACK_ROWS != 0) return NULL;
    /* The token embedding's rows are looked up, not multiplied: a tied output matrix keeps the
     * file layout (repacking a copy would hold the embedding twice). */
    if (w->data == m->tok_embd.data) return NULL;
    if (ts_repack_group_bytes(w->type, w->n_in) == 0) return NULL;
    return ts_repack_traits_for(m->isa, w->type);
}

void ts_repack_collect(void *user, ts_matrix *w, int n_experts, size_t *expert_bytes) {
    repack_list *l = user;
    if (!repackable(l->m, w) || n_experts < 1) return;
    if (l->n == l->cap) {
        const int cap = l->cap ? l->cap * 2 : 256;
        repack_item *grown = realloc(l->items, (size_t)cap * sizeof *grown);
        if (!grown) {
            l->out_of_memory = true;
            return;
        }
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->n++] = (repack_item){.w = w, .n_experts = n_experts, .expert_bytes = expert_bytes};
}

typedef struct repack_job {
    const ts_repack_traits *rt;
    const char *src; /* the groups' rows in the file layout, one after another (experts too) */
    int fd;          /* >= 0: read the source with pread at src_offset instead of through the mapping */
    uint64_t src_offset;
    size_t row_bytes;
    char *dst;
    size_t group_bytes;
    long n_groups;
    int n;
} repack_job;

/* Source bytes a thread reads per pread: big enough to make the call overhead negligible, small
 * enough to stay in L2/L3 until it is repacked. */
#define REPACK_CHUNK_BYTES (2u << 20)

static void repack_task(void *arg, int ith, int nth) {
    const repack_job *j = arg;
    long begin, end;
    ts_split_range(j->n_groups, ith, nth, &begin, &end);
    const size_t src_group = TS_REPACK_ROWS * j->row_bytes;
    long per_chunk = (long)(REPACK_CHUNK_BYTES / src_group);
    if (per_chunk < 1) per_chunk = 1;
    char *buf = j->fd >= 0 ? malloc((size_t)per_chunk * src_group) : NULL;
    for (long k0 = begin; k0 < end; k0 += per_chunk) {
        const long k1 = k0 + per_chunk < end ? k0 + per_chunk : end;
        const size_t bytes = (size_t)(k1 - k0) * src_group;
        /* Reading through the mapping costs a page fault per page touched for the first time; a
         * pread copies the same page-cache bytes without them. The mapping is the fallback. */
        const char *src = j->src + (size_t)k0 * src_group;
        if (buf && ts_pread_full(j->fd, buf, bytes, j->src_offset + (uint64_t)k0 * src_group)) src = buf;
        for (long k = k0; k < k1; k++)
            j->rt->repack(j->n, src + (size_t)(k - k0) * src_group, j->row_bytes, j->dst + (size_t)k * j->group_bytes);
    }
    free(buf);
}

int ts_repack_item_geometry(const ts_model *m, const repack_item *it, size_t *group_bytes, long *n_groups,
                            size_t *total, ts_err *err) {
    const ts_matrix *w = it->w;
    const size_t gb = ts_repack_group_bytes(w->type, w->n_in);
    const long groups_per_expert = (long)(w->n_out / TS_REPACK_ROWS);
    const size_t expert_bytes = (size_t)groups_per_expert * gb;
    if (gb == 0 || expert_bytes / gb != (size_t)groups_per_expert || expert_bytes > SIZE_MAX / (size_t)it->n_experts)
        return ts_fail(err, "%s: a %s matrix of %lld x %lld is too large to repack", m->path, ts_type_name(w->type),
                       (long long)w->n_out, (long long)w->n_in);
    /* In the file layout an expert stack's matrices follow each other (expert_bytes = rows x
     * row_bytes), so all groups' source rows are one contiguous range. */
    if (it->expert_bytes && *it->expert_bytes != w->row_bytes * (size_t)w->n_out)
        return ts_fail(err, "%s: an expert stack with a gap between experts cannot be repacked", m->path);
    *group_bytes = gb;
    *n_groups = groups_per_expert * it->n_experts;
    *total = expert_bytes * (size_t)it->n_experts;
    return 0;
}

void ts_repack_item_fill(const ts_model *m, ts_threadpool *pool, const repack_item *it, void *dst) {
    const ts_matrix *w = it->w;
    size_t group_bytes = 0, total = 0;
    long n_groups = 0;
    ts_err ignored;
    if (ts_repack_item_geometry(m, it, &group_bytes, &n_groups, &total, &ignored) != 0) return; /* checked by callers */
    const size_t src_total = w->row_bytes * (size_t)w->n_out * (size_t)it->n_experts;
    repack_job j = {.rt = ts_repack_traits_for(m->isa, w->type), .src = w->data, .fd = -1, .row_bytes = w->row_bytes,
                    .dst = dst, .group_bytes = group_bytes, .n_groups = n_groups, .n = (int)w->n_in};
    if (gguf_file_range(m->file, w->data, src_total, &j.fd, &j.src_offset) != 0) j.fd = -1;
    ts_threadpool_run(pool, repack_task, &j);
    if (j.fd >= 0) close(j.fd);
}

/* Repacks one matrix (or expert stack) into dst (total bytes of the arena) and switches it over. */
static void repack_one(ts_model *m, ts_threadpool *pool, const repack_item *it, void *dst) {
    const ts_matrix *w = it->w;
    ts_repack_item_fill(m, pool, it, dst);
    /* The file's copy is no longer read: give its pages back (they stay in the page cache). */
    gguf_release_range(m->file, w->data, w->row_bytes * (size_t)w->n_out * (size_t)it->n_experts);
    ts_repack_item_switch(m, it, dst);
}

/* Every repacked matrix lives in one anonymous mapping whose start is aligned to 2 MiB, each at an
 * offset rounded up to 4 KiB. Decoding streams these bytes for every token, and the TLB misses of
 * 4 KiB pages cost bandwidth (under a hypervisor a miss walks two page tables): one mapping per
 * matrix left every matrix under 2 MiB, and the edges of the larger ones, on small pages (26 % of
 * R1-Distill-Qwen-1.5B's weights), since a huge page needs an aligned 2 MiB inside one mapping.
 * One thread streaming a Q6_K matrix from memory: 25.0 GB/s on small pages, 29.9-32.2 on huge
 * ones (Q4_K 26.3-28.0 against 27.9-29.1). */
#define REPACK_HUGE_PAGE ((size_t)2 << 20)
#define REPACK_ITEM_ALIGN ((size_t)4096)

static int repack_arena(ts_model *m, const repack_list *list, size_t *offsets, uint64_t *bytes_out, char **base_out,
                        ts_err *err) {
    size_t total = 0;
    uint64_t sum = 0;
    for (int i = 0; i < list->n; i++) {
        size_t group_bytes, bytes;
        long n_groups;
        if (ts_repack_item_geometry(m, &list->items[i], &group_bytes, &n_groups, &bytes, err) != 0) return -1;
        offsets[i] = total;
        sum += bytes;
        if (bytes > SIZE_MAX - REPACK_HUGE_PAGE - REPACK_ITEM_ALIGN - total)
            return ts_fail(err, "%s: the repacked weights do not fit the address space", m->path);
        total = (total + bytes + REPACK_ITEM_ALIGN - 1) & ~(REPACK_ITEM_ALIGN - 1);
    }
    const size_t mapped = total + REPACK_HUGE_PAGE;
    char *map = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return ts_fail(err, "out of memory repacking the weights: %zu more bytes needed (run without --repack)", total);
    if (m->n_repacked == m->cap_repacked) {
        const int cap = m->cap_repacked ? m->cap_repacked * 2 : 4;
        ts_owned_map *grown = realloc(m->repacked, (size_t)cap * sizeof *grown);
        if (!grown) {
            munmap(map, mapped);
            return ts_fail(err, "out of memory repacking the weights");
        }
        m->repacked = grown;
        m->cap_repacked = cap;
    }
    m->repacked[m->n_repacked++] = (ts_owned_map){.base = map, .size = mapped};
    char *base = (char *)(((uintptr_t)map + REPACK_HUGE_PAGE - 1) & ~(uintptr_t)(REPACK_HUGE_PAGE - 1));
    (void)madvise(base, total, MADV_HUGEPAGE); /* only a hint */
    *bytes_out = sum;
    *base_out = base;
    return 0;
}

void ts_repack_item_switch(ts_model *m, const repack_item *it, const void *dst) {
    const ts_matrix *w = it->w;
    const size_t group_bytes = ts_repack_group_bytes(w->type, w->n_in);
    it->w->data = dst;
    it->w->repack = ts_repack_traits_walk(m->isa, w->type, m->walk);
    if (it->expert_bytes) *it->expert_bytes = (size_t)(w->n_out / TS_REPACK_ROWS) * group_bytes;
}

static void set_walk_visit(void *user, ts_matrix *w, int n_experts, size_t *expert_bytes) {
    (void)n_experts;
    (void)expert_bytes;
    const ts_model *m = user;
    if (!w->repack) return;
    const ts_repack_traits *rt = ts_repack_traits_walk(m->isa, w->type, m->walk);
    /* Both walks of a type read one layout: only the product changes. */
    if (rt && rt->block_bytes == w->repack->block_bytes) w->repack = rt;
}

int ts_model_set_walk(ts_model *m, const char *walk, char err[TS_ERR_LEN]) {
    enum ts_walk wk;
    if (walk && strcmp(walk, "pairs") == 0)
        wk = TS_WALK_PAIRS;
    else if (walk && strcmp(walk, "one-group") == 0)
        wk = TS_WALK_ONE_GROUP;
    else if (walk && strcmp(walk, "auto") == 0)
        wk = TS_WALK_AUTO;
    else {
        if (err) snprintf(err, TS_ERR_LEN, "unknown walk '%s' (auto, pairs, one-group)", walk ? walk : "(null)");
        return -1;
    }
    m->walk = wk;
    if (m->arch->each_matrix) m->arch->each_matrix(m, set_walk_visit, m);
    set_walk_visit(m, &m->output, 1, NULL); /* a tied output keeps the file layout: nothing to switch */
    return 0;
}

uint64_t ts_model_repack_bytes(const ts_model *m) {
    if (!m->arch->each_matrix) return 0;
    repack_list list = {.m = m};
    /* the visitor hands out writable views; nothing is written here */
    m->arch->each_matrix((ts_model *)m, ts_repack_collect, &list);
    ts_repack_collect(&list, (ts_matrix *)&m->output, 1, NULL);
    uint64_t bytes = 0;
    for (int i = 0; !list.out_of_memory && i < list.n; i++) {
        const ts_matrix *w = list.items[i].w;
        const uint64_t per_expert = (uint64_t)ts_repack_group_bytes(w->type, w->n_in) * (uint64_t)(w->n_out / TS_REPACK_ROWS);
        bytes += per_expert * (uint64_t)list.items[i].n_experts;
    }
    free(list.items);
    return list.out_of_memory ? 0 : bytes;
}

int ts_model_repack(ts_model *m, int n_threads, ts_repack_stats *stats, char err_out[TS_ERR_LEN]) {
    ts_err err = {{0}};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (stats) memset(stats, 0, sizeof *stats);
    if (!m->arch->each_matrix) return 0; /* an arch without the visitor keeps the file layout */
    repack_list list = {.m = m};
    m->arch->each_matrix(m, ts_repack_collect, &list);
    ts_repack_collect(&list, &m->output, 1, NULL);
    int rc = 0;
    uint64_t bytes = 0;
    if (list.out_of_memory) {
        rc = ts_fail(&err, "out of memory listing the weights to repack");
    } else if (list.n > 0) {
        ts_threadpool *pool = NULL;
        if (n_threads <= 0) {
            const long cores = sysconf(_SC_NPROCESSORS_ONLN);
            n_threads = cores > 0 && cores <= 1024 ? (int)cores : 1;
        }
        size_t *offsets = malloc((size_t)list.n * sizeof *offsets);
        char *base = NULL;
        rc = offsets ? 0 : ts_fail(&err, "out of memory listing the weights to repack");
        if (rc == 0) rc = repack_arena(m, &list, offsets, &bytes, &base, &err);
        if (rc == 0) rc = ts_threadpool_new(n_threads, &pool, &err);
        /* Each matrix switches over only once it is complete. */
        for (int i = 0; rc == 0 && i < list.n; i++) repack_one(m, pool, &list.items[i], base + offsets[i]);
        if (rc != 0) bytes = 0;
        free(offsets);
        ts_threadpool_free(pool);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (stats) {
        stats->matrices = rc == 0 ? list.n : 0;
        stats->bytes = bytes;
        stats->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    }
    free(list.items);
    if (rc != 0 && err_out) snprintf(err_out, TS_ERR_LEN, "%s", err.msg);
    return rc;
}
