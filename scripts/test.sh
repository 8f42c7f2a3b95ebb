#!/usr/bin/env bash
# Quick start, part 2: the same set-up, then build everything (tests, examples, benchmarks) and run
# the whole test suite through ctest. Exits non-zero on any failure.
#   scripts/test.sh [CTEST_ARGS...]           everything, with the qwen2 checks on the 0.5B file
#   scripts/test.sh --realistic [CTEST_ARGS]  the realistic tier only (ctest -L realistic): both
#                                             Qwen2.5-Coder files, fetched first; turns on
#                                             SPECDEC_REALISTIC_TESTS in build/ (~14 GB RAM;
#                                             it stays on: -DSPECDEC_REALISTIC_TESTS=OFF)
set -euo pipefail
realistic=0
if [ "${1:-}" = "--realistic" ]; then
  realistic=1
  shift
fi
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_packages --with-test-tools
ensure_venv
ensure_torch
ensure_model
if [ "$realistic" = 1 ]; then
  ensure_models qwen-coder
  cmake -S "$SPECDEC_ROOT" -B "$SPECDEC_ROOT/build" -DCMAKE_BUILD_TYPE=Release -DSPECDEC_REALISTIC_TESTS=ON >/dev/null
  build_release
  cd "$SPECDEC_ROOT/build"
  ctest --output-on-failure -j "$(nproc)" -L realistic "$@"
  exit 0
fi
ensure_models qwen-coder-0.5b
build_release
cd "$SPECDEC_ROOT/build"
ctest --output-on-failure -j "$(nproc)" "$@"
