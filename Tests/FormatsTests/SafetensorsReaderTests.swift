import Foundation
import Testing
import TestSupport
@testable import Formats

@Suite("Safetensors reader")
struct SafetensorsReaderTests {
    @Test("reads every dtype, 0-rank and zero-size tensors exactly as the reference reader lists them")
    func readsAllDTypes() throws {
        let file = try SafetensorsFile(path: Fixtures.path("safetensors/all_dtypes.safetensors"))
        let listing = try JSONValue.parse(contentsOf: Fixtures.path("safetensors/all_dtypes.expected.json"))
        expectMatchesOracleListing(file, listing)
        let dtypes = Set(file.tensors.map(\.dtype))
        let expected: Set<DType> = [.f64, .f32, .f16, .bf16, .f8E4M3, .f8E5M2, .f8E4M3FNUZ, .f8E5M2FNUZ, .f8E8M0,
                                    .i8, .u8, .i16, .u16, .i32, .u32, .i64, .u64, .bool, .c64, .f4]
        #expect(dtypes == expected)
        let scalar = try #require(file.tensor(named: "scalar"))
        #expect(scalar.shape == [] && scalar.elementCount == 1 && scalar.byteCount == 4)
        let empty = try #require(file.tensor(named: "empty"))
        #expect(empty.shape == [0, 4] && empty.elementCount == 0 && empty.byteCount == 0)
        let f4 = try #require(file.tensor(named: "f4"))
        #expect(f4.shape == [4, 8] && f4.byteCount == 16)
        #expect(file.tensor(named: "weird \"name\" \\ é/€") != nil)
        #expect(file.dataStart == 8 + file.headerByteCount)
        #expect(file.dataStart + file.tensors.last!.dataOffsets.upperBound == file.file.count)
    }

    @Test("reads hand-written F6_E2M3, F6_E3M2 and F4 tensors with sizes in bits")
    func readsSubByteTypes() throws {
        let file = try SafetensorsFile(path: Fixtures.path("safetensors/subbyte.safetensors"))
        let listing = try JSONValue.parse(contentsOf: Fixtures.path("safetensors/subbyte.expected.json"))
        expectMatchesOracleListing(file, listing)
        #expect(file.tensor(named: "f6_e2m3")?.byteCount == 3)
        #expect(file.tensor(named: "f6_e3m2")?.byteCount == 6)
        #expect(file.metadata == ["format": "pt", "source": "hand-written"])
    }

    @Test("records carry absolute file offsets that point at the tensor bytes")
    func recordsUseAbsoluteOffsets() throws {
        let file = try SafetensorsFile(path: Fixtures.path("safetensors/all_dtypes.safetensors"))
        let records = file.records(fileIndex: 3)
        #expect(records.count == file.tensors.count)
        for (record, tensor) in zip(records, file.tensors) {
            #expect(record.fileIndex == 3)
            #expect(record.fileOffset == file.dataStart + tensor.dataOffsets.lowerBound)
            #expect(record.type == .dtype(tensor.dtype))
            let direct = UnsafeRawBufferPointer(rebasing: file.file.bytes[record.fileOffset..<(record.fileOffset + record.byteCount)])
            #expect(direct.baseAddress == file.data(for: tensor).baseAddress)
        }
    }

    @Test("accepts leading and trailing JSON whitespace around the header, as the Rust reader does")
    func acceptsWhitespacePaddedHeader() throws {
        let directory = try Fixtures.temporaryDirectory("st-ws")
        defer { try? FileManager.default.removeItem(at: directory) }
        let json = Array(" \n\t{\"x\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}\r\n  ".utf8)
        var bytes: [UInt8] = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) }
        bytes += json + [7, 9]
        let path = directory.appendingPathComponent("ws.safetensors").path
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let file = try SafetensorsFile(path: path)
        #expect(file.tensors.map(\.name) == ["x"])
        #expect(Array(file.data(for: file.tensors[0])) == [7, 9])
        #expect(file.metadata == nil)
    }
}

extension SafetensorsReaderTests {
    @Test("sorts entries listed out of offset order, and reads unusual but valid entries (escapes, extra keys, spacing)")
    func readsUnusualValidHeaders() throws {
        let directory = try Fixtures.temporaryDirectory("st-odd")
        defer { try? FileManager.default.removeItem(at: directory) }
        let json = #"{"z" : { "data_offsets" : [ 4 , 6 ], "shape": [1], "dtype": "I16"}, "\u0061\n": {"dtype":"F32","shape":[],"data_offsets":[0,4],"extra":{"k":[1.5]}}, "e":{"dtype":"U8","shape":[0],"data_offsets":[6,6]}, "__metadata__": {"x": "\u00e9"}}"#
        var bytes: [UInt8] = withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { Array($0) }
        bytes += Array(json.utf8) + [0, 0, 0x80, 0x3f, 5, 0]
        let path = directory.appendingPathComponent("odd.safetensors").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let file = try SafetensorsFile(path: path)
        #expect(file.tensors.map(\.name) == ["a\n", "z", "e"])
        #expect(file.tensors.map(\.dataOffsets) == [0..<4, 4..<6, 6..<6])
        #expect(file.tensor(named: "z")?.dtype == .i16)
        #expect(file.tensor(named: "a\n")?.shape == [])
        #expect(file.tensor(named: "missing") == nil)
        #expect(file.metadata == ["x": "é"])
        #expect(Array(file.data(for: try #require(file.tensor(named: "z")))) == [5, 0])
    }
}

@Suite("Sharded safetensors checkpoints")
struct SafetensorsCheckpointTests {
    @Test("opens a 3-shard checkpoint from its directory or index and matches the oracle listing")
    func opensShardedCheckpoint() throws {
        let expected = try JSONValue.parse(contentsOf: Fixtures.path("safetensors/sharded.expected.json"))
        for path in [Fixtures.path("safetensors/sharded"), Fixtures.path("safetensors/sharded/model.safetensors.index.json")] {
            let checkpoint = try SafetensorsCheckpoint(path: path)
            let files = try #require(expected["files"]?.object)
            #expect(checkpoint.shards.map { URL(fileURLWithPath: $0.path).lastPathComponent } == files.map(\.key))
            for (shard, listing) in zip(checkpoint.shards, files) { expectMatchesOracleListing(shard, listing.value) }
            #expect(checkpoint.indexMetadata?["total_size"]?.int == expected["index"]?["metadata"]?["total_size"]?.int)
            #expect(checkpoint.totalTensorByteCount == expected["index"]?["metadata"]?["total_size"]?.int)
            let weightMap = try #require(expected["index"]?["weight_map"]?.object)
            #expect(checkpoint.tensors.count == weightMap.count)
            for member in weightMap {
                let record = try #require(checkpoint.tensor(named: member.key))
                #expect(URL(fileURLWithPath: checkpoint.shards[record.fileIndex].path).lastPathComponent == member.value.string)
                let listing = files.first { $0.key == member.value.string }?.value["tensors"]?.array ?? []
                let sha = listing.first { $0["name"]?.string == member.key }?["sha256"]?.string
                #expect(SHA256.hex(checkpoint.data(for: record)) == sha, "bytes of \(member.key)")
            }
            // Merged order: by file, then by data offset.
            let keys = checkpoint.tensors.map { [$0.fileIndex, $0.fileOffset] }
            #expect(keys == keys.sorted { $0.lexicographicallyPrecedes($1) })
        }
    }

    @Test("opens a single .safetensors file or a directory without index as a checkpoint")
    func opensUnindexedCheckpoints() throws {
        let single = try SafetensorsCheckpoint(path: Fixtures.path("safetensors/all_dtypes.safetensors"))
        #expect(single.shards.count == 1 && single.indexPath == nil)
        #expect(single.tensors.count == single.shards[0].tensors.count)
        let directory = try Fixtures.temporaryDirectory("st-dir")
        defer { try? FileManager.default.removeItem(at: directory) }
        // The sharded fixture's files without their index: every .safetensors file, sorted.
        let names = ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"]
        for name in names.reversed() {
            try FileManager.default.copyItem(atPath: Fixtures.path("safetensors/sharded/\(name)"),
                                             toPath: directory.appendingPathComponent(name).path)
        }
        let all = try SafetensorsCheckpoint(path: directory.path)
        #expect(all.indexPath == nil && all.indexMetadata == nil)
        #expect(all.shards.map { URL(fileURLWithPath: $0.path).lastPathComponent } == names)
        let indexed = try SafetensorsCheckpoint(path: Fixtures.path("safetensors/sharded"))
        #expect(all.tensors.map(\.name) == indexed.tensors.map(\.name))
    }
}
