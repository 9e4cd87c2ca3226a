import Formats

/// A tokenizer.json BPE over characters with byte fallback, as transformers converts SentencePiece
/// models (Llama, Mistral, the trained fixture): the `Metaspace` pre-tokenizer (spaces as `▁`, one
/// `▁` put in front) or the legacy `Prepend("▁")` + `Replace(" ", "▁")` normalizers, characters
/// without a token as their `<0xXX>` byte tokens, merges by rank. Tokenized as `tokenizers` does.
public struct MetaspaceBPETokenizer: TextTokenizer {
    /// When the `Metaspace` pre-tokenizer puts `▁` in front of a piece (`prepend_scheme`).
    public enum PrependScheme: String, Sendable {
        /// Every piece that does not start with `▁`.
        case always
        /// Only a piece at the start of the text (not one after an added token).
        case first
        /// Never.
        case never
    }

    /// One step of the normalizer sequence.
    enum NormalizerStep: Sendable {
        case prepend([UInt8])
        case replace([UInt8], [UInt8])
        case unicode(TextNormalization)
    }

    /// The beginning-of-sequence id, nil when the vocabulary has none.
    public let bosTokenID: Int32?
    /// Whether the runtime puts BOS in front of a tokenized text.
    public let addsBOS: Bool
    /// How many ids the vocabulary holds.
    public let vocabularySize: Int
    /// A short name of the kind and its source.
    public let summary: String

    private let tokens: [String?]
    private let tokenBytes: [[UInt8]]
    private let vocabulary: ByteStringIndex
    private let rules: BytePairMerger.Rules
    private let byteTokens: [Int32]
    private let normalizer: [NormalizerStep]
    private let metaspace: (prepend: PrependScheme, split: Bool)?
    private let ignoresMerges: Bool
    private let unknownTokenID: Int32?
    private let fusesUnknown: Bool
    private let byteFallback: Bool
    private let rawMatcher: AddedTokenMatcher
    private let scalarsBeforeSpace: Set<UInt32>
    private let stripsLeadingSpace: Bool

    private static let space: [UInt8] = [0xE2, 0x96, 0x81]

    init(tokens: [String?], merges: [(String, String)], addedTokens: [AddedToken], normalizer: [NormalizerStep],
         metaspace: (prepend: PrependScheme, split: Bool)?, ignoresMerges: Bool, unknownTokenID: Int32?, fusesUnknown: Bool,
         byteFallback: Bool, bosTokenID: Int32?, addsBOS: Bool, stripsLeadingSpace: Bool, path: String) throws(ModelError) {
        var index = ByteStringIndex(capacity: tokens.count)
        var stringToID: [String: Int32] = [:]
        var bytes: [[UInt8]] = []
        var byteTokens = [Int32](repeating: -1, count: 256)
        var beforeSpace = Set<UInt32>()
        for (position, token) in tokens.enumerated() {
            guard let token else { bytes.append([]); continue }
            let id = Int32(position)
            let utf8 = Array(token.utf8)
            index.insert(utf8, id)
            if stringToID[token] == nil { stringToID[token] = id }
            if utf8.count == 6, token.hasPrefix("<0x"), token.hasSuffix(">"), let value = UInt8(token.dropFirst(3).dropLast(), radix: 16) {
                if byteTokens[Int(value)] < 0 { byteTokens[Int(value)] = id }
                bytes.append([value])
            } else {
                bytes.append(Array(token.replacingOccurrences(of: "\u{2581}", with: " ").utf8))
            }
            var previous: UInt32? = nil
            for scalar in token.unicodeScalars {
                if scalar.value == 0x2581, let previous { beforeSpace.insert(previous) }
                previous = scalar.value
            }
        }
        for added in addedTokens where Int(added.id) < bytes.count { bytes[Int(added.id)] = Array(added.content.utf8) }
        var rules = BytePairMerger.Rules(capacity: merges.count)
        for (rank, merge) in merges.enumerated() {
            guard let left = stringToID[merge.0], let right = stringToID[merge.1], let result = stringToID[merge.0 + merge.1] else {
                throw .unsupportedTokenizer(path: path, reason: "merge \(rank) ('\(merge.0) \(merge.1)') names or makes a token that is not in the vocabulary")
            }
            rules.add(left, right, BytePairMerger.Rule(rank: Int32(rank), result: result))
        }
        self.tokens = tokens
        tokenBytes = bytes
        vocabulary = index
        self.rules = rules
        self.byteTokens = byteTokens
        self.normalizer = normalizer
        self.metaspace = metaspace
        self.ignoresMerges = ignoresMerges
        self.unknownTokenID = unknownTokenID
        self.fusesUnknown = fusesUnknown
        self.byteFallback = byteFallback
        rawMatcher = AddedTokenMatcher(tokens: addedTokens, policy: .leftmostLongest)
        scalarsBeforeSpace = beforeSpace
        self.bosTokenID = bosTokenID
        self.addsBOS = addsBOS
        self.stripsLeadingSpace = stripsLeadingSpace
        vocabularySize = tokens.count
        summary = "sentencepiece-style BPE\(metaspace.map { " metaspace \($0.prepend.rawValue)" } ?? "") (tokenizer.json)"
    }

    private struct Scratch {
        var merger = BytePairMerger()
        var symbols: [Int32] = []
        var cache = WordCache()
    }

    /// The ids of `text`, without BOS/EOS.
    public func encode(_ text: String) throws(ModelError) -> [Int32] {
        var output: [Int32] = []
        var scratch = Scratch()
        let utf8 = Array(text.utf8)
        utf8.withUnsafeBufferPointer { bytes in
            for segment in rawMatcher.segments(bytes, 0..<bytes.count) {
                switch segment {
                case .token(let id): output.append(id)
                case .text(let range): encodeSegment(UnsafeBufferPointer(rebasing: bytes[range]), atStart: range.lowerBound == 0, &scratch, &output)
                }
            }
        }
        return output
    }

    private static func replace(_ bytes: [UInt8], _ pattern: [UInt8], _ content: [UInt8]) -> [UInt8] {
        guard !pattern.isEmpty else { return bytes }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + bytes.count / 4)
        var index = 0
        while index < bytes.count {
            if bytes[index] == pattern[0] && index + pattern.count <= bytes.count && bytes[index..<(index + pattern.count)].elementsEqual(pattern) {
                output.append(contentsOf: content)
                index += pattern.count
            } else {
                output.append(bytes[index])
                index += 1
            }
        }
        return output
    }

    private func encodeSegment(_ raw: UnsafeBufferPointer<UInt8>, atStart: Bool, _ scratch: inout Scratch, _ output: inout [Int32]) {
        var text = Array(raw)
        for step in normalizer {
            switch step {
            case .prepend(let prefix): if !text.isEmpty { text = prefix + text }
            case .replace(let pattern, let content): text = Self.replace(text, pattern, content)
            case .unicode(let form): text = text.withUnsafeBufferPointer { form.apply(to: $0) }
            }
        }
        if let metaspace {
            text = Self.replace(text, [0x20], Self.space)
            let startsWithSpace = text.starts(with: Self.space)
            switch metaspace.prepend {
            case .always where !startsWithSpace, .first where !startsWithSpace && atStart: text = Self.space + text
            default: break
            }
        }
        text.withUnsafeBufferPointer { bytes in
            // Pieces: split before every ▁ when the pre-tokenizer splits; otherwise before a ▁ that
            // follows a character no token holds before a ▁ (no merge can span that point).
            var start = 0
            var index = 0
            var previous: UInt32 = 0x2581
            let splits = metaspace?.split ?? false
            // Whole-word lookup (ignore_merges) needs the real pieces, so no extra cuts then.
            let cuts = splits || !ignoresMerges
            while index < bytes.count {
                let length = min(Self.characterLength(bytes[index]), bytes.count - index)
                let scalar = Self.scalar(bytes, index, length)
                if scalar == 0x2581 && index > start && cuts && (splits || !scalarsBeforeSpace.contains(previous)) {
                    encodeWord(UnsafeBufferPointer(rebasing: bytes[start..<index]), &scratch, &output)
                    start = index
                }
                previous = scalar
                index += length
            }
            if start < bytes.count { encodeWord(UnsafeBufferPointer(rebasing: bytes[start...]), &scratch, &output) }
        }
    }

    @inline(__always) private static func characterLength(_ lead: UInt8) -> Int {
        lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
    }

    @inline(__always) private static func scalar(_ text: UnsafeBufferPointer<UInt8>, _ index: Int, _ length: Int) -> UInt32 {
        var value = UInt32(text[index])
        switch length {
        case 2: value = (value & 0x1F) << 6 | UInt32(text[index + 1] & 0x3F)
        case 3: value = (value & 0x0F) << 12 | UInt32(text[index + 1] & 0x3F) << 6 | UInt32(text[index + 2] & 0x3F)
        case 4: value = (value & 0x07) << 18 | UInt32(text[index + 1] & 0x3F) << 12 | UInt32(text[index + 2] & 0x3F) << 6 | UInt32(text[index + 3] & 0x3F)
        default: break
        }
        return value
    }

    private func encodeWord(_ word: UnsafeBufferPointer<UInt8>, _ scratch: inout Scratch, _ output: inout [Int32]) {
        if word.isEmpty { return }
        if ignoresMerges, let id = vocabulary.lookup(word) {
            output.append(id)
            return
        }
        let cacheable = word.count <= WordCache.maximumLength
        let hash = cacheable ? ByteStringIndex.hash(word) : 0
        if cacheable && scratch.cache.lookup(word, hash: hash, into: &output) { return }
        let first = output.count
        defer {
            if cacheable && output.count > first && output[first] != unknownTokenID {
                scratch.cache.insert(word, hash: hash, result: output[first...])
            }
        }
        scratch.symbols.removeAll(keepingCapacity: true)
        var index = 0
        var previousUnknown = false
        while index < word.count {
            let length = min(Self.characterLength(word[index]), word.count - index)
            let character = UnsafeBufferPointer(rebasing: word[index..<(index + length)])
            if let id = vocabulary.lookup(character) {
                scratch.symbols.append(id)
                previousUnknown = false
            } else if byteFallback, character.allSatisfy({ byteTokens[Int($0)] >= 0 }) {
                for byte in character { scratch.symbols.append(byteTokens[Int(byte)]) }
                previousUnknown = false
            } else if let unknownTokenID {
                if !(fusesUnknown && previousUnknown) { scratch.symbols.append(unknownTokenID) }
                previousUnknown = true
            }
            index += length
        }
        scratch.symbols.withUnsafeBufferPointer { symbols in
            scratch.merger.merge(symbols, rules: rules, into: &output)
        }
    }

    /// The text of `ids`: `▁` as spaces, byte tokens as bytes, the leading space the decoder strips removed.
    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && Int(id) < tokenBytes.count && id != bosTokenID { bytes.append(contentsOf: tokenBytes[Int(id)]) }
        let dropsFirst = stripsLeadingSpace && bytes.first == 0x20
        return String(decoding: dropsFirst ? bytes.dropFirst() : bytes[...], as: UTF8.self)
    }

    /// The vocabulary string of `id`, nil when out of range.
    public func tokenText(_ id: Int32) -> String? {
        guard id >= 0, Int(id) < tokens.count else { return nil }
        return tokens[Int(id)]
    }
}
