#!/usr/bin/env bash
# llama.cpp's tokenizer test vectors (models/ggml-vocab-<name>.gguf + .inp/.out, the outputs of the
# Hugging Face tokenizers) for DeepSeek-LLM and DeepSeek-Coder, run through `tiefsee tokenize
# --jsonl --no-special` (no BOS, control tokens as text: what llama.cpp's test-tokenizer-0 does).
# Every vector must match. The files come from the llama.cpp source bundled with node-llama-cpp
# (tests/conformance/node_modules, installed by scripts/install-deps.sh); without it the test is
# skipped (exit 77). Usage: test_vocab_vectors.sh BUILD_DIR
set -euo pipefail

BUILD=$(cd "${1:?usage: test_vocab_vectors.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TIEFSEE="$BUILD/tiefsee"
BUNDLE=${TS_LLAMA_BUNDLE:-$ROOT/tests/conformance/node_modules/node-llama-cpp/llama/gitRelease.bundle}
VOCABS=(deepseek-llm deepseek-coder qwen2 llama-bpe gpt-2)

if [[ ! -f $BUNDLE ]]; then
    echo "SKIP: llama.cpp source bundle not found at $BUNDLE (run scripts/install-deps.sh)"
    exit 77
fi
command -v git >/dev/null || { echo "SKIP: git is not installed"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; exit 77; }
[[ -x $TIEFSEE ]] || { echo "FAIL: $TIEFSEE not built"; exit 1; }

# Extract only the six files, once, from a bare clone of the bundle kept in the build directory.
DATA="$BUILD/llama-vocab-vectors"
mkdir -p "$DATA"
need_extract=0
for name in "${VOCABS[@]}"; do
    for ext in gguf gguf.inp gguf.out; do
        [[ -s $DATA/ggml-vocab-$name.$ext ]] || need_extract=1
    done
done
if (( need_extract )); then
    GITDIR="$BUILD/llama-src.git"
    if [[ ! -d $GITDIR ]]; then
        git clone --quiet --bare "$BUNDLE" "$GITDIR.tmp"
        mv "$GITDIR.tmp" "$GITDIR"
    fi
    for name in "${VOCABS[@]}"; do
        for ext in gguf gguf.inp gguf.out; do
            git --git-dir="$GITDIR" show "HEAD:models/ggml-vocab-$name.$ext" >"$DATA/ggml-vocab-$name.$ext.tmp"
            mv "$DATA/ggml-vocab-$name.$ext.tmp" "$DATA/ggml-vocab-$name.$ext"
        done
    done
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failed=0
for name in "${VOCABS[@]}"; do
    base="$DATA/ggml-vocab-$name.gguf"
    # .inp: each test text is followed by "\n__ggml_vocab_test__\n"; .out: one line of ids per test.
    python3 - "$base.inp" >"$TMP/$name.jsonl" <<'PY'
import json, sys
data = open(sys.argv[1], "rb").read().decode("utf-8")
sep = "\n__ggml_vocab_test__\n"
pos = 0
while pos < len(data):
    end = data.find(sep, pos)
    if end < 0:
        end = len(data)
    print(json.dumps(data[pos:end]))
    pos = end + len(sep)
PY
    "$TIEFSEE" tokenize -m "$base" --jsonl --no-special -f "$TMP/$name.jsonl" >"$TMP/$name.got"
    if ! python3 - "$TMP/$name.jsonl" "$base.out" "$TMP/$name.got" "$name" <<'PY'; then
import json, sys
texts = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
want = [[int(x) for x in l.split()] for l in open(sys.argv[2], encoding="utf-8").read().split("\n")[: len(texts)]]
got = [json.loads(l) for l in open(sys.argv[3], encoding="utf-8")]
name = sys.argv[4]
if not (len(texts) == len(want) == len(got)) or not texts:
    print(f"{name}: counts differ: {len(texts)} texts, {len(want)} expected lines, {len(got)} results")
    sys.exit(1)
bad = [i for i in range(len(texts)) if want[i] != got[i]]
for i in bad[:10]:
    print(f"{name}: MISMATCH {texts[i]!r}\n  want {want[i]}\n  got  {got[i]}")
print(f"{name}: {len(texts) - len(bad)}/{len(texts)} test vectors match")
sys.exit(1 if bad else 0)
PY
        failed=1
    fi
done
exit "$failed"
