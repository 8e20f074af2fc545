/* `tiefsee tokenize`: the token ids of a text, from a GGUF vocabulary (as llama.cpp's tokenizer
 * gives them; only the tokenizer.ggml.* keys are read, so vocab-only GGUFs work as well as full
 * models) or from a Hugging Face tokenizer.json / model folder (as HF's encode gives them). --jsonl is for scripts and tests: one JSON string per
 * input line in, one JSON array of ids per line out. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/vocab_source.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

#define MAX_PIECE_BYTES 65536 /* the vocabulary refuses longer tokens */

typedef struct token_buf {
    ts_token *ids;
    int cap;
} token_buf;

/* Tokenizes into buf (grown as needed); returns the count or -1 after printing an error. */
static int tokenize_text(const ts_vocab *v, const char *text, size_t len, bool add_bos, bool parse_special,
                         token_buf *buf) {
    for (;;) {
        int n = ts_vocab_encode_ex(v, text, len, add_bos, parse_special, buf->ids, buf->cap);
        if (n >= 0)
            return n;
        if (n == INT32_MIN) {
            fprintf(stderr, "tiefsee: tokenize: out of memory\n");
            return -1;
        }
        ts_token *p = realloc(buf->ids, (size_t)-(long)n * sizeof *p);
        if (!p) {
            fprintf(stderr, "tiefsee: tokenize: out of memory\n");
            return -1;
        }
        buf->ids = p;
        buf->cap = -n;
    }
}

static bool is_valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || len > n - i || (len == 2 && c < 0xC2))
            return false;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

/* A token's bytes as a quoted, escaped string: control bytes and quotes escaped, non-ASCII bytes
 * shown as they are when they form whole UTF-8 characters, else as \xHH (a token may hold part
 * of a character). */
static void print_piece(const char *piece, int len) {
    bool utf8 = is_valid_utf8((const unsigned char *)piece, (size_t)len);
    putchar('"');
    for (int i = 0; i < len; i++) {
        unsigned char c = (unsigned char)piece[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '\r')
            fputs("\\r", stdout);
        else if (c < 0x20 || c == 0x7F || (c >= 0x80 && !utf8))
            printf("\\x%02X", c);
        else
            putchar(c);
    }
    putchar('"');
}

static int print_tokens(const ts_vocab *v, const ts_token *ids, int n, bool pieces) {
    if (!pieces) {
        for (int i = 0; i < n; i++)
            printf(i ? " %d" : "%d", (int)ids[i]);
        putchar('\n');
        return 0;
    }
    char *piece = malloc(MAX_PIECE_BYTES);
    if (!piece) {
        fprintf(stderr, "tiefsee: tokenize: out of memory\n");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int len = ts_vocab_token_bytes(v, ids[i], piece, MAX_PIECE_BYTES);
        printf("%d\t", (int)ids[i]);
        print_piece(piece, len < 0 ? 0 : len);
        putchar('\n');
    }
    free(piece);
    return 0;
}

static char *read_all(FILE *in, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, in);
        if (n < cap)
            break;
        char *p = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
        if (!p) {
            free(buf);
            return NULL;
        }
        buf = p;
        cap *= 2;
    }
    if (buf && ferror(in)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* One JSON string per line in, one JSON array of ids per line out. */
static int tokenize_jsonl(const ts_vocab *v, FILE *in, bool add_bos, bool parse_special, token_buf *buf) {
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t got;
    long line_no = 0;
    int rc = 0;
    while (rc == 0 && (got = getline(&line, &line_cap, in)) >= 0) {
        line_no++;
        json_error_t jerr;
        json_t *s = json_loadb(line, (size_t)got, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!s || !json_is_string(s)) {
            fprintf(stderr, "tiefsee: tokenize: line %ld: expected one JSON string%s%s\n", line_no, s ? "" : ": ",
                    s ? "" : jerr.text);
            json_decref(s);
            rc = 1;
            break;
        }
        int n = tokenize_text(v, json_string_value(s), json_string_length(s), add_bos, parse_special, buf);
        json_decref(s);
        if (n < 0) {
            rc = 1;
            break;
        }
        putchar('[');
        for (int i = 0; i < n; i++)
            printf(i ? ",%d" : "%d", (int)buf->ids[i]);
        fputs("]\n", stdout);
    }
    if (rc == 0 && ferror(in)) {
        fprintf(stderr, "tiefsee: tokenize: read error\n");
        rc = 1;
    }
    free(line);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model_path = NULL, *file_path = NULL;
    bool pieces = false, jsonl = false, add_bos = false, no_special = false;
    const opt_def opts[] = {
        {"-m", "--model", OPT_STR, &model_path, "FILE", "vocabulary: a GGUF (model or vocab-only), a tokenizer.json or a HF model folder", 0, 0,
         NULL},
        {"-f", "--file", OPT_STR, &file_path, "FILE", "read the text from FILE ('-' = stdin)", 0, 0, NULL},
        {NULL, "--pieces", OPT_FLAG, &pieces, NULL, "print one token per line with its bytes", 0, 0, NULL},
        {NULL, "--jsonl", OPT_FLAG, &jsonl, NULL, "input lines are JSON strings; print a JSON array of ids per line", 0,
         0, NULL},
        {NULL, "--bos", OPT_FLAG, &add_bos, NULL, "start with the BOS token (if the vocabulary has one)", 0, 0, NULL},
        {NULL, "--no-special", OPT_FLAG, &no_special, NULL,
         "treat control-token texts as plain text (user-defined tokens are still matched)", 0, 0, NULL},
    };
    const char *positional[1];
    arg_parser p = {"tokenize", opts, (int)(sizeof opts / sizeof opts[0]), positional, 0, 1, false};
    if (args_parse(&p, argc, argv) != 0)
        return EXIT_USAGE;
    if (p.help) {
        printf("usage: tiefsee tokenize -m MODEL.gguf|tokenizer.json|HF_FOLDER [TEXT | -f FILE] [options]\n\n"
               "Prints the token ids of TEXT (or FILE, or stdin) on one line.\n\noptions:\n");
        args_print_options(&p, stdout);
        return 0;
    }
    if (!model_path)
        return usage_error("tokenize", "no model given (-m MODEL.gguf)");
    if (p.n_positional && file_path)
        return usage_error("tokenize", "give the text once (either TEXT or -f FILE)");
    if (jsonl && p.n_positional)
        return usage_error("tokenize", "--jsonl reads lines from -f FILE or stdin, not from TEXT");
    if (jsonl && pieces)
        return usage_error("tokenize", "--pieces cannot be combined with --jsonl");

    ts_err err = {""};
    vocab_source src;
    if (vocab_source_open(model_path, &src, &err) != 0) {
        fprintf(stderr, "tiefsee: %s\n", err.msg);
        return 1;
    }
    const ts_vocab *v = src.vocab;

    int rc = 0;
    token_buf buf = {NULL, 0};
    FILE *in = stdin;
    if (!p.n_positional && file_path && strcmp(file_path, "-") != 0 && !(in = fopen(file_path, "rb"))) {
        perror(file_path);
        rc = 1;
    } else if (jsonl) {
        rc = tokenize_jsonl(v, in, add_bos, !no_special, &buf);
    } else {
        size_t len = 0;
        char *text = p.n_positional ? NULL : read_all(in, &len);
        if (!p.n_positional && !text) {
            fprintf(stderr, "tiefsee: tokenize: cannot read the input\n");
            rc = 1;
        } else {
            const char *t = p.n_positional ? positional[0] : text;
            if (p.n_positional)
                len = strlen(t);
            int n = tokenize_text(v, t, len, add_bos, !no_special, &buf);
            rc = n < 0 || print_tokens(v, buf.ids, n, pieces) != 0;
        }
        free(text);
    }
    if (in && in != stdin)
        fclose(in);
    free(buf.ids);
    vocab_source_close(&src);
    if (fflush(stdout) != 0)
        rc = 1;
    return rc;
}
