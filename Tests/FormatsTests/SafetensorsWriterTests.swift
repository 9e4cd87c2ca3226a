import Foundation
import Testing
import TestSupport
@testable import Formats

/// Deterministic bytes for a tensor (a simple LCG), so tests need no fixtures for writer input.
func patternBytes(_ count: Int, seed: UInt32) -> [UInt8] {
    var state = seed &* 2_654_435_761 &+ 1
    return (0..<count).map { _ in
        state = state &* 1_664_525 &+ 1_013_904_223
        return UInt8(truncatingIfNeeded: state >> 24)
    }
}

/// Valid bit patterns for BOOL tensors.
func boolBytes(_ count: Int) -> [UInt8] { (0..<count).map { UInt8($0 % 3 == 0 ? 1 : 0) } }

private let mixedEntries: [SafetensorsEntry] = [
    SafetensorsEntry(name: "model.layers.0.mlp.up_proj.weight", dtype: .bf16, shape: [8, 4]),
    SafetensorsEntry(name: "model.layers.0.mlp.up_proj.weight_scale", dtype: .f32, shape: [8, 1]),
    SafetensorsEntry(name: "fp8", dtype: .f8E4M3, shape: [3, 5]),
    SafetensorsEntry(name: "e5m2", dtype: .f8E5M2, shape: [4]),
    SafetensorsEntry(name: "fnuz", dtype: .f8E4M3FNUZ, shape: [2]),
    SafetensorsEntry(name: "e8m0", dtype: .f8E8M0, shape: [3]),
    SafetensorsEntry(name: "half", dtype: .f16, shape: [5]),
    SafetensorsEntry(name: "double", dtype: .f64, shape: [2, 2]),
    SafetensorsEntry(name: "ids", dtype: .i64, shape: [3]),
    SafetensorsEntry(name: "u", dtype: .u16, shape: [3]),
    SafetensorsEntry(name: "i8", dtype: .i8, shape: [7]),
    SafetensorsEntry(name: "mask", dtype: .bool, shape: [6]),
    SafetensorsEntry(name: "z", dtype: .c64, shape: [2]),
    SafetensorsEntry(name: "scalar", dtype: .f32, shape: []),
    SafetensorsEntry(name: "nothing", dtype: .f32, shape: [0, 3]),
    SafetensorsEntry(name: "q\"uote\\ é €", dtype: .u8, shape: [2]),
]

private func bytes(for entry: SafetensorsEntry, seed: UInt32) -> [UInt8] {
    entry.dtype == .bool ? boolBytes(entry.byteCount!) : patternBytes(entry.byteCount!, seed: seed)
}

/// Writes `entries` with the writer in its order, each tensor in up to three chunks.
private func writeFile(_ path: String, _ entries: [SafetensorsEntry], metadata: [String: String]? = ["format": "pt"]) throws -> [String: [UInt8]] {
    let writer = try SafetensorsWriter(path: path, tensors: entries, metadata: metadata)
    var contents: [String: [UInt8]] = [:]
    for (position, tensor) in writer.tensors.enumerated() {
        let entry = entries.first { $0.name == tensor.name }!
        let data = bytes(for: entry, seed: UInt32(position + 1))
        contents[tensor.name] = data
        var start = 0
        while start < data.count {
            let end = min(data.count, start + max(1, data.count / 3))
            try writer.write(Array(data[start..<end]), for: tensor.name)
            start = end
        }
    }
    try writer.finish()
    return contents
}

@Suite("Safetensors writer")
struct SafetensorsWriterTests {
    @Test("writes the byte-exact example of formats.md §1.6 (made with safetensors.numpy.save)")
    func writesReferenceExample() throws {
        let directory = try Fixtures.temporaryDirectory("st-w")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("ab.safetensors").path
        let writer = try SafetensorsWriter(path: path, tensors: [
            SafetensorsEntry(name: "b", dtype: .i16, shape: [3]), SafetensorsEntry(name: "a", dtype: .f32, shape: [1, 2]),
        ])
        #expect(writer.tensors.map(\.name) == ["a", "b"])
        try writer.write([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40], for: "a")
        try writer.write([0x01, 0x00, 0x02, 0x00, 0x03, 0x00], for: "b")
        try writer.finish()
        let json = "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"I16\",\"shape\":[3],\"data_offsets\":[8,14]}}   "
        let expected: [UInt8] = [0x90, 0, 0, 0, 0, 0, 0, 0] + Array(json.utf8)
            + [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00]
        let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(written.count == 166)
        #expect(written == expected)
    }

    @Test("our bytes equal safetensors.numpy.save_file's for the same tensors, and the oracle reads them back")
    func matchesReferenceWriterBytes() throws {
        let directory = try Fixtures.temporaryDirectory("st-w")
        defer { try? FileManager.default.removeItem(at: directory) }
        let ours = directory.appendingPathComponent("ours.safetensors").path
        let contents = try writeFile(ours, mixedEntries)
        let reference = directory.appendingPathComponent("reference.safetensors").path
        _ = try runOracle(["--resave", ours, reference])
        let ourBytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: ours)))
        let referenceBytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: reference)))
        #expect(ourBytes == referenceBytes, "ours: \(String(decoding: ourBytes.prefix(400), as: UTF8.self))\nreference: \(String(decoding: referenceBytes.prefix(400), as: UTF8.self))")

        let listing = try JSONValue.parse(try runOracle([ours]))
        let file = try SafetensorsFile(path: ours)
        expectMatchesOracleListing(file, listing)
        for tensor in file.tensors {
            #expect(Array(file.data(for: tensor)) == contents[tensor.name], "bytes of \(tensor.name)")
        }
    }

    @Test("metadata with several keys, F4 and F6 tensors are read back by the reference reader")
    func oracleReadsMetadataAndSubByteTypes() throws {
        let directory = try Fixtures.temporaryDirectory("st-w")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("meta.safetensors").path
        let entries = [SafetensorsEntry(name: "packed", dtype: .f4, shape: [4, 6]),
                       SafetensorsEntry(name: "six", dtype: .f6E2M3, shape: [8]),
                       SafetensorsEntry(name: "six_b", dtype: .f6E3M2, shape: [4]),
                       SafetensorsEntry(name: "w", dtype: .f32, shape: [2])]
        let metadata = ["format": "pt", "quantization": "fp4 \"test\"", "ünïcode": "€"]
        _ = try writeFile(path, entries, metadata: metadata)
        let listing = try JSONValue.parse(try runOracle([path]))
        let file = try SafetensorsFile(path: path)
        #expect(file.metadata == metadata)
        expectMatchesOracleListing(file, listing)
        #expect(file.tensor(named: "packed")?.byteCount == 12)
        #expect(file.tensor(named: "six")?.byteCount == 6)
    }

    @Test("bytes out of order, too many bytes, or missing at finish are refused and leave no file behind")
    func refusesWrongSizesAndOrder() throws {
        let directory = try Fixtures.temporaryDirectory("st-w")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("bad.safetensors").path
        let entries = [SafetensorsEntry(name: "a", dtype: .f32, shape: [2]), SafetensorsEntry(name: "b", dtype: .u8, shape: [3])]

        var writer = try SafetensorsWriter(path: path, tensors: entries)
        var error = #expect(throws: FormatError.self) { try writer.write([1, 2, 3], for: "b") }
        #expect(error?.code == .invalidArgument)
        #expect(error?.description.contains("the next tensor to write is 'a'") == true)

        writer = try SafetensorsWriter(path: path, tensors: entries)
        try writer.write([1, 2, 3, 4], for: "a")
        error = #expect(throws: FormatError.self) { try writer.write([1, 2, 3, 4, 5], for: "a") }
        #expect(error?.code == .invalidArgument)
        #expect(error?.description.contains("9 bytes given but F32 [2] holds 8") == true, "\(error?.description ?? "")")

        writer = try SafetensorsWriter(path: path, tensors: entries)
        try writer.write([UInt8](repeating: 0, count: 8), for: "a")
        try writer.write([1, 2], for: "b")
        error = #expect(throws: FormatError.self) { try writer.finish() }
        #expect(error?.code == .invalidArgument)
        #expect(error?.tensor == "b")

        writer = try SafetensorsWriter(path: path, tensors: entries)
        try writer.write([UInt8](repeating: 0, count: 4), for: "a")
        error = #expect(throws: FormatError.self) { try writer.write([1], for: "b") }
        #expect(error?.description.contains("got only 4 of its 8 bytes") == true)

        error = #expect(throws: FormatError.self) {
            _ = try SafetensorsWriter(path: path, tensors: [SafetensorsEntry(name: "x", dtype: .f4, shape: [3])])
        }
        #expect(error?.code == .invalidArgument)
        error = #expect(throws: FormatError.self) {
            _ = try SafetensorsWriter(path: path, tensors: entries + [SafetensorsEntry(name: "a", dtype: .u8, shape: [1])])
        }
        #expect(error?.code == .invalidArgument)
        error = #expect(throws: FormatError.self) {
            _ = try SafetensorsWriter(path: path, tensors: [SafetensorsEntry(name: "x", dtype: .u8, shape: [-1])])
        }
        #expect(error?.code == .invalidArgument)

        // An abandoned writer (never finished) leaves nothing either.
        do {
            let abandoned = try SafetensorsWriter(path: path, tensors: entries)
            try abandoned.write([UInt8](repeating: 0, count: 8), for: "a")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }

    @Test("an existing output is refused unless overwrite is set")
    func refusesExistingOutput() throws {
        let directory = try Fixtures.temporaryDirectory("st-w")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("x.safetensors").path
        _ = try writeFile(path, [SafetensorsEntry(name: "a", dtype: .u8, shape: [1])])
        let error = #expect(throws: FormatError.self) {
            _ = try SafetensorsWriter(path: path, tensors: [SafetensorsEntry(name: "a", dtype: .u8, shape: [1])])
        }
        #expect(error?.code == .writeFailed)
        let writer = try SafetensorsWriter(path: path, tensors: [SafetensorsEntry(name: "b", dtype: .u8, shape: [1])], overwrite: true)
        try writer.write([9], for: "b")
        try writer.finish()
        #expect(try SafetensorsFile(path: path).tensors.map(\.name) == ["b"])
    }
}

@Suite("Sharded safetensors writer")
struct SafetensorsShardedWriterTests {
    @Test("plans shards exactly as huggingface_hub's split_state_dict_into_shards_factory")
    func plansShardsLikeHuggingFaceHub() throws {
        let cases = try #require(try JSONValue.parse(contentsOf: Fixtures.path("safetensors/shard_plans.json")).array)
        #expect(cases.count == 5)
        for item in cases {
            let entries = (item["tensors"]?.array ?? []).map { tensor in
                SafetensorsEntry(name: tensor["name"]?.string ?? "", dtype: DType(rawValue: tensor["dtype"]?.string ?? "") ?? .u8,
                                 shape: (tensor["shape"]?.array ?? []).compactMap(\.int))
            }
            let limit = try #require(item["max_shard_size"]?.int)
            let plan = try SafetensorsShardedWriter.planShards(entries, maxShardByteCount: limit)
            let expected = (item["filename_to_tensors"]?.array ?? []).map { pair in
                (pair[1]?.array ?? []).compactMap(\.string)
            }
            #expect(plan.map { $0.map(\.name) } == expected, "limit \(limit)")
            let directory = try Fixtures.temporaryDirectory("st-plan")
            defer { try? FileManager.default.removeItem(at: directory) }
            let writer = try SafetensorsShardedWriter(directory: directory.path, tensors: entries, maxShardByteCount: limit)
            #expect(writer.shards.map(\.fileName) == (item["filename_to_tensors"]?.array ?? []).compactMap { $0[0]?.string })
            #expect(writer.totalSize == item["total_size"]?.int)
            writer.discard()
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
        }
    }

    @Test("writes shards and an index that the reference reader and Python's json agree with, atomically")
    func writesShardedCheckpoint() throws {
        let directory = try Fixtures.temporaryDirectory("st-shard")
        defer { try? FileManager.default.removeItem(at: directory) }
        let writer = try SafetensorsShardedWriter(
            directory: directory.path, tensors: mixedEntries, maxShardByteCount: 64,
            indexMetadata: [JSONMember("total_parameters", 123)])
        #expect(writer.shards.count > 2)
        var contents: [String: [UInt8]] = [:]
        var seed: UInt32 = 7
        while let next = writer.nextTensor {
            let entry = mixedEntries.first { $0.name == next.name }!
            let data = bytes(for: entry, seed: seed)
            seed += 1
            contents[next.name] = data
            let half = data.count / 2
            try writer.write(Array(data[..<half]), for: next.name)
            try writer.write(Array(data[half...]), for: next.name)
        }
        // Nothing visible before finish: only hidden temporary files.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).allSatisfy { $0.hasPrefix(".") })
        try writer.finish()
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names == (writer.shards.map(\.fileName) + ["model.safetensors.index.json"]).sorted())

        let oracle = try JSONValue.parse(try runOracle([directory.path]))
        let indexBytes = try [UInt8](Data(contentsOf: directory.appendingPathComponent("model.safetensors.index.json")))
        #expect(String(decoding: indexBytes, as: UTF8.self) == oracle["index_as_transformers_writes_it"]?.string)
        #expect(oracle["index"]?["metadata"]?["total_size"]?.int == mixedEntries.reduce(0) { $0 + $1.byteCount! })
        #expect(oracle["index"]?["metadata"]?["total_parameters"]?.int == 123)
        let weightMap = try #require(oracle["index"]?["weight_map"]?.object)
        #expect(Set(weightMap.map(\.key)) == Set(mixedEntries.map(\.name)))

        let checkpoint = try SafetensorsCheckpoint(path: directory.path)
        let files = try #require(oracle["files"]?.object)
        for (shard, listing) in zip(checkpoint.shards, files) { expectMatchesOracleListing(shard, listing.value) }
        for member in weightMap {
            let record = try #require(checkpoint.tensor(named: member.key))
            #expect(URL(fileURLWithPath: checkpoint.shards[record.fileIndex].path).lastPathComponent == member.value.string)
            #expect(Array(checkpoint.data(for: record)) == contents[member.key], "bytes of \(member.key)")
        }
    }

    @Test("everything in one shard is written as model.safetensors without an index")
    func singleShardHasNoIndex() throws {
        let directory = try Fixtures.temporaryDirectory("st-shard1")
        defer { try? FileManager.default.removeItem(at: directory) }
        let entries = [SafetensorsEntry(name: "a", dtype: .f32, shape: [2]), SafetensorsEntry(name: "b", dtype: .u8, shape: [3])]
        let writer = try SafetensorsShardedWriter(directory: directory.path, tensors: entries)
        #expect(writer.indexFileName == nil)
        try writer.write([UInt8](repeating: 1, count: 8), for: "a")
        try writer.write([1, 2, 3], for: "b")
        try writer.finish()
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.safetensors"])
    }

    @Test("an unfinished sharded writer leaves the directory empty")
    func unfinishedShardedWriterLeavesNothing() throws {
        let directory = try Fixtures.temporaryDirectory("st-shard2")
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            let writer = try SafetensorsShardedWriter(directory: directory.path, tensors: mixedEntries, maxShardByteCount: 32)
            var count = 0
            while let next = writer.nextTensor, count < 5 {
                try writer.write(bytes(for: mixedEntries.first { $0.name == next.name }!, seed: 1), for: next.name)
                count += 1
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }
}
