import Formats
import Foundation
import Quantize
import Testing

@Suite("Quantize kernels against the oracles")
struct OracleTests {
    @Test("every scheme's stored tensors equal the oracle bytes", arguments: try OracleFixtures.shared.cases)
    func encodesLikeOracle(_ fixture: OracleFixtures.Case) throws {
        let (values, rows, columns) = try OracleFixtures.matrix(fixture.matrix)
        let result = try quantizeMatrix(values, rows: rows, columns: columns, scheme: fixture.schemeValue, options: fixture.options)
        #expect(result.parts.map(\.suffix) == fixture.parts.map(\.suffix))
        for expected in fixture.parts {
            let part = try #require(result.part(expected.suffix))
            #expect(part.type.description == expected.type, "type of \(expected.suffix)")
            #expect(part.shape == expected.shape, "shape of \(expected.suffix)")
            let want = try OracleFixtures.bytes(offset: expected.offset, length: expected.length)
            let firstDiff = zip(part.data, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            #expect(part.data.count == want.count && firstDiff == nil,
                    "\(expected.suffix): \(part.data.count) bytes vs \(want.count), first difference at byte \(firstDiff.map(String.init) ?? "-")")
        }
    }

    @Test("decoding the oracle bytes gives the values their scales and codes mean", arguments: try OracleFixtures.shared.cases)
    func decodesOracleBytes(_ fixture: OracleFixtures.Case) throws {
        let (values, rows, columns) = try OracleFixtures.matrix(fixture.matrix)
        let parts = try fixture.parts.map { p -> QuantizedTensor.Part in
            let type: TensorType = fixture.schemeValue.name.ggmlType != nil ? .ggml(GGMLType.named(p.type)!) : .dtype(DType(rawValue: p.type)!)
            return QuantizedTensor.Part(suffix: p.suffix, type: type, shape: p.shape, data: try OracleFixtures.bytes(offset: p.offset, length: p.length))
        }
        let tensor = QuantizedTensor(rows: rows, columns: columns, parts: parts)
        var groupSize: Int? = nil
        if case .group(let g) = fixture.schemeValue.granularity { groupSize = g }
        let decoded = try dequantized(tensor, tensorName: "t", groupSize: groupSize)
        #expect(decoded.count == values.count)
        // Every decoded value is within one quantization step of the input, step measured by the
        // row's largest magnitude (coarse but scheme-independent: 1/7 of amax for 4-bit codes).
        let step: Float = fixture.scheme.hasPrefix("int4") || ["q4_0", "q4_1"].contains(fixture.scheme) ? 1.0 / 7
            : fixture.scheme.hasPrefix("q5") ? 1.0 / 15 : fixture.scheme == "fp8-e5m2" ? 0.125 : 1.0 / 16
        // Per-tensor and block scales are bounded by the whole matrix's amax, the others by the row's.
        let wholeMatrix: Bool
        switch fixture.schemeValue.granularity { case .tensor, .block: wholeMatrix = true; default: wholeMatrix = false }
        let matrixAmax = values.reduce(Float(0)) { max($0, abs($1)) }
        for r in 0..<rows {
            let amax = wholeMatrix ? matrixAmax : values[(r * columns)..<((r + 1) * columns)].reduce(Float(0)) { max($0, abs($1)) }
            guard amax.isFinite, amax < 1e30 else { continue }
            for c in 0..<columns {
                let err = abs(decoded[r * columns + c] - values[r * columns + c])
                #expect(err <= amax * step + 1e-30, "row \(r) col \(c): \(decoded[r * columns + c]) vs \(values[r * columns + c])")
                if err > amax * step + 1e-30 { return }
            }
        }
    }

    @Test("the GGUF decoder gives gguf-py's floats for every type", arguments: try OracleFixtures.shared.decode)
    func decodesLikeGGUFPy(_ fixture: OracleFixtures.Decode) throws {
        let type = try #require(GGMLType.named(id: fixture.id))
        let raw = try OracleFixtures.bytes(offset: fixture.offset, length: fixture.length)
        let want = try OracleFixtures.floats(offset: fixture.valuesOffset, length: fixture.valuesLength)
        var got = [Float](repeating: .nan, count: fixture.elements)
        try raw.withUnsafeBytes { r in
            try got.withUnsafeMutableBufferPointer { o in
                try dequantizeGGML(type, bytes: r, elementCount: fixture.elements, into: o, tensorName: fixture.type)
            }
        }
        let mismatch = zip(got, want).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
        #expect(mismatch == nil, "\(fixture.type) element \(mismatch?.offset ?? -1): \(mismatch?.element.0 ?? 0) vs gguf-py \(mismatch?.element.1 ?? 0)")
    }
}

extension OracleFixtures.Decode: CustomTestStringConvertible {
    var testDescription: String { type }
}
