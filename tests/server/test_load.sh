#!/usr/bin/env bash
# Bounded loopback load test of `tiefsee serve`: LOAD_CLIENTS concurrent streaming clients
# (tests/server/load_client.mjs, plain fetch) for LOAD_SECONDS against a tiny synthetic model with
# LOAD_SLOTS sequences decoded together, so requests queue, join running batches and leave them.
# Passes when
#   - no request failed: every stream is well-formed SSE with a usage chunk and ends with [DONE],
#     finish_reason agrees with the token count, and no request errs or stalls;
#   - every temperature-0 answer equals the same prompt's answer taken alone before the load
#     (sequences that share a batch do not mix);
#   - clients that disconnect after their first token on purpose (every 10th request) do not leak
#     slots (later requests would stall) or memory;
#   - the server's RSS, sampled from /proc every second, stays flat after warm-up: its largest value
#     after LOAD_WARMUP seconds exceeds the value at LOAD_WARMUP by less than 8 MiB or 5 %;
#   - the server still answers afterwards and exits 0 on SIGTERM.
# usage: test_load.sh BUILD_DIR
# environment: LOAD_CLIENTS (32), LOAD_SECONDS (60), LOAD_WARMUP (20), LOAD_SLOTS (8)
#
# A release-build test: under ASan the allocator's quarantine grows RSS by design and the run would be
# far slower, so a sanitizer build skips it (exit 77). (It should also carry the ctest label "slow",
# which `make sanitize` excludes.)
set -euo pipefail
BUILD=${1:?usage: test_load.sh BUILD_DIR}
TS="$BUILD/tiefsee"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLIENTS=${LOAD_CLIENTS:-32}
SECONDS_RUN=${LOAD_SECONDS:-60}
WARMUP=${LOAD_WARMUP:-20}
SLOTS=${LOAD_SLOTS:-8}
command -v node >/dev/null || { echo "SKIP: node not installed (scripts/install-deps.sh)"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
if grep -qs '^TS_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt"; then
    echo "SKIP: sanitizer build (the load test measures the release build's memory)"; exit 77
fi
(( WARMUP < SECONDS_RUN )) || { echo "LOAD_WARMUP ($WARMUP) must be below LOAD_SECONDS ($SECONDS_RUN)" >&2; exit 2; }

TMP=$(mktemp -d -t tiefsee-load.XXXXXX)
PID=""
cleanup() {
    if [[ -n $PID ]]; then kill -KILL "$PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- server log" >&2; tail -n 20 "$TMP/server.log" >&2; exit 1; }

"$TS" synth tiny-qwen2 -o "$TMP/m.gguf" >/dev/null 2>&1 || fail "synth"
KEY=sk-load-test
: >"$TMP/server.log" # exists before the background server opens it (the loop below reads it at once)
"$TS" serve -m "$TMP/m.gguf" --port 0 -t 1 --alias tiny --api-key "$KEY" -np "$SLOTS" -c 256 \
    --chat-template deepseek-v3 >"$TMP/server.log" 2>&1 &
PID=$!
port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/server.log")
    [[ -n $port ]] && break
    kill -0 "$PID" 2>/dev/null || fail "server did not start"
    sleep 0.1
done
[[ -n $port ]] || fail "server did not print its port"
BASE="http://127.0.0.1:$port"

echo "load: $CLIENTS streaming clients for ${SECONDS_RUN}s, $SLOTS slots, RSS baseline at ${WARMUP}s"
node "$ROOT/tests/server/load_client.mjs" --url "$BASE" --key "$KEY" --clients "$CLIENTS" \
    --seconds "$SECONDS_RUN" --pid "$PID" --warmup "$WARMUP" --max-tokens 8-48 --abort-every 10 \
    --references --request-timeout 60 >"$TMP/summary.json" || fail "load driver: $(cat "$TMP/summary.json")"
cat "$TMP/summary.json"
python3 - "$TMP/summary.json" "$SECONDS_RUN" <<'PY' || fail "load checks"
import json, sys
s = json.load(open(sys.argv[1]))
seconds = float(sys.argv[2])
problems = []
if s["failed"]:
    problems.append(f"{s['failed']} of {s['requests']} requests failed, e.g. {s['failures']}")
if s["ok"] < s["clients"] * 2:
    problems.append(f"only {s['ok']} requests completed")
if s["aborted_on_purpose"] == 0 and s["requests"] >= 10:
    problems.append("no client disconnected on purpose")
base, peak = s["rss_kb_at_warmup"], s["rss_kb_max_after_warmup"]
if base is None or s["rss_samples"] < seconds * 0.5:
    problems.append(f"too few RSS samples ({s['rss_samples']})")
else:
    growth = peak - base
    print(f"RSS after warm-up {base / 1024:.1f} MiB, largest later {peak / 1024:.1f} MiB "
          f"(+{growth / 1024:.2f} MiB, {100 * growth / base:.1f} %), at the end {s['rss_kb_end'] / 1024:.1f} MiB")
    if growth >= 8 * 1024 and growth >= 0.05 * base:
        problems.append(f"RSS grew by {growth} kB after warm-up")
print(f"{s['ok']} requests ok, {s['aborted_on_purpose']} disconnected on purpose, {s['generated_tokens']} tokens, "
      f"{s['tokens_per_s']:.0f} tokens/s, request latency p50 {s['latency_p50_s'] * 1000:.0f} ms p99 {s['latency_p99_s'] * 1000:.0f} ms")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
PY
# Every slot is free again: a request that needs all of them at once completes promptly.
CURLS=()
for i in $(seq 1 "$SLOTS"); do
    curl -s -m 20 -o "$TMP/after$i" -w '%{http_code}' -H "Authorization: Bearer $KEY" "$BASE/v1/chat/completions" \
        --data-binary '{"messages":[{"role":"user","content":"still there?"}],"max_tokens":4}' >"$TMP/code$i" &
    CURLS+=($!)
done
for p in "${CURLS[@]}"; do wait "$p" || true; done
for i in $(seq 1 "$SLOTS"); do [[ $(cat "$TMP/code$i") == 200 ]] || fail "request $i after the load: $(cat "$TMP/code$i") $(cat "$TMP/after$i")"; done
kill -TERM "$PID"
set +e; wait "$PID"; rc=$?; set -e
PID=""
[[ $rc == 0 ]] || fail "server exit status after SIGTERM: $rc"
echo "PASS"
