#include "synth/vocab_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Words whose byte-level spellings become merged tokens, most common first (merge rank follows
 * this order). Each word is added with a leading space (GPT-2 "Ġ") and without, so both "the" at
 * the start of a line and " the" inside a sentence become single tokens. Plain ASCII only: every
 * printable ASCII byte except space maps to itself under the GPT-2 byte mapping. */
static const char word_list[] =
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no will more can out up about "
    "who what some into them time only other new like could these then its than first any may after most "
    "also made over did many before must through back years where much your way well down should because "
    "each just those people how too little state good very make world still own see men work long here "
    "get both between life being under never day same another know while last might us great old year off "
    "come since against go came right used take three states himself few house use during without again "
    "place around however home small found thought went say part once general high upon school every "
    "does got united left number course war until always away something fact though water less public "
    "put think almost hand enough far took head yet government system better set told nothing night end "
    "why called didn eyes find going look asked later knew point next city give group toward young let "
    "room president side social given present several order national possible rather second face per "
    "among form important often things looked early white case john become large big need four within felt "
    "along children saw best church ever least power development light thing seemed family interest want "
    "members mind country area others done turned although open god service certain kind problem began "
    "different door thus help sense means whole matter perhaps itself times human law line above name "
    "example action company hands local show whether five history gave today either act feet across taken "
    "past quite anything seen having death week experience body word half really field am car words "
    "already themselves information tell together college shall money period held keep sure free "
    "hello model token tokens text language answer question think reason step because therefore "
    "int char void return if else for while do switch case break continue struct static const unsigned "
    "long short float double sizeof typedef enum include define ifdef endif null NULL true false "
    "def class self import from print range len str list dict none None True False lambda yield async "
    "await try except finally raise with pass elif function var let new this console log string number "
    "value values key keys data result error err index size count buffer file path name type args "
    "main test tests init update get set add remove append push pop map filter reduce sort length "
    "public private protected void static final package java python rust fn mut impl pub use mod "
    "The This That In It A An If For What How When We You They He She There And But So To Of On "
    "user assistant system content message role tool think answer quick brown fox jumps over lazy dog "
    "Hello world returns calls called using uses running runs writes reads example examples";

/* Multi-character pieces that are not words: runs of spaces and newlines (indentation, blank
 * lines) and common punctuation pairs. Written as raw bytes; converted with the byte mapping. */
static const char *const extra_pieces[] = {
    "  ", "    ", "        ", "\n\n", "\n  ", "\n    ", "\t\t", "()", "();", "{}", "[]", "==", "!=", "<=", ">=",
    "->", "=>", "::", "//", "/*", "*/", "++", "--", "&&", "||", "\"\"", "''", "...", ", ", ". ", ": ", "; ",
    "): ", ") {", " =", " ==", " +", " -", " *", " /", " (", " {", " }", " [", " \"", " '", " <", " >", "00",
    "000", "10", "12", "20", "100", "2024", "2025",
};

/* GPT-2 bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 + k in order. */
static void byte_to_codepoints(unsigned cp[256]) {
    unsigned next = 256;
    for (unsigned b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp[b] = printable ? b : next++;
    }
}

static int utf8_put(unsigned cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* ---- A small string set (open addressing) for uniqueness ------------------------------------- */

typedef struct str_set {
    const char **slots;
    size_t cap; /* power of two */
} str_set;

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int set_init(str_set *s, size_t n) {
    s->cap = 16;
    while (s->cap < 2 * n) s->cap *= 2;
    s->slots = calloc(s->cap, sizeof *s->slots);
    return s->slots ? 0 : -1;
}

/* Returns true if s was absent (and inserts it). The set borrows the pointer. */
static bool set_insert(str_set *s, const char *str) {
    size_t i = str_hash(str) & (s->cap - 1);
    while (s->slots[i]) {
        if (strcmp(s->slots[i], str) == 0) return false;
        i = (i + 1) & (s->cap - 1);
    }
    s->slots[i] = str;
    return true;
}

static bool set_contains(const str_set *s, const char *str) {
    size_t i = str_hash(str) & (s->cap - 1);
    while (s->slots[i]) {
        if (strcmp(s->slots[i], str) == 0) return true;
        i = (i + 1) & (s->cap - 1);
    }
    return false;
}

/* ---- Special tokens per family (tokenizers-and-templates.md §4, deepseek2.md §9.2) ------------- */

typedef struct special_tok {
    int offset; /* from the block base */
    const char *text;
    int type;
} special_tok;

typedef struct family_info {
    const char *pre;
    int real_base;       /* id of the block's first token in the real vocabulary */
    int real_n_vocab;    /* the real embedding row count */
    int real_block_len;  /* the real block's length (gaps filled with reserved control tokens) */
    const special_tok *block;
    int n_block;
    const special_tok *low; /* tokens at fixed small ids (V3: 0, 1, 2), offset = id */
    int n_low;
    int bos_off, eos_off, pad_off; /* offsets into the block (or low ids when *_low set) */
    bool bos_low, eos_low, pad_low;
    bool has_pad;
} family_info;

#define BOS_TXT "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"
#define EOS_TXT "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"
#define FB(x) "<\xEF\xBD\x9C" x "\xEF\xBD\x9C>" /* <｜x｜> with full-width bars */
#define SEP "\xE2\x96\x81"                      /* ▁ */

static const special_tok llm_block[] = {
    {0, BOS_TXT, SYNTH_TOKEN_CONTROL},
    {1, EOS_TXT, SYNTH_TOKEN_CONTROL},
    /* 100002.. are user-defined single characters in the real vocabulary */
    {2, "\xC3\xB8", SYNTH_TOKEN_USER_DEFINED},  {3, "\xC3\xB6", SYNTH_TOKEN_USER_DEFINED},
    {4, "\xC3\xBA", SYNTH_TOKEN_USER_DEFINED},  {5, "\xC3\xBF", SYNTH_TOKEN_USER_DEFINED},
    {6, "\xC3\xB5", SYNTH_TOKEN_USER_DEFINED},  {7, "\xC3\xB7", SYNTH_TOKEN_USER_DEFINED},
    {8, "\xC3\xBB", SYNTH_TOKEN_USER_DEFINED},  {9, "\xC3\xBD", SYNTH_TOKEN_USER_DEFINED},
    {10, "\xC3\x80", SYNTH_TOKEN_USER_DEFINED}, {11, "\xC3\xB9", SYNTH_TOKEN_USER_DEFINED},
    {12, "\xC3\x81", SYNTH_TOKEN_USER_DEFINED}, {13, "\xC3\xBE", SYNTH_TOKEN_USER_DEFINED},
    {14, "\xC3\xBC", SYNTH_TOKEN_USER_DEFINED},
};

static const special_tok coder_block[] = {
    {0, "\xC3\xB5", SYNTH_TOKEN_USER_DEFINED},  {1, "\xC3\xB7", SYNTH_TOKEN_USER_DEFINED},
    {2, "\xC3\x81", SYNTH_TOKEN_USER_DEFINED},  {3, "\xC3\xBD", SYNTH_TOKEN_USER_DEFINED},
    {4, "\xC3\x80", SYNTH_TOKEN_USER_DEFINED},  {5, "\xC3\xBF", SYNTH_TOKEN_USER_DEFINED},
    {6, "\xC3\xB8", SYNTH_TOKEN_USER_DEFINED},  {7, "\xC3\xBA", SYNTH_TOKEN_USER_DEFINED},
    {8, "\xC3\xBE", SYNTH_TOKEN_USER_DEFINED},  {9, "\xC3\xBC", SYNTH_TOKEN_USER_DEFINED},
    {10, "\xC3\xB9", SYNTH_TOKEN_USER_DEFINED}, {11, "\xC3\xB6", SYNTH_TOKEN_USER_DEFINED},
    {12, "\xC3\xBB", SYNTH_TOKEN_USER_DEFINED},
    {13, BOS_TXT, SYNTH_TOKEN_CONTROL},
    {14, EOS_TXT, SYNTH_TOKEN_CONTROL},
    {15, FB("fim" SEP "hole"), SYNTH_TOKEN_CONTROL},
    {16, FB("fim" SEP "begin"), SYNTH_TOKEN_CONTROL},
    {17, FB("fim" SEP "end"), SYNTH_TOKEN_CONTROL},
    {18, "<pad>", SYNTH_TOKEN_CONTROL},
    {19, "<|User|>", SYNTH_TOKEN_USER_DEFINED},
    {20, "<|Assistant|>", SYNTH_TOKEN_USER_DEFINED},
    {21, "<|EOT|>", SYNTH_TOKEN_CONTROL},
};

/* R1-Distill-Llama: Llama-3 special block with the DeepSeek names; the other ids of the 256-token
 * block are reserved control tokens. */
static const special_tok llama3_block[] = {
    {0, BOS_TXT, SYNTH_TOKEN_CONTROL},
    {1, EOS_TXT, SYNTH_TOKEN_CONTROL},
    {4, FB(SEP "pad" SEP), SYNTH_TOKEN_CONTROL},
    {11, FB("User"), SYNTH_TOKEN_USER_DEFINED},
    {12, FB("Assistant"), SYNTH_TOKEN_USER_DEFINED},
    {13, "<think>", SYNTH_TOKEN_USER_DEFINED},
    {14, "</think>", SYNTH_TOKEN_USER_DEFINED},
};

static const special_tok qwen2_block[] = {
    {0, EOS_TXT, SYNTH_TOKEN_CONTROL},
    {1, FB("User"), SYNTH_TOKEN_USER_DEFINED},
    {2, FB("Assistant"), SYNTH_TOKEN_USER_DEFINED},
    {3, BOS_TXT, SYNTH_TOKEN_CONTROL},
    {4, "<|EOT|>", SYNTH_TOKEN_CONTROL},
    {5, "<think>", SYNTH_TOKEN_USER_DEFINED},
    {6, "</think>", SYNTH_TOKEN_USER_DEFINED},
};

static const special_tok v3_low[] = {
    {0, BOS_TXT, SYNTH_TOKEN_CONTROL},
    {1, EOS_TXT, SYNTH_TOKEN_CONTROL},
    {2, FB(SEP "pad" SEP), SYNTH_TOKEN_CONTROL},
};

static const special_tok v3_block[] = {
    {0, "<think>", SYNTH_TOKEN_USER_DEFINED},
    {1, "</think>", SYNTH_TOKEN_USER_DEFINED},
    {2, FB("fim" SEP "hole"), SYNTH_TOKEN_CONTROL},
    {3, FB("fim" SEP "begin"), SYNTH_TOKEN_CONTROL},
    {4, FB("fim" SEP "end"), SYNTH_TOKEN_CONTROL},
    {5, FB("User"), SYNTH_TOKEN_USER_DEFINED},
    {6, FB("Assistant"), SYNTH_TOKEN_USER_DEFINED},
    {7, "<|EOT|>", SYNTH_TOKEN_CONTROL},
    {8, FB("tool" SEP "calls" SEP "begin"), SYNTH_TOKEN_USER_DEFINED},
    {9, FB("tool" SEP "calls" SEP "end"), SYNTH_TOKEN_USER_DEFINED},
    {10, FB("tool" SEP "call" SEP "begin"), SYNTH_TOKEN_USER_DEFINED},
    {11, FB("tool" SEP "call" SEP "end"), SYNTH_TOKEN_USER_DEFINED},
    {12, FB("tool" SEP "outputs" SEP "begin"), SYNTH_TOKEN_USER_DEFINED},
    {13, FB("tool" SEP "outputs" SEP "end"), SYNTH_TOKEN_USER_DEFINED},
    {14, FB("tool" SEP "output" SEP "begin"), SYNTH_TOKEN_USER_DEFINED},
    {15, FB("tool" SEP "output" SEP "end"), SYNTH_TOKEN_USER_DEFINED},
    {16, FB("tool" SEP "sep"), SYNTH_TOKEN_USER_DEFINED},
};

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static family_info family(enum synth_vocab_family f) {
    switch (f) {
    case SYNTH_VOCAB_DEEPSEEK_CODER:
        return (family_info){.pre = "deepseek-coder", .real_base = 32000, .real_n_vocab = 32256, .real_block_len = 22,
                             .block = coder_block, .n_block = N(coder_block), .bos_off = 13, .eos_off = 14,
                             .pad_off = 14, .has_pad = true};
    case SYNTH_VOCAB_LLAMA3:
        return (family_info){.pre = "llama-bpe", .real_base = 128000, .real_n_vocab = 128256, .real_block_len = 256,
                             .block = llama3_block, .n_block = N(llama3_block), .bos_off = 0, .eos_off = 1,
                             .pad_off = 4, .has_pad = true};
    case SYNTH_VOCAB_QWEN2:
        return (family_info){.pre = "qwen2", .real_base = 151643, .real_n_vocab = 151936, .real_block_len = 7,
                             .block = qwen2_block, .n_block = N(qwen2_block), .bos_off = 3, .eos_off = 0,
                             .pad_off = 0, .has_pad = true};
    case SYNTH_VOCAB_DEEPSEEK_V3:
        return (family_info){.pre = "deepseek-v3", .real_base = 128798, .real_n_vocab = 129280, .real_block_len = 17,
                             .block = v3_block, .n_block = N(v3_block), .low = v3_low, .n_low = N(v3_low),
                             .bos_off = 0, .eos_off = 1, .pad_off = 1, .bos_low = true, .eos_low = true,
                             .pad_low = true, .has_pad = true};
    case SYNTH_VOCAB_DEEPSEEK_LLM:
    default:
        return (family_info){.pre = "deepseek-llm", .real_base = 100000, .real_n_vocab = 102400, .real_block_len = 15,
                             .block = llm_block, .n_block = N(llm_block), .bos_off = 0, .eos_off = 1, .pad_off = 1,
                             .has_pad = true};
    }
}

/* ---- Building -------------------------------------------------------------------------------- */

void synth_vocab_free(synth_vocab *v) {
    if (v->tokens)
        for (int i = 0; i < v->n_tokens; i++) free(v->tokens[i]);
    if (v->merges)
        for (int i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->types);
    free(v->merges);
    memset(v, 0, sizeof *v);
}

/* Regular (non-special) tokens in id order: bytes, then merged tokens. */
typedef struct regular_list {
    char **texts;
    int n, cap;
    char **merges;
    int n_merges;
} regular_list;

static int regular_push(regular_list *r, char *text, char *merge) {
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 1024;
        char **t = realloc(r->texts, (size_t)cap * sizeof *t);
        if (!t) return -1;
        r->texts = t;
        char **mg = realloc(r->merges, (size_t)cap * sizeof *mg);
        if (!mg) return -1;
        r->merges = mg;
        r->cap = cap;
    }
    r->texts[r->n++] = text;
    if (merge) r->merges[r->n_merges++] = merge;
    return 0;
}

/* ---- BPE training on the word list ------------------------------------------------------------
 * Real vocabularies come from BPE training, which learns frequent short pairs ("t h", "Ġ t") first;
 * training on the word list with Zipf-like weights gives the same shape, and guarantees that every
 * listed word whose merges fit the budget tokenizes to one token under rank-ordered BPE. */

typedef struct train_word {
    int *sym; /* regular-token indices */
    int n;
    uint64_t weight;
} train_word;

typedef struct pair_count {
    uint64_t key; /* ((a << 32) | b) + 1; 0 marks an empty slot */
    uint64_t count;
} pair_count;

static uint64_t pair_key(int a, int b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

/* Converts raw bytes to symbols (byte-token indices); returns -1 if a byte has no token. */
static int word_symbols(const char *raw, size_t len, const int byte_tok[256], int *out) {
    for (size_t i = 0; i < len; i++) {
        int t = byte_tok[(unsigned char)raw[i]];
        if (t < 0) return -1;
        out[i] = t;
    }
    return (int)len;
}

static int train_merges(regular_list *reg, str_set *set, const int byte_tok[256], int max_tokens) {
    /* Training words: spaced and bare forms of every listed word, then the extra pieces. */
    train_word *words = NULL;
    int n_words = 0, cap_words = 0, rank = 0, rc = -1;
    pair_count *table = NULL;
    for (int pass = 0; pass < 3; pass++) {
        const char *w = word_list;
        int idx = 0;
        while (pass < 2 ? *w != 0 : idx < N(extra_pieces)) {
            char raw[64];
            size_t len = 0;
            if (pass < 2) {
                while (*w == ' ') w++;
                const char *e = w;
                while (*e && *e != ' ') e++;
                len = (size_t)(e - w);
                if (len == 0 || len + 2 > sizeof raw) {
                    w = e;
                    continue;
                }
                size_t o = pass == 0 ? 1 : 0;
                raw[0] = ' ';
                memcpy(raw + o, w, len);
                len += o;
                w = e;
                rank = idx++;
            } else {
                len = strlen(extra_pieces[idx]);
                memcpy(raw, extra_pieces[idx], len);
                rank = 40 + 4 * idx++;
            }
            if (len < 2) continue;
            if (n_words == cap_words) {
                cap_words = cap_words ? 2 * cap_words : 512;
                train_word *nw = realloc(words, (size_t)cap_words * sizeof *nw);
                if (!nw) goto out;
                words = nw;
            }
            train_word *tw = &words[n_words];
            tw->sym = malloc(len * sizeof *tw->sym);
            if (!tw->sym) goto out;
            tw->n = word_symbols(raw, len, byte_tok, tw->sym);
            if (tw->n < 0) {
                free(tw->sym);
                continue;
            }
            /* Zipf-like: the k-th word is ~1/(k+10) as frequent as a very common one; in running
             * text a word mostly follows a space, so the spaced form weighs three times more. */
            tw->weight = (uint64_t)(3000000 / (rank + 10)) * (pass == 0 ? 3 : 1);
            n_words++;
        }
    }

    size_t table_cap = 1;
    size_t max_pairs = 0;
    for (int i = 0; i < n_words; i++) max_pairs += (size_t)words[i].n;
    while (table_cap < 2 * max_pairs + 16) table_cap *= 2;
    table = malloc(table_cap * sizeof *table);
    if (!table) goto out;

    while (reg->n < max_tokens) {
        memset(table, 0, table_cap * sizeof *table);
        uint64_t best_key = 0, best_count = 0;
        bool found = false;
        for (int i = 0; i < n_words; i++) {
            const train_word *tw = &words[i];
            for (int j = 0; j + 1 < tw->n; j++) {
                const uint64_t key = pair_key(tw->sym[j], tw->sym[j + 1]) + 1; /* +1: 0 marks empty */
                size_t h = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (table_cap - 1);
                while (table[h].key && table[h].key != key) h = (h + 1) & (table_cap - 1);
                table[h].key = key;
                table[h].count += tw->weight;
                /* ties: the smaller key wins, so the result never depends on table order */
                if (table[h].count > best_count || (table[h].count == best_count && key < best_key)) {
                    best_count = table[h].count;
                    best_key = key;
                    found = true;
                }
            }
        }
        if (!found) break; /* every training word is a single token */
        const int a = (int)((best_key - 1) >> 32), b = (int)((best_key - 1) & 0xFFFFFFFFu);
        const size_t la = strlen(reg->texts[a]), lb = strlen(reg->texts[b]);
        char *tok = malloc(la + lb + 1), *merge = malloc(la + lb + 2);
        if (!tok || !merge) {
            free(tok);
            free(merge);
            goto out;
        }
        memcpy(tok, reg->texts[a], la);
        memcpy(tok + la, reg->texts[b], lb + 1);
        memcpy(merge, reg->texts[a], la);
        merge[la] = ' ';
        memcpy(merge + la + 1, reg->texts[b], lb + 1);
        if (set_contains(set, tok)) {
            /* The same text was already reached by another split (rare). Token texts must stay
             * unique, so this pair is not merged; the words holding it stop counting (weight 0),
             * which also keeps the pair from winning again. */
            free(tok);
            free(merge);
            for (int i = 0; i < n_words; i++) {
                train_word *tw = &words[i];
                for (int j = 0; j + 1 < tw->n; j++)
                    if (tw->sym[j] == a && tw->sym[j + 1] == b) tw->weight = 0;
            }
            continue;
        }
        if (regular_push(reg, tok, merge) < 0) {
            free(tok);
            free(merge);
            goto out;
        }
        set_insert(set, tok);
        const int id = reg->n - 1;
        for (int i = 0; i < n_words; i++) {
            train_word *tw = &words[i];
            int o = 0;
            for (int j = 0; j < tw->n; j++) {
                if (j + 1 < tw->n && tw->sym[j] == a && tw->sym[j + 1] == b) {
                    tw->sym[o++] = id;
                    j++;
                } else {
                    tw->sym[o++] = tw->sym[j];
                }
            }
            tw->n = o;
        }
    }
    rc = 0;
out:
    for (int i = 0; i < n_words; i++) free(words[i].sym);
    free(words);
    free(table);
    return rc;
}

int synth_vocab_build(const synth_model *m, synth_vocab *v, ts_err *err) {
    memset(v, 0, sizeof *v);
    const family_info fi = family(m->vocab);
    const int n = m->n_vocab;
    const bool full_layout = n >= fi.real_base + fi.real_block_len;
    /* Tiny vocabularies: the block goes at the end, shortened to its listed tokens. */
    const int block_len = full_layout ? fi.real_block_len : fi.block[fi.n_block - 1].offset + 1;
    const int base = full_layout ? fi.real_base : n - block_len;
    if (base < fi.n_low + 256 + 1) return ts_fail(err, "vocab size %d too small for the %s special tokens", n, fi.pre);

    /* Special/reserved slots by id. */
    int *special_idx = malloc((size_t)n * sizeof *special_idx); /* -1 regular, -2 reserved, else index into block/low */
    v->tokens = calloc((size_t)n, sizeof *v->tokens);
    v->types = calloc((size_t)n, sizeof *v->types);
    regular_list reg = {0};
    str_set set = {0};
    if (!special_idx || !v->tokens || !v->types || set_init(&set, (size_t)n + 4096) < 0) goto oom;
    v->n_tokens = n;
    for (int i = 0; i < n; i++) special_idx[i] = -1;
    for (int i = 0; i < block_len; i++) special_idx[base + i] = -2;
    for (int i = 0; i < fi.n_block; i++) special_idx[base + fi.block[i].offset] = i;
    for (int i = 0; i < fi.n_low; i++) special_idx[fi.low[i].offset] = 1000000 + i;
    for (int i = 0; i < fi.n_block; i++) set_insert(&set, fi.block[i].text);
    for (int i = 0; i < fi.n_low; i++) set_insert(&set, fi.low[i].text);

    /* Regular tokens: as many as the ids outside special slots, padding excepted. */
    int n_regular_slots = base - fi.n_low;
    unsigned cp[256];
    int byte_tok[256];
    byte_to_codepoints(cp);
    for (int b = 0; b < 256; b++) {
        char buf[5];
        int k = utf8_put(cp[b], buf);
        buf[k] = 0;
        /* DeepSeek-LLM/Coder have no byte tokens for the 13 bytes that never occur in UTF-8
         * (0xC0, 0xC1, 0xF5-0xFF); their characters are user-defined tokens with the same text. */
        byte_tok[b] = -1;
        if (set_contains(&set, buf)) continue;
        char *t = strdup(buf);
        if (!t) goto oom;
        if (regular_push(&reg, t, NULL) < 0) {
            free(t);
            goto oom;
        }
        set_insert(&set, t);
        byte_tok[b] = reg.n - 1;
    }
    if (train_merges(&reg, &set, byte_tok, n_regular_slots) < 0) goto oom;

    /* Lay out ids. */
    int next_regular = 0, reserved_no = 0;
    for (int id = 0; id < n; id++) {
        char buf[64];
        const char *text = NULL;
        int type = SYNTH_TOKEN_NORMAL;
        int s = special_idx[id];
        if (s >= 1000000) {
            text = fi.low[s - 1000000].text;
            type = fi.low[s - 1000000].type;
        } else if (s >= 0) {
            text = fi.block[s].text;
            type = fi.block[s].type;
        } else if (s == -2) {
            snprintf(buf, sizeof buf, "<|reserved_special_token_%d|>", reserved_no++);
            text = buf;
            type = SYNTH_TOKEN_CONTROL;
        } else if (next_regular < reg.n) {
            v->tokens[id] = reg.texts[next_regular];
            reg.texts[next_regular++] = NULL;
            v->types[id] = SYNTH_TOKEN_NORMAL;
            continue;
        } else {
            /* Padding rows, typed UNUSED as llama.cpp's converter types Qwen's [PAD] rows: they
             * decode to nothing, so a random model that samples them prints no "[PAD123]". */
            snprintf(buf, sizeof buf, "[PAD%d]", id);
            text = buf;
            type = SYNTH_TOKEN_UNUSED;
        }
        v->tokens[id] = strdup(text);
        if (!v->tokens[id]) goto oom;
        v->types[id] = type;
    }
    v->merges = reg.merges;
    v->n_merges = reg.n_merges;
    reg.merges = NULL;
    v->pre = fi.pre;
    v->bos = fi.bos_low ? fi.bos_off : base + fi.bos_off;
    v->eos = fi.eos_low ? fi.eos_off : base + fi.eos_off;
    v->pad = !fi.has_pad ? -1 : fi.pad_low ? fi.pad_off : base + fi.pad_off;
    v->add_bos = true;
    for (int i = next_regular; i < reg.n; i++) free(reg.texts[i]);
    free(reg.texts);
    free(special_idx);
    free(set.slots);
    return 0;

oom:
    for (int i = 0; i < reg.n; i++) free(reg.texts[i]);
    for (int i = 0; i < reg.n_merges; i++) free(reg.merges[i]);
    free(reg.texts);
    free(reg.merges);
    free(special_idx);
    free(set.slots);
    synth_vocab_free(v);
    return ts_fail(err, "out of memory building the vocabulary");
}
