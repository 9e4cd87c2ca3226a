import CKernels
import Foundation
import Formats
import Testing
import TestSupport

/// Deterministic bytes: a mix of low-entropy (float-like) and random bytes, from a fixed seed.
private func patternBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E3779B97F4A7C15 | 1
    var bytes = [UInt8](repeating: 0, count: count)
    for index in 0..<count {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        // Every other byte drawn from a narrow range, as a float's exponent byte is.
        bytes[index] = index % 2 == 1 ? UInt8(0x3A + Int(state % 5)) : UInt8(truncatingIfNeeded: state >> 24)
    }
    return bytes
}

private func openingError(_ path: String) -> FormatError? {
    do throws(FormatError) {
        _ = try Checkpoint(path: path)
        return nil
    } catch {
        return error
    }
}

private func containerError(_ path: String) -> FormatError? {
    do throws(FormatError) {
        _ = try CompressedFile(path: path)
        return nil
    } catch {
        return error
    }
}

private func readError(_ checkpoint: Checkpoint, _ record: TensorRecord) -> FormatError? {
    do throws(FormatError) {
        _ = try checkpoint.readData(for: record)
        return nil
    } catch {
        return error
    }
}

private func readAll(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// Writes a safetensors file with the given tensors, each filled with pattern bytes.
private func writeSafetensors(_ path: String, _ entries: [SafetensorsEntry]) throws {
    let writer = try SafetensorsWriter(path: path, tensors: entries)
    for (number, tensor) in writer.tensors.enumerated() {
        try writer.write(patternBytes(tensor.byteCount, seed: UInt64(number + 1)), for: tensor.name)
    }
    try writer.finish()
}

/// Every dtype with an odd element count (even for F4, a multiple of 4 for the FP6 types), plus
/// empty and 0-rank tensors.
private var everyDTypeEntries: [SafetensorsEntry] {
    var entries: [SafetensorsEntry] = []
    for dtype in DType.allCases {
        let shape: [Int]
        switch dtype {
        case .f4: shape = [3, 38]
        case .f6E2M3, .f6E3M2: shape = [4, 29]
        default: shape = [7, 193]
        }
        entries.append(SafetensorsEntry(name: "t.\(dtype.rawValue)", dtype: dtype, shape: shape))
        entries.append(SafetensorsEntry(name: "empty.\(dtype.rawValue)", dtype: dtype, shape: [0, 5]))
    }
    entries.append(SafetensorsEntry(name: "scalar", dtype: .f32, shape: []))
    entries.append(SafetensorsEntry(name: "big.bf16", dtype: .bf16, shape: [301, 257]))
    return entries
}

@Suite("compressed container")
struct CompressedContainerTests {
    @Test("XXH64 equals the reference xxHash values")
    func xxh64Vectors() {
        // From the python `xxhash` 4.1.0 package (the reference C library), seed 0.
        let empty: [UInt8] = [], a = Array("a".utf8), abc = Array("abc".utf8)
        let long = (0..<3).flatMap { _ in (0..<256).map { UInt8($0) } } + Array("xyz12".utf8)
        #expect(empty.withUnsafeBytes { CompressedFormat.checksum($0) } == 0xEF46DB3751D8E999)
        #expect(a.withUnsafeBytes { CompressedFormat.checksum($0) } == 0xD24EC4F1A98C6E5B)
        #expect(abc.withUnsafeBytes { CompressedFormat.checksum($0) } == 0x44BC2CF5AD770999)
        #expect(long.withUnsafeBytes { CompressedFormat.checksum($0) } == 0x9B7D50C047818B1B)
    }

    @Test("byte planes split and join back for every width, with and without the sign rotation")
    func planesRoundTrip() {
        for width in [2, 4, 8] {
            for rotate in [0, 1] {
                let count = 37
                let source = patternBytes(count * width, seed: UInt64(width * 10 + rotate))
                var planes = [UInt8](repeating: 0, count: source.count)
                var back = [UInt8](repeating: 0, count: source.count)
                planes.withUnsafeMutableBufferPointer { p in
                    qk_planes_split(source, count, Int32(width), Int32(rotate), p.baseAddress)
                }
                if rotate == 0 {
                    // Plane k holds byte k of every element.
                    #expect(planes[count] == source[1])
                }
                planes.withUnsafeBufferPointer { p in
                    var pointers: [UnsafePointer<UInt8>?] = (0..<width).map { p.baseAddress! + $0 * count }
                    back.withUnsafeMutableBytes { qk_planes_join(&pointers, count, Int32(width), Int32(rotate), $0.baseAddress) }
                }
                #expect(back == source, "width \(width) rotate \(rotate)")
            }
        }
    }

    @Test("every dtype, empty tensors and odd sizes round-trip byte for byte, through several chunks each")
    func everyDTypeRoundTrip() throws {
        let directory = try Fixtures.temporaryDirectory("compress-dtypes")
        defer { try? FileManager.default.removeItem(at: directory) }
        let original = directory.appendingPathComponent("all.safetensors").path
        try writeSafetensors(original, everyDTypeEntries)
        let compressed = original + ".bpz"
        // 72-byte chunks: every non-empty tensor spans several, the last one shorter.
        let summary = try CompressedContainer.compressFile(original, to: compressed, chunkByteCount: 72)
        #expect(summary.outputByteCount == (try readAll(compressed)).count)
        let container = try CompressedFile(path: compressed)
        #expect(container.originalFormat == .safetensors)
        #expect(container.chunkCount > 2 * DType.allCases.count)
        #expect(container.regions.first { $0.name == "t.BF16" }?.layout == PlaneLayout(transform: .signRotatedPlanes, width: 2))
        #expect(container.regions.first { $0.name == "t.I32" }?.layout == PlaneLayout(transform: .planes, width: 4))
        #expect(container.regions.first { $0.name == "t.F8_E4M3" }?.layout == .bytes)

        let restored = directory.appendingPathComponent("restored.safetensors").path
        _ = try CompressedContainer.decompressFile(compressed, to: restored)
        #expect(try readAll(restored) == (try readAll(original)), "decompressed bytes equal the original")

        // Read transparently: the same tensors and bytes as the plain file.
        let plain = try SafetensorsFile(path: original)
        let transparent = try SafetensorsFile(path: compressed)
        #expect(transparent.tensors == plain.tensors)
        #expect(transparent.file.compressed != nil)
        for tensor in plain.tensors {
            #expect(Array(try transparent.readData(for: tensor)) == Array(plain.data(for: tensor)), "bytes of \(tensor.name)")
        }
    }

    @Test("a sharded model directory, a GGUF file and the dtype fixture round-trip; every file byte-identical")
    func fixturesRoundTrip() throws {
        let directory = try Fixtures.temporaryDirectory("compress-fixtures")
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = Fixtures.path("tiny-llama")
        let compressedModel = directory.appendingPathComponent("tiny-llama.bpz").path
        let result = try CompressedContainer.compress(model, to: compressedModel)
        #expect(result.summary.weightFileCount == 2)
        #expect(result.summary.outputByteCount < result.summary.inputByteCount)
        let names = try FileManager.default.contentsOfDirectory(atPath: compressedModel).sorted()
        #expect(names.contains("model-00001-of-00002.safetensors.bpz"))
        #expect(names.contains("model.safetensors.index.json"))
        let restoredModel = directory.appendingPathComponent("tiny-llama").path
        _ = try CompressedContainer.decompress(compressedModel, to: restoredModel)
        for name in try FileManager.default.contentsOfDirectory(atPath: model) where !name.hasPrefix(".") {
            #expect(try readAll((restoredModel as NSString).appendingPathComponent(name)) == (try readAll((model as NSString).appendingPathComponent(name))),
                    "\(name) restored byte for byte")
        }
        // The compressed directory opens as a checkpoint with the same tensors and bytes.
        let plain = try Checkpoint(path: model)
        let transparent = try Checkpoint(path: compressedModel)
        #expect(transparent.isCompressed && !plain.isCompressed)
        #expect(transparent.tensors == plain.tensors)
        #expect(transparent.architecture == plain.architecture)
        for tensor in plain.tensors {
            #expect(Array(try transparent.readData(for: tensor)) == Array(plain.data(for: tensor)), "bytes of \(tensor.name)")
        }

        for fixture in ["tiny-llama.gguf", "safetensors/all_dtypes.safetensors"] {
            let source = Fixtures.path(fixture)
            let packed = directory.appendingPathComponent((fixture as NSString).lastPathComponent + ".bpz").path
            _ = try CompressedContainer.compress(source, to: packed)
            let unpacked = directory.appendingPathComponent("back-" + (fixture as NSString).lastPathComponent).path
            _ = try CompressedContainer.decompress(packed, to: unpacked)
            #expect(try readAll(unpacked) == (try readAll(source)), "\(fixture) restored byte for byte")
            let a = try Checkpoint(path: source), b = try Checkpoint(path: packed)
            #expect(a.format == b.format)
            #expect(a.tensors == b.tensors)
            for tensor in a.tensors {
                #expect(Array(try b.readData(for: tensor)) == Array(a.data(for: tensor)), "\(fixture): bytes of \(tensor.name)")
            }
        }
    }

    @Test("reading one tensor decodes only its chunks, and releasing it gives them back")
    func oneTensorTouchesOnlyItsChunks() throws {
        let directory = try Fixtures.temporaryDirectory("compress-one")
        defer { try? FileManager.default.removeItem(at: directory) }
        let original = directory.appendingPathComponent("m.safetensors").path
        try writeSafetensors(original, (0..<6).map { SafetensorsEntry(name: "w\($0)", dtype: .bf16, shape: [64, 1024]) })
        _ = try CompressedContainer.compressFile(original, to: original + ".bpz", chunkByteCount: 16 << 10)
        let checkpoint = try Checkpoint(path: original + ".bpz")
        let container = try #require(checkpoint.mappedFile(0).compressed)
        #expect(container.residentChunkCount == 0, "opening decodes nothing")
        let record = try #require(checkpoint.tensors.first { $0.name == "w3" })
        _ = try checkpoint.readData(for: record)
        let region = try #require(container.regions.first { $0.name == "w3" })
        #expect(region.chunkCount == 8)
        #expect(container.residentChunkCount == region.chunkCount, "only w3's chunks are decoded")
        checkpoint.mappedFile(0).advise(record.fileOffset..<(record.fileOffset + record.byteCount), willNeed: false)
        #expect(container.residentChunkCount == 0)
        // Decoded again on the next read, with the same bytes.
        let plain = try Checkpoint(path: original)
        #expect(Array(try checkpoint.readData(for: record)) == Array(plain.data(for: record)))
    }

    @Test("a corrupted chunk is reported by its checksum, naming the tensor")
    func corruptedChunk() throws {
        let directory = try Fixtures.temporaryDirectory("compress-corrupt")
        defer { try? FileManager.default.removeItem(at: directory) }
        let original = directory.appendingPathComponent("m.safetensors").path
        try writeSafetensors(original, [SafetensorsEntry(name: "a", dtype: .f32, shape: [256]),
                                        SafetensorsEntry(name: "layer.weight", dtype: .bf16, shape: [64, 64])])
        let compressed = original + ".bpz"
        _ = try CompressedContainer.compressFile(original, to: compressed, chunkByteCount: 2048)
        let container = try CompressedFile(path: compressed)
        let region = try #require(container.regions.first { $0.name == "layer.weight" })
        let stored = container.storedRange(ofChunk: region.firstChunk + 1)
        var bytes = try readAll(compressed)
        bytes[stored.lowerBound + stored.count / 2] ^= 0x40
        let damaged = directory.appendingPathComponent("damaged.safetensors.bpz").path
        try Data(bytes).write(to: URL(fileURLWithPath: damaged))

        let checkpoint = try Checkpoint(path: damaged)  // headers are intact: opening works
        let record = try #require(checkpoint.tensors.first { $0.name == "layer.weight" })
        #expect(throws: FormatError.self) { _ = try checkpoint.readData(for: record) }
        let error = try #require(readError(checkpoint, record))
        #expect(error.code == .checksumMismatch)
        #expect(error.tensor == "layer.weight")
        #expect(error.offset == stored.lowerBound)
        #expect(error.description.contains("chunk 2 of"))
        // The other tensor is still readable.
        let other = try #require(checkpoint.tensors.first { $0.name == "a" })
        let plain = try Checkpoint(path: original)
        #expect(Array(try checkpoint.readData(for: other)) == Array(plain.data(for: other)))
        // The non-throwing accessor poisons the bytes (NaN in every float type) and keeps the error.
        let view = checkpoint.data(for: record)
        #expect(view.allSatisfy { $0 == 0xFF })
        #expect(checkpoint.mappedFile(0).lastLoadError?.code == .checksumMismatch)
        // decompress refuses too and leaves nothing behind.
        let output = directory.appendingPathComponent("out.safetensors").path
        #expect(throws: FormatError.self) { _ = try CompressedContainer.decompressFile(damaged, to: output) }
        #expect(!FileManager.default.fileExists(atPath: output))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).allSatisfy { !$0.hasPrefix(".") }, "no temporary file left")
    }

    @Test("a truncated container is a clear truncation error wherever it is cut")
    func truncatedContainer() throws {
        let directory = try Fixtures.temporaryDirectory("compress-truncated")
        defer { try? FileManager.default.removeItem(at: directory) }
        let packed = directory.appendingPathComponent("t.safetensors.bpz").path
        _ = try CompressedContainer.compressFile(Fixtures.path("safetensors/all_dtypes.safetensors"), to: packed)
        let bytes = try readAll(packed)
        for cut in [4, 30, 60, bytes.count / 2, bytes.count - 40, bytes.count - 1] {
            let path = directory.appendingPathComponent("cut-\(cut).safetensors.bpz").path
            try Data(bytes[0..<cut]).write(to: URL(fileURLWithPath: path))
            guard let error = openingError(path) else {
                Issue.record("a container cut at \(cut) of \(bytes.count) bytes opened")
                continue
            }
            #expect(error.code == .truncated, "cut at \(cut): \(error)")
            #expect(error.description.contains("truncated"))
        }
    }

    /// Rewrites the index of a container (keeping its checksum valid) so that only the values
    /// under test are wrong.
    private func withIndex(_ bytes: [UInt8], _ change: (inout [UInt8]) -> Void) -> [UInt8] {
        var bytes = bytes
        let footer = bytes.count - 32
        func u64(_ at: Int) -> Int { bytes[at..<(at + 8)].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) } }
        let offset = u64(footer), count = u64(footer + 8)
        var index = Array(bytes[offset..<(offset + count)])
        change(&index)
        let sum = index.withUnsafeBytes { CompressedFormat.checksum($0) }
        var result = Array(bytes[0..<offset]) + index
        var tail = [UInt8]()
        for value in [UInt64(offset), UInt64(index.count), sum] { withUnsafeBytes(of: value.littleEndian) { tail += $0 } }
        result += tail + CompressedFormat.footerMagic
        bytes = result
        return bytes
    }

    @Test("hostile headers (huge sizes and counts) fail with invalidContainer before any allocation")
    func hostileHeaders() throws {
        let directory = try Fixtures.temporaryDirectory("compress-hostile")
        defer { try? FileManager.default.removeItem(at: directory) }
        let packed = directory.appendingPathComponent("h.safetensors.bpz").path
        _ = try CompressedContainer.compressFile(Fixtures.path("safetensors/all_dtypes.safetensors"), to: packed)
        let bytes = try readAll(packed)
        func put(_ value: UInt64, _ bytes: inout [UInt8], at: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (k, b) in $0.enumerated() { bytes[at + k] = b } }
        }
        var cases: [(String, [UInt8])] = []
        cases.append(("2^62 regions", withIndex(bytes) { put(1 << 62, &$0, at: 0) }))
        cases.append(("2^62 chunks", withIndex(bytes) { put(1 << 62, &$0, at: 8) }))
        cases.append(("a region of 2^60 bytes", withIndex(bytes) { put(1 << 60, &$0, at: 24) }))
        cases.append(("a 4 GiB chunk size", withIndex(bytes) { index in
            index[32] = 0xFF; index[33] = 0xFF; index[34] = 0xFF; index[35] = 0xFF
        }))
        var huge = bytes
        put(1 << 60, &huge, at: 16)  // original size
        let headerSum = huge.withUnsafeBytes { CompressedFormat.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<40])) }
        put(headerSum, &huge, at: 40)
        cases.append(("an original of 2^60 bytes", huge))
        var footer = bytes
        put(UInt64.max - 5, &footer, at: bytes.count - 32)
        cases.append(("an index offset near 2^64", footer))
        for (label, data) in cases {
            let path = directory.appendingPathComponent("case.safetensors.bpz").path
            try Data(data).write(to: URL(fileURLWithPath: path))
            guard let error = containerError(path) else {
                Issue.record("\(label): opened")
                continue
            }
            #expect(error.code == .invalidContainer, "\(label): \(error)")
        }
    }

    @Test("outputs are atomic and inputs untouched: existing outputs refused, failures leave nothing")
    func atomicOutputs() throws {
        let directory = try Fixtures.temporaryDirectory("compress-atomic")
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = Fixtures.path("safetensors/all_dtypes.safetensors")
        let before = try readAll(source)
        let packed = directory.appendingPathComponent("a.safetensors.bpz").path
        _ = try CompressedContainer.compressFile(source, to: packed)
        #expect(try readAll(source) == before, "the input is unchanged")
        #expect(throws: FormatError.self) { _ = try CompressedContainer.compressFile(source, to: packed) }
        #expect(throws: FormatError.self) { _ = try CompressedContainer.compressFile(packed, to: packed + ".again") }
        // Compressing a file that is not a weight file fails and leaves no output.
        let text = directory.appendingPathComponent("notes.safetensors").path
        try Data("hello, not a safetensors file".utf8).write(to: URL(fileURLWithPath: text))
        #expect(throws: FormatError.self) { _ = try CompressedContainer.compressFile(text, to: text + ".bpz") }
        #expect(!FileManager.default.fileExists(atPath: text + ".bpz"))
        // A directory whose second file is bad leaves no output directory.
        let model = directory.appendingPathComponent("model").path
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: false)
        try Data(before).write(to: URL(fileURLWithPath: model + "/a.safetensors"))
        try Data("{}".utf8).write(to: URL(fileURLWithPath: model + "/b.safetensors"))
        #expect(throws: FormatError.self) { _ = try CompressedContainer.compress(model, to: model + ".bpz") }
        #expect(!FileManager.default.fileExists(atPath: model + ".bpz"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).allSatisfy { !$0.hasPrefix(".") }, "no staging left")
    }
}
