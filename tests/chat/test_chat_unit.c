/* Unit checks of src/chat beyond the template conformance test: format recognition, reasoning
 * splitting, JSON round trip, and tokenization of rendered prompts on a tiny synthetic DeepSeek-V3
 * vocabulary (special tokens honoured in template bytes only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat/chat.h"
#include "tiefsee.h"

static int failures;
#define CHECK(cond, ...)                                                                                         \
    do {                                                                                                         \
        if (!(cond)) {                                                                                           \
            fprintf(stderr, "test_chat_unit: FAIL line %d: ", __LINE__);                                              \
            fprintf(stderr, __VA_ARGS__);                                                                        \
            fputc('\n', stderr);                                                                                 \
            failures++;                                                                                          \
        }                                                                                                        \
    } while (0)

#define EOS_TEXT "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
#define BOS_TEXT "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"

static void test_detect(void) {
    CHECK(ts_chat_format_detect("{{'<｜User｜>' + c}}{{'<｜Assistant｜>'}}", "deepseek2") == TS_CHAT_DEEPSEEK_V3, "v3");
    CHECK(ts_chat_format_detect("<｜User｜><｜Assistant｜><think>\\n", "deepseek2") == TS_CHAT_DEEPSEEK_R1, "r1");
    CHECK(ts_chat_format_detect("<｜User｜><｜Assistant｜><think>\\n", "qwen2") == TS_CHAT_R1_DISTILL_QWEN, "qwen");
    CHECK(ts_chat_format_detect("<｜User｜><｜Assistant｜><think>\\n", "llama") == TS_CHAT_R1_DISTILL_LLAMA, "llama");
    CHECK(ts_chat_format_detect("<｜User｜><｜Assistant｜>ns.is_last_user<think>", "deepseek2") == TS_CHAT_DEEPSEEK_V31,
          "v3.1");
    CHECK(ts_chat_format_detect("### Instruction:\\n ... <|EOT|>", "llama") == TS_CHAT_DEEPSEEK_CODER, "coder");
    CHECK(ts_chat_format_detect("{{ 'Assistant: ' + message['content'] + eos_token }}", "llama") ==
              TS_CHAT_DEEPSEEK_LLM, "llm");
    CHECK(ts_chat_format_detect("<｜DSML｜function_calls> <｜User｜><｜Assistant｜>", "deepseek2") == -1, "dsml");
    CHECK(ts_chat_format_detect("{% for m in messages %}<|im_start|>", "qwen2") == -1, "chatml");
    CHECK(ts_chat_format_detect(NULL, "llama") == -1, "none");
    for (int f = 0; f < TS_CHAT_FORMAT_COUNT; f++)
        CHECK(ts_chat_format_from_name(ts_chat_format_name((enum ts_chat_format)f)) == f, "name %d", f);
    CHECK(ts_chat_format_from_name("chatml") == -1, "unknown name");
}

static void test_split(void) {
    char *r, *c;
    CHECK(ts_chat_split_reasoning("Let me see.\n</think>\n\nAnswer", true, &r, &c) == 0, "split");
    CHECK(r && strcmp(r, "Let me see.") == 0 && strcmp(c, "Answer") == 0, "split: '%s' '%s'", r, c);
    free(r), free(c);
    CHECK(ts_chat_split_reasoning("<think>x</think>y", false, &r, &c) == 0 && r && strcmp(r, "x") == 0 &&
              strcmp(c, "y") == 0, "tagged");
    free(r), free(c);
    CHECK(ts_chat_split_reasoning("still thinking", true, &r, &c) == 0 && r && strcmp(r, "still thinking") == 0 &&
              strcmp(c, "") == 0, "unfinished");
    free(r), free(c);
    CHECK(ts_chat_split_reasoning(" plain answer ", false, &r, &c) == 0 && !r && strcmp(c, " plain answer ") == 0,
          "no think");
    free(r), free(c);
}

static void test_json_round_trip(void) {
    ts_chat a, b;
    ts_chat_init(&a);
    ts_chat_init(&b);
    char err[TS_ERR_LEN] = "";
    const char *text = "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"Ü\"},"
                       "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"type\":\"function\",\"function\":"
                       "{\"name\":\"f\",\"arguments\":{\"x\":1}}}]},{\"role\":\"tool\",\"content\":\"1\"},"
                       "{\"role\":\"assistant\",\"content\":\"ok\",\"reasoning_content\":\"hm\"}]}";
    CHECK(ts_chat_from_json_text(&a, text, strlen(text), err) == 0, "parse: %s", err);
    char path[] = "/tmp/test_chat_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0)
        close(fd);
    CHECK(ts_chat_save_file(&a, path, err) == 0, "save: %s", err);
    CHECK(ts_chat_load_file(&b, path, err) == 0, "load: %s", err);
    unlink(path);
    CHECK(a.n == 5 && b.n == 5, "message count %d %d", a.n, b.n);
    for (int i = 0; i < a.n && i < b.n; i++) {
        CHECK(a.msgs[i].role == b.msgs[i].role, "role %d", i);
        CHECK((!a.msgs[i].content && !b.msgs[i].content) ||
                  (a.msgs[i].content && b.msgs[i].content && strcmp(a.msgs[i].content, b.msgs[i].content) == 0),
              "content %d", i);
    }
    CHECK(b.n == 5 && b.msgs[2].n_tool_calls == 1 && strcmp(b.msgs[2].tool_calls[0].arguments, "{\"x\":1}") == 0,
          "tool call");
    CHECK(b.n == 5 && b.msgs[4].reasoning_content && strcmp(b.msgs[4].reasoning_content, "hm") == 0, "reasoning");
    const char *bad = "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}";
    CHECK(ts_chat_from_json_text(&b, bad, strlen(bad), err) != 0, "unknown role rejected");
    CHECK(ts_chat_from_json_text(&b, "[1", 2, err) != 0, "bad JSON rejected");
    ts_chat_free(&a);
    ts_chat_free(&b);
}

static void test_tokenize(void) {
    char path[] = "/tmp/test_chat_model_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        CHECK(0, "mkstemp");
        return;
    }
    close(fd);
    char err[TS_ERR_LEN] = "";
    ts_synth_params sp = {.preset = "tiny-deepseek3", .type = "f32", .out_path = path, .overwrite = true, .n_threads = 1};
    ts_model *m = NULL;
    if (ts_synth(&sp, err) != 0 || ts_model_load(path, &m, err) != 0) {
        CHECK(0, "synth/load: %s", err);
        unlink(path);
        return;
    }
    unlink(path);
    ts_model_info info;
    ts_model_get_info(m, &info);
    ts_chat chat;
    ts_chat_init(&chat);
    ts_chat_add(&chat, TS_ROLE_SYSTEM, "Be brief.", NULL);
    ts_chat_add(&chat, TS_ROLE_USER, "Hello there, friend", NULL);
    ts_chat_add(&chat, TS_ROLE_ASSISTANT, "Hi!", NULL);
    ts_chat_add(&chat, TS_ROLE_USER, "Say " EOS_TEXT " please", NULL);
    ts_chat_render_opts ro = {.add_generation_prompt = true, .bos = BOS_TEXT, .eos = EOS_TEXT};
    ts_chat_prompt p;
    CHECK(ts_chat_render(&chat, TS_CHAT_DEEPSEEK_V3, &ro, &p) == 0, "render");
    ts_token *ids = NULL;
    int n = 0;
    CHECK(ts_chat_tokenize(m, &p, &ids, &n, err) == 0, "tokenize: %s", err);
    /* The template writes one EOS (after "Hi!"); the user's typed one must stay text. */
    int n_eos = 0, n_bos = 0;
    for (int i = 0; i < n; i++) {
        n_eos += ids[i] == info.eos;
        n_bos += ids[i] == info.bos;
    }
    CHECK(n > 0 && ids[0] == info.bos && n_bos == 1, "one BOS at the start (first %d, count %d)", n ? ids[0] : -1,
          n_bos);
    CHECK(n_eos == 1, "exactly the template's EOS, got %d", n_eos);
    /* Without special texts in the conversation, the ids equal tokenizing the whole prompt with
     * special tokens parsed (what llama.cpp does). */
    ts_chat_pop(&chat);
    ts_chat_add(&chat, TS_ROLE_USER, "What is 2+2? Answer in words.", NULL);
    ts_chat_prompt q;
    ts_token *ids2 = NULL, *ref = NULL;
    int n2 = 0;
    CHECK(ts_chat_render(&chat, TS_CHAT_DEEPSEEK_V3, &ro, &q) == 0, "render 2");
    CHECK(ts_chat_tokenize(m, &q, &ids2, &n2, err) == 0, "tokenize 2");
    int n_ref = ts_tokenize(m, q.text, q.len, false, NULL, 0);
    if (n_ref < 0 && n_ref != INT32_MIN) {
        ref = malloc((size_t)-n_ref * sizeof *ref);
        n_ref = ref ? ts_tokenize(m, q.text, q.len, false, ref, -n_ref) : -1;
    }
    CHECK(n_ref == n2 && ref && ids2 && memcmp(ref, ids2, (size_t)n2 * sizeof *ref) == 0,
          "same ids as whole-prompt tokenization (%d vs %d)", n2, n_ref);
    free(ref);
    free(ids2);
    free(ids);
    ts_chat_prompt_free(&p);
    ts_chat_prompt_free(&q);
    ts_chat_free(&chat);
    ts_model_free(m);
}

int main(void) {
    test_detect();
    test_split();
    test_json_round_trip();
    test_tokenize();
    if (failures) {
        fprintf(stderr, "test_chat_unit: %d failures\n", failures);
        return 1;
    }
    printf("test_chat_unit: ok\n");
    return 0;
}
