/* The HTTP side of `tiefsee serve`: libmicrohttpd (one thread per connection), request parsing with
 * jansson, the OpenAI routes and their error shapes, SSE streaming, API key checks and shutdown. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "server/request.h"
#include "server/server.h"

/* Routes counted in GET /metrics (the last one: anything else). */
static const char *const metric_routes[] = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health",
                                            "/tokenize", "/detokenize", "/metrics", "/apply-template", "other"};
#define N_METRIC_ROUTES (sizeof metric_routes / sizeof metric_routes[0])
static const int metric_codes[] = {200, 400, 401, 404, 405, 413, 429, 500, 503, 0 /* any other */};
#define N_METRIC_CODES (sizeof metric_codes / sizeof metric_codes[0])

#define TOOL_CALLS_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c>"

typedef struct server {
    const server_config *cfg;
    ts_model *model;
    ts_model_info info;
    ts_context *ctx;
    scheduler *sched;
    enum ts_chat_format format;
    bool thinking; /* the format's replies open in <think> */
    char bos[256], eos[256];
    int n_ctx;
    pthread_mutex_t tokenizer_mu; /* the tokenizer keeps per-vocabulary scratch state */
    atomic_uint_fast64_t next_id;
    atomic_int requests_open; /* requests routed whose response is not yet fully sent */
    pthread_mutex_t metrics_mu;
    uint64_t requests_total[N_METRIC_ROUTES][N_METRIC_CODES]; /* under metrics_mu */
} server;

/* One request: its body as it arrives, and the status of the answer once queued (for /metrics). */
typedef struct conn_state {
    char *body;
    size_t len, cap;
    bool too_big;
    server *sv;
    struct MHD_Connection *conn;
    int status; /* 0 until a response is queued */
} conn_state;

/* ---- responses ----------------------------------------------------------------------------------- */

static enum MHD_Result send_text(conn_state *c, int status, const char *type, char *text,
                                 const char *retry_after) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result ret = MHD_queue_response(c->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    if (ret == MHD_YES)
        c->status = status;
    return ret;
}

static enum MHD_Result send_json(conn_state *c, int status, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return MHD_NO;
    return send_text(c, status, "application/json", text, NULL);
}

static json_t *error_json(const api_error *e) {
    return json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", e->message, "type", e->type, "param", e->param,
                     "code", e->code);
}

static enum MHD_Result send_error(conn_state *c, const api_error *e) {
    json_t *body = error_json(e);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return MHD_NO;
    return send_text(c, e->status, "application/json", text, e->status == 429 ? "1" : NULL);
}

/* ---- request parsing ------------------------------------------------------------------------------ */

static int check_prompt_fits(const server *sv, int n_prompt, const char *param, api_error *e) {
    if (n_prompt == 0) {
        set_error(e, 400, param, "invalid_value", "the prompt is empty");
        return -1;
    }
    if (n_prompt >= sv->n_ctx) {
        set_error(e, 400, param, "context_length_exceeded",
                  "the prompt has %d tokens but the context holds %d (it must leave room for the answer)", n_prompt,
                  sv->n_ctx);
        return -1;
    }
    return 0;
}

static int tokenize_text(server *sv, const char *text, size_t len, bool add_bos, ts_token **out, int *n_out,
                         api_error *e) {
    if (len > (size_t)INT32_MAX / 2) {
        set_error(e, 400, "prompt", "invalid_value", "the prompt is too long");
        return -1;
    }
    int cap = (int)len + 2; /* byte-level BPE: at most one token per byte, plus BOS */
    ts_token *toks = malloc((size_t)cap * sizeof *toks);
    if (!toks) {
        set_error(e, 500, NULL, NULL, "out of memory");
        return -1;
    }
    pthread_mutex_lock(&sv->tokenizer_mu);
    int n = ts_tokenize(sv->model, text, len, add_bos, toks, cap);
    pthread_mutex_unlock(&sv->tokenizer_mu);
    if (n < 0) {
        free(toks);
        set_error(e, 400, "prompt", "invalid_value", "the text could not be tokenized");
        return -1;
    }
    *out = toks;
    *n_out = n;
    return 0;
}

/* ---- generation responses ------------------------------------------------------------------------- */

typedef struct gen_request {
    server *sv;
    job *job;
    bool chat, stream, include_usage;
    bool thinking;         /* split the reply into reasoning and content (off for json_object replies) */
    bool parse_tool_calls; /* tools were offered: look for the model's tool-call block in the reply */
    int legacy_logprobs;   /* /v1/completions "logprobs": N, or -1 */
    char id[64];
    long long created;
} gen_request;

/* Usage with the details OpenAI clients read; called with the job finished (or its mutex held). */
static json_t *usage_json(const job *j) {
    json_t *u = json_pack("{s:i,s:i,s:i}", "prompt_tokens", j->n_prompt, "completion_tokens", j->n_generated,
                          "total_tokens", j->n_prompt + j->n_generated);
    json_object_set_new(u, "prompt_tokens_details", json_pack("{s:i}", "cached_tokens", j->n_cached));
    json_object_set_new(u, "completion_tokens_details", json_pack("{s:i}", "reasoning_tokens", j->n_reasoning));
    /* DeepSeek's own API reports the prefix cache this way too, and @ai-sdk/deepseek reads these. */
    json_object_set_new(u, "prompt_cache_hit_tokens", json_integer(j->n_cached));
    json_object_set_new(u, "prompt_cache_miss_tokens", json_integer(j->n_prompt - j->n_cached));
    return u;
}

static json_t *envelope(const gen_request *g, const char *object) {
    return json_pack("{s:s,s:s,s:I,s:s}", "id", g->id, "object", object, "created", (json_int_t)g->created, "model",
                     g->sv->cfg->alias);
}

/* JSON numbers cannot be infinite: a token the constraint or the model ruled out gets -9999, as
 * OpenAI reports such tokens. */
static json_t *logprob_number(float lp) { return json_real(isfinite(lp) ? (double)lp : -9999.0); }

/* A token as OpenAI describes it: its text (made valid UTF-8, since a token may be part of a
 * character) and its exact bytes. */
static void token_fields(const server *sv, ts_token t, json_t *obj, bool with_bytes) {
    char piece[1024], *text = NULL;
    size_t len = 0, cap = 0;
    int n = ts_token_bytes(sv->model, t, piece, sizeof piece);
    if (n < 0)
        n = 0;
    if (text_append_valid_utf8(&text, &len, &cap, piece, (size_t)n) == 0)
        json_object_set_new(obj, "token", json_stringn(text, len));
    free(text);
    if (with_bytes) {
        json_t *bytes = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(bytes, json_integer((unsigned char)piece[i]));
        json_object_set_new(obj, "bytes", bytes);
    }
}

/* choices[].logprobs of chat completions for generated tokens [from, to). */
static json_t *chat_logprobs_json(const server *sv, const job *j, int from, int to) {
    json_t *content = json_array();
    for (int i = from; i < to; i++) {
        const token_logprob *lp = &j->logprobs[i];
        json_t *entry = json_object(), *top = json_array();
        token_fields(sv, lp->token, entry, true);
        json_object_set_new(entry, "logprob", logprob_number(lp->logprob));
        for (int k = 0; k < lp->n_top && k < j->gen.top_logprobs && k < SERVER_MAX_TOP_LOGPROBS; k++) {
            json_t *alt = json_object();
            token_fields(sv, lp->top_token[k], alt, true);
            json_object_set_new(alt, "logprob", logprob_number(lp->top_logprob[k]));
            json_array_append_new(top, alt);
        }
        json_object_set_new(entry, "top_logprobs", top);
        json_array_append_new(content, entry);
    }
    return json_pack("{s:o}", "content", content);
}

/* The legacy /v1/completions shape: parallel arrays, alternatives as {token text: logprob}. */
static json_t *legacy_logprobs_json(const server *sv, const job *j, int from, int to, int n_top, size_t *offset) {
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offsets = json_array();
    for (int i = from; i < to; i++) {
        const token_logprob *lp = &j->logprobs[i];
        json_t *tok = json_object(), *top = json_object();
        token_fields(sv, lp->token, tok, false);
        const char *text = json_string_value(json_object_get(tok, "token"));
        json_array_append(tokens, json_object_get(tok, "token"));
        json_array_append_new(lps, logprob_number(lp->logprob));
        json_array_append_new(offsets, json_integer((json_int_t)*offset));
        *offset += text ? strlen(text) : 0;
        for (int k = 0; k < lp->n_top && k < n_top && k < SERVER_MAX_TOP_LOGPROBS; k++) {
            json_t *alt = json_object();
            token_fields(sv, lp->top_token[k], alt, false);
            const char *alt_text = json_string_value(json_object_get(alt, "token"));
            if (alt_text && !json_object_get(top, alt_text))
                json_object_set_new(top, alt_text, logprob_number(lp->top_logprob[k]));
            json_decref(alt);
        }
        json_array_append_new(tops, top);
        json_decref(tok);
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops, "text_offset",
                     offsets);
}

/* OpenAI's tool_calls entries for parsed calls; ids are unique per response. */
static json_t *tool_calls_json(const gen_request *g, const ts_chat_tool_reply *reply, bool with_index) {
    json_t *calls = json_array();
    const char *serial = strchr(g->id, '-');
    for (int k = 0; k < reply->n_calls; k++) {
        char id[96];
        snprintf(id, sizeof id, "call_%s_%d", serial ? serial + 1 : g->id, k);
        json_t *call = json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id, "type", "function", "function", "name",
                                 reply->calls[k].name, "arguments", reply->calls[k].arguments);
        if (with_index)
            json_object_set_new(call, "index", json_integer(k));
        json_array_append_new(calls, call);
    }
    return calls;
}

/* Waits for the job to finish (non-streamed responses). */
static void wait_done(job *j) {
    pthread_mutex_lock(&j->mu);
    while (!j->done)
        pthread_cond_wait(&j->changed, &j->mu);
    pthread_mutex_unlock(&j->mu);
}

static enum MHD_Result respond_whole(conn_state *c, gen_request *g) {
    job *j = g->job;
    wait_done(j);
    if (j->failed) {
        api_error e = {0};
        set_error(&e, 500, NULL, NULL, "generation failed: %s", j->error);
        return send_error(c, &e);
    }
    json_t *body = envelope(g, g->chat ? "chat.completion" : "text_completion");
    json_t *choice;
    const char *finish_reason = j->finish_reason;
    if (g->chat) {
        json_t *msg = json_pack("{s:s}", "role", "assistant");
        text_out out = {0};
        if (g->thinking) {
            think_splitter sp;
            think_splitter_init(&sp, true);
            think_splitter_feed(&sp, j->text ? j->text : "", j->len, true, &out);
            think_splitter_free(&sp);
        } else {
            out.content = j->text ? strndup(j->text, j->len) : NULL;
            out.content_len = out.content ? j->len : 0;
        }
        ts_chat_tool_reply reply = {0};
        if (g->parse_tool_calls && ts_chat_parse_tool_calls(out.content, out.content_len, &reply) == 0 &&
            reply.n_calls > 0) {
            json_object_set_new(msg, "content", reply.content[0] ? json_string(reply.content) : json_null());
            json_object_set_new(msg, "tool_calls", tool_calls_json(g, &reply, false));
            finish_reason = "tool_calls";
        } else {
            json_object_set_new(msg, "content", json_string(out.content ? out.content : ""));
        }
        ts_chat_tool_reply_free(&reply);
        if (out.reasoning)
            json_object_set_new(msg, "reasoning_content", json_string(out.reasoning));
        text_out_free(&out);
        choice = json_pack("{s:i,s:o,s:o,s:s}", "index", 0, "message", msg, "logprobs",
                           j->gen.logprobs ? chat_logprobs_json(g->sv, j, 0, j->n_logprobs) : json_null(),
                           "finish_reason", finish_reason);
    } else {
        size_t offset = 0;
        choice = json_pack("{s:i,s:s,s:o,s:s}", "index", 0, "text", j->text ? j->text : "", "logprobs",
                           g->legacy_logprobs >= 0
                               ? legacy_logprobs_json(g->sv, j, 0, j->n_logprobs, g->legacy_logprobs, &offset)
                               : json_null(),
                           "finish_reason", finish_reason);
    }
    json_object_set_new(body, "choices", json_pack("[o]", choice));
    json_object_set_new(body, "usage", usage_json(j));
    return send_json(c, 200, body);
}

typedef struct stream_state {
    gen_request g;
    think_splitter splitter;
    size_t consumed;  /* bytes of job->text already turned into events */
    int logprobs_sent; /* entries of job->logprobs already sent */
    size_t text_offset; /* legacy logprobs: bytes of token text so far */
    char *out;        /* events not yet handed to libmicrohttpd */
    size_t out_len, out_pos, out_cap;
    /* content held back while it may be (or is) a tool-call block */
    char *held;
    size_t held_len, held_cap;
    bool in_tool_calls, role_sent, finished, done_sent;
} stream_state;

static int out_event(stream_state *st, json_t *event) {
    char *text = event ? json_dumps(event, JSON_COMPACT) : NULL;
    json_decref(event);
    if (!text)
        return -1;
    size_t n = strlen(text), need = st->out_len + n + 9;
    if (need > st->out_cap) {
        char *bigger = realloc(st->out, need * 2);
        if (!bigger) {
            free(text);
            return -1;
        }
        st->out = bigger;
        st->out_cap = need * 2;
    }
    st->out_len += (size_t)sprintf(st->out + st->out_len, "data: %s\n\n", text);
    free(text);
    return 0;
}

/* One chunk; *logprobs (if any) rides on it and is consumed. */
static json_t *chunk(const stream_state *st, json_t *delta_or_text, const char *finish_reason, json_t **logprobs) {
    json_t *ev = envelope(&st->g, st->g.chat ? "chat.completion.chunk" : "text_completion");
    json_t *choice = st->g.chat ? json_pack("{s:i,s:o}", "index", 0, "delta", delta_or_text)
                                : json_pack("{s:i,s:o}", "index", 0, "text", delta_or_text);
    json_object_set_new(choice, "logprobs", logprobs && *logprobs ? *logprobs : json_null());
    if (logprobs)
        *logprobs = NULL;
    json_object_set_new(choice, "finish_reason", finish_reason ? json_string(finish_reason) : json_null());
    json_object_set_new(ev, "choices", json_pack("[o]", choice));
    return ev;
}

static int emit_content(stream_state *st, const char *s, size_t n, json_t **lp) {
    if (n == 0)
        return 0;
    json_t *piece = json_stringn(s, n);
    return out_event(st, chunk(st, st->g.chat ? json_pack("{s:o}", "content", piece) : piece, NULL, lp));
}

/* Content of a reply that may call tools: plain text streams as it comes; from the start of a
 * tool-call block (or what may become one) it is held back and parsed at the end. */
static int feed_content(stream_state *st, const char *s, size_t n, bool final, const char **finish_reason,
                        json_t **lp) {
    if (!st->g.parse_tool_calls)
        return emit_content(st, s, n, lp);
    if (text_append_valid_utf8(&st->held, &st->held_len, &st->held_cap, s, n) != 0)
        return -1;
    if (!st->in_tool_calls) {
        size_t k = ts_chat_tool_content_prefix(st->held ? st->held : "", st->held_len);
        st->in_tool_calls = memmem(st->held, st->held_len, TOOL_CALLS_BEGIN, strlen(TOOL_CALLS_BEGIN)) != NULL;
        if (emit_content(st, st->held, k, lp) != 0)
            return -1;
        memmove(st->held, st->held + k, st->held_len - k);
        st->held_len -= k;
    }
    if (!final)
        return 0;
    ts_chat_tool_reply reply = {0};
    if (st->held_len > 0 && ts_chat_parse_tool_calls(st->held, st->held_len, &reply) != 0)
        return -1;
    int rc = 0;
    if (reply.n_calls > 0) {
        if (reply.content[0])
            rc |= emit_content(st, reply.content, strlen(reply.content), lp);
        rc |= out_event(st, chunk(st, json_pack("{s:o}", "tool_calls", tool_calls_json(&st->g, &reply, true)), NULL,
                                  lp));
        *finish_reason = "tool_calls";
    } else {
        rc |= emit_content(st, st->held, st->held_len, lp);
    }
    st->held_len = 0;
    ts_chat_tool_reply_free(&reply);
    return rc;
}

/* Turns new text (and the end, once done) into SSE events. Called with the job's mutex held. */
static int stream_events(stream_state *st) {
    job *j = st->g.job;
    if (j->failed) {
        api_error e = {0};
        set_error(&e, 500, NULL, NULL, "generation failed: %s", j->error);
        int rc = out_event(st, error_json(&e));
        st->finished = true;
        return rc;
    }
    const char *fresh = j->text ? j->text + st->consumed : "";
    size_t n = j->len - st->consumed;
    st->consumed = j->len;
    const char *finish_reason = j->finish_reason;
    json_t *lp = NULL;
    if (j->gen.logprobs && j->n_logprobs > st->logprobs_sent) {
        lp = st->g.chat ? chat_logprobs_json(st->g.sv, j, st->logprobs_sent, j->n_logprobs)
                        : legacy_logprobs_json(st->g.sv, j, st->logprobs_sent, j->n_logprobs, st->g.legacy_logprobs,
                                               &st->text_offset);
        st->logprobs_sent = j->n_logprobs;
    }
    int rc = 0;
    if (st->g.chat && !st->role_sent) {
        st->role_sent = true;
        rc |= out_event(st, chunk(st, json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL, NULL));
    }
    if (st->g.chat && st->g.thinking) {
        text_out out = {0};
        if (think_splitter_feed(&st->splitter, fresh, n, j->done, &out) != 0) {
            json_decref(lp);
            return -1;
        }
        if (out.reasoning_len)
            rc |= out_event(st, chunk(st, json_pack("{s:s}", "reasoning_content", out.reasoning), NULL, &lp));
        rc |= feed_content(st, out.content ? out.content : "", out.content_len, j->done, &finish_reason, &lp);
        text_out_free(&out);
    } else if (st->g.chat) {
        rc |= feed_content(st, fresh, n, j->done, &finish_reason, &lp);
    } else {
        rc |= emit_content(st, fresh, n, &lp);
    }
    if (lp) /* the tokens of this step produced no visible text yet: their logprobs travel alone */
        rc |= out_event(st, chunk(st, st->g.chat ? json_object() : json_string(""), NULL, &lp));
    if (rc)
        return -1;
    if (j->done) {
        st->finished = true;
        if (out_event(st, chunk(st, st->g.chat ? json_object() : json_string(""), finish_reason, NULL)) != 0)
            return -1;
        if (st->g.include_usage) {
            json_t *ev = envelope(&st->g, st->g.chat ? "chat.completion.chunk" : "text_completion");
            json_object_set_new(ev, "choices", json_array());
            json_object_set_new(ev, "usage", usage_json(j));
            if (out_event(st, ev) != 0)
                return -1;
        }
    }
    return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_state *st = cls;
    while (st->out_pos == st->out_len) {
        st->out_pos = st->out_len = 0;
        if (st->finished) {
            static const char done[] = "data: [DONE]\n\n";
            if (st->done_sent)
                return MHD_CONTENT_READER_END_OF_STREAM;
            st->done_sent = true;
            size_t n = sizeof done - 1 < max ? sizeof done - 1 : max;
            memcpy(buf, done, n);
            return (ssize_t)n;
        }
        job *j = st->g.job;
        pthread_mutex_lock(&j->mu);
        while (!j->done && !j->failed && j->len == st->consumed)
            pthread_cond_wait(&j->changed, &j->mu);
        int rc = stream_events(st);
        pthread_mutex_unlock(&j->mu);
        if (rc != 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->out_len - st->out_pos < max ? st->out_len - st->out_pos : max;
    memcpy(buf, st->out + st->out_pos, n);
    st->out_pos += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    stream_state *st = cls;
    job *j = st->g.job;
    pthread_mutex_lock(&j->mu);
    bool done = j->done;
    pthread_mutex_unlock(&j->mu);
    if (!done) /* the client went away mid-stream: give the slot back */
        job_cancel(j);
    job_release(j);
    think_splitter_free(&st->splitter);
    free(st->held);
    free(st->out);
    free(st);
}

static enum MHD_Result respond_stream(conn_state *c, gen_request *g) {
    stream_state *st = calloc(1, sizeof *st);
    if (!st) {
        job_cancel(g->job);
        job_release(g->job);
        return MHD_NO;
    }
    st->g = *g;
    think_splitter_init(&st->splitter, true);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(c->conn, 200, r);
    MHD_destroy_response(r);
    if (ret == MHD_YES)
        c->status = 200;
    return ret;
}

/* Renders a chat request's conversation (with its tools) in the model's format. */
static int render_chat(server *sv, const server_request *rq, ts_chat_prompt *prompt, api_error *e) {
    ts_chat_render_opts ro = {.add_generation_prompt = true, .thinking = true, .bos = sv->bos, .eos = sv->eos,
                              .tools_json = rq->tools_json};
    if (ts_chat_render(&rq->conv, sv->format, &ro, prompt) != 0) {
        set_error(e, 500, NULL, NULL, "out of memory");
        return -1;
    }
    return 0;
}

/* Parses a completion request, submits it and answers (whole or streamed). */
static enum MHD_Result handle_generation(conn_state *c, bool chat) {
    server *sv = c->sv;
    api_error e = {0};
    gen_request g = {.sv = sv, .chat = chat, .created = (long long)time(NULL)};
    uint64_t request_id = (uint64_t)atomic_fetch_add(&sv->next_id, 1);
    snprintf(g.id, sizeof g.id, "%s-%" PRIu64, chat ? "chatcmpl" : "cmpl", request_id);
    server_request rq;
    job *j = NULL;
    if (server_request_parse(c->body, c->len, chat, sv->info.n_vocab, request_id, &rq, &e) != 0)
        goto fail;
    if (!(j = job_new())) {
        set_error(&e, 500, NULL, NULL, "out of memory");
        goto fail;
    }
    j->gen = rq.gen; /* the job owns the stop strings now */
    memset(&rq.gen, 0, sizeof rq.gen);
    g.stream = rq.stream;
    g.include_usage = rq.include_usage;
    g.parse_tool_calls = rq.parse_tool_calls;
    g.legacy_logprobs = rq.legacy_logprobs;
    if (chat) {
        ts_chat_prompt prompt;
        char err[TS_ERR_LEN] = "";
        if (render_chat(sv, &rq, &prompt, &e) != 0)
            goto fail;
        pthread_mutex_lock(&sv->tokenizer_mu);
        int rc = ts_chat_tokenize(sv->model, &prompt, &j->prompt, &j->n_prompt, err);
        pthread_mutex_unlock(&sv->tokenizer_mu);
        ts_chat_prompt_free(&prompt);
        if (rc != 0) {
            set_error(&e, 400, "messages", NULL, "%s", err[0] ? err : "out of memory");
            goto fail;
        }
        /* Replies that open inside <think> count their reasoning tokens for usage; a json_object reply
         * is constrained to JSON from its first token, so it has no reasoning part. */
        g.thinking = sv->thinking && !j->gen.json_object;
        j->count_reasoning = g.thinking;
    } else if (rq.prompt_text) {
        if (tokenize_text(sv, rq.prompt_text, rq.prompt_len, sv->info.add_bos, &j->prompt, &j->n_prompt, &e) != 0)
            goto fail;
    } else {
        j->prompt = rq.prompt_tokens;
        j->n_prompt = rq.n_prompt_tokens;
        rq.prompt_tokens = NULL;
    }
    if (check_prompt_fits(sv, j->n_prompt, chat ? "messages" : "prompt", &e) != 0)
        goto fail;
    int rc = scheduler_submit(sv->sched, j);
    if (rc == -1) {
        set_error(&e, 429, NULL, "queue_full", "the server is busy (queue full); retry shortly");
        goto fail;
    }
    if (rc == -2) {
        set_error(&e, 503, NULL, NULL, "the server is shutting down");
        goto fail;
    }
    server_request_free(&rq);
    g.job = j;
    if (g.stream)
        return respond_stream(c, &g); /* the stream owns the reference now */
    enum MHD_Result ret = respond_whole(c, &g);
    job_release(j);
    return ret;
fail:
    server_request_free(&rq);
    if (j)
        job_release(j);
    return send_error(c, &e);
}

/* POST /apply-template (as llama.cpp's server): the prompt a chat request renders to, so clients
 * (and the tests) can see how messages and tools reach the model. */
static enum MHD_Result handle_apply_template(conn_state *c) {
    api_error e = {0};
    server_request rq;
    ts_chat_prompt prompt;
    if (server_request_parse(c->body, c->len, true, c->sv->info.n_vocab, 0, &rq, &e) != 0 ||
        render_chat(c->sv, &rq, &prompt, &e) != 0) {
        server_request_free(&rq);
        return send_error(c, &e);
    }
    server_request_free(&rq);
    json_t *out = json_pack("{s:s%}", "prompt", prompt.text, prompt.len);
    ts_chat_prompt_free(&prompt);
    return send_json(c, 200, out);
}

/* ---- other routes --------------------------------------------------------------------------------- */

static enum MHD_Result handle_tokenize(server *sv, conn_state *c, json_t *body) {
    api_error e = {0};
    const json_t *content = json_object_get(body, "content"), *special = json_object_get(body, "add_special");
    if (!json_is_string(content) || (special && !json_is_boolean(special))) {
        set_error(&e, 400, "content", "invalid_type", "expected {\"content\": string, \"add_special\": bool}");
        return send_error(c, &e);
    }
    ts_token *toks;
    int n;
    if (tokenize_text(sv, json_string_value(content), json_string_length(content),
                      special && json_is_true(special) && sv->info.add_bos, &toks, &n, &e) != 0)
        return send_error(c, &e);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_integer(toks[i]));
    free(toks);
    return send_json(c, 200, json_pack("{s:o}", "tokens", arr));
}

static enum MHD_Result handle_detokenize(server *sv, conn_state *c, json_t *body) {
    api_error e = {0};
    const json_t *tokens = json_object_get(body, "tokens");
    if (!json_is_array(tokens)) {
        set_error(&e, 400, "tokens", "invalid_type", "expected {\"tokens\": [token ids]}");
        return send_error(c, &e);
    }
    char *raw = NULL, piece[1024];
    size_t len = 0, cap = 0, i;
    json_t *t;
    json_array_foreach(tokens, i, t) {
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= sv->info.n_vocab) {
            free(raw);
            set_error(&e, 400, "tokens", "invalid_value", "tokens[%zu] is not a token id below %d", i, sv->info.n_vocab);
            return send_error(c, &e);
        }
        int n = ts_token_bytes(sv->model, (ts_token)json_integer_value(t), piece, sizeof piece);
        if (n <= 0)
            continue;
        if (len + (size_t)n + 1 > cap) {
            cap = (len + (size_t)n + 1) * 2;
            char *bigger = realloc(raw, cap);
            if (!bigger) {
                free(raw);
                return MHD_NO;
            }
            raw = bigger;
        }
        memcpy(raw + len, piece, (size_t)n);
        len += (size_t)n;
    }
    char *text = NULL;
    size_t tlen = 0, tcap = 0;
    int rc = text_append_valid_utf8(&text, &tlen, &tcap, raw ? raw : "", len);
    free(raw);
    if (rc != 0)
        return MHD_NO;
    json_t *out = json_pack("{s:s}", "content", text ? text : "");
    free(text);
    return send_json(c, 200, out);
}

/* Compares the Authorization header with "Bearer KEY" in time that depends only on the key's length,
 * so response timing does not reveal how much of a guess was right. */
static bool authorized(const server *sv, const conn_state *c) {
    const char *key = sv->cfg->api_key;
    if (!key)
        return true;
    const char *h = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    size_t kl = strlen(key), hl = strlen(h);
    unsigned diff = (unsigned)(kl != hl);
    for (size_t i = 0; i < kl; i++)
        diff |= (unsigned char)key[i] ^ (unsigned char)(i < hl ? h[i] : 0);
    return diff == 0;
}

static void count_request(server *sv, const char *url, int status) {
    size_t r = N_METRIC_ROUTES - 1, k = N_METRIC_CODES - 1;
    for (size_t i = 0; i + 1 < N_METRIC_ROUTES; i++)
        if (strcmp(url, metric_routes[i]) == 0)
            r = i;
    for (size_t i = 0; i + 1 < N_METRIC_CODES; i++)
        if (status == metric_codes[i])
            k = i;
    pthread_mutex_lock(&sv->metrics_mu);
    sv->requests_total[r][k]++;
    pthread_mutex_unlock(&sv->metrics_mu);
}

/* Appends printf-formatted text; a failed allocation is remembered and reported at the end. */
typedef struct text_buf {
    char *s;
    size_t len, cap;
    bool oom;
} text_buf;

static void tb_printf(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(text_buf *b, const char *fmt, ...) {
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *bigger = realloc(b->s, cap);
        if (!bigger) {
            b->oom = true;
            return;
        }
        b->s = bigger;
        b->cap = cap;
    }
}

static void metric_header(text_buf *b, const char *name, const char *type, const char *help) {
    tb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* GET /metrics: Prometheus text exposition format 0.0.4. */
static enum MHD_Result handle_metrics(conn_state *c) {
    server *sv = c->sv;
    text_buf b = {0};
    metric_header(&b, "tiefsee_requests_total", "counter", "HTTP requests answered, by route and status code.");
    pthread_mutex_lock(&sv->metrics_mu);
    for (size_t r = 0; r < N_METRIC_ROUTES; r++)
        for (size_t k = 0; k < N_METRIC_CODES; k++)
            if (sv->requests_total[r][k]) {
                char code[16];
                if (metric_codes[k])
                    snprintf(code, sizeof code, "%d", metric_codes[k]);
                else
                    snprintf(code, sizeof code, "other");
                tb_printf(&b, "tiefsee_requests_total{route=\"%s\",code=\"%s\"} %" PRIu64 "\n", metric_routes[r], code,
                          sv->requests_total[r][k]);
            }
    pthread_mutex_unlock(&sv->metrics_mu);
    scheduler_stats st = {0};
    scheduler_get_stats(sv->sched, &st);
    const struct {
        const char *name, *type, *help;
        double value;
    } gauges[] = {
        {"tiefsee_slots", "gauge", "Sequence slots decoded together.", st.n_slots},
        {"tiefsee_slots_busy", "gauge", "Slots holding a request.", st.slots_busy},
        {"tiefsee_queue_length", "gauge", "Requests waiting for a slot.", st.queued},
        {"tiefsee_requests_admitted_total", "counter", "Requests admitted into a slot.", (double)st.jobs_admitted},
        {"tiefsee_requests_finished_total", "counter", "Requests finished.", (double)st.jobs_finished},
        {"tiefsee_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", (double)st.prompt_tokens},
        {"tiefsee_prompt_tokens_cached_total", "counter", "Prompt tokens reused from the prefix cache.",
         (double)st.prompt_tokens_cached},
        {"tiefsee_generated_tokens_total", "counter", "Tokens generated.", (double)st.generated_tokens},
        {"tiefsee_decode_steps_total", "counter", "Batched forward passes.", (double)st.decode_steps},
        {"tiefsee_decode_seconds_total", "counter", "Wall time spent in forward passes.", st.decode_seconds},
        {"tiefsee_generated_tokens_per_second", "gauge", "Generation throughput over the last seconds.",
         st.generated_tokens_per_s},
    };
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++) {
        metric_header(&b, gauges[i].name, gauges[i].type, gauges[i].help);
        tb_printf(&b, "%s %.17g\n", gauges[i].name, gauges[i].value);
    }
    if (b.oom) {
        free(b.s);
        return MHD_NO;
    }
    return send_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.s, NULL);
}

static enum MHD_Result route_inner(conn_state *c, const char *url, const char *method) {
    server *sv = c->sv;
    api_error e = {0};
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/health") == 0 && get)
        return send_json(c, 200, json_pack("{s:s}", "status", "ok"));
    if (!authorized(sv, c)) {
        set_error(&e, 401, NULL, "invalid_api_key", "missing or wrong API key (Authorization: Bearer KEY)");
        return send_error(c, &e);
    }
    if (strcmp(url, "/v1/models") == 0 && get) {
        json_t *model = json_pack("{s:s,s:s,s:I,s:s,s:{s:i,s:i}}", "id", sv->cfg->alias, "object", "model", "created",
                                  (json_int_t)time(NULL), "owned_by", "tiefsee", "meta", "n_ctx", sv->n_ctx, "n_vocab",
                                  sv->info.n_vocab);
        return send_json(c, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", model));
    }
    if (strcmp(url, "/metrics") == 0 && get)
        return handle_metrics(c);
    static const char *const post_routes[] = {"/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize",
                                              "/apply-template"};
    int which = -1;
    for (int i = 0; i < (int)(sizeof post_routes / sizeof post_routes[0]); i++)
        if (strcmp(url, post_routes[i]) == 0)
            which = i;
    if (which < 0 || !post) {
        bool get_route = strcmp(url, "/v1/models") == 0 || strcmp(url, "/health") == 0 || strcmp(url, "/metrics") == 0;
        set_error(&e, which < 0 && !get_route ? 404 : 405, NULL, NULL, "no route %s %.200s", method, url);
        return send_error(c, &e);
    }
    if (c->too_big) {
        set_error(&e, 413, NULL, "request_too_large", "the request body exceeds %u bytes", SERVER_MAX_BODY_BYTES);
        return send_error(c, &e);
    }
    if (which == 0 || which == 1)
        return handle_generation(c, which == 0);
    if (which == 4)
        return handle_apply_template(c);
    json_error_t jerr;
    json_t *body = json_loadb(c->body ? c->body : "", c->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body || !json_is_object(body)) {
        if (body)
            set_error(&e, 400, NULL, "invalid_json", "the request body must be a JSON object");
        else
            set_error(&e, 400, NULL, "invalid_json", "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                      jerr.text);
        json_decref(body);
        return send_error(c, &e);
    }
    enum MHD_Result ret = which == 2 ? handle_tokenize(sv, c, body) : handle_detokenize(sv, c, body);
    json_decref(body);
    return ret;
}

static enum MHD_Result route(conn_state *c, const char *url, const char *method) {
    enum MHD_Result ret = route_inner(c, url, method);
    if (c->status)
        count_request(c->sv, url, c->status);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)version;
    server *sv = cls;
    conn_state *cs = *con_cls;
    if (!cs) {
        if (!(cs = calloc(1, sizeof *cs)))
            return MHD_NO;
        cs->sv = sv;
        atomic_fetch_add(&sv->requests_open, 1);
        *con_cls = cs;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (cs->too_big || cs->len + n > SERVER_MAX_BODY_BYTES) {
            cs->too_big = true; /* keep reading (and dropping) so the 413 reaches the client */
            free(cs->body);
            cs->body = NULL;
            cs->len = cs->cap = 0;
            return MHD_YES;
        }
        if (cs->len + n + 1 > cs->cap) {
            size_t cap = (cs->len + n + 1) * 2;
            char *bigger = realloc(cs->body, cap);
            if (!bigger)
                return MHD_NO;
            cs->body = bigger;
            cs->cap = cap;
        }
        memcpy(cs->body + cs->len, upload_data, n);
        cs->len += n;
        return MHD_YES;
    }
    cs->conn = c;
    return route(cs, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode tc) {
    (void)cls;
    (void)c;
    (void)tc;
    conn_state *cs = *con_cls;
    if (cs) {
        atomic_fetch_sub(&cs->sv->requests_open, 1);
        free(cs->body);
        free(cs);
        *con_cls = NULL;
    }
}

/* ---- start and stop ------------------------------------------------------------------------------- */

static int token_text(const ts_model *m, ts_token t, char *buf, int cap) {
    int n = t >= 0 ? ts_token_bytes(m, t, buf, cap - 1) : -1;
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

/* Runs once the first SIGTERM/SIGINT has started the drain: a second SIGINT ends the process at once
 * with status 130 (as a shell reports death by SIGINT), for an operator who will not wait. The
 * signal stays blocked in every thread, so only this thread's sigtimedwait can take it. It polls
 * `stop` every 100 ms instead of being cancelled: cancelling a thread inside sigwait unwinds it
 * through a no-return path that ASan misreports as a stack overflow. */
static void *exit_on_second_sigint(void *arg) {
    atomic_bool *stop = arg;
    sigset_t sigint;
    sigemptyset(&sigint);
    sigaddset(&sigint, SIGINT);
    const struct timespec poll = {.tv_nsec = 100 * 1000 * 1000};
    while (!atomic_load(stop)) {
        if (sigtimedwait(&sigint, NULL, &poll) != SIGINT)
            continue; /* timeout or EINTR: look at `stop` again */
        static const char msg[] = "tiefsee serve: second SIGINT: exiting now\n";
        ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)ignored;
        _exit(130);
    }
    return NULL;
}

int server_run(const server_config *cfg) {
    server sv = {.cfg = cfg};
    char err[TS_ERR_LEN] = "";
    int status = 1;
    struct MHD_Daemon *d = NULL;
    pthread_mutex_init(&sv.tokenizer_mu, NULL);
    pthread_mutex_init(&sv.metrics_mu, NULL);
    pthread_t second_sigint_watcher;
    bool watching = false;
    atomic_bool stop_watching;
    atomic_init(&stop_watching, false);
    atomic_init(&sv.next_id, (uint64_t)time(NULL) * 1000);
    atomic_init(&sv.requests_open, 0);

    /* Signals are taken synchronously by this thread (sigwait) below; every thread started from here
     * on inherits the blocked mask, so none of them is interrupted. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (ts_model_load(cfg->model_path, &sv.model, err) != 0) {
        fprintf(stderr, "tiefsee serve: %s\n", err);
        return 1;
    }
    ts_model_get_info(sv.model, &sv.info);
    if (cli_prepare_weights(sv.model, &cfg->weights, cfg->n_threads, "tiefsee serve", true, NULL) != 0)
        goto done;
    size_t tlen;
    const char *tmpl = ts_chat_model_template(sv.model, &tlen);
    char *tmpl_copy = tmpl ? strndup(tmpl, tlen) : NULL;
    int f = cfg->chat_template ? ts_chat_format_from_name(cfg->chat_template)
                               : ts_chat_format_detect(tmpl_copy, sv.info.arch);
    free(tmpl_copy);
    if (f < 0) {
        f = TS_CHAT_DEEPSEEK_V3;
        fprintf(stderr, "tiefsee serve: warning: chat template not recognized; using %s\n",
                ts_chat_format_name((enum ts_chat_format)f));
    }
    sv.format = (enum ts_chat_format)f;
    sv.thinking = ts_chat_format_starts_thinking(sv.format, true);
    token_text(sv.model, sv.info.bos, sv.bos, sizeof sv.bos);
    token_text(sv.model, sv.info.eos, sv.eos, sizeof sv.eos);

    ts_context_params cp = ts_context_default_params();
    cp.n_ctx = cfg->n_ctx;
    cp.n_seq_max = cfg->n_slots;
    cp.n_threads = cfg->n_threads;
    if (ts_context_new(sv.model, &cp, &sv.ctx, err) != 0) {
        fprintf(stderr, "tiefsee serve: %s\n", err);
        goto done;
    }
    sv.n_ctx = ts_context_n_ctx(sv.ctx);
    if (scheduler_start(sv.model, sv.ctx, cfg->n_slots, cfg->queue_max, &sv.sched, err) != 0) {
        fprintf(stderr, "tiefsee serve: %s\n", err);
        goto done;
    }

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port)};
    if (inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1) {
        fprintf(stderr, "tiefsee serve: --host must be an IPv4 address, got '%s'\n", cfg->host);
        goto done;
    }
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                             MHD_USE_ERROR_LOG,
                         0, NULL, NULL, on_request, &sv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)600, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "tiefsee serve: cannot listen on %s:%d\n", cfg->host, cfg->port);
        goto done;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr, "tiefsee serve: %s (%s format), %d slots x %d positions; listening on http://%s:%u\n",
            cfg->alias, ts_chat_format_name(sv.format), cfg->n_slots, sv.n_ctx, cfg->host,
            di ? (unsigned)di->port : (unsigned)cfg->port);

    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "tiefsee serve: %s: finishing the requests in flight (a second SIGINT exits now)\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    watching = pthread_create(&second_sigint_watcher, NULL, exit_on_second_sigint, &stop_watching) == 0;
    MHD_socket listen_fd = MHD_quiesce_daemon(d); /* no new connections: the socket is ours to close */
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    scheduler_drain_and_stop(sv.sched);   /* every accepted job runs to its end */
    sv.sched = NULL;
    /* Stopping the daemon cuts connections, so first let the answers being sent reach their clients
     * (bounded, so a stalled client cannot keep the process alive). */
    for (int waited_ms = 0; atomic_load(&sv.requests_open) > 0 && waited_ms < 30000; waited_ms += 10)
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    MHD_stop_daemon(d);                   /* waits for the connections to send what they have */
    d = NULL;
    status = 0;
done:
    if (d)
        MHD_stop_daemon(d);
    if (sv.sched)
        scheduler_drain_and_stop(sv.sched);
    ts_context_free(sv.ctx);
    ts_model_free(sv.model);
    if (watching) {
        atomic_store(&stop_watching, true);
        pthread_join(second_sigint_watcher, NULL);
    }
    pthread_mutex_destroy(&sv.tokenizer_mu);
    pthread_mutex_destroy(&sv.metrics_mu);
    return status;
}
