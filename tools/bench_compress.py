#!/usr/bin/env python3
"""Benchmarks `quantize compress` (byte-plane zstd container, formats/compressed.md) against ZipNN
and `zstd -3` on the same bytes, in one run, and prints Markdown tables.

    .venv-ref/bin/python tools/bench_compress.py [--gigabytes 1] [--repeats 3] [--keep] [--workdir DIR]

Inputs (made in a temporary directory, deleted at the end unless --keep):
  - the fixtures: fixtures/tiny-llama (BF16 shards), fixtures/tiny-llama.gguf (F16/F32);
  - our outputs of the fixture model: fp8, int8 (pack-quantized), int4 (g128) — `quantize --to S`;
  - synthetic llama-shaped checkpoints from tools/make_synthetic.py (normal(0, 0.02) weights rounded
    to the dtype, ones for norms): BF16 of --gigabytes (≥ 1 GB by default), F16 and F32 of 0.1 GB, and
    a 0.25 GB BF16 one quantized to fp8 / int8 / int4 for realistic quantized outputs.

Per (file, element type), the same tensor bytes go through
  - ours: QuantizeBench's `compress` group (the chunk codec `quantize compress` uses: 1 MiB chunks,
    byte planes, literals-only zstd, XXH64 per chunk), one core and all cores, compress and decompress;
  - ZipNN (`zipnn` from PyPI, in .venv-ref) with the matching bytearray_dtype (for integer outputs,
    which ZipNN has no mode for, the best of its float8/bfloat16/float32 byte modes), threads=1 and
    threads=all cores. ZipNN bit-reorders its input in place, so each run gets a fresh copy.
Per whole file: `zstd -3` (-T1 and -T0) against `quantize compress` / `quantize decompress` (end to end,
reading the file and writing the container with fsync). GB/s = 10^9 original bytes per second; sizes
are the percentage of the original bytes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORES = os.cpu_count() or 1


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    return min(timed(fn) for _ in range(repeats))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def safetensors_bytes(path: Path, dtype: str) -> bytes:
    """The data of every tensor of `dtype`, in offset order (the bytes the Swift side measures)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        start = 8 + n
        spans = sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__" and v["dtype"] == dtype)
        parts = []
        for a, b in spans:
            f.seek(start + a)
            parts.append(f.read(b - a))
    return b"".join(parts)


def gguf_bytes(path: Path, type_name: str) -> bytes:
    import gguf  # from .venv-ref or .venv
    reader = gguf.GGUFReader(str(path))
    parts = []
    for tensor in sorted(reader.tensors, key=lambda t: t.data_offset):
        if tensor.tensor_type.name == type_name:
            parts.append(bytes(tensor.data.tobytes()))
    return b"".join(parts)


ZIPNN_MODE = {"BF16": ["bfloat16"], "F16": ["float16"], "F32": ["float32"], "F8_E4M3": ["float8_e4m3fn"],
              "F8_E5M2": ["float8_e5m2"]}
INTEGER_MODES = ["float8_e4m3fn", "bfloat16", "float32"]


def zipnn_measure(data: bytes, dtype: str, repeats: int) -> dict:
    import zipnn
    modes = ZIPNN_MODE.get(dtype, INTEGER_MODES)
    best = None
    for mode in modes:
        if mode in ("bfloat16", "float16") and len(data) % 2 or mode == "float32" and len(data) % 4:
            continue
        try:
            probe = zipnn.ZipNN(input_format="byte", bytearray_dtype=mode, threads=1)
            size = len(probe.compress(bytearray(data)))
        except Exception:
            continue
        if best is None or size < best[1]:
            best = (mode, size)
    if best is None:
        return {}
    mode, size = best
    result = {"mode": mode, "stored": size}
    for threads, key in ((1, "1"), (CORES, "N")):
        z = zipnn.ZipNN(input_format="byte", bytearray_dtype=mode, threads=threads)
        copies = [bytearray(data) for _ in range(repeats + 1)]
        packed = z.compress(bytearray(data))
        back = z.decompress(packed)
        if bytes(back) != data:
            raise SystemExit(f"ZipNN did not round-trip {dtype} ({mode})")
        times = [timed(lambda c=c: z.compress(c)) for c in copies]
        result["compress" + key] = len(data) / min(times[1:] or times) / 1e9
        result["decompress" + key] = len(data) / best_time(lambda: z.decompress(packed), repeats) / 1e9
    return result


def zstd_measure(path: Path, work: Path, repeats: int) -> dict:
    out = work / (path.name + ".zst")
    run(["zstd", "-3", "-T1", "-q", "-f", str(path), "-o", str(out)])
    size = out.stat().st_size
    devnull = subprocess.DEVNULL
    c1 = best_time(lambda: run(["zstd", "-3", "-T1", "-q", "-c", str(path)], stdout=devnull), repeats)
    cn = best_time(lambda: run(["zstd", "-3", "-T0", "-q", "-c", str(path)], stdout=devnull), repeats)
    d1 = best_time(lambda: run(["zstd", "-d", "-q", "-c", str(out)], stdout=devnull), repeats)
    out.unlink()
    n = path.stat().st_size
    return {"stored": size, "compress1": n / c1 / 1e9, "compressN": n / cn / 1e9, "decompress1": n / d1 / 1e9}


def ours_end_to_end(quantize: Path, path: Path, work: Path, repeats: int) -> dict:
    packed = work / (path.name + ".bpz")
    back = work / ("back-" + path.name)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    c = best_time(lambda: run([str(quantize), "compress", str(path), "-o", str(packed), "--force"], **quiet), repeats)
    d = best_time(lambda: run([str(quantize), "decompress", str(packed), "-o", str(back), "--force"], **quiet), repeats)
    if back.read_bytes() != path.read_bytes():
        raise SystemExit(f"quantize decompress did not restore {path}")
    size = packed.stat().st_size
    n = path.stat().st_size
    packed.unlink()
    back.unlink()
    return {"stored": size, "compressN": n / c / 1e9, "decompressN": n / d / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=1.0, help="size of the large BF16 checkpoint (default 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the generated inputs")
    parser.add_argument("--workdir", type=Path, help="where to make inputs (default: a new temporary directory)")
    args = parser.parse_args()

    python = sys.executable
    print(f"command: {' '.join([Path(python).name] + sys.argv)}", flush=True)
    run(["swift", "build", "-c", "release", "--product", "quantize"], cwd=ROOT, stdout=sys.stderr)
    run(["swift", "build", "-c", "release", "--product", "QuantizeBench"], cwd=ROOT, stdout=sys.stderr)
    quantize = ROOT / ".build/release/quantize"
    bench = ROOT / ".build/release/QuantizeBench"
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-compress-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        synth = ROOT / "tools/make_synthetic.py"
        made = {}
        for label, gigabytes, dtype in (("bf16-large", args.gigabytes, "bf16"), ("f16", 0.1, "f16"), ("f32", 0.1, "f32"),
                                        ("bf16-small", 0.25, "bf16")):
            out = work / f"synthetic-{label}"
            if not out.exists():
                run([python, str(synth), "--gigabytes", str(gigabytes), "--format", "safetensors", "--dtype", dtype,
                     "--quiet", str(out)], stderr=subprocess.DEVNULL)
            made[label] = out
        outputs = {}
        for source_label, source in (("fixture", ROOT / "fixtures/tiny-llama"), ("synthetic", made["bf16-small"])):
            for scheme in ("fp8", "int8", "int4"):
                out = work / f"{source_label}-{scheme}"
                if not out.exists():
                    run([str(quantize), "--to", scheme, str(source), "-o", str(out), "--no-check", "--quiet"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                outputs[f"{source_label}-{scheme}"] = out

        def weights(directory: Path) -> list[Path]:
            return sorted(p for p in directory.iterdir() if p.suffix in (".safetensors", ".gguf"))

        files: list[tuple[str, Path]] = []
        for p in weights(ROOT / "fixtures/tiny-llama"):
            files.append(("fixture tiny-llama", p))
        files.append(("fixture tiny-llama.gguf", ROOT / "fixtures/tiny-llama.gguf"))
        for label, directory in outputs.items():
            for p in weights(directory):
                files.append((f"{label} output", p))
        for label in ("bf16-large", "f16", "f32"):
            for p in weights(made[label]):
                files.append((f"synthetic {label}", p))
        label_of = {str(p): label for label, p in files}

        env = dict(os.environ, QUANTIZE_BENCH_FILES=":".join(str(p) for _, p in files))
        swift = subprocess.run([str(bench), "compress", "--repeats", str(args.repeats)], env=env, check=True,
                               capture_output=True, text=True).stdout
        results = [json.loads(line[len("RESULT "):]) for line in swift.splitlines() if line.startswith("RESULT ")]

        # Aggregate per (input label, dtype): sums of bytes and times.
        rows = {}
        for r in results:
            key = (label_of[r["file"]], r["dtype"])
            path = Path(r["file"])
            data = gguf_bytes(path, r["dtype"]) if path.suffix == ".gguf" else safetensors_bytes(path, r["dtype"])
            if len(data) != r["bytes"]:
                raise SystemExit(f"{path} {r['dtype']}: {len(data)} bytes here, {r['bytes']} measured by QuantizeBench")
            z = zipnn_measure(data, r["dtype"], args.repeats)
            agg = rows.setdefault(key, {"bytes": 0, "ours": 0, "zipnn": 0, "mode": z.get("mode", "-"), "t": {}})
            agg["bytes"] += r["bytes"]
            agg["ours"] += r["stored"]
            agg["zipnn"] += z.get("stored", r["bytes"])
            for name in ("compress1", "compressN", "decompress1", "decompressN"):
                agg["t"].setdefault("ours " + name, 0.0)
                agg["t"]["ours " + name] += r["bytes"] / r[name] / 1e9
                if name in z:
                    agg["t"].setdefault("zipnn " + name, 0.0)
                    agg["t"]["zipnn " + name] += r["bytes"] / z[name] / 1e9
            agg.setdefault("memcpy", 0.0)
            agg["memcpy"] += r["bytes"] / r["memcpy"] / 1e9

        def rate(agg, name):
            t = agg["t"].get(name)
            return f"{agg['bytes'] / t / 1e9:.2f}" if t else "-"

        print(f"\nmachine: {CORES} cores; GB/s = 10^9 original bytes per second; best of {args.repeats} runs\n")
        print(f"| input | type | MB | ours size | ZipNN size (mode) | compress 1 core ours / ZipNN | compress {CORES} cores ours / ZipNN "
              f"| decompress 1 core ours / ZipNN | decompress {CORES} cores ours / ZipNN | memcpy |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for (label, dtype), agg in rows.items():
            n = agg["bytes"]
            print(f"| {label} | {dtype} | {n / 1e6:.1f} | {100 * agg['ours'] / n:.3f} % | {100 * agg['zipnn'] / n:.3f} % ({agg['mode']}) "
                  f"| {rate(agg, 'ours compress1')} / {rate(agg, 'zipnn compress1')} | {rate(agg, 'ours compressN')} / {rate(agg, 'zipnn compressN')} "
                  f"| {rate(agg, 'ours decompress1')} / {rate(agg, 'zipnn decompress1')} | {rate(agg, 'ours decompressN')} / {rate(agg, 'zipnn decompressN')} "
                  f"| {n / agg['memcpy'] / 1e9:.2f} |")

        print("\nAll tensor bytes of each input (every type together)\n")
        print("| input | MB | ours size | ZipNN size |")
        print("|---|---:|---:|---:|")
        totals = {}
        for (label, _), agg in rows.items():
            t = totals.setdefault(label, [0, 0, 0])
            t[0] += agg["bytes"]; t[1] += agg["ours"]; t[2] += agg["zipnn"]
        for label, (n, ours, zipped) in totals.items():
            print(f"| {label} | {n / 1e6:.1f} | {100 * ours / n:.3f} % | {100 * zipped / n:.3f} % |")

        print("\nWhole files: `quantize compress` / `quantize decompress` end to end (all cores, fsync'd output) vs `zstd -3`\n")
        print("| file | MB | ours size | zstd -3 size | ours compress | zstd -3 -T1 / -T0 compress | ours decompress | zstd -d |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for label, path in files:
            n = path.stat().st_size
            if n < 10_000_000:
                continue  # end to end, a small file measures process start and fsync, not the codec
            ours = ours_end_to_end(quantize, path, work, args.repeats)
            zs = zstd_measure(path, work, args.repeats)
            print(f"| {label} {path.name} | {n / 1e6:.1f} | {100 * ours['stored'] / n:.2f} % | {100 * zs['stored'] / n:.2f} % "
                  f"| {ours['compressN']:.2f} | {zs['compress1']:.2f} / {zs['compressN']:.2f} | {ours['decompressN']:.2f} | {zs['decompress1']:.2f} |",
                  flush=True)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
