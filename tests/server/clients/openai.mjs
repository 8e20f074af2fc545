// `tiefsee serve` through the official OpenAI npm client (openai@7.59.0): plain, streamed, reasoning,
// multi-turn, tool-call round trip, typed errors, and the features that land later (logprobs,
// response_format json_object, cached/reasoning token counts, /metrics), each a named check.
// usage: node openai.mjs THINK_URL PLAIN_URL API_KEY MODEL_ALIAS (see common.mjs)
import { load, check, finish, freshText, assert, thinkURL, plainURL, apiKey, alias } from "./common.mjs";

const { default: OpenAI } = await load("openai");
const C = "openai";
const think = new OpenAI({ baseURL: thinkURL, apiKey, maxRetries: 0 });
const plain = new OpenAI({ baseURL: plainURL, apiKey, maxRetries: 0 });

// Collects a streamed chat completion: content, reasoning, usage, finish reason, chunk ids.
async function collect(stream) {
    const r = { content: "", reasoning: "", usage: null, finish: null, ids: new Set(), reasoningAfterContent: false,
                logprobs: [] };
    for await (const chunk of stream) {
        r.ids.add(chunk.id);
        if (chunk.usage) r.usage = chunk.usage;
        for (const c of chunk.choices) {
            if (c.delta?.reasoning_content) {
                if (r.content) r.reasoningAfterContent = true;
                r.reasoning += c.delta.reasoning_content;
            }
            if (c.delta?.content) r.content += c.delta.content;
            if (c.finish_reason) r.finish = c.finish_reason;
            if (c.logprobs?.content) r.logprobs.push(...c.logprobs.content);
        }
    }
    return r;
}

function checkUsage(u, completionTokens) {
    assert.ok(Number.isInteger(u.prompt_tokens) && u.prompt_tokens > 0, `prompt_tokens ${u.prompt_tokens}`);
    assert.equal(u.completion_tokens, completionTokens);
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
}

// The same request streamed and whole: the same token counts (cached_tokens may differ: the second
// one can reuse the first one's prompt from the prefix cache).
function sameCounts(a, b) {
    for (const k of ["prompt_tokens", "completion_tokens", "total_tokens"]) assert.equal(a[k], b[k], k);
    assert.equal(a.completion_tokens_details?.reasoning_tokens, b.completion_tokens_details?.reasoning_tokens);
}

const question = [{ role: "user", content: "Hello from the openai client, tell me about rivers" }];
const base = { model: alias, max_tokens: 16, temperature: 0 };
let plainWhole, thinkWhole;

await check(C, "plain chat completion", async () => {
    plainWhole = await plain.chat.completions.create({ ...base, messages: question });
    const m = plainWhole.choices[0].message;
    assert.equal(plainWhole.object, "chat.completion");
    assert.equal(plainWhole.model, alias);
    assert.equal(m.role, "assistant");
    assert.equal(typeof m.content, "string");
    assert.ok(m.content.length > 0, "a non-thinking format answers in content");
    assert.equal(m.reasoning_content, undefined, "no reasoning_content from a non-thinking format");
    assert.equal(plainWhole.choices[0].finish_reason, "length");
    checkUsage(plainWhole.usage, 16);
    // temperature 0 is greedy: asking again gives the same answer.
    const again = await plain.chat.completions.create({ ...base, messages: question });
    assert.equal(again.choices[0].message.content, m.content);
});

await check(C, "streamed chat equals the non-streamed answer", async () => {
    const s = await collect(await plain.chat.completions.create({
        ...base, messages: question, stream: true, stream_options: { include_usage: true } }));
    assert.equal(s.content, plainWhole.choices[0].message.content);
    assert.equal(s.reasoning, "");
    assert.equal(s.finish, "length");
    sameCounts(s.usage, plainWhole.usage);
    assert.equal(s.ids.size, 1, "every chunk of one stream carries the same id");
});

await check(C, "reasoning_content (thinking format), streamed before content", async () => {
    thinkWhole = await think.chat.completions.create({ ...base, messages: question });
    const m = thinkWhole.choices[0].message;
    assert.equal(typeof m.reasoning_content, "string");
    assert.ok(m.reasoning_content.length > 0, "reasoning_content is empty");
    checkUsage(thinkWhole.usage, 16);
    const s = await collect(await think.chat.completions.create({
        ...base, messages: question, stream: true, stream_options: { include_usage: true } }));
    assert.equal(s.reasoning, m.reasoning_content);
    assert.equal(s.content, m.content ?? "");
    assert.ok(!s.reasoningAfterContent, "reasoning must stream before content");
    sameCounts(s.usage, thinkWhole.usage);
});

await check(C, "multi-turn with the previous reply (reasoning_content accepted on input)", async () => {
    for (const [client, first] of [[plain, plainWhole], [think, thinkWhole]]) {
        const prev = first.choices[0].message;
        const messages = [{ role: "system", content: "You are terse." }, ...question,
            { role: "assistant", content: prev.content ?? "", ...(prev.reasoning_content ? { reasoning_content: prev.reasoning_content } : {}) },
            { role: "user", content: "And about lakes?" }];
        const r = await client.chat.completions.create({ ...base, messages, max_tokens: 8 });
        checkUsage(r.usage, 8);
        assert.ok(r.usage.prompt_tokens > first.usage.prompt_tokens + 4,
            `turn 2 prompt (${r.usage.prompt_tokens} tokens) must hold turn 1 (${first.usage.prompt_tokens}) and more`);
        const s = await collect(await client.chat.completions.create({ ...base, messages, max_tokens: 8, stream: true }));
        assert.equal(s.content, r.choices[0].message.content ?? "");
        assert.equal(s.reasoning, r.choices[0].message.reasoning_content ?? "");
    }
});

const tools = [{ type: "function", function: { name: "get_weather", description: "Weather of a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
const toolTurn = [
    { role: "user", content: "What is the weather in Paris?" },
    { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function",
        function: { name: "get_weather", arguments: "{\"city\":\"Paris\"}" } }] },
    { role: "tool", tool_call_id: "call_1", content: "{\"temp_c\":21,\"sky\":\"clear\"}" },
];
await check(C, "tool-call round trip input (assistant tool_calls + tool message)", async () => {
    for (const client of [plain, think]) {
        const r = await client.chat.completions.create({ ...base, max_tokens: 6, messages: toolTurn, tools });
        checkUsage(r.usage, 6);
        // The call and its result are part of the prompt: more tokens than the question alone.
        const q = await client.chat.completions.create({ ...base, max_tokens: 1, messages: toolTurn.slice(0, 1), tools });
        assert.ok(r.usage.prompt_tokens > q.usage.prompt_tokens + 10,
            `tool turn ${r.usage.prompt_tokens} tokens vs question ${q.usage.prompt_tokens}`);
        const s = await collect(await client.chat.completions.create({ ...base, max_tokens: 6, messages: toolTurn, tools, stream: true }));
        assert.equal(s.content, r.choices[0].message.content ?? "");
    }
});

await check(C, "legacy completions, streamed equals whole", async () => {
    const whole = await plain.completions.create({ model: alias, prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
    checkUsage(whole.usage, 8);
    let text = "";
    for await (const chunk of await plain.completions.create({ model: alias, prompt: "Once upon a time", max_tokens: 8,
        temperature: 0, stream: true })) text += chunk.choices[0]?.text ?? "";
    assert.equal(text, whole.choices[0].text);
});

await check(C, "seed makes sampling repeatable", async () => {
    const req = { model: alias, messages: question, max_tokens: 12, temperature: 1.0, seed: 1234 };
    const a = await plain.chat.completions.create(req), b = await plain.chat.completions.create(req);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    // ... and the seed is used: other seeds give other samples (12 tokens at temperature 1).
    const others = new Set();
    for (const seed of [1, 2, 3]) others.add((await plain.chat.completions.create({ ...req, seed })).choices[0].message.content);
    others.add(a.choices[0].message.content);
    assert.ok(others.size >= 3, `4 seeds gave only ${others.size} different samples`);
});

await check(C, "errors are typed APIErrors with the server's status", async () => {
    await assert.rejects(plain.chat.completions.create({ ...base, messages: [{ role: "wizard", content: "x" }] }),
        (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "messages" && /role/.test(e.message));
    await assert.rejects(plain.chat.completions.create({ ...base, messages: question, temperature: 7 }),
        (e) => e instanceof OpenAI.BadRequestError && e.param === "temperature");
    const long = "word ".repeat(5000);
    await assert.rejects(plain.chat.completions.create({ ...base, messages: [{ role: "user", content: long }] }),
        (e) => e instanceof OpenAI.BadRequestError && /\d+ tokens/.test(e.message));
    await assert.rejects(new OpenAI({ baseURL: plainURL, apiKey: "wrong-key", maxRetries: 0 }).models.list(),
        (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
    // A stream whose request is refused fails before the first chunk, as an APIError too.
    await assert.rejects(plain.chat.completions.create({ ...base, messages: [], stream: true }),
        (e) => e instanceof OpenAI.APIError && e.status === 400);
});

// ---- features landing in the server now (named so CLIENTS_PENDING can hold them back) ----

await check(C, "usage.completion_tokens_details.reasoning_tokens", async () => {
    const r = await think.chat.completions.create({ ...base, messages: question });
    // The random model never closes <think>: every generated token is reasoning.
    assert.equal(r.usage.completion_tokens_details?.reasoning_tokens, 16);
    const p = await plain.chat.completions.create({ ...base, messages: question });
    assert.equal(p.usage.completion_tokens_details?.reasoning_tokens ?? 0, 0);
}, "reasoning_tokens");

await check(C, "usage.prompt_tokens_details.cached_tokens from the prefix cache", async () => {
    const system = { role: "system", content: freshText(60) };
    const a = await plain.chat.completions.create({ ...base, max_tokens: 2, messages: [system, { role: "user", content: "first" }] });
    // Only the few template tokens before the system prompt (BOS) can be shared with earlier requests.
    const cachedA = a.usage.prompt_tokens_details?.cached_tokens;
    assert.ok(Number.isInteger(cachedA) && cachedA < 4, `a new system prompt cannot be cached: cached_tokens ${cachedA}`);
    const b = await plain.chat.completions.create({ ...base, max_tokens: 2, messages: [system, { role: "user", content: "second" }] });
    const cached = b.usage.prompt_tokens_details?.cached_tokens;
    assert.ok(Number.isInteger(cached) && cached >= 60 && cached < b.usage.prompt_tokens,
        `cached_tokens ${cached} of ${b.usage.prompt_tokens} for a repeated 60-word system prompt`);
    // Reusing the cached prefix must not change the answer: the first request again, now mostly cached.
    const c = await plain.chat.completions.create({ ...base, max_tokens: 2, messages: [system, { role: "user", content: "first" }] });
    assert.ok(c.usage.prompt_tokens_details.cached_tokens > 0);
    assert.equal(c.choices[0].message.content, a.choices[0].message.content);
}, "cached_tokens");

await check(C, "logprobs / top_logprobs, streamed and whole agree", async () => {
    const r = await plain.chat.completions.create({ ...base, messages: question, logprobs: true, top_logprobs: 3 });
    const lp = r.choices[0].logprobs?.content;
    assert.ok(Array.isArray(lp), "choices[0].logprobs.content missing");
    assert.equal(lp.length, 16);
    for (const t of lp) {
        assert.equal(typeof t.token, "string");
        assert.ok(t.logprob <= 0 && Number.isFinite(t.logprob), `logprob ${t.logprob}`);
        assert.equal(t.top_logprobs.length, 3);
        for (let i = 1; i < 3; i++) assert.ok(t.top_logprobs[i - 1].logprob >= t.top_logprobs[i].logprob, "top_logprobs sorted");
        // temperature 0 picks the most likely token.
        assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4, `greedy token is not the top one: ${JSON.stringify(t)}`);
    }
    const s = await collect(await plain.chat.completions.create({ ...base, messages: question, logprobs: true, top_logprobs: 3, stream: true }));
    assert.deepEqual(s.logprobs.map((t) => t.token), lp.map((t) => t.token));
    const none = await plain.chat.completions.create({ ...base, messages: question });
    assert.equal(none.choices[0].logprobs, null);
}, "logprobs");

// Whether text is a whole JSON object ("complete"), a proper prefix of one ("incomplete") or
// neither ("invalid"), by recursive descent that reports running out of text separately.
function jsonObjectPrefix(text) {
    let i = 0;
    const END = Symbol("end"), BAD = Symbol("bad");
    const ws = () => { while (i < text.length && " \t\r\n".includes(text[i])) i++; };
    const peek = () => { if (i >= text.length) throw END; return text[i]; };
    const expect = (c) => { if (peek() !== c) throw BAD; i++; };
    const literal = (w) => { for (const c of w) expect(c); };
    const string = () => {
        expect('"');
        for (;;) {
            const c = peek(); i++;
            if (c === '"') return;
            if (c < " ") throw BAD;
            if (c === "\\") {
                const e = peek(); i++;
                if (e === "u") { for (let k = 0; k < 4; k++) { if (!/[0-9a-fA-F]/.test(peek())) throw BAD; i++; } }
                else if (!'"\\/bfnrt'.includes(e)) throw BAD;
            }
        }
    };
    const number = () => {
        const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i));
        if (!m || !m[0] || m[0] === "-") { if (i + (m?.[0].length ?? 0) >= text.length) throw END; throw BAD; }
        i += m[0].length;
        if (i >= text.length) throw END; // the number may go on
    };
    const value = () => {
        ws();
        const c = peek();
        if (c === "{") { i++; ws(); if (peek() === "}") { i++; return; }
            for (;;) { ws(); string(); ws(); expect(":"); value(); ws(); if (peek() === ",") { i++; continue; } expect("}"); return; } }
        if (c === "[") { i++; ws(); if (peek() === "]") { i++; return; }
            for (;;) { value(); ws(); if (peek() === ",") { i++; continue; } expect("]"); return; } }
        if (c === '"') return string();
        if (c === "t") return literal("true");
        if (c === "f") return literal("false");
        if (c === "n") return literal("null");
        return number();
    };
    try {
        ws();
        if (peek() !== "{") return "invalid";
        value(); ws();
        return i === text.length ? "complete" : "invalid";
    } catch (e) {
        if (e === END) return "incomplete";
        if (e === BAD) return "invalid";
        throw e;
    }
}
assert.equal(jsonObjectPrefix(' {"a": [1, 2.5e3, "x\\"y"], "b": {}} '), "complete");
assert.equal(jsonObjectPrefix('{"a": [1, tr'), "incomplete");
assert.equal(jsonObjectPrefix('{"a": 1}}'), "invalid");
assert.equal(jsonObjectPrefix('{"a" 1'), "invalid");
assert.equal(jsonObjectPrefix('[1]'), "invalid");

await check(C, "response_format json_object gives one JSON object", async () => {
    const r = await plain.chat.completions.create({ model: alias, temperature: 0, max_tokens: 400,
        messages: [{ role: "user", content: "Answer in JSON." }], response_format: { type: "json_object" } });
    const text = r.choices[0].message.content;
    // A random model may write one long string and be cut off by max_tokens: then the text must be a
    // prefix of a JSON object; when it ends on its own, the whole text must be one.
    if (r.choices[0].finish_reason === "stop") {
        const v = JSON.parse(text);
        assert.ok(v !== null && typeof v === "object" && !Array.isArray(v), `not an object: ${text.slice(0, 200)}`);
    } else {
        assert.equal(r.choices[0].finish_reason, "length");
        assert.equal(jsonObjectPrefix(text), "incomplete", `not a JSON object prefix: ${text.slice(0, 300)}`);
    }
    const s = await collect(await plain.chat.completions.create({ model: alias, temperature: 0, max_tokens: 400,
        messages: [{ role: "user", content: "Answer in JSON." }], response_format: { type: "json_object" }, stream: true }));
    assert.equal(s.content, text);
}, "json_object");

await check(C, "GET /metrics counts the tokens generated", async () => {
    const origin = new URL(plainURL).origin;
    const scrape = async () => {
        const res = await fetch(`${origin}/metrics`, { headers: { Authorization: `Bearer ${apiKey}` } });
        assert.equal(res.status, 200);
        assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
        const values = new Map();
        for (const line of (await res.text()).split("\n")) {
            const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
            if (m) values.set(m[1] + (m[2] ?? ""), Number(m[3]));
        }
        return values;
    };
    const before = await scrape();
    await plain.chat.completions.create({ ...base, messages: question, max_tokens: 5 });
    const after = await scrape();
    // Some counter of generated tokens grew by exactly the 5 tokens of this request (no other
    // request runs against this server meanwhile).
    const grew = [...after].filter(([k, v]) => /token/.test(k) && /(generat|completion|predict)/.test(k) &&
                                             before.has(k) && v - before.get(k) === 5);
    assert.ok(grew.length > 0, `no generated-token counter grew by 5: ${[...after.keys()].join(", ")}`);
}, "metrics");

finish(C);
