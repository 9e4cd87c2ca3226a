import Foundation
import Formats
import Quantize

/// A weight matrix or vector decoded to FP32, row-major.
public struct DecodedTensor: Sendable {
    /// Rows (output features; 1 for a vector).
    public var rows: Int
    /// Columns (input features; the length of a vector).
    public var columns: Int
    /// `rows × columns` values.
    public var values: [Float]
}

/// How the serving engine quantizes the input of a linear layer, as the checkpoint's config declares it.
public enum ActivationQuantization: Sendable, Equatable {
    /// Dynamic, one scale per token (row): FP8 E4M3 (amax/448) or INT8 (amax/127), as vLLM's W8A8 kernels do.
    case dynamicPerToken(isFloat: Bool)
    /// Dynamic, one scale per token and group of `groupSize` columns (vLLM block FP8, 1×128 groups).
    case dynamicPerTokenGroup(groupSize: Int)
    /// Dynamic, one scale for the whole input (vLLM `fp8` with `activation_scheme: dynamic`, per-tensor weights).
    case dynamicPerTensor
    /// Static: the checkpoint's `input_scale` for each layer.
    case staticPerTensor

    /// A phrase for reports.
    public var summary: String {
        switch self {
        case .dynamicPerToken(let isFloat): return isFloat ? "dynamic per-token FP8 E4M3" : "dynamic per-token INT8"
        case .dynamicPerTokenGroup(let g): return "dynamic per-token FP8 E4M3 in groups of \(g)"
        case .dynamicPerTensor: return "dynamic per-tensor FP8 E4M3"
        case .staticPerTensor: return "static per-tensor FP8 E4M3 (input_scale)"
        }
    }
}

/// What one weight of the decoder is, independent of how a checkpoint names it.
public enum WeightRole: Sendable, Hashable {
    /// Token embedding, final norm, output head (lm_head), Llama 3 RoPE factors (GGUF `rope_freqs`).
    case embedding, outputNorm, output, ropeFrequencies
    /// The two RMSNorms of layer N.
    case attentionNorm(Int), feedForwardNorm(Int)
    /// The attention projections of layer N.
    case query(Int), key(Int), value(Int), attentionOutput(Int)
    /// Qwen2's q/k/v biases of layer N.
    case queryBias(Int), keyBias(Int), valueBias(Int)
    /// Qwen3's per-head q/k RMSNorms of layer N.
    case queryNorm(Int), keyNorm(Int)
    /// The dense SwiGLU MLP of layer N.
    case gate(Int), up(Int), down(Int)
    /// The MoE router of layer N.
    case router(Int)
    /// Routed expert E of layer N (layer, expert).
    case expertGate(Int, Int), expertUp(Int, Int), expertDown(Int, Int)
    /// The shared expert of layer N and its sigmoid gate (Qwen2-MoE).
    case sharedGate(Int), sharedUp(Int), sharedDown(Int), sharedExpertGate(Int)
    /// FP8 KV-cache scales of layer N (compressed-tensors `k_scale`, `v_scale`).
    case keyCacheScale(Int), valueCacheScale(Int)

    /// The Hugging Face module name of a linear role (what observers see), e.g. `model.layers.3.self_attn.q_proj`.
    public var moduleName: String {
        switch self {
        case .embedding: return "model.embed_tokens"
        case .outputNorm: return "model.norm"
        case .output: return "lm_head"
        case .ropeFrequencies: return "rope_freqs"
        case .attentionNorm(let l): return "model.layers.\(l).input_layernorm"
        case .feedForwardNorm(let l): return "model.layers.\(l).post_attention_layernorm"
        case .query(let l), .queryBias(let l): return "model.layers.\(l).self_attn.q_proj"
        case .key(let l), .keyBias(let l): return "model.layers.\(l).self_attn.k_proj"
        case .value(let l), .valueBias(let l): return "model.layers.\(l).self_attn.v_proj"
        case .attentionOutput(let l): return "model.layers.\(l).self_attn.o_proj"
        case .queryNorm(let l): return "model.layers.\(l).self_attn.q_norm"
        case .keyNorm(let l): return "model.layers.\(l).self_attn.k_norm"
        case .gate(let l): return "model.layers.\(l).mlp.gate_proj"
        case .up(let l): return "model.layers.\(l).mlp.up_proj"
        case .down(let l): return "model.layers.\(l).mlp.down_proj"
        case .router(let l): return "model.layers.\(l).mlp.gate"
        case .expertGate(let l, let e): return "model.layers.\(l).mlp.experts.\(e).gate_proj"
        case .expertUp(let l, let e): return "model.layers.\(l).mlp.experts.\(e).up_proj"
        case .expertDown(let l, let e): return "model.layers.\(l).mlp.experts.\(e).down_proj"
        case .sharedGate(let l): return "model.layers.\(l).mlp.shared_expert.gate_proj"
        case .sharedUp(let l): return "model.layers.\(l).mlp.shared_expert.up_proj"
        case .sharedDown(let l): return "model.layers.\(l).mlp.shared_expert.down_proj"
        case .sharedExpertGate(let l): return "model.layers.\(l).mlp.shared_expert_gate"
        case .keyCacheScale(let l): return "model.layers.\(l).self_attn.k_scale"
        case .valueCacheScale(let l): return "model.layers.\(l).self_attn.v_scale"
        }
    }

    /// Candidate Hugging Face tensor names, most common first (Mixtral's `block_sparse_moe.*.w1/w2/w3` included).
    var safetensorsNames: [String] {
        let bias = "bias", weight = "weight"
        switch self {
        case .embedding: return ["model.embed_tokens.weight"]
        case .outputNorm: return ["model.norm.weight"]
        case .output: return ["lm_head.weight"]
        case .ropeFrequencies: return []
        case .queryBias, .keyBias, .valueBias: return [moduleName + "." + bias]
        case .router(let l): return [moduleName + "." + weight, "model.layers.\(l).block_sparse_moe.gate.weight"]
        case .expertGate(let l, let e): return [moduleName + ".weight", "model.layers.\(l).block_sparse_moe.experts.\(e).w1.weight"]
        case .expertUp(let l, let e): return [moduleName + ".weight", "model.layers.\(l).block_sparse_moe.experts.\(e).w3.weight"]
        case .expertDown(let l, let e): return [moduleName + ".weight", "model.layers.\(l).block_sparse_moe.experts.\(e).w2.weight"]
        case .keyCacheScale, .valueCacheScale: return [moduleName]
        default: return [moduleName + "." + weight]
        }
    }

    /// The llama.cpp tensor name (formats.md §2.9) and, for a stacked expert tensor, the expert index.
    var ggufName: (name: String, expert: Int?)? {
        switch self {
        case .embedding: return ("token_embd.weight", nil)
        case .outputNorm: return ("output_norm.weight", nil)
        case .output: return ("output.weight", nil)
        case .ropeFrequencies: return ("rope_freqs.weight", nil)
        case .attentionNorm(let l): return ("blk.\(l).attn_norm.weight", nil)
        case .feedForwardNorm(let l): return ("blk.\(l).ffn_norm.weight", nil)
        case .query(let l): return ("blk.\(l).attn_q.weight", nil)
        case .key(let l): return ("blk.\(l).attn_k.weight", nil)
        case .value(let l): return ("blk.\(l).attn_v.weight", nil)
        case .attentionOutput(let l): return ("blk.\(l).attn_output.weight", nil)
        case .queryBias(let l): return ("blk.\(l).attn_q.bias", nil)
        case .keyBias(let l): return ("blk.\(l).attn_k.bias", nil)
        case .valueBias(let l): return ("blk.\(l).attn_v.bias", nil)
        case .queryNorm(let l): return ("blk.\(l).attn_q_norm.weight", nil)
        case .keyNorm(let l): return ("blk.\(l).attn_k_norm.weight", nil)
        case .gate(let l): return ("blk.\(l).ffn_gate.weight", nil)
        case .up(let l): return ("blk.\(l).ffn_up.weight", nil)
        case .down(let l): return ("blk.\(l).ffn_down.weight", nil)
        case .router(let l): return ("blk.\(l).ffn_gate_inp.weight", nil)
        case .expertGate(let l, let e): return ("blk.\(l).ffn_gate_exps.weight", e)
        case .expertUp(let l, let e): return ("blk.\(l).ffn_up_exps.weight", e)
        case .expertDown(let l, let e): return ("blk.\(l).ffn_down_exps.weight", e)
        case .sharedGate(let l): return ("blk.\(l).ffn_gate_shexp.weight", nil)
        case .sharedUp(let l): return ("blk.\(l).ffn_up_shexp.weight", nil)
        case .sharedDown(let l): return ("blk.\(l).ffn_down_shexp.weight", nil)
        case .sharedExpertGate(let l): return ("blk.\(l).ffn_gate_inp_shexp.weight", nil)
        case .keyCacheScale, .valueCacheScale: return nil
        }
    }
}

/// Decodes the weights of one checkpoint to FP32 by role, one tensor at a time, straight from the
/// mapped files: HF safetensors (F32/F16/BF16), compressed-tensors and vLLM/DeepSeek fp8 layouts
/// (through Quantize's ``dequantized(_:tensorName:groupSize:blockSize:)``), and GGUF of every type
/// Quantize decodes, with llama.cpp's names and its Q/K row permutation undone for `llama` GGUFs.
public final class ModelWeights: @unchecked Sendable {
    /// The checkpoint.
    public let checkpoint: Checkpoint
    /// The configuration read from it.
    public let configuration: TransformerConfiguration
    /// How linear inputs are quantized where the config declares it (nil: FP32 inputs).
    public let activationQuantization: ActivationQuantization?
    /// Whether the config declares an FP8 KV cache (K and V rounded to E4M3 with per-layer scales).
    public let fp8KeyValueCache: Bool

    private let byName: [String: TensorRecord]
    private let groupSize: Int?
    private let blockSize: (rows: Int, columns: Int)?
    private let permutesQueryKey: Bool

    /// Opens `path` and reads its configuration.
    /// - Parameter weightsOnly: ignore declared activation and KV-cache quantization.
    public convenience init(path: String, weightsOnly: Bool = false) throws {
        try self.init(checkpoint: try Checkpoint(path: path), weightsOnly: weightsOnly)
    }

    /// Wraps an opened checkpoint.
    public init(checkpoint: Checkpoint, weightsOnly: Bool = false) throws(ModelError) {
        self.checkpoint = checkpoint
        configuration = try TransformerConfiguration(checkpoint: checkpoint)
        var byName: [String: TensorRecord] = [:]
        for tensor in checkpoint.tensors { byName[tensor.name] = tensor }
        self.byName = byName
        permutesQueryKey = checkpoint.gguf?["general.architecture"]?.string == "llama"
        let q = checkpoint.config?["quantization_config"]
        var groupSize: Int? = nil
        var blockSize: (Int, Int)? = nil
        var activation: ActivationQuantization? = nil
        var kvCache = false
        if let q {
            if let block = q["weight_block_size"]?.array?.compactMap(\.int), block.count == 2 { blockSize = (block[0], block[1]) }
            if let groups = q["config_groups"]?.object {
                for group in groups {
                    if let g = group.value["weights"]?["group_size"]?.int { groupSize = g }
                    if let b = group.value["weights"]?["block_structure"]?.array?.compactMap(\.int), b.count == 2 { blockSize = (b[0], b[1]) }
                    if let input = group.value["input_activations"], !input.isNull {
                        let isFloat = input["type"]?.string != "int"
                        let dynamic = input["dynamic"]?.bool ?? (input["dynamic"]?.string != nil)
                        switch (input["strategy"]?.string, dynamic) {
                        case ("token", true): activation = .dynamicPerToken(isFloat: isFloat)
                        case ("group", true): activation = .dynamicPerTokenGroup(groupSize: input["group_size"]?.int ?? 128)
                        case ("tensor", true): activation = .dynamicPerTensor
                        case ("tensor", false): activation = .staticPerTensor
                        default: break
                        }
                    }
                }
                if let kv = q["kv_cache_scheme"], !kv.isNull, kv["type"]?.string == "float", kv["num_bits"]?.int == 8 { kvCache = true }
            } else if let method = q["quant_method"]?.string, method.contains("fp8") {
                switch q["activation_scheme"]?.string {
                case "dynamic": activation = blockSize.map { .dynamicPerTokenGroup(groupSize: $0.1) } ?? .dynamicPerTensor
                case "static": activation = .staticPerTensor
                default: break
                }
            }
        }
        self.groupSize = groupSize
        self.blockSize = blockSize
        activationQuantization = weightsOnly ? nil : activation
        fp8KeyValueCache = weightsOnly ? false : kvCache
    }

    /// Whether the checkpoint holds a tensor for `role`.
    public func has(_ role: WeightRole) -> Bool { record(role) != nil }

    private func record(_ role: WeightRole) -> TensorRecord? {
        if checkpoint.format == .gguf { return role.ggufName.flatMap { byName[$0.name] } }
        for name in role.safetensorsNames {
            if let r = byName[name] { return r }
            let base = name.hasSuffix("weight") ? String(name.dropLast("weight".count)) : nil
            if let base, let r = byName[base + "weight_packed"] { return r }
        }
        return nil
    }

    /// Whether the linear weight of `role` is stored quantized (its input is then quantized as
    /// ``activationQuantization`` says).
    public func isQuantized(_ role: WeightRole) -> Bool {
        guard let r = record(role) else { return false }
        switch r.type {
        case .dtype(let d): return !(d == .f32 || d == .f16 || d == .bf16 || d == .f64)
        case .ggml(let g): return g.isQuantized
        }
    }

    /// The static input scale of a linear role (`input_scale`), where the checkpoint stores one.
    public func inputScale(_ role: WeightRole) -> Float? {
        guard checkpoint.format == .safetensors, let r = byName[role.moduleName + ".input_scale"] else { return nil }
        return try? scalar(r)
    }

    /// A scalar tensor (a KV-cache or input scale), nil when absent.
    public func scale(_ role: WeightRole) -> Float? {
        guard checkpoint.format == .safetensors, let r = record(role) else { return nil }
        return try? scalar(r)
    }

    private func scalar(_ r: TensorRecord) throws -> Float {
        guard case .dtype(let dtype) = r.type, r.elementCount >= 1 else { throw ModelError.shapeMismatch(path: checkpoint.path, tensor: r.name, shape: r.shape, expected: [1]) }
        var out = [Float](repeating: 0, count: r.elementCount)
        try out.withUnsafeMutableBufferPointer { try ElementConversion.toFloat32(checkpoint.data(for: r), from: dtype, into: $0) }
        return out[0]
    }

    /// Decodes the tensor of `role` to FP32, nil when the checkpoint has none.
    /// - Parameter shape: the expected `[rows, columns]` (or `[length]`); a different stored shape throws.
    public func decode(_ role: WeightRole, shape expected: [Int]) throws -> DecodedTensor? {
        guard let record = record(role) else { return nil }
        let rows = expected.count == 2 ? expected[0] : 1
        let columns = expected.last ?? 1
        let count = rows * columns
        let path = checkpoint.path
        var values = [Float](repeating: 0, count: count)
        if checkpoint.format == .gguf {
            guard case .ggml(let type) = record.type else { throw ModelError.missingTensor(path: path, tensor: record.name) }
            var bytes = checkpoint.data(for: record)
            if let expert = role.ggufName?.expert {
                // A stacked [experts, rows, columns] tensor: each expert is a whole number of rows of blocks.
                guard record.shape.count == 3, record.shape[1] == rows, record.shape[2] == columns, expert < record.shape[0] else {
                    throw ModelError.shapeMismatch(path: path, tensor: record.name, shape: record.shape, expected: [configuration.mixtureOfExperts?.expertCount ?? 0, rows, columns])
                }
                let per = record.byteCount / record.shape[0]
                bytes = UnsafeRawBufferPointer(rebasing: bytes[(expert * per)..<((expert + 1) * per)])
            } else if record.elementCount != count || (expected.count == 2 && record.shape.last != columns) {
                throw ModelError.shapeMismatch(path: path, tensor: record.name, shape: record.shape, expected: expected)
            }
            try values.withUnsafeMutableBufferPointer { out in
                if type == .f32 || type == .f16 || type == .bf16 {
                    let dtype: DType = type == .f32 ? .f32 : (type == .f16 ? .f16 : .bf16)
                    try ElementConversion.toFloat32(bytes, from: dtype, into: out)
                } else {
                    try dequantizeGGML(type, bytes: bytes, elementCount: count, into: out, tensorName: record.name)
                }
            }
            release(record)
            if permutesQueryKey {
                switch role {
                case .query: values = ModelWeights.unpermute(values, rows: rows, columns: columns, heads: configuration.headCount)
                case .key: values = ModelWeights.unpermute(values, rows: rows, columns: columns, heads: configuration.keyValueHeadCount)
                case .queryBias: values = ModelWeights.unpermute(values, rows: columns, columns: 1, heads: configuration.headCount)
                case .keyBias: values = ModelWeights.unpermute(values, rows: columns, columns: 1, heads: configuration.keyValueHeadCount)
                default: break
                }
            }
            return DecodedTensor(rows: rows, columns: columns, values: values)
        }
        // safetensors
        let prefix = record.name.hasSuffix("weight_packed") ? String(record.name.dropLast("weight_packed".count))
            : (record.name.hasSuffix("weight") ? String(record.name.dropLast("weight".count)) : record.name + ".")
        if case .dtype(let dtype) = record.type, dtype == .f32 || dtype == .f16 || dtype == .bf16 || dtype == .f64 {
            guard record.elementCount == count, expected.count != 2 || record.shape.last == columns else {
                throw ModelError.shapeMismatch(path: path, tensor: record.name, shape: record.shape, expected: expected)
            }
            try values.withUnsafeMutableBufferPointer { try ElementConversion.toFloat32(checkpoint.data(for: record), from: dtype, into: $0) }
            release(record)
            return DecodedTensor(rows: rows, columns: columns, values: values)
        }
        var parts: [QuantizedTensor.Part] = []
        let codeSuffix = record.name.hasSuffix("weight_packed") ? "weight_packed" : "weight"
        parts.append(QuantizedTensor.Part(suffix: codeSuffix, type: record.type, shape: record.shape, data: Array(checkpoint.data(for: record))))
        release(record)
        for suffix in ["weight_scale", "weight_scale_inv", "weight_zero_point", "weight_shape"] {
            if let r = byName[prefix + suffix] {
                parts.append(QuantizedTensor.Part(suffix: suffix, type: r.type, shape: r.shape, data: Array(checkpoint.data(for: r))))
                release(r)
            }
        }
        if let shape = parts.first(where: { $0.suffix == "weight_shape" }), shape.data.count >= 16 {
            let stored = shape.data.withUnsafeBytes { raw in (0..<2).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) } }
            if stored != [rows, columns] { throw ModelError.shapeMismatch(path: path, tensor: record.name, shape: stored, expected: expected) }
        } else if codeSuffix == "weight", record.elementCount != count {
            throw ModelError.shapeMismatch(path: path, tensor: record.name, shape: record.shape, expected: expected)
        }
        values = try dequantized(QuantizedTensor(rows: rows, columns: columns, parts: parts), tensorName: record.name,
                                 groupSize: groupSize, blockSize: blockSize)
        return DecodedTensor(rows: rows, columns: columns, values: values)
    }

    /// Drops the mapped pages of `record` from this process (they stay in the page cache), so
    /// reading a checkpoint larger than RAM keeps resident memory at one layer.
    func release(_ record: TensorRecord) {
        checkpoint.mappedFile(record.fileIndex).advise(record.fileOffset..<(record.fileOffset + record.byteCount), willNeed: false)
    }

    /// Whether ``decodeRows(_:rows:totalRows:columns:)`` can read `role` row by row.
    public func canDecodeRows(_ role: WeightRole) -> Bool {
        guard let record = record(role), record.shape.count == 2 else { return false }
        switch record.type {
        case .ggml: return true
        case .dtype(let d): return d == .f32 || d == .f16 || d == .bf16
        }
    }

    /// Decodes only rows `rows` of a `[totalRows, columns]` matrix (the embedding lookup) when the
    /// stored layout allows row access (GGUF of any type, safetensors F32/F16/BF16); nil otherwise.
    public func decodeRows(_ role: WeightRole, rows: [Int], totalRows: Int, columns: Int) throws -> [Float]? {
        guard let record = record(role), record.elementCount == totalRows * columns, record.shape.last == columns,
              record.byteCount % totalRows == 0 else { return nil }
        let rowBytes = record.byteCount / totalRows
        let all = checkpoint.data(for: record)
        var out = [Float](repeating: 0, count: rows.count * columns)
        switch record.type {
        case .ggml(let type):
            try out.withUnsafeMutableBufferPointer { o in
                for (i, r) in rows.enumerated() {
                    let bytes = UnsafeRawBufferPointer(rebasing: all[(r * rowBytes)..<((r + 1) * rowBytes)])
                    let dst = UnsafeMutableBufferPointer(rebasing: o[(i * columns)..<((i + 1) * columns)])
                    if type == .f32 || type == .f16 || type == .bf16 {
                        try ElementConversion.toFloat32(bytes, from: type == .f32 ? .f32 : (type == .f16 ? .f16 : .bf16), into: dst)
                    } else {
                        try dequantizeGGML(type, bytes: bytes, elementCount: columns, into: dst, tensorName: record.name)
                    }
                }
            }
        case .dtype(let dtype) where dtype == .f32 || dtype == .f16 || dtype == .bf16:
            try out.withUnsafeMutableBufferPointer { o in
                for (i, r) in rows.enumerated() {
                    try ElementConversion.toFloat32(UnsafeRawBufferPointer(rebasing: all[(r * rowBytes)..<((r + 1) * rowBytes)]), from: dtype,
                                                    into: UnsafeMutableBufferPointer(rebasing: o[(i * columns)..<((i + 1) * columns)]))
                }
            }
        default:
            return nil
        }
        release(record)
        return out
    }

    /// Decodes a tensor the architecture cannot do without.
    public func require(_ role: WeightRole, shape: [Int]) throws -> DecodedTensor {
        guard let tensor = try decode(role, shape: shape) else {
            let name = checkpoint.format == .gguf ? (role.ggufName?.name ?? role.moduleName) : (role.safetensorsNames.first ?? role.moduleName)
            throw ModelError.missingTensor(path: checkpoint.path, tensor: name)
        }
        return tensor
    }

    /// Undoes llama.cpp's Q/K row permutation (formats.md §2.9): GGUF row `h·d + 2i + s` holds HF row
    /// `h·d + s·d/2 + i` for head `h`, pair `i` and half `s`.
    static func unpermute(_ values: [Float], rows: Int, columns: Int, heads: Int) -> [Float] {
        guard heads > 0, rows % (2 * heads) == 0 else { return values }
        let headRows = rows / heads, half = headRows / 2
        var out = [Float](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for h in 0..<heads {
                    for i in 0..<half {
                        for s in 0..<2 {
                            let from = (h * headRows + 2 * i + s) * columns
                            let to = (h * headRows + s * half + i) * columns
                            (dst.baseAddress! + to).update(from: src.baseAddress! + from, count: columns)
                        }
                    }
                }
            }
        }
        return out
    }
}
