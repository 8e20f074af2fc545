/* GGUF v2/v3 reader. The file is mapped read-only and every pointer handed out points into the
 * mapping, so opening a multi-GB model costs only the header walk. The walk trusts nothing: every
 * read is checked against the bytes left, every count is bounded by the file size before anything
 * is allocated for it, and every product of lengths is overflow-checked. The whole validation is
 * O(file size) plus O(n log n) sorts of the tensor and key lists. */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant/types.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader reads little-endian values in place and needs a little-endian host"
#endif

typedef struct gguf_part {
    const uint8_t *base;
    size_t size;
    char *path;    /* name used in messages */
    bool owns_map; /* false for gguf_open_memory buffers */
    size_t data_offset;
    dev_t dev; /* identity of the mapped file, to know a reopened path is still that file */
    ino_t ino;
} gguf_part;

/* What one part's header walk produces. */
typedef struct parsed_part {
    uint32_t version;
    size_t alignment;
    int64_t n_kv;
    gguf_kv *kvs;
    int64_t n_tensors;
    gguf_tensor *tensors;
    size_t data_offset;
} parsed_part;

struct gguf_file {
    char *path;
    uint32_t version;
    size_t alignment;
    int n_parts;
    gguf_part *parts;
    int64_t n_kv;
    gguf_kv *kvs;
    const gguf_kv **kvs_by_key; /* sorted, for lookup */
    int64_t n_tensors;
    gguf_tensor *tensors;
    const gguf_tensor **tensors_by_name; /* sorted, for lookup */
};

/* The smallest encodings, used to bound counts by the bytes left before allocating for them. */
enum {
    MIN_KV_BYTES = 8 + 4 + 1,                /* key length, value type, a one-byte value */
    MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8, /* name length, n_dims, one dim, type, offset */
    MAX_TENSOR_NAME = (int)sizeof(((gguf_tensor *)0)->name) - 1,
};

static const char *const vtype_names[GGUF_VTYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

static const char *vtype_name(enum gguf_vtype t) {
    return (unsigned)t < GGUF_VTYPE_COUNT ? vtype_names[t] : "invalid";
}

/* Bytes of a fixed-size value; 0 for strings and arrays. */
static size_t vtype_size(enum gguf_vtype t) {
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

/* Copies a string from the file into buf for an error message: at most ~80 bytes, with anything
 * unprintable replaced, so a hostile name can neither break the one-line message nor flood it. */
static const char *printable(const char *s, uint64_t len, char *buf, size_t cap) {
    const size_t shown_max = cap - 4;
    size_t o = 0;
    for (uint64_t i = 0; i < len && o < shown_max; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (len > shown_max) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

#define SHOWN_CAP 84

/* Tensor names are copied verbatim from the file, so they go through printable() too. */
static const char *shown_tensor(const gguf_tensor *t, char *buf) {
    return printable(t->name, strlen(t->name), buf, SHOWN_CAP);
}

/* ---- cursor over one part's bytes ---------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *p;
    size_t len, pos;
    const char *name;
    ts_err *err;
} cursor;

static size_t left(const cursor *c) { return c->len - c->pos; }

static int truncated(cursor *c, const char *what) {
    return ts_fail(c->err, "%s: file truncated while reading %s (at offset %zu, file size %zu)", c->name, what,
                   c->pos, c->len);
}

static int read_bytes(cursor *c, void *out, size_t n, const char *what) {
    if (left(c) < n) return truncated(c, what);
    memcpy(out, c->p + c->pos, n);
    c->pos += n;
    return 0;
}

static int read_u32(cursor *c, uint32_t *v, const char *what) { return read_bytes(c, v, 4, what); }
static int read_u64(cursor *c, uint64_t *v, const char *what) { return read_bytes(c, v, 8, what); }

/* A length-prefixed string; ptr points into the buffer. */
static int read_str(cursor *c, gguf_str *s, const char *what) {
    uint64_t len = 0;
    if (read_u64(c, &len, what)) return -1;
    if (len > left(c))
        return ts_fail(c->err, "%s: %s length %" PRIu64 " at offset %zu runs past end of file (size %zu)", c->name,
                       what, len, c->pos - 8, c->len);
    s->ptr = (const char *)c->p + c->pos;
    s->len = len;
    c->pos += (size_t)len;
    return 0;
}

static int check_bools(cursor *c, const uint8_t *v, uint64_t n, const gguf_str *key) {
    for (uint64_t i = 0; i < n; i++) {
        if (v[i] > 1) {
            char shown[SHOWN_CAP];
            return ts_fail(c->err, "%s: key '%s' has invalid bool value %u", c->name,
                           printable(key->ptr, key->len, shown, sizeof shown), v[i]);
        }
    }
    return 0;
}

static int read_array(cursor *c, gguf_kv *kv) {
    char shown[SHOWN_CAP];
    uint32_t arr_type = 0;
    if (read_u32(c, &arr_type, "array element type") || read_u64(c, &kv->arr_n, "array length")) return -1;
    const char *key = printable(kv->key.ptr, kv->key.len, shown, sizeof shown);
    if (arr_type == GGUF_ARRAY)
        return ts_fail(c->err, "%s: key '%s' is an array of arrays, which tiefsee does not support", c->name, key);
    if (arr_type >= GGUF_VTYPE_COUNT)
        return ts_fail(c->err, "%s: key '%s' has arrays of unknown value type %" PRIu32, c->name, key, arr_type);
    kv->arr_type = (enum gguf_vtype)arr_type;
    kv->data = c->p + c->pos;
    size_t elem = arr_type == GGUF_STRING ? 8 : vtype_size(kv->arr_type);
    uint64_t min_bytes;
    if (__builtin_mul_overflow(kv->arr_n, (uint64_t)elem, &min_bytes) || min_bytes > left(c))
        return ts_fail(c->err, "%s: key '%s' array of %" PRIu64 " %s runs past end of file (size %zu)", c->name, key,
                       kv->arr_n, vtype_name(kv->arr_type), c->len);
    if (arr_type != GGUF_STRING) {
        if (arr_type == GGUF_BOOL && check_bools(c, c->p + c->pos, kv->arr_n, &kv->key)) return -1;
        c->pos += (size_t)min_bytes;
        return 0;
    }
    /* arr_n * 8 <= bytes left, so this allocation is bounded by the file size. */
    uint64_t *offsets = malloc(kv->arr_n ? (size_t)kv->arr_n * sizeof *offsets : 1);
    if (!offsets) return ts_fail(c->err, "%s: out of memory reading key '%s'", c->name, key);
    kv->str_offsets = offsets;
    const size_t start = c->pos;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        offsets[i] = c->pos - start;
        gguf_str s = {0};
        if (read_str(c, &s, "string array element")) return -1;
    }
    return 0;
}

static int read_kv(cursor *c, gguf_kv *kv) {
    char shown[SHOWN_CAP];
    if (read_str(c, &kv->key, "key")) return -1;
    if (memchr(kv->key.ptr, '\0', kv->key.len))
        return ts_fail(c->err, "%s: key '%s' contains a NUL byte", c->name,
                       printable(kv->key.ptr, kv->key.len, shown, sizeof shown));
    if (kv->key.len == 0) return ts_fail(c->err, "%s: empty key at offset %zu", c->name, c->pos - 8);
    uint32_t type = 0;
    if (read_u32(c, &type, "value type")) return -1;
    if (type >= GGUF_VTYPE_COUNT)
        return ts_fail(c->err, "%s: key '%s' has unknown value type %" PRIu32, c->name,
                       printable(kv->key.ptr, kv->key.len, shown, sizeof shown), type);
    kv->type = (enum gguf_vtype)type;
    if (kv->type == GGUF_STRING) {
        if (read_str(c, &kv->str, "string value")) return -1;
        kv->data = kv->str.ptr;
        return 0;
    }
    if (kv->type == GGUF_ARRAY) return read_array(c, kv);
    size_t n = vtype_size(kv->type);
    if (left(c) < n) return truncated(c, "value");
    kv->data = c->p + c->pos;
    if (kv->type == GGUF_BOOL && check_bools(c, kv->data, 1, &kv->key)) return -1;
    c->pos += n;
    return 0;
}

static int read_tensor_info(cursor *c, gguf_tensor *t, int64_t index) {
    char shown[SHOWN_CAP];
    gguf_str name = {0};
    if (read_str(c, &name, "tensor name")) return -1;
    const char *shown_name = printable(name.ptr, name.len, shown, sizeof shown);
    if (name.len == 0) return ts_fail(c->err, "%s: tensor #%" PRId64 " has an empty name", c->name, index);
    if (name.len > MAX_TENSOR_NAME)
        return ts_fail(c->err, "%s: tensor name '%s' is %" PRIu64 " bytes long (at most %d allowed)", c->name,
                       shown_name, name.len, MAX_TENSOR_NAME);
    if (memchr(name.ptr, '\0', name.len))
        return ts_fail(c->err, "%s: tensor name '%s' contains a NUL byte", c->name, shown_name);
    memcpy(t->name, name.ptr, name.len);
    t->name[name.len] = '\0';

    uint32_t n_dims = 0;
    if (read_u32(c, &n_dims, "tensor n_dims")) return -1;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return ts_fail(c->err, "%s: tensor '%s' has %" PRIu32 " dimensions (1 to %d allowed)", c->name, shown_name,
                       n_dims, GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (int d = 0; d < t->n_dims; d++) {
        if (read_bytes(c, &t->ne[d], 8, "tensor dimension")) return -1;
        if (t->ne[d] <= 0)
            return ts_fail(c->err, "%s: tensor '%s' dimension %d is %" PRId64 " (must be positive)", c->name, shown_name,
                           d, t->ne[d]);
    }
    uint32_t type = 0;
    if (read_u32(c, &type, "tensor type")) return -1;
    const char *type_name = type < TS_TYPE_COUNT ? ts_type_name((int)type) : NULL;
    if (!type_name)
        return ts_fail(c->err, "%s: tensor '%s' has unknown type %" PRIu32, c->name, shown_name, type);
    const ts_type_traits *traits = &ts_type_table(TS_ISA_SCALAR)[type];
    if (!traits->supported || traits->block_size <= 0 || traits->type_size == 0)
        return ts_fail(c->err, "%s: tensor '%s' has type %s, which tiefsee does not support", c->name, shown_name,
                       type_name);
    /* q8_1 and q8_K exist only as activation formats (they have no dot product of their own). */
    if (!traits->vec_dot)
        return ts_fail(c->err, "%s: tensor '%s' has type %s, which is an activation format, not a weight type",
                       c->name, shown_name, type_name);
    t->type = (int)type;
    if (t->ne[0] % traits->block_size)
        return ts_fail(c->err, "%s: tensor '%s' row length %" PRId64 " is not a multiple of the %s block size %d",
                       c->name, shown_name, t->ne[0], type_name, traits->block_size);
    /* bytes = ne0/bs*type_size * ne1*ne2*ne3, each step overflow-checked; the element count must
     * also fit int64 because the engine indexes with it. */
    int64_t n_elems = t->ne[0];
    uint64_t nbytes = (uint64_t)(t->ne[0] / traits->block_size);
    bool overflow = __builtin_mul_overflow(nbytes, (uint64_t)traits->type_size, &nbytes);
    for (int d = 1; d < GGUF_MAX_DIMS; d++) {
        overflow |= __builtin_mul_overflow(n_elems, t->ne[d], &n_elems);
        overflow |= __builtin_mul_overflow(nbytes, (uint64_t)t->ne[d], &nbytes);
    }
    if (overflow || nbytes > c->len)
        return ts_fail(c->err,
                       "%s: tensor '%s' of shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                       "] is larger than the file (size %zu)",
                       c->name, shown_name, t->ne[0], t->ne[1], t->ne[2], t->ne[3], c->len);
    t->nbytes = (size_t)nbytes;
    return read_u64(c, &t->offset, "tensor offset");
}

/* ---- sorting helpers -------------------------------------------------------------------------- */

static int cmp_str(gguf_str a, gguf_str b) {
    uint64_t n = a.len < b.len ? a.len : b.len;
    int r = memcmp(a.ptr, b.ptr, (size_t)n);
    if (r) return r;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int cmp_kv_key(const void *a, const void *b) {
    return cmp_str((*(const gguf_kv *const *)a)->key, (*(const gguf_kv *const *)b)->key);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const gguf_tensor *const *)a)->name, (*(const gguf_tensor *const *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    uint64_t x = (*(const gguf_tensor *const *)a)->offset, y = (*(const gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

/* Sorts kvs by key into a new index and refuses duplicates. */
static int index_kvs(const gguf_kv *kvs, int64_t n, const char *name, const gguf_kv ***out, ts_err *err) {
    const gguf_kv **idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
    if (!idx) return ts_fail(err, "%s: out of memory", name);
    for (int64_t i = 0; i < n; i++) idx[i] = &kvs[i];
    qsort(idx, (size_t)n, sizeof *idx, cmp_kv_key);
    for (int64_t i = 1; i < n; i++) {
        if (cmp_str(idx[i - 1]->key, idx[i]->key) == 0) {
            char shown[SHOWN_CAP];
            ts_fail(err, "%s: duplicate key '%s'", name, printable(idx[i]->key.ptr, idx[i]->key.len, shown, sizeof shown));
            free(idx);
            return -1;
        }
    }
    *out = idx;
    return 0;
}

static const gguf_kv *find_kv_linear(const gguf_kv *kvs, int64_t n, const char *key) {
    for (int64_t i = 0; i < n; i++)
        if (gguf_str_eq(kvs[i].key, key)) return &kvs[i];
    return NULL;
}

/* ---- one part -------------------------------------------------------------------------------- */

static void free_kvs(gguf_kv *kvs, int64_t n) {
    if (!kvs) return;
    for (int64_t i = 0; i < n; i++) free((void *)kvs[i].str_offsets);
    free(kvs);
}

static void parsed_free(parsed_part *pp) {
    free_kvs(pp->kvs, pp->n_kv);
    free(pp->tensors);
    memset(pp, 0, sizeof *pp);
}

static int parse_header(cursor *c, parsed_part *pp, uint64_t *n_tensors, uint64_t *n_kv) {
    uint8_t magic[4];
    if (c->len < 4) return ts_fail(c->err, "%s: file is too short to be GGUF (%zu bytes)", c->name, c->len);
    read_bytes(c, magic, 4, "magic");
    if (memcmp(magic, "GGUF", 4) != 0)
        return ts_fail(c->err, "%s: not a GGUF file (magic bytes %02x %02x %02x %02x, expected \"GGUF\")", c->name,
                       magic[0], magic[1], magic[2], magic[3]);
    uint32_t version = 0;
    if (read_u32(c, &version, "version")) return -1;
    if (version == 1)
        return ts_fail(c->err, "%s: GGUF version 1 is not supported (only versions 2 and 3)", c->name);
    if (version != 2 && version != 3) {
        uint32_t swapped = __builtin_bswap32(version);
        if (swapped >= 1 && swapped <= 3)
            return ts_fail(c->err,
                           "%s: file is big-endian GGUF (version %" PRIu32
                           " with bytes swapped); tiefsee reads only little-endian files",
                           c->name, swapped);
        return ts_fail(c->err, "%s: unsupported GGUF version %" PRIu32 " (only versions 2 and 3)", c->name, version);
    }
    pp->version = version;
    if (read_u64(c, n_tensors, "tensor count") || read_u64(c, n_kv, "metadata count")) return -1;
    /* Bound both counts by the bytes that could hold them before allocating anything. */
    if (*n_kv > left(c) / MIN_KV_BYTES)
        return ts_fail(c->err, "%s: metadata count %" PRIu64 " is larger than the file could hold (size %zu)",
                       c->name, *n_kv, c->len);
    if (*n_tensors > left(c) / MIN_TENSOR_INFO_BYTES)
        return ts_fail(c->err, "%s: tensor count %" PRIu64 " is larger than the file could hold (size %zu)", c->name,
                       *n_tensors, c->len);
    return 0;
}

static int read_alignment(cursor *c, parsed_part *pp, const gguf_kv *kv) {
    pp->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (!kv) return 0;
    if (kv->type != GGUF_U32)
        return ts_fail(c->err, "%s: general.alignment has type %s (must be u32)", c->name, vtype_name(kv->type));
    uint32_t a;
    memcpy(&a, kv->data, 4);
    if (a == 0 || (a & (a - 1)) != 0)
        return ts_fail(c->err, "%s: general.alignment %" PRIu32 " is not a nonzero power of two", c->name, a);
    pp->alignment = a;
    return 0;
}

/* Checks every tensor lies inside the data section, aligned, without overlapping another. */
static int check_tensor_placement(cursor *c, parsed_part *pp) {
    const size_t data = pp->data_offset;
    char shown[SHOWN_CAP], shown_b[SHOWN_CAP];
    for (int64_t i = 0; i < pp->n_tensors; i++) {
        const gguf_tensor *t = &pp->tensors[i];
        if (t->offset % pp->alignment)
            return ts_fail(c->err, "%s: tensor '%s' offset %" PRIu64 " is not a multiple of the alignment %zu",
                           c->name, shown_tensor(t, shown), t->offset, pp->alignment);
        uint64_t begin, end;
        if (__builtin_add_overflow((uint64_t)data, t->offset, &begin) || begin > c->len)
            return ts_fail(c->err, "%s: tensor '%s' offset %" PRIu64 " is outside the file (size %zu)", c->name,
                           shown_tensor(t, shown), t->offset, c->len);
        if (__builtin_add_overflow(begin, (uint64_t)t->nbytes, &end) || end > c->len)
            return ts_fail(c->err, "%s: tensor '%s' data [%" PRIu64 ", %" PRIu64 ") runs past end of file (size %zu)",
                           c->name, shown_tensor(t, shown), begin, begin + (uint64_t)t->nbytes, c->len);
    }
    if (pp->n_tensors < 2) return 0;
    const gguf_tensor **by_offset = malloc((size_t)pp->n_tensors * sizeof *by_offset);
    if (!by_offset) return ts_fail(c->err, "%s: out of memory", c->name);
    for (int64_t i = 0; i < pp->n_tensors; i++) by_offset[i] = &pp->tensors[i];
    qsort(by_offset, (size_t)pp->n_tensors, sizeof *by_offset, cmp_tensor_offset);
    int rc = 0;
    for (int64_t i = 1; i < pp->n_tensors; i++) {
        const gguf_tensor *a = by_offset[i - 1], *b = by_offset[i];
        /* Both ranges are inside the file, so these sums cannot overflow. */
        if (a->offset + a->nbytes > b->offset) {
            rc = ts_fail(c->err,
                         "%s: tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64 ", %" PRIu64 ") overlap",
                         c->name, shown_tensor(a, shown), data + a->offset, data + a->offset + a->nbytes, shown_tensor(b, shown_b), data + b->offset,
                         data + b->offset + b->nbytes);
            break;
        }
    }
    free(by_offset);
    return rc;
}

/* Walks and validates one GGUF image. On failure pp is left empty. */
static int parse_part(const uint8_t *buf, size_t len, const char *name, parsed_part *pp, ts_err *err) {
    memset(pp, 0, sizeof *pp);
    cursor c = {.p = buf, .len = len, .pos = 0, .name = name, .err = err};
    uint64_t n_tensors = 0, n_kv = 0;
    if (parse_header(&c, pp, &n_tensors, &n_kv)) return -1;

    pp->kvs = calloc((size_t)(n_kv ? n_kv : 1), sizeof *pp->kvs);
    pp->tensors = calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *pp->tensors);
    if (!pp->kvs || !pp->tensors) {
        parsed_free(pp);
        return ts_fail(err, "%s: out of memory", name);
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        pp->n_kv = (int64_t)i + 1; /* so a failure frees what this kv allocated */
        if (read_kv(&c, &pp->kvs[i])) goto fail;
    }
    pp->n_kv = (int64_t)n_kv;
    const gguf_kv **sorted;
    if (index_kvs(pp->kvs, pp->n_kv, name, &sorted, err)) goto fail;
    free(sorted);
    if (read_alignment(&c, pp, find_kv_linear(pp->kvs, pp->n_kv, "general.alignment"))) goto fail;

    for (uint64_t i = 0; i < n_tensors; i++) {
        if (read_tensor_info(&c, &pp->tensors[i], (int64_t)i)) goto fail;
    }
    pp->n_tensors = (int64_t)n_tensors;
    /* The data section starts at the next multiple of the alignment. A file without tensors may
     * end before that padding. */
    uint64_t data = ((uint64_t)c.pos + pp->alignment - 1) / pp->alignment * pp->alignment;
    pp->data_offset = data > len ? len : (size_t)data;
    if (pp->n_tensors > 0 && data > len) {
        ts_fail(err, "%s: data section at offset %" PRIu64 " starts past end of file (size %zu)", name, data, len);
        goto fail;
    }
    if (check_tensor_placement(&c, pp)) goto fail;
    return 0;
fail:
    parsed_free(pp);
    return -1;
}

/* ---- file object ----------------------------------------------------------------------------- */

static void unmap_part(gguf_part *p) {
    if (p->owns_map && p->base && p->size) munmap((void *)p->base, p->size);
    free(p->path);
    memset(p, 0, sizeof *p);
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_parts; i++) unmap_part(&f->parts[i]);
    free(f->parts);
    free_kvs(f->kvs, f->n_kv);
    free(f->kvs_by_key);
    free(f->tensors);
    free(f->tensors_by_name);
    free(f->path);
    free(f);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int map_file(const char *path, gguf_part *part, ts_err *err) {
    memset(part, 0, sizeof *part);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ts_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ts_fail(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ts_fail(err, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return ts_fail(err, "%s: file too large to map", path);
    }
    part->size = (size_t)st.st_size;
    part->dev = st.st_dev;
    part->ino = st.st_ino;
    part->path = dup_str(path);
    part->owns_map = true;
    if (!part->path) {
        close(fd);
        return ts_fail(err, "%s: out of memory", path);
    }
    if (part->size > 0) {
        void *m = mmap(NULL, part->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            free(part->path);
            part->path = NULL;
            return ts_fail(err, "%s: cannot map: %s", path, strerror(e));
        }
        part->base = m;
    } else {
        part->base = (const uint8_t *)""; /* an empty file parses as "too short" */
        part->owns_map = false;
    }
    close(fd); /* the mapping keeps the file alive */
    return 0;
}

/* Moves the first part's results into a new file object. */
static gguf_file *file_new(const char *path, gguf_part *part0, parsed_part *pp, ts_err *err) {
    gguf_file *f = calloc(1, sizeof *f);
    gguf_part *parts = calloc(1, sizeof *parts);
    char *p = dup_str(path);
    if (!f || !parts || !p) {
        free(f);
        free(parts);
        free(p);
        ts_fail(err, "%s: out of memory", path);
        return NULL;
    }
    f->path = p;
    f->parts = parts;
    f->parts[0] = *part0;
    f->parts[0].data_offset = pp->data_offset;
    f->n_parts = 1;
    f->version = pp->version;
    f->alignment = pp->alignment;
    f->kvs = pp->kvs;
    f->n_kv = pp->n_kv;
    f->tensors = pp->tensors;
    f->n_tensors = pp->n_tensors;
    memset(pp, 0, sizeof *pp);
    memset(part0, 0, sizeof *part0);
    return f;
}

/* Builds the lookup indices and refuses duplicate tensor names across all parts. */
static int file_finish(gguf_file *f, ts_err *err) {
    if (index_kvs(f->kvs, f->n_kv, f->path, &f->kvs_by_key, err)) return -1;
    f->tensors_by_name = malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *f->tensors_by_name);
    if (!f->tensors_by_name) return ts_fail(err, "%s: out of memory", f->path);
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        const gguf_part *part = &f->parts[t->part];
        t->data = part->base + part->data_offset + t->offset;
        f->tensors_by_name[i] = t;
    }
    qsort(f->tensors_by_name, (size_t)f->n_tensors, sizeof *f->tensors_by_name, cmp_tensor_name);
    for (int64_t i = 1; i < f->n_tensors; i++) {
        const gguf_tensor *a = f->tensors_by_name[i - 1], *b = f->tensors_by_name[i];
        if (strcmp(a->name, b->name) == 0) {
            char shown[SHOWN_CAP];
            if (a->part != b->part)
                return ts_fail(err, "%s: duplicate tensor name '%s' (in %s and %s)", f->path, shown_tensor(a, shown),
                               f->parts[a->part].path, f->parts[b->part].path);
            return ts_fail(err, "%s: duplicate tensor name '%s'", f->parts[a->part].path,
                           shown_tensor(a, shown));
        }
    }
    return 0;
}

int gguf_open_memory(const void *buf, size_t len, const char *name, gguf_file **out, ts_err *err) {
    *out = NULL;
    if (!name) name = "<memory>";
    if (!buf) len = 0;
    parsed_part pp;
    if (parse_part(buf ? buf : "", len, name, &pp, err)) return -1;
    gguf_part part = {.base = buf ? buf : (const void *)"", .size = len, .path = dup_str(name), .owns_map = false};
    if (!part.path) {
        parsed_free(&pp);
        return ts_fail(err, "%s: out of memory", name);
    }
    gguf_file *f = file_new(name, &part, &pp, err);
    if (!f) {
        free(part.path);
        parsed_free(&pp);
        return -1;
    }
    if (file_finish(f, err)) {
        gguf_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

/* ---- split files ----------------------------------------------------------------------------- */

/* Parses "PREFIX-00001-of-00003.gguf" (llama.cpp's "%s-%05d-of-%05d.gguf"): the prefix length,
 * this part's 1-based number and the count. Returns false if the name does not follow it. */
static bool parse_split_name(const char *path, size_t *prefix_len, int *no, int *count) {
    static const char pattern[] = "-#####-of-#####.gguf";
    const size_t plen = sizeof pattern - 1, len = strlen(path);
    if (len < plen) return false;
    const char *s = path + len - plen;
    int a = 0, b = 0;
    for (size_t i = 0; i < plen; i++) {
        if (pattern[i] == '#') {
            if (s[i] < '0' || s[i] > '9') return false;
            if (i < 6) a = a * 10 + (s[i] - '0');
            else b = b * 10 + (s[i] - '0');
        } else if (s[i] != pattern[i]) {
            return false;
        }
    }
    if (a < 1 || b < 1 || a > b) return false;
    *prefix_len = len - plen;
    *no = a;
    *count = b;
    return true;
}

/* Reads an integer split key from a kv list: 1 if absent, -1 if not a non-negative integer. */
static int split_key(const gguf_kv *kvs, int64_t n, const char *key, const char *name, uint64_t *v, ts_err *err) {
    const gguf_kv *kv = find_kv_linear(kvs, n, key);
    if (!kv) return 1;
    int64_t s;
    switch (kv->type) {
    case GGUF_U8: *v = *(const uint8_t *)kv->data; return 0;
    case GGUF_U16: { uint16_t x; memcpy(&x, kv->data, 2); *v = x; return 0; }
    case GGUF_U32: { uint32_t x; memcpy(&x, kv->data, 4); *v = x; return 0; }
    case GGUF_U64: memcpy(v, kv->data, 8); return 0;
    case GGUF_I8: s = *(const int8_t *)kv->data; break;
    case GGUF_I16: { int16_t x; memcpy(&x, kv->data, 2); s = x; break; }
    case GGUF_I32: { int32_t x; memcpy(&x, kv->data, 4); s = x; break; }
    case GGUF_I64: memcpy(&s, kv->data, 8); break;
    default: return ts_fail(err, "%s: %s has type %s (must be an integer)", name, key, vtype_name(kv->type));
    }
    if (s < 0) return ts_fail(err, "%s: %s is negative (%" PRId64 ")", name, key, s);
    *v = (uint64_t)s;
    return 0;
}

static int check_split_keys(const parsed_part *pp, const char *name, int index, int count, ts_err *err) {
    uint64_t v = 0;
    int rc = split_key(pp->kvs, pp->n_kv, "split.count", name, &v, err);
    if (rc < 0) return -1;
    if (rc == 0 && v != (uint64_t)count)
        return ts_fail(err, "%s: split.count is %" PRIu64 " but the file name says %d parts", name, v, count);
    rc = split_key(pp->kvs, pp->n_kv, "split.no", name, &v, err);
    if (rc < 0) return -1;
    if (rc == 0 && v != (uint64_t)index)
        return ts_fail(err, "%s: split.no is %" PRIu64 " but the file name says part %d (split.no %d)", name, v,
                       index + 1, index);
    return 0;
}

/* Opens parts 2..count and appends their tensors. */
static int open_other_parts(gguf_file *f, size_t prefix_len, int count, ts_err *err) {
    gguf_part *parts = realloc(f->parts, (size_t)count * sizeof *parts);
    if (!parts) return ts_fail(err, "%s: out of memory", f->path);
    f->parts = parts;
    const size_t path_cap = prefix_len + 32;
    char *path = malloc(path_cap);
    if (!path) return ts_fail(err, "%s: out of memory", f->path);
    int rc = 0;
    for (int i = 1; i < count && rc == 0; i++) {
        snprintf(path, path_cap, "%.*s-%05d-of-%05d.gguf", (int)prefix_len, f->path, i + 1, count);
        gguf_part *part = &f->parts[f->n_parts];
        if (map_file(path, part, err)) {
            rc = -1;
            break;
        }
        f->n_parts++; /* from here gguf_close unmaps it */
        parsed_part pp;
        if (parse_part(part->base, part->size, path, &pp, err) || (rc = check_split_keys(&pp, path, i, count, err))) {
            parsed_free(&pp);
            rc = -1;
            break;
        }
        part->data_offset = pp.data_offset;
        gguf_tensor *merged = realloc(f->tensors, (size_t)(f->n_tensors + pp.n_tensors + 1) * sizeof *merged);
        if (!merged) {
            parsed_free(&pp);
            rc = ts_fail(err, "%s: out of memory", path);
            break;
        }
        f->tensors = merged;
        for (int64_t k = 0; k < pp.n_tensors; k++) {
            pp.tensors[k].part = f->n_parts - 1;
            f->tensors[f->n_tensors++] = pp.tensors[k];
        }
        parsed_free(&pp);
    }
    free(path);
    return rc;
}

int gguf_open(const char *path, gguf_file **out, ts_err *err) {
    *out = NULL;
    gguf_part part0;
    if (map_file(path, &part0, err)) return -1;
    parsed_part pp;
    if (parse_part(part0.base, part0.size, path, &pp, err)) {
        unmap_part(&part0);
        return -1;
    }
    gguf_file *f = file_new(path, &part0, &pp, err);
    if (!f) {
        unmap_part(&part0);
        parsed_free(&pp);
        return -1;
    }
    size_t prefix_len = 0;
    int no = 0, count = 0;
    bool named_split = parse_split_name(path, &prefix_len, &no, &count);
    uint64_t key_count = 1;
    int rc = split_key(f->kvs, f->n_kv, "split.count", path, &key_count, err);
    if (rc < 0) goto fail;
    if (named_split && no != 1) {
        ts_fail(err, "%s: this is part %d of a %d-part split model; open part 1 (NAME-00001-of-%05d.gguf)", path, no,
                count, count);
        goto fail;
    }
    if (!named_split && key_count > 1) {
        ts_fail(err, "%s: split.count is %" PRIu64 " but the file name does not follow NAME-00001-of-%05" PRIu64
                     ".gguf, so the other parts cannot be found", path, key_count, key_count);
        goto fail;
    }
    if (named_split) {
        parsed_part view = {.kvs = f->kvs, .n_kv = f->n_kv};
        if (check_split_keys(&view, path, 0, count, err)) goto fail;
        if (count > 1 && open_other_parts(f, prefix_len, count, err)) goto fail;
    }
    uint64_t want_tensors = 0;
    rc = split_key(f->kvs, f->n_kv, "split.tensors.count", path, &want_tensors, err);
    if (rc < 0) goto fail;
    if (rc == 0 && want_tensors != (uint64_t)f->n_tensors) {
        ts_fail(err, "%s: split.tensors.count is %" PRIu64 " but the %d part(s) hold %" PRId64 " tensors", path,
                want_tensors, f->n_parts, f->n_tensors);
        goto fail;
    }
    if (file_finish(f, err)) goto fail;
    *out = f;
    return 0;
fail:
    gguf_close(f);
    return -1;
}

/* ---- accessors --------------------------------------------------------------------------------- */

const char *gguf_path(const gguf_file *f) { return f->path; }
uint32_t gguf_version(const gguf_file *f) { return f->version; }
size_t gguf_alignment(const gguf_file *f) { return f->alignment; }
int gguf_n_parts(const gguf_file *f) { return f->n_parts; }

uint64_t gguf_total_size(const gguf_file *f) {
    uint64_t total = 0;
    for (int i = 0; i < f->n_parts; i++) total += f->parts[i].size;
    return total;
}

int64_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }

const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i) {
    return (i >= 0 && i < f->n_kv) ? &f->kvs[i] : NULL;
}

bool gguf_str_eq(gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    gguf_str want = {.ptr = key, .len = strlen(key)};
    int64_t lo = 0, hi = f->n_kv;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = cmp_str(f->kvs_by_key[mid]->key, want);
        if (r == 0) return f->kvs_by_key[mid];
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* An integer value of any width, as sign + magnitude-free pair: exactly one of *u / *s is meaningful. */
static bool kv_integer(const gguf_kv *kv, bool *negative, uint64_t *u, int64_t *s) {
    *negative = false;
    switch (kv->type) {
    case GGUF_U8: *u = *(const uint8_t *)kv->data; return true;
    case GGUF_U16: { uint16_t x; memcpy(&x, kv->data, 2); *u = x; return true; }
    case GGUF_U32: { uint32_t x; memcpy(&x, kv->data, 4); *u = x; return true; }
    case GGUF_U64: memcpy(u, kv->data, 8); return true;
    case GGUF_I8: *s = *(const int8_t *)kv->data; break;
    case GGUF_I16: { int16_t x; memcpy(&x, kv->data, 2); *s = x; break; }
    case GGUF_I32: { int32_t x; memcpy(&x, kv->data, 4); *s = x; break; }
    case GGUF_I64: memcpy(s, kv->data, 8); break;
    default: return false;
    }
    *negative = *s < 0;
    if (!*negative) *u = (uint64_t)*s;
    return true;
}

static int wrong_type(const gguf_file *f, const char *key, const gguf_kv *kv, const char *want, ts_err *err) {
    return ts_fail(err, "%s: key '%s' has type %s, expected %s", f->path, key, vtype_name(kv->type), want);
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, ts_err *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return 1;
    bool neg;
    uint64_t u = 0;
    int64_t s = 0;
    if (!kv_integer(kv, &neg, &u, &s)) return wrong_type(f, key, kv, "an integer", err);
    if (neg) return ts_fail(err, "%s: key '%s' is %" PRId64 ", expected a non-negative value", f->path, key, s);
    *out = u;
    return 0;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, ts_err *err) {
    uint64_t v = 0;
    int rc = gguf_get_u64(f, key, &v, err);
    if (rc) return rc;
    if (v > UINT32_MAX)
        return ts_fail(err, "%s: key '%s' is %" PRIu64 ", which does not fit 32 bits", f->path, key, v);
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, ts_err *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return 1;
    bool neg;
    uint64_t u = 0;
    int64_t s = 0;
    if (!kv_integer(kv, &neg, &u, &s)) return wrong_type(f, key, kv, "an integer", err);
    if (neg) {
        *out = s;
        return 0;
    }
    if (u > INT64_MAX)
        return ts_fail(err, "%s: key '%s' is %" PRIu64 ", which does not fit a signed 64-bit value", f->path, key, u);
    *out = (int64_t)u;
    return 0;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out, ts_err *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return 1;
    if (kv->type == GGUF_F32) {
        memcpy(out, kv->data, 4);
        return 0;
    }
    if (kv->type == GGUF_F64) {
        double d;
        memcpy(&d, kv->data, 8);
        *out = (float)d;
        return 0;
    }
    return wrong_type(f, key, kv, "f32 or f64", err);
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out, ts_err *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_BOOL) return wrong_type(f, key, kv, "bool", err);
    *out = *(const uint8_t *)kv->data != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, ts_err *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_STRING) return wrong_type(f, key, kv, "string", err);
    *out = kv->str;
    return 0;
}

int gguf_get_arr(const gguf_file *f, const char *key, enum gguf_vtype want, const gguf_kv **out, ts_err *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_ARRAY) return wrong_type(f, key, kv, "array", err);
    if (kv->arr_type != want)
        return ts_fail(err, "%s: key '%s' is an array of %s, expected an array of %s", f->path, key,
                       vtype_name(kv->arr_type), vtype_name(want));
    *out = kv;
    return 0;
}

gguf_str gguf_arr_str(const gguf_kv *kv, uint64_t i) {
    gguf_str s = {.ptr = "", .len = 0};
    if (kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING || i >= kv->arr_n || !kv->str_offsets) return s;
    const uint8_t *p = (const uint8_t *)kv->data + kv->str_offsets[i];
    memcpy(&s.len, p, 8);
    s.ptr = (const char *)p + 8;
    return s;
}

int64_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }

const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i) {
    return (i >= 0 && i < f->n_tensors) ? &f->tensors[i] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    int64_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = strcmp(f->tensors_by_name[mid]->name, name);
        if (r == 0) return f->tensors_by_name[mid];
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

void gguf_release_range(const gguf_file *f, const void *ptr, size_t n) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = (uintptr_t)ptr;
    for (int i = 0; i < f->n_parts; i++) {
        const gguf_part *p = &f->parts[i];
        const uintptr_t base = (uintptr_t)p->base;
        if (!p->owns_map || a < base || a - base > p->size || n > p->size - (a - base)) continue;
        /* Only pages entirely inside the range: a neighbouring tensor may share the edge pages. */
        const uintptr_t start = (a + page - 1) / page * page, end = (a + n) / page * page;
        if (end > start) (void)madvise((void *)start, end - start, MADV_DONTNEED); /* a hint; failure costs memory only */
        return;
    }
}

int gguf_file_range(const gguf_file *f, const void *ptr, size_t n, int *fd, uint64_t *offset) {
    const uintptr_t a = (uintptr_t)ptr;
    for (int i = 0; i < f->n_parts; i++) {
        const gguf_part *p = &f->parts[i];
        const uintptr_t base = (uintptr_t)p->base;
        if (!p->owns_map || !p->path || a < base || a - base > p->size || n > p->size - (a - base)) continue;
        const int d = open(p->path, O_RDONLY | O_CLOEXEC);
        if (d < 0) return -1;
        struct stat st;
        /* The path may name another file by now (replaced since it was mapped): then not this way. */
        if (fstat(d, &st) != 0 || st.st_dev != p->dev || st.st_ino != p->ino || (uint64_t)st.st_size != (uint64_t)p->size) {
            close(d);
            return -1;
        }
        *fd = d;
        *offset = (uint64_t)(a - base);
        return 0;
    }
    return -1;
}

void gguf_prefetch(const gguf_file *f) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < f->n_parts; i++) {
        const gguf_part *p = &f->parts[i];
        if (!p->owns_map || p->data_offset >= p->size) continue;
        /* madvise wants a page-aligned start; the mapping itself is page-aligned. */
        size_t start = p->data_offset / page * page;
        /* Only a hint: a failure changes nothing but speed. */
        (void)madvise((void *)(p->base + start), p->size - start, MADV_WILLNEED);
    }
}
