import Foundation
import Testing
import TestSupport

/// A gguf-split set (`NAME-0000i-of-0000N.gguf`) given by any of its shards is one model to
/// `inspect`, `verify --target llama.cpp`, `--to` and the Hugging Face export, as llama.cpp's
/// loader reads it from the first.
@Suite("split GGUF sets read as one model")
struct SplitGGUFInputCLITests {
    /// `input` converted to `type` in `scratch` twice: whole, and split `perShard` tensors per
    /// shard (the shard paths in order).
    static func make(_ scratch: URL, input: String = "fixtures/tiny-llama.gguf", type: String = "f16",
                     perShard: Int = 8) throws -> (whole: String, shards: [String]) {
        let whole = scratch.appendingPathComponent("whole.gguf").path
        var result = try CLI.run(["--to", type, input, "-o", whole, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        result = try CLI.run(["--to", type, input, "-o", scratch.appendingPathComponent("split.gguf").path,
                              "--no-check", "--quiet", "--split-max-tensors", String(perShard)])
        #expect(result.status == 0, "\(result.stderr)")
        let shards = try FileManager.default.contentsOfDirectory(atPath: scratch.path)
            .filter { $0.hasPrefix("split-") && $0.hasSuffix(".gguf") }.sorted().map { scratch.appendingPathComponent($0).path }
        return (whole, shards)
    }

    @Test("inspect lists every shard's tensors, in order, from the first shard or any other")
    func inspect() throws {
        let scratch = try Fixtures.temporaryDirectory("split-input-inspect")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let (whole, shards) = try Self.make(scratch)
        try #require(shards.count >= 3, "\(shards)")
        let reference = try CLI.jsonObject(try CLI.run(["inspect", whole, "--json"]).stdout)
        let names = (reference["tensors"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(names.count > 8)
        for shard in [shards[0], shards[1], shards.last!] {
            let result = try CLI.run(["inspect", shard, "--json"])
            #expect(result.status == 0, "\(result.stderr)")
            let report = try CLI.jsonObject(result.stdout)
            let tensors = report["tensors"] as? [[String: Any]] ?? []
            #expect(tensors.compactMap { $0["name"] as? String } == names, "\(shard)")
            #expect(Set(tensors.compactMap { $0["file"] as? String }) == Set(shards.map { ($0 as NSString).lastPathComponent }))
            #expect(report["parameters"] as? Int == reference["parameters"] as? Int)
        }
        let text = try CLI.run(["inspect", shards[0]]).stdout
        #expect(text.contains("\(shards.count) files"), "\(text.prefix(300))")
    }

    @Test("--to from a split set writes the file the unsplit input gives, without the input's split keys")
    func quantizeFromSplit() throws {
        let scratch = try Fixtures.temporaryDirectory("split-input-quantize")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let (whole, shards) = try Self.make(scratch)
        let fromWhole = scratch.appendingPathComponent("from-whole.gguf").path
        let fromSplit = scratch.appendingPathComponent("from-split.gguf").path
        for (input, output) in [(whole, fromWhole), (shards[0], fromSplit)] {
            let result = try CLI.run(["--to", "q4_0", input, "-o", output, "--quiet"])
            #expect(result.status == 0, "\(input): \(result.stderr)")
        }
        let a = try Data(contentsOf: URL(fileURLWithPath: fromWhole)), b = try Data(contentsOf: URL(fileURLWithPath: fromSplit))
        #expect(a == b, "q4_0 of the split set differs from q4_0 of the unsplit file (\(a.count) vs \(b.count) bytes)")
        let keys = try CLI.jsonObject(try CLI.run(["inspect", fromSplit, "--json"]).stdout)["metadata"] as? [String: Any] ?? [:]
        #expect(!keys.keys.contains { $0.hasPrefix("split.") })
        // A split set in, a split set out: every shard of the new set carries its own split keys.
        let resplit = scratch.appendingPathComponent("resplit.gguf").path
        let result = try CLI.run(["--to", "q4_0", shards[1], "-o", resplit, "--quiet", "--split-max-tensors", "16"])
        #expect(result.status == 0, "\(result.stderr)")
        let first = scratch.appendingPathComponent("resplit-00001-of-00002.gguf").path
        let merged = try CLI.jsonObject(try CLI.run(["inspect", first, "--json"]).stdout)
        let inspected = try CLI.jsonObject(try CLI.run(["inspect", fromWhole, "--json"]).stdout)
        #expect((merged["tensors"] as? [[String: Any]])?.count == (inspected["tensors"] as? [[String: Any]])?.count)
        #expect(((merged["metadata"] as? [String: Any])?["split.count"] as? [String: Any])?["value"] as? Int == 2)
    }

    @Test("verify --target llama.cpp checks the whole set's tensors")
    func verifyTarget() throws {
        let scratch = try Fixtures.temporaryDirectory("split-input-verify")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let (_, shards) = try Self.make(scratch)
        var result = try CLI.run(["verify", "--target", "llama.cpp", shards[0], "--json"])
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("\(shards.count) shards"), "\(result.stdout)")
        // Given another shard, the same verdict plus a warning that llama.cpp wants the first.
        result = try CLI.run(["verify", "--target", "llama.cpp", shards[1]])
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect((result.stdout + result.stderr).contains("not the first shard"), "\(result.stdout) \(result.stderr)")
    }

    @Test("a missing, renamed or foreign shard is refused naming it")
    func brokenSets() throws {
        let scratch = try Fixtures.temporaryDirectory("split-input-broken")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let (_, shards) = try Self.make(scratch)
        // Renamed: the others cannot be found from it.
        let renamed = scratch.appendingPathComponent("renamed.gguf").path
        try FileManager.default.copyItem(atPath: shards[0], toPath: renamed)
        var result = try CLI.run(["inspect", renamed])
        #expect(result.status == 2 && result.stderr.contains("-00001-of-0000\(shards.count).gguf"), "\(result.stderr)")
        // A shard of another split in place of shard 2.
        let other = try Fixtures.temporaryDirectory("split-input-other")
        defer { try? FileManager.default.removeItem(at: other) }
        let foreign = try CLI.run(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", other.appendingPathComponent("x.gguf").path,
                                   "--no-check", "--quiet", "--split-max-tensors", "4"])
        #expect(foreign.status == 0, "\(foreign.stderr)")
        let saved = shards[1] + ".saved"
        try FileManager.default.moveItem(atPath: shards[1], toPath: saved)
        try FileManager.default.copyItem(atPath: other.appendingPathComponent("x-00002-of-" + String(format: "%05d", try FileManager.default.contentsOfDirectory(atPath: other.path).filter { $0.hasSuffix(".gguf") }.count) + ".gguf").path,
                                         toPath: shards[1])
        result = try CLI.run(["inspect", shards[0]])
        #expect(result.status == 2 && result.stderr.contains((shards[1] as NSString).lastPathComponent) && result.stderr.contains("split.count"), "\(result.stderr)")
        // Missing.
        try FileManager.default.removeItem(atPath: shards[1])
        result = try CLI.run(["--to", "q4_0", shards[0], "-o", scratch.appendingPathComponent("out.gguf").path])
        #expect(result.status == 2 && result.stderr.contains("shard 2 of \(shards.count)") && result.stderr.contains("missing"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.appendingPathComponent("out.gguf").path))
        try FileManager.default.moveItem(atPath: saved, toPath: shards[1])
    }

    @Test("GGUF → Hugging Face from a split set writes the directory the unsplit file gives")
    func exportFromSplit() throws {
        let scratch = try Fixtures.temporaryDirectory("split-input-export")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let (whole, shards) = try Self.make(scratch, input: "fixtures/trained-llama", type: "f32", perShard: 10)
        #expect(shards.count > 1, "the export must read more than one shard")
        let first = try #require(shards.first)
        var result: CLI.Result
        for (input, name) in [(whole, "from-whole"), (first, "from-split")] {
            result = try CLI.run(["--to", "bf16", input, "-o", scratch.appendingPathComponent(name).path, "--quiet"])
            #expect(result.status == 0, "\(input): \(result.stderr)")
        }
        let a = scratch.appendingPathComponent("from-whole"), b = scratch.appendingPathComponent("from-split")
        let names = try FileManager.default.contentsOfDirectory(atPath: a.path).filter { !$0.hasPrefix(".") }.sorted()
        #expect(names == (try FileManager.default.contentsOfDirectory(atPath: b.path).filter { !$0.hasPrefix(".") }.sorted()))
        #expect(names.contains("config.json") && names.contains { $0.hasSuffix(".safetensors") })
        for name in names where !name.hasSuffix("manifest.json") {
            let x = try Data(contentsOf: a.appendingPathComponent(name)), y = try Data(contentsOf: b.appendingPathComponent(name))
            #expect(x == y, "\(name) differs between the export of the unsplit file and of the split set")
        }
    }
}
