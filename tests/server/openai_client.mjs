// Drives `tiefsee serve` with the official OpenAI npm client (pinned in tests/conformance), so the
// response shapes are checked by the code real applications use, not only by our own expectations.
// usage: node openai_client.mjs BASE_URL API_KEY MODEL_ALIAS
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const require = createRequire(new URL("../conformance/package.json", import.meta.url));
const OpenAI = require("openai").default ?? require("openai");
const [baseURL, apiKey, alias, mode] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

if (mode === "tools") {
    // A tool round trip as an agent sends it (tools, the assistant's tool_calls, the tool result),
    // logprobs and json_object, through the client's own request and response types.
    const tools = [{ type: "function", function: { name: "get_weather", description: "Current weather",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
    const turn = await client.chat.completions.create({
        model: alias, tools, tool_choice: "auto", max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2,
        messages: [
            { role: "user", content: "Weather in Paris?" },
            { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function",
                function: { name: "get_weather", arguments: JSON.stringify({ city: "Paris" }) } }] },
            { role: "tool", tool_call_id: "call_1", content: JSON.stringify({ temp: 21 }) },
        ],
    });
    assert.equal(turn.choices[0].logprobs.content.length, turn.usage.completion_tokens);
    assert.equal(turn.choices[0].logprobs.content[0].top_logprobs.length, 2);
    assert.equal(typeof turn.usage.prompt_tokens_details.cached_tokens, "number");
    const js = await client.chat.completions.create({
        model: alias, messages: [{ role: "user", content: "JSON please" }], max_tokens: 200, temperature: 1,
        response_format: { type: "json_object" } });
    // A reply that ends by itself is one JSON object; one cut by max_tokens is a prefix of one (as
    // with OpenAI's API; that every prefix stays valid is checked in tests/server/test_scheduler.c).
    // The random model often writes long strings, so either can happen.
    const jsText = js.choices[0].message.content;
    if (js.choices[0].finish_reason === "stop") {
        assert.equal(typeof JSON.parse(jsText), "object");
    } else {
        assert.equal(js.choices[0].finish_reason, "length");
        assert.match(jsText, /^\s*\{/);
    }
    await assert.rejects(
        client.chat.completions.create({ model: alias, messages: [{ role: "user", content: "x" }], tools,
            tool_choice: "required" }),
        (e) => e.status === 400 && e.param === "tool_choice");
    console.log("openai client (tools, logprobs, json_object): ok");
    process.exit(0);
}
const messages = [{ role: "user", content: "Hello from the openai client" }];

const models = await client.models.list();
assert.equal(models.data[0].id, alias);

const whole = await client.chat.completions.create({ model: alias, messages, max_tokens: 16, temperature: 0 });
const msg = whole.choices[0].message;
assert.equal(msg.role, "assistant");
assert.equal(whole.usage.completion_tokens, 16);
assert.equal(whole.choices[0].finish_reason, "length");
assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + 16);

// Streamed: the deltas concatenate to the non-streamed answer; usage arrives in the last chunk.
const stream = await client.chat.completions.create({
    model: alias, messages, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let content = "", reasoning = "", usage = null, finish = null, reasoningAfterContent = false;
for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
        if (c.delta.reasoning_content) {
            if (content) reasoningAfterContent = true;
            reasoning += c.delta.reasoning_content;
        }
        if (c.delta.content) content += c.delta.content;
        if (c.finish_reason) finish = c.finish_reason;
    }
}
assert.equal(content, msg.content ?? "");
assert.equal(reasoning, msg.reasoning_content ?? "");
assert.ok(!reasoningAfterContent, "reasoning must stream before content");
// (cached_tokens may differ: the second request finds the first one's prefix in the cache)
const counts = (u) => ({ prompt: u.prompt_tokens, completion: u.completion_tokens, total: u.total_tokens,
    reasoning: u.completion_tokens_details.reasoning_tokens });
assert.deepEqual(counts(usage), counts(whole.usage));
assert.ok(usage.prompt_tokens_details.cached_tokens > 0, "the repeated prompt is served from the prefix cache");
assert.equal(finish, "length");

const comp = await client.completions.create({ model: alias, prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
assert.equal(comp.usage.completion_tokens, 8);
assert.equal(typeof comp.choices[0].text, "string");

// Errors surface as the client's typed errors with the server's status and message.
await assert.rejects(
    client.chat.completions.create({ model: alias, messages: [{ role: "wizard", content: "x" }] }),
    (e) => e.status === 400 && /role/.test(e.message));
const bad = new OpenAI({ baseURL, apiKey: "wrong-key", maxRetries: 0 });
await assert.rejects(bad.models.list(), (e) => e.status === 401);
console.log("openai client: ok");
