import Foundation
import Testing
import TestSupport

/// `quantize --to f32|f16|bf16 model.gguf -o DIR/` (the Hugging Face export) and `--split-max-*`
/// from the command line.
@Suite("GGUF → Hugging Face export and split GGUF outputs, from the command line")
struct GGUFExportCLITests {
    @Test("GGUF → Hugging Face → GGUF round trips byte-identical at f32 on the trained fixture")
    func roundTrip() throws {
        let scratch = try Fixtures.temporaryDirectory("gguf-hf-roundtrip")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let a = scratch.appendingPathComponent("a.gguf").path, b = scratch.appendingPathComponent("b.gguf").path
        let directory = scratch.appendingPathComponent("exported").path
        var result = try CLI.run(["--to", "f32", "fixtures/trained-llama", "-o", a, "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        result = try CLI.run(["--to", "f32", a, "-o", directory + "/", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let summary = try CLI.jsonObject(result.stdout)
        #expect(summary["tensors"] as? Int == 39)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(names == ["config.json", "generation_config.json", "model.safetensors", "quantize-manifest.json", "tokenizer.model", "tokenizer_config.json"])
        result = try CLI.run(["--to", "f32", directory, "-o", b, "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let first = try Data(contentsOf: URL(fileURLWithPath: a)), second = try Data(contentsOf: URL(fileURLWithPath: b))
        #expect(first.count > 1_000_000 && first == second, "a.gguf (\(first.count) bytes) and b.gguf (\(second.count) bytes) differ")
    }

    @Test("llama3 RoPE scaling (rope_freqs) and the BPE vocabularies round trip: GGUF → Hugging Face → GGUF is byte-identical",
          arguments: ["llama3-bpe", "qwen2-bpe"])
    func familyRoundTrip(family: String) throws {
        let scratch = try Fixtures.temporaryDirectory("gguf-hf-family")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let model = try ConversionFixtures.assemble(family, in: scratch)
        let a = scratch.appendingPathComponent("a.gguf").path, b = scratch.appendingPathComponent("b.gguf").path
        let directory = scratch.appendingPathComponent("exported").path
        var result = try CLI.run(["--to", "f32", model, "-o", a, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        result = try CLI.run(["--to", "f32", a, "-o", directory])
        #expect(result.status == 0, "\(result.stderr)")
        result = try CLI.run(["--to", "f32", directory, "-o", b, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let first = try Data(contentsOf: URL(fileURLWithPath: a)), second = try Data(contentsOf: URL(fileURLWithPath: b))
        #expect(first == second, "\(family): a.gguf (\(first.count) bytes) and b.gguf (\(second.count) bytes) differ")
        // The recovered rope_parameters are the original's (llama3: factor, low/high, original positions).
        func rope(_ path: String) throws -> NSDictionary? {
            let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/config.json"))) as? [String: Any]
            return (config?["rope_parameters"] as? [String: Any]).map { NSDictionary(dictionary: $0) }
        }
        let original = try rope(model), exported = try rope(directory)
        #expect(original != nil && original == exported, "\(family): \(String(describing: exported)) vs \(String(describing: original))")
    }

    @Test("--dry-run writes nothing; fp8 from a GGUF with --eval-text and an existing output are refused with what to do")
    func refusals() throws {
        let scratch = try Fixtures.temporaryDirectory("gguf-hf-refusals")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let directory = scratch.appendingPathComponent("out").path
        var result = try CLI.run(["--to", "bf16", "fixtures/reference-models/llama.gguf", "-o", directory, "--dry-run"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("model.layers.0.self_attn.q_proj.weight") && !FileManager.default.fileExists(atPath: directory))
        result = try CLI.run(["--to", "fp8", "fixtures/reference-models/llama.gguf", "-o", directory, "--eval-text", "fixtures/trained-llama/eval.txt"])
        #expect(result.status == 2 && result.stderr.contains("quantize --to bf16"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory))
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        result = try CLI.run(["--to", "bf16", "fixtures/reference-models/llama.gguf", "-o", directory])
        #expect(result.status == 2 && result.stderr.contains("--force"), "\(result.stderr)")
    }

    @Test("--split-max-tensors / --split-max-size write NAME-0000i-of-0000N.gguf shards holding every tensor once")
    func split() throws {
        let scratch = try Fixtures.temporaryDirectory("gguf-split-cli")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let whole = scratch.appendingPathComponent("whole.gguf").path
        var result = try CLI.run(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", whole, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let target = scratch.appendingPathComponent("split.gguf").path
        result = try CLI.run(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", target, "--no-check", "--split-max-tensors", "8", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let shards = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.hasPrefix("split-") && $0.hasSuffix(".gguf") }.sorted()
        #expect(shards.count >= 2 && shards.first == "split-00001-of-0000\(shards.count).gguf", "\(shards)")
        let summary = try CLI.jsonObject(result.stdout)
        #expect(summary["output"] as? String == scratch.appendingPathComponent(shards[0]).path)
        // The layout verdict of a split output reads the whole set, as llama.cpp loads it from the first shard.
        let layout = (summary["runtimeLayout"] as? [[String: Any]])?.first
        #expect(layout?["loads"] as? Bool == true, "\(String(describing: layout))")
        #expect((layout?["summary"] as? String)?.contains(", \(shards.count) shards") == true, "\(String(describing: layout))")
        // The shards' tensor bytes, concatenated, are the unsplit file's (same order, same padding).
        let wholeBytes = try Data(contentsOf: URL(fileURLWithPath: whole))
        let total = try shards.reduce(0) { $0 + (try Data(contentsOf: scratch.appendingPathComponent($1))).count }
        #expect(total > wholeBytes.count, "each shard carries its own header")
        // Byte for byte what llama-gguf-split --split-max-tensors 8 makes of the unsplit file
        // (tools/gguf_split_oracle.py re-implements gguf-split.cpp on gguf-py's reader).
        let oracle = try OraclePython.run("gguf_split_oracle.py", [whole, scratch.appendingPathComponent("oracle").path,
                                                                   "--split-max-tensors", "8", "--compare", scratch.appendingPathComponent("split").path])
        #expect(String(decoding: oracle, as: UTF8.self).contains("identical"))
        result = try CLI.run(["--to", "q8_0", "fixtures/tiny-llama.gguf", "-o", target, "--no-check", "--split-max-size", "1X"])
        #expect(result.status == 2)
    }
}
