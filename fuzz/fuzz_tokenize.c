/* libFuzzer target for the tokenizer on arbitrary user text (any bytes, invalid UTF-8 included).
 * Oracle: every id is in range. Byte-level BPE itself is lossless, but like llama.cpp the tokenizer
 * first replaces invalid UTF-8 by U+FFFD, and the Qwen2 pre-tokenizer NFC-normalizes (as HF does),
 * so: input that is valid UTF-8 and already NFC must decode back to exactly its bytes; any other
 * input must decode to text whose tokens are the same ids again (the clean-up is idempotent).
 * The vocabulary is a synthetic R1-Distill-Qwen-style model's (made once, on first input); the
 * DeepSeek-LLM-style vocabularies are not used here because, as in the real one, some user-defined
 * tokens ("ÿ") share their text with byte tokens and decode to UTF-8, not to the byte. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <utf8proc.h>

#include "tiefsee.h"

/* True if data is valid UTF-8 and NFC (utf8proc refuses invalid UTF-8 and surrogates). */
static int is_nfc_utf8(const uint8_t *data, size_t size) {
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t n = utf8proc_map(data, (utf8proc_ssize_t)size, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    int same = n >= 0 && (size_t)n == size && memcmp(nfc, data, size) == 0;
    free(nfc);
    return same;
}

/* The harness's one piece of state: the model, built once per fuzzing process (libFuzzer calls
 * the target many times in one process). */
static ts_model *fuzz_vocab_model(void) {
    static ts_model *model;
    if (model) return model;
    char dir[] = "/tmp/tiefsee-fuzz-XXXXXX";
    if (!mkdtemp(dir)) abort();
    char path[64];
    snprintf(path, sizeof path, "%s/vocab.gguf", dir);
    ts_synth_params p = {.preset = "tiny-qwen2", .type = "q8_0", .seed = 1, .out_path = path, .n_threads = 1};
    char err[TS_ERR_LEN];
    if (ts_synth(&p, err) != 0 || ts_model_load(path, &model, err) != 0) {
        fprintf(stderr, "fuzz_tokenize: %s\n", err);
        abort();
    }
    unlink(path);
    rmdir(dir);
    return model;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16) return 0;
    ts_model *m = fuzz_vocab_model();
    ts_model_info info;
    ts_model_get_info(m, &info);
    /* Each input byte gives at most 3 bytes after U+FFFD replacement (NFC does not grow text by
     * more than that either), and every byte is at most one token. */
    int cap = 3 * (int)size + 2;
    ts_token *toks = malloc(sizeof(ts_token) * (size_t)cap), *again = malloc(sizeof(ts_token) * (size_t)cap);
    char *back = malloc(3 * size + 1);
    if (!toks || !again || !back) abort();
    int n = ts_tokenize(m, (const char *)data, size, false, toks, cap);
    if (n < 0) abort();
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        if (toks[i] < 0 || toks[i] >= info.n_vocab) abort();
        char buf[256];
        int len = ts_token_bytes(m, toks[i], buf, sizeof buf);
        if (len < 0 || pos + (size_t)len > 3 * size) abort();
        memcpy(back + pos, buf, (size_t)len);
        pos += (size_t)len;
    }
    if (is_nfc_utf8(data, size)) {
        if (pos != size || memcmp(back, data, size) != 0) abort();
    } else {
        int n2 = ts_tokenize(m, back, pos, false, again, cap);
        if (n2 != n || memcmp(again, toks, sizeof(ts_token) * (size_t)n) != 0) abort();
    }
    /* A too-small buffer must be reported, never overrun. */
    if (n > 1 && ts_tokenize(m, (const char *)data, size, false, toks, n - 1) >= 0) abort();
    free(again);
    free(toks);
    free(back);
    return 0;
}
