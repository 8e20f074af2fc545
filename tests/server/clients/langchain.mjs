// `tiefsee serve` through LangChain's ChatOpenAI (@langchain/openai, chat completions API): invoke,
// stream, reasoning_content in additional_kwargs, multi-turn with the previous AIMessage, tool-call
// round trip input (AIMessage tool_calls + ToolMessage), and errors.
// usage: node langchain.mjs THINK_URL PLAIN_URL API_KEY MODEL_ALIAS (see common.mjs)
import { load, check, finish, assert, thinkURL, plainURL, apiKey, alias } from "./common.mjs";

const { ChatOpenAI } = await load("@langchain/openai");
const { HumanMessage, AIMessage, ToolMessage, SystemMessage } = await load("@langchain/core/messages");
const C = "langchain";
const make = (baseURL, extra = {}) => new ChatOpenAI({ model: alias, apiKey, configuration: { baseURL },
    temperature: 0, maxTokens: 16, maxRetries: 0, streamUsage: true, ...extra });
const plain = make(plainURL), think = make(thinkURL);
const question = [new SystemMessage("You are terse."), new HumanMessage("Hello from LangChain, tell me about forests")];

async function stream(model, messages) {
    let full = null;
    for await (const chunk of await model.stream(messages)) full = full ? full.concat(chunk) : chunk;
    return full;
}

function checkUsage(m, outputTokens) {
    const u = m.usage_metadata;
    assert.ok(u, "no usage_metadata");
    assert.ok(u.input_tokens > 0);
    assert.equal(u.output_tokens, outputTokens);
    assert.equal(u.total_tokens, u.input_tokens + u.output_tokens);
}

let plainWhole, thinkWhole;
await check(C, "invoke (plain)", async () => {
    plainWhole = await plain.invoke(question);
    assert.equal(typeof plainWhole.content, "string");
    assert.ok(plainWhole.content.length > 0);
    assert.equal(plainWhole.response_metadata.finish_reason, "length");
    checkUsage(plainWhole, 16);
});

await check(C, "stream equals invoke", async () => {
    const s = await stream(plain, question);
    assert.equal(s.content, plainWhole.content);
    checkUsage(s, 16);
    assert.equal(s.usage_metadata.input_tokens, plainWhole.usage_metadata.input_tokens);
});

await check(C, "reasoning_content (thinking format) in additional_kwargs", async () => {
    thinkWhole = await think.invoke(question);
    const r = thinkWhole.additional_kwargs.reasoning_content;
    assert.ok(typeof r === "string" && r.length > 0, "no reasoning_content");
    checkUsage(thinkWhole, 16);
    const s = await stream(think, question);
    assert.equal(s.additional_kwargs.reasoning_content, r);
    assert.equal(s.content, thinkWhole.content);
});

await check(C, "multi-turn with the previous AIMessage", async () => {
    for (const [model, first] of [[plain, plainWhole], [think, thinkWhole]]) {
        const messages = [...question, first, new HumanMessage("And about deserts?")];
        const r = await model.invoke(messages);
        checkUsage(r, 16);
        assert.ok(r.usage_metadata.input_tokens > first.usage_metadata.input_tokens + 4,
            `turn 2 prompt ${r.usage_metadata.input_tokens} tokens vs turn 1 ${first.usage_metadata.input_tokens}`);
        const s = await stream(model, messages);
        assert.equal(s.content, r.content);
    }
});

await check(C, "tool-call round trip input (AIMessage tool_calls + ToolMessage)", async () => {
    const tool = { type: "function", function: { name: "get_weather", description: "Weather of a city",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } };
    const q = new HumanMessage("What is the weather in Paris?");
    const messages = [q,
        new AIMessage({ content: "", tool_calls: [{ id: "call_1", name: "get_weather", args: { city: "Paris" }, type: "tool_call" }] }),
        new ToolMessage({ tool_call_id: "call_1", content: "{\"temp_c\":21,\"sky\":\"clear\"}" })];
    for (const model of [plain, think]) {
        const bound = model.bindTools([tool]);
        const r = await bound.invoke(messages);
        checkUsage(r, 16);
        const only = await bound.invoke([q]);
        assert.ok(r.usage_metadata.input_tokens > only.usage_metadata.input_tokens + 10,
            `tool turn ${r.usage_metadata.input_tokens} tokens vs question ${only.usage_metadata.input_tokens}`);
        const s = await stream(bound, messages);
        assert.equal(s.content, r.content);
    }
});

await check(C, "errors keep the server's status", async () => {
    await assert.rejects(plain.invoke([new HumanMessage("word ".repeat(5000))]),
        (e) => e.status === 400 && /\d+ tokens/.test(e.message));
    await assert.rejects(make(plainURL, { apiKey: "wrong-key" }).invoke(question), (e) => e.status === 401);
    await assert.rejects(stream(make(plainURL, { apiKey: "wrong-key" }), question), (e) => e.status === 401);
});

finish(C);
