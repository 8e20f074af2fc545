/* Tests of the float (f32, f16, bf16) and legacy (q4_0, q4_1, q5_0, q5_1, q8_0, q8_1) kernels:
 * known answers on hand-built blocks, quantize->dequantize round-trip bounds, and AVX2 against
 * the scalar reference on many random blocks with edge values.
 *
 * Dot tolerance (why it is what it is): every dot here is an exactly computed integer (or exact
 * float product) per block/lane, scaled and summed in float. With u = 2^-24 and T = sum over
 * blocks of |d_x*d_y| * sum_j |q_x,j*q_y,j| (+ |m*s|) -- a bound on every partial sum either
 * implementation forms -- recursive float summation of k terms plus a few roundings per term and
 * a final horizontal reduction errs by at most (k + 8) * u * T, where k is the length of the
 * longest accumulation chain (blocks for quantized types, n/32 + tail for float types). Both
 * kernels are checked against an exact double-precision sum with that bound; a wrong block,
 * lane or scale shows up as an error of the order of one block's |term|, far above it. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/blocks.h"
#include "quant/kernels.h"
#include "quant/types.h"
#include "util/fp16.h"

/* The AVX2 kernels exist only in x86 builds; elsewhere their comparisons are skipped. */
#if defined(TS_HAVE_AVX2_KERNELS)
#define AVX2_FN(f) f
#else
#define AVX2_FN(f) NULL
#endif

typedef struct {
    int checks;
    int failures;
    bool have_avx2;
} test_ctx;

#define CHECK(ctx, cond, ...)                                                                      \
    do {                                                                                           \
        (ctx)->checks++;                                                                           \
        if (!(cond)) {                                                                             \
            (ctx)->failures++;                                                                     \
            if ((ctx)->failures <= 40) {                                                           \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                               \
                fprintf(stderr, __VA_ARGS__);                                                      \
                fputc('\n', stderr);                                                               \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------ random numbers */

typedef struct { uint64_t state; } rng;

static uint64_t rng_next(rng *r) { /* xorshift64* */
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return r->state * 0x2545F4914F6CDD1DULL;
}
static uint32_t rng_u32(rng *r) { return (uint32_t)(rng_next(r) >> 32); }
static float rng_unit(rng *r) { return (float)(rng_next(r) >> 40) * 0x1.0p-24f; } /* [0, 1) */
static float rng_range(rng *r, float lo, float hi) { return lo + (hi - lo) * rng_unit(r); }

#if defined(TS_HAVE_AVX2_KERNELS) /* generators of random blocks, used by the AVX2 comparisons */
static const ts_f16 edge_scales[] = {
    0x0000, /* zero */
    0x8000, /* negative zero */
    0x0001, /* smallest subnormal */
    0x03FF, /* largest subnormal */
    0x0400, /* smallest normal */
    0x3C00, /* 1 */
    0xBC00, /* -1 */
    0x7BFF, /* 65504, largest finite */
    0xFBFF, /* -65504 */
    0x1400, /* 2^-10 */
};
#define N_EDGE_SCALES (sizeof edge_scales / sizeof edge_scales[0])

/* A scale: edge values a third of the time, else a random normal half in a realistic range. */
static ts_f16 random_scale(rng *r) {
    if (rng_u32(r) % 3 == 0) return edge_scales[rng_u32(r) % N_EDGE_SCALES];
    const float mag = expf(rng_range(r, -12.0f, 2.0f));
    return ts_f32_to_f16(rng_u32(r) & 1 ? -mag : mag);
}

/* Quant bytes: random most of the time, otherwise one of the all-same patterns. */
static void random_quant_bytes(rng *r, uint8_t *p, size_t count) {
    static const uint8_t patterns[] = {0x00, 0xFF, 0x88, 0x0F, 0xF0, 0x77};
    const uint32_t pick = rng_u32(r) % 10;
    if (pick < sizeof patterns) {
        memset(p, patterns[pick], count);
        return;
    }
    for (size_t i = 0; i < count; i++) p[i] = (uint8_t)rng_u32(r);
}

/* q8 bytes in [-127, 127] (what every q8 quantizer produces; ggml's AVX2 maddubs trick is only
 * exact in that range, -128 never occurs in real data). */
static void random_q8(rng *r, int8_t *q, int count) {
    const uint32_t pick = rng_u32(r) % 8;
    for (int i = 0; i < count; i++) {
        if (pick == 0) q[i] = 127;
        else if (pick == 1) q[i] = -127;
        else if (pick == 2) q[i] = 0;
        else q[i] = (int8_t)((int)(rng_u32(r) % 255) - 127);
    }
}

#endif

/* ------------------------------------------------------------------ type descriptions */

typedef struct {
    const char *name;
    int type;
    size_t block_bytes;
    bool has_min; /* _1 types: d, m first; activation is q8_1 */
    ts_to_float_fn deq_ref, deq_avx2;
    ts_vec_dot_fn dot_ref, dot_avx2;
    ts_from_float_fn quant_ref;
    int qs_offset, qs_bytes; /* where the quant bytes (qh included) are */
    bool is_q8;
} legacy_type;

static const legacy_type legacy_types[] = {
    {"q4_0", TS_TYPE_Q4_0, sizeof(block_q4_0), false, ts_dequant_q4_0_ref, AVX2_FN(ts_dequant_q4_0_avx2), ts_dot_q4_0_ref,
     AVX2_FN(ts_dot_q4_0_avx2), ts_quant_q4_0_ref, 2, 16, false},
    {"q4_1", TS_TYPE_Q4_1, sizeof(block_q4_1), true, ts_dequant_q4_1_ref, AVX2_FN(ts_dequant_q4_1_avx2), ts_dot_q4_1_ref,
     AVX2_FN(ts_dot_q4_1_avx2), ts_quant_q4_1_ref, 4, 16, false},
    {"q5_0", TS_TYPE_Q5_0, sizeof(block_q5_0), false, ts_dequant_q5_0_ref, AVX2_FN(ts_dequant_q5_0_avx2), ts_dot_q5_0_ref,
     AVX2_FN(ts_dot_q5_0_avx2), ts_quant_q5_0_ref, 2, 20, false},
    {"q5_1", TS_TYPE_Q5_1, sizeof(block_q5_1), true, ts_dequant_q5_1_ref, AVX2_FN(ts_dequant_q5_1_avx2), ts_dot_q5_1_ref,
     AVX2_FN(ts_dot_q5_1_avx2), ts_quant_q5_1_ref, 4, 20, false},
    {"q8_0", TS_TYPE_Q8_0, sizeof(block_q8_0), false, ts_dequant_q8_0_ref, AVX2_FN(ts_dequant_q8_0_avx2), ts_dot_q8_0_ref,
     AVX2_FN(ts_dot_q8_0_avx2), ts_quant_q8_0_ref, 2, 32, true},
};
#define N_LEGACY (sizeof legacy_types / sizeof legacy_types[0])

static ts_f16 get_f16(const uint8_t *block, int offset) {
    ts_f16 v;
    memcpy(&v, block + offset, sizeof v);
    return v;
}

#if defined(TS_HAVE_AVX2_KERNELS)
static void put_f16(uint8_t *block, int offset, ts_f16 v) { memcpy(block + offset, &v, sizeof v); }

/* One random weight block of type t with edge-case scales and quant patterns. */
static void random_weight_block(rng *r, const legacy_type *t, uint8_t *block) {
    put_f16(block, 0, random_scale(r));
    if (t->has_min) put_f16(block, 2, random_scale(r));
    if (t->is_q8) random_q8(r, (int8_t *)(block + t->qs_offset), 32);
    else random_quant_bytes(r, block + t->qs_offset, (size_t)t->qs_bytes);
}

/* One random activation block (q8_0 or q8_1): usually the real quantizer's output from floats of
 * random magnitude, sometimes a hand-made extreme block. */
static void random_act_block(rng *r, bool q8_1, uint8_t *block) {
    float x[32];
    const uint32_t pick = rng_u32(r) % 6;
    if (pick == 0) {
        block_q8_1 b; /* extreme: max scale, saturated quants, arbitrary s */
        b.d = edge_scales[rng_u32(r) % N_EDGE_SCALES];
        b.s = random_scale(r);
        random_q8(r, b.qs, 32);
        if (q8_1) memcpy(block, &b, sizeof b);
        else {
            block_q8_0 c;
            c.d = b.d;
            memcpy(c.qs, b.qs, 32);
            memcpy(block, &c, sizeof c);
        }
        return;
    }
    const float mag = pick == 1 ? 0.0f : expf(rng_range(r, -20.0f, 8.0f));
    for (int j = 0; j < 32; j++) x[j] = rng_range(r, -mag, mag);
    if (q8_1) ts_quant_q8_1_ref(x, block, 32);
    else ts_quant_q8_0_ref(x, block, 32);
}

/* Values of a q8 activation block (for the exact reference sum). */
static void act_values(const uint8_t *block, bool q8_1, float *d, float *s, const int8_t **qs) {
    *d = ts_f16_to_f32(get_f16(block, 0));
    *s = q8_1 ? ts_f16_to_f32(get_f16(block, 2)) : 0.0f;
    *qs = (const int8_t *)(block + (q8_1 ? 4 : 2));
}

/* Integer quant j of a weight block, and whether the type adds m. */
static int weight_quant(const legacy_type *t, const uint8_t *block, int j) {
    const uint8_t *qs = block + t->qs_offset;
    switch (t->type) {
    case TS_TYPE_Q4_0: return (j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4)) - 8;
    case TS_TYPE_Q4_1: return j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
    case TS_TYPE_Q5_0:
    case TS_TYPE_Q5_1: {
        const uint8_t *qh = qs; /* qh[4] comes first, then qs[16] */
        const uint8_t *q4 = qs + 4;
        const int lo = j < 16 ? (q4[j] & 15) : (q4[j - 16] >> 4);
        const int hi = (qh[j / 8] >> (j % 8)) & 1;
        return (lo | hi << 4) - (t->type == TS_TYPE_Q5_0 ? 16 : 0);
    }
    default: return ((const int8_t *)qs)[j];
    }
}

#endif

/* ------------------------------------------------------------------ known answers */

static void test_known_answers(test_ctx *ctx) {
    float out[32];

    /* q4_0: d = 0.5, qs[j] = j | (15-j)<<4  ->  element j = (j-8)/2, element 16+j = (7-j)/2. */
    block_q4_0 b40 = {.d = 0x3800};
    for (int j = 0; j < 16; j++) b40.qs[j] = (uint8_t)(j | (15 - j) << 4);
    ts_dequant_q4_0_ref(&b40, out, 32);
    for (int j = 0; j < 16; j++) {
        CHECK(ctx, out[j] == (float)(j - 8) * 0.5f, "q4_0 known [%d] = %g", j, out[j]);
        CHECK(ctx, out[16 + j] == (float)(7 - j) * 0.5f, "q4_0 known [%d] = %g", 16 + j, out[16 + j]);
    }
    /* Dot with an activation of all ones (d = 1): sum of the quants times 0.5 = -8 * 0.5... */
    block_q8_0 ones = {.d = 0x3C00};
    memset(ones.qs, 1, 32);
    float s = 0.0f;
    ts_dot_q4_0_ref(32, &s, &b40, &ones);
    /* quants: j-8 for j<16 (sum -8) and 7-j for j<16 (sum -8) -> -16 * 0.5 = -8. */
    CHECK(ctx, s == -8.0f, "q4_0 . ones = %g, want -8", s);

    /* q4_1: d = 0.25, m = -1, all nibbles 0x3 low / 0xC high -> -0.25 and 2. */
    block_q4_1 b41 = {.d = 0x3400, .m = 0xBC00};
    memset(b41.qs, 0xC3, 16);
    ts_dequant_q4_1_ref(&b41, out, 32);
    for (int j = 0; j < 32; j++) CHECK(ctx, out[j] == (j < 16 ? -0.25f : 2.0f), "q4_1 known [%d] = %g", j, out[j]);

    /* q5_0: d = 1, low nibbles all 0; qh bits set for elements 0, 9, 16, 31 -> 0 for those, -16 else. */
    block_q5_0 b50 = {.d = 0x3C00};
    memset(b50.qs, 0, 16);
    const uint32_t qh = 1u << 0 | 1u << 9 | 1u << 16 | 1u << 31;
    for (int i = 0; i < 4; i++) b50.qh[i] = (uint8_t)(qh >> (8 * i));
    ts_dequant_q5_0_ref(&b50, out, 32);
    for (int j = 0; j < 32; j++) {
        const bool set = j == 0 || j == 9 || j == 16 || j == 31;
        CHECK(ctx, out[j] == (set ? 0.0f : -16.0f), "q5_0 known [%d] = %g", j, out[j]);
    }

    /* q5_1: d = 2, m = 0.5, qs 0xF1, qh all set -> 17*2+.5 = 34.5 (low), 31*2+.5 = 62.5 (high). */
    block_q5_1 b51 = {.d = 0x4000, .m = 0x3800};
    memset(b51.qs, 0xF1, 16);
    memset(b51.qh, 0xFF, 4);
    ts_dequant_q5_1_ref(&b51, out, 32);
    for (int j = 0; j < 32; j++) CHECK(ctx, out[j] == (j < 16 ? 34.5f : 62.5f), "q5_1 known [%d] = %g", j, out[j]);

    /* q8_0: d = -2, qs[j] = j - 16. Dot with itself: 4 * sum (j-16)^2 = 4 * 2736. */
    block_q8_0 b80 = {.d = 0xC000};
    for (int j = 0; j < 32; j++) b80.qs[j] = (int8_t)(j - 16);
    ts_dequant_q8_0_ref(&b80, out, 32);
    for (int j = 0; j < 32; j++) CHECK(ctx, out[j] == (float)(j - 16) * -2.0f, "q8_0 known [%d] = %g", j, out[j]);
    ts_dot_q8_0_ref(32, &s, &b80, &b80);
    CHECK(ctx, s == 4.0f * 2736.0f, "q8_0 . q8_0 = %g", s);

    /* q8_0 quantizer: amax 127 -> d = 1; 2.5 and -2.5 are ties: the scalar reference rounds them
     * away from zero (roundf, as ggml's quantize_row_q8_0_ref), AVX2 to even (as ggml's AVX2). */
    float x[32] = {0};
    x[0] = 127.0f, x[1] = 2.5f, x[2] = -2.5f, x[3] = 3.5f, x[4] = -0.4f;
    block_q8_0 q;
    ts_quant_q8_0_ref(x, &q, 32);
    CHECK(ctx, q.d == 0x3C00, "q8_0 quant d = %04x", q.d);
    CHECK(ctx, q.qs[0] == 127 && q.qs[1] == 3 && q.qs[2] == -3 && q.qs[3] == 4 && q.qs[4] == 0 && q.qs[5] == 0,
          "q8_0 ref quant %d %d %d %d %d", q.qs[0], q.qs[1], q.qs[2], q.qs[3], q.qs[4]);
    block_q8_1 q1;
    ts_quant_q8_1_ref(x, &q1, 32);
    CHECK(ctx, q1.d == 0x3C00 && q1.s == ts_f32_to_f16(127.0f + 3 - 3 + 4), "q8_1 ref quant d %04x s %04x", q1.d, q1.s);
#if defined(TS_HAVE_AVX2_KERNELS)
    if (ctx->have_avx2) {
        ts_quant_q8_0_avx2(x, &q, 32);
        CHECK(ctx, q.d == 0x3C00 && q.qs[0] == 127 && q.qs[1] == 2 && q.qs[2] == -2 && q.qs[3] == 4 && q.qs[4] == 0,
              "q8_0 avx2 quant %d %d %d %d %d", q.qs[0], q.qs[1], q.qs[2], q.qs[3], q.qs[4]);
        ts_quant_q8_1_avx2(x, &q1, 32);
        CHECK(ctx, q1.d == 0x3C00 && q1.qs[1] == 2 && q1.s == ts_f32_to_f16(127.0f + 2 - 2 + 4), "q8_1 avx2 s %04x",
              q1.s);
    }
#endif

    /* q4_0 quantizer on a ramp: the largest magnitude (-16) maps to -8 exactly, d = 2. */
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16);
    ts_quant_q4_0_ref(x, &b40, 32);
    CHECK(ctx, b40.d == 0x4000, "q4_0 quant d = %04x, want 2", b40.d);
    CHECK(ctx, (b40.qs[0] & 15) == 0, "q4_0 quant x=-16 -> nibble %d", b40.qs[0] & 15);
    /* An all-zero block gets d = -0 (max / -8 with max = +0), exactly as ggml writes it. */
    memset(x, 0, sizeof x);
    ts_quant_q4_0_ref(x, &b40, 32);
    CHECK(ctx, b40.d == 0x8000 && b40.qs[3] == 0x88, "q4_0 zero block d=%04x qs=%02x", b40.d, b40.qs[3]);

    /* Quantizers on grids they represent exactly: ggml's scale choice gives these exact d, m and
     * quants (a different scale rule would still round-trip within bounds, so check them here). */
    for (int j = 0; j < 32; j++) x[j] = (float)(2 * (j % 16) - 1); /* min -1, max 29 -> d 2 */
    ts_quant_q4_1_ref(x, &b41, 32);
    bool grid_ok = b41.d == 0x4000 && b41.m == 0xBC00;
    for (int j = 0; j < 16; j++) grid_ok = grid_ok && b41.qs[j] == (uint8_t)(j | j << 4);
    CHECK(ctx, grid_ok, "q4_1 quantizer on grid: d %04x m %04x qs[1] %02x", b41.d, b41.m, b41.qs[1]);
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16); /* absmax -16 -> d 1, q = j */
    ts_quant_q5_0_ref(x, &b50, 32);
    grid_ok = b50.d == 0x3C00 && b50.qh[0] == 0 && b50.qh[1] == 0 && b50.qh[2] == 0xFF && b50.qh[3] == 0xFF;
    for (int j = 0; j < 16; j++) grid_ok = grid_ok && b50.qs[j] == (uint8_t)(j | j << 4);
    CHECK(ctx, grid_ok, "q5_0 quantizer on grid: d %04x qh %02x%02x", b50.d, b50.qh[3], b50.qh[0]);
    for (int j = 0; j < 32; j++) x[j] = 0.5f * (float)j; /* min 0, max 15.5 -> d 0.5, q = j */
    ts_quant_q5_1_ref(x, &b51, 32);
    grid_ok = b51.d == 0x3800 && b51.m == 0 && b51.qh[0] == 0 && b51.qh[3] == 0xFF;
    for (int j = 0; j < 16; j++) grid_ok = grid_ok && b51.qs[j] == (uint8_t)(j | j << 4);
    CHECK(ctx, grid_ok, "q5_1 quantizer on grid: d %04x m %04x", b51.d, b51.m);
    ts_dequant_q5_1_ref(&b51, out, 32);
    CHECK(ctx, memcmp(out, x, sizeof out) == 0, "q5_1 grid round trip not exact");

    /* Float types. */
    const ts_f16 h[6] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00};
    const float hv[6] = {1.0f, -2.0f, 65504.0f, 0x1p-24f, -0.0f, INFINITY};
    ts_dequant_f16_ref(h, out, 6);
    for (int i = 0; i < 6; i++)
        CHECK(ctx, memcmp(&out[i], &hv[i], 4) == 0, "f16 known %04x -> %g", h[i], out[i]);
    const ts_bf16 bh[3] = {0x3F80, 0xC040, 0x0001};
    ts_dequant_bf16_ref(bh, out, 3);
    CHECK(ctx, out[0] == 1.0f && out[1] == -3.0f && out[2] == 0x1p-133f, "bf16 known %g %g %g", out[0], out[1], out[2]);
    ts_f16 hh[2];
    ts_bf16 bb[2];
    const float tie[2] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f}; /* halfway cases: round to even */
    ts_quant_f16_ref(tie, hh, 2);
    CHECK(ctx, hh[0] == 0x3C00 && hh[1] == 0x3C02, "f16 ties %04x %04x", hh[0], hh[1]);
    const float btie[2] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f};
    ts_quant_bf16_ref(btie, bb, 2);
    CHECK(ctx, bb[0] == 0x3F80 && bb[1] == 0x3F82, "bf16 ties %04x %04x", bb[0], bb[1]);
    const float fx[3] = {1.5f, -2.0f, 4.0f}, fy[3] = {2.0f, 0.25f, -1.0f};
    ts_dot_f32_ref(3, &s, fx, fy);
    CHECK(ctx, s == 3.0f - 0.5f - 4.0f, "f32 dot = %g", s);
}

/* ------------------------------------------------------------------ round trips */

static void test_round_trip(test_ctx *ctx, rng *r) {
    enum { N = 32 * 64 };
    static float x[N], y[N];
    uint8_t *buf = malloc(N * 2 * sizeof(float));
    if (!buf) abort();
    for (int trial = 0; trial < 8; trial++) {
        const float mag = trial == 0 ? 0.0f : expf(rng_range(r, -6.0f, 6.0f));
        for (int i = 0; i < N; i++) {
            /* mix of uniform values and a few outliers, as real weights have */
            x[i] = rng_range(r, -mag, mag) * (rng_u32(r) % 50 == 0 ? 4.0f : 1.0f);
        }
        for (size_t k = 0; k < N_LEGACY; k++) {
            const legacy_type *t = &legacy_types[k];
            t->quant_ref(x, buf, N);
            t->deq_ref(buf, y, N);
            double err2 = 0.0, scale_sum = 0.0;
            for (int b = 0; b < N / 32; b++) {
                const uint8_t *blk = buf + (size_t)b * t->block_bytes;
                const float d = fabsf(ts_f16_to_f32(get_f16(blk, 0)));
                const float m = t->has_min ? fabsf(ts_f16_to_f32(get_f16(blk, 2))) : 0.0f;
                /* Largest |error|: half a step (the symmetric types can clamp the far end by one
                 * full step), plus the f16 rounding of d (relative 2^-11, times the largest quant)
                 * and of m. */
                const float max_q = t->type == TS_TYPE_Q8_0 ? 127.0f : t->type == TS_TYPE_Q5_1 ? 31.0f
                                  : t->type == TS_TYPE_Q5_0 ? 16.0f : t->type == TS_TYPE_Q4_1 ? 15.0f : 8.0f;
                const float step = t->has_min || t->type == TS_TYPE_Q8_0 ? 0.5f : 1.0f;
                const float bound = d * step + (d * max_q + m) * 0x1p-11f + 1e-30f;
                for (int j = 0; j < 32; j++) {
                    const float e = fabsf(x[b * 32 + j] - y[b * 32 + j]);
                    err2 += (double)e * e;
                    CHECK(ctx, e <= bound, "%s round trip: |%g - %g| > %g (d=%g)", t->name, x[b * 32 + j],
                          y[b * 32 + j], bound, d);
                }
                scale_sum += d;
            }
            /* RMS error of rounding to a grid of step d is d/sqrt(12) ~ 0.29 d; an off-by-one
             * mapping would give ~d. */
            const double rms = sqrt(err2 / N), mean_d = scale_sum / (N / 32);
            CHECK(ctx, rms <= 0.35 * mean_d + 1e-30, "%s round trip rms %g vs mean step %g", t->name, rms, mean_d);
        }
        /* q8_1: same values as q8_0, and s = fp16(d * sum(q)). */
        ts_quant_q8_1_ref(x, buf, N);
        ts_dequant_q8_1_ref(buf, y, N);
        for (int b = 0; b < N / 32; b++) {
            const block_q8_1 *q = (const block_q8_1 *)buf + b;
            const float d = ts_f16_to_f32(q->d);
            int sum = 0;
            for (int j = 0; j < 32; j++) {
                sum += q->qs[j];
                CHECK(ctx, fabsf(x[b * 32 + j] - y[b * 32 + j]) <= d * (0.5f + 127.0f * 0x1p-11f) + 1e-30f,
                      "q8_1 round trip");
            }
            const float s = ts_f16_to_f32(q->s);
            CHECK(ctx, fabsf(s - d * (float)sum) <= fabsf(d * (float)sum) * 0x1p-10f + 1e-30f, "q8_1 s %g vs %g", s,
                  d * (float)sum);
        }
        /* f16 / bf16: relative rounding error 2^-11 / 2^-8 (values here are normal in both). */
        ts_quant_f16_ref(x, buf, N);
        ts_dequant_f16_ref(buf, y, N);
        for (int i = 0; i < N; i++)
            CHECK(ctx, fabsf(x[i] - y[i]) <= fabsf(x[i]) * 0x1p-11f + 0x1p-25f, "f16 round trip %g %g", x[i], y[i]);
        ts_quant_bf16_ref(x, buf, N);
        ts_dequant_bf16_ref(buf, y, N);
        for (int i = 0; i < N; i++)
            CHECK(ctx, fabsf(x[i] - y[i]) <= fabsf(x[i]) * 0x1p-8f, "bf16 round trip %g %g", x[i], y[i]);
        ts_quant_f32_ref(x, buf, N);
        ts_dequant_f32_ref(buf, y, N);
        CHECK(ctx, memcmp(x, y, sizeof x) == 0, "f32 round trip");
    }
    free(buf);
}

/* ------------------------------------------------------------------ AVX2 vs reference */

#if defined(TS_HAVE_AVX2_KERNELS)
static bool dot_close(double got, double exact, double abs_terms, int chain) {
    const double tol = (chain + 8) * 0x1p-24 * abs_terms;
    return fabs(got - exact) <= tol;
}

static void test_legacy_avx2(test_ctx *ctx, rng *r) {
    static const int block_counts[] = {1, 2, 3, 7, 64, 1000};
    const int max_blocks = 1000;
    uint8_t *wx = malloc((size_t)max_blocks * sizeof(block_q8_0) * 2);
    uint8_t *wy = malloc((size_t)max_blocks * sizeof(block_q8_1));
    float *f_ref = malloc((size_t)max_blocks * 32 * sizeof(float));
    float *f_avx = malloc((size_t)max_blocks * 32 * sizeof(float));
    if (!wx || !wy || !f_ref || !f_avx) abort();

    for (size_t k = 0; k < N_LEGACY; k++) {
        const legacy_type *t = &legacy_types[k];
        const bool q8_1 = t->has_min;
        const size_t act_bytes = q8_1 ? sizeof(block_q8_1) : sizeof(block_q8_0);
        for (size_t c = 0; c < sizeof block_counts / sizeof block_counts[0]; c++) {
            for (int rep = 0; rep < 6; rep++) {
                const int nb = block_counts[c];
                for (int b = 0; b < nb; b++) {
                    random_weight_block(r, t, wx + (size_t)b * t->block_bytes);
                    random_act_block(r, q8_1, wy + (size_t)b * act_bytes);
                }
                /* dequant: bit-identical, also with inf/NaN scales (one block per repetition) */
                if (rep == 5) put_f16(wx, 0, rng_u32(r) & 1 ? 0x7C00 : 0x7E01);
                t->deq_ref(wx, f_ref, (int64_t)nb * 32);
                t->deq_avx2(wx, f_avx, (int64_t)nb * 32);
                CHECK(ctx, memcmp(f_ref, f_avx, (size_t)nb * 32 * sizeof(float)) == 0, "%s dequant avx2 != ref (%d blocks)",
                      t->name, nb);
                if (rep == 5) put_f16(wx, 0, 0x3C00);

                /* dot: both against the exact sum, within the bound explained at the top */
                double exact = 0.0, abs_terms = 0.0;
                for (int b = 0; b < nb; b++) {
                    const uint8_t *xb = wx + (size_t)b * t->block_bytes;
                    float dy, sy;
                    const int8_t *qy;
                    act_values(wy + (size_t)b * act_bytes, q8_1, &dy, &sy, &qy);
                    const double dxdy = (double)ts_f16_to_f32(get_f16(xb, 0)) * dy;
                    long sumi = 0, sumabs = 0;
                    for (int j = 0; j < 32; j++) {
                        const int p = weight_quant(t, xb, j) * qy[j];
                        sumi += p;
                        sumabs += labs((long)p);
                    }
                    exact += dxdy * (double)sumi;
                    abs_terms += fabs(dxdy) * (double)sumabs;
                    if (t->has_min) {
                        const double ms = (double)ts_f16_to_f32(get_f16(xb, 2)) * sy;
                        exact += ms;
                        abs_terms += fabs(ms);
                    }
                }
                float s_ref = NAN, s_avx = NAN;
                t->dot_ref(nb * 32, &s_ref, wx, wy);
                t->dot_avx2(nb * 32, &s_avx, wx, wy);
                CHECK(ctx, dot_close(s_ref, exact, abs_terms, nb), "%s dot ref %.9g vs exact %.9g (%d blocks, |T| %g)",
                      t->name, s_ref, exact, nb, abs_terms);
                CHECK(ctx, dot_close(s_avx, exact, abs_terms, nb), "%s dot avx2 %.9g vs exact %.9g (%d blocks, |T| %g)",
                      t->name, s_avx, exact, nb, abs_terms);
            }
        }
    }
    free(wx);
    free(wy);
    free(f_ref);
    free(f_avx);
}

/* Rows of floats with a spread of magnitudes, zeros, negative zeros and exact ties. */
static void random_floats(rng *r, float *x, int n) {
    for (int i = 0; i < n; i++) {
        const uint32_t pick = rng_u32(r) % 16;
        if (pick == 0) x[i] = 0.0f;
        else if (pick == 1) x[i] = -0.0f;
        else if (pick == 2) x[i] = 1.0f + (float)(rng_u32(r) % 64) * 0x1p-11f; /* f16 halfway points */
        else if (pick == 3) x[i] = 1.0f + (float)(rng_u32(r) % 64) * 0x1p-8f;  /* bf16 halfway points */
        else if (pick == 4) x[i] = rng_range(r, -1.0f, 1.0f) * 0x1p-20f;       /* f16 subnormal range */
        else x[i] = rng_range(r, -1.0f, 1.0f) * expf(rng_range(r, -10.0f, 10.0f));
    }
}

static void test_activation_avx2(test_ctx *ctx, rng *r) {
    enum { N = 32 * 300 };
    static float x[N];
    static ts_f16 h_ref[N], h_avx[N];
    static ts_bf16 b_ref[N], b_avx[N];
    static block_q8_0 q0_ref[N / 32], q0_avx[N / 32];
    static block_q8_1 q1_ref[N / 32], q1_avx[N / 32];
    static const int lengths[] = {1, 7, 8, 15, 16, 17, 33, 100, N};
    for (int trial = 0; trial < 6; trial++) {
        random_floats(r, x, N);
        if (trial == 1) /* f16 overflow and NaN; bf16 gets arbitrary bit patterns incl. NaN/inf */
            for (int i = 0; i < N; i += 7) x[i] = ts_bits_f32(rng_u32(r));
        for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
            const int n = lengths[l];
            ts_quant_f16_ref(x, h_ref, n);
            ts_quant_f16_avx2(x, h_avx, n);
            int bad = 0;
            for (int i = 0; i < n; i++) {
                if (isnan(x[i])) bad += !((h_avx[i] & 0x7C00) == 0x7C00 && (h_avx[i] & 0x3FF));
                else bad += h_ref[i] != h_avx[i];
            }
            CHECK(ctx, bad == 0, "f16 conversion avx2 != ref in %d of %d", bad, n);
            ts_quant_bf16_ref(x, b_ref, n);
            ts_quant_bf16_avx2(x, b_avx, n);
            CHECK(ctx, memcmp(b_ref, b_avx, (size_t)n * 2) == 0, "bf16 conversion avx2 != ref (n=%d)", n);
        }
        /* q8 activations: x with NaN/inf makes no sense as activations; use the finite trials. */
        if (trial == 1) continue;
        for (int b = 0; b < N / 32; b += 9) memset(x + b * 32, 0, 32 * sizeof(float)); /* zero blocks */
        ts_quant_q8_0_ref(x, q0_ref, N);
        ts_quant_q8_0_avx2(x, q0_avx, N);
        ts_quant_q8_1_ref(x, q1_ref, N);
        ts_quant_q8_1_avx2(x, q1_avx, N);
        for (int b = 0; b < N / 32; b++) {
            const float *xb = x + b * 32;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
            const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
            const float d = amax / 127.0f;
            int sum = 0, model_bad = 0, ref_far = 0;
            for (int j = 0; j < 32; j++) {
                /* The AVX2 spec (ggml's AVX2 path): nearest-even of x * (127/amax). */
                const int want = (int)nearbyintf(xb[j] * id);
                model_bad += q0_avx[b].qs[j] != want || q1_avx[b].qs[j] != want;
                ref_far += abs(q0_avx[b].qs[j] - q0_ref[b].qs[j]) > 1 || q1_ref[b].qs[j] != q0_ref[b].qs[j];
                sum += want;
            }
            CHECK(ctx, model_bad == 0, "q8 avx2 quants differ from RNE(x*127/amax) in block %d", b);
            CHECK(ctx, ref_far == 0, "q8 avx2 vs ref differ by more than one in block %d", b);
            CHECK(ctx, q0_avx[b].d == q0_ref[b].d && q1_avx[b].d == q0_ref[b].d && q1_ref[b].d == q0_ref[b].d,
                  "q8 d differs in block %d", b);
            CHECK(ctx, q1_avx[b].s == ts_f32_to_f16(d * (float)sum), "q8_1 avx2 s in block %d", b);
        }
    }
}

static void test_float_avx2(test_ctx *ctx, rng *r) {
    /* dequant: every f16 and bf16 bit pattern, bit for bit (NaN payloads included). */
    enum { ALL = 65536 };
    static uint16_t all[ALL];
    static float out_ref[ALL], out_avx[ALL];
    for (int i = 0; i < ALL; i++) all[i] = (uint16_t)i;
    static const int lengths[] = {ALL, ALL - 3, 5};
    for (int l = 0; l < 3; l++) {
        const int n = lengths[l];
        const uint16_t *src = all + (ALL - n); /* tails start at odd values */
        ts_dequant_f16_ref(src, out_ref, n);
        ts_dequant_f16_avx2(src, out_avx, n);
        CHECK(ctx, memcmp(out_ref, out_avx, (size_t)n * 4) == 0, "f16 dequant avx2 != ref (n=%d)", n);
        ts_dequant_bf16_ref(src, out_ref, n);
        ts_dequant_bf16_avx2(src, out_avx, n);
        CHECK(ctx, memcmp(out_ref, out_avx, (size_t)n * 4) == 0, "bf16 dequant avx2 != ref (n=%d)", n);
    }
    random_floats(r, out_ref, 1000);
    ts_dequant_f32_avx2(out_ref, out_avx, 1000);
    CHECK(ctx, memcmp(out_ref, out_avx, 1000 * 4) == 0, "f32 dequant avx2");

    /* dots, with tails of every length mod 32 */
    enum { MAXN = 4096 + 37 };
    static float fx[MAXN], fy[MAXN];
    static ts_f16 hx[MAXN], hy[MAXN];
    static ts_bf16 bx[MAXN], by[MAXN];
    static const int ns[] = {1, 5, 8, 31, 32, 33, 64, 95, 130, 1000, 4096, MAXN};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        const int n = ns[k];
        for (int rep = 0; rep < 4; rep++) {
            random_floats(r, fx, n);
            random_floats(r, fy, n);
            for (int i = 0; i < n; i++) { /* f16: random finite halves including subnormals */
                hx[i] = (ts_f16)(rng_u32(r) % 0x7C00 | (rng_u32(r) & 0x8000));
                hy[i] = (ts_f16)(rng_u32(r) % 0x7C00 | (rng_u32(r) & 0x8000));
            }
            ts_quant_bf16_ref(fx, bx, n);
            ts_quant_bf16_ref(fy, by, n);
            double ex[3] = {0}, ab[3] = {0};
            for (int i = 0; i < n; i++) {
                const double p0 = (double)fx[i] * fy[i];
                const double p1 = (double)ts_f16_to_f32(hx[i]) * ts_f16_to_f32(hy[i]);
                const double p2 = (double)ts_bf16_to_f32(bx[i]) * ts_bf16_to_f32(by[i]);
                ex[0] += p0, ab[0] += fabs(p0);
                ex[1] += p1, ab[1] += fabs(p1);
                ex[2] += p2, ab[2] += fabs(p2);
            }
            const int chain = n / 32 + 32;
            float s[6];
            ts_dot_f32_ref(n, &s[0], fx, fy);
            ts_dot_f32_avx2(n, &s[1], fx, fy);
            ts_dot_f16_ref(n, &s[2], hx, hy);
            ts_dot_f16_avx2(n, &s[3], hx, hy);
            ts_dot_bf16_ref(n, &s[4], bx, by);
            ts_dot_bf16_avx2(n, &s[5], bx, by);
            static const char *const names[6] = {"f32 ref", "f32 avx2", "f16 ref", "f16 avx2", "bf16 ref", "bf16 avx2"};
            for (int i = 0; i < 6; i++)
                CHECK(ctx, dot_close(s[i], ex[i / 2], ab[i / 2], chain), "%s dot %.9g vs exact %.9g (n=%d)", names[i],
                      s[i], ex[i / 2], n);
        }
    }
}

/* Through the table: what the engine actually calls for these types is the AVX2 kernel. */
static void test_table_wiring(test_ctx *ctx) {
    const ts_type_traits *t = ts_type_table(TS_ISA_AVX2);
    CHECK(ctx, t[TS_TYPE_Q4_0].vec_dot == ts_dot_q4_0_avx2, "table avx2 q4_0 dot");
    CHECK(ctx, t[TS_TYPE_Q8_0].from_float == ts_quant_q8_0_avx2, "table avx2 q8_0 from_float");
    CHECK(ctx, t[TS_TYPE_Q8_1].from_float == ts_quant_q8_1_avx2, "table avx2 q8_1 from_float");
    CHECK(ctx, t[TS_TYPE_F16].from_float == ts_quant_f16_avx2, "table avx2 f16 from_float");
    CHECK(ctx, t[TS_TYPE_BF16].from_float == ts_quant_bf16_avx2, "table avx2 bf16 from_float");
    CHECK(ctx, t[TS_TYPE_Q5_1].to_float == ts_dequant_q5_1_avx2, "table avx2 q5_1 dequant");
    CHECK(ctx, t[TS_TYPE_F16].quantize == ts_quant_f16_ref, "table avx2 f16 quantize stays reference");
}

#endif /* TS_HAVE_AVX2_KERNELS */

int main(void) {
    test_ctx ctx = {.have_avx2 = ts_isa_supported(TS_ISA_AVX2)};
    rng r = {.state = 0x9E3779B97F4A7C15ULL};
    test_known_answers(&ctx);
    test_round_trip(&ctx, &r);
#if defined(TS_HAVE_AVX2_KERNELS)
    if (ctx.have_avx2) {
        test_legacy_avx2(&ctx, &r);
        test_activation_avx2(&ctx, &r);
        test_float_avx2(&ctx, &r);
        test_table_wiring(&ctx);
    } else
#endif
    {
        printf("test_quant_legacy: CPU or build lacks AVX2/FMA/F16C (best ISA %s): AVX2 comparisons skipped\n",
               ts_isa_name(ts_isa_best()));
    }
    printf("test_quant_legacy: %d checks, %d failures\n", ctx.checks, ctx.failures);
    return ctx.failures ? 1 : 0;
}
