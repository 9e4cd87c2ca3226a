import Formats
import Foundation
import Quantize

extension LlamaConversion {
    /// The `tokenizer.*` keys llama.cpp's converter writes for a SentencePiece llama:
    /// `add_space_prefix` from tokenizer_config.json, then `_create_vocab_sentencepiece` (pieces,
    /// scores and types of tokenizer.model, added_tokens.json, tokenizer_config.json's
    /// `added_tokens_decoder`, `[PAD…]` padding to `vocab_size`) and `SpecialVocab` (special token ids,
    /// add-BOS/EOS/SEP flags from tokenizer.json's post-processor and tokenizer_config.json, the chat
    /// template, normalizer flags).
    static func tokenizerMetadata(directory: String, config: ModelConfig) throws -> [(key: String, value: GGUFValue)] {
        let modelPath = directory + "/tokenizer.model"
        let file: MappedFile
        do { file = try MappedFile(path: modelPath) } catch {
            throw ModelError.unsupportedTokenizer(path: modelPath, reason: "cannot be read: \(error)")
        }
        let model = try SentencePieceModel(bytes: file.bytes, path: modelPath)
        let tokenizerConfig = try? JSONValue.parse(contentsOf: directory + "/tokenizer_config.json")

        let pieceCount = model.pieces.count
        let vocabSize = config.int("vocab_size_per_layer_input") ?? config.int("vocab_size") ?? pieceCount
        var tokens = (0..<vocabSize).map { "[PAD\($0)]" }
        var scores = [Float](repeating: -10000, count: vocabSize)
        var types = [Int32](repeating: 5, count: vocabSize)  // UNUSED
        for id in 0..<min(pieceCount, vocabSize) {
            tokens[id] = model.pieces[id]
            scores[id] = model.scores[id]
            switch model.types[id] {
            case .unknown: types[id] = 2
            case .control: types[id] = 3
            case .unused: types[id] = 5
            case .byte: types[id] = 6
            case .normal, .userDefined: types[id] = 1
            }
        }
        if let added = try? JSONValue.parse(contentsOf: directory + "/added_tokens.json"), let members = added.object {
            for member in members {
                guard let id = member.value.int, id >= 0, id < vocabSize else { continue }
                tokens[id] = member.key
                scores[id] = -1000
                types[id] = 4
            }
        }
        for member in tokenizerConfig?["added_tokens_decoder"]?.object ?? [] {
            guard let id = Int(member.key), id >= 0, id < vocabSize, var token = member.value["content"]?.string else { continue }
            if member.value["special"]?.bool == true || looksSpecial(token) {
                types[id] = 3
            } else {
                token = token.replacingOccurrences(of: "\u{2581}", with: " ")
                types[id] = 4
            }
            scores[id] = -1000
            tokens[id] = token
        }

        var out: [(key: String, value: GGUFValue)] = []
        if let prefix = tokenizerConfig?["add_prefix_space"]?.bool { out.append(("tokenizer.ggml.add_space_prefix", .bool(prefix))) }
        out.append(("tokenizer.ggml.model", .string("llama")))
        out.append(("tokenizer.ggml.pre", .string("default")))
        out.append(("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) })))
        out.append(("tokenizer.ggml.scores", .array(.float32, scores.map { .float32($0) })))
        out.append(("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0) })))
        out += try SpecialVocabulary(directory: directory, tokenizerConfig: tokenizerConfig, vocabularySize: tokens.count).metadata
        return out
    }

    /// The converter's `does_token_look_special`.
    static func looksSpecial(_ token: String) -> Bool {
        ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].contains(token)
            || (token.hasPrefix("<|") && token.hasSuffix("|>"))
            || (token.hasPrefix("<\u{FF5C}") && token.hasSuffix("\u{FF5C}>"))
            || (token.hasPrefix("<unused") && token.hasSuffix(">"))
    }
}

/// gguf-py's `SpecialVocab` without merges (gguf-py/gguf/vocab.py): special token ids, add-token
/// flags, chat template and normalizer flags, in the order `add_to_gguf` writes them.
struct SpecialVocabulary {
    private(set) var tokenIDs: [(String, Int)] = []
    private(set) var addTokens: [(String, Bool)] = []
    private(set) var chatTemplate: String? = nil
    private(set) var lowercase: Bool? = nil
    private(set) var stripAccents: Bool? = nil
    private var tokenTypes = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]
    private let vocabularySize: Int

    init(directory: String, tokenizerConfig: JSONValue?, vocabularySize: Int) throws {
        self.vocabularySize = vocabularySize
        try loadTokenizerJSON(directory: directory, tokenizerConfig: tokenizerConfig)
        if let config = try? JSONValue.parse(contentsOf: directory + "/config.json") {
            for type in tokenTypes {
                var id = config["\(type)_token_id"]
                if id == nil || id?.isNull == true, let text = config["text_config"] { id = text["\(type)_token_id"] }
                try setToken(type, id)
            }
        }
    }

    /// The GGUF keys, in `add_to_gguf`'s order (types without a writer handler are skipped, as there).
    var metadata: [(key: String, value: GGUFValue)] {
        let idKeys = ["bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "sep": "seperator_token_id",
                      "pad": "padding_token_id", "mask": "mask_token_id", "eot": "eot_token_id", "eom": "eom_token_id"]
        var out: [(key: String, value: GGUFValue)] = []
        for (type, id) in tokenIDs { if let key = idKeys[type] { out.append(("tokenizer.ggml." + key, .uint32(UInt32(id)))) } }
        for (type, value) in addTokens where ["bos", "eos", "sep"].contains(type) { out.append(("tokenizer.ggml.add_\(type)_token", .bool(value))) }
        if let chatTemplate { out.append(("tokenizer.chat_template", .string(chatTemplate))) }
        if let lowercase { out.append(("tokenizer.ggml.normalizer.lowercase", .bool(lowercase))) }
        if let stripAccents { out.append(("tokenizer.ggml.normalizer.strip_accents", .bool(stripAccents))) }
        return out
    }

    private mutating func setToken(_ type: String, _ value: JSONValue?) throws {
        guard case .number(let number)? = value, let id = number.int else { return }
        guard id >= 0 else { throw QuantizeJobError(.unsupportedConversion, "invalid value for special token type \(type): \(id)") }
        guard id < vocabularySize, !tokenIDs.contains(where: { $0.0 == type }) else { return }
        tokenIDs.append((type, id))
    }

    private mutating func setAdd(_ type: String, _ value: Bool, onlyIfMissing: Bool = false) {
        if let i = addTokens.firstIndex(where: { $0.0 == type }) {
            if !onlyIfMissing { addTokens[i].1 = value }
        } else {
            addTokens.append((type, value))
        }
    }

    private mutating func parseNormalizer(_ normalizer: JSONValue) {
        switch normalizer["type"]?.string {
        case "Lowercase": lowercase = true
        case "StripAccents": stripAccents = true
        case "BertNormalizer":
            if let v = normalizer["lowercase"]?.bool { lowercase = v }
            if let v = normalizer["strip_accents"]?.bool { stripAccents = v }
        case "Sequence": for inner in normalizer["normalizers"]?.array ?? [] { parseNormalizer(inner) }
        default: break
        }
    }

    /// Python truthiness of a JSON value (null, false, "", [], {} and 0 are false).
    private static func truthy(_ value: JSONValue?) -> Bool {
        switch value {
        case nil, .null?: return false
        case .bool(let b)?: return b
        case .string(let s)?: return !s.isEmpty
        case .array(let a)?: return !a.isEmpty
        case .object(let o)?: return !o.isEmpty
        case .number(let n)?: return n.double != 0
        }
    }

    private mutating func loadTokenizerJSON(directory: String, tokenizerConfig: JSONValue?) throws {
        let tokenizer = try? JSONValue.parse(contentsOf: directory + "/tokenizer.json")
        var added: [JSONValue] = []
        if let tokenizer {
            if let normalizer = tokenizer["normalizer"], Self.truthy(normalizer) { parseNormalizer(normalizer) }
            added = tokenizer["added_tokens"]?.array ?? []
        }
        // tokenizer_config.json as a mutable dictionary (the converter writes into it).
        var tc: [String: JSONValue] = [:]
        var order: [String] = []
        for member in tokenizerConfig?.object ?? [] { if tc[member.key] == nil { order.append(member.key) }; tc[member.key] = member.value }
        let hasConfig = !order.isEmpty
        func text(_ key: String) -> JSONValue? { tc[key] }
        if let tokenizer, Self.truthy(tokenizer) {
            var bos = text("bos_token"), cls = text("cls_token"), eos = text("eos_token"), sep = text("sep_token")
            if !Self.truthy(bos) && Self.truthy(cls) && hasConfig { tc["bos_token"] = cls; bos = cls }
            if !Self.truthy(eos) && Self.truthy(sep) && hasConfig { tc["eos_token"] = sep; eos = sep }
            if let post = tokenizer["post_processor"], Self.truthy(post) {
                let processors = post["processors"]?.array ?? [post]
                for processor in processors {
                    switch processor["type"]?.string {
                    case "ByteLevel":
                        setAdd("bos", false, onlyIfMissing: true)
                        setAdd("eos", false, onlyIfMissing: true)
                    case "RobertaProcessing":
                        setAdd("bos", true); setAdd("eos", true); setAdd("sep", true)
                        if !Self.truthy(cls) && hasConfig { cls = processor["cls"]?[0] ?? bos; tc["cls_token"] = cls }
                        if !Self.truthy(sep) && hasConfig { sep = processor["sep"]?[0] ?? eos; tc["sep_token"] = sep }
                    case "TemplateProcessing":
                        let single = processor["single"]?.array ?? [], pair = processor["pair"]?.array ?? []
                        func special(_ item: JSONValue?) -> JSONValue? {
                            let id = item?["SpecialToken"]?["id"]
                            return Self.truthy(id) ? id : nil
                        }
                        var first: JSONValue? = nil, last: JSONValue? = nil
                        if single.count > 1 {
                            first = special(single.first)
                            if let f = first {
                                if !hasConfig { bos = f } else if f != bos && f != cls {
                                    if !Self.truthy(bos) { tc["bos_token"] = f; bos = f }
                                    if !Self.truthy(cls) { tc["cls_token"] = f; cls = f }
                                }
                                setAdd("bos", f == bos || f == cls)
                            }
                            last = special(single.last)
                            if let l = last {
                                if !hasConfig { eos = l } else if l != eos {
                                    if !tokenTypes.contains("eot") { tokenTypes.append("eot"); tc["eot_token"] = eos ?? .null }
                                    else if !tokenTypes.contains("eom") { tokenTypes.append("eom"); tc["eom_token"] = eos ?? .null }
                                    tc["eos_token"] = l; eos = l
                                }
                                setAdd("eos", l == eos)
                            }
                        }
                        if !pair.isEmpty {
                            let start = first != nil && special(pair.first) == first ? 1 : 0
                            let stop = last != nil && special(pair.last) == last ? pair.count - 1 : pair.count
                            var middle = start < stop ? Array(pair[start..<stop]) : []
                            if !middle.isEmpty {
                                let a = middle.first?["Sequence"]?["id"]?.string, b = middle.last?["Sequence"]?["id"]?.string
                                if a == "A" && b == "B" && middle.count > 2 {
                                    middle = Array(middle[1..<(middle.count - 1)])
                                    var addSep = false
                                    if let entry = special(middle.first), (entry == sep || entry == eos) && last == nil { addSep = true }
                                    if middle.count == 2, let entry = special(middle[1]), entry == sep || entry == eos { addSep = true }
                                    setAdd("sep", addSep)
                                    if addSep && !Self.truthy(sep) && hasConfig { tc["sep_token"] = eos ?? .null }
                                }
                            }
                        }
                    default: break
                    }
                }
            }
        }
        guard hasConfig else { return }
        var template: JSONValue? = nil
        let jinja = directory + "/chat_template.jinja", json = directory + "/chat_template.json"
        if FileManager.default.fileExists(atPath: jinja) {
            template = .string(try String(contentsOfFile: jinja, encoding: .utf8))
        } else if let parsed = try? JSONValue.parse(contentsOf: json) {
            template = parsed["chat_template"]
        }
        if let own = tc["chat_template"] { template = own }
        switch template {
        case .string(let s)?: chatTemplate = s
        case nil, .null?: break
        default: throw QuantizeJobError(.unsupportedConversion, "\(directory): the chat template is not one string (a list of named templates is not converted yet)")
        }
        for type in tokenTypes {
            if let add = tc["add_\(type)_token"]?.bool { setAdd(type, add, onlyIfMissing: true) }
            let content: String
            switch tc["\(type)_token"] {
            case .string(let s)?: content = s
            case .object?: guard let s = tc["\(type)_token"]?["content"]?.string else { continue }; content = s
            default: continue
            }
            let id = added.first { $0["content"]?.string == content }?["id"]
            try setToken(type, id)
        }
    }
}
