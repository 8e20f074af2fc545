/* Command-line parsing for the tiefsee front end: one table of options per command, strict number
 * parsing (the whole argument must be a number in range), usage errors reported in one line. */
#ifndef TS_CLI_ARGS_H
#define TS_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes: 0 ok, 1 runtime failure (model load, I/O), 2 usage error. */
enum { EXIT_USAGE = 2 };

enum opt_kind {
    OPT_FLAG,  /* bool, no value */
    OPT_INT,   /* int within [min, max] */
    OPT_FLOAT, /* finite float */
    OPT_STR,   /* const char * */
    OPT_SEED,  /* uint64 seed; -1 means "random" (sets *seed_given = false) */
};

typedef struct opt_def {
    const char *short_name; /* "-m" or NULL */
    const char *long_name;  /* "--model" */
    enum opt_kind kind;
    void *dest;
    const char *value_name; /* shown in help: "FILE", "N" ... */
    const char *help;
    long min, max;          /* OPT_INT range */
    bool *given;            /* optional: set when the option appears (OPT_SEED: false for -1) */
} opt_def;

typedef struct arg_parser {
    const char *command; /* "run", "logits" ... for messages */
    const opt_def *opts;
    int n_opts;
    const char **positional; /* collected positional arguments */
    int n_positional, max_positional;
    bool help; /* -h / --help seen */
} arg_parser;

/* Parses argv[0..argc). On a usage error prints one line (and a hint) to stderr and returns -1. */
int args_parse(arg_parser *p, int argc, char **argv);
void args_print_options(const arg_parser *p, FILE *out);

/* Strict conversions: the whole string must be consumed, no overflow. Return false on failure. */
bool parse_long(const char *s, long min, long max, long *out);
bool parse_float(const char *s, float *out);
bool parse_u64(const char *s, uint64_t *out);

/* One-line usage error: "tiefsee COMMAND: MESSAGE" plus a hint to --help. Returns EXIT_USAGE. */
int usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
