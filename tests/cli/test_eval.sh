#!/usr/bin/env bash
# specdec-eval end to end on the default model, kept small (2 prompts, 8 new tokens): the JSON shape,
# every method of --list-methods agreeing with AR token for token (greedy), an MT-bench-style file
# with numeric question_ids, a budget sweep, the lossy skipdecode (quality fields, its theoretical
# speedup against the schedule formula, full depth equal to AR), and bad input answered with one
# "error:" line, exit 2.
set -u
bin="$1"; model="$2"; root="$3"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

# check_json FILE METHODS [SWEEP-BUDGETS]: the documented shape, zero mismatches, every method present.
check_json() {
  python3 - "$@" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
methods = sys.argv[2].split(",")
sweep = [int(b) for b in sys.argv[3].split(",")] if len(sys.argv) > 3 else []
assert j["model"] and j["max_new_tokens"] == 8, (j["model"], j["max_new_tokens"])
assert list(j["methods"]) == methods, list(j["methods"])
for name, m in j["methods"].items():
    for k in ("tokens_per_s", "speedup", "mat", "accept_rate", "draft_share", "median_speedup"):
        assert isinstance(m[k], (int, float)), (name, k)
    assert m["tokens_per_s"] > 0 and m["speedup"] > 0, (name, m)
    assert m["mismatches"] == 0, f"{name}: {m['mismatches']} outputs differ from AR"
    assert isinstance(m["accepted_by_depth"], list)
    assert m["categories"], name
    for cat, c in m["categories"].items():
        assert all(isinstance(c[k], (int, float)) for k in ("speedup", "mat", "tokens_per_s")), (name, cat)
if sweep:
    assert set(j["sweep"]) == set(methods) - {"ar"}, list(j["sweep"])
    for name, points in j["sweep"].items():
        assert [p["budget"] for p in points] == sweep, (name, points)
        for p in points:
            assert p["speedup"] > 0 and p["tokens_per_s"] > 0 and p["mismatches"] == 0, p
else:
    assert "sweep" not in j
PY
}

"$bin" --list-methods >"$tmp/methods" 2>&1
check $? "--list-methods exit code"
grep -qx "ar" "$tmp/methods"; check $? "--list-methods names ar: $(cat "$tmp/methods")"
all="$(paste -sd, "$tmp/methods")"

# AR alone on an MT-bench-shaped file (numeric question_id, two categories, extra turns ignored).
cat >"$tmp/mt.jsonl" <<'EOF'
{"question_id": 81, "category": "writing", "turns": ["Write a haiku about the sea.", "Now a limerick."]}

{"question_id": 82, "category": "reasoning", "turns": ["Is 17 a prime number? Answer briefly."]}
{"question_id": 83, "category": "writing", "turns": ["Name three colours."]}
EOF
"$bin" -m "$model" --prompts "$tmp/mt.jsonl" --limit 2 --max-new-tokens 8 --methods ar -t 2 --quiet \
  --json "$tmp/ar.json" --markdown "$tmp/ar.md" >"$tmp/ar.out" 2>"$tmp/ar.err"
check $? "ar run exit code: $(head -c 300 "$tmp/ar.err")"
check_json "$tmp/ar.json" ar; check $? "ar JSON shape"
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['n_prompts']==2 and list(j['methods']['ar']['categories'])==['writing','reasoning'], j" "$tmp/ar.json"
check $? "--limit and numeric question_ids"
grep -q "^ar .* 1.00x" "$tmp/ar.out"; check $? "table on stdout: $(head -c 400 "$tmp/ar.out")"
grep -q "^| ar |" "$tmp/ar.md"; check $? "markdown table"
[ ! -s "$tmp/ar.err" ]; check $? "--quiet prints nothing on stderr: $(head -c 300 "$tmp/ar.err")"

# Every known method on the default prompt file (first 2 prompts); then a small budget sweep of the
# draft-free methods (AR still runs once per prompt). The draft-model methods are left out of the
# sweep for CI time: each configuration prefills its draft too.
"$bin" -m "$model" --limit 2 --max-new-tokens 8 --methods "$all" -t 2 --json "$tmp/all.json" \
  >"$tmp/all.out" 2>"$tmp/all.err"
check $? "all methods ($all) exit code (1 = greedy mismatch): $(grep -m3 -v '^\[' "$tmp/all.err")"
check_json "$tmp/all.json" "$all"; check $? "all-methods JSON shape and zero mismatches"
grep -q "^\[2/2\] " "$tmp/all.err"; check $? "progress on stderr"
cheap="ar,token-recycling,lookahead"
"$bin" -m "$model" --limit 2 --max-new-tokens 8 --methods "$cheap" -t 2 --sweep-budget 2,4 --json "$tmp/sweep.json" \
  >"$tmp/sweep.out" 2>"$tmp/sweep.err"
check $? "sweep exit code (1 = greedy mismatch): $(grep -m3 -v '^\[' "$tmp/sweep.err")"
check_json "$tmp/sweep.json" "$cheap" 2,4; check $? "sweep JSON shape and zero mismatches"
# auto among the swept budgets: interleaved with the fixed ones, lossless, its budgets reported.
"$bin" -m "$model" --limit 2 --max-new-tokens 8 --methods lookahead -t 2 --sweep-budget 2,auto --no-cost-cache \
  --json "$tmp/auto.json" >"$tmp/auto.out" 2>"$tmp/auto.err"
check $? "sweep with auto exit code (1 = greedy mismatch): $(grep -m3 -v '^\[' "$tmp/auto.err")"
python3 - "$tmp/auto.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
points = j["sweep"]["lookahead"]
assert [p["budget"] for p in points] == [2, "auto"], points
assert all(p["mismatches"] == 0 for p in points), points
assert points[1]["budget_mean"] >= 1, points
PY
check $? "sweep with auto: JSON points and zero mismatches"
grep -q "budget auto: cost curve measured in" "$tmp/auto.err"; check $? "cost curve measurement reported on stderr"
grep -q "^auto " "$tmp/auto.out"; check $? "auto row in the sweep table"

# --batch: the first 3 prompts as concurrent requests at batch 1 and 3, every method, zero mismatches.
"$bin" -m "$model" --limit 3 --max-new-tokens 8 --methods "$all" -t 2 --batch 1,3 --quiet --json "$tmp/batch.json" \
  >"$tmp/batch.out" 2>"$tmp/batch.err"
check $? "--batch exit code (1 = greedy mismatch): $(grep -m3 -v '^\[' "$tmp/batch.err")"
python3 - "$tmp/batch.json" "$all" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
methods = sys.argv[2].split(",")
rows = j["batches"]
assert [(r["method"], r["batch"]) for r in rows] == [(m, b) for b in (1, 3) for m in methods], rows
for r in rows:
    assert r["mismatches"] == 0, r
    assert 3 <= r["n_generated"] <= 24 and r["total_tokens_per_s"] > 0 and r["steps"] >= r["n_generated"] / 9, r
PY
check $? "--batch JSON: every method at every size, zero mismatches"
grep -q "^ar  *3 " "$tmp/batch.out"; check $? "--batch table on stdout: $(head -c 400 "$tmp/batch.out")"
expect_error "batch above the backend's sequences" "exceeds the backend's 16 sequences" -m "$model" --limit 1 --batch 17

# skipdecode (lossy): quality fields instead of mismatches, exit 0 although outputs differ; the
# theoretical speedup recomputed here from docs/methods/skipdecode.md: count(t) = max - floor((max - min)
# t / length), min from t = length on, n_layers * L / sum over t < L, summed over prompts.
# check_skip FILE MAX MIN LENGTH [EXPECT-AGREEMENT]
check_skip() {
  python3 - "$@" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
mx, mn, length = (int(a) for a in sys.argv[2:5])
ar, sd = j["methods"]["ar"], j["methods"]["skipdecode"]
assert "lossy" not in ar and "agreement" not in ar and ar["mismatches"] == 0, ar
assert sd["lossy"] is True and sd["mismatches"] is None, sd
assert 0.0 <= sd["agreement"] <= 1.0, sd["agreement"]
assert sd["schedule"]["max_layers"] == mx and sd["schedule"]["min_layers"] == mn, sd["schedule"]
count = lambda t: mn if t >= length else max(mn, mx - (mx - mn) * t // length)
gen = [p["methods"]["skipdecode"]["n_generated"] for p in j["per_prompt"]]
assert len(gen) == 2 and all(g > 0 for g in gen), gen
want = 30 * sum(gen) / sum(count(t) for g in gen for t in range(g))
assert abs(sd["theoretical_speedup"] - want) < 1e-9, (sd["theoretical_speedup"], want)
ar_len = [p["methods"]["ar"]["n_generated"] for p in j["per_prompt"]]
assert 0 <= sd["first_divergence_median"] <= max(ar_len), sd
for cat, c in sd["categories"].items():
    assert c["lossy"] is True and 0.0 <= c["agreement"] <= 1.0 and c["theoretical_speedup"] >= 1.0, (cat, c)
if len(sys.argv) > 5:
    assert sd["agreement"] == float(sys.argv[5]), sd["agreement"]
    assert sd["first_divergence_mean"] == sum(ar_len) / 2, (sd["first_divergence_mean"], ar_len)
PY
}
plan="$root/data/calibration/SmolLM2-135M-Instruct.Q4_1.skip-plan"
"$bin" -m "$model" --limit 2 --max-new-tokens 16 --methods skipdecode --skip-min-layers 20 --skip-length 8 \
  --skip-plan "$plan" -t 2 --quiet --json "$tmp/skip.json" >"$tmp/skip.out" 2>"$tmp/skip.err"
check $? "skipdecode run exit code: $(head -c 300 "$tmp/skip.err")"
check_skip "$tmp/skip.json" 30 20 8; check $? "skipdecode JSON: lossy fields, theoretical speedup of the schedule"
grep -q "^skipdecode .* lossy$" "$tmp/skip.out"; check $? "skipdecode row in the table: $(head -c 400 "$tmp/skip.out")"
grep -q "^overall .*x .*%" "$tmp/skip.out"; check $? "lossy quality table"
# Nothing skipped: the wrapper must decode exactly as the full model (agreement 1), next to a lossless method.
"$bin" -m "$model" --limit 2 --max-new-tokens 16 --methods token-recycling,skipdecode --skip-min-layers 30 \
  --skip-max-layers 30 -t 2 --quiet --json "$tmp/skipfull.json" >/dev/null 2>"$tmp/skipfull.err"
check $? "full-depth skipdecode exit code: $(head -c 300 "$tmp/skipfull.err")"
check_skip "$tmp/skipfull.json" 30 30 128 1.0; check $? "full-depth skipdecode equals ar (agreement 1.0)"
expect_error "skip flag without skipdecode" "--skip-min-layers needs skipdecode in --methods" -m "$model" --limit 1 \
  --methods lookahead --skip-min-layers 20

printf '{"id": "a", "category": "x", "turns": ["hi"]}\n{"id": "b", "turns": ["unterminated"\n' >"$tmp/bad.jsonl"
printf '{"id": "a", "category": "x", "turns": []}\n' >"$tmp/noturn.jsonl"
expect_error "missing prompt file" "prompt file .*missing.jsonl" --prompts "$tmp/missing.jsonl"
expect_error "malformed JSONL line" "bad.jsonl:2: not valid JSON" -m "$model" --prompts "$tmp/bad.jsonl"
expect_error "prompt without turns" "noturn.jsonl:1: \"turns\"" -m "$model" --prompts "$tmp/noturn.jsonl"
expect_error "unknown method" "unknown method 'no-such-method'" -m "$model" --methods ar,no-such-method --limit 1
expect_error "max-new-tokens 0" "max-new-tokens" -m "$model" --max-new-tokens 0
expect_error "unknown category" "category 'nope'" -m "$model" --categories nope
expect_error "sweep without a method" "sweep-budget" -m "$model" --methods ar --sweep-budget 4

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
