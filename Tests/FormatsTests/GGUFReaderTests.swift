import Foundation
import Testing
import Formats
import TestSupport

@Suite("GGUF reader")
struct GGUFReaderTests {
    /// The valid fixtures written by tools/fixtures_gguf.py, each with gguf-py's listing next to it.
    static let fixtures = ["all_types_v3", "alignment64", "v2"]

    static func open(_ name: String) throws -> GGUFFile {
        try GGUFFile(path: Fixtures.path("gguf/\(name).gguf"))
    }

    static func expected(_ name: String) throws -> GGUFListing {
        try GGUFListing(oracleJSON: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("gguf/\(name).expected.json"))))
    }

    @Test("reads every key, value type, value and tensor exactly as gguf-py's GGUFReader does", arguments: fixtures)
    func matchesOracleListing(name: String) throws {
        let file = try Self.open(name)
        let expected = try Self.expected(name)
        let ours = GGUFListing(file)
        #expect(ours.version == expected.version)
        #expect(ours.alignment == expected.alignment)
        #expect(ours.dataOffset == expected.dataOffset)
        #expect(ours.metadata == expected.metadata)
        #expect(ours.tensors == expected.tensors)
    }

    @Test("the fixtures cover every value type, an empty array, v2, a custom alignment and 1-D to 4-D tensors")
    func fixturesCoverWhatTheyClaim() throws {
        let all = try Self.expected("all_types_v3")
        let scalarTypes = Set(all.metadata.map { $0[1] })
        let elementTypes = Set(all.metadata.filter { $0[1] == "ARRAY" }.map { $0[2] })
        #expect(scalarTypes == Set(GGUFValueType.allCases.map { $0.description.uppercased() }))
        #expect(elementTypes.isSuperset(of: ["UINT8", "INT32", "FLOAT32", "STRING", "BOOL"]))
        #expect(all.metadata.contains { $0[1] == "ARRAY" && $0[3] == "0" })
        let types = Set(all.tensors.map { $0[1] })
        #expect(types.isSuperset(of: ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q6_K"]))
        #expect(Set(all.tensors.map { $0[3].split(separator: ",").count }) == [1, 2, 3, 4])
        #expect(try Self.expected("alignment64").alignment == 64)
        #expect(try Self.expected("v2").version == 2)
    }

    @Test("records give row-major shapes, absolute offsets and ggml types")
    func recordsAreRowMajorWithAbsoluteOffsets() throws {
        let file = try Self.open("all_types_v3")
        let expected = try Self.expected("all_types_v3")
        let records = file.records(fileIndex: 3)
        #expect(records.count == expected.tensors.count)
        for (record, row) in zip(records, expected.tensors) {
            #expect(record.name == row[0])
            #expect(record.type == .ggml(try #require(GGMLType.named(row[1]))))
            #expect(record.shape == row[3].split(separator: ",").compactMap { Int($0) }.reversed())
            #expect(record.fileOffset == Int(row[5]))
            #expect(record.byteCount == Int(row[6]))
            #expect(record.fileIndex == 3)
            #expect(record.elementCount == record.shape.reduce(1, *))
        }
        let cube = try #require(file.tensor(named: "cube.bf16"))
        #expect(cube.shape == [2, 3, 32])
        #expect(cube.dimensions == [32, 3, 2])
    }

    @Test("tensor data is a view into the mapped file, not a copy")
    func dataIsAViewIntoTheMapping() throws {
        let file = try Self.open("alignment64")
        for tensor in file.tensors {
            let data = file.data(for: tensor)
            #expect(data.count == tensor.byteCount)
            #expect(data.baseAddress == file.file.bytes.baseAddress.map { $0 + file.dataStart + tensor.offset })
            #expect((file.dataStart + tensor.offset) % 64 == 0)
        }
    }

    @Test("accepts a file without the padding after its last tensor (as llama.cpp does) but not one byte less")
    func trailingPaddingIsOptional() throws {
        let source = try Self.open("v2")  // its last tensor (5 × F32) is followed by 12 bytes of padding
        let last = try #require(source.tensors.last)
        let end = source.dataStart + last.offset + last.byteCount
        let bytes = try ggufReadBytes(source.path)
        #expect(bytes.count > end)  // the fixture has padding after its last tensor
        let directory = try Fixtures.temporaryDirectory("gguf-reader")
        defer { try? FileManager.default.removeItem(at: directory) }
        let unpadded = directory.appendingPathComponent("unpadded.gguf").path
        try Data(bytes[..<end]).write(to: URL(fileURLWithPath: unpadded))
        let file = try GGUFFile(path: unpadded)
        #expect(Array(file.data(for: last)) == Array(source.data(for: last)))
        let short = directory.appendingPathComponent("short.gguf").path
        try Data(bytes[..<(end - 1)]).write(to: URL(fileURLWithPath: short))
        #expect { try GGUFFile(path: short) } throws: { error in
            (error as? FormatError)?.code == .truncated && (error as? FormatError)?.tensor == last.name
        }
    }

    @Test("metadata keeps file order and the accessors convert values")
    func metadataAccessors() throws {
        let file = try Self.open("all_types_v3")
        #expect(file.metadata.first?.key == "general.architecture")
        #expect(file["general.architecture"]?.string == "llama")
        #expect(file["test.uint32"]?.int == 4_000_000_000)
        #expect(file["test.int8"]?.int == -100)
        #expect(file["test.int64"]?.int == Int.min)
        #expect(file["test.uint64"]?.int == nil)  // 2^64 − 1 does not fit in Int
        #expect(file["test.float32"]?.double == Double(Float(0.1)))
        #expect(file["test.float64"]?.double == -2.5e-300)
        #expect(file["test.bool.true"]?.bool == true)
        #expect(file["test.string.unicode"]?.string == "héllo wörld — 日本語 🦙")
        #expect(file["test.array.string"]?.array?.compactMap(\.string) == ["<s>", "</s>", "ü", "", "▁the"])
        #expect(file["test.array.empty"] == .array(.int32, []))
        #expect(file["test.array.empty"]?.elementType == .int32)
        #expect(file["test.string.ascii"]?.int == nil)
        #expect(file["no.such.key"] == nil)
    }

    @Test("summaries show scalars plainly and abbreviate long arrays")
    func summaries() {
        let vocabulary = GGUFValue.array(.string, ["<s>", "</s>"].map(GGUFValue.string)
            + (0..<128_254).map { .string("token\($0)") })
        let summary = vocabulary.summary
        #expect(summary.hasPrefix("array<string>[128256]: [\"<s>\", \"</s>\", "))
        #expect(summary.hasSuffix(", …]"))
        #expect(summary.count < 120)
        #expect(GGUFValue.array(.int32, [.int32(1), .int32(-2)]).summary == "array<int32>[2]: [1, -2]")
        #expect(GGUFValue.array(.bool, []).summary == "array<bool>[0]: []")
        #expect(GGUFValue.uint32(7).summary == "7")
        #expect(GGUFValue.bool(false).summary == "false")
        #expect(GGUFValue.string("say \"hi\"").summary == "\"say \\\"hi\\\"\"")
        #expect(GGUFValue.float32(0.5).summary == "0.5")
    }

    @Test("the test SHA-256 matches the FIPS 180-4 examples")
    func sha256KnownAnswers() {
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }
}

/// One entry of fixtures/malformed/gguf/manifest.json.
struct GGUFMalformedCase: CustomTestStringConvertible, Sendable {
    var file: String
    var code: String
    var phrase: String
    var testDescription: String { file }

    static let manifestPath = Fixtures.path("malformed/gguf/manifest.json")

    static func all() -> [GGUFMalformedCase] {
        guard let data = FileManager.default.contents(atPath: manifestPath),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: [String: String]]
        else { return [] }
        return root.keys.sorted().compactMap { file in
            guard let entry = root[file], let code = entry["code"], let phrase = entry["phrase"] else { return nil }
            return GGUFMalformedCase(file: file, code: code, phrase: phrase)
        }
    }
}

@Suite("GGUF reader on malformed files")
struct GGUFMalformedTests {
    @Test("the manifest lists at least 25 malformed files, each present")
    func manifestIsComplete() throws {
        let cases = GGUFMalformedCase.all()
        #expect(cases.count >= 25, "fixtures/malformed/gguf/manifest.json missing or short: run tools/malformed_gguf.py")
        for entry in cases {
            #expect(FileManager.default.fileExists(atPath: Fixtures.path("malformed/gguf/\(entry.file)")))
        }
    }

    @Test("each malformed file is rejected with its own error code and a message naming the problem",
          arguments: GGUFMalformedCase.all())
    func rejects(entry: GGUFMalformedCase) {
        let path = Fixtures.path("malformed/gguf/\(entry.file)")
        do throws(FormatError) {
            let file = try GGUFFile(path: path)
            Issue.record("\(entry.file) was accepted (\(file.tensors.count) tensors); expected \(entry.code)")
        } catch {
            #expect(error.code.rawValue == entry.code, "\(entry.file): \(error.description)")
            #expect(error.description.contains(entry.phrase),
                    "\(entry.file): message should contain “\(entry.phrase)”: \(error.description)")
            #expect(error.path == path)
        }
    }
}
