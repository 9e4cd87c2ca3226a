import Foundation
import Formats
import Quantize
import TestSupport
import Testing

/// The oracle fixtures of tools/fixtures_quantize.py (fixtures/quantize/).
struct OracleFixtures: Decodable {
    struct Matrix: Decodable { let offset: Int; let rows: Int; let columns: Int }
    struct Part: Decodable { let suffix: String; let type: String; let shape: [Int]; let offset: Int; let length: Int }
    struct Case: Decodable {
        let matrix: String
        let scheme: String
        let granularity: [GranularityItem]
        let symmetric: Bool
        let scaleType: String
        let packInt8: Bool
        let parts: [Part]
    }
    enum GranularityItem: Decodable {
        case name(String), number(Int)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let n = try? c.decode(Int.self) { self = .number(n) } else { self = .name(try c.decode(String.self)) }
        }
    }
    struct Decode: Decodable { let type: String; let id: UInt32; let elements: Int; let offset: Int; let length: Int; let valuesOffset: Int; let valuesLength: Int }
    struct Casts: Decodable {
        let e4m3: [String]; let e5m2: [String]; let f16: [String]; let bf16: [String]
        let lows: [UInt32]; let chunk: Int
        let e4m3_decode: [UInt32]; let e5m2_decode: [UInt32]
    }

    let matrices: [String: Matrix]
    let cases: [Case]
    let decode: [Decode]
    let casts: Casts

    /// The fixtures, read once; a missing or malformed file is an error each test using it
    /// records (naming the file), not a crash of the whole test run.
    private static let loaded = Result { () throws -> OracleFixtures in
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("quantize/cases.json")))
        return try JSONDecoder().decode(OracleFixtures.self, from: data)
    }
    private static let loadedMatrixBytes = Result { try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("quantize/matrices.bin"))) }
    private static let loadedExpectedBytes = Result { try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("quantize/expected.bin"))) }

    static var shared: OracleFixtures { get throws { try loaded.get() } }
    static var matrixBytes: Data { get throws { try loadedMatrixBytes.get() } }
    static var expectedBytes: Data { get throws { try loadedExpectedBytes.get() } }

    static func matrix(_ name: String) throws -> (values: [Float], rows: Int, columns: Int) {
        let m = try #require(try shared.matrices[name], "fixtures/quantize/cases.json has no matrix \(name)")
        let count = m.rows * m.columns
        let values = try matrixBytes.withUnsafeBytes { raw in
            (0..<count).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: m.offset + 4 * $0, as: UInt32.self).littleEndian) }
        }
        return (values, m.rows, m.columns)
    }

    static func bytes(offset: Int, length: Int) throws -> [UInt8] { [UInt8](try expectedBytes[offset..<(offset + length)]) }

    static func floats(offset: Int, length: Int) throws -> [Float] {
        try expectedBytes.withUnsafeBytes { raw in
            (0..<(length / 4)).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: offset + 4 * $0, as: UInt32.self).littleEndian) }
        }
    }
}

extension OracleFixtures.Case: CustomTestStringConvertible {
    var testDescription: String { "\(scheme) \(granularity.map(\.text).joined(separator: "×")) \(symmetric ? "sym" : "asym") \(scaleType)\(packInt8 ? " packed" : "") on \(matrix)" }

    var schemeValue: Scheme {
        let name = SchemeName(rawValue: scheme)!
        let g: Granularity
        switch granularity.first?.text {
        case "tensor": g = .tensor
        case "channel": g = .channel
        case "block": g = .block(rows: granularity[1].number, columns: granularity[2].number)
        default: g = .group(size: granularity[1].number)
        }
        return Scheme(name: name, granularity: g, symmetric: symmetric)
    }

    var options: QuantizeOptions { QuantizeOptions(scaleType: DType(rawValue: scaleType)!, packInt8: packInt8) }
}

extension OracleFixtures.GranularityItem {
    var text: String { switch self { case .name(let s): return s; case .number(let n): return String(n) } }
    var number: Int { if case .number(let n) = self { return n } else { return 0 } }
}

/// FNV-1a 64 as the fixture script computes it.
func fnv1a64<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    let s = String(h, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

/// Quantizes a fixture matrix with the whole-tensor entry point.
func quantizeMatrix(_ values: [Float], rows: Int, columns: Int, scheme: Scheme, options: QuantizeOptions = QuantizeOptions(),
                    name: String = "test.weight") throws(QuantizeError) -> QuantizedTensor {
    let result: Result<QuantizedTensor, QuantizeError> = values.withUnsafeBufferPointer { p in
        Result { () throws(QuantizeError) in try quantized(p, rows: rows, columns: columns, scheme: scheme, tensorName: name, options: options) }
    }
    return try result.get()
}
