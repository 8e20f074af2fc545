/* ts_context / ts_decode: batch prefill equals token-by-token decode, interleaved sequences equal
 * each sequence alone, truncation, thread-count independence, batch validation errors, n_ctx = 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/context.h"
#include "model/tiny_model.h"
#include "tiefsee.h"

#include "check.h"
#include "engine/test_ctx.h"

#define MAX_TOK 64

static ts_context *new_ctx(ts_model *m, int n_seq, int n_threads, enum ts_cache_type ct, int n_batch) {
    ts_context_params p = ts_context_default_params();
    p.n_ctx = 128;
    p.n_seq_max = n_seq;
    p.n_threads = n_threads;
    p.cache_type = ct;
    p.n_batch = n_batch;
    return test_context_new(m, &p);
}

/* Decodes toks[0..n) of sequence `seq` starting at position pos0, all logits, in one batch. */
static int decode_all(ts_context *c, int seq, int pos0, const ts_token *toks, int n, float *logits) {
    int32_t pos[MAX_TOK], sq[MAX_TOK];
    bool want[MAX_TOK];
    for (int i = 0; i < n; i++) pos[i] = pos0 + i, sq[i] = seq, want[i] = true;
    ts_batch b = {.n_tokens = n, .tokens = toks, .pos = pos, .seq = sq, .want_logits = want};
    char err[TS_ERR_LEN];
    int rc = ts_decode(c, &b, logits, err);
    if (rc) printf("decode: %s\n", err);
    return rc;
}

static float max_abs_diff(const float *a, const float *b, size_t n) {
    float worst = 0;
    for (size_t i = 0; i < n; i++) {
        const float d = fabsf(a[i] - b[i]);
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

static void test_batch_equals_steps(ts_model *m, enum ts_cache_type ct, const char *label) {
    const int V = m->hp.n_vocab, n = 20;
    ts_token toks[MAX_TOK];
    for (int i = 0; i < n; i++) toks[i] = (ts_token)((i * 37 + 11) % V);
    float *batch = malloc((size_t)n * V * sizeof(float)), *steps = malloc((size_t)n * V * sizeof(float));
    float *threads1 = malloc((size_t)n * V * sizeof(float)), *last = malloc((size_t)V * sizeof(float));

    ts_context *c = new_ctx(m, 1, 3, ct, 64);
    CHECK(decode_all(c, 0, 0, toks, n, batch) == 0, "batch decode");
    CHECK(ts_seq_len(c, 0) == n, "seq_len after batch = %d", ts_seq_len(c, 0));
    ts_context_free(c);

    c = new_ctx(m, 1, 2, ct, 1);
    for (int i = 0; i < n; i++) CHECK(decode_all(c, 0, i, &toks[i], 1, steps + (size_t)i * V) == 0, "step %d", i);
    ts_context_free(c);
    const float d = max_abs_diff(batch, steps, (size_t)n * V);
    printf("%s: batch vs one-token steps: max |dlogit| = %g\n", label, (double)d);
    CHECK(d <= 1e-5f, "%s batch vs steps differ by %g", label, (double)d);

    c = new_ctx(m, 1, 1, ct, 64);
    CHECK(decode_all(c, 0, 0, toks, n, threads1) == 0, "1-thread decode");
    ts_context_free(c);
    const float dt = max_abs_diff(batch, threads1, (size_t)n * V);
    CHECK(dt == 0.0f, "%s: 3 threads vs 1 thread differ by %g (rows are split, sums are not)", label, (double)dt);

    /* want_logits NULL: only the last token's row, equal to the full batch's last row. */
    c = new_ctx(m, 1, 2, ct, 64);
    int32_t pos[MAX_TOK], sq[MAX_TOK];
    for (int i = 0; i < n; i++) pos[i] = i, sq[i] = 0;
    ts_batch b = {.n_tokens = n, .tokens = toks, .pos = pos, .seq = sq, .want_logits = NULL};
    char err[TS_ERR_LEN];
    CHECK(ts_decode(c, &b, last, err) == 0, "decode last-only: %s", err);
    CHECK(max_abs_diff(last, batch + (size_t)(n - 1) * V, (size_t)V) == 0.0f, "last-only row differs");

    /* Truncation: forget positions >= 8 and continue with other tokens; must equal a fresh run. */
    ts_seq_truncate(c, 0, 8);
    CHECK(ts_seq_len(c, 0) == 8, "seq_len after truncate = %d", ts_seq_len(c, 0));
    ts_token alt[MAX_TOK];
    for (int i = 0; i < 6; i++) alt[i] = (ts_token)((i * 13 + 5) % V);
    float *cont = malloc((size_t)6 * V * sizeof(float)), *fresh = malloc((size_t)14 * V * sizeof(float));
    CHECK(decode_all(c, 0, 8, alt, 6, cont) == 0, "decode after truncate");
    ts_context_free(c);
    ts_token joined[MAX_TOK];
    memcpy(joined, toks, 8 * sizeof(ts_token));
    memcpy(joined + 8, alt, 6 * sizeof(ts_token));
    c = new_ctx(m, 1, 2, ct, 64);
    CHECK(decode_all(c, 0, 0, joined, 14, fresh) == 0, "fresh decode");
    ts_context_free(c);
    CHECK(max_abs_diff(cont, fresh + (size_t)8 * V, (size_t)6 * V) == 0.0f, "truncate+continue differs from fresh run");
    free(cont);
    free(fresh);
    free(batch);
    free(steps);
    free(threads1);
    free(last);
}

/* Three sequences of different lengths decoded interleaved in two batches versus each alone. */
static void test_multi_sequence(ts_model *m, enum ts_cache_type ct) {
    const int V = m->hp.n_vocab;
    const int len[3] = {9, 14, 5};
    ts_token toks[3][MAX_TOK];
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < len[s]; i++) toks[s][i] = (ts_token)((s * 41 + i * 7 + 3) % V);
    float *alone[3];
    for (int s = 0; s < 3; s++) {
        alone[s] = malloc((size_t)len[s] * V * sizeof(float));
        ts_context *c = new_ctx(m, 1, 2, ct, 64);
        CHECK(decode_all(c, 0, 0, toks[s], len[s], alone[s]) == 0, "alone %d", s);
        ts_context_free(c);
    }
    /* Batch 1: round-robin over sequences up to position 4; batch 2: the rest, in reverse sequence
     * order, so each batch mixes sequences and no sequence is contiguous. Sequence ids 0, 2, 3 of
     * n_seq_max 4 (one slot unused). */
    const int ids[3] = {0, 2, 3};
    ts_context *c = new_ctx(m, 4, 3, ct, 64);
    int done[3] = {0, 0, 0};
    for (int phase = 0; phase < 2; phase++) {
        ts_token bt[MAX_TOK];
        int32_t bp[MAX_TOK], bs[MAX_TOK], who[MAX_TOK];
        bool want[MAX_TOK];
        int n = 0;
        for (int round = 0; round < MAX_TOK; round++) {
            for (int k = 0; k < 3; k++) {
                const int s = phase == 0 ? k : 2 - k;
                const int limit = phase == 0 ? (len[s] < 4 ? len[s] : 4) : len[s];
                if (done[s] < limit) {
                    bt[n] = toks[s][done[s]];
                    bp[n] = done[s];
                    bs[n] = ids[s];
                    who[n] = s;
                    want[n] = true;
                    n++;
                    done[s]++;
                }
            }
        }
        float *out = malloc((size_t)n * V * sizeof(float));
        ts_batch b = {.n_tokens = n, .tokens = bt, .pos = bp, .seq = bs, .want_logits = want};
        char err[TS_ERR_LEN];
        CHECK(ts_decode(c, &b, out, err) == 0, "interleaved decode: %s", err);
        for (int i = 0; i < n; i++) {
            const float d = max_abs_diff(out + (size_t)i * V, alone[who[i]] + (size_t)bp[i] * V, (size_t)V);
            CHECK(d == 0.0f, "sequence %d position %d: interleaved differs from alone by %g", who[i], bp[i], (double)d);
        }
        free(out);
    }
    for (int s = 0; s < 3; s++) CHECK(ts_seq_len(c, ids[s]) == len[s], "seq_len(%d)", ids[s]);
    CHECK(ts_seq_len(c, 1) == 0, "unused sequence has positions");
    ts_context_free(c);
    for (int s = 0; s < 3; s++) free(alone[s]);
    printf("multi-sequence (%s cache): interleaved == alone\n", ct == TS_CACHE_F16 ? "F16" : "F32");
}

static void expect_decode_error(ts_context *c, ts_token tok, int pos, int seq, const char *needle) {
    float *logits = malloc(4096 * sizeof(float));
    ts_batch b = {.n_tokens = 1, .tokens = &tok, .pos = &pos, .seq = &seq, .want_logits = NULL};
    char err[TS_ERR_LEN] = "";
    const int before = seq >= 0 && seq < c->params.n_seq_max ? ts_seq_len(c, seq) : -1;
    CHECK(ts_decode(c, &b, logits, err) != 0, "expected an error containing '%s'", needle);
    CHECK(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
    if (before >= 0) CHECK(ts_seq_len(c, seq) == before, "failed decode changed seq_len");
    free(logits);
}

static void test_errors(ts_model *m) {
    ts_context *c = new_ctx(m, 2, 1, TS_CACHE_F16, 4);
    expect_decode_error(c, 3, 1, 0, "expected 0");
    expect_decode_error(c, 3, 0, 2, "out of range (n_seq_max 2)");
    expect_decode_error(c, (ts_token)m->hp.n_vocab, 0, 0, "out of range (n_vocab");
    expect_decode_error(c, -1, 0, 0, "out of range");
    ts_token toks[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int32_t pos[8], seq[8];
    for (int i = 0; i < 8; i++) pos[i] = i, seq[i] = 0;
    ts_batch b = {.n_tokens = 8, .tokens = toks, .pos = pos, .seq = seq, .want_logits = NULL};
    char err[TS_ERR_LEN] = "";
    float *logits = malloc((size_t)m->hp.n_vocab * sizeof(float));
    CHECK(ts_decode(c, &b, logits, err) != 0 && strstr(err, "exceeds n_batch 4"), "n_batch: '%s'", err);
    /* Duplicate position of one sequence within a batch. */
    pos[1] = 0;
    b.n_tokens = 2;
    CHECK(ts_decode(c, &b, logits, err) != 0 && strstr(err, "expected 1"), "duplicate position: '%s'", err);
    ts_context_free(c);

    /* Position beyond n_ctx. */
    ts_context_params p = ts_context_default_params();
    p.n_ctx = 3;
    p.n_threads = 1;
    CHECK(ts_context_new(m, &p, &c, err) == 0, "ctx: %s", err);
    for (int i = 0; i < 3; i++) pos[i] = i;
    b.n_tokens = 3;
    b.pos = pos;
    CHECK(ts_decode(c, &b, logits, err) == 0, "3 tokens fit n_ctx 3: %s", err);
    expect_decode_error(c, 1, 3, 0, "beyond the context size 3");
    ts_context_free(c);
    free(logits);
}

static void test_context_sizes(ts_model *m) {
    ts_context_params p = ts_context_default_params();
    p.n_threads = 1;
    ts_context *c;
    char err[TS_ERR_LEN];
    CHECK(ts_context_new(m, &p, &c, err) == 0, "auto n_ctx: %s", err);
    CHECK(ts_context_n_ctx(c) == m->hp.n_ctx_train, "auto n_ctx %d, model's %d (tiny model fits)", ts_context_n_ctx(c),
          m->hp.n_ctx_train);
    const size_t expect = (size_t)m->hp.n_layer * 2 * m->hp.n_head_kv * m->hp.head_dim * 2;
    CHECK(ts_context_kv_bytes_per_token(c) == expect, "kv bytes/token %zu, expected %zu", ts_context_kv_bytes_per_token(c),
          expect);
    ts_context_free(c);
    p.cache_type = TS_CACHE_F32;
    p.n_ctx = 16;
    CHECK(ts_context_new(m, &p, &c, err) == 0, "f32 ctx: %s", err);
    CHECK(ts_context_kv_bytes_per_token(c) == expect * 2, "f32 kv bytes/token");
    CHECK(ts_context_n_ctx(c) == 16, "explicit n_ctx");
    ts_context_free(c);
    p.n_ctx = -1;
    CHECK(ts_context_new(m, &p, &c, err) != 0, "negative n_ctx accepted");
}

int main(void) {
    char dir[] = "/tmp/ts_ctx_test_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char path[256];

    tiny_spec sp = tiny_default("llama");
    sp.n_head = 8, sp.n_head_kv = 2, sp.n_layer = 2;
    snprintf(path, sizeof path, "%s/gqa.gguf", dir);
    if (tiny_write(&sp, path)) return 1;
    ts_model *m;
    char err[TS_ERR_LEN];
    if (ts_model_load(path, &m, err)) {
        printf("load: %s\n", err);
        return 1;
    }
    test_batch_equals_steps(m, TS_CACHE_F32, "llama-gqa f32 cache");
    test_batch_equals_steps(m, TS_CACHE_F16, "llama-gqa f16 cache");
    test_multi_sequence(m, TS_CACHE_F16);
    test_errors(m);
    test_context_sizes(m);
    ts_model_free(m);
    remove(path);

    tiny_spec q = tiny_default("qwen2");
    q.n_head = 4, q.n_head_kv = 2, q.wtype = TS_TYPE_F16;
    snprintf(path, sizeof path, "%s/qwen2.gguf", dir);
    if (tiny_write(&q, path)) return 1;
    if (ts_model_load(path, &m, err)) {
        printf("load: %s\n", err);
        return 1;
    }
    test_batch_equals_steps(m, TS_CACHE_F16, "qwen2 f16 weights");
    test_multi_sequence(m, TS_CACHE_F32);
    ts_model_free(m);
    remove(path);
    rmdir(dir);
    return check_summary("context");
}
