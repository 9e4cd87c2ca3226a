import Foundation
import Formats
import Quantize

/// The token windows a calibration runs on (`--calibration FILE`, `--calibration-samples N`,
/// `--calibration-length T`).
public struct CalibrationSet: Sendable {
    /// Equal-length windows of token ids.
    public var windows: [[Int32]]
    /// Where they came from, for reports ("text eval.txt, sentencepiece (tokenizer.model)").
    public var source: String

    /// Creates a set from windows given directly.
    public init(windows: [[Int32]], source: String) {
        self.windows = windows
        self.source = source
    }

    /// Tokens in all windows.
    public var tokenCount: Int { windows.reduce(0) { $0 + $1.count } }

    /// Reads `path`: a JSON array of token-id arrays (used as they are; each must have at least
    /// `length` ids, and the first `length` are taken), a flat JSON array of ids, or text. A flat
    /// array and text (tokenized with `tokenizer`) are one stream cut into consecutive windows of
    /// `length` tokens, the first of each replaced by BOS where the runtime adds one (as the
    /// evaluation's chunks are). At most `samples` windows are kept.
    /// - Throws: ``ModelError/invalidInput(reason:)`` naming the file when it is unreadable, holds
    ///   ids outside the vocabulary, or gives no complete window.
    public static func load(path: String, tokenizer: (any TextTokenizer)?, vocabularySize: Int, samples: Int, length: Int) throws -> CalibrationSet {
        guard samples > 0, length > 1 else {
            throw ModelError.invalidInput(reason: "calibration needs at least one sample of two or more tokens (got \(samples) × \(length))")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.invalidInput(reason: "cannot read the calibration file \(path); give a text file or a JSON array of token ids")
        }
        let name = URL(fileURLWithPath: path).lastPathComponent
        var windows: [[Int32]] = []
        var source: String
        let trimmed = data.drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        if trimmed.first == UInt8(ascii: "["), let json = try? JSONValue.parse([UInt8](data), path: path), let array = json.array {
            func ids(_ values: [JSONValue], at where_: String) throws -> [Int32] {
                try values.enumerated().map { index, value in
                    guard let id = value.int, id >= 0, id < vocabularySize else {
                        throw ModelError.invalidInput(reason: "\(path): \(where_)[\(index)] = \(value.serializedString()) is not a token id of the vocabulary of \(vocabularySize)")
                    }
                    return Int32(id)
                }
            }
            if array.allSatisfy({ $0.array != nil }) {
                for (i, window) in array.prefix(samples).enumerated() {
                    let values = window.array ?? []
                    guard values.count >= length else {
                        throw ModelError.invalidInput(reason: "\(path): window \(i) has \(values.count) token ids, fewer than --calibration-length \(length)")
                    }
                    windows.append(try ids(Array(values.prefix(length)), at: "window \(i)"))
                }
                source = "token windows \(name)"
            } else {
                windows = cut(try ids(array, at: "ids"), length: length, samples: samples, bos: tokenizer?.chunkBOS)
                source = "token ids \(name)"
            }
        } else {
            guard let tokenizer else {
                throw ModelError.invalidInput(reason: "\(path) is text, and the model has no tokenizer to read it with; give a JSON array of token ids instead")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw ModelError.invalidInput(reason: "\(path) is neither a JSON array of token ids nor UTF-8 text")
            }
            windows = cut(try tokenizer.encode(text), length: length, samples: samples, bos: tokenizer.chunkBOS)
            source = "text \(name), \(tokenizer.summary)"
        }
        guard !windows.isEmpty else {
            throw ModelError.invalidInput(reason: "\(path) gives no complete calibration window of \(length) tokens; give a longer text or lower --calibration-length")
        }
        return CalibrationSet(windows: windows, source: source)
    }

    /// Consecutive windows of `length` ids, the first replaced by `bos` when given.
    static func cut(_ ids: [Int32], length: Int, samples: Int, bos: Int32?) -> [[Int32]] {
        var windows: [[Int32]] = []
        var start = 0
        while start + length <= ids.count, windows.count < samples {
            var window = Array(ids[start..<(start + length)])
            if let bos { window[0] = bos }
            windows.append(window)
            start += length
        }
        return windows
    }
}

/// GPTQ over a whole model with llm-compressor's sequential pipeline: the calibration windows are
/// embedded once; then, layer by layer, they run through the layer with its original weights while
/// the Hessian of every linear input is accumulated, the layer's selected linear weights are
/// quantized by ``GPTQ/quantize(weights:hessian:rows:columns:scheme:tensorName:options:settings:)``,
/// and the windows run through the layer again with the quantized (decoded) weights to become the
/// next layer's input.
///
/// Memory: the hidden states of all windows (`tokens × hiddenSize` floats), one layer's weights and
/// Hessians (`columns²` floats per distinct input), a batch's intermediate activations, and the
/// encoded output of the quantized tensors (handed back, about 0.3× the size of a BF16 model at 4 bits).
public enum GPTQCalibration {
    /// What to quantize and how.
    public struct Settings: Sendable {
        /// The integer scheme (int4 with its groups and symmetry, int8).
        public var scheme: Scheme
        /// Scale dtype and the other encoder options.
        public var options: QuantizeOptions
        /// Dampening, block size, activation order.
        public var gptq: GPTQSettings
        /// Threads for the forward pass and OpenBLAS (nil: every core).
        public var threads: Int?
        /// Windows run through a layer together (bounds the intermediate activations).
        public var sequencesPerBatch: Int

        /// Creates settings.
        public init(scheme: Scheme, options: QuantizeOptions = QuantizeOptions(), gptq: GPTQSettings = GPTQSettings(),
                    threads: Int? = nil, sequencesPerBatch: Int = 8) {
            self.scheme = scheme
            self.options = options
            self.gptq = gptq
            self.threads = threads
            self.sequencesPerBatch = max(1, sequencesPerBatch)
        }
    }

    /// One quantized tensor's outcome.
    public struct TensorOutcome: Sendable {
        /// The checkpoint's tensor name.
        public var name: String
        /// GPTQ's loss (Σ err²/2).
        public var loss: Double
        /// Round-to-nearest instead (the Cholesky factorization failed, or no calibration token reached it).
        public var roundToNearest: Bool
    }

    /// What a run produced.
    public struct Result: Sendable {
        /// The encoded tensors by checkpoint tensor name.
        public var tensors: [String: QuantizedTensor]
        /// Per tensor, in the order quantized.
        public var outcomes: [TensorOutcome]
        /// Wall time of each decoder layer (calibration, solve, propagation), seconds.
        public var layerSeconds: [Double]
        /// Calibration tokens.
        public var tokenCount: Int
    }

    /// Runs the sequential pipeline on `checkpointPath` for the tensors named in `quantize`.
    /// - Parameters:
    ///   - progress: after each layer: layers done, layer count, seconds so far.
    ///   - warning: a sentence for the user (a tensor that fell back to round-to-nearest).
    ///   - keyValueObserver: sees each layer's keys and values in the pass that feeds its Hessians
    ///     (the original weights of the layer on the quantized layers' output, as llm-compressor's
    ///     calibration pass does), for `--kv-cache fp8`.
    /// - Throws: ``ModelError`` (architecture, input), ``QuantizeError`` (the solve), ``FormatError``.
    public static func run(checkpointPath: String, calibration: CalibrationSet, quantize: Set<String>, settings: Settings,
                           keyValueObserver: KeyValueObserver? = nil,
                           progress: ((_ done: Int, _ layers: Int, _ seconds: Double) -> Void)? = nil,
                           warning: ((String) -> Void)? = nil) throws -> Result {
        let started = Date()
        let weights = try ModelWeights(path: checkpointPath, weightsOnly: true)
        guard weights.checkpoint.format == .safetensors else {
            throw ModelError.invalidInput(reason: "GPTQ writes compressed-tensors safetensors and reads a Hugging Face safetensors checkpoint; \(checkpointPath) is not one")
        }
        guard let length = calibration.windows.first?.count else {
            throw ModelError.invalidInput(reason: "no calibration windows")
        }
        let model = try Transformer(weights: weights, threads: settings.threads, maximumPositions: length)
        let config = weights.configuration
        let names = Set(weights.checkpoint.tensors.map(\.name))
        func tensorName(_ role: WeightRole) -> String? { role.safetensorsNames.first { names.contains($0) } }

        let sequences = calibration.windows.count
        let hidden = config.hiddenSize
        var state = try model.embeddedStates(sequences: calibration.windows)
        let batch = settings.sequencesPerBatch
        var result = Result(tensors: [:], outcomes: [], layerSeconds: [], tokenCount: calibration.tokenCount)

        /// Runs `body` on each batch of windows' hidden states, writing them back.
        func eachBatch(_ body: (inout [Float], Int) throws -> Void) throws {
            var s0 = 0
            while s0 < sequences {
                let s1 = min(sequences, s0 + batch)
                let range = (s0 * length * hidden)..<(s1 * length * hidden)
                var slice = Array(state[range])
                try body(&slice, s1 - s0)
                state.replaceSubrange(range, with: slice)
                s0 = s1
            }
        }

        for layer in 0..<config.layerCount {
            let layerStart = Date()
            let roles = model.linearRoles(of: layer).filter { weights.has($0.role) }
            let selected = roles.compactMap { item -> (role: WeightRole, shape: [Int], name: String)? in
                guard let name = tensorName(item.role), quantize.contains(name) else { return nil }
                return (item.role, item.shape, name)
            }
            var replacements: [WeightRole: DecodedTensor] = [:]
            if !selected.isEmpty {
                // Pass 1: original weights, Hessians of the selected layers' inputs.
                let leaders = Set(selected.map { $0.role.inputGroupLeader })
                var hessians: [WeightRole: HessianAccumulator] = [:]
                for item in selected where hessians[item.role.inputGroupLeader] == nil {
                    hessians[item.role.inputGroupLeader] = HessianAccumulator(columns: item.shape[1])
                }
                model.keyValueObserver = keyValueObserver
                try eachBatch { slice, count in
                    var copy = slice
                    try model.runDecoderLayer(layer, state: &copy, sequences: count, length: length, observer: { input in
                        guard leaders.contains(input.role) else { return }
                        hessians[input.role]?.add(input.values, rows: input.rows)
                    })
                }
                model.keyValueObserver = nil
                // The solve, one tensor at a time.
                var solved: [WeightRole: [Float]] = [:]
                for item in selected {
                    let leader = item.role.inputGroupLeader
                    // Roles sharing an input come together (q/k/v, gate/up): an earlier H is done with.
                    if solved[leader] == nil { solved.removeAll() }
                    let rows = item.shape[0], columns = item.shape[1]
                    let original = try weights.require(item.role, shape: item.shape)
                    let encoded: QuantizedTensor, decoded: [Float], outcome: TensorOutcome
                    if (hessians[leader]?.rowCount ?? 0) == 0 && solved[leader] == nil {
                        warning?("\(item.name): no calibration token reached it; quantized with round-to-nearest")
                        encoded = try original.values.withUnsafeBufferPointer {
                            try quantized($0, rows: rows, columns: columns, scheme: settings.scheme, tensorName: item.name, options: settings.options)
                        }
                        decoded = try dequantized(encoded, tensorName: item.name)
                        outcome = TensorOutcome(name: item.name, loss: .nan, roundToNearest: true)
                    } else {
                        // H is materialised once per shared input and its accumulator released, so
                        // that H is held twice at most while it is solved (here and GPTQ's working copy).
                        let h: [Float]
                        if let cached = solved[leader] {
                            h = cached
                        } else {
                            h = hessians[leader]?.hessian ?? []
                            hessians[leader] = nil
                            solved[leader] = h
                        }
                        let solution = try GPTQ.quantize(weights: original.values, hessian: h, rows: rows, columns: columns, scheme: settings.scheme,
                                                         tensorName: item.name, options: settings.options, settings: settings.gptq)
                        if solution.usedRoundToNearest {
                            warning?("\(item.name): the Cholesky factorization of its dampened Hessian failed; quantized with round-to-nearest (raise --dampening or give more calibration samples)")
                        }
                        encoded = solution.tensor
                        decoded = solution.dequantized
                        outcome = TensorOutcome(name: item.name, loss: solution.loss, roundToNearest: solution.usedRoundToNearest)
                    }
                    result.tensors[item.name] = encoded
                    result.outcomes.append(outcome)
                    replacements[item.role] = DecodedTensor(rows: rows, columns: columns, values: decoded)
                }
            }
            // Pass 2: the quantized layer produces the next layer's input (and, where nothing of
            // the layer was quantized, is also the pass that observes its keys and values).
            model.keyValueObserver = selected.isEmpty ? keyValueObserver : nil
            defer { model.keyValueObserver = nil }
            try eachBatch { slice, count in
                try model.runDecoderLayer(layer, state: &slice, sequences: count, length: length, replacing: replacements)
            }
            result.layerSeconds.append(Date().timeIntervalSince(layerStart))
            progress?(layer + 1, config.layerCount, Date().timeIntervalSince(started))
        }
        return result
    }
}
