import Formats

/// A quantization scheme the tool can produce: the name users type after `--to`.
///
/// Everything else about a scheme (container, ggml type, llama `file_type`, stored bytes, output
/// check, accuracy threshold, kernels) is in its ``SchemeDescriptor``, one entry of
/// ``SchemeDescriptor/all``. The on-disk layout of each is written down in formats/ (one file per
/// family).
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
    case q2_K = "q2_k"
    case q3_K = "q3_k"
    case q4_K = "q4_k"
    case q5_K = "q5_k"
    case q6_K = "q6_k"
    /// GGUF non-linear 4-bit types (no importance matrix needed).
    case iq4_NL = "iq4_nl"
    case iq4_XS = "iq4_xs"
    /// GGUF plain 16-bit types.
    case f16, bf16
    /// GGUF plain 32-bit floats (`general.file_type` 0, ALL_F32): a conversion's F32 twin as it is.
    case f32

    /// This scheme's entry of ``SchemeDescriptor/all``.
    public var descriptor: SchemeDescriptor { SchemeDescriptor.byName[self] ?? SchemeDescriptor.missing(self) }

    /// The ggml type a GGUF scheme writes, nil for safetensors schemes.
    public var ggmlType: GGMLType? { descriptor.ggmlType }

    /// The formats/ document family (`fp8`, `int`, `gguf`).
    public var family: SchemeFamily { descriptor.family }
}

/// The formats/ document a scheme's layout is written down in (`formats/quantize-<family>.md`).
public enum SchemeFamily: String, Sendable, Hashable, CaseIterable {
    /// FP8 weights with FP32 scales.
    case fp8
    /// INT8 / INT4 compressed-tensors layouts.
    case int
    /// GGUF block and plain types.
    case gguf
}

/// The file a scheme writes.
public enum SchemeContainer: String, Sendable, Hashable, CaseIterable {
    /// Hugging Face safetensors (a model directory or one file), for vLLM and transformers.
    case safetensors
    /// A GGUF file, for llama.cpp.
    case gguf
}

/// How a user asks for scale sharing (`--granularity`); ``Scheme/init(name:requested:groupSize:symmetric:)``
/// turns it into a ``Granularity`` with the scheme's rules.
public enum GranularityRequest: String, Sendable, Hashable, CaseIterable {
    /// One scale per output row (for int4 and GGUF types: their default).
    case channel
    /// One scale for the whole tensor.
    case tensor
    /// One scale per square block (128 × 128 unless a group size is given).
    case block
    /// One scale per group of weights along a row.
    case group
}

/// Everything the tool knows about one scheme, in one value: what it writes, which kernels encode
/// and decode it, how many bytes it stores, how its output is checked and how accurate it must be.
///
/// Every consumer (``TensorQuantizer``, ``Scheme/storedByteCount(rows:columns:scaleBytes:)``, the
/// output check, ``AccuracyThresholds``, the GGUF writer's `general.file_type`, Fit's variants and
/// the command line) reads these fields instead of switching over scheme names. Adding a scheme
/// is a ``SchemeName`` case and one entry of ``all``; adding a GGUF type is a kernel (CKernels), one
/// entry here and its tests.
public struct SchemeDescriptor: Sendable {
    /// The kernel family that encodes and decodes a scheme.
    public enum Kernel: Sendable, Hashable {
        /// FP8 codes with FP32 scales (quant_fp8.c).
        case fp8(FP8Format)
        /// Integer codes with scales in the model's float type and optional zero points (quant_int.c).
        case integer(bits: Int)
        /// A ggml type, encoded and decoded through the kernel table of ggml_kernels.c.
        case ggml(GGMLType)
    }

    /// The name users type.
    public let name: SchemeName
    /// The formats/ document family.
    public let family: SchemeFamily
    /// The kernels.
    public let kernel: Kernel
    /// The llama.cpp `llama_ftype` (`general.file_type`) of a GGUF file whose matrices are mostly
    /// this type; nil for safetensors schemes.
    public let llamaFileType: UInt32?
    /// The scale sharing used when none is asked for.
    public let defaultGranularity: Granularity
    /// The ``GranularityRequest``s this scheme accepts (`channel` always: it means the default).
    public let granularities: Set<GranularityRequest>
    /// The group sizes the scheme allows, nil when any positive size works.
    public let groupSizes: [Int]?
    /// Why only ``groupSizes`` are allowed, for the error message.
    public let groupSizesReason: String?
    /// Byte offsets of the FP16 scale fields inside one GGUF block, checked for finiteness after
    /// writing (empty for types without block scales).
    public let blockScaleOffsets: [Int]
    /// The FP32 magnitude bit pattern from which a finite value rounds to infinity in this plain
    /// 16-bit type (F16: 65520, BF16: above the largest finite BF16); nil for quantized types.
    public let overflowMagnitudeBits: UInt32?
    /// The default accuracy limit and the measurements it was derived from.
    public let accuracy: AccuracyThreshold
    /// The precision family Fit looks up native support and rates with (`fp8`, `int8`, `int4`,
    /// `bf16`, `fp16` for safetensors variants; GGUF variants are `gguf`).
    public let precision: String
    /// Whether the serving engines run this scheme's matrix math in its own precision where the
    /// hardware has it (FP8 W8A8), rather than dequantizing to 16 bits (weight-only).
    public let runsNativelyWhereSupported: Bool
    /// The scheme llama-quantize stores `output.weight` with by default in a file of this type
    /// (Q6_K for the 4- and 5-bit types); nil: the type itself.
    public let ggufOutputScheme: SchemeName?

    /// The file this scheme writes.
    public var container: SchemeContainer { ggmlType == nil ? .safetensors : .gguf }

    /// The ggml type a GGUF scheme writes, nil for safetensors schemes.
    public var ggmlType: GGMLType? { if case .ggml(let type) = kernel { return type } else { return nil } }

    /// The descriptor of every scheme, in ``SchemeName`` order (data, not code: accuracy limits
    /// from formats/accuracy-report.md "Thresholds", measured by tools/measure_accuracy_thresholds.py
    /// as the worst measured case times 1.5, rounded up to two significant digits).
    public static let all: [SchemeDescriptor] = [
        .safetensors(.fp8, family: .fp8, kernel: .fp8(.e4m3), granularity: .channel, granularities: [.channel, .tensor, .block, .group],
                     accuracy: (0.041, gaussian: 0.02632, heavyTailed: 0.02712), precision: "fp8", native: true),
        .safetensors(.fp8E5M2, family: .fp8, kernel: .fp8(.e5m2), granularity: .channel, granularities: [.channel, .tensor, .block, .group],
                     accuracy: (0.080, gaussian: 0.05206, heavyTailed: 0.05306), precision: "fp8", native: true),
        .safetensors(.int8, family: .int, kernel: .integer(bits: 8), granularity: .channel, granularities: [.channel, .group],
                     accuracy: (0.031, gaussian: 0.00858, heavyTailed: 0.02051), precision: "int8"),
        .safetensors(.int4, family: .int, kernel: .integer(bits: 4), granularity: .group(size: 128), granularities: [.channel, .group],
                     groupSizes: [32, 64, 128], groupSizesReason: "compressed-tensors W4A16 presets",
                     accuracy: (0.27, gaussian: 0.11685, heavyTailed: 0.17732), precision: "int4"),
        .gguf(.q8_0, .q8_0, fileType: 7, scaleOffsets: [0], accuracy: (0.011, gaussian: 0.00534, heavyTailed: 0.00693)),
        .gguf(.q4_0, .q4_0, fileType: 2, scaleOffsets: [0], accuracy: (0.17, gaussian: 0.08518, heavyTailed: 0.11151), output: .q6_K),
        .gguf(.q4_1, .q4_1, fileType: 3, scaleOffsets: [0, 2], accuracy: (0.14, gaussian: 0.07764, heavyTailed: 0.09196), output: .q6_K),
        .gguf(.q5_0, .q5_0, fileType: 8, scaleOffsets: [0], accuracy: (0.083, gaussian: 0.04236, heavyTailed: 0.05474), output: .q6_K),
        .gguf(.q5_1, .q5_1, fileType: 9, scaleOffsets: [0, 2], accuracy: (0.068, gaussian: 0.03730, heavyTailed: 0.04509), output: .q6_K),
        // file_type 10 is MOSTLY_Q2_K, 11 MOSTLY_Q3_K_S, 16 MOSTLY_Q5_K_S (every matrix one type); the
        // errors of q2_k, q3_k, q5_k, iq4_nl, iq4_xs are ggml's own quantizer's (tools/measure_accuracy_thresholds.py).
        .gguf(.q2_K, .q2_K, fileType: 10, scaleOffsets: [80, 82], accuracy: (0.52, gaussian: 0.29391, heavyTailed: 0.34454), output: .q6_K),
        .gguf(.q3_K, .q3_K, fileType: 11, scaleOffsets: [108], accuracy: (0.27, gaussian: 0.15119, heavyTailed: 0.17934), output: .q6_K),
        // file_type 14 is MOSTLY_Q4_K_S: every matrix Q4_K.
        .gguf(.q4_K, .q4_K, fileType: 14, scaleOffsets: [0, 2], accuracy: (0.14, gaussian: 0.07827, heavyTailed: 0.09286), output: .q6_K),
        .gguf(.q5_K, .q5_K, fileType: 16, scaleOffsets: [0, 2], accuracy: (0.065, gaussian: 0.03593, heavyTailed: 0.04305), output: .q6_K),
        .gguf(.q6_K, .q6_K, fileType: 18, scaleOffsets: [208], accuracy: (0.035, gaussian: 0.01866, heavyTailed: 0.02299)),
        .gguf(.iq4_NL, .iq4_NL, fileType: 25, scaleOffsets: [0], accuracy: (0.14, gaussian: 0.07526, heavyTailed: 0.09004), output: .q6_K),
        .gguf(.iq4_XS, .iq4_XS, fileType: 30, scaleOffsets: [0], accuracy: (0.14, gaussian: 0.07615, heavyTailed: 0.09101), output: .q6_K),
        .gguf(.f16, .f16, fileType: 1, overflowBits: 0x477F_F000, accuracy: (0.00032, gaussian: 0.00021, heavyTailed: 0.00021), precision: "fp16"),
        .gguf(.bf16, .bf16, fileType: 32, overflowBits: 0x7F7F_8000, accuracy: (0.0026, gaussian: 0.00165, heavyTailed: 0.00168), precision: "bf16"),
        // F32 stores FP32 weights exactly: no error to measure, the limit only catches a broken kernel.
        .gguf(.f32, .f32, fileType: 0, accuracy: (1e-7, gaussian: 0, heavyTailed: 0), precision: "fp32"),
    ]

    /// ``all`` by name.
    static let byName: [SchemeName: SchemeDescriptor] = Dictionary(all.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })

    /// The descriptor of a scheme written as text (`q4_k`, `Q4_K`, `fp8-e5m2`), nil if unknown.
    public static func named(_ text: String) -> SchemeDescriptor? {
        SchemeName(rawValue: text.lowercased()).map(\.descriptor)
    }

    /// The descriptor of the GGUF scheme writing `type`, nil when no scheme writes it.
    public static func writing(_ type: GGMLType) -> SchemeDescriptor? { all.first { $0.ggmlType == type } }

    /// A name without an entry in ``all`` (a programming error the tests catch): a descriptor whose
    /// kernel cannot encode anything and whose threshold is zero, so that it fails loudly.
    static func missing(_ name: SchemeName) -> SchemeDescriptor {
        SchemeDescriptor(name: name, family: .gguf, kernel: .ggml(.f32), llamaFileType: nil, defaultGranularity: .channel,
                         granularities: [.channel], groupSizes: nil, groupSizesReason: nil, blockScaleOffsets: [], overflowMagnitudeBits: nil,
                         accuracy: AccuracyThreshold(name, limit: 0, gaussian: 0, heavyTailed: 0), precision: "unknown",
                         runsNativelyWhereSupported: false, ggufOutputScheme: nil)
    }

    private static func safetensors(_ name: SchemeName, family: SchemeFamily, kernel: Kernel, granularity: Granularity,
                                    granularities: Set<GranularityRequest>, groupSizes: [Int]? = nil, groupSizesReason: String? = nil,
                                    accuracy: (Double, gaussian: Double, heavyTailed: Double), precision: String,
                                    native: Bool = false) -> SchemeDescriptor {
        SchemeDescriptor(name: name, family: family, kernel: kernel, llamaFileType: nil, defaultGranularity: granularity,
                         granularities: granularities, groupSizes: groupSizes, groupSizesReason: groupSizesReason, blockScaleOffsets: [],
                         overflowMagnitudeBits: nil,
                         accuracy: AccuracyThreshold(name, limit: accuracy.0, gaussian: accuracy.gaussian, heavyTailed: accuracy.heavyTailed),
                         precision: precision, runsNativelyWhereSupported: native, ggufOutputScheme: nil)
    }

    private static func gguf(_ name: SchemeName, _ type: GGMLType, fileType: UInt32, scaleOffsets: [Int] = [], overflowBits: UInt32? = nil,
                             accuracy: (Double, gaussian: Double, heavyTailed: Double), precision: String = "gguf",
                             output: SchemeName? = nil) -> SchemeDescriptor {
        SchemeDescriptor(name: name, family: .gguf, kernel: .ggml(type), llamaFileType: fileType, defaultGranularity: .group(size: type.blockSize),
                         granularities: [.channel], groupSizes: nil, groupSizesReason: nil, blockScaleOffsets: scaleOffsets,
                         overflowMagnitudeBits: overflowBits,
                         accuracy: AccuracyThreshold(name, limit: accuracy.0, gaussian: accuracy.gaussian, heavyTailed: accuracy.heavyTailed),
                         precision: precision, runsNativelyWhereSupported: false, ggufOutputScheme: output)
    }

    /// The rows and columns of a DeepSeek-style FP8 block when no size is given.
    public static let defaultBlockSize = 128
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

/// Why a requested granularity or group size does not fit a scheme
/// (``Scheme/init(name:requested:groupSize:symmetric:)``).
public enum SchemeRequestError: Error, Sendable, Equatable {
    /// Groups were asked for without a size, and the scheme has no default group size.
    case groupSizeNeeded(SchemeName)
    /// The scheme cannot share scales that way.
    case granularityNotApplicable(GranularityRequest, SchemeName)
    /// The scheme allows only some group sizes.
    case groupSizeNotAllowed(SchemeName, size: Int, allowed: [Int], reason: String?)
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

    /// A scheme from what a user asked for (`--granularity`, `--group-size`), with the scheme's
    /// rules from its descriptor: `channel` (or nothing) means the default; `block` is square,
    /// `groupSize` or 128 on a side; `group` takes `groupSize`, or the default's groups when the
    /// default is grouped; a scheme whose default is grouped (int4) takes a bare `groupSize` as
    /// its group; and a scheme with a list of group sizes refuses any other size.
    /// - Throws: ``SchemeRequestError`` naming what does not fit.
    public init(name: SchemeName, requested: GranularityRequest?, groupSize: Int?, symmetric: Bool = true) throws(SchemeRequestError) {
        let descriptor = name.descriptor
        var defaultGroups = false
        if case .group = descriptor.defaultGranularity { defaultGroups = true }
        var granularity: Granularity? = nil
        if let requested, requested != .channel {
            guard descriptor.granularities.contains(requested) else { throw .granularityNotApplicable(requested, name) }
            switch requested {
            case .channel: break
            case .tensor: granularity = .tensor
            case .block:
                let side = groupSize ?? SchemeDescriptor.defaultBlockSize
                granularity = .block(rows: side, columns: side)
            case .group:
                if let groupSize { granularity = .group(size: groupSize) } else if !defaultGroups { throw .groupSizeNeeded(name) }
            }
        } else if requested == nil, defaultGroups, descriptor.granularities.contains(.group), let groupSize {
            granularity = .group(size: groupSize)
        }
        if let allowed = descriptor.groupSizes, let groupSize, !allowed.contains(groupSize) {
            throw .groupSizeNotAllowed(name, size: groupSize, allowed: allowed, reason: descriptor.groupSizesReason)
        }
        self.init(name: name, granularity: granularity, symmetric: symmetric)
    }

    /// The granularity used when none is given: per-channel for fp8/int8, groups of 128 for int4,
    /// and the block size of GGUF types.
    public static func defaultGranularity(for name: SchemeName) -> Granularity { name.descriptor.defaultGranularity }

    /// This scheme's descriptor.
    public var descriptor: SchemeDescriptor { name.descriptor }

    /// The suffix naming this variant in a default output path: the scheme name, plus `-tensor` /
    /// `-block` for FP8 scales that are not per channel, `-gN` for int4 groups other than 128 and
    /// `-asym` for asymmetric int4.
    public var outputLabel: String {
        var label = name.rawValue
        switch (descriptor.kernel, granularity) {
        case (.fp8, .tensor): label += "-tensor"
        case (.fp8, .block): label += "-block"
        case (.integer(bits: 4), .group(let size)) where size != 128: label += "-g\(size)"
        case (.fp8, _), (.integer, _), (.ggml, _): break
        }
        if case .integer(bits: 4) = descriptor.kernel, !symmetric { label += "-asym" }
        return label
    }

    /// Bytes this scheme stores for a `rows` × `columns` weight matrix, scales and zero points
    /// included, exactly as the writer lays them out (formats/); nil on overflow.
    ///
    /// Scales: FP32 for fp8/fp8-e5m2; `scaleBytes` (the model's float dtype, 2 for BF16) for int8
    /// and int4; zero points of asymmetric int4 are packed 8 per int32 along the output dimension.
    public func storedByteCount(rows: Int, columns: Int, scaleBytes: Int = 2) -> Int? {
        guard rows >= 0, columns >= 0, let elements = CheckedSize.multiply(rows, columns) else { return nil }
        func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }
        switch descriptor.kernel {
        case .fp8:
            let scales: Int
            switch granularity {
            case .tensor: scales = 1
            case .channel: scales = rows
            case .block(let r, let c): scales = ceilDiv(rows, r) * ceilDiv(columns, c)
            case .group(let size): scales = rows * ceilDiv(columns, size)
            }
            return CheckedSize.sum(elements, scales * 4)
        case .integer(bits: 8):
            let groups: Int
            if case .group(let size) = granularity, size > 0 { groups = ceilDiv(columns, size) } else { groups = 1 }
            return CheckedSize.sum(elements, rows * groups * scaleBytes)
        case .integer(let bits):
            let groupSize: Int
            if case .group(let size) = granularity { groupSize = size } else { groupSize = columns }
            let groups = ceilDiv(columns, max(groupSize, 1))
            let perWord = 32 / bits
            let packed = rows * ceilDiv(columns * bits, 32) * 4
            let scales = rows * groups * scaleBytes
            let zeros = symmetric ? 0 : ceilDiv(rows, perWord) * groups * 4
            return packed + scales + zeros + 16  // + weight_shape (I64 [2])
        case .ggml(let type):
            return type.byteCount(elementCount: elements)
        }
    }
}
