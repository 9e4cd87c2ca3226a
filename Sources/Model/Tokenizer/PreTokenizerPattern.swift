/// A pre-tokenizer regex of the byte-level BPE families, implemented by hand over Unicode scalars.
///
/// Each case is exactly one regex that `tokenizers` (Oniguruma, `Split` with behaviour `Isolated`,
/// or `ByteLevel` with `use_regex`) and llama.cpp (`tokenizer.ggml.pre`) run; ``split(_:classes:_:into:)``
/// returns the same pieces as the regex's successive leftmost matches, without compiling a regex.
/// tools/compare_tokenizers.py checks this against both libraries.
public enum PreTokenizerPattern: String, Sendable, CaseIterable {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    /// (`tokenizer.ggml.pre` gpt-2, and `ByteLevel` with `use_regex: true`).
    case gpt2
    /// Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// (`tokenizer.ggml.pre` llama-bpe).
    case llama3
    /// Qwen2: the Llama 3 regex with `\p{N}` (one digit per piece) instead of `\p{N}{1,3}`
    /// (`tokenizer.ggml.pre` qwen2).
    case qwen2

    /// The regex source as tokenizer.json spells it.
    public var regex: String {
        switch self {
        case .gpt2:
            return #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        case .llama3:
            return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        case .qwen2:
            return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        }
    }

    /// The pattern whose regex is `source` (other spellings of the same regex that converters write
    /// included), or nil for a regex this module does not implement.
    public init?(regex source: String) {
        if let match = PreTokenizerPattern.allCases.first(where: { $0.regex == source }) {
            self = match
            return
        }
        // llama.cpp's own spelling without the inline case-insensitive group.
        let contractions = #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"#
        let llama3Tail = #"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let qwen2Tail = #"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        if source == contractions + llama3Tail { self = .llama3; return }
        if source == contractions + qwen2Tail { self = .qwen2; return }
        return nil
    }

    /// Splits `scalars[range]` into the regex's pieces, appending each piece's end index to `ends`
    /// (the pieces are contiguous: every scalar belongs to exactly one piece).
    /// - Parameter classes: ``UnicodeClasses`` bits of every scalar of `scalars`.
    func split(_ scalars: UnsafeBufferPointer<UInt32>, classes: UnsafeBufferPointer<UInt8>,
               _ range: Range<Int>, into ends: inout [Int]) {
        switch self {
        case .gpt2: splitGPT2(scalars, classes, range, &ends)
        case .llama3: splitLlama3(scalars, classes, range, maximumDigits: 3, &ends)
        case .qwen2: splitLlama3(scalars, classes, range, maximumDigits: 1, &ends)
        }
    }

    private static let apostrophe: UInt32 = 0x27
    private static let space: UInt32 = 0x20

    /// The length of a contraction (`'s`, `'re`, …) starting at `index`, or 0.
    @inline(__always)
    private static func contractionLength(_ scalars: UnsafeBufferPointer<UInt32>, _ index: Int, _ end: Int,
                                          caseInsensitive: Bool) -> Int {
        guard scalars[index] == apostrophe, index + 1 < end else { return 0 }
        func folded(_ value: UInt32) -> UInt32 {
            caseInsensitive && value >= 0x41 && value <= 0x5A ? value + 0x20 : value
        }
        let first = folded(scalars[index + 1])
        switch first {
        case 0x73, 0x74, 0x6D, 0x64: return 2  // s t m d
        default: break
        }
        guard index + 2 < end else { return 0 }
        let second = folded(scalars[index + 2])
        switch (first, second) {
        case (0x72, 0x65), (0x76, 0x65), (0x6C, 0x6C): return 3  // re ve ll
        default: return 0
        }
    }

    /// `\s+(?!\S)|\s+` at `index`, which holds white space: a run of white space up to the end, or
    /// all but its last scalar when a non-space follows (that scalar then starts the next piece),
    /// or a single white-space scalar before a non-space.
    @inline(__always)
    private static func whitespaceEnd(_ classes: UnsafeBufferPointer<UInt8>, _ index: Int, _ end: Int) -> Int {
        var runEnd = index
        while runEnd < end && classes[runEnd] & UnicodeClasses.whitespace != 0 { runEnd += 1 }
        if runEnd == end { return end }
        return runEnd - index >= 2 ? runEnd - 1 : runEnd
    }

    private func splitGPT2(_ s: UnsafeBufferPointer<UInt32>, _ c: UnsafeBufferPointer<UInt8>,
                           _ range: Range<Int>, _ ends: inout [Int]) {
        let end = range.upperBound
        var index = range.lowerBound
        let letter = UnicodeClasses.letter, number = UnicodeClasses.number
        while index < end {
            let contraction = Self.contractionLength(s, index, end, caseInsensitive: false)
            if contraction > 0 {
                index += contraction
                ends.append(index)
                continue
            }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
            let start = s[index] == Self.space && index + 1 < end ? index + 1 : index
            let kind = c[start]
            if kind == letter || kind == number || kind == 0 {
                var next = start + 1
                while next < end && c[next] == kind { next += 1 }
                index = next
                ends.append(index)
                continue
            }
            index = Self.whitespaceEnd(c, index, end)
            ends.append(index)
        }
    }

    private func splitLlama3(_ s: UnsafeBufferPointer<UInt32>, _ c: UnsafeBufferPointer<UInt8>,
                             _ range: Range<Int>, maximumDigits: Int, _ ends: inout [Int]) {
        let end = range.upperBound
        var index = range.lowerBound
        let letter = UnicodeClasses.letter, number = UnicodeClasses.number
        @inline(__always) func isNewline(_ value: UInt32) -> Bool { value == 0x0A || value == 0x0D }
        while index < end {
            let contraction = Self.contractionLength(s, index, end, caseInsensitive: true)
            if contraction > 0 {
                index += contraction
                ends.append(index)
                continue
            }
            let kind = c[index]
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            var letterStart = -1
            if kind == letter {
                letterStart = index
            } else if kind != number && !isNewline(s[index]) && index + 1 < end && c[index + 1] == letter {
                letterStart = index + 1
            }
            if letterStart >= 0 {
                var next = letterStart + 1
                while next < end && c[next] == letter { next += 1 }
                index = next
                ends.append(index)
                continue
            }
            // `\p{N}{1,maximumDigits}`
            if kind == number {
                var next = index + 1
                while next < end && next - index < maximumDigits && c[next] == number { next += 1 }
                index = next
                ends.append(index)
                continue
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            let start = s[index] == Self.space && index + 1 < end ? index + 1 : index
            if c[start] == 0 {
                var next = start + 1
                while next < end && c[next] == 0 { next += 1 }
                while next < end && isNewline(s[next]) { next += 1 }
                index = next
                ends.append(index)
                continue
            }
            // `\s*[\r\n]+`: white space up to and including the last newline of the run.
            var runEnd = index
            var lastNewline = -1
            while runEnd < end && c[runEnd] & UnicodeClasses.whitespace != 0 {
                if isNewline(s[runEnd]) { lastNewline = runEnd }
                runEnd += 1
            }
            if lastNewline >= 0 {
                index = lastNewline + 1
                ends.append(index)
                continue
            }
            index = Self.whitespaceEnd(c, index, end)
            ends.append(index)
        }
    }
}
