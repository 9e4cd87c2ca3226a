import Foundation
import Formats
import Quantize
import Testing
import TestSupport
@testable import Model

/// GGUF → Hugging Face directory (``HuggingFaceExport`` + ``ExportJob``), against files written by
/// independent tools: fixtures/reference-models/llama.gguf is the F32 twin gguf-py wrote of
/// fixtures/reference-models/llama (transformers' BF16 save) with convert_hf_to_gguf.py's Q/K
/// permutation (tools/reference_logits.py), and the tokenizer GGUFs are llama.cpp conversions of
/// the tokenizer directories beside them (tools/compare_tokenizers.py).
@Suite("GGUF → Hugging Face export")
struct HuggingFaceExportTests {
    static func export(_ gguf: String, dtype: DType, maxShard: Int? = nil) throws -> (URL, String) {
        let scratch = try Fixtures.temporaryDirectory("gguf-export")
        let output = scratch.appendingPathComponent("model").path
        let plan = try HuggingFaceExport.plan(for: try GGUFFile(path: gguf))
        var settings = ExportJob.Settings(dtype: dtype, output: output)
        if let maxShard { settings.maxShardByteCount = maxShard }
        _ = try ExportJob(input: gguf, plan: plan, settings: settings).run()
        return (scratch, output)
    }

    @Test("the exported F32 tensors are the original BF16 checkpoint's values, Q/K rows back in Hugging Face order")
    func tensorsEqualOriginal() throws {
        let (scratch, output) = try Self.export(Fixtures.path("reference-models/llama.gguf"), dtype: .f32)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let original = try Checkpoint(path: Fixtures.path("reference-models/llama"))
        let exported = try Checkpoint(path: output)
        #expect(Set(exported.tensors.map(\.name)) == Set(original.tensors.map(\.name)))
        for tensor in original.tensors {
            let mine = try #require(exported.tensors.first { $0.name == tensor.name }, "\(tensor.name) is missing")
            #expect(mine.shape == tensor.shape, "\(tensor.name): shape \(mine.shape), expected \(tensor.shape)")
            #expect(mine.type == .dtype(.f32))
            var expected = [Float](repeating: 0, count: tensor.elementCount)
            try expected.withUnsafeMutableBufferPointer { try ElementConversion.toFloat32(try original.readData(for: tensor), from: .bf16, into: $0) }
            let bytes = try exported.readData(for: mine)
            let values = (0..<mine.elementCount).map { bytes.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
            // BF16 → F32 (gguf-py) → F32 is exact: the same bits, not a tolerance.
            #expect(values.map(\.bitPattern) == expected.map(\.bitPattern), "\(tensor.name) differs from the original")
        }
    }

    @Test("BF16 export writes the original's bytes; a small shard limit splits into transformers' shard names with an index")
    func bf16AndShards() throws {
        let (scratch, output) = try Self.export(Fixtures.path("reference-models/llama.gguf"), dtype: .bf16, maxShard: 20_000)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let names = try FileManager.default.contentsOfDirectory(atPath: output).sorted()
        #expect(names.contains("model.safetensors.index.json"))
        let shards = names.filter { $0.hasSuffix(".safetensors") }
        #expect(shards.count > 1 && shards.allSatisfy { $0.hasPrefix("model-0000") && $0.contains("-of-0000") }, "\(shards)")
        let original = try Checkpoint(path: Fixtures.path("reference-models/llama"))
        let exported = try Checkpoint(path: output)
        for tensor in original.tensors {
            let mine = try #require(exported.tensors.first { $0.name == tensor.name })
            #expect(Array(try exported.readData(for: mine)) == Array(try original.readData(for: tensor)), "\(tensor.name)")
        }
        let index = try JSONValue.parse(contentsOf: output + "/model.safetensors.index.json")
        #expect(index["metadata"]?["total_size"]?.int == exported.tensorByteCount)
        #expect(index["weight_map"]?.object?.count == original.tensors.count)
    }

    @Test("config.json carries the architecture and sizes transformers reads")
    func configKeys() throws {
        let (scratch, output) = try Self.export(Fixtures.path("reference-models/llama.gguf"), dtype: .f32)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let config = try JSONValue.parse(contentsOf: output + "/config.json")
        let original = try JSONValue.parse(contentsOf: Fixtures.path("reference-models/llama/config.json"))
        for key in ["architectures", "model_type", "hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
                    "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "rope_parameters",
                    "tie_word_embeddings", "vocab_size", "bos_token_id", "hidden_act"] {
            #expect(config[key] == original[key], "config.json \(key): \(config[key].map { $0.serializedString() } ?? "missing"), expected \(original[key].map { $0.serializedString() } ?? "missing")")
        }
        #expect(config["dtype"]?.string == "float32")
        #expect(FileManager.default.fileExists(atPath: output + "/generation_config.json"))
    }

    /// Texts holding a user-defined token are left out for SentencePiece: llama.cpp puts a space
    /// prefix on the text after such a token (sp-unigram-bytes' `<sep>`: `▁ <sep> ▁ ▁`), which the
    /// sentencepiece library — and so transformers and the rebuilt tokenizer.model — does not.
    @Test("a rebuilt tokenizer.model tokenizes the texts as the GGUF vocabulary does", arguments: ["sp-bpe", "sp-unigram-bytes", "trained-llama"])
    func sentencePieceRebuilt(name: String) throws {
        let gguf = try GGUFFile(path: Fixtures.path("tokenizers/\(name).gguf"))
        try Self.compareRebuilt(gguf, expectFile: "tokenizer.model", skippingUserDefined: true)
    }

    @Test("a rebuilt tokenizer.json (byte-level BPE) tokenizes the texts as the GGUF vocabulary does", arguments: ["bpe-llama3", "bpe-qwen2"])
    func bytePairRebuilt(name: String) throws {
        let gguf = try GGUFFile(path: Fixtures.path("tokenizers/\(name).gguf"))
        try Self.compareRebuilt(gguf, expectFile: "tokenizer.json")
    }

    static func compareRebuilt(_ gguf: GGUFFile, expectFile: String, skippingUserDefined: Bool = false) throws {
        let export = try TokenizerExport(gguf: gguf)
        #expect(export.files.map(\.name) == [expectFile, "tokenizer_config.json"])
        let scratch = try Fixtures.temporaryDirectory("tokenizer-export")
        defer { try? FileManager.default.removeItem(at: scratch) }
        for file in export.files { try Data(file.bytes).write(to: scratch.appendingPathComponent(file.name)) }
        let options = TokenizerOptions(parsesSpecialTokens: false)
        let rebuilt = try TokenizerLoader.load(directory: scratch.path, options: options)
        let original = try TokenizerLoader.load(gguf: gguf, options: options)
        #expect(rebuilt.bosTokenID == original.bosTokenID)
        #expect(rebuilt.addsBOS == original.addsBOS)
        #expect(TokenizerReferenceCase.texts.count >= 15)
        let tokens = gguf["tokenizer.ggml.tokens"]?.array?.compactMap(\.string) ?? []
        let types = gguf["tokenizer.ggml.token_type"]?.array?.compactMap(\.int) ?? []
        let userDefined = zip(tokens, types).filter { $0.1 == 4 }.map(\.0)
        var compared = 0
        for text in TokenizerReferenceCase.texts {
            if skippingUserDefined && userDefined.contains(where: { text.contains($0) }) { continue }
            compared += 1
            let ids = try rebuilt.encode(text), expected = try original.encode(text)
            #expect(ids == expected, "\(gguf.path) rebuilt as \(expectFile) tokenizes \(text.debugDescription.prefix(60)) differently")
        }
        #expect(compared >= 12, "only \(compared) texts compared")
    }

    @Test("the rebuilt SentencePiece model reads back piece for piece: text, score and type")
    func sentencePieceRoundTrip() throws {
        let path = Fixtures.path("trained-llama/tokenizer.model")
        let file = try MappedFile(path: path)
        let model = try SentencePieceModel(bytes: file.bytes, path: path)
        let rebuilt = SentencePieceModel(pieces: model.pieces, scores: model.scores, types: model.types, algorithm: model.algorithm,
                                         byteFallback: model.byteFallback, unknownID: model.unknownID, bosID: model.bosID,
                                         eosID: model.eosID, addsDummyPrefix: model.addsDummyPrefix)
        let bytes = rebuilt.serialized()
        let back = try bytes.withUnsafeBytes { try SentencePieceModel(bytes: $0, path: "rebuilt") }
        #expect(back.pieces == model.pieces)
        #expect(back.scores.map(\.bitPattern) == model.scores.map(\.bitPattern))
        #expect(back.types == model.types)
        #expect(back.algorithm == model.algorithm && back.byteFallback == model.byteFallback)
        #expect(back.unknownID == model.unknownID && back.bosID == model.bosID && back.eosID == model.eosID)
        #expect(back.addsDummyPrefix == model.addsDummyPrefix && back.removesExtraWhitespaces == model.removesExtraWhitespaces)
    }

    @Test("the inverse Q/K permutation undoes llama.cpp's permutation row for row", arguments: [(8, 1), (8, 2), (64, 4), (96, 6)])
    func inversePermutation(rows: Int, heads: Int) {
        for row in 0..<rows {
            let gguf = ExportPlan.ggufRow(holding: row, rows: rows, heads: heads)
            #expect(ConversionPlan.permutedSourceRow(gguf, rows: rows, heads: heads) == row)
        }
    }

    @Test("an architecture or tensor the export does not carry is refused, naming it")
    func refusals() throws {
        // A vocabulary-only GGUF has no token_embd.weight.
        #expect(throws: QuantizeJobError.self) { try HuggingFaceExport.plan(for: try GGUFFile(path: Fixtures.path("tokenizers/sp-bpe.gguf"))) }
        do {
            _ = try HuggingFaceExport.plan(for: try GGUFFile(path: Fixtures.path("tokenizers/sp-bpe.gguf")))
        } catch let error as QuantizeJobError {
            #expect(error.message.contains("token_embd.weight"), "\(error.message)")
        }
    }
}
