#!/usr/bin/env python3
"""Throughput of the Python reference quantizers on this machine, next to a memcpy of the same bytes.

    .venv/bin/python tools/bench_oracles.py [--shapes 4096x4096,4096x14336] [--repeats 5]
                                            [--schemes fp8,q8_0,q4_0,...] [--json]

Measures, in GB/s of *input* bytes (10^9 bytes per GB), the same work quantize's kernels do:

  fp8_e4m3 per channel  numpy + ml_dtypes: per row amax = max|x| (float32), scale = amax / 448
                        (1 where amax = 0), q = clip(x / scale, ±448).astype(float8_e4m3fn).
                        Input F32 and BF16 (for BF16 the BF16→F32 conversion is timed too).
  q8_0 q4_0 q4_1        gguf-py's gguf.quants.quantize(array, GGMLQuantizationType.X) on F32
  q5_0 q5_1             input and on F16 input (what an F16 GGUF holds; gguf-py converts the
                        rows to F32 inside, and that is timed).
  memcpy                np.copyto of an array of the same shape and input dtype (same bytes).

Each case runs once to warm up, then --repeats rounds time every case in turn (so all cases see
the same noise from this shared machine); the median is reported, with all samples in --json.
Everything here runs on one core: numpy's elementwise functions, ml_dtypes' casts and gguf-py use
no threads, so compare these numbers with quantize's single-core figures (and its scaling apart).

OpenBLAS: on some processors this workplace sets OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, which slow a
current numpy. When either is set, this script re-executes itself once with both removed, for
this command only, and says so in its output. (None of the measured operations calls BLAS, so the
numbers should not depend on it; the unset only rules that out.)

Output: a Markdown table on stdout, or with --json one JSON document (schema below) that the Swift
benchmark can merge with its own rows. JSON: {"tool", "command", "date_utc", "machine": {...},
"openblas_env_unset": {NAME: old value}, "repeats", "results": [{"scheme", "input_dtype", "shape",
"implementation", "input_bytes", "median_s", "gb_per_s", "x_memcpy", "issue_target_gb_per_s",
"samples_s"}]}.
"""
from __future__ import annotations

import os
import sys

_OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_UNSET_MARK = "QUANTIZE_BENCH_ORACLES_UNSET"

if any(v in os.environ for v in _OPENBLAS_VARS) and _UNSET_MARK not in os.environ:
    env = dict(os.environ)
    removed = {v: env.pop(v) for v in _OPENBLAS_VARS if v in env}
    env[_UNSET_MARK] = ";".join(f"{k}={v}" for k, v in removed.items())
    os.execve(sys.executable, [sys.executable, *sys.argv], env)

import argparse
import datetime
import json
import platform
import statistics
import time

import ml_dtypes
import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

GB = 1e9
SEED = 20261126
FP8_MAX = np.float32(448.0)

GGUF_SCHEMES = {"q8_0": Q.Q8_0, "q4_0": Q.Q4_0, "q4_1": Q.Q4_1, "q5_0": Q.Q5_0, "q5_1": Q.Q5_1}
ALL_SCHEMES = ["fp8", *GGUF_SCHEMES]
INPUT_TYPES = {"f32": np.float32, "bf16": ml_dtypes.bfloat16, "f16": np.float16}
# The targets for quantize's kernel, as a multiple of this oracle's GB/s.
TARGET_FACTOR = {"fp8_e4m3": 10.0, "q8_0": 5.0, "q4_0": 5.0}


def fp8_per_channel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The numpy + ml_dtypes reference: per-row scale amax/448, divide, clip, cast to E4M3FN."""
    x32 = x.astype(np.float32, copy=False)
    amax = np.max(np.abs(x32), axis=1, keepdims=True)
    scale = amax / FP8_MAX
    scale = np.where(scale == 0, np.float32(1.0), scale).astype(np.float32)
    q = np.clip(x32 / scale, -FP8_MAX, FP8_MAX).astype(ml_dtypes.float8_e4m3fn)
    return q, scale


def parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for item in text.split(","):
        try:
            rows, cols = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"shape {item!r} is not ROWSxCOLS, e.g. 4096x4096")
        if rows <= 0 or cols <= 0 or cols % 32:
            raise argparse.ArgumentTypeError(f"shape {item!r}: both positive, columns a multiple of 32")
        shapes.append((rows, cols))
    return shapes


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
        simd = [k for k in ("SSE42", "AVX2", "FMA3", "F16C", "AVX512F", "AVX512_SKX") if features.get(k)]
    except ImportError:
        simd = []
    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "ml_dtypes": ml_dtypes.__version__,
        "gguf": getattr(gguf, "__version__", None) or _dist_version("gguf"), "numpy_simd": simd,
    }


def _dist_version(name: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


def build_cases(shapes, schemes):
    """(description dict, callable) per case; inputs are generated once per shape and dtype."""
    rng = np.random.default_rng(SEED)
    cases = []
    for rows, cols in shapes:
        base = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(0.02)
        inputs = {name: base.astype(t) for name, t in INPUT_TYPES.items()}
        wanted_inputs = set()
        if "fp8" in schemes:
            wanted_inputs |= {"f32", "bf16"}
        if any(s in GGUF_SCHEMES for s in schemes):
            wanted_inputs |= {"f32", "f16"}
        for dtype in [d for d in INPUT_TYPES if d in wanted_inputs]:
            src = inputs[dtype]
            dst = np.empty_like(src)
            cases.append((dict(scheme="memcpy", input_dtype=dtype, shape=[rows, cols],
                               implementation="memcpy (np.copyto)", input_bytes=src.nbytes),
                          lambda src=src, dst=dst: np.copyto(dst, src)))
        if "fp8" in schemes:
            for dtype in ("f32", "bf16"):
                x = inputs[dtype]
                q, scale = fp8_per_channel(x)            # sanity check of the oracle's output
                assert q.dtype == ml_dtypes.float8_e4m3fn and q.shape == x.shape
                assert scale.shape == (rows, 1)
                cases.append((dict(scheme="fp8_e4m3", input_dtype=dtype, shape=[rows, cols],
                                   implementation="numpy+ml_dtypes", input_bytes=x.nbytes),
                              lambda x=x: fp8_per_channel(x)))
        for name, qtype in GGUF_SCHEMES.items():
            if name not in schemes:
                continue
            for dtype in ("f32", "f16"):
                x = inputs[dtype]
                out = gguf.quants.quantize(x, qtype)
                block, type_size = gguf.GGML_QUANT_SIZES[qtype]
                assert out.dtype == np.uint8 and out.size == x.size // block * type_size
                cases.append((dict(scheme=name, input_dtype=dtype, shape=[rows, cols],
                                   implementation="gguf-py", input_bytes=x.nbytes),
                              lambda x=x, qtype=qtype: gguf.quants.quantize(x, qtype)))
    return cases


def measure(cases, repeats: int, log) -> list[dict]:
    for info, body in cases:                      # warm-up
        body()
    samples = [[] for _ in cases]
    for round_index in range(repeats):
        for i, (_, body) in enumerate(cases):
            start = time.perf_counter()
            body()
            samples[i].append(time.perf_counter() - start)
        log(f"round {round_index + 1}/{repeats} done")
    results = []
    for (info, _), s in zip(cases, samples):
        median = statistics.median(s)
        results.append({**info, "median_s": median, "gb_per_s": info["input_bytes"] / median / GB,
                        "samples_s": s})
    memcpy = {(r["input_dtype"], tuple(r["shape"])): r["gb_per_s"] for r in results if r["scheme"] == "memcpy"}
    for r in results:
        r["x_memcpy"] = r["gb_per_s"] / memcpy[(r["input_dtype"], tuple(r["shape"]))]
        factor = TARGET_FACTOR.get(r["scheme"])
        r["issue_target_gb_per_s"] = r["gb_per_s"] * factor if factor else None
    return results


def markdown(doc: dict) -> str:
    m = doc["machine"]
    lines = [
        "# Python oracle throughput",
        "",
        f"command: `{doc['command']}`  ",
        f"date: {doc['date_utc']}  ",
        f"machine: {m['cpu']}, {m['cores']} cores (oracles run on one), numpy {m['numpy']} "
        f"(SIMD: {', '.join(m['numpy_simd']) or 'n/a'}), ml_dtypes {m['ml_dtypes']}, gguf-py {m['gguf']}  ",
        "OpenBLAS environment: " + (
            "unset for this command only: " + ", ".join(f"{k}={v}" for k, v in doc["openblas_env_unset"].items())
            if doc["openblas_env_unset"] else "OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE not set") + "  ",
        f"medians of {doc['repeats']} runs after one warm-up; GB = 10^9 bytes of input; "
        "× memcpy = GB/s ÷ np.copyto GB/s of the same bytes; target = the issue's goal for "
        "quantize's kernel (fp8 ≥ 10×, q8_0/q4_0 ≥ 5× this oracle)",
        "",
        "| shape | scheme | input | implementation | median ms | GB/s | × memcpy | target GB/s |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in doc["results"]:
        target = f"{r['issue_target_gb_per_s']:.3f}" if r["issue_target_gb_per_s"] else ""
        lines.append(
            f"| {r['shape'][0]}×{r['shape'][1]} | {r['scheme']} | {r['input_dtype']} | {r['implementation']} | "
            f"{r['median_s'] * 1e3:.1f} | {r['gb_per_s']:.3f} | {r['x_memcpy']:.4f} | {target} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", type=parse_shapes, default=[(4096, 4096)],
                        help="comma-separated ROWSxCOLS (default 4096x4096)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (default 5)")
    parser.add_argument("--schemes", default=",".join(ALL_SCHEMES),
                        help=f"comma-separated subset of {','.join(ALL_SCHEMES)} (default all)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of Markdown")
    args = parser.parse_args()
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    unknown = [s for s in schemes if s not in ALL_SCHEMES]
    if unknown or not schemes:
        parser.error(f"unknown scheme(s) {unknown}; choose from {ALL_SCHEMES}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    unset = dict(item.split("=", 1) for item in os.environ.get(_UNSET_MARK, "").split(";") if item)
    def log(message: str) -> None:
        print(f"bench_oracles: {message}", file=sys.stderr)

    log(f"generating inputs and checking oracle outputs for {len(args.shapes)} shape(s)")
    cases = build_cases(args.shapes, schemes)
    log(f"{len(cases)} cases, {args.repeats} rounds")
    results = measure(cases, args.repeats, log)
    doc = {
        "tool": "tools/bench_oracles.py",
        "command": " ".join(["tools/bench_oracles.py", *sys.argv[1:]]),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "openblas_env_unset": unset,
        "repeats": args.repeats,
        "results": results,
    }
    print(json.dumps(doc, indent=2) if args.json else markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
