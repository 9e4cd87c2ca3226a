import CKernels

/// Conversion of tensor elements between their stored dtype and `Float` (float32), bit for bit
/// equal to numpy 2.x and ml_dtypes 0.6 `astype` (formats.md §3).
///
/// Bulk conversions run vectorised C kernels (AVX2 + F16C, chosen at run time by
/// `qk_cpu_has_f16c_avx2()`) with a portable scalar fallback that gives identical bits. They keep no
/// state, so callers may convert disjoint chunks of one tensor concurrently.
///
/// NaN rules, chosen to equal the oracles:
/// - float16 → float32 keeps the sign and the payload (shifted left 13 bits), quiet or signalling,
///   as numpy does; bfloat16 → float32 is exact.
/// - float32 → float16 keeps the sign and the top 10 payload bits without setting the quiet bit;
///   a NaN whose top payload bits are all zero becomes `0x7C01` (numpy's rule).
/// - float32 → bfloat16 turns every NaN into the quiet NaN `0x7FC0` with the input's sign
///   (ml_dtypes' rule).
/// - Every 8-bit float NaN code decodes to the quiet NaN `0x7FC00000` with the code's sign bit
///   (E4M3FNUZ and E5M2FNUZ's only NaN, `0x80`, therefore decodes to `0xFFC00000`), as ml_dtypes does.
/// - All finite results round to nearest, ties to even; float32 values beyond a target's range
///   become infinity.
public enum ElementConversion {
    /// Which implementation a bulk conversion uses; tests force each one.
    enum Kernel: Sendable {
        /// The vector kernel when the CPU has AVX2 and F16C, else the scalar kernel.
        case automatic
        /// The portable scalar kernel.
        case scalar
        /// The vector kernel (callers check ``vectorKernelsAvailable`` first).
        case vector
    }

    /// Whether this CPU runs the AVX2 + F16C kernels.
    public static let vectorKernelsAvailable: Bool = qk_cpu_has_f16c_avx2() != 0

    /// Whether ``toFloat32(_:from:into:)`` accepts `dtype` (every dtype except C64 and the FP6 types).
    public static func canConvertToFloat32(_ dtype: DType) -> Bool {
        switch dtype {
        case .c64, .f6E2M3, .f6E3M2: return false
        default: return true
        }
    }

    /// Whether ``fromFloat32(_:to:into:)`` accepts `dtype` (F32, F16 and BF16).
    public static func canConvertFromFloat32(_ dtype: DType) -> Bool {
        dtype == .f32 || dtype == .f16 || dtype == .bf16
    }

    /// Converts `into.count` elements of type `from`, stored little-endian in `source`, to float32.
    ///
    /// `source` may be unaligned and must hold exactly the bytes of `into.count` elements. BOOL bytes
    /// give 0 or 1 (any non-zero byte is true); F4 (OCP E2M1) is packed two per byte, element 2k in
    /// the low nibble (formats.md §3.5). Integers round to nearest even (as numpy's casts do).
    /// - Throws: `FormatError` with code `.invalidArgument` when the byte count does not match or the
    ///   dtype has no float32 conversion (C64, F6_E2M3, F6_E3M2).
    public static func toFloat32(
        _ source: UnsafeRawBufferPointer, from dtype: DType, into destination: UnsafeMutableBufferPointer<Float>
    ) throws(FormatError) {
        try toFloat32(source, from: dtype, into: destination, kernel: .automatic)
    }

    /// Converts float32 values to elements of type `to` (F32, F16 or BF16), stored little-endian in
    /// `destination`, rounding to nearest even.
    ///
    /// `destination` may be unaligned and must hold exactly the bytes of `source.count` elements.
    /// - Throws: `FormatError` with code `.invalidArgument` when the byte count does not match or the
    ///   dtype is not F32, F16 or BF16.
    public static func fromFloat32(
        _ source: UnsafeBufferPointer<Float>, to dtype: DType, into destination: UnsafeMutableRawBufferPointer
    ) throws(FormatError) {
        try fromFloat32(source, to: dtype, into: destination, kernel: .automatic)
    }

    // MARK: Bulk conversion with an explicit kernel

    static func toFloat32(
        _ source: UnsafeRawBufferPointer, from dtype: DType, into destination: UnsafeMutableBufferPointer<Float>,
        kernel: Kernel
    ) throws(FormatError) {
        guard canConvertToFloat32(dtype) else {
            throw conversionError("\(dtype.rawValue) elements have no float32 conversion",
                                  remedy: "convert only real-valued tensors (not C64 or FP6)")
        }
        try checkByteCount(source.count, dtype: dtype, elementCount: destination.count)
        let count = destination.count
        guard count > 0, let input = source.baseAddress, let output = destination.baseAddress else { return }
        let vector = useVector(kernel)
        switch dtype {
        case .f32:
            UnsafeMutableRawPointer(output).copyMemory(from: input, byteCount: count * 4)
        case .f16:
            vector ? qk_f16_to_f32_avx2(input, output, count) : qk_f16_to_f32_scalar(input, output, count)
        case .bf16:
            vector ? qk_bf16_to_f32_avx2(input, output, count) : qk_bf16_to_f32_scalar(input, output, count)
        case .f8E4M3:
            vector ? qk_f8e4m3fn_to_f32_avx2(input, output, count) : qk_f8e4m3fn_to_f32_scalar(input, output, count)
        case .f8E5M2 where vector:
            qk_f8e5m2_to_f32_avx2(input, output, count)
        case .f8E5M2, .f8E4M3FNUZ, .f8E5M2FNUZ, .f8E8M0, .i8, .u8:
            // A table lookup is the fastest portable decode of 8-bit codes (faster than the scalar
            // E5M2 rule, which only finishes the vector kernel's tail). Every case here has a table.
            guard let table = byteTable(for: dtype) else { return }
            table.withUnsafeBufferPointer { qk_u8_table_to_f32(input, output, count, $0.baseAddress) }
        case .bool: qk_bool_to_f32(input, output, count)
        case .i16: qk_i16_to_f32(input, output, count)
        case .u16: qk_u16_to_f32(input, output, count)
        case .i32: qk_i32_to_f32(input, output, count)
        case .u32: qk_u32_to_f32(input, output, count)
        case .i64: qk_i64_to_f32(input, output, count)
        case .u64: qk_u64_to_f32(input, output, count)
        case .f64: qk_f64_to_f32(input, output, count)
        case .f4:
            let bytes = input.assumingMemoryBound(to: UInt8.self)
            Tables.float4E2M1.withUnsafeBufferPointer { table in
                for index in 0..<count {
                    let byte = bytes[index >> 1]
                    output[index] = table[Int(index & 1 == 0 ? byte & 0x0F : byte >> 4)]
                }
            }
        case .c64, .f6E2M3, .f6E3M2:
            return  // rejected above
        }
    }

    static func fromFloat32(
        _ source: UnsafeBufferPointer<Float>, to dtype: DType, into destination: UnsafeMutableRawBufferPointer,
        kernel: Kernel
    ) throws(FormatError) {
        guard canConvertFromFloat32(dtype) else {
            throw conversionError("float32 cannot be converted to \(dtype.rawValue) here",
                                  remedy: "convert to F32, F16 or BF16 (quantized types have their own encoders)")
        }
        try checkByteCount(destination.count, dtype: dtype, elementCount: source.count)
        let count = source.count
        guard count > 0, let input = source.baseAddress, let output = destination.baseAddress else { return }
        let vector = useVector(kernel)
        switch dtype {
        case .f16:
            vector ? qk_f32_to_f16_avx2(input, output, count) : qk_f32_to_f16_scalar(input, output, count)
        case .bf16:
            vector ? qk_f32_to_bf16_avx2(input, output, count) : qk_f32_to_bf16_scalar(input, output, count)
        default:
            output.copyMemory(from: input, byteCount: count * 4)
        }
    }

    private static func useVector(_ kernel: Kernel) -> Bool {
        switch kernel {
        case .automatic: return vectorKernelsAvailable
        case .scalar: return false
        case .vector: return true
        }
    }

    private static func checkByteCount(_ byteCount: Int, dtype: DType, elementCount: Int) throws(FormatError) {
        guard let expected = dtype.byteCount(elementCount: elementCount) else {
            throw conversionError("\(elementCount) \(dtype.rawValue) elements do not fill a whole number of bytes",
                                  remedy: "convert an even number of packed 4-bit elements")
        }
        guard expected == byteCount else {
            throw conversionError(
                "\(elementCount) \(dtype.rawValue) elements take \(expected) bytes, but the buffer holds \(byteCount)",
                remedy: "pass a buffer of exactly element count × element size bytes")
        }
    }

    private static func conversionError(_ message: String, remedy: String) -> FormatError {
        FormatError(.invalidArgument, path: "(element conversion)", message: message, remedy: remedy)
    }

    // MARK: Scalar helpers

    /// The float32 value of an IEEE binary16 bit pattern; exact, NaN payload kept (shifted left 13 bits).
    @inlinable
    public static func float32(fromFloat16Bits bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = bits & 0x7C00
        let mantissa = UInt32(bits & 0x03FF)
        if exponent == 0x7C00 { return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13) }
        if exponent != 0 { return Float(bitPattern: sign | ((UInt32(bits & 0x7FFF) << 13) &+ 0x3800_0000)) }
        return Float(bitPattern: sign | (Float(mantissa) * 0x1p-24).bitPattern)
    }

    /// The float32 value of a bfloat16 bit pattern (exact: the bits become the high half).
    @inlinable
    public static func float32(fromBFloat16Bits bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// The IEEE binary16 bit pattern nearest to `value` (ties to even, overflow to infinity, NaN kept
    /// as numpy keeps it: sign and top 10 payload bits, `0x7C01` if those are all zero).
    @inlinable
    public static func float16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: bits >> 16) & 0x8000
        let exponent = bits & 0x7F80_0000
        let mantissa = bits & 0x007F_FFFF
        if exponent == 0x7F80_0000 {
            if mantissa == 0 { return sign | 0x7C00 }
            let nan = UInt16(truncatingIfNeeded: 0x7C00 | mantissa >> 13)
            return sign | (nan == 0x7C00 ? 0x7C01 : nan)
        }
        if exponent >= 0x4780_0000 { return sign | 0x7C00 }
        if exponent <= 0x3800_0000 {
            if exponent < 0x3300_0000 { return sign }
            let significand = mantissa | 0x0080_0000
            let shift = 126 - (exponent >> 23)
            var result = significand >> shift
            let rest = significand & ((1 << shift) - 1)
            let half: UInt32 = 1 << (shift - 1)
            if rest > half || (rest == half && result & 1 == 1) { result += 1 }
            return sign | UInt16(truncatingIfNeeded: result)
        }
        var result = ((exponent - 0x3800_0000) >> 13) | (mantissa >> 13)
        let rest = mantissa & 0x1FFF
        if rest > 0x1000 || (rest == 0x1000 && result & 1 == 1) { result += 1 }
        return sign | UInt16(truncatingIfNeeded: result)
    }

    /// The bfloat16 bit pattern nearest to `value` (ties to even, overflow to infinity, every NaN to
    /// the quiet NaN `0x7FC0` with `value`'s sign, as ml_dtypes does).
    @inlinable
    public static func bfloat16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if bits & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(truncatingIfNeeded: bits >> 16) & 0x8000 | 0x7FC0 }
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// The float32 value of an 8-bit float code of type `dtype` (F8_E4M3, F8_E5M2, F8_E4M3FNUZ,
    /// F8_E5M2FNUZ or F8_E8M0), or nil when `dtype` is not an 8-bit float type.
    public static func float32(fromFloat8Bits bits: UInt8, of dtype: DType) -> Float? {
        guard dtype.isFloatingPoint, dtype.bitWidth == 8, let table = byteTable(for: dtype) else { return nil }
        return table[Int(bits)]
    }

    /// The 256 float32 values of every code of an 8-bit dtype (FP8 types, I8, U8), or nil for other dtypes.
    public static func byteTable(for dtype: DType) -> [Float]? {
        switch dtype {
        case .f8E4M3: return Tables.float8E4M3FN
        case .f8E5M2: return Tables.float8E5M2
        case .f8E4M3FNUZ: return Tables.float8E4M3FNUZ
        case .f8E5M2FNUZ: return Tables.float8E5M2FNUZ
        case .f8E8M0: return Tables.float8E8M0
        case .i8: return Tables.int8
        case .u8: return Tables.uint8
        default: return nil
        }
    }

    // MARK: Tables, built from the format definitions (formats.md §3.1)

    private enum Tables {
        static let float8E4M3FN = minifloat(exponentBits: 4, mantissaBits: 3, bias: 7, special: .finiteOnlyAllOnesNaN)
        static let float8E5M2 = minifloat(exponentBits: 5, mantissaBits: 2, bias: 15, special: .ieee)
        static let float8E4M3FNUZ = minifloat(exponentBits: 4, mantissaBits: 3, bias: 8, special: .negativeZeroNaN)
        static let float8E5M2FNUZ = minifloat(exponentBits: 5, mantissaBits: 2, bias: 16, special: .negativeZeroNaN)
        static let float4E2M1 = minifloat(exponentBits: 2, mantissaBits: 1, bias: 1, special: .none)
        static let float8E8M0: [Float] = (0..<256).map { code in
            code == 0xFF ? Float(bitPattern: 0x7FC0_0000) : Float(sign: .plus, exponent: code - 127, significand: 1)
        }
        static let int8: [Float] = (0..<256).map { Float(Int8(truncatingIfNeeded: $0)) }
        static let uint8: [Float] = (0..<256).map { Float($0) }
    }

    /// How a small float format spends its largest codes.
    private enum SpecialCodes {
        /// Largest exponent: mantissa 0 is infinity, others NaN (E5M2).
        case ieee
        /// Only the all-ones magnitude is NaN; no infinity (E4M3FN).
        case finiteOnlyAllOnesNaN
        /// The negative-zero code is the only NaN; no infinity, no −0 (the FNUZ types).
        case negativeZeroNaN
        /// Every code is finite (E2M1).
        case none
    }

    /// The float32 value of every code of a signed minifloat with the given field widths.
    private static func minifloat(exponentBits: Int, mantissaBits: Int, bias: Int, special: SpecialCodes) -> [Float] {
        let width = 1 + exponentBits + mantissaBits
        let exponentMax = (1 << exponentBits) - 1
        let mantissaMax = (1 << mantissaBits) - 1
        return (0..<(1 << width)).map { code in
            let negative = code >> (width - 1) == 1
            let exponent = (code >> mantissaBits) & exponentMax
            let mantissa = code & mantissaMax
            let nan = Float(bitPattern: (negative ? 0x8000_0000 : 0) | 0x7FC0_0000)
            switch special {
            case .ieee where exponent == exponentMax:
                return mantissa == 0 ? (negative ? -Float.infinity : .infinity) : nan
            case .finiteOnlyAllOnesNaN where exponent == exponentMax && mantissa == mantissaMax:
                return nan
            case .negativeZeroNaN where code == 1 << (width - 1):
                return nan
            default:
                let magnitude = exponent == 0
                    ? Float(mantissa) * Float(sign: .plus, exponent: 1 - bias - mantissaBits, significand: 1)
                    : Float(sign: .plus, exponent: exponent - bias, significand: 1 + Float(mantissa) / Float(1 << mantissaBits))
                return negative ? -magnitude : magnitude
            }
        }
    }
}
