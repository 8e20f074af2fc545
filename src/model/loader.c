/* ts_model_load and the helpers arch loaders use to read keys and tensors with exact errors. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/arch.h"
#include "model/model.h"

static void key_name(const ts_model *m, const char *suffix, char *buf, size_t cap) {
    snprintf(buf, cap, "%s.%s", m->arch->name, suffix);
}

static int get_u32(ts_model *m, const char *suffix, int *out, bool required, ts_err *err) {
    char key[256];
    key_name(m, suffix, key, sizeof key);
    uint32_t v;
    int rc = gguf_get_u32(m->file, key, &v, err);
    if (rc < 0) return -1;
    if (rc == 1) return required ? ts_fail(err, "%s: missing key '%s'", m->path, key) : 0;
    if (v > (uint32_t)INT32_MAX) return ts_fail(err, "%s: key '%s' = %" PRIu32 " is too large", m->path, key, v);
    *out = (int)v;
    return 0;
}

int ts_model_req_u32(ts_model *m, const char *suffix, int *out, ts_err *err) { return get_u32(m, suffix, out, true, err); }
int ts_model_opt_u32(ts_model *m, const char *suffix, int *out, ts_err *err) { return get_u32(m, suffix, out, false, err); }

static int get_f32(ts_model *m, const char *suffix, float *out, bool required, ts_err *err) {
    char key[256];
    key_name(m, suffix, key, sizeof key);
    int rc = gguf_get_f32(m->file, key, out, err);
    if (rc < 0) return -1;
    if (rc == 1 && required) return ts_fail(err, "%s: missing key '%s'", m->path, key);
    return 0;
}

int ts_model_req_f32(ts_model *m, const char *suffix, float *out, ts_err *err) { return get_f32(m, suffix, out, true, err); }
int ts_model_opt_f32(ts_model *m, const char *suffix, float *out, ts_err *err) { return get_f32(m, suffix, out, false, err); }

int ts_model_opt_str(ts_model *m, const char *suffix, char *buf, size_t cap, ts_err *err) {
    char key[256];
    key_name(m, suffix, key, sizeof key);
    gguf_str s;
    int rc = gguf_get_str(m->file, key, &s, err);
    if (rc < 0) return -1;
    if (rc == 1) return 0;
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(buf, s.ptr, n);
    buf[n] = 0;
    return 1;
}

static void format_dims(char *buf, size_t cap, int n_dims, const int64_t *ne) {
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n_dims && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%" PRId64, i ? ", " : "", ne[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

int ts_model_tensor(ts_model *m, const char *name, int n_dims, const int64_t *ne, bool optional,
                    const gguf_tensor **out, ts_err *err) {
    *out = NULL;
    const gguf_tensor *t = gguf_find_tensor(m->file, name);
    if (!t) {
        if (optional) return 1;
        return ts_fail(err, "%s: tensor '%s' is missing", m->path, name);
    }
    bool same = true;
    for (int i = 0; i < GGUF_MAX_DIMS; i++) {
        const int64_t want = i < n_dims ? ne[i] : 1;
        if (t->ne[i] != want) same = false;
    }
    if (!same) {
        char have[96], want[96];
        format_dims(have, sizeof have, t->n_dims > n_dims ? t->n_dims : n_dims, t->ne);
        format_dims(want, sizeof want, n_dims, ne);
        return ts_fail(err, "%s: tensor '%s' has shape %s, expected %s", m->path, name, have, want);
    }
    if (t->type < 0 || t->type >= TS_TYPE_COUNT || !m->types[t->type].supported || !m->types[t->type].block_size) {
        const char *tn = ts_type_name(t->type);
        return ts_fail(err, "%s: tensor '%s' has type %s, which is not supported", m->path, name, tn ? tn : "unknown");
    }
    if (t->ne[0] % m->types[t->type].block_size != 0)
        return ts_fail(err, "%s: tensor '%s' has %" PRId64 " columns, not a multiple of the %s block size %d", m->path,
                       name, t->ne[0], m->types[t->type].name, m->types[t->type].block_size);
    *out = t;
    return 0;
}

int ts_model_matrix(ts_model *m, const char *name, int64_t n_in, int64_t n_out, bool optional, ts_matrix *out,
                    ts_err *err) {
    memset(out, 0, sizeof *out);
    const int64_t ne[2] = {n_in, n_out};
    const gguf_tensor *t;
    int rc = ts_model_tensor(m, name, 2, ne, optional, &t, err);
    if (rc != 0) return rc;
    const ts_type_traits *tr = &m->types[t->type];
    const int vdt = tr->vec_dot_type;
    if (!tr->vec_dot || vdt < 0 || vdt >= TS_TYPE_COUNT || (vdt != TS_TYPE_F32 && !m->types[vdt].from_float))
        return ts_fail(err, "%s: tensor '%s' has type %s, which is not supported for weight matrices", m->path, name,
                       tr->name);
    out->data = t->data;
    out->type = t->type;
    out->n_in = n_in;
    out->n_out = n_out;
    out->row_bytes = ts_row_size(t->type, n_in);
    return 0;
}

int ts_model_vector(ts_model *m, const char *name, int64_t n, bool optional, const float **out, ts_err *err) {
    *out = NULL;
    const gguf_tensor *t;
    int rc = ts_model_tensor(m, name, 1, &n, optional, &t, err);
    if (rc != 0) return rc;
    if (!m->types[t->type].to_float)
        return ts_fail(err, "%s: tensor '%s' has type %s, which cannot be converted to f32", m->path, name,
                       m->types[t->type].name);
    if (m->n_vectors == m->cap_vectors) {
        int cap = m->cap_vectors ? m->cap_vectors * 2 : 64;
        float **grown = realloc(m->vectors, (size_t)cap * sizeof *grown);
        if (!grown) return ts_fail(err, "out of memory loading '%s'", name);
        m->vectors = grown;
        m->cap_vectors = cap;
    }
    float *v = malloc((size_t)n * sizeof(float));
    if (!v) return ts_fail(err, "out of memory loading '%s'", name);
    m->types[t->type].to_float(t->data, v, n);
    m->vectors[m->n_vectors++] = v;
    *out = v;
    return 0;
}

void ts_model_free(ts_model *m) {
    if (!m) return;
    if (m->arch && m->arch->free) m->arch->free(m);
    if (m->vocab) ts_vocab_free(m->vocab);
    for (int i = 0; i < m->n_repacked; i++) munmap(m->repacked[i].base, m->repacked[i].size);
    free(m->repacked);
    for (int i = 0; i < m->n_vectors; i++) free(m->vectors[i]);
    free(m->vectors);
    free(m->layers);
    gguf_close(m->file);
    free(m);
}

static void collect_stats(ts_model *m) {
    for (int64_t i = 0; i < gguf_n_tensors(m->file); i++) {
        const gguf_tensor *t = gguf_tensor_at(m->file, i);
        uint64_t n = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) n *= (uint64_t)t->ne[d];
        m->n_params += n;
        m->weight_bytes += t->nbytes;
        if (t->type >= 0 && t->type < TS_TYPE_COUNT) m->type_counts[t->type]++;
    }
}

int ts_model_load(const char *path, ts_model **out, char err_out[TS_ERR_LEN]) {
    return ts_model_load_isa(path, NULL, out, err_out);
}

int ts_model_load_isa(const char *path, const char *isa_name, ts_model **out, char err_out[TS_ERR_LEN]) {
    ts_err err = {{0}};
    *out = NULL;
    enum ts_isa isa = ts_isa_best();
    if (isa_name && strcmp(isa_name, "auto") != 0) {
        const int chosen = ts_isa_from_name(isa_name);
        if (chosen < 0) {
            if (err_out)
                snprintf(err_out, TS_ERR_LEN, "unknown instruction set '%s' (avx512, avxvnni, avx2, neon, scalar or auto)", isa_name);
            return -1;
        }
        if (!ts_isa_supported((enum ts_isa)chosen)) {
            if (err_out)
                snprintf(err_out, TS_ERR_LEN, "this %s cannot run %s kernels (best here: %s)",
                         chosen == TS_ISA_SCALAR ? "build" : "build or CPU", isa_name, ts_isa_name(isa));
            return -1;
        }
        isa = (enum ts_isa)chosen;
    }
    ts_model *m = calloc(1, sizeof *m);
    if (!m) {
        if (err_out) snprintf(err_out, TS_ERR_LEN, "out of memory");
        return -1;
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    m->isa = isa;
    m->types = ts_type_table(m->isa);

    if (gguf_open(path, &m->file, &err) != 0) goto fail;

    gguf_str arch;
    int rc = gguf_get_str(m->file, "general.architecture", &arch, &err);
    if (rc < 0) goto fail;
    if (rc == 1) {
        ts_fail(&err, "%s: missing key 'general.architecture'", path);
        goto fail;
    }
    char arch_name[64];
    size_t n = arch.len < sizeof arch_name - 1 ? (size_t)arch.len : sizeof arch_name - 1;
    memcpy(arch_name, arch.ptr, n);
    arch_name[n] = 0;
    m->arch = ts_arch_find(arch_name);
    if (!m->arch) {
        ts_fail(&err, "%s: architecture '%s' is not supported (supported: %s)", path, arch_name,
                ts_arch_supported_list());
        goto fail;
    }

    gguf_str gname;
    rc = gguf_get_str(m->file, "general.name", &gname, &err);
    if (rc < 0) goto fail;
    if (rc == 0) {
        n = gname.len < sizeof m->name - 1 ? (size_t)gname.len : sizeof m->name - 1;
        memcpy(m->name, gname.ptr, n);
        m->name[n] = 0;
    } else {
        const char *base = strrchr(path, '/');
        snprintf(m->name, sizeof m->name, "%s", base ? base + 1 : path);
    }

    if (m->arch->load(m, &err) != 0) goto fail;
    if (ts_vocab_load(m->file, m->hp.n_vocab, &m->vocab, &err) != 0) goto fail;
    collect_stats(m);
    /* Start reading the weights into the page cache in the background (MADV_WILLNEED), so the
     * first forward pass does not wait for the disk page by page — unless the file is more than
     * half the machine's memory, where reading all of it ahead would push out what it needs. */
    const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page_size > 0 && gguf_total_size(m->file) <= (uint64_t)pages * (uint64_t)page_size / 2)
        gguf_prefetch(m->file);
    *out = m;
    return 0;

fail:
    if (err_out) snprintf(err_out, TS_ERR_LEN, "%s", err.msg);
    ts_model_free(m);
    return -1;
}
