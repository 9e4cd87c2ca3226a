import Foundation
import Formats

/// How an engine budgets memory and how close to the hardware's peak it runs, calibrated on the
/// published measurements listed in `calibration` (Resources/engines.json; rows of
/// shared/reference/fit.md §C, machine-readable copy in Resources/validation.json).
public struct EngineProfile: Codable, Sendable, Hashable {
    /// How the KV-cache budget is computed.
    public enum MemoryRule: String, Codable, Sendable {
        /// `total × memoryUtilization − (weights + activations + overhead)` (vLLM's gpu_memory_utilization).
        case vllm
        /// `(total − weights − activations − overhead) × memoryUtilization` (TensorRT-LLM free_gpu_memory_fraction).
        case trtllm
        /// `total − margin − weights − compute buffer`, KV for the whole context allocated up front (llama.cpp).
        case llamacpp
        /// No pre-allocation: everything must fit in `total × memoryUtilization` (transformers/accelerate, gpt-fast).
        case transformers
    }
    /// How several devices share the model.
    public enum SplitMode: String, Codable, Sendable {
        /// Tensor parallelism: each step runs on all devices at once, two all-reduces per layer.
        case tensor
        /// Layer split: devices run their layers one after another (llama.cpp default since PR #4766).
        case layer
    }

    /// The name users type after `--engine`.
    public var name: String
    /// A longer name.
    public var displayName: String
    /// KV budget rule.
    public var memoryRule: MemoryRule
    /// The fraction of memory the engine lets itself use (gpu_memory_utilization, free_gpu_memory_fraction).
    public var memoryUtilization: Double
    /// CUDA context, non-torch allocations and CUDA-graph pool, GiB per device.
    public var runtimeOverheadGiB: Double
    /// Tokens the engine sizes its activation buffers for (max_num_batched_tokens, max_num_tokens, n_ubatch).
    public var maxBatchedTokens: Int
    /// Most sequences decoded together (max_num_seqs, max_batch_size).
    public var maxSequences: Int
    /// Multi-device split.
    public var splitMode: SplitMode
    /// Whether a tensor-splitting engine can also pipeline layers over devices (vLLM and TensorRT-LLM
    /// `pipeline_parallel_size`); nil means yes. gpt-fast has tensor parallelism only.
    public var supportsPipelineParallel: Bool?
    /// Fraction of datasheet memory bandwidth reached by decode kernels on 16-bit or native weights.
    public var bandwidthEfficiency: Double
    /// Fraction of datasheet bandwidth reached reading the KV cache in attention kernels.
    public var kvBandwidthEfficiency: Double
    /// Bandwidth efficiency by weight variant where dequantization kernels do worse (`int4`, `fp8-weight-only`, `q4_0`).
    public var variantBandwidthEfficiency: [String: Double]
    /// Fraction of datasheet memory bandwidth reached on a CPU with datasheet (theoretical) DRAM bandwidth.
    public var cpuBandwidthEfficiency: Double
    /// Fraction of dense peak reached by batched decode GEMMs.
    public var computeEfficiency: Double
    /// Fraction of dense peak reached by long-prompt prefill.
    public var prefillComputeEfficiency: Double
    /// Fixed cost per decode step in seconds (scheduling, sampling, launches).
    public var stepOverheadSeconds: Double
    /// Cost per layer per step in seconds (kernel launches without CUDA graphs).
    public var stepOverheadSecondsPerLayer: Double
    /// Cost per running sequence per step in seconds (Python-side scheduling and detokenisation).
    public var stepOverheadSecondsPerSequence: Double
    /// Cost per step for each device beyond the first (vLLM 0.5's per-worker input broadcast, llama.cpp's hand-over between split layers).
    public var stepOverheadSecondsPerExtraDevice: Double
    /// Cost per layer of a prefill pass in seconds (small-GEMM inefficiency at short prompts).
    public var prefillOverheadSecondsPerLayer: Double
    /// Fraction of the host link's per-direction bandwidth reached when streaming offloaded weights.
    public var offloadLinkEfficiency: Double
    /// The measured rows (ids in Resources/validation.json) these numbers were fitted to.
    public var calibration: [String]
    /// How the numbers were obtained.
    public var notes: String

    /// Bandwidth efficiency for a variant executed as `execution` on a device of `kind`.
    public func bandwidthEfficiency(variant: Variant, execution: Execution, kind: DeviceKind, measuredBandwidth: Bool) -> Double {
        if kind == .cpu { return measuredBandwidth ? min(cpuBandwidthEfficiency / 0.7, 0.95) : cpuBandwidthEfficiency }
        if let specific = variantBandwidthEfficiency[variant.name] { return specific }
        if variant.weightFormat == "fp8", execution.weightOnly, let value = variantBandwidthEfficiency["fp8-weight-only"] { return value }
        if variant.isGGUF, !variant.isSixteenBit, let value = variantBandwidthEfficiency["gguf"] { return value }
        if !variant.isSixteenBit, execution.weightOnly, let value = variantBandwidthEfficiency[variant.weightFormat] { return value }
        return bandwidthEfficiency
    }
}

/// The engine table shipped with the tool (Resources/engines.json).
public enum Engines {
    /// Every engine profile.
    public static func all() throws -> [EngineProfile] {
        guard let url = Bundle.module.url(forResource: "engines", withExtension: "json", subdirectory: "Resources"),
              let data = try? Data(contentsOf: url) else {
            throw FitError(.unreadable, path: "Resources/engines.json", message: "the engine table is missing from the bundle", remedy: "rebuild the package")
        }
        do { return try JSONValueDecoder().decode([EngineProfile].self, from: [UInt8](data), path: "Resources/engines.json") } catch {
            throw FitError(.invalidCatalog, path: "Resources/engines.json", message: describe(error), remedy: "fix the engine table")
        }
    }

    /// Common spellings of engine names (`tensorrt-llm`, `llama.cpp`, `hf`).
    public static let aliases: [String: String] = [
        "tensorrt-llm": "trtllm", "tensorrt_llm": "trtllm", "trt-llm": "trtllm", "tensorrt": "trtllm", "llama.cpp": "llamacpp",
        "llama-cpp": "llamacpp", "llama_cpp": "llamacpp", "ggml": "llamacpp", "hf": "transformers", "accelerate": "transformers",
        "huggingface": "transformers", "gptfast": "gpt-fast", "vllm-0.5.4": "vllm-0.5",
    ]

    /// The engine called `name` (or one of ``aliases``); an unknown name throws `invalidRequest`
    /// with the closest known name and the known ones.
    public static func named(_ name: String) throws -> EngineProfile {
        let engines = try all()
        let key = aliases[name.lowercased()] ?? name.lowercased()
        if let engine = engines.first(where: { $0.name == key }) { return engine }
        let suggestion = closestName(to: key, among: engines.map(\.name) + aliases.keys.sorted()).map { " — did you mean '\(aliases[$0] ?? $0)'?" } ?? ""
        throw FitError(.invalidRequest, path: name, message: "unknown engine '\(name)'\(suggestion); known: \(engines.map(\.name).joined(separator: ", "))",
                       remedy: "pick one of the known engines")
    }
}
