#!/usr/bin/env python3
"""Quantization kernel benchmark: our kernels and the Python reference implementations in one run.

Runs `.build/release/QuantizeBench quantize` (build it with `swift build -c release --product
QuantizeBench`, or use tools/bench.sh) and tools/bench_oracles.py on the same machine, one after the
other, and prints one Markdown table: per scheme, GB/s of FP32 and BF16 input for our kernel on one
core and on all cores, memcpy of the same bytes, numpy+ml_dtypes (fp8) or gguf-py (GGUF types), and
the speed-up over the oracle. Targets from the Quantize issue: each kernel >= 0.5x memcpy on one
core; fp8 >= 10x numpy+ml_dtypes; q8_0 and q4_0 >= 5x gguf-py.

    .venv/bin/python tools/bench_quantize.py [--megabytes 64] [--repeats 7]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE_NAMES = {"fp8": "fp8_e4m3", "q8_0": "q8_0", "q4_0": "q4_0", "q4_1": "q4_1", "q5_0": "q5_0", "q5_1": "q5_1"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    binary = os.path.join(ROOT, ".build/release/QuantizeBench")
    if not os.path.exists(binary):
        sys.exit("build it first: swift build -c release --product QuantizeBench")
    with tempfile.TemporaryDirectory() as scratch:
        ours_path = os.path.join(scratch, "ours.json")
        env = dict(os.environ, QUANTIZE_BENCH_JSON=ours_path)
        subprocess.run([binary, "quantize", "--megabytes", str(args.megabytes), "--repeats", str(args.repeats)],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        ours = json.load(open(ours_path))
        oracle = subprocess.run([sys.executable, os.path.join(ROOT, "tools/bench_oracles.py"), "--json",
                                 "--repeats", str(max(3, args.repeats // 2))],
                                check=True, capture_output=True, text=True)
        oracles = json.loads(oracle.stdout)
    by_key = {}
    for row in oracles["results"]:
        if row["implementation"] != "memcpy":
            by_key[(row["scheme"], row["input_dtype"])] = row["gb_per_s"]
    print(f"cores: {ours['cores']}; GB/s of input; ours = QuantizeBench quantize, oracle = tools/bench_oracles.py\n")
    print("| scheme | ours FP32 1 core | memcpy FP32 | ours/memcpy | ours BF16 1 core | memcpy BF16 | ours/memcpy | ours FP32 all cores | oracle FP32 | ours/oracle (FP32) | oracle BF16 | ours/oracle (BF16) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in ours["results"]:
        key = ORACLE_NAMES.get(row["scheme"]) if "block" not in row["label"] else None
        o32 = by_key.get((key, "f32")) if key else None
        o16 = by_key.get((key, "bf16")) if key else None
        cells = [row["label"], f"{row['fp32_one_core_gb_s']:.2f}", f"{row['memcpy_fp32_gb_s']:.2f}",
                 f"{row['fp32_one_core_gb_s'] / row['memcpy_fp32_gb_s']:.2f}", f"{row['bf16_one_core_gb_s']:.2f}",
                 f"{row['memcpy_bf16_gb_s']:.2f}", f"{row['bf16_one_core_gb_s'] / row['memcpy_bf16_gb_s']:.2f}",
                 f"{row['fp32_all_cores_gb_s']:.2f}",
                 f"{o32:.3f}" if o32 else "–", f"{row['fp32_one_core_gb_s'] / o32:.1f}×" if o32 else "–",
                 f"{o16:.3f}" if o16 else "–", f"{row['bf16_one_core_gb_s'] / o16:.1f}×" if o16 else "–"]
        print("| " + " | ".join(cells) + " |")
    for line in oracle.stderr.splitlines():
        if "OPENBLAS" in line:
            print("\n" + line)


if __name__ == "__main__":
    main()
