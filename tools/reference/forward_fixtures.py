"""Reference logits and greedy continuations for the forward-pass tests, from llama_ref.LlamaRef
(float64 NumPy) on the same GGUF file.

Prompts: the first prompt of each of the first 4 distinct categories of the JSONL file, in file order,
rendered as ChatML with the default SmolLM system message and tokenized by Hugging Face `tokenizers`
built from the GGUF (transformers' convert_gguf_tokenizer, without torch). As in
tokenizer_fixtures.py, tokenizer.ggml.pre = "smollm" gets the split llama.cpp and the model's own
tokenizer.json use (every digit isolated first), which transformers' conversion lacks.

Writes into OUT/forward/:
  <id>.logits.f32          float32 little-endian logits [n_tokens, n_vocab] for the first
                           min(64, prompt length) prompt tokens, one call from an empty cache
  skip.logits.f32          the same for the first 32 tokens of the first prompt, running every layer
                           but SKIPPED_LAYERS
  weights_<w>.logits.f32   the first N_FORMAT_LOGITS tokens of the first prompt with the weights the
                           C++ backend's --weights <w> holds (w = q8, bf16; LlamaRef(weights=w))
  forward_reference.json   token ids, file names, and greedy continuations (32 new tokens for each
                           prompt, 16 for the layer-skipping run) of the full, untruncated prompt;
                           generation does not stop at end-of-sequence; greedy_margins[i] is the
                           gap between the best and second-best logit at step i (a small gap means a
                           float32 implementation may legitimately pick the other token)

Run directly with
    .venv/bin/python tools/reference/forward_fixtures.py --model M.gguf --prompts P.jsonl --out DIR
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gguf
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llama_ref import LlamaRef, blas_threads  # noqa: E402
from tokenizer_fixtures import reference_tokenizers  # noqa: E402

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
N_PROMPTS = 4
N_LOGITS = 64
N_GREEDY = 32
SKIPPED_LAYERS = [3, 7, 8, 20]
N_SKIP_LOGITS = 32
N_SKIP_GREEDY = 16
N_FORMAT_LOGITS = 32
CONVERTED_WEIGHTS = ["q8", "bf16"]


def chatml(turn: str, system: str = SYSTEM) -> str:
    return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{turn}<|im_end|>\n"
            "<|im_start|>assistant\n")


def build_tokenizer(model_path: Path):
    """The Hugging Face reference tokenizer of the GGUF (the one the tokenizer tests compare against)."""
    return reference_tokenizers(Path(model_path))[3]


def pick_prompts(prompts_path: Path, n: int = N_PROMPTS) -> list[dict]:
    """The first prompt of each of the first n distinct categories, in file order."""
    chosen, seen = [], set()
    for line in prompts_path.read_text().splitlines():
        if not line.strip():
            continue
        p = json.loads(line)
        if p["category"] not in seen:
            seen.add(p["category"])
            chosen.append(p)
            if len(chosen) == n:
                break
    return chosen


def _write_f32(path: Path, logits: np.ndarray) -> None:
    np.ascontiguousarray(logits, dtype="<f4").tofile(path)


def _decode(ref: LlamaRef, logits: np.ndarray, n_new: int, layers=None) -> tuple[list[int], list[float]]:
    """n_new greedy ids continuing the cache, starting from the last row of `logits`, and at each
    step the gap between the best and second-best logit (how close a tie the argmax was)."""
    ids, margins = [], []
    while True:
        row = logits[-1]
        best = int(np.argmax(row))
        ids.append(best)
        margins.append(float(row[best] - np.max(np.delete(row, best))))
        if len(ids) == n_new:
            return ids, margins
        logits = ref.forward([best], layers=layers, last_only=True)


def write_forward_fixtures(model_path, prompts_path, out_dir, *, render=None, tokenizer=None, ref=None,
                           n_prompts: int = N_PROMPTS, n_logits: int = N_LOGITS, n_greedy: int = N_GREEDY,
                           skipped_layers=tuple(SKIPPED_LAYERS)) -> Path:
    """Writes out_dir/forward/* (see the module docstring); returns the JSON's path.
    render(turn) -> prompt text (default: chatml with the SmolLM system message); tokenizer and ref
    may be passed in when the caller built them already; skipped_layers=None leaves out the
    layer-subset run."""
    model_path, prompts_path, out_dir = Path(model_path), Path(prompts_path), Path(out_dir)
    fwd_dir = out_dir / "forward"
    fwd_dir.mkdir(parents=True, exist_ok=True)
    render = render or chatml
    tokenizer = tokenizer or build_tokenizer(model_path)
    ref = ref or LlamaRef(model_path)  # float64
    n_vocab = ref.hp.n_vocab

    doc: dict = {"model": str(model_path), "n_vocab": n_vocab, "dtype": str(ref.dtype),
                 "architecture": ref.hp.architecture, "tied_output": ref.tied_output,
                 "system": SYSTEM if render is chatml else None, "prompts": []}
    with blas_threads(1):
        for p in pick_prompts(prompts_path, n_prompts):
            text = render(p["turns"][0])
            full = tokenizer.encode(text, add_special_tokens=False).ids
            head = full[:n_logits]
            ref.reset()
            logits = ref.forward(head)  # one call from an empty cache
            name = f"forward/{p['id']}.logits.f32"
            _write_f32(out_dir / name, logits)
            # Prefill the rest of the prompt on top of the same cache, then decode greedily.
            if len(full) > len(head):
                logits = ref.forward(full[len(head):], last_only=True)
            greedy, margins = _decode(ref, logits, n_greedy)
            doc["prompts"].append({"id": p["id"], "category": p["category"], "text": text,
                                   "n_tokens": len(head), "tokens": head, "full_prompt_tokens": full,
                                   "logits_file": name, "greedy": greedy, "greedy_margins": margins})

        first = doc["prompts"][0]
        if skipped_layers is None:
            return _write_doc(fwd_dir, doc)
        layers = [i for i in range(ref.hp.n_layer) if i not in skipped_layers]
        tokens = first["full_prompt_tokens"][:N_SKIP_LOGITS]
        ref.reset()
        _write_f32(fwd_dir / "skip.logits.f32", ref.forward(tokens, layers=layers))
        ref.reset()
        logits = ref.forward(first["full_prompt_tokens"], layers=layers, last_only=True)
        greedy, margins = _decode(ref, logits, N_SKIP_GREEDY, layers)
        doc["skip"] = {"id": first["id"], "skipped_layers": list(skipped_layers), "layers": layers,
                       "n_tokens": len(tokens), "tokens": tokens, "logits_file": "forward/skip.logits.f32",
                       "full_prompt_tokens": first["full_prompt_tokens"], "greedy": greedy,
                       "greedy_margins": margins}
        doc["weights"] = {}
        for w in CONVERTED_WEIGHTS:
            converted = LlamaRef(model_path, weights=w)
            name = f"forward/weights_{w}.logits.f32"
            _write_f32(out_dir / name, converted.forward(first["full_prompt_tokens"][:N_FORMAT_LOGITS]))
            doc["weights"][w] = {"logits_file": name, "n_tokens": N_FORMAT_LOGITS}
            del converted
    return _write_doc(fwd_dir, doc)


def _write_doc(fwd_dir: Path, doc: dict) -> Path:
    path = fwd_dir / "forward_reference.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--prompts", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    t = time.perf_counter()
    path = write_forward_fixtures(args.model, args.prompts, args.out)
    print(f"forward_fixtures: wrote {path} in {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
