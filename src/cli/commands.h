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

struct ts_model;
/* `--repack`: repacks m's weights (ts_model_repack) and prints what it cost to stderr, prefixed
 * with `who` ("tiefsee", "tiefsee serve"). Returns 0, or 1 after printing the error. */
int cli_repack_model(struct ts_model *m, int n_threads, const char *who);

/* Monotonic clock in seconds, for timings. */
double now_seconds(void);

#endif
