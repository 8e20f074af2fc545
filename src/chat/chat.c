/* Conversation model, JSON load/save and reply splitting; the renderers are in render.c. */
#include "chat/chat.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* strdup that keeps NULL as NULL; *oom is set when a copy fails. */
static char *dup_or_null(const char *s, bool *oom) {
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

void ts_chat_init(ts_chat *c) { memset(c, 0, sizeof *c); }

static void free_message(ts_chat_message *m) {
    free(m->content);
    free(m->reasoning_content);
    for (int i = 0; i < m->n_tool_calls; i++) {
        free(m->tool_calls[i].type);
        free(m->tool_calls[i].name);
        free(m->tool_calls[i].arguments);
    }
    free(m->tool_calls);
}

void ts_chat_clear(ts_chat *c) {
    for (int i = 0; i < c->n; i++)
        free_message(&c->msgs[i]);
    c->n = 0;
}

void ts_chat_pop(ts_chat *c) {
    if (c->n > 0)
        free_message(&c->msgs[--c->n]);
}

void ts_chat_free(ts_chat *c) {
    ts_chat_clear(c);
    free(c->msgs);
    ts_chat_init(c);
}

int ts_chat_add(ts_chat *c, enum ts_chat_role role, const char *content, const char *reasoning) {
    if (c->n == c->cap) {
        if (c->cap > INT32_MAX / 2)
            return -1;
        int cap = c->cap ? c->cap * 2 : 8;
        ts_chat_message *bigger = realloc(c->msgs, (size_t)cap * sizeof *bigger);
        if (!bigger)
            return -1;
        c->msgs = bigger;
        c->cap = cap;
    }
    bool oom = false;
    ts_chat_message m = {.role = role, .content = dup_or_null(content, &oom),
                         .reasoning_content = dup_or_null(reasoning, &oom)};
    if (oom) {
        free_message(&m);
        return -1;
    }
    c->msgs[c->n++] = m;
    return 0;
}

int ts_chat_add_tool_call(ts_chat *c, const char *type, const char *name, const char *arguments) {
    if (c->n == 0 || c->msgs[c->n - 1].n_tool_calls >= 4096)
        return -1;
    ts_chat_message *m = &c->msgs[c->n - 1];
    ts_chat_tool_call *bigger = realloc(m->tool_calls, (size_t)(m->n_tool_calls + 1) * sizeof *bigger);
    if (!bigger)
        return -1;
    m->tool_calls = bigger;
    bool oom = false;
    ts_chat_tool_call tc = {dup_or_null(type ? type : "function", &oom), dup_or_null(name ? name : "", &oom),
                            dup_or_null(arguments ? arguments : "{}", &oom)};
    if (oom) {
        free(tc.type);
        free(tc.name);
        free(tc.arguments);
        return -1;
    }
    m->tool_calls[m->n_tool_calls++] = tc;
    return 0;
}

static const char *const role_names[] = {"system", "user", "assistant", "tool"};

static int role_from_name(const char *s) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, role_names[i]) == 0)
            return i;
    return -1;
}

/* A JSON member that must be a string or null/absent. Returns 0 (with *out NULL when absent). */
static int opt_string(json_t *obj, const char *key, const char **out) {
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *out = json_string_value(v);
    return 0;
}

static int message_from_json(ts_chat *c, json_t *jm, int index, char err[TS_ERR_LEN]) {
    const char *role = NULL, *content = NULL, *reasoning = NULL;
    if (!json_is_object(jm) || opt_string(jm, "role", &role) != 0 || !role) {
        snprintf(err, TS_ERR_LEN, "message %d: not an object with a string \"role\"", index);
        return -1;
    }
    int r = role_from_name(role);
    if (r < 0) {
        snprintf(err, TS_ERR_LEN, "message %d: unknown role \"%.40s\" (system, user, assistant, tool)", index, role);
        return -1;
    }
    if (opt_string(jm, "content", &content) != 0 || opt_string(jm, "reasoning_content", &reasoning) != 0) {
        snprintf(err, TS_ERR_LEN, "message %d: \"content\" and \"reasoning_content\" must be strings or null", index);
        return -1;
    }
    if (ts_chat_add(c, (enum ts_chat_role)r, content, reasoning) != 0) {
        snprintf(err, TS_ERR_LEN, "out of memory");
        return -1;
    }
    json_t *calls = json_object_get(jm, "tool_calls");
    if (!calls || json_is_null(calls))
        return 0;
    if (!json_is_array(calls)) {
        snprintf(err, TS_ERR_LEN, "message %d: \"tool_calls\" must be an array", index);
        return -1;
    }
    size_t k;
    json_t *call;
    json_array_foreach(calls, k, call) {
        json_t *fn = json_object_get(call, "function");
        const char *type = NULL, *name = NULL;
        json_t *args = json_object_get(fn, "arguments");
        if (!json_is_object(fn) || opt_string(call, "type", &type) != 0 || opt_string(fn, "name", &name) != 0 || !name ||
            (args && !json_is_string(args) && !json_is_object(args))) {
            snprintf(err, TS_ERR_LEN, "message %d: tool call %zu needs function.name and function.arguments", index, k);
            return -1;
        }
        /* Arguments as an object are kept as their JSON text, the form the templates concatenate. */
        char *dumped = NULL;
        if (json_is_object(args))
            dumped = json_dumps(args, JSON_PRESERVE_ORDER | JSON_COMPACT);
        int rc = ts_chat_add_tool_call(c, type, name, dumped ? dumped : (args ? json_string_value(args) : "{}"));
        free(dumped);
        if (rc != 0) {
            snprintf(err, TS_ERR_LEN, "out of memory");
            return -1;
        }
    }
    return 0;
}

int ts_chat_from_json_text(ts_chat *c, const char *text, size_t len, char err[TS_ERR_LEN]) {
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!root) {
        snprintf(err, TS_ERR_LEN, "invalid JSON at line %d: %s", jerr.line, jerr.text);
        return -1;
    }
    json_t *msgs = json_is_array(root) ? root : json_object_get(root, "messages");
    int rc = 0;
    if (!json_is_array(msgs)) {
        snprintf(err, TS_ERR_LEN, "expected {\"messages\": [...]} or an array of messages");
        rc = -1;
    }
    ts_chat_clear(c);
    size_t i;
    json_t *jm;
    if (rc == 0)
        json_array_foreach(msgs, i, jm) {
            if (i >= (size_t)INT32_MAX / 2 || message_from_json(c, jm, (int)i, err) != 0) {
                rc = -1;
                break;
            }
        }
    json_decref(root);
    return rc;
}

int ts_chat_load_file(ts_chat *c, const char *path, char err[TS_ERR_LEN]) {
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        snprintf(err, TS_ERR_LEN, "%s: %s", path, jerr.text);
        return -1;
    }
    char *text = json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(root);
    if (!text) {
        snprintf(err, TS_ERR_LEN, "out of memory");
        return -1;
    }
    int rc = ts_chat_from_json_text(c, text, strlen(text), err);
    free(text);
    return rc;
}

/* json_object_set_new that reports failure, so a half-built document is never written. */
static bool set_new(json_t *obj, const char *key, json_t *v) { return v && json_object_set_new(obj, key, v) == 0; }

int ts_chat_save_file(const ts_chat *c, const char *path, char err[TS_ERR_LEN]) {
    json_t *root = json_object(), *msgs = json_array();
    bool ok = root && msgs && json_object_set(root, "messages", msgs) == 0;
    for (int i = 0; ok && i < c->n; i++) {
        const ts_chat_message *m = &c->msgs[i];
        json_t *jm = json_object();
        ok = jm && json_array_append_new(msgs, jm) == 0 && set_new(jm, "role", json_string(role_names[m->role])) &&
             set_new(jm, "content", m->content ? json_string(m->content) : json_null());
        if (ok && m->reasoning_content)
            ok = set_new(jm, "reasoning_content", json_string(m->reasoning_content));
        if (ok && m->n_tool_calls > 0) {
            json_t *calls = json_array();
            ok = set_new(jm, "tool_calls", calls);
            for (int k = 0; ok && k < m->n_tool_calls; k++) {
                json_t *call = json_object(), *fn = json_object();
                ok = call && fn && json_array_append_new(calls, call) == 0 &&
                     set_new(call, "type", json_string(m->tool_calls[k].type)) && set_new(call, "function", fn) &&
                     set_new(fn, "name", json_string(m->tool_calls[k].name)) &&
                     set_new(fn, "arguments", json_string(m->tool_calls[k].arguments));
            }
        }
    }
    int rc = 0;
    if (!ok) {
        snprintf(err, TS_ERR_LEN, "cannot build the JSON (out of memory or text that is not UTF-8)");
        rc = -1;
    } else if (json_dump_file(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
        snprintf(err, TS_ERR_LEN, "cannot write %s: %s", path, strerror(errno));
        rc = -1;
    }
    json_decref(msgs);
    json_decref(root);
    return rc;
}

/* Copy of s[0..n) with leading and trailing ASCII whitespace removed. */
static char *trimmed_copy(const char *s, size_t n) {
    while (n > 0 && isspace((unsigned char)s[0])) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    return strndup(s, n);
}

int ts_chat_split_reasoning(const char *reply, bool started_in_think, char **reasoning, char **content) {
    static const char open_tag[] = "<think>", close_tag[] = "</think>";
    *reasoning = *content = NULL;
    const char *start = reply;
    while (isspace((unsigned char)*start))
        start++;
    bool opened = strncmp(start, open_tag, sizeof open_tag - 1) == 0;
    if (opened)
        start += sizeof open_tag - 1;
    const char *close = strstr(start, close_tag);
    if (close) {
        *reasoning = trimmed_copy(start, (size_t)(close - start));
        *content = trimmed_copy(close + sizeof close_tag - 1, strlen(close + sizeof close_tag - 1));
    } else if (started_in_think || opened) {
        *reasoning = trimmed_copy(start, strlen(start));
        *content = strdup("");
    } else {
        *content = strdup(reply); /* kept byte for byte, so the next prompt repeats what the cache holds */
    }
    if (!*content || (close && !*reasoning)) {
        free(*reasoning);
        free(*content);
        *reasoning = *content = NULL;
        return -1;
    }
    return 0;
}
