/* See vocab_source.h. The kind is told by content, not by name: a GGUF starts with its magic. */
#include "cli/vocab_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer/vocab_build.h"

int vocab_source_open(const char *path, vocab_source *src, ts_err *err) {
    src->vocab = NULL;
    src->gguf = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return ts_fail(err, "%s: no such file or folder", path);
    if (S_ISDIR(st.st_mode)) {
        size_t n = strlen(path);
        char *json_path = malloc(n + sizeof "/tokenizer.json");
        if (!json_path)
            return ts_fail(err, "out of memory");
        memcpy(json_path, path, n);
        strcpy(json_path + n, "/tokenizer.json");
        int rc = ts_vocab_load_hf_json(json_path, &src->vocab, err);
        free(json_path);
        return rc;
    }
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return ts_fail(err, "%s: cannot open", path);
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) {
        if (gguf_open(path, &src->gguf, err) != 0 || ts_vocab_load(src->gguf, 0, &src->vocab, err) != 0) {
            vocab_source_close(src);
            return -1;
        }
        return 0;
    }
    return ts_vocab_load_hf_json(path, &src->vocab, err);
}

void vocab_source_close(vocab_source *src) {
    ts_vocab_free(src->vocab);
    gguf_close(src->gguf);
    src->vocab = NULL;
    src->gguf = NULL;
}
