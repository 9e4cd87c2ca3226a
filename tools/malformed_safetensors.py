#!/usr/bin/env python3
"""Generates fixtures/malformed/safetensors/: damaged safetensors files and checkpoints, each with
the FormatError code our reader must give and a phrase its message must contain, in
manifest.json. Files are derived from a small valid file written by the reference writer; for
each single file the manifest also records whether the reference reader
(`safetensors.deserialize`) rejects it too.

Run: .venv/bin/python tools/malformed_safetensors.py
"""
import json
import os
import shutil
import struct

import numpy as np
import safetensors
from safetensors.numpy import save_file, save

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "malformed", "safetensors")

A = np.arange(4, dtype=np.float32).reshape(2, 2)   # F32 [2,2]: 16 bytes at [0, 16)
B = np.array([1, -2, 3], dtype=np.int16)           # I16 [3]:    6 bytes at [16, 22)
C = np.array([7, 9], dtype=np.uint8)               # U8 [2]:     2 bytes at [22, 24)
VALID = save({"a": A, "b": B, "c": C}, metadata={"format": "pt"})
N = struct.unpack("<Q", VALID[:8])[0]
DATA = VALID[8 + N:]
assert len(DATA) == 24


def header_entries():
    return {
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b": {"dtype": "I16", "shape": [3], "data_offsets": [16, 22]},
        "c": {"dtype": "U8", "shape": [2], "data_offsets": [22, 24]},
    }


def with_header(text, data=DATA, length=None):
    if isinstance(text, dict):
        text = json.dumps(text, separators=(",", ":"))
    if isinstance(text, str):
        text = text.encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def modified(**changes):
    h = header_entries()
    for name, fields in changes.items():
        if fields is None:
            del h[name]
        else:
            h[name] = {**h.get(name, {}), **fields}
    return h


def cases():
    c = []

    def add(name, blob, code, phrase, description):
        c.append((name, blob, code, phrase, description))

    add("empty.safetensors", b"", "notThisFormat", "empty", "an empty file")
    add("truncated_in_length.safetensors", VALID[:5], "truncated", "shorter than the 8-byte", "cut inside the 8-byte length")
    add("truncated_in_header.safetensors", VALID[:8 + N // 2], "truncated", "header alone", "cut inside the JSON header")
    add("truncated_at_data_start.safetensors", VALID[:8 + N], "truncated", "runs past the end", "cut right after the header")
    add("truncated_mid_tensor.safetensors", VALID[:8 + N + 10], "truncated", "tensor 'a' runs past the end", "cut inside the first tensor")
    add("truncated_one_byte_short.safetensors", VALID[:-1], "truncated", "tensor 'c' runs past the end", "one byte short")
    add("header_length_2_63.safetensors", struct.pack("<Q", 2**63) + VALID[8:], "headerTooLarge", "100 MB limit", "length field 2^63")
    add("header_length_2_62.safetensors", struct.pack("<Q", 2**62) + VALID[8:], "headerTooLarge", "100 MB limit", "length field 2^62 (must fail before any allocation)")
    add("header_length_2_40.safetensors", struct.pack("<Q", 2**40) + VALID[8:], "headerTooLarge", "100 MB limit", "length field 2^40")
    add("header_length_limit_plus_one.safetensors", struct.pack("<Q", 100_000_001) + VALID[8:], "headerTooLarge", "100 MB limit", "length field 100_000_001")
    add("header_length_beyond_file.safetensors", struct.pack("<Q", len(VALID)) + VALID[8:], "truncated", "header alone", "length field larger than the file")
    bad_utf8 = json.dumps(header_entries(), separators=(",", ":")).encode().replace(b'"c"', b'"c\xff\xfe"')
    add("bad_utf8.safetensors", with_header(bad_utf8), "invalidUTF8", "UTF-8", "tensor name with invalid UTF-8")
    add("invalid_json.safetensors", with_header('{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},'), "invalidJSON", "invalid JSON", "JSON cut short")
    add("trailing_garbage_json.safetensors", with_header(json.dumps(header_entries(), separators=(",", ":")) + "x"), "invalidJSON", "after the end", "text after the JSON object")
    add("json_not_object.safetensors", with_header("[1,2,3]"), "invalidHeader", "not a JSON object", "header is an array")
    add("entry_not_object.safetensors", with_header(modified(c=None) | {"c": [1, 2]}), "invalidHeader", "must be an object", "tensor entry is an array")
    add("missing_data_offsets.safetensors", with_header({**modified(), "c": {"dtype": "U8", "shape": [2]}}), "invalidHeader", "no \"data_offsets\"", "entry without data_offsets")
    add("dtype_not_string.safetensors", with_header(modified(c={"dtype": 8})), "invalidHeader", "not a string", "dtype is a number")
    add("unknown_dtype.safetensors", with_header(modified(c={"dtype": "F12"})), "unknownDType", "unknown dtype \"F12\"", "dtype F12")
    add("negative_dim.safetensors", with_header(modified(c={"shape": [-2]})), "invalidShape", "negative", "shape [-2]")
    add("float_dim.safetensors", with_header(modified(a={"shape": [2.0, 2]})), "invalidShape", "not a non-negative integer", "shape [2.0, 2]")
    add("huge_dim.safetensors", with_header(modified(c={"shape": [2**64]})), "invalidShape", "too large", "shape [2^64]")
    add("overflowing_shape.safetensors", with_header(modified(c={"shape": [2**40, 2**40]})), "overflow", "more elements", "shape [2^40, 2^40]")
    add("overflowing_bytes.safetensors", with_header(modified(c={"dtype": "F64", "shape": [2**60]})), "overflow", "more bits", "2^60 F64 elements")
    add("offsets_reversed.safetensors", with_header(modified(c={"data_offsets": [24, 22]})), "invalidOffsets", "reversed", "data_offsets [24, 22]")
    add("offsets_not_pair.safetensors", with_header(modified(c={"data_offsets": [22]})), "invalidOffsets", "two integers", "data_offsets [22]")
    add("offset_negative.safetensors", with_header(modified(c={"data_offsets": [-2, 0]})), "invalidOffsets", "negative", "data_offsets [-2, 0]")
    add("offset_out_of_range.safetensors", with_header(modified(c={"shape": [2**50 - 22], "data_offsets": [22, 2**50]})), "offsetOutOfRange", "48-bit", "end offset 2^50")
    add("offsets_overlap.safetensors", with_header(modified(b={"data_offsets": [10, 16]}, c={"data_offsets": [16, 18]}), DATA[:18]), "offsetOverlap", "overlaps tensor 'a'", "b starts inside a")
    add("offsets_gap.safetensors", with_header(modified(b={"data_offsets": [18, 24]}, c={"data_offsets": [24, 26]}), DATA[:16] + b"\0\0" + DATA[16:]), "offsetGap", "unused bytes lie between tensor 'a'", "2 bytes between a and b")
    add("offsets_begin_not_zero.safetensors", with_header(modified(a={"data_offsets": [4, 20]}, b={"data_offsets": [20, 26]}, c={"data_offsets": [26, 28]}), b"\0" * 4 + DATA), "offsetGap", "not 0", "first tensor at 4")
    add("size_mismatch.safetensors", with_header(modified(c={"shape": [3]})), "sizeMismatch", "needs 3 bytes but data_offsets [22, 24] span 2 bytes", "U8 [3] in 2 bytes")
    add("trailing_bytes.safetensors", VALID + b"\0\0\0\0", "trailingBytes", "follow the end", "4 extra bytes at the end")
    dup = json.dumps(header_entries(), separators=(",", ":"))
    dup = dup[:-1] + ',"a":{"dtype":"U8","shape":[0],"data_offsets":[24,24]}}'
    add("duplicate_tensor.safetensors", with_header(dup), "duplicateTensor", "appears twice", "tensor a twice")
    dup_key = json.dumps(header_entries(), separators=(",", ":")).replace('"dtype":"U8"', '"dtype":"U8","dtype":"U8"')
    add("duplicate_key_in_entry.safetensors", with_header(dup_key), "duplicateKey", "\"dtype\" appears twice", "dtype twice in one entry")
    add("metadata_not_string.safetensors", with_header(modified(__metadata__={"format": 1})), "invalidMetadata", "must be strings", "metadata value 1")
    add("metadata_not_object.safetensors", with_header({**modified(), "__metadata__": "pt"}), "invalidMetadata", "must be an object of strings", "metadata is a string")
    add("misaligned_subbyte.safetensors", with_header(modified(c={"dtype": "F4", "shape": [3]})), "misalignedSubByte", "not a whole number of bytes", "3 F4 elements")
    deep = modified(c={"extra": json.loads("[" * 200 + "]" * 200)})
    add("nesting_too_deep.safetensors", with_header(deep), "invalidJSON", "nested more than 128", "200 nested arrays")
    add("git_lfs_pointer.safetensors", b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 16060522496\n", "gitLFSPointer", "Git LFS pointer", "LFS pointer text")
    add("gguf_file.safetensors", b"GGUF\x03\x00\x00\x00" + b"\0" * 24, "notThisFormat", "GGUF", "a GGUF file renamed")
    return c


def write_dir_cases(manifest):
    def shard(directory, name, tensors):
        save_file(tensors, os.path.join(directory, name), metadata={"format": "pt"})

    def index(directory, weight_map, raw=None):
        with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
            f.write(raw if raw is not None else json.dumps({"metadata": {"total_size": 24}, "weight_map": weight_map}, indent=2, sort_keys=True) + "\n")

    s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"

    def case(name, code, phrase, description, build):
        d = os.path.join(OUT, name)
        os.makedirs(d)
        build(d)
        manifest.append({"path": name, "code": code, "phrase": phrase, "description": description, "kind": "checkpoint"})

    case("shard_missing", "shardMissing", "does not exist", "the index names a shard that is not there",
         lambda d: (shard(d, s1, {"a": A}), index(d, {"a": s1, "b": s2})))
    case("tensor_missing_from_shard", "tensorMissingFromShard", "does not hold it", "the index maps c to a shard without it",
         lambda d: (shard(d, s1, {"a": A}), shard(d, s2, {"b": B}), index(d, {"a": s1, "b": s2, "c": s2})))
    case("tensor_in_two_shards", "duplicateTensor", "stored in two shards", "b is in both shards",
         lambda d: (shard(d, s1, {"a": A, "b": B}), shard(d, s2, {"b": B, "c": C}), index(d, {"a": s1, "b": s1, "c": s2})))
    case("tensor_not_in_index", "tensorNotInIndex", "does not list it", "shard 2 holds c, the index does not list it",
         lambda d: (shard(d, s1, {"a": A}), shard(d, s2, {"b": B, "c": C}), index(d, {"a": s1, "b": s2})))
    case("index_not_valid", "invalidIndex", "\"weight_map\" is an array", "weight_map is a list",
         lambda d: (shard(d, s1, {"a": A}), index(d, None, raw='{"metadata": {}, "weight_map": ["a"]}\n')))
    case("index_path_escape", "invalidIndex", "not a plain file name", "weight_map points outside the directory",
         lambda d: (shard(d, s1, {"a": A}), index(d, {"a": "../" + s1})))
    case("index_invalid_json", "invalidJSON", "invalid JSON", "index is not JSON",
         lambda d: (shard(d, s1, {"a": A}), index(d, None, raw='{"weight_map": {"a": "x"\n')))
    case("no_index_duplicate", "duplicateTensor", "in two files", "no index, two files both hold a",
         lambda d: (shard(d, "one.safetensors", {"a": A}), shard(d, "two.safetensors", {"a": A, "b": B})))
    case("shard_truncated", "truncated", "runs past the end", "a shard of an indexed checkpoint is cut short",
         lambda d: (shard(d, s1, {"a": A}), shard(d, s2, {"b": B, "c": C}), index(d, {"a": s1, "b": s2, "c": s2}),
                    open(os.path.join(d, s2), "r+b").truncate(os.path.getsize(os.path.join(d, s2)) - 1)))


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    manifest = []
    for name, blob, code, phrase, description in cases():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(blob)
        try:
            safetensors.deserialize(blob)
            rejects = False
        except Exception:
            rejects = True
        manifest.append({"path": name, "code": code, "phrase": phrase, "description": description,
                         "kind": "file", "reference_rejects": rejects})
    write_dir_cases(manifest)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"cases": manifest}, f, indent=1)
        f.write("\n")
    lenient = [m["path"] for m in manifest if m.get("reference_rejects") is False]
    print(f"wrote {len(manifest)} cases to {OUT}; the reference reader accepts: {lenient}")


if __name__ == "__main__":
    main()
