#!/usr/bin/env python3
"""W8A8 INT8 (dynamic per-token activations) with and without SmoothQuant, against llm-compressor, on the trained fixture.

1. Calibration windows from the fixture's training text (tools/make_calibration.py; disjoint from
   eval.txt), written once as JSON so that both tools calibrate on the same token ids.
2. Ours (`quantize`): int8 W8A16 RTN (pack-quantized), W8A8 RTN (`--act-quant int8`), W8A8 with
   `--smooth 0.5` and `--smooth 0.8`, and `--smooth 0.8 --method gptq`.
3. llm-compressor's SmoothQuantModifier (α 0.5 and 0.8, default llama mappings) + QuantizationModifier
   W8A8 (and GPTQModifier W8A8 at α 0.8), sequential pipeline, CPU, nice -n 19
   (tools/smoothquant_reference.py run) on the same windows.
4. One `quantize eval` of every output against the original on fixtures/trained-llama/eval.txt
   (llama-perplexity's protocol): PPL and mean KLD, computed the way vLLM runs W8A8 (every quantized
   linear layer's input rounded to INT8 per token, amax/127, round half to even).
5. Our smoothing factors against llm-compressor's, per norm (original / smoothed norm weight).
6. `quantize verify --target vllm` of ours, and transformers + compressed-tensors loading ours and
   llm-compressor's (tools/smoothquant_reference.py logits).

Prints markdown tables and writes the raw results to --json.
Usage: nice -n 19 .venv-ref/bin/python tools/bench_w8a8.py [--samples 32] [--length 512] [--work /tmp/bench-w8a8] [--reuse]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "fixtures" / "trained-llama"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--work", default="/tmp/bench-w8a8")
    parser.add_argument("--reuse", action="store_true", help="keep outputs that already exist")
    default_quantize = REPO / ".build" / "release" / "quantize"
    if not default_quantize.exists():
        default_quantize = REPO / ".build" / "debug" / "quantize"
    parser.add_argument("--quantize", default=str(default_quantize))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))

    calibration = work / f"calibration-{args.samples}x{args.length}.json"
    if not calibration.exists():
        subprocess.run([python, str(REPO / "tools" / "make_calibration.py"), "--samples", str(args.samples), "--length", str(args.length),
                        "-o", str(calibration)], check=True)
    data = ["--calibration", str(calibration), "--calibration-samples", str(args.samples), "--calibration-length", str(args.length)]
    ours = [
        ("W8A16 RTN", "w8a16", ["--to", "int8"]),
        ("W8A8 RTN", "w8a8", ["--to", "int8", "--act-quant", "int8"]),
        ("W8A8 SmoothQuant α 0.5", "w8a8-sq05", ["--to", "int8", "--act-quant", "int8", "--smooth", "0.5", *data]),
        ("W8A8 SmoothQuant α 0.8", "w8a8-sq08", ["--to", "int8", "--act-quant", "int8", "--smooth", "0.8", *data]),
        ("W8A8 SmoothQuant α 0.8 + GPTQ", "w8a8-sq08-gptq", ["--to", "int8", "--act-quant", "int8", "--smooth", "0.8", "--method", "gptq", *data]),
    ]
    theirs = [
        ("W8A8 SmoothQuant α 0.5", "lc-w8a8-sq05", 0.5, False),
        ("W8A8 SmoothQuant α 0.8", "lc-w8a8-sq08", 0.8, False),
        ("W8A8 SmoothQuant α 0.8 + GPTQ", "lc-w8a8-sq08-gptq", 0.8, True),
    ]
    runs = []
    for label, name, extra in ours:
        out = work / name
        if not (args.reuse and out.exists()):
            result = subprocess.run([args.quantize, *extra, str(MODEL), "-o", str(out), "--force", "--quiet", "--threads", str(args.threads)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"quantize {label} failed: {result.stderr[-800:]}")
        runs.append({"tool": "quantize", "method": label, "path": str(out)})
    for label, name, alpha, gptq in theirs:
        out = work / name
        if not (args.reuse and out.exists()):
            subprocess.run(["nice", "-n", "19", python, str(REPO / "tools" / "smoothquant_reference.py"), "run", str(MODEL), str(out),
                            "--calibration", str(calibration), "--smooth", str(alpha), "--threads", str(args.threads),
                            *(["--gptq"] if gptq else [])], check=True, env=env)
        runs.append({"tool": "llm-compressor", "method": label, "path": str(out)})

    evaluation = subprocess.run([args.quantize, "eval", str(MODEL), *[r["path"] for r in runs], "--text", str(MODEL / "eval.txt"), "--json"],
                                capture_output=True, text=True)
    if evaluation.returncode != 0:
        sys.exit(f"quantize eval failed: {evaluation.stderr[-800:]}")
    report = json.loads(evaluation.stdout)
    rtn = None
    print(f"original PPL {report['original']['perplexity']:.4f}; calibration {args.samples} × {args.length} tokens")
    print("| tool | variant | activations in eval | PPL | mean KLD | KLD / W8A8 RTN |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for run, result in zip(runs, report["results"]):
        run["ppl"] = result["perplexity"]
        run["kld"] = result["kld"]["mean"]
        run["kld_uncertainty"] = result["kld"]["uncertainty"]
        run["activations"] = result.get("activationQuantization") or "FP32"
        if run["method"] == "W8A8 RTN":
            rtn = run["kld"]
    for run in runs:
        ratio = f"{run['kld'] / rtn:.2f}" if rtn else ""
        print(f"| {run['tool']} | {run['method']} | {run['activations']} | {run['ppl']:.4f} | {run['kld']:.3e} ± {run['kld_uncertainty']:.1e} | {ratio} |")

    comparisons = {}
    for alpha, a, b in [(0.5, "w8a8-sq05", "lc-w8a8-sq05"), (0.8, "w8a8-sq08", "lc-w8a8-sq08")]:
        found = subprocess.run([python, str(REPO / "tools" / "smoothquant_reference.py"), "scales", str(MODEL), str(work / a), str(work / b)],
                               capture_output=True, text=True, check=True, env=env)
        rows = json.loads(found.stdout)
        comparisons[str(alpha)] = rows
        print(f"\nsmoothing factors, ours vs llm-compressor, α {alpha} (relative difference per channel)")
        print("| norm | mean | median | max | ours min…max | llm-compressor min…max |")
        print("| --- | ---: | ---: | ---: | --- | --- |")
        for r in rows:
            print(f"| {r['norm']} | {r['mean_rel']:.2e} | {r['median_rel']:.2e} | {r['max_rel']:.2e} | "
                  f"{r['scale_range_a'][0]:.3g}…{r['scale_range_a'][1]:.3g} | {r['scale_range_b'][0]:.3g}…{r['scale_range_b'][1]:.3g} |")

    verify = subprocess.run([args.quantize, "verify", "--target", "vllm", str(work / "w8a8-sq08"), "--json"], capture_output=True, text=True)
    print(f"\nquantize verify --target vllm w8a8-sq08: exit {verify.returncode}")
    loads = subprocess.run([python, str(REPO / "tools" / "smoothquant_reference.py"), "logits", str(MODEL),
                            *[str(work / n) for n in ("w8a8", "w8a8-sq08", "lc-w8a8-sq08")]], capture_output=True, text=True, env=env)
    print("transformers + compressed-tensors:")
    print(loads.stdout if loads.returncode == 0 else loads.stderr[-1500:])
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "scales": comparisons, "verify": verify.stdout,
                                               "transformers": loads.stdout, "original": report["original"]}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
