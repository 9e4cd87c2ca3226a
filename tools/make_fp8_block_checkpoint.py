#!/usr/bin/env python3
"""Writes a DeepSeek-style block-FP8 copy of a Hugging Face safetensors directory (a lone
model.safetensors): every linear weight of the decoder layers (q/k/v/o, gate/up/down) stored as
F8_E4M3 with an F32 `weight_scale_inv` per block of ROWS × COLUMNS (the last block of a row or
column partial when the size is not a multiple), config.json given vLLM's `fp8`
quantization_config (`weight_block_size`), every other file copied.

  make_fp8_block_checkpoint.py SRC_DIR DST_DIR [--block ROWS COLUMNS]   (default 128 128)

Per block: scale = amax / 448 (FP32; 1 for an all-zero block), codes = float8_e4m3fn(w / scale)
(ml_dtypes: round to nearest even, saturating at ±448 by the clip). Deterministic: the same input
gives the same bytes (header keys sorted, no timestamps), which the tests rely on
(fixtures/hf-to-gguf/quantized-inputs.json records the sha256 of the file this makes). Needs numpy
and ml_dtypes (.venv).
"""
import argparse
import json
import os
import shutil
import struct

import ml_dtypes
import numpy as np

LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        raw = np.frombuffer(data[start:end], dtype=np.uint8)
        dtype = entry["dtype"]
        if dtype == "BF16":
            values = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif dtype == "F16":
            values = raw.view(np.float16).astype(np.float32)
        elif dtype == "F32":
            values = raw.view(np.float32)
        else:
            raise SystemExit(f"{path}: {name} is {dtype}; F32, F16 or BF16 expected")
        out[name] = (dtype, values.reshape(entry["shape"]), raw)
    return out


def block_fp8(w, rows, cols):
    r, c = w.shape
    br, bc = -(-r // rows), -(-c // cols)
    scales = np.ones((br, bc), dtype=np.float32)
    codes = np.zeros((r, c), dtype=ml_dtypes.float8_e4m3fn)
    for i in range(br):
        for j in range(bc):
            block = w[i * rows:(i + 1) * rows, j * cols:(j + 1) * cols]
            amax = np.float32(np.max(np.abs(block)))
            scale = np.float32(amax / np.float32(448.0)) if amax > 0 else np.float32(1.0)
            scales[i, j] = scale
            codes[i * rows:(i + 1) * rows, j * cols:(j + 1) * cols] = \
                np.clip(block / scale, np.float32(-448), np.float32(448)).astype(ml_dtypes.float8_e4m3fn)
    return codes, scales


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        dtype, shape, blob = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--block", nargs=2, type=int, default=[128, 128], metavar=("ROWS", "COLUMNS"))
    args = parser.parse_args()
    rows, cols = args.block
    if rows <= 0 or cols <= 0:
        raise SystemExit("--block sizes must be positive")
    os.makedirs(args.dst)
    for name in sorted(os.listdir(args.src)):
        source = os.path.join(args.src, name)
        if name in ("model.safetensors", "config.json") or not os.path.isfile(source):
            continue
        shutil.copyfile(source, os.path.join(args.dst, name))
    with open(os.path.join(args.src, "config.json")) as f:
        config = json.load(f)
    config["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                     "weight_block_size": [rows, cols]}
    with open(os.path.join(args.dst, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    out = {}
    for name, (dtype, values, raw) in read_safetensors(os.path.join(args.src, "model.safetensors")).items():
        module = name.rsplit(".", 2)
        if name.startswith("model.layers.") and name.endswith(".weight") and len(module) == 3 and module[1] in LINEAR:
            codes, scales = block_fp8(values.astype(np.float32), rows, cols)
            out[name] = ("F8_E4M3", codes.shape, codes.view(np.uint8).tobytes())
            out[name + "_scale_inv"] = ("F32", scales.shape, scales.tobytes())
        else:
            out[name] = (dtype, values.shape, raw.tobytes())
    write_safetensors(os.path.join(args.dst, "model.safetensors"), out)


if __name__ == "__main__":
    main()
