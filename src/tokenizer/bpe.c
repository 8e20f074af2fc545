/* Byte-level BPE (GPT-2 style) vocabulary loaded from tokenizer.ggml.* GGUF keys, encoding as
 * llama.cpp does (/work/shared/spec/tokenizers-and-templates.md §2):
 * (1) special tokens written in the text become their own tokens (USER_DEFINED always, CONTROL and
 *     UNKNOWN only when parsing specials); (2) the raw text between them is pre-split with the
 *     family's regexes (pretok.c, keyed by tokenizer.ggml.pre; invalid UTF-8 becomes U+FFFD there);
 * (3) each piece's bytes are mapped to GPT-2's printable code points and merged by rank; (4) each
 *     symbol is looked up in the table. LLAMA3's ignore_merges shortcut is applied.
 *
 * One known difference: special tokens are matched left to right, longest candidate at each
 * position, where llama.cpp cuts out each candidate (longest first) across the whole text. Both
 * agree unless special tokens overlap inside the text; the left-to-right scan stays linear in the
 * text length with DeepSeek-LLM's ~2400 "[PAD<i>]" candidates. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/pretok.h"
#include "tokenizer/vocab.h"
#include "tokenizer/vocab_build.h"
#include "util/error.h"

/* The token types, shorter names for this file. */
enum token_type {
    TOKEN_UNDEFINED = TS_TOKEN_UNDEFINED,
    TOKEN_NORMAL = TS_TOKEN_NORMAL,
    TOKEN_UNKNOWN = TS_TOKEN_UNKNOWN,
    TOKEN_CONTROL = TS_TOKEN_CONTROL,
    TOKEN_USER_DEFINED = TS_TOKEN_USER_DEFINED,
    TOKEN_UNUSED = TS_TOKEN_UNUSED,
    TOKEN_BYTE = TS_TOKEN_BYTE,
    TOKEN_TYPE_COUNT = TS_TOKEN_TYPE_COUNT
};

/* A token's text is stored as in the GGUF (byte-mapped code points); longer ones are refused so a
 * front end can decode any token into a fixed buffer of this size. */
#define MAX_TOKEN_BYTES 65536

typedef struct merge_entry {
    uint64_t key; /* left id << 32 | right id; EMPTY_KEY when the slot is free */
    int32_t rank;
    ts_token result;
} merge_entry;

#define EMPTY_KEY UINT64_MAX

struct ts_vocab {
    int n_tokens;
    char *text;           /* all token texts, back to back */
    size_t *text_off;     /* n_tokens + 1 offsets into text */
    char *bytes;          /* all decoded token bytes, back to back */
    size_t *bytes_off;    /* n_tokens + 1 offsets into bytes */
    unsigned char *type;  /* enum token_type per token */
    unsigned char *eog;   /* 1 if generation ends at this token */

    int32_t *token_slots; /* open addressing text -> id + 1 (0 = free) */
    size_t token_mask;
    merge_entry *merge_slots;
    size_t merge_mask;

    ts_token byte_token[256]; /* token of the single mapped code point of each byte, or -1 */
    char byte_utf8[256][2];   /* UTF-8 of each byte's mapped code point (all below U+0800) */
    unsigned char byte_utf8_len[256];
    ts_pretok *pretok;        /* the family's pre-split (tokenizer.ggml.pre) */

    ts_token *special;        /* special-token candidates, grouped by first byte, longest first */
    int special_start[257];   /* candidates starting with byte b: special[special_start[b] .. [b+1]) */
    /* Bit (b1, b2) set if some candidate starts with bytes b1 b2 or is the single byte b1: lets the
     * scan skip most positions without walking a bucket (DeepSeek-LLM has ~2400 "[PAD<i>]"). */
    uint64_t special_pair[256][4];

    ts_token bos, eos, eot, eom;
    bool add_bos;
};

/* ---- small helpers -------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static size_t pow2_at_least(size_t n) {
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

static const char *token_text(const ts_vocab *v, ts_token t, size_t *len) {
    *len = v->text_off[t + 1] - v->text_off[t];
    return v->text + v->text_off[t];
}

static ts_token lookup_token(const ts_vocab *v, const char *s, size_t n) {
    for (size_t i = hash_bytes(s, n) & v->token_mask;; i = (i + 1) & v->token_mask) {
        int32_t slot = v->token_slots[i];
        if (slot == 0)
            return -1;
        size_t len;
        const char *t = token_text(v, slot - 1, &len);
        if (len == n && memcmp(t, s, n) == 0)
            return slot - 1;
    }
}

static const merge_entry *lookup_merge(const ts_vocab *v, ts_token left, ts_token right) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t i = hash_u64(key) & v->merge_mask;; i = (i + 1) & v->merge_mask) {
        if (v->merge_slots[i].key == key)
            return &v->merge_slots[i];
        if (v->merge_slots[i].key == EMPTY_KEY)
            return NULL;
    }
}

static int utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes one UTF-8 code point at s[0..n) (n >= 1). Invalid or truncated sequences decode as the
 * single byte with *cp = UINT32_MAX, so callers can keep raw bytes intact. Returns its length. */
static int utf8_get(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    int len;
    uint32_t min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, min = 0x80, *cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, min = 0x800, *cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, min = 0x10000, *cp = c & 0x07;
    } else {
        *cp = UINT32_MAX;
        return 1;
    }
    if ((size_t)len > n) {
        *cp = UINT32_MAX;
        return 1;
    }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = UINT32_MAX;
            return 1;
        }
        *cp = (*cp << 6) | (s[i] & 0x3F);
    }
    if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) {
        *cp = UINT32_MAX;
        return 1;
    }
    return len;
}

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in increasing byte order (so that every byte has a visible, non-space character). */
static void byte_mapping(uint32_t byte_to_cp[256], int16_t cp_to_byte[324]) {
    uint32_t next = 0x100;
    for (int i = 0; i < 324; i++)
        cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        byte_to_cp[b] = printable ? (uint32_t)b : next++;
        cp_to_byte[byte_to_cp[b]] = (int16_t)b;
    }
}

/* ---- loading -------------------------------------------------------------------------------- */

void ts_vocab_free(ts_vocab *v) {
    if (!v)
        return;
    free(v->text);
    free(v->text_off);
    free(v->bytes);
    free(v->bytes_off);
    free(v->type);
    free(v->eog);
    free(v->token_slots);
    free(v->merge_slots);
    free(v->special);
    ts_pretok_free(v->pretok);
    free(v);
}

/* Reads an optional special-token id. Absent, -1 or 0xFFFFFFFF (how some converters spell "none")
 * leave *out at -1; any other id outside the vocabulary is an error. */
static int read_special_id(const gguf_file *f, const char *key, int n_tokens, ts_token *out, ts_err *err) {
    int64_t id;
    *out = -1;
    int rc = gguf_get_i64(f, key, &id, err);
    if (rc < 0)
        return -1;
    if (rc > 0 || id == -1 || id == (int64_t)UINT32_MAX)
        return 0;
    if (id < 0 || id >= n_tokens)
        return ts_fail(err, "%s: %s = %lld is outside the vocabulary of %d tokens", gguf_path(f), key, (long long)id,
                       n_tokens);
    *out = (ts_token)id;
    return 0;
}

static int set_tokens(ts_vocab *v, const ts_vocab_def *def, ts_err *err) {
    int n = def->n_tokens;
    if (n <= 0)
        return ts_fail(err, "%s: the vocabulary is empty", def->origin);
    if (n > INT32_MAX - 1)
        return ts_fail(err, "%s: %d tokens is too many", def->origin, n);
    v->n_tokens = n;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (def->tokens[i].len > MAX_TOKEN_BYTES)
            return ts_fail(err, "%s: token %d is %zu bytes long (at most %d allowed)", def->origin, i,
                           def->tokens[i].len, MAX_TOKEN_BYTES);
        total += def->tokens[i].len; /* n * 64 KiB cannot overflow size_t on 64-bit */
    }
    v->text = malloc(total ? total : 1);
    v->text_off = malloc(((size_t)n + 1) * sizeof *v->text_off);
    v->type = malloc((size_t)n);
    v->eog = calloc((size_t)n, 1);
    if (!v->text || !v->text_off || !v->type || !v->eog)
        return ts_fail(err, "out of memory loading the vocabulary");
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        v->text_off[i] = off;
        if (def->tokens[i].len)
            memcpy(v->text + off, def->tokens[i].ptr, def->tokens[i].len);
        off += def->tokens[i].len;
    }
    v->text_off[n] = off;
    for (int i = 0; i < n; i++) {
        unsigned char t = def->types ? def->types[i] : TOKEN_NORMAL;
        if (t >= TOKEN_TYPE_COUNT)
            return ts_fail(err, "%s: token %d has unknown type %d", def->origin, i, (int)t);
        v->type[i] = t;
    }

    /* text -> id. Duplicate texts keep the lowest id (llama.cpp's map keeps the last one; no
     * real vocabulary has duplicates, and "first wins" keeps encode deterministic either way). */
    v->token_mask = pow2_at_least((size_t)n * 2) - 1;
    v->token_slots = calloc(v->token_mask + 1, sizeof *v->token_slots);
    if (!v->token_slots)
        return ts_fail(err, "out of memory loading the vocabulary");
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *s = token_text(v, i, &len);
        size_t slot = hash_bytes(s, len) & v->token_mask;
        bool duplicate = false;
        for (; v->token_slots[slot] != 0; slot = (slot + 1) & v->token_mask) {
            size_t olen;
            const char *o = token_text(v, v->token_slots[slot] - 1, &olen);
            if (olen == len && memcmp(o, s, len) == 0) {
                duplicate = true;
                break;
            }
        }
        if (!duplicate)
            v->token_slots[slot] = i + 1;
    }
    return 0;
}

const char *ts_vocab_printable(const char *s, size_t n, char *out, size_t cap) {
    size_t k = 0;
    for (; k + 1 < cap && k < n; k++)
        out[k] = (unsigned char)s[k] < 0x20 || s[k] == 0x7F ? '?' : s[k];
    if (cap)
        out[k] = '\0';
    return out;
}

static int set_merges(ts_vocab *v, const ts_vocab_def *def, ts_err *err) {
    if (def->n_merges > (size_t)INT32_MAX)
        return ts_fail(err, "%s: %zu merges is too many", def->origin, def->n_merges);
    v->merge_mask = pow2_at_least(def->n_merges * 2) - 1;
    v->merge_slots = malloc((v->merge_mask + 1) * sizeof *v->merge_slots);
    if (!v->merge_slots)
        return ts_fail(err, "out of memory loading the merges");
    for (size_t i = 0; i <= v->merge_mask; i++)
        v->merge_slots[i].key = EMPTY_KEY;

    char *joined = malloc(2 * MAX_TOKEN_BYTES + 1);
    if (!joined)
        return ts_fail(err, "out of memory loading the merges");
    for (size_t r = 0; r < def->n_merges; r++) {
        ts_text l = def->merge_left[r], rt = def->merge_right[r];
        ts_token left = lookup_token(v, l.ptr, l.len);
        ts_token right = lookup_token(v, rt.ptr, rt.len);
        ts_token result = -1;
        if (l.len <= MAX_TOKEN_BYTES && rt.len <= MAX_TOKEN_BYTES) {
            memcpy(joined, l.ptr, l.len);
            memcpy(joined + l.len, rt.ptr, rt.len);
            result = lookup_token(v, joined, l.len + rt.len);
        }
        if (left < 0 || right < 0 || result < 0) {
            char lq[33], rq[33];
            free(joined);
            return ts_fail(err, "%s: merge %zu (\"%s\" + \"%s\") refers to a token that is not in the vocabulary",
                           def->origin, r, ts_vocab_printable(l.ptr, l.len, lq, sizeof lq),
                           ts_vocab_printable(rt.ptr, rt.len, rq, sizeof rq));
        }
        uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
        size_t slot = hash_u64(key) & v->merge_mask;
        while (v->merge_slots[slot].key != EMPTY_KEY && v->merge_slots[slot].key != key)
            slot = (slot + 1) & v->merge_mask;
        if (v->merge_slots[slot].key == EMPTY_KEY) /* a repeated merge keeps its best (first) rank */
            v->merge_slots[slot] = (merge_entry){.key = key, .rank = (int32_t)r, .result = result};
    }
    free(joined);
    return 0;
}

/* Decoded bytes of every token: normal tokens undo the byte mapping; user-defined, control and
 * unknown tokens are their text verbatim; unused (padding) tokens decode to nothing, as in
 * llama.cpp, so a model that emits one prints no "[PAD123]" noise. */
static int build_token_bytes(ts_vocab *v, ts_err *err) {
    uint32_t byte_to_cp[256];
    int16_t cp_to_byte[324];
    byte_mapping(byte_to_cp, cp_to_byte);
    size_t total = v->text_off[v->n_tokens]; /* decoding never grows a token */
    v->bytes = malloc(total ? total : 1);
    v->bytes_off = malloc(((size_t)v->n_tokens + 1) * sizeof *v->bytes_off);
    if (!v->bytes || !v->bytes_off)
        return ts_fail(err, "out of memory loading the vocabulary");
    size_t out = 0;
    for (int t = 0; t < v->n_tokens; t++) {
        v->bytes_off[t] = out;
        size_t len;
        const unsigned char *s = (const unsigned char *)token_text(v, t, &len);
        bool mapped = v->type[t] == TOKEN_NORMAL || v->type[t] == TOKEN_UNDEFINED || v->type[t] == TOKEN_BYTE;
        if (v->type[t] == TOKEN_UNUSED)
            len = 0;
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            int n = utf8_get(s + i, len - i, &cp);
            if (mapped && cp < 324 && cp_to_byte[cp] >= 0) {
                v->bytes[out++] = (char)cp_to_byte[cp];
            } else { /* not a mapped character: keep the text's own bytes */
                memcpy(v->bytes + out, s + i, (size_t)n);
                out += (size_t)n;
            }
            i += (size_t)n;
        }
    }
    v->bytes_off[v->n_tokens] = out;

    for (int b = 0; b < 256; b++) {
        char buf[4];
        int n = utf8_put(byte_to_cp[b], buf);
        v->byte_token[b] = lookup_token(v, buf, (size_t)n);
        memcpy(v->byte_utf8[b], buf, 2); /* mapped code points are < U+0144: at most 2 bytes */
        v->byte_utf8_len[b] = (unsigned char)n;
    }
    return 0;
}

typedef struct special_key {
    unsigned char first;
    size_t len;
    ts_token id;
} special_key;

/* By first byte, then longest first (so the first match at a position is the longest), then id. */
static int special_key_cmp(const void *a, const void *b) {
    const special_key *x = a, *y = b;
    if (x->first != y->first)
        return x->first - y->first;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static bool is_special_candidate(const ts_vocab *v, ts_token t) {
    unsigned char ty = v->type[t];
    return (ty == TOKEN_CONTROL || ty == TOKEN_USER_DEFINED || ty == TOKEN_UNKNOWN) &&
           v->text_off[t + 1] > v->text_off[t];
}

static int build_special_index(ts_vocab *v, ts_err *err) {
    int n = 0;
    for (int t = 0; t < v->n_tokens; t++)
        n += is_special_candidate(v, t);
    special_key *keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
    v->special = malloc((size_t)(n ? n : 1) * sizeof *v->special);
    if (!keys || !v->special) {
        free(keys);
        return ts_fail(err, "out of memory loading the vocabulary");
    }
    n = 0;
    for (int t = 0; t < v->n_tokens; t++) {
        if (!is_special_candidate(v, t))
            continue;
        const unsigned char *text = (const unsigned char *)v->text + v->text_off[t];
        size_t len = v->text_off[t + 1] - v->text_off[t];
        keys[n++] = (special_key){text[0], len, t};
        if (len == 1) {
            for (int w = 0; w < 4; w++)
                v->special_pair[text[0]][w] = UINT64_MAX;
        } else {
            v->special_pair[text[0]][text[1] >> 6] |= 1ull << (text[1] & 63);
        }
    }
    qsort(keys, (size_t)n, sizeof *keys, special_key_cmp);
    int i = 0;
    for (int b = 0; b < 256; b++) {
        v->special_start[b] = i;
        while (i < n && keys[i].first == b)
            v->special[i] = keys[i].id, i++;
    }
    v->special_start[256] = n;
    free(keys);
    return 0;
}

/* End-of-generation tokens: the declared EOS/EOT/EOM plus the end-of-turn markers llama.cpp
 * recognises by name, and DeepSeek-Coder's <|EOT|> (its instruct models end turns with it). */
static void mark_eog(ts_vocab *v) {
    static const char *const names[] = {"<|eot_id|>",   "<|im_end|>", "<|end|>", "<end_of_turn>",
                                        "<|endoftext|>", "<|eom_id|>", "<EOT>",   "<|EOT|>",
                                        "<｜end▁of▁sentence｜>"};
    ts_token declared[3] = {v->eos, v->eot, v->eom};
    for (int i = 0; i < 3; i++)
        if (declared[i] >= 0)
            v->eog[declared[i]] = 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ts_token t = lookup_token(v, names[i], strlen(names[i]));
        if (t >= 0 && (v->type[t] == TOKEN_CONTROL || v->type[t] == TOKEN_USER_DEFINED))
            v->eog[t] = 1;
    }
}

int ts_vocab_build(const ts_vocab_def *def, ts_vocab **out, ts_err *err) {
    *out = NULL;
    ts_token specials[4] = {def->bos, def->eos, def->eot, def->eom};
    for (int i = 0; i < 4; i++)
        if (specials[i] < -1 || specials[i] >= def->n_tokens)
            return ts_fail(err, "%s: special token id %d is outside the vocabulary of %d tokens", def->origin,
                           (int)specials[i], def->n_tokens);
    ts_vocab *v = calloc(1, sizeof *v);
    if (!v)
        return ts_fail(err, "out of memory loading the vocabulary");
    if (set_tokens(v, def, err) || set_merges(v, def, err) || build_token_bytes(v, err) ||
        build_special_index(v, err) || ts_pretok_create(def->pre, def->pre_len, &v->pretok, err) != 0) {
        ts_vocab_free(v);
        return -1;
    }
    if (def->nfc >= 0)
        ts_pretok_set_nfc(v->pretok, def->nfc != 0);
    v->bos = def->bos, v->eos = def->eos, v->eot = def->eot, v->eom = def->eom;
    v->add_bos = def->add_bos;
    mark_eog(v);
    *out = v;
    return 0;
}

/* Splits a GGUF merge "LEFT RIGHT" at the first space at position >= 1 (a left part may be a
 * space only in its byte-mapped form, which is never ' ', so this is unambiguous). */
static int split_gguf_merges(const gguf_file *f, const gguf_kv *merges, ts_text *left, ts_text *right, ts_err *err) {
    for (uint64_t r = 0; r < merges->arr_n; r++) {
        gguf_str m = gguf_arr_str(merges, r);
        const char *space = m.len > 1 ? memchr(m.ptr + 1, ' ', (size_t)m.len - 1) : NULL;
        if (!space || m.len > 2 * MAX_TOKEN_BYTES)
            return ts_fail(err, "%s: merge %llu (\"%.*s\") is not \"LEFT RIGHT\"", gguf_path(f), (unsigned long long)r,
                           (int)(m.len > 64 ? 64 : m.len), m.ptr);
        left[r] = (ts_text){m.ptr, (size_t)(space - m.ptr)};
        right[r] = (ts_text){space + 1, (size_t)m.len - left[r].len - 1};
    }
    return 0;
}

int ts_vocab_load(const gguf_file *f, int n_vocab_model, ts_vocab **out, ts_err *err) {
    *out = NULL;
    gguf_str model;
    int rc = gguf_get_str(f, "tokenizer.ggml.model", &model, err);
    if (rc < 0)
        return -1;
    if (rc > 0)
        return ts_fail(err, "%s: tokenizer.ggml.model is missing (no vocabulary in this file)", gguf_path(f));
    if (!gguf_str_eq(model, "gpt2"))
        return ts_fail(err, "%s: tokenizer model \"%.*s\" is not supported (only \"gpt2\" byte-level BPE is)",
                       gguf_path(f), (int)(model.len > 64 ? 64 : model.len), model.ptr);

    const gguf_kv *tokens, *types = NULL, *merges;
    rc = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_STRING, &tokens, err);
    if (rc < 0)
        return -1;
    if (rc > 0)
        return ts_fail(err, "%s: tokenizer.ggml.tokens is missing", gguf_path(f));
    if (tokens->arr_n == 0)
        return ts_fail(err, "%s: tokenizer.ggml.tokens is empty", gguf_path(f));
    if (tokens->arr_n > (uint64_t)INT32_MAX - 1)
        return ts_fail(err, "%s: %llu tokens is too many", gguf_path(f), (unsigned long long)tokens->arr_n);
    if (n_vocab_model > 0 && tokens->arr_n > (uint64_t)n_vocab_model)
        return ts_fail(err, "%s: the vocabulary has %llu tokens but the embedding only %d rows", gguf_path(f),
                       (unsigned long long)tokens->arr_n, n_vocab_model);
    int n = (int)tokens->arr_n;
    rc = gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_I32, &types, err);
    if (rc < 0)
        return -1;
    if (rc == 0 && types->arr_n != (uint64_t)n)
        return ts_fail(err, "%s: tokenizer.ggml.token_type has %llu entries for %d tokens", gguf_path(f),
                       (unsigned long long)types->arr_n, n);
    if (rc > 0)
        types = NULL;
    rc = gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_STRING, &merges, err);
    if (rc < 0)
        return -1;
    if (rc > 0)
        return ts_fail(err, "%s: tokenizer.ggml.merges is missing (a gpt2 tokenizer needs its merges)", gguf_path(f));
    if (merges->arr_n > (uint64_t)INT32_MAX)
        return ts_fail(err, "%s: %llu merges is too many", gguf_path(f), (unsigned long long)merges->arr_n);

    ts_vocab_def def = {.origin = gguf_path(f), .n_tokens = n, .n_merges = (size_t)merges->arr_n, .nfc = -1};
    ts_text *texts = malloc((size_t)n * sizeof *texts);
    unsigned char *type_bytes = types ? malloc((size_t)n) : NULL;
    ts_text *merge_sides = malloc((def.n_merges ? def.n_merges : 1) * 2 * sizeof *merge_sides);
    rc = -1;
    if (!texts || (types && !type_bytes) || !merge_sides) {
        ts_fail(err, "out of memory loading the vocabulary");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        gguf_str s = gguf_arr_str(tokens, (uint64_t)i);
        if (s.len > MAX_TOKEN_BYTES) {
            ts_fail(err, "%s: token %d is %llu bytes long (at most %d allowed)", gguf_path(f), i,
                    (unsigned long long)s.len, MAX_TOKEN_BYTES);
            goto done;
        }
        texts[i] = (ts_text){s.ptr, (size_t)s.len};
    }
    for (int i = 0; types && i < n; i++) {
        int32_t t;
        memcpy(&t, (const unsigned char *)types->data + (size_t)i * 4, 4); /* GGUF is little-endian, like every host we build for */
        if (t < 0 || t >= TOKEN_TYPE_COUNT) {
            ts_fail(err, "%s: token %d has unknown type %d", gguf_path(f), i, (int)t);
            goto done;
        }
        type_bytes[i] = (unsigned char)t;
    }
    def.tokens = texts;
    def.types = type_bytes;
    def.merge_left = merge_sides;
    def.merge_right = merge_sides + def.n_merges;
    if (split_gguf_merges(f, merges, merge_sides, merge_sides + def.n_merges, err))
        goto done;
    if (read_special_id(f, "tokenizer.ggml.bos_token_id", n, &def.bos, err) ||
        read_special_id(f, "tokenizer.ggml.eos_token_id", n, &def.eos, err) ||
        read_special_id(f, "tokenizer.ggml.eot_token_id", n, &def.eot, err) ||
        read_special_id(f, "tokenizer.ggml.eom_token_id", n, &def.eom, err))
        goto done;
    ts_token unused;
    if (read_special_id(f, "tokenizer.ggml.unknown_token_id", n, &unused, err) ||
        read_special_id(f, "tokenizer.ggml.padding_token_id", n, &unused, err))
        goto done;

    /* llama.cpp's default for BPE vocabularies is no BOS, except for the Llama-3 pre-tokenizer
     * names; the file's add_bos_token overrides it (all DeepSeek files set it to true). */
    gguf_str pre;
    int pre_rc = gguf_get_str(f, "tokenizer.ggml.pre", &pre, err);
    if (pre_rc < 0)
        goto done;
    def.add_bos = pre_rc == 0 && (gguf_str_eq(pre, "llama3") || gguf_str_eq(pre, "llama-v3") || gguf_str_eq(pre, "llama-bpe"));
    def.pre = pre_rc == 0 ? pre.ptr : NULL;
    def.pre_len = pre_rc == 0 ? (size_t)pre.len : 0;
    if (gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &def.add_bos, err) < 0)
        goto done;
    rc = ts_vocab_build(&def, out, err);
done:
    free(texts);
    free(type_bytes);
    free(merge_sides);
    return rc;
}

int ts_vocab_size(const ts_vocab *v) { return v->n_tokens; }
ts_token ts_vocab_bos(const ts_vocab *v) { return v->bos; }
ts_token ts_vocab_eos(const ts_vocab *v) { return v->eos; }
bool ts_vocab_add_bos(const ts_vocab *v) { return v->add_bos; }
bool ts_vocab_is_eog(const ts_vocab *v, ts_token t) { return t >= 0 && t < v->n_tokens && v->eog[t]; }

int ts_vocab_token_bytes(const ts_vocab *v, ts_token t, char *buf, int cap) {
    if (t < 0 || t >= v->n_tokens)
        return -1;
    size_t len = v->bytes_off[t + 1] - v->bytes_off[t];
    if (cap < 0 || len > (size_t)cap)
        return -1;
    if (len)
        memcpy(buf, v->bytes + v->bytes_off[t], len);
    return (int)len;
}

/* ---- encoding ------------------------------------------------------------------------------- */

typedef struct pair_entry {
    int32_t rank;
    int32_t left;  /* symbol index of the left side */
    int32_t right; /* symbol index of the right side, to detect stale entries */
    ts_token left_id, right_id;
} pair_entry;

typedef struct encoder {
    const ts_vocab *v;
    ts_token *out;
    size_t n_out, cap_out;
    /* per-piece scratch, grown to the longest piece */
    ts_token *sym_id;
    int32_t *sym_prev, *sym_next;
    pair_entry *heap;
    size_t scratch_cap;
    char *mapped; /* a piece in byte-mapped form, for whole-piece lookups */
    size_t mapped_cap;
    ts_pretok_scratch pretok;
    bool failed;
} encoder;

static void emit(encoder *e, ts_token t) {
    if (e->failed)
        return;
    if (e->n_out == e->cap_out) {
        size_t cap = e->cap_out ? e->cap_out * 2 : 256;
        ts_token *p = realloc(e->out, cap * sizeof *p);
        if (!p) {
            e->failed = true;
            return;
        }
        e->out = p;
        e->cap_out = cap;
    }
    e->out[e->n_out++] = t;
}

static bool pair_less(const pair_entry *a, const pair_entry *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

static void heap_push(pair_entry *h, size_t *n, pair_entry x) {
    size_t i = (*n)++;
    while (i > 0 && pair_less(&x, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = x;
}

static pair_entry heap_pop(pair_entry *h, size_t *n) {
    pair_entry top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && pair_less(&h[c + 1], &h[c]))
            c++;
        if (!pair_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = last;
    return top;
}

static void try_push_pair(encoder *e, size_t *heap_n, int32_t left, int32_t right) {
    if (left < 0 || right < 0)
        return;
    ts_token l = e->sym_id[left], r = e->sym_id[right];
    if (l < 0 || r < 0)
        return;
    const merge_entry *m = lookup_merge(e->v, l, r);
    if (m)
        heap_push(e->heap, heap_n, (pair_entry){m->rank, left, right, l, r});
}

/* BPE over one piece: one symbol per byte, then repeatedly merge the adjacent pair with the lowest
 * rank (leftmost on ties), like llama.cpp's llm_tokenizer_bpe_session. O(n log n) per piece. */
static void encode_piece(encoder *e, const unsigned char *s, size_t n) {
    if (n == 1) {
        if (e->v->byte_token[s[0]] >= 0)
            emit(e, e->v->byte_token[s[0]]);
        return;
    }
    if (n > e->scratch_cap) {
        size_t cap = n < 64 ? 64 : n;
        if (cap > (size_t)INT32_MAX / 4) {
            e->failed = true;
            return;
        }
        free(e->sym_id), free(e->sym_prev), free(e->sym_next), free(e->heap);
        e->sym_id = malloc(cap * sizeof *e->sym_id);
        e->sym_prev = malloc(cap * sizeof *e->sym_prev);
        e->sym_next = malloc(cap * sizeof *e->sym_next);
        e->heap = malloc(3 * cap * sizeof *e->heap); /* n-1 initial pairs + at most 2 per merge */
        e->scratch_cap = cap;
        if (!e->sym_id || !e->sym_prev || !e->sym_next || !e->heap) {
            e->scratch_cap = 0;
            e->failed = true;
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        e->sym_id[i] = e->v->byte_token[s[i]];
        e->sym_prev[i] = (int32_t)i - 1;
        e->sym_next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    size_t heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        try_push_pair(e, &heap_n, (int32_t)i, (int32_t)i + 1);
    while (heap_n) {
        pair_entry p = heap_pop(e->heap, &heap_n);
        /* Stale if either side changed since the pair was queued (merged away or grown). */
        if (e->sym_id[p.left] != p.left_id || e->sym_next[p.left] != p.right || e->sym_id[p.right] != p.right_id)
            continue;
        const merge_entry *m = lookup_merge(e->v, p.left_id, p.right_id);
        e->sym_id[p.left] = m->result;
        e->sym_id[p.right] = -2; /* consumed */
        int32_t next = e->sym_next[p.right];
        e->sym_next[p.left] = next;
        if (next >= 0)
            e->sym_prev[next] = p.left;
        try_push_pair(e, &heap_n, e->sym_prev[p.left], p.left);
        try_push_pair(e, &heap_n, p.left, next);
    }
    /* Symbols that are still -1 are bytes without a token: dropped, as llama.cpp does. */
    for (int32_t i = 0; i >= 0; i = e->sym_next[i])
        if (e->sym_id[i] >= 0)
            emit(e, e->sym_id[i]);
}

/* The token whose text is the byte-mapped form of piece[0..n), or -1. */
static ts_token lookup_mapped(encoder *e, const unsigned char *piece, size_t n) {
    if (n > SIZE_MAX / 2 - 1)
        return -1;
    if (2 * n > e->mapped_cap) {
        char *p = realloc(e->mapped, 2 * n);
        if (!p) {
            e->failed = true;
            return -1;
        }
        e->mapped = p;
        e->mapped_cap = 2 * n;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(e->mapped + len, e->v->byte_utf8[piece[i]], e->v->byte_utf8_len[piece[i]]);
        len += e->v->byte_utf8_len[piece[i]];
    }
    return lookup_token(e->v, e->mapped, len);
}

/* Pre-splits a raw span (text between special tokens) with the family's regexes, then runs BPE on
 * every piece. */
static void encode_raw(encoder *e, const unsigned char *s, size_t n) {
    if (n == 0 || e->failed)
        return;
    const char *clean;
    size_t clean_len;
    if (ts_pretok_split(e->v->pretok, (const char *)s, n, &e->pretok, &clean, &clean_len) != 0) {
        e->failed = true;
        return;
    }
    const size_t *piece_len = e->pretok.piece_len[e->pretok.current];
    bool ignore_merges = ts_pretok_ignore_merges(e->v->pretok);
    size_t at = 0;
    for (size_t k = 0; k < e->pretok.n_pieces && !e->failed; k++) {
        const unsigned char *piece = (const unsigned char *)clean + at;
        at += piece_len[k];
        if (ignore_merges && piece_len[k] > 1) {
            ts_token whole = lookup_mapped(e, piece, piece_len[k]);
            if (whole >= 0) {
                emit(e, whole);
                continue;
            }
        }
        encode_piece(e, piece, piece_len[k]);
    }
}

int ts_vocab_encode(const ts_vocab *v, const char *text, size_t len, bool add_bos, ts_token *out, int cap) {
    return ts_vocab_encode_ex(v, text, len, add_bos, true, out, cap);
}

int ts_vocab_encode_ex(const ts_vocab *v, const char *text, size_t len, bool add_bos, bool parse_special, ts_token *out,
                       int cap) {
    encoder e = {.v = v};
    if (add_bos && v->bos >= 0)
        emit(&e, v->bos);
    const unsigned char *s = (const unsigned char *)text;
    size_t raw_start = 0, i = 0;
    if (len == 0)
        s = (const unsigned char *)""; /* text may be NULL when empty; keep pointer arithmetic defined */
    while (i < len && !e.failed) {
        ts_token match = -1;
        size_t match_len = 0;
        /* Quick reject on the first two bytes before walking the bucket. */
        bool possible = i + 1 < len ? (v->special_pair[s[i]][s[i + 1] >> 6] >> (s[i + 1] & 63)) & 1
                                    : v->special_start[s[i]] < v->special_start[s[i] + 1];
        int k_end = possible ? v->special_start[s[i] + 1] : 0;
        for (int k = possible ? v->special_start[s[i]] : 0; k < k_end; k++) {
            size_t tl;
            const char *t = token_text(v, v->special[k], &tl);
            if (!parse_special && v->type[v->special[k]] != TOKEN_USER_DEFINED)
                continue; /* only user-defined tokens are always split out (HF added tokens) */
            if (tl <= len - i && memcmp(t, s + i, tl) == 0) {
                match = v->special[k];
                match_len = tl;
                break; /* candidates are sorted longest first */
            }
        }
        if (match < 0) {
            i++;
            continue;
        }
        encode_raw(&e, s + raw_start, i - raw_start);
        emit(&e, match);
        i += match_len;
        raw_start = i;
    }
    if (!e.failed)
        encode_raw(&e, s + raw_start, len - raw_start);

    free(e.sym_id), free(e.sym_prev), free(e.sym_next), free(e.heap), free(e.mapped);
    ts_pretok_scratch_free(&e.pretok);
    int result;
    if (e.failed || e.n_out > (size_t)INT32_MAX)
        result = INT32_MIN;
    else if (e.n_out > (size_t)(cap < 0 ? 0 : cap))
        result = -(int)e.n_out;
    else {
        if (e.n_out)
            memcpy(out, e.out, e.n_out * sizeof *out);
        result = (int)e.n_out;
    }
    free(e.out);
    return result;
}
