#!/usr/bin/env bash
# Trains the PPD prompt tokens of the default model with the default recipe (tools/ppd/README.md):
#   tools/ppd/train.sh [EXTRA train.py ARGS...]
# writes data/ppd/SmolLM2-135M-Instruct.Q4_1.ppd and data/ppd/SmolLM2-135M-Instruct.Q4_1.train.log.jsonl.
# About 40 minutes on 2 CPU cores (measured throughput in the README); sets up .venv and PyTorch first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$root/scripts/setup.sh"
ensure_venv
ensure_torch
ensure_model
cd "$root"
exec "$root/.venv/bin/python" tools/ppd/train.py \
  --model "$root/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
  --out "$root/data/ppd/SmolLM2-135M-Instruct.Q4_1.ppd" \
  --log "$root/data/ppd/SmolLM2-135M-Instruct.Q4_1.train.log.jsonl" \
  "$@"
