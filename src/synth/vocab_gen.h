/* A byte-level BPE vocabulary for synthetic models, shaped like the family it imitates: the 256
 * GPT-2 byte tokens, merged tokens for common English and code words (so real text tokenizes into
 * multi-byte tokens), the family's special tokens at their real ids (tiny vocabularies put them at
 * the end), and [PAD<id>] padding up to the embedding's row count. Every merge "a b" has a, b and
 * ab in the vocabulary, and all token texts are distinct (llama.cpp requires both). */
#ifndef TS_SYNTH_VOCAB_GEN_H
#define TS_SYNTH_VOCAB_GEN_H

#include <stdbool.h>
#include <stdint.h>

#include "synth/synth_model.h"
#include "util/error.h"

/* GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type). */
enum { SYNTH_TOKEN_NORMAL = 1, SYNTH_TOKEN_CONTROL = 3, SYNTH_TOKEN_USER_DEFINED = 4, SYNTH_TOKEN_UNUSED = 5 };

typedef struct synth_vocab {
    int n_tokens;
    char **tokens;   /* n_tokens NUL-terminated UTF-8 strings */
    int32_t *types;  /* n_tokens */
    int n_merges;
    char **merges;   /* "left right" */
    const char *pre; /* tokenizer.ggml.pre */
    int32_t bos, eos, pad; /* pad -1 = none */
    bool add_bos;
} synth_vocab;

/* Builds the vocabulary for m (m->n_vocab tokens, family m->vocab). Returns 0 or -1 with err. */
int synth_vocab_build(const synth_model *m, synth_vocab *v, ts_err *err);
void synth_vocab_free(synth_vocab *v);

#endif
