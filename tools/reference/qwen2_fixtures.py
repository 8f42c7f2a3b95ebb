"""Reference fixtures for one Qwen2-architecture GGUF (the Qwen2.5-Coder 0.5B draft or 1.5B target):
token ids from Hugging Face and logits from the NumPy reference, for tests/qwen2.

Writes into OUT/:
  tokenizer_reference.json   as tokenizer_fixtures.py (dev prompt turns, stress and code texts, edge
                             and random strings, special tokens, chats rendered by jinja2 from the
                             file's own chat template)
  forward/                   as forward_fixtures.py, for the first prompt of each of the first
                             N_PROMPTS categories rendered with the file's chat template (so with
                             Qwen's default system message): logits of the first N_LOGITS prompt
                             tokens and N_GREEDY greedy tokens after the whole prompt; no
                             layer-subset run (that machinery does not depend on the architecture)
  forward/reference_check.json   the reference's own sanity check, see below

The reference is checked before anything is written, since no independent implementation of Qwen2
runs in .venv (transformers needs torch to load GGUF weights): the mean next-token loss of the
reference on a short Python snippet (CHECK_TEXT) must be under MAX_CHECK_NLL nats/token. A model
run with the wrong RoPE layout or without its Q/K/V biases reads code far worse (measured on the
0.5B file: 0.55 nats/token as defined, 1.20 with adjacent-pair RoPE, 16.8 without biases).

Run with
    .venv/bin/python tools/reference/qwen2_fixtures.py --model M.gguf --prompts P.jsonl --out DIR
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from forward_fixtures import write_forward_fixtures  # noqa: E402
from llama_ref import LlamaRef, blas_threads  # noqa: E402
from tokenizer_fixtures import reference_tokenizers, render_chat, write_tokenizer_fixtures  # noqa: E402

N_PROMPTS = 3
N_LOGITS = 64
N_GREEDY = 16
MAX_CHECK_NLL = 1.0

CHECK_TEXT = '''def is_prime(n: int) -> bool:
    """Return True if n is a prime number."""
    if n < 2:
        return False
    for i in range(2, int(n ** 0.5) + 1):
        if n % i == 0:
            return False
    return True


def fibonacci(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
'''


def mean_nll(ref: LlamaRef, ids: list[int]) -> float:
    """Mean negative log-likelihood (nats) of ids[1:] given their prefixes, from an empty cache."""
    ref.reset()
    logits = ref.forward(ids)
    logits = logits - logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-np.mean(logp[np.arange(len(ids) - 1), ids[1:]]))


def write_qwen2_fixtures(model_path, prompts_path, out_dir) -> None:
    model_path, prompts_path, out_dir = Path(model_path), Path(prompts_path), Path(out_dir)
    t0 = time.perf_counter()
    architecture, _, extras, tokenizer, _ = reference_tokenizers(model_path)
    if architecture != "qwen2":
        raise SystemExit(f"qwen2_fixtures: {model_path} is a {architecture!r} model, not qwen2")
    ref = LlamaRef(model_path)  # float64 arithmetic (float32 storage at this size)
    t_load = time.perf_counter() - t0

    with blas_threads(1):
        nll = mean_nll(ref, tokenizer.encode(CHECK_TEXT, add_special_tokens=False).ids)
    if not nll < MAX_CHECK_NLL:
        raise SystemExit(f"qwen2_fixtures: the reference's loss on the check text is {nll:.3f} nats/token "
                         f"(limit {MAX_CHECK_NLL}): the NumPy forward pass is wrong for this file")

    write_tokenizer_fixtures(model_path, prompts_path, out_dir)
    template = extras["chat_template"]

    def render(turn: str) -> str:
        return render_chat(template, [{"role": "user", "content": turn}], True, {})

    write_forward_fixtures(model_path, prompts_path, out_dir, render=render, tokenizer=tokenizer, ref=ref,
                           n_prompts=N_PROMPTS, n_logits=N_LOGITS, n_greedy=N_GREEDY, skipped_layers=None)
    check = {"model": str(model_path), "text": CHECK_TEXT, "mean_nll": nll, "max_mean_nll": MAX_CHECK_NLL,
             "storage": str(ref.storage), "dtype": str(ref.dtype), "load_seconds": t_load}
    (out_dir / "forward" / "reference_check.json").write_text(json.dumps(check, indent=1))
    print(f"qwen2_fixtures: reference loss {nll:.3f} nats/token on the check text; wrote {out_dir} "
          f"in {time.perf_counter() - t0:.0f} s (load {t_load:.0f} s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--prompts", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    if not args.model.is_file():
        name = args.model.name
        which = "qwen-coder-1.5b" if "1.5B" in name else "qwen-coder-0.5b" if "0.5B" in name else "qwen-coder"
        print(f"qwen2_fixtures: model {args.model} not found; fetch it with scripts/fetch_models.sh {which}",
              file=sys.stderr)
        return 1
    write_qwen2_fixtures(args.model, args.prompts, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
