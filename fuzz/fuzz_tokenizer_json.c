/* libFuzzer target for the Hugging Face tokenizer.json loader (src/tokenizer/hf_json.c).
 * Input: tokenizer.json text, optionally followed by a NUL byte and tokenizer_config.json text
 * (raw NUL cannot occur in valid JSON, so the split is unambiguous).
 * Oracles: a refusal is one non-empty line; an accepted vocabulary encodes text (the input's
 * first bytes, special-token texts and all) into ids that are all in range and all decodable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tokenizer/vocab_build.h"

#define MAX_ENCODED_TEXT 512 /* keeps each run fast; the loader is what is under test */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 20) return 0;
    const char *json = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t json_len = nul ? (size_t)(nul - data) : size;
    const char *config = nul ? (const char *)nul + 1 : NULL;
    size_t config_len = nul ? size - json_len - 1 : 0;

    ts_err err = {""};
    ts_vocab *v = NULL;
    if (ts_vocab_load_hf_json_mem(json, json_len, config, config_len, "fuzz", &v, &err) != 0) {
        if (v) abort();
        fuzz_check_message(err.msg);
        return 0;
    }
    size_t text_len = size < MAX_ENCODED_TEXT ? size : MAX_ENCODED_TEXT;
    /* U+FFFD replacement can triple the text; every byte is at most one token; plus BOS. */
    int cap = 3 * (int)text_len + 2;
    ts_token *ids = malloc(sizeof *ids * (size_t)cap);
    char *piece = malloc(65536);
    if (!ids || !piece) abort();
    int n = ts_vocab_encode(v, (const char *)data, text_len, true, ids, cap);
    if (n < 0) abort();
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= ts_vocab_size(v)) abort();
        if (ts_vocab_token_bytes(v, ids[i], piece, 65536) < 0) abort();
    }
    free(ids);
    free(piece);
    ts_vocab_free(v);
    return 0;
}
