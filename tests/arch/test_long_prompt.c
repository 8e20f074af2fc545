/* Attention over prompts longer than several flash chunks (TS_FLASH_CHUNK positions), MLA and
 * dense GQA/MHA: the logits of
 *   - one token per call on one thread (every unit's chunks in order on that thread), and on more
 *     threads than the token has attention units (flash-decoding, attn_split.h: a MLA token is one
 *     unit, a dense token one unit per KV head, so the dense models split from n_head_kv + 1 threads),
 *   - the whole prompt in batches of 512, and in batches of odd sizes (batches starting at
 *     positions that are not chunk boundaries),
 *   - two sequences interleaved token by token in one batch,
 *   - three sequences decoding together (one token of each per call) on a thread count that does
 *     not divide their units (split, so that the threads share the chunks evenly),
 * are bit-identical, for an F32 and an F16 cache, on the tiny V2-Lite and V3 shapes, the tiny
 * V2-Lite with V2-Lite's 16 heads (which takes the position-major AVX-512 kernels, and with --isa
 * avx2's kernels the AVX2 ones), R1-Distill-Qwen's GQA (2- and 6-head groups; a 6-head group takes
 * the padded position-major kernels alone and unpadded ones in a prompt's query tiles, and
 * head-major ones on AVX2) and DeepSeekMoE's MHA: the chunk boundaries and merge order depend only
 * on positions (attn_flash.h), and a query tile runs each head on the kernels of its own group. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "quant/types.h"
#include "tiefsee.h"

/* Under AddressSanitizer the full matrix below took 10 of the CI's 25 minutes (a slow 2-core
 * host), so the sanitizer build runs a shorter prompt (still into a third chunk) and three of the
 * six batch-size x thread-count pairs (each batch size once, both thread counts); the release
 * build runs them all. Every preset, cache type and kernel set stays in both. */
#if defined(UNDER_ASAN)
#define N_PROMPT 560 /* > 2 chunks of 256 */
#define FULL_BATCH_MATRIX 0
#else
#define N_PROMPT 700 /* > 2 chunks of 256 */
#define FULL_BATCH_MATRIX 1
#endif

/* Logits of every token of toks (n_seq copies of the prompt, the copies interleaved token by
 * token when n_seq > 1), fed in calls of `chunk` tokens. */
static float *run(ts_model *m, enum ts_cache_type cache, int n_threads, int chunk, int n_seq, const ts_token *toks,
                  int n_vocab) {
    ts_context_params p = ts_context_default_params();
    p.n_ctx = 1024;
    p.n_seq_max = n_seq;
    p.n_batch = 512;
    p.n_threads = n_threads;
    p.cache_type = cache;
    ts_context *c;
    char err[TS_ERR_LEN];
    if (ts_context_new(m, &p, &c, err) != 0) {
        printf("FAIL context: %s\n", err);
        return NULL;
    }
    const int total = N_PROMPT * n_seq;
    ts_token *t = malloc(sizeof *t * (size_t)total);
    int32_t *pos = malloc(sizeof *pos * (size_t)total), *seq = malloc(sizeof *seq * (size_t)total);
    bool *want = malloc(sizeof *want * (size_t)total);
    float *logits = malloc(sizeof *logits * (size_t)total * (size_t)n_vocab);
    for (int i = 0; i < total; i++) {
        t[i] = toks[i / n_seq], pos[i] = i / n_seq, seq[i] = i % n_seq, want[i] = true;
    }
    for (int i = 0; i < total && logits; i += chunk) {
        const int n = total - i < chunk ? total - i : chunk;
        ts_batch b = {.n_tokens = n, .tokens = t + i, .pos = pos + i, .seq = seq + i, .want_logits = want + i};
        if (ts_decode(c, &b, logits + (size_t)i * (size_t)n_vocab, err) != 0) {
            printf("FAIL decode: %s\n", err);
            free(logits);
            logits = NULL;
        }
    }
    free(t), free(pos), free(seq), free(want);
    ts_context_free(c);
    return logits;
}

int main(void) {
    char dir[] = "/tmp/ts_long_prompt_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    const char *presets[] = {"tiny-deepseek2-lite", "tiny-deepseek3", "tiny-deepseek2-lite-16h", "tiny-deepseek2-lite-16h",
                             "tiny-qwen2", "tiny-qwen2-g6", "tiny-qwen2-g6", "tiny-deepseek-moe"};
    /* the 16-head and 6-head-group ones again with the AVX2 kernels (where the best are AVX-512) */
    const char *isas[] = {NULL, NULL, NULL, "avx2", NULL, NULL, "avx2", NULL};
    for (int pi = 0; pi < (int)(sizeof presets / sizeof presets[0]); pi++) {
        if (isas[pi] && (!ts_isa_supported(TS_ISA_AVX2) || ts_isa_best() == TS_ISA_AVX2)) continue;
        char path[300], err[TS_ERR_LEN];
        snprintf(path, sizeof path, "%s/%s.gguf", dir, presets[pi]);
        ts_synth_params sp = {.preset = presets[pi], .type = "f32", .seed = 5, .out_path = path, .overwrite = true,
                              .n_threads = 2};
        CHECK(ts_synth(&sp, err) == 0, "synth %s: %s", presets[pi], err);
        ts_model *m = NULL;
        CHECK(ts_model_load_isa(path, isas[pi], &m, err) == 0, "load %s: %s", presets[pi], err);
        if (!m) continue;
        ts_model_info info;
        ts_model_get_info(m, &info);
        const int V = info.n_vocab;
        ts_token toks[N_PROMPT];
        for (int i = 0; i < N_PROMPT; i++) toks[i] = (ts_token)((i * 7919 + 13) % V);
        const size_t one = (size_t)N_PROMPT * (size_t)V * sizeof(float);
        const enum ts_cache_type caches[] = {TS_CACHE_F32, TS_CACHE_F16};
        /* attention units of one token: MLA's heads share one cache, a dense model has one per KV head */
        const int units = strcmp(info.arch, "deepseek2") == 0 ? 1 : info.n_head_kv;
        for (int ci = 0; ci < 2; ci++) {
            float *step = run(m, caches[ci], 1, 1, 1, toks, V);
            float *split = run(m, caches[ci], units + 1, 1, 1, toks, V);
            CHECK(step && split && memcmp(split, step, one) == 0,
                  "%s cache %d: one token per call on %d threads (split) differs from 1 thread", presets[pi], ci,
                  units + 1);
            free(split);
            const int chunks[] = {512, 301, 97};
            for (int k = 0; k < 3 && step; k++)
                for (int threads = 1; threads <= 2; threads++) {
                    if (!FULL_BATCH_MATRIX && threads != 1 + k % 2) continue;
                    float *batch = run(m, caches[ci], threads, chunks[k], 1, toks, V);
                    CHECK(batch && memcmp(batch, step, one) == 0,
                          "%s cache %d: batches of %d on %d thread(s) differ from one token per call", presets[pi], ci,
                          chunks[k], threads);
                    free(batch);
                }
            /* Two sequences interleaved: each one's logits equal the single sequence's. */
            float *two = run(m, caches[ci], 2, 512, 2, toks, V);
            int bad = 0;
            for (int i = 0; two && step && i < 2 * N_PROMPT; i++)
                bad += memcmp(two + (size_t)i * V, step + (size_t)(i / 2) * V, (size_t)V * sizeof(float)) != 0;
            CHECK(two && bad == 0, "%s cache %d: %d rows of two interleaved sequences differ", presets[pi], ci, bad);
            free(two);
            /* Three sequences decoding together, one token of each per call, on a thread count
             * that does not divide their 3 x units units: split, and each equals the single one. */
            int t3 = 2;
            while ((3 * units) % t3 == 0) t3++;
            float *three = run(m, caches[ci], t3, 3, 3, toks, V);
            bad = 0;
            for (int i = 0; three && step && i < 3 * N_PROMPT; i++)
                bad += memcmp(three + (size_t)i * V, step + (size_t)(i / 3) * V, (size_t)V * sizeof(float)) != 0;
            CHECK(three && bad == 0, "%s cache %d: %d rows of three sequences decoding together on %d threads differ",
                  presets[pi], ci, bad, t3);
            free(three);
            free(step);
        }
        printf("%-24s long prompts (%s kernels): batch == step == split step on %d threads\n", presets[pi], info.kernels, units + 1);
        ts_model_free(m);
        remove(path);
    }
    rmdir(dir);
    if (failures) printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
