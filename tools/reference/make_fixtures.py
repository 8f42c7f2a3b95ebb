"""Produces every reference fixture the C++ tests compare against (ctest runs this first).

The references are independent implementations from PyPI: the `gguf` package for file layout and
dequantization, Hugging Face `tokenizers`/`transformers` for token ids.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from forward_fixtures import write_forward_fixtures  # noqa: E402
from gguf_fixtures import write_gguf_fixtures  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--prompts", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    if not args.model.is_file():
        print(f"make_fixtures: model {args.model} not found (run scripts/test.sh to fetch it)", file=sys.stderr)
        return 1
    # The fixtures depend only on these inputs: when a directory already holds fixtures made from the
    # same ones (its stamp matches), they are reused, e.g. by the sanitizer build (scripts/sanitize.sh
    # copies the release build's) or a second ctest run. The NumPy forward takes minutes.
    stamp = _stamp(args.model, args.prompts)
    stamp_file = args.out / "inputs.stamp"
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        print(f"make_fixtures: {args.out} is up to date (inputs.stamp matches)")
        return 0
    if stamp_file.exists():
        stamp_file.unlink()
    write_gguf_fixtures(args.model, args.out)
    try:
        from tokenizer_fixtures import write_tokenizer_fixtures
    except ImportError:
        write_tokenizer_fixtures = None
    if write_tokenizer_fixtures is not None:
        write_tokenizer_fixtures(args.model, args.prompts, args.out)
    write_forward_fixtures(args.model, args.prompts, args.out)
    stamp_file.write_text(stamp)
    print(f"make_fixtures: wrote {args.out}")
    return 0


def _stamp(model: Path, prompts: Path) -> str:
    """sha256 over the model's size and first and last MiB, the prompts, and this directory's scripts."""
    h = hashlib.sha256()
    size = model.stat().st_size
    h.update(str(size).encode())
    with model.open("rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        h.update(f.read(1 << 20))
    h.update(prompts.read_bytes())
    for script in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(script.name.encode())
        h.update(script.read_bytes())
    return h.hexdigest() + "\n"


if __name__ == "__main__":
    sys.exit(main())
