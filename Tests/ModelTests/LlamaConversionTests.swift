import Foundation
import Formats
import Model
import Quantize
import Testing
import TestSupport

/// The conversion plan of fixtures/trained-llama against llama.cpp's F32 twin of it, as recorded by
/// tools/hf_to_gguf_oracle.py in fixtures/hf-to-gguf/trained-llama.json.
@Suite("Hugging Face llama → GGUF conversion plan")
struct LlamaConversionTests {
    /// The oracle's canonical form of a value (see tools/hf_to_gguf_oracle.py).
    static func canonical(_ value: GGUFValue) -> [UInt8] {
        switch value {
        case .float32(let v): return Array(String(format: "%08x", v.bitPattern).utf8)
        case .float64(let v): return Array(String(format: "%016llx", v.bitPattern).utf8)
        case .bool(let b): return Array((b ? "1" : "0").utf8)
        case .string(let s): return Array(s.utf8)
        case .array(_, let items):
            return items.flatMap { item -> [UInt8] in
                let form = canonical(item)
                return Array("\(form.count):".utf8) + form
            }
        default: return Array("\(value.int ?? 0)".utf8)
        }
    }

    static func typeName(_ value: GGUFValue) -> String {
        if case .array(let element, _) = value { return "array[\(element.description)]" }
        return value.type.description
    }

    static func oracle() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("hf-to-gguf/trained-llama.json")))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test("the metadata equals convert_hf_to_gguf's F32 twin key by key, in its order (file type and quantization version left to the sink)")
    func metadataMatchesTwin() throws {
        let plan = try LlamaConversion.plan(for: try Checkpoint(path: Fixtures.path("trained-llama")))
        let twin = try #require((try Self.oracle()["twin"] as? [String: Any])?["metadata"] as? [[String: Any]])
        let expected = twin.filter { ($0["key"] as? String).map { $0 != "general.file_type" && $0 != "general.quantization_version" } ?? false }
        #expect(plan.metadata.map(\.key) == expected.compactMap { $0["key"] as? String })
        for entry in expected {
            let key = try #require(entry["key"] as? String)
            guard let value = plan.metadata.first(where: { $0.key == key })?.value else {
                Issue.record("the plan lacks \(key)")
                continue
            }
            #expect(Self.typeName(value) == entry["type"] as? String, "\(key): type")
            #expect(SHA256.hex(Self.canonical(value)) == entry["sha256"] as? String, "\(key): value differs from the twin's \(entry["value"] ?? "")")
        }
    }

    @Test("tensors: llama.cpp names, GGUF shapes, Q permuted by the head count and K by the key/value head count, all F32")
    func tensors() throws {
        let plan = try LlamaConversion.plan(for: try Checkpoint(path: Fixtures.path("trained-llama")))
        #expect(plan.tensors.count == 39)
        #expect(plan.tensors.first?.name == "output.weight" && plan.tensors.first?.source == "lm_head.weight")
        let q = try #require(plan.tensors.first { $0.name == "blk.2.attn_q.weight" })
        #expect(q.source == "model.layers.2.self_attn.q_proj.weight" && q.permuteHeads == 4 && q.shape == [256, 256])
        let k = try #require(plan.tensors.first { $0.name == "blk.0.attn_k.weight" })
        #expect(k.permuteHeads == 2 && k.shape == [128, 256])
        #expect(plan.tensors.filter { $0.permuteHeads != nil }.count == 8)
        #expect(plan.tensors.allSatisfy { $0.type == .f32 })
    }

    @Test("the row permutation is llama.cpp's reshape(h, 2, rows/h/2, cols).swapaxes(1, 2)", arguments: [(8, 1), (8, 2), (12, 3), (256, 4)])
    func permutation(rows: Int, heads: Int) {
        // The reshape written out: output index (a, j, b) over (heads, rows/heads/2, 2) reads input (a, b, j).
        let half = rows / heads / 2
        var expected: [Int] = []
        for a in 0..<heads { for j in 0..<half { for b in 0..<2 { expected.append(a * 2 * half + b * half + j) } } }
        #expect((0..<rows).map { ConversionPlan.permutedSourceRow($0, rows: rows, heads: heads) } == expected)
    }

    /// A model directory holding only the given files (no weights at all).
    static func directory(_ files: [String: String], copying: [String] = []) throws -> URL {
        let dir = try Fixtures.temporaryDirectory("conv-refuse")
        for (name, text) in files { try text.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        for name in copying {
            try FileManager.default.copyItem(atPath: Fixtures.path("trained-llama/" + name), toPath: dir.appendingPathComponent(name).path)
        }
        return dir
    }

    static let llamaConfig = #"{"architectures":["LlamaForCausalLM"],"model_type":"llama","num_hidden_layers":2,"hidden_size":64,"num_attention_heads":2,"intermediate_size":128,"vocab_size":3072"#

    @Test("unsupported models are refused from config.json and tokenizer files alone, naming what is missing", arguments: [
        ("", "there is no config.json"),
        (#"{"architectures":["Gemma2ForCausalLM"],"model_type":"gemma2"}"#, "model_type is 'gemma2'"),
        (#"{"architectures":["Qwen2Model"],"model_type":"qwen2"}"#, "not Qwen2ForCausalLM"),
        (llamaConfig + #","rope_scaling":{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":4096}}"#, "RoPE scaling 'yarn'"),
        (llamaConfig + #","attention_bias":true}"#, "attention_bias"),
        (llamaConfig + #","num_local_experts":8}"#, "num_local_experts"),
        (llamaConfig + #","quantization_config":{"quant_method":"compressed-tensors","format":"float-quantized"}}"#, "quantization_config has no config_groups"),
        (llamaConfig + #","quantization_config":{"quant_method":"gptq","bits":4}}"#, "quant_method 'gptq'"),
        (llamaConfig + #","quantization_config":{"quant_method":"compressed-tensors","format":"nvfp4-pack-quantized","config_groups":{"group_0":{"weights":{"num_bits":4,"type":"float"}}}}}"#, "'nvfp4-pack-quantized', which is not decoded"),
        (llamaConfig + #","quantization_config":{"quant_method":"compressed-tensors","format":"pack-quantized","config_groups":{"group_0":{"weights":{"num_bits":4,"type":"int","actorder":"group"}}}}}"#, "actorder 'group'"),
        (llamaConfig + #","quantization_config":{"quant_method":"compressed-tensors","format":"pack-quantized","sparsity_config":{"format":"sparse-24-bitmask"},"config_groups":{"group_0":{"weights":{"num_bits":4,"type":"int"}}}}}"#, "sparse-compressed"),
        (llamaConfig + #","quantization_config":{"quant_method":"fp8","weight_block_size":[128]}}"#, "weight_block_size is not two positive integers"),
        (llamaConfig + "}", "there is no tokenizer.model (SentencePiece) and no tokenizer.json"),
    ])
    func refusals(config: String, message: String) throws {
        let dir = try Self.directory(config.isEmpty ? [:] : ["config.json": config])
        defer { try? FileManager.default.removeItem(at: dir) }
        let error = #expect(throws: QuantizeJobError.self) { try LlamaConversion.check(directory: dir.path) }
        #expect(error?.code == .unsupportedConversion)
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("convert_hf_to_gguf.py") == true)
    }

    static let qwen2Config = #"{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","num_hidden_layers":2,"hidden_size":64,"num_attention_heads":2,"intermediate_size":128,"vocab_size":3072"#

    @Test("BPE tokenizers the converter would not take are refused up front", arguments: [
        // A byte-level BPE trained on our own text: its check-text hash is in no table.
        ("llama", "tokenizers/bpe-llama3", nil, "does not recognize this BPE pre-tokenizer: the check-text hash"),
        ("llama", "hf-to-gguf/llama3-bpe", #"{"tokenizer_class":"CodeGenTokenizerFast"}"#, "tokenizer_class 'CodeGenTokenizerFast'"),
        ("qwen2", "tokenizers/bpe-qwen2", nil, "does not recognize this BPE pre-tokenizer"),
    ] as [(String, String, String?, String)])
    func bpeRefusals(family: String, tokenizer: String, tokenizerConfig: String?, message: String) throws {
        let config = (family == "llama" ? Self.llamaConfig.replacingOccurrences(of: "3072", with: "200000") : Self.qwen2Config.replacingOccurrences(of: "3072", with: "200000")) + "}"
        var files = ["config.json": config, "tokenizer.json": try String(contentsOfFile: Fixtures.path(tokenizer + "/tokenizer.json"), encoding: .utf8)]
        if let tokenizerConfig { files["tokenizer_config.json"] = tokenizerConfig }
        let dir = try Self.directory(files)
        defer { try? FileManager.default.removeItem(at: dir) }
        let error = #expect(throws: QuantizeJobError.self) { try LlamaConversion.check(directory: dir.path) }
        #expect(error?.code == .unsupportedConversion)
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
    }

    @Test("Qwen2 with a SentencePiece tokenizer.model is refused (converted for llama and Mistral)")
    func qwen2SentencePiece() throws {
        let dir = try Self.directory(["config.json": Self.qwen2Config + "}"], copying: ["tokenizer.model"])
        defer { try? FileManager.default.removeItem(at: dir) }
        let error = #expect(throws: QuantizeJobError.self) { try LlamaConversion.check(directory: dir.path) }
        #expect(error?.message.contains("SentencePiece tokenizer.model, which is converted for llama and Mistral only") == true, "\(error?.message ?? "")")
    }

    @Test("a plain llama config with tokenizer.model passes the up-front check")
    func acceptsLlama() throws {
        let dir = try Self.directory(["config.json": Self.llamaConfig + "}"], copying: ["tokenizer.model"])
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: Never.self) { try LlamaConversion.check(directory: dir.path) }
    }
}

/// The variant of tools/hf_to_gguf_oracle.py: trained-llama's weights and tokenizer under the
/// directory name `trained-llama-v0.2`, with fixtures/hf-to-gguf/variant/ over its text files (a
/// model id in `_name_or_path`, linear RoPE scaling, sampling defaults, a chat template,
/// add_eos/add_prefix_space, added tokens).
@Suite("Hugging Face llama → GGUF conversion of the variant directory")
struct LlamaConversionVariantTests {
    static func makeVariant() throws -> (URL, String) {
        let scratch = try Fixtures.temporaryDirectory("conv-variant")
        let doc = try LlamaConversionTests.oracle()
        let name = try #require((doc["variant"] as? [String: Any])?["directory_name"] as? String)
        let target = scratch.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        let fm = FileManager.default
        for file in ["model.safetensors", "tokenizer.model", "tokenizer.json", "tokenizer_config.json"] {
            try fm.copyItem(atPath: Fixtures.path("trained-llama/" + file), toPath: target.appendingPathComponent(file).path)
        }
        let overlay = Fixtures.path("hf-to-gguf/variant")
        for file in try fm.contentsOfDirectory(atPath: overlay) {
            let to = target.appendingPathComponent(file).path
            if fm.fileExists(atPath: to) { try fm.removeItem(atPath: to) }
            try fm.copyItem(atPath: overlay + "/" + file, toPath: to)
        }
        return (scratch, target.path)
    }

    @Test("the metadata equals the converter's twin of the variant key by key, in its order")
    func metadataMatchesTwin() throws {
        let (scratch, model) = try Self.makeVariant()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let plan = try LlamaConversion.plan(for: try Checkpoint(path: model))
        let variant = try #require(try LlamaConversionTests.oracle()["variant"] as? [String: Any])
        let twin = try #require((variant["twin"] as? [String: Any])?["metadata"] as? [[String: Any]])
        let expected = twin.filter { ($0["key"] as? String).map { $0 != "general.file_type" && $0 != "general.quantization_version" } ?? false }
        #expect(plan.metadata.map(\.key) == expected.compactMap { $0["key"] as? String })
        for entry in expected {
            let key = try #require(entry["key"] as? String)
            guard let value = plan.metadata.first(where: { $0.key == key })?.value else { continue }
            #expect(LlamaConversionTests.typeName(value) == entry["type"] as? String, "\(key): type")
            #expect(SHA256.hex(LlamaConversionTests.canonical(value)) == entry["sha256"] as? String,
                    "\(key): value differs from the twin's \(entry["value"] ?? "")")
        }
    }
}
