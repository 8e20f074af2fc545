/* ts_synth: writes a random-weight GGUF for a preset or a Hugging Face config.
 *
 * Weights are generated in fixed chunks of rows; each chunk has its own PRNG stream seeded from
 * (seed, tensor index, chunk index), so the bytes depend only on the seed and never on the number
 * of threads. Worker threads generate and quantize chunks into a ring of slots; the calling thread
 * writes the slots strictly in file order. The file is written under a temporary name in the same
 * directory and renamed at the end, so an interrupted run never leaves a half-written model under
 * the requested name. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "quant/types.h"
#include "synth/synth_model.h"
#include "synth/synth_plan.h"
#include "synth/vocab_gen.h"
#include "tiefsee.h"
#include "util/fp16.h"

/* Values generated per chunk (rows are never split). 1M floats = 4 MiB of scratch per thread. */
#define CHUNK_ELEMS ((int64_t)1 << 20)

/* Block pools. The reference quantizers (bit-exact with ggml's) take ~100-250 ns per value for
 * the K-quants, which caps a q4_K_M 7B model at minutes per core. Big quantized tensors (more than
 * POOL_MIN_ELEMS values) are therefore made of blocks drawn at random from a pool of POOL_BLOCKS
 * blocks quantized from the tensor's own distribution (same type, same scale): every block is a
 * genuine quantization of N(0, scale) values, rows are distinct random sequences of them, and the
 * file streams at memcpy speed. Smaller tensors (all tiny presets and the demo) are generated and
 * quantized value by value, so a quantized tiny or demo model equals its f32 twin up to rounding
 * (the demo's largest tensor, 4096 x 512, is exactly POOL_MIN_ELEMS). */
#define POOL_BLOCKS 4096
#define POOL_MIN_ELEMS ((int64_t)1 << 21)

/* ---- PRNG: splitmix64 to seed, xoshiro256** to draw ---------------------------------------- */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct xoshiro {
    uint64_t s[4];
} xoshiro;

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t xoshiro_next(xoshiro *r) {
    uint64_t *s = r->s;
    const uint64_t result = rotl64(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

static void xoshiro_seed(xoshiro *r, uint64_t seed, uint64_t tensor, uint64_t chunk) {
    uint64_t st = seed ^ (tensor * 0xD1B54A32D192ED03ull) ^ (chunk * 0x8CB92BA72F3D8DD7ull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&st);
}

/* Approximately standard normal: Irwin-Hall sum of four 16-bit uniforms, rescaled to unit
 * variance. Bounded (|x| < 3.47), which is harmless for weights and avoids the cost of
 * Box-Muller; one 64-bit draw per value keeps generation far faster than quantization. */
static inline float gauss_from_bits(uint64_t u) {
    const uint32_t a = (uint32_t)(u & 0xFFFF), b = (uint32_t)((u >> 16) & 0xFFFF);
    const uint32_t c = (uint32_t)((u >> 32) & 0xFFFF), d = (uint32_t)(u >> 48);
    /* sum of 4 U(0,1) has mean 2, variance 1/3 */
    const float sum = (float)(a + b + c + d + 2) * (1.0f / 65536.0f);
    return (sum - 2.0f) * 1.7320508f;
}

/* ---- Chunks ---------------------------------------------------------------------------------- */

typedef struct synth_chunk {
    int tensor;
    int64_t row0, n_rows; /* rows of ne[0] values */
    int64_t index;        /* chunk index within its tensor (PRNG stream) */
    size_t nbytes;
} synth_chunk;

typedef struct synth_job {
    const synth_model *model;
    const synth_tensor *tensors;
    const synth_chunk *chunks;
    int64_t n_chunks;
    uint64_t seed;
    size_t slot_bytes;
    int n_slots;
    unsigned char **slots;
    int64_t *slot_chunk; /* which chunk a slot holds when ready; -1 = not ready */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t next_chunk; /* next chunk to claim */
    int64_t written;    /* chunks written to the file */
    bool abort;
    size_t float_cap; /* floats per worker scratch */
    const int *tensor_pool;          /* per tensor: index into pools, or -1 */
    const unsigned char *const *pools; /* POOL_BLOCKS quantized blocks each */
} synth_job;

static void fill_chunk(const synth_job *job, const synth_chunk *c, float *x) {
    const synth_tensor *t = &job->tensors[c->tensor];
    const int64_t n = c->n_rows * t->ne[0];
    if (t->init == SYNTH_INIT_ROPE_FREQS) {
        for (int64_t i = 0; i < n; i++) x[i] = synth_llama3_rope_divisor(job->model, (int)i, (int)t->ne[0]);
        return;
    }
    xoshiro r;
    xoshiro_seed(&r, job->seed, (uint64_t)c->tensor, (uint64_t)c->index);
    const float scale = t->scale, offset = t->init == SYNTH_INIT_NORM ? 1.0f : 0.0f;
    for (int64_t i = 0; i < n; i++) x[i] = offset + scale * gauss_from_bits(xoshiro_next(&r));
}

static void encode_chunk(const synth_tensor *t, const float *x, int64_t n, void *out) {
    switch (t->type) {
    case TS_TYPE_F32: memcpy(out, x, (size_t)n * sizeof(float)); break;
    case TS_TYPE_F16: {
        ts_f16 *y = out;
        for (int64_t i = 0; i < n; i++) y[i] = ts_f32_to_f16(x[i]);
        break;
    }
    case TS_TYPE_BF16: {
        ts_bf16 *y = out;
        for (int64_t i = 0; i < n; i++) y[i] = ts_f32_to_bf16(x[i]);
        break;
    }
    default: ts_type_table(TS_ISA_SCALAR)[t->type].quantize(x, out, n); break;
    }
}

static void fill_chunk_from_pool(const synth_job *job, const synth_chunk *c, const unsigned char *pool, void *out) {
    const synth_tensor *t = &job->tensors[c->tensor];
    const ts_type_traits *tr = &ts_type_table(TS_ISA_SCALAR)[t->type];
    const int64_t n_blocks = c->n_rows * t->ne[0] / tr->block_size;
    xoshiro r;
    xoshiro_seed(&r, job->seed, (uint64_t)c->tensor, (uint64_t)c->index);
    unsigned char *dst = out;
    for (int64_t b = 0; b < n_blocks; b++) {
        const uint64_t pick = ((xoshiro_next(&r) >> 32) * POOL_BLOCKS) >> 32; /* uniform in [0, POOL_BLOCKS) */
        memcpy(dst + (size_t)b * tr->type_size, pool + (size_t)pick * tr->type_size, tr->type_size);
    }
}

static bool tensor_uses_pool(const synth_tensor *t) {
    const ts_type_traits *tr = &ts_type_table(TS_ISA_SCALAR)[t->type];
    return tr->is_quantized && t->init == SYNTH_INIT_GAUSS && t->ne[0] * t->ne[1] * t->ne[2] > POOL_MIN_ELEMS;
}

/* One pool per distinct (type, scale) among the pooled tensors; pools[k] quantized from a stream
 * keyed by the seed and the pair, so results do not depend on tensor order or thread count. */
static int build_pools(const synth_tensor *t, int n_tensors, uint64_t seed, int *tensor_pool, unsigned char ***pools_out,
                       int *n_pools_out, ts_err *err) {
    unsigned char **pools = NULL;
    int n_pools = 0;
    int *pool_tensor = malloc((size_t)n_tensors * sizeof *pool_tensor); /* a tensor representing each pool */
    float *x = malloc((size_t)POOL_BLOCKS * 256 * sizeof *x);
    if (!pool_tensor || !x) goto oom;
    for (int i = 0; i < n_tensors; i++) {
        tensor_pool[i] = -1;
        if (!tensor_uses_pool(&t[i])) continue;
        for (int k = 0; k < n_pools; k++) {
            const synth_tensor *o = &t[pool_tensor[k]];
            if (o->type == t[i].type && o->scale == t[i].scale) tensor_pool[i] = k;
        }
        if (tensor_pool[i] >= 0) continue;
        const ts_type_traits *tr = &ts_type_table(TS_ISA_SCALAR)[t[i].type];
        unsigned char **np = realloc(pools, (size_t)(n_pools + 1) * sizeof *np);
        if (!np) goto oom;
        pools = np;
        pools[n_pools] = malloc((size_t)POOL_BLOCKS * tr->type_size);
        if (!pools[n_pools]) goto oom;
        const int64_t n = (int64_t)POOL_BLOCKS * tr->block_size;
        xoshiro r;
        xoshiro_seed(&r, seed ^ 0x706F6F6Cull /* "pool" */, (uint64_t)t[i].type, (uint64_t)ts_f32_bits(t[i].scale));
        for (int64_t j = 0; j < n; j++) x[j] = t[i].scale * gauss_from_bits(xoshiro_next(&r));
        tr->quantize(x, pools[n_pools], n);
        pool_tensor[n_pools] = i;
        tensor_pool[i] = n_pools++;
    }
    free(pool_tensor);
    free(x);
    *pools_out = pools;
    *n_pools_out = n_pools;
    return 0;
oom:
    for (int k = 0; k < n_pools; k++) free(pools[k]);
    free(pools);
    free(pool_tensor);
    free(x);
    return ts_fail(err, "out of memory building block pools");
}

static void *worker_main(void *arg) {
    synth_job *job = arg;
    float *x = malloc(job->float_cap * sizeof(float));
    pthread_mutex_lock(&job->mu);
    if (!x) job->abort = true;
    for (;;) {
        while (!job->abort && job->next_chunk < job->n_chunks && job->next_chunk >= job->written + job->n_slots)
            pthread_cond_wait(&job->cv, &job->mu);
        if (job->abort || job->next_chunk >= job->n_chunks) break;
        const int64_t ci = job->next_chunk++;
        pthread_mutex_unlock(&job->mu);

        const synth_chunk *c = &job->chunks[ci];
        const synth_tensor *t = &job->tensors[c->tensor];
        if (job->tensor_pool[c->tensor] >= 0) {
            fill_chunk_from_pool(job, c, job->pools[job->tensor_pool[c->tensor]], job->slots[ci % job->n_slots]);
        } else {
            fill_chunk(job, c, x);
            encode_chunk(t, x, c->n_rows * t->ne[0], job->slots[ci % job->n_slots]);
        }

        pthread_mutex_lock(&job->mu);
        job->slot_chunk[ci % job->n_slots] = ci;
        pthread_cond_broadcast(&job->cv);
    }
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
    free(x);
    return NULL;
}

/* Splits every tensor into chunks of whole rows. */
static int make_chunks(const synth_tensor *t, int n_tensors, synth_chunk **out, int64_t *n_out, size_t *max_bytes,
                       int64_t *max_floats, ts_err *err) {
    int64_t n = 0;
    for (int i = 0; i < n_tensors; i++) {
        const int64_t rows = t[i].ne[1] * t[i].ne[2];
        const int64_t per = t[i].ne[0] >= CHUNK_ELEMS ? 1 : CHUNK_ELEMS / t[i].ne[0];
        n += (rows + per - 1) / per;
    }
    synth_chunk *c = malloc((size_t)n * sizeof *c);
    if (!c) return ts_fail(err, "out of memory");
    int64_t k = 0;
    *max_bytes = 0;
    *max_floats = 0;
    for (int i = 0; i < n_tensors; i++) {
        const int64_t rows = t[i].ne[1] * t[i].ne[2];
        const int64_t per = t[i].ne[0] >= CHUNK_ELEMS ? 1 : CHUNK_ELEMS / t[i].ne[0];
        const size_t row_bytes = ts_row_size(t[i].type, t[i].ne[0]);
        for (int64_t r = 0, idx = 0; r < rows; r += per, idx++) {
            const int64_t nr = rows - r < per ? rows - r : per;
            c[k] = (synth_chunk){.tensor = i, .row0 = r, .n_rows = nr, .index = idx, .nbytes = row_bytes * (size_t)nr};
            if (c[k].nbytes > *max_bytes) *max_bytes = c[k].nbytes;
            if (nr * t[i].ne[0] > *max_floats) *max_floats = nr * t[i].ne[0];
            k++;
        }
    }
    *out = c;
    *n_out = n;
    return 0;
}

/* Runs the workers and writes every chunk in order. */
static int write_weights(const synth_model *m, const synth_tensor *tensors, int n_tensors, uint64_t seed, int n_threads,
                         gguf_writer *w, FILE *fp, ts_err *err) {
    synth_chunk *chunks = NULL;
    int64_t n_chunks = 0, max_floats = 0;
    size_t max_bytes = 0;
    if (make_chunks(tensors, n_tensors, &chunks, &n_chunks, &max_bytes, &max_floats, err) < 0) return -1;

    int *tensor_pool = malloc((size_t)n_tensors * sizeof *tensor_pool);
    unsigned char **pools = NULL;
    int n_pools = 0;
    if (!tensor_pool || build_pools(tensors, n_tensors, seed, tensor_pool, &pools, &n_pools, err) < 0) {
        if (!tensor_pool) ts_fail(err, "out of memory");
        free(tensor_pool);
        free(chunks);
        return -1;
    }
    synth_job job = {.model = m, .tensors = tensors, .chunks = chunks, .n_chunks = n_chunks, .seed = seed,
                     .slot_bytes = max_bytes, .float_cap = (size_t)max_floats, .tensor_pool = tensor_pool,
                     .pools = (const unsigned char *const *)pools};
    job.n_slots = 2 * n_threads + 2;
    job.slots = calloc((size_t)job.n_slots, sizeof *job.slots);
    job.slot_chunk = malloc((size_t)job.n_slots * sizeof *job.slot_chunk);
    int rc = 0;
    if (!job.slots || !job.slot_chunk) rc = ts_fail(err, "out of memory");
    for (int i = 0; rc == 0 && i < job.n_slots; i++) {
        job.slots[i] = malloc(max_bytes ? max_bytes : 1);
        job.slot_chunk[i] = -1;
        if (!job.slots[i]) rc = ts_fail(err, "out of memory (%zu-byte write buffers)", max_bytes);
    }
    pthread_t *threads = calloc((size_t)n_threads, sizeof *threads);
    int n_started = 0;
    if (rc == 0 && !threads) rc = ts_fail(err, "out of memory");
    if (rc == 0) {
        pthread_mutex_init(&job.mu, NULL);
        pthread_cond_init(&job.cv, NULL);
        for (; n_started < n_threads; n_started++)
            if (pthread_create(&threads[n_started], NULL, worker_main, &job) != 0) break;
        if (n_started == 0) rc = ts_fail(err, "cannot start worker threads");

        for (int64_t ci = 0; rc == 0 && ci < n_chunks; ci++) {
            const int slot = (int)(ci % job.n_slots);
            pthread_mutex_lock(&job.mu);
            while (job.slot_chunk[slot] != ci && !job.abort) pthread_cond_wait(&job.cv, &job.mu);
            const bool aborted = job.abort;
            pthread_mutex_unlock(&job.mu);
            if (aborted) {
                rc = ts_fail(err, "out of memory in a worker thread");
                break;
            }
            if (gguf_writer_write_data(w, fp, job.slots[slot], chunks[ci].nbytes, err) < 0) rc = -1;
            pthread_mutex_lock(&job.mu);
            job.slot_chunk[slot] = -1;
            job.written++;
            pthread_cond_broadcast(&job.cv);
            pthread_mutex_unlock(&job.mu);
        }
        pthread_mutex_lock(&job.mu);
        job.abort = true; /* stops workers early on error; a no-op once all chunks are claimed */
        pthread_cond_broadcast(&job.cv);
        pthread_mutex_unlock(&job.mu);
        for (int i = 0; i < n_started; i++) pthread_join(threads[i], NULL);
        pthread_cond_destroy(&job.cv);
        pthread_mutex_destroy(&job.mu);
    }
    free(threads);
    if (job.slots)
        for (int i = 0; i < job.n_slots; i++) free(job.slots[i]);
    free(job.slots);
    free(job.slot_chunk);
    for (int k = 0; k < n_pools; k++) free(pools[k]);
    free(pools);
    free(tensor_pool);
    free(chunks);
    return rc;
}

/* ---- Metadata -------------------------------------------------------------------------------- */

static const char *arch_name(enum synth_arch a) {
    switch (a) {
    case SYNTH_ARCH_QWEN2: return "qwen2";
    case SYNTH_ARCH_DEEPSEEK: return "deepseek";
    case SYNTH_ARCH_DEEPSEEK2: return "deepseek2";
    default: return "llama";
    }
}

static void set_u32(gguf_writer *w, const char *arch, const char *key, uint32_t v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    gguf_writer_set_u32(w, k, v);
}

static void set_f32(gguf_writer *w, const char *arch, const char *key, float v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    gguf_writer_set_f32(w, k, v);
}

static void set_str(gguf_writer *w, const char *arch, const char *key, const char *v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    gguf_writer_set_str(w, k, v);
}

static void set_bool(gguf_writer *w, const char *arch, const char *key, bool v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    gguf_writer_set_bool(w, k, v);
}

static void write_metadata(gguf_writer *w, const synth_model *m, const synth_type_request *req, const synth_vocab *v) {
    const char *a = arch_name(m->arch);
    gguf_writer_set_str(w, "general.architecture", a);
    gguf_writer_set_str(w, "general.name", m->name);
    gguf_writer_set_u32(w, "general.file_type", req->file_type);
    gguf_writer_set_u32(w, "general.quantization_version", 2);

    set_u32(w, a, "context_length", (uint32_t)m->n_ctx_train);
    set_u32(w, a, "embedding_length", (uint32_t)m->n_embd);
    set_u32(w, a, "block_count", (uint32_t)m->n_layer);
    set_u32(w, a, "feed_forward_length", (uint32_t)m->n_ff);
    set_u32(w, a, "attention.head_count", (uint32_t)m->n_head);
    set_f32(w, a, "attention.layer_norm_rms_epsilon", m->norm_eps);
    set_f32(w, a, "rope.freq_base", m->rope_theta);
    set_u32(w, a, "vocab_size", (uint32_t)m->n_vocab);

    if (m->arch == SYNTH_ARCH_DEEPSEEK2) {
        if (m->kv_b_combined) {
            /* legacy dialect (deepseek2.md §8.1): per-head widths, no *_mla keys, as many KV heads
             * as heads (llama.cpp then loads attn_kv_b and runs decompressed MHA). */
            set_u32(w, a, "attention.head_count_kv", (uint32_t)m->n_head);
            set_u32(w, a, "attention.key_length", (uint32_t)(m->qk_nope_dim + m->qk_rope_dim));
            set_u32(w, a, "attention.value_length", (uint32_t)m->v_head_dim);
        } else {
            /* mainline llama.cpp's MLA dialect (deepseek2.md §8.1): one KV head of the latent. */
            set_u32(w, a, "attention.head_count_kv", 1);
            set_u32(w, a, "attention.key_length", (uint32_t)(m->kv_lora_rank + m->qk_rope_dim));
            set_u32(w, a, "attention.value_length", (uint32_t)m->kv_lora_rank);
            set_u32(w, a, "attention.key_length_mla", (uint32_t)(m->qk_nope_dim + m->qk_rope_dim));
            set_u32(w, a, "attention.value_length_mla", (uint32_t)m->v_head_dim);
        }
        /* Real V2-Lite files omit q_lora_rank; llama.cpp only requires it when the layer count
         * does not mark the model as "lite" (26/27 layers), so write it in every other case. */
        if (m->q_lora_rank > 0 || (m->n_layer != 26 && m->n_layer != 27))
            set_u32(w, a, "attention.q_lora_rank", (uint32_t)m->q_lora_rank);
        set_u32(w, a, "attention.kv_lora_rank", (uint32_t)m->kv_lora_rank);
        set_u32(w, a, "rope.dimension_count", (uint32_t)m->qk_rope_dim);
    } else {
        set_u32(w, a, "attention.head_count_kv", (uint32_t)m->n_head_kv);
        set_u32(w, a, "rope.dimension_count", (uint32_t)m->head_dim);
        if (m->head_dim * m->n_head != m->n_embd) {
            set_u32(w, a, "attention.key_length", (uint32_t)m->head_dim);
            set_u32(w, a, "attention.value_length", (uint32_t)m->head_dim);
        }
    }

    switch (m->rope_scaling) {
    case SYNTH_ROPE_LINEAR:
        set_str(w, a, "rope.scaling.type", "linear");
        set_f32(w, a, "rope.scaling.factor", m->rope_factor);
        break;
    case SYNTH_ROPE_YARN:
        set_str(w, a, "rope.scaling.type", "yarn");
        set_f32(w, a, "rope.scaling.factor", m->rope_factor);
        set_u32(w, a, "rope.scaling.original_context_length", (uint32_t)m->rope_orig_ctx);
        set_f32(w, a, "rope.scaling.yarn_log_multiplier", 0.1f * m->yarn_mscale_all_dim);
        break;
    case SYNTH_ROPE_LLAMA3: break; /* carried by rope_freqs.weight, no keys */
    default:
        if (m->arch == SYNTH_ARCH_DEEPSEEK) set_str(w, a, "rope.scaling.type", "none");
        break;
    }

    if (m->arch == SYNTH_ARCH_DEEPSEEK || m->arch == SYNTH_ARCH_DEEPSEEK2) {
        set_u32(w, a, "leading_dense_block_count", (uint32_t)m->n_leading_dense);
        set_u32(w, a, "expert_feed_forward_length", (uint32_t)m->n_ff_exp);
        set_u32(w, a, "expert_count", (uint32_t)m->n_expert);
        set_u32(w, a, "expert_used_count", (uint32_t)m->n_expert_used);
        set_u32(w, a, "expert_shared_count", (uint32_t)m->n_expert_shared);
        set_f32(w, a, "expert_weights_scale", m->expert_weights_scale);
    }
    if (m->arch == SYNTH_ARCH_DEEPSEEK2) {
        set_bool(w, a, "expert_weights_norm", m->expert_weights_norm);
        set_u32(w, a, "expert_gating_func", (uint32_t)m->expert_gating_func);
        if (m->n_expert_groups > 0) {
            set_u32(w, a, "expert_group_count", (uint32_t)m->n_expert_groups);
            set_u32(w, a, "expert_group_used_count", (uint32_t)m->n_expert_groups_used);
        }
    }

    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, (uint64_t)v->n_tokens);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, v->types, (uint64_t)v->n_tokens);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, (uint64_t)v->n_merges);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (v->pad >= 0) gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
}

/* ---- Entry points ---------------------------------------------------------------------------- */

static int n_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

static void copy_err(char out[TS_ERR_LEN], const ts_err *e) {
    if (out) snprintf(out, TS_ERR_LEN, "%s", e->msg);
}

static int synth_run(const ts_synth_params *p, ts_err *err) {
    if (!p) return ts_fail(err, "no parameters");
    if (!p->out_path || !*p->out_path) return ts_fail(err, "no output path given");
    if (!p->preset == !p->hf_config) return ts_fail(err, "give exactly one of a preset name or a Hugging Face config.json");

    synth_model m;
    if (p->preset ? synth_preset_model(p->preset, &m, err) : synth_model_from_hf_config(p->hf_config, &m, err)) return -1;
    if (synth_model_validate(&m, err)) return -1;
    synth_type_request req;
    if (synth_parse_type(p->type, &req, err)) return -1;

    struct stat st;
    if (!p->overwrite && stat(p->out_path, &st) == 0)
        return ts_fail(err, "%s already exists (pass overwrite to replace it)", p->out_path);

    synth_tensor *tensors = NULL;
    int n_tensors = 0;
    if (synth_plan_tensors(&m, &req, &tensors, &n_tensors, err)) return -1;
    synth_vocab vocab;
    if (synth_vocab_build(&m, &vocab, err)) {
        free(tensors);
        return -1;
    }

    int rc = -1;
    FILE *fp = NULL;
    char *tmp_path = NULL;
    gguf_writer *w = gguf_writer_new();
    if (!w) {
        ts_fail(err, "out of memory");
        goto done;
    }
    write_metadata(w, &m, &req, &vocab);
    for (int i = 0; i < n_tensors; i++)
        gguf_writer_add_tensor(w, tensors[i].name, tensors[i].type, tensors[i].n_dims, tensors[i].ne);

    size_t len = strlen(p->out_path);
    tmp_path = malloc(len + 16);
    if (!tmp_path) {
        ts_fail(err, "out of memory");
        goto done;
    }
    snprintf(tmp_path, len + 16, "%s.tmp-XXXXXX", p->out_path);
    int fd = mkstemp(tmp_path);
    if (fd < 0) {
        ts_fail(err, "%s: cannot create a temporary file next to it: %s", p->out_path, strerror(errno));
        free(tmp_path);
        tmp_path = NULL;
        goto done;
    }
    fchmod(fd, 0644); /* mkstemp makes 0600; a model file is ordinary data */
    fp = fdopen(fd, "wb");
    if (!fp) {
        close(fd);
        ts_fail(err, "%s: %s", tmp_path, strerror(errno));
        goto done;
    }
    if (gguf_writer_write_header(w, fp, err)) goto done;
    /* Each thread holds two chunk-sized slots; more than 256 threads would only cost memory. */
    int n_threads = p->n_threads > 0 ? (p->n_threads > 256 ? 256 : p->n_threads) : n_cpus();
    if (write_weights(&m, tensors, n_tensors, p->seed, n_threads, w, fp, err)) goto done;
    if (gguf_writer_finish(w, fp, err)) goto done;
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
        ts_fail(err, "%s: write failed: %s", tmp_path, strerror(errno));
        goto done;
    }
    int close_rc = fclose(fp);
    fp = NULL;
    if (close_rc != 0) {
        ts_fail(err, "%s: write failed: %s", tmp_path, strerror(errno));
        goto done;
    }
    if (!p->overwrite) {
        /* link() fails if the name appeared meanwhile, so a concurrent writer is never clobbered. */
        if (link(tmp_path, p->out_path) != 0) {
            if (errno == EEXIST) ts_fail(err, "%s already exists (pass overwrite to replace it)", p->out_path);
            else if (rename(tmp_path, p->out_path) == 0) rc = 0; /* filesystems without hard links */
            else ts_fail(err, "%s: %s", p->out_path, strerror(errno));
            if (rc != 0) goto done;
        } else {
            unlink(tmp_path);
            rc = 0;
        }
    } else if (rename(tmp_path, p->out_path) != 0) {
        ts_fail(err, "cannot rename %s to %s: %s", tmp_path, p->out_path, strerror(errno));
        goto done;
    } else {
        rc = 0;
    }

done:
    if (fp) fclose(fp);
    if (rc != 0 && tmp_path) unlink(tmp_path);
    free(tmp_path);
    gguf_writer_free(w);
    synth_vocab_free(&vocab);
    free(tensors);
    return rc;
}

int ts_synth(const ts_synth_params *p, char err[TS_ERR_LEN]) {
    ts_err e = {{0}};
    int rc = synth_run(p, &e);
    if (rc != 0) copy_err(err, &e);
    return rc == 0 ? 0 : -1;
}

const char *const *ts_synth_presets(void) { return synth_preset_names(); }

const char *ts_synth_preset_desc(const char *name) { return synth_preset_description(name); }
