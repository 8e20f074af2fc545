/* Test helper: writes a tiny random-weight `llama`/`qwen2` GGUF with the project's GGUF writer
 * (header-only; each test is its own executable). Optional faults let the loader tests produce
 * exactly one defect: a key left out, a tensor left out, or a tensor with a wrong shape. */
#ifndef TS_TESTS_TINY_MODEL_H
#define TS_TESTS_TINY_MODEL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "quant/types.h"
#include "util/fp16.h"

typedef struct tiny_spec {
    const char *arch; /* "llama" or "qwen2" (or anything, for the unsupported-arch test) */
    int n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    int wtype;            /* TS_TYPE_F32 or TS_TYPE_F16 for the 2-D weights */
    bool tied;            /* no output.weight */
    bool rope_freqs;      /* write a llama3-style rope_freqs.weight */
    float linear_factor;  /* > 0: rope.scaling.type = linear with this factor */
    float freq_base, eps;
    uint64_t seed;
    const char *skip_key;        /* fault: leave this key out */
    const char *skip_tensor;     /* fault: leave this tensor out */
    const char *bad_shape_tensor;/* fault: halve this tensor's second dimension */
} tiny_spec;

static inline tiny_spec tiny_default(const char *arch) {
    return (tiny_spec){.arch = arch, .n_layer = 2, .n_embd = 64, .n_head = 4, .n_head_kv = 4, .n_ff = 96,
                       .n_vocab = 128, .n_ctx = 256, .wtype = TS_TYPE_F32, .freq_base = 10000.0f, .eps = 1e-5f,
                       .seed = 1};
}

static inline uint64_t tiny_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline float tiny_uniform(uint64_t *s) { return (float)((tiny_next(s) >> 11) * 0x1.0p-53) * 2.0f - 1.0f; }

enum tiny_kind { TINY_MATRIX, TINY_NORM, TINY_BIAS, TINY_ROPE_FREQS };

typedef struct tiny_tensor {
    char name[96];
    int64_t ne[2];
    int n_dims;
    enum tiny_kind kind;
} tiny_tensor;

static inline void tiny_add(tiny_tensor *list, int *n, const tiny_spec *sp, const char *name, int n_dims, int64_t ne0,
                            int64_t ne1, enum tiny_kind kind) {
    if (sp->skip_tensor && strcmp(sp->skip_tensor, name) == 0) return;
    tiny_tensor *t = &list[(*n)++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    if (sp->bad_shape_tensor && strcmp(sp->bad_shape_tensor, name) == 0) t->ne[1] = ne1 / 2;
    t->kind = kind;
}

static inline void tiny_key_u32(gguf_writer *w, const tiny_spec *sp, const char *suffix, uint32_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", sp->arch, suffix);
    if (!sp->skip_key || strcmp(sp->skip_key, key) != 0) gguf_writer_set_u32(w, key, v);
}
static inline void tiny_key_f32(gguf_writer *w, const tiny_spec *sp, const char *suffix, float v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", sp->arch, suffix);
    if (!sp->skip_key || strcmp(sp->skip_key, key) != 0) gguf_writer_set_f32(w, key, v);
}

/* Writes the model to path; returns 0 or prints the error and returns -1. */
static inline int tiny_write(const tiny_spec *sp, const char *path) {
    const int E = sp->n_embd, H = sp->n_head, Hkv = sp->n_head_kv, d = E / H, F = sp->n_ff, V = sp->n_vocab;
    const bool qwen2 = strcmp(sp->arch, "qwen2") == 0;
    gguf_writer *w = gguf_writer_new();
    if (!sp->skip_key || strcmp(sp->skip_key, "general.architecture") != 0)
        gguf_writer_set_str(w, "general.architecture", sp->arch);
    gguf_writer_set_str(w, "general.name", "tiny test model");
    tiny_key_u32(w, sp, "block_count", (uint32_t)sp->n_layer);
    tiny_key_u32(w, sp, "context_length", (uint32_t)sp->n_ctx);
    tiny_key_u32(w, sp, "embedding_length", (uint32_t)E);
    tiny_key_u32(w, sp, "feed_forward_length", (uint32_t)F);
    tiny_key_u32(w, sp, "attention.head_count", (uint32_t)H);
    tiny_key_u32(w, sp, "attention.head_count_kv", (uint32_t)Hkv);
    tiny_key_u32(w, sp, "rope.dimension_count", (uint32_t)d);
    tiny_key_f32(w, sp, "attention.layer_norm_rms_epsilon", sp->eps);
    tiny_key_f32(w, sp, "rope.freq_base", sp->freq_base);
    if (sp->linear_factor > 0) {
        char key[128];
        snprintf(key, sizeof key, "%s.rope.scaling.type", sp->arch);
        gguf_writer_set_str(w, key, "linear");
        tiny_key_f32(w, sp, "rope.scaling.factor", sp->linear_factor);
    }
    /* A minimal byte-level BPE vocabulary: printable single-character tokens, no merges. */
    char **toks = malloc((size_t)V * sizeof *toks);
    for (int i = 0; i < V; i++) {
        toks[i] = malloc(16);
        snprintf(toks[i], 16, "t%d", i);
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, (uint64_t)V);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", NULL, 0);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    for (int i = 0; i < V; i++) free(toks[i]);
    free(toks);

    const int max_tensors = 16 + sp->n_layer * 16;
    tiny_tensor *list = calloc((size_t)max_tensors, sizeof *list);
    int n = 0;
    char name[96];
    tiny_add(list, &n, sp, "token_embd.weight", 2, E, V, TINY_MATRIX);
    tiny_add(list, &n, sp, "output_norm.weight", 1, E, 1, TINY_NORM);
    if (!sp->tied) tiny_add(list, &n, sp, "output.weight", 2, E, V, TINY_MATRIX);
    if (sp->rope_freqs) tiny_add(list, &n, sp, "rope_freqs.weight", 1, d / 2, 1, TINY_ROPE_FREQS);
    for (int l = 0; l < sp->n_layer; l++) {
#define T(suffix, nd, a, b, kind) (snprintf(name, sizeof name, "blk.%d." suffix, l), tiny_add(list, &n, sp, name, nd, a, b, kind))
        T("attn_norm.weight", 1, E, 1, TINY_NORM);
        T("attn_q.weight", 2, E, H * d, TINY_MATRIX);
        T("attn_k.weight", 2, E, Hkv * d, TINY_MATRIX);
        T("attn_v.weight", 2, E, Hkv * d, TINY_MATRIX);
        if (qwen2) {
            T("attn_q.bias", 1, H * d, 1, TINY_BIAS);
            T("attn_k.bias", 1, Hkv * d, 1, TINY_BIAS);
            T("attn_v.bias", 1, Hkv * d, 1, TINY_BIAS);
        }
        T("attn_output.weight", 2, H * d, E, TINY_MATRIX);
        T("ffn_norm.weight", 1, E, 1, TINY_NORM);
        T("ffn_gate.weight", 2, E, F, TINY_MATRIX);
        T("ffn_up.weight", 2, E, F, TINY_MATRIX);
        T("ffn_down.weight", 2, F, E, TINY_MATRIX);
#undef T
    }
    for (int i = 0; i < n; i++) {
        const int type = list[i].kind == TINY_MATRIX ? sp->wtype : TS_TYPE_F32;
        gguf_writer_add_tensor(w, list[i].name, type, list[i].n_dims, list[i].ne);
    }
    ts_err err = {{0}};
    FILE *fp = fopen(path, "wb");
    int rc = fp ? gguf_writer_write_header(w, fp, &err) : -1;
    for (int i = 0; i < n && rc == 0; i++) {
        const tiny_tensor *t = &list[i];
        const int64_t count = t->ne[0] * t->ne[1];
        float *vals = malloc((size_t)count * sizeof(float));
        uint64_t s = sp->seed * 1000003u;
        for (const char *c = t->name; *c; c++) s = s * 131u + (unsigned char)*c;
        /* Scales chosen so activations stay O(1) through the layers and the logits spread over a few
         * units: weights ~ U(-1,1)*1.7/sqrt(n_in), norms around 1, biases small. */
        const float scale = t->kind == TINY_MATRIX ? 1.7f / sqrtf((float)t->ne[0]) : 0.0f;
        for (int64_t j = 0; j < count; j++) {
            const float u = tiny_uniform(&s);
            switch (t->kind) {
            case TINY_MATRIX: vals[j] = u * scale; break;
            case TINY_NORM: vals[j] = 1.0f + 0.25f * u; break;
            case TINY_BIAS: vals[j] = 0.5f * u; break;
            case TINY_ROPE_FREQS: vals[j] = 1.0f + 3.5f * (u + 1.0f); break; /* divisors in [1, 8] */
            }
        }
        const int type = t->kind == TINY_MATRIX ? sp->wtype : TS_TYPE_F32;
        if (type == TS_TYPE_F16) {
            uint16_t *h = malloc((size_t)count * sizeof *h);
            for (int64_t j = 0; j < count; j++) h[j] = ts_f32_to_f16(vals[j]);
            rc = gguf_writer_write_data(w, fp, h, (size_t)count * 2, &err);
            free(h);
        } else {
            rc = gguf_writer_write_data(w, fp, vals, (size_t)count * 4, &err);
        }
        free(vals);
    }
    if (rc == 0) rc = gguf_writer_finish(w, fp, &err);
    if (fp && fclose(fp) != 0) rc = -1;
    if (rc != 0) fprintf(stderr, "tiny_write %s: %s\n", path, err.msg);
    gguf_writer_free(w);
    free(list);
    return rc == 0 ? 0 : -1;
}

#endif
