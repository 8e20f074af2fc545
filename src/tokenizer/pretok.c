/* Pre-tokenizers (see pretok.h) as llama.cpp runs them (src/llama-vocab.cpp, src/unicode.cpp).
 *
 * How llama.cpp's evaluation is reproduced with PCRE2:
 *  - The regexes of a family are applied in sequence; regex k runs separately inside every piece
 *    that regex k-1 produced (the subject handed to PCRE2 is that piece alone, so lookaheads and
 *    `$` stop at the piece end, exactly like llama.cpp's std::regex_iterator over the piece), and
 *    both the matches and the gaps between them become pieces.
 *  - llama.cpp evaluates \p{L}, \p{N}, \p{P}, \p{S}, \p{M} by collapsing every non-ASCII code point
 *    to one byte per Unicode category (whitespace first); for ASCII it uses explicit sets that equal
 *    the Unicode categories (mainline includes `~` in \p{S}, as Unicode does). PCRE2 with UCP
 *    classifies the same way from its own Unicode tables. Its \s (UCP: Z categories plus
 *    TAB/LF/VT/FF/CR) lacks U+0085 NEL, which llama.cpp counts as whitespace, so every \s below is
 *    written with \x{85} added.
 *  - Regexes without \p run in llama.cpp on code points (std::wregex) with non-ASCII whitespace
 *    turned into VT; with UCP, our \s (plus NEL) is that same whitespace set.
 *  - ECMAScript `$` (no multiline) matches only at the end of the subject: PCRE2_DOLLAR_ENDONLY.
 *  - None of these regexes can match the empty string; PCRE2_NOTEMPTY makes sure of it.
 *
 * Invalid UTF-8: llama.cpp (unicode_cpts_from_utf8) turns every byte that does not start a
 * decodable sequence into U+FFFD and the pieces are re-encoded from code points, so the replacement
 * character's bytes EF BF BD are what gets tokenized. We do the same. Sequences llama.cpp decodes
 * although they are not well-formed UTF-8 (overlong forms, surrogates, > U+10FFFF) also become one
 * U+FFFD each here (llama.cpp would re-encode the decoded value; PCRE2 cannot take such input).
 * Valid UTF-8 passes through unchanged, so its bytes round-trip through encode/decode. */
#include "tokenizer/pretok.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "util/error.h"

#define MAX_REGEXES 6

struct ts_pretok {
    pcre2_code *regex[MAX_REGEXES];
    int n_regex;
    bool ignore_merges;
    bool nfc; /* HF's Qwen2 tokenizer NFC-normalizes its input */
};

/* \s as llama.cpp counts whitespace (see the file comment). */
#define WS "\\s\\x{85}"

/* llama-bpe / llama3 (R1-Distill-Llama). */
static const char *const llama3_regexes[] = {
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+",
    NULL};

/* qwen2 / deepseek-r1-qwen: as llama3 but one digit per piece. */
static const char *const qwen2_regexes[] = {
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+",
    NULL};

/* deepseek-v3 (V3, R1, V3.1, V3.2) and joyai-llm (V4). */
static const char *const deepseek_v3_regexes[] = {
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\\r\\n]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+",
    NULL};

/* deepseek-llm: the letter class is the explicit list of cased letters llama.cpp embeds. */
static const char *const deepseek_llm_regexes[] = {
    "[\\r\\n]",
    "[" WS "]?[A-Za-z"
    "\\x{00B5}\\x{00C0}-\\x{00D6}\\x{00D8}-\\x{00F6}\\x{00F8}-\\x{01BA}\\x{01BC}-\\x{01BF}\\x{01C4}-"
    "\\x{0293}\\x{0295}-\\x{02AF}\\x{0370}-\\x{0373}\\x{0376}\\x{0377}\\x{037B}-\\x{037D}\\x{037F}"
    "\\x{0386}\\x{0388}-\\x{038A}\\x{038C}\\x{038E}-\\x{03A1}\\x{03A3}-\\x{03F5}\\x{03F7}-\\x{0481}"
    "\\x{048A}-\\x{052F}\\x{0531}-\\x{0556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}"
    "\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}"
    "\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}"
    "\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}"
    "\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}"
    "\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-"
    "\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-"
    "\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"
    "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}"
    "\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-"
    "\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"
    "]+",
    "[" WS "]?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "[" WS "]+$",
    "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}+",
    NULL};

static const char *const deepseek_coder_regexes[] = {
    "[\\r\\n]",
    "[" WS "]?\\p{L}+",
    "[" WS "]?\\p{P}+",
    "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}",
    NULL};

/* gpt2 / gpt-2 (and mpt, olmo, jais in llama.cpp). */
static const char *const gpt2_regexes[] = {
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])",
    NULL};

/* llama.cpp's default BPE pre-split (no or "default" tokenizer.ggml.pre). */
static const char *const default_regexes[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])",
    "\\p{N}+",
    "[0-9][0-9][0-9]",
    NULL};

typedef struct pretok_family {
    const char *name;
    const char *const *regexes;
    bool ignore_merges, nfc;
} pretok_family;

static const pretok_family families[] = {
    {"default", default_regexes, false, false},
    {"gpt2", gpt2_regexes, false, false},
    {"gpt-2", gpt2_regexes, false, false},
    {"llama3", llama3_regexes, true, false},
    {"llama-v3", llama3_regexes, true, false},
    {"llama-bpe", llama3_regexes, true, false},
    {"qwen2", qwen2_regexes, false, true},
    {"deepseek-r1-qwen", qwen2_regexes, false, true},
    {"deepseek-llm", deepseek_llm_regexes, false, false},
    {"deepseek-coder", deepseek_coder_regexes, false, false},
    {"deepseek-v3", deepseek_v3_regexes, false, false},
    {"joyai-llm", deepseek_v3_regexes, false, false},
};

void ts_pretok_free(ts_pretok *p) {
    if (!p)
        return;
    for (int i = 0; i < p->n_regex; i++)
        pcre2_code_free(p->regex[i]);
    free(p);
}

int ts_pretok_create(const char *name, size_t name_len, ts_pretok **out, ts_err *err) {
    *out = NULL;
    if (!name) {
        name = "default";
        name_len = strlen(name);
    }
    const pretok_family *fam = NULL;
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (strlen(families[i].name) == name_len && memcmp(families[i].name, name, name_len) == 0)
            fam = &families[i];
    if (!fam)
        return ts_fail(err, "pre-tokenizer \"%.*s\" is not supported (known: default, gpt2, llama-bpe, qwen2, "
                            "deepseek-r1-qwen, deepseek-llm, deepseek-coder, deepseek-v3, joyai-llm)",
                       (int)(name_len > 64 ? 64 : name_len), name);
    ts_pretok *p = calloc(1, sizeof *p);
    if (!p)
        return ts_fail(err, "out of memory creating the pre-tokenizer");
    p->ignore_merges = fam->ignore_merges;
    p->nfc = fam->nfc;
    for (int i = 0; fam->regexes[i]; i++) {
        int code;
        PCRE2_SIZE at;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)fam->regexes[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &code, &at, NULL);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof msg);
            ts_pretok_free(p);
            return ts_fail(err, "pre-tokenizer %s: regex %d does not compile at %zu: %s", fam->name, i, (size_t)at,
                           (const char *)msg);
        }
        /* JIT is an optimisation only: without it (unsupported CPU, no executable memory) the
         * interpreter gives the same matches. */
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        p->regex[p->n_regex++] = re;
    }
    *out = p;
    return 0;
}

bool ts_pretok_ignore_merges(const ts_pretok *p) { return p->ignore_merges; }
void ts_pretok_set_nfc(ts_pretok *p, bool nfc) { p->nfc = nfc; }

void ts_pretok_scratch_free(ts_pretok_scratch *s) {
    free(s->clean);
    free(s->piece_len[0]);
    free(s->piece_len[1]);
    pcre2_match_data_free(s->match_data);
    memset(s, 0, sizeof *s);
}

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 if there is none. */
static size_t valid_utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0)
        len = 2, cp = c & 0x1Fu, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        len = 3, cp = c & 0x0Fu, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        len = 4, cp = c & 0x07u, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* How many bytes llama.cpp's decoder consumes for the (not well-formed) sequence at s: the full
 * length announced by the lead byte when the continuation bytes are there, else 1. */
static size_t llama_consumed_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    if ((c & 0xC0) != 0xC0 || len > n)
        return 1;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 1;
    return len;
}

static bool reserve(void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return true;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need) {
        if (cap2 > SIZE_MAX / 2 / elem)
            return false;
        cap2 *= 2;
    }
    void *p = realloc(*buf, cap2 * elem);
    if (!p)
        return false;
    *buf = p;
    *cap = cap2;
    return true;
}

/* Replaces what is not well-formed UTF-8 by U+FFFD into s->clean. Returns 1 if it did, 0 if the
 * text is valid as it is, -1 when out of memory. */
static int replace_invalid_utf8(const unsigned char *text, size_t len, ts_pretok_scratch *s, size_t *out_len) {
    size_t i = 0;
    while (i < len) {
        size_t l = valid_utf8_len(text + i, len - i);
        if (!l)
            break;
        i += l;
    }
    if (i == len)
        return 0;
    /* Every invalid byte grows to at most 3 bytes. */
    if (len > SIZE_MAX / 3 || !reserve((void **)&s->clean, &s->clean_cap, 3 * len, 1))
        return -1;
    memcpy(s->clean, text, i);
    size_t o = i;
    while (i < len) {
        size_t l = valid_utf8_len(text + i, len - i);
        if (l) {
            memcpy(s->clean + o, text + i, l);
            o += l;
            i += l;
        } else {
            memcpy(s->clean + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += llama_consumed_len(text + i, len - i);
        }
    }
    *out_len = o;
    return 1;
}

/* NFC into s->clean (in place when the text already lives there). Pure ASCII is always NFC. */
static int normalize_nfc(const char *text, size_t len, ts_pretok_scratch *s, const char **out, size_t *out_len) {
    size_t i = 0;
    while (i < len && (unsigned char)text[i] < 0x80)
        i++;
    if (i == len || len > (size_t)PTRDIFF_MAX)
        return 0;
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &nfc,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (n < 0) /* cannot happen for well-formed UTF-8 except out of memory */
        return -1;
    if ((size_t)n == len && memcmp(nfc, text, len) == 0) {
        free(nfc);
        return 0;
    }
    if (!reserve((void **)&s->clean, &s->clean_cap, (size_t)n ? (size_t)n : 1, 1)) {
        free(nfc);
        return -1;
    }
    memcpy(s->clean, nfc, (size_t)n);
    free(nfc);
    *out = s->clean;
    *out_len = (size_t)n;
    return 0;
}

static bool push_piece(ts_pretok_scratch *s, int list, size_t *n, size_t len) {
    if (!reserve((void **)&s->piece_len[list], &s->piece_cap[list], *n + 1, sizeof(size_t)))
        return false;
    s->piece_len[list][(*n)++] = len;
    return true;
}

int ts_pretok_split(const ts_pretok *p, const char *text, size_t len, ts_pretok_scratch *s,
                    const char **clean_text, size_t *clean_len) {
    *clean_text = text;
    *clean_len = len;
    int rc = replace_invalid_utf8((const unsigned char *)text, len, s, clean_len);
    if (rc < 0)
        return -1;
    if (rc > 0)
        *clean_text = s->clean;
    if (p->nfc && normalize_nfc(*clean_text, *clean_len, s, clean_text, clean_len) < 0)
        return -1;
    text = *clean_text;
    len = *clean_len;

    if (!s->match_data && !(s->match_data = pcre2_match_data_create(1, NULL)))
        return -1;
    pcre2_match_data *md = s->match_data;
    s->current = 0;
    s->n_pieces = 0;
    if (len == 0)
        return 0;
    if (!push_piece(s, 0, &s->n_pieces, len))
        return -1;

    for (int r = 0; r < p->n_regex; r++) {
        int from = s->current, to = 1 - s->current;
        size_t n_to = 0, start = 0;
        for (size_t k = 0; k < s->n_pieces; k++) {
            size_t piece = s->piece_len[from][k];
            PCRE2_SPTR subject = (PCRE2_SPTR)text + start;
            size_t done = 0, at = 0;
            while (at < piece) {
                int m = pcre2_match(p->regex[r], subject, piece, at, PCRE2_NO_UTF_CHECK | PCRE2_NOTEMPTY, md, NULL);
                if (m == PCRE2_ERROR_NOMATCH)
                    break;
                if (m < 0)
                    return -1;
                const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                if (ov[0] > done && !push_piece(s, to, &n_to, ov[0] - done))
                    return -1;
                if (!push_piece(s, to, &n_to, ov[1] - ov[0]))
                    return -1;
                done = at = ov[1];
            }
            if (done < piece && !push_piece(s, to, &n_to, piece - done))
                return -1;
            start += piece;
        }
        s->current = to;
        s->n_pieces = n_to;
    }
    return 0;
}
