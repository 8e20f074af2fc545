/* The serve scheduler driven directly with tiny synthetic models: truncating a sequence and
 * continuing matches a fresh decode on every architecture (the premise of the prefix cache), the
 * prefix cache gives the same output as a cold run and reports cached tokens, logprobs match an
 * independent log-softmax, json_object replies parse as objects, reasoning tokens are counted, and
 * the statistics add up. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The server's sources are not part of libtiefsee (they are built into the CLI executable), so the
 * test compiles the units it drives; that also gives it the scheduler's static helpers. */
#include "cli/utf8_stream.c"
#include "server/json_constraint.c"
#include "server/scheduler.c"
#include "server/text.c"

static int failures;
#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            failures++;                                                                                                \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

static char tmp_dir[64];

static ts_model *load_preset(const char *preset) {
    char path[256], err[TS_ERR_LEN];
    snprintf(path, sizeof path, "%s/%s.gguf", tmp_dir, preset);
    if (access(path, F_OK) != 0) {
        ts_synth_params sp = {.preset = preset, .type = "f32", .seed = 1, .out_path = path, .n_threads = 2};
        if (ts_synth(&sp, err) != 0) {
            fprintf(stderr, "synth %s: %s\n", preset, err);
            exit(1);
        }
    }
    ts_model *m = NULL;
    if (ts_model_load(path, &m, err) != 0) {
        fprintf(stderr, "load %s: %s\n", preset, err);
        exit(1);
    }
    return m;
}

static ts_context *new_context(ts_model *m, int n_seq, int n_ctx) {
    ts_context_params cp = ts_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_seq_max = n_seq;
    cp.n_threads = 2;
    cp.cache_type = TS_CACHE_F32;
    ts_context *c = NULL;
    char err[TS_ERR_LEN];
    if (ts_context_new(m, &cp, &c, err) != 0) {
        fprintf(stderr, "context: %s\n", err);
        exit(1);
    }
    return c;
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void random_tokens(ts_token *out, int n, int n_vocab, uint64_t *seed) {
    for (int i = 0; i < n; i++)
        out[i] = (ts_token)(200 + rng_next(seed) % (uint64_t)(n_vocab - 200)); /* clear of special tokens */
}

/* Decodes tokens[0..n) into seq from position pos in one batch; logits of every token into out. */
static void decode_run(ts_context *c, int seq, int pos, const ts_token *tokens, int n, float *out) {
    int32_t positions[64], seqs[64];
    bool want[64];
    for (int i = 0; i < n; i++) {
        positions[i] = pos + i;
        seqs[i] = seq;
        want[i] = true;
    }
    ts_batch b = {.n_tokens = n, .tokens = tokens, .pos = positions, .seq = seqs, .want_logits = want};
    char err[TS_ERR_LEN];
    if (ts_decode(c, &b, out, err) != 0) {
        fprintf(stderr, "decode: %s\n", err);
        exit(1);
    }
}

/* ---- 1. continue-after-truncate equals a fresh decode, on every architecture ---------------------- */

static void test_truncate_continue(const char *preset) {
    ts_model *m = load_preset(preset);
    ts_model_info info;
    ts_model_get_info(m, &info);
    ts_context *c = new_context(m, 2, 64);
    int V = info.n_vocab;
    uint64_t seed = 11;
    ts_token a[12], b[6], tail[5];
    random_tokens(a, 12, V, &seed);
    random_tokens(b, 6, V, &seed);
    random_tokens(tail, 5, V, &seed);
    float *scratch = malloc(sizeof(float) * 20 * (size_t)V);
    float *warm = malloc(sizeof(float) * 5 * (size_t)V);
    float *cold = malloc(sizeof(float) * 5 * (size_t)V);
    /* Sequence 0: a, then b one token at a time (as generation does), then forget back to 8 tokens of a
     * and continue with tail. */
    decode_run(c, 0, 0, a, 12, scratch);
    for (int i = 0; i < 6; i++)
        decode_run(c, 0, 12 + i, b + i, 1, scratch);
    ts_seq_truncate(c, 0, 8);
    CHECK(ts_seq_len(c, 0) == 8, "%s: seq_len %d after truncate", preset, ts_seq_len(c, 0));
    decode_run(c, 0, 8, tail, 5, warm);
    /* Sequence 1: a[0..8) and tail from nothing, in the same chunks. */
    decode_run(c, 1, 0, a, 8, scratch);
    decode_run(c, 1, 8, tail, 5, cold);
    double max_diff = 0.0;
    for (size_t i = 0; i < 5 * (size_t)V; i++)
        max_diff = fmax(max_diff, fabs((double)warm[i] - (double)cold[i]));
    CHECK(max_diff == 0.0, "%s: continue-after-truncate differs from fresh by %g", preset, max_diff);
    printf("truncate+continue vs fresh (%s): max |diff| %g\n", preset, max_diff);
    free(scratch);
    free(warm);
    free(cold);
    ts_context_free(c);
    ts_model_free(m);
}

/* ---- scheduler helpers ---------------------------------------------------------------------------- */

typedef struct result {
    char *text;
    int n_generated, n_cached, n_reasoning, n_logprobs;
    token_logprob *logprobs;
    const char *finish_reason;
    bool failed;
} result;

static job *make_job(const ts_token *prompt, int n_prompt, int max_tokens, float temp, uint64_t seed) {
    job *j = job_new();
    j->prompt = malloc((size_t)n_prompt * sizeof *j->prompt);
    memcpy(j->prompt, prompt, (size_t)n_prompt * sizeof *j->prompt);
    j->n_prompt = n_prompt;
    j->gen.max_tokens = max_tokens;
    j->gen.sampling.temp = temp;
    j->gen.sampling.seed = seed;
    return j;
}

static result wait_job(job *j) {
    result r = {0};
    pthread_mutex_lock(&j->mu);
    while (!j->done)
        pthread_cond_wait(&j->changed, &j->mu);
    r.text = strndup(j->text ? j->text : "", j->len);
    r.n_generated = j->n_generated;
    r.n_cached = j->n_cached;
    r.n_reasoning = j->n_reasoning;
    r.n_logprobs = j->n_logprobs;
    if (j->n_logprobs) {
        r.logprobs = malloc((size_t)j->n_logprobs * sizeof *r.logprobs);
        memcpy(r.logprobs, j->logprobs, (size_t)j->n_logprobs * sizeof *r.logprobs);
    }
    r.finish_reason = j->finish_reason;
    r.failed = j->failed;
    if (j->failed)
        fprintf(stderr, "job failed: %s\n", j->error);
    pthread_mutex_unlock(&j->mu);
    job_release(j);
    return r;
}

static result run_job(scheduler *s, job *j) {
    CHECK(scheduler_submit(s, j) == 0, "submit");
    return wait_job(j);
}

static void result_free(result *r) {
    free(r->text);
    free(r->logprobs);
}

static scheduler *start(ts_model *m, ts_context *c, int n_slots) {
    scheduler *s = NULL;
    char err[TS_ERR_LEN];
    if (scheduler_start(m, c, n_slots, 16, &s, err) != 0) {
        fprintf(stderr, "scheduler_start: %s\n", err);
        exit(1);
    }
    return s;
}

/* ---- 2. prefix cache ----------------------------------------------------------------------------- */

static void test_prefix_cache(ts_model *m) {
    ts_model_info info;
    ts_model_get_info(m, &info);
    uint64_t seed = 5;
    ts_token p1[40], p2[40];
    random_tokens(p1, 40, info.n_vocab, &seed);
    memcpy(p2, p1, 24 * sizeof *p1);
    random_tokens(p2 + 24, 16, info.n_vocab, &seed);
    if (p2[24] == p1[24])
        p2[24] = p1[24] + 1;

    /* Cold answers, each from a scheduler with empty caches. */
    result cold1, cold2;
    {
        ts_context *c = new_context(m, 4, 256);
        scheduler *s = start(m, c, 4);
        cold1 = run_job(s, make_job(p1, 40, 24, 0.0f, 1));
        scheduler_drain_and_stop(s);
        ts_context_free(c);
        c = new_context(m, 4, 256);
        s = start(m, c, 4);
        cold2 = run_job(s, make_job(p2, 40, 24, 0.0f, 1));
        scheduler_drain_and_stop(s);
        ts_context_free(c);
    }
    CHECK(cold1.n_cached == 0 && cold2.n_cached == 0, "cold runs report cached tokens");

    ts_context *c = new_context(m, 4, 256);
    scheduler *s = start(m, c, 4);
    result first = run_job(s, make_job(p1, 40, 24, 0.0f, 1));
    result again = run_job(s, make_job(p1, 40, 24, 0.0f, 1));
    result shared = run_job(s, make_job(p2, 40, 24, 0.0f, 1));
    /* A prompt that extends the first answer's whole sequence reuses prompt and generated tokens. */
    CHECK(strcmp(first.text, cold1.text) == 0, "first run differs from cold");
    CHECK(first.n_cached == 0, "first run cached %d", first.n_cached);
    CHECK(strcmp(again.text, cold1.text) == 0, "repeat differs from cold:\n  %s\n  %s", again.text, cold1.text);
    CHECK(again.n_cached == 39, "repeat cached %d, want 39 (all but the last prompt token)", again.n_cached);
    CHECK(strcmp(shared.text, cold2.text) == 0, "shared-prefix prompt differs from cold");
    CHECK(shared.n_cached == 24, "shared prefix cached %d, want 24", shared.n_cached);
    printf("prefix cache: repeat cached %d/40, shared prefix cached %d/40, texts equal cold runs\n", again.n_cached,
           shared.n_cached);

    /* Concurrent jobs on all slots with the cache warm: each equals its cold answer. */
    job *jobs[6];
    for (int k = 0; k < 6; k++)
        jobs[k] = make_job(k % 2 ? p2 : p1, 40, 24, 0.0f, 1);
    for (int k = 0; k < 6; k++)
        CHECK(scheduler_submit(s, jobs[k]) == 0, "submit %d", k);
    int total_cached = first.n_cached + again.n_cached + shared.n_cached;
    for (int k = 0; k < 6; k++) {
        result r = wait_job(jobs[k]);
        CHECK(strcmp(r.text, k % 2 ? cold2.text : cold1.text) == 0, "concurrent job %d differs from cold", k);
        total_cached += r.n_cached;
        result_free(&r);
    }

    /* Statistics: 9 jobs of 40 prompt tokens and 24 generated (max_tokens; a random model rarely ends). */
    scheduler_stats st;
    scheduler_get_stats(s, &st);
    CHECK(st.n_slots == 4 && st.slots_busy == 0 && st.queued == 0, "slots %d busy %d queued %d", st.n_slots,
          st.slots_busy, st.queued);
    CHECK(st.jobs_admitted == 9 && st.jobs_finished == 9, "admitted %llu finished %llu",
          (unsigned long long)st.jobs_admitted, (unsigned long long)st.jobs_finished);
    CHECK(st.prompt_tokens == 9 * 40, "prompt_tokens %llu", (unsigned long long)st.prompt_tokens);
    CHECK(st.prompt_tokens_cached == (uint64_t)total_cached, "cached %llu, jobs said %d",
          (unsigned long long)st.prompt_tokens_cached, total_cached);
    CHECK(st.decode_steps > 0 && st.decode_seconds > 0.0, "steps %llu seconds %g", (unsigned long long)st.decode_steps,
          st.decode_seconds);
    CHECK(st.generated_tokens_per_s > 0.0, "tokens/s %g right after generating", st.generated_tokens_per_s);
    printf("stats: %llu jobs, %llu prompt (%llu cached), %llu generated, %llu steps, %.1f tokens/s\n",
           (unsigned long long)st.jobs_finished, (unsigned long long)st.prompt_tokens,
           (unsigned long long)st.prompt_tokens_cached, (unsigned long long)st.generated_tokens,
           (unsigned long long)st.decode_steps, st.generated_tokens_per_s);
    scheduler_drain_and_stop(s);
    ts_context_free(c);
    result_free(&first);
    result_free(&again);
    result_free(&shared);
    result_free(&cold1);
    result_free(&cold2);
}

/* Every job's token count adds up in generated_tokens (checked exactly, separately from the above). */
static void test_stats_exact(ts_model *m) {
    ts_model_info info;
    ts_model_get_info(m, &info);
    ts_context *c = new_context(m, 2, 128);
    scheduler *s = start(m, c, 2);
    uint64_t seed = 99, generated = 0;
    for (int k = 0; k < 4; k++) {
        ts_token p[10];
        random_tokens(p, 10, info.n_vocab, &seed);
        result r = run_job(s, make_job(p, 10, 5 + k, 1.0f, (uint64_t)k));
        generated += (uint64_t)r.n_generated;
        result_free(&r);
    }
    scheduler_stats st;
    scheduler_get_stats(s, &st);
    CHECK(st.generated_tokens == generated, "generated_tokens %llu, jobs said %llu",
          (unsigned long long)st.generated_tokens, (unsigned long long)generated);
    CHECK(st.prompt_tokens == 40, "prompt_tokens %llu", (unsigned long long)st.prompt_tokens);
    scheduler_drain_and_stop(s);
    ts_context_free(c);
}

/* ---- 3. logprobs ----------------------------------------------------------------------------------- */

static void test_row_log_normalizer(void) {
    float row[8] = {1.0f, 3.0f, -INFINITY, 3.0f, NAN, -2.0f, 0.5f, 2.0f};
    ts_token ids[5];
    float top[5];
    float lse = row_log_normalizer(row, 8, 5, ids, top);
    double sum = 0.0;
    for (int i = 0; i < 8; i++)
        if (i != 2 && i != 4)
            sum += exp((double)row[i]);
    CHECK(fabs(lse - log(sum)) < 1e-5, "log normalizer %g, want %g", (double)lse, log(sum));
    const ts_token want[5] = {1, 3, 7, 0, 6}; /* ties: lower id first */
    for (int k = 0; k < 5; k++)
        CHECK(ids[k] == want[k] && top[k] == row[want[k]], "top %d: id %d, want %d", k, ids[k], want[k]);
    /* Fewer finite entries than asked for: the rest are marked absent. */
    float small[3] = {-INFINITY, 0.0f, -INFINITY};
    float lse_small = row_log_normalizer(small, 3, 2, ids, top);
    CHECK(lse_small == 0.0f && ids[0] == 1 && ids[1] == -1, "sparse row: %g %d %d", (double)lse_small, ids[0], ids[1]);
}

static void test_logprobs(ts_model *m) {
    ts_model_info info;
    ts_model_get_info(m, &info);
    const int V = info.n_vocab;
    uint64_t seed = 3;
    ts_token prompt[12];
    random_tokens(prompt, 12, V, &seed);
    ts_context *c = new_context(m, 2, 128);
    scheduler *s = start(m, c, 2);
    job *j = make_job(prompt, 12, 10, 0.7f, 42);
    j->gen.logprobs = true;
    j->gen.top_logprobs = 5;
    result r = run_job(s, j);
    scheduler_drain_and_stop(s);
    ts_context_free(c);
    CHECK(r.n_logprobs == r.n_generated && r.n_generated > 0, "%d logprobs for %d tokens", r.n_logprobs, r.n_generated);

    /* Recompute every generated token's distribution with a separate context, in double. */
    ts_context *ref = new_context(m, 1, 128);
    float *logits = malloc(sizeof(float) * 12 * (size_t)V);
    decode_run(ref, 0, 0, prompt, 12, logits);
    const float *row = logits + 11 * (size_t)V;
    for (int k = 0; k < r.n_logprobs; k++) {
        const token_logprob *lp = &r.logprobs[k];
        double max = -INFINITY, sum = 0.0;
        for (int i = 0; i < V; i++)
            max = fmax(max, row[i]);
        for (int i = 0; i < V; i++)
            sum += exp(row[i] - max);
        double lse = max + log(sum);
        CHECK(fabs(lp->logprob - (row[lp->token] - lse)) < 1e-4, "token %d: logprob %g, want %g", k,
              (double)lp->logprob, row[lp->token] - lse);
        CHECK(lp->n_top == 5, "n_top %d", lp->n_top);
        for (int t = 0; t < lp->n_top; t++) {
            CHECK(fabs(lp->top_logprob[t] - (row[lp->top_token[t]] - lse)) < 1e-4, "top %d of token %d", t, k);
            CHECK(t == 0 || lp->top_logprob[t] <= lp->top_logprob[t - 1], "top not sorted");
            CHECK(lp->top_logprob[t] <= 0.0f, "positive logprob");
        }
        /* The best alternative is the argmax of the raw row. */
        int best = 0;
        for (int i = 1; i < V; i++)
            if (row[i] > row[best])
                best = i;
        CHECK(lp->top_token[0] == best, "top token %d, argmax %d", lp->top_token[0], best);
        CHECK(lp->logprob <= lp->top_logprob[0] + 1e-6f, "chosen above the best");
        if (k + 1 < r.n_logprobs) {
            decode_run(ref, 0, 12 + k, &lp->token, 1, logits);
            row = logits;
        }
    }
    free(logits);
    ts_context_free(ref);
    result_free(&r);
}

/* ---- 4. json_object -------------------------------------------------------------------------------- */

/* The mask equals feeding every token through the validator, in states along real documents. */
static void test_mask_exact(ts_model *m) {
    json_token_table tt;
    char err[TS_ERR_LEN];
    CHECK(json_token_table_build(&tt, m, err) == 0, "token table: %s", err);
    const char *doc = "{\"key \\u00e9\xC3\xA9\": [1, -2.5e3, true, null, {\"x\": \"y\\\"z\"}], \"b\":false}";
    float *logits = malloc(sizeof(float) * (size_t)tt.n_vocab);
    json_constraint jc;
    json_constraint_init(&jc);
    int states = 0;
    for (size_t i = 0; i <= strlen(doc); i++) {
        for (int t = 0; t < tt.n_vocab; t++)
            logits[t] = 0.0f;
        int allowed = json_constraint_mask(&jc, &tt, logits);
        int brute = 0;
        for (int t = 0; t < tt.n_vocab; t++) {
            json_constraint probe = jc;
            bool ok;
            if (tt.flags[t] & JSONC_TOKEN_EOG)
                ok = json_constraint_complete(&jc);
            else if (tt.flags[t] & JSONC_TOKEN_EMPTY)
                ok = false;
            else
                ok = json_constraint_feed(&probe, (const char *)tt.bytes + tt.offset[t],
                                          tt.offset[t + 1] - tt.offset[t]);
            brute += ok;
            CHECK(ok == (logits[t] == 0.0f), "state %zu token %d: mask %d, validator %d", i, t, logits[t] == 0.0f, ok);
            CHECK(ok == json_constraint_allows(&jc, &tt, (ts_token)t), "allows() disagrees at token %d", t);
        }
        CHECK(allowed == brute && allowed > 0, "state %zu: %d allowed, brute force %d", i, allowed, brute);
        states++;
        if (doc[i])
            CHECK(json_constraint_feed(&jc, doc + i, 1), "doc byte %zu", i);
    }
    free(logits);
    json_token_table_free(&tt);
}

static void test_json_object(ts_model *m) {
    ts_model_info info;
    ts_model_get_info(m, &info);
    ts_context *c = new_context(m, 4, 1024);
    scheduler *s = start(m, c, 4);
    uint64_t seed = 17;
    ts_token prompt[8];
    random_tokens(prompt, 8, info.n_vocab, &seed);
    job *jobs[8];
    for (int k = 0; k < 8; k++) {
        /* Temperature 1 over the whole distribution: the constraint, not the model, shapes the text. */
        jobs[k] = make_job(prompt, 8, 1000, 1.0f, (uint64_t)k + 1);
        jobs[k]->gen.sampling.top_k = 0;
        jobs[k]->gen.sampling.top_p = 1.0f;
        jobs[k]->gen.sampling.min_p = 0.0f;
        jobs[k]->gen.json_object = true;
        CHECK(scheduler_submit(s, jobs[k]) == 0, "submit");
    }
    /* A random model writes long strings (few of its tokens hold a '"'), so some replies reach
     * max_tokens first: those must still be a valid prefix of an object. Every reply that ended by
     * itself must parse as an object, and the seeds are fixed, so the count that did is too. */
    int parsed = 0;
    for (int k = 0; k < 8; k++) {
        result r = wait_job(jobs[k]);
        CHECK(!r.failed, "json job %d failed", k);
        json_constraint jc;
        json_constraint_init(&jc);
        CHECK(json_constraint_feed(&jc, r.text, strlen(r.text)), "seed %d: not a prefix of a JSON object: %s", k + 1,
              r.text);
        if (strcmp(r.finish_reason, "stop") == 0) {
            json_error_t error;
            json_t *v = json_loads(r.text, JSON_ALLOW_NUL, &error);
            CHECK(v && json_is_object(v), "seed %d: not a JSON object (%s): %s", k + 1,
                  v ? "not an object" : error.text, r.text);
            CHECK(json_constraint_complete(&jc), "seed %d: stopped before the object closed", k + 1);
            parsed += v && json_is_object(v);
            if (parsed <= 2)
                printf("json_object seed %d (%d tokens): %.160s\n", k + 1, r.n_generated, r.text);
            json_decref(v);
        } else
            CHECK(strcmp(r.finish_reason, "length") == 0 && r.n_generated == 1000, "seed %d: finish %s after %d", k + 1,
                  r.finish_reason, r.n_generated);
        result_free(&r);
    }
    CHECK(parsed >= 4, "only %d of 8 replies closed their object", parsed);
    printf("json_object: %d/8 replies parse as objects\n", parsed);
    scheduler_drain_and_stop(s);
    ts_context_free(c);
}

/* ---- 5. reasoning tokens --------------------------------------------------------------------------- */

static void test_think_close(void) {
    slot sl;
    memset(&sl, 0, sizeof sl);
    CHECK(!closes_think(&sl, "abc</th", 7), "partial tag");
    CHECK(closes_think(&sl, "ink>", 4), "tag completed across tokens");
    memset(&sl, 0, sizeof sl);
    CHECK(!closes_think(&sl, "<", 1) && !closes_think(&sl, "/", 1) && !closes_think(&sl, "thin", 4), "pieces");
    CHECK(closes_think(&sl, "k>\n\nanswer", 10), "tag split over four tokens");
    memset(&sl, 0, sizeof sl);
    CHECK(!closes_think(&sl, "</thinks", 8) && !closes_think(&sl, "</think", 7), "near misses");
    CHECK(closes_think(&sl, "></think>", 9), "whole tag in one token");
}

static void test_reasoning_count(ts_model *m) {
    ts_model_info info;
    ts_model_get_info(m, &info);
    ts_context *c = new_context(m, 1, 128);
    scheduler *s = start(m, c, 1);
    uint64_t seed = 8;
    ts_token prompt[6];
    random_tokens(prompt, 6, info.n_vocab, &seed);
    job *j = make_job(prompt, 6, 12, 1.0f, 3);
    j->count_reasoning = true;
    result r = run_job(s, j);
    /* A random model does not write "</think>": every generated token is reasoning. */
    CHECK(!strstr(r.text, "</think>") && r.n_reasoning == r.n_generated, "reasoning %d of %d", r.n_reasoning,
          r.n_generated);
    result plain = run_job(s, make_job(prompt, 6, 12, 1.0f, 3));
    CHECK(plain.n_reasoning == 0, "reasoning counted without count_reasoning");
    scheduler_drain_and_stop(s);
    ts_context_free(c);
    result_free(&r);
    result_free(&plain);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/ts-test-scheduler.XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    static const char *const presets[] = {"tiny-llama", "tiny-qwen2", "tiny-deepseek2-lite", "tiny-deepseek3"};
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        test_truncate_continue(presets[i]);
    test_row_log_normalizer();
    test_think_close();
    ts_model *m = load_preset("tiny-qwen2");
    test_prefix_cache(m);
    test_stats_exact(m);
    test_logprobs(m);
    test_mask_exact(m);
    test_json_object(m);
    test_reasoning_count(m);
    ts_model_free(m);
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s.gguf", tmp_dir, presets[i]);
        unlink(path);
    }
    rmdir(tmp_dir);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("scheduler: all checks passed\n");
    return 0;
}
