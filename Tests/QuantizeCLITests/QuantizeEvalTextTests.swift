import Foundation
import Testing
import TestSupport

/// `quantize --to … --eval-text`: the fresh output evaluated against its input before it is moved
/// into place, with the same numbers `quantize eval` gives for the pair.
@Suite("quantize --eval-text")
struct QuantizeEvalTextTests {
    static let model = Fixtures.directory.appendingPathComponent("trained-llama").path
    static let text = Fixtures.directory.appendingPathComponent("trained-llama/eval.txt").path

    @Test("the output carries quantize-eval.json, naming the output, equal to quantize eval of the pair")
    func evaluationBesideTheReport() throws {
        let scratch = try Fixtures.temporaryDirectory("eval-text")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("int8").path
        let run = try CLI.run(["--to", "int8", Self.model, "-o", output, "--no-check", "--json",
                               "--eval-text", Self.text, "--eval-context", "64", "--eval-chunks", "3"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let summary = try CLI.jsonObject(run.stdout)
        #expect(summary["evaluationPath"] as? String == output + "/quantize-eval.json")
        let data = try Data(contentsOf: URL(fileURLWithPath: output + "/quantize-eval.json"))
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let results = try #require(document["results"] as? [[String: Any]])
        #expect(results.count == 1 && results[0]["path"] as? String == output, "the report names the output, not the staging path")
        #expect(document["chunks"] as? Int == 3 && document["context"] as? Int == 64)
        let kld = try #require(results[0]["kld"] as? [String: Any])
        let mean = try #require(kld["mean"] as? Double), ppl = try #require(results[0]["perplexity"] as? Double)
        #expect(mean >= 0 && mean < 0.01, "int8 weights barely move a trained model's distribution: KLD \(mean)")

        // The same pair through `quantize eval`: the same protocol, so the same numbers.
        let eval = try CLI.run(["eval", Self.model, output, "--text", Self.text, "--context", "64", "--chunks", "3", "--json"])
        #expect(eval.status == 0, "stderr: \(eval.stderr)")
        let direct = try #require((try CLI.jsonObject(eval.stdout)["results"] as? [[String: Any]])?.first)
        let directPPL = try #require(direct["perplexity"] as? Double)
        let directKLD = try #require((direct["kld"] as? [String: Any])?["mean"] as? Double)
        #expect(abs(directPPL - ppl) <= 1e-6 * ppl, "eval \(directPPL) vs --eval-text \(ppl)")
        #expect(abs(directKLD - mean) <= 1e-4 * max(mean, 1e-9) + 1e-9, "eval \(directKLD) vs --eval-text \(mean)")
    }

    @Test("--max-kld above the measured divergence writes nothing and exits 1")
    func maxKLDRefusesTheOutput() throws {
        let scratch = try Fixtures.temporaryDirectory("eval-text-max-kld")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("q").path
        let run = try CLI.run(["--to", "int4", Self.model, "-o", output, "--no-check",
                               "--eval-text", Self.text, "--eval-context", "64", "--eval-chunks", "2", "--max-kld", "0"])
        #expect(run.status == 1, "stderr: \(run.stderr)")
        #expect(run.stderr.contains("nothing was written"))
        #expect(try CLI.listing(scratch).isEmpty, "no output and no staging folder are left")
    }
}
