/* The DeepSeek tool-call parser (src/chat/tools.c) and the tool definitions in rendered prompts:
 * V3/R1 fenced calls and V3.1 bare calls, several calls, text around the block, cut-off and
 * malformed blocks (which must fall back to content), the streaming content prefix, and the tools
 * block of the R1 and V3.1 renderers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"

static int failures;
#define CHECK(cond, ...)                                                                                         \
    do {                                                                                                         \
        if (!(cond)) {                                                                                           \
            fprintf(stderr, "test_tools: FAIL line %d: ", __LINE__);                                             \
            fprintf(stderr, __VA_ARGS__);                                                                        \
            fputc('\n', stderr);                                                                                 \
            failures++;                                                                                          \
        }                                                                                                        \
    } while (0)

#define BAR "\xef\xbd\x9c"
#define SEP "\xe2\x96\x81"
#define CALLS_BEGIN "<" BAR "tool" SEP "calls" SEP "begin" BAR ">"
#define CALLS_END "<" BAR "tool" SEP "calls" SEP "end" BAR ">"
#define CALL_BEGIN "<" BAR "tool" SEP "call" SEP "begin" BAR ">"
#define CALL_END "<" BAR "tool" SEP "call" SEP "end" BAR ">"
#define TOOL_SEP "<" BAR "tool" SEP "sep" BAR ">"

static ts_chat_tool_reply parse(const char *text) {
    ts_chat_tool_reply r;
    int rc = ts_chat_parse_tool_calls(text, strlen(text), &r);
    CHECK(rc == 0 && r.content, "parse failed on: %s", text);
    return r;
}

static void test_fenced(void) {
    ts_chat_tool_reply r = parse("Let me look.\n" CALLS_BEGIN CALL_BEGIN "function" TOOL_SEP "get_weather\n```json\n"
                                 "{\"city\": \"Paris\"}\n```" CALL_END "\n" CALL_BEGIN "function" TOOL_SEP
                                 "get_time\n```json\n{}\n```" CALL_END CALLS_END);
    CHECK(r.n_calls == 2, "two fenced calls, got %d", r.n_calls);
    if (r.n_calls == 2) {
        CHECK(strcmp(r.calls[0].name, "get_weather") == 0, "name 0: %s", r.calls[0].name);
        CHECK(strcmp(r.calls[0].arguments, "{\"city\": \"Paris\"}") == 0, "args 0: %s", r.calls[0].arguments);
        CHECK(strcmp(r.calls[0].type, "function") == 0, "type");
        CHECK(strcmp(r.calls[1].name, "get_time") == 0 && strcmp(r.calls[1].arguments, "{}") == 0, "call 1");
    }
    CHECK(strcmp(r.content, "Let me look.") == 0, "content before the block: '%s'", r.content);
    ts_chat_tool_reply_free(&r);
}

static void test_v31(void) {
    ts_chat_tool_reply r = parse(CALLS_BEGIN CALL_BEGIN "search" TOOL_SEP "{\"q\": \"c\\u00e9\", \"n\": [1, 2]}" CALL_END
                                 CALL_BEGIN "open" TOOL_SEP "{\"url\": \"x\"}" CALL_END CALLS_END);
    CHECK(r.n_calls == 2, "two V3.1 calls, got %d", r.n_calls);
    if (r.n_calls == 2) {
        CHECK(strcmp(r.calls[0].name, "search") == 0, "v3.1 name: %s", r.calls[0].name);
        CHECK(strcmp(r.calls[0].arguments, "{\"q\": \"c\\u00e9\", \"n\": [1, 2]}") == 0, "v3.1 args: %s",
              r.calls[0].arguments);
        CHECK(strcmp(r.calls[1].name, "open") == 0, "v3.1 second name");
    }
    CHECK(r.content[0] == '\0', "no content: '%s'", r.content);
    ts_chat_tool_reply_free(&r);
    /* The closer may be missing when generation ended right after the last call. */
    r = parse(CALLS_BEGIN CALL_BEGIN "f" TOOL_SEP "{}" CALL_END "  ");
    CHECK(r.n_calls == 1, "no calls-end closer: %d", r.n_calls);
    ts_chat_tool_reply_free(&r);
}

/* Anything broken is content, byte for byte (trimmed). */
static void test_malformed(void) {
    static const char *const broken[] = {
        "Plain answer without tools.",
        CALLS_BEGIN CALL_BEGIN "function" TOOL_SEP "f\n```json\n{\"a\": 1}", /* cut off inside the call */
        CALLS_BEGIN CALL_BEGIN "f" TOOL_SEP "{not json}" CALL_END CALLS_END,
        CALLS_BEGIN CALL_BEGIN TOOL_SEP "{}" CALL_END CALLS_END,             /* empty name */
        CALLS_BEGIN CALL_BEGIN "f{}" CALL_END CALLS_END,                     /* no separator */
        CALLS_BEGIN "garbage" CALL_BEGIN "f" TOOL_SEP "{}" CALL_END,         /* junk before a call */
        CALLS_BEGIN CALL_BEGIN "function" TOOL_SEP "f\n```json\n{}\n" CALL_END CALLS_END, /* unclosed fence */
        CALLS_BEGIN,
        "",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        ts_chat_tool_reply r = parse(broken[i]);
        CHECK(r.n_calls == 0, "broken %zu parsed as %d calls", i, r.n_calls);
        CHECK(strcmp(r.content, broken[i]) == 0, "broken %zu content: '%s'", i, r.content);
        ts_chat_tool_reply_free(&r);
    }
    /* One good and one broken call: the whole block is not trusted. */
    ts_chat_tool_reply r = parse(CALLS_BEGIN CALL_BEGIN "f" TOOL_SEP "{}" CALL_END CALL_BEGIN "g" TOOL_SEP "{" CALL_END);
    CHECK(r.n_calls == 0, "half-broken block: %d", r.n_calls);
    ts_chat_tool_reply_free(&r);
    /* Text after the block is kept. */
    r = parse(CALLS_BEGIN CALL_BEGIN "f" TOOL_SEP "[1]" CALL_END CALLS_END " done");
    CHECK(r.n_calls == 1 && strcmp(r.content, "done") == 0, "text after the block: %d '%s'", r.n_calls, r.content);
    ts_chat_tool_reply_free(&r);
}

static void test_content_prefix(void) {
    const char *t = "Hello " CALLS_BEGIN "x";
    CHECK(ts_chat_tool_content_prefix(t, strlen(t)) == 6, "prefix before the block");
    CHECK(ts_chat_tool_content_prefix(t, 6 + 4) == 6, "prefix before a partial marker");
    CHECK(ts_chat_tool_content_prefix("Hello <b>", 9) == 9, "a '<' that cannot start the marker");
    CHECK(ts_chat_tool_content_prefix("Hi <", 4) == 3, "a lone '<' at the end is held");
    CHECK(ts_chat_tool_content_prefix("", 0) == 0, "empty");
}

static void render(enum ts_chat_format f, const char *tools, ts_chat_prompt *p) {
    ts_chat c;
    ts_chat_init(&c);
    ts_chat_add(&c, TS_ROLE_SYSTEM, "SYS", NULL);
    ts_chat_add(&c, TS_ROLE_USER, "Hi", NULL);
    ts_chat_render_opts o = {.add_generation_prompt = true, .bos = "<B>", .eos = "<E>", .tools_json = tools};
    CHECK(ts_chat_render(&c, f, &o, p) == 0, "render");
    ts_chat_free(&c);
}

static void test_render_tools(void) {
    const char *tools = "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"Does f\","
                        "\"parameters\":{\"type\":\"object\",\"properties\":{}}}}]";
    ts_chat_prompt p;
    render(TS_CHAT_DEEPSEEK_R1, tools, &p);
    const char *want_r1 =
        "<B>You can call any of the following function tools to satisfy the user's requests: [\n  {\n    \"name\": "
        "\"f\",\n    \"description\": \"Does f\",\n    \"parameters\": {\n      \"type\": \"object\",\n      "
        "\"properties\": {}\n    }\n  }\n]\n\nExample function tool call syntax:\n\n" CALLS_BEGIN CALL_BEGIN
        "function" TOOL_SEP "example_function_name\n```json\n{\n  \"arg1\": \"some_value\"\n  ...\n}\n```\n" CALL_END
        CALLS_END "\n\nSYS<" BAR "User" BAR ">Hi<" BAR "Assistant" BAR "><think>\n";
    CHECK(p.text && strcmp(p.text, want_r1) == 0, "R1 tools prompt:\n%s", p.text);
    /* The tool's name and description are conversation bytes: special-token texts there stay text. */
    bool name_is_text = false;
    const char *at = p.text ? strstr(p.text, "\"f\"") : NULL;
    for (int i = 0; at && i < p.n_spans; i++)
        if ((size_t)(at - p.text) >= p.spans[i].offset && (size_t)(at - p.text) < p.spans[i].offset + p.spans[i].len)
            name_is_text = !p.spans[i].from_template;
    CHECK(name_is_text, "tool definitions are not template bytes");
    ts_chat_prompt_free(&p);

    render(TS_CHAT_DEEPSEEK_V31, tools, &p);
    const char *want_v31 =
        "<B>SYS\n\n## Tools\nYou have access to the following tools:\n\n### f\nDescription: Does f\n\nParameters: "
        "{\"type\": \"object\", \"properties\": {}}\n\nIMPORTANT: ALWAYS adhere to this exact format for tool use:\n" CALLS_BEGIN
        CALL_BEGIN "tool_call_name" TOOL_SEP "tool_call_arguments" CALL_END "{{additional_tool_calls}}" CALLS_END
        "\n\nWhere:\n- `tool_call_name` must be an exact match to one of the available tools\n- `tool_call_arguments` "
        "must be valid JSON that strictly follows the tool's Parameters Schema\n- For multiple tool calls, chain them "
        "directly without separators or spaces<" BAR "User" BAR ">Hi<" BAR "Assistant" BAR "><think></think>";
    CHECK(p.text && strcmp(p.text, want_v31) == 0, "V3.1 tools prompt:\n%s", p.text);
    ts_chat_prompt_free(&p);

    /* No tools, or an empty list: the prompt is exactly the one without the option. */
    ts_chat_prompt plain, empty;
    render(TS_CHAT_DEEPSEEK_V3, NULL, &plain);
    render(TS_CHAT_DEEPSEEK_V3, "[]", &empty);
    CHECK(plain.text && empty.text && strcmp(plain.text, empty.text) == 0 &&
              strcmp(plain.text, "<B>SYS<" BAR "User" BAR ">Hi<" BAR "Assistant" BAR ">") == 0,
          "no tools: %s", empty.text);
    ts_chat_prompt_free(&plain);
    ts_chat_prompt_free(&empty);
}

int main(void) {
    test_fenced();
    test_v31();
    test_malformed();
    test_content_prefix();
    test_render_tools();
    if (failures) {
        fprintf(stderr, "test_tools: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_tools: ok\n");
    return 0;
}
