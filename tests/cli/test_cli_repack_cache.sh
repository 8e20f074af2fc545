#!/usr/bin/env bash
# `--repack-cache` from the front ends: the first load says it wrote the cache file (in
# $TIEFSEE_REPACK_CACHE_DIR, else $XDG_CACHE_HOME/tiefsee/repacked), the second that it mapped it;
# the logits equal those of `--repack` bit for bit; `bench` records say "written" / "mapped"; without
# the flag an existing cache is mapped (a stale one ignored with a word, not rewritten), --repack
# keeps a copy in memory; `tiefsee cache` lists the files and their state, prunes the stale and
# orphaned ones, clears the rest, and never deletes a file that is not a tiefsee cache;
# --no-repack with --repack or --repack-cache is a usage error (exit 2) in every command; a cache
# folder that cannot be made falls back to repacking in memory with a message, same logits.
# (tests/model/test_repack_cache.c checks the cache's contents and stale-file handling.)
# Usage: bash tests/cli/test_cli_repack_cache.sh BUILD_DIR
set -u
BUILD=${1:?usage: test_cli_repack_cache.sh BUILD_DIR}
TS="$BUILD/tiefsee"
[ -x "$TS" ] || { echo "test_cli_repack_cache: $TS not found"; exit 1; }
command -v python3 > /dev/null || { echo "test_cli_repack_cache: python3 needed to read the JSON"; exit 77; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export XDG_CACHE_HOME="$WORK/xdg" # never the user's own cache
unset TIEFSEE_REPACK_CACHE_DIR
failures=0
fail() { echo "test_cli_repack_cache: FAIL: $*"; failures=$((failures + 1)); }

"$TS" synth tiny-deepseek2-lite --type q4_0 -o "$WORK/m.gguf" > /dev/null 2>&1 || { echo "synth failed"; exit 1; }
TOK=1,2,3,4,5,6

# ---- logits: written, then mapped, equal to --repack ----
"$TS" logits -m "$WORK/m.gguf" --tokens $TOK --repack -o "$WORK/mem.f32" 2> "$WORK/err" || fail "logits --repack: $(cat "$WORK/err")"
"$TS" logits -m "$WORK/m.gguf" --tokens $TOK --repack-cache -o "$WORK/c1.f32" 2> "$WORK/err1" \
    || fail "logits --repack-cache (1): $(cat "$WORK/err1")"
grep -Eq "repacked [0-9]+ weight matrices \([0-9.]+ GB\) into $WORK/xdg/tiefsee/repacked/m\.gguf\.[a-z0-9]+\.[0-9a-f]{16}\.tsrp" "$WORK/err1" \
    || fail "first load does not say it wrote the cache under XDG_CACHE_HOME: $(cat "$WORK/err1")"
"$TS" logits -m "$WORK/m.gguf" --tokens $TOK --repack-cache -o "$WORK/c2.f32" 2> "$WORK/err2" \
    || fail "logits --repack-cache (2): $(cat "$WORK/err2")"
grep -q "mapped [0-9]* repacked weight matrices" "$WORK/err2" || fail "second load did not map the cache: $(cat "$WORK/err2")"
cmp -s "$WORK/mem.f32" "$WORK/c1.f32" || fail "logits with a new cache differ from --repack"
cmp -s "$WORK/mem.f32" "$WORK/c2.f32" || fail "logits with a mapped cache differ from --repack"
[ "$(ls "$WORK/xdg/tiefsee/repacked" | wc -l)" = 1 ] || fail "cache folder: $(ls "$WORK/xdg/tiefsee/repacked")"

# ---- TIEFSEE_REPACK_CACHE_DIR wins ----
TIEFSEE_REPACK_CACHE_DIR="$WORK/own" "$TS" logits -m "$WORK/m.gguf" --tokens $TOK --repack-cache -o "$WORK/c3.f32" 2> "$WORK/err3" \
    || fail "logits with TIEFSEE_REPACK_CACHE_DIR: $(cat "$WORK/err3")"
ls "$WORK/own"/m.gguf.*.tsrp > /dev/null 2>&1 || fail "TIEFSEE_REPACK_CACHE_DIR not used: $(cat "$WORK/err3")"

# ---- an unusable folder: falls back to repacking in memory, says why ----
: > "$WORK/afile"
TIEFSEE_REPACK_CACHE_DIR="$WORK/afile/sub" "$TS" logits -m "$WORK/m.gguf" --tokens $TOK --repack-cache -o "$WORK/c4.f32" 2> "$WORK/err4" \
    || fail "an unusable cache folder failed the command: $(cat "$WORK/err4")"
grep -q "repacked weights not cached: cache folder" "$WORK/err4" || fail "no reason given: $(cat "$WORK/err4")"
cmp -s "$WORK/mem.f32" "$WORK/c4.f32" || fail "fallback logits differ from --repack"

# ---- bench records ----
for want in mapped; do
    "$TS" bench -m "$WORK/m.gguf" --repack-cache -p 0 -n 4 -r 1 -t 1 --bandwidth cached --probe-mb 16 -o json \
        > "$WORK/b.json" 2> "$WORK/berr" || fail "bench --repack-cache: $(cat "$WORK/berr")"
    got=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[0]; print(r["repack_cache"], r["repack"])' "$WORK/b.json" 2>&1)
    [ "$got" = "$want True" ] || fail "bench record repack_cache/repack: $got, want $want True"
done
rm -rf "$WORK/xdg/tiefsee/repacked"
"$TS" bench -m "$WORK/m.gguf" --repack-cache -p 0 -n 4 -r 1 -t 1 --bandwidth cached --probe-mb 16 -o json \
    > "$WORK/b.json" 2> "$WORK/berr" || fail "bench --repack-cache (new): $(cat "$WORK/berr")"
got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["repack_cache"])' "$WORK/b.json" 2>&1)
[ "$got" = written ] || fail "bench record repack_cache: $got, want written"
# Without the flag an existing cache file is still used; --repack insists on memory, --no-repack on
# the file layout.
for case in ":mapped True" "--repack:None True" "--no-repack:None False"; do
    flag=${case%%:*} want=${case#*:}
    "$TS" bench -m "$WORK/m.gguf" $flag -p 0 -n 4 -r 1 -t 1 --bandwidth cached --probe-mb 16 -o json > "$WORK/b.json" 2> "$WORK/berr" \
        || fail "bench $flag: $(cat "$WORK/berr")"
    got=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[0]; print(r["repack_cache"], r["repack"])' "$WORK/b.json" 2>&1)
    [ "$got" = "$want" ] || fail "bench ${flag:-(no flag)} with a cache file: repack_cache/repack $got, want $want"
done
# A stale cache file is not used without the flag (and said so), nor rewritten.
cache=$(ls "$WORK"/xdg/tiefsee/repacked/*.tsrp)
printf 'XXXXXXXX' | dd of="$cache" bs=1 seek=0 conv=notrunc 2> /dev/null
before=$(cksum < "$cache")
"$TS" bench -m "$WORK/m.gguf" -p 0 -n 4 -r 1 -t 1 --bandwidth cached --probe-mb 16 -o json > "$WORK/b.json" 2> "$WORK/berr" \
    || fail "bench with a stale cache: $(cat "$WORK/berr")"
grep -q "not using the stale cache file .*not a tiefsee cache file (--repack-cache rewrites it)" "$WORK/berr" \
    || fail "no word about the stale cache: $(cat "$WORK/berr")"
got=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[0]; print(r["repack_cache"], r["repack"])' "$WORK/b.json" 2>&1)
[ "$got" = "None True" ] || fail "bench with a stale cache: repack_cache/repack $got, want None True (repacked in memory)"
[ "$(cksum < "$cache")" = "$before" ] || fail "a stale cache file was rewritten without --repack-cache"

# ---- tiefsee cache: list, prune, clear; a foreign file is never deleted ----
C="$WORK/managed"
export TIEFSEE_REPACK_CACHE_DIR="$C"
"$TS" cache > "$WORK/list0" 2>&1 || fail "cache list without a folder: $(cat "$WORK/list0")"
grep -q "no cache folder" "$WORK/list0" || fail "cache list without a folder: $(cat "$WORK/list0")"
cp "$WORK/m.gguf" "$WORK/a.gguf"
cp "$WORK/m.gguf" "$WORK/b.gguf"
for x in a b; do
    "$TS" logits -m "$WORK/$x.gguf" --tokens $TOK --repack-cache -o /dev/null 2> "$WORK/err" || fail "cache for $x: $(cat "$WORK/err")"
done
echo "my notes, not a cache" > "$C/notes.tsrp"
sleep 0.1 & dead=$!
wait $dead
: > "$C/a.gguf.avx2.0123456789abcdef.tsrp.tmp.$dead.Xy12Ab"
"$TS" cache list > "$WORK/list1" 2>&1 || fail "cache list: $(cat "$WORK/list1")"
[ "$(grep -c ' current ' "$WORK/list1")" = 2 ] || fail "cache list: not 2 current files: $(cat "$WORK/list1")"
grep -q "not a tiefsee cache file .*notes.tsrp" "$WORK/list1" || fail "cache list: foreign file: $(cat "$WORK/list1")"
grep -q "left by a writer that died" "$WORK/list1" || fail "cache list: orphan: $(cat "$WORK/list1")"
grep -q "^4 file(s)" "$WORK/list1" || fail "cache list: total line: $(tail -1 "$WORK/list1")"
touch -d '2001-01-01' "$WORK/a.gguf"
rm "$WORK/b.gguf"
"$TS" cache > "$WORK/list2" 2>&1
grep -q "model file changed .*$WORK/a.gguf" "$WORK/list2" || fail "cache list after touch: $(cat "$WORK/list2")"
grep -q "model file missing .*$WORK/b.gguf" "$WORK/list2" || fail "cache list after rm: $(cat "$WORK/list2")"
"$TS" cache prune > "$WORK/prune" 2>&1 || fail "cache prune: $(cat "$WORK/prune")"
grep -q "^deleted 3 file(s)" "$WORK/prune" || fail "cache prune: $(cat "$WORK/prune")"
[ "$(ls "$C")" = notes.tsrp ] || fail "after prune the folder holds: $(ls "$C")"
"$TS" logits -m "$WORK/a.gguf" --tokens $TOK --repack-cache -o /dev/null 2> "$WORK/err" || fail "cache for a again: $(cat "$WORK/err")"
"$TS" cache prune > "$WORK/prune2" 2>&1
grep -q "^deleted 0 file(s)" "$WORK/prune2" || fail "cache prune deleted a current file: $(cat "$WORK/prune2")"
"$TS" cache clear > "$WORK/clear" 2>&1 || fail "cache clear: $(cat "$WORK/clear")"
grep -q "^deleted 1 file(s)" "$WORK/clear" || fail "cache clear: $(cat "$WORK/clear")"
[ "$(ls "$C")" = notes.tsrp ] && grep -q "my notes" "$C/notes.tsrp" || fail "cache clear touched a foreign file: $(ls "$C")"
"$TS" cache bogus > /dev/null 2>&1
[ $? = 2 ] || fail "cache bogus: not a usage error"
unset TIEFSEE_REPACK_CACHE_DIR

# ---- usage errors ----
for cmd in run chat serve bench; do
    for other in --repack --repack-cache; do
        "$TS" $cmd -m "$WORK/m.gguf" --no-repack $other < /dev/null > /dev/null 2> "$WORK/uerr"
        rc=$?
        [ $rc = 2 ] && grep -q "excludes" "$WORK/uerr" || fail "$cmd --no-repack $other: exit $rc, want 2 ($(head -c 300 "$WORK/uerr"))"
    done
done

if [ $failures -gt 0 ]; then
    echo "test_cli_repack_cache: $failures failure(s)"
    exit 1
fi
echo "test_cli_repack_cache: ok"
