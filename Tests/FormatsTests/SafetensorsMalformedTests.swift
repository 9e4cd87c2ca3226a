import Foundation
import Testing
import TestSupport
@testable import Formats

/// One entry of fixtures/malformed/safetensors/manifest.json (written by tools/malformed_safetensors.py).
struct MalformedSafetensorsCase: CustomTestStringConvertible, Sendable {
    let path: String
    let code: String
    let phrase: String
    let kind: String
    var testDescription: String { "\(path) → \(code)" }

    static func all() -> [MalformedSafetensorsCase] {
        guard let manifest = try? JSONValue.parse(contentsOf: Fixtures.path("malformed/safetensors/manifest.json")),
              let cases = manifest["cases"]?.array else { return [] }
        return cases.compactMap { item in
            guard let path = item["path"]?.string, let code = item["code"]?.string,
                  let phrase = item["phrase"]?.string, let kind = item["kind"]?.string else { return nil }
            return MalformedSafetensorsCase(path: path, code: code, phrase: phrase, kind: kind)
        }
    }
}

@Suite("Malformed safetensors")
struct SafetensorsMalformedTests {
    @Test("the manifest lists the malformed files and checkpoints")
    func manifestIsComplete() {
        let cases = MalformedSafetensorsCase.all()
        #expect(cases.count >= 45)
        #expect(cases.filter { $0.kind == "checkpoint" }.count >= 7)
    }

    @Test("each malformed file or checkpoint fails with exactly its code and an explanatory message",
          arguments: MalformedSafetensorsCase.all())
    func rejectsMalformed(_ item: MalformedSafetensorsCase) throws {
        let path = Fixtures.path("malformed/safetensors/\(item.path)")
        let error = #expect(throws: FormatError.self) {
            if item.kind == "checkpoint" {
                _ = try SafetensorsCheckpoint(path: path)
            } else {
                _ = try SafetensorsFile(path: path)
            }
        }
        #expect(error?.code.rawValue == item.code, "\(item.path): \(error?.description ?? "no error")")
        #expect(error?.description.contains(item.phrase) == true, "\(item.path): message \(error?.description ?? "") lacks \"\(item.phrase)\"")
        #expect(error?.remedy?.isEmpty == false, "\(item.path) has no remedy")
    }

    /// How "no allocation larger than the file" is guaranteed: `SafetensorsFile.init` compares the
    /// 64-bit length field with the 100 MB limit and with the mapped file's size before using it,
    /// and afterwards only slices the mapping (the JSON parser reads the header in place and
    /// allocates only for the values it finds, each bounded by bytes that exist). Nothing is ever
    /// sized from N. This test makes the bound observable: a length of 2^62 (or 2^63 − 1) on a
    /// 32-byte file fails with `.headerTooLarge` (not a trap, not an allocation failure), and a
    /// length just under the limit fails with `.truncated` before any parsing.
    @Test("a huge header length fails fast with headerTooLarge, before anything is allocated from it")
    func hugeHeaderLengthFailsFast() throws {
        let directory = try Fixtures.temporaryDirectory("st-huge")
        defer { try? FileManager.default.removeItem(at: directory) }
        for (length, code) in [(UInt64(1) << 62, FormatError.Code.headerTooLarge), (UInt64(Int64.max), .headerTooLarge),
                               (UInt64.max, .headerTooLarge), (99_999_999, .truncated)] {
            var bytes: [UInt8] = withUnsafeBytes(of: length.littleEndian) { Array($0) }
            bytes += Array("{\"a\":{}}".utf8) + [UInt8](repeating: 0x20, count: 16)
            let path = directory.appendingPathComponent("h\(length).safetensors").path
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            let error = #expect(throws: FormatError.self) { _ = try SafetensorsFile(path: path) }
            #expect(error?.code == code)
            #expect(error?.description.contains("32 bytes") == true, "the message gives the file size: \(error?.description ?? "")")
        }
    }

    @Test("a 52 MB file whose header promises 9.4 GB is reported as truncated with both sizes (sparse file)")
    func bigTruncationMessage() throws {
        let directory = try Fixtures.temporaryDirectory("st-sparse")
        defer { try? FileManager.default.removeItem(at: directory) }
        let json = #"{"embed":{"dtype":"U8","shape":[9399999917],"data_offsets":[0,9399999917]}}"#
        var bytes: [UInt8] = withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { Array($0) }
        bytes += Array(json.utf8)
        #expect(8 + json.utf8.count == 83)  // so the header promises 83 + 9_399_999_917 = 9.4e9 bytes
        let path = directory.appendingPathComponent("cut.safetensors").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: 52_000_000)  // sparse: no real disk use
        try handle.close()
        let error = #expect(throws: FormatError.self) { _ = try SafetensorsFile(path: path) }
        #expect(error?.code == .truncated)
        #expect(error?.tensor == "embed")
        #expect(error?.description.contains("the file is 52.0 MB (52000000 bytes) but its header says 9.40 GB (9400000000 bytes)") == true,
                "\(error?.description ?? "")")
    }

    @Test("a truncated file's message gives the file size and the size the header promises")
    func truncationMessageGivesBothSizes() throws {
        let error = #expect(throws: FormatError.self) {
            _ = try SafetensorsFile(path: Fixtures.path("malformed/safetensors/truncated_mid_tensor.safetensors"))
        }
        let file = try MappedFile(path: Fixtures.path("malformed/safetensors/truncated_mid_tensor.safetensors"))
        #expect(error?.description.contains("the file is \(file.count) bytes but its header says") == true, "\(error?.description ?? "")")
        #expect(error?.tensor == "a")
    }
}

@Suite("Safetensors reader robustness")
struct SafetensorsRobustnessTests {
    /// Deterministic mutations (byte flips in the length and header, truncations, insertions) of a
    /// valid fixture: each must either read as a consistent file or throw a FormatError — never
    /// trap, hang or read outside the file.
    @Test("thousands of mutated headers either read consistently or fail with a FormatError")
    func mutatedHeadersNeverTrap() throws {
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path("safetensors/all_dtypes.safetensors"))))
        let headerEnd = 8 + Int(original[0]) + Int(original[1]) << 8
        let directory = try Fixtures.temporaryDirectory("st-fuzz")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("m.safetensors").path
        var state: UInt64 = 0x5EED
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        let interesting: [UInt8] = Array("{}[],:\"0123456789-.eE \\u".utf8) + [0x00, 0x7F, 0x80, 0xC3, 0xFF]
        var accepted = 0, rejected = 0
        for _ in 0..<1500 {
            var bytes = original
            switch next(4) {
            case 0:
                for _ in 0..<(1 + next(3)) { bytes[next(headerEnd)] = interesting[next(interesting.count)] }
            case 1:
                bytes = Array(bytes[0..<next(bytes.count)])
            case 2:
                bytes.insert(interesting[next(interesting.count)], at: 8 + next(headerEnd - 8))
            default:
                bytes[next(8)] = UInt8(next(256))
            }
            #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
            do {
                let file = try SafetensorsFile(path: path)
                accepted += 1
                var end = 0
                for tensor in file.tensors {
                    #expect(tensor.dataOffsets.lowerBound == end)
                    end = tensor.dataOffsets.upperBound
                    #expect(tensor.dtype.byteCount(elementCount: tensor.elementCount) == tensor.byteCount)
                }
                #expect(file.dataStart + end == bytes.count)
            } catch {
                rejected += 1
                #expect(!error.message.isEmpty)
            }
        }
        #expect(rejected > 1000)
    }
}
