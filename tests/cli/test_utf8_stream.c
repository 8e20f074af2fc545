/* The CLI's UTF-8-safe output stream: no character is ever split across writes, whatever the
 * token boundaries, and the bytes that come out are exactly the bytes that went in. The stream
 * lives in the executable, not the library, so its source is compiled into this test directly. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/utf8_stream.c"

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

/* True if s[0..n) ends on a character boundary of valid UTF-8 text. */
static bool ends_on_boundary(const unsigned char *s, size_t n) { return utf8_complete_prefix(s, n) == n; }

static void test_prefix(void) {
    const unsigned char euro[] = {0xE2, 0x82, 0xAC}; /* € */
    CHECK(utf8_complete_prefix(euro, 1) == 0 && utf8_complete_prefix(euro, 2) == 0 && utf8_complete_prefix(euro, 3) == 3,
          "3-byte character");
    const unsigned char mixed[] = {'a', 0xF0, 0x9F, 0xA6};
    CHECK(utf8_complete_prefix(mixed, 4) == 1, "held 4-byte start");
    const unsigned char bad[] = {'a', 0xE2, 'b'};
    CHECK(utf8_complete_prefix(bad, 3) == 3, "an interrupted sequence is not held");
    const unsigned char lone[] = {0x80, 0x80};
    CHECK(utf8_complete_prefix(lone, 2) == 2, "stray continuation bytes pass");
    CHECK(utf8_complete_prefix(euro, 0) == 0, "empty");
}

/* Random UTF-8 text cut into random pieces: every write boundary the reader can observe (each
 * fflush) falls between characters, and the concatenation is unchanged. */
static void test_stream(void) {
    static const char *chars[] = {"a", " ", "\xC3\xBC", "\xE2\x82\xAC", "\xF0\x9F\xA6\x99", "\n", "\xE4\xB8\xAD"};
    uint64_t seed = 12345;
    for (int iter = 0; iter < 2000; iter++) {
        char text[512];
        size_t len = 0;
        int n_chars = (int)(iter % 60);
        for (int i = 0; i < n_chars; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            const char *c = chars[(seed >> 33) % 7];
            memcpy(text + len, c, strlen(c));
            len += strlen(c);
        }
        char *buf = NULL;
        size_t buf_len = 0;
        FILE *mem = open_memstream(&buf, &buf_len);
        utf8_stream st = {.out = mem};
        size_t pos = 0;
        bool boundary_ok = true;
        while (pos < len) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t piece = 1 + (seed >> 33) % 5;
            if (piece > len - pos)
                piece = len - pos;
            utf8_stream_write(&st, text + pos, piece);
            pos += piece;
            fflush(mem);
            if (!ends_on_boundary((const unsigned char *)buf, buf_len))
                boundary_ok = false;
        }
        utf8_stream_finish(&st);
        fclose(mem);
        CHECK(boundary_ok, "iteration %d: a character was split across writes", iter);
        CHECK(buf_len == len && memcmp(buf, text, len) == 0, "iteration %d: bytes changed", iter);
        free(buf);
        if (failures)
            break;
    }
}

/* Invalid input is passed through, not held forever or dropped. */
static void test_invalid(void) {
    char *buf = NULL;
    size_t buf_len = 0;
    FILE *mem = open_memstream(&buf, &buf_len);
    utf8_stream st = {.out = mem};
    utf8_stream_write(&st, "\xE2", 1);
    fflush(mem);
    CHECK(buf_len == 0, "a lone lead byte is held");
    utf8_stream_write(&st, "x\xFF", 2);
    fflush(mem);
    CHECK(buf_len == 3 && memcmp(buf, "\xE2x\xFF", 3) == 0, "garbage flows through (len %zu)", buf_len);
    utf8_stream_write(&st, "\xF0\x9F", 2);
    utf8_stream_finish(&st);
    fclose(mem);
    CHECK(buf_len == 5 && memcmp(buf + 3, "\xF0\x9F", 2) == 0, "finish writes the held tail");
    free(buf);
}

int main(void) {
    test_prefix();
    test_stream();
    test_invalid();
    if (failures) {
        fprintf(stderr, "test_utf8_stream: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_utf8_stream: ok\n");
    return 0;
}
