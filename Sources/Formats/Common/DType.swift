/// An element type of a safetensors file, named as the format names it (formats.md §1.4).
///
/// The cases are declared in the reference implementation's enum order (`Dtype` in
/// huggingface/safetensors safetensors/src/tensor.rs); its writer sorts tensors by this order,
/// descending, so ``order`` matters for byte-identical output.
public enum DType: String, CaseIterable, Sendable, Codable {
    case bool = "BOOL"
    case f4 = "F4"
    case f6E2M3 = "F6_E2M3"
    case f6E3M2 = "F6_E3M2"
    case u8 = "U8"
    case i8 = "I8"
    case f8E5M2 = "F8_E5M2"
    case f8E4M3 = "F8_E4M3"
    case f8E8M0 = "F8_E8M0"
    case f8E4M3FNUZ = "F8_E4M3FNUZ"
    case f8E5M2FNUZ = "F8_E5M2FNUZ"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Bits one element occupies (4 for F4, 6 for the FP6 types, 64 for C64's pair of F32).
    public var bitWidth: Int {
        switch self {
        case .f4: return 4
        case .f6E2M3, .f6E3M2: return 6
        case .bool, .u8, .i8, .f8E5M2, .f8E4M3, .f8E8M0, .f8E4M3FNUZ, .f8E5M2FNUZ: return 8
        case .i16, .u16, .f16, .bf16: return 16
        case .i32, .u32, .f32: return 32
        case .c64, .f64, .i64, .u64: return 64
        }
    }

    /// The position of this case in the reference enum, used to sort tensors when writing.
    public var order: Int { DType.allCases.firstIndex(of: self)! }

    /// Whether the type is a floating-point type (including FP8/FP6/FP4 and complex).
    public var isFloatingPoint: Bool {
        switch self {
        case .bool, .u8, .i8, .i16, .u16, .i32, .u32, .i64, .u64: return false
        default: return true
        }
    }

    /// The number of bytes `elementCount` elements occupy, or nil on overflow or when the bit
    /// count is not a whole number of bytes (an odd count of F4, for example).
    public func byteCount(elementCount: Int) -> Int? {
        guard let bits = CheckedSize.multiply(elementCount, bitWidth), bits % 8 == 0 else { return nil }
        return bits / 8
    }
}
