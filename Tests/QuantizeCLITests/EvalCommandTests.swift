import Foundation
import Testing
import TestSupport

/// `quantize eval` end to end on the tiny reference models (tools/reference_logits.py), checked
/// against the statistics numpy computed from transformers' logits (eval-expected.json).
@Suite("quantize eval")
struct EvalCommandTests {
    static let models = Fixtures.directory.appendingPathComponent("reference-models")

    static func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: models.appendingPathComponent("eval-expected.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The expected tokens as a --tokens file in a scratch directory.
    static func tokensFile(_ label: String, count: Int? = nil) throws -> (URL, String) {
        let scratch = try Fixtures.temporaryDirectory(label)
        var tokens = try #require(try expected()["tokens"] as? [Int])
        if let count { tokens = Array(tokens.prefix(count)) }
        let path = scratch.appendingPathComponent("tokens.json").path
        try JSONSerialization.data(withJSONObject: tokens).write(to: URL(fileURLWithPath: path))
        return (scratch, path)
    }

    @Test("--json reports the original's PPL and, in the order given, PPL, KLD and same-top of each checkpoint")
    func jsonResultsInOrder() throws {
        let (scratch, tokens) = try Self.tokensFile("eval-json")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let llama = Self.models.appendingPathComponent("llama").path, perturbed = Self.models.appendingPathComponent("llama-perturbed").path
        let run = try CLI.run(["eval", llama, perturbed, llama, "--tokens", tokens, "--context", "32", "--json"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let json = try CLI.jsonObject(run.stdout)
        let e = try Self.expected()
        let original = try #require(json["original"] as? [String: Any])
        let results = try #require(json["results"] as? [[String: Any]])
        #expect(results.map { $0["path"] as? String } == [perturbed, llama])
        let basePPL = try #require(original["perplexity"] as? Double), wantBase = try #require(e["originalPerplexity"] as? Double)
        #expect(abs(basePPL - wantBase) <= 1e-4 * wantBase)
        let first = results[0], kld = try #require(first["kld"] as? [String: Any])
        let ppl = try #require(first["perplexity"] as? Double), want = try #require(e["perplexity"] as? Double)
        #expect(abs(ppl - want) <= 1e-4 * want)
        let mean = try #require(kld["mean"] as? Double), wantMean = try #require(e["kldMean"] as? Double)
        #expect(abs(mean - wantMean) <= 1e-3 * wantMean)
        #expect((kld["p99"] as? Double).map { $0 >= mean } == true && (kld["max"] as? Double).map { $0 >= (kld["p99"] as? Double ?? 0) } == true)
        let same = try #require(first["sameTopToken"] as? Double)
        #expect(same >= 0 && same <= 1)
        // The original against itself: no divergence, every top token the same.
        let itself = try #require(results[1]["kld"] as? [String: Any])
        #expect(abs(try #require(itself["mean"] as? Double)) < 1e-9)
        #expect(results[1]["sameTopToken"] as? Double == 1)
    }

    @Test("--max-kld exits 1 when a checkpoint's mean KLD is above it and 0 when none is")
    func maxKLDExitStatus() throws {
        let (scratch, tokens) = try Self.tokensFile("eval-max-kld")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let llama = Self.models.appendingPathComponent("llama").path, perturbed = Self.models.appendingPathComponent("llama-perturbed").path
        let over = try CLI.run(["eval", llama, perturbed, "--tokens", tokens, "--context", "32", "--max-kld", "0.01", "--quiet"])
        #expect(over.status == 1, "stderr: \(over.stderr)")
        let under = try CLI.run(["eval", llama, perturbed, "--tokens", tokens, "--context", "32", "--max-kld", "5", "--quiet"])
        #expect(under.status == 0, "stderr: \(under.stderr)")
    }

    @Test("too few tokens for two chunks exits 2 with the count and what to do")
    func tooFewTokens() throws {
        let (scratch, tokens) = try Self.tokensFile("eval-short", count: 40)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let llama = Self.models.appendingPathComponent("llama").path
        let run = try CLI.run(["eval", llama, llama, "--tokens", tokens, "--context", "32"])
        #expect(run.status == 2)
        #expect(run.stderr.contains("40 tokens") && run.stderr.contains("--context"), "stderr: \(run.stderr)")
    }

    @Test("a logits file saved by one run stands in for the original in the next")
    func savedLogitsReplaceTheOriginal() throws {
        let (scratch, tokens) = try Self.tokensFile("eval-logits")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let llama = Self.models.appendingPathComponent("llama").path, perturbed = Self.models.appendingPathComponent("llama-perturbed").path
        let file = scratch.appendingPathComponent("base.logits").path
        let save = try CLI.run(["eval", llama, "--tokens", tokens, "--context", "32", "--save-logits", file, "--json"])
        #expect(save.status == 0, "stderr: \(save.stderr)")
        let reuse = try CLI.run(["eval", perturbed, "--logits", file, "--json"])
        #expect(reuse.status == 0, "stderr: \(reuse.stderr)")
        let json = try CLI.jsonObject(reuse.stdout)
        let kld = try #require((json["results"] as? [[String: Any]])?.first?["kld"] as? [String: Any])
        let mean = try #require(kld["mean"] as? Double), want = try #require(try Self.expected()["kldMean"] as? Double)
        #expect(abs(mean - want) <= 1e-2 * want, "KLD from the 16-bit logits file \(mean) vs \(want)")
    }
}
