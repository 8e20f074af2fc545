/* Incremental JSON-object validator and vocabulary mask (see json_constraint.h).
 *
 * The validator is a pushdown automaton with the stack packed into one bit per level (object or
 * array), so a state is a few bytes and trying a token means copying it and feeding the token's
 * bytes. Each check refuses a byte as soon as no completion could make the text valid (for example
 * "\uDC" inside a string: every such escape is a lone low surrogate), which is what makes masking
 * safe: an accepted prefix is never a dead end. */
#include "server/json_constraint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mode {
    M_START,       /* before the top-level '{' */
    M_OBJ_FIRST,   /* after '{': a key or '}' */
    M_OBJ_KEY,     /* after ',' in an object: a key */
    M_COLON,       /* after a key */
    M_VALUE,       /* after ':' or after ',' in an array */
    M_ARR_FIRST,   /* after '[': a value or ']' */
    M_AFTER_VALUE, /* ',' or the closing bracket of the innermost container */
    M_DONE,        /* the object is closed */
    M_STRING,      /* inside a string, between characters */
    M_STR_ESC,     /* after a backslash */
    M_STR_HEX,     /* inside \uXXXX (count = digits read) */
    M_STR_LOW_BS,  /* after a high-surrogate escape: its low half must follow, starting with '\' */
    M_STR_LOW_U,   /* ... then 'u' */
    M_STR_UTF8,    /* inside a multi-byte UTF-8 character (count = continuation bytes left) */
    M_NUM_MINUS,   /* "-": a digit must follow */
    M_NUM_ZERO,    /* a leading 0: no more integer digits */
    M_NUM_INT,     /* integer digits */
    M_NUM_DOT,     /* "." : a digit must follow */
    M_NUM_FRAC,    /* fraction digits */
    M_NUM_E,       /* "e": sign or digit */
    M_NUM_ESIGN,   /* "e+": a digit must follow */
    M_NUM_EXP,     /* exponent digits */
    M_LITERAL,     /* inside true/false/null (count = bytes matched) */
    M_REJECTED,
};

enum error {
    E_NONE,
    E_SYNTAX,
    E_DEPTH,
    E_WHITESPACE,
    E_CONTROL,
    E_UTF8,
    E_ESCAPE,
    E_SURROGATE,
    E_NUMBER,
    E_TRAILING,
};

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

static const char *const jc_literals[3] = {"true", "false", "null"};

void json_constraint_init(json_constraint *jc) {
    memset(jc, 0, sizeof *jc);
    jc->mode = M_START;
}

bool json_constraint_complete(const json_constraint *jc) { return jc->mode == M_DONE; }

const char *json_constraint_error(const json_constraint *jc) {
    if (jc->mode != M_REJECTED)
        return "";
    switch (jc->error) {
    case E_DEPTH: return "nesting deeper than " STRINGIFY(JSONC_MAX_DEPTH) " containers";
    case E_WHITESPACE: return "more than " STRINGIFY(JSONC_MAX_WS_RUN) " whitespace bytes in a row outside strings";
    case E_CONTROL: return "unescaped control character in a string";
    case E_UTF8: return "malformed UTF-8 in a string";
    case E_ESCAPE: return "invalid escape in a string";
    case E_SURROGATE: return "unpaired UTF-16 surrogate in a \\u escape";
    case E_NUMBER: return "malformed number";
    case E_TRAILING: return "text after the end of the object";
    default: return "not a JSON object";
    }
}

static bool jc_reject(json_constraint *jc, enum error e) {
    jc->mode = M_REJECTED;
    jc->error = (uint8_t)e;
    return false;
}

static bool jc_is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool jc_is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int jc_hex_value(unsigned char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool top_is_array(const json_constraint *jc) { return (jc->is_array >> (jc->depth - 1)) & 1u; }

static bool jc_push(json_constraint *jc, bool array) {
    if (jc->depth >= JSONC_MAX_DEPTH)
        return jc_reject(jc, E_DEPTH);
    uint64_t bit = (uint64_t)1 << jc->depth;
    jc->is_array = array ? (jc->is_array | bit) : (jc->is_array & ~bit);
    jc->depth++;
    jc->mode = array ? M_ARR_FIRST : M_OBJ_FIRST;
    return true;
}

static void jc_pop(json_constraint *jc) {
    jc->depth--;
    jc->mode = jc->depth == 0 ? M_DONE : M_AFTER_VALUE;
}

/* The first byte of a value (mode M_VALUE or M_ARR_FIRST, not whitespace). */
static bool jc_value_start(json_constraint *jc, unsigned char c) {
    switch (c) {
    case '{': return jc_push(jc, false);
    case '[': return jc_push(jc, true);
    case '"':
        jc->mode = M_STRING;
        jc->in_key = false;
        return true;
    case '-': jc->mode = M_NUM_MINUS; return true;
    case '0': jc->mode = M_NUM_ZERO; return true;
    case 't':
    case 'f':
    case 'n':
        jc->mode = M_LITERAL;
        jc->literal = c == 't' ? 0 : c == 'f' ? 1 : 2;
        jc->count = 1;
        return true;
    default:
        if (c >= '1' && c <= '9') {
            jc->mode = M_NUM_INT;
            return true;
        }
        return jc_reject(jc, E_SYNTAX);
    }
}

/* A byte inside a string, between characters. */
static bool jc_string_byte(json_constraint *jc, unsigned char c) {
    if (c == '"') {
        jc->mode = jc->in_key ? M_COLON : M_AFTER_VALUE;
        return true;
    }
    if (c == '\\') {
        jc->mode = M_STR_ESC;
        return true;
    }
    if (c < 0x20)
        return jc_reject(jc, E_CONTROL);
    if (c < 0x80)
        return true;
    /* Lead bytes of well-formed UTF-8 (Unicode 15, table 3-7): the ranges for the second byte exclude
     * overlong forms, surrogates and code points above U+10FFFF. */
    jc->next_lo = 0x80;
    jc->next_hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        jc->count = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        jc->count = 2;
        if (c == 0xE0)
            jc->next_lo = 0xA0;
        else if (c == 0xED)
            jc->next_hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        jc->count = 3;
        if (c == 0xF0)
            jc->next_lo = 0x90;
        else if (c == 0xF4)
            jc->next_hi = 0x8F;
    } else
        return jc_reject(jc, E_UTF8);
    jc->mode = M_STR_UTF8;
    return true;
}

static bool jc_feed_byte(json_constraint *jc, unsigned char c) {
    if (jc_is_ws(c) && (jc->mode <= M_DONE || jc->mode == M_NUM_ZERO || jc->mode == M_NUM_INT || jc->mode == M_NUM_FRAC ||
                     jc->mode == M_NUM_EXP)) {
        /* Whitespace may separate tokens, and ends a number where one may end. */
        if (jc->mode > M_DONE)
            jc->mode = M_AFTER_VALUE;
        if (++jc->ws_run > JSONC_MAX_WS_RUN)
            return jc_reject(jc, E_WHITESPACE);
        return true;
    }
    jc->ws_run = 0;
    switch (jc->mode) {
    case M_START:
        if (c != '{')
            return jc_reject(jc, E_SYNTAX);
        if (!jc_push(jc, false))
            return false;
        break;
    case M_OBJ_FIRST:
        if (c == '}') {
            jc_pop(jc);
            break;
        }
        /* fallthrough */
    case M_OBJ_KEY:
        if (c != '"')
            return jc_reject(jc, E_SYNTAX);
        jc->mode = M_STRING;
        jc->in_key = true;
        break;
    case M_COLON:
        if (c != ':')
            return jc_reject(jc, E_SYNTAX);
        jc->mode = M_VALUE;
        break;
    case M_ARR_FIRST:
        if (c == ']') {
            jc_pop(jc);
            break;
        }
        /* fallthrough */
    case M_VALUE:
        if (!jc_value_start(jc, c))
            return false;
        break;
    case M_AFTER_VALUE:
        if (c == ',')
            jc->mode = top_is_array(jc) ? M_VALUE : M_OBJ_KEY;
        else if (c == (top_is_array(jc) ? ']' : '}'))
            jc_pop(jc);
        else
            return jc_reject(jc, E_SYNTAX);
        break;
    case M_DONE: return jc_reject(jc, E_TRAILING);
    case M_STRING:
        if (!jc_string_byte(jc, c))
            return false;
        break;
    case M_STR_ESC:
        if (c == 'u') {
            jc->mode = M_STR_HEX;
            jc->count = 0;
        } else if (strchr("\"\\/bfnrt", c) && c != 0)
            jc->mode = M_STRING;
        else
            return jc_reject(jc, E_ESCAPE);
        break;
    case M_STR_HEX: {
        int v = jc_hex_value(c);
        if (v < 0)
            return jc_reject(jc, E_ESCAPE);
        /* want_low: this escape must be DC00..DFFF. Otherwise it must not be DC00..DFFF, and
         * D800..DBFF makes it a high surrogate whose low half must follow. */
        if (jc->count == 0) {
            if (jc->want_low && v != 0xD)
                return jc_reject(jc, E_SURROGATE);
            jc->high_d = v == 0xD;
        } else if (jc->count == 1 && jc->high_d) {
            if (jc->want_low ? v < 0xC : v >= 0xC)
                return jc_reject(jc, E_SURROGATE);
            jc->high_d = !jc->want_low && v >= 0x8; /* now: "this escape is a high surrogate" */
        } else if (jc->count == 1)
            jc->high_d = false;
        if (++jc->count == 4) {
            if (jc->want_low) {
                jc->want_low = false;
                jc->mode = M_STRING;
            } else if (jc->high_d) {
                jc->want_low = true;
                jc->mode = M_STR_LOW_BS;
            } else
                jc->mode = M_STRING;
        }
        break;
    }
    case M_STR_LOW_BS:
        if (c != '\\')
            return jc_reject(jc, E_SURROGATE);
        jc->mode = M_STR_LOW_U;
        break;
    case M_STR_LOW_U:
        if (c != 'u')
            return jc_reject(jc, E_SURROGATE);
        jc->mode = M_STR_HEX;
        jc->count = 0;
        break;
    case M_STR_UTF8:
        if (c < jc->next_lo || c > jc->next_hi)
            return jc_reject(jc, E_UTF8);
        jc->next_lo = 0x80;
        jc->next_hi = 0xBF;
        if (--jc->count == 0)
            jc->mode = M_STRING;
        break;
    case M_NUM_MINUS:
        if (c == '0')
            jc->mode = M_NUM_ZERO;
        else if (c >= '1' && c <= '9')
            jc->mode = M_NUM_INT;
        else
            return jc_reject(jc, E_NUMBER);
        break;
    case M_NUM_DOT:
    case M_NUM_ESIGN:
        if (!jc_is_digit(c))
            return jc_reject(jc, E_NUMBER);
        jc->mode = jc->mode == M_NUM_DOT ? M_NUM_FRAC : M_NUM_EXP;
        break;
    case M_NUM_E:
        if (c == '+' || c == '-')
            jc->mode = M_NUM_ESIGN;
        else if (jc_is_digit(c))
            jc->mode = M_NUM_EXP;
        else
            return jc_reject(jc, E_NUMBER);
        break;
    case M_NUM_ZERO:
    case M_NUM_INT:
    case M_NUM_FRAC:
    case M_NUM_EXP:
        if (jc_is_digit(c) && jc->mode != M_NUM_ZERO)
            break;
        if (c == '.' && jc->mode <= M_NUM_INT) {
            jc->mode = M_NUM_DOT;
            break;
        }
        if ((c == 'e' || c == 'E') && jc->mode != M_NUM_EXP) {
            jc->mode = M_NUM_E;
            break;
        }
        if (jc_is_digit(c))
            return jc_reject(jc, E_NUMBER); /* a leading zero followed by more digits */
        /* Any other byte ends the number; it must then fit after a value. */
        jc->mode = M_AFTER_VALUE;
        return jc_feed_byte(jc, c);
    case M_LITERAL:
        if (c != (unsigned char)jc_literals[jc->literal][jc->count])
            return jc_reject(jc, E_SYNTAX);
        if (jc_literals[jc->literal][++jc->count] == '\0')
            jc->mode = M_AFTER_VALUE;
        break;
    default: return jc_reject(jc, E_SYNTAX);
    }
    return true;
}

bool json_constraint_feed(json_constraint *jc, const char *bytes, size_t n) {
    if (jc->mode == M_REJECTED)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!jc_feed_byte(jc, (unsigned char)bytes[i]))
            return false;
    return true;
}

/* ---- vocabulary mask ---------------------------------------------------------------------------- */

static bool utf8_whole_chars_no_specials(const unsigned char *b, size_t n) {
    json_constraint probe;
    json_constraint_init(&probe);
    probe.mode = M_STRING;
    for (size_t i = 0; i < n; i++) {
        if (b[i] == '"' || b[i] == '\\')
            return false;
        if (!json_constraint_feed(&probe, (const char *)b + i, 1))
            return false;
    }
    return probe.mode == M_STRING;
}

int json_token_table_build(json_token_table *tt, const ts_model *m, char err[TS_ERR_LEN]) {
    memset(tt, 0, sizeof *tt);
    ts_model_info info;
    ts_model_get_info(m, &info);
    int n_vocab = info.n_vocab;
    tt->n_vocab = n_vocab;
    tt->offset = malloc(((size_t)n_vocab + 1) * sizeof *tt->offset);
    tt->flags = calloc((size_t)n_vocab, 1);
    size_t cap = (size_t)n_vocab * 8 + 64, len = 0;
    tt->bytes = malloc(cap);
    char piece[1024];
    if (!tt->offset || !tt->flags || !tt->bytes)
        goto oom;
    for (int t = 0; t < n_vocab; t++) {
        tt->offset[t] = (uint32_t)len;
        int n = ts_token_bytes(m, t, piece, (int)sizeof piece);
        if (n < 0)
            n = 0; /* longer than any real token, or unknown: treated as having no text, never allowed */
        if (len + (size_t)n > UINT32_MAX) {
            snprintf(err, TS_ERR_LEN, "vocabulary text too large");
            json_token_table_free(tt);
            return -1;
        }
        if (len + (size_t)n > cap) {
            size_t bigger_cap = (len + (size_t)n) * 2;
            unsigned char *bigger = realloc(tt->bytes, bigger_cap);
            if (!bigger)
                goto oom;
            tt->bytes = bigger;
            cap = bigger_cap;
        }
        memcpy(tt->bytes + len, piece, (size_t)n);
        len += (size_t)n;
        if (ts_token_is_eog(m, t))
            tt->flags[t] |= JSONC_TOKEN_EOG;
        else if (n == 0)
            tt->flags[t] |= JSONC_TOKEN_EMPTY;
        else if (utf8_whole_chars_no_specials(tt->bytes + tt->offset[t], (size_t)n))
            tt->flags[t] |= JSONC_TOKEN_STRING_SAFE;
    }
    tt->offset[n_vocab] = (uint32_t)len;
    return 0;
oom:
    snprintf(err, TS_ERR_LEN, "out of memory building the JSON token table");
    json_token_table_free(tt);
    return -1;
}

void json_token_table_free(json_token_table *tt) {
    free(tt->offset);
    free(tt->bytes);
    free(tt->flags);
    memset(tt, 0, sizeof *tt);
}

static bool jc_token_fits(const json_constraint *jc, const json_token_table *tt, ts_token t) {
    json_constraint probe = *jc;
    return json_constraint_feed(&probe, (const char *)tt->bytes + tt->offset[t], tt->offset[t + 1] - tt->offset[t]);
}

bool json_constraint_allows(const json_constraint *jc, const json_token_table *tt, ts_token t) {
    if (t < 0 || t >= tt->n_vocab)
        return false;
    uint8_t f = tt->flags[t];
    if (f & JSONC_TOKEN_EOG)
        return json_constraint_complete(jc);
    if (f & JSONC_TOKEN_EMPTY)
        return false;
    if ((f & JSONC_TOKEN_STRING_SAFE) && jc->mode == M_STRING)
        return true;
    return jc_token_fits(jc, tt, t);
}

int json_constraint_mask(const json_constraint *jc, const json_token_table *tt, float *logits) {
    /* Which first bytes the state takes: most tokens are decided by this table alone outside
     * strings, and inside a string most are STRING_SAFE; only the rest are fed in full. */
    bool first_ok[256];
    for (int b = 0; b < 256; b++) {
        json_constraint probe = *jc;
        char byte = (char)b;
        first_ok[b] = json_constraint_feed(&probe, &byte, 1);
    }
    const bool in_string = jc->mode == M_STRING;
    const bool complete = json_constraint_complete(jc);
    int allowed = 0;
    for (int t = 0; t < tt->n_vocab; t++) {
        uint8_t f = tt->flags[t];
        bool ok;
        if (f & JSONC_TOKEN_EOG)
            ok = complete;
        else if (f & JSONC_TOKEN_EMPTY)
            ok = false;
        else if (in_string && (f & JSONC_TOKEN_STRING_SAFE))
            ok = true;
        else if (!first_ok[tt->bytes[tt->offset[t]]])
            ok = false;
        else
            ok = tt->offset[t + 1] - tt->offset[t] == 1 || jc_token_fits(jc, tt, t);
        if (ok)
            allowed++;
        else
            logits[t] = -INFINITY;
    }
    return allowed;
}
