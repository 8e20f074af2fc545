#!/usr/bin/env bash
# Differential conformance test: tiefsee against mainline llama.cpp (node-llama-cpp 3.21.1, CPU).
#
# usage: bash tests/conformance/test_conformance.sh BUILD_DIR
#
# For every synthetic model (tiefsee synth, fixed seed) it evaluates the same random token ids
# (fixed seed, no BOS) in llama.cpp and in tiefsee and checks:
#   1. log-probabilities: max |d log p| over all positions and vocabulary entries, and the mean over
#      positions of KL(llama.cpp || tiefsee), against the bounds below;
#   2. tiefsee's batch logits against its own one-token-at-a-time (--step) logits;
#   3. for the F32 models: llama.cpp's greedy 32-token continuation equals the argmax of tiefsee's
#      --step logits fed the same tokens (teacher forcing, so one early miss does not cascade).
# llama.cpp runs with its defaults: F16 KV cache, flash attention "auto" (which llama.cpp resolves
# to enabled on the CPU backend). tiefsee runs with --cache-type f16 to match.
#
# Environment overrides (for investigation, not for CI):
#   CONFORMANCE_FLASH_ATTN=auto|on|off   llama.cpp's flash attention (default auto)
#   CONFORMANCE_KV=f16|f32               KV cache type on both sides (default f16)
#   CONFORMANCE_ONLY=REGEX               run only the "model/type" cases matching REGEX
#   CONFORMANCE_KEEP=1                   keep the work directory (BUILD_DIR/conformance)
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
BUILD_DIR=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TIEFSEE="$BUILD_DIR/tiefsee"
WORK="$BUILD_DIR/conformance"
REPORT="$BUILD_DIR/conformance_report.txt" # the table and summary, kept for `make test` to show
FLASH_ATTN=${CONFORMANCE_FLASH_ATTN:-auto}
KV=${CONFORMANCE_KV:-f16}
ONLY=${CONFORMANCE_ONLY:-}

N_POSITIONS=64     # random prompt length
N_GREEDY=32        # greedy continuation length
TOKEN_SEED=20240601
WEIGHT_SEED=1234

# Bounds. F32/F16 weights: llama.cpp and tiefsee should compute the same float32 function up to
# summation order. BF16 is judged like the quantized types because llama.cpp rounds the
# activations to bf16 before BF16 matrix products, as it rounds them to Q8 blocks for quantized ones.
EXACT_MAX_DLOGP=3e-3
EXACT_MAX_MEAN_KL=4e-4
QUANT_MAX_DLOGP=0.12
QUANT_MAX_MEAN_KL=4e-4
STEP_MAX_REL=1e-4   # batch vs --step: max |diff| / max |logit|
GREEDY_TIE_TOL=1e-4 # an argmax miss within this logit margin counts as a tie

F32_MODELS="tiny-llama tiny-llama-gqa tiny-coder tiny-llama3 tiny-qwen2 tiny-qwen2-tied"
TYPE_MODELS="tiny-llama tiny-qwen2"
OTHER_TYPES="f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K"

# llama.cpp comes as a prebuilt x86_64 Linux binary (@node-llama-cpp/linux-x64); elsewhere the
# reference cannot run, so the test reports itself skipped (ctest SKIP_RETURN_CODE 77).
if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
    echo "conformance: SKIPPED (the pinned llama.cpp reference binary is Linux x86_64 only)"
    exit 77
fi
if ! command -v node >/dev/null; then
    echo "conformance: node not found; run scripts/install-deps.sh" >&2
    exit 1
fi
if [[ ! -d "$HERE/node_modules/node-llama-cpp" || ! -d "$HERE/node_modules/@node-llama-cpp/linux-x64" ]]; then
    echo "conformance: $HERE/node_modules is missing; run scripts/install-deps.sh" \
         "(or: cd tests/conformance && npm ci --omit=optional --ignore-scripts)" >&2
    exit 1
fi
if [[ ! -x "$TIEFSEE" ]]; then
    echo "conformance: $TIEFSEE not built" >&2
    exit 1
fi

rm -rf "$WORK"
mkdir -p "$WORK"
if [[ -z "${CONFORMANCE_KEEP:-}" ]]; then
    trap 'rm -rf "$WORK"' EXIT
fi

COMPARE="$WORK/compare"
${CC:-cc} -std=c17 -O2 -Wall -Wextra -Werror -o "$COMPARE" "$HERE/compare.c" -lm

start_seconds=$SECONDS
n_cases=0
failures=()
fa_resolved=""

: >"$REPORT"
report() {
    printf '%s\n' "$1" | tee -a "$REPORT"
}
report "$(printf '%-16s %-5s %11s %10s %11s %-10s %s' model type "max|dlogp|" "mean KL" "step rel" greedy result)"
run_case() {
    local model=$1 type=$2
    local case_dir="$WORK/$model-$type"
    local gguf="$case_dir/model.gguf"
    mkdir -p "$case_dir"
    n_cases=$((n_cases + 1))

    local max_dlogp=$EXACT_MAX_DLOGP max_kl=$EXACT_MAX_MEAN_KL
    if [[ $type != f32 && $type != f16 ]]; then
        max_dlogp=$QUANT_MAX_DLOGP
        max_kl=$QUANT_MAX_MEAN_KL
    fi
    local greedy_wanted=0
    [[ $type == f32 ]] && greedy_wanted=$N_GREEDY

    local log="$case_dir/log.txt"
    local status=ok dlogp_text="-" kl_text="-" step_text="-" greedy_text="-"
    if ! "$TIEFSEE" synth "$model" -o "$gguf" --type "$type" --seed "$WEIGHT_SEED" >>"$log" 2>&1; then
        status="synth-failed"
    else
        local ref_args=(--model "$gguf" --random "$N_POSITIONS" --seed "$TOKEN_SEED"
                        --tokens-out "$case_dir/tokens.txt" --out "$case_dir/ref_logp.f32"
                        --flash-attn "$FLASH_ATTN" --kv-type "$KV" --info-out "$case_dir/info.json")
        if (( greedy_wanted > 0 )); then
            ref_args+=(--greedy "$greedy_wanted" --greedy-out "$case_dir/greedy.txt")
        fi
        if ! node "$HERE/llamacpp_ref.mjs" "${ref_args[@]}" >>"$log" 2>&1; then
            status="llama.cpp-failed"
        fi
    fi

    local n_vocab="" tokens="" step_tokens=""
    if [[ $status == ok ]]; then
        n_vocab=$(node -p "JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8')).nVocab" "$case_dir/info.json")
        fa_resolved=$(node -p "JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8')).flashAttentionResolved" "$case_dir/info.json")
        tokens=$(<"$case_dir/tokens.txt")
        step_tokens=$tokens
        if (( greedy_wanted > 0 )); then
            # Teacher forcing: feed llama.cpp's continuation minus its last token, so row
            # N_POSITIONS-1+k of our --step logits predicts continuation token k.
            local greedy
            greedy=$(<"$case_dir/greedy.txt")
            step_tokens="$tokens,${greedy%,*}"
        fi
        if ! "$TIEFSEE" logits -m "$gguf" --tokens "$tokens" -o "$case_dir/ours_batch.f32" \
                --cache-type "$KV" >>"$log" 2>&1; then
            status="tiefsee-failed"
        elif ! "$TIEFSEE" logits -m "$gguf" --tokens "$step_tokens" -o "$case_dir/ours_step.f32" \
                --step --cache-type "$KV" >>"$log" 2>&1; then
            status="tiefsee-step-failed"
        fi
    fi

    if [[ $status == ok ]]; then
        local out rc
        set +e
        out=$("$COMPARE" logp "$case_dir/ref_logp.f32" "$case_dir/ours_batch.f32" "$n_vocab" "$max_dlogp" "$max_kl" 2>&1)
        rc=$?
        set -e
        echo "logp: $out" >>"$log"
        dlogp_text=$(sed -n 's/.*max_dlogp=\([^ ]*\).*/\1/p' <<<"$out")
        kl_text=$(sed -n 's/.*mean_kl=\([^ ]*\).*/\1/p' <<<"$out")
        (( rc == 0 )) || status="FAIL(logp)"

        set +e
        out=$("$COMPARE" logits "$case_dir/ours_batch.f32" "$case_dir/ours_step.f32" "$n_vocab" "$N_POSITIONS" "$STEP_MAX_REL" 2>&1)
        rc=$?
        set -e
        echo "step: $out" >>"$log"
        step_text=$(sed -n 's/.*rel=\([^ ]*\).*/\1/p' <<<"$out")
        if (( rc != 0 )); then
            [[ $status == ok ]] && status="FAIL(step)" || status="$status+step"
        fi

        if (( greedy_wanted > 0 )); then
            set +e
            out=$("$COMPARE" greedy "$case_dir/ours_step.f32" "$n_vocab" "$((N_POSITIONS - 1))" \
                    "$(<"$case_dir/greedy.txt")" "$GREEDY_TIE_TOL" 2>&1)
            rc=$?
            set -e
            echo "greedy: $out" >>"$log"
            greedy_text=$(sed -n 's/.*matched=\([0-9]*\) ties=\([0-9]*\) of \([0-9]*\).*/\1+\2t\/\3/p' <<<"$out")
            if (( rc != 0 )); then
                [[ $status == ok ]] && status="FAIL(greedy)" || status="$status+greedy"
            fi
        fi
    fi

    report "$(printf '%-16s %-5s %11s %10s %11s %-10s %s' "$model" "$type" "${dlogp_text:--}" "${kl_text:--}" \
        "${step_text:--}" "${greedy_text:--}" "$status")"
    if [[ $status != ok ]]; then
        failures+=("$model/$type")
        echo "---- $model/$type log ($log):"
        sed 's/^/    /' "$log" | tail -n 20
    fi
}

for model in $F32_MODELS; do
    if [[ -z $ONLY || "$model/f32" =~ $ONLY ]]; then run_case "$model" f32; fi
done
for model in $TYPE_MODELS; do
    for type in $OTHER_TYPES; do
        if [[ -z $ONLY || "$model/$type" =~ $ONLY ]]; then run_case "$model" "$type"; fi
    done
done

elapsed=$((SECONDS - start_seconds))
settings="llama.cpp flash_attn=$FLASH_ATTN (resolved: ${fa_resolved:-unknown}), kv=$KV, $N_POSITIONS positions"
if (( n_cases == 0 )); then
    report "conformance: FAILED: no case matched CONFORMANCE_ONLY='$ONLY'"
    exit 1
fi
if (( ${#failures[@]} > 0 )); then
    report "conformance: FAILED ${#failures[@]} of $n_cases cases (${failures[*]}); $settings; ${elapsed}s"
    exit 1
fi
report "conformance: all $n_cases cases passed; $settings; ${elapsed}s"
