import Formats
import Foundation
import Quantize

/// The tokenizer files of a GGUF vocabulary (`tokenizer.ggml.*`), as a Hugging Face directory holds
/// them, written so that llama.cpp's converter reads the same vocabulary back:
/// - `llama` (SentencePiece): tokenizer.model with every token as a piece (its score, and its type:
///   normal, unknown, control, user-defined, unused, byte), BPE with byte fallback when the
///   vocabulary has byte tokens; user-defined tokens are listed again in tokenizer_config.json's
///   `added_tokens_decoder`, as transformers does.
/// - `gpt2` (byte-level BPE): tokenizer.json with the vocabulary, the merges, the pre-tokenizer of
///   `tokenizer.ggml.pre` (gpt-2, llama-bpe, qwen2) and the control and user-defined tokens as added tokens.
///
/// The special token ids go into config.json (``specialIDs``, in gguf-py's `SpecialVocab` order),
/// their texts, the add-BOS/EOS flags, `add_prefix_space` and the chat template into tokenizer_config.json.
struct TokenizerExport {
    /// The files (tokenizer.model or tokenizer.json, then tokenizer_config.json).
    var files: [ExportPlan.File] = []
    /// Special token ids by gguf-py's type name (bos, eos, unk, sep, pad, cls, mask), in that order.
    var specialIDs: [(String, Int)] = []
    /// What the files do not carry.
    var notes: [String] = []

    /// gguf-py's `SpecialVocab` token types and their GGUF keys, in its order.
    static let specialKeys: [(type: String, key: String)] = [
        ("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id"), ("sep", "seperator_token_id"),
        ("pad", "padding_token_id"), ("cls", "cls_token_id"), ("mask", "mask_token_id"),
    ]

    init(gguf: GGUFFile) throws {
        let path = gguf.path
        let tokenCount = gguf["tokenizer.ggml.tokens"]?.array?.count
        for (type, key) in Self.specialKeys {
            // Without a vocabulary the ids still say which embedding rows are BOS/EOS.
            if let id = gguf["tokenizer.ggml." + key]?.int, id >= 0, id < (tokenCount ?? Int.max) { specialIDs.append((type, id)) }
        }
        func refuse(_ what: String) -> QuantizeJobError {
            QuantizeJobError(.unsupportedConversion, "\(path): the vocabulary cannot be written as a Hugging Face tokenizer: \(what)")
        }
        guard let model = gguf["tokenizer.ggml.model"]?.string else {
            notes.append("the GGUF has no vocabulary (tokenizer.ggml.model): no tokenizer files were written")
            return
        }
        guard let values = gguf["tokenizer.ggml.tokens"]?.array else { throw refuse("tokenizer.ggml.tokens is missing") }
        var tokens: [String] = []
        tokens.reserveCapacity(values.count)
        for (index, value) in values.enumerated() {
            guard let text = value.string else { throw refuse("tokenizer.ggml.tokens[\(index)] is not a string") }
            tokens.append(text)
        }
        var types = [Int](repeating: 1, count: tokens.count)
        if let array = gguf["tokenizer.ggml.token_type"]?.array {
            guard array.count == tokens.count else { throw refuse("tokenizer.ggml.token_type has \(array.count) entries for \(tokens.count) tokens") }
            types = array.map { $0.int ?? 1 }
        }
        for key in ["eot_token_id", "eom_token_id", "fim_pre_token_id", "fim_suf_token_id", "fim_mid_token_id"] where gguf["tokenizer.ggml." + key] != nil {
            notes.append("tokenizer.ggml.\(key) has no place in a Hugging Face directory and is not carried")
        }
        for key in ["tokenizer.ggml.normalizer.lowercase", "tokenizer.ggml.normalizer.strip_accents"] where gguf[key] != nil {
            throw refuse("it has \(key), which this export does not write")
        }

        // tokenizer_config.json, keys sorted as transformers writes them.
        var config: [JSONMember] = []
        for type in ["bos", "eos", "sep"] {
            if let add = gguf["tokenizer.ggml.add_\(type)_token"]?.bool { config.append(JSONMember("add_\(type)_token", .bool(add))) }
        }
        if let prefix = gguf["tokenizer.ggml.add_space_prefix"]?.bool { config.append(JSONMember("add_prefix_space", .bool(prefix))) }
        // gguf-py's SpecialVocab takes the special tokens named in tokenizer_config.json first (in
        // its type order), then the ids of config.json for the types still unset; the GGUF keys'
        // order tells which came from where. Only the first group is named here (the rest are in
        // config.json alone), so converting the export again writes the keys in the same order.
        let canonical = Self.specialKeys.map { "tokenizer.ggml." + $0.key }
        let order = gguf.metadata.map(\.key).compactMap { key in canonical.firstIndex(of: key) }
        var named = 0
        while named < order.count, named == 0 || order[named] > order[named - 1] { named += 1 }
        let fromTokenizerConfig = Set(order.prefix(named).map { Self.specialKeys[$0].type })
        for (type, id) in specialIDs where fromTokenizerConfig.contains(type) {
            config.append(JSONMember("\(type)_token", .string(tokens[id])))
        }
        if let template = gguf["tokenizer.chat_template"]?.string { config.append(JSONMember("chat_template", .string(template))) }
        config.append(JSONMember("clean_up_tokenization_spaces", .bool(false)))
        if let context = gguf[(gguf["general.architecture"]?.string ?? "") + ".context_length"]?.int {
            config.append(JSONMember("model_max_length", .number(JSONNumber(context))))
        }

        switch model {
        case "llama":
            var pieceTypes: [SentencePieceModel.PieceType] = []
            var added: [JSONMember] = []
            for (id, raw) in types.enumerated() {
                guard let type = SentencePieceModel.PieceType(rawValue: raw == 0 ? 1 : raw) else {
                    throw refuse("token \(id) ('\(tokens[id])') has the type \(raw), which SentencePiece has no type for")
                }
                pieceTypes.append(type)
                if type == .userDefined {
                    added.append(JSONMember(String(id), Self.addedToken(tokens[id], id: id, special: false)))
                }
            }
            var scores = [Float](repeating: 0, count: tokens.count)
            if let array = gguf["tokenizer.ggml.scores"]?.array {
                guard array.count == tokens.count else { throw refuse("tokenizer.ggml.scores has \(array.count) entries for \(tokens.count) tokens") }
                scores = array.map { Float($0.double ?? 0) }
            }
            var seen = Set<String>()
            for token in tokens where !seen.insert(token).inserted {
                throw refuse("the token '\(token)' appears twice, which a SentencePiece model does not allow")
            }
            func id(_ type: String) -> Int32 { specialIDs.first { $0.0 == type }.map { Int32($0.1) } ?? -1 }
            let unknown = specialIDs.first { $0.0 == "unk" }?.1 ?? types.firstIndex(of: 2)
            guard let unknown, types[unknown] == 2 else {
                throw refuse("a SentencePiece model needs an unknown token (type 2), and this vocabulary has none")
            }
            let sentencePiece = SentencePieceModel(
                pieces: tokens, scores: scores, types: pieceTypes, algorithm: .bpe, byteFallback: types.contains(6),
                unknownID: Int32(unknown), bosID: id("bos"), eosID: id("eos"),
                addsDummyPrefix: gguf["tokenizer.ggml.add_space_prefix"]?.bool ?? true)
            if !added.isEmpty { config.append(JSONMember("added_tokens_decoder", .object(added))) }
            config.append(JSONMember("legacy", .bool(true)))
            config.append(JSONMember("tokenizer_class", .string("LlamaTokenizer")))
            files.append(ExportPlan.File(name: "tokenizer.model", bytes: sentencePiece.serialized()))
        case "gpt2":
            let preName = gguf["tokenizer.ggml.pre"]?.string ?? "gpt-2"
            guard let pre = GGUFVocabulary.preTokenizers.first(where: { $0.names.contains(preName) }) else {
                throw refuse("tokenizer.ggml.pre '\(preName)' is not one this export writes (gpt-2, llama-bpe, qwen2)")
            }
            guard let mergeValues = gguf["tokenizer.ggml.merges"]?.array else { throw refuse("a gpt2 vocabulary without tokenizer.ggml.merges") }
            var merges: [JSONValue] = []
            merges.reserveCapacity(mergeValues.count)
            for (index, value) in mergeValues.enumerated() {
                guard let text = value.string else { throw refuse("tokenizer.ggml.merges[\(index)] is not a string") }
                let parts = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw refuse("tokenizer.ggml.merges[\(index)] ('\(text)') is not two tokens separated by a space") }
                merges.append(.array([.string(String(parts[0])), .string(String(parts[1]))]))
            }
            config.append(JSONMember("tokenizer_class", .string("PreTrainedTokenizerFast")))
            files.append(ExportPlan.File(name: "tokenizer.json", bytes: Self.tokenizerJSON(
                tokens: tokens, types: types, merges: merges, pattern: pre.pattern, ignoresMerges: pre.ignoresMerges,
                bos: specialIDs.first { $0.0 == "bos" }?.1, addsBOS: gguf["tokenizer.ggml.add_bos_token"]?.bool ?? pre.addsBOS,
                eos: specialIDs.first { $0.0 == "eos" }?.1, addsEOS: gguf["tokenizer.ggml.add_eos_token"]?.bool ?? false)))
        default:
            throw refuse("tokenizer.ggml.model '\(model)' is neither llama (SentencePiece) nor gpt2 (BPE)")
        }
        config.sort { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
        files.append(ExportPlan.File(name: "tokenizer_config.json", bytes: HuggingFaceExport.document(.object(config))))
    }

    /// One `added_tokens` / `added_tokens_decoder` entry as `tokenizers` writes it.
    static func addedToken(_ content: String, id: Int?, special: Bool) -> JSONValue {
        var members: [JSONMember] = []
        if let id { members.append(JSONMember("id", .number(JSONNumber(id)))) }
        members += [
            JSONMember("content", .string(content)), JSONMember("single_word", .bool(false)), JSONMember("lstrip", .bool(false)),
            JSONMember("rstrip", .bool(false)), JSONMember("normalized", .bool(!special)), JSONMember("special", .bool(special)),
        ]
        return .object(members)
    }

    /// tokenizer.json of a byte-level BPE vocabulary: the model, the pre-tokenizer llama.cpp's
    /// `tokenizer.ggml.pre` names (a `Split` on its regex, then `ByteLevel` without its own regex,
    /// as Llama 3 and Qwen2 ship it; GPT-2's `ByteLevel` with its regex), the control (3) and
    /// user-defined (4) tokens as added tokens, and BOS/EOS added by a template when the flags say so.
    static func tokenizerJSON(tokens: [String], types: [Int], merges: [JSONValue], pattern: PreTokenizerPattern, ignoresMerges: Bool,
                              bos: Int?, addsBOS: Bool, eos: Int?, addsEOS: Bool) -> [UInt8] {
        func byteLevel(addPrefixSpace: Bool, trimOffsets: Bool, useRegex: Bool) -> JSONValue {
            .object([JSONMember("type", .string("ByteLevel")), JSONMember("add_prefix_space", .bool(addPrefixSpace)),
                     JSONMember("trim_offsets", .bool(trimOffsets)), JSONMember("use_regex", .bool(useRegex))])
        }
        let added = tokens.indices.filter { types[$0] == 3 || types[$0] == 4 }.map { id in
            addedToken(tokens[id], id: id, special: types[id] == 3)
        }
        let preTokenizer: JSONValue
        if pattern == .gpt2 {
            preTokenizer = byteLevel(addPrefixSpace: false, trimOffsets: true, useRegex: true)
        } else {
            preTokenizer = .object([JSONMember("type", .string("Sequence")), JSONMember("pretokenizers", .array([
                .object([JSONMember("type", .string("Split")), JSONMember("pattern", .object([JSONMember("Regex", .string(pattern.regex))])),
                         JSONMember("behavior", .string("Isolated")), JSONMember("invert", .bool(false))]),
                byteLevel(addPrefixSpace: false, trimOffsets: false, useRegex: false),
            ]))])
        }
        var processors: [JSONValue] = [byteLevel(addPrefixSpace: true, trimOffsets: false, useRegex: true)]
        let bosToken = addsBOS ? bos.map { tokens[$0] } : nil, eosToken = addsEOS ? eos.map { tokens[$0] } : nil
        if bosToken != nil || eosToken != nil {
            func special(_ token: String, _ typeID: Int) -> JSONValue {
                .object([JSONMember("SpecialToken", .object([JSONMember("id", .string(token)), JSONMember("type_id", .number(JSONNumber(typeID)))]))])
            }
            func sequence(_ id: String, _ typeID: Int) -> JSONValue {
                .object([JSONMember("Sequence", .object([JSONMember("id", .string(id)), JSONMember("type_id", .number(JSONNumber(typeID)))]))])
            }
            var single: [JSONValue] = [], pair: [JSONValue] = []
            if let bosToken { single.append(special(bosToken, 0)); pair.append(special(bosToken, 0)) }
            single.append(sequence("A", 0)); pair.append(sequence("A", 0))
            if let eosToken { single.append(special(eosToken, 0)); pair.append(special(eosToken, 0)) }
            if let bosToken { pair.append(special(bosToken, 1)) }
            pair.append(sequence("B", 1))
            if let eosToken { pair.append(special(eosToken, 1)) }
            var specials: [JSONMember] = []
            for (token, id) in [(bosToken, bos), (eosToken, eos)] {
                guard let token, let id, !specials.contains(where: { $0.key == token }) else { continue }
                specials.append(JSONMember(token, .object([JSONMember("id", .string(token)), JSONMember("ids", .array([.number(JSONNumber(id))])),
                                                           JSONMember("tokens", .array([.string(token)]))])))
            }
            processors.append(.object([JSONMember("type", .string("TemplateProcessing")), JSONMember("single", .array(single)),
                                       JSONMember("pair", .array(pair)), JSONMember("special_tokens", .object(specials))]))
        }
        // The converter fills ids missing from tokenizer.json with UNUSED `[PADn]` tokens; those
        // go back to being holes, so converting the export again gives the same vocabulary.
        let vocabulary = tokens.enumerated().filter { types[$0.offset] != 5 || $0.element != "[PAD\($0.offset)]" }
            .map { JSONMember($0.element, .number(JSONNumber($0.offset))) }
        let document: JSONValue = .object([
            JSONMember("version", .string("1.0")), JSONMember("truncation", .null), JSONMember("padding", .null),
            JSONMember("added_tokens", .array(added)), JSONMember("normalizer", .null), JSONMember("pre_tokenizer", preTokenizer),
            JSONMember("post_processor", processors.count == 1 ? processors[0] : .object([JSONMember("type", .string("Sequence")), JSONMember("processors", .array(processors))])),
            JSONMember("decoder", byteLevel(addPrefixSpace: true, trimOffsets: true, useRegex: true)),
            JSONMember("model", .object([
                JSONMember("type", .string("BPE")), JSONMember("dropout", .null), JSONMember("unk_token", .null),
                JSONMember("continuing_subword_prefix", .null), JSONMember("end_of_word_suffix", .null), JSONMember("fuse_unk", .bool(false)),
                JSONMember("byte_fallback", .bool(false)), JSONMember("ignore_merges", .bool(ignoresMerges)),
                JSONMember("vocab", .object(vocabulary)), JSONMember("merges", .array(merges)),
            ])),
        ])
        return document.serialized(JSONStyle(indent: 2, sortKeys: false, escapeNonASCII: false)) + [UInt8(ascii: "\n")]
    }
}
