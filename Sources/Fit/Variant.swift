import Formats
import Quantize

/// A weight variant to plan for: 16-bit, a Quantize safetensors scheme, or a GGUF type.
///
/// Bytes come from ``Scheme/storedByteCount(rows:columns:scaleBytes:)`` per tensor, so scales, zero
/// points and packing are counted exactly as the writer lays them out (formats/).
public struct Variant: Sendable, Hashable, CustomStringConvertible {
    /// The name as users type it (`bf16`, `fp8`, `int4`, `int4-g32`, `q4_0`).
    public var name: String
    /// The scheme that stores the quantizable tensors.
    public var scheme: Scheme
    /// Whether this is a GGUF variant (llama.cpp rules for embeddings, output and norms).
    public var isGGUF: Bool
    /// A llama.cpp mixture (`q4_k_m`): each tensor's type by llama-quantize's rule; ``scheme`` is
    /// then the mixture's default type.
    public var mixture: MixtureName? = nil

    /// The name.
    public var description: String { name }

    /// The variants the overview table compares.
    public static let overview: [String] = ["bf16", "fp8", "int8", "int4"]

    /// Variant names that are not scheme names: safetensors 16-bit weights (stored like the GGUF
    /// plain types, two bytes each) and asymmetric int4.
    static let special: [String: Variant] = [
        "bf16": Variant(name: "bf16", scheme: Scheme(name: .bf16), isGGUF: false),
        "fp16": Variant(name: "fp16", scheme: Scheme(name: .f16), isGGUF: false),
        "f16-safetensors": Variant(name: "fp16", scheme: Scheme(name: .f16), isGGUF: false),
        "int4-asym": Variant(name: "int4-asym", scheme: Scheme(name: .int4, symmetric: false), isGGUF: false),
    ]

    /// Parses a variant name: `bf16`, `fp16`, `fp8`, `fp8-e5m2`, `int8`, `int4`, `int4-gN` (group N),
    /// `int4-asym`, a GGUF type (`q8_0`, `q4_0`, `q4_1`, `q5_0`, `q5_1`, `q4_k`, `f16`) or a llama.cpp
    /// mixture (`q4_k_m`, `q5_k_m`, …; `q2_k`, `q6_k` and `iq4_xs` mean the mixtures, as in llama-quantize).
    public static func parse(_ text: String) throws -> Variant {
        let key = text.lowercased()
        if let special = special[key] { return special }
        if key.hasPrefix("int4-g"), let group = Int(key.dropFirst("int4-g".count)), group > 0, group <= 1 << 20 {
            return Variant(name: key, scheme: Scheme(name: .int4, granularity: .group(size: group)), isGGUF: false)
        }
        if let mixture = MixtureName(rawValue: key), let name = SchemeDescriptor.writing(mixture.descriptor.defaultType)?.name {
            return Variant(name: key, scheme: Scheme(name: name), isGGUF: true, mixture: mixture)
        }
        if let name = SchemeName(rawValue: key) {
            return Variant(name: key, scheme: Scheme(name: name), isGGUF: name.descriptor.container == .gguf)
        }
        var ggufNames = SchemeDescriptor.all.filter { $0.container == .gguf }.map(\.name.rawValue)
        ggufNames += MixtureName.allCases.map(\.rawValue).filter { !ggufNames.contains($0) }
        throw FitError(.invalidRequest, path: text,
                       message: "unknown variant '\(text)'; known: bf16, fp16, fp8, fp8-e5m2, int8, int4, int4-gN, int4-asym, \(ggufNames.joined(separator: ", "))",
                       remedy: "pick one of the known variants")
    }

    /// The precision family used to look up native support and rates: `bf16`, `fp16`, `fp8`, `int8`, `int4`, or `gguf`.
    public var weightFormat: String { isGGUF ? "gguf" : scheme.descriptor.precision }

    /// Whether the weights are stored in 16 bits (no dequantization).
    public var isSixteenBit: Bool { scheme.name.ggmlType?.isQuantized == false }

    /// How the variant executes on `hardware`: the math precision and whether it is weight-only.
    ///
    /// FP8 runs as W8A8 where the matrix units have FP8 (H100, H200, MI300X, L40S…) and weight-only
    /// (dequantized to BF16, Marlin-style) elsewhere (A100, T4, TPU); int8 and int4 are W8A16/W4A16
    /// everywhere; GGUF types are dequantized to FP16 on GPUs and use int8 dot products on CPUs.
    public func execution(on hardware: Hardware) -> Execution {
        let sixteen = hardware.runsNatively("bf16") ? "bf16" : "fp16"
        if hardware.kind == .cpu {
            if isSixteenBit { return Execution(mathPrecision: hardware.runsNatively("bf16") ? "bf16" : "fp32", weightOnly: false) }
            return Execution(mathPrecision: "int8", weightOnly: true)
        }
        // llama.cpp dequantizes GGUF blocks to FP16 for cuBLAS and its own kernels.
        if isGGUF { return Execution(mathPrecision: "fp16", weightOnly: !isSixteenBit) }
        if isSixteenBit { return Execution(mathPrecision: weightFormat == "fp16" ? "fp16" : sixteen, weightOnly: false) }
        if scheme.descriptor.runsNativelyWhereSupported, hardware.runsNatively(weightFormat) {
            return Execution(mathPrecision: weightFormat, weightOnly: false)
        }
        return Execution(mathPrecision: sixteen, weightOnly: true)
    }

    /// Bytes of every weight tensor in this variant, grouped by role; nil on overflow.
    ///
    /// Safetensors schemes quantize projections and experts and keep embeddings, lm_head, routers,
    /// norms and biases in 16 bits. GGUF variants follow llama-quantize's defaults: the token
    /// embedding at the variant type, `output.weight` at Q6_K for 4- and 5-bit types, norms and
    /// routers in F32.
    public func weightBytes(of shape: ModelShape) -> WeightBytes? {
        if let mixture { return mixtureWeightBytes(of: shape, mixture: mixture.descriptor) }
        var bytes = WeightBytes()
        for tensor in shape.weightTensors {
            guard let elements = CheckedSize.multiply(tensor.rows, tensor.columns) else { return nil }
            let perTensor: Int?
            if tensor.isQuantizable {
                perTensor = scheme.storedByteCount(rows: tensor.rows, columns: tensor.columns, scaleBytes: 2)
            } else if isGGUF {
                switch tensor.role {
                case .embedding:
                    perTensor = scheme.storedByteCount(rows: tensor.rows, columns: tensor.columns) ?? CheckedSize.multiply(elements, 2)
                case .lmHead:
                    let kept = scheme.descriptor.ggufOutputScheme.map { Scheme(name: $0) } ?? scheme
                    perTensor = kept.storedByteCount(rows: tensor.rows, columns: tensor.columns) ?? CheckedSize.multiply(elements, 2)
                default:
                    perTensor = CheckedSize.multiply(elements, 4)
                }
            } else {
                perTensor = CheckedSize.multiply(elements, 2)
            }
            guard let perTensor, let total = CheckedSize.multiply(perTensor, tensor.count) else { return nil }
            bytes.add(total, role: tensor.role)
        }
        return bytes
    }
}

/// How a variant runs on a device.
public struct Execution: Sendable, Hashable, Codable {
    /// The precision of the matrix math (`fp8`, `bf16`, `fp16`, `int8`, `fp32`).
    public var mathPrecision: String
    /// Whether weights are dequantized to `mathPrecision` on the fly (W8A16/W4A16, FP8 on A100).
    public var weightOnly: Bool

    /// A phrase for output: `native fp8` or `weight-only (bf16 math)`.
    public var summary: String {
        if weightOnly && mathPrecision == "int8" { return "weight-only (quantized blocks, int8 dot products)" }
        return weightOnly ? "weight-only (dequantized to \(mathPrecision))" : "native \(mathPrecision)"
    }
}

/// Weight bytes of a variant, by role.
public struct WeightBytes: Sendable, Hashable, Codable {
    /// Attention and dense-MLP projections.
    public var projections = 0
    /// Routed experts (all of them).
    public var experts = 0
    /// Embedding tables (token and position).
    public var embeddings = 0
    /// The output head.
    public var lmHead = 0
    /// Norms, biases and routers.
    public var other = 0

    /// Creates an empty count.
    public init() {}

    /// Everything.
    public var total: Int { projections + experts + embeddings + lmHead + other }

    mutating func add(_ bytes: Int, role: WeightTensor.Role) {
        switch role {
        case .attention, .mlp: projections += bytes
        case .expert: experts += bytes
        case .embedding: embeddings += bytes
        case .lmHead: lmHead += bytes
        case .router, .vector: other += bytes
        }
    }
}
