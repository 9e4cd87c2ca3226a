import Foundation
import Testing
import TestSupport

/// `quantize --to TYPE DIR` for the other families against llama.cpp, as recorded by
/// `tools/hf_to_gguf_oracle.py families` in fixtures/hf-to-gguf/<family>.json: llama3-bpe (Llama 3.1
/// style: BPE tokenizer.json, llama3 RoPE scaling → rope_freqs), qwen2-bpe (Qwen2: biases, BPE) and
/// mistral-sliding (MistralForCausalLM with a sliding window, SentencePiece) and qwen3-bpe (Qwen3: Q/K norms, head_dim 16, BPE).
@Suite("quantize --to TYPE from Llama 3 (BPE, rope_freqs), Qwen2 and Mistral directories")
struct HFToGGUFFamiliesCLITests {
    static var cases: [(String, String)] {
        ConversionFixtures.families.flatMap { family in HFToGGUFCLITests.types.map { (family, $0) } }
    }

    @Test("the file is byte-identical to llama-quantize of llama.cpp's F32 conversion", arguments: cases)
    func byteIdentical(family: String, type: String) throws {
        let doc = try ConversionFixtures.oracle(family)
        let entry = try #require((doc["outputs"] as? [[String: Any]])?.first { $0["to"] as? String == type }, "\(family).json has no \(type)")
        let scratch = try Fixtures.temporaryDirectory("hf-to-gguf-family")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let model = try ConversionFixtures.assemble(family, in: scratch)
        let output = scratch.appendingPathComponent("out.gguf").path
        let result = try CLI.run(["--to", type, model, "-o", output, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: output)))
        #expect(SHA256.hex(bytes) == entry["sha256"] as? String, "\(family) --to \(type) differs from llama-quantize \(entry["llama_quantize"] ?? "") of the F32 twin")
    }
}
