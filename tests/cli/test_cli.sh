#!/usr/bin/env bash
# End-to-end checks of the tiefsee executable: help/version, usage errors (exit 2), model errors
# (exit 1, one line), and info/logits/run on a tiny random-weight model made with `tiefsee synth`.
# Usage: bash tests/cli/test_cli.sh BUILD_DIR
set -u
BUILD=${1:?usage: test_cli.sh BUILD_DIR}
TS="$BUILD/tiefsee"
[ -x "$TS" ] || { echo "test_cli: $TS not found"; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failures=0

fail() { echo "test_cli: FAIL: $*"; failures=$((failures + 1)); }

# expect_rc CODE DESCRIPTION -- COMMAND...: runs the command (stdout/stderr captured) and checks the exit code.
expect_rc() {
    local want=$1 what=$2
    shift 3
    "$@" >"$WORK/out" 2>"$WORK/err" </dev/null
    local rc=$?
    [ "$rc" -eq "$want" ] || fail "$what: exit $rc, expected $want (stderr: $(head -c 300 "$WORK/err"))"
}

# The error output must be exactly one line.
expect_one_line() {
    local n
    n=$(wc -l <"$WORK/err")
    [ "$n" -eq 1 ] || fail "$1: expected one line on stderr, got $n: $(cat "$WORK/err")"
}

# --- help and version -------------------------------------------------------------------------
expect_rc 0 "--version" -- "$TS" --version
grep -q '^tiefsee [0-9]' "$WORK/out" || fail "--version prints 'tiefsee X.Y.Z'"
expect_rc 0 "--help" -- "$TS" --help
grep -q 'run' "$WORK/out" && grep -q 'logits' "$WORK/out" || fail "--help lists the commands"
for cmd in run logits info synth; do
    expect_rc 0 "$cmd --help" -- "$TS" "$cmd" --help
    grep -q "usage: tiefsee $cmd" "$WORK/out" || fail "$cmd --help shows its usage"
done
expect_rc 0 "run --help lists llama.cpp's flags" -- "$TS" run --help
for flag in --temp --top-k --top-p --min-p --repeat-penalty --repeat-last-n --seed --n-predict --ctx-size --threads; do
    grep -q -- "$flag" "$WORK/out" || fail "run --help mentions $flag"
done

# --- usage errors: one line, exit 2 -------------------------------------------------------------
expect_rc 2 "no command" -- "$TS"
expect_rc 2 "unknown command" -- "$TS" frobnicate
expect_one_line "unknown command"
expect_rc 2 "unknown global flag" -- "$TS" --frobnicate
expect_one_line "unknown global flag"
expect_rc 2 "unknown run flag" -- "$TS" run --frobnicate
expect_one_line "unknown run flag"
expect_rc 2 "missing value" -- "$TS" run -m x.gguf -p hi -n
expect_one_line "missing value"
for bad in "-n abc" "-n 12x" "-n 99999999999999999999" "-n -2" "--temp nan" "--temp 1e99" "--top-k -1" "-c -5" \
    "--seed -7" "--seed 18446744073709551616" "-t 1.5" "--cache-type q8" "--repeat-penalty 0"; do
    # shellcheck disable=SC2086
    expect_rc 2 "bad number/value '$bad'" -- "$TS" run -m x.gguf -p hi $bad
    expect_one_line "bad number/value '$bad'"
done
expect_rc 2 "-p and -f together" -- "$TS" run -m x.gguf -p hi -f x.txt
expect_rc 2 "logits without tokens" -- "$TS" logits -m x.gguf -o "$WORK/x.f32"
expect_rc 2 "logits with a bad token list" -- "$TS" logits -m x.gguf --tokens 1,,2 -o "$WORK/x.f32"
expect_rc 2 "logits with a negative token" -- "$TS" logits -m x.gguf --tokens 1,-2 -o "$WORK/x.f32"
expect_rc 2 "synth without -o" -- "$TS" synth tiny-llama
expect_rc 2 "info without a model" -- "$TS" info

# --- model errors: one line, exit 1 ------------------------------------------------------------
printf 'this is not a gguf file, just some text long enough to be read\n' >"$WORK/bad.gguf"
expect_rc 1 "info on a bad model file" -- "$TS" info "$WORK/bad.gguf"
expect_one_line "info on a bad model file"
expect_rc 1 "run on a bad model file" -- "$TS" run -m "$WORK/bad.gguf" -p hi
expect_one_line "run on a bad model file"
expect_rc 1 "logits on a missing model file" -- "$TS" logits -m "$WORK/missing.gguf" --tokens 1 -o "$WORK/x.f32"
expect_one_line "logits on a missing model file"

# --- synth ------------------------------------------------------------------------------------
expect_rc 0 "synth --list" -- "$TS" synth --list
grep -q '^tiny-llama ' "$WORK/out" || fail "synth --list shows tiny-llama"
grep -q '^demo ' "$WORK/out" || fail "synth --list shows demo"
expect_rc 1 "synth of an unknown preset" -- "$TS" synth no-such-preset -o "$WORK/x.gguf"
MODEL="$WORK/tiny.gguf"
expect_rc 0 "synth tiny-llama" -- "$TS" synth tiny-llama -o "$MODEL" --seed 7
if [ ! -s "$MODEL" ]; then
    fail "synth tiny-llama wrote no model; skipping the model checks"
    echo "test_cli: $failures failure(s)"
    exit 1
fi
expect_rc 1 "synth refuses to overwrite without --force" -- "$TS" synth tiny-llama -o "$MODEL"
expect_rc 0 "synth --force overwrites" -- "$TS" synth tiny-llama -o "$MODEL" --seed 7 --force

# --- info -------------------------------------------------------------------------------------
expect_rc 0 "info MODEL" -- "$TS" info "$MODEL"
grep -q 'llama' "$WORK/out" || fail "info names the architecture"
N_VOCAB=$(sed -n 's/^n_vocab: *\([0-9][0-9]*\).*/\1/p' "$WORK/out")
[ -n "$N_VOCAB" ] || fail "info shows n_vocab"
expect_rc 0 "info -m MODEL" -- "$TS" info -m "$MODEL"

# --- logits -----------------------------------------------------------------------------------
TOKENS=1,5,9,200,3,77,15
N_TOKENS=7
expect_rc 0 "logits (batch)" -- "$TS" logits -m "$MODEL" --tokens $TOKENS -o "$WORK/batch.f32"
expect_rc 0 "logits (step)" -- "$TS" logits -m "$MODEL" --tokens $TOKENS --step -o "$WORK/step.f32"
expect_rc 0 "logits to a pipe" -- "$TS" logits -m "$MODEL" --tokens $TOKENS --cache-type f32
cp "$WORK/out" "$WORK/piped.f32"
if [ -n "$N_VOCAB" ]; then
    want=$((N_TOKENS * N_VOCAB * 4))
    for f in batch step piped; do
        size=$(wc -c <"$WORK/$f.f32")
        [ "$size" -eq "$want" ] || fail "logits file $f: $size bytes, expected $want (n_tokens x n_vocab x 4)"
    done
    expect_rc 2 "logits with a token outside the vocabulary" -- "$TS" logits -m "$MODEL" --tokens 1,"$N_VOCAB" -o "$WORK/x.f32"
fi
# Batch and one-token-at-a-time decoding must agree to float rounding; f32 and f16 caches closely.
compare_logits() {
    python3 - "$@" <<'EOF'
import struct, sys
a_path, b_path, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
a = open(a_path, "rb").read()
b = open(b_path, "rb").read()
if len(a) != len(b) or len(a) % 4:
    sys.exit("sizes differ: %d vs %d" % (len(a), len(b)))
n = len(a) // 4
x = struct.unpack("<%df" % n, a)
y = struct.unpack("<%df" % n, b)
if any(v != v for v in x + y):
    sys.exit("NaN in logits")
scale = max(1e-6, max(abs(v) for v in x))
worst = max(abs(p - q) for p, q in zip(x, y)) / scale
if worst > tol:
    sys.exit("max difference %.3g of the largest logit exceeds %.3g" % (worst, tol))
EOF
}
if command -v python3 >/dev/null 2>&1; then
    compare_logits "$WORK/batch.f32" "$WORK/step.f32" 1e-3 || fail "--step and batch logits disagree"
    compare_logits "$WORK/batch.f32" "$WORK/piped.f32" 2e-2 || fail "f32-cache logits are far from f16-cache logits"
    # The logits must also depend on the tokens (a constant output would pass the other checks).
    "$TS" logits -m "$MODEL" --tokens 2,5,9,200,3,77,15 -o "$WORK/other.f32" 2>/dev/null
    if compare_logits "$WORK/batch.f32" "$WORK/other.f32" 1e-6 2>/dev/null; then
        fail "logits do not depend on the input tokens"
    fi
else
    cmp -s "$WORK/batch.f32" "$WORK/step.f32" || fail "--step and batch logits differ (python3 not found for a tolerant compare)"
fi

# --- logits --repack: the repacked layout gives the file layout's logits within float rounding, and
# one-token decoding stays bit-identical to the batch (tests/model/test_repack_model.c covers every
# architecture and type; this checks the flag end to end).
MODELQ="$WORK/tiny-q4k.gguf"
expect_rc 0 "synth tiny-llama q4_K" -- "$TS" synth tiny-llama --type q4_K -o "$MODELQ" --seed 7
expect_rc 0 "logits (q4_K)" -- "$TS" logits -m "$MODELQ" --tokens $TOKENS -o "$WORK/q.f32"
expect_rc 0 "logits --repack" -- "$TS" logits -m "$MODELQ" --tokens $TOKENS --repack -o "$WORK/qr.f32"
grep -q 'repacked [0-9]* weight matrices' "$WORK/err" || fail "--repack reports what it repacked"
expect_rc 0 "logits --repack --step" -- "$TS" logits -m "$MODELQ" --tokens $TOKENS --repack --step -o "$WORK/qrs.f32"
cmp -s "$WORK/qr.f32" "$WORK/qrs.f32" || fail "--repack: --step and batch logits differ"
if command -v python3 >/dev/null 2>&1; then
    compare_logits "$WORK/q.f32" "$WORK/qr.f32" 1e-3 || fail "--repack logits are far from the file layout's"
fi

# --- run --------------------------------------------------------------------------------------
expect_rc 0 "run with a fixed seed" -- "$TS" run -m "$MODEL" -p "Hello world" -n 12 -s 42
cp "$WORK/out" "$WORK/run1.txt"
grep -q 'context' "$WORK/err" || fail "run states the context size on stderr"
[ -s "$WORK/run1.txt" ] || fail "run printed nothing"
expect_rc 0 "run again with the same seed" -- "$TS" run -m "$MODEL" -p "Hello world" -n 12 -s 42
cmp -s "$WORK/run1.txt" "$WORK/out" || fail "the same seed gave a different continuation"
expect_rc 0 "greedy run" -- "$TS" run -m "$MODEL" -p "Hello world" -n 12 --temp 0 -s 1
cp "$WORK/out" "$WORK/greedy1.txt"
expect_rc 0 "greedy run, other seed" -- "$TS" run -m "$MODEL" -p "Hello world" -n 12 --temp 0 -s 2
cmp -s "$WORK/greedy1.txt" "$WORK/out" || fail "greedy output depends on the seed"
expect_rc 0 "run --verbose" -- "$TS" run -m "$MODEL" -p "Hello" -n 4 --verbose --top-k 5 --top-p 0.9 --min-p 0.1 \
    --repeat-penalty 1.1 --repeat-last-n 16 -t 1 --cache-type f32
grep -q 'tokens/s' "$WORK/err" || fail "--verbose prints timings"
printf 'Hello from a file' >"$WORK/prompt.txt"
expect_rc 0 "run -f" -- "$TS" run -m "$MODEL" -f "$WORK/prompt.txt" -n 3 -s 1
expect_rc 0 "run with a small context stops when full" -- "$TS" run -m "$MODEL" -p "Hi" -c 8 -s 1 --temp 0
grep -q 'full' "$WORK/err" || fail "a full context is reported"
expect_rc 1 "prompt longer than the context" -- "$TS" run -m "$MODEL" -p "one two three four five six seven eight nine ten" -c 4

# --- demo model (no -m): made once in the cache, with a clear warning ----------------------------
expect_rc 0 "run without -m (demo)" -- env XDG_CACHE_HOME="$WORK/cache" "$TS" run -n 4 -s 1
grep -qi 'random' "$WORK/err" || fail "the demo run says its weights are random"
grep -q 'tiefsee run -m' "$WORK/err" || fail "the demo run says how to run a real model"
ls "$WORK/cache/tiefsee/"*.gguf >/dev/null 2>&1 || fail "the demo model is cached under XDG_CACHE_HOME/tiefsee"
expect_rc 0 "second demo run reuses the cache" -- env XDG_CACHE_HOME="$WORK/cache" "$TS" run -n 2 -s 1
grep -q 'making the demo model' "$WORK/err" && fail "the demo model was made again"

if [ "$failures" -ne 0 ]; then
    echo "test_cli: $failures failure(s)"
    exit 1
fi
echo "test_cli: ok"
