#!/usr/bin/env bash
# `tiefsee serve` end to end: a tiny synthetic model behind the server on a free loopback port,
# exercised with curl (routes, errors, streaming, batching, disconnects, SIGTERM) and with the real
# OpenAI npm client (tests/server/openai_client.mjs; skipped when tests/conformance/node_modules lacks it).
# usage: test_serve.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: test_serve.sh BUILD_DIR}
TS="$BUILD/tiefsee"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
TMP=$(mktemp -d -t tiefsee-serve.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$TMP"/*.log; do echo "--- $f" >&2; tail -n 5 "$f" >&2; done; exit 1; }

"$TS" synth tiny-qwen2 -o "$TMP/m.gguf" >/dev/null 2>&1 || fail "synth"

# Starts a server (extra arguments passed on); sets PID and BASE. Port 0: the server picks a free
# port and prints it, so there is no race with other processes choosing ports.
start_server() {
    local log="$TMP/server$1.log"
    shift
    "$TS" serve -m "$TMP/m.gguf" --port 0 -t 1 --alias tiny "$@" >"$log" 2>&1 &
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
    BASE="http://127.0.0.1:$port"
}

KEY=sk-test-123
AUTH=(-H "Authorization: Bearer $KEY")
# post ROUTE JSON -> prints "STATUS BODY"
post() { curl -s -o "$TMP/body" -w '%{http_code}' "${AUTH[@]}" -H 'Content-Type: application/json' "$BASE$1" --data-binary "$2"; echo " $(cat "$TMP/body")"; }
json() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))" "$1" "$2"; }
expect_status() { # expect_status WANT "STATUS BODY" WHAT
    [[ ${2%% *} == "$1" ]] || fail "$3: want HTTP $1, got ${2:0:300}"
    echo "ok: $3"
}

start_server A --api-key "$KEY" -np 4 -c 256 --chat-template deepseek-r1
MAIN_PID=$PID

# ---- basic routes ----
r=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health"); [[ $r == 200 ]] || fail "/health without key: $r"
r=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/models"); [[ $r == 401 ]] || fail "/v1/models without key: $r"
r=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer sk-test-124" "$BASE/v1/models"); [[ $r == 401 ]] || fail "wrong key: $r"
r=$(curl -s "${AUTH[@]}" "$BASE/v1/models"); [[ $(json "$r" 'd["data"][0]["id"]') == tiny ]] || fail "models: $r"
echo "ok: health, models, API key"

CHAT='{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":20,"temperature":0}'
r=$(post /v1/chat/completions "$CHAT"); expect_status 200 "$r" "chat completion"
body=${r#* }
[[ $(json "$body" 'd["usage"]["completion_tokens"]') == 20 ]] || fail "usage: $body"
[[ $(json "$body" 'd["choices"][0]["finish_reason"]') == length ]] || fail "finish_reason: $body"
# R1 format: the reply opens inside <think>, and a random model never closes it: all reasoning.
[[ $(json "$body" 'd["choices"][0]["message"]["content"]') == "" ]] || fail "content of an unclosed think: $body"
WHOLE_REASONING=$(json "$body" 'd["choices"][0]["message"]["reasoning_content"]')
[[ -n $WHOLE_REASONING ]] || fail "no reasoning_content: $body"
# Streamed: deltas add up to the non-streamed answer; the usage chunk comes last, then [DONE].
curl -sN "${AUTH[@]}" "$BASE/v1/chat/completions" --data-binary \
    '{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":20,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}' >"$TMP/sse"
python3 - "$TMP/sse" "$WHOLE_REASONING" <<'PY' || fail "stream"
import json, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l]
assert all(l.startswith("data: ") for l in lines), lines
assert lines[-1] == "data: [DONE]", lines[-1]
events = [json.loads(l[6:]) for l in lines[:-1]]
reasoning = "".join(e["choices"][0]["delta"].get("reasoning_content") or "" for e in events if e["choices"])
assert reasoning == sys.argv[2], (reasoning, sys.argv[2])
assert events[0]["choices"][0]["delta"]["role"] == "assistant"
assert events[-2]["choices"][0]["finish_reason"] == "length"
assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 20
PY
echo "ok: streamed chat equals the whole answer, usage chunk, [DONE]"

r=$(post /v1/completions '{"prompt":"Once upon a time","max_tokens":7,"temperature":0}'); expect_status 200 "$r" "completion"
[[ $(json "${r#* }" 'd["usage"]["completion_tokens"]') == 7 ]] || fail "completion usage: $r"
# prompt_tokens is exact: the same text through /tokenize (with BOS, as completions add it).
n_prompt=$(json "${r#* }" 'd["usage"]["prompt_tokens"]')
t=$(post /tokenize '{"content":"Once upon a time","add_special":true}'); expect_status 200 "$t" "tokenize"
[[ $(json "${t#* }" 'len(d["tokens"])') == "$n_prompt" ]] || fail "prompt_tokens $n_prompt vs tokenize ${t:0:200}"
text=$(json "${r#* }" 'd["choices"][0]["text"]')
# stop: the text up to the first occurrence of a stop string; the stop string itself is not returned.
if [[ ${#text} -ge 3 ]]; then
    stop=${text:1:2}
    r=$(post /v1/completions "$(python3 -c 'import json,sys; print(json.dumps({"prompt":"Once upon a time","max_tokens":7,"temperature":0,"stop":[sys.argv[1]]}))' "$stop")")
    got=$(json "${r#* }" 'd["choices"][0]["text"]')
    want=$(python3 -c 'import sys; print(sys.argv[1][:sys.argv[1].find(sys.argv[2])])' "$text" "$stop")
    [[ $got == "$want" && $(json "${r#* }" 'd["choices"][0]["finish_reason"]') == stop ]] || fail "stop '$stop': '$got' vs '$want'"
    echo "ok: stop string"
fi
r=$(post /v1/completions '{"prompt":[1,2,3],"max_tokens":2,"temperature":0}'); expect_status 200 "$r" "token-id prompt"
[[ $(json "${r#* }" 'd["usage"]["prompt_tokens"]') == 3 ]] || fail "token prompt usage: $r"
r=$(post /detokenize '{"tokens":[326,731]}'); expect_status 200 "$r" "detokenize"

# ---- bad input ----
check_error() { # check_error STATUS PARAM_OR_- ROUTE BODY WHAT
    local r; r=$(post "$3" "$4")
    expect_status "$1" "$r" "$5"
    local b=${r#* }
    [[ $(json "$b" 'sorted(d["error"].keys())') == "['code', 'message', 'param', 'type']" ]] || fail "error shape: $b"
    [[ $2 == - || $(json "$b" 'd["error"]["param"]') == "$2" ]] || fail "param of $5: $b"
}
check_error 400 - /v1/chat/completions '{"messages": [' "invalid JSON"
check_error 400 - /v1/chat/completions '[1,2]' "non-object body"
check_error 400 max_tokens /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}' "max_tokens of the wrong type"
check_error 400 temperature /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"temperature":7}' "temperature out of range"
check_error 400 stream /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"stream":"yes"}' "stream of the wrong type"
check_error 400 n /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"n":2}' "n = 2"
check_error 400 messages /v1/chat/completions '{"messages":[{"role":"wizard","content":"x"}]}' "unknown role"
check_error 400 messages /v1/chat/completions '{"messages":[]}' "empty messages"
check_error 400 messages /v1/chat/completions '{"messages":"hi"}' "messages not an array"
check_error 400 prompt /v1/completions '{"prompt":[1,99999]}' "token id out of range"
check_error 404 - /v1/nothing '{}' "unknown route"
long=$(python3 -c 'print(" ".join(["word"] * 400))')
r=$(post /v1/completions "{\"prompt\":\"$long\"}"); expect_status 400 "$r" "prompt longer than the context"
[[ $(json "${r#* }" 'd["error"]["message"]') =~ ([0-9]+)\ tokens.*holds\ 256 ]] || fail "length message: $r"
python3 -c 'print("{\"prompt\":\"" + "a" * (9 << 20) + "\"}")' >"$TMP/big.json"
r=$(curl -s -o "$TMP/body" -w '%{http_code}' "${AUTH[@]}" "$BASE/v1/completions" --data-binary @"$TMP/big.json")
[[ $r == 413 ]] || fail "oversize body: $r"
echo "ok: oversize body 413"

# ---- continuous batching: 8 concurrent requests (4 slots, so some queue) each equal their own
# single-request answer at temperature 0: sequences in one batch do not mix. ----
req() { echo "{\"messages\":[{\"role\":\"user\",\"content\":\"Question number $1 about topic $(( $1 * 7 ))\"}],\"max_tokens\":$(( 10 + $1 * 3 )),\"temperature\":0}"; }
for i in $(seq 1 8); do post /v1/chat/completions "$(req "$i")" >"$TMP/single$i"; done
CURLS=()
for i in $(seq 1 8); do
    curl -s "${AUTH[@]}" "$BASE/v1/chat/completions" --data-binary "$(req "$i")" >"$TMP/conc$i" &
    CURLS+=($!)
done
for p in "${CURLS[@]}"; do wait "$p"; done
for i in $(seq 1 8); do
    a=$(cut -d' ' -f2- "$TMP/single$i"); b=$(cat "$TMP/conc$i")
    [[ $(json "$a" 'd["choices"][0]["message"]') == "$(json "$b" 'd["choices"][0]["message"]')" ]] || fail "request $i differs when batched: $a vs $b"
    [[ $(json "$b" 'd["usage"]["completion_tokens"]') == $(( 10 + i * 3 )) ]] || fail "usage of concurrent $i: $b"
done
echo "ok: 8 concurrent requests equal their single-request answers"

# ---- the OpenAI npm client ----
if [[ -d $ROOT/tests/conformance/node_modules/openai ]] && command -v node >/dev/null; then
    node "$ROOT/tests/server/openai_client.mjs" "$BASE/v1" "$KEY" tiny || fail "openai client"
else
    echo "SKIP: openai client (run scripts/install-deps.sh to install tests/conformance/node_modules)"
fi

kill -TERM "$MAIN_PID"
set +e; wait "$MAIN_PID"; rc=$?; set -e
[[ $rc == 0 ]] || fail "server A exit status after SIGTERM: $rc"

# ---- one slot, no queue: 429 while busy; a client that disconnects mid-stream frees its slot ----
start_server B --api-key "$KEY" -np 1 --queue 0 -c 16384
LONG='{"prompt":"Once","max_tokens":16000,"temperature":0,"stream":true}'
curl -sN "${AUTH[@]}" "$BASE/v1/completions" --data-binary "$LONG" >"$TMP/long" &
CURL=$!
for _ in $(seq 1 50); do [[ -s $TMP/long ]] && break; sleep 0.1; done
r=$(curl -s -D "$TMP/headers" -o "$TMP/body" -w '%{http_code}' "${AUTH[@]}" "$BASE/v1/completions" --data-binary '{"prompt":"x","max_tokens":1}')
[[ $r == 429 ]] && grep -qi '^retry-after:' "$TMP/headers" || fail "busy server: want 429 with Retry-After, got $r"
echo "ok: 429 with Retry-After when the queue is full"
kill -TERM "$CURL"; wait "$CURL" 2>/dev/null || true
start=$(date +%s)
r=""
for _ in $(seq 1 50); do
    r=$(curl -s -o "$TMP/body" -w '%{http_code}' "${AUTH[@]}" "$BASE/v1/completions" --data-binary '{"prompt":"x","max_tokens":1}')
    [[ $r == 200 ]] && break
    sleep 0.1
done
# (generating the 16000 tokens to the end would take far longer than this bound)
[[ $r == 200 && $(( $(date +%s) - start )) -le 6 ]] || fail "slot not freed after the client disconnected ($r)"
echo "ok: disconnect mid-stream frees the slot"
# ---- SIGTERM with a long request in flight: it completes in full, new connections are refused,
# and the server exits 0. ----
curl -s "${AUTH[@]}" "$BASE/v1/completions" --data-binary '{"prompt":"Once","max_tokens":3000,"temperature":0}' >"$TMP/inflight" &
CURL=$!
sleep 0.5
kill -TERM "$PID"
sleep 0.2
r=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health" || true)
[[ $r != 200 ]] || fail "a new request was served after SIGTERM"
wait "$CURL" || fail "in-flight request failed after SIGTERM"
set +e; wait "$PID"; rc=$?; set -e
[[ $rc == 0 ]] || fail "exit status after SIGTERM: $rc"
b=$(cat "$TMP/inflight")
[[ $(json "$b" 'd["usage"]["completion_tokens"]') == 3000 ]] || fail "in-flight request after SIGTERM: ${b:0:300}"
echo "ok: SIGTERM finishes the request in flight, refuses new ones and exits 0"
echo "PASS"
