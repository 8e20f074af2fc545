// Load driver for `tiefsee serve`: N concurrent clients, each sending streamed chat completions one
// after another over plain fetch (no npm packages: it runs wherever node >= 18 does). Used by
// tests/server/test_load.sh (correctness under load, memory) and bench/serve-load (latency, throughput).
//
// usage: node load_client.mjs --url http://HOST:PORT --key KEY --clients N
//          [--seconds S | --requests-per-client R] [--max-tokens A[-B]] [--pid SERVER_PID --warmup W]
//          [--abort-every K] [--references] [--fresh-prompts]
//   --seconds S              clients start new requests for S seconds (default 10)
//   --requests-per-client R  instead: each client sends exactly R requests
//   --max-tokens A-B         each request asks for a max_tokens drawn from [A, B] (default 8-48)
//   --pid, --warmup          sample the server's VmRSS from /proc every second; the sample at
//                            W seconds is the warmed-up baseline
//   --abort-every K          every K-th request of a client disconnects after its first token, on
//                            purpose (not a failure: the server must free the slot)
//   --references             prompts come from a fixed set of 8 whose temperature-0 answers are taken
//                            one at a time before the load starts; every streamed answer under load
//                            must equal its reference (sequences batched together must not mix)
//   --fresh-prompts          a new random prompt per request (nothing for a prefix cache to reuse)
//   --poll-metrics           sample the server's tiefsee_generated_tokens_total (GET /metrics) every
//                            0.25 s: the decode rate is its growth from the first sample at which every
//                            client could have its first token (growth >= clients) to the end, measured
//                            by the server even for tokens whose text is empty
//   --request-timeout T      a request not finished after T seconds fails (default 120): a stuck
//                            slot shows up as failures instead of a hang
// Prints one JSON object (the summary) on stdout; diagnostics on stderr.
import { performance } from "node:perf_hooks";
import { readFileSync } from "node:fs";

const opt = { url: null, key: "", clients: 8, seconds: 10, requestsPerClient: 0, maxTokens: [8, 48], pid: 0,
              warmup: 0, abortEvery: 0, references: false, freshPrompts: false, requestTimeout: 120, pollMetrics: false };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => { if (i + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++i]; };
    switch (a) {
    case "--url": opt.url = v(); break;
    case "--key": opt.key = v(); break;
    case "--clients": opt.clients = Number(v()); break;
    case "--seconds": opt.seconds = Number(v()); break;
    case "--requests-per-client": opt.requestsPerClient = Number(v()); break;
    case "--max-tokens": { const [lo, hi] = v().split("-").map(Number); opt.maxTokens = [lo, hi ?? lo]; break; }
    case "--pid": opt.pid = Number(v()); break;
    case "--warmup": opt.warmup = Number(v()); break;
    case "--abort-every": opt.abortEvery = Number(v()); break;
    case "--references": opt.references = true; break;
    case "--fresh-prompts": opt.freshPrompts = true; break;
    case "--poll-metrics": opt.pollMetrics = true; break;
    case "--request-timeout": opt.requestTimeout = Number(v()); break;
    default: throw new Error(`unknown option ${a}`);
    }
}
if (!opt.url || !(opt.clients > 0)) throw new Error("need --url and --clients N > 0");

const headers = { "Content-Type": "application/json", ...(opt.key ? { Authorization: `Bearer ${opt.key}` } : {}) };
const topics = ["rivers", "mountains", "the sea", "old maps", "bread", "clocks", "winter", "bridges"];
const promptOf = (i) => `Question ${i}: tell me something about ${topics[i % topics.length]}.`;
let freshCounter = 0;

// One streamed request. Returns { ok, aborted, error, text, tokens, ttft, decodeSeconds, finish }.
async function streamOnce(prompt, maxTokens, abortAfterFirst) {
    const ctl = new AbortController();
    const t0 = performance.now();
    const r = { ok: false, aborted: false, error: null, text: "", tokens: 0, ttft: null, decodeSeconds: 0, finish: null };
    let tFirst = 0, tLast = 0, sawDone = false, sawUsage = false, timedOut = false;
    const timer = setTimeout(() => { timedOut = true; ctl.abort(); }, opt.requestTimeout * 1000);
    try {
        const res = await fetch(`${opt.url}/v1/chat/completions`, { method: "POST", headers, signal: ctl.signal,
            body: JSON.stringify({ messages: [{ role: "user", content: prompt }], max_tokens: maxTokens, temperature: 0,
                                   stream: true, stream_options: { include_usage: true } }) });
        if (res.status !== 200) { r.error = `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`; return r; }
        const decoder = new TextDecoder();
        let buf = "";
        for await (const bytes of res.body) {
            buf += decoder.decode(bytes, { stream: true });
            let cut;
            while ((cut = buf.indexOf("\n\n")) >= 0) {
                const event = buf.slice(0, cut);
                buf = buf.slice(cut + 2);
                if (!event.startsWith("data: ")) throw new Error(`not an SSE data event: ${event.slice(0, 100)}`);
                const data = event.slice(6);
                if (sawDone) throw new Error("data after [DONE]");
                if (data === "[DONE]") { sawDone = true; continue; }
                const j = JSON.parse(data);
                if (j.error) throw new Error(`error event: ${JSON.stringify(j.error).slice(0, 200)}`);
                if (j.usage) { r.tokens = j.usage.completion_tokens; sawUsage = true; }
                for (const c of j.choices ?? []) {
                    const piece = (c.delta?.reasoning_content ?? "") + (c.delta?.content ?? "");
                    if (piece) {
                        tLast = performance.now();
                        if (!tFirst) {
                            tFirst = tLast;
                            r.ttft = (tFirst - t0) / 1000;
                            if (abortAfterFirst) { r.aborted = true; ctl.abort(); return r; }
                        }
                        r.text += piece;
                    }
                    if (c.finish_reason) r.finish = c.finish_reason;
                }
            }
        }
        if (!sawDone) throw new Error("the stream ended without data: [DONE]");
        if (!sawUsage) throw new Error("no usage chunk");
        if (buf.trim()) throw new Error(`bytes after the last event: ${buf.slice(0, 100)}`);
        if (r.tokens > maxTokens || (r.finish === "length") !== (r.tokens === maxTokens))
            throw new Error(`finish_reason ${r.finish} with ${r.tokens} of max_tokens ${maxTokens}`);
        r.decodeSeconds = (tLast - tFirst) / 1000;
        r.ok = true;
    } catch (e) {
        if (r.aborted) return r;
        r.error = timedOut ? `no answer within ${opt.requestTimeout} s` : String(e?.message ?? e);
    } finally {
        clearTimeout(timer);
    }
    return r;
}

// References: each fixed prompt alone, before any load, at the largest max_tokens used.
const refMax = opt.maxTokens[1];
const references = new Map();
if (opt.references) {
    for (let i = 0; i < topics.length; i++) {
        const r = await streamOnce(promptOf(i), refMax, false);
        if (!r.ok) throw new Error(`reference ${i}: ${r.error}`);
        references.set(i, r);
    }
}

// The first fetch of a process sets up its HTTP machinery (tens of ms): done here, not in a measurement.
await (await fetch(`${opt.url}/health`)).text();

const rssSamples = []; // [seconds since start, kB]
const readRss = () => {
    try { return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${opt.pid}/status`, "utf8"))[1]); }
    catch { return null; }
};
const start = performance.now();
const elapsed = () => (performance.now() - start) / 1000;
let sampler = null;
if (opt.pid) sampler = setInterval(() => { const kb = readRss(); if (kb) rssSamples.push([elapsed(), kb]); }, 1000);

const generatedTotal = async () => {
    const res = await fetch(`${opt.url}/metrics`, { headers });
    const m = /^tiefsee_generated_tokens_total\s+(\S+)$/m.exec(await res.text());
    if (!m) throw new Error("GET /metrics has no tiefsee_generated_tokens_total");
    return Number(m[1]);
};
const metricSamples = []; // [seconds since start, generated tokens since start]
let metricsBase = 0, polling = false;
if (opt.pollMetrics) {
    metricsBase = await generatedTotal();
    polling = true;
    (async () => {
        while (polling) {
            const v = await generatedTotal();
            metricSamples.push([elapsed(), v - metricsBase]);
            await new Promise((r) => setTimeout(r, 250));
        }
    })();
}

const results = [];
const failures = [];
async function client(c) {
    for (let n = 0; ; n++) {
        if (opt.requestsPerClient ? n >= opt.requestsPerClient : elapsed() >= opt.seconds) return;
        const [lo, hi] = opt.maxTokens;
        const maxTokens = lo + Math.floor(Math.random() * (hi - lo + 1));
        const which = (c * 31 + n) % topics.length;
        // fresh: the random number first, so that no two prompts share more than the chat template's opening
        const prompt = opt.freshPrompts ? `#${++freshCounter}${Math.floor(Math.random() * 1e6)} ${promptOf(which)}`
                                        : promptOf(which);
        const abort = opt.abortEvery > 0 && n % opt.abortEvery === opt.abortEvery - 1;
        const t = elapsed();
        const r = await streamOnce(prompt, maxTokens, abort);
        r.latency = elapsed() - t;
        if (r.ok && opt.references) {
            // Greedy answers are prefixes of the longer reference (the same tokens, cut at max_tokens);
            // compare whole tokens' text: the reference text must start with this answer.
            const ref = references.get(which);
            if (!ref.text.startsWith(r.text) || (r.finish === "stop" && r.text !== ref.text))
                { r.ok = false; r.error = `prompt ${which}: answer under load differs from its reference:\n  ${JSON.stringify(r.text.slice(0, 120))}\n  ${JSON.stringify(ref.text.slice(0, 120))}`; }
        }
        results.push(r);
        if (!r.ok && !r.aborted) failures.push(r.error);
    }
}
await Promise.all(Array.from({ length: opt.clients }, (_, c) => client(c)));
const wall = elapsed();
let serverDecodeRate = null;
if (opt.pollMetrics) {
    polling = false;
    const total = (await generatedTotal()) - metricsBase;
    metricSamples.push([elapsed(), total]);
    const from = metricSamples.find(([, g]) => g >= opt.clients);
    const to = metricSamples.find(([, g]) => g >= total);
    if (from && to && to[0] > from[0]) serverDecodeRate = (to[1] - from[1]) / (to[0] - from[0]);
}
if (sampler) { clearInterval(sampler); const kb = readRss(); if (kb) rssSamples.push([elapsed(), kb]); }

const pct = (xs, p) => { if (!xs.length) return null; const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil(p / 100 * s.length) - 1)]; };
const ok = results.filter((r) => r.ok);
const ttfts = results.filter((r) => r.ttft !== null).map((r) => r.ttft);
const tokens = ok.reduce((a, r) => a + r.tokens, 0);
// Per-stream decode rate: tokens after the first over the time from first to last token.
const decodeRates = ok.filter((r) => r.tokens > 1 && r.decodeSeconds > 0).map((r) => (r.tokens - 1) / r.decodeSeconds);
const warm = rssSamples.filter(([t]) => t >= opt.warmup);
const summary = {
    clients: opt.clients, wall_s: wall, requests: results.length, ok: ok.length,
    aborted_on_purpose: results.filter((r) => r.aborted).length, failed: failures.length,
    failures: failures.slice(0, 5),
    generated_tokens: tokens, tokens_per_s: tokens / wall,
    // Time to the first token's text: null when no token had text (a random model's vocabulary may
    // hold tokens with empty text; the server streams nothing for them).
    ttft_p50_s: pct(ttfts, 50), ttft_p99_s: pct(ttfts, 99),
    latency_p50_s: pct(ok.map((r) => r.latency), 50), latency_p99_s: pct(ok.map((r) => r.latency), 99),
    decode_tokens_per_s_per_stream_median: pct(decodeRates, 50),
    // With every client streaming all the time, the server decodes `clients` streams at once: the
    // aggregate decode rate is the mean per-stream rate times the number of streams.
    decode_tokens_per_s_aggregate: decodeRates.length ? opt.clients * decodeRates.reduce((a, b) => a + b, 0) / decodeRates.length : null,
    decode_tokens_per_s_server: serverDecodeRate,
    rss_kb_at_warmup: warm.length ? warm[0][1] : null,
    rss_kb_max_after_warmup: warm.length ? Math.max(...warm.map(([, kb]) => kb)) : null,
    rss_kb_end: rssSamples.length ? rssSamples[rssSamples.length - 1][1] : null,
    rss_samples: rssSamples.length,
};
console.log(JSON.stringify(summary));
