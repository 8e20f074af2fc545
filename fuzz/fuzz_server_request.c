/* libFuzzer target for the request parser of `tiefsee serve` (src/server/request.c): any body a
 * client sends must give a parsed request or one OpenAI-shaped error (status, one-line message),
 * never a crash or a leak. Parsed chat requests are also rendered, with their tools, in every chat
 * format, so conversation and tool shapes that parse are known to render. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int chat = 0; chat < 2; chat++) {
        server_request r;
        api_error e = {0};
        if (server_request_parse((const char *)data, size, chat, 1000, 1, &r, &e) != 0) {
            if (e.status < 400 || e.status > 599 || !e.message[0] || strchr(e.message, '\n') || !e.type)
                abort();
        } else if (chat) {
            if (r.conv.n < 1 || (r.parse_tool_calls && !r.tools_json))
                abort();
            for (int f = 0; f < TS_CHAT_FORMAT_COUNT; f++) {
                ts_chat_render_opts o = {.add_generation_prompt = true, .thinking = f % 2 == 0, .bos = "<s>",
                                         .eos = "</s>", .tools_json = r.tools_json};
                ts_chat_prompt p;
                if (ts_chat_render(&r.conv, (enum ts_chat_format)f, &o, &p) == 0)
                    ts_chat_prompt_free(&p);
            }
        } else if (!r.prompt_text && (r.n_prompt_tokens < 1 || !r.prompt_tokens)) {
            abort();
        }
        server_request_free(&r);
    }
    return 0;
}
