// `tiefsee serve` through the Vercel AI SDK (ai@7.0.173) with its DeepSeek provider
// (@ai-sdk/deepseek@3.0.56): generateText, streamText, reasoning parts, multi-turn with the previous
// reply's messages, tool-call round trip input, and errors as APICallError.
// usage: node ai_sdk.mjs THINK_URL PLAIN_URL API_KEY MODEL_ALIAS (see common.mjs)
import { load, check, finish, assert, thinkURL, plainURL, apiKey, alias } from "./common.mjs";

const ai = await load("ai");
const { createDeepSeek } = await load("@ai-sdk/deepseek");
const C = "ai-sdk";
const think = createDeepSeek({ baseURL: thinkURL, apiKey })(alias);
const plain = createDeepSeek({ baseURL: plainURL, apiKey })(alias);
const opts = { maxOutputTokens: 16, temperature: 0, maxRetries: 0 };
const question = [{ role: "user", content: "Hello from the AI SDK, tell me about mountains" }];

// Streams with streamText and collects the text, reasoning and part types in order.
async function stream(model, messages, extra = {}) {
    // onError: the error part of fullStream is checked below; the default handler would only log it.
    const s = ai.streamText({ model, messages, ...opts, ...extra, onError: () => {} });
    const r = { text: "", reasoning: "", order: [], error: null };
    for await (const p of s.fullStream) {
        if (p.type === "text-delta") r.text += p.text;
        else if (p.type === "reasoning-delta") r.reasoning += p.text;
        else if (p.type === "error") r.error = p.error;
        if (r.order[r.order.length - 1] !== p.type) r.order.push(p.type);
    }
    if (r.error) throw r.error;
    r.usage = await s.usage;
    r.finishReason = await s.finishReason;
    return r;
}

function checkUsage(u, outputTokens) {
    assert.ok(Number.isInteger(u.inputTokens) && u.inputTokens > 0, `inputTokens ${u.inputTokens}`);
    assert.equal(u.outputTokens, outputTokens);
    assert.equal(u.totalTokens, u.inputTokens + u.outputTokens);
}

let plainWhole, thinkWhole;
await check(C, "generateText (plain)", async () => {
    plainWhole = await ai.generateText({ model: plain, messages: question, ...opts });
    assert.ok(plainWhole.text.length > 0);
    assert.equal(plainWhole.reasoningText, undefined);
    assert.equal(plainWhole.finishReason, "length");
    checkUsage(plainWhole.usage, 16);
});

await check(C, "streamText equals generateText", async () => {
    const s = await stream(plain, question);
    assert.equal(s.text, plainWhole.text);
    assert.equal(s.reasoning, "");
    assert.equal(s.finishReason, "length");
    assert.equal(s.usage.inputTokens, plainWhole.usage.inputTokens);
    assert.equal(s.usage.outputTokens, 16);
});

await check(C, "reasoning parts (thinking format), streamed before text", async () => {
    thinkWhole = await ai.generateText({ model: think, messages: question, ...opts });
    assert.ok(thinkWhole.reasoningText?.length > 0, "no reasoning text");
    assert.equal(thinkWhole.reasoning[0].type, "reasoning");
    checkUsage(thinkWhole.usage, 16);
    const s = await stream(think, question);
    assert.equal(s.reasoning, thinkWhole.reasoningText);
    assert.equal(s.text, thinkWhole.text);
    const firstText = s.order.indexOf("text-delta"), lastReasoning = s.order.lastIndexOf("reasoning-delta");
    assert.ok(lastReasoning >= 0 && (firstText < 0 || firstText > lastReasoning), `part order ${s.order}`);
});

await check(C, "multi-turn with the previous reply's response.messages", async () => {
    for (const [model, first] of [[plain, plainWhole], [think, thinkWhole]]) {
        const messages = [...question, ...first.response.messages, { role: "user", content: "And about valleys?" }];
        const r = await ai.generateText({ model, messages, ...opts, maxOutputTokens: 8 });
        checkUsage(r.usage, 8);
        assert.ok(r.usage.inputTokens > first.usage.inputTokens + 4,
            `turn 2 prompt ${r.usage.inputTokens} tokens vs turn 1 ${first.usage.inputTokens}`);
        const s = await stream(model, messages, { maxOutputTokens: 8 });
        assert.equal(s.text, r.text);
        assert.equal(s.reasoning, r.reasoningText ?? "");
    }
});

await check(C, "tool-call round trip input (tool-call part + tool-result message)", async () => {
    const tools = { get_weather: ai.tool({ description: "Weather of a city",
        inputSchema: ai.jsonSchema({ type: "object", properties: { city: { type: "string" } }, required: ["city"] }) }) };
    const q = { role: "user", content: "What is the weather in Paris?" };
    const messages = [q,
        { role: "assistant", content: [{ type: "tool-call", toolCallId: "call_1", toolName: "get_weather", input: { city: "Paris" } }] },
        { role: "tool", content: [{ type: "tool-result", toolCallId: "call_1", toolName: "get_weather",
            output: { type: "json", value: { temp_c: 21, sky: "clear" } } }] }];
    for (const model of [plain, think]) {
        const r = await ai.generateText({ model, messages, tools, ...opts, maxOutputTokens: 6 });
        checkUsage(r.usage, 6);
        const only = await ai.generateText({ model, messages: [q], tools, ...opts, maxOutputTokens: 1 });
        assert.ok(r.usage.inputTokens > only.usage.inputTokens + 10,
            `tool turn ${r.usage.inputTokens} tokens vs question ${only.usage.inputTokens}`);
        const s = await stream(model, messages, { tools, maxOutputTokens: 6 });
        assert.equal(s.text, r.text);
    }
});

await check(C, "errors are APICallErrors with the server's status", async () => {
    await assert.rejects(ai.generateText({ model: plain, messages: [{ role: "user", content: "word ".repeat(5000) }], ...opts }),
        (e) => ai.APICallError.isInstance(e) && e.statusCode === 400 && /\d+ tokens/.test(e.message));
    const bad = createDeepSeek({ baseURL: plainURL, apiKey: "wrong-key" })(alias);
    await assert.rejects(ai.generateText({ model: bad, messages: question, ...opts }),
        (e) => ai.APICallError.isInstance(e) && e.statusCode === 401);
    await assert.rejects(stream(bad, question), (e) => ai.APICallError.isInstance(e) && e.statusCode === 401);
});

await check(C, "usage.outputTokenDetails.reasoningTokens", async () => {
    const r = await ai.generateText({ model: think, messages: question, ...opts });
    assert.equal(r.usage.outputTokenDetails?.reasoningTokens, 16);
    assert.equal(r.usage.outputTokenDetails?.textTokens, 0);
}, "reasoning_tokens");

finish(C);
