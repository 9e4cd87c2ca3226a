import Foundation
import Formats

/// A SentencePiece tokenizer: a tokenizer.model (unigram or BPE, tokenized as the `sentencepiece`
/// library does, its normalizer included), or a GGUF `llama` vocabulary (tokenized as llama.cpp's
/// `llm_tokenizer_spm` does).
///
/// The two references differ on the same vocabulary: llama.cpp runs no normalizer (runs of spaces
/// stay, no NFKC), prefixes a space only where `add_space_prefix` says, and segments every model —
/// unigram ones included — by merging the best-scoring adjacent pair, where `sentencepiece` finds the
/// best unigram segmentation (Viterbi). ``normalizes`` and ``algorithm`` tell which one a tokenizer is.
public struct SentencePieceTokenizer: TextTokenizer {
    /// How the text is cut into pieces.
    public enum Algorithm: String, Sendable {
        /// The most probable segmentation under the unigram scores (Viterbi).
        case unigram
        /// Repeated merging of the adjacent pair whose merged piece scores highest.
        case bpe
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
    /// The segmentation algorithm.
    public let algorithm: Algorithm
    /// Whether the SentencePiece normalizer runs (tokenizer.model), or not (a GGUF, as llama.cpp).
    public let normalizes: Bool
    /// Whether unknown characters become byte tokens `<0xXX>`.
    public let byteFallback: Bool
    /// The tokenizer.model's normalizer name (`nmt_nfkc`, `identity`, …); empty for a GGUF.
    public let normalizerName: String

    private let pieces: [String]
    private let pieceBytes: [[UInt8]]
    /// Per id, the bytes decoding writes: `▁` as a space, a byte token as its byte, nothing for BOS/EOS.
    private let decodedBytes: [[UInt8]]
    /// Scalars that some piece holds directly before a `▁`; before any other scalar, a `▁` starts a
    /// stretch that no merge can cross, so pair merging runs on such stretches one at a time.
    private let scalarsBeforeSpace: Set<UInt32>
    private let scores: [Float]
    private let normalizer: SentencePieceNormalizer?
    /// Pieces the unigram lattice or the character split may use, with their ids.
    private let lattice: BytePrefixTrie
    /// Per id: 1 for a user-defined piece, 2 for an unused one (sentencepiece's lattice treats both specially).
    private let pieceFlags: [UInt8]
    private let characterIDs: [UInt32: Int32]
    /// ``characterIDs`` for the Basic Multilingual Plane, -1 where no piece is that character.
    private let basicCharacterIDs: [Int32]
    private let rules: BytePairMerger.Rules
    private let splitOfPiece: [Int32: (Int32, Int32)]
    private let byteIDs: [Int32]
    private let unknownID: Int32?
    private let unknownScore: Float
    private let userDefinedBonus: Float
    private let specialMatcher: AddedTokenMatcher
    private let addsSpacePrefix: Bool
    private let userDefinedSplitter: BytePrefixTrie

    /// Reads a tokenizer.model; `config` is the directory's tokenizer_config.json, if any.
    public init(modelPath: String, config: JSONValue?) throws(ModelError) {
        let file: MappedFile
        do { file = try MappedFile(path: modelPath) } catch {
            throw .unsupportedTokenizer(path: modelPath, reason: "cannot be read: \(error)")
        }
        try self.init(modelBytes: file.bytes, path: modelPath, config: config)
    }

    /// Reads the tokenizer.model held in `bytes` (`modelPath` names it in errors); `config` as in
    /// ``init(modelPath:config:)``.
    package init(modelBytes bytes: UnsafeRawBufferPointer, path modelPath: String, config: JSONValue?) throws(ModelError) {
        let model = try SentencePieceModel(bytes: bytes, path: modelPath)
        guard !model.treatWhitespaceAsSuffix else {
            throw .unsupportedTokenizer(path: modelPath, reason: "treat_whitespace_as_suffix models are not supported")
        }
        let algorithm: Algorithm
        switch model.algorithm {
        case .unigram: algorithm = .unigram
        case .bpe: algorithm = .bpe
        case .word, .character:
            throw .unsupportedTokenizer(path: modelPath, reason: "SentencePiece model type \(model.algorithm) is not supported (unigram and BPE are)")
        }
        var userDefined = BytePrefixTrie()
        for (index, type) in model.types.enumerated() where type == .userDefined {
            userDefined.insert(Array(model.pieces[index].utf8), value: Int32(index))
        }
        let normalizer = try SentencePieceNormalizer(
            charsmap: model.precompiledCharsmap, addsDummyPrefix: model.addsDummyPrefix,
            removesExtraWhitespaces: model.removesExtraWhitespaces, escapesWhitespaces: model.escapesWhitespaces,
            userDefined: userDefined, path: modelPath)
        func validID(_ id: Int32) -> Int32? { id >= 0 && Int(id) < model.pieces.count ? id : nil }
        var addsBOS = config?["add_bos_token"]?.bool ?? true
        if validID(model.bosID) == nil { addsBOS = false }
        let name = model.normalizerName.isEmpty ? "" : ", \(model.normalizerName)"
        try self.init(pieces: model.pieces, scores: model.scores, types: model.types.map(\.rawValue), algorithm: algorithm,
                      normalizer: normalizer, byteFallback: model.byteFallback, unknownID: validID(model.unknownID),
                      addedTokens: [], addsSpacePrefix: false, userDefinedSplitter: userDefined,
                      bosTokenID: validID(model.bosID), eosTokenID: validID(model.eosID), addsBOS: addsBOS,
                      normalizerName: model.normalizerName, summary: "sentencepiece \(algorithm.rawValue)\(name) (tokenizer.model)", path: modelPath)
    }

    /// A GGUF `llama` vocabulary, tokenized as llama.cpp does.
    init(ggufTokens: [String], scores: [Float], types: [Int], addedTokens: [AddedToken], addsSpacePrefix: Bool,
         unknownTokenID: Int32?, bosTokenID: Int32?, eosTokenID: Int32?, addsBOS: Bool, path: String) throws(ModelError) {
        try self.init(pieces: ggufTokens, scores: scores, types: types, algorithm: .bpe, normalizer: nil,
                      byteFallback: true, unknownID: unknownTokenID, addedTokens: addedTokens,
                      addsSpacePrefix: addsSpacePrefix, userDefinedSplitter: BytePrefixTrie(),
                      bosTokenID: bosTokenID, eosTokenID: eosTokenID, addsBOS: addsBOS,
                      normalizerName: "", summary: "sentencepiece llama (GGUF, llama.cpp spm)", path: path)
    }

    private init(pieces: [String], scores: [Float], types: [Int], algorithm: Algorithm, normalizer: SentencePieceNormalizer?,
                 byteFallback: Bool, unknownID: Int32?, addedTokens: [AddedToken], addsSpacePrefix: Bool,
                 userDefinedSplitter: BytePrefixTrie, bosTokenID: Int32?, eosTokenID: Int32?, addsBOS: Bool,
                 normalizerName: String, summary: String, path: String) throws(ModelError) {
        // Scores order the merges and the unigram lattice; NaN has no place in either order.
        if let bad = scores.firstIndex(where: { $0.isNaN }) {
            throw .unsupportedTokenizer(path: path, reason: "piece \(bad) ('\(DisplayText.shortened(bad < pieces.count ? pieces[bad] : ""))') has the score NaN; every score must be a number")
        }
        self.normalizerName = normalizerName
        let ggufMode = normalizer == nil
        let normal = SentencePieceModel.PieceType.normal.rawValue
        let userDefinedType = SentencePieceModel.PieceType.userDefined.rawValue
        let unusedType = SentencePieceModel.PieceType.unused.rawValue
        let byteType = SentencePieceModel.PieceType.byte.rawValue
        self.pieces = pieces
        self.scores = scores
        self.algorithm = algorithm
        self.normalizer = normalizer
        self.byteFallback = byteFallback
        self.unknownID = unknownID
        self.addsSpacePrefix = addsSpacePrefix
        self.userDefinedSplitter = userDefinedSplitter
        self.bosTokenID = bosTokenID
        self.eosTokenID = eosTokenID
        self.addsBOS = addsBOS
        self.summary = summary
        normalizes = !ggufMode
        vocabularySize = pieces.count
        specialMatcher = AddedTokenMatcher(tokens: addedTokens, policy: .longestTokenFirst)

        var bytes: [[UInt8]] = []
        bytes.reserveCapacity(pieces.count)
        var lattice = BytePrefixTrie()
        var flags = [UInt8](repeating: 0, count: pieces.count)
        var characters: [UInt32: Int32] = [:]
        var idOfPiece: [String: Int32] = [:]
        var byteIDs = [Int32](repeating: -1, count: 256)
        var minimumScore = Float.greatestFiniteMagnitude, maximumScore = -Float.greatestFiniteMagnitude
        for (index, piece) in pieces.enumerated() {
            let id = Int32(index)
            let type = types[index]
            bytes.append(Array(piece.utf8))
            if type == byteType || ggufMode, piece.utf8.count == 6, piece.hasPrefix("<0x"), piece.hasSuffix(">"),
               let value = UInt8(piece.dropFirst(3).dropLast(), radix: 16), byteIDs[Int(value)] < 0, type == byteType {
                byteIDs[Int(value)] = id
            }
            // sentencepiece's pieces_ map (normal, user-defined, unused); llama.cpp looks up every token.
            let inPieces = ggufMode || type == normal || type == userDefinedType || type == unusedType
            guard inPieces else { continue }
            if idOfPiece[piece] == nil { idOfPiece[piece] = id }
            if type == normal {
                minimumScore = min(minimumScore, scores[index])
                maximumScore = max(maximumScore, scores[index])
            }
            if type == userDefinedType { flags[index] = 1 }
            if type == unusedType && !ggufMode { flags[index] = 2 }
            if !ggufMode { lattice.insert(Array(piece.utf8), value: id) }
            let scalars = piece.unicodeScalars
            if scalars.count == 1, characters[scalars.first!.value] == nil { characters[scalars.first!.value] = id }
        }
        if ggufMode {
            // llama.cpp's byte_to_token: "<0xXX>" of any type, else the one-byte token.
            for (index, piece) in pieces.enumerated() where piece.utf8.count == 6 && piece.hasPrefix("<0x") && piece.hasSuffix(">") {
                if let value = UInt8(piece.dropFirst(3).dropLast(), radix: 16), byteIDs[Int(value)] < 0 { byteIDs[Int(value)] = Int32(index) }
            }
            for value in 0..<128 where byteIDs[value] < 0 {
                if let id = idOfPiece[String(UnicodeScalar(UInt8(value)))] { byteIDs[value] = id }
            }
        }
        pieceBytes = bytes
        var byteOfID: [Int32: UInt8] = [:]
        for (byte, id) in byteIDs.enumerated() where id >= 0 { byteOfID[id] = UInt8(byte) }
        var decoded: [[UInt8]] = []
        decoded.reserveCapacity(bytes.count)
        for (index, piece) in bytes.enumerated() {
            let id = Int32(index)
            if id == bosTokenID || id == eosTokenID { decoded.append([]); continue }
            if let byte = byteOfID[id] { decoded.append([byte]); continue }
            var out: [UInt8] = []
            var position = 0
            while position < piece.count {
                if position + 2 < piece.count && piece[position] == 0xE2 && piece[position + 1] == 0x96 && piece[position + 2] == 0x81 {
                    out.append(0x20)
                    position += 3
                } else {
                    out.append(piece[position])
                    position += 1
                }
            }
            decoded.append(out)
        }
        decodedBytes = decoded
        var beforeSpace = Set<UInt32>()
        for piece in idOfPiece.keys {
            var previous: UInt32? = nil
            for scalar in piece.unicodeScalars {
                if scalar.value == 0x2581, let previous { beforeSpace.insert(previous) }
                previous = scalar.value
            }
        }
        scalarsBeforeSpace = beforeSpace
        self.lattice = lattice
        pieceFlags = flags
        characterIDs = characters
        var basic = [Int32](repeating: -1, count: 0x10000)
        for (scalar, id) in characters where scalar < 0x10000 { basic[Int(scalar)] = id }
        basicCharacterIDs = basic
        self.byteIDs = byteIDs
        unknownScore = (minimumScore == .greatestFiniteMagnitude ? 0 : minimumScore) - 10
        userDefinedBonus = maximumScore == -Float.greatestFiniteMagnitude ? 0 : maximumScore

        // Pair rules: every split of a piece into two pieces; the rank orders merged pieces by score,
        // highest first, equal scores sharing a rank so the leftmost pair wins as in both references.
        var rules = BytePairMerger.Rules(capacity: algorithm == .bpe ? pieces.count * 2 : 0)
        var split: [Int32: (Int32, Int32)] = [:]
        if algorithm == .bpe {
            let distinct = Array(Set(scores)).sorted(by: >)
            var rankOfScore: [Float: Int32] = [:]
            for (rank, score) in distinct.enumerated() { rankOfScore[score] = Int32(rank) }
            for (piece, id) in idOfPiece {
                let scalars = Array(piece.unicodeScalars)
                guard scalars.count >= 2 else { continue }
                for cut in 1..<scalars.count {
                    var left = String.UnicodeScalarView(), right = String.UnicodeScalarView()
                    left.append(contentsOf: scalars[..<cut])
                    right.append(contentsOf: scalars[cut...])
                    guard let leftID = idOfPiece[String(left)], let rightID = idOfPiece[String(right)] else { continue }
                    rules.add(leftID, rightID, BytePairMerger.Rule(rank: rankOfScore[scores[Int(id)]]!, result: id))
                    if split[id] == nil { split[id] = (leftID, rightID) }
                }
            }
        }
        self.rules = rules
        splitOfPiece = split
    }

    /// Reusable buffers of one `encode` call.
    private struct Scratch {
        var merger = BytePairMerger()
        var symbols: [Int32] = []
        var merged: [Int32] = []
        var spans: [Int] = []
        var cache = WordCache()
    }

    /// The ids of `text`, without BOS/EOS.
    public func encode(_ text: String) throws(ModelError) -> [Int32] {
        var output: [Int32] = []
        var scratch = Scratch()
        if let normalizer {
            let input = Array(text.utf8)
            let normalized = input.withUnsafeBufferPointer { normalizer.normalize($0) }
            normalized.withUnsafeBufferPointer { segment($0, 0..<$0.count, &scratch, &output) }
            return output
        }
        // llama.cpp: special tokens split out first; a space before the first text and after each
        // special token where add_space_prefix; spaces escaped as ▁; nothing else changes.
        let input = Array(text.utf8)
        var isPreviousSpecial = true
        input.withUnsafeBufferPointer { bytes in
            for part in specialMatcher.segments(bytes, 0..<bytes.count) {
                switch part {
                case .token(let id):
                    output.append(id)
                    isPreviousSpecial = true
                case .text(let range):
                    var escaped: [UInt8] = []
                    escaped.reserveCapacity(range.count + range.count / 4 + 3)
                    if addsSpacePrefix && isPreviousSpecial { escaped.append(contentsOf: SentencePieceNormalizer.spaceSymbol) }
                    for byte in bytes[range] {
                        if byte == 0x20 { escaped.append(contentsOf: SentencePieceNormalizer.spaceSymbol) } else { escaped.append(byte) }
                    }
                    escaped.withUnsafeBufferPointer { segment($0, 0..<$0.count, &scratch, &output) }
                    isPreviousSpecial = false
                }
            }
        }
        return output
    }

    /// Segments normalized UTF-8 with the model's algorithm.
    private func segment(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ scratch: inout Scratch, _ output: inout [Int32]) {
        if range.isEmpty { return }
        switch algorithm {
        case .unigram: merge(text, range, &scratch, &output)
        case .bpe:
            // sentencepiece freezes user-defined symbols: they never merge with a neighbour.
            var start = range.lowerBound
            var index = range.lowerBound
            while index < range.upperBound {
                if let match = userDefinedSplitter.longestMatch(text, index) {
                    if index > start { merge(text, start..<index, &scratch, &output) }
                    emit(match.value, text, index..<(index + match.length), &output)
                    index += match.length
                    start = index
                } else {
                    index += 1
                }
            }
            if start < range.upperBound { merge(text, start..<range.upperBound, &scratch, &output) }
        }
    }

    @inline(__always) private static func characterLength(_ lead: UInt8) -> Int {
        lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
    }

    /// Segmentation of `text[range]` one stretch at a time: a stretch ends before a `▁` that follows
    /// a scalar no piece holds before a `▁`, since no piece can then span the two — neither a merged
    /// pair nor a lattice edge, so pair merging and Viterbi give the same result stretch by stretch.
    private func merge(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ scratch: inout Scratch, _ output: inout [Int32]) {
        var start = range.lowerBound
        var index = range.lowerBound
        var previous: UInt32 = 0x2581
        while index < range.upperBound {
            let length = min(Self.characterLength(text[index]), range.upperBound - index)
            if length == 3 && text[index] == 0xE2 && text[index + 1] == 0x96 && text[index + 2] == 0x81 {
                if index > start && !scalarsBeforeSpace.contains(previous) {
                    cachedStretch(text, start..<index, &scratch, &output)
                    start = index
                }
                previous = 0x2581
            } else {
                previous = Self.scalar(text, index, length)
            }
            index += length
        }
        if start < range.upperBound { cachedStretch(text, start..<range.upperBound, &scratch, &output) }
    }

    /// Segments one stretch (pair merging or Viterbi), through the word cache for short stretches.
    private func cachedStretch(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ scratch: inout Scratch, _ output: inout [Int32]) {
        let word = UnsafeBufferPointer(rebasing: text[range])
        let cacheable = range.count <= WordCache.maximumLength
        let hash = cacheable ? ByteStringIndex.hash(word) : 0
        if cacheable && scratch.cache.lookup(word, hash: hash, into: &output) { return }
        let first = output.count
        switch algorithm {
        case .bpe: mergeStretch(text, range, &scratch, &output)
        case .unigram: viterbi(text, range, &output)
        }
        // A stretch whose ids start with the unknown id may fuse with one before it; not cached.
        if cacheable && output.count > first && output[first] != unknownID {
            scratch.cache.insert(word, hash: hash, result: output[first...])
        }
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

    private func mergeStretch(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ scratch: inout Scratch, _ output: inout [Int32]) {
        scratch.symbols.removeAll(keepingCapacity: true)
        scratch.spans.removeAll(keepingCapacity: true)
        var index = range.lowerBound
        // Characters without a piece get a negative placeholder (-1 - offset) so they never merge.
        while index < range.upperBound {
            let length = min(Self.characterLength(text[index]), range.upperBound - index)
            let value = Self.scalar(text, index, length)
            let id = value < 0x10000 ? basicCharacterIDs[Int(value)] : characterIDs[value] ?? -1
            scratch.symbols.append(id >= 0 ? id : Int32(-1 - index))
            scratch.spans.append(index)
            index += length
        }
        scratch.merged.removeAll(keepingCapacity: true)
        scratch.symbols.withUnsafeBufferPointer { symbols in
            scratch.merger.merge(symbols, rules: rules, into: &scratch.merged)
        }
        for id in scratch.merged {
            if id >= 0 {
                resegment(id, &output)
            } else {
                let start = Int(-1 - id)
                let length = min(Self.characterLength(text[start]), range.upperBound - start)
                unknown(text, start..<(start + length), &output)
            }
        }
    }

    /// An unused piece is split back into the pieces that made it (sentencepiece's resegment).
    private func resegment(_ id: Int32, _ output: inout [Int32]) {
        if pieceFlags[Int(id)] == 2, let (left, right) = splitOfPiece[id] {
            resegment(left, &output)
            resegment(right, &output)
        } else {
            output.append(id)
        }
    }

    /// Emits a known piece.
    private func emit(_ id: Int32, _ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ output: inout [Int32]) {
        output.append(id)
    }

    /// An unknown stretch: byte tokens with byte fallback, else one unknown id (fused with an
    /// unknown id just before it, as sentencepiece merges runs of unknown pieces).
    private func unknown(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ output: inout [Int32]) {
        if byteFallback {
            for byte in text[range] {
                let id = byteIDs[Int(byte)]
                if id >= 0 { output.append(id) } else if let unknownID { output.append(unknownID) }
            }
            return
        }
        guard let unknownID else { return }
        if normalizes, output.last == unknownID { return }
        output.append(unknownID)
    }

    /// sentencepiece's unigram Viterbi (`EncodeOptimized`): the best-scoring path through every
    /// piece that matches at each character; a character no piece starts is one unknown piece.
    private func viterbi(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ output: inout [Int32]) {
        let start = range.lowerBound
        let size = range.count
        var bestScore = [Float](repeating: 0, count: size + 1)
        var bestStart = [Int](repeating: -1, count: size + 1)
        var bestID = [Int32](repeating: -1, count: size + 1)
        var position = 0
        while position < size {
            let here = bestScore[position]
            let characterLength = min(Self.characterLength(text[start + position]), size - position)
            var hasSingleCharacter = false
            lattice.forEachPrefix(UnsafeBufferPointer(rebasing: text[start..<range.upperBound]), position) { length, id in
                let flag = pieceFlags[Int(id)]
                if flag == 2 { return }
                let end = position + length
                let score = flag == 1 ? Float(length) * userDefinedBonus - 0.1 : scores[Int(id)]
                let candidate = here + score
                if bestStart[end] == -1 || candidate > bestScore[end] {
                    bestScore[end] = candidate
                    bestStart[end] = position
                    bestID[end] = id
                }
                if length == characterLength { hasSingleCharacter = true }
            }
            if !hasSingleCharacter {
                let end = position + characterLength
                let candidate = here + unknownScore
                if bestStart[end] == -1 || candidate > bestScore[end] {
                    bestScore[end] = candidate
                    bestStart[end] = position
                    bestID[end] = -1
                }
            }
            position += characterLength
        }
        var path: [(Int32, Int, Int)] = []
        var end = size
        while end > 0 {
            let begin = bestStart[end]
            guard begin >= 0 else { break }
            path.append((bestID[end], begin, end))
            end = begin
        }
        for (id, begin, finish) in path.reversed() {
            if id >= 0 { output.append(id) } else { unknown(text, (start + begin)..<(start + finish), &output) }
        }
    }

    /// The text of `ids`: pieces concatenated, `▁` back to spaces, byte tokens to bytes, the leading
    /// dummy-prefix space removed; control tokens produce nothing.
    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && Int(id) < decodedBytes.count { bytes.append(contentsOf: decodedBytes[Int(id)]) }
        let dropsFirst = bytes.first == 0x20 && (normalizer?.addsDummyPrefix ?? addsSpacePrefix)
        return String(decoding: dropsFirst ? bytes.dropFirst() : bytes[...], as: UTF8.self)
    }

    /// The piece of `id` as the vocabulary spells it, nil when out of range.
    public func tokenText(_ id: Int32) -> String? {
        guard id >= 0, Int(id) < pieces.count else { return nil }
        return pieces[Int(id)]
    }
}
