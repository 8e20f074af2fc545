/* Ops against straightforward double-precision references: thread pool, RMSNorm, softmax, SwiGLU,
 * RoPE (NORM and NEOX, freq factors, linear scaling), matmul (F32 and F16 weights, several threads),
 * attention (F32 and F16 caches). */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "util/fp16.h"
#include "util/threadpool.h"

#include "check.h"

static uint64_t rng = 12345;
static float urand(void) { /* test-local PRNG state: fine in a test executable */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * 0x1.0p-24) * 2.0f - 1.0f;
}

typedef struct count_job {
    atomic_long total;
    long per_thread[8];
} count_job;

static void count_task(void *arg, int ith, int nth) {
    count_job *j = arg;
    long b, e;
    ts_split_range(1000, ith, nth, &b, &e);
    j->per_thread[ith] += e - b;
    atomic_fetch_add(&j->total, e - b);
}

static void test_threadpool(void) {
    for (int n = 1; n <= 4; n++) {
        ts_threadpool *p;
        ts_err err;
        CHECK(ts_threadpool_new(n, &p, &err) == 0, "pool %d", n);
        count_job j;
        memset(&j, 0, sizeof j);
        atomic_init(&j.total, 0);
        for (int r = 0; r < 2000; r++) ts_threadpool_run(p, count_task, &j);
        CHECK(atomic_load(&j.total) == 2000L * 1000, "pool %d total %ld", n, atomic_load(&j.total));
        long sum = 0;
        for (int i = 0; i < n; i++) {
            sum += j.per_thread[i];
            CHECK(j.per_thread[i] >= 2000L * (1000 / n), "thread %d of %d did %ld", i, n, j.per_thread[i]);
        }
        CHECK(sum == 2000L * 1000, "per-thread sum");
        ts_threadpool_free(p);
    }
    ts_threadpool *p;
    ts_err err;
    CHECK(ts_threadpool_new(0, &p, &err) != 0, "0 threads accepted");
    /* Split ranges cover [0, n) exactly, in order. */
    for (int nth = 1; nth <= 7; nth++) {
        long expect = 0;
        for (int i = 0; i < nth; i++) {
            long b, e;
            ts_split_range(10, i, nth, &b, &e);
            CHECK(b == expect && e >= b, "split %d/%d", i, nth);
            expect = e;
        }
        CHECK(expect == 10, "split end %d", nth);
    }
}

static void test_rows(void) {
    enum { N = 200 };
    float x[N], w[N], y[N];
    for (int i = 0; i < N; i++) x[i] = urand() * 3, w[i] = 1 + urand() * 0.5f;
    ts_rmsnorm(y, x, w, N, 1e-6f);
    double ss = 0;
    for (int i = 0; i < N; i++) ss += (double)x[i] * x[i];
    const double inv = 1.0 / sqrt(ss / N + 1e-6);
    for (int i = 0; i < N; i++) CHECK(fabs(y[i] - x[i] * inv * w[i]) <= 1e-5 * fabs(x[i] * inv * w[i]) + 1e-7, "rmsnorm %d", i);

    float s[N];
    for (int i = 0; i < N; i++) s[i] = x[i] * 4;
    memcpy(y, s, sizeof s);
    ts_softmax(y, N, 0.5f);
    double mx = -1e30, z = 0;
    for (int i = 0; i < N; i++) mx = fmax(mx, 0.5 * s[i]);
    for (int i = 0; i < N; i++) z += exp(0.5 * s[i] - mx);
    double total = 0;
    for (int i = 0; i < N; i++) {
        const double p = exp(0.5 * s[i] - mx) / z;
        CHECK(fabs(y[i] - p) <= 1e-6 * p + 1e-9, "softmax %d: %g vs %g", i, (double)y[i], p);
        total += y[i];
    }
    CHECK(fabs(total - 1) < 1e-5, "softmax sums to %g", total);

    float g[N];
    memcpy(g, x, sizeof g);
    ts_swiglu(g, w, N);
    for (int i = 0; i < N; i++) {
        const double e = x[i] / (1 + exp(-(double)x[i])) * w[i];
        CHECK(fabs(g[i] - e) <= 1e-6 * fabs(e) + 1e-7, "swiglu %d", i);
    }
}

/* SwiGLU by every SIMD kernel this CPU runs: bit for bit the scalar ts_swiglu (lengths with and
 * without tails; ordinary values, both exp cut-offs, zeros, infinities, NaN), and ts_swiglu_rows
 * through the pool equal to row-by-row; the scalar within 2e-6 of the float64 formula. */
static void test_swiglu_kernels(ts_threadpool *pool) {
    enum { N = 1000 };
    static float g[N], up[N], want[N], got[N];
    for (int i = 0; i < N; i++) {
        g[i] = 12.0f * urand() + (i % 7 == 0 ? 80.0f * urand() : 0.0f);
        up[i] = urand();
    }
    const float special[] = {0.0f, -0.0f, 87.3f, -87.3f, 87.4f, -87.4f, 88.8f, -88.8f, 104.0f, -104.0f, 1e30f, -1e30f,
                             INFINITY, -INFINITY, NAN, 1e-30f, -1e-30f};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) g[3 * i] = special[i];
    memcpy(want, g, sizeof g);
    ts_swiglu(want, up, N);
    int off = 0;
    for (int i = 0; i < N; i++) {
        if (!isfinite(g[i]) || fabsf(g[i]) > 80.0f) continue;
        const double e = g[i] / (1 + exp(-(double)g[i])) * up[i];
        off += !(fabs(want[i] - e) <= 2e-6 * fabs(e) + 1e-30);
    }
    CHECK(off == 0, "scalar swiglu: %d values off the float64 formula", off);
    CHECK(want[0] == 0.0f && want[3 * 8] == 104.0f * up[3 * 8] && fabsf(want[3 * 9]) < 1e-35f && isnan(want[3 * 14]) &&
              want[3 * 12] == INFINITY * up[3 * 12],
          "swiglu special values: %g %g %g %g %g", (double)want[0], (double)want[24], (double)want[27], (double)want[42],
          (double)want[36]);
    for (int isa = 0; isa < TS_ISA_COUNT; isa++) {
        if (!ts_isa_supported((enum ts_isa)isa)) continue;
        for (int n = N; n > N - 17; n--) {
            memcpy(got, g, sizeof g);
            ts_swiglu_isa((enum ts_isa)isa, got, up, n);
            CHECK(memcmp(got, want, (size_t)n * sizeof *got) == 0, "%s swiglu (n=%d) differs from the scalar",
                  ts_isa_name((enum ts_isa)isa), n);
        }
    }
    static float rows_g[40 * 1000];
    static float rows_up[40 * 1000];
    for (int r = 0; r < 40; r++) {
        memcpy(rows_g + r * N, g, sizeof g);
        memcpy(rows_up + r * N, up, sizeof up);
    }
    ts_swiglu_rows(pool, ts_isa_best(), rows_g, rows_up, 40, N);
    int same = 1;
    for (int r = 0; r < 40; r++) same &= memcmp(rows_g + r * N, want, sizeof want) == 0;
    CHECK(same, "swiglu rows through the pool differ from ts_swiglu");
}

static void test_rope(void) {
    enum { HEADS = 3, D = 16 };
    float ff[D / 2];
    for (int i = 0; i < D / 2; i++) ff[i] = 1 + i * 0.7f;
    for (int mode = 0; mode < 2; mode++) {
        for (int variant = 0; variant < 2; variant++) {
            const int pos = 77;
            const float base = 10000.0f, scale = variant ? 0.25f : 1.0f;
            const float *factors = variant ? ff : NULL;
            float x[HEADS * D], y[HEADS * D], cs[D];
            for (int i = 0; i < HEADS * D; i++) x[i] = urand();
            memcpy(y, x, sizeof x);
            ts_rope_cache(cs, pos, D, base, scale, factors);
            ts_rope_apply(y, HEADS, D, D, cs, mode ? TS_ROPE_NEOX : TS_ROPE_NORM);
            for (int h = 0; h < HEADS; h++) {
                for (int i = 0; i < D / 2; i++) {
                    const double theta = pos * scale * pow(base, -2.0 * i / D) / (factors ? factors[i] : 1.0);
                    const int a = h * D + (mode ? i : 2 * i), b = h * D + (mode ? i + D / 2 : 2 * i + 1);
                    const double ea = x[a] * cos(theta) - x[b] * sin(theta);
                    const double eb = x[a] * sin(theta) + x[b] * cos(theta);
                    CHECK(fabs(y[a] - ea) < 2e-5 && fabs(y[b] - eb) < 2e-5, "rope mode %d variant %d head %d pair %d", mode,
                          variant, h, i);
                }
            }
        }
    }
    /* Position 0 is the identity. */
    float cs[D];
    ts_rope_cache(cs, 0, D, 10000.0f, 1.0f, NULL);
    for (int i = 0; i < D / 2; i++) CHECK(cs[2 * i] == 1.0f && cs[2 * i + 1] == 0.0f, "rope pos 0");
}

/* N_IN x N_OUT weights, T tokens. A long row (16384 f32 = 64 KiB) makes the token tile smaller than
 * the batch, so the tiled loop is exercised too. */
static void test_matmul(ts_threadpool *pool, const ts_type_traits *table, const int N_IN, const int N_OUT, const int T) {
    float *w32 = malloc(sizeof(float) * N_OUT * N_IN), *x = malloc(sizeof(float) * T * N_IN);
    float *out = malloc(sizeof(float) * T * N_OUT);
    ts_f16 *w16 = malloc(sizeof(ts_f16) * N_OUT * N_IN);
    for (int i = 0; i < N_OUT * N_IN; i++) w32[i] = urand(), w16[i] = ts_f32_to_f16(w32[i]);
    for (int i = 0; i < T * N_IN; i++) x[i] = urand();
    for (int type = 0; type < 2; type++) {
        ts_matrix m = {.data = type ? (const void *)w16 : (const void *)w32, .type = type ? TS_TYPE_F16 : TS_TYPE_F32,
                       .n_in = N_IN, .n_out = N_OUT, .row_bytes = ts_row_size(type ? TS_TYPE_F16 : TS_TYPE_F32, N_IN)};
        const int vdt = table[m.type].vec_dot_type;
        CHECK(vdt == m.type, "vec_dot_type of %s", table[m.type].name);
        const size_t rb = ts_row_size(vdt, N_IN);
        unsigned char *conv = malloc(T * rb);
        ts_convert_rows(pool, table, vdt, x, N_IN, N_IN, T, conv, rb);
        ts_act a = {.data = conv, .type = vdt, .row_bytes = rb, .n_rows = T};
        ts_matmul(pool, table, &m, &a, out, N_OUT);
        for (int t = 0; t < T; t++) {
            for (int r = 0; r < N_OUT; r++) {
                double e = 0, sum_abs = 0;
                for (int i = 0; i < N_IN; i++) {
                    const double wv = type ? ts_f16_to_f32(w16[r * N_IN + i]) : w32[r * N_IN + i];
                    /* F16 weights: ggml rounds the activations to f16 too. */
                    const double xv = type ? ts_f16_to_f32(ts_f32_to_f16(x[t * N_IN + i])) : x[t * N_IN + i];
                    e += wv * xv;
                    sum_abs += fabs(wv * xv);
                }
                /* f32 accumulation error grows with the row length; a wrong row or token is off by O(1). */
                CHECK(fabs(out[t * N_OUT + r] - e) <= 1e-6 * sum_abs + 1e-6, "matmul %s t %d r %d: %g vs %g",
                      table[m.type].name, t, r, (double)out[t * N_OUT + r], e);
            }
        }
        free(conv);
    }
    free(w32);
    free(x);
    free(out);
    free(w16);
}

static void test_attention(const ts_type_traits *table) {
    enum { D = 16, KVH = 2, NKV = 9 };
    const size_t stride = KVH * D;
    float k32[NKV * KVH * D], v32[NKV * KVH * D], q[D], out[D], scratch[NKV + D];
    ts_f16 k16[NKV * KVH * D], v16[NKV * KVH * D];
    for (int i = 0; i < NKV * KVH * D; i++) {
        k32[i] = urand() * 2, v32[i] = urand();
        k16[i] = ts_f32_to_f16(k32[i]), v16[i] = ts_f32_to_f16(v32[i]);
    }
    for (int i = 0; i < D; i++) q[i] = urand() * 2;
    const float scale = 1.0f / sqrtf(D);
    for (int f16 = 0; f16 < 2; f16++) {
        for (int kvh = 0; kvh < KVH; kvh++) {
            ts_attention_head(table, out, q, f16 ? (const void *)k16 : (const void *)k32,
                              f16 ? (const void *)v16 : (const void *)v32, f16 ? TS_TYPE_F16 : TS_TYPE_F32, stride,
                              (size_t)kvh * D, NKV, D, scale, scratch);
            double s[NKV], mx = -1e30, z = 0;
            for (int t = 0; t < NKV; t++) {
                s[t] = 0;
                for (int i = 0; i < D; i++) {
                    const double qi = q[i]; /* q stays f32 also with an F16 cache */
                    const double ki = f16 ? ts_f16_to_f32(k16[t * stride + kvh * D + i]) : k32[t * stride + kvh * D + i];
                    s[t] += qi * ki;
                }
                s[t] *= scale;
                mx = fmax(mx, s[t]);
            }
            for (int t = 0; t < NKV; t++) z += exp(s[t] - mx);
            for (int i = 0; i < D; i++) {
                double e = 0;
                for (int t = 0; t < NKV; t++) {
                    const double vi = f16 ? ts_f16_to_f32(v16[t * stride + kvh * D + i]) : v32[t * stride + kvh * D + i];
                    e += exp(s[t] - mx) / z * vi;
                }
                CHECK(fabs(out[i] - e) < 1e-5, "attention f16=%d kvh %d dim %d: %g vs %g", f16, kvh, i, (double)out[i], e);
            }
        }
    }
}

int main(void) {
    test_threadpool();
    test_rows();
    test_rope();
    ts_threadpool *pool;
    ts_err err;
    if (ts_threadpool_new(3, &pool, &err)) return 1;
    test_swiglu_kernels(pool);
    for (int isa = 0; isa < 2; isa++) {
        const ts_type_traits *table = ts_type_table(isa ? ts_isa_best() : TS_ISA_SCALAR);
        test_matmul(pool, table, 64, 37, 5);
        test_matmul(pool, table, 16384, 5, 9);
        test_attention(table);
    }
    ts_threadpool_free(pool);
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("all ops tests passed\n");
    return 0;
}
