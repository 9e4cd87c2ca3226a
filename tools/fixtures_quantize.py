#!/usr/bin/env python3
"""Oracle fixtures for the Quantize module's kernels (Tests/QuantizeTests).

Run: .venv/bin/python tools/fixtures_quantize.py   (numpy, ml_dtypes 0.6.0, gguf 0.19.0)

Writes fixtures/quantize/:
  cast_hashes.json  FNV-1a 64 hashes of FP8 E4M3FN / E5M2 (ml_dtypes), F16 (numpy) and BF16
                    (gguf-py) encodings of 1,048,576 float32 patterns: every upper 16-bit half
                    (sign, exponent, top 7 mantissa bits) combined with 16 fixed lower halves, which
                    hits every FP8 rounding boundary, exact tie, subnormal and the clamps. FP8 inputs
                    are clamped to the finite range first (np.clip, NaN stays NaN), as the quantizer
                    does. Hashed per 65,536-input chunk; plus the 256-entry FP8 decode tables.
  matrices.bin      float32 input matrices (little-endian), described in cases.json.
  expected.bin      expected output bytes for every (matrix, scheme) case, described in cases.json.
  cases.json        the index: matrices (offset, rows, columns) and cases (scheme, options, parts).

Expected bytes come from the oracles, never from the Swift code: ml_dtypes casts of the scaled
values with scales computed in numpy float32 (FP8); the compressed-tensors formulas evaluated in
numpy float32 with the scale rounded to its stored dtype (INT8/INT4, see formats/quantize-int.md);
gguf-py `gguf.quants.quantize` (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, BF16) and numpy float16 (F16);
gguf-py `gguf.quants.dequantize` of seeded random blocks for every type the decoder reads.
"""
import json
import os

import ml_dtypes
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "quantize")
F32_TINY = np.float32(np.finfo(np.float32).tiny)
LOWS = [0x0000, 0x0001, 0x0002, 0x00FF, 0x0100, 0x3FFF, 0x4000, 0x7FFE,
        0x7FFF, 0x8000, 0x8001, 0xBFFF, 0xC000, 0xFF00, 0xFFFE, 0xFFFF]


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def cast_patterns() -> np.ndarray:
    hi = np.arange(65536, dtype=np.uint32).reshape(-1, 1) << np.uint32(16)
    lo = np.array(LOWS, dtype=np.uint32).reshape(1, -1)
    return (hi | lo).reshape(-1).view(np.float32)


def cast_hashes():
    x = cast_patterns()
    with np.errstate(invalid="ignore", over="ignore"):
        e4 = np.clip(x, -448, 448).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
        e5 = np.clip(x, -57344, 57344).astype(ml_dtypes.float8_e5m2).view(np.uint8)
        f16 = x.astype(np.float16).view(np.uint16).copy()
    nan = np.isnan(x)
    # ggml's F16 rule for NaN: the quiet NaN 0x7E00 with the sign kept.
    f16[nan] = np.where(np.signbit(x[nan]), 0xFE00, 0x7E00).astype(np.uint16)
    bf = quants.quantize(x, T.BF16).view(np.uint16)
    chunk = 65536
    out = {}
    for name, arr in (("e4m3", e4), ("e5m2", e5), ("f16", f16), ("bf16", bf)):
        raw = arr.astype("<u2" if arr.dtype == np.uint16 else np.uint8).tobytes()
        width = len(raw) // len(x)
        out[name] = [fnv1a64(raw[i * width:(i + chunk) * width]) for i in range(0, len(x), chunk)]
    out["lows"] = LOWS
    out["chunk"] = chunk
    codes = np.arange(256, dtype=np.uint8)
    out["e4m3_decode"] = [int(v) for v in codes.view(ml_dtypes.float8_e4m3fn).astype(np.float32).view(np.uint32)]
    out["e5m2_decode"] = [int(v) for v in codes.view(ml_dtypes.float8_e5m2).astype(np.float32).view(np.uint32)]
    return out


# MARK: reference quantizers

def round_scale(s, scale_type):
    s = s.astype(np.float32)
    if scale_type == "BF16":
        r = s.astype(ml_dtypes.bfloat16).astype(np.float32)
        tiny = F32_TINY
    elif scale_type == "F16":
        with np.errstate(over="ignore"):
            r = s.astype(np.float16).astype(np.float32)
        tiny = np.float32(2.0 ** -14)
    else:
        r = s
        tiny = F32_TINY
    return np.where(r < tiny, tiny, r).astype(np.float32)


def scale_bytes(s, scale_type):
    if scale_type == "BF16":
        return s.astype(ml_dtypes.bfloat16).tobytes()
    if scale_type == "F16":
        return s.astype(np.float16).tobytes()
    return s.astype("<f4").tobytes()


def groups_of(x, size):
    rows, cols = x.shape
    g = -(-cols // size)
    return [(i * size, min(cols, (i + 1) * size)) for i in range(g)]


def fp8(x, granularity, fmt):
    fmax = np.float32(448 if fmt == "e4m3" else 57344)
    dt = ml_dtypes.float8_e4m3fn if fmt == "e4m3" else ml_dtypes.float8_e5m2
    rows, cols = x.shape
    if granularity[0] == "tensor":
        s = round_scale(np.array([np.abs(x).max() / fmax], dtype=np.float32), "F32")
        full = np.broadcast_to(s.reshape(1, 1), x.shape)
        scale_name, scale_shape = "weight_scale", [1]
    elif granularity[0] in ("channel", "group"):
        size = cols if granularity[0] == "channel" else granularity[1]
        spans = groups_of(x, size)
        s = np.stack([np.abs(x[:, a:b]).max(axis=1) / fmax for a, b in spans], axis=1).astype(np.float32)
        s = round_scale(s, "F32")
        full = np.concatenate([np.repeat(s[:, i:i + 1], b - a, axis=1) for i, (a, b) in enumerate(spans)], axis=1)
        scale_name, scale_shape = "weight_scale", [rows, len(spans)]
    else:
        br, bc = granularity[1], granularity[2]
        pr, pc = -(-rows // br) * br, -(-cols // bc) * bc
        padded = np.zeros((pr, pc), dtype=np.float32)
        padded[:rows, :cols] = x
        tiles = np.abs(padded).reshape(pr // br, br, pc // bc, bc).max(axis=(1, 3)) / fmax
        s = round_scale(tiles.astype(np.float32), "F32")
        full = np.repeat(np.repeat(s, br, axis=0), bc, axis=1)[:rows, :cols]
        scale_name, scale_shape = "weight_scale_inv", list(s.shape)
    q = np.clip(x / full, -fmax, fmax).astype(dt)
    return [("weight", "F8_E4M3" if fmt == "e4m3" else "F8_E5M2", [rows, cols], q.view(np.uint8).tobytes()),
            (scale_name, "F32", scale_shape, s.astype("<f4").tobytes())]


def int_codes(x, bits, size, symmetric, scale_type):
    qmin, qmax = np.float32(-(1 << (bits - 1))), np.float32((1 << (bits - 1)) - 1)
    rows, cols = x.shape
    spans = groups_of(x, size)
    codes = np.zeros(x.shape, dtype=np.int8)
    scales = np.zeros((rows, len(spans)), dtype=np.float32)
    zeros = np.zeros((rows, len(spans)), dtype=np.int8)
    for g, (a, b) in enumerate(spans):
        xs = x[:, a:b]
        lo = np.minimum(xs.min(axis=1), np.float32(0))
        hi = np.maximum(xs.max(axis=1), np.float32(0))
        if symmetric:
            s = round_scale(np.maximum(np.abs(lo), np.abs(hi)) / np.float32((qmax - qmin) / 2), scale_type)
            zp = np.zeros_like(s)
        else:
            s = round_scale((hi - lo) / np.float32(qmax - qmin), scale_type)
            zp = np.round(np.clip(qmin - lo / s, qmin, qmax)).astype(np.float32)
        q = np.clip(np.round(xs / s[:, None] + zp[:, None]), qmin, qmax)
        codes[:, a:b] = q.astype(np.int8)
        scales[:, g] = s
        zeros[:, g] = zp.astype(np.int8)
    return codes, scales, zeros


def pack4_rows(codes):
    rows, cols = codes.shape
    words = -(-cols // 8)
    v = np.zeros((rows, words * 8), dtype=np.uint32)
    v[:, :cols] = (codes.astype(np.int32) + 8).astype(np.uint32)
    v = v.reshape(rows, words, 8) << (np.arange(8, dtype=np.uint32) * 4)
    return np.bitwise_or.reduce(v, axis=2).astype("<u4").view("<i4")


def pack8_rows(codes):
    rows, cols = codes.shape
    words = -(-cols // 4)
    v = np.zeros((rows, words * 4), dtype=np.uint8)
    v[:, :cols] = (codes.astype(np.int32) + 128).astype(np.uint8)
    return v.view("<i4")


def int_case(x, bits, granularity, symmetric, scale_type, packed=False):
    rows, cols = x.shape
    size = cols if granularity[0] == "channel" else granularity[1]
    codes, scales, zeros = int_codes(x, bits, size, symmetric, scale_type)
    sb = scale_bytes(scales, scale_type)
    if bits == 8 and packed:
        return [("weight_packed", "I32", [rows, -(-cols // 4)], pack8_rows(codes).tobytes()),
                ("weight_scale", scale_type, list(scales.shape), sb),
                ("weight_shape", "I64", [2], np.array([rows, cols], dtype="<i8").tobytes())]
    if bits == 8:
        return [("weight", "I8", [rows, cols], codes.tobytes()), ("weight_scale", scale_type, list(scales.shape), sb)]
    parts = [("weight_packed", "I32", [rows, -(-cols // 8)], pack4_rows(codes).tobytes()),
             ("weight_scale", scale_type, list(scales.shape), sb)]
    if not symmetric:
        zp = pack4_rows(np.ascontiguousarray(zeros.T)).T  # packed along dim 0
        parts.append(("weight_zero_point", "I32", list(zp.shape), np.ascontiguousarray(zp).tobytes()))
    parts.append(("weight_shape", "I64", [2], np.array([rows, cols], dtype="<i8").tobytes()))
    return parts


def gguf_case(x, name):
    qt = {"q8_0": T.Q8_0, "q4_0": T.Q4_0, "q4_1": T.Q4_1, "q5_0": T.Q5_0, "q5_1": T.Q5_1, "bf16": T.BF16, "f16": T.F16}[name]
    with np.errstate(all="ignore"):
        data = quants.quantize(x, qt)
    return [("", name.upper(), list(x.shape), np.ascontiguousarray(data).view(np.uint8).tobytes())]


# MARK: input matrices

def matrices():
    rng = np.random.default_rng(20261126)
    mats = {}
    a = (rng.standard_normal((24, 512)) * np.exp(rng.uniform(-7, 4, (24, 1)))).astype(np.float32)
    a[0] = 0
    a[1] = (rng.standard_normal(512) * 1e-41).astype(np.float32)          # denormals
    a[2, 77] = 1e4                                                          # one huge outlier
    a[3] = np.float32(0.37)                                                 # constant row
    a[4] = (rng.integers(-40, 40, 512) * np.float32(0.37)).astype(np.float32)  # tie-heavy
    a[5] = (rng.integers(-16, 16, 512) * np.float32(0.125)).astype(np.float32)  # exact halves
    a[6, :] = 0
    a[6, 0] = np.float32(-0.0)
    a[6, 200] = np.float32(-3.0)                                            # one nonzero per block
    mats["general"] = a
    e = (rng.standard_normal((10, 96))).astype(np.float32)
    e[0] = 0
    e[1] = (rng.standard_normal(96) * 1e-42).astype(np.float32)
    e[2, 5] = np.float32(-3e5)
    e[3] = np.float32(-2.5)
    e[4] = np.where(np.arange(96) % 2 == 0, np.finfo(np.float32).max, -np.finfo(np.float32).max).astype(np.float32)
    e[5] = (rng.standard_normal(96) * 1e-37).astype(np.float32)             # tiny normals
    e[6] = np.abs(e[6])                                                     # all positive
    e[7] = -np.abs(e[7])                                                    # all negative
    e[8, :] = 0
    e[8, 95] = np.float32(448.0)
    mats["edges"] = e
    return mats


def decode_blocks():
    """Seeded random blocks of every decodable ggml type with finite scales, and gguf-py's floats."""
    rng = np.random.default_rng(7)
    layout = {  # type: (ggml id, bytes per block, elements, fp16 scale offsets)
        "Q4_0": (2, 18, 32, [0]), "Q4_1": (3, 20, 32, [0, 2]), "Q5_0": (6, 22, 32, [0]),
        "Q5_1": (7, 24, 32, [0, 2]), "Q8_0": (8, 34, 32, [0]), "Q2_K": (10, 84, 256, [80, 82]),
        "Q3_K": (11, 110, 256, [108]), "Q4_K": (12, 144, 256, [0, 2]), "Q5_K": (13, 176, 256, [0, 2]),
        "Q6_K": (14, 210, 256, [208]), "IQ4_NL": (20, 18, 32, [0]), "IQ4_XS": (23, 136, 256, [0]),
        "TQ1_0": (34, 54, 256, [52]), "TQ2_0": (35, 66, 256, [64]), "MXFP4": (39, 17, 32, []),
        "F16": (1, 2, 1, [0]), "BF16": (30, 2, 1, []),
    }
    out = {}
    for name, (tid, nbytes, elems, offs) in layout.items():
        blocks = 256 // elems * 4 if elems < 256 else 4
        if elems == 1:
            blocks = 512
        raw = rng.integers(0, 256, (blocks, nbytes), dtype=np.uint8)
        for o in offs:
            raw[:, o:o + 2] = (rng.standard_normal(blocks) * 0.05).astype(np.float16).view(np.uint8).reshape(blocks, 2)
        if name == "BF16":
            raw = (rng.standard_normal(blocks) * 3).astype(ml_dtypes.bfloat16).view(np.uint8).reshape(blocks, 2)
        qt = getattr(T, name)
        vals = quants.dequantize(raw.reshape(-1) if elems == 1 else raw, qt).astype(np.float32).reshape(-1)
        out[name] = (tid, raw.tobytes(), vals.astype("<f4").tobytes(), blocks * elems)
    return out


def main():
    os.makedirs(ROOT, exist_ok=True)
    mats = matrices()
    mat_bytes = bytearray()
    index = {"matrices": {}, "cases": [], "decode": []}
    for name, m in mats.items():
        index["matrices"][name] = {"offset": len(mat_bytes), "rows": m.shape[0], "columns": m.shape[1]}
        mat_bytes += m.astype("<f4").tobytes()
    expected = bytearray()

    def add(matrix, scheme, granularity, parts, symmetric=True, scale_type="F32", packed=False):
        entry = {"matrix": matrix, "scheme": scheme, "granularity": granularity, "symmetric": symmetric,
                 "scaleType": scale_type, "packInt8": packed, "parts": []}
        for suffix, dtype, shape, data in parts:
            entry["parts"].append({"suffix": suffix, "type": dtype, "shape": shape, "offset": len(expected), "length": len(data)})
            expected.extend(data)
        index["cases"].append(entry)

    for mname in ("general", "edges"):
        x = mats[mname]
        for fmt, scheme in (("e4m3", "fp8"), ("e5m2", "fp8-e5m2")):
            for g in (["channel"], ["tensor"], ["block", 128, 128], ["group", 32]):
                if fmt == "e5m2" and g[0] == "group":
                    continue
                add(mname, scheme, g, fp8(x, g, fmt))
        for st in ("BF16", "F32", "F16"):
            if st == "F16" and mname == "edges":
                continue  # ±FLT_MAX overflows an F16 scale: tested as an error instead
            add(mname, "int8", ["channel"], int_case(x, 8, ["channel"], True, st), scale_type=st)
        add(mname, "int8", ["channel"], int_case(x, 8, ["channel"], True, "BF16", packed=True), scale_type="BF16", packed=True)
        add(mname, "int8", ["group", 64], int_case(x, 8, ["group", 64], True, "F32"), scale_type="F32")
        for g, sym, st in ((["group", 128], True, "BF16"), (["group", 64], False, "BF16"), (["group", 32], True, "F32"),
                           (["group", 32], False, "F32"), (["channel"], True, "BF16")):
            if not sym and mname == "edges":
                continue  # max - min of the ±FLT_MAX row overflows: tested as an error instead
            add(mname, "int4", g, int_case(x, 4, g, sym, st), symmetric=sym, scale_type=st)
    x = mats["general"]
    for name in ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "bf16", "f16"):
        add("general", name, ["group", 1 if name in ("bf16", "f16") else 32], gguf_case(x, name))

    for name, (tid, raw, vals, count) in decode_blocks().items():
        index["decode"].append({"type": name, "id": tid, "elements": count, "offset": len(expected), "length": len(raw),
                                "valuesOffset": len(expected) + len(raw), "valuesLength": len(vals)})
        expected.extend(raw)
        expected.extend(vals)

    index["casts"] = cast_hashes()
    with open(os.path.join(ROOT, "matrices.bin"), "wb") as f:
        f.write(mat_bytes)
    with open(os.path.join(ROOT, "expected.bin"), "wb") as f:
        f.write(expected)
    with open(os.path.join(ROOT, "cases.json"), "w") as f:
        json.dump(index, f, indent=1)
    print(f"matrices.bin {len(mat_bytes)} bytes, expected.bin {len(expected)} bytes, {len(index['cases'])} cases")


if __name__ == "__main__":
    main()
