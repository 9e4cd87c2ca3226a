import Formats

/// Choices that change how a tensor is quantized beyond its ``Scheme``.
public struct QuantizeOptions: Sendable, Hashable {
    /// Accept NaN and ±inf weights instead of throwing ``QuantizeError/nonFiniteWeight(tensor:row:column:value:)``.
    ///
    /// For quantized schemes NaN becomes 0 and ±inf becomes ± the largest finite magnitude of its
    /// row before quantizing, so the output never holds NaN. For `f16`/`bf16` the values are stored
    /// as they are (and an F16 overflow is stored as infinity), as gguf-py does.
    public var allowNonFinite: Bool
    /// The stored type of int8/int4 scales: `.bf16` (default, the usual model dtype), `.f16` or
    /// `.f32`. FP8 scales are always F32. Codes are computed with the scale already rounded to it.
    public var scaleType: DType
    /// INT4/INT8 only: search, per group, the clipping ratio (1.00 down to 0.50 of the range, plus
    /// a least-squares rescale) that minimises the squared error of the decoded group; never worse
    /// than plain round-to-nearest on any group.
    public var search: Bool
    /// INT4/INT8 only: refine each group's round-to-nearest scale and zero point by half-quadratic
    /// optimisation of the ℓ0.7 weight error (HQQ; calibration-free), keeping round-to-nearest's
    /// where the refined pair's mean absolute error is not lower. Exclusive with ``search``.
    public var halfQuadratic: Bool
    /// INT8 only: store the codes as compressed-tensors `pack-quantized` (`weight_packed` I32, four
    /// codes per word, plus `weight_shape`), the only INT8 weight-only (W8A16) layout vLLM's WNA16
    /// kernels load; false stores `int-quantized` (`weight` I8), see formats/quantize-int.md.
    public var packInt8: Bool
    /// INT8 `int-quantized` only: declare dynamic per-token symmetric INT8 input activations in
    /// the config (W8A8, the layout vLLM serves with INT8 tensor cores as CompressedTensorsW8A8Int8;
    /// llm-compressor's preset `W8A8`). The stored tensors are the same as without it.
    public var int8Activations: Bool

    /// Creates options; the defaults refuse non-finite weights, store BF16 int scales, do not search,
    /// store INT8 as `int-quantized` and declare no activation quantization.
    public init(allowNonFinite: Bool = false, scaleType: DType = .bf16, search: Bool = false, packInt8: Bool = false,
                halfQuadratic: Bool = false, int8Activations: Bool = false) {
        self.allowNonFinite = allowNonFinite
        self.int8Activations = int8Activations
        self.scaleType = scaleType
        self.search = search
        self.halfQuadratic = halfQuadratic
        self.packInt8 = packInt8
    }
}

/// The tensors one quantized weight matrix is stored as: the codes plus scales, zero points and
/// shape records, each with its on-disk type, shape and little-endian bytes (formats/quantize-*.md).
public struct QuantizedTensor: Sendable, Equatable {
    /// One stored tensor of the layout.
    public struct Part: Sendable, Equatable {
        /// The name relative to the module: `weight`, `weight_scale`, `weight_scale_inv`,
        /// `weight_packed`, `weight_zero_point`, `weight_shape`; empty for a GGUF tensor, which
        /// keeps the original name.
        public var suffix: String
        /// The stored type (a safetensors dtype, or a ggml type for GGUF).
        public var type: TensorType
        /// The shape, outermost first (for GGUF the logical [rows, columns]).
        public var shape: [Int]
        /// The raw bytes, little-endian, row-major.
        public var data: [UInt8]

        /// Creates a part.
        public init(suffix: String, type: TensorType, shape: [Int], data: [UInt8]) {
            self.suffix = suffix
            self.type = type
            self.shape = shape
            self.data = data
        }
    }

    /// Rows (output features) of the original matrix.
    public var rows: Int
    /// Columns (input features) of the original matrix.
    public var columns: Int
    /// The stored tensors, codes first.
    public var parts: [Part]

    /// Creates a quantized tensor from its parts (for example tensors read from another tool's file).
    public init(rows: Int, columns: Int, parts: [Part]) {
        self.rows = rows
        self.columns = columns
        self.parts = parts
    }

    /// The part with this suffix, if present.
    public func part(_ suffix: String) -> Part? { parts.first { $0.suffix == suffix } }

    /// The full tensor name of a part for the weight called `weightName`: `a.b.weight` with suffix
    /// `weight_scale` gives `a.b.weight_scale`; an empty suffix keeps `weightName`.
    public static func tensorName(weightName: String, suffix: String) -> String {
        if suffix.isEmpty { return weightName }
        if weightName.hasSuffix("weight") { return String(weightName.dropLast("weight".count)) + suffix }
        return weightName + "." + suffix
    }
}
