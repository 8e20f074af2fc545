/* Streams token bytes to a FILE without ever splitting a UTF-8 character: a token may end in the
 * middle of a character (byte-level BPE), so the incomplete tail is held back until the next
 * token completes it. Invalid bytes are passed through as they are (holding them would stall). */
#ifndef TS_CLI_UTF8_STREAM_H
#define TS_CLI_UTF8_STREAM_H

#include <stddef.h>
#include <stdio.h>

typedef struct utf8_stream {
    FILE *out;
    unsigned char pending[4]; /* start of an incomplete character (at most 3 bytes) */
    size_t n_pending;
} utf8_stream;

/* Length of the longest prefix of s[0..n) that does not end inside an incomplete (but so far
 * valid) UTF-8 sequence. */
size_t utf8_complete_prefix(const unsigned char *s, size_t n);

void utf8_stream_write(utf8_stream *st, const char *bytes, size_t n);
/* Writes whatever is still held (at the end of the output) and fflush()es. */
void utf8_stream_finish(utf8_stream *st);

#endif
