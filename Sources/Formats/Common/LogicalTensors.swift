import Foundation

/// One weight of the model a checkpoint holds, whatever layout stores it: a plain tensor, or a
/// quantized weight with all its stored parts (compressed-tensors `weight_packed`, `weight_scale`,
/// `weight_zero_point`, `weight_shape`; FP8/INT8 `weight` with `weight_scale` or DeepSeek's
/// `weight_scale_inv`) folded into it at its logical shape.
public struct LogicalTensor: Sendable, Hashable {
    /// The weight's name (`X.weight` for a packed `X.weight_packed`).
    public var name: String
    /// The logical shape (elements, not packed words).
    public var shape: [Int]
    /// Logical elements.
    public var elementCount: Int
    /// The stored tensors, the values first.
    public var parts: [TensorRecord]

    /// Creates a logical tensor.
    public init(name: String, shape: [Int], elementCount: Int, parts: [TensorRecord]) {
        self.name = name
        self.shape = shape
        self.elementCount = elementCount
        self.parts = parts
    }

    /// Bytes of every stored part.
    public var storedByteCount: Int { parts.reduce(0) { $0 + $1.byteCount } }
}

/// How a checkpoint declares (or its tensor types show) that its weights are quantized: the
/// `quantization_config` of config.json or of a lone file's metadata (compressed-tensors, vLLM
/// `fp8`), or the GGUF block types.
public struct StoredQuantization: Sendable, Hashable, Codable {
    /// `compressed-tensors`, `fp8` (vLLM/DeepSeek block FP8) or `gguf`.
    public var method: String
    /// The compressed-tensors format (`pack-quantized`, `int-quantized`, `float-quantized`).
    public var format: String?
    /// Bits per stored value.
    public var bits: Int?
    /// `int` or `float`.
    public var valueType: String?
    /// `channel`, `group`, `tensor` or `block`.
    public var strategy: String?
    /// Elements per scale group (strategy `group`).
    public var groupSize: Int?
    /// Rows × columns per scale (strategy `block`).
    public var blockSize: [Int]?
    /// Whether the integer codes are symmetric (no zero points).
    public var symmetric: Bool?
    /// The scheme as `quantize --to` and `fit --variant` name it: `fp8`, `fp8-e5m2`, `int8`,
    /// `int4`, `int4-g32`, `int4-asym`, `q4_k`, …
    public var schemeName: String
    /// GGUF: the ggml types of the quantized tensors, most bytes first.
    public var ggmlTypes: [String]?
    /// GGUF: llama.cpp's name of `general.file_type` when it names a quantized mixture or type
    /// (`Q4_K_M`), nil when absent or plain F32/F16/BF16.
    public var llamaFileType: String? = nil

    /// One line for people: `int4 (compressed-tensors pack-quantized: 4-bit int, group 128, symmetric)`.
    public var summary: String {
        if method == "gguf" {
            let file = llamaFileType.map { "llama.cpp \($0): " } ?? ""
            return "\(llamaFileType?.lowercased() ?? schemeName) (\(file)GGUF \((ggmlTypes ?? []).joined(separator: ", ")))"
        }
        var details: [String] = []
        if let bits, let valueType { details.append("\(bits)-bit \(valueType)") }
        switch strategy {
        case "group": details.append("group \(groupSize.map(String.init) ?? "?")")
        case "block": details.append("blocks \((blockSize ?? []).map(String.init).joined(separator: "×"))")
        case let other?: details.append("per-\(other)")
        case nil: break
        }
        if let symmetric, valueType == "int" { details.append(symmetric ? "symmetric" : "asymmetric") }
        let origin = [method, format].compactMap { $0 }.joined(separator: " ")
        return "\(schemeName) (\(origin)\(details.isEmpty ? "" : ": " + details.joined(separator: ", ")))"
    }
}

extension Checkpoint {
    /// Suffixes of the stored parts that belong to a weight `X.weight`.
    static let partSuffixes = ["weight_scale", "weight_scale_inv", "weight_zero_point", "weight_shape", "weight_g_idx", "input_scale"]

    /// The weights of the model, in file order: quantized weights folded with their parts at their
    /// logical shapes, every other tensor as it is.
    public var logicalTensors: [LogicalTensor] {
        if format == .gguf {
            return tensors.map { LogicalTensor(name: $0.name, shape: $0.shape, elementCount: $0.elementCount, parts: [$0]) }
        }
        var byName: [String: TensorRecord] = [:]
        for tensor in tensors { byName[tensor.name] = tensor }
        let bits = quantization?.bits ?? 4
        var claimed = Set<String>()
        var result: [LogicalTensor] = []
        for tensor in tensors {
            let base: String
            if tensor.name.hasSuffix(".weight_packed") {
                base = String(tensor.name.dropLast("_packed".count))
            } else if tensor.name.hasSuffix(".weight"), Checkpoint.partSuffixes.contains(where: { byName[tensor.name + String($0.dropFirst("weight".count))] != nil }) {
                base = tensor.name
            } else {
                continue
            }
            var parts = [tensor]
            for suffix in Checkpoint.partSuffixes {
                if let part = byName[base + String(suffix.dropFirst("weight".count))] { parts.append(part) }
            }
            var shape = tensor.shape
            if tensor.name.hasSuffix(".weight_packed") {
                if let stored = parts.first(where: { $0.name.hasSuffix(".weight_shape") }), let logical = storedShape(stored) {
                    shape = logical
                } else if let words = shape.last, case .dtype(let dtype) = tensor.type {
                    shape[shape.count - 1] = words * dtype.bitWidth / max(bits, 1)
                }
            }
            let elements = CheckedSize.product(shape) ?? tensor.elementCount
            claimed.formUnion(parts.map(\.name))
            result.append(LogicalTensor(name: base, shape: shape, elementCount: elements, parts: parts))
        }
        // Keep file order: each logical tensor where its values are, every unclaimed tensor as itself.
        var byFirst: [String: LogicalTensor] = [:]
        for logical in result { byFirst[logical.parts[0].name] = logical }
        return tensors.compactMap { tensor in
            if let logical = byFirst[tensor.name] { return logical }
            if claimed.contains(tensor.name) { return nil }
            return LogicalTensor(name: tensor.name, shape: tensor.shape, elementCount: tensor.elementCount, parts: [tensor])
        }
    }

    /// Logical parameters: the elements of ``logicalTensors`` (packed words unpacked, scales and
    /// zero points not counted); equal to ``parameterCount`` for an unquantized checkpoint.
    public var logicalParameterCount: Int { logicalTensors.reduce(0) { $0 + $1.elementCount } }

    /// A `weight_shape` tensor's values (two little-endian I64 or I32), nil when unreadable.
    public func storedShape(_ record: TensorRecord) -> [Int]? {
        guard case .dtype(let dtype) = record.type, dtype == .i64 || dtype == .i32, record.elementCount == 2 else { return nil }
        guard let bytes = try? readData(for: record) else { return nil }
        let width = dtype == .i64 ? 8 : 4
        guard bytes.count == 2 * width else { return nil }
        let values = (0..<2).map { i -> Int in
            width == 8 ? Int(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))
                       : Int(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
        }
        return values.allSatisfy { $0 > 0 } ? values : nil
    }

    /// How the weights are quantized, or nil for an unquantized checkpoint: from
    /// `quantization_config` (config.json, or a lone safetensors file's metadata), else from the
    /// GGUF block types.
    public var quantization: StoredQuantization? {
        if format == .gguf {
            var bytes: [String: Int] = [:]
            for tensor in tensors {
                guard case .ggml(let type) = tensor.type, type.isQuantized else { continue }
                bytes[type.name, default: 0] += tensor.byteCount
            }
            let types = bytes.keys.sorted { bytes[$0]! != bytes[$1]! ? bytes[$0]! > bytes[$1]! : $0 < $1 }
            guard let main = types.first else { return nil }
            var stored = StoredQuantization(method: "gguf", schemeName: main.lowercased(), ggmlTypes: types)
            if let value = gguf?["general.file_type"]?.int, value >= 0, let name = LlamaFileType.name(UInt32(truncatingIfNeeded: value)),
               !["F32", "F16", "BF16"].contains(name) {
                stored.llamaFileType = name
            }
            return stored
        }
        var declared = config?["quantization_config"]
        if declared == nil, let text = safetensors?.shards.first?.metadata?["quantization_config"] {
            declared = try? JSONValue.parse(text, path: "quantization_config")
        }
        guard let declared else { return nil }
        let e5m2 = tensors.contains { $0.type == .dtype(.f8E5M2) }
        if declared["quant_method"]?.string == "fp8" {
            let block = declared["weight_block_size"]?.array?.compactMap(\.int)
            let name = declared["fmt"]?.string == "e5m2" || e5m2 ? "fp8-e5m2" : "fp8"
            return StoredQuantization(method: "fp8", bits: 8, valueType: "float", strategy: block == nil ? "channel" : "block",
                                      blockSize: block, symmetric: true, schemeName: name)
        }
        let method = declared["quant_method"]?.string ?? "unknown"
        let groups = declared["config_groups"]?.object ?? []
        guard let weights = groups.first?.value["weights"] else {
            return StoredQuantization(method: method, format: declared["format"]?.string, schemeName: method)
        }
        let bits = weights["num_bits"]?.int
        let valueType = weights["type"]?.string
        let strategy = weights["strategy"]?.string
        let group = weights["group_size"]?.int
        let symmetric = weights["symmetric"]?.bool
        let block = weights["block_structure"]?.array?.compactMap(\.int)
        var name: String
        switch (valueType, bits) {
        case ("float", 8?): name = e5m2 ? "fp8-e5m2" : "fp8"
        case ("int", let b?): name = "int\(b)"
        default: name = "\(valueType ?? "w")\(bits.map(String.init) ?? "")"
        }
        if valueType == "int", bits == 4, strategy == "group", let group, group != 128 { name += "-g\(group)" }
        if valueType == "int", symmetric == false { name += "-asym" }
        return StoredQuantization(method: method, format: groups.first?.value["format"]?.string ?? declared["format"]?.string,
                                  bits: bits, valueType: valueType, strategy: strategy, groupSize: group,
                                  blockSize: block?.count == 2 ? block : nil, symmetric: symmetric, schemeName: name)
    }
}
