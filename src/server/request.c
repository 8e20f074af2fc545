/* The request parser of `tiefsee serve` (see request.h): every field is type- and range-checked and
 * named in the error, since the body comes from any client on the network. */
#include "server/request.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void set_error(api_error *e, int status, const char *param, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    /* Messages quote client text (a role, a JSON parser's view of bad input): keep them one line. */
    for (char *c = e->message; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = ' ';
    e->status = status;
    e->param = param;
    e->code = code;
    e->type = status == 401   ? "authentication_error"
              : status == 404 ? "not_found_error"
              : status == 429 ? "rate_limit_error"
              : status >= 500 ? "server_error"
                              : "invalid_request_error";
}

static int oom(api_error *e) {
    set_error(e, 500, NULL, NULL, "out of memory");
    return -1;
}

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

/* "logprobs" / "top_logprobs" of chat completions; "logprobs": N of the legacy completions. */
static int parse_logprobs(const json_t *body, bool chat, server_request *r, api_error *e) {
    const json_t *v = json_object_get(body, "logprobs");
    r->legacy_logprobs = -1;
    if (chat) {
        if (v && !json_is_null(v)) {
            if (!json_is_boolean(v)) {
                set_error(e, 400, "logprobs", "invalid_type", "'logprobs' must be a boolean");
                return -1;
            }
            r->gen.logprobs = json_is_true(v);
        }
        const json_t *top = json_object_get(body, "top_logprobs");
        if (top && !json_is_null(top)) {
            if (!json_is_integer(top) || json_integer_value(top) < 0 ||
                json_integer_value(top) > SERVER_MAX_TOP_LOGPROBS) {
                set_error(e, 400, "top_logprobs", "invalid_value", "'top_logprobs' must be an integer from 0 to %d",
                          SERVER_MAX_TOP_LOGPROBS);
                return -1;
            }
            if (!r->gen.logprobs && json_integer_value(top) > 0) {
                set_error(e, 400, "top_logprobs", "invalid_value", "'top_logprobs' needs 'logprobs': true");
                return -1;
            }
            r->gen.top_logprobs = (int)json_integer_value(top);
        }
        return 0;
    }
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > SERVER_MAX_TOP_LOGPROBS) {
            set_error(e, 400, "logprobs", "invalid_value", "'logprobs' must be an integer from 0 to %d",
                      SERVER_MAX_TOP_LOGPROBS);
            return -1;
        }
        r->legacy_logprobs = (int)json_integer_value(v);
        r->gen.logprobs = true;
        r->gen.top_logprobs = r->legacy_logprobs;
    }
    return 0;
}

static int parse_response_format(const json_t *body, server_request *r, api_error *e) {
    const json_t *v = json_object_get(body, "response_format");
    if (!v || json_is_null(v))
        return 0;
    const json_t *type = json_object_get(v, "type");
    if (!json_is_object(v) || !json_is_string(type)) {
        set_error(e, 400, "response_format", "invalid_type", "'response_format' must be {\"type\": \"text\" | \"json_object\"}");
        return -1;
    }
    if (strcmp(json_string_value(type), "json_object") == 0)
        r->gen.json_object = true;
    else if (strcmp(json_string_value(type), "text") != 0) {
        set_error(e, 400, "response_format", "invalid_value", "response_format type '%.64s' is not supported (text, json_object)",
                  json_string_value(type));
        return -1;
    }
    return 0;
}

static int parse_stream(const json_t *body, server_request *r, api_error *e) {
    const json_t *v = json_object_get(body, "stream");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            set_error(e, 400, "stream", "invalid_type", "'stream' must be a boolean");
            return -1;
        }
        r->stream = json_is_true(v);
    }
    v = json_object_get(body, "stream_options");
    if (v && !json_is_null(v)) {
        const json_t *u = json_is_object(v) ? json_object_get(v, "include_usage") : NULL;
        if (!json_is_object(v) || (u && !json_is_boolean(u))) {
            set_error(e, 400, "stream_options", "invalid_type", "'stream_options' must be {\"include_usage\": bool}");
            return -1;
        }
        r->include_usage = u && json_is_true(u);
    }
    return 0;
}

/* An assistant message's "tool_calls": [{"id", "type": "function", "function": {"name", "arguments"}}];
 * arguments a JSON string (or, leniently, an object, kept as its JSON text). */
static int parse_tool_calls(const json_t *calls, ts_chat *chat, size_t index, api_error *e) {
    if (!json_is_array(calls) || json_array_size(calls) > 1024) {
        set_error(e, 400, "messages", "invalid_type", "messages[%zu].tool_calls must be an array (at most 1024)", index);
        return -1;
    }
    size_t k;
    json_t *call;
    json_array_foreach(calls, k, call) {
        const json_t *type = json_object_get(call, "type"), *fn = json_object_get(call, "function");
        const json_t *name = json_object_get(fn, "name"), *args = json_object_get(fn, "arguments");
        if (!json_is_object(call) || (type && !json_is_string(type)) || !json_is_object(fn) || !json_is_string(name) ||
            json_string_length(name) == 0 || !(json_is_string(args) || json_is_object(args))) {
            set_error(e, 400, "messages", "invalid_value",
                      "messages[%zu].tool_calls[%zu] needs function.name (string) and function.arguments (JSON string)",
                      index, k);
            return -1;
        }
        char *dumped = json_is_object(args) ? json_dumps(args, JSON_COMPACT) : NULL;
        if (json_is_object(args) && !dumped)
            return oom(e);
        int rc = ts_chat_add_tool_call(chat, type ? json_string_value(type) : "function", json_string_value(name),
                                       dumped ? dumped : json_string_value(args));
        free(dumped);
        if (rc != 0)
            return oom(e);
    }
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
        const json_t *calls = json_object_get(m, "tool_calls");
        bool has_calls = calls && !json_is_null(calls) && !(json_is_array(calls) && json_array_size(calls) == 0);
        if (has_calls && r != TS_ROLE_ASSISTANT) {
            set_error(e, 400, "messages", "invalid_value", "messages[%zu]: only assistant messages carry tool_calls", i);
            return -1;
        }
        const json_t *call_id = json_object_get(m, "tool_call_id");
        if (call_id && !json_is_null(call_id) && !json_is_string(call_id)) {
            set_error(e, 400, "messages", "invalid_type", "messages[%zu].tool_call_id must be a string", i);
            return -1;
        }
        char *content = NULL, *reasoning = NULL;
        if (message_content(json_object_get(m, "content"), &content, e) != 0 ||
            message_content(json_object_get(m, "reasoning_content"), &reasoning, e) != 0) {
            free(content);
            return e->status ? -1 : oom(e);
        }
        /* The templates test `not content` to pick the tool-call layout: "" counts as none there. */
        if (has_calls && content && !content[0]) {
            free(content);
            content = NULL;
        }
        if (!has_calls && !content && r != TS_ROLE_ASSISTANT) {
            free(reasoning);
            set_error(e, 400, "messages", "invalid_value", "messages[%zu] has no content", i);
            return -1;
        }
        int rc = ts_chat_add(chat, (enum ts_chat_role)r, content, reasoning);
        free(content);
        free(reasoning);
        if (rc != 0)
            return oom(e);
        if (has_calls && parse_tool_calls(calls, chat, i, e) != 0)
            return -1;
    }
    return 0;
}

/* "tools": [{"type": "function", "function": {"name", "description"?, "parameters"?}}] and
 * "tool_choice": "auto" | "none" (or absent). */
static int parse_tools(const json_t *body, server_request *r, api_error *e) {
    const json_t *tools = json_object_get(body, "tools"), *choice = json_object_get(body, "tool_choice");
    bool none = false;
    if (choice && !json_is_null(choice)) {
        if (!json_is_string(choice) ||
            (strcmp(json_string_value(choice), "auto") != 0 && strcmp(json_string_value(choice), "none") != 0)) {
            set_error(e, 400, "tool_choice", "invalid_value", "'tool_choice' must be \"auto\" or \"none\"");
            return -1;
        }
        none = strcmp(json_string_value(choice), "none") == 0;
    }
    if (!tools || json_is_null(tools))
        return 0;
    if (!json_is_array(tools)) {
        set_error(e, 400, "tools", "invalid_type", "'tools' must be an array");
        return -1;
    }
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        const json_t *type = json_object_get(t, "type"), *fn = json_object_get(t, "function");
        const json_t *name = json_object_get(fn, "name"), *desc = json_object_get(fn, "description");
        const json_t *params = json_object_get(fn, "parameters");
        if (!json_is_object(t) || !json_is_string(type) || strcmp(json_string_value(type), "function") != 0 ||
            !json_is_object(fn) || !json_is_string(name) || json_string_length(name) == 0 ||
            (desc && !json_is_string(desc) && !json_is_null(desc)) || (params && !json_is_object(params))) {
            set_error(e, 400, "tools", "invalid_value",
                      "tools[%zu] must be {\"type\": \"function\", \"function\": {\"name\": string, \"description\"?: "
                      "string, \"parameters\"?: object}}",
                      i);
            return -1;
        }
    }
    if (none || json_array_size(tools) == 0)
        return 0;
    if (!(r->tools_json = json_dumps(tools, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        return oom(e);
    r->parse_tool_calls = true;
    return 0;
}

static int parse_prompt(const json_t *body, int n_vocab, server_request *r, api_error *e) {
    const json_t *p = json_object_get(body, "prompt");
    if (json_is_string(p)) {
        r->prompt_len = json_string_length(p);
        if (!(r->prompt_text = malloc(r->prompt_len + 1)))
            return oom(e);
        memcpy(r->prompt_text, json_string_value(p), r->prompt_len + 1);
        return 0;
    }
    if (json_is_array(p) && json_array_size(p) > 0 && json_array_size(p) <= (size_t)INT32_MAX) {
        if (!(r->prompt_tokens = malloc(json_array_size(p) * sizeof *r->prompt_tokens)))
            return oom(e);
        size_t i;
        json_t *t;
        json_array_foreach(p, i, t) {
            if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= n_vocab) {
                set_error(e, 400, "prompt", "invalid_value", "prompt[%zu] is not a token id below %d", i, n_vocab);
                return -1;
            }
            r->prompt_tokens[r->n_prompt_tokens++] = (ts_token)json_integer_value(t);
        }
        return 0;
    }
    set_error(e, 400, "prompt", "invalid_type", "'prompt' must be a string or a non-empty array of token ids");
    return -1;
}

int server_request_parse(const char *text, size_t len, bool chat, int n_vocab, uint64_t request_id,
                         server_request *r, api_error *e) {
    memset(r, 0, sizeof *r);
    r->chat = chat;
    r->legacy_logprobs = -1;
    r->gen.max_tokens = -1;
    ts_chat_init(&r->conv);
    json_error_t jerr;
    json_t *body = json_loadb(text ? text : "", text ? len : 0, JSON_REJECT_DUPLICATES, &jerr);
    if (!body || !json_is_object(body)) {
        if (body)
            set_error(e, 400, NULL, "invalid_json", "the request body must be a JSON object");
        else
            set_error(e, 400, NULL, "invalid_json", "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                      jerr.text);
        json_decref(body);
        return -1;
    }
    int rc = -1;
    if (parse_stream(body, r, e) != 0 || parse_gen_params(body, &r->gen, request_id, e) != 0 ||
        parse_logprobs(body, chat, r, e) != 0 || parse_response_format(body, r, e) != 0)
        goto done;
    if (chat ? parse_tools(body, r, e) != 0 || parse_messages(body, &r->conv, e) != 0
             : parse_prompt(body, n_vocab, r, e) != 0)
        goto done;
    rc = 0;
done:
    json_decref(body);
    return rc;
}

void server_request_free(server_request *r) {
    for (int i = 0; i < r->gen.n_stop; i++)
        free(r->gen.stop[i]);
    ts_chat_free(&r->conv);
    free(r->tools_json);
    free(r->prompt_text);
    free(r->prompt_tokens);
    memset(r, 0, sizeof *r);
}
