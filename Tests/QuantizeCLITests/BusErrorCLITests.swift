import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A mapped input truncated by another program while a command reads it outside the quantize job's
/// guarded copies (here: the whole-file SHA-256 of `inspect --verify-checksums`, and `compress`):
/// one line naming the file, exit status 2, no staging folder left — never a bare "Bus error".
@Suite("bus errors: an input truncated while it is read")
struct BusErrorCLITests {
    /// A safetensors file of one U8 tensor of `size` bytes, sparse (no disk space, reads as zeros).
    static func sparseSafetensors(at url: URL, size: Int) throws {
        var header = Array("{\"t\":{\"dtype\":\"U8\",\"shape\":[\(size)],\"data_offsets\":[0,\(size)]}}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) }
        bytes += header
        try Data(bytes).write(to: url)
        #expect(truncate(url.path, off_t(bytes.count + size)) == 0)
    }

    /// Runs `arguments` and truncates `file` to 4 KiB after `delay` seconds, for each delay in turn
    /// until the run reports the truncation (an earlier run may have finished, or not yet mapped).
    static func truncating(_ file: URL, size: Int, arguments: [String], delays: [Double]) throws -> ReliabilityCLITests.Run? {
        for delay in delays {
            try sparseSafetensors(at: file, size: size)
            let run = try ReliabilityCLITests.quantize(arguments) { _ in
                usleep(useconds_t(delay * 1_000_000))
                _ = truncate(file.path, 4096)
            }
            #expect(run.status == 2 || run.status == 0, "\(arguments): status \(run.status) (a signal kills with 128+N), stderr: \(run.stderr)")
            if run.stderr.contains("became shorter while quantize was reading it") || run.stderr.contains("shrank") { return run }
        }
        return nil
    }

    @Test("inspect --verify-checksums of a file truncated under it names the file and exits 2")
    func hashingSurvivesTruncation() throws {
        let scratch = try Fixtures.temporaryDirectory("bus-hash")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let file = scratch.appendingPathComponent("big.safetensors")
        try Data("\(String(repeating: "0", count: 64))  big.safetensors\n".utf8).write(to: URL(fileURLWithPath: file.path + ".sha256"))
        let run = try Self.truncating(file, size: 3 << 30, arguments: ["inspect", file.path, "--verify-checksums"], delays: [0.8, 0.3, 1.5, 3.0])
        guard let run else {
            Issue.record("no run saw the truncation (each finished first or failed otherwise)")
            return
        }
        #expect(run.status == 2)
        #expect(run.stderr.contains(file.path), "stderr: \(run.stderr)")
        #expect(!run.stderr.contains("Bus error"))
    }

    @Test("compress of a file truncated under it exits 2 and leaves no staging folder")
    func compressLeavesNothing() throws {
        let scratch = try Fixtures.temporaryDirectory("bus-compress")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let file = scratch.appendingPathComponent("big.safetensors")
        let output = scratch.appendingPathComponent("big.safetensors.bpz")
        let run = try Self.truncating(file, size: 3 << 30, arguments: ["compress", file.path, "-o", output.path], delays: [0.8, 0.3, 1.5, 3.0])
        guard let run else {
            Issue.record("no run saw the truncation")
            return
        }
        #expect(run.status == 2, "stderr: \(run.stderr)")
        let left = try CLI.listing(scratch)
        #expect(left == ["big.safetensors"], "left: \(left)")
    }
}
