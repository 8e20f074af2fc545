/* The tensor list of a synthetic model and the weight type of each tensor. */
#ifndef TS_SYNTH_SYNTH_PLAN_H
#define TS_SYNTH_SYNTH_PLAN_H

#include <stdint.h>

#include "synth/synth_model.h"
#include "util/error.h"

/* How a tensor's values are made. */
enum synth_init {
    SYNTH_INIT_GAUSS,      /* N(0, scale) */
    SYNTH_INIT_NORM,       /* 1 + N(0, scale): RMSNorm weights */
    SYNTH_INIT_ROPE_FREQS, /* llama3 frequency divisors, computed (dense.md §1.1) */
};

typedef struct synth_tensor {
    char name[64];
    int n_dims;
    int64_t ne[3]; /* unused dims are 1 */
    int type;      /* enum ts_type */
    enum synth_init init;
    float scale;
} synth_tensor;

/* A requested weight type: a plain type ("q4_0": every weight matrix in it) or one of llama.cpp's
 * mixes ("q4_K_M": per-tensor choices as llama-quant.cpp makes them). */
enum synth_mix { SYNTH_MIX_NONE, SYNTH_MIX_Q4_K_M, SYNTH_MIX_Q4_K_S, SYNTH_MIX_Q5_K_M };

typedef struct synth_type_request {
    int base_type; /* enum ts_type */
    enum synth_mix mix;
    uint32_t file_type; /* general.file_type (llama_ftype) */
} synth_type_request;

/* Parses "f16", "q4_K", "Q4_K_M" ... Returns 0 or -1 with err listing the accepted names. */
int synth_parse_type(const char *name, synth_type_request *out, ts_err *err);

/* Builds the tensor list (file order) with types chosen. *out is malloc'd. Returns 0 or -1. */
int synth_plan_tensors(const synth_model *m, const synth_type_request *req, synth_tensor **out, int *n_out, ts_err *err);

/* The llama3 rope frequency divisors for pair i of n_pairs (dense.md §1.1). */
float synth_llama3_rope_divisor(const synth_model *m, int i, int n_pairs);

#endif
