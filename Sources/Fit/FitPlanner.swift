import Foundation
import Formats

/// How many sequences run at once.
public enum Concurrency: Sendable, Hashable {
    /// A fixed number of concurrent sequences.
    case count(Int)
    /// As many as the KV cache and the engine's batch limit allow.
    case max
}

/// Where weights that do not fit on the devices go.
public enum OffloadMode: String, Sendable, Hashable, Codable, CaseIterable {
    /// No offloading: a model that does not fit is reported as not fitting.
    case none
    /// Try every mode below and report the fastest.
    case auto
    /// Weights kept in host RAM and streamed over the host link every step (accelerate, vLLM --cpu-offload-gb).
    case stream
    /// Layers split between device and CPU, the CPU computing its share (llama.cpp -ngl).
    case split
    /// Everything on the CPU.
    case cpu
}

/// Everything the planner needs for one answer.
public struct FitRequest: Sendable {
    /// The model.
    public var model: ModelShape
    /// The weight variant.
    public var variant: Variant
    /// The devices.
    public var devices: DeviceSelection
    /// The serving engine.
    public var engine: EngineProfile
    /// Tokens of context per sequence used for the KV budget (max users, fits).
    public var context: Int
    /// Prompt tokens per request.
    public var inputTokens: Int
    /// Generated tokens per request.
    public var outputTokens: Int
    /// Concurrent sequences.
    public var concurrency: Concurrency
    /// KV-cache element bytes: 2 (FP16/BF16) or 1 (FP8).
    public var kvBytesPerElement: Int
    /// Offloading policy.
    public var offload: OffloadMode
    /// Host CPU (for offload modes); nil means none described.
    public var host: Hardware?
    /// Host link for streaming (from the device's `hostLink`).
    public var hostLink: Link?
    /// Device-to-device link for tensor parallelism.
    public var interconnect: Link?
    /// Price per device-hour overriding the catalog's.
    public var pricePerHour: Double?
    /// Decode speed each user must see, tokens per second.
    public var sloTokensPerSecond: Double?
    /// Longest acceptable time to first token, seconds.
    public var sloTTFTSeconds: Double?
    /// Run a mixture of experts expert-parallel: attention data-parallel on every device, whole
    /// experts spread over the devices, two all-to-alls per MoE layer (vLLM `--enable-expert-parallel`
    /// with `--data-parallel-size` = the device count). False: experts are tensor-parallel like every weight.
    public var expertParallel: Bool = false

    /// Creates a request; links are looked up in `catalog`.
    public init(model: ModelShape, variant: Variant, devices: DeviceSelection, engine: EngineProfile, catalog: HardwareCatalog,
                context: Int? = nil, inputTokens: Int = 1024, outputTokens: Int = 256, concurrency: Concurrency = .max,
                kvBytesPerElement: Int = 2, offload: OffloadMode = .none, host: Hardware? = nil, pricePerHour: Double? = nil,
                sloTokensPerSecond: Double? = nil, sloTTFTSeconds: Double? = nil) {
        self.model = model
        self.variant = variant
        self.devices = devices
        self.engine = engine
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.context = context ?? inputTokens + outputTokens
        self.concurrency = concurrency
        self.kvBytesPerElement = kvBytesPerElement
        self.offload = offload
        self.host = host
        self.pricePerHour = pricePerHour
        self.sloTokensPerSecond = sloTokensPerSecond
        self.sloTTFTSeconds = sloTTFTSeconds
        let hardware = devices.hardware
        let groupFits = devices.count <= (hardware.interconnectGroup ?? Int.max)
        self.interconnect = catalog.link(named: groupFits ? hardware.interconnect : hardware.hostLink) ?? catalog.link(named: hardware.hostLink)
        self.hostLink = catalog.link(named: hardware.hostLink)
    }
}

/// Memory per device, in bytes (the JSON `memory` object; formats/fit-output.md).
public struct MemoryBreakdown: Codable, Sendable {
    /// Devices the model is spread over.
    public var devices: Int
    /// Weight bytes on each device.
    public var weights: Double
    /// KV bytes the requested workload needs on each device (concurrency × context; one sequence at `max`).
    public var kvCache: Double
    /// KV bytes the engine reserves on each device (its budget).
    public var kvCapacity: Double
    /// Activation buffers on each device.
    public var activations: Double
    /// CUDA context, non-torch allocations, CUDA graphs or llama.cpp's margin on each device.
    public var overhead: Double
    /// weights + kvCache + activations + overhead.
    public var total: Double
    /// What the engine lets itself use on each device (memory × utilization rule).
    public var available: Double
    /// available − total (negative: does not fit).
    public var headroom: Double
    /// KV bytes per token on each device.
    public var kvBytesPerToken: Double
    /// KV bytes per token for the whole model.
    public var kvBytesPerTokenModel: Int
    /// Tokens of KV the budget holds.
    public var kvCacheTokens: Int
    /// Weight bytes of the variant for the whole model.
    public var weightsModel: Int
    /// Data-parallel ranks that each hold their own sequences (expert parallelism); 1 otherwise.
    public var dataParallelRanks: Int
}

/// Decode speed (the JSON `decode` object).
public struct DecodeEstimate: Codable, Sendable {
    /// Sequences decoded together.
    public var concurrency: Int
    /// Seconds per decode step (per output token of each user).
    public var stepSeconds: Double
    /// Output tokens per second seen by each user.
    public var tokensPerSecondPerUser: Double
    /// Output tokens per second summed over users.
    public var tokensPerSecondTotal: Double
    /// `memory`, `compute` or `overhead`: what limits a step.
    public var bound: String
    /// Weight bytes read per step per device.
    public var weightBytesPerStep: Double
    /// KV bytes read per step per device.
    public var kvBytesPerStep: Double
    /// The offload plan this decode runs (`stream`, `split`, `cpu`) when the weights do not fit the devices; nil on the devices.
    public var offload: String?
}

/// Prefill time of one prompt on an idle server (the JSON `prefill` object).
public struct PrefillEstimate: Codable, Sendable {
    /// Prompt tokens.
    public var inputTokens: Int
    /// Time to first token, seconds.
    public var ttftSeconds: Double
    /// Prompt tokens per second.
    public var tokensPerSecond: Double
    /// `memory` or `compute`.
    public var bound: String
}

/// Steady-state serving with prompts interleaved into decode steps (chunked prefill / in-flight batching).
public struct ThroughputEstimate: Codable, Sendable {
    /// Sequences in flight.
    public var concurrency: Int
    /// Seconds per engine step including the amortized prefill share.
    public var stepSeconds: Double
    /// Output tokens per second of all users.
    public var outputTokensPerSecond: Double
    /// Output tokens per second of each user.
    public var tokensPerSecondPerUser: Double
    /// Completed requests per second.
    public var requestsPerSecond: Double
}

/// The requested load as the engine runs it: at most the KV budget (and the engine's batch limit) in
/// flight, the rest waiting; latency includes the wait (closed loop: wait = queued ÷ completed requests per second).
public struct LoadEstimate: Codable, Sendable {
    /// Users asked for (the in-flight count for `max`).
    public var users: Int
    /// Sequences decoded together.
    public var inFlight: Int
    /// Users waiting for a slot.
    public var queued: Int
    /// What caps `inFlight` below `users` (`kv cache`); nil when all run.
    public var limitedBy: String?
    /// Mean wait for a slot, seconds.
    public var queueSeconds: Double
    /// Time to first token under this load: wait + prefill + one mixed step, seconds.
    public var ttftSeconds: Double
    /// Request latency: TTFT + output tokens × the loaded step, seconds.
    public var e2eSeconds: Double
}

/// Largest load that meets a service-level objective.
public struct SLOEstimate: Codable, Sendable {
    /// Required tokens per second per user, if any.
    public var tokensPerSecondPerUser: Double?
    /// Required TTFT in seconds, if any.
    public var ttftSeconds: Double?
    /// Most concurrent users that meet both (0: not even one).
    public var maxUsers: Int
    /// Output tokens per second of all users at that load.
    public var tokensPerSecondTotal: Double
}

/// One way of running a model that does not fit the devices.
public struct OffloadPlan: Codable, Sendable {
    /// `stream`, `split` or `cpu`.
    public var mode: String
    /// Weight bytes left in device memory (all devices).
    public var deviceWeightBytes: Double
    /// Weight bytes in host memory.
    public var hostWeightBytes: Double
    /// Layers on the device(s) out of all layers.
    public var deviceLayers: Int
    /// Seconds per decode step (per output token of each sequence).
    public var secondsPerToken: Double
    /// Output tokens per second of all sequences (concurrency ÷ step).
    public var tokensPerSecond: Double
    /// What limits it.
    public var bound: String
}

/// The whole answer (`quantize fit --json`; formats/fit-output.md).
public struct FitResult: Codable, Sendable {
    /// Model summary.
    public struct Model: Codable, Sendable {
        /// Name.
        public var name: String
        /// All parameters (all experts).
        public var parameterCount: Int
        /// Parameters read per token.
        public var activeParameterCount: Int
        /// Layers.
        public var layers: Int
        /// KV heads.
        public var kvHeads: Int
        /// Head dimension.
        public var headDim: Int
        /// Trained context.
        public var maxContext: Int
        /// Sliding window when declared.
        public var slidingWindow: Int?
        /// Experts (1: dense).
        public var experts: Int
    }
    /// The model.
    public var model: Model
    /// Variant name.
    public var variant: String
    /// How it runs: `native fp8` or `weight-only (dequantized to bf16)`.
    public var execution: String
    /// Whether the variant runs weight-only on this hardware.
    public var weightOnly: Bool
    /// Device label `name:count`.
    public var hardware: String
    /// Devices.
    public var deviceCount: Int
    /// Tensor-parallel degree (1 for layer split and expert parallelism).
    public var tensorParallel: Int
    /// How the devices share the model: TP, TP × PP for counts the heads do not divide, EP, or a layer split.
    public var parallelism: Parallelism
    /// Engine name.
    public var engine: String
    /// Context used for the KV budget.
    public var context: Int
    /// Whether the workload runs on the devices without offloading: the weights, overhead and the KV
    /// cache of at least one sequence fit (more users than the KV budget holds are queued, see `load`).
    public var fits: Bool
    /// Whether the weights, activations and overhead fit the devices (room left for some KV cache).
    public var weightsFit: Bool
    /// Whether the KV cache of every requested user fits at once (false: some are queued).
    public var kvFitsAllUsers: Bool
    /// The headline in words: `fits`, `fits: 45 in flight, the rest queued`, `fits with offload: 7.4 tok/s`, `does not fit`.
    public var verdict: String
    /// Users in flight, queued, and the latency they see under the requested load (nil when it does not fit).
    public var load: LoadEstimate?
    /// Memory per device.
    public var memory: MemoryBreakdown
    /// Most sequences of `context` tokens the KV budget holds (vLLM's "maximum concurrency").
    public var maxConcurrency: Int
    /// Longest context one sequence can have (capped by the model's trained context).
    public var longestContext: Int
    /// Decode at the requested concurrency (nil when it does not fit).
    public var decode: DecodeEstimate?
    /// Decode of a single user.
    public var decodeSingleUser: DecodeEstimate?
    /// Prefill of one prompt.
    public var prefill: PrefillEstimate?
    /// Serving with prefill interleaved.
    public var throughput: ThroughputEstimate?
    /// SLO result when an objective was given.
    public var slo: SLOEstimate?
    /// Price per device-hour used.
    public var pricePerHour: Double?
    /// Why there is no price (the catalog's `priceNote`), when there is none.
    public var priceNote: String?
    /// Dollars per million output tokens at `throughput` (nil without a price).
    public var costPerMillionTokens: Double?
    /// The CPU model's decode and prefill with the probe it used, on a probed CPU (`--device local`; CPUModel.swift).
    public var cpu: CPUModel.Estimate?
    /// Offload plans when the model does not fit and offloading was allowed.
    public var offload: [OffloadPlan]?
    /// The fastest offload plan's mode.
    public var offloadBest: String?
    /// The typical load the overview and the side-by-side table price this plan at (nil elsewhere).
    public var typicalLoad: TypicalLoad?
    /// Caveats in words.
    public var notes: [String]
}

/// Computes memory, speed and cost for a ``FitRequest`` (model in formats/fit-output.md §Model).
public enum FitPlanner {
    static let gibibyte = 1_073_741_824.0

    /// The weight bytes a request plans with: the stored bytes of a quantized checkpoint when the
    /// variant is the one it stores (its scales, zero points and kept tensors as they are on
    /// disk), else the variant's bytes for the model's logical shape; nil on overflow.
    public static func weightBytes(_ request: FitRequest) -> WeightBytes? {
        let model = request.model
        if let stored = model.storedQuantization, stored.schemeName == request.variant.name, let tensors = model.tensors {
            var bytes = WeightBytes()
            for tensor in tensors {
                guard let stored = tensor.storedBytes, let total = CheckedSize.multiply(stored, tensor.count) else { return nil }
                bytes.add(total, role: tensor.role)
            }
            return bytes
        }
        return request.variant.weightBytes(of: model)
    }

    /// Plans one request.
    public static func plan(_ request: FitRequest) throws -> FitResult {
        let model = request.model, hardware = request.devices.hardware, engine = request.engine
        let count = request.devices.count
        guard count >= 1 else {
            throw FitError(.invalidRequest, path: request.devices.label, message: "at least one device is needed", remedy: "write NAME:COUNT with COUNT ≥ 1")
        }
        let limit = 100_000_000
        var concurrencyOK = true
        if case .count(let n) = request.concurrency { concurrencyOK = n >= 1 && n <= limit }
        guard request.inputTokens >= 1, request.outputTokens >= 1, request.context >= 1,
              request.inputTokens <= limit, request.outputTokens <= limit, request.context <= limit, concurrencyOK,
              request.kvBytesPerElement == 1 || request.kvBytesPerElement == 2 else {
            throw FitError(.invalidRequest, path: "request", message: "input tokens, output tokens, context and concurrency must be from 1 to 100,000,000 and KV bytes 1 or 2", remedy: "fix --input-tokens, --output-tokens, --context or --concurrency")
        }
        let parallelism = try Self.parallelism(request)
        guard let bytes = weightBytes(request) else {
            throw FitError(.overflow, path: model.name, message: "the weight byte count overflows", remedy: "check the model shape")
        }
        let execution = request.variant.execution(on: hardware)
        var notes: [String] = []
        if let stored = model.storedQuantization {
            notes.append(stored.schemeName == request.variant.name
                ? "weights: the checkpoint's stored bytes, \(stored.summary)"
                : "the checkpoint is stored as \(stored.schemeName); these figures are for its weights as \(request.variant.name)")
        }
        if execution.weightOnly && request.variant.weightFormat == "fp8" && hardware.kind != .gpu {
            notes.append("\(hardware.displayName) has no FP8 matrix units: FP8 weights are dequantized to \(execution.mathPrecision), saving memory but not math")
        } else if execution.weightOnly && request.variant.weightFormat == "fp8" {
            notes.append("\(hardware.displayName) has no FP8 tensor cores: FP8 weights run weight-only (dequantized to \(execution.mathPrecision), Marlin-style W8A16), saving memory but not math")
        }
        if request.context > model.maxContext {
            notes.append("context \(request.context) is longer than the model's trained \(model.maxContext) tokens")
        }
        if parallelism.isPipelined {
            notes.append("tensor parallelism cannot take \(count) devices (\(model.attentionHeads) attention heads, \(model.kvHeads) KV heads): \(parallelism.summary), \(parallelism.layersPerStage) of \(model.layerCount) layers per stage; "
                         + "a token passes the stages one after another (per-user speed as on one stage's TP group), \(min(parallelism.pipeline, engine.maxSequences)) micro-batches keep the stages busy")
        }
        if parallelism.expert > 1 {
            notes.append("expert parallel: every device holds the attention and dense weights and the KV of its own sequences (data-parallel attention) and \(model.expertCount / parallelism.expert) of the \(model.expertCount) experts; each MoE layer sends every token to its experts' devices and back (two all-to-alls); the busiest device sets the step (expected busiest share of the routed experts)")
        }
        if model.isMixtureOfExperts {
            notes.append("MoE: memory holds all \(model.expertCount) experts; a decode step reads the experts its tokens are routed to (\(model.expertsPerToken) per token; more as the batch grows); routing is taken as uniform (hot experts are not modelled)")
        }
        var memory = memoryBreakdown(request, bytes: bytes)
        let kvPerSequence = Double(model.kvTokens(context: request.context)) * memory.kvBytesPerToken
        // A sequence lives on one data-parallel rank (one rank without expert parallelism).
        let ranks = parallelism.expert
        let tokensPerRank = memory.kvCacheTokens / ranks
        let maxConcurrency = kvPerSequence > 0 ? tokensPerRank / model.kvTokens(context: request.context) * ranks : 0
        var longest = min(tokensPerRank, model.maxContext)
        if let window = model.slidingWindow, tokensPerRank >= window { longest = model.maxContext }
        let weightsFit = memory.available - memory.weights - memory.activations - memory.overhead > 0
        // A serving engine runs what its KV budget and batch limit hold and queues the rest.
        let requested: Int
        switch request.concurrency {
        case .count(let n): requested = n
        case .max: requested = max(1, min(maxConcurrencyForLoad(request, memory: memory), engine.maxSequences * parallelism.expert))
        }
        // An explicit count is taken as the engine's configured batch (max_num_seqs set to it), so only the KV budget caps it.
        var inFlight = max(0, min(requested, maxConcurrency))
        if case .max = request.concurrency { inFlight = maxConcurrency >= 1 ? requested : 0 }
        let fits = weightsFit && inFlight >= 1
        let kvFitsAll = weightsFit && maxConcurrency >= requested
        if fits, inFlight < requested {
            var running = request
            running.concurrency = .count(inFlight)
            memory = memoryBreakdown(running, bytes: bytes)
        }

        var result = FitResult(
            model: .init(name: model.name, parameterCount: model.parameterCount, activeParameterCount: model.activeParameterCount,
                         layers: model.layerCount, kvHeads: model.kvHeads, headDim: model.headDim, maxContext: model.maxContext,
                         slidingWindow: model.slidingWindow, experts: model.expertCount),
            variant: request.variant.name, execution: execution.summary, weightOnly: execution.weightOnly,
            hardware: request.devices.label, deviceCount: count,
            tensorParallel: parallelism.tensor, parallelism: parallelism, engine: engine.name, context: request.context,
            fits: fits, weightsFit: weightsFit, kvFitsAllUsers: kvFitsAll, verdict: "", memory: memory, maxConcurrency: maxConcurrency, longestContext: max(longest, 0),
            pricePerHour: request.pricePerHour ?? hardware.pricePerHour,
            priceNote: (request.pricePerHour ?? hardware.pricePerHour) == nil ? hardware.priceNote : nil, notes: notes)

        let speed = SpeedModel(request: request, bytes: bytes, execution: execution, memory: memory)
        result.cpu = CPUModel.estimate(request)
        if fits {
            let users = inFlight
            result.decode = speed.decode(concurrency: users)
            result.decodeSingleUser = speed.decode(concurrency: 1)
            result.prefill = speed.prefill(tokens: request.inputTokens)
            let throughput = speed.throughput(concurrency: users)
            result.throughput = throughput
            let queued = requested - users
            let wait = queued > 0 ? Double(queued) / throughput.requestsPerSecond : 0
            let ttft = wait + (result.prefill?.ttftSeconds ?? 0) + throughput.stepSeconds
            result.load = LoadEstimate(users: requested, inFlight: users, queued: queued,
                                       limitedBy: queued > 0 ? "kv cache" : nil,
                                       queueSeconds: wait, ttftSeconds: ttft, e2eSeconds: ttft + Double(request.outputTokens) * throughput.stepSeconds)
            if let price = result.pricePerHour {
                result.costPerMillionTokens = price * Double(count) / 3600 / throughput.outputTokensPerSecond * 1e6
            }
            if request.sloTokensPerSecond != nil || request.sloTTFTSeconds != nil {
                result.slo = speed.slo(limit: max(1, min(maxConcurrencyForLoad(request, memory: memory), engine.maxSequences * parallelism.expert)),
                                       tokensPerSecond: request.sloTokensPerSecond, ttft: request.sloTTFTSeconds)
            }
        } else if request.offload != .none, !weightsFit, hardware.kind == .gpu || hardware.kind == .accelerator {
            // Offloading moves weights only; a KV cache that does not fit is a queueing question, not an offload one.
            var plans = OffloadPlanner.plans(request, bytes: bytes, execution: execution)
            if let host = request.host {
                // Weights kept on the host need its memory (less 10 % for the OS and the engine).
                let dropped = plans.filter { $0.hostWeightBytes > host.memoryBytes * 0.9 }
                plans.removeAll { $0.hostWeightBytes > host.memoryBytes * 0.9 }
                if !dropped.isEmpty {
                    result.notes.append("offload \(dropped.map(\.mode).joined(separator: ", ")): \(host.name) has \(String(format: "%.1f GB", host.memoryBytes / 1e9)) of memory, too little for the \(String(format: "%.1f GB", dropped[0].hostWeightBytes / 1e9)) of weights it would hold")
                }
            }
            result.offload = plans
            result.offloadBest = plans.max(by: { $0.tokensPerSecond < $1.tokensPerSecond })?.mode
            if let best = plans.first(where: { $0.mode == result.offloadBest }) {
                // The decode of the fastest offload plan, so `decode` is there whenever something runs.
                let users: Int
                if case .count(let n) = request.concurrency { users = n } else { users = 1 }
                let context = Double(request.inputTokens) + Double(request.outputTokens) / 2
                let kvBytes = Double(users) * Double(model.kvTokens(context: Int(context))) * Double(memory.kvBytesPerTokenModel)
                let decode = DecodeEstimate(concurrency: users, stepSeconds: best.secondsPerToken, tokensPerSecondPerUser: 1 / best.secondsPerToken,
                                            tokensPerSecondTotal: best.tokensPerSecond, bound: best.bound,
                                            weightBytesPerStep: best.deviceWeightBytes + best.hostWeightBytes, kvBytesPerStep: kvBytes, offload: best.mode)
                result.decode = decode
                if users == 1 { result.decodeSingleUser = decode }
            }
            if !plans.isEmpty, let host = request.host { result.notes.append("offload host: \(host.name) (\(host.displayName), \(Int(host.memoryBandwidthGBps)) GB/s)") }
        } else if !weightsFit, hardware.kind == .tpu, request.offload != .none {
            result.notes.append("\(hardware.displayName) has no PCIe weight offload in its serving stacks: no offload plan")
        }
        var isMax = false
        if case .max = request.concurrency { isMax = true }
        result.verdict = verdict(result, requested: requested, atMax: isMax)
        if engine.memoryRule == .llamacpp, count > 1 {
            result.notes.append("llama.cpp splits layers across devices (--split-mode layer): memory adds up, decode speed does not")
        }
        if model.isMixtureOfExperts, !request.expertParallel, engine.splitMode == .tensor, hardware.kind != .cpu, count > 1,
           model.expertCount % count == 0, result.fits {
            // The other way to spread a mixture: say what expert parallelism would give, so the choice is visible.
            var alternative = request
            alternative.expertParallel = true
            alternative.sloTokensPerSecond = nil
            alternative.sloTTFTSeconds = nil
            if let ep = try? plan(alternative), ep.fits, let one = ep.decodeSingleUser, let serving = ep.throughput {
                result.notes.append("with --expert-parallel (EP \(count), attention data-parallel): \(String(format: "%.1f", one.tokensPerSecondPerUser)) tok/s for one user, "
                                    + "\(String(format: "%.0f", serving.outputTokensPerSecond)) output tok/s at \(serving.concurrency) in flight"
                                    + (ep.costPerMillionTokens.map { String(format: " ($%.3f/M tokens)", $0) } ?? ""))
            }
        }
        return result
    }

    /// How `request`'s devices share its model (``Parallelism/plan(model:engine:count:expertParallel:label:isCPU:)``).
    public static func parallelism(_ request: FitRequest) throws -> Parallelism {
        try Parallelism.plan(model: request.model, engine: request.engine, count: request.devices.count, expertParallel: request.expertParallel,
                             label: request.devices.label, isCPU: request.devices.hardware.kind == .cpu)
    }

    /// Why `count` tensor-parallel ranks cannot run `model` (vLLM's rule: the attention heads divide
    /// evenly over the ranks, and the KV heads do too, or the ranks over the KV heads, which are then
    /// replicated); nil when they can.
    public static func tensorParallelProblem(model: ModelShape, count: Int) -> String? {
        guard count > 1 else { return nil }
        if model.attentionHeads % count != 0 {
            return "tensor parallelism over \(count) devices needs the \(model.attentionHeads) attention heads to divide evenly over them (vLLM refuses it); \(count) does not divide \(model.attentionHeads)"
        }
        let kv = model.kvHeads
        if kv >= count ? kv % count != 0 : count % kv != 0 {
            return "tensor parallelism over \(count) devices needs the \(kv) KV heads to divide evenly over them, or the devices over the heads (vLLM refuses it)"
        }
        return nil
    }

    /// The tensor-parallel counts from 1 to `limit` that ``tensorParallelProblem(model:count:)`` accepts.
    public static func validTensorParallelCounts(model: ModelShape, upTo limit: Int) -> [Int] {
        (1...max(1, limit)).filter { tensorParallelProblem(model: model, count: $0) == nil }
    }

    /// The headline of a result in words.
    static func verdict(_ r: FitResult, requested: Int, atMax: Bool) -> String {
        func speed(_ value: Double) -> String { value >= 10 ? String(format: "%.0f", value) : String(format: "%.1f", value) }
        if r.fits {
            guard let load = r.load, load.queued > 0 else {
                if atMax { return "fits: \(requested) in flight at full load" }
                return requested > 1 ? "fits: weights fit, KV for \(requested) users fits" : "fits"
            }
            return "fits: weights fit; KV for \(load.users) users does not (\(load.limitedBy ?? "limit")): \(load.inFlight) in flight, the rest queued"
        }
        if let best = r.offload?.first(where: { $0.mode == r.offloadBest }) {
            return "fits with offload: \(speed(best.tokensPerSecond)) tok/s (\(best.mode)); the weights alone do not fit the devices"
        }
        return r.weightsFit ? "does not fit: no room left for the KV cache of one sequence of \(r.context) tokens" : "does not fit: the weights do not fit the devices"
    }

    /// Sequences in flight under full load: the KV budget divided by the average tokens a running sequence holds.
    static func maxConcurrencyForLoad(_ request: FitRequest, memory: MemoryBreakdown) -> Int {
        let tokens = request.model.kvTokens(context: request.inputTokens + request.outputTokens)
        let ranks = max(1, memory.dataParallelRanks)
        return tokens > 0 ? memory.kvCacheTokens / ranks / tokens * ranks : 0
    }

    /// Memory per device for `request` (see ``EngineProfile/MemoryRule``).
    public static func memoryBreakdown(_ request: FitRequest, bytes: WeightBytes) -> MemoryBreakdown {
        let model = request.model, hardware = request.devices.hardware, engine = request.engine
        let count = Double(request.devices.count)
        let total = hardware.memoryBytes
        var weights = Double(bytes.total) / count
        let kvModel = model.kvBytesPerToken(bytesPerElement: request.kvBytesPerElement)
        let parallelism = (try? parallelism(request))
            ?? Parallelism(tensor: request.devices.count, pipeline: 1, expert: 1, layersPerStage: model.layerCount, summary: "TP \(request.devices.count)")
        // Activation buffers are split over the ranks that split each matrix.
        var shards = count
        // KV heads are split across tensor-parallel ranks, replicated when there are fewer heads than ranks.
        var kvPerDevice: Double
        if engine.splitMode == .tensor {
            let tensor = parallelism.tensor
            let headsPerDevice = (model.kvHeads + tensor - 1) / tensor
            kvPerDevice = Double(kvModel) * Double(headsPerDevice) / Double(model.kvHeads)
        } else {
            kvPerDevice = Double(kvModel) / count
        }
        var ranks = 1
        if parallelism.isPipelined {
            // The largest stage: its layers, and the embedding (first stage) or the output head (last).
            let share = Double(parallelism.layersPerStage) / Double(model.layerCount)
            let layerBytes = Double(bytes.total - bytes.embeddings - bytes.lmHead)
            let edge = Double(model.tiedEmbeddings ? bytes.embeddings : max(bytes.embeddings, bytes.lmHead))
            weights = (layerBytes * share + edge) / Double(parallelism.tensor)
            kvPerDevice *= share
            shards = Double(parallelism.tensor)
        } else if parallelism.expert > 1 {
            // Data-parallel attention: each device holds every non-expert weight, its share of the
            // experts, and the whole-model KV of its own sequences.
            ranks = parallelism.expert
            weights = Double(bytes.total - bytes.experts) + Double(bytes.experts) / Double(ranks)
            kvPerDevice = Double(kvModel)
            shards = 1
        }
        let overhead = hardware.kind == .cpu ? 0.5 * gibibyte : engine.runtimeOverheadGiB * gibibyte
        let ffn = Double(model.isMixtureOfExperts ? max(model.expertIntermediateSize, model.intermediateSize) : model.intermediateSize)
        let h = Double(model.hiddenSize)
        let tokens = Double(engine.maxBatchedTokens)
        // Peak of one forward pass over max_num_batched_tokens: residual and attention streams (4h) and
        // the gated MLP (gate/up output and activation, 3 × ffn) in 16 bits, plus FP32 logits of the sampled rows.
        var activations = tokens * (4 * h + 3 * ffn) * 2 / shards
            + Double(min(engine.maxSequences, engine.maxBatchedTokens)) * Double(model.vocabularySize) * 4 * 2
        if engine.memoryRule == .llamacpp {
            // llama.cpp compute buffer: one n_ubatch of activations in F32 plus the output row.
            activations = tokens * (4 * h + 2 * ffn) * 4 / count + Double(model.vocabularySize) * 4 * tokens / count
        }
        let wanted: Int
        switch request.concurrency {
        case .count(let n): wanted = (n + ranks - 1) / ranks
        case .max: wanted = 1
        }
        let kvNeeded = Double(wanted) * Double(model.kvTokens(context: request.context)) * kvPerDevice
        let available: Double
        let kvCapacity: Double
        switch engine.memoryRule {
        case .vllm:
            available = total * engine.memoryUtilization
            kvCapacity = available - weights - activations - overhead
        case .trtllm:
            let free = total - weights - activations - overhead
            kvCapacity = free * engine.memoryUtilization
            available = weights + activations + overhead + kvCapacity
        case .llamacpp, .transformers:
            available = total * engine.memoryUtilization
            kvCapacity = available - weights - activations - overhead
        }
        var kvTokens = kvPerDevice > 0 ? max(0, Int((kvCapacity / kvPerDevice).rounded(.down))) : 0
        if engine.memoryRule == .vllm { kvTokens = kvTokens / 16 * 16 }
        // Data-parallel ranks each hold their own sequences' KV: the deployment holds the sum.
        kvTokens *= ranks
        let used = weights + activations + overhead + kvNeeded
        return MemoryBreakdown(devices: request.devices.count, weights: weights, kvCache: kvNeeded, kvCapacity: max(kvCapacity, 0),
                               activations: activations, overhead: overhead, total: used, available: available,
                               headroom: available - used, kvBytesPerToken: kvPerDevice, kvBytesPerTokenModel: kvModel,
                               kvCacheTokens: kvTokens, weightsModel: bytes.total, dataParallelRanks: ranks)
    }
}

/// The roofline step model: per step, weight GEMMs (bytes over effective bandwidth against math over
/// effective compute, whichever is slower), then attention over the KV cache (likewise), then
/// tensor-parallel all-reduces and the engine's fixed per-step cost. GEMMs and attention are separate
/// kernels, so their times add.
struct SpeedModel {
    let request: FitRequest
    let bytes: WeightBytes
    let execution: Execution
    let memory: MemoryBreakdown

    /// How the devices share the model (worked out once: every step formula reads it).
    let parallelism: Parallelism

    init(request: FitRequest, bytes: WeightBytes, execution: Execution, memory: MemoryBreakdown) {
        self.request = request
        self.bytes = bytes
        self.execution = execution
        self.memory = memory
        parallelism = (try? FitPlanner.parallelism(request))
            ?? Parallelism(tensor: request.devices.count, pipeline: 1, expert: 1, layersPerStage: request.model.layerCount, summary: "TP \(request.devices.count)")
    }

    var model: ModelShape { request.model }
    var hardware: Hardware { request.devices.hardware }
    var engine: EngineProfile { request.engine }
    /// Devices that split each matrix of a step at the same time (the TP degree; 1 under layer split and expert parallelism).
    var parallel: Double { engine.splitMode == .tensor ? Double(parallelism.tensor) : 1 }
    var bandwidth: Double {
        hardware.bandwidthBytesPerSecond * engine.bandwidthEfficiency(variant: request.variant, execution: execution, kind: hardware.kind,
                                                                       measuredBandwidth: hardware.sources["bandwidth"] == "measured")
    }
    var kvBandwidth: Double {
        hardware.bandwidthBytesPerSecond * (hardware.kind == .cpu ? engine.cpuBandwidthEfficiency : engine.kvBandwidthEfficiency)
    }

    /// Weight bytes read by one step that processes `tokens` tokens, on one device.
    func weightBytesRead(tokens: Double) -> Double {
        var read = Double(bytes.projections + bytes.lmHead + bytes.other)
        if model.tiedEmbeddings { read += Double(bytes.embeddings) }
        if bytes.experts > 0 {
            // Distinct experts touched by `tokens` routed tokens, each picking k of E.
            let share = Double(model.expertsPerToken) / Double(model.expertCount)
            read += Double(bytes.experts) * (1 - pow(1 - share, max(tokens, 1)))
        }
        // Tensor parallelism splits every matrix over its ranks; a layer split reads it all, one device after another.
        return engine.splitMode == .tensor ? read / parallel : read
    }

    /// FLOPs of the weight GEMMs for `tokens` tokens (lm_head only for `sampled` of them), one device.
    func linearFlops(tokens: Double, sampled: Double) -> Double {
        let vocabParams = Double(model.vocabularySize * model.hiddenSize)
        let body = Double(model.activeParameterCount) - vocabParams
        return (2 * body * tokens + 2 * vocabParams * sampled) / parallel
    }

    var attentionWidth: Double { Double(model.layerCount * model.attentionHeads * model.headDim) }
    var peak: Double { hardware.peakFlops(execution.mathPrecision) }
    var sixteenBitPeak: Double { hardware.peakFlops(hardware.kind == .cpu ? "fp32" : "bf16") }

    func allReduceSeconds(tokens: Double) -> Double {
        guard engine.splitMode == .tensor, parallel > 1, let link = request.interconnect else { return 0 }
        let n = parallel
        let message = tokens * Double(model.hiddenSize) * 2
        let perCall = link.allReduceLatencyMicroseconds * 1e-6 + 2 * (n - 1) / n * message / (link.gigabytesPerSecond * 1e9)
        return 2 * Double(model.layerCount) * perCall
    }

    func overhead(sequences: Double) -> Double {
        var value = engine.stepOverheadSeconds + engine.stepOverheadSecondsPerLayer * Double(model.layerCount) + engine.stepOverheadSecondsPerSequence * sequences
        value += engine.stepOverheadSecondsPerExtraDevice * Double(request.devices.count - 1)
        return value
    }

    /// One engine step with `sequences` decoding at an average `context` and `prefillTokens` prompt tokens (of prompts `promptLength` long) mixed in.
    func step(sequences: Double, context: Double, prefillTokens: Double, promptLength: Double) -> (seconds: Double, bound: String, weightBytes: Double, kvBytes: Double) {
        if let cpu = cpuStep(sequences: sequences, context: context, prefillTokens: prefillTokens, promptLength: promptLength) { return cpu }
        let plan = parallelism
        if plan.isPipelined { return pipelineStep(plan, sequences: sequences, context: context, prefillTokens: prefillTokens, promptLength: promptLength) }
        if plan.expert > 1 { return expertStep(plan, sequences: sequences, context: context, prefillTokens: prefillTokens, promptLength: promptLength) }
        return tensorStep(sequences: sequences, context: context, prefillTokens: prefillTokens, promptLength: promptLength, kvBytesPerToken: memory.kvBytesPerToken)
    }

    /// One step on one tensor-parallel group holding every layer (or a layer split run device after device).
    func tensorStep(sequences: Double, context: Double, prefillTokens: Double, promptLength: Double, kvBytesPerToken: Double,
                    fixedCosts: Bool = true) -> (seconds: Double, bound: String, weightBytes: Double, kvBytes: Double) {
        let tokens = sequences + prefillTokens
        let weightBytes = weightBytesRead(tokens: tokens)
        let kvTokens = Double(model.kvTokens(context: Int(context)))
        let kvBytes = sequences * kvTokens * kvBytesPerToken * (engine.splitMode == .tensor ? 1 : Double(request.devices.count))
        let memoryTime = weightBytes / bandwidth
        let mathTime = linearFlops(tokens: tokens, sampled: sequences) / (peak * engine.computeEfficiency)
        let attentionFlops = (4 * attentionWidth * kvTokens * sequences + 2 * attentionWidth * promptLength * prefillTokens) / parallel
        let attentionMath = attentionFlops / (sixteenBitPeak * engine.computeEfficiency)
        let attentionMemory = kvBytes / kvBandwidth
        let fixed = (fixedCosts ? overhead(sequences: sequences) : 0) + allReduceSeconds(tokens: tokens)
        let seconds = max(memoryTime, mathTime) + max(attentionMemory, attentionMath) + fixed
        let memoryPart = memoryTime + attentionMemory, mathPart = mathTime + attentionMath
        let bound = fixed > max(memoryPart, mathPart) ? "overhead" : (mathPart > memoryPart ? "compute" : "memory")
        return (seconds, bound, weightBytes, kvBytes)
    }

    /// A pipeline of `plan.pipeline` stages, each a TP group holding `layersPerStage` layers: the
    /// sequences run as min(stages, sequences) micro-batches, and a token passes every stage in turn,
    /// so a sequence's step is stages × one stage's time on its micro-batch (the other stages work on
    /// the other micro-batches meanwhile, or idle: the bubble when there are fewer micro-batches than
    /// stages), plus the engine's fixed cost once and the activations sent between stages.
    func pipelineStep(_ plan: Parallelism, sequences: Double, context: Double, prefillTokens: Double, promptLength: Double) -> (seconds: Double, bound: String, weightBytes: Double, kvBytes: Double) {
        let stages = Double(plan.pipeline)
        let microBatches = max(1, min(stages, sequences.rounded(.up), Double(engine.maxSequences)))
        let share = Double(plan.layersPerStage) / Double(model.layerCount)
        // The whole model's work on one TP group for one micro-batch; a stage does `share` of it.
        let tensor = plan.tensor
        let headsPerDevice = (model.kvHeads + tensor - 1) / tensor
        let kvPerToken = Double(model.kvBytesPerToken(bytesPerElement: request.kvBytesPerElement)) * Double(headsPerDevice) / Double(model.kvHeads)
        let whole = tensorStep(sequences: sequences / microBatches, context: context, prefillTokens: prefillTokens / microBatches,
                               promptLength: promptLength, kvBytesPerToken: kvPerToken, fixedCosts: false)
        var hop = 0.0
        if let link = request.interconnect {
            let tokens = (sequences + prefillTokens) / microBatches
            hop = link.allReduceLatencyMicroseconds * 1e-6 + tokens * Double(model.hiddenSize) * 2 / (link.gigabytesPerSecond * 1e9)
        }
        let fixed = overhead(sequences: sequences)
        let seconds = stages * share * whole.seconds + (stages - 1) * hop + fixed
        let bound = fixed > stages * share * whole.seconds ? "overhead" : whole.bound
        return (seconds, bound, whole.weightBytes * share, whole.kvBytes * share)
    }

    /// Expert parallelism with data-parallel attention over `plan.expert` ranks: each rank runs its
    /// share of the sequences through attention and the dense weights (all of them, replicated), and
    /// the experts it holds for every routed token of all ranks; the busiest rank's distinct experts
    /// set the weight reads. Each MoE layer dispatches tokens to their experts' ranks and combines
    /// the results back (two all-to-alls over the device link).
    func expertStep(_ plan: Parallelism, sequences: Double, context: Double, prefillTokens: Double, promptLength: Double) -> (seconds: Double, bound: String, weightBytes: Double, kvBytes: Double) {
        let ranks = Double(plan.expert)
        let rankSequences = (sequences / ranks).rounded(.up)
        let rankPrefill = prefillTokens / ranks
        let rankTokens = rankSequences + rankPrefill
        let routed = sequences + prefillTokens
        var dense = Double(bytes.projections + bytes.lmHead + bytes.other)
        if model.tiedEmbeddings { dense += Double(bytes.embeddings) }
        let perExpert = Double(bytes.experts) / Double(model.expertCount)
        let busiest = Parallelism.expectedBusiestExperts(experts: model.expertCount, perToken: model.expertsPerToken, ranks: plan.expert, tokens: routed)
        let weightBytes = dense + busiest * perExpert
        let kvTokens = Double(model.kvTokens(context: Int(context)))
        let kvBytes = rankSequences * kvTokens * Double(model.kvBytesPerToken(bytesPerElement: request.kvBytesPerElement))
        let memoryTime = weightBytes / bandwidth
        // Mean routed work per rank: its tokens' dense GEMMs and k experts per token (routed evenly on average).
        let mathTime = linearFlops(tokens: rankTokens, sampled: rankSequences) / (peak * engine.computeEfficiency)
        let attentionFlops = 4 * attentionWidth * kvTokens * rankSequences + 2 * attentionWidth * promptLength * rankPrefill
        let attentionMath = attentionFlops / (sixteenBitPeak * engine.computeEfficiency)
        let attentionMemory = kvBytes / kvBandwidth
        var exchange = 0.0
        if let link = request.interconnect {
            // Each rank sends k copies of its tokens' hidden states, (ranks − 1)/ranks of them off-device, and gets the results back.
            let message = rankTokens * Double(model.expertsPerToken) * Double(model.hiddenSize) * 2 * (ranks - 1) / ranks
            exchange = 2 * Double(model.layerCount) * (link.allReduceLatencyMicroseconds * 1e-6 + message / (link.gigabytesPerSecond * 1e9))
        }
        let fixed = overhead(sequences: rankSequences) + exchange
        let seconds = max(memoryTime, mathTime) + max(attentionMemory, attentionMath) + fixed
        let memoryPart = memoryTime + attentionMemory, mathPart = mathTime + attentionMath
        let bound = fixed > max(memoryPart, mathPart) ? "overhead" : (mathPart > memoryPart ? "compute" : "memory")
        return (seconds, bound, weightBytes, kvBytes)
    }

    /// Pure decode of `concurrency` sequences at the request's average context.
    func decode(concurrency: Int) -> DecodeEstimate {
        let context = Double(request.inputTokens) + Double(request.outputTokens) / 2
        let result = step(sequences: Double(concurrency), context: context, prefillTokens: 0, promptLength: 0)
        return DecodeEstimate(concurrency: concurrency, stepSeconds: result.seconds, tokensPerSecondPerUser: 1 / result.seconds,
                              tokensPerSecondTotal: Double(concurrency) / result.seconds, bound: result.bound,
                              weightBytesPerStep: result.weightBytes, kvBytesPerStep: result.kvBytes)
    }

    /// Steady state: each step also carries `concurrency × input / output` prompt tokens.
    func throughput(concurrency: Int) -> ThroughputEstimate {
        let n = Double(concurrency)
        let context = Double(request.inputTokens) + Double(request.outputTokens) / 2
        let prefill = n * Double(request.inputTokens) / Double(request.outputTokens)
        let result = step(sequences: n, context: context, prefillTokens: prefill, promptLength: Double(request.inputTokens))
        let total = n / result.seconds
        return ThroughputEstimate(concurrency: concurrency, stepSeconds: result.seconds, outputTokensPerSecond: total,
                                  tokensPerSecondPerUser: 1 / result.seconds, requestsPerSecond: total / Double(request.outputTokens))
    }

    /// One prompt of `tokens` tokens on an idle server.
    func prefill(tokens: Int) -> PrefillEstimate {
        if let cpu = cpuPrefill(tokens: tokens) { return cpu }
        let t = Double(tokens)
        let plan = parallelism
        var weightBytes = weightBytesRead(tokens: t)
        var flops = linearFlops(tokens: t, sampled: 1)
        var exchange = allReduceSeconds(tokens: t)
        if plan.expert > 1 {
            // One prompt runs its attention and dense weights on one rank; its routed tokens spread over the experts' ranks.
            var dense = Double(bytes.projections + bytes.lmHead + bytes.other)
            if model.tiedEmbeddings { dense += Double(bytes.embeddings) }
            let busiest = Parallelism.expectedBusiestExperts(experts: model.expertCount, perToken: model.expertsPerToken, ranks: plan.expert, tokens: t)
            weightBytes = dense + busiest * Double(bytes.experts) / Double(model.expertCount)
            let expertElements = model.weightTensors.filter { $0.role == .expert }.reduce(0) { $0 + $1.elementCount }
            let routedParameters = Double(expertElements) * Double(model.expertsPerToken) / Double(model.expertCount)
            flops -= 2 * routedParameters * t * (1 - 1 / Double(plan.expert))
            exchange = 0
            if let link = request.interconnect {
                let message = t * Double(model.expertsPerToken) * Double(model.hiddenSize) * 2 * (1 - 1 / Double(plan.expert))
                exchange = 2 * Double(model.layerCount) * (link.allReduceLatencyMicroseconds * 1e-6 + message / (link.gigabytesPerSecond * 1e9))
            }
        }
        var memoryTime = weightBytes / bandwidth
        var mathTime = flops / (peak * engine.prefillComputeEfficiency)
        var attention = 2 * attentionWidth * t * t / parallel / (sixteenBitPeak * engine.prefillComputeEfficiency)
        var fixed = engine.prefillOverheadSecondsPerLayer * Double(model.layerCount) + overhead(sequences: 1) + exchange
        if plan.isPipelined {
            // The prompt passes the stages in turn: the whole model's work on one TP group (the largest
            // stage's share per stage), plus its activations sent between stages.
            let scale = Double(plan.pipeline) * Double(plan.layersPerStage) / Double(model.layerCount)
            memoryTime *= scale
            mathTime *= scale
            attention *= scale
            if let link = request.interconnect {
                fixed += Double(plan.pipeline - 1) * (link.allReduceLatencyMicroseconds * 1e-6 + t * Double(model.hiddenSize) * 2 / (link.gigabytesPerSecond * 1e9))
            }
            fixed += allReduceSeconds(tokens: t) * (scale - 1)
        }
        let seconds = max(memoryTime, mathTime) + attention + fixed
        return PrefillEstimate(inputTokens: tokens, ttftSeconds: seconds, tokensPerSecond: t / seconds,
                               bound: mathTime + attention > memoryTime ? "compute" : "memory")
    }

    /// Most users (up to `limit`) whose steady-state speed and TTFT (idle prefill plus one step) meet the objective.
    func slo(limit: Int, tokensPerSecond: Double?, ttft: Double?) -> SLOEstimate {
        let idle = prefill(tokens: request.inputTokens).ttftSeconds
        func meets(_ users: Int) -> Bool {
            let state = throughput(concurrency: users)
            if let tokensPerSecond, state.tokensPerSecondPerUser < tokensPerSecond { return false }
            if let ttft, idle + state.stepSeconds > ttft { return false }
            return true
        }
        var low = 0, high = limit
        while low < high {
            let mid = (low + high + 1) / 2
            if meets(mid) { low = mid } else { high = mid - 1 }
        }
        let total = low > 0 ? throughput(concurrency: low).outputTokensPerSecond : 0
        return SLOEstimate(tokensPerSecondPerUser: tokensPerSecond, ttftSeconds: ttft, maxUsers: low, tokensPerSecondTotal: total)
    }
}
