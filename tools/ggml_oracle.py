#!/usr/bin/env python3
"""Oracle fixtures for the GGUF encoders: ggml's own quantizer on seeded rows, without and with an
importance matrix.

Builds tools/ggml_oracle/quant_harness.c (a small main around `ggml_quantize_chunk`, the call
llama-quantize makes per tensor) against the libggml-base.a that tools/build_llama_cpp.sh builds
(the llama.cpp vendored by llama-cpp-python 0.3.36), runs it on a fixed-seed matrix whose rows
cover the edge cases, and writes

fixtures/ggml-kquants/ (no importance matrix: quantize_q2_K → quantize_row_q2_K_ref, …,
quantize_iq4_nl/quantize_iq4_xs with ntry 7):
  input.f32     ROWS × COLUMNS little-endian float32 (row r is rows[r] in cases.json)
  <TYPE>.bin    ggml's bytes for the whole matrix, for every type in cases.json
  cases.json    rows (labels), columns, types (name, id, bytes, sha256), llama.cpp version

fixtures/ggml-imatrix/ (the same input.f32 with an importance matrix: quantize_row_q4_K_impl, …,
quantize_row_q4_0_impl, … with quant_weights, the path of llama-quantize --imatrix):
  importance.f32  EXPERTS × COLUMNS float32: seeded positive per-column importance shaped like real
                  Σx²/N (log-normal over ~4 decades, some 1e-6 times smaller, a few zeros, in
                  expert 0 one whole dead sub-block of 32); rows [e·R, (e+1)·R) use expert e's
                  vector, R = rows_per_expert, as llama-quantize does for a 3-D expert tensor
  cases.json      rows_per_expert, types (name, id, bytes, sha256 of the whole output, and the
                  first 16 hex digits of the sha256 of every row's bytes)
Q8_0 is included to show that ggml ignores the importance for it (its bytes equal the plain ones).

Tests/QuantizeTests/GGMLOracleTests.swift and GGMLImatrixOracleTests.swift encode input.f32 with
our kernels and compare.
Run: python3 tools/ggml_oracle.py            (LLAMA_CPP_DIR: default <repo>/.llama.cpp)
     python3 tools/ggml_oracle.py --check     (regenerate in memory and compare with the committed files)
     python3 tools/ggml_oracle.py --stress    (also build our CKernels with clang -O3 and compare every
                                               type, without and with importance, on 4096 × 1024 seeded
                                               Gaussian / Student-t rows at 4 scales, 8 experts, then
                                               512 × 1280 and 256 × 896 rows, 2 experts)
     python3 tools/ggml_oracle.py --bench     (MB/s per core (thread CPU time) of ggml's quantizer and ours
                                               on the same rows in one run, without and with importance; builds
                                               tools/ggml_oracle/bench_harness.c, prints a Markdown table)
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "ggml-kquants"
OUT_IMATRIX = ROOT / "fixtures" / "ggml-imatrix"
COLUMNS = 512
SIZES = {10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 20: (32, 18), 23: (256, 136),
         2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34)}
TYPES = [("Q2_K", 10), ("Q3_K", 11), ("Q4_K", 12), ("Q5_K", 13), ("Q6_K", 14), ("IQ4_NL", 20), ("IQ4_XS", 23)]
# Every type we write whose ggml quantizer takes an importance matrix, and Q8_0, which ignores it.
TYPES_IMATRIX = TYPES + [("Q4_0", 2), ("Q4_1", 3), ("Q5_0", 6), ("Q5_1", 7), ("Q8_0", 8)]
EXPERTS = 2


def llama_dir() -> Path:
    d = Path(os.environ.get("LLAMA_CPP_DIR", ROOT / ".llama.cpp"))
    lib = d / "build" / "ggml" / "src" / "libggml-base.a"
    if not lib.exists():
        sys.exit(f"ggml_oracle: {lib} not found; run tools/build_llama_cpp.sh (or set LLAMA_CPP_DIR)")
    return d


def harness(d: Path, work: Path) -> Path:
    """The harness, compiled into `work` (a temporary directory: nothing is written to `d`)."""
    src = ROOT / "tools" / "ggml_oracle" / "quant_harness.c"
    exe, obj = work / "quant_harness", work / "quant_harness.o"
    lib = d / "build" / "ggml" / "src" / "libggml-base.a"
    subprocess.run(["cc", "-O2", "-c", "-I", str(d / "llama.cpp" / "ggml" / "include"), str(src), "-o", str(obj)], check=True)
    subprocess.run(["c++", str(obj), str(lib), "-lm", "-fopenmp", "-o", str(exe)], check=True)
    return exe


def rows():
    """(label, row) pairs: the edge cases each encoder branches on, then seeded random rows."""
    rng = np.random.default_rng(20261201)
    n = COLUMNS
    out = []
    g = lambda s=1.0: (rng.standard_normal(n) * s).astype(np.float32)
    out.append(("zeros", np.zeros(n, np.float32)))
    out.append(("constant +0.37", np.full(n, 0.37, np.float32)))
    out.append(("constant -2.5", np.full(n, -2.5, np.float32)))
    r = g(0.02); r[rng.integers(0, n, 3)] = [8.0, -12.0, 30.0]
    out.append(("gaussian 0.02 with 3 outliers", r))
    r = np.zeros(n, np.float32); r[17] = 1.0; r[300] = -0.5
    out.append(("two non-zeros", r))
    out.append(("tiny 1e-30 (x² underflows)", g(1e-30)))
    out.append(("tiny 1e-20", g(1e-20)))
    out.append(("near GROUP_MAX_EPS 1e-15", g(1e-15)))
    out.append(("huge 1e4", g(1e4)))
    out.append(("all positive", np.abs(g(0.5)) + 0.1))
    out.append(("all negative", -np.abs(g(0.5)) - 0.1))
    out.append(("integers -4..3 (ties)", rng.integers(-4, 4, n).astype(np.float32)))
    out.append(("halves (rounding ties)", (rng.integers(-16, 16, n) / 2).astype(np.float32)))
    r = g(0.03); r[: n // 2] = 0
    out.append(("first half zero", r))
    r = g(0.03); r[::32] = 0; r[5::16] = -r[5::16]
    out.append(("sparse sign flips", r))
    r = g(1.0); r[:64] *= 1e-6
    out.append(("mixed scales per sub-block", r))
    for i in range(8):
        t = rng.standard_t(5, n).astype(np.float32) * np.float32(0.02)
        out.append((f"student-t5 #{i}", t))
    for i in range(8):
        out.append((f"gaussian #{i}", g(0.02 * (i + 1))))
    return out


def importance(rng, cols: int, dead_block: bool) -> np.ndarray:
    """A positive per-column importance vector shaped like an imatrix's Σx²/N."""
    v = np.exp(rng.normal(0.0, 1.5, cols)) * 1e-2
    v[rng.choice(cols, max(1, cols // 50), replace=False)] *= 1e-6
    v[rng.choice(cols, 3, replace=False)] = 0.0
    if dead_block:
        v[64:96] = 0.0
    return v.astype("<f4")


def generate():
    d = llama_dir()
    with tempfile.TemporaryDirectory() as work:
        exe = harness(d, Path(work))
        files = generate_with(d, exe)
        return files, generate_imatrix(d, exe, files["input.f32"], Path(work))


def generate_imatrix(d: Path, exe: Path, x: bytes, work: Path):
    rng = np.random.default_rng(20261202)
    imp = np.concatenate([importance(rng, COLUMNS, e == 0) for e in range(EXPERTS)]).astype("<f4")
    files = {"importance.f32": imp.tobytes()}
    path = work / "importance.f32"
    path.write_bytes(files["importance.f32"])
    n_rows = len(x) // 4 // COLUMNS
    per_expert = n_rows // EXPERTS
    types = []
    for name, tid in TYPES_IMATRIX:
        blob = subprocess.run([str(exe), str(tid), str(n_rows), str(COLUMNS), str(path), str(per_expert)], input=x,
                              capture_output=True, check=True).stdout
        row_bytes = len(blob) // n_rows
        rows_sha = [hashlib.sha256(blob[r * row_bytes:(r + 1) * row_bytes]).hexdigest()[:16] for r in range(n_rows)]
        types.append({"name": name, "id": tid, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest(), "row_sha256_16": rows_sha})
    version = (d / "llama.cpp.version").read_text().strip() if (d / "llama.cpp.version").exists() else "unknown"
    cases = {"columns": COLUMNS, "rows": n_rows, "experts": EXPERTS, "rows_per_expert": per_expert,
             "input": "../ggml-kquants/input.f32", "input_sha256": hashlib.sha256(x).hexdigest(),
             "importance_sha256": hashlib.sha256(files["importance.f32"]).hexdigest(), "types": types, "llama_cpp": version,
             "call": "for e in experts: ggml_quantize_chunk(type, x + e*R*columns, out + e*R*row_size, 0, R, columns, importance + e*columns)"}
    files["cases.json"] = (json.dumps(cases, indent=1) + "\n").encode()
    return files


def generate_with(d: Path, exe: Path):
    labelled = rows()
    x = np.stack([r for _, r in labelled]).astype("<f4")
    files = {"input.f32": x.tobytes()}
    types = []
    for name, tid in TYPES:
        blob = subprocess.run([str(exe), str(tid), str(len(labelled)), str(COLUMNS)], input=x.tobytes(),
                              capture_output=True, check=True).stdout
        files[f"{name}.bin"] = blob
        types.append({"name": name, "id": tid, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()})
    version = (d / "llama.cpp.version").read_text().strip() if (d / "llama.cpp.version").exists() else "unknown"
    cases = {"columns": COLUMNS, "rows": [label for label, _ in labelled], "types": types,
             "input_sha256": hashlib.sha256(files["input.f32"]).hexdigest(), "llama_cpp": version,
             "call": "ggml_quantize_chunk(type, x, out, 0, rows, columns, NULL)"}
    files["cases.json"] = (json.dumps(cases, indent=1) + "\n").encode()
    return files


def stress_inputs(rng, rows, cols, experts):
    parts = []
    for s in [1e-3, 0.02, 1.0, 100.0]:
        parts += [rng.standard_normal((rows // 8, cols)) * s, rng.standard_t(3, (rows // 8, cols)) * s]
    x = np.concatenate(parts).astype("<f4")
    x = x[rng.permutation(rows)]  # every expert sees every scale
    x[::7, ::13] = 0
    imp = np.concatenate([importance(rng, cols, e == 0) for e in range(experts)]).astype("<f4")
    return x, imp


def stress():
    """Our kernels against ggml on about four million weights per type, without and with an
    importance matrix (8 experts, each its own vector), then on rows of 5 super-blocks (an odd count
    per row); prints the blocks compared and differing."""
    d = llama_dir()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        exe = harness(d, work)
        kernels = ROOT / "Sources" / "CKernels"
        ours = work / "ours"
        sources = [str(p) for p in sorted(kernels.glob("*.c")) if p.name.startswith(("ggml_", "kernel_shared", "cpu"))]
        # clang -O3 as SwiftPM builds the CKernels target (Package.swift), cc where there is no clang.
        subprocess.run([shutil.which("clang") or "cc", "-O3", "-I", str(kernels / "include"), "-I", str(kernels), str(ROOT / "tools" / "ggml_oracle" / "ours_harness.c"),
                        *sources, "-lm", "-o", str(ours)], check=True)
        bad = total = 0
        # 1280 columns: an odd number of super-blocks per row; 896 (Qwen2.5-0.5B's hidden size): the
        # 32-element types only, 28 blocks per row (AVX2 fits of 16 and 8, then 4 one at a time).
        for rows, cols, experts in [(4096, 1024, 8), (512, 1280, 2), (256, 896, 2)]:
            x, imp = stress_inputs(rng, rows, cols, experts)
            (work / "importance.f32").write_bytes(imp.tobytes())
            for weighted in [False, True]:
                extra = [str(work / "importance.f32"), str(rows // experts)] if weighted else []
                for name, tid in (TYPES_IMATRIX if weighted else TYPES):
                    bs, bpb = SIZES[tid]
                    if cols % bs:
                        continue
                    a = subprocess.run([str(exe), str(tid), str(rows), str(cols), *extra], input=x.tobytes(), capture_output=True, check=True).stdout
                    b = subprocess.run([str(ours), str(tid), str(rows), str(cols), str(bs), str(bpb), *extra], input=x.tobytes(),
                                       capture_output=True, check=True).stdout
                    A = np.frombuffer(a, np.uint8).reshape(-1, bpb)
                    B = np.frombuffer(b, np.uint8).reshape(-1, bpb)
                    n = int((A != B).any(axis=1).sum())
                    bad += n
                    total += len(A)
                    print(f"{rows}×{cols} {name}{' imatrix' if weighted else ''}: {n} of {len(A)} blocks differ from ggml", flush=True)
        print(f"ggml_oracle --stress: {bad} of {total} blocks differ")
        sys.exit(1 if bad else 0)


def bench():
    """One thread, 256 × 4096 rows: ggml vs ours, plain and importance-weighted, and memcpy."""
    d = llama_dir()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        kernels = ROOT / "Sources" / "CKernels"
        exe = work / "bench"
        cc = shutil.which("clang") or "cc"
        objs = []
        for src in sorted(kernels.glob("*.c")):
            if src.name.startswith(("ggml_", "kernel_shared", "cpu")):
                obj = work / (src.stem + ".o")
                subprocess.run([cc, "-O3", "-I", str(kernels / "include"), "-I", str(kernels), "-c", str(src), "-o", str(obj)], check=True)
                objs.append(str(obj))
        harness_obj = work / "bench_harness.o"
        subprocess.run(["cc", "-O2", "-c", "-I", str(d / "llama.cpp" / "ggml" / "include"), str(ROOT / "tools" / "ggml_oracle" / "bench_harness.c"),
                        "-o", str(harness_obj)], check=True)
        lib = d / "build" / "ggml" / "src" / "libggml-base.a"
        subprocess.run(["c++", str(harness_obj), *objs, str(lib), "-lm", "-fopenmp", "-o", str(exe)], check=True)
        args = [f"{tid}:{SIZES[tid][0]}" for _, tid in TYPES_IMATRIX if tid != 8]
        out = subprocess.run([str(exe), "256", "4096", "5", *args], capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    print("| type | ggml MB/s | ours MB/s | ours/ggml | ggml imatrix MB/s | ours imatrix MB/s | ours/ggml imatrix | same bytes (plain, imatrix) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['ggml']:.1f} | {r['ours']:.1f} | {r['ours'] / r['ggml']:.2f}× | {r['ggml_imatrix']:.1f} | "
              f"{r['ours_imatrix']:.1f} | {r['ours_imatrix'] / r['ggml_imatrix']:.2f}× | {r['same_bytes']}, {r['same_bytes_imatrix']} |")
    print(f"\n256 × 4096 float32 rows (4.2 MB), one thread, MB/s of float32 input per second of the thread's CPU time (median of 5 "
          f"interleaved runs; CPU time, so that time the thread spends descheduled on a shared machine is not counted); "
          f"memcpy of the same bytes: {min(r['memcpy'] for r in rows):.0f}–{max(r['memcpy'] for r in rows):.0f} MB/s")
    sys.exit(0 if all(r["same_bytes"] and r["same_bytes_imatrix"] for r in rows) else 1)


def main():
    if "--stress" in sys.argv:
        stress()
    if "--bench" in sys.argv:
        bench()
    plain, weighted = generate()
    outputs = [(OUT, plain), (OUT_IMATRIX, weighted)]
    if "--check" in sys.argv:
        bad = [str((out / n).relative_to(ROOT)) for out, files in outputs for n, b in files.items()
               if not (out / n).exists() or (out / n).read_bytes() != b]
        print("ggml_oracle: fixtures match" if not bad else f"ggml_oracle: differ: {bad}")
        sys.exit(1 if bad else 0)
    for out, files in outputs:
        out.mkdir(parents=True, exist_ok=True)
        for n, b in files.items():
            (out / n).write_bytes(b)
        print(f"ggml_oracle: wrote {len(files)} files to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
