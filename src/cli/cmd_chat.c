/* `tiefsee chat`: an interactive conversation with a model in its own chat format (src/chat), and
 * `tiefsee chat-render`, which prints the prompt a conversation renders to (the hook the template
 * conformance test compares against the reference Jinja templates). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "chat/chat.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/utf8_stream.h"
#include "tiefsee.h"
#include "util/utf8.h"

#define TOKEN_BUF_BYTES 65536
#define DS_BOS "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
#define DS_EOS "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
#define FAINT "\033[2m"
#define RESET "\033[0m"

/* The one piece of process-wide state: a signal handler can only talk to the program through a
 * static flag. It is set by SIGINT during an answer and checked between tokens. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

enum think_display { THINK_DIM, THINK_HIDE, THINK_PLAIN };

typedef struct chat_opts {
    const char *model, *template_name, *system, *cache_type;
    int n_predict, n_ctx, n_threads;
    ts_sampler_params sp;
    bool temp_given, top_p_given, seed_given, hide_thinking, think_plain, no_reasoning, verbose;
    cli_weight_opts weights;
} chat_opts;

typedef struct chat_session {
    const chat_opts *o;
    ts_model *model;
    ts_context *ctx;
    ts_sampler *sampler;
    ts_sampler_params sp;
    ts_model_info info;
    enum ts_chat_format format;
    ts_chat_render_opts render;
    char bos[256], eos[256];
    ts_chat chat;
    ts_token *cached; /* the tokens whose keys/values sequence 0 of the KV cache holds */
    int n_cached, cap_cached;
    float *logits;
    char *piece;
    bool color;
} chat_session;

/* ---- chat-render ---------------------------------------------------------------------------- */

int cmd_chat_render(int argc, char **argv) {
    const char *name = NULL, *file = NULL, *bos = DS_BOS, *eos = DS_EOS;
    bool thinking = false, no_gen = false;
    const opt_def opts[] = {
        {NULL, "--template", OPT_STR, &name, "NAME", "chat format (see 'tiefsee chat --help')", 0, 0, NULL},
        {"-f", "--file", OPT_STR, &file, "FILE", "conversation JSON ({\"messages\": [...]})", 0, 0, NULL},
        {NULL, "--thinking", OPT_FLAG, &thinking, NULL, "thinking mode (V3.1, R1-Distill-Qwen)", 0, 0, NULL},
        {NULL, "--no-generation-prompt", OPT_FLAG, &no_gen, NULL, "do not end with the assistant's turn", 0, 0, NULL},
        {NULL, "--bos", OPT_STR, &bos, "TEXT", "BOS token text (default DeepSeek's)", 0, 0, NULL},
        {NULL, "--eos", OPT_STR, &eos, "TEXT", "EOS token text (default DeepSeek's)", 0, 0, NULL},
    };
    arg_parser p = {"chat-render", opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, 0, false};
    if (args_parse(&p, argc, argv) != 0)
        return EXIT_USAGE;
    if (p.help) {
        printf("usage: tiefsee chat-render --template NAME -f CONVERSATION.json\n\n"
               "Prints the prompt the conversation renders to, byte for byte.\n\noptions:\n");
        args_print_options(&p, stdout);
        return 0;
    }
    if (!name || !file)
        return usage_error("chat-render", "need --template NAME and -f FILE");
    int f = ts_chat_format_from_name(name);
    if (f < 0)
        return usage_error("chat-render", "unknown chat template '%s'", name);
    ts_chat chat;
    ts_chat_init(&chat);
    char err[TS_ERR_LEN] = "";
    if (ts_chat_load_file(&chat, file, err) != 0) {
        fprintf(stderr, "tiefsee: %s\n", err);
        ts_chat_free(&chat);
        return 1;
    }
    ts_chat_render_opts ro = {.add_generation_prompt = !no_gen, .thinking = thinking, .bos = bos, .eos = eos};
    ts_chat_prompt prompt;
    int rc = ts_chat_render(&chat, (enum ts_chat_format)f, &ro, &prompt);
    ts_chat_free(&chat);
    if (rc != 0) {
        fprintf(stderr, "tiefsee: out of memory\n");
        return 1;
    }
    fwrite(prompt.text, 1, prompt.len, stdout);
    ts_chat_prompt_free(&prompt);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- chat ------------------------------------------------------------------------------------ */

static void print_chat_help_commands(FILE *out) {
    fprintf(out, "commands:\n"
                 "  /bye             leave\n"
                 "  /clear           forget the conversation (the system prompt stays)\n"
                 "  /set NAME VALUE  temp, top_p, top_k, min_p, repeat_penalty, seed\n"
                 "  /save FILE       write the conversation as JSON\n"
                 "  /load FILE       read a conversation written by /save\n"
                 "  /help            this list\n"
                 "  \"\"\"              start (and end) a message of several lines\n"
                 "Ctrl-C stops the answer being written.\n");
}

static int rebuild_sampler(chat_session *s) {
    ts_sampler *fresh = ts_sampler_new(&s->sp, s->info.n_vocab);
    if (!fresh)
        return -1;
    ts_sampler_free(s->sampler);
    s->sampler = fresh;
    return 0;
}

/* /set NAME VALUE. Returns 0, or -1 after saying what is wrong. */
static int set_param(chat_session *s, const char *args) {
    char name[32];
    char value[64];
    if (sscanf(args, "%31s %63s", name, value) != 2) {
        fprintf(stderr, "usage: /set NAME VALUE (temp, top_p, top_k, min_p, repeat_penalty, seed)\n");
        return -1;
    }
    ts_sampler_params sp = s->sp;
    float f;
    long l;
    uint64_t u;
    bool ok;
    if (strcmp(name, "temp") == 0)
        ok = parse_float(value, &f) && f >= 0 && (sp.temp = f, true);
    else if (strcmp(name, "top_p") == 0)
        ok = parse_float(value, &f) && f >= 0 && f <= 1 && (sp.top_p = f, true);
    else if (strcmp(name, "min_p") == 0)
        ok = parse_float(value, &f) && f >= 0 && f <= 1 && (sp.min_p = f, true);
    else if (strcmp(name, "repeat_penalty") == 0)
        ok = parse_float(value, &f) && f > 0 && (sp.repeat_penalty = f, true);
    else if (strcmp(name, "top_k") == 0)
        ok = parse_long(value, 0, INT32_MAX, &l) && (sp.top_k = (int)l, true);
    else if (strcmp(name, "seed") == 0)
        ok = parse_u64(value, &u) && (sp.seed = u, true);
    else {
        fprintf(stderr, "/set: unknown parameter '%s' (temp, top_p, top_k, min_p, repeat_penalty, seed)\n", name);
        return -1;
    }
    if (!ok) {
        fprintf(stderr, "/set: bad value '%s' for %s\n", value, name);
        return -1;
    }
    s->sp = sp;
    if (rebuild_sampler(s) != 0) {
        fprintf(stderr, "/set: out of memory\n");
        return -1;
    }
    fprintf(stderr, "%s = %s\n", name, value);
    return 0;
}

static int cache_reserve(chat_session *s, int n) {
    if (n <= s->cap_cached)
        return 0;
    ts_token *bigger = realloc(s->cached, (size_t)n * sizeof *bigger);
    if (!bigger)
        return -1;
    s->cached = bigger;
    s->cap_cached = n;
    return 0;
}

/* Decodes tokens[from..n) after what the cache holds; logits of the last one. */
static int prefill(chat_session *s, const ts_token *tokens, int from, int n) {
    int n_batch = 512;
    int32_t pos[512], seq[512] = {0};
    for (int i = from; i < n; i += n_batch) {
        int chunk = n - i < n_batch ? n - i : n_batch;
        for (int k = 0; k < chunk; k++)
            pos[k] = i + k;
        ts_batch b = {.n_tokens = chunk, .tokens = tokens + i, .pos = pos, .seq = seq, .want_logits = NULL};
        char err[TS_ERR_LEN] = "";
        if (ts_decode(s->ctx, &b, s->logits, err) != 0) {
            fprintf(stderr, "tiefsee: %s\n", err);
            return -1;
        }
    }
    return 0;
}

typedef struct reply_text {
    char *bytes;
    size_t len, cap;
} reply_text;

static int reply_append(reply_text *r, const char *s, size_t n) {
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *bigger = realloc(r->bytes, cap);
        if (!bigger)
            return -1;
        r->bytes = bigger;
        r->cap = cap;
    }
    memcpy(r->bytes + r->len, s, n);
    r->len += n;
    r->bytes[r->len] = '\0';
    return 0;
}


/* A copy with every byte that is not part of a well-formed character (a model may emit any bytes)
 * replaced by U+FFFD: conversations are saved as JSON, which must be valid UTF-8. NULL if no memory. */
static char *valid_utf8(const char *s, size_t n) {
    if (n > SIZE_MAX / 3 - 1)
        return NULL;
    char *out = malloc(n * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        size_t len = ts_utf8_char_len((const unsigned char *)s + i, n - i);
        if (len) {
            memcpy(o, s + i, len);
            o += len;
            i += len;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    *o = '\0';
    return out;
}

/* Shows one piece of the reply: reasoning dimmed, hidden or plain; the answer as it is. */
static void show_piece(chat_session *s, utf8_stream *out, bool *in_think, const char *piece, size_t len) {
    const char *close = *in_think ? memmem(piece, len, "</think>", 8) : NULL;
    size_t think_len = close ? (size_t)(close - piece) : (*in_think ? len : 0);
    if (think_len > 0 && !s->o->hide_thinking)
        utf8_stream_write(out, piece, think_len);
    if (close) {
        *in_think = false;
        utf8_stream_finish(out);
        if (s->color && !s->o->think_plain && !s->o->hide_thinking)
            fputs(RESET, stdout);
        if (!s->o->hide_thinking)
            fputs(s->o->think_plain ? "</think>" : "\n", stdout);
        piece = close + 8;
        len -= think_len + 8;
    } else if (*in_think) {
        return;
    }
    utf8_stream_write(out, piece, len);
}

/* One turn: renders the conversation, prefills what the cache lacks, streams the answer and stores
 * it. Returns 0, or -1 on an engine failure. */
static int answer(chat_session *s) {
    ts_chat_prompt prompt;
    ts_token *tokens = NULL;
    int n_tokens = 0;
    char err[TS_ERR_LEN] = "";
    s->render.add_generation_prompt = true;
    if (ts_chat_render(&s->chat, s->format, &s->render, &prompt) != 0 ||
        ts_chat_tokenize(s->model, &prompt, &tokens, &n_tokens, err) != 0) {
        fprintf(stderr, "tiefsee: %s\n", err[0] ? err : "out of memory");
        ts_chat_prompt_free(&prompt);
        return -1;
    }
    ts_chat_prompt_free(&prompt);
    int n_ctx = ts_context_n_ctx(s->ctx);
    if (n_tokens == 0 || n_tokens >= n_ctx) {
        fprintf(stderr, "tiefsee: the conversation (%d tokens) does not fit the context of %d; /clear it\n", n_tokens,
                n_ctx);
        free(tokens);
        ts_chat_pop(&s->chat); /* drop the message that did not fit, so the session stays usable */
        return 0;
    }
    /* KV reuse: keep the cached tokens the new prompt starts with; at least one must be decoded anew
     * to get logits for the next token. */
    int keep = 0;
    while (keep < s->n_cached && keep < n_tokens && s->cached[keep] == tokens[keep])
        keep++;
    if (keep == n_tokens)
        keep--;
    ts_seq_truncate(s->ctx, 0, keep);
    if (cache_reserve(s, n_ctx) != 0) {
        free(tokens);
        fprintf(stderr, "tiefsee: out of memory\n");
        return -1;
    }
    memcpy(s->cached, tokens, (size_t)n_tokens * sizeof *tokens);
    s->n_cached = keep;
    if (s->o->verbose)
        fprintf(stderr, "tiefsee: prompt %d tokens, %d reused from the cache, %d prefilled\n", n_tokens, keep,
                n_tokens - keep);
    int rc = prefill(s, tokens, keep, n_tokens);
    free(tokens);
    if (rc != 0) {
        s->n_cached = 0;
        ts_seq_truncate(s->ctx, 0, 0);
        return -1;
    }
    s->n_cached = n_tokens;

    bool in_think = ts_chat_format_starts_thinking(s->format, s->render.thinking);
    utf8_stream out = {.out = stdout};
    if (in_think && !s->o->hide_thinking)
        fputs(s->o->think_plain ? "<think>\n" : (s->color ? FAINT : ""), stdout);
    reply_text reply = {0};
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    interrupted = 0;
    int n_generated = 0;
    while (!interrupted && (s->o->n_predict < 0 || n_generated < s->o->n_predict) && s->n_cached < n_ctx) {
        ts_token t = ts_sampler_sample(s->sampler, s->logits);
        ts_sampler_accept(s->sampler, t);
        n_generated++;
        if (ts_token_is_eog(s->model, t))
            break;
        int len = ts_token_bytes(s->model, t, s->piece, TOKEN_BUF_BYTES);
        if (len > 0) {
            if (reply_append(&reply, s->piece, (size_t)len) != 0) {
                rc = -1;
                break;
            }
            show_piece(s, &out, &in_think, s->piece, (size_t)len);
        }
        s->cached[s->n_cached] = t;
        if (prefill(s, s->cached, s->n_cached, s->n_cached + 1) != 0) {
            rc = -1;
            break;
        }
        s->n_cached++;
    }
    sigaction(SIGINT, &old, NULL);
    utf8_stream_finish(&out);
    if (in_think && s->color && !s->o->think_plain && !s->o->hide_thinking)
        fputs(RESET, stdout);
    if (interrupted)
        fputs(" [stopped]", stdout);
    fputc('\n', stdout);
    fflush(stdout);
    char *reasoning = NULL, *content = NULL;
    char *clean = rc == 0 ? valid_utf8(reply.bytes ? reply.bytes : "", reply.len) : NULL;
    if (!clean)
        rc = -1;
    if (rc == 0 && ts_chat_split_reasoning(clean,
                                           ts_chat_format_starts_thinking(s->format, s->render.thinking), &reasoning,
                                           &content) == 0) {
        if (ts_chat_add(&s->chat, TS_ROLE_ASSISTANT, content, reasoning) != 0)
            rc = -1;
    }
    free(reasoning);
    free(content);
    free(clean);
    free(reply.bytes);
    return rc;
}

/* Reads one input: a line, or with a leading """ everything up to a line ending in """. NULL at EOF. */
static char *read_input(bool interactive) {
    char *line = NULL;
    size_t cap = 0;
    if (interactive) {
        line = readline(">>> ");
    } else {
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
            free(line);
            return NULL;
        }
        if (n > 0 && line[n - 1] == '\n')
            line[n - 1] = '\0';
    }
    if (!line || strncmp(line, "\"\"\"", 3) != 0)
        return line;
    /* Multi-line: collect until a line that ends with """. */
    reply_text text = {0};
    char *first = line + 3;
    bool done = strlen(first) >= 3 && strcmp(first + strlen(first) - 3, "\"\"\"") == 0;
    if (done)
        first[strlen(first) - 3] = '\0';
    int rc = reply_append(&text, first, strlen(first));
    free(line);
    while (!done && rc == 0) {
        char *more = NULL;
        if (interactive) {
            more = readline("... ");
        } else {
            size_t c2 = 0;
            ssize_t n = getline(&more, &c2, stdin);
            if (n < 0) {
                free(more);
                more = NULL;
            } else if (n > 0 && more[n - 1] == '\n') {
                more[n - 1] = '\0';
            }
        }
        if (!more)
            break;
        size_t ml = strlen(more);
        done = ml >= 3 && strcmp(more + ml - 3, "\"\"\"") == 0;
        if (done)
            more[ml - 3] = '\0';
        rc = reply_append(&text, "\n", 1);
        if (rc == 0)
            rc = reply_append(&text, more, strlen(more));
        free(more);
    }
    if (rc != 0) {
        free(text.bytes);
        return NULL;
    }
    return text.bytes ? text.bytes : strdup("");
}

/* Handles a /command. Returns 1 to leave, 0 otherwise. */
static int run_command(chat_session *s, const char *line) {
    char err[TS_ERR_LEN] = "";
    if (strcmp(line, "/bye") == 0 || strcmp(line, "/exit") == 0)
        return 1;
    if (strcmp(line, "/help") == 0 || strcmp(line, "/?") == 0) {
        print_chat_help_commands(stdout);
    } else if (strcmp(line, "/clear") == 0) {
        ts_chat_clear(&s->chat);
        if (s->o->system)
            ts_chat_add(&s->chat, TS_ROLE_SYSTEM, s->o->system, NULL);
        fprintf(stderr, "conversation cleared\n");
    } else if (strncmp(line, "/set ", 5) == 0) {
        set_param(s, line + 5);
    } else if (strncmp(line, "/save ", 6) == 0) {
        if (ts_chat_save_file(&s->chat, line + 6, err) != 0)
            fprintf(stderr, "/save: %s\n", err);
        else
            fprintf(stderr, "saved %d messages to %s\n", s->chat.n, line + 6);
    } else if (strncmp(line, "/load ", 6) == 0) {
        ts_chat loaded;
        ts_chat_init(&loaded);
        if (ts_chat_load_file(&loaded, line + 6, err) != 0) {
            fprintf(stderr, "/load: %s\n", err);
            ts_chat_free(&loaded);
        } else {
            ts_chat_free(&s->chat);
            s->chat = loaded;
            fprintf(stderr, "loaded %d messages from %s\n", s->chat.n, line + 6);
        }
    } else {
        fprintf(stderr, "unknown command '%s' (/help lists them)\n", line);
    }
    return 0;
}

static int chat_loop(chat_session *s) {
    bool interactive = isatty(STDIN_FILENO);
    if (interactive)
        fprintf(stderr, "tiefsee chat: %s, format %s. /help for commands, /bye to leave.\n", s->info.name,
                ts_chat_format_name(s->format));
    for (;;) {
        char *line = read_input(interactive);
        if (!line)
            break;
        if (interactive && line[0])
            add_history(line);
        int rc = 0;
        if (line[0] == '/') {
            rc = run_command(s, line);
        } else if (line[0]) {
            if (ts_chat_add(&s->chat, TS_ROLE_USER, line, NULL) != 0 || answer(s) != 0)
                rc = -1;
        }
        free(line);
        if (rc > 0)
            break;
        if (rc < 0)
            return 1;
    }
    return 0;
}

static int token_text(const ts_model *m, ts_token t, char *buf, int cap) {
    int n = t >= 0 ? ts_token_bytes(m, t, buf, cap - 1) : -1;
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

static int chat_main(const chat_opts *o) {
    chat_session s = {.o = o, .sp = o->sp, .color = isatty(STDOUT_FILENO)};
    char err[TS_ERR_LEN] = "";
    int status = 1;
    ts_chat_init(&s.chat);
    if (ts_model_load(o->model, &s.model, err) != 0) {
        fprintf(stderr, "tiefsee: %s\n", err);
        return 1;
    }
    ts_model_get_info(s.model, &s.info);

    size_t tlen;
    const char *tmpl = ts_chat_model_template(s.model, &tlen);
    char *tmpl_copy = tmpl ? strndup(tmpl, tlen) : NULL;
    int f = o->template_name ? ts_chat_format_from_name(o->template_name) : ts_chat_format_detect(tmpl_copy, s.info.arch);
    if (f < 0) {
        f = TS_CHAT_DEEPSEEK_V3;
        if (tmpl_copy) /* name the unknown template by its first bytes, which is all it has for a name */
            fprintf(stderr, "tiefsee: warning: chat template not recognized (\"%.60s...\"); using %s (--chat-template)\n",
                    tmpl_copy, ts_chat_format_name((enum ts_chat_format)f));
        else
            fprintf(stderr, "tiefsee: warning: the model has no tokenizer.chat_template; using %s (--chat-template)\n",
                    ts_chat_format_name((enum ts_chat_format)f));
    }
    free(tmpl_copy);
    s.format = (enum ts_chat_format)f;
    /* R1 and its distills were tuned with temperature 0.6 and top-p 0.95 (their model cards). */
    if (ts_chat_format_starts_thinking(s.format, true) && s.format != TS_CHAT_DEEPSEEK_V31) {
        if (!o->temp_given)
            s.sp.temp = 0.6f;
        if (!o->top_p_given)
            s.sp.top_p = 0.95f;
    }
    token_text(s.model, s.info.bos, s.bos, sizeof s.bos);
    token_text(s.model, s.info.eos, s.eos, sizeof s.eos);
    s.render = (ts_chat_render_opts){.add_generation_prompt = true, .thinking = !o->no_reasoning, .bos = s.bos,
                                     .eos = s.eos};

    if (cli_prepare_weights(s.model, &o->weights, o->n_threads, "tiefsee", o->verbose, NULL) != 0) goto done;
    ts_context_params cp = ts_context_default_params();
    cp.n_ctx = o->n_ctx;
    cp.n_threads = o->n_threads;
    ts_cache_type_from_name(o->cache_type, &cp.cache_type); /* validated when the flags were parsed */
    if (ts_context_new(s.model, &cp, &s.ctx, err) != 0) {
        fprintf(stderr, "tiefsee: %s\n", err);
        goto done;
    }
    s.logits = malloc((size_t)s.info.n_vocab * sizeof *s.logits);
    s.piece = malloc(TOKEN_BUF_BYTES);
    if (!s.logits || !s.piece || rebuild_sampler(&s) != 0 ||
        (o->system && ts_chat_add(&s.chat, TS_ROLE_SYSTEM, o->system, NULL) != 0)) {
        fprintf(stderr, "tiefsee: out of memory\n");
        goto done;
    }
    if (o->verbose)
        fprintf(stderr, "tiefsee: chat format %s; temp %.2f, top-p %.2f, top-k %d, min-p %.2f\n",
                ts_chat_format_name(s.format), (double)s.sp.temp, (double)s.sp.top_p, s.sp.top_k, (double)s.sp.min_p);
    status = chat_loop(&s);
done:
    free(s.cached);
    free(s.logits);
    free(s.piece);
    ts_chat_free(&s.chat);
    ts_sampler_free(s.sampler);
    ts_context_free(s.ctx);
    ts_model_free(s.model);
    return status;
}

int cmd_chat(int argc, char **argv) {
    chat_opts o = {.cache_type = "f16", .n_predict = -1, .sp = ts_sampler_default_params()};
    const opt_def opts[] = {
        {"-m", "--model", OPT_STR, &o.model, "FILE", "model (GGUF)", 0, 0, NULL},
        {NULL, "--chat-template", OPT_STR, &o.template_name, "NAME",
         "chat format instead of the model's: deepseek-v3, deepseek-r1, deepseek-v3.1, r1-distill-qwen, "
         "r1-distill-llama, deepseek-llm, deepseek-coder",
         0, 0, NULL},
        {NULL, "--system", OPT_STR, &o.system, "TEXT", "system prompt", 0, 0, NULL},
        {NULL, "--hide-thinking", OPT_FLAG, &o.hide_thinking, NULL, "do not show the reasoning", 0, 0, NULL},
        {NULL, "--think", OPT_FLAG, &o.think_plain, NULL, "show the reasoning as plain text with its tags", 0, 0, NULL},
        {NULL, "--no-reasoning", OPT_FLAG, &o.no_reasoning, NULL, "non-thinking mode (V3.1, R1-Distill-Qwen)", 0, 0,
         NULL},
        {"-n", "--n-predict", OPT_INT, &o.n_predict, "N", "most tokens per answer (default -1: until the end)", -1,
         1000000000, NULL},
        {"-c", "--ctx-size", OPT_INT, &o.n_ctx, "N", "context size (default 0: the model's, capped to fit)", 0, 16777216,
         NULL},
        {"-t", "--threads", OPT_INT, &o.n_threads, "N", "threads (default: all cores)", 0, 1024, NULL},
        {NULL, "--temp", OPT_FLOAT, &o.sp.temp, "T", "temperature (default 0.8; R1 family 0.6)", 0, 0, &o.temp_given},
        {NULL, "--top-k", OPT_INT, &o.sp.top_k, "K", "top-k (default 40)", 0, INT32_MAX, NULL},
        {NULL, "--top-p", OPT_FLOAT, &o.sp.top_p, "P", "top-p (default 0.95)", 0, 0, &o.top_p_given},
        {NULL, "--min-p", OPT_FLOAT, &o.sp.min_p, "P", "min-p (default 0.05)", 0, 0, NULL},
        {NULL, "--repeat-penalty", OPT_FLOAT, &o.sp.repeat_penalty, "R", "repeat penalty (default 1.0 = off)", 0, 0,
         NULL},
        {"-s", "--seed", OPT_SEED, &o.sp.seed, "S", "random seed (default: random)", 0, 0, &o.seed_given},
        {NULL, "--cache-type", OPT_STR, &o.cache_type, "f16|f32|bf16|q8_0", "KV cache type (default f16)", 0, 0, NULL},
        {NULL, "--verbose", OPT_FLAG, &o.verbose, NULL, "print the format, sampling and KV reuse to stderr", 0, 0, NULL},
        {NULL, "--repack", OPT_FLAG, &o.weights.repack, NULL, CLI_REPACK_HELP, 0, 0, NULL},
        {NULL, "--no-repack", OPT_FLAG, &o.weights.no_repack, NULL, CLI_NO_REPACK_HELP, 0, 0, NULL},
        {NULL, "--repack-cache", OPT_FLAG, &o.weights.repack_cache, NULL, CLI_REPACK_CACHE_HELP, 0, 0, NULL},
    };
    arg_parser p = {"chat", opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, 0, false};
    if (args_parse(&p, argc, argv) != 0)
        return EXIT_USAGE;
    if (p.help) {
        printf("usage: tiefsee chat -m MODEL.gguf [options]\n\n"
               "A conversation in the model's chat format. Reads lines from the terminal (with editing and\n"
               "history), or from stdin when it is not a terminal (one answer per line, exits at the end).\n\n");
        print_chat_help_commands(stdout);
        printf("\noptions:\n");
        args_print_options(&p, stdout);
        return 0;
    }
    if (!o.model)
        return usage_error("chat", "no model given (-m FILE)");
    if (o.template_name && ts_chat_format_from_name(o.template_name) < 0)
        return usage_error("chat", "unknown --chat-template '%s'", o.template_name);
    if (o.hide_thinking && o.think_plain)
        return usage_error("chat", "--hide-thinking and --think exclude each other");
    if (o.weights.no_repack && (o.weights.repack || o.weights.repack_cache))
        return usage_error("chat", "--no-repack excludes --repack and --repack-cache");
    enum ts_cache_type cache_check;
    if (ts_cache_type_from_name(o.cache_type, &cache_check) != 0)
        return usage_error("chat", "--cache-type must be f16, f32, bf16 or q8_0, got '%s'", o.cache_type);
    if (o.sp.repeat_penalty <= 0.0f || o.sp.top_p < 0.0f || o.sp.min_p < 0.0f || o.sp.min_p > 1.0f)
        return usage_error("chat", "--repeat-penalty must be positive, --top-p >= 0, --min-p within 0..1");
    if (!o.seed_given) {
        FILE *r = fopen("/dev/urandom", "rb");
        if (!r || fread(&o.sp.seed, sizeof o.sp.seed, 1, r) != 1)
            o.sp.seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
        if (r)
            fclose(r);
    }
    return chat_main(&o);
}
