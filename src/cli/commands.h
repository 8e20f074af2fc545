/* The subcommands of the tiefsee executable. Each takes the arguments after its name and returns
 * the process exit status (0 ok, 1 runtime failure, 2 usage error). */
#ifndef TS_CLI_COMMANDS_H
#define TS_CLI_COMMANDS_H

#define TIEFSEE_VERSION "0.1.0"

int cmd_run(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_chat_render(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_cache(int argc, char **argv);

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/weight_opts.h"

struct ts_model;
struct ts_repack_stats;
/* `--repack`: repacks m's weights (ts_model_repack) and prints what it cost to stderr, prefixed
 * with `who` ("tiefsee", "tiefsee serve"). Returns 0, or 1 after printing the error. */
int cli_repack_model(struct ts_model *m, int n_threads, const char *who);

/* Flags and help lines of the weight layout choice shared by run, chat, serve and bench. */
#define CLI_REPACK_HELP "repack the weights at load even when they take more than 70 % of the memory (see --no-repack)"
#define CLI_NO_REPACK_HELP                                                                                       \
    "keep the weights in the file layout, mapped: starts at once and shares the page cache, decodes slower "      \
    "(default: repacked into interleaved layouts at load when this CPU has kernels for them and they take at "   \
    "most 70 % of the memory)"

/* Whether weights of repack_bytes are repacked by default on a machine with physical_bytes of
 * memory: only when they take at most 70 % of it, so that the KV cache, the OS and other programs
 * keep room; larger models stay mapped (pages the kernel can drop and read again). Depends only
 * on the model and the machine, not on what happens to be free, so a machine always computes a
 * model the same way. */
bool cli_repack_by_default(uint64_t repack_bytes, uint64_t physical_bytes);

#define CLI_REPACK_CACHE_HELP                                                                                   \
    "keep the repacked weights in a cache file (~/.cache/tiefsee/repacked, or $TIEFSEE_REPACK_CACHE_DIR) that " \
    "later loads of the same model map instead of repacking (also without this flag, once it exists): costs "   \
    "its size in disk space, saves the repacking's time and memory"

/* Where --repack-cache keeps its files: $TIEFSEE_REPACK_CACHE_DIR, else $XDG_CACHE_HOME/tiefsee/repacked,
 * else ~/.cache/tiefsee/repacked. False when none can be named. */
bool cli_repack_cache_dir(char *out, size_t cap);

/* The weight layout step after loading: --repack repacks, --no-repack keeps the file layout,
 * --repack-cache maps (or writes, then maps) a cache file of the repacked weights whatever their
 * size, falling back to the default when it cannot; the default repacks when cli_repack_by_default
 * says so. Prints what it did to stderr when forced, when `report` is set or when it took a second
 * or more. stats (may be NULL) receives what ts_model_repack(_cached) reported (zeros when nothing
 * was repacked). Returns 0, 1 after printing a runtime error, 2 after printing a usage error
 * (contradicting flags). */
int cli_prepare_weights(struct ts_model *m, const cli_weight_opts *o, int n_threads, const char *who, bool report,
                        struct ts_repack_stats *stats);

/* Monotonic clock in seconds, for timings. */
double now_seconds(void);

#endif
