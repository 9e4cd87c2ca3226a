import Foundation
import Formats

/// Options of ``TokenizerLoader``.
public struct TokenizerOptions: Sendable, Equatable {
    /// Whether control tokens (`<s>`, `<|begin_of_text|>`) written in the text are read as those
    /// tokens. nil follows the reference of the source: `tokenizers` always does; llama.cpp's
    /// `llama-perplexity` does not (`parse_special` false), so a GGUF tokenizer does not by default.
    /// User-defined tokens are always matched, as both references do.
    public var parsesSpecialTokens: Bool?

    /// Options.
    public init(parsesSpecialTokens: Bool? = nil) {
        self.parsesSpecialTokens = parsesSpecialTokens
    }
}

/// Finds and builds the tokenizer of a checkpoint.
///
/// A Hugging Face directory: `tokenizer.json` (what transformers' fast tokenizer reads) when present,
/// else `tokenizer.model` (SentencePiece), with `tokenizer_config.json` for `add_bos_token` and the
/// BOS token. A GGUF: its `tokenizer.ggml.*` metadata, tokenized as llama.cpp does.
public enum TokenizerLoader {
    /// The tokenizer of `checkpoint`.
    /// - Throws: ``ModelError/unsupportedTokenizer(path:reason:)`` naming what was found when there
    ///   is no tokenizer or it is of a kind this module does not implement.
    public static func load(checkpoint: Checkpoint) throws(ModelError) -> any TextTokenizer {
        try load(checkpoint: checkpoint, options: TokenizerOptions())
    }

    /// The tokenizer of `checkpoint`, with `options`.
    public static func load(checkpoint: Checkpoint, options: TokenizerOptions) throws(ModelError) -> any TextTokenizer {
        if let gguf = checkpoint.gguf { return try load(gguf: gguf, options: options) }
        return try load(directory: checkpoint.directory, options: options)
    }

    /// The tokenizer of a Hugging Face model directory.
    public static func load(directory: String, options: TokenizerOptions = TokenizerOptions()) throws(ModelError) -> any TextTokenizer {
        let fileManager = FileManager.default
        let jsonPath = (directory as NSString).appendingPathComponent("tokenizer.json")
        let modelPath = (directory as NSString).appendingPathComponent("tokenizer.model")
        let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
        var config: JSONValue? = nil
        if fileManager.fileExists(atPath: configPath) {
            do { config = try JSONValue.parse(contentsOf: configPath) } catch {
                throw .unsupportedTokenizer(path: configPath, reason: "cannot be read: \(error)")
            }
        }
        if fileManager.fileExists(atPath: jsonPath) {
            let json: JSONValue
            do { json = try JSONValue.parse(contentsOf: jsonPath) } catch {
                throw .unsupportedTokenizer(path: jsonPath, reason: "cannot be read: \(error)")
            }
            return try TokenizerJSON.tokenizer(json, config: config, path: jsonPath, options: options)
        }
        if fileManager.fileExists(atPath: modelPath) {
            return try SentencePieceTokenizer(modelPath: modelPath, config: config)
        }
        throw .unsupportedTokenizer(path: directory, reason: "holds neither tokenizer.json nor tokenizer.model")
    }

    /// The tokenizer of a GGUF file's `tokenizer.ggml.*` metadata.
    public static func load(gguf: GGUFFile, options: TokenizerOptions = TokenizerOptions()) throws(ModelError) -> any TextTokenizer {
        try GGUFVocabulary.tokenizer(gguf, options: options)
    }
}

/// Reads tokenizer.json (the `tokenizers` serialization).
package enum TokenizerJSON {
    /// The most ids below the largest that may be undefined (a gap in the vocabulary).
    static let maximumMissingIDs = 1 << 20

    /// The tokenizer a parsed tokenizer.json (`path` names it in errors) describes, with the
    /// directory's parsed tokenizer_config.json, if any.
    package static func tokenizer(_ json: JSONValue, config: JSONValue?, path: String, options: TokenizerOptions) throws(ModelError) -> any TextTokenizer {
        guard let model = json["model"] else {
            throw .unsupportedTokenizer(path: path, reason: "has no 'model' object")
        }
        let type = model["type"]?.string ?? (model["merges"] != nil ? "BPE" : "unknown")
        guard type == "BPE" else {
            throw .unsupportedTokenizer(path: path, reason: "model type '\(type)' is not supported (byte-level BPE tokenizer.json, or a SentencePiece tokenizer.model, are)")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let value = model[key], !value.isNull, value.string != "" {
                throw .unsupportedTokenizer(path: path, reason: "BPE option '\(key)' is not supported")
            }
        }
        guard let vocabulary = model["vocab"]?.object else {
            throw .unsupportedTokenizer(path: path, reason: "model.vocab is not an object")
        }
        var maximumID = -1
        for member in vocabulary {
            guard let id = member.value.int, id >= 0 else {
                throw .unsupportedTokenizer(path: path, reason: "model.vocab['\(member.key)'] is not a non-negative integer")
            }
            maximumID = max(maximumID, id)
        }
        var addedTokens: [AddedToken] = []
        var normalizedAddedTokens: [AddedToken] = []
        var addedContent: [(String, Int)] = []
        for entry in json["added_tokens"]?.array ?? [] {
            guard let id = entry["id"]?.int, id >= 0, let content = entry["content"]?.string else {
                throw .unsupportedTokenizer(path: path, reason: "an added_tokens entry lacks 'id' or 'content'")
            }
            guard let id32 = Int32(exactly: id), id32 < Int32.max else {
                throw .unsupportedTokenizer(path: path, reason: "added token '\(content)' has id \(id); ids must be below 2^31")
            }
            maximumID = max(maximumID, id)
            addedContent.append((content, id))
            let token = AddedToken(content: content, id: id32, stripsLeft: entry["lstrip"]?.bool ?? false,
                                   stripsRight: entry["rstrip"]?.bool ?? false, singleWord: entry["single_word"]?.bool ?? false)
            let special = entry["special"]?.bool ?? false
            if special && options.parsesSpecialTokens == false { continue }
            if entry["normalized"]?.bool ?? !special { normalizedAddedTokens.append(token) } else { addedTokens.append(token) }
        }
        // The id table is sized by the largest id: ids are 32-bit, and a table mostly of holes
        // (a hostile id of 10^11) is refused before it is allocated.
        let definedCount = vocabulary.count + addedContent.count
        guard maximumID < Int(Int32.max), maximumID < definedCount + TokenizerJSON.maximumMissingIDs else {
            throw .unsupportedTokenizer(path: path, reason: "ids run to \(maximumID) but only \(definedCount) tokens are defined; ids must be below 2^31 and at most \(TokenizerJSON.maximumMissingIDs) of them unused")
        }
        var tokens = [String?](repeating: nil, count: maximumID + 1)
        for member in vocabulary { tokens[member.value.int!] = member.key }
        for (content, id) in addedContent where tokens[id] == nil { tokens[id] = content }

        var merges: [(String, String)] = []
        for (index, merge) in (model["merges"]?.array ?? []).enumerated() {
            if let text = merge.string {
                let parts = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw .unsupportedTokenizer(path: path, reason: "merge \(index) ('\(text)') is not two tokens separated by a space")
                }
                merges.append((String(parts[0]), String(parts[1])))
            } else if let pair = merge.array, pair.count == 2, let left = pair[0].string, let right = pair[1].string {
                merges.append((left, right))
            } else {
                throw .unsupportedTokenizer(path: path, reason: "merge \(index) is neither \"a b\" nor [\"a\", \"b\"]")
            }
        }

        if isSentencePieceStyle(json) {
            return try metaspaceTokenizer(json, model: model, tokens: tokens, merges: merges, addedTokens: addedTokens,
                                          normalizedAddedTokens: normalizedAddedTokens, config: config, path: path)
        }
        let normalization = try normalizer(json["normalizer"], path: path)
        var patterns: [PreTokenizerPattern] = []
        var byteLevel = false
        var addsPrefixSpace = false
        try preTokenizer(json["pre_tokenizer"], path: path, patterns: &patterns, byteLevel: &byteLevel, addsPrefixSpace: &addsPrefixSpace)
        guard byteLevel else {
            throw .unsupportedTokenizer(path: path, reason: "a BPE model without a ByteLevel pre-tokenizer is not supported (only byte-level BPE is)")
        }

        let (bosID, addsBOS, eosID) = specialTokens(json, config: config, addedContent: addedContent, vocabulary: vocabulary)
        func id(of content: String) -> Int32? { TokenizerJSON.id(of: content, addedContent: addedContent, vocabulary: vocabulary) }

        var configuration = ByteLevelBPETokenizer.Configuration(
            tokens: tokens, merges: merges, addedTokens: addedTokens, patterns: patterns,
            bosTokenID: bosID, eosTokenID: eosID, addsBOS: addsBOS, source: .tokenizersJSON,
            label: patterns.map(\.rawValue).joined(separator: "+"))
        configuration.normalizedAddedTokens = normalizedAddedTokens
        configuration.addsPrefixSpace = addsPrefixSpace
        configuration.ignoresMerges = model["ignore_merges"]?.bool ?? false
        configuration.normalization = normalization
        configuration.unknownTokenID = model["unk_token"]?.string.flatMap(id(of:))
        configuration.fusesUnknown = model["fuse_unk"]?.bool ?? false
        return try ByteLevelBPETokenizer(configuration, path: path)
    }

    static func id(of content: String, addedContent: [(String, Int)], vocabulary: [JSONMember]) -> Int32? {
        if let added = addedContent.first(where: { $0.0 == content }) { return Int32(added.1) }
        return vocabulary.first(where: { $0.key == content })?.value.int.map(Int32.init)
    }

    /// BOS id, whether it is added (the post-processor's template decides, as in transformers' fast
    /// tokenizer; tokenizer_config.json's add_bos_token where there is no template), EOS id.
    static func specialTokens(_ json: JSONValue, config: JSONValue?, addedContent: [(String, Int)],
                              vocabulary: [JSONMember]) -> (Int32?, Bool, Int32?) {
        func id(of content: String) -> Int32? { TokenizerJSON.id(of: content, addedContent: addedContent, vocabulary: vocabulary) }
        func configToken(_ key: String) -> String? {
            guard let value = config?[key] else { return nil }
            return value.string ?? value["content"]?.string
        }
        var templateBOS: Int32? = nil
        var hasTemplate = false
        func scan(_ processor: JSONValue?) {
            guard let processor else { return }
            if processor["type"]?.string == "Sequence" {
                for inner in processor["processors"]?.array ?? [] { scan(inner) }
            } else if processor["type"]?.string == "TemplateProcessing" {
                hasTemplate = true
                if let first = processor["single"]?[0]?["SpecialToken"]?["id"]?.string {
                    let ids = processor["special_tokens"]?[first]?["ids"]?.array
                    templateBOS = ids?.first?.int.map(Int32.init) ?? id(of: first)
                }
            }
        }
        scan(json["post_processor"])
        let bosID = templateBOS ?? configToken("bos_token").flatMap(id(of:))
        let addsBOS = hasTemplate ? templateBOS != nil : (config?["add_bos_token"]?.bool ?? false)
        return (bosID, addsBOS && bosID != nil, configToken("eos_token").flatMap(id(of:)))
    }

    /// Whether a BPE tokenizer.json is the SentencePiece-style kind transformers converts Llama and
    /// Mistral to: byte fallback, the Metaspace pre-tokenizer or Prepend/Replace normalizers.
    static func isSentencePieceStyle(_ json: JSONValue) -> Bool {
        if json["model"]?["byte_fallback"]?.bool == true { return true }
        func has(_ value: JSONValue?, _ types: Set<String>, _ listKey: String) -> Bool {
            guard let value, let type = value["type"]?.string else { return false }
            if types.contains(type) { return true }
            return type == "Sequence" && (value[listKey]?.array ?? []).contains { has($0, types, listKey) }
        }
        return has(json["pre_tokenizer"], ["Metaspace"], "pretokenizers") || has(json["normalizer"], ["Prepend", "Replace"], "normalizers")
    }

    private static func metaspaceTokenizer(_ json: JSONValue, model: JSONValue, tokens: [String?], merges: [(String, String)],
                                           addedTokens: [AddedToken], normalizedAddedTokens: [AddedToken], config: JSONValue?,
                                           path: String) throws(ModelError) -> any TextTokenizer {
        guard normalizedAddedTokens.isEmpty else {
            throw .unsupportedTokenizer(path: path, reason: "normalized added tokens in a SentencePiece-style tokenizer.json are not supported")
        }
        var steps: [MetaspaceBPETokenizer.NormalizerStep] = []
        func collect(_ value: JSONValue?) throws(ModelError) {
            guard let value, !value.isNull else { return }
            let type = value["type"]?.string ?? "?"
            switch type {
            case "Sequence": for inner in value["normalizers"]?.array ?? [] { try collect(inner) }
            case "Prepend": steps.append(.prepend(Array((value["prepend"]?.string ?? "").utf8)))
            case "Replace":
                guard let pattern = value["pattern"]?["String"]?.string, let content = value["content"]?.string else {
                    throw .unsupportedTokenizer(path: path, reason: "a Replace normalizer with a regex pattern is not supported (a String pattern is)")
                }
                steps.append(.replace(Array(pattern.utf8), Array(content.utf8)))
            case "NFC": steps.append(.unicode(.nfc))
            case "NFKC": steps.append(.unicode(.nfkc))
            case "NFD": steps.append(.unicode(.nfd))
            case "NFKD": steps.append(.unicode(.nfkd))
            default: throw .unsupportedTokenizer(path: path, reason: "normalizer '\(type)' is not supported in a SentencePiece-style tokenizer.json")
            }
        }
        try collect(json["normalizer"])
        var metaspace: (prepend: MetaspaceBPETokenizer.PrependScheme, split: Bool)? = nil
        func preTokenizer(_ value: JSONValue?) throws(ModelError) {
            guard let value, !value.isNull else { return }
            let type = value["type"]?.string ?? "?"
            switch type {
            case "Sequence": for inner in value["pretokenizers"]?.array ?? [] { try preTokenizer(inner) }
            case "Metaspace":
                guard value["replacement"]?.string ?? "\u{2581}" == "\u{2581}", metaspace == nil else {
                    throw .unsupportedTokenizer(path: path, reason: "a Metaspace pre-tokenizer with replacement other than '▁', or two of them, is not supported")
                }
                let scheme: MetaspaceBPETokenizer.PrependScheme
                if let name = value["prepend_scheme"]?.string {
                    guard let known = MetaspaceBPETokenizer.PrependScheme(rawValue: name) else {
                        throw .unsupportedTokenizer(path: path, reason: "Metaspace prepend_scheme '\(name)' is unknown")
                    }
                    scheme = known
                } else {
                    scheme = value["add_prefix_space"]?.bool ?? true ? .always : .never
                }
                metaspace = (scheme, value["split"]?.bool ?? true)
            default:
                throw .unsupportedTokenizer(path: path, reason: "pre-tokenizer '\(type)' is not supported in a SentencePiece-style tokenizer.json (Metaspace is)")
            }
        }
        try preTokenizer(json["pre_tokenizer"])
        var addedContent: [(String, Int)] = []
        for entry in json["added_tokens"]?.array ?? [] {
            if let id = entry["id"]?.int, let content = entry["content"]?.string { addedContent.append((content, id)) }
        }
        let vocabulary = model["vocab"]?.object ?? []
        let (bosID, addsBOS, _) = specialTokens(json, config: config, addedContent: addedContent, vocabulary: vocabulary)
        let unknown = model["unk_token"]?.string.flatMap { id(of: $0, addedContent: addedContent, vocabulary: vocabulary) }
        let decoder = json["decoder"].map { $0.serializedString() } ?? ""
        return try MetaspaceBPETokenizer(
            tokens: tokens, merges: merges, addedTokens: addedTokens, normalizer: steps, metaspace: metaspace,
            ignoresMerges: model["ignore_merges"]?.bool ?? false, unknownTokenID: unknown,
            fusesUnknown: model["fuse_unk"]?.bool ?? false, byteFallback: model["byte_fallback"]?.bool ?? false,
            bosTokenID: bosID, addsBOS: addsBOS, stripsLeadingSpace: decoder.contains("\"Strip\""), path: path)
    }

    private static func normalizer(_ value: JSONValue?, path: String) throws(ModelError) -> TextNormalization {
        guard let value, !value.isNull else { return .none }
        let type = value["type"]?.string ?? "?"
        switch type {
        case "NFC": return .nfc
        case "NFKC": return .nfkc
        case "NFD": return .nfd
        case "NFKD": return .nfkd
        case "Sequence":
            var result = TextNormalization.none
            for inner in value["normalizers"]?.array ?? [] {
                let next = try normalizer(inner, path: path)
                if next == .none { continue }
                guard result == .none else {
                    throw .unsupportedTokenizer(path: path, reason: "a Sequence of several Unicode normalizers is not supported")
                }
                result = next
            }
            return result
        default:
            throw .unsupportedTokenizer(path: path, reason: "normalizer '\(type)' is not supported (NFC, NFKC, NFD, NFKD are)")
        }
    }

    private static func preTokenizer(_ value: JSONValue?, path: String, patterns: inout [PreTokenizerPattern],
                                     byteLevel: inout Bool, addsPrefixSpace: inout Bool) throws(ModelError) {
        guard let value, !value.isNull else { return }
        let type = value["type"]?.string ?? "?"
        switch type {
        case "Sequence":
            for inner in value["pretokenizers"]?.array ?? [] {
                try preTokenizer(inner, path: path, patterns: &patterns, byteLevel: &byteLevel, addsPrefixSpace: &addsPrefixSpace)
            }
        case "ByteLevel":
            byteLevel = true
            if value["add_prefix_space"]?.bool == true {
                guard patterns.isEmpty else {
                    throw .unsupportedTokenizer(path: path, reason: "ByteLevel with add_prefix_space after a Split pre-tokenizer is not supported")
                }
                addsPrefixSpace = true
            }
            if value["use_regex"]?.bool ?? true { patterns.append(.gpt2) }
        case "Split":
            guard let regex = value["pattern"]?["Regex"]?.string else {
                throw .unsupportedTokenizer(path: path, reason: "a Split pre-tokenizer with a String pattern is not supported (the GPT-2, Llama 3 and Qwen2 regexes are)")
            }
            guard let pattern = PreTokenizerPattern(regex: regex) else {
                throw .unsupportedTokenizer(path: path, reason: "Split regex \(regex) is not one this module implements (GPT-2, Llama 3, Qwen2)")
            }
            let behavior = value["behavior"]?.string ?? "?"
            guard behavior == "Isolated", value["invert"]?.bool != true else {
                throw .unsupportedTokenizer(path: path, reason: "Split behavior '\(behavior)'\(value["invert"]?.bool == true ? " inverted" : "") is not supported (Isolated is)")
            }
            guard !byteLevel else {
                throw .unsupportedTokenizer(path: path, reason: "a Split pre-tokenizer after ByteLevel is not supported")
            }
            patterns.append(pattern)
        default:
            throw .unsupportedTokenizer(path: path, reason: "pre-tokenizer '\(type)' is not supported (ByteLevel, Split with the GPT-2/Llama 3/Qwen2 regex, Sequence of those are)")
        }
    }
}
