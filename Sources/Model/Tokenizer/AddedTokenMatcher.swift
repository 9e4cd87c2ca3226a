/// A token matched verbatim in the text before pre-tokenization (special tokens such as
/// `<|begin_of_text|>`, user-defined symbols).
public struct AddedToken: Sendable, Hashable {
    /// The text that stands for the token.
    public var content: String
    /// The token id.
    public var id: Int32
    /// Whether white space on the left is absorbed into the match (`tokenizers`' `lstrip`).
    public var stripsLeft: Bool
    /// Whether white space on the right is absorbed into the match (`tokenizers`' `rstrip`).
    public var stripsRight: Bool
    /// Whether the token only matches outside words (`tokenizers`' `single_word`).
    public var singleWord: Bool

    /// An added token.
    public init(content: String, id: Int32, stripsLeft: Bool = false, stripsRight: Bool = false, singleWord: Bool = false) {
        self.content = content
        self.id = id
        self.stripsLeft = stripsLeft
        self.stripsRight = stripsRight
        self.singleWord = singleWord
    }
}

/// A piece of text after added tokens were split out: either text still to tokenize or a token.
enum TextSegment: Equatable {
    case text(Range<Int>)
    case token(Int32)
}

/// Splits UTF-8 text at added tokens.
///
/// Two policies, one per reference: `tokenizers` finds leftmost-longest matches in one pass
/// (aho-corasick `LeftmostLongest`); llama.cpp (`tokenizer_st_partition`) takes the tokens longest
/// first and splits every text fragment at each occurrence of one before trying the next.
struct AddedTokenMatcher: Sendable {
    /// How overlapping candidates are resolved.
    enum Policy: Sendable { case leftmostLongest, longestTokenFirst }

    private struct Entry: Sendable {
        var bytes: [UInt8]
        var token: AddedToken
    }

    let policy: Policy
    private let byFirstByte: [[Entry]]
    /// Whether some token starts with the byte, so most bytes are skipped with one load.
    private let isFirstByte: [Bool]
    private let sortedByLength: [Entry]
    /// Whether there is any token to match.
    let isEmpty: Bool

    init(tokens: [AddedToken], policy: Policy) {
        self.policy = policy
        let entries = tokens.filter { !$0.content.isEmpty }.map { Entry(bytes: Array($0.content.utf8), token: $0) }
        // Longest first; equal lengths keep the vocabulary order (lower id first).
        let sorted = entries.enumerated().sorted { a, b in
            a.element.bytes.count != b.element.bytes.count ? a.element.bytes.count > b.element.bytes.count : a.offset < b.offset
        }.map(\.element)
        sortedByLength = sorted
        var table = [[Entry]](repeating: [], count: 256)
        for entry in sorted { table[Int(entry.bytes[0])].append(entry) }
        byFirstByte = table
        isFirstByte = table.map { !$0.isEmpty }
        isEmpty = entries.isEmpty
    }

    @inline(__always) private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (byte >= 0x09 && byte <= 0x0D)
    }

    @inline(__always) private static func isWordByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F
    }

    @inline(__always) private static func matches(_ entry: Entry, _ text: UnsafeBufferPointer<UInt8>, at index: Int, end: Int) -> Bool {
        let count = entry.bytes.count
        guard index + count <= end else { return false }
        return entry.bytes.withUnsafeBufferPointer { bytes in
            for offset in 1..<count where bytes[offset] != text[index + offset] { return false }
            return true
        }
    }

    /// The segments of `text[range]`, in order.
    func segments(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> [TextSegment] {
        if isEmpty || range.isEmpty { return range.isEmpty ? [] : [.text(range)] }
        switch policy {
        case .leftmostLongest: return leftmostLongest(text, range)
        case .longestTokenFirst:
            var segments: [TextSegment] = [.text(range)]
            for entry in sortedByLength { segments = split(segments, at: entry, text) }
            return segments
        }
    }

    private func accept(_ entry: Entry, _ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ range: Range<Int>) -> Bool {
        guard entry.token.singleWord else { return true }
        let end = start + entry.bytes.count
        if start > range.lowerBound && Self.isWordByte(text[start - 1]) { return false }
        if end < range.upperBound && Self.isWordByte(text[end]) { return false }
        return true
    }

    private func leftmostLongest(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> [TextSegment] {
        var segments: [TextSegment] = []
        var textStart = range.lowerBound
        var index = range.lowerBound
        let end = range.upperBound
        while index < end {
            if !isFirstByte[Int(text[index])] { index += 1; continue }
            var matched: Entry? = nil
            for entry in byFirstByte[Int(text[index])]
            where Self.matches(entry, text, at: index, end: end) && accept(entry, text, index, range) {
                matched = entry
                break
            }
            guard let entry = matched else { index += 1; continue }
            var matchStart = index
            var matchEnd = index + entry.bytes.count
            if entry.token.stripsLeft {
                while matchStart > textStart && Self.isSpace(text[matchStart - 1]) { matchStart -= 1 }
            }
            if entry.token.stripsRight {
                while matchEnd < end && Self.isSpace(text[matchEnd]) { matchEnd += 1 }
            }
            if matchStart > textStart { segments.append(.text(textStart..<matchStart)) }
            segments.append(.token(entry.token.id))
            textStart = matchEnd
            index = matchEnd
        }
        if textStart < end { segments.append(.text(textStart..<end)) }
        return segments
    }

    private func split(_ segments: [TextSegment], at entry: Entry, _ text: UnsafeBufferPointer<UInt8>) -> [TextSegment] {
        var result: [TextSegment] = []
        result.reserveCapacity(segments.count)
        for segment in segments {
            guard case .text(let range) = segment else { result.append(segment); continue }
            var textStart = range.lowerBound
            var index = range.lowerBound
            let first = entry.bytes[0]
            while index < range.upperBound {
                if text[index] == first && Self.matches(entry, text, at: index, end: range.upperBound) {
                    var matchStart = index
                    var matchEnd = index + entry.bytes.count
                    if entry.token.stripsLeft {
                        while matchStart > textStart && Self.isSpace(text[matchStart - 1]) { matchStart -= 1 }
                    }
                    if entry.token.stripsRight {
                        while matchEnd < range.upperBound && Self.isSpace(text[matchEnd]) { matchEnd += 1 }
                    }
                    if matchStart > textStart { result.append(.text(textStart..<matchStart)) }
                    result.append(.token(entry.token.id))
                    textStart = matchEnd
                    index = matchEnd
                } else {
                    index += 1
                }
            }
            if textStart < range.upperBound { result.append(.text(textStart..<range.upperBound)) }
        }
        return result
    }
}
