#!/usr/bin/env python3
"""Checks fit's CPU model (`quantize fit MODEL --device local`) against llama-bench on this machine.

    python3 tools/fit_cpu_check.py [--rounds 3] [--threads 2] [--nice 0] [--json OUT.json]

Writes its own GGUFs under --work (default /tmp/fit-cpu-check; kept between runs): a llama-shaped
synthetic F16 GGUF from tools/make_synthetic.py (--gigabytes, default 3: hidden 4096, 6 layers,
1.57 B parameters) quantized by our `quantize --to` to q4_k_m, q4_0 and q8_0 (0.95-1.9 GB, far
beyond the caches, so decode reads memory), and the trained fixture (fixtures/trained-llama,
converted by `quantize --to q8_0`, 3 MB: a case where per-layer costs dominate).

Each round runs, for every model, `quantize fit MODEL --device local --json` twice (each probes this
machine: once with --input-tokens P for the prefill, once with 1 input token for llama-bench's
decode test, which starts from an empty cache), then `llama-bench -m MODEL -p P -n N -t T -r R -o json`, then the probe again, so the
probe and llama-bench see the same machine load; the prediction is the mean of the two probes'.
Measured speeds are llama-bench's fastest repetition (the probe is a best-of-passes too); its
mean is recorded as well. Both run at the same --nice. The tables give, per model and overall,
the median of predicted/measured over rounds, and the spread of the ratio and of llama-bench's
speed across rounds (what the machine load did to each), with the load average during the runs.

llama-bench comes from $LLAMA_CPP_DIR/bin (tools/build_llama_cpp.sh builds it from the llama-cpp-python
sdist on PyPI); quantize from --binary (default .build/debug/quantize; build first:
swift build --product quantize). make_synthetic needs the gguf package (.venv from tools/setup.sh).
Exit status 1 when a median misses the 15 % target.
"""
import argparse, json, os, statistics, subprocess, sys, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def run(cmd, nice, **kw):
    full = (["nice", "-n", str(nice)] if nice else []) + cmd
    return subprocess.run(full, capture_output=True, text=True, **kw)


def python_with_gguf():
    for candidate in (os.path.join(ROOT, ".venv", "bin", "python"), sys.executable):
        if os.path.exists(candidate) and subprocess.run([candidate, "-c", "import gguf, numpy"], capture_output=True).returncode == 0:
            return candidate
    sys.exit("fit_cpu_check: no Python with the gguf package; run tools/setup.sh")


def prepare(a):
    os.makedirs(a.work, exist_ok=True)
    models = []
    synthetic = os.path.join(a.work, f"synthetic-{a.gigabytes:g}gb-f16.gguf")
    if not os.path.exists(synthetic):
        r = subprocess.run([python_with_gguf(), os.path.join(ROOT, "tools", "make_synthetic.py"), "--gigabytes", str(a.gigabytes),
                            "--format", "gguf", synthetic], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"make_synthetic failed: {r.stderr}")
    for variant in a.variants:
        path = synthetic if variant == "f16" else os.path.join(a.work, f"synthetic-{a.gigabytes:g}gb-{variant}.gguf")
        if not os.path.exists(path):
            r = subprocess.run([a.binary, "--to", variant, synthetic, "-o", path, "--quiet"], capture_output=True, text=True)
            if r.returncode not in (0, 1) or not os.path.exists(path):
                sys.exit(f"quantize --to {variant} failed: {r.stderr}")
        models.append((f"synthetic {a.gigabytes:g} GB {variant}", variant, path))
    if not a.no_tiny:
        tiny = os.path.join(a.work, "trained-llama-q8_0.gguf")
        if not os.path.exists(tiny):
            r = subprocess.run([a.binary, "--to", "q8_0", os.path.join(ROOT, "fixtures", "trained-llama"), "-o", tiny, "--quiet"],
                               capture_output=True, text=True)
            if r.returncode not in (0, 1) or not os.path.exists(tiny):
                sys.exit(f"quantize --to q8_0 fixtures/trained-llama failed: {r.stderr}")
        models.append(("trained fixture q8_0", "q8_0", tiny))
    return models


def predict(a, path):
    """fit's prediction for llama-bench's two tests: prefill of --prompt tokens, and decode of
    --generate tokens from an empty cache (llama-bench's tg test has no prompt), so its decode is
    asked for at 1 input token (context ≈ generate ÷ 2, as in llama-bench)."""
    cpu = {}
    for key, tokens in (("prefill", a.prompt), ("decode", 1)):
        r = run([a.binary, "fit", path, "--device", "local", "--json", "--input-tokens", str(tokens), "--output-tokens", str(a.generate)], a.nice)
        if r.returncode not in (0, 1):
            sys.exit(f"quantize fit failed on {path}: {r.stderr}")
        doc = json.loads(r.stdout)
        result = (doc[0] if isinstance(doc, list) else doc).get("cpu")
        if not result:
            sys.exit(f"quantize fit gave no cpu estimate for {path}")
        if key == "prefill":
            cpu.update({k: v for k, v in result.items() if k.startswith("prefill")})
            cpu["probe"] = result["probe"]
        else:
            cpu.update({k: v for k, v in result.items() if k.startswith("decode")})
            cpu["decodeProbe"] = result["probe"]
    return cpu


def bench(a, path):
    cmd = [a.llama_bench, "-m", path, "-p", str(a.prompt), "-n", str(a.generate), "-t", str(a.threads), "-r", str(a.repetitions), "-o", "json"]
    r = run(cmd, a.nice)
    if r.returncode != 0:
        sys.exit(f"llama-bench failed on {path}: {r.stderr[-2000:]}")
    out = {}
    for test in json.loads(r.stdout):
        key = "prefill" if test["n_prompt"] > 0 else "decode"
        out[key] = {"best": max(test["samples_ts"]), "mean": test["avg_ts"], "samples": test["samples_ts"]}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", default=os.path.join(ROOT, ".build", "debug", "quantize"))
    p.add_argument("--llama-bench", default=os.path.join(os.environ.get("LLAMA_CPP_DIR", os.path.join(ROOT, ".llama.cpp")), "bin", "llama-bench"))
    p.add_argument("--work", default="/tmp/fit-cpu-check")
    p.add_argument("--gigabytes", type=float, default=3)
    p.add_argument("--variants", nargs="+", default=["q4_k_m", "q4_0", "q8_0"])
    p.add_argument("--no-tiny", action="store_true")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--prompt", type=int, default=512)
    p.add_argument("--generate", type=int, default=64)
    p.add_argument("--repetitions", type=int, default=2)
    p.add_argument("--nice", type=int, default=0, help="niceness for both the probe and llama-bench")
    p.add_argument("--json", help="write every round's raw numbers here")
    a = p.parse_args()
    if not os.path.exists(a.llama_bench):
        sys.exit(f"no llama-bench at {a.llama_bench}; set LLAMA_CPP_DIR (tools/build_llama_cpp.sh)")
    models = prepare(a)
    rows = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for round_index in range(a.rounds):
        for name, variant, path in models:
            load_before = os.getloadavg()[0]
            first = predict(a, path)
            measured = bench(a, path)
            second = predict(a, path)
            load_after = os.getloadavg()[0]
            row = {"round": round_index + 1, "model": name, "variant": variant, "path": path, "bytes": os.path.getsize(path),
                   "load": (load_before + load_after) / 2,
                   "predictedDecode": (first["decodeTokensPerSecond"] + second["decodeTokensPerSecond"]) / 2,
                   "predictedPrefill": (first["prefillTokensPerSecond"] + second["prefillTokensPerSecond"]) / 2,
                   "probes": [first["probe"], second["probe"]], "decodeProbes": [first["decodeProbe"], second["decodeProbe"]],
                   "measured": measured,
                   "decodeBound": first["decodeBound"]}
            row["decodeRatio"] = row["predictedDecode"] / measured["decode"]["best"]
            row["prefillRatio"] = row["predictedPrefill"] / measured["prefill"]["best"]
            rows.append(row)
            print(f"round {row['round']} {name}: decode {row['predictedDecode']:.2f} predicted / {measured['decode']['best']:.2f} measured "
                  f"({row['decodeRatio']:.2f}), prefill {row['predictedPrefill']:.1f} / {measured['prefill']['best']:.1f} ({row['prefillRatio']:.2f}), "
                  f"read {first['probe']['readBytesPerSecond'] / 1e9:.1f} GB/s, load {row['load']:.1f}", file=sys.stderr)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"started": started, "arguments": vars(a), "rows": rows}, f, indent=1)

    def spread(values):
        return (max(values) - min(values)) / statistics.median(values) if values else 0

    print(f"llama-bench -p {a.prompt} -n {a.generate} -t {a.threads} -r {a.repetitions} against `quantize fit --device local`, "
          f"{a.rounds} rounds, nice {a.nice}, started {started}\n")
    print("| model | size | decode pred. tok/s | llama-bench tg | ratio (median) | prefill pred. tok/s | llama-bench pp | ratio (median) | ratio spread d/p | llama-bench spread d/p | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
    for name, variant, path in models:
        mine = [r for r in rows if r["model"] == name]
        d = [r["decodeRatio"] for r in mine]
        q = [r["prefillRatio"] for r in mine]
        print(f"| {name} | {mine[0]['bytes'] / 1e9:.2f} GB | {statistics.median(r['predictedDecode'] for r in mine):.2f} | "
              f"{statistics.median(r['measured']['decode']['best'] for r in mine):.2f} | {statistics.median(d):.2f} | "
              f"{statistics.median(r['predictedPrefill'] for r in mine):.1f} | {statistics.median(r['measured']['prefill']['best'] for r in mine):.1f} | "
              f"{statistics.median(q):.2f} | {spread(d):.0%} / {spread(q):.0%} | "
              f"{spread([r['measured']['decode']['best'] for r in mine]):.0%} / {spread([r['measured']['prefill']['best'] for r in mine]):.0%} | "
              f"{statistics.median(r['load'] for r in mine):.1f} |")
    decode_error = statistics.median(abs(r["decodeRatio"] - 1) for r in rows)
    prefill_error = statistics.median(abs(r["prefillRatio"] - 1) for r in rows)
    print(f"\nall {len(rows)} runs: median |predicted - measured| / measured: decode {decode_error:.1%}, prefill {prefill_error:.1%} "
          f"(median ratio {statistics.median(r['decodeRatio'] for r in rows):.2f} / {statistics.median(r['prefillRatio'] for r in rows):.2f}); "
          f"worst decode {max(max(r['decodeRatio'], 1 / r['decodeRatio']) for r in rows):.2f}x, "
          f"worst prefill {max(max(r['prefillRatio'], 1 / r['prefillRatio']) for r in rows):.2f}x; target median <= 15 %")
    return 0 if decode_error <= 0.15 and prefill_error <= 0.15 else 1


if __name__ == "__main__":
    sys.exit(main())
