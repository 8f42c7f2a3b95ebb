#!/usr/bin/env bash
# The GPU check: one command, run at the repository root on a machine with an NVIDIA GPU, nvcc and
# CMake. It builds the CUDA backend's tests and the GPU check program, runs them and writes a
# summary into OUT_DIR (docs/gpu.md has the steps, including the two-run transfer of the model):
#   tests.txt              the [cuda] tests (CPU-vs-GPU logits, batch invariance n = 1..256, trees,
#                          commit/truncate, layer subsets, argmax, greedy TR/Lookahead = AR, errors)
#   summary.md / .json     logits against the CPU fp32 path, greedy equality and speed of every
#                          method (ar, token-recycling, lookahead, dyspec, dyspec-level, sps,
#                          specinfer, ppd) on the GPU, AR with the device argmax, the cost curve
#                          (curve.csv: ms per forward, rows 1..256)
#   README.md              the verdict of each part, the build and run times
#
# Usage: scripts/gpu_check.sh OUT_DIR        everything (joins the model from its halves if needed)
#        scripts/gpu_check.sh --prepare      stash build-gpu-bundle/model.part* and build only
#                                            (the first of two consecutive runs, docs/gpu.md)
# Dependencies: the Debian packages when CMake finds them, else build-gpu-bundle/deps.tar.gz made by
# scripts/prepare_gpu_bundle.sh. Model: $SPECDEC_GPU_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf,
# else joined from model.part1 + model.part2 (build-gpu-bundle/ or build-gpu/stash/). CUDA
# architectures: $SPECDEC_CUDA_ARCH (default: the first GPU's compute capability, else 90).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$SECONDS

usage() { sed -n '2,22p' "$0"; }
prepare_only=0
out=""
case "${1:-}" in
  --prepare) prepare_only=1 ;;
  -h|--help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
  *) out=$1 ;;
esac

build=$root/build-gpu
stash=$build/stash
bundle=$root/build-gpu-bundle
default_model=$root/models/SmolLM2-135M-Instruct.Q4_1.gguf
model=${SPECDEC_GPU_MODEL:-$default_model}
mkdir -p "$stash"
log() { echo "[gpu_check $((SECONDS - start))s] $*"; }

# 1. Model halves: keep whatever this run brought (a later run may bring the other half).
for p in model.part1 model.part2; do
  if [[ -f "$bundle/$p" ]]; then
    cp "$bundle/$p" "$stash/$p"
    log "stashed $p ($(stat -c %s "$stash/$p") bytes) in build-gpu/stash"
  fi
done
join_model() {
  [[ -f "$model" ]] && return 0
  if [[ "$model" != "$default_model" ]]; then
    echo "gpu_check.sh: model $model not found" >&2
    return 1
  fi
  if [[ ! -f "$stash/model.part1" || ! -f "$stash/model.part2" ]]; then
    echo "gpu_check.sh: no model: neither $model nor both halves (build-gpu/stash/model.part1 and" \
         "model.part2; docs/gpu.md: send one half per run, two consecutive runs)" >&2
    return 1
  fi
  mkdir -p "$(dirname "$model")"
  cat "$stash/model.part1" "$stash/model.part2" > "$model.partial"
  local want got
  want=$(awk '{ print $1 }' "$root/scripts/model.sha256")
  if command -v sha256sum > /dev/null; then
    got=$(sha256sum "$model.partial" | awk '{ print $1 }')
  else
    got=$(python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$model.partial")
  fi
  if [[ "$got" != "$want" ]]; then
    rm -f "$model.partial"
    echo "gpu_check.sh: the joined model's sha256 $got differs from scripts/model.sha256 ($want)" >&2
    return 1
  fi
  mv "$model.partial" "$model"
  log "joined the model from its halves (sha256 checked)"
}

# 2. Dependencies: the system's packages, else the bundle.
cmake_deps=()
if [[ -f "$bundle/deps.tar.gz" ]]; then
  mkdir -p "$build/deps"
  tar -xzf "$bundle/deps.tar.gz" -C "$build/deps"
fi
if [[ -d "$build/deps/usr" ]]; then
  d=$build/deps/usr
  dir_of() { dirname "$(find "$d" -name "$1" -print -quit)"; }
  cmake_deps=(-DEigen3_DIR="$(dir_of Eigen3Config.cmake)" -Dxtensor_DIR="$(dir_of xtensorConfig.cmake)"
              -Dxtl_DIR="$(dir_of xtlConfig.cmake)" -DCatch2_DIR="$(dir_of Catch2Config.cmake)"
              -DCLI11_DIR="$(dir_of CLI11Config.cmake)" -Dnlohmann_json_DIR="$(dir_of nlohmann_jsonConfig.cmake)")
  log "dependencies from build-gpu-bundle/deps.tar.gz"
fi

# 3. Configure and build the CUDA targets only.
arch=${SPECDEC_CUDA_ARCH:-}
if [[ -z "$arch" ]] && command -v nvidia-smi > /dev/null; then
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .' || true)
fi
arch=${arch:-90}
if [[ -z "${CUDACXX:-}" ]] && ! command -v nvcc > /dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
logs=${out:-$build}
mkdir -p "$logs"
log "configure (CUDA architectures $arch)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSPECDEC_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
  -DSPECDEC_BUILD_EXAMPLES=OFF -DSPECDEC_BUILD_BENCH=OFF -DSPECDEC_HEADER_CHECK=OFF -DSPECDEC_INSTALL=OFF \
  -DSPECDEC_DEFAULT_MODEL="$model" "${cmake_deps[@]}" > "$logs/configure.log" 2>&1 \
  || { tail -30 "$logs/configure.log" >&2; exit 1; }
log "build"
build_start=$SECONDS
cmake --build "$build" -j "${SPECDEC_BUILD_JOBS:-$(nproc)}" --target test_cuda specdec-gpu-check > "$logs/build.log" 2>&1 \
  || { grep -E "error|Error" "$logs/build.log" | head -30 >&2; exit 1; }
build_s=$((SECONDS - build_start))
log "built in ${build_s}s"
if [[ $prepare_only == 1 ]]; then
  join_model || true
  exit 0
fi

# 4. Run.
join_model
mkdir -p "$out"
out=$(cd "$out" && pwd)
command -v nvidia-smi > /dev/null && nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
log "[cuda] tests"
set +e
timeout 240 "$build/tests/cuda/test_cuda" "~[qwen2]" --durations yes > "$out/tests.txt" 2>&1
tests_rc=$?
log "GPU check program"
timeout 240 "$build/tests/cuda/specdec-gpu-check" -m "$model" -o "$out" > "$out/gpu_check.txt" 2>&1
check_rc=$?
set -e

verdict() { case $1 in 0) echo "passed" ;; 77) echo "SKIPPED (no CUDA device)" ;; 124) echo "TIMED OUT" ;; *) echo "FAILED (exit $1)" ;; esac; }
{
  echo "# GPU check $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "- commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo unknown)"
  echo "- build: ${build_s}s (CUDA architectures $arch); total: $((SECONDS - start))s"
  echo "- [cuda] tests: $(verdict $tests_rc) -- $(grep -E '^(All tests passed|test cases:)' "$out/tests.txt" | tail -1)"
  echo "- GPU check program: $(verdict $check_rc) (1 = a greedy output differs from AR)"
  echo
  echo "## Numbers printed by the tests"
  echo
  grep '^\[cuda\]' "$out/tests.txt" | sed 's/^/    /' || true
  echo
  if [[ -f "$out/summary.md" ]]; then sed 's/^# GPU check$/## GPU check program/' "$out/summary.md"; fi
} > "$out/README.md"
cat "$out/README.md"
log "done in $((SECONDS - start))s"
[[ $tests_rc == 0 && $check_rc == 0 ]]
