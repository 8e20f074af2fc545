/* Building a ts_vocab from plain arrays, shared by the two front ends that read vocabularies:
 * the GGUF loader (bpe.c, tokenizer.ggml.* keys) and the Hugging Face tokenizer.json loader
 * (hf_json.c). Each front end validates its own format; ts_vocab_build validates what they have in
 * common (sizes, token types, merges that refer to real tokens, special ids in range). */
#ifndef TS_TOKENIZER_VOCAB_BUILD_H
#define TS_TOKENIZER_VOCAB_BUILD_H

#include "tokenizer/vocab.h"

typedef struct ts_text {
    const char *ptr;
    size_t len;
} ts_text;

/* llama.cpp's token types (tokenizer.ggml.token_type). */
enum ts_token_type {
    TS_TOKEN_UNDEFINED = 0,
    TS_TOKEN_NORMAL = 1,
    TS_TOKEN_UNKNOWN = 2,
    TS_TOKEN_CONTROL = 3,
    TS_TOKEN_USER_DEFINED = 4,
    TS_TOKEN_UNUSED = 5,
    TS_TOKEN_BYTE = 6,
    TS_TOKEN_TYPE_COUNT
};

typedef struct ts_vocab_def {
    const char *origin;          /* file name, for error messages */
    int n_tokens;
    const ts_text *tokens;       /* texts in byte-mapped form (GPT-2), added tokens verbatim */
    const unsigned char *types;  /* enum ts_token_type per token; NULL = all NORMAL */
    size_t n_merges;
    const ts_text *merge_left;   /* merge r joins merge_left[r] and merge_right[r]; rank = r */
    const ts_text *merge_right;
    const char *pre;             /* pre-tokenizer family (a tokenizer.ggml.pre name) or NULL */
    size_t pre_len;
    int nfc;                     /* -1: the family's default; 0/1: NFC normalization off/on */
    ts_token bos, eos, eot, eom; /* -1 = none */
    bool add_bos;
} ts_vocab_def;

/* Copies at most cap-1 bytes of s[0..n) into out, NUL-terminated, with control bytes shown as '?',
 * so that text from a file can go into a one-line error message. Returns out. */
const char *ts_vocab_printable(const char *s, size_t n, char *out, size_t cap);

/* Validates def and builds the vocabulary; on error *out is NULL and err says why. */
int ts_vocab_build(const ts_vocab_def *def, ts_vocab **out, ts_err *err);

/* Loads a Hugging Face tokenizer.json (json_path), with tokenizer_config.json from the same folder
 * when it exists (bos/eos tokens, add_bos_token). */
int ts_vocab_load_hf_json(const char *json_path, ts_vocab **out, ts_err *err);

/* As ts_vocab_load_hf_json from memory: tokenizer.json text, optional tokenizer_config.json text
 * (config may be NULL). origin names the input in error messages. */
int ts_vocab_load_hf_json_mem(const char *json, size_t json_len, const char *config, size_t config_len,
                              const char *origin, ts_vocab **out, ts_err *err);

#endif
