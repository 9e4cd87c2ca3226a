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
    /// The ids the reference puts in front of a text when adding special tokens (BOS or none); nil when not recorded.
    let prefix: [Int32]?
    /// The reference ids of every text; nil where the reference failed (llama.cpp aborting).
    let ids: [[Int32]?]

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
                prefix: value["prefix"]?.array.map { $0.compactMap { $0.int.map(Int32.init) } },
                ids: rows.map { row in row.array.map { $0.compactMap { $0.int.map(Int32.init) } } })
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
                         "tokenizers/bpe-llama3", "tokenizers/bpe-qwen2", "tiny-llama", "trained-llama",
                         "trained-llama/tokenizer.model"] {
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
        } else if path.hasSuffix(".model") {
            tokenizer = try SentencePieceTokenizer(modelPath: path, config: nil)
        } else {
            tokenizer = try TokenizerLoader.load(directory: path, options: options)
        }
        let texts = TokenizerReferenceCase.texts
        #expect(texts.count == reference.ids.count)
        #expect(reference.ids.compactMap { $0 }.count >= 8, "\(reference.path): fewer than 8 texts have a reference")
        if let prefix = reference.prefix {
            let ours: [Int32] = tokenizer.addsBOS ? tokenizer.bosTokenID.map { [$0] } ?? [] : []
            #expect(ours == prefix, "\(reference.path): the reference puts \(prefix) in front of a text, we \(ours)")
        }
        for (index, text) in texts.enumerated() where index < reference.ids.count {
            let ids = try tokenizer.encode(text)
            guard let expected = reference.ids[index] else { continue }
            if ids != expected {
                let first = (0..<min(ids.count, expected.count)).first { ids[$0] != expected[$0] } ?? min(ids.count, expected.count)
                let ours = ids[first..<min(ids.count, first + 6)].map { "\($0)=\(tokenizer.tokenText($0) ?? "?")" }
                let theirs = expected[first..<min(expected.count, first + 6)].map { "\($0)=\(tokenizer.tokenText($0) ?? "?")" }
                Issue.record("\(reference.path) text \(index) \(text.debugDescription): first difference at token \(first) of \(expected.count): ours \(ours), \(reference.reference) \(theirs)")
            }
        }
    }
}

@Suite("hand-written pre-tokenizer regexes against tokenizers' regex engine")
struct PreTokenizerPatternTests {
    static let reference: JSONValue? = try? JSONValue.parse(contentsOf: Fixtures.path("tokenizers/pretokenize.json"))

    /// Our pieces of `string` under `pattern`.
    static func pieces(_ string: String, _ pattern: PreTokenizerPattern) -> [String] {
        let scalars = string.unicodeScalars.map(\.value)
        var ends: [Int] = []
        scalars.withUnsafeBufferPointer { buffer in
            let classes = UnicodeClasses.classes(of: buffer)
            classes.withUnsafeBufferPointer { pattern.split(buffer, classes: $0, 0..<buffer.count, into: &ends) }
        }
        var pieces: [String] = []
        var start = 0
        for end in ends {
            var view = String.UnicodeScalarView()
            for value in scalars[start..<end] { view.append(Unicode.Scalar(value)!) }
            pieces.append(String(view))
            start = end
        }
        return pieces
    }

    @Test("every string splits into the regex's pieces", arguments: PreTokenizerPattern.allCases)
    func piecesEqualRegex(_ pattern: PreTokenizerPattern) throws {
        let reference = try #require(Self.reference, "fixtures/tokenizers/pretokenize.json is missing; run tools/compare_tokenizers.py")
        let strings = (reference["strings"]?.array ?? []).compactMap(\.string)
        let expected = reference[pattern.rawValue]?.array ?? []
        #expect(strings.count >= 400 && expected.count == strings.count)
        var mismatches = 0
        for (string, row) in zip(strings, expected) {
            let theirs = (row.array ?? []).compactMap(\.string)
            let ours = Self.pieces(string, pattern)
            if ours != theirs {
                mismatches += 1
                if mismatches <= 5 { Issue.record("\(pattern) on \(string.debugDescription): ours \(ours.map(\.debugDescription)), tokenizers \(theirs.map(\.debugDescription))") }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(strings.count) strings split differently")
    }

    @Test("tokenizer.json regex spellings map to their pattern, others to nil")
    func regexSpellings() {
        for pattern in PreTokenizerPattern.allCases { #expect(PreTokenizerPattern(regex: pattern.regex) == pattern) }
        #expect(PreTokenizerPattern(regex: #"\p{N}{1,3}"#) == nil)
    }
}
