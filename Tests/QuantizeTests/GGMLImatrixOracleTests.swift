import CKernels
import Foundation
import Formats
import Quantize
import TestSupport
import Testing

/// fixtures/ggml-imatrix/ (tools/ggml_oracle.py): ggml's own quantizer with an importance matrix
/// (`ggml_quantize_chunk` with a non-NULL imatrix, as llama-quantize --imatrix calls it) on the rows
/// of fixtures/ggml-kquants/input.f32, two experts of 16 rows each with their own importance vector.
struct GGMLImatrixCases: Decodable {
    struct TypeCase: Decodable {
        let name: String
        let id: UInt32
        let bytes: Int
        let sha256: String
        let row_sha256_16: [String]
    }
    let columns: Int
    let rows: Int
    let experts: Int
    let rows_per_expert: Int
    let types: [TypeCase]

    static func load() throws -> (cases: GGMLImatrixCases, input: [Float], importance: [Float], labels: [String]) {
        func floats(_ path: String) throws -> [Float] {
            let raw = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(path)))
            return raw.withUnsafeBytes { p in (0..<(raw.count / 4)).map { Float(bitPattern: p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self).littleEndian) } }
        }
        let cases = try JSONDecoder().decode(GGMLImatrixCases.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("ggml-imatrix/cases.json"))))
        let plain = try GGMLOracleCases.load()
        return (cases, try floats("ggml-kquants/input.f32"), try floats("ggml-imatrix/importance.f32"), plain.cases.rows)
    }

    /// The rows (by label) whose bytes differ from ggml's, comparing per-row sha256 prefixes.
    func differingRows(_ out: [UInt8], _ entry: TypeCase, labels: [String]) -> [String] {
        let bytesPerRow = out.count / rows
        return (0..<rows).filter { r in
            String(SHA256.hex(Array(out[(r * bytesPerRow)..<((r + 1) * bytesPerRow)])).prefix(16)) != entry.row_sha256_16[r]
        }.map { labels[$0] }
    }
}

@Suite("GGUF encoders with an importance matrix are byte-identical to ggml's (llama-quantize --imatrix)")
struct GGMLImatrixOracleTests {
    static let typeNames = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]

    @Test("the dispatched and portable weighted kernels give ggml's bytes on every fixture row, each expert with its own importance",
          arguments: typeNames)
    func kernelMatchesGGML(_ name: String) throws {
        let (cases, input, importance, labels) = try GGMLImatrixCases.load()
        #expect(input.count == cases.rows * cases.columns && importance.count == cases.experts * cases.columns)
        let entry = try #require(cases.types.first { $0.name == name }, "cases.json has no \(name)")
        let type = try #require(GGMLType.named(name))
        #expect(type.id == entry.id)
        let bytesPerRow = cases.columns / type.blockSize * type.bytesPerBlock
        let weighted = qk_quant_ggml_kernels(type.id) & QK_GGML_WEIGHTS != 0
        #expect(weighted == (name != "Q8_0"), "ggml weights every type here but Q8_0")
        // dispatched (AVX-512 where the CPU has it), AVX2 only, portable
        for path in weighted ? ["dispatched", "AVX2", "portable"] : ["dispatched"] {
            let portable = path == "portable"
            var out = [UInt8](repeating: 0xA5, count: cases.rows * bytesPerRow)
            #expect(out.count == entry.bytes)
            for e in 0..<cases.experts {
                let r0 = e * cases.rows_per_expert
                let status = input.withUnsafeBufferPointer { x in
                    out.withUnsafeMutableBufferPointer { o in
                        importance.withUnsafeBufferPointer { w in
                            let (src, dst, imp) = (x.baseAddress! + r0 * cases.columns, o.baseAddress! + r0 * bytesPerRow, w.baseAddress! + e * cases.columns)
                            if portable { return qk_quant_ggml_encode_weighted_portable(type.id, src, dst, cases.rows_per_expert, cases.columns, imp) }
                            if path == "AVX2" {
                                return qk_quant_ggml_encode_weighted_avx2(type.id, src, dst, cases.rows_per_expert, cases.columns, type.blockSize, imp)
                            }
                            return qk_quant_ggml_encode_weighted(type.id, src, dst, cases.rows_per_expert, cases.columns, type.blockSize, imp)
                        }
                    }
                }
                #expect(status == -1, "no fixture row overflows an FP16 scale")
            }
            let differing = cases.differingRows(out, entry, labels: labels)
            #expect(differing.isEmpty, "\(name) with importance (\(path)): rows differ from ggml: \(differing)")
            #expect(SHA256.hex(out) == entry.sha256)
        }
    }

    @Test("TensorQuantizer with per-expert importance gives ggml's bytes", arguments: typeNames)
    func quantizerMatchesGGML(_ name: String) throws {
        let (cases, input, importance, labels) = try GGMLImatrixCases.load()
        let entry = try #require(cases.types.first { $0.name == name })
        let type = try #require(GGMLType.named(name))
        let scheme = Scheme(name: try #require(SchemeDescriptor.writing(type)).name)
        let q = try input.withUnsafeBufferPointer {
            try quantized($0, rows: cases.rows, columns: cases.columns, scheme: scheme, tensorName: "blk.0.ffn_down_exps.weight",
                          importance: importance, rowsPerExpert: cases.rows_per_expert)
        }
        let differing = cases.differingRows(q.parts[0].data, entry, labels: labels)
        #expect(differing.isEmpty, "\(name) through TensorQuantizer: rows differ from ggml: \(differing)")
        // Rows handed over one at a time (row blocks that split experts) give the same bytes.
        let quantizer = try TensorQuantizer(scheme: scheme, rows: cases.rows, columns: cases.columns, tensorName: "t",
                                            importance: importance, rowsPerExpert: cases.rows_per_expert)
        var bytes = [UInt8](repeating: 0, count: quantizer.layouts[0].byteCount)
        try bytes.withUnsafeMutableBytes { o in
            try input.withUnsafeBufferPointer { x in
                for r in stride(from: 0, to: cases.rows, by: 5) {
                    let end = min(cases.rows, r + 5)
                    try quantizer.encode(rows: r..<end, input: UnsafeBufferPointer(rebasing: x[(r * cases.columns)..<(end * cases.columns)]), into: [o])
                }
            }
        }
        #expect(bytes == q.parts[0].data)
    }

    @Test("importance changes the bytes exactly for the types ggml weights (Q8_0 ignores it)", arguments: typeNames)
    func importanceChangesBytesWhereGGMLUsesIt(_ name: String) throws {
        let (cases, input, importance, _) = try GGMLImatrixCases.load()
        let entry = try #require(cases.types.first { $0.name == name })
        let type = try #require(GGMLType.named(name))
        let scheme = Scheme(name: try #require(SchemeDescriptor.writing(type)).name)
        let plain = try input.withUnsafeBufferPointer { try quantized($0, rows: cases.rows, columns: cases.columns, scheme: scheme, tensorName: "t") }
        let quantizer = try TensorQuantizer(scheme: scheme, rows: cases.rows, columns: cases.columns, tensorName: "t",
                                            importance: importance, rowsPerExpert: cases.rows_per_expert)
        let ggmlIgnoresIt = name == "Q8_0"
        #expect(quantizer.usesImportance == !ggmlIgnoresIt)
        #expect((SHA256.hex(plain.parts[0].data) == entry.sha256) == ggmlIgnoresIt,
                "\(name): ggml's bytes with importance should \(ggmlIgnoresIt ? "equal" : "differ from") the plain quantizer's")
    }

    @Test("F16 and BF16 ignore importance, as ggml_quantize_chunk does")
    func floatTypesIgnoreImportance() throws {
        let x: [Float] = (0..<256).map { Float($0) * 0.01 - 1 }
        let w = [Float](repeating: 0.5, count: 64)
        for name in [SchemeName.f16, .bf16] {
            let a = try x.withUnsafeBufferPointer { try quantized($0, rows: 4, columns: 64, scheme: Scheme(name: name), tensorName: "t") }
            let b = try x.withUnsafeBufferPointer {
                try quantized($0, rows: 4, columns: 64, scheme: Scheme(name: name), tensorName: "t", importance: w)
            }
            #expect(a.parts[0].data == b.parts[0].data, "\(name.rawValue)")
        }
    }

    @Test("importance of the wrong size, with a NaN, or for a safetensors scheme is refused naming the problem")
    func badImportanceIsRefused() throws {
        let q4 = Scheme(name: .q4_K)
        #expect(throws: QuantizeError.importanceSizeMismatch(tensor: "t", expected: 512, found: 256)) {
            try TensorQuantizer(scheme: q4, rows: 4, columns: 256, tensorName: "t", importance: [Float](repeating: 1, count: 256), rowsPerExpert: 2)
        }
        var w = [Float](repeating: 1, count: 512)
        w[300] = .nan
        do {
            _ = try TensorQuantizer(scheme: q4, rows: 4, columns: 256, tensorName: "t", importance: w, rowsPerExpert: 2)
            Issue.record("a NaN importance value was accepted")
        } catch {
            guard case .nonFiniteImportance(tensor: "t", expert: 1, column: 44, value: let v) = error, v.isNaN else {
                Issue.record("expected nonFiniteImportance at expert 1 column 44, got \(error)"); return
            }
            #expect(error.description.contains("column 44 of expert 1"))
        }
        #expect(throws: QuantizeError.importanceNotApplicable(tensor: "t", scheme: .int4)) {
            try TensorQuantizer(scheme: Scheme(name: .int4), rows: 4, columns: 256, tensorName: "t", importance: [Float](repeating: 1, count: 256))
        }
        #expect(throws: QuantizeError.self) {
            try TensorQuantizer(scheme: q4, rows: 4, columns: 256, tensorName: "t", importance: [Float](repeating: 1, count: 256), rowsPerExpert: 3)
        }
    }

    @Test("non-finite weights are reported, or sanitised when allowed, on the importance-weighted path")
    func nonFiniteWeightsOnTheWeightedPath() throws {
        var x: [Float] = (0..<(8 * 256)).map { sin(Float($0) * 0.37) }
        x[3 * 256 + 17] = .infinity
        let w: [Float] = (0..<256).map { 0.01 + Float($0 % 7) }
        let scheme = Scheme(name: .q4_K)
        #expect(throws: QuantizeError.nonFiniteWeight(tensor: "t", row: 3, column: 17, value: .infinity)) {
            try x.withUnsafeBufferPointer { try quantized($0, rows: 8, columns: 256, scheme: scheme, tensorName: "t", importance: w) }
        }
        let allowed = try x.withUnsafeBufferPointer {
            try quantized($0, rows: 8, columns: 256, scheme: scheme, tensorName: "t", options: QuantizeOptions(allowNonFinite: true), importance: w)
        }
        // The sanitised row: +inf becomes the row's largest finite magnitude.
        var clean = x
        clean[3 * 256 + 17] = x[(3 * 256)..<(4 * 256)].filter { $0.isFinite }.map { abs($0) }.max()!
        let expected = try clean.withUnsafeBufferPointer { try quantized($0, rows: 8, columns: 256, scheme: scheme, tensorName: "t", importance: w) }
        #expect(allowed.parts[0].data == expected.parts[0].data)
    }
}
