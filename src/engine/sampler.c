/* Token sampler: repeat penalty -> top-k -> top-p -> min-p -> temperature -> random draw.
 *
 * The order and the formulas are llama.cpp's default chain (common/sampling), so a given set of
 * flags means the same thing here as there: top-p and min-p look at the temperature-1
 * distribution of what top-k left, and temperature only reshapes what survives. Every sampler owns
 * its PRNG state (xoshiro256**, seeded through splitmix64); there is no global state, so two
 * samplers with the same seed and inputs draw the same tokens. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tiefsee.h"

typedef struct candidate {
    float logit;
    ts_token id;
} candidate;

struct ts_sampler {
    ts_sampler_params params;
    int n_vocab;
    candidate *cands;      /* scratch, n_vocab entries */
    float *probs;          /* scratch, n_vocab entries */
    unsigned char *seen;   /* scratch for the repeat penalty: one flag per token id */
    ts_token *recent;      /* ring buffer of the last repeat_last_n accepted tokens */
    int recent_cap, recent_len, recent_head;
    uint64_t rng[4];
};

static uint64_t splitmix64_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4]) { return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53; }

ts_sampler_params ts_sampler_default_params(void) {
    ts_sampler_params p = {
        .temp = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .seed = 0xFFFFFFFFu, /* a fixed value; front ends pick a random seed when the user gives none */
    };
    return p;
}

ts_sampler *ts_sampler_new(const ts_sampler_params *p, int n_vocab) {
    if (!p || n_vocab <= 0 || p->repeat_last_n < 0 || p->top_k < 0 || !(p->repeat_penalty > 0.0f) ||
        isnan(p->temp) || isnan(p->top_p) || isnan(p->min_p))
        return NULL;
    ts_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->params = *p;
    s->n_vocab = n_vocab;
    s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
    s->probs = malloc((size_t)n_vocab * sizeof *s->probs);
    s->seen = calloc((size_t)n_vocab, 1);
    s->recent_cap = p->repeat_last_n;
    s->recent = malloc((size_t)(s->recent_cap > 0 ? s->recent_cap : 1) * sizeof *s->recent);
    if (!s->cands || !s->probs || !s->seen || !s->recent) {
        ts_sampler_free(s);
        return NULL;
    }
    uint64_t seed_state = p->seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64_next(&seed_state);
    return s;
}

void ts_sampler_free(ts_sampler *s) {
    if (!s)
        return;
    free(s->cands);
    free(s->probs);
    free(s->seen);
    free(s->recent);
    free(s);
}

void ts_sampler_accept(ts_sampler *s, ts_token t) {
    if (!s || s->recent_cap == 0)
        return;
    s->recent[s->recent_head] = t;
    s->recent_head = (s->recent_head + 1) % s->recent_cap;
    if (s->recent_len < s->recent_cap)
        s->recent_len++;
}

/* Higher logit first; equal logits by lower id, so results never depend on qsort's stability. */
static int candidate_cmp(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->logit > y->logit)
        return -1;
    if (x->logit < y->logit)
        return 1;
    return (x->id > y->id) - (x->id < y->id);
}

static bool candidate_before(const candidate *x, const candidate *y) { return candidate_cmp(x, y) < 0; }

/* Min-heap on "before" order (root = the worst of the kept k), for selecting the top k of n in
 * O(n log k) instead of sorting the whole vocabulary. */
static void heap_sift_down(candidate *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, worst = i;
        if (l < n && candidate_before(&h[worst], &h[l]))
            worst = l;
        if (r < n && candidate_before(&h[worst], &h[r]))
            worst = r;
        if (worst == i)
            return;
        candidate tmp = h[i];
        h[i] = h[worst];
        h[worst] = tmp;
        i = worst;
    }
}

/* Leaves the k best of c[0..n) sorted best-first in c[0..k). */
static void select_top_k(candidate *c, int n, int k) {
    if (k < n) {
        for (int i = k / 2 - 1; i >= 0; i--)
            heap_sift_down(c, k, i);
        for (int i = k; i < n; i++) {
            if (candidate_before(&c[i], &c[0])) {
                c[0] = c[i];
                heap_sift_down(c, k, 0);
            }
        }
    }
    qsort(c, (size_t)k, sizeof *c, candidate_cmp);
}

/* llama.cpp's repeat penalty: every distinct token among the last N accepted ones has its logit
 * divided by the penalty if positive, multiplied if negative (so it always becomes less likely). */
static void apply_repeat_penalty(ts_sampler *s) {
    float penalty = s->params.repeat_penalty;
    if (penalty == 1.0f || s->recent_len == 0)
        return;
    for (int i = 0; i < s->recent_len; i++) {
        ts_token t = s->recent[i];
        if (t < 0 || t >= s->n_vocab || s->seen[t])
            continue;
        s->seen[t] = 1;
        float *l = &s->cands[t].logit; /* cands is still indexed by id here */
        *l = *l > 0.0f ? *l / penalty : *l * penalty;
    }
    for (int i = 0; i < s->recent_len; i++) {
        ts_token t = s->recent[i];
        if (t >= 0 && t < s->n_vocab)
            s->seen[t] = 0;
    }
}

/* Softmax of the first n candidates (sorted best-first) at temperature 1, into probs. */
static void softmax_sorted(const candidate *c, int n, float *probs) {
    double sum = 0.0;
    float max = c[0].logit;
    for (int i = 0; i < n; i++) {
        probs[i] = expf(c[i].logit - max);
        sum += probs[i];
    }
    for (int i = 0; i < n; i++)
        probs[i] = (float)(probs[i] / sum);
}

/* The argmax of n >= 1 logits: NaN never wins, ties keep the lowest id, all -inf/NaN give 0. First
 * the maximum over 16 running lanes (`v > m ? v : m` is one vmaxps per 16 values, with the same
 * NaN rule), then the first index holding it: two simple passes instead of a loop with a
 * data-dependent branch per value (152k logits per sequence and step for Qwen's vocabulary). */
static int greedy_argmax(const float *logits, int n) {
    enum { LANES = 16 };
    float lane_max[LANES];
    for (int j = 0; j < LANES; j++) lane_max[j] = -INFINITY;
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            const float v = logits[i + j];
            lane_max[j] = v > lane_max[j] ? v : lane_max[j];
        }
    float best_logit = -INFINITY;
    for (int j = 0; j < LANES; j++) best_logit = lane_max[j] > best_logit ? lane_max[j] : best_logit;
    for (; i < n; i++) best_logit = logits[i] > best_logit ? logits[i] : best_logit;
    if (best_logit == -INFINITY) return 0;
    for (i = 0; i < n; i++)
        if (logits[i] == best_logit) return i;
    return 0; /* not reached */
}

ts_token ts_sampler_sample(ts_sampler *s, const float *logits) {
    const ts_sampler_params *p = &s->params;
    int n = s->n_vocab;
    if (p->temp <= 0.0f && (p->repeat_penalty == 1.0f || s->recent_len == 0)) {
        /* Greedy with nothing to penalize: the argmax of the logits themselves, without building
         * the candidate list (a server samples every sequence of every step this way). Same rule
         * as below: NaN never wins, ties keep the lowest id. */
        return greedy_argmax(logits, n);
    }
    for (int i = 0; i < n; i++) {
        /* NaN would poison every comparison below; treat it as impossible. */
        s->cands[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
        s->cands[i].id = i;
    }
    apply_repeat_penalty(s);

    if (p->temp <= 0.0f) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (s->cands[i].logit > s->cands[best].logit)
                best = i; /* strict: ties keep the lowest id */
        return best;
    }

    /* top-k (0 = off) also puts the survivors in best-first order, which top-p needs. */
    int kept = (p->top_k > 0 && p->top_k < n) ? p->top_k : n;
    select_top_k(s->cands, n, kept);
    if (s->cands[0].logit == -INFINITY)
        return s->cands[0].id; /* nothing is possible; the lowest id is as good as any */

    if (p->top_p < 1.0f) {
        softmax_sorted(s->cands, kept, s->probs);
        double cum = 0.0;
        for (int i = 0; i < kept; i++) {
            cum += s->probs[i];
            if (cum >= p->top_p) { /* keep the token that crosses p, as llama.cpp does */
                kept = i + 1;
                break;
            }
        }
    }

    if (p->min_p > 0.0f && p->min_p <= 1.0f) {
        /* p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p); the best always stays. */
        float threshold = s->cands[0].logit + logf(p->min_p);
        int i = 1;
        while (i < kept && s->cands[i].logit >= threshold)
            i++;
        kept = i;
    }

    double sum = 0.0;
    float max = s->cands[0].logit;
    for (int i = 0; i < kept; i++) {
        s->probs[i] = expf((s->cands[i].logit - max) / p->temp);
        sum += s->probs[i];
    }
    double r = rng_uniform(s->rng) * sum;
    double cum = 0.0;
    for (int i = 0; i < kept; i++) {
        cum += s->probs[i];
        if (r < cum)
            return s->cands[i].id;
    }
    return s->cands[kept - 1].id; /* r landed on the rounding slack at the very top */
}
