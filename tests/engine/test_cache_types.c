/* KV cache element types F16, BF16 and Q8_0 against the F32 cache, on tiny synthetic models with f32
 * weights: deepseek2 (MLA latent cache, with and without q LoRA) and the dense llama (GQA) cache.
 * Per model and cache type:
 *   - max |Δ log p| of every position's logits vs the F32-cache logits is within a bound (below);
 *   - one token per ts_decode call gives bit-identical logits to one batch (the attention of a
 *     (token, head) pair does the same operations whatever the batch holds);
 *   - ts_context_kv_bytes_per_token follows the cache's row formula: deepseek2 n_layer *
 *     (kv_lora_rank + qk_rope_head_dim) values, dense n_layer * 2 * n_head_kv * head_dim values, at
 *     4 / 2 / 2 / 34/32 bytes per value.
 * Also: a Q8_0 cache is refused, with a message, for a dense model whose heads (16 wide) are not
 * whole Q8_0 blocks; the cache type names round-trip.
 * Bounds. The logit error is linear in the cache's rounding error at this size, so each type's bound
 * is F16's scaled by its error ratio. F16 rounds to 2^-11 relative (half-ulp), measured 1e-3..4e-3
 * here, bound 1e-2 (as test_moe_ref vs the float64 reference). BF16 rounds to 2^-8: 8x F16, and q is
 * rounded to bf16 for the dot product too, so ~16x: measured 1e-2..4e-2, bound 0.1. Q8_0 rounds each
 * value to a step of max|block|/127; a normalized latent row has max ≈ 4x its rms, so the error is
 * ≈ rms/(127·√12/4) ≈ rms/110 against F16's ≈ rms/7000 (2^-12/√3): ~60x F16, plus q rounded to
 * q8_0: measured 0.03..0.13, bound 0.3. A broken cache (a wrong row, a wrong block layout) moves
 * the logits by O(1). The token sequence is one on which no expert routing is near a tie (a flipped
 * expert choice would also be O(1)); the kernel-level checks below pin the formats much tighter:
 *   - ts_mla_attention_head / ts_attention_head on BF16 / Q8_0 rows against the same rows
 *     dequantized into an F32 cache: the only difference is q's rounding for the dot product, so the
 *     outputs agree to 2e-2 relative to the output's magnitude (q8_0: 1/254 per score, amplified by
 *     the softmax at most by the spread of scores, which these random rows keep below ~4). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "ops/mla.h"
#include "ops/ops.h"
#include "quant/types.h"
#include "tiefsee.h"

#define N_TOK 16

static int failures;

static void check(bool ok, const char *label, const char *what) {
    printf("%-20s %-44s %s\n", label, what, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

static double max_dlogp(const float *a, const float *b, int n_rows, int n_vocab) {
    double worst = 0;
    for (int r = 0; r < n_rows; r++) {
        const float *x = a + (size_t)r * n_vocab, *y = b + (size_t)r * n_vocab;
        double mx = x[0], my = y[0], sx = 0, sy = 0;
        for (int i = 1; i < n_vocab; i++) {
            mx = x[i] > mx ? x[i] : mx;
            my = y[i] > my ? y[i] : my;
        }
        for (int i = 0; i < n_vocab; i++) {
            sx += exp(x[i] - mx);
            sy += exp(y[i] - my);
        }
        const double lx = mx + log(sx), ly = my + log(sy);
        for (int i = 0; i < n_vocab; i++) {
            const double d = fabs((x[i] - lx) - (y[i] - ly));
            if (!(d <= worst)) worst = d; /* NaN propagates as a failure */
        }
    }
    return worst;
}

/* Logits of every position, one batch or one token per call; NULL on failure. */
static float *engine_logits(ts_model *m, enum ts_cache_type cache, bool step, const ts_token *toks, int n_vocab,
                            size_t *kv_bytes) {
    ts_context_params p = ts_context_default_params();
    p.n_ctx = 32;
    p.n_threads = 2;
    p.cache_type = cache;
    ts_context *c;
    char err[TS_ERR_LEN];
    if (ts_context_new(m, &p, &c, err) != 0) {
        printf("FAIL: context (%s cache): %s\n", ts_cache_type_name(cache), err);
        return NULL;
    }
    if (kv_bytes) *kv_bytes = ts_context_kv_bytes_per_token(c);
    int32_t pos[N_TOK], seq[N_TOK];
    bool want[N_TOK];
    for (int i = 0; i < N_TOK; i++) pos[i] = i, seq[i] = 0, want[i] = true;
    float *logits = malloc((size_t)N_TOK * (size_t)n_vocab * sizeof *logits);
    const int chunk = step ? 1 : N_TOK;
    for (int i = 0; i < N_TOK && logits; i += chunk) {
        ts_batch b = {.n_tokens = chunk, .tokens = toks + i, .pos = pos + i, .seq = seq + i, .want_logits = want + i};
        if (ts_decode(c, &b, logits + (size_t)i * (size_t)n_vocab, err) != 0) {
            printf("FAIL: decode: %s\n", err);
            free(logits);
            logits = NULL;
        }
    }
    ts_context_free(c);
    return logits;
}

static uint32_t u32_key(gguf_file *f, const char *key) {
    uint32_t v = 0;
    ts_err e;
    return gguf_get_u32(f, key, &v, &e) == 0 ? v : 0;
}

/* Values cached per token (all layers), from the file's hyperparameters. */
static size_t cached_values(const char *path, bool mla) {
    gguf_file *f;
    ts_err e;
    if (gguf_open(path, &f, &e) != 0) return 0;
    const char *arch = mla ? "deepseek2" : "llama";
    char key[128];
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
    const size_t n_layer = u32_key(f, KEY("block_count"));
    size_t per_layer;
    if (mla) {
        per_layer = (size_t)u32_key(f, KEY("attention.kv_lora_rank")) + u32_key(f, KEY("rope.dimension_count"));
    } else {
        const size_t n_head = u32_key(f, KEY("attention.head_count"));
        const size_t n_embd = u32_key(f, KEY("embedding_length"));
        const size_t n_head_kv = u32_key(f, KEY("attention.head_count_kv"));
        per_layer = n_head ? 2 * n_head_kv * (n_embd / n_head) : 0;
    }
#undef KEY
    gguf_close(f);
    return n_layer * per_layer;
}

static void test_preset(const char *dir, const char *preset, bool mla) {
    char path[512], err[TS_ERR_LEN];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, preset);
    ts_synth_params sp = {.preset = preset, .type = "f32", .seed = 0, .out_path = path, .overwrite = true, .n_threads = 2};
    if (ts_synth(&sp, err) != 0) {
        printf("FAIL: synth %s: %s\n", preset, err);
        failures++;
        return;
    }
    ts_model *m;
    if (ts_model_load(path, &m, err) != 0) {
        printf("FAIL: load %s: %s\n", preset, err);
        failures++;
        remove(path);
        return;
    }
    ts_model_info info;
    ts_model_get_info(m, &info);
    const int V = info.n_vocab;
    /* test_moe_ref's sequence: on these seed-0 models no routing decision is within 1e-3 of a tie. */
    const ts_token toks[N_TOK] = {5, 17, 300, 42, 999, 7, 128, 64, 3, 500, 11, 250, 777, 91, 1000, 31};
    const size_t values = cached_values(path, mla);

    size_t kv32 = 0;
    float *ref = engine_logits(m, TS_CACHE_F32, false, toks, V, &kv32);
    check(ref != NULL && values > 0 && kv32 == values * 4, preset, "f32: kv bytes/token = values * 4");
    const struct {
        enum ts_cache_type type;
        double bound;
        size_t bytes_num, bytes_den; /* bytes per value */
    } cases[] = {{TS_CACHE_F16, 1e-2, 2, 1}, {TS_CACHE_BF16, 0.1, 2, 1}, {TS_CACHE_Q8_0, 0.3, 34, 32}};
    for (size_t k = 0; ref && k < sizeof cases / sizeof cases[0]; k++) {
        const char *name = ts_cache_type_name(cases[k].type);
        size_t kv = 0;
        float *batch = engine_logits(m, cases[k].type, false, toks, V, &kv);
        float *step = engine_logits(m, cases[k].type, true, toks, V, NULL);
        char what[128];
        if (!batch || !step) {
            snprintf(what, sizeof what, "%s: runs", name);
            check(false, preset, what);
        } else {
            const double d = max_dlogp(batch, ref, N_TOK, V);
            snprintf(what, sizeof what, "%s: max|dlogp| vs f32 = %.3g (<= %.2g)", name, d, cases[k].bound);
            /* d > 0: the cache really is in the narrower format (a silent F32 fallback would give 0). */
            check(d <= cases[k].bound && d > 0, preset, what);
            snprintf(what, sizeof what, "%s: step bit-identical to batch", name);
            check(memcmp(batch, step, (size_t)N_TOK * (size_t)V * sizeof *batch) == 0, preset, what);
            snprintf(what, sizeof what, "%s: kv bytes/token %zu = %zu values * %zu/%zu", name, kv, values,
                     cases[k].bytes_num, cases[k].bytes_den);
            check(kv == values * cases[k].bytes_num / cases[k].bytes_den && values % cases[k].bytes_den == 0, preset, what);
        }
        free(batch);
        free(step);
    }
    free(ref);
    ts_model_free(m);
    remove(path);
}

static void test_names(void) {
    const enum ts_cache_type all[] = {TS_CACHE_F16, TS_CACHE_F32, TS_CACHE_BF16, TS_CACHE_Q8_0};
    bool ok = true;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        enum ts_cache_type back = TS_CACHE_F32;
        ok &= ts_cache_type_from_name(ts_cache_type_name(all[i]), &back) == 0 && back == all[i];
    }
    enum ts_cache_type t;
    ok &= ts_cache_type_from_name("q4_0", &t) == -1 && ts_cache_type_from_name("F16", &t) == -1 &&
          ts_cache_type_from_name(NULL, &t) == -1 && ts_cache_type_name((enum ts_cache_type)7) == NULL;
    check(ok, "names", "f16/f32/bf16/q8_0 round-trip, others refused");
}

/* Largest |a - b| over n values divided by the largest |b|. */
static double rel_diff(const float *a, const float *b, int n) {
    double worst = 0, scale = 0;
    for (int i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (!(d <= worst)) worst = d;
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    }
    return scale > 0 ? worst / scale : worst;
}

/* The attention kernels on BF16 / Q8_0 rows vs the same rows dequantized into an F32 cache. */
static void test_kernels(void) {
    enum { N_KV = 24, C = 256, DR = 32, K = C + DR, HEADS = 3, HD = 64, STRIDE = HEADS * HD };
    const ts_type_traits *table = ts_type_table(ts_isa_best());
    float *rows = malloc((size_t)N_KV * K * sizeof(float)), *deq = malloc((size_t)N_KV * K * sizeof(float));
    float *q = malloc(K * sizeof(float)), *out = malloc(K * sizeof(float)), *want = malloc(K * sizeof(float));
    float *scratch = malloc((N_KV + K) * sizeof(float));
    void *packed = malloc((size_t)N_KV * K * sizeof(float));
    if (!rows || !deq || !q || !out || !want || !scratch || !packed) {
        check(false, "kernels", "allocate");
        return;
    }
    uint32_t state = 12345;
    for (int i = 0; i < N_KV * K; i++) {
        state = state * 1664525u + 1013904223u;
        rows[i] = ((float)(state >> 8) / 16777216.0f - 0.5f) * 2.0f;
    }
    for (int i = 0; i < K; i++) q[i] = 0.15f * rows[(i * 7) % (N_KV * K)];
    const int types[] = {TS_TYPE_BF16, TS_TYPE_Q8_0};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const ts_type_traits *tt = &table[types[k]];
        char what[160];
        /* MLA: rows of K values, the first C of which are the value. */
        const size_t row_bytes = ts_row_size(types[k], K);
        for (int t = 0; t < N_KV; t++) {
            tt->from_float(rows + (size_t)t * K, (char *)packed + (size_t)t * row_bytes, K);
            tt->to_float((char *)packed + (size_t)t * row_bytes, deq + (size_t)t * K, K);
        }
        ts_mla_attention_head(table, out, q, packed, types[k], K, N_KV, K, C, 0.3f, scratch);
        ts_mla_attention_head(table, want, q, deq, TS_TYPE_F32, K, N_KV, K, C, 0.3f, scratch);
        double d = rel_diff(out, want, C);
        snprintf(what, sizeof what, "%s mla head vs dequantized f32: %.2g (<= 2e-2)", tt->name, d);
        check(d <= 2e-2, "kernels", what);
        /* Dense: head 1 of rows of HEADS heads (the slice starts at a block boundary). */
        const size_t dense_bytes = ts_row_size(types[k], STRIDE);
        for (int t = 0; t < N_KV; t++) {
            tt->from_float(rows + (size_t)t * STRIDE, (char *)packed + (size_t)t * dense_bytes, STRIDE);
            tt->to_float((char *)packed + (size_t)t * dense_bytes, deq + (size_t)t * STRIDE, STRIDE);
        }
        ts_attention_head(table, out, q, packed, packed, types[k], STRIDE, HD, N_KV, HD, 0.3f, scratch);
        ts_attention_head(table, want, q, deq, deq, TS_TYPE_F32, STRIDE, HD, N_KV, HD, 0.3f, scratch);
        d = rel_diff(out, want, HD);
        snprintf(what, sizeof what, "%s dense head 1 vs dequantized f32: %.2g (<= 2e-2)", tt->name, d);
        check(d <= 2e-2, "kernels", what);
    }
    free(rows), free(deq), free(q), free(out), free(want), free(scratch), free(packed);
}

/* A dense model with head_dim 16: its rows (256 wide) hold whole Q8_0 blocks but its heads do not,
 * so a Q8_0 cache is refused with a message; BF16 (no blocks) works. */
static void test_refusal(const char *dir) {
    char cfg[512], path[512], err[TS_ERR_LEN] = "";
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    snprintf(path, sizeof path, "%s/head16.gguf", dir);
    FILE *fp = fopen(cfg, "w");
    if (!fp) {
        check(false, "refusal", "write config.json");
        return;
    }
    fputs("{\"model_type\": \"llama\", \"hidden_size\": 256, \"num_attention_heads\": 16, \"num_key_value_heads\": 16,"
          " \"num_hidden_layers\": 1, \"intermediate_size\": 256, \"vocab_size\": 1024,"
          " \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-6}\n",
          fp);
    fclose(fp);
    ts_synth_params sp = {.hf_config = cfg, .type = "f32", .out_path = path, .overwrite = true, .n_threads = 2};
    ts_model *m = NULL;
    if (ts_synth(&sp, err) != 0 || ts_model_load(path, &m, err) != 0) {
        printf("FAIL: head16 model: %s\n", err);
        failures++;
    } else {
        ts_context_params p = ts_context_default_params();
        p.n_ctx = 16;
        p.n_threads = 1;
        p.cache_type = TS_CACHE_Q8_0;
        ts_context *c = NULL;
        const bool refused = ts_context_new(m, &p, &c, err) != 0 && c == NULL && strstr(err, "multiples of 32") != NULL;
        check(refused, "refusal", "q8_0 cache refused for head_dim 16");
        if (refused) printf("  (%s)\n", err);
        ts_context_free(c);
        p.cache_type = TS_CACHE_BF16;
        c = NULL;
        const bool made = ts_context_new(m, &p, &c, err) == 0;
        check(made, "refusal", "bf16 cache accepted for head_dim 16");
        ts_context_free(c);
    }
    ts_model_free(m);
    remove(path);
    remove(cfg);
}

int main(void) {
    char dir[] = "/tmp/ts_cache_types_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_names();
    test_kernels();
    test_preset(dir, "tiny-deepseek2-lite", true);
    test_preset(dir, "tiny-deepseek2", true);
    test_preset(dir, "tiny-llama-gqa", false);
    test_refusal(dir);
    rmdir(dir);
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all cache type checks passed\n");
    return 0;
}
