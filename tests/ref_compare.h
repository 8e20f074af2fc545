/* Helpers shared by the tests that compare the engine with the float64 reference
 * shared/tools/dsref.py (tests/arch/test_dense_ref.c, tests/arch/test_moe_ref.c): finding and
 * running the reference, the engine's logits for a token sequence, and max |Δ log p|. */
#ifndef TS_TESTS_REF_COMPARE_H
#define TS_TESTS_REF_COMPARE_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tiefsee.h"

/* dsref.py from $TS_SHARED_DIR/tools or ../shared/tools (relative to the repo root, where ctest
 * runs); NULL if neither exists. */
static inline const char *ref_find_dsref(char *buf, size_t cap) {
    const char *env = getenv("TS_SHARED_DIR");
    if (env) {
        snprintf(buf, cap, "%s/tools/dsref.py", env);
        if (access(buf, R_OK) == 0) return buf;
    }
    snprintf(buf, cap, "../shared/tools/dsref.py");
    if (access(buf, R_OK) == 0) return buf;
    return NULL;
}

/* Runs dsref.py on the tokens (opt: one --opt KEY=VALUE or NULL) and returns its n × n_vocab
 * logits (malloc'd), removing the output file; NULL on failure. */
static inline float *ref_run_dsref(const char *dsref, const char *model, const char *out, const ts_token *toks, int n,
                                   int n_vocab, const char *opt) {
    char cmd[4096];
    size_t used = (size_t)snprintf(cmd, sizeof cmd, "python3 %s %s %s ", dsref, model, out);
    for (int i = 0; i < n && used < sizeof cmd; i++)
        used += (size_t)snprintf(cmd + used, sizeof cmd - used, "%s%d", i ? "," : "", toks[i]);
    if (opt && used < sizeof cmd) snprintf(cmd + used, sizeof cmd - used, " --opt %s", opt);
    if (system(cmd) != 0) {
        fprintf(stderr, "FAIL: %s\n", cmd);
        return NULL;
    }
    const size_t want = (size_t)n * (size_t)n_vocab;
    FILE *fp = fopen(out, "rb");
    if (!fp) return NULL;
    float *v = malloc(want * sizeof *v);
    const size_t got = v ? fread(v, sizeof *v, want, fp) : 0;
    fclose(fp);
    remove(out);
    if (got != want) {
        free(v);
        return NULL;
    }
    return v;
}

/* Largest |log_softmax(a) - log_softmax(b)| over n_rows rows of n_vocab; NaN counts as infinite. */
static inline double ref_max_dlogp(const float *a, const float *b, int n_rows, int n_vocab) {
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
            const double dd = fabs((x[i] - lx) - (y[i] - ly));
            if (!(dd <= worst)) worst = dd == dd ? dd : INFINITY;
        }
    }
    return worst;
}

/* Logits of every position of one sequence (n <= 64): one batch, or one token per ts_decode call
 * with step. Also reports the cache bytes per token when kv_bytes is non-NULL. */
static inline float *ref_engine_logits(ts_model *m, enum ts_cache_type cache, bool step, const ts_token *toks, int n,
                                       int n_vocab, size_t *kv_bytes) {
    enum { MAX_TOK = 64 };
    if (n > MAX_TOK) return NULL;
    ts_context_params p = ts_context_default_params();
    p.n_ctx = MAX_TOK;
    p.n_threads = 2;
    p.cache_type = cache;
    ts_context *c;
    char err[TS_ERR_LEN];
    if (ts_context_new(m, &p, &c, err) != 0) {
        fprintf(stderr, "FAIL: context: %s\n", err);
        return NULL;
    }
    if (kv_bytes) *kv_bytes = ts_context_kv_bytes_per_token(c);
    int32_t pos[MAX_TOK], seq[MAX_TOK];
    bool want[MAX_TOK];
    for (int i = 0; i < n; i++) pos[i] = i, seq[i] = 0, want[i] = true;
    float *logits = malloc((size_t)n * (size_t)n_vocab * sizeof *logits);
    const int chunk = step ? 1 : n;
    for (int i = 0; i < n && logits; i += chunk) {
        ts_batch b = {.n_tokens = chunk, .tokens = toks + i, .pos = pos + i, .seq = seq + i, .want_logits = want + i};
        if (ts_decode(c, &b, logits + (size_t)i * n_vocab, err) != 0) {
            fprintf(stderr, "FAIL: decode: %s\n", err);
            free(logits);
            logits = NULL;
        }
    }
    ts_context_free(c);
    return logits;
}

#endif
