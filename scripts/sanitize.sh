#!/usr/bin/env bash
# Builds the unit tests with AddressSanitizer + UndefinedBehaviorSanitizer (gcc, -O1) in build-asan/
# and runs them through ctest: the ctest label slow and the Catch2 cases tagged [slow] are left out
# (the release run of scripts/test.sh has them). Run after scripts/test.sh (it relies on the same set-up).
# The CUDA targets are left out (SPECDEC_ENABLE_CUDA=OFF): they only compile here, and the release build
# compiles them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/build-asan"
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
    -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DSPECDEC_BUILD_EXAMPLES=OFF -DSPECDEC_BUILD_BENCH=OFF -DSPECDEC_HEADER_CHECK=OFF \
    -DSPECDEC_ENABLE_CUDA=OFF -DSPECDEC_TEST_SANITIZED=ON >/dev/null
fi
# An older build-asan/ from before SPECDEC_TEST_SANITIZED existed: turn it on.
cmake -S "$root" -B "$dir" -DSPECDEC_TEST_SANITIZED=ON >/dev/null
cmake --build "$dir" -j "$(nproc)"
# The release build's reference fixtures, when scripts/test.sh made them: make_fixtures.py reuses
# them if their inputs.stamp matches (else it remakes them), which saves its NumPy forward here.
release_fixtures="$root/build/tests/fixtures"
if [ -f "$release_fixtures/inputs.stamp" ] && [ ! -f "$dir/tests/fixtures/inputs.stamp" ]; then
  mkdir -p "$dir/tests/fixtures"
  find "$release_fixtures" -mindepth 1 -maxdepth 1 ! -name 'qwen2-*' ! -name sampling -exec cp -r {} "$dir/tests/fixtures/" \;
fi
cd "$dir"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j "$(nproc)" -LE slow "$@"
