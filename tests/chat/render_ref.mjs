// Renders tests/chat/conversations.json with the reference Jinja templates (tests/chat/templates/,
// the first three copied from llama.cpp's models/templates/) using @huggingface/jinja, writing one
// case per conversation x format x options into OUT_DIR: CASE.json (the conversation, as
// `tiefsee chat-render -f` reads it), CASE.expected (the reference bytes) and a line in OUT_DIR/cases
// "CASE FORMAT FLAGS...". Usage: node render_ref.mjs OUT_DIR
import { readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = dirname(fileURLToPath(import.meta.url));
// The package lives in tests/conformance/node_modules (one node_modules for all test tooling).
const require = createRequire(join(here, "..", "conformance", "package.json"));
const { Template } = await import(require.resolve("@huggingface/jinja"));

const outDir = process.argv[2];
if (!outDir) throw new Error("usage: node render_ref.mjs OUT_DIR");
const BOS = "<｜begin▁of▁sentence｜>", EOS = "<｜end▁of▁sentence｜>";

// format -> template file, whether tool arguments reach it as objects (llama.cpp parses them for
// templates that apply `tojson` to them), whether it has tool calls, and its thinking switch.
const formats = {
  "deepseek-v3": { file: "deepseek-v3.jinja", objArgs: false, tools: true, thinking: [false] },
  "deepseek-r1": { file: "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", objArgs: false, tools: true, thinking: [false] },
  "r1-distill-llama": { file: "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", objArgs: false, tools: true, thinking: [false] },
  "r1-distill-qwen": { file: "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", objArgs: true, tools: true, thinking: [false, true] },
  "deepseek-v3.1": { file: "deepseek-ai-DeepSeek-V3.1.jinja", objArgs: true, tools: true, thinking: [false, true] },
  "deepseek-llm": { file: "deepseek-llm.jinja", objArgs: false, tools: false, thinking: [false] },
  "deepseek-coder": { file: "deepseek-coder.jinja", objArgs: false, tools: false, thinking: [false] },
};

const convs = JSON.parse(readFileSync(join(here, "conversations.json"), "utf8"));
writeFileSync(join(outDir, "cases"), "");
let n = 0;
for (const [fmt, spec] of Object.entries(formats)) {
  const template = new Template(readFileSync(join(here, "templates", spec.file), "utf8"));
  const list = spec.tools ? [...convs.plain, ...convs.tools] : convs.plain;
  for (const conv of list) {
    const messages = conv.messages.map((m) => {
      const copy = { ...m, content: m.content ?? null };
      if (m.tool_calls && spec.objArgs)
        copy.tool_calls = m.tool_calls.map((tc) => ({
          ...tc, function: { ...tc.function, arguments: JSON.parse(tc.function.arguments) },
        }));
      return copy;
    });
    for (const gen of [true, false]) {
      for (const thinking of spec.thinking) {
        const text = template.render({
          messages, add_generation_prompt: gen, bos_token: BOS, eos_token: EOS,
          thinking, enable_thinking: thinking,
        });
        const id = `${fmt}.${conv.name}.${gen ? "gen" : "nogen"}${thinking ? ".think" : ""}`;
        writeFileSync(join(outDir, `${id}.json`), JSON.stringify({ messages: conv.messages }));
        writeFileSync(join(outDir, `${id}.expected`), text);
        const flags = [gen ? "" : "--no-generation-prompt", thinking ? "--thinking" : ""].filter(Boolean);
        appendFileSync(join(outDir, "cases"), `${id} ${fmt} ${flags.join(" ")}\n`);
        n++;
      }
    }
  }
}
console.log(`render_ref: ${n} reference renderings`);
