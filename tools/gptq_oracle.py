#!/usr/bin/env python3
"""Writes fixtures/quantize/gptq-oracle.json: GPTQ results of llm-compressor's own solver on fixed data.

For each case, a 16 × 160 weight matrix W and an input Hessian H = BᵀB/24 + diag(d)/100 (B: 24 × 160,
a low-rank, strongly correlated input; d > 0) are drawn from a fixed seed and rounded to 4 decimals
(so that numpy and Swift parse the same FP32 values). Scales and zero points come from
compressed-tensors' `calculate_qparams` on per-group min/max of W (the memoryless min-max observer,
FP32 scales), and llm-compressor's `quantize_weight` (GPTQModifier's solve: dampening 0.01, blocks of
128 columns, so the 160 columns take the inter-block update too) gives the quantized weights Q, from
which the codes are recovered. The test (Tests/QuantizeTests/GPTQTests.swift) runs our GPTQ on the
same W and H and compares codes and output error.

Needs llmcompressor in $ROOT/.venv-ref (see tools/llmcompressor_reference.py).
Usage: .venv-ref/bin/python tools/gptq_oracle.py [-o fixtures/quantize/gptq-oracle.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
ROWS, COLUMNS, RANK = 16, 160, 24
CASES = [
    {"name": "int4 g32 symmetric", "bits": 4, "group_size": 32, "symmetric": True, "actorder": None},
    {"name": "int4 g32 asymmetric, actorder static", "bits": 4, "group_size": 32, "symmetric": False, "actorder": "static"},
    {"name": "int4 g32 symmetric, actorder static", "bits": 4, "group_size": 32, "symmetric": True, "actorder": "static"},
    {"name": "int8 per channel", "bits": 8, "group_size": None, "symmetric": True, "actorder": None},
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default=str(REPO / "fixtures" / "quantize" / "gptq-oracle.json"))
    args = parser.parse_args()

    import torch
    import llmcompressor
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.utils import calculate_qparams
    from llmcompressor.modifiers.gptq.gptq_quantize import quantize_weight

    rng = np.random.default_rng(20261201)
    out = {"_generator": "tools/gptq_oracle.py", "_llmcompressor": llmcompressor.__version__, "rows": ROWS, "columns": COLUMNS,
           "rank": RANK, "dampening": 0.01, "block_size": 128, "cases": []}
    # Column scales spread over two orders of magnitude, as activations' channels are.
    column_scale = np.exp(rng.normal(0, 1.0, COLUMNS))
    b = np.round(rng.normal(0, 1, (RANK, COLUMNS)) * column_scale, 4)
    d = np.round(rng.uniform(0.5, 2.0, COLUMNS), 4)
    w = np.round(rng.standard_t(5, (ROWS, COLUMNS)) * 0.05, 4)
    b32, d32, w32 = b.astype(np.float32), d.astype(np.float32), w.astype(np.float32)
    h = (b32.astype(np.float64).T @ b32.astype(np.float64) / RANK + np.diag(d32.astype(np.float64)) / 100).astype(np.float32)
    # The inputs as their 4-decimal text, which both sides parse to the same FP32 values.
    out.update({"weights": [float(x) for x in w.ravel()], "basis": [float(x) for x in b.ravel()], "diagonal": [float(x) for x in d]})
    for case in CASES:

        group = case["group_size"] or COLUMNS
        strategy = "group" if case["group_size"] else "channel"
        qargs = QuantizationArgs(num_bits=case["bits"], type="int", symmetric=case["symmetric"], strategy=strategy,
                                 group_size=case["group_size"], actorder=case["actorder"])
        wt = torch.from_numpy(w32)
        grouped = wt.reshape(ROWS, COLUMNS // group, group)
        scale, zero = calculate_qparams(grouped.amin(dim=-1), grouped.amax(dim=-1), qargs)
        q, _, fallback = quantize_weight(wt[None].clone(), torch.from_numpy(h)[None].clone(), scale[None], zero[None], None, qargs,
                                         blocksize=128, percdamp=0.01)
        q = q[0]
        expanded_scale = scale.repeat_interleave(group, dim=1)
        expanded_zero = zero.to(torch.float32).repeat_interleave(group, dim=1)
        codes = torch.round(q / expanded_scale + expanded_zero)
        if not torch.allclose((codes - expanded_zero) * expanded_scale, q, atol=0, rtol=1e-6):
            sys.exit("gptq_oracle: Q is not (code − zero)·scale")
        out["cases"].append({**case, "fallback": bool(fallback[0]), "codes": codes.to(torch.int32).ravel().tolist(),
                             "scales": [float(f"{x:.9g}") for x in scale.ravel().tolist()],
                             "zeros": zero.to(torch.int32).ravel().tolist()})
    with open(args.output, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.output}: {len(CASES)} cases of {ROWS}×{COLUMNS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
