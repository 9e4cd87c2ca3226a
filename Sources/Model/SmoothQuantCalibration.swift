import CBLAS
import Foundation
import Formats
import Quantize

/// SmoothQuant over a whole model with llm-compressor's sequential pipeline (SmoothQuantModifier,
/// then round-to-nearest or GPTQ): the calibration windows are embedded once; then, layer by
/// layer, they run through the layer while the per-channel minimum and maximum of each mapping's
/// input are recorded; the scales (``SmoothQuant/scales(range:balance:columns:strength:smoothName:)``)
/// are folded in; the layer's selected linear weights are quantized; and the windows run through
/// the layer again to feed the next one.
///
/// The mappings are llm-compressor's defaults for the llama family (`DEFAULT_SMOOTHQUANT_MAPPINGS`):
///
/// 1. `input_layernorm` → `q_proj`, `k_proj`, `v_proj`;
/// 2. `post_attention_layernorm` → `gate_proj`, `up_proj` — only in dense layers: for a layer that
///    routes to experts only mapping 1 applies, as llm-compressor's Mixtral and Qwen-MoE mappings do.
///
/// With GPTQ, the Hessians are accumulated in the same first pass, on the unsmoothed inputs X, and
/// transformed to the smoothed inputs' X·diag(1/s) (H'ᵢⱼ = Hᵢⱼ / (sᵢ sⱼ)) before the solve, so that
/// GPTQ minimises the error of the weights it actually quantizes. (llm-compressor's sequential
/// pipeline hands GPTQ the Hessian of the unsmoothed inputs.) The next layer is then fed through the
/// quantized weights, as GPTQ's pipeline does; with round-to-nearest through the smoothed float
/// layer (llm-compressor keeps quantization disabled until calibration ends).
///
/// Memory: the hidden states of all windows, one layer's weights in FP32, a batch's intermediate
/// activations, and with GPTQ the layer's Hessians (`columns²` floats per distinct input).
public enum SmoothQuantCalibration {
    /// What to quantize and how.
    public struct Settings: Sendable {
        /// The integer scheme (int8 per channel for W8A8).
        public var scheme: Scheme
        /// Scale dtype and the other encoder options.
        public var options: QuantizeOptions
        /// α (`smoothing_strength`), in [0, 1].
        public var strength: Double
        /// GPTQ's settings; nil quantizes the smoothed weights round-to-nearest.
        public var gptq: GPTQSettings?
        /// Threads for the forward pass and OpenBLAS (nil: every core).
        public var threads: Int?
        /// Windows run through a layer together (bounds the intermediate activations).
        public var sequencesPerBatch: Int

        /// Creates settings.
        public init(scheme: Scheme, options: QuantizeOptions = QuantizeOptions(), strength: Double = 0.5, gptq: GPTQSettings? = nil,
                    threads: Int? = nil, sequencesPerBatch: Int = 8) {
            self.scheme = scheme
            self.options = options
            self.strength = strength
            self.gptq = gptq
            self.threads = threads
            self.sequencesPerBatch = max(1, sequencesPerBatch)
        }
    }

    /// One mapping's outcome.
    public struct MappingOutcome: Sendable {
        /// The smoothing layer's module name (`model.layers.0.input_layernorm`).
        public var smooth: String
        /// The balance layers' module names.
        public var balance: [String]
        /// The scales folded in, one per input channel.
        public var scales: [Float]
        /// The largest activation range (max − min over the calibration tokens) before and after smoothing.
        public var rangeBefore: Float
        /// The largest activation range after smoothing (range / s).
        public var rangeAfter: Float
    }

    /// What a run produced.
    public struct Result: Sendable {
        /// The encoded tensors by checkpoint tensor name.
        public var tensors: [String: QuantizedTensor]
        /// The FP32 values of every tensor the smoothing changed, by checkpoint tensor name (the
        /// norms the scales were divided into and the balance layers' scaled weights).
        public var smoothed: [String: [Float]]
        /// Per mapping, in the order applied.
        public var mappings: [MappingOutcome]
        /// With GPTQ, per quantized tensor.
        public var outcomes: [GPTQCalibration.TensorOutcome]
        /// Wall time of each decoder layer, seconds.
        public var layerSeconds: [Double]
        /// Calibration tokens.
        public var tokenCount: Int
    }

    /// Runs the pipeline on `checkpointPath` for the tensors named in `quantize`.
    /// - Parameters:
    ///   - progress: after each layer: layers done, layer count, seconds so far.
    ///   - warning: a sentence for the user (a GPTQ tensor that fell back to round-to-nearest).
    /// - Throws: ``ModelError`` (architecture, a layer without the mappings' norms, input),
    ///   ``QuantizeError`` (the quantizer), ``FormatError``.
    public static func run(checkpointPath: String, calibration: CalibrationSet, quantize: Set<String>, settings: Settings,
                           progress: ((_ done: Int, _ layers: Int, _ seconds: Double) -> Void)? = nil,
                           warning: ((String) -> Void)? = nil) throws -> Result {
        let started = Date()
        guard settings.strength >= 0, settings.strength <= 1 else {
            throw ModelError.invalidInput(reason: "the smoothing strength must be in [0, 1]; it is \(settings.strength)")
        }
        let weights = try ModelWeights(path: checkpointPath, weightsOnly: true)
        guard weights.checkpoint.format == .safetensors else {
            throw ModelError.invalidInput(reason: "SmoothQuant writes compressed-tensors safetensors and reads a Hugging Face safetensors checkpoint; \(checkpointPath) is not one")
        }
        guard let length = calibration.windows.first?.count else {
            throw ModelError.invalidInput(reason: "no calibration windows")
        }
        let config = weights.configuration
        let model = try Transformer(weights: weights, threads: settings.threads, maximumPositions: length)
        let names = Set(weights.checkpoint.tensors.map(\.name))
        func tensorName(_ role: WeightRole) -> String? { role.safetensorsNames.first { names.contains($0) } }

        let saved = openblas_get_num_threads()
        openblas_set_num_threads(Int32(model.threads))
        defer { openblas_set_num_threads(saved) }

        let sequences = calibration.windows.count
        let hidden = config.hiddenSize
        var state = try model.embeddedStates(sequences: calibration.windows)
        let batch = settings.sequencesPerBatch
        var result = Result(tensors: [:], smoothed: [:], mappings: [], outcomes: [], layerSeconds: [], tokenCount: calibration.tokenCount)

        /// Runs `body` on each batch of windows' hidden states; `keep` writes the results back.
        func eachBatch(keep: Bool, _ body: (inout [Float], Int) throws -> Void) throws {
            var s0 = 0
            while s0 < sequences {
                let s1 = min(sequences, s0 + batch)
                let range = (s0 * length * hidden)..<(s1 * length * hidden)
                var slice = Array(state[range])
                try body(&slice, s1 - s0)
                if keep { state.replaceSubrange(range, with: slice) }
                s0 = s1
            }
        }

        for layer in 0..<config.layerCount {
            let layerStart = Date()
            var current: [WeightRole: DecodedTensor] = [:]
            for (role, shape) in model.roles(of: layer) {
                if let t = try weights.decode(role, shape: shape) { current[role] = t }
            }
            // The mappings present in this layer: (smooth, balance).
            var mappings: [(smooth: WeightRole, balance: [WeightRole])] = [(.attentionNorm(layer), [.query(layer), .key(layer), .value(layer)])]
            if !config.isMixtureOfExpertsLayer(layer) { mappings.append((.feedForwardNorm(layer), [.gate(layer), .up(layer)])) }
            for mapping in mappings {
                for role in [mapping.smooth] + mapping.balance where current[role] == nil {
                    throw ModelError.missingTensor(path: checkpointPath, tensor: role.moduleName + " (SmoothQuant's mapping \(mapping.smooth.moduleName) → \(mapping.balance.map(\.moduleName).joined(separator: ", ")))")
                }
            }
            let selected = model.linearRoles(of: layer).compactMap { item -> (role: WeightRole, name: String)? in
                guard current[item.role] != nil, let name = tensorName(item.role), quantize.contains(name) else { return nil }
                return (item.role, name)
            }

            // Pass 1: the layer as it is; the mappings' input ranges (and GPTQ's Hessians).
            var ranges: [WeightRole: SmoothQuant.ChannelRange] = [:]
            for mapping in mappings { ranges[mapping.balance[0]] = SmoothQuant.ChannelRange(columns: hidden) }
            var hessians: [WeightRole: HessianAccumulator] = [:]
            if settings.gptq != nil {
                for item in selected where hessians[item.role.inputGroupLeader] == nil {
                    hessians[item.role.inputGroupLeader] = HessianAccumulator(columns: current[item.role]?.columns ?? 0)
                }
            }
            let observed = Set(ranges.keys), leaders = Set(hessians.keys)
            try eachBatch(keep: false) { slice, count in
                try model.runDecoderLayer(layer, state: &slice, sequences: count, length: length, replacing: current, observer: { input in
                    if observed.contains(input.role) { ranges[input.role]?.add(input.values, rows: input.rows) }
                    if leaders.contains(input.role) { hessians[input.role]?.add(input.values, rows: input.rows) }
                })
            }

            // The scales, folded in: the norm divided, the balance layers' columns multiplied.
            var scalesByLeader: [WeightRole: [Float]] = [:]
            for mapping in mappings {
                let leader = mapping.balance[0]
                guard let range = ranges[leader] else { continue }
                let balance = mapping.balance.map { (name: tensorName($0) ?? $0.moduleName + ".weight", weights: current[$0]?.values ?? []) }
                let s = try SmoothQuant.scales(range: range, balance: balance, columns: hidden, strength: settings.strength,
                                               smoothName: mapping.smooth.moduleName)
                scalesByLeader[leader] = s
                if var norm = current[mapping.smooth] {
                    for i in norm.values.indices { norm.values[i] /= s[i] }
                    current[mapping.smooth] = norm
                }
                for role in mapping.balance {
                    guard var t = current[role] else { continue }
                    AWQ.scaleColumns(&t.values, columns: hidden, by: s)
                    current[role] = t
                }
                let before = range.ranges
                result.mappings.append(MappingOutcome(smooth: mapping.smooth.moduleName, balance: mapping.balance.map(\.moduleName), scales: s,
                                                      rangeBefore: before.max() ?? 0,
                                                      rangeAfter: zip(before, s).map { $0 / $1 }.max() ?? 0))
                for role in [mapping.smooth] + mapping.balance {
                    if let name = tensorName(role), let t = current[role] { result.smoothed[name] = t.values }
                }
            }

            // Quantize the selected linear layers of the smoothed layer.
            var propagated = current
            var solved: [WeightRole: [Float]] = [:]
            for item in selected {
                guard let t = current[item.role] else { continue }
                let leader = item.role.inputGroupLeader
                var hessian = solved[leader]
                if settings.gptq != nil, hessian == nil, let accumulator = hessians[leader], accumulator.rowCount > 0 {
                    // Roles sharing an input come together (q/k/v, gate/up): an earlier H is done with.
                    solved.removeAll()
                    var full = accumulator.hessian
                    hessians[leader] = nil
                    if let s = scalesByLeader[leader] { rescale(&full, columns: t.columns, by: s) }
                    solved[leader] = full
                    hessian = full
                }
                if let gptq = settings.gptq, let h = hessian {
                    let solution = try GPTQ.quantize(weights: t.values, hessian: h, rows: t.rows, columns: t.columns, scheme: settings.scheme,
                                                     tensorName: item.name, options: settings.options, settings: gptq)
                    if solution.usedRoundToNearest {
                        warning?("\(item.name): the Cholesky factorization of its dampened Hessian failed; quantized with round-to-nearest (raise --dampening or give more calibration samples)")
                    }
                    result.tensors[item.name] = solution.tensor
                    result.outcomes.append(GPTQCalibration.TensorOutcome(name: item.name, loss: solution.loss, roundToNearest: solution.usedRoundToNearest))
                    propagated[item.role] = DecodedTensor(rows: t.rows, columns: t.columns, values: solution.dequantized)
                } else {
                    if settings.gptq != nil {
                        warning?("\(item.name): no calibration token reached it; quantized with round-to-nearest")
                        result.outcomes.append(GPTQCalibration.TensorOutcome(name: item.name, loss: .nan, roundToNearest: true))
                    }
                    let encoded = try t.values.withUnsafeBufferPointer {
                        try quantized($0, rows: t.rows, columns: t.columns, scheme: settings.scheme, tensorName: item.name, options: settings.options)
                    }
                    result.tensors[item.name] = encoded
                    if settings.gptq != nil {
                        propagated[item.role] = DecodedTensor(rows: t.rows, columns: t.columns, values: try dequantized(encoded, tensorName: item.name))
                    }
                }
            }
            // Pass 2: the smoothed layer (with GPTQ, its quantized weights) feeds the next.
            try eachBatch(keep: true) { slice, count in
                try model.runDecoderLayer(layer, state: &slice, sequences: count, length: length, replacing: propagated)
            }
            result.layerSeconds.append(Date().timeIntervalSince(layerStart))
            progress?(layer + 1, config.layerCount, Date().timeIntervalSince(started))
        }
        return result
    }

    /// H ← diag(1/s) · H · diag(1/s): the Hessian of inputs X·diag(1/s) from that of X.
    static func rescale(_ h: inout [Float], columns: Int, by s: [Float]) {
        h.withUnsafeMutableBufferPointer { m in
            for i in 0..<columns {
                let si = s[i]
                for j in 0..<columns { m[i * columns + j] /= si * s[j] }
            }
        }
    }
}
