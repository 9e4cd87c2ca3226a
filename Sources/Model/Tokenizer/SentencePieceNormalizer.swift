/// SentencePiece's normalizer (normalizer.cc): the precompiled character map (a darts-clone double
/// array over UTF-8 bytes whose values point into a table of NUL-terminated replacements), user-defined
/// symbols kept verbatim, the dummy `▁` prefix, collapsing of extra spaces and escaping of spaces
/// as `▁` (U+2581).
struct SentencePieceNormalizer: Sendable {
    private let units: [UInt32]
    private let replacements: [UInt8]
    let addsDummyPrefix: Bool
    let removesExtraWhitespaces: Bool
    let escapesWhitespaces: Bool
    private let userDefined: BytePrefixTrie

    static let spaceSymbol: [UInt8] = [0xE2, 0x96, 0x81]

    init(charsmap: [UInt8], addsDummyPrefix: Bool, removesExtraWhitespaces: Bool, escapesWhitespaces: Bool,
         userDefined: BytePrefixTrie, path: String) throws(ModelError) {
        if charsmap.isEmpty {
            units = []
            replacements = []
        } else {
            guard charsmap.count >= 4 else {
                throw .unsupportedTokenizer(path: path, reason: "normalizer_spec.precompiled_charsmap is shorter than its 4-byte header")
            }
            let trieSize = Int(UInt32(charsmap[0]) | UInt32(charsmap[1]) << 8 | UInt32(charsmap[2]) << 16 | UInt32(charsmap[3]) << 24)
            guard trieSize % 4 == 0, trieSize + 4 <= charsmap.count else {
                throw .unsupportedTokenizer(path: path, reason: "normalizer_spec.precompiled_charsmap declares a \(trieSize)-byte trie in \(charsmap.count - 4) bytes")
            }
            var trie = [UInt32](repeating: 0, count: trieSize / 4)
            for index in 0..<trie.count {
                let base = 4 + index * 4
                trie[index] = UInt32(charsmap[base]) | UInt32(charsmap[base + 1]) << 8 | UInt32(charsmap[base + 2]) << 16 | UInt32(charsmap[base + 3]) << 24
            }
            units = trie
            replacements = Array(charsmap[(4 + trieSize)...])
        }
        self.addsDummyPrefix = addsDummyPrefix
        self.removesExtraWhitespaces = removesExtraWhitespaces
        self.escapesWhitespaces = escapesWhitespaces
        self.userDefined = userDefined
    }

    /// The longest charsmap rule matching `input[start...]`: (bytes consumed, replacement offset), or nil.
    private func longestRule(_ input: UnsafeBufferPointer<UInt8>, _ start: Int) -> (Int, Int)? {
        if units.isEmpty { return nil }
        return units.withUnsafeBufferPointer { units -> (Int, Int)? in
            @inline(__always) func offset(_ unit: UInt32) -> Int { Int((unit >> 10) << ((unit & (1 << 9)) >> 6)) }
            var position = offset(units[0])
            var best: (Int, Int)? = nil
            var index = start
            while index < input.count {
                let byte = input[index]
                position ^= Int(byte)
                guard position < units.count else { return best }
                let unit = units[position]
                guard unit & (0x8000_0000 | 0xFF) == UInt32(byte) else { return best }
                position ^= offset(unit)
                guard position < units.count else { return best }
                if (unit >> 8) & 1 == 1 {
                    best = (index + 1 - start, Int(units[position] & 0x7FFF_FFFF))
                }
                index += 1
            }
            return best
        }
    }

    /// The length of the valid UTF-8 character at `input[start]`, or 0 when it is malformed.
    private static func characterLength(_ input: UnsafeBufferPointer<UInt8>, _ start: Int) -> Int {
        let lead = input[start]
        let length: Int
        switch lead {
        case 0x00..<0x80: return 1
        case 0xC2..<0xE0: length = 2
        case 0xE0..<0xF0: length = 3
        case 0xF0..<0xF5: length = 4
        default: return 0
        }
        guard start + length <= input.count else { return 0 }
        for offset in 1..<length where input[start + offset] & 0xC0 != 0x80 { return 0 }
        return length
    }

    /// One normalization step at `start`: appends the normalized bytes of the next unit to `piece`
    /// and returns how many input bytes it consumed.
    private func normalizePrefix(_ input: UnsafeBufferPointer<UInt8>, _ start: Int, into piece: inout [UInt8]) -> Int {
        let userLength = userDefined.longestMatch(input, start)?.length ?? 0
        if userLength > 0 {
            piece.append(contentsOf: UnsafeBufferPointer(rebasing: input[start..<(start + userLength)]))
            return userLength
        }
        if let (length, offset) = longestRule(input, start) {
            var index = offset
            while index < replacements.count && replacements[index] != 0 {
                piece.append(replacements[index])
                index += 1
            }
            return length
        }
        let length = Self.characterLength(input, start)
        if length == 0 {
            piece.append(contentsOf: [0xEF, 0xBF, 0xBD])
            return 1
        }
        piece.append(contentsOf: UnsafeBufferPointer(rebasing: input[start..<(start + length)]))
        return length
    }

    /// The normalized UTF-8 of `input`.
    func normalize(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(input.count + input.count / 4 + 3)
        var position = 0
        var piece: [UInt8] = []
        if removesExtraWhitespaces {
            while position < input.count {
                piece.removeAll(keepingCapacity: true)
                let consumed = normalizePrefix(input, position, into: &piece)
                if piece != [0x20] { break }
                position += consumed
            }
        }
        if position >= input.count { return [] }
        if addsDummyPrefix {
            output.append(contentsOf: escapesWhitespaces ? Self.spaceSymbol : [0x20])
        }
        var previousIsSpace = removesExtraWhitespaces
        while position < input.count {
            piece.removeAll(keepingCapacity: true)
            let consumed = normalizePrefix(input, position, into: &piece)
            var first = 0
            if previousIsSpace { while first < piece.count && piece[first] == 0x20 { first += 1 } }
            if first < piece.count {
                for byte in piece[first...] {
                    if escapesWhitespaces && byte == 0x20 { output.append(contentsOf: Self.spaceSymbol) } else { output.append(byte) }
                }
                previousIsSpace = piece.last == 0x20
            }
            position += consumed
            previousIsSpace = previousIsSpace && removesExtraWhitespaces
        }
        if removesExtraWhitespaces {
            let space: [UInt8] = escapesWhitespaces ? Self.spaceSymbol : [0x20]
            while output.count >= space.count && Array(output[(output.count - space.count)...]) == space {
                output.removeLast(space.count)
            }
        }
        return output
    }
}

/// A byte trie over token strings: the longest token that is a prefix of a text, or every one.
struct BytePrefixTrie: Sendable {
    private var root = [Int32](repeating: -1, count: 256)
    private var children = FlatHashMap()
    private var values: [Int32] = [-1]
    private var nodeCount: Int32 = 1

    /// Whether the trie holds no string.
    private(set) var isEmpty = true

    init() {}

    /// Adds `bytes` with `value` (the first value added for a string is kept).
    mutating func insert(_ bytes: [UInt8], value: Int32) {
        guard !bytes.isEmpty else { return }
        isEmpty = false
        var node: Int32 = 0
        for (depth, byte) in bytes.enumerated() {
            let next: Int32?
            if depth == 0 { next = root[Int(byte)] >= 0 ? root[Int(byte)] : nil } else { next = children.value(UInt64(node) << 8 | UInt64(byte)).map { Int32($0) } }
            if let next {
                node = next
            } else {
                let created = nodeCount
                nodeCount += 1
                values.append(-1)
                if depth == 0 { root[Int(byte)] = created } else { children.insertIfAbsent(UInt64(node) << 8 | UInt64(byte), UInt64(created)) }
                node = created
            }
        }
        if values[Int(node)] < 0 { values[Int(node)] = value }
    }

    /// Calls `body(length, value)` for every string that is a prefix of `text[start...]`, shortest first.
    @inline(__always)
    func forEachPrefix(_ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ body: (Int, Int32) -> Void) {
        guard start < text.count else { return }
        var node = root[Int(text[start])]
        var index = start
        while node >= 0 {
            let value = values[Int(node)]
            if value >= 0 { body(index + 1 - start, value) }
            index += 1
            if index >= text.count { return }
            node = children.value(UInt64(node) << 8 | UInt64(text[index])).map { Int32($0) } ?? -1
        }
    }

    /// The longest string that is a prefix of `text[start...]`.
    func longestMatch(_ text: UnsafeBufferPointer<UInt8>, _ start: Int) -> (length: Int, value: Int32)? {
        if isEmpty { return nil }
        var best: (length: Int, value: Int32)? = nil
        forEachPrefix(text, start) { length, value in best = (length, value) }
        return best
    }
}
