#!/usr/bin/env python3
"""llm-compressor's own outputs of a model, on the CPU, for comparing ours against.

  rtn   MODEL OUT --scheme W4A16|W4A16_ASYM|W8A16 [--group-size N]
        QuantizationModifier (round-to-nearest, the observer's min-max scales); writes OUT
        (save_pretrained(save_compressed=True)) and prints its quantization_config.
  configs MODEL OUT.json
        rtn for W4A16 (g128, g32), W4A16_ASYM, W8A16 and FP8_DYNAMIC into temporary directories;
        writes their quantization_config objects, by preset name, to OUT.json (the committed
        fixtures/quantize/llmcompressor-configs.json that the config tests compare ours against).
  gptq  MODEL OUT --calibration TOKENS.json [--scheme ...] [--group-size N] [--dampening F]
        [--actorder static|none] [--block-size 128]
        GPTQModifier with the sequential pipeline on the token windows of TOKENS.json (a JSON array
        of equal-length arrays of token ids, as tools/make_calibration.py writes them), so that our
        `--method gptq --calibration TOKENS.json` sees exactly the same tokens. Prints one JSON line
        with the wall time (seconds) and the peak resident memory (bytes) of the run.
  awq   MODEL OUT --calibration TOKENS.json [--scheme W4A16|W4A16_ASYM] [--group-size N]
        AWQModifier (its default mappings, duo_scaling, n_grid 20) then QuantizationModifier,
        sequential pipeline, on the same windows; the same JSON line.

Needs llmcompressor in $ROOT/.venv-ref (VENV_REF overrides): `pip install --no-deps llmcompressor`
plus `datasets`, so that pip does not replace torch/transformers/compressed-tensors with the older
versions llmcompressor pins (see tools/setup_reference.sh). Run it under `nice -n 19`: it uses every
core for minutes.

Usage: .venv-ref/bin/python tools/llmcompressor_reference.py gptq fixtures/trained-llama /tmp/lc-gptq \
           --calibration /tmp/calibration.json --group-size 128
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time


def scheme_config(name: str, group_size: int | None, actorder: str | None):
    from compressed_tensors.quantization import QuantizationScheme, QuantizationArgs
    from compressed_tensors.quantization.quant_scheme import preset_name_to_scheme
    scheme = preset_name_to_scheme(name, ["Linear"])
    if group_size is not None and scheme.weights.strategy == "group":
        scheme.weights.group_size = group_size
    if actorder is not None:
        scheme.weights.actorder = None if actorder == "none" else actorder
    return {"group_0": scheme}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["rtn", "gptq", "awq", "configs"])
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--scheme", default="W4A16")
    parser.add_argument("--group-size", type=int)
    parser.add_argument("--calibration")
    parser.add_argument("--dampening", type=float, default=0.01)
    parser.add_argument("--actorder", choices=["static", "none"], default=None)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()

    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier

    if args.mode == "configs":
        import tempfile
        import llmcompressor
        import compressed_tensors
        import transformers
        found = {"_generator": "tools/llmcompressor_reference.py configs",
                 "_versions": {"llmcompressor": llmcompressor.__version__, "compressed_tensors": compressed_tensors.__version__,
                               "transformers": transformers.__version__, "torch": torch.__version__}}
        for label, preset, group in [("W4A16", "W4A16", None), ("W4A16_G32", "W4A16", 32), ("W4A16_ASYM", "W4A16_ASYM", None),
                                     ("W8A16", "W8A16", None), ("FP8_DYNAMIC", "FP8_DYNAMIC", None)]:
            model = AutoModelForCausalLM.from_pretrained(args.model, dtype="auto")
            oneshot(model=model, recipe=QuantizationModifier(config_groups=scheme_config(preset, group, None), ignore=["lm_head"]))
            with tempfile.TemporaryDirectory() as out:
                model.save_pretrained(out, save_compressed=True)
                found[label] = json.load(open(f"{out}/config.json"))["quantization_config"]
        with open(args.out, "w") as f:
            json.dump(found, f, indent=1, sort_keys=True)
            f.write("\n")
        return 0

    started = time.time()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    groups = scheme_config(args.scheme, args.group_size, args.actorder if args.mode == "gptq" else None)
    if args.mode == "rtn":
        recipe = QuantizationModifier(config_groups=groups, ignore=["lm_head"])
        oneshot(model=model, recipe=recipe)
    else:
        if not args.calibration:
            parser.error(f"{args.mode} needs --calibration TOKENS.json")
        from datasets import Dataset
        windows = json.load(open(args.calibration))
        if not windows or len({len(w) for w in windows}) != 1:
            parser.error(f"{args.calibration}: expected a JSON array of equal-length token-id arrays")
        dataset = Dataset.from_dict({"input_ids": windows, "attention_mask": [[1] * len(w) for w in windows]})
        if args.mode == "awq":
            from llmcompressor.modifiers.transform.awq import AWQModifier
            from llmcompressor.pipelines.cache import IntermediatesCache
            # AWQ pins its cached parent inputs before the grid search (a transfer speed-up), and
            # pinning needs a CUDA driver: on a CPU-only machine it raises "Found no NVIDIA driver".
            # Pinning changes no value, so it is skipped here.
            IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None
            recipe = [AWQModifier(), QuantizationModifier(config_groups=groups, ignore=["lm_head"])]
        else:
            kwargs = dict(config_groups=groups, ignore=["lm_head"], dampening_frac=args.dampening, block_size=args.block_size)
            if args.actorder is not None:
                kwargs["actorder"] = None if args.actorder == "none" else args.actorder
            recipe = GPTQModifier(**kwargs)
        oneshot(model=model, dataset=dataset, recipe=recipe, max_seq_length=len(windows[0]),
                num_calibration_samples=len(windows), pipeline="sequential")
    seconds = time.time() - started
    model.save_pretrained(args.out, save_compressed=True)
    tokenizer.save_pretrained(args.out)
    config = json.load(open(f"{args.out}/config.json"))
    print(json.dumps(config.get("quantization_config"), indent=2, sort_keys=True), file=sys.stderr)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"mode": args.mode, "scheme": args.scheme, "group_size": args.group_size, "seconds": round(seconds, 2),
                      "peak_rss_bytes": peak, "threads": torch.get_num_threads()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
