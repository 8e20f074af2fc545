/* Parsing an OpenAI completion request body (JSON text from the network) into what the server needs:
 * the conversation or prompt, sampling and limits, streaming, tools, logprobs and response format.
 * Pure: no model, no tokenizer, so a fuzzer can drive it with arbitrary bytes. */
#ifndef TS_SERVER_REQUEST_H
#define TS_SERVER_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "server/server.h"

/* An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}. */
typedef struct api_error {
    int status;
    char message[TS_ERR_LEN];
    const char *type, *param, *code;
} api_error;

void set_error(api_error *e, int status, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

typedef struct server_request {
    bool chat; /* /v1/chat/completions (else /v1/completions) */
    bool stream, include_usage;
    gen_params gen;
    /* chat */
    ts_chat conv;
    char *tools_json;     /* the "tools" array as JSON text when the model is to see and call tools, else NULL */
    bool parse_tool_calls; /* answer with tool_calls parsed from the reply (tools given, tool_choice not "none") */
    /* completions: the prompt is text or token ids (checked against n_vocab) */
    char *prompt_text;
    size_t prompt_len;
    ts_token *prompt_tokens;
    int n_prompt_tokens;
    int legacy_logprobs; /* /v1/completions "logprobs": N alternatives, -1 when not asked */
} server_request;

/* Parses a request body. request_id seeds the sampler when the request gives no seed. Returns 0, or
 * -1 with e filled (status 400 with the offending parameter, or 500 when out of memory); either way
 * server_request_free must be called. */
int server_request_parse(const char *body, size_t len, bool chat, int n_vocab, uint64_t request_id,
                         server_request *out, api_error *e);
void server_request_free(server_request *r);

#endif
