import Foundation
import Testing
import Formats
import TestSupport

/// Deterministic bytes for tensor data (xorshift64*).
struct GGUFTestBytes {
    var state: UInt64
    mutating func next(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return UInt8(truncatingIfNeeded: (state &* 0x2545F4914F6CDD1D) >> 56)
        }
    }
}

/// A GGUF file to write in a test: metadata, tensors and each tensor's bytes.
struct GGUFTestFile {
    var metadata: [(key: String, value: GGUFValue)]
    var tensors: [GGUFWriter.Tensor]
    var data: [[UInt8]]

    init(metadata: [(key: String, value: GGUFValue)], tensors: [GGUFWriter.Tensor], seed: UInt64 = 1) {
        self.metadata = metadata
        self.tensors = tensors
        var bytes = GGUFTestBytes(state: seed | 1)
        data = tensors.map { tensor in
            let elements = tensor.shape.reduce(1, *)
            return bytes.next(elements / tensor.type.blockSize * tensor.type.bytesPerBlock)
        }
    }

    /// Writes the file, each tensor in chunks of `chunk` bytes (whole tensors when nil).
    func write(to path: String, chunk: Int? = nil) throws {
        let writer = try GGUFWriter(path: path, metadata: metadata, tensors: tensors)
        for bytes in data {
            if let chunk {
                for start in stride(from: 0, to: bytes.count, by: chunk) {
                    try writer.write(Array(bytes[start..<min(start + chunk, bytes.count)]))
                }
            } else if !bytes.isEmpty {  // tensors without elements need no call
                try writer.writeTensor(bytes)
            }
        }
        try writer.finish()
    }
}

@Suite("GGUF writer")
struct GGUFWriterTests {
    /// formats.md §2.10: the bytes gguf-py 0.19.0 writes for this content.
    @Test("writes the formats.md §2.10 gguf-py example byte for byte")
    func writesReferenceExample() throws {
        let directory = try Fixtures.temporaryDirectory("gguf-writer")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("example.gguf").path
        let writer = try GGUFWriter(
            path: path,
            metadata: [("general.architecture", .string("llama")), ("llama.block_count", .uint32(1))],
            tensors: [.init(name: "blk.0.attn_q.weight", type: .f32, shape: [2, 3])])
        let values: [Float] = [0, 1, 2, 3, 4, 5]
        try writer.writeTensor(values.withUnsafeBytes { Array($0) })
        try writer.finish()

        func le(_ value: UInt64, _ width: Int) -> [UInt8] { (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) } }
        func str(_ text: String) -> [UInt8] { le(UInt64(text.utf8.count), 8) + Array(text.utf8) }
        var expected = Array("GGUF".utf8) + le(3, 4) + le(1, 8) + le(2, 8)
        #expect(expected.count == 0x18)
        expected += str("general.architecture") + le(8, 4) + str("llama")
        #expect(expected.count == 0x45)
        expected += str("llama.block_count") + le(4, 4) + le(1, 4)
        #expect(expected.count == 0x66)
        expected += str("blk.0.attn_q.weight") + le(2, 4) + le(3, 8) + le(2, 8) + le(0, 4) + le(0, 8)
        #expect(expected.count == 0xA1)
        expected += [UInt8](repeating: 0, count: 0xC0 - 0xA1)
        expected += [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40,
                     0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x80, 0x40, 0x00, 0x00, 0xa0, 0x40]
        expected += [UInt8](repeating: 0, count: 224 - 0xD8)
        #expect(try ggufReadBytes(path) == expected)
        #expect(writer.dataStart == 0xC0)
        #expect(writer.fileSize == 224)
    }

    @Test("rewriting a gguf-py fixture through the reader and writer reproduces its bytes exactly",
          arguments: ["all_types_v3", "alignment64", "v2"])
    func rewritesFixturesByteIdentically(name: String) throws {
        let directory = try Fixtures.temporaryDirectory("gguf-writer")
        defer { try? FileManager.default.removeItem(at: directory) }
        let sourcePath = Fixtures.path("gguf/\(name).gguf")
        let source = try GGUFFile(path: sourcePath)
        let path = directory.appendingPathComponent("\(name).gguf").path
        let writer = try GGUFWriter(path: path, metadata: source.metadata,
                                    tensors: source.tensors.map { .init(name: $0.name, type: $0.type, shape: $0.shape) })
        #expect(writer.tensors == source.tensors)
        #expect(writer.dataStart == source.dataStart)
        #expect(writer.alignment == source.alignment)
        for (index, tensor) in source.tensors.enumerated() {
            #expect(writer.nextTensor?.name == tensor.name)
            // Uneven chunk sizes, so chunk boundaries fall everywhere inside blocks.
            let data = source.data(for: tensor)
            let step = 7 * (index + 1)
            for start in stride(from: 0, to: data.count, by: step) {
                try writer.write(UnsafeRawBufferPointer(rebasing: data[start..<min(start + step, data.count)]))
            }
        }
        #expect(writer.nextTensor == nil)
        try writer.finish()
        var expected = try ggufReadBytes(sourcePath)
        if source.version == 2 { expected[4] = 3 }  // the writer always writes v3; v2 differs only in this field
        let written = try ggufReadBytes(path)
        #expect(written.count == expected.count)
        #expect(written == expected)
        #expect(writer.fileSize == written.count)
    }

    struct InvalidInput: CustomTestStringConvertible, Sendable {
        var testDescription: String
        var metadata: [GGUFMetadataEntry] = [.init("general.architecture", .string("llama"))]
        var tensors: [GGUFWriter.Tensor] = [.init(name: "w", type: .q8_0, shape: [2, 32])]
        var phrase: String
    }

    static let invalidInputs: [InvalidInput] = [
        .init(testDescription: "empty key", metadata: [.init("", .uint8(1))], phrase: "is empty"),
        .init(testDescription: "duplicate key", metadata: [.init("a", .uint8(1)), .init("a", .uint8(2))], phrase: "given twice"),
        .init(testDescription: "nested array", metadata: [.init("a", .array(.array, []))], phrase: "array of arrays"),
        .init(testDescription: "mixed array", metadata: [.init("a", .array(.int32, [.int32(1), .uint8(2)]))],
              phrase: "element 1"),
        .init(testDescription: "alignment as u64", metadata: [.init("general.alignment", .uint64(32))], phrase: "uint32"),
        .init(testDescription: "alignment 0", metadata: [.init("general.alignment", .uint32(0))], phrase: "power of two"),
        .init(testDescription: "alignment 24", metadata: [.init("general.alignment", .uint32(24))], phrase: "power of two"),
        .init(testDescription: "64-byte name", tensors: [.init(name: String(repeating: "n", count: 64), type: .f32, shape: [1])],
              phrase: "64 bytes"),
        .init(testDescription: "duplicate tensor", tensors: [.init(name: "w", type: .f32, shape: [1]), .init(name: "w", type: .f16, shape: [2])],
              phrase: "used twice"),
        .init(testDescription: "5 dims", tensors: [.init(name: "w", type: .f32, shape: [1, 1, 1, 1, 1])], phrase: "5 dimensions"),
        .init(testDescription: "negative dim", tensors: [.init(name: "w", type: .f32, shape: [2, -1])], phrase: "negative"),
        .init(testDescription: "row not a block multiple", tensors: [.init(name: "w", type: .q4_K, shape: [4, 128])],
              phrase: "not a multiple of the Q4_K block size 256"),
        .init(testDescription: "element overflow", tensors: [.init(name: "w", type: .f32, shape: [Int.max, 2])], phrase: "overflows"),
        .init(testDescription: "byte size overflow", tensors: [.init(name: "w", type: .f32, shape: [Int.max / 2])], phrase: "overflows"),
    ]

    @Test("rejects invalid metadata and tensors before creating any file", arguments: invalidInputs)
    func rejectsInvalidInput(input: InvalidInput) throws {
        let directory = try Fixtures.temporaryDirectory("gguf-writer")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("bad.gguf").path
        do throws(FormatError) {
            _ = try GGUFWriter(path: path, metadata: input.metadata.map { ($0.key, $0.value) }, tensors: input.tensors)
            Issue.record("accepted \(input.testDescription)")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains(input.phrase), "\(error.description)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }

    @Test("throws invalidArgument when a tensor's bytes do not match its size, and stays usable")
    func sizeMismatch() throws {
        let directory = try Fixtures.temporaryDirectory("gguf-writer")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("out.gguf").path
        let file = GGUFTestFile(metadata: [("general.architecture", .string("llama"))],
                                tensors: [.init(name: "a", type: .q8_0, shape: [2, 32]), .init(name: "b", type: .f16, shape: [3])])
        let writer = try GGUFWriter(path: path, metadata: file.metadata, tensors: file.tensors)
        func expectInvalid(_ body: () throws -> Void) {
            do { try body(); Issue.record("accepted a wrong size") } catch {
                #expect((error as? FormatError)?.code == .invalidArgument, "\(error)")
            }
        }
        expectInvalid { try writer.write([UInt8](repeating: 1, count: 69)) }             // 68 needed
        expectInvalid { try writer.writeTensor(UnsafeRawBufferPointer(start: nil, count: 0)) }
        try writer.write(Array(file.data[0][0..<10]))
        expectInvalid { try writer.writeTensor(file.data[0]) }
        try writer.write(Array(file.data[0][10...]))
        try writer.write(file.data[1])
        expectInvalid { try writer.write([0]) }                                           // after the last tensor
        try writer.finish()
        let read = try GGUFFile(path: path)
        #expect(Array(read.data(for: read.tensors[0])) == file.data[0])
        #expect(Array(read.data(for: read.tensors[1])) == file.data[1])
    }

    @Test("an unfinished output is discarded: released, discarded or finished early")
    func unfinishedOutputIsDiscarded() throws {
        let directory = try Fixtures.temporaryDirectory("gguf-writer")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("out.gguf").path
        let file = GGUFTestFile(metadata: [], tensors: [.init(name: "a", type: .f32, shape: [4]), .init(name: "b", type: .f32, shape: [4])])
        do {
            let writer = try GGUFWriter(path: path, metadata: file.metadata, tensors: file.tensors)
            try writer.write(file.data[0])
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).count == 1)  // the temporary file
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)

        let early = try GGUFWriter(path: path, metadata: file.metadata, tensors: file.tensors)
        try early.write(file.data[0])
        do throws(FormatError) {
            try early.finish()
            Issue.record("finished with a tensor missing")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.tensor == "b")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)

        let discarded = try GGUFWriter(path: path, metadata: file.metadata, tensors: file.tensors)
        discarded.discard()
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }

    @Test("refuses to replace an existing file unless asked to")
    func refusesToOverwrite() throws {
        let directory = try Fixtures.temporaryDirectory("gguf-writer")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("out.gguf").path
        let file = GGUFTestFile(metadata: [("k", .uint8(1))], tensors: [])
        try file.write(to: path)
        #expect(throws: FormatError.self) { try file.write(to: path) }
        let replacement = try GGUFWriter(path: path, metadata: [("k", .uint8(2))], tensors: [], overwrite: true)
        try replacement.finish()
        #expect(try GGUFFile(path: path)["k"] == .uint8(2))
    }

    /// Files exercising every metadata type, several tensor types, 0-D to 4-D and empty tensors,
    /// and alignments 1, 32 (default), 64 and 4096.
    static let oracleFiles: [String: GGUFTestFile] = {
        let scalars: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string("llama")),
            ("t.u8", .uint8(255)), ("t.i8", .int8(-128)), ("t.u16", .uint16(65535)), ("t.i16", .int16(-32768)),
            ("t.u32", .uint32(.max)), ("t.i32", .int32(.min)), ("t.f32", .float32(-.infinity)),
            ("t.f32.nan", .float32(Float(bitPattern: 0x7FC0_0001))), ("t.bool", .bool(true)),
            ("t.str", .string("ünïcödé ✓ 🦙\n\"quoted\"")), ("t.str.empty", .string("")),
            ("t.u64", .uint64(.max)), ("t.i64", .int64(.min)), ("t.f64", .float64(.pi)),
            ("t.f64.subnormal", .float64(Double(bitPattern: 1))),
        ]
        let arrays: [(key: String, value: GGUFValue)] = [
            ("a.u8", .array(.uint8, [.uint8(0), .uint8(200)])), ("a.i8", .array(.int8, [.int8(-1)])),
            ("a.u16", .array(.uint16, [.uint16(1), .uint16(2)])), ("a.i16", .array(.int16, [.int16(-3)])),
            ("a.u32", .array(.uint32, [.uint32(4)])), ("a.i32", .array(.int32, (0..<100).map { .int32(Int32($0) - 50) })),
            ("a.f32", .array(.float32, [.float32(1.5), .float32(-0.0), .float32(.greatestFiniteMagnitude)])),
            ("a.bool", .array(.bool, [.bool(false), .bool(true)])),
            ("a.str", .array(.string, [.string("<s>"), .string(""), .string("日本")])),
            ("a.u64", .array(.uint64, [.uint64(1 << 63)])), ("a.i64", .array(.int64, [.int64(-7)])),
            ("a.f64", .array(.float64, [.float64(1e308), .float64(-1e-308)])),
            ("a.empty.str", .array(.string, [])), ("a.empty.f32", .array(.float32, [])),
        ]
        let tensors: [GGUFWriter.Tensor] = [
            .init(name: "scalar", type: .f32, shape: []),
            .init(name: "v.f32", type: .f32, shape: [5]),
            .init(name: "m.f16", type: .f16, shape: [3, 7]),
            .init(name: "c.bf16", type: .bf16, shape: [2, 2, 3]),
            .init(name: "h.i32", type: GGMLType.named("I32")!, shape: [2, 1, 2, 3]),
            .init(name: "empty.f32", type: .f32, shape: [0, 4]),
            .init(name: "blk.0.q8_0", type: .q8_0, shape: [3, 64]),
            .init(name: "blk.0.q4_0", type: .q4_0, shape: [1, 32]),
            .init(name: "blk.0.q5_1", type: .q5_1, shape: [2, 32]),
            .init(name: "blk.0.q4_k", type: .q4_K, shape: [2, 256]),
            .init(name: "blk.0.q6_k", type: .q6_K, shape: [1, 512]),
            .init(name: String(repeating: "z", count: 63), type: GGMLType.named("F64")!, shape: [1]),
        ]
        return [
            "rich_alignment64": GGUFTestFile(metadata: scalars + [("general.alignment", .uint32(64))] + arrays,
                                             tensors: tensors, seed: 11),
            "rich_default": GGUFTestFile(metadata: scalars + arrays, tensors: tensors, seed: 12),
            "alignment1": GGUFTestFile(metadata: [("general.alignment", .uint32(1))], tensors: Array(tensors[1...4]), seed: 13),
            "alignment4096": GGUFTestFile(metadata: [("general.alignment", .uint32(4096)), ("x", .string("y"))],
                                          tensors: Array(tensors[6...7]), seed: 14),
            "no_tensors": GGUFTestFile(metadata: scalars, tensors: []),
            "empty": GGUFTestFile(metadata: [], tensors: []),
        ]
    }()

    @Test("gguf-py's GGUFReader reads back every value, tensor and byte the writer wrote",
          arguments: oracleFiles.keys.sorted())
    func oracleReadsWhatWeWrite(name: String) throws {
        let file = try #require(Self.oracleFiles[name])
        let directory = try Fixtures.temporaryDirectory("gguf-oracle")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("\(name).gguf").path
        try file.write(to: path, chunk: 13)

        let oracle = try GGUFOracle.read(path)
        let ours = try GGUFFile(path: path)
        #expect(oracle == GGUFListing(ours))

        // Against the input, not only against our reader.
        let expectedAlignment = file.metadata.first { $0.key == "general.alignment" }?.value.int ?? 32
        #expect(oracle.version == 3)
        #expect(oracle.alignment == expectedAlignment)
        #expect(oracle.dataOffset % expectedAlignment == 0)
        let inputRows = file.metadata.map { entry -> [String] in
            if case .array(let elementType, let elements) = entry.value {
                return [entry.key, "ARRAY", elementType.description.uppercased(), "\(elements.count)"]
                    + elements.map(GGUFListing.canonical)
            }
            return [entry.key, entry.value.type.description.uppercased(), GGUFListing.canonical(entry.value)]
        }
        #expect(oracle.metadata == inputRows)
        #expect(oracle.tensors.count == file.tensors.count)
        var offset = 0
        for ((row, tensor), data) in zip(zip(oracle.tensors, file.tensors), file.data) {
            #expect(row[0] == tensor.name)
            #expect(row[1] == tensor.type.name)
            #expect(row[3] == tensor.shape.reversed().map(String.init).joined(separator: ","))
            #expect(row[4] == "\(offset)")
            #expect(row[6] == "\(data.count)")
            #expect(row[7] == SHA256.hex(data))
            offset += (data.count + expectedAlignment - 1) / expectedAlignment * expectedAlignment
        }
        #expect(try ggufReadBytes(path).count == oracle.dataOffset + offset)
    }
}

/// A metadata entry for parameterized tests (tuples cannot be `Sendable` test arguments' fields by name).
struct GGUFMetadataEntry: Sendable {
    var key: String
    var value: GGUFValue
    init(_ key: String, _ value: GGUFValue) {
        self.key = key
        self.value = value
    }
}
