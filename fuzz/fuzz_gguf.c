/* libFuzzer target for the GGUF reader: parse arbitrary bytes with gguf_open_memory and, if they
 * are accepted, touch every byte the reader hands out (keys, values, array elements, tensor data)
 * and call every getter, so a bound the reader forgot shows up as an ASan report. A refusal must
 * be exactly one line naming the file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"

/* Bytes of each fixed-size value type (0: string, array). */
static const uint8_t scalar_size[GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* Sums bytes so the compiler cannot drop the reads. */
static uint8_t touch(const void *p, uint64_t n) {
    const volatile uint8_t *b = p;
    uint8_t acc = 0;
    for (uint64_t i = 0; i < n; i++) acc ^= b[i];
    return acc;
}

static void walk_kv(const gguf_file *f, const gguf_kv *kv, volatile uint8_t *sink) {
    char key[256];
    if (kv->key.len >= sizeof key) return; /* getters need a C string; long keys are touched below */
    memcpy(key, kv->key.ptr, kv->key.len);
    key[kv->key.len] = '\0';
    if (gguf_find_kv(f, key) != kv) abort(); /* keys are unique, so lookup must find this one */
    ts_err err;
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float f32;
    bool b;
    gguf_str s;
    const gguf_kv *arr;
    (void)gguf_get_u32(f, key, &u32, &err);
    (void)gguf_get_u64(f, key, &u64, &err);
    (void)gguf_get_i64(f, key, &i64, &err);
    (void)gguf_get_f32(f, key, &f32, &err);
    (void)gguf_get_bool(f, key, &b, &err);
    if (gguf_get_str(f, key, &s, &err) == 0) *sink ^= touch(s.ptr, s.len);
    for (int t = 0; t < GGUF_VTYPE_COUNT; t++) (void)gguf_get_arr(f, key, (enum gguf_vtype)t, &arr, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char name[] = "fuzz.gguf";
    gguf_file *f = NULL;
    ts_err err = {{0}};
    if (gguf_open_memory(data, size, name, &f, &err) != 0) {
        if (f || strncmp(err.msg, "fuzz.gguf: ", 11) != 0 || strchr(err.msg, '\n')) abort();
        return 0;
    }
    volatile uint8_t sink = 0;
    sink ^= (uint8_t)gguf_version(f) ^ (uint8_t)gguf_alignment(f) ^ (uint8_t)gguf_n_parts(f);
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        sink ^= touch(kv->key.ptr, kv->key.len);
        if (kv->type == GGUF_STRING) sink ^= touch(kv->str.ptr, kv->str.len);
        if (kv->type == GGUF_ARRAY) {
            if (kv->arr_type == GGUF_STRING) {
                for (uint64_t k = 0; k < kv->arr_n; k++) {
                    gguf_str s = gguf_arr_str(kv, k);
                    sink ^= touch(s.ptr, s.len);
                }
            } else {
                sink ^= touch(kv->data, kv->arr_n * scalar_size[kv->arr_type]);
            }
        } else if (kv->type != GGUF_STRING) {
            sink ^= touch(kv->data, scalar_size[kv->type]);
        }
        walk_kv(f, kv, &sink);
    }
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (gguf_find_tensor(f, t->name) != t) abort();
        if (t->offset % gguf_alignment(f) != 0) abort();
        sink ^= touch(t->data, t->nbytes);
    }
    (void)gguf_find_tensor(f, "token_embd.weight");
    (void)sink;
    gguf_close(f);
    return 0;
}
