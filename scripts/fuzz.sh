#!/usr/bin/env bash
# Builds the libFuzzer target for the GGUF reader with clang (ASan + UBSan) and runs it for a bounded
# time (default 60 s) from the small seed corpus in tests/fuzz/corpus/gguf. New inputs found during the
# run go to a scratch directory, not the repository. Exits non-zero on any crash, leak or UB report.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-60}"
out="$root/build-fuzz"
mkdir -p "$out/work"
cxx="$(command -v clang++ || command -v clang++-14 || true)"
if [ -z "$cxx" ]; then
  echo "[fuzz] clang++ not found (scripts/test.sh installs it)" >&2
  exit 1
fi
inc="$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)"
bin="$out/fuzz_gguf"
src="$root/tests/fuzz/fuzz_gguf.cpp"
if [ ! -x "$bin" ] || [ -n "$(find "$src" "$root/include" -newer "$bin" -print -quit)" ]; then
  echo "[fuzz] building $bin"
  "$cxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root/include" $inc "$src" -o "$bin"
fi
echo "[fuzz] running for ${seconds}s"
cd "$out"
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$bin" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  "$out/work" "$root/tests/fuzz/corpus/gguf" 2>&1 | tail -n 25
status="${PIPESTATUS[0]}"
echo "[fuzz] exit status $status"
exit "$status"
