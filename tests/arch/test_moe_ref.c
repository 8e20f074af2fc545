/* MoE/MLA forward passes (`deepseek`, `deepseek2`) against the float64 reference
 * shared/tools/dsref.py, on the tiny synthetic presets (F32 weights):
 *   tiny-deepseek-moe   DeepSeekMoE: llama attention, softmax top-k, shared experts
 *   tiny-deepseek2-lite MLA without q LoRA, YaRN, softmax MoE
 *   tiny-deepseek2      MLA with q LoRA, group-limited (max) softmax MoE, scale 16
 *   tiny-deepseek3      MLA, sigmoid noaux_tc routing with exp_probs_b, normalized, scale 2.5
 * Checks per preset:
 *   F32 cache, whole sequence in one batch: max |Δ log p| <= 2e-5 vs dsref (measured 1e-6..4e-6).
 *   One token per ts_decode call gives bit-identical logits to the batch, and so does a batch that
 *   interleaves two sequences.
 *   F16 cache: <= 1e-2 vs dsref (deepseek2 caches the latent, dsref's kv_f16 rounds the decompressed
 *   K/V instead, so the plain reference is the fair one; measured up to ~5e-3).
 *   deepseek2: ts_context_kv_bytes_per_token == n_layer * (kv_lora_rank + qk_rope_head_dim) * elem.
 * Layout variants of tiny-deepseek2 (rewritten from the synthetic file, which has mainline's 3-D
 * attn_k_b/attn_v_b): ik's 2-D attn_k_b/attn_v_b and the combined attn_kv_b must give the same
 * logits as the original (bit-identical: same values, same products). A tiny-deepseek3 file with
 * one extra MTP (nextn) layer must load and give the original logits (the layer is skipped).
 * The token sequences were checked with dsref --opt margins=1e-3: smallest routing margin 1.1e-3, far above our ~1e-6 error, so no expert choice can flip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "ref_compare.h"
#include "tiefsee.h"

#define N_TOK 16
#define N_VOCAB 1024

static int failures;

static void check(const char *label, const char *what, double got, double limit) {
    const bool ok = got <= limit;
    printf("%-22s %-34s max|dlogp| = %.3g (limit %.1e) %s\n", label, what, got, limit, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

/* Two sequences in one context, their tokens interleaved in one batch (both the first 8 tokens of
 * toks): each row must equal the single-sequence batch's row for that position exactly. */
static bool two_sequences_match(ts_model *m, const ts_token *toks, const float *single) {
    enum { HALF = N_TOK / 2 };
    ts_context_params p = ts_context_default_params();
    p.n_ctx = 64, p.n_threads = 2, p.n_seq_max = 2, p.cache_type = TS_CACHE_F32;
    ts_context *c;
    char err[TS_ERR_LEN];
    if (ts_context_new(m, &p, &c, err) != 0) return false;
    ts_token bt[N_TOK];
    int32_t pos[N_TOK], seq[N_TOK];
    for (int i = 0; i < N_TOK; i++) bt[i] = toks[i / 2], pos[i] = i / 2, seq[i] = i % 2;
    float *logits = malloc((size_t)N_TOK * N_VOCAB * sizeof *logits);
    bool want[N_TOK];
    for (int i = 0; i < N_TOK; i++) want[i] = true;
    ts_batch b = {.n_tokens = N_TOK, .tokens = bt, .pos = pos, .seq = seq, .want_logits = want};
    bool ok = ts_decode(c, &b, logits, err) == 0;
    for (int i = 0; ok && i < N_TOK; i++)
        ok = memcmp(logits + (size_t)i * N_VOCAB, single + (size_t)(i / 2) * N_VOCAB, N_VOCAB * sizeof(float)) == 0;
    free(logits);
    ts_context_free(c);
    return ok;
}

/* ---- Rewriting a GGUF into another layout ------------------------------------------------------- */

enum layout { LAYOUT_KV_B, LAYOUT_SPLIT_2D, LAYOUT_NEXTN };

typedef struct out_tensor {
    char name[128];
    int type, n_dims;
    int64_t ne[4];
    const void *data;
    size_t nbytes;
} out_tensor;

static void copy_kv(gguf_writer *w, const gguf_kv *kv, const char *key) {
    if (kv->type == GGUF_STRING) {
        char *s = strndup(kv->str.ptr, (size_t)kv->str.len);
        gguf_writer_set_str(w, key, s);
        free(s);
    } else if (kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING) {
        char **strs = calloc((size_t)kv->arr_n, sizeof *strs);
        for (uint64_t i = 0; i < kv->arr_n; i++) {
            const gguf_str s = gguf_arr_str(kv, i);
            strs[i] = strndup(s.ptr, (size_t)s.len);
        }
        gguf_writer_set_arr_str(w, key, (const char *const *)strs, kv->arr_n);
        for (uint64_t i = 0; i < kv->arr_n; i++) free(strs[i]);
        free(strs);
    } else if (kv->type == GGUF_ARRAY) {
        gguf_writer_set_arr(w, key, kv->arr_type, kv->data, kv->arr_n);
    } else {
        gguf_writer_set_scalar(w, key, kv->type, kv->data);
    }
}

static int u32_key(gguf_file *f, const char *key) {
    uint32_t v = 0;
    ts_err e;
    return gguf_get_u32(f, key, &v, &e) == 0 ? (int)v : -1;
}

/* Writes `src` to `dst` in another layout: LAYOUT_KV_B replaces attn_k_b/attn_v_b with the combined
 * attn_kv_b, LAYOUT_SPLIT_2D stores them 2-D as ik does, LAYOUT_NEXTN appends one MTP layer (a copy
 * of the last block plus the nextn tensors). */
static int rewrite(const char *src, const char *dst, enum layout layout) {
    gguf_file *f;
    ts_err e;
    if (gguf_open(src, &f, &e) != 0) {
        fprintf(stderr, "FAIL: %s\n", e.msg);
        return -1;
    }
    const int L = u32_key(f, "deepseek2.block_count"), H = u32_key(f, "deepseek2.attention.head_count");
    const int C = u32_key(f, "deepseek2.attention.kv_lora_rank"), E = u32_key(f, "deepseek2.embedding_length");
    const int Dr = u32_key(f, "deepseek2.rope.dimension_count");
    const int Dn = u32_key(f, "deepseek2.attention.key_length_mla") - Dr, Dv = u32_key(f, "deepseek2.attention.value_length_mla");
    gguf_writer *w = gguf_writer_new();
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        if (layout == LAYOUT_NEXTN && strcmp(key, "deepseek2.block_count") == 0) continue;
        copy_kv(w, kv, key);
    }
    if (layout == LAYOUT_NEXTN) {
        gguf_writer_set_u32(w, "deepseek2.block_count", (uint32_t)L + 1);
        gguf_writer_set_u32(w, "deepseek2.nextn_predict_layers", 1);
    }

    const int64_t n_in = gguf_n_tensors(f);
    out_tensor *out = calloc((size_t)(2 * n_in + 8), sizeof *out);
    float **owned = calloc((size_t)(L + 8), sizeof *owned);
    int n_out = 0, n_owned = 0;
    char last_prefix[32];
    snprintf(last_prefix, sizeof last_prefix, "blk.%d.", L - 1);
    for (int64_t i = 0; i < n_in; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        out_tensor o = {.type = t->type, .n_dims = t->n_dims, .data = t->data, .nbytes = t->nbytes};
        snprintf(o.name, sizeof o.name, "%s", t->name);
        memcpy(o.ne, t->ne, sizeof o.ne);
        const bool is_kb = strstr(t->name, ".attn_k_b.weight") != NULL, is_vb = strstr(t->name, ".attn_v_b.weight") != NULL;
        if (layout == LAYOUT_SPLIT_2D && (is_kb || is_vb)) {
            o.n_dims = 2, o.ne[1] *= o.ne[2], o.ne[2] = 1;
        } else if (layout == LAYOUT_KV_B && is_vb) {
            continue; /* written with attn_k_b as one attn_kv_b */
        } else if (layout == LAYOUT_KV_B && is_kb) {
            int l = 0;
            sscanf(t->name, "blk.%d.", &l);
            char vname[128];
            snprintf(vname, sizeof vname, "blk.%d.attn_v_b.weight", l);
            const float *kb = t->data, *vb = gguf_find_tensor(f, vname)->data;
            const int rows = H * (Dn + Dv);
            float *kvb = malloc((size_t)rows * (size_t)C * sizeof *kvb);
            for (int h = 0; h < H; h++)
                for (int c = 0; c < C; c++) {
                    for (int d = 0; d < Dn; d++) kvb[((size_t)h * (Dn + Dv) + d) * C + c] = kb[((size_t)h * C + c) * Dn + d];
                    for (int j = 0; j < Dv; j++)
                        kvb[((size_t)h * (Dn + Dv) + Dn + j) * C + c] = vb[((size_t)h * Dv + j) * C + c];
                }
            owned[n_owned++] = kvb;
            snprintf(o.name, sizeof o.name, "blk.%d.attn_kv_b.weight", l);
            o.n_dims = 2, o.ne[0] = C, o.ne[1] = rows, o.ne[2] = 1;
            o.data = kvb, o.nbytes = (size_t)rows * (size_t)C * sizeof(float);
        }
        out[n_out++] = o;
        if (layout == LAYOUT_NEXTN && strncmp(t->name, last_prefix, strlen(last_prefix)) == 0) {
            out_tensor copy = o;
            snprintf(copy.name, sizeof copy.name, "blk.%d.%s", L, t->name + strlen(last_prefix));
            out[n_out++] = copy;
        }
    }
    if (layout == LAYOUT_NEXTN) {
        float *ones = malloc((size_t)E * sizeof *ones), *eh = calloc((size_t)2 * E * E, sizeof *eh);
        for (int i = 0; i < E; i++) ones[i] = 1.0f;
        owned[n_owned++] = ones;
        owned[n_owned++] = eh;
        const char *norms[] = {"enorm", "hnorm", "shared_head_norm"};
        for (int i = 0; i < 3; i++) {
            out_tensor o = {.type = 0, .n_dims = 1, .ne = {E, 1, 1, 1}, .data = ones, .nbytes = (size_t)E * sizeof(float)};
            snprintf(o.name, sizeof o.name, "blk.%d.nextn.%s.weight", L, norms[i]);
            out[n_out++] = o;
        }
        out_tensor o = {.type = 0, .n_dims = 2, .ne = {2 * E, E, 1, 1}, .data = eh, .nbytes = (size_t)2 * E * E * sizeof(float)};
        snprintf(o.name, sizeof o.name, "blk.%d.nextn.eh_proj.weight", L);
        out[n_out++] = o;
    }
    int rc = 0;
    for (int i = 0; i < n_out; i++) gguf_writer_add_tensor(w, out[i].name, out[i].type, out[i].n_dims, out[i].ne);
    FILE *fp = fopen(dst, "wb");
    if (!fp || gguf_writer_write_header(w, fp, &e) != 0) rc = -1;
    for (int i = 0; i < n_out && rc == 0; i++)
        if (gguf_writer_write_data(w, fp, out[i].data, out[i].nbytes, &e) != 0) rc = -1;
    if (rc == 0 && gguf_writer_finish(w, fp, &e) != 0) rc = -1;
    if (fp) fclose(fp);
    if (rc) fprintf(stderr, "FAIL: writing %s: %s\n", dst, e.msg);
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    free(owned);
    free(out);
    gguf_writer_free(w);
    gguf_close(f);
    return rc;
}

/* ---- Tests ------------------------------------------------------------------------------------------ */

static bool identical(const float *a, const float *b, int n_rows) {
    return memcmp(a, b, (size_t)n_rows * N_VOCAB * sizeof *a) == 0;
}

static ts_model *load(const char *path) {
    ts_model *m;
    char err[TS_ERR_LEN];
    if (ts_model_load(path, &m, err) != 0) {
        fprintf(stderr, "FAIL: load %s: %s\n", path, err);
        return NULL;
    }
    return m;
}

/* The logits of a rewritten file must equal `want` exactly. */
static void check_variant(const char *src, const char *dst, enum layout layout, const char *label, const ts_token *toks,
                          const float *want, size_t want_kv_bytes) {
    if (rewrite(src, dst, layout) != 0) {
        failures++;
        return;
    }
    ts_model *m = load(dst);
    if (!m) {
        failures++;
        return;
    }
    size_t kv_bytes = 0;
    float *got = ref_engine_logits(m, TS_CACHE_F32, false, toks, N_TOK, N_VOCAB, &kv_bytes);
    const bool ok = got && identical(got, want, N_TOK) && kv_bytes == want_kv_bytes;
    printf("%-22s %-34s %s\n", label, "same logits and cache size", ok ? "ok" : "FAIL");
    if (!ok) failures++;
    free(got);
    ts_model_free(m);
    remove(dst);
}

int main(void) {
    char dsref_buf[1024];
    const char *dsref = ref_find_dsref(dsref_buf, sizeof dsref_buf);
    if (!dsref) {
        /* As test_dense_ref: a checkout without the shared/ reference cannot run the comparison. */
        fprintf(stderr, "SKIP: dsref.py not found (../shared/tools/dsref.py or $TS_SHARED_DIR/tools)\n");
        return 77;
    }
    char dir[] = "/tmp/ts_moe_ref_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    const char *presets[] = {"tiny-deepseek-moe", "tiny-deepseek2-lite", "tiny-deepseek2", "tiny-deepseek3"};
    /* Checked for routing near-ties with dsref --opt margins=1e-3 (none below 1e-3). */
    const ts_token toks[N_TOK] = {5, 17, 300, 42, 999, 7, 128, 64, 3, 500, 11, 250, 777, 91, 1000, 31};

    for (int pi = 0; pi < 4; pi++) {
        char model[256], out[300], variant[300];
        snprintf(model, sizeof model, "%s/%s.gguf", dir, presets[pi]);
        snprintf(out, sizeof out, "%s.ref.f32", model);
        snprintf(variant, sizeof variant, "%s.variant.gguf", model);
        char err[TS_ERR_LEN];
        ts_synth_params sp = {.preset = presets[pi], .type = "f32", .seed = 0, .out_path = model, .overwrite = true,
                              .n_threads = 2};
        if (ts_synth(&sp, err) != 0) {
            fprintf(stderr, "FAIL: synth %s: %s\n", presets[pi], err);
            return 1;
        }
        ts_model *m = load(model);
        float *ref = ref_run_dsref(dsref, model, out, toks, N_TOK, N_VOCAB, NULL);
        if (!m || !ref) return 1;
        size_t kv32 = 0, kv16 = 0;
        float *batch = ref_engine_logits(m, TS_CACHE_F32, false, toks, N_TOK, N_VOCAB, &kv32);
        float *step = ref_engine_logits(m, TS_CACHE_F32, true, toks, N_TOK, N_VOCAB, NULL);
        float *half = ref_engine_logits(m, TS_CACHE_F16, false, toks, N_TOK, N_VOCAB, &kv16);
        if (!batch || !step || !half) return 1;
        check(presets[pi], "F32 cache, batch vs dsref", ref_max_dlogp(batch, ref, N_TOK, N_VOCAB), 2e-5);
        const bool same = identical(step, batch, N_TOK);
        printf("%-22s %-34s %s\n", presets[pi], "step logits bit-identical to batch", same ? "ok" : "FAIL");
        if (!same) failures++;
        const bool seqs = two_sequences_match(m, toks, batch);
        printf("%-22s %-34s %s\n", presets[pi], "two interleaved sequences exact", seqs ? "ok" : "FAIL");
        if (!seqs) failures++;
        check(presets[pi], "F16 cache vs dsref", ref_max_dlogp(half, ref, N_TOK, N_VOCAB), 1e-2);

        if (pi > 0) {
            gguf_file *f;
            ts_err e;
            if (gguf_open(model, &f, &e) != 0) return 1;
            const size_t per_elem = (size_t)u32_key(f, "deepseek2.block_count") *
                                    (size_t)(u32_key(f, "deepseek2.attention.kv_lora_rank") +
                                             u32_key(f, "deepseek2.rope.dimension_count"));
            gguf_close(f);
            const bool ok = kv32 == per_elem * 4 && kv16 == per_elem * 2;
            printf("%-22s %-34s %s (%zu / %zu bytes)\n", presets[pi], "latent cache bytes per token", ok ? "ok" : "FAIL",
                   kv16, kv32);
            if (!ok) failures++;
        }
        if (pi == 2) {
            check_variant(model, variant, LAYOUT_KV_B, "tiny-deepseek2 kv_b", toks, batch, kv32);
            check_variant(model, variant, LAYOUT_SPLIT_2D, "tiny-deepseek2 2-D k_b", toks, batch, kv32);
        }
        if (pi == 3) check_variant(model, variant, LAYOUT_NEXTN, "tiny-deepseek3 + MTP", toks, batch, kv32);
        free(ref);
        free(batch);
        free(step);
        free(half);
        ts_model_free(m);
        remove(model);
    }
    rmdir(dir);
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all MoE/MLA reference checks passed\n");
    return 0;
}
