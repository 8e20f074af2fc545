/* The loaded model: the mapped GGUF, hyperparameters, and views of every weight (pointers into the
 * mapping — weights are never copied, except 1-D vectors (norms, biases, rope factors), which are
 * converted to f32 at load because they are tiny and every op wants them in f32). */
#ifndef TS_MODEL_MODEL_H
#define TS_MODEL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "ops/ops.h"
#include "quant/repack.h"
#include "quant/types.h"
#include "tiefsee.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

struct ts_arch;

typedef struct ts_hparams {
    int n_layer, n_embd, n_head, n_head_kv;
    int head_dim;   /* key/query head width (attention.key_length, default n_embd / n_head) */
    int head_dim_v; /* value head width (attention.value_length, default head_dim) */
    int n_ff, n_vocab, n_ctx_train, n_rot;
    float norm_eps, rope_freq_base, rope_freq_scale;
    enum ts_rope_mode rope_mode;
    char rope_scaling[16]; /* "none", "linear", "llama3" (from rope_freqs.weight) */
} ts_hparams;

/* Tensors of one block of the dense decoder (llama / qwen2). */
typedef struct ts_dense_layer {
    const float *attn_norm, *ffn_norm;
    const float *bq, *bk, *bv; /* qwen2 only, else NULL */
    ts_matrix wq, wk, wv, wo, w_gate, w_up, w_down;
} ts_dense_layer;

struct ts_model {
    char path[1024];
    char name[256];
    gguf_file *file;
    const struct ts_arch *arch;
    ts_hparams hp;
    enum ts_isa isa;
    const ts_type_traits *types; /* ts_type_table(isa), chosen once at load */
    enum ts_walk walk;           /* one-token walk of the repacked products (ts_model_set_walk) */
    ts_vocab *vocab;

    ts_matrix tok_embd, output; /* output == tok_embd when tied */
    bool output_tied;
    const float *output_norm;
    const float *rope_freqs; /* n_rot/2 divisors, NULL if absent */
    ts_dense_layer *layers;  /* n_layer entries (dense archs) */
    void *arch_data;         /* archs with other layer shapes keep their tensors here */

    /* Owned f32 copies of 1-D tensors; freed with the model. */
    float **vectors;
    int n_vectors, cap_vectors;

    /* Weights repacked by ts_model_repack: anonymous mappings owned by the model. */
    struct ts_owned_map *repacked;
    int n_repacked, cap_repacked;

    /* Statistics for info/describe. */
    uint64_t n_params, weight_bytes;
    int64_t type_counts[TS_TYPE_COUNT];
};

typedef struct ts_owned_map {
    void *base;
    size_t size;
} ts_owned_map;

/* ---- Helpers for arch loaders (model/loader.c) ---------------------------------------------------- */

/* Reads `<arch>.<suffix>` as an int (required: error naming the key and file when absent). */
int ts_model_req_u32(ts_model *m, const char *suffix, int *out, ts_err *err);
/* Optional variant: returns 0 and leaves *out alone when absent. */
int ts_model_opt_u32(ts_model *m, const char *suffix, int *out, ts_err *err);
int ts_model_req_f32(ts_model *m, const char *suffix, float *out, ts_err *err);
int ts_model_opt_f32(ts_model *m, const char *suffix, float *out, ts_err *err);
/* Optional string into buf (NUL-terminated, truncated to cap-1). Returns 1 if found, 0 if absent, -1 on error. */
int ts_model_opt_str(ts_model *m, const char *suffix, char *buf, size_t cap, ts_err *err);

/* Finds tensor `name` with the given dims (n_dims entries; trailing dims 1) and a supported type.
 * Errors name the file and tensor: missing, wrong shape, or a type we cannot compute. With
 * optional set, a missing tensor returns 1 and *out = NULL. */
int ts_model_tensor(ts_model *m, const char *name, int n_dims, const int64_t *ne, bool optional,
                    const gguf_tensor **out, ts_err *err);
/* A 2-D weight [n_in, n_out] as a matrix view (the type must have a vec_dot). */
int ts_model_matrix(ts_model *m, const char *name, int64_t n_in, int64_t n_out, bool optional, ts_matrix *out,
                    ts_err *err);
/* A 1-D tensor of n values converted to an owned f32 array. Optional: *out = NULL, returns 1. */
int ts_model_vector(ts_model *m, const char *name, int64_t n, bool optional, const float **out, ts_err *err);

/* KV cache bytes per position of one sequence over all layers, for cache elements of ts_type kv_type. */
uint64_t ts_model_kv_bytes_per_token(const ts_model *m, int kv_type);

#endif
