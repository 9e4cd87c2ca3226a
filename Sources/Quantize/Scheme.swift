import Formats

/// A quantization scheme the tool can produce: the name users type after `--to`.
///
/// The on-disk layout of each is written down in formats/ (one file per family).
public enum SchemeName: String, CaseIterable, Sendable, Codable {
    /// FP8 E4M3FN weights with FP32 scales (compressed-tensors "float-quantized").
    case fp8
    /// FP8 E5M2 weights with FP32 scales.
    case fp8E5M2 = "fp8-e5m2"
    /// Symmetric INT8 per-channel weights (compressed-tensors "int-quantized", W8A16).
    case int8
    /// INT4 group-wise weights packed into int32 (compressed-tensors "pack-quantized").
    case int4
    /// GGUF block types.
    case q8_0, q4_0, q4_1, q5_0, q5_1
    case q4_K = "q4_k"
    case q6_K = "q6_k"
    /// GGUF plain 16-bit types.
    case f16, bf16

    /// The ggml type a GGUF scheme writes, nil for safetensors schemes.
    public var ggmlType: GGMLType? {
        switch self {
        case .fp8, .fp8E5M2, .int8, .int4: return nil
        case .q8_0: return .q8_0
        case .q4_0: return .q4_0
        case .q4_1: return .q4_1
        case .q5_0: return .q5_0
        case .q5_1: return .q5_1
        case .q4_K: return .q4_K
        case .q6_K: return .q6_K
        case .f16: return .f16
        case .bf16: return .bf16
        }
    }
}

/// How many weights share one scale.
public enum Granularity: Sendable, Hashable, Codable {
    /// One scale for the whole tensor.
    case tensor
    /// One scale per output row.
    case channel
    /// One scale per `rows` × `columns` tile (DeepSeek-style 128×128 blocks).
    case block(rows: Int, columns: Int)
    /// One scale per `size` consecutive weights of a row.
    case group(size: Int)
}

/// A complete scheme: the name plus granularity and symmetry.
public struct Scheme: Sendable, Hashable, Codable {
    /// Which family.
    public var name: SchemeName
    /// How scales are shared.
    public var granularity: Granularity
    /// Symmetric (no zero point) or asymmetric (INT4 only).
    public var symmetric: Bool

    /// Creates a scheme.
    public init(name: SchemeName, granularity: Granularity? = nil, symmetric: Bool = true) {
        self.name = name
        self.symmetric = symmetric
        self.granularity = granularity ?? Scheme.defaultGranularity(for: name)
    }

    /// The granularity used when none is given: per-channel for fp8/int8, groups of 128 for int4,
    /// and the block size of GGUF types.
    public static func defaultGranularity(for name: SchemeName) -> Granularity {
        switch name {
        case .fp8, .fp8E5M2, .int8: return .channel
        case .int4: return .group(size: 128)
        default: return .group(size: name.ggmlType?.blockSize ?? 1)
        }
    }

    /// Bytes this scheme stores for a `rows` × `columns` weight matrix, scales and zero points
    /// included, exactly as the writer lays them out (formats/); nil on overflow.
    ///
    /// Scales: FP32 for fp8/fp8-e5m2; `scaleBytes` (the model's float dtype, 2 for BF16) for int8
    /// and int4; zero points of asymmetric int4 are packed 8 per int32 along the output dimension.
    public func storedByteCount(rows: Int, columns: Int, scaleBytes: Int = 2) -> Int? {
        guard rows >= 0, columns >= 0, let elements = CheckedSize.multiply(rows, columns) else { return nil }
        func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }
        switch name {
        case .fp8, .fp8E5M2:
            let scales: Int
            switch granularity {
            case .tensor: scales = 1
            case .channel: scales = rows
            case .block(let r, let c): scales = ceilDiv(rows, r) * ceilDiv(columns, c)
            case .group(let size): scales = rows * ceilDiv(columns, size)
            }
            return CheckedSize.sum(elements, scales * 4)
        case .int8:
            let groups: Int
            if case .group(let size) = granularity, size > 0 { groups = ceilDiv(columns, size) } else { groups = 1 }
            return CheckedSize.sum(elements, rows * groups * scaleBytes)
        case .int4:
            let groupSize: Int
            if case .group(let size) = granularity { groupSize = size } else { groupSize = columns }
            let groups = ceilDiv(columns, max(groupSize, 1))
            let packed = rows * ceilDiv(columns * 4, 32) * 4
            let scales = rows * groups * scaleBytes
            let zeros = symmetric ? 0 : ceilDiv(rows * 4, 32) * groups * 4
            return packed + scales + zeros + 16  // + weight_shape (I64 [2])
        default:
            return name.ggmlType?.byteCount(elementCount: elements)
        }
    }
}
