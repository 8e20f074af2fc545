/* UTF-8 validation shared by the front ends (chat transcripts, server JSON) — one definition of
 * "well-formed" for everything that must emit valid UTF-8 from model output, which may be any bytes. */
#ifndef TS_UTIL_UTF8_H
#define TS_UTIL_UTF8_H

#include <stddef.h>

/* Length of the well-formed UTF-8 character at s[0..n) (no overlongs, surrogates or code points
 * past U+10FFFF, no NUL), or 0 if the bytes there are not one. n must be at least 1. */
size_t ts_utf8_char_len(const unsigned char *s, size_t n);

#endif
