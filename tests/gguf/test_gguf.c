/* GGUF reader/writer tests: writer -> reader round trips (every value type, several tensor types,
 * alignments, split files), and one hand-built bad file per error class, checking the exact
 * message and that the reader neither crashes nor accepts it. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "quant/types.h"

static int failures;

#define CHECK(cond)                                                                                     \
    do {                                                                                                \
        if (!(cond)) {                                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                   \
            failures++;                                                                                 \
        }                                                                                               \
    } while (0)

/* ---- a growable byte buffer, used both to hold written files and to hand-build bad ones -------- */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void put_u8(buf *b, uint8_t v) { put(b, &v, 1); }
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_strn(buf *b, const char *s, size_t n) {
    put_u64(b, n);
    put(b, s, n);
}
static void put_str(buf *b, const char *s) { put_strn(b, s, strlen(s)); }
static void pad_to(buf *b, size_t align) {
    while (b->len % align) put_u8(b, 0);
}
static void header(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}
static void kv_u32(buf *b, const char *key, uint32_t v) {
    put_str(b, key);
    put_u32(b, GGUF_U32);
    put_u32(b, v);
}
static void tensor_info(buf *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type, uint64_t off) {
    put_str(b, name);
    put_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) put(b, &ne[d], 8);
    put_u32(b, type);
    put_u64(b, off);
}
static void zeros(buf *b, size_t n) {
    for (size_t i = 0; i < n; i++) put_u8(b, 0);
}

/* Opens an image from memory and expects failure with `want` in the message (which must also
 * name the file). Returns nothing; counts a failure otherwise. */
static void expect_error_at(const buf *b, const char *want, int line) {
    gguf_file *f = NULL;
    ts_err err = {{0}};
    int rc = gguf_open_memory(b->p, b->len, "model.gguf", &f, &err);
    if (rc == 0 || f != NULL) {
        fprintf(stderr, "line %d: expected error containing \"%s\", but the file was accepted\n", line, want);
        failures++;
        gguf_close(f);
        return;
    }
    if (!strstr(err.msg, want) || strncmp(err.msg, "model.gguf: ", 12) != 0 || strchr(err.msg, '\n')) {
        fprintf(stderr, "line %d: expected error containing \"%s\", got \"%s\"\n", line, want, err.msg);
        failures++;
    }
}
#define EXPECT_ERROR(b, want) expect_error_at((b), (want), __LINE__)

/* A valid minimal image with one F32 tensor of 8 values, as the base the error tests modify. */
static buf one_tensor_file(const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne, uint64_t offset,
                           size_t data_bytes) {
    buf b = {0};
    header(&b, 3, 1, 1);
    kv_u32(&b, "general.x", 7);
    tensor_info(&b, name, n_dims, ne, type, offset);
    pad_to(&b, 32);
    zeros(&b, data_bytes);
    return b;
}

/* ---- writer helpers ---------------------------------------------------------------------------- */

/* Writes w with tensor i's bytes produced by fill_byte(i, k) to path (or into memory when path
 * is NULL, returned in *mem). */
static uint8_t fill_byte(int tensor, size_t k) { return (uint8_t)(tensor * 31 + k * 7 + (k >> 8)); }

static int write_file(gguf_writer *w, const char *path, buf *mem) {
    ts_err err;
    char *mem_ptr = NULL;
    size_t mem_len = 0;
    FILE *fp = path ? fopen(path, "wb") : open_memstream(&mem_ptr, &mem_len);
    if (!fp) return -1;
    int rc = gguf_writer_write_header(w, fp, &err);
    for (int i = 0; rc == 0; i++) {
        size_t n = gguf_writer_tensor_nbytes(w, i);
        if (n == 0) break;
        /* Stream in uneven chunks to exercise chunked writes. */
        uint8_t chunk[97];
        for (size_t k = 0; k < n && rc == 0;) {
            size_t m = n - k < sizeof chunk ? n - k : sizeof chunk;
            for (size_t j = 0; j < m; j++) chunk[j] = fill_byte(i, k + j);
            rc = gguf_writer_write_data(w, fp, chunk, m, &err);
            k += m;
        }
    }
    if (rc == 0) rc = gguf_writer_finish(w, fp, &err);
    if (rc) fprintf(stderr, "write failed: %s\n", err.msg);
    fclose(fp);
    if (mem) {
        mem->p = (uint8_t *)mem_ptr;
        mem->len = mem->cap = mem_len;
    }
    return rc;
}

static bool tensor_bytes_ok(const gguf_tensor *t, int index) {
    const uint8_t *p = t->data;
    for (size_t k = 0; k < t->nbytes; k++)
        if (p[k] != fill_byte(index, k)) return false;
    return true;
}

/* ---- round trips ------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int type;
    int n_dims;
    int64_t ne[4];
} test_tensors[] = {
    {"token_embd.weight", TS_TYPE_F32, 2, {8, 3, 1, 1}},
    {"blk.0.attn_norm.weight", TS_TYPE_F16, 1, {5, 1, 1, 1}},
    {"blk.0.ffn.bf16", TS_TYPE_BF16, 3, {4, 2, 3, 1}},
    {"blk.0.attn_q.weight", TS_TYPE_Q4_0, 2, {64, 3, 1, 1}},
    {"blk.0.attn_k.weight", TS_TYPE_Q8_0, 4, {32, 2, 2, 2}},
    {"blk.0.ffn_up.weight", TS_TYPE_Q4_K, 2, {256, 2, 1, 1}},
    {"blk.0.ffn_down.weight", TS_TYPE_Q6_K, 2, {512, 1, 1, 1}},
    {"blk.0.q5", TS_TYPE_Q5_1, 2, {32, 5, 1, 1}},
};
enum { N_TEST_TENSORS = sizeof test_tensors / sizeof test_tensors[0] };

static gguf_writer *writer_with_everything(void) {
    gguf_writer *w = gguf_writer_new();
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int64_t i64 = -5000000000LL;
    double f64 = 3.25e300;
    gguf_writer_set_scalar(w, "t.u8", GGUF_U8, &u8);
    gguf_writer_set_scalar(w, "t.i8", GGUF_I8, &i8);
    gguf_writer_set_scalar(w, "t.u16", GGUF_U16, &u16);
    gguf_writer_set_scalar(w, "t.i16", GGUF_I16, &i16);
    gguf_writer_set_u32(w, "t.u32", 4000000000u);
    gguf_writer_set_i32(w, "t.i32", -2000000000);
    gguf_writer_set_f32(w, "t.f32", 1.5f);
    gguf_writer_set_bool(w, "t.bool", true);
    gguf_writer_set_str(w, "t.str", "hello, gguf");
    gguf_writer_set_str(w, "t.empty", "");
    gguf_writer_set_u64(w, "t.u64", 18000000000000000000ull);
    gguf_writer_set_scalar(w, "t.i64", GGUF_I64, &i64);
    gguf_writer_set_scalar(w, "t.f64", GGUF_F64, &f64);
    const int32_t ints[] = {1, -2, 3};
    const float floats[] = {0.5f, -0.25f};
    const bool bools[] = {true, false, true};
    const uint8_t bytes[] = {9, 8, 7, 6};
    const double doubles[] = {1e-300, 2.0};
    const char *const strs[] = {"a", "", "longer string", "<0x00>"};
    gguf_writer_set_arr(w, "a.i32", GGUF_I32, ints, 3);
    gguf_writer_set_arr(w, "a.f32", GGUF_F32, floats, 2);
    gguf_writer_set_arr(w, "a.bool", GGUF_BOOL, bools, 3);
    gguf_writer_set_arr(w, "a.u8", GGUF_U8, bytes, 4);
    gguf_writer_set_arr(w, "a.f64", GGUF_F64, doubles, 2);
    gguf_writer_set_arr(w, "a.empty", GGUF_U64, NULL, 0);
    gguf_writer_set_arr_str(w, "a.str", strs, 4);
    gguf_writer_set_u32(w, "t.replaced", 1);
    gguf_writer_set_u32(w, "t.replaced", 2); /* a second set replaces the first */
    for (int i = 0; i < N_TEST_TENSORS; i++)
        CHECK(gguf_writer_add_tensor(w, test_tensors[i].name, test_tensors[i].type, test_tensors[i].n_dims,
                                     test_tensors[i].ne) == i);
    return w;
}

static void check_everything(const gguf_file *f) {
    ts_err err;
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f32 = 0;
    bool b = false;
    gguf_str s;
    const gguf_kv *kv;

    CHECK(gguf_n_kv(f) == 21);
    CHECK(gguf_get_u32(f, "t.u8", &u32, &err) == 0 && u32 == 200);
    CHECK(gguf_get_i64(f, "t.i8", &i64, &err) == 0 && i64 == -100);
    CHECK(gguf_get_u32(f, "t.u16", &u32, &err) == 0 && u32 == 60000);
    CHECK(gguf_get_i64(f, "t.i16", &i64, &err) == 0 && i64 == -30000);
    CHECK(gguf_get_u32(f, "t.u32", &u32, &err) == 0 && u32 == 4000000000u);
    CHECK(gguf_get_i64(f, "t.i32", &i64, &err) == 0 && i64 == -2000000000);
    CHECK(gguf_get_f32(f, "t.f32", &f32, &err) == 0 && f32 == 1.5f);
    CHECK(gguf_get_bool(f, "t.bool", &b, &err) == 0 && b);
    CHECK(gguf_get_str(f, "t.str", &s, &err) == 0 && gguf_str_eq(s, "hello, gguf"));
    CHECK(gguf_get_str(f, "t.empty", &s, &err) == 0 && s.len == 0);
    CHECK(gguf_get_u64(f, "t.u64", &u64, &err) == 0 && u64 == 18000000000000000000ull);
    CHECK(gguf_get_i64(f, "t.i64", &i64, &err) == 0 && i64 == -5000000000LL);
    CHECK(gguf_get_f32(f, "t.f64", &f32, &err) == 0 && isinf(f32)); /* 3.25e300 does not fit a float */
    CHECK(gguf_get_u32(f, "t.replaced", &u32, &err) == 0 && u32 == 2);
    kv = gguf_find_kv(f, "t.f64");
    CHECK(kv && kv->type == GGUF_F64);
    if (kv) {
        double d;
        memcpy(&d, kv->data, 8);
        CHECK(d == 3.25e300);
    }

    /* Getter conversions and refusals. */
    u32 = 77;
    CHECK(gguf_get_u32(f, "absent", &u32, &err) == 1 && u32 == 77);
    CHECK(gguf_get_u32(f, "t.i8", &u32, &err) == -1 && strstr(err.msg, "'t.i8' is -100"));
    CHECK(gguf_get_u32(f, "t.u64", &u32, &err) == -1 && strstr(err.msg, "does not fit 32 bits"));
    CHECK(gguf_get_i64(f, "t.u64", &i64, &err) == -1 && strstr(err.msg, "does not fit a signed 64-bit"));
    CHECK(gguf_get_u64(f, "t.str", &u64, &err) == -1 && strstr(err.msg, "key 't.str' has type string, expected an integer"));
    CHECK(gguf_get_f32(f, "t.u32", &f32, &err) == -1 && strstr(err.msg, "expected f32 or f64"));
    CHECK(gguf_get_bool(f, "t.u8", &b, &err) == -1 && strstr(err.msg, "expected bool"));
    CHECK(gguf_get_str(f, "t.u8", &s, &err) == -1 && strstr(err.msg, "expected string"));
    CHECK(gguf_get_arr(f, "t.u8", GGUF_U8, &kv, &err) == -1 && strstr(err.msg, "expected array"));
    CHECK(gguf_get_arr(f, "a.i32", GGUF_U32, &kv, &err) == -1 &&
          strstr(err.msg, "is an array of i32, expected an array of u32"));

    CHECK(gguf_get_arr(f, "a.i32", GGUF_I32, &kv, &err) == 0 && kv->arr_n == 3);
    if (kv && kv->arr_n == 3) {
        int32_t v[3];
        memcpy(v, kv->data, sizeof v);
        CHECK(v[0] == 1 && v[1] == -2 && v[2] == 3);
    }
    CHECK(gguf_get_arr(f, "a.f32", GGUF_F32, &kv, &err) == 0 && kv->arr_n == 2);
    CHECK(gguf_get_arr(f, "a.bool", GGUF_BOOL, &kv, &err) == 0 && kv->arr_n == 3 &&
          memcmp(kv->data, "\1\0\1", 3) == 0);
    CHECK(gguf_get_arr(f, "a.u8", GGUF_U8, &kv, &err) == 0 && kv->arr_n == 4 && memcmp(kv->data, "\11\10\7\6", 4) == 0);
    CHECK(gguf_get_arr(f, "a.f64", GGUF_F64, &kv, &err) == 0 && kv->arr_n == 2);
    CHECK(gguf_get_arr(f, "a.empty", GGUF_U64, &kv, &err) == 0 && kv->arr_n == 0);
    CHECK(gguf_get_arr(f, "a.str", GGUF_STRING, &kv, &err) == 0 && kv->arr_n == 4);
    if (kv && kv->arr_n == 4) {
        CHECK(gguf_str_eq(gguf_arr_str(kv, 0), "a"));
        CHECK(gguf_arr_str(kv, 1).len == 0);
        CHECK(gguf_str_eq(gguf_arr_str(kv, 2), "longer string"));
        CHECK(gguf_str_eq(gguf_arr_str(kv, 3), "<0x00>"));
        CHECK(gguf_arr_str(kv, 4).len == 0); /* out of range gives an empty string, not a crash */
    }
    /* kv_at walks everything in file order. */
    CHECK(gguf_kv_at(f, 0) && gguf_str_eq(gguf_kv_at(f, 0)->key, "t.u8"));
    CHECK(gguf_kv_at(f, gguf_n_kv(f)) == NULL && gguf_kv_at(f, -1) == NULL);

    CHECK(gguf_n_tensors(f) == N_TEST_TENSORS);
    for (int i = 0; i < N_TEST_TENSORS && i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        CHECK(strcmp(t->name, test_tensors[i].name) == 0);
        CHECK(gguf_find_tensor(f, test_tensors[i].name) == t);
        CHECK(t->type == test_tensors[i].type && t->n_dims == test_tensors[i].n_dims);
        int64_t rows = 1;
        for (int d = 0; d < 4; d++) {
            CHECK(t->ne[d] == test_tensors[i].ne[d]);
            if (d) rows *= t->ne[d];
        }
        CHECK(t->nbytes == ts_row_size(t->type, t->ne[0]) * (size_t)rows);
        CHECK(t->offset % gguf_alignment(f) == 0);
        CHECK(tensor_bytes_ok(t, i));
    }
    CHECK(gguf_find_tensor(f, "nope") == NULL);
    CHECK(gguf_tensor_at(f, N_TEST_TENSORS) == NULL);
}

static void test_round_trip(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/all.gguf", dir);
    gguf_writer *w = writer_with_everything();
    CHECK(write_file(w, path, NULL) == 0);
    gguf_writer_free(w);

    gguf_file *f = NULL;
    ts_err err;
    int rc = gguf_open(path, &f, &err);
    if (rc) fprintf(stderr, "open: %s\n", err.msg);
    CHECK(rc == 0);
    if (rc) return;
    CHECK(gguf_version(f) == 3);
    CHECK(gguf_alignment(f) == 32);
    CHECK(gguf_n_parts(f) == 1);
    CHECK(strcmp(gguf_path(f), path) == 0);
    check_everything(f);
    FILE *fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    CHECK(gguf_total_size(f) == (uint64_t)ftell(fp));
    CHECK(gguf_total_size(f) % 32 == 0); /* the writer pads the end too */
    fclose(fp);
    gguf_prefetch(f);
    gguf_close(f);

    /* The same image from memory, and as version 2 (identical layout for little-endian files). */
    w = writer_with_everything();
    buf mem = {0};
    CHECK(write_file(w, NULL, &mem) == 0);
    gguf_writer_free(w);
    for (uint32_t version = 2; version <= 3; version++) {
        memcpy(mem.p + 4, &version, 4);
        rc = gguf_open_memory(mem.p, mem.len, "mem.gguf", &f, &err);
        CHECK(rc == 0);
        if (rc) {
            fprintf(stderr, "open_memory: %s\n", err.msg);
            continue;
        }
        CHECK(gguf_version(f) == version);
        check_everything(f);
        gguf_close(f);
    }
    free(mem.p);
}

static void test_alignments(void) {
    const uint32_t alignments[] = {1, 8, 32, 64, 4096};
    for (size_t a = 0; a < sizeof alignments / sizeof alignments[0]; a++) {
        gguf_writer *w = gguf_writer_new();
        gguf_writer_set_u32(w, "general.alignment", alignments[a]);
        const int64_t ne1[] = {5}, ne2[] = {3, 3};
        CHECK(gguf_writer_add_tensor(w, "a", TS_TYPE_F16, 1, ne1) == 0);
        CHECK(gguf_writer_add_tensor(w, "b", TS_TYPE_F32, 2, ne2) == 1);
        CHECK(gguf_writer_add_tensor(w, "c", TS_TYPE_F16, 1, ne1) == 2);
        buf mem = {0};
        CHECK(write_file(w, NULL, &mem) == 0);
        gguf_writer_free(w);
        gguf_file *f = NULL;
        ts_err err;
        int rc = gguf_open_memory(mem.p, mem.len, "aligned.gguf", &f, &err);
        CHECK(rc == 0);
        if (rc == 0) {
            CHECK(gguf_alignment(f) == alignments[a]);
            CHECK(mem.len % alignments[a] == 0);
            for (int i = 0; i < 3; i++) {
                const gguf_tensor *t = gguf_tensor_at(f, i);
                CHECK(((const uint8_t *)t->data - mem.p) % alignments[a] == 0);
                CHECK(tensor_bytes_ok(t, i));
            }
            gguf_close(f);
        } else {
            fprintf(stderr, "alignment %u: %s\n", alignments[a], err.msg);
        }
        free(mem.p);
    }
    /* The writer refuses an alignment a reader would refuse. */
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_u32(w, "general.alignment", 48);
    ts_err err;
    FILE *fp = tmpfile();
    CHECK(gguf_writer_write_header(w, fp, &err) == -1 && strstr(err.msg, "not a nonzero power of two"));
    fclose(fp);
    gguf_writer_free(w);
}

static void test_writer_misuse(void) {
    ts_err err;
    const int64_t ne[] = {33};
    gguf_writer *w = gguf_writer_new();
    CHECK(gguf_writer_add_tensor(w, "q", TS_TYPE_Q4_0, 1, ne) == -1); /* 33 is not a multiple of 32 */
    FILE *fp = tmpfile();
    CHECK(gguf_writer_write_header(w, fp, &err) == -1 && strstr(err.msg, "not a multiple of the block size 32"));
    fclose(fp);
    gguf_writer_free(w);

    w = gguf_writer_new();
    const int64_t ne4[] = {4};
    CHECK(gguf_writer_add_tensor(w, "x", TS_TYPE_F32, 1, ne4) == 0);
    CHECK(gguf_writer_add_tensor(w, "x", TS_TYPE_F32, 1, ne4) == -1);
    CHECK(gguf_writer_add_tensor(w, "y", 16 /* iq2_xxs */, 1, ne4) == -1);
    gguf_writer_free(w);

    w = gguf_writer_new();
    CHECK(gguf_writer_add_tensor(w, "x", TS_TYPE_F32, 1, ne4) == 0);
    fp = tmpfile();
    CHECK(gguf_writer_write_header(w, fp, &err) == 0);
    const float data[5] = {0};
    CHECK(gguf_writer_write_data(w, fp, data, 8, &err) == 0);
    CHECK(gguf_writer_finish(w, fp, &err) == -1 && strstr(err.msg, "tensor 'x' got 8 of its 16 bytes"));
    CHECK(gguf_writer_write_data(w, fp, data, 12, &err) == -1 && strstr(err.msg, "beyond the last tensor"));
    fclose(fp);
    gguf_writer_free(w);
}

/* ---- split files ------------------------------------------------------------------------------- */

static void write_part(const char *dir, const char *prefix, int no, int count, int split_no_key, int first_tensor,
                       int n_tensors, int total_tensors) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s-%05d-of-%05d.gguf", dir, prefix, no, count);
    gguf_writer *w = gguf_writer_new();
    if (no == 1) gguf_writer_set_str(w, "general.architecture", "deepseek2");
    gguf_writer_set_scalar(w, "split.no", GGUF_U16, &(uint16_t){(uint16_t)split_no_key});
    gguf_writer_set_scalar(w, "split.count", GGUF_U16, &(uint16_t){(uint16_t)count});
    gguf_writer_set_i32(w, "split.tensors.count", total_tensors);
    for (int i = 0; i < n_tensors; i++) {
        char name[64];
        snprintf(name, sizeof name, "t%d", first_tensor + i);
        const int64_t ne[] = {32, 1 + i};
        CHECK(gguf_writer_add_tensor(w, name, TS_TYPE_Q8_0, 2, ne) == i);
    }
    CHECK(write_file(w, path, NULL) == 0);
    gguf_writer_free(w);
}

static void expect_open_error(const char *path, const char *want, int line) {
    gguf_file *f = NULL;
    ts_err err = {{0}};
    if (gguf_open(path, &f, &err) == 0) {
        fprintf(stderr, "line %d: %s was accepted, expected \"%s\"\n", line, path, want);
        failures++;
        gguf_close(f);
    } else if (!strstr(err.msg, want)) {
        fprintf(stderr, "line %d: expected \"%s\", got \"%s\"\n", line, want, err.msg);
        failures++;
    }
}
#define EXPECT_OPEN_ERROR(path, want) expect_open_error((path), (want), __LINE__)

static void test_split(const char *dir) {
    write_part(dir, "model", 1, 3, 0, 0, 2, 6);
    write_part(dir, "model", 2, 3, 1, 2, 1, 6);
    write_part(dir, "model", 3, 3, 2, 3, 3, 6);
    char path[512];
    snprintf(path, sizeof path, "%s/model-00001-of-00003.gguf", dir);
    gguf_file *f = NULL;
    ts_err err;
    int rc = gguf_open(path, &f, &err);
    if (rc) fprintf(stderr, "split open: %s\n", err.msg);
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK(gguf_n_parts(f) == 3);
        CHECK(gguf_n_tensors(f) == 6);
        gguf_str arch;
        CHECK(gguf_get_str(f, "general.architecture", &arch, &err) == 0 && gguf_str_eq(arch, "deepseek2"));
        const int part_of[6] = {0, 0, 1, 2, 2, 2};
        const int index_in_part[6] = {0, 1, 0, 0, 1, 2};
        for (int i = 0; i < 6; i++) {
            char name[16];
            snprintf(name, sizeof name, "t%d", i);
            const gguf_tensor *t = gguf_find_tensor(f, name);
            CHECK(t != NULL);
            if (!t) continue;
            CHECK(t->part == part_of[i]);
            CHECK(t->ne[1] == 1 + index_in_part[i]);
            CHECK(tensor_bytes_ok(t, index_in_part[i]));
        }
        uint64_t total = 0;
        for (int no = 1; no <= 3; no++) {
            snprintf(path, sizeof path, "%s/model-%05d-of-00003.gguf", dir, no);
            FILE *fp = fopen(path, "rb");
            fseek(fp, 0, SEEK_END);
            total += (uint64_t)ftell(fp);
            fclose(fp);
        }
        CHECK(gguf_total_size(f) == total);
        gguf_prefetch(f);
        gguf_close(f);
    }
    snprintf(path, sizeof path, "%s/model-00002-of-00003.gguf", dir);
    EXPECT_OPEN_ERROR(path, "is part 2 of a 3-part split model; open part 1");

    /* Missing part: the message names the missing file. */
    write_part(dir, "gap", 1, 3, 0, 0, 2, 6);
    write_part(dir, "gap", 2, 3, 1, 2, 1, 6);
    snprintf(path, sizeof path, "%s/gap-00001-of-00003.gguf", dir);
    EXPECT_OPEN_ERROR(path, "gap-00003-of-00003.gguf: cannot open: No such file or directory");

    /* split.no disagreeing with the name. */
    write_part(dir, "badno", 1, 2, 0, 0, 1, 2);
    write_part(dir, "badno", 2, 2, 0, 1, 1, 2);
    snprintf(path, sizeof path, "%s/badno-00001-of-00002.gguf", dir);
    EXPECT_OPEN_ERROR(path, "badno-00002-of-00002.gguf: split.no is 0 but the file name says part 2");

    /* split.count disagreeing with the name. */
    write_part(dir, "badcount", 1, 2, 0, 0, 1, 2);
    snprintf(path, sizeof path, "%s/badcount-00001-of-00002.gguf", dir);
    char renamed[512];
    snprintf(renamed, sizeof renamed, "%s/badcount-00001-of-00003.gguf", dir);
    CHECK(rename(path, renamed) == 0);
    EXPECT_OPEN_ERROR(renamed, "split.count is 2 but the file name says 3 parts");

    /* split.tensors.count disagreeing with the parts. */
    write_part(dir, "badtc", 1, 2, 0, 0, 1, 5);
    write_part(dir, "badtc", 2, 2, 1, 1, 1, 5);
    snprintf(path, sizeof path, "%s/badtc-00001-of-00002.gguf", dir);
    EXPECT_OPEN_ERROR(path, "split.tensors.count is 5 but the 2 part(s) hold 2 tensors");

    /* Same tensor name in two parts. */
    write_part(dir, "dup", 1, 2, 0, 0, 1, 2);
    write_part(dir, "dup", 2, 2, 1, 0, 1, 2);
    snprintf(path, sizeof path, "%s/dup-00001-of-00002.gguf", dir);
    EXPECT_OPEN_ERROR(path, "duplicate tensor name 't0'");

    /* A split.count > 1 in a file whose name gives no way to find its siblings. */
    write_part(dir, "plain", 1, 2, 0, 0, 1, 2);
    snprintf(path, sizeof path, "%s/plain-00001-of-00002.gguf", dir);
    snprintf(renamed, sizeof renamed, "%s/plain.gguf", dir);
    CHECK(rename(path, renamed) == 0);
    EXPECT_OPEN_ERROR(renamed, "split.count is 2 but the file name does not follow NAME-00001-of-00002.gguf");

    snprintf(path, sizeof path, "%s/does-not-exist.gguf", dir);
    EXPECT_OPEN_ERROR(path, "does-not-exist.gguf: cannot open");
    EXPECT_OPEN_ERROR(dir, "not a regular file");
}

/* ---- one test per error class -------------------------------------------------------------------- */

static void test_errors(void) {
    const int64_t ne8[] = {8};
    buf b = {0};

    /* A correct base image, checked to be accepted, so the variants below fail for their one reason. */
    b = one_tensor_file("w", TS_TYPE_F32, 1, ne8, 0, 32);
    {
        gguf_file *f = NULL;
        ts_err err;
        CHECK(gguf_open_memory(b.p, b.len, "model.gguf", &f, &err) == 0);
        gguf_close(f);
    }
    /* Truncation anywhere: every proper prefix must be refused. */
    for (size_t len = 0; len < b.len; len++) {
        buf cut = {.p = b.p, .len = len};
        gguf_file *f = NULL;
        ts_err err;
        if (gguf_open_memory(cut.p, cut.len, "model.gguf", &f, &err) == 0) {
            fprintf(stderr, "prefix of %zu bytes accepted\n", len);
            failures++;
            gguf_close(f);
        } else {
            CHECK(strncmp(err.msg, "model.gguf: ", 12) == 0);
        }
    }
    buf cut = {.p = b.p, .len = 20};
    EXPECT_ERROR(&cut, "file truncated while reading metadata count (at offset 16, file size 20)");
    {
        buf kv_only = {0};
        header(&kv_only, 3, 0, 1);
        kv_u32(&kv_only, "general.x", 7);
        kv_only.len = 40;
        EXPECT_ERROR(&kv_only, "key length 9 at offset 24 runs past end of file (size 40)");
        kv_only.len = 43;
        EXPECT_ERROR(&kv_only, "file truncated while reading value type (at offset 41, file size 43)");
        free(kv_only.p);
    }
    cut.len = 2;
    EXPECT_ERROR(&cut, "file is too short to be GGUF (2 bytes)");
    cut.len = b.len - 1;
    EXPECT_ERROR(&cut, "tensor 'w' data [");
    /* Magic and version. */
    memcpy(b.p, "GGML", 4);
    EXPECT_ERROR(&b, "not a GGUF file (magic bytes 47 47 4d 4c");
    memcpy(b.p, "GGUF", 4);
    memcpy(b.p + 4, &(uint32_t){1}, 4);
    EXPECT_ERROR(&b, "GGUF version 1 is not supported");
    memcpy(b.p + 4, &(uint32_t){4}, 4);
    EXPECT_ERROR(&b, "unsupported GGUF version 4");
    memcpy(b.p + 4, &(uint32_t){0x03000000}, 4);
    EXPECT_ERROR(&b, "file is big-endian GGUF (version 3 with bytes swapped); tiefsee reads only little-endian");
    free(b.p);

    /* Counts larger than the file could hold. */
    b = (buf){0};
    header(&b, 3, 0, UINT64_MAX / 2);
    zeros(&b, 64);
    EXPECT_ERROR(&b, "metadata count 9223372036854775807 is larger than the file could hold");
    free(b.p);
    b = (buf){0};
    header(&b, 3, 1000, 0);
    zeros(&b, 64);
    EXPECT_ERROR(&b, "tensor count 1000 is larger than the file could hold (size 88)");
    free(b.p);

    /* String length past the end / overflowing. */
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_u64(&b, UINT64_MAX - 3);
    zeros(&b, 16);
    EXPECT_ERROR(&b, "key length 18446744073709551612 at offset 24 runs past end of file");
    free(b.p);

    /* Array whose length times element size overflows. */
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_str(&b, "a");
    put_u32(&b, GGUF_ARRAY);
    put_u32(&b, GGUF_U64);
    put_u64(&b, UINT64_MAX / 4);
    zeros(&b, 16);
    EXPECT_ERROR(&b, "key 'a' array of 4611686018427387903 u64 runs past end of file");
    free(b.p);
    /* String array whose element count exceeds what is left. */
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_str(&b, "s");
    put_u32(&b, GGUF_ARRAY);
    put_u32(&b, GGUF_STRING);
    put_u64(&b, 3);
    put_str(&b, "x");
    put_u64(&b, 100);
    zeros(&b, 16);
    EXPECT_ERROR(&b, "string array element length 100");
    free(b.p);

    /* Nested arrays, unknown value types, invalid bools, NUL in keys, duplicate keys. */
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_str(&b, "nest");
    put_u32(&b, GGUF_ARRAY);
    put_u32(&b, GGUF_ARRAY);
    put_u64(&b, 0);
    EXPECT_ERROR(&b, "key 'nest' is an array of arrays, which tiefsee does not support");
    free(b.p);
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, 13);
    zeros(&b, 8);
    EXPECT_ERROR(&b, "key 'k' has unknown value type 13");
    free(b.p);
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, GGUF_ARRAY);
    put_u32(&b, 99);
    put_u64(&b, 0);
    EXPECT_ERROR(&b, "key 'k' has arrays of unknown value type 99");
    free(b.p);
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_str(&b, "flag");
    put_u32(&b, GGUF_BOOL);
    put_u8(&b, 2);
    EXPECT_ERROR(&b, "key 'flag' has invalid bool value 2");
    free(b.p);
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_str(&b, "flags");
    put_u32(&b, GGUF_ARRAY);
    put_u32(&b, GGUF_BOOL);
    put_u64(&b, 3);
    put(&b, "\1\0\377", 3);
    EXPECT_ERROR(&b, "key 'flags' has invalid bool value 255");
    free(b.p);
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_strn(&b, "a\0b\n", 4);
    put_u32(&b, GGUF_U8);
    put_u8(&b, 0);
    EXPECT_ERROR(&b, "key 'a?b?' contains a NUL byte");
    free(b.p);
    b = (buf){0};
    header(&b, 3, 0, 2);
    kv_u32(&b, "general.x", 1);
    kv_u32(&b, "general.x", 2);
    EXPECT_ERROR(&b, "duplicate key 'general.x'");
    free(b.p);

    /* general.alignment must be a nonzero power-of-two u32. */
    const uint32_t bad_alignments[] = {0, 48};
    for (int i = 0; i < 2; i++) {
        b = (buf){0};
        header(&b, 3, 0, 1);
        kv_u32(&b, "general.alignment", bad_alignments[i]);
        EXPECT_ERROR(&b, "is not a nonzero power of two");
        free(b.p);
    }
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_str(&b, "general.alignment");
    put_u32(&b, GGUF_U64);
    put_u64(&b, 32);
    EXPECT_ERROR(&b, "general.alignment has type u64 (must be u32)");
    free(b.p);

    /* Tensor infos. */
    const int64_t ne5[] = {8, 1, 1, 1, 1}, ne0[] = {8, 0}, neneg[] = {-8}, nebig[] = {1LL << 40, 1LL << 40, 1LL << 40};
    b = one_tensor_file("w", TS_TYPE_F32, 5, ne5, 0, 32);
    EXPECT_ERROR(&b, "tensor 'w' has 5 dimensions (1 to 4 allowed)");
    free(b.p);
    b = one_tensor_file("line\nbreak\x80", TS_TYPE_F32, 5, ne5, 0, 32); /* messages stay one printable line */
    EXPECT_ERROR(&b, "tensor 'line?break?' has 5 dimensions");
    free(b.p);
    b = one_tensor_file("w", TS_TYPE_F32, 0, ne5, 0, 32);
    EXPECT_ERROR(&b, "tensor 'w' has 0 dimensions");
    free(b.p);
    b = one_tensor_file("w", TS_TYPE_F32, 2, ne0, 0, 32);
    EXPECT_ERROR(&b, "tensor 'w' dimension 1 is 0 (must be positive)");
    free(b.p);
    b = one_tensor_file("w", TS_TYPE_F32, 1, neneg, 0, 32);
    EXPECT_ERROR(&b, "tensor 'w' dimension 0 is -8 (must be positive)");
    free(b.p);
    b = one_tensor_file("w", TS_TYPE_F32, 3, nebig, 0, 32);
    EXPECT_ERROR(&b, "tensor 'w' of shape [1099511627776, 1099511627776, 1099511627776, 1] is larger than the file");
    free(b.p);
    b = one_tensor_file("blk.0.attn_q.weight", 16, 1, ne8, 0, 32);
    EXPECT_ERROR(&b, "tensor 'blk.0.attn_q.weight' has type iq2_xxs, which tiefsee does not support");
    free(b.p);
    b = one_tensor_file("w", 77, 1, ne8, 0, 32);
    EXPECT_ERROR(&b, "tensor 'w' has unknown type 77");
    free(b.p);
    b = one_tensor_file("w", 4, 1, ne8, 0, 32);
    EXPECT_ERROR(&b, "tensor 'w' has type q4_2 (removed), which tiefsee does not support");
    free(b.p);
    b = one_tensor_file("w", TS_TYPE_Q4_0, 1, ne8, 0, 32);
    EXPECT_ERROR(&b, "tensor 'w' row length 8 is not a multiple of the q4_0 block size 32");
    free(b.p);
    b = one_tensor_file("", TS_TYPE_F32, 1, ne8, 0, 32);
    EXPECT_ERROR(&b, "tensor #0 has an empty name");
    free(b.p);
    char long_name[200];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    b = one_tensor_file(long_name, TS_TYPE_F32, 1, ne8, 0, 32);
    EXPECT_ERROR(&b, "bytes long (at most 127 allowed)");
    free(b.p);
    b = (buf){0};
    header(&b, 3, 1, 0);
    put_strn(&b, "bad\0name", 8);
    put_u32(&b, 1);
    put_u64(&b, 8);
    put_u32(&b, TS_TYPE_F32);
    put_u64(&b, 0);
    pad_to(&b, 32);
    zeros(&b, 32);
    EXPECT_ERROR(&b, "tensor name 'bad?name' contains a NUL byte");
    free(b.p);

    /* Tensor placement. */
    b = one_tensor_file("w", TS_TYPE_F32, 1, ne8, 0, 31);
    EXPECT_ERROR(&b, "model.gguf: tensor 'w' data [96, 128) runs past end of file (size 127)");
    free(b.p);
    b = one_tensor_file("w", TS_TYPE_F32, 1, ne8, UINT64_MAX - 31, 32);
    EXPECT_ERROR(&b, "tensor 'w' offset 18446744073709551584 is outside the file (size 128)");
    free(b.p);
    b = one_tensor_file("w", TS_TYPE_F32, 1, ne8, 1 << 20, 32);
    EXPECT_ERROR(&b, "tensor 'w' offset 1048576 is outside the file");
    free(b.p);
    b = one_tensor_file("w", TS_TYPE_F32, 1, ne8, 4, 64);
    EXPECT_ERROR(&b, "tensor 'w' offset 4 is not a multiple of the alignment 32");
    free(b.p);
    const int64_t ne16[] = {16};
    b = (buf){0};
    header(&b, 3, 3, 0);
    tensor_info(&b, "a", 1, ne8, TS_TYPE_F32, 64);
    tensor_info(&b, "b", 1, ne16, TS_TYPE_F32, 0); /* [0, 64) */
    tensor_info(&b, "c", 1, ne16, TS_TYPE_F32, 32); /* [32, 96) overlaps b */
    pad_to(&b, 32);
    zeros(&b, 128);
    EXPECT_ERROR(&b, "tensors 'b' [128, 192) and 'c' [160, 224) overlap");
    free(b.p);
    b = (buf){0};
    header(&b, 3, 2, 0);
    tensor_info(&b, "same", 1, ne8, TS_TYPE_F32, 0);
    tensor_info(&b, "same", 1, ne8, TS_TYPE_F32, 32);
    pad_to(&b, 32);
    zeros(&b, 64);
    EXPECT_ERROR(&b, "duplicate tensor name 'same'");
    free(b.p);
    /* Data section start past the end of a file that ends right after the tensor infos. */
    b = (buf){0};
    header(&b, 3, 1, 0);
    tensor_info(&b, "w", 1, ne8, TS_TYPE_F32, 0);
    EXPECT_ERROR(&b, "data section at offset");
    free(b.p);

    /* A file with no tensors may end without the final padding; an empty buffer is refused. */
    b = (buf){0};
    header(&b, 3, 0, 1);
    kv_u32(&b, "k", 1);
    {
        gguf_file *f = NULL;
        ts_err err;
        CHECK(gguf_open_memory(b.p, b.len, "model.gguf", &f, &err) == 0);
        if (f) {
            CHECK(gguf_n_tensors(f) == 0 && gguf_n_kv(f) == 1);
            CHECK(gguf_find_kv(f, "k") && !gguf_find_kv(f, "j") && !gguf_find_kv(f, "kk"));
        }
        gguf_close(f);
        CHECK(gguf_open_memory(NULL, 0, NULL, &f, &err) == -1 && strstr(err.msg, "too short"));
    }
    free(b.p);
}

int main(void) {
    char dir[] = "/tmp/test_gguf_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip(dir);
    test_alignments();
    test_writer_misuse();
    test_split(dir);
    test_errors();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    if (failures) {
        fprintf(stderr, "test_gguf: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_gguf: all passed\n");
    return 0;
}
