/* The JSON-object validator behind response_format json_object: valid documents and every prefix of
 * them accepted, invalid ones refused, UTF-8 and surrogate edge cases, the nesting and whitespace
 * limits, no dead ends (every accepted state has a byte that continues it), and agreement with
 * jansson on thousands of mutated documents. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The server's sources are not part of libtiefsee (they live with the CLI executable), so the test
 * compiles the unit it checks. */
#include "server/json_constraint.c"

static int failures;
#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            failures++;                                                                                                \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

/* Feeds text byte by byte. Returns the index of the first refused byte, or -1 if all were accepted. */
static long first_rejection(const char *text, size_t n, json_constraint *jc) {
    json_constraint_init(jc);
    for (size_t i = 0; i < n; i++)
        if (!json_constraint_feed(jc, text + i, 1))
            return (long)i;
    return -1;
}

static void expect_valid(const char *text) {
    size_t n = strlen(text);
    json_constraint jc;
    json_constraint_init(&jc);
    for (size_t i = 0; i < n; i++) {
        CHECK(!json_constraint_complete(&jc) || strchr(" \t\r\n", text[i]), "complete too early at %zu in %s", i, text);
        bool ok = json_constraint_feed(&jc, text + i, 1);
        CHECK(ok, "valid document refused at byte %zu (%s): %s", i, json_constraint_error(&jc), text);
        if (!ok)
            return;
    }
    CHECK(json_constraint_complete(&jc), "valid document not complete: %s", text);
    /* The same text fed in one call gives the same verdict. */
    json_constraint whole;
    json_constraint_init(&whole);
    CHECK(json_constraint_feed(&whole, text, n) && json_constraint_complete(&whole), "whole feed: %s", text);
}

/* Invalid: refused somewhere, or accepted but never complete. want_error: a substring of the error
 * message expected when it is refused (NULL: any). */
static void expect_invalid(const char *text, size_t n, const char *want_error) {
    json_constraint jc;
    long at = first_rejection(text, n, &jc);
    if (at < 0) {
        CHECK(!json_constraint_complete(&jc), "invalid document accepted as complete: %.*s", (int)n, text);
        CHECK(!want_error, "invalid document not refused (wanted error '%s'): %.*s", want_error, (int)n, text);
        return;
    }
    const char *msg = json_constraint_error(&jc);
    CHECK(msg[0] != '\0', "no error message");
    CHECK(!want_error || strstr(msg, want_error), "error '%s', wanted '%s': %.*s", msg, want_error, (int)n, text);
    /* Rejected states stay rejected. */
    CHECK(!json_constraint_feed(&jc, "}", 1), "feed after rejection accepted");
}
#define INVALID(lit, err) expect_invalid(lit, sizeof(lit) - 1, err)

static void test_valid_documents(void) {
    static const char *const docs[] = {
        "{}",
        " {}",
        "{ }",
        "{\"a\":1}",
        "{\"a\" : 1 , \"b\":[ ] }",
        "{\"\":\"\"}",
        "{\"a\":[1,2,3],\"b\":{\"c\":null},\"d\":true,\"e\":false}",
        "{\"n\":[0,-0,1.5,-2.25e10,3E-7,4e+2,0.0,10,123456789012345678901234567890]}",
        "{\"n\":0}",
        "{\"n\":-0.5e1}",
        "{\"s\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"}",
        "{\"u\":\"\\u0041\\u00e9\\uFFFF\\u0000\"}",
        "{\"pair\":\"\\uD83D\\uDE00 \\udbff\\udfff\"}",
        ("{\"utf8\":\"\xC2\x80 \xDF\xBF \xE0\xA0\x80 \xED\x9F\xBF \xEE\x80\x80 \xEF\xBF\xBF \xF0\x90\x80\x80 "
        "\xF4\x8F\xBF\xBF\"}"),
        "{\"a\":[[[[]]],{},[{}]]}",
        "{\n\t\"a\": [\r\n 1 ]\n}",
        "{\"a\":1}        ", /* trailing whitespace up to the limit */
        "{\"k\":\"        many spaces inside a string are fine                 \"}",
        "{\"a\":[1 , 2 ,3 ]}",
        "{\"x\":1e5,\"y\":[1.0e-5]}",
        "{\"DEL\":\"\x7f\"}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        expect_valid(docs[i]);
}

static void test_invalid_documents(void) {
    INVALID("[]", NULL);
    INVALID("\"a\"", NULL);
    INVALID("1", NULL);
    INVALID("null", NULL);
    INVALID("", NULL);
    INVALID("{", NULL);
    INVALID("{\"a\":1", NULL);
    INVALID("{\"a\"}", NULL);
    INVALID("{\"a\":}", NULL);
    INVALID("{\"a\":1,}", NULL);
    INVALID("{,}", NULL);
    INVALID("{\"a\" 1}", NULL);
    INVALID("{\"a\":[1 2]}", NULL);
    INVALID("{\"a\":[1,]}", NULL);
    INVALID("{\"a\":{]}", NULL);
    INVALID("{\"a\":[}", NULL);
    INVALID("{a:1}", NULL);
    INVALID("{'a':1}", NULL);
    INVALID("{\"a\":01}", "number");
    INVALID("{\"a\":-01}", "number");
    INVALID("{\"a\":1.}", "number");
    INVALID("{\"a\":.5}", NULL);
    INVALID("{\"a\":-}", "number");
    INVALID("{\"a\":+1}", NULL);
    INVALID("{\"a\":1e}", "number");
    INVALID("{\"a\":1e+}", "number");
    INVALID("{\"a\":1.5.2}", NULL);
    INVALID("{\"a\":0x10}", NULL);
    INVALID("{\"a\":tru}", NULL);
    INVALID("{\"a\":True}", NULL);
    INVALID("{\"a\":nul}", NULL);
    INVALID("{\"a\":NaN}", NULL);
    INVALID("{\"a\":\"\\x\"}", "escape");
    INVALID("{\"a\":\"\\u12G4\"}", "escape");
    INVALID("{\"a\":\"\\U0041\"}", "escape");
    INVALID("{\"a\":\"line\nbreak\"}", "control");
    INVALID("{\"a\":\"tab\there\"}", "control");
    INVALID("{\"a\":\"nul\0\"}", "control");
    INVALID("{\"a\":\"\\uDC00\"}", "surrogate");
    INVALID("{\"a\":\"\\uD800\"}", "surrogate");
    INVALID("{\"a\":\"\\uD800\\u0041\"}", "surrogate");
    INVALID("{\"a\":\"\\uD800\\uD800\"}", "surrogate");
    INVALID("{\"a\":\"\\uD800x\"}", "surrogate");
    INVALID("{\"a\":1}{", "after the end");
    INVALID("{\"a\":1} x", "after the end");
    INVALID("{\"a\":1}         ", "whitespace"); /* 9 trailing spaces */
    INVALID("{         \"a\":1}", "whitespace");
    INVALID("{\"a\":1,\n\n\n\n\n\n\n\n\n\"b\":2}", "whitespace");
}

/* The last byte of text (and no earlier one) is refused: no completion could make it valid, so the
 * mask must not let a model write it (it would be a dead end). */
static void expect_refused_at_last(const char *text) {
    json_constraint jc;
    long at = first_rejection(text, strlen(text), &jc);
    CHECK(at == (long)strlen(text) - 1, "refused at %ld, wanted the last byte: %s", at, text);
}

static void test_early_refusal(void) {
    expect_refused_at_last("{\"a\":\"\\uDC"); /* every \uDCxx is a lone low surrogate */
    expect_refused_at_last("{\"a\":\"\\udf");
    expect_refused_at_last("{\"a\":\"\\uD800\\uD8"); /* a high surrogate cannot follow a high one */
    expect_refused_at_last("{\"a\":\"\\uD800\\u0");
    expect_refused_at_last("{\"a\":\"\\uD800 ");
    expect_refused_at_last("{\"a\":\"\xE0\x9F"); /* overlong, refused at the second byte */
    expect_refused_at_last("{\"a\":\"\xF4\x90"); /* above U+10FFFF */
    expect_refused_at_last("{\"a\":00");
}

static void test_utf8_edges(void) {
    static const char *const bad[] = {
        "\x80",             /* lone continuation */
        "\xBF",             /* lone continuation */
        "\xC0\x80",         /* overlong NUL */
        "\xC1\xBF",         /* overlong */
        "\xE0\x9F\xBF",     /* overlong 3-byte */
        "\xED\xA0\x80",     /* UTF-16 surrogate D800 */
        "\xED\xBF\xBF",     /* surrogate DFFF */
        "\xF0\x8F\xBF\xBF", /* overlong 4-byte */
        "\xF4\x90\x80\x80", /* above U+10FFFF */
        "\xF5\x80\x80\x80", /* invalid lead */
        "\xFF",             /* invalid lead */
        "\xC2\x41",         /* missing continuation */
        "\xE2\x82\"",       /* truncated before the closing quote */
        "\xF0\x9F\x98\"",   /* truncated 4-byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char doc[64];
        int n = snprintf(doc, sizeof doc, "{\"s\":\"%s\"}", bad[i]);
        expect_invalid(doc, (size_t)n, "UTF-8");
    }
    /* A multi-byte character split across feeds (as tokens split it) is fine. */
    json_constraint jc;
    json_constraint_init(&jc);
    CHECK(json_constraint_feed(&jc, "{\"s\":\"\xF0\x9F", 8), "first half of an emoji");
    CHECK(json_constraint_feed(&jc, "\x98\x80\"}", 4) && json_constraint_complete(&jc), "second half");
}

static void test_depth_limit(void) {
    char doc[4 * JSONC_MAX_DEPTH + 16];
    json_constraint jc;
    json_constraint_init(&jc);
    /* Objects hold "a": value, arrays hold values directly; levels alternate. */
    size_t n = 0;
    bool array[JSONC_MAX_DEPTH];
    for (int d = 0; d < JSONC_MAX_DEPTH; d++) {
        array[d] = d % 2 == 1;
        if (d > 0 && !array[d - 1]) {
            memcpy(doc + n, "\"a\":", 4);
            n += 4;
        }
        doc[n++] = array[d] ? '[' : '{';
    }
    CHECK(json_constraint_feed(&jc, doc, n), "%d levels refused: %s", JSONC_MAX_DEPTH, json_constraint_error(&jc));
    json_constraint deeper = jc;
    const char *open = array[JSONC_MAX_DEPTH - 1] ? "[" : "\"a\":[";
    CHECK(!json_constraint_feed(&deeper, open, strlen(open)), "level %d accepted", JSONC_MAX_DEPTH + 1);
    CHECK(strstr(json_constraint_error(&deeper), "nesting deeper than 64") != NULL, "error: %s",
          json_constraint_error(&deeper));
    /* A scalar still fits at the deepest level, and closing everything completes the object. */
    CHECK(json_constraint_feed(&jc, array[JSONC_MAX_DEPTH - 1] ? "1" : "\"a\":1", array[JSONC_MAX_DEPTH - 1] ? 1 : 5),
          "scalar at the deepest level");
    for (int d = JSONC_MAX_DEPTH - 1; d >= 0; d--) {
        CHECK(!json_constraint_complete(&jc), "complete with %d levels open", d + 1);
        CHECK(json_constraint_feed(&jc, array[d] ? "]" : "}", 1), "closing level %d", d);
    }
    CHECK(json_constraint_complete(&jc), "deep document not complete");
}

/* Random-walk the automaton: every state reached must accept some byte until it is complete, so the
 * mask can never leave a sequence without a token (given single-byte tokens). */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void test_no_dead_ends(void) {
    uint64_t seed = 42;
    for (int walk = 0; walk < 300; walk++) {
        json_constraint jc;
        json_constraint_init(&jc);
        for (int step = 0; step < 400 && !json_constraint_complete(&jc); step++) {
            unsigned char accepted[256];
            int n_accepted = 0;
            for (int b = 0; b < 256; b++) {
                json_constraint probe = jc;
                char c = (char)b;
                if (json_constraint_feed(&probe, &c, 1))
                    accepted[n_accepted++] = (unsigned char)b;
            }
            CHECK(n_accepted > 0, "dead end at walk %d step %d (mode %d)", walk, step, jc.mode);
            if (n_accepted == 0)
                break;
            /* Prefer structure over string text so walks reach deep and closing states. */
            unsigned char pick = accepted[rng_next(&seed) % (uint64_t)n_accepted];
            for (int tries = 0;
                 tries < 3 && pick >= 0x20 && pick < 0x7F && strchr("{}[]\",:0123456789-tfn", pick) == NULL; tries++)
                pick = accepted[rng_next(&seed) % (uint64_t)n_accepted];
            char c = (char)pick;
            CHECK(json_constraint_feed(&jc, &c, 1), "accepted byte refused");
        }
    }
}

/* Random documents, then random one-byte mutations: the validator's verdict (accepted and complete)
 * must match jansson's (parses, is an object). */
static void gen_value(char *buf, size_t *n, size_t cap, uint64_t *s, int depth);

static void put(char *buf, size_t *n, size_t cap, const char *text) {
    size_t len = strlen(text);
    if (*n + len < cap) {
        memcpy(buf + *n, text, len);
        *n += len;
    }
}

static void gen_ws(char *buf, size_t *n, size_t cap, uint64_t *s) {
    static const char *const ws[] = {"", "", "", " ", "\n", " \t", "\r\n "};
    put(buf, n, cap, ws[rng_next(s) % 7]);
}

static void gen_string(char *buf, size_t *n, size_t cap, uint64_t *s) {
    static const char *const parts[] = {"a",
                                        "Z",
                                        " ",
                                        "\\n",
                                        "\\\"",
                                        "\\\\",
                                        "\\u00e9",
                                        "\\uD83D\\uDE00",
                                        "\xC3\xA9",
                                        "\xE2\x82\xAC",
                                        "\xF0\x9F\x98\x80",
                                        "/",
                                        "\\/",
                                        "0"};
    put(buf, n, cap, "\"");
    int len = (int)(rng_next(s) % 5);
    for (int i = 0; i < len; i++)
        put(buf, n, cap, parts[rng_next(s) % (sizeof parts / sizeof parts[0])]);
    put(buf, n, cap, "\"");
}

static void gen_object(char *buf, size_t *n, size_t cap, uint64_t *s, int depth) {
    put(buf, n, cap, "{");
    int members = depth > 3 ? 0 : (int)(rng_next(s) % 4);
    for (int i = 0; i < members; i++) {
        if (i)
            put(buf, n, cap, ",");
        gen_ws(buf, n, cap, s);
        gen_string(buf, n, cap, s);
        gen_ws(buf, n, cap, s);
        put(buf, n, cap, ":");
        gen_ws(buf, n, cap, s);
        gen_value(buf, n, cap, s, depth + 1);
        gen_ws(buf, n, cap, s);
    }
    put(buf, n, cap, "}");
}

static void gen_value(char *buf, size_t *n, size_t cap, uint64_t *s, int depth) {
    static const char *const scalars[] = {"0", "-1", "12.5", "1e3", "-0.0E-2", "true", "false", "null", "7"};
    switch (rng_next(s) % (depth > 3 ? 2 : 4)) {
    case 0: put(buf, n, cap, scalars[rng_next(s) % 9]); break;
    case 1: gen_string(buf, n, cap, s); break;
    case 2: gen_object(buf, n, cap, s, depth); break;
    default: {
        put(buf, n, cap, "[");
        int items = (int)(rng_next(s) % 4);
        for (int i = 0; i < items; i++) {
            if (i)
                put(buf, n, cap, ",");
            gen_ws(buf, n, cap, s);
            gen_value(buf, n, cap, s, depth + 1);
        }
        put(buf, n, cap, "]");
    }
    }
}

static bool jansson_says_object(const char *text, size_t n) {
    json_error_t error;
    json_t *v = json_loadb(text, n, JSON_ALLOW_NUL, &error);
    bool object = v && json_is_object(v);
    json_decref(v);
    return object;
}

static void test_against_jansson(void) {
    uint64_t seed = 7;
    static const char mutations[] = "{}[]\",:.-+eE0123456789 \\ubnrtfalse\x80\xC3\xE2\xF0\xED\xA9\x01";
    int n_valid = 0, n_invalid = 0;
    for (int doc_i = 0; doc_i < 3000; doc_i++) {
        char buf[4096];
        size_t n = 0;
        gen_ws(buf, &n, sizeof buf, &seed);
        gen_object(buf, &n, sizeof buf, &seed, 0);
        gen_ws(buf, &n, sizeof buf, &seed);
        buf[n] = '\0';
        CHECK(jansson_says_object(buf, n), "generator made an invalid document: %s", buf);
        expect_valid(buf);
        for (int m = 0; m < 4 && n > 0; m++) {
            char mutated[4096];
            memcpy(mutated, buf, n);
            size_t at = rng_next(&seed) % n;
            size_t mn = n;
            switch (rng_next(&seed) % 3) {
            case 0: mutated[at] = mutations[rng_next(&seed) % (sizeof mutations - 1)]; break;
            case 1: /* delete a byte */
                memmove(mutated + at, mutated + at + 1, n - at - 1);
                mn--;
                break;
            default: /* insert a byte */
                memmove(mutated + at + 1, mutated + at, n - at);
                mutated[at] = mutations[rng_next(&seed) % (sizeof mutations - 1)];
                mn++;
            }
            json_constraint jc;
            json_constraint_init(&jc);
            bool ours = json_constraint_feed(&jc, mutated, mn) && json_constraint_complete(&jc);
            bool theirs = jansson_says_object(mutated, mn);
            CHECK(ours == theirs, "validator says %d, jansson %d: %.*s", ours, theirs, (int)mn, mutated);
            if (theirs)
                n_valid++;
            else
                n_invalid++;
        }
    }
    CHECK(n_valid > 500 && n_invalid > 2000, "mutations not diverse: %d valid, %d invalid", n_valid, n_invalid);
}

int main(void) {
    test_valid_documents();
    test_invalid_documents();
    test_utf8_edges();
    test_early_refusal();
    test_depth_limit();
    test_no_dead_ends();
    test_against_jansson();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("json_constraint: all checks passed\n");
    return 0;
}
