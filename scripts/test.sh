#!/usr/bin/env bash
# Quick start, part 2: the same set-up, then build everything (tests, examples, benchmarks) and run
# the whole test suite through ctest. Exits non-zero on any failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_packages --with-test-tools
ensure_venv
ensure_model
build_release
cd "$SPECDEC_ROOT/build"
ctest --output-on-failure -j "$(nproc)" "$@"
