/* ts_utf8_char_len against the Unicode definition of well-formed UTF-8 (Table 3-7), including
 * every boundary where a naive decoder accepts overlongs, surrogates or code points past U+10FFFF. */
#include <stdio.h>
#include <string.h>

#include "util/utf8.h"

static int failures;

static void expect(const char *bytes, size_t n, size_t want, const char *what) {
    size_t got = ts_utf8_char_len((const unsigned char *)bytes, n);
    if (got != want) {
        fprintf(stderr, "FAIL %s: got %zu, want %zu\n", what, got, want);
        failures++;
    }
}

int main(void) {
    expect("A", 1, 1, "ascii");
    expect("\0", 1, 0, "NUL is not accepted (C strings)");
    expect("\x7f", 1, 1, "DEL");
    expect("\x80", 1, 0, "lone continuation byte");
    expect("\xc0\x80", 2, 0, "overlong NUL");
    expect("\xc1\xbf", 2, 0, "overlong 2-byte");
    expect("\xc2\x80", 2, 2, "U+0080");
    expect("\xc2", 1, 0, "truncated 2-byte");
    expect("\xdf\xbf", 2, 2, "U+07FF");
    expect("\xe0\x9f\xbf", 3, 0, "overlong 3-byte");
    expect("\xe0\xa0\x80", 3, 3, "U+0800");
    expect("\xed\x9f\xbf", 3, 3, "U+D7FF");
    expect("\xed\xa0\x80", 3, 0, "surrogate U+D800");
    expect("\xef\xbf\xbd", 3, 3, "U+FFFD");
    expect("\xef\xbf", 2, 0, "truncated 3-byte");
    expect("\xf0\x8f\xbf\xbf", 4, 0, "overlong 4-byte");
    expect("\xf0\x90\x80\x80", 4, 4, "U+10000");
    expect("\xf0\x9f\x98\x80", 4, 4, "emoji");
    expect("\xf4\x8f\xbf\xbf", 4, 4, "U+10FFFF");
    expect("\xf4\x90\x80\x80", 4, 0, "past U+10FFFF");
    expect("\xf5\x80\x80\x80", 4, 0, "lead byte F5");
    expect("\xff", 1, 0, "byte FF");
    expect("\xe2\x82\x41", 3, 0, "bad third byte");
    expect("\xf0\x9f\x98\x41", 4, 0, "bad fourth byte");
    expect("\xe2\x82\xac" "rest", 7, 3, "length ignores what follows");
    printf("test_utf8: %d failures\n", failures);
    return failures != 0;
}
