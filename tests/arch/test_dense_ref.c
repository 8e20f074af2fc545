/* Dense forward passes (llama, qwen2) against the float64 reference shared/tools/dsref.py.
 *
 * For each tiny preset (MHA, GQA, Coder-style linear RoPE, Llama-3 rope_freqs, qwen2 untied and
 * tied) a random-weight GGUF is written, dsref.py computes reference logits for a token sequence,
 * and our logits (whole sequence in one batch) must match in log-probabilities:
 *   F32 weights, F32 cache: max |Δ log p| <= 2e-5 vs dsref (llama.cpp: <= 2e-6 on 64 positions;
 *                           we measure 1e-6..2e-6 here)
 *   F32 weights, F16 cache: <= 5e-4 vs dsref --opt kv_f16=1 (K/V rounded to f16, the rest exact:
 *                           llama.cpp's flash attention on a prompt batch, which we follow; measured
 *                           1e-6..1.2e-4: a K or V value sitting on an f16 rounding boundary may round
 *                           the other way after a 1e-7 difference upstream); <= 1e-2 vs plain dsref (the f16 cache alone costs a few
 *                           1e-3 on these sensitive random models).
 *   F16 weights: activations rounded to f16 for every product, as llama.cpp: <= 5e-3 vs dsref with
 *                an F32 cache (measured 2.2e-3..2.7e-3), <= 6e-3 vs dsref kv_f16=1 with an F16 cache
 *                (measured 3.7e-3..4.2e-3).
 * The reference is found at ../shared/tools/dsref.py (relative to the repo root, where ctest runs)
 * or $TS_SHARED_DIR/tools/dsref.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/tiny_model.h"
#include "ref_compare.h"
#include "tiefsee.h"

#define N_TOK 24

static int failures;

static void check(const char *label, const char *what, double got, double limit) {
    const bool ok = got <= limit;
    printf("%-20s %-28s max|dlogp| = %.3g (limit %.1e) %s\n", label, what, got, limit, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

typedef struct preset {
    const char *label;
    tiny_spec spec;
} preset;

int main(void) {
    char dsref_buf[1024];
    const char *dsref = ref_find_dsref(dsref_buf, sizeof dsref_buf);
    if (!dsref) {
        /* The reference lives in the team's shared/ folder beside the checkout (CI has it); a
         * checkout without it cannot run this comparison, which is not a failure of the engine. */
        fprintf(stderr, "SKIP: dsref.py not found (../shared/tools/dsref.py or $TS_SHARED_DIR/tools)\n");
        return 77;
    }
    char dir[] = "/tmp/ts_dense_ref_XXXXXX";
    if (!mkdtemp(dir)) return 1;

    preset presets[8];
    int n_presets = 0;
    presets[n_presets++] = (preset){"tiny-llama", tiny_default("llama")};
    preset gqa = {"tiny-llama-gqa", tiny_default("llama")};
    gqa.spec.n_head = 8, gqa.spec.n_head_kv = 2, gqa.spec.n_layer = 3;
    presets[n_presets++] = gqa;
    preset coder = {"tiny-coder", tiny_default("llama")};
    coder.spec.linear_factor = 4.0f, coder.spec.freq_base = 100000.0f, coder.spec.eps = 1e-6f;
    presets[n_presets++] = coder;
    preset l3 = {"tiny-llama3", tiny_default("llama")};
    l3.spec.rope_freqs = true, l3.spec.freq_base = 500000.0f, l3.spec.n_head = 4, l3.spec.n_head_kv = 2;
    presets[n_presets++] = l3;
    preset qw = {"tiny-qwen2", tiny_default("qwen2")};
    qw.spec.n_head = 4, qw.spec.n_head_kv = 2, qw.spec.eps = 1e-6f;
    presets[n_presets++] = qw;
    preset qwt = qw;
    qwt.label = "tiny-qwen2-tied", qwt.spec.tied = true;
    presets[n_presets++] = qwt;

    for (int pi = 0; pi < n_presets; pi++) {
        for (int wt = 0; wt < 2; wt++) {
            /* F16 weights only for two presets: the conversion path is shared by all. */
            if (wt == 1 && pi != 1 && pi != 4) continue;
            tiny_spec sp = presets[pi].spec;
            sp.wtype = wt ? TS_TYPE_F16 : TS_TYPE_F32;
            sp.seed = 7 + (uint64_t)pi;
            char model[1200], out[1300];
            snprintf(model, sizeof model, "%s/%s-%s.gguf", dir, presets[pi].label, wt ? "f16" : "f32");
            snprintf(out, sizeof out, "%s.ref.f32", model);
            if (tiny_write(&sp, model) != 0) return 1;
            ts_token toks[N_TOK];
            uint64_t s = 99 + (uint64_t)pi;
            for (int i = 0; i < N_TOK; i++) toks[i] = (ts_token)(tiny_next(&s) % (uint64_t)sp.n_vocab);

            ts_model *m;
            char err[TS_ERR_LEN];
            if (ts_model_load(model, &m, err) != 0) {
                fprintf(stderr, "FAIL: load %s: %s\n", model, err);
                return 1;
            }
            const int V = sp.n_vocab;
            float *ref = ref_run_dsref(dsref, model, out, toks, N_TOK, V, NULL);
            float *ours32 = ref_engine_logits(m, TS_CACHE_F32, false, toks, N_TOK, V, NULL);
            float *ours16 = ref_engine_logits(m, TS_CACHE_F16, false, toks, N_TOK, V, NULL);
            if (!ref || !ours32 || !ours16) return 1;
            char label[64];
            snprintf(label, sizeof label, "%s/%s", presets[pi].label, wt ? "f16" : "f32");
            float *ref_kv = ref_run_dsref(dsref, model, out, toks, N_TOK, V, "kv_f16=1");
            if (!ref_kv) return 1;
            if (wt == 0) {
                check(label, "F32 cache vs dsref", ref_max_dlogp(ours32, ref, N_TOK, V), 2e-5);
                check(label, "F16 cache vs dsref kv_f16=1", ref_max_dlogp(ours16, ref_kv, N_TOK, V), 5e-4);
                check(label, "F16 cache vs dsref", ref_max_dlogp(ours16, ref, N_TOK, V), 1e-2);
            } else {
                check(label, "F32 cache vs dsref", ref_max_dlogp(ours32, ref, N_TOK, V), 5e-3);
                check(label, "F16 cache vs dsref kv_f16=1", ref_max_dlogp(ours16, ref_kv, N_TOK, V), 6e-3);
            }
            free(ref_kv);
            free(ref);
            free(ours32);
            free(ours16);
            ts_model_free(m);
            remove(out);
            remove(model);
        }
    }
    rmdir(dir);
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all dense reference checks passed\n");
    return 0;
}
