import Foundation
import Testing
import TestSupport

/// `quantize --to TYPE fixtures/trained-llama -o OUT.gguf` against llama.cpp's two-step path
/// (convert_hf_to_gguf.py --outtype f32, then llama-quantize), whose files' sha256 are recorded by
/// tools/hf_to_gguf_oracle.py in fixtures/hf-to-gguf/trained-llama.json.
@Suite("quantize --to TYPE from a Hugging Face llama directory")
struct HFToGGUFCLITests {
    static let types = ["q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k", "iq4_xs",
                        "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q3_k", "q4_k", "q5_k", "iq4_nl"]

    static func expected(_ type: String) throws -> (sha256: String, llama: String)? {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("hf-to-gguf/trained-llama.json")))
        let doc = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let outputs = doc?["outputs"] as? [[String: Any]] ?? []
        guard let entry = outputs.first(where: { $0["to"] as? String == type }),
              let sha = entry["sha256"] as? String, let llama = entry["llama_quantize"] as? String else { return nil }
        return (sha, llama)
    }

    @Test("the file is byte-identical to llama-quantize of llama.cpp's F32 conversion", arguments: types)
    func byteIdentical(type: String) throws {
        let expected = try #require(try Self.expected(type), "fixtures/hf-to-gguf/trained-llama.json has no entry for \(type)")
        let scratch = try Fixtures.temporaryDirectory("hf-to-gguf")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let output = scratch.appendingPathComponent("out.gguf").path
        let result = try CLI.run(["--to", type, "fixtures/trained-llama", "-o", output, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: output)))
        #expect(SHA256.hex(bytes) == expected.sha256, "--to \(type) differs from llama-quantize \(expected.llama) of the F32 twin")
    }

    @Test("the variant directory (model id, linear RoPE, chat template, added tokens) converts byte-identically too", arguments: ["q4_k_m", "f16"])
    func variant(type: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("hf-to-gguf/trained-llama.json")))
        let doc = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let variant = try #require(doc["variant"] as? [String: Any])
        let name = try #require(variant["directory_name"] as? String)
        let entry = try #require((variant["outputs"] as? [[String: Any]])?.first { $0["to"] as? String == type })
        let scratch = try Fixtures.temporaryDirectory("hf-to-gguf-variant")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let model = scratch.appendingPathComponent(name)
        let fm = FileManager.default
        try fm.createDirectory(at: model, withIntermediateDirectories: true)
        for file in ["model.safetensors", "tokenizer.model", "tokenizer.json", "tokenizer_config.json"] {
            try fm.copyItem(atPath: Fixtures.path("trained-llama/" + file), toPath: model.appendingPathComponent(file).path)
        }
        for file in try fm.contentsOfDirectory(atPath: Fixtures.path("hf-to-gguf/variant")) {
            let to = model.appendingPathComponent(file).path
            if fm.fileExists(atPath: to) { try fm.removeItem(atPath: to) }
            try fm.copyItem(atPath: Fixtures.path("hf-to-gguf/variant/" + file), toPath: to)
        }
        let output = scratch.appendingPathComponent("out.gguf").path
        let result = try CLI.run(["--to", type, model.path, "-o", output, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: output)))
        #expect(SHA256.hex(bytes) == entry["sha256"] as? String, "--to \(type) of the variant differs from llama-quantize \(entry["llama_quantize"] ?? "")")
    }

    @Test("other shapes: two shards with an index and a vocabulary shorter than tokenizer.model (tiny-llama), tied embeddings and row-length fallbacks (llama-tied)",
          arguments: [("tiny-llama", "q4_k_m"), ("tiny-llama", "q8_0"), ("llama-tied", "q4_k_m"), ("llama-tied", "q8_0")])
    func others(model name: String, type: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("hf-to-gguf/trained-llama.json")))
        let doc = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let entry = try #require((doc["others"] as? [[String: Any]])?.first { $0["model"] as? String == name && $0["to"] as? String == type })
        let source = try #require(entry["source"] as? String)
        let scratch = try Fixtures.temporaryDirectory("hf-to-gguf-other")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let model = scratch.appendingPathComponent(name).path
        try FileManager.default.copyItem(atPath: Fixtures.repositoryRoot.appendingPathComponent(source).path, toPath: model)
        try FileManager.default.copyItem(atPath: Fixtures.path("trained-llama/tokenizer.model"), toPath: model + "/tokenizer.model")
        let output = scratch.appendingPathComponent("out.gguf").path
        let result = try CLI.run(["--to", type, model, "-o", output, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: output)))
        #expect(SHA256.hex(bytes) == entry["sha256"] as? String, "\(name) --to \(type) differs from llama-quantize \(entry["llama_quantize"] ?? "")")
    }

    @Test("the default output is a .gguf beside the directory, and an unsupported directory is refused before any weight is read")
    func defaultNameAndRefusal() throws {
        let scratch = try Fixtures.temporaryDirectory("hf-to-gguf-name")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let model = scratch.appendingPathComponent("trained-llama").path
        try FileManager.default.copyItem(atPath: Fixtures.path("trained-llama"), toPath: model)
        let result = try CLI.run(["--to", "q8_0", model, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: model + "-q8_0.gguf"))
        // Weights that cannot be read do not matter: the tokenizer is what is missing.
        try FileManager.default.removeItem(atPath: model + "/tokenizer.model")
        try Data("not safetensors".utf8).write(to: URL(fileURLWithPath: model + "/model.safetensors"))
        let refused = try CLI.run(["--to", "q4_k_m", model, "-o", scratch.appendingPathComponent("x.gguf").path])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("there is no tokenizer.model"), "\(refused.stderr)")
    }
}
