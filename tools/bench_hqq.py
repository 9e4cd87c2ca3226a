#!/usr/bin/env python3
"""`--method hqq` against round-to-nearest and `--search` on the trained fixture, and against the
hqq package's own solver on the same weights.

1. Ours (`quantize`, release build): int4 g128 and g32, symmetric and --asymmetric, each as
   round-to-nearest, --search and --method hqq; wall and CPU seconds from GNU time.
2. `quantize eval` of every output against the original on fixtures/trained-llama/eval.txt (19
   chunks × 512, llama-perplexity's protocol): PPL, mean KLD and its ratio to round-to-nearest's.
3. With --reference (needs torch and the `hqq` package, e.g. `.venv-ref/bin/pip install --no-deps
   hqq`): the mean absolute weight error of every decoder linear weight, int4 asymmetric groups of
   128, for hqq's `optimize_weights_proximal_v2` as its Quantizer calls it (unrounded scale, float
   zero point — a layout compressed-tensors cannot store), the same with the zero point rounded,
   hqq's min-max start, and our round-to-nearest and HQQ outputs decoded from their files.

Prints markdown tables. Usage:
  .venv/bin/python tools/bench_hqq.py [--quantize .build/release/quantize] [--work /tmp/bench-hqq] [--reference]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "fixtures" / "trained-llama"
sys.path.insert(0, str(REPO / "tools"))


def timed(command: list[str]) -> tuple[float, float]:
    """Runs `command` under GNU time; returns (wall seconds, CPU seconds)."""
    run = subprocess.run(["/usr/bin/time", "-f", "TIME %e %U %S", *command], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"bench_hqq: {' '.join(command)} failed ({run.returncode}): {run.stderr[-400:]}")
    wall, user, system = map(float, re.findall(r"TIME (\S+) (\S+) (\S+)", run.stderr)[-1])
    return wall, user + system


def evaluate(args) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    runs = []
    for group in (128, 32):
        for asymmetric in (False, True):
            for method in ("rtn", "search", "hqq"):
                name = f"g{group}{'-asym' if asymmetric else ''}-{method}"
                out = work / name
                command = [args.quantize, "--to", "int4", str(MODEL), "--group-size", str(group), "-o", str(out), "--force", "--quiet"]
                command += ["--asymmetric"] if asymmetric else []
                command += ["--search"] if method == "search" else ["--method", method]
                wall, cpu = timed(command)
                runs.append({"name": name, "group": group, "asymmetric": asymmetric, "method": method, "path": str(out), "wall": wall, "cpu": cpu})
    evaluation = subprocess.run([args.quantize, "eval", str(MODEL), *[r["path"] for r in runs], "--text", str(MODEL / "eval.txt"), "--json"],
                                capture_output=True, text=True)
    if evaluation.returncode not in (0, 1):
        sys.exit(f"bench_hqq: quantize eval failed: {evaluation.stderr[-500:]}")
    report = json.loads(evaluation.stdout)
    by_path = {r["path"]: r for r in report["results"]}
    print(f"original PPL {report['original']['perplexity']:.3f} ({report['chunks']} chunks × {report['context']})\n")
    print("| int4 | zero point | method | PPL | mean KLD | KLD / RTN | same top token | wall s | CPU s |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in runs:
        e = by_path[r["path"]]
        base = by_path[next(x["path"] for x in runs if x["group"] == r["group"] and x["asymmetric"] == r["asymmetric"] and x["method"] == "rtn")]
        label = {"rtn": "RTN", "search": "`--search`", "hqq": "`--method hqq`"}[r["method"]]
        print(f"| g{r['group']} | {'asymmetric' if r['asymmetric'] else 'symmetric'} | {label} | {e['perplexity']:.3f} | "
              f"{e['kld']['mean']:.6f} ± {e['kld']['uncertainty']:.6f} | {e['kld']['mean'] / base['kld']['mean']:.2f} | "
              f"{100 * e['sameTopToken']:.2f} % | {r['wall']:.1f} | {r['cpu']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "eval": report}, indent=1) + "\n")


def reference(args) -> None:
    import numpy as np
    import torch
    from hqq.core.optimize import optimize_weights_proximal_v2
    from oracle_check_quantized import SafetensorsSet, unpack

    original = SafetensorsSet(str(MODEL))
    work = Path(args.work)
    ours = {m: SafetensorsSet(str(work / f"g128-asym-{m}")) for m in ("rtn", "hqq")}
    group = 128
    totals = {k: [0.0, 0] for k in ("hqq min-max start", "hqq (float zero)", "hqq, zero rounded", "ours RTN", "ours HQQ")}

    def decoded(out: SafetensorsSet, stem: str, rows: int, columns: int) -> np.ndarray:
        codes = unpack(out.array(stem + "weight_packed"), 4, columns).astype(np.float32) - 8
        scales = out.array(stem + "weight_scale").astype(np.float32)
        zeros = unpack(out.array(stem + "weight_zero_point").T, 4, rows).T.astype(np.float32) - 8
        return ((codes.reshape(rows, -1, group) - zeros[:, :, None]) * scales[:, :, None]).reshape(rows, columns)

    for name in original.order:
        if not re.search(r"layers\.\d+\..*_proj\.weight$", name):
            continue
        w = original.array(name).astype(np.float32)
        rows, columns = w.shape
        stem = name[: -len("weight")]
        flat = torch.from_numpy(w.reshape(-1, group).copy())
        # hqq's Quantizer.quantize (axis=1): scale = 15 / (max - min), zero = -min * scale, codes 0..15.
        lo, hi = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
        scale = (15.0 / (hi - lo)).clamp(max=2e4)
        zero = -lo * scale
        start = (torch.round(flat * scale + zero).clamp(0, 15) - zero) / scale
        codes, scale_h, zero_h = optimize_weights_proximal_v2(flat, scale, zero, min_max=[0, 15], axis=1, device="cpu")
        refined = (codes - zero_h) / scale_h
        zr = torch.round(zero_h)
        rounded = (torch.round(flat * scale_h + zr).clamp(0, 15) - zr) / scale_h
        for key, values in (("hqq min-max start", start.numpy().reshape(rows, columns)), ("hqq (float zero)", refined.numpy().reshape(rows, columns)),
                            ("hqq, zero rounded", rounded.numpy().reshape(rows, columns)),
                            ("ours RTN", decoded(ours["rtn"], stem, rows, columns)), ("ours HQQ", decoded(ours["hqq"], stem, rows, columns))):
            totals[key][0] += float(np.abs(values - w).sum())
            totals[key][1] += w.size
    base = totals["ours RTN"][0] / totals["ours RTN"][1]
    print("\nint4 asymmetric g128, every decoder linear weight of the fixture (hqq: unrounded F32 scales):\n")
    print("| weights from | mean abs error | / ours RTN |")
    print("| --- | ---: | ---: |")
    for key, (total, count) in totals.items():
        print(f"| {key} | {total / count:.6e} | {total / count / base:.3f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quantize", default=str(REPO / ".build" / "release" / "quantize"))
    parser.add_argument("--work", default="/tmp/bench-hqq")
    parser.add_argument("--json")
    parser.add_argument("--reference", action="store_true", help="also compare weight errors with the hqq package's solver")
    args = parser.parse_args()
    if not os.access(args.quantize, os.X_OK):
        sys.exit(f"bench_hqq: no quantize binary at {args.quantize}: swift build -c release --product quantize")
    evaluate(args)
    if args.reference:
        reference(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
