// Shared by the client tests (tests/server/test_clients.sh): loads the pinned npm packages from
// tests/conformance/node_modules, reads the command line and runs named checks.
//
// usage of every client script: node SCRIPT.mjs THINK_URL PLAIN_URL API_KEY MODEL_ALIAS
//   THINK_URL  base URL (…/v1) of a server using the DeepSeek-R1 chat format: replies open inside
//              <think>, so reasoning_content is filled (a random model never closes it)
//   PLAIN_URL  base URL of a server on the same model in the DeepSeek-V3 format: replies are content
// environment: CLIENTS_PENDING  space-separated feature names (see `check`) that have not landed in the
//              server yet: their checks still run, but a failure is reported as pending, not fatal.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import assert from "node:assert/strict";

const requireFromConformance = createRequire(new URL("../../conformance/package.json", import.meta.url));

// The packages live in tests/conformance/node_modules (one lock file for all test-only npm
// dependencies), which bare imports from tests/server would not find: resolve them from there.
export async function load(name) {
    return import(pathToFileURL(requireFromConformance.resolve(name)).href);
}

const [thinkURL, plainURL, apiKey, alias] = process.argv.slice(2);
if (!thinkURL || !plainURL || !apiKey || !alias) {
    console.error("usage: node SCRIPT.mjs THINK_URL PLAIN_URL API_KEY MODEL_ALIAS");
    process.exit(2);
}
export { thinkURL, plainURL, apiKey, alias };

const pending = new Set((process.env.CLIENTS_PENDING ?? "").split(/\s+/).filter(Boolean));
let failures = 0;

// Runs one named check. feature: the server feature it needs beyond the basics (null for none);
// when that feature is listed in CLIENTS_PENDING a failure is reported but does not fail the run,
// and a pass is reported so the name can be taken off the list.
export async function check(client, name, fn, feature = null) {
    const label = `${client}: ${name}` + (feature ? ` [${feature}]` : "");
    try {
        await fn();
        console.log(`ok: ${label}` + (feature && pending.has(feature)
            ? ` (passes although '${feature}' is in CLIENTS_PENDING: take it off the list)` : ""));
    } catch (e) {
        const why = (e && e.stack) ? e.stack.split("\n").slice(0, 6).join("\n") : String(e);
        if (feature && pending.has(feature)) {
            console.log(`pending: ${label}: ${String(e?.message ?? e).split("\n")[0].slice(0, 200)}`);
        } else {
            failures++;
            console.log(`FAIL: ${label}\n${why}`);
        }
    }
}

export function finish(client) {
    if (failures) {
        console.log(`${client}: ${failures} check(s) failed`);
        process.exit(1);
    }
    console.log(`${client}: all checks passed`);
}

// A sentence with a random number, so a request's prompt is new to the server's prefix cache.
export function freshText(words = 6) {
    const n = Math.floor(Math.random() * 1e9);
    return `${n} is the number of this request: ` + Array.from({ length: words }, (_, i) => `word${(n + i * 7919) % 1000}`).join(" ");
}

export { assert };
