/* Constrained decoding for response_format json_object: a byte-level incremental JSON validator that
 * accepts exactly the prefixes of one JSON object (RFC 8259: strings of well-formed UTF-8 with their
 * escapes and proper surrogate pairs, numbers, literals, nesting), with optional whitespace around
 * tokens. Every accepted prefix can still be completed, so masking the tokens it rejects never leaves
 * a sequence with no way to finish. The state is a small value: copy it to try bytes without
 * committing them.
 *
 * Two limits keep a random or confused model from wandering forever: at most JSONC_MAX_DEPTH nested
 * containers (the top-level object counts), and at most JSONC_MAX_WS_RUN whitespace bytes in a row
 * outside strings. */
#ifndef TS_SERVER_JSON_CONSTRAINT_H
#define TS_SERVER_JSON_CONSTRAINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tiefsee.h"

#define JSONC_MAX_DEPTH 64
#define JSONC_MAX_WS_RUN 8

typedef struct json_constraint {
    uint64_t is_array; /* bit d-1: the container at depth d is an array (else an object) */
    uint8_t depth;     /* open containers */
    uint8_t mode;      /* lexer/parser state (json_constraint.c) */
    uint8_t ws_run;    /* whitespace bytes in a row outside strings */
    uint8_t count;     /* literal: bytes matched; \u escape: hex digits read; UTF-8: continuations left */
    uint8_t literal;   /* which of true/false/null */
    uint8_t next_lo, next_hi; /* allowed range of the next UTF-8 continuation byte */
    bool in_key;       /* the open string is an object key */
    bool want_low;     /* a \u escape must give a low surrogate (after a high one) */
    bool high_d;       /* the \u escape being read started with 'D' */
    uint8_t error;     /* why a byte was refused (json_constraint_error) */
} json_constraint;

void json_constraint_init(json_constraint *jc);
/* Feeds bytes. Returns true if everything fed so far is a prefix of one JSON object; after a false
 * the state stays rejected (every later feed fails too). */
bool json_constraint_feed(json_constraint *jc, const char *bytes, size_t n);
/* The object is closed (only whitespace may follow). */
bool json_constraint_complete(const json_constraint *jc);
/* Why the state was rejected ("" while it is not). */
const char *json_constraint_error(const json_constraint *jc);

/* ---- Masking a vocabulary ------------------------------------------------------------------------ */

/* Every token's bytes, precomputed once per model so a mask costs no tokenizer calls. */
typedef struct json_token_table {
    int n_vocab;
    uint32_t *offset;       /* n_vocab + 1: token t is bytes[offset[t] .. offset[t+1]) */
    unsigned char *bytes;
    uint8_t *flags;         /* JSONC_TOKEN_* */
} json_token_table;

enum {
    JSONC_TOKEN_EOG = 1,         /* end of generation */
    JSONC_TOKEN_EMPTY = 2,       /* no text (would let a sequence stall): never allowed */
    JSONC_TOKEN_STRING_SAFE = 4, /* whole UTF-8 characters, none of '"', '\\' or controls: inside a string
                                    (between characters) always accepted, leaving the state as it was */
};

int json_token_table_build(json_token_table *tt, const ts_model *m, char err[TS_ERR_LEN]);
void json_token_table_free(json_token_table *tt);

/* Sets logits[t] = -inf for every token that cannot follow the state: its bytes would be rejected,
 * it has no text, or it ends generation before the object is complete. Returns the number of
 * tokens left allowed. */
int json_constraint_mask(const json_constraint *jc, const json_token_table *tt, float *logits);
/* Whether token t may follow the state (the same rule as the mask). */
bool json_constraint_allows(const json_constraint *jc, const json_token_table *tt, ts_token t);

#endif
