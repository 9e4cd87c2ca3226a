#!/usr/bin/env python3
"""llama-quantize's real output on fixtures/tiny-llama.gguf for every mixture, as per-tensor hashes.

Runs `llama-quantize fixtures/tiny-llama.gguf OUT MIXTURE` (no importance matrix; the llama.cpp of
tools/build_llama_cpp.sh) for every mixture, reads each output with gguf-py and writes
fixtures/mixtures/tiny-llama-bytes.json: {mixture: {file_type, tensors: [[name, type, sha256 of
its bytes]] in the output's order, file_sha256}}. Tests/QuantizeTests/MixtureTests.swift plans each
mixture, encodes every tensor with our kernels and compares the hashes (tensor bytes identical to
llama-quantize's, in its order).
Run: .venv/bin/python tools/mixture_bytes_oracle.py   (LLAMA_CPP_DIR: default <repo>/.llama.cpp)
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from gguf import GGUFReader

ROOT = Path(__file__).resolve().parent.parent
MIXTURES = ["Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_XS"]


def main():
    d = Path(os.environ.get("LLAMA_CPP_DIR", ROOT / ".llama.cpp"))
    exe = d / "bin" / "llama-quantize"
    if not exe.exists():
        sys.exit(f"mixture_bytes_oracle: {exe} not found; run tools/build_llama_cpp.sh (or set LLAMA_CPP_DIR)")
    src = ROOT / "fixtures" / "tiny-llama.gguf"
    doc = {"input": "fixtures/tiny-llama.gguf", "input_sha256": hashlib.sha256(src.read_bytes()).hexdigest(), "mixtures": {}}
    with tempfile.TemporaryDirectory() as work:
        for mixture in MIXTURES:
            out = Path(work) / f"{mixture}.gguf"
            p = subprocess.run([str(exe), str(src), str(out), mixture, "1"], capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"mixture_bytes_oracle: llama-quantize {mixture} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
            r = GGUFReader(out)
            ft = int(r.fields["general.file_type"].parts[-1][0])
            tensors = [[t.name, t.tensor_type.name, hashlib.sha256(np.ascontiguousarray(t.data).tobytes()).hexdigest()] for t in r.tensors]
            doc["mixtures"][mixture.lower()] = {"file_type": ft, "tensors": tensors, "file_sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
    path = ROOT / "fixtures" / "mixtures" / "tiny-llama-bytes.json"
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"mixture_bytes_oracle: wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
