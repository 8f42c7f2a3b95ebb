#!/usr/bin/env bash
# Prepares, on this Debian machine, what scripts/gpu_check.sh needs on a GPU machine that has nvcc,
# CMake and a C++20 host compiler but none of our Debian packages and no network:
#   build-gpu-bundle/deps.tar.gz   the header-only dependencies of the targets the GPU check builds
#                                  (Eigen, xtensor, xtl, Catch2, CLI11, nlohmann json: headers and
#                                  their CMake package files, laid out as under /usr; Catch2's
#                                  package also wants its libCatch2WithMain.a to exist)
#   build-gpu-bundle/model.part1   the default model in two halves (it does not fit in one 64 MiB
#   build-gpu-bundle/model.part2   transfer with the sources); gpu_check.sh joins them and checks
#                                  the sha256 in scripts/model.sha256
# Usage: scripts/prepare_gpu_bundle.sh [--no-model]      (docs/gpu.md has the steps that follow)
set -euo pipefail
cd "$(dirname "$0")/.."

with_model=1
case "${1:-}" in
  --no-model) with_model=0 ;;
  "") ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) echo "prepare_gpu_bundle.sh: unknown argument '$1' (--no-model, --help)" >&2; exit 2 ;;
esac

out=build-gpu-bundle
mkdir -p "$out"

# CMake package folders: their config files locate the headers relative to themselves (../../..).
find_config() {  # the folder holding $1 under /usr, without the leading slash
  local f
  f=$(find /usr/lib /usr/share -name "$1" -print -quit 2>/dev/null || true)
  if [[ -z "$f" ]]; then
    echo "prepare_gpu_bundle.sh: $1 not found; install the Debian packages first (scripts/test.sh does)" >&2
    exit 1
  fi
  dirname "${f#/}"
}
paths=(
  usr/include/eigen3/Eigen usr/include/eigen3/signature_of_eigen3_matrix_library "$(find_config Eigen3Config.cmake)"
  usr/include/xtensor "$(find_config xtensorConfig.cmake)"
  usr/include/xtl "$(find_config xtlConfig.cmake)"
  usr/include/catch2 "$(find_config Catch2Config.cmake)"
  usr/include/CLI "$(find_config CLI11Config.cmake)"
  usr/include/nlohmann "$(find_config nlohmann_jsonConfig.cmake)"
)
# Catch2's package file checks that the Catch2WithMain library it names exists (we do not link it).
for lib in /usr/lib/libCatch2WithMain.a /usr/lib/*/libCatch2WithMain.a; do
  [[ -f "$lib" ]] && paths+=("${lib#/}")
done
for p in "${paths[@]}"; do
  [[ -e "/$p" ]] || { echo "prepare_gpu_bundle.sh: /$p is missing" >&2; exit 1; }
done
tar -czf "$out/deps.tar.gz" -C / "${paths[@]}"

if [[ $with_model == 1 ]]; then
  model=models/SmolLM2-135M-Instruct.Q4_1.gguf
  if [[ ! -f "$model" ]]; then
    echo "prepare_gpu_bundle.sh: $model is missing (scripts/demo.sh or scripts/test.sh fetch it)" >&2
    exit 1
  fi
  size=$(stat -c %s "$model")
  half=$(( (size + 1) / 2 ))
  head -c "$half" "$model" > "$out/model.part1"
  tail -c +"$((half + 1))" "$model" > "$out/model.part2"
fi

echo "build-gpu-bundle/:"
du -b "$out"/* | awk '{ printf "  %-32s %7.2f MiB\n", $2, $1 / 1048576 }'
src=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
awk -v b="$src" 'BEGIN { printf "  sources sent with every run (tracked + untracked, not ignored): %.2f MiB\n", b / 1048576 }'
