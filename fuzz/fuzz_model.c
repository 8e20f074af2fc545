/* libFuzzer target for model loading as a whole: GGUF parse, architecture hyperparameters, tensor
 * shape checks and the tokenizer vocabulary (tokens, types, merges, special ids). Accepted inputs
 * are then exercised a little: info, tokenizing a fixed text, decoding every token, and one decode
 * step of a 1-token batch, so a hyperparameter the loader forgot to bound shows up here. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "tiefsee.h"

static void sink_line(void *user, const char *line) {
    (void)user;
    (void)line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    char err[TS_ERR_LEN] = {0};
    ts_model *m = NULL;
    if (ts_model_load(path, &m, err) != 0) {
        fuzz_check_message(err);
        close(fd);
        return 0;
    }
    ts_model_info info;
    ts_model_get_info(m, &info);
    ts_model_describe(m, sink_line, NULL);

    static const char text[] = "Hello, world! 123 <\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c> \xff\xfe";
    ts_token toks[256];
    int n = ts_tokenize(m, text, sizeof text - 1, true, toks, 256);
    for (int i = 0; i < n; i++)
        if (toks[i] < 0 || toks[i] >= info.n_vocab) abort();
    char buf[512];
    for (int t = 0; t < info.n_vocab && t < 4096; t++) ts_token_bytes(m, t, buf, sizeof buf);

    /* One tiny decode, only for models small enough that this stays fast. */
    if (info.n_params < (1u << 22) && info.n_vocab > 0) {
        ts_context_params cp = ts_context_default_params();
        cp.n_ctx = 8;
        cp.n_threads = 1;
        ts_context *c = NULL;
        if (ts_context_new(m, &cp, &c, err) == 0) {
            ts_token tok = 0;
            int32_t pos = 0, seq = 0;
            ts_batch b = {.n_tokens = 1, .tokens = &tok, .pos = &pos, .seq = &seq, .want_logits = NULL};
            float *logits = malloc(sizeof(float) * (size_t)info.n_vocab);
            if (!logits) abort();
            if (ts_decode(c, &b, logits, err) != 0) fuzz_check_message(err);
            free(logits);
            ts_context_free(c);
        } else {
            fuzz_check_message(err);
        }
    }
    ts_model_free(m);
    close(fd);
    return 0;
}
