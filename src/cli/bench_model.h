/* `tiefsee bench -m MODEL ...`: model speed in the manner of llama.cpp's llama-bench (see
 * docs/bench.md). Separate from the tokenizer mode in cmd_bench.c, which dispatches here. */
#ifndef TS_CLI_BENCH_MODEL_H
#define TS_CLI_BENCH_MODEL_H

#include <stdio.h>

/* argv holds the arguments after "bench". Returns the exit status (0, 1 runtime failure, 2 usage). */
int bench_model_main(int argc, char **argv);
/* The options of the model mode, for `tiefsee bench --help`. */
void bench_model_print_options(FILE *out);

#endif
