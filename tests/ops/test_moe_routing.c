/* MoE routing (ops/moe.c) on hand-computed cases: softmax top-k without normalization
 * (V2-Lite / DeepSeekMoE), ties, group-limited greedy with the group's best expert as its score (V2),
 * noaux_tc (V3: sigmoid, bias only for choosing, top-2-sum group score, normalization, scale), and
 * YaRN correction dims / frequencies (ops/mla.c) against deepseek2.md §4.2, and the batched expert
 * FFN (experts computed once per batch on the rows routed to them) against a per-token double
 * computation, including the shared experts. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops/mla.h"
#include "ops/moe.h"
#include "util/threadpool.h"

#include "check.h"

static void expect_route(const char *label, const ts_moe_router *r, const float *logits, const float *bias,
                         const int *want_idx, const double *want_w) {
    int idx[8];
    float w[8], scratch[64];
    ts_moe_route(r, logits, bias, idx, w, scratch);
    for (int k = 0; k < r->n_used; k++) {
        CHECK(idx[k] == want_idx[k], "%s: slot %d chose expert %d, expected %d", label, k, idx[k], want_idx[k]);
        CHECK(fabs(w[k] - want_w[k]) <= 1e-6 * fabs(want_w[k]) + 1e-7, "%s: slot %d weight %.8g, expected %.8g", label,
              k, (double)w[k], want_w[k]);
    }
}

static double silu(double z) { return z / (1.0 + exp(-z)); }

/* y += scale * SwiGLU(x) for row-major f32 matrices gate/up [F][E], down [E][F], in double. */
static void naive_swiglu(double *y, const float *x, const float *gate, const float *up, const float *down, int E, int F,
                         double scale) {
    double h[16];
    for (int f = 0; f < F; f++) {
        double g = 0, u = 0;
        for (int i = 0; i < E; i++) g += (double)gate[f * E + i] * x[i], u += (double)up[f * E + i] * x[i];
        h[f] = silu(g) * u;
    }
    for (int o = 0; o < E; o++) {
        double acc = 0;
        for (int f = 0; f < F; f++) acc += (double)down[o * F + f] * h[f];
        y[o] += scale * acc;
    }
}

static void check_moe_forward(void) {
    enum { E = 16, F = 8, X = 6, K = 2, N = 5, FS = 8 };
    static float router[X * E], gate[X * F * E], up[X * F * E], down[X * E * F], sg[FS * E], su[FS * E], sd[E * FS];
    static float xn[N * E], out[N * E];
    uint64_t st = 42;
    float *all[] = {router, gate, up, down, sg, su, sd, xn};
    const size_t len[] = {X * E, X * F * E, X * F * E, X * E * F, FS * E, FS * E, E * FS, N * E};
    for (int a = 0; a < 8; a++)
        for (size_t i = 0; i < len[a]; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            all[a][i] = (float)((st >> 40) * 0x1.0p-24) * 2.0f - 1.0f;
        }
    const ts_type_traits *table = ts_type_table(TS_ISA_SCALAR);
    const size_t rE = E * sizeof(float), rF = F * sizeof(float);
    ts_moe_weights w = {
        .gate_inp = {.data = router, .type = TS_TYPE_F32, .n_in = E, .n_out = X, .row_bytes = rE},
        .gate = {.first = {.data = gate, .type = TS_TYPE_F32, .n_in = E, .n_out = F, .row_bytes = rE}, .expert_bytes = F * rE},
        .up = {.first = {.data = up, .type = TS_TYPE_F32, .n_in = E, .n_out = F, .row_bytes = rE}, .expert_bytes = F * rE},
        .down = {.first = {.data = down, .type = TS_TYPE_F32, .n_in = F, .n_out = E, .row_bytes = rF}, .expert_bytes = E * rF},
        .gate_shexp = {.data = sg, .type = TS_TYPE_F32, .n_in = E, .n_out = FS, .row_bytes = rE},
        .up_shexp = {.data = su, .type = TS_TYPE_F32, .n_in = E, .n_out = FS, .row_bytes = rE},
        .down_shexp = {.data = sd, .type = TS_TYPE_F32, .n_in = FS, .n_out = E, .row_bytes = FS * sizeof(float)},
    };
    const ts_moe_router r = {.n_expert = X, .n_used = K, .gating = TS_MOE_SOFTMAX, .scale = 1.0f};
    ts_threadpool *pool;
    ts_err err;
    ts_moe_scratch s;
    if (ts_threadpool_new(2, &pool, &err) || ts_moe_scratch_init(&s, ts_isa_best(), N, E, F, FS, X, K, rE, &err)) {
        CHECK(0, "setup: %s", err.msg);
        return;
    }
    ts_moe_forward(pool, table, &r, &w, &s, xn, N, out);
    for (int t = 0; t < N; t++) {
        const float *x = xn + t * E;
        double logits[X], mx = -1e300, sum = 0, y[E] = {0};
        for (int e = 0; e < X; e++) {
            logits[e] = 0;
            for (int i = 0; i < E; i++) logits[e] += (double)router[e * E + i] * x[i];
            mx = fmax(mx, logits[e]);
        }
        for (int e = 0; e < X; e++) sum += exp(logits[e] - mx);
        bool used[X] = {0};
        for (int k = 0; k < K; k++) {
            int best = -1;
            for (int e = 0; e < X; e++)
                if (!used[e] && (best < 0 || logits[e] > logits[best])) best = e;
            used[best] = true;
            naive_swiglu(y, x, gate + best * F * E, up + best * F * E, down + best * E * F, E, F,
                         exp(logits[best] - mx) / sum);
        }
        naive_swiglu(y, x, sg, su, sd, E, FS, 1.0);
        for (int o = 0; o < E; o++)
            CHECK(fabs(out[t * E + o] - y[o]) <= 1e-5 * (1.0 + fabs(y[o])), "moe forward token %d out %d: %g, expected %g",
                  t, o, (double)out[t * E + o], y[o]);
    }
    ts_moe_scratch_free(&s);
    ts_threadpool_free(pool);
}

int main(void) {
    check_moe_forward();

    /* Softmax top-2, raw probabilities: logits ln(1..4) give probabilities 0.1, 0.2, 0.3, 0.4. */
    {
        const ts_moe_router r = {.n_expert = 4, .n_used = 2, .gating = TS_MOE_SOFTMAX, .scale = 1.0f};
        const float logits[4] = {logf(1), logf(2), logf(3), logf(4)};
        expect_route("softmax top-2", &r, logits, NULL, (const int[]){3, 2}, (const double[]){0.4, 0.3});
    }
    /* Equal scores: the lower expert id wins (as a stable descending sort orders them). */
    {
        const ts_moe_router r = {.n_expert = 4, .n_used = 1, .gating = TS_MOE_SOFTMAX, .scale = 1.0f};
        const float logits[4] = {0.0f, 1.0f, 1.0f, 0.0f};
        const double e = exp(1.0), p1 = e / (2 * e + 2);
        expect_route("tie", &r, logits, NULL, (const int[]){1}, (const double[]){p1});
    }
    /* V2 group-limited greedy: probabilities ∝ {1, 9, 5, 5, 8, .5, 2, 2} in 4 groups of 2, 2 groups
     * kept. Group maxima 9, 5, 8, 2 keep groups 0 and 2 → experts 1 and 4, weights 16·p. (A top-2-sum
     * score, 10 10 8.5 4, would keep groups 0 and 1 and pick expert 2 instead of 4.) */
    {
        const double p[8] = {1, 9, 5, 5, 8, 0.5, 2, 2};
        double total = 0;
        for (int i = 0; i < 8; i++) total += p[i];
        float logits[8];
        for (int i = 0; i < 8; i++) logits[i] = (float)log(p[i]);
        ts_moe_router r = {.n_expert = 8, .n_used = 2, .gating = TS_MOE_SOFTMAX, .n_group = 4, .n_group_used = 2,
                           .group_score = TS_MOE_GROUP_MAX, .scale = 16.0f};
        expect_route("V2 groups (max)", &r, logits, NULL, (const int[]){1, 4},
                     (const double[]){16 * 9 / total, 16 * 8 / total});
        r.group_score = TS_MOE_GROUP_TOP2_SUM;
        expect_route("V2 groups (top-2 sum)", &r, logits, NULL, (const int[]){1, 2},
                     (const double[]){16 * 9 / total, 16 * 5 / total});
        /* No group limit at all: the two best overall. */
        r.n_group = 1;
        expect_route("no groups", &r, logits, NULL, (const int[]){1, 4}, (const double[]){16 * 9 / total, 16 * 8 / total});
    }
    /* V3 noaux_tc: s = sigmoid(u), selection s + b. Selection {.8, .5, .731, .269, .622, .622, .119,
     * .053}; top-2 sums per group 1.3, 1.0, 1.245, .172 keep groups 0 and 2; best there: expert 0
     * and expert 4 (tie with 5 goes to 4). Weights from the unbiased s, normalized, times 2.5.
     * Without the bias, expert 7 (s = .953) would win. */
    {
        const float u[8] = {0.0f, 0.0f, 1.0f, -1.0f, 0.5f, 0.5f, -2.0f, 3.0f};
        const float bias[8] = {0.3f, 0, 0, 0, 0, 0, 0, -0.9f};
        const ts_moe_router r = {.n_expert = 8, .n_used = 2, .gating = TS_MOE_SIGMOID, .n_group = 4, .n_group_used = 2,
                                 .group_score = TS_MOE_GROUP_TOP2_SUM, .normalize = true, .scale = 2.5f};
        const double s0 = 0.5, s4 = 1.0 / (1.0 + exp(-0.5));
        expect_route("V3 noaux_tc", &r, u, bias, (const int[]){0, 4},
                     (const double[]){2.5 * s0 / (s0 + s4), 2.5 * s4 / (s0 + s4)});
        const double s7 = 1.0 / (1.0 + exp(-3.0));
        /* Unbiased: group sums 1.0, 1.0, 1.245, 1.072 keep groups 2 and 3 → experts 7 and 4. */
        expect_route("V3 without bias", &r, u, NULL, (const int[]){7, 4},
                     (const double[]){2.5 * s7 / (s7 + s4), 2.5 * s4 / (s7 + s4)});
    }

    /* YaRN for d = 64, θ = 10000, L0 = 4096, β 32/1: correction dims 10 and 23 (deepseek2.md §4.2);
     * pair 5 keeps its original frequency, pair 30 is divided by 40, pair 16 mixes 6/13 of the way. */
    {
        float lo, hi;
        ts_yarn_corr_dims(64, 4096, 10000.0f, 32.0f, 1.0f, &lo, &hi);
        CHECK(lo == 10.0f && hi == 23.0f, "yarn corr dims %g %g, expected 10 23", (double)lo, (double)hi);
        const ts_yarn y = {.freq_scale = 1.0f / 40.0f, .ext_factor = 1.0f, .corr_low = lo, .corr_high = hi};
        float cs[64];
        const int pos = 3;
        ts_rope_cache_yarn(cs, pos, 64, 10000.0f, &y);
        const int pairs[3] = {5, 16, 30};
        for (int j = 0; j < 3; j++) {
            const int i = pairs[j];
            const double fe = pow(10000.0, -2.0 * i / 64), ramp = fmin(1.0, fmax(0.0, (i - 10.0) / 13.0));
            const double f = fe / 40.0 * ramp + fe * (1.0 - ramp);
            CHECK(fabs(cs[2 * i] - cos(pos * f)) < 2e-6 && fabs(cs[2 * i + 1] - sin(pos * f)) < 2e-6,
                  "yarn pair %d: cos/sin %g %g, expected %g %g", i, (double)cs[2 * i], (double)cs[2 * i + 1], cos(pos * f),
                  sin(pos * f));
        }
    }

    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all MoE routing checks passed\n");
    return 0;
}
