import Foundation
import Formats
import Testing
import TestSupport
@testable import Model

/// One row of fixtures/tokenizers/expected.json: a tokenizer and the reference ids of every text.
struct TokenizerReferenceCase: CustomTestStringConvertible, Sendable {
    let path: String
    let reference: String
    let parsesSpecialTokens: Bool
    let ids: [[Int32]]

    var testDescription: String { "\(path) vs \(reference)\(parsesSpecialTokens ? "" : ", no parse_special")" }

    static let texts: [String] = {
        guard let json = try? JSONValue.parse(contentsOf: Fixtures.path("tokenizers/texts.json")), let array = json.array else { return [] }
        return array.compactMap(\.string)
    }()

    static let all: [TokenizerReferenceCase] = {
        guard let json = try? JSONValue.parse(contentsOf: Fixtures.path("tokenizers/expected.json")),
              let cases = json["cases"]?.array else { return [] }
        return cases.compactMap { value in
            guard let path = value["path"]?.string, let reference = value["reference"]?.string,
                  let rows = value["ids"]?.array else { return nil }
            return TokenizerReferenceCase(
                path: path, reference: reference, parsesSpecialTokens: value["parse_special"]?.bool ?? true,
                ids: rows.map { row in (row.array ?? []).compactMap { $0.int.map(Int32.init) } })
        }
    }()
}

@Suite("tokenizers against their reference libraries")
struct TokenizerReferenceTests {
    @Test("the fixtures hold every tokenizer kind and the test texts")
    func fixturesArePresent() {
        #expect(TokenizerReferenceCase.texts.count >= 15)
        let paths = Set(TokenizerReferenceCase.all.map(\.path))
        for required in ["tokenizers/sp-unigram", "tokenizers/sp-bpe", "tokenizers/sp-unigram-bytes",
                         "tokenizers/bpe-llama3", "tokenizers/bpe-qwen2", "tiny-llama"] {
            #expect(paths.contains(required), "fixtures/tokenizers/expected.json lacks \(required); rerun tools/compare_tokenizers.py")
        }
    }

    @Test("ids equal the reference ids token for token", arguments: TokenizerReferenceCase.all)
    func idsEqualReference(_ reference: TokenizerReferenceCase) throws {
        let path = Fixtures.path(reference.path)
        let options = TokenizerOptions(parsesSpecialTokens: reference.parsesSpecialTokens)
        let tokenizer: any TextTokenizer
        if path.hasSuffix(".gguf") {
            tokenizer = try TokenizerLoader.load(gguf: try GGUFFile(path: path), options: options)
        } else {
            tokenizer = try TokenizerLoader.load(directory: path, options: options)
        }
        let texts = TokenizerReferenceCase.texts
        #expect(texts.count == reference.ids.count)
        for (index, text) in texts.enumerated() where index < reference.ids.count {
            let ids = try tokenizer.encode(text)
            let expected = reference.ids[index]
            if ids != expected {
                let first = (0..<min(ids.count, expected.count)).first { ids[$0] != expected[$0] } ?? min(ids.count, expected.count)
                let ours = ids[first..<min(ids.count, first + 6)].map { "\($0)=\(tokenizer.tokenText($0) ?? "?")" }
                let theirs = expected[first..<min(expected.count, first + 6)].map { "\($0)=\(tokenizer.tokenText($0) ?? "?")" }
                Issue.record("\(reference.path) text \(index) \(text.debugDescription): first difference at token \(first) of \(expected.count): ours \(ours), \(reference.reference) \(theirs)")
            }
        }
    }
}
