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
echo "[package] core_only consumer (specdec::core alone)"
cmake -S "$root/tests/package/core_only" -B "$work/core_only" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/core_only" -j "$(nproc)" >/dev/null
"$work/core_only/core_consumer"
# No header of the core (core/, concepts/, verify/, drafters/) may include a third-party header.
core_headers="$(cd "$work/prefix/include" && ls specdec/core/*.hpp specdec/concepts/*.hpp specdec/verify/*.hpp specdec/drafters/*.hpp)"
for h in $core_headers; do echo "#include <$h>"; done >"$work/core_all.cpp"
if c++ -std=c++20 -M -I "$work/prefix/include" -x c++ "$work/core_all.cpp" | tr ' ' '\n' | grep -E 'eigen3|xtensor|xtl/|cuda|nlohmann'; then
  echo "[package] error: a core header includes a third-party header (above)"
  exit 1
fi
echo "[package] ok"
