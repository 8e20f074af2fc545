/* Opening a vocabulary from what a user names with -m: a GGUF file (model or vocab-only), a
 * Hugging Face tokenizer.json, or a Hugging Face model folder holding tokenizer.json. Shared by
 * `tiefsee tokenize` and `tiefsee bench`. */
#ifndef TS_CLI_VOCAB_SOURCE_H
#define TS_CLI_VOCAB_SOURCE_H

#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

typedef struct vocab_source {
    ts_vocab *vocab;
    gguf_file *gguf; /* the open GGUF when the vocabulary came from one, else NULL */
} vocab_source;

/* Returns 0 or -1 with err set. */
int vocab_source_open(const char *path, vocab_source *src, ts_err *err);
void vocab_source_close(vocab_source *src);

#endif
