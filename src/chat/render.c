/* The DeepSeek chat formats, each a transcription of its reference Jinja template (the official V3
 * template, llama.cpp's models/templates/ and the HF templates in llama.cpp's test-chat-template.cpp;
 * tests/chat/render_ref.mjs names each), including their quirks: the models were
 * trained on these exact bytes, and llama.cpp renders them so, so any "cleanup" would change the prompt.
 * Quirks kept on purpose: V3/R1's `is_first` and `is_output_first` are never reset between messages;
 * R1 keeps only the LAST system message; R1-Distill-Qwen renders both the tool calls and the content
 * of an assistant message that has both; V3.1 keeps the text after the FIRST "</think>". */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "chat/ds_markers.h"

static const char coder_default_system[] =
    "You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, and you "
    "only answer questions related to computer science. For politically sensitive questions, security and privacy "
    "issues, and other non-computer science questions, you will refuse to answer\n";

static const char *const format_names[TS_CHAT_FORMAT_COUNT] = {
    "deepseek-v3", "deepseek-r1", "deepseek-v3.1", "r1-distill-qwen", "r1-distill-llama", "deepseek-llm", "deepseek-coder",
};

const char *ts_chat_format_name(enum ts_chat_format f) {
    return (unsigned)f < TS_CHAT_FORMAT_COUNT ? format_names[f] : "unknown";
}

int ts_chat_format_from_name(const char *name) {
    for (int i = 0; i < TS_CHAT_FORMAT_COUNT; i++)
        if (strcmp(name, format_names[i]) == 0)
            return i;
    return -1;
}

int ts_chat_format_detect(const char *t, const char *arch) {
    if (!t || !*t)
        return -1;
    /* V3.2 / V4 use DSML tool blocks, a format not implemented here: let the caller fall back. */
    if (strstr(t, "DSML"))
        return -1;
    bool ds_markers = strstr(t, U_TAG) && strstr(t, A_TAG);
    if (ds_markers && strstr(t, "is_last_user"))
        return TS_CHAT_DEEPSEEK_V31;
    if (ds_markers && strstr(t, "<think>")) {
        if (strstr(t, "enable_thinking") || (arch && strcmp(arch, "qwen2") == 0))
            return TS_CHAT_R1_DISTILL_QWEN;
        if (arch && strcmp(arch, "llama") == 0)
            return TS_CHAT_R1_DISTILL_LLAMA;
        return TS_CHAT_DEEPSEEK_R1;
    }
    if (ds_markers)
        return TS_CHAT_DEEPSEEK_V3;
    if (strstr(t, "### Instruction:") && strstr(t, "<|EOT|>"))
        return TS_CHAT_DEEPSEEK_CODER;
    if (strstr(t, "'Assistant: ' + message['content'] + eos_token") || (strstr(t, "User: ") && strstr(t, "Assistant:")))
        return TS_CHAT_DEEPSEEK_LLM;
    return -1;
}

bool ts_chat_format_starts_thinking(enum ts_chat_format f, bool thinking) {
    switch (f) {
    case TS_CHAT_DEEPSEEK_R1:
    case TS_CHAT_R1_DISTILL_LLAMA:
        return true;
    case TS_CHAT_R1_DISTILL_QWEN:
    case TS_CHAT_DEEPSEEK_V31:
        return thinking;
    default:
        return false;
    }
}

void ts_chat_prompt_free(ts_chat_prompt *p) {
    free(p->text);
    free(p->spans);
    memset(p, 0, sizeof *p);
}

/* Appends bytes, merging with the previous span when it has the same origin. */
static void put(ts_chat_prompt *p, const char *s, size_t n, bool from_template) {
    if (p->oom || n == 0)
        return;
    if (n > SIZE_MAX / 4 - p->len) {
        p->oom = true;
        return;
    }
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 256;
        while (cap < p->len + n + 1)
            cap *= 2;
        char *bigger = realloc(p->text, cap);
        if (!bigger) {
            p->oom = true;
            return;
        }
        p->text = bigger;
        p->cap = cap;
    }
    if (p->n_spans > 0 && p->spans[p->n_spans - 1].from_template == from_template) {
        p->spans[p->n_spans - 1].len += n;
    } else {
        if (p->n_spans == p->cap_spans) {
            if (p->cap_spans > INT32_MAX / 2) {
                p->oom = true;
                return;
            }
            int cap = p->cap_spans ? p->cap_spans * 2 : 16;
            ts_chat_span *bigger = realloc(p->spans, (size_t)cap * sizeof *bigger);
            if (!bigger) {
                p->oom = true;
                return;
            }
            p->spans = bigger;
            p->cap_spans = cap;
        }
        p->spans[p->n_spans++] = (ts_chat_span){p->len, n, from_template};
    }
    memcpy(p->text + p->len, s, n);
    p->len += n;
    p->text[p->len] = '\0';
}

static void tpl(ts_chat_prompt *p, const char *s) { put(p, s, strlen(s), true); }
static void txt(ts_chat_prompt *p, const char *s) {
    if (s)
        put(p, s, strlen(s), false);
}

/* String escaping as JavaScript's JSON.stringify (the reference renderer is @huggingface/jinja). */
static void js_string(ts_chat_prompt *p, const char *s, size_t n) {
    txt(p, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        const char *e = NULL;
        switch (ch) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        default:
            if (ch < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", ch);
                e = esc;
            }
        }
        if (e)
            txt(p, e);
        else
            put(p, (const char *)&ch, 1, false);
    }
    txt(p, "\"");
}

/* Jinja `tojson` of a value: separators ", " and ": ", keys in document order, numbers as JavaScript
 * prints them (integral values without a fraction). */
static void js_json(ts_chat_prompt *p, json_t *v, int depth) {
    char num[64];
    if (depth > 64) { /* nesting this deep is not a tool call: keep the output bounded */
        txt(p, "null");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        bool first = true;
        txt(p, "{");
        json_object_foreach(v, key, val) {
            if (!first)
                txt(p, ", ");
            first = false;
            js_string(p, key, strlen(key));
            txt(p, ": ");
            js_json(p, val, depth + 1);
        }
        txt(p, "}");
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        txt(p, "[");
        json_array_foreach(v, i, val) {
            if (i)
                txt(p, ", ");
            js_json(p, val, depth + 1);
        }
        txt(p, "]");
        break;
    }
    case JSON_STRING: js_string(p, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        txt(p, num);
        break;
    case JSON_REAL: {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 1e15)
            snprintf(num, sizeof num, "%.0f", d);
        else /* shortest text that reads back as the same double, like JavaScript */
            for (int prec = 1; prec <= 17; prec++) {
                snprintf(num, sizeof num, "%.*g", prec, d);
                if (strtod(num, NULL) == d)
                    break;
            }
        txt(p, num);
        break;
    }
    case JSON_TRUE: txt(p, "true"); break;
    case JSON_FALSE: txt(p, "false"); break;
    default: txt(p, "null"); break;
    }
}

/* `arguments | tojson`: llama.cpp hands these templates the arguments as a parsed object; text that is
 * not JSON stays a string. */
static void args_tojson(ts_chat_prompt *p, const char *args) {
    json_t *v = json_loads(args, JSON_DECODE_ANY, NULL);
    if (v)
        js_json(p, v, 0);
    else
        js_string(p, args, strlen(args));
    json_decref(v);
}

/* Python's json.dumps(indent=2) as Jinja's `tojson(indent=2)` writes it: one member per line,
 * separators "," and ": ", empty containers as {} and []. */
static void js_json_indented(ts_chat_prompt *p, json_t *v, int depth) {
    if (depth > 64 || (!json_is_object(v) && !json_is_array(v)) || json_object_size(v) + json_array_size(v) == 0) {
        js_json(p, v, depth);
        return;
    }
    char pad[2 * 66 + 2];
    int n_pad = 2 * (depth + 1);
    pad[0] = '\n';
    memset(pad + 1, ' ', (size_t)n_pad);
    pad[n_pad + 1] = '\0';
    bool first = true;
    txt(p, json_is_object(v) ? "{" : "[");
    if (json_is_object(v)) {
        const char *key;
        json_t *val;
        json_object_foreach(v, key, val) {
            txt(p, first ? pad : ",");
            if (!first)
                txt(p, pad);
            first = false;
            js_string(p, key, strlen(key));
            txt(p, ": ");
            js_json_indented(p, val, depth + 1);
        }
    } else {
        size_t i;
        json_t *val;
        json_array_foreach(v, i, val) {
            txt(p, first ? pad : ",");
            if (!first)
                txt(p, pad);
            first = false;
            js_json_indented(p, val, depth + 1);
        }
    }
    pad[n_pad - 1] = '\0'; /* the closer sits one level out */
    txt(p, pad);
    txt(p, json_is_object(v) ? "}" : "]");
}

/* The tool definitions' "function" objects, or NULL when there are none. */
static json_t *tool_functions(const char *tools_json) {
    if (!tools_json)
        return NULL;
    json_t *tools = json_loads(tools_json, 0, NULL), *fns = json_array();
    size_t i;
    json_t *t;
    if (json_is_array(tools) && fns)
        json_array_foreach(tools, i, t) {
            json_t *fn = json_object_get(t, "function");
            if (json_is_object(fn))
                json_array_append(fns, fn);
        }
    json_decref(tools);
    if (fns && json_array_size(fns) == 0) {
        json_decref(fns);
        fns = NULL;
    }
    return fns;
}

/* llama.cpp's llama-cpp-deepseek-r1.jinja (V3, R1, the distills): the tools block right after BOS
 * (trim_blocks removes the newline after the `if`; the two newlines before `endif` stay). */
static void tools_block_r1(ts_chat_prompt *p, const char *tools_json) {
    json_t *fns = tool_functions(tools_json);
    if (!fns)
        return;
    tpl(p, "You can call any of the following function tools to satisfy the user's requests: ");
    js_json_indented(p, fns, 0);
    tpl(p, "\n\nExample function tool call syntax:\n\n" CALLS_BEGIN CALL_BEGIN "function" TOOL_SEP
           "example_function_name\n```json\n{\n  \"arg1\": \"some_value\"\n  ...\n}\n```\n" CALL_END CALLS_END "\n\n");
    json_decref(fns);
}

/* V3.1's model card: "{system prompt}\n\n## Tools ..." with one "### NAME" section per tool and the
 * parameters as json.dumps writes them. */
static void tools_block_v31(ts_chat_prompt *p, const char *tools_json, bool after_system) {
    json_t *fns = tool_functions(tools_json);
    if (!fns)
        return;
    if (after_system)
        tpl(p, "\n\n");
    tpl(p, "## Tools\nYou have access to the following tools:\n");
    size_t i;
    json_t *fn;
    json_array_foreach(fns, i, fn) {
        const json_t *name = json_object_get(fn, "name"), *desc = json_object_get(fn, "description");
        json_t *params = json_object_get(fn, "parameters");
        tpl(p, "\n### ");
        txt(p, json_is_string(name) ? json_string_value(name) : "");
        tpl(p, "\nDescription: ");
        txt(p, json_is_string(desc) ? json_string_value(desc) : "");
        tpl(p, "\n\nParameters: ");
        if (params)
            js_json(p, params, 0);
        else
            txt(p, "{}");
        tpl(p, "\n");
    }
    tpl(p, "\nIMPORTANT: ALWAYS adhere to this exact format for tool use:\n" CALLS_BEGIN CALL_BEGIN "tool_call_name" TOOL_SEP
           "tool_call_arguments" CALL_END "{{additional_tool_calls}}" CALLS_END "\n\nWhere:\n"
           "- `tool_call_name` must be an exact match to one of the available tools\n"
           "- `tool_call_arguments` must be valid JSON that strictly follows the tool's Parameters Schema\n"
           "- For multiple tool calls, chain them directly without separators or spaces");
    json_decref(fns);
}

/* Text after the last (or first) "</think>", as Jinja's split('</think>')[-1] / split('</think>', 1)[1]. */
static const char *after_think(const char *s, bool last) {
    const char *hit = strstr(s, "</think>"), *found = NULL;
    while (hit) {
        found = hit;
        if (!last)
            break;
        hit = strstr(hit + 8, "</think>");
    }
    return found ? found + 8 : s;
}

static void system_prompt(ts_chat_prompt *p, const ts_chat *c, bool join_all) {
    bool first = true;
    const char *last = NULL;
    for (int i = 0; i < c->n; i++) {
        if (c->msgs[i].role != TS_ROLE_SYSTEM)
            continue;
        if (!join_all) {
            last = c->msgs[i].content;
            continue;
        }
        if (!first)
            tpl(p, "\n\n");
        first = false;
        txt(p, c->msgs[i].content);
    }
    if (!join_all)
        txt(p, last);
}

static void tool_outputs(ts_chat_prompt *p, const ts_chat_message *m, bool *output_first) {
    tpl(p, *output_first ? OUTPUTS_BEGIN OUTPUT_BEGIN : "\n" OUTPUT_BEGIN);
    *output_first = false;
    txt(p, m->content);
    tpl(p, OUTPUT_END);
}

/* One fenced tool call of V3/R1: TYPE<sep>NAME\n```json\nARGS\n```<call end>. */
static void fenced_call(ts_chat_prompt *p, const ts_chat_tool_call *tc, bool as_json) {
    txt(p, tc->type);
    tpl(p, TOOL_SEP);
    txt(p, tc->name);
    tpl(p, "\n```json\n");
    if (as_json)
        args_tojson(p, tc->arguments);
    else
        txt(p, tc->arguments);
    tpl(p, "\n```" CALL_END);
}

/* V3, R1 and R1-Distill-Llama share one skeleton. */
static void render_v3_r1(ts_chat_prompt *p, const ts_chat *c, const ts_chat_render_opts *o, bool r1) {
    tpl(p, o->bos);
    tools_block_r1(p, o->tools_json);
    system_prompt(p, c, !r1);
    bool is_first = false, is_tool = false, output_first = true;
    for (int i = 0; i < c->n; i++) {
        const ts_chat_message *m = &c->msgs[i];
        if (m->role == TS_ROLE_USER) {
            is_tool = false;
            tpl(p, U_TAG);
            txt(p, m->content);
        } else if (m->role == TS_ROLE_ASSISTANT && !m->content) {
            is_tool = false;
            for (int k = 0; k < m->n_tool_calls; k++) {
                if (!is_first) {
                    tpl(p, A_TAG CALLS_BEGIN CALL_BEGIN);
                    fenced_call(p, &m->tool_calls[k], false);
                    is_first = true;
                } else {
                    tpl(p, "\n" CALL_BEGIN);
                    fenced_call(p, &m->tool_calls[k], false);
                    tpl(p, CALLS_END);
                    tpl(p, o->eos);
                }
            }
        } else if (m->role == TS_ROLE_ASSISTANT) {
            if (is_tool) {
                tpl(p, OUTPUTS_END);
                txt(p, m->content);
                is_tool = false;
            } else {
                tpl(p, A_TAG);
                txt(p, r1 ? after_think(m->content, true) : m->content);
            }
            tpl(p, o->eos);
        } else if (m->role == TS_ROLE_TOOL) {
            is_tool = true;
            tool_outputs(p, m, &output_first);
        }
    }
    if (is_tool)
        tpl(p, OUTPUTS_END);
    if (o->add_generation_prompt && !is_tool)
        tpl(p, r1 ? A_TAG "<think>\n" : A_TAG);
}

static void render_distill_qwen(ts_chat_prompt *p, const ts_chat *c, const ts_chat_render_opts *o) {
    tpl(p, o->bos);
    tools_block_r1(p, o->tools_json);
    system_prompt(p, c, false);
    bool is_first = false, is_tool = false, output_first = true;
    for (int i = 0; i < c->n; i++) {
        const ts_chat_message *m = &c->msgs[i];
        if (m->role == TS_ROLE_USER) {
            is_tool = false;
            tpl(p, U_TAG);
            txt(p, m->content);
        }
        if (m->role == TS_ROLE_ASSISTANT && m->n_tool_calls > 0) {
            is_tool = false;
            for (int k = 0; k < m->n_tool_calls; k++) {
                tpl(p, is_first ? "\n" CALL_BEGIN : A_TAG CALLS_BEGIN CALL_BEGIN);
                fenced_call(p, &m->tool_calls[k], true);
                is_first = true;
            }
            tpl(p, CALLS_END);
            tpl(p, o->eos);
        }
        if (m->role == TS_ROLE_ASSISTANT && m->content) {
            if (is_tool) {
                tpl(p, OUTPUTS_END);
                txt(p, m->content);
                is_tool = false;
            } else {
                tpl(p, A_TAG);
                txt(p, after_think(m->content, true));
            }
            tpl(p, o->eos);
        }
        if (m->role == TS_ROLE_TOOL) {
            is_tool = true;
            tool_outputs(p, m, &output_first);
        }
    }
    if (is_tool)
        tpl(p, OUTPUTS_END);
    if (o->add_generation_prompt && !is_tool)
        tpl(p, o->thinking ? A_TAG "<think>\n" : A_TAG "<think>\n</think>");
}

static void render_v31(ts_chat_prompt *p, const ts_chat *c, const ts_chat_render_opts *o) {
    tpl(p, o->bos);
    size_t before_system = p->len;
    system_prompt(p, c, true);
    tools_block_v31(p, o->tools_json, p->len > before_system);
    bool is_tool = false, is_last_user = false;
    for (int i = 0; i < c->n; i++) {
        const ts_chat_message *m = &c->msgs[i];
        if (m->role == TS_ROLE_USER) {
            is_tool = false;
            is_last_user = true;
            tpl(p, U_TAG);
            txt(p, m->content);
        } else if (m->role == TS_ROLE_ASSISTANT && m->n_tool_calls > 0) {
            if (is_last_user)
                tpl(p, A_TAG "<think></think>");
            is_last_user = false;
            is_tool = false;
            for (int k = 0; k < m->n_tool_calls; k++) {
                if (k == 0 && m->content)
                    txt(p, m->content);
                tpl(p, k == 0 ? CALLS_BEGIN CALL_BEGIN : CALL_BEGIN);
                txt(p, m->tool_calls[k].name);
                tpl(p, TOOL_SEP);
                args_tojson(p, m->tool_calls[k].arguments);
                tpl(p, CALL_END);
            }
            tpl(p, CALLS_END);
            tpl(p, o->eos);
        } else if (m->role == TS_ROLE_ASSISTANT) {
            if (is_last_user)
                tpl(p, A_TAG "<think></think>");
            is_last_user = false;
            const char *content = m->content ? m->content : "";
            if (is_tool) {
                txt(p, content);
                is_tool = false;
            } else {
                txt(p, after_think(content, false));
            }
            tpl(p, o->eos);
        } else if (m->role == TS_ROLE_TOOL) {
            is_last_user = false;
            is_tool = true;
            tpl(p, OUTPUT_BEGIN);
            txt(p, m->content);
            tpl(p, OUTPUT_END);
        }
    }
    if (o->add_generation_prompt && is_last_user && !is_tool)
        tpl(p, o->thinking ? A_TAG "<think>" : A_TAG "<think></think>");
}

static void render_llm(ts_chat_prompt *p, const ts_chat *c, const ts_chat_render_opts *o) {
    tpl(p, o->bos);
    for (int i = 0; i < c->n; i++) {
        const ts_chat_message *m = &c->msgs[i];
        if (m->role == TS_ROLE_USER) {
            tpl(p, "User: ");
            txt(p, m->content);
            tpl(p, "\n\n");
        } else if (m->role == TS_ROLE_ASSISTANT) {
            tpl(p, "Assistant: ");
            txt(p, m->content);
            tpl(p, o->eos);
        } else if (m->role == TS_ROLE_SYSTEM) {
            txt(p, m->content);
            tpl(p, "\n\n");
        }
    }
    if (o->add_generation_prompt)
        tpl(p, "Assistant:");
}

static void render_coder(ts_chat_prompt *p, const ts_chat *c, const ts_chat_render_opts *o) {
    tpl(p, o->bos);
    bool has_system = false;
    for (int i = 0; i < c->n; i++)
        has_system |= c->msgs[i].role == TS_ROLE_SYSTEM;
    if (!has_system)
        tpl(p, coder_default_system);
    for (int i = 0; i < c->n; i++) {
        const ts_chat_message *m = &c->msgs[i];
        if (m->role == TS_ROLE_SYSTEM) {
            txt(p, m->content);
        } else if (m->role == TS_ROLE_USER) {
            tpl(p, "### Instruction:\n");
            txt(p, m->content);
            tpl(p, "\n");
        } else { /* the template's else branch: assistant and tool alike */
            tpl(p, "### Response:\n");
            txt(p, m->content);
            tpl(p, "\n<|EOT|>\n");
        }
    }
    /* "### Response:\n": the HF template writes '### Response:' and then a literal newline that
     * trim_blocks keeps (it follows "}}", not a block tag); llama.cpp's builtin writes the same. */
    if (o->add_generation_prompt)
        tpl(p, "### Response:\n");
}

int ts_chat_render(const ts_chat *c, enum ts_chat_format f, const ts_chat_render_opts *opts, ts_chat_prompt *out) {
    ts_chat_render_opts o = *opts;
    if (!o.bos)
        o.bos = "";
    if (!o.eos)
        o.eos = "";
    memset(out, 0, sizeof *out);
    switch (f) {
    case TS_CHAT_DEEPSEEK_V3: render_v3_r1(out, c, &o, false); break;
    case TS_CHAT_DEEPSEEK_R1:
    case TS_CHAT_R1_DISTILL_LLAMA: render_v3_r1(out, c, &o, true); break;
    case TS_CHAT_R1_DISTILL_QWEN: render_distill_qwen(out, c, &o); break;
    case TS_CHAT_DEEPSEEK_V31: render_v31(out, c, &o); break;
    case TS_CHAT_DEEPSEEK_LLM: render_llm(out, c, &o); break;
    case TS_CHAT_DEEPSEEK_CODER: render_coder(out, c, &o); break;
    default: return -1;
    }
    if (!out->text && !out->oom) /* an empty prompt is still a string */
        tpl(out, "");
    if (!out->text && !out->oom) {
        out->text = calloc(1, 1);
        out->oom = !out->text;
    }
    if (out->oom) {
        ts_chat_prompt_free(out);
        return -1;
    }
    return 0;
}
