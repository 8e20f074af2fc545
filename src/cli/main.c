/* tiefsee: the command-line front end. A thin layer over include/tiefsee.h: it parses arguments,
 * calls the library and prints; all the work happens in the library. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "util/clock.h"

double now_seconds(void) { return ts_monotonic_seconds(); }

static void print_help(FILE *out) {
    fprintf(out,
            "tiefsee %s - DeepSeek models on your own machine (GGUF files, plain C)\n"
            "\n"
            "usage: tiefsee COMMAND [options]\n"
            "\n"
            "commands:\n"
            "  run     generate text:  tiefsee run -m MODEL.gguf -p \"PROMPT\"\n"
            "          (without -m: a small random-weight demo model, to try the program)\n"
            "  logits  write the raw logits of a token sequence:  tiefsee logits -m MODEL --tokens 1,2,3 -o out.f32\n"
            "  info    describe a model:  tiefsee info MODEL.gguf\n"
            "  synth   write a random-weight model of a preset:  tiefsee synth tiny-llama -o tiny.gguf\n"
            "  tokenize  print the token ids of a text:  tiefsee tokenize -m model.gguf \"Hello\"\n"
            "  bench   speed like llama-bench, with the bandwidth roofline:  tiefsee bench -m model.gguf -p 512 -n 128\n"
            "          (--tokenizer: tokenizer throughput)\n"
            "  chat    talk with a model in its chat format:  tiefsee chat -m MODEL.gguf\n"
            "  serve   an OpenAI-compatible HTTP server:  tiefsee serve -m MODEL.gguf --port 8080\n"
            "  chat-render  print the prompt a conversation JSON renders to:  tiefsee chat-render --template NAME -f conv.json\n"
            "  cache   list or prune the repacked-weights cache of --repack-cache:  tiefsee cache [list|prune|clear]\n"
            "\n"
            "options:\n"
            "  -h, --help     this help ('tiefsee COMMAND --help' for a command's options)\n"
            "  --version      print the version\n",
            TIEFSEE_VERSION);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        print_help(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("tiefsee %s\n", TIEFSEE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "logits") == 0)
        return cmd_logits(argc - 2, argv + 2);
    if (strcmp(cmd, "info") == 0)
        return cmd_info(argc - 2, argv + 2);
    if (strcmp(cmd, "synth") == 0)
        return cmd_synth(argc - 2, argv + 2);
    if (strcmp(cmd, "tokenize") == 0)
        return cmd_tokenize(argc - 2, argv + 2);
    if (strcmp(cmd, "bench") == 0)
        return cmd_bench(argc - 2, argv + 2);
    if (strcmp(cmd, "chat") == 0)
        return cmd_chat(argc - 2, argv + 2);
    if (strcmp(cmd, "chat-render") == 0)
        return cmd_chat_render(argc - 2, argv + 2);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 2, argv + 2);
    if (strcmp(cmd, "cache") == 0)
        return cmd_cache(argc - 2, argv + 2);
    if (cmd[0] == '-') {
        fprintf(stderr, "tiefsee: unknown option '%s' (see 'tiefsee --help')\n", cmd);
        return EXIT_USAGE;
    }
    fprintf(stderr, "tiefsee: unknown command '%s' (commands: run, logits, info, synth, tokenize, chat, chat-render, serve, bench, cache; see 'tiefsee --help')\n", cmd);
    return EXIT_USAGE;
}
