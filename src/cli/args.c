#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"

bool parse_long(const char *s, long min, long max, long *out) {
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno == ERANGE || *end != '\0' || end == s || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool parse_float(const char *s, float *out) {
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno == ERANGE || *end != '\0' || end == s || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool parse_u64(const char *s, uint64_t *out) {
    /* strtoull accepts "-5" (and wraps it); a seed that was negative is a mistake, not a number. */
    if (!s || !*s || s[0] == '-' || s[0] == '+' || s[0] == ' ')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE || *end != '\0' || end == s)
        return false;
    *out = (uint64_t)v;
    return true;
}

int usage_error(const char *command, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tiefsee%s%s: ", command ? " " : "", command ? command : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'tiefsee %s%s--help')\n", command ? command : "", command ? " " : "");
    return EXIT_USAGE;
}

static const opt_def *find_opt(const arg_parser *p, const char *name, size_t len) {
    for (int i = 0; i < p->n_opts; i++) {
        const opt_def *o = &p->opts[i];
        if (o->short_name && strlen(o->short_name) == len && strncmp(o->short_name, name, len) == 0)
            return o;
        if (o->long_name && strlen(o->long_name) == len && strncmp(o->long_name, name, len) == 0)
            return o;
    }
    return NULL;
}

static int set_value(const arg_parser *p, const opt_def *o, const char *name, const char *value) {
    switch (o->kind) {
    case OPT_FLAG:
        *(bool *)o->dest = true;
        break;
    case OPT_INT: {
        long v;
        if (!parse_long(value, o->min, o->max, &v))
            return usage_error(p->command, "%s needs an integer from %ld to %ld, got '%s'", name, o->min, o->max, value),
                   -1;
        *(int *)o->dest = (int)v;
        break;
    }
    case OPT_FLOAT:
        if (!parse_float(value, (float *)o->dest))
            return usage_error(p->command, "%s needs a number, got '%s'", name, value), -1;
        break;
    case OPT_STR:
        *(const char **)o->dest = value;
        break;
    case OPT_SEED:
        if (strcmp(value, "-1") == 0) {
            if (o->given)
                *o->given = false;
            return 0;
        }
        if (!parse_u64(value, (uint64_t *)o->dest))
            return usage_error(p->command, "%s needs an integer from 0 to 2^64-1 (or -1 for random), got '%s'", name,
                               value),
                   -1;
        break;
    }
    if (o->given)
        *o->given = true;
    return 0;
}

int args_parse(arg_parser *p, int argc, char **argv) {
    bool options_done = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') { /* "-" alone is a positional (stdin) */
            if (p->n_positional >= p->max_positional)
                return usage_error(p->command, "unexpected argument '%s'", a), -1;
            p->positional[p->n_positional++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            p->help = true;
            continue;
        }
        /* --name=value is accepted for long options, as most tools do. */
        const char *eq = (a[1] == '-') ? strchr(a, '=') : NULL;
        size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
        const opt_def *o = find_opt(p, a, name_len);
        if (!o)
            return usage_error(p->command, "unknown option '%.*s'", (int)name_len, a), -1;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)name_len, a);
        const char *value = NULL;
        if (o->kind == OPT_FLAG) {
            if (eq)
                return usage_error(p->command, "%s takes no value", name), -1;
        } else if (eq) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return usage_error(p->command, "%s needs a value (%s)", name, o->value_name ? o->value_name : "VALUE"),
                       -1;
            value = argv[++i];
        }
        if (set_value(p, o, name, value) != 0)
            return -1;
    }
    return 0;
}

void args_print_options(const arg_parser *p, FILE *out) {
    for (int i = 0; i < p->n_opts; i++) {
        const opt_def *o = &p->opts[i];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s%s%s", o->short_name ? o->short_name : "", o->short_name ? ", " : "    ",
                 o->long_name, o->value_name ? " " : "", o->value_name ? o->value_name : "");
        fprintf(out, "  %-28s %s\n", left, o->help);
    }
    fprintf(out, "  %-28s %s\n", "-h, --help", "show this help");
}
