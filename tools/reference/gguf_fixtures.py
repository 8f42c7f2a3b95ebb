"""Reference data for the GGUF reader and dequantization tests, produced by the `gguf` package.

Writes into OUT:
  types.gguf           one tensor per supported type (random blocks with finite scales) and metadata
                       of every value type, written by gguf.GGUFWriter
  types/<NAME>.f32     gguf.quants.dequantize of that tensor, raw little-endian float32
  types.json           expected metadata values and tensor shapes
  model_tensors.json   for a few tensors of the real model: first values and float64 sums,
                       dequantized by the gguf package
"""
from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

# fp16 fields (byte offsets inside one block) that must hold finite values.
HALF_FIELDS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
}
QUANTIZED = list(HALF_FIELDS)
ROWS, COLS = 4, 512  # 2 super-blocks of 256 per row, 16 blocks of 32


def random_blocks(rng: np.random.Generator, qtype: Q) -> np.ndarray:
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = ROWS * COLS // block_size
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in HALF_FIELDS[qtype]:
        halves = rng.uniform(-2.0, 2.0, size=n_blocks).astype(np.float16)
        raw[:, off:off + 2] = halves.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(ROWS, COLS // block_size * type_size)


def write_type_fixtures(out: Path, rng: np.random.Generator) -> None:
    (out / "types").mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out / "types.gguf"), arch="llama")
    expect: dict = {"tensors": {}, "metadata": {}}

    scalars = [
        ("test.u8", 200, gguf.GGUFValueType.UINT8), ("test.i8", -100, gguf.GGUFValueType.INT8),
        ("test.u16", 60000, gguf.GGUFValueType.UINT16), ("test.i16", -30000, gguf.GGUFValueType.INT16),
        ("test.u32", 4000000000, gguf.GGUFValueType.UINT32), ("test.i32", -2000000000, gguf.GGUFValueType.INT32),
        ("test.f32", 1.5, gguf.GGUFValueType.FLOAT32), ("test.bool", True, gguf.GGUFValueType.BOOL),
        ("test.string", "héllo, 世界 🙂", gguf.GGUFValueType.STRING),
        ("test.u64", 2**63 + 5, gguf.GGUFValueType.UINT64), ("test.i64", -(2**62), gguf.GGUFValueType.INT64),
        ("test.f64", 2.718281828459045, gguf.GGUFValueType.FLOAT64),
    ]
    for key, val, vt in scalars:
        w.add_key_value(key, val, vt)
        expect["metadata"][key] = {"type": vt.name, "value": val}
    arrays = [
        ("test.arr_u8", [1, 2, 255], gguf.GGUFValueType.UINT8),
        ("test.arr_i32", [-1, 0, 7], gguf.GGUFValueType.INT32),
        ("test.arr_f32", [0.5, -0.25], gguf.GGUFValueType.FLOAT32),
        ("test.arr_bool", [True, False, True], gguf.GGUFValueType.BOOL),
        ("test.arr_str", ["a", "", "ünï"], gguf.GGUFValueType.STRING),
    ]
    for key, val, sub in arrays:
        w.add_key_value(key, val, gguf.GGUFValueType.ARRAY, sub_type=sub)
        expect["metadata"][key] = {"type": "ARRAY", "sub_type": sub.name, "value": val}
    nested = [[1, 2], [3]]
    w.add_key_value("test.nested", nested, gguf.GGUFValueType.ARRAY)
    expect["metadata"]["test.nested"] = {"type": "ARRAY", "value": nested}

    def add(name: str, qtype: Q, data: np.ndarray, expected: np.ndarray) -> None:
        w.add_tensor(name, data, raw_dtype=qtype)
        expected.astype("<f4").tofile(out / "types" / f"{qtype.name}.f32")
        expect["tensors"][name] = {"type": qtype.name, "ne": [COLS, ROWS]}

    for qtype in QUANTIZED:
        raw = random_blocks(rng, qtype)
        add(f"t.{qtype.name}", qtype, raw, gguf.quants.dequantize(raw, qtype).reshape(ROWS, COLS))
    f32 = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    add("t.F32", Q.F32, f32, f32)
    f16 = (rng.standard_normal((ROWS, COLS)) * 100).astype(np.float16)
    add("t.F16", Q.F16, f16, f16.astype(np.float32))
    bf16_bits = (rng.standard_normal((ROWS, COLS)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    bf16_raw = bf16_bits.view(np.uint8).reshape(ROWS, COLS * 2)
    add("t.BF16", Q.BF16, bf16_raw, gguf.quants.dequantize(bf16_raw, Q.BF16).reshape(ROWS, COLS))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    (out / "types.json").write_text(json.dumps(expect, indent=1, ensure_ascii=False))


def write_model_fixtures(model: Path, out: Path) -> None:
    r = gguf.GGUFReader(str(model))
    wanted = ["token_embd.weight", "blk.0.attn_norm.weight", "blk.0.attn_q.weight",
              "blk.29.ffn_down.weight", "output_norm.weight"]
    result = {}
    for t in r.tensors:
        if t.name not in wanted:
            continue
        values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
        result[t.name] = {
            "type": t.tensor_type.name,
            "ne": [int(x) for x in t.shape],
            "first": [float(x) for x in values[:1024]],
            "sum": float(values.astype(np.float64).sum()),
            "abs_sum": float(np.abs(values.astype(np.float64)).sum()),
        }
    (out / "model_tensors.json").write_text(json.dumps(result))


def write_gguf_fixtures(model: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_type_fixtures(out, np.random.default_rng(1234))
    write_model_fixtures(model, out)
