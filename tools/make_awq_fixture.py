#!/usr/bin/env python3
"""The oracle of AWQ's scale search on one tiny linear layer (fixtures/quantize/awq-oracle/).

A 48×64 weight and 40 tokens of input with a few loud channels (fixed seed); the layer is its own
parent (llm-compressor's up_proj → down_proj mapping, whose parent is down_proj). The search is
computed with torch following llm-compressor's AWQModifier (modifiers/transform/awq/base.py:
`_get_grid_search_params`, `_compute_layer_means`, `_compute_best_scale`, `_compute_loss`) with the
quantization done by compressed-tensors itself (`calculate_qparams`, `fake_quantize`), for int4
group 32 symmetric and asymmetric, in FP32 (the scales then stay FP32, as `scale_dtype` None keeps
the weight's dtype).

Writes layer.safetensors (weight, input) and expected.json (activation means, weight means; per
scheme every grid point's loss, the winning index and scales, the smoothed-and-
quantized output (x/s)·Q(W·s)ᵀ; the scales of every grid point, the same for both), and the
versions used.

Usage: .venv-ref/bin/python tools/make_awq_fixture.py [--out fixtures/quantize/awq-oracle]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def short(values) -> list[float]:
    """FP32 values with the 9 significant digits that identify them."""
    return [float(f"{v:.9g}") for v in values]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "fixtures" / "quantize" / "awq-oracle"))
    args = parser.parse_args()

    import torch
    import compressed_tensors
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize
    from compressed_tensors.quantization.utils.helpers import calculate_qparams
    from safetensors.numpy import save_file

    rng = np.random.default_rng(20261201)
    rows, columns, tokens, group, n_grid = 48, 64, 40, 32, 20
    weight = (rng.standard_normal((rows, columns)) * 0.05).astype(np.float32)
    weight[:, 5] *= 4  # a column of large weights
    loudness = np.exp(rng.standard_normal(columns) * 0.8).astype(np.float32)
    loudness[[3, 17, 40]] *= 12  # salient input channels
    x = (rng.standard_normal((tokens, columns)) * loudness).astype(np.float32)

    W = torch.from_numpy(weight)
    X = torch.from_numpy(x)
    reference = X @ W.T

    def fake_quant(w: torch.Tensor, q: QuantizationArgs) -> torch.Tensor:
        groups = w.reshape(rows, columns // group, group)
        scale, zero = calculate_qparams(groups.amin(dim=2), groups.amax(dim=2), q)
        return fake_quantize(w, scale, zero, q)

    # _get_grid_search_params with duo_scaling True: the identity, then n_grid − 1 duo ratios.
    grid = [(0.0, False)] + [(i / (n_grid - 2), True) for i in range(n_grid - 1)]
    # activation means: |x| summed in FP32 over tokens, divided by the count
    x_mean = X.abs().float().sum(dim=0) / tokens
    # _compute_layer_means: |w| / (amax of its group + 1e-6), summed over rows in FP64
    normalised = W.clone().reshape(-1, group).abs()
    normalised = normalised / (normalised.amax(dim=1, keepdim=True) + 1e-6)
    w_mean = normalised.reshape(rows, columns).sum(0, dtype=torch.float64) / rows

    expected = {"_generator": "tools/make_awq_fixture.py",
                "_versions": {"torch": torch.__version__, "compressed_tensors": compressed_tensors.__version__},
                "rows": rows, "columns": columns, "tokens": tokens, "group_size": group,
                "grid": [{"ratio": r, "duo_scaling": d} for r, d in grid],
                "activation_means": short(x_mean.tolist()), "weight_means": w_mean.tolist(), "schemes": {}}
    for label, symmetric in (("int4-g32-sym", True), ("int4-g32-asym", False)):
        q = QuantizationArgs(num_bits=4, type="int", symmetric=symmetric, strategy="group", group_size=group)
        losses, best, best_scales, candidates = [], -1, None, []
        for ratio, duo in grid:
            if duo:
                scales = (x_mean.pow(ratio) / (w_mean.pow(1 - ratio) + 1e-4)).clamp(min=1e-4)
            else:
                scales = x_mean.pow(ratio).clamp(min=1e-4).view(-1)
            scales = scales / (scales.max() * scales.min()).sqrt()
            scales[torch.isinf(scales)] = 1
            scales[torch.isnan(scales)] = 1
            # The scales are rounded to FP32 before W·s (llm-compressor multiplies by the FP64 scales
            # and rounds the product once): a one-ulp difference in W·s can move a group's largest
            # negative weight across the −7.5 rounding boundary, so both sides use the same FP32 s.
            scales = scales.float()
            candidates.append(scales.clone())
            scaled = W * scales.view(1, -1)
            candidate = fake_quant(scaled, q) / scales.view(1, -1)
            output = X @ candidate.T
            loss = torch.nn.functional.mse_loss(reference, output, reduction="sum").item() / reference.numel()
            losses.append(loss)
            if loss < (losses[best] if best >= 0 else float("inf")):
                best, best_scales = len(losses) - 1, scales.clone()
        s = best_scales.float()
        smoothed = (W * s.view(1, -1)).float()
        output = (X / s.view(1, -1)) @ fake_quant(smoothed, q).T
        ordered = sorted(losses)
        expected["schemes"][label] = {"symmetric": symmetric, "losses": losses, "best": best,
                                      "margin": (ordered[1] - ordered[0]) / ordered[0],
                                      "scales": short(s.tolist()), "output": short(output.flatten().tolist())}
        expected["candidates"] = [short(c.tolist()) for c in candidates]  # the same for every scheme
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({"weight": weight, "input": x}, str(out / "layer.safetensors"))
    (out / "expected.json").write_text(json.dumps(expected) + "\n")
    for label, entry in expected["schemes"].items():
        print(f"{label}: best grid point {entry['best']} ({grid[entry['best']]}), loss {entry['losses'][entry['best']]:.4e} "
              f"vs identity {entry['losses'][0]:.4e}, margin to the runner-up {entry['margin']:.2%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
