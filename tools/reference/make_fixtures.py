"""Produces every reference fixture the C++ tests compare against (ctest runs this first).

The references are independent implementations from PyPI: the `gguf` package for file layout and
dequantization, Hugging Face `tokenizers`/`transformers` for token ids.
"""
from __future__ import annotations

import argparse
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
    write_gguf_fixtures(args.model, args.out)
    try:
        from tokenizer_fixtures import write_tokenizer_fixtures
    except ImportError:
        write_tokenizer_fixtures = None
    if write_tokenizer_fixtures is not None:
        write_tokenizer_fixtures(args.model, args.prompts, args.out)
    write_forward_fixtures(args.model, args.prompts, args.out)
    print(f"make_fixtures: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
