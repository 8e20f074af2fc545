/* Text plumbing of the server: UTF-8 repair (JSON strings must be valid UTF-8, a model may emit
 * any bytes), stop-string hold-back, and the streaming reasoning/content splitter. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"
#include "util/utf8.h"

static int buf_reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return -1;
        c *= 2;
    }
    char *bigger = realloc(*buf, c);
    if (!bigger)
        return -1;
    *buf = bigger;
    *cap = c;
    return 0;
}


int text_append_valid_utf8(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (n > (SIZE_MAX - *len - 1) / 3 || buf_reserve(buf, cap, *len + n * 3 + 1) != 0)
        return -1;
    char *o = *buf + *len;
    for (size_t i = 0; i < n;) {
        size_t l = ts_utf8_char_len((const unsigned char *)s + i, n - i);
        if (l) {
            memcpy(o, s + i, l);
            o += l;
            i += l;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    *o = '\0';
    *len = (size_t)(o - *buf);
    return 0;
}

/* Longest k < strlen(tag) such that text ends with the first k bytes of tag. */
static size_t partial_suffix(const char *text, size_t n, const char *tag) {
    size_t tl = strlen(tag);
    for (size_t k = tl > 0 ? tl - 1 : 0; k > 0; k--)
        if (k <= n && memcmp(text + n - k, tag, k) == 0)
            return k;
    return 0;
}

size_t text_stop_holdback(const char *text, size_t n, char *const *stop, int n_stop) {
    size_t keep = 0;
    for (int i = 0; i < n_stop; i++) {
        size_t k = partial_suffix(text, n, stop[i]);
        if (k > keep)
            keep = k;
    }
    return keep;
}

void think_splitter_init(think_splitter *sp, bool starts_in_think) {
    memset(sp, 0, sizeof *sp);
    sp->in_think = starts_in_think;
}

void think_splitter_free(think_splitter *sp) {
    free(sp->hold);
    memset(sp, 0, sizeof *sp);
}

void text_out_free(text_out *o) {
    free(o->reasoning);
    free(o->content);
    memset(o, 0, sizeof *o);
}

static bool is_ws(char c) { return isspace((unsigned char)c) != 0; }

/* Emits s[0..n) into one part, skipping whitespace at the very start of the part. */
static int emit(char **buf, size_t *len, size_t *cap, bool *started, const char *s, size_t n) {
    if (!*started) {
        while (n > 0 && is_ws(*s)) {
            s++;
            n--;
        }
        if (n == 0)
            return 0;
        *started = true;
    }
    if (buf_reserve(buf, cap, *len + n + 1) != 0)
        return -1;
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static void hold_consume(think_splitter *sp, size_t n) {
    memmove(sp->hold, sp->hold + n, sp->hold_len - n);
    sp->hold_len -= n;
}

int think_splitter_feed(think_splitter *sp, const char *s, size_t n, bool final, text_out *out) {
    static const char open_tag[] = "<think>", close_tag[] = "</think>";
    if (buf_reserve(&sp->hold, &sp->hold_cap, sp->hold_len + n + 1) != 0)
        return -1;
    memcpy(sp->hold + sp->hold_len, s, n);
    sp->hold_len += n;
    if (!sp->seen_any) {
        /* A leading "<think>" is dropped: wait until it is certain whether the text starts with it. */
        size_t m = sp->hold_len < 7 ? sp->hold_len : 7;
        if (memcmp(sp->hold, open_tag, m) == 0 && m < 7 && !final)
            return 0;
        if (m == 7 && memcmp(sp->hold, open_tag, 7) == 0)
            hold_consume(sp, 7);
        sp->seen_any = true;
    }
    if (sp->in_think) {
        char *close = memmem(sp->hold, sp->hold_len, close_tag, 8);
        if (close) {
            size_t p = (size_t)(close - sp->hold), j = p;
            while (j > 0 && is_ws(sp->hold[j - 1]))
                j--;
            if (emit(&out->reasoning, &out->reasoning_len, &out->reasoning_cap, &sp->reasoning_started, sp->hold, j) != 0)
                return -1;
            hold_consume(sp, p + 8);
            sp->in_think = false;
        } else {
            size_t j = sp->hold_len - (final ? 0 : partial_suffix(sp->hold, sp->hold_len, close_tag));
            while (j > 0 && is_ws(sp->hold[j - 1]))
                j--;
            if (emit(&out->reasoning, &out->reasoning_len, &out->reasoning_cap, &sp->reasoning_started, sp->hold, j) != 0)
                return -1;
            hold_consume(sp, j);
            if (final)
                sp->hold_len = 0;
            return 0;
        }
    }
    size_t j = sp->hold_len;
    while (j > 0 && is_ws(sp->hold[j - 1]))
        j--;
    if (emit(&out->content, &out->content_len, &out->content_cap, &sp->content_started, sp->hold, j) != 0)
        return -1;
    hold_consume(sp, j);
    if (final)
        sp->hold_len = 0;
    return 0;
}
