/* The HTTP side of `tiefsee serve`: libmicrohttpd (one thread per connection), request parsing with
 * jansson, the OpenAI routes and their error shapes, SSE streaming, API key checks and shutdown. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/server.h"

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
} server;

typedef struct conn_state {
    char *body;
    size_t len, cap;
    bool too_big;
    server *sv;
} conn_state;

typedef struct api_error {
    int status;
    char message[TS_ERR_LEN];
    const char *type, *param, *code;
} api_error;

static void set_error(api_error *e, int status, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void set_error(api_error *e, int status, const char *param, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    e->status = status;
    e->param = param;
    e->code = code;
    e->type = status == 401   ? "authentication_error"
              : status == 404 ? "not_found_error"
              : status == 429 ? "rate_limit_error"
              : status >= 500 ? "server_error"
                              : "invalid_request_error";
}

/* ---- responses ----------------------------------------------------------------------------------- */

static enum MHD_Result send_text(struct MHD_Connection *c, int status, const char *type, char *text,
                                 const char *retry_after) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, json_t *body) {
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

static enum MHD_Result send_error(struct MHD_Connection *c, const api_error *e) {
    json_t *body = error_json(e);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return MHD_NO;
    return send_text(c, e->status, "application/json", text, e->status == 429 ? "1" : NULL);
}

/* ---- request parsing ------------------------------------------------------------------------------ */

/* Fills g from the sampling/limit fields shared by both completion routes. */
static int parse_gen_params(const json_t *body, gen_params *g, uint64_t request_id, api_error *e) {
    const json_t *v;
    g->sampling = ts_sampler_default_params();
    /* Without "seed": a different one per request (overwritten when "seed" is given). */
    g->sampling.seed = ((uint64_t)time(NULL) << 32) ^ (request_id * 0x9E3779B97F4A7C15ull);
    const char *max_names[] = {"max_completion_tokens", "max_tokens"};
    for (int i = 0; i < 2; i++) {
        v = json_object_get(body, max_names[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > INT32_MAX) {
            set_error(e, 400, max_names[i], "invalid_value", "'%s' must be a positive integer", max_names[i]);
            return -1;
        }
        g->max_tokens = (int)json_integer_value(v);
        break;
    }
    if ((v = json_object_get(body, "temperature")) && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 2) {
            set_error(e, 400, "temperature", "invalid_value", "'temperature' must be a number from 0 to 2");
            return -1;
        }
        g->sampling.temp = (float)json_number_value(v);
    }
    if ((v = json_object_get(body, "top_p")) && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) {
            set_error(e, 400, "top_p", "invalid_value", "'top_p' must be a number from 0 to 1");
            return -1;
        }
        g->sampling.top_p = (float)json_number_value(v);
    }
    if ((v = json_object_get(body, "seed")) && !json_is_null(v)) {
        if (!json_is_integer(v)) {
            set_error(e, 400, "seed", "invalid_type", "'seed' must be an integer");
            return -1;
        }
        g->sampling.seed = (uint64_t)json_integer_value(v);
    }
    if ((v = json_object_get(body, "n")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) != 1) {
            set_error(e, 400, "n", "invalid_value", "only n = 1 is supported");
            return -1;
        }
    }
    if ((v = json_object_get(body, "stop")) && !json_is_null(v)) {
        if (json_is_string(v)) {
            if (json_string_length(v) > 0 && !(g->stop[g->n_stop++] = strdup(json_string_value(v))))
                goto oom;
        } else if (json_is_array(v) && json_array_size(v) <= SERVER_MAX_STOP) {
            size_t i;
            json_t *s;
            json_array_foreach(v, i, s) {
                if (!json_is_string(s)) {
                    set_error(e, 400, "stop", "invalid_type", "'stop' must be a string or an array of strings");
                    return -1;
                }
                if (json_string_length(s) > 0 && !(g->stop[g->n_stop++] = strdup(json_string_value(s))))
                    goto oom;
            }
        } else {
            set_error(e, 400, "stop", "invalid_type", "'stop' must be a string or an array of at most %d strings",
                      SERVER_MAX_STOP);
            return -1;
        }
    }
    return 0;
oom:
    g->n_stop--;
    set_error(e, 500, NULL, NULL, "out of memory");
    return -1;
}

typedef struct stream_opts {
    bool stream, include_usage;
} stream_opts;

static int parse_stream_opts(const json_t *body, stream_opts *so, api_error *e) {
    const json_t *v = json_object_get(body, "stream");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            set_error(e, 400, "stream", "invalid_type", "'stream' must be a boolean");
            return -1;
        }
        so->stream = json_is_true(v);
    }
    v = json_object_get(body, "stream_options");
    if (v && !json_is_null(v)) {
        const json_t *u = json_is_object(v) ? json_object_get(v, "include_usage") : NULL;
        if (!json_is_object(v) || (u && !json_is_boolean(u))) {
            set_error(e, 400, "stream_options", "invalid_type", "'stream_options' must be {\"include_usage\": bool}");
            return -1;
        }
        so->include_usage = u && json_is_true(u);
    }
    return 0;
}

/* A message's content: a string, null, or an array of {"type": "text", "text": ...} parts. Returns a
 * malloc'ed string (NULL for null content) or sets e. */
static int message_content(const json_t *content, char **out, api_error *e) {
    *out = NULL;
    if (!content || json_is_null(content))
        return 0;
    if (json_is_string(content))
        return (*out = strdup(json_string_value(content))) ? 0 : -1;
    if (!json_is_array(content)) {
        set_error(e, 400, "messages", "invalid_type", "message content must be a string or an array of text parts");
        return -1;
    }
    size_t total = 1, i;
    json_t *part;
    json_array_foreach(content, i, part) {
        const json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0 || !json_is_string(text)) {
            set_error(e, 400, "messages", "invalid_value", "only text content parts are supported");
            return -1;
        }
        total += json_string_length(text);
    }
    char *s = malloc(total), *p = s;
    if (!s)
        return -1;
    json_array_foreach(content, i, part) {
        const json_t *text = json_object_get(part, "text");
        memcpy(p, json_string_value(text), json_string_length(text));
        p += json_string_length(text);
    }
    *p = '\0';
    *out = s;
    return 0;
}

static int parse_messages(const json_t *body, ts_chat *chat, api_error *e) {
    const json_t *msgs = json_object_get(body, "messages");
    if (!json_is_array(msgs)) {
        set_error(e, 400, "messages", "invalid_type", "'messages' must be an array");
        return -1;
    }
    if (json_array_size(msgs) == 0) {
        set_error(e, 400, "messages", "invalid_value", "'messages' must not be empty");
        return -1;
    }
    static const struct {
        const char *name;
        enum ts_chat_role role;
    } roles[] = {{"system", TS_ROLE_SYSTEM}, {"developer", TS_ROLE_SYSTEM}, {"user", TS_ROLE_USER},
                 {"assistant", TS_ROLE_ASSISTANT}, {"tool", TS_ROLE_TOOL}};
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const json_t *role = json_object_get(m, "role");
        if (!json_is_object(m) || !json_is_string(role)) {
            set_error(e, 400, "messages", "invalid_type", "messages[%zu] must be an object with a string 'role'", i);
            return -1;
        }
        int r = -1;
        for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++)
            if (strcmp(json_string_value(role), roles[k].name) == 0)
                r = (int)roles[k].role;
        if (r < 0) {
            set_error(e, 400, "messages", "invalid_value",
                      "messages[%zu].role '%.64s' is not one of system, developer, user, assistant, tool", i,
                      json_string_value(role));
            return -1;
        }
        char *content = NULL, *reasoning = NULL;
        if (message_content(json_object_get(m, "content"), &content, e) != 0 ||
            message_content(json_object_get(m, "reasoning_content"), &reasoning, e) != 0) {
            free(content);
            if (!e->status)
                set_error(e, 500, NULL, NULL, "out of memory");
            return -1;
        }
        int rc = ts_chat_add(chat, (enum ts_chat_role)r, content, reasoning);
        free(content);
        free(reasoning);
        if (rc != 0) {
            set_error(e, 500, NULL, NULL, "out of memory");
            return -1;
        }
    }
    return 0;
}

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
    bool chat;
    stream_opts so;
    char id[64];
    long long created;
} gen_request;

static json_t *usage_json(int n_prompt, int n_generated) {
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", n_prompt, "completion_tokens", n_generated, "total_tokens",
                     n_prompt + n_generated);
}

static json_t *envelope(const gen_request *g, const char *object) {
    return json_pack("{s:s,s:s,s:I,s:s}", "id", g->id, "object", object, "created", (json_int_t)g->created, "model",
                     g->sv->cfg->alias);
}

/* Waits for the job to finish (non-streamed responses). */
static void wait_done(job *j) {
    pthread_mutex_lock(&j->mu);
    while (!j->done)
        pthread_cond_wait(&j->changed, &j->mu);
    pthread_mutex_unlock(&j->mu);
}

static enum MHD_Result respond_whole(struct MHD_Connection *c, gen_request *g) {
    job *j = g->job;
    wait_done(j);
    if (j->failed) {
        api_error e = {0};
        set_error(&e, 500, NULL, NULL, "generation failed: %s", j->error);
        return send_error(c, &e);
    }
    json_t *body = envelope(g, g->chat ? "chat.completion" : "text_completion");
    json_t *choice;
    if (g->chat) {
        json_t *msg = json_pack("{s:s}", "role", "assistant");
        if (g->sv->thinking) {
            think_splitter sp;
            text_out out = {0};
            think_splitter_init(&sp, true);
            think_splitter_feed(&sp, j->text ? j->text : "", j->len, true, &out);
            json_object_set_new(msg, "content", json_string(out.content ? out.content : ""));
            if (out.reasoning)
                json_object_set_new(msg, "reasoning_content", json_string(out.reasoning));
            think_splitter_free(&sp);
            text_out_free(&out);
        } else {
            json_object_set_new(msg, "content", json_string(j->text ? j->text : ""));
        }
        choice = json_pack("{s:i,s:o,s:n,s:s}", "index", 0, "message", msg, "logprobs", "finish_reason",
                           j->finish_reason);
    } else {
        choice = json_pack("{s:i,s:s,s:n,s:s}", "index", 0, "text", j->text ? j->text : "", "logprobs",
                           "finish_reason", j->finish_reason);
    }
    json_object_set_new(body, "choices", json_pack("[o]", choice));
    json_object_set_new(body, "usage", usage_json(j->n_prompt, j->n_generated));
    return send_json(c, 200, body);
}

typedef struct stream_state {
    gen_request g;
    think_splitter splitter;
    size_t consumed;  /* bytes of job->text already turned into events */
    char *out;        /* events not yet handed to libmicrohttpd */
    size_t out_len, out_pos, out_cap;
    bool role_sent, finished, done_sent;
} stream_state;

static int out_event(stream_state *st, json_t *event) {
    char *text = json_dumps(event, JSON_COMPACT);
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

static json_t *chunk(const stream_state *st, json_t *delta_or_text, const char *finish_reason) {
    json_t *ev = envelope(&st->g, st->g.chat ? "chat.completion.chunk" : "text_completion");
    json_t *choice = st->g.chat ? json_pack("{s:i,s:o}", "index", 0, "delta", delta_or_text)
                                : json_pack("{s:i,s:o,s:n}", "index", 0, "text", delta_or_text, "logprobs");
    json_object_set_new(choice, "finish_reason", finish_reason ? json_string(finish_reason) : json_null());
    json_object_set_new(ev, "choices", json_pack("[o]", choice));
    return ev;
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
    if (st->g.chat && !st->role_sent) {
        st->role_sent = true;
        if (out_event(st, chunk(st, json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL)) != 0)
            return -1;
    }
    if (st->g.chat && st->g.sv->thinking) {
        text_out out = {0};
        if (think_splitter_feed(&st->splitter, fresh, n, j->done, &out) != 0)
            return -1;
        int rc = 0;
        if (out.reasoning_len)
            rc |= out_event(st, chunk(st, json_pack("{s:s}", "reasoning_content", out.reasoning), NULL));
        if (out.content_len)
            rc |= out_event(st, chunk(st, json_pack("{s:s}", "content", out.content), NULL));
        text_out_free(&out);
        if (rc)
            return -1;
    } else if (n > 0) {
        json_t *piece = json_stringn(fresh, n);
        if (out_event(st, chunk(st, st->g.chat ? json_pack("{s:o}", "content", piece) : piece, NULL)) != 0)
            return -1;
    }
    if (j->done) {
        st->finished = true;
        if (out_event(st, chunk(st, st->g.chat ? json_object() : json_string(""), j->finish_reason)) != 0)
            return -1;
        if (st->g.so.include_usage) {
            json_t *ev = envelope(&st->g, st->g.chat ? "chat.completion.chunk" : "text_completion");
            json_object_set_new(ev, "choices", json_array());
            json_object_set_new(ev, "usage", usage_json(j->n_prompt, j->n_generated));
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
    free(st->out);
    free(st);
}

static enum MHD_Result respond_stream(struct MHD_Connection *c, gen_request *g) {
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
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* Parses a completion request, submits it and answers (whole or streamed). */
static enum MHD_Result handle_generation(server *sv, struct MHD_Connection *c, json_t *body, bool chat) {
    api_error e = {0};
    gen_request g = {.sv = sv, .chat = chat, .created = (long long)time(NULL)};
    uint64_t request_id = (uint64_t)atomic_fetch_add(&sv->next_id, 1);
    snprintf(g.id, sizeof g.id, "%s-%" PRIu64, chat ? "chatcmpl" : "cmpl", request_id);
    job *j = job_new();
    if (!j) {
        set_error(&e, 500, NULL, NULL, "out of memory");
        return send_error(c, &e);
    }
    if (parse_stream_opts(body, &g.so, &e) != 0 || parse_gen_params(body, &j->gen, request_id, &e) != 0)
        goto fail;
    if (chat) {
        ts_chat conv;
        ts_chat_init(&conv);
        if (parse_messages(body, &conv, &e) != 0) {
            ts_chat_free(&conv);
            goto fail;
        }
        ts_chat_render_opts ro = {.add_generation_prompt = true, .thinking = true, .bos = sv->bos, .eos = sv->eos};
        ts_chat_prompt prompt;
        char err[TS_ERR_LEN] = "";
        int rc = ts_chat_render(&conv, sv->format, &ro, &prompt);
        ts_chat_free(&conv);
        if (rc == 0) {
            pthread_mutex_lock(&sv->tokenizer_mu);
            rc = ts_chat_tokenize(sv->model, &prompt, &j->prompt, &j->n_prompt, err);
            pthread_mutex_unlock(&sv->tokenizer_mu);
        }
        ts_chat_prompt_free(&prompt);
        if (rc != 0) {
            set_error(&e, 400, "messages", NULL, "%s", err[0] ? err : "out of memory");
            goto fail;
        }
    } else {
        const json_t *p = json_object_get(body, "prompt");
        if (json_is_string(p)) {
            if (tokenize_text(sv, json_string_value(p), json_string_length(p), sv->info.add_bos, &j->prompt,
                              &j->n_prompt, &e) != 0)
                goto fail;
        } else if (json_is_array(p) && json_array_size(p) > 0 && json_array_size(p) <= (size_t)INT32_MAX) {
            j->prompt = malloc(json_array_size(p) * sizeof *j->prompt);
            if (!j->prompt) {
                set_error(&e, 500, NULL, NULL, "out of memory");
                goto fail;
            }
            size_t i;
            json_t *t;
            json_array_foreach(p, i, t) {
                if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= sv->info.n_vocab) {
                    set_error(&e, 400, "prompt", "invalid_value", "prompt[%zu] is not a token id below %d", i,
                              sv->info.n_vocab);
                    goto fail;
                }
                j->prompt[j->n_prompt++] = (ts_token)json_integer_value(t);
            }
        } else {
            set_error(&e, 400, "prompt", "invalid_type", "'prompt' must be a string or a non-empty array of token ids");
            goto fail;
        }
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
    g.job = j;
    if (g.so.stream)
        return respond_stream(c, &g); /* the stream owns the reference now */
    enum MHD_Result ret = respond_whole(c, &g);
    job_release(j);
    return ret;
fail:
    job_release(j);
    return send_error(c, &e);
}

/* ---- other routes --------------------------------------------------------------------------------- */

static enum MHD_Result handle_tokenize(server *sv, struct MHD_Connection *c, json_t *body) {
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

static enum MHD_Result handle_detokenize(server *sv, struct MHD_Connection *c, json_t *body) {
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
static bool authorized(const server *sv, struct MHD_Connection *c) {
    const char *key = sv->cfg->api_key;
    if (!key)
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    size_t kl = strlen(key), hl = strlen(h);
    unsigned diff = (unsigned)(kl != hl);
    for (size_t i = 0; i < kl; i++)
        diff |= (unsigned char)key[i] ^ (unsigned char)(i < hl ? h[i] : 0);
    return diff == 0;
}

static enum MHD_Result route(server *sv, struct MHD_Connection *c, const char *url, const char *method,
                             conn_state *cs) {
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
    static const char *const post_routes[] = {"/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"};
    int which = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(url, post_routes[i]) == 0)
            which = i;
    if (which < 0 || !post) {
        set_error(&e, which < 0 && strcmp(url, "/v1/models") != 0 && strcmp(url, "/health") != 0 ? 404 : 405, NULL,
                  NULL, "no route %s %.200s", method, url);
        return send_error(c, &e);
    }
    if (cs->too_big) {
        set_error(&e, 413, NULL, "request_too_large", "the request body exceeds %u bytes", SERVER_MAX_BODY_BYTES);
        return send_error(c, &e);
    }
    json_error_t jerr;
    json_t *body = json_loadb(cs->body ? cs->body : "", cs->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body || !json_is_object(body)) {
        if (body)
            set_error(&e, 400, NULL, "invalid_json", "the request body must be a JSON object");
        else
            set_error(&e, 400, NULL, "invalid_json", "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                      jerr.text);
        json_decref(body);
        return send_error(c, &e);
    }
    enum MHD_Result ret = which == 0   ? handle_generation(sv, c, body, true)
                          : which == 1 ? handle_generation(sv, c, body, false)
                          : which == 2 ? handle_tokenize(sv, c, body)
                                       : handle_detokenize(sv, c, body);
    json_decref(body);
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
    return route(sv, c, url, method, cs);
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

int server_run(const server_config *cfg) {
    server sv = {.cfg = cfg};
    char err[TS_ERR_LEN] = "";
    int status = 1;
    struct MHD_Daemon *d = NULL;
    pthread_mutex_init(&sv.tokenizer_mu, NULL);
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
    fprintf(stderr, "tiefsee serve: %s: finishing the requests in flight\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
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
    pthread_mutex_destroy(&sv.tokenizer_mu);
    return status;
}
