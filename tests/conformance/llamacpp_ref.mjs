#!/usr/bin/env node
// Reference side of the differential conformance test: evaluates a token list with mainline llama.cpp
// (through node-llama-cpp's prebuilt CPU binary) and writes what tiefsee must reproduce.
//
// usage: node llamacpp_ref.mjs --model M.gguf (--tokens 1,2,3 | --random N --seed S --tokens-out T.txt)
//                              --out LOGP.f32 [--greedy N --greedy-out TOKENS.txt]
//                              [--flash-attn auto|on|off] [--kv-type f16|f32] [--info-out INFO.json]
//                              [--threads N]
//
// --random N draws N token ids uniformly from the model's vocabulary with a fixed-seed generator
// (so the caller need not know the vocabulary size) and writes them, comma-separated, to T.txt.
//
// LOGP.f32: n_tokens x n_vocab little-endian float32 natural-log probabilities; row i is the
// distribution of the token after position i. llama.cpp hands out probabilities (softmax of its
// float32 logits, computed in float32), so entries whose probability underflows to 0 are written
// as -Infinity; the comparator skips those (see compare.c).
// TOKENS.txt: the greedy (temperature 0) continuation of N tokens after the whole token list, as
// comma-separated ids.
// No BOS is added (we pass token ids, never text), no repeat penalty, no top-k/top-p (temperature 0
// selects llama.cpp's greedy sampler, which leaves the candidate logits untouched).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

function parseArgs(argv) {
    const opts = { greedy: 0, flashAttn: "auto", kvType: "f16", threads: 1 };
    for (let i = 0; i < argv.length; i++) {
        const key = argv[i];
        const value = argv[i + 1];
        if (value === undefined) throw new Error(`missing value for ${key}`);
        switch (key) {
            case "--model": opts.model = value; break;
            case "--tokens": opts.tokens = value.split(",").map((s) => Number.parseInt(s, 10)); break;
            case "--out": opts.out = value; break;
            case "--greedy": opts.greedy = Number.parseInt(value, 10); break;
            case "--greedy-out": opts.greedyOut = value; break;
            case "--flash-attn": opts.flashAttn = value; break;
            case "--kv-type": opts.kvType = value; break;
            case "--info-out": opts.infoOut = value; break;
            case "--random": opts.random = Number.parseInt(value, 10); break;
            case "--seed": opts.seed = Number.parseInt(value, 10); break;
            case "--tokens-out": opts.tokensOut = value; break;
            case "--threads": opts.threads = Number.parseInt(value, 10); break;
            default: throw new Error(`unknown option ${key}`);
        }
        i++;
    }
    if (!opts.model || !opts.out) throw new Error("--model and --out are required");
    if (!opts.tokens === !opts.random) throw new Error("give exactly one of --tokens and --random");
    if (opts.random && !(opts.random > 0 && Number.isInteger(opts.seed) && opts.tokensOut))
        throw new Error("--random N needs N > 0, --seed and --tokens-out");
    if (opts.tokens && opts.tokens.some((t) => !Number.isInteger(t) || t < 0)) throw new Error("--tokens must be non-negative integers");
    if (!["auto", "on", "off"].includes(opts.flashAttn)) throw new Error("--flash-attn must be auto, on or off");
    if (!["f16", "f32"].includes(opts.kvType)) throw new Error("--kv-type must be f16 or f32");
    if (!(Number.isInteger(opts.threads) && opts.threads >= 1 && opts.threads <= 256)) throw new Error("--threads must be 1..256");
    if (opts.greedy > 0 && !opts.greedyOut) throw new Error("--greedy needs --greedy-out");
    return opts;
}

// Deterministic token ids: 32-bit xorshift, independent of Math.random and of the Node version.
function randomTokens(count, seed, nVocab) {
    let state = (seed >>> 0) || 0x9e3779b9;
    const tokens = [];
    for (let i = 0; i < count; i++) {
        state ^= state << 13; state >>>= 0;
        state ^= state >>> 17;
        state ^= state << 5; state >>>= 0;
        tokens.push(state % nVocab);
    }
    return tokens;
}

async function loadNodeLlamaCpp() {
    // Prefer the copy installed next to this script by `npm ci` (pinned by package-lock.json);
    // NODE_LLAMA_CPP_DIR lets a developer point at another install of the same version.
    const here = path.dirname(fileURLToPath(import.meta.url));
    const base = process.env.NODE_LLAMA_CPP_DIR ?? path.join(here, "node_modules");
    return import(path.join(base, "node-llama-cpp", "dist", "index.js"));
}

async function main() {
    const opts = parseArgs(process.argv.slice(2));
    const { getLlama, LlamaLogLevel } = await loadNodeLlamaCpp();
    // llama.cpp logs at debug level whether "auto" flash attention ended up enabled; keep that line
    // for the info file and pass only real errors through.
    let flashAttentionResolved = "unknown";
    const logger = (level, message) => {
        const fa = /Flash Attention (enabled|disabled)/i.exec(message);
        if (fa) flashAttentionResolved = fa[1].toLowerCase();
        if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) process.stderr.write(message + "\n");
    };
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.debug, logger, progressLogs: false });
    const model = await llama.loadModel({ modelPath: opts.model, gpuLayers: 0 });
    // node-llama-cpp has no vocabulary-size accessor; the GGUF token list defines it (llama.cpp
    // checks that token_embd and output match it when loading).
    const tokenList = model.fileInfo.metadata?.tokenizer?.ggml?.tokens;
    if (!Array.isArray(tokenList)) throw new Error("GGUF has no tokenizer.ggml.tokens array");
    const nVocab = tokenList.length;
    if (opts.random) {
        opts.tokens = randomTokens(opts.random, opts.seed, nVocab);
        fs.writeFileSync(opts.tokensOut, opts.tokens.join(",") + "\n");
    }
    const nTokens = opts.tokens.length;
    for (const t of opts.tokens)
        if (t >= nVocab) throw new Error(`token ${t} outside the vocabulary (${nVocab})`);

    // One sequence, batch >= prompt so the whole list is decoded in a single llama_decode call
    // (the batch path); the greedy continuation then runs one token per call (the decode path).
    const contextSize = Math.max(64, nTokens + opts.greedy + 8);
    const kvType = opts.kvType.toUpperCase();
    const context = await model.createContext({
        contextSize,
        batchSize: contextSize,
        sequences: 1,
        threads: opts.threads, // 1 by default; more only speeds up long sequences (results do not depend on it)
        flashAttention: opts.flashAttn === "auto" ? "auto" : opts.flashAttn === "on",
        experimentalKvCacheKeyType: kvType,
        experimentalKvCacheValueType: kvType,
    });
    const sequence = context.getSequence();

    const greedyOptions = { temperature: 0 };
    // The last position also samples (greedily), so the continuation's first token is llama.cpp's own choice.
    const input = opts.tokens.map((t, i) => [t, {
        generateNext: { probabilities: true, token: i === nTokens - 1, options: greedyOptions },
    }]);
    const results = await sequence.controlledEvaluate(input);

    const logp = new Float32Array(nTokens * nVocab);
    let underflowed = 0;
    for (let i = 0; i < nTokens; i++) {
        const probs = results[i]?.next?.probabilities;
        if (!probs) throw new Error(`no probabilities for position ${i}`);
        if (probs.size !== nVocab) throw new Error(`position ${i}: ${probs.size} probabilities, expected ${nVocab}`);
        const row = logp.subarray(i * nVocab, (i + 1) * nVocab);
        for (const [token, p] of probs) {
            if (!(token >= 0 && token < nVocab)) throw new Error(`position ${i}: token id ${token} out of range`);
            row[token] = Math.log(p); // p is an exact float32 value; log(0) = -Infinity marks underflow
            if (p === 0) underflowed++;
        }
    }
    fs.writeFileSync(opts.out, Buffer.from(logp.buffer, logp.byteOffset, logp.byteLength));

    if (opts.greedy > 0) {
        // Greedy continuation: temperature 0 is llama.cpp's greedy sampler (argmax of the logits).
        const generated = [];
        for (let step = 0; step < opts.greedy; step++) {
            // The prompt's last position already sampled the first token; later ones come from feeding it back.
            let next;
            if (step === 0) {
                next = results[nTokens - 1].next.token;
            } else {
                const [res] = await sequence.controlledEvaluate(
                    [[generated[step - 1], { generateNext: { token: true, options: greedyOptions } }]]);
                next = res?.next?.token;
            }
            if (next == null) throw new Error(`greedy step ${step}: no token`);
            generated.push(next);
        }
        fs.writeFileSync(opts.greedyOut, generated.join(",") + "\n");
    }

    if (opts.infoOut) {
        const info = {
            nodeLlamaCppVersion: "3.21.1",
            llamaCppRelease: llama.llamaCppRelease,
            nVocab,
            nTokens,
            requestedFlashAttention: opts.flashAttn,
            flashAttentionSupported: model.flashAttentionSupported,
            contextFlashAttention: context.flashAttention,
            flashAttentionResolved: opts.flashAttn === "off" ? "disabled" : flashAttentionResolved,
            // ggml type numbers: 0 = F32, 1 = F16
            kvCacheKeyType: context.kvCacheKeyType,
            kvCacheValueType: context.kvCacheValueType,
            underflowedProbabilities: underflowed,
        };
        fs.writeFileSync(opts.infoOut, JSON.stringify(info, null, 2) + "\n");
    }
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().catch((err) => {
    console.error(`llamacpp_ref: ${err?.stack ?? err}`);
    process.exit(1);
});
