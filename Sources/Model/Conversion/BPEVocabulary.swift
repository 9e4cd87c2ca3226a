import Formats
import Foundation
import Quantize

/// The `tokenizer.*` keys llama.cpp's converter writes for a byte-level BPE tokenizer.json
/// (`TextModel._set_vocab_gpt2`: `get_vocab_base`, `get_vocab_base_pre`, then `SpecialVocab` with
/// merges; conversion/base.py and gguf-py/gguf/vocab.py of the llama.cpp under .llama.cpp/llama.cpp).
///
/// `tokenizer.ggml.pre` is named the converter's way: the sha256 of the token ids of its check text,
/// looked up in its table (``preTokenizerNames``). The ids come from our own ``ByteLevelBPETokenizer``
/// (which tokenizes as the `tokenizers` library does), so an unknown hash — a pre-tokenizer llama.cpp
/// does not know, or one we would tokenize differently — is refused before any weight is read.
struct BPEVocabulary {
    /// The converter's check text (`chktxt` of `get_vocab_base_pre`).
    static let checkText = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u{200D}🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"

    /// The tokenizer_config.json classes converted.
    static let tokenizerClasses = ["PreTrainedTokenizerFast", "GPT2Tokenizer", "GPT2TokenizerFast", "Qwen2Tokenizer", "Qwen2TokenizerFast",
                                   "LlamaTokenizer", "LlamaTokenizerFast"]

    /// The pre-tokenizer name llama.cpp's converter gives this tokenizer.
    let preTokenizer: String
    /// The sha256 of the check text's ids.
    let checkHash: String
    private let tokens: [String]
    private let types: [Int32]
    private let merges: [String]
    private let tokenizerConfig: JSONValue?

    /// Reads and checks tokenizer.json of `directory` against what the converter accepts.
    /// - Throws: what `refuse` makes of the reason, for a tokenizer the converter would treat
    ///   otherwise or refuse.
    init(directory: String, config: ModelConfig, tokenizerConfig: JSONValue?, refuse: (String) -> QuantizeJobError) throws {
        self.tokenizerConfig = tokenizerConfig
        let path = directory + "/tokenizer.json"
        let json: JSONValue
        do { json = try JSONValue.parse(contentsOf: path) } catch { throw refuse("tokenizer.json does not parse (\(error))") }
        guard let model = json["model"], model["type"]?.string == "BPE" else {
            throw refuse("tokenizer.json's model is '\(json["model"]?["type"]?.string ?? "missing")', not a byte-level BPE")
        }
        // LlamaHfVocab (gguf-py) takes a SentencePiece-style tokenizer.json: that path is not ours.
        let ignoresMerges = model["ignore_merges"]?.bool ?? false
        let isLlama3 = ignoresMerges && !(model["byte_fallback"]?.bool ?? true)
        if !isLlama3, model["byte_fallback"]?.bool == true, json["decoder"]?["type"]?.string == "Sequence" {
            throw refuse("there is no tokenizer.model, and tokenizer.json is a SentencePiece-style BPE (byte fallback), which the converter reads through transformers as a llama vocabulary (LlamaHfVocab, not converted yet)")
        }
        // transformers (5.23) loads these classes from tokenizer.json as it stands (checked on the
        // fixtures: the same ids, vocabulary and added tokens); another class may rebuild it.
        if let type = tokenizerConfig?["tokenizer_class"]?.string, !Self.tokenizerClasses.contains(type) {
            throw refuse("tokenizer_config.json names tokenizer_class '\(type)', whose transformers class may rebuild the tokenizer; converted are \(Self.tokenizerClasses.joined(separator: ", "))")
        }
        let tokenizer: any TextTokenizer
        do {
            tokenizer = try TokenizerJSON.tokenizer(json, config: tokenizerConfig, path: path, options: TokenizerOptions())
        } catch {
            throw refuse("tokenizer.json is not a tokenizer this tool reads (\(error))")
        }
        guard tokenizer is ByteLevelBPETokenizer else {
            throw refuse("tokenizer.json is not a byte-level BPE (\(tokenizer.summary))")
        }

        // get_vocab_base_pre: the ids transformers' encode gives (the post-processor's BOS included).
        var ids: [Int32]
        do { ids = try tokenizer.encode(Self.checkText) } catch { throw refuse("tokenizer.json cannot encode the converter's check text (\(error))") }
        if tokenizer.addsBOS, let bos = tokenizer.bosTokenID { ids.insert(bos, at: 0) }
        let text = "[" + ids.map(String.init).joined(separator: ", ") + "]"
        let hash = Array(text.utf8).withUnsafeBytes { IntegrityManifest.sha256($0) }
        guard let name = Self.preTokenizerNames[hash] else {
            throw refuse("llama.cpp's converter does not recognize this BPE pre-tokenizer: the check-text hash \(hash) of its ids (as this tool tokenizes; a post-processor that adds more than BOS is not reproduced) is not in get_vocab_base_pre's table, and the converter refuses such a tokenizer too")
        }
        preTokenizer = name
        checkHash = hash

        // get_vocab_base: every id below vocab_size, [PADn] for holes, added tokens typed.
        var byID: [Int: String] = [:]
        for member in model["vocab"]?.object ?? [] {
            guard let id = member.value.int, id >= 0 else { throw refuse("tokenizer.json model.vocab['\(member.key)'] is not a non-negative id") }
            byID[id] = member.key
        }
        struct Added { var content: String; var special: Bool; var normalized: Bool }
        var added: [Int: Added] = [:]
        var addedContents = Set<String>()
        for entry in json["added_tokens"]?.array ?? [] {
            guard let id = entry["id"]?.int, id >= 0, let content = entry["content"]?.string else { throw refuse("a tokenizer.json added_tokens entry lacks id or content") }
            let special = entry["special"]?.bool ?? false
            if let existing = byID[id], existing != content {
                throw refuse("added token '\(content)' reuses id \(id) of the vocabulary entry '\(existing)'")
            }
            byID[id] = content
            added[id] = Added(content: content, special: special, normalized: entry["normalized"]?.bool ?? !special)
            addedContents.insert(content)
        }
        let largest = byID.keys.max() ?? -1
        let vocabularySize = config.int("vocab_size") ?? byID.count
        guard largest < vocabularySize else {
            throw refuse("tokenizer.json has id \(largest), not below config.json's vocab_size \(vocabularySize)")
        }
        guard largest < byID.count + TokenizerJSON.maximumMissingIDs, vocabularySize <= byID.count + TokenizerJSON.maximumMissingIDs else {
            throw refuse("vocab_size \(vocabularySize) leaves more than \(TokenizerJSON.maximumMissingIDs) ids without a token")
        }
        var tokens: [String] = []
        var types: [Int32] = []
        tokens.reserveCapacity(vocabularySize)
        types.reserveCapacity(vocabularySize)
        for id in 0..<vocabularySize {
            guard var token = byID[id] else {
                tokens.append("[PAD\(id)]")
                types.append(5)  // UNUSED
                continue
            }
            if addedContents.contains(token) {
                guard let info = added[id] else {
                    // The converter looks the flags up by this id and fails (KeyError).
                    throw refuse("'\(token)' is vocabulary entry \(id) and also an added token with another id; the converter fails on that")
                }
                if !info.normalized {
                    // The converter re-encodes and decodes such a token; one that comes back as itself stays.
                    let roundTrip = (try? tokenizer.encode(token)) ?? []
                    guard roundTrip == [Int32(id)] else {
                        throw refuse("added token '\(token)' (id \(id)) does not encode to itself, and the converter's decode(encode(token)) is not reproduced")
                    }
                }
                if info.special || LlamaConversion.looksSpecial(token) {
                    types.append(3)  // CONTROL
                } else {
                    token = token.replacingOccurrences(of: "\u{2581}", with: " ")
                    types.append(4)  // USER_DEFINED
                }
            } else {
                types.append(1)  // NORMAL
            }
            tokens.append(token)
        }
        self.tokens = tokens
        self.types = types

        // SpecialVocab(load_merges=True): merges as stored, pairs joined with a space (spaces inside
        // a part written as U+0120, as gguf-py does).
        var merges: [String] = []
        for (index, merge) in (model["merges"]?.array ?? []).enumerated() {
            if let text = merge.string {
                merges.append(text)
            } else if let pair = merge.array, pair.count == 2, let a = pair[0].string, let b = pair[1].string {
                func encode(_ part: String) -> String { part.replacingOccurrences(of: " ", with: "\u{0120}") }
                merges.append(encode(a) + " " + encode(b))
            } else {
                throw refuse("tokenizer.json merge \(index) is neither \"a b\" nor [\"a\", \"b\"]")
            }
        }
        self.merges = merges
    }

    /// The keys in the converter's order: model, pre, tokens, types, merges, then `SpecialVocab`'s.
    func metadata(directory: String) throws -> [(key: String, value: GGUFValue)] {
        var out: [(key: String, value: GGUFValue)] = []
        out.append(("tokenizer.ggml.model", .string("gpt2")))
        out.append(("tokenizer.ggml.pre", .string(preTokenizer)))
        out.append(("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) })))
        out.append(("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0) })))
        if !merges.isEmpty { out.append(("tokenizer.ggml.merges", .array(.string, merges.map { .string($0) }))) }
        // _set_vocab_gpt2 makes SpecialVocab without n_vocab: ids are not bounded by the vocabulary.
        out += try SpecialVocabulary(directory: directory, tokenizerConfig: tokenizerConfig, vocabularySize: Int.max).metadata
        return out
    }
}
