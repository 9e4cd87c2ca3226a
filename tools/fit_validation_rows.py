#!/usr/bin/env python3
"""Writes Sources/Fit/Resources/validation.json: the measured rows of shared/reference/fit.md §C
as Fit requests (model preset, variant, devices, engine, workload) plus the measured value and source.

Run: python3 tools/fit_validation_rows.py   (deterministic; no network)
Values are copied from fit.md; where a row gives the load only through its result (ShareGPT runs),
the in-flight concurrency is DERIVED by Little's law (throughput × inter-token latency) and marked so.
"""
import json, os

TRT = "NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md"
TRT_A100 = "TRT-LLM A100 table quoted in https://github.com/hahnyuan/LLM-Viewer/issues/4"
TRT_GPTJ = "TRT-LLM v0.5 blog docs/source/blogs/H100vsA100.md"
TRT_H200 = "NVIDIA/TensorRT-LLM release/0.5.0 docs/source/blogs/H200launch.md"
LAMBDA = "LambdaLabsML/vllm-benchmark benchmark_v0.md"
GPTFAST = "pytorch-labs/gpt-fast README.md (8x A100-80GB at 330 W, 5-token prompt)"
KIPPLY = "cli99/llm-analysis examples/fastertransformer/README.md (kipply, https://kipp.ly/blog/transformer-inference-arithmetic/)"
XD = "XiongjieDai/GPU-Benchmarks-on-LLM-Inference README.md"
HERE = "measured in this project: tools/fit_device_check.py on NVIDIA H100 80GB HBM3, fixtures/fit/h100-device-check.json"
HERE_ATT = "measured in this project: tools/fit_device_attention.py on NVIDIA H100 80GB HBM3, fixtures/fit/h100-attention-check.json"
FLEX = "FMInference/FlexiGen benchmark/batch_size_table.md"
# ShareGPT averages used by vLLM's benchmark_serving (about 215 prompt and 198 output tokens per request).
SG_IN, SG_OUT = 215, 198

def row(id, model, variant, gpu, engine, metric, measured, source, input=128, output=128, concurrency=1, kv="fp16", note=None, offload=None):
    r = dict(id=id, model=model, variant=variant, gpu=gpu, engine=engine, metric=metric, measured=measured,
             inputTokens=input, outputTokens=output, concurrency=concurrency, kvDtype=kv, source=source)
    if note: r["note"] = note
    if offload: r["offload"] = offload
    return r

rows = [
    # C.2 TensorRT-LLM (FP8 rows with FP8 KV cache, as NVIDIA's perf runs quantize it)
    row("12", "llama-3.1-8b", "fp8", "h100-sxm-80gb:1", "trtllm", "throughput", 28312, TRT, 128, 128, "max", "fp8"),
    row("13", "llama-3.1-8b", "fp8", "h100-sxm-80gb:1", "trtllm", "throughput", 3450, TRT, 2048, 128, "max", "fp8"),
    row("14a", "llama-3.1-8b", "fp8", "h100-sxm-80gb:1", "trtllm", "throughput", 22714, TRT, 128, 2048, "max", "fp8"),
    row("14b", "llama-3.1-8b", "fp8", "h200-sxm-141gb:1", "trtllm", "throughput", 26221, TRT, 128, 2048, "max", "fp8"),
    row("15", "llama-3.3-70b", "fp8", "h100-sxm-80gb:2", "trtllm", "throughput", 6651, TRT, 128, 2048, "max", "fp8"),
    row("16", "llama-3.3-70b", "fp8", "h200-sxm-141gb:1", "trtllm", "throughput", 4336, TRT, 128, 2048, "max", "fp8"),
    row("18", "llama-3.1-405b", "fp8", "h100-sxm-80gb:8", "trtllm", "throughput", 2919, TRT, 1000, 1000, "max", "fp8"),
    row("19", "llama-2-7b", "fp16", "a100-sxm-80gb:1", "trtllm", "throughput", 5353, TRT_A100, 128, 128, 256),
    row("20a", "llama-2-7b", "fp16", "a100-sxm-80gb:1", "trtllm", "throughput", 1518, TRT_A100, 128, 2048, 32),
    row("20b", "llama-2-7b", "fp16", "a100-sxm-80gb:1", "trtllm", "throughput", 613, TRT_A100, 2048, 2048, 16),
    row("21a", "llama-2-7b", "fp16", "a100-sxm-80gb:1", "trtllm", "ttft", 0.0161, TRT_A100, 128, 1, 1),
    row("21b", "llama-2-7b", "fp16", "a100-sxm-80gb:1", "trtllm", "ttft", 0.1205, TRT_A100, 2048, 1, 1),
    row("22a", "gpt-j-6b", "fp8", "h100-sxm-80gb:1", "trtllm", "throughput", 10907, TRT_GPTJ, 128, 128, 64, "fp8"),
    row("22b", "gpt-j-6b", "fp16", "a100-sxm-80gb:1", "trtllm", "throughput", 3679, TRT_GPTJ, 128, 128, 64),
    row("23a", "gpt-j-6b", "fp8", "h100-sxm-80gb:1", "trtllm", "ttft", 0.0071, TRT_GPTJ, 128, 1, 1, "fp8"),
    row("23b", "gpt-j-6b", "fp16", "a100-sxm-80gb:1", "trtllm", "ttft", 0.0125, TRT_GPTJ, 128, 1, 1),
    row("24", "llama-2-70b", "fp8", "h200-sxm-141gb:1", "trtllm", "throughput", 3014, TRT_H200, 128, 128, 512, "fp8"),
    row("25", "llama-2-13b", "fp8", "h200-sxm-141gb:1", "trtllm", "throughput", 11819, TRT_H200, 128, 128, 1024, "fp8"),
    # C.4 vLLM 0.5.4 (LambdaLabs, ShareGPT, 320 prompts at once; in-flight concurrency DERIVED = tok/s × ITL)
    row("31", "llama-3.1-8b", "fp8", "h100-sxm-80gb:1", "vllm-0.5", "throughput", 3400, LAMBDA, SG_IN, SG_OUT, 67, note="concurrency DERIVED 3,400 tok/s x 19.75 ms"),
    row("32", "llama-3.1-8b", "fp8", "a100-sxm-80gb:1", "vllm-0.5", "throughput", 1518, LAMBDA, SG_IN, SG_OUT, 65, note="Marlin W8A16; concurrency DERIVED 1,518 x 42.85 ms"),
    row("33a", "mistral-7b-v0.3", "bf16", "h100-sxm-80gb:1", "vllm-0.5", "throughput", 3281, LAMBDA, SG_IN, SG_OUT, 89, note="concurrency DERIVED 3,281 x 27.2 ms"),
    row("33b", "mistral-7b-v0.3", "bf16", "a100-sxm-80gb:1", "vllm-0.5", "throughput", 1591, LAMBDA, SG_IN, SG_OUT, 90, note="concurrency DERIVED 1,591 x 56.5 ms"),
    row("34a", "llama-3.1-70b", "fp8", "h100-sxm-80gb:1", "vllm-0.5", "throughput", 419, LAMBDA, SG_IN, SG_OUT, "max"),
    row("34b", "llama-3.1-70b", "fp8", "h100-sxm-80gb:2", "vllm-0.5", "throughput", 1728, LAMBDA, SG_IN, SG_OUT, "max"),
    row("34c", "llama-3.1-70b", "fp8", "h100-sxm-80gb:8", "vllm-0.5", "throughput", 2573, LAMBDA, SG_IN, SG_OUT, "max"),
    row("35a", "llama-3.1-70b", "fp8", "a100-sxm-80gb:1", "vllm-0.5", "throughput", 209, LAMBDA, SG_IN, SG_OUT, "max"),
    row("35b", "llama-3.1-70b", "fp8", "a100-sxm-80gb:8", "vllm-0.5", "throughput", 1163, LAMBDA, SG_IN, SG_OUT, "max"),
    row("36a", "llama-3.1-405b", "fp8", "h100-sxm-80gb:8", "vllm-0.5", "throughput", 1231, LAMBDA, SG_IN, SG_OUT, 90, note="concurrency DERIVED 1,231 x 73.5 ms"),
    row("36b", "llama-3.1-405b", "fp8", "a100-sxm-80gb:8", "vllm-0.5", "throughput", 468, LAMBDA, SG_IN, SG_OUT, 85, note="concurrency DERIVED 468 x 180.7 ms"),
    row("37", "llama-3.1-8b", "bf16", "h100-sxm-80gb:1", "vllm", "throughput", 8088, LAMBDA + " (v0.5.4 vs v0.6.0)", SG_IN, SG_OUT, "max"),
    row("38", "llama-3.1-70b", "bf16", "h100-sxm-80gb:4", "vllm", "throughput", 3543, LAMBDA + " (v0.5.4 vs v0.6.0)", SG_IN, SG_OUT, "max"),
    row("39", "llama-3-8b", "bf16", "h100-sxm-80gb:1", "vllm", "decodePerUser", 1 / 0.00756, "LambdaLabsML/vllm-benchmark results/prompt_10/1xH100-80GB-SXM/Meta-Llama-3-8B-Instruct_tp1_len2048.json", SG_IN, SG_OUT, 10, note="median TPOT 7.56 ms"),
    row("40a", "llama-3.1-8b", "bf16", "h200-sxm-141gb:1", "vllm", "e2e", 0.833, "https://buildkite.com/vllm/performance-benchmark/builds/9515", 32, 128, 8),
    row("40b", "llama-3-70b", "bf16", "h200-sxm-141gb:4", "vllm", "e2e", 2.078, "https://buildkite.com/vllm/performance-benchmark/builds/9515", 32, 128, 8),
    row("41a", "llama-3.1-70b", "fp8", "mi300x:8", "vllm", "throughput", 16365, "https://amd.com/zh-cn/developer/resources/rocm-hub/dev-ai/performance-results.html", 128, 2048, "max", "fp8"),
    row("41b", "llama-3.1-70b", "fp8", "mi300x:8", "vllm", "throughput", 8217, "https://amd.com/zh-cn/developer/resources/rocm-hub/dev-ai/performance-results.html", 2048, 2048, "max", "fp8"),
    row("42a", "llama-3.1-405b", "fp8", "mi300x:8", "vllm", "e2eTokensPerSecond", 36, "https://blogs.oracle.com/cloud-infrastructure/serving-llama-31-405b-model-with-amd-mi300x-gpus", 128, 128, 1),
    row("42b", "llama-3.1-405b", "fp8", "mi300x:8", "vllm", "throughput", 1846, "https://blogs.oracle.com/cloud-infrastructure/serving-llama-31-405b-model-with-amd-mi300x-gpus", 128, 128, 256),
    row("43", "llama-3.1-405b", "fp8", "mi300x:8", "vllm", "throughput", 2794, "https://blogs.oracle.com/cloud-infrastructure/serving-llama-31-405b-model-with-amd-mi300x-gpus", 128, 2048, "max"),
    # C.5 gpt-fast, batch 1
    row("45", "llama-2-7b", "bf16", "a100-sxm-80gb:1", "gpt-fast", "decodePerUser", 104.9, GPTFAST, 5, 200, 1),
    row("46a", "llama-2-7b", "int8", "a100-sxm-80gb:1", "gpt-fast", "decodePerUser", 155.6, GPTFAST, 5, 200, 1),
    row("46b", "llama-2-7b", "int4-g32", "a100-sxm-80gb:1", "gpt-fast", "decodePerUser", 196.8, GPTFAST, 5, 200, 1),
    row("47a", "llama-2-70b", "int8", "a100-sxm-80gb:1", "gpt-fast", "decodePerUser", 19.13, GPTFAST, 5, 200, 1),
    row("47b", "llama-2-70b", "int4-g32", "a100-sxm-80gb:1", "gpt-fast", "decodePerUser", 25.25, GPTFAST, 5, 200, 1),
    row("48a", "llama-2-70b", "bf16", "a100-sxm-80gb:2", "gpt-fast", "decodePerUser", 21.3, GPTFAST, 5, 200, 1),
    row("48b", "llama-2-70b", "bf16", "a100-sxm-80gb:4", "gpt-fast", "decodePerUser", 38.0, GPTFAST, 5, 200, 1),
    row("48c", "llama-2-70b", "bf16", "a100-sxm-80gb:8", "gpt-fast", "decodePerUser", 62.5, GPTFAST, 5, 200, 1),
    row("49", "llama-2-7b", "bf16", "a100-sxm-80gb:8", "gpt-fast", "decodePerUser", 328.4, GPTFAST, 5, 200, 1),
    # Measured in this project on the device machine (tools/fit_device_check.py): a Llama-3.1-8B-shaped
    # stack of BF16 GEMVs (no attention, no embedding lookup) replayed as a CUDA graph.
    row("H1", "llama-3.1-8b", "bf16", "h100-sxm-80gb:1", "gpt-fast", "decodePerUser", 1 / 0.00613141, HERE, 1, 2, 1, note="6.13 ms per step"),
    row("H2", "llama-3.1-8b", "bf16", "h100-sxm-80gb:1", "gpt-fast", "decodeTotal", 64 / 0.00643282, HERE, 1, 2, 64, note="6.43 ms per step at batch 64"),
    row("H3", "llama-3.1-8b", "bf16", "h100-sxm-80gb:1", "gpt-fast", "decodeTotal", 256 / 0.00806547, HERE, 1, 2, 256, note="8.07 ms per step at batch 256"),
    # Same model with a KV cache (SDPA, GQA), tools/fit_device_attention.py; step time per batch x context.
    row("H4", "llama-3.1-8b", "bf16", "h100-sxm-80gb:1", "gpt-fast", "stepSeconds", 0.0121745, HERE_ATT, 2048, 1, 64),
    row("H5", "llama-3.1-8b", "bf16", "h100-sxm-80gb:1", "gpt-fast", "stepSeconds", 0.0119339, HERE_ATT, 8192, 1, 16),
    row("H6", "llama-3.1-8b", "bf16", "h100-sxm-80gb:1", "gpt-fast", "stepSeconds", 0.0077716, HERE_ATT, 32768, 1, 1),
    row("H7", "llama-3.1-8b", "bf16", "h100-sxm-80gb:1", "gpt-fast", "stepSeconds", 0.0128692, HERE_ATT, 1024, 1, 128),
    # C.6 FasterTransformer 13B (kipply), batch 1, 512-token prompt
    row("51a", "llama-2-13b", "fp16", "a100-sxm-40gb:1", "trtllm", "ttft", 0.06317, KIPPLY, 512, 1, 1, note="FasterTransformer; a 13B model with the Llama-2-13B shape"),
    row("51b", "llama-2-13b", "fp16", "a100-sxm-40gb:1", "trtllm", "decodePerUser", 1 / 0.0220, KIPPLY, 512, 128, 1, note="22.0 ms per token"),
    row("52a", "llama-2-13b", "fp16", "a100-sxm-40gb:2", "trtllm", "ttft", 0.04545, KIPPLY, 512, 1, 1),
    row("52b", "llama-2-13b", "fp16", "a100-sxm-40gb:2", "trtllm", "decodePerUser", 1 / 0.0135, KIPPLY, 512, 128, 1, note="13.5 ms per token"),
    # C.7 llama.cpp, batch 1 (RunPod "A100 80GB" is the PCIe card)
    row("53a", "llama-2-7b", "q4_0", "a100-pcie-80gb:1", "llamacpp", "decodePerUser", 136.2, XD, 512, 128, 1),
    row("53b", "llama-2-7b", "f16", "a100-pcie-80gb:1", "llamacpp", "decodePerUser", 73.8, XD, 512, 128, 1),
    row("54a", "llama-2-7b", "q4_0", "h100-pcie-80gb:1", "llamacpp", "decodePerUser", 133.8, XD, 512, 128, 1),
    row("54b", "llama-2-7b", "f16", "h100-pcie-80gb:1", "llamacpp", "decodePerUser", 83.3, XD, 512, 128, 1),
    row("55a", "llama-2-70b", "q4_0", "a100-pcie-80gb:1", "llamacpp", "decodePerUser", 25.7, XD, 512, 128, 1),
    row("55b", "llama-2-70b", "q4_0", "h100-pcie-80gb:1", "llamacpp", "decodePerUser", 25.9, XD, 512, 128, 1),
    row("56a", "llama-2-7b", "q4_0", "rtx-4090:1", "llamacpp", "decodePerUser", 149.4, XD, 512, 128, 1),
    row("56b", "llama-2-7b", "f16", "rtx-4090:1", "llamacpp", "decodePerUser", 60.8, XD, 512, 128, 1),
    row("56c", "llama-2-7b", "q4_0", "rtx-4090:1", "llamacpp", "prefillTokensPerSecond", 5531, XD, 512, 128, 1),
    row("56d", "llama-2-7b", "f16", "rtx-4090:1", "llamacpp", "prefillTokensPerSecond", 7349, XD, 512, 128, 1),
    row("59a", "llama-3-8b", "q4_k", "rtx-4090:1", "llamacpp", "decodePerUser", 130.6, XD + " (May 2024; Q4_K_M planned as q4_k)", 512, 512, 1),
    row("59b", "llama-3-8b", "f16", "rtx-4090:1", "llamacpp", "decodePerUser", 54.8, XD, 512, 512, 1),
    row("59c", "llama-3-8b", "q4_k", "rtx-4090:1", "llamacpp", "prefillTokensPerSecond", 7139, XD, 512, 512, 1),
    row("59d", "llama-3-8b", "f16", "rtx-4090:1", "llamacpp", "prefillTokensPerSecond", 9382, XD, 512, 512, 1),
    row("60", "llama-3-70b", "q4_k", "rtx-4090:2", "llamacpp", "decodePerUser", 19.2, XD, 512, 512, 1),
    row("62a", "llama-2-7b", "f16", "rtx-4090:1", "llamacpp", "decodePerUser", 61.0, "https://github.com/ggml-org/llama.cpp/pull/4766", 512, 128, 1),
    row("62b", "llama-2-7b", "q8_0", "rtx-4090:1", "llamacpp", "decodePerUser", 98.1, "https://github.com/ggml-org/llama.cpp/pull/4766", 512, 128, 1),
    row("62c", "llama-2-7b", "f16", "rtx-4090:1", "llamacpp", "prefillTokensPerSecond", 11048, "https://github.com/ggml-org/llama.cpp/pull/4766", 512, 128, 1),
    row("62d", "llama-2-7b", "q8_0", "rtx-4090:1", "llamacpp", "prefillTokensPerSecond", 7664, "https://github.com/ggml-org/llama.cpp/pull/4766", 512, 128, 1),
    # C.8 offload (FlexGen benchmark table: prompt 512, 32 generated tokens)
    row("66", "opt-30b", "fp16", "t4:1", "transformers", "offloadStream", 0.62, FLEX, 512, 32, 8, offload="stream", note="HF accelerate device_map CPU offload, batch 8"),
    row("67", "opt-30b", "fp16", "t4:1", "transformers", "offloadStream", 0.60, FLEX, 512, 32, 8, offload="stream", note="DeepSpeed ZeRO-Inference, planned as streaming"),
    row("69", "opt-6.7b", "fp16", "t4:1", "transformers", "throughput", 25.1, FLEX, 512, 32, 2, note="fits the GPU; batch 2"),
]

not_modelled = [
    {"id": "17", "reason": "NVFP4 is not a variant Quantize produces"},
    {"id": "44", "reason": "values not extracted in fit.md"},
    {"id": "50", "reason": "MI250X is not in the catalog"},
    {"id": "57/61", "reason": "Apple M-series is not in the catalog"},
    {"id": "58", "reason": "llama.cpp row split across 6 GPUs (pre-PR #4766) is not modelled"},
    {"id": "63", "reason": "June 2023 llama.cpp build (PR #1827) before K-quant CUDA kernels matured: 3x slower than the same GPU in 2024 rows; the llamacpp class describes current builds"},
    {"id": "68", "reason": "FlexGen's own offloading policy is not an engine class here"},
]

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "Sources", "Fit", "Resources", "validation.json")
with open(out, "w") as f:
    json.dump({"source": "shared/reference/fit.md section C (MEASURED rows)", "rows": rows, "notModelled": not_modelled}, f, indent=1)
    f.write("\n")
print(f"wrote {len(rows)} rows to {os.path.relpath(out)}")
