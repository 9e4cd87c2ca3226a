/// Where two tokenizers of one model (an original and its quantized twin, say a Hugging Face
/// directory and a GGUF) first tokenize a text differently, and the known reasons they can.
public struct TokenizationDifference: Sendable, Equatable, CustomStringConvertible {
    /// The index of the first token that differs (the shorter count when one is a prefix of the other).
    public let firstDifferentToken: Int
    /// The byte offset in the text where the differing tokens start (the decoded common prefix's length).
    public let byteOffset: Int
    /// How many ids the first tokenizer produces.
    public let firstCount: Int
    /// How many ids the second tokenizer produces.
    public let secondCount: Int
    /// Up to 8 vocabulary entries of the first tokenizer from the first difference on.
    public let firstTokens: [String]
    /// Up to 8 vocabulary entries of the second tokenizer from the first difference on.
    public let secondTokens: [String]
    /// The differences in kind between the two tokenizers that explain such a result
    /// (``TokenizationComparison/knownDifferences(_:_:)``).
    public let causes: [String]

    /// One paragraph for a report.
    public var description: String {
        var text = "tokenized differently from token \(firstDifferentToken) (byte \(byteOffset)): \(firstCount) vs \(secondCount) tokens; "
            + "\(firstTokens.joined(separator: " ")) | \(secondTokens.joined(separator: " "))"
        if !causes.isEmpty { text += "; " + causes.joined(separator: "; ") }
        return text
    }
}

/// Compares how two tokenizers tokenize the same text, so an evaluation can say when an original
/// and its quantized twin would not see the same tokens.
public enum TokenizationComparison {
    /// What an evaluation on the original's tokens should say about a quantized twin whose own
    /// tokenizer is `twin`: the first differing token, or a different BOS rule; nil when they agree.
    public static func evaluationNote(original: any TextTokenizer, twin: any TextTokenizer, text: String) throws(ModelError) -> String? {
        if let difference = try compare(original, twin, text: text) {
            return "its own tokenizer (\(twin.summary)) \(difference); evaluated on the original's tokens"
        }
        if twin.addsBOS != original.addsBOS {
            return "its tokenizer \(twin.addsBOS ? "adds" : "does not add") BOS, the original's \(original.addsBOS ? "does" : "does not"); evaluated on the original's tokens"
        }
        return nil
    }

    /// The first difference between `first` and `second` on `text`, nil when the ids are equal.
    public static func compare(_ first: any TextTokenizer, _ second: any TextTokenizer, text: String) throws(ModelError) -> TokenizationDifference? {
        let a = try first.encode(text)
        let b = try second.encode(text)
        if a == b { return nil }
        let index = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
        let offset = first.decode(Array(a[..<index])).utf8.count
        func entries(_ tokenizer: any TextTokenizer, _ ids: [Int32]) -> [String] {
            ids[index..<min(ids.count, index + 8)].map { tokenizer.tokenText($0).map { $0.debugDescription } ?? "#\($0)" }
        }
        return TokenizationDifference(firstDifferentToken: index, byteOffset: offset, firstCount: a.count, secondCount: b.count,
                                      firstTokens: entries(first, a), secondTokens: entries(second, b),
                                      causes: knownDifferences(first, second))
    }

    /// The differences in kind between two tokenizers that make them tokenize some texts differently
    /// (normalizer, segmentation algorithm, vocabulary, BOS); empty when they are of the same kind.
    public static func knownDifferences(_ first: any TextTokenizer, _ second: any TextTokenizer) -> [String] {
        var causes: [String] = []
        if let a = first as? SentencePieceTokenizer, let b = second as? SentencePieceTokenizer {
            if a.normalizes != b.normalizes {
                let normalizing = a.normalizes ? a : b
                causes.append("\(normalizing.summary) runs SentencePiece's normalizer\(normalizing.normalizerName.isEmpty ? "" : " (\(normalizing.normalizerName))")"
                              + " and its whitespace rules (dummy prefix, collapsing runs of spaces), llama.cpp does not")
            }
            if a.algorithm != b.algorithm {
                causes.append("unigram segmentation (Viterbi, sentencepiece) versus best-scoring pair merges (llama.cpp's spm tokenizer)")
            }
        }
        if let a = first as? ByteLevelBPETokenizer, let b = second as? ByteLevelBPETokenizer {
            if a.normalization != b.normalization {
                causes.append("normalizer \(a.normalization.rawValue) versus \(b.normalization.rawValue) (llama.cpp runs no normalizer)")
            }
            if a.patterns != b.patterns {
                causes.append("pre-tokenizer \(a.patterns.map(\.rawValue)) versus \(b.patterns.map(\.rawValue))")
            }
        }
        if (first is SentencePieceTokenizer) != (second is SentencePieceTokenizer) {
            causes.append("different tokenizer kinds: \(first.summary) versus \(second.summary)")
        }
        if first.vocabularySize != second.vocabularySize {
            causes.append("vocabularies of \(first.vocabularySize) and \(second.vocabularySize) ids")
        }
        if first.addsBOS != second.addsBOS || first.bosTokenID != second.bosTokenID {
            causes.append("BOS \(first.addsBOS ? "added" : "not added") (id \(first.bosTokenID.map(String.init) ?? "none")) versus \(second.addsBOS ? "added" : "not added") (id \(second.bosTokenID.map(String.init) ?? "none"))")
        }
        return causes
    }
}
