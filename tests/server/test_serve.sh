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
    # The log exists before the server starts: the redirection below happens in the background
    # child, and a slow machine ran the first sed before it had created the file.
    : >"$log"
    "$TS" serve -m "${SERVE_MODEL:-$TMP/m.gguf}" --port 0 -t 1 --alias tiny "$@" >"$log" 2>&1 &
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
add_field() { printf '%s,%s}' "${1%\}}" "$2"; } # add_field JSON_OBJECT '"key":value'
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

# ---- tools: definitions, assistant tool_calls and tool results reach the prompt in the model's
# own format (R1: llama.cpp's tools block after BOS; calls fenced; outputs wrapped) ----
TOOLS_REQ='{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Weather in Paris?"},
{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
{"role":"tool","tool_call_id":"call_1","content":"{\"temp\":21}"}],
"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}'
r=$(post /apply-template "$TOOLS_REQ"); expect_status 200 "$r" "apply-template with tools"
python3 - "${r#* }" <<'PY' || fail "R1 tools prompt: ${r:0:600}"
import json, sys
got = json.loads(sys.argv[1])["prompt"]
B, S = "\uff5c", "\u2581"
def tag(*w): return "<" + B + S.join(w) + B + ">"
fns = [{"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
want = (tag("begin", "of", "sentence") + "You can call any of the following function tools to satisfy the user's requests: "
        + json.dumps(fns, indent=2, ensure_ascii=False) + "\n\nExample function tool call syntax:\n\n"
        + tag("tool", "calls", "begin") + tag("tool", "call", "begin") + "function" + tag("tool", "sep")
        + 'example_function_name\n```json\n{\n  "arg1": "some_value"\n  ...\n}\n```\n' + tag("tool", "call", "end") + tag("tool", "calls", "end")
        + "\n\nBe brief." + tag("User") + "Weather in Paris?" + tag("Assistant") + tag("tool", "calls", "begin") + tag("tool", "call", "begin")
        + "function" + tag("tool", "sep") + 'get_weather\n```json\n{"city":"Paris"}\n```' + tag("tool", "call", "end")
        + tag("tool", "outputs", "begin") + tag("tool", "output", "begin") + '{"temp":21}' + tag("tool", "output", "end") + tag("tool", "outputs", "end"))
assert got == want, (got, want)
PY
r=$(post /apply-template "$(add_field "$TOOLS_REQ" '"tool_choice":"none"')"); expect_status 200 "$r" "tool_choice none"
[[ $(json "${r#* }" '"function tools" in d["prompt"] or "get_weather\"," in d["prompt"]') == False ]] || fail "tool_choice none still describes the tools: $r"
check_error 400 tools /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"tools":{"a":1}}' "tools not an array"
check_error 400 tools /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{}}]}' "tool without a name"
check_error 400 tool_choice /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"tool_choice":"required"}' "unsupported tool_choice"
check_error 400 messages /v1/chat/completions '{"messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]}' "tool call without arguments"
check_error 400 messages /v1/chat/completions '{"messages":[{"role":"user","content":"x","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]}' "tool_calls on a user message"

# ---- logprobs ----
check_error 400 top_logprobs /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21}' "top_logprobs 21"
check_error 400 logprobs /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"logprobs":"yes"}' "logprobs of the wrong type"
check_error 400 logprobs /v1/completions '{"prompt":"x","logprobs":true}' "legacy logprobs must be a number"
check_error 400 response_format /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}}' "response_format json_schema"
LP='{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":6,"temperature":0,"logprobs":true,"top_logprobs":3}'
r=$(post /v1/chat/completions "$LP"); expect_status 200 "$r" "chat logprobs"
python3 - "${r#* }" <<'PY' || fail "chat logprobs shape: ${r:0:800}"
import json, sys
d = json.loads(sys.argv[1])
c = d["choices"][0]["logprobs"]["content"]
assert len(c) == d["usage"]["completion_tokens"] == 6, len(c)
text = ""
for e in c:
    assert e["logprob"] <= 0 and len(e["top_logprobs"]) == 3, e
    assert bytes(e["bytes"]).decode("utf-8", "replace") == e["token"], e
    tops = [t["logprob"] for t in e["top_logprobs"]]
    assert tops == sorted(tops, reverse=True), tops
    # temperature 0 picks the most likely token
    assert e["top_logprobs"][0]["token"] == e["token"] and abs(tops[0] - e["logprob"]) < 1e-4, e
    text += e["token"]
m = d["choices"][0]["message"]
assert text.replace("\ufffd", "").strip() == (m.get("reasoning_content") or "").replace("\ufffd", ""), (text, m)
PY
curl -sN "${AUTH[@]}" "$BASE/v1/chat/completions" --data-binary "$(add_field "$LP" '"stream":true')" >"$TMP/sse_lp"
python3 - "$TMP/sse_lp" "${r#* }" <<'PY' || fail "streamed logprobs"
import json, sys
events = [json.loads(l[6:]) for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l.startswith("data: {")]
got = [e2 for e in events for c in e["choices"] if c.get("logprobs") for e2 in c["logprobs"]["content"]]
want = json.loads(sys.argv[2])["choices"][0]["logprobs"]["content"]
assert [(x["token"], round(x["logprob"], 4)) for x in got] == [(x["token"], round(x["logprob"], 4)) for x in want], (got, want)
PY
r=$(post /v1/completions '{"prompt":"Once upon a time","max_tokens":5,"temperature":0,"logprobs":2}'); expect_status 200 "$r" "legacy logprobs"
python3 - "${r#* }" <<'PY' || fail "legacy logprobs shape: ${r:0:600}"
import json, sys
d = json.loads(sys.argv[1]); lp = d["choices"][0]["logprobs"]
assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(lp["text_offset"]) == 5, lp
assert all(len(t) <= 2 and all(v <= 0 for v in t.values()) for t in lp["top_logprobs"]), lp
assert lp["text_offset"][0] == 0 and all(a <= b for a, b in zip(lp["text_offset"], lp["text_offset"][1:])), lp
PY
echo "ok: logprobs (chat, streamed, legacy)"

# ---- response_format json_object: at temperature 1 a random model still answers one JSON object ----
for seed in 1 2 3; do
    r=$(post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"Give me JSON\"}],\"max_tokens\":200,\"temperature\":1,\"seed\":$seed,\"response_format\":{\"type\":\"json_object\"}}")
    expect_status 200 "$r" "json_object seed $seed"
    # A reply cut off by max_tokens (finish_reason "length") cannot be complete; any other must parse.
    json "${r#* }" 'd["choices"][0]["finish_reason"] == "length" and d["choices"][0]["message"]["content"].lstrip().startswith("{") or isinstance(json.loads(d["choices"][0]["message"]["content"]), dict) or exit(1)' >/dev/null || fail "json_object reply is not a JSON object: $r"
done

# ---- usage details: the R1 reply never closes <think>, so every token is reasoning; a repeated
# long prompt is served from the prefix cache ----
[[ $(json "$body" 'd["usage"]["completion_tokens_details"]["reasoning_tokens"]') == 20 ]] || fail "reasoning_tokens: $body"
LONGP=$(python3 -c 'import json; print(json.dumps({"messages":[{"role":"system","content":"You are a careful assistant. " * 8},{"role":"user","content":"Summarize the rules."}],"max_tokens":2,"temperature":0}))')
post /v1/chat/completions "$LONGP" >/dev/null
r=$(post /v1/chat/completions "$LONGP"); expect_status 200 "$r" "repeated prompt"
[[ $(json "${r#* }" 'd["usage"]["prompt_tokens_details"]["cached_tokens"] > 0') == True ]] || fail "no cached tokens on a repeated prompt: $r"
echo "ok: usage cached_tokens and reasoning_tokens"

# ---- metrics ----
r=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/metrics"); [[ $r == 401 ]] || fail "/metrics without key: $r"
curl -s "${AUTH[@]}" "$BASE/metrics" >"$TMP/metrics"
python3 - "$TMP/metrics" <<'PY' || fail "metrics: $(head -c 1500 "$TMP/metrics")"
import re, sys
text = open(sys.argv[1]).read()
samples = {}
for line in text.splitlines():
    if line.startswith("#"):
        assert re.match(r"# (HELP|TYPE) tiefsee_\w+ ", line), line
        continue
    name, value = line.rsplit(" ", 1)
    samples[name] = float(value)
assert "# TYPE tiefsee_requests_total counter" in text
assert samples['tiefsee_requests_total{route="/v1/chat/completions",code="200"}'] >= 10, samples
assert samples['tiefsee_requests_total{route="/v1/chat/completions",code="400"}'] >= 10, samples
assert samples['tiefsee_requests_total{route="/v1/models",code="401"}'] >= 1, samples
assert samples["tiefsee_slots"] == 4 and samples["tiefsee_slots_busy"] == 0, samples
assert samples["tiefsee_generated_tokens_total"] >= 100 and samples["tiefsee_prompt_tokens_cached_total"] > 0, samples
assert samples["tiefsee_decode_seconds_total"] > 0, samples
for n in ("tiefsee_queue_length", "tiefsee_prompt_tokens_total", "tiefsee_generated_tokens_per_second"):
    assert n in samples, n
PY
echo "ok: /metrics"

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
# (12000 tokens: ~4.5 s on a Zen 5 core, where 3000 were done before the signal and so tested nothing)
curl -s "${AUTH[@]}" "$BASE/v1/completions" --data-binary '{"prompt":"Once","max_tokens":12000,"temperature":0}' >"$TMP/inflight" &
CURL=$!
sleep 0.5
kill -0 "$CURL" 2>/dev/null || fail "the long request finished within 0.5 s: this test needs a longer one on this machine"
kill -TERM "$PID"
sleep 0.2
r=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health" || true)
[[ $r != 200 ]] || fail "a new request was served after SIGTERM"
wait "$CURL" || fail "in-flight request failed after SIGTERM"
set +e; wait "$PID"; rc=$?; set -e
[[ $rc == 0 ]] || fail "exit status after SIGTERM: $rc"
b=$(cat "$TMP/inflight")
[[ $(json "$b" 'd["usage"]["completion_tokens"]') == 12000 ]] || fail "in-flight request after SIGTERM: ${b:0:300}"
echo "ok: SIGTERM finishes the request in flight, refuses new ones and exits 0"

# ---- V3.1 with a larger context: a tool round trip through generation (the tools block fits),
# tools in the V3.1 system prompt, streaming with tools, the OpenAI client's tool types ----
start_server C --api-key "$KEY" -np 2 -c 16384 --chat-template deepseek-v3.1
r=$(post /apply-template "$TOOLS_REQ"); expect_status 200 "$r" "V3.1 apply-template with tools"
python3 - "${r#* }" <<'PY' || fail "V3.1 tools prompt: ${r:0:900}"
import json, sys
p = json.loads(sys.argv[1])["prompt"]
B, S = "\uff5c", "\u2581"
def tag(*w): return "<" + B + S.join(w) + B + ">"
head = tag("begin", "of", "sentence") + "Be brief.\n\n## Tools\nYou have access to the following tools:\n\n### get_weather\nDescription: Current weather\n\nParameters: " + json.dumps({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}) + "\n\nIMPORTANT"
assert p.startswith(head), p
tail = (tag("User") + "Weather in Paris?" + tag("Assistant") + "<think></think>" + tag("tool", "calls", "begin") + tag("tool", "call", "begin")
        + "get_weather" + tag("tool", "sep") + '{"city": "Paris"}' + tag("tool", "call", "end") + tag("tool", "calls", "end")
        + tag("end", "of", "sentence") + tag("tool", "output", "begin") + '{"temp":21}' + tag("tool", "output", "end"))
assert p.endswith(tail), p
PY
r=$(post /v1/chat/completions "$(add_field "$TOOLS_REQ" '"max_tokens":8,"temperature":0')"); expect_status 200 "$r" "chat completion with tools and tool results"
# A random model writes no tool-call block: the reply is plain content and finish_reason is not tool_calls.
[[ $(json "${r#* }" 'd["choices"][0]["finish_reason"]') == length ]] || fail "tools reply finish: $r"
WHOLE=$(json "${r#* }" 'd["choices"][0]["message"]["content"]')
curl -sN "${AUTH[@]}" "$BASE/v1/chat/completions" --data-binary "$(add_field "$TOOLS_REQ" '"max_tokens":8,"temperature":0,"stream":true')" >"$TMP/sse_tools"
python3 - "$TMP/sse_tools" "$WHOLE" <<'PY' || fail "streamed reply with tools: $(head -c 800 "$TMP/sse_tools")"
import json, sys
events = [json.loads(l[6:]) for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l.startswith("data: {")]
content = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
assert content.strip() == sys.argv[2], (content, sys.argv[2])
PY
echo "ok: tools round trip on V3.1 (prompt, whole and streamed)"
if [[ -d $ROOT/tests/conformance/node_modules/openai ]] && command -v node >/dev/null; then
    node "$ROOT/tests/server/openai_client.mjs" "$BASE/v1" "$KEY" tiny tools || fail "openai client (tools)"
fi

# ---- SIGINT twice: the first starts the drain (a long request keeps it busy), the second exits at once with 130 ----
# The request must outlast the 0.8 s below on any machine: the tiny model decodes ~8900 tokens/s on
# a Zen 5 core, so 3900 tokens were over before the first SIGINT there; 16000 tokens, whose attention
# grows with the cache, take ~4.7 s on that machine.
curl -s "${AUTH[@]}" "$BASE/v1/completions" --data-binary '{"prompt":"Once","max_tokens":16000,"temperature":0}' >/dev/null 2>&1 &
CURL=$!
sleep 0.5
kill -0 "$CURL" 2>/dev/null || fail "the long request finished within 0.5 s: this test needs a longer one on this machine"
kill -INT "$PID"
sleep 0.3
kill -0 "$PID" 2>/dev/null || fail "the first SIGINT did not wait for the request in flight"
start=$(date +%s%N)
kill -INT "$PID"
set +e; wait "$PID"; rc=$?; set -e
(( ($(date +%s%N) - start) / 1000000 < 3000 )) || fail "the second SIGINT did not exit at once"
[[ $rc == 130 ]] || fail "exit status after two SIGINTs: $rc"
wait "$CURL" 2>/dev/null || true
echo "ok: a second SIGINT exits at once with status 130"

# ---- --repack: the server repacks the weights at start, says what it cost, and serves ----
"$TS" synth tiny-qwen2 --type q4_K -o "$TMP/mq.gguf" >/dev/null 2>&1 || fail "synth q4_K"
SERVE_MODEL="$TMP/mq.gguf" start_server D --api-key "$KEY" -np 2 -c 256 --repack
grep -q 'repacked [0-9]* weight matrices' "$TMP/serverD.log" || fail "--repack: no report in the log"
r=$(post /v1/completions '{"prompt":"Once upon","max_tokens":5,"temperature":0}'); expect_status 200 "$r" "completion from a repacked model"
[[ $(json "${r#* }" 'd["usage"]["completion_tokens"]') == 5 ]] || fail "repacked completion: ${r:0:300}"
kill -TERM "$PID"
set +e; wait "$PID"; rc=$?; set -e
[[ $rc == 0 ]] || fail "repacked server exit status $rc"
echo "ok: --repack"

# ---- the default repacks a model this small too (and says so); --no-repack keeps the file layout ----
SERVE_MODEL="$TMP/mq.gguf" start_server E -np 1 -c 128
if ! grep -q 'repacked 0 weight matrices' "$TMP/serverD.log"; then # (a CPU with repacked kernels)
    grep -q 'repacked [0-9]* weight matrices' "$TMP/serverE.log" || fail "default layout: no repack report in the log"
fi
kill -TERM "$PID"; set +e; wait "$PID"; set -e
SERVE_MODEL="$TMP/mq.gguf" start_server F -np 1 -c 128 --no-repack
! grep -q 'repacked' "$TMP/serverF.log" || fail "--no-repack: the log says it repacked"
r=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health"); [[ $r == 200 ]] || fail "--no-repack server health: $r"
kill -TERM "$PID"; set +e; wait "$PID"; set -e
echo "ok: default layout and --no-repack"
echo "PASS"
