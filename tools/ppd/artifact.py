"""The PPD artifact: prompt-token vectors, their measured accuracy and the sparse trees, in one GGUF
file (format version 1; documented in tools/ppd/README.md, read in C++ by
include/specdec/drafters/ppd_file.hpp). Written with gguf.GGUFWriter, read back with gguf.GGUFReader
and checked key by key: `read` raises ValueError naming the key for anything the format forbids.

    write(path, Artifact(...))
    a = read(path)                      # validated; read(path, model="M.gguf") also checks the model
    python tools/ppd/artifact.py FILE [--model M.gguf]     # validates and prints a summary
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trees import Tree  # noqa: E402

ARCH = "specdec-ppd"
FORMAT_VERSION = 1
FNV_BASIS = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
_MASK = (1 << 64) - 1

T = gguf.GGUFValueType


def fnv1a64(data: bytes, h: int = FNV_BASIS) -> int:
    """FNV-1a 64-bit over bytes (pure Python: about 5 s for 30 MB)."""
    p = FNV_PRIME
    for b in data:
        h = ((h ^ b) * p) & _MASK
    return h


def model_fingerprint(model_path) -> int:
    """FNV-1a 64 of the model GGUF's token_embd.weight data exactly as stored in the file."""
    reader = gguf.GGUFReader(str(model_path))
    t = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if t is None:
        raise ValueError(f"{model_path}: no token_embd.weight tensor")
    with open(model_path, "rb") as f:
        f.seek(int(t.data_offset))
        data = f.read(int(t.n_bytes))
    return fnv1a64(data)


def embd_checksum(prompt_embd: np.ndarray) -> int:
    return fnv1a64(np.ascontiguousarray(prompt_embd, dtype="<f4").tobytes())


@dataclass
class Artifact:
    prompt_embd: np.ndarray              # float32 [k*m, n_embd]; row i*m + j = prompt i, virtual token j
    n_prompt_tokens: int
    n_ensemble: int
    top_k: int
    model_name: str
    n_embd: int
    n_vocab: int
    n_layer: int
    token_embd_fnv1a64: int
    accuracy: np.ndarray                 # float32 [k, K]
    trees: list                          # trees.Tree (budget, state, parent, rank, n_prompt, ...)
    training: dict = field(default_factory=dict)   # ppd.training.<key>: str, int or float values


# ---------------------------------------------------------------------------------------- writing


def write(path, a: Artifact) -> None:
    k, m, K = int(a.n_prompt_tokens), int(a.n_ensemble), int(a.top_k)
    emb = np.ascontiguousarray(a.prompt_embd, dtype=np.float32)
    if emb.shape != (k * m, a.n_embd):
        raise ValueError(f"prompt_embd has shape {emb.shape}, expected {(k * m, a.n_embd)}")
    acc = np.asarray(a.accuracy, dtype=np.float32).reshape(-1)
    if acc.size != k * K:
        raise ValueError(f"accuracy has {acc.size} values, expected k*K = {k * K}")
    w = gguf.GGUFWriter(str(path), arch=ARCH)
    u32 = lambda key, v: w.add_key_value(key, int(v), T.UINT32)  # noqa: E731
    u32("ppd.format_version", FORMAT_VERSION)
    u32("ppd.n_prompt_tokens", k)
    u32("ppd.n_ensemble", m)
    u32("ppd.top_k", K)
    w.add_key_value("ppd.model.name", str(a.model_name), T.STRING)
    u32("ppd.model.n_embd", a.n_embd)
    u32("ppd.model.n_vocab", a.n_vocab)
    u32("ppd.model.n_layer", a.n_layer)
    w.add_key_value("ppd.model.token_embd_fnv1a64", int(a.token_embd_fnv1a64), T.UINT64)
    w.add_key_value("ppd.checksum", embd_checksum(emb), T.UINT64)
    w.add_key_value("ppd.accuracy", [float(x) for x in acc], T.ARRAY, sub_type=T.FLOAT32)

    budget, state, first, size, expected, steady = [], [], [], [], [], []
    parent, rank, n_prompt = [], [], []
    for t in a.trees:
        budget.append(int(t.budget))
        state.append(int(t.state))
        first.append(len(parent))
        size.append(len(t.parent))
        expected.append(float(t.expected_accept))
        steady.append(float(t.steady_accept))
        parent += [int(x) for x in t.parent]
        rank += [int(x) for x in t.rank]
        n_prompt += [int(x) for x in t.n_prompt]
    arr = lambda key, v, sub: w.add_key_value(key, v, T.ARRAY, sub_type=sub)  # noqa: E731
    arr("ppd.tree.budget", budget, T.UINT32)
    arr("ppd.tree.state", state, T.UINT32)
    arr("ppd.tree.first", first, T.UINT32)
    arr("ppd.tree.size", size, T.UINT32)
    arr("ppd.tree.expected_accept", expected, T.FLOAT32)
    arr("ppd.tree.steady_accept", steady, T.FLOAT32)
    arr("ppd.node.parent", parent, T.INT32)
    arr("ppd.node.rank", rank, T.INT32)
    arr("ppd.node.n_prompt", n_prompt, T.UINT32)
    for key, v in sorted(a.training.items()):
        name = f"ppd.training.{key}"
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            v = str(v)
        if isinstance(v, str):
            w.add_key_value(name, v, T.STRING)
        elif isinstance(v, int):
            w.add_key_value(name, v, T.UINT64 if v >= 0 else T.INT64)
        else:
            w.add_key_value(name, float(v), T.FLOAT32)
    w.add_tensor("ppd.prompt_embd", emb)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------------------------------- reading

_SCALARS = {
    "general.architecture": T.STRING,
    "ppd.format_version": T.UINT32,
    "ppd.n_prompt_tokens": T.UINT32,
    "ppd.n_ensemble": T.UINT32,
    "ppd.top_k": T.UINT32,
    "ppd.model.name": T.STRING,
    "ppd.model.n_embd": T.UINT32,
    "ppd.model.n_vocab": T.UINT32,
    "ppd.model.n_layer": T.UINT32,
    "ppd.model.token_embd_fnv1a64": T.UINT64,
    "ppd.checksum": T.UINT64,
}
_ARRAYS = {
    "ppd.accuracy": T.FLOAT32,
    "ppd.tree.budget": T.UINT32,
    "ppd.tree.state": T.UINT32,
    "ppd.tree.first": T.UINT32,
    "ppd.tree.size": T.UINT32,
    "ppd.tree.expected_accept": T.FLOAT32,
    "ppd.tree.steady_accept": T.FLOAT32,
    "ppd.node.parent": T.INT32,
    "ppd.node.rank": T.INT32,
    "ppd.node.n_prompt": T.UINT32,
}


def _value(field: gguf.ReaderField):
    if field.types[0] == T.ARRAY:
        sub = field.types[-1]
        if sub == T.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        return [field.parts[i][0].item() for i in field.data]
    if field.types[0] == T.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    return field.parts[field.data[0]][0].item()


def read(path, model=None, validate_file: bool = True) -> Artifact:
    """Reads and (by default) validates an artifact; with `model`, also checks it matches that GGUF."""
    path = str(path)
    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:  # noqa: BLE001 - the gguf package raises several kinds
        raise ValueError(f"{path}: not a readable GGUF file ({e})") from e
    fields = reader.fields
    vals = {}
    for key, vtype in _SCALARS.items():
        f = fields.get(key)
        if f is None:
            raise ValueError(f"{path}: {key} is missing")
        if f.types[0] != vtype:
            raise ValueError(f"{path}: {key} has type {f.types[0].name}, expected {vtype.name}")
        vals[key] = _value(f)
        if key == "general.architecture" and vals[key] != ARCH:
            raise ValueError(f"{path}: general.architecture is {vals[key]!r}, not {ARCH!r} (not a PPD artifact)")
        if key == "ppd.format_version" and vals[key] != FORMAT_VERSION:
            raise ValueError(f"{path}: ppd.format_version {vals[key]} is not supported (this reader knows "
                             f"{FORMAT_VERSION})")
    for key, sub in _ARRAYS.items():
        f = fields.get(key)
        if f is None:
            raise ValueError(f"{path}: {key} is missing")
        if f.types[0] != T.ARRAY or f.types[-1] != sub:
            raise ValueError(f"{path}: {key} must be an array of {sub.name}")
        vals[key] = _value(f)
    training = {key[len("ppd.training."):]: _value(f) for key, f in fields.items()
                if key.startswith("ppd.training.")}
    tensors = {t.name: t for t in reader.tensors}
    t = tensors.get("ppd.prompt_embd")
    if t is None:
        raise ValueError(f"{path}: tensor ppd.prompt_embd is missing")
    if t.tensor_type != gguf.GGMLQuantizationType.F32:
        raise ValueError(f"{path}: ppd.prompt_embd has type {t.tensor_type.name}, expected F32")
    ne = [int(x) for x in t.shape]
    emb = np.array(t.data, dtype=np.float32).reshape(list(reversed(ne)))
    k, m, K = vals["ppd.n_prompt_tokens"], vals["ppd.n_ensemble"], vals["ppd.top_k"]

    trees = []
    budget, state = vals["ppd.tree.budget"], vals["ppd.tree.state"]
    first, size = vals["ppd.tree.first"], vals["ppd.tree.size"]
    expected, steady = vals["ppd.tree.expected_accept"], vals["ppd.tree.steady_accept"]
    parent, rank, n_prompt = vals["ppd.node.parent"], vals["ppd.node.rank"], vals["ppd.node.n_prompt"]
    n_tree = len(budget)
    for key in ("ppd.tree.state", "ppd.tree.first", "ppd.tree.size", "ppd.tree.expected_accept",
                "ppd.tree.steady_accept"):
        if len(vals[key]) != n_tree:
            raise ValueError(f"{path}: {key} has {len(vals[key])} entries, ppd.tree.budget {n_tree}")
    for key in ("ppd.node.rank", "ppd.node.n_prompt"):
        if len(vals[key]) != len(parent):
            raise ValueError(f"{path}: {key} has {len(vals[key])} entries, ppd.node.parent {len(parent)}")
    for i in range(n_tree):
        lo, n = first[i], size[i]
        if n < 1 or lo + n > len(parent):
            raise ValueError(f"{path}: ppd.tree.first/ppd.tree.size of tree {i} ({lo}, {n}) lie outside "
                             f"the {len(parent)} nodes of ppd.node.*")
        trees.append(Tree(budget[i], state[i], parent[lo:lo + n], rank[lo:lo + n], n_prompt[lo:lo + n],
                          expected[i], steady[i]))
    a = Artifact(emb, k, m, K, vals["ppd.model.name"], vals["ppd.model.n_embd"], vals["ppd.model.n_vocab"],
                 vals["ppd.model.n_layer"], vals["ppd.model.token_embd_fnv1a64"],
                 np.array(vals["ppd.accuracy"], dtype=np.float32), trees, training)
    a.checksum = vals["ppd.checksum"]
    a.architecture = vals["general.architecture"]
    a.format_version = vals["ppd.format_version"]
    if validate_file:
        validate(a, path)
    if model is not None:
        check_model(a, model, path)
    return a


def validate(a: Artifact, path: str = "artifact") -> None:
    """Every rule of format version 1; ValueError naming the key on the first violation."""
    def fail(key, what):
        raise ValueError(f"{path}: {key}: {what}")

    if getattr(a, "architecture", ARCH) != ARCH:
        fail("general.architecture", f"{a.architecture!r} is not {ARCH!r}")
    if getattr(a, "format_version", FORMAT_VERSION) != FORMAT_VERSION:
        fail("ppd.format_version", f"{a.format_version} is not supported (this reader knows {FORMAT_VERSION})")
    k, m, K = a.n_prompt_tokens, a.n_ensemble, a.top_k
    for key, v in (("ppd.n_prompt_tokens", k), ("ppd.n_ensemble", m), ("ppd.top_k", K),
                   ("ppd.model.n_embd", a.n_embd), ("ppd.model.n_vocab", a.n_vocab),
                   ("ppd.model.n_layer", a.n_layer)):
        if v < 1:
            fail(key, f"{v} must be at least 1")
    if K > a.n_vocab:
        fail("ppd.top_k", f"{K} exceeds the vocabulary ({a.n_vocab})")
    emb = np.asarray(a.prompt_embd)
    if emb.shape != (k * m, a.n_embd):
        fail("ppd.prompt_embd", f"shape {emb.shape} (rows, n_embd), expected {(k * m, a.n_embd)}")
    if not np.isfinite(emb).all():
        fail("ppd.prompt_embd", "holds a value that is not finite")
    if hasattr(a, "checksum") and embd_checksum(emb) != a.checksum:
        fail("ppd.checksum", f"{a.checksum:#018x} does not match the tensor ({embd_checksum(emb):#018x})")
    acc = np.asarray(a.accuracy, dtype=np.float64).reshape(-1)
    if acc.size != k * K:
        fail("ppd.accuracy", f"{acc.size} values, expected k*K = {k * K}")
    if not np.isfinite(acc).all() or (acc < 0).any() or (acc > 1).any():
        fail("ppd.accuracy", "values must lie in [0, 1]")
    if (acc.reshape(k, K).sum(axis=1) > 1 + 1e-4).any():
        fail("ppd.accuracy", "a prompt token's rank probabilities sum to more than 1")
    if not a.trees:
        fail("ppd.tree.budget", "no trees")
    seen, steady_of = set(), {}
    for i, t in enumerate(a.trees):
        where = f"tree {i} (budget {t.budget}, state {t.state})"
        if not 0 <= t.state <= k:
            fail("ppd.tree.state", f"{where}: state outside [0, k = {k}]")
        if t.budget < 1:
            fail("ppd.tree.budget", f"{where}: budget must be at least 1")
        if (t.budget, t.state) in seen:
            fail("ppd.tree.state", f"{where}: a second tree for the same budget and state")
        seen.add((t.budget, t.state))
        for key, v in (("ppd.tree.expected_accept", t.expected_accept), ("ppd.tree.steady_accept", t.steady_accept)):
            if not math.isfinite(v) or v < 0 or v > k:
                fail(key, f"{where}: {v} is not in [0, k]")
        if abs(steady_of.setdefault(t.budget, t.steady_accept) - t.steady_accept) > 1e-6:
            fail("ppd.tree.steady_accept", f"{where}: differs between the states of one budget")
        if t.parent[0] != -1 or t.rank[0] != -1:
            fail("ppd.node.parent", f"{where}: node 0 must be the root (parent -1, rank -1)")
        depth, sib = [0], set()
        for j in range(1, len(t.parent)):
            p, r = t.parent[j], t.rank[j]
            if not 0 <= p < j:
                fail("ppd.node.parent", f"{where}, node {j}: parent {p} is not an earlier node")
            if not 0 <= r < K:
                fail("ppd.node.rank", f"{where}, node {j}: rank {r} outside [0, K = {K})")
            if (p, r) in sib:
                fail("ppd.node.rank", f"{where}, node {j}: a sibling has the same rank {r}")
            sib.add((p, r))
            depth.append(depth[p] + 1)
            if depth[j] > t.state:
                fail("ppd.node.parent", f"{where}, node {j}: depth {depth[j]} exceeds the state")
        for j, c in enumerate(t.n_prompt):
            if not 0 <= c <= k:
                fail("ppd.node.n_prompt", f"{where}, node {j}: {c} outside [0, k = {k}]")
        rows = sum(1 + c * m for c in t.n_prompt)
        if rows > t.budget:
            fail("ppd.node.n_prompt", f"{where}: {rows} rows exceed the budget")
    smallest = min(t.budget for t in a.trees)
    missing = [s for s in range(k + 1) if (smallest, s) not in seen]
    if missing:
        fail("ppd.tree.state", f"the smallest budget {smallest} has no tree for states {missing}")


def check_model(a: Artifact, model_path, path: str = "artifact") -> None:
    """The artifact was trained for this model GGUF (shapes and token-embedding fingerprint)."""
    reader = gguf.GGUFReader(str(model_path))
    t = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if t is None:
        raise ValueError(f"{model_path}: no token_embd.weight tensor")
    n_embd, n_vocab = int(t.shape[0]), int(t.shape[1])
    if (n_embd, n_vocab) != (a.n_embd, a.n_vocab):
        raise ValueError(f"{path}: ppd.model.n_embd/n_vocab {a.n_embd}/{a.n_vocab} differ from "
                         f"{model_path}'s {n_embd}/{n_vocab}")
    fp = model_fingerprint(model_path)
    if fp != a.token_embd_fnv1a64:
        raise ValueError(f"{path}: ppd.model.token_embd_fnv1a64 {a.token_embd_fnv1a64:#018x} does not match "
                         f"{model_path} ({fp:#018x})")


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Validates a PPD artifact and prints a summary.")
    ap.add_argument("file", type=Path)
    ap.add_argument("--model", type=Path, help="also check that the artifact belongs to this model GGUF")
    args = ap.parse_args()
    try:
        a = read(args.file, model=args.model)
    except ValueError as e:
        print(f"artifact: {e}", file=sys.stderr)
        return 1
    k, K = a.n_prompt_tokens, a.top_k
    acc = np.asarray(a.accuracy).reshape(k, K)
    budgets = sorted({t.budget for t in a.trees})
    print(f"{args.file}: k={k} m={a.n_ensemble} K={K} model {a.model_name!r} (n_embd {a.n_embd}, "
          f"n_vocab {a.n_vocab}, n_layer {a.n_layer}); {len(a.trees)} trees, budgets {budgets[0]}..{budgets[-1]}")
    for i in range(k):
        print(f"  offset {i + 1}: top-1 {acc[i, 0]:.3f} top-5 {acc[i, :5].sum():.3f} top-{K} {acc[i].sum():.3f}")
    for S in (b for b in (budgets[0], 16, 32, 64, 128) if b in budgets):
        ts = [t for t in a.trees if t.budget == S]
        print(f"  budget {S}: steady accept {ts[0].steady_accept:.3f}; nodes per state "
              f"{[len(t.parent) for t in ts]}")
    for key, v in sorted(a.training.items()):
        print(f"  training.{key}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
