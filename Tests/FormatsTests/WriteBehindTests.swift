import Foundation
@testable import Formats
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The write-behind output (``OutputFile`` with ``WriteBehind``) and the read-ahead input digest
/// (``ReadAheadDigest``): bytes and digests equal to a plain write and a one-shot hash whatever
/// the pieces, errors met on the background threads surfacing on the caller's, nothing left
/// behind (formats/integrity.md).
@Suite("pipelined I/O: write-behind outputs, read-ahead input digests")
struct WriteBehindTests {
    static func bytes(_ count: Int, seed: UInt64 = 11) -> [UInt8] {
        var state = seed
        var out = [UInt8](repeating: 0, count: count)
        for i in 0..<count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            out[i] = UInt8(truncatingIfNeeded: state >> 33)
        }
        return out
    }

    @Test("an output of several chunks, written in pieces of every size, has the bytes and SHA-256 of a plain write",
          arguments: [1000, OutputFile.chunkBytes, 3 * OutputFile.chunkBytes + 12_345])
    func writeBehindKeepsBytesAndDigest(_ size: Int) throws {
        let scratch = try Fixtures.temporaryDirectory("write-behind")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let path = scratch.appendingPathComponent("out.bin").path
        let content = Self.bytes(size)
        let file = try OutputFile(path: path)
        // Pieces: tiny, odd, one larger than a chunk, a flush in the middle, zeros, the rest.
        var offset = 0
        let cuts = [1, 7, 4093, OutputFile.chunkBytes + 5, 65_536]
        try content.withUnsafeBytes { raw in
            for (index, cut) in cuts.enumerated() where offset < size {
                let end = min(size, offset + cut)
                try file.write(UnsafeRawBufferPointer(rebasing: raw[offset..<end]))
                offset = end
                if index == 2 { try file.flush() }
            }
            try file.write(UnsafeRawBufferPointer(rebasing: raw[offset...]))
        }
        try file.writeZeros(10)
        #expect(file.position == size + 10)
        try file.commit()
        let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let expected = content + [UInt8](repeating: 0, count: 10)
        #expect(written.count == expected.count)
        #expect(written == expected, "the file differs from the bytes written")
        #expect(file.sha256 == SHA256.hex(expected))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path) == ["out.bin"])
    }

    @Test("an output released without commit leaves nothing, even with chunks in flight")
    func discardWithChunksInFlight() throws {
        let scratch = try Fixtures.temporaryDirectory("write-behind-discard")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let path = scratch.appendingPathComponent("out.bin").path
        do {
            let file = try OutputFile(path: path)
            try Self.bytes(5 * OutputFile.chunkBytes).withUnsafeBytes { try file.write($0) }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path) == [])
    }

    static let canMount: Bool = {
        guard geteuid() == 0 else { return false }
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("quantize-wb-mount-probe-\(getpid())")
        try? FileManager.default.createDirectory(at: probe, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: probe) }
        guard mount("tmpfs", probe.path, "tmpfs", 0, "size=64k") == 0 else { return false }
        umount(probe.path)
        return true
    }()

    @Test("a disk that fills behind the writer (a 6 MB tmpfs) is a clear error on the caller's thread, and the file is removed",
          .enabled(if: canMount))
    func fullDiskBehindTheWriter() throws {
        let mountPoint = try Fixtures.temporaryDirectory("write-behind-full")
        defer { umount(mountPoint.path); try? FileManager.default.removeItem(at: mountPoint) }
        #expect(mount("tmpfs", mountPoint.path, "tmpfs", 0, "size=6m") == 0)
        let path = mountPoint.appendingPathComponent("out.bin").path
        let content = Self.bytes(OutputFile.chunkBytes)
        var failure: FormatError? = nil
        do {
            let file = try OutputFile(path: path)
            do throws(FormatError) {
                for _ in 0..<6 {
                    var thrown: FormatError? = nil
                    content.withUnsafeBytes { raw in
                        do throws(FormatError) { try file.write(raw) } catch { thrown = error }
                    }
                    if let thrown { throw thrown }
                }
                try file.commit()
            } catch {
                failure = error
            }
        }
        let error = try #require(failure, "writing 24 MiB to a 6 MB filesystem succeeded")
        #expect(error.code == .writeFailed)
        #expect(error.description.contains("No space left on device") && error.description.contains("free disk space and run again"), "\(error)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: mountPoint.path) == [])
    }

    @Test("the read-ahead digest of a file equals its one-shot SHA-256, bounded by the job's progress until finish")
    func readAheadDigestMatches() throws {
        let scratch = try Fixtures.temporaryDirectory("read-ahead")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let path = scratch.appendingPathComponent("in.bin").path
        let lead = 2 * ReadAheadDigest.readBytes
        let content = Self.bytes(lead + 3 * ReadAheadDigest.readBytes + 777)
        try Data(content).write(to: URL(fileURLWithPath: path))
        let digest = try ReadAheadDigest(path: path, byteCount: content.count, lead: lead)
        // Without the job asking for anything it reads `lead` bytes and waits.
        let deadline = Date().addingTimeInterval(20)
        while digest.bytesHashed < lead, Date() < deadline { usleep(10_000) }
        usleep(50_000)
        #expect(digest.bytesHashed == lead)
        digest.allow(through: 100)
        let entry = try digest.finish()
        #expect(entry.sha256 == SHA256.hex(content) && entry.bytes == content.count && entry.name == path)
        #expect(digest.bytesHashed == content.count)
    }

    @Test("a file that shrinks before its digest reaches the end is a truncated error")
    func readAheadDigestTruncated() throws {
        let scratch = try Fixtures.temporaryDirectory("read-ahead-trunc")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let path = scratch.appendingPathComponent("in.bin").path
        let lead = 2 * ReadAheadDigest.readBytes
        let size = lead + 2 * ReadAheadDigest.readBytes
        try Data(Self.bytes(size)).write(to: URL(fileURLWithPath: path))
        let digest = try ReadAheadDigest(path: path, byteCount: size, lead: lead)
        // The digest stops at `lead` (the job has asked for nothing); cut the file below its end.
        #expect(truncate(path, off_t(lead + 1000)) == 0)
        #expect(throws: FormatError.self) { try digest.finish() }
        do {
            _ = try digest.finish()
        } catch {
            #expect(error.code == .truncated && error.path == path, "\(error)")
        }
    }
}
