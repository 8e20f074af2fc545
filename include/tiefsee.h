/* tiefsee — DeepSeek models on your own machine. The one public header.
 *
 * Life cycle: ts_model_load() maps a GGUF and validates it; ts_context_new() makes the per-run state
 * (thread pool, KV caches for up to n_seq_max sequences); ts_decode() runs a batch of tokens
 * (any mix of sequences and positions) and returns logits for the tokens that asked for them.
 * Every function that can fail returns nonzero and writes one line to `err` (may be NULL). */
#ifndef TIEFSEE_H
#define TIEFSEE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TS_ERR_LEN 512

typedef struct ts_model ts_model;
typedef struct ts_context ts_context;
typedef int32_t ts_token;

/* ---- Model ---------------------------------------------------------------------------------- */

int ts_model_load(const char *path, ts_model **out, char err[TS_ERR_LEN]);
/* ts_model_load with the kernels of a given instruction set instead of the best this CPU has:
 * "avx512", "avx2", "neon" or "scalar" (NULL or "auto": the best). For measuring what a CPU without
 * the wider one computes and how fast (`tiefsee bench --isa avx2` on an AVX-512 machine), and to
 * step around a kernel problem. Fails, naming the problem, if this build or CPU cannot run it. */
int ts_model_load_isa(const char *path, const char *isa, ts_model **out, char err[TS_ERR_LEN]);
void ts_model_free(ts_model *m);

/* Repacks the weight matrices whose type has an interleaved layout with faster kernels on this CPU
 * (Q4_0, Q5_0, Q8_0, Q4_K, Q6_K with AVX-512 VNNI; the CLI does it by default when they fit,
 * `--repack` / `--no-repack` choose): each is copied into memory the model owns, 16 rows interleaved, and its pages of the mapped file are released. Costs load time
 * (about one pass over those weights, on n_threads threads) and makes the weights anonymous memory
 * instead of page cache; makes one-token decoding faster. Results stay within float rounding of
 * the file layout's (same integer sums, another order of float additions). Call before creating
 * contexts; a second call does nothing. stats may be NULL. */
enum ts_repack_cache_state {
    TS_REPACK_CACHE_NONE = 0, /* no cache file involved (ts_model_repack, or nothing to repack) */
    TS_REPACK_CACHE_MAPPED,   /* an earlier run's cache file was checked and mapped: no repacking */
    TS_REPACK_CACHE_WRITTEN,  /* repacked into a new cache file (replacing a stale one), then mapped */
};
typedef struct ts_repack_stats {
    int matrices;   /* matrices (an expert stack counts once) now in a repacked layout */
    uint64_t bytes; /* bytes of repacked weights the model now holds */
    double seconds; /* wall time the repacking took (with a cache: checking or writing it too) */
    int cache;      /* enum ts_repack_cache_state */
    char cache_path[1024]; /* the cache file, when cache != TS_REPACK_CACHE_NONE */
    char cache_note[256];  /* why an existing cache file was replaced ("" if none was) */
} ts_repack_stats;
int ts_model_repack(ts_model *m, int n_threads, ts_repack_stats *stats, char err[TS_ERR_LEN]);
/* ts_model_repack with the repacked weights kept in a file under cache_dir (created if missing; with
 * write false only an existing, matching cache file is mapped, nothing is written or created),
 * which the model maps read-only instead of holding a copy in its own memory: the first load
 * repacks matrix by matrix into a new file (so it needs the disk space, not the memory; written
 * under a temporary name, synced, then renamed), later loads of the same model file map it in
 * a fraction of a second. A cache file is used only when its header matches the model file
 * (device, inode, size, modification time of each part), the matrices and this CPU's layouts,
 * and the first and last row group of every matrix, repacked afresh, equal the cached bytes;
 * otherwise it is replaced. One file per model path and kernel set (`NAME.ISA.HASH.tsrp`).
 * Returns 0 when the model now uses the cache file; 1 when it could not (err says why: too little
 * room on the disk, a directory it cannot write, no cache file or a stale one when not writing,
 * ...) and the model is unchanged. */
int ts_model_repack_cached(ts_model *m, int n_threads, const char *cache_dir, bool write, ts_repack_stats *stats,
                           char err[TS_ERR_LEN]);
/* Bytes of weights ts_model_repack would move into memory the model owns on this CPU (0: none has
 * a repacked layout here, or the model is repacked already). Front ends weigh it against the
 * machine's memory before repacking by default. */
uint64_t ts_model_repack_bytes(const ts_model *m);
/* How the repacked K-quant products (Q4_K, Q6_K with the AVX2 or AVX-512 kernels) walk a thread's
 * share of a matrix when they multiply one token: "pairs" (two memory streams, from the two halves
 * of the share), "one-group" (one stream, group after group) or "auto" (the walk measured to read
 * faster on this CPU; the default). Results are bit-identical; only the speed differs, so
 * `tiefsee bench --walk pairs,one-group` can alternate them inside one process. Applies to the
 * matrices repacked so far and to those repacked later; other matrices have one walk. Call
 * between decode calls, never while a context of the model is decoding. Returns 0, or -1 with err
 * naming the problem (an unknown walk). */
int ts_model_set_walk(ts_model *m, const char *walk, char err[TS_ERR_LEN]);

typedef struct ts_model_info {
    const char *arch;      /* "llama", "qwen2", ... */
    const char *name;      /* general.name or the file name */
    int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff;
    int n_vocab;
    int n_ctx_train;
    float rope_freq_base, rope_freq_scale, norm_eps;
    uint64_t n_params;     /* elements of all weight tensors */
    uint64_t weight_bytes; /* bytes of all weight tensors */
    const char *weight_type; /* most common weight type ("q4_K", "mixed" ...) */
    ts_token bos, eos;       /* -1 if none */
    bool add_bos;
    const char *kernels; /* instruction set of the kernels in use: "avx512", "avx2", "neon", "scalar" */
} ts_model_info;

void ts_model_get_info(const ts_model *m, ts_model_info *info);
/* Human-readable description of hyperparameters and tensor types, for `tiefsee info`. */
void ts_model_describe(const ts_model *m, void (*write)(void *user, const char *line), void *user);
/* Bytes of weights one token's forward pass streams from memory (the numerator of the decode
 * roofline, `tiefsee bench`): every tensor of the layers in use in full, except MoE routed-expert
 * tensors (`*_exps`), which count n_expert_used / n_expert of their bytes, and the token embedding,
 * which counts one row (plus the whole matrix when the output projection is tied to it). 1-D
 * tensors count as the f32 copies the engine reads; tensors of blocks past n_layer (MTP) are not
 * counted. The KV cache is not included (see ts_context_kv_bytes_per_token). */
uint64_t ts_model_active_bytes_per_token(const ts_model *m);
/* Floating-point operations (a multiply-add counts 2) one generated token's attention spends over
 * `depth` cached positions, all layers run per token, for `tiefsee bench`'s attention-vs-peak
 * figure. Per layer and query head, per cached position: dense attention (llama, qwen2, deepseek)
 * 2*head_dim for the Q.K score + 2*head_dim_v for the weighted V sum; deepseek2 (MLA, absorbed
 * decode over the latent cache) 2*(kv_lora_rank + qk_rope_head_dim) for the score +
 * 2*kv_lora_rank for the weighted latent sum; plus TS_ATTN_SOFTMAX_FLOPS per score for the softmax
 * (scale, max, subtract, exp, sum: exp counted as one). Projections (Q/K/V/O, MLA's absorption
 * matrices) are weight work, independent of depth, and not counted. Linear in depth; 0 for
 * depth <= 0; saturates at UINT64_MAX. */
#define TS_ATTN_SOFTMAX_FLOPS 5
uint64_t ts_model_attention_flops_per_token(const ts_model *m, int depth);

/* ---- Context -------------------------------------------------------------------------------- */

/* KV cache element types. BF16 keeps f32's range with 8 mantissa bits; Q8_0 stores blocks of 32
 * values as 32 int8 plus one f16 scale (34 bytes per 32 values, ggml's layout), so every cached row
 * width must be a multiple of 32 (context creation refuses models where it is not). */
enum ts_cache_type { TS_CACHE_F16 = 0, TS_CACHE_F32 = 1, TS_CACHE_BF16 = 2, TS_CACHE_Q8_0 = 3 };
/* "f16", "f32", "bf16", "q8_0"; NULL for a value outside the enum. */
const char *ts_cache_type_name(enum ts_cache_type t);
/* Parses one of those names (case-sensitive); returns 0, or -1 if unknown. */
int ts_cache_type_from_name(const char *name, enum ts_cache_type *out);

typedef struct ts_context_params {
    int n_ctx;         /* positions per sequence; 0 = the model's, capped to what fits in memory */
    int n_seq_max;     /* sequences that can be cached at once (default 1) */
    int n_batch;       /* most tokens per ts_decode call (default 512) */
    int n_threads;     /* 0 = number of cores */
    enum ts_cache_type cache_type;
} ts_context_params;

ts_context_params ts_context_default_params(void);
int ts_context_new(ts_model *m, const ts_context_params *p, ts_context **out, char err[TS_ERR_LEN]);
void ts_context_free(ts_context *c);
int ts_context_n_ctx(const ts_context *c);
/* Bytes the KV cache takes for one token of one sequence (all layers). */
size_t ts_context_kv_bytes_per_token(const ts_context *c);

/* Where a context's decoding time goes, step by step of the forward pass: for finding what keeps
 * generation from the memory-bandwidth limit (`tiefsee bench --profile`). Off by default; while on,
 * each step costs two clock reads. Steps that read weights count the bytes of the weights they
 * touch (file layout, as the roofline counts them; a product's weights once per call), so
 * bytes / seconds is the rate that step streamed them at. */
enum ts_step {
    TS_STEP_EMBED,     /* token embedding rows and RoPE angles */
    TS_STEP_NORM,      /* the RMSNorms before each sub-block and the residual adds */
    TS_STEP_ATTN_IN,   /* the attention's input products (q/k/v; MLA's q_a, kv_a, q_b), biases, RoPE, cache writes */
    TS_STEP_ATTENTION, /* attention over the cache (MLA: with its absorbed per-head products) */
    TS_STEP_ATTN_OUT,  /* the attention output product W_o */
    TS_STEP_FFN_IN,    /* dense FFN gate and up products */
    TS_STEP_FFN_ACT,   /* SwiGLU */
    TS_STEP_FFN_OUT,   /* dense FFN down product */
    TS_STEP_MOE,       /* a MoE layer: router, the chosen and the shared experts */
    TS_STEP_OUTPUT,    /* final norm and the output head */
    TS_STEP_COUNT
};
typedef struct ts_step_stats {
    uint64_t calls;
    double seconds;
    uint64_t weight_bytes;
} ts_step_stats;
typedef struct ts_profile {
    ts_step_stats step[TS_STEP_COUNT];
    uint64_t decodes, tokens; /* ts_decode calls and the tokens they carried */
    double seconds;           /* inside ts_decode; what the steps leave is the rest (batch checks, glue) */
} ts_profile;
/* "embed", "norm", "attn_in", "attention", "attn_out", "ffn_in", "ffn_act", "ffn_out", "moe",
 * "output"; NULL outside the enum. */
const char *ts_step_name(enum ts_step s);
/* Turns profiling on (counters cleared) or off. Returns 0, or -1 when out of memory. */
int ts_context_set_profiling(ts_context *c, bool on);
/* The counters since profiling was turned on; all zero when it is off. */
ts_profile ts_context_profile(const ts_context *c);

/* One batch: token i goes to sequence seq[i] at position pos[i]. Positions of a sequence must be
 * consecutive and continue what its cache holds. If want_logits[i], that token's logits are written
 * to the next n_vocab floats of `logits` (rows in batch order). want_logits NULL = last token only. */
typedef struct ts_batch {
    int n_tokens;
    const ts_token *tokens;
    const int32_t *pos;
    const int32_t *seq;
    const bool *want_logits;
} ts_batch;

int ts_decode(ts_context *c, const ts_batch *b, float *logits, char err[TS_ERR_LEN]);
/* Forgets positions >= from_pos of a sequence (0 = the whole sequence). */
void ts_seq_truncate(ts_context *c, int seq, int from_pos);
int ts_seq_len(const ts_context *c, int seq);

/* ---- Tokens --------------------------------------------------------------------------------- */

/* Encodes UTF-8 text. Returns the number of tokens, or -(needed) if out_cap is too small, or
 * INT32_MIN on error. */
int ts_tokenize(const ts_model *m, const char *text, size_t len, bool add_bos, ts_token *out, int out_cap);
/* Bytes of a token's text (raw bytes; may be part of a UTF-8 character). Returns length or -1. */
int ts_token_bytes(const ts_model *m, ts_token t, char *buf, int cap);
bool ts_token_is_eog(const ts_model *m, ts_token t);

/* ---- Sampling ------------------------------------------------------------------------------- */

typedef struct ts_sampler_params {
    float temp;           /* 0 = greedy; default 0.8 */
    int top_k;            /* 0 = off; default 40 */
    float top_p;          /* 1 = off; default 0.95 */
    float min_p;          /* 0 = off; default 0.05 */
    float repeat_penalty; /* 1 = off; default 1.0 */
    int repeat_last_n;    /* default 64 */
    uint64_t seed;
} ts_sampler_params;

typedef struct ts_sampler ts_sampler;
ts_sampler_params ts_sampler_default_params(void);
ts_sampler *ts_sampler_new(const ts_sampler_params *p, int n_vocab);
void ts_sampler_free(ts_sampler *s);
ts_token ts_sampler_sample(ts_sampler *s, const float *logits);
void ts_sampler_accept(ts_sampler *s, ts_token t);

/* ---- Synthetic models ----------------------------------------------------------------------- */

/* Writes a random-weight GGUF of a named preset (see `tiefsee synth --list`). type: weight type
 * name ("f32", "q4_K", "q4_K_M" ...). Returns 0 or -1 with err. */
typedef struct ts_synth_params {
    const char *preset;       /* or NULL with hf_config set */
    const char *hf_config;    /* path to a Hugging Face config.json */
    const char *type;         /* weight type or mix; default "f16" */
    uint64_t seed;
    const char *out_path;
    bool overwrite;           /* refuse to replace an existing file unless set */
    int n_threads;
} ts_synth_params;

int ts_synth(const ts_synth_params *p, char err[TS_ERR_LEN]);
/* Preset names, NULL-terminated; and a one-line description of each. */
const char *const *ts_synth_presets(void);
const char *ts_synth_preset_desc(const char *name);

#ifdef __cplusplus
}
#endif
#endif
