#!/usr/bin/env python3
"""Runs `quantize fit` on every measured row of Sources/Fit/Resources/validation.json and prints
predicted vs measured, the error of each row, the median absolute error and the worst ratio.

Usage: python3 tools/fit_validate.py [--binary .build/debug/quantize] [--markdown]
Exit status 1 when the targets (median |error| <= 15 %, no row off by more than 2x) are missed.
"""
import argparse, json, os, statistics, subprocess, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

def predict(binary, r):
    args = [binary, "fit", r["model"], "--gpu", r["gpu"], "--variant", r["variant"], "--engine", r["engine"],
            "--input-tokens", str(r["inputTokens"]), "--output-tokens", str(r["outputTokens"]),
            "--concurrency", str(r["concurrency"]), "--kv-dtype", r["kvDtype"], "--json",
            "--offload", r.get("offload", "none")]
    run = subprocess.run(args, capture_output=True, text=True)
    if run.returncode not in (0, 1):
        return None, run.stderr.strip()
    out = json.loads(run.stdout)
    m = r["metric"]
    try:
        if m == "throughput": return out["throughput"]["outputTokensPerSecond"], None
        if m == "decodePerUser": return out["decode"]["tokensPerSecondPerUser"], None
        if m == "stepSeconds": return out["decode"]["stepSeconds"], None
        if m == "decodeTotal": return out["decode"]["tokensPerSecondTotal"], None
        if m == "ttft": return out["prefill"]["ttftSeconds"], None
        if m == "prefillTokensPerSecond": return out["prefill"]["tokensPerSecond"], None
        if m == "e2e": return out["prefill"]["ttftSeconds"] + r["outputTokens"] * out["decode"]["stepSeconds"], None
        if m == "e2eTokensPerSecond":
            e2e = out["prefill"]["ttftSeconds"] + r["outputTokens"] * out["decode"]["stepSeconds"]
            return r["concurrency"] * r["outputTokens"] / e2e, None
        if m == "offloadStream":
            return next(p["tokensPerSecond"] for p in out["offload"] if p["mode"] == "stream"), None
    except (KeyError, TypeError, StopIteration):
        return None, "does not fit" if not out.get("fits") else "no estimate"
    return None, f"unknown metric {m}"

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "debug", "quantize"))
    parser.add_argument("--markdown", action="store_true")
    a = parser.parse_args()
    data = json.load(open(os.path.join(ROOT, "Sources", "Fit", "Resources", "validation.json")))
    results = []
    for r in data["rows"]:
        value, problem = predict(a.binary, r)
        results.append((r, value, problem))
    errors, ratios = [], []
    lines = ["| row | model | variant | hardware | engine | metric | measured | predicted | error |", "|---|---|---|---|---|---|---|---|---|"]
    for r, value, problem in results:
        if value is None:
            lines.append(f"| {r['id']} | {r['model']} | {r['variant']} | {r['gpu']} | {r['engine']} | {r['metric']} | {r['measured']:.4g} | {problem} | — |")
            ratios.append(float("inf")); errors.append(float("inf"))
            continue
        error = value / r["measured"] - 1
        errors.append(abs(error)); ratios.append(max(value / r["measured"], r["measured"] / value))
        lines.append(f"| {r['id']} | {r['model']} | {r['variant']} | {r['gpu']} | {r['engine']} | {r['metric']} | {r['measured']:.4g} | {value:.4g} | {error:+.1%} |")
    by_engine = {}
    for (r, _, _), e in zip(results, errors):
        by_engine.setdefault(r["engine"], []).append(e)
    engine_lines = [f"- {name}: {len(v)} rows, median |error| {statistics.median(v):.1%}, largest {max(v):.1%}" for name, v in by_engine.items()]
    median = statistics.median(errors)
    worst = max(ratios)
    worst_row = results[ratios.index(worst)][0]["id"]
    summary = f"{len(results)} rows: median |error| {median:.1%}, worst row {worst_row} off by {worst:.2f}x (targets: median <= 15 %, worst <= 2x)"
    print("\n".join(lines)); print()
    print("\n".join(engine_lines)); print()
    print(summary)
    return 0 if median <= 0.15 and worst <= 2 else 1

if __name__ == "__main__":
    sys.exit(main())
