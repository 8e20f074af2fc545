/* Tokenizing a rendered chat prompt. llama.cpp tokenizes the whole prompt with parse_special, which
 * also turns special-token texts typed by the user into control tokens (a prompt injection). Here the
 * prompt is cut at control-token texts found in TEMPLATE spans only, and every stretch between them,
 * template and conversation bytes together, is tokenized as plain text. For conversations without
 * such texts the ids equal llama.cpp's: it too splits at special tokens first and pre-tokenizes each
 * stretch between them on its own. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "tokenizer/vocab.h"

/* llama.cpp's token type of control tokens (tokenizer.ggml.token_type). */
enum { GGUF_TOKEN_TYPE_CONTROL = 3 };

typedef struct control_token {
    const char *text;
    size_t len;
    ts_token id;
} control_token;

typedef struct token_buf {
    ts_token *ids;
    int n, cap;
} token_buf;

static int buf_reserve(token_buf *b, int more) {
    if (more < 0 || b->n > INT32_MAX - more)
        return -1;
    if (b->n + more <= b->cap)
        return 0;
    int cap = b->cap ? b->cap : 256;
    while (cap < b->n + more)
        cap = cap > INT32_MAX / 2 ? INT32_MAX : cap * 2;
    ts_token *bigger = realloc(b->ids, (size_t)cap * sizeof *bigger);
    if (!bigger)
        return -1;
    b->ids = bigger;
    b->cap = cap;
    return 0;
}

static int encode_plain(const ts_vocab *v, const char *s, size_t n, token_buf *b) {
    if (n == 0)
        return 0;
    int need = ts_vocab_encode_ex(v, s, n, false, false, NULL, 0);
    if (need == INT32_MIN)
        return -1;
    if (need < 0)
        need = -need;
    if (buf_reserve(b, need) != 0)
        return -1;
    int got = ts_vocab_encode_ex(v, s, n, false, false, b->ids + b->n, need);
    if (got < 0)
        return -1;
    b->n += got;
    return 0;
}

/* Control tokens of the vocabulary, longest first so that a token that is a prefix of another never
 * wins (llama.cpp orders its special-token scan the same way). */
static int cmp_len_desc(const void *a, const void *b) {
    size_t la = ((const control_token *)a)->len, lb = ((const control_token *)b)->len;
    return la < lb ? 1 : la > lb ? -1 : 0;
}

static int collect_control_tokens(const ts_model *m, control_token **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    const gguf_kv *tokens = NULL, *types = NULL;
    ts_err err;
    if (gguf_get_arr(m->file, "tokenizer.ggml.tokens", GGUF_STRING, &tokens, &err) != 0 ||
        gguf_get_arr(m->file, "tokenizer.ggml.token_type", GGUF_I32, &types, &err) != 0)
        return 0; /* no types: no control tokens to honour, everything is text */
    uint64_t n = tokens->arr_n < types->arr_n ? tokens->arr_n : types->arr_n;
    if (n > INT32_MAX)
        return -1;
    control_token *list = NULL;
    int count = 0;
    for (uint64_t i = 0; i < n; i++) {
        int32_t type;
        memcpy(&type, (const char *)types->data + i * sizeof type, sizeof type);
        gguf_str s = gguf_arr_str(tokens, i);
        if (type != GGUF_TOKEN_TYPE_CONTROL || s.len == 0)
            continue;
        control_token *bigger = realloc(list, (size_t)(count + 1) * sizeof *bigger);
        if (!bigger) {
            free(list);
            return -1;
        }
        list = bigger;
        list[count++] = (control_token){s.ptr, (size_t)s.len, (ts_token)i};
    }
    if (count > 1)
        qsort(list, (size_t)count, sizeof *list, cmp_len_desc);
    *out = list;
    *n_out = count;
    return 0;
}

/* The first control token text starting in [from, end) of the prompt text; NULL if none. */
static const control_token *find_control(const char *text, size_t from, size_t end, const control_token *ct, int n_ct,
                                         size_t *at) {
    const control_token *best = NULL;
    size_t best_at = end;
    for (int k = 0; k < n_ct; k++) {
        const char *hit = memmem(text + from, end - from, ct[k].text, ct[k].len);
        if (hit && (size_t)(hit - text) < best_at) { /* strict: equal start keeps the longer (earlier) one */
            best_at = (size_t)(hit - text);
            best = &ct[k];
        }
    }
    *at = best_at;
    return best;
}

int ts_chat_tokenize(const ts_model *m, const ts_chat_prompt *p, ts_token **out, int *n_out, char err[TS_ERR_LEN]) {
    control_token *ct = NULL;
    int n_ct = 0;
    token_buf b = {0};
    *out = NULL;
    *n_out = 0;
    if (collect_control_tokens(m, &ct, &n_ct) != 0) {
        snprintf(err, TS_ERR_LEN, "out of memory");
        return -1;
    }
    size_t plain_start = 0; /* start of the text not yet tokenized */
    int rc = 0;
    for (int s = 0; s < p->n_spans && rc == 0; s++) {
        const ts_chat_span *sp = &p->spans[s];
        if (!sp->from_template)
            continue;
        size_t pos = sp->offset, end = sp->offset + sp->len;
        while (pos < end && rc == 0) {
            size_t at;
            const control_token *hit = find_control(p->text, pos, end, ct, n_ct, &at);
            if (!hit)
                break;
            /* A control text overlapping the span's end would include conversation bytes: not one. */
            if (at + hit->len > end)
                break;
            rc = encode_plain(m->vocab, p->text + plain_start, at - plain_start, &b);
            if (rc == 0 && (rc = buf_reserve(&b, 1)) == 0)
                b.ids[b.n++] = hit->id;
            pos = plain_start = at + hit->len;
        }
    }
    if (rc == 0)
        rc = encode_plain(m->vocab, p->text + plain_start, p->len - plain_start, &b);
    free(ct);
    if (rc != 0) {
        free(b.ids);
        snprintf(err, TS_ERR_LEN, "cannot tokenize the chat prompt (out of memory or too long)");
        return -1;
    }
    *out = b.ids;
    *n_out = b.n;
    return 0;
}

const char *ts_chat_model_template(const ts_model *m, size_t *len) {
    gguf_str s;
    ts_err err;
    *len = 0;
    if (gguf_get_str(m->file, "tokenizer.chat_template", &s, &err) != 0 || s.len > SIZE_MAX / 2)
        return NULL;
    *len = (size_t)s.len;
    return s.ptr;
}
