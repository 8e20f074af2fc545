/* Model loader: hyperparameters and tensors of good files, and the exact errors for broken ones
 * (missing key, wrong shape, missing tensor, unsupported architecture, bad rope scaling). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"
#include "model/tiny_model.h"
#include "tiefsee.h"

#include "check.h"

static char dir[] = "/tmp/ts_loader_test_XXXXXX";

/* Writes sp, loads it, and checks the load fails with exactly `expect` (after "<path>: "). */
static void expect_error(const tiny_spec *sp, const char *expect) {
    char path[256], want[1024], err[TS_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/bad.gguf", dir);
    if (tiny_write(sp, path)) {
        failures++;
        return;
    }
    snprintf(want, sizeof want, "%s: %s", path, expect);
    ts_model *m = (ts_model *)1;
    CHECK(ts_model_load(path, &m, err) != 0, "load succeeded, expected '%s'", expect);
    CHECK(m == NULL, "out not cleared on failure");
    CHECK(strcmp(err, want) == 0, "error\n  got:      %s\n  expected: %s", err, want);
    remove(path);
}

static ts_model *load_ok(const tiny_spec *sp, const char *name) {
    char path[256], err[TS_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/%s.gguf", dir, name);
    if (tiny_write(sp, path)) return NULL;
    ts_model *m = NULL;
    if (ts_model_load(path, &m, err)) {
        printf("FAIL load %s: %s\n", name, err);
        failures++;
    }
    return m;
}

static void collect_line(void *user, const char *line) {
    char *buf = user;
    strncat(buf, line, 16000 - strlen(buf) - 2);
    strcat(buf, "\n");
}

int main(void) {
    if (!mkdtemp(dir)) return 1;

    /* A good llama file with GQA and linear RoPE scaling. */
    tiny_spec sp = tiny_default("llama");
    sp.n_head = 8, sp.n_head_kv = 2, sp.linear_factor = 4.0f, sp.freq_base = 100000.0f;
    ts_model *m = load_ok(&sp, "good");
    if (!m) return 1;
    ts_model_info info;
    ts_model_get_info(m, &info);
    CHECK(strcmp(info.arch, "llama") == 0, "arch %s", info.arch);
    CHECK(strcmp(info.name, "tiny test model") == 0, "name %s", info.name);
    CHECK(info.n_layer == 2 && info.n_embd == 64 && info.n_head == 8 && info.n_head_kv == 2 && info.head_dim == 8 &&
              info.n_ff == 96 && info.n_vocab == 128 && info.n_ctx_train == 256,
          "hparams");
    CHECK(info.rope_freq_base == 100000.0f && info.rope_freq_scale == 0.25f, "rope %g %g", (double)info.rope_freq_base,
          (double)info.rope_freq_scale);
    CHECK(info.norm_eps == 1e-5f, "eps");
    CHECK(strcmp(info.weight_type, "f32") == 0, "weight type %s", info.weight_type);
    CHECK(info.bos == 1 && info.eos == 2, "bos/eos %d %d", info.bos, info.eos);
    /* params: embd + output + norm + per layer (q,k,v,o,gate,up,down + 2 norms). */
    const uint64_t per_layer = 64 * 64 + 2 * 64 * 16 + 64 * 64 + 3 * 64 * 96 + 2 * 64;
    const uint64_t params = 2 * 64 * 128 + 64 + 2 * per_layer;
    CHECK(info.n_params == params, "n_params %llu, expected %llu", (unsigned long long)info.n_params,
          (unsigned long long)params);
    CHECK(info.weight_bytes == params * 4, "weight bytes");
    CHECK(!m->output_tied && m->hp.rope_mode == TS_ROPE_NORM && strcmp(m->hp.rope_scaling, "linear") == 0, "rope/output");
    CHECK(m->tok_embd.data != NULL && m->layers[1].wk.n_out == 16, "tensor views");
    char *text = calloc(1, 16000);
    ts_model_describe(m, collect_line, text);
    CHECK(strstr(text, "arch:            llama") && strstr(text, "n_head_kv:       2") && strstr(text, "f32:21") &&
              strstr(text, "KV per token:    128 bytes") && strstr(text, "scaling linear"),
          "describe output:\n%s", text);
    free(text);
    ts_model_free(m);

    /* qwen2, tied output, F16 weights: NEOX rope, biases, output = token_embd. */
    tiny_spec q = tiny_default("qwen2");
    q.tied = true, q.wtype = TS_TYPE_F16;
    m = load_ok(&q, "qwen2");
    if (!m) return 1;
    CHECK(m->output_tied && m->output.data == m->tok_embd.data, "tied output");
    CHECK(m->hp.rope_mode == TS_ROPE_NEOX && m->layers[0].bq && m->layers[1].bv, "qwen2 rope/bias");
    ts_model_get_info(m, &info);
    CHECK(strcmp(info.weight_type, "f16") == 0, "weight type %s", info.weight_type);
    ts_model_free(m);

    /* llama3 rope_freqs. */
    tiny_spec l3 = tiny_default("llama");
    l3.rope_freqs = true;
    m = load_ok(&l3, "llama3");
    if (!m) return 1;
    CHECK(m->rope_freqs && strcmp(m->hp.rope_scaling, "llama3") == 0, "rope_freqs");
    ts_model_free(m);

    /* Broken files. */
    tiny_spec bad = tiny_default("llama");
    bad.skip_key = "llama.attention.layer_norm_rms_epsilon";
    expect_error(&bad, "missing key 'llama.attention.layer_norm_rms_epsilon'");
    bad = tiny_default("qwen2");
    bad.skip_key = "qwen2.block_count";
    expect_error(&bad, "missing key 'qwen2.block_count'");
    bad = tiny_default("llama");
    bad.skip_key = "general.architecture";
    expect_error(&bad, "missing key 'general.architecture'");
    bad = tiny_default("llama");
    bad.n_layer = 4, bad.n_embd = 256, bad.n_head = 2, bad.n_head_kv = 2, bad.bad_shape_tensor = "blk.3.attn_k.weight";
    expect_error(&bad, "tensor 'blk.3.attn_k.weight' has shape [256, 128], expected [256, 256]");
    bad = tiny_default("llama");
    bad.skip_tensor = "blk.1.ffn_down.weight";
    expect_error(&bad, "tensor 'blk.1.ffn_down.weight' is missing");
    bad = tiny_default("qwen2");
    bad.skip_tensor = "blk.0.attn_k.bias";
    expect_error(&bad, "tensor 'blk.0.attn_k.bias' is missing");
    bad = tiny_default("llama");
    bad.skip_tensor = "output_norm.weight";
    expect_error(&bad, "tensor 'output_norm.weight' is missing");
    bad = tiny_default("foo");
    expect_error(&bad, "architecture 'foo' is not supported (supported: llama, qwen2, deepseek, deepseek2)");
    bad = tiny_default("llama");
    bad.n_head_kv = 3;
    expect_error(&bad, "head_count_kv 3 does not divide head_count 4");

    char err[TS_ERR_LEN] = "";
    m = NULL;
    CHECK(ts_model_load("/nonexistent/model.gguf", &m, err) != 0 && m == NULL && err[0], "nonexistent file");

    /* The kernels' instruction set chosen at load (ts_model_load_isa). */
    char path[256];
    snprintf(path, sizeof path, "%s/isa.gguf", dir);
    const tiny_spec isa_spec = tiny_default("llama");
    if (tiny_write(&isa_spec, path) == 0) {
        const char *const names[] = {NULL, "auto", "scalar"};
        const char *const want[] = {ts_isa_name(ts_isa_best()), ts_isa_name(ts_isa_best()), "scalar"};
        for (int i = 0; i < 3; i++) {
            m = NULL;
            err[0] = 0;
            CHECK(ts_model_load_isa(path, names[i], &m, err) == 0 && m, "load with isa %s: %s", names[i] ? names[i] : "NULL", err);
            if (!m) continue;
            ts_model_get_info(m, &info);
            CHECK(strcmp(info.kernels, want[i]) == 0, "isa %s: kernels %s, expected %s", names[i] ? names[i] : "NULL",
                  info.kernels, want[i]);
            ts_model_free(m);
        }
        m = (ts_model *)1;
        CHECK(ts_model_load_isa(path, "avx9", &m, err) != 0 && m == NULL &&
                  strcmp(err, "unknown instruction set 'avx9' (avx512, avxvnni, avx2, neon, scalar or auto)") == 0,
              "unknown isa: %s", err);
        /* An instruction set of another architecture: never runnable. */
        const char *foreign = ts_isa_supported(TS_ISA_NEON) ? "avx2" : "neon";
        char expect[TS_ERR_LEN];
        snprintf(expect, sizeof expect, "this build or CPU cannot run %s kernels (best here: %s)", foreign,
                 ts_isa_name(ts_isa_best()));
        m = (ts_model *)1;
        CHECK(ts_model_load_isa(path, foreign, &m, err) != 0 && m == NULL && strcmp(err, expect) == 0,
              "foreign isa: %s", err);
        remove(path);
    }

    rmdir(dir);
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("all loader tests passed\n");
    return 0;
}
