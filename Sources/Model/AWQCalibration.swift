import CBLAS
import Foundation
import Formats
import Quantize

/// AWQ over a whole model with llm-compressor's sequential pipeline (AWQModifier followed by
/// QuantizationModifier): the calibration windows are embedded once; then, layer by layer, they
/// run through the layer while the inputs of its mappings are kept and their mean magnitudes per
/// channel accumulated; each mapping's scales are searched (``AWQ/search(activationMeans:balance:columns:scheme:options:settings:loss:)``)
/// and folded in, in llm-compressor's order:
///
/// 1. `input_layernorm` → `q_proj`, `k_proj`, `v_proj` (parent: the attention block);
/// 2. `v_proj` → `o_proj` (parent: `o_proj`), only where v's outputs are o's inputs (no grouped-query attention);
/// 3. `post_attention_layernorm` → `gate_proj`, `up_proj` (parent: the MLP);
/// 4. `up_proj` → `down_proj` (parent: `down_proj`).
///
/// The smoothed layers are quantized round-to-nearest (min-max), and the windows run through the
/// smoothed, unquantized layer to feed the next one (llm-compressor keeps quantization disabled
/// until calibration ends).
///
/// Memory: the hidden states of all windows, one layer's weights, and the inputs of the layer's
/// four parents for every calibration token (`tokens × (3 · hiddenSize + intermediateSize)` floats,
/// plus `tokens × q width` where mapping 2 applies).
public enum AWQCalibration {
    /// What to quantize and how.
    public struct Settings: Sendable {
        /// The integer scheme (int4 with its groups and symmetry, int8).
        public var scheme: Scheme
        /// Scale dtype and the other encoder options.
        public var options: QuantizeOptions
        /// The grid.
        public var awq: AWQSettings
        /// Threads for the forward pass and OpenBLAS (nil: every core).
        public var threads: Int?
        /// Windows run through a block together (bounds the intermediate activations).
        public var sequencesPerBatch: Int

        /// Creates settings.
        public init(scheme: Scheme, options: QuantizeOptions = QuantizeOptions(), awq: AWQSettings = AWQSettings(),
                    threads: Int? = nil, sequencesPerBatch: Int = 8) {
            self.scheme = scheme
            self.options = options
            self.awq = awq
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
        /// The winning ratio and whether it used duo scaling.
        public var point: AWQ.GridPoint
        /// The parent's output MSE with identity scales, and with the winning ones.
        public var initialLoss: Double
        /// The parent's output MSE with the winning scales.
        public var bestLoss: Double
    }

    /// What a run produced.
    public struct Result: Sendable {
        /// The encoded tensors by checkpoint tensor name.
        public var tensors: [String: QuantizedTensor]
        /// The FP32 values of every tensor AWQ changed, by checkpoint tensor name: the smoothed
        /// weights that were quantized (what the accuracy check compares against) and the tensors
        /// written in their float type (the norms the scales were folded into, balance layers not
        /// selected for quantization).
        public var smoothed: [String: [Float]]
        /// Per mapping, in the order searched.
        public var mappings: [MappingOutcome]
        /// Wall time of each decoder layer, seconds.
        public var layerSeconds: [Double]
        /// Calibration tokens.
        public var tokenCount: Int
    }

    /// Runs the pipeline on `checkpointPath` for the tensors named in `quantize`.
    /// - Parameters:
    ///   - progress: after each layer: layers done, layer count, seconds so far.
    /// - Throws: ``ModelError`` (architecture, a layer AWQ has no mapping for, input),
    ///   ``QuantizeError`` (the quantizer), ``FormatError``.
    public static func run(checkpointPath: String, calibration: CalibrationSet, quantize: Set<String>, settings: Settings,
                           progress: ((_ done: Int, _ layers: Int, _ seconds: Double) -> Void)? = nil) throws -> Result {
        let started = Date()
        let weights = try ModelWeights(path: checkpointPath, weightsOnly: true)
        guard weights.checkpoint.format == .safetensors else {
            throw ModelError.invalidInput(reason: "AWQ writes compressed-tensors safetensors and reads a Hugging Face safetensors checkpoint; \(checkpointPath) is not one")
        }
        guard let length = calibration.windows.first?.count else {
            throw ModelError.invalidInput(reason: "no calibration windows")
        }
        let config = weights.configuration
        try checkMappings(config, path: checkpointPath)
        let model = try Transformer(weights: weights, threads: settings.threads, maximumPositions: length)
        let names = Set(weights.checkpoint.tensors.map(\.name))
        func tensorName(_ role: WeightRole) -> String? { role.safetensorsNames.first { names.contains($0) } }

        let saved = openblas_get_num_threads()
        openblas_set_num_threads(Int32(model.threads))
        defer { openblas_set_num_threads(saved) }

        let sequences = calibration.windows.count
        let hidden = config.hiddenSize, inner = config.intermediateSize
        let qWidth = config.headCount * config.headDimension, kvWidth = config.keyValueHeadCount * config.headDimension
        let valueToOutput = qWidth == kvWidth
        var state = try model.embeddedStates(sequences: calibration.windows)
        let batch = settings.sequencesPerBatch
        var result = Result(tensors: [:], smoothed: [:], mappings: [], layerSeconds: [], tokenCount: calibration.tokenCount)

        for layer in 0..<config.layerCount {
            let layerStart = Date()
            // The layer's tensors in FP32, smoothed in place as the mappings are applied.
            var current: [WeightRole: DecodedTensor] = [:]
            for (role, shape) in model.roles(of: layer) {
                if let t = try weights.decode(role, shape: shape) { current[role] = t }
            }
            func values(_ role: WeightRole) throws -> [Float] {
                guard let t = current[role] else { throw ModelError.missingTensor(path: checkpointPath, tensor: role.moduleName) }
                return t.values
            }
            func set(_ role: WeightRole, _ v: [Float]) { current[role]?.values = v }
            func cache(_ replaced: [WeightRole: [Float]] = [:]) -> Transformer.LayerCache {
                let c = Transformer.LayerCache()
                for (role, t) in current { c.put(role, replaced[role].map { DecodedTensor(rows: t.rows, columns: t.columns, values: $0) } ?? t) }
                return c
            }

            // Pass 1: the layer with its original weights; the parents' inputs and |x| sums.
            var attentionInput: [Float] = [], outputInput: [Float] = [], mlpInput: [Float] = [], downInput: [Float] = []
            attentionInput.reserveCapacity(calibration.tokenCount * hidden)
            mlpInput.reserveCapacity(calibration.tokenCount * hidden)
            downInput.reserveCapacity(calibration.tokenCount * inner)
            var s0 = 0
            while s0 < sequences {
                let s1 = min(sequences, s0 + batch)
                let range = (s0 * length * hidden)..<(s1 * length * hidden)
                var slice = Array(state[range])
                try model.runDecoderLayer(layer, state: &slice, sequences: s1 - s0, length: length, replacing: current, observer: { input in
                    switch input.role {
                    case .query: attentionInput.append(contentsOf: input.values)
                    case .attentionOutput where valueToOutput: outputInput.append(contentsOf: input.values)
                    case .gate: mlpInput.append(contentsOf: input.values)
                    case .down: downInput.append(contentsOf: input.values)
                    default: break
                    }
                })
                s0 = s1
            }
            let tokens = calibration.tokenCount

            /// Runs `body` on each batch's rows of `input` (`width` floats per token) and sums the squared
            /// error of what it returns against `reference` (the same rows' unquantized outputs).
            func batched(_ input: [Float], width: Int, _ body: (inout [Float], Int) throws -> [Float]) throws -> [Float] {
                var out: [Float] = []
                var s0 = 0
                while s0 < sequences {
                    let s1 = min(sequences, s0 + batch)
                    var rows = Array(input[(s0 * length * width)..<(s1 * length * width)])
                    out += try body(&rows, s1 - s0)
                    s0 = s1
                }
                return out
            }
            func means(_ input: [Float], width: Int) -> [Double] {
                var sums = [Double](repeating: 0, count: width)
                input.withUnsafeBufferPointer { x in
                    for t in 0..<tokens { for c in 0..<width { sums[c] += Double(abs(x[t * width + c])) } }
                }
                return sums.map { $0 / Double(max(1, tokens)) }
            }
            func name(_ role: WeightRole) -> String { tensorName(role) ?? role.moduleName + ".weight" }
            // The grid search quantizes with FP32 scales, as llm-compressor's observer computes them in the
            // weight's dtype: rounding each candidate's scales to BF16 first adds a noise to the loss that,
            // on the trained fixture, picked other ratios than the FP32 objective's (layer 1 up_proj →
            // down_proj: 0.333 instead of 0.222, llm-compressor's choice). The final encoding uses the
            // output's scale dtype.
            var searchOptions = settings.options
            searchOptions.scaleType = .f32
            func search(balance roles: [WeightRole], input: [Float], width: Int, smooth: WeightRole,
                        parent: (_ candidates: [WeightRole: [Float]], _ rows: inout [Float], _ count: Int) throws -> [Float]) throws -> [Float] {
                let reference = try batched(input, width: width) { rows, count in try parent([:], &rows, count) }
                let balance = try roles.map { (name: name($0), weights: try values($0)) }
                let found = try AWQ.search(activationMeans: means(input, width: width), balance: balance, columns: width,
                                           scheme: settings.scheme, options: searchOptions, settings: settings.awq) { candidates in
                    let replaced = Dictionary(uniqueKeysWithValues: zip(roles, candidates))
                    let output = try batched(input, width: width) { rows, count in try parent(replaced, &rows, count) }
                    return AWQ.squaredError(output, reference) / Double(max(1, reference.count))
                }
                result.mappings.append(MappingOutcome(smooth: smooth.moduleName, balance: roles.map(\.moduleName), point: found.grid[found.best],
                                                      initialLoss: found.initialLoss, bestLoss: found.bestLoss))
                for role in roles {
                    var w = try values(role)
                    AWQ.scaleColumns(&w, columns: width, by: found.scales)
                    set(role, w)
                }
                return found.scales
            }
            func divideVector(_ role: WeightRole, by s: [Float]) {
                guard var v = current[role]?.values else { return }
                for i in v.indices { v[i] /= s[i] }
                set(role, v)
            }

            // 1. input_layernorm → q/k/v, parent: the attention block (o_proj unquantized).
            let attentionScales = try search(balance: [.query(layer), .key(layer), .value(layer)], input: attentionInput, width: hidden,
                                             smooth: .attentionNorm(layer)) { replaced, rows, count in
                try model.attentionBlock(&rows, layer: layer, sequences: count, length: length, observer: nil, cache: cache(replaced))
            }
            divideVector(.attentionNorm(layer), by: attentionScales)
            attentionInput = []
            // 2. v_proj → o_proj, parent: o_proj.
            if valueToOutput {
                let o = try values(.attentionOutput(layer))
                let s = try search(balance: [.attentionOutput(layer)], input: outputInput, width: qWidth, smooth: .value(layer)) { replaced, rows, count in
                    Self.matmul(rows, rows: count * length, weights: replaced[.attentionOutput(layer)] ?? o, outputs: hidden, inner: qWidth)
                }
                var v = try values(.value(layer))
                AWQ.divideRows(&v, columns: hidden, by: s)
                set(.value(layer), v)
                divideVector(.valueBias(layer), by: s)
                outputInput = []
            }
            // 3. post_attention_layernorm → gate/up, parent: the MLP (down_proj unquantized).
            let mlpScales = try search(balance: [.gate(layer), .up(layer)], input: mlpInput, width: hidden, smooth: .feedForwardNorm(layer)) { replaced, rows, count in
                try model.swiGLU(&rows, rows: count * length, gate: .gate(layer), up: .up(layer), down: .down(layer), inner: inner,
                                 layer: layer, observer: nil, cache: cache(replaced))
            }
            divideVector(.feedForwardNorm(layer), by: mlpScales)
            mlpInput = []
            // 4. up_proj → down_proj, parent: down_proj.
            let down = try values(.down(layer))
            let downScales = try search(balance: [.down(layer)], input: downInput, width: inner, smooth: .up(layer)) { replaced, rows, count in
                Self.matmul(rows, rows: count * length, weights: replaced[.down(layer)] ?? down, outputs: hidden, inner: inner)
            }
            var up = try values(.up(layer))
            AWQ.divideRows(&up, columns: hidden, by: downScales)
            set(.up(layer), up)
            downInput = []

            // Quantize the selected linear layers; record every changed tensor's FP32 values.
            var changed: [WeightRole] = [.attentionNorm(layer), .feedForwardNorm(layer), .query(layer), .key(layer), .value(layer),
                                         .gate(layer), .up(layer), .down(layer)]
            if valueToOutput { changed += [.attentionOutput(layer), .valueBias(layer)] }
            // Without mapping 2, o_proj is in no mapping: quantized as it is.
            for role in changed + (valueToOutput ? [] : [.attentionOutput(layer)]) {
                guard let t = current[role], let tensor = tensorName(role) else { continue }
                if changed.contains(role) { result.smoothed[tensor] = t.values }
                if role.isLinearWeight, quantize.contains(tensor) {
                    result.tensors[tensor] = try t.values.withUnsafeBufferPointer {
                        try quantized($0, rows: t.rows, columns: t.columns, scheme: settings.scheme, tensorName: tensor, options: settings.options)
                    }
                }
            }
            // Pass 2: the smoothed, unquantized layer feeds the next.
            s0 = 0
            while s0 < sequences {
                let s1 = min(sequences, s0 + batch)
                let range = (s0 * length * hidden)..<(s1 * length * hidden)
                var slice = Array(state[range])
                try model.runDecoderLayer(layer, state: &slice, sequences: s1 - s0, length: length, replacing: current)
                state.replaceSubrange(range, with: slice)
                s0 = s1
            }
            result.layerSeconds.append(Date().timeIntervalSince(layerStart))
            progress?(layer + 1, config.layerCount, Date().timeIntervalSince(started))
        }
        return result
    }

    /// Refuses a model with a layer that llm-compressor's llama mappings do not describe.
    /// - Throws: ``ModelError/invalidInput(reason:)`` naming the layer and the mapping.
    public static func checkMappings(_ config: TransformerConfiguration, path: String) throws {
        if let layer = (0..<config.layerCount).first(where: { config.isMixtureOfExpertsLayer($0) }) {
            throw ModelError.invalidInput(reason: "AWQ's mapping post_attention_layernorm → gate_proj/up_proj has no mixture-of-experts form here: layer \(layer) of \(path) routes to experts (model.layers.\(layer).mlp.experts.*), which --method awq does not smooth yet; use --method gptq or hqq for this model")
        }
    }

    /// y = x · Wᵀ for `rows` rows of `inner` inputs, `outputs` outputs (sgemm).
    static func matmul(_ x: [Float], rows: Int, weights: [Float], outputs: Int, inner: Int) -> [Float] {
        var y = [Float](repeating: 0, count: rows * outputs)
        x.withUnsafeBufferPointer { xb in
            weights.withUnsafeBufferPointer { wb in
                y.withUnsafeMutableBufferPointer { yb in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outputs), Int32(inner), 1,
                                xb.baseAddress!, Int32(inner), wb.baseAddress!, Int32(inner), 0, yb.baseAddress!, Int32(outputs))
                }
            }
        }
        return y
    }
}
