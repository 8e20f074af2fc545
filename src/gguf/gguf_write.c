/* GGUF v3 writer. The header (metadata and tensor infos) is built in memory; tensor data is
 * streamed by the caller straight to the FILE, so a multi-GB model never has to sit in memory.
 * Tensors are laid out in the order they were declared, each at a multiple of general.alignment
 * (default 32), and the file ends padded to the alignment, as ggml's writer does.
 *
 * The setters return nothing, so the first misuse (bad type, duplicate tensor, out of memory) is
 * remembered and reported by gguf_writer_write_header. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "quant/types.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF writer copies host values as little-endian and needs a little-endian host"
#endif

typedef struct writer_kv {
    char *key;
    uint8_t *value; /* serialized type tag + value, exactly as in the file */
    size_t value_len;
} writer_kv;

typedef struct writer_tensor {
    char name[128];
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    int type;
    size_t nbytes;
    uint64_t offset;
} writer_tensor;

struct gguf_writer {
    writer_kv *kvs;
    size_t n_kv, cap_kv;
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
    bool failed;
    char first_error[400];
    /* Streaming state, set by write_header. */
    bool header_written;
    size_t alignment;
    uint64_t pos;           /* bytes written so far */
    size_t cur;             /* tensor being written */
    size_t cur_written;     /* bytes of it written */
};

/* A growable byte buffer for serializing one value. */
typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
    if (b->oom || n == 0) return; /* n == 0 may come with src == NULL (an empty array) */
    if (n > SIZE_MAX - b->len) {
        b->oom = true;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u32(bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(bytes *b, uint64_t v) { put(b, &v, 8); }
static void put_str(bytes *b, const char *s) {
    size_t n = strlen(s);
    put_u64(b, n);
    put(b, s, n);
}

static void fail_once(gguf_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_once(gguf_writer *w, const char *fmt, ...) {
    if (w->failed) return;
    w->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->first_error, sizeof w->first_error, fmt, ap);
    va_end(ap);
}

static size_t scalar_size(enum gguf_vtype t) {
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

gguf_writer *gguf_writer_new(void) { return calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].value);
    }
    free(w->kvs);
    free(w->tensors);
    free(w);
}

/* Stores a serialized value under key, replacing an earlier value of the same key (so a caller
 * can override e.g. general.alignment). Takes ownership of b's buffer. */
static void set_value(gguf_writer *w, const char *key, bytes *b) {
    if (b->oom || !key) {
        free(b->p);
        fail_once(w, "out of memory (or no key) setting '%s'", key ? key : "(null)");
        return;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, key) == 0) {
            free(w->kvs[i].value);
            w->kvs[i].value = b->p;
            w->kvs[i].value_len = b->len;
            return;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        writer_kv *kvs = realloc(w->kvs, cap * sizeof *kvs);
        if (!kvs) {
            free(b->p);
            fail_once(w, "out of memory setting '%s'", key);
            return;
        }
        w->kvs = kvs;
        w->cap_kv = cap;
    }
    size_t klen = strlen(key) + 1;
    char *k = malloc(klen);
    if (!k) {
        free(b->p);
        fail_once(w, "out of memory setting '%s'", key);
        return;
    }
    memcpy(k, key, klen);
    w->kvs[w->n_kv++] = (writer_kv){.key = k, .value = b->p, .value_len = b->len};
}

void gguf_writer_set_scalar(gguf_writer *w, const char *key, enum gguf_vtype t, const void *value) {
    size_t n = scalar_size(t);
    if (!n) {
        fail_once(w, "key '%s': value type %d is not a fixed-size scalar", key, (int)t);
        return;
    }
    bytes b = {0};
    put_u32(&b, (uint32_t)t);
    if (t == GGUF_BOOL) {
        uint8_t v = *(const bool *)value ? 1 : 0;
        put(&b, &v, 1);
    } else {
        put(&b, value, n);
    }
    set_value(w, key, &b);
}

void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) { gguf_writer_set_scalar(w, key, GGUF_U32, &v); }
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) { gguf_writer_set_scalar(w, key, GGUF_I32, &v); }
void gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) { gguf_writer_set_scalar(w, key, GGUF_U64, &v); }
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v) { gguf_writer_set_scalar(w, key, GGUF_F32, &v); }
void gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) { gguf_writer_set_scalar(w, key, GGUF_BOOL, &v); }

void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v) {
    bytes b = {0};
    put_u32(&b, GGUF_STRING);
    put_str(&b, v);
    set_value(w, key, &b);
}

void gguf_writer_set_arr(gguf_writer *w, const char *key, enum gguf_vtype t, const void *data, uint64_t n) {
    size_t elem = scalar_size(t);
    if (!elem) {
        fail_once(w, "key '%s': arrays of value type %d need gguf_writer_set_arr_str or are unsupported", key, (int)t);
        return;
    }
    bytes b = {0};
    put_u32(&b, GGUF_ARRAY);
    put_u32(&b, (uint32_t)t);
    put_u64(&b, n);
    if (t == GGUF_BOOL) {
        /* sizeof(bool) is implementation-defined; GGUF wants one byte 0 or 1 each. */
        for (uint64_t i = 0; i < n; i++) {
            uint8_t v = ((const bool *)data)[i] ? 1 : 0;
            put(&b, &v, 1);
        }
    } else {
        uint64_t total;
        if (__builtin_mul_overflow(n, (uint64_t)elem, &total) || total > SIZE_MAX) b.oom = true;
        else put(&b, data, (size_t)total);
    }
    set_value(w, key, &b);
}

void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    bytes b = {0};
    put_u32(&b, GGUF_ARRAY);
    put_u32(&b, GGUF_STRING);
    put_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) put_str(&b, strs[i]);
    set_value(w, key, &b);
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne) {
    const size_t name_len = strlen(name);
    if (name_len == 0 || name_len >= sizeof(((writer_tensor *)0)->name)) {
        fail_once(w, "tensor name '%.64s' must be 1 to %zu bytes", name, sizeof(((writer_tensor *)0)->name) - 1);
        return -1;
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        if (strcmp(w->tensors[i].name, name) == 0) {
            fail_once(w, "duplicate tensor name '%s'", name);
            return -1;
        }
    }
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS) {
        fail_once(w, "tensor '%s': %d dimensions (1 to %d allowed)", name, n_dims, GGUF_MAX_DIMS);
        return -1;
    }
    const ts_type_traits *traits = type >= 0 && type < TS_TYPE_COUNT ? &ts_type_table(TS_ISA_SCALAR)[type] : NULL;
    if (!traits || !traits->supported || traits->block_size <= 0) {
        const char *tn = ts_type_name(type);
        fail_once(w, "tensor '%s': type %s is not supported", name, tn ? tn : "unknown");
        return -1;
    }
    writer_tensor t = {.n_dims = n_dims, .type = type};
    memcpy(t.name, name, name_len + 1);
    uint64_t nbytes = 0;
    bool overflow = false;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] <= 0) {
            fail_once(w, "tensor '%s': dimension %d is %" PRId64 " (must be positive)", name, d, t.ne[d]);
            return -1;
        }
        if (d == 0) {
            if (t.ne[0] % traits->block_size) {
                fail_once(w, "tensor '%s': row length %" PRId64 " is not a multiple of the block size %d", name,
                          t.ne[0], traits->block_size);
                return -1;
            }
            overflow |= __builtin_mul_overflow((uint64_t)(t.ne[0] / traits->block_size), (uint64_t)traits->type_size,
                                               &nbytes);
        } else {
            overflow |= __builtin_mul_overflow(nbytes, (uint64_t)t.ne[d], &nbytes);
        }
    }
    if (overflow || nbytes > SIZE_MAX / 2) {
        fail_once(w, "tensor '%s' is too large", name);
        return -1;
    }
    t.nbytes = (size_t)nbytes;
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 16;
        writer_tensor *ts = realloc(w->tensors, cap * sizeof *ts);
        if (!ts) {
            fail_once(w, "out of memory adding tensor '%s'", name);
            return -1;
        }
        w->tensors = ts;
        w->cap_tensors = cap;
    }
    w->tensors[w->n_tensors] = t;
    return (int)w->n_tensors++;
}

size_t gguf_writer_tensor_nbytes(const gguf_writer *w, int idx) {
    return (idx >= 0 && (size_t)idx < w->n_tensors) ? w->tensors[idx].nbytes : 0;
}

static int write_all(gguf_writer *w, FILE *fp, const void *p, size_t n, ts_err *err) {
    if (n && fwrite(p, 1, n, fp) != n) return ts_fail(err, "gguf writer: write failed at offset %" PRIu64, w->pos);
    w->pos += n;
    return 0;
}

static int write_padding(gguf_writer *w, FILE *fp, ts_err *err) {
    static const uint8_t zeros[256];
    size_t pad = (size_t)((w->alignment - w->pos % w->alignment) % w->alignment);
    while (pad > 0) {
        size_t n = pad < sizeof zeros ? pad : sizeof zeros;
        if (write_all(w, fp, zeros, n, err)) return -1;
        pad -= n;
    }
    return 0;
}

/* general.alignment, if set, must be a u32 power of two (what readers require). */
static int writer_alignment(gguf_writer *w, ts_err *err) {
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, "general.alignment") != 0) continue;
        uint32_t type, a;
        memcpy(&type, w->kvs[i].value, 4);
        if (type != GGUF_U32) return ts_fail(err, "gguf writer: general.alignment must be a u32");
        memcpy(&a, w->kvs[i].value + 4, 4);
        if (a == 0 || (a & (a - 1)) != 0)
            return ts_fail(err, "gguf writer: general.alignment %" PRIu32 " is not a nonzero power of two", a);
        w->alignment = a;
    }
    return 0;
}

int gguf_writer_write_header(gguf_writer *w, FILE *fp, ts_err *err) {
    if (w->failed) return ts_fail(err, "gguf writer: %s", w->first_error);
    if (w->header_written) return ts_fail(err, "gguf writer: header already written");
    if (writer_alignment(w, err)) return -1;
    bytes b = {0};
    const uint32_t version = 3;
    put(&b, "GGUF", 4);
    put_u32(&b, version);
    put_u64(&b, w->n_tensors);
    put_u64(&b, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(&b, w->kvs[i].key);
        put(&b, w->kvs[i].value, w->kvs[i].value_len);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        writer_tensor *t = &w->tensors[i];
        t->offset = offset;
        put_str(&b, t->name);
        put_u32(&b, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) put(&b, &t->ne[d], 8);
        put_u32(&b, (uint32_t)t->type);
        put_u64(&b, t->offset);
        offset += (t->nbytes + w->alignment - 1) / w->alignment * w->alignment;
    }
    if (b.oom) {
        free(b.p);
        return ts_fail(err, "gguf writer: out of memory building the header");
    }
    w->pos = 0;
    int rc = write_all(w, fp, b.p, b.len, err);
    free(b.p);
    if (rc || write_padding(w, fp, err)) return -1;
    w->header_written = true;
    w->cur = 0;
    w->cur_written = 0;
    return 0;
}

int gguf_writer_write_data(gguf_writer *w, FILE *fp, const void *data, size_t n, ts_err *err) {
    if (!w->header_written) return ts_fail(err, "gguf writer: write the header before tensor data");
    const uint8_t *p = data;
    while (n > 0) {
        /* Move past finished tensors, padding each to the alignment. */
        while (w->cur < w->n_tensors && w->cur_written == w->tensors[w->cur].nbytes) {
            if (write_padding(w, fp, err)) return -1;
            w->cur++;
            w->cur_written = 0;
        }
        if (w->cur >= w->n_tensors)
            return ts_fail(err, "gguf writer: %zu bytes of data beyond the last tensor", n);
        size_t room = w->tensors[w->cur].nbytes - w->cur_written;
        size_t chunk = n < room ? n : room;
        if (write_all(w, fp, p, chunk, err)) return -1;
        w->cur_written += chunk;
        p += chunk;
        n -= chunk;
    }
    return 0;
}

int gguf_writer_finish(gguf_writer *w, FILE *fp, ts_err *err) {
    if (!w->header_written) return ts_fail(err, "gguf writer: header was never written");
    while (w->cur < w->n_tensors && w->cur_written == w->tensors[w->cur].nbytes) {
        w->cur++;
        w->cur_written = 0;
    }
    if (w->cur < w->n_tensors)
        return ts_fail(err, "gguf writer: tensor '%s' got %zu of its %zu bytes", w->tensors[w->cur].name,
                       w->cur_written, w->tensors[w->cur].nbytes);
    if (write_padding(w, fp, err)) return -1;
    if (fflush(fp) != 0) return ts_fail(err, "gguf writer: flush failed");
    return 0;
}
