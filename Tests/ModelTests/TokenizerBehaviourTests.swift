import Foundation
import Formats
import Testing
import TestSupport
@testable import Model

@Suite("tokenizer loading, errors, decoding and twin comparison")
struct TokenizerBehaviourTests {
    static func directory(_ files: [String: String]) throws -> String {
        let url = try Fixtures.temporaryDirectory("tokenizer")
        for (name, content) in files { try content.write(to: url.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        return url.path
    }

    /// The reason of the `unsupportedTokenizer` error `body` throws; nil when it throws nothing.
    static func reason(_ body: () throws -> Void) -> String? {
        do { try body() } catch {
            if case .unsupportedTokenizer(_, let reason)? = error as? ModelError { return reason }
            return "other error: \(error)"
        }
        return nil
    }

    @Test("a directory without tokenizer files names both files it looked for")
    func missingFiles() throws {
        let path = try Self.directory([:])
        let reason = Self.reason { _ = try TokenizerLoader.load(directory: path) }
        #expect(reason?.contains("tokenizer.json") == true && reason?.contains("tokenizer.model") == true)
    }

    @Test("a tokenizer.json of another model type names the type")
    func unsupportedModelType() throws {
        let path = try Self.directory(["tokenizer.json": #"{"model": {"type": "WordPiece", "vocab": {"a": 0}}}"#])
        let reason = Self.reason { _ = try TokenizerLoader.load(directory: path) }
        #expect(reason?.contains("'WordPiece'") == true)
    }

    @Test("an unknown Split regex is refused with the regex quoted")
    func unsupportedRegex() throws {
        let json = #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}}"#
        let path = try Self.directory(["tokenizer.json": json])
        let reason = Self.reason { _ = try TokenizerLoader.load(directory: path) }
        #expect(reason?.contains(#"\d+"#) == true)
    }

    @Test("a merge naming a token outside the vocabulary is refused with its rank")
    func badMerge() throws {
        let json = #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}}"#
        let path = try Self.directory(["tokenizer.json": json])
        let reason = Self.reason { _ = try TokenizerLoader.load(directory: path) }
        #expect(reason?.contains("merge 0") == true)
    }

    @Test("a truncated tokenizer.model is refused, not read past its end")
    func truncatedModel() throws {
        let source = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tokenizers/sp-bpe/tokenizer.model")))
        let url = try Fixtures.temporaryDirectory("tokenizer")
        try source.prefix(source.count / 2).write(to: url.appendingPathComponent("tokenizer.model"))
        let reason = Self.reason { _ = try TokenizerLoader.load(directory: url.path) }
        #expect(reason?.contains("truncated") == true)
    }

    @Test("a GGUF without a vocabulary, or with an unknown tokenizer model, says what it found")
    func ggufErrors() throws {
        // fixtures/gguf holds GGUFs without tokenizer metadata.
        let plain = try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("gguf")).filter { $0.hasSuffix(".gguf") }.sorted()
        let file = try GGUFFile(path: Fixtures.path("gguf/" + #require(plain.first)))
        if file["tokenizer.ggml.model"] == nil {
            let reason = Self.reason { _ = try TokenizerLoader.load(gguf: file) }
            #expect(reason?.contains("tokenizer.ggml.model") == true)
        }
        let bert = try Self.gguf([("tokenizer.ggml.model", .string("bert")), ("tokenizer.ggml.tokens", .array(.string, [.string("a")]))])
        #expect(Self.reason { _ = try TokenizerLoader.load(gguf: bert) }?.contains("'bert'") == true)
        let unknownPre = try Self.gguf([("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("deepseek-llm")),
                                        ("tokenizer.ggml.tokens", .array(.string, [.string("a")])), ("tokenizer.ggml.merges", .array(.string, []))])
        #expect(Self.reason { _ = try TokenizerLoader.load(gguf: unknownPre) }?.contains("'deepseek-llm'") == true)
    }

    /// A GGUF with `metadata` and no tensors.
    static func gguf(_ metadata: [(key: String, value: GGUFValue)]) throws -> GGUFFile {
        let path = try Fixtures.temporaryDirectory("tokenizer").appendingPathComponent("vocabulary.gguf").path
        let writer = try GGUFWriter(path: path, metadata: [("general.architecture", .string("llama"))] + metadata, tensors: [])
        try writer.finish()
        return try GGUFFile(path: path)
    }

    @Test("decode gives back the text for byte-level BPE and SentencePiece with byte fallback", arguments: [
        "tokenizers/bpe-llama3", "tokenizers/bpe-qwen2", "tiny-llama", "tokenizers/sp-bpe",
    ])
    func decodeRoundTrip(_ path: String) throws {
        let tokenizer = try TokenizerLoader.load(directory: Fixtures.path(path))
        for text in TokenizerReferenceCase.texts where !text.contains("\u{301}") && !text.contains("Special") {
            #expect(tokenizer.decode(try tokenizer.encode(text)) == text, "\(path): \(text.debugDescription)")
        }
    }

    @Test("a Hugging Face SentencePiece model and its GGUF twin: the difference is found and explained")
    func sentencePieceTwinDifference() throws {
        let original = try TokenizerLoader.load(directory: Fixtures.path("tokenizers/sp-unigram"))
        let twin = try TokenizerLoader.load(gguf: try GGUFFile(path: Fixtures.path("tokenizers/sp-unigram.gguf")))
        let difference = try #require(try TokenizationComparison.compare(original, twin, text: "three   spaces"))
        #expect(difference.causes.contains { $0.contains("nmt_nfkc") && $0.contains("llama.cpp") })
        #expect(difference.causes.contains { $0.contains("Viterbi") })
    }

    @Test("a byte-level BPE and its GGUF twin agree on text that NFC leaves alone")
    func bytePairTwinAgreement() throws {
        let original = try TokenizerLoader.load(directory: Fixtures.path("tokenizers/bpe-qwen2"))
        let twin = try TokenizerLoader.load(gguf: try GGUFFile(path: Fixtures.path("tokenizers/bpe-qwen2.gguf")))
        #expect(try TokenizationComparison.compare(original, twin, text: "Hello, world 12345") == nil)
        let difference = try TokenizationComparison.compare(original, twin, text: "cafe\u{301}")
        #expect(difference?.causes.contains { $0.contains("nfc") } == true)
    }
}

@Suite("Unicode normalization by non-ASCII stretches")
struct TextNormalizationTests {
    @Test("equals Foundation's normalization of the whole string", arguments: [TextNormalization.nfc, .nfkc, .nfd, .nfkd])
    func equalsWholeString(_ form: TextNormalization) throws {
        let reference = try JSONValue.parse(contentsOf: Fixtures.path("tokenizers/pretokenize.json"))
        let strings = (reference["strings"]?.array ?? []).compactMap(\.string) + ["e\u{301}", "a\u{308}\u{301}x", "\u{301}start", "ﬁ\u{301}", "x\u{1100}\u{1161}"]
        #expect(strings.count > 400)
        for string in strings {
            let whole: String
            switch form {
            case .none: whole = string
            case .nfc: whole = string.precomposedStringWithCanonicalMapping
            case .nfkc: whole = string.precomposedStringWithCompatibilityMapping
            case .nfd: whole = string.decomposedStringWithCanonicalMapping
            case .nfkd: whole = string.decomposedStringWithCompatibilityMapping
            }
            let bytes = Array(string.utf8)
            let ours = bytes.withUnsafeBufferPointer { form.apply(to: $0) }
            #expect(ours == Array(whole.utf8), "\(form) of \(string.debugDescription)")
        }
    }
}

@Suite("tokenizers of the shipped models through Checkpoint")
struct CheckpointTokenizerTests {
    @Test("tiny-llama (directory and GGUF) and trained-llama load through TokenizerLoader.load(checkpoint:)")
    func loadsThroughCheckpoint() throws {
        let trained = try TokenizerLoader.load(checkpoint: try Checkpoint(path: Fixtures.path("trained-llama")))
        #expect(trained is MetaspaceBPETokenizer && trained.bosTokenID == 1 && trained.addsBOS && trained.vocabularySize == 3072)
        let tiny = try TokenizerLoader.load(checkpoint: try Checkpoint(path: Fixtures.path("tiny-llama")))
        let tinyGGUF = try TokenizerLoader.load(checkpoint: try Checkpoint(path: Fixtures.path("tiny-llama.gguf")))
        #expect(tiny.bosTokenID == 1022 && tinyGGUF.bosTokenID == 1022 && tiny.addsBOS && tinyGGUF.addsBOS)
    }

    @Test("trained-llama's tokenizer.json and its GGUF twin give the same ids on the held-out eval text")
    func trainedTwinAgreesOnEvalText() throws {
        let text = try String(contentsOfFile: Fixtures.path("trained-llama/eval.txt"), encoding: .utf8)
        let original = try TokenizerLoader.load(directory: Fixtures.path("trained-llama"))
        let twin = try TokenizerLoader.load(gguf: try GGUFFile(path: Fixtures.path("tokenizers/trained-llama.gguf")))
        let difference = try TokenizationComparison.compare(original, twin, text: text)
        #expect(difference == nil, "\(difference.map(String.init(describing:)) ?? "")")
        #expect(try original.encode(text).count > 10_000)
    }
}
