/* ts_model_active_bytes_per_token against counts made by hand from each model's shapes (all
 * weights f32, so a tensor of n values is 4n bytes):
 *   - dense llama, untied output: everything, the embedding as one row;
 *   - dense qwen2, tied output: the embedding once in full (output projection) plus one row;
 *   - tiny-deepseek-moe: routed experts at 2 of 8, shared experts and the leading dense layer in full;
 *   - tiny-deepseek2-lite: MLA's 3-D attn_k_b / attn_v_b (per head, not experts) in full, experts 2/8.
 * And ts_model_attention_flops_per_token against hand counts: the GQA llama above, the tiny-llama
 * preset (dense, 2 layers x 4 heads of 64) and tiny-deepseek2-lite (absorbed MLA, 3 layers x 4 heads over a 256-wide latent plus 32
 * rope dims), both at several depths (exactly linear, 0 at depth 0). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "model/tiny_model.h"
#include "tiefsee.h"

static int failures;

static void check(const char *what, const char *path, uint64_t want) {
    ts_model *m = NULL;
    char err[TS_ERR_LEN];
    if (ts_model_load(path, &m, err) != 0) {
        fprintf(stderr, "FAIL %s: load: %s\n", what, err);
        failures++;
        return;
    }
    const uint64_t got = ts_model_active_bytes_per_token(m);
    ts_model_info info;
    ts_model_get_info(m, &info);
    if (got != want) {
        fprintf(stderr, "FAIL %s: active bytes %" PRIu64 ", hand count %" PRIu64 " (difference %" PRId64 ")\n", what,
                got, want, (int64_t)(got - want));
        failures++;
    } else {
        printf("ok %s: %" PRIu64 " active bytes of %" PRIu64 " weight bytes\n", what, got, info.weight_bytes);
    }
    ts_model_free(m);
}

/* f32 bytes of a tensor of a*b values */
static uint64_t f32(uint64_t a, uint64_t b) { return 4 * a * b; }

static uint64_t dense_count(const tiny_spec *sp, bool biases) {
    const uint64_t E = (uint64_t)sp->n_embd, F = (uint64_t)sp->n_ff, V = (uint64_t)sp->n_vocab;
    const uint64_t d = E / (uint64_t)sp->n_head, kv = d * (uint64_t)sp->n_head_kv;
    uint64_t layer = f32(E, 2)                                     /* attn_norm, ffn_norm */
                     + f32(E, E) + 2 * f32(E, kv) + f32(E, E)      /* q, k, v, o */
                     + 3 * f32(E, F)                               /* gate, up, down */
                     + (biases ? f32(E + 2 * kv, 1) : 0);          /* qwen2 q/k/v biases */
    uint64_t total = (uint64_t)sp->n_layer * layer + f32(E, 1) /* output_norm */ + f32(E, 1) /* embedding row */;
    total += f32(E, V); /* output.weight, or the tied embedding streamed by the output projection */
    return total;
}

/* The TINY() shape of src/synth/presets.c: 3 layers, 256 wide, 4 heads of 64, n_ff 512, vocab 1024;
 * MoE layers after one dense layer: 8 experts of 256, 2 used, 2 shared (one 512-wide FFN). */
enum { E = 256, F = 512, V = 1024, N_LAYER = 3, N_EXPERT = 8, N_USED = 2, FE = 256, FS = 2 * FE };

static uint64_t moe_ffn_count(int layer) {
    if (layer == 0) return 3 * f32(E, F);
    return f32(E, N_EXPERT)           /* router ffn_gate_inp */
           + 3 * f32(E, FE) * N_USED  /* routed gate/up/down: only the used experts' slices */
           + 3 * f32(E, FS);          /* shared experts */
}

static uint64_t deepseek_moe_count(void) {
    uint64_t total = f32(E, 1) + f32(E, 1) + f32(E, V); /* embedding row, output_norm, output */
    for (int l = 0; l < N_LAYER; l++)
        total += f32(E, 2) + 4 * f32(E, E) + moe_ffn_count(l); /* norms, q k v o (4 heads of 64 = 256) */
    return total;
}

static uint64_t deepseek2_lite_count(void) {
    const uint64_t H = 4, C = 256, nope = 64, rope = 32, vdim = 64;
    uint64_t total = f32(E, 1) + f32(E, 1) + f32(E, V);
    for (int l = 0; l < N_LAYER; l++) {
        total += f32(E, 2)                       /* attn_norm, ffn_norm */
                 + f32(E, H * (nope + rope))     /* attn_q (no q LoRA) */
                 + f32(E, C + rope) + f32(C, 1)  /* attn_kv_a_mqa, attn_kv_a_norm */
                 + f32(nope * C, H)              /* attn_k_b: per head, all read */
                 + f32(C * vdim, H)              /* attn_v_b */
                 + f32(H * vdim, E)              /* attn_output */
                 + moe_ffn_count(l);
    }
    return total;
}

/* Flops of one token at `depth` against n_layer * n_head * depth * per_score. */
static void check_attn(const char *what, const char *path, uint64_t n_layer, uint64_t n_head, uint64_t per_score) {
    ts_model *m = NULL;
    char err[TS_ERR_LEN];
    if (ts_model_load(path, &m, err) != 0) {
        fprintf(stderr, "FAIL %s: load: %s\n", what, err);
        failures++;
        return;
    }
    const int depths[] = {0, -3, 1, 7, 8192};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        const int d = depths[i];
        const uint64_t want = d > 0 ? n_layer * n_head * (uint64_t)d * per_score : 0;
        const uint64_t got = ts_model_attention_flops_per_token(m, d);
        if (got != want) {
            fprintf(stderr, "FAIL %s: attention flops at depth %d: %" PRIu64 ", hand count %" PRIu64 "\n", what, d, got,
                    want);
            failures++;
        }
    }
    printf("ok %s: %" PRIu64 " attention flops per token at depth 8192\n", what,
           ts_model_attention_flops_per_token(m, 8192));
    ts_model_free(m);
}

int main(void) {
    char dir[] = "/tmp/tiefsee-footprint-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[5][96];
    for (int i = 0; i < 5; i++) snprintf(path[i], sizeof path[i], "%s/m%d.gguf", dir, i);

    tiny_spec llama = tiny_default("llama");
    llama.n_head_kv = 2; /* GQA, so k/v are narrower than q */
    tiny_spec qwen = tiny_default("qwen2");
    qwen.tied = true;
    if (tiny_write(&llama, path[0]) != 0 || tiny_write(&qwen, path[1]) != 0) return 1;
    check("llama dense untied", path[0], dense_count(&llama, false));
    check("qwen2 dense tied", path[1], dense_count(&qwen, true));

    const char *presets[2] = {"tiny-deepseek-moe", "tiny-deepseek2-lite"};
    const uint64_t want[2] = {deepseek_moe_count(), deepseek2_lite_count()};
    for (int i = 0; i < 2; i++) {
        char err[TS_ERR_LEN];
        ts_synth_params sp = {.preset = presets[i], .type = "f32", .seed = 1, .out_path = path[2 + i],
                              .overwrite = true, .n_threads = 1};
        if (ts_synth(&sp, err) != 0) {
            fprintf(stderr, "FAIL synth %s: %s\n", presets[i], err);
            return 1;
        }
        check(presets[i], path[2 + i], want[i]);
    }
    /* Dense: per score 2*head_dim (Q.K) + 2*head_dim (weighted V) + 5 (softmax). The llama file
     * above has GQA (2 KV heads of 4): scores are per query head, so only n_head counts. */
    const uint64_t hd = (uint64_t)(llama.n_embd / llama.n_head);
    check_attn("llama gqa attention", path[0], (uint64_t)llama.n_layer, (uint64_t)llama.n_head,
               2 * hd + 2 * hd + TS_ATTN_SOFTMAX_FLOPS);
    {
        char err[TS_ERR_LEN];
        ts_synth_params sp = {.preset = "tiny-llama", .type = "f32", .seed = 1, .out_path = path[4], .overwrite = true,
                              .n_threads = 1};
        if (ts_synth(&sp, err) != 0) {
            fprintf(stderr, "FAIL synth tiny-llama: %s\n", err);
            return 1;
        }
        check_attn("tiny-llama attention", path[4], 2, 4, 2 * 64 + 2 * 64 + TS_ATTN_SOFTMAX_FLOPS);
    }
    /* MLA, absorbed: per score 2*(256 + 32) against [c | k_pe] + 2*256 latent sum + 5 softmax. The
     * hand count uses the preset's widths, not the engine's, so a wrong reading of them fails. */
    check_attn("tiny-deepseek2-lite attention", path[3], 3, 4, 2 * (256 + 32) + 2 * 256 + TS_ATTN_SOFTMAX_FLOPS);
    for (int i = 0; i < 5; i++) remove(path[i]);
    rmdir(dir);
    if (failures) return 1;
    printf("footprint: all counts match\n");
    return 0;
}
