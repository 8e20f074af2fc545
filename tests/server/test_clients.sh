#!/usr/bin/env bash
# `tiefsee serve` end to end through the real client libraries from npm (pinned in
# tests/conformance/package-lock.json): openai@7.59.0, ai@7.0.173 + @ai-sdk/deepseek@3.0.56 and
# @langchain/openai. Two servers on one tiny synthetic model: one in the DeepSeek-R1 chat format (the
# reply opens inside <think>, so the clients see reasoning_content) and one in the V3 format (plain
# content). The scripts in tests/server/clients/ hold the checks; they fail on any mismatch.
# usage: test_clients.sh BUILD_DIR
# environment: CLIENTS_PENDING  server features whose checks may fail without failing the test
#              (names as in clients/*.mjs: reasoning_tokens cached_tokens logprobs json_object metrics)
# The npm packages come from `npm ci` in tests/conformance, run by scripts/install-deps.sh (`make deps`,
# .ci/run): without them the test is skipped (exit 77) with that hint.
set -euo pipefail
BUILD=${1:?usage: test_clients.sh BUILD_DIR}
TS="$BUILD/tiefsee"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CONF="$ROOT/tests/conformance"
# Features still being added to the server go here: their checks report "pending" instead of
# failing. A name is taken off the list when its feature lands (the check then says it passes); all
# of them have landed.
export CLIENTS_PENDING=${CLIENTS_PENDING-""}

command -v node >/dev/null || { echo "SKIP: node not installed (scripts/install-deps.sh)"; exit 77; }
for pkg in openai ai @ai-sdk/deepseek @langchain/openai @langchain/core; do
    [[ -f $CONF/node_modules/$pkg/package.json ]] || {
        echo "SKIP: $pkg missing in tests/conformance/node_modules (run scripts/install-deps.sh, or: cd tests/conformance && npm ci --omit=optional --ignore-scripts)"
        exit 77
    }
done
# The installed versions must be the locked ones: a stale node_modules would test other clients.
node -e '
    const fs = require("fs"), conf = process.argv[1];
    const lock = JSON.parse(fs.readFileSync(conf + "/package-lock.json", "utf8")).packages;
    for (const p of ["openai", "ai", "@ai-sdk/deepseek", "@langchain/openai", "@langchain/core"]) {
        const have = JSON.parse(fs.readFileSync(`${conf}/node_modules/${p}/package.json`, "utf8")).version;
        const want = lock["node_modules/" + p].version;
        if (have !== want) { console.error(`${p} ${have} installed, ${want} locked: run scripts/install-deps.sh`); process.exit(1); }
    }' "$CONF" || exit 1

TMP=$(mktemp -d -t tiefsee-clients.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$TMP"/*.log; do echo "--- $f" >&2; tail -n 5 "$f" >&2; done; exit 1; }

"$TS" synth tiny-qwen2 -o "$TMP/m.gguf" >/dev/null 2>&1 || fail "synth"

# start_server NAME ARGS...: a server on a free port (port 0: it prints the one it got); sets BASE.
start_server() {
    local log="$TMP/server-$1.log"
    shift
    # The log exists before the server starts: the redirection below happens in the background
    # child, and a slow machine ran the first sed before it had created the file.
    : >"$log"
    "$TS" serve -m "$TMP/m.gguf" --port 0 -t 1 --alias tiny --api-key "$KEY" "$@" >"$log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    local port=""
    for _ in $(seq 1 100); do
        port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
        [[ -n $port ]] && break
        kill -0 "$PID" 2>/dev/null || fail "server did not start: $(cat "$log")"
        sleep 0.1
    done
    [[ -n $port ]] || fail "server did not print its port"
    BASE="http://127.0.0.1:$port/v1"
}

KEY=sk-clients-test
start_server think -np 4 -c 2048 --chat-template deepseek-r1
THINK=$BASE
THINK_PID=$PID
start_server plain -np 4 -c 2048 --chat-template deepseek-v3
PLAIN=$BASE
PLAIN_PID=$PID

status=0
for client in openai ai_sdk langchain; do
    echo "---- $client"
    node "$ROOT/tests/server/clients/$client.mjs" "$THINK" "$PLAIN" "$KEY" tiny || status=1
done
[[ $status == 0 ]] || fail "client checks failed (see above)"

# Both servers are still healthy after all that, and stop cleanly.
for pid in "$THINK_PID" "$PLAIN_PID"; do
    kill -TERM "$pid"
    set +e; wait "$pid"; rc=$?; set -e
    [[ $rc == 0 ]] || fail "server exit status after SIGTERM: $rc"
done
echo "PASS"
