#!/usr/bin/env python3
"""Generates fixtures/safetensors/ with the reference writer (the `safetensors` package), numpy,
ml_dtypes and huggingface_hub's shard planner, and the expected listings with
tools/oracle_read_safetensors.py. Deterministic (fixed seed, single-key metadata for files the
reference writer produces, whose metadata map order is a hash map's).

Run: .venv/bin/python tools/fixtures_safetensors.py
"""
import json
import os
import shutil
import struct
import sys

import numpy as np
import ml_dtypes
import safetensors
from safetensors import TensorSpec
from safetensors.numpy import save_file
from huggingface_hub.serialization import split_state_dict_into_shards_factory

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle_read_safetensors as oracle  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "safetensors")
rng = np.random.default_rng(20261126)


def floats(shape, dtype):
    return rng.standard_normal(shape).astype(np.float32).astype(dtype)


def ints(shape, dtype):
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), size=shape, endpoint=True).astype(dtype)


def spec(array, dtype_name=None):
    if not array.flags.c_contiguous:  # (ascontiguousarray would turn a 0-rank array into shape [1])
        array = np.ascontiguousarray(array)
    return TensorSpec(dtype=dtype_name or array.dtype.name, shape=array.shape,
                      data_ptr=array.ctypes.data, data_len=array.nbytes)


def write_all_dtypes(path):
    """Every dtype the reference writer can express, 0-rank and zero-size tensors included."""
    arrays = {
        "f64": floats((2, 3), np.float64),
        "f32": floats((3, 4), np.float32),
        "f16": floats((5,), np.float16),
        "bf16": floats((2, 2), ml_dtypes.bfloat16),
        "f8_e4m3": floats((4, 4), ml_dtypes.float8_e4m3fn),
        "f8_e5m2": floats((3,), ml_dtypes.float8_e5m2),
        "f8_e4m3fnuz": floats((2, 3), ml_dtypes.float8_e4m3fnuz),
        "f8_e5m2fnuz": floats((7,), ml_dtypes.float8_e5m2fnuz),
        "f8_e8m0": np.exp2(rng.integers(-10, 10, size=(4,))).astype(ml_dtypes.float8_e8m0fnu),
        "i8": ints((6,), np.int8),
        "u8": ints((2, 5), np.uint8),
        "i16": ints((3,), np.int16),
        "u16": ints((4,), np.uint16),
        "i32": ints((2, 2), np.int32),
        "u32": ints((3,), np.uint32),
        "i64": ints((2,), np.int64),
        "u64": ints((2,), np.uint64),
        "bool": rng.integers(0, 2, size=(5,)).astype(np.bool_),
        "c64": (rng.standard_normal(3) + 1j * rng.standard_normal(3)).astype(np.complex64),
        "scalar": np.array(3.25, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "empty_bf16": np.zeros((3, 0), dtype=ml_dtypes.bfloat16),
        "weird \"name\" \\ é/€": floats((2,), np.float32),
    }
    keep = dict(arrays)
    specs = {name: spec(a) for name, a in keep.items()}
    # F4 (float4_e2m1fn_x2): packed storage [4, 4] bytes = logical shape [4, 8].
    packed = rng.integers(0, 256, size=(4, 4)).astype(np.uint8)
    keep["f4"] = packed
    specs["f4"] = spec(packed, "float4_e2m1fn_x2")
    safetensors.serialize_file(specs, path, metadata={"format": "pt"})
    del keep


def write_subbyte(path):
    """F6 types cannot be written by the package: a header written by hand per the spec
    (formats.md §1.1, §1.3: sorted by dtype descending then name, padded to 8), then checked with
    the reference reader."""
    tensors = [  # (name, dtype, shape, bytes) in reference order: F6_E3M2 > F6_E2M3 > F4 > BOOL
        ("u8", "U8", [3], 3),
        ("f6_e3m2", "F6_E3M2", [2, 4], 6),
        ("f6_e2m3", "F6_E2M3", [4], 3),
        ("f4", "F4", [2], 1),
    ]
    header = {"__metadata__": {"format": "pt", "source": "hand-written"}}
    data = b""
    for name, dtype, shape, size in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + size]}
        data += bytes(rng.integers(0, 256, size=size).astype(np.uint8))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    blob = struct.pack("<Q", len(text)) + text + data
    safetensors.deserialize(blob)  # the reference reader accepts it
    with open(path, "wb") as f:
        f.write(blob)


SHARDED_TENSORS = [  # (name, dtype, shape) in state-dict order
    ("model.embed_tokens.weight", np.float32, (16, 8)),
    ("model.layers.0.self_attn.q_proj.weight", ml_dtypes.bfloat16, (8, 8)),
    ("model.layers.0.self_attn.q_proj.weight_scale", np.float32, (8, 1)),
    ("model.layers.0.mlp.up_proj.weight", ml_dtypes.float8_e4m3fn, (24, 8)),
    ("model.layers.0.mlp.down_proj.weight", np.float16, (8, 24)),
    ("model.layers.0.input_layernorm.weight", np.float32, (8,)),
    ("model.norm.weight", np.float32, (8,)),
    ("lm_head.weight", ml_dtypes.bfloat16, (16, 8)),
]


def write_sharded(directory):
    os.makedirs(directory)
    state = {name: floats(shape, dtype) for name, dtype, shape in SHARDED_TENSORS}
    split = split_state_dict_into_shards_factory(state, get_storage_size=lambda a: a.nbytes, filename_pattern="model{suffix}.safetensors", max_shard_size=800)
    assert len(split.filename_to_tensors) == 3, split.filename_to_tensors
    for filename, names in split.filename_to_tensors.items():
        save_file({n: state[n] for n in names}, os.path.join(directory, filename), metadata={"format": "pt"})
    index = {"metadata": {"total_size": split.metadata["total_size"]}, "weight_map": split.tensor_to_filename}
    with open(os.path.join(directory, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")  # as transformers save_pretrained


def shard_plans():
    """huggingface_hub's greedy split for a few tensor lists, for the sharded writer's planner."""
    cases = []
    lists = [
        ([("a", "F32", [10]), ("b", "F32", [10]), ("c", "F32", [10])], 100),
        ([("a", "F32", [10]), ("big", "F32", [100]), ("b", "F32", [10]), ("c", "F32", [20])], 100),
        ([("x", "BF16", [30]), ("y", "U8", [41]), ("z", "F16", [10]), ("w", "F32", [5])], 80),
        ([("only", "F64", [4])], 1000),
        ([("a", "F32", [25]), ("b", "F32", [25]), ("c", "F32", [1]), ("d", "F32", [24]), ("e", "F32", [26])], 100),
    ]
    sizes = {"F32": 4, "BF16": 2, "U8": 1, "F16": 2, "F64": 8}
    for tensors, limit in lists:
        state = {name: (dtype, shape) for name, dtype, shape in tensors}
        split = split_state_dict_into_shards_factory(
            state, get_storage_size=lambda t: sizes[t[0]] * int(np.prod(t[1])), filename_pattern="model{suffix}.safetensors", max_shard_size=limit)
        cases.append({
            "max_shard_size": limit,
            "tensors": [{"name": n, "dtype": d, "shape": s} for n, d, s in tensors],
            "filename_to_tensors": [[f, names] for f, names in split.filename_to_tensors.items()],
            "total_size": split.metadata["total_size"],
        })
    return cases


def dump(value, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    write_all_dtypes(os.path.join(OUT, "all_dtypes.safetensors"))
    write_subbyte(os.path.join(OUT, "subbyte.safetensors"))
    write_sharded(os.path.join(OUT, "sharded"))
    dump(oracle.read_file(os.path.join(OUT, "all_dtypes.safetensors")), os.path.join(OUT, "all_dtypes.expected.json"))
    dump(oracle.read_file(os.path.join(OUT, "subbyte.safetensors")), os.path.join(OUT, "subbyte.expected.json"))
    dump(oracle.read_checkpoint(os.path.join(OUT, "sharded")), os.path.join(OUT, "sharded.expected.json"))
    dump(shard_plans(), os.path.join(OUT, "shard_plans.json"))
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
