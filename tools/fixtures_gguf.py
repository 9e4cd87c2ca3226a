#!/usr/bin/env python3
"""Generate the valid GGUF fixtures in fixtures/gguf/ with gguf-py (PyPI `gguf`), fixed seed.

Files written:
  all_types_v3.gguf   every metadata value type (each scalar, bool, non-ASCII string, arrays of
                      ints / floats / strings / bools, an empty array) and tensors of types F32, F16,
                      BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (gguf.quants.quantize), Q4_K and Q6_K (raw
                      blocks: gguf-py has no K-quant encoder, so the blocks hold random bytes with a
                      finite fp16 scale where the block layout puts it), I8, I32, F64; 1-D to 4-D.
  alignment64.gguf    the same kind of content with `general.alignment` = 64 (u32).
  v2.gguf             written as v3 by gguf-py, then the version field patched to 2. GGUF v2 has the
                      same layout as v3: v2 widened every count and length to 64 bits (llama.cpp
                      commit "gguf : bump version to 2 / update all counts to 64-bit", Aug 2023; v1
                      had 32-bit ones, see huggingface/huggingface.js#568, which reads u32 for v1 and
                      u64 for v2 and v3), and v3 only added big-endian files. gguf-py's reader
                      accepts both (READER_SUPPORTED_VERSIONS = [2, 3]); ggml's accepts 2 and 3.
  NAME.expected.json  what gguf-py's GGUFReader reads from NAME.gguf (tools/oracle_read_gguf.py).

Run: .venv/bin/python tools/fixtures_gguf.py
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V
from gguf import GGUFWriter

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "gguf"
sys.path.insert(0, str(ROOT / "tools"))
import oracle_read_gguf  # noqa: E402


class Writer(GGUFWriter):
    """gguf-py's writer, extended only to write an empty array (gguf-py refuses one; ggml and the
    spec allow it): u32 ARRAY, u32 element type, u64 0."""

    def _pack_val(self, val, vtype, add_vtype, sub_type=None):
        if vtype == V.ARRAY and len(val) == 0:
            assert sub_type is not None
            prefix = self._pack("I", vtype) if add_vtype else b""
            return prefix + self._pack("I", sub_type) + self._pack("Q", 0)
        return super()._pack_val(val, vtype, add_vtype, sub_type)


def write(writer: GGUFWriter, path: Path) -> None:
    writer.write_header_to_file(path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def k_quant_blocks(rng, rows: int, cols: int, qtype: Q) -> np.ndarray:
    """Random bytes shaped as `rows` rows of K-quant blocks, with finite fp16 scales (formats.md §2.4)."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(rows, cols // block, size), dtype=np.uint8)
    scales = (rng.random((rows, cols // block, 2)) * 0.01).astype(np.float16).view(np.uint8)
    if qtype == Q.Q4_K:      # f16 d | f16 dmin | scales[12] | qs[128]
        blocks[:, :, 0:4] = scales.reshape(rows, cols // block, 4)
    elif qtype == Q.Q6_K:    # ql[128] | qh[64] | scales[16] | f16 d
        blocks[:, :, 208:210] = scales[:, :, 0:2]
    else:
        raise ValueError(qtype)
    return blocks.reshape(rows, -1)


def add_quantized(writer, rng, name, shape, qtype):
    data = rng.standard_normal(shape).astype(np.float32)
    if qtype in (Q.F32, Q.F16):
        writer.add_tensor(name, gguf.quants.quantize(data, qtype))
    else:
        writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)


def all_types(path: Path, alignment: int | None = None) -> None:
    rng = np.random.default_rng(20261126)
    w = Writer(None, "llama")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_uint8("test.uint8", 200)
    w.add_int8("test.int8", -100)
    w.add_uint16("test.uint16", 60000)
    w.add_int16("test.int16", -30000)
    w.add_uint32("test.uint32", 4000000000)
    w.add_int32("test.int32", -2000000000)
    w.add_float32("test.float32", 0.1)
    w.add_uint64("test.uint64", 18446744073709551615)
    w.add_int64("test.int64", -9223372036854775808)
    w.add_float64("test.float64", -2.5e-300)
    w.add_bool("test.bool.true", True)
    w.add_bool("test.bool.false", False)
    w.add_string("test.string.ascii", "hello")
    w.add_string("test.string.unicode", "héllo wörld — 日本語 🦙")
    w.add_key_value("test.array.uint8", [0, 1, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("test.array.int16", [-32768, 0, 32767], V.ARRAY, sub_type=V.INT16)
    w.add_key_value("test.array.int32", [1, -2, 3, -4], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("test.array.uint64", [0, 2**63, 2**64 - 1], V.ARRAY, sub_type=V.UINT64)
    w.add_key_value("test.array.float32", [0.5, -1.25, 3.4e38, 1e-45], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("test.array.float64", [1.0 / 3.0, -0.0], V.ARRAY, sub_type=V.FLOAT64)
    w.add_key_value("test.array.bool", [True, False, True], V.ARRAY, sub_type=V.BOOL)
    w.add_key_value("test.array.string", ["<s>", "</s>", "ü", "", "▁the"], V.ARRAY, sub_type=V.STRING)
    w.add_key_value("test.array.empty", [], V.ARRAY, sub_type=V.INT32)
    w.add_block_count(2)
    w.add_layer_norm_rms_eps(1e-5)

    add_quantized(w, rng, "vector.f32", (64,), Q.F32)
    add_quantized(w, rng, "matrix.f16", (4, 32), Q.F16)
    add_quantized(w, rng, "cube.bf16", (2, 3, 32), Q.BF16)
    add_quantized(w, rng, "blk.0.attn_q.weight", (8, 64), Q.Q8_0)
    add_quantized(w, rng, "blk.0.attn_k.weight", (4, 64), Q.Q4_0)
    add_quantized(w, rng, "blk.0.attn_v.weight", (4, 32), Q.Q4_1)
    add_quantized(w, rng, "blk.0.ffn_up.weight", (2, 96), Q.Q5_0)
    add_quantized(w, rng, "blk.0.ffn_gate.weight", (3, 32), Q.Q5_1)
    w.add_tensor("blk.0.ffn_down.weight", k_quant_blocks(rng, 2, 256, Q.Q4_K), raw_dtype=Q.Q4_K)
    w.add_tensor("output.weight", k_quant_blocks(rng, 2, 512, Q.Q6_K), raw_dtype=Q.Q6_K)
    add_quantized(w, rng, "hyper.f32", (2, 2, 3, 4), Q.F32)
    w.add_tensor("ints.i8", rng.integers(-128, 128, size=(7,), dtype=np.int8))
    w.add_tensor("ints.i32", rng.integers(-2**31, 2**31, size=(3, 5), dtype=np.int32))
    w.add_tensor("doubles.f64", rng.standard_normal((3,)))
    # The longest name ggml accepts: 63 bytes (GGML_MAX_NAME = 64 includes the NUL).
    long_name = "blk.0." + "x" * (63 - len("blk.0.") - len(".weight")) + ".weight"
    assert len(long_name) == 63
    add_quantized(w, rng, long_name, (1, 32), Q.F32)
    write(w, path)


def v2(path: Path) -> None:
    rng = np.random.default_rng(2)
    w = GGUFWriter(None, "llama")
    w.add_block_count(1)
    w.add_string("general.name", "version two")
    add_quantized(w, rng, "token_embd.weight", (3, 32), Q.Q8_0)
    add_quantized(w, rng, "output_norm.weight", (5,), Q.F32)
    write(w, path)
    raw = bytearray(path.read_bytes())
    assert struct.unpack_from("<I", raw, 4)[0] == 3
    struct.pack_into("<I", raw, 4, 2)
    path.write_bytes(bytes(raw))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    files = {
        "all_types_v3.gguf": lambda p: all_types(p),
        "alignment64.gguf": lambda p: all_types(p, alignment=64),
        "v2.gguf": v2,
    }
    for name, make in files.items():
        path = OUT / name
        make(path)
        listing = oracle_read_gguf.read(str(path))
        (OUT / (path.stem + ".expected.json")).write_text(
            json.dumps(listing, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes, "
              f"{len(listing['metadata'])} keys, {len(listing['tensors'])} tensors, version {listing['version']}")


if __name__ == "__main__":
    main()
