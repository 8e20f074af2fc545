/* The weight layout flags of run, chat, serve and bench (cli_prepare_weights in commands.h). */
#ifndef TS_CLI_WEIGHT_OPTS_H
#define TS_CLI_WEIGHT_OPTS_H

#include <stdbool.h>

typedef struct cli_weight_opts {
    bool repack, no_repack, repack_cache; /* --repack, --no-repack, --repack-cache */
} cli_weight_opts;

#endif
