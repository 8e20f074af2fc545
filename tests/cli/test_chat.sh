#!/usr/bin/env bash
# `tiefsee chat` with stdin not a terminal, on a tiny random-weight DeepSeek-V3-style model: one answer
# per input line and exit at EOF, multi-line input, KV reuse between turns, /set, /save + /load round
# trip, /clear, usage errors. Usage: bash tests/cli/test_chat.sh BUILD_DIR
set -u
BUILD=${1:?usage: test_chat.sh BUILD_DIR}
TS="$BUILD/tiefsee"
[ -x "$TS" ] || { echo "test_chat: $TS not found"; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failures=0
fail() { echo "test_chat: FAIL: $*"; failures=$((failures + 1)); }

"$TS" synth tiny-deepseek3 -o "$WORK/m.gguf" >/dev/null 2>&1 || { echo "test_chat: FAIL: cannot synthesize"; exit 1; }
CHAT=("$TS" chat -m "$WORK/m.gguf" -c 512 -n 6 -t 1 --verbose)

# Two lines in, two answers out, exit 0 at EOF; the second turn reuses the first one's cache.
printf 'Hello there\nAnd a second question\n' | timeout 120 "${CHAT[@]}" -s 7 >"$WORK/out" 2>"$WORK/err"
rc=$?
[ "$rc" -eq 0 ] || fail "two turns: exit $rc ($(tail -3 "$WORK/err"))"
[ "$(grep -c '^tiefsee: prompt ' "$WORK/err")" -eq 2 ] || fail "two turns: expected 2 answers: $(cat "$WORK/err")"
grep -q 'no tokenizer.chat_template; using deepseek-v3' "$WORK/err" || fail "missing-template warning"
reused=$(grep '^tiefsee: prompt ' "$WORK/err" | sed -n 2p | sed 's/.*tokens, \([0-9]*\) reused.*/\1/')
[ "${reused:-0}" -gt 0 ] || fail "second turn reuses the KV cache (reused '${reused:-}')"

# Multi-line input is one message.
printf '"""first line\nsecond line\nthird"""\n' | timeout 120 "${CHAT[@]}" -s 7 >"$WORK/out" 2>"$WORK/err"
[ "$(grep -c '^tiefsee: prompt ' "$WORK/err")" -eq 1 ] || fail "multi-line input: expected 1 answer"

# /set temp 0 makes answers greedy: two different seeds give the same text.
printf '/set temp 0\nHi\n' | timeout 120 "${CHAT[@]}" -s 1 >"$WORK/a" 2>"$WORK/err"
grep -q '^temp = 0$' "$WORK/err" || fail "/set temp echoes the new value"
printf '/set temp 0\nHi\n' | timeout 120 "${CHAT[@]}" -s 2 >"$WORK/b" 2>/dev/null
cmp -s "$WORK/a" "$WORK/b" || fail "/set temp 0 gives greedy (seed-independent) answers"
printf '/set top_k 1\n/set top_p 0.5\n/set min_p 0.1\n/set repeat_penalty 1.1\n/set seed 3\n/set nonsense 1\n/set temp abc\n' |
    timeout 60 "${CHAT[@]}" >"$WORK/out" 2>"$WORK/err"
[ "$(grep -c ' = ' "$WORK/err")" -eq 5 ] || fail "/set of top_k, top_p, min_p, repeat_penalty, seed: $(cat "$WORK/err")"
grep -q "unknown parameter 'nonsense'" "$WORK/err" || fail "/set rejects unknown names"
grep -q "bad value 'abc'" "$WORK/err" || fail "/set rejects bad values"

# /save, /clear, /load, /save again: the same file; a loaded conversation continues.
printf 'Hello\n/save %s\n/clear\n/load %s\n/save %s\nMore\n/load %s/missing.json\n/bye\nnot read\n' \
    "$WORK/s1.json" "$WORK/s1.json" "$WORK/s2.json" "$WORK" | timeout 120 "${CHAT[@]}" -s 5 >"$WORK/out" 2>"$WORK/err"
rc=$?
[ "$rc" -eq 0 ] || fail "/save-/load session: exit $rc"
[ -s "$WORK/s1.json" ] && cmp -s "$WORK/s1.json" "$WORK/s2.json" || fail "/save after /load writes the same JSON"
grep -q '"role": "user"' "$WORK/s1.json" && grep -q '"role": "assistant"' "$WORK/s1.json" ||
    fail "saved conversation has the user and assistant turns"
grep -q 'loaded 2 messages' "$WORK/err" || fail "/load reports the messages"
grep -q '^/load: ' "$WORK/err" || fail "/load of a missing file is reported"
[ "$(grep -c '^tiefsee: prompt ' "$WORK/err")" -eq 2 ] || fail "/bye ends the session (later lines not answered)"
reused=$(grep '^tiefsee: prompt ' "$WORK/err" | sed -n 2p | sed 's/.*tokens, \([0-9]*\) reused.*/\1/')
[ "${reused:-0}" -gt 0 ] || fail "after /load of the same conversation the cache is reused"

# The chat format can be chosen; R1's defaults (temp 0.6) apply unless overridden.
printf 'Hi\n' | timeout 60 "${CHAT[@]}" --chat-template deepseek-r1 --hide-thinking >"$WORK/out" 2>"$WORK/err"
grep -q 'chat format deepseek-r1; temp 0.60, top-p 0.95' "$WORK/err" || fail "R1 defaults: $(head -3 "$WORK/err")"
printf 'Hi\n' | timeout 60 "${CHAT[@]}" --chat-template deepseek-r1 --temp 0.3 >"$WORK/out" 2>"$WORK/err"
grep -q 'temp 0.30' "$WORK/err" || fail "--temp overrides the family default"

# Usage errors.
"$TS" chat -m "$WORK/m.gguf" --chat-template nonsense </dev/null >/dev/null 2>&1
[ $? -eq 2 ] || fail "unknown --chat-template is a usage error"
"$TS" chat </dev/null >/dev/null 2>&1
[ $? -eq 2 ] || fail "chat without -m is a usage error"
"$TS" chat --help | grep -q 'usage: tiefsee chat' || fail "chat --help"

if [ "$failures" -ne 0 ]; then
    echo "test_chat: $failures failures"
    exit 1
fi
echo "test_chat: ok"
