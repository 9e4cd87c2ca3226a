#!/usr/bin/env python3
"""Load quantize's outputs of the shipped model with transformers on a GPU and compare logits.

Run on a machine with torch + transformers + a CUDA GPU (the device machine); compressed-tensors
and its small dependencies may be installed from wheels first. Usage:

    python3 tools/gpu_check.py --original fixtures/tiny-llama \
        --variant fp8=.gpu/tiny-llama-fp8 --variant int4=.gpu/tiny-llama-int4 [--json OUT.json]

For each variant: load it with AutoModelForCausalLM (transformers reads quantization_config and
hands the checkpoint to compressed-tensors), run a few fixed token sequences, and report against
the BF16 original: relative logit error ||L_q - L|| / ||L||, top-1 agreement, mean KL(p || p_q)
of the next-token distributions, and the max absolute logit difference. It also compares the
projection weights transformers holds after loading (decompressed by compressed-tensors) with the
BF16 original, which separates a layout problem (huge weight error) from quantization error.
"""
import argparse
import json
import sys
import time
import traceback

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "In the beginning the model was small, and its weights were random.",
    "Quantization trades a little accuracy for a lot of memory and speed.",
    "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",
]


def logits_for(model, batches):
    out = []
    with torch.no_grad():
        for ids in batches:
            out.append(model(ids.to(model.device)).logits.float().cpu())
    return out


def compare(reference, candidate):
    num = sum(float(((c - r) ** 2).sum()) for r, c in zip(reference, candidate))
    den = sum(float((r ** 2).sum()) for r in reference)
    agree = total = 0
    kl = []
    maxabs = 0.0
    for r, c in zip(reference, candidate):
        agree += int((r.argmax(-1) == c.argmax(-1)).sum())
        total += r.shape[0] * r.shape[1]
        p = torch.log_softmax(r, -1)
        q = torch.log_softmax(c, -1)
        kl.append(float((p.exp() * (p - q)).sum(-1).mean()))
        maxabs = max(maxabs, float((c - r).abs().max()))
    return {
        "relative_logit_error": (num / den) ** 0.5,
        "top1_agreement": agree / total,
        "mean_kl": float(np.mean(kl)),
        "max_abs_logit_diff": maxabs,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--original", required=True)
    parser.add_argument("--variant", action="append", default=[], help="NAME=DIR")
    parser.add_argument("--json")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "variants": {},
    }
    try:
        import compressed_tensors
        result["compressed_tensors"] = compressed_tensors.__version__
    except Exception as error:  # reported, the loads below will say more
        result["compressed_tensors"] = f"not importable: {error}"

    tokenizer = AutoTokenizer.from_pretrained(args.original)
    batches = [tokenizer(text, return_tensors="pt").input_ids for text in TEXTS]
    result["sequences"] = [int(b.shape[1]) for b in batches]
    original = AutoModelForCausalLM.from_pretrained(args.original, dtype=torch.bfloat16).to(device).eval()
    reference = logits_for(original, batches)
    original_state = {k: v.float().cpu() for k, v in original.state_dict().items()}

    for spec in args.variant:
        name, path = spec.split("=", 1)
        entry = {"path": path}
        started = time.time()
        try:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).to(device).eval()
            entry["load_seconds"] = round(time.time() - started, 2)
            entry["module_types"] = sorted({type(m).__name__ for m in model.modules() if "Linear" in type(m).__name__})
            entry.update(compare(reference, logits_for(model, batches)))
            # Weights as transformers holds them (decompressed) against the BF16 original.
            state = model.state_dict()
            errs = []
            for key, value in original_state.items():
                if key in state and state[key].shape == value.shape and key.endswith("proj.weight"):
                    w = state[key].float().cpu()
                    errs.append(float((w - value).norm() / value.norm()))
            entry["weight_relative_error_mean"] = float(np.mean(errs)) if errs else None
            entry["weights_compared"] = len(errs)
            entry["ok"] = True
        except Exception as error:
            entry["ok"] = False
            entry["error"] = f"{type(error).__name__}: {error}"
            entry["traceback"] = traceback.format_exc()[-3000:]
        result["variants"][name] = entry

    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text)
    print(text)
    print()
    print("| variant | loaded | rel. logit error | top-1 agreement | mean KL | max |dlogit| |")
    print("|---|---|---:|---:|---:|---:|")
    for name, entry in result["variants"].items():
        if entry["ok"]:
            print(f"| {name} | yes ({entry['load_seconds']} s) | {entry['relative_logit_error']:.4f} | "
                  f"{entry['top1_agreement']:.3f} | {entry['mean_kl']:.2e} | {entry['max_abs_logit_diff']:.3f} |")
        else:
            print(f"| {name} | NO: {entry['error'][:80]} | | | | |")
    return 0 if all(e["ok"] for e in result["variants"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
