#!/usr/bin/env bash
# bench/compare's bookkeeping, with a stand-in for llama-bench (building the real one takes
# minutes; BENCHMARKS.md's runs use it): the two engines alternate A B A B, every raw record and the
# commands land in the output JSON, the ratio is tiefsee / llama.cpp on the means, and a llama.cpp
# generation record gets its roofline fraction from the bandwidth probes of the tiefsee calls just
# before and just after it (tiefsee's bytes per token, same thread count). The stand-in answers
# 100 t/s for pp and 10 t/s for tg, so every expected figure can be computed here.
# Usage: bash tests/cli/test_compare.sh BUILD_DIR
set -u
BUILD=${1:?usage: test_compare.sh BUILD_DIR}
TS="$BUILD/tiefsee"
[ -x "$TS" ] || { echo "test_compare: $TS not found"; exit 1; }
command -v python3 > /dev/null || { echo "test_compare: python3 needed"; exit 77; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export XDG_CACHE_HOME="$WORK/cache"
failures=0
fail() { echo "test_compare: FAIL: $*"; failures=$((failures + 1)); }

"$TS" synth tiny-qwen2 -o "$WORK/m.gguf" > /dev/null 2>&1 || { echo "test_compare: synth failed"; exit 1; }
cat > "$WORK/llama-bench" << 'EOF'
#!/usr/bin/env python3
import json, sys
a = sys.argv[1:]
def opt(flag, default):
    return a[a.index(flag) + 1] if flag in a else default
assert opt("-o", "md") == "json" and opt("-ngl", "") == "0" and opt("-r", "") == "1", a
p, n, t, d = (int(opt(f, v)) for f, v in (("-p", 512), ("-n", 128), ("-t", 1), ("-d", 0)))
recs = []
if p:
    recs.append({"model_filename": opt("-m", ""), "n_prompt": p, "n_gen": 0, "n_depth": d, "n_threads": t, "avg_ts": 100.0})
if n:
    recs.append({"model_filename": opt("-m", ""), "n_prompt": 0, "n_gen": n, "n_depth": d, "n_threads": t, "avg_ts": 10.0})
print("llama-bench log line", file=sys.stderr)
print(json.dumps(recs, indent=1))
EOF
chmod +x "$WORK/llama-bench"

/usr/bin/env python3 "$ROOT/bench/compare" -q -t 1 -p 8 -n 4 -r 2 -o "$WORK/out.json" --tiefsee "$TS" \
    --llama-bench "$WORK/llama-bench" --tiefsee-args "--probe-mb 16" "$WORK/m.gguf" > "$WORK/table" 2> "$WORK/err" \
    || fail "compare: $(cat "$WORK/err")"
python3 - "$WORK/out.json" "$WORK/table" << 'EOF' || fail "compare output (above)"
import json, statistics, sys
doc = json.load(open(sys.argv[1]))
recs = doc["records"]
order = [(r["engine"], r["test"], r["round"]) for r in recs]
assert order == [("tiefsee", "pp8", 0), ("tiefsee", "tg4", 0), ("llama.cpp", "pp8", 0), ("llama.cpp", "tg4", 0),
                 ("tiefsee", "pp8", 1), ("tiefsee", "tg4", 1), ("llama.cpp", "pp8", 1), ("llama.cpp", "tg4", 1)], order
assert len(doc["commands"]) == 2 and "--bandwidth" not in doc["commands"][0] and "--probe-mb 16" in doc["commands"][0]
t_tg = [r for r in recs if r["engine"] == "tiefsee" and r["test"] == "tg4"]
for r in t_tg:
    p = r["raw"]["bandwidth_probes_gbs"]
    assert r["raw"]["bandwidth_probe"] == "around" and len(p) == 2 and all(x > 0 for x in p), r["raw"]
    assert r["roofline_fraction"] > 0
bpt = t_tg[0]["raw"]["bytes_per_token"]
l_tg = [r for r in recs if r["engine"] == "llama.cpp" and r["test"] == "tg4"]
# round 0: between tiefsee round 0 (its last probe) and tiefsee round 1 (its first); round 1: only before
want = [10.0 * bpt / 1e9 / statistics.fmean([t_tg[0]["raw"]["bandwidth_probes_gbs"][-1], t_tg[1]["raw"]["bandwidth_probes_gbs"][0]]),
        10.0 * bpt / 1e9 / t_tg[1]["raw"]["bandwidth_probes_gbs"][-1]]
for r, w in zip(l_tg, want):
    assert abs(r["roofline_fraction"] - w) < 1e-9 * w, (r["roofline_fraction"], w)
    assert r["bandwidth_source"] == "neighbouring tiefsee probes"
for r in recs:
    if r["engine"] == "llama.cpp" and r["test"] == "pp8":
        assert r.get("roofline_fraction") is None, r
table = open(sys.argv[2]).read().splitlines()
head = [l for l in table if l.startswith("| model |")]
assert head and "llama.cpp % of roofline" in head[0], table
row = [l for l in table if l.startswith("| m | tg4 |")]
assert row, table
cells = [c.strip() for c in row[0].strip("|").split("|")]
t_mean = statistics.fmean(r["ts"] for r in t_tg)
assert cells[5] == f"{t_mean / 10.0:.2f}×", (cells, t_mean)
# each round's tiefsee run over the llama.cpp run of the same round (its fake: 10 t/s)
per_round = sorted(r["ts"] / 10.0 for r in t_tg)
assert cells[6] == f"{per_round[0]:.2f}–{per_round[1]:.2f}×", (cells, per_round)
assert cells[7] == f"{100 * statistics.fmean(r['roofline_fraction'] for r in t_tg):.0f} %", cells
assert cells[8] == f"{100 * statistics.fmean(want):.0f} %", cells
# the ratio an engine at 100 % of the roofline would have had: 1 / llama.cpp's mean fraction
assert "| ratio at roofline |" in head[0], head
assert cells[9] == f"{1 / statistics.fmean(want):.2f}×", cells
# The vCPUs' stolen time of each call (Linux: /proc/stat), the row's highest in the last column.
assert head[0].rstrip().endswith("| max steal |"), head
for r in recs:
    assert 0.0 <= r["cpu_steal_fraction"] <= 1.0, r
tg_all = [r for r in recs if r["test"] == "tg4"]
assert cells[10] == f"{100 * max(r['cpu_steal_fraction'] for r in tg_all):.0f} %", cells
assert any(l.startswith("(CPU steal time during the calls: ") for l in table), table
pp = [l for l in table if l.startswith("| m | pp8 |")]
assert pp, table
pp_cells = [c.strip() for c in pp[0].strip("|").split("|")]
assert pp_cells[7:10] == ["—", "—", "—"], pp_cells  # no roofline for prompts
pp_t = sorted(r["ts"] / 100.0 for r in recs if r["engine"] == "tiefsee" and r["test"] == "pp8")
assert pp_cells[6] == f"{pp_t[0]:.2f}–{pp_t[1]:.2f}×", (pp_cells, pp_t)
EOF

# The steal-time reader on /proc/stat lines as they come, and on what it must refuse.
python3 - "$ROOT/bench/compare" << 'EOF' || fail "steal time reader (above)"
import importlib.machinery, importlib.util, sys
loader = importlib.machinery.SourceFileLoader("compare", sys.argv[1])
spec = importlib.util.spec_from_loader("compare", loader)
c = importlib.util.module_from_spec(spec)
loader.exec_module(c)
assert c.steal_fraction((1000, 10), (2000, 60)) == 0.05
assert c.steal_fraction(None, (2000, 60)) is None and c.steal_fraction((1000, 10), None) is None
assert c.steal_fraction((1000, 10), (1000, 10)) is None  # no time passed: no figure, no division by zero
assert c.steal_fraction((1000, 50), (2000, 10)) == 0.0  # a counter that went back is clamped, not negative
now = c.cpu_times()
assert now is not None and now[0] >= now[1] >= 0, now
EOF

# --no-probe: tiefsee on its cached figure, and no roofline for llama.cpp (no probes to borrow).
/usr/bin/env python3 "$ROOT/bench/compare" -q -t 1 -p 0 -n 4 -r 1 -o "$WORK/out2.json" --tiefsee "$TS" --no-probe \
    --llama-bench "$WORK/llama-bench" --tiefsee-args "--probe-mb 16" "$WORK/m.gguf" > "$WORK/table2" 2> "$WORK/err" \
    || fail "compare --no-probe: $(cat "$WORK/err")"
python3 - "$WORK/out2.json" << 'EOF' || fail "compare --no-probe output (above)"
import json, sys
doc = json.load(open(sys.argv[1]))
assert "--bandwidth cached" in doc["commands"][0], doc["commands"]
t, l = doc["records"]
assert t["raw"]["bandwidth_probe"] == "run" and t["roofline_fraction"] > 0, t
assert l["engine"] == "llama.cpp" and l.get("roofline_fraction") is None, l
EOF

if [ $failures -ne 0 ]; then
    echo "test_compare: $failures failure(s)"
    exit 1
fi
echo "test_compare: ok"
