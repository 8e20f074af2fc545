/* Pre-tokenizers of byte-level BPE vocabularies: the per-family regex lists that llama.cpp applies
 * (keyed by tokenizer.ggml.pre) before BPE, run with PCRE2 (UTF + UCP, JIT when available), plus
 * the input clean-up that precedes them (invalid UTF-8 -> U+FFFD, NFC for Qwen2).
 * See /work/shared/spec/tokenizers-and-templates.md §2-§3. */
#ifndef TS_TOKENIZER_PRETOK_H
#define TS_TOKENIZER_PRETOK_H

#include <stdbool.h>
#include <stddef.h>

#include "tiefsee.h"
#include "util/error.h"

typedef struct ts_pretok ts_pretok;

/* Compiles the regex list of the pre-tokenizer called name[0..name_len) (a tokenizer.ggml.pre
 * value); name == NULL selects llama.cpp's default BPE pre-split. Unknown names are an error, as in
 * llama.cpp, because a wrong split silently changes every token. */
int ts_pretok_create(const char *name, size_t name_len, ts_pretok **out, ts_err *err);
void ts_pretok_free(ts_pretok *p);

/* Turns NFC normalization of the input on or off, overriding the family's default: a Hugging Face
 * tokenizer.json says it in its normalizer, independently of the pre-tokenizer. */
void ts_pretok_set_nfc(ts_pretok *p, bool nfc);

/* LLAMA3 family: a piece that is itself a vocabulary token is emitted whole, without BPE. */
bool ts_pretok_ignore_merges(const ts_pretok *p);

/* Per-call working memory (one per encode call, so a shared vocabulary stays thread-safe). */
typedef struct ts_pretok_scratch {
    char *clean;            /* the span after U+FFFD replacement / NFC, when it differs from the input */
    size_t clean_cap;
    size_t *piece_len[2];   /* piece lengths in bytes: current and next list */
    size_t piece_cap[2];
    size_t n_pieces;
    int current;            /* which piece_len list holds the result */
    void *match_data;       /* pcre2_match_data_8 */
} ts_pretok_scratch;

void ts_pretok_scratch_free(ts_pretok_scratch *s);

/* Splits text[0..len) into pieces. On success returns 0 and sets *clean_text to the text the pieces
 * cover (text itself, or s->clean when invalid UTF-8 was replaced or NFC changed it); the piece
 * lengths are s->piece_len[s->current][0 .. s->n_pieces) and add up to the cleaned length.
 * Returns -1 only when memory runs out or PCRE2 reports a matching error (e.g. its match limit). */
int ts_pretok_split(const ts_pretok *p, const char *text, size_t len, ts_pretok_scratch *s,
                    const char **clean_text, size_t *clean_len);

#endif
