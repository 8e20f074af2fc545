/* `tiefsee bench`: performance measurements. Two modes share -m:
 *   --tokenizer  tokenizer encode throughput (here): one line per result, "name: value unit", best
 *                of --repeat runs (the least disturbed by other processes);
 *   (default)    model speed like llama-bench, with the decode roofline (cli/bench_model.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/bench_model.h"
#include "cli/commands.h"
#include "cli/vocab_source.h"

/* ---- --tokenizer ----------------------------------------------------------------------------- */

/* Fragments of the built-in text, by kind, so the mix resembles what a DeepSeek model is fed:
 * mostly English prose and code, plus Chinese, Japanese, Korean, Russian, Arabic, Hindi, emoji,
 * numbers and whitespace runs. */
static const char *const bench_fragments[] = {
    "The quick brown fox jumps over the lazy dog. ",
    "In 2024, researchers trained models with 671 billion parameters on 14.8 trillion tokens. ",
    "It's not what you'd expect: they've shown that we'll need better tools, don't you think? ",
    "for (int i = 0; i < n; i++) {\n\tsum += a[i] * b[i];\n}\n",
    "def attention(q, k, v):\n    scores = q @ k.T / math.sqrt(q.shape[-1])\n    return softmax(scores) @ v\n",
    "const result = await fetch(`${baseUrl}/api/v1/items?limit=100`).then((r) => r.json());\n",
    "深度求索是一家专注于人工智能基础技术研究的公司，致力于探索通用人工智能的本质。",
    "自然言語処理の研究では、トークナイザーの性能がとても重要です。",
    "한국어 문장도 토큰화 속도 측정에 포함됩니다. ",
    "Быстрая коричневая лиса перепрыгивает через ленивую собаку. ",
    "مرحبا بالعالم، هذا نص عربي لقياس سرعة التقطيع. ",
    "यह हिंदी पाठ टोकनाइज़र की गति मापने के लिए है। ",
    "Emoji too 😀👍🏽👨‍👩‍👧‍👦🎉 and symbols ±×÷≠≈∞. ",
    "3.14159265358979323846 2.71828182845904523536 1234567890 ",
    "\n\n    \t  \r\n",
    "SELECT name, COUNT(*) FROM orders WHERE total > 100 GROUP BY name ORDER BY 2 DESC;\n",
};

/* Deterministic text of at least `bytes` bytes: fragments picked by a fixed-seed generator. */
static char *bench_text(size_t bytes, size_t *len) {
    size_t n_frag = sizeof bench_fragments / sizeof bench_fragments[0];
    size_t cap = bytes + 512, n = 0;
    char *text = malloc(cap);
    if (!text)
        return NULL;
    uint32_t state = 0x2545F491u;
    while (n < bytes) {
        state ^= state << 13, state ^= state >> 17, state ^= state << 5; /* xorshift32 */
        const char *frag = bench_fragments[state % n_frag];
        size_t fl = strlen(frag);
        if (n + fl > cap)
            break;
        memcpy(text + n, frag, fl);
        n += fl;
    }
    *len = n;
    return text;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *p = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
        if (!p) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = p;
        cap *= 2;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

typedef struct tokenizer_bench_opts {
    const char *model_path, *file_path, *save_text;
    int megabytes, repeat;
} tokenizer_bench_opts;

static int bench_tokenizer(const tokenizer_bench_opts *o) {
    size_t len = 0;
    char *text = o->file_path ? read_file(o->file_path, &len) : bench_text((size_t)o->megabytes << 20, &len);
    if (!text) {
        if (o->file_path)
            perror(o->file_path);
        else
            fprintf(stderr, "tiefsee: bench: out of memory\n");
        return 1;
    }
    if (o->save_text) {
        FILE *out = fopen(o->save_text, "wb");
        if (!out || fwrite(text, 1, len, out) != len || fclose(out) != 0) {
            perror(o->save_text);
            free(text);
            return 1;
        }
    }
    ts_err err = {""};
    vocab_source src;
    double t0 = now_seconds();
    if (vocab_source_open(o->model_path, &src, &err) != 0) {
        fprintf(stderr, "tiefsee: %s\n", err.msg);
        free(text);
        return 1;
    }
    double load_s = now_seconds() - t0;

    /* Byte-level BPE never makes more tokens than bytes after U+FFFD replacement (3 per byte). */
    size_t cap = 3 * len + 2;
    ts_token *ids = cap <= (size_t)INT32_MAX ? malloc(cap * sizeof *ids) : NULL;
    if (!ids) {
        fprintf(stderr, "tiefsee: bench: the text is too large\n");
        vocab_source_close(&src);
        free(text);
        return 1;
    }
    double best = 0;
    int n_tokens = 0;
    for (int r = 0; r < o->repeat; r++) {
        t0 = now_seconds();
        n_tokens = ts_vocab_encode_ex(src.vocab, text, len, false, false, ids, (int)cap);
        double s = now_seconds() - t0;
        if (n_tokens < 0) {
            fprintf(stderr, "tiefsee: bench: tokenizing failed (out of memory)\n");
            break;
        }
        if (r == 0 || s < best)
            best = s;
    }
    int rc = n_tokens < 0;
    if (!rc) {
        printf("vocabulary: %s (%d tokens, loaded in %.3f s)\n", o->model_path, ts_vocab_size(src.vocab), load_s);
        printf("text: %s (%zu bytes)\n", o->file_path ? o->file_path : "built-in mixed-language text", len);
        printf("tokens: %d (%.2f bytes/token)\n", n_tokens, n_tokens ? (double)len / n_tokens : 0.0);
        printf("encode time: %.4f s (best of %d)\n", best, o->repeat);
        printf("encode throughput: %.2f MB/s\n", best > 0 ? (double)len / 1e6 / best : 0.0);
        printf("encode tokens/s: %.0f\n", best > 0 ? n_tokens / best : 0.0);
    }
    free(ids);
    vocab_source_close(&src);
    free(text);
    return rc;
}

/* ---- command ---------------------------------------------------------------------------------- */

static bool has_flag(int argc, char **argv, const char *flag) {
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) return false;
        if (strcmp(argv[i], flag) == 0) return true;
    }
    return false;
}

int cmd_bench(int argc, char **argv) {
    bool tokenizer = false;
    tokenizer_bench_opts tok = {.megabytes = 8, .repeat = 3};
    const opt_def opts[] = {
        {NULL, "--tokenizer", OPT_FLAG, &tokenizer, NULL, "measure tokenizer encode throughput", 0, 0, NULL},
        {"-m", "--model", OPT_STR, &tok.model_path, "PATH",
         "GGUF, tokenizer.json or HF model folder (the vocabulary to use)", 0, 0, NULL},
        {"-f", "--file", OPT_STR, &tok.file_path, "FILE", "text to tokenize (default: built-in mixed-language text)",
         0, 0, NULL},
        {NULL, "--mb", OPT_INT, &tok.megabytes, "N", "size of the built-in text in MiB (default 8)", 1, 1024, NULL},
        {NULL, "--repeat", OPT_INT, &tok.repeat, "N", "runs; the best is reported (default 3)", 1, 1000, NULL},
        {NULL, "--save-text", OPT_STR, &tok.save_text, "FILE",
         "also write the text used to FILE (to measure another tokenizer on the same input)", 0, 0, NULL},
    };
    arg_parser p = {"bench", opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, 0, false};
    if (has_flag(argc, argv, "-h") || has_flag(argc, argv, "--help")) {
        printf("usage: tiefsee bench -m MODEL [-m MODEL2 ...] [-p 512] [-n 128] [-d 0] [-t THREADS] [-r 5] [-o md|json]\n"
               "       tiefsee bench --tokenizer -m MODEL [-f FILE] [options]\n\n"
               "Measures performance. Modes:\n"
               "  (default)     model speed like llama-bench: prompt processing (ppN) and generation (tgN)\n"
               "                tokens/s, with bytes read per generated token, the machine's read bandwidth\n"
               "                (probe, cached in ~/.cache/tiefsee) and the fraction of that roofline reached\n"
               "  --tokenizer   encode throughput (MB/s) of the model's tokenizer on a large text\n\n"
               "model options:\n");
        bench_model_print_options(stdout);
        printf("\ntokenizer options:\n");
        args_print_options(&p, stdout);
        return 0;
    }
    if (!has_flag(argc, argv, "--tokenizer")) return bench_model_main(argc, argv);
    if (args_parse(&p, argc, argv) != 0)
        return EXIT_USAGE;
    if (!tokenizer)
        return usage_error("bench", "choose what to measure (--tokenizer)");
    if (!tok.model_path)
        return usage_error("bench", "no model given (-m MODEL)");
    if (tok.file_path && tok.save_text)
        return usage_error("bench", "--save-text only applies to the built-in text");
    return bench_tokenizer(&tok);
}
