/* A context for a test, or the test ends (exit 1) saying why it could not be made. */
#ifndef TS_TESTS_ENGINE_TEST_CTX_H
#define TS_TESTS_ENGINE_TEST_CTX_H

#include <stdio.h>
#include <stdlib.h>

#include "tiefsee.h"

static inline ts_context *test_context_new(ts_model *m, const ts_context_params *p) {
    ts_context *c = NULL;
    char err[TS_ERR_LEN];
    if (ts_context_new(m, p, &c, err) != 0) {
        printf("context: %s\n", err);
        exit(1);
    }
    return c;
}

#endif
