/* ts_context_*: thread pool, per-sequence KV caches and batch validation around the arch's forward
 * pass. */
#include "engine/context.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/arch.h"
#include "engine/profile.h"
#include "util/fp16.h"

/* A layer's K or V cache of `bytes`, zeroed. Large ones are anonymous mappings: pages are committed
 * only as positions fill, and on Linux they are marked for transparent huge pages — attention at
 * depth streams the whole cache every token, and with 4 KB pages a V2-Lite step at depth 8192 walks
 * the page tables every third row (7 % of the attention time in bench/kernels/bench_flash.c). */
enum { KV_MAP_MIN = 2 << 20 };

static void *kv_alloc(size_t n, size_t size) {
    if (size != 0 && n > SIZE_MAX / size) return NULL;
    const size_t bytes = n * size;
    if (bytes < KV_MAP_MIN) return calloc(bytes ? bytes : 1, 1);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#if defined(MADV_HUGEPAGE)
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: without it the cache still works */
#endif
    return p;
}

static void kv_free(void *p, size_t bytes) {
    if (!p) return;
    if (bytes < KV_MAP_MIN)
        free(p);
    else
        munmap(p, bytes);
}

const char *ts_cache_type_name(enum ts_cache_type t) {
    switch (t) {
    case TS_CACHE_F16: return "f16";
    case TS_CACHE_F32: return "f32";
    case TS_CACHE_BF16: return "bf16";
    case TS_CACHE_Q8_0: return "q8_0";
    }
    return NULL;
}

int ts_cache_type_from_name(const char *name, enum ts_cache_type *out) {
    static const enum ts_cache_type all[] = {TS_CACHE_F16, TS_CACHE_F32, TS_CACHE_BF16, TS_CACHE_Q8_0};
    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, ts_cache_type_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return -1;
}

int ts_cache_elem_type(enum ts_cache_type t) {
    switch (t) {
    case TS_CACHE_F16: return TS_TYPE_F16;
    case TS_CACHE_F32: return TS_TYPE_F32;
    case TS_CACHE_BF16: return TS_TYPE_BF16;
    case TS_CACHE_Q8_0: return TS_TYPE_Q8_0;
    }
    return -1;
}

void ts_kv_store_row(const ts_context *c, void *dst, const float *src, int n) {
    if (c->kv_type == TS_TYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
    } else {
        /* F16, BF16 and Q8_0: the activation conversion, which is what ggml's set_rows uses for
         * them (F16: the ISA's converter, round to nearest even like ts_f32_to_f16, 8 or more
         * values per instruction instead of a software conversion each). */
        c->model->types[c->kv_type].from_float(src, dst, n);
    }
}

ts_context_params ts_context_default_params(void) {
    return (ts_context_params){.n_ctx = 0, .n_seq_max = 1, .n_batch = 512, .n_threads = 0, .cache_type = TS_CACHE_F16};
}

static uint64_t physical_memory(void) {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 8ull << 30; /* unknown: assume a modest 8 GiB */
    return (uint64_t)pages * (uint64_t)page;
}

/* n_ctx = 0 resolves to the model's training context, capped so that the KV caches of all n_seq_max
 * sequences fit in half of the memory the weights leave free (physical RAM minus the file size),
 * with at least 1/8 of RAM allowed even for a model that nearly fills memory. The result is rounded
 * down to a multiple of 256 when above 256, and is at least min(256, n_ctx_train). */
int ts_context_auto_n_ctx(const ts_model *m, int n_seq_max, enum ts_cache_type cache_type) {
    const uint64_t ram = physical_memory();
    const uint64_t weights = gguf_total_size(m->file);
    uint64_t budget = weights < ram ? (ram - weights) / 2 : 0;
    if (budget < ram / 8) budget = ram / 8;
    const int elem_type = ts_cache_elem_type(cache_type);
    const uint64_t per_pos = ts_model_kv_bytes_per_token(m, elem_type < 0 ? TS_TYPE_F16 : elem_type) * (uint64_t)n_seq_max;
    uint64_t fit = per_pos ? budget / per_pos : (uint64_t)m->hp.n_ctx_train;
    if (fit > 256) fit -= fit % 256;
    uint64_t n = (uint64_t)m->hp.n_ctx_train < fit ? (uint64_t)m->hp.n_ctx_train : fit;
    const uint64_t floor = m->hp.n_ctx_train < 256 ? (uint64_t)m->hp.n_ctx_train : 256;
    if (n < floor) n = floor;
    return (int)n;
}

static void set_err(char err[TS_ERR_LEN], const ts_err *e) {
    if (err) snprintf(err, TS_ERR_LEN, "%s", e->msg);
}

/* A block type (Q8_0) can only hold rows whose width is a multiple of its block, and the dense
 * archs' attention reads one KV head's slice of a row (offset kv_head * head_dim), so there the head
 * widths must be multiples too. MLA reads whole latent rows. */
static int check_cache_widths(const ts_model *m, int kv_type, ts_err *err) {
    const int block = m->types[kv_type].block_size;
    if (block <= 1) return 0;
    bool sliced = false;
    for (int l = 0; l < m->hp.n_layer; l++) {
        int kw = 0, vw = 0;
        m->arch->kv_widths(m, l, &kw, &vw);
        if (kw % block || vw % block)
            return ts_fail(err, "a %s KV cache needs row widths that are multiples of %d; layer %d of this %s model has "
                           "K %d, V %d", ts_type_name(kv_type), block, l, m->arch->name, kw, vw);
        sliced |= vw > 0;
    }
    if (sliced && (m->hp.head_dim % block || m->hp.head_dim_v % block))
        return ts_fail(err, "a %s KV cache needs head widths that are multiples of %d; this %s model has head_dim %d "
                       "(value %d)", ts_type_name(kv_type), block, m->arch->name, m->hp.head_dim, m->hp.head_dim_v);
    return 0;
}

void ts_context_free(ts_context *c) {
    if (!c) return;
    if (c->model && c->model->arch->context_free) c->model->arch->context_free(c);
    if (c->kv) {
        for (int l = 0; l < c->model->hp.n_layer; l++) {
            kv_free(c->kv[l].k, c->kv[l].k_bytes);
            kv_free(c->kv[l].v, c->kv[l].v_bytes);
        }
    }
    free(c->kv);
    free(c->seq_len);
    free(c->seq_next);
    free(c->want_last);
    free(c->prof);
    ts_threadpool_free(c->pool);
    free(c);
}

int ts_context_new(ts_model *m, const ts_context_params *p_in, ts_context **out, char err_out[TS_ERR_LEN]) {
    ts_err err = {{0}};
    *out = NULL;
    ts_context_params p = p_in ? *p_in : ts_context_default_params();
    if (p.n_seq_max <= 0) p.n_seq_max = 1;
    if (p.n_batch <= 0) p.n_batch = 512;
    if (p.n_threads <= 0) {
        const long cores = sysconf(_SC_NPROCESSORS_ONLN);
        p.n_threads = cores > 0 ? (int)(cores < 1024 ? cores : 1024) : 1;
    }
    if (p.n_seq_max > 4096 || p.n_batch > 65536 || p.n_ctx < 0 || p.n_threads > 1024) {
        ts_fail(&err, "context parameters out of range (n_seq_max %d, n_batch %d, n_ctx %d, n_threads %d)", p.n_seq_max,
                p.n_batch, p.n_ctx, p.n_threads);
        set_err(err_out, &err);
        return -1;
    }
    const int kv_type = ts_cache_elem_type(p.cache_type);
    if (kv_type < 0) {
        ts_fail(&err, "unknown cache type %d", (int)p.cache_type);
        set_err(err_out, &err);
        return -1;
    }
    if (check_cache_widths(m, kv_type, &err) != 0) {
        set_err(err_out, &err);
        return -1;
    }
    if (p.n_ctx == 0) p.n_ctx = ts_context_auto_n_ctx(m, p.n_seq_max, p.cache_type);

    ts_context *c = calloc(1, sizeof *c);
    if (!c) {
        ts_fail(&err, "out of memory");
        set_err(err_out, &err);
        return -1;
    }
    c->model = m;
    c->params = p;
    c->n_ctx = p.n_ctx;
    c->kv_type = kv_type;

    c->seq_len = calloc((size_t)p.n_seq_max, sizeof *c->seq_len);
    c->seq_next = calloc((size_t)p.n_seq_max, sizeof *c->seq_next);
    c->want_last = calloc((size_t)p.n_batch, sizeof *c->want_last);
    c->kv = calloc((size_t)m->hp.n_layer, sizeof *c->kv);
    if (!c->seq_len || !c->seq_next || !c->want_last || !c->kv) {
        ts_fail(&err, "out of memory");
        goto fail;
    }
    for (int l = 0; l < m->hp.n_layer; l++) {
        ts_kv_layer *kv = &c->kv[l];
        m->arch->kv_widths(m, l, &kv->k_width, &kv->v_width);
        const size_t rows = (size_t)p.n_seq_max * (size_t)p.n_ctx;
        if (kv->k_width > 0) {
            kv->k = kv_alloc(rows, ts_row_size(kv_type, kv->k_width));
            kv->k_bytes = rows * ts_row_size(kv_type, kv->k_width);
        }
        if (kv->v_width > 0) {
            kv->v = kv_alloc(rows, ts_row_size(kv_type, kv->v_width));
            kv->v_bytes = rows * ts_row_size(kv_type, kv->v_width);
        }
        if ((kv->k_width > 0 && !kv->k) || (kv->v_width > 0 && !kv->v)) {
            ts_fail(&err, "out of memory allocating the KV cache (n_ctx %d x %d sequences)", p.n_ctx, p.n_seq_max);
            goto fail;
        }
    }
    if (ts_threadpool_new(p.n_threads, &c->pool, &err) != 0) goto fail;
    if (m->arch->context_init && m->arch->context_init(c, &err) != 0) goto fail;
    *out = c;
    return 0;

fail:
    set_err(err_out, &err);
    ts_context_free(c);
    return -1;
}

int ts_context_n_ctx(const ts_context *c) { return c->n_ctx; }

size_t ts_context_kv_bytes_per_token(const ts_context *c) {
    return (size_t)ts_model_kv_bytes_per_token(c->model, c->kv_type);
}

static int validate_batch(ts_context *c, const ts_batch *b, ts_err *err) {
    const int n_vocab = c->model->hp.n_vocab;
    if (!b || b->n_tokens < 1) return ts_fail(err, "empty batch");
    if (b->n_tokens > c->params.n_batch)
        return ts_fail(err, "batch of %d tokens exceeds n_batch %d", b->n_tokens, c->params.n_batch);
    if (!b->tokens || !b->pos || !b->seq) return ts_fail(err, "batch is missing tokens, positions or sequence ids");
    memcpy(c->seq_next, c->seq_len, (size_t)c->params.n_seq_max * sizeof *c->seq_next);
    for (int i = 0; i < b->n_tokens; i++) {
        const int s = b->seq[i], p = b->pos[i];
        if (b->tokens[i] < 0 || b->tokens[i] >= n_vocab)
            return ts_fail(err, "token %d at batch index %d is out of range (n_vocab %d)", b->tokens[i], i, n_vocab);
        if (s < 0 || s >= c->params.n_seq_max)
            return ts_fail(err, "sequence id %d at batch index %d is out of range (n_seq_max %d)", s, i, c->params.n_seq_max);
        if (p != c->seq_next[s])
            return ts_fail(err, "sequence %d: position %d at batch index %d, expected %d (positions must continue the cache)",
                           s, p, i, c->seq_next[s]);
        if (p >= c->n_ctx) return ts_fail(err, "sequence %d: position %d is beyond the context size %d", s, p, c->n_ctx);
        c->seq_next[s]++;
    }
    return 0;
}

int ts_decode(ts_context *c, const ts_batch *b, float *logits, char err_out[TS_ERR_LEN]) {
    ts_err err = {{0}};
    if (validate_batch(c, b, &err) != 0) {
        set_err(err_out, &err);
        return -1;
    }
    const bool *want = b->want_logits;
    if (!want) {
        memset(c->want_last, 0, (size_t)b->n_tokens * sizeof *c->want_last);
        c->want_last[b->n_tokens - 1] = true;
        want = c->want_last;
    }
    bool any = false;
    for (int i = 0; i < b->n_tokens; i++) any |= want[i];
    if (any && !logits) {
        ts_fail(&err, "logits requested but no output buffer given");
        set_err(err_out, &err);
        return -1;
    }
    const double t0 = ts_prof_begin(c);
    if (c->model->arch->forward(c, b, want, logits, &err) != 0) {
        set_err(err_out, &err);
        return -1;
    }
    if (c->prof) {
        c->prof->seconds += ts_prof_now() - t0;
        c->prof->decodes++;
        c->prof->tokens += (uint64_t)b->n_tokens;
    }
    memcpy(c->seq_len, c->seq_next, (size_t)c->params.n_seq_max * sizeof *c->seq_len);
    return 0;
}

/* ---- Profiling --------------------------------------------------------------------------------- */

const char *ts_step_name(enum ts_step s) {
    static const char *const names[TS_STEP_COUNT] = {
        [TS_STEP_EMBED] = "embed",         [TS_STEP_NORM] = "norm",       [TS_STEP_ATTN_IN] = "attn_in",
        [TS_STEP_ATTENTION] = "attention", [TS_STEP_ATTN_OUT] = "attn_out", [TS_STEP_FFN_IN] = "ffn_in",
        [TS_STEP_FFN_ACT] = "ffn_act",     [TS_STEP_FFN_OUT] = "ffn_out", [TS_STEP_MOE] = "moe",
        [TS_STEP_OUTPUT] = "output",
    };
    return (unsigned)s < TS_STEP_COUNT ? names[s] : NULL;
}

int ts_context_set_profiling(ts_context *c, bool on) {
    if (!on) {
        free(c->prof);
        c->prof = NULL;
        return 0;
    }
    if (!c->prof && !(c->prof = malloc(sizeof *c->prof))) return -1;
    memset(c->prof, 0, sizeof *c->prof);
    return 0;
}

ts_profile ts_context_profile(const ts_context *c) {
    ts_profile p;
    if (c->prof) return *c->prof;
    memset(&p, 0, sizeof p);
    return p;
}

void ts_seq_truncate(ts_context *c, int seq, int from_pos) {
    if (seq < 0 || seq >= c->params.n_seq_max || from_pos < 0) return;
    if (from_pos < c->seq_len[seq]) c->seq_len[seq] = from_pos;
}

int ts_seq_len(const ts_context *c, int seq) {
    if (seq < 0 || seq >= c->params.n_seq_max) return -1;
    return c->seq_len[seq];
}
