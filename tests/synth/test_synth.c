/* Tests of the synthetic model writer: every preset (tiny ones written, full ones planned) gives a
 * GGUF our reader accepts with the planned tensors, shapes and types; the vocabulary is consistent;
 * output depends on the seed only (not the thread count); existing files are not overwritten;
 * Hugging Face configs are read and bad ones refused with a clear message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "quant/types.h"
#include "synth/synth_model.h"
#include "synth/synth_plan.h"
#include "synth/vocab_gen.h"
#include "tiefsee.h"
#include "util/fp16.h"

static int failures;

#define CHECK(cond, ...)                                                                                \
    do {                                                                                                \
        if (!(cond)) {                                                                                  \
            failures++;                                                                                 \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);                    \
            fprintf(stderr, __VA_ARGS__);                                                               \
            fputc('\n', stderr);                                                                        \
        }                                                                                               \
    } while (0)

static char tmp_dir[64];

static void path_in_tmp(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", tmp_dir, name); }

static int synth(const char *preset, const char *hf, const char *type, uint64_t seed, const char *path, bool overwrite,
                 int threads, char err[TS_ERR_LEN]) {
    ts_synth_params p = {.preset = preset, .hf_config = hf, .type = type, .seed = seed, .out_path = path,
                         .overwrite = overwrite, .n_threads = threads};
    return ts_synth(&p, err);
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static bool str_eq(gguf_str s, const char *c) { return gguf_str_eq(s, c); }

static int cmp_strp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool in_sorted(char **sorted, uint64_t n, const char *key) {
    return bsearch(&key, sorted, n, sizeof *sorted, cmp_strp) != NULL;
}

/* Decodes a whole tensor to floats (caller frees). */
static float *tensor_floats(const gguf_tensor *t) {
    int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    float *y = malloc((size_t)n * sizeof *y);
    if (y) ts_type_table(TS_ISA_SCALAR)[t->type].to_float(t->data, y, n);
    return y;
}

/* Checks the file against the plan for the same model and type, and the vocabulary. */
static void check_file(const char *path, const synth_model *m, const char *type) {
    gguf_file *f = NULL;
    ts_err e = {{0}};
    if (gguf_open(path, &f, &e) != 0) {
        CHECK(0, "%s: gguf_open failed: %s", path, e.msg);
        return;
    }
    synth_type_request req;
    CHECK(synth_parse_type(type, &req, &e) == 0, "%s", e.msg);
    synth_tensor *plan = NULL;
    int n_plan = 0;
    CHECK(synth_plan_tensors(m, &req, &plan, &n_plan, &e) == 0, "%s", e.msg);
    CHECK(gguf_n_tensors(f) == n_plan, "%s: %lld tensors, planned %d", path, (long long)gguf_n_tensors(f), n_plan);
    for (int i = 0; i < n_plan; i++) {
        const gguf_tensor *t = gguf_find_tensor(f, plan[i].name);
        CHECK(t != NULL, "%s: tensor %s missing", path, plan[i].name);
        if (!t) continue;
        CHECK(t->type == plan[i].type, "%s: %s type %d, planned %d", path, t->name, t->type, plan[i].type);
        CHECK(t->n_dims == plan[i].n_dims, "%s: %s dims %d", path, t->name, t->n_dims);
        for (int d = 0; d < 3; d++) CHECK(t->ne[d] == plan[i].ne[d], "%s: %s ne[%d]=%lld", path, t->name, d, (long long)t->ne[d]);
        if (plan[i].n_dims == 1) CHECK(t->type == TS_TYPE_F32, "%s: 1-D tensor %s not F32", path, t->name);
    }
    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    CHECK(emb && emb->ne[0] == m->n_embd && emb->ne[1] == m->n_vocab, "%s: token_embd shape", path);
    CHECK((gguf_find_tensor(f, "output.weight") == NULL) == m->tied_embeddings, "%s: output.weight presence", path);

    gguf_str s;
    CHECK(gguf_get_str(f, "general.architecture", &s, &e) == 0, "%s: no architecture", path);
    const char *arch = m->arch == SYNTH_ARCH_QWEN2 ? "qwen2" : m->arch == SYNTH_ARCH_DEEPSEEK ? "deepseek"
                       : m->arch == SYNTH_ARCH_DEEPSEEK2 ? "deepseek2" : "llama";
    CHECK(str_eq(s, arch), "%s: architecture %.*s", path, (int)s.len, s.ptr);
    char key[96];
    uint32_t u = 0;
    snprintf(key, sizeof key, "%s.block_count", arch);
    CHECK(gguf_get_u32(f, key, &u, &e) == 0 && u == (uint32_t)m->n_layer, "%s: %s", path, key);
    snprintf(key, sizeof key, "%s.embedding_length", arch);
    CHECK(gguf_get_u32(f, key, &u, &e) == 0 && u == (uint32_t)m->n_embd, "%s: %s", path, key);
    float eps = 0;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    CHECK(gguf_get_f32(f, key, &eps, &e) == 0 && eps == m->norm_eps, "%s: %s", path, key);

    /* Vocabulary: size, unique tokens, merges consistent, special ids in range and CONTROL. */
    const gguf_kv *toks = NULL, *types = NULL, *merges = NULL;
    CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING, &toks, &e) == 0, "%s: tokens: %s", path, e.msg);
    CHECK(gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_I32, &types, &e) == 0, "%s: token_type: %s", path, e.msg);
    CHECK(gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_STRING, &merges, &e) == 0, "%s: merges: %s", path, e.msg);
    if (toks && types && merges) {
        CHECK(toks->arr_n == (uint64_t)m->n_vocab && types->arr_n == toks->arr_n, "%s: %llu tokens", path,
              (unsigned long long)toks->arr_n);
        CHECK(merges->arr_n > 200, "%s: only %llu merges", path, (unsigned long long)merges->arr_n);
        /* Sorted copies of the tokens: uniqueness, then every merge "a b" needs a, b and ab. */
        const uint64_t n = toks->arr_n;
        char **sorted = malloc(n * sizeof *sorted);
        for (uint64_t i = 0; i < n; i++) {
            gguf_str t = gguf_arr_str(toks, i);
            sorted[i] = strndup(t.ptr, t.len);
        }
        qsort(sorted, n, sizeof *sorted, cmp_strp);
        int dups = 0;
        for (uint64_t i = 1; i < n; i++) dups += strcmp(sorted[i - 1], sorted[i]) == 0;
        CHECK(dups == 0, "%s: %d duplicate tokens", path, dups);
        int bad = 0;
        for (uint64_t i = 0; i < merges->arr_n; i++) {
            gguf_str mg = gguf_arr_str(merges, i);
            char *line = strndup(mg.ptr, mg.len);
            char *sp = strchr(line, ' ');
            if (!sp || sp == line || !sp[1]) {
                bad++;
                free(line);
                continue;
            }
            *sp = 0;
            char *right = sp + 1, *joined = malloc(strlen(line) + strlen(right) + 1);
            strcpy(joined, line);
            strcat(joined, right);
            if (!in_sorted(sorted, n, line) || !in_sorted(sorted, n, right) || !in_sorted(sorted, n, joined)) {
                if (bad < 3) fprintf(stderr, "bad merge %s + %s\n", line, right);
                bad++;
            }
            free(joined);
            free(line);
        }
        CHECK(bad == 0, "%s: %d merges refer to missing tokens", path, bad);
        /* the byte-level spelling of " the" must be one token so English text gets merged */
        CHECK(in_sorted(sorted, n, "\xC4\xA0the"), "%s: no token for ' the'", path);
        for (uint64_t i = 0; i < n; i++) free(sorted[i]);
        free(sorted);
    }
    uint32_t bos = 0, eos = 0;
    CHECK(gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &bos, &e) == 0 && bos < (uint32_t)m->n_vocab, "%s: bos", path);
    CHECK(gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &eos, &e) == 0 && eos < (uint32_t)m->n_vocab, "%s: eos", path);
    if (types && bos < types->arr_n && eos < types->arr_n) {
        const int32_t *ty = types->data;
        int32_t tb, te;
        memcpy(&tb, &ty[bos], 4);
        memcpy(&te, &ty[eos], 4);
        CHECK(tb == SYNTH_TOKEN_CONTROL && te == SYNTH_TOKEN_CONTROL, "%s: bos/eos not CONTROL", path);
        gguf_str bt = gguf_arr_str(toks, bos);
        CHECK(str_eq(bt, "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"), "%s: bos text %.*s", path,
              (int)bt.len, bt.ptr);
    }
    free(plan);
    gguf_close(f);
}

/* Every tiny preset (and demo) is written and checked; full-size ones are only planned (a planned
 * full model must have sane sizes, and the 7B/8B shapes must come out at the known sizes). */
static void test_presets(void) {
    const char *const *names = ts_synth_presets();
    int n = 0;
    for (; names[n]; n++) {
        CHECK(ts_synth_preset_desc(names[n]) != NULL, "no description for %s", names[n]);
        synth_model m;
        ts_err e = {{0}};
        CHECK(synth_preset_model(names[n], &m, &e) == 0, "%s", e.msg);
        CHECK(synth_model_validate(&m, &e) == 0, "%s: %s", names[n], e.msg);
        if (strncmp(names[n], "tiny-", 5) != 0 && strcmp(names[n], "demo") != 0) continue;
        const char *types[] = {"f16", "q4_K_M"};
        for (int k = 0; k < 2; k++) {
            char path[160], err[TS_ERR_LEN] = "";
            snprintf(path, sizeof path, "%s/%s-%s.gguf", tmp_dir, names[n], types[k]);
            int rc = synth(names[n], NULL, types[k], 1, path, false, 2, err);
            CHECK(rc == 0, "%s %s: %s", names[n], types[k], err);
            if (rc == 0) check_file(path, &m, types[k]);
            unlink(path);
        }
    }
    CHECK(n >= 17, "only %d presets", n);
    CHECK(ts_synth_preset_desc("no-such-preset") == NULL, "unknown preset has a description");
    char err[TS_ERR_LEN] = "", path[160];
    path_in_tmp(path, sizeof path, "x.gguf");
    CHECK(synth("no-such-preset", NULL, "f16", 1, path, false, 1, err) != 0 && strstr(err, "no-such-preset"),
          "unknown preset accepted or unnamed: %s", err);
    CHECK(synth("tiny-llama", NULL, "q9_X", 1, path, false, 1, err) != 0 && strstr(err, "q9_X"), "bad type: %s", err);
    CHECK(access(path, F_OK) != 0, "a failed run left %s", path);

    /* Full-size plans: parameter counts of the real models (within 2%). */
    struct { const char *name; double params; } sizes[] = {
        {"r1-distill-qwen-1.5b", 1.78e9}, {"r1-distill-qwen-7b", 7.62e9}, {"r1-distill-llama-8b", 8.03e9},
        {"deepseek-llm-7b", 6.91e9},      {"deepseek-coder-1.3b", 1.35e9}, {"deepseek-v2-lite", 15.7e9},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        synth_model m;
        synth_type_request req;
        synth_tensor *t = NULL;
        int nt = 0;
        ts_err e = {{0}};
        if (synth_preset_model(sizes[i].name, &m, &e) || synth_parse_type("q4_K_M", &req, &e) ||
            synth_plan_tensors(&m, &req, &t, &nt, &e)) {
            CHECK(0, "%s: %s", sizes[i].name, e.msg);
            continue;
        }
        double params = 0;
        for (int k = 0; k < nt; k++) params += (double)t[k].ne[0] * (double)t[k].ne[1] * (double)t[k].ne[2];
        CHECK(fabs(params / sizes[i].params - 1) < 0.02, "%s: %.3g params, expected %.3g", sizes[i].name, params,
              sizes[i].params);
        free(t);
    }
}

/* Q4_K_M follows llama.cpp: output.weight Q6_K, attn_v/ffn_down Q6_K in use_more_bits layers,
 * Q4_K elsewhere; rows that do not fit 256-blocks fall back (Q4_K -> Q5_0). */
static void test_mix_rules(void) {
    synth_model m;
    synth_type_request req;
    synth_tensor *t = NULL;
    int nt = 0;
    ts_err e = {{0}};
    CHECK(synth_preset_model("r1-distill-qwen-7b", &m, &e) == 0 && synth_parse_type("Q4_K_M", &req, &e) == 0 &&
              synth_plan_tensors(&m, &req, &t, &nt, &e) == 0,
          "%s", e.msg);
    for (int i = 0; i < nt; i++) {
        int l = -1;
        sscanf(t[i].name, "blk.%d.", &l);
        /* 28 layers: use_more_bits = l < 3 || l >= 24 || (l - 3) % 3 == 2 */
        bool more = l >= 0 && (l < 3 || l >= 24 || (l - 3) % 3 == 2);
        if (strcmp(t[i].name, "output.weight") == 0) CHECK(t[i].type == TS_TYPE_Q6_K, "output.weight %d", t[i].type);
        else if (strcmp(t[i].name, "token_embd.weight") == 0) CHECK(t[i].type == TS_TYPE_Q4_K, "token_embd %d", t[i].type);
        else if (strstr(t[i].name, "attn_v.weight") || strstr(t[i].name, "ffn_down"))
            CHECK(t[i].type == (more ? TS_TYPE_Q6_K : TS_TYPE_Q4_K), "%s type %d", t[i].name, t[i].type);
        else if (t[i].n_dims == 1) CHECK(t[i].type == TS_TYPE_F32, "%s", t[i].name);
        else CHECK(t[i].type == TS_TYPE_Q4_K, "%s type %d", t[i].name, t[i].type);
    }
    free(t);

    /* Coder 1.3B: ffn_down rows are 5504 long (not a multiple of 256). */
    CHECK(synth_preset_model("deepseek-coder-1.3b", &m, &e) == 0 && synth_parse_type("q4_K", &req, &e) == 0 &&
              synth_plan_tensors(&m, &req, &t, &nt, &e) == 0,
          "%s", e.msg);
    for (int i = 0; i < nt; i++)
        if (strstr(t[i].name, "ffn_down")) CHECK(t[i].type == TS_TYPE_Q5_0, "%s type %d", t[i].name, t[i].type);
    free(t);
    /* Tied embeddings: token_embd is the LM head and gets the output's Q6_K. */
    CHECK(synth_preset_model("tiny-qwen2-tied", &m, &e) == 0 && synth_parse_type("q4_K_M", &req, &e) == 0 &&
              synth_plan_tensors(&m, &req, &t, &nt, &e) == 0,
          "%s", e.msg);
    CHECK(strcmp(t[0].name, "token_embd.weight") == 0 && t[0].type == TS_TYPE_Q6_K, "tied token_embd %d", t[0].type);
    free(t);
}

/* Same seed -> same bytes whatever the thread count; another seed -> other bytes; weights have the
 * intended statistics. */
static void test_determinism(void) {
    char a[160], b[160], c[160], err[TS_ERR_LEN] = "";
    path_in_tmp(a, sizeof a, "det1.gguf");
    path_in_tmp(b, sizeof b, "det3.gguf");
    path_in_tmp(c, sizeof c, "det_other.gguf");
    CHECK(synth("tiny-llama-gqa", NULL, "q4_K_M", 42, a, false, 1, err) == 0, "%s", err);
    CHECK(synth("tiny-llama-gqa", NULL, "q4_K_M", 42, b, false, 3, err) == 0, "%s", err);
    CHECK(synth("tiny-llama-gqa", NULL, "q4_K_M", 43, c, false, 2, err) == 0, "%s", err);
    size_t la = 0, lb = 0, lc = 0;
    unsigned char *da = read_all(a, &la), *db = read_all(b, &lb), *dc = read_all(c, &lc);
    CHECK(da && db && dc, "cannot read back");
    if (da && db && dc) {
        CHECK(la == lb && memcmp(da, db, la) == 0, "1 and 3 threads give different files");
        CHECK(la == lc && memcmp(da, dc, la) != 0, "seeds 42 and 43 give the same file");
    }
    free(da);
    free(db);
    free(dc);

    /* Statistics at f32: matrices ~N(0, 1/sqrt(fan_in)), norms ~1. */
    CHECK(synth("tiny-llama3", NULL, "f32", 7, a, true, 2, err) == 0, "%s", err);
    gguf_file *f = NULL;
    ts_err e = {{0}};
    if (gguf_open(a, &f, &e) != 0) {
        CHECK(0, "%s", e.msg);
        return;
    }
    const gguf_tensor *q = gguf_find_tensor(f, "blk.1.attn_q.weight");
    const gguf_tensor *nrm = gguf_find_tensor(f, "blk.0.ffn_norm.weight");
    const gguf_tensor *rf = gguf_find_tensor(f, "rope_freqs.weight");
    CHECK(q && nrm && rf, "tensors missing");
    if (q && nrm && rf) {
        float *x = tensor_floats(q);
        const int64_t n = q->ne[0] * q->ne[1];
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) s += x[i], s2 += (double)x[i] * x[i];
        const double mean = s / n, sd = sqrt(s2 / n - mean * mean);
        CHECK(fabs(mean) < 0.005 && fabs(sd * sqrt((double)q->ne[0]) - 1) < 0.03, "attn_q mean %g sd %g", mean, sd);
        free(x);
        x = tensor_floats(nrm);
        s = 0;
        for (int64_t i = 0; i < nrm->ne[0]; i++) s += x[i];
        CHECK(fabs(s / (double)nrm->ne[0] - 1) < 0.05, "norm mean %g", s / (double)nrm->ne[0]);
        free(x);
        /* llama3 divisors: 1 for the fastest pairs, the factor 8 for the slowest, monotone between. */
        const float *ff = rf->data;
        CHECK(rf->ne[0] == 32 && ff[0] == 1.0f && ff[31] == 8.0f, "rope_freqs %g .. %g", ff[0], ff[31]);
        for (int i = 1; i < 32; i++) CHECK(ff[i] >= ff[i - 1], "rope_freqs not monotone at %d", i);
    }
    gguf_close(f);
    unlink(a);
    unlink(b);
    unlink(c);
}

/* A quantized file holds the same weights as the f32 file of the same seed, up to quantization
 * error: checks that chunks land in the right rows and that every type's encoder is applied. */
static void test_quantized_matches_f32(void) {
    char ref_path[160], q_path[160], err[TS_ERR_LEN] = "";
    path_in_tmp(ref_path, sizeof ref_path, "ref.gguf");
    path_in_tmp(q_path, sizeof q_path, "q.gguf");
    CHECK(synth("tiny-deepseek2", NULL, "f32", 9, ref_path, false, 2, err) == 0, "%s", err);
    struct { const char *type; double max_rel; } cases[] = {
        {"f16", 0.001}, {"bf16", 0.005}, {"q8_0", 0.01}, {"q6_K", 0.03}, {"q5_K", 0.05}, {"q5_0", 0.08},
        {"q4_K", 0.1},  {"q4_0", 0.15},  {"q3_K", 0.25}, {"q2_K", 0.45},
    };
    gguf_file *ref = NULL;
    ts_err e = {{0}};
    if (gguf_open(ref_path, &ref, &e) != 0) {
        CHECK(0, "%s", e.msg);
        return;
    }
    const char *names[] = {"blk.1.attn_q_b.weight", "blk.2.ffn_down_exps.weight", "token_embd.weight"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        CHECK(synth("tiny-deepseek2", NULL, cases[c].type, 9, q_path, true, 3, err) == 0, "%s", err);
        gguf_file *q = NULL;
        if (gguf_open(q_path, &q, &e) != 0) {
            CHECK(0, "%s", e.msg);
            continue;
        }
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            const gguf_tensor *a = gguf_find_tensor(ref, names[k]), *b = gguf_find_tensor(q, names[k]);
            if (!a || !b) {
                CHECK(0, "%s missing", names[k]);
                continue;
            }
            float *x = tensor_floats(a), *y = tensor_floats(b);
            const int64_t n = a->ne[0] * a->ne[1] * a->ne[2];
            double d2 = 0, x2 = 0;
            for (int64_t i = 0; i < n; i++) d2 += (double)(x[i] - y[i]) * (x[i] - y[i]), x2 += (double)x[i] * x[i];
            const double rel = sqrt(d2 / x2);
            CHECK(rel < cases[c].max_rel && rel > 0, "%s %s: relative error %g",
                  cases[c].type, names[k], rel);
            free(x);
            free(y);
        }
        gguf_close(q);
    }
    gguf_close(ref);
    unlink(ref_path);
    unlink(q_path);
}

static void test_overwrite(void) {
    char path[160], err[TS_ERR_LEN] = "";
    path_in_tmp(path, sizeof path, "exists.gguf");
    FILE *fp = fopen(path, "w");
    fputs("precious", fp);
    fclose(fp);
    CHECK(synth("tiny-llama", NULL, "f16", 1, path, false, 1, err) != 0, "overwrote an existing file");
    CHECK(strstr(err, path) != NULL, "error does not name the file: %s", err);
    size_t len = 0;
    unsigned char *d = read_all(path, &len);
    CHECK(d && len == 8 && memcmp(d, "precious", 8) == 0, "existing file was changed");
    free(d);
    CHECK(synth("tiny-llama", NULL, "f16", 1, path, true, 1, err) == 0, "overwrite refused: %s", err);
    gguf_file *f = NULL;
    ts_err e = {{0}};
    CHECK(gguf_open(path, &f, &e) == 0, "replaced file unreadable: %s", e.msg);
    gguf_close(f);
    unlink(path);
    /* an unwritable directory: error, and nothing left behind */
    CHECK(synth("tiny-llama", NULL, "f16", 1, "/nonexistent-dir/x.gguf", false, 1, err) != 0, "wrote into a missing dir");
    CHECK(synth(NULL, NULL, "f16", 1, path, false, 1, err) != 0, "ran without preset or config");
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
}

static void test_hf_config(void) {
    const char *cfg = "tests/synth/data/config.json"; /* ctest runs in the repository root */
    synth_model m;
    ts_err e = {{0}};
    CHECK(synth_model_from_hf_config(cfg, &m, &e) == 0, "%s", e.msg);
    CHECK(m.arch == SYNTH_ARCH_LLAMA && m.n_embd == 256 && m.n_ff == 640 && m.n_head == 4 && m.n_head_kv == 2 &&
              m.head_dim == 64 && m.n_vocab == 1000 && m.n_ctx_train == 16384 && m.rope_theta == 100000.0f &&
              m.rope_scaling == SYNTH_ROPE_LINEAR && m.rope_factor == 4.0f && !m.tied_embeddings,
          "config fields read wrong");
    char path[160], err[TS_ERR_LEN] = "";
    path_in_tmp(path, sizeof path, "hf.gguf");
    CHECK(synth(NULL, cfg, "q4_K", 5, path, false, 2, err) == 0, "%s", err);
    check_file(path, &m, "q4_K");
    /* 640-wide ffn_down rows do not fit 256-blocks: Q4_K falls back to Q5_0 */
    gguf_file *f = NULL;
    if (gguf_open(path, &f, &e) == 0) {
        const gguf_tensor *t = gguf_find_tensor(f, "blk.0.ffn_down.weight");
        CHECK(t && t->type == TS_TYPE_Q5_0, "ffn_down type %d", t ? t->type : -1);
        gguf_close(f);
    }
    unlink(path);

    /* Other model types and bad inputs. */
    char cpath[160];
    path_in_tmp(cpath, sizeof cpath, "config.json");
    write_text(cpath, "{\"model_type\":\"qwen2\",\"hidden_size\":256,\"intermediate_size\":512,\"num_hidden_layers\":2,"
                      "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":1100,"
                      "\"max_position_embeddings\":4096,\"rms_norm_eps\":1e-6,\"rope_theta\":10000.0,"
                      "\"tie_word_embeddings\":true}");
    CHECK(synth_model_from_hf_config(cpath, &m, &e) == 0 && m.arch == SYNTH_ARCH_QWEN2 && m.qkv_bias && m.tied_embeddings &&
              m.vocab == SYNTH_VOCAB_QWEN2,
          "qwen2 config: %s", e.msg);
    write_text(cpath, "{\"model_type\":\"deepseek_v3\",\"hidden_size\":256,\"intermediate_size\":512,"
                      "\"num_hidden_layers\":3,\"num_attention_heads\":4,\"vocab_size\":1200,"
                      "\"max_position_embeddings\":4096,\"rms_norm_eps\":1e-6,\"q_lora_rank\":256,\"kv_lora_rank\":256,"
                      "\"qk_nope_head_dim\":64,\"qk_rope_head_dim\":32,\"v_head_dim\":64,\"moe_intermediate_size\":256,"
                      "\"n_routed_experts\":16,\"n_shared_experts\":1,\"num_experts_per_tok\":4,"
                      "\"first_k_dense_replace\":1,\"n_group\":4,\"topk_group\":2,\"topk_method\":\"noaux_tc\","
                      "\"scoring_func\":\"sigmoid\",\"norm_topk_prob\":true,\"routed_scaling_factor\":2.5,"
                      "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":40,\"original_max_position_embeddings\":4096,"
                      "\"mscale\":1.0,\"mscale_all_dim\":1.0}}");
    CHECK(synth_model_from_hf_config(cpath, &m, &e) == 0 && m.arch == SYNTH_ARCH_DEEPSEEK2 && m.expert_probs_bias &&
              m.expert_gating_func == 2 && m.rope_scaling == SYNTH_ROPE_YARN && m.vocab == SYNTH_VOCAB_DEEPSEEK_V3,
          "deepseek_v3 config: %s", e.msg);
    CHECK(synth(NULL, cpath, "q8_0", 5, path, false, 2, err) == 0, "%s", err);
    check_file(path, &m, "q8_0");
    unlink(path);

    struct { const char *json, *expect; } bad[] = {
        {"{\"model_type\":\"llama\"}", "num_hidden_layers"},
        {"{\"model_type\":\"gpt2\"}", "gpt2"},
        {"[1,2]", "JSON object"},
        {"{\"model_type\":\"llama\",", "JSON"},
        {"{\"model_type\":\"llama\",\"hidden_size\":\"big\",\"num_hidden_layers\":2}", "hidden_size"},
        {"{\"model_type\":\"llama\",\"hidden_size\":256,\"intermediate_size\":512,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"num_key_value_heads\":3,\"vocab_size\":1000,\"max_position_embeddings\":4096,"
         "\"rms_norm_eps\":1e-6}", "num_key_value_heads"},
        {"{\"model_type\":\"llama\",\"hidden_size\":256,\"intermediate_size\":512,\"num_hidden_layers\":-2,"
         "\"num_attention_heads\":4,\"vocab_size\":1000,\"max_position_embeddings\":4096,\"rms_norm_eps\":1e-6}",
         "num_hidden_layers"},
        {"{\"model_type\":\"llama\",\"hidden_size\":256,\"intermediate_size\":512,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"vocab_size\":1000,\"max_position_embeddings\":4096,\"rms_norm_eps\":1e-6,"
         "\"rope_scaling\":{\"type\":\"dynamic\",\"factor\":2}}", "dynamic"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(cpath, bad[i].json);
        e.msg[0] = 0;
        CHECK(synth_model_from_hf_config(cpath, &m, &e) != 0, "accepted %s", bad[i].json);
        CHECK(strstr(e.msg, bad[i].expect) != NULL && strstr(e.msg, cpath) != NULL, "error for %s: %s", bad[i].json, e.msg);
    }
    CHECK(synth(NULL, "/nonexistent/config.json", "f16", 1, path, false, 1, err) != 0 && strstr(err, "/nonexistent/config.json"),
          "missing config: %s", err);
    unlink(cpath);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/ts_synth_test_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_presets();
    test_mix_rules();
    test_determinism();
    test_quantized_matches_f32();
    test_overwrite();
    test_hf_config();
    rmdir(tmp_dir);
    if (failures) {
        fprintf(stderr, "test_synth: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_synth: all passed\n");
    return 0;
}
