import Foundation
@testable import Formats
import Testing
import TestSupport

/// Input checksums computed in the same pass as the reads, the SIGBUS guard around reads of mapped
/// input, and the manifest an output transaction writes at commit (formats/integrity.md,
/// formats/reliability.md).
@Suite("input integrity: guarded reads, in-pass digests, transaction manifests")
struct InputIntegrityTests {
    static func bytes(_ count: Int, seed: UInt64 = 7) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
    }

    @Test("a mapped file truncated under a guarded copy is a truncated error, not SIGBUS")
    func guardedCopySurvivesTruncation() throws {
        let scratch = try Fixtures.temporaryDirectory("guard-trunc")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let path = scratch.appendingPathComponent("shard.bin").path
        let size = 1 << 20
        try Data(Self.bytes(size)).write(to: URL(fileURLWithPath: path))
        let file = try MappedFile(uncompressedPath: path)
        #expect(file.isMapping)
        #expect(truncate(path, off_t(size / 4)) == 0)
        let target = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        defer { target.deallocate() }
        // The guard itself: pages past the new end fault; the copy stops there and reports how far it got.
        let copied = file.guardedCopyWithoutSizeCheck(0..<size, into: target)
        #expect(copied >= size / 4 - 65536 && copied <= size / 4, "copied \(copied) bytes of a file cut to \(size / 4)")
        // The API: a clear error naming the file and its new size.
        do {
            try file.copyGuarded(0..<size, into: target)
            Issue.record("the copy of a truncated mapping succeeded")
        } catch {
            #expect(error.code == .truncated)
            #expect(error.path == path)
            #expect(error.message.contains("shrank from \(size) to \(size / 4) bytes"))
        }
        // What the guarded copy got before the fault is the file's bytes.
        #expect(Array(UnsafeRawBufferPointer(start: target, count: copied)) == Array(Self.bytes(size).prefix(copied)))
    }

    @Test("a digest fed in file order hashes each byte once from the job's copies; out of order it fills gaps from the mapping")
    func digestInAndOutOfOrder() throws {
        let scratch = try Fixtures.temporaryDirectory("digest-order")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let path = scratch.appendingPathComponent("f.bin").path
        let content = Self.bytes(3 << 20 | 123)
        try Data(content).write(to: URL(fileURLWithPath: path))
        let expected = SHA256.hex(content)
        let file = try MappedFile(uncompressedPath: path)
        // Header (first 1000 bytes) skipped by the job, then three "tensors" in file order.
        let ranges = [1000..<500_000, 500_000..<2_000_000, 2_000_000..<content.count]
        let inOrder = InputDigest(file: file)
        for range in ranges {
            try content[range].withUnsafeBytes { try inOrder.consume($0, at: range.lowerBound) }
        }
        let entry = try inOrder.finish()
        #expect(entry.sha256 == expected && entry.bytes == content.count)
        #expect(inOrder.bytesHashedFromJob == content.count - 1000 && inOrder.bytesHashedFromMapping == 1000)

        let outOfOrder = InputDigest(file: file)
        for range in ranges.reversed() {
            try content[range].withUnsafeBytes { try outOfOrder.consume($0, at: range.lowerBound) }
        }
        #expect(try outOfOrder.finish().sha256 == expected)
        #expect(outOfOrder.bytesHashedFromJob == content.count - 2_000_000)
    }

    @Test("an input's sidecar, its manifest and a Hugging Face blob name give its expected checksum")
    func expectedChecksums() throws {
        let scratch = try Fixtures.temporaryDirectory("expected-sum")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let content = Self.bytes(5000)
        let digest = SHA256.hex(content)
        let plain = scratch.appendingPathComponent("a.gguf").path
        try Data(content).write(to: URL(fileURLWithPath: plain))
        #expect(try IntegrityManifest.expectedChecksum(forInput: plain) == nil)
        try Data("\(digest.uppercased())  a.gguf\n".utf8).write(to: URL(fileURLWithPath: plain + ".sha256"))
        #expect(try IntegrityManifest.expectedChecksum(forInput: plain)?.sha256 == digest)

        let manifestDirectory = scratch.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: manifestDirectory, withIntermediateDirectories: true)
        let shard = manifestDirectory.appendingPathComponent("model.safetensors").path
        try Data(content).write(to: URL(fileURLWithPath: shard))
        try IntegrityManifest(scheme: "fp8", files: [.init(name: "model.safetensors", bytes: 5000, sha256: digest)])
            .write(to: manifestDirectory.appendingPathComponent(IntegrityManifest.directoryFileName).path)
        let fromManifest = try #require(try IntegrityManifest.expectedChecksum(forInput: shard))
        #expect(fromManifest.sha256 == digest && fromManifest.bytes == 5000 && fromManifest.source == "quantize-manifest.json")

        // ~/.cache/huggingface/hub/models--org--name/{blobs/SHA256, snapshots/REV/FILE → ../../blobs/SHA256}
        let model = scratch.appendingPathComponent("models--org--name")
        try FileManager.default.createDirectory(at: model.appendingPathComponent("blobs"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: model.appendingPathComponent("snapshots/rev"), withIntermediateDirectories: true)
        try Data(content).write(to: model.appendingPathComponent("blobs/" + digest))
        let link = model.appendingPathComponent("snapshots/rev/model.safetensors").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "../../blobs/" + digest)
        #expect(try IntegrityManifest.expectedChecksum(forInput: link)?.source == "the Hugging Face cache's blob name")
        let entry = try InputDigest.checkedEntry(ofFileAt: link)
        #expect(entry.sha256 == digest)

        // A wrong sidecar: the error names the input and both digests.
        try Data("\(String(repeating: "0", count: 64))  a.gguf\n".utf8).write(to: URL(fileURLWithPath: plain + ".sha256"))
        do {
            _ = try InputDigest.checkedEntry(ofFileAt: plain)
            Issue.record("a mismatching sidecar passed")
        } catch {
            #expect(error.code == .checksumDiffers && error.path == plain)
            #expect(error.message.contains(digest) && error.message.contains("a.gguf.sha256"))
        }
    }

    @Test("a committed transaction carries a manifest of every staged file, hashed while written")
    func transactionWritesManifest() throws {
        let scratch = try Fixtures.temporaryDirectory("txn-manifest")
        defer { try? FileManager.default.removeItem(at: scratch) }
        // Directory output: files written through OutputFile, one renamed after its commit.
        let target = scratch.appendingPathComponent("out").path
        let transaction = try OutputTransaction(target: target, directory: true)
        let a = Self.bytes(10_000, seed: 1), b = Self.bytes(6 << 20, seed: 2)
        try transaction.write(a, named: "config.json")
        try OutputFile.write(b, to: transaction.path("shard.tmp"))
        #expect(rename(transaction.path("shard.tmp"), transaction.path("model.safetensors")) == 0)
        transaction.manifest = IntegrityManifest(scheme: "int4", options: ["group_size": "128"], files: [],
                                                 inputs: [.init(name: "in.safetensors", bytes: 1, sha256: SHA256.hex([1]))])
        try transaction.commit(.directory)
        let manifest = try IntegrityManifest.read(target + "/" + IntegrityManifest.directoryFileName)
        #expect(manifest.files == [.init(name: "config.json", bytes: a.count, sha256: SHA256.hex(a)),
                                   .init(name: "model.safetensors", bytes: b.count, sha256: SHA256.hex(b))])
        #expect(manifest.scheme == "int4" && manifest.toolVersion == IntegrityManifest.quantizeVersion && manifest.inputs.count == 1)
        #expect(try manifest.verify(relativeTo: target) == 2)

        // File output: the manifest is a companion listing the output and the other companions.
        let file = scratch.appendingPathComponent("m.gguf").path
        let single = try OutputTransaction(target: file)
        try single.write(b, named: "m.gguf")
        try single.writeCompanion(a, stagedName: "quantize-report.json", finalPath: file + ".quantize-report.json")
        single.manifest = IntegrityManifest(scheme: "q8_0", files: [])
        try single.commit(.file(named: "m.gguf"))
        let companion = try IntegrityManifest.read(file + IntegrityManifest.fileSuffix)
        #expect(companion.files.map(\.name) == ["m.gguf", "m.gguf.quantize-report.json"])
        #expect(companion.files[0].sha256 == SHA256.hex(b))
        #expect(try IntegrityManifest.verifyChecksums(of: file, files: [file]).count == 1)

        // A staged file that was not written through OutputFile cannot be listed: nothing is committed.
        let other = scratch.appendingPathComponent("bad").path
        let bad = try OutputTransaction(target: other, directory: true)
        try Data(a).write(to: URL(fileURLWithPath: bad.path("foreign.bin")))
        bad.manifest = IntegrityManifest(scheme: nil, files: [])
        #expect(throws: FormatError.self) { try bad.commit(.directory) }
        bad.discard()
        #expect(!FileManager.default.fileExists(atPath: other))
    }

    @Test("a manifest left without its output by an interrupted commit is removed by the next transaction")
    func orphanedManifestRemoved() throws {
        let scratch = try Fixtures.temporaryDirectory("txn-orphan")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let file = scratch.appendingPathComponent("m.gguf").path
        try Data("{}".utf8).write(to: URL(fileURLWithPath: file + IntegrityManifest.fileSuffix))
        let transaction = try OutputTransaction(target: file)
        #expect(transaction.notes.contains { $0.contains("a manifest left without its output") })
        #expect(!FileManager.default.fileExists(atPath: file + IntegrityManifest.fileSuffix))
        transaction.discard()
    }
}
