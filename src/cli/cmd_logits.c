/* `tiefsee logits`: raw logits of a token sequence, for comparing against other implementations.
 * Output: n_tokens rows of n_vocab float32, little-endian, row i = logits after token i. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "tiefsee.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "logits are written as host floats and the format is little-endian"
#endif

/* Parses "1,2,3" strictly into a new array. Returns the count, or -1 after a usage message. */
static int parse_token_list(const char *s, ts_token **out) {
    int n = 1;
    for (const char *c = s; *c; c++)
        n += *c == ',';
    ts_token *t = malloc((size_t)n * sizeof *t);
    char *copy = strdup(s);
    if (!t || !copy) {
        free(t);
        free(copy);
        fprintf(stderr, "tiefsee: out of memory\n");
        return -1;
    }
    int i = 0;
    char *item = copy;
    for (;;) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        long v;
        if (!parse_long(item, 0, INT32_MAX, &v)) {
            usage_error("logits", "--tokens needs comma-separated token ids, got '%s'", item);
            free(t);
            free(copy);
            return -1;
        }
        t[i++] = (ts_token)v;
        if (!comma)
            break;
        item = comma + 1;
    }
    free(copy);
    *out = t;
    return i;
}

int cmd_logits(int argc, char **argv) {
    const char *model_path = NULL, *tokens_arg = NULL, *out_path = NULL, *cache_type = "f16";
    bool step = false, repack = false, repack_cache = false;
    int n_threads = 0, n_ctx = 0;
    const opt_def opts[] = {
        {"-m", "--model", OPT_STR, &model_path, "FILE", "model (GGUF)", 0, 0, NULL},
        {NULL, "--tokens", OPT_STR, &tokens_arg, "IDS", "token ids, comma-separated (e.g. 1,2,3)", 0, 0, NULL},
        {"-o", "--output", OPT_STR, &out_path, "FILE", "output file (default: stdout, if it is not a terminal)", 0, 0, NULL},
        {NULL, "--step", OPT_FLAG, &step, NULL, "decode one token per call instead of one batch", 0, 0, NULL},
        {NULL, "--repack", OPT_FLAG, &repack, NULL, "repack the weights into interleaved layouts at load (faster decode; costs load time and anonymous memory)", 0, 0, NULL},
        {NULL, "--repack-cache", OPT_FLAG, &repack_cache, NULL, CLI_REPACK_CACHE_HELP, 0, 0, NULL},
        {NULL, "--cache-type", OPT_STR, &cache_type, "f16|f32|bf16|q8_0", "KV cache type (default f16)", 0, 0, NULL},
        {"-t", "--threads", OPT_INT, &n_threads, "N", "threads (default: all cores)", 0, 1024, NULL},
        {"-c", "--ctx-size", OPT_INT, &n_ctx, "N", "context size (default: the number of tokens)", 0, 16777216, NULL},
    };
    arg_parser p = {"logits", opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, 0, false};
    if (args_parse(&p, argc, argv) != 0)
        return EXIT_USAGE;
    if (p.help) {
        printf("usage: tiefsee logits -m MODEL --tokens 1,2,3 [-o OUT.f32] [options]\n\n"
               "Writes the logits after every position: n_tokens x n_vocab float32, little-endian.\n\noptions:\n");
        args_print_options(&p, stdout);
        return 0;
    }
    if (!model_path)
        return usage_error("logits", "no model given (-m MODEL)");
    if (!tokens_arg)
        return usage_error("logits", "no tokens given (--tokens 1,2,3)");
    enum ts_cache_type cache_elem;
    if (ts_cache_type_from_name(cache_type, &cache_elem) != 0)
        return usage_error("logits", "--cache-type must be f16, f32, bf16 or q8_0, got '%s'", cache_type);
    if (!out_path && isatty(STDOUT_FILENO))
        return usage_error("logits", "refusing to write binary logits to a terminal; use -o FILE or redirect stdout");
    ts_token *tokens = NULL;
    int n_tokens = parse_token_list(tokens_arg, &tokens);
    if (n_tokens < 0)
        return EXIT_USAGE;
    if (n_ctx && n_ctx < n_tokens) {
        free(tokens);
        return usage_error("logits", "%d tokens do not fit in a context of %d", n_tokens, n_ctx);
    }

    int status = 1;
    char err[TS_ERR_LEN] = "";
    ts_model *m = NULL;
    ts_context *ctx = NULL;
    float *logits = NULL;
    bool *want = NULL;
    int32_t *pos = NULL, *seq = NULL;
    FILE *out = NULL;
    if (ts_model_load(model_path, &m, err) != 0) {
        fprintf(stderr, "tiefsee: %s\n", err);
        goto done;
    }
    ts_model_info info;
    ts_model_get_info(m, &info);
    for (int i = 0; i < n_tokens; i++) {
        if (tokens[i] >= info.n_vocab) {
            fprintf(stderr, "tiefsee: token %d (position %d) is outside the vocabulary of %d\n", tokens[i], i,
                    info.n_vocab);
            status = EXIT_USAGE;
            goto done;
        }
    }

    if (repack_cache) {
        const cli_weight_opts w = {.repack = true, .repack_cache = true};
        if (cli_prepare_weights(m, &w, n_threads, "tiefsee", false, NULL) != 0) goto done;
    } else if (repack && cli_repack_model(m, n_threads, "tiefsee") != 0) {
        goto done;
    }
    ts_context_params cp = ts_context_default_params();
    cp.n_ctx = n_ctx ? n_ctx : n_tokens;
    cp.n_batch = step ? 1 : n_tokens;
    cp.n_threads = n_threads;
    cp.cache_type = cache_elem;
    if (ts_context_new(m, &cp, &ctx, err) != 0) {
        fprintf(stderr, "tiefsee: %s\n", err);
        goto done;
    }
    fprintf(stderr, "tiefsee: %d token%s, context %d, %s\n", n_tokens, n_tokens == 1 ? "" : "s", ts_context_n_ctx(ctx),
            step ? "one token per decode" : "one batch");

    size_t row = (size_t)info.n_vocab;
    size_t rows = step ? 1 : (size_t)n_tokens;
    logits = malloc(rows * row * sizeof *logits);
    want = malloc((size_t)n_tokens * sizeof *want);
    pos = malloc((size_t)n_tokens * sizeof *pos);
    seq = calloc((size_t)n_tokens, sizeof *seq);
    if (!logits || !want || !pos || !seq) {
        fprintf(stderr, "tiefsee: out of memory for %zu x %zu logits\n", rows, row);
        goto done;
    }
    for (int i = 0; i < n_tokens; i++) {
        want[i] = true;
        pos[i] = i;
    }
    out = out_path ? fopen(out_path, "wb") : stdout;
    if (!out) {
        fprintf(stderr, "tiefsee: cannot open %s for writing\n", out_path);
        goto done;
    }
    int per_call = step ? 1 : n_tokens;
    for (int i = 0; i < n_tokens; i += per_call) {
        ts_batch b = {.n_tokens = per_call, .tokens = tokens + i, .pos = pos + i, .seq = seq, .want_logits = want};
        if (ts_decode(ctx, &b, logits, err) != 0) {
            fprintf(stderr, "tiefsee: %s\n", err);
            goto done;
        }
        if (fwrite(logits, sizeof *logits, (size_t)per_call * row, out) != (size_t)per_call * row) {
            fprintf(stderr, "tiefsee: error writing the logits\n");
            goto done;
        }
    }
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(stderr, "tiefsee: error writing the logits\n");
        goto done;
    }
    status = 0;
done:
    if (out && out != stdout && fclose(out) != 0 && status == 0) {
        fprintf(stderr, "tiefsee: error writing the logits\n");
        status = 1;
    }
    free(tokens);
    free(logits);
    free(want);
    free(pos);
    free(seq);
    ts_context_free(ctx);
    ts_model_free(m);
    return status;
}
