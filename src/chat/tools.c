/* Parsing the DeepSeek tool-call syntax out of a generated reply (the inverse of what render.c writes
 * for assistant tool calls), so the server can answer with OpenAI `tool_calls`. */
#include <ctype.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "chat/ds_markers.h"

/* At most this many calls in one reply: far beyond what a model emits, and it bounds the work. */
#define MAX_CALLS 256

typedef struct span {
    const char *p;
    size_t n;
} span;

static bool is_ws(char c) { return isspace((unsigned char)c) != 0; }

static span trim(span s) {
    while (s.n > 0 && is_ws(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n > 0 && is_ws(s.p[s.n - 1]))
        s.n--;
    return s;
}

static const char *find(span s, const char *needle) {
    return memmem(s.p, s.n, needle, strlen(needle));
}

static bool starts_with(span s, const char *prefix) {
    size_t n = strlen(prefix);
    return s.n >= n && memcmp(s.p, prefix, n) == 0;
}

static span skip(span s, size_t n) { return (span){s.p + n, s.n - n}; }

static char *dup_span(span s) {
    char *d = malloc(s.n + 1);
    if (d) {
        memcpy(d, s.p, s.n);
        d[s.n] = '\0';
    }
    return d;
}

void ts_chat_tool_reply_free(ts_chat_tool_reply *r) {
    free(r->content);
    for (int i = 0; i < r->n_calls; i++) {
        free(r->calls[i].type);
        free(r->calls[i].name);
        free(r->calls[i].arguments);
    }
    free(r->calls);
    memset(r, 0, sizeof *r);
}

/* Splits one call's body (between call begin and call end) into name and arguments.
 * V3/R1: TYPE<sep>NAME\n```json\nARGS\n```   V3.1: NAME<sep>ARGS */
static bool split_call(span body, span *name, span *args) {
    const char *sep = find(body, TOOL_SEP);
    if (!sep)
        return false;
    span head = {body.p, (size_t)(sep - body.p)};
    span tail = skip(body, (size_t)(sep - body.p) + strlen(TOOL_SEP));
    const char *nl = memchr(tail.p, '\n', tail.n);
    span after_line = nl ? trim(skip(tail, (size_t)(nl - tail.p) + 1)) : (span){tail.p + tail.n, 0};
    if (nl && starts_with(after_line, "```json")) {
        /* The fenced form: the line after the separator is the name, the fence holds the arguments. */
        *name = trim((span){tail.p, (size_t)(nl - tail.p)});
        span inner = skip(after_line, 7);
        if (inner.n < 3 || memcmp(inner.p + inner.n - 3, "```", 3) != 0)
            return false;
        inner.n -= 3;
        *args = trim(inner);
    } else {
        *name = trim(head);
        *args = trim(tail);
    }
    if (name->n == 0 || memchr(name->p, '\n', name->n))
        return false;
    return true;
}

static bool is_json(span s) {
    if (s.n == 0)
        return false;
    json_t *v = json_loadb(s.p, s.n, JSON_DECODE_ANY, NULL);
    bool ok = v != NULL;
    json_decref(v);
    return ok;
}

/* Parses the block after CALLS_BEGIN. Returns the number of calls (>0), 0 when malformed, -1 (OOM). */
static int parse_block(span block, span *rest, ts_chat_tool_reply *out) {
    for (;;) {
        block = trim(block);
        if (starts_with(block, CALLS_END)) {
            *rest = skip(block, strlen(CALLS_END));
            break;
        }
        if (block.n == 0) { /* ended (EOS) without the closer: accept what was complete */
            *rest = block;
            break;
        }
        if (!starts_with(block, CALL_BEGIN) || out->n_calls >= MAX_CALLS)
            return 0;
        block = skip(block, strlen(CALL_BEGIN));
        const char *end = find(block, CALL_END);
        if (!end)
            return 0;
        span body = {block.p, (size_t)(end - block.p)}, name, args;
        if (!split_call(body, &name, &args) || !is_json(args))
            return 0;
        ts_chat_tool_call *bigger = realloc(out->calls, (size_t)(out->n_calls + 1) * sizeof *bigger);
        if (!bigger)
            return -1;
        out->calls = bigger;
        ts_chat_tool_call *tc = &out->calls[out->n_calls];
        *tc = (ts_chat_tool_call){strdup("function"), dup_span(name), dup_span(args)};
        out->n_calls++;
        if (!tc->type || !tc->name || !tc->arguments)
            return -1;
        block = skip(block, (size_t)(end - block.p) + strlen(CALL_END));
    }
    return out->n_calls;
}

int ts_chat_parse_tool_calls(const char *text, size_t len, ts_chat_tool_reply *out) {
    memset(out, 0, sizeof *out);
    span all = {text ? text : "", text ? len : 0};
    const char *begin = find(all, CALLS_BEGIN);
    int n = 0;
    span before = all, rest = {all.p + all.n, 0};
    if (begin) {
        before = (span){all.p, (size_t)(begin - all.p)};
        n = parse_block(skip(all, (size_t)(begin - all.p) + strlen(CALLS_BEGIN)), &rest, out);
        if (n < 0) {
            ts_chat_tool_reply_free(out);
            return -1;
        }
    }
    if (n == 0) { /* no calls, or a malformed block: everything is content */
        ts_chat_tool_reply_free(out);
        out->content = dup_span(trim(all));
        return out->content ? 0 : -1;
    }
    /* Text the model wrote after the block is kept as content too. */
    before = trim(before);
    rest = trim(rest);
    out->content = malloc(before.n + rest.n + 2);
    if (!out->content) {
        ts_chat_tool_reply_free(out);
        return -1;
    }
    memcpy(out->content, before.p, before.n);
    size_t k = before.n;
    if (before.n && rest.n)
        out->content[k++] = '\n';
    memcpy(out->content + k, rest.p, rest.n);
    out->content[k + rest.n] = '\0';
    return 0;
}

size_t ts_chat_tool_content_prefix(const char *text, size_t len) {
    span all = {text, len};
    const char *begin = find(all, CALLS_BEGIN);
    if (begin)
        return (size_t)(begin - text);
    size_t tl = strlen(CALLS_BEGIN);
    for (size_t k = tl - 1; k > 0; k--)
        if (k <= len && memcmp(text + len - k, CALLS_BEGIN, k) == 0)
            return len - k;
    return len;
}
