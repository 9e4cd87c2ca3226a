import Formats
import Quantize
import Testing

/// Little-endian bytes of floats / integers, as another tool would have written them.
func leBytes(_ values: [Float]) -> [UInt8] { values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } } }
func leBytes(bf16 values: [Float]) -> [UInt8] { values.flatMap { v in withUnsafeBytes(of: UInt16(v.bitPattern >> 16).littleEndian) { Array($0) } } }

@Suite("Decoding layouts written by other tools")
struct ForeignLayoutTests {
    @Test("vLLM per-tensor FP8 with a 0-rank BF16 scale")
    func scalarScale() throws {
        let codes: [UInt8] = [0x38, 0xB8, 0x00, 0x7E, 0x30, 0x01]   // 1, -1, 0, 448, 0.5, 2^-9
        let t = QuantizedTensor(rows: 2, columns: 3, parts: [
            .init(suffix: "weight", type: .dtype(.f8E4M3), shape: [2, 3], data: codes),
            .init(suffix: "weight_scale", type: .dtype(.bf16), shape: [], data: leBytes(bf16: [0.5])),
        ])
        #expect(try dequantized(t, tensorName: "w") == [0.5, -0.5, 0, 224, 0.25, 0x1p-10])
    }

    @Test("DeepSeek block FP8 with edge blocks infers 128×128 tiles")
    func deepSeekBlocks() throws {
        let rows = 130, columns = 260
        let codes = [UInt8](repeating: 0x38, count: rows * columns)            // every code is 1.0
        let scales: [Float] = [1, 2, 3, 4, 5, 6]                               // [2, 3] tiles
        let t = QuantizedTensor(rows: rows, columns: columns, parts: [
            .init(suffix: "weight", type: .dtype(.f8E4M3), shape: [rows, columns], data: codes),
            .init(suffix: "weight_scale_inv", type: .dtype(.f32), shape: [2, 3], data: leBytes(scales)),
        ])
        let y = try dequantized(t, tensorName: "w")
        #expect(y[0] == 1 && y[127] == 1 && y[128] == 2 && y[259] == 3)
        #expect(y[128 * columns] == 4 && y[129 * columns + 259] == 6)
    }

    @Test("asymmetric int-quantized INT8 with I8 zero points")
    func int8ZeroPoints() throws {
        let codes: [Int8] = [-128, 0, 127, 5]
        let t = QuantizedTensor(rows: 2, columns: 2, parts: [
            .init(suffix: "weight", type: .dtype(.i8), shape: [2, 2], data: codes.map { UInt8(bitPattern: $0) }),
            .init(suffix: "weight_scale", type: .dtype(.f32), shape: [2, 1], data: leBytes([0.5, 2])),
            .init(suffix: "weight_zero_point", type: .dtype(.i8), shape: [2, 1], data: [UInt8(bitPattern: -3), 5]),
        ])
        #expect(try dequantized(t, tensorName: "w") == [(-128 + 3) * 0.5, 3 * 0.5, (127 - 5) * 2, 0])
    }

    @Test("pack-quantized INT4 with packed zero points along the rows")
    func int4Packed() throws {
        // Row 0 codes 0..7 (+8 → 8..15), row 1 codes -8..-1 (+8 → 0..7); nibble k = element k.
        let w0: UInt32 = 0xFEDC_BA98, w1: UInt32 = 0x7654_3210
        // Zero points: row 0 → 1, row 1 → -2: one word for rows 0..7 of the single group column.
        let z: UInt32 = UInt32(1 + 8) | UInt32(-2 + 8) << 4 | 0x8888_8800
        let t = QuantizedTensor(rows: 2, columns: 8, parts: [
            .init(suffix: "weight_packed", type: .dtype(.i32), shape: [2, 1], data: [w0, w1].flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }),
            .init(suffix: "weight_scale", type: .dtype(.f16), shape: [2, 1], data: [0x00, 0x3C, 0x00, 0x40]),   // 1.0, 2.0
            .init(suffix: "weight_zero_point", type: .dtype(.i32), shape: [1, 1], data: withUnsafeBytes(of: z.littleEndian) { Array($0) }),
            .init(suffix: "weight_shape", type: .dtype(.i64), shape: [2], data: [2, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]),
        ])
        let y = try dequantized(t, tensorName: "w")
        #expect(Array(y[0..<8]) == (0..<8).map { Float($0 - 1) })
        #expect(Array(y[8..<16]) == (-8 ..< 0).map { Float($0 + 2) * 2 })
    }

    @Test("an unknown layout is refused with what was found")
    func unknownLayout() {
        let t = QuantizedTensor(rows: 1, columns: 2, parts: [.init(suffix: "qweight", type: .dtype(.i32), shape: [1, 1], data: [0, 0, 0, 0])])
        #expect {
            _ = try dequantized(t, tensorName: "gptq.qweight")
        } throws: { error in
            guard case QuantizeError.unsupportedLayout(let name, let found) = error else { return false }
            return name == "gptq.qweight" && found.contains("qweight")
        }
    }
}
