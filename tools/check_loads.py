#!/usr/bin/env python3
"""Does every safetensors layout quantize writes load in the newest transformers + compressed-tensors?

For each layout (fp8 per channel, fp8 128×128 blocks, int8 pack-quantized and int-quantized, int4
symmetric and asymmetric at groups 32 and 128, and any extra output directories given with
--extra), quantize writes fixtures/trained-llama (or --model) into a temporary directory; then, in a
fresh Python process, AutoModelForCausalLM loads it on the CPU in FP32 and runs one forward pass on
fixed tokens. Its logits are compared with those of the original model whose Linear weights were
replaced by our output decoded in numpy (the compressed-tensors formulas: (code − zero)·scale,
FP8 × scale): max |Δlogit| / max |logit|, so a layout that loads but decodes differently fails too.
FP8 checkpoints declare dynamic FP8 activations, which compressed-tensors fake-quantizes; the
comparison removes that from the config (weights only), as tools/reference_logits.py does.

The newest releases are installed, without their dependencies, into $ROOT/.venv-ref-newest
(`pip install --no-deps --target`; torch and the rest come from $ROOT/.venv-ref) when it is not
there yet or with --refresh; --overlay DIR names another such directory; --installed uses
.venv-ref's own versions instead. The versions used are printed.

Exit status: 0 when every layout loads and matches (relative logit difference ≤ 1e-4), 1 otherwise.
Usage: .venv-ref/bin/python tools/check_loads.py [--installed] [--extra DIR ...] [--json OUT]
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
LAYOUTS = [
    ("fp8", ["--to", "fp8"]),
    ("fp8 block 128x128", ["--to", "fp8", "--granularity", "block"]),
    ("int8 pack-quantized", ["--to", "int8"]),
    ("int8 int-quantized", ["--to", "int8", "--int8-layout", "int-quantized"]),
    ("int4 g128", ["--to", "int4"]),
    ("int4 g32", ["--to", "int4", "--group-size", "32"]),
    ("int4 g128 asymmetric", ["--to", "int4", "--asymmetric"]),
    ("int4 g32 asymmetric", ["--to", "int4", "--group-size", "32", "--asymmetric"]),
]
TOKENS = [[1, 57, 300, 12, 999, 4, 77, 2048, 15, 640, 3, 88, 1500, 21, 9, 400]]

CHILD = r'''
import json, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np, torch, transformers, compressed_tensors
from safetensors.torch import load_file
from pathlib import Path
from transformers import AutoModelForCausalLM
quantized, original, tokens = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = {"transformers": transformers.__version__, "compressed_tensors": compressed_tensors.__version__}

def tensors(directory):
    found = {}
    for f in sorted(Path(directory).glob("*.safetensors")):
        found.update({k: (t.float().numpy() if t.is_floating_point() else t.numpy()) for k, t in load_file(str(f)).items()})
    return found

def unpack(packed, bits, columns, dim=1):
    per = 32 // bits
    words = packed.astype(np.uint32)
    parts = [((words >> (bits * k)) & ((1 << bits) - 1)).astype(np.int32) - (1 << (bits - 1)) for k in range(per)]
    if dim == 1:
        return np.stack(parts, axis=-1).reshape(packed.shape[0], -1)[:, :columns]
    return np.stack(parts, axis=1).reshape(-1, packed.shape[1])[:columns]

def decoded(stored, config):
    weights = {}
    q = config.get("quantization_config", {})
    for name in stored:
        if name.endswith(".weight_packed"):
            base = name[:-len("weight_packed")]
            rows, columns = (int(v) for v in stored[base + "weight_shape"])
            args = next(iter(q["config_groups"].values()))["weights"]
            bits = args["num_bits"]
            codes = unpack(stored[name], bits, columns)
            scale = stored[base + "weight_scale"].astype(np.float32)
            group = columns // scale.shape[1]
            zero = np.zeros_like(scale)
            if base + "weight_zero_point" in stored:
                zero = unpack(stored[base + "weight_zero_point"], bits, rows, dim=0).astype(np.float32)
            weights[base + "weight"] = (codes - np.repeat(zero, group, axis=1)) * np.repeat(scale, group, axis=1)
        elif name.endswith(".weight") and base_is_quantized(name, stored):
            base = name[:-len("weight")]
            w = stored[name].astype(np.float32)
            if base + "weight_scale_inv" in stored:
                s = stored[base + "weight_scale_inv"].astype(np.float32)
                br, bc = q.get("weight_block_size", [128, 128])
                s = np.repeat(np.repeat(s, br, axis=0), bc, axis=1)[: w.shape[0], : w.shape[1]]
                weights[name] = w * s
            else:
                s = stored[base + "weight_scale"].astype(np.float32)
                zero = stored.get(base + "weight_zero_point")
                group = w.shape[1] // s.shape[1] if s.ndim == 2 else w.shape[1]
                s = np.repeat(s.reshape(w.shape[0], -1), group, axis=1) if s.size > 1 else s
                z = 0 if zero is None else np.repeat(zero.astype(np.float32).reshape(w.shape[0], -1), group, axis=1)
                weights[name] = (w - z) * s
    return weights

def base_is_quantized(name, stored):
    base = name[:-len("weight")]
    return base + "weight_scale" in stored or base + "weight_scale_inv" in stored

config = json.load(open(Path(quantized) / "config.json"))
try:
    model = AutoModelForCausalLM.from_pretrained(quantized, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        got = model(torch.tensor(tokens)).logits.float().numpy()
    out["loaded"] = True
except Exception as e:
    out["loaded"] = False
    out["error"] = (type(e).__name__ + ": " + str(e)).strip().splitlines()[-1][:300]
    print(json.dumps(out)); sys.exit(0)
reference = AutoModelForCausalLM.from_pretrained(original, dtype=torch.float32)
state = reference.state_dict()
replaced = 0
for name, w in decoded(tensors(quantized), config).items():
    state[name] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
    replaced += 1
reference.load_state_dict(state)
with torch.no_grad():
    want = reference(torch.tensor(tokens)).logits.float().numpy()
out["replaced"] = replaced
out["relative_logit_difference"] = float(np.abs(got - want).max() / np.abs(want).max())
print(json.dumps(out))
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "fixtures" / "trained-llama"))
    parser.add_argument("--quantize", default=str(REPO / ".build" / "debug" / "quantize"), help="the quantize binary (built first if missing)")
    parser.add_argument("--installed", action="store_true", help="use .venv-ref's own transformers/compressed-tensors")
    parser.add_argument("--overlay", default=str(REPO / ".venv-ref-newest"), help="where the newest releases are installed")
    parser.add_argument("--refresh", action="store_true", help="reinstall the newest releases into the overlay")
    parser.add_argument("--extra", nargs="*", default=[], help="more output directories to check (e.g. a --method gptq output)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    env = dict(os.environ)
    if not args.installed:
        overlay = Path(args.overlay)
        if args.refresh or not (overlay / "transformers").is_dir() or not (overlay / "compressed_tensors").is_dir():
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--upgrade", "--no-deps", "--target", str(overlay),
                            "transformers", "compressed-tensors"], check=True)
        env["PYTHONPATH"] = str(overlay) + os.pathsep + env.get("PYTHONPATH", "")
    if not Path(args.quantize).exists():
        subprocess.run(["swift", "build", "--product", "quantize"], cwd=REPO, check=True)

    work = Path(tempfile.mkdtemp(prefix="check-loads-"))
    results, failed = [], 0
    try:
        targets = []
        for label, flags in LAYOUTS:
            out = work / label.replace(" ", "-")
            run = subprocess.run([args.quantize, *flags, args.model, "-o", str(out), "--no-check", "--quiet"], capture_output=True, text=True)
            if run.returncode != 0:
                results.append({"layout": label, "loaded": False, "error": "quantize failed: " + run.stderr.strip()[-300:]})
                failed += 1
                continue
            if label.startswith("fp8"):
                # Weights only: drop the dynamic activation quantization from the config (see above).
                config = json.loads((out / "config.json").read_text())
                for group in config["quantization_config"].get("config_groups", {}).values():
                    group["input_activations"] = None
                (out / "config.json").write_text(json.dumps(config, indent=2))
            targets.append((label, out))
        targets += [(f"extra {d}", Path(d)) for d in args.extra]
        for label, out in targets:
            child = subprocess.run([sys.executable, "-c", CHILD, str(out), args.model, json.dumps(TOKENS)], capture_output=True, text=True, env=env)
            try:
                result = json.loads(child.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                result = {"loaded": False, "error": "the loader crashed: " + child.stderr.strip()[-300:]}
            result["layout"] = label
            ok = result.get("loaded") and result.get("relative_logit_difference", 1) <= 1e-4
            failed += 0 if ok else 1
            results.append(result)
            detail = f"relative logit difference {result['relative_logit_difference']:.2e}" if result.get("loaded") else result.get("error", "")
            print(f"{'ok  ' if ok else 'FAIL'}  {label:28s} {detail}   (transformers {result.get('transformers', '?')}, "
                  f"compressed-tensors {result.get('compressed_tensors', '?')})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(f"{len(results) - failed} of {len(results)} layouts load and match")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
