import Formats
import Foundation
import Testing
import TestSupport

/// `quantize --to fp8|int8|int4 MODEL.gguf -o DIR/`: a GGUF straight to a compressed-tensors
/// directory. The F32 GGUF of trained-llama holds its BF16 weights exactly, so the export must
/// equal `quantize --to SCHEME fixtures/trained-llama` tensor for tensor (names, dtypes, shapes,
/// bytes) and in its quantization_config.
@Suite("quantize --to fp8|int8|int4 from a GGUF")
struct GGUFQuantizedExportCLITests {
    static func tensors(_ directory: String) throws -> [String: String] {
        let checkpoint = try Checkpoint(path: directory)
        var out: [String: String] = [:]
        for tensor in checkpoint.tensors {
            out[tensor.name] = "\(tensor.type) \(tensor.shape) " + SHA256.hex([UInt8](try checkpoint.readData(for: tensor)))
        }
        return out
    }

    static func quantizationConfig(_ directory: String) throws -> String? {
        try JSONValue.parse(contentsOf: directory + "/config.json")["quantization_config"]?.serializedString(.compact)
    }

    @Test("the export equals the same scheme run on the Hugging Face original", arguments: [
        ["--to", "fp8"], ["--to", "int8"], ["--to", "int4"], ["--to", "int4", "--asymmetric", "--group-size", "32"],
    ])
    func equalsDirectoryRun(arguments: [String]) throws {
        let scratch = try Fixtures.temporaryDirectory("gguf-quantized-export")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let twin = scratch.appendingPathComponent("twin.gguf").path
        var result = try CLI.run(["--to", "f32", Fixtures.path("trained-llama"), "-o", twin, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let exported = scratch.appendingPathComponent("exported").path
        result = try CLI.run(arguments + [twin, "-o", exported])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("quantized, the rest BF16"), "\(result.stderr)")
        #expect(result.stderr.contains("layout vllm: loads"), "\(result.stderr)")
        let direct = scratch.appendingPathComponent("direct").path
        result = try CLI.run(arguments + [Fixtures.path("trained-llama"), "-o", direct, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let ours = try Self.tensors(exported), theirs = try Self.tensors(direct)
        #expect(ours.count == theirs.count && ours.count > 39)
        for (name, value) in theirs { #expect(ours[name] == value, "\(arguments.joined(separator: " ")): \(name)") }
        #expect(try Self.quantizationConfig(exported) == (try Self.quantizationConfig(direct)))
        #expect(try Self.quantizationConfig(exported) != nil)
    }

    @Test("a tied output head (tie_word_embeddings) goes into quantization_config.ignore, from a directory and from a GGUF")
    func tiedHead() throws {
        let scratch = try Fixtures.temporaryDirectory("gguf-quantized-export-tied")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let model = scratch.appendingPathComponent("tied").path
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        for file in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: Fixtures.path("reference-models/llama-tied/" + file), toPath: model + "/" + file)
        }
        try FileManager.default.copyItem(atPath: Fixtures.path("trained-llama/tokenizer.model"), toPath: model + "/tokenizer.model")
        let gguf = scratch.appendingPathComponent("tied.gguf").path
        var result = try CLI.run(["--to", "f32", model, "-o", gguf, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        for input in [model, gguf] {
            let output = scratch.appendingPathComponent(input == model ? "from-dir" : "from-gguf").path
            result = try CLI.run(["--to", "int4", "--group-size", "32", input, "-o", output, "--no-check", "--quiet"])
            #expect(result.status == 0, "\(result.stderr)")
            let ignore = try JSONValue.parse(contentsOf: output + "/config.json")["quantization_config"]?["ignore"]?.array?.compactMap(\.string)
            #expect(ignore == ["lm_head"], "\(input): \(String(describing: ignore))")
            result = try CLI.run(["verify", "--target", "transformers", "--target", "vllm", "--no-load", output])
            #expect(result.status == 0 && !result.stdout.contains("error:"), "\(result.stdout)\(result.stderr)")
        }
        // The rule itself: without lm_head in ignore, verify says why transformers would fail.
        let output = scratch.appendingPathComponent("from-dir").path
        var config = try String(contentsOfFile: output + "/config.json", encoding: .utf8)
        config = config.replacingOccurrences(of: "\"lm_head\"", with: "\"model.embed_tokens\"")
        try config.write(toFile: output + "/config.json", atomically: true, encoding: .utf8)
        result = try CLI.run(["verify", "--target", "transformers", "--no-load", output])
        #expect(result.status != 0 && (result.stdout + result.stderr).contains("lm_head: is tied to the embedding"), "\(result.stdout)\(result.stderr)")
    }

    @Test("from a q8_0 GGUF, --only/--skip select by Hugging Face names; options that need the original are refused")
    func selectionAndRefusals() throws {
        let scratch = try Fixtures.temporaryDirectory("gguf-quantized-export-q8")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let gguf = scratch.appendingPathComponent("q8.gguf").path
        var result = try CLI.run(["--to", "q8_0", Fixtures.path("trained-llama"), "-o", gguf, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let output = scratch.appendingPathComponent("fp8").path
        result = try CLI.run(["--to", "fp8", gguf, "-o", output, "--skip", "*.mlp.down_proj.weight", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let written = try Self.tensors(output)
        #expect(written["model.layers.0.self_attn.q_proj.weight"]?.hasPrefix("F8_E4M3") == true, "\(written.keys.sorted().prefix(5))")
        #expect(written["model.layers.0.mlp.down_proj.weight"]?.hasPrefix("BF16") == true)
        #expect(written["model.layers.0.mlp.down_proj.weight_scale"] == nil)
        let ignore = try JSONValue.parse(contentsOf: output + "/config.json")["quantization_config"]?["ignore"]?.array?.compactMap(\.string) ?? []
        #expect(ignore.contains("model.layers.0.mlp.down_proj") && ignore.contains("lm_head"), "\(ignore)")

        result = try CLI.run(["--to", "int4", gguf, "-o", scratch.appendingPathComponent("hqq").path, "--method", "hqq", "--quiet"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--method hqq runs on a Hugging Face input only"), "\(result.stderr)")
        result = try CLI.run(["--to", "int4", gguf, "-o", scratch.appendingPathComponent("x.gguf").path, "--quiet"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("writes a Hugging Face safetensors directory"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.appendingPathComponent("hqq").path))
    }
}
