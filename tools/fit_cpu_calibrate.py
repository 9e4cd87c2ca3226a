#!/usr/bin/env python3
"""Fits the constants of fit's CPU model (`CPUModel.llamaCpp`, Sources/Fit/CPUModel.swift) to the
raw runs of tools/fit_cpu_check.py, and says how well they hold out of sample.

    .venv/bin/python tools/fit_cpu_calibrate.py RUNS.json [MORE_RUNS.json…] [--holdout OTHER_RUNS.json] [--binary B]

RUNS.json is what `fit_cpu_check.py --json` writes: per model and round the two probes
(`quantize fit --device local`'s `cpu.probe`) and llama-bench's tg/pp. The model sizes come from
the GGUFs themselves (still at the paths the runs name): decode's per-family bytes and
multiply-adds from `quantize fit MODEL --json` (its `cpu.decodeFamilies`, which do not depend on
the probe), prefill's per-ggml-type weights from gguf-py.

Decode, per probe: stretch × Σ_family [max(m, c) + overlap × min(m, c)], m = bytes ÷ (read ×
bandwidth factor), c = multiply-adds ÷ (dot rate × kernel factor); predicted tok/s = the mean over
the run's two probes of 1 ÷ that. The bandwidth factor, overlap and the family kernel factors are
chosen on a grid minimising the median |predicted/measured − 1| (+ 2 % of the worst ratio); the
leave-one-model-out error refits the grid without each model in turn.

Prefill (512 tokens): (Σ_type weights × T ÷ (dot rate of the type's family × factor[type]) + the
attention at the F16 rate + layers × per-layer cost) ÷ sustained share. Each type's factor is set
so that the file holding it matches llama-bench (median over rounds; mixtures solved after their
other types), the per-layer cost from the trained fixture; three sweeps. A type held by a single
file is fitted exactly to it, so the prefill in-sample error measures the round-to-round spread
only; --holdout gives runs not used in the fit.
"""
import argparse, json, os, statistics, subprocess, sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
FAMILY = {"F16": "f16", "BF16": "f16", "F32": "f16", "Q8_0": "q8_0", "Q4_0": "q4_0", "Q4_1": "q4_0", "Q5_0": "q4_0",
          "Q5_1": "q4_0", "Q4_K": "q4_k", "Q5_K": "q4_k", "Q6_K": "q4_k", "Q3_K": "q4_k", "Q2_K": "q4_k"}
PROMPT = 512


def model_sizes(paths, binary):
    import gguf
    sizes = {}
    for path in paths:
        # Decode as llama-bench's tg32 runs it: from an empty cache (fit_cpu_check asks the same).
        r = subprocess.run([binary, "fit", path, "--device", "local", "--json", "--input-tokens", "1", "--output-tokens", "32"],
                           capture_output=True, text=True)
        if r.returncode not in (0, 1):
            sys.exit(f"quantize fit failed on {path}: {r.stderr}")
        doc = json.loads(r.stdout)
        cpu = (doc[0] if isinstance(doc, list) else doc)["cpu"]
        reader = gguf.GGUFReader(path)
        arch = reader.fields["general.architecture"].contents()
        field = lambda key: int(reader.fields[f"{arch}.{key}"].contents())
        prefill = {}
        for t in reader.tensors:
            if len(t.shape) < 2 or t.name.startswith("token_embd"):
                continue
            key = (t.tensor_type.name, t.name.startswith("output"))
            prefill[key] = prefill.get(key, 0) + int(t.n_elements)
        heads = field("attention.head_count")
        sizes[path] = {"decode": [f for f in cpu["decodeFamilies"] if f["multiplyAdds"] > 0], "prefill": prefill,
                       "layers": field("block_count"), "heads": heads, "headDim": field("embedding_length") // heads}
    return sizes


def decode_rate(row, size, p):
    bandwidth, overlap, factors = p
    total = 0
    for probe in row.get("decodeProbes", row["probes"]):
        seconds = 0
        for f in size["decode"]:
            family = "f16" if f["family"] == "attention" else f["family"]
            m = f["bytes"] / (probe["readBytesPerSecond"] * bandwidth)
            c = f["multiplyAdds"] / (probe["dotWeightsPerSecond"][family] * factors.get(family, 1))
            seconds += max(m, c) + overlap * min(m, c)
        total += 1 / (seconds * probe["synchronizedStretch"])
    return total / len(row.get("decodeProbes", row["probes"]))


def prefill_rate(row, size, factors, per_layer):
    total = 0
    for probe in row["probes"]:
        dots = probe["dotWeightsPerSecond"]
        seconds = sum(n * (1 if output else PROMPT) / (dots[FAMILY.get(t, "q8_0")] * factors.get(t, 1))
                      for (t, output), n in size["prefill"].items())
        seconds += 2 * size["layers"] * size["heads"] * size["headDim"] * PROMPT * PROMPT / (dots["f16"] * factors.get("F16", 1))
        seconds += per_layer * size["layers"]
        total += PROMPT / (seconds / probe["sustainedShare"])
    return total / len(row["probes"])


def errors(ratios):
    return statistics.median(abs(x - 1) for x in ratios), max(max(x, 1 / x) for x in ratios)


def fit_decode(rows, sizes):
    best = None
    for bw in [x / 100 for x in range(50, 101, 2)]:
        for overlap in [0, 0.1, 0.2, 0.3, 0.5]:
            for k4 in [1, 1.5, 2]:
                for k8 in [1, 1.25, 1.5]:
                    for k16 in [1, 1.5, 2]:
                        p = (bw, overlap, {"q4_0": k4, "q8_0": k8, "q4_k": 1, "f16": k16})
                        median, worst = errors([decode_rate(r, sizes[r["path"]], p) / r["measured"]["decode"]["best"] for r in rows])
                        score = median + 0.02 * worst
                        if best is None or score < best[0]:
                            best = (score, p)
    return best[1]


def fit_prefill(rows, sizes):
    """Per-type factors, each owned by the first file (fewest types first) whose largest type it is."""
    factors, owners, per_layer = {}, {}, 0.0
    # Models narrower than 1024 (the trained fixture, 256) are all per-op cost: they fit that cost.
    tiny = [r for r in rows if sizes[r["path"]]["heads"] * sizes[r["path"]]["headDim"] < 1024]
    files = sorted({r["path"] for r in rows if r not in tiny}, key=lambda path: (len({t for t, _ in sizes[path]["prefill"]}), path))
    for path in files:
        for t, n in sorted(((t, n) for (t, output), n in sizes[path]["prefill"].items() if not output), key=lambda tn: -tn[1]):
            if t not in owners:
                owners[t] = path
                break
    for _ in range(3):
        for t, path in owners.items():
            mine = [r for r in rows if r["path"] == path]
            lo, hi = 0.05, 50.0
            for _ in range(60):
                factors[t] = (lo * hi) ** 0.5
                ratio = statistics.median(prefill_rate(r, sizes[path], factors, per_layer) / r["measured"]["prefill"]["best"] for r in mine)
                lo, hi = (lo, factors[t]) if ratio > 1 else (factors[t], hi)
        if tiny:
            lo, hi = 0.0, 0.1
            for _ in range(60):
                per_layer = (lo + hi) / 2
                ratio = statistics.median(prefill_rate(r, sizes[r["path"]], factors, per_layer) / r["measured"]["prefill"]["best"] for r in tiny)
                lo, hi = (per_layer, hi) if ratio > 1 else (lo, per_layer)
    print("prefill factor owners: " + ", ".join(f"{t} <- {os.path.basename(p)}" for t, p in owners.items()))
    return factors, per_layer


def report(name, rows, sizes, decode, prefill):
    d = [decode_rate(r, sizes[r["path"]], decode) / r["measured"]["decode"]["best"] for r in rows]
    q = [prefill_rate(r, sizes[r["path"]], *prefill) / r["measured"]["prefill"]["best"] for r in rows]
    print(f"\n{name}: {len(rows)} runs\n\n| model | round | load | decode ratio | prefill ratio |\n|---|---:|---:|---:|---:|")
    for r, a, b in zip(rows, d, q):
        print(f"| {r['model']} | {r['round']} | {r['load']:.1f} | {a:.2f} | {b:.2f} |")
    (dm, dw), (pm, pw) = errors(d), errors(q)
    print(f"\ndecode median error {dm:.1%}, worst {dw:.2f}x; prefill median error {pm:.1%}, worst {pw:.2f}x")


def main():
    a = argparse.ArgumentParser()
    a.add_argument("runs", nargs="+", help="one or more fit_cpu_check.py --json files to fit on")
    a.add_argument("--holdout", action="append", default=[], help="runs of tools/fit_cpu_check.py --json not used in the fit (repeatable)")
    a.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "quantize"))
    args = a.parse_args()
    rows = [row for path in args.runs for row in json.load(open(path))["rows"]]
    held = {path: json.load(open(path))["rows"] for path in args.holdout}
    sizes = model_sizes(sorted({r["path"] for r in rows + [h for hs in held.values() for h in hs]}), args.binary)
    decode = fit_decode(rows, sizes)
    prefill = fit_prefill(rows, sizes)
    print(f"decode: bandwidth factor {decode[0]}, overlap {decode[1]}, kernel factors {decode[2]}")
    print(f"prefill: factors {{{', '.join(f'{k}: {v:.2f}' for k, v in sorted(prefill[0].items()))}}}, per layer {prefill[1] * 1e3:.2f} ms")
    report("in sample", rows, sizes, decode, prefill)
    loo = []
    for model in sorted({r["model"] for r in rows}):
        p = fit_decode([r for r in rows if r["model"] != model], sizes)
        loo += [decode_rate(r, sizes[r["path"]], p) / r["measured"]["decode"]["best"] for r in rows if r["model"] == model]
    median, worst = errors(loo)
    print(f"\ndecode leave-one-model-out ({len(loo)} runs): median error {median:.1%}, worst {worst:.2f}x")
    for path, runs in held.items():
        report(f"holdout {path}", runs, sizes, decode, prefill)


if __name__ == "__main__":
    main()
