#!/usr/bin/env python3
"""llm-compressor's SmoothQuant and W8A8 INT8, on the CPU, for comparing `quantize --act-quant int8 --smooth` against.

  oracle OUT.json
        The smoothing scales llm-compressor computes (SmoothQuantModifier's forward-hook min/max
        over two batches, `_calculate_smoothing_scales`, the 1e-5 clamp) for a small fixed-seed set:
        activations with outlier channels, a constant channel and a weight column that is zero in
        every balance layer, at α 0.5 and 0.8, in FP32. Committed as
        fixtures/quantize/smoothquant-oracle.json (Tests/ModelTests/SmoothQuantTests.swift).
  config MODEL OUT.json
        QuantizationModifier with the W8A8 preset (no data: dynamic activations) → its
        quantization_config, committed as fixtures/quantize/llmcompressor-w8a8-config.json.
  run   MODEL OUT --calibration TOKENS.json --smooth ALPHA [--gptq]
        SmoothQuantModifier(smoothing_strength=ALPHA, its default llama mappings) then
        QuantizationModifier (or GPTQModifier) with the W8A8 preset, ignore lm_head, sequential
        pipeline, on the windows of TOKENS.json (tools/make_calibration.py), so that
        `quantize --calibration TOKENS.json` sees the same tokens. Prints one JSON line (seconds, peak RSS).
  scales ORIGINAL A B
        The smoothing factors two smoothed checkpoints carry, recovered per norm as
        original_norm / smoothed_norm, and their relative difference per layer (A against B).
  logits ORIGINAL OUT... [--tokens N]
        Loads each directory with transformers + compressed-tensors (AutoModelForCausalLM, CPU, FP32
        compute) and runs the first N tokens of the fixture's eval.txt: max |Δlogit| and the mean
        KL divergence of each against the original. compressed-tensors fake-quantizes the declared
        input activations with its own observer (scale amax/127.5), vLLM with amax/127.

Needs torch, transformers, compressed-tensors and llmcompressor in $ROOT/.venv-ref (VENV_REF
overrides; tools/setup_reference.sh). Run it under `nice -n 19`.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def oracle(out: str) -> None:
    import numpy as np
    import torch
    from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier
    from llmcompressor.modifiers.transform.smoothquant.base import MINIMUM_SMOOTHING_SCALE

    rng = np.random.default_rng(20261202)
    columns, tokens = 16, 24
    batches = []
    for _ in range(2):
        x = rng.standard_normal((tokens, columns)).astype(np.float32)
        x[:, 3] *= 40          # an outlier channel
        x[:, 7] = x[:, 7] * 0.01 + 2.5  # a narrow, offset channel
        x[:, 11] = 0.75        # constant: range 0 → the clamp
        batches.append(x)
    layers = []
    for rows in (8, 5, 3):
        w = (rng.standard_normal((rows, columns)) * 0.05).astype(np.float32)
        w[:, 5] = 0            # zero in every balance layer: the activation range itself
        layers.append(w)

    # The forward hook's running per-channel min/max over the batches (hook_fn in base.py).
    mins = maxs = None
    for x in batches:
        t = torch.from_numpy(x).view(-1, columns)
        lo, hi = torch.min(t, dim=0)[0], torch.max(t, dim=0)[0]
        mins = lo if mins is None else torch.minimum(mins, lo)
        maxs = hi if maxs is None else torch.maximum(maxs, hi)
    ranges = maxs - mins
    balance = []
    for w in layers:
        linear = torch.nn.Linear(columns, w.shape[0], bias=False)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w))
        balance.append(linear)
    scales = {}
    for alpha in (0.5, 0.8):
        modifier = SmoothQuantModifier(smoothing_strength=alpha)
        with torch.no_grad():
            s = modifier._calculate_smoothing_scales(balance, ranges)
            s = torch.maximum(s, torch.Tensor([MINIMUM_SMOOTHING_SCALE]))
        scales[str(alpha)] = [float(v) for v in s.tolist()]
    import llmcompressor
    document = {
        "_generator": "tools/smoothquant_reference.py oracle",
        "_versions": {"llmcompressor": llmcompressor.__version__, "torch": torch.__version__},
        "columns": columns,
        "batches": [[float(v) for v in x.reshape(-1)] for x in batches],
        "batch_rows": tokens,
        "balance": [{"rows": int(w.shape[0]), "weights": [float(v) for v in w.reshape(-1)]} for w in layers],
        "ranges": [float(v) for v in ranges.tolist()],
        "scales": scales,
    }
    Path(out).write_text(json.dumps(document, indent=None) + "\n")


def preset_groups():
    from compressed_tensors.quantization.quant_scheme import preset_name_to_scheme
    return {"group_0": preset_name_to_scheme("W8A8", ["Linear"])}


def config(model_dir: str, out: str) -> None:
    import tempfile
    import compressed_tensors
    import llmcompressor
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
    oneshot(model=model, recipe=QuantizationModifier(config_groups=preset_groups(), ignore=["lm_head"]))
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, save_compressed=True)
        found = json.load(open(f"{tmp}/config.json"))["quantization_config"]
        from safetensors import safe_open
        with safe_open(f"{tmp}/model.safetensors", "pt") as f:
            tensors = {k: [str(f.get_slice(k).get_dtype()), f.get_slice(k).get_shape()] for k in f.keys() if "layers.0.self_attn.q_proj" in k}
    document = {"_generator": "tools/smoothquant_reference.py config",
                "_versions": {"llmcompressor": llmcompressor.__version__, "compressed_tensors": compressed_tensors.__version__,
                              "transformers": transformers.__version__, "torch": torch.__version__},
                "W8A8": found, "_q_proj_tensors": tensors}
    Path(out).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")


def run(model_dir: str, out: str, calibration: str, alpha: float, gptq: bool, threads: int | None) -> None:
    import torch
    if threads:
        torch.set_num_threads(threads)
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier
    from llmcompressor.modifiers.transform.smoothquant import SmoothQuantModifier

    started = time.time()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    windows = json.load(open(calibration))
    if not windows or len({len(w) for w in windows}) != 1:
        sys.exit(f"{calibration}: expected a JSON array of equal-length token-id arrays")
    dataset = Dataset.from_dict({"input_ids": windows, "attention_mask": [[1] * len(w) for w in windows]})
    quantizer = (GPTQModifier(config_groups=preset_groups(), ignore=["lm_head"]) if gptq
                 else QuantizationModifier(config_groups=preset_groups(), ignore=["lm_head"]))
    recipe = [SmoothQuantModifier(smoothing_strength=alpha), quantizer]
    oneshot(model=model, dataset=dataset, recipe=recipe, max_seq_length=len(windows[0]),
            num_calibration_samples=len(windows), pipeline="sequential")
    seconds = time.time() - started
    model.save_pretrained(out, save_compressed=True)
    tokenizer.save_pretrained(out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"mode": "run", "smooth": alpha, "gptq": gptq, "seconds": round(seconds, 2), "peak_rss_bytes": peak,
                      "threads": torch.get_num_threads()}))


def load_float(directory: str) -> dict:
    """Norm weights as FP32 through torch (BF16 has no numpy dtype in safetensors' numpy reader)."""
    import glob
    from safetensors.torch import load_file
    out = {}
    for path in sorted(glob.glob(f"{directory}/*.safetensors")):
        for key, value in load_file(path).items():
            if key.endswith("layernorm.weight"):
                out[key] = value.float().numpy()
    return out


def scales(original: str, a: str, b: str) -> None:
    import numpy as np
    base, ours, theirs = load_float(original), load_float(a), load_float(b)
    rows = []
    for key in sorted(base, key=lambda k: (int(k.split(".")[2]), k)):
        if key not in ours or key not in theirs:
            continue
        sa, sb = base[key] / ours[key], base[key] / theirs[key]
        rel = np.abs(sa - sb) / np.abs(sb)
        rows.append({"norm": key, "mean_rel": float(rel.mean()), "median_rel": float(np.median(rel)), "max_rel": float(rel.max()),
                     "scale_range_a": [float(sa.min()), float(sa.max())], "scale_range_b": [float(sb.min()), float(sb.max())]})
    print(json.dumps(rows, indent=1))


def logits(original: str, outputs: list[str], count: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(original)
    text = (Path(original) / "eval.txt").read_text()
    ids = tokenizer(text, return_tensors="pt").input_ids[:, :count]

    def run_model(path):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        model.eval()
        with torch.no_grad():
            return model(ids).logits[0].float()

    reference = run_model(original)
    base = torch.log_softmax(reference, dim=-1)
    results, found_logits = [], {}
    for path in outputs:
        try:
            found = run_model(path)
        except Exception as error:  # a layout transformers refuses: reported, not raised
            results.append({"path": path, "loaded": False, "error": f"{type(error).__name__}: {error}"[:400]})
            continue
        found_logits[path] = found
        log = torch.log_softmax(found, dim=-1)
        kld = (base.exp() * (base - log)).sum(-1).mean().item()
        results.append({"path": path, "loaded": True, "max_abs_logit_diff": (found - reference).abs().max().item(), "mean_kld": kld})
    # Every two outputs that loaded, against each other (ours against llm-compressor's).
    names = list(found_logits)
    pairs = [{"a": a, "b": b, "max_abs_logit_diff": (found_logits[a] - found_logits[b]).abs().max().item(),
              "max_abs_logit": found_logits[b].abs().max().item()}
             for i, a in enumerate(names) for b in names[i + 1:]]
    print(json.dumps({"tokens": int(ids.shape[1]), "results": results, "pairs": pairs}, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["oracle", "config", "run", "scales", "logits"])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--calibration")
    parser.add_argument("--smooth", type=float, default=0.5)
    parser.add_argument("--gptq", action="store_true")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--tokens", type=int, default=256)
    args = parser.parse_args()
    if args.mode == "oracle":
        oracle(args.paths[0])
    elif args.mode == "config":
        config(args.paths[0], args.paths[1])
    elif args.mode == "run":
        if not args.calibration:
            parser.error("run needs --calibration TOKENS.json")
        run(args.paths[0], args.paths[1], args.calibration, args.smooth, args.gptq, args.threads)
    elif args.mode == "scales":
        scales(*args.paths[:3])
    else:
        logits(args.paths[0], args.paths[1:], args.tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
