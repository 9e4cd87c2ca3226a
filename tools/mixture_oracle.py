#!/usr/bin/env python3
"""llama-quantize's per-tensor types of every mixture, on GGUF headers shaped like real models.

For each model below this writes a sparse GGUF (real metadata keys and tensor names/shapes of the
Hugging Face checkpoint converted by convert_hf_to_gguf.py, F16 matrices and F32 norms, data
never written: the file is truncated to its full length, so it takes no disk space), runs
`llama-quantize --dry-run FILE MIXTURE` for every mixture (the llama.cpp of
tools/build_llama_cpp.sh), parses the type it prints for every tensor, and writes
fixtures/mixtures/<model>.json:

  model     the facts the rule reads (architecture, block_count, head counts, expert_count)
  tensors   [name, [ne0, ne1, ...], input type] in the file's order
  expected  {mixture: [type of each tensor, in llama-quantize's printed order]}, order [names]
  expected_imatrix_changes
            {mixture: {tensor name: type}}: where `llama-quantize --dry-run --imatrix FILE` (any valid
            importance matrix sets its has_imatrix; this script writes a one-entry legacy .dat file)
            chooses another type than without it

Tests/QuantizeTests/MixtureTests.swift plans every mixture with MixturePlanner and compares.
Run: python3 tools/mixture_oracle.py            (LLAMA_CPP_DIR: default <repo>/.llama.cpp)
     python3 tools/mixture_oracle.py --check    (compare with the committed fixtures)
"""
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "mixtures"
MIXTURES = ["Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_XS"]
F32, F16 = 0, 1
TYPE_NAMES = {0: "F32", 1: "F16"}


def dense(arch, layers, hidden, heads, kv, ffn, vocab, head_dim=None, tied=False, qkv_bias=False, qk_norm=False, rope_freqs=False):
    hd = head_dim or hidden // heads
    t = [("token_embd.weight", [hidden, vocab], F16), ("output_norm.weight", [hidden], F32)]
    if not tied:
        t.append(("output.weight", [hidden, vocab], F16))
    if rope_freqs:
        t.append(("rope_freqs.weight", [hd // 2], F32))
    for i in range(layers):
        p = f"blk.{i}."
        t += [(p + "attn_norm.weight", [hidden], F32), (p + "attn_q.weight", [hidden, heads * hd], F16),
              (p + "attn_k.weight", [hidden, kv * hd], F16), (p + "attn_v.weight", [hidden, kv * hd], F16),
              (p + "attn_output.weight", [heads * hd, hidden], F16), (p + "ffn_norm.weight", [hidden], F32)]
        if qkv_bias:
            t += [(p + "attn_q.bias", [heads * hd], F32), (p + "attn_k.bias", [kv * hd], F32), (p + "attn_v.bias", [kv * hd], F32)]
        if qk_norm:
            t += [(p + "attn_q_norm.weight", [hd], F32), (p + "attn_k_norm.weight", [hd], F32)]
        if ffn:
            t += [(p + "ffn_gate.weight", [hidden, ffn], F16), (p + "ffn_up.weight", [hidden, ffn], F16), (p + "ffn_down.weight", [ffn, hidden], F16)]
    return t


def moe(t, layers, hidden, experts, expert_ffn):
    for i in range(layers):
        p = f"blk.{i}."
        t += [(p + "ffn_gate_inp.weight", [hidden, experts], F32), (p + "ffn_gate_exps.weight", [hidden, expert_ffn, experts], F16),
              (p + "ffn_up_exps.weight", [hidden, expert_ffn, experts], F16), (p + "ffn_down_exps.weight", [expert_ffn, hidden, experts], F16)]
    return t


def kv_common(arch, layers, hidden, heads, kv, ffn, vocab, ctx, head_dim=None, experts=0, used=0, expert_ffn=0):
    kvs = [("general.architecture", "str", arch), ("general.name", "str", arch + " header"), ("general.file_type", "u32", 1),
           (f"{arch}.context_length", "u32", ctx), (f"{arch}.embedding_length", "u32", hidden), (f"{arch}.block_count", "u32", layers),
           (f"{arch}.feed_forward_length", "u32", ffn), (f"{arch}.attention.head_count", "u32", heads),
           (f"{arch}.attention.head_count_kv", "u32", kv), (f"{arch}.rope.freq_base", "f32", 500000.0),
           (f"{arch}.attention.layer_norm_rms_epsilon", "f32", 1e-5), (f"{arch}.vocab_size", "u32", vocab)]
    if head_dim:
        kvs += [(f"{arch}.attention.key_length", "u32", head_dim), (f"{arch}.attention.value_length", "u32", head_dim)]
    if experts:
        kvs += [(f"{arch}.expert_count", "u32", experts), (f"{arch}.expert_used_count", "u32", used)]
    if expert_ffn:
        kvs.append((f"{arch}.expert_feed_forward_length", "u32", expert_ffn))
    return kvs


MODELS = {
    "llama-3.1-8b": (kv_common("llama", 32, 4096, 32, 8, 14336, 128256, 131072),
                     dense("llama", 32, 4096, 32, 8, 14336, 128256, rope_freqs=True)),
    "llama-3.1-70b": (kv_common("llama", 80, 8192, 64, 8, 28672, 128256, 131072),
                      dense("llama", 80, 8192, 64, 8, 28672, 128256, rope_freqs=True)),
    "mixtral-8x7b": (kv_common("llama", 32, 4096, 32, 8, 14336, 32000, 32768, experts=8, used=2),
                     moe(dense("llama", 32, 4096, 32, 8, 0, 32000), 32, 4096, 8, 14336)),
    "qwen2.5-0.5b": (kv_common("qwen2", 24, 896, 14, 2, 4864, 151936, 32768),
                     dense("qwen2", 24, 896, 14, 2, 4864, 151936, tied=True, qkv_bias=True)),
    "qwen3-30b-a3b": (kv_common("qwen3moe", 48, 2048, 32, 4, 6144, 151936, 40960, head_dim=128, experts=128, used=8, expert_ffn=768),
                      moe(dense("qwen3moe", 48, 2048, 32, 4, 0, 151936, head_dim=128, qk_norm=True), 48, 2048, 128, 768)),
}


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_sparse_gguf(path, kvs, tensors):
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))
    for key, kind, value in kvs:
        out += gguf_string(key)
        if kind == "str":
            out += struct.pack("<I", 8) + gguf_string(value)
        elif kind == "u32":
            out += struct.pack("<II", 4, value)
        elif kind == "f32":
            out += struct.pack("<If", 6, value)
    offset = 0
    for name, shape, t in tensors:
        out += gguf_string(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        out += struct.pack("<IQ", t, offset)
        n = 1
        for d in shape:
            n *= d
        offset += (n * (4 if t == F32 else 2) + 31) // 32 * 32
    out += b"\0" * (-len(out) % 32)
    with open(path, "wb") as f:
        f.write(out)
        f.truncate(len(out) + offset)


LINE = re.compile(r"^\[\s*\d+/\s*\d+\]\s+(\S+)\s+- \[([\d,\s]+)\], type =\s+(\w+), size =.*?(?:\((\w+)\))?\s*$")


def write_legacy_imatrix(path):
    """A one-entry importance matrix in llama.cpp's legacy .dat layout (common_imatrix_load_legacy):
    n_entries, then per entry name length, name, ncall, nval, nval float32; the dry run only needs
    it to be valid (the entries are matched against tensors when quantizing, not when planning)."""
    name = b"blk.0.ffn_down.weight"
    values = [1.0] * 256
    with open(path, "wb") as f:
        f.write(struct.pack("<ii", 1, len(name)) + name + struct.pack("<ii", 1, len(values)) + struct.pack(f"<{len(values)}f", *values))


def dry_run(exe, path, mixture, imatrix=None):
    extra = ["--imatrix", str(imatrix)] if imatrix else []
    p = subprocess.run([str(exe), "--dry-run", *extra, str(path), mixture], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"mixture_oracle: llama-quantize --dry-run {path.name} {mixture} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    rows = []
    for line in (p.stdout + p.stderr).splitlines():
        m = LINE.match(line.strip())
        if m:
            rows.append((m.group(1), (m.group(4) or m.group(3)).upper()))
    return rows


def generate():
    d = Path(os.environ.get("LLAMA_CPP_DIR", ROOT / ".llama.cpp"))
    exe = d / "bin" / "llama-quantize"
    if not exe.exists():
        sys.exit(f"mixture_oracle: {exe} not found; run tools/build_llama_cpp.sh (or set LLAMA_CPP_DIR)")
    files = {}
    with tempfile.TemporaryDirectory() as work:
        imatrix = Path(work) / "imatrix.dat"
        write_legacy_imatrix(imatrix)
        for model, (kvs, tensors) in MODELS.items():
            path = Path(work) / f"{model}.gguf"
            write_sparse_gguf(path, kvs, tensors)
            expected, changes, order = {}, {}, None
            for mixture in MIXTURES:
                rows = dry_run(exe, path, mixture)
                if len(rows) != len(tensors):
                    sys.exit(f"mixture_oracle: {model} {mixture}: parsed {len(rows)} of {len(tensors)} tensors")
                names = [n for n, _ in rows]
                if order is None:
                    order = names
                elif names != order:
                    sys.exit(f"mixture_oracle: {model}: tensor order differs between mixtures")
                expected[mixture.lower()] = [t for _, t in rows]
                with_imatrix = dry_run(exe, path, mixture, imatrix)
                if [n for n, _ in with_imatrix] != order:
                    sys.exit(f"mixture_oracle: {model} {mixture}: the tensor order differs with --imatrix")
                changes[mixture.lower()] = {n: t for (n, t), (_, t0) in zip(with_imatrix, rows) if t != t0}
            doc = {"model": model, "metadata": {k: v for k, _, v in kvs},
                   "tensors": [[n, s, TYPE_NAMES[t]] for n, s, t in tensors], "order": order, "expected": expected,
                   "expected_imatrix_changes": changes}
            files[f"{model}.json"] = (json.dumps(doc, separators=(",", ":")) + "\n").encode()
    return files


def main():
    files = generate()
    if "--check" in sys.argv:
        bad = [n for n, b in files.items() if not (OUT / n).exists() or (OUT / n).read_bytes() != b]
        print("mixture_oracle: fixtures match" if not bad else f"mixture_oracle: differ: {bad}")
        sys.exit(1 if bad else 0)
    OUT.mkdir(parents=True, exist_ok=True)
    for n, b in files.items():
        (OUT / n).write_bytes(b)
    print(f"mixture_oracle: wrote {len(files)} files to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
