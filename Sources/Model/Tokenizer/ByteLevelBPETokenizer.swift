import Foundation

/// A byte-level BPE tokenizer (GPT-2, Llama 3, Qwen2 families), from a tokenizer.json or a GGUF
/// `gpt2` vocabulary.
///
/// Pipeline, as `tokenizers` runs it: added tokens are split out of the raw text; each remaining
/// piece is normalized (NFC/NFKC where declared); pre-tokenized by the declared regex
/// (``PreTokenizerPattern``); each pre-token's UTF-8 bytes become byte tokens that are merged by rank
/// (``BytePairMerger``). A GGUF vocabulary follows llama.cpp instead where the two differ: special
/// tokens are split longest-first and no normalizer runs.
public struct ByteLevelBPETokenizer: TextTokenizer {
    /// Where a vocabulary came from, which decides the reference behaviour to follow.
    public enum Source: String, Sendable {
        /// tokenizer.json, tokenized as the `tokenizers` library does.
        case tokenizersJSON = "tokenizer.json"
        /// A GGUF `gpt2` vocabulary, tokenized as llama.cpp does.
        case gguf = "GGUF"
    }

    /// The pieces the tokenizer is made of, as read from a file.
    public struct Configuration: Sendable {
        /// Every token string (byte-level characters), indexed by id; nil for ids without a token.
        public var tokens: [String?]
        /// The merge rules in rank order, each a pair of token strings.
        public var merges: [(String, String)]
        /// Tokens matched verbatim in the raw text before normalization.
        public var addedTokens: [AddedToken]
        /// Tokens matched verbatim after normalization (`tokenizers`' `normalized: true`).
        public var normalizedAddedTokens: [AddedToken] = []
        /// The pre-tokenizer regexes applied in order; empty for none (the whole text is one word).
        public var patterns: [PreTokenizerPattern]
        /// Whether a space is put in front of a text that does not start with one.
        public var addsPrefixSpace: Bool = false
        /// Whether a pre-token that is itself a token skips merging (Llama 3's `ignore_merges`).
        public var ignoresMerges: Bool = false
        /// The normalizer.
        public var normalization: TextNormalization = .none
        /// The unknown token for bytes without a token, nil to drop them as `tokenizers` does.
        public var unknownTokenID: Int32? = nil
        /// Whether consecutive unknown tokens fuse into one.
        public var fusesUnknown: Bool = false
        /// The BOS token id.
        public var bosTokenID: Int32?
        /// The EOS token id.
        public var eosTokenID: Int32?
        /// Whether BOS is put in front of a tokenized text.
        public var addsBOS: Bool
        /// How added tokens are matched.
        public var source: Source
        /// Extra words for ``summary`` (the pre-tokenizer name, the file).
        public var label: String

        /// A configuration.
        public init(tokens: [String?], merges: [(String, String)], addedTokens: [AddedToken], patterns: [PreTokenizerPattern],
                    bosTokenID: Int32?, eosTokenID: Int32?, addsBOS: Bool, source: Source, label: String) {
            self.tokens = tokens
            self.merges = merges
            self.addedTokens = addedTokens
            self.patterns = patterns
            self.bosTokenID = bosTokenID
            self.eosTokenID = eosTokenID
            self.addsBOS = addsBOS
            self.source = source
            self.label = label
        }
    }

    /// The beginning-of-sequence id, nil when the vocabulary has none.
    public let bosTokenID: Int32?
    /// The end-of-sequence id, nil when the vocabulary has none.
    public let eosTokenID: Int32?
    /// Whether the runtime puts BOS in front of a tokenized text.
    public let addsBOS: Bool
    /// How many ids the vocabulary holds.
    public let vocabularySize: Int
    /// A short name of the kind and its source.
    public let summary: String
    /// The pre-tokenizer regexes, in order.
    public let patterns: [PreTokenizerPattern]
    /// The normalizer.
    public let normalization: TextNormalization
    /// Where the vocabulary came from.
    public let source: Source

    private let tokenBytes: [[UInt8]]
    private let tokenStrings: [String?]
    private let wholeTokens: ByteStringIndex
    private let rules: BytePairMerger.Rules
    private let byteTokens: [Int32]
    private let addsPrefixSpace: Bool
    private let ignoresMerges: Bool
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    private let unknownTokenID: Int32?
    private let fusesUnknown: Bool

    /// Builds the tokenizer.
    /// - Parameter path: the file the configuration came from, for errors.
    /// - Throws: ``ModelError/unsupportedTokenizer(path:reason:)`` when a merge names a token that is
    ///   not in the vocabulary.
    public init(_ configuration: Configuration, path: String) throws(ModelError) {
        var bytes: [[UInt8]] = []
        bytes.reserveCapacity(configuration.tokens.count)
        var whole = ByteStringIndex(capacity: configuration.tokens.count)
        var stringToID: [String: Int32] = [:]
        stringToID.reserveCapacity(configuration.tokens.count)
        var byteTokens = [Int32](repeating: -1, count: 256)
        for (index, token) in configuration.tokens.enumerated() {
            guard let token else { bytes.append([]); continue }
            let id = Int32(index)
            if stringToID[token] == nil { stringToID[token] = id }
            if let raw = ByteLevel.bytes(of: token) {
                bytes.append(raw)
                whole.insert(raw, id)
                if raw.count == 1 && byteTokens[Int(raw[0])] < 0 { byteTokens[Int(raw[0])] = id }
            } else {
                bytes.append(Array(token.utf8))
            }
        }
        for added in configuration.addedTokens + configuration.normalizedAddedTokens where Int(added.id) < bytes.count {
            bytes[Int(added.id)] = Array(added.content.utf8)
        }
        var rules = BytePairMerger.Rules(capacity: configuration.merges.count)
        for (rank, merge) in configuration.merges.enumerated() {
            guard let left = stringToID[merge.0], let right = stringToID[merge.1] else {
                throw .unsupportedTokenizer(path: path, reason: "merge \(rank) ('\(merge.0) \(merge.1)') names a token that is not in the vocabulary")
            }
            guard let result = stringToID[merge.0 + merge.1] else {
                throw .unsupportedTokenizer(path: path, reason: "merge \(rank) ('\(merge.0) \(merge.1)') makes '\(merge.0 + merge.1)', which is not in the vocabulary")
            }
            rules.add(left, right, BytePairMerger.Rule(rank: Int32(rank), result: result))
        }
        tokenBytes = bytes
        tokenStrings = configuration.tokens
        wholeTokens = whole
        self.rules = rules
        self.byteTokens = byteTokens
        patterns = configuration.patterns
        addsPrefixSpace = configuration.addsPrefixSpace
        ignoresMerges = configuration.ignoresMerges
        normalization = configuration.normalization
        source = configuration.source
        let policy: AddedTokenMatcher.Policy = configuration.source == .gguf ? .longestTokenFirst : .leftmostLongest
        rawMatcher = AddedTokenMatcher(tokens: configuration.addedTokens, policy: policy)
        normalizedMatcher = AddedTokenMatcher(tokens: configuration.normalizedAddedTokens, policy: policy)
        unknownTokenID = configuration.unknownTokenID
        fusesUnknown = configuration.fusesUnknown
        bosTokenID = configuration.bosTokenID
        eosTokenID = configuration.eosTokenID
        addsBOS = configuration.addsBOS
        vocabularySize = configuration.tokens.count
        summary = "byte-level BPE \(configuration.label) (\(configuration.source.rawValue))"
    }

    /// Reusable buffers of one `encode` call.
    private struct Scratch {
        var merger = BytePairMerger()
        var scalars: [UInt32] = []
        var ends: [Int] = []
        var nextEnds: [Int] = []
        var word: [UInt8] = []
        var symbols: [Int32] = []
        var cache = WordCache()
    }

    /// The ids of `text`, without BOS/EOS.
    public func encode(_ text: String) throws(ModelError) -> [Int32] {
        var output: [Int32] = []
        output.reserveCapacity(text.utf8.count / 3)
        var scratch = Scratch()
        let utf8 = Array(text.utf8)
        utf8.withUnsafeBufferPointer { bytes in
            for segment in rawMatcher.segments(bytes, 0..<bytes.count) {
                switch segment {
                case .token(let id): output.append(id)
                case .text(let range): encodeNormalizing(bytes, range, &scratch, &output)
                }
            }
        }
        return output
    }

    private func encodeNormalizing(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ scratch: inout Scratch, _ output: inout [Int32]) {
        if normalization == .none && normalizedMatcher.isEmpty {
            encodeText(bytes, range, &scratch, &output)
            return
        }
        let normalizedBytes = normalization.apply(to: UnsafeBufferPointer(rebasing: bytes[range]))
        normalizedBytes.withUnsafeBufferPointer { inner in
            for segment in normalizedMatcher.segments(inner, 0..<inner.count) {
                switch segment {
                case .token(let id): output.append(id)
                case .text(let innerRange): encodeText(inner, innerRange, &scratch, &output)
                }
            }
        }
    }

    /// Pre-tokenizes one stretch of valid UTF-8 and merges every pre-token.
    private func encodeText(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ scratch: inout Scratch, _ output: inout [Int32]) {
        scratch.scalars.removeAll(keepingCapacity: true)
        if addsPrefixSpace && bytes[range.lowerBound] != 0x20 { scratch.scalars.append(0x20) }
        UTF8Decoding.appendScalars(of: UnsafeBufferPointer(rebasing: bytes[range]), to: &scratch.scalars)
        let count = scratch.scalars.count
        scratch.ends.removeAll(keepingCapacity: true)
        scratch.ends.append(count)
        scratch.scalars.withUnsafeBufferPointer { scalars in
            if !patterns.isEmpty {
                let classes = UnicodeClasses.classes(of: scalars)
                classes.withUnsafeBufferPointer { classes in
                    for pattern in patterns {
                        scratch.nextEnds.removeAll(keepingCapacity: true)
                        var start = 0
                        for end in scratch.ends {
                            pattern.split(scalars, classes: classes, start..<end, into: &scratch.nextEnds)
                            start = end
                        }
                        swap(&scratch.ends, &scratch.nextEnds)
                    }
                }
            }
            var start = 0
            for end in scratch.ends {
                scratch.word.removeAll(keepingCapacity: true)
                UTF8Decoding.appendUTF8(of: UnsafeBufferPointer(rebasing: scalars[start..<end]), to: &scratch.word)
                encodeWord(&scratch, &output)
                start = end
            }
        }
    }

    /// Merges `scratch.word` (the UTF-8 bytes of one pre-token).
    private func encodeWord(_ scratch: inout Scratch, _ output: inout [Int32]) {
        if scratch.word.isEmpty { return }
        if ignoresMerges, let id = wholeTokens.lookup(scratch.word) {
            output.append(id)
            return
        }
        let cacheable = scratch.word.count <= WordCache.maximumLength
        let word = scratch.word
        let hash = cacheable ? word.withUnsafeBufferPointer { ByteStringIndex.hash($0) } : 0
        if cacheable && word.withUnsafeBufferPointer({ scratch.cache.lookup($0, hash: hash, into: &output) }) { return }
        scratch.symbols.removeAll(keepingCapacity: true)
        var previousUnknown = false
        for byte in scratch.word {
            let id = byteTokens[Int(byte)]
            if id >= 0 {
                scratch.symbols.append(id)
                previousUnknown = false
            } else if let unknown = unknownTokenID {
                if !(fusesUnknown && previousUnknown) { scratch.symbols.append(unknown) }
                previousUnknown = true
            }
        }
        let first = output.count
        scratch.symbols.withUnsafeBufferPointer { symbols in
            scratch.merger.merge(symbols, rules: rules, into: &output)
        }
        if cacheable { word.withUnsafeBufferPointer { scratch.cache.insert($0, hash: hash, result: output[first...]) } }
    }

    /// The text of `ids` (byte-level tokens decoded to their bytes, invalid UTF-8 replaced).
    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && Int(id) < tokenBytes.count { bytes.append(contentsOf: tokenBytes[Int(id)]) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The vocabulary string of `id` as the file spells it (byte-level characters), nil when out of range.
    public func tokenText(_ id: Int32) -> String? {
        guard id >= 0, Int(id) < tokenStrings.count else { return nil }
        return tokenStrings[Int(id)]
    }
}

/// UTF-8 ↔ scalar conversion on buffers (the input is a Swift string, so always valid UTF-8).
enum UTF8Decoding {
    /// Appends the scalar values of valid UTF-8 `bytes`.
    static func appendScalars(of bytes: UnsafeBufferPointer<UInt8>, to scalars: inout [UInt32]) {
        var index = 0
        let count = bytes.count
        while index < count {
            let lead = UInt32(bytes[index])
            if lead < 0x80 {
                scalars.append(lead)
                index += 1
            } else if lead < 0xE0, index + 1 < count {
                scalars.append((lead & 0x1F) << 6 | UInt32(bytes[index + 1] & 0x3F))
                index += 2
            } else if lead < 0xF0, index + 2 < count {
                scalars.append((lead & 0x0F) << 12 | UInt32(bytes[index + 1] & 0x3F) << 6 | UInt32(bytes[index + 2] & 0x3F))
                index += 3
            } else if index + 3 < count {
                scalars.append((lead & 0x07) << 18 | UInt32(bytes[index + 1] & 0x3F) << 12
                               | UInt32(bytes[index + 2] & 0x3F) << 6 | UInt32(bytes[index + 3] & 0x3F))
                index += 4
            } else {
                scalars.append(0xFFFD)
                index += 1
            }
        }
    }

    /// Appends the UTF-8 encoding of `scalars`.
    static func appendUTF8(of scalars: UnsafeBufferPointer<UInt32>, to bytes: inout [UInt8]) {
        for value in scalars {
            if value < 0x80 {
                bytes.append(UInt8(value))
            } else if value < 0x800 {
                bytes.append(UInt8(0xC0 | value >> 6))
                bytes.append(UInt8(0x80 | value & 0x3F))
            } else if value < 0x10000 {
                bytes.append(UInt8(0xE0 | value >> 12))
                bytes.append(UInt8(0x80 | (value >> 6) & 0x3F))
                bytes.append(UInt8(0x80 | value & 0x3F))
            } else {
                bytes.append(UInt8(0xF0 | value >> 18))
                bytes.append(UInt8(0x80 | (value >> 12) & 0x3F))
                bytes.append(UInt8(0x80 | (value >> 6) & 0x3F))
                bytes.append(UInt8(0x80 | value & 0x3F))
            }
        }
    }
}
