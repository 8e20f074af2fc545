#include <string.h>

#include "cli/utf8_stream.h"

/* Bytes a sequence starting with lead byte c should have; 0 for a continuation or invalid byte. */
static size_t utf8_seq_len(unsigned char c) {
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 0;
}

size_t utf8_complete_prefix(const unsigned char *s, size_t n) {
    /* Only the last 3 bytes can belong to an unfinished character: find the last lead byte there. */
    size_t back = n < 3 ? n : 3;
    for (size_t k = 1; k <= back; k++) {
        unsigned char c = s[n - k];
        if ((c & 0xC0) == 0x80)
            continue; /* continuation: keep looking for its lead byte */
        size_t need = utf8_seq_len(c);
        if (need > k) {
            /* Hold it only if the bytes after the lead are continuations, i.e. it may still become a
             * valid character; otherwise it is garbage and goes out now. */
            for (size_t j = n - k + 1; j < n; j++)
                if ((s[j] & 0xC0) != 0x80)
                    return n;
            return n - k;
        }
        return n;
    }
    return n;
}

void utf8_stream_write(utf8_stream *st, const char *bytes, size_t n) {
    const unsigned char *b = (const unsigned char *)bytes;
    /* The stream is pending + b. Only its last 3 bytes can be an unfinished character. */
    size_t total = st->n_pending + n;
    size_t t = total < 3 ? total : 3;
    unsigned char tail[3];
    for (size_t i = 0; i < t; i++) {
        size_t idx = total - t + i;
        tail[i] = idx < st->n_pending ? st->pending[idx] : b[idx - st->n_pending];
    }
    size_t hold = t - utf8_complete_prefix(tail, t);
    size_t emit = total - hold;
    size_t from_pending = emit < st->n_pending ? emit : st->n_pending;
    fwrite(st->pending, 1, from_pending, st->out);
    if (emit > from_pending)
        fwrite(b, 1, emit - from_pending, st->out);
    /* The new held bytes are the last `hold` bytes of the stream. */
    unsigned char next[4];
    for (size_t i = 0; i < hold; i++) {
        size_t idx = total - hold + i;
        next[i] = idx < st->n_pending ? st->pending[idx] : b[idx - st->n_pending];
    }
    memcpy(st->pending, next, hold);
    st->n_pending = hold;
    fflush(st->out);
}

void utf8_stream_finish(utf8_stream *st) {
    if (st->n_pending)
        fwrite(st->pending, 1, st->n_pending, st->out);
    st->n_pending = 0;
    fflush(st->out);
}
