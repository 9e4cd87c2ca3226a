import Formats

/// Reads a GGUF file's `tokenizer.ggml.*` metadata into a tokenizer that tokenizes as llama.cpp does.
enum GGUFVocabulary {
    /// llama.cpp's token types (`tokenizer.ggml.token_type`).
    enum TokenType: Int {
        case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// `tokenizer.ggml.pre` values and the pattern llama.cpp runs for each, with whether it ignores
    /// merges for pre-tokens that are whole tokens and whether it adds BOS by default.
    static let preTokenizers: [(names: [String], pattern: PreTokenizerPattern, ignoresMerges: Bool, addsBOS: Bool)] = [
        (["gpt-2", "gpt2"], .gpt2, false, false),
        (["llama-bpe", "llama3", "llama-v3"], .llama3, true, true),
        (["qwen2"], .qwen2, false, false),
    ]

    static func tokenizer(_ gguf: GGUFFile, options: TokenizerOptions) throws(ModelError) -> any TextTokenizer {
        let path = gguf.path
        guard let model = gguf["tokenizer.ggml.model"]?.string else {
            throw .unsupportedTokenizer(path: path, reason: "the GGUF has no tokenizer.ggml.model metadata (no vocabulary)")
        }
        guard let tokenValues = gguf["tokenizer.ggml.tokens"]?.array else {
            throw .unsupportedTokenizer(path: path, reason: "tokenizer.ggml.tokens is missing or not an array")
        }
        var tokens: [String] = []
        tokens.reserveCapacity(tokenValues.count)
        for (index, value) in tokenValues.enumerated() {
            guard let text = value.string else {
                throw .unsupportedTokenizer(path: path, reason: "tokenizer.ggml.tokens[\(index)] is not a string")
            }
            tokens.append(text)
        }
        var types = [TokenType](repeating: .normal, count: tokens.count)
        if let values = gguf["tokenizer.ggml.token_type"]?.array {
            guard values.count == tokens.count else {
                throw .unsupportedTokenizer(path: path, reason: "tokenizer.ggml.token_type has \(values.count) entries for \(tokens.count) tokens")
            }
            for (index, value) in values.enumerated() { types[index] = value.int.flatMap(TokenType.init(rawValue:)) ?? .normal }
        }
        func tokenID(_ key: String) -> Int32? {
            guard let id = gguf[key]?.int, id >= 0, id < tokens.count else { return nil }
            return Int32(id)
        }
        let bos = tokenID("tokenizer.ggml.bos_token_id")
        let eos = tokenID("tokenizer.ggml.eos_token_id")
        let parsesSpecial = options.parsesSpecialTokens ?? false
        // llama.cpp's special-token cache: control, user-defined and unknown tokens; without
        // parse_special only the user-defined ones are matched.
        var added: [AddedToken] = []
        for (index, type) in types.enumerated() {
            switch type {
            case .userDefined: added.append(AddedToken(content: tokens[index], id: Int32(index)))
            case .control where parsesSpecial, .unknown where parsesSpecial:
                added.append(AddedToken(content: tokens[index], id: Int32(index)))
            default: break
            }
        }
        switch model {
        case "gpt2":
            let preName = gguf["tokenizer.ggml.pre"]?.string
            guard let preName, let pre = preTokenizers.first(where: { $0.names.contains(preName) }) else {
                let known = preTokenizers.flatMap(\.names).joined(separator: ", ")
                throw .unsupportedTokenizer(path: path, reason: "tokenizer.ggml.pre '\(preName ?? "(missing)")' is not a pre-tokenizer this module implements (\(known))")
            }
            guard let mergeValues = gguf["tokenizer.ggml.merges"]?.array else {
                throw .unsupportedTokenizer(path: path, reason: "a gpt2 vocabulary without tokenizer.ggml.merges")
            }
            var merges: [(String, String)] = []
            merges.reserveCapacity(mergeValues.count)
            for (index, value) in mergeValues.enumerated() {
                guard let text = value.string else {
                    throw .unsupportedTokenizer(path: path, reason: "tokenizer.ggml.merges[\(index)] is not a string")
                }
                let parts = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw .unsupportedTokenizer(path: path, reason: "tokenizer.ggml.merges[\(index)] ('\(text)') is not two tokens separated by a space")
                }
                merges.append((String(parts[0]), String(parts[1])))
            }
            let addsBOS = gguf["tokenizer.ggml.add_bos_token"]?.bool ?? pre.addsBOS
            var configuration = ByteLevelBPETokenizer.Configuration(
                tokens: tokens, merges: merges, addedTokens: added, patterns: [pre.pattern],
                bosTokenID: bos, eosTokenID: eos, addsBOS: addsBOS && bos != nil, source: .gguf, label: preName)
            configuration.ignoresMerges = pre.ignoresMerges
            return try ByteLevelBPETokenizer(configuration, path: path)
        case "llama":
            var scores = [Float](repeating: 0, count: tokens.count)
            if let values = gguf["tokenizer.ggml.scores"]?.array {
                guard values.count == tokens.count else {
                    throw .unsupportedTokenizer(path: path, reason: "tokenizer.ggml.scores has \(values.count) entries for \(tokens.count) tokens")
                }
                for (index, value) in values.enumerated() { scores[index] = Float(value.double ?? 0) }
            }
            let addsBOS = gguf["tokenizer.ggml.add_bos_token"]?.bool ?? true
            return try SentencePieceTokenizer(
                ggufTokens: tokens, scores: scores, types: types.map(\.rawValue), addedTokens: added,
                addsSpacePrefix: gguf["tokenizer.ggml.add_space_prefix"]?.bool ?? true,
                unknownTokenID: tokenID("tokenizer.ggml.unknown_token_id"),
                bosTokenID: bos, eosTokenID: eos, addsBOS: addsBOS && bos != nil, path: path)
        default:
            throw .unsupportedTokenizer(path: path, reason: "tokenizer.ggml.model '\(model)' is not supported (gpt2 with the gpt-2, llama-bpe or qwen2 pre-tokenizer, and llama are)")
        }
    }
}
