#!/usr/bin/env python3
"""Measures on a real GPU the hardware numbers Fit's model rests on, and writes them as JSON.

- usable memory (torch.cuda.mem_get_info) against the catalog's usableMemoryGiB
- device memory bandwidth (large device-to-device copy, read + write bytes)
- host-to-device bandwidth, pinned and pageable (the link offloaded weights cross every step)
- batch-1 "decode" of a Llama-3.1-8B-shaped stack of BF16 weights (GEMVs only, no attention),
  replayed as a CUDA graph, at batch 1, 64 and 256: achieved bandwidth and TFLOPS
- dense BF16 and FP8 GEMM throughput (8192^3)

Usage: python3 tools/fit_device_check.py OUTPUT.json   (needs PyTorch with CUDA; about a minute)
"""
import json, subprocess, sys, time

out = {"tool": "tools/fit_device_check.py"}
try:
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,power.limit,clocks.max.sm,pcie.link.gen.max,pcie.link.width.max",
                          "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    out["nvidia_smi"] = smi.stdout.strip()
except Exception as e:  # noqa: BLE001 - report whatever failed
    out["nvidia_smi_error"] = str(e)

try:
    import torch
except ImportError as e:
    out["torch_error"] = str(e)
    json.dump(out, open(sys.argv[1], "w"), indent=1)
    print(json.dumps(out, indent=1))
    sys.exit(0)

out["torch"] = torch.__version__
dev = torch.device("cuda")
free, total = torch.cuda.mem_get_info()
out["memory_total_gib"] = total / 2**30
out["memory_free_gib"] = free / 2**30
out["device_name"] = torch.cuda.get_device_name()

def timed(fn, repeat):
    fn(); torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeat

# Device-to-device copy: 4 GiB read + 4 GiB written per copy.
n = 2 * 2**30
a = torch.empty(n, dtype=torch.bfloat16, device=dev); b = torch.empty_like(a)
t = timed(lambda: b.copy_(a), 10)
out["d2d_copy_gbps_read_plus_write"] = 2 * a.numel() * 2 / t / 1e9
del a, b

# Host-to-device: 1 GiB, pinned and pageable.
host = torch.empty(2**29, dtype=torch.bfloat16)
pinned = host.pin_memory()
target = torch.empty(2**29, dtype=torch.bfloat16, device=dev)
out["h2d_pinned_gbps"] = host.numel() * 2 / timed(lambda: target.copy_(pinned, non_blocking=True), 5) / 1e9
out["h2d_pageable_gbps"] = host.numel() * 2 / timed(lambda: target.copy_(host), 3) / 1e9
del host, pinned, target

# Llama-3.1-8B-shaped weight stack (32 layers + lm_head), BF16, GEMVs in sequence.
h, kv, ffn, vocab, layers = 4096, 1024, 14336, 128256, 32
shapes = [(h, h), (kv, h), (kv, h), (h, h), (ffn, h), (ffn, h), (h, ffn)]
weights = [[torch.randn(r, c, dtype=torch.bfloat16, device=dev) * 0.01 for (r, c) in shapes] for _ in range(layers)]
head = torch.randn(vocab, h, dtype=torch.bfloat16, device=dev) * 0.01
weight_bytes = sum(w.numel() * 2 for layer in weights for w in layer) + head.numel() * 2
flops_per_token = 2 * weight_bytes / 2
out["stack_weight_bytes"] = weight_bytes

def step(x):
    for q, k, v, o, g, u, d in weights:
        y = x @ q.T; x = x + (y @ o.T)
        _ = x @ k.T; _ = x @ v.T
        m = torch.nn.functional.silu(x @ g.T) * (x @ u.T)
        x = x + m @ d.T
    return x @ head.T

decode = {}
for batch in (1, 64, 256):
    x = torch.randn(batch, h, dtype=torch.bfloat16, device=dev) * 0.01
    step(x); torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(x)
    t = timed(graph.replay, 20)
    decode[str(batch)] = {"step_ms": t * 1e3, "achieved_gbps": weight_bytes / t / 1e9,
                          "achieved_tflops": flops_per_token * batch / t / 1e12}
    del graph
out["decode_stack_cuda_graph"] = decode
eager = timed(lambda: step(torch.randn(1, h, dtype=torch.bfloat16, device=dev)), 5)
out["decode_stack_eager_batch1_ms"] = eager * 1e3
del weights, head
torch.cuda.empty_cache()

# Dense GEMM peak.
m = 8192
x = torch.randn(m, m, dtype=torch.bfloat16, device=dev); y = torch.randn(m, m, dtype=torch.bfloat16, device=dev)
t = timed(lambda: x @ y, 20)
out["gemm_bf16_tflops"] = 2 * m**3 / t / 1e12
try:
    x8 = x.to(torch.float8_e4m3fn); y8 = y.to(torch.float8_e4m3fn).T
    one = torch.tensor(1.0, device=dev)
    t = timed(lambda: torch._scaled_mm(x8, y8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16), 20)
    out["gemm_fp8_tflops"] = 2 * m**3 / t / 1e12
except Exception as e:  # noqa: BLE001
    out["gemm_fp8_error"] = str(e)[:200]

json.dump(out, open(sys.argv[1], "w"), indent=1)
print(json.dumps(out, indent=1))
