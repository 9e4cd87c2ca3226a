#!/usr/bin/env python3
"""Do `quantize verify --target`'s loader rules agree with the real loaders?

For each case, the verdict of our rules (`verify --target T PATH --json`, layout only) is compared
with what the runtime itself does with the same file:
- transformers: every safetensors layout quantize writes from fixtures/tiny-llama (fp8 per channel
  and 128×128 blocks, int8 pack- and int-quantized, int4 g128/g32 symmetric and asymmetric), loaded
  by AutoModelForCausalLM with one forward pass in the Python that `verify` itself starts
  (QUANTIZE_PYTHON: $ROOT/.venv-ref/bin/python, transformers + compressed-tensors as installed there;
  --overlay DIR puts newer releases in front, e.g. the .venv-ref-newest of tools/check_loads.py).
- llama.cpp: our q8_0 and q4_k_m of fixtures/tiny-llama.gguf, and hand-broken copies made here with
  gguf-py (a tensor dropped, an extra tensor, a wrong shape, the RMS epsilon key removed, a
  bos id outside the vocabulary, a gpt2 vocabulary without merges), loaded by llama-bench
  (`-p 0 -n 1 -r 1`: load the model, decode one token) from $LLAMA_CPP_DIR (default $ROOT/.llama.cpp).
vLLM cannot be installed on these machines; its rules are checked by the unit tests only.

Prints a table; exit 1 when any verdict disagrees.
Usage: .venv-ref/bin/python tools/check_target_rules.py [--quantize PATH] [--overlay DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_loads import LAYOUTS  # noqa: E402  (the layouts quantize writes, one list)


def verdict(quantize: str, target: str, path: Path, env: dict, load: bool) -> dict:
    flags = [] if load else ["--no-load"]
    run = subprocess.run([quantize, "verify", "--target", target, str(path), "--json", *flags], capture_output=True, text=True, env=env)
    try:
        return json.loads(run.stdout)
    except json.JSONDecodeError:
        return {"loads": None, "error": run.stderr.strip()[-300:]}


def broken_ggufs(source: Path, out: Path) -> list[tuple[str, Path]]:
    """Copies of `source` with one defect each, written with gguf-py."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(source))
    arch = reader.fields["general.architecture"].contents()

    def copy(name: str, drop_key=None, drop_tensor=None, extra=False, narrow=None, set_key=None, drop_merges=False) -> Path:
        path = out / f"{name}.gguf"
        writer = gguf.GGUFWriter(str(path), arch)
        for field in reader.fields.values():
            key = field.name
            if key.startswith("GGUF.") or key in ("general.architecture", "general.alignment") or key == drop_key:
                continue
            if drop_merges and key == "tokenizer.ggml.merges":
                continue
            value = field.contents()
            vtype = field.types[0]
            if set_key and key == set_key[0]:
                value = set_key[1]
            if vtype == gguf.GGUFValueType.ARRAY:
                writer.add_key_value(key, value, vtype, sub_type=field.types[-1])
            else:
                writer.add_key_value(key, value, vtype)
        for tensor in reader.tensors:
            if tensor.name == drop_tensor:
                continue
            data = np.array(tensor.data)
            shape = [int(d) for d in reversed(tensor.shape)]
            if tensor.name == narrow:
                data = data[: data.shape[0] // 2]
                shape[0] //= 2
            writer.add_tensor(tensor.name, data, raw_shape=shape if tensor.tensor_type not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) else None,
                              raw_dtype=tensor.tensor_type)
        if extra:
            writer.add_tensor("blk.0.extra.weight", np.zeros(4, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path

    return [
        ("gguf: ffn_up of layer 1 dropped", copy("dropped", drop_tensor="blk.1.ffn_up.weight")),
        ("gguf: an extra tensor", copy("extra", extra=True)),
        ("gguf: attn_k half as wide", copy("narrow", narrow="blk.0.attn_k.weight")),
        ("gguf: no RMS epsilon", copy("noeps", drop_key=f"{arch}.attention.layer_norm_rms_epsilon")),
        ("gguf: gpt2 vocabulary without merges", copy("nomerges", drop_merges=True)),
    ]


def llama_loads(bench: Path, path: Path) -> tuple[bool, str]:
    run = subprocess.run([str(bench), "-m", str(path), "-p", "0", "-n", "1", "-r", "1", "-t", "1"], capture_output=True, text=True, timeout=300)
    lines = [l for l in (run.stderr + run.stdout).splitlines() if "error" in l.lower() or "failed" in l.lower()]
    return run.returncode == 0, (lines[0][:120] if lines else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quantize", default=str(REPO / ".build" / "debug" / "quantize"))
    parser.add_argument("--overlay", help="a pip --target directory with newer transformers/compressed-tensors")
    parser.add_argument("--llama-cpp", default=os.environ.get("LLAMA_CPP_DIR", str(REPO / ".llama.cpp")))
    args = parser.parse_args()
    if not Path(args.quantize).exists():
        subprocess.run(["swift", "build", "--product", "quantize"], cwd=REPO, check=True)

    env = dict(os.environ)
    env["QUANTIZE_PYTHON"] = sys.executable
    if args.overlay:
        env["PYTHONPATH"] = args.overlay + os.pathsep + env.get("PYTHONPATH", "")
    rows, disagree = [], 0
    work = Path(tempfile.mkdtemp(prefix="check-target-"))
    try:
        for label, flags in LAYOUTS:
            out = work / label.replace(" ", "-")
            subprocess.run([args.quantize, *flags, str(REPO / "fixtures" / "tiny-llama"), "-o", str(out), "--no-check", "--quiet"], check=True)
            result = verdict(args.quantize, "transformers", out, env, load=True)
            load = result.get("python_load")
            if not isinstance(load, dict):
                print(f"no Python load for {label}: {load}", file=sys.stderr)
                return 2
            ours, real = result.get("loads"), load.get("loaded")
            rows.append((f"transformers: {label}", ours, real, "" if real else load.get("detail", "")[:120]))

        bench = Path(args.llama_cpp) / "bin" / "llama-bench"
        if bench.exists():
            cases = []
            for kind in ["q8_0", "q4_k_m"]:
                out = work / f"{kind}.gguf"
                subprocess.run([args.quantize, "--to", kind, str(REPO / "fixtures" / "tiny-llama.gguf"), "-o", str(out), "--no-check", "--quiet"], check=True)
                cases.append((f"gguf: our {kind}", out))
            cases += broken_ggufs(REPO / "fixtures" / "tiny-llama.gguf", work)
            for label, path in cases:
                ours = verdict(args.quantize, "llama.cpp", path, env, load=False).get("loads")
                real, detail = llama_loads(bench, path)
                rows.append((label, ours, real, detail))
        else:
            print(f"(no {bench}: the llama.cpp cases are skipped; tools/build_llama_cpp.sh builds it)", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'case':44s} {'verify --target':>15s} {'runtime':>8s}  agree  runtime's error")
    for label, ours, real, detail in rows:
        agree = ours == real
        disagree += 0 if agree else 1
        print(f"{label:44s} {('loads' if ours else 'refuses'):>15s} {('loads' if real else 'refuses'):>8s}  {'yes' if agree else 'NO':5s}  {detail}")
    print(f"{len(rows) - disagree} of {len(rows)} verdicts agree")
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())
