/// A ggml tensor type: its id in GGUF files, its name, and how many bytes a block of elements takes.
///
/// The table is data (formats.md §2.3, from ggml's `type_traits` and ggml-common.h structs at
/// ggml-org/ggml d99724f). Ids of removed types (4, 5, 31–33, 36–38) have no entry and are rejected
/// when read. Adding a type is one line in ``all``.
public struct GGMLType: Hashable, Sendable, CustomStringConvertible {
    /// The id stored in a GGUF tensor info.
    public let id: UInt32
    /// The name ggml and gguf-py use (`Q4_K`, `BF16`, …).
    public let name: String
    /// Elements per block (1 for plain types, 32 for legacy quants, 256 for K-quants).
    public let blockSize: Int
    /// Bytes one block occupies.
    public let bytesPerBlock: Int

    /// The name.
    public var description: String { name }

    /// Storage cost in bits per weight.
    public var bitsPerWeight: Double { Double(bytesPerBlock * 8) / Double(blockSize) }

    /// Whether this is a block-quantized type (anything but plain floats and integers).
    public var isQuantized: Bool { blockSize > 1 }

    /// Bytes `elementCount` elements take, or nil if the count is not a whole number of blocks or
    /// the product overflows.
    public func byteCount(elementCount: Int) -> Int? {
        guard elementCount >= 0, elementCount % blockSize == 0 else { return nil }
        return CheckedSize.multiply(elementCount / blockSize, bytesPerBlock)
    }

    /// Every type ggml defines today, in id order.
    public static let all: [GGMLType] = [
        GGMLType(id: 0, name: "F32", blockSize: 1, bytesPerBlock: 4),
        GGMLType(id: 1, name: "F16", blockSize: 1, bytesPerBlock: 2),
        GGMLType(id: 2, name: "Q4_0", blockSize: 32, bytesPerBlock: 18),
        GGMLType(id: 3, name: "Q4_1", blockSize: 32, bytesPerBlock: 20),
        GGMLType(id: 6, name: "Q5_0", blockSize: 32, bytesPerBlock: 22),
        GGMLType(id: 7, name: "Q5_1", blockSize: 32, bytesPerBlock: 24),
        GGMLType(id: 8, name: "Q8_0", blockSize: 32, bytesPerBlock: 34),
        GGMLType(id: 9, name: "Q8_1", blockSize: 32, bytesPerBlock: 36),
        GGMLType(id: 10, name: "Q2_K", blockSize: 256, bytesPerBlock: 84),
        GGMLType(id: 11, name: "Q3_K", blockSize: 256, bytesPerBlock: 110),
        GGMLType(id: 12, name: "Q4_K", blockSize: 256, bytesPerBlock: 144),
        GGMLType(id: 13, name: "Q5_K", blockSize: 256, bytesPerBlock: 176),
        GGMLType(id: 14, name: "Q6_K", blockSize: 256, bytesPerBlock: 210),
        GGMLType(id: 15, name: "Q8_K", blockSize: 256, bytesPerBlock: 292),
        GGMLType(id: 16, name: "IQ2_XXS", blockSize: 256, bytesPerBlock: 66),
        GGMLType(id: 17, name: "IQ2_XS", blockSize: 256, bytesPerBlock: 74),
        GGMLType(id: 18, name: "IQ3_XXS", blockSize: 256, bytesPerBlock: 98),
        GGMLType(id: 19, name: "IQ1_S", blockSize: 256, bytesPerBlock: 50),
        GGMLType(id: 20, name: "IQ4_NL", blockSize: 32, bytesPerBlock: 18),
        GGMLType(id: 21, name: "IQ3_S", blockSize: 256, bytesPerBlock: 110),
        GGMLType(id: 22, name: "IQ2_S", blockSize: 256, bytesPerBlock: 82),
        GGMLType(id: 23, name: "IQ4_XS", blockSize: 256, bytesPerBlock: 136),
        GGMLType(id: 24, name: "I8", blockSize: 1, bytesPerBlock: 1),
        GGMLType(id: 25, name: "I16", blockSize: 1, bytesPerBlock: 2),
        GGMLType(id: 26, name: "I32", blockSize: 1, bytesPerBlock: 4),
        GGMLType(id: 27, name: "I64", blockSize: 1, bytesPerBlock: 8),
        GGMLType(id: 28, name: "F64", blockSize: 1, bytesPerBlock: 8),
        GGMLType(id: 29, name: "IQ1_M", blockSize: 256, bytesPerBlock: 56),
        GGMLType(id: 30, name: "BF16", blockSize: 1, bytesPerBlock: 2),
        GGMLType(id: 34, name: "TQ1_0", blockSize: 256, bytesPerBlock: 54),
        GGMLType(id: 35, name: "TQ2_0", blockSize: 256, bytesPerBlock: 66),
        GGMLType(id: 39, name: "MXFP4", blockSize: 32, bytesPerBlock: 17),
        GGMLType(id: 40, name: "NVFP4", blockSize: 64, bytesPerBlock: 36),
        GGMLType(id: 41, name: "Q1_0", blockSize: 128, bytesPerBlock: 18),
        GGMLType(id: 42, name: "Q2_0", blockSize: 64, bytesPerBlock: 18),
    ]

    /// One past the largest id ggml defines (`GGML_TYPE_COUNT`).
    public static let count: UInt32 = 43

    private static let byID: [UInt32: GGMLType] = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })
    private static let byName: [String: GGMLType] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    /// The type with this id, or nil for an unknown or removed id.
    public static func named(id: UInt32) -> GGMLType? { byID[id] }

    /// The type with this name (case-insensitive: `q4_k` finds `Q4_K`), or nil.
    public static func named(_ name: String) -> GGMLType? { byName[name.uppercased()] }

    /// The ggml type F32.
    public static let f32 = named("F32")!
    /// The ggml type F16.
    public static let f16 = named("F16")!
    /// The ggml type BF16.
    public static let bf16 = named("BF16")!
    /// The ggml type Q8_0.
    public static let q8_0 = named("Q8_0")!
    /// The ggml type Q4_0.
    public static let q4_0 = named("Q4_0")!
    /// The ggml type Q4_1.
    public static let q4_1 = named("Q4_1")!
    /// The ggml type Q5_0.
    public static let q5_0 = named("Q5_0")!
    /// The ggml type Q5_1.
    public static let q5_1 = named("Q5_1")!
    /// The ggml type Q2_K.
    public static let q2_K = named("Q2_K")!
    /// The ggml type Q3_K.
    public static let q3_K = named("Q3_K")!
    /// The ggml type Q4_K.
    public static let q4_K = named("Q4_K")!
    /// The ggml type Q5_K.
    public static let q5_K = named("Q5_K")!
    /// The ggml type Q6_K.
    public static let q6_K = named("Q6_K")!
    /// The ggml type IQ4_NL (non-linear 4-bit, blocks of 32).
    public static let iq4_NL = named("IQ4_NL")!
    /// The ggml type IQ4_XS (non-linear 4-bit, super-blocks of 256 with 6-bit sub-block scales).
    public static let iq4_XS = named("IQ4_XS")!
}
