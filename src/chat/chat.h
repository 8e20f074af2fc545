/* Conversations and the DeepSeek chat formats: a message list (system/user/assistant/tool with
 * reasoning and tool calls), renderers that reproduce each family's reference Jinja template byte for
 * byte (quirks included, since the models were trained on exactly those bytes), recognition of a
 * format from a GGUF's tokenizer.chat_template, and splitting a reply into reasoning and content.
 *
 * A rendered prompt is a list of spans that remembers which bytes came from the template and which
 * from the conversation, so the tokenizer can honour special-token texts only in template bytes: a
 * user who types "<｜end▁of▁sentence｜>" gets text, not an end-of-sequence token. */
#ifndef TS_CHAT_CHAT_H
#define TS_CHAT_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "tiefsee.h"

enum ts_chat_role { TS_ROLE_SYSTEM, TS_ROLE_USER, TS_ROLE_ASSISTANT, TS_ROLE_TOOL };

typedef struct ts_chat_tool_call {
    char *type;      /* "function" */
    char *name;
    char *arguments; /* JSON text as the caller gave it */
} ts_chat_tool_call;

typedef struct ts_chat_message {
    enum ts_chat_role role;
    char *content;           /* NULL = none (an assistant turn that only calls tools) */
    char *reasoning_content; /* NULL = none */
    ts_chat_tool_call *tool_calls;
    int n_tool_calls;
} ts_chat_message;

typedef struct ts_chat {
    ts_chat_message *msgs;
    int n, cap;
} ts_chat;

void ts_chat_init(ts_chat *c);
void ts_chat_free(ts_chat *c);
void ts_chat_clear(ts_chat *c);
/* Removes the last message (if any). */
void ts_chat_pop(ts_chat *c);
/* Appends a message (strings copied; content/reasoning may be NULL). Returns 0 or -1 (no memory). */
int ts_chat_add(ts_chat *c, enum ts_chat_role role, const char *content, const char *reasoning);
/* Adds a tool call to the last message. Returns 0 or -1. */
int ts_chat_add_tool_call(ts_chat *c, const char *type, const char *name, const char *arguments);

/* JSON: {"messages": [{"role", "content", "reasoning_content", "tool_calls": [{"type",
 * "function": {"name", "arguments"}}]}]} (a bare array is accepted too); "arguments" may be a string
 * or an object (stored as its JSON text). Returns 0, or -1 with a one-line reason in err. */
int ts_chat_from_json_text(ts_chat *c, const char *text, size_t len, char err[TS_ERR_LEN]);
int ts_chat_load_file(ts_chat *c, const char *path, char err[TS_ERR_LEN]);
int ts_chat_save_file(const ts_chat *c, const char *path, char err[TS_ERR_LEN]);

enum ts_chat_format {
    TS_CHAT_DEEPSEEK_V3,      /* V3 / V3-0324 */
    TS_CHAT_DEEPSEEK_R1,      /* R1 (and R1-Distill-Llama, whose template is R1's) */
    TS_CHAT_DEEPSEEK_V31,     /* V3.1 hybrid thinking (llama.cpp's copy: "<think></think>") */
    TS_CHAT_R1_DISTILL_QWEN,  /* R1-Distill-Qwen (llama.cpp's copy with enable_thinking) */
    TS_CHAT_R1_DISTILL_LLAMA, /* R1-Distill-Llama */
    TS_CHAT_DEEPSEEK_LLM,     /* DeepSeek-LLM 7B/67B chat */
    TS_CHAT_DEEPSEEK_CODER,   /* DeepSeek-Coder instruct */
    TS_CHAT_FORMAT_COUNT
};

const char *ts_chat_format_name(enum ts_chat_format f);
/* Returns the format of a name (as printed by ts_chat_format_name), or -1. */
int ts_chat_format_from_name(const char *name);
/* Recognizes a Jinja template by markers in its text; arch ("llama", "qwen2", "deepseek2" ...) tells
 * the R1 distills apart. Returns -1 when nothing matches (or template is NULL/empty). */
int ts_chat_format_detect(const char *tmpl, const char *arch);
/* Whether a format's generation prompt opens a <think> block (the reply starts inside reasoning). */
bool ts_chat_format_starts_thinking(enum ts_chat_format f, bool thinking);

typedef struct ts_chat_render_opts {
    bool add_generation_prompt;
    bool thinking;       /* V3.1 thinking mode; R1-Distill-Qwen's enable_thinking */
    const char *bos;     /* BOS token text ("" if none) */
    const char *eos;     /* EOS token text */
    /* OpenAI tool definitions ([{"type": "function", "function": {"name", "description", "parameters"}}]) as
     * JSON text, described to the model in its own way (NULL or "[]" = no tools): V3/R1 and the R1
     * distills as llama.cpp's llama-cpp-deepseek-r1.jinja does (after BOS, before the system prompt), V3.1 as
     * its model card's "## Tools" section appended to the system prompt. Other formats ignore it. */
    const char *tools_json;
} ts_chat_render_opts;

typedef struct ts_chat_span {
    size_t offset, len;
    bool from_template; /* special-token texts are honoured only here */
} ts_chat_span;

typedef struct ts_chat_prompt {
    char *text;
    size_t len, cap;
    ts_chat_span *spans;
    int n_spans, cap_spans;
    bool oom;
} ts_chat_prompt;

void ts_chat_prompt_free(ts_chat_prompt *p);
/* Renders the conversation. Returns 0 or -1 (out of memory). */
int ts_chat_render(const ts_chat *c, enum ts_chat_format f, const ts_chat_render_opts *o, ts_chat_prompt *out);

/* Splits a model reply into reasoning and content: reasoning is the text before the first "</think>"
 * (a leading "<think>" dropped), content the text after it; surrounding whitespace is trimmed. With no
 * "</think>", the reply is all reasoning if started_in_think (it was cut off), else all content.
 * Both outputs are malloc'ed (reasoning NULL when there is none). Returns 0 or -1. */
int ts_chat_split_reasoning(const char *reply, bool started_in_think, char **reasoning, char **content);

/* A reply parsed for the DeepSeek tool-call syntax: V3/R1 ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function
 * <｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>") and V3.1 (no type, no fence:
 * "<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜>"). */
typedef struct ts_chat_tool_reply {
    char *content; /* the text outside the tool-call block, trimmed; never NULL */
    ts_chat_tool_call *calls; /* type "function"; arguments the JSON text the model wrote */
    int n_calls;
} ts_chat_tool_reply;

/* Parses a reply. When the block is absent, cut off or malformed (no call end, empty name, arguments
 * that are not JSON), the whole text is content and n_calls is 0: a broken call must not lose the
 * model's words. Returns 0, or -1 when out of memory. */
int ts_chat_parse_tool_calls(const char *text, size_t len, ts_chat_tool_reply *out);
void ts_chat_tool_reply_free(ts_chat_tool_reply *r);
/* How many leading bytes of a growing reply are certainly content: the text before a
 * "<｜tool▁calls▁begin｜>", or before a partial one at its end (streaming holds the rest back). */
size_t ts_chat_tool_content_prefix(const char *text, size_t len);

/* Tokenizes a rendered prompt for a model: special tokens (CONTROL entries of the vocabulary) are
 * recognised only inside template spans; everything else is plain text (USER_DEFINED tokens still
 * split out, as in llama.cpp). No BOS is added: the templates write it. *out is malloc'ed. */
int ts_chat_tokenize(const ts_model *m, const ts_chat_prompt *p, ts_token **out, int *n_out, char err[TS_ERR_LEN]);
/* The model's tokenizer.chat_template (NULL if absent); points into the model file, len in *len. */
const char *ts_chat_model_template(const ts_model *m, size_t *len);

#endif
