import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `quantize imatrix` end to end on the trained fixture, and `inspect` of what it writes.
@Suite("quantize imatrix")
struct ImatrixCLITests {
    static let model = "fixtures/trained-llama", text = "fixtures/trained-llama/eval.txt"

    @Test("--json: entries, chunks and tokens; the GGUF output inspects as an importance matrix")
    func collectsAndInspects() throws {
        let scratch = try Fixtures.temporaryDirectory("imatrix-cli")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("m.gguf").path
        let run = try CLI.run(["imatrix", Self.model, "--text", Self.text, "-o", output, "--ctx", "64", "--chunks", "2", "--threads", "2", "--json"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let json = try CLI.jsonObject(run.stdout)
        #expect(json["entries"] as? Int == 28)
        #expect(json["chunks"] as? Int == 2 && json["tokens"] as? Int == 128 && json["chunkCount"] as? Int == 2)
        #expect(json["format"] as? String == "gguf")
        #expect((json["sparseExperts"] as? [Any])?.isEmpty == true)
        #expect(try CLI.listing(scratch) == ["m.gguf", "m.gguf.quantize-manifest.json"], "only the output and its manifest are left")
        let inspect = try CLI.run(["inspect", output, "--json"])
        #expect(inspect.status == 0, "stderr: \(inspect.stderr)")
        let report = try CLI.jsonObject(inspect.stdout)
        #expect(report["format"] as? String == "imatrix-gguf")
        #expect(report["entryCount"] as? Int == 28 && report["chunkSize"] as? Int == 64)
        #expect(report["datasets"] as? [String] == [Self.text])
        let textReport = try CLI.run(["inspect", output])
        #expect(textReport.stdout.contains("importance matrix (llama.cpp GGUF imatrix), 28 entries"))
    }

    @Test("an output ending in .dat is the legacy layout; inspect reads it; an existing output needs --force")
    func legacyOutputAndForce() throws {
        let scratch = try Fixtures.temporaryDirectory("imatrix-cli-dat")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("m.dat").path
        let args = ["imatrix", Self.model, "--text", Self.text, "-o", output, "--ctx", "32", "--chunks", "1", "--quiet"]
        let first = try CLI.run(args)
        #expect(first.status == 0, "stderr: \(first.stderr)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: output))
        #expect(bytes.prefix(4) == Data([28, 0, 0, 0]), "a .dat starts with its int32 entry count")
        let inspect = try CLI.run(["inspect", output, "--json"])
        #expect(try CLI.jsonObject(inspect.stdout)["format"] as? String == "imatrix-dat")
        let again = try CLI.run(args)
        #expect(again.status == 2)
        #expect(again.stderr.contains("--force"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: output)) == bytes)
        let forced = try CLI.run(args + ["--force", "--format", "gguf"])
        #expect(forced.status == 0, "stderr: \(forced.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: output)).prefix(4) == Data("GGUF".utf8), "--format overrides the extension")
    }

    @Test("bad input: a text too short for the context, the model as output; nothing left behind")
    func refusesBadInput() throws {
        let scratch = try Fixtures.temporaryDirectory("imatrix-cli-bad")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let short = scratch.appendingPathComponent("short.txt")
        try Data("just a few words\n".utf8).write(to: short)
        let output = scratch.appendingPathComponent("m.gguf").path
        let run = try CLI.run(["imatrix", Self.model, "--text", short.path, "-o", output, "--ctx", "64"])
        #expect(run.status == 2)
        #expect(run.stderr.contains("needs at least 128"), "stderr: \(run.stderr)")
        #expect(try CLI.listing(scratch) == ["short.txt"])
        let onModel = try CLI.run(["imatrix", "fixtures/tiny-llama.gguf", "--text", Self.text, "-o", "fixtures/tiny-llama.gguf"])
        #expect(onModel.status == 2 && onModel.stderr.contains("is the model itself"), "stderr: \(onModel.stderr)")
    }

    @Test("--tokens on a MoE model: expert entries with one count per expert; sparse experts listed with their counts")
    func tokensOnMixtureOfExperts() throws {
        let scratch = try Fixtures.temporaryDirectory("imatrix-cli-moe")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("reference-models/mixtral/expected-logits.json")))
        let tokens = try #require((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["tokens"] as? [Int])
        let tokensPath = scratch.appendingPathComponent("tokens.json")
        try JSONSerialization.data(withJSONObject: tokens).write(to: tokensPath)
        let output = scratch.appendingPathComponent("moe.gguf").path
        let run = try CLI.run(["imatrix", "fixtures/reference-models/mixtral", "--tokens", tokensPath.path, "-o", output, "--ctx", "16", "--json"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let json = try CLI.jsonObject(run.stdout)
        #expect(json["tokens"] as? Int == 32)
        let inspect = try CLI.jsonObject(try CLI.run(["inspect", output, "--json"]).stdout)
        let entries = try #require(inspect["entries"] as? [[String: Any]])
        let down = try #require(entries.first { $0["name"] as? String == "blk.0.ffn_down_exps.weight" })
        #expect(down["experts"] as? Int == 4)
        let counts = try #require(down["counts"] as? [Int])
        #expect(counts.reduce(0, +) == 32 * 2, "32 tokens × top-2")
        // Every expert under a tenth of an even share is listed, with its count.
        let sparse = try #require(json["sparseExperts"] as? [[String: Any]]).filter { $0["tensor"] as? String == "blk.0.ffn_down_exps.weight" }
        let threshold = max(1, counts.reduce(0, +) / 4 / 10)
        #expect(sparse.map { $0["expert"] as? Int ?? -1 } == counts.indices.filter { counts[$0] < threshold })
        for entry in sparse {
            let expert = try #require(entry["expert"] as? Int)
            #expect(entry["tokens"] as? Int == counts[expert] && entry["threshold"] as? Int == threshold)
        }
    }

    @Test("SIGINT during collection removes the staging folder and exits 130")
    func interruptLeavesNothing() throws {
        let scratch = try Fixtures.temporaryDirectory("imatrix-cli-int")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("m.gguf")
        let run = try ReliabilityCLITests.quantize(["imatrix", Self.model, "--text", Self.text, "-o", output.path, "--ctx", "512", "--threads", "1"]) { process in
            try ReliabilityCLITests.waitForEntry(".m.gguf.tmp-", in: scratch)
            usleep(200_000)
            kill(process.processIdentifier, SIGINT)
        }
        #expect(run.status == 130, "stderr: \(run.stderr)")
        #expect(run.stderr.split(separator: "\n").last == "quantize: interrupted (SIGINT); nothing was written")
        #expect(try CLI.listing(scratch) == [])
    }
}
