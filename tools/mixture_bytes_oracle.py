#!/usr/bin/env python3
"""llama-quantize's real output for every mixture on two small models, as per-tensor and file hashes.

Models:
  fixtures/tiny-llama.gguf          hidden 256, 2 layers, GQA 2, untied output (tools/make_model.py)
  fixtures/mixtures/odd-llama.gguf  written here (seed 20261201, gguf-py): hidden 160 and FFN 200, so
                                    no row is a multiple of 256 and ffn_down's (200) not even of 32 —
                                    every row-length fallback of llama_tensor_get_type runs (Q4_K →
                                    Q5_0, Q6_K → Q8_0, … → F16); GQA 5, tied embeddings (no
                                    output.weight: token_embd takes the output rule), F32, F16 and
                                    BF16 inputs; 2 layers, vocab 128, about 0.7 MB.

Importance matrices (written here with gguf-py, seed 20261202, independent of our writer):
  fixtures/mixtures/<model>.imatrix.gguf   llama.cpp's GGUF imatrix layout: every matrix llama-imatrix
                                           collects (blk.*, and output.weight), Σx² spanning six
                                           orders of magnitude with some zero columns, counts 512
  fixtures/mixtures/tiny-llama.imatrix.dat the legacy layout of the same values (ncall 1)

Runs `llama-quantize MODEL OUT MIXTURE 1` (the llama.cpp of tools/build_llama_cpp.sh) for every
mixture, without and with `--imatrix fixtures/mixtures/<model>.imatrix.gguf` (and the .dat for
tiny-llama; paths relative to the repository, as llama-quantize records them in
quantize.imatrix.file), reads each output with gguf-py and writes
fixtures/mixtures/<model>-bytes.json: {mixture: {file_type, tensors: [[name, type, sha256 of its
bytes]] in the output's order, file_sha256}, "imatrix": {mixture: {file_sha256}}, "imatrix_dat":
{…}}. Tests/QuantizeTests/MixtureTests.swift plans each
mixture, encodes every tensor with our kernels and compares the hashes, and runs the whole job and
compares the file's.
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


ODD = ROOT / "fixtures" / "mixtures" / "odd-llama.gguf"


def make_odd_model(path: Path) -> None:
    """The second model: every dimension off the 256 grid (see the module doc)."""
    import gguf
    rng = np.random.default_rng(20261201)
    hidden, ffn, layers, heads, kv_heads, vocab = 160, 200, 2, 5, 1, 128
    head_dim = hidden // heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_type("model")
    w.add_name("odd-llama")
    w.add_block_count(layers)
    w.add_context_length(512)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_file_type(1)
    w.add_vocab_size(vocab)
    w.add_rope_dimension_count(head_dim)

    def matrix(rows, cols):
        x = rng.normal(0.0, 0.02, size=(rows, cols)).astype(np.float32)
        x[:, rng.integers(0, cols, size=2)] *= 8.0          # outlier input columns, as trained models have
        return x

    def add(name, x, kind):
        if kind == "f16":
            w.add_tensor(name, x.astype(np.float16))
        elif kind == "bf16":
            bits = (x.view(np.uint32) + 0x7FFF + ((x.view(np.uint32) >> 16) & 1)) >> 16
            w.add_tensor(name, bits.astype(np.uint16).view(np.uint8).reshape(x.shape[0], x.shape[1] * 2),
                         raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            w.add_tensor(name, x.astype(np.float32))

    add("token_embd.weight", matrix(vocab, hidden), "f16")
    add("output_norm.weight", (1.0 + 0.1 * rng.standard_normal(hidden)).astype(np.float32).reshape(hidden), "f32")
    for i in range(layers):
        add(f"blk.{i}.attn_norm.weight", (1.0 + 0.1 * rng.standard_normal(hidden)).astype(np.float32), "f32")
        add(f"blk.{i}.attn_q.weight", matrix(hidden, hidden), "f32" if i == 0 else "f16")
        add(f"blk.{i}.attn_k.weight", matrix(kv_heads * head_dim, hidden), "f16")
        add(f"blk.{i}.attn_v.weight", matrix(kv_heads * head_dim, hidden), "f16")
        add(f"blk.{i}.attn_output.weight", matrix(hidden, hidden), "f16")
        add(f"blk.{i}.ffn_norm.weight", (1.0 + 0.1 * rng.standard_normal(hidden)).astype(np.float32), "f32")
        add(f"blk.{i}.ffn_gate.weight", matrix(ffn, hidden), "f16")
        add(f"blk.{i}.ffn_up.weight", matrix(ffn, hidden), "bf16" if i == 1 else "f16")
        add(f"blk.{i}.ffn_down.weight", matrix(hidden, ffn), "f16")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_imatrix(model: Path, out: Path, dat: Path | None) -> None:
    """Σx² for every matrix llama-imatrix would collect in `model`, in the GGUF (and legacy) layout."""
    import gguf
    rng = np.random.default_rng(20261202)
    r = GGUFReader(model)
    entries = []
    for t in r.tensors:
        if len(t.shape) < 2 or t.name == "token_embd.weight" or not t.name.endswith(".weight"):
            continue
        columns = int(t.shape[0])
        sums = (10.0 ** rng.uniform(-3, 3, size=columns) * 512).astype(np.float32)
        sums[rng.integers(0, columns, size=3)] = 0.0
        entries.append((t.name, sums))
    entries.sort(key=lambda e: e[0].encode())
    w = gguf.GGUFWriter(str(out), arch="imatrix")
    w.add_type("imatrix")
    w.add_array("imatrix.datasets", ["synthetic-seed-20261202.txt"])
    w.add_uint32("imatrix.chunk_count", 1)
    w.add_uint32("imatrix.chunk_size", 512)
    for name, sums in entries:
        w.add_tensor(name + ".in_sum2", sums)
        w.add_tensor(name + ".counts", np.array([512.0], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if dat:
        import struct
        blob = struct.pack("<i", len(entries))
        for name, sums in entries:
            nb = name.encode()
            blob += struct.pack("<i", len(nb)) + nb + struct.pack("<ii", 1, len(sums)) + (sums / 512).astype("<f4").tobytes()
        ds = b"synthetic-seed-20261202.txt"
        blob += struct.pack("<i", 1) + struct.pack("<i", len(ds)) + ds
        dat.write_bytes(blob)


def main():
    d = Path(os.environ.get("LLAMA_CPP_DIR", ROOT / ".llama.cpp"))
    exe = d / "bin" / "llama-quantize"
    if not exe.exists():
        sys.exit(f"mixture_bytes_oracle: {exe} not found; run tools/build_llama_cpp.sh (or set LLAMA_CPP_DIR)")
    make_odd_model(ODD)
    for src in [ROOT / "fixtures" / "tiny-llama.gguf", ODD]:
        stem = src.name.removesuffix(".gguf")
        imatrix = ROOT / "fixtures" / "mixtures" / f"{stem}.imatrix.gguf"
        dat = ROOT / "fixtures" / "mixtures" / f"{stem}.imatrix.dat" if stem == "tiny-llama" else None
        make_imatrix(src, imatrix, dat)
        doc = {"input": str(src.relative_to(ROOT)), "input_sha256": hashlib.sha256(src.read_bytes()).hexdigest(), "mixtures": {},
               "imatrix_path": str(imatrix.relative_to(ROOT)), "imatrix": {}}
        if dat:
            doc["imatrix_dat_path"] = str(dat.relative_to(ROOT))
            doc["imatrix_dat"] = {}
        with tempfile.TemporaryDirectory() as work:
            for mixture in MIXTURES:
                out = Path(work) / f"{mixture}.gguf"
                p = subprocess.run([str(exe), str(src), str(out), mixture, "1"], capture_output=True, text=True)
                if p.returncode != 0:
                    sys.exit(f"mixture_bytes_oracle: llama-quantize {src.name} {mixture} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
                r = GGUFReader(out)
                ft = int(r.fields["general.file_type"].parts[-1][0])
                tensors = [[t.name, t.tensor_type.name, hashlib.sha256(np.ascontiguousarray(t.data).tobytes()).hexdigest()] for t in r.tensors]
                doc["mixtures"][mixture.lower()] = {"file_type": ft, "tensors": tensors, "file_sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
                for key, matrix in [("imatrix", imatrix), ("imatrix_dat", dat)]:
                    if matrix is None:
                        continue
                    out = Path(work) / f"{mixture}-{key}.gguf"
                    p = subprocess.run([str(exe), "--imatrix", str(matrix.relative_to(ROOT)), str(src.relative_to(ROOT)), str(out), mixture, "1"],
                                       capture_output=True, text=True, cwd=ROOT)
                    if p.returncode != 0:
                        sys.exit(f"mixture_bytes_oracle: llama-quantize --imatrix {src.name} {mixture} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
                    types = [t.tensor_type.name for t in GGUFReader(out).tensors]
                    doc[key][mixture.lower()] = {"types": types, "file_sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
                                                 "differs_without": doc["mixtures"][mixture.lower()]["file_sha256"] != hashlib.sha256(out.read_bytes()).hexdigest()}
        path = ROOT / "fixtures" / "mixtures" / f"{stem}-bytes.json"
        path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        print(f"mixture_bytes_oracle: wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
