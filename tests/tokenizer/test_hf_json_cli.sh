#!/usr/bin/env bash
# `tiefsee tokenize -m` with a tokenizer.json, a HF model folder (tokenizer_config.json's BOS) and
# a GGUF; every malformed tokenizer.json of the fuzz seed corpus refused with exit 1 and one line;
# `tiefsee bench --tokenizer` on each kind of vocabulary. Usage: test_hf_json_cli.sh BUILD_DIR
set -euo pipefail

BUILD=$(cd "${1:?usage: test_hf_json_cli.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TIEFSEE="$BUILD/tiefsee"
CORPUS="$ROOT/fuzz/corpus/tokenizer_json"
[[ -x $TIEFSEE ]] || { echo "FAIL: $TIEFSEE not built"; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# The seed vocabulary: a b ab Ġ Ġa 1 ä ½ c = 0..8, <s> = 9 (special), <tool> = 10; merges a+b, Ġ+a.
got=$("$TIEFSEE" tokenize -m "$CORPUS/valid_gpt2" "ab a<s>c<tool>")
[[ $got == "2 4 9 8 10" ]] || fail "tokenizer.json: got '$got'"
got=$("$TIEFSEE" tokenize -m "$CORPUS/valid_array_merges" "ab a")
[[ $got == "2 4" ]] || fail "array merges: got '$got'"

# A folder: tokenizer.json + tokenizer_config.json naming the BOS token.
mkdir "$TMP/model"
cp "$CORPUS/valid_gpt2" "$TMP/model/tokenizer.json"
echo '{"add_bos_token": true, "bos_token": {"content": "<s>"}, "eos_token": "<tool>"}' > "$TMP/model/tokenizer_config.json"
got=$("$TIEFSEE" tokenize -m "$TMP/model" --bos "ab")
[[ $got == "9 2" ]] || fail "folder with BOS: got '$got'"
got=$(printf '"ab"\n""\n' | "$TIEFSEE" tokenize -m "$TMP/model/tokenizer.json" --jsonl)
[[ $got == $'[2]\n[]' ]] || fail "jsonl: got '$got'"

# Refusals: exit status 1, exactly one line on stderr, nothing on stdout.
n_bad=0
for f in "$CORPUS"/bad_*; do
    [[ $(basename "$f") == bad_config* ]] && continue # these are fuzz inputs with an embedded config
    set +e
    "$TIEFSEE" tokenize -m "$f" x > "$TMP/out" 2> "$TMP/err"
    rc=$?
    set -e
    [[ $rc -eq 1 ]] || fail "$(basename "$f"): exit status $rc, want 1"
    [[ ! -s $TMP/out && $(wc -l < "$TMP/err") -eq 1 ]] || fail "$(basename "$f"): not one line: $(cat "$TMP/err")"
    n_bad=$((n_bad + 1))
done
(( n_bad >= 15 )) || fail "only $n_bad bad inputs found"
cp "$CORPUS/valid_gpt2" "$TMP/model/tokenizer.json"
echo '{"bos_token": "<nope>"}' > "$TMP/model/tokenizer_config.json"
if "$TIEFSEE" tokenize -m "$TMP/model" x 2> "$TMP/err"; then fail "unknown bos_token accepted"; fi
grep -q 'bos_token "<nope>" is not in the vocabulary' "$TMP/err" || fail "bos_token message: $(cat "$TMP/err")"

# GGUF input still works through the same -m, and bench runs on both kinds.
"$TIEFSEE" synth tiny-qwen2 -o "$TMP/tiny.gguf" > /dev/null 2>&1
got=$("$TIEFSEE" tokenize -m "$TMP/tiny.gguf" "Hello")
[[ -n $got ]] || fail "GGUF tokenize printed nothing"
for vocab in "$TMP/tiny.gguf" "$CORPUS/valid_gpt2"; do
    out=$("$TIEFSEE" bench --tokenizer -m "$vocab" --mb 1 --repeat 1)
    grep -q '^encode throughput: [0-9.]* MB/s$' <<< "$out" || fail "bench on $vocab: $out"
done
if "$TIEFSEE" bench --tokenizer 2> /dev/null; then fail "bench --tokenizer without a model accepted"; fi
echo "tokenizer.json CLI: ok ($n_bad malformed inputs refused)"
