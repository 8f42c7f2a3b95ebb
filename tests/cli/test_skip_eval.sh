#!/usr/bin/env bash
# specdec-skip-eval on a short run: the quality harness's own consistency. A fitted 1.0x schedule is
# full depth (--decay 1: a constant layer count), so its agreement must be 100 % and its perplexities (the full model's continuations and
# the reference text) equal the full model's; a 2x schedule really skips (fewer layers run per token,
# theoretical speedup near 2) and both its perplexities rise well above the full model's; the
# samples file holds every column; bad input is one "error:" line, exit 2.
set -u
bin="$1"; model="$2"; root="$3"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

"$bin" -m "$model" --limit 2 -n 12 --speedups 1,2 --decay 1 -t 2 --batch-sizes 1 --throughput-tokens 4 --repeats 1 \
  --reference-tokens 48 --skip-plan "$root/data/calibration/SmolLM2-135M-Instruct.Q4_1.skip-plan" \
  --samples "$tmp/samples.md" --sample-prompts 1 --json "$tmp/out.json" >"$tmp/out.md" 2>"$tmp/err"
check $? "short run: $(head -c 300 "$tmp/err")"
python3 - "$tmp/out.json" <<'PY'
import json, math, sys
j = json.load(open(sys.argv[1]))
full = j["full"]
runs = {(r["target"], r["order"]): r for r in j["runs"]}
assert set(runs) == {(1.0, "paper"), (1.0, "calibrated"), (2.0, "paper"), (2.0, "calibrated")}, sorted(runs)
for order in ("paper", "calibrated"):
    r = runs[(1.0, order)]
    assert r["theoretical_speedup"] == 1.0 and r["mean_layers_run"] == 30, r
    assert r["agreement"] == 1.0, r
    assert r["ppl"] == full["ppl"] and r["reference_ppl"] == full["reference_ppl"], (r, full)
    s = runs[(2.0, order)]
    assert 1.8 < s["theoretical_speedup"] < 2.2 and s["mean_layers_run"] < 20, s
    # Half the layers of a model never tuned to skip: both perplexities rise far (this command,
    # 2026-12-06: reference text 51.7 -> 495 calibrated / 13,254 paper; own text 1.62 -> 73.5 /
    # 9,299); a score taken at full depth by mistake would not.
    assert math.isfinite(s["reference_ppl"]) and s["reference_ppl"] > 1.5 * full["reference_ppl"], (s, full)
    assert s["ppl"] > 1.5 * full["ppl"], (s, full)
assert j["reference_text"]["tokens"] == 48, j["reference_text"]
assert len(j["throughput"]) == 1 and j["throughput"][0]["batch"] == 1
PY
check $? "1.0x schedule equals full depth, 2x schedule skips: $(cat "$tmp/out.md" | head -c 600)"
grep -c "^| " "$tmp/samples.md" | grep -qx 6; check $? "samples: header and 5 columns: $(head -c 400 "$tmp/samples.md")"

expect_error "missing reference text" "--reference-text .*missing.txt" -m "$model" --reference-text "$tmp/missing.txt" --limit 1 -n 4

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
