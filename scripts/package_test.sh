#!/usr/bin/env bash
# Packaging is tested like code: install specdec into a prefix, then build and run two consumers,
# one with find_package(specdec CONFIG) and one with add_subdirectory.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$root/build-package"
rm -rf "$work"
mkdir -p "$work"
cmake -S "$root" -B "$work/specdec" -DCMAKE_INSTALL_PREFIX="$work/prefix" -DSPECDEC_BUILD_TESTS=OFF \
  -DSPECDEC_BUILD_EXAMPLES=OFF -DSPECDEC_BUILD_BENCH=OFF -DSPECDEC_HEADER_CHECK=OFF >/dev/null
cmake --install "$work/specdec" >/dev/null
for consumer in find_package add_subdirectory; do
  echo "[package] $consumer consumer"
  cmake -S "$root/tests/package/$consumer" -B "$work/$consumer" -DCMAKE_PREFIX_PATH="$work/prefix" \
    -DSPECDEC_SOURCE_DIR="$root" >/dev/null
  cmake --build "$work/$consumer" -j "$(nproc)" >/dev/null
  "$work/$consumer/consumer" "$root/tests/fuzz/corpus/gguf/tiny_llama.gguf"
done
echo "[package] ok"
