/* Vocabulary and tokenizer loaded from a GGUF's tokenizer.ggml.* keys (or, through
 * tokenizer/vocab_build.h, from a Hugging Face tokenizer.json).
 * Byte-level BPE with GPT-2 byte mapping, merges and llama.cpp's per-family pre-tokenizers. */
#ifndef TS_TOKENIZER_VOCAB_H
#define TS_TOKENIZER_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "tiefsee.h"

typedef struct ts_vocab ts_vocab;

/* Loads and validates the vocabulary (tokens, token types, merges, special ids). n_vocab_model is
 * the number of rows of the embedding matrix; token ids >= it are an error, and a vocabulary
 * shorter than it is allowed (padding rows). */
int ts_vocab_load(const gguf_file *f, int n_vocab_model, ts_vocab **out, ts_err *err);
void ts_vocab_free(ts_vocab *v);

int ts_vocab_size(const ts_vocab *v);
ts_token ts_vocab_bos(const ts_vocab *v); /* -1 if none */
ts_token ts_vocab_eos(const ts_vocab *v);
bool ts_vocab_add_bos(const ts_vocab *v);
bool ts_vocab_is_eog(const ts_vocab *v, ts_token t);

/* Same contract as ts_tokenize / ts_token_bytes in tiefsee.h. */
int ts_vocab_encode(const ts_vocab *v, const char *text, size_t len, bool add_bos, ts_token *out, int cap);
/* As ts_vocab_encode, which is this with parse_special = true. With parse_special = false only
 * USER_DEFINED tokens written in the text are split out (as llama.cpp and HF do); CONTROL and
 * UNKNOWN token texts are then tokenized as plain text. */
int ts_vocab_encode_ex(const ts_vocab *v, const char *text, size_t len, bool add_bos, bool parse_special, ts_token *out,
                       int cap);
int ts_vocab_token_bytes(const ts_vocab *v, ts_token t, char *buf, int cap);

#endif
