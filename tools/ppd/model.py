"""PyTorch float32 forward of the "llama" and "qwen2" architectures for PPD training (tools/ppd).

The model definition is the one tools/reference/llama_ref.py writes out (RMSNorm, grouped-query
attention, rope in the "normal" adjacent-pair layout (2i, 2i+1) for llama and the NeoX layout
(i, i + n_rot/2) for qwen2, Q/K/V biases where the file has them, SwiGLU feed-forward, the head tied to
token_embd.weight when output.weight is absent). Its metadata parsing and dequantization are reused
from there (`_read_hparams`, `_dequantize`: gguf.quants.dequantize to float32), so both read a file
the same way; the arithmetic is torch float32 here. Every weight has requires_grad False: the only
tensors that can carry gradients are the input embeddings of the rows given to `forward_rows`.

One forward function serves the three uses (`forward_rows`):
  * prefill and batched greedy decoding with a KV cache (`KVCache`: per layer K and V of shape
    [B, n_head_kv, capacity, head_dim]; slot index = position, so sequence b's token at position p
    lives in slot p of row b; nothing is ever stored at a slot a sequence has not reached yet);
  * PPD prompt rows: rows whose inputs are arbitrary embedding vectors at given positions, each
    seeing the cache slots [0, n_visible) of its own sequence plus the earlier rows of the same
    call that `row_mask` allows (a chain), with gradients to those vectors. These rows are never
    written into the cache.

Attention of a row = softmax over [its visible cache slots] ++ [the rows of this call it may see,
itself included]; both parts use the same scores scale 1/sqrt(head_dim).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))

from llama_ref import (BIAS_TENSORS, Hparams, UnsupportedModel, check_tensor_set,  # noqa: E402
                       _dequantize, _read_hparams)

__all__ = ["TorchLlama", "KVCache", "Hparams", "UnsupportedModel", "model_metadata"]


def model_metadata(path) -> dict:
    """general.name (else the file stem), the raw bytes' location of token_embd.weight and shapes."""
    reader = gguf.GGUFReader(str(path))
    name_field = reader.fields.get("general.name")
    name = name_field.contents() if name_field is not None else Path(path).stem
    emb = next(t for t in reader.tensors if t.name == "token_embd.weight")
    return {"name": str(name), "token_embd_offset": int(emb.data_offset), "token_embd_bytes": int(emb.n_bytes)}


@dataclass
class KVCache:
    """Per layer K and V [B, n_head_kv, capacity, head_dim]; slot = position."""
    k: list
    v: list

    @property
    def batch(self) -> int:
        return self.k[0].shape[0]

    @property
    def capacity(self) -> int:
        return self.k[0].shape[2]


class TorchLlama:
    """Frozen float32 llama / qwen2 model. Not thread-safe; torch's own threading is used inside."""

    def __init__(self, model_path):
        self.model_path = str(model_path)
        reader = gguf.GGUFReader(self.model_path)
        tensors = {t.name: t for t in reader.tensors}
        if "token_embd.weight" not in tensors:
            raise UnsupportedModel("no token_embd.weight tensor")
        hp = self.hp = _read_hparams(reader, tensors)
        self.has_qkv_bias = check_tensor_set(tensors, hp)

        def load(name, shape):
            a = _dequantize(tensors[name])
            if a.shape != shape:
                raise UnsupportedModel(f"{name}: shape {a.shape}, expected {shape}")
            return torch.tensor(np.asarray(a, dtype=np.float32))  # a copy (the file view is read-only)

        E, H, F = hp.n_embd, hp.head_dim, hp.n_ff
        qd, kv = hp.n_head * H, hp.n_head_kv * H
        self.tok_embd = load("token_embd.weight", (hp.n_vocab, E))
        self.tied_output = "output.weight" not in tensors
        self.output = self.tok_embd if self.tied_output else load("output.weight", (hp.n_vocab, E))
        self.output_norm = load("output_norm.weight", (E,))
        self.layers = []
        for i in range(hp.n_layer):
            b = f"blk.{i}."
            wqkv = torch.cat([load(b + "attn_q.weight", (qd, E)), load(b + "attn_k.weight", (kv, E)),
                              load(b + "attn_v.weight", (kv, E))], dim=0).contiguous()
            bqkv = (torch.cat([load(b + f"{n}.bias", (d,)) for n, d in zip(BIAS_TENSORS, (qd, kv, kv))])
                    if self.has_qkv_bias else None)
            wgu = torch.cat([load(b + "ffn_gate.weight", (F, E)), load(b + "ffn_up.weight", (F, E))],
                            dim=0).contiguous()
            self.layers.append({
                "attn_norm": load(b + "attn_norm.weight", (E,)),
                "wqkv": wqkv, "bqkv": bqkv,
                "wo": load(b + "attn_output.weight", (E, qd)),
                "ffn_norm": load(b + "ffn_norm.weight", (E,)),
                "wgu": wgu,
                "wd": load(b + "ffn_down.weight", (E, F)),
            })
        # theta_i = p * base^(-2i/n_rot), computed in float64 as the reference does.
        self._inv_freq = torch.from_numpy(
            hp.rope_freq_base ** (-np.arange(0, hp.n_rot, 2, dtype=np.float64) / hp.n_rot))

    # ------------------------------------------------------------------ helpers
    @property
    def n_embd(self) -> int:
        return self.hp.n_embd

    @property
    def n_vocab(self) -> int:
        return self.hp.n_vocab

    def embed(self, tokens) -> torch.Tensor:
        """Token embeddings (float32 copies), shape tokens.shape + [n_embd]."""
        return self.tok_embd[torch.as_tensor(tokens, dtype=torch.long)].clone()

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        hp = self.hp
        shape = (batch, hp.n_head_kv, capacity, hp.head_dim)
        return KVCache([torch.zeros(shape) for _ in range(hp.n_layer)],
                       [torch.zeros(shape) for _ in range(hp.n_layer)])

    def _rms_norm(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + self.hp.rms_eps) * w

    def _rope_tables(self, pos: torch.Tensor):
        ang = (pos.to(torch.float64) / self.hp.rope_scale)[..., None] * self._inv_freq  # [B, n, n_rot/2]
        return torch.cos(ang).to(torch.float32), torch.sin(ang).to(torch.float32)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x [B, n, heads, head_dim]; cos, sin [B, n, n_rot/2]."""
        r = self.hp.n_rot
        cos, sin = cos[:, :, None, :], sin[:, :, None, :]
        if self.hp.neox_rope:
            x0, x1 = x[..., : r // 2], x[..., r // 2: r]
            rot = torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
        else:
            x0, x1 = x[..., 0:r:2], x[..., 1:r:2]
            rot = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)
        if r == x.shape[-1]:
            return rot
        return torch.cat([rot, x[..., r:]], dim=-1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Head over final hidden states (before the output norm)."""
        return self._rms_norm(x, self.output_norm) @ self.output.T

    # ------------------------------------------------------------------ forward
    def forward_rows(self, x: torch.Tensor, pos: torch.Tensor, cache: KVCache | None,
                     n_visible: torch.Tensor | None, row_mask: torch.Tensor, write: bool = False,
                     rows: slice | None = None, want_logits: bool = True) -> torch.Tensor:
        """Runs rows through the model.

        x         [B, n, n_embd] input vectors (token embeddings or trainable prompt vectors)
        pos       [B, n] long, the rows' positions (rope)
        cache     KV cache, or None (the rows see only each other)
        n_visible [B, n] long: row (b, r) sees cache slots [0, n_visible[b, r]) of sequence b
        row_mask  [B or 1, n, n] bool: row r sees row c of the same call (include the diagonal)
        write     store the rows' K/V into the cache at slot = pos (prefill / decoding)
        rows      slice of cache rows these B sequences use (default: all, B = cache.batch)
        Returns logits [B, n, n_vocab] (or the final hidden states when want_logits is False).
        """
        hp = self.hp
        B, n, _ = x.shape
        H, nh, nkv = hp.head_dim, hp.n_head, hp.n_head_kv
        g = nh // nkv
        qd, kvd = nh * H, nkv * H
        scale = 1.0 / float(np.sqrt(H))
        cos, sin = self._rope_tables(pos)
        if cache is not None:
            sel = slice(None) if rows is None else rows
            L = cache.capacity
            slots = torch.arange(L)
            cache_vis = slots[None, None, :] < n_visible[:, :, None]  # [B, n, L]
        neg = torch.finfo(torch.float32).min
        new_mask = row_mask.expand(B, n, n)
        for il, Lw in enumerate(self.layers):
            h = self._rms_norm(x, Lw["attn_norm"])
            qkv = h @ Lw["wqkv"].T
            if Lw["bqkv"] is not None:
                qkv = qkv + Lw["bqkv"]
            q = self._rope(qkv[..., :qd].reshape(B, n, nh, H), cos, sin)
            k = self._rope(qkv[..., qd:qd + kvd].reshape(B, n, nkv, H), cos, sin)
            v = qkv[..., qd + kvd:].reshape(B, n, nkv, H)
            # [B, nkv, g*n, H]: query head kv*g + j reads kv head kv.
            qh = q.reshape(B, n, nkv, g, H).permute(0, 2, 3, 1, 4).reshape(B, nkv, g * n, H)
            kh = k.permute(0, 2, 1, 3)  # [B, nkv, n, H]
            vh = v.permute(0, 2, 1, 3)
            s_new = (qh @ kh.transpose(-1, -2)).reshape(B, nkv, g, n, n) * scale
            s_new = s_new.masked_fill(~new_mask[:, None, None], neg)
            if cache is not None:
                Kc, Vc = cache.k[il][sel], cache.v[il][sel]  # views [B, nkv, L, H]
                s_c = (qh @ Kc.transpose(-1, -2)).reshape(B, nkv, g, n, L) * scale
                s_c = s_c.masked_fill(~cache_vis[:, None, None], neg)
                p = torch.softmax(torch.cat([s_c, s_new], dim=-1), dim=-1)
                pc, pn = p[..., :L], p[..., L:]
                o = (pc.reshape(B, nkv, g * n, L) @ Vc) + (pn.reshape(B, nkv, g * n, n) @ vh)
                if write:
                    with torch.no_grad():
                        b_idx = torch.arange(B)[:, None].expand(B, n)
                        Kc[b_idx, :, pos] = k.detach()  # Kc, Vc are views of the cache
                        Vc[b_idx, :, pos] = v.detach()
            else:
                p = torch.softmax(s_new, dim=-1)
                o = p.reshape(B, nkv, g * n, n) @ vh
            o = o.reshape(B, nkv, g, n, H).permute(0, 3, 1, 2, 4).reshape(B, n, qd)
            x = x + o @ Lw["wo"].T
            h = self._rms_norm(x, Lw["ffn_norm"])
            gu = h @ Lw["wgu"].T
            x = x + (torch.nn.functional.silu(gu[..., :hp.n_ff]) * gu[..., hp.n_ff:]) @ Lw["wd"].T
        return self.logits(x) if want_logits else x

    # ------------------------------------------------------------ generation
    @torch.no_grad()
    def prefill(self, cache: KVCache, b: int, tokens, start: int = 0, chunk: int = 256) -> torch.Tensor:
        """Runs sequence b's tokens[start:] (positions start..P-1) into cache row b, whose slots
        [0, start) must already hold tokens[:start]; returns the logits of those positions."""
        tokens = torch.as_tensor(tokens, dtype=torch.long)
        out = []
        for s in range(start, tokens.numel(), chunk):
            t = tokens[s:s + chunk]
            n = t.numel()
            pos = torch.arange(s, s + n)[None]
            causal = torch.ones(n, n, dtype=torch.bool).tril()[None]
            out.append(self.forward_rows(self.tok_embd[t][None], pos, cache, torch.full((1, n), s), causal,
                                         write=True, rows=slice(b, b + 1))[0])
        return torch.cat(out)

    @torch.no_grad()
    def decode(self, cache: KVCache, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """One token per cache row: tokens [B] at positions pos [B] (each row's next slot);
        returns logits [B, n_vocab]."""
        B = tokens.numel()
        eye = torch.ones(1, 1, 1, dtype=torch.bool)
        return self.forward_rows(self.tok_embd[tokens][:, None], pos[:, None], cache, pos[:, None], eye,
                                 write=True)[:, 0]

    @torch.no_grad()
    def greedy_generate(self, prompts: list, n_new: int, prefix: KVCache | None = None, n_prefix: int = 0):
        """Greedy continuation of every prompt by n_new tokens (no early stop), batched.

        prefix: optional one-row cache holding the K/V of the first n_prefix tokens, which every
        prompt must share (copied instead of recomputed).
        Returns (cache, gen [B, n_new] long, logits [B, n_new, n_vocab] float32): logits[b, g] is the
        model's distribution at position len(prompt_b) - 1 + g, the one gen[b, g] was taken from
        (argmax, lowest id on ties). The cache holds positions 0 .. len(prompt_b) + n_new - 2 of row
        b (the last generated token is not fed)."""
        B = len(prompts)
        lens = torch.tensor([len(p) for p in prompts])
        cache = self.new_cache(B, int(lens.max()) + n_new)
        if prefix is not None and n_prefix > 0:
            if any(len(p) <= n_prefix for p in prompts):
                raise ValueError("every prompt must extend the shared prefix")
            for il in range(self.hp.n_layer):
                cache.k[il][:, :, :n_prefix] = prefix.k[il][:1, :, :n_prefix]
                cache.v[il][:, :, :n_prefix] = prefix.v[il][:1, :, :n_prefix]
        logits = torch.empty(B, n_new, self.hp.n_vocab)
        for b, p in enumerate(prompts):
            logits[b, 0] = self.prefill(cache, b, p, start=n_prefix if prefix is not None else 0)[-1]
        gen = torch.empty(B, n_new, dtype=torch.long)
        gen[:, 0] = logits[:, 0].argmax(dim=-1)
        for gi in range(1, n_new):
            logits[:, gi] = self.decode(cache, gen[:, gi - 1], lens + gi - 1)
            gen[:, gi] = logits[:, gi].argmax(dim=-1)
        return cache, gen, logits
