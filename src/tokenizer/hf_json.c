/* Hugging Face tokenizer.json (+ tokenizer_config.json) -> ts_vocab.
 *
 * Only byte-level BPE is accepted (model.type "BPE" with a ByteLevel pre-tokenizer, no byte
 * fallback, no subword prefixes), the tokenizers DeepSeek's models ship. The pre_tokenizer is
 * recognised as one of the families pretok.c runs (their regexes are the ones these files carry,
 * so both agree), and anything else is refused: an approximate split would silently change every
 * token. Ids may leave holes (DeepSeek-V3 numbers its added tokens after the vocabulary); holes
 * become empty UNUSED tokens that no text can produce. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/vocab_build.h"
#include "util/error.h"

/* Ids at or above this are refused: no real vocabulary comes near. */
#define MAX_TOKEN_ID (1 << 24)
/* Ids may leave holes, but at most this many plus one per entry: bounds the id-indexed tables a
 * small hostile file could make us build. */
#define MAX_HOLES 1024

typedef struct hf_loader {
    const char *origin;
    ts_err *err;
    int id_limit; /* ids must be below this (MAX_TOKEN_ID or fewer, from the entry count) */
    int n_tokens;
    int cap_tokens; /* allocated entries of tokens/types */
    ts_text *tokens;
    unsigned char *types;
    ts_text *merge_sides; /* left sides, then right sides */
    size_t n_merges;
} hf_loader;

static int fail_type(hf_loader *L, const char *what, const char *expected) {
    return ts_fail(L->err, "%s: %s must be %s", L->origin, what, expected);
}

static const char *const DEEPSEEK_V3_SPLITS[] = {
    "\\p{N}{1,3}",
    "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+", /* [一-龥぀-ゟ゠-ヿ]+ */
    ("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*"
     "|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
};
static const char LLAMA3_SPLIT[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                                   "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_SPLIT[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                                  "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

#define MAX_STEPS 8

typedef struct pretok_steps {
    int n_split;
    const char *split[MAX_STEPS]; /* Split regexes in order */
    int digits;                   /* -1 none, 0 Digits, 1 Digits(individual_digits) */
    int byte_level;               /* -1 none, 0 ByteLevel without its regex, 1 with it */
} pretok_steps;

static int read_pretok_step(hf_loader *L, const json_t *step, pretok_steps *st) {
    if (!json_is_object(step))
        return fail_type(L, "pre_tokenizer", "an object");
    const char *type = json_string_value(json_object_get(step, "type"));
    if (!type)
        return fail_type(L, "pre_tokenizer.type", "a string");
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(step, "pretokenizers");
        if (!json_is_array(list))
            return fail_type(L, "pre_tokenizer.pretokenizers", "an array");
        for (size_t i = 0; i < json_array_size(list); i++)
            if (read_pretok_step(L, json_array_get(list, i), st))
                return -1;
        return 0;
    }
    if (st->byte_level >= 0)
        return ts_fail(L->err, "%s: pre_tokenizer: ByteLevel must be the last step", L->origin);
    if (strcmp(type, "Split") == 0) {
        const char *regex = json_string_value(json_object_get(json_object_get(step, "pattern"), "Regex"));
        const char *behavior = json_string_value(json_object_get(step, "behavior"));
        if (!regex)
            return fail_type(L, "pre_tokenizer Split.pattern.Regex", "a string");
        if (!behavior || strcmp(behavior, "Isolated") != 0 || json_is_true(json_object_get(step, "invert")))
            return ts_fail(L->err, "%s: pre_tokenizer: only Split with behavior Isolated, not inverted, is supported",
                           L->origin);
        if (st->n_split == MAX_STEPS || st->digits >= 0)
            return ts_fail(L->err, "%s: pre_tokenizer is not a supported sequence", L->origin);
        st->split[st->n_split++] = regex;
        return 0;
    }
    if (strcmp(type, "Digits") == 0) {
        if (st->digits >= 0)
            return ts_fail(L->err, "%s: pre_tokenizer has two Digits steps", L->origin);
        st->digits = json_is_true(json_object_get(step, "individual_digits"));
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        if (json_is_true(json_object_get(step, "add_prefix_space")))
            return ts_fail(L->err, "%s: pre_tokenizer: ByteLevel add_prefix_space is not supported", L->origin);
        const json_t *use_regex = json_object_get(step, "use_regex");
        st->byte_level = use_regex ? json_is_true(use_regex) : 1; /* HF's default is true */
        return 0;
    }
    char q[41];
    return ts_fail(L->err, "%s: pre_tokenizer type \"%s\" is not supported", L->origin,
                   ts_vocab_printable(type, strlen(type), q, sizeof q));
}

/* Names the pretok.c family whose regexes are this pre_tokenizer's. */
static int recognise_pretok(hf_loader *L, const json_t *pre, const char **family) {
    pretok_steps st = {.digits = -1, .byte_level = -1};
    if (!pre || json_is_null(pre))
        return ts_fail(L->err, "%s: pre_tokenizer is missing (a byte-level BPE needs one)", L->origin);
    if (read_pretok_step(L, pre, &st))
        return -1;
    if (st.byte_level < 0)
        return ts_fail(L->err, "%s: pre_tokenizer has no ByteLevel step (only byte-level BPE is supported)", L->origin);
    const char *const *s = (const char *const *)st.split;
    if (st.byte_level == 1) {
        if (st.n_split == 0 && st.digits < 0) {
            *family = "gpt2";
            return 0;
        }
    } else if (st.n_split == 3 && st.digits < 0 && !strcmp(s[0], DEEPSEEK_V3_SPLITS[0]) &&
               !strcmp(s[1], DEEPSEEK_V3_SPLITS[1]) && !strcmp(s[2], DEEPSEEK_V3_SPLITS[2])) {
        *family = "deepseek-v3";
        return 0;
    } else if (st.n_split == 1 && st.digits < 0 && !strcmp(s[0], LLAMA3_SPLIT)) {
        *family = "llama-bpe";
        return 0;
    } else if (st.n_split == 1 && st.digits < 0 && !strcmp(s[0], QWEN2_SPLIT)) {
        *family = "qwen2";
        return 0;
    } else if (st.n_split == 4 && st.digits == 1 && !strcmp(s[0], "[\r\n]") && !strcmp(s[1], "\\s?\\p{L}+") &&
               !strcmp(s[2], "\\s?\\p{P}+")) {
        /* DeepSeek-Coder: newline, letters, punctuation, CJK/Hangul runs, single digits. */
        *family = "deepseek-coder";
        return 0;
    } else if (st.n_split == 5 && st.digits == 0 && !strcmp(s[0], "[\r\n]") && !strncmp(s[1], "\\s?[A-Za-z", 10) &&
               !strcmp(s[3], "\\s+$")) {
        /* DeepSeek-LLM: as Coder but with an explicit cased-letter list and digit runs. */
        *family = "deepseek-llm";
        return 0;
    }
    return ts_fail(L->err, "%s: pre_tokenizer (%d Split regexes%s) is not one of the supported families "
                           "(deepseek-v3, deepseek-llm, deepseek-coder, qwen2, llama-3, gpt2)",
                   L->origin, st.n_split, st.digits >= 0 ? " + Digits" : "");
}

/* normalizer: none, an empty Sequence, NFC, or a Sequence holding only NFC. */
static int read_normalizer(hf_loader *L, const json_t *norm, int *nfc) {
    *nfc = 0;
    if (!norm || json_is_null(norm))
        return 0;
    const char *type = json_string_value(json_object_get(norm, "type"));
    if (!json_is_object(norm) || !type)
        return fail_type(L, "normalizer", "null or an object with a \"type\"");
    if (strcmp(type, "NFC") == 0) {
        *nfc = 1;
        return 0;
    }
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(norm, "normalizers");
        if (!json_is_array(list))
            return fail_type(L, "normalizer.normalizers", "an array");
        for (size_t i = 0; i < json_array_size(list); i++) {
            int inner;
            if (read_normalizer(L, json_array_get(list, i), &inner))
                return -1;
            *nfc |= inner;
        }
        return 0;
    }
    char q[41];
    return ts_fail(L->err, "%s: normalizer \"%s\" is not supported (only NFC)", L->origin,
                   ts_vocab_printable(type, strlen(type), q, sizeof q));
}

static int grow_tokens(hf_loader *L, int id) {
    if (id < L->n_tokens)
        return 0;
    if (id >= L->cap_tokens) {
        /* Geometric growth: ids arrive one by one, and growing by one entry each time is quadratic
         * wherever realloc cannot extend in place (it made loading a 128k vocab take minutes under
         * ASan). id < id_limit, so the doubled capacity still fits an int. */
        size_t cap = (size_t)L->cap_tokens * 2;
        if (cap < (size_t)id + 1)
            cap = (size_t)id + 1;
        if (cap < 1024)
            cap = 1024;
        ts_text *t = realloc(L->tokens, cap * sizeof *t);
        if (t)
            L->tokens = t;
        unsigned char *ty = realloc(L->types, cap);
        if (ty)
            L->types = ty;
        if (!t || !ty)
            return ts_fail(L->err, "out of memory loading %s", L->origin);
        L->cap_tokens = (int)(cap > INT32_MAX ? INT32_MAX : cap);
    }
    for (int i = L->n_tokens; i <= id; i++) {
        L->tokens[i] = (ts_text){"", 0};
        L->types[i] = TS_TOKEN_UNUSED; /* a hole until some entry claims it */
    }
    L->n_tokens = id + 1;
    return 0;
}

static int read_id(hf_loader *L, const json_t *value, const char *what, int *id) {
    if (!json_is_integer(value))
        return ts_fail(L->err, "%s: %s: the id must be an integer", L->origin, what);
    json_int_t v = json_integer_value(value);
    if (v < 0 || v >= L->id_limit)
        return ts_fail(L->err, "%s: %s: id %lld is out of range [0, %d)", L->origin, what, (long long)v, L->id_limit);
    *id = (int)v;
    return grow_tokens(L, *id);
}

static int read_vocab(hf_loader *L, const json_t *vocab) {
    if (!json_is_object(vocab))
        return fail_type(L, "model.vocab", "an object (token -> id)");
    const char *key;
    size_t key_len;
    json_t *value;
    json_object_keylen_foreach((json_t *)vocab, key, key_len, value) {
        int id;
        if (read_id(L, value, "model.vocab", &id))
            return -1;
        if (L->types[id] != TS_TOKEN_UNUSED)
            return ts_fail(L->err, "%s: model.vocab: id %d is given to two tokens", L->origin, id);
        L->tokens[id] = (ts_text){key, key_len};
        L->types[id] = TS_TOKEN_NORMAL;
    }
    return 0;
}

static int read_added_tokens(hf_loader *L, const json_t *added) {
    if (!added || json_is_null(added))
        return 0;
    if (!json_is_array(added))
        return fail_type(L, "added_tokens", "an array");
    unsigned char *seen = calloc((size_t)L->n_tokens + 1, 1); /* ids already claimed by an added token */
    int rc = 0;
    size_t seen_n = (size_t)L->n_tokens;
    for (size_t i = 0; i < json_array_size(added) && rc == 0; i++) {
        const json_t *tok = json_array_get(added, i);
        const json_t *content = json_object_get(tok, "content");
        const json_t *special = json_object_get(tok, "special");
        int id;
        if (!seen) {
            rc = ts_fail(L->err, "out of memory loading %s", L->origin);
        } else if (!json_is_object(tok) || !json_is_string(content) || json_string_length(content) == 0) {
            rc = ts_fail(L->err, "%s: added_tokens[%zu] must be an object with a non-empty \"content\"", L->origin, i);
        } else if (special && !json_is_boolean(special)) {
            rc = ts_fail(L->err, "%s: added_tokens[%zu].special must be true or false", L->origin, i);
        } else if (json_is_true(json_object_get(tok, "lstrip")) || json_is_true(json_object_get(tok, "rstrip")) ||
                   json_is_true(json_object_get(tok, "single_word"))) {
            rc = ts_fail(L->err, "%s: added_tokens[%zu]: lstrip, rstrip and single_word are not supported", L->origin, i);
        } else if (read_id(L, json_object_get(tok, "id"), "added_tokens", &id) == 0) {
            if ((size_t)id >= seen_n) {
                unsigned char *p = realloc(seen, (size_t)L->n_tokens);
                if (!p) {
                    rc = ts_fail(L->err, "out of memory loading %s", L->origin);
                    break;
                }
                seen = p;
                memset(seen + seen_n, 0, (size_t)L->n_tokens - seen_n);
                seen_n = (size_t)L->n_tokens;
            }
            if (seen[id]) {
                rc = ts_fail(L->err, "%s: added_tokens: id %d appears twice", L->origin, id);
            } else {
                /* An added token may also be in model.vocab under the same id; its own content and
                 * kind win, as in HF (it is matched in the text before the model runs). */
                seen[id] = 1;
                L->tokens[id] = (ts_text){json_string_value(content), json_string_length(content)};
                L->types[id] = json_is_true(special) ? TS_TOKEN_CONTROL : TS_TOKEN_USER_DEFINED;
            }
        } else {
            rc = -1;
        }
    }
    free(seen);
    return rc;
}

/* "LEFT RIGHT" (split at the first space after position 0, as the GGUF form) or ["LEFT", "RIGHT"]. */
static int read_merges(hf_loader *L, const json_t *merges) {
    if (!json_is_array(merges))
        return fail_type(L, "model.merges", "an array");
    L->n_merges = json_array_size(merges);
    L->merge_sides = malloc((L->n_merges ? L->n_merges : 1) * 2 * sizeof *L->merge_sides);
    if (!L->merge_sides)
        return ts_fail(L->err, "out of memory loading %s", L->origin);
    ts_text *left = L->merge_sides, *right = L->merge_sides + L->n_merges;
    for (size_t r = 0; r < L->n_merges; r++) {
        const json_t *m = json_array_get(merges, r);
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            size_t n = json_string_length(m);
            const char *space = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
            if (!space)
                return ts_fail(L->err, "%s: model.merges[%zu] is not \"LEFT RIGHT\"", L->origin, r);
            left[r] = (ts_text){s, (size_t)(space - s)};
            right[r] = (ts_text){space + 1, n - left[r].len - 1};
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            left[r] = (ts_text){json_string_value(json_array_get(m, 0)), json_string_length(json_array_get(m, 0))};
            right[r] = (ts_text){json_string_value(json_array_get(m, 1)), json_string_length(json_array_get(m, 1))};
        } else {
            return ts_fail(L->err, "%s: model.merges[%zu] must be \"LEFT RIGHT\" or [\"LEFT\", \"RIGHT\"]", L->origin, r);
        }
    }
    return 0;
}

/* The id of a token named in tokenizer_config.json: a string, or {"content": ...}, or null. */
static int config_token_id(hf_loader *L, const json_t *config, const char *key, ts_token *id) {
    *id = -1;
    const json_t *value = json_object_get(config, key);
    if (!value || json_is_null(value))
        return 0;
    if (json_is_object(value))
        value = json_object_get(value, "content");
    if (!json_is_string(value))
        return ts_fail(L->err, "%s: tokenizer_config.json: %s must be a string or {\"content\": ...}", L->origin, key);
    const char *s = json_string_value(value);
    size_t n = json_string_length(value);
    /* Prefer added (special) tokens: they are what the config names. */
    for (int pass = 0; pass < 2; pass++)
        for (int t = 0; t < L->n_tokens; t++)
            if ((pass == 1 || L->types[t] == TS_TOKEN_CONTROL || L->types[t] == TS_TOKEN_USER_DEFINED) &&
                L->tokens[t].len == n && memcmp(L->tokens[t].ptr, s, n) == 0) {
                *id = t;
                return 0;
            }
    char q[41];
    return ts_fail(L->err, "%s: tokenizer_config.json: %s \"%s\" is not in the vocabulary", L->origin, key,
                   ts_vocab_printable(s, n, q, sizeof q));
}

static json_t *parse(hf_loader *L, const char *text, size_t len, const char *what) {
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
    if (!root) {
        char q[JSON_ERROR_TEXT_LENGTH];
        ts_fail(L->err, "%s: %s: bad JSON at line %d column %d: %s", L->origin, what, jerr.line, jerr.column,
                ts_vocab_printable(jerr.text, strlen(jerr.text), q, sizeof q));
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        ts_fail(L->err, "%s: %s: the top level must be an object", L->origin, what);
        return NULL;
    }
    return root;
}

int ts_vocab_load_hf_json_mem(const char *json, size_t json_len, const char *config, size_t config_len,
                              const char *origin, ts_vocab **out, ts_err *err) {
    *out = NULL;
    hf_loader L = {.origin = origin, .err = err};
    json_t *root = parse(&L, json, json_len, "tokenizer.json");
    json_t *cfg = NULL;
    int rc = -1;
    if (!root || (config && !(cfg = parse(&L, config, config_len, "tokenizer_config.json"))))
        goto done;
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) {
        fail_type(&L, "model", "an object");
        goto done;
    }
    const char *type = json_string_value(json_object_get(model, "type"));
    if (type && strcmp(type, "BPE") != 0) {
        char q[41];
        ts_fail(err, "%s: model type \"%s\" is not supported (only byte-level BPE is)", origin,
                ts_vocab_printable(type, strlen(type), q, sizeof q));
        goto done;
    }
    const json_t *prefix = json_object_get(model, "continuing_subword_prefix");
    const json_t *suffix = json_object_get(model, "end_of_word_suffix");
    if (json_is_true(json_object_get(model, "byte_fallback")) || (json_is_string(prefix) && json_string_length(prefix)) ||
        (json_is_string(suffix) && json_string_length(suffix))) {
        ts_fail(err, "%s: BPE byte_fallback and subword prefixes/suffixes are not supported", origin);
        goto done;
    }
    const char *family = NULL;
    int nfc = 0;
    size_t n_entries = json_object_size(json_object_get(model, "vocab")) + json_array_size(json_object_get(root, "added_tokens"));
    L.id_limit = n_entries < (MAX_TOKEN_ID - MAX_HOLES) / 2 ? (int)(2 * n_entries + MAX_HOLES) : MAX_TOKEN_ID;
    if (read_vocab(&L, json_object_get(model, "vocab")) || read_added_tokens(&L, json_object_get(root, "added_tokens")) ||
        read_merges(&L, json_object_get(model, "merges")) ||
        recognise_pretok(&L, json_object_get(root, "pre_tokenizer"), &family) ||
        read_normalizer(&L, json_object_get(root, "normalizer"), &nfc))
        goto done;
    if (L.n_tokens == 0) {
        ts_fail(err, "%s: the vocabulary is empty", origin);
        goto done;
    }
    ts_vocab_def def = {.origin = origin, .n_tokens = L.n_tokens, .tokens = L.tokens, .types = L.types,
                        .n_merges = L.n_merges, .merge_left = L.merge_sides,
                        .merge_right = L.merge_sides + L.n_merges, .pre = family, .pre_len = strlen(family),
                        .nfc = nfc, .bos = -1, .eos = -1, .eot = -1, .eom = -1};
    if (cfg) {
        const json_t *add_bos = json_object_get(cfg, "add_bos_token");
        if (add_bos && !json_is_boolean(add_bos)) {
            fail_type(&L, "tokenizer_config.json: add_bos_token", "true or false");
            goto done;
        }
        def.add_bos = json_is_true(add_bos);
        if (config_token_id(&L, cfg, "bos_token", &def.bos) || config_token_id(&L, cfg, "eos_token", &def.eos))
            goto done;
    }
    rc = ts_vocab_build(&def, out, err);
done:
    free(L.tokens);
    free(L.types);
    free(L.merge_sides);
    json_decref(root);
    json_decref(cfg);
    return rc;
}

static char *read_file(const char *path, size_t *len, ts_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        ts_fail(err, "%s: cannot open", path);
        return NULL;
    }
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *p = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
        if (!p) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = p;
        cap *= 2;
    }
    if (!buf || ferror(f)) {
        free(buf);
        buf = NULL;
        ts_fail(err, "%s: cannot read", path);
    }
    fclose(f);
    *len = n;
    return buf;
}

int ts_vocab_load_hf_json(const char *json_path, ts_vocab **out, ts_err *err) {
    *out = NULL;
    size_t json_len = 0, config_len = 0;
    char *json = read_file(json_path, &json_len, err);
    if (!json)
        return -1;
    /* tokenizer_config.json beside it, when there is one. */
    size_t dir_len = strrchr(json_path, '/') ? (size_t)(strrchr(json_path, '/') - json_path) + 1 : 0;
    char *config_path = malloc(dir_len + sizeof "tokenizer_config.json");
    char *config = NULL;
    if (!config_path) {
        free(json);
        return ts_fail(err, "out of memory");
    }
    memcpy(config_path, json_path, dir_len);
    strcpy(config_path + dir_len, "tokenizer_config.json");
    FILE *probe = fopen(config_path, "rb");
    if (probe) {
        fclose(probe);
        config = read_file(config_path, &config_len, err);
        if (!config) {
            free(json), free(config_path);
            return -1;
        }
    }
    int rc = ts_vocab_load_hf_json_mem(json, json_len, config, config_len, json_path, out, err);
    free(json), free(config), free(config_path);
    return rc;
}
