/* Byte-level BPE tests on hand-built vocabularies (written with the GGUF writer, read back from
 * memory): merge order, special tokens, round trips, validation, speed on long input. If
 * llama.cpp's vocab-only DeepSeek-LLM GGUF is around in /tmp/llama-src, its test vectors must match
 * too (test_vocab_vectors.sh runs all of them from the bundled llama.cpp source in CI). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

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

/* ---- building vocabularies ------------------------------------------------------------------ */

typedef struct vocab_spec {
    const char *model;         /* tokenizer.ggml.model */
    const char **extra;        /* tokens after the 256 byte tokens */
    const int *extra_types;    /* their types (NULL = all normal) */
    int n_extra;
    const char **merges;
    int n_merges;
    int bos, eos;              /* -1 = key absent */
    int add_bos;               /* -1 = key absent */
    int token_type_len_delta;  /* to build a broken token_type array */
} vocab_spec;

static void put_utf8(unsigned cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

/* GPT-2's byte -> code point table, computed independently of the implementation. */
static unsigned byte_cp(int b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)
        return (unsigned)b;
    unsigned n = 0;
    for (int i = 0; i < b; i++)
        if (!((i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || i >= 0xAE))
            n++;
    return 0x100 + n;
}

typedef struct built {
    char *buf;
    size_t len;
    gguf_file *file;
} built;

static int build_vocab(const vocab_spec *spec, built *out, ts_err *err) {
    int n = 256 + spec->n_extra;
    char **texts = malloc((size_t)n * sizeof *texts);
    int32_t *types = malloc((size_t)(n + 4) * sizeof *types);
    for (int b = 0; b < 256; b++) {
        texts[b] = malloc(4);
        put_utf8(byte_cp(b), texts[b]);
        types[b] = 1;
    }
    for (int i = 0; i < spec->n_extra; i++) {
        texts[256 + i] = strdup(spec->extra[i]);
        types[256 + i] = spec->extra_types ? spec->extra_types[i] : 1;
    }
    for (int i = n; i < n + 4; i++)
        types[i] = 1;
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "tokenizer.ggml.model", spec->model);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)texts, (uint64_t)n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, types, (uint64_t)(n + spec->token_type_len_delta));
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", spec->merges, (uint64_t)spec->n_merges);
    if (spec->bos >= 0)
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)spec->bos);
    if (spec->eos >= 0)
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)spec->eos);
    if (spec->add_bos >= 0)
        gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", spec->add_bos != 0);
    out->buf = NULL;
    out->len = 0;
    FILE *fp = open_memstream(&out->buf, &out->len);
    int rc = gguf_writer_write_header(w, fp, err);
    if (rc == 0)
        rc = gguf_writer_finish(w, fp, err);
    fclose(fp);
    gguf_writer_free(w);
    for (int i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(types);
    if (rc != 0)
        return rc;
    return gguf_open_memory(out->buf, out->len, "test-vocab", &out->file, err);
}

static void built_free(built *b) {
    gguf_close(b->file);
    free(b->buf);
}

/* Loads a vocabulary from a spec; NULL (with err) on failure. */
static ts_vocab *load_spec(const vocab_spec *spec, int n_vocab_model, built *b, ts_err *err) {
    ts_vocab *v = NULL;
    memset(b, 0, sizeof *b);
    if (build_vocab(spec, b, err) != 0)
        return NULL;
    if (ts_vocab_load(b->file, n_vocab_model, &v, err) != 0)
        v = NULL;
    return v;
}

static int encode(const ts_vocab *v, const char *s, size_t len, bool bos, ts_token *out, int cap) {
    return ts_vocab_encode(v, s, len, bos, out, cap);
}

static bool tokens_eq(const ts_token *a, int na, const ts_token *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

/* Concatenated bytes of a token sequence. */
static size_t decode(const ts_vocab *v, const ts_token *t, int n, char *out, size_t cap) {
    size_t len = 0;
    char buf[65536];
    for (int i = 0; i < n; i++) {
        int k = ts_vocab_token_bytes(v, t[i], buf, (int)sizeof buf);
        if (k < 0 || len + (size_t)k > cap)
            return (size_t)-1;
        memcpy(out + len, buf, (size_t)k);
        len += (size_t)k;
    }
    return len;
}

/* Ids of the extra tokens: 256 + index in spec->extra. */
enum { T_AB = 256, T_BC, T_ABC, T_AA, T_END, T_UE, T_GA, T_GAB, T_PAD };

static const char *extra_tokens[] = {"ab", "bc", "abc", "aa", "<|end|>", "\xC3\xBC" /* ü */, "\304\240a", "\304\240ab", "[PAD0]"};
static const int extra_types[] = {1, 1, 1, 1, 3, 4, 1, 1, 5};

static void test_merge_order(void) {
    ts_err err = {{0}};
    built b;
    ts_token out[64];

    /* b+c ranks before a+b: "abc" -> a|bc -> abc */
    const char *merges1[] = {"\xC4\xA0 a", "b c", "a b", "a bc", "a a", "\304\240a b"};
    vocab_spec spec = {"gpt2", extra_tokens, extra_types, 9, merges1, 6, -1, -1, -1, 0};
    ts_vocab *v = load_spec(&spec, 0, &b, &err);
    CHECK(v != NULL, "load: %s", err.msg);
    if (!v)
        return;
    int n = encode(v, "abc", 3, false, out, 64);
    CHECK(n == 1 && out[0] == T_ABC, "rank order b+c first: got n=%d first=%d", n, out[0]);
    n = encode(v, "aaa", 3, false, out, 64);
    CHECK(n == 2 && out[0] == T_AA && out[1] == 'a', "equal ranks merge leftmost first: n=%d %d %d", n, out[0], out[1]);
    n = encode(v, " ab", 3, false, out, 64);
    CHECK(n == 1 && out[0] == T_GAB, "space+word piece: n=%d %d", n, out[0]);
    /* The pre-split keeps "x" and " ab" apart, so no merge crosses a word boundary. */
    n = encode(v, "b ab", 4, false, out, 64);
    CHECK(n == 2 && out[0] == 'b' && out[1] == T_GAB, "pre-split: n=%d %d %d", n, out[0], out[1]);
    /* Buffer too small: minus the count needed, nothing else changes. */
    n = encode(v, "abc abc", 7, false, out, 1);
    CHECK(n == -3, "cap too small must return -(needed), got %d", n);
    n = encode(v, "", 0, false, out, 0);
    CHECK(n == 0, "empty text gives no tokens, got %d", n);
    ts_vocab_free(v);
    built_free(&b);

    /* a+b ranks first: "abc" -> ab|c, and no "ab c" merge exists */
    const char *merges2[] = {"a b", "b c", "a bc"};
    vocab_spec spec2 = {"gpt2", extra_tokens, extra_types, 9, merges2, 3, -1, -1, -1, 0};
    v = load_spec(&spec2, 0, &b, &err);
    CHECK(v != NULL, "load: %s", err.msg);
    if (!v)
        return;
    n = encode(v, "abc", 3, false, out, 64);
    CHECK(n == 2 && out[0] == T_AB && out[1] == 'c', "rank order a+b first: n=%d %d %d", n, out[0], out[1]);
    ts_vocab_free(v);
    built_free(&b);
}

static void test_special_tokens(void) {
    ts_err err = {{0}};
    built b;
    ts_token out[64];
    const char *merges[] = {"a b", "b c", "a bc"};
    vocab_spec spec = {"gpt2", extra_tokens, extra_types, 9, merges, 3, T_END, T_END, 1, 0};
    ts_vocab *v = load_spec(&spec, 300, &b, &err);
    CHECK(v != NULL, "load: %s", err.msg);
    if (!v)
        return;
    CHECK(ts_vocab_bos(v) == T_END && ts_vocab_eos(v) == T_END && ts_vocab_add_bos(v), "special ids");
    CHECK(ts_vocab_is_eog(v, T_END) && !ts_vocab_is_eog(v, 'a') && !ts_vocab_is_eog(v, -1) &&
              !ts_vocab_is_eog(v, 100000),
          "eog");
    const char *text = "ab<|end|>F\xC3\xBChrer<|end";
    ts_token expect[] = {T_END, T_AB, T_END, 'F', T_UE, 'h', 'r', 'e', 'r', '<', '|', 'e', 'n', 'd'};
    int n = encode(v, text, strlen(text), true, out, 64);
    CHECK(tokens_eq(out, n, expect, 14), "special tokens matched whole (n=%d)", n);
    /* UNUSED tokens are not matched from text. */
    n = encode(v, "[PAD0]", 6, false, out, 64);
    CHECK(n == 6, "unused token must not be matched, n=%d", n);

    char buf[64];
    CHECK(ts_vocab_token_bytes(v, T_END, buf, 64) == 7 && memcmp(buf, "<|end|>", 7) == 0, "control token text");
    CHECK(ts_vocab_token_bytes(v, T_PAD, buf, 64) == 0, "unused token decodes to nothing");
    CHECK(ts_vocab_token_bytes(v, T_UE, buf, 64) == 2 && memcmp(buf, "\xC3\xBC", 2) == 0, "user-defined verbatim");
    CHECK(ts_vocab_token_bytes(v, T_GAB, buf, 64) == 3 && memcmp(buf, " ab", 3) == 0, "normal token unmapped");
    /* Token b is the mapped character of byte b: every byte decodes back to itself. */
    for (int t = 0; t < 256; t++)
        CHECK(ts_vocab_token_bytes(v, t, buf, 64) == 1 && (unsigned char)buf[0] == t, "byte token %d", t);
    CHECK(ts_vocab_token_bytes(v, T_GAB, buf, 2) == -1, "too small buffer must fail");
    CHECK(ts_vocab_token_bytes(v, 300, buf, 64) == -1 && ts_vocab_token_bytes(v, -1, buf, 64) == -1,
          "out-of-range token must fail");
    ts_vocab_free(v);
    built_free(&b);
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* What the tokens of text must decode to: the text itself where it is well-formed UTF-8, with
 * U+FFFD (EF BF BD) for each byte that starts no decodable sequence and for each sequence that
 * decodes but is ill-formed (overlong, surrogate, above U+10FFFF) -- llama.cpp's rule (pretok.c). */
static size_t expected_decode(const unsigned char *t, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = t[i];
        size_t want = c < 0x80 ? 1 : c >= 0xC0 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xF0 && c < 0xF8 ? 4 : 0;
        bool complete = want > 0 && want <= n - i;
        for (size_t k = 1; complete && k < want; k++)
            complete = (t[i + k] & 0xC0) == 0x80;
        if (!complete) { /* not decodable: this one byte becomes U+FFFD */
            memcpy(out + o, "\xEF\xBF\xBD", 3), o += 3, i++;
            continue;
        }
        uint32_t cp = want == 1 ? c : c & (0x7Fu >> want);
        for (size_t k = 1; k < want; k++)
            cp = cp << 6 | (t[i + k] & 0x3Fu);
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[want] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            memcpy(out + o, "\xEF\xBF\xBD", 3), o += 3;
        else
            memcpy(out + o, t + i, want), o += want;
        i += want;
    }
    return o;
}

static void test_round_trip(void) {
    ts_err err = {{0}};
    built b;
    const char *merges[] = {"b c", "a b", "a bc", "a a", "\xC4\xA0 a", "\304\240a b"};
    vocab_spec spec = {"gpt2", extra_tokens, extra_types, 9, merges, 6, -1, -1, -1, 0};
    ts_vocab *v = load_spec(&spec, 0, &b, &err);
    CHECK(v != NULL, "load: %s", err.msg);
    if (!v)
        return;
    static const char *pieces[] = {"a", "b", "c", " ", "  ", "\n", "\t", "'s", "'ll", "<|end|>", "\xC3\xBC", "\xE2\x82\xAC",
                                   "\xF0\x9F\xA6\x99", "1", "23", "!", "?.", "\r\n", "abc", " ab", "\x80", "\xFF", "\x00"};
    uint64_t seed = 0x1234567;
    char text[512], back[4096], want[3 * 512];
    ts_token toks[1024];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = 0;
        int n_pieces = (int)(rng_next(&seed) % 40);
        for (int p = 0; p < n_pieces; p++) {
            if (iter % 2) { /* random bytes */
                text[len++] = (char)(rng_next(&seed) & 0xFF);
            } else {
                const char *s = pieces[rng_next(&seed) % (sizeof pieces / sizeof pieces[0])];
                size_t sl = s[0] ? strlen(s) : 1;
                memcpy(text + len, s, sl);
                len += sl;
            }
        }
        int n = encode(v, text, len, false, toks, 1024);
        CHECK(n >= 0, "encode failed");
        if (n < 0)
            continue;
        size_t blen = decode(v, toks, n, back, sizeof back);
        size_t wlen = expected_decode((const unsigned char *)text, len, want);
        if (blen != wlen || memcmp(back, want, wlen) != 0) {
            CHECK(0, "round trip failed at iteration %d (len %zu -> %zu, want %zu)", iter, len, blen, wlen);
            break;
        }
    }
    ts_vocab_free(v);
    built_free(&b);
}

static void test_validation(void) {
    ts_err err = {{0}};
    built b;
    const char *merges[] = {"a b"};
    vocab_spec spec = {"llama", extra_tokens, extra_types, 9, merges, 1, -1, -1, -1, 0};
    ts_vocab *v = load_spec(&spec, 0, &b, &err);
    CHECK(v == NULL && strstr(err.msg, "llama"), "non-gpt2 model must be refused by name: %s", err.msg);
    ts_vocab_free(v);
    built_free(&b);

    const char *bad_merges[] = {"a b", "x zz"};
    vocab_spec spec2 = {"gpt2", extra_tokens, extra_types, 9, bad_merges, 2, -1, -1, -1, 0};
    v = load_spec(&spec2, 0, &b, &err);
    CHECK(v == NULL && strstr(err.msg, "merge 1"), "merge of unknown tokens must be refused: %s", err.msg);
    ts_vocab_free(v);
    built_free(&b);

    const char *no_space[] = {"ab"};
    vocab_spec spec3 = {"gpt2", extra_tokens, extra_types, 9, no_space, 1, -1, -1, -1, 0};
    v = load_spec(&spec3, 0, &b, &err);
    CHECK(v == NULL && strstr(err.msg, "merge 0"), "merge without space must be refused: %s", err.msg);
    ts_vocab_free(v);
    built_free(&b);

    vocab_spec spec4 = {"gpt2", extra_tokens, extra_types, 9, merges, 1, 5000, -1, -1, 0};
    v = load_spec(&spec4, 0, &b, &err);
    CHECK(v == NULL && strstr(err.msg, "bos_token_id"), "BOS outside the vocabulary must be refused: %s", err.msg);
    ts_vocab_free(v);
    built_free(&b);

    vocab_spec spec5 = {"gpt2", extra_tokens, extra_types, 9, merges, 1, -1, -1, -1, 2};
    v = load_spec(&spec5, 0, &b, &err);
    CHECK(v == NULL && strstr(err.msg, "token_type"), "token_type length mismatch must be refused: %s", err.msg);
    ts_vocab_free(v);
    built_free(&b);

    vocab_spec spec6 = {"gpt2", extra_tokens, extra_types, 9, merges, 1, -1, -1, -1, 0};
    v = load_spec(&spec6, 200, &b, &err);
    CHECK(v == NULL && strstr(err.msg, "embedding"), "vocabulary larger than the embedding must be refused: %s",
          err.msg);
    ts_vocab_free(v);
    built_free(&b);

    static const int bad_types[] = {1, 1, 1, 1, 9, 4, 1, 1, 5};
    vocab_spec spec7 = {"gpt2", extra_tokens, bad_types, 9, merges, 1, -1, -1, -1, 0};
    v = load_spec(&spec7, 0, &b, &err);
    CHECK(v == NULL && strstr(err.msg, "type"), "unknown token type must be refused: %s", err.msg);
    ts_vocab_free(v);
    built_free(&b);

    /* Duplicate token texts load; the text encodes to the lowest id. */
    static const char *dup_tokens[] = {"ab", "ab"};
    vocab_spec spec8 = {"gpt2", dup_tokens, NULL, 2, merges, 1, -1, -1, -1, 0};
    v = load_spec(&spec8, 0, &b, &err);
    CHECK(v != NULL, "duplicates must load: %s", err.msg);
    if (v) {
        ts_token out[4];
        int n = encode(v, "ab", 2, false, out, 4);
        CHECK(n == 1 && out[0] == 256, "duplicate text encodes to the lowest id (n=%d id=%d)", n, out[0]);
        ts_vocab_free(v);
    }
    built_free(&b);
}

static void test_long_input(void) {
    ts_err err = {{0}};
    built b;
    const char *merges[] = {"a a", "aa aa", "a b", "b c", "a bc"};
    static const char *tokens[] = {"aa", "aaaa", "ab", "bc", "abc"};
    vocab_spec spec = {"gpt2", tokens, NULL, 5, merges, 5, -1, -1, -1, 0};
    ts_vocab *v = load_spec(&spec, 0, &b, &err);
    CHECK(v != NULL, "load: %s", err.msg);
    if (!v)
        return;
    size_t len = 1 << 20;
    char *text = malloc(len);
    memset(text, 'a', len); /* one 1 MiB "word": the worst case for a quadratic BPE */
    int cap = (int)len;
    ts_token *out = malloc((size_t)cap * sizeof *out);
    clock_t t0 = clock();
    int n = encode(v, text, len, false, out, cap);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(n == (int)(len / 4), "1 MiB of 'a' should be %zu tokens, got %d", len / 4, n);
    CHECK(secs < 5.0, "1 MiB single word took %.2f s", secs);
    uint64_t seed = 99;
    for (size_t i = 0; i < len; i++) /* words of random length */
        text[i] = (rng_next(&seed) % 7 == 0) ? ' ' : "abc"[rng_next(&seed) % 3];
    t0 = clock();
    n = encode(v, text, len, false, out, cap);
    secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(n > 0 && secs < 5.0, "1 MiB of words: n=%d in %.2f s", n, secs);
    free(text);
    free(out);
    ts_vocab_free(v);
    built_free(&b);
}

/* llama.cpp's expected ids for its DeepSeek-LLM vocabulary test file, when the file is around. */
static void compare_deepseek_llm(void) {
    const char *path = "/tmp/llama-src/models/ggml-vocab-deepseek-llm.gguf";
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        printf("test_bpe: %s not found, skipping the informal llama.cpp comparison\n", path);
        return;
    }
    fclose(fp);
    ts_err err = {{0}};
    gguf_file *f = NULL;
    ts_vocab *v = NULL;
    if (gguf_open(path, &f, &err) != 0 || ts_vocab_load(f, 0, &v, &err) != 0) {
        CHECK(0, "loading %s: %s", path, err.msg);
        gguf_close(f);
        return;
    }
    char inp_path[256], out_path[256];
    snprintf(inp_path, sizeof inp_path, "%s.inp", path);
    snprintf(out_path, sizeof out_path, "%s.out", path);
    FILE *fi = fopen(inp_path, "rb"), *fo = fopen(out_path, "rb");
    if (fi && fo) {
        static char inp[1 << 20];
        size_t inp_len = fread(inp, 1, sizeof inp - 1, fi);
        inp[inp_len] = 0;
        const char *sep = "\n__ggml_vocab_test__\n";
        char *pos = inp, *next;
        char line[1 << 16];
        int tests = 0, same = 0;
        ts_token toks[8192];
        static char back[1 << 16];
        while ((next = strstr(pos, sep)) != NULL && fgets(line, sizeof line, fo)) {
            size_t len = (size_t)(next - pos);
            int n = ts_vocab_encode_ex(v, pos, len, false, false, toks, 8192);
            ts_token expect[8192];
            int ne = 0;
            for (char *p = strtok(line, " \n"); p && ne < 8192; p = strtok(NULL, " \n"))
                expect[ne++] = atoi(p);
            tests++;
            bool eq = tokens_eq(toks, n, expect, ne);
            same += eq;
            CHECK(eq, "differs from llama.cpp on \"%.*s\"", (int)(len > 40 ? 40 : len), pos);
            size_t blen = n >= 0 ? decode(v, toks, n, back, sizeof back) : (size_t)-1;
            CHECK(blen == len && memcmp(back, pos, len) == 0, "deepseek-llm round trip of test %d", tests);
            pos = next + strlen(sep);
        }
        printf("test_bpe: %d of %d llama.cpp deepseek-llm test strings tokenize identically\n", same, tests);
    }
    if (fi)
        fclose(fi);
    if (fo)
        fclose(fo);
    ts_vocab_free(v);
    gguf_close(f);
}

int main(void) {
    test_merge_order();
    test_special_tokens();
    test_round_trip();
    test_validation();
    test_long_input();
    compare_deepseek_llm();
    if (failures) {
        fprintf(stderr, "test_bpe: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_bpe: ok\n");
    return 0;
}
