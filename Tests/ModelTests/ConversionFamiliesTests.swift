import Formats
import Foundation
import Model
import Quantize
import Testing
import TestSupport

/// The conversion plans of the other families (llama3-bpe, qwen2-bpe, mistral-sliding) and our
/// f16/bf16/q8_0 files against llama.cpp's converter, as recorded by `tools/hf_to_gguf_oracle.py
/// families` in fixtures/hf-to-gguf/<family>.json.
@Suite("Hugging Face → GGUF conversion of Llama 3 (BPE, rope_freqs), Qwen2 and Mistral")
struct ConversionFamiliesTests {
    static func withDirectory<T>(_ family: String, _ body: (String) throws -> T) throws -> T {
        let scratch = try Fixtures.temporaryDirectory("conv-family")
        defer { try? FileManager.default.removeItem(at: scratch) }
        return try body(try ConversionFixtures.assemble(family, in: scratch))
    }

    @Test("the metadata equals convert_hf_to_gguf's F32 twin key by key, in its order", arguments: ConversionFixtures.families)
    func metadataMatchesTwin(family: String) throws {
        let plan = try Self.withDirectory(family) { try LlamaConversion.plan(for: try Checkpoint(path: $0)) }
        let twin = try #require((try ConversionFixtures.oracle(family)["twin"] as? [String: Any])?["metadata"] as? [[String: Any]])
        let expected = twin.filter { ($0["key"] as? String).map { $0 != "general.file_type" && $0 != "general.quantization_version" } ?? false }
        #expect(plan.metadata.map(\.key) == expected.compactMap { $0["key"] as? String })
        for entry in expected {
            let key = try #require(entry["key"] as? String)
            guard let value = plan.metadata.first(where: { $0.key == key })?.value else { continue }
            #expect(LlamaConversionTests.typeName(value) == entry["type"] as? String, "\(key): type")
            #expect(SHA256.hex(LlamaConversionTests.canonical(value)) == entry["sha256"] as? String, "\(key): differs from the twin's \(entry["value"] ?? "")")
        }
    }

    @Test("tensors: the twin's names, order and GGUF shapes (rope_freqs first for llama3 scaling, Qwen2's biases)", arguments: ConversionFixtures.families)
    func tensorsMatchTwin(family: String) throws {
        let plan = try Self.withDirectory(family) { try LlamaConversion.plan(for: try Checkpoint(path: $0)) }
        let twin = try #require((try ConversionFixtures.oracle(family)["twin"] as? [String: Any])?["tensors"] as? [[String: Any]])
        #expect(plan.tensors.map(\.name) == twin.compactMap { $0["name"] as? String })
        for (tensor, entry) in zip(plan.tensors, twin) {
            #expect(tensor.shape.reversed() == (entry["shape"] as? [Int]) ?? [], "\(tensor.name): shape")
        }
        #expect(plan.tensors.contains { $0.name == "rope_freqs.weight" } == (family == "llama3-bpe"))
        #expect(plan.tensors.contains { $0.permuteHeads != nil } == !family.hasPrefix("qwen"))
        #expect(plan.tensors.contains { $0.name.hasSuffix("attn_q_norm.weight") } == (family == "qwen3-bpe"))
    }

    @Test("llama3 rope_freqs: the converter's F32 bytes")
    func ropeFrequencies() throws {
        let plan = try Self.withDirectory("llama3-bpe") { try LlamaConversion.plan(for: try Checkpoint(path: $0)) }
        let twin = try #require((try ConversionFixtures.oracle("llama3-bpe")["twin"] as? [String: Any])?["tensors"] as? [[String: Any]])
        let expected = try #require(twin.first { $0["name"] as? String == "rope_freqs.weight" })
        let values = try #require(plan.tensors.first?.values)
        #expect(values.withUnsafeBytes { SHA256.hex($0) } == expected["sha256"] as? String, "rope_freqs \(values)")
    }

    @Test("the BPE pre-tokenizer is named from our tokenizer's check-text ids, as the converter names it",
          arguments: [("llama3-bpe", "llama-bpe"), ("qwen2-bpe", "qwen2")])
    func preTokenizerName(family: String, name: String) throws {
        let plan = try Self.withDirectory(family) { try LlamaConversion.plan(for: try Checkpoint(path: $0)) }
        #expect(plan.metadata.first { $0.key == "tokenizer.ggml.pre" }?.value == .string(name))
    }

    @Test("--to f16/bf16/q8_0 equals convert_hf_to_gguf.py --outtype f16/bf16/q8_0 key by key and tensor by tensor",
          arguments: ConversionFixtures.families.flatMap { family in ["f16", "bf16", "q8_0"].map { (family, $0) } })
    func equalsOneStepConverter(family: String, type: String) throws {
        let doc = try ConversionFixtures.oracle(family)
        let direct = try #require((doc["direct"] as? [[String: Any]])?.first { $0["outtype"] as? String == type })
        let scratch = try Fixtures.temporaryDirectory("conv-direct")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let model = try ConversionFixtures.assemble(family, in: scratch)
        let output = scratch.appendingPathComponent("out.gguf").path
        let result = try CLI.run(["--to", type, model, "-o", output, "--no-check", "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        let file = try GGUFFile(path: output)
        let tensors = try #require(direct["tensors"] as? [[String: Any]])
        #expect(file.tensors.map(\.name).sorted() == tensors.compactMap { $0["name"] as? String }.sorted())
        for entry in tensors {
            let name = try #require(entry["name"] as? String)
            guard let info = file.tensor(named: name) else { Issue.record("\(name) missing"); continue }
            #expect(info.type.name == entry["type"] as? String, "\(name): type")
            #expect(info.dimensions == (entry["shape"] as? [Int]), "\(name): shape")
            #expect(SHA256.hex(file.data(for: info)) == entry["sha256"] as? String, "\(name): bytes differ from the converter's --outtype \(type)")
        }
        let metadata = try #require(direct["metadata"] as? [[String: Any]])
        #expect(Set(file.metadata.map(\.key)) == Set(metadata.compactMap { $0["key"] as? String }))
        for entry in metadata {
            let key = try #require(entry["key"] as? String)
            guard let value = file[key] else { continue }
            #expect(SHA256.hex(LlamaConversionTests.canonical(value)) == entry["sha256"] as? String, "\(key): ours differs from the converter's \(entry["value"] ?? "")")
        }
    }
}
