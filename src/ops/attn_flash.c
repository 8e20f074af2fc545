#include "ops/attn_flash.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "util/fp16.h"

/* The position-major kernels take heads in groups of PM_GROUP_AVX512 (AVX-512) or PM_GROUP_AVX2
 * (AVX2). On AVX-512 a head count in between is padded with zero queries up to the next group, as
 * long as that adds at most half the arithmetic again (PM_MAX_PADDING_NUM / _DEN); the padding
 * heads' scores and sums are computed and dropped. The GQA groups of 6 and 7 heads of
 * R1-Distill-Qwen-1.5B and -7B run faster that way than with the head-major kernels (BENCHMARKS.md). */
#define PM_GROUP_AVX512 8
#define PM_GROUP_AVX2 4
#define PM_MAX_PADDING_NUM 3
#define PM_MAX_PADDING_DEN 2

static int round_up(int n, int to) { return (n + to - 1) / to * to; }

/* The work buffer's parts, each starting on a 64-byte boundary of an aligned buffer:
 * scores | 4 widened rows | the queries converted to the K type's vec_dot_type (<= 4 bytes a value),
 * or the padded queries of the position-major kernels | their value sums | their maxima and sums.
 * Sized for the head count padded to the widest position-major group. */
typedef struct flash_work {
    float *scores, *rows, *values, *qpad, *max_sum;
    char *qconv;
} flash_work;

static size_t work_parts(int n_head, int k_width, int v_width, float *base, flash_work *w) {
    const size_t widest = (size_t)(k_width > v_width ? k_width : v_width);
    const size_t heads = (size_t)round_up(n_head, PM_GROUP_AVX512);
    const size_t sizes[5] = {ts_flash_round16(heads * TS_FLASH_CHUNK), ts_flash_round16(4 * widest),
                             ts_flash_round16(heads * (size_t)k_width), ts_flash_round16(heads * (size_t)v_width),
                             ts_flash_round16(2 * heads)};
    if (w) {
        w->scores = base;
        w->rows = base + sizes[0];
        w->qpad = w->rows + sizes[1];
        w->qconv = (char *)w->qpad;
        w->values = w->qpad + sizes[2];
        w->max_sum = w->values + sizes[3];
    }
    return sizes[0] + sizes[1] + sizes[2] + sizes[3] + sizes[4];
}

size_t ts_flash_work_floats(int n_head, int k_width, int v_width) {
    return work_parts(n_head, k_width, v_width, NULL, NULL);
}

int ts_flash_simd_level(enum ts_isa isa) {
#if defined(TS_HAVE_AVX512_KERNELS)
    if (isa == TS_ISA_AVX512) return 2;
#endif
#if defined(TS_HAVE_AVX2_KERNELS)
    if (isa == TS_ISA_AVX2 || isa == TS_ISA_AVXVNNI || isa == TS_ISA_AVX512) return 1;
#endif
    (void)isa;
    return 0;
}

/* Row t of a cache widened to f32, or a pointer into the cache itself for F32. */
static const float *widen_row(const ts_flash_args *a, const char *base, size_t row_bytes, int t, int width, float *dst) {
    const char *src = base + (size_t)t * row_bytes;
    if (a->kv_type == TS_TYPE_F32) return (const float *)(const void *)src;
    if (a->kv_type == TS_TYPE_F16) {
        const ts_f16 *h = (const ts_f16 *)(const void *)src;
        for (int i = 0; i < width; i++) dst[i] = ts_f16_to_f32(h[i]);
    } else {
        a->table[a->kv_type].to_float(src, dst, width);
    }
    return dst;
}

void ts_flash_scores_scalar(const ts_flash_args *a, int t0, int t1, float *scores, float *rows) {
    const int H = a->n_head, W = a->k_width;
    for (int t = t0; t < t1; t++) {
        const float *k = widen_row(a, a->k, a->k_row_bytes, t, W, rows);
        for (int h = 0; h < H; h++) {
            const float *q = a->q + (size_t)h * a->q_stride;
            float sum = 0.0f;
            for (int i = 0; i < W; i++) sum += q[i] * k[i];
            scores[(size_t)h * TS_FLASH_CHUNK + (size_t)(t - t0)] = a->scale * sum;
        }
    }
}

void ts_flash_values_scalar(const ts_flash_args *a, int t0, int t1, const float *p, float *out, float *rows) {
    const int H = a->n_head, W = a->v_width;
    for (int t = t0; t < t1; t++) {
        const float *v = widen_row(a, a->v, a->v_row_bytes, t, W, rows);
        for (int h = 0; h < H; h++) {
            const float w = p[(size_t)h * TS_FLASH_CHUNK + (size_t)(t - t0)];
            float *o = out + (size_t)h * W;
            for (int i = 0; i < W; i++) o[i] += w * v[i];
        }
    }
}

/* Cephes' expf: n = round(x log2 e), r = x - n ln 2 (ln 2 in two parts), exp(r) by a degree-7
 * polynomial. The constants are shared with the SIMD versions (attn_flash_avx2.c / _avx512.c). */
float ts_flash_exp(float x) {
    if (!(x >= TS_FLASH_EXP_MIN)) return 0.0f; /* also -inf; NaN never reaches here (scores are finite) */
    if (x > TS_FLASH_EXP_MAX) x = TS_FLASH_EXP_MAX;
    const float n = nearbyintf(x * TS_FLASH_LOG2E);
    float r = fmaf(n, -TS_FLASH_LN2_HI, x);
    r = fmaf(n, -TS_FLASH_LN2_LO, r);
    float p = TS_FLASH_EXP_P0;
    p = fmaf(p, r, TS_FLASH_EXP_P1);
    p = fmaf(p, r, TS_FLASH_EXP_P2);
    p = fmaf(p, r, TS_FLASH_EXP_P3);
    p = fmaf(p, r, TS_FLASH_EXP_P4);
    p = fmaf(p, r, TS_FLASH_EXP_P5);
    const float y = fmaf(p, r * r, r) + 1.0f;
    return ldexpf(y, (int)n);
}

double ts_flash_exp_row_scalar(float *s, int n, float mx) {
    double total = 0.0;
    for (int t = 0; t < n; t++) {
        s[t] = ts_flash_exp(s[t] - mx);
        total += s[t];
    }
    return total;
}

/* BF16 and Q8_0 keys are dotted in their own format against q converted to the vec_dot_type, as
 * ggml multiplies such a K cache (and as ts_kv_scores does). */
static void scores_quantized(const ts_flash_args *a, int t0, int t1, float *scores, char *qconv) {
    const ts_type_traits *kt = &a->table[a->kv_type];
    const size_t q_bytes = ts_row_size(kt->vec_dot_type, a->k_width);
    for (int h = 0; h < a->n_head; h++)
        a->table[kt->vec_dot_type].from_float(a->q + (size_t)h * a->q_stride, qconv + (size_t)h * q_bytes, a->k_width);
    for (int t = t0; t < t1; t++) {
        const char *k = a->k + (size_t)t * a->k_row_bytes;
        for (int h = 0; h < a->n_head; h++) {
            float s;
            kt->vec_dot(a->k_width, &s, k, qconv + (size_t)h * q_bytes);
            scores[(size_t)h * TS_FLASH_CHUNK + (size_t)(t - t0)] = a->scale * s;
        }
    }
}

/* The position-major kernels of one ISA (attn_flash.h). */
typedef struct pm_kernels {
    void (*scores)(const ts_flash_args *, int, int, float *);
    void (*softmax)(float *, int, int, float *, float *);
    void (*values)(const ts_flash_args *, int, int, const float *, float *);
} pm_kernels;

/* The chunk's value sums from the work buffer to its partial state. A decode split (attn_split.c)
 * writes each chunk's partial to its own place in an array that the cache rows streaming through
 * L2 have long evicted, so each line of a plain copy waited to be read from memory first: the copy
 * was 2.7-3.6 % of a V2-Lite token at depth 4096-8192 (`perf`, memcpy under split_chunks_task).
 * Non-temporal stores skip that read (0.5 % after). */
static void copy_out(float *dst, const float *src, size_t n, bool cold) {
#if defined(__x86_64__)
    if (cold && ((uintptr_t)dst & 15) == 0 && n % 4 == 0) {
        for (size_t i = 0; i < n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
        return;
    }
#endif
    (void)cold;
    memcpy(dst, src, n * sizeof(float));
}

static void flash_chunk(const ts_flash_args *a, int t0, int t1, float *partial, float *work, bool cold) {
    const int H = a->n_head, W = a->v_width, n = t1 - t0;
    flash_work w;
    work_parts(H, a->k_width, W, work, &w);
    float *scores = w.scores, *rows = w.rows;
    char *qconv = w.qconv;
    const bool plain = a->kv_type == TS_TYPE_F32 || a->kv_type == TS_TYPE_F16;
    const bool simd = plain && a->simd >= 1 && a->k_width % 8 == 0 && a->v_width % 8 == 0;
#if defined(TS_HAVE_AVX512_KERNELS)
    const bool wide = simd && a->simd >= 2 && a->k_width % 16 == 0 && a->v_width % 16 == 0;
#endif
    const pm_kernels *pm = NULL;
    int hp = H; /* heads the position-major kernels run: H padded to their group */
    const int HK = a->kernel_heads > 0 ? a->kernel_heads : H; /* the group that decides the kernels */
#if defined(TS_HAVE_AVX512_KERNELS)
    static const pm_kernels pm_avx512 = {ts_flash_scores_pm_avx512, ts_flash_softmax_pm_avx512, ts_flash_values_pm_avx512};
    if (wide && W % 32 == 0 && PM_MAX_PADDING_DEN * round_up(HK, PM_GROUP_AVX512) <= PM_MAX_PADDING_NUM * HK) {
        pm = &pm_avx512;
        hp = round_up(H, PM_GROUP_AVX512);
    }
#endif
#if defined(TS_HAVE_AVX2_KERNELS)
    /* Not padded: 6 heads padded to 8 ran slower from memory than the head-major AVX2 kernels
     * (R1-Distill-Qwen-1.5B's shape at depth 4096: 8.0-8.6 against 7.6-8.0 ms a token). */
    static const pm_kernels pm_avx2 = {ts_flash_scores_pm_avx2, ts_flash_softmax_pm_avx2, ts_flash_values_pm_avx2};
    if (!pm && simd && a->simd == 1 && HK % PM_GROUP_AVX2 == 0 && H % PM_GROUP_AVX2 == 0 && W % 16 == 0) pm = &pm_avx2;
#endif
    if (pm) {
        ts_flash_args padded = *a;
        float *max = partial, *sum = partial + H;
        if (hp != H) {
            /* Zero queries for the padding heads (their rows of the chunk are dropped below). */
            const size_t K = (size_t)a->k_width;
            for (int h = 0; h < H; h++) memcpy(w.qpad + (size_t)h * K, a->q + (size_t)h * a->q_stride, K * sizeof(float));
            memset(w.qpad + (size_t)H * K, 0, (size_t)(hp - H) * K * sizeof(float));
            padded.q = w.qpad;
            padded.q_stride = K;
            padded.n_head = hp;
            max = w.max_sum;
            sum = w.max_sum + hp;
        }
        /* Position-major: the value sums go to the work buffer first and are copied out once — a
         * decode step's partial states are fresh memory per chunk, and the kernel's stores to
         * them would each wait for the line to be read first. */
        pm->scores(&padded, t0, t1, scores);
        pm->softmax(scores, n, hp, max, sum);
        pm->values(&padded, t0, t1, scores, w.values);
        if (hp != H) {
            memcpy(partial, max, (size_t)H * sizeof(float));
            memcpy(partial + H, sum, (size_t)H * sizeof(float));
        }
        copy_out(partial + 2 * H, w.values, (size_t)H * (size_t)W, cold);
        return;
    }
    if (!plain)
        scores_quantized(a, t0, t1, scores, qconv);
#if defined(TS_HAVE_AVX512_KERNELS)
    else if (wide)
        ts_flash_scores_avx512(a, t0, t1, scores, rows);
#endif
#if defined(TS_HAVE_AVX2_KERNELS)
    else if (simd)
        ts_flash_scores_avx2(a, t0, t1, scores, rows);
#endif
    else
        ts_flash_scores_scalar(a, t0, t1, scores, rows);

    /* Softmax numerators per head, max-subtracted; the sum in double as ts_softmax. */
    float *m = partial, *sum = partial + H, *o = partial + 2 * H;
    for (int h = 0; h < H; h++) {
        float *s = scores + (size_t)h * TS_FLASH_CHUNK;
        float mx = -INFINITY;
        for (int t = 0; t < n; t++) mx = s[t] > mx ? s[t] : mx;
        double total;
#if defined(TS_HAVE_AVX512_KERNELS)
        if (wide) total = ts_flash_exp_row_avx512(s, n, mx);
        else
#endif
#if defined(TS_HAVE_AVX2_KERNELS)
        if (simd) total = ts_flash_exp_row_avx2(s, n, mx);
        else
#endif
            total = ts_flash_exp_row_scalar(s, n, mx);
        m[h] = mx;
        sum[h] = (float)total;
    }
    memset(o, 0, (size_t)H * (size_t)W * sizeof *o);
    (void)simd;
#if defined(TS_HAVE_AVX512_KERNELS)
    if (wide) {
        ts_flash_values_avx512(a, t0, t1, scores, o, rows);
        return;
    }
#endif
#if defined(TS_HAVE_AVX2_KERNELS)
    if (simd) {
        ts_flash_values_avx2(a, t0, t1, scores, o, rows);
        return;
    }
#endif
    ts_flash_values_scalar(a, t0, t1, scores, o, rows);
}

void ts_flash_chunk(const ts_flash_args *a, int t0, int t1, float *partial, float *work) {
    flash_chunk(a, t0, t1, partial, work, false);
}

void ts_flash_chunk_cold(const ts_flash_args *a, int t0, int t1, float *partial, float *work) {
    flash_chunk(a, t0, t1, partial, work, true);
}

void ts_flash_merge(int n_head, int v_width, float *run, const float *part) {
    ts_flash_merge_heads(n_head, v_width, 0, n_head, run, part);
}

/* o = o * f_run + p * f_part: two rounded products and a rounded sum per value (no FMA: the
 * build's -std=c17 keeps contraction off), so the vector lanes compute exactly what the scalar
 * tail does. GCC vector extensions (SSE2 on x86-64, NEON on AArch64; the -O2 build does not
 * vectorize the plain loop): a decode step at depth 8192 merges 31 chunk states of 16 x 512
 * values per layer, and the scalar loop took 3-4 ms of a V2-Lite token. */
typedef float merge_v4 __attribute__((vector_size(16)));
static void merge_values(float *o, const float *p, int n, float f_run, float f_part) {
    const merge_v4 fr = {f_run, f_run, f_run, f_run}, fp = {f_part, f_part, f_part, f_part};
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        merge_v4 a, b;
        memcpy(&a, o + i, sizeof a); /* unaligned loads */
        memcpy(&b, p + i, sizeof b);
        a = a * fr + b * fp;
        memcpy(o + i, &a, sizeof a);
    }
    for (; i < n; i++) o[i] = o[i] * f_run + p[i] * f_part;
}

void ts_flash_merge_heads(int n_head, int v_width, int h0, int h1, float *run, const float *part) {
    for (int h = h0; h < h1; h++) {
        const float m_run = run[h], m_part = part[h];
        const float m_new = m_part > m_run ? m_part : m_run;
        const float f_run = expf(m_run - m_new), f_part = expf(m_part - m_new);
        run[h] = m_new;
        run[n_head + h] = run[n_head + h] * f_run + part[n_head + h] * f_part;
        merge_values(run + 2 * (size_t)n_head + (size_t)h * (size_t)v_width,
                     part + 2 * (size_t)n_head + (size_t)h * (size_t)v_width, v_width, f_run, f_part);
    }
}

void ts_flash_finish(int n_head, int v_width, const float *run, float *out, size_t out_stride) {
    ts_flash_finish_heads(n_head, v_width, 0, n_head, run, out, out_stride);
}

void ts_flash_finish_heads(int n_head, int v_width, int h0, int h1, const float *run, float *out, size_t out_stride) {
    for (int h = h0; h < h1; h++) {
        const float inv = 1.0f / run[n_head + h];
        const float *o = run + 2 * (size_t)n_head + (size_t)h * (size_t)v_width;
        float *y = out + (size_t)h * out_stride;
        for (int i = 0; i < v_width; i++) y[i] = o[i] * inv;
    }
}

void ts_flash_attention(const ts_flash_args *a, int n_kv, float *run, float *part, float *work, float *out,
                        size_t out_stride) {
    const int n_chunks = ts_flash_n_chunks(n_kv);
    for (int c = 0; c < n_chunks; c++) {
        const int t0 = c * TS_FLASH_CHUNK, t1 = t0 + TS_FLASH_CHUNK < n_kv ? t0 + TS_FLASH_CHUNK : n_kv;
        ts_flash_chunk(a, t0, t1, c == 0 ? run : part, work);
        if (c > 0) ts_flash_merge(a->n_head, a->v_width, run, part);
    }
    ts_flash_finish(a->n_head, a->v_width, run, out, out_stride);
}

void ts_flash_attention_tokens(const ts_flash_args *tile, const ts_flash_args *tok, int n_tok, int first_n_kv,
                               float *run_tile, float *part_tile, float *run, float *part, float *work,
                               float *const *out, size_t out_stride) {
    const int g = tok[0].n_head, W = tok[0].v_width, HT = tile->n_head;
    const int common = first_n_kv / TS_FLASH_CHUNK; /* chunks every token reads in full */
    if (n_tok < 2 || common == 0) {
        for (int t = 0; t < n_tok; t++) ts_flash_attention(&tok[t], first_n_kv + t, run, part, work, out[t], out_stride);
        return;
    }
    for (int c = 0; c < common; c++) {
        ts_flash_chunk(tile, c * TS_FLASH_CHUNK, (c + 1) * TS_FLASH_CHUNK, c == 0 ? run_tile : part_tile, work);
        if (c > 0) ts_flash_merge(HT, W, run_tile, part_tile);
    }
    for (int t = 0; t < n_tok; t++) {
        /* token t's heads of the tile state, as a state of its own group */
        memcpy(run, run_tile + (size_t)t * g, (size_t)g * sizeof(float));
        memcpy(run + g, run_tile + HT + (size_t)t * g, (size_t)g * sizeof(float));
        memcpy(run + 2 * g, run_tile + 2 * (size_t)HT + (size_t)t * g * W, (size_t)g * W * sizeof(float));
        const int n_kv = first_n_kv + t;
        for (int c = common; c < ts_flash_n_chunks(n_kv); c++) {
            const int t0 = c * TS_FLASH_CHUNK, t1 = t0 + TS_FLASH_CHUNK < n_kv ? t0 + TS_FLASH_CHUNK : n_kv;
            ts_flash_chunk(&tok[t], t0, t1, part, work);
            ts_flash_merge(g, W, run, part);
        }
        ts_flash_finish(g, W, run, out[t], out_stride);
    }
}
