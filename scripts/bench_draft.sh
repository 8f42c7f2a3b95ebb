#!/usr/bin/env bash
# One command for the draft-model measurements of docs/methods/dyspec.md on the realistic tier:
# Qwen2.5-Coder-0.5B drafting for Qwen2.5-Coder-1.5B (fetched first if missing), DySpec (both
# growth algorithms), chain SpS and the fixed k-ary tree against the 1.5B's AR in the same run,
# greedy and at T = 0.7, per category; Markdown and JSON per setting in OUT_DIR.
#   scripts/bench_draft.sh [OUT_DIR] [EXTRA specdec-eval FLAGS...]
#     OUT_DIR defaults to results/draft-pair-<date>; extra flags go to every specdec-eval call,
#     e.g. --limit 6 --max-new-tokens 64 for a shorter run, or --sweep-budget 4,8,16.
#   SPECDEC_DRAFT_SELF=1 instead measures self-speculation on the 1.5B (its first 20 layers, and its
#   layers without the first 4, 8 and 12 of the calibrated skip order in
#   data/calibration/Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.skip-plan; no 0.5B needed).
#   Add --draft-vocab 32768 to the extra flags for the restricted draft head.
# The full default run (36 prompts x 128 tokens, two temperatures, four methods plus AR) takes
# hours on 2 cores: the 1.5B decodes at 15-20 tok/s on the AVX-512 host (docs/models.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
out="${1:-$SPECDEC_ROOT/results/draft-pair-$(date +%Y%m%d-%H%M)}"
[ $# -gt 0 ] && shift
ensure_packages
ensure_models qwen-coder
build_release --target specdec-eval
eval_bin="$SPECDEC_ROOT/build/bench/eval/specdec-eval"
target="$SPECDEC_ROOT/models/Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf"
draft="$SPECDEC_ROOT/models/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf"
mkdir -p "$out"
run() {  # name, then specdec-eval flags
  local name="$1"
  shift
  echo "== $name -> $out/$name.md" >&2
  "$eval_bin" -m "$target" -c 2048 --markdown "$out/$name.md" --json "$out/$name.json" "$@"
}
for temp in 0 0.7; do
  if [ "${SPECDEC_DRAFT_SELF:-0}" = 1 ]; then
    for spec in first20:first:20 calib-drop4:0-5,7,8,10-12,14-17,19-27 calib-drop8:0-5,7,11,14,15,17,19-27 \
                calib-drop12:0-4,11,14,15,19-24,26,27; do
      run "self-${spec%%:*}-t$temp" --methods dyspec-level,sps,specinfer --draft-layers "${spec#*:}" --temp "$temp" "$@"
    done
  else
    run "pair-t$temp" --methods dyspec,dyspec-level,sps,specinfer --draft-model "$draft" --temp "$temp" "$@"
  fi
done
echo "results in $out" >&2
