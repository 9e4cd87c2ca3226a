import Foundation
import Fit
import Formats
import FuzzSupport
import Model
import Quantize
import Testing

/// One regression test per fuzzing finding (fuzz/README.md lists them): the input is built here,
/// and the product must refuse it with the specific error instead of trapping.
@Suite("fuzz findings")
struct FuzzFindingTests {
    @Test("an INT8 weight with an empty weight_scale is refused, not divided by zero")
    func emptyScalePartIsRefused() {
        // Found by the decoders target: scaleGrid divided the columns by 0 scale groups.
        let tensor = QuantizedTensor(rows: 8, columns: 1, parts: [
            .init(suffix: "weight", type: .dtype(.i8), shape: [8, 1], data: [UInt8](repeating: 1, count: 8)),
            .init(suffix: "weight_scale", type: .dtype(.f32), shape: [0], data: []),
        ])
        #expect {
            _ = try dequantized(tensor, tensorName: "layer.weight")
        } throws: { error in
            guard case QuantizeError.unsupportedLayout(let name, let found)? = error as? QuantizeError else { return false }
            return name == "layer.weight" && found.contains("0 scales")
        }
        // The fuzzer's own input (type byte 39: INT8 with zero points, 8 rows, no scale bytes).
        let outcome = FuzzTarget.decoders.run([0x27, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x00])
        guard case .rejected(let message) = outcome else {
            Issue.record("expected a refusal, got \(outcome)")
            return
        }
        #expect(message.contains("scales"))
    }
}

/// Findings in config.json readers (found with directed inputs run through the config target's
/// harness: huge sizes, an id beyond 32 bits, a negative layer index).
@Suite("fuzz findings: config.json")
struct ConfigFindingTests {
    static func config(_ extra: String, modelType: String = "llama") -> [UInt8] {
        Array("""
        {"model_type": "\(modelType)", "num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 2, "vocab_size": 10\(extra)}
        """.utf8)
    }

    static func forwardPass(_ bytes: [UInt8]) throws -> TransformerConfiguration {
        try TransformerConfiguration(config: JSONValue.parse(bytes, path: "config.json"), directory: "model")
    }

    @Test("a negative max_window_layers slides every layer, as transformers does, instead of indexing layer -1")
    func negativeMaxWindowLayers() throws {
        let bytes = ConfigFindingTests.config(#", "sliding_window": 4, "use_sliding_window": true, "max_window_layers": -1"#, modelType: "qwen2")
        let configuration = try ConfigFindingTests.forwardPass(bytes)
        #expect(configuration.slidingWindows == [4, 4])
        #expect(FuzzTarget.config.run(bytes).isClear)
    }

    @Test("a bos_token_id beyond 32 bits is refused by name instead of trapping")
    func hugeTokenID() {
        #expect {
            _ = try ConfigFindingTests.forwardPass(ConfigFindingTests.config(#", "bos_token_id": 9999999999"#))
        } throws: { error in
            guard case ModelError.invalidConfiguration(_, let key, let reason)? = error as? ModelError else { return false }
            return key == "bos_token_id" && reason.contains("9999999999")
        }
    }

    @Test("a layer count of 10^14 is refused before anything is allocated per layer")
    func hugeLayerCount() {
        let bytes = Array(#"{"model_type": "llama", "num_hidden_layers": 100000000000000, "hidden_size": 8, "num_attention_heads": 2, "vocab_size": 10}"#.utf8)
        #expect {
            _ = try ConfigFindingTests.forwardPass(bytes)
        } throws: { error in
            guard case ModelError.invalidConfiguration(_, let key, _)? = error as? ModelError else { return false }
            return key == "num_hidden_layers"
        }
        #expect(FuzzTarget.config.run(bytes).isClear)
    }

    @Test("Fit refuses a hidden size of 2^62 (4 × hidden overflowed) and an OPT context of Int.max (+ 2 overflowed)")
    func overflowingShapeArithmetic() throws {
        let hidden = Array(#"{"model_type": "llama", "num_hidden_layers": 1, "hidden_size": 4611686018427387904, "num_attention_heads": 1, "vocab_size": 10}"#.utf8)
        let opt = ConfigFindingTests.config(#", "max_position_embeddings": 9223372036854775807"#, modelType: "opt")
        let experts = ConfigFindingTests.config(#", "num_local_experts": 4611686018427387904"#, modelType: "mixtral")
        for bytes in [hidden, opt, experts] {
            let config = try JSONValue.parse(bytes, path: "config.json")
            #expect {
                _ = try ModelShape(config: config, path: "config.json")
            } throws: { error in
                (error as? FormatError)?.code == .invalidModelConfig
            }
            #expect(FuzzTarget.config.run(bytes).isClear)
        }
    }
}

/// Findings in tokenizer readers.
@Suite("fuzz findings: tokenizers")
struct TokenizerFindingTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    /// `bytes` with the first value of the GGUF float array under `key` set to NaN.
    static func settingFirstFloatToNaN(_ bytes: [UInt8], key: String) -> [UInt8]? {
        let needle = Array(key.utf8)
        guard let start = (0...(bytes.count - needle.count)).first(where: { Array(bytes[$0..<($0 + needle.count)]) == needle }) else { return nil }
        // key, then value type u32 (9 = array), element type u32 (6 = float32), count u64, values.
        let first = start + needle.count + 4 + 4 + 8
        var copy = bytes
        copy.replaceSubrange(first..<(first + 4), with: [0x00, 0x00, 0xC0, 0x7F])
        return copy
    }

    @Test("a GGUF vocabulary with a NaN score is refused, not force-unwrapped (found by the gguf target)")
    func nanScoreInGGUF() throws {
        let original = try [UInt8](Data(contentsOf: TokenizerFindingTests.fixtures.appendingPathComponent("tokenizers/sp-unigram.gguf")))
        let hostile = try #require(TokenizerFindingTests.settingFirstFloatToNaN(original, key: "tokenizer.ggml.scores"))
        guard case .accepted(let summary) = FuzzTarget.gguf.run(original) else {
            Issue.record("the unmodified fixture must be read")
            return
        }
        #expect(summary.contains("sample tokens"))
        // The file stays readable; its tokenizer is refused with the reason.
        let outcome = FuzzTarget.gguf.run(hostile)
        #expect(outcome.isClear)
        let file = try hostile.withUnsafeBytes { raw throws(FormatError) in try GGUFFile(file: MappedFile(copying: raw, path: "nan.gguf")) }
        #expect {
            _ = try TokenizerLoader.load(gguf: file)
        } throws: { error in
            guard case ModelError.unsupportedTokenizer(_, let reason)? = error as? ModelError else { return false }
            return reason.contains("NaN")
        }
    }

    @Test("a tokenizer.model piece with a NaN score is refused")
    func nanScoreInSentencePiece() {
        // pieces { piece: "a" score: NaN } pieces { piece: "b" } trainer_spec { model_type: BPE }
        let bytes: [UInt8] = [0x0A, 0x08, 0x0A, 0x01, 0x61, 0x15, 0x00, 0x00, 0xC0, 0x7F,
                              0x0A, 0x03, 0x0A, 0x01, 0x62, 0x12, 0x02, 0x18, 0x02]
        guard case .rejected(let message) = FuzzTarget.sentencepiece.run(bytes) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(message.contains("NaN"))
    }
}

/// Findings in the tokenizer.json reader (the tokenizer-json target).
@Suite("fuzz findings: tokenizer.json")
struct TokenizerJSONFindingTests {
    static func tokenizer(vocab: String, added: String = "[]") -> [UInt8] {
        Array("""
        {"model": {"type": "BPE", "vocab": {\(vocab)}, "merges": []}, "added_tokens": \(added),
         "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}}
        """.utf8)
    }

    @Test("a vocabulary id of 10^11 is refused before a table of that many ids is allocated (found by libFuzzer)")
    func hugeVocabularyID() {
        let outcome = FuzzTarget.tokenizerJSON.run(TokenizerJSONFindingTests.tokenizer(vocab: #""a": 0, "»": 122147483648"#))
        guard case .rejected(let message) = outcome else {
            Issue.record("expected a refusal, got \(outcome)")
            return
        }
        #expect(message.contains("ids run to 122147483648"))
    }

    @Test("an added token id beyond 32 bits is refused instead of trapping in Int32(_:)")
    func hugeAddedTokenID() {
        let outcome = FuzzTarget.tokenizerJSON.run(TokenizerJSONFindingTests.tokenizer(
            vocab: #""a": 0"#, added: #"[{"id": 4294967296, "content": "<s>", "special": true}]"#))
        guard case .rejected(let message) = outcome else {
            Issue.record("expected a refusal, got \(outcome)")
            return
        }
        #expect(message.contains("4294967296"))
    }

    @Test("a vocabulary with a gap of up to 2^20 ids is still read")
    func gapsAreAllowed() {
        let outcome = FuzzTarget.tokenizerJSON.run(TokenizerJSONFindingTests.tokenizer(vocab: #""a": 0, "b": 1000"#))
        #expect(outcome.isClear)
        if case .rejected(let message) = outcome { #expect(!message.contains("ids run to")) }
    }
}
