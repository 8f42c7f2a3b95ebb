"""A tiny Llama GGUF for the PPD tests (the writer mirrors tools/reference/sampling_fixtures.py:
NumPy weights from a fixed seed, gguf.GGUFWriter, F32 tensors).

Random weights alone make a poor training target: a random model's next-token distributions are
either nearly uniform (small weights) or sharp and chaotic in the context (large ones), and prompt
vectors can reduce the distillation loss by a few percent at most. So this model has a plain
structure under the random noise: token embeddings are scaled one-hot vectors (n_embd = n_vocab),
and the untied output head maps token v to (v + 1) mod 4, so greedy text soon cycles 0 1 2 3 and
the model's distributions at the prompt tokens' offsets are learnable. Attention, feed-forward and
norm weights are random (N(0, NOISE_STD)) and so are small additions to the embeddings and the head,
so every tensor takes part in the forward.
"""
from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

N_VOCAB, N_EMBD, N_FF, N_LAYER, N_HEAD, N_HEAD_KV = 64, 64, 64, 2, 4, 2
HEAD_DIM = N_EMBD // N_HEAD
NOISE_STD = 0.05
EMBD_SCALE = 2.0
HEAD_SCALE = 0.5
CYCLE = 4


def write_tiny_llama(path: Path, seed: int = 5) -> Path:
    rng = np.random.default_rng(seed)
    kv = N_HEAD_KV * HEAD_DIM

    def w(*shape):
        return rng.normal(0.0, NOISE_STD, size=shape).astype(np.float32)

    def norm():
        return (1.0 + w(N_EMBD)).astype(np.float32)

    embd = (EMBD_SCALE * np.eye(N_VOCAB, N_EMBD) + w(N_VOCAB, N_EMBD)).astype(np.float32)
    head = w(N_VOCAB, N_EMBD)
    for v in range(N_VOCAB):
        head[(v + 1) % CYCLE, v] += HEAD_SCALE
    tensors = [("token_embd.weight", embd), ("output_norm.weight", norm()), ("output.weight", head)]
    for i in range(N_LAYER):
        p = f"blk.{i}."
        tensors += [
            (p + "attn_norm.weight", norm()),
            (p + "attn_q.weight", w(N_EMBD, N_EMBD)),
            (p + "attn_k.weight", w(kv, N_EMBD)),
            (p + "attn_v.weight", w(kv, N_EMBD)),
            (p + "attn_output.weight", w(N_EMBD, N_EMBD)),
            (p + "ffn_norm.weight", norm()),
            (p + "ffn_gate.weight", w(N_FF, N_EMBD)),
            (p + "ffn_up.weight", w(N_FF, N_EMBD)),
            (p + "ffn_down.weight", w(N_EMBD, N_FF)),
        ]
    wr = gguf.GGUFWriter(str(path), arch="llama")
    wr.add_name("tiny-ppd-test")
    wr.add_block_count(N_LAYER)
    wr.add_embedding_length(N_EMBD)
    wr.add_feed_forward_length(N_FF)
    wr.add_head_count(N_HEAD)
    wr.add_head_count_kv(N_HEAD_KV)
    wr.add_context_length(512)
    wr.add_layer_norm_rms_eps(1e-5)
    for name, a in tensors:
        wr.add_tensor(name, a)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    return path
