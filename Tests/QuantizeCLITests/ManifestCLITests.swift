import Foundation
import Testing
import TestSupport

/// Every command that writes a model or a matrix leaves an integrity manifest beside or inside
/// its output, and `inspect --verify-checksums` checks it and names the file that differs
/// (formats/integrity.md).
@Suite("integrity manifests of every output")
struct ManifestCLITests {
    static func manifest(_ path: String) throws -> [String: Any] {
        try CLI.jsonObject(String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self))
    }

    static func fileNames(_ manifest: [String: Any]) -> [String] {
        ((manifest["files"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }
    }

    static func flipLastByte(_ path: String) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 1] ^= 0x5A
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// `inspect --verify-checksums` passes on `path`, then fails naming `damaged` once its last byte changes.
    static func expectVerified(_ path: String, damaging damaged: String, files: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let good = try CLI.run(["inspect", path, "--verify-checksums"])
        #expect(good.status == 0, "stderr: \(good.stderr.prefix(500))", sourceLocation: sourceLocation)
        #expect(good.stderr.contains("checksums: \(files) file\(files == 1 ? "" : "s") match"), "stderr: \(good.stderr.prefix(500))", sourceLocation: sourceLocation)
        try flipLastByte(damaged)
        let bad = try CLI.run(["inspect", path, "--verify-checksums"])
        #expect(bad.status == 2, sourceLocation: sourceLocation)
        #expect(bad.stderr.contains(damaged) && bad.stderr.contains("SHA-256"), "stderr: \(bad.stderr.prefix(500))", sourceLocation: sourceLocation)
    }

    @Test("quantize to GGUF: OUT.quantize-manifest.json lists the file and its report; a changed byte is named")
    func ggufOutput() throws {
        let scratch = try Fixtures.temporaryDirectory("manifest-cli-gguf")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out.gguf").path
        let run = try CLI.run(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", output])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let manifest = try Self.manifest(output + ".quantize-manifest.json")
        #expect(Self.fileNames(manifest) == ["out.gguf", "out.gguf.quantize-report.json"])
        #expect(manifest["scheme"] as? String == "q8_0")
        #expect((manifest["inputs"] as? [[String: Any]])?.first?["name"] as? String == "fixtures/tiny-llama.gguf")
        try Self.expectVerified(output, damaging: output, files: 2)
    }

    @Test("quantize a model directory: DIR/quantize-manifest.json lists every file; a changed shard is named")
    func directoryOutput() throws {
        let scratch = try Fixtures.temporaryDirectory("manifest-cli-dir")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out").path
        let run = try CLI.run(["--to", "fp8", "fixtures/tiny-llama", "-o", output])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let manifest = try Self.manifest(output + "/quantize-manifest.json")
        let names = try FileManager.default.contentsOfDirectory(atPath: output).filter { $0 != "quantize-manifest.json" }.sorted()
        #expect(Self.fileNames(manifest).sorted() == names)
        // One file of the directory: its entry in the directory's manifest.
        let shard = output + "/model-00001-of-00002.safetensors"
        let one = try CLI.run(["inspect", shard, "--verify-checksums"])
        #expect(one.status == 0 && one.stderr.contains("model-00001-of-00002.safetensors matches the directory's quantize-manifest.json"), "stderr: \(one.stderr.prefix(400))")
        try Self.expectVerified(output, damaging: output + "/model-00002-of-00002.safetensors", files: names.count)
    }

    @Test("Hugging Face → GGUF conversion carries a manifest with the shards and config.json as inputs")
    func conversionOutput() throws {
        let scratch = try Fixtures.temporaryDirectory("manifest-cli-conv")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("t.gguf").path
        let run = try CLI.run(["--to", "q8_0", "fixtures/trained-llama", "-o", output, "--no-check"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let manifest = try Self.manifest(output + ".quantize-manifest.json")
        #expect(Self.fileNames(manifest) == ["t.gguf"])
        #expect((manifest["options"] as? [String: Any])?["conversion"] as? String == "hf-to-gguf")
        let inputs = ((manifest["inputs"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }
        #expect(inputs.contains { $0.hasSuffix(".safetensors") } && inputs.contains { $0.hasSuffix("config.json") }, "\(inputs)")
        try Self.expectVerified(output, damaging: output, files: 1)
    }

    @Test("compress and decompress of a file and a directory carry manifests")
    func compressOutputs() throws {
        let scratch = try Fixtures.temporaryDirectory("manifest-cli-bpz")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let packed = scratch.appendingPathComponent("t.gguf.bpz").path
        #expect(try CLI.run(["compress", "fixtures/tiny-llama.gguf", "-o", packed]).status == 0)
        let manifest = try Self.manifest(packed + ".quantize-manifest.json")
        #expect(Self.fileNames(manifest) == ["t.gguf.bpz"])
        #expect((manifest["options"] as? [String: Any])?["operation"] as? String == "compress")
        let original = SHA256.hex([UInt8](try Data(contentsOf: Fixtures.repositoryRoot.appendingPathComponent("fixtures/tiny-llama.gguf"))))
        #expect((manifest["inputs"] as? [[String: Any]])?.first?["sha256"] as? String == original)
        let unpacked = scratch.appendingPathComponent("t.gguf").path
        #expect(try CLI.run(["decompress", packed, "-o", unpacked]).status == 0)
        let back = try Self.manifest(unpacked + ".quantize-manifest.json")
        #expect(((back["files"] as? [[String: Any]])?.first?["sha256"] as? String) == original)

        let directory = scratch.appendingPathComponent("dir.bpz").path
        #expect(try CLI.run(["compress", "fixtures/tiny-llama", "-o", directory]).status == 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0 != "quantize-manifest.json" }.sorted()
        #expect(Self.fileNames(try Self.manifest(directory + "/quantize-manifest.json")).sorted() == names)
        try Self.expectVerified(packed, damaging: packed, files: 1)
    }

    @Test("imatrix writes a manifest beside the matrix; verify-checksums checks the matrix")
    func imatrixOutput() throws {
        let scratch = try Fixtures.temporaryDirectory("manifest-cli-imatrix")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("m.imatrix.gguf").path
        let run = try CLI.run(["imatrix", "fixtures/trained-llama", "--text", "fixtures/trained-llama/eval.txt", "-o", output,
                               "--ctx", "64", "--chunks", "1", "--threads", "2"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let manifest = try Self.manifest(output + ".quantize-manifest.json")
        #expect(Self.fileNames(manifest) == ["m.imatrix.gguf"])
        let inputs = ((manifest["inputs"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }
        #expect(inputs.contains("fixtures/trained-llama/eval.txt") && inputs.contains { $0.hasSuffix(".safetensors") }, "\(inputs)")
        try Self.expectVerified(output, damaging: output, files: 1)
    }
}
