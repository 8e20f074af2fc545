/* Writes the seed corpus for fuzz_gguf into a directory (fuzz/corpus/gguf in the repository):
 * small valid files made by our writer (every value type, arrays, tensors of several types, v2 and
 * v3, several alignments, splits' first parts) and corrupt variants of them (truncated, bad magic
 * and version, patched types, names, offsets, counts), so the fuzzer starts deep inside the format.
 * The files carry no .gguf extension because the repository ignores *.gguf outside tests/data.
 *
 * Usage: make_gguf_corpus OUTPUT_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "quant/types.h"

typedef struct image {
    char *p;
    size_t len;
} image;

static const char *out_dir;

static void save(const char *name, const void *p, size_t len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(p, 1, len, fp) != len || fclose(fp) != 0) {
        fprintf(stderr, "make_gguf_corpus: cannot write %s\n", path);
        exit(1);
    }
}

/* Serializes w into memory; tensor bytes are a simple pattern (the content is irrelevant). */
static image render(gguf_writer *w) {
    image im = {0};
    FILE *fp = open_memstream(&im.p, &im.len);
    ts_err err;
    if (!fp || gguf_writer_write_header(w, fp, &err) != 0) goto fail;
    for (int i = 0; gguf_writer_tensor_nbytes(w, i) > 0; i++) {
        size_t n = gguf_writer_tensor_nbytes(w, i);
        for (size_t k = 0; k < n; k++) {
            uint8_t v = (uint8_t)(k * 13 + (size_t)i);
            if (gguf_writer_write_data(w, fp, &v, 1, &err) != 0) goto fail;
        }
    }
    if (gguf_writer_finish(w, fp, &err) != 0) goto fail;
    fclose(fp);
    gguf_writer_free(w);
    return im;
fail:
    fprintf(stderr, "make_gguf_corpus: %s\n", err.msg);
    exit(1);
}

/* Offset of the first occurrence of a byte string (to patch a field found by its neighbours). */
static size_t find(const image *im, const void *needle, size_t n) {
    for (size_t i = 0; i + n <= im->len; i++)
        if (memcmp(im->p + i, needle, n) == 0) return i;
    fprintf(stderr, "make_gguf_corpus: pattern not found\n");
    exit(1);
}

/* Offset just after tensor name `name` (8-byte length + bytes) in the tensor infos. */
static size_t after_tensor_name(const image *im, const char *name) {
    char pat[80];
    uint64_t n = strlen(name);
    memcpy(pat, &n, 8);
    memcpy(pat + 8, name, n);
    return find(im, pat, 8 + n) + 8 + n;
}

static void save_patched(const char *name, const image *im, size_t at, const void *bytes, size_t n) {
    char *copy = malloc(im->len);
    memcpy(copy, im->p, im->len);
    memcpy(copy + at, bytes, n);
    save(name, copy, im->len);
    free(copy);
}

static gguf_writer *everything(void) {
    gguf_writer *w = gguf_writer_new();
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int64_t i64 = -5000000000LL;
    double f64 = 2.5;
    gguf_writer_set_str(w, "general.architecture", "deepseek2");
    gguf_writer_set_scalar(w, "t.u8", GGUF_U8, &u8);
    gguf_writer_set_scalar(w, "t.i8", GGUF_I8, &i8);
    gguf_writer_set_scalar(w, "t.u16", GGUF_U16, &u16);
    gguf_writer_set_scalar(w, "t.i16", GGUF_I16, &i16);
    gguf_writer_set_u32(w, "t.u32", 4000000000u);
    gguf_writer_set_i32(w, "t.i32", -7);
    gguf_writer_set_f32(w, "t.f32", 0.125f);
    gguf_writer_set_bool(w, "t.bool", true);
    gguf_writer_set_u64(w, "t.u64", 1ull << 40);
    gguf_writer_set_scalar(w, "t.i64", GGUF_I64, &i64);
    gguf_writer_set_scalar(w, "t.f64", GGUF_F64, &f64);
    const int32_t ints[] = {1, -2, 3};
    const bool bools[] = {true, false};
    const float floats[] = {1.0f, -1.0f};
    const char *const tokens[] = {"<s>", "</s>", "hello", ""};
    gguf_writer_set_arr(w, "a.i32", GGUF_I32, ints, 3);
    gguf_writer_set_arr(w, "a.bool", GGUF_BOOL, bools, 2);
    gguf_writer_set_arr(w, "a.f32", GGUF_F32, floats, 2);
    gguf_writer_set_arr(w, "a.empty", GGUF_U16, NULL, 0);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, 4);
    const struct {
        const char *name;
        int type, n_dims;
        int64_t ne[4];
    } tensors[] = {
        {"token_embd.weight", TS_TYPE_F32, 2, {4, 2, 1, 1}},
        {"blk.0.attn_norm.weight", TS_TYPE_F16, 1, {6, 1, 1, 1}},
        {"blk.0.attn_q.weight", TS_TYPE_Q4_0, 2, {32, 2, 1, 1}},
        {"blk.0.attn_k.weight", TS_TYPE_Q8_0, 3, {32, 1, 2, 1}},
        {"blk.0.ffn_up.weight", TS_TYPE_Q4_K, 1, {256, 1, 1, 1}},
        {"blk.0.ffn_down.weight", TS_TYPE_BF16, 4, {2, 1, 2, 1}},
    };
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++)
        gguf_writer_add_tensor(w, tensors[i].name, tensors[i].type, tensors[i].n_dims, tensors[i].ne);
    return w;
}

static gguf_writer *small(uint32_t alignment) {
    gguf_writer *w = gguf_writer_new();
    if (alignment) gguf_writer_set_u32(w, "general.alignment", alignment);
    gguf_writer_set_str(w, "general.name", "tiny");
    const int64_t ne_a[] = {4}, ne_b[] = {32, 1};
    gguf_writer_add_tensor(w, "a", TS_TYPE_F32, 1, ne_a);
    gguf_writer_add_tensor(w, "b", TS_TYPE_Q5_0, 2, ne_b);
    return w;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];

    image all = render(everything());
    save("valid_v3_all_types", all.p, all.len);
    const uint32_t v2 = 2;
    save_patched("valid_v2_all_types", &all, 4, &v2, 4);

    const uint32_t alignments[] = {1, 8, 64};
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "valid_align%u", alignments[i]);
        image im = render(small(alignments[i]));
        save(name, im.p, im.len);
        free(im.p);
    }
    image empty = render(gguf_writer_new());
    save("valid_empty", empty.p, empty.len);
    free(empty.p);

    gguf_writer *sw = small(0);
    uint16_t no = 0, count = 1;
    gguf_writer_set_scalar(sw, "split.no", GGUF_U16, &no);
    gguf_writer_set_scalar(sw, "split.count", GGUF_U16, &count);
    gguf_writer_set_i32(sw, "split.tensors.count", 2);
    image split = render(sw);
    save("valid_split_keys", split.p, split.len);
    free(split.p);

    /* Corrupt variants of the big valid file. */
    save("bad_truncated_header", all.p, 20);
    save("bad_truncated_kv", all.p, all.len / 4);
    save("bad_truncated_infos", all.p, find(&all, "blk.0.ffn_up", 12));
    save("bad_truncated_data", all.p, all.len - 40);
    save_patched("bad_magic", &all, 0, "GGML", 4);
    const uint32_t v1 = 1, big_endian_v3 = 0x03000000;
    save_patched("bad_version1", &all, 4, &v1, 4);
    save_patched("bad_big_endian", &all, 4, &big_endian_v3, 4);
    const uint64_t huge = UINT64_MAX / 3;
    save_patched("bad_n_tensors", &all, 8, &huge, 8);
    save_patched("bad_n_kv", &all, 16, &huge, 8);

    size_t at = after_tensor_name(&all, "blk.0.attn_q.weight"); /* n_dims, ne[2], type, offset */
    const uint32_t five = 5, iq2_xxs = 16, unknown_type = 77;
    const int64_t zero = 0, not_block = 31;
    save_patched("bad_n_dims", &all, at, &five, 4);
    save_patched("bad_dim_zero", &all, at + 4 + 8, &zero, 8);
    save_patched("bad_block_multiple", &all, at + 4, &not_block, 8);
    save_patched("bad_type_iq2_xxs", &all, at + 4 + 16, &iq2_xxs, 4);
    save_patched("bad_type_unknown", &all, at + 4 + 16, &unknown_type, 4);
    const uint64_t misaligned = 4, overlapping = 0, outside = 1ull << 62;
    save_patched("bad_misaligned", &all, at + 4 + 16 + 4, &misaligned, 8);
    save_patched("bad_overlap", &all, at + 4 + 16 + 4, &overlapping, 8);
    save_patched("bad_offset_outside", &all, at + 4 + 16 + 4, &outside, 8);
    size_t name_at = after_tensor_name(&all, "blk.0.attn_k.weight") - 19;
    save_patched("bad_dup_tensor", &all, name_at, "blk.0.attn_q.weight", 19);
    save_patched("bad_nul_name", &all, name_at + 3, "\0", 1);
    size_t key_at = find(&all, "t.i32", 5);
    save_patched("bad_dup_key", &all, key_at, "t.u32", 5);
    size_t bool_at = find(&all, "t.bool", 6) + 6 + 4;
    save_patched("bad_bool", &all, bool_at, "\2", 1);
    size_t arr_type_at = find(&all, "a.i32", 5) + 5 + 4;
    const uint32_t arr_of_arr = GGUF_ARRAY;
    save_patched("bad_nested_array", &all, arr_type_at, &arr_of_arr, 4);
    save_patched("bad_array_length", &all, arr_type_at + 4, &huge, 8);
    size_t str_len_at = find(&all, "general.architecture", 20) + 20 + 4;
    save_patched("bad_string_length", &all, str_len_at, &huge, 8);

    image aligned = render(small(64));
    const uint32_t bad_alignment = 48;
    size_t align_at = find(&aligned, "general.alignment", 17) + 17 + 4;
    save_patched("bad_alignment", &aligned, align_at, &bad_alignment, 4);
    free(aligned.p);
    free(all.p);
    return 0;
}
