#!/usr/bin/env python3
"""llm-compressor's FP8 KV-cache scales, for checking `quantize --kv-cache fp8` against.

  observer OUT.json
        The committed fixture of the Swift test (fixtures/kv-cache/observer.json): seeded random
        key/value samples for a few layers (plus an all-zero layer), each run through llm-compressor's
        own `minmax` observer (llmcompressor.observers.Observer, base names k and v, the
        QuantizationArgs of kv_cache_scheme) and compressed-tensors' calculate_qparams, in bfloat16
        and float32; the samples are bfloat16-exact so both sides see the same numbers.
  oneshot MODEL OUT --calibration TOKENS.json [--scheme FP8_DYNAMIC|W4A16|W8A16] [--gptq]
        QuantizationModifier (or GPTQModifier with --gptq) with kv_cache_scheme
        {num_bits 8, type float, strategy tensor, dynamic false, symmetric true}, sequential
        pipeline, the token windows of TOKENS.json in their order (shuffle_calibration_samples off,
        batch size 1, and the windows placed so that its length-sorting sampler visits them in the
        file's order: the observer's running average depends on the order); writes OUT and prints
        one JSON line with the wall time, peak memory and quantization_config.kv_cache_scheme.
  compare OURS THEIRS
        k_scale/v_scale of every layer of two outputs and their relative difference; one JSON document.
  loads OUT
        transformers + compressed-tensors load OUT on the CPU, the attention modules carry the
        file's k_scale/v_scale, and one forward pass runs with finite logits. Exit 1 otherwise.

Needs $ROOT/.venv-ref (torch, transformers, compressed-tensors, llmcompressor; VENV_REF overrides).
Run the oneshot mode under `nice -n 19`.
Usage: nice -n 19 .venv-ref/bin/python tools/kv_cache_reference.py oneshot fixtures/trained-llama /tmp/lc-kv \\
           --calibration /tmp/calibration.json
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

KV_SCHEME = {"num_bits": 8, "type": "float", "strategy": "tensor", "dynamic": False, "symmetric": True}


def observer_fixture(out: str) -> int:
    import numpy as np
    import torch
    import llmcompressor
    import compressed_tensors
    from compressed_tensors.quantization import QuantizationArgs
    from llmcompressor.observers import Observer

    rng = np.random.default_rng(20261202)
    heads, dim = 2, 8
    cases = []
    for dtype_name, dtype in [("bf16", torch.bfloat16), ("f32", torch.float32)]:
        layers = []
        for layer, (samples, tokens, spread) in enumerate([(5, 6, 3.0), (3, 4, 40.0), (1, 3, 0.5), (4, 5, 0.0)]):
            keys, values = [], []
            for s in range(samples):
                # Skewed so that the minimum and the maximum differ in magnitude, and vary by sample.
                k = rng.normal(0.5 * spread, spread * (1 + 0.3 * s), size=(1, heads, tokens, dim))
                v = rng.normal(-0.2 * spread, spread * (1 + 0.5 * (s % 2)), size=(1, heads, tokens, dim))
                keys.append(torch.tensor(k, dtype=torch.float32).to(torch.bfloat16).to(dtype))
                values.append(torch.tensor(v, dtype=torch.float32).to(torch.bfloat16).to(dtype))
            scales = {}
            for base, states in [("k", keys), ("v", values)]:
                args = QuantizationArgs(**KV_SCHEME)
                observer = Observer.load_from_registry("minmax", base_name=base, args=args)
                for x in states:
                    observer(x)
                scales[base] = float(observer.get_qparams()["scale"].float().reshape(-1)[0])
            # Our side takes each sample as tokens × (heads·dim), the layout of the cache.
            flat = lambda t: t.float().transpose(1, 2).reshape(-1).tolist()
            layers.append({"layer": layer, "keys": [flat(t) for t in keys], "values": [flat(t) for t in values],
                           "k_scale": scales["k"], "v_scale": scales["v"]})
        cases.append({"dtype": dtype_name, "layers": layers})
    document = {"_generator": "tools/kv_cache_reference.py observer",
                "_versions": {"llmcompressor": llmcompressor.__version__, "compressed_tensors": compressed_tensors.__version__,
                              "torch": torch.__version__},
                "kv_cache_scheme": KV_SCHEME, "observer": "minmax", "cases": cases}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as f:
        json.dump(document, f, indent=None, separators=(",", ":"))
        f.write("\n")
    return 0


def oneshot_run(args) -> int:
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier
    from compressed_tensors.quantization.quant_scheme import preset_name_to_scheme
    from datasets import Dataset

    windows = json.load(open(args.calibration))
    if not windows or len({len(w) for w in windows}) != 1:
        sys.exit(f"{args.calibration}: expected a JSON array of equal-length token-id arrays")
    started = time.time()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    scheme = preset_name_to_scheme(args.scheme, ["Linear"])
    if args.group_size is not None and scheme.weights.strategy == "group":
        scheme.weights.group_size = args.group_size
    kwargs = dict(config_groups={"group_0": scheme}, ignore=["lm_head"], kv_cache_scheme=dict(KV_SCHEME))
    recipe = GPTQModifier(**kwargs) if args.gptq else QuantizationModifier(**kwargs)
    # llm-compressor's LengthAwareSampler visits samples in torch.argsort(lengths, descending=True)
    # order, which for equal lengths is a fixed permutation P, not the given order; the observer's
    # running average depends on the order, so the windows are placed such that P visits them as
    # given (window i at index P[i]), as quantize reads them.
    order = torch.argsort(torch.tensor([len(w) for w in windows]), descending=True).tolist()
    placed = [None] * len(windows)
    for i, index in enumerate(order):
        placed[index] = windows[i]
    dataset = Dataset.from_dict({"input_ids": placed, "attention_mask": [[1] * len(w) for w in placed]})
    oneshot(model=model, dataset=dataset, recipe=recipe, max_seq_length=len(windows[0]), num_calibration_samples=len(windows),
            pipeline="sequential", shuffle_calibration_samples=False, batch_size=1)
    seconds = time.time() - started
    model.save_pretrained(args.out, save_compressed=True)
    tokenizer.save_pretrained(args.out)
    config = json.load(open(f"{args.out}/config.json"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"mode": "gptq" if args.gptq else "rtn", "scheme": args.scheme, "seconds": round(seconds, 2), "peak_rss_bytes": peak,
                      "threads": torch.get_num_threads(), "kv_cache_scheme": config["quantization_config"].get("kv_cache_scheme")}))
    return 0


def scales_of(directory: str) -> dict:
    import torch
    from safetensors import safe_open
    found = {}
    for path in sorted(Path(directory).glob("*.safetensors")):
        with safe_open(str(path), "pt") as f:
            for name in f.keys():
                if name.endswith(".k_scale") or name.endswith(".v_scale"):
                    t = f.get_tensor(name)
                    found[name] = {"value": float(t.float().reshape(-1)[0]), "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)}
    return found


def compare(ours: str, theirs: str) -> int:
    a, b = scales_of(ours), scales_of(theirs)
    rows = []
    for name in sorted(set(a) | set(b), key=lambda n: (int(n.split(".")[2]), n)):
        x, y = a.get(name), b.get(name)
        rel = abs(x["value"] - y["value"]) / y["value"] if x and y else None
        rows.append({"tensor": name, "ours": x, "llmcompressor": y, "relative_difference": rel})
    worst = max((r["relative_difference"] for r in rows if r["relative_difference"] is not None), default=None)
    print(json.dumps({"tensors": rows, "max_relative_difference": worst,
                      "same_names": set(a) == set(b)}, indent=1))
    return 0


def loads(directory: str) -> int:
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    stored = scales_of(directory)
    problems = []
    for name, entry in stored.items():
        module_name, leaf = name.rsplit(".", 1)
        module = model.get_submodule(module_name)
        value = getattr(module, leaf, None)
        if value is None:
            problems.append(f"{module_name} has no {leaf} after loading")
        elif abs(float(value.float().reshape(-1)[0]) - entry["value"]) > 1e-6 * entry["value"]:
            problems.append(f"{name}: loaded {float(value.reshape(-1)[0])}, file {entry['value']}")
    ids = torch.tensor([[1] + list(range(100, 163))])
    with torch.no_grad():
        logits = model(ids).logits
    finite = bool(torch.isfinite(logits).all())
    if not finite:
        problems.append("non-finite logits")
    config = json.load(open(f"{directory}/config.json"))
    print(json.dumps({"loaded": not problems, "scales": len(stored), "kv_cache_scheme": config["quantization_config"].get("kv_cache_scheme"),
                      "problems": problems, "max_abs_logit": float(logits.abs().max())}))
    return 0 if not problems else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["observer", "oneshot", "compare", "loads"])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--calibration")
    parser.add_argument("--scheme", default="FP8_DYNAMIC")
    parser.add_argument("--group-size", type=int)
    parser.add_argument("--gptq", action="store_true")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.mode == "observer":
        return observer_fixture(args.paths[0])
    if args.mode == "oneshot":
        if len(args.paths) != 2 or not args.calibration:
            parser.error("oneshot MODEL OUT --calibration TOKENS.json")
        args.model, args.out = args.paths
        return oneshot_run(args)
    if args.mode == "compare":
        return compare(*args.paths[:2])
    return loads(args.paths[0])


if __name__ == "__main__":
    sys.exit(main())
