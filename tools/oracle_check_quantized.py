#!/usr/bin/env python3
"""Independent check of a `quantize --to SCHEME` output against its original, with the oracle
packages (numpy, ml_dtypes, safetensors, gguf) instead of our Swift code.

Usage (run with <repo>/.venv/bin/python; tools/setup.sh creates it):
    oracle_check_quantized.py ORIGINAL OUTPUT --scheme SCHEME
        [--granularity channel|tensor|block] [--block 128] [--group-size 128] [--asymmetric]
        [--scale-dtype bf16|f16|f32]

ORIGINAL/OUTPUT: a Hugging Face model directory or .safetensors file (fp8, fp8-e5m2, int8, int4),
or a .gguf file (q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q6_k, f16, bf16).

What is checked, tensor by tensor (formats/quantize-*.md are the specs):
  - fp8 / fp8-e5m2 (channel, tensor, groups, 128x128 block): the F32 scales and the FP8 bytes equal numpy +
    ml_dtypes: scale = max(amax / fmax, 1.1754944e-38) in float32, q = clip(w / scale).astype(fp8).
  - int8 / int4: unpacked per formats/quantize-int.md; codes equal the numpy evaluation of the
    documented formulas, and the decoded weights are within the rounding error (0.5 scale, plus
    the scale's own dtype rounding) of the input.
  - GGUF q8_0, q4_0, q4_1, q5_0, q5_1, bf16, f16: bytes identical to gguf.quants.quantize.
  - GGUF q4_k, q6_k: gguf.quants.dequantize of our bytes is within a relative error bound of the
    input (gguf-py has no quantizer for k-quants).
  - Tensors kept: bytes identical to the original.
  - Every safetensors output file opens with safetensors.safe_open (headers; F8 and BF16 tensor data
    are read from the header offsets because numpy has no such dtypes), and every original
    tensor is accounted for.

Prints one JSON document: {"passed": bool, "quantized": [...], "kept": [...], "checks": [...]}
(each check: {"tensor", "check", "passed", "detail"}); only failed checks carry long details.
Exit status 0 when it ran (passed or not), 2 on bad usage or unreadable input.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys

try:
    import ml_dtypes
    import numpy as np
    from safetensors import safe_open
    import gguf
    from gguf import quants as gguf_quants
except ImportError as error:  # pragma: no cover - environment problem
    sys.stderr.write(f"oracle_check_quantized: {error}; run tools/setup.sh to create .venv with the oracle packages\n")
    sys.exit(2)

SMALLEST_NORMAL_F32 = np.float32(1.1754944e-38)
FP8 = {
    "fp8": (ml_dtypes.float8_e4m3fn, np.float32(448.0), "F8_E4M3"),
    "fp8-e5m2": (ml_dtypes.float8_e5m2, np.float32(57344.0), "F8_E5M2"),
}
NUMPY_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
    "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2, "BOOL": np.bool_,
}
SCALE_DTYPES = {"bf16": ml_dtypes.bfloat16, "f16": np.float16, "f32": np.float32}
SCALE_MIN = {"bf16": np.float32(1.1754944e-38), "f16": np.float32(6.1035156e-05), "f32": np.float32(1.1754944e-38)}
# Relative Frobenius error ||dequantize(ours) - w|| / ||w|| allowed for k-quants (gguf-py cannot
# quantize them). Round-to-nearest on Gaussian weights gives about 0.08 (Q4_K) and 0.02 (Q6_K).
KQUANT_BOUND = {"Q4_K": 0.12, "Q6_K": 0.035}


class Result:
    def __init__(self) -> None:
        self.checks: list[dict] = []
        self.quantized: list[str] = []
        self.kept: list[str] = []
        self.errors: dict[str, float] = {}

    def add(self, tensor: str, check: str, passed: bool, detail: str = "") -> None:
        self.checks.append({"tensor": tensor, "check": check, "passed": bool(passed), "detail": detail})


# MARK: - safetensors reading (header parsed with json; every dtype, F8 included)

class SafetensorsSet:
    """All tensors of a .safetensors file or a model directory: name -> (dtype, shape, bytes)."""

    def __init__(self, path: str) -> None:
        if os.path.isdir(path):
            self.files = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".safetensors"))
        else:
            self.files = [path]
        self.tensors: dict[str, tuple[str, list[int], bytes]] = {}
        self.order: list[str] = []
        for file in self.files:
            with open(file, "rb") as handle:
                data = handle.read()
            (size,) = struct.unpack("<Q", data[:8])
            header = json.loads(data[8:8 + size])
            start = 8 + size
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                begin, end = info["data_offsets"]
                self.tensors[name] = (info["dtype"], list(info["shape"]), data[start + begin:start + end])
                self.order.append(name)

    def array(self, name: str) -> np.ndarray:
        dtype, shape, raw = self.tensors[name]
        return np.frombuffer(raw, dtype=NUMPY_DTYPES[dtype]).reshape(shape)


def check_safe_open(result: Result, output: SafetensorsSet) -> None:
    """Every output file opens with the safetensors package and agrees with the header we parsed."""
    for file in output.files:
        name_of_file = os.path.basename(file)
        try:
            with safe_open(file, framework="numpy") as handle:
                for name in handle.keys():
                    dtype, shape, raw = output.tensors[name]
                    piece = handle.get_slice(name)
                    same = piece.get_dtype() == dtype and list(piece.get_shape()) == shape
                    if same and dtype not in ("F8_E4M3", "F8_E5M2", "BF16"):
                        same = handle.get_tensor(name).tobytes() == raw
                    if not same:
                        result.add(name, "safe_open", False, f"{name_of_file}: safetensors reads {piece.get_dtype()} {piece.get_shape()}")
            result.add(name_of_file, "safe_open", True)
        except Exception as error:  # the package refusing the file is the failure we look for
            result.add(name_of_file, "safe_open", False, f"{type(error).__name__}: {error}")


def as_float32(tensors: SafetensorsSet, name: str) -> np.ndarray:
    return tensors.array(name).astype(np.float32)


def compare(result: Result, tensor: str, check: str, ours: np.ndarray, expected: np.ndarray) -> None:
    ours_bytes = np.ascontiguousarray(ours).view(np.uint8).reshape(-1)
    expected_bytes = np.ascontiguousarray(expected).view(np.uint8).reshape(-1)
    if ours_bytes.shape != expected_bytes.shape:
        result.add(tensor, check, False, f"{ours_bytes.size} bytes, expected {expected_bytes.size}")
        return
    differ = np.flatnonzero(ours_bytes != expected_bytes)
    if differ.size:
        result.add(tensor, check, False, f"{differ.size} of {ours_bytes.size} bytes differ, first at byte {int(differ[0])}")
    else:
        result.add(tensor, check, True)


# MARK: - FP8

def fp8_expected(w: np.ndarray, scheme: str, granularity: str, block: int, group: int) -> tuple[np.ndarray, np.ndarray]:
    fp8, fmax, _ = FP8[scheme]
    rows, columns = w.shape
    magnitude = np.abs(w)
    if granularity == "group":
        groups = -(-columns // group)
        scales = np.stack([magnitude[:, g * group:(g + 1) * group].max(axis=1) for g in range(groups)], axis=1) / fmax
        expanded = np.repeat(np.maximum(scales.astype(np.float32), SMALLEST_NORMAL_F32), group, axis=1)[:, :columns]
    elif granularity == "tensor":
        scales = np.array([magnitude.max()], dtype=np.float32) / fmax
        expanded = np.full_like(w, np.maximum(scales[0], SMALLEST_NORMAL_F32))
    elif granularity == "channel":
        scales = (magnitude.max(axis=1, keepdims=True) / fmax).astype(np.float32)
        expanded = np.broadcast_to(np.maximum(scales, SMALLEST_NORMAL_F32), w.shape)
    else:
        block_rows, block_columns = -(-rows // block), -(-columns // block)
        scales = np.zeros((block_rows, block_columns), dtype=np.float32)
        for i in range(block_rows):
            for j in range(block_columns):
                scales[i, j] = magnitude[i * block:(i + 1) * block, j * block:(j + 1) * block].max() / fmax
        expanded = np.repeat(np.repeat(np.maximum(scales, SMALLEST_NORMAL_F32), block, 0), block, 1)[:rows, :columns]
    scales = np.maximum(scales.astype(np.float32), SMALLEST_NORMAL_F32)
    codes = np.clip((w / expanded).astype(np.float32), -fmax, fmax).astype(fp8)
    return codes, scales


def check_fp8(result: Result, original: SafetensorsSet, output: SafetensorsSet, name: str, args) -> bool:
    stem = name[: -len("weight")]
    scale_name = stem + ("weight_scale_inv" if args.granularity == "block" else "weight_scale")
    if scale_name not in output.tensors:
        return False
    dtype, shape, _ = output.tensors[name]
    w = as_float32(original, name)
    codes, scales = fp8_expected(w, args.scheme, args.granularity, args.block, args.group_size)
    expected_dtype = FP8[args.scheme][2]
    result.add(name, "dtype", dtype == expected_dtype and shape == list(w.shape), f"{dtype} {shape}")
    scale_dtype, scale_shape, _ = output.tensors[scale_name]
    result.add(scale_name, "scale dtype/shape", scale_dtype == "F32" and int(np.prod(scale_shape)) == scales.size,
               f"{scale_dtype} {scale_shape}, expected F32 with {scales.size} elements")
    compare(result, scale_name, "scales equal numpy", output.array(scale_name).reshape(-1), scales.reshape(-1))
    compare(result, name, "fp8 bytes equal ml_dtypes", output.array(name), codes)
    return True


# MARK: - INT8 / INT4 (compressed-tensors)

def round_scale(values: np.ndarray, scale_dtype: str) -> np.ndarray:
    stored = values.astype(np.float32).astype(SCALE_DTYPES[scale_dtype]).astype(np.float32)
    return np.maximum(stored, SCALE_MIN[scale_dtype])


def unpack(words: np.ndarray, bits: int, count: int) -> np.ndarray:
    """compressed-tensors pack_to_int32 inverse along the last axis: LSB first, unsigned codes."""
    per_word = 32 // bits
    mask = (1 << bits) - 1
    as_unsigned = words.astype(np.int64) & 0xFFFFFFFF
    parts = [(as_unsigned >> (bits * k)) & mask for k in range(per_word)]
    codes = np.stack(parts, axis=-1).reshape(*words.shape[:-1], words.shape[-1] * per_word)
    return codes[..., :count]


def int_expected(w: np.ndarray, bits: int, group: int, symmetric: bool, scale_dtype: str):
    qmin, qmax = np.float32(-(1 << (bits - 1))), np.float32((1 << (bits - 1)) - 1)
    rows, columns = w.shape
    groups = -(-columns // group)
    scales = np.zeros((rows, groups), dtype=np.float32)
    zeros = np.zeros((rows, groups), dtype=np.float32)
    codes = np.zeros((rows, columns), dtype=np.float32)
    for g in range(groups):
        piece = w[:, g * group:(g + 1) * group]
        if symmetric:
            amax = np.maximum(np.abs(np.minimum(piece.min(axis=1), 0)), np.abs(np.maximum(piece.max(axis=1), 0)))
            scale = round_scale(amax / np.float32((qmax - qmin) / 2), scale_dtype)
            zp = np.zeros_like(scale)
        else:
            lo = np.minimum(piece.min(axis=1), 0).astype(np.float32)
            hi = np.maximum(piece.max(axis=1), 0).astype(np.float32)
            scale = round_scale((hi - lo) / np.float32(qmax - qmin), scale_dtype)
            zp = np.rint(np.clip(qmin - lo / scale, qmin, qmax)).astype(np.float32)
        scales[:, g] = scale
        zeros[:, g] = zp
        quotient = (piece / scale[:, None]).astype(np.float32) + zp[:, None]
        codes[:, g * group:(g + 1) * group] = np.clip(np.rint(quotient), qmin, qmax)
    return codes, scales, zeros


def check_int(result: Result, original: SafetensorsSet, output: SafetensorsSet, name: str, args) -> bool:
    stem = name[: -len("weight")]
    scale_name = stem + "weight_scale"
    if scale_name not in output.tensors:
        return False
    w = as_float32(original, name)
    rows, columns = w.shape
    bits = 4 if args.scheme == "int4" else 8
    if args.scheme == "int4":
        group = args.group_size if args.granularity != "channel" else columns
    else:
        group = args.group_size if args.granularity == "group" else columns
    symmetric = not args.asymmetric
    packed_name = stem + "weight_packed"
    if packed_name in output.tensors:
        dtype, shape, _ = output.tensors[packed_name]
        result.add(packed_name, "dtype/shape", dtype == "I32" and shape == [rows, -(-columns * bits // 32)], f"{dtype} {shape}")
        codes = unpack(output.array(packed_name), bits, columns).astype(np.float32) - np.float32(1 << (bits - 1))
        shape_name = stem + "weight_shape"
        recorded = output.array(shape_name).tolist() if shape_name in output.tensors else None
        result.add(shape_name, "weight_shape", recorded == [rows, columns], f"{recorded}")
    else:
        dtype, shape, _ = output.tensors[name]
        result.add(name, "dtype/shape", dtype == "I8" and shape == [rows, columns], f"{dtype} {shape}")
        codes = output.array(name).astype(np.float32)
    scale_dtype, scale_shape, _ = output.tensors[scale_name]
    groups = -(-columns // group)
    result.add(scale_name, "scale dtype/shape", scale_dtype == args.scale_dtype.upper() and scale_shape == [rows, groups],
               f"{scale_dtype} {scale_shape}, expected {args.scale_dtype.upper()} [{rows}, {groups}]")
    scales = output.array(scale_name).astype(np.float32).reshape(rows, groups)
    zeros = np.zeros_like(scales)
    zero_name = stem + "weight_zero_point"
    if not symmetric:
        if zero_name not in output.tensors:
            result.add(zero_name, "present", False, "asymmetric output without zero points")
            return True
        packed_zeros = output.array(zero_name)  # [ceil(rows/8), groups], packed along dim 0
        zeros = unpack(packed_zeros.T, bits, rows).T.astype(np.float32) - np.float32(1 << (bits - 1))
    else:
        result.add(zero_name, "absent (symmetric)", zero_name not in output.tensors)

    expected_codes, expected_scales, expected_zeros = int_expected(w, bits, group, symmetric, args.scale_dtype)
    # Integers compared as int32 (float -0.0 and 0.0 are the same code).
    compare(result, scale_name, "scales equal numpy", scales, expected_scales)
    if not symmetric:
        compare(result, zero_name, "zero points equal numpy", zeros.astype(np.int32), expected_zeros.astype(np.int32))
    compare(result, stem + ("weight_packed" if packed_name in output.tensors else "weight"), "codes equal numpy",
            codes.astype(np.int32), expected_codes.astype(np.int32))

    # Decoded weights within the rounding error of the input: half a step, plus what clipping of
    # the extreme codes adds because the scale was rounded to its dtype (unit roundoff u: the
    # range holds up to (qmax - qmin) * (1 + u) steps), plus half a step more when asymmetric
    # (the zero point is rounded to an integer).
    unit = {"bf16": 2.0 ** -8, "f16": 2.0 ** -11, "f32": 2.0 ** -24}[args.scale_dtype]
    span = float((1 << bits) - 1)
    bound = (0.5 + span / 2 * unit) if symmetric else (1.0 + span * unit)
    expanded_scales = np.repeat(scales, group, axis=1)[:, :columns]
    expanded_zeros = np.repeat(zeros, group, axis=1)[:, :columns]
    decoded = (codes - expanded_zeros) * expanded_scales
    steps = np.abs(decoded - w) / expanded_scales
    worst = float(steps.max())
    result.add(name, f"decoded within {bound:.3f} step", worst <= bound * (1 + 1e-5), f"worst error {worst:.4f} step")
    inside = float((steps > 0.5 * (1 + 1e-5)).mean())
    result.add(name, "at most 1% of weights beyond half a step (clipped extremes only)", inside <= 0.01, f"{inside:.4%}")
    return True


# MARK: - safetensors outputs

def check_safetensors(result: Result, args) -> None:
    original = SafetensorsSet(args.original)
    output = SafetensorsSet(args.output)
    check_safe_open(result, output)
    accounted: set[str] = set()
    for name in original.order:
        dtype, shape, raw = original.tensors[name]
        quantized = False
        if name.endswith("weight") and len(shape) == 2:
            if args.scheme in FP8:
                quantized = check_fp8(result, original, output, name, args)
                if quantized:
                    accounted |= {name, name[: -len("weight")] + ("weight_scale_inv" if args.granularity == "block" else "weight_scale")}
            else:
                quantized = check_int(result, original, output, name, args)
                if quantized:
                    stem = name[: -len("weight")]
                    accounted |= {stem + s for s in ("weight", "weight_packed", "weight_scale", "weight_zero_point", "weight_shape")}
        if quantized:
            result.quantized.append(name)
            continue
        result.kept.append(name)
        accounted.add(name)
        if name not in output.tensors:
            result.add(name, "kept tensor present", False, "missing from the output")
            continue
        out_dtype, out_shape, out_raw = output.tensors[name]
        result.add(name, "kept bytes identical", out_dtype == dtype and out_shape == shape and out_raw == raw,
                   f"{out_dtype} {out_shape} vs {dtype} {shape}")
    extra = sorted(set(output.tensors) - accounted)
    result.add("*", "no unexpected output tensors", not extra, ", ".join(extra[:5]))


# MARK: - GGUF

def gguf_tensors(path: str) -> dict:
    reader = gguf.GGUFReader(path)
    return {t.name: t for t in reader.tensors}


def gguf_float32(tensor) -> np.ndarray:
    data = np.asarray(tensor.data)
    if tensor.tensor_type == gguf.GGMLQuantizationType.BF16:
        return data.view(ml_dtypes.bfloat16).astype(np.float32)
    if tensor.tensor_type in (gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.F32):
        return data.astype(np.float32)
    return gguf_quants.dequantize(data, tensor.tensor_type).astype(np.float32)


def check_gguf(result: Result, args) -> None:
    original = gguf_tensors(args.original)
    output = gguf_tensors(args.output)
    target = gguf.GGMLQuantizationType[args.scheme.upper()]
    for name, tensor in original.items():
        if name not in output:
            result.add(name, "present", False, "missing from the output")
            continue
        ours = output[name]
        source_bytes = np.asarray(tensor.data).view(np.uint8).reshape(-1)
        our_bytes = np.asarray(ours.data).view(np.uint8).reshape(-1)
        same_shape = list(ours.shape) == list(tensor.shape)
        if ours.tensor_type == tensor.tensor_type and (tensor.tensor_type != target or target == gguf.GGMLQuantizationType.F16):
            result.kept.append(name)  # same type (for f16 from F16: unchanged either way)
            result.add(name, "bytes identical", same_shape and np.array_equal(source_bytes, our_bytes),
                       f"{ours.tensor_type.name} {list(ours.shape)}")
            continue
        result.quantized.append(name)
        if ours.tensor_type != target or not same_shape:
            result.add(name, "type/shape", False, f"{ours.tensor_type.name} {list(ours.shape)}, expected {target.name} {list(tensor.shape)}")
            continue
        w = gguf_float32(tensor)
        if target.name in KQUANT_BOUND:
            decoded = gguf_quants.dequantize(np.asarray(ours.data), target).astype(np.float32).reshape(w.shape)
            error = float(np.linalg.norm(decoded - w) / max(np.linalg.norm(w), 1e-30))
            result.add(name, f"dequantized relative error <= {KQUANT_BOUND[target.name]}", error <= KQUANT_BOUND[target.name],
                       f"relative error {error:.5f}")
            result.errors[name] = error
        else:
            expected = gguf_quants.quantize(w, target)
            compare(result, name, "bytes equal gguf.quants.quantize", our_bytes, np.ascontiguousarray(expected).view(np.uint8).reshape(-1))
    extra = sorted(set(output) - set(original))
    result.add("*", "no unexpected output tensors", not extra, ", ".join(extra[:5]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("original")
    parser.add_argument("output")
    parser.add_argument("--scheme", required=True,
                        choices=["fp8", "fp8-e5m2", "int8", "int4", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q6_k", "f16", "bf16"])
    parser.add_argument("--granularity", choices=["channel", "tensor", "block", "group"])
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--group-size", type=int, default=128)
    parser.add_argument("--asymmetric", action="store_true")
    parser.add_argument("--scale-dtype", default="bf16", choices=["bf16", "f16", "f32"])
    args = parser.parse_args()
    if args.granularity is None:
        args.granularity = "group" if args.scheme == "int4" else "channel"
    for path in (args.original, args.output):
        if not os.path.exists(path):
            sys.stderr.write(f"oracle_check_quantized: {path} does not exist\n")
            return 2
    result = Result()
    if args.scheme in ("fp8", "fp8-e5m2", "int8", "int4"):
        check_safetensors(result, args)
    else:
        check_gguf(result, args)
    failed = [c for c in result.checks if not c["passed"]]
    document = {
        "passed": not failed and bool(result.checks),
        "scheme": args.scheme,
        "checkCount": len(result.checks),
        "failedCount": len(failed),
        "quantized": result.quantized,
        "kept": result.kept,
        "relativeErrors": result.errors,
        "failed": failed,
        "checks": [{k: v for k, v in c.items() if k != "detail" or not c["passed"]} for c in result.checks],
    }
    json.dump(document, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
