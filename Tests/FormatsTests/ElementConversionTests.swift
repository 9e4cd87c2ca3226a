import Foundation
import Testing
import TestSupport

@testable import Formats

/// Bit-exact checks of ElementConversion against numpy / ml_dtypes outputs in fixtures/conversion
/// (made by tools/fixtures_conversion.py, which documents every file and input rule).
@Suite("Element conversion")
struct ElementConversionTests {
    /// Every kernel this machine can run: always the scalar one, the AVX2 one when the CPU has it.
    static let kernels: [ElementConversion.Kernel] =
        ElementConversion.vectorKernelsAvailable ? [.scalar, .vector] : [.scalar]

    // MARK: Decoding to float32

    @Test("float16 decodes to numpy's float32 bits for all 65,536 patterns", arguments: kernels)
    func float16Decode(kernel: ElementConversion.Kernel) throws {
        let patterns = (0..<65536).map { UInt16($0) }
        let expected = try Fixture.words32("f16.expected.bin")
        let result = try decode(bytes(of: patterns), .f16, count: patterns.count, kernel: kernel)
        expectBitsEqual(result, expected, "F16 → F32 (\(kernel))")
        let scalar = patterns.map { ElementConversion.float32(fromFloat16Bits: $0).bitPattern }
        expectBitsEqual(scalar, expected, "float32(fromFloat16Bits:)")
    }

    @Test("bfloat16 decodes to ml_dtypes' float32 bits for all 65,536 patterns", arguments: kernels)
    func bfloat16Decode(kernel: ElementConversion.Kernel) throws {
        let patterns = (0..<65536).map { UInt16($0) }
        let expected = try Fixture.words32("bf16.expected.bin")
        let result = try decode(bytes(of: patterns), .bf16, count: patterns.count, kernel: kernel)
        expectBitsEqual(result, expected, "BF16 → F32 (\(kernel))")
        let scalar = patterns.map { ElementConversion.float32(fromBFloat16Bits: $0).bitPattern }
        expectBitsEqual(scalar, expected, "float32(fromBFloat16Bits:)")
    }

    @Test(
        "8-bit float codes decode to ml_dtypes' float32 bits for all 256 patterns",
        arguments: [
            (DType.f8E4M3, "f8_e4m3fn"), (.f8E5M2, "f8_e5m2"), (.f8E4M3FNUZ, "f8_e4m3fnuz"),
            (.f8E5M2FNUZ, "f8_e5m2fnuz"), (.f8E8M0, "f8_e8m0fnu"),
        ])
    func float8Decode(dtype: DType, name: String) throws {
        let codes = (0..<256).map { UInt8($0) }
        let expected = try Fixture.words32(name + ".expected.bin")
        for kernel in Self.kernels {
            let result = try decode(codes, dtype, count: 256, kernel: kernel)
            expectBitsEqual(result, expected, "\(dtype.rawValue) → F32 (\(kernel))")
            // Slices shorter than a vector block run entirely through each kernel's scalar tail.
            for start in stride(from: 0, to: 256, by: 15) {
                let slice = Array(codes[start..<min(256, start + 15)])
                let tail = try decode(slice, dtype, count: slice.count, kernel: kernel)
                expectBitsEqual(tail, Array(expected[start..<(start + slice.count)]), "\(dtype.rawValue) tail at \(start)")
            }
        }
        let scalar = codes.map { ElementConversion.float32(fromFloat8Bits: $0, of: dtype)?.bitPattern ?? 0 }
        expectBitsEqual(scalar, expected, "float32(fromFloat8Bits:of: .\(dtype))")
    }

    @Test("packed F4 (E2M1) decodes low nibble first to ml_dtypes' values")
    func float4Decode() throws {
        let expected = try Fixture.words32("f4_e2m1fn.expected.bin")
        // Codes 0...15 in order, two per byte: element 2k in the low nibble.
        let packed: [UInt8] = (0..<8).map { (pair: Int) -> UInt8 in
            let low = UInt8(2 * pair)
            return low | (low + 1) << 4
        }
        let result = try decode(packed, .f4, count: 16, kernel: .automatic)
        expectBitsEqual(result, expected, "F4 → F32")
    }

    @Test(
        "BOOL, U8 and I8 bytes decode to numpy's float32 values for all 256 patterns",
        arguments: [(DType.bool, "bool"), (.u8, "u8"), (.i8, "i8")])
    func byteDecode(dtype: DType, name: String) throws {
        let result = try decode((0..<256).map { UInt8($0) }, dtype, count: 256, kernel: .automatic)
        expectBitsEqual(result, try Fixture.words32(name + ".expected.bin"), "\(dtype.rawValue) → F32")
    }

    @Test(
        "wide integers and float64 round to numpy's float32 bits, including values around ties",
        arguments: [
            (DType.i16, "i16"), (.u16, "u16"), (.i32, "i32"), (.u32, "u32"), (.i64, "i64"), (.u64, "u64"),
            (.f64, "f64"),
        ])
    func wideDecode(dtype: DType, name: String) throws {
        let input = try Fixture.bytes(name + ".input.bin")
        let expected = try Fixture.words32(name + ".expected.bin")
        let result = try decode(input, dtype, count: expected.count, kernel: .automatic)
        expectBitsEqual(result, expected, "\(dtype.rawValue) → F32")
    }

    @Test("F32 decodes to the same bits", arguments: kernels)
    func float32Copy(kernel: ElementConversion.Kernel) throws {
        let words = Fixture.randomFloat32Bits(count: 1000)
        let result = try decode(bytes(of: words), .f32, count: words.count, kernel: kernel)
        expectBitsEqual(result, words, "F32 → F32")
    }

    @Test("decoding reads unaligned sources and handles every tail length", arguments: kernels)
    func unalignedAndTails(kernel: ElementConversion.Kernel) throws {
        let expectedF16 = try Fixture.words32("f16.expected.bin")
        let expectedBF16 = try Fixture.words32("bf16.expected.bin")
        let expectedE4M3 = try Fixture.words32("f8_e4m3fn.expected.bin")
        let expectedE5M2 = try Fixture.words32("f8_e5m2.expected.bin")
        for count in 0..<40 {
            // Start inside the NaN range of float16 for some counts, in finite values for others.
            let first = (count * 1637 + 0x7BF0) % (65536 - 40)
            let patterns = (first..<(first + count)).map { UInt16($0) }
            let raw = [0xAB] + bytes(of: patterns)  // one byte in front: the elements are unaligned
            let f16 = try decodeSlice(raw, from: 1, .f16, count: count, kernel: kernel)
            expectBitsEqual(f16, Array(expectedF16[first..<(first + count)]), "F16 tail \(count)")
            let bf16 = try decodeSlice(raw, from: 1, .bf16, count: count, kernel: kernel)
            expectBitsEqual(bf16, Array(expectedBF16[first..<(first + count)]), "BF16 tail \(count)")
            let codes = (0..<count).map { UInt8(truncatingIfNeeded: $0 * 37 + 101) }
            let e4m3 = try decodeSlice([0] + codes, from: 1, .f8E4M3, count: count, kernel: kernel)
            expectBitsEqual(e4m3, codes.map { expectedE4M3[Int($0)] }, "F8_E4M3 tail \(count)")
            let e5m2 = try decodeSlice([0] + codes, from: 1, .f8E5M2, count: count, kernel: kernel)
            expectBitsEqual(e5m2, codes.map { expectedE5M2[Int($0)] }, "F8_E5M2 tail \(count)")
        }
    }

    // MARK: Encoding from float32

    @Test(
        "float32 encodes to numpy float16 and ml_dtypes bfloat16 bits on every input class",
        arguments: kernels)
    func encode(kernel: ElementConversion.Kernel) throws {
        for target in EncodeTarget.all {
            for (part, inputs) in try target.inputSets() {
                let expected = try Fixture.words16("to_\(target.name).\(part).expected.bin")
                try #require(expected.count == inputs.count, "fixture \(target.name).\(part) has the wrong length")
                let result = try encode(inputs, target.dtype, kernel: kernel)
                expectBitsEqual(result, expected, "F32 → \(target.dtype.rawValue) \(part) (\(kernel))")
                let scalar = inputs.map { target.scalar(Float(bitPattern: $0)) }
                expectBitsEqual(scalar, expected, "scalar helper F32 → \(target.dtype.rawValue) \(part)")
            }
        }
    }

    @Test("encoding writes unaligned destinations and handles every tail length", arguments: kernels)
    func encodeTails(kernel: ElementConversion.Kernel) throws {
        for target in EncodeTarget.all {
            let inputs = try target.inputSets()
            let specials = try #require(inputs.first { $0.0 == "specials" }).1
            let expected = try Fixture.words16("to_\(target.name).specials.expected.bin")
            for count in 0..<40 {
                let first = (count * 11) % (specials.count - 40)
                let slice = Array(specials[first..<(first + count)])
                var raw = [UInt8](repeating: 0xEE, count: 2 * count + 2)
                try slice.map { Float(bitPattern: $0) }.withUnsafeBufferPointer { source in
                    try raw.withUnsafeMutableBytes { buffer in
                        let destination = UnsafeMutableRawBufferPointer(rebasing: buffer[1..<(1 + 2 * count)])
                        try ElementConversion.fromFloat32(source, to: target.dtype, into: destination, kernel: kernel)
                    }
                }
                let words = (0..<count).map { UInt16(raw[1 + 2 * $0]) | UInt16(raw[2 + 2 * $0]) << 8 }
                expectBitsEqual(words, Array(expected[first..<(first + count)]), "\(target.name) tail \(count)")
                #expect(raw[0] == 0xEE && raw[2 * count + 1] == 0xEE, "wrote outside the destination")
            }
        }
    }

    @Test("F32 to F32 copies the bits")
    func encodeFloat32() throws {
        let words = Fixture.randomFloat32Bits(count: 777)
        let floats = words.map { Float(bitPattern: $0) }
        var out = [UInt8](repeating: 0, count: 4 * words.count)
        try floats.withUnsafeBufferPointer { source in
            try out.withUnsafeMutableBytes { try ElementConversion.fromFloat32(source, to: .f32, into: $0) }
        }
        #expect(out == bytes(of: words))
    }

    // MARK: Errors

    @Test("rejects a source whose size does not match the element count")
    func rejectsWrongSourceSize() {
        let source = [UInt8](repeating: 0, count: 7)
        var output = [Float](repeating: 0, count: 4)
        #expect {
            try source.withUnsafeBytes { raw in
                try output.withUnsafeMutableBufferPointer { try ElementConversion.toFloat32(raw, from: .f16, into: $0) }
            }
        } throws: { ($0 as? FormatError)?.code == .invalidArgument }
    }

    @Test("rejects dtypes without a float32 conversion", arguments: [DType.c64, .f6E2M3, .f6E3M2])
    func rejectsUnconvertible(dtype: DType) {
        let source = [UInt8](repeating: 0, count: 64)
        var output = [Float](repeating: 0, count: 8)
        #expect(!ElementConversion.canConvertToFloat32(dtype))
        #expect {
            try source.withUnsafeBytes { raw in
                try output.withUnsafeMutableBufferPointer { try ElementConversion.toFloat32(raw, from: dtype, into: $0) }
            }
        } throws: { ($0 as? FormatError)?.code == .invalidArgument }
    }

    @Test("rejects an odd count of packed F4 elements")
    func rejectsOddFloat4Count() {
        let source = [UInt8](repeating: 0, count: 2)
        var output = [Float](repeating: 0, count: 3)
        #expect {
            try source.withUnsafeBytes { raw in
                try output.withUnsafeMutableBufferPointer { try ElementConversion.toFloat32(raw, from: .f4, into: $0) }
            }
        } throws: { ($0 as? FormatError)?.code == .invalidArgument }
    }

    @Test("rejects encoding to anything but F32, F16 and BF16, and a wrong destination size")
    func rejectsBadEncode() {
        let source: [Float] = [1, 2, 3, 4]
        var output = [UInt8](repeating: 0, count: 8)
        #expect {
            try source.withUnsafeBufferPointer { floats in
                try output.withUnsafeMutableBytes { try ElementConversion.fromFloat32(floats, to: .f8E4M3, into: $0) }
            }
        } throws: { ($0 as? FormatError)?.code == .invalidArgument }
        #expect {
            try source.withUnsafeBufferPointer { floats in
                try output.withUnsafeMutableBytes { try ElementConversion.fromFloat32(floats, to: .f32, into: $0) }
            }
        } throws: { ($0 as? FormatError)?.code == .invalidArgument }
    }

    // MARK: Helpers

    private func decode(_ raw: [UInt8], _ dtype: DType, count: Int, kernel: ElementConversion.Kernel) throws -> [UInt32] {
        try decodeSlice(raw, from: 0, dtype, count: count, kernel: kernel)
    }

    private func decodeSlice(
        _ raw: [UInt8], from start: Int, _ dtype: DType, count: Int, kernel: ElementConversion.Kernel
    ) throws -> [UInt32] {
        var output = [Float](repeating: .nan, count: count)
        try raw.withUnsafeBytes { buffer in
            let source = UnsafeRawBufferPointer(rebasing: buffer[start...])
            try output.withUnsafeMutableBufferPointer {
                try ElementConversion.toFloat32(source, from: dtype, into: $0, kernel: kernel)
            }
        }
        return output.map(\.bitPattern)
    }

    private func encode(_ inputs: [UInt32], _ dtype: DType, kernel: ElementConversion.Kernel) throws -> [UInt16] {
        let floats = inputs.map { Float(bitPattern: $0) }
        var output = [UInt16](repeating: 0xDEAD, count: inputs.count)
        try floats.withUnsafeBufferPointer { source in
            try output.withUnsafeMutableBytes {
                try ElementConversion.fromFloat32(source, to: dtype, into: $0, kernel: kernel)
            }
        }
        return output.map { UInt16(littleEndian: $0) }
    }

    private func expectBitsEqual<T: FixedWidthInteger>(
        _ actual: [T], _ expected: [T], _ label: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(actual.count == expected.count, "\(label): \(actual.count) results, expected \(expected.count)",
                sourceLocation: sourceLocation)
        let mismatches = zip(actual.indices, zip(actual, expected)).filter { $0.1.0 != $0.1.1 }
        guard !mismatches.isEmpty else { return }
        let shown = mismatches.prefix(5).map { index, pair in
            "[\(index)] got 0x\(String(pair.0, radix: 16)) expected 0x\(String(pair.1, radix: 16))"
        }
        Issue.record("\(label): \(mismatches.count) mismatches, first: \(shown.joined(separator: ", "))",
                     sourceLocation: sourceLocation)
    }
}

/// A float32 → 16-bit target and the input sets tools/fixtures_conversion.py defines for it.
private struct EncodeTarget: Sendable {
    let name: String
    let dtype: DType
    /// The oracle's float32 decode of every 16-bit pattern.
    let decodeFixture: String
    /// The first infinity pattern; patterns below it are the positive finite values.
    let infinityPattern: Int
    /// The value one step above the largest finite value (the overflow threshold's upper neighbour).
    let top: Double
    let scalar: @Sendable (Float) -> UInt16

    static let all = [
        EncodeTarget(name: "f16", dtype: .f16, decodeFixture: "f16.expected.bin", infinityPattern: 0x7C00,
                     top: 65536, scalar: ElementConversion.float16Bits),
        EncodeTarget(name: "bf16", dtype: .bf16, decodeFixture: "bf16.expected.bin", infinityPattern: 0x7F80,
                     top: 0x1p128, scalar: ElementConversion.bfloat16Bits),
    ]

    /// The named input sets, in the fixture script's order and construction.
    func inputSets() throws -> [(String, [UInt32])] {
        let values = try Fixture.words32(decodeFixture)
        var middles: [UInt32] = []
        for pattern in 0..<infinityPattern {
            let low = Double(Float(bitPattern: values[pattern]))
            let high = pattern + 1 < infinityPattern ? Double(Float(bitPattern: values[pattern + 1])) : top
            middles.append(Float((low + high) / 2).bitPattern)
        }
        let ties = middles + middles.map { $0 + 1 } + middles.map { $0 - 1 } + middles.map { $0 | 0x8000_0000 }
        return [
            ("roundtrip", values), ("ties", ties), ("specials", try Fixture.words32("specials.input.bin")),
            ("random", Fixture.randomFloat32Bits(count: 160_000)),
        ]
    }
}

/// Reads fixtures/conversion and regenerates the inputs the script does not store.
private enum Fixture {
    static func bytes(_ name: String) throws -> [UInt8] {
        let path = Fixtures.path("conversion/" + name)
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func words32(_ name: String) throws -> [UInt32] {
        let raw = try bytes(name)
        return raw.withUnsafeBytes { buffer in
            (0..<(raw.count / 4)).map { UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
        }
    }

    static func words16(_ name: String) throws -> [UInt16] {
        let raw = try bytes(name)
        return raw.withUnsafeBytes { buffer in
            (0..<(raw.count / 2)).map { UInt16(littleEndian: buffer.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }
        }
    }

    /// The script's `random_f32_bits(count, SEED)`: splitmix64 draws, odd ones moved near float16's range.
    static func randomFloat32Bits(count: Int) -> [UInt32] {
        var state: UInt64 = 0x51EED_C0DE
        return (0..<count).map { index in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            var bits = UInt32(truncatingIfNeeded: z)
            if index % 2 == 1 {
                let exponent = UInt32(96 + (z >> 32) % 48)
                bits = (bits & 0x807F_FFFF) | exponent << 23
            }
            return bits
        }
    }
}

private func bytes<T: FixedWidthInteger>(of values: [T]) -> [UInt8] {
    values.flatMap { value in withUnsafeBytes(of: value.littleEndian) { Array($0) } }
}
