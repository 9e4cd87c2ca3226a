#!/usr/bin/env python3
"""Generate malformed GGUF files in fixtures/malformed/gguf/ plus manifest.json, which maps each file
to the FormatError code our reader must throw and a phrase its message must contain.

Every file is derived from one small valid file written by gguf-py (PyPI `gguf`). A tiny builder
below re-creates that file byte for byte (asserted), and each case changes one thing in the
builder's input or cuts the bytes at a structural boundary (formats.md §2.1–2.2).

Run: .venv/bin/python tools/malformed_gguf.py
"""
import io
import json
import struct
import tempfile
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import save as save_safetensors

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "malformed" / "gguf"

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)


def u32(v): return struct.pack("<I", v)
def u64(v): return struct.pack("<Q", v)
def i64(v): return struct.pack("<q", v)
def gstr(b: bytes, length=None): return u64(len(b) if length is None else length) + b


def kv(key: bytes, vtype: int, payload: bytes) -> bytes:
    return gstr(key) + u32(vtype) + payload


def string_array(items, element_type=STR, count=None):
    return u32(element_type) + u64(len(items) if count is None else count) + b"".join(gstr(i) for i in items)


def tensor_info(name: bytes, dims, type_id: int, offset: int) -> bytes:
    return gstr(name) + u32(len(dims)) + b"".join(i64(d) for d in dims) + u32(type_id) + u64(offset)


def pad(n, a): return (n + a - 1) // a * a


# The valid base: what gguf-py writes for these keys and tensors.
TOKENS = [b"<s>", b"</s>", b"a"]
EMBD = np.arange(6, dtype=np.float32).reshape(2, 3)
ATTN = gguf.quants.quantize(np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), Q.Q8_0)


def base_kvs():
    return [
        kv(b"general.architecture", STR, gstr(b"llama")),
        kv(b"llama.block_count", U32, u32(2)),
        kv(b"tokenizer.ggml.tokens", ARR, string_array(TOKENS)),
        kv(b"llama.attention.layer_norm_rms_epsilon", F32, struct.pack("<f", 1e-5)),
    ]


def base_tensors():
    # (name, ggml dims, type id, relative offset, data)
    return [
        [b"token_embd.weight", [3, 2], 0, 0, EMBD.tobytes()],
        [b"blk.0.attn_q.weight", [32, 2], 8, 32, ATTN.tobytes()],
    ]


def build(kvs=None, tensors=None, version=3, magic=b"GGUF", n_tensors=None, n_kv=None, alignment=32):
    """Returns (bytes, marks) where marks holds the offsets of every structure."""
    kvs = base_kvs() if kvs is None else kvs
    tensors = base_tensors() if tensors is None else tensors
    out = io.BytesIO()
    marks = {"kv": [], "ti": [], "data": []}
    out.write(magic + u32(version))
    out.write(u64(len(tensors) if n_tensors is None else n_tensors))
    out.write(u64(len(kvs) if n_kv is None else n_kv))
    for entry in kvs:
        marks["kv"].append(out.tell())
        out.write(entry)
    for name, dims, type_id, offset, _ in tensors:
        marks["ti"].append(out.tell())
        out.write(tensor_info(name, dims, type_id, offset))
    marks["header_end"] = out.tell()
    out.write(b"\0" * (pad(out.tell(), alignment) - out.tell()))
    marks["data_start"] = out.tell()
    for *_, data in tensors:
        marks["data"].append(out.tell())
        out.write(data + b"\0" * (pad(len(data), alignment) - len(data)))
    return out.getvalue(), marks


def gguf_py_base() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.gguf"
        w = gguf.GGUFWriter(path, "llama")
        w.add_block_count(2)
        w.add_token_list([t.decode() for t in TOKENS])
        w.add_layer_norm_rms_eps(1e-5)
        w.add_tensor("token_embd.weight", EMBD)
        w.add_tensor("blk.0.attn_q.weight", ATTN, raw_dtype=Q.Q8_0)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path.read_bytes()


def main() -> None:
    base, marks = build()
    assert base == gguf_py_base(), "the builder no longer reproduces gguf-py's bytes"
    cases = {}

    def case(name, data, code, phrase, what):
        cases[name] = {"code": code, "phrase": phrase, "what": what, "bytes": data}

    kv1 = marks["kv"][1]          # llama.block_count
    kv2 = marks["kv"][2]          # tokenizer.ggml.tokens
    ti1 = marks["ti"][1]          # blk.0.attn_q.weight

    # Truncation at every structural boundary.
    case("truncated_magic.gguf", base[:2], "truncated", "the magic", "the file ends inside the magic")
    case("truncated_version.gguf", base[:6], "truncated", "the version", "the file ends inside the version")
    case("truncated_tensor_count.gguf", base[:12], "truncated", "the tensor count", "ends inside the tensor count")
    case("truncated_kv_count.gguf", base[:20], "truncated", "the metadata key-value count", "ends inside the kv count")
    case("truncated_after_counts.gguf", base[:24], "truncated", "the tensor count announces",
         "ends right after the counts, which announce 2 tensors and 4 keys")
    case("truncated_key.gguf", base[:kv1 + 8 + 5], "truncated", "key 1", "ends inside the bytes of key 1")
    case("truncated_value.gguf", base[:kv1 + 8 + 17 + 4 + 2], "truncated", "the value of key 'llama.block_count'",
         "ends inside a u32 value")
    case("truncated_array.gguf", base[:kv2 + 8 + 21 + 4 + 12 + 11 + 3], "truncated",
         "the array of key 'tokenizer.ggml.tokens'", "ends inside the second string of an array")
    case("truncated_tensor_info.gguf", base[:ti1 + 8 + 19 + 4 + 5], "truncated",
         "tensor info 1 ('blk.0.attn_q.weight')", "ends inside the dims of tensor info 1")
    cut = (marks["header_end"] + marks["data_start"]) // 2
    assert marks["header_end"] < cut < marks["data_start"]
    case("truncated_padding.gguf", base[:cut], "truncated", "padding before the tensor data",
         "ends inside the padding between the tensor infos and the data")
    case("truncated_data.gguf", base[:marks["data"][1] + 10], "truncated", "but its header places tensors up to",
         "ends inside the data of the second tensor")

    # Magic and version.
    case("wrong_magic.gguf", b"GGML" + base[4:], "notThisFormat", "does not start with the GGUF magic", "magic GGML")
    for version, phrase in [(0, "version 0"), (1, "version 1 is no longer supported"),
                            (4, "version 4 is newer"), (0x03000000, "byte order")]:
        case(f"version_{version:#x}.gguf", build(version=version)[0], "ggufUnsupportedVersion", phrase,
             f"version field {version:#x}")

    # Counts and lengths far beyond the file.
    huge = 2**62
    case("huge_tensor_count.gguf", build(n_tensors=huge)[0], "implausibleSize", f"the tensor count is {huge}",
         "tensor count 2^62")
    case("huge_kv_count.gguf", build(n_kv=huge)[0], "implausibleSize", f"the metadata key-value count is {huge}",
         "kv count 2^62")
    kvs = base_kvs()
    kvs[1] = gstr(b"llama.block_count", length=huge) + kvs[1][8:]
    case("huge_string_length.gguf", build(kvs=kvs)[0], "implausibleSize", "the byte length of key 1",
         "key length 2^62")
    kvs = base_kvs()
    kvs[2] = kv(b"tokenizer.ggml.tokens", ARR, string_array(TOKENS, count=huge))
    case("huge_array_count.gguf", build(kvs=kvs)[0], "implausibleSize",
         "the element count of key 'tokenizer.ggml.tokens'", "array count 2^62")

    # Metadata structure.
    kvs = base_kvs()
    kvs[2] = kv(b"tokenizer.ggml.tokens", ARR, u32(ARR) + u64(1) + u32(U8) + u64(1) + b"\x01")
    case("nested_array.gguf", build(kvs=kvs)[0], "ggufNestedArray", "array of arrays", "array of arrays")
    kvs = base_kvs()
    kvs[1] = kv(b"llama.block_count", 13, u32(2))
    case("unknown_value_type.gguf", build(kvs=kvs)[0], "ggufUnknownValueType", "value type 13", "value type 13")
    kvs = base_kvs()
    kvs[2] = kv(b"tokenizer.ggml.tokens", ARR, string_array(TOKENS, element_type=99))
    case("unknown_element_type.gguf", build(kvs=kvs)[0], "ggufUnknownValueType", "has element type 99",
         "array element type 99")
    kvs = base_kvs()
    kvs[1] = kv(b"llama.block_\xff\xfecount", U32, u32(2))
    case("bad_utf8_key.gguf", build(kvs=kvs)[0], "invalidUTF8", "key 1 is not valid UTF-8", "key with bytes ff fe")
    kvs = base_kvs()
    kvs[0] = kv(b"general.architecture", STR, gstr(b"lla\xc3ma"))
    case("bad_utf8_string.gguf", build(kvs=kvs)[0], "invalidUTF8",
         "the value of key 'general.architecture' is not valid UTF-8", "string value with a cut 2-byte sequence")
    kvs = base_kvs()
    kvs[1] = kv(b"", U32, u32(2))
    case("empty_key.gguf", build(kvs=kvs)[0], "ggufEmptyKey", "key 1 is empty", "empty key")
    kvs = base_kvs()
    kvs[3] = kv(b"llama.block_count", U32, u32(3))
    case("duplicate_key.gguf", build(kvs=kvs)[0], "ggufDuplicateKey", "'llama.block_count' appears twice",
         "a key given twice")

    # Tensor infos.
    def with_tensor(index, **changes):
        tensors = base_tensors()
        for field, value in changes.items():
            tensors[index][["name", "dims", "type", "offset", "data"].index(field)] = value
        return build(tensors=tensors)[0]

    case("bad_utf8_tensor_name.gguf", with_tensor(0, name=b"token\x80embd.weight"), "invalidUTF8",
         "the name in tensor info 0 is not valid UTF-8", "tensor name with a stray continuation byte")
    case("duplicate_tensor_name.gguf", with_tensor(1, name=b"token_embd.weight"), "ggufDuplicateTensorName",
         "both named 'token_embd.weight'", "two tensors with one name")
    case("name_64_bytes.gguf", with_tensor(1, name=b"n" * 64), "ggufTensorNameTooLong", "is 64 bytes",
         "a 64-byte tensor name")
    case("five_dims.gguf", with_tensor(0, dims=[3, 2, 1, 1, 1]), "ggufTooManyDimensions", "has 5 dimensions",
         "5 dimensions")
    case("negative_dim.gguf", with_tensor(0, dims=[3, -2]), "ggufNegativeDimension", "dimension 1 of tensor info 0",
         "dims [3, -2]")
    case("overflowing_dims.gguf", with_tensor(0, dims=[2**32, 2**32, 2]), "overflow", "overflows 64 bits",
         "element count 2^65")
    case("type_id_4.gguf", with_tensor(0, type=4), "ggufUnknownTensorType", "a type ggml has removed",
         "ggml type 4 (the removed Q4_2)")
    case("type_id_99.gguf", with_tensor(0, type=99), "ggufUnknownTensorType", "ggml type id 99", "ggml type 99")
    case("row_not_multiple_of_block.gguf", with_tensor(1, dims=[33, 2]), "ggufBlockSizeMismatch",
         "not a multiple of its block size 32", "Q8_0 with rows of 33")

    # Alignment.
    for name, entry, phrase in [
        ("alignment_0.gguf", kv(b"general.alignment", U32, u32(0)), "general.alignment is 0"),
        ("alignment_3.gguf", kv(b"general.alignment", U32, u32(3)), "general.alignment is 3"),
        ("alignment_u64.gguf", kv(b"general.alignment", U64, u64(32)), "stored as uint64"),
    ]:
        case(name, build(kvs=base_kvs() + [entry])[0], "ggufBadAlignment", phrase, phrase)

    # Offsets and data.
    tensors = base_tensors()
    tensors[0][3], tensors[1][3] = 32, 0
    tensors[0][4], tensors[1][4] = tensors[1][4], tensors[0][4]
    case("offsets_out_of_order.gguf", build(tensors=tensors)[0], "ggufOffsetMismatch",
         "tensor 0 ('token_embd.weight') has data offset 32, expected 0", "offsets swapped")
    case("offsets_gapped.gguf", with_tensor(1, offset=64), "ggufOffsetMismatch",
         "tensor 1 ('blk.0.attn_q.weight') has data offset 64, expected 32", "a 32-byte gap")
    tensors = base_tensors()
    tensors[0][1] = [1048576, 600]
    tensors[1][3] = 1048576 * 600 * 4
    case("data_past_end.gguf", build(tensors=tensors)[0], "truncated",
         "but its header places tensors up to 2.52 GB", "a header describing 2.5 GB of data in a small file")

    # Not GGUF at all.
    case("lfs_pointer.gguf", b"version https://git-lfs.github.com/spec/v1\n"
         b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 4683073536\n",
         "gitLFSPointer", "Git LFS pointer", "a Git LFS pointer file")
    case("empty.gguf", b"", "notThisFormat", "the file is empty", "zero bytes")
    case("safetensors.gguf", save_safetensors({"w": np.zeros((2, 2), dtype=np.float32)}), "notThisFormat",
         "safetensors", "a safetensors file named .gguf")

    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.gguf"):
        old.unlink()
    manifest = {}
    for name, entry in sorted(cases.items()):
        (OUT / name).write_bytes(entry.pop("bytes"))
        manifest[name] = entry
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(manifest)} malformed files in {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
