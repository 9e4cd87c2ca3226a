#!/usr/bin/env python3
"""Write fixtures/accuracy/oracle.json: expected values for the accuracy check, from numpy (FP64).

Contents:
- "splitmix64": the first outputs of SplitMix64 for two seeds (reference algorithm, Python ints).
- "probe": the probe activations the Swift code must generate (SplitMix64 + Box–Muller, outlier
  channels by a partial Fisher–Yates shuffle on a second stream), for a small width, with and
  without outliers.
- "cases": small W, Ŵ, X with the metrics computed by numpy in FP64:
  relative error, SQNR (dB), cosine similarity, max absolute error, relative weight error, and,
  for a case checked on sampled rows, the rows the sampling rule picks.

Run: .venv/bin/python tools/make_accuracy_fixtures.py   (fixed seed; output < 40 kB)
"""
import json
import math
import os

import numpy as np

MASK = (1 << 64) - 1
DEFAULT_SEED = 0x00C0FFEE
OUTLIER_STREAM = 0x6F75746C69657273


def splitmix64(seed):
    state = seed
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


def unit(gen):
    return ((next(gen) >> 11) + 1) * 2.0**-53


def probe(rows, columns, seed, outliers=None):
    gen = splitmix64(seed)
    count = rows * columns
    values = np.zeros(count, dtype=np.float32)
    i = 0
    while i < count:
        radius = math.sqrt(-2 * math.log(unit(gen)))
        angle = 2 * math.pi * unit(gen)
        values[i] = np.float32(radius * math.cos(angle))
        if i + 1 < count:
            values[i + 1] = np.float32(radius * math.sin(angle))
        i += 2
    values = values.reshape(rows, columns)
    channels = []
    if outliers:
        picker = splitmix64(seed ^ OUTLIER_STREAM)
        order = list(range(columns))
        chosen = min(outliers[0], columns)
        for slot in range(chosen):
            pick = slot + next(picker) % (columns - slot)
            order[slot], order[pick] = order[pick], order[slot]
        channels = order[:chosen]
        for c in channels:
            values[:, c] *= np.float32(outliers[1])
    return values, channels


def metrics(w, wq, x, rows=None):
    if rows is not None:
        w, wq = w[rows], wq[rows]
    w64, wq64, x64 = (a.astype(np.float64) for a in (w, wq, x))
    y = x64 @ w64.T
    yq = x64 @ wq64.T
    d = yq - y
    rel = np.linalg.norm(d) / np.linalg.norm(y)
    return {
        "relative_error": rel,
        "sqnr_db": -20 * math.log10(rel),
        "cosine_similarity": float(np.sum(y * yq) / (np.linalg.norm(y) * np.linalg.norm(yq))),
        "max_abs_error": float(np.abs(d).max()),
        "relative_weight_error": float(np.linalg.norm(wq64 - w64) / np.linalg.norm(w64)),
    }


def int8_per_channel(w):
    scale = np.abs(w).max(axis=1, keepdims=True) / 127
    return (np.clip(np.round(w / scale), -128, 127) * scale).astype(np.float32)


def main():
    rng = np.random.default_rng(20261126)
    out = {"splitmix64": [], "probe": [], "cases": []}
    for seed in (0, DEFAULT_SEED):
        gen = splitmix64(seed)
        out["splitmix64"].append({"seed": seed, "outputs": [str(next(gen)) for _ in range(5)]})
    for outliers in (None, (3, 20.0)):
        values, channels = probe(3, 17, DEFAULT_SEED, outliers)
        out["probe"].append({
            "rows": 3, "columns": 17, "seed": DEFAULT_SEED,
            "outlier_count": outliers[0] if outliers else 0, "outlier_magnitude": outliers[1] if outliers else 0,
            "channels": channels, "values": [float(v) for v in values.ravel()],
        })

    def case(name, rows, cols, n, decode, sample=None):
        w = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
        x = rng.standard_normal((n, cols)).astype(np.float32)
        wq = decode(w)
        picked = None
        if sample is not None:
            k = max(1, sample // cols)
            picked = [((2 * i + 1) * rows) // (2 * k) for i in range(k)]
        entry = {
            "name": name, "rows": rows, "columns": cols, "probe_rows": n,
            "w": [float(v) for v in w.ravel()], "w_decoded": [float(v) for v in wq.ravel()],
            "x": [float(v) for v in x.ravel()], "max_checked_weights": sample, "checked_rows": picked,
        }
        entry.update(metrics(w, wq, x, picked))
        out["cases"].append(entry)

    case("int8 per-channel, 24 x 40, n 7", 24, 40, 7, int8_per_channel)
    case("bf16 truncation, 9 x 37, n 5", 9, 37, 5,
         lambda w: (w.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32))
    case("int8 per-channel, 50 rows sampled to 7, 16 columns, n 4", 50, 16, 4, int8_per_channel, sample=7 * 16 + 5)

    path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "accuracy", "oracle.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.normpath(path), os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
