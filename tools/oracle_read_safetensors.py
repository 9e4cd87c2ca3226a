#!/usr/bin/env python3
"""Oracle reader for safetensors: what the reference implementation sees in a file or checkpoint.

Usage:
  oracle_read_safetensors.py PATH
      PATH is a .safetensors file, a *.index.json file or a directory. Prints one JSON document:
      for a file   {"metadata": {...}|null, "tensors": [{"name", "dtype", "shape", "data_offsets",
                    "sha256"}, ...]}  (tensors in data-offset order)
      for an index or a directory with one: {"index": <index parsed with json>, "files": {name: <file>}}
      for a directory without index:        {"index": null, "files": {name: <file>}}
  oracle_read_safetensors.py --dumps-indented PATH
      Prints json.dumps(json.load(PATH), indent=2, sort_keys=True), Python's formatting of a JSON
      document (ensure_ascii escapes, float repr), for comparing JSON writers.
  oracle_read_safetensors.py --resave PATH OUT
      Reads PATH's tensors and metadata and writes them to OUT with safetensors.numpy.save_file
      (numpy / ml_dtypes dtypes only), so callers can compare their writer's bytes with the
      reference writer's.

The listing uses the `safetensors` package (safe_open with the numpy framework for names, metadata,
dtypes and shapes; `safetensors.deserialize` for the raw bytes of every dtype, which numpy cannot
express for FP8/BF16/F4) and Python's json module for the raw header's data_offsets.
"""
import hashlib
import json
import os
import struct
import sys

import numpy as np
import ml_dtypes
import safetensors
from safetensors import safe_open
from safetensors.numpy import save_file

NUMPY_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2,
    "F8_E4M3FNUZ": ml_dtypes.float8_e4m3fnuz, "F8_E5M2FNUZ": ml_dtypes.float8_e5m2fnuz,
    "F8_E8M0": ml_dtypes.float8_e8m0fnu,
    "I64": np.int64, "U64": np.uint64, "I32": np.int32, "U32": np.uint32, "I16": np.int16,
    "U16": np.uint16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_, "C64": np.complex64,
}


def raw_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def read_file(path):
    header = raw_header(path)
    with open(path, "rb") as f:
        raw = dict(safetensors.deserialize(f.read()))
    tensors = []
    with safe_open(path, framework="np") as f:
        metadata = f.metadata()
        for name in f.keys():
            view = f.get_slice(name)
            data = bytes(raw[name]["data"])
            assert raw[name]["dtype"] == view.get_dtype(), name
            assert list(raw[name]["shape"]) == list(view.get_shape()), name
            tensors.append({
                "name": name,
                "dtype": view.get_dtype(),
                "shape": list(view.get_shape()),
                "data_offsets": header[name]["data_offsets"],
                "sha256": hashlib.sha256(data).hexdigest(),
            })
    tensors.sort(key=lambda t: (t["data_offsets"][0], t["data_offsets"][1], t["name"].encode()))
    return {"metadata": metadata, "tensors": tensors}


def read_checkpoint(path):
    if os.path.isdir(path):
        directory = path
        index_path = os.path.join(path, "model.safetensors.index.json")
        if not os.path.exists(index_path):
            index_path = None
    else:
        directory = os.path.dirname(path) or "."
        index_path = path
    if index_path is not None:
        with open(index_path, "rb") as f:
            index = json.load(f)
        names = sorted(set(index["weight_map"].values()))
    else:
        index = None
        names = sorted(n for n in os.listdir(directory) if n.endswith(".safetensors") and not n.startswith("."))
    result = {"index": index, "files": {n: read_file(os.path.join(directory, n)) for n in names}}
    if index is not None:
        # The index as transformers' save_pretrained writes it, to compare bytes with.
        result["index_as_transformers_writes_it"] = json.dumps(index, indent=2, sort_keys=True) + "\n"
    return result


def resave(path, out):
    with open(path, "rb") as f:
        raw = safetensors.deserialize(f.read())
    with safe_open(path, framework="np") as f:
        metadata = f.metadata()
    arrays = {}
    for name, info in raw:
        dtype = NUMPY_DTYPES[info["dtype"]]
        arrays[name] = np.frombuffer(bytes(info["data"]), dtype=dtype).reshape(info["shape"])
    save_file(arrays, out, metadata=metadata)


def main(argv):
    if len(argv) == 4 and argv[1] == "--resave":
        resave(argv[2], argv[3])
        return 0
    if len(argv) == 3 and argv[1] == "--dumps-indented":
        with open(argv[2], "rb") as f:
            sys.stdout.write(json.dumps(json.load(f), indent=2, sort_keys=True))
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[1]
    if os.path.isdir(path) or path.endswith(".json"):
        result = read_checkpoint(path)
    else:
        result = read_file(path)
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
