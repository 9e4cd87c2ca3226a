import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Hostile sizes cost memory and time in proportion to the input (issue 13, item 1;
/// formats/reliability.md "Hostile sizes"): the peak resident memory of `inspect` and `--dry-run`
/// on a header of empty tensors stays under the documented cap per header byte, and a GGUF with a
/// 1 MB key holding a 1 M-element array inspects in linear time. Peak memory is the child's own
/// (`wait4`), not the test process's.
@Suite("hostile sizes: memory and time proportional to the input")
struct HostileSizeCLITests {
    /// Runs `quantize arguments…` with stdout and stderr discarded; returns its exit status, peak
    /// resident memory in bytes and wall seconds.
    static func measure(_ arguments: [String]) throws -> (status: Int32, peakBytes: Int, seconds: Double) {
        let binary = try CLI.binary()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([binary.path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let started = Date()
        let spawned = posix_spawn(&pid, binary.path, &actions, nil, argv, environ)
        try #require(spawned == 0, "posix_spawn failed: \(spawned)")
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        let exit = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return (exit, Int(usage.ru_maxrss) * 1024, Date().timeIntervalSince(started))
    }

    /// A safetensors file whose header holds `count` empty tensors (`{"t0000001":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},…}`).
    static func emptyTensors(_ count: Int, at path: String) throws -> Int {
        var header = [UInt8]("{".utf8)
        header.reserveCapacity(count * 64)
        for i in 0..<count {
            if i > 0 { header.append(UInt8(ascii: ",")) }
            header += Array("\"t\(String(format: "%07d", i))\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}".utf8)
        }
        header += Array("}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        let bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return header.count
    }

    @Test("a header of 50 000 empty tensors: inspect, inspect --json and a plan stay under 30 bytes of memory per header byte")
    func emptyTensorHeaderMemoryIsBounded() throws {
        let scratch = try Fixtures.temporaryDirectory("hostile-header")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let small = scratch.appendingPathComponent("small.safetensors").path
        let large = scratch.appendingPathComponent("large.safetensors").path
        _ = try Self.emptyTensors(10, at: small)
        let headerBytes = try Self.emptyTensors(50_000, at: large)
        // formats/reliability.md measures ≈ 15 (plan) and 24 (inspect --json) bytes per header byte.
        let cap = 30
        for arguments in [["inspect"], ["inspect", "--json"], ["--to", "fp8", "--dry-run"]] {
            let baseline = try Self.measure(arguments + [small])
            let measured = try Self.measure(arguments + [large])
            // The dry run refuses a file with nothing to quantize (exit 2) after planning every tensor.
            #expect(measured.status == baseline.status, "\(arguments)")
            let growth = measured.peakBytes - baseline.peakBytes
            #expect(growth <= cap * headerBytes,
                    "\(arguments.joined(separator: " ")): \(growth) bytes more than for 10 tensors on a \(headerBytes)-byte header (cap \(cap)/byte)")
        }
    }

    @Test("a GGUF with a 1 MB key and a 1 M-element array inspects in linear time, text and JSON")
    func hostileGGUFInspectIsLinear() throws {
        let scratch = try Fixtures.temporaryDirectory("hostile-gguf-cli")
        defer { try? FileManager.default.removeItem(at: scratch) }
        func gguf(keyBytes: Int, elements: Int, at path: String) throws {
            var bytes = Array("GGUF".utf8)
            func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
            func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
            u32(3); u64(0); u64(1)
            u64(UInt64(keyBytes)); bytes += [UInt8](repeating: UInt8(ascii: "k"), count: keyBytes)
            u32(9); u32(4); u64(UInt64(elements))
            bytes += [UInt8](repeating: 7, count: elements * 4)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
        }
        let small = scratch.appendingPathComponent("small.gguf").path
        let large = scratch.appendingPathComponent("large.gguf").path
        try gguf(keyBytes: 1 << 14, elements: 1 << 14, at: small)
        try gguf(keyBytes: 1 << 20, elements: 1 << 20, at: large)
        for arguments in [["inspect"], ["inspect", "--json"]] {
            let baseline = try Self.measure(arguments + [small])
            let measured = try Self.measure(arguments + [large])
            #expect(measured.status == 0 && baseline.status == 0, "\(arguments)")
            // 64× the input: quadratic work (the old cost: 30 s) would be ~4000× the small file's.
            #expect(measured.seconds < 15, "\(arguments.joined(separator: " ")) took \(measured.seconds) s on a 5 MB file")
            #expect(measured.peakBytes - baseline.peakBytes < 200 << 20, "\(arguments): \(measured.peakBytes - baseline.peakBytes) bytes more")
        }
    }
}
