"""Writes the small seed corpus for fuzz_gguf: a few tiny valid GGUF files made with the gguf package
(metadata of several types, F32/F16/Q8_0/Q4_K tensors). Run once; the output is committed."""
import sys
from pathlib import Path

import gguf
import numpy as np

out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "corpus" / "gguf")
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)


def write(name, fill):
    w = gguf.GGUFWriter(str(out / name), arch="llama")
    fill(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def meta_only(w):
    w.add_uint32("llama.block_count", 1)
    w.add_string("general.name", "seed")
    w.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
    w.add_float32("llama.rope.freq_base", 10000.0)


def tiny_llama(w):
    w.add_uint32("llama.block_count", 1)
    w.add_uint32("llama.embedding_length", 4)
    w.add_uint32("llama.feed_forward_length", 4)
    w.add_uint32("llama.attention.head_count", 1)
    w.add_uint32("llama.context_length", 8)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    for n, shape in [("token_embd.weight", (3, 4)), ("output_norm.weight", (4,)),
                     ("blk.0.attn_norm.weight", (4,)), ("blk.0.attn_q.weight", (4, 4)),
                     ("blk.0.attn_k.weight", (4, 4)), ("blk.0.attn_v.weight", (4, 4)),
                     ("blk.0.attn_output.weight", (4, 4)), ("blk.0.ffn_norm.weight", (4,)),
                     ("blk.0.ffn_gate.weight", (4, 4)), ("blk.0.ffn_up.weight", (4, 4)),
                     ("blk.0.ffn_down.weight", (4, 4))]:
        w.add_tensor(n, rng.standard_normal(shape).astype(np.float32))


def quant(w):
    w.add_tensor("f16", rng.standard_normal((2, 32)).astype(np.float16))
    q8 = rng.integers(0, 256, size=(1, 34), dtype=np.uint8)
    q8[0, 0:2] = np.array([0.5], dtype=np.float16).view(np.uint8)
    w.add_tensor("q8", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    q4k = rng.integers(0, 256, size=(1, 144), dtype=np.uint8)
    q4k[0, 0:4] = np.array([0.25, 0.5], dtype=np.float16).view(np.uint8)
    w.add_tensor("q4k", q4k, raw_dtype=gguf.GGMLQuantizationType.Q4_K)


write("meta_only.gguf", meta_only)
write("tiny_llama.gguf", tiny_llama)
write("quant.gguf", quant)


def ppd_small():
    """A valid PPD artifact (drafters/ppd_file.hpp), k = 2, K = 3, n_embd 8, budgets up to 6, written
    by tools/ppd/artifact.py, so the fuzzer starts inside the loader's checks."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "ppd"))
    import artifact
    import trees

    acc = np.array([[0.4, 0.2, 0.1], [0.3, 0.15, 0.05]], dtype=np.float32)
    a = artifact.Artifact(prompt_embd=np.random.default_rng(3).standard_normal((2, 8)).astype(np.float32),
                          n_prompt_tokens=2, n_ensemble=1, top_k=3, model_name="seed", n_embd=8, n_vocab=16,
                          n_layer=1, token_embd_fnv1a64=12345, accuracy=acc,
                          trees=trees.build_all(acc, ensemble=1, max_budget=6))
    artifact.write(str(out / "ppd_small.ppd"), a)


ppd_small()
print(f"wrote {out}")
