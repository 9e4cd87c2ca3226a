#!/usr/bin/env python3
"""AWQ against round-to-nearest and llm-compressor's AWQ on the trained fixture.

1. Calibration windows from the fixture's training text (tools/make_calibration.py; disjoint from
   eval.txt), written once as JSON so that both tools calibrate on the same tokens.
2. Ours (`quantize`, release build): int4 g128 and g32 symmetric, round-to-nearest and
   `--method awq`; wall time, CPU time and peak RSS from GNU time.
3. llm-compressor's AWQModifier + QuantizationModifier (tools/llmcompressor_reference.py awq: its
   default llama mappings, duo_scaling, 20 grid points, sequential pipeline, CPU, nice -n 19) at
   g128 and g32 on the same windows; the same measures of the whole process (Python start,
   imports, model load, oneshot, save).
4. `quantize eval` of every output against the original on fixtures/trained-llama/eval.txt (19
   chunks × 512, llama-perplexity's protocol): PPL and mean KLD.

Prints a markdown table and writes the raw results to --json.
Usage: .venv-ref/bin/python tools/bench_awq.py [--samples 32] [--length 512] [--work /tmp/bench-awq] [--reuse]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gptq import MODEL, REPO, measured, score_and_print, timed  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--work", default="/tmp/bench-awq")
    parser.add_argument("--reuse", action="store_true", help="keep outputs that already exist (llm-compressor's take minutes)")
    parser.add_argument("--quantize", default=str(REPO / ".build" / "release" / "quantize"))
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for both tools (default 1, as tools/bench_gptq.py: fair on a shared machine)")
    parser.add_argument("--groups", default="128,32")
    parser.add_argument("--json")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    groups = [int(g) for g in args.groups.split(",")]

    calibration = work / f"calibration-{args.samples}x{args.length}.json"
    if not calibration.exists():
        subprocess.run([python, str(REPO / "tools" / "make_calibration.py"), "--samples", str(args.samples), "--length", str(args.length),
                        "-o", str(calibration)], check=True)
    runs = []

    def fresh(out: Path, log: Path) -> bool:
        return not (args.reuse and out.exists() and log.exists() and "Maximum resident" in log.read_text())

    for group in groups:
        base = ["--to", "int4", "--group-size", str(group), str(MODEL), "--no-check", "--quiet", "--force", "--threads", str(args.threads)]
        awq = ["--method", "awq", "--calibration", str(calibration), "--calibration-samples", str(args.samples),
               "--calibration-length", str(args.length)]
        for label, extra in [("RTN", []), ("AWQ", awq)]:
            out = work / f"ours-g{group}-{label.lower()}"
            log = out.with_suffix(".log")
            if fresh(out, log):
                timed([args.quantize, *base, *extra, "-o", str(out)], log)
            runs.append({"tool": "quantize", "method": label, "group": group, "path": str(out), **measured(log)})
        out = work / f"llmcompressor-g{group}-awq"
        log = out.with_suffix(".log")
        if fresh(out, log):
            timed([python, str(REPO / "tools" / "llmcompressor_reference.py"), "awq", str(MODEL), str(out),
                   "--calibration", str(calibration), "--group-size", str(group), "--threads", str(args.threads)], log)
        runs.append({"tool": "llm-compressor", "method": "AWQ", "group": group, "path": str(out), **measured(log)})

    report = score_and_print(args.quantize, runs, groups, "bench_awq", note=f"; calibration {args.samples} × {args.length} tokens")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "eval": report}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
