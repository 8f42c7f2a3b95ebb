#!/usr/bin/env bash
# One command for the draft-model measurements of docs/methods/dyspec.md on the realistic tier:
# Qwen2.5-Coder-0.5B drafting for Qwen2.5-Coder-1.5B (fetched first if missing), DySpec (both
# growth algorithms), chain SpS and the fixed k-ary tree against the 1.5B's AR in the same run,
# greedy and at T = 0.7, per category; Markdown and JSON per setting in OUT_DIR.
#   scripts/bench_draft.sh [OUT_DIR] [EXTRA specdec-eval FLAGS...]
#     OUT_DIR defaults to results/draft-pair-<date>; extra flags go to every specdec-eval call,
#     e.g. --limit 6 --max-new-tokens 64 for a shorter run, or --sweep-budget 4,8,16.
#   SPECDEC_DRAFT_SELF=1 instead measures self-speculation on the 1.5B (first 16, 20 and 24 of its
#   28 layers as the draft; no 0.5B needed).
# The full default run (36 prompts x 128 tokens, two temperatures, four methods plus AR) takes
# hours on 2 cores: the 1.5B decodes at ~5 tok/s there (docs/benchmarks.md).
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
    for layers in first:16 first:20 first:24; do
      run "self-${layers#first:}-t$temp" --methods dyspec-level,sps,specinfer --draft-layers "$layers" --temp "$temp" "$@"
    done
  else
    run "pair-t$temp" --methods dyspec,dyspec-level,sps,specinfer --draft-model "$draft" --temp "$temp" "$@"
  fi
done
echo "results in $out" >&2
