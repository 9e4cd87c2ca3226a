#!/usr/bin/env python3
"""Makes GGUF files quantized by gguf-py (not by quantize) and the weight errors numpy measures on
them, for the test that `quantize verify` agrees with numpy on files other tools wrote.

    .venv/bin/python tools/oracle_verify_fixture.py OUTDIR [--source fixtures/tiny-llama.gguf]

For each type in Q8_0, Q4_0, Q5_1: OUTDIR/TYPE.gguf holds the source's metadata (file type updated)
and every 2-D F16/F32 matrix quantized with `gguf.quants.quantize` (others copied), and
OUTDIR/expected.json maps TYPE → tensor → {"relative_weight_error": ||deq - w|| / ||w||} computed
in float64 from `gguf.quants.dequantize`.
"""
import argparse
import json
import os
import sys

import numpy as np
import gguf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE_TYPES = {"Q8_0": 7, "Q4_0": 2, "Q5_1": 9}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("outdir")
    parser.add_argument("--source", default=os.path.join(ROOT, "fixtures/tiny-llama.gguf"))
    args = parser.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    reader = gguf.GGUFReader(args.source)
    arch = reader.fields["general.architecture"].contents()
    expected = {}
    for type_name, file_type in FILE_TYPES.items():
        qtype = gguf.GGMLQuantizationType[type_name]
        path = os.path.join(args.outdir, f"{type_name.lower()}.gguf")
        writer = gguf.GGUFWriter(path, arch=arch)
        for field in reader.fields.values():
            if field.name.startswith("GGUF.") or field.name == "general.architecture":
                continue
            value = field.contents()
            if field.name == "general.file_type":
                value = file_type
            vtype = field.types[0]
            if vtype == gguf.GGUFValueType.ARRAY:
                writer.add_key_value(field.name, value, vtype, sub_type=field.types[-1])
            else:
                writer.add_key_value(field.name, value, vtype)
        errors = {}
        for tensor in reader.tensors:
            data = np.array(tensor.data)
            shape = [int(d) for d in reversed(tensor.shape)]  # row-major
            if tensor.tensor_type in (gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.F32) and len(shape) == 2 \
                    and shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0] == 0 and "norm" not in tensor.name:
                weights = data.astype(np.float32).reshape(shape)
                quantized = gguf.quants.quantize(weights, qtype)
                decoded = gguf.quants.dequantize(quantized, qtype).reshape(shape).astype(np.float64)
                w = weights.astype(np.float64)
                errors[tensor.name] = {"relative_weight_error": float(np.linalg.norm(decoded - w) / np.linalg.norm(w))}
                writer.add_tensor(tensor.name, quantized, raw_shape=quantized.shape, raw_dtype=qtype)
            else:
                writer.add_tensor(tensor.name, data.reshape(shape), raw_dtype=tensor.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        expected[type_name.lower()] = errors
    with open(os.path.join(args.outdir, "expected.json"), "w") as handle:
        json.dump(expected, handle, indent=2, sort_keys=True)
    print(json.dumps({k: len(v) for k, v in expected.items()}))


if __name__ == "__main__":
    sys.exit(main())
