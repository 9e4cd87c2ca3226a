import Foundation
import Formats
import Quantize

/// llama.cpp-style CPU speed from a probe of the machine (``CPUProbe``): which bytes and FLOPs a
/// step needs, per ggml kernel family, over the rates the probe measured.
///
/// Decode (one token): every matrix's bytes stream from memory while its dot products run, so each
/// family costs the longer of `bytes ÷ (read bandwidth × decodeBandwidthFactor)` and `weights ÷
/// (probe dot rate × decodeKernelFactor)` plus `decodeOverlap` × the shorter (two threads do not hide
/// all of one behind the other);
/// the KV cache is read the same way; the sum (plus fixed costs) is multiplied by the probe's
/// lock-step stretch (llama.cpp's threads meet at a barrier after every graph op, so a loaded
/// machine slows the step by what it did to the probe's synchronized rounds). Prefill (`T`
/// tokens): the matrices run as GEMMs, `2 × weights × T` FLOPs at `2 × probe dot rate ×
/// prefillKernelFactor[type]` (llama.cpp's GEMMs differ by ggml type more than by probe family:
/// here Q5_K and Q6_K ran faster than Q4_K), plus `prefillSecondsPerLayer` per layer and 512-token
/// ubatch (graph ops too small for the GEMMs' rate, what a tiny model's prefill is made of), the
/// attention `4 × layers × heads × head_dim × T²` FLOPs at the F16 rate (ggml computes the masked square), never faster than reading the weights once, divided by the
/// probe's sustained core share. The token embedding is a row lookup (not read, unless tied to the
/// output); the output matrix runs for the last prompt token only, as llama-bench asks for one row
/// of logits. Formulas and parameters: formats/fit-validation.md §CPU model.
public enum CPUModel {
    /// The constants that turn probe rates into llama.cpp's speeds (``llamaCpp``).
    public struct Parameters: Codable, Sendable, Hashable {
        /// llama.cpp's matrix-vector kernel speed ÷ the probe's dot product of the same family.
        public var decodeKernelFactor: [String: Double]
        /// llama.cpp's GEMM speed at a 512-token ubatch ÷ the probe's dot product of the same family,
        /// keyed by ggml type name (`Q4_K`) or, as a fallback, by probe family (`q4_k`).
        public var prefillKernelFactor: [String: Double]
        /// Fraction of the probed read bandwidth decode's weight reads reach.
        public var decodeBandwidthFactor: Double
        /// Share of the shorter of a family's memory and compute time that is not hidden behind the
        /// longer one in decode (0: perfect overlap, 1: none).
        public var decodeOverlap: Double = 0
        /// Fixed cost per layer per 512-token ubatch of a prefill, seconds.
        public var prefillSecondsPerLayer: Double = 0
        /// Fixed cost per layer per decode step, seconds.
        public var secondsPerLayer: Double
        /// Fixed cost per decode step (sampling, graph build), seconds.
        public var secondsPerToken: Double
        /// Where the numbers came from.
        public var source: String

        /// Creates a parameter set.
        public init(decodeKernelFactor: [String: Double], prefillKernelFactor: [String: Double], decodeBandwidthFactor: Double,
                    decodeOverlap: Double = 0, prefillSecondsPerLayer: Double = 0,
                    secondsPerLayer: Double, secondsPerToken: Double, source: String) {
            self.decodeKernelFactor = decodeKernelFactor
            self.prefillKernelFactor = prefillKernelFactor
            self.decodeBandwidthFactor = decodeBandwidthFactor
            self.decodeOverlap = decodeOverlap
            self.prefillSecondsPerLayer = prefillSecondsPerLayer
            self.secondsPerLayer = secondsPerLayer
            self.secondsPerToken = secondsPerToken
            self.source = source
        }
    }

    /// The parameters for llama.cpp's CPU backend (build of llama-cpp-python 0.3.36's vendored
    /// llama.cpp, AVX2/AVX-512/VNNI, repack and llamafile GEMMs on), fitted to the llama-bench runs of
    /// `tools/fit_cpu_check.py` on the 2-core build machine when it was quiet
    /// (formats/fit-validation.md §CPU model, fixtures/fit/cpu-check/).
    public static let llamaCpp = Parameters(
        decodeKernelFactor: ["q8_0": 1.25, "q4_0": 2.0, "q4_k": 1.0, "f16": 2.0],
        prefillKernelFactor: ["F16": 4.49, "Q8_0": 2.59, "Q4_0": 5.32, "Q5_0": 2.72, "Q4_K": 3.59, "Q5_K": 6.52, "Q6_K": 5.52,
                              "f16": 4.49, "q8_0": 2.59, "q4_0": 5.32, "q4_k": 3.59],
        decodeBandwidthFactor: 0.78,
        decodeOverlap: 0.3,
        prefillSecondsPerLayer: 3.18e-3,
        secondsPerLayer: 0,
        secondsPerToken: 0,
        source: "tools/fit_cpu_calibrate.py on the 26 llama-bench runs of fixtures/fit/cpu-check/calibration-1.json and calibration-2.json (8 synthetic 1.57 B GGUFs q4_0 … f16 and the trained fixture; tools/fit_cpu_check.py, 2026-12-01 23:15–23:35 UTC, load 0.3–2.1 on 2 cores): decode by a grid over bandwidth factor, overlap and family factors (tg32), prefill by one factor per ggml type (pp512) and the per-layer cost from the trained fixture")

    /// The probe family whose kernel stands for a ggml or safetensors type name (`Q4_K`, `F16`):
    /// Q8_0 for 8-bit blocks, Q4_0 for the legacy 4/5-bit blocks, Q4_K for k-quants and i-quants,
    /// F16 for 16- and 32-bit floats.
    public static func family(ofType name: String) -> String {
        let key = name.uppercased()
        if ["F32", "F16", "BF16", "F64"].contains(key) { return "f16" }
        if key.hasPrefix("Q8_0") || key == "Q8_1" || key.hasPrefix("F8") || key == "I8" { return "q8_0" }
        if ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "MXFP4"].contains(key) { return "q4_0" }
        if key.hasSuffix("_K") || key.hasPrefix("IQ") || key.hasPrefix("TQ") { return "q4_k" }
        return "q8_0"
    }

    /// One group of matrices of a family: elements and stored bytes, and whether they are read per
    /// decode step (an untied token embedding is not) and run for every prompt token (the output
    /// head runs for one).
    public struct TensorGroup: Codable, Sendable, Hashable {
        /// The probe family (`q8_0`, `q4_0`, `q4_k`, `f16`).
        public var family: String
        /// The ggml type the tensors are stored as (`Q4_K`); nil when only the family is known.
        public var type: String?
        /// The role of the tensors.
        public var role: WeightTensor.Role
        /// Weights (elements) of the group as read per token (routed experts: the active share).
        public var weights: Double
        /// Stored bytes of the group as read per token.
        public var bytes: Double

        /// Creates a group.
        public init(family: String, type: String? = nil, role: WeightTensor.Role, weights: Double, bytes: Double) {
            self.family = family
            self.type = type
            self.role = role
            self.weights = weights
            self.bytes = bytes
        }
    }

    /// The tensors `variant` stores for `model`, by family: the checkpoint's own stored types when
    /// it stores this variant, llama-quantize's per-tensor choice for a mixture, or the variant's
    /// GGUF rules (matrices at its type, the output at its output type, vectors F32); 16-bit
    /// safetensors variants count as F16. Nil for variants llama.cpp does not run (fp8, int8, int4
    /// safetensors) or when a count overflows.
    public static func tensorGroups(model: ModelShape, variant: Variant) -> [TensorGroup]? {
        var raw: [(type: String, role: WeightTensor.Role, elements: Int, bytes: Int)] = []
        if let stored = model.storedQuantization, stored.schemeName == variant.name, let tensors = model.tensors,
           tensors.allSatisfy({ $0.storedType != nil && $0.storedBytes != nil }) {
            for tensor in tensors {
                guard let type = tensor.storedType, let bytes = tensor.storedBytes,
                      let total = CheckedSize.multiply(bytes, tensor.count) else { return nil }
                raw.append((type, tensor.role, tensor.elementCount, total))
            }
        } else if variant.isGGUF {
            let tensors = model.ggufTensors()
            var types: [String: GGMLType] = [:]
            if let mixture = variant.mixture {
                let shape = MixtureModel(architecture: "llama", layerCount: model.layerCount, headCount: model.attentionHeads,
                                         headCountKV: model.kvHeads, expertCount: model.isMixtureOfExperts ? model.expertCount : 0)
                guard let plan = try? MixturePlanner.plan(mixture.descriptor, model: shape, tensors: tensors.map(\.tensor)) else { return nil }
                for decision in plan { types[decision.name] = decision.type }
            }
            guard let main = variant.scheme.name.ggmlType else { return nil }
            let output = variant.scheme.descriptor.ggufOutputScheme?.ggmlType ?? main
            for (tensor, role) in tensors {
                let type: GGMLType
                if let chosen = types[tensor.name] {
                    type = chosen
                } else {
                    switch role {
                    case .attention, .mlp, .expert, .embedding: type = main
                    case .lmHead: type = output
                    case .router, .vector: type = tensor.type
                    }
                }
                guard let elements = CheckedSize.product(tensor.shape) else { return nil }
                // A row length the type cannot block keeps F16, as llama-quantize falls back.
                let bytes = type.byteCount(elementCount: elements) ?? CheckedSize.multiply(elements, 2)
                guard let bytes else { return nil }
                raw.append((type.name, role, elements, bytes))
            }
        } else if variant.isSixteenBit {
            for tensor in model.weightTensors {
                guard let elements = CheckedSize.multiply(tensor.elementCount, 1), let bytes = CheckedSize.multiply(elements, 2) else { return nil }
                raw.append(("F16", tensor.role, elements, bytes))
            }
        } else {
            return nil
        }
        var groups: [String: TensorGroup] = [:]
        for entry in raw {
            var weights = Double(entry.elements), bytes = Double(entry.bytes)
            if entry.role == .expert, model.isMixtureOfExperts {
                let share = Double(model.expertsPerToken) / Double(max(model.expertCount, 1))
                weights *= share
                bytes *= share
            }
            let type = entry.type.uppercased()
            let key = "\(type)/\(entry.role.rawValue)"
            var group = groups[key] ?? TensorGroup(family: family(ofType: type), type: type, role: entry.role, weights: 0, bytes: 0)
            group.weights += weights
            group.bytes += bytes
            groups[key] = group
        }
        return groups.keys.sorted().compactMap { groups[$0] }
    }

    /// One family's share of a step.
    public struct FamilyTime: Codable, Sendable, Hashable {
        /// The probe family.
        public var family: String
        /// Bytes read in the step.
        public var bytes: Double
        /// Multiply-adds in the step (weights × tokens).
        public var multiplyAdds: Double
        /// Seconds of the step.
        public var seconds: Double
        /// `memory` or `compute`.
        public var bound: String
    }

    /// The CPU model's answer for one request (the JSON `cpu` object; formats/fit-output.md).
    public struct Estimate: Codable, Sendable, Hashable {
        /// What the probe measured.
        public var probe: CPUProbe
        /// The constants used.
        public var parameters: Parameters
        /// Context of the decode step (tokens already in the KV cache).
        public var decodeContext: Int
        /// Seconds per generated token at batch 1.
        public var decodeSecondsPerToken: Double
        /// Generated tokens per second at batch 1.
        public var decodeTokensPerSecond: Double
        /// Weight bytes read per generated token.
        public var decodeWeightBytes: Double
        /// KV-cache bytes read per generated token.
        public var decodeKVBytes: Double
        /// `memory`, `compute` or `overhead`.
        public var decodeBound: String
        /// The decode step by family.
        public var decodeFamilies: [FamilyTime]
        /// Prompt tokens of the prefill.
        public var prefillTokens: Int
        /// Seconds for the prompt.
        public var prefillSeconds: Double
        /// Prompt tokens per second.
        public var prefillTokensPerSecond: Double
        /// FLOPs of the prefill (matrices and attention).
        public var prefillFlops: Double
        /// The prefill by family (attention under `attention`).
        public var prefillFamilies: [FamilyTime]
    }

    /// Seconds of one decode step at `context` tokens of KV, with its parts.
    public static func decode(groups: [TensorGroup], model: ModelShape, probe: CPUProbe, parameters: Parameters,
                              context: Int, kvBytesPerToken: Double) -> (seconds: Double, weightBytes: Double, kvBytes: Double, bound: String, families: [FamilyTime]) {
        let bandwidth = probe.readBytesPerSecond * parameters.decodeBandwidthFactor
        var families: [FamilyTime] = []
        var weightBytes = 0.0
        for family in CPUProbe.families {
            // The token embedding is a lookup of one row; tied embeddings are read as the output.
            let read = groups.filter { $0.family == family && ($0.role != .embedding || model.tiedEmbeddings) }
            let bytes = read.reduce(0) { $0 + $1.bytes }, weights = read.reduce(0) { $0 + $1.weights }
            guard weights > 0 else { continue }
            let memory = bytes / bandwidth
            let compute = weights / rate(family, probe: probe, factor: parameters.decodeKernelFactor)
            let seconds = max(memory, compute) + parameters.decodeOverlap * min(memory, compute)
            families.append(FamilyTime(family: family, bytes: bytes, multiplyAdds: weights, seconds: seconds,
                                       bound: compute > memory ? "compute" : "memory"))
            weightBytes += bytes
        }
        let kvBytes = Double(model.kvTokens(context: context)) * kvBytesPerToken
        let attentionMultiplyAdds = 2 * Double(model.layerCount * model.attentionHeads * model.headDim) * Double(model.kvTokens(context: context))
        let kvMemory = kvBytes / bandwidth, kvCompute = attentionMultiplyAdds / rate("f16", probe: probe, factor: parameters.decodeKernelFactor)
        let attention = max(kvMemory, kvCompute) + parameters.decodeOverlap * min(kvMemory, kvCompute)
        if kvBytes > 0 {
            families.append(FamilyTime(family: "attention", bytes: kvBytes, multiplyAdds: attentionMultiplyAdds, seconds: attention,
                                       bound: kvCompute > kvMemory ? "compute" : "memory"))
        }
        let fixed = parameters.secondsPerToken + parameters.secondsPerLayer * Double(model.layerCount)
        let work = families.reduce(0) { $0 + $1.seconds }
        let computeTime = families.filter { $0.bound == "compute" }.reduce(0) { $0 + $1.seconds }
        let bound = fixed > work ? "overhead" : (computeTime > work / 2 ? "compute" : "memory")
        // llama.cpp's threads meet at a barrier after every graph op: on a loaded machine the step
        // runs as much slower as the probe's lock-step rounds ran.
        return ((work + fixed) * probe.synchronizedStretch, weightBytes, kvBytes, bound, families)
    }

    /// Seconds of a prefill of `tokens` prompt tokens, with its parts.
    public static func prefill(groups: [TensorGroup], model: ModelShape, probe: CPUProbe, parameters: Parameters,
                               tokens: Int) -> (seconds: Double, flops: Double, families: [FamilyTime]) {
        let t = Double(max(tokens, 1))
        var families: [FamilyTime] = []
        var flops = 0.0
        for family in CPUProbe.families {
            var multiplyAdds = 0.0, bytes = 0.0, compute = 0.0
            for group in groups where group.family == family {
                // The output head runs for the last token only (one row of logits); tied embeddings
                // likewise; an untied embedding is a row lookup and vectors are not GEMMs.
                let count: Double
                switch group.role {
                case .lmHead: count = group.weights
                case .embedding: count = model.tiedEmbeddings ? group.weights : 0
                case .vector: count = 0
                default: count = group.weights * t
                }
                guard count > 0 else { continue }
                if group.role != .embedding { bytes += group.bytes }
                multiplyAdds += count
                let factor = group.type.flatMap { parameters.prefillKernelFactor[$0] } ?? parameters.prefillKernelFactor[family] ?? 1
                compute += count / max((probe.dotWeightsPerSecond[family] ?? probe.dotWeightsPerSecond["q8_0"] ?? 1) * factor, 1)
            }
            guard multiplyAdds > 0 else { continue }
            let memory = bytes / probe.readBytesPerSecond
            families.append(FamilyTime(family: family, bytes: bytes, multiplyAdds: multiplyAdds, seconds: max(compute, memory),
                                       bound: compute >= memory ? "compute" : "memory"))
            flops += 2 * multiplyAdds
        }
        let attentionMultiplyAdds = 2 * Double(model.layerCount * model.attentionHeads * model.headDim) * t * t
        let attention = attentionMultiplyAdds / rate("f16", probe: probe, factor: parameters.prefillKernelFactor)
        let ubatches = (t / 512).rounded(.up)
        families.append(FamilyTime(family: "attention", bytes: 0, multiplyAdds: attentionMultiplyAdds, seconds: attention, bound: "compute"))
        flops += 2 * attentionMultiplyAdds
        // Prefill ops are long (tens of ms): each thread works through its share of a GEMM at the
        // share of a core it gets over time, not held at barriers op by op as decode's short ops are.
        let fixed = parameters.secondsPerToken + (parameters.secondsPerLayer + parameters.prefillSecondsPerLayer * ubatches) * Double(model.layerCount)
        let seconds = (families.reduce(0) { $0 + $1.seconds } + fixed) / probe.sustainedShare
        return (seconds, flops, families)
    }

    /// Multiply-adds per second of `family` on the probed machine, scaled by `factor[family]`.
    static func rate(_ family: String, probe: CPUProbe, factor: [String: Double]) -> Double {
        let measured = probe.dotWeightsPerSecond[family] ?? probe.dotWeightsPerSecond["q8_0"] ?? 1
        return max(measured * (factor[family] ?? 1), 1)
    }

    /// The estimate for `request` on a probed CPU (`request.devices.hardware.probe`), with decode
    /// at the request's average context and prefill of its prompt; nil when the hardware was not
    /// probed or llama.cpp does not run the variant.
    public static func estimate(_ request: FitRequest, parameters: Parameters = llamaCpp) -> Estimate? {
        let hardware = request.devices.hardware
        guard hardware.kind == .cpu, let probe = hardware.probe,
              let groups = tensorGroups(model: request.model, variant: request.variant) else { return nil }
        let context = request.inputTokens + request.outputTokens / 2
        let kvPerToken = Double(request.model.kvBytesPerToken(bytesPerElement: request.kvBytesPerElement))
        let step = decode(groups: groups, model: request.model, probe: probe, parameters: parameters, context: context, kvBytesPerToken: kvPerToken)
        let pp = prefill(groups: groups, model: request.model, probe: probe, parameters: parameters, tokens: request.inputTokens)
        return Estimate(probe: probe, parameters: parameters, decodeContext: context, decodeSecondsPerToken: step.seconds,
                        decodeTokensPerSecond: 1 / step.seconds, decodeWeightBytes: step.weightBytes, decodeKVBytes: step.kvBytes,
                        decodeBound: step.bound, decodeFamilies: step.families, prefillTokens: request.inputTokens,
                        prefillSeconds: pp.seconds, prefillTokensPerSecond: Double(request.inputTokens) / pp.seconds,
                        prefillFlops: pp.flops, prefillFamilies: pp.families)
    }
}

extension SpeedModel {
    /// The engine step on a probed CPU by ``CPUModel`` (llama.cpp's kernels at the probed rates):
    /// one token is a decode step, more run as GEMMs; nil when the hardware was not probed or
    /// llama.cpp does not run the variant (the roofline then answers).
    func cpuStep(sequences: Double, context: Double, prefillTokens: Double, promptLength: Double) -> (seconds: Double, bound: String, weightBytes: Double, kvBytes: Double)? {
        guard hardware.kind == .cpu, let probe = hardware.probe,
              let groups = CPUModel.tensorGroups(model: model, variant: request.variant) else { return nil }
        let parameters = CPUModel.llamaCpp
        let kvPerToken = Double(model.kvBytesPerToken(bytesPerElement: request.kvBytesPerElement))
        let tokens = sequences + prefillTokens
        let one = CPUModel.decode(groups: groups, model: model, probe: probe, parameters: parameters, context: Int(context), kvBytesPerToken: kvPerToken)
        if tokens <= 1 { return (one.seconds, one.bound, one.weightBytes, one.kvBytes) }
        // Several tokens: the matrices as GEMMs over all of them, each sequence's KV read once,
        // the prompt's attention over its own length.
        let batch = CPUModel.prefill(groups: groups, model: model, probe: probe, parameters: parameters, tokens: Int(tokens.rounded(.up)))
        let matrices = batch.families.filter { $0.family != "attention" }.reduce(0) { $0 + $1.seconds }
        let kvBytes = sequences * one.kvBytes
        let attention = sequences * (one.families.first { $0.family == "attention" }?.seconds ?? 0)
            + 2 * Double(model.layerCount * model.attentionHeads * model.headDim) * promptLength * prefillTokens
            / CPUModel.rate("f16", probe: probe, factor: parameters.prefillKernelFactor)
        let fixed = parameters.secondsPerToken + parameters.secondsPerLayer * Double(model.layerCount)
        return ((matrices + attention + fixed) * probe.synchronizedStretch, "compute", one.weightBytes, kvBytes)
    }

    /// A prefill of `tokens` tokens on a probed CPU (nil as for ``cpuStep(sequences:context:prefillTokens:promptLength:)``).
    func cpuPrefill(tokens: Int) -> PrefillEstimate? {
        guard hardware.kind == .cpu, let probe = hardware.probe,
              let groups = CPUModel.tensorGroups(model: model, variant: request.variant) else { return nil }
        let pp = CPUModel.prefill(groups: groups, model: model, probe: probe, parameters: CPUModel.llamaCpp, tokens: tokens)
        let memory = pp.families.filter { $0.bound == "memory" }.reduce(0) { $0 + $1.seconds }
        return PrefillEstimate(inputTokens: tokens, ttftSeconds: pp.seconds, tokensPerSecond: Double(tokens) / pp.seconds,
                               bound: memory > pp.seconds / 2 ? "memory" : "compute")
    }
}

extension CPUModel.Estimate {
    /// Two lines for `quantize fit` output: what the probe measured and what the model predicts from it.
    public var summary: String {
        func g(_ value: Double?) -> String { String(format: "%.1f", (value ?? 0) / 1e9) }
        let dots = probe.dotWeightsPerSecond
        return "  CPU probe       \(probe.threads) threads, \(String(format: "%.2f", probe.seconds)) s: read \(g(probe.readBytesPerSecond)) GB/s over \(probe.bufferBytes >> 20) MiB; "
            + "dot q8_0 \(g(dots["q8_0"])), q4_0 \(g(dots["q4_0"])), q4_k \(g(dots["q4_k"])), f16 \(g(dots["f16"])) Gweights/s; sgemm \(String(format: "%.0f", probe.sgemmFlopsPerSecond / 1e9)) GFLOP/s; lock-step stretch \(String(format: "%.2f", probe.synchronizedStretch)), sustained share \(String(format: "%.2f", probe.sustainedShare))\n"
            + "  CPU model       llama.cpp decode \(String(format: "%.2f", decodeTokensPerSecond)) tok/s (\(String(format: "%.0f", decodeWeightBytes / 1e6)) MB weights + \(String(format: "%.1f", decodeKVBytes / 1e6)) MB KV per token at context \(decodeContext), \(decodeBound)-bound); "
            + "prefill \(prefillTokens) tokens \(String(format: "%.1f", prefillTokensPerSecond)) tok/s (\(String(format: "%.2f", prefillFlops / 1e12)) TFLOP)"
    }
}
