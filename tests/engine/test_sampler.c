/* Sampler tests: greedy, determinism, top-k/top-p/min-p truncation, temperature and the repeat
 * penalty, checked through empirical frequencies over many seeded draws. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tiefsee.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);                                  \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static ts_sampler_params plain_params(float temp, uint64_t seed) {
    ts_sampler_params p = ts_sampler_default_params();
    p.temp = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.seed = seed;
    return p;
}

/* Draws n times and stores the frequency of each id in freq[n_vocab]. */
static void draw_frequencies(const ts_sampler_params *p, const float *logits, int n_vocab, int n, double *freq) {
    ts_sampler *s = ts_sampler_new(p, n_vocab);
    CHECK(s != NULL, "sampler_new failed");
    if (!s)
        return;
    memset(freq, 0, (size_t)n_vocab * sizeof *freq);
    for (int i = 0; i < n; i++) {
        ts_token t = ts_sampler_sample(s, logits);
        CHECK(t >= 0 && t < n_vocab, "token %d out of range", t);
        if (t >= 0 && t < n_vocab)
            freq[t] += 1.0 / n;
    }
    ts_sampler_free(s);
}

static void test_defaults(void) {
    ts_sampler_params p = ts_sampler_default_params();
    CHECK(fabsf(p.temp - 0.8f) < 1e-6f && p.top_k == 40 && fabsf(p.top_p - 0.95f) < 1e-6f &&
              fabsf(p.min_p - 0.05f) < 1e-6f && p.repeat_penalty == 1.0f && p.repeat_last_n == 64,
          "defaults differ from llama.cpp's");
}

static void test_greedy(void) {
    float logits[6] = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f, -INFINITY};
    ts_sampler_params p = plain_params(0.0f, 1);
    ts_sampler *s = ts_sampler_new(&p, 6);
    for (int i = 0; i < 10; i++)
        CHECK(ts_sampler_sample(s, logits) == 1, "greedy must pick the argmax, lowest id on ties");
    ts_sampler_free(s);

    /* NaN never wins, also in the first place (the greedy fast path starts from logits[0]); with
     * a repeat penalty the penalized argmax loses to the next best. */
    {
        float nan_first[4] = {NAN, 1.0f, NAN, 0.5f};
        ts_sampler_params q = plain_params(0.0f, 1);
        ts_sampler *g = ts_sampler_new(&q, 4);
        CHECK(ts_sampler_sample(g, nan_first) == 1, "greedy must skip NaN logits");
        ts_sampler_free(g);
        float all_nan[3] = {NAN, NAN, NAN};
        g = ts_sampler_new(&q, 3);
        CHECK(ts_sampler_sample(g, all_nan) == 0, "all-NaN logits: the lowest id");
        ts_sampler_free(g);
        q.repeat_penalty = 2.0f;
        g = ts_sampler_new(&q, 6);
        ts_sampler_accept(g, 1);
        ts_sampler_accept(g, 3);
        CHECK(ts_sampler_sample(g, logits) == 4, "greedy with the two best penalized picks the third");
        ts_sampler_free(g);
    }

    /* Long rows (the fast path's 16-lane passes and tails): against a plain first-maximum scan,
     * with NaNs, ties in different lanes, the maximum first, last and in the tail, all -inf. */
    {
        enum { LONG = 1000 };
        static float row[LONG + 17];
        uint32_t x = 12345;
        for (int round = 0; round < 60; round++) {
            const int n = LONG + round % 17;
            for (int i = 0; i < n; i++) {
                x = x * 1664525u + 1013904223u;
                row[i] = (float)(x >> 8) / 16777216.0f * 10.0f - 5.0f;
                if (x % 29 == 0) row[i] = NAN;
                if (round % 5 == 4) row[i] = -INFINITY;
            }
            const int where[] = {0, n - 1, n - 3, 17 * round % n, 5};
            if (round % 5 != 4) {
                row[where[round % 5]] = 7.5f;
                if (round % 3 == 0) row[(where[round % 5] + 33) % n] = 7.5f; /* a tie further on */
            }
            int want = 0;
            float best = -INFINITY;
            for (int i = 0; i < n; i++)
                if (row[i] > best) best = row[i], want = i;
            ts_sampler_params q = plain_params(0.0f, 1);
            ts_sampler *g = ts_sampler_new(&q, n);
            const int got = ts_sampler_sample(g, row);
            CHECK(got == want, "greedy on a row of %d (round %d): %d, want %d", n, round, got, want);
            ts_sampler_free(g);
        }
    }

    /* top-k = 1 at any temperature is greedy too. */
    p = plain_params(1.5f, 7);
    p.top_k = 1;
    s = ts_sampler_new(&p, 6);
    for (int i = 0; i < 100; i++)
        CHECK(ts_sampler_sample(s, logits) == 1, "top-k=1 must equal greedy");
    ts_sampler_free(s);
}

static void test_deterministic(void) {
    enum { V = 50, N = 200 };
    float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = sinf((float)i * 0.7f) * 2.0f;
    ts_sampler_params p = ts_sampler_default_params();
    p.seed = 1234;
    ts_token a[N], b[N], c[N];
    ts_sampler *s1 = ts_sampler_new(&p, V), *s2 = ts_sampler_new(&p, V);
    p.seed = 1235;
    ts_sampler *s3 = ts_sampler_new(&p, V);
    int differ = 0;
    for (int i = 0; i < N; i++) {
        a[i] = ts_sampler_sample(s1, logits);
        b[i] = ts_sampler_sample(s2, logits);
        c[i] = ts_sampler_sample(s3, logits);
        differ += a[i] != c[i];
    }
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed must give the same draws");
    CHECK(differ > 0, "a different seed should give different draws");
    ts_sampler_free(s1);
    ts_sampler_free(s2);
    ts_sampler_free(s3);
}

/* Plain temperature sampling matches softmax(logits / T). */
static void test_temperature_distribution(void) {
    enum { V = 5, N = 200000 };
    float logits[V] = {1.0f, 2.0f, 0.0f, -1.0f, 1.5f};
    double freq[V];
    const float temps[2] = {1.0f, 0.5f};
    for (int t = 0; t < 2; t++) {
        ts_sampler_params p = plain_params(temps[t], 42 + (uint64_t)t);
        draw_frequencies(&p, logits, V, N, freq);
        double z = 0, expect[V];
        for (int i = 0; i < V; i++)
            z += expect[i] = exp(logits[i] / temps[t]);
        for (int i = 0; i < V; i++)
            CHECK(fabs(freq[i] - expect[i] / z) < 0.006, "T=%g id %d: freq %.4f expected %.4f", temps[t], i,
                  freq[i], expect[i] / z);
    }
}

static void test_top_k(void) {
    enum { V = 6, N = 100000 };
    float logits[V] = {0.0f, 1.0f, 2.0f, 3.0f, 0.5f, 2.5f};
    double freq[V];
    ts_sampler_params p = plain_params(1.0f, 9);
    p.top_k = 3; /* keeps ids 3, 5, 2 */
    draw_frequencies(&p, logits, V, N, freq);
    double z = exp(3.0) + exp(2.5) + exp(2.0);
    CHECK(freq[0] == 0 && freq[1] == 0 && freq[4] == 0, "top-k kept a token outside the top 3");
    CHECK(fabs(freq[3] - exp(3.0) / z) < 0.01 && fabs(freq[5] - exp(2.5) / z) < 0.01 &&
              fabs(freq[2] - exp(2.0) / z) < 0.01,
          "top-k renormalised wrong: %.3f %.3f %.3f", freq[3], freq[5], freq[2]);
}

static void test_top_p(void) {
    enum { V = 4, N = 100000 };
    /* probabilities 0.5, 0.25, 0.15, 0.10 */
    float logits[V] = {logf(0.5f), logf(0.25f), logf(0.15f), logf(0.10f)};
    double freq[V];
    ts_sampler_params p = plain_params(1.0f, 11);
    p.top_p = 0.7f; /* 0.5 < 0.7, 0.75 >= 0.7: keep ids 0 and 1 */
    draw_frequencies(&p, logits, V, N, freq);
    CHECK(freq[2] == 0 && freq[3] == 0, "top-p kept a token past the cut");
    CHECK(fabs(freq[0] - 2.0 / 3.0) < 0.01 && fabs(freq[1] - 1.0 / 3.0) < 0.01, "top-p freqs %.3f %.3f", freq[0],
          freq[1]);

    p.top_p = 0.8f; /* 0.75 < 0.8, 0.9 >= 0.8: keep ids 0, 1, 2 */
    draw_frequencies(&p, logits, V, N, freq);
    CHECK(freq[3] == 0 && freq[2] > 0.1, "top-p=0.8 must keep exactly three tokens (%.3f %.3f)", freq[2], freq[3]);
}

static void test_min_p(void) {
    enum { V = 5, N = 100000 };
    /* probabilities 0.4, 0.3, 0.15, 0.1, 0.05; min_p 0.3 -> threshold 0.12: keep ids 0, 1, 2 */
    float logits[V] = {logf(0.4f), logf(0.3f), logf(0.15f), logf(0.1f), logf(0.05f)};
    double freq[V];
    ts_sampler_params p = plain_params(1.0f, 13);
    p.min_p = 0.3f;
    draw_frequencies(&p, logits, V, N, freq);
    CHECK(freq[3] == 0 && freq[4] == 0, "min-p kept a token below min_p * p_max");
    CHECK(fabs(freq[0] - 0.4 / 0.85) < 0.01 && fabs(freq[1] - 0.3 / 0.85) < 0.01 && fabs(freq[2] - 0.15 / 0.85) < 0.01,
          "min-p freqs %.3f %.3f %.3f", freq[0], freq[1], freq[2]);
}

static void test_repeat_penalty(void) {
    float logits[3] = {2.0f, 1.9f, -1.0f};
    ts_sampler_params p = plain_params(0.0f, 1);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 2;
    ts_sampler *s = ts_sampler_new(&p, 3);
    CHECK(ts_sampler_sample(s, logits) == 0, "no history: argmax");
    ts_sampler_accept(s, 0); /* 2.0 / 1.5 = 1.33 < 1.9 */
    CHECK(ts_sampler_sample(s, logits) == 1, "penalised token must lose");
    ts_sampler_accept(s, 1);
    ts_sampler_accept(s, 1); /* window of 2 now holds only id 1: id 0 is back */
    CHECK(ts_sampler_sample(s, logits) == 0, "penalty must only cover the last N tokens");
    ts_sampler_free(s);

    /* Negative logits are multiplied: -1 * 1.5 = -1.5 stays below -1.2. */
    float neg[2] = {-1.0f, -1.2f};
    s = ts_sampler_new(&p, 2);
    ts_sampler_accept(s, 0);
    CHECK(ts_sampler_sample(s, neg) == 1, "negative logit must be multiplied by the penalty");
    ts_sampler_free(s);
}

static void test_large_vocab(void) {
    /* The default chain on a realistic vocabulary stays within the top 40 and is fast enough. */
    enum { V = 150000 };
    float *logits = malloc(V * sizeof *logits);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < V; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        logits[i] = (float)(x % 20000) / 1000.0f;
    }
    ts_sampler_params p = ts_sampler_default_params();
    p.seed = 5;
    ts_sampler *s = ts_sampler_new(&p, V);
    for (int n = 0; n < 200; n++) {
        ts_token t = ts_sampler_sample(s, logits);
        int better = 0;
        for (int i = 0; i < V; i++)
            better += logits[i] > logits[t];
        CHECK(better < 40, "sampled token %d has %d better ones", t, better);
        ts_sampler_accept(s, t);
    }
    ts_sampler_free(s);
    free(logits);
}

static void test_invalid_params(void) {
    ts_sampler_params p = ts_sampler_default_params();
    CHECK(ts_sampler_new(&p, 0) == NULL, "n_vocab 0 must be refused");
    p.repeat_last_n = -1;
    CHECK(ts_sampler_new(&p, 10) == NULL, "negative repeat_last_n must be refused");
}

int main(void) {
    test_defaults();
    test_greedy();
    test_deterministic();
    test_temperature_distribution();
    test_top_k();
    test_top_p();
    test_min_p();
    test_repeat_penalty();
    test_large_vocab();
    test_invalid_params();
    if (failures) {
        fprintf(stderr, "test_sampler: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_sampler: ok\n");
    return 0;
}
