/* GGUF v2/v3 reader (mmap, zero-copy) and writer.
 *
 * The reader validates everything before handing out a pointer: every length and offset is checked
 * against the file size with overflow-safe arithmetic, tensors must be aligned, inside the data
 * section and not overlap, names are unique, types known. Split models (NAME-00001-of-0000N.gguf)
 * are opened from the first part; the parts' tensors are merged into one list (metadata is read
 * from the first part; `split.*` keys are checked). Errors name the file and the problem. */
#ifndef TS_GGUF_GGUF_H
#define TS_GGUF_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/error.h"

enum gguf_vtype {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5, GGUF_F32 = 6,
    GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10, GGUF_I64 = 11, GGUF_F64 = 12,
    GGUF_VTYPE_COUNT
};

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

/* A string inside the mapped file: not NUL-terminated. */
typedef struct gguf_str {
    const char *ptr;
    uint64_t len;
} gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    enum gguf_vtype type;
    /* Scalars: `data` points at the little-endian value in the file. Strings: `str`.
     * Arrays: arr_type, arr_n, and `data` points at the first element; for arrays of strings, use
     * gguf_arr_str() (elements are length-prefixed, validated at open). */
    const void *data;
    gguf_str str;
    enum gguf_vtype arr_type;
    uint64_t arr_n;
    const uint64_t *str_offsets; /* arrays of strings: byte offset of each element from `data` */
} gguf_kv;

typedef struct gguf_tensor {
    char name[128];      /* NUL-terminated copy (GGUF limits names to 64 bytes; we accept up to 127) */
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* unused dims are 1 */
    int type;                  /* GGML type id; always one the engine supports */
    uint64_t offset;           /* relative to the data section of its part */
    size_t nbytes;
    const void *data;          /* into the mapping of its part */
    int part;                  /* index of the split part holding it */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Opens and validates a GGUF file (and its split siblings). Returns 0 or -1 with err set. */
int gguf_open(const char *path, gguf_file **out, ts_err *err);
/* Parses a GGUF image already in memory (one part, no splits; `name` is used in messages).
 * The buffer must outlive the result. Used by the fuzzer and tests. */
int gguf_open_memory(const void *buf, size_t len, const char *name, gguf_file **out, ts_err *err);
void gguf_close(gguf_file *f);

const char *gguf_path(const gguf_file *f);
uint32_t gguf_version(const gguf_file *f);
size_t gguf_alignment(const gguf_file *f);
int gguf_n_parts(const gguf_file *f);
uint64_t gguf_total_size(const gguf_file *f); /* bytes of all parts */

int64_t gguf_n_kv(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i);
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);

/* Typed getters. Each returns 0 on success, 1 if the key is absent (out untouched), -1 with err set
 * if present with an incompatible type or out-of-range value. Integers of any width and signedness
 * are accepted where the value fits. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, ts_err *err);
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, ts_err *err);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, ts_err *err);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, ts_err *err); /* from F32/F64 */
int gguf_get_bool(const gguf_file *f, const char *key, bool *out, ts_err *err);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, ts_err *err);
/* Array getters: arr_type must match (numeric arrays: exactly `want`). */
int gguf_get_arr(const gguf_file *f, const char *key, enum gguf_vtype want, const gguf_kv **out, ts_err *err);
gguf_str gguf_arr_str(const gguf_kv *kv, uint64_t i); /* i < arr_n, arr_type == GGUF_STRING */

bool gguf_str_eq(gguf_str s, const char *c);

int64_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name); /* NULL if absent */

/* Hints the kernel to read the tensor data ahead (MADV_WILLNEED). */
void gguf_prefetch(const gguf_file *f);
/* Drops the whole pages of [p, p + n) from this process's memory when they lie in one of f's file
 * mappings (MADV_DONTNEED: a private read-only file mapping reads them from the file again if they
 * are touched later, so no data is lost). Used after weights were copied elsewhere (repacking).
 * Does nothing for gguf_open_memory buffers or ranges outside the mappings. */
void gguf_release_range(const gguf_file *f, const void *p, size_t n);
/* Where [p, p + n) lies in f's files: opens that part's file again (read-only, close-on-exec) and
 * sets *fd and *offset so that pread(*fd, dst, n, *offset) reads those bytes without touching the
 * mapping (no page faults: much faster than reading through the mapping where faults are
 * expensive, e.g. in virtual machines). Returns 0, or -1 when the range is not in a file mapping
 * (gguf_open_memory) or the file cannot be opened; the caller then reads through p. */
int gguf_file_range(const gguf_file *f, const void *p, size_t n, int *fd, uint64_t *offset);

/* ---- Writer ----------------------------------------------------------------------------------
 * Build the header in memory, then stream tensor data in order: tensors are laid out in the order
 * they were added, each aligned. Writes v3. */
typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
void gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
/* Any fixed-size scalar type (u8..f64, bool): `value` points at one host value of that C type
 * (uint8_t, int16_t, double, bool, ...). The typed setters above are shorthands for it. */
void gguf_writer_set_scalar(gguf_writer *w, const char *key, enum gguf_vtype t, const void *value);
/* Array of n numbers of type t (elements copied), or of n NUL-terminated strings. */
void gguf_writer_set_arr(gguf_writer *w, const char *key, enum gguf_vtype t, const void *data, uint64_t n);
void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* Declares a tensor; returns its index. ne[0] is the contiguous dimension. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne);
/* Writes header + tensor infos + padding to fp. Then call gguf_writer_write_data for each tensor in
 * order with exactly its nbytes (may be split into several calls, in order). */
int gguf_writer_write_header(gguf_writer *w, FILE *fp, ts_err *err);
int gguf_writer_write_data(gguf_writer *w, FILE *fp, const void *data, size_t n, ts_err *err);
/* Pads after the last tensor and checks every tensor was written in full. */
int gguf_writer_finish(gguf_writer *w, FILE *fp, ts_err *err);
size_t gguf_writer_tensor_nbytes(const gguf_writer *w, int idx);

#endif
