import Foundation
import Formats

/// Per-layer FP8 KV-cache scales (`--kv-cache fp8`) handed to a ``QuantizeJob``: one-element
/// tensors added to the safetensors output (`model.layers.N.self_attn.k_scale`, `v_scale`, in the
/// last shard and the index), `kv_cache_scheme` in `quantization_config`, and the calibration
/// record beside it (formats/quantize-fp8.md, "FP8 KV cache").
///
/// The job above Quantize that observes the keys and values (the Model module's
/// `KeyValueCacheObserver`, wired by the command line) fills it; Quantize only writes it.
public struct KeyValueCacheScales: Sendable {
    /// One added scale tensor.
    public struct Entry: Sendable, Equatable {
        /// The tensor name (`model.layers.3.self_attn.k_scale`).
        public var name: String
        /// The scale (stored = fp8(state / scale)); finite and positive.
        public var value: Float

        /// Creates an entry.
        public init(name: String, value: Float) {
            self.name = name
            self.value = value
        }
    }

    /// The scale tensors, in the order written.
    public var entries: [Entry]
    /// Their dtype (F32, F16 or BF16: llm-compressor's is the model's).
    public var dtype: DType
    /// The method's parameters, written as config.json's ``configKey`` (and a lone file's metadata entry).
    public var record: JSONValue

    /// Creates the hand-over.
    public init(entries: [Entry], dtype: DType, record: JSONValue) {
        self.entries = entries
        self.dtype = dtype
        self.record = record
    }

    /// The config.json key holding ``record``.
    public static let configKey = "quantize_kv_cache"

    /// `quantization_config.kv_cache_scheme` as llm-compressor 0.14 with compressed-tensors 0.20
    /// serialises its `QuantizationArgs(num_bits=8, type="float", strategy="tensor",
    /// dynamic=False, symmetric=True)`: None-valued optional fields and the observer left out.
    public static let scheme: JSONValue = .object([
        JSONMember("dynamic", .bool(false)),
        JSONMember("group_size", .null),
        JSONMember("num_bits", .number(JSONNumber(8))),
        JSONMember("strategy", .string("tensor")),
        JSONMember("symmetric", .bool(true)),
        JSONMember("type", .string("float")),
    ])

    /// The output tensors (shape `[1]` each).
    var outputs: [QuantizeJob.OutputTensor] {
        entries.map { QuantizeJob.OutputTensor(name: $0.name, type: .dtype(dtype), shape: [1], byteCount: dtype.bitWidth / 8) }
    }

    /// The bytes of entry `index` in ``dtype``.
    func bytes(_ index: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: dtype.bitWidth / 8)
        let value = [entries[index].value]
        try value.withUnsafeBufferPointer { v in try out.withUnsafeMutableBytes { try ElementConversion.fromFloat32(v, to: dtype, into: $0) } }
        return out
    }

    /// Refuses what would make vLLM read NaN or zeros (a non-finite or non-positive scale, also
    /// after rounding to ``dtype``), an unsupported dtype, or a name the input already has.
    func validate(against checkpoint: Checkpoint) throws {
        guard [.f32, .f16, .bf16].contains(dtype) else {
            throw QuantizeJobError(.outputCheckFailed, "KV-cache scales must be F32, F16 or BF16, not \(dtype.rawValue); this is a bug in quantize, please report it")
        }
        let existing = Set(checkpoint.tensors.map(\.name))
        for (i, entry) in entries.enumerated() {
            let stored = try bytes(i)
            var back = [Float](repeating: 0, count: 1)
            try stored.withUnsafeBytes { raw in try back.withUnsafeMutableBufferPointer { try ElementConversion.toFloat32(raw, from: dtype, into: $0) } }
            guard entry.value.isFinite, entry.value > 0, back[0].isFinite, back[0] > 0 else {
                throw QuantizeJobError(.outputCheckFailed, "the KV-cache scale \(entry.name) is \(entry.value) (\(back[0]) as \(dtype.rawValue)); vLLM would store NaN or zeros in the cache. Check the calibration data: every layer needs finite, non-zero keys and values")
            }
            if existing.contains(entry.name) {
                throw QuantizeJobError(.unsupportedConversion, "the input already has a tensor \(entry.name); --kv-cache fp8 writes new KV-cache scales and does not replace a checkpoint's own. Start from the unquantized model")
            }
        }
    }
}
