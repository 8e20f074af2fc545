/* Pre-tokenizer splits per family, against pieces worked out by hand from the regexes in
 * /work/shared/spec/tokenizers-and-templates.md §3 (deepseek-v3 has no llama.cpp test vectors, and
 * these cases pin down the digit chunking, CJK runs, punctuation rules, whitespace lookahead,
 * NFC and the U+FFFD replacement of invalid UTF-8 for every family). */
#include <stdio.h>
#include <string.h>

#include "tokenizer/pretok.h"

static int failures;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            printf("%s:%d: FAIL: ", __FILE__, __LINE__);                                                               \
            printf(__VA_ARGS__);                                                                                       \
            printf("\n");                                                                                              \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)

/* Splits text with family pre and compares with the NULL-terminated list of expected pieces. */
static void expect_split(const char *pre, const char *text, const char *const *want) {
    ts_err err = {""};
    ts_pretok *p = NULL;
    if (ts_pretok_create(pre, strlen(pre), &p, &err) != 0) {
        CHECK(0, "%s: %s", pre, err.msg);
        return;
    }
    ts_pretok_scratch s = {0};
    const char *clean;
    size_t clean_len;
    int rc = ts_pretok_split(p, text, strlen(text), &s, &clean, &clean_len);
    CHECK(rc == 0, "%s: split of \"%s\" failed", pre, text);
    size_t n_want = 0;
    while (want[n_want])
        n_want++;
    bool same = rc == 0 && s.n_pieces == n_want;
    size_t at = 0;
    for (size_t k = 0; same && k < n_want; k++) {
        size_t len = s.piece_len[s.current][k];
        same = len == strlen(want[k]) && at + len <= clean_len && memcmp(clean + at, want[k], len) == 0;
        at += len;
    }
    if (!same) {
        CHECK(0, "%s: \"%s\" splits differently; got %zu pieces:", pre, text, rc == 0 ? s.n_pieces : 0);
        at = 0;
        for (size_t k = 0; rc == 0 && k < s.n_pieces; k++) {
            printf("  [%.*s]\n", (int)s.piece_len[s.current][k], clean + at);
            at += s.piece_len[s.current][k];
        }
    }
    ts_pretok_scratch_free(&s);
    ts_pretok_free(p);
}

#define SPLIT(pre, text, ...) expect_split(pre, text, (const char *const[]){__VA_ARGS__, NULL})

int main(void) {
    /* deepseek-v3: numbers in chunks of <= 3, CJK runs apart, punctuation + ASCII letters, `~` is a
     * symbol (mainline llama.cpp and HF agree), whitespace left for the next word. */
    SPLIT("deepseek-v3", "12345 abc", "123", "45", " abc");
    SPLIT("deepseek-v3", "中文abc", "中文", "abc");
    SPLIT("deepseek-v3", "foo.cpp", "foo", ".cpp");
    SPLIT("deepseek-v3", "a~~b", "a", "~~", "b");
    SPLIT("deepseek-v3", "a\n\nb", "a", "\n\n", "b");
    SPLIT("deepseek-v3", "x  y", "x", " ", " y");
    SPLIT("joyai-llm", "x  y", "x", " ", " y");

    /* qwen2: one digit per piece, case-insensitive contractions, NFC first. */
    SPLIT("qwen2", "abc 123", "abc", " ", "1", "2", "3");
    SPLIT("qwen2", "I'M here", "I", "'M", " here");
    SPLIT("qwen2", "e\xCC\x81", "\xC3\xA9");          /* e + combining acute -> é */
    SPLIT("deepseek-r1-qwen", "a\xFF" "b", "a", "\xEF\xBF\xBD" "b"); /* invalid byte -> U+FFFD (a symbol) */

    /* llama-bpe: numbers in chunks of <= 3, trailing newlines stay with punctuation, no NFC. */
    SPLIT("llama-bpe", "12345", "123", "45");
    SPLIT("llama-bpe", "Hello!!\n", "Hello", "!!\n");
    SPLIT("llama-bpe", "na\xC3\xAFve e\xCC\x81", "na\xC3\xAFve", " e", "\xCC\x81"); /* U+0301 is a mark */

    /* deepseek-llm: CR/LF alone, cased letters, ASCII punctuation, trailing whitespace, CJK, digit runs. */
    SPLIT("deepseek-llm", "Hello, 世界123", "Hello", ",", " ", "世界", "123");
    SPLIT("deepseek-llm", "a  \n", "a", "  ", "\n");

    /* deepseek-coder: one digit per piece; symbols (not \p{P}) stay in gaps. */
    SPLIT("deepseek-coder", "x+=1;", "x", "+=", "1", ";");
    SPLIT("deepseek-coder", " Hello\n", " Hello", "\n");

    /* gpt2 and the default split. */
    SPLIT("gpt2", "it's 2024!", "it", "'s", " 2024", "!");
    /* default: punctuation runs are cut out first, so "'s" no longer forms a contraction. */
    SPLIT("default", "it's 2024!", "it", "'", "s", " ", "202", "4", "!");

    /* Empty text: no pieces. Unknown families are refused. */
    {
        ts_err err = {""};
        ts_pretok *p = NULL;
        CHECK(ts_pretok_create("qwen2", 5, &p, &err) == 0, "%s", err.msg);
        ts_pretok_scratch s = {0};
        const char *clean;
        size_t clean_len;
        CHECK(p && ts_pretok_split(p, "", 0, &s, &clean, &clean_len) == 0 && s.n_pieces == 0 && clean_len == 0,
              "empty text");
        ts_pretok_scratch_free(&s);
        ts_pretok_free(p);
        CHECK(ts_pretok_create("no-such-pre", 11, &p, &err) != 0 && p == NULL, "unknown pre-tokenizer accepted");
        CHECK(strstr(err.msg, "no-such-pre") != NULL, "error names the pre-tokenizer: %s", err.msg);
    }

    if (failures) {
        printf("test_pretok: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_pretok: ok\n");
    return 0;
}
