#!/usr/bin/env python3
"""GPTQ against round-to-nearest, --search and llm-compressor's GPTQ on the trained fixture.

1. Calibration windows from the fixture's training text (tools/make_calibration.py; disjoint from
   eval.txt), written once as JSON so that both tools calibrate on the same tokens.
2. Ours (`quantize`, release build): int4 g128 and g32, each as round-to-nearest, --search, GPTQ and
   GPTQ --act-order; wall time, CPU time and peak RSS from GNU time.
3. llm-compressor's GPTQModifier (tools/llmcompressor_reference.py gptq, default actorder static,
   sequential pipeline, CPU, nice -n 19) at g128 and g32 on the same windows; the same measures of
   the whole process (Python start, imports, model load, oneshot, save).
4. `quantize eval` of every output against the original on fixtures/trained-llama/eval.txt (19
   chunks × 512, llama-perplexity's protocol): PPL and mean KLD.

Prints a markdown table and writes the raw results to --json.
Usage: .venv-ref/bin/python tools/bench_gptq.py [--samples 128] [--length 512] [--work /tmp/bench-gptq] [--reuse]
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "fixtures" / "trained-llama"


def timed(command: list[str], log: Path) -> None:
    """Runs `command` under GNU time (nice -n 19), its output and time's report in `log`."""
    with open(log, "w") as f:
        run = subprocess.run(["/usr/bin/time", "-v", "nice", "-n", "19", *command], stdout=f, stderr=subprocess.STDOUT)
    if run.returncode not in (0, 1):
        sys.exit(f"bench_gptq: {' '.join(command)} failed ({run.returncode}); see {log}")


def measured(log: Path) -> dict:
    """Wall seconds, CPU seconds (user + system) and peak RSS bytes from GNU time's report in `log`.
    On a shared machine the CPU seconds are the comparable figure: wall time includes waiting."""
    text = log.read_text()
    def field(pattern):
        return re.search(pattern, text).group(1)
    clock = [float(x) for x in field(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)").split(":")]
    wall = sum(v * 60 ** i for i, v in enumerate(reversed(clock)))
    return {"seconds": wall, "cpu_seconds": float(field(r"User time \(seconds\): ([\d.]+)")) + float(field(r"System time \(seconds\): ([\d.]+)")),
            "peak_rss_bytes": int(field(r"Maximum resident set size \(kbytes\): (\d+)")) * 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--work", default="/tmp/bench-gptq")
    parser.add_argument("--reuse", action="store_true", help="keep outputs that already exist (llm-compressor's take minutes)")
    parser.add_argument("--quantize", default=str(REPO / ".build" / "release" / "quantize"))
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for both tools (default 1: on a shared machine torch's two-thread spin waits under nice 19 ran 100× slower)")
    parser.add_argument("--json")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    python = sys.executable

    calibration = work / f"calibration-{args.samples}x{args.length}.json"
    if not calibration.exists():
        subprocess.run([python, str(REPO / "tools" / "make_calibration.py"), "--samples", str(args.samples), "--length", str(args.length),
                        "-o", str(calibration)], check=True)
    runs = []
    for group in (128, 32):
        base = ["--to", "int4", "--group-size", str(group), str(MODEL), "--no-check", "--quiet", "--force", "--threads", str(args.threads)]
        gptq = ["--method", "gptq", "--calibration", str(calibration), "--calibration-samples", str(args.samples),
                "--calibration-length", str(args.length)]
        for label, extra in [("RTN", []), ("--search", ["--search"]), ("GPTQ", gptq), ("GPTQ --act-order", gptq + ["--act-order"])]:
            out = work / f"ours-g{group}-{label.strip('-').replace(' --', '-').replace(' ', '-').lower()}"
            log = out.with_suffix(".log")
            if not (args.reuse and out.exists() and log.exists() and "Maximum resident" in log.read_text()):
                timed([args.quantize, *base, *extra, "-o", str(out)], log)
            runs.append({"tool": "quantize", "method": label, "group": group, "path": str(out), **measured(log)})
        out = work / f"llmcompressor-g{group}-gptq"
        log = out.with_suffix(".log")
        if not (args.reuse and out.exists() and log.exists() and "Maximum resident" in log.read_text()):
            timed([python, str(REPO / "tools" / "llmcompressor_reference.py"), "gptq", str(MODEL), str(out),
                   "--calibration", str(calibration), "--group-size", str(group), "--threads", str(args.threads)], log)
        runs.append({"tool": "llm-compressor", "method": "GPTQ (actorder static)", "group": group, "path": str(out), **measured(log)})

    report = score_and_print(args.quantize, runs, (128, 32), "bench_gptq", uncertainty=False)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "eval": report}, indent=1) + "\n")
    return 0


def score_and_print(quantize: str, runs: list[dict], groups, label: str, note: str = "", uncertainty: bool = True) -> dict:
    """Scores every run's output with one `quantize eval` against the fixture (PPL, mean KLD and its
    uncertainty written into each run) and prints the markdown table, KLD relative to the RTN row of
    each group; returns the eval report."""
    evaluation = subprocess.run([quantize, "eval", str(MODEL), *[r["path"] for r in runs], "--text", str(MODEL / "eval.txt"), "--json"],
                                capture_output=True, text=True)
    if evaluation.returncode != 0:
        sys.exit(f"{label}: quantize eval failed: {evaluation.stderr[-500:]}")
    report = json.loads(evaluation.stdout)
    for run, result in zip(runs, report["results"]):
        run["ppl"] = result["perplexity"]
        run["kld"] = result["kld"]["mean"]
        run["kld_uncertainty"] = result["kld"]["uncertainty"]
    print(f"original PPL {report['original']['perplexity']:.4f}{note}")
    print("| group | tool | method | PPL | mean KLD | KLD / RTN | wall s | CPU s | peak RSS MB |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for group in groups:
        rtn = next(r["kld"] for r in runs if r["group"] == group and r["method"] == "RTN")
        for r in (r for r in runs if r["group"] == group):
            kld = f"{r['kld']:.6f} ± {r['kld_uncertainty']:.6f}" if uncertainty else f"{r['kld']:.6f}"
            print(f"| g{group} | {r['tool']} | {r['method']} | {r['ppl']:.3f} | {kld} | {r['kld'] / rtn:.2f} | "
                  f"{r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['peak_rss_bytes'] / 2**20:.0f} |")
    return report


if __name__ == "__main__":
    sys.exit(main())
