/* Test helper: loads a model and switches it to another supported kernel table. The kernels are
 * chosen once per model at load; a test may pick another table the CPU runs (the scalar
 * references always). Include after check.h. */
#ifndef TS_TESTS_LOAD_ISA_H
#define TS_TESTS_LOAD_ISA_H

#include "model/model.h"
#include "quant/types.h"
#include "tiefsee.h"

static inline ts_model *load_isa(const char *path, enum ts_isa isa) {
    char err[TS_ERR_LEN];
    ts_model *m = NULL;
    if (ts_model_load(path, &m, err) != 0) {
        CHECK(false, "load %s: %s", path, err);
        return NULL;
    }
    m->isa = isa;
    m->types = ts_type_table(isa);
    return m;
}

#endif
