#!/usr/bin/env bash
# Quick start, part 1: set up everything a fresh Debian 12 machine lacks, build, run the main demo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_packages
ensure_venv
ensure_model
build_release --target specdec-generate
"$SPECDEC_ROOT/build/examples/generate/specdec-generate" -m "$SPECDEC_MODEL_FILE" \
  -p "What is the capital of France?" -n 64 --temp 0 "$@"
