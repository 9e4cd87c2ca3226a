#!/usr/bin/env python3
"""Print, as JSON, what gguf-py's GGUFReader (PyPI `gguf`) reads from a GGUF file.

Usage: oracle_read_gguf.py PATH

This is the independent oracle the Swift GGUF tests compare against (formats.md §2). Values are
written in a canonical, lossless form so that both sides can compare them exactly:
  * integers as decimal strings (uint64 does not survive a trip through a JSON double),
  * float32 / float64 as their IEEE bit patterns, "0x" + 8 / 16 lowercase hex digits,
  * bools as JSON booleans, strings as JSON strings.
An array value is {"element_type": NAME, "count": N, "values": [...]}.
Per tensor: name, ggml type name and id, dims in ggml order (ne0 first), the offset relative to the
data section, the absolute data offset, the byte count and the sha256 of the data bytes.
"""
import hashlib
import json
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType

BITS = {GGUFValueType.FLOAT32: (np.uint32, 8), GGUFValueType.FLOAT64: (np.uint64, 16)}


def canonical(part: np.ndarray, vtype: GGUFValueType):
    """One scalar element stored in a numpy part of a ReaderField."""
    if vtype == GGUFValueType.STRING:
        return bytes(part).decode("utf-8")
    if vtype == GGUFValueType.BOOL:
        return bool(part[0])
    if vtype in BITS:
        view, digits = BITS[vtype]
        return "0x%0*x" % (digits, int(part.view(view)[0]))
    return str(int(part[0]))


def read(path: str) -> dict:
    reader = GGUFReader(path)
    fields = list(reader.fields.values())
    # The first three fields are the reader's pseudo-fields GGUF.version / tensor_count / kv_count.
    version = int(fields[0].parts[0][0])
    metadata = []
    for field in fields[3:]:
        vtype = GGUFValueType(int(field.parts[2][0]))
        entry = {"key": field.name, "type": vtype.name}
        if vtype == GGUFValueType.ARRAY:
            etype = GGUFValueType(int(field.parts[3][0]))
            entry["element_type"] = etype.name
            entry["count"] = int(field.parts[4][0])
            entry["values"] = [canonical(field.parts[i], etype) for i in field.data]
        else:
            entry["value"] = canonical(field.parts[field.data[0]], vtype)
        metadata.append(entry)
    tensors = []
    for tensor in reader.tensors:
        start = int(tensor.data_offset)
        size = int(tensor.n_bytes)
        blob = reader.data[start:start + size].tobytes()
        tensors.append({
            "name": tensor.name,
            "type": tensor.tensor_type.name,
            "type_id": int(tensor.tensor_type.value),
            "dims": [int(d) for d in tensor.shape],
            "offset": int(tensor.field.parts[5][0]),
            "data_offset": start,
            "n_bytes": size,
            "sha256": hashlib.sha256(blob).hexdigest(),
        })
    return {
        "version": version,
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "metadata": metadata,
        "tensors": tensors,
    }


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: oracle_read_gguf.py PATH")
    json.dump(read(sys.argv[1]), sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
