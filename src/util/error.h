/* Error reporting: every fallible function takes a ts_err* and, on failure, fills it with one
 * human-readable line (no trailing newline) and returns a nonzero code. Callers print it as is. */
#ifndef TS_UTIL_ERROR_H
#define TS_UTIL_ERROR_H

#include <stddef.h>

typedef struct ts_err {
    char msg[512];
} ts_err;

/* Formats into err->msg (if err is non-NULL) and returns -1, so a caller can `return ts_fail(err, ...)`. */
int ts_fail(ts_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
