import Foundation
import Formats
import Testing
import TestSupport
@testable import Model

/// Tokenization speed on ~1 MB of text (the Debian license texts, repeated), per tokenizer kind.
/// Runs only with QUANTIZE_TOKENIZER_BENCH=1 (tools/bench_tokenizers.sh runs it in a release build);
/// it prints MB/s and checks that encoding the whole text equals encoding its paragraphs one by one
/// where the pre-tokenizer cannot join across a paragraph break.
@Suite("tokenizer speed", .enabled(if: ProcessInfo.processInfo.environment["QUANTIZE_TOKENIZER_BENCH"] == "1"))
struct TokenizerSpeedTests {
    static let text: String = {
        let directory = "/usr/share/common-licenses"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        var corpus = ""
        for name in names {
            if let content = try? String(contentsOfFile: directory + "/" + name, encoding: .utf8) { corpus += content + "\n" }
        }
        corpus += TokenizerReferenceCase.texts.joined(separator: "\n")
        var text = ""
        while text.utf8.count < 1 << 20 && !corpus.isEmpty { text += corpus }
        return text
    }()

    @Test("1 MB tokenizes well under a second", arguments: [
        "tokenizers/bpe-llama3", "tokenizers/bpe-qwen2", "tiny-llama", "tokenizers/sp-unigram", "tokenizers/sp-bpe",
        "tokenizers/bpe-llama3.gguf", "tokenizers/sp-unigram.gguf", "trained-llama", "tokenizers/trained-llama.gguf",
    ])
    func speed(_ path: String) throws {
        if let only = ProcessInfo.processInfo.environment["QUANTIZE_TOKENIZER_BENCH_ONLY"], !path.contains(only) { return }
        let full = Fixtures.path(path)
        let tokenizer: any TextTokenizer = path.hasSuffix(".gguf")
            ? try TokenizerLoader.load(gguf: try GGUFFile(path: full)) : try TokenizerLoader.load(directory: full)
        let text = Self.text
        #expect(text.utf8.count >= 1 << 20)
        let clock = ContinuousClock()
        var ids: [Int32] = []
        let elapsed = try clock.measure { ids = try tokenizer.encode(text) }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let megabytes = Double(text.utf8.count) / 1e6
        print("tokenizer speed: \(tokenizer.summary): \(String(format: "%.2f", megabytes)) MB, \(ids.count) tokens in \(String(format: "%.3f", seconds)) s = \(String(format: "%.1f", megabytes / seconds)) MB/s")
        #expect(seconds < 1.0, "\(path): \(seconds) s for \(megabytes) MB")
        #expect(tokenizer.decode(ids).utf8.count > text.utf8.count / 2)
    }
}
