import CKernels
import Foundation
import Formats
import Quantize
import TestSupport
import Testing

/// fixtures/ggml-kquants/ (tools/ggml_oracle.py): ggml's own quantizer (`ggml_quantize_chunk`
/// without an importance matrix, as llama-quantize calls it) on seeded rows with edge cases.
struct GGMLOracleCases: Decodable {
    struct TypeCase: Decodable { let name: String; let id: UInt32; let bytes: Int; let sha256: String }
    let columns: Int
    let rows: [String]
    let types: [TypeCase]

    static func load() throws -> (cases: GGMLOracleCases, input: [Float]) {
        let cases = try JSONDecoder().decode(GGMLOracleCases.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("ggml-kquants/cases.json"))))
        let raw = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("ggml-kquants/input.f32")))
        let input = raw.withUnsafeBytes { p in (0..<(raw.count / 4)).map { Float(bitPattern: p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self).littleEndian) } }
        return (cases, input)
    }
}

@Suite("GGUF encoders are byte-identical to ggml's quantizer")
struct GGMLOracleTests {
    static let typeNames = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"]

    @Test("dispatched and portable encoders give ggml's bytes on every fixture row", arguments: typeNames)
    func matchesGGML(_ name: String) throws {
        let (cases, input) = try GGMLOracleCases.load()
        #expect(input.count == cases.rows.count * cases.columns)
        let entry = try #require(cases.types.first { $0.name == name }, "cases.json has no \(name)")
        let type = try #require(GGMLType.named(name))
        #expect(type.id == entry.id)
        let expected = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("ggml-kquants/\(name).bin"))))
        let blocks = input.count / type.blockSize
        #expect(expected.count == blocks * type.bytesPerBlock && expected.count == entry.bytes)
        let scheme = try #require(SchemeDescriptor.writing(type), "no scheme writes \(name)")
        #expect(scheme.ggmlType == type)
        // dispatched (AVX-512 where the CPU has it), AVX2 only, portable
        for path in ["dispatched", "AVX2", "portable"] {
            var out = [UInt8](repeating: 0xA5, count: expected.count)
            let status = input.withUnsafeBufferPointer { x in
                out.withUnsafeMutableBufferPointer { o in
                    switch path {
                    case "portable": qk_quant_ggml_encode_portable(type.id, x.baseAddress!, o.baseAddress!, blocks)
                    case "AVX2": qk_quant_ggml_encode_avx2(type.id, x.baseAddress!, o.baseAddress!, blocks, type.blockSize)
                    default: qk_quant_ggml_encode(type.id, x.baseAddress!, o.baseAddress!, blocks, type.blockSize, nil)
                    }
                }
            }
            #expect(status == -1, "no fixture row overflows an FP16 scale")
            let bytesPerRow = cases.columns / type.blockSize * type.bytesPerBlock
            let differing = (0..<cases.rows.count).filter { r in out[(r * bytesPerRow)..<((r + 1) * bytesPerRow)] != expected[(r * bytesPerRow)..<((r + 1) * bytesPerRow)] }
            #expect(differing.isEmpty, "\(name) \(path): rows differ from ggml: \(differing.map { cases.rows[$0] })")
        }
    }

    @Test("decoding the encoded fixture stays within the type's accuracy limit on the random rows", arguments: typeNames)
    func decodesCloseToInput(_ name: String) throws {
        let (cases, input) = try GGMLOracleCases.load()
        let type = try #require(GGMLType.named(name))
        let expected = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("ggml-kquants/\(name).bin"))))
        var decoded = [Float](repeating: .nan, count: input.count)
        try expected.withUnsafeBytes { raw in
            try decoded.withUnsafeMutableBufferPointer { try dequantizeGGML(type, bytes: raw, elementCount: input.count, into: $0, tensorName: name) }
        }
        let limit = try #require(SchemeDescriptor.writing(type)).accuracy.maxRelativeError
        for (r, label) in cases.rows.enumerated() where label.hasPrefix("gaussian #") || label.hasPrefix("student-t5") {
            let range = (r * cases.columns)..<((r + 1) * cases.columns)
            let err = zip(input[range], decoded[range]).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            let norm = input[range].reduce(0.0) { $0 + Double($1) * Double($1) }
            #expect((err / norm).squareRoot() < limit, "\(name) row \(label): relative error \((err / norm).squareRoot())")
        }
    }
}
