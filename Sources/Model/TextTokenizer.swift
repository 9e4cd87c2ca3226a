/// Text → token ids, as the checkpoint's own runtime tokenizes it.
///
/// Implemented by the SentencePiece and byte-level BPE tokenizers (from a Hugging Face directory's
/// tokenizer.model / tokenizer.json, or a GGUF's `tokenizer.ggml.*` vocabulary); the evaluation and
/// calibration jobs only see this protocol.
public protocol TextTokenizer: Sendable {
    /// The ids of `text`, without any BOS/EOS the runtime would add around it.
    func encode(_ text: String) throws(ModelError) -> [Int32]
    /// The beginning-of-sequence id, nil when the vocabulary has none.
    var bosTokenID: Int32? { get }
    /// Whether the runtime puts BOS in front of a tokenized text (config / `tokenizer.ggml.add_bos_token`).
    var addsBOS: Bool { get }
    /// How many ids the vocabulary holds.
    var vocabularySize: Int { get }
    /// A short name of the kind and its source, for reports ("sentencepiece (tokenizer.model)",
    /// "bpe llama-bpe (GGUF)").
    var summary: String { get }
    /// The text of `ids`, as the runtime detokenizes them (byte tokens decoded to bytes, the
    /// SentencePiece space symbol back to spaces); invalid UTF-8 becomes U+FFFD.
    func decode(_ ids: [Int32]) -> String
    /// The vocabulary entry of `id` as the file spells it, nil when `id` is out of range.
    func tokenText(_ id: Int32) -> String?
}

extension TextTokenizer {
    /// The ids llama-perplexity evaluates for `text`: BOS (where the runtime adds one) followed by
    /// the text's ids.
    public func evaluationTokens(_ text: String) throws(ModelError) -> [Int32] {
        let ids = try encode(text)
        if let bos = chunkBOS { return [bos] + ids }
        return ids
    }

    /// The id that replaces each chunk's first token in an evaluation: BOS where the runtime adds
    /// one, nil otherwise (llama-perplexity's add_bos rule).
    public var chunkBOS: Int32? { addsBOS ? bosTokenID : nil }
}
