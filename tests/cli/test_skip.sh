#!/usr/bin/env bash
# specdec-generate --method skipdecode end to end: at full depth it is plain greedy decoding, skipping
# changes the work done, and bad SkipDecode flags and plan files are one "error:" line, exit code 2.
set -u
bin="$1"; model="$2"; root="$3"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

p="List three colours."
"$bin" -m "$model" -p "$p" -n 24 --temp 0 --json --method ar >"$tmp/ar.json" 2>/dev/null
check $? "ar run"
"$bin" -m "$model" -p "$p" -n 24 --temp 0 --json --method skipdecode --skip-max-layers 30 --skip-min-layers 30 \
  >"$tmp/full.json" 2>/dev/null
check $? "skipdecode at full depth runs"
"$bin" -m "$model" -p "$p" -n 24 --temp 0 --json --method skipdecode --skip-min-layers 12 --skip-length 8 \
  >"$tmp/skip.json" 2>/dev/null
check $? "skipdecode with skipping runs"
python3 - "$tmp/ar.json" "$tmp/full.json" "$tmp/skip.json" <<'PY'
import json, sys
ar, full, skip = (json.load(open(f)) for f in sys.argv[1:])
assert full["tokens"] == ar["tokens"], "full-depth skipdecode differs from ar"
assert full["method"] == "skipdecode"
assert skip["n_generated"] > 0
PY
check $? "full-depth skipdecode equals ar token for token"

plan="$root/data/calibration/SmolLM2-135M-Instruct.Q4_1.skip-plan"
if [ -f "$plan" ]; then
  "$bin" -m "$model" -p "$p" -n 8 --temp 0 --method skipdecode --skip-min-layers 20 --skip-plan "$plan" >/dev/null 2>&1
  check $? "skipdecode with the shipped plan runs"
fi

expect_error "skip flag without the method" "--skip-min-layers needs --method skipdecode" -m "$model" -p hi --skip-min-layers 4
expect_error "max above the model" "--skip-max-layers 31 exceeds the model's 30 layers" -m "$model" -p hi --method skipdecode --skip-max-layers 31
expect_error "min above max" "--skip-min-layers 20 exceeds --skip-max-layers 10" -m "$model" -p hi --method skipdecode --skip-max-layers 10 --skip-min-layers 20
expect_error "warm-up too deep" "--warmup-layers 5 must be below --skip-min-layers 5" -m "$model" -p hi --method skipdecode --skip-min-layers 5 --warmup-layers 5
expect_error "zero length" "--skip-length must be >= 1" -m "$model" -p hi --method skipdecode --skip-length 0
printf 'specdec-skip-plan 1\nn_layers 12\nwarmup_layers 1\norder 1 2 3\n' >"$tmp/other.plan"
expect_error "plan for another model" "is for a model of 12 layers" -m "$model" -p hi --method skipdecode --skip-plan "$tmp/other.plan"
printf 'hello\n' >"$tmp/bad.plan"
expect_error "not a plan" "bad.plan:1: not a skip plan" -m "$model" -p hi --method skipdecode --skip-plan "$tmp/bad.plan"
printf 'specdec-skip-plan 1\nn_layers 30\nwarmup_layers 1\norder 1 2 3\n' >"$tmp/short.plan"
expect_error "plan too short" "needs 12" -m "$model" -p hi --method skipdecode --skip-min-layers 18 --skip-plan "$tmp/short.plan"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
