#!/usr/bin/env python3
"""Measure the relative output error of every scheme, to set the accuracy-check thresholds.

For each scheme, weight model and probe model this prints ||X·(Ŵ−W)ᵀ|| / ||X·Wᵀ|| (FP64), where Ŵ
is W quantized and decoded by an independent reference:

- fp8 / fp8-e5m2: per-channel absmax scale (448 / 57344), rounding by ml_dtypes.
- int8: symmetric per-channel, scale = absmax/127, round half to even.
- int4: group 128 along the input dimension, symmetric (absmax/7, values −8…7) and asymmetric
  (min/max over 15 steps, zero point rounded) — compressed-tensors' two variants.
- q8_0, q4_0, q4_1, q5_0, q5_1, f16, bf16: gguf-py's own quantize/dequantize (gguf.quants).
- q2_k, q3_k, q5_k, iq4_nl, iq4_xs: ggml's own quantizer (tools/ggml_oracle.py's harness around
  ggml_quantize_chunk, built against the llama.cpp of tools/build_llama_cpp.sh; LLAMA_CPP_DIR),
  decoded by gguf-py. Skipped with a note when that llama.cpp is not built.
- q4_k, q6_k: gguf-py cannot quantize these, so a plain min/max (q4_k) and absmax (q6_k)
  quantizer with the real super-block structure (6-bit sub-scales and mins under f16 d/dmin for
  q4_k; int8 sub-scales under an f16 d for q6_k) is simulated here. llama.cpp's quantizer searches
  for better scales, so the real error is at most this (the thresholds err on the loose side).

Weights: N(0, 0.02²) ("gaussian") and Student-t with 5 degrees of freedom scaled to the same
standard deviation ("heavy-tailed", kurtosis 9, closer to real LLM weights). A third, harsher
model ("salted": 0.1 % of weights ×20) is printed for information only.
Probes: 64 rows of N(0,1) ("gaussian") and the same with 6 channels ×20 ("outlier channels",
as LLM.int8() observed in real activations).

Run: .venv/bin/python tools/measure_accuracy_thresholds.py   (about a minute; from tools/ or with tools/ on PYTHONPATH)
The numbers are copied into formats/accuracy-report.md and the threshold table in
Sources/Quantize/Accuracy/AccuracyThresholds.swift.
"""
import numpy as np
import ml_dtypes
import gguf.quants as gq
from gguf import GGMLQuantizationType as T

ROWS, COLS, N = 512, 4096, 64
rng = np.random.default_rng(20261126)


def rne(x):
    return np.round(x)  # numpy rounds half to even


def fp8(w, dtype, fmax):
    scale = np.abs(w).max(axis=1, keepdims=True) / fmax
    scale[scale == 0] = 1
    return (w / scale).astype(dtype).astype(np.float32) * scale


def int8(w):
    scale = np.abs(w).max(axis=1, keepdims=True) / 127
    scale[scale == 0] = 1
    return np.clip(rne(w / scale), -128, 127) * scale


def int4_sym(w, group=128):
    g = w.reshape(w.shape[0], -1, group)
    scale = np.abs(g).max(axis=2, keepdims=True) / 7
    scale[scale == 0] = 1
    return (np.clip(rne(g / scale), -8, 7) * scale).reshape(w.shape)


def int4_asym(w, group=128):
    g = w.reshape(w.shape[0], -1, group)
    lo = np.minimum(g.min(axis=2, keepdims=True), 0)
    hi = np.maximum(g.max(axis=2, keepdims=True), 0)
    scale = (hi - lo) / 15
    scale[scale == 0] = 1
    zero = rne(-lo / scale)
    q = np.clip(rne(g / scale) + zero, 0, 15)
    return ((q - zero) * scale).reshape(w.shape)


def f16r(x):
    return x.astype(np.float16).astype(np.float32)


def q4_k(w):
    b = w.reshape(-1, 8, 32)
    lo = np.minimum(b.min(axis=2), 0)
    hi = b.max(axis=2)
    s = np.maximum(hi - lo, 0) / 15
    m = -lo
    d = f16r(s.max(axis=1, keepdims=True) / 63)
    dmin = f16r(m.max(axis=1, keepdims=True) / 63)
    qs = np.clip(rne(np.divide(s, d, out=np.zeros_like(s), where=d > 0)), 0, 63)
    qm = np.clip(rne(np.divide(m, dmin, out=np.zeros_like(m), where=dmin > 0)), 0, 63)
    scale = (d * qs)[:, :, None]
    mn = (dmin * qm)[:, :, None]
    q = np.clip(rne(np.divide(b + mn, scale, out=np.zeros_like(b), where=scale > 0)), 0, 15)
    return (scale * q - mn).reshape(w.shape)


def q6_k(w):
    b = w.reshape(-1, 16, 16)
    idx = np.abs(b).argmax(axis=2)
    signed_max = np.take_along_axis(b, idx[:, :, None], axis=2)[:, :, 0]
    s = signed_max / -32
    d = f16r(np.abs(s).max(axis=1, keepdims=True) / 127)
    qs = np.clip(rne(np.divide(s, d, out=np.zeros_like(s), where=d > 0)), -128, 127)
    scale = (d * qs)[:, :, None]
    q = np.clip(rne(np.divide(b, scale, out=np.zeros_like(b), where=scale != 0)), -32, 31)
    return (scale * q).reshape(w.shape)


def gguf_type(t):
    return lambda w: gq.dequantize(gq.quantize(w, t), t).astype(np.float32)


def ggml_type(name, tid):
    """Quantized by ggml itself through tools/ggml_oracle.py's harness, decoded by gguf-py."""
    def run(w):
        import subprocess
        blob = subprocess.run([str(HARNESS), str(tid), str(w.shape[0]), str(w.shape[1])],
                              input=np.ascontiguousarray(w, "<f4").tobytes(), capture_output=True, check=True).stdout
        t = getattr(T, name)
        return gq.dequantize(np.frombuffer(blob, np.uint8).reshape(w.shape[0], -1), t).astype(np.float32).reshape(w.shape)
    return run


HARNESS = None

SCHEMES = {
    "fp8": lambda w: fp8(w, ml_dtypes.float8_e4m3fn, 448.0),
    "fp8-e5m2": lambda w: fp8(w, ml_dtypes.float8_e5m2, 57344.0),
    "int8": int8,
    "int4": int4_sym,
    "int4 (asymmetric)": int4_asym,
    "q8_0": gguf_type(T.Q8_0),
    "q4_0": gguf_type(T.Q4_0),
    "q4_1": gguf_type(T.Q4_1),
    "q5_0": gguf_type(T.Q5_0),
    "q5_1": gguf_type(T.Q5_1),
    "q4_k": q4_k,
    "q6_k": q6_k,
    "q2_k": ggml_type("Q2_K", 10),
    "q3_k": ggml_type("Q3_K", 11),
    "q5_k": ggml_type("Q5_K", 13),
    "iq4_nl": ggml_type("IQ4_NL", 20),
    "iq4_xs": ggml_type("IQ4_XS", 23),
    "f16": gguf_type(T.F16),
    "bf16": gguf_type(T.BF16),
}


def weights(kind):
    if kind == "gaussian":
        return (rng.standard_normal((ROWS, COLS)) * 0.02).astype(np.float32)
    if kind == "heavy-tailed":
        t = rng.standard_t(5, (ROWS, COLS))
        return (t / np.sqrt(5 / 3) * 0.02).astype(np.float32)
    w = rng.standard_normal((ROWS, COLS)) * 0.02
    mask = rng.random((ROWS, COLS)) < 0.001
    w[mask] *= 20
    return w.astype(np.float32)


def probes(kind):
    x = rng.standard_normal((N, COLS))
    if kind == "outlier channels":
        x[:, rng.choice(COLS, 6, replace=False)] *= 20
    return x


def main():
    global HARNESS
    import tempfile
    from pathlib import Path
    import ggml_oracle
    work = tempfile.TemporaryDirectory()
    try:
        d = ggml_oracle.llama_dir()
        HARNESS = ggml_oracle.harness(d, Path(work.name))
    except SystemExit as e:
        print(f"(ggml types skipped: {e})")
        for k in [k for k, f in SCHEMES.items() if getattr(f, "__qualname__", "").startswith("ggml_type")]:
            del SCHEMES[k]
    weight_kinds = ["gaussian", "heavy-tailed", "salted"]
    probe_kinds = ["gaussian", "outlier channels"]
    ws = {k: weights(k) for k in weight_kinds}
    xs = {k: probes(k) for k in probe_kinds}
    header = ["scheme"] + [f"{w} W / {p} X" for w in weight_kinds for p in probe_kinds] + ["weight err (gauss)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, fn in SCHEMES.items():
        row = [name]
        werr = None
        for wk in weight_kinds:
            w = ws[wk]
            wq = fn(w).astype(np.float64)
            d = wq - w.astype(np.float64)
            if wk == "gaussian":
                werr = np.linalg.norm(d) / np.linalg.norm(w)
            for pk in probe_kinds:
                x = xs[pk]
                y = x @ w.astype(np.float64).T
                e = x @ d.T
                row.append(f"{np.linalg.norm(e) / np.linalg.norm(y):.5f}")
        row.append(f"{werr:.5f}")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
