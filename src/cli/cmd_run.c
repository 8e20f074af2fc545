/* `tiefsee run`: prompt in, continuation streamed out. Flags and defaults follow llama.cpp's. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/utf8_stream.h"
#include "tiefsee.h"

/* The longest token text the vocabulary loader accepts; any token's bytes fit. */
#define TOKEN_BUF_BYTES 65536
#define DEMO_PRESET "demo"
#define DEMO_TYPE "q8_0"
#define DEMO_PROMPT "Once upon a time"
/* A prompt file larger than this is almost certainly a mistake (a model file, say). */
#define MAX_PROMPT_FILE_BYTES (256u << 20)

typedef struct run_opts {
    const char *model, *prompt, *prompt_file, *cache_type;
    enum ts_cache_type cache; /* cache_type parsed */
    int n_predict, n_ctx, n_threads, top_k, repeat_last_n;
    float temp, top_p, min_p, repeat_penalty;
    uint64_t seed;
    bool seed_given, verbose;
    cli_weight_opts weights;
} run_opts;

static void print_run_help(const arg_parser *p) {
    printf("usage: tiefsee run -m MODEL.gguf [-p PROMPT | -f FILE] [options]\n"
           "\n"
           "Generates a continuation of the prompt and streams it to stdout. Stops at the end-of-text\n"
           "token, after -n tokens, or when the context is full. Without -m, runs a small model with\n"
           "random weights (made once and cached) so you can try the program without a download.\n"
           "\noptions:\n");
    args_print_options(p, stdout);
}

static uint64_t random_seed(void) {
    uint64_t seed = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, &seed, sizeof seed);
        close(fd);
        if (n == (ssize_t)sizeof seed)
            return seed;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

/* Reads a whole file ("-" = stdin). Returns NULL with a message on stderr. */
static char *read_file(const char *path, size_t *len) {
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "tiefsee: cannot open prompt file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap >= MAX_PROMPT_FILE_BYTES) {
                fprintf(stderr, "tiefsee: prompt file %s is larger than %u MiB\n", path, MAX_PROMPT_FILE_BYTES >> 20);
                free(buf);
                buf = NULL;
                break;
            }
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0) {
            if (ferror(fp)) {
                fprintf(stderr, "tiefsee: cannot read prompt file %s: %s\n", path, strerror(errno));
                free(buf);
                buf = NULL;
            }
            break;
        }
    }
    if (fp != stdin)
        fclose(fp);
    *len = n;
    return buf;
}

/* mkdir -p for the cache directory. */
static int make_dirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    return (mkdir(path, 0755) == 0 || errno == EEXIST) ? 0 : -1;
}

/* Path of the cached demo model, synthesized on first use. Returns 0, or 1 after printing why not. */
static int demo_model(char *path, size_t cap, int n_threads) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[4096];
    if (xdg && xdg[0] == '/')
        snprintf(dir, sizeof dir, "%s/tiefsee", xdg);
    else if (home && home[0])
        snprintf(dir, sizeof dir, "%s/.cache/tiefsee", home);
    else {
        fprintf(stderr, "tiefsee: no model given (-m) and no cache directory for the demo model ($HOME is not set)\n");
        return 1;
    }
    if ((size_t)snprintf(path, cap, "%s/%s-%s.gguf", dir, DEMO_PRESET, DEMO_TYPE) >= cap) {
        fprintf(stderr, "tiefsee: cache path too long: %s\n", dir);
        return 1;
    }
    fprintf(stderr,
            "tiefsee: no model given (-m): using the built-in DEMO model. Its weights are RANDOM, so the text it\n"
            "         writes is gibberish; it only shows that the program works. To run a real model, download a\n"
            "         GGUF such as DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf and run:\n"
            "           tiefsee run -m DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf -p 'Why is the sky blue?'\n");
    struct stat st;
    if (stat(path, &st) == 0)
        return 0;
    if (make_dirs(dir) != 0) {
        fprintf(stderr, "tiefsee: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    /* Write under a temporary name and rename, so an interrupted or concurrent first run never
     * leaves a half-written model behind at the cached path. */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    fprintf(stderr, "tiefsee: making the demo model once (%s) ...\n", path);
    ts_synth_params sp = {.preset = DEMO_PRESET, .type = DEMO_TYPE, .seed = 0, .out_path = tmp, .overwrite = true,
                          .n_threads = n_threads};
    char err[TS_ERR_LEN] = "";
    if (ts_synth(&sp, err) != 0) {
        fprintf(stderr, "tiefsee: cannot make the demo model: %s\n", err);
        unlink(tmp);
        return 1;
    }
    if (rename(tmp, path) != 0) {
        fprintf(stderr, "tiefsee: cannot move the demo model to %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return 1;
    }
    return 0;
}

/* Feeds tokens [0, n) at positions start.. in chunks of n_batch; leaves the last token's logits. */
static int decode_tokens(ts_context *ctx, const ts_token *tokens, int n, int start, int n_batch, float *logits) {
    int32_t *pos = malloc((size_t)n_batch * sizeof *pos), *seq = calloc((size_t)n_batch, sizeof *seq);
    int rc = (pos && seq) ? 0 : -1;
    if (rc)
        fprintf(stderr, "tiefsee: out of memory\n");
    for (int i = 0; i < n && rc == 0; i += n_batch) {
        int chunk = n - i < n_batch ? n - i : n_batch;
        for (int k = 0; k < chunk; k++)
            pos[k] = start + i + k;
        ts_batch b = {.n_tokens = chunk, .tokens = tokens + i, .pos = pos, .seq = seq, .want_logits = NULL};
        char err[TS_ERR_LEN] = "";
        if (ts_decode(ctx, &b, logits, err) != 0) {
            fprintf(stderr, "tiefsee: %s\n", err);
            rc = -1;
        }
    }
    free(pos);
    free(seq);
    return rc;
}

static int generate(const run_opts *o, const char *prompt, size_t prompt_len) {
    char err[TS_ERR_LEN] = "";
    ts_model *m = NULL;
    ts_context *ctx = NULL;
    ts_sampler *smp = NULL;
    ts_token *tokens = NULL;
    float *logits = NULL;
    char *piece = NULL;
    int status = 1;

    double t_load = now_seconds();
    if (ts_model_load(o->model, &m, err) != 0) {
        fprintf(stderr, "tiefsee: %s\n", err);
        return 1;
    }
    ts_model_info info;
    ts_model_get_info(m, &info);
    if (cli_prepare_weights(m, &o->weights, o->n_threads, "tiefsee", o->verbose, NULL) != 0) goto done;

    ts_context_params cp = ts_context_default_params();
    cp.n_ctx = o->n_ctx;
    cp.n_threads = o->n_threads;
    cp.cache_type = o->cache;
    if (ts_context_new(m, &cp, &ctx, err) != 0) {
        fprintf(stderr, "tiefsee: %s\n", err);
        goto done;
    }
    t_load = now_seconds() - t_load;
    int n_ctx = ts_context_n_ctx(ctx);
    fprintf(stderr, "tiefsee: %s (%s, %s), context %d tokens (%strained on %d)\n", info.name, info.arch,
            info.weight_type, n_ctx, o->n_ctx ? "" : "automatic; ", info.n_ctx_train);
    const size_t kv_per_token = ts_context_kv_bytes_per_token(ctx);
    fprintf(stderr, "tiefsee: KV cache %s: %zu bytes per token, %.1f MiB for %d tokens\n", o->cache_type, kv_per_token,
            (double)kv_per_token * n_ctx / (1024.0 * 1024.0), n_ctx);

    int n_prompt = ts_tokenize(m, prompt, prompt_len, info.add_bos, NULL, 0);
    if (n_prompt < 0 && n_prompt != INT32_MIN) {
        tokens = malloc((size_t)-n_prompt * sizeof *tokens);
        if (!tokens) {
            fprintf(stderr, "tiefsee: out of memory\n");
            goto done;
        }
        n_prompt = ts_tokenize(m, prompt, prompt_len, info.add_bos, tokens, -n_prompt);
    }
    if (n_prompt < 0) {
        fprintf(stderr, "tiefsee: cannot tokenize the prompt\n");
        goto done;
    }
    if (n_prompt == 0) {
        fprintf(stderr, "tiefsee: the prompt is empty (and the model adds no BOS token)\n");
        goto done;
    }
    if (n_prompt >= n_ctx) {
        fprintf(stderr, "tiefsee: the prompt has %d tokens, which leaves no room in the context of %d (use -c)\n",
                n_prompt, n_ctx);
        goto done;
    }

    ts_sampler_params sp = ts_sampler_default_params();
    sp.temp = o->temp;
    sp.top_k = o->top_k;
    sp.top_p = o->top_p;
    sp.min_p = o->min_p;
    sp.repeat_penalty = o->repeat_penalty;
    sp.repeat_last_n = o->repeat_last_n < 0 ? n_ctx : o->repeat_last_n; /* -1 = the whole context */
    sp.seed = o->seed_given ? o->seed : random_seed();
    smp = ts_sampler_new(&sp, info.n_vocab);
    logits = malloc((size_t)info.n_vocab * sizeof *logits);
    piece = malloc(TOKEN_BUF_BYTES);
    if (!smp || !logits || !piece) {
        fprintf(stderr, "tiefsee: cannot set up sampling (out of memory)\n");
        goto done;
    }
    if (o->verbose)
        fprintf(stderr,
                "tiefsee: prompt %d tokens; sampling: temp %.2f, top-k %d, top-p %.2f, min-p %.2f, repeat-penalty "
                "%.2f over %d, seed %llu\n",
                n_prompt, (double)sp.temp, sp.top_k, (double)sp.top_p, (double)sp.min_p, (double)sp.repeat_penalty,
                sp.repeat_last_n, (unsigned long long)sp.seed);
    /* Like llama.cpp, the prompt counts as history for the repeat penalty. */
    for (int i = 0; i < n_prompt; i++)
        ts_sampler_accept(smp, tokens[i]);

    double t_prompt = now_seconds();
    if (decode_tokens(ctx, tokens, n_prompt, 0, cp.n_batch > 0 ? cp.n_batch : 512, logits) != 0)
        goto done;
    t_prompt = now_seconds() - t_prompt;

    utf8_stream out = {.out = stdout};
    int n_past = n_prompt, n_generated = 0, n_decoded = 0;
    const char *stop_reason = "token limit (-n)";
    double t_gen = now_seconds();
    while (o->n_predict < 0 || n_generated < o->n_predict) {
        ts_token t = ts_sampler_sample(smp, logits);
        ts_sampler_accept(smp, t);
        n_generated++;
        if (ts_token_is_eog(m, t)) {
            stop_reason = "end of text";
            break;
        }
        int len = ts_token_bytes(m, t, piece, TOKEN_BUF_BYTES);
        if (len > 0)
            utf8_stream_write(&out, piece, (size_t)len);
        if (o->n_predict >= 0 && n_generated >= o->n_predict)
            break; /* no need to compute logits nobody will read */
        if (n_past >= n_ctx) {
            stop_reason = "context full";
            break;
        }
        if (decode_tokens(ctx, &t, 1, n_past, 1, logits) != 0) {
            utf8_stream_finish(&out);
            goto done;
        }
        n_past++;
        n_decoded++;
    }
    t_gen = now_seconds() - t_gen;
    utf8_stream_finish(&out);
    if (isatty(STDOUT_FILENO))
        fputc('\n', stdout);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "tiefsee: error writing the output\n");
        goto done;
    }
    if (o->verbose) {
        fprintf(stderr, "tiefsee: stopped: %s\n", stop_reason);
        fprintf(stderr, "tiefsee: load %.2f s\n", t_load);
        fprintf(stderr, "tiefsee: prompt %d tokens in %.3f s (%.2f tokens/s)\n", n_prompt, t_prompt,
                t_prompt > 0 ? n_prompt / t_prompt : 0.0);
        fprintf(stderr, "tiefsee: generated %d tokens in %.3f s (%.2f tokens/s)\n", n_generated, t_gen,
                t_gen > 0 ? n_decoded / t_gen : 0.0);
    } else if (strcmp(stop_reason, "context full") == 0) {
        fprintf(stderr, "tiefsee: stopped: the context of %d tokens is full (use -c for a larger one)\n", n_ctx);
    }
    status = 0;
done:
    free(piece);
    free(logits);
    free(tokens);
    ts_sampler_free(smp);
    ts_context_free(ctx);
    ts_model_free(m);
    return status;
}

int cmd_run(int argc, char **argv) {
    ts_sampler_params d = ts_sampler_default_params();
    run_opts o = {.cache_type = "f16",
                  .n_predict = -1,
                  .temp = d.temp,
                  .top_k = d.top_k,
                  .top_p = d.top_p,
                  .min_p = d.min_p,
                  .repeat_penalty = d.repeat_penalty,
                  .repeat_last_n = d.repeat_last_n};
    const opt_def opts[] = {
        {"-m", "--model", OPT_STR, &o.model, "FILE", "model (GGUF); without it, a random-weight demo model", 0, 0, NULL},
        {"-p", "--prompt", OPT_STR, &o.prompt, "TEXT", "prompt", 0, 0, NULL},
        {"-f", "--file", OPT_STR, &o.prompt_file, "FILE", "read the prompt from FILE ('-' = stdin)", 0, 0, NULL},
        {"-n", "--n-predict", OPT_INT, &o.n_predict, "N", "tokens to generate (default -1: until end of text or full context)",
         -1, 1000000000, NULL},
        {"-c", "--ctx-size", OPT_INT, &o.n_ctx, "N", "context size (default 0: the model's, capped to fit in memory)", 0,
         16777216, NULL},
        {"-t", "--threads", OPT_INT, &o.n_threads, "N", "threads (default: all cores)", 0, 1024, NULL},
        {NULL, "--temp", OPT_FLOAT, &o.temp, "T", "temperature (default 0.8; 0 = greedy)", 0, 0, NULL},
        {NULL, "--top-k", OPT_INT, &o.top_k, "K", "keep the K most likely tokens (default 40; 0 = off)", 0, INT32_MAX, NULL},
        {NULL, "--top-p", OPT_FLOAT, &o.top_p, "P", "nucleus sampling (default 0.95; 1 = off)", 0, 0, NULL},
        {NULL, "--min-p", OPT_FLOAT, &o.min_p, "P", "drop tokens below P times the best one's probability (default 0.05)",
         0, 0, NULL},
        {NULL, "--repeat-penalty", OPT_FLOAT, &o.repeat_penalty, "R", "penalise recent tokens (default 1.0 = off)", 0, 0,
         NULL},
        {NULL, "--repeat-last-n", OPT_INT, &o.repeat_last_n, "N", "tokens the penalty looks back (default 64; -1 = context)",
         -1, 16777216, NULL},
        {"-s", "--seed", OPT_SEED, &o.seed, "S", "random seed (default: random)", 0, 0, &o.seed_given},
        {NULL, "--cache-type", OPT_STR, &o.cache_type, "f16|f32|bf16|q8_0", "KV cache type (default f16)", 0, 0, NULL},
        {NULL, "--verbose", OPT_FLAG, &o.verbose, NULL, "print sampling settings and timings to stderr", 0, 0, NULL},
        {NULL, "--repack", OPT_FLAG, &o.weights.repack, NULL, CLI_REPACK_HELP, 0, 0, NULL},
        {NULL, "--no-repack", OPT_FLAG, &o.weights.no_repack, NULL, CLI_NO_REPACK_HELP, 0, 0, NULL},
        {NULL, "--repack-cache", OPT_FLAG, &o.weights.repack_cache, NULL, CLI_REPACK_CACHE_HELP, 0, 0, NULL},
    };
    arg_parser p = {"run", opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, 0, false};
    if (args_parse(&p, argc, argv) != 0)
        return EXIT_USAGE;
    if (p.help) {
        print_run_help(&p);
        return 0;
    }
    if (o.prompt && o.prompt_file)
        return usage_error("run", "give the prompt with -p or -f, not both");
    if (o.weights.no_repack && (o.weights.repack || o.weights.repack_cache))
        return usage_error("run", "--no-repack excludes --repack and --repack-cache");
    if (ts_cache_type_from_name(o.cache_type, &o.cache) != 0)
        return usage_error("run", "--cache-type must be f16, f32, bf16 or q8_0, got '%s'", o.cache_type);
    if (o.repeat_penalty <= 0.0f)
        return usage_error("run", "--repeat-penalty must be positive");
    if (o.top_p < 0.0f || o.min_p < 0.0f || o.min_p > 1.0f)
        return usage_error("run", "--top-p must be >= 0 and --min-p within 0..1");

    char demo_path[4096];
    if (!o.model) {
        int rc = demo_model(demo_path, sizeof demo_path, o.n_threads);
        if (rc != 0)
            return rc;
        o.model = demo_path;
        if (!o.prompt && !o.prompt_file)
            o.prompt = DEMO_PROMPT;
    }
    if (!o.prompt && !o.prompt_file)
        return usage_error("run", "no prompt given (-p TEXT or -f FILE)");

    if (o.prompt)
        return generate(&o, o.prompt, strlen(o.prompt));
    size_t len;
    char *text = read_file(o.prompt_file, &len);
    if (!text)
        return 1;
    int rc = generate(&o, text, len);
    free(text);
    return rc;
}
