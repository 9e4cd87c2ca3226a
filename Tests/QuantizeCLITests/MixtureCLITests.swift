import Foundation
import Testing
import TestSupport

@Suite("quantize --to MIXTURE on the command line")
struct MixtureCLITests {
    @Test("--dry-run shows every tensor's type and the rule that chose it, and writes nothing")
    func dryRun() throws {
        let result = try CLI.run(["--to", "Q4_K_M", "fixtures/tiny-llama.gguf", "--dry-run"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("attn_v #1 of 2: Q6_K (use_more_bits) in Q4_K_M"))
        #expect(result.stdout.contains("output: Q6_K"))
        #expect(result.stdout.contains("kept: one dimension"))
        #expect(result.stdout.contains("16 tensors quantized to q4_k_m (Q4_K ×13, Q6_K ×3)"))
        #expect(!FileManager.default.fileExists(atPath: Fixtures.path("tiny-llama-q4_k_m.gguf")))
        let json = try CLI.jsonObject(try CLI.run(["--to", "q4_k_m", "fixtures/tiny-llama.gguf", "--dry-run", "--json"]).stdout)
        #expect(json["scheme"] as? String == "q4_k_m")
        let tensors = try #require(json["tensors"] as? [[String: Any]])
        let down = try #require(tensors.first { $0["name"] as? String == "blk.1.ffn_down.weight" })
        #expect((down["rule"] as? String)?.contains("use_more_bits") == true)
    }

    @Test("--tensor-type overrides, a pattern that matches nothing is an error, and the options need a mixture")
    func tensorType() throws {
        let result = try CLI.run(["--to", "q4_k_m", "fixtures/tiny-llama.gguf", "--dry-run", "--tensor-type", "attn_k=q8_0", "--tensor-type", "ffn_up=q5_k"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("--tensor-type attn_k=q8_0"))
        #expect(result.stdout.contains("(Q4_K ×9, Q6_K ×3, Q5_K ×2, Q8_0 ×2)"))
        let nothing = try CLI.run(["--to", "q4_k_m", "fixtures/tiny-llama.gguf", "--dry-run", "--tensor-type", "attn_zz=q8_0"])
        #expect(nothing.status != 0 && nothing.stderr.contains("attn_zz=q8_0 matches no quantized tensor"), "\(nothing.stderr)")
        let badType = try CLI.run(["--to", "q4_k_m", "fixtures/tiny-llama.gguf", "--dry-run", "--tensor-type", "attn_k=q9_9"])
        #expect(badType.status != 0 && badType.stderr.contains("'q9_9' is not a type this tool writes"), "\(badType.stderr)")
        let notMixture = try CLI.run(["--to", "q4_k", "fixtures/tiny-llama.gguf", "--dry-run", "--tensor-type", "attn_k=q8_0"])
        #expect(notMixture.status != 0 && notMixture.stderr.contains("apply to llama.cpp mixtures"), "\(notMixture.stderr)")
        let safetensors = try CLI.run(["--to", "q4_k_m", "fixtures/tiny-llama", "--dry-run"])
        #expect(safetensors.status != 0 && safetensors.stderr.contains("GGUF"), "\(safetensors.stderr)")
    }

    @Test("a mixture run writes the file and names it after the mixture")
    func writes() throws {
        let scratch = try Fixtures.temporaryDirectory("mixture-cli")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let input = scratch.appendingPathComponent("m.gguf").path
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny-llama.gguf"), toPath: input)
        let result = try CLI.run(["--to", "q5_k_m", input])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("quantized 16 tensors to q5_k_m (Q5_K ×13, Q6_K ×3)"), "\(result.stderr)")
        #expect(try CLI.listing(scratch) == ["m-q5_k_m.gguf", "m-q5_k_m.gguf.quantize-manifest.json", "m-q5_k_m.gguf.quantize-report.json", "m.gguf"])
        let inspect = try CLI.jsonObject(try CLI.run(["inspect", "--json", scratch.appendingPathComponent("m-q5_k_m.gguf").path]).stdout)
        #expect(inspect["format"] as? String == "gguf")
    }
}
