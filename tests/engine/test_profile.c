/* ts_context_set_profiling / ts_context_profile (`tiefsee bench --profile`): on a dense, a
 * DeepSeekMoE and an MLA+MoE tiny model, each step is counted as often as the forward pass runs it,
 * the weight bytes a one-token step reads add up to the model's bytes per token (the roofline's
 * numerator, less its 1-D tensors and embedding row) with exactly n_used experts per MoE layer, the
 * step times fit inside the decode time, and profiling changes no logit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/context.h"
#include "model/model.h"
#include "tiefsee.h"

#include "check.h"
#include "engine/test_ctx.h"

#define N_PROMPT 5
#define N_STEPS 3

static ts_context *new_ctx(ts_model *m) {
    ts_context_params p = ts_context_default_params();
    p.n_ctx = 64;
    p.n_threads = 2;
    return test_context_new(m, &p);
}

/* A prompt of N_PROMPT tokens in one batch (when prompt), else N_STEPS single tokens after it;
 * logits of the last token of each call into logits (N_STEPS + 1 rows). */
static void decode(ts_context *c, bool prompt, float *logits, int V) {
    char err[TS_ERR_LEN];
    ts_token toks[N_PROMPT];
    int32_t pos[N_PROMPT], seq[N_PROMPT] = {0};
    if (prompt) {
        for (int i = 0; i < N_PROMPT; i++) toks[i] = (ts_token)((i * 37 + 11) % V), pos[i] = i;
        ts_batch b = {.n_tokens = N_PROMPT, .tokens = toks, .pos = pos, .seq = seq};
        if (ts_decode(c, &b, logits, err) != 0) printf("decode: %s\n", err), exit(1);
        return;
    }
    for (int s = 0; s < N_STEPS; s++) {
        toks[0] = (ts_token)((s * 53 + 7) % V), pos[0] = N_PROMPT + s;
        ts_batch b = {.n_tokens = 1, .tokens = toks, .pos = pos, .seq = seq};
        if (ts_decode(c, &b, logits + (size_t)(s + 1) * V, err) != 0) printf("decode: %s\n", err), exit(1);
    }
}

static uint64_t matrix_bytes(const ts_matrix *w) { return w->data ? (uint64_t)w->row_bytes * (uint64_t)w->n_out : 0; }

/* expected calls of each step per decode call: layers of dense FFN and of MoE. */
static void check_profile(const char *label, ts_model *m, int n_dense_ffn, int n_moe) {
    const int V = m->hp.n_vocab, L = n_dense_ffn + n_moe;
    float *plain = calloc((size_t)(N_STEPS + 1) * V, sizeof(float)), *prof = calloc((size_t)(N_STEPS + 1) * V, sizeof(float));

    ts_context *c = new_ctx(m);
    decode(c, true, plain, V);
    decode(c, false, plain, V);
    ts_profile p = ts_context_profile(c);
    CHECK(p.tokens == 0 && p.decodes == 0 && p.seconds == 0, "%s: counters with profiling off", label);
    ts_context_free(c);

    c = new_ctx(m);
    CHECK(ts_context_set_profiling(c, true) == 0, "%s: profiling on", label);
    decode(c, true, prof, V);
    p = ts_context_profile(c);
    CHECK(p.tokens == N_PROMPT && p.decodes == 1, "%s: prompt: %llu tokens, %llu decodes", label,
          (unsigned long long)p.tokens, (unsigned long long)p.decodes);
    CHECK(p.step[TS_STEP_OUTPUT].weight_bytes == matrix_bytes(&m->output), "%s: output head bytes", label);

    /* The one-token steps alone: turning profiling on again clears the counters. */
    CHECK(ts_context_set_profiling(c, true) == 0, "%s: profiling on again", label);
    decode(c, false, prof, V);
    p = ts_context_profile(c);
    CHECK(p.tokens == N_STEPS && p.decodes == N_STEPS, "%s: steps: %llu tokens, %llu decodes", label,
          (unsigned long long)p.tokens, (unsigned long long)p.decodes);
    const uint64_t want_calls[TS_STEP_COUNT] = {
        [TS_STEP_EMBED] = 1,        [TS_STEP_NORM] = 4 * (uint64_t)L,     [TS_STEP_ATTN_IN] = (uint64_t)L,
        [TS_STEP_ATTENTION] = (uint64_t)L, [TS_STEP_ATTN_OUT] = (uint64_t)L, [TS_STEP_FFN_IN] = (uint64_t)n_dense_ffn,
        [TS_STEP_FFN_ACT] = (uint64_t)n_dense_ffn, [TS_STEP_FFN_OUT] = (uint64_t)n_dense_ffn,
        [TS_STEP_MOE] = (uint64_t)n_moe, [TS_STEP_OUTPUT] = 1,
    };
    double steps_s = 0;
    uint64_t bytes = 0;
    for (int i = 0; i < TS_STEP_COUNT; i++) {
        const ts_step_stats *st = &p.step[i];
        CHECK(st->calls == N_STEPS * want_calls[i], "%s: step %s ran %llu times, want %llu", label,
              ts_step_name((enum ts_step)i), (unsigned long long)st->calls, (unsigned long long)(N_STEPS * want_calls[i]));
        CHECK(st->seconds >= 0 && (st->calls > 0 || st->seconds == 0), "%s: step %s time %g", label,
              ts_step_name((enum ts_step)i), st->seconds);
        steps_s += st->seconds;
        bytes += st->weight_bytes;
    }
    CHECK(p.seconds > 0 && steps_s <= p.seconds * (1 + 1e-9), "%s: steps %g s within the decode time %g s", label, steps_s,
          p.seconds);
    /* Steps that read no weights report none. */
    CHECK(p.step[TS_STEP_EMBED].weight_bytes == 0 && p.step[TS_STEP_NORM].weight_bytes == 0 &&
              p.step[TS_STEP_FFN_ACT].weight_bytes == 0,
          "%s: weight bytes in steps without weights", label);
    CHECK(p.step[TS_STEP_ATTN_IN].weight_bytes > 0 && p.step[TS_STEP_ATTN_OUT].weight_bytes > 0, "%s: attention weights",
          label);
    /* A token's bytes: the roofline's count less the 1-D tensors and the embedding row it adds. */
    const uint64_t active = ts_model_active_bytes_per_token(m), per_token = bytes / N_STEPS;
    CHECK(bytes % N_STEPS == 0, "%s: every step reads the same weights", label);
    CHECK(per_token <= active && per_token >= active - active / 50, "%s: %llu weight bytes per token, roofline counts %llu",
          label, (unsigned long long)per_token, (unsigned long long)active);
    printf("%-22s %llu of %llu bytes per token in the steps; decode %.3f ms, steps %.3f ms\n", label,
           (unsigned long long)per_token, (unsigned long long)active, 1e3 * p.seconds, 1e3 * steps_s);

    CHECK(memcmp(plain, prof, (size_t)(N_STEPS + 1) * V * sizeof(float)) == 0, "%s: profiling changed the logits", label);

    CHECK(ts_context_set_profiling(c, false) == 0, "%s: profiling off", label);
    ts_seq_truncate(c, 0, 0);
    decode(c, true, prof, V);
    p = ts_context_profile(c);
    CHECK(p.tokens == 0 && p.step[TS_STEP_OUTPUT].calls == 0, "%s: counters after profiling off", label);
    ts_context_free(c);
    free(plain);
    free(prof);
}

int main(void) {
    char dir[] = "/tmp/ts_profile_test_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    CHECK(ts_step_name(TS_STEP_MOE) && strcmp(ts_step_name(TS_STEP_MOE), "moe") == 0, "step name");
    CHECK(ts_step_name(TS_STEP_COUNT) == NULL && ts_step_name((enum ts_step)-1) == NULL, "step name out of range");

    /* preset, weight type, leading dense-FFN layers (all of them for a dense model: -1) */
    const struct {
        const char *preset, *type;
        int n_dense;
    } cases[] = {{"tiny-qwen2", "q8_0", -1}, {"tiny-deepseek-moe", "q8_0", 1}, {"tiny-deepseek2", "f16", 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256], err[TS_ERR_LEN];
        snprintf(path, sizeof path, "%s/%s.gguf", dir, cases[i].preset);
        ts_synth_params sp = {.preset = cases[i].preset, .type = cases[i].type, .seed = 3, .out_path = path,
                              .overwrite = true, .n_threads = 2};
        if (ts_synth(&sp, err) != 0) {
            printf("FAIL synth %s: %s\n", cases[i].preset, err);
            return 1;
        }
        ts_model *m;
        if (ts_model_load(path, &m, err)) {
            printf("FAIL load %s: %s\n", cases[i].preset, err);
            return 1;
        }
        const int L = m->hp.n_layer, dense = cases[i].n_dense < 0 ? L : cases[i].n_dense;
        check_profile(cases[i].preset, m, dense, L - dense);
        ts_model_free(m);
        remove(path);
    }
    rmdir(dir);
    return check_summary("profile");
}
