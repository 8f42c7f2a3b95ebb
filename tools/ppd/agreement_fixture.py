"""Reference logits for the C++ PPD test (tests/ppd/test_ppd_agreement.cpp): a ChatML prompt run as a
chain of rows, then k * m prompt-token rows fed embedding vectors, computed by the PPD trainer's own
torch forward (tools/ppd/train.py: prompt_row_logits, the function training differentiates).

    .venv/bin/python tools/ppd/agreement_fixture.py --model M.gguf [--ppd FILE.ppd] --out DIR

The prompt vectors come from --ppd (an artifact of this model), else they are random (seed --seed,
N(0, s) with s the standard deviation of the model's token embeddings), k = 3 and m = 1.

Writes into DIR:
  ppd_agreement.json
    model, ppd (path or null), seed
    tokens            the prefix: token ids of a short user message in the model's chat template
    n_prefix          L = len(tokens)
    n_prompt, n_ensemble, n_embd, n_vocab, n_rows (= L + k*m)
    positions         the k*m prompt rows' positions (the prefix rows sit at 0..L-1): L + i
    parents           the prompt rows' parents as pending-row indices, the prefix being rows 0..L-1
                      of a chain (row r's parent r-1): prompt row (chain j, prompt i) -> L-1 for
                      i = 0, else the row before it (L + j*k + i - 1)
    prompt_embedding  for each prompt row, the index of its vector in embeddings_file
    embeddings_file   "ppd_agreement_embd.f32": k*m x n_embd float32 little-endian, row i*m + j =
                      prompt token i, virtual token j (the artifact's ppd.prompt_embd order)
    logits_file       "ppd_agreement_logits.f32": n_rows x n_vocab float32 little-endian, the logits of
                      every row in pending-row order: the L prefix rows, then the prompt rows chain
                      by chain (row L + j*k + i = chain j, prompt i; for m = 1 simply L + i)
Row semantics are the sequence_model's (docs/design.md): a row attends to the committed cache (empty
here), its pending ancestors and itself, so the prompt rows of chain j see the whole prefix and the
earlier rows of chain j.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

try:
    import torch
except ImportError:  # ctest treats 77 as skipped (tests/ppd/CMakeLists.txt)
    print("agreement_fixture: torch is not installed (scripts/setup.sh ensure_torch); skipped")
    sys.exit(77)

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model import TorchLlama  # noqa: E402
from train import prompt_row_logits, row_layout  # noqa: E402

USER_TEXT = "Name three colours."


def prefix_tokens(model_path: Path) -> list[int]:
    from prompts import ChatRenderer

    return ChatRenderer(model_path).encode(USER_TEXT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--ppd", type=Path, help="artifact whose prompt vectors to use (default: random)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("-k", "--n-prompt", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not args.model.is_file():
        print(f"agreement_fixture: model {args.model} not found", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    model = TorchLlama(args.model)
    if args.ppd:
        import artifact

        a = artifact.read(args.ppd, model=args.model)
        k, m = a.n_prompt_tokens, a.n_ensemble
        emb = torch.from_numpy(np.array(a.prompt_embd, dtype=np.float32))
    else:
        k, m = args.n_prompt, 1
        g = torch.Generator().manual_seed(args.seed)
        std = float(model.tok_embd.std())
        emb = torch.randn(k * m, model.n_embd, generator=g) * std

    tokens = prefix_tokens(args.model)
    L = len(tokens)
    cache = model.new_cache(1, L)
    with torch.no_grad():
        prefix_logits = model.prefill(cache, 0, tokens)                            # [L, V]
        rows = prompt_row_logits(model, emb, cache, [[L - 1]], k, m)[0]           # [k*m, V]
    vec, pos, _, _ = row_layout([L - 1], k, m)
    prompt_parents = [L - 1 if r % k == 0 else L + r - 1 for r in range(k * m)]

    args.out.mkdir(parents=True, exist_ok=True)
    embd_file, logits_file = "ppd_agreement_embd.f32", "ppd_agreement_logits.f32"
    emb.numpy().astype("<f4").tofile(args.out / embd_file)
    torch.cat([prefix_logits, rows]).numpy().astype("<f4").tofile(args.out / logits_file)
    doc = {
        "model": str(args.model), "ppd": str(args.ppd) if args.ppd else None, "seed": args.seed,
        "tokens": tokens, "n_prefix": L, "n_prompt": k, "n_ensemble": m, "n_embd": model.n_embd,
        "n_vocab": model.n_vocab, "n_rows": L + k * m,
        "positions": pos.tolist(), "parents": prompt_parents, "prompt_embedding": vec.tolist(),
        "embeddings_file": embd_file, "logits_file": logits_file,
    }
    (args.out / "ppd_agreement.json").write_text(json.dumps(doc, indent=1))
    print(f"agreement_fixture: wrote {args.out / 'ppd_agreement.json'} ({L} prefix rows, {k * m} prompt rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
