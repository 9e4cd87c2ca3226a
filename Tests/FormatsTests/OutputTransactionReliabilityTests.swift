import Foundation
import Testing
import Formats
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The transaction's lock, stale-staging cleanup, commit order and messages, and linear-cost
/// parsing of hostile GGUF metadata (issue 13; formats/reliability.md).
@Suite("output transaction reliability and hostile sizes")
struct OutputTransactionReliabilityTests {
    @Test("a second transaction on the same target fails at once with outputBusy; the lock goes with the first")
    func lockRefusesSecondWriter() throws {
        let scratch = try Fixtures.temporaryDirectory("tx-lock")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let target = scratch.appendingPathComponent("out.gguf").path
        let first = try OutputTransaction(target: target)
        #expect(throws: FormatError.self) { _ = try OutputTransaction(target: target) }
        do {
            _ = try OutputTransaction(target: target)
        } catch {
            #expect(error.code == .outputBusy)
            #expect(error.description == "\(target): another quantize run is writing this output right now; wait for it to finish, or name another output with -o")
        }
        first.discard()
        let again = try OutputTransaction(target: target)
        again.discard()
        #expect(try CLI.listing(scratch) == [])
    }

    @Test("staging folders whose owner process is gone are removed and noted; a live owner's is kept")
    func staleStaging() throws {
        let scratch = try Fixtures.temporaryDirectory("tx-stale")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        let dead = finished.processIdentifier
        let stale = scratch.appendingPathComponent(".out.gguf.tmp-\(dead)-7")
        let live = scratch.appendingPathComponent(".out.gguf.tmp-1-8")
        let other = scratch.appendingPathComponent(".other.gguf.tmp-\(dead)-9")
        for directory in [stale, live, other] {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data([1, 2, 3]).write(to: directory.appendingPathComponent("out.gguf"))
        }
        let transaction = try OutputTransaction(target: scratch.appendingPathComponent("out.gguf").path)
        #expect(transaction.notes == ["removed \(stale.path), the leftover of an interrupted run (process \(dead) no longer runs)"])
        transaction.discard()
        #expect(try CLI.listing(scratch) == [other.lastPathComponent, live.lastPathComponent].sorted())
    }

    @Test("commit moves the companion before the output; without replacesExisting an output that appeared is kept")
    func commitOrderAndNoReplace() throws {
        let scratch = try Fixtures.temporaryDirectory("tx-order")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let target = scratch.appendingPathComponent("out.gguf").path
        let report = target + ".quantize-report.json"
        let transaction = try OutputTransaction(target: target)
        try transaction.write([1, 2, 3], named: "out.gguf")
        try transaction.writeCompanion([4], stagedName: "report.json", finalPath: report)
        try transaction.commit(.file(named: "out.gguf"))
        #expect(try CLI.listing(scratch) == ["out.gguf", "out.gguf.quantize-report.json"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: report)) == Data([4]))

        let second = try OutputTransaction(target: target)
        second.replacesExisting = false
        try second.write([9], named: "out.gguf")
        do {
            try second.commit(.file(named: "out.gguf"))
            Issue.record("commit replaced an output although replacesExisting is false")
        } catch {
            #expect(error.code == .outputExists)
        }
        second.discard()
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == Data([1, 2, 3]))

        try FileManager.default.removeItem(atPath: target)
        let third = try OutputTransaction(target: target)
        #expect(third.removeOrphanedCompanion(report) == "removed \(report), a report left without its output by an interrupted run")
        third.discard()
        #expect(try CLI.listing(scratch) == [])
    }

    @Test("errors from staged files name the final paths, never the staging folder or a writer's temporary name")
    func publicErrors() throws {
        let scratch = try Fixtures.temporaryDirectory("tx-public")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let target = scratch.appendingPathComponent("out").path
        let file = try OutputTransaction(target: target + ".gguf")
        let raw = FormatError(.writeFailed, path: file.path("out.gguf"), message: "cannot write \(file.stagingDirectory)/.out.gguf.tmp-12-34 in \(file.stagingDirectory)")
        let shown = file.publicError(raw)
        #expect(shown.path == target + ".gguf")
        #expect(shown.message == "cannot write \(scratch.path)/out.gguf in \(scratch.path)")
        file.discard()
        let directory = try OutputTransaction(target: target, directory: true)
        #expect(directory.publicText(directory.path(".model.safetensors.partial-5-6")) == target + "/model.safetensors")
        directory.discard()
    }

    // MARK: Hostile GGUF

    /// A GGUF v3 file with no tensors and the given key/value entries, already encoded.
    static func gguf(_ entries: [[UInt8]]) -> [UInt8] {
        var bytes = Array("GGUF".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        u32(3); u64(0); u64(UInt64(entries.count))
        for entry in entries { bytes += entry }
        return bytes
    }

    static func string(_ s: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt64(s.count).littleEndian) { Array($0) } + s
    }

    /// A key whose value is an array of `count` u32 (`declared` elements claimed).
    static func u32Array(key: [UInt8], count: Int, declared: Int? = nil) -> [UInt8] {
        var bytes = string(key)
        withUnsafeBytes(of: UInt32(9).littleEndian) { bytes += $0 }   // array
        withUnsafeBytes(of: UInt32(4).littleEndian) { bytes += $0 }   // of uint32
        withUnsafeBytes(of: UInt64(declared ?? count).littleEndian) { bytes += $0 }
        bytes += [UInt8](repeating: 7, count: count * 4)
        return bytes
    }

    @Test("a 1 MB key with a 1 M-element array parses in linear time; a truncated one fails with a short message")
    func hostileGGUFIsLinear() throws {
        let scratch = try Fixtures.temporaryDirectory("gguf-hostile")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let key = [UInt8](repeating: UInt8(ascii: "k"), count: 1 << 20)
        let path = scratch.appendingPathComponent("big.gguf").path
        try Data(Self.gguf([Self.u32Array(key: key, count: 1 << 20)])).write(to: URL(fileURLWithPath: path))
        let started = Date()
        let file = try GGUFFile(path: path)
        let seconds = Date().timeIntervalSince(started)
        #expect(file.metadata.count == 1)
        if case .array(_, let elements) = file.metadata[0].value { #expect(elements.count == 1 << 20) } else { Issue.record("not an array") }
        // Building a 1 MB context string per element (the old cost) took ~30 s here; linear work is well under a second in release.
        #expect(seconds < 10, "parsing took \(seconds) s")

        let truncated = scratch.appendingPathComponent("cut.gguf").path
        var bytes = Self.gguf([Self.u32Array(key: key, count: 1000)])
        bytes.removeLast(2)
        try Data(bytes).write(to: URL(fileURLWithPath: truncated))
        do {
            _ = try GGUFFile(path: truncated)
            Issue.record("a truncated array parsed")
        } catch {
            #expect(error.code == .truncated)
            #expect(error.description.utf8.count < 1_000, "message of \(error.description.utf8.count) bytes")
            #expect(error.description.contains("kkkk…(1048579 characters)…kkkk"), "the quoted key is shortened")
        }
    }

    @Test("DisplayText keeps short names and shortens long words inside sentences")
    func displayText() {
        #expect(DisplayText.shortened("model.layers.0.weight") == "model.layers.0.weight")
        let long = String(repeating: "a", count: 500) + "END"
        let shown = DisplayText.shortened(long)
        #expect(shown.hasSuffix("aEND") && shown.contains("…(503 characters)…") && shown.count < 130)
        #expect(DisplayText.shorteningLongWords("tensor \(long) is bad") == "tensor \(shown) is bad")
        #expect(DisplayText.shorteningLongWords("short words stay") == "short words stay")
        let spaced = Array(repeating: String(repeating: "w", count: 100), count: 60).joined(separator: " ")
        #expect(DisplayText.sentence(spaced).count < DisplayText.sentenceLimit + 40 && DisplayText.sentence(spaced).contains("…(6059 characters)…"))
        #expect(DisplayText.sentence("short words stay") == "short words stay")
    }

    @Test("an index naming a shard path of many short words gives a message of bounded length (fuzz finding, index)")
    func longSpacedShardName() throws {
        // What the index fuzzer found: a weight_map value with '/' made of many words under the name
        // limit, quoted whole in a message of over 4 kB.
        let shard = "../" + Array(repeating: String(repeating: "3", count: 100), count: 50).joined(separator: " ")
        let document = try JSONValue.parse(Array("{\"weight_map\": {\"a\": \"\(shard)\"}}".utf8), path: "model.safetensors.index.json")
        do {
            _ = try SafetensorsCheckpoint.parseIndex(document, path: "model.safetensors.index.json")
            Issue.record("a shard path with '/' was accepted")
        } catch {
            #expect(error.code == .invalidIndex)
            #expect(error.description.utf8.count < 1_500, "message of \(error.description.utf8.count) bytes")
            #expect(error.description.contains("characters)…"), "the shard name is shortened: \(error.description)")
        }
    }
}
