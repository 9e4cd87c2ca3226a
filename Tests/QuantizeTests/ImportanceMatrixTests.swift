import Foundation
import Testing
import Formats
import Quantize
import TestSupport

/// ImportanceMatrix against the files llama-imatrix wrote for the trained fixture
/// (fixtures/imatrix, made by tools/imatrix_oracle.py fixtures): reading, byte-identical writing in
/// both formats, llama-quantize's weights, and hostile files.
@Suite("importance matrix files")
struct ImportanceMatrixTests {
    static let gguf = Fixtures.path("imatrix/llama-imatrix-c128.gguf")
    static let dat = Fixtures.path("imatrix/llama-imatrix-c128.dat")

    static func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    static func code(_ error: Error) -> FormatError.Code? { (error as? FormatError)?.code }

    /// Writes `bytes` to a scratch file and reads it as an importance matrix.
    static func read(_ bytes: [UInt8], _ label: String) throws -> ImportanceMatrix {
        let dir = try Fixtures.temporaryDirectory(label)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.bin").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return try ImportanceMatrix(contentsOf: path)
    }

    @Test("reads llama-imatrix's GGUF: 28 entries of 768 tokens, its metadata, per-column sums")
    func readsGGUF() throws {
        let m = try ImportanceMatrix(contentsOf: Self.gguf)
        #expect(m.storage == .sums)
        #expect(m.entryCount == 28)
        #expect(m.chunkCount == 6 && m.chunkSize == 128)
        #expect(m.datasets == ["fixtures/trained-llama/eval.txt"])
        #expect(m.hasMetadata)
        let down = try #require(m.entries["blk.2.ffn_down.weight"])
        #expect(down.columns == 768 && down.experts == 1 && down.counts == [768])
        #expect(m.entries["blk.0.attn_q.weight"]?.columns == 256)
        #expect(m.entries["output.weight"] == nil, "llama-imatrix collects output.weight only with --process-output")
        // q, k and v share one input: llama.cpp's sums for them are equal.
        #expect(m.entries["blk.1.attn_q.weight"]?.sums == m.entries["blk.1.attn_k.weight"]?.sums)
    }

    @Test("reads the legacy .dat of the same run: ncall 6, the same chunk count and dataset")
    func readsLegacy() throws {
        let m = try ImportanceMatrix(contentsOf: Self.dat)
        #expect(m.storage == .legacyMeans)
        #expect(m.entryCount == 28 && m.chunkCount == 6 && m.chunkSize == 0)
        #expect(m.datasets == ["fixtures/trained-llama/eval.txt"])
        #expect(m.entries.values.allSatisfy { $0.counts == [6] })
    }

    @Test("writing a read GGUF back gives llama-imatrix's bytes")
    func ggufRoundTripIsByteIdentical() throws {
        let dir = try Fixtures.temporaryDirectory("imatrix-rt")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("again.gguf").path
        try ImportanceMatrix(contentsOf: Self.gguf).write(to: out, format: .gguf)
        #expect(try Self.bytes(out) == Self.bytes(Self.gguf))
    }

    @Test("a read .dat written back, and the GGUF written as .dat, give llama-imatrix's .dat bytes")
    func legacyBytesEqualLlamaImatrix() throws {
        let want = try Self.bytes(Self.dat)
        #expect(try ImportanceMatrix(contentsOf: Self.dat).legacyBytes() == want)
        // save_imatrix_legacy from the raw sums of the same (deterministic) run.
        let fromGGUF = try ImportanceMatrix(contentsOf: Self.gguf).legacyBytes()
        #expect(fromGGUF.count == want.count)
        #expect(fromGGUF == want, "first difference at byte \(zip(fromGGUF, want).enumerated().first { $1.0 != $1.1 }?.offset ?? -1)")
    }

    @Test("quantizationWeights is Σx²/count in FP32 (GGUF) and value/ncall (.dat), and the two agree")
    func weightsFormula() throws {
        let g = try ImportanceMatrix(contentsOf: Self.gguf), d = try ImportanceMatrix(contentsOf: Self.dat)
        try g.validateForQuantization()
        try d.validateForQuantization()
        for name in g.sortedNames {
            let entry = try #require(g.entries[name])
            let wg = try #require(try g.quantizationWeights(forTensor: name, columns: entry.columns, experts: 1))
            #expect(wg == entry.sums.map { $0 / Float(768) })
            let legacy = try #require(d.entries[name])
            let wd = try #require(try d.quantizationWeights(forTensor: name, columns: entry.columns, experts: 1))
            #expect(wd == legacy.sums.map { $0 / Float(6) })
            // (s/768)·6/6 against s/768: two FP32 roundings apart.
            for (a, b) in zip(wg, wd) { #expect(abs(a - b) <= 3 * Float.ulpOfOne * a) }
        }
    }

    @Test("quantizationWeights: nil for a missing entry and for a mis-sized token_embd, an error for any other size mismatch")
    func weightsSizeRules() throws {
        var m = ImportanceMatrix(entries: ["blk.0.attn_q.weight": .init(sums: [4, 8], counts: [2]),
                                           "token_embd.weight": .init(sums: [1, 1, 1], counts: [1])],
                                 datasets: ["t.txt"], chunkCount: 1, chunkSize: 2)
        #expect(try m.quantizationWeights(forTensor: "blk.9.attn_q.weight", columns: 2, experts: 1) == nil)
        #expect(try m.quantizationWeights(forTensor: "blk.0.attn_q.weight", columns: 2, experts: 1) == [2, 4])
        #expect(try m.quantizationWeights(forTensor: "token_embd.weight", columns: 8, experts: 1) == nil)
        #expect { try m.quantizationWeights(forTensor: "blk.0.attn_q.weight", columns: 4, experts: 1) } throws: { Self.code($0) == .imatrixMismatch }
        m.entries["blk.0.attn_q.weight"]!.sums = [.infinity, 1]
        #expect { try m.validateForQuantization() } throws: { Self.code($0) == .imatrixMismatch }
    }

    @Test("expert layout: expert-major rows, and 1 for every column of an expert that saw no token")
    func expertLayoutAndZeroCounts() throws {
        let entry = ImportanceMatrix.Entry(sums: [2, 4, 9, 9, 3, 6], counts: [2, 0, 3])
        let m = ImportanceMatrix(entries: ["blk.0.ffn_down_exps.weight": entry], datasets: ["t.txt"], chunkCount: 1, chunkSize: 3)
        #expect(try m.quantizationWeights(forTensor: "blk.0.ffn_down_exps.weight", columns: 2, experts: 3) == [1, 2, 1, 1, 1, 2])
        // llama-quantize compares only the total, ne[0]·ne[2]: 6 × 1 passes, 4 × 1 does not.
        #expect(try m.quantizationWeights(forTensor: "blk.0.ffn_down_exps.weight", columns: 6, experts: 1)?.count == 6)
        #expect { try m.quantizationWeights(forTensor: "blk.0.ffn_down_exps.weight", columns: 4, experts: 1) } throws: { Self.code($0) == .imatrixMismatch }
        // In the GGUF: in_sum2 [3, 2] and counts [3, 1] (ggml ne [2, 3] and [1, 3]), read back equal.
        let dir = try Fixtures.temporaryDirectory("imatrix-moe")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("moe.gguf").path
        try m.write(to: path, format: .gguf)
        let file = try GGUFFile(path: path)
        #expect(file.tensor(named: "blk.0.ffn_down_exps.weight.in_sum2")?.dimensions == [2, 3])
        #expect(file.tensor(named: "blk.0.ffn_down_exps.weight.counts")?.dimensions == [1, 3])
        #expect(try ImportanceMatrix(contentsOf: path) == m)
        // The legacy layout stores 1·ncall for the expert without tokens (save_imatrix_legacy).
        let legacy = try Self.read(m.legacyBytes(), "imatrix-moe-dat")
        #expect(legacy.entries["blk.0.ffn_down_exps.weight"]?.sums == [1, 2, 1, 1, 1, 2])
        #expect(legacy.entries["blk.0.ffn_down_exps.weight"]?.counts == [1])
    }

    @Test("quantizeMetadata: the four keys llama-quantize appends, in its order and types, cut to 127 bytes")
    func quantizeMetadataKeys() throws {
        let m = try ImportanceMatrix(contentsOf: Self.gguf)
        let keys = m.quantizeMetadata(imatrixPath: "imatrix.gguf")
        #expect(keys.map(\.key) == ["quantize.imatrix.file", "quantize.imatrix.dataset", "quantize.imatrix.entries_count", "quantize.imatrix.chunks_count"])
        #expect(keys[0].value == .string("imatrix.gguf"))
        #expect(keys[1].value == .string("fixtures/trained-llama/eval.txt"))
        #expect(keys[2].value == .uint32(28) && keys[3].value == .uint32(6))
        let long = String(repeating: "a", count: 200)
        #expect(m.quantizeMetadata(imatrixPath: long)[0].value == .string(String(repeating: "a", count: 127)))
        let none = ImportanceMatrix(entries: ["x": .init(sums: [1], counts: [1])], datasets: [], chunkCount: 0, chunkSize: 1)
        #expect(none.quantizeMetadata(imatrixPath: "f").map(\.key) == ["quantize.imatrix.file", "quantize.imatrix.entries_count"])
    }

    @Test("quantizeMetadata equals the keys llama-quantize --imatrix appended to its Q4_K_M (manifest.json)")
    func quantizeMetadataMatchesLlamaQuantize() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("imatrix/manifest.json")))
        let manifest = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let tail = try #require(manifest["llama_quantize_tail_keys"] as? [String: Any])
        let keys = try #require(tail["keys"] as? [[String: Any]]).filter { ($0["key"] as? String)?.hasPrefix("quantize.imatrix.") == true }
        let ours = try ImportanceMatrix(contentsOf: Self.gguf).quantizeMetadata(imatrixPath: "fixtures/imatrix/llama-imatrix-c128.gguf")
        #expect(ours.map(\.key) == keys.map { $0["key"] as? String ?? "" })
        for (mine, theirs) in zip(ours, keys) {
            switch mine.value {
            case .string(let s): #expect(theirs["type"] as? String == "string" && theirs["value"] as? String == s, "\(mine.key)")
            case .uint32(let v): #expect(theirs["type"] as? String == "uint32" && theirs["value"] as? Int == Int(v), "\(mine.key)")
            default: Issue.record("\(mine.key) has type \(mine.value.type)")
            }
        }
    }

    // MARK: Hostile files

    @Test("every truncation of the .dat and of the GGUF is a clear error, never a crash")
    func truncations() throws {
        for source in [Self.dat, Self.gguf] {
            let full = try Self.bytes(source)
            // The .dat trailer (chunk count, then the dataset name) is optional, as llama.cpp reads
            // it: a cut just before it or just after the chunk count is a complete file. The GGUF's
            // last 28 bytes are the padding after the last tensor.
            let datasetLength = "fixtures/trained-llama/eval.txt".utf8.count
            let complete: Set<Int> = source == Self.dat ? [full.count - 8 - datasetLength, full.count - 4 - datasetLength] : []
            let end = source == Self.dat ? full.count : full.count - 28
            var cuts = Array(stride(from: 0, to: 64, by: 1)) + Array(stride(from: 64, to: end, by: 331))
            for c in complete { cuts += [c - 1, c, c + 1] }
            for cut in cuts.sorted() {
                do {
                    let m = try Self.read(Array(full.prefix(cut)), "imatrix-cut")
                    #expect(complete.contains(cut), "\(cut) of \(full.count) bytes of \(source) read as \(m.entryCount) entries")
                    #expect(m.entryCount == 28)
                } catch let error as FormatError {
                    #expect(!complete.contains(cut), "\(cut) bytes: \(error)")
                    #expect(error.description.contains("m.bin"))
                }
            }
        }
    }

    @Test("a legacy file declaring 2^31−1 entries, a huge value count or a negative name length is refused before allocating")
    func hugeDeclaredSizes() throws {
        var bytes = try Self.bytes(Self.dat)
        func patch(_ offset: Int, _ value: Int32) -> [UInt8] {
            var b = bytes
            withUnsafeBytes(of: value.littleEndian) { for k in 0..<4 { b[offset + k] = $0[k] } }
            return b
        }
        for (offset, value, phrase) in [(0, Int32.max, "declares 2147483647 entries"), (4, -5, "name of -5 bytes"), (4, 1 << 30, "name of 1073741824 bytes")] {
            #expect { try Self.read(patch(offset, value), "imatrix-huge") } throws: { error in
                Self.code(error) == .imatrixMalformed && "\(error)".contains(phrase)
            }
        }
        // The value count of the first entry: after count (4), name length (4), name, ncall (4).
        let nameLength = Int(bytes[4]) | Int(bytes[5]) << 8
        #expect { try Self.read(patch(4 + 4 + nameLength + 4, Int32.max), "imatrix-huge") } throws: { error in
            Self.code(error) == .imatrixMalformed && "\(error)".contains("2147483647 values")
        }
        bytes.append(contentsOf: [1, 2, 3])
        #expect { try Self.read(bytes, "imatrix-tail") } throws: { error in Self.code(error) == .imatrixMalformed && "\(error)".contains("unexpected bytes") }
    }

    /// A GGUF importance matrix with the given tensors (each name, type, shape, values as floats).
    static func ggufFile(_ tensors: [(String, GGMLType, [Int], [Float])], metadata: Bool = true, label: String) throws -> Result<ImportanceMatrix, Error> {
        let dir = try Fixtures.temporaryDirectory(label)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.gguf").path
        var meta: [(key: String, value: GGUFValue)] = [("general.type", .string("imatrix"))]
        if metadata {
            meta += [("imatrix.datasets", .array(.string, [.string("t.txt")])), ("imatrix.chunk_count", .uint32(1)), ("imatrix.chunk_size", .uint32(4))]
        }
        let writer = try GGUFWriter(path: path, metadata: meta, tensors: tensors.map { GGUFWriter.Tensor(name: $0.0, type: $0.1, shape: $0.2) })
        for t in tensors {
            if t.1 == .f32 {
                try writer.writeTensor(t.3.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } })
            } else {
                try writer.writeTensor(t.3.flatMap { v in withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { Array($0) } })
            }
        }
        try writer.finish()
        return Result { try ImportanceMatrix(contentsOf: path) }
    }

    @Test("malformed GGUF imatrices: wrong counts length, fractional or negative counts, F16 sums, a missing half, no entries")
    func malformedGGUF() throws {
        let sums = [Float](repeating: 2, count: 6)
        let cases: [(String, [(String, GGMLType, [Int], [Float])], String)] = [
            ("counts length", [("a.weight.in_sum2", .f32, [6], sums), ("a.weight.counts", .f32, [4, 1], [1, 1, 1, 1])], "multiple of the counts"),
            ("shape", [("a.weight.in_sum2", .f32, [3, 2], sums), ("a.weight.counts", .f32, [2, 1], [1, 1])], "holds 2 experts"),
            ("fraction", [("a.weight.in_sum2", .f32, [6], sums), ("a.weight.counts", .f32, [1], [1.5])], "whole numbers"),
            ("negative", [("a.weight.in_sum2", .f32, [6], sums), ("a.weight.counts", .f32, [1], [-3])], "whole numbers"),
            ("nan", [("a.weight.in_sum2", .f32, [6], [1, 2, .nan, 4, 5, 6]), ("a.weight.counts", .f32, [1], [3])], "column 2"),
            ("f16", [("a.weight.in_sum2", .f16, [6], sums), ("a.weight.counts", .f32, [1], [3])], "must be F32"),
            ("half", [("a.weight.in_sum2", .f32, [6], sums)], "a.weight.counts is missing"),
            ("none", [("blk.0.attn_q.weight", .f32, [6], sums)], "not an importance matrix"),
        ]
        for (label, tensors, phrase) in cases {
            let result = try Self.ggufFile(tensors, label: "imatrix-bad-\(label)")
            guard case .failure(let error) = result else { Issue.record("\(label): read without error"); continue }
            #expect(Self.code(error) == .imatrixMalformed, "\(label): \(error)")
            #expect("\(error)".contains(phrase), "\(label): \(error)")
        }
        // Without the imatrix.* keys the file reads, but llama-quantize refuses it.
        let bare = try Self.ggufFile([("a.weight.in_sum2", .f32, [6], sums), ("a.weight.counts", .f32, [1], [3])], metadata: false, label: "imatrix-bare").get()
        #expect(!bare.hasMetadata)
        #expect { try bare.quantizationWeights(forTensor: "a.weight", columns: 6, experts: 1) } throws: { Self.code($0) == .imatrixMalformed }
        // A model is not an importance matrix.
        #expect { try ImportanceMatrix(contentsOf: Fixtures.path("tiny-llama.gguf")) } throws: { error in
            Self.code(error) == .imatrixMalformed && "\(error)".contains("not an importance matrix")
        }
    }
}
