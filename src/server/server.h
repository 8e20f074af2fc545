/* `tiefsee serve`: an OpenAI-compatible HTTP server (libmicrohttpd) with continuous batching.
 *
 * Threads: libmicrohttpd runs one thread per connection; those threads parse and tokenize requests
 * and turn finished or streamed text into responses. One scheduler thread owns the ts_context: it
 * admits queued jobs into free sequence slots between steps and decodes one batch per step holding
 * the next token of every generating sequence plus prompt chunks of newly admitted ones. A job is
 * shared by its connection thread and the scheduler (reference counted); text flows from the
 * scheduler to the connection through the job under the job's mutex. */
#ifndef TS_SERVER_SERVER_H
#define TS_SERVER_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h"
#include "cli/weight_opts.h"
#include "tiefsee.h"

#define SERVER_MAX_STOP 4
#define SERVER_MAX_BODY_BYTES (8u << 20)

typedef struct server_config {
    const char *model_path, *host, *api_key, *alias;
    const char *chat_template; /* format name overriding the model's template, or NULL */
    int port; /* 0 = any free port (printed at start) */
    int n_slots, n_ctx, n_threads, queue_max;
    cli_weight_opts weights; /* --repack / --no-repack / --repack-cache (none: cli_prepare_weights's default) */
} server_config;

/* Runs until SIGTERM/SIGINT; returns the process exit status. */
int server_run(const server_config *cfg);

/* ---- Jobs: one generation request ------------------------------------------------------------- */

typedef struct gen_params {
    int max_tokens; /* -1 = until the context is full */
    ts_sampler_params sampling;
    char *stop[SERVER_MAX_STOP];
    int n_stop;
    bool logprobs;    /* record each generated token's log-probability (job->logprobs) */
    int top_logprobs; /* 0..SERVER_MAX_TOP_LOGPROBS most likely alternatives per token */
    bool json_object; /* response_format json_object: the scheduler constrains sampling so the reply is
                         exactly one JSON object (whitespace allowed around it), then ends */
} gen_params;

#define SERVER_MAX_TOP_LOGPROBS 20

/* One generated token's log-probability under the model's distribution before sampling settings
 * (log-softmax of the raw logits, as OpenAI reports), with the most likely alternatives. */
typedef struct token_logprob {
    ts_token token;
    float logprob;
    int n_top;
    ts_token top_token[SERVER_MAX_TOP_LOGPROBS];
    float top_logprob[SERVER_MAX_TOP_LOGPROBS];
} token_logprob;

typedef struct job {
    pthread_mutex_t mu;
    pthread_cond_t changed; /* signalled when text, done or cancelled change */
    int refs;
    /* input, fixed once submitted */
    ts_token *prompt;
    int n_prompt;
    gen_params gen;
    bool count_reasoning; /* the reply starts inside <think>: generated tokens up to and including the one
                             that completes "</think>" count as reasoning tokens */
    /* output, under mu: valid UTF-8 text (stop strings removed), growing */
    char *text;
    size_t len, cap;
    int n_generated;
    bool done, cancelled, failed;
    const char *finish_reason; /* "stop" or "length" */
    int n_cached;    /* prompt tokens reused from the prefix cache (set when the job is admitted) */
    int n_reasoning; /* generated tokens that were reasoning (see count_reasoning) */
    token_logprob *logprobs; /* one per generated token when gen.logprobs, in order (EOG not included) */
    int n_logprobs, cap_logprobs;
    char error[TS_ERR_LEN];
    struct job *next; /* queue link, under the scheduler's mutex */
} job;

job *job_new(void);
void job_release(job *j);  /* drops one reference; the last one frees */
void job_cancel(job *j);   /* the client went away: the scheduler frees its slot */
void gen_params_free(gen_params *g);

/* ---- Scheduler ----------------------------------------------------------------------------------- */

typedef struct scheduler scheduler;

int scheduler_start(ts_model *m, ts_context *ctx, int n_slots, int queue_max, scheduler **out, char err[TS_ERR_LEN]);
/* Hands a job to the scheduler (which takes its own reference). Returns 0, -1 if the queue is full,
 * -2 if the server is shutting down. */
int scheduler_submit(scheduler *s, job *j);
/* Counters for GET /metrics (totals since start; a consistent snapshot taken under the scheduler's lock). */
typedef struct scheduler_stats {
    int n_slots, slots_busy, queued;
    uint64_t jobs_admitted, jobs_finished;
    uint64_t prompt_tokens, prompt_tokens_cached, generated_tokens;
    uint64_t decode_steps;
    double decode_seconds;         /* wall time spent in ts_decode */
    double generated_tokens_per_s; /* over the last few seconds of generation (0 when idle) */
} scheduler_stats;
void scheduler_get_stats(scheduler *s, scheduler_stats *out);

/* Lets the jobs accepted so far finish, then stops the thread and frees the scheduler. */
void scheduler_drain_and_stop(scheduler *s);

/* ---- Text helpers ------------------------------------------------------------------------------- */

/* Appends s[0..n) to the buffer, replacing bytes that are not well-formed UTF-8 with U+FFFD.
 * Returns 0 or -1 (no memory). */
int text_append_valid_utf8(char **buf, size_t *len, size_t *cap, const char *s, size_t n);
/* Length of the longest suffix of text[0..n) that is a proper prefix of some stop string: those bytes
 * must be held back because the next token may complete the stop string. */
size_t text_stop_holdback(const char *text, size_t n, char *const *stop, int n_stop);

/* Splits streamed model text into reasoning ("<think>...</think>") and content as it arrives, with
 * the same result as ts_chat_split_reasoning on the whole text: a leading "<think>" is dropped and
 * whitespace around both parts is trimmed (trailing whitespace is held back until more text follows). */
typedef struct think_splitter {
    bool in_think, seen_any, reasoning_started, content_started;
    char *hold; /* bytes not yet classified: a possible tag prefix or trailing whitespace */
    size_t hold_len, hold_cap;
} think_splitter;

typedef struct text_out {
    char *reasoning, *content;
    size_t reasoning_len, content_len, reasoning_cap, content_cap;
} text_out;

void think_splitter_init(think_splitter *sp, bool starts_in_think);
/* Feeds text; appends classified bytes to out. final: no more text follows (trailing whitespace is
 * dropped). Returns 0 or -1 (no memory). */
int think_splitter_feed(think_splitter *sp, const char *s, size_t n, bool final, text_out *out);
void think_splitter_free(think_splitter *sp);
void text_out_free(text_out *o);

#endif
