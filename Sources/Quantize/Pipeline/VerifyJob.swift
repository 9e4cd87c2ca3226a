import Formats
import Foundation

/// `quantize verify ORIGINAL QUANTIZED`: the accuracy check from two files, so it also measures
/// checkpoints other tools made (llm-compressor, vLLM fp8, DeepSeek blocks, llama.cpp GGUF).
///
/// Tensors are matched by name. A quantized tensor is recognised by its layout: `X.weight` F8 with
/// `X.weight_scale`/`X.weight_scale_inv` (fp8), `X.weight` I8 with `X.weight_scale` (int8),
/// `X.weight_packed` with `X.weight_scale` (pack-quantized int4/int8), or a GGUF tensor of another
/// ggml type. Tensors present in both with the same type are compared too (error 0 when equal).
public final class VerifyJob {
    /// One matched pair, ready to decode.
    public struct Pair: Sendable {
        /// The weight's name in the original.
        public var name: String
        /// The original tensor.
        public var original: TensorRecord
        /// The quantized tensor's parts (suffix → record), or the same-named tensor.
        public var parts: [(suffix: String, record: TensorRecord)]
        /// The scheme name as reports show it (`fp8`, `int4`, `q4_k`, `bf16`, …).
        public var scheme: String
        /// Rows and columns of the matrix.
        public var rows: Int
        /// Columns (input features).
        public var columns: Int
    }

    /// The original checkpoint.
    public let original: Checkpoint
    /// The quantized checkpoint.
    public let quantized: Checkpoint
    /// The matched pairs, in original order.
    public let pairs: [Pair]
    /// Original 2-D weights with no counterpart in the quantized checkpoint.
    public let unmatched: [String]
    /// Weights stored exactly as in the original (not measured when others differ).
    public let unchangedCount: Int

    /// Opens both checkpoints and matches their tensors.
    /// - Throws: ``FormatError`` for unreadable files; ``QuantizeJobError`` `.unsupportedConversion`
    ///   when no tensor matches (for example a GGUF against a Hugging Face original, whose names differ).
    public init(original originalPath: String, quantized quantizedPath: String) throws {
        original = try Checkpoint(path: originalPath)
        quantized = try Checkpoint(path: quantizedPath)
        if let stored = VerifyJob.quantizedLayout(of: original) {
            let swapped = VerifyJob.quantizedLayout(of: quantized) == nil
            throw QuantizeJobError(.originalIsQuantized,
                "the original \(originalPath) is itself quantized (\(stored)); verify measures a quantized checkpoint against the unquantized one it was made from, original first" +
                (swapped ? ". The arguments look swapped: run quantize verify \(quantizedPath) \(originalPath)" : ". Pass the unquantized checkpoint as ORIGINAL"))
        }
        var byName: [String: TensorRecord] = [:]
        for tensor in quantized.tensors { byName[tensor.name] = tensor }
        var pairs: [Pair] = []
        var unmatched: [String] = []
        for tensor in original.tensors {
            guard tensor.shape.count >= 2, let columns = tensor.shape.last, columns > 0,
                  VerifyJob.isFloat(tensor.type) else { continue }
            let rows = tensor.elementCount / columns
            let prefix = tensor.name.hasSuffix("weight") ? String(tensor.name.dropLast("weight".count)) : tensor.name + "."
            func part(_ suffix: String) -> (suffix: String, record: TensorRecord)? {
                byName[prefix + suffix].map { (suffix, $0) }
            }
            if let packed = part("weight_packed"), let scale = part("weight_scale") {
                var parts = [packed, scale]
                if let zero = part("weight_zero_point") { parts.append(zero) }
                if let shape = part("weight_shape") { parts.append(shape) }
                let words = packed.record.shape.last ?? 0
                let scheme = words * 8 >= columns && words * 4 < columns ? "int4" : "int8"
                pairs.append(Pair(name: tensor.name, original: tensor, parts: parts, scheme: scheme, rows: rows, columns: columns))
            } else if let same = byName[tensor.name] {
                var scheme = same.type.description.lowercased()
                var parts = [(suffix: "weight", record: same)]
                if case .dtype(let dtype) = same.type, dtype == .f8E4M3 || dtype == .f8E5M2 || dtype == .i8 {
                    guard let scale = part("weight_scale_inv") ?? part("weight_scale") else {
                        unmatched.append(tensor.name)
                        continue
                    }
                    parts.append(scale)
                    if let zero = part("weight_zero_point") { parts.append(zero) }
                    scheme = dtype == .i8 ? "int8" : (dtype == .f8E4M3 ? "fp8" : "fp8-e5m2")
                } else if case .ggml = same.type {
                    parts = [(suffix: "", record: same)]
                }
                guard same.elementCount == tensor.elementCount else {
                    unmatched.append(tensor.name)
                    continue
                }
                pairs.append(Pair(name: tensor.name, original: tensor, parts: parts, scheme: scheme, rows: rows, columns: columns))
            } else {
                unmatched.append(tensor.name)
            }
        }
        // Tensors stored exactly as in the original (kept embeddings, heads) say nothing about the
        // quantization; they are measured only when nothing else differs (a file against itself).
        let changed = pairs.filter { $0.parts.count > 1 || $0.parts[0].record.type != $0.original.type }
        unchangedCount = changed.isEmpty ? 0 : pairs.count - changed.count
        if !changed.isEmpty { pairs = changed }
        if pairs.isEmpty {
            throw QuantizeJobError(.unsupportedConversion,
                "no weight of \(originalPath) has a counterpart in \(quantizedPath) (tensors are matched by name; a GGUF and a Hugging Face checkpoint name them differently). Compare a GGUF with its F16/BF16 GGUF original, or a safetensors output with its Hugging Face original")
        }
        self.pairs = pairs
        self.unmatched = unmatched
    }

    /// How `checkpoint` is quantized, in words, or nil when its weights are plain floats: its
    /// declared or GGUF quantization, else a weight stored with scale or packed parts.
    static func quantizedLayout(of checkpoint: Checkpoint) -> String? {
        if let quantization = checkpoint.quantization { return quantization.summary }
        if let packed = checkpoint.logicalTensors.first(where: { $0.parts.count > 1 }) {
            return "\(packed.name) is stored as " + packed.parts.map { "\($0.name) \($0.type.description)" }.joined(separator: ", ")
        }
        return nil
    }

    static func isFloat(_ type: TensorType) -> Bool {
        switch type {
        case .dtype(let d): return d == .f32 || d == .f16 || d == .bf16 || d == .f64
        case .ggml(let g): return g == .f32 || g == .f16 || g == .bf16
        }
    }

    /// Decodes the quantized side of `pair` to FP32.
    public func decode(_ pair: Pair) throws -> [Float] {
        if pair.parts.count == 1 {
            let record = pair.parts[0].record
            var out = [Float](repeating: 0, count: pair.rows * pair.columns)
            let bytes = try quantized.readData(for: record)
            switch record.type {
            case .ggml(let type) where !VerifyJob.isFloat(record.type):
                try out.withUnsafeMutableBufferPointer { buffer throws(QuantizeError) in
                    try dequantizeGGML(type, bytes: bytes, elementCount: pair.rows * pair.columns, into: buffer, tensorName: pair.name)
                }
            default:
                try out.withUnsafeMutableBufferPointer { buffer in
                    try QuantizeJob.convertToFloat32(bytes, type: record.type, into: buffer, name: pair.name)
                }
            }
            return out
        }
        let parts = try pair.parts.map { entry in
            QuantizedTensor.Part(suffix: entry.suffix, type: entry.record.type, shape: entry.record.shape,
                                 data: Array(try quantized.readData(for: entry.record)))
        }
        return try dequantized(QuantizedTensor(rows: pair.rows, columns: pair.columns, parts: parts), tensorName: pair.name)
    }

    /// Stored bytes of the quantized side of `pair`.
    public func storedByteCount(_ pair: Pair) -> Int {
        pair.parts.filter { $0.suffix != "weight_shape" }.reduce(0) { $0 + $1.record.byteCount }
    }

    /// Runs the check on every pair.
    /// - Parameters:
    ///   - activations: the probe source (generated Gaussian rows by default).
    ///   - maxError: overrides the per-scheme thresholds.
    ///   - progress: called after each tensor with (index, count, name).
    public func run(activations: ProbeActivationSource = ProbeActivationSource(), activationsFile: String? = nil,
                    maxError: Double? = nil, accuracy: AccuracyOptions = AccuracyOptions(maxCheckedWeights: 1 << 22),
                    progress: ((Int, Int, String) -> Void)? = nil) throws -> AccuracyReport {
        var entries: [AccuracyReport.Entry] = []
        for (index, pair) in pairs.enumerated() {
            var originalValues = [Float](repeating: 0, count: pair.rows * pair.columns)
            try originalValues.withUnsafeMutableBufferPointer { buffer in
                try QuantizeJob.convertToFloat32(original.readData(for: pair.original), type: pair.original.type, into: buffer, name: pair.name)
            }
            let decoded = try decode(pair)
            let probe = try activations.activations(forTensor: pair.name, columns: pair.columns)
            let metrics = try TensorAccuracy.measure(original: originalValues, decoded: decoded, rows: pair.rows, columns: pair.columns,
                                                     activations: probe, storedByteCount: storedByteCount(pair),
                                                     tensorName: pair.name, options: accuracy)
            let threshold = AccuracyThresholds.maxRelativeError(forSchemeNamed: pair.scheme, override: maxError)
            entries.append(AccuracyReport.Entry(name: pair.name, scheme: pair.scheme, accuracy: metrics, threshold: threshold))
            // Resident memory stays flat over a large (or compressed, decoded into memory) checkpoint.
            original.release(pair.original)
            pair.parts.forEach { quantized.release($0.record) }
            progress?(index + 1, pairs.count, pair.name)
        }
        return AccuracyReport(tensors: entries, probe: AccuracyReport.Probe(source: activations, file: activationsFile))
    }
}
