// Reference encoder for test_hf_agreement.sh: reads one JSON string per line from stdin and prints
// the ids Hugging Face's tokenizers.js gives (encode without added BOS/EOS, as `tiefsee tokenize
// --jsonl` without --bos), one JSON array per line.
// usage: node hf_encode.mjs TOKENIZER_JSON < strings.jsonl
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

// Resolved from tests/conformance (where CI's `npm ci` installs it), whatever the working directory.
const require = createRequire(new URL("../../conformance/package.json", import.meta.url));
const resolved = require.resolve("@huggingface/tokenizers").replace(/\.cjs$/, ".mjs");
const { Tokenizer } = await import(pathToFileURL(resolved).href);

const jsonPath = process.argv[2];
const configPath = join(dirname(jsonPath), "tokenizer_config.json");
const config = existsSync(configPath) ? JSON.parse(readFileSync(configPath, "utf8")) : {};
const tokenizer = new Tokenizer(JSON.parse(readFileSync(jsonPath, "utf8")), config);
const lines = readFileSync(0, "utf8").split("\n");
const out = [];
for (const line of lines) {
  if (line === "") continue;
  out.push(JSON.stringify(tokenizer.encode(JSON.parse(line), { add_special_tokens: false }).ids));
}
process.stdout.write(out.join("\n") + "\n");
