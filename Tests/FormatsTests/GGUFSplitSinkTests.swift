import Foundation
import Testing
import TestSupport
@testable import Formats

/// ``GGUFSplitSink`` against the rules of llama.cpp's tools/gguf-split/gguf-split.cpp (`split_strategy`):
/// sizes padded to 32, a new shard when the next tensor would pass the limit, every N tensors in
/// tensor mode, all metadata in the first shard, `split.no`/`split.count` (u16) and
/// `split.tensors.count` (i32) appended to every shard, `llama_split_path`'s `%s-%05d-of-%05d.gguf`.
@Suite("GGUF split outputs (gguf-split's layout)")
struct GGUFSplitSinkTests {
    /// Five F32 tensors of 40, 160, 32, 400 and 12 bytes (padded: 64, 160, 32, 400, 32).
    static let tensors: [(GGUFWriter.Tensor, [Float])] = [10, 40, 8, 100, 3].enumerated().map { index, count in
        (GGUFWriter.Tensor(name: "t\(index)", type: .f32, shape: [count]), (0..<count).map { Float(index * 1000 + $0) * 0.5 })
    }
    static let metadata: [(key: String, value: GGUFValue)] = [("general.architecture", .string("llama")), ("general.name", .string("split test"))]

    func write(maxBytes: Int?, maxTensors: Int?, in scratch: URL) throws -> GGUFSplitSink {
        let target = scratch.appendingPathComponent("out.gguf").path
        let sink = try GGUFSplitSink(target: target, metadata: Self.metadata, tensors: Self.tensors.map(\.0), fileType: 0,
                                     quantizationVersion: 2, maxBytes: maxBytes, maxTensors: maxTensors)
        for (tensor, values) in Self.tensors { try values.withUnsafeBytes { try sink.write($0, for: tensor.name) } }
        _ = try sink.finishTensors()
        #expect(!FileManager.default.fileExists(atPath: sink.shardPaths[0]), "nothing in place before commit")
        try sink.commit()
        return sink
    }

    func check(_ sink: GGUFSplitSink, expected groups: [[String]]) throws {
        #expect(sink.shards.map { $0.map(\.name) } == groups)
        let count = groups.count
        for (index, path) in sink.shardPaths.enumerated() {
            #expect(URL(fileURLWithPath: path).lastPathComponent == String(format: "out-%05d-of-%05d.gguf", index + 1, count))
            let file = try GGUFFile(path: path)
            let keys = file.metadata.map(\.key)
            let split = Array(file.metadata.suffix(3))
            #expect(split.map(\.key) == ["split.no", "split.count", "split.tensors.count"])
            #expect(split.map(\.value) == [.uint16(UInt16(index)), .uint16(UInt16(count)), .int32(Int32(Self.tensors.count))])
            if index == 0 {
                #expect(keys == ["general.architecture", "general.name", "general.quantization_version", "general.file_type",
                                 "split.no", "split.count", "split.tensors.count"])
            } else {
                #expect(keys.count == 3, "only the split keys after the first shard: \(keys)")
            }
            #expect(file.tensors.map(\.name) == groups[index])
            for tensor in file.tensors {
                let values = try #require(Self.tensors.first { $0.0.name == tensor.name }?.1)
                #expect(Array(try file.readData(for: tensor)) == values.withUnsafeBytes { Array($0) }, "\(tensor.name)")
            }
        }
    }

    @Test("--split-max-size: a new shard when the next padded tensor would pass the limit; a larger tensor gets a shard of its own")
    func bySize() throws {
        let scratch = try Fixtures.temporaryDirectory("gguf-split-size")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let sink = try write(maxBytes: 200, maxTensors: nil, in: scratch)
        try check(sink, expected: [["t0"], ["t1", "t2"], ["t3"], ["t4"]])
        let left = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.hasPrefix(".") && !$0.hasSuffix(".lock") }
        #expect(left.isEmpty, "no staging left: \(left)")
    }

    @Test("--split-max-tensors: every N tensors")
    func byCount() throws {
        let scratch = try Fixtures.temporaryDirectory("gguf-split-count")
        defer { try? FileManager.default.removeItem(at: scratch) }
        try check(try write(maxBytes: nil, maxTensors: 2, in: scratch), expected: [["t0", "t1"], ["t2", "t3"], ["t4"]])
    }

    @Test("one shard still gets gguf-split's name and keys")
    func single() throws {
        let scratch = try Fixtures.temporaryDirectory("gguf-split-one")
        defer { try? FileManager.default.removeItem(at: scratch) }
        try check(try write(maxBytes: 1 << 20, maxTensors: nil, in: scratch), expected: [["t0", "t1", "t2", "t3", "t4"]])
    }

    @Test("a first tensor above the limit is refused, as gguf-split refuses an empty shard")
    func emptyShardRefused() throws {
        let scratch = try Fixtures.temporaryDirectory("gguf-split-empty")
        defer { try? FileManager.default.removeItem(at: scratch) }
        #expect(throws: FormatError.self) {
            _ = try GGUFSplitSink(target: scratch.appendingPathComponent("out.gguf").path, metadata: Self.metadata,
                                  tensors: Self.tensors.map(\.0), maxBytes: 32, maxTensors: nil)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { !$0.hasSuffix(".lock") }.isEmpty)
    }
}
