"""Independent NumPy reference of the Llama-architecture forward pass (and of its Qwen2 variant),
reading a GGUF file with `gguf`.

Used to produce the logits and greedy continuations the C++ CPU backend is checked against. It
shares no code with the C++ side: the file layout and the dequantization come from the `gguf` PyPI
package, everything else is written out here from the model's definition.

Numerics: weights are dequantized by gguf.quants.dequantize (float32, as the quantized blocks
define them, so no information is lost) and then held, like every activation, in float64 by default.
A float64 reference has a rounding error some nine orders of magnitude under the float32 C++
backend's, so a comparison measures the backend's error alone; the cost (about twice the time and
memory of float32, ~1.1 GB for a 135M model) is small at this size. dtype=np.float32 is offered to
check how much float32 arithmetic moves the logits. Models over `max_float64_bytes` (2 GiB by
default: the Qwen2.5 0.5B and 1.5B files) keep their matrices in float32, which holds the
dequantized values exactly, and widen each one to float64 in blocks as it is used: the same numbers
as float64 storage, at half the memory and some extra time per call.

Model definition, as llama.cpp runs the "llama" architecture:
  x = token_embd[tokens]
  per layer:  h = x + attn_output(attention(rope(q), rope(k), v))  with q, k, v from rms_norm(x) * attn_norm
              x = h + ffn_down(silu(ffn_gate(n)) * ffn_up(n))         with n = rms_norm(h) * ffn_norm
  logits = output(rms_norm(x) * output_norm)     (output.weight, else the tied token_embd.weight)
  rms_norm(x) = x / sqrt(mean(x^2) + eps)
  attention: causal by position, grouped-query (query head h reads kv head h // (n_head / n_head_kv)),
             scores scaled by 1/sqrt(head_dim), softmax over keys.
  rope: llama.cpp's converter permutes attn_q/attn_k for "llama" so that the "normal" ggml rope
        applies: within each head, dimensions (2i, 2i+1) for i < n_rot/2 are rotated by
        theta_i = p * freq_base^(-2i/n_rot), p = position / linear-scaling factor; dimensions from
        n_rot on are left alone.

"qwen2" (Qwen2 / Qwen2.5), as transformers' modeling_qwen2.py defines it, differs in three ways:
  - q, k, v = rms_norm(x) * attn_norm @ W + b: q_proj, k_proj and v_proj are nn.Linear(bias=True)
    (o_proj and the MLP have no bias); the GGUF stores b as blk.N.attn_{q,k,v}.bias;
  - rope is the NeoX layout: apply_rotary_pos_emb computes x * cos + rotate_half(x) * sin with
    rotate_half(x) = cat(-x[d/2:], x[:d/2]), i.e. dimension i turns with i + n_rot/2 by theta_i;
    llama.cpp's converter does not permute Qwen2's attn_q/attn_k (only "llama"'s), so the file's
    rows are in that layout already;
  - the metadata keys are qwen2.* (rope.freq_base 1e6 for Qwen2.5), and output.weight may be
    absent (tied to token_embd.weight) or present.

Use:
    ref = LlamaRef("models/SmolLM2-135M-Instruct.Q4_1.gguf")     # dtype=np.float64
    logits = ref.forward([1, 4093, 198])     # [3, n_vocab], appends to the KV cache
    logits = ref.forward([28])               # continues at position 3
    ref.reset()
    new_ids = ref.greedy(prompt_ids, 20)     # resets first unless reset=False
"""
from __future__ import annotations

import contextlib
import ctypes
import glob
import os
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import gguf
import numpy as np

LAYER_TENSORS = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                 "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")
BIAS_TENSORS = ("attn_q", "attn_k", "attn_v")
ARCHITECTURES = ("llama", "qwen2")


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[bool]:
    """Best effort: runs the block with NumPy's OpenBLAS limited to n threads, then restores the
    previous count; yields whether it could. On a small, busy machine one thread is several times
    faster for the one-token matmuls of decoding (0.35 ms against 12 ms for [1,576]x[576,3072]),
    and OPENBLAS_NUM_THREADS cannot help once NumPy is imported."""
    setter = getter = None
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("64_", "_64_", ""):
            for prefix in ("scipy_openblas", "openblas"):
                set_f = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                get_f = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if set_f is not None and get_f is not None:
                    setter, getter = set_f, get_f
                    break
            if setter:
                break
        if setter:
            break
    if setter is None:
        yield False
        return
    setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
    before = getter()
    setter(int(n))
    try:
        yield True
    finally:
        setter(before)


class UnsupportedModel(ValueError):
    """The GGUF file uses a feature this reference does not implement."""


@dataclass(frozen=True)
class Hparams:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_rot: int
    rope_freq_base: float
    rope_scale: float  # positions are divided by this (1.0: no scaling)
    rms_eps: float
    n_vocab: int
    architecture: str = "llama"
    neox_rope: bool = False  # rotate (i, i + n_rot/2) instead of (2i, 2i+1)


def _field(fields: dict, key: str, default=None):
    f = fields.get(key)
    if f is None:
        return default
    return f.contents()


def _read_hparams(reader: gguf.GGUFReader, tensors: dict) -> Hparams:
    fields = reader.fields
    arch = _field(fields, "general.architecture")
    if arch not in ARCHITECTURES:
        raise UnsupportedModel(f"architecture {arch!r} is not supported (only {', '.join(ARCHITECTURES)})")
    p = f"{arch}."

    def need(key):
        v = _field(fields, p + key)
        if v is None:
            raise UnsupportedModel(f"GGUF metadata lacks {p + key}")
        return v

    n_layer = int(need("block_count"))
    n_embd = int(need("embedding_length"))
    raw = {k: need(k) for k in ("feed_forward_length", "attention.head_count")}
    raw["attention.head_count_kv"] = _field(fields, p + "attention.head_count_kv", raw["attention.head_count"])
    for k, v in raw.items():
        if isinstance(v, list):
            raise UnsupportedModel(f"per-layer {p + k} arrays are not supported")
    n_ff, n_head, n_head_kv = (int(raw[k]) for k in
                               ("feed_forward_length", "attention.head_count", "attention.head_count_kv"))
    if n_embd % n_head or n_head % n_head_kv:
        raise UnsupportedModel(f"n_embd {n_embd}, n_head {n_head}, n_head_kv {n_head_kv} do not divide")
    head_dim = n_embd // n_head
    for key in ("attention.key_length", "attention.value_length"):
        v = _field(fields, p + key)
        if v is not None and int(v) != head_dim:
            raise UnsupportedModel(f"{p + key} = {v} differs from n_embd / n_head = {head_dim}")
    if int(_field(fields, p + "expert_count", 0) or 0) > 0:
        raise UnsupportedModel("mixture-of-experts models are not supported")
    n_rot = int(_field(fields, p + "rope.dimension_count", head_dim))
    if n_rot > head_dim or n_rot % 2:
        raise UnsupportedModel(f"rope.dimension_count {n_rot} must be even and <= head_dim {head_dim}")
    freq_base = float(_field(fields, p + "rope.freq_base", 10000.0))

    # As llama.cpp reads them: the type defaults to linear, the factor comes from rope.scaling.factor,
    # else the older rope.scale_linear; 0 or absent means no scaling.
    scaling = _field(fields, p + "rope.scaling.type", "linear")
    if scaling not in ("none", "linear"):
        raise UnsupportedModel(f"rope.scaling.type {scaling!r} is not supported (only none / linear)")
    factor = _field(fields, p + "rope.scaling.factor")
    if factor is None:
        factor = _field(fields, p + "rope.scale_linear")
    rope_scale = float(factor) if factor is not None and float(factor) != 0.0 else 1.0

    eps = _field(fields, p + "attention.layer_norm_rms_epsilon")
    if eps is None:
        if _field(fields, p + "attention.layer_norm_epsilon") is not None:
            raise UnsupportedModel("non-RMS layer norm (attention.layer_norm_epsilon) is not supported")
        raise UnsupportedModel(f"GGUF metadata lacks {p}attention.layer_norm_rms_epsilon")

    n_vocab = int(tensors["token_embd.weight"].shape[1])
    meta_vocab = _field(fields, p + "vocab_size")
    if meta_vocab is not None and int(meta_vocab) != n_vocab:
        raise UnsupportedModel(f"{p}vocab_size {meta_vocab} != token_embd rows {n_vocab}")
    return Hparams(n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, n_rot, freq_base, rope_scale,
                   float(eps), n_vocab, arch, neox_rope=arch == "qwen2")


def _dequantize(t: gguf.ReaderTensor) -> np.ndarray:
    """Tensor as float32 with numpy shape [ne1, ne0] (rows = output features for matrices)."""
    try:
        a = gguf.quants.dequantize(t.data, t.tensor_type)
    except NotImplementedError as e:
        raise UnsupportedModel(f"{t.name}: tensor type {t.tensor_type.name} cannot be dequantized") from e
    shape = tuple(int(d) for d in reversed(t.shape))
    return np.asarray(a, dtype=np.float32).reshape(shape)


def check_tensor_set(tensors, hp) -> bool:
    """Checks that a GGUF's tensors are exactly those of the llama / qwen2 definition above (the head
    may be tied) and returns whether it has Q/K/V biases: required for qwen2; a llama file may have
    all of them or none. Raises UnsupportedModel naming the unknown or missing tensors."""
    has_qkv_bias = hp.architecture == "qwen2" or "blk.0.attn_q.bias" in tensors
    expected = {"token_embd.weight", "output_norm.weight", "output.weight"}
    expected |= {f"blk.{i}.{n}.weight" for i in range(hp.n_layer) for n in LAYER_TENSORS}
    if has_qkv_bias:
        expected |= {f"blk.{i}.{n}.bias" for i in range(hp.n_layer) for n in BIAS_TENSORS}
    unknown = sorted(set(tensors) - expected)
    if unknown:
        raise UnsupportedModel(f"tensors this model definition does not implement: {unknown[:8]}")
    missing = sorted(expected - {"output.weight"} - set(tensors))
    if missing:
        raise UnsupportedModel(f"missing tensors: {missing[:8]}")
    return has_qkv_bias


class LlamaRef:
    """Llama (or Qwen2) forward pass with a KV cache. Not thread-safe; one sequence at a time."""

    def __init__(self, model_path, dtype=np.float64, max_float64_bytes: int = 2 << 30, weights: str = "file"):
        """weights: "file" (the GGUF's tensors, dequantized), or the C++ backend's --weights q8 / bf16
        conversions rebuilt with the gguf package's own quantizers: every 2-d tensor not already in
        that format is quantized from its dequantized float32 values and dequantized again."""
        self.model_path = str(model_path)
        if weights not in ("file", "q8", "bf16"):
            raise ValueError("weights must be file, q8 or bf16")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError("dtype must be float32 or float64")
        reader = gguf.GGUFReader(self.model_path)
        tensors = {t.name: t for t in reader.tensors}
        if "token_embd.weight" not in tensors:
            raise UnsupportedModel("no token_embd.weight tensor")
        hp = self.hp = _read_hparams(reader, tensors)

        self.has_qkv_bias = check_tensor_set(tensors, hp)

        # Storage: float64 when the whole model fits in max_float64_bytes that way, else float32
        # (exact for dequantized values) widened block by block in _matmul.
        n_params = sum(int(np.prod([int(d) for d in t.shape])) for t in reader.tensors)
        self.storage = (self.dtype if self.dtype == np.float32 or n_params * 8 <= max_float64_bytes
                        else np.dtype(np.float32))

        convert_to = {"q8": gguf.GGMLQuantizationType.Q8_0, "bf16": gguf.GGMLQuantizationType.BF16}.get(weights)

        def load(name, shape, dtype=None):
            a = _dequantize(tensors[name])
            if convert_to is not None and len(shape) == 2 and tensors[name].tensor_type != convert_to:
                a = gguf.quants.dequantize(gguf.quants.quantize(a.astype(np.float32), convert_to), convert_to)
            if a.shape != shape:
                raise UnsupportedModel(f"{name}: shape {a.shape}, expected {shape}")
            return a.astype(dtype or self.storage)

        E, H, F = hp.n_embd, hp.head_dim, hp.n_ff
        qd, kv = hp.n_head * H, hp.n_head_kv * H
        self.tok_embd = load("token_embd.weight", (hp.n_vocab, E))
        self.output = (load("output.weight", (hp.n_vocab, E)) if "output.weight" in tensors
                       else self.tok_embd)  # [n_vocab, E]
        self.tied_output = "output.weight" not in tensors
        self.output_norm = load("output_norm.weight", (E,), self.dtype)
        self.layers = []
        for i in range(hp.n_layer):
            b = f"blk.{i}."
            wq = load(b + "attn_q.weight", (qd, E))
            wk = load(b + "attn_k.weight", (kv, E))
            wv = load(b + "attn_v.weight", (kv, E))
            bqkv = (np.concatenate([load(b + f"{n}.bias", (d,), self.dtype)
                                    for n, d in zip(BIAS_TENSORS, (qd, kv, kv))])
                    if self.has_qkv_bias else None)
            self.layers.append({
                "attn_norm": load(b + "attn_norm.weight", (E,), self.dtype),
                # q, k, v fused into one [out, in] matrix: one matmul per layer.
                "wqkv": np.ascontiguousarray(np.concatenate([wq, wk, wv], axis=0)),
                "bqkv": bqkv,  # [qd + 2 kv] or None
                "wo": load(b + "attn_output.weight", (E, qd)),
                "ffn_norm": load(b + "ffn_norm.weight", (E,), self.dtype),
                "wgu": np.ascontiguousarray(np.concatenate(
                    [load(b + "ffn_gate.weight", (F, E)), load(b + "ffn_up.weight", (F, E))], axis=0)),
                "wd": load(b + "ffn_down.weight", (E, F)),
            })
        # theta_i = p * base^(-2i/n_rot): inverse frequencies, computed in float64.
        self._inv_freq = hp.rope_freq_base ** (-np.arange(0, hp.n_rot, 2, dtype=np.float64) / hp.n_rot)
        self.reset()

    # ------------------------------------------------------------------ cache
    def reset(self) -> None:
        """Empties the KV cache."""
        hp = self.hp
        self.n_past = 0  # tokens fed so far (the default position of the next one)
        # Per layer: K and V [n_head_kv, T, head_dim] and the positions of their T entries. A skipped
        # layer gets no entries for the tokens it skipped.
        empty = lambda: np.zeros((hp.n_head_kv, 0, hp.head_dim), dtype=self.dtype)  # noqa: E731
        self._k = [empty() for _ in range(hp.n_layer)]
        self._v = [empty() for _ in range(hp.n_layer)]
        self._pos = [np.zeros(0, dtype=np.float64) for _ in range(hp.n_layer)]
        self._idx = [np.zeros(0, dtype=np.int64) for _ in range(hp.n_layer)]  # token index in the feed

    def truncate(self, n_keep: int) -> None:
        """Drops every cache entry of the tokens fed after the first n_keep (speculation rollback)."""
        if not 0 <= n_keep <= self.n_past:
            raise ValueError(f"truncate({n_keep}) with {self.n_past} tokens fed")
        for il in range(self.hp.n_layer):
            keep = self._idx[il] < n_keep
            self._k[il], self._v[il] = self._k[il][:, keep], self._v[il][:, keep]
            self._pos[il], self._idx[il] = self._pos[il][keep], self._idx[il][keep]
        self.n_past = n_keep

    # ---------------------------------------------------------------- forward
    def _rms_norm(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.dtype.type(self.hp.rms_eps)) * w

    def _matmul(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """x [n, in] @ w.T for a weight w [out, in], in self.dtype; a float32-stored w is widened
        to float64 a block of rows at a time (exact), so no full float64 copy is ever held."""
        if w.dtype == self.dtype:
            return x @ w.T
        out = np.empty((x.shape[0], w.shape[0]), dtype=self.dtype)
        step = max(1, (32 << 20) // (w.shape[1] * 8))  # ~32 MB of float64 rows per block
        for r in range(0, w.shape[0], step):
            out[:, r:r + step] = x @ w[r:r + step].astype(self.dtype).T
        return out

    def _rope(self, x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        """x [heads, n, head_dim]; cos, sin [n, n_rot/2]. Rotates dimension pairs (a_i, b_i) by
        theta_i: (2i, 2i+1) normally, (i, i + n_rot/2) in the NeoX layout (rotate_half)."""
        r = self.hp.n_rot
        out = x.copy()
        if self.hp.neox_rope:
            a, b = slice(0, r // 2), slice(r // 2, r)
        else:
            a, b = slice(0, r, 2), slice(1, r, 2)
        x0, x1 = x[..., a], x[..., b]
        out[..., a] = x0 * cos - x1 * sin
        out[..., b] = x0 * sin + x1 * cos
        return out

    def _check_layers(self, layers) -> list[int]:
        if layers is None:
            return list(range(self.hp.n_layer))
        run = sorted(set(int(i) for i in layers))
        if run and not (0 <= run[0] and run[-1] < self.hp.n_layer):
            raise ValueError(f"layer indices must lie in [0, {self.hp.n_layer}): {layers}")
        return run

    def forward(self, tokens: Sequence[int], positions: Sequence[float] | None = None,
                layers: Iterable[int] | None = None, last_only: bool = False) -> np.ndarray:
        """Logits [n, n_vocab] (or [1, n_vocab] for the last token when last_only) for `tokens`,
        appended to the KV cache. positions default to n_past, n_past+1, ...; a token attends to
        the cached and new entries whose position is <= its own. `layers`: the layer indices to run
        (ascending, duplicates ignored); the others are skipped entirely (the residual stream passes
        through, no K/V is stored for them). Embedding, final norm and head always run."""
        hp = self.hp
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        n = tokens.size
        if n == 0:
            raise ValueError("forward needs at least one token")
        if tokens.min() < 0 or tokens.max() >= hp.n_vocab:
            raise ValueError(f"token id out of range [0, {hp.n_vocab})")
        if positions is None:
            pos = np.arange(self.n_past, self.n_past + n, dtype=np.float64)
        else:
            pos = np.asarray(positions, dtype=np.float64).reshape(-1)
            if pos.size != n:
                raise ValueError(f"{pos.size} positions for {n} tokens")
        idx = np.arange(self.n_past, self.n_past + n, dtype=np.int64)
        run = self._check_layers(layers)

        ang = np.outer(pos / hp.rope_scale, self._inv_freq)  # [n, n_rot/2], float64
        cos, sin = np.cos(ang).astype(self.dtype), np.sin(ang).astype(self.dtype)
        H, nh, nkv = hp.head_dim, hp.n_head, hp.n_head_kv
        g = nh // nkv
        qd = nh * H
        scale = self.dtype.type(1.0 / np.sqrt(H))

        x = self.tok_embd[tokens].astype(self.dtype)  # [n, E] (a copy)
        for il in run:
            L = self.layers[il]
            h = self._rms_norm(x, L["attn_norm"])
            qkv = self._matmul(h, L["wqkv"])                               # [n, qd + 2 kv]
            if L["bqkv"] is not None:
                qkv += L["bqkv"]
            q = qkv[:, :qd].reshape(n, nh, H).transpose(1, 0, 2)           # [nh, n, H]
            k = qkv[:, qd:qd + nkv * H].reshape(n, nkv, H).transpose(1, 0, 2)  # [nkv, n, H]
            v = qkv[:, qd + nkv * H:].reshape(n, nkv, H).transpose(1, 0, 2)
            q = self._rope(q, cos, sin)
            k = self._rope(k, cos, sin)
            self._k[il] = K = np.concatenate([self._k[il], k], axis=1)
            self._v[il] = V = np.concatenate([self._v[il], v], axis=1)
            self._pos[il] = kpos = np.concatenate([self._pos[il], pos])
            self._idx[il] = np.concatenate([self._idx[il], idx])
            T = K.shape[1]
            # query head h = kv * g + j reads kv head kv = h // g
            s = (q.reshape(nkv, g * n, H) @ K.transpose(0, 2, 1)).reshape(nkv, g, n, T) * scale
            mask = kpos[None, :] <= pos[:, None]                          # [n, T]
            if not mask.any(axis=1).all():
                raise ValueError("a query position has no key at or before it")
            s = np.where(mask, s, -np.inf)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            o = (s.reshape(nkv, g * n, T) @ V).reshape(nh, n, H).transpose(1, 0, 2).reshape(n, qd)
            x = x + self._matmul(o, L["wo"])
            h = self._rms_norm(x, L["ffn_norm"])
            gu = self._matmul(h, L["wgu"])
            gate, up = gu[:, :hp.n_ff], gu[:, hp.n_ff:]
            with np.errstate(over="ignore"):  # exp overflow for very negative gates gives silu = -0
                silu = gate / (1 + np.exp(-gate))
            x = x + self._matmul(silu * up, L["wd"])
        self.n_past += n
        if last_only:
            x = x[-1:]
        return self._matmul(self._rms_norm(x, self.output_norm), self.output)

    def greedy(self, tokens: Sequence[int], n_new: int, layers: Iterable[int] | None = None,
               reset: bool = True) -> list[int]:
        """Exactly n_new greedy (argmax, lowest id on ties) token ids continuing `tokens`; it does
        not stop at end-of-sequence. Resets the cache first unless reset=False (then `tokens`
        continue what is cached). The last new token is not fed to the model."""
        if reset:
            self.reset()
        out: list[int] = []
        if n_new <= 0:
            return out
        logits = self.forward(tokens, layers=layers, last_only=True)
        while True:
            out.append(int(np.argmax(logits[-1])))
            if len(out) == n_new:
                return out
            logits = self.forward([out[-1]], layers=layers, last_only=True)
