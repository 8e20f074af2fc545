/* `tiefsee serve`: the OpenAI-compatible HTTP server (src/server). This file only parses the
 * command line; the server itself lives in src/server. */
#include <stdio.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "server/server.h"

int cmd_serve(int argc, char **argv) {
    server_config cfg = {.host = "127.0.0.1", .port = 8080, .n_slots = 4, .queue_max = 64};
    const opt_def opts[] = {
        {"-m", "--model", OPT_STR, &cfg.model_path, "FILE", "model (GGUF)", 0, 0, NULL},
        {NULL, "--host", OPT_STR, &cfg.host, "ADDR", "IPv4 address to listen on (default 127.0.0.1)", 0, 0, NULL},
        {NULL, "--port", OPT_INT, &cfg.port, "N", "port (default 8080; 0 = any free port, printed at start)", 0, 65535,
         NULL},
        {NULL, "--api-key", OPT_STR, &cfg.api_key, "KEY", "require 'Authorization: Bearer KEY' (all routes but /health)",
         0, 0, NULL},
        {"-np", "--parallel", OPT_INT, &cfg.n_slots, "N", "sequences decoded together (default 4)", 1, 256, NULL},
        {NULL, "--queue", OPT_INT, &cfg.queue_max, "N", "requests waiting for a slot before 429 (default 64)", 0, 100000,
         NULL},
        {"-c", "--ctx-size", OPT_INT, &cfg.n_ctx, "N", "positions per sequence (default 0: the model's, capped to fit)",
         0, 16777216, NULL},
        {NULL, "--alias", OPT_STR, &cfg.alias, "NAME", "model name in responses (default: the model's name)", 0, 0, NULL},
        {NULL, "--chat-template", OPT_STR, &cfg.chat_template, "NAME",
         "chat format instead of the model's (names as in 'tiefsee chat --help')", 0, 0, NULL},
        {"-t", "--threads", OPT_INT, &cfg.n_threads, "N", "threads (default: all cores)", 0, 1024, NULL},
        {NULL, "--repack", OPT_FLAG, &cfg.weights.repack, NULL, CLI_REPACK_HELP, 0, 0, NULL},
        {NULL, "--no-repack", OPT_FLAG, &cfg.weights.no_repack, NULL, CLI_NO_REPACK_HELP, 0, 0, NULL},
        {NULL, "--repack-cache", OPT_FLAG, &cfg.weights.repack_cache, NULL, CLI_REPACK_CACHE_HELP, 0, 0, NULL},
    };
    arg_parser p = {"serve", opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, 0, false};
    if (args_parse(&p, argc, argv) != 0)
        return EXIT_USAGE;
    if (p.help) {
        printf("usage: tiefsee serve -m MODEL.gguf [options]\n\n"
               "An OpenAI-compatible HTTP server with continuous batching: POST /v1/chat/completions,\n"
               "/v1/completions, /tokenize, /detokenize; GET /v1/models, /health. SIGTERM finishes the\n"
               "requests in flight and exits.\n\noptions:\n");
        args_print_options(&p, stdout);
        return 0;
    }
    if (!cfg.model_path)
        return usage_error("serve", "no model given (-m FILE)");
    if (cfg.weights.no_repack && (cfg.weights.repack || cfg.weights.repack_cache))
        return usage_error("serve", "--no-repack excludes --repack and --repack-cache");
    if (cfg.chat_template && ts_chat_format_from_name(cfg.chat_template) < 0)
        return usage_error("serve", "unknown --chat-template '%s'", cfg.chat_template);
    if (!cfg.alias)
        cfg.alias = cfg.model_path;
    return server_run(&cfg);
}
